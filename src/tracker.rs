//! Failure windows and ban decisions, per jail and address.
//!
//! fail2ban's semantics: the `maxretry`-th failure of one address inside
//! `findtime` bans it, and a ban clears that address's failures. Ignored
//! addresses are refused here, the last stop before the enforcer, so no log
//! line and no filter can get them banned. Time is passed in with each
//! failure, so windows are tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::config::Jail;
use crate::message::{BanOrder, Failure, JailId};

/// What the tracker did with one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `count` failures of this address are now inside findtime.
    Counted {
        count: u32,
    },
    /// The address is in the jail's ignore list (or `ignoreself`).
    Ignored,
    Ban(BanOrder),
}

pub struct Tracker {
    jails: Vec<Jail>,
    /// Times of the most recent failures, at most `maxretry` per key, oldest first.
    windows: HashMap<(JailId, IpAddr), VecDeque<SystemTime>>,
}

impl Tracker {
    pub fn new(jails: Vec<Jail>) -> Self {
        Tracker {
            jails,
            windows: HashMap::new(),
        }
    }

    pub fn jails(&self) -> &[Jail] {
        &self.jails
    }

    /// Addresses with failures being counted, across jails.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    pub fn record(&mut self, failure: Failure) -> Verdict {
        let Some(jail) = self.jails.get(failure.jail) else {
            return Verdict::Ignored;
        };
        let addr = failure.addr.to_canonical();
        if jail.ignore.contains(addr) {
            return Verdict::Ignored;
        }
        let maxretry = jail.maxretry as usize;
        let since = failure.time.checked_sub(jail.findtime);
        let window = self.windows.entry((failure.jail, addr)).or_default();
        window.push_back(failure.time);
        // Out-of-order times (several sources) are fine: only the count inside the
        // window matters, and the window holds at most maxretry entries.
        window.retain(|&t| since.is_none_or(|s| t > s) && t <= failure.time + jail.findtime);
        while window.len() > maxretry {
            window.pop_front();
        }
        let count = window.len() as u32;
        if window.len() >= maxretry {
            self.windows.remove(&(failure.jail, addr));
            return Verdict::Ban(BanOrder {
                jail: jail.name.clone(),
                addr,
                bantime: jail.bantime,
                failures: count,
            });
        }
        Verdict::Counted { count }
    }

    /// Forgets failure windows with nothing left inside findtime at `now`.
    /// Called on a timer so memory tracks the attack, not the uptime.
    pub fn prune(&mut self, now: SystemTime) {
        let jails = &self.jails;
        self.windows.retain(|(jail, _), window| {
            let findtime = jails.get(*jail).map_or(Duration::ZERO, |j| j.findtime);
            window
                .back()
                .is_some_and(|&t| now.duration_since(t).map_or(true, |age| age < findtime))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn tracker(extra: &str) -> Tracker {
        let text = format!(
            "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 3\nfindtime = 60\nbantime = 300\n{extra}"
        );
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        Tracker::new(cfg.jails)
    }

    fn at(addr: &str, secs: u64) -> Failure {
        Failure {
            jail: 0,
            addr: addr.parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
        }
    }

    #[test]
    fn maxretry_th_failure_inside_findtime_bans() {
        let mut t = tracker("");
        assert_eq!(
            t.record(at("203.0.113.1", 0)),
            Verdict::Counted { count: 1 }
        );
        assert_eq!(
            t.record(at("203.0.113.1", 10)),
            Verdict::Counted { count: 2 }
        );
        match t.record(at("203.0.113.1", 20)) {
            Verdict::Ban(o) => {
                assert_eq!(o.addr.to_string(), "203.0.113.1");
                assert_eq!(&*o.jail, "j");
                assert_eq!(o.bantime, Duration::from_secs(300));
                assert_eq!(o.failures, 3);
            }
            v => panic!("expected a ban, got {v:?}"),
        }
        // The ban cleared the window: counting starts again.
        assert_eq!(
            t.record(at("203.0.113.1", 21)),
            Verdict::Counted { count: 1 }
        );
    }

    #[test]
    fn failures_older_than_findtime_do_not_count() {
        let mut t = tracker("");
        t.record(at("203.0.113.1", 0));
        t.record(at("203.0.113.1", 30));
        // 61 s after the first: the first has left the 60 s window.
        assert_eq!(
            t.record(at("203.0.113.1", 61)),
            Verdict::Counted { count: 2 }
        );
        assert!(matches!(t.record(at("203.0.113.1", 62)), Verdict::Ban(_)));
    }

    #[test]
    fn addresses_are_counted_separately_and_mapped_v4_is_v4() {
        let mut t = tracker("");
        t.record(at("203.0.113.1", 0));
        t.record(at("203.0.113.2", 0));
        assert_eq!(
            t.record(at("::ffff:203.0.113.1", 1)),
            Verdict::Counted { count: 2 }
        );
        match t.record(at("203.0.113.1", 2)) {
            Verdict::Ban(o) => assert!(o.addr.is_ipv4()),
            v => panic!("expected a ban, got {v:?}"),
        }
    }

    #[test]
    fn ignored_addresses_are_never_banned() {
        let mut t = tracker("ignoreip = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n");
        for i in 0..10 {
            assert_eq!(t.record(at("203.0.113.77", i)), Verdict::Ignored);
            assert_eq!(t.record(at("2001:db8::5", i)), Verdict::Ignored);
            assert_eq!(t.record(at("127.0.0.1", i)), Verdict::Ignored);
        }
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn prune_forgets_stale_windows() {
        let mut t = tracker("");
        t.record(at("203.0.113.1", 0));
        t.record(at("203.0.113.2", 50));
        t.prune(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 70));
        assert_eq!(t.tracked(), 1);
    }
}
