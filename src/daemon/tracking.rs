//! The tracker task: failures in, ban orders out, plus the two things the
//! control plane asks of it (counters, and new jails on reload).

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::config::Jail;
use crate::enforce::enforcer::EnforcerMsg;
use crate::message::Failure;
use crate::tracker::{JailCounts, Tracker, Verdict};

const PRUNE_EVERY: Duration = Duration::from_secs(30);

pub enum TrackerCtl {
    /// Counters of every jail id.
    Counts {
        reply: oneshot::Sender<Vec<JailCounts>>,
    },
    Reconfigure {
        jails: Vec<Option<Jail>>,
        max_tracked: usize,
        reply: oneshot::Sender<()>,
    },
}

/// Ends when every log reader has stopped (the failure channel closed),
/// returning the tracker so its counts can be saved.
pub async fn run(
    mut tracker: Tracker,
    mut failures: mpsc::Receiver<Vec<Failure>>,
    mut ctl: mpsc::Receiver<TrackerCtl>,
    bans: mpsc::Sender<EnforcerMsg>,
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
                if !orders.is_empty() && bans.send(EnforcerMsg::Bans(orders)).await.is_err() {
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
            },
            _ = prune.tick() => tracker.prune(SystemTime::now()),
        }
    }
    tracker
}
