//! Farm mode: the nodes of a farm share their bans, and if asked their
//! failure counts, through a Redis server (`[cluster]`, off unless
//! configured).
//!
//! - What this node decides reaches the farm through a bounded queue the
//!   enforcer fills without waiting ([`Farm::publisher`]); failures to count
//!   farm-wide, through another the tracker fills ([`Farm::tee`]). Neither
//!   ever waits on Redis: when Redis is down or slow the node bans on its
//!   own counts, the queue waits, and goes out once Redis is back. While
//!   Redis is down the bans and unbans wait in the state store, not in
//!   memory, and so does what is still queued when the daemon stops: a
//!   restart during an outage loses none of them.
//! - Bans go into a Redis Stream (at-least-once, replayable from an id,
//!   trimmed by time) and a sorted set of the bans still running, by end
//!   time. A node that starts or reconnects loads that set, then follows
//!   the stream from the last entry it applied (kept in the state store),
//!   so a disconnection loses nothing.
//! - Every record read is checked ([`record`]) before the enforcer gets it;
//!   a refused one is logged and counted. Records a node wrote itself are
//!   skipped by it.

mod link;
pub mod record;
mod scripts;
mod tls;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::sync::{mpsc, Notify};
use tracing::warn;

use crate::config::cluster::ClusterConfig;
use crate::config::Config;
use crate::control::protocol::{FarmNode, FarmStatus};
use crate::enforce::enforcer::{EnforcerMsg, Publish, Shared};
use crate::state::outbox::Outgoing;
use crate::state::Store;

/// Most bans and unbans waiting for Redis, in memory and again in the
/// state store; past it the oldest are dropped (counted and logged): memory
/// and disk stay bounded through any outage.
pub const MAX_QUEUED: usize = 100_000;
/// Most failures waiting to be counted farm-wide; past it the oldest are
/// dropped (each node still counts them itself).
pub const MAX_COUNTING: usize = 100_000;

/// A failure to count farm-wide: jail, address, when.
pub type Failed = (Arc<str>, IpAddr, SystemTime);

/// What the link to Redis and the rest of the daemon share.
struct Inner {
    cluster: ClusterConfig,
    outbox: Mutex<VecDeque<Shared>>,
    /// Taken from `outbox`, on its way to Redis: a connection cut while it
    /// travels must not lose it (it goes back in front, and may go twice).
    inflight: Mutex<Vec<Shared>>,
    /// The state store's outbox, where what waits for Redis goes while it
    /// is down (None: not opened yet, or it cannot be: memory only).
    store: Mutex<Option<Store>>,
    /// Records waiting in the store's outbox.
    stored: AtomicU64,
    counting: Mutex<VecDeque<Failed>>,
    /// Something was queued.
    wake: Notify,
    connected: AtomicBool,
    /// The last reason Redis could not be used (None: none yet).
    error: Mutex<Option<String>>,
    /// Nodes by their last heartbeat (ms since the epoch), as last read.
    nodes: Mutex<Vec<(String, u64)>>,
    received: AtomicU64,
    sent: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

impl Inner {
    fn queue<T>(&self, q: &Mutex<VecDeque<T>>, items: impl IntoIterator<Item = T>, max: usize) {
        let mut dropped = 0;
        if let Ok(mut q) = q.lock() {
            for item in items {
                if q.len() >= max {
                    q.pop_front();
                    dropped += 1;
                }
                q.push_back(item);
            }
        }
        self.note_dropped(dropped);
        self.wake.notify_one();
    }

    fn note_dropped(&self, dropped: u64) {
        if dropped == 0 {
            return;
        }
        let before = self.dropped.fetch_add(dropped, Ordering::Relaxed);
        // Once per ten thousand, not once per record.
        if before / 10_000 != (before + dropped) / 10_000 || before == 0 {
            warn!(
                dropped = before + dropped,
                "farm: Redis unreachable for long, queue full: the oldest records are dropped"
            );
        }
    }

    /// Moves what waits in memory to the state store's outbox, oldest
    /// first (everything stored is older than what is still in memory).
    /// Blocks on the store: called from a blocking task, or as the
    /// enforcer's thread ends.
    fn spill(&self) {
        self.unsent();
        let Ok(mut slot) = self.store.lock() else {
            return;
        };
        let Some(store) = slot.as_mut() else {
            return;
        };
        loop {
            let chunk = Inner::take(&self.outbox, link::CHUNK);
            if chunk.is_empty() {
                return;
            }
            let items: Vec<Outgoing> = chunk.iter().map(outgoing).collect();
            match store.outbox_append(&items, MAX_QUEUED) {
                Ok((len, dropped)) => {
                    self.stored.store(len, Ordering::Relaxed);
                    self.note_dropped(dropped);
                }
                Err(e) => {
                    warn!(
                        "farm: cannot keep the queue in the state store, it stays in memory: {e}"
                    );
                    Inner::put_back(&self.outbox, chunk);
                    return;
                }
            }
        }
    }

    /// Up to `n` of the oldest items of `q`.
    fn take<T>(q: &Mutex<VecDeque<T>>, n: usize) -> Vec<T> {
        match q.lock() {
            Ok(mut q) => {
                let n = n.min(q.len());
                q.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Puts back, in front and in order, what could not be sent.
    fn put_back<T>(q: &Mutex<VecDeque<T>>, items: Vec<T>) {
        if let Ok(mut q) = q.lock() {
            for item in items.into_iter().rev() {
                q.push_front(item);
            }
        }
    }

    /// What was on its way to Redis when the connection ended goes back in
    /// front of the queue.
    fn unsent(&self) {
        let chunk = match self.inflight.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return,
        };
        Inner::put_back(&self.outbox, chunk);
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.error.lock() {
            *slot = e;
        }
    }
}

/// Farm mode, prepared at start: queues exist before the stages that fill
/// them; [`Farm::start`] connects once the daemon runs.
pub struct Farm {
    inner: Arc<Inner>,
}

/// The farm of this process, for `status`.
static RUNNING: OnceLock<Arc<Inner>> = OnceLock::new();

impl Farm {
    /// None unless `[cluster]` is configured.
    pub fn prepare(config: &Config) -> Option<Farm> {
        let cluster = config.cluster.clone()?;
        let inner = Arc::new(Inner {
            cluster,
            outbox: Mutex::new(VecDeque::new()),
            inflight: Mutex::new(Vec::new()),
            store: Mutex::new(None),
            stored: AtomicU64::new(0),
            counting: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            error: Mutex::new(Some("not connected yet".into())),
            nodes: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let _ = RUNNING.set(Arc::clone(&inner));
        Some(Farm { inner })
    }

    /// Where the enforcer hands the bans and unbans this node decided.
    pub fn publisher(&self) -> Box<dyn Publish> {
        Box::new(Publisher(Arc::clone(&self.inner)))
    }

    /// Where the tracker hands the failures it counted, with shared
    /// counting on (None: off).
    pub fn tee(&self) -> Option<Box<dyn FnMut(Vec<Failed>) + Send>> {
        if !self.inner.cluster.shared_counting {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        Some(Box::new(move |failed: Vec<Failed>| {
            let shared: Vec<Failed> = failed
                .into_iter()
                .filter(|(jail, _, _)| inner.cluster.shares(jail))
                .collect();
            if !shared.is_empty() {
                inner.queue(&inner.counting, shared, MAX_COUNTING);
            }
        }))
    }

    /// Connects and keeps connecting, for the life of the daemon.
    /// `config`: the running config (reloads change jails and ignore lists).
    pub fn start(
        self,
        config: Arc<dyn Fn() -> Arc<Config> + Send + Sync>,
        enforcer: mpsc::Sender<EnforcerMsg>,
        state_dir: PathBuf,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(link::run(self.inner, config, enforcer, state_dir))
    }
}

struct Publisher(Arc<Inner>);

impl Publish for Publisher {
    fn publish(&self, done: Vec<Shared>) {
        let farm = &self.0;
        let shared: Vec<Shared> = done
            .into_iter()
            .filter(|s| match s {
                Shared::Ban { jail, .. } | Shared::Unban { jail, .. } => farm.cluster.shares(jail),
            })
            .collect();
        if !shared.is_empty() {
            farm.queue(&farm.outbox, shared, MAX_QUEUED);
        }
    }
}

/// The enforcer is gone (the daemon stops): what it queued and Redis did
/// not take yet waits in the state store for the next start.
impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.spill();
    }
}

fn outgoing(s: &Shared) -> Outgoing {
    match s.clone() {
        Shared::Ban {
            jail,
            target,
            until,
            cause,
        } => Outgoing::Ban {
            jail,
            target,
            until,
            cause,
        },
        Shared::Unban { jail, target } => Outgoing::Unban { jail, target },
    }
}

fn shared(o: Outgoing) -> Shared {
    match o {
        Outgoing::Ban {
            jail,
            target,
            until,
            cause,
        } => Shared::Ban {
            jail,
            target,
            until,
            cause,
        },
        Outgoing::Unban { jail, target } => Shared::Unban { jail, target },
    }
}

/// The farm block of `status` (None: farm mode is off). Never waits on
/// Redis: it says what the link last knew.
pub fn status() -> Option<Box<FarmStatus>> {
    let inner = RUNNING.get()?;
    let now = record::millis(SystemTime::now());
    let len = |q: &Mutex<VecDeque<Shared>>| q.lock().map_or(0, |q| q.len() as u64);
    let nodes = inner
        .nodes
        .lock()
        .map(|n| {
            n.iter()
                .map(|(node, at)| FarmNode {
                    node: node.clone(),
                    seen_secs_ago: now.saturating_sub(*at) / 1000,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Box::new(FarmStatus {
        redis: inner.cluster.redis_shown(),
        node: inner.cluster.node.clone(),
        connected: inner.connected.load(Ordering::Relaxed),
        error: inner.error.lock().ok().and_then(|e| e.clone()),
        nodes,
        received: inner.received.load(Ordering::Relaxed),
        sent: inner.sent.load(Ordering::Relaxed),
        refused: inner.refused.load(Ordering::Relaxed),
        queued: len(&inner.outbox)
            + inner.inflight.lock().map_or(0, |f| f.len() as u64)
            + inner.stored.load(Ordering::Relaxed),
        dropped: inner.dropped.load(Ordering::Relaxed),
        shared_counting: inner.cluster.shared_counting,
    }))
}
