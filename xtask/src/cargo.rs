//! What cargo knows about this workspace, asked of cargo itself: where it
//! puts what it builds (`CARGO_TARGET_DIR`, `build.target-dir` in a
//! `.cargo/config.toml`, or `target/`) and the package's version and
//! description, so no task guesses `target/release/nftjail`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The parts of `cargo metadata --format-version 1 --no-deps` the tasks use.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub target_directory: PathBuf,
    packages: Vec<Package>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub license: Option<String>,
}

impl Metadata {
    pub fn read(root: &Path) -> Result<Metadata> {
        let out = cargo_command(root)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .context("cannot run cargo metadata")?;
        if !out.status.success() {
            bail!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("cannot read cargo metadata's output")
    }

    /// The product's package (not xtask).
    pub fn nftjail(&self) -> Result<&Package> {
        self.packages
            .iter()
            .find(|p| p.name == "nftjail")
            .context("cargo metadata lists no package named nftjail")
    }
}

/// Where cargo puts what it builds, as cargo itself resolves it.
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    Ok(Metadata::read(root)?.target_directory)
}

/// `cargo` as the running cargo (`$CARGO`), in the workspace root.
pub fn cargo_command(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

/// Builds the release binary and returns where cargo put it.
pub fn release_binary(root: &Path) -> Result<PathBuf> {
    let mut build = cargo_command(root);
    build.args(["build", "--release", "--bin", "nftjail"]);
    eprintln!("+ {build:?}");
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("release build failed: {status}");
    }
    let binary = target_dir(root)?.join("release/nftjail");
    if !binary.is_file() {
        bail!("cargo built nftjail but {} is missing", binary.display());
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workspace_as_cargo_sees_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace");
        let meta = Metadata::read(root).expect("cargo metadata");
        assert!(meta.target_directory.is_absolute());
        let pkg = meta.nftjail().expect("the nftjail package");
        assert!(!pkg.version.is_empty());
        assert_eq!(pkg.license.as_deref(), Some("GPL-3.0-or-later"));
    }

    #[test]
    fn follows_cargo_target_dir() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let out = cargo_command(root)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .env("CARGO_TARGET_DIR", elsewhere.path())
            .output()
            .expect("cargo metadata");
        let meta: Metadata = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(meta.target_directory, elsewhere.path());
    }
}
