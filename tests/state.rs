#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! State that survives: restarts, reboots (a fresh namespace, so an empty
//! kernel), `kill -9` at random moments, someone flushing the ruleset,
//! repeat offenders, and `on_stop`. A real daemon with the nft backend in
//! throwaway network namespaces; the store is read with SQLite directly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{kernel, kernel_set, wait_until, Daemon, Elem, Netns, Workdir};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    fn new(extra: &str) -> Setup {
        Setup(Workdir::new(
            &["a.log", "b.log"],
            &format!(
                "{extra}\n\
                 [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{{d}}/a.log\"\nmaxretry = 1\nbantime = \"1h\"\n\
                 [jail.b]\nfailregex = ['^bad from <HOST>$']\nlogpath = \"{{d}}/b.log\"\nmaxretry = 1\nbantime = \"2h\"\n"
            ),
        ))
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, Duration::from_secs(20))
    }

    /// The stored bans of a jail: net → (until in ms, or None).
    fn stored(&self, jail: &str) -> BTreeMap<String, Option<i64>> {
        let db = rusqlite::Connection::open(self.path("state/nftjail.db")).unwrap();
        let mut stmt = db
            .prepare("SELECT net, until FROM bans WHERE jail = ?1")
            .unwrap();
        let rows = stmt
            .query_map([jail], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .unwrap();
        rows.map(|r| r.unwrap())
            .map(|(net, until)| (net.trim_end_matches("/32").to_string(), until))
            .collect()
    }

    fn stored_set(&self, jail: &str) -> BTreeSet<String> {
        self.stored(jail).into_keys().collect()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn restart_adopts_kernel_bans_and_a_reboot_restores_remaining_time() {
    let s = Setup::new("");
    let ns = Netns::new("st-reboot");
    let mut d = s.start(&ns);
    s.append(
        "a.log",
        "fail from 203.0.113.1\nfail from 203.0.113.2\nfail from 2001:db8::7\n",
    );
    s.append("b.log", "bad from 203.0.113.9\n");
    s.cli(&["ban", "a", "198.51.100.0/24", "--for", "3h"]);
    wait_until("four bans", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").len() == 2
            && kernel_set(&ns, "a-v6").len() == 1
            && kernel_set(&ns, "b-v4").len() == 1
    });
    d.stop();
    assert_eq!(
        s.stored_set("a"),
        BTreeSet::from([
            "203.0.113.1".into(),
            "203.0.113.2".into(),
            "2001:db8::7/128".into(),
            "198.51.100.0/24".into()
        ])
    );
    assert_eq!(s.stored_set("b"), BTreeSet::from(["203.0.113.9".into()]));
    // The decisive line is kept with the ban; a manual ban has none.
    {
        let db = rusqlite::Connection::open(s.path("state/nftjail.db")).unwrap();
        let line = |net: &str| -> Option<String> {
            db.query_row("SELECT line FROM bans WHERE net = ?1", [net], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            line("203.0.113.1/32").as_deref(),
            Some("fail from 203.0.113.1")
        );
        assert_eq!(line("198.51.100.0/24"), None);
    }

    // While stopped: an admin adds a ban by hand; an old ban expired.
    ns.output(
        "nft",
        &[
            "add",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{",
            "192.0.2.77",
            "timeout",
            "30m",
            "}",
        ],
    );
    {
        let db = rusqlite::Connection::open(s.path("state/nftjail.db")).unwrap();
        db.execute(
            "INSERT INTO bans(jail, net, start, until, failures) VALUES ('a', '203.0.113.50/32', ?1, ?2, 1)",
            [now_ms() - 7_200_000, now_ms() - 1000],
        )
        .unwrap();
    }
    let mut d = s.start(&ns);
    d.stop();
    let stored = s.stored("a");
    assert!(stored.contains_key("192.0.2.77"), "adopted: {stored:?}");
    assert!(
        !stored.contains_key("203.0.113.50"),
        "expired kept: {stored:?}"
    );
    assert_eq!(
        kernel_set(&ns, "a-v4"),
        BTreeSet::from([
            "192.0.2.77".into(),
            "203.0.113.1".into(),
            "203.0.113.2".into()
        ])
    );

    // Reboot: a new namespace has an empty kernel; the store brings it all back.
    drop(ns);
    let ns = Netns::new("st-reboot2");
    assert!(kernel_set(&ns, "a-v4").is_empty());
    let mut d = s.start(&ns);
    let started = now_ms();
    let elems: Vec<Elem> = ["a-v4", "a-v6", "a-net4", "b-v4"]
        .iter()
        .flat_map(|set| kernel(&ns, set))
        .collect();
    let stored: BTreeMap<String, Option<i64>> = s
        .stored("a")
        .into_iter()
        .chain(s.stored("b"))
        .map(|(k, v)| (k.trim_end_matches("/128").to_string(), v))
        .collect();
    let vals: BTreeSet<String> = elems.iter().map(|e| e.val.clone()).collect();
    let keys: BTreeSet<String> = stored.keys().cloned().collect();
    assert_eq!(vals, keys, "kernel after reboot vs store");
    for e in &elems {
        let until = stored[&e.val].unwrap();
        let want = (until - started) as f64 / 1000.0;
        let got = e.expires.unwrap() as f64;
        // nft prints whole seconds, rounded down: allow that plus 1 s.
        assert!(
            (got - want).abs() <= 2.0,
            "{}: expires {got} s, store says {want:.1} s",
            e.val
        );
        assert!(e.timeout.unwrap() >= e.expires.unwrap());
    }
    let ban_b = elems.iter().find(|e| e.val == "203.0.113.9").unwrap();
    assert_eq!(ban_b.timeout, Some(7200), "the whole bantime is kept");
    assert!(d.log().contains("restored=6"), "{}", d.log());
    d.stop();
}

#[test]
fn kill_9_at_random_moments_loses_no_ban() {
    const TRIALS: usize = 50;
    const BURST: usize = 5000;
    let mut rng = fastrand::Rng::with_seed(0x6e66_746a);
    let mut killed_mid_burst = 0;
    for trial in 0..TRIALS {
        let s = Setup::new("");
        let ns = Netns::new(&format!("st-k{trial}"));
        let mut d = s.start(&ns);
        let burst: String = (0..BURST)
            .map(|i| format!("fail from 10.{}.{}.{}\n", trial, i / 250, i % 250 + 1))
            .collect();
        s.append("a.log", &burst);
        // The burst reaches the kernel in ~30 ms: most kills land inside it.
        std::thread::sleep(Duration::from_micros(rng.u64(0..40_000)));
        let before = kernel_set(&ns, "a-v4");
        d.child.kill().unwrap();
        let _ = d.child.wait();
        if before.len() < BURST {
            killed_mid_burst += 1;
        }

        let mut d = s.start(&ns);
        let after = kernel_set(&ns, "a-v4");
        assert!(
            before.is_subset(&after),
            "trial {trial}: {} bans visible before the kill are gone",
            before.difference(&after).count()
        );
        d.stop();
        let kernel_now = kernel_set(&ns, "a-v4");
        let stored = s.stored_set("a");
        assert_eq!(
            kernel_now, stored,
            "trial {trial}: kernel and store differ after the restart"
        );

        // And the store alone brings them back after a reboot.
        drop(ns);
        let ns = Netns::new(&format!("st-k{trial}b"));
        let mut d = s.start(&ns);
        assert_eq!(kernel_set(&ns, "a-v4"), stored, "trial {trial}: reboot");
        d.stop();
    }
    eprintln!("{killed_mid_burst} of {TRIALS} kills landed in the middle of the burst");
    assert!(
        killed_mid_burst >= 5,
        "only {killed_mid_burst} kills hit the burst: the test does not exercise a crash mid-way"
    );
}

#[test]
fn a_flushed_ruleset_is_rebuilt_with_every_ban() {
    let s = Setup::new("");
    let ns = Netns::new("st-heal");
    let mut d = s.start(&ns);
    let lines: String = (0..1000)
        .map(|i| format!("fail from 10.9.{}.{}\n", i / 250, i % 250 + 1))
        .collect();
    s.append("a.log", &lines);
    s.cli(&["ban", "a", "198.51.100.0/24"]);
    wait_until("1000 bans", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").len() == 1000
    });
    let before = kernel(&ns, "a-v4");

    // Our own reload deletes and re-adds our rules: that is not a foreign change.
    s.cli(&["reload"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!d.log().contains("changed by someone else"), "{}", d.log());

    for (i, how) in [
        vec!["flush", "ruleset"],
        vec!["delete", "table", "inet", "nftjail"],
        vec!["flush", "chain", "inet", "nftjail", "input"],
    ]
    .iter()
    .enumerate()
    {
        ns.output("nft", how);
        let took = wait_until("the table rebuilt", Duration::from_secs(5), || {
            kernel_set(&ns, "a-v4").len() == 1000 && kernel_set(&ns, "a-net4").len() == 1
        });
        eprintln!("after `nft {}`: 1000 bans back in {took:?}", how.join(" "));
        let after = kernel(&ns, "a-v4");
        for e in &after {
            let old = before.iter().find(|b| b.val == e.val).unwrap();
            // Restored with what was left, never longer.
            assert!(
                e.expires.unwrap() <= old.expires.unwrap() + 1,
                "{e:?} vs {old:?}"
            );
            assert!(
                e.expires.unwrap() + 60 > old.expires.unwrap(),
                "{e:?} vs {old:?}"
            );
        }
        let rules = ns.output("nft", &["list", "table", "inet", "nftjail"]);
        assert!(
            rules.contains("jump j-a") && rules.contains("saddr @a-v4"),
            "rules rebuilt: {rules}"
        );
        let warnings = d.log().matches("changed by someone else").count();
        assert!(warnings > i, "a warning per heal: {}", d.log());
    }
    d.stop();
}

/// Flushes landing anywhere in a flood (inside the batches sent while the
/// watcher is deaf, between them, in the middle of a heal) lose no ban:
/// `nft -i` flushes the ruleset every 5 ms while 20,000 bans go in; once
/// it stops, every ban must be back in the rebuilt table and none reported
/// lost. (Which of the three ways caught each flush depends on timing; the
/// deaf-batch check alone is tested deterministically in nft_kernel.rs.)
#[test]
fn a_ruleset_flushed_again_and_again_during_a_flood_loses_no_ban() {
    const FLOOD: u32 = 20_000;
    let s = Setup::new("");
    let ns = Netns::new("st-flushes");
    let mut d = s.start(&ns);
    let mut nft = ns
        .command("nft")
        .arg("-i")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut flusher = nft.stdin.take().unwrap();
    let flood: Vec<String> = (0..FLOOD)
        .map(|i| format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250 + 1))
        .collect();
    s.append(
        "a.log",
        &flood
            .iter()
            .map(|a| format!("fail from {a}\n"))
            .collect::<String>(),
    );
    // From the flood's first ban on, for 300 ms.
    d.wait_for(&format!("addr={} ", flood[0]), Duration::from_secs(10));
    let until = Instant::now() + Duration::from_millis(300);
    let mut flushes = 0;
    while Instant::now() < until {
        flusher.write_all(b"flush ruleset\n").unwrap();
        flushes += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(flusher);
    assert!(nft.wait().unwrap().success());
    let want: BTreeSet<String> = flood.into_iter().collect();
    wait_until("every ban of the flood", Duration::from_secs(30), || {
        kernel_set(&ns, "a-v4") == want
    });
    let rules = ns.output("nft", &["list", "table", "inet", "nftjail"]);
    assert!(
        rules.contains("jump j-a") && rules.contains("saddr @a-v4"),
        "rules rebuilt: {rules}"
    );
    let log = d.log();
    assert!(!log.contains("bans not applied"), "{log}");
    eprintln!(
        "{flushes} flushes; {} caught by a deaf batch's generation check",
        log.matches("we did not listen through").count()
    );
    d.stop();
    // A flood's ban lines are written a batch at a time, but still one
    // line per ban, as the recidive filter and `grep` read them.
    std::thread::sleep(Duration::from_millis(200));
    let log = d.log();
    let logged: BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split_once("  INFO ban: jail=a addr="))
        .filter_map(|(_, rest)| rest.split_once(' ').map(|(addr, _)| addr))
        .collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|a| !logged.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} bans without their line, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

#[test]
fn a_third_offence_gets_a_longer_ban_across_restarts() {
    let s = Setup::new("");
    // Jail a: exponential (10m, 20m, 40m); jail b counts bans in every jail.
    let cfg = std::fs::read_to_string(s.path("nftjail.toml"))
        .unwrap()
        .replace(
            "maxretry = 1\nbantime = \"1h\"",
            "maxretry = 1\nbantime = \"10m\"\nbantime_increment = true",
        )
        .replace(
            "maxretry = 1\nbantime = \"2h\"",
            "maxretry = 1\nbantime = \"1m\"\nbantime_increment = true\nbantime_overalljails = true\nbantime_multipliers = \"1 5 30 60\"",
        );
    std::fs::write(s.path("nftjail.toml"), cfg).unwrap();
    let ns = Netns::new("st-incr");
    let timeout = |ns: &Netns, set: &str| {
        kernel(ns, set)
            .into_iter()
            .find(|e| e.val == "203.0.113.44")
            .and_then(|e| e.timeout)
    };
    let mut d = s.start(&ns);
    let mut seen = Vec::new();
    for offence in 0..3 {
        s.append("a.log", "fail from 203.0.113.44\n");
        wait_until("a ban", Duration::from_secs(5), || {
            timeout(&ns, "a-v4").is_some()
        });
        seen.push(timeout(&ns, "a-v4").unwrap());
        s.cli(&["unban", "a", "203.0.113.44"]);
        if offence == 1 {
            // History lives in the store: a restart does not forgive.
            d.stop();
            d = s.start(&ns);
        }
    }
    assert_eq!(seen, vec![600, 1200, 2400]);
    // Three earlier bans in jail a: jail b's first ban is its 4th overall.
    s.append("b.log", "bad from 203.0.113.44\n");
    wait_until("b ban", Duration::from_secs(5), || {
        timeout(&ns, "b-v4").is_some()
    });
    assert_eq!(timeout(&ns, "b-v4"), Some(3600));
    d.stop();
}

#[test]
fn on_stop_flush_removes_our_table_and_forgets_the_bans() {
    let s = Setup::new("on_stop = \"flush\"");
    let ns = Netns::new("st-flush");
    let mut d = s.start(&ns);
    s.append("a.log", "fail from 203.0.113.3\n");
    wait_until("a ban", Duration::from_secs(5), || {
        kernel_set(&ns, "a-v4").len() == 1
    });
    d.stop();
    let tables = ns.output("nft", &["list", "tables"]);
    assert!(!tables.contains("nftjail"), "{tables}");
    assert!(s.stored_set("a").is_empty());
    let mut d = s.start(&ns);
    assert!(kernel_set(&ns, "a-v4").is_empty());
    d.stop();
}

#[test]
fn a_restart_for_a_package_upgrade_keeps_the_bans_even_with_on_stop_flush() {
    let s = Setup::new("on_stop = \"flush\"");
    let ns = Netns::new("st-upgr");
    let mut d = s.start(&ns);
    s.append("a.log", "fail from 203.0.113.4\n");
    wait_until("a ban", Duration::from_secs(5), || {
        kernel_set(&ns, "a-v4").len() == 1
    });
    // What the package's postinst leaves beside the socket before a restart.
    let marker = s.path("keep-bans-on-stop");
    std::fs::write(&marker, "").unwrap();
    d.stop();
    assert_eq!(
        kernel_set(&ns, "a-v4").len(),
        1,
        "the ban stays in the kernel"
    );
    assert_eq!(s.stored_set("a").len(), 1, "and in the store");
    assert!(!marker.exists(), "the marker is used once");
    // The next stop is an ordinary one again: it flushes.
    let mut d = s.start(&ns);
    assert_eq!(kernel_set(&ns, "a-v4").len(), 1);
    d.stop();
    let tables = ns.output("nft", &["list", "tables"]);
    assert!(!tables.contains("nftjail"), "{tables}");
}

#[test]
fn lines_written_while_stopped_are_read_once_across_a_rotation() {
    let s = Setup::new("");
    let cfg = std::fs::read_to_string(s.path("nftjail.toml"))
        .unwrap()
        .replace(
            "maxretry = 1\nbantime = \"1h\"",
            "maxretry = 3\nbantime = \"1h\"",
        );
    std::fs::write(s.path("nftjail.toml"), cfg).unwrap();
    let ns = Netns::new("st-down");
    let fails = |addr: &str, n: usize| format!("fail from {addr}\n").repeat(n);
    let mut d = s.start(&ns);
    // Z fails twice while we run; the third comes while we are stopped.
    s.append("a.log", &fails("203.0.113.30", 2));
    wait_until("two failures counted", Duration::from_secs(5), || {
        s.cli(&["status", "a"]).contains("Total failed:\t2")
    });
    d.stop();

    // While stopped: X twice, Y once and Z once in the old file; logrotate
    // renames it; then X once, Y once and W three times in the new file.
    s.append(
        "a.log",
        &[
            fails("203.0.113.10", 2),
            fails("203.0.113.20", 1),
            fails("203.0.113.30", 1),
        ]
        .concat(),
    );
    std::fs::rename(s.path("a.log"), s.path("a.log.1")).unwrap();
    std::fs::write(
        s.path("a.log"),
        [
            fails("203.0.113.10", 1),
            fails("203.0.113.20", 1),
            fails("203.0.113.40", 3),
        ]
        .concat(),
    )
    .unwrap();

    let mut d = s.start(&ns);
    wait_until("three bans", Duration::from_secs(5), || {
        kernel_set(&ns, "a-v4").len() >= 3
    });
    // Y has 2 failures in all: read twice it would have 3 or 4.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        kernel_set(&ns, "a-v4"),
        BTreeSet::from([
            "203.0.113.10".into(),
            "203.0.113.30".into(),
            "203.0.113.40".into()
        ]),
        "{}",
        d.log()
    );
    let status = s.cli(&["status", "a"]);
    // 4 in the old file + 5 in the new one, each counted once (Z's two
    // carried over were counted by the last run).
    assert!(status.contains("Total failed:\t9"), "{status}");
    assert!(status.contains("Currently failed:\t1"), "Y alone: {status}");

    // A plain restart reads nothing twice: no failure is added.
    d.stop();
    let mut d = s.start(&ns);
    std::thread::sleep(Duration::from_millis(300));
    let status = s.cli(&["status", "a"]);
    assert!(
        status.contains("Total failed:\t0"),
        "nothing read again: {status}"
    );
    assert!(
        status.contains("Currently failed:\t1"),
        "Y's two carried: {status}"
    );
    d.stop();
}

#[test]
fn a_recidive_jail_over_our_own_log_bans_who_keeps_coming_back() {
    let s = Setup::new("");
    let log = s.path("nftjail.log");
    std::fs::write(&log, "").unwrap();
    let mut cfg = std::fs::read_to_string(s.path("nftjail.toml")).unwrap();
    cfg.push_str(&format!(
        "[jail.recidive]\nfilter = \"recidive\"\nlogpath = \"{}\"\nmaxretry = 3\nfindtime = \"1d\"\nbantime = \"1w\"\n",
        log.display()
    ));
    std::fs::write(s.path("nftjail.toml"), cfg).unwrap();
    let ns = Netns::new("st-recidive");
    // The daemon's stderr appended to the file its recidive jail reads.
    let mut cmd = ns.command("sh");
    cmd.arg("-c").arg(format!(
        "exec {BIN} run --config {} 2>>{}",
        s.path("nftjail.toml").display(),
        log.display()
    ));
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    wait_until("ready", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).unwrap().contains("ready:")
    });
    for round in 0..3 {
        s.append("a.log", "fail from 203.0.113.60\n");
        if round < 2 {
            s.append("b.log", "bad from 203.0.113.61\n");
        }
        wait_until("a ban", Duration::from_secs(5), || {
            kernel_set(&ns, "a-v4").contains("203.0.113.60")
        });
        s.cli(&["unban", "a", "203.0.113.60"]);
        if round < 2 {
            s.cli(&["unban", "b", "203.0.113.61"]);
        }
    }
    let waited = std::panic::catch_unwind(|| {
        wait_until("the recidive ban", Duration::from_secs(5), || {
            !kernel_set(&ns, "recidive-v4").is_empty()
        })
    });
    assert!(
        waited.is_ok(),
        "no recidive ban; log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    std::thread::sleep(Duration::from_millis(200));
    let recidive = kernel(&ns, "recidive-v4");
    assert_eq!(recidive.len(), 1, "{recidive:?}");
    assert_eq!(recidive[0].val, "203.0.113.60");
    assert_eq!(recidive[0].timeout, Some(7 * 86_400));
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// Kills a child spawned outside [`Daemon`] even when the test fails.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signals a pid we spawned.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

/// A store whose header is intact but whose pages below it are garbage:
/// SQLite opens it, and only a read or a check finds the damage.
fn write_damaged_store(path: &std::path::Path) {
    {
        let db = rusqlite::Connection::open(path).unwrap();
        db.execute_batch(
            "PRAGMA page_size = 4096; CREATE TABLE bans(jail TEXT, net TEXT);
             CREATE TABLE history(addr TEXT, jail TEXT, time INTEGER);",
        )
        .unwrap();
        for i in 0..2000 {
            db.execute(
                "INSERT INTO history VALUES (?1, 'a', ?2)",
                rusqlite::params![format!("192.0.2.{}", i % 250), i],
            )
            .unwrap();
        }
    }
    let mut bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 8192, "a store of several pages");
    let mut x: u32 = 0x1234_5678;
    for b in &mut bytes[4096..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_store_is_moved_aside_and_the_daemon_still_bans() {
    let s = Setup::new("");
    std::fs::create_dir_all(s.path("state")).unwrap();
    write_damaged_store(&s.path("state/nftjail.db"));
    let ns = Netns::new("st-corrupt");
    let mut d = s.start(&ns);
    s.append("a.log", "fail from 203.0.113.5\n");
    wait_until("the ban in the kernel", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").contains("203.0.113.5")
    });
    let aside: Vec<String> = std::fs::read_dir(s.path("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nftjail.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept aside");
    assert!(d.log().contains("moved aside"), "{}", d.log());
    // A store rebuilt beside the damaged one is whole again: nothing to warn of.
    let status = s.cli(&["status", "--json"]);
    assert!(!status.contains("degraded"), "{status}");
    d.stop();
    // The new store works: the ban was recorded in it.
    assert_eq!(s.stored_set("a"), BTreeSet::from(["203.0.113.5".into()]));
}

#[test]
fn a_read_only_state_dir_degrades_persistence_but_not_banning() {
    let s = Setup::new("");
    let state = s.path("state");
    // An earlier run left a ban in the store.
    {
        let ns = Netns::new("st-ro-before");
        let mut d = s.start(&ns);
        s.append("a.log", "fail from 203.0.113.5\n");
        wait_until("the first ban", Duration::from_secs(10), || {
            kernel_set(&ns, "a-v4").contains("203.0.113.5")
        });
        d.stop();
    }
    let before = std::fs::read(state.join("nftjail.db")).unwrap();
    // Read-only in the daemon's own mount namespace only (mode 0555 does
    // not stop root): the test still sees the directory as it is.
    // A reboot (a new namespace: an empty kernel) with the disk read-only.
    let ns = Netns::new("st-readonly");
    let mut cmd = ns.command("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && exec \"$0\" run --config \"$2\"")
        .arg(BIN)
        .arg(&state)
        .arg(s.path("nftjail.toml"));
    let mut d = Daemon::spawn(cmd);
    d.wait_for("ready:", Duration::from_secs(20));
    assert!(
        d.log().contains("state persistence degraded"),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("nftjail.db"),
        "names the path: {}",
        d.log()
    );
    s.append("a.log", "fail from 203.0.113.6\n");
    wait_until("the ban in the kernel", Duration::from_secs(10), || {
        kernel_set(&ns, "a-v4").contains("203.0.113.6")
    });
    // `status` says so too, not only the log.
    let status = s.cli(&["status", "--json"]);
    assert!(
        status.contains("\"degraded\"") && status.contains("could not be opened"),
        "{status}"
    );
    d.stop();
    assert_eq!(
        std::fs::read(state.join("nftjail.db")).unwrap(),
        before,
        "nothing was written through the read-only mount"
    );
}
