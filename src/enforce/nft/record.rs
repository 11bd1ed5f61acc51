//! The backend's own record of bans: per jail, address → when the kernel
//! ends the ban. The kernel sends no word when an element expires, so this
//! record is the only cheap way to answer `remaining()` and to decide what a
//! new order needs (add, extend, nothing) without a dump per ban.
//!
//! We never know the kernel's expiry exactly: it starts its clock somewhere
//! between our send and its ack, and counts in jiffies (up to 10 ms coarse).
//! So each ban keeps a window [earliest, latest], widened by [`SLACK`], and an
//! order that falls inside that window is treated as "maybe still there".
//! Time is passed in, so all of this is tested without a kernel or a sleep.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Jiffy rounding on both sides (one tick is 10 ms at HZ=100) with margin.
pub const SLACK: Duration = Duration::from_millis(50);

/// When a ban ends by the kernel's clock, as far as we can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Sent at or after `earliest - timeout`, acked before `latest - timeout`.
    Between { earliest: Instant, latest: Instant },
    /// An element without timeout (bantime beyond [`FOREVER`], or by hand).
    Never,
}

/// Bantimes from here on are sent without a timeout: permanent. (The kernel
/// refuses timeouts past about 584 years with ERANGE anyway.)
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl End {
    /// The end of a ban of `bantime` sent at `sent` and acked at `acked`.
    pub fn of(bantime: Duration, sent: Instant, acked: Instant) -> End {
        if bantime >= FOREVER {
            return End::Never;
        }
        match (sent.checked_add(bantime), acked.checked_add(bantime)) {
            (Some(earliest), Some(latest)) => End::Between { earliest, latest },
            _ => End::Never,
        }
    }
}

/// What the record says of an address at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not banned, or the kernel has surely expired it (an expired element
    /// not yet collected is no obstacle to an add, but a delete of it fails).
    Absent,
    /// Surely in the kernel, with at least this long left.
    Live(Duration),
    /// Expiring about now: the kernel may or may not still hold it.
    Uncertain,
    Permanent,
}

/// What one order needs from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Add,
    /// Delete then add in the same transaction: no unbanned moment, and
    /// portable to 6.1, where re-adding does not change a timeout.
    Replace,
    /// Like Replace, but the delete may meet an element the kernel already
    /// expired (ENOENT): it goes in a message of its own, to be dropped on retry.
    TryReplace,
    Nothing,
}

/// The decision for a ban of `bantime` on an address in `state`.
pub fn plan(state: State, bantime: Duration) -> Plan {
    match state {
        State::Absent => Plan::Add,
        State::Live(left) if bantime > left => Plan::Replace,
        State::Live(_) | State::Permanent => Plan::Nothing,
        State::Uncertain => Plan::TryReplace,
    }
}

#[derive(Debug, Default)]
pub struct Record {
    jails: HashMap<String, HashMap<IpAddr, End>>,
}

impl Record {
    pub fn has_jail(&self, jail: &str) -> bool {
        self.jails.contains_key(jail)
    }

    /// Replaces everything known of the jails with what the kernel holds.
    pub fn load(&mut self, jails: HashMap<String, HashMap<IpAddr, End>>) {
        self.jails = jails;
    }

    pub fn insert(&mut self, jail: &str, addr: IpAddr, end: End) {
        if let Some(bans) = self.jails.get_mut(jail) {
            bans.insert(addr, end);
        }
    }

    pub fn remove(&mut self, jail: &str, addr: IpAddr) {
        if let Some(bans) = self.jails.get_mut(jail) {
            bans.remove(&addr);
        }
    }

    pub fn state(&self, jail: &str, addr: IpAddr, now: Instant) -> State {
        match self.jails.get(jail).and_then(|bans| bans.get(&addr)) {
            None => State::Absent,
            Some(End::Never) => State::Permanent,
            Some(End::Between { earliest, latest }) => {
                if now + SLACK < *earliest {
                    State::Live(*earliest - SLACK - now)
                } else if now > *latest + SLACK {
                    State::Absent
                } else {
                    State::Uncertain
                }
            }
        }
    }

    /// Time left, counted to the earliest the kernel may end the ban.
    pub fn remaining(&self, jail: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        match self.jails.get(jail)?.get(&addr)? {
            End::Never => Some(Duration::MAX),
            End::Between { earliest, .. } => earliest
                .checked_duration_since(now)
                .filter(|d| !d.is_zero()),
        }
    }

    /// Forgets bans whose end has surely passed, so the record does not grow
    /// without bound on a long-running daemon.
    pub fn prune(&mut self, now: Instant) {
        for bans in self.jails.values_mut() {
            bans.retain(|_, end| match end {
                End::Never => true,
                End::Between { latest, .. } => now <= *latest + SLACK,
            });
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.jails.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1));

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn record_with(end: End) -> Record {
        let mut r = Record::default();
        r.load(HashMap::from([(
            "j".to_string(),
            HashMap::from([(A, end)]),
        )]));
        r
    }

    #[test]
    fn a_ban_is_live_then_uncertain_then_gone() {
        let t0 = Instant::now();
        let r = record_with(End::of(secs(60), t0, t0 + Duration::from_millis(2)));
        assert_eq!(r.state("j", A, t0), State::Live(secs(60) - SLACK));
        assert_eq!(r.state("j", A, t0 + secs(60)), State::Uncertain);
        assert_eq!(r.state("j", A, t0 + secs(61)), State::Absent);
        assert_eq!(
            r.state("j", "192.0.2.9".parse().unwrap(), t0),
            State::Absent
        );
        assert_eq!(r.state("other", A, t0), State::Absent);
        assert_eq!(r.remaining("j", A, t0 + secs(10)), Some(secs(50)));
        assert_eq!(r.remaining("j", A, t0 + secs(60)), None);
    }

    #[test]
    fn plans() {
        assert_eq!(plan(State::Absent, secs(60)), Plan::Add);
        assert_eq!(plan(State::Live(secs(30)), secs(60)), Plan::Replace);
        assert_eq!(plan(State::Live(secs(60)), secs(60)), Plan::Nothing);
        assert_eq!(plan(State::Live(secs(90)), secs(60)), Plan::Nothing);
        assert_eq!(plan(State::Uncertain, secs(60)), Plan::TryReplace);
        assert_eq!(plan(State::Permanent, FOREVER), Plan::Nothing);
    }

    #[test]
    fn huge_bantimes_are_permanent_not_a_panic() {
        let t0 = Instant::now();
        assert_eq!(End::of(Duration::MAX, t0, t0), End::Never);
        assert_eq!(End::of(FOREVER, t0, t0), End::Never);
        let r = record_with(End::Never);
        assert_eq!(r.state("j", A, t0), State::Permanent);
        assert_eq!(r.remaining("j", A, t0), Some(Duration::MAX));
    }

    #[test]
    fn prune_forgets_only_what_surely_ended() {
        let t0 = Instant::now();
        let mut r = record_with(End::of(secs(1), t0, t0));
        r.insert("j", "192.0.2.2".parse().unwrap(), End::Never);
        r.prune(t0 + secs(1));
        assert_eq!(r.len(), 2);
        r.prune(t0 + secs(2));
        assert_eq!(r.len(), 1);
        r.remove("j", "192.0.2.2".parse().unwrap());
        assert_eq!(r.len(), 0);
        assert!(r.has_jail("j") && !r.has_jail("k"));
    }
}
