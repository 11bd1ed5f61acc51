#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Bans without timeout: blocklist files (loaded at start, followed on
//! reload, bad lines reported and skipped) and `nftjail ban --permanent`
//! (kept across restarts and reboots, lifted by `unban`). A real daemon
//! with the nft backend in throwaway network namespaces, real TCP.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{kernel, kernel_set, link, Daemon, Netns, Workdir};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const SRV4: &str = "192.0.2.1:587";

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    /// One jail `j` on port 587 whose blocklist is `bl.txt` (from
    /// `[defaults]`, so both places are read).
    fn new(blocklist: &str) -> Setup {
        let w = Workdir::new(
            &["j.log"],
            "[defaults]\nblocklist = \"{d}/bl.txt\"\n\
             [jail.j]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/j.log\"\n\
             port = \"587\"\nmaxretry = 1\nbantime = \"1h\"\nignoreip = [\"198.18.0.0/24\"]\n",
        );
        w.write("bl.txt", blocklist);
        Setup(w)
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, Duration::from_secs(60))
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

fn listen(ns: &Netns, on: &str) {
    let addr: SocketAddr = on.parse().unwrap();
    let listener = ns.run(move || TcpListener::bind(addr).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
}

/// Elements of a set with no timeout, and those with one.
fn untimed(ns: &Netns, set: &str) -> (Vec<String>, Vec<String>) {
    let (forever, timed): (Vec<_>, Vec<_>) = kernel(ns, set)
        .into_iter()
        .partition(|e| e.timeout.is_none());
    (
        forever.into_iter().map(|e| e.val).collect(),
        timed.into_iter().map(|e| e.val).collect(),
    )
}

/// The first line of the log so far containing `needle`.
fn logged(d: &Daemon, needle: &str) -> String {
    let log = d.log();
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"))
        .to_string()
}

/// The `ms=` field of a log line.
fn ms(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ms= in {line}"))
}

#[test]
fn a_blocklist_is_loaded_without_timeout_refuses_tcp_and_follows_reloads() {
    let s = Setup::new(
        "# addresses that never get in\n\
         192.0.2.66\n\
         203.0.113.0/24 ; a whole network\n\
         this is not an address\n\
         \n\
         192.0.2.0/24\n\
         198.18.0.7\n\
         2001:db8:9::/48\n",
    );
    let srv = Netns::new("bl-srv");
    let atk = Netns::new("bl-atk");
    link(&srv, &["192.0.2.1/24"], &atk, &["192.0.2.66/24"], "bl");
    listen(&srv, SRV4);
    assert_eq!(connect(&atk, SRV4), Ok(()), "reaches the port before");

    // `nftjail check` names the bad line as a warning and accepts the config.
    let check = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(s.path("nftjail.toml"))
        .output()
        .unwrap();
    let warned = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(check.status.success(), "{warned}");
    assert!(
        warned.contains(&format!("{}:4: ", s.path("bl.txt").display())),
        "{warned}"
    );

    let mut d = s.start(&srv);
    let log = d.log();
    let bad = format!(
        "{}:4: \"this is not an address\"",
        s.path("bl.txt").display()
    );
    assert!(
        log.contains(&bad),
        "the bad line is named with file:line:\n{log}"
    );
    // The /24 covers the host's own 192.0.2.1, 198.18.0.7 is in ignoreip.
    assert!(
        log.contains("blocklist entry 192.0.2.0/24 skipped"),
        "{log}"
    );
    assert!(
        log.contains("blocklist entry 198.18.0.7/32 skipped"),
        "{log}"
    );

    assert_eq!(
        untimed(&srv, "j-v4"),
        (vec!["192.0.2.66".to_string()], vec![])
    );
    assert_eq!(
        untimed(&srv, "j-net4"),
        (vec!["203.0.113.0/24".to_string()], vec![])
    );
    assert_eq!(
        untimed(&srv, "j-net6"),
        (vec!["2001:db8:9::/48".to_string()], vec![])
    );
    assert_eq!(connect(&atk, SRV4), Err(ErrorKind::ConnectionRefused));
    let banned = s.cli(&["banned"]);
    assert!(
        banned.contains("j\t192.0.2.66\tpermanent"),
        "listed as permanent:\n{banned}"
    );

    // Edited: the attacker's line goes, a network comes; reload.
    std::fs::write(
        s.path("bl.txt"),
        "203.0.113.0/24\n198.51.100.0/24\n2001:db8:9::/48\n",
    )
    .unwrap();
    let started = Instant::now();
    s.cli(&["reload"]);
    eprintln!("reload with the edited blocklist: {:?}", started.elapsed());
    assert!(kernel_set(&srv, "j-v4").is_empty());
    assert_eq!(
        kernel_set(&srv, "j-net4"),
        ["198.51.100.0/24", "203.0.113.0/24"]
            .map(String::from)
            .into()
    );
    let line = d.wait_for(
        "blocklist applied: 1 added, 1 removed, 2 unchanged",
        Duration::from_secs(5),
    );
    eprintln!("{line}");
    assert_eq!(connect(&atk, SRV4), Ok(()), "let in once off the list");

    // The file gone: a reload keeps what it had loaded, and says why.
    std::fs::remove_file(s.path("bl.txt")).unwrap();
    s.cli(&["reload"]);
    d.wait_for("cannot be read", Duration::from_secs(5));
    assert_eq!(kernel_set(&srv, "j-net4").len(), 2);
    d.stop();
}

#[test]
fn a_permanent_ban_survives_restart_and_reboot_and_is_lifted_by_unban() {
    let s = Setup::new("");
    let ns = Netns::new("bl-perm");
    let mut d = s.start(&ns);
    let out = s.cli(&["ban", "j", "192.0.2.7", "--permanent"]);
    assert!(out.contains("192.0.2.7 banned (permanent)"), "{out}");
    s.cli(&["ban", "j", "198.51.100.0/24", "--permanent"]);
    s.cli(&["ban", "j", "2001:db8::5", "--permanent"]);
    // A timed ban made permanent: replaced in place.
    s.cli(&["ban", "j", "192.0.2.8", "--for", "1h"]);
    let out = s.cli(&["ban", "j", "192.0.2.8", "--permanent"]);
    assert!(out.contains("ban extended (permanent)"), "{out}");
    let out = s.cli(&["ban", "j", "192.0.2.8", "--for", "2h"]);
    assert!(
        out.contains("already banned"),
        "a timed ban does not shorten it: {out}"
    );

    let expect = |ns: &Netns| {
        assert_eq!(
            untimed(ns, "j-v4"),
            (vec!["192.0.2.7".into(), "192.0.2.8".into()], vec![])
        );
        assert_eq!(untimed(ns, "j-v6"), (vec!["2001:db8::5".into()], vec![]));
        assert_eq!(
            untimed(ns, "j-net4"),
            (vec!["198.51.100.0/24".into()], vec![])
        );
    };
    expect(&ns);
    let status = s.cli(&["status", "j"]);
    assert!(status.contains("Currently banned:\t4"), "{status}");
    assert!(status.contains("Permanent (no timeout):\t4"), "{status}");
    let banned = s.cli(&["banned", "198.51.100.9"]);
    assert!(banned.contains("j\t198.51.100.0/24\tpermanent"), "{banned}");

    // Someone flushes the ruleset: the heal puts them back, still without timeout.
    ns.output("nft", &["flush", "ruleset"]);
    d.wait_for("rebuilt it and restored 4 bans", Duration::from_secs(10));
    expect(&ns);

    // Restart: the kernel kept them.
    d.stop();
    let mut d1 = s.start(&ns);
    expect(&ns);
    // Reboot: a table deleted while stopped is rebuilt from the store.
    d1.stop();
    ns.output("nft", &["delete", "table", "inet", "nftjail"]);
    let mut d2 = s.start(&ns);
    expect(&ns);
    assert!(s.cli(&["banned"]).contains("j\t192.0.2.7\tpermanent"));

    s.cli(&["unban", "j", "192.0.2.7"]);
    s.cli(&["unban", "j", "198.51.100.0/24"]);
    assert_eq!(kernel_set(&ns, "j-v4"), ["192.0.2.8".to_string()].into());
    assert!(kernel_set(&ns, "j-net4").is_empty());
    d2.stop();
    ns.output("nft", &["delete", "table", "inet", "nftjail"]);
    let mut d3 = s.start(&ns);
    assert_eq!(kernel_set(&ns, "j-v4"), ["192.0.2.8".to_string()].into());
    assert!(
        kernel_set(&ns, "j-net4").is_empty(),
        "an unban is stored too"
    );
    d3.stop();
}

#[test]
fn a_blocklist_of_100k_lines_loads_and_reloads() {
    // 90,000 addresses and 10,000 /28 networks, plus a bad line.
    let mut text = String::with_capacity(2 << 20);
    for i in 0..90_000u32 {
        let a = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + i);
        text.push_str(&format!("{a}\n"));
    }
    for i in 0..10_000u32 {
        let a = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + i * 16);
        text.push_str(&format!("{a}/28\n"));
    }
    text.push_str("999.1.2.3\n");
    let s = Setup::new(&text);
    let ns = Netns::new("bl-100k");
    let started = Instant::now();
    let mut d = s.start(&ns);
    let line = logged(&d, "blocklist applied");
    eprintln!(
        "100k-line blocklist: applied in {} ms by the enforcer, daemon ready after {:?}",
        ms(&line),
        started.elapsed()
    );
    assert!(line.contains("100000 added"), "{line}");
    assert!(d.log().contains("bl.txt:100001: "), "the bad line is named");
    assert_eq!(kernel(&ns, "j-v4").len(), 90_000);
    assert_eq!(kernel(&ns, "j-net4").len(), 10_000);
    assert!(kernel(&ns, "j-net4").iter().all(|e| e.timeout.is_none()));

    // Reloaded unchanged: nothing sent.
    s.cli(&["reload"]);
    let line = d.wait_for("blocklist applied", Duration::from_secs(30));
    eprintln!("100k-line blocklist reloaded unchanged: {} ms", ms(&line));
    assert!(
        line.contains("0 added, 0 removed, 100000 unchanged"),
        "{line}"
    );

    // A restart knows them from the store: nothing to send either.
    d.stop();
    let mut d = s.start(&ns);
    let line = logged(&d, "blocklist applied");
    assert!(
        line.contains("0 added, 0 removed, 100000 unchanged"),
        "{line}"
    );
    assert_eq!(kernel(&ns, "j-v4").len(), 90_000);

    // A reboot: the store puts them all back, without timeout.
    d.stop();
    ns.output("nft", &["delete", "table", "inet", "nftjail"]);
    let started = Instant::now();
    let d = s.start(&ns);
    eprintln!(
        "100k permanent bans restored from the store, ready after {:?}",
        started.elapsed()
    );
    let line = logged(&d, "blocklist applied");
    assert!(
        line.contains("0 added, 0 removed, 100000 unchanged"),
        "{line}"
    );
    assert_eq!(kernel(&ns, "j-v4").len(), 90_000);
    let nets = kernel(&ns, "j-net4");
    assert_eq!(nets.len(), 10_000);
    assert!(nets.iter().all(|e| e.timeout.is_none()));
}
