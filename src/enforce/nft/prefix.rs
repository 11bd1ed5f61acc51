//! Prefix bans in a jail's interval sets (`JAIL-net4`, `JAIL-net6`), by
//! hand (`nftjail ban JAIL 192.0.2.0/24`) or decided by the tracker.
//!
//! The kernel refuses (EEXIST) an interval element inside or around one it
//! holds, and aborts the whole transaction with it, so nothing overlapping
//! is ever sent: the record of the set decides first. Addresses live in
//! the jail's other sets, so an address ban inside a banned prefix, or a
//! prefix over banned addresses, never meets this rule: each expires on
//! its own timeout in any order.
//!
//! For a prefix the tracker decided:
//! - inside a wider banned prefix, it is left out (the wider one already
//!   blocks it; if that one ends first, the next failures decide again);
//! - around narrower banned prefixes that all end before it, it replaces
//!   them in one transaction (deleted and added together: no moment
//!   unbanned);
//! - around a narrower one that outlives it, it is left out, so no ban is
//!   shortened.
//!
//! A prefix banned by hand that overlaps another is refused, saying which.

use std::time::{Duration, Instant};

use ipnet::IpNet;
use tracing::debug;

use super::wire::net_set_name;
use super::{NftBackend, GC_GRACE};
use crate::enforce::record::Until;
use crate::enforce::{Applied, EnforceError};

/// A ban of the same prefix ending at most this much later than the
/// running one changes nothing.
const SAME_END: Duration = Duration::from_secs(1);

/// Banned prefixes a new one meets.
#[derive(Default)]
struct Overlaps {
    /// The same prefix is banned, with less time left than wanted.
    same: bool,
    /// Narrower prefixes it would replace.
    narrower: Vec<(IpNet, Until)>,
}

impl NftBackend {
    /// Bans `net` for `bantime` in its interval set. `by_hand`: an overlap
    /// with another prefix is an error to report; else it is settled as
    /// the module's doc says.
    pub(super) fn ban_prefix(
        &mut self,
        jail: &str,
        net: IpNet,
        bantime: Duration,
        by_hand: bool,
    ) -> Result<Applied, EnforceError> {
        let net = net.trunc();
        let now = Instant::now();
        let Some(nets) = self.bans.nets(jail) else {
            return Err(EnforceError::UnknownJail(jail.to_string()));
        };
        // Expired but maybe not yet collected: the kernel may still hold it.
        let held = |u: &Until| match u {
            Until::Never => true,
            Until::At(t) => *t + GC_GRACE > now,
        };
        let ends = now + bantime;
        let mut found = Overlaps::default();
        for (other, until) in nets {
            if !held(until) || !(other.contains(&net.network()) || net.contains(&other.network())) {
                continue;
            }
            if *other == net {
                match until {
                    Until::Never => return Ok(Applied::Unchanged),
                    // Within a second of it: the same ban decided again
                    // (a prefix crosses maxaddrs twice in one batch).
                    Until::At(t) if *t + SAME_END >= ends => return Ok(Applied::Unchanged),
                    Until::At(_) => found.same = true,
                }
                continue;
            }
            if by_hand {
                return Err(EnforceError::Overlap {
                    wanted: net.to_string(),
                    existing: other.to_string(),
                });
            }
            match until {
                _ if other.prefix_len() < net.prefix_len() => {
                    debug!(jail, %net, wider = %other, "prefix already inside a banned prefix: left out");
                    return Ok(Applied::Unchanged);
                }
                Until::At(t) if *t <= ends => found.narrower.push((*other, *until)),
                _ => {
                    debug!(jail, %net, narrower = %other, "a narrower prefix inside is banned for longer: left out");
                    return Ok(Applied::Unchanged);
                }
            }
        }
        let set = net_set_name(jail, &net);
        let msg = format!("ban {net} in {set}");
        let send = |me: &mut Self, dels: &[IpNet]| {
            let mut w = me.nl.writer();
            let dels: Vec<(IpNet, Option<Duration>)> = dels.iter().map(|n| (*n, None)).collect();
            if !dels.is_empty() {
                w.intervals(&me.table, &set, &dels, false);
            }
            w.intervals(&me.table, &set, &[(net, Some(bantime))], true);
            me.commit(&w.buf, &|_| msg.clone())
        };
        let mut dels: Vec<IpNet> = found.narrower.iter().map(|(n, _)| *n).collect();
        if found.same {
            dels.push(net);
        }
        match send(self, &dels) {
            // One to delete was already collected by the kernel: send
            // again without those whose time was up.
            Err(e) if !dels.is_empty() && e.is_missing() => {
                let live: Vec<IpNet> = dels
                    .iter()
                    .filter(|n| {
                        let until = if **n == net {
                            self.bans.nets(jail).and_then(|b| b.get(n).copied())
                        } else {
                            found
                                .narrower
                                .iter()
                                .find(|(m, _)| m == *n)
                                .map(|(_, u)| *u)
                        };
                        matches!(until, Some(Until::At(t)) if t > now)
                    })
                    .copied()
                    .collect();
                send(self, &live)?;
            }
            other => other?,
        }
        let was_active = self
            .bans
            .nets(jail)
            .and_then(|n| n.get(&net))
            .is_some_and(|u| matches!(u, Until::At(t) if *t > now));
        if let Some(n) = self.bans.nets_mut(jail) {
            for (gone, _) in &found.narrower {
                n.remove(gone);
            }
            n.insert(net, Until::At(ends));
        }
        if !found.narrower.is_empty() {
            let replaced: Vec<String> = found.narrower.iter().map(|(n, _)| n.to_string()).collect();
            debug!(jail, %net, ?replaced, "prefix replaced the narrower ones inside it");
        }
        Ok(if was_active {
            Applied::Extended
        } else {
            Applied::Added
        })
    }
}
