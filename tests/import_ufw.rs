#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]
//! `nftjail import-fail2ban` on a copy of a fail2ban + ufw mail host: a
//! Zimbra jail banning through fail2ban's ufw action with an application
//! profile, a filter anchored with `$` that real Postfix lines outrun, the
//! farm's LAN let in wholesale and a network refused by hand.
//!
//! ufw's rules files are written by the real ufw (Debian package `ufw`)
//! in a private mount and network namespace over a copy of `/etc/ufw`, so
//! the import reads what ufw itself writes; the host's firewall and files
//! are never touched. fail2ban's files are a copy of the system's.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The deployment's own filter: written for an older Postfix, it ends at
/// `authentication failure$`, where today's lines go on with
/// `, sasl_username=…`.
const ZIMBRA_FILTER: &str = "[INCLUDES]\n\
before = common.conf\n\
\n\
[Definition]\n\
_daemon = postfix/(submission/)?smtpd\n\
failregex = ^%(__prefix_line)swarning: [-._\\w]+\\[<HOST>\\]: SASL (?:LOGIN|PLAIN) authentication failed: authentication failure$\n\
ignoreregex =\n";

/// Real-looking lines of Zimbra's Postfix: failures with the user name,
/// one without it (the old form, which the filter above does match), and
/// a successful login.
const LOG: &str = "\
Dec  4 09:12:01 mail postfix/submission/smtpd[21873]: connect from unknown[185.93.89.118]
Dec  4 09:12:03 mail postfix/submission/smtpd[21873]: warning: unknown[185.93.89.118]: SASL LOGIN authentication failed: authentication failure, sasl_username=alice
Dec  4 09:12:09 mail postfix/submission/smtpd[21873]: warning: unknown[185.93.89.118]: SASL LOGIN authentication failed: authentication failure, sasl_username=alice@example.com
Dec  4 09:13:41 mail postfix/submission/smtpd[21901]: warning: unknown[45.134.26.79]: SASL PLAIN authentication failed: authentication failure, sasl_username=alice
Dec  4 09:14:02 mail postfix/submission/smtpd[21950]: warning: unknown[80.94.95.115]: SASL LOGIN authentication failed: authentication failure
Dec  4 09:15:10 mail postfix/submission/smtpd[21990]: 4F2A81C0E3: client=laptop.lan[10.7.57.23], sasl_method=PLAIN, sasl_username=bob@example.com
";

/// The host's ufw, in private namespaces over a copy of its directory.
struct Ufw {
    dir: PathBuf,
    run: PathBuf,
}

impl Ufw {
    fn new(root: &Path) -> Ufw {
        assert!(
            Path::new("/usr/sbin/ufw").exists(),
            "ufw is missing: run `cargo xtask deps`"
        );
        let dir = root.join("ufw");
        copy_dir(Path::new("/etc/ufw"), &dir);
        for f in ["user.rules", "user6.rules"] {
            std::fs::copy(format!("/usr/share/ufw/iptables/{f}"), dir.join(f)).unwrap();
        }
        // Disabled: ufw only writes its files; nothing is loaded anywhere.
        std::fs::write(dir.join("ufw.conf"), "ENABLED=no\nLOGLEVEL=off\n").unwrap();
        std::fs::write(
            dir.join("applications.d/zimbra"),
            "[zimbra-submission]\ntitle=Zimbra submission\ndescription=SMTP submission\nports=587/tcp\n",
        )
        .unwrap();
        let run = root.join("run");
        std::fs::create_dir(&run).unwrap();
        Ufw { dir, run }
    }

    fn ufw(&self, args: &[&str]) {
        let out = Command::new("unshare")
            .args(["-m", "-n", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/ufw && mount --bind {} /run && exec ufw \"$@\"",
                self.dir.display(),
                self.run.display()
            ))
            .arg("sh")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ufw {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The deployment: fail2ban's files with the Zimbra jail, its log, and
/// ufw's rules as the admin and fail2ban left them.
fn deployment(root: &Path, jail_action: &str) -> (PathBuf, Ufw) {
    assert!(
        Path::new(SYSTEM).join("jail.conf").is_file(),
        "{SYSTEM}/jail.conf missing: install the Debian package fail2ban (cargo xtask deps does)"
    );
    let f2b = root.join("fail2ban");
    copy_dir(Path::new(SYSTEM), &f2b);
    std::fs::write(f2b.join("filter.d/zimbra.conf"), ZIMBRA_FILTER).unwrap();
    let log = root.join("zimbra.log");
    std::fs::write(&log, LOG).unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[zimbra-submission]\nenabled = true\nfilter = zimbra\nlogpath = {}\n\
             maxretry = 3\nbantime = 1d\n{jail_action}\n",
            log.display()
        ),
    )
    .unwrap();
    // The application is named in the action's own file, as the admin did.
    std::fs::write(
        f2b.join("action.d/ufw.local"),
        "[Init]\napplication = zimbra-submission\n",
    )
    .unwrap();

    let ufw = Ufw::new(root);
    ufw.ufw(&["allow", "zimbra-submission"]);
    ufw.ufw(&["allow", "from", "10.7.57.0/24"]);
    ufw.ufw(&["allow", "from", "2001:db8:57::/48"]);
    ufw.ufw(&["insert", "1", "reject", "from", "95.181.157.0/24"]);
    ufw.ufw(&[
        "insert",
        "1",
        "reject",
        "from",
        "203.0.113.9",
        "to",
        "any",
        "app",
        "zimbra-submission",
        "comment",
        "by Fail2Ban after 3 attempts against zimbra-submission",
    ]);
    (f2b, ufw)
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

fn import(root: &Path, f2b: &Path, ufw: &Ufw, more: &[&str]) -> (PathBuf, String, String) {
    let out = root.join("out/nftjail.toml");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut args = vec![
        "import-fail2ban",
        f2b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--ufw-dir",
        ufw.dir.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let (ok, stdout, stderr) = nftjail(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "-o writes the file only: {stdout}");
    let config = std::fs::read_to_string(&out).unwrap();
    (out, config, stderr)
}

fn check(config: &Path) {
    let (ok, stdout, stderr) = nftjail(&["check", "-c", config.to_str().unwrap()]);
    assert!(
        ok,
        "nftjail check refused it: {stderr}\n{}",
        std::fs::read_to_string(config).unwrap()
    );
    // Debian's jail.d enables sshd too.
    assert!(stdout.contains("zimbra-submission"), "{stdout}");
}

#[test]
fn a_fail2ban_ufw_mail_host_moves_in_one_command() {
    let d = tempfile::tempdir().unwrap();
    let (f2b, ufw) = deployment(d.path(), "banaction = ufw\naction = %(action_)s");
    let rules = |f: &str| std::fs::read(ufw.dir.join(f)).unwrap();
    let before = (rules("user.rules"), rules("user6.rules"));
    let (path, config, summary) = import(d.path(), &f2b, &ufw, &[]);
    // The import only reads ufw's files.
    assert!(before == (rules("user.rules"), rules("user6.rules")));
    eprintln!("{config}\n{summary}");
    check(&path);

    // The profile's ports, the nft backend, ufw's reject.
    assert!(config.contains("backend = \"nft\""), "{config}");
    assert!(config.contains("port = \"587/tcp\""), "{config}");
    assert!(config.contains("blocktype = \"reject\""), "{config}");

    // The hand-made refusal is a blocklist; fail2ban's own ban is not.
    let blocklist = path.with_file_name("ufw-blocklist.txt");
    let list = std::fs::read_to_string(&blocklist).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("95.181.157.0/24")
                && l.contains("ufw reject from 95.181.157.0/24")),
        "{list}"
    );
    assert!(!list.contains("203.0.113.9"), "{list}");
    assert!(
        config.contains(&format!("blocklist = \"{}\"", blocklist.display())),
        "{config}"
    );
    assert!(
        summary.contains("ufw delete reject from 95.181.157.0/24"),
        "{summary}"
    );

    // The LAN is offered, not applied.
    assert!(summary.contains("ignoreip suggestion"), "{summary}");
    assert!(
        summary.contains("10.7.57.0/24") && summary.contains("2001:db8:57::/48"),
        "{summary}"
    );
    assert!(!config.contains("ignoreip = "), "{config}");

    // The `$`-anchored filter misses the lines with the user name.
    assert!(summary.contains("misses 3 of the 4 lines"), "{summary}");
    assert!(
        summary.contains(
            "SASL LOGIN authentication failed: authentication failure, sasl_username=alice"
        ),
        "{summary}"
    );
    assert!(summary.contains("zimbra-submission"), "{summary}");
}

#[test]
fn the_ufw_backend_keeps_the_profile_and_the_lan_can_be_ignored() {
    let d = tempfile::tempdir().unwrap();
    // The jail names the application itself, overriding ufw.local.
    let (f2b, ufw) = deployment(
        d.path(),
        "action = ufw[application=\"zimbra-submission\", blocktype=deny]",
    );
    let (path, config, summary) = import(
        d.path(),
        &f2b,
        &ufw,
        &["--backend", "ufw", "--ignore-ufw-allowed"],
    );
    eprintln!("{config}\n{summary}");
    check(&path);
    assert!(config.contains("backend = \"ufw\""), "{config}");
    assert!(config.contains("app = \"zimbra-submission\""), "{config}");
    assert!(config.contains("blocktype = \"drop\""), "{config}");
    assert!(
        config.contains("ignoreip = [\"10.7.57.0/24\", \"2001:db8:57::/48\"]"),
        "{config}"
    );
    assert!(!summary.contains("ignoreip suggestion"), "{summary}");
}
