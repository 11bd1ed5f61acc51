#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]
//! `nftjail import-fail2ban`: a copy of the system's fail2ban configuration
//! (Debian package `fail2ban`, read at test time, never committed) with a
//! jail.local of our own, imported by the real binary and checked by
//! `nftjail check` and by the config loader.

use std::path::{Path, PathBuf};
use std::process::Command;

use nftjail::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const SYSTEM: &str = "/etc/fail2ban";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of /etc/fail2ban as `root/fail2ban`, plus `jail_local`.
fn fail2ban_dir(root: &Path, jail_local: &str) -> PathBuf {
    assert!(
        Path::new(SYSTEM).join("jail.conf").is_file(),
        "{SYSTEM}/jail.conf missing: install the Debian package fail2ban (cargo xtask ci does)"
    );
    let dir = root.join("fail2ban");
    copy_dir(Path::new(SYSTEM), &dir);
    std::fs::write(dir.join("jail.local"), jail_local).unwrap();
    dir
}

/// (exit ok, stdout, stderr)
fn nftjail(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn import_to_file(dir: &Path) -> PathBuf {
    let out = dir.join("nftjail.toml");
    let (ok, stdout, err) = nftjail(&[
        "import-fail2ban",
        dir.join("fail2ban").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.is_empty(), "-o writes the file only: {stdout}");
    out
}

#[test]
fn jails_of_jail_local_become_a_config_nftjail_check_accepts() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("a-error.log"), "").unwrap();
    std::fs::write(logs.join("b-error.log"), "").unwrap();
    let local = format!(
        "[DEFAULT]\n\
         ignoreip = 127.0.0.1/8 ::1\n\
         \n\
         [sshd]\n\
         enabled = true\n\
         mode = aggressive\n\
         ignoreregex = for monitor from\n\
         \n\
         [postfix-sasl]\n\
         enabled  = true\n\
         maxretry = 3\n\
         findtime = 30m\n\
         bantime  = 2h\n\
         ignoreip = 198.51.100.7, 2001:db8::/32 mail.example.org\n\
         \n\
         [dovecot]\n\
         enabled = true\n\
         bantime = -1\n\
         bantime.increment = true\n\
         bantime.multipliers = 1 5 30\n\
         bantime.maxtime = 5w\n\
         bantime.formula = ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)\n\
         action = %(action_mwl)s\n\
         \n\
         [nginx-http-auth]\n\
         enabled = true\n\
         logpath = {}/*-error.log\n\
         banaction = nftables[blocktype=drop]\n\
         \n\
         [apache-auth]\n\
         enabled = true\n\
         logpath = {}/nothing-*.log\n\
         \n\
         [my-jail]\n\
         enabled = true\n\
         filter = sshd\n\
         logpath = /var/log/auth.log\n\
         \n\
         [my.jail]\n\
         enabled = true\n\
         filter = sshd\n\
         logpath = /var/log/auth.log\n",
        logs.display(),
        logs.display()
    );
    fail2ban_dir(d.path(), &local);
    let toml_path = import_to_file(d.path());
    let text = std::fs::read_to_string(&toml_path).unwrap();

    // The binary's own check accepts it.
    let (ok, out, err) = nftjail(&["check", "-c", toml_path.to_str().unwrap()]);
    assert!(ok, "{err}\n{text}");
    assert!(
        out.contains("6 jail(s): dovecot, my-jail, my-jail-2, nginx-http-auth, postfix-sasl, sshd"),
        "{out}\n{text}"
    );

    // And the values are fail2ban's, read the checked way.
    let config = Config::load(Some(&toml_path)).unwrap();
    let jail = |name: &str| config.jails.iter().find(|j| &*j.name == name).unwrap();
    let filter_dir = d.path().join("fail2ban/filter.d");

    let sasl = jail("postfix-sasl");
    let spec = sasl.fail2ban.as_ref().expect("a fail2ban filter");
    assert_eq!(
        spec.spec,
        format!("{}/postfix.conf[mode=auth]", filter_dir.display())
    );
    assert_eq!(sasl.maxretry, 3);
    assert_eq!(sasl.findtime.as_secs(), 1800);
    assert_eq!(sasl.bantime.as_secs(), 7200);
    assert_eq!(sasl.logpaths, [PathBuf::from("/var/log/mail.log")]);
    let nets: Vec<String> = sasl
        .ignore
        .networks()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(nets.contains(&"198.51.100.7/32".to_string()), "{nets:?}");
    assert!(nets.contains(&"2001:db8::/32".to_string()), "{nets:?}");
    // smtp,465,submission,imap,imaps,pop3,pop3s
    let ports: Vec<u16> = sasl.ports.iter().map(|p| p.first).collect();
    assert_eq!(ports, [25, 110, 143, 465, 587, 993, 995]);
    assert!(
        text.contains("not imported: ignoreip entry \"mail.example.org\""),
        "{text}"
    );

    let sshd = jail("sshd");
    let spec = &sshd.fail2ban.as_ref().unwrap().spec;
    assert_eq!(
        *spec,
        format!(
            "{}/sshd.conf[mode=aggressive, ignoreregex=\"for monitor from\"]",
            filter_dir.display()
        )
    );
    // The jail's own ignoreregex works through the spec, as in fail2ban.
    let mut child = Command::new(BIN)
        .args(["test", &format!("fail2ban:{spec}"), "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"Nov 25 09:12:01 mx sshd[1]: Failed password for monitor from 192.0.2.9 port 22 ssh2\n\
          Nov 25 09:12:02 mx sshd[1]: Failed password for admin from 192.0.2.9 port 22 ssh2\n",
    )
    .unwrap();
    let judged = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let judged: Vec<serde_json::Value> = judged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(judged[0]["match"], false, "{judged:?}");
    assert_eq!(judged[1]["match"], true, "{judged:?}");
    assert_eq!(sshd.logpaths, [PathBuf::from("/var/log/auth.log")]);
    assert_eq!(sshd.ports.iter().map(|p| p.first).collect::<Vec<_>>(), [22]);
    assert_eq!((sshd.maxretry, sshd.bantime.as_secs()), (5, 600));
    // [DEFAULT] ignoreip reaches every jail.
    assert!(sshd
        .ignore
        .networks()
        .iter()
        .any(|n| n.to_string() == "127.0.0.0/8"));

    let dovecot = jail("dovecot");
    assert_eq!(dovecot.bantime.as_secs(), 365 * 86_400);
    assert!(text.contains("is permanent in fail2ban"), "{text}");
    let inc = dovecot
        .increment
        .as_ref()
        .expect("bantime increment imported");
    assert_eq!(inc.multipliers, vec![1.0, 5.0, 30.0]);
    assert_eq!(inc.maxtime.map(|d| d.as_secs()), Some(5 * 7 * 86_400));
    assert!(
        text.contains("# not imported: bantime.formula = "),
        "{text}"
    );
    assert!(
        text.contains("not imported: action = %(action_)s") || text.contains("mail-whois-lines"),
        "{text}"
    );

    let nginx = jail("nginx-http-auth");
    let mut paths = nginx.logpaths.clone();
    paths.sort();
    assert_eq!(
        paths,
        [logs.join("a-error.log"), logs.join("b-error.log")],
        "{text}"
    );
    assert_eq!(nginx.blocktype, nftjail::rules::BlockType::Drop);

    // "my.jail" is no nftjail name; cleaned, it would collide.
    assert!(
        text.contains("fail2ban names this jail \"my.jail\""),
        "{text}"
    );

    // No file for its glob: written, but disabled, with the reason.
    assert!(config.jails.iter().all(|j| &*j.name != "apache-auth"));
    let apache = text.split("[jail.apache-auth]").nth(1).unwrap();
    assert!(apache.contains("enabled = false"), "{apache}");
    assert!(apache.contains("no file matches now"), "{apache}");
}

#[test]
fn the_system_configuration_imports_by_default() {
    let (ok, out, err) = nftjail(&["import-fail2ban"]);
    assert!(ok, "{err}");
    // Debian enables sshd in jail.d/defaults-debian.conf.
    assert!(out.contains("[jail.sshd]"), "{out}");
    assert!(
        out.contains("filter = \"fail2ban:sshd[mode=normal]\""),
        "{out}"
    );
    assert!(
        out.contains("#   /etc/fail2ban/jail.d/defaults-debian.conf"),
        "{out}"
    );
}

#[test]
fn errors_name_the_directory_or_the_jail_and_its_file() {
    let (ok, _, err) = nftjail(&["import-fail2ban", "/nonexistent/fail2ban"]);
    assert!(!ok);
    assert!(
        err.contains("/nonexistent/fail2ban/jail.conf") && err.contains("no such directory"),
        "{err}"
    );

    let d = tempfile::tempdir().unwrap();
    let dir = fail2ban_dir(
        d.path(),
        "[myjail]\nenabled = true\nfilter = nosuch\nlogpath = /var/log/x.log\n",
    );
    let (ok, _, err) = nftjail(&["import-fail2ban", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("jail [myjail]"), "{err}");
    assert!(
        err.contains(&format!("{}", dir.join("jail.local").display())),
        "{err}"
    );
    assert!(err.contains("nosuch.conf"), "{err}");
}

#[test]
fn a_systemd_backend_jail_reads_the_journal_with_its_filters_journalmatch() {
    let d = tempfile::tempdir().unwrap();
    fail2ban_dir(
        d.path(),
        "[sshd]\nenabled = true\nbackend = systemd\n\n\
         [my-journal]\nenabled = true\nbackend = systemd\nfilter = sshd\n\
         journalmatch = _SYSTEMD_UNIT=ssh.service + _COMM=sshd _UID=0\n",
    );
    let toml_path = import_to_file(d.path());
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let (ok, _, err) = nftjail(&["check", "-c", toml_path.to_str().unwrap()]);
    assert!(ok, "{err}\n{text}");
    assert!(!text.contains("journal yet"), "{text}");

    let config = Config::load(Some(&toml_path)).unwrap();
    let journal = |name: &str| -> Vec<String> {
        let jail = config.jails.iter().find(|j| &*j.name == name).unwrap();
        assert!(jail.logpaths.is_empty(), "{name}: {text}");
        jail.journal.iter().map(|m| m.to_string()).collect()
    };
    // fail2ban's own sshd filter: `+` separates alternatives.
    assert_eq!(
        journal("sshd"),
        ["_SYSTEMD_UNIT=sshd.service", "_COMM=sshd"],
        "{text}"
    );
    // A jail's own journalmatch stands over the filter's; terms of one
    // alternative all hold (sorted, as journalctl treats them alike).
    assert_eq!(
        journal("my-journal"),
        ["_SYSTEMD_UNIT=ssh.service", "_COMM=sshd _UID=0"],
        "{text}"
    );
}
