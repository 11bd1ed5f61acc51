//! Wiring, and nothing else: [`run`] is [`start::start`] (every stage
//! created and started, in the order that keeps a line from being missed),
//! [`serve`] (signals; requests are served by [`control`] and [`reload`]) and
//! [`stop::stop`] (every stage stopped, in the order that keeps a decided
//! ban or a counted failure from being lost). The stages own their loops:
//! readers in `pipeline`, the tracker in `tracker`, the enforcer in
//! `enforce`, the state writer in `state`. ARCHITECTURE.md draws them.

mod blocklist;
mod control;
mod reload;
mod service;
mod start;
mod stop;

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::{Config, Jail};
use crate::control::server::BindError;
use crate::enforce::EnforceError;
use crate::message::JailId;
use crate::pipeline::PipelineError;
use crate::state::StateError;

pub use crate::enforce::banlog::structured_events as ban_events_with_fields;
pub use crate::enforce::banlog::write_directly_to as ban_lines_written_directly_to;
pub use control::Handle;

/// Failures waiting for the tracker; a burst beyond this back-pressures the
/// file readers instead of growing memory.
const FAILURE_QUEUE: usize = 16 * 1024;
/// Messages waiting for the enforcer. The tracker sends one message per
/// batch of failures (up to [`pipeline::FLUSH_AT`] bans each), control
/// requests one each.
const BAN_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("enforcer: {0}")]
    Enforce(#[from] EnforceError),
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Control(#[from] BindError),
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Metrics(#[from] crate::metrics::MetricsError),
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

/// Runs the daemon until SIGINT or SIGTERM (or the end of `--stdin`);
/// SIGHUP reloads the config.
pub async fn run(config: Config, opts: RunOptions) -> Result<(), DaemonError> {
    // Before start: once "ready" is said (and READY=1 sent), a SIGHUP from
    // `systemctl reload` must reload, not kill with the default action.
    let signals = Signals::install()?;
    let running = start::start(config, opts).await?;
    let served = serve(&running, signals).await;
    stop::stop(running).await;
    served
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

/// The signals the daemon answers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        use tokio::signal::unix::{signal, SignalKind};
        let on = |kind| signal(kind).map_err(DaemonError::Signal);
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }
}

/// Waits for the signal to stop, reloading on SIGHUP meanwhile.
async fn serve(running: &start::Running, signals: Signals) -> Result<(), DaemonError> {
    let (handle, stdin_done) = (&running.handle, &running.stdin_done);
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
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
