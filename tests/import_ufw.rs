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
//!
//! The move of the hand-made refusals out of ufw runs with ufw enabled in a
//! network namespace of its own, beside the daemon with the imported config.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{link, require_root, Daemon, Netns};

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

impl Ufw {
    /// `program args…` in `ns`, over this ufw's /etc/ufw and /run.
    fn command_in(&self, ns: &Netns, program: &str) -> Command {
        let mut c = ns.command("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/ufw && mount --bind {} /run && exec \"$@\"",
                self.dir.display(),
                self.run.display()
            ))
            .args(["sh", program]);
        c
    }

    fn run_in(&self, ns: &Netns, program: &str, args: &[&str]) -> (bool, String, String) {
        let out = self.command_in(ns, program).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok_in(&self, ns: &Netns, program: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.run_in(ns, program, args);
        assert!(ok, "{program} {args:?}: {out}{err}");
        out
    }

    /// `ufw status numbered`'s rules, without their numbers.
    fn rules_listed(&self, ns: &Netns) -> Vec<String> {
        self.ok_in(ns, "ufw", &["status", "numbered"])
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.split_once(']'))
            .map(|(_, rule)| rule.trim().to_string())
            .collect()
    }
}

fn connect(ns: &Netns, to: &str) -> Result<(), ErrorKind> {
    let addr: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

/// The second step: with the daemon running the imported config, the
/// manual reject leaves ufw, and the network it refused is refused all
/// along (by ufw, then by both, then by nftjail's blocklist).
#[test]
fn the_manual_refusals_move_out_of_ufw_once_the_daemon_holds_them() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let (f2b, ufw) = deployment(d.path(), "banaction = ufw\naction = %(action_)s");
    // ufw enable would apply these kernel settings; none is needed here.
    std::fs::write(ufw.dir.join("sysctl.conf"), "").unwrap();
    let (path, config, _) = import(d.path(), &f2b, &ufw, &[]);
    let blocklist = path.with_file_name("ufw-blocklist.txt");
    assert!(std::fs::read_to_string(&blocklist)
        .unwrap()
        .contains("95.181.157.0/24"));
    let socket = d.path().join("nftjail.sock");
    std::fs::write(
        &path,
        config.replacen(
            "[daemon]\n",
            &format!(
                "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\ntable = \"nftjailmove\"\n",
                socket.display(),
                d.path().join("state").display()
            ),
            1,
        ),
    )
    .unwrap();

    let srv = Netns::new("mvs");
    let atk = Netns::new("mva");
    let inno = Netns::new("mvi");
    // One /22 for both ends, so the refused /24 does not hold the server.
    link(
        &srv,
        &["95.181.158.1/22"],
        &atk,
        &["95.181.157.66/22"],
        "mva",
    );
    link(&srv, &["10.7.57.1/24"], &inno, &["10.7.57.23/24"], "mvi");
    let any: SocketAddr = "0.0.0.0:587".parse().unwrap();
    let listener = srv.run(move || TcpListener::bind(any).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    ufw.ok_in(&srv, "ufw", &["--force", "enable"]);
    assert_eq!(
        connect(&atk, "95.181.158.1:587"),
        Err(ErrorKind::ConnectionRefused),
        "ufw's manual reject"
    );
    assert_eq!(connect(&inno, "10.7.57.1:587"), Ok(()));

    let files = |f: &str| std::fs::read_to_string(ufw.dir.join(f)).unwrap();
    let before = (files("user.rules"), files("user6.rules"));
    let listed = ufw.rules_listed(&srv);
    let bin = BIN;
    let sock = socket.to_str().unwrap();
    let move_args = ["--socket", sock, "import-fail2ban", "--move-ufw-rules"];

    // No daemon yet: nothing is removed.
    let (ok, _, err) = ufw.run_in(&srv, bin, &move_args);
    assert!(!ok, "moved without a daemon holding the networks");
    assert!(
        err.contains("start nftjail with the imported config"),
        "{err}"
    );
    assert_eq!((files("user.rules"), files("user6.rules")), before);

    let mut run = ufw.command_in(&srv, bin);
    run.args(["run", "--config"]).arg(&path);
    let daemon = Daemon::spawn(run);
    daemon.wait_for("ready", Duration::from_secs(20));
    let (_, banned, _) = nftjail(&["--socket", sock, "banned"]);
    assert!(
        banned.contains("zimbra-submission\t95.181.157.0/24\tpermanent"),
        "{banned}"
    );
    assert!(srv
        .output("nft", &["list", "table", "inet", "nftjailmove"])
        .contains("95.181.157.0/24"));

    // The attacker knocks all along the move.
    let stop = AtomicBool::new(false);
    let (tries, let_in, out) = std::thread::scope(|s| {
        let knocks = s.spawn(|| {
            let (mut tries, mut let_in) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                tries += 1;
                if connect(&atk, "95.181.158.1:587").is_ok() {
                    let_in += 1;
                }
            }
            (tries, let_in)
        });
        let out = ufw.run_in(&srv, bin, &move_args);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let (tries, let_in) = knocks.join().unwrap();
        (tries, let_in, out)
    });
    let (ok, stdout, stderr) = out;
    assert!(ok, "{stdout}{stderr}");
    eprintln!("{stdout}{stderr}\n{tries} connection attempts during the move");
    assert!(
        stdout.contains("removed from ufw: ufw reject from 95.181.157.0/24"),
        "{stdout}"
    );
    assert_eq!(let_in, 0, "the network got in during the move");
    assert_eq!(
        connect(&atk, "95.181.158.1:587"),
        Err(ErrorKind::ConnectionRefused),
        "nftjail's blocklist"
    );
    assert_eq!(connect(&inno, "10.7.57.1:587"), Ok(()));

    // Exactly that rule is gone: from the files, the listing and the chain.
    let block = "### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in\n\
                 -A ufw-user-input -s 95.181.157.0/24 -j REJECT\n\n";
    assert!(before.0.contains(block), "{}", before.0);
    assert_eq!(files("user.rules"), before.0.replacen(block, "", 1));
    assert_eq!(files("user6.rules"), before.1);
    let now = ufw.rules_listed(&srv);
    let expected: Vec<String> = listed
        .iter()
        .filter(|l| !l.contains("95.181.157.0/24"))
        .cloned()
        .collect();
    assert_eq!(listed.len(), expected.len() + 1, "{listed:#?}");
    assert_eq!(now, expected);
    let chain = ufw.ok_in(&srv, "iptables", &["-S", "ufw-user-input"]);
    assert!(!chain.contains("95.181.157.0/24"), "{chain}");
    assert!(
        chain.contains("203.0.113.9"),
        "fail2ban's own ban stays: {chain}"
    );

    // Again: nothing left to move.
    let (ok, stdout, _) = ufw.run_in(&srv, bin, &move_args);
    assert!(ok && stdout.contains("nothing to move"), "{stdout}");
}
