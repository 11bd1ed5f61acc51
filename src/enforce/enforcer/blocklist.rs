//! Bans without timeout: the entries of each jail's blocklist file and
//! `nftjail ban --permanent`.
//!
//! A blocklist is applied as a difference from what it put in the kernel
//! before: entries gone from the file are lifted, new ones added, the others
//! left alone (a reload of a large list sends only what changed). Which
//! bans came from a blocklist is known from the state store at start (their
//! cause) and kept here while the daemon runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ipnet::IpNet;
use tracing::{info, warn};

use super::{show, Enforcer};
use crate::enforce::{Applied, EnforceError};
use crate::message::Cause;
use crate::metrics;
use crate::state::writer::StateMsg;
use crate::state::StoredBan;

/// One jail's blocklist as read now.
#[derive(Debug, Clone)]
pub struct Blocklist {
    pub jail: Arc<str>,
    /// Every entry, checked and without overlaps among themselves. None:
    /// the file could not be read, so what was loaded before stays.
    pub entries: Option<Vec<IpNet>>,
}

/// What applying one jail's blocklist did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlocklistApplied {
    pub jail: String,
    pub added: usize,
    pub removed: usize,
    /// Entries already in force, left alone.
    pub kept: usize,
    /// Entries the backend refused (a prefix overlapping a banned one).
    pub refused: usize,
}

/// Blocklist entries in force, per jail.
pub(super) type Blocklisted = HashMap<String, HashSet<IpNet>>;

impl Enforcer {
    /// The blocklist entries the last run put in the kernel (bans stored
    /// with [`Cause::Blocklist`]), so the first load lifts those gone
    /// from the file meanwhile.
    pub fn with_blocklisted(mut self, entries: impl IntoIterator<Item = (String, IpNet)>) -> Self {
        for (jail, net) in entries {
            self.blocklisted.entry(jail).or_default().insert(net);
        }
        self
    }

    /// Makes each jail's blocklist entries in the kernel those of `lists`.
    pub(super) fn blocklists(&mut self, lists: Vec<Blocklist>) -> Vec<BlocklistApplied> {
        lists
            .into_iter()
            .filter_map(|list| {
                if !self.jails.iter().any(|j| **j == *list.jail) {
                    return None;
                }
                let entries = list.entries?;
                match self.blocklist(&list.jail, entries) {
                    Ok(done) => Some(done),
                    Err(e) => {
                        metrics::enforcer_error();
                        warn!(jail = %list.jail, "blocklist not applied: {e}");
                        None
                    }
                }
            })
            .collect()
    }

    fn blocklist(
        &mut self,
        jail: &Arc<str>,
        entries: Vec<IpNet>,
    ) -> Result<BlocklistApplied, EnforceError> {
        let started = Instant::now();
        let wanted: HashSet<IpNet> = entries.into_iter().collect();
        let before = self.blocklisted.remove(&**jail).unwrap_or_default();
        if wanted.is_empty() && before.is_empty() {
            // No blocklist, now or before: nothing to say.
            return Ok(BlocklistApplied {
                jail: jail.to_string(),
                ..BlocklistApplied::default()
            });
        }
        let gone: Vec<IpNet> = before.difference(&wanted).copied().collect();
        let new: Vec<IpNet> = wanted
            .difference(&before)
            .filter(|net| match self.check_never(net) {
                Ok(()) => true,
                Err(e) => {
                    warn!(jail = %jail, entry = %show(net), "blocklist entry skipped: {e}");
                    false
                }
            })
            .copied()
            .collect();
        let mut done = BlocklistApplied {
            jail: jail.to_string(),
            kept: before.intersection(&wanted).count(),
            ..BlocklistApplied::default()
        };
        let mut now_in: HashSet<IpNet> = before.intersection(&wanted).copied().collect();
        let lifted = self.backend.lift_many(jail, &gone);
        if lifted.is_err() {
            // Not lifted: still ours to lift at the next load.
            now_in.extend(&gone);
        }
        done.removed = lifted?;
        for _ in 0..done.removed {
            metrics::unbanned(jail, metrics::BLOCKLIST);
        }
        if !gone.is_empty() {
            self.changes += 1;
            let keys = gone.iter().map(|n| (jail.to_string(), Some(*n))).collect();
            self.record(StateMsg::Lifted(keys));
        }
        let outcomes = match self.backend.ban_permanent(jail, &new) {
            Ok(o) => o,
            Err(e) => {
                self.blocklisted.insert(jail.to_string(), now_in);
                return Err(e);
            }
        };
        let mut stored = Vec::new();
        let start = SystemTime::now();
        for (net, outcome) in new.iter().zip(outcomes) {
            match outcome {
                Ok(Applied::Unchanged) => {}
                Ok(_) => {
                    now_in.insert(*net);
                    stored.push((permanent_ban(jail, *net, start, Cause::Blocklist), false));
                }
                Err(e) => {
                    done.refused += 1;
                    warn!(jail = %jail, entry = %show(net), "blocklist entry skipped: {e}");
                }
            }
        }
        done.added = stored.len();
        if !stored.is_empty() {
            self.changes += 1;
            *self.totals.entry(jail.to_string()).or_default() += stored.len() as u64;
            metrics::banned(jail, metrics::BLOCKLIST, stored.len() as u64);
            self.record(StateMsg::Banned(stored));
        }
        self.blocklisted.insert(jail.to_string(), now_in);
        info!(
            jail = %jail,
            added = done.added,
            removed = done.removed,
            kept = done.kept,
            skipped = done.refused,
            ms = started.elapsed().as_millis() as u64,
            "blocklist applied: {} added, {} removed, {} unchanged",
            done.added,
            done.removed,
            done.kept
        );
        Ok(done)
    }

    /// `nftjail ban --permanent`: an element without timeout, stored as a
    /// manual ban with no end.
    pub(super) fn manual_permanent(
        &mut self,
        jail: Arc<str>,
        target: IpNet,
    ) -> Result<Applied, EnforceError> {
        self.check_never(&target)?;
        let outcome = self
            .backend
            .ban_permanent(&jail, &[target])?
            .into_iter()
            .next()
            .unwrap_or(Ok(Applied::Unchanged))?;
        if outcome != Applied::Unchanged {
            let ban = permanent_ban(&jail, target, SystemTime::now(), Cause::Manual);
            self.record(StateMsg::Banned(vec![(ban, false)]));
            *self.totals.entry(jail.to_string()).or_default() += 1;
            metrics::banned(&jail, metrics::MANUAL, 1);
            self.changes += 1;
            info!(
                jail = %jail,
                addr = %show(&target),
                reason = "manual",
                "ban: jail={jail} addr={} manual permanent",
                show(&target)
            );
        }
        Ok(outcome)
    }

    /// `[daemon] never`: no ban may cover these networks, permanent or not.
    pub(super) fn check_never(&self, target: &IpNet) -> Result<(), EnforceError> {
        let covered = self
            .never
            .iter()
            .find(|n| n.contains(&target.network()) || target.contains(&n.network()));
        match covered {
            Some(never) => Err(EnforceError::Never {
                wanted: show(target),
                never: show(never),
            }),
            None => Ok(()),
        }
    }

    /// An unbanned entry is no longer the blocklist's: a reload that still
    /// finds it in the file puts it back.
    pub(super) fn forget_blocklisted(&mut self, jail: &str, net: &IpNet) {
        if let Some(set) = self.blocklisted.get_mut(jail) {
            set.remove(net);
        }
    }
}

fn permanent_ban(jail: &Arc<str>, net: IpNet, start: SystemTime, cause: Cause) -> StoredBan {
    StoredBan {
        jail: Arc::clone(jail),
        net: if crate::enforce::record::is_host(&net) {
            IpNet::from(net.addr().to_canonical())
        } else {
            net.trunc()
        },
        start,
        until: None,
        failures: 0,
        line: None,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::enforcer::tests::rules;
    use crate::enforce::log::LogBackend;
    use crate::enforce::Backend;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn apply(e: &mut Enforcer, entries: Option<&[&str]>) -> Vec<BlocklistApplied> {
        e.blocklists(vec![Blocklist {
            jail: Arc::from("a"),
            entries: entries.map(nets),
        }])
    }

    fn held(e: &Enforcer) -> Vec<(IpNet, Option<std::time::Duration>)> {
        e.backend.list("a")
    }

    #[test]
    fn a_reload_sends_the_difference_and_an_unreadable_file_keeps_what_was_loaded() {
        let mut backend: Box<dyn Backend> = Box::new(LogBackend::default());
        backend.reconcile(&rules(&["a"])).unwrap();
        let mut e = Enforcer::new(backend, &rules(&["a"]), None);
        let first = apply(&mut e, Some(&["192.0.2.1/32", "198.51.100.0/24"]));
        assert_eq!((first[0].added, first[0].removed, first[0].kept), (2, 0, 0));
        assert!(
            held(&e).iter().all(|(_, left)| left.is_none()),
            "no timeout"
        );

        let second = apply(&mut e, Some(&["198.51.100.0/24", "203.0.113.0/24"]));
        assert_eq!(
            (second[0].added, second[0].removed, second[0].kept),
            (1, 1, 1)
        );
        let listed: Vec<IpNet> = held(&e).into_iter().map(|(n, _)| n).collect();
        assert_eq!(listed, nets(&["198.51.100.0/24", "203.0.113.0/24"]));

        // Unreadable: nothing changes; an unbanned entry comes back on the next load.
        assert!(apply(&mut e, None).is_empty());
        assert_eq!(held(&e).len(), 2);
        e.unban(Some("a"), Some(nets(&["203.0.113.0/24"])[0]))
            .unwrap();
        assert_eq!(held(&e).len(), 1);
        let third = apply(&mut e, Some(&["198.51.100.0/24", "203.0.113.0/24"]));
        assert_eq!((third[0].added, third[0].kept), (1, 1));

        // A manual permanent ban is not the blocklist's to lift.
        e.manual_permanent(Arc::from("a"), nets(&["192.0.2.9/32"])[0])
            .unwrap();
        apply(&mut e, Some(&[]));
        let listed: Vec<IpNet> = held(&e).into_iter().map(|(n, _)| n).collect();
        assert_eq!(listed, nets(&["192.0.2.9/32"]));
    }

    #[test]
    fn the_last_runs_entries_are_lifted_when_gone_from_the_file() {
        let mut backend: Box<dyn Backend> = Box::new(LogBackend::default());
        backend.reconcile(&rules(&["a"])).unwrap();
        backend
            .ban_permanent("a", &nets(&["192.0.2.1/32", "192.0.2.2/32"]))
            .unwrap();
        let mut e = Enforcer::new(backend, &rules(&["a"]), None).with_blocklisted(
            nets(&["192.0.2.1/32", "192.0.2.2/32"])
                .into_iter()
                .map(|n| ("a".to_string(), n)),
        );
        let done = apply(&mut e, Some(&["192.0.2.2/32"]));
        assert_eq!((done[0].added, done[0].removed, done[0].kept), (0, 1, 1));
    }
}
