//! Jails a reload removed while they held bans. Renaming, disabling or
//! deleting a jail must not let its offenders back in: its sets and rule
//! stay in the kernel, as they were, and each ban lasts the time it was
//! given, unless an admin lifts them on purpose (`unban --jail-gone`).

use super::{show, Enforcer, Lifted};
use crate::enforce::EnforceError;
use crate::metrics;
use crate::rules::JailRules;
use crate::state::writer::StateMsg;

/// A jail no longer configured whose bans stay until they expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneJail {
    pub jail: String,
    pub bans: usize,
}

impl GoneJail {
    /// The log line a reload and a start write for it: an admin who
    /// removed a jail learns its bans outlive it, and how to lift them.
    pub fn say_kept(&self) {
        if self.bans == 0 {
            return;
        }
        tracing::warn!(
            jail = %self.jail,
            bans = self.bans,
            "jail {} is no longer configured: its {} ban(s) are kept until they expire \
             (`nftjail unban --jail-gone` lifts them now)",
            self.jail,
            self.bans
        );
    }
}

impl Enforcer {
    /// The configured jails' rules, then those of the jails gone with bans
    /// still running: what the kernel must hold.
    pub(super) fn all_rules(&self) -> Vec<JailRules> {
        self.rules.iter().chain(&self.gone).cloned().collect()
    }

    /// A reload: the kernel made to hold `rules`, plus every jail dropped by
    /// this reload or an earlier one that still holds bans, with the rule it
    /// had. Such a ban is not lifted because a jail was renamed or disabled:
    /// an attacker would be let back in the moment an admin tidies the
    /// config. A jail gone with no ban left is removed now.
    pub(super) fn reconcile(
        &mut self,
        rules: Vec<JailRules>,
    ) -> Result<Vec<GoneJail>, EnforceError> {
        let gone: Vec<JailRules> = self
            .all_rules()
            .into_iter()
            .filter(|r| !rules.iter().any(|n| n.name == r.name))
            .filter(|r| !self.backend.list(&r.name).is_empty())
            .collect();
        let wanted: Vec<JailRules> = rules.iter().chain(&gone).cloned().collect();
        self.backend.reconcile(&wanted)?;
        self.changes += 1;
        self.jails = rules.iter().map(|r| r.name.clone()).collect();
        self.rules = rules;
        self.gone = gone;
        self.totals
            .retain(|j, _| wanted.iter().any(|r| r.name == *j));
        self.record(StateMsg::Jails(wanted));
        Ok(self.gone_jails())
    }

    /// At start: jails the config no longer names whose bans the last run
    /// kept (their sets and rules already rebuilt by the backend, from the
    /// rules the state store kept): they stay kept, as across a reload.
    /// Each holding bans is logged as a reload logs it.
    pub fn keep_gone(&mut self, gone: Vec<JailRules>) {
        self.gone = gone
            .into_iter()
            .filter(|g| !self.rules.iter().any(|r| r.name == g.name))
            .collect();
        for g in self.gone_jails() {
            g.say_kept();
        }
    }

    /// The jails gone from the config with the bans each still holds.
    pub fn gone_jails(&self) -> Vec<GoneJail> {
        self.gone
            .iter()
            .map(|r| GoneJail {
                jail: r.name.clone(),
                bans: self.backend.list(&r.name).len(),
            })
            .collect()
    }

    /// Lifts every ban of the jails gone from the config at once: their
    /// sets go, elements and all, with their rules, in one transaction.
    pub(super) fn unban_gone(&mut self) -> Result<Vec<Lifted>, EnforceError> {
        let lifted: Vec<Lifted> = self
            .gone
            .iter()
            .flat_map(|r| {
                self.backend
                    .list(&r.name)
                    .into_iter()
                    .map(|(addr, remaining)| Lifted {
                        jail: r.name.clone(),
                        addr,
                        remaining,
                    })
            })
            .collect();
        if self.gone.is_empty() {
            return Ok(lifted);
        }
        self.backend.reconcile(&self.rules)?;
        let gone: Vec<String> = std::mem::take(&mut self.gone)
            .into_iter()
            .map(|r| r.name)
            .collect();
        self.changes += 1;
        self.totals.retain(|j, _| !gone.contains(j));
        self.blocklisted.retain(|j, _| !gone.contains(j));
        self.record(StateMsg::Lifted(
            gone.iter().map(|j| (j.clone(), None)).collect(),
        ));
        self.record(StateMsg::Jails(self.rules.clone()));
        for l in &lifted {
            metrics::unbanned(&l.jail, metrics::MANUAL);
            crate::enforce::banlog::manual_unban(&l.jail, &show(&l.addr));
        }
        Ok(lifted)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::enforce::enforcer::tests::rules;
    use crate::enforce::log::LogBackend;
    use crate::enforce::Backend;

    fn names(e: &Enforcer) -> Vec<(String, usize, bool)> {
        e.list()
            .into_iter()
            .map(|j| (j.jail, j.bans.len(), j.gone))
            .collect()
    }

    #[test]
    fn a_removed_jail_keeps_its_bans_until_lifted_and_an_empty_one_goes() {
        let mut backend: Box<dyn Backend> = Box::new(LogBackend::default());
        backend.reconcile(&rules(&["a", "b", "c"])).unwrap();
        let mut e = Enforcer::new(backend, &rules(&["a", "b", "c"]), None);
        let hour = Duration::from_secs(3600);
        e.manual("a".into(), "192.0.2.1/32".parse().unwrap(), hour)
            .unwrap();

        // a and c removed: a holds a ban and is kept, c holds none and goes.
        let gone = e.reconcile(rules(&["b"])).unwrap();
        assert_eq!(
            gone,
            [GoneJail {
                jail: "a".into(),
                bans: 1
            }]
        );
        assert_eq!(
            names(&e),
            [("b".into(), 0, false), ("a".into(), 1, true)],
            "listed, as gone"
        );
        // A later reload keeps it too; one bringing it back makes it a jail again.
        assert_eq!(e.reconcile(rules(&["b"])).unwrap().len(), 1);
        assert!(e.reconcile(rules(&["a", "b"])).unwrap().is_empty());
        assert_eq!(names(&e)[0], ("a".into(), 1, false));

        e.reconcile(rules(&["b"])).unwrap();
        let lifted = e.unban_gone().unwrap();
        assert_eq!(lifted.len(), 1);
        assert_eq!(lifted[0].jail, "a");
        assert_eq!(names(&e), [("b".into(), 0, false)]);
        assert!(e.unban_gone().unwrap().is_empty());
    }

    #[test]
    fn a_start_keeps_the_jails_the_last_run_kept_and_lifts_them_when_asked() {
        // The backend as a start leaves it: reconciled with the configured
        // jail and the removed one the store still holds bans of.
        let mut backend: Box<dyn Backend> = Box::new(LogBackend::default());
        backend.reconcile(&rules(&["a", "b"])).unwrap();
        let hour = Duration::from_secs(3600);
        backend
            .ban_net("b", "192.0.2.0/24".parse().unwrap(), hour)
            .unwrap();
        let mut e = Enforcer::new(backend, &rules(&["a"]), None);
        // A jail named in both is configured, not gone.
        e.keep_gone(rules(&["b", "a"]));
        assert_eq!(names(&e), [("a".into(), 0, false), ("b".into(), 1, true)]);
        assert_eq!(e.all_rules(), rules(&["a", "b"]), "a heal rebuilds b too");
        let lifted = e.unban_gone().unwrap();
        assert_eq!(lifted.len(), 1);
        assert_eq!(names(&e), [("a".into(), 0, false)]);
    }
}
