#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! A file a jail reaches through two of its logpaths (a plain path and a
//! glob matching it) counts each line once for that jail. The real binary
//! with the dry-run backend; waits are generous bounds, never assertions on
//! time.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const WAIT: Duration = Duration::from_secs(30);

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_glob_matching_a_file_its_jail_names_does_not_count_its_lines_twice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mail = logs.join("mail.log");
    std::fs::write(&mail, "").unwrap();
    // j reads mail.log twice over: by name and through the glob. k reads
    // the glob only, m the name only: their bans of Y say that each reader
    // has passed every line, X's included.
    let text = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/s.sock\"\nstate_dir = \"{d}/state\"\n\
         [defaults]\nignoreself = false\nmaxretry = 3\n\
         [jail.j]\nfailregex = ['fail from <HOST>']\nlogpath = [\"{d}/logs/mail.log\", \"{d}/logs/*.log\"]\n\
         [jail.k]\nfailregex = ['fail from <HOST>']\nlogpath = \"{d}/logs/*.log\"\n\
         [jail.m]\nfailregex = ['fail from <HOST>']\nlogpath = \"{d}/logs/mail.log\"\n"
    );
    let config = dir.path().join("nftjail.toml");
    std::fs::write(&config, text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(&config);
    let d = Daemon::spawn(cmd);
    d.wait_for("ready:", WAIT);

    // Two failures of X: one short of maxretry, unless counted twice.
    append(
        &mail,
        "fail from 192.0.2.10\nfail from 192.0.2.10\n\
         fail from 192.0.2.20\nfail from 192.0.2.20\nfail from 192.0.2.20\n",
    );
    // Either reader may be first; both have passed every line once the
    // jails only one of them feeds have banned Y.
    for jail in ["k", "m", "j"] {
        while !d
            .log()
            .contains(&format!("ban: jail={jail} addr=192.0.2.20"))
        {
            d.wait_for("ban: jail=", WAIT);
        }
    }
    let log = d.log();
    assert!(
        !log.contains("ban: jail=j addr=192.0.2.10"),
        "two lines counted as four:\n{log}"
    );
    assert!(log.contains("not counted twice"), "{log}");
}
