#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! `nftjail report` and `nftjail explain` over what a real daemon (nft
//! backend, in a throwaway network namespace) recorded: a botnet's /24
//! whose addresses each stay under maxretry comes out as one prefix row at
//! the top; a banned address is explained by its rule and its lines. Both
//! read the store with the daemon running and after it stopped.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{kernel_set, wait_until, Daemon, Netns, Workdir};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup::with("")
    }

    /// With `extra` appended to the mail jail's table (a `[jail.mail.prefix]`).
    fn with(extra: &str) -> Setup {
        Setup(Workdir::new(
            &["mail.log"],
            &format!(
                "[jail.mail]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{{d}}/mail.log\"\n\
                 maxretry = 3\nfindtime = \"1h\"\nbantime = \"1h\"\n{extra}"
            ),
        ))
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, Duration::from_secs(20))
    }

    fn append(&self, text: &str) {
        self.0.append("mail.log", text);
    }

    /// `nftjail ARGS` with this config, as its output.
    fn nftjail(&self, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(self.path("nftjail.toml"))
            .args(args)
            .output()
            .unwrap()
    }

    fn report(&self) -> serde_json::Value {
        let out = self.nftjail(&["report", "--json"]);
        assert!(
            out.status.success(),
            "report: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

const BOTNET: std::ops::RangeInclusive<u8> = 10..=18;
const BANNED: &str = "203.0.113.7";

fn attack() -> String {
    let mut log = String::new();
    for _ in 0..2 {
        for i in BOTNET {
            log.push_str(&format!("fail from 95.181.157.{i}\n"));
        }
    }
    for _ in 0..3 {
        log.push_str(&format!("fail from {BANNED}\n"));
    }
    log
}

/// What must hold of the report of [`attack`], whether the daemon runs or not.
fn check_report(r: &serde_json::Value) {
    let prefix = &r["prefixes"][0];
    assert_eq!(prefix["prefix"], "95.181.157.0/24", "{r:#}");
    assert_eq!(prefix["addresses"], 9, "{r:#}");
    assert_eq!(prefix["failures"], 18, "{r:#}");
    assert_eq!(prefix["banned"], false, "{r:#}");
    let addresses = r["addresses"].as_array().unwrap();
    let banned = addresses
        .iter()
        .find(|a| a["address"] == BANNED)
        .unwrap_or_else(|| panic!("{BANNED} in the addresses: {r:#}"));
    assert_eq!(banned["failures"], 3);
    assert_eq!(banned["banned"], true);
    assert_eq!(banned["bans"], 1);
    let bot = addresses
        .iter()
        .find(|a| a["address"] == "95.181.157.10")
        .unwrap();
    assert_eq!(
        (bot["failures"].as_u64(), bot["banned"].as_bool()),
        (Some(2), Some(false))
    );
    let jail = &r["jails"][0];
    assert_eq!(
        (
            &jail["jail"],
            &jail["failures"],
            &jail["bans"],
            &jail["banned_now"]
        ),
        (&"mail".into(), &21.into(), &1.into(), &1.into()),
        "{r:#}"
    );
    assert_eq!(r["dropped"], 0);
    assert!(r["since"].as_str().unwrap() < r["until"].as_str().unwrap());
}

fn check_explain(s: &Setup) {
    let out = s.nftjail(&["explain", "mail", BANNED]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(0), "banned: exit 0\n{text}");
    assert!(text.contains("window 0"), "{text}");
    assert_eq!(
        text.matches(&format!("fail from {BANNED}")).count(),
        // the decisive line, then the three failures
        4,
        "{text}"
    );

    let out = s.nftjail(&["explain", "mail", "95.181.157.10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "not banned: exit 1\n{text}");
    assert!(text.contains("2 of 3 failures"), "{text}");
    assert!(
        text.contains("prefix 95.181.157.0/24: 9 distinct failing addresses"),
        "{text}"
    );

    let out = s.nftjail(&["explain", "mail", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "an error: exit 2");
}

#[test]
fn a_botnets_prefix_tops_the_report_and_a_ban_is_explained() {
    let s = Setup::new();
    let ns = Netns::new("rep");
    let mut d = s.start(&ns);
    s.append(&attack());
    wait_until("the ban", Duration::from_secs(10), || {
        kernel_set(&ns, "mail-v4").contains(BANNED)
    });
    // The store follows the kernel within the writer's batching.
    wait_until("the report to hold it all", Duration::from_secs(10), || {
        let r = s.report();
        r["jails"][0]["failures"] == 21 && r["jails"][0]["bans"] == 1
    });
    let started = Instant::now();
    let r = s.report();
    eprintln!("report while running: {:?}", started.elapsed());
    check_report(&r);
    check_explain(&s);
    let human = s.nftjail(&["report"]);
    let page = String::from_utf8_lossy(&human.stdout);
    eprintln!("{page}");
    assert!(human.status.success());
    let first_prefix = page
        .lines()
        .skip_while(|l| !l.starts_with("Top prefixes"))
        .nth(2)
        .unwrap_or_default();
    assert!(first_prefix.contains("95.181.157.0/24"), "{page}");
    assert_eq!(kernel_set(&ns, "mail-v4").len(), 1, "nothing else banned");

    d.stop();
    check_report(&s.report());
    check_explain(&s);
}

#[test]
fn report_on_a_missing_store_says_so() {
    let s = Setup::new();
    let out = s.nftjail(&["report", "--state-dir", s.path("nowhere").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has the daemon run"), "{err}");
    let out = s.nftjail(&["explain", "mail", BANNED, "--state-dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A prefix ban is explained by its rule, with the failures of every
/// address of the prefix that led to it.
#[test]
fn a_prefix_ban_is_explained_with_the_lines_of_its_addresses() {
    let s = Setup::with("[jail.mail.prefix]\nmaxaddrs = 5\nfindtime = \"1h\"\nbantime = \"1h\"\n");
    let ns = Netns::new("rep-pfx");
    let _d = s.start(&ns);
    s.append(
        &(1..=5)
            .map(|i| format!("fail from 95.181.157.{i}\n"))
            .collect::<String>(),
    );
    wait_until("the prefix ban", Duration::from_secs(10), || {
        kernel_set(&ns, "mail-net4").contains("95.181.157.0/24")
    });
    wait_until("the store to have it", Duration::from_secs(10), || {
        s.report()["jails"][0]["bans"] == 1
    });
    let r = s.report();
    assert_eq!(r["prefixes"][0]["banned"], true, "{r:#}");
    assert_eq!(r["prefixes"][0]["banned_addresses"], 5, "{r:#}");
    for target in ["95.181.157.0/24", "95.181.157.3"] {
        let out = s.nftjail(&["explain", "mail", target]);
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{text}");
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains("rule:    prefix 95.181.157.0/24: 5 distinct addresses"),
            "{text}"
        );
        assert!(text.contains("(at 5 within 1h)"), "{text}");
        for i in 1..=5 {
            assert!(
                text.contains(&format!("  fail from 95.181.157.{i}")),
                "{text}"
            );
        }
    }
    let out = s.nftjail(&["explain", "mail", "95.181.158.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "prefix 95.181.158.0/24: 0 of 5 distinct failing addresses within 1h: 5 more"
        ),
        "{text}"
    );
}
