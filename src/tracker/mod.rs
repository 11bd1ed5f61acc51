//! Failure windows and ban decisions, per jail and address; [`task`] is the
//! loop that feeds them and sends the decisions on.
//!
//! fail2ban's semantics: the `maxretry`-th failure of one address inside
//! `findtime` bans it, and a ban clears that address's failures. Ignored
//! addresses are refused here, the last stop before the enforcer, so no log
//! line and no filter can get them banned. The bantime policy is decided here
//! too: a repeat offender's bantime grows (`bantime_increment`) before the
//! order leaves, so a [`BanOrder`] carries its final bantime. Time is passed
//! in with each failure, so windows and bantimes are tested without sleeping.
//! A jail may have several windows ([`windows`]) and an account rule
//! ([`account`]), decided in the same pass; the longest ban decided wins.

mod account;
mod metrics;
mod persist;
mod prefix;
pub mod task;
mod window;
mod windows;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::debug;

use crate::bantime::Offences;
use crate::config::persist::DEFAULT_DBPURGEAGE;
use crate::config::Jail;
use crate::message::{BanOrder, Cause, Failure, JailId};
use window::Window;

/// What the tracker did with one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `count` failures of this address are now inside findtime.
    Counted {
        count: u32,
    },
    /// The address is in the jail's ignore list (or `ignoreself`).
    Ignored,
    /// The failure is older than findtime: it could not help a ban.
    Stale,
    Ban(BanOrder),
}

pub struct Tracker {
    /// Indexed by [`crate::message::JailId`]; None for a jail removed by a reload.
    jails: Vec<Option<Jail>>,
    counts: Vec<JailCounts>,
    windows: crate::AddrMap<Key, Window>,
    /// Keys in the order their windows were opened, for oldest-first eviction.
    /// Lazy: a key whose window is gone is skipped when it reaches the front.
    opened: VecDeque<Key>,
    max_tracked: usize,
    /// Earlier bans, for bantime increment.
    offences: Offences,
    /// Each jail id's `counts.total` when last reported to the metrics.
    published: Vec<u64>,
    /// What changed since the last checkpoint for the state store.
    unsaved: persist::Unsaved,
    /// Distinct failing addresses per prefix, for jails with a prefix rule.
    prefixes: prefix::Prefixes,
    /// Prefix bans decided since [`Tracker::take_prefix_bans`] last ran.
    prefix_bans: Vec<BanOrder>,
    /// Per jail id: the accounts its account rule follows.
    accounts: Vec<account::Accounts>,
}

/// fail2ban's "Currently failed" and "Total failed" for one jail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JailCounts {
    /// Addresses with failures inside findtime now.
    pub current: u64,
    /// Failures counted since start (ignored addresses excluded).
    pub total: u64,
}

/// Compact on purpose: an attack spread over a million addresses makes a
/// million of these, each with its map entry and its place in the queue
/// (BENCHMARKS.md has the cost per address).
type Key = (u16, IpAddr);

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub use crate::config::DEFAULT_MAX_TRACKED;

/// Below this many windows the map stays in the caches, and
/// [`Tracker::warm`] would only look everything up twice.
const WARM_FROM: usize = 16 * 1024;

impl Tracker {
    pub fn new(jails: Vec<Jail>) -> Self {
        Self::with_limit(jails, DEFAULT_MAX_TRACKED)
    }

    /// `max_tracked` bounds memory under an attack from very many addresses:
    /// past it, the windows opened first are forgotten first.
    pub fn with_limit(jails: Vec<Jail>, max_tracked: usize) -> Self {
        Self::with_slots(jails.into_iter().map(Some).collect(), max_tracked)
    }

    /// Jails by id, with holes where a reload removed one, so ids stay stable
    /// for failures already on their way.
    pub fn with_slots(jails: Vec<Option<Jail>>, max_tracked: usize) -> Self {
        Tracker {
            counts: vec![JailCounts::default(); jails.len()],
            jails,
            windows: crate::AddrMap::default(),
            opened: VecDeque::new(),
            max_tracked: max_tracked.max(1),
            offences: Offences::new(DEFAULT_DBPURGEAGE),
            published: Vec::new(),
            unsaved: persist::Unsaved::new(max_tracked),
            prefixes: prefix::Prefixes::new(),
            prefix_bans: Vec::new(),
            accounts: Vec::new(),
        }
    }

    /// The prefix bans decided since the last call: a failure can decide
    /// one besides its own address's verdict.
    pub fn take_prefix_bans(&mut self) -> Vec<BanOrder> {
        std::mem::take(&mut self.prefix_bans)
    }

    /// Prefixes whose failing addresses are being counted, across jails.
    pub fn tracked_prefixes(&self) -> usize {
        self.prefixes.tracked()
    }

    /// Starts from earlier bans (the state store's history), so a restart
    /// does not forgive repeat offenders.
    pub fn with_offences(mut self, offences: Offences) -> Self {
        self.offences = offences;
        self
    }

    /// A reload: windows of jails still present are kept (trimmed if maxretry
    /// shrank), those of removed jails forgotten; new limits apply from the
    /// next failure.
    pub fn reconfigure(&mut self, jails: Vec<Option<Jail>>, max_tracked: usize) {
        // Windows go and shrink below: the next checkpoint writes them all.
        self.unsaved.rewrite_all(max_tracked);
        self.counts.resize(jails.len(), JailCounts::default());
        for (i, a) in self.accounts.iter_mut().enumerate() {
            let same = jails
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|j| j.account)
                == self
                    .jails
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|j| j.account);
            if !same {
                *a = account::Accounts::default();
            }
        }
        self.jails = jails;
        self.max_tracked = max_tracked.max(1);
        let jails = &self.jails;
        let counts = &mut self.counts;
        self.windows.retain(|(id, _), window| {
            let id = usize::from(*id);
            let Some(Some(jail)) = jails.get(id) else {
                if let Some(c) = counts.get_mut(id) {
                    c.current = c.current.saturating_sub(1);
                }
                return false;
            };
            let cap = windows::capacity(jail);
            if window.len() > cap {
                *window = Window::with_newest(window.times(), cap);
            }
            true
        });
        self.evict();
    }

    pub fn jails(&self) -> impl Iterator<Item = &Jail> {
        self.jails.iter().flatten()
    }

    /// The jail of id `id` (None: removed by a reload).
    pub fn jail(&self, id: JailId) -> Option<&Jail> {
        self.jails.get(id).and_then(Option::as_ref)
    }

    /// Number of jail ids, removed ones included.
    pub fn slots(&self) -> usize {
        self.jails.len()
    }

    pub fn counts(&self, jail: JailId) -> JailCounts {
        self.counts.get(jail).copied().unwrap_or_default()
    }

    /// Addresses with failures being counted, across jails.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    /// The accounts of `jail` under attack at `now` (its account rule's
    /// maxaddrs passed), by name.
    pub fn under_attack(&self, jail: JailId, now: SystemTime) -> Vec<String> {
        let rule = self.jails.get(jail).and_then(Option::as_ref);
        match (
            rule.and_then(|j| j.account.as_ref()),
            self.accounts.get(jail),
        ) {
            (Some(rule), Some(accounts)) => accounts.under_attack(rule, millis(now)),
            _ => Vec::new(),
        }
    }

    /// Like [`Tracker::record`], but a failure already older than findtime at
    /// `now` (a line read late: a backlog, a slow log shipper) is not counted.
    pub fn record_at(&mut self, failure: Failure, now: SystemTime) -> Verdict {
        let stale = match self.jails.get(failure.jail) {
            Some(Some(jail)) => failure
                .time
                .checked_add(jail.reach())
                .is_some_and(|end| end <= now),
            _ => false,
        };
        if stale {
            Verdict::Stale
        } else {
            self.decide(failure, now)
        }
    }

    /// Looks up, ahead of counting them, the windows a batch of failures
    /// will change. A flood from many addresses spreads its windows over
    /// more memory than the caches hold: looked up one at a time, between
    /// each failure's other work, every lookup waits for memory alone;
    /// looked up in a tight loop, the waits overlap, and the counting that
    /// follows finds them cached. Returns how many were found (only so
    /// the loop is not optimized away).
    pub fn warm(&self, batch: &[Failure]) -> usize {
        if self.windows.len() < WARM_FROM {
            return 0;
        }
        let found = batch
            .iter()
            .filter(|f| {
                let id = f.jail.min(usize::from(u16::MAX)) as u16;
                self.windows.contains_key(&(id, f.addr.to_canonical()))
            })
            .count();
        std::hint::black_box(found)
    }

    /// Counts `failure` as of its own time.
    pub fn record(&mut self, failure: Failure) -> Verdict {
        let now = failure.time;
        self.decide(failure, now)
    }

    fn decide(&mut self, failure: Failure, now: SystemTime) -> Verdict {
        let id = failure.jail;
        match self.tally(failure) {
            Verdict::Ban(mut order) => {
                self.bantime_policy(id, &mut order, now);
                if let Some(Some(jail)) = self.jails.get(id) {
                    let id = id.min(usize::from(u16::MAX)) as u16;
                    self.prefixes.widen(id, jail, &mut order);
                }
                Verdict::Ban(order)
            }
            v => v,
        }
    }

    /// Grows a repeat offender's bantime and records the ban as an offence.
    /// As in fail2ban, the count is the earlier bans of the address (in this
    /// jail, or in any with `overalljails`) within `dbpurgeage`; a ban
    /// decided while an earlier one of this jail still runs is not a new
    /// offence (the backend extends the running one, or leaves it).
    fn bantime_policy(&mut self, id: JailId, order: &mut BanOrder, now: SystemTime) {
        let addr = order.target.addr();
        let increment = self
            .jails
            .get(id)
            .and_then(Option::as_ref)
            .and_then(|j| j.increment.as_ref());
        if let Some(inc) = increment {
            let jail = (!inc.overalljails).then_some(&*order.jail);
            let count = self.offences.count(addr, jail, now);
            if count > 0 {
                order.bantime = inc.bantime(order.bantime, count);
                debug!(jail = %order.jail, %addr, count, bantime = ?order.bantime, "repeat offender");
            }
        }
        if !self.offences.running(addr, &order.jail, now) {
            self.offences
                .record(addr, Arc::clone(&order.jail), now, now + order.bantime);
        }
    }

    /// A ban made by hand (`nftjail ban` of one address) that the backend
    /// newly added: an offence like any other, though its bantime did not grow.
    pub fn banned_by_hand(
        &mut self,
        jail: Arc<str>,
        addr: IpAddr,
        bantime: Duration,
        now: SystemTime,
    ) {
        let addr = addr.to_canonical();
        self.offences.record(addr, jail, now, now + bantime);
    }

    /// A ban lifted by hand (`nftjail unban`): a new ban of the address is a
    /// new offence again.
    pub fn unbanned(&mut self, jail: &str, addr: IpAddr, now: SystemTime) {
        self.offences.lift(addr.to_canonical(), jail, now);
    }

    /// Counts one failure; a ban comes out with the jail's plain bantime.
    fn tally(&mut self, failure: Failure) -> Verdict {
        let Some(Some(jail)) = self.jails.get(failure.jail) else {
            return Verdict::Ignored;
        };
        let addr = failure.addr.to_canonical();
        if jail.ignore.contains(addr) {
            return Verdict::Ignored;
        }
        // Config checking keeps jail counts far below u16::MAX and maxretry
        // within u8 windows; clamp rather than trust that here.
        let key = (failure.jail.min(usize::from(u16::MAX)) as u16, addr);
        if let Some(rule) = &jail.prefix {
            let max = self.max_tracked;
            let ban = self.prefixes.count(key.0, jail, rule, &failure, max);
            self.prefix_bans.extend(ban);
        }
        let maxretry = windows::capacity(jail);
        let findtime = windows::longest_findtime(jail).as_millis() as u64;
        let t = millis(failure.time);
        let counts = &mut self.counts[failure.jail];
        counts.total += 1;
        let (window, new) = match self.windows.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => (e.into_mut(), false),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.opened.push_back(key);
                counts.current += 1;
                (e.insert(Window::new()), true)
            }
        };
        let simple = jail.windows.is_empty();
        // The failure that bans: the ban below removes the window, so `t`
        // need not join it.
        let bans = (simple && window.len() + 1 >= maxretry)
            .then(|| window.count_with(t, findtime, maxretry))
            .filter(|&n| n >= maxretry);
        let count = match bans {
            Some(n) => n,
            None => window.push(t, findtime, maxretry),
        } as u32;
        self.unsaved.changed(key, window, new);
        let mut decided = if simple {
            (count as usize >= maxretry).then_some((Cause::Window(0), count, jail.bantime))
        } else {
            windows::decide(jail, window.times(), t)
        };
        if let (Some(rule), Some(name)) = (&jail.account, &failure.account) {
            if self.accounts.len() <= failure.jail {
                self.accounts
                    .resize_with(failure.jail + 1, account::Accounts::default);
            }
            let spray = self.accounts[failure.jail].record(rule, name, addr, t);
            if let Some(n) = spray {
                if decided.as_ref().is_none_or(|d| rule.bantime > d.2) {
                    decided = Some((Cause::Account(name.clone()), n, rule.bantime));
                }
            }
        }
        if let Some((cause, failures, bantime)) = decided {
            if let Some(gone) = self.windows.remove(&key) {
                self.unsaved.gone(key, &gone);
            }
            counts.current = counts.current.saturating_sub(1);
            return Verdict::Ban(BanOrder {
                failures,
                line: failure.line,
                read: failure.read,
                cause,
                ..BanOrder::host(jail.name.clone(), addr, bantime)
            });
        }
        self.evict();
        Verdict::Counted { count }
    }

    /// Counts on the failures the last run stored (by jail name, as its
    /// checkpoints gave them): an attacker gains nothing from a restart,
    /// nor from a crash. Returns how many were carried over, and the
    /// bans now due (maxretry was lowered meanwhile). "Total failed" starts
    /// from zero after them: the last run counted them.
    pub fn carry_over(
        &mut self,
        failures: Vec<(String, IpAddr, SystemTime)>,
        now: SystemTime,
    ) -> (usize, Vec<BanOrder>) {
        let mut carried = 0;
        let mut due = Vec::new();
        for (jail, addr, time) in failures {
            let id = self
                .jails
                .iter()
                .position(|j| j.as_ref().is_some_and(|j| *j.name == *jail));
            let Some(jail) = id else { continue };
            let failure = Failure {
                jail,
                addr,
                time,
                line: None,
                read: None,
                account: None,
            };
            match self.record_at(failure, now) {
                Verdict::Counted { .. } => carried += 1,
                Verdict::Ban(order) => {
                    carried += 1;
                    due.push(order);
                }
                Verdict::Ignored | Verdict::Stale => {}
            }
        }
        due.append(&mut self.prefix_bans);
        for c in &mut self.counts {
            c.total = 0;
        }
        // What is stored may differ from what was carried (stale failures,
        // jails gone): the first checkpoint writes the counts anew.
        self.unsaved.rewrite_all(self.max_tracked);
        (carried, due)
    }

    fn evict(&mut self) {
        while self.windows.len() > self.max_tracked {
            match self.opened.pop_front() {
                Some(key) => {
                    if let Some(gone) = self.windows.remove(&key) {
                        self.unsaved.gone(key, &gone);
                        if let Some(c) = self.counts.get_mut(usize::from(key.0)) {
                            c.current = c.current.saturating_sub(1);
                        }
                    }
                }
                None => break,
            }
        }
        // Bans and prunes leave stale keys behind; drop them now and then so
        // the queue stays proportional to the map.
        if self.opened.len() > 2 * self.windows.len() + 1024 {
            let windows = &self.windows;
            // The keys opened since the last checkpoint stay the last ones.
            let older = self.opened.len().saturating_sub(self.unsaved.opened);
            let (mut i, mut newer) = (0, 0);
            self.opened.retain(|k| {
                let keep = windows.contains_key(k);
                newer += usize::from(keep && i >= older);
                i += 1;
                keep
            });
            self.unsaved.opened = newer;
        }
    }

    /// Forgets failure windows with nothing left inside findtime at `now`.
    /// Called on a timer so memory tracks the attack, not the uptime.
    pub fn prune(&mut self, now: SystemTime) {
        self.offences.purge(now);
        let now = millis(now);
        for (jail, accounts) in self.jails.iter().zip(&mut self.accounts) {
            if let Some(rule) = jail.as_ref().and_then(|j| j.account.as_ref()) {
                accounts.prune(rule, now);
            }
        }
        let jails = &self.jails;
        self.prefixes.prune(now, |id| {
            let jail = jails.get(usize::from(id))?.as_ref()?;
            Some(jail.prefix.as_ref()?.findtime.as_millis() as u64)
        });
        let counts = &mut self.counts;
        let unsaved = &mut self.unsaved;
        self.windows.retain(|key, window| {
            let id = usize::from(key.0);
            let findtime = jails
                .get(id)
                .and_then(Option::as_ref)
                .map_or(0, |j| windows::longest_findtime(j).as_millis() as u64);
            let keep = window.times().last().is_some_and(|&t| t + findtime > now);
            if !keep {
                unsaved.gone(*key, window);
                if let Some(c) = counts.get_mut(id) {
                    c.current = c.current.saturating_sub(1);
                }
            }
            keep
        });
        self.evict();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    pub(super) fn tracker(extra: &str) -> Tracker {
        let text = format!(
            "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 3\nfindtime = 60\nbantime = 300\n{extra}"
        );
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        Tracker::new(cfg.jails)
    }

    pub(super) fn at(addr: &str, secs: u64) -> Failure {
        Failure {
            jail: 0,
            addr: addr.parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
            line: None,
            read: None,
            account: None,
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
                assert_eq!(o.target.to_string(), "203.0.113.1/32");
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
            Verdict::Ban(o) => assert!(o.target.addr().is_ipv4()),
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
    fn the_cap_forgets_the_oldest_windows_first() {
        let text = "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 2\nfindtime = 60\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let mut t = Tracker::with_limit(cfg.jails, 3);
        for (i, a) in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"]
            .iter()
            .enumerate()
        {
            t.record(at(a, i as u64));
        }
        assert_eq!(t.tracked(), 3);
        // .1 was evicted: its second failure starts over instead of banning.
        assert_eq!(
            t.record(at("203.0.113.1", 5)),
            Verdict::Counted { count: 1 }
        );
        assert!(matches!(t.record(at("203.0.113.4", 6)), Verdict::Ban(_)));
    }

    #[test]
    fn failures_older_than_findtime_when_read_are_not_counted() {
        let mut t = tracker("");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 100);
        // findtime is 60 s: a line from 61 s ago is stale, one from 59 s ago counts.
        assert_eq!(t.record_at(at("203.0.113.1", 39), now), Verdict::Stale);
        assert_eq!(
            t.record_at(at("203.0.113.1", 41), now),
            Verdict::Counted { count: 1 }
        );
        assert_eq!(t.counts(0).total, 1);
    }

    #[test]
    fn prune_forgets_stale_windows() {
        let mut t = tracker("");
        t.record(at("203.0.113.1", 0));
        t.record(at("203.0.113.2", 50));
        t.prune(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 70));
        assert_eq!(t.tracked(), 1);
    }

    #[test]
    fn counts_follow_windows_and_reconfigure_keeps_present_jails() {
        let mut t = tracker("");
        t.record(at("203.0.113.1", 0));
        t.record(at("203.0.113.2", 0));
        t.record(at("203.0.113.2", 1));
        assert_eq!(
            t.counts(0),
            JailCounts {
                current: 2,
                total: 3
            }
        );
        assert!(matches!(t.record(at("203.0.113.2", 2)), Verdict::Ban(_)));
        assert_eq!(
            t.counts(0),
            JailCounts {
                current: 1,
                total: 4
            }
        );

        // Same jail, maxretry 3 -> 2: .1's one failure is kept; one more bans.
        let text = "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 2\nfindtime = 60\n";
        let jails = Config::parse(text, Path::new("t.toml")).unwrap().jails;
        t.reconfigure(jails.into_iter().map(Some).collect(), 100);
        assert!(matches!(t.record(at("203.0.113.1", 3)), Verdict::Ban(_)));

        // The jail removed: its windows and failures on their way are dropped.
        t.record(at("203.0.113.3", 4));
        t.reconfigure(vec![None], 100);
        assert_eq!(t.tracked(), 0);
        assert_eq!(t.counts(0).current, 0);
        assert_eq!(t.record(at("203.0.113.3", 5)), Verdict::Ignored);
    }

    #[test]
    fn windows_and_the_account_rule_decide_in_one_pass_and_the_longest_ban_wins() {
        let mut t = tracker(
            "[[jail.j.window]]\nmaxretry = 5\nfindtime = 3600\nbantime = 86400\n\
             [jail.j.account]\nmaxaddrs = 2\nfindtime = 3600\nbantime = 1000\n",
        );
        // 100 s apart: never 3 within the jail's 60 s; the fifth fills
        // the slow window.
        for i in 0..4 {
            let v = t.record(at("203.0.113.1", i * 100));
            assert_eq!(
                v,
                Verdict::Counted {
                    count: i as u32 + 1
                }
            );
        }
        match t.record(at("203.0.113.1", 400)) {
            Verdict::Ban(o) => {
                assert_eq!(o.cause, Cause::Window(1));
                assert_eq!((o.failures, o.bantime.as_secs()), (5, 86_400));
            }
            v => panic!("expected a ban, got {v:?}"),
        }
        // Older than the jail's findtime but inside the slow window's:
        // still counted.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 1_000);
        assert!(matches!(
            t.record_at(at("203.0.113.2", 500), now),
            Verdict::Counted { .. }
        ));
        let against = |addr, secs, name: &str| Failure {
            account: crate::message::Account::new(name),
            ..at(addr, secs)
        };
        let alice = crate::message::Account::new("alice").unwrap();
        let attacked = |t: &Tracker, secs| t.under_attack(0, at("192.0.2.1", secs).time);
        assert!(matches!(
            t.record(against("198.51.100.1", 1_000, "alice")),
            Verdict::Counted { .. }
        ));
        assert!(attacked(&t, 1_000).is_empty());
        // The second puts alice under attack (maxaddrs 2), unjudged.
        assert!(matches!(
            t.record(against("198.51.100.2", 1_000, "alice")),
            Verdict::Counted { .. }
        ));
        assert_eq!(attacked(&t, 1_000), ["alice"]);
        // The third is banned by the account rule, whose ban is longer
        // than the jail's.
        match t.record(against("198.51.100.3", 1_001, "alice")) {
            Verdict::Ban(o) => {
                assert_eq!(o.cause, Cause::Account(alice));
                assert_eq!((o.failures, o.bantime.as_secs()), (1, 1_000));
                assert_eq!(o.target.addr().to_string(), "198.51.100.3");
            }
            v => panic!("expected a ban, got {v:?}"),
        }
        assert_eq!(attacked(&t, 1_002), ["alice"]);
        // Failures without an account, or against another, are untouched.
        assert!(matches!(
            t.record(at("198.51.100.4", 1_002)),
            Verdict::Counted { .. }
        ));
        assert!(matches!(
            t.record(against("198.51.100.5", 1_002, "bob")),
            Verdict::Counted { .. }
        ));
    }

    #[test]
    fn repeat_offenders_get_longer_bans_and_a_running_ban_is_no_new_offence() {
        let mut t = tracker("bantime_increment = true\n");
        // maxretry is 3: the third failure bans.
        let ban = |t: &mut Tracker, secs| {
            t.record(at("203.0.113.9", secs - 2));
            t.record(at("203.0.113.9", secs - 1));
            match t.record(at("203.0.113.9", secs)) {
                Verdict::Ban(o) => o.bantime.as_secs(),
                v => panic!("expected a ban, got {v:?}"),
            }
        };
        assert_eq!(ban(&mut t, 2), 300);
        // Decided again while the first runs: grown for the one earlier
        // ban, but not counted as another.
        assert_eq!(ban(&mut t, 100), 600);
        assert_eq!(ban(&mut t, 400), 600);
        // That one ran until 1000: the next is a third offence.
        assert_eq!(ban(&mut t, 1_000), 1_200);
        // Lifted by hand: the next ban is a new offence at once.
        t.unbanned(
            "j",
            "203.0.113.9".parse().unwrap(),
            at("203.0.113.9", 1_001).time,
        );
        assert_eq!(ban(&mut t, 1_002), 2_400);
    }
}
