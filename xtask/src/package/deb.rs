//! `cargo xtask deb`: target/debian/nftjail_VERSION_ARCH.deb, packed by
//! dpkg-deb from the tree [`super::stage`] lays out.
//!
//! Why dpkg-deb and not cargo-deb: dpkg-deb and dpkg-shlibdeps come with
//! dpkg-dev on every Debian machine, so packaging needs no extra tool built
//! from crates.io, and the control file, conffiles and maintainer scripts
//! are written here in plain sight rather than generated from Cargo.toml
//! metadata. The maintainer scripts are what debhelper's dh_installsystemd
//! writes for a service restarted after upgrade.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{Conffiles, Layout};
use crate::cargo::{Metadata, Package};

const UNIT: &str = "nftjail.service";
/// What the control file says about the package, beyond Cargo.toml.
const SYNOPSIS: &str = "intrusion prevention that bans into nftables sets";
const LONG_DESCRIPTION: &str = "\
nftjail reads log files, the systemd journal or syslog messages, counts
authentication failures per address as fail2ban does, and bans offenders by
adding them, with a timeout, to sets in its own nftables table over netlink.
It forks no firewall tool, touches nothing outside its table, keeps its bans
across restarts and reboots, and reads fail2ban filter files and jail
configurations.";

/// Builds the .deb and returns its path.
pub fn build(root: &Path) -> Result<PathBuf> {
    let binary = crate::cargo::release_binary(root)?;
    let meta = Metadata::read(root)?;
    let pkg = meta.nftjail()?.clone();
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let out_dir = meta.target_directory.join("debian");
    let name = format!("nftjail_{}_{arch}", pkg.version);
    let tree = out_dir.join(&name);
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::create_dir_all(&tree)?;
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o755))?;

    let layout = Layout::new("/usr");
    let placed = super::stage(root, &binary, &layout, &tree, Conffiles::Write, &pkg)?;
    let files: Vec<PathBuf> = placed.into_iter().map(|p| p.path).collect();

    let debian = tree.join("DEBIAN");
    fs::create_dir(&debian)?;
    fs::set_permissions(&debian, fs::Permissions::from_mode(0o755))?;
    let depends = depends(&tree, &layout)?;
    let control = control(&pkg, &arch, &depends, installed_size(&tree, &files)?);
    put(&debian.join("control"), &control, 0o644)?;
    put(
        &debian.join("conffiles"),
        &format!("{}\n", super::CONFIG),
        0o644,
    )?;
    put(&debian.join("md5sums"), &md5sums(&tree, &files)?, 0o644)?;
    for (script, text) in maintainer_scripts() {
        put(&debian.join(script), &text, 0o755)?;
    }

    let deb = out_dir.join(format!("{name}.deb"));
    crate::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb),
    )?;
    eprintln!("deb: {}", deb.display());
    Ok(deb)
}

fn put(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The shared libraries the binary links, as Debian package relations
/// (libc6, libgcc-s1 with their minimal versions), from dpkg-shlibdeps: the
/// tool every Debian package build uses for this; and libsystemd0, which
/// the journal source loads at run time (`dlopen`), where dpkg-shlibdeps
/// cannot see it.
fn depends(tree: &Path, layout: &Layout) -> Result<String> {
    // dpkg-shlibdeps wants to run in a source tree: give it an empty one.
    let scratch = tempfile::tempdir()?;
    fs::create_dir(scratch.path().join("debian"))?;
    fs::write(
        scratch.path().join("debian/control"),
        "Source: nftjail\n\nPackage: nftjail\nArchitecture: any\n",
    )?;
    let binary = super::rebase(tree, &layout.binary());
    let line = output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(format!("-e{}", binary.display()))
            .current_dir(scratch.path()),
    )?;
    let deps = line
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {line}"))?;
    if deps.split(',').any(|d| d.trim().starts_with("libsystemd0")) {
        return Ok(deps.to_string());
    }
    Ok(format!("{deps}, libsystemd0"))
}

/// In KiB, as dpkg-gencontrol counts it: each file rounded up, each
/// directory one.
fn installed_size(tree: &Path, files: &[PathBuf]) -> Result<u64> {
    let mut kib = 0;
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let len = fs::metadata(super::rebase(tree, f))?.len();
        kib += len.div_ceil(1024);
        let mut p = f.parent();
        while let Some(d) = p.filter(|d| *d != Path::new("/")) {
            dirs.insert(d.to_path_buf());
            p = d.parent();
        }
    }
    Ok(kib + dirs.len() as u64)
}

pub fn control(pkg: &Package, arch: &str, depends: &str, installed_kib: u64) -> String {
    let maintainer = pkg
        .authors
        .first()
        .map_or("nftjail maintainers", String::as_str);
    let mut c = String::new();
    let _ = writeln!(c, "Package: nftjail");
    let _ = writeln!(c, "Version: {}", pkg.version);
    let _ = writeln!(c, "Architecture: {arch}");
    let _ = writeln!(c, "Maintainer: {maintainer}");
    let _ = writeln!(c, "Installed-Size: {installed_kib}");
    let _ = writeln!(c, "Depends: {depends}");
    // `nft list set inet nftjail JAIL-v4`, how an admin sees the bans.
    let _ = writeln!(c, "Recommends: nftables");
    let _ = writeln!(c, "Section: net");
    let _ = writeln!(c, "Priority: optional");
    let _ = writeln!(c, "Description: {SYNOPSIS}");
    for line in LONG_DESCRIPTION.lines() {
        let _ = writeln!(c, " {line}");
    }
    c
}

/// `md5sum`'s output for every file but the conffile, paths relative to
/// the root, as dh_md5sums writes it (dpkg keeps conffiles' sums itself).
fn md5sums(tree: &Path, files: &[PathBuf]) -> Result<String> {
    let mut rel: Vec<String> = files
        .iter()
        .filter(|f| *f != Path::new(super::CONFIG))
        .map(|f| {
            f.strip_prefix("/")
                .unwrap_or(f)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rel.sort();
    let out = Command::new("md5sum")
        .args(&rel)
        .current_dir(tree)
        .output()
        .context("cannot run md5sum")?;
    if !out.status.success() {
        bail!("md5sum failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// postinst, prerm and postrm, as dh_installsystemd writes them with its
/// default restart-after-upgrade: the unit is enabled on first install,
/// started on install, *restarted* (never stopped first) on upgrade, and
/// stopped only on removal. A restart keeps the bans: the kernel holds
/// them, and the new daemon adopts them from the kernel and its store.
/// deb-systemd-invoke honours policy-rc.d, so a chroot or an image build
/// that forbids starting services is obeyed.
pub fn maintainer_scripts() -> [(&'static str, String); 3] {
    let postinst = format!(
        "#!/bin/sh
set -e

if [ \"$1\" = \"configure\" ] || [ \"$1\" = \"abort-upgrade\" ] || [ \"$1\" = \"abort-deconfigure\" ] || [ \"$1\" = \"abort-remove\" ] ; then
\t# Only removes a mask deb-systemd-helper made when the package was removed.
\tdeb-systemd-helper unmask '{UNIT}' >/dev/null || true

\t# was-enabled defaults to true, so a new installation enables the unit;
\t# an admin's `systemctl disable` survives upgrades.
\tif deb-systemd-helper --quiet was-enabled '{UNIT}'; then
\t\tdeb-systemd-helper enable '{UNIT}' >/dev/null || true
\telse
\t\tdeb-systemd-helper update-state '{UNIT}' >/dev/null || true
\tfi
fi

if [ \"$1\" = \"configure\" ] || [ \"$1\" = \"abort-upgrade\" ] || [ \"$1\" = \"abort-deconfigure\" ] || [ \"$1\" = \"abort-remove\" ] ; then
\tif [ -z \"${{DPKG_ROOT:-}}\" ] && [ -d /run/systemd/system ]; then
\t\tsystemctl --system daemon-reload >/dev/null || true
\t\t# An upgrade restarts the daemon (prerm left it running): the bans stay
\t\t# in the kernel and the new daemon adopts them.
\t\tif [ -n \"$2\" ]; then
\t\t\t# Even with on_stop = \"flush\" this stop keeps the bans (once).
\t\t\tif [ -d /run/nftjail ]; then touch /run/nftjail/keep-bans-on-stop; fi
\t\t\t_dh_action=restart
\t\telse
\t\t\t_dh_action=start
\t\tfi
\t\tdeb-systemd-invoke $_dh_action '{UNIT}' >/dev/null || true
\tfi
fi

exit 0
"
    );
    let prerm = format!(
        "#!/bin/sh
set -e

# Stop on removal only: an upgrade leaves the daemon running until postinst
# restarts it, so no ban is lifted while the package is replaced.
if [ -z \"${{DPKG_ROOT:-}}\" ] && [ \"$1\" = remove ] && [ -d /run/systemd/system ] ; then
\tdeb-systemd-invoke stop '{UNIT}' >/dev/null || true
fi

exit 0
"
    );
    let postrm = format!(
        "#!/bin/sh
set -e

if [ -z \"${{DPKG_ROOT:-}}\" ] && [ \"$1\" = remove ] && [ -d /run/systemd/system ] ; then
\tsystemctl --system daemon-reload >/dev/null || true
fi

if [ \"$1\" = \"remove\" ]; then
\tif [ -x \"/usr/bin/deb-systemd-helper\" ]; then
\t\tdeb-systemd-helper mask '{UNIT}' >/dev/null || true
\tfi
fi

if [ \"$1\" = \"purge\" ]; then
\tif [ -x \"/usr/bin/deb-systemd-helper\" ]; then
\t\tdeb-systemd-helper purge '{UNIT}' >/dev/null || true
\t\tdeb-systemd-helper unmask '{UNIT}' >/dev/null || true
\tfi
fi

exit 0
"
    );
    [("postinst", postinst), ("prerm", prerm), ("postrm", postrm)]
}

/// /usr/share/doc/nftjail/changelog(.gz): the package is native (no Debian
/// revision), so this is its Debian changelog; one entry for this version,
/// carrying the project's CHANGELOG.md section for it.
pub fn changelog(root: &Path, pkg: &Package) -> Result<String> {
    let md = fs::read_to_string(root.join("CHANGELOG.md")).context("cannot read CHANGELOG.md")?;
    // The last commit's time, so the same tree always packs the same bytes.
    let date = output(
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(root),
    )
    .ok()
    .and_then(|s| s.parse::<i64>().ok())
    .and_then(|t| jiff::Timestamp::from_second(t).ok())
    .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string())
    .unwrap_or_default();
    let maintainer = pkg
        .authors
        .first()
        .map_or("nftjail maintainers", String::as_str);
    Ok(debian_changelog(&md, &pkg.version, maintainer, &date))
}

/// CHANGELOG.md's first section as a Debian changelog entry: headings
/// become `[ Heading ]` lines, each `- item` a `* item` rewrapped to fit
/// the 80 columns Debian's tools show.
pub fn debian_changelog(md: &str, version: &str, maintainer: &str, date: &str) -> String {
    let mut out = format!("nftjail ({version}) unstable; urgency=medium\n\n");
    let md = format!("\n{md}");
    let section = md
        .split("\n## ")
        .nth(1)
        .map(|s| s.split_once('\n').map_or("", |(_, body)| body))
        .unwrap_or("");
    let mut item: Vec<&str> = Vec::new();
    let mut any = false;
    for line in section.lines() {
        let line = line.trim_end();
        if let Some(first) = line.strip_prefix("- ") {
            wrap_item(&mut out, &item);
            item = first.split_whitespace().collect();
        } else if line.starts_with("  ") && !item.is_empty() {
            item.extend(line.split_whitespace());
        } else {
            wrap_item(&mut out, &item);
            item.clear();
            if !line.is_empty() {
                let _ = writeln!(out, "  [ {} ]", line.trim_end_matches(':'));
            }
        }
        any |= !line.is_empty();
    }
    wrap_item(&mut out, &item);
    if !any {
        out.push_str("  * Built from the nftjail source tree.\n");
    }
    // Outside a git checkout: a fixed date still parses.
    let date = if date.is_empty() {
        "Thu, 01 Jan 1970 00:00:00 +0000"
    } else {
        date
    };
    let _ = write!(out, "\n -- {maintainer}  {date}\n");
    out
}

/// One `  * item`, its words wrapped at 79 columns, continuation lines
/// indented under the first word.
fn wrap_item(out: &mut String, words: &[&str]) {
    const WIDTH: usize = 79;
    let mut line = String::from("  *");
    for word in words {
        if line.len() > 4 && line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = String::from("   ");
        }
        line.push(' ');
        line.push_str(word);
    }
    if !words.is_empty() {
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests;
