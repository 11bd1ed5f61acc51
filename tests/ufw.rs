#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The ufw backend against the real ufw (Debian's package), each test in a
//! network namespace of its own with a private mount namespace over
//! `/etc/ufw` and `/run`: ufw, nftjail and the checks all see a copy of
//! ufw's files made here, and the host's firewall and files are never
//! touched.
//!
//! Topology:
//! ```text
//!   atk 192.0.2.66 / 2001:db8:1::66 ──veth── srv 192.0.2.1 / 2001:db8:1::1   (ufw, nftjail, :587)
//!   inno 198.51.100.7 / 2001:db8:2::7 ──veth── srv 198.51.100.1 / 2001:db8:2::1
//! ```

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{link, require_root, Daemon, Netns};

const JAIL: &str = "sasl";

/// A namespace with its own ufw: files, lock and chains.
struct UfwHost {
    srv: Netns,
    dir: tempfile::TempDir,
}

impl UfwHost {
    fn new(tag: &str) -> UfwHost {
        require_root();
        assert!(
            Path::new("/usr/sbin/ufw").exists(),
            "ufw is missing: run `cargo xtask deps`"
        );
        let srv = Netns::new(&format!("{tag}s"));
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        common::sh(&["cp", "-a", "/etc/ufw", etc.to_str().unwrap()]);
        // The package's defaults, whatever the host made of its own copy.
        for f in ["user.rules", "user6.rules"] {
            let fresh = format!("/usr/share/ufw/iptables/{f}");
            if Path::new(&fresh).exists() {
                std::fs::copy(&fresh, etc.join(f)).unwrap();
            }
        }
        std::fs::write(etc.join("ufw.conf"), "ENABLED=no\nLOGLEVEL=off\n").unwrap();
        // ufw-init would apply these kernel settings; none is needed here.
        std::fs::write(etc.join("sysctl.conf"), "").unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        UfwHost { srv, dir }
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// `program args…` in the namespace, with our /etc/ufw and /run.
    fn command(&self, program: &str) -> Command {
        let mut c = self.srv.command("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/ufw && mount --bind {} /run && exec \"$@\"",
                self.etc().display(),
                self.dir.path().join("run").display()
            ))
            .args(["sh", program]);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ufw(&self, args: &[&str]) -> String {
        self.run("ufw", args)
    }

    fn rules(&self) -> (String, String) {
        (
            std::fs::read_to_string(self.etc().join("user.rules")).unwrap(),
            std::fs::read_to_string(self.etc().join("user6.rules")).unwrap(),
        )
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("nftjail.sock")
    }

    /// The daemon with one jail on port 587; `backend` None: the default.
    fn config(&self, backend: Option<&str>) -> PathBuf {
        self.config_with(backend, "")
    }

    /// [`UfwHost::config`] with more keys for the jail.
    fn config_with(&self, backend: Option<&str>, jail_keys: &str) -> PathBuf {
        let log = self.dir.path().join("mail.log");
        std::fs::write(&log, "").unwrap();
        let config = self.dir.path().join("nftjail.toml");
        let backend = backend.map_or(String::new(), |b| format!("backend = \"{b}\"\n"));
        std::fs::write(
            &config,
            format!(
                "[daemon]\n{backend}socket = \"{}\"\nstate_dir = \"{}\"\ntable = \"nftjailufw\"\n\
                 [jail.{JAIL}]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nport = \"587\"\nbantime = \"1h\"\n{jail_keys}",
                self.socket().display(),
                self.dir.path().join("state").display(),
                log.display()
            ),
        )
        .unwrap();
        config
    }

    fn daemon(&self, backend: Option<&str>, envs: &[(&str, &str)]) -> Daemon {
        self.daemon_with(self.config(backend), envs)
    }

    fn daemon_with(&self, config: PathBuf, envs: &[(&str, &str)]) -> Daemon {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_nftjail"));
        cmd.args(["run", "--config"]).arg(&config);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let d = Daemon::spawn(cmd);
        d.wait_for("ready", Duration::from_secs(20));
        d
    }

    fn client(&self, args: &[&str]) -> String {
        common::client_ok(&self.socket(), args)
    }

    /// The lines of `ufw status numbered` that are rules, in order.
    fn numbered(&self) -> Vec<String> {
        self.ufw(&["status", "numbered"])
            .lines()
            .filter(|l| l.starts_with('['))
            .map(str::to_string)
            .collect()
    }
}

/// The admin's firewall: a manual reject at position 1, then allows.
fn admin_rules(h: &UfwHost) {
    h.ufw(&["--force", "enable"]);
    h.ufw(&["allow", "587/tcp"]);
    h.ufw(&["allow", "80"]);
    h.ufw(&["insert", "1", "reject", "from", "95.181.157.0/24"]);
}

fn connect(ns: &Netns, to: &str) -> Result<(), ErrorKind> {
    let addr: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

/// Polls `cond` (the daemon works on its own clock): panics with `what`
/// when it never holds within a generous bound.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", lines.join("\n")))
}

#[test]
fn bans_are_ufw_rules_above_the_first_allow_that_refuse_the_attacker_only() {
    let h = UfwHost::new("uf1");
    let atk = Netns::new("uf1a");
    let inno = Netns::new("uf1i");
    link(
        &h.srv,
        &["192.0.2.1/24", "2001:db8:1::1/64"],
        &atk,
        &["192.0.2.66/24", "2001:db8:1::66/64"],
        "uf1a",
    );
    link(
        &h.srv,
        &["198.51.100.1/24", "2001:db8:2::1/64"],
        &inno,
        &["198.51.100.7/24", "2001:db8:2::7/64"],
        "uf1i",
    );
    // One dual-stack listener: IPv4 clients arrive as mapped addresses.
    let any: SocketAddr = "[::]:587".parse().unwrap();
    let listener = h.srv.run(move || TcpListener::bind(any).unwrap());
    // Accepted sessions are kept open: the server never ends them itself.
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming() {
            open.push(s);
        }
    });
    admin_rules(&h);
    let admin = h.rules();
    for to in ["192.0.2.1:587", "[2001:db8:1::1]:587"] {
        assert_eq!(connect(&atk, to), Ok(()), "{to} open before any ban");
    }

    // A session the attacker opened before its ban.
    let mut session = atk.run(|| TcpStream::connect("192.0.2.1:587")).unwrap();
    session.write_all(b"EHLO\r\n").unwrap();

    // The way a host with legacy iptables loads the chains (one
    // iptables-restore per batch); the other tests go over netlink.
    let d = h.daemon(Some("ufw"), &[("NFTJAIL_UFW_LIVE", "restore")]);
    assert!(
        d.log().contains("loaded with iptables-restore"),
        "{}",
        d.log()
    );
    h.client(&["ban", JAIL, "192.0.2.66"]);
    // ufw accepts established sessions before any user rule: the ban cut
    // the session's conntrack entry, so its next packet meets the ban.
    session
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = session.write_all(b"AUTH LOGIN\r\n");
    let mut buf = [0u8; 16];
    let cut = session.read(&mut buf).map_err(|e| e.kind());
    assert_eq!(
        cut,
        Err(ErrorKind::ConnectionReset),
        "the open session is cut"
    );
    h.client(&["ban", JAIL, "2001:db8:1::66"]);

    let lines = h.numbered();
    let v4 = position(&lines, "192.0.2.66");
    let v6 = position(&lines, "2001:db8:1::66");
    assert_eq!(position(&lines, "95.181.157.0/24"), 0, "{lines:#?}");
    assert_eq!(v4, 1, "just above the first IPv4 ALLOW: {lines:#?}");
    assert!(lines[v4].contains("REJECT IN") && lines[v4].contains("# nftjail:sasl until "));
    assert!(lines[v4 + 1].contains("ALLOW IN"), "{lines:#?}");
    let first_v6_allow = position(&lines, "(v6)");
    assert_eq!(
        v6,
        first_v6_allow - 1,
        "just above the first IPv6 ALLOW: {lines:#?}"
    );
    assert!(lines[v6].contains("REJECT IN"));

    assert!(h
        .run("iptables", &["-S", "ufw-user-input"])
        .contains("-s 192.0.2.66/32 -p tcp -m tcp --dport 587 -j REJECT --reject-with tcp-reset"));
    for to in ["192.0.2.1:587", "[2001:db8:1::1]:587"] {
        assert_eq!(connect(&atk, to), Err(ErrorKind::ConnectionRefused), "{to}");
    }
    for to in ["198.51.100.1:587", "[2001:db8:2::1]:587"] {
        assert_eq!(
            connect(&inno, to),
            Ok(()),
            "the innocent still reaches {to}"
        );
    }

    // `ufw reload` loads its files again, ours with them.
    h.ufw(&["reload"]);
    assert_eq!(
        connect(&atk, "192.0.2.1:587"),
        Err(ErrorKind::ConnectionRefused)
    );
    assert!(h.numbered()[1].contains("192.0.2.66"));

    // A thousand bans and unbans leave the admin's rules byte for byte.
    for i in 0..500u32 {
        h.client(&["ban", JAIL, &format!("198.18.{}.{}", i / 200, i % 200 + 1)]);
        h.client(&["ban", JAIL, &format!("2001:db8:9::{:x}", i + 1)]);
    }
    for i in (0..500u32).step_by(10) {
        h.client(&[
            "unban",
            JAIL,
            &format!("198.18.{}.{}", i / 200, i % 200 + 1),
        ]);
        h.client(&["unban", JAIL, &format!("2001:db8:9::{:x}", i + 1)]);
    }
    // An admin's own command meanwhile keeps our rules (ufw rewrites the
    // files, ours included) and its rule lands where ufw puts it.
    h.ufw(&["allow", "443/tcp"]);
    h.ufw(&["delete", "allow", "443/tcp"]);
    assert_eq!(
        h.numbered()
            .iter()
            .filter(|l| l.contains("nftjail:"))
            .count(),
        2 + 900
    );
    h.client(&["unban", "--all"]);
    assert_eq!(h.rules(), admin, "the admin's files, byte for byte");
    assert_eq!(connect(&atk, "192.0.2.1:587"), Ok(()));
    assert_eq!(connect(&atk, "[2001:db8:1::1]:587"), Ok(()));
}

#[test]
fn a_ban_ends_on_time_and_a_restart_drops_the_ended_and_puts_back_the_missing() {
    let h = UfwHost::new("uf2");
    admin_rules(&h);
    let admin = h.rules();
    let mut d = h.daemon(Some("ufw"), &[]);
    h.client(&["ban", JAIL, "192.0.2.10", "--for", "2s"]);
    h.client(&["ban", JAIL, "192.0.2.11"]);
    assert_eq!(
        h.numbered()
            .iter()
            .filter(|l| l.contains("nftjail:"))
            .count(),
        2
    );
    eventually("the 2 s ban leaves ufw", || {
        !h.rules().0.contains("192.0.2.10")
    });
    let lines = h.numbered();
    assert_eq!(lines.iter().filter(|l| l.contains("nftjail:")).count(), 1);
    assert!(!h
        .run("iptables", &["-S", "ufw-user-input"])
        .contains("192.0.2.10"));

    // Down: one ban ends meanwhile, and the admin deletes another by hand.
    h.client(&["ban", JAIL, "192.0.2.12", "--for", "2s"]);
    d.stop();
    let n = position(&h.numbered(), "192.0.2.11") + 1;
    h.ufw(&["--force", "delete", &n.to_string()]);
    std::thread::sleep(Duration::from_secs(3));
    let _d = h.daemon(Some("ufw"), &[]);
    let (v4, _) = h.rules();
    assert!(!v4.contains("192.0.2.12"), "ended while down: removed");
    assert!(
        v4.contains("192.0.2.11"),
        "active, from the state store: put back"
    );
    assert!(h
        .run("iptables", &["-S", "ufw-user-input"])
        .contains("192.0.2.11"));
    h.client(&["unban", "--all"]);
    assert_eq!(h.rules(), admin);
}

#[test]
fn a_configured_position_puts_ours_before_the_admins_nth_rule() {
    let h = UfwHost::new("uf5");
    admin_rules(&h);
    let config = h.config(Some("ufw"));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[daemon]\n", "[daemon]\nufw_position = 1\n"),
    )
    .unwrap();
    let _d = h.daemon_with(config, &[]);
    h.client(&["ban", JAIL, "192.0.2.30"]);
    h.client(&["ban", JAIL, "2001:db8::30"]);
    let lines = h.numbered();
    assert!(lines[0].contains("192.0.2.30"), "{lines:#?}");
    assert!(lines[1].contains("95.181.157.0/24"), "{lines:#?}");
    let v6 = position(&lines, "2001:db8::30");
    assert!(
        lines[v6 - 1].contains("80 ") && !lines[v6 - 1].contains("(v6)"),
        "{lines:#?}"
    );
}

#[test]
fn auto_picks_nft_when_nf_tables_works_and_ufw_when_it_does_not() {
    let h = UfwHost::new("uf3");
    // Neither: the error names both reasons, and the daemon does not start.
    let mut child = h
        .command(env!("CARGO_BIN_EXE_nftjail"))
        .args(["run", "--config"])
        .arg(h.config(None))
        .env("NFTJAIL_TEST_NO_NFTABLES", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut waited = Duration::ZERO;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("nftjail started although neither nft nor ufw can be used");
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("NFTJAIL_TEST_NO_NFTABLES") && err.contains("ufw is not enabled"),
        "{err}"
    );

    admin_rules(&h);
    let mut d = h.daemon(None, &[("NFTJAIL_TEST_NO_NFTABLES", "1")]);
    h.client(&["ban", JAIL, "192.0.2.20"]);
    assert!(h.rules().0.contains("192.0.2.20"), "ufw took the ban");
    h.client(&["unban", "--all"]);
    d.stop();

    let _d = h.daemon(None, &[]);
    h.client(&["ban", JAIL, "192.0.2.21"]);
    assert!(!h.rules().0.contains("192.0.2.21"), "nft, not ufw");
    assert!(h
        .srv
        .output("nft", &["list", "table", "inet", "nftjailufw"])
        .contains("192.0.2.21"));
}

/// The common case: ufw enabled on a host whose kernel has nf_tables, ufw
/// accepting the jail's port, and the nft backend. nftables evaluates every
/// base chain and a reject in ours is final, so ufw's accept does not let
/// the banned address in; another client still connects.
#[test]
fn with_ufw_accepting_the_port_an_nft_ban_still_refuses() {
    let h = UfwHost::new("ufc");
    let atk = Netns::new("ufca");
    let inno = Netns::new("ufci");
    link(&h.srv, &["192.0.2.1/24"], &atk, &["192.0.2.66/24"], "ufca");
    link(
        &h.srv,
        &["198.51.100.1/24"],
        &inno,
        &["198.51.100.7/24"],
        "ufci",
    );
    let any: SocketAddr = "0.0.0.0:587".parse().unwrap();
    let listener = h.srv.run(move || TcpListener::bind(any).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    admin_rules(&h);
    assert!(
        h.numbered()
            .iter()
            .any(|l| l.contains("587/tcp") && l.contains("ALLOW")),
        "ufw accepts the port: {:?}",
        h.numbered()
    );
    assert_eq!(
        connect(&atk, "192.0.2.1:587"),
        Ok(()),
        "open before the ban"
    );

    let _d = h.daemon(Some("nft"), &[]);
    h.client(&["ban", JAIL, "192.0.2.66"]);
    assert_eq!(
        connect(&atk, "192.0.2.1:587"),
        Err(ErrorKind::ConnectionRefused),
        "ufw's accept does not undo our reject"
    );
    assert_eq!(connect(&inno, "198.51.100.1:587"), Ok(()));
    assert!(
        !h.rules().0.contains("192.0.2.66"),
        "the nft backend leaves ufw's files alone"
    );
    h.client(&["unban", JAIL, "192.0.2.66"]);
    assert_eq!(
        connect(&atk, "192.0.2.1:587"),
        Ok(()),
        "open after the unban"
    );
}

/// Not a check: the rate of a burst of bans through ufw, printed, for
/// each way of changing the live chains (netlink, and iptables-restore).
/// `cargo test --release --test ufw -- --ignored --nocapture burst`
#[test]
#[ignore]
fn burst_of_bans_from_a_log() {
    burst("netlink", "uf4", &[]);
    burst(
        "iptables-restore",
        "uf4r",
        &[("NFTJAIL_UFW_LIVE", "restore")],
    );
}

fn burst(path: &str, tag: &str, envs: &[(&str, &str)]) {
    const N: usize = 1000;
    let h = UfwHost::new(tag);
    admin_rules(&h);
    let config = h.config_with(Some("ufw"), "maxretry = 1\n");
    let d = h.daemon_with(config, envs);
    let now = jiff::ZonedDateTime::now()
        .strftime("%b %e %H:%M:%S")
        .to_string();
    let lines: String = (0..N)
        .map(|i| {
            format!(
                "{now} mx1 postfix/submission/smtpd[1]: warning: unknown[10.{}.{}.{}]: SASL LOGIN authentication failed: authentication failure\n",
                i / 65536, (i / 256) % 256, i % 256
            )
        })
        .collect();
    let started = Instant::now();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.dir.path().join("mail.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, lines.as_bytes()).unwrap();
    let live = || {
        h.run("iptables", &["-S", "ufw-user-input"])
            .matches("-s 10.")
            .count()
    };
    let mut first = None;
    eventually("every ban in the live chain", || {
        let n = live();
        if n > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        n == N
    });
    let took = started.elapsed();
    let live = live();
    assert_eq!(
        h.rules()
            .0
            .matches("### tuple ### reject tcp 587 0.0.0.0/0 any 10.")
            .count(),
        N
    );
    println!(
        "{path}: {N} bans from a log through ufw in {:.2} s: {:.0} bans/s; first ban live after {:.0} ms (polled); live chain holds {live}",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64(),
        first.unwrap_or(took).as_secs_f64() * 1000.0
    );
    assert_eq!(live, N);
    let via_netlink = d.log().contains("changed over netlink");
    assert_eq!(via_netlink, envs.is_empty(), "{}", d.log());

    // One ban per batch with the chain full: each `nftjail ban` returns
    // once its rule is live (the client's own start is in the figure).
    const ONE_BY_ONE: usize = 50;
    let started = Instant::now();
    for i in 0..ONE_BY_ONE {
        h.client(&["ban", JAIL, &format!("172.16.0.{}", i + 1)]);
    }
    let each = started.elapsed() / ONE_BY_ONE as u32;
    println!(
        "{path}: then {ONE_BY_ONE} single bans beside {N}: {:.1} ms each, ban to reply",
        each.as_secs_f64() * 1000.0
    );
}

/// A prefix the tracker bans is one ufw rule for the whole network.
#[test]
fn a_prefix_ban_is_one_rule_for_the_network() {
    let h = UfwHost::new("uf9");
    admin_rules(&h);
    let config = h.config_with(Some("ufw"), "[jail.sasl.prefix]\nmaxaddrs = 3\n");
    let d = h.daemon_with(config, &[]);
    let now = jiff::ZonedDateTime::now()
        .strftime("%b %e %H:%M:%S")
        .to_string();
    let lines: String = (1..=3)
        .map(|i| {
            format!("{now} mx1 postfix/submission/smtpd[1]: warning: unknown[203.0.113.{i}]: SASL LOGIN authentication failed: authentication failure\n")
        })
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.dir.path().join("mail.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, lines.as_bytes()).unwrap();
    d.wait_for(
        "addr=203.0.113.0/24 cause=prefix addrs=3",
        Duration::from_secs(10),
    );
    eventually("the prefix in the live chain", || {
        h.run("iptables", &["-S", "ufw-user-input"])
            .contains("-s 203.0.113.0/24")
    });
    assert!(
        h.rules()
            .0
            .contains("### tuple ### reject tcp 587 0.0.0.0/0 any 203.0.113.0/24"),
        "{}",
        h.rules().0
    );
    h.client(&["unban", "--all"]);
}

#[test]
fn blocklist_entries_and_permanent_bans_are_ufw_rules_without_end() {
    let h = UfwHost::new("uf6");
    admin_rules(&h);
    let admin = h.rules();
    let list = h.dir.path().join("blocklist.txt");
    std::fs::write(&list, "192.0.2.20\n203.0.113.0/24\nnot an address\n").unwrap();
    let config = h.config_with(
        Some("ufw"),
        &format!("blocklist = \"{}\"\n", list.display()),
    );
    let mut d = h.daemon_with(config.clone(), &[]);
    assert!(d.log().contains("blocklist.txt:3: "), "{}", d.log());
    h.client(&["ban", JAIL, "192.0.2.21", "--permanent"]);
    let (v4, _) = h.rules();
    for entry in ["192.0.2.20", "203.0.113.0/24", "192.0.2.21"] {
        assert!(v4.contains(entry), "{entry} in ufw's rules:\n{v4}");
    }
    let live = h.run("iptables", &["-S", "ufw-user-input"]);
    assert!(live.contains("203.0.113.0/24"), "{live}");
    let banned = h.client(&["banned"]);
    assert_eq!(banned.matches("\tpermanent").count(), 3, "{banned}");

    // Off the list and reloaded: its rule goes, the others stay.
    std::fs::write(&list, "203.0.113.0/24\n").unwrap();
    h.client(&["reload"]);
    let (v4, _) = h.rules();
    assert!(!v4.contains("192.0.2.20"), "{v4}");
    assert!(v4.contains("203.0.113.0/24") && v4.contains("192.0.2.21"));

    // A restart keeps them: they have no end for the timer to reach.
    d.stop();
    let _d = h.daemon_with(config, &[]);
    let (v4, _) = h.rules();
    assert!(v4.contains("203.0.113.0/24") && v4.contains("192.0.2.21"));
    h.client(&["unban", "--all"]);
    assert_eq!(h.rules(), admin);
}

/// `iptables -S` and `ip6tables -S` of ufw's user chains.
fn live_chains(h: &UfwHost) -> (String, String) {
    (
        h.run("iptables", &["-S", "ufw-user-input"]),
        h.run("ip6tables", &["-S", "ufw6-user-input"]),
    )
}

/// The handles the kernel gave the rules of `ufw-user-input`, by rule.
fn handles(h: &UfwHost) -> Vec<String> {
    h.srv
        .output(
            "nft",
            &["-a", "list", "chain", "ip", "filter", "ufw-user-input"],
        )
        .lines()
        .filter(|l| l.contains("# handle"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn over_netlink_the_chain_reads_as_ufw_itself_loads_it() {
    let h = UfwHost::new("uf7");
    let atk = Netns::new("uf7a");
    let inno = Netns::new("uf7i");
    link(
        &h.srv,
        &["192.0.2.1/24", "2001:db8:1::1/64"],
        &atk,
        &["192.0.2.66/24", "2001:db8:1::66/64"],
        "uf7a",
    );
    link(
        &h.srv,
        &["198.51.100.1/24"],
        &inno,
        &["198.51.100.7/24"],
        "uf7i",
    );
    let any: SocketAddr = "[::]:587".parse().unwrap();
    let listener = h.srv.run(move || TcpListener::bind(any).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    admin_rules(&h);
    let admin = h.rules();
    let admin_live = live_chains(&h);
    let admin_handles = handles(&h);
    // A second jail: several ports and ranges (multiport), dropped; a
    // third: a ufw application profile (its rules carry ufw's comment).
    std::fs::write(
        h.etc().join("applications.d/nftjail-zimbra"),
        "[zimbra-mail]\ntitle=Zimbra\ndescription=mail\nports=587,465/tcp|143/udp\n",
    )
    .unwrap();
    let log = h.dir.path().join("mail.log");
    let config = h.config_with(
        Some("ufw"),
        &format!(
            "[jail.web]\nfilter = \"postfix-sasl\"\nlogpath = \"{log}\"\nport = \"25,587,1000:2000\"\nblocktype = \"drop\"\nbantime = \"1h\"\n\
             [jail.zim]\nfilter = \"postfix-sasl\"\nlogpath = \"{log}\"\napp = \"zimbra-mail\"\nbantime = \"1h\"\n",
            log = log.display()
        ),
    );
    let d = h.daemon_with(config, &[]);
    assert!(d.log().contains("changed over netlink"), "{}", d.log());

    for i in 1..=20 {
        h.client(&["ban", JAIL, &format!("203.0.113.{i}")]);
        h.client(&["ban", JAIL, &format!("2001:db8:9::{i:x}")]);
    }
    h.client(&["ban", JAIL, "192.0.2.66"]);
    h.client(&["ban", JAIL, "2001:db8:1::66"]);
    h.client(&["ban", JAIL, "10.16.0.0/12"]);
    h.client(&["ban", JAIL, "2001:db8:76::/47"]);
    h.client(&["ban", "web", "198.18.0.9"]);
    h.client(&["ban", "web", "2001:db8:5::9"]);
    h.client(&["ban", "zim", "198.18.0.10"]);
    h.client(&["ban", "zim", "2001:db8:5::10"]);
    h.client(&["unban", JAIL, "203.0.113.7"]);
    h.client(&["unban", JAIL, "2001:db8:9::7"]);

    let ours = live_chains(&h);
    assert!(
        ours.0
            .contains("-A ufw-user-input -s 192.0.2.66/32 -p tcp -m tcp --dport 587 -j REJECT --reject-with tcp-reset"),
        "{}",
        ours.0
    );
    assert!(ours.0.contains("-s 10.16.0.0/12"), "{}", ours.0);
    assert!(
        ours.0
            .contains("-A ufw-user-input -s 198.18.0.9/32 -p tcp -m multiport --dports 25,587,1000:2000 -j DROP"),
        "{}",
        ours.0
    );
    assert!(!ours.0.contains("203.0.113.7/32"), "{}", ours.0);
    assert!(ours.0.contains("dapp_zimbra-mail"), "{}", ours.0);
    assert!(
        ours.1.contains("-s 2001:db8:5::10/128 -p udp"),
        "{}",
        ours.1
    );
    // The admin's rules kept their handles: never deleted and added again.
    let now = handles(&h);
    for rule in &admin_handles {
        assert!(now.contains(rule), "{rule} untouched in:\n{now:#?}");
    }
    assert_eq!(
        connect(&atk, "192.0.2.1:587"),
        Err(ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        connect(&atk, "[2001:db8:1::1]:587"),
        Err(ErrorKind::ConnectionRefused)
    );
    assert_eq!(connect(&inno, "198.51.100.1:587"), Ok(()));

    // What ufw itself loads from the same files reads the same, rule for rule.
    h.ufw(&["reload"]);
    assert_eq!(live_chains(&h), ours, "netlink's chains and ufw's agree");

    h.client(&["unban", "--all"]);
    assert_eq!(h.rules(), admin, "the admin's files, byte for byte");
    assert_eq!(live_chains(&h), admin_live);
    assert_eq!(connect(&atk, "192.0.2.1:587"), Ok(()));
    assert!(!d.log().contains("loading it whole"), "{}", d.log());
}

#[test]
fn ufw_disable_enable_flush_and_a_flushed_chain_heal() {
    let h = UfwHost::new("uf8");
    let atk = Netns::new("uf8a");
    link(&h.srv, &["192.0.2.1/24"], &atk, &["192.0.2.66/24"], "uf8a");
    let any: SocketAddr = "0.0.0.0:587".parse().unwrap();
    let listener = h.srv.run(move || TcpListener::bind(any).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    admin_rules(&h);
    let d = h.daemon(Some("ufw"), &[]);
    h.client(&["ban", JAIL, "192.0.2.66"]);
    h.client(&["ban", JAIL, "2001:db8::66"]);
    let banned = live_chains(&h);
    assert!(banned.0.contains("192.0.2.66"), "{}", banned.0);
    let refused = || connect(&atk, "192.0.2.1:587") == Err(ErrorKind::ConnectionRefused);
    assert!(refused());

    // ufw's own round trip: ours come back from its files.
    h.ufw(&["disable"]);
    assert_eq!(connect(&atk, "192.0.2.1:587"), Ok(()), "ufw off");
    h.ufw(&["--force", "enable"]);
    assert!(refused(), "ufw enable restores ours from the files");
    assert!(
        h.numbered()[1].contains("192.0.2.66"),
        "{:#?}",
        h.numbered()
    );
    assert_eq!(live_chains(&h), banned);

    // Someone empties ufw's chain: it is loaded again.
    h.run("iptables", &["-F", "ufw-user-input"]);
    eventually("the flushed chain put back", || live_chains(&h) == banned);
    assert!(refused());
    assert!(d.log().contains("loading it whole"), "{}", d.log());

    // Someone flushes the whole ruleset: ufw is started again, ours with it.
    h.srv.output("nft", &["flush", "ruleset"]);
    // ufw-init loads one family after the other: wait for both.
    let listed = |program: &str, chain: &str| {
        h.command(program)
            .args(["-S", chain])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    eventually("ufw's chains put back after a flush", || {
        listed("iptables", "ufw-user-input") == banned.0
            && listed("ip6tables", "ufw6-user-input") == banned.1
    });
    assert_eq!(live_chains(&h), banned);
    assert!(refused());
    assert!(d.log().contains("starting ufw again"), "{}", d.log());
    h.client(&["unban", "--all"]);
    assert_eq!(connect(&atk, "192.0.2.1:587"), Ok(()));
}
