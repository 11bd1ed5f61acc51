//! fail2ban-rs beside nftjail, when it is installed: its config for the same
//! postfix-sasl jail, started in a namespace of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use super::daemon::Netns;

/// Our postfix-sasl failregex in fail2ban-rs's syntax (it finds the date itself).
pub(super) const FAIL2BAN_RS_POSTFIX: &str = r"postfix(?:-[\w.-]+)?/(?:[\w.-]+/)?smtpd\[\d+\]: warning: [\w.-]+\[<HOST>\]: SASL [A-Z0-9-]+ authentication failed: ";

/// Starts fail2ban-rs in `ns` with one jail `jail` (our postfix-sasl pattern
/// on port 587) over a new empty log `TAG.log`, plus `extra` jail keys.
pub(super) fn fail2ban_rs_start(
    bin: &Path,
    dir: &Path,
    ns: &Netns,
    tag: &str,
    jail: &str,
    extra: &str,
) -> Result<(PathBuf, std::process::Child)> {
    let log = dir.join(format!("{tag}.log"));
    std::fs::write(&log, "")?;
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[global]\nstate_file = \"{d}/{tag}.bin\"\nsocket_path = \"{d}/{tag}.sock\"\n\n[jail.{jail}]\nlog_path = \"{l}\"\ndate_format = \"syslog\"\nport = [\"587\"]\n{extra}filter = ['{FAIL2BAN_RS_POSTFIX}']\n",
            d = dir.display(),
            l = log.display()
        ),
    )?;
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(bin)
        .arg("-c")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok((log, child))
}

/// Whether fail2ban-rs has made its table in namespace `ns`.
pub(super) fn table_exists(ns: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "list",
            "table",
            "inet",
            "fail2ban-rs",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The peer the speed targets name, at the version BENCHMARKS.md compares
/// with; a real run installs it from crates.io when it is missing (smoke
/// runs in CI leave it out and say so in their tables).
pub(super) const VERSION: &str = "1.5.4";

pub(super) fn install_if_missing() -> Result<()> {
    if super::which("fail2ban-rs").is_some() {
        return Ok(());
    }
    eprintln!("bench: installing fail2ban-rs {VERSION} (the Rust peer) with cargo install");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "--locked", "fail2ban-rs", "--version", VERSION])
        .status()?;
    if !status.success() {
        anyhow::bail!("cargo install fail2ban-rs {VERSION} failed: {status}");
    }
    Ok(())
}
