//! Farm mode, as the enforcer sees it: every ban and unban decided here
//! (by a filter or by hand) is handed to a [`Publish`] (which queues it for
//! the other nodes and never waits), and the farm's bans and unbans come in
//! as [`EnforcerMsg::Farm`](super::EnforcerMsg::Farm), applied here and
//! never handed back, so a record does not travel in circles. The enforcer
//! knows nothing of Redis: the `cluster` module implements [`Publish`] and
//! checks every record before it gets here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tracing::{info, warn};

use super::{show, Enforcer};
use crate::enforce::record::is_host;
use crate::enforce::Applied;
use crate::message::{BanOrder, Cause};
use crate::metrics;
use crate::state::writer::StateMsg;
use crate::state::StoredBan;

/// The metrics' reason for bans and unbans that came from the farm.
pub(super) const FARM: &str = "farm";

/// A ban or unban shared with the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// `target` banned in `jail` until `until` (each node gives it the time
    /// left, not a fresh bantime).
    Ban {
        jail: Arc<str>,
        target: IpNet,
        until: SystemTime,
        cause: Cause,
    },
    Unban {
        jail: Arc<str>,
        target: IpNet,
    },
}

/// Where the enforcer hands what it decided, for the other nodes.
/// Called on the enforcer's thread: it must never block.
pub trait Publish: Send {
    fn publish(&self, done: Vec<Shared>);
}

impl Enforcer {
    /// Farm mode: what this node decides goes to `publish` from now on.
    pub fn publish_to(&mut self, publish: Box<dyn Publish>) {
        self.publish = Some(publish);
    }

    pub(super) fn share(&self, done: Vec<Shared>) {
        if let (Some(p), false) = (&self.publish, done.is_empty()) {
            p.publish(done);
        }
    }

    /// Bans the automatic path just applied, for the farm.
    pub(super) fn share_bans(&self, orders: &[BanOrder], applied: &[Applied], now: SystemTime) {
        if self.publish.is_none() {
            return;
        }
        let done = orders
            .iter()
            .zip(applied)
            .filter(|(_, a)| **a != Applied::Unchanged)
            .map(|(o, _)| Shared::Ban {
                jail: Arc::clone(&o.jail),
                target: IpNet::from(o.addr.to_canonical()),
                until: now + o.bantime,
                cause: o.cause.clone(),
            })
            .collect();
        self.share(done);
    }

    /// Applies what the farm decided (already checked by the cluster
    /// module); nothing of it is published again.
    pub(super) fn apply_farm(&mut self, records: Vec<Shared>) {
        let now = SystemTime::now();
        let mut hosts = Vec::new();
        for r in records {
            match r {
                Shared::Ban {
                    jail,
                    target,
                    until,
                    cause,
                } => {
                    let Some(left) = until.duration_since(now).ok().filter(|d| !d.is_zero()) else {
                        continue;
                    };
                    // Whole milliseconds, as the kernel keeps them.
                    let left = Duration::from_millis(left.as_millis().max(1) as u64);
                    if is_host(&target) {
                        hosts.push(BanOrder {
                            jail,
                            addr: target.addr(),
                            bantime: left,
                            failures: 0,
                            line: None,
                            read: None,
                            cause,
                        });
                    } else {
                        self.farm_prefix(jail, target, left, cause, now);
                    }
                }
                Shared::Unban { jail, target } => self.farm_unban(&jail, target),
            }
        }
        if hosts.is_empty() {
            return;
        }
        let publish = self.publish.take();
        let result = self.ban(&hosts, super::Origin::Farm);
        self.publish = publish;
        if let Err(e) = result {
            metrics::enforcer_error();
            warn!(bans = hosts.len(), "bans from the farm not applied: {e}");
        }
    }

    fn farm_prefix(
        &mut self,
        jail: Arc<str>,
        target: IpNet,
        left: Duration,
        cause: Cause,
        now: SystemTime,
    ) {
        match self.backend.ban_net(&jail, target, left) {
            Ok(Applied::Unchanged) => {}
            Ok(_) => {
                self.record(StateMsg::Banned(vec![(
                    StoredBan {
                        jail: Arc::clone(&jail),
                        net: target.trunc(),
                        start: now,
                        until: Some(now + left),
                        failures: 0,
                        line: None,
                        cause,
                    },
                    false,
                )]));
                *self.totals.entry(jail.to_string()).or_default() += 1;
                metrics::banned(&jail, FARM, 1);
                self.changes += 1;
                info!(
                    "ban: jail={jail} prefix={target} from the farm, {}s left",
                    left.as_secs()
                );
            }
            Err(e) => {
                metrics::enforcer_error();
                warn!("ban from the farm not applied: jail={jail} prefix={target}: {e}");
            }
        }
    }

    fn farm_unban(&mut self, jail: &str, target: IpNet) {
        if !self.jails.iter().any(|j| j == jail) {
            return;
        }
        let done = if is_host(&target) {
            self.backend.unban(jail, target.addr())
        } else {
            self.backend.unban_net(jail, target)
        };
        match done {
            Ok(true) => {
                self.changes += 1;
                self.record(StateMsg::Lifted(vec![(jail.to_string(), Some(target))]));
                metrics::unbanned(jail, FARM);
                info!("unban: jail={jail} addr={} from the farm", show(&target));
            }
            Ok(false) => {}
            Err(e) => {
                metrics::enforcer_error();
                warn!("unban from the farm not applied: jail={jail} addr={target}: {e}");
            }
        }
    }
}
