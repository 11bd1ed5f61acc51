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
                target: o.target,
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
        let mut bans = Vec::new();
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
                    bans.push(BanOrder {
                        cause,
                        target: target.trunc(),
                        ..BanOrder::host(jail, target.addr(), left)
                    });
                }
                Shared::Unban { jail, target } => self.farm_unban(&jail, target),
            }
        }
        if bans.is_empty() {
            return;
        }
        let publish = self.publish.take();
        let result = self.ban(&bans, super::Origin::Farm);
        self.publish = publish;
        if let Err(e) = result {
            metrics::enforcer_error();
            warn!(bans = bans.len(), "bans from the farm not applied: {e}");
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::enforce::enforcer::tests::rules;
    use crate::enforce::log::LogBackend;
    use crate::enforce::Backend;

    #[derive(Clone, Default)]
    struct Heard(Arc<Mutex<Vec<Shared>>>);

    impl Publish for Heard {
        fn publish(&self, done: Vec<Shared>) {
            self.0.lock().unwrap().extend(done);
        }
    }

    fn enforcer() -> (Enforcer, Heard) {
        let jails = rules(&["sshd"]);
        let mut backend = LogBackend::default();
        backend.reconcile(&jails).unwrap();
        let mut e = Enforcer::new(Box::new(backend), &jails, None);
        let heard = Heard::default();
        e.publish_to(Box::new(heard.clone()));
        (e, heard)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn what_is_decided_here_is_published_with_its_end() {
        let (mut e, heard) = enforcer();
        let before = SystemTime::now();
        let order = BanOrder::host(
            Arc::from("sshd"),
            "192.0.2.1".parse().unwrap(),
            Duration::from_secs(600),
        );
        e.ban_batch(std::slice::from_ref(&order)).unwrap();
        e.manual(
            Arc::from("sshd"),
            net("198.51.100.0/24"),
            Duration::from_secs(60),
        )
        .unwrap();
        e.unban(Some("sshd"), Some(net("192.0.2.1/32"))).unwrap();
        let heard = heard.0.lock().unwrap().clone();
        assert_eq!(heard.len(), 3, "{heard:?}");
        match &heard[0] {
            Shared::Ban { target, until, .. } => {
                assert_eq!(*target, net("192.0.2.1/32"));
                assert!(*until >= before + Duration::from_secs(600));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&heard[1], Shared::Ban { target, cause: Cause::Manual, .. } if *target == net("198.51.100.0/24"))
        );
        assert!(
            matches!(&heard[2], Shared::Unban { target, .. } if *target == net("192.0.2.1/32"))
        );
    }

    #[test]
    fn what_the_farm_decided_is_applied_and_never_published_again() {
        let (mut e, heard) = enforcer();
        let until = SystemTime::now() + Duration::from_secs(300);
        e.apply_farm(vec![
            Shared::Ban {
                jail: Arc::from("sshd"),
                target: net("192.0.2.9/32"),
                until,
                cause: Cause::Manual,
            },
            Shared::Ban {
                jail: Arc::from("sshd"),
                target: net("203.0.113.0/24"),
                until,
                cause: Cause::Manual,
            },
            // Already over: skipped.
            Shared::Ban {
                jail: Arc::from("sshd"),
                target: net("192.0.2.10/32"),
                until: SystemTime::now() - Duration::from_secs(1),
                cause: Cause::Manual,
            },
        ]);
        let mut bans: Vec<(IpNet, Option<Duration>)> = e.backend.list("sshd");
        bans.sort();
        assert_eq!(bans.len(), 2, "{bans:?}");
        // The time left, not a fresh bantime.
        assert!(bans
            .iter()
            .all(|(_, left)| left.unwrap() <= Duration::from_secs(300)));
        e.apply_farm(vec![Shared::Unban {
            jail: Arc::from("sshd"),
            target: net("192.0.2.9/32"),
        }]);
        assert_eq!(e.backend.list("sshd").len(), 1);
        assert!(heard.0.lock().unwrap().is_empty());
        // And publishing goes on for what this node decides afterwards.
        e.manual(
            Arc::from("sshd"),
            net("192.0.2.11/32"),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(heard.0.lock().unwrap().len(), 1);
    }
}
