#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Failure counts survive a crash: a read position is only stored together
//! with the counts that include the lines before it, so after a `kill -9`
//! the restart reads again exactly the lines the stored counts lack: none
//! is lost, none counted twice. And files matched by a glob keep their
//! read positions like single files: lines written while the daemon was
//! stopped are read at the next start. A real daemon with the nft backend
//! in throwaway network namespaces; the store is read with SQLite directly.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{kernel_set, Daemon, Netns, Workdir};

/// Generous: only a daemon that never gets there takes this long.
const LIMIT: Duration = Duration::from_secs(30);

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup(Workdir::new(
            &["a.log", "g/one.log"],
            "[jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\n\
             maxretry = 3\nfindtime = \"1h\"\nbantime = \"1h\"\n\
             [jail.g]\nfailregex = ['^bad from <HOST>$']\nlogpath = \"{d}/g/*.log\"\n\
             maxretry = 2\nfindtime = \"1h\"\nbantime = \"1h\"\n",
        ))
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, LIMIT)
    }

    fn status(&self, jail: &str) -> String {
        self.cli(&["status", jail])
    }

    /// The stored read position (byte offset) of a log, if any.
    fn stored_offset(&self, log: &str) -> Option<u64> {
        let db = rusqlite::Connection::open(self.path("state/nftjail.db")).ok()?;
        let source = self.path(log).display().to_string();
        db.query_row(
            "SELECT offset FROM positions WHERE source = ?1",
            [source],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .map(|o| o as u64)
    }

    /// Waits until the store holds a read position at the end of `log`:
    /// the daemon read all of it, and stored how far.
    fn wait_stored_to_end(&self, log: &str) {
        let len = std::fs::metadata(self.path(log)).unwrap().len();
        wait_until(&format!("{log} stored as read to {len}"), || {
            self.stored_offset(log) == Some(len)
        });
    }
}

fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    common::wait_until(what, LIMIT, ok);
}

fn addr(i: usize) -> String {
    format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250)
}

fn failures(addrs: impl Iterator<Item = usize>, n: usize) -> String {
    let mut text = String::new();
    for i in addrs {
        for _ in 0..n {
            text.push_str(&format!("fail from {}\n", addr(i)));
        }
    }
    text
}

fn kill_9(d: &mut Daemon) {
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

const ADDRS: usize = 200;

/// The hardening issue's scenario: addresses with two failures of three
/// each, the daemon killed once it stored how far it read, one more
/// failure each after the restart: every one is banned.
#[test]
fn counts_survive_a_kill_9() {
    let s = Setup::new();
    let ns = Netns::new("cc-kill");
    let mut d = s.start(&ns);
    s.append("a.log", &failures(0..ADDRS, 2));
    wait_until("every address counted", || {
        s.status("a")
            .contains(&format!("Currently failed:\t{ADDRS}"))
    });
    s.wait_stored_to_end("a.log");
    kill_9(&mut d);

    let d = s.start(&ns);
    s.append("a.log", &failures(0..ADDRS, 1));
    wait_until("every address banned", || {
        kernel_set(&ns, "a-v4").len() == ADDRS
    });
    let want: BTreeSet<String> = (0..ADDRS).map(addr).collect();
    assert_eq!(kernel_set(&ns, "a-v4"), want, "{}", d.log());
}

/// What the restart reads again after a `kill -9` is exactly what the
/// stored counts lack: two failures stay two (read twice they would be
/// four, and ban), and a third bans.
#[test]
fn a_line_is_counted_once_across_a_kill_9() {
    let s = Setup::new();
    let ns = Netns::new("cc-once");
    let mut d = s.start(&ns);
    s.append("a.log", &failures(0..ADDRS, 2));
    s.wait_stored_to_end("a.log");
    kill_9(&mut d);

    let d = s.start(&ns);
    // A line the restart must read, and the store must then cover: once
    // its position is stored, every line before it was counted.
    s.append("a.log", "fail from 192.0.2.99\n");
    s.wait_stored_to_end("a.log");
    let status = s.status("a");
    assert!(
        status.contains(&format!("Currently failed:\t{}", ADDRS + 1)),
        "the two failures of each address carried over, no ban yet: {status}\n{}",
        d.log()
    );
    assert!(
        kernel_set(&ns, "a-v4").is_empty(),
        "no address had three failures: {:?}",
        kernel_set(&ns, "a-v4")
    );

    // The third failure of half of them bans exactly that half.
    s.append("a.log", &failures(0..ADDRS / 2, 1));
    wait_until("half the addresses banned", || {
        kernel_set(&ns, "a-v4").len() >= ADDRS / 2
    });
    s.append("a.log", "fail from 192.0.2.100\n");
    s.wait_stored_to_end("a.log");
    let want: BTreeSet<String> = (0..ADDRS / 2).map(addr).collect();
    assert_eq!(kernel_set(&ns, "a-v4"), want, "{}", d.log());
}

/// A glob's files keep read positions like single files: what was
/// appended while the daemon was stopped is read at the next start, and
/// a file that appeared meanwhile is read from its start.
#[test]
fn a_glob_reads_what_was_written_while_stopped() {
    let s = Setup::new();
    let ns = Netns::new("cc-glob");
    let mut d = s.start(&ns);
    // Read and stored before the stop: not read again after it.
    s.append("g/one.log", "bad from 203.0.113.1\n");
    wait_until("the first failure counted", || {
        s.status("g").contains("Total failed:\t1")
    });
    d.stop();

    s.append(
        "g/one.log",
        "bad from 203.0.113.1\nbad from 203.0.113.2\nbad from 203.0.113.2\n",
    );
    s.append(
        "g/two.log",
        "bad from 203.0.113.3\nbad from 203.0.113.3\nbad from 203.0.113.4\n",
    );
    let d = s.start(&ns);
    let want = BTreeSet::from([
        "203.0.113.1".to_string(),
        "203.0.113.2".into(),
        "203.0.113.3".into(),
    ]);
    wait_until("the failures written while stopped banned", || {
        kernel_set(&ns, "g-v4").len() >= want.len()
    });
    s.wait_stored_to_end("g/two.log");
    s.wait_stored_to_end("g/one.log");
    assert_eq!(kernel_set(&ns, "g-v4"), want, "{}", d.log());
    let status = s.status("g");
    assert!(
        status.contains("Total failed:\t6"),
        "each read once: {status}"
    );
    assert!(
        status.contains("Currently failed:\t1"),
        ".4 alone: {status}"
    );
}
