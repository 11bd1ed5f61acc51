#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The journal source on real journal files: `systemd-journal-remote`
//! writes them from export-format text (and appends to them while the
//! daemon runs), the daemon reads them through sd-journal. Matching entries
//! ban, others do not, entries older than findtime at first start are
//! skipped, and a restart resumes at the saved cursor: the entries written
//! while it was down are read, none twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Daemon;
use nftjail::control::client::request;
use nftjail::control::protocol::{Reply, Request};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const WAIT: Duration = Duration::from_secs(30);

struct Journal {
    dir: PathBuf,
    n: u32,
}

impl Journal {
    /// Appends entries (each a list of fields) to `dir/remote.journal`.
    fn write(&mut self, entries: &[(SystemTime, Vec<(&str, String)>)]) {
        assert!(
            Path::new(REMOTE).exists(),
            "{REMOTE} is missing: run `cargo xtask deps` (package systemd-journal-remote)"
        );
        let mut text = String::new();
        for (time, fields) in entries {
            let usec = time
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_micros();
            text.push_str(&format!("__REALTIME_TIMESTAMP={usec}\n"));
            for (k, v) in fields {
                text.push_str(&format!("{k}={v}\n"));
            }
            text.push('\n');
        }
        self.n += 1;
        let input = self.dir.with_extension(format!("export{}", self.n));
        std::fs::write(&input, text).unwrap();
        let out = Command::new(REMOTE)
            .arg(format!(
                "--output={}",
                self.dir.join("remote.journal").display()
            ))
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemd-journal-remote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn ssh(unit: &str, ip: &str) -> Vec<(&'static str, String)> {
    vec![
        ("_SYSTEMD_UNIT", unit.to_string()),
        ("SYSLOG_IDENTIFIER", "sshd".into()),
        ("_PID", "4242".into()),
        ("_HOSTNAME", "mx1".into()),
        (
            "MESSAGE",
            format!("Failed password for root from {ip} port 50022 ssh2"),
        ),
    ]
}

fn sasl(ident: &str, unit: &str, ip: &str) -> Vec<(&'static str, String)> {
    vec![
        ("_SYSTEMD_UNIT", unit.to_string()),
        ("SYSLOG_IDENTIFIER", ident.to_string()),
        ("SYSLOG_PID", "77".into()),
        (
            "MESSAGE",
            format!("warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
        ),
    ]
}

fn start(dir: &Path) -> Daemon {
    write_config(dir, "_SYSTEMD_UNIT=ssh.service");
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(dir.join("nftjail.toml"));
    let d = Daemon::spawn(cmd);
    d.wait_for("ready:", WAIT);
    d
}

fn write_config(dir: &Path, ssh_match: &str) {
    let config = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [defaults]\nignoreself = false\nfindtime = \"10m\"\n\
         [journal]\ndir = \"{d}/journal\"\n\
         [jail.ssh]\nfailregex = ['sshd\\[4242\\]: Failed password for \\S+ from <HOST> port']\n\
         journal = [\"{ssh_match}\", \"_SYSTEMD_UNIT=sshd-alt.service\"]\nmaxretry = 2\n\
         [jail.smtp]\nfailregex = ['\\[77\\]: warning: \\S+\\[<HOST>\\]: SASL LOGIN authentication failed']\n\
         journal = [\"SYSLOG_IDENTIFIER=postfix/submission/smtpd _SYSTEMD_UNIT=postfix@-.service\"]\nmaxretry = 2\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nftjail.toml"), config).unwrap();
}

fn total_failed(dir: &Path, jail: &str) -> u64 {
    match request(
        &dir.join("nftjail.sock"),
        &Request::Status {
            jail: Some(jail.into()),
        },
    ) {
        Ok(Reply::JailStatus(s)) => s.total_failed,
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn journal_matches_ban_and_a_restart_resumes_at_the_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut j = Journal {
        dir: dir.join("journal"),
        n: 0,
    };
    std::fs::create_dir(&j.dir).unwrap();
    let now = SystemTime::now();
    let old = now - Duration::from_secs(2 * 3600);
    let recent = now - Duration::from_secs(60);
    j.write(&[
        // Older than findtime at first start: skipped.
        (old, ssh("ssh.service", "192.0.2.1")),
        (old, ssh("ssh.service", "192.0.2.1")),
        (old, ssh("ssh.service", "192.0.2.1")),
        // Recent: read at first start.
        (recent, ssh("ssh.service", "192.0.2.2")),
        (recent, ssh("sshd-alt.service", "192.0.2.2")),
    ]);
    let mut d = start(dir);
    d.wait_for_seen("ban: jail=ssh addr=192.0.2.2 failures=2", WAIT);

    // Written while the daemon runs.
    let t = SystemTime::now();
    j.write(&[
        // Another unit: the same text is not read.
        (t, ssh("cron.service", "192.0.2.3")),
        (t, ssh("cron.service", "192.0.2.3")),
        // AND within one match: the identifier alone is not enough.
        (
            t,
            sasl("postfix/submission/smtpd", "other.service", "192.0.2.4"),
        ),
        (
            t,
            sasl("postfix/submission/smtpd", "other.service", "192.0.2.4"),
        ),
        (
            t,
            sasl("postfix/submission/smtpd", "postfix@-.service", "192.0.2.5"),
        ),
        (
            t,
            sasl("postfix/submission/smtpd", "postfix@-.service", "192.0.2.5"),
        ),
        (t, ssh("ssh.service", "192.0.2.6")),
    ]);
    d.wait_for("ban: jail=smtp addr=192.0.2.5 failures=2", WAIT);
    // 2 (192.0.2.2) + 1 (192.0.2.6), read in order, so all are in by now
    // once the last one is.
    let deadline = std::time::Instant::now() + WAIT;
    while total_failed(dir, "ssh") < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(total_failed(dir, "ssh"), 3);
    d.stop();
    let log = d.log();
    for ip in ["192.0.2.1", "192.0.2.3", "192.0.2.4"] {
        assert!(!log.contains(&format!("addr={ip} ")), "{ip} banned:\n{log}");
    }
    assert!(
        dir.join("state").read_dir().unwrap().count() > 0,
        "no cursor saved"
    );

    // Written while it is down: read after the restart, and nothing read
    // before the restart is read again.
    let t = SystemTime::now();
    j.write(&[
        (t, ssh("ssh.service", "192.0.2.7")),
        (t, ssh("ssh.service", "192.0.2.8")),
    ]);
    let mut d = start(dir);
    j.write(&[(SystemTime::now(), ssh("ssh.service", "192.0.2.7"))]);
    d.wait_for_seen("ban: jail=ssh addr=192.0.2.7 failures=2", WAIT);
    // Exactly the three entries written since the stop: had the cursor been
    // lost, the five earlier ones within findtime would count too.
    assert_eq!(total_failed(dir, "ssh"), 3);
    assert_eq!(total_failed(dir, "smtp"), 0);
    match request(
        &dir.join("nftjail.sock"),
        &Request::Status {
            jail: Some("ssh".into()),
        },
    ) {
        Ok(Reply::JailStatus(s)) => assert_eq!(
            s.files,
            [
                "journal: _SYSTEMD_UNIT=ssh.service",
                "journal: _SYSTEMD_UNIT=sshd-alt.service"
            ]
        ),
        other => panic!("status: {other:?}"),
    }
    d.stop();
    let log = d.log();
    assert!(!log.contains("addr=192.0.2.2 "), "read twice:\n{log}");
    assert!(!log.contains("addr=192.0.2.5 "), "read twice:\n{log}");
}

/// A reload that changes a jail's match applies it to the entries written
/// after it, from where the reader was: nothing skipped, nothing read again.
#[test]
fn reload_changes_journal_matches_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut j = Journal {
        dir: dir.join("journal"),
        n: 0,
    };
    std::fs::create_dir(&j.dir).unwrap();
    j.write(&[(SystemTime::now(), ssh("cron.service", "192.0.2.20"))]);
    let mut d = start(dir);
    j.write(&[(SystemTime::now(), ssh("ssh.service", "192.0.2.21"))]);
    let deadline = std::time::Instant::now() + WAIT;
    while total_failed(dir, "ssh") < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(total_failed(dir, "ssh"), 1);
    write_config(dir, "_SYSTEMD_UNIT=cron.service");
    match request(&dir.join("nftjail.sock"), &Request::Reload) {
        Ok(_) => {}
        Err(e) => panic!("reload: {e}"),
    }
    let t = SystemTime::now();
    j.write(&[
        (t, ssh("ssh.service", "192.0.2.21")),
        (t, ssh("cron.service", "192.0.2.22")),
        (t, ssh("cron.service", "192.0.2.22")),
    ]);
    d.wait_for("ban: jail=ssh addr=192.0.2.22 failures=2", WAIT);
    // 192.0.2.21 once before (counted), once after (no longer matched);
    // 192.0.2.20 was before start and is never read again.
    assert_eq!(total_failed(dir, "ssh"), 3);
    d.stop();
    let log = d.log();
    assert!(!log.contains("addr=192.0.2.21 "), "{log}");
    assert!(!log.contains("addr=192.0.2.20 "), "{log}");
}

#[test]
fn a_journal_dir_that_does_not_exist_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [journal]\ndir = \"{d}/nope\"\n\
         [jail.ssh]\nfailregex = ['from <HOST>']\njournal = \"_SYSTEMD_UNIT=ssh.service\"\n",
        d = tmp.path().display()
    );
    let path = tmp.path().join("nftjail.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope: no such directory"), "{err}");
}
