#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The systemd unit shipped in `config/nftjail.service`: systemd's own
//! checker accepts it, and its sandbox stays tight (the offline exposure
//! score of `systemd-analyze security` at 2.0 or lower).
//!
//! Needs `systemd-analyze` (Debian package `systemd`, `cargo xtask deps`);
//! without it these tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/nftjail.service");
const MAX_EXPOSURE: f64 = 2.0;

fn analyze() -> Command {
    let tool = Path::new("/usr/bin/systemd-analyze");
    assert!(
        tool.exists(),
        "{} is missing: run `cargo xtask deps` (package systemd)",
        tool.display()
    );
    Command::new(tool)
}

/// The unit with its commands pointing at the binary under test, so verify
/// finds an executable where the package will install one.
fn unit_copy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT).unwrap();
    let text = text.replace("/usr/sbin/nftjail", env!("CARGO_BIN_EXE_nftjail"));
    let path = dir.join("nftjail.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    // The man page comes with the package, not with the source tree.
    let out = analyze()
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "verify warned:\n{stderr}");
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "Documentation=man:nftjail(8)",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "AmbientCapabilities=CAP_NET_ADMIN",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from {UNIT}"
        );
    }
    assert!(text.lines().any(|l| l.starts_with("WatchdogSec=")));
}

#[test]
fn offline_exposure_is_two_or_lower() {
    let out = analyze()
        .args(["security", "--offline=true", UNIT])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "→ Overall exposure level for nftjail.service: 1.9 OK 🙂"
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for nftjail.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}\n{stderr}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{stdout}"
    );
}
