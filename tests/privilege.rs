#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The daemon with the privileges the shipped unit gives it: a user of its
//! own (not root), CAP_NET_ADMIN alone (effective, permitted, ambient and
//! bounding), logs read through a group. It bans into the kernel, heals a
//! deleted table, sets no_new_privs itself, and serves `socket_group` with no
//! CAP_CHOWN.
//!
//! Needs root (to drop to that set with setpriv, util-linux) and iproute2/nft.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{require_root, Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
/// The daemon's user and group: no account needed, as with DynamicUser=.
const DAEMON_ID: u32 = 61_234;
/// adm (Debian): the shipped unit's supplementary group for logs.
const ADM: u32 = 4;
/// CAP_NET_ADMIN is capability 12.
const NET_ADMIN_ONLY: &str = "0000000000001000";

/// `setpriv` arguments that drop to the unit's capability set as the daemon's
/// user with `groups`. no_new_privs is left to the daemon.
fn as_daemon(groups: &[u32]) -> Vec<String> {
    let groups = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        format!("--groups={}", list.join(","))
    };
    vec![
        "setpriv".into(),
        format!("--reuid={DAEMON_ID}"),
        format!("--regid={DAEMON_ID}"),
        groups,
        "--inh-caps=-all,+net_admin".into(),
        "--ambient-caps=-all,+net_admin".into(),
        "--bounding-set=-all,+net_admin".into(),
        BIN.into(),
    ]
}

/// A directory others may traverse, with the state and socket directories
/// the daemon's user owns (as systemd's StateDirectory= and RuntimeDirectory=
/// make them).
fn layout(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["state", "run"] {
        let p = dir.join(sub);
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(DAEMON_ID), Some(DAEMON_ID)).unwrap();
    }
    // A log only root and adm may read, like /var/log/auth.log.
    let log = dir.join("a.log");
    std::fs::write(&log, "").unwrap();
    std::os::unix::fs::chown(&log, Some(0), Some(ADM)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    dir.join("run/nftjail.sock")
}

fn config(dir: &Path, backend: &str, extra: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("nftjail.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nbackend = \"{backend}\"\nsocket = \"{d}/run/nftjail.sock\"\n\
             state_dir = \"{d}/state\"\n{extra}\n\
             [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 2\n"
        ),
    )
    .unwrap();
    path
}

/// The `Field:` line of /proc/PID/status, trimmed.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(30), ok);
}

#[test]
fn without_root_and_with_net_admin_alone_bans_reach_the_kernel_and_heal() {
    require_root();
    let ns = Netns::new("priv-ban");
    let dir = tempfile::tempdir().unwrap();
    let socket = layout(dir.path());
    let cfg = config(dir.path(), "nft", "");
    let argv = as_daemon(&[ADM]);
    let mut cmd = ns.command(&argv[0]);
    cmd.args(&argv[1..]).arg("run").arg("--config").arg(&cfg);
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready:", Duration::from_secs(10));

    // `ip netns exec` and setpriv exec in place: the child is the daemon.
    let pid = daemon.child.id();
    assert_eq!(status_field(pid, "Name"), "nftjail");
    let uid = status_field(pid, "Uid");
    assert!(
        uid.split_whitespace().all(|u| u == DAEMON_ID.to_string()),
        "Uid: {uid}"
    );
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(pid, field), NET_ADMIN_ONLY, "{field}");
    }
    assert_eq!(
        status_field(pid, "NoNewPrivs"),
        "1",
        "set by the daemon itself"
    );

    // A ban read from a log only adm may read reaches the kernel.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("a.log"))
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, b"fail from 203.0.113.5\nfail from 203.0.113.5\n")
        })
        .unwrap();
    daemon.wait_for("ban: jail=a addr=203.0.113.5", Duration::from_secs(10));
    let set = || {
        ns.command("nft")
            .args(["list", "set", "inet", "nftjail", "a-v4"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert!(set().contains("203.0.113.5"), "{}", set());

    // Someone deletes the table: the daemon puts it back, ban included.
    ns.output("nft", &["delete", "table", "inet", "nftjail"]);
    wait_until("the table healed", || set().contains("203.0.113.5"));

    // Root still talks to it over the socket it owns.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.uid(), DAEMON_ID);
    let out = Command::new(BIN)
        .arg("--socket")
        .arg(&socket)
        .args(["banned"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("203.0.113.5"));
    assert!(
        !daemon.log().contains("state persistence degraded"),
        "the state store works as the daemon's user"
    );
    daemon.stop();
}

/// `nftjail status` as uid 65534 with `groups`: the exit code.
fn status_as_client(socket: &Path, groups: &[u32]) -> (i32, String) {
    let groups = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        format!("--groups={}", list.join(","))
    };
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", &groups, BIN, "--socket"])
        .arg(socket)
        .arg("status")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The group the socket is given: systemd-journal exists wherever systemd
/// does, and neither the test's client nor the daemon is in it by default.
fn socket_group() -> (String, u32) {
    let name = "systemd-journal";
    let line = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no group {name} in /etc/group"));
    let gid = line.split(':').nth(2).unwrap().parse().unwrap();
    (name.to_string(), gid)
}

#[test]
fn socket_group_works_without_cap_chown_for_members_only() {
    require_root();
    let (name, gid) = socket_group();
    let extra = format!("socket_group = \"{name}\"");

    // The daemon in the group (SupplementaryGroups= in the unit).
    let dir = tempfile::tempdir().unwrap();
    let socket = layout(dir.path());
    let cfg = config(dir.path(), "log", &extra);
    let argv = as_daemon(&[ADM, gid]);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).arg("run").arg("--config").arg(&cfg);
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready:", Duration::from_secs(10));
    assert_eq!(
        status_field(daemon.child.id(), "CapEff"),
        NET_ADMIN_ONLY,
        "no CAP_CHOWN"
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o777), (gid, 0o660));
    let (code, err) = status_as_client(&socket, &[gid]);
    assert_eq!(code, 0, "a member is served: {err}");
    let (code, err) = status_as_client(&socket, &[]);
    assert_eq!(code, 4, "a non-member is refused: {err}");
    daemon.stop();

    // The daemon not in the group, but the socket's directory is, setgid.
    let dir = tempfile::tempdir().unwrap();
    let socket = layout(dir.path());
    let run = dir.path().join("run");
    std::os::unix::fs::chown(&run, Some(DAEMON_ID), Some(gid)).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let cfg = config(dir.path(), "log", &extra);
    let argv = as_daemon(&[ADM]);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).arg("run").arg("--config").arg(&cfg);
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready:", Duration::from_secs(10));
    assert_eq!(std::fs::metadata(&socket).unwrap().gid(), gid);
    let (code, err) = status_as_client(&socket, &[gid]);
    assert_eq!(code, 0, "a member is served: {err}");
    let (code, err) = status_as_client(&socket, &[]);
    assert_eq!(code, 4, "a non-member is refused: {err}");
    daemon.stop();

    // Neither: the daemon says what to change instead of a bare EPERM.
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let cfg = config(dir.path(), "log", &extra);
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the daemon is not in that group") && err.contains("SupplementaryGroups="),
        "{err}"
    );
}
