//! The tracker task: failures in, ban orders out, plus what the control
//! plane asks of it (counters, new jails on reload) and tells it (bans
//! made and lifted by hand, which count for bantime increment).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{JailCounts, Tracker, Verdict};
use crate::config::Jail;
use crate::message::{BanOrder, Failure};

const PRUNE_EVERY: Duration = Duration::from_secs(30);

pub enum TrackerCtl {
    /// Counters of every jail id.
    Counts {
        reply: oneshot::Sender<Vec<JailCounts>>,
    },
    /// A reload; the jails carry their new bantime increments.
    Reconfigure {
        jails: Vec<Option<Jail>>,
        max_tracked: usize,
        reply: oneshot::Sender<()>,
    },
    /// `nftjail ban` newly banned one address: an offence.
    BannedByHand {
        jail: Arc<str>,
        addr: IpAddr,
        bantime: Duration,
    },
    /// `nftjail unban` lifted these addresses' bans (jail, address).
    Unbanned(Vec<(String, IpAddr)>),
    /// The service watchdog's heartbeat: answered from the task's loop, so
    /// an answer means the tracker is taking messages.
    Ping(oneshot::Sender<()>),
}

/// Ends when every log reader has stopped (the failure channel closed),
/// returning the tracker so its counts can be saved. The bans of one batch
/// of failures leave as one message, whatever type the next stage reads.
pub async fn run<M: From<Vec<BanOrder>>>(
    mut tracker: Tracker,
    mut failures: mpsc::Receiver<Vec<Failure>>,
    mut ctl: mpsc::Receiver<TrackerCtl>,
    bans: mpsc::Sender<M>,
) -> Tracker {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            batch = failures.recv() => {
                let Some(batch) = batch else { break };
                let now = SystemTime::now();
                // Decided first, then sent together, so the enforcer wakes
                // once for a burst and puts it in one transaction.
                let mut orders = Vec::new();
                for f in batch {
                    let addr = f.addr;
                    match tracker.record_at(f, now) {
                        Verdict::Ban(order) => orders.push(order),
                        Verdict::Ignored => debug!(%addr, "failure from an ignored address"),
                        Verdict::Stale => debug!(%addr, "failure older than findtime, not counted"),
                        Verdict::Counted { count } => debug!(%addr, count, "failure counted"),
                    }
                }
                tracker.publish();
                if !orders.is_empty() && bans.send(M::from(orders)).await.is_err() {
                    break;
                }
            }
            Some(c) = ctl.recv() => match c {
                TrackerCtl::Counts { reply } => {
                    let n = tracker.slots();
                    let _ = reply.send((0..n).map(|id| tracker.counts(id)).collect());
                }
                TrackerCtl::Reconfigure { jails, max_tracked, reply } => {
                    tracker.reconfigure(jails, max_tracked);
                    let _ = reply.send(());
                }
                TrackerCtl::BannedByHand { jail, addr, bantime } => {
                    tracker.banned_by_hand(jail, addr, bantime, SystemTime::now());
                }
                TrackerCtl::Ping(reply) => {
                    let _ = reply.send(());
                }
                TrackerCtl::Unbanned(lifted) => {
                    let now = SystemTime::now();
                    for (jail, addr) in lifted {
                        tracker.unbanned(&jail, addr, now);
                    }
                }
            },
            _ = prune.tick() => tracker.prune(SystemTime::now()),
        }
    }
    tracker
}
