#![allow(clippy::unwrap_used)]
//! The file source on real files: start at end, files that appear later,
//! rename and copytruncate rotation, partial and overlong lines, bursts.
//! Lines are awaited with a generous timeout; nothing here asserts on time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nftjail::source::file::{FileFollower, FollowOptions, StartAt, Stopper};

struct Running {
    rx: Receiver<String>,
    stop: Stopper,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    fn start(path: &Path, opts: FollowOptions) -> Running {
        let (tx, rx) = channel();
        let stop = Stopper::new().unwrap();
        let mut follower = FileFollower::new(path, opts).unwrap();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            follower
                .follow(&s, |line| {
                    let _ = tx.send(line.to_string());
                })
                .unwrap();
        });
        Running {
            rx,
            stop,
            handle: Some(handle),
        }
    }

    /// Collects exactly `n` lines (fails after 10 s), then checks no more come.
    fn expect(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("got {} of {n} lines: {got:?}", got.len()),
            }
        }
        if let Ok(extra) = self.rx.recv_timeout(Duration::from_millis(200)) {
            panic!("unexpected extra line {extra:?} after {got:?}");
        }
        got
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// An empty log in a fresh directory, already followed from its end.
fn following_empty_log() -> (tempfile::TempDir, PathBuf, Running) {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "");
    let r = Running::start(&log, FollowOptions::default());
    (dir, log, r)
}

fn log_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("mail.log")
}

#[test]
fn starts_at_the_end_by_default_and_at_the_beginning_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "old 1\nold 2\n");
    let r = Running::start(&log, FollowOptions::default());
    append(&log, "new 1\n");
    assert_eq!(r.expect(1), ["new 1"]);
    drop(r);
    let r = Running::start(
        &log,
        FollowOptions {
            start: StartAt::Beginning,
            ..Default::default()
        },
    );
    assert_eq!(r.expect(3), ["old 1", "old 2", "new 1"]);
}

#[test]
fn an_unfinished_last_line_at_start_is_not_taken_as_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "old\nhalf of a li");
    let r = Running::start(&log, FollowOptions::default());
    append(&log, "ne\nnew\n");
    assert_eq!(r.expect(1), ["new"]);
}

#[test]
fn waits_for_a_file_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let r = Running::start(&log, FollowOptions::default());
    append(&log, "first\nsecond\n");
    assert_eq!(r.expect(2), ["first", "second"]);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let e = FileFollower::new("/nonexistent/dir/mail.log", FollowOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
}

#[test]
fn rename_rotation_loses_and_repeats_nothing() {
    let (dir, log, r) = following_empty_log();
    append(&log, "a1\na2\n");
    assert_eq!(r.expect(2), ["a1", "a2"]);
    // logrotate: rename; the writer still appends to the old file for a while,
    // including an unfinished line, then a new file is created.
    let rotated = dir.path().join("mail.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, "a3\na4-unfinished");
    append(&log, "b1\n");
    let mut got = r.expect(3);
    // Lines of each file in order; the two files may interleave.
    let old: Vec<_> = got.iter().filter(|l| l.starts_with('a')).cloned().collect();
    assert_eq!(old, ["a3", "a4-unfinished"]);
    got.retain(|l| l.starts_with('b'));
    assert_eq!(got, ["b1"]);
    // The old file keeps being drained after the switch.
    append(&rotated, "a5\n");
    append(&log, "b2\n");
    let mut got = r.expect(2);
    got.sort();
    assert_eq!(got, ["a5", "b2"]);
}

#[test]
fn delete_and_recreate_is_followed() {
    let (_dir, log, r) = following_empty_log();
    append(&log, "x1\n");
    assert_eq!(r.expect(1), ["x1"]);
    std::fs::remove_file(&log).unwrap();
    append(&log, "y1\ny2\n");
    assert_eq!(r.expect(2), ["y1", "y2"]);
}

#[test]
fn copytruncate_restarts_at_the_beginning_once() {
    let (dir, log, r) = following_empty_log();
    append(&log, "c1\nc2\nc3\n");
    assert_eq!(r.expect(3), ["c1", "c2", "c3"]);
    std::fs::copy(&log, dir.path().join("mail.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, "d1\n");
    assert_eq!(r.expect(1), ["d1"]);
    append(&log, "d2\n");
    assert_eq!(r.expect(1), ["d2"]);
}

#[test]
fn a_partial_line_is_held_until_its_newline() {
    let (_dir, log, r) = following_empty_log();
    append(&log, "Mar  5 16:01:34 mx1 postfix/sub");
    assert!(
        r.rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "partial line delivered"
    );
    append(&log, "mission/smtpd[1]: done\n");
    assert_eq!(
        r.expect(1),
        ["Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: done"]
    );
}

#[test]
fn an_overlong_line_is_cut_and_the_next_line_is_intact() {
    let (_dir, log, r) = following_empty_log();
    let long = "x".repeat(200 * 1024);
    append(&log, &format!("{long}\nafter\n"));
    let got = r.expect(2);
    assert_eq!(got[0].len(), 64 * 1024);
    assert_eq!(got[1], "after");
}

#[test]
fn binary_junk_and_crlf_never_lose_a_line() {
    let (_dir, log, r) = following_empty_log();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"bad \xff\xfe\x00 bytes\r\nok\r\n").unwrap();
    assert_eq!(r.expect(2), ["bad \u{fffd}\u{fffd}\u{0} bytes", "ok"]);
}

#[test]
fn a_burst_of_100k_lines_arrives_complete_and_in_order() {
    let (_dir, log, r) = following_empty_log();
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!("line {i}\n"));
    }
    append(&log, &text);
    let got = r.expect(100_000);
    assert_eq!(got[0], "line 0");
    assert_eq!(got[99_999], "line 99999");
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, l)| *l == format!("line {i}")));
}
