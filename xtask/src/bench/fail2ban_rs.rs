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
