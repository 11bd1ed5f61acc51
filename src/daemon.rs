//! Wiring: one thread per log file (source + matcher inline), one tracker
//! task, one enforcer thread; data flows one way through bounded channels.
//!
//! ```text
//! file threads ──Failure──▶ tracker task ──BanOrder──▶ enforcer thread ──netlink──▶ kernel
//! ```
//! Shutdown follows tokio's guide: a signal stops the sources, their senders
//! drop, the tracker drains and ends, and the enforcer applies its last batch
//! before it returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::config::{BackendKind, Config};
use crate::enforce::log::LogBackend;
use crate::enforce::nft::NftBackend;
use crate::enforce::{Applied, Backend, EnforceError};
use crate::matcher::Matcher;
use crate::message::{BanOrder, Failure};
use crate::source::file::{FileFollower, FileSourceError, FollowOptions, Stopper};
use crate::tracker::{Tracker, Verdict};

/// Failures waiting for the tracker; a burst beyond this back-pressures the
/// file readers instead of growing memory.
const FAILURE_QUEUE: usize = 16 * 1024;
const BAN_QUEUE: usize = 16 * 1024;
/// Most bans applied in one netlink transaction.
const MAX_BATCH: usize = 4096;
const PRUNE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("enforcer: {0}")]
    Enforce(#[from] EnforceError),
    #[error("log source: {0}")]
    Source(#[from] FileSourceError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
}

/// Options that come from the command line rather than the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Force the dry-run backend whatever the config says.
    pub dry_run: bool,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config, opts: RunOptions) -> Result<(), DaemonError> {
    let mut backend: Box<dyn Backend> = match (opts.dry_run, config.backend) {
        (true, _) | (false, BackendKind::Log) => Box::new(LogBackend::default()),
        (false, BackendKind::Nft) => Box::new(NftBackend::open(&config.table)?),
    };
    backend.reconcile(&config.jail_rules())?;

    let (fail_tx, fail_rx) = mpsc::channel::<Failure>(FAILURE_QUEUE);
    let (ban_tx, ban_rx) = mpsc::channel::<BanOrder>(BAN_QUEUE);

    let stopper = Stopper::new().map_err(DaemonError::Thread)?;
    let sources = start_sources(&config, &stopper, fail_tx)?;
    let enforcer = std::thread::Builder::new()
        .name("enforcer".into())
        .spawn(move || enforce_loop(backend, ban_rx))
        .map_err(DaemonError::Thread)?;
    let tracker = tokio::spawn(track_loop(
        Tracker::with_limit(config.jails.clone(), config.max_tracked),
        fail_rx,
        ban_tx,
    ));

    info!(
        jails = config.jails.len(),
        files = sources.len(),
        config = %config.origin.display(),
        "ready: {}",
        config.jails.iter().map(|j| &*j.name).collect::<Vec<_>>().join(", ")
    );

    wait_for_shutdown().await?;
    info!("stopping: bans stay in the kernel until they expire");
    stopper.stop();
    for s in sources {
        if s.join().is_err() {
            error!("a log source thread panicked");
        }
    }
    if tracker.await.is_err() {
        error!("the tracker task panicked");
    }
    if enforcer.join().is_err() {
        error!("the enforcer thread panicked");
    }
    Ok(())
}

async fn wait_for_shutdown() -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    Ok(())
}

/// One thread per distinct file, however many jails read it: the file is read
/// once and every jail's filter runs over each line in the same pass.
fn start_sources(
    config: &Config,
    stopper: &Stopper,
    tx: mpsc::Sender<Failure>,
) -> Result<Vec<JoinHandle<()>>, DaemonError> {
    let mut by_path: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (id, jail) in config.jails.iter().enumerate() {
        for path in &jail.logpaths {
            by_path.entry(path.clone()).or_default().push(id);
        }
    }
    let mut handles = Vec::new();
    for (path, jail_ids) in by_path {
        let matcher = Matcher::new(
            jail_ids
                .iter()
                .map(|&id| (id, Arc::clone(&config.jails[id].filter)))
                .collect(),
        );
        // Opened here, before "ready" is logged, so a line written after
        // "ready" is never missed by a reader still starting up.
        let mut follower = FileFollower::new(path.clone(), FollowOptions::default())?;
        let stop = stopper.clone();
        let tx = tx.clone();
        let name = format!("source:{}", path.display());
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let result = follower.follow(&stop, |line| {
                    matcher.scan(line, |jail, addr| {
                        // The clock is read only for hits, not for every line.
                        let time = SystemTime::now();
                        // A closed channel means shutdown; the line is not lost
                        // state, since bans already decided are in the kernel.
                        let _ = tx.blocking_send(Failure { jail, addr, time });
                    });
                });
                if let Err(e) = result {
                    error!(file = %path.display(), "log source stopped: {e}");
                }
            })
            .map_err(DaemonError::Thread)?;
        handles.push(handle);
    }
    Ok(handles)
}

async fn track_loop(
    mut tracker: Tracker,
    mut failures: mpsc::Receiver<Failure>,
    bans: mpsc::Sender<BanOrder>,
) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            f = failures.recv() => {
                let Some(f) = f else { break };
                match tracker.record(f) {
                    Verdict::Ban(order) => {
                        if bans.send(order).await.is_err() {
                            break;
                        }
                    }
                    Verdict::Ignored => debug!(addr = %f.addr, "failure from an ignored address"),
                    Verdict::Counted { count } => debug!(addr = %f.addr, count, "failure counted"),
                }
            }
            _ = prune.tick() => tracker.prune(SystemTime::now()),
        }
    }
}

/// Applies bans in batches: whatever queued up while the last transaction ran
/// goes into the next one, so a flood costs few transactions and a lone ban
/// goes out at once.
fn enforce_loop(mut backend: Box<dyn Backend>, mut orders: mpsc::Receiver<BanOrder>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = orders.blocking_recv() {
        batch.clear();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match orders.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        match backend.ban(&batch) {
            Ok(applied) => {
                for (order, outcome) in batch.iter().zip(applied) {
                    let verb = match outcome {
                        Applied::Added => "ban",
                        Applied::Extended => "ban extended",
                        Applied::Unchanged => {
                            debug!(jail = %order.jail, addr = %order.addr, "already banned for longer");
                            continue;
                        }
                    };
                    info!(
                        "{verb}: jail={} addr={} failures={} bantime={}",
                        order.jail,
                        order.addr,
                        order.failures,
                        human(order.bantime)
                    );
                }
            }
            Err(e) => warn!(bans = batch.len(), "bans not applied: {e}"),
        }
    }
}

/// `600 s` → `10m`, the way the config spells it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}
