//! Password spraying against one account: many addresses, each failing a
//! few times against the same mailbox, every one of them under maxretry.
//!
//! Per jail with an account rule, per account: the distinct addresses
//! that failed against it, newest first, each with its failure times
//! against it. An account is under attack while `maxaddrs` of them (as a
//! prefix rule counts its addresses) failed within findtime; from then on,
//! that is from the next failure against it, an address with `maxretry`
//! failures against it within findtime is banned (the default maxretry
//! of 1: at once). With maxaddrs 5, five addresses put it under attack and
//! the sixth is banned at its first failure. The account only decides
//! *whether* to ban: the address banned is always the failure's own.
//!
//! Bounded: at most `max_accounts` accounts per jail (the one followed
//! longest is forgotten first, one under attack only when all are), and
//! per account at most [`addrs_kept`] addresses, each with at most
//! maxretry times: roughly 40 bytes per address kept plus 8 per time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::config::AccountRule;
use crate::message::Account;

/// Addresses kept per account: enough to tell `maxaddrs`, and
/// some more so that an address failing again amid a spray is still known.
pub(super) fn addrs_kept(rule: &AccountRule) -> usize {
    (rule.maxaddrs as usize + 1).max(64)
}

/// The accounts one jail follows.
#[derive(Default)]
pub(super) struct Accounts {
    targets: HashMap<Account, Target>,
    /// Accounts in the order they were first seen, for eviction.
    opened: VecDeque<Account>,
}

#[derive(Default)]
struct Target {
    /// Newest first.
    seen: Vec<Seen>,
}

struct Seen {
    addr: IpAddr,
    /// Failure times against the account, ms, oldest first, at most maxretry.
    times: Vec<u64>,
}

impl Seen {
    fn last(&self) -> u64 {
        self.times.last().copied().unwrap_or(0)
    }
}

impl Target {
    /// Distinct addresses with a failure within `findtime` of `t`.
    fn addrs_within(&self, t: u64, findtime: u64) -> usize {
        self.seen
            .iter()
            .filter(|s| s.last() + findtime > t && s.last() <= t + findtime)
            .count()
    }

    fn attacked(&self, rule: &AccountRule, t: u64) -> bool {
        self.addrs_within(t, rule.findtime.as_millis() as u64) >= rule.maxaddrs as usize
    }
}

impl Accounts {
    /// Counts a failure of `addr` against `account` at `t` (ms); Some(the
    /// failures counted) when the rule bans the address.
    pub(super) fn record(
        &mut self,
        rule: &AccountRule,
        account: &Account,
        addr: IpAddr,
        t: u64,
    ) -> Option<u32> {
        let findtime = rule.findtime.as_millis() as u64;
        let maxretry = (rule.maxretry as usize).clamp(1, usize::from(u8::MAX));
        let target = match self.targets.entry(account.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.opened.push_back(account.clone());
                e.insert(Target::default())
            }
        };
        let mut seen = match target.seen.iter().position(|s| s.addr == addr) {
            Some(i) => target.seen.remove(i),
            None => Seen {
                addr,
                times: Vec::new(),
            },
        };
        seen.times
            .retain(|&x| x + findtime > t && x <= t + findtime);
        let known = !seen.times.is_empty();
        if seen.times.len() >= maxretry {
            seen.times.remove(0);
        }
        let at = seen.times.partition_point(|&x| x <= t);
        seen.times.insert(at, t);
        let count = seen.times.len();
        target.seen.insert(0, seen);
        target.seen.truncate(addrs_kept(rule));
        // Under attack before this failure: the addresses within findtime
        // but this one, unless it had failed already.
        let now = target.addrs_within(t, findtime);
        let before = if known { now } else { now.saturating_sub(1) };
        let banned = before >= rule.maxaddrs as usize && count >= maxretry;
        if banned {
            // Still one of the addresses spraying it; its failures were
            // spent on this ban.
            if let Some(s) = target.seen.first_mut() {
                s.times.clear();
                s.times.push(t);
            }
        }
        self.evict(rule, t);
        banned.then_some(count as u32)
    }

    /// Keeps at most `max_accounts`, forgetting those followed longest,
    /// an account under attack only when nothing else is left to forget.
    fn evict(&mut self, rule: &AccountRule, t: u64) {
        let mut spared = 0;
        while self.targets.len() > rule.max_accounts {
            let Some(key) = self.opened.pop_front() else {
                break;
            };
            let attacked = self.targets.get(&key).is_some_and(|g| g.attacked(rule, t));
            if attacked && spared < self.opened.len() {
                spared += 1;
                self.opened.push_back(key);
                continue;
            }
            self.targets.remove(&key);
        }
    }

    /// Forgets accounts with no failure within findtime of `now` (ms).
    pub(super) fn prune(&mut self, rule: &AccountRule, now: u64) {
        let findtime = rule.findtime.as_millis() as u64;
        self.targets.retain(|_, g| {
            g.seen.retain(|s| s.last() + findtime > now);
            !g.seen.is_empty()
        });
        let targets = &self.targets;
        self.opened.retain(|k| targets.contains_key(k));
    }

    /// The accounts under attack at `now` (ms), by name.
    pub(super) fn under_attack(&self, rule: &AccountRule, now: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .targets
            .iter()
            .filter(|(_, g)| g.attacked(rule, now))
            .map(|(a, _)| a.to_string())
            .collect();
        out.sort();
        out
    }

    /// Accounts followed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.targets.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn rule(maxaddrs: u32, maxretry: u32) -> AccountRule {
        AccountRule {
            maxaddrs,
            maxretry,
            findtime: Duration::from_secs(3600),
            bantime: Duration::from_secs(600),
            max_accounts: 3,
        }
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn maxaddrs_addresses_put_an_account_under_attack() {
        let r = rule(5, 1);
        let mut a = Accounts::default();
        let alice = Account::new("alice").unwrap();
        for i in 1..=4 {
            assert_eq!(a.record(&r, &alice, ip(i), u64::from(i) * 1000), None);
        }
        assert!(a.under_attack(&r, 4_000).is_empty());
        // The fifth puts it under attack, but is not judged itself.
        assert_eq!(a.record(&r, &alice, ip(5), 5_000), None);
        assert_eq!(a.under_attack(&r, 5_000), ["alice"]);
        // The sixth is banned at its first failure.
        assert_eq!(a.record(&r, &alice, ip(6), 6_000), Some(1));
        assert_eq!(a.under_attack(&r, 6_000), ["alice"]);
        // From then on each of them too.
        assert_eq!(a.record(&r, &alice, ip(1), 7_000), Some(1));
        // Other accounts are not concerned.
        let bob = Account::new("bob").unwrap();
        assert_eq!(a.record(&r, &bob, ip(1), 7_000), None);
        // An hour later the attack is over.
        let later = 6_000 + 3_600_000;
        assert!(a.under_attack(&r, later).is_empty());
        a.prune(&r, later + 1_000);
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn maxretry_counts_failures_against_the_account() {
        let r = rule(2, 2);
        let mut a = Accounts::default();
        let alice = Account::new("alice").unwrap();
        assert_eq!(a.record(&r, &alice, ip(1), 0), None);
        assert_eq!(a.record(&r, &alice, ip(2), 0), None);
        // Third address: under attack, but one failure of two.
        assert_eq!(a.record(&r, &alice, ip(3), 0), None);
        assert_eq!(a.record(&r, &alice, ip(3), 1), Some(2));
    }

    #[test]
    fn accounts_are_bounded_and_attacked_ones_are_kept_longest() {
        let r = rule(2, 1);
        let mut a = Accounts::default();
        let alice = Account::new("alice").unwrap();
        a.record(&r, &alice, ip(1), 0);
        a.record(&r, &alice, ip(2), 0);
        for i in 0..10 {
            let other = Account::new(&format!("user{i}")).unwrap();
            a.record(&r, &other, ip(9), 1);
        }
        assert_eq!(a.len(), 3);
        assert_eq!(a.under_attack(&r, 2), ["alice"]);
        // Many addresses against one account: a bounded list.
        for i in 0..=255 {
            a.record(&r, &alice, ip(i), 3);
        }
        assert!(a.targets[&alice].seen.len() <= addrs_kept(&r));
    }
}
