#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! `nftjail run` as a systemd `Type=notify` service, against a real
//! NOTIFY_SOCKET bound here (the daemon runs in a network namespace like the
//! other daemon tests): READY=1 once the ruleset is in the kernel, STATUS=
//! with the jails and the active bans, RELOADING=1 with MONOTONIC_USEC= and
//! READY=1 around a SIGHUP, WATCHDOG=1 over and over while the pipeline
//! answers and none while the enforcer is stalled, STOPPING=1 at SIGTERM.
//!
//! The stall is the debug-build test hook of `src/daemon/service.rs`:
//! with NFTJAIL_TEST_STALL_SECS set, SIGUSR2 makes the enforcer thread sleep.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{require_root, Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
/// The watchdog interval the daemon is given: pings every half of it.
const WATCHDOG: Duration = Duration::from_secs(1);
const STALL_SECS: u64 = 6;

/// The datagrams the daemon sends to its NOTIFY_SOCKET, as they come.
struct Notifications {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        Notifications {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram `pick` accepts; panics with what came instead.
    fn wait(&mut self, what: &str, timeout: Duration, pick: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    self.seen.push(m.clone());
                    if pick(&m) {
                        return m;
                    }
                }
                Err(_) => panic!("no {what} within {timeout:?}; got: {:?}", self.seen),
            }
        }
    }

    /// Everything that comes within `window`.
    fn during(&mut self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Ok(m) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(m.clone());
            got.push(m);
        }
        got
    }
}

fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().find_map(|l| l.strip_prefix(key))
}

#[test]
fn notify_protocol_and_watchdog_from_the_pipeline_heartbeat() {
    require_root();
    let ns = Netns::new("svc");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.log"), "").unwrap();
    std::fs::write(d.join("b.log"), "").unwrap();
    std::fs::write(
        d.join("nftjail.toml"),
        format!(
            "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
             [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 2\n\
             [jail.b]\nfailregex = ['^bad from <HOST>$']\nlogpath = \"{d}/b.log\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    let notify_path = d.join("notify.sock");
    let mut notes = Notifications::bind(&notify_path);

    let mut cmd = ns.command(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(d.join("nftjail.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .env("NFTJAIL_TEST_STALL_SECS", STALL_SECS.to_string());
    let mut daemon = Daemon::spawn(cmd);
    let pid = daemon.child.id() as i32;

    // READY=1 only once our table is in the kernel.
    notes.wait("READY=1", Duration::from_secs(15), |m| has(m, "READY=1"));
    let table = ns.output("nft", &["list", "table", "inet", "nftjail"]);
    assert!(table.contains("set a"), "{table}");
    daemon.wait_for("ready:", Duration::from_secs(5));

    let status = notes.wait("STATUS=", Duration::from_secs(10), |m| {
        field(m, "STATUS=").is_some()
    });
    assert_eq!(
        field(&status, "STATUS="),
        Some("2 jails: a, b; 0 active bans"),
        "{status}"
    );

    // A ban shows in STATUS= without asking.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("a.log"))
        .unwrap();
    log.write_all(b"fail from 203.0.113.9\nfail from 203.0.113.9\n")
        .unwrap();
    daemon.wait_for("ban: jail=a addr=203.0.113.9", Duration::from_secs(10));
    notes.wait("STATUS= with the ban", Duration::from_secs(15), |m| {
        field(m, "STATUS=") == Some("2 jails: a, b; 1 active ban")
    });

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloading = notes.wait("RELOADING=1", Duration::from_secs(10), |m| {
        has(m, "RELOADING=1")
    });
    let usec: u64 = field(&reloading, "MONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC= beside RELOADING=1: {reloading:?}"));
    assert!(usec > 0);
    notes.wait("READY=1 after the reload", Duration::from_secs(10), |m| {
        has(m, "READY=1")
    });
    daemon.wait_for("reloaded: a, b", Duration::from_secs(5));

    // The watchdog is fed over and over while the pipeline answers.
    for _ in 0..3 {
        notes.wait("WATCHDOG=1", Duration::from_secs(5), |m| {
            has(m, "WATCHDOG=1")
        });
    }

    // A stalled enforcer stops the pings: at most one already on its way
    // when the stall began, then none while it lasts.
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    daemon.wait_for("test hook: the enforcer stalls", Duration::from_secs(5));
    let during: Vec<String> = notes
        .during(Duration::from_secs(STALL_SECS / 2))
        .into_iter()
        .filter(|m| has(m, "WATCHDOG=1"))
        .collect();
    assert!(
        during.len() <= 1,
        "watchdog pings went on while the enforcer was stalled: {during:?}"
    );
    daemon.wait_for("the enforcer does not answer", Duration::from_secs(5));
    // Once it answers again, so do the pings.
    notes.wait(
        "WATCHDOG=1 after the stall",
        Duration::from_secs(STALL_SECS + 10),
        |m| has(m, "WATCHDOG=1"),
    );
    daemon.wait_for("watchdog pings resume", Duration::from_secs(5));

    // SIGTERM: STOPPING=1, and a clean exit.
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    notes.wait("STOPPING=1", Duration::from_secs(10), |m| {
        has(m, "STOPPING=1")
    });
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", daemon.log());
}

/// Without NOTIFY_SOCKET nothing is sent and nothing fails: the daemon runs
/// and stops as it always did.
#[test]
fn without_notify_socket_the_daemon_runs_as_before() {
    require_root();
    let ns = Netns::new("svc-plain");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.log"), "").unwrap();
    std::fs::write(
        d.join("nftjail.toml"),
        format!(
            "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
             [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    let mut cmd = ns.command(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(d.join("nftjail.toml"))
        .env_remove("NOTIFY_SOCKET")
        .env("WATCHDOG_USEC", "1000000");
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready: a", Duration::from_secs(15));
    // At once after "ready": a reload then must reload, not kill.
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
    daemon.wait_for("reloaded: a", Duration::from_secs(10));
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", daemon.log());
}
