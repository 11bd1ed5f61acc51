//! The files an installed nftjail consists of, laid out once under a root
//! directory: `cargo xtask deb` packs that tree with dpkg-deb, `cargo xtask
//! install` lays it straight into DESTDIR. One list, so a hand install and
//! the .deb cannot drift apart.
//!
//! The configuration always goes to /etc/nftjail, whatever the prefix: the
//! binary looks for /etc/nftjail/nftjail.toml and /etc/nftjail/filters.

pub mod deb;
pub mod install;
pub mod verify;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const CONFIG: &str = "/etc/nftjail/nftjail.toml";
/// Where an admin puts a filter that replaces a built-in one of the same name.
pub const FILTER_OVERRIDES: &str = "/etc/nftjail/filters";
/// The path the unit in config/nftjail.service starts the daemon from.
const UNIT_BINARY: &str = "/usr/sbin/nftjail";

/// Where the files go under a prefix (`/usr` for the .deb, `/usr/local` by
/// default for `cargo xtask install`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub prefix: PathBuf,
}

impl Layout {
    pub fn new(prefix: impl Into<PathBuf>) -> Layout {
        Layout {
            prefix: prefix.into(),
        }
    }

    fn under(&self, rel: &str) -> PathBuf {
        self.prefix.join(rel)
    }

    pub fn binary(&self) -> PathBuf {
        self.under("sbin/nftjail")
    }

    /// systemd reads units from /usr/lib/systemd/system and, for local
    /// installs, /usr/local/lib/systemd/system.
    pub fn unit(&self) -> PathBuf {
        self.under("lib/systemd/system/nftjail.service")
    }

    pub fn man8(&self) -> PathBuf {
        self.under("share/man/man8")
    }

    pub fn filters(&self) -> PathBuf {
        self.under("share/nftjail/filters")
    }

    pub fn doc(&self) -> PathBuf {
        self.under("share/doc/nftjail")
    }

    pub fn bash_completion(&self) -> PathBuf {
        self.under("share/bash-completion/completions/nftjail")
    }

    /// Debian's zsh reads packages' completions from vendor-completions;
    /// site-functions is zsh's own place for everything else.
    pub fn zsh_completion(&self) -> PathBuf {
        if self.prefix == Path::new("/usr") {
            self.under("share/zsh/vendor-completions/_nftjail")
        } else {
            self.under("share/zsh/site-functions/_nftjail")
        }
    }

    pub fn fish_completion(&self) -> PathBuf {
        self.under("share/fish/vendor_completions.d/nftjail.fish")
    }
}

/// What to do with a configuration file the admin may have edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conffiles {
    /// A fresh tree (the .deb's): write it.
    Write,
    /// A live system: never overwrite an edited file; put the new default
    /// beside it as `FILE.new` and say so, as dpkg does with `.dpkg-dist`.
    Keep,
}

/// One file laid out: its installed path and what it is, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub path: PathBuf,
    pub note: Option<String>,
}

/// Lays every file out under `dest` (the staging root or DESTDIR).
/// `binary` is the release build; it renders the man pages and completions.
/// Returns the installed paths, in the order they were written.
pub fn stage(
    root: &Path,
    binary: &Path,
    layout: &Layout,
    dest: &Path,
    conffiles: Conffiles,
    meta: &crate::cargo::Package,
) -> Result<Vec<Placed>> {
    let mut placed = Vec::new();
    let mut put = |path: PathBuf, bytes: &[u8], mode: u32| -> Result<()> {
        write(dest, &path, bytes, mode)?;
        placed.push(Placed { path, note: None });
        Ok(())
    };

    put(layout.binary(), &stripped(binary)?, 0o755)?;
    put(layout.unit(), unit(root, layout)?.as_bytes(), 0o644)?;
    let mut filters: Vec<PathBuf> = fs::read_dir(root.join("config/filters"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    filters.sort();
    for f in &filters {
        let name = f.file_name().context("a filter file has no name")?;
        put(layout.filters().join(name), &read(f)?, 0o644)?;
    }

    let scratch = tempfile::tempdir()?;
    let generate = |what: &str| -> Result<PathBuf> {
        let dir = scratch.path().join(what);
        crate::run(Command::new(binary).arg("generate").arg(what).arg(&dir))?;
        Ok(dir)
    };
    let man = generate("man")?;
    let mut pages: Vec<PathBuf> = fs::read_dir(&man)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    pages.sort();
    if !pages.iter().any(|p| p.ends_with("nftjail.8")) {
        bail!("nftjail generate man wrote no nftjail.8");
    }
    for page in &pages {
        let name = page.file_name().context("a man page has no name")?;
        let gz = format!("{}.gz", name.to_string_lossy());
        put(layout.man8().join(gz), &gzip(&read(page)?)?, 0o644)?;
    }
    let comp = generate("completions")?;
    put(
        layout.bash_completion(),
        &read(&comp.join("nftjail.bash"))?,
        0o644,
    )?;
    put(
        layout.zsh_completion(),
        &read(&comp.join("_nftjail"))?,
        0o644,
    )?;
    put(
        layout.fish_completion(),
        &read(&comp.join("nftjail.fish"))?,
        0o644,
    )?;

    put(
        layout.doc().join("copyright"),
        copyright(meta).as_bytes(),
        0o644,
    )?;
    let changelog = deb::changelog(root, meta)?;
    put(
        layout.doc().join("changelog.gz"),
        &gzip(changelog.as_bytes())?,
        0o644,
    )?;

    // The admin's files last, so a refusal to overwrite is the last thing said.
    dir(dest, Path::new(FILTER_OVERRIDES), 0o755)?;
    let config = read(&root.join("config/nftjail.toml"))?;
    let target = Path::new(CONFIG);
    let existing = fs::read(rebase(dest, target)).ok();
    match (conffiles, existing) {
        (Conffiles::Keep, Some(old)) if old != config => {
            let new = PathBuf::from(format!("{CONFIG}.new"));
            write(dest, &new, &config, 0o644)?;
            placed.push(Placed {
                path: new,
                note: Some(format!(
                    "{CONFIG} was edited and is kept; the new default is beside it"
                )),
            });
        }
        _ => {
            write(dest, target, &config, 0o644)?;
            placed.push(Placed {
                path: target.to_path_buf(),
                note: None,
            });
        }
    }
    Ok(placed)
}

/// `dest` + an absolute install path.
pub fn rebase(dest: &Path, path: &Path) -> PathBuf {
    dest.join(path.strip_prefix("/").unwrap_or(path))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates every missing directory of `path` under `dest` with `mode`
/// (set explicitly: the builder's umask must not reach the package).
fn dir(dest: &Path, path: &Path, mode: u32) -> Result<()> {
    let mut at = dest.to_path_buf();
    for part in path.strip_prefix("/").unwrap_or(path).components() {
        at.push(part);
        if !at.is_dir() {
            fs::create_dir(&at).with_context(|| format!("cannot create {}", at.display()))?;
            fs::set_permissions(&at, fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

fn write(dest: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        dir(dest, parent, 0o755)?;
    }
    let at = rebase(dest, path);
    fs::write(&at, bytes).with_context(|| format!("cannot write {}", at.display()))?;
    fs::set_permissions(&at, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The unit from config/nftjail.service (owned by the service's own
/// work), pointed at the binary's place under this prefix.
fn unit(root: &Path, layout: &Layout) -> Result<String> {
    let path = root.join("config/nftjail.service");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if !text.contains(UNIT_BINARY) {
        bail!(
            "{} no longer starts {UNIT_BINARY}: update the packaging",
            path.display()
        );
    }
    let binary = layout.binary();
    Ok(text.replace(UNIT_BINARY, &binary.to_string_lossy()))
}

/// The binary without its symbols and debug info, as dh_strip ships it:
/// the release profile keeps line tables for backtraces while developing.
fn stripped(binary: &Path) -> Result<Vec<u8>> {
    let scratch = tempfile::tempdir()?;
    let out = scratch.path().join("nftjail");
    crate::run(
        Command::new("strip")
            .args([
                "--remove-section=.comment",
                "--remove-section=.note",
                "--strip-unneeded",
                "-o",
            ])
            .arg(&out)
            .arg(binary),
    )?;
    read(&out)
}

/// gzip -9n: the best ratio, and no name or time stamp inside, so the same
/// input always packs to the same bytes.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    let mut stdin = child.stdin.take().context("gzip has no stdin")?;
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the gzip feeder panicked"))??;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    Ok(out.stdout)
}

/// debian/copyright in the machine-readable format (DEP-5).
fn copyright(meta: &crate::cargo::Package) -> String {
    let license = meta.license.as_deref().unwrap_or("GPL-3.0-or-later");
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: nftjail\n\
         Comment: The binary links the Rust crates listed in Cargo.lock statically,\n \
         each under its own licence (MIT, Apache-2.0 or both for nearly all), and\n \
         SQLite, which is in the public domain.\n\
         \n\
         Files: *\n\
         Copyright: the nftjail authors\n\
         License: {license}\n\
         \n\
         License: {license}\n \
         This program is free software: you can redistribute it and/or modify\n \
         it under the terms of the GNU General Public License as published by\n \
         the Free Software Foundation, either version 3 of the License, or\n \
         (at your option) any later version.\n \
         .\n \
         This program is distributed in the hope that it will be useful,\n \
         but WITHOUT ANY WARRANTY; without even the implied warranty of\n \
         MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the\n \
         GNU General Public License for more details.\n \
         .\n \
         On Debian systems, the complete text of the GNU General Public License\n \
         version 3 can be found in \"/usr/share/common-licenses/GPL-3\".\n"
    )
}
