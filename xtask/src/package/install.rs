//! `cargo xtask install [--prefix DIR] [--destdir DIR]`: the .deb's files on
//! a host without dpkg, through the same [`super::stage`].
//!
//! An edited /etc/nftjail/nftjail.toml is never overwritten (the new default
//! goes beside it as nftjail.toml.new), and nothing is enabled or started:
//! the closing lines say what to run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{Conffiles, Layout};

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub prefix: PathBuf,
    pub destdir: Option<PathBuf>,
}

pub fn parse(args: &[&str]) -> Result<Options> {
    let mut prefix = PathBuf::from("/usr/local");
    let mut destdir = None;
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let (key, inline): (&str, Option<&str>) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        let mut value = || -> Result<PathBuf> {
            let v = inline
                .or_else(|| it.next().copied())
                .with_context(|| format!("{key} needs a directory"))?;
            Ok(PathBuf::from(v))
        };
        match key {
            "--prefix" => prefix = value()?,
            "--destdir" => destdir = Some(value()?),
            other => bail!("install: unknown argument {other:?} (--prefix DIR, --destdir DIR)"),
        }
    }
    if !prefix.is_absolute() {
        bail!("--prefix {}: must be an absolute path", prefix.display());
    }
    Ok(Options { prefix, destdir })
}

pub fn install(root: &Path, args: &[&str]) -> Result<()> {
    let opts = parse(args)?;
    let dest = opts.destdir.clone().unwrap_or_else(|| PathBuf::from("/"));
    if opts.destdir.is_none() && !crate::is_root() {
        bail!("installing into / needs root (or give --destdir DIR to stage elsewhere)");
    }
    let binary = crate::cargo::release_binary(root)?;
    let meta = crate::cargo::Metadata::read(root)?;
    let layout = Layout::new(&opts.prefix);
    eprintln!(
        "install: nftjail {} into {} with prefix {}: the binary, the systemd unit, man pages,\n\
         \x20        completions, the filter library (reference), and {} unless it was edited",
        meta.nftjail()?.version,
        dest.display(),
        opts.prefix.display(),
        super::CONFIG,
    );
    let placed = super::stage(
        root,
        &binary,
        &layout,
        &dest,
        Conffiles::Keep,
        meta.nftjail()?,
    )?;
    for p in &placed {
        let at = super::rebase(&dest, &p.path);
        match &p.note {
            Some(note) => eprintln!("  {}  ({note})", at.display()),
            None => eprintln!("  {}", at.display()),
        }
    }
    if opts.destdir.is_none() {
        eprintln!(
            "install: done. Nothing was enabled or started; when the config suits this host:\n\
             \x20 nftjail check && systemctl daemon-reload && systemctl enable --now nftjail"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_usr_local_on_the_live_system() {
        let o = parse(&[]).expect("no arguments");
        assert_eq!(o.prefix, Path::new("/usr/local"));
        assert_eq!(o.destdir, None);
    }

    #[test]
    fn takes_both_spellings() {
        let o = parse(&["--prefix", "/opt/nftjail", "--destdir=/tmp/x"]).expect("valid");
        assert_eq!(o.prefix, Path::new("/opt/nftjail"));
        assert_eq!(o.destdir.as_deref(), Some(Path::new("/tmp/x")));
    }

    #[test]
    fn refuses_a_relative_prefix_and_unknown_flags() {
        assert!(parse(&["--prefix", "usr"]).is_err());
        assert!(parse(&["--bindir", "/x"]).is_err());
        assert!(parse(&["--prefix"]).is_err());
    }
}
