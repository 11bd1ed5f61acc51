#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The daemon's log under systemd: when stderr is the journal stream
//! (`JOURNAL_STREAM` names stderr's device and inode), events go to the
//! journal socket in the native protocol, with priorities, and each ban and
//! unban carries JAIL=, ADDR=, FAILURES=, BANTIME= and REASON=. Otherwise
//! plain lines on stderr, as before.
//!
//! The journal socket is one bound here: the daemon runs in a network
//! namespace and in a mount namespace of its own where this test's
//! directory is bind-mounted on /run/systemd/journal (a tmpfs over /run
//! there, so the host's /run is left alone). Needs `unshare` and `mount`
//! (util-linux) and `stat` (coreutils); without them the test fails.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{require_root, Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

/// One journal entry in the native protocol: `KEY=value\n`, or `KEY\n`, a
/// little-endian u64 length, the value and `\n` for values with newlines.
fn parse_entry(mut data: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !data.is_empty() {
        let end = data
            .iter()
            .position(|&b| b == b'\n' || b == b'=')
            .unwrap_or(data.len());
        let key = String::from_utf8_lossy(&data[..end]).into_owned();
        if data.get(end) == Some(&b'=') {
            let rest = &data[end + 1..];
            let stop = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            fields.insert(key, String::from_utf8_lossy(&rest[..stop]).into_owned());
            data = rest.get(stop + 1..).unwrap_or(&[]);
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = &rest[8..8 + len];
            fields.insert(key, String::from_utf8_lossy(value).into_owned());
            data = rest.get(8 + len + 1..).unwrap_or(&[]);
        }
    }
    fields
}

struct Journal {
    rx: mpsc::Receiver<HashMap<String, String>>,
    seen: Vec<HashMap<String, String>>,
}

impl Journal {
    fn bind(path: &Path) -> Journal {
        let socket = UnixDatagram::bind(path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = socket.recv(&mut buf) {
                if n > 0 && tx.send(parse_entry(&buf[..n])).is_err() {
                    break;
                }
            }
        });
        Journal {
            rx,
            seen: Vec::new(),
        }
    }

    fn wait(&mut self, message_starts: &str) -> HashMap<String, String> {
        let timeout = Duration::from_secs(15);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if e.get("MESSAGE")
                        .is_some_and(|m| m.starts_with(message_starts))
                    {
                        return e;
                    }
                }
                Err(_) => panic!(
                    "no journal entry {message_starts:?} within {timeout:?}; got: {:#?}",
                    self.seen
                ),
            }
        }
    }
}

fn config(d: &Path) -> String {
    format!(
        "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 2\nbantime = \"10m\"\n",
        d = d.display()
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn cli(socket: &Path, args: &[&str]) {
    common::client_ok(socket, args);
}

fn assert_fields(entry: &HashMap<String, String>, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(
            entry.get(*k).map(String::as_str),
            Some(*v),
            "{k} in {entry:#?}"
        );
    }
}

#[test]
fn under_systemd_bans_reach_the_journal_with_their_fields() {
    require_root();
    for tool in ["/usr/bin/unshare", "/usr/bin/mount", "/usr/bin/stat"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `cargo xtask deps`"
        );
    }
    let ns = Netns::new("jlog");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.log"), "").unwrap();
    std::fs::write(d.join("nftjail.toml"), config(d)).unwrap();
    let jdir = d.join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let mut journal = Journal::bind(&jdir.join("socket"));

    // JOURNAL_STREAM names the daemon's own stderr, as systemd sets it.
    let script = format!(
        "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && \
         mount --bind {j} /run/systemd/journal && \
         export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && \
         exec {BIN} run --log-level info --config {d}/nftjail.toml",
        j = jdir.display(),
        d = d.display()
    );
    let mut cmd = ns.command("/usr/bin/unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    let mut daemon = Daemon::spawn(cmd);

    let ready = journal.wait("ready: a");
    assert_fields(
        &ready,
        &[
            ("PRIORITY", "5"),
            ("SYSLOG_IDENTIFIER", "nftjail"),
            ("JAILS", "1"),
        ],
    );

    append(
        &d.join("a.log"),
        "fail from 203.0.113.7\nfail from 203.0.113.7\n",
    );
    let ban = journal.wait("ban: jail=a addr=203.0.113.7");
    assert_fields(
        &ban,
        &[
            (
                "MESSAGE",
                "ban: jail=a addr=203.0.113.7 failures=2 bantime=10m",
            ),
            ("PRIORITY", "5"),
            ("JAIL", "a"),
            ("ADDR", "203.0.113.7"),
            ("FAILURES", "2"),
            ("BANTIME", "600"),
            ("REASON", "maxretry"),
        ],
    );

    let socket = d.join("nftjail.sock");
    cli(&socket, &["ban", "a", "198.51.100.4", "--for", "1h"]);
    let manual = journal.wait("ban: jail=a addr=198.51.100.4");
    assert_fields(
        &manual,
        &[
            ("JAIL", "a"),
            ("ADDR", "198.51.100.4"),
            ("BANTIME", "3600"),
            ("REASON", "manual"),
        ],
    );
    cli(&socket, &["unban", "a", "198.51.100.4"]);
    let unban = journal.wait("unban: jail=a addr=198.51.100.4");
    assert_fields(
        &unban,
        &[
            ("JAIL", "a"),
            ("ADDR", "198.51.100.4"),
            ("REASON", "manual"),
        ],
    );

    daemon.stop();
    // Everything went to the journal, nothing to stderr.
    assert!(
        !daemon.log().contains("ban: jail=a"),
        "ban lines on stderr too:\n{}",
        daemon.log()
    );
}

/// JOURNAL_STREAM inherited but stderr somewhere else (`2>file`, a pipe):
/// plain lines on stderr, as before, at the level asked for.
#[test]
fn a_journal_stream_that_is_not_stderr_keeps_plain_lines() {
    require_root();
    let ns = Netns::new("jplain");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.log"), "").unwrap();
    std::fs::write(d.join("nftjail.toml"), config(d)).unwrap();
    let mut cmd = ns.command(BIN);
    cmd.args(["run", "--log-level", "debug", "--config"])
        .arg(d.join("nftjail.toml"))
        .env("JOURNAL_STREAM", "1:1");
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready: a", Duration::from_secs(15));
    append(&d.join("a.log"), "fail from 203.0.113.8\n");
    // DEBUG is on: the counted failure is logged.
    daemon.wait_for("failure counted", Duration::from_secs(10));
    append(&d.join("a.log"), "fail from 203.0.113.8\n");
    let line = daemon.wait_for("ban: jail=a addr=203.0.113.8", Duration::from_secs(10));
    assert!(
        line.ends_with(" INFO ban: jail=a addr=203.0.113.8 failures=2 bantime=10m"),
        "{line}"
    );
    daemon.stop();
}
