//! Prefix bans: a botnet spread over one /24 (or /64) whose every address
//! stays under maxretry is still one attacker. For a jail with
//! `[jail.X.prefix]`, the distinct addresses failing in each prefix within
//! its findtime are counted; at maxaddrs the prefix is banned. Also
//! `ban_v6_as`: an IPv6 attacker's ban widened to the prefix it most likely
//! owns.
//!
//! A prefix that would cover an address the jail ignores, a `[daemon]
//! never` network or an address of this host is not banned: that is said
//! in the log, once per prefix and findtime, not on every line.
//!
//! Memory is bounded like the address windows: at most `max_tracked`
//! prefixes are counted, the oldest forgotten first, and each keeps at most
//! maxaddrs addresses (as the bits after the prefix, with the time each
//! last failed). The counts are not in checkpoints: after a restart a
//! prefix is counted again from the failures carried over.

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;
use tracing::info;

use super::millis;
use crate::bantime::human;
use crate::config::ignore::{own_networks, Protected};
use crate::config::prefix::PrefixRule;
use crate::config::Jail;
use crate::message::{BanOrder, Cause, Failure};

/// A jail index and the prefix counted in it.
type Key = (u16, IpNet);

/// The distinct addresses failing in one prefix: each as the 64 bits
/// after the prefix (all of an IPv4 host part; an IPv6 interface
/// identifier under a /64), with the time it last failed (ms), oldest
/// first.
#[derive(Default)]
struct Group {
    addrs: Vec<(u64, u64)>,
}

impl Group {
    /// Adds `host` failing at `t`, forgets those last seen before `t -
    /// findtime`; returns how many distinct addresses remain.
    fn push(&mut self, host: u64, t: u64, findtime: u64) -> usize {
        self.addrs.retain(|&(h, at)| h != host && at + findtime > t);
        self.addrs.push((host, t));
        self.addrs.len()
    }

    fn newest(&self) -> u64 {
        self.addrs.iter().map(|&(_, t)| t).max().unwrap_or(0)
    }
}

pub(super) struct Prefixes {
    groups: crate::AddrMap<Key, Group>,
    /// Keys in the order their groups were opened, for oldest-first
    /// eviction (lazy, as the address windows' queue).
    opened: VecDeque<Key>,
    /// Prefixes not banned for what they cover, until when (ms) that need
    /// not be said again.
    told: crate::AddrMap<Key, u64>,
    /// This host's addresses, read at start: never inside a banned prefix,
    /// whatever `ignoreself` says.
    own: Vec<IpNet>,
}

/// The bits of `addr` after a prefix of `len`, at most 64 of them.
fn host_bits(addr: IpAddr, len: u8) -> u64 {
    match addr {
        IpAddr::V4(a) => u64::from(u32::from(a).checked_shl(u32::from(len)).unwrap_or(0)),
        IpAddr::V6(a) => (u128::from(a).checked_shl(u32::from(len)).unwrap_or(0) >> 64) as u64,
    }
}

/// An address without its /32 or /128, a network with its length.
fn show(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl Prefixes {
    pub(super) fn new() -> Prefixes {
        Prefixes {
            groups: crate::AddrMap::default(),
            opened: VecDeque::new(),
            told: crate::AddrMap::default(),
            own: own_networks()
                .into_iter()
                .filter(|n| !n.addr().is_loopback())
                .collect(),
        }
    }

    /// Prefixes being counted.
    pub(super) fn tracked(&self) -> usize {
        self.groups.len()
    }

    /// Counts `failure` (not ignored, not stale) of jail index `id` in its
    /// prefix; the ban of the prefix when it reaches maxaddrs.
    pub(super) fn count(
        &mut self,
        id: u16,
        jail: &Jail,
        rule: &PrefixRule,
        failure: &Failure,
        max_tracked: usize,
    ) -> Option<BanOrder> {
        let addr = failure.addr.to_canonical();
        let net = rule.prefix_of(addr);
        let key = (id, net);
        let t = millis(failure.time);
        let findtime = rule.findtime.as_millis() as u64;
        let group = self.groups.entry(key).or_insert_with(|| {
            self.opened.push_back(key);
            Group::default()
        });
        let n = group.push(host_bits(addr, net.prefix_len()), t, findtime);
        if n < rule.maxaddrs as usize {
            self.evict(max_tracked);
            return None;
        }
        self.groups.remove(&key);
        if let Some((hit, why)) = self.protected(jail, &net) {
            if self.told.get(&key).is_none_or(|&until| until <= t) {
                self.told.insert(key, t + findtime);
                info!(
                    jail = %jail.name,
                    prefix = %net,
                    "prefix {net} not banned: {n} of its addresses failed within {}, but it covers {} ({why})",
                    human(rule.findtime),
                    show(&hit),
                );
            }
            return None;
        }
        Some(BanOrder {
            jail: jail.name.clone(),
            target: net,
            bantime: rule.bantime,
            failures: n as u32,
            line: failure.line.clone(),
            read: failure.read,
            cause: Cause::Prefix { addrs: n as u32 },
        })
    }

    /// `ban_v6_as`: the ban of one IPv6 address widened to its prefix,
    /// unless that prefix covers what must not be banned (then the address
    /// alone is banned, and the log says why, once per prefix and bantime).
    pub(super) fn widen(&mut self, id: u16, jail: &Jail, order: &mut BanOrder) {
        let Some(len) = jail.ban_v6_as else { return };
        let IpNet::V6(_) = order.target else { return };
        if !order.is_host() {
            return;
        }
        let Ok(net) = IpNet::new(order.target.addr(), len).map(|n| n.trunc()) else {
            return;
        };
        match self.protected(jail, &net) {
            None => order.target = net,
            Some((hit, why)) => {
                let key = (id, net);
                let now = millis(std::time::SystemTime::now());
                if self.told.get(&key).is_none_or(|&until| until <= now) {
                    self.told
                        .insert(key, now + order.bantime.as_millis() as u64);
                    info!(
                        jail = %jail.name,
                        prefix = %net,
                        "{} banned alone, not as {net} (ban_v6_as): {net} covers {} ({why})",
                        order.target.addr(),
                        show(&hit),
                    );
                }
            }
        }
    }

    /// What banning `net` would ban that must never be.
    fn protected(&self, jail: &Jail, net: &IpNet) -> Option<(IpNet, Protected)> {
        jail.ignore.protected(net).or_else(|| {
            self.own
                .iter()
                .find(|n| n.contains(&net.network()) || net.contains(&n.network()))
                .map(|n| (*n, Protected::OwnAddress))
        })
    }

    fn evict(&mut self, max_tracked: usize) {
        while self.groups.len() > max_tracked {
            match self.opened.pop_front() {
                Some(key) => {
                    self.groups.remove(&key);
                }
                None => break,
            }
        }
        if self.opened.len() > 2 * self.groups.len() + 1024 {
            let groups = &self.groups;
            self.opened.retain(|k| groups.contains_key(k));
        }
        if self.told.len() > max_tracked {
            self.told.clear();
        }
    }

    /// Forgets prefixes with no failure inside findtime at `now` (ms);
    /// `findtime` gives each jail index's (None: no prefix rule any more).
    pub(super) fn prune(&mut self, now: u64, findtime: impl Fn(u16) -> Option<u64>) {
        self.groups
            .retain(|(id, _), g| findtime(*id).is_some_and(|f| g.newest() + f > now));
        self.told.retain(|_, until| *until > now);
        if self.opened.len() > 2 * self.groups.len() + 1024 {
            let groups = &self.groups;
            self.opened.retain(|k| groups.contains_key(k));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::super::tests::at;
    use super::super::{Tracker, Verdict};
    use crate::config::Config;
    use crate::message::{Cause, Failure};

    /// A jail counting prefixes: maxretry 3 per address, 5 addresses of
    /// one /24 (or /64) within 10 minutes ban the prefix for an hour.
    fn tracker(extra: &str) -> Tracker {
        super::super::tests::tracker(&format!(
            "ignoreself = false\n{extra}[jail.j.prefix]\nmaxaddrs = 5\nfindtime = \"10m\"\nbantime = \"1h\"\n"
        ))
    }

    #[test]
    fn maxaddrs_distinct_addresses_of_one_prefix_ban_it() {
        let mut t = tracker("");
        for (i, host) in [1, 2, 3, 4].iter().enumerate() {
            // Twice each: the same address counts once.
            for s in [0, 1] {
                let v = t.record(at(&format!("203.0.113.{host}"), i as u64 * 10 + s));
                assert!(matches!(v, Verdict::Counted { .. }), "{v:?}");
            }
            // Another /24 does not add to this one.
            t.record(at(&format!("198.51.100.{host}"), i as u64 * 10));
        }
        assert!(t.take_prefix_bans().is_empty());
        t.record(at("203.0.113.200", 50));
        let bans = t.take_prefix_bans();
        assert_eq!(bans.len(), 1, "{bans:?}");
        let o = &bans[0];
        assert_eq!(o.target.to_string(), "203.0.113.0/24");
        assert!(!o.is_host());
        assert_eq!(o.cause, Cause::Prefix { addrs: 5 });
        assert_eq!(o.bantime, Duration::from_secs(3600));
        // The ban starts the count again.
        t.record(at("203.0.113.7", 51));
        assert!(t.take_prefix_bans().is_empty());
    }

    #[test]
    fn addresses_older_than_the_prefix_findtime_drop_out() {
        let mut t = tracker("");
        for host in 1..=4 {
            t.record(at(&format!("2001:db8:1:2::{host}"), 0));
        }
        // Ten minutes later the first four no longer count.
        t.record(at("2001:db8:1:2::99", 600));
        assert!(t.take_prefix_bans().is_empty());
        for host in 5..=8 {
            t.record(at(&format!("2001:db8:1:2::{host}"), 601));
        }
        let bans = t.take_prefix_bans();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].target.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_prefix_covering_an_ignored_address_or_a_never_network_is_not_banned() {
        let mut t = tracker("ignoreip = [\"203.0.113.9\"]\n");
        for host in 1..=12 {
            t.record(at(&format!("203.0.113.{host}"), host));
        }
        assert!(t.take_prefix_bans().is_empty());
        let text = "[daemon]\nnever = [\"198.51.100.128/25\"]\n[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\n[jail.j.prefix]\nmaxaddrs = 2\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let mut t = Tracker::new(cfg.jails);
        for host in 1..=3 {
            t.record(at(&format!("198.51.100.{host}"), host));
        }
        assert!(t.take_prefix_bans().is_empty());
    }

    #[test]
    fn ban_v6_as_widens_an_ipv6_ban_only() {
        let mut t = tracker("ban_v6_as = 64\n");
        let mut last = None;
        for s in 0..3 {
            last = Some(t.record(at("2001:db8:5:6::77", s)));
        }
        match last.take() {
            Some(Verdict::Ban(o)) => {
                assert_eq!(o.target.to_string(), "2001:db8:5:6::/64");
                assert_eq!(o.cause, Cause::Window(0));
            }
            v => panic!("expected a ban, got {v:?}"),
        }
        for s in 0..3 {
            last = Some(t.record(at("203.0.113.77", s)));
        }
        match last.take() {
            Some(Verdict::Ban(o)) => assert_eq!(o.target.to_string(), "203.0.113.77/32"),
            v => panic!("expected a ban, got {v:?}"),
        }
        // Its /64 holds an ignored address: banned alone.
        let mut t = tracker("ban_v6_as = 64\nignoreip = [\"2001:db8:5:7::1\"]\n");
        for s in 0..3 {
            last = Some(t.record(at("2001:db8:5:7::77", s)));
        }
        match last.take() {
            Some(Verdict::Ban(o)) => assert_eq!(o.target.to_string(), "2001:db8:5:7::77/128"),
            v => panic!("expected a ban, got {v:?}"),
        }
    }

    #[test]
    fn prefixes_counted_are_bounded_by_max_tracked() {
        let text = "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nignoreself = false\n[jail.j.prefix]\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let mut t = Tracker::with_limit(cfg.jails, 100);
        for i in 0..1000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
            t.record(at(&a.to_string(), 0));
        }
        assert!(t.tracked_prefixes() <= 100, "{}", t.tracked_prefixes());
        t.prune(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 3600));
        assert_eq!(t.tracked_prefixes(), 0);
    }

    /// Resident memory of this process, in bytes.
    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// The cost of one counted prefix: `cargo test --lib tracker::prefix --
    /// --ignored --nocapture`. 200,000 /24s with 4 failing addresses each
    /// (one short of a ban), beside the address windows they also open.
    #[test]
    #[ignore]
    fn bytes_per_tracked_prefix() {
        let text = "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 10\nignoreself = false\n[jail.j.prefix]\nmaxaddrs = 5\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let n = 200_000u32;
        let failures: Vec<Failure> = (0..n)
            .flat_map(|i| {
                (1..=4u32).map(move |h| {
                    let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8) + h);
                    at(&a.to_string(), 0)
                })
            })
            .collect();
        let mut with_prefixes = Tracker::with_limit(cfg.jails.clone(), 10_000_000);
        let mut jails = cfg.jails;
        jails[0].prefix = None;
        let before = rss();
        let mut plain = Tracker::with_limit(jails, 10_000_000);
        for f in &failures {
            plain.record(f.clone());
        }
        let windows = rss() - before;
        let before = rss();
        for f in &failures {
            with_prefixes.record(f.clone());
        }
        let both = rss() - before;
        assert_eq!(with_prefixes.tracked_prefixes(), n as usize);
        eprintln!(
            "{n} prefixes of 4 addresses: {} bytes per tracked prefix (address windows and prefix counts: {} bytes per prefix; windows alone: {})",
            both.saturating_sub(windows) / n as usize,
            both / n as usize,
            windows / n as usize,
        );
    }
}
