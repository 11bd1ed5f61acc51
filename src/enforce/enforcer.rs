//! The enforcer thread: the only owner of the backend, so the kernel and the
//! ban record change in one place, in the order messages arrive. Automatic
//! bans come in batches; control requests (manual ban, unban, listing,
//! reconcile on reload) are served between batches with a reply channel.
//!
//! Ordering invariant with the state store: the kernel first, then the
//! store (each applied batch is sent to the state writer right after the
//! kernel accepted it). A `kill -9` in between leaves a ban only in the
//! kernel, where the next start finds it and records it; so every ban that
//! was in the kernel or shown by `status` is known after a restart. Unbans
//! follow the same order: one cut by a kill comes back (fail closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

mod blocklist;
mod farm;
mod gone;
mod manual;
mod recorded;

pub use blocklist::{Blocklist, BlocklistApplied};
pub use farm::{Publish, Shared};
pub use gone::GoneJail;
use recorded::{Landed, Unrecorded, HOLD_MAX};

use super::record::is_host;
use super::{Applied, Backend, EnforceError, Restore};
use crate::message::BanOrder;
use crate::metrics;
use crate::rules::JailRules;
use crate::state::writer::{StateMsg, StateTx};

/// Most bans applied in one netlink transaction. Within the nft backend's
/// transaction size, so a batch is applied whole or not at all, which
/// [`Enforcer::ban_batch`] relies on when it splits a refused one.
const MAX_BATCH: usize = 4096;
/// Times a batch is tried again after our table vanished under it.
const RETRIES: u64 = 8;

/// The wait after failed attempt `attempt`: 10 ms more each time.
fn back_off(attempt: u64) {
    std::thread::sleep(Duration::from_millis(10 * attempt));
}

pub enum EnforcerMsg {
    /// Decided by the tracker: the bans of one batch of failures, in one
    /// message so a flood costs a channel operation per batch, not per ban.
    Bans(Vec<BanOrder>),
    /// `nftjail ban`: an address (a /32 or /128) or a prefix.
    Manual {
        jail: Arc<str>,
        target: IpNet,
        bantime: Duration,
        reply: oneshot::Sender<Result<Applied, EnforceError>>,
    },
    /// `nftjail ban --permanent`: an address or a prefix, without timeout.
    Permanent {
        jail: Arc<str>,
        target: IpNet,
        reply: oneshot::Sender<Result<Applied, EnforceError>>,
    },
    /// The jails' blocklists as read at start or on reload.
    Blocklists {
        lists: Vec<Blocklist>,
        reply: oneshot::Sender<Vec<BlocklistApplied>>,
    },
    /// `nftjail unban`: None means every jail / every address and prefix.
    Unban {
        jail: Option<String>,
        target: Option<IpNet>,
        reply: oneshot::Sender<Result<Vec<Lifted>, EnforceError>>,
    },
    /// Every jail's bans by our record: cheap, for counts shown often.
    List {
        reply: oneshot::Sender<Vec<JailBans>>,
    },
    /// Every jail's bans as the kernel holds them, elements someone else
    /// added included (`status`, `banned`): a dump of every set. Bans of
    /// ours found missing are put back right after the answer.
    InKernel {
        reply: oneshot::Sender<Vec<JailBans>>,
    },
    /// A reload: make the kernel match the new jails. A jail the new
    /// config drops keeps its sets, rule and bans until they expire; the
    /// answer names those jails.
    Reconcile {
        rules: Vec<JailRules>,
        reply: oneshot::Sender<Result<Vec<GoneJail>, EnforceError>>,
    },
    /// `nftjail unban --jail-gone`: every ban of the jails no longer
    /// configured is lifted, and their sets and rules removed.
    UnbanGone {
        reply: oneshot::Sender<Result<Vec<Lifted>, EnforceError>>,
    },
    /// Someone else changed our table (`nft flush ruleset`, a restart of the
    /// nftables service, a rule put in our chain, elements deleted or added
    /// by hand): rebuild it and put every active ban back. The
    /// flag is the watcher's "a heal is queued": cleared as the heal starts,
    /// so a storm of flushes queues one heal, not one per flush (each costs
    /// a dump of every set).
    Heal(Arc<AtomicBool>),
    /// The service watchdog's heartbeat, answered between batches (so an
    /// answer means the enforcer thread is taking messages) with how many
    /// times the bans changed since start, so whoever shows the number of
    /// active bans asks for the list only when it may have changed.
    Ping(oneshot::Sender<u64>),
    /// Test hook, in debug builds only: the enforcer thread sleeps this long,
    /// as a wedged one would, so a test sees the service watchdog go quiet.
    #[cfg(debug_assertions)]
    Stall(Duration),
    /// Bans and unbans other nodes of the farm decided, checked by the
    /// cluster module: applied, never published again.
    Farm(Vec<Shared>),
    /// Stop; with `flush`, remove our table and forget the bans first.
    Stop { flush: bool },
    /// `[daemon] never`, at start and on each reload: networks no ban may
    /// cover.
    Never(Vec<IpNet>),
}

/// Who decided a ban: says how it is logged and counted, and whether the
/// farm hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Filter,
    Manual,
    Farm,
}

impl From<Vec<BanOrder>> for EnforcerMsg {
    fn from(orders: Vec<BanOrder>) -> Self {
        EnforcerMsg::Bans(orders)
    }
}

/// One order of a batch the kernel refused, alone in its transaction.
#[derive(Debug)]
pub struct Refused {
    /// Its place in the batch.
    pub index: usize,
    pub jail: Arc<str>,
    /// The address (a /32 or /128) or prefix it would have banned.
    pub target: IpNet,
    /// The kernel's answer.
    pub error: EnforceError,
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
    /// Elements someone else added to the jail's sets (only in an
    /// [`EnforcerMsg::InKernel`] answer): they block, but are not our bans.
    pub foreign: Vec<(IpNet, Option<Duration>)>,
    /// No longer configured: its bans are only kept until they expire.
    pub gone: bool,
}

pub struct Enforcer {
    backend: Box<dyn Backend>,
    rules: Vec<JailRules>,
    jails: Vec<String>,
    /// Jails a reload removed (or renamed, or disabled) while they held
    /// bans: their sets and rules stay in the kernel, as they were, so each
    /// ban lasts the time it was given. An admin who wants them lifted
    /// says so (`unban --jail-gone`); a reload after they all expired
    /// removes what is left.
    gone: Vec<JailRules>,
    totals: HashMap<String, u64>,
    /// Where applied bans are recorded (None: a dry run keeps nothing).
    state: Option<StateTx>,
    /// Bumped whenever bans were added, extended or lifted (see [`EnforcerMsg::Ping`]).
    changes: u64,
    /// Farm mode: where what this node decides is handed for the others.
    publish: Option<Box<dyn Publish>>,
    /// Per jail: the bans its blocklist put in the kernel.
    blocklisted: blocklist::Blocklisted,
    /// `[daemon] never`: networks no ban may cover, not even one by hand.
    never: Vec<IpNet>,
}

impl Enforcer {
    /// `state`: where applied bans are recorded (None: a dry run keeps nothing).
    pub fn new(backend: Box<dyn Backend>, rules: &[JailRules], state: Option<StateTx>) -> Self {
        Enforcer {
            backend,
            rules: rules.to_vec(),
            jails: rules.iter().map(|r| r.name.clone()).collect(),
            gone: Vec::new(),
            totals: HashMap::new(),
            state,
            changes: 0,
            publish: None,
            blocklisted: Default::default(),
            never: Vec::new(),
        }
    }

    fn record(&self, msg: StateMsg) {
        if let Some(s) = &self.state {
            s.send(msg);
        }
    }

    /// Has the backend watch for someone else changing our table; each
    /// change queues a [`EnforcerMsg::Heal`] on `to_self`, but at most one at
    /// a time (a storm of flushes heals once, see [`EnforcerMsg::Heal`]).
    pub fn watch_for_tampering(&mut self, to_self: mpsc::Sender<EnforcerMsg>) {
        let queued = Arc::new(AtomicBool::new(false));
        let wake = move || {
            if queued.swap(true, Ordering::AcqRel) {
                return true;
            }
            to_self
                .blocking_send(EnforcerMsg::Heal(Arc::clone(&queued)))
                .is_ok()
        };
        if let Err(e) = self.backend.watch_for_tampering(Box::new(wake)) {
            warn!("a flushed ruleset will not be healed: {e}");
        }
    }

    /// Runs until [`EnforcerMsg::Stop`] or until every sender is gone.
    /// Whatever queued up while a transaction ran goes into the next one, so a
    /// flood costs few transactions and a lone ban goes out at once. While
    /// more bans wait, the kernel takes them before the bans already
    /// applied are recorded (see [`Unrecorded`]).
    pub fn run(mut self, mut rx: mpsc::Receiver<EnforcerMsg>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held = None;
        let mut unrecorded = Unrecorded::default();
        loop {
            let msg = match held.take() {
                Some(m) => m,
                None => match rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.record_held(&mut unrecorded);
                        // Idle: the flood's spare batches go (`batch` is kept).
                        unrecorded.spare = Vec::new();
                        match rx.blocking_recv() {
                            Some(m) => m,
                            None => break,
                        }
                    }
                },
            };
            // Whatever else is asked (a list, a count, an unban, the
            // watchdog's ping, the tracker's wait before a checkpoint, a
            // stop) sees every applied ban recorded.
            if !matches!(msg, EnforcerMsg::Bans(_)) {
                self.record_held(&mut unrecorded);
            }
            match msg {
                EnforcerMsg::Bans(first) => {
                    batch.clear();
                    batch.extend(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(EnforcerMsg::Bans(o)) => batch.extend(o),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let mut landed = Vec::new();
                    let result = self.ban_batch_landed(&batch, &mut landed);
                    if result.is_ok() && !self.backend.tampered() {
                        unrecorded.hold(&mut batch, landed);
                        if unrecorded.orders >= HOLD_MAX {
                            self.record_held(&mut unrecorded);
                        }
                        continue;
                    }
                    // A heal or a retry follows: what landed is recorded first.
                    self.record_held(&mut unrecorded);
                    self.record_landed(&batch, landed);
                    match result {
                        Ok(_) => self.heal(),
                        // Our table went away under the batch (`nft flush
                        // ruleset` between two of its transactions): rebuild
                        // it, then give the batch one more go; bans that did
                        // land before are kept by the heal.
                        Err(e) if e.is_missing() => self.heal_and_retry(&batch, e),
                        Err(e) => {
                            crate::metrics::enforcer_error();
                            warn!(bans = batch.len(), "bans not applied: {e}");
                        }
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
                EnforcerMsg::Permanent {
                    jail,
                    target,
                    reply,
                } => {
                    let _ = reply.send(self.manual_permanent(jail, target));
                }
                EnforcerMsg::Blocklists { lists, reply } => {
                    let _ = reply.send(self.blocklists(lists));
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
                EnforcerMsg::InKernel { reply } => {
                    let _ = reply.send(self.in_kernel());
                    if self.backend.tampered() {
                        self.changes += 1;
                        self.heal();
                    }
                }
                EnforcerMsg::Reconcile { rules, reply } => {
                    let _ = reply.send(self.reconcile(rules));
                }
                EnforcerMsg::UnbanGone { reply } => {
                    let _ = reply.send(self.unban_gone());
                }
                EnforcerMsg::Ping(reply) => {
                    let _ = reply.send(self.changes);
                }
                EnforcerMsg::Never(never) => self.never = never,
                #[cfg(debug_assertions)]
                EnforcerMsg::Stall(d) => {
                    warn!("test hook: the enforcer stalls for {d:?}");
                    std::thread::sleep(d);
                }
                EnforcerMsg::Heal(queued) => {
                    queued.store(false, Ordering::Release);
                    self.changes += 1;
                    match self.backend.expire() {
                        None => self.heal(),
                        Some(Ok(n)) => debug!(expired = n, "bans whose time was up lifted"),
                        Some(Err(e)) => {
                            metrics::enforcer_error();
                            warn!("bans whose time was up could not be lifted: {e}");
                        }
                    }
                }
                EnforcerMsg::Farm(records) => self.apply_farm(records),
                EnforcerMsg::Stop { flush } => {
                    if flush {
                        self.flush();
                    }
                    break;
                }
            }
        }
        self.record_held(&mut unrecorded);
    }

    /// Applies a batch of automatic bans. A batch is one transaction, and a
    /// transaction the kernel refuses is refused whole: so a refusal that is
    /// not "our table is gone" (that one is healed by the caller) splits the
    /// batch in halves, again and again, until every order the kernel takes
    /// is applied and each one it refuses is alone. Those are logged with
    /// their jail, address and the kernel's answer, and returned; nothing of
    /// them reaches the ban record, the state store or the ban log. Err only
    /// when our table is gone (what landed before stays applied and recorded).
    pub fn ban_batch(&mut self, orders: &[BanOrder]) -> Result<Vec<Refused>, EnforceError> {
        let mut landed = Vec::new();
        let result = self.ban_batch_landed(orders, &mut landed);
        self.record_landed(orders, landed);
        result
    }

    /// [`Enforcer::ban_batch`] without recording: the parts of `orders`
    /// the kernel took, with their outcomes, are added to `landed`, for
    /// [`Enforcer::record_landed`] (also on an error: what landed before).
    fn ban_batch_landed(
        &mut self,
        orders: &[BanOrder],
        landed: &mut Vec<Landed>,
    ) -> Result<Vec<Refused>, EnforceError> {
        let mut refused = Vec::new();
        self.ban_split(orders, 0, &mut refused, landed)?;
        if !refused.is_empty() {
            metrics::enforcer_error();
        }
        Ok(refused)
    }

    /// [`Enforcer::ban_batch_landed`] on `orders`, which start at `offset`
    /// in the batch.
    fn ban_split(
        &mut self,
        orders: &[BanOrder],
        offset: usize,
        refused: &mut Vec<Refused>,
        landed: &mut Vec<Landed>,
    ) -> Result<(), EnforceError> {
        if orders.is_empty() {
            return Ok(());
        }
        let error = match self.apply(orders) {
            Ok((applied, now)) => {
                landed.push(Landed {
                    at: offset..offset + orders.len(),
                    applied,
                    now,
                });
                return Ok(());
            }
            Err(e) if e.is_missing() => return Err(e),
            Err(e) => e,
        };
        if !may_be_one_order(&error) {
            // Every half would fail the same way: one line for the lot.
            warn!(bans = orders.len(), "bans not applied: {error}");
            refused.extend(orders.iter().enumerate().map(|(i, order)| Refused {
                index: offset + i,
                jail: Arc::clone(&order.jail),
                target: order.target,
                error: same(&error),
            }));
            return Ok(());
        }
        if let [order] = orders {
            warn!(jail = %order.jail, addr = %show(&order.target), bantime = ?order.bantime, "ban not applied: {error}");
            refused.push(Refused {
                index: offset,
                jail: Arc::clone(&order.jail),
                target: order.target,
                error,
            });
            return Ok(());
        }
        let half = orders.len() / 2;
        let (first, second) = orders.split_at(half);
        self.ban_split(first, offset, refused, landed)?;
        self.ban_split(second, offset + half, refused, landed)
    }

    fn ban(&mut self, orders: &[BanOrder], origin: Origin) -> Result<Vec<Applied>, EnforceError> {
        let (applied, now) = self.apply(orders)?;
        self.recorded(orders, &applied, now, origin);
        Ok(applied)
    }

    /// The kernel's part of a ban: the backend applies `orders`; returns
    /// what each became and when.
    fn apply(&mut self, orders: &[BanOrder]) -> Result<(Vec<Applied>, SystemTime), EnforceError> {
        let now = SystemTime::now();
        let applied = self.backend.ban(orders)?;
        crate::metrics::ban_latency(orders.iter().filter_map(|o| o.read));
        Ok((applied, now))
    }

    /// Rebuilds our table after someone else changed it and puts back every
    /// ban our record still holds, with the time it had left.
    fn heal(&mut self) {
        let started = Instant::now();
        metrics::healed();
        let before: Vec<JailBans> = self.list();
        let bans: Vec<Restore> = before
            .iter()
            .flat_map(|j| {
                j.bans.iter().map(|(net, left)| Restore {
                    jail: j.jail.clone(),
                    net: *net,
                    timeout: *left,
                    remaining: *left,
                })
            })
            .collect();
        // What we held before stays in `bans` whatever the kernel does
        // meanwhile: someone flushing again between our rebuild and our
        // restore only costs another round.
        let mut attempt = 1;
        let rebuilt = loop {
            let rules = self.all_rules();
            let result = self
                .backend
                .reconcile(&rules)
                .and_then(|()| self.backend.restore(&bans));
            match result {
                Err(e) if e.is_missing() && attempt < RETRIES => back_off(attempt),
                // Changed again while a large restore went in unheard (the
                // backend pauses its watch for it): once more.
                Ok(_) if attempt < RETRIES && self.backend.tampered() => {}
                other => break other,
            }
            attempt += 1;
        };
        match rebuilt {
            Ok(0) => info!("our table was changed by someone else; rules checked, no ban was missing"),
            Ok(n) => warn!(
                "our table was changed by someone else (a flushed ruleset or set, deleted elements?): rebuilt it and restored {n} bans in {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => {
                metrics::enforcer_error();
                warn!("our table was changed by someone else and could not be rebuilt with its bans: {e}");
            }
        }
    }

    /// Our table went away under a batch (`nft flush ruleset` between two
    /// of its transactions): rebuild it, then give the batch another go;
    /// bans that did land before are kept by the heal. Someone flushing
    /// over and over may hit the retry too, so a few, spaced out.
    fn heal_and_retry(&mut self, batch: &[BanOrder], mut error: EnforceError) {
        for attempt in 1..=RETRIES {
            self.backend.tampered();
            self.heal();
            match self.ban_batch(batch) {
                Ok(_) => return,
                Err(e) if e.is_missing() => error = e,
                Err(e) => {
                    error = e;
                    break;
                }
            }
            back_off(attempt);
        }
        metrics::enforcer_error();
        warn!(bans = batch.len(), "bans not applied: {error}");
    }

    /// `on_stop = "flush"`: every ban lifted, in the kernel and the store.
    fn flush(&mut self) {
        match self.backend.remove_all() {
            Ok(()) => info!("stopping: our table and every ban in it removed (on_stop = flush)"),
            Err(e) => warn!("stopping: could not remove our table: {e}"),
        }
        self.blocklisted.clear();
        let all = self
            .all_rules()
            .into_iter()
            .map(|r| (r.name, None))
            .collect();
        self.record(StateMsg::Lifted(all));
    }

    fn list(&self) -> Vec<JailBans> {
        let gone = self.gone.iter().map(|r| (&r.name, true));
        self.jails
            .iter()
            .map(|j| (j, false))
            .chain(gone)
            .map(|(j, gone)| JailBans {
                jail: j.clone(),
                total: self.totals.get(j).copied().unwrap_or(0),
                bans: self.backend.list(j),
                gone,
                foreign: Vec::new(),
            })
            .collect()
    }

    /// [`Enforcer::list`] read from the kernel; a jail whose sets cannot be
    /// read is answered from the record (with a warning), not left out.
    fn in_kernel(&mut self) -> Vec<JailBans> {
        let mut out = Vec::with_capacity(self.jails.len() + self.gone.len());
        let gone = self.gone.iter().map(|r| (&r.name, true));
        for (j, gone) in self.jails.iter().map(|j| (j, false)).chain(gone) {
            let total = self.totals.get(j).copied().unwrap_or(0);
            let (bans, foreign) = match self.backend.in_kernel(j) {
                Ok(k) => (k.ours, k.foreign),
                Err(e) => {
                    warn!(jail = %j, "cannot read our sets back, listing our record: {e}");
                    (self.backend.list(j), Vec::new())
                }
            };
            out.push(JailBans {
                jail: j.clone(),
                total,
                bans,
                gone,
                foreign,
            });
        }
        out
    }
}

/// Whether a refusal may come from one order of a batch (a timeout out of
/// range, an element the set cannot take, a jail no longer configured), so
/// that splitting the batch saves the others; a refusal of the socket or of
/// our rights would only be repeated by every half, once per order.
fn may_be_one_order(error: &EnforceError) -> bool {
    match error {
        EnforceError::UnknownJail(_) => true,
        EnforceError::Kernel { source, .. } => matches!(
            source.raw_os_error(),
            Some(
                libc::ERANGE
                    | libc::EINVAL
                    | libc::EEXIST
                    | libc::EOVERFLOW
                    | libc::E2BIG
                    | libc::ENOSPC
            )
        ),
        _ => false,
    }
}

/// The same refusal again, for each order it refused (an I/O error is not
/// `Clone`): the kernel's errno is kept, so is the text.
fn same(error: &EnforceError) -> EnforceError {
    match error {
        EnforceError::Kernel { what, source } => EnforceError::Kernel {
            what: what.clone(),
            source: match source.raw_os_error() {
                Some(errno) => std::io::Error::from_raw_os_error(errno),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => EnforceError::Netlink(other.to_string()),
    }
}

/// An address without its /32, a prefix with its length.
pub fn show(net: &IpNet) -> String {
    if is_host(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::log::LogBackend;
    use crate::rules::BlockType;

    /// Jails without ports, for tests here and in `gone`.
    pub(super) fn rules(names: &[&str]) -> Vec<JailRules> {
        names
            .iter()
            .map(|n| JailRules {
                name: n.to_string(),
                ports: Vec::new(),
                blocktype: BlockType::Drop,
                app: None,
            })
            .collect()
    }

    fn order(jail: &str, addr: &str) -> BanOrder {
        BanOrder {
            failures: 1,
            ..BanOrder::host(
                Arc::from(jail),
                addr.parse().expect("addr"),
                Duration::from_secs(600),
            )
        }
    }

    fn enforcer(backend: Box<dyn Backend>) -> Enforcer {
        let jails = rules(&["sshd", "postfix"]);
        let mut backend = backend;
        backend.reconcile(&jails).expect("reconcile");
        Enforcer::new(backend, &jails, None)
    }

    fn banned(e: &Enforcer) -> Vec<String> {
        e.list()
            .into_iter()
            .flat_map(|j| {
                let jail = j.jail;
                j.bans
                    .into_iter()
                    .map(move |(n, _)| format!("{jail} {}", show(&n)))
            })
            .collect()
    }

    #[test]
    fn bans_held_while_more_wait_are_recorded_before_anything_is_answered() {
        let e = enforcer(Box::new(LogBackend::default()));
        let (tx, rx) = mpsc::channel(8);
        // Three batches queued at once: the first two fill a transaction
        // each and are held while the next waits.
        let mut sent = 0;
        for (n, third) in [(MAX_BATCH, 0), (MAX_BATCH, 1), (7, 2)] {
            let orders = (0..n)
                .map(|i| order("sshd", &format!("10.{third}.{}.{}", i / 256, i % 256)))
                .collect();
            sent += n;
            tx.try_send(EnforcerMsg::Bans(orders)).expect("room");
        }
        let (reply, answer) = oneshot::channel();
        tx.try_send(EnforcerMsg::List { reply }).expect("room");
        let thread = std::thread::spawn(move || e.run(rx));
        let jails = answer.blocking_recv().expect("an answer");
        let sshd = jails.iter().find(|j| j.jail == "sshd").expect("sshd");
        assert_eq!((sshd.total, sshd.bans.len()), (sent as u64, sent));
        drop(tx);
        thread
            .join()
            .expect("the enforcer ends when its senders are gone");
    }

    #[test]
    fn an_order_for_a_jail_gone_fails_alone() {
        let mut e = enforcer(Box::new(LogBackend::default()));
        let batch = [
            order("sshd", "192.0.2.1"),
            order("postfix", "192.0.2.2"),
            order("gone", "192.0.2.3"),
            order("sshd", "192.0.2.4"),
        ];
        let refused = e.ban_batch(&batch).expect("no heal needed");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!((refused[0].index, &*refused[0].jail), (2, "gone"));
        let mut got = banned(&e);
        got.sort();
        assert_eq!(
            got,
            ["postfix 192.0.2.2", "sshd 192.0.2.1", "sshd 192.0.2.4"]
        );
        assert_eq!(e.totals.get("sshd"), Some(&2));
    }

    /// Refuses every batch with one errno, as the socket or missing rights would.
    struct Refusing {
        errno: i32,
        calls: Arc<std::sync::atomic::AtomicUsize>,
        inner: LogBackend,
    }

    impl Backend for Refusing {
        fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
            self.inner.reconcile(jails)
        }
        fn ban(&mut self, _: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Err(EnforceError::Kernel {
                what: "add to sshd-v4".into(),
                source: std::io::Error::from_raw_os_error(self.errno),
            })
        }
        fn unban(&mut self, jail: &str, addr: std::net::IpAddr) -> Result<bool, EnforceError> {
            self.inner.unban(jail, addr)
        }
        fn remaining(&self, jail: &str, addr: std::net::IpAddr) -> Option<Duration> {
            self.inner.remaining(jail, addr)
        }
        fn list(&self, jail: &str) -> Vec<(IpNet, Option<Duration>)> {
            self.inner.list(jail)
        }
        fn ban_net(
            &mut self,
            jail: &str,
            net: IpNet,
            t: Duration,
        ) -> Result<Applied, EnforceError> {
            self.inner.ban_net(jail, net, t)
        }
        fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError> {
            self.inner.unban_net(jail, net)
        }
        fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError> {
            self.inner.restore(bans)
        }
        fn remove_all(&mut self) -> Result<(), EnforceError> {
            self.inner.remove_all()
        }
    }

    #[test]
    fn a_refusal_of_the_whole_batch_is_not_split() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut e = enforcer(Box::new(Refusing {
            errno: libc::EPERM,
            calls: Arc::clone(&calls),
            inner: LogBackend::default(),
        }));
        let batch: Vec<BanOrder> = (1..=64)
            .map(|i| order("sshd", &format!("192.0.2.{i}")))
            .collect();
        let refused = e.ban_batch(&batch).expect("no heal needed");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(refused.len(), 64);
        assert!(refused
            .iter()
            .all(|r| matches!(&r.error, EnforceError::Kernel { source, .. } if source.raw_os_error() == Some(libc::EPERM))));
        assert!(banned(&e).is_empty());
    }

    #[test]
    fn a_refusal_of_every_order_is_reported_for_each() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut e = enforcer(Box::new(Refusing {
            errno: libc::ERANGE,
            calls: Arc::clone(&calls),
            inner: LogBackend::default(),
        }));
        let batch = [
            order("sshd", "192.0.2.1"),
            order("postfix", "192.0.2.2"),
            order("sshd", "192.0.2.3"),
        ];
        let refused = e.ban_batch(&batch).expect("no heal needed");
        let at: Vec<usize> = refused.iter().map(|r| r.index).collect();
        assert_eq!(at, [0, 1, 2]);
        assert!(banned(&e).is_empty());
    }
}
