//! Longer bans for repeat offenders, with fail2ban's vocabulary
//! (`bantime.increment`, `.factor`, `.multipliers`, `.maxtime`, `.rndtime`,
//! `.overalljails`), spelled `bantime_increment` etc. in TOML since a key
//! cannot be both a value and a table there.
//!
//! As in fail2ban, the count is the number of earlier bans of the address
//! (in this jail, or in any jail with `overalljails`) still within
//! `dbpurgeage`; the first ban gets the plain bantime.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// fail2ban caps its exponent at 20 (`1 << 20` times the bantime).
const MAX_EXPONENT: u32 = 20;

/// The longest ban (and any duration the config takes) we hand the kernel.
///
/// The kernel takes an element's timeout as milliseconds and refuses with
/// ERANGE any value at or above `u64::MAX / NSEC_PER_MSEC` (it converts to
/// nanoseconds before jiffies, see `nf_msecs_to_jiffies64`): nearly six
/// centuries, the same on 6.1 as on recent kernels. A refused
/// element aborts its whole transaction, so we stay well below: 26000
/// weeks (about 498 years) leaves room for `bantime_rndtime` and rounding
/// and reads as a whole unit in messages.
pub const MAX_BANTIME: Duration = Duration::from_secs(26_000 * 604_800);

#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// `bantime.factor`: multiplies the growth (default 1).
    pub factor: f64,
    /// `bantime.multipliers`: when set, the n-th repeat gets
    /// bantime × factor × multipliers[n] (the last one once past the end),
    /// instead of the default exponential bantime × factor × 2^n.
    pub multipliers: Vec<f64>,
    /// `bantime.maxtime`: no ban longer than this.
    pub maxtime: Option<Duration>,
    /// `bantime.rndtime`: up to this much random time added, so that botnets
    /// cannot learn the exact moment a ban ends.
    pub rndtime: Option<Duration>,
    /// `bantime.overalljails`: earlier bans in every jail count.
    pub overalljails: bool,
}

impl Default for Increment {
    fn default() -> Self {
        Increment {
            factor: 1.0,
            multipliers: Vec::new(),
            maxtime: None,
            rndtime: None,
            overalljails: false,
        }
    }
}

impl Increment {
    /// The bantime for an address banned `count` times before, never past
    /// [`MAX_BANTIME`], whatever the growth, maxtime and rndtime: the kernel
    /// would refuse a longer one, and with it the bans sharing its transaction.
    pub fn bantime(&self, base: Duration, count: u32) -> Duration {
        if count == 0 || base.is_zero() {
            return base;
        }
        let scale = if self.multipliers.is_empty() {
            f64::from(1u32 << count.min(MAX_EXPONENT))
        } else {
            let i = (count as usize).min(self.multipliers.len() - 1);
            self.multipliers[i]
        };
        let grown = base.as_secs_f64() * scale * self.factor;
        // Never shorter than the plain bantime, never longer than maxtime.
        let mut secs = grown.max(base.as_secs_f64());
        if let Some(max) = self.maxtime {
            secs = secs.min(max.as_secs_f64().max(base.as_secs_f64()));
        }
        let mut t = Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_BANTIME)
            .min(MAX_BANTIME);
        if let Some(rnd) = self.rndtime {
            t = t.saturating_add(rnd.mul_f64(fastrand::f64()));
        }
        t.min(MAX_BANTIME)
    }
}

/// One earlier ban: its jail, when it was decided and when it ends.
#[derive(Debug, Clone)]
struct Offence {
    jail: Arc<str>,
    at: SystemTime,
    until: SystemTime,
}

/// An address's bans. Inline for the first: most addresses are banned
/// once, and a flood of new ones would otherwise cost an allocation each.
type Bans = smallvec::SmallVec<[Offence; 1]>;

/// Earlier bans per address, kept for `dbpurgeage` (loaded from the state
/// store at start, so counts survive restarts), with when each ends: a ban
/// decided while an earlier one in the same jail still runs is not a new
/// offence (fail2ban's "already banned").
#[derive(Debug, Default)]
pub struct Offences {
    by_addr: crate::AddrMap<IpAddr, Bans>,
    keep: Duration,
}

impl Offences {
    pub fn new(keep: Duration) -> Self {
        Offences {
            by_addr: crate::AddrMap::default(),
            keep,
        }
    }

    /// A ban of `addr` in `jail` decided `at`, running `until`.
    pub fn record(&mut self, addr: IpAddr, jail: Arc<str>, at: SystemTime, until: SystemTime) {
        self.by_addr
            .entry(addr)
            .or_default()
            .push(Offence { jail, at, until });
    }

    /// Whether a ban recorded for `addr` in `jail` still runs at `now`.
    pub fn running(&self, addr: IpAddr, jail: &str, now: SystemTime) -> bool {
        self.by_addr
            .get(&addr)
            .is_some_and(|v| v.iter().any(|o| *o.jail == *jail && o.until > now))
    }

    /// `addr`'s ban in `jail` was lifted at `now` (an unban): it no longer runs.
    pub fn lift(&mut self, addr: IpAddr, jail: &str, now: SystemTime) {
        if let Some(v) = self.by_addr.get_mut(&addr) {
            for o in v.iter_mut().filter(|o| *o.jail == *jail && o.until > now) {
                o.until = now;
            }
        }
    }

    /// Earlier bans of `addr` still remembered at `now`: in `jail`, or in
    /// every jail when `jail` is None.
    pub fn count(&self, addr: IpAddr, jail: Option<&str>, now: SystemTime) -> u32 {
        let since = now.checked_sub(self.keep).unwrap_or(SystemTime::UNIX_EPOCH);
        self.by_addr.get(&addr).map_or(0, |v| {
            v.iter()
                .filter(|o| o.at >= since && jail.is_none_or(|x| x == &*o.jail))
                .count() as u32
        })
    }

    /// Forgets what is older than `dbpurgeage`.
    pub fn purge(&mut self, now: SystemTime) {
        let since = now.checked_sub(self.keep).unwrap_or(SystemTime::UNIX_EPOCH);
        self.by_addr.retain(|_, v| {
            v.retain(|o| o.at >= since || o.until > now);
            !v.is_empty()
        });
    }
}

/// Durations in log lines and CLI output, spelled the way the config
/// spells them.
/// `600 s` → `10m`, the way the config spells it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// `3587` → `59m47s`: remaining times, which are rarely whole units.
pub fn human_secs(s: u64) -> String {
    let mut out = String::new();
    let mut rest = s;
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    if rest > 0 || out.is_empty() {
        out.push_str(&format!("{rest}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn exponential_by_default_as_fail2ban() {
        let inc = Increment::default();
        assert_eq!(inc.bantime(H, 0), H);
        assert_eq!(inc.bantime(H, 1), 2 * H);
        assert_eq!(inc.bantime(H, 2), 4 * H);
        assert_eq!(inc.bantime(H, 40), H * (1 << 20));
        let inc = Increment {
            factor: 3.0,
            maxtime: Some(5 * H),
            ..Increment::default()
        };
        assert_eq!(inc.bantime(H, 1), 5 * H);
        assert_eq!(inc.bantime(H, 0), H);
    }

    #[test]
    fn growth_stops_at_the_kernels_limit_with_or_without_maxtime() {
        let week = Duration::from_secs(604_800);
        let base = 10_000 * week;
        let plain = Increment::default();
        assert_eq!(plain.bantime(base, 20), MAX_BANTIME);
        let above = Increment {
            maxtime: Some(10 * MAX_BANTIME),
            rndtime: Some(week),
            ..Increment::default()
        };
        assert_eq!(above.bantime(base, 3), MAX_BANTIME);
        let huge = Increment {
            multipliers: vec![1.0, f64::MAX],
            ..Increment::default()
        };
        assert_eq!(huge.bantime(base, 1), MAX_BANTIME);
        assert_eq!(plain.bantime(base, 1), 2 * base);
    }

    #[test]
    fn multipliers_then_last_one() {
        let inc = Increment {
            multipliers: vec![1.0, 5.0, 30.0],
            ..Increment::default()
        };
        assert_eq!(inc.bantime(H, 1), 5 * H);
        assert_eq!(inc.bantime(H, 2), 30 * H);
        assert_eq!(inc.bantime(H, 9), 30 * H);
    }

    #[test]
    fn rndtime_adds_at_most_its_value() {
        let inc = Increment {
            rndtime: Some(Duration::from_secs(60)),
            ..Increment::default()
        };
        for _ in 0..100 {
            let t = inc.bantime(H, 1);
            assert!(t >= 2 * H && t <= 2 * H + Duration::from_secs(60), "{t:?}");
        }
    }

    #[test]
    fn offences_count_per_jail_or_overall_and_expire() {
        let now = SystemTime::now();
        let mut o = Offences::new(Duration::from_secs(86_400));
        let a: IpAddr = "192.0.2.1".parse().expect("addr");
        let ago = |s| now - Duration::from_secs(s);
        o.record(a, "sshd".into(), ago(100), ago(40));
        o.record(a, "postfix".into(), ago(50), now + H);
        o.record(a, "sshd".into(), ago(90_000), ago(89_000));
        assert_eq!(o.count(a, Some("sshd"), now), 1);
        assert_eq!(o.count(a, None, now), 2);
        o.purge(now);
        assert_eq!(o.by_addr[&a].len(), 2);
    }

    #[test]
    fn a_running_ban_ends_when_lifted() {
        let now = SystemTime::now();
        let mut o = Offences::new(Duration::from_secs(86_400));
        let a: IpAddr = "192.0.2.1".parse().expect("addr");
        o.record(a, "sshd".into(), now, now + H);
        assert!(o.running(a, "sshd", now));
        assert!(!o.running(a, "postfix", now));
        o.lift(a, "sshd", now);
        assert!(!o.running(a, "sshd", now));
        assert_eq!(o.count(a, Some("sshd"), now), 1);
    }

    #[test]
    fn whole_units_and_remaining_times() {
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(7_200)), "2h");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human_secs(3_587), "59m47s");
        assert_eq!(human_secs(0), "0s");
        assert_eq!(human_secs(86_401), "1d1s");
    }
}
