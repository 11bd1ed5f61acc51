//! The tracker task: failures in, ban orders out, plus what the control
//! plane asks of it (counters, new jails on reload) and tells it (bans
//! made and lifted by hand, which count for bantime increment). Now and
//! then, between two batches, its counts go to the state store together
//! with the read positions they include (see [`super::persist`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{JailCounts, Tracker, Verdict};
use crate::config::Jail;
use crate::message::{BanOrder, Checkpoint, Failure, FailureBatch};

const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// How often counts and read positions go to the state store: after a
/// crash, lines read since are read again (and counted once).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Where checkpoints go, and how to wait for the bans decided before one.
pub struct Persist<M> {
    /// Hands a checkpoint to the state store (never blocks).
    pub save: Box<dyn Fn(Checkpoint) + Send + Sync>,
    /// A message for the next stage that it answers once every ban sent
    /// before it is applied and on its way to the store. A checkpoint
    /// waits for that answer: the counts it stores no longer hold the
    /// failures of those bans, so it must not be stored before them.
    pub applied: fn(oneshot::Sender<u64>) -> M,
    /// Whether the state store takes this many failures for the report
    /// now (never blocks; refused ones are counted there as dropped).
    /// Asked before a batch is copied for it: a flood's batches are
    /// mostly refused, and then cost no copy.
    pub admit: Box<dyn Fn(usize) -> bool + Send + Sync>,
    /// Hands the failures of an admitted batch (but those of ignored
    /// addresses), each with its jail's name, to the state store for the
    /// report, with how many were admitted.
    pub failures: Box<dyn Fn(Vec<NamedFailure>, usize) + Send + Sync>,
}

/// A failure with its jail's name, as the state store records it.
pub type NamedFailure = (Arc<str>, Failure);

/// A checkpoint waiting for the bans decided before it.
type Waiting = Option<(oneshot::Receiver<u64>, Checkpoint)>;

async fn bans_applied(waiting: &mut Waiting) {
    match waiting {
        Some((rx, _)) => {
            let _ = rx.await;
        }
        None => std::future::pending().await,
    }
}

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
    /// The accounts of a jail id under attack now (its account rule).
    UnderAttack {
        jail: usize,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// The service watchdog's heartbeat: answered from the task's loop, so
    /// an answer means the tracker is taking messages.
    Ping(oneshot::Sender<()>),
    /// Farm mode with shared counting: every failure counted here is also
    /// handed to this (once per batch; it must never block).
    Tee(Box<dyn FnMut(Vec<Counted>) + Send>),
}

/// A failure the tracker counted: jail, address, when.
pub type Counted = (Arc<str>, IpAddr, SystemTime);

/// Ends when every log reader has stopped (the failure channel closed),
/// returning the tracker so its last counts can be saved once the bans it
/// decided are applied. The bans of one batch of failures leave as one
/// message, whatever type the next stage reads.
pub async fn run<M: From<Vec<BanOrder>>>(
    mut tracker: Tracker,
    mut failures: mpsc::Receiver<FailureBatch>,
    mut ctl: mpsc::Receiver<TrackerCtl>,
    bans: mpsc::Sender<M>,
    persist: Option<Persist<M>>,
) -> Tracker {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut save = tokio::time::interval(CHECKPOINT_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting: Waiting = None;
    // Bans sent since the last checkpoint (at start: those the carried
    // counts made due).
    let mut banned = true;
    let mut tee: Option<Box<dyn FnMut(Vec<Counted>) + Send>> = None;
    loop {
        tokio::select! {
            batch = failures.recv() => {
                let Some(FailureBatch { failures: batch, read_to }) = batch else { break };
                let now = SystemTime::now();
                // Decided first, then sent together, so the enforcer wakes
                // once for a burst and puts it in one transaction.
                let mut orders = Vec::new();
                let mut counted = Vec::new();
                let admitted = persist.as_ref().map_or(0, |p| {
                    if (p.admit)(batch.len()) { batch.len() } else { 0 }
                });
                let mut seen = Vec::with_capacity(admitted);
                tracker.warm(&batch);
                for f in batch {
                    let (addr, jail, time) = (f.addr, f.jail, f.time);
                    let kept = (admitted > 0).then(|| {
                        let jail = tracker.jails.get(f.jail)?.as_ref()?;
                        Some((Arc::clone(&jail.name), f.clone()))
                    }).flatten();
                    let verdict = tracker.record_at(f, now);
                    if !matches!(verdict, Verdict::Ignored) {
                        seen.extend(kept);
                    }
                    if tee.is_some() && matches!(verdict, Verdict::Ban(_) | Verdict::Counted { .. }) {
                        if let Some(j) = tracker.jail(jail) {
                            counted.push((Arc::clone(&j.name), addr, time));
                        }
                    }
                    match verdict {
                        Verdict::Ban(order) => orders.push(order),
                        Verdict::Ignored => debug!(%addr, "failure from an ignored address"),
                        Verdict::Stale => debug!(%addr, "failure older than findtime, not counted"),
                        Verdict::Counted { count } => debug!(%addr, count, "failure counted"),
                    }
                }
                orders.append(&mut tracker.take_prefix_bans());
                if let (Some(tee), false) = (tee.as_mut(), counted.is_empty()) {
                    tee(counted);
                }
                tracker.publish();
                if let (Some(p), true) = (&persist, admitted > 0) {
                    (p.failures)(seen, admitted);
                }
                if let Some(mark) = read_to {
                    tracker.read_to(mark);
                }
                if !orders.is_empty() {
                    banned = true;
                    if bans.send(M::from(orders)).await.is_err() {
                        break;
                    }
                }
            }
            _ = save.tick(), if persist.is_some() && waiting.is_none() => {
                let Some(p) = &persist else { continue };
                let Some(cp) = tracker.checkpoint() else { continue };
                if !banned {
                    (p.save)(cp);
                    continue;
                }
                banned = false;
                let (tx, rx) = oneshot::channel();
                if bans.send((p.applied)(tx)).await.is_err() {
                    (p.save)(cp);
                    break;
                }
                waiting = Some((rx, cp));
            }
            () = bans_applied(&mut waiting), if waiting.is_some() => {
                if let (Some(p), Some((_, cp))) = (&persist, waiting.take()) {
                    (p.save)(cp);
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
                TrackerCtl::UnderAttack { jail, reply } => {
                    let _ = reply.send(tracker.under_attack(jail, SystemTime::now()));
                }
                TrackerCtl::Ping(reply) => {
                    let _ = reply.send(());
                }
                TrackerCtl::Tee(t) => tee = Some(t),
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
    if let (Some(p), Some((rx, cp))) = (&persist, waiting.take()) {
        let _ = rx.await;
        (p.save)(cp);
    }
    tracker
}
