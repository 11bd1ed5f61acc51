//! The package checked as an admin meets it, run by `cargo xtask ci` right
//! after `cargo xtask deb` (so the release build is made once, outside `cargo
//! test`, whose build lock a nested release build would wait on):
//! `dpkg-deb -c` lists every file with root ownership and sane modes, the
//! control fields are right, the unpacked binary checks the unpacked config,
//! lintian reports no error, and `cargo xtask install --destdir` lays out the
//! same files under another prefix.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::{Conffiles, Layout};

/// Every path the .deb must hold, with the mode it must have.
pub fn expected(root: &Path) -> Result<Vec<(PathBuf, &'static str)>> {
    let l = Layout::new("/usr");
    let mut want = vec![
        (l.binary(), "-rwxr-xr-x"),
        (l.unit(), "-rw-r--r--"),
        (PathBuf::from(super::CONFIG), "-rw-r--r--"),
        (PathBuf::from(super::FILTER_OVERRIDES), "drwxr-xr-x"),
        (l.man8().join("nftjail.8.gz"), "-rw-r--r--"),
        (l.man8().join("nftjail-run.8.gz"), "-rw-r--r--"),
        (l.man8().join("nftjail-check.8.gz"), "-rw-r--r--"),
        (l.bash_completion(), "-rw-r--r--"),
        (
            PathBuf::from("/usr/share/zsh/vendor-completions/_nftjail"),
            "-rw-r--r--",
        ),
        (
            PathBuf::from("/usr/share/fish/vendor_completions.d/nftjail.fish"),
            "-rw-r--r--",
        ),
        (l.doc().join("copyright"), "-rw-r--r--"),
        (l.doc().join("changelog.gz"), "-rw-r--r--"),
    ];
    for entry in fs::read_dir(root.join("config/filters"))? {
        let name = entry?.file_name();
        want.push((l.filters().join(name), "-rw-r--r--"));
    }
    Ok(want)
}

fn capture(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// `dpkg-deb -c`: path → (mode, owner).
fn listing(deb: &Path) -> Result<BTreeMap<PathBuf, (String, String)>> {
    let (ok, text) = capture(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    ensure!(ok, "dpkg-deb -c failed: {text}");
    let mut files = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(mode), Some(owner), Some(path)) = (fields.first(), fields.get(1), fields.get(5))
        else {
            continue;
        };
        let path = path.trim_start_matches('.').trim_end_matches('/');
        if !path.is_empty() {
            files.insert(PathBuf::from(path), (mode.to_string(), owner.to_string()));
        }
    }
    Ok(files)
}

pub fn verify(root: &Path, deb: &Path) -> Result<()> {
    let files = listing(deb)?;
    for (path, mode) in expected(root)? {
        let (got, owner) = files
            .get(&path)
            .with_context(|| format!("{}: no {} in the package", deb.display(), path.display()))?;
        ensure!(got == mode, "{}: mode {got}, want {mode}", path.display());
        ensure!(owner == "root/root", "{}: owned by {owner}", path.display());
    }
    eprintln!("verify: dpkg-deb -c lists every file, root-owned");

    let field = |name: &str| -> Result<String> {
        let (ok, text) = capture(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))?;
        ensure!(ok, "dpkg-deb -f {name}: {text}");
        Ok(text.trim().to_string())
    };
    let depends = field("Depends")?;
    for lib in ["libc6", "libsystemd0"] {
        ensure!(
            depends.contains(lib),
            "Depends: {depends} (no {lib}: is dpkg-shlibdeps working?)"
        );
    }
    ensure!(field("Section")? == "net", "Section is not net");
    ensure!(field("Priority")? == "optional", "Priority is not optional");

    let scratch = tempfile::tempdir()?;
    let control = scratch.path().join("DEBIAN");
    let (ok, text) = capture(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control))?;
    ensure!(ok, "dpkg-deb -e: {text}");
    let conffiles = fs::read_to_string(control.join("conffiles"))?;
    ensure!(
        conffiles.lines().collect::<Vec<_>>() == [super::CONFIG],
        "conffiles: {conffiles:?}"
    );
    let md5sums = fs::read_to_string(control.join("md5sums"))?;
    // Every regular file but the one conffile.
    let regular = files.values().filter(|(m, _)| m.starts_with('-')).count();
    ensure!(
        md5sums.lines().count() + 1 == regular,
        "md5sums has {} lines for {regular} files",
        md5sums.lines().count()
    );
    ensure!(
        !md5sums.contains(" etc/nftjail/nftjail.toml"),
        "md5sums lists the conffile"
    );
    eprintln!("verify: Depends: {depends}; conffiles and md5sums match");

    let unpacked = scratch.path().join("root");
    let (ok, text) = capture(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    ensure!(ok, "dpkg-deb -x: {text}");
    let binary = super::rebase(&unpacked, &Layout::new("/usr").binary());
    let config = super::rebase(&unpacked, Path::new(super::CONFIG));
    let (ok, text) = capture(Command::new(&binary).arg("check").arg("-c").arg(&config))?;
    ensure!(
        ok && text.contains(": OK,"),
        "the unpacked binary refused the unpacked config:\n{text}"
    );
    eprintln!("verify: unpacked nftjail check: {}", text.trim());

    lintian(deb)?;
    install_elsewhere(root, &binary)?;
    Ok(())
}

/// lintian's errors fail; its warnings are printed for whoever reads the log.
fn lintian(deb: &Path) -> Result<()> {
    let (ok, text) = capture(
        Command::new("lintian")
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(deb),
    )?;
    for line in text.lines() {
        eprintln!("lintian: {line}");
    }
    if !ok || text.lines().any(|l| l.starts_with("E: ")) {
        bail!("lintian reports errors for {}", deb.display());
    }
    eprintln!("verify: lintian reports no errors");
    Ok(())
}

/// `cargo xtask install`'s layout under /usr/local, twice: the unit starts
/// the binary where it was put, and an edited config survives the second.
fn install_elsewhere(root: &Path, binary: &Path) -> Result<()> {
    let meta = crate::cargo::Metadata::read(root)?;
    let dest = tempfile::tempdir()?;
    let layout = Layout::new("/usr/local");
    let stage = || {
        super::stage(
            root,
            binary,
            &layout,
            dest.path(),
            Conffiles::Keep,
            meta.nftjail()?,
        )
    };
    stage()?;
    let unit = fs::read_to_string(super::rebase(dest.path(), &layout.unit()))?;
    ensure!(
        unit.contains("ExecStart=/usr/local/sbin/nftjail run"),
        "the installed unit does not start /usr/local/sbin/nftjail:\n{unit}"
    );
    ensure!(
        super::rebase(dest.path(), &layout.zsh_completion()).is_file(),
        "no zsh completion under /usr/local"
    );
    let config = super::rebase(dest.path(), Path::new(super::CONFIG));
    fs::write(&config, "# edited by the admin\n")?;
    let placed = stage()?;
    ensure!(
        fs::read_to_string(&config)? == "# edited by the admin\n",
        "a second install overwrote the edited config"
    );
    ensure!(
        placed.iter().any(|p| p.path.ends_with("nftjail.toml.new")),
        "the new default config was not put beside the edited one"
    );
    eprintln!("verify: cargo xtask install --prefix /usr/local lays out the same files, keeps an edited config");
    Ok(())
}
