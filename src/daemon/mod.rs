//! Wiring: one thread per log file (source + matcher inline), one tracker
//! task, one enforcer thread; data flows one way through bounded channels.
//! The control socket asks the tracker and the enforcer through their own
//! channels and swaps the readers' matchers on reload.
//!
//! ```text
//! file threads ──Failure──▶ tracker task ──BanOrder──▶ enforcer thread ──netlink──▶ kernel
//!                                ▲                           ▲
//!                                └──── control socket ───────┘
//! ```
//! Shutdown follows tokio's guide: a signal stops the sources, their senders
//! drop, the tracker drains and ends, and the enforcer applies its last batch
//! before it returns.

mod control;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{BackendKind, Config, Jail};
use crate::control::server::{self as control_server, Access, BindError};
use crate::enforce::log::LogBackend;
use crate::enforce::nft::NftBackend;
use crate::enforce::{Backend, EnforceError};
use crate::message::{Failure, JailId};
use crate::pipeline::{self, PipelineError, Sources};
use crate::state::{writer as state_writer, StateError, Store};
use crate::tracker::Tracker;

pub use crate::enforce::banlog::write_directly_to as ban_lines_written_directly_to;
use crate::enforce::enforcer::{Enforcer, EnforcerMsg};
use crate::enforce::restore;
use crate::tracker::task::{self as tracker_task, TrackerCtl};
pub use control::Handle;

/// Failures waiting for the tracker; a burst beyond this back-pressures the
/// file readers instead of growing memory.
const FAILURE_QUEUE: usize = 16 * 1024;
/// Messages waiting for the enforcer. The tracker sends one message per
/// batch of failures (up to [`pipeline::FLUSH_AT`] bans each), control
/// requests one each.
const BAN_QUEUE: usize = 64;
/// How often read positions go to the state store while running; at stop
/// they are saved exactly. After a crash, at most this much is read again.
const POSITIONS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("enforcer: {0}")]
    Enforce(#[from] EnforceError),
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Control(#[from] BindError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    State(#[from] StateError),
}

/// Options that come from the command line rather than the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Force the dry-run backend whatever the config says.
    pub dry_run: bool,
    /// The file `reload` (and SIGHUP) reads again; None: the default lookup.
    pub config_path: Option<PathBuf>,
    /// Overrides `daemon.state_dir` (`nftjail run --state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `run --stdin JAIL`: standard input is also read, for this jail; its end stops the daemon.
    pub stdin_jail: Option<String>,
}

/// Jail ids that stay the same across reloads: a name keeps its id for the
/// life of the process, so a failure already on its way when a reload lands
/// is counted for the right jail, or dropped if its jail is gone.
#[derive(Debug, Default)]
pub struct JailSlots {
    names: Vec<Arc<str>>,
}

impl JailSlots {
    /// Ids of `config.jails` in order, and the jails laid out by id.
    fn assign(&mut self, config: &Config) -> (Vec<JailId>, Vec<Option<Jail>>) {
        let mut ids = Vec::with_capacity(config.jails.len());
        for jail in &config.jails {
            let id = match self.names.iter().position(|n| *n == jail.name) {
                Some(id) => id,
                None => {
                    self.names.push(Arc::clone(&jail.name));
                    self.names.len() - 1
                }
            };
            ids.push(id);
        }
        let mut by_id = vec![None; self.names.len()];
        for (jail, &id) in config.jails.iter().zip(&ids) {
            by_id[id] = Some(jail.clone());
        }
        (ids, by_id)
    }
}

/// Runs the daemon until SIGINT or SIGTERM; SIGHUP reloads the config.
pub async fn run(mut config: Config, opts: RunOptions) -> Result<(), DaemonError> {
    let mut backend: Box<dyn Backend> = match (opts.dry_run, config.backend) {
        (true, _) | (false, BackendKind::Log) => Box::new(LogBackend::default()),
        (false, BackendKind::Nft) => Box::new(NftBackend::open(&config.table)?),
    };
    if let Some(dir) = &opts.state_dir {
        config.state_dir = dir.clone();
    } else if opts.dry_run {
        // Whatever a dry run reads (a journal cursor) must not move the real
        // daemon's position: it keeps it in a throwaway directory.
        config.state_dir =
            std::env::temp_dir().join(format!("nftjail-dry-run-{}", std::process::id()));
    }
    let rules = config.jail_rules();
    backend.reconcile(&rules)?;
    // A dry run (--dry-run) keeps no state: it must not restore into, or
    // record over, what the real daemon stored.
    let (state, offences, positions, failures) = if opts.dry_run {
        let none = crate::bantime::Offences::new(config.dbpurgeage);
        (None, none, Vec::new(), Vec::new())
    } else {
        let mut store = Store::open(&config.state_dir)?;
        restore::at_start(&mut *backend, &mut store, &config)?;
        let offences = restore::offences(&store, &config)?;
        let positions = store.positions()?;
        let failures = store.take_failures()?;
        let (tx, thread) =
            state_writer::spawn(store, config.dbpurgeage).map_err(DaemonError::Thread)?;
        (Some((tx, thread)), offences, positions, failures)
    };
    let state_tx = state.as_ref().map(|(tx, _)| tx.clone());
    let access = Access {
        group: config.socket_group.as_ref().map(|(_, gid)| *gid),
    };
    let listener = control_server::bind(&config.socket, access)?;

    // Readers send their failures in batches (see pipeline::FLUSH_AT).
    let (fail_tx, fail_rx) = mpsc::channel::<Vec<Failure>>(FAILURE_QUEUE / pipeline::FLUSH_AT);
    let (enf_tx, enf_rx) = mpsc::channel::<EnforcerMsg>(BAN_QUEUE);
    let (trk_tx, trk_rx) = mpsc::channel::<TrackerCtl>(256);

    let mut slots = JailSlots::default();
    let (ids, jails) = slots.assign(&config);
    let state_dir = config.state_dir.clone();
    let cursors: pipeline::CursorStores = Arc::new(move || {
        Store::open(&state_dir)
            .map(|s| Box::new(s) as Box<dyn crate::source::journal::CursorStore>)
            .map_err(|e| crate::source::journal::JournalError::Cursor(Box::new(e)))
    });
    let mut sources = Sources::new(fail_tx, opts.stdin_jail.clone(), positions, cursors);
    let stdin_done = sources.stdin_done();
    let prepared = sources.prepare(&config, &ids)?;
    sources.commit(prepared)?;

    let mut enforcer = Enforcer::new(backend, &rules, state_tx.clone());
    enforcer.watch_for_tampering(enf_tx.clone());
    let enforcer = std::thread::Builder::new()
        .name("enforcer".into())
        .spawn(move || enforcer.run(enf_rx))
        .map_err(DaemonError::Thread)?;
    let mut counting = Tracker::with_slots(jails, config.max_tracked).with_offences(offences);
    let carried = carry_failures(&mut counting, &config, &ids, failures, &enf_tx).await;
    counting.reset_totals();
    let tracker = tokio::spawn(tracker_task::run(counting, fail_rx, trk_rx, enf_tx.clone()));

    info!(
        carried,
        jails = config.jails.len(),
        files = sources.len(),
        config = %config.origin.display(),
        socket = %config.socket.display(),
        "ready: {}",
        config.jail_names().join(", ")
    );
    give_back_freed_heap();
    let socket = config.socket.clone();
    let handle = Arc::new(Handle {
        config: RwLock::new(Arc::new(config)),
        config_path: opts.config_path,
        state_dir: opts.state_dir.clone(),
        slots: Mutex::new(slots),
        sources: tokio::sync::Mutex::new(sources),
        tracker: trk_tx,
        enforcer: enf_tx.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(control_server::serve(
        listener,
        socket,
        access,
        Arc::clone(&handle),
        stop_rx,
    ));

    let saver = state_tx.clone().map(|tx| {
        let handle = Arc::clone(&handle);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(POSITIONS_EVERY);
            loop {
                every.tick().await;
                let p = handle.sources.lock().await.positions();
                tx.send(state_writer::StateMsg::Positions(p));
            }
        })
    });
    wait_for_shutdown(&handle, &stdin_done).await?;
    if let Some(s) = saver {
        s.abort();
    }
    let flush = handle.config().on_stop == crate::config::persist::OnStop::Flush;
    if !flush {
        info!("stopping: bans stay in the kernel until they expire");
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let slots = handle.sources.lock().await.position_slots();
    let threads = handle.sources.lock().await.stop_all();
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                error!("a log source thread panicked");
            }
        }
    })
    .await;
    let counted = match tracker.await {
        Ok(t) => t.snapshot(),
        Err(_) => {
            error!("the tracker task panicked");
            Vec::new()
        }
    };
    // Every decided ban is queued ahead of this.
    let _ = enf_tx.send(EnforcerMsg::Stop { flush }).await;
    if tokio::task::spawn_blocking(move || enforcer.join().is_err())
        .await
        .unwrap_or(true)
    {
        error!("the enforcer thread panicked");
    }
    // The enforcer's handle is gone with it; ours is the last but this one.
    drop(handle);
    if let Some((tx, thread)) = state {
        // The readers have stopped after their last line: these are exact.
        tx.send(state_writer::StateMsg::Positions(pipeline::read_positions(
            &slots,
        )));
        let counted = counted
            .into_iter()
            .map(|(jail, addr, t)| (jail.to_string(), addr, t))
            .collect();
        tx.send(state_writer::StateMsg::Failures(counted));
        tx.sync();
        drop(tx);
        drop(state_tx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    Ok(())
}

/// Returns to the kernel the heap pages that start-up (or a reload: TOML,
/// regex compilation) used and freed; glibc keeps them otherwise. The
/// binary's own code is left alone: paging it out would only move the cost
/// to the first ban after it.
fn give_back_freed_heap() {
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Failures still counted when the last run stopped count on: an attacker
/// gains nothing from a restart. Returns how many were carried over.
async fn carry_failures(
    tracker: &mut Tracker,
    config: &Config,
    ids: &[JailId],
    failures: Vec<(String, std::net::IpAddr, std::time::SystemTime)>,
    enforcer: &mpsc::Sender<EnforcerMsg>,
) -> usize {
    let now = std::time::SystemTime::now();
    let mut carried = 0;
    for (jail, addr, time) in failures {
        let Some(i) = config.jails.iter().position(|j| *j.name == *jail) else {
            continue;
        };
        let failure = Failure {
            jail: ids[i],
            addr,
            time,
            line: None,
        };
        match tracker.record_at(failure, now) {
            crate::tracker::Verdict::Counted { .. } => carried += 1,
            // maxretry was lowered meanwhile: the ban is due now.
            crate::tracker::Verdict::Ban(order) => {
                carried += 1;
                let _ = enforcer.send(EnforcerMsg::Bans(vec![order])).await;
            }
            _ => {}
        }
    }
    carried
}

async fn wait_for_shutdown(
    handle: &Handle,
    stdin_done: &tokio::sync::Notify,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received"); return Ok(()) }
            _ = int.recv() => { info!("SIGINT received"); return Ok(()) }
            _ = stdin_done.notified() => return Ok(()),
            _ = hup.recv() => {
                info!("SIGHUP received: reloading");
                if let Err(crate::control::protocol::Response::Error(e)) = handle.reload().await {
                    warn!("reload failed: {}", e.message);
                }
            }
        }
    }
}
