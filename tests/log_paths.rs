#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! What sits at a `logpath` with the real binary and the dry-run backend: a
//! FIFO (at a plain path and matching a glob) must neither keep the daemon
//! from getting ready nor from stopping, and a regular file taking the
//! FIFO's name is followed. Waits are generous bounds, never assertions on
//! time.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const WAIT: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let text = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [defaults]\nignoreself = false\n{body}",
        d = dir.display()
    );
    let path = dir.join("nftjail.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

#[test]
fn a_fifo_logpath_neither_blocks_start_nor_stop_and_a_file_replacing_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let fifo = logs.join("app.log");
    mkfifo(&fifo);
    // A FIFO matching a glob, beside it.
    mkfifo(&logs.join("b-error.log"));
    let config = write_config(
        dir.path(),
        &format!(
            "[jail.j]\nfailregex = ['fail from <HOST>']\nlogpath = [\"{l}/app.log\", \"{l}/*-error.log\"]\nmaxretry = 2\n",
            l = logs.display()
        ),
    );
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(config);
    let mut d = Daemon::spawn(cmd);
    d.wait_for("ready:", WAIT);
    assert!(d.log().contains("is a FIFO"), "{}", d.log());

    std::fs::remove_file(&fifo).unwrap();
    append(&fifo, b"fail from 192.0.2.7\nfail from 192.0.2.7\n");
    d.wait_for("ban: jail=j addr=192.0.2.7", WAIT);

    // SAFETY: kill with a valid pid of our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop on SIGTERM; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; log:\n{}", d.log());
}
