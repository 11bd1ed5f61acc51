#![allow(clippy::unwrap_used)]
//! The file source on real files: start at end, files that appear later,
//! rename, delete and copytruncate rotation, partial and overlong lines,
//! bursts, stopping, and what must not be read at a log path (FIFOs,
//! directories, devices, symlinks out of the log's directory). Lines are
//! awaited with a generous timeout; nothing here asserts on time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nftjail::source::file::{FileFollower, FollowOptions, StartAt, Stopper};
use nftjail::source::Lines;

/// Long enough for a loaded CI machine; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

struct Running {
    rx: Receiver<String>,
    stop: Stopper,
    handle: Option<JoinHandle<()>>,
    logs: Logs,
}

impl Running {
    /// Opens the follower on its own thread (so what `new` logs is kept, and
    /// a `new` that blocks fails the test instead of hanging it) and follows.
    fn start(path: &Path, opts: FollowOptions) -> Running {
        let (tx, rx) = channel();
        let (opened_tx, opened_rx) = channel();
        let stop = Stopper::new().unwrap();
        let s = stop.clone();
        let logs = Logs::default();
        let writer = logs.clone();
        let path = path.to_path_buf();
        let handle = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let mut follower = FileFollower::new(path, opts).unwrap();
                let _ = opened_tx.send(());
                follower
                    .follow(
                        &s,
                        &mut Lines(|line: &str| {
                            let _ = tx.send(line.to_string());
                        }),
                    )
                    .unwrap();
            });
        });
        assert!(
            opened_rx.recv_timeout(PATIENCE).is_ok(),
            "FileFollower::new did not return"
        );
        Running {
            rx,
            stop,
            handle: Some(handle),
            logs,
        }
    }

    /// Checks that no line comes for a while.
    fn expect_none(&self) {
        if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected line {line:?}");
        }
    }

    /// Collects exactly `n` lines, then checks that no more come for a while
    /// (a duplicate would show up here).
    fn expect(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("got {} of {n} lines: {:?}", got.len(), tail(&got)),
            }
        }
        if let Ok(extra) = self.rx.recv_timeout(Duration::from_millis(200)) {
            panic!("unexpected extra line {extra:?} after {:?}", tail(&got));
        }
        got
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        // The thread drops its line sender when it ends. A follower stuck in
        // a syscall (a blocking open) is left behind, so the test fails
        // instead of hanging in the join.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    assert!(std::thread::panicking(), "follower did not stop");
                    return;
                }
            }
        }
        if let Some(h) = self.handle.take() {
            // Do not hide the test's own panic behind a second one.
            if h.join().is_err() && !std::thread::panicking() {
                panic!("follower thread panicked");
            }
        }
    }
}

fn tail(lines: &[String]) -> &[String] {
    &lines[lines.len().saturating_sub(5)..]
}

/// What the follower thread logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn append(path: &Path, text: impl AsRef<[u8]>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_ref()).unwrap();
}

fn log_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("mail.log")
}

/// An empty log in a fresh directory, already followed from its end.
fn following_empty_log() -> (tempfile::TempDir, PathBuf, Running) {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "");
    let r = Running::start(&log, FollowOptions::default());
    (dir, log, r)
}

fn starting_with(lines: &[String], prefix: char) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn starts_at_the_end_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "old 1\nold 2\n");
    let r = Running::start(&log, FollowOptions::default());
    append(&log, "new 1\n");
    assert_eq!(r.expect(1), ["new 1"]);
}

#[test]
fn starts_at_the_beginning_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    append(&log, "old 1\nold 2\n");
    let opts = FollowOptions {
        start: StartAt::Beginning,
        ..Default::default()
    };
    let r = Running::start(&log, opts);
    append(&log, "new 1\n");
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
    append(&log, "third\n");
    assert_eq!(r.expect(1), ["third"]);
}

#[test]
fn a_file_moved_into_place_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let r = Running::start(&log, FollowOptions::default());
    let staged = dir.path().join("staged");
    append(&staged, "m1\nm2\n");
    std::fs::rename(&staged, &log).unwrap();
    assert_eq!(r.expect(2), ["m1", "m2"]);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let e = FileFollower::new("/nonexistent/dir/mail.log", FollowOptions::default())
        .err()
        .unwrap();
    let text = e.to_string();
    assert!(text.contains("/nonexistent/dir/mail.log"), "{text}");
}

#[test]
fn rename_rotation_loses_and_repeats_nothing() {
    let (dir, log, r) = following_empty_log();
    append(&log, "a1\na2\n");
    assert_eq!(r.expect(2), ["a1", "a2"]);
    // logrotate: rename; the writer still appends to the old file for a while,
    // ending with an unfinished line, then a new file is created.
    let rotated = dir.path().join("mail.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, "a3\na4-unfinished");
    append(&log, "b1\nb2\n");
    let got = r.expect(4);
    // The two files may interleave; each in its own order.
    assert_eq!(starting_with(&got, 'a'), ["a3", "a4-unfinished"]);
    assert_eq!(starting_with(&got, 'b'), ["b1", "b2"]);
    // The old file keeps being drained after the switch.
    append(&rotated, "a5\n");
    append(&log, "b3\n");
    let got = r.expect(2);
    assert_eq!(starting_with(&got, 'a'), ["a5"]);
    assert_eq!(starting_with(&got, 'b'), ["b3"]);
}

#[test]
fn two_rotations_in_a_row_keep_every_generation() {
    let (dir, log, r) = following_empty_log();
    let (one, two) = (dir.path().join("mail.log.1"), dir.path().join("mail.log.2"));
    append(&log, "a1\n");
    assert_eq!(r.expect(1), ["a1"]);
    std::fs::rename(&log, &one).unwrap();
    append(&log, "b1\n");
    assert_eq!(r.expect(1), ["b1"]);
    append(&one, "a2\n");
    assert_eq!(r.expect(1), ["a2"]);
    std::fs::rename(&one, &two).unwrap();
    std::fs::rename(&log, &one).unwrap();
    append(&one, "b2\n");
    append(&log, "c1\n");
    let got = r.expect(2);
    assert_eq!(starting_with(&got, 'b'), ["b2"]);
    assert_eq!(starting_with(&got, 'c'), ["c1"]);
    append(&log, "c2\n");
    assert_eq!(r.expect(1), ["c2"]);
}

#[test]
fn a_rotated_file_moved_back_is_not_read_again() {
    let (dir, log, r) = following_empty_log();
    append(&log, "a1\na2\n");
    assert_eq!(r.expect(2), ["a1", "a2"]);
    let rotated = dir.path().join("mail.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&log, "b1\n");
    assert_eq!(r.expect(1), ["b1"]);
    std::fs::rename(&rotated, &log).unwrap();
    append(&log, "a3\n");
    assert_eq!(r.expect(1), ["a3"]);
}

#[test]
fn delete_and_recreate_is_followed() {
    let (_dir, log, r) = following_empty_log();
    // A writer that keeps its descriptor across the delete.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"x1\n").unwrap();
    assert_eq!(r.expect(1), ["x1"]);
    std::fs::remove_file(&log).unwrap();
    writer.write_all(b"x2\n").unwrap();
    append(&log, "y1\ny2\n");
    let got = r.expect(3);
    assert_eq!(starting_with(&got, 'x'), ["x2"]);
    assert_eq!(starting_with(&got, 'y'), ["y1", "y2"]);
    append(&log, "y3\n");
    assert_eq!(r.expect(1), ["y3"]);
}

#[test]
fn copytruncate_restarts_at_the_beginning_once() {
    let (dir, log, r) = following_empty_log();
    append(&log, "c1\nc2\nc3\n");
    assert_eq!(r.expect(3), ["c1", "c2", "c3"]);
    std::fs::copy(&log, dir.path().join("mail.log.1")).unwrap();
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
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
fn an_overlong_line_is_cut_with_one_warning_and_the_next_line_is_intact() {
    let (_dir, log, r) = following_empty_log();
    let long: String = (0..200 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    append(&log, format!("{long}\nafter\n"));
    let got = r.expect(2);
    assert_eq!(got[0], long[..64 * 1024]);
    assert_eq!(got[1], "after");
    let logs = r.logs.text();
    let warnings: Vec<_> = logs.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("cut"), "{logs}");
    assert!(warnings[0].contains(&*log.to_string_lossy()), "{logs}");
}

#[test]
fn binary_junk_and_crlf_never_lose_a_line() {
    let (_dir, log, r) = following_empty_log();
    append(&log, b"bad \xff\xfe\x00 bytes\r\nok\r\n");
    assert_eq!(r.expect(2), ["bad \u{fffd}\u{fffd}\u{0} bytes", "ok"]);
}

#[test]
fn a_burst_of_100k_lines_arrives_complete_and_in_order() {
    let (_dir, log, r) = following_empty_log();
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    // Many writes of odd sizes, so lines straddle reads.
    let mut text = Vec::new();
    for i in 0..100_000 {
        writeln!(text, "line {i}").unwrap();
    }
    for piece in text.chunks(7_777) {
        writer.write_all(piece).unwrap();
    }
    let got = r.expect(100_000);
    assert_eq!(got[99_999], "line 99999");
    for (i, l) in got.iter().enumerate() {
        assert_eq!(*l, format!("line {i}"));
    }
}

#[test]
fn stop_makes_follow_return() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing there: follow blocks in poll with nothing to do.
    let mut follower = FileFollower::new(log_in(&dir), FollowOptions::default()).unwrap();
    let stop = Stopper::new().unwrap();
    let (done_tx, done_rx) = channel();
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let result = follower.follow(&s, &mut Lines(|_: &str| {}));
        let _ = done_tx.send(result.is_ok());
    });
    assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err());
    stop.stop();
    assert_eq!(done_rx.recv_timeout(PATIENCE), Ok(true));
    handle.join().unwrap();
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_fifo_at_the_path_is_refused_and_a_file_replacing_it_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    mkfifo(&log);
    // A FIFO with no writer would block a plain open for reading forever.
    let r = Running::start(&log, FollowOptions::default());
    r.expect_none();
    let logs = r.logs.text();
    assert!(logs.contains("is a FIFO"), "{logs}");
    assert!(logs.contains(&*log.to_string_lossy()), "{logs}");
    std::fs::remove_file(&log).unwrap();
    append(&log, "after 1\nafter 2\n");
    assert_eq!(r.expect(2), ["after 1", "after 2"]);
    append(&log, "after 3\n");
    assert_eq!(r.expect(1), ["after 3"]);
    let logs = r.logs.text();
    assert_eq!(logs.matches("is a FIFO").count(), 1, "{logs}");
}

#[test]
fn a_fifo_replacing_a_followed_file_is_refused_and_the_old_file_kept() {
    let (_dir, log, r) = following_empty_log();
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"x1\n").unwrap();
    assert_eq!(r.expect(1), ["x1"]);
    std::fs::remove_file(&log).unwrap();
    mkfifo(&log);
    // The deleted file is still drained; the FIFO is not opened to read.
    writer.write_all(b"x2\n").unwrap();
    assert_eq!(r.expect(1), ["x2"]);
    let logs = r.logs.text();
    assert!(logs.contains("is a FIFO"), "{logs}");
    std::fs::remove_file(&log).unwrap();
    append(&log, "y1\n");
    assert_eq!(r.expect(1), ["y1"]);
}

#[test]
fn a_directory_at_the_path_is_refused_and_a_file_replacing_it_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    std::fs::create_dir(&log).unwrap();
    let r = Running::start(&log, FollowOptions::default());
    r.expect_none();
    let logs = r.logs.text();
    assert!(logs.contains("is a directory"), "{logs}");
    assert!(logs.contains(&*log.to_string_lossy()), "{logs}");
    std::fs::remove_dir(&log).unwrap();
    append(&log, "after\n");
    assert_eq!(r.expect(1), ["after"]);
}

#[test]
fn a_character_device_at_the_path_is_refused() {
    let r = Running::start(Path::new("/dev/null"), FollowOptions::default());
    r.expect_none();
    let logs = r.logs.text();
    assert!(logs.contains("is a character device"), "{logs}");
    assert!(logs.contains("/dev/null"), "{logs}");
}

#[test]
fn a_symlink_out_of_the_log_directory_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret");
    append(&secret, "secret 1\n");
    let log = log_in(&dir);
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    let opts = FollowOptions {
        start: StartAt::Beginning,
        ..Default::default()
    };
    let r = Running::start(&log, opts);
    append(&secret, "secret 2\n");
    r.expect_none();
    let logs = r.logs.text();
    let real = std::fs::canonicalize(&secret).unwrap();
    let inside = std::fs::canonicalize(dir.path()).unwrap();
    assert!(logs.contains("outside its directory"), "{logs}");
    assert!(logs.contains(&*real.to_string_lossy()), "{logs}");
    assert!(logs.contains(&*inside.to_string_lossy()), "{logs}");
    assert!(logs.contains(&*log.to_string_lossy()), "{logs}");
    // A regular file taking the name is followed.
    std::fs::remove_file(&log).unwrap();
    append(&log, "mine\n");
    assert_eq!(r.expect(1), ["mine"]);
}

#[test]
fn a_symlink_within_the_log_directory_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let real = dir.path().join("app").join("real.log");
    append(&real, "r1\n");
    let log = log_in(&dir);
    std::os::unix::fs::symlink("app/real.log", &log).unwrap();
    let opts = FollowOptions {
        start: StartAt::Beginning,
        ..Default::default()
    };
    let r = Running::start(&log, opts);
    assert_eq!(r.expect(1), ["r1"]);
    append(&real, "r2\n");
    assert_eq!(r.expect(1), ["r2"]);
    assert!(!r.logs.text().contains("WARN"), "{}", r.logs.text());
}
