#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The control socket stays usable while many peers connect and then say
//! nothing, or trickle a request a byte at a time to keep their connection:
//! `status` is answered ahead of them, and each of them is closed once its
//! connection's time budget is spent.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Daemon;
use nftjail::control::client::request;
use nftjail::control::protocol::{encode, Reply, Request};
use nftjail::control::server::BUDGET;

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const IDLE: usize = 1000;
const TRICKLING: usize = 600;
/// Far more than any scheduling delay, and far less than the time `status`
/// takes when it queues behind the peers (a budget per batch of them).
const MARGIN: Duration = Duration::from_secs(5);

/// The daemon, with at most `files` descriptors when given.
fn start(dir: &Path, files: Option<u32>) -> Daemon {
    let d = dir.display();
    std::fs::write(dir.join("a.log"), "").unwrap();
    std::fs::write(
        dir.join("nftjail.toml"),
        format!(
            "[daemon]\nbackend = \"log\"\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
             [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\n"
        ),
    )
    .unwrap();
    let mut cmd = match files {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.arg("run").arg("--config").arg(dir.join("nftjail.toml"));
    let daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready:", Duration::from_secs(10));
    daemon
}

/// `status` in a thread, so a daemon that never answers fails the test
/// instead of hanging it.
fn status(socket: &Path, within: Duration) -> Reply {
    let (tx, rx) = mpsc::channel();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(request(&socket, &Request::Status { jail: None }));
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("`status` got no answer within {within:?}"))
        .unwrap()
}

/// True once the daemon has closed `s` (end of file or reset), false if it
/// is still open when `by` comes.
fn closed_by(s: &mut UnixStream, by: Instant) -> bool {
    let mut byte = [0u8; 64];
    loop {
        let left = by.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut byte) {
            Ok(0) => return true,
            // An answer the peer never asked to read: keep draining.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn status_is_answered_ahead_of_idle_and_trickling_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path(), None);
    let socket = dir.path().join("nftjail.sock");

    let mut idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let idle_connected = Instant::now();

    // Each sends a valid `version` request, one byte every 100 ms, again and
    // again, and never reads the answers: a per-frame timeout never fires.
    let body = encode(Request::Version);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let trickling: Vec<UnixStream> = (0..TRICKLING)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let trickling_connected = Instant::now();
    let trickle_until = trickling_connected + BUDGET + MARGIN;
    let trickler = std::thread::spawn(move || {
        let mut open: Vec<Option<UnixStream>> = trickling.into_iter().map(Some).collect();
        let mut sent = 0;
        while Instant::now() < trickle_until && open.iter().any(Option::is_some) {
            for slot in &mut open {
                if let Some(s) = slot {
                    if s.write_all(&frame[sent % frame.len()..][..1]).is_err() {
                        *slot = None;
                    }
                }
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        open.iter().filter(|s| s.is_some()).count()
    });

    let asked = Instant::now();
    let reply = status(&socket, BUDGET + MARGIN);
    eprintln!("status answered in {:?}", asked.elapsed());
    assert!(
        matches!(reply, Reply::Jails { ref jails, .. } if jails == &["a"]),
        "{reply:?}"
    );

    let by = idle_connected + BUDGET + MARGIN;
    let still_open = idle
        .iter_mut()
        .map(|s| closed_by(s, by))
        .filter(|c| !c)
        .count();
    assert_eq!(still_open, 0, "idle peers still open after the budget");
    let still_trickling = trickler.join().unwrap();
    assert_eq!(
        still_trickling, 0,
        "trickling peers still open after the budget"
    );

    // The daemon is unharmed and still answers.
    assert!(matches!(
        status(&socket, BUDGET + MARGIN),
        Reply::Jails { .. }
    ));
    daemon.stop();
}

#[test]
fn status_is_answered_when_idle_peers_use_up_the_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    // Far fewer descriptors than slots: accept fails before the slots fill.
    let mut daemon = start(dir.path(), Some(128));
    let socket = dir.path().join("nftjail.sock");
    let mut idle: Vec<UnixStream> = (0..300)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let connected = Instant::now();

    let asked = Instant::now();
    let reply = status(&socket, BUDGET + MARGIN);
    eprintln!("status answered in {:?}", asked.elapsed());
    assert!(matches!(reply, Reply::Jails { .. }), "{reply:?}");

    // Each idle peer is closed, pushed out or at the end of its budget.
    let by = connected + 2 * BUDGET + MARGIN;
    let still_open = idle
        .iter_mut()
        .map(|s| closed_by(s, by))
        .filter(|c| !c)
        .count();
    assert_eq!(still_open, 0, "idle peers still open");
    daemon.stop();
}
