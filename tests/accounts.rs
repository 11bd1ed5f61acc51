#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Account spraying and several windows per jail, end to end: a real
//! daemon with the nft backend in a throwaway network namespace, log lines
//! appended to files, bans read back from the kernel's sets.
//!
//! * `maxaddrs` addresses failing against one account put it under
//!   attack: the next address failing once against it is banned,
//!   with `account=NAME` in the ban log and the account in `status`;
//!   the same failures spread over different accounts ban nobody. The
//!   account comes from our filter's `<F-USER>` and from a fail2ban filter
//!   file's.
//! * A slow window bans at its own count with its own, longer bantime,
//!   where the jail's burst window never fills.

mod common;

use std::time::{Duration, SystemTime};

use common::{kernel, kernel_set, Daemon, Netns, Workdir};

/// Generous: only a daemon that never gets there takes this long.
const LIMIT: Duration = Duration::from_secs(30);

struct Setup(Workdir);

impl std::ops::Deref for Setup {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.0
    }
}

impl Setup {
    fn new(jails: &str) -> Setup {
        Setup(Workdir::new(&[], jails))
    }

    fn start(&self, ns: &Netns) -> Daemon {
        self.0.start(ns, LIMIT)
    }

    fn status(&self, jail: &str) -> String {
        self.cli(&["status", jail])
    }
}

fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    let took = common::wait_until(what, LIMIT, ok);
    eprintln!("{what}: {took:?}");
}

/// A figure of `status` (`Currently failed:`, `Total failed:`).
fn figure(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.split_once(name))
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap()
}

const SPRAY: &str = "\
[jail.mail]
failregex = ['^auth failed for <F-USER>\\S+</F-USER> from <HOST>$']
logpath = \"{d}/mail.log\"
maxretry = 10
findtime = \"1h\"
bantime = \"1h\"
[jail.mail.account]
maxaddrs = 5
maxretry = 1
findtime = \"1h\"
bantime = \"2h\"
[jail.f2b]
filter = \"fail2ban:{d}/spray.conf\"
logpath = \"{d}/f2b.log\"
maxretry = 10
findtime = \"1h\"
bantime = \"1h\"
[jail.f2b.account]
maxaddrs = 2
findtime = \"1h\"
";

#[test]
fn a_sprayed_account_gets_the_next_address_banned_at_its_first_failure() {
    let s = Setup::new(SPRAY);
    s.write("mail.log", "");
    s.write("f2b.log", "");
    s.write(
        "spray.conf",
        "[Definition]\nfailregex = ^login of <F-USER>\\S+</F-USER> refused for <HOST>$\n",
    );
    let ns = Netns::new("acct");
    let d = s.start(&ns);

    // Six addresses, one failure each, against six different accounts.
    let mut lines = String::new();
    for i in 1..=6 {
        lines.push_str(&format!("auth failed for user{i} from 203.0.113.{i}\n"));
    }
    // Five addresses, one failure each, against alice.
    for i in 1..=5 {
        lines.push_str(&format!("auth failed for alice from 192.0.2.{i}\n"));
    }
    s.append("mail.log", &lines);
    wait_until("eleven failures counted", || {
        figure(&s.status("mail"), "Currently failed:") == 11
    });
    assert!(kernel_set(&ns, "mail-v4").is_empty());
    // Five put alice under attack; the spread ones nobody.
    let status = s.status("mail");
    assert!(
        status.contains("Accounts under attack:\talice\n"),
        "{status}"
    );

    // The sixth against alice: banned at once.
    s.append("mail.log", "auth failed for alice from 192.0.2.6\n");
    wait_until("192.0.2.6 banned", || {
        kernel_set(&ns, "mail-v4").contains("192.0.2.6")
    });
    let line = d.wait_for("addr=192.0.2.6", LIMIT);
    assert!(line.contains("account=alice"), "{line}");
    let ban = kernel(&ns, "mail-v4");
    let elem = ban.iter().find(|e| e.val == "192.0.2.6").unwrap();
    assert_eq!(elem.timeout, Some(7200), "the account rule's bantime");
    let status = s.status("mail");
    assert!(
        status.contains("Accounts under attack:\talice\n"),
        "{status}"
    );
    // From then on, each of them at its next failure against alice.
    s.append("mail.log", "auth failed for alice from 192.0.2.1\n");
    wait_until("192.0.2.1 banned", || {
        kernel_set(&ns, "mail-v4").contains("192.0.2.1")
    });
    // The spread ones are not.
    let banned = kernel_set(&ns, "mail-v4");
    assert!(
        banned.iter().all(|a| a.starts_with("192.0.2.")),
        "{banned:?}"
    );

    // A fail2ban filter file's <F-USER> names the account just the same.
    let mut lines = String::new();
    for i in 1..=3 {
        lines.push_str(&format!(
            "login of bob@example.org refused for 198.51.100.{i}\n"
        ));
    }
    s.append("f2b.log", &lines);
    wait_until("198.51.100.3 banned", || {
        kernel_set(&ns, "f2b-v4").contains("198.51.100.3")
    });
    let line = d.wait_for("addr=198.51.100.3", LIMIT);
    assert!(line.contains("account=bob@example.org"), "{line}");
    assert_eq!(kernel_set(&ns, "f2b-v4").len(), 1);
    let status = s.status("f2b");
    assert!(
        status.contains("Accounts under attack:\tbob@example.org"),
        "{status}"
    );
}

#[test]
fn a_slow_window_bans_at_its_count_with_its_longer_bantime() {
    let s = Setup::new(
        "[jail.slow]
failregex = ['^\\S+ auth failed for <F-USER>\\S+</F-USER> from <HOST>$']
logpath = \"{d}/slow.log\"
maxretry = 3
findtime = \"5m\"
bantime = \"1h\"
[[jail.slow.window]]
maxretry = 5
findtime = \"1d\"
bantime = \"1w\"
",
    );
    s.write("slow.log", "");
    let ns = Netns::new("slow");
    let d = s.start(&ns);
    let now = jiff::Timestamp::try_from(SystemTime::now()).unwrap();
    let at = |minutes_ago: i64| {
        let t = now - jiff::SignedDuration::from_mins(minutes_ago);
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    // Four failures 20 minutes apart: never three within 5 minutes, and
    // one short of the slow window.
    let mut lines = String::new();
    for ago in [80, 60, 40, 20] {
        lines.push_str(&format!(
            "{} auth failed for carol from 192.0.2.9\n",
            at(ago)
        ));
    }
    s.append("slow.log", &lines);
    wait_until("four failures counted", || {
        figure(&s.status("slow"), "Total failed:") == 4
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(kernel_set(&ns, "slow-v4").is_empty());
    // The fifth: the slow window's count, its week-long ban.
    s.append(
        "slow.log",
        &format!("{} auth failed for carol from 192.0.2.9\n", at(0)),
    );
    wait_until("192.0.2.9 banned", || {
        kernel_set(&ns, "slow-v4").contains("192.0.2.9")
    });
    let elem = kernel(&ns, "slow-v4").remove(0);
    assert_eq!(elem.timeout, Some(7 * 86_400));
    let line = d.wait_for("addr=192.0.2.9", LIMIT);
    assert!(line.contains("window=1"), "{line}");
    assert!(line.contains("failures=5"), "{line}");
}
