#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Someone else edits our table while the daemon runs: an `accept` rule put
//! in front of ours, `nft flush set`, elements deleted or added by hand. The
//! daemon puts back what is its own, shows what is not, and `status` and
//! `banned` say what the kernel holds. A real daemon with the nft backend in
//! throwaway network namespaces.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{kernel, kernel_set, link, require_root, wait_until, Daemon, Netns, Workdir};
use ipnet::IpNet;
use nftjail::enforce::nft::NftBackend;
use nftjail::enforce::{Applied, Backend};
use nftjail::message::{BanOrder, Cause};
use nftjail::rules::{BlockType, JailRules};

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup(Workdir::new(
            &["a.log"],
            "[jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 1\nbantime = \"1h\"\n",
        ))
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, Duration::from_secs(20))
    }

    fn append(&self, text: &str) {
        self.0.append("a.log", text);
    }

    /// `n` bans through the log, 10.x.y.z from 10.0.0.1 on.
    fn ban_many(&self, n: u32) {
        let lines: String = (1..=n)
            .map(|i| {
                format!(
                    "fail from 10.{}.{}.{}\n",
                    i >> 16 & 255,
                    i >> 8 & 255,
                    i & 255
                )
            })
            .collect();
        self.append(&lines);
    }

    /// `Currently banned` of `nftjail status a`.
    fn status_count(&self) -> usize {
        let out = self.cli(&["status", "a"]);
        out.lines()
            .find_map(|l| l.split("Currently banned:").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in {out}"))
    }
}

/// How many heals the daemon logged so far.
fn heals(d: &Daemon) -> usize {
    d.log().matches("changed by someone else").count()
}

/// After the last heal, nothing more: our own repairs must not look like
/// someone else's change to the watcher.
fn assert_quiet(d: &Daemon) {
    let before = heals(d);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(heals(d), before, "a heal caused another: {}", d.log());
}

fn connect(ns: &Netns, to: SocketAddr) -> Result<(), ErrorKind> {
    ns.run(move || {
        TcpStream::connect_timeout(&to, Duration::from_millis(500))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

#[test]
fn an_accept_rule_put_before_ours_is_removed_and_the_ban_holds() {
    let s = Setup::new();
    let srv = Netns::new("tp-srv");
    let atk = Netns::new("tp-atk");
    link(&srv, &["192.0.2.1/24"], &atk, &["192.0.2.66/24"], "tp");
    let to: SocketAddr = "192.0.2.1:2222".parse().unwrap();
    let listener = srv.run(move || TcpListener::bind(to).unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    assert_eq!(connect(&atk, to), Ok(()), "reachable before any ban");

    let d = s.start(&srv);
    s.cli(&["ban", "a", "192.0.2.66"]);
    assert_eq!(connect(&atk, to), Err(ErrorKind::ConnectionRefused));

    srv.output(
        "nft",
        &[
            "insert",
            "rule",
            "inet",
            "nftjail",
            "input",
            "ip",
            "saddr",
            "192.0.2.66",
            "accept",
            "comment",
            "\"let me in\"",
        ],
    );
    wait_until("the inserted rule removed", Duration::from_secs(5), || {
        !srv.output("nft", &["list", "chain", "inet", "nftjail", "input"])
            .contains("let me in")
    });
    let rules = srv.output("nft", &["list", "chain", "inet", "nftjail", "input"]);
    assert!(rules.contains("jump j-a"), "our rules rebuilt: {rules}");
    let jail = srv.output("nft", &["list", "chain", "inet", "nftjail", "j-a"]);
    assert!(jail.contains("@a-v4"), "the jail's chain rebuilt: {jail}");
    assert_eq!(
        connect(&atk, to),
        Err(ErrorKind::ConnectionRefused),
        "the banned address is refused again"
    );

    // The same inside the jail's own chain.
    let healed = heals(&d);
    srv.output(
        "nft",
        &[
            "insert",
            "rule",
            "inet",
            "nftjail",
            "j-a",
            "ip",
            "saddr",
            "192.0.2.66",
            "accept",
            "comment",
            "\"in the jail chain\"",
        ],
    );
    wait_until(
        "the rule in the jail chain removed",
        Duration::from_secs(5),
        || {
            heals(&d) > healed
                && !srv
                    .output("nft", &["list", "chain", "inet", "nftjail", "j-a"])
                    .contains("in the jail chain")
        },
    );
    let jail = srv.output("nft", &["list", "chain", "inet", "nftjail", "j-a"]);
    assert!(jail.contains("@a-v4"), "the jail's chain rebuilt: {jail}");
    assert_eq!(
        connect(&atk, to),
        Err(ErrorKind::ConnectionRefused),
        "the banned address is refused after the second heal"
    );
    assert_eq!(
        kernel_set(&srv, "a-v4"),
        BTreeSet::from(["192.0.2.66".to_string()])
    );
    assert_quiet(&d);
}

#[test]
fn a_flushed_set_and_deleted_elements_come_back_and_status_counts_the_kernel() {
    const N: u32 = 500;
    let s = Setup::new();
    let ns = Netns::new("tp-flush");
    let d = s.start(&ns);
    s.ban_many(N);
    wait_until("the bans", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").len() == N as usize
    });
    let before = kernel(&ns, "a-v4");
    assert_eq!(s.status_count(), N as usize);

    ns.output("nft", &["flush", "set", "inet", "nftjail", "a-v4"]);
    wait_until("the flushed bans back", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").len() == N as usize
    });
    assert_eq!(s.status_count(), N as usize, "status counts the kernel");
    for e in kernel(&ns, "a-v4") {
        let old = before.iter().find(|b| b.val == e.val).unwrap();
        // Put back with the time it had left, never more.
        assert!(
            e.expires.unwrap() <= old.expires.unwrap() + 1,
            "{e:?} vs {old:?}"
        );
        assert!(e.timeout.is_some(), "{e:?}");
    }

    ns.output(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{ 10.0.0.7, 10.0.0.9 }",
        ],
    );
    wait_until("the deleted elements back", Duration::from_secs(10), || {
        let k = kernel_set(&ns, "a-v4");
        k.contains("10.0.0.7") && k.contains("10.0.0.9")
    });
    assert_eq!(s.status_count(), kernel_set(&ns, "a-v4").len());
    assert_quiet(&d);
}

#[test]
fn an_element_added_by_hand_is_shown_as_foreign_and_left_to_the_admin() {
    let s = Setup::new();
    let ns = Netns::new("tp-hand");
    let d = s.start(&ns);
    s.cli(&["ban", "a", "192.0.2.10"]);
    ns.output(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{ 203.0.113.9 timeout 5m }",
        ],
    );
    let status = s.cli(&["status", "a"]);
    assert!(status.contains("Currently banned:\t2"), "{status}");
    assert!(
        status.contains("Not banned by nftjail:\t203.0.113.9"),
        "{status}"
    );
    let banned = s.cli(&["banned"]);
    let line = banned
        .lines()
        .find(|l| l.contains("203.0.113.9"))
        .unwrap_or_else(|| panic!("{banned}"));
    assert!(line.contains("not banned by nftjail"), "{banned}");
    let ours = banned.lines().find(|l| l.contains("192.0.2.10")).unwrap();
    assert!(!ours.contains("not banned by nftjail"), "{banned}");
    assert_eq!(s.status_count(), kernel_set(&ns, "a-v4").len());

    // A flushed set: ours comes back, the admin's stays gone.
    ns.output("nft", &["flush", "set", "inet", "nftjail", "a-v4"]);
    wait_until("our ban back", Duration::from_secs(5), || {
        kernel_set(&ns, "a-v4").contains("192.0.2.10")
    });
    assert_quiet(&d);
    assert_eq!(
        kernel_set(&ns, "a-v4"),
        BTreeSet::from(["192.0.2.10".to_string()])
    );
    assert_eq!(s.status_count(), 1);

    // Added by hand again, then banned by us: our ban replaces it, with our bantime.
    ns.output(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{ 203.0.113.9 timeout 5m }",
        ],
    );
    wait_until(
        "the element seen as foreign",
        Duration::from_secs(5),
        || s.cli(&["banned"]).contains("not banned by nftjail"),
    );
    s.append("fail from 203.0.113.9\n");
    wait_until("our ban of 203.0.113.9", Duration::from_secs(5), || {
        kernel(&ns, "a-v4")
            .iter()
            .any(|e| e.val == "203.0.113.9" && e.timeout == Some(3600))
    });
    let banned = s.cli(&["banned"]);
    assert!(!banned.contains("not banned by nftjail"), "{banned}");

    // An admin's element is lifted when named in an unban.
    ns.output(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{ 203.0.113.10 }",
        ],
    );
    assert!(s
        .cli(&["banned", "203.0.113.10"])
        .contains("not banned by nftjail"));
    let out = s.cli(&["unban", "203.0.113.10"]);
    assert!(out.contains("203.0.113.10 unbanned"), "{out}");
    assert!(!kernel_set(&ns, "a-v4").contains("203.0.113.10"));
    assert_quiet(&d);
}

/// Prints how long 10,000 bans take to come back after `nft flush set`,
/// and checks they come back in one heal.
#[test]
fn ten_thousand_flushed_bans_come_back_in_one_heal() {
    const N: u32 = 10_000;
    let s = Setup::new();
    let ns = Netns::new("tp-10k");
    let d = s.start(&ns);
    s.ban_many(N);
    wait_until("the bans", Duration::from_secs(60), || {
        kernel_set(&ns, "a-v4").len() == N as usize
    });
    assert_quiet(&d);
    let heals_before = heals(&d);
    let flushed = jiff::Timestamp::now();
    ns.output("nft", &["flush", "set", "inet", "nftjail", "a-v4"]);
    wait_until("the flushed bans back", Duration::from_secs(30), || {
        kernel_set(&ns, "a-v4").len() == N as usize
    });
    // The daemon stamps its log line once the restoring transaction is
    // committed: measured from there, not from our slower polling.
    // The elements can be seen before the line is written, and a flush seen
    // in two bursts is restored in two parts: wait for the line, and time
    // from the last part's stamp.
    wait_until("the restore logged", Duration::from_secs(10), || {
        d.log().lines().any(|l| l.contains("restored "))
    });
    let log = d.log();
    let stamps: Vec<(jiff::Timestamp, &str)> = log
        .lines()
        .filter(|l| l.contains("restored ") && l.contains(" bans"))
        .filter_map(|l| Some((l.split_whitespace().next()?.parse().ok()?, l)))
        .collect();
    if let Some((restored, line)) = stamps.last() {
        eprintln!(
            "`nft flush set` of {N} bans: all back in the kernel {:.1} ms after the command started; {line}",
            (*restored - flushed).as_secs_f64() * 1000.0
        );
    }
    // The events of one flush may reach the watcher in two bursts (the
    // second heal finds nothing missing): let the second land, then nothing
    // more may follow, and no more than two may have run.
    std::thread::sleep(Duration::from_secs(1));
    assert_quiet(&d);
    let healed = heals(&d) - heals_before;
    assert!((1..=2).contains(&healed), "{healed} heals: {}", d.log());
    assert_eq!(s.status_count(), N as usize);
}

/// The backend alone, no watcher: what a listing finds in the kernel, and
/// what it asks of the enforcer.
#[test]
fn a_listing_reads_the_kernel_and_tells_our_elements_from_foreign_ones() {
    require_root();
    // SAFETY: unshare has no memory-safety preconditions; it moves only
    // this test's thread (and the nft it forks) into a new namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let nft = |args: &[&str]| {
        let out = std::process::Command::new("/usr/sbin/nft")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let order = |addr: &str| BanOrder {
        failures: 1,
        cause: Cause::default(),
        ..BanOrder::host("a".into(), addr.parse().unwrap(), Duration::from_secs(3600))
    };
    let nets = |list: &[(IpNet, Option<Duration>)]| -> Vec<String> {
        list.iter().map(|(n, _)| n.addr().to_string()).collect()
    };
    let jails = [JailRules {
        name: "a".into(),
        ports: Vec::new(),
        blocktype: BlockType::Drop,
        app: None,
    }];
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&jails).unwrap();
    b.ban(&[order("192.0.2.1"), order("192.0.2.2")]).unwrap();
    nft(&[
        "add",
        "element",
        "inet",
        "nftjail",
        "a-v4",
        "{ 203.0.113.9 timeout 5m }",
    ]);

    let k = b.in_kernel("a").unwrap();
    assert_eq!(nets(&k.ours), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(nets(&k.foreign), ["203.0.113.9"]);
    assert!(k.foreign[0]
        .1
        .is_some_and(|d| d <= Duration::from_secs(300)));
    assert!(!b.tampered(), "nothing of ours is missing");

    nft(&[
        "delete",
        "element",
        "inet",
        "nftjail",
        "a-v4",
        "{ 192.0.2.1 }",
    ]);
    let k = b.in_kernel("a").unwrap();
    assert_eq!(
        nets(&k.ours),
        ["192.0.2.2"],
        "the kernel's word, not the record's"
    );
    assert!(b.tampered(), "a ban of ours missing asks for a heal");

    // A rebuild (as a heal does it) keeps the hand-added element apart.
    b.reconcile(&jails).unwrap();
    assert_eq!(nets(&b.in_kernel("a").unwrap().foreign), ["203.0.113.9"]);

    // Our own ban of that address replaces it, with our bantime.
    assert_eq!(b.ban(&[order("203.0.113.9")]).unwrap(), [Applied::Added]);
    let k = b.in_kernel("a").unwrap();
    assert!(k.foreign.is_empty(), "{k:?}");
    assert_eq!(nets(&k.ours), ["192.0.2.2", "203.0.113.9"]);
    let listed = nft(&["list", "set", "inet", "nftjail", "a-v4"]);
    assert!(listed.contains("203.0.113.9 timeout 1h"), "{listed}");

    // Named in an unban, a hand-added element is lifted; unnamed, never.
    nft(&[
        "add",
        "element",
        "inet",
        "nftjail",
        "a-v4",
        "{ 203.0.113.10 }",
    ]);
    assert_eq!(nets(&b.in_kernel("a").unwrap().foreign), ["203.0.113.10"]);
    assert!(b.unban("a", "203.0.113.10".parse().unwrap()).unwrap());
    let listed = nft(&["list", "set", "inet", "nftjail", "a-v4"]);
    assert!(!listed.contains("203.0.113.10"), "{listed}");
    assert!(b.in_kernel("a").unwrap().foreign.is_empty());
}
