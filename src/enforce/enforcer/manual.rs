//! Bans and unbans an admin asks for (`nftjail ban`, `nftjail unban`):
//! served between automatic batches, logged and stored as manual, and able
//! to name a whole prefix, which automatic bans of one address never do.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::{show, Enforcer, Lifted, Shared};
use crate::enforce::record::is_host;
use crate::enforce::{Applied, EnforceError};
use crate::message::{BanOrder, Cause};
use crate::metrics;
use crate::state::writer::StateMsg;
use crate::state::StoredBan;

impl Enforcer {
    pub(super) fn manual(
        &mut self,
        jail: Arc<str>,
        target: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError> {
        let covered = self
            .never
            .iter()
            .find(|n| n.contains(&target.network()) || target.contains(&n.network()));
        if let Some(never) = covered {
            return Err(EnforceError::Never {
                wanted: show(&target),
                never: show(never),
            });
        }
        if is_host(&target) {
            let order = BanOrder {
                cause: Cause::Manual,
                ..BanOrder::host(jail, target.addr(), bantime)
            };
            return self
                .ban(std::slice::from_ref(&order), super::Origin::Manual)
                .map(|v| v.first().copied().unwrap_or(Applied::Unchanged));
        }
        let outcome = self.backend.ban_net(&jail, target, bantime)?;
        if outcome != Applied::Unchanged {
            let now = SystemTime::now();
            self.record(StateMsg::Banned(vec![(
                StoredBan {
                    jail: Arc::clone(&jail),
                    net: target.trunc(),
                    start: now,
                    until: Some(now + bantime),
                    failures: 0,
                    line: None,
                    cause: Cause::Manual,
                },
                false,
            )]));
            *self.totals.entry(jail.to_string()).or_default() += 1;
            metrics::banned(&jail, metrics::MANUAL, 1);
            self.changes += 1;
            let prefix = target.to_string();
            crate::enforce::banlog::manual_ban("ban", &jail, &prefix, true, bantime);
            self.share(vec![Shared::Ban {
                jail: Arc::clone(&jail),
                target: target.trunc(),
                until: now + bantime,
                cause: Cause::Manual,
            }]);
        }
        Ok(outcome)
    }

    pub(super) fn unban(
        &mut self,
        jail: Option<&str>,
        target: Option<IpNet>,
    ) -> Result<Vec<Lifted>, EnforceError> {
        let all: Vec<String> = self.all_rules().into_iter().map(|r| r.name).collect();
        let jails: Vec<String> = match jail {
            Some(j) if all.iter().any(|x| x == j) => vec![j.to_string()],
            Some(j) => return Err(EnforceError::UnknownJail(j.to_string())),
            None => all,
        };
        let mut lifted = Vec::new();
        for jail in jails {
            let listed = self.backend.list(&jail);
            let targets: Vec<(IpNet, Option<Duration>)> = match target {
                Some(t) => {
                    let ours: Vec<_> = listed.into_iter().filter(|(n, _)| *n == t).collect();
                    // An address named but not banned by us may have been
                    // added by hand: named, it is lifted too (the backend
                    // answers false when the set does not hold it).
                    if ours.is_empty() && is_host(&t) {
                        vec![(t, None)]
                    } else {
                        ours
                    }
                }
                None => listed,
            };
            // Every ban of the jail: one change of the backend for them all
            // (ufw rewrites its files once, not once per ban); the ones the
            // backend listed a moment ago are the ones it lifts.
            let batched = target.is_none() && targets.len() > 1;
            if batched {
                let nets: Vec<IpNet> = targets.iter().map(|(t, _)| *t).collect();
                self.backend.lift_many(&jail, &nets)?;
            }
            for (t, remaining) in targets {
                let done = if batched {
                    true
                } else if is_host(&t) {
                    self.backend.unban(&jail, t.addr())?
                } else {
                    self.backend.unban_net(&jail, t)?
                };
                if done {
                    self.forget_blocklisted(&jail, &t);
                    self.changes += 1;
                    self.record(StateMsg::Lifted(vec![(jail.clone(), Some(t))]));
                    metrics::unbanned(&jail, metrics::MANUAL);
                    crate::enforce::banlog::manual_unban(&jail, &show(&t));
                    lifted.push(Lifted {
                        jail: jail.clone(),
                        addr: t,
                        remaining,
                    });
                }
            }
        }
        self.share(
            lifted
                .iter()
                .map(|l| Shared::Unban {
                    jail: Arc::from(l.jail.as_str()),
                    target: l.addr,
                })
                .collect(),
        );
        Ok(lifted)
    }
}
