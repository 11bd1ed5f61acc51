#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! `nftjail check` refuses what `run` would refuse, and what would make a
//! jail read nothing or count a line twice, naming the config it was given
//! and file:line:col; it warns about what it accepts but was likely not
//! meant. The real binary, as an admin runs it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

/// A config in `dir` with one jail `j` reading `logpath` (a TOML value).
fn config(dir: &Path, logpath: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/s.sock\"\nstate_dir = \"{d}/state\"\n\
         [jail.j]\nfailregex = ['fail from <HOST>']\nlogpath = {logpath}\n{extra}",
        d = dir.display()
    );
    let path = dir.join("nftjail.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `nftjail check -c CONFIG`: success, stdout, stderr. Bounded, so a check
/// that blocks fails the test instead of hanging it.
fn check(config: &Path) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nftjail check {} did not finish", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(config: &Path) -> String {
    let (ok, out, err) = check(config);
    assert!(!ok, "accepted:\n{out}{err}");
    err
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Column of the first character after `before` on its line.
fn col(before: &str) -> usize {
    before.chars().count() + 1
}

#[test]
fn one_file_twice_in_a_jail_is_refused_naming_both_entries_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("mail.log"), "").unwrap();
    std::os::unix::fs::symlink("mail.log", dir.path().join("alias.log")).unwrap();

    // Through a symlink.
    let list = format!("[\"{d}/mail.log\", \"{d}/alias.log\"]");
    let path = config(dir.path(), &list, "");
    let err = refused(&path);
    let at = format!(
        "{}:7:{}: jail.j.logpath: {d}/alias.log is the same file as {d}/mail.log",
        path.display(),
        col(&format!("logpath = [\"{d}/mail.log\", "))
    );
    assert!(err.contains(&at), "{err}\nwanted: {at}");
    assert!(err.contains("counted twice"), "{err}");

    // Another spelling of the same path.
    let list = format!("[\"{d}/mail.log\", \"{d}/./mail.log\"]");
    let err = refused(&config(dir.path(), &list, ""));
    assert!(
        err.contains(&format!("{d}/./mail.log is the same file as {d}/mail.log")),
        "{err}"
    );

    // The same file read by two jails is fine: each counts it once.
    let other =
        format!("[jail.k]\nfailregex = ['fail from <HOST>']\nlogpath = \"{d}/alias.log\"\n");
    let path = config(dir.path(), &format!("\"{d}/mail.log\""), &other);
    let (ok, out, err) = check(&path);
    assert!(ok, "{out}{err}");
}

#[test]
fn a_fifo_a_missing_directory_and_an_unreadable_log_are_refused_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let at = |path: &Path| {
        format!(
            "{}:7:{}: jail.j.logpath: ",
            path.display(),
            col("logpath = ")
        )
    };

    let fifo = dir.path().join("fifo.log");
    mkfifo(&fifo);
    let path = config(dir.path(), &format!("\"{d}/fifo.log\""), "");
    let err = refused(&path);
    assert!(
        err.contains(&format!(
            "{}{d}/fifo.log is a FIFO, not a regular file",
            at(&path)
        )),
        "{err}"
    );

    let path = config(dir.path(), &format!("\"{d}/nodir/x.log\""), "");
    let err = refused(&path);
    assert!(
        err.contains(&format!(
            "{}{d}/nodir/x.log: its directory {d}/nodir does not exist",
            at(&path)
        )),
        "{err}"
    );
    // A glob in a missing directory, too: run refuses it.
    let path = config(dir.path(), &format!("\"{d}/nodir/*.log\""), "");
    let err = refused(&path);
    assert!(err.contains("does not exist"), "{err}");

    // A symlink loop: root cannot read it either.
    std::os::unix::fs::symlink("loop.log", dir.path().join("loop.log")).unwrap();
    let path = config(dir.path(), &format!("\"{d}/loop.log\""), "");
    let err = refused(&path);
    assert!(
        err.contains(&format!("{}{d}/loop.log: cannot be read", at(&path))),
        "{err}"
    );

    // A file not there yet is waited for, by run and by check.
    let path = config(dir.path(), &format!("\"{d}/later.log\""), "");
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{}: OK", path.display())), "{out}");
}

#[test]
fn a_config_that_is_missing_or_not_a_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let err = refused(&missing);
    assert!(
        err.contains(&format!("cannot read config {}", missing.display())),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the reason is said once: {err}"
    );

    // A FIFO would hold the reader forever.
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let err = refused(&fifo);
    assert!(
        err.contains(&format!("refusing config {}: it is a FIFO", fifo.display())),
        "{err}"
    );
    let err = refused(dir.path());
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_socket_path_too_long_to_bind_is_refused_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/run/{}.sock", "x".repeat(120));
    let path = config(
        dir.path(),
        "\"/var/log/none.log\"",
        &format!("[syslog]\nsocket = \"{long}\"\n"),
    );
    let err = refused(&path);
    assert!(
        err.contains(&format!(
            "{}:9:10: syslog.socket: {} bytes long",
            path.display(),
            long.len()
        )),
        "{err}"
    );
}

#[test]
fn an_ignoreip_network_with_host_bits_is_accepted_with_a_warning_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        "\"/var/log/none.log\"",
        "ignoreip = \"192.0.2.1 1.2.3.4/8\"\n",
    );
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    assert!(out.contains("OK"), "{out}");
    let at = format!(
        "warning: {}:8:{}: jail.j.ignoreip: \"1.2.3.4/8\" has host bits set and is read as 1.0.0.0/8",
        path.display(),
        col("ignoreip = \"192.0.2.1 ")
    );
    assert!(err.contains(&at), "{err}\nwanted: {at}");
    // Written as a network, no warning.
    let path = config(
        dir.path(),
        "\"/var/log/none.log\"",
        "ignoreip = \"1.0.0.0/8\"\n",
    );
    let (ok, _, err) = check(&path);
    assert!(ok && !err.contains("warning"), "{err}");
}
