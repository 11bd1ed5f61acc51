//! The enforcer thread: the only owner of the backend, so the kernel and the
//! ban record change in one place, in the order messages arrive. Automatic
//! bans come in batches; control requests (manual ban, unban, listing,
//! reconcile on reload) are served between batches with a reply channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::human;
use crate::enforce::{Applied, Backend, EnforceError, JailRules};
use crate::message::BanOrder;

/// Most bans applied in one netlink transaction.
const MAX_BATCH: usize = 4096;

pub enum EnforcerMsg {
    /// Decided by the tracker.
    Ban(BanOrder),
    /// `nftjail ban`: an address (a /32 or /128) or a prefix.
    Manual {
        jail: Arc<str>,
        target: IpNet,
        bantime: Duration,
        reply: oneshot::Sender<Result<Applied, EnforceError>>,
    },
    /// `nftjail unban`: None means every jail / every address and prefix.
    Unban {
        jail: Option<String>,
        target: Option<IpNet>,
        reply: oneshot::Sender<Result<Vec<Lifted>, EnforceError>>,
    },
    List {
        reply: oneshot::Sender<Vec<JailBans>>,
    },
    /// A reload: make the kernel match the new jails.
    Reconcile {
        rules: Vec<JailRules>,
        reply: oneshot::Sender<Result<(), EnforceError>>,
    },
    Stop,
}

/// One lifted ban, with the time it still had.
#[derive(Debug, Clone)]
pub struct Lifted {
    pub jail: String,
    pub addr: IpNet,
    pub remaining: Option<Duration>,
}

/// A jail's active bans (remaining time; None: no timeout) and its ban count since start.
#[derive(Debug, Clone)]
pub struct JailBans {
    pub jail: String,
    pub total: u64,
    pub bans: Vec<(IpNet, Option<Duration>)>,
}

pub struct Enforcer {
    backend: Box<dyn Backend>,
    jails: Vec<String>,
    totals: HashMap<String, u64>,
}

impl Enforcer {
    pub fn new(backend: Box<dyn Backend>, rules: &[JailRules]) -> Self {
        Enforcer {
            backend,
            jails: rules.iter().map(|r| r.name.clone()).collect(),
            totals: HashMap::new(),
        }
    }

    /// Runs until [`EnforcerMsg::Stop`] or until every sender is gone.
    /// Whatever queued up while a transaction ran goes into the next one, so a
    /// flood costs few transactions and a lone ban goes out at once.
    pub fn run(mut self, mut rx: mpsc::Receiver<EnforcerMsg>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held = None;
        loop {
            let msg = match held.take() {
                Some(m) => m,
                None => match rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                },
            };
            match msg {
                EnforcerMsg::Ban(first) => {
                    batch.clear();
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(EnforcerMsg::Ban(o)) => batch.push(o),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.ban(&batch, false) {
                        warn!(bans = batch.len(), "bans not applied: {e}");
                    }
                }
                EnforcerMsg::Manual {
                    jail,
                    target,
                    bantime,
                    reply,
                } => {
                    let _ = reply.send(self.manual(jail, target, bantime));
                }
                EnforcerMsg::Unban {
                    jail,
                    target,
                    reply,
                } => {
                    let _ = reply.send(self.unban(jail.as_deref(), target));
                }
                EnforcerMsg::List { reply } => {
                    let _ = reply.send(self.list());
                }
                EnforcerMsg::Reconcile { rules, reply } => {
                    let result = self.backend.reconcile(&rules);
                    if result.is_ok() {
                        self.jails = rules.iter().map(|r| r.name.clone()).collect();
                        let jails = &self.jails;
                        self.totals.retain(|j, _| jails.contains(j));
                    }
                    let _ = reply.send(result);
                }
                EnforcerMsg::Stop => break,
            }
        }
    }

    fn ban(&mut self, orders: &[BanOrder], manual: bool) -> Result<Vec<Applied>, EnforceError> {
        let applied = self.backend.ban(orders)?;
        for (order, outcome) in orders.iter().zip(&applied) {
            let verb = match outcome {
                Applied::Added => "ban",
                Applied::Extended => "ban extended",
                Applied::Unchanged => {
                    debug!(jail = %order.jail, addr = %order.addr, "already banned for longer");
                    continue;
                }
            };
            *self.totals.entry(order.jail.to_string()).or_default() += 1;
            if manual {
                info!(
                    "{verb}: jail={} addr={} manual bantime={}",
                    order.jail,
                    order.addr,
                    human(order.bantime)
                );
            } else {
                info!(
                    "{verb}: jail={} addr={} failures={} bantime={}",
                    order.jail,
                    order.addr,
                    order.failures,
                    human(order.bantime)
                );
            }
        }
        Ok(applied)
    }

    fn manual(
        &mut self,
        jail: Arc<str>,
        target: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError> {
        if is_host(&target) {
            let order = BanOrder {
                jail,
                addr: target.addr(),
                bantime,
                failures: 0,
            };
            return self
                .ban(std::slice::from_ref(&order), true)
                .map(|v| v.first().copied().unwrap_or(Applied::Unchanged));
        }
        let outcome = self.backend.ban_net(&jail, target, bantime)?;
        if outcome != Applied::Unchanged {
            *self.totals.entry(jail.to_string()).or_default() += 1;
            info!(
                "ban: jail={jail} prefix={target} manual bantime={}",
                human(bantime)
            );
        }
        Ok(outcome)
    }

    fn unban(
        &mut self,
        jail: Option<&str>,
        target: Option<IpNet>,
    ) -> Result<Vec<Lifted>, EnforceError> {
        let jails: Vec<String> = match jail {
            Some(j) if self.jails.iter().any(|x| x == j) => vec![j.to_string()],
            Some(j) => return Err(EnforceError::UnknownJail(j.to_string())),
            None => self.jails.clone(),
        };
        let mut lifted = Vec::new();
        for jail in jails {
            let listed = self.backend.list(&jail);
            let targets: Vec<(IpNet, Option<Duration>)> = match target {
                Some(t) => listed.into_iter().filter(|(n, _)| *n == t).collect(),
                None => listed,
            };
            for (t, remaining) in targets {
                let done = if is_host(&t) {
                    self.backend.unban(&jail, t.addr())?
                } else {
                    self.backend.unban_net(&jail, t)?
                };
                if done {
                    info!("unban: jail={jail} addr={}", show(&t));
                    lifted.push(Lifted {
                        jail: jail.clone(),
                        addr: t,
                        remaining,
                    });
                }
            }
        }
        Ok(lifted)
    }

    fn list(&self) -> Vec<JailBans> {
        self.jails
            .iter()
            .map(|j| JailBans {
                jail: j.clone(),
                total: self.totals.get(j).copied().unwrap_or(0),
                bans: self.backend.list(j),
            })
            .collect()
    }
}

/// A /32 or /128: one address, kept in the address sets.
pub fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// An address without its /32, a prefix with its length.
pub fn show(net: &IpNet) -> String {
    if is_host(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}
