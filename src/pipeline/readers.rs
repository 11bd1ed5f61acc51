//! The running log readers: each distinct source opened once, on a thread
//! of its own, pushing into a [`LineStage`]. A source's routes are swapped
//! through [`ArcSwap`] on reload, so filters change without reopening
//! anything or losing a position.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, Notify};
use tracing::{error, info};

use super::relay;
use super::routes::{self, Routes, SourceKey};
use super::stage::LineStage;
use crate::config::Config;
use crate::message::{FailureBatch, JailId};
use crate::source::file::{
    FileFollower, FileSourceError, FollowOptions, Position, StartAt, Stopper,
};
use crate::source::glob::GlobWatch;
use crate::source::journal::{self, CursorStore, JournalError, JournalReader};
use crate::source::stdin::{self, StdinEnd};
use crate::source::syslog::{SyslogError, SyslogReceiver};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("log source: {0}")]
    Source(#[from] FileSourceError),
    #[error("cannot start a reader thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Syslog(#[from] SyslogError),
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("{0} changed: that needs a restart")]
    Restart(&'static str),
}

/// Opens the store a journal reader keeps its cursor in (each reader has
/// its own handle: sd-journal readers live on their own thread).
pub type CursorStores = Arc<dyn Fn() -> Result<Box<dyn CursorStore>, JournalError> + Send + Sync>;

pub struct Sources {
    /// Cloned into each new reader; dropped at stop so the tracker sees the end.
    tx: Option<mpsc::Sender<FailureBatch>>,
    running: BTreeMap<SourceKey, Running>,
    /// `run --stdin JAIL`.
    stdin_jail: Option<String>,
    /// Told when standard input ended, so the daemon stops.
    stdin_done: Arc<Notify>,
    /// Where the last run stopped in each file (and which globs it
    /// followed), used when it is first opened.
    saved: BTreeMap<PathBuf, Position>,
    cursors: CursorStores,
}

struct Running {
    routes: Arc<ArcSwap<Routes>>,
    stopper: Stopper,
    thread: JoinHandle<()>,
}

/// A source opened by `prepare`, started by `commit`.
enum Opened {
    File(Box<FileFollower>),
    Glob(GlobWatch),
    Stdin,
    Syslog(SyslogReceiver),
    /// Not `Send`: opened on its own thread at commit (checked at prepare).
    Journal {
        skip_older: Duration,
    },
}

/// Everything a config change needs that can fail, done before anything changes.
pub struct Prepared {
    routes: BTreeMap<SourceKey, Routes>,
    opened: Vec<(SourceKey, Opened, Stopper)>,
}

impl Sources {
    pub fn new(
        tx: mpsc::Sender<FailureBatch>,
        stdin_jail: Option<String>,
        saved: Vec<(String, Position)>,
        cursors: CursorStores,
    ) -> Self {
        Sources {
            tx: Some(tx),
            running: BTreeMap::new(),
            stdin_jail,
            stdin_done: Arc::new(Notify::new()),
            saved: saved
                .into_iter()
                .map(|(p, pos)| (PathBuf::from(p), pos))
                .collect(),
            cursors,
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Fires once standard input has been read to its end.
    pub fn stdin_done(&self) -> Arc<Notify> {
        Arc::clone(&self.stdin_done)
    }

    /// Builds every source's routes and opens the sources not yet read.
    /// `ids[i]` is the stable id of `config.jails[i]`.
    pub fn prepare(&self, config: &Config, ids: &[JailId]) -> Result<Prepared, PipelineError> {
        let (routes, journal_findtime) = routes::plan(config, ids, self.stdin_jail.as_deref());
        let mut opened = Vec::new();
        for key in routes.keys() {
            if self.running.contains_key(key) {
                continue;
            }
            if matches!(key, SourceKey::Syslog(_))
                && self
                    .running
                    .keys()
                    .any(|k| matches!(k, SourceKey::Syslog(_)))
            {
                return Err(PipelineError::Restart(
                    "[syslog] socket, udp or udp_senders",
                ));
            }
            // Opened now, before "ready" or "reloaded" is said, so a line
            // written after that is never missed by a reader starting up.
            let source = open(key, journal_findtime, &self.saved)?;
            let stopper = Stopper::new().map_err(PipelineError::Thread)?;
            opened.push((key.clone(), source, stopper));
        }
        Ok(Prepared { routes, opened })
    }

    /// Applies a prepared change: new routes swapped in, new sources read,
    /// sources no jail reads any more stopped. Returns the stopped threads to join.
    pub fn commit(&mut self, mut prepared: Prepared) -> Result<Vec<JoinHandle<()>>, PipelineError> {
        let mut stopped = Vec::new();
        let gone: Vec<SourceKey> = self
            .running
            .keys()
            .filter(|k| !prepared.routes.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(r) = self.running.remove(&key) {
                r.stopper.stop();
                stopped.push(r.thread);
            }
        }
        for (key, opened, stopper) in prepared.opened.drain(..) {
            let Some(routes) = prepared.routes.remove(&key) else {
                continue;
            };
            let Some(tx) = self.tx.clone() else {
                break;
            };
            let routes = Arc::new(ArcSwap::from_pointee(routes));
            // Files and the journal keep read positions, sent with their
            // batches so they are stored with what the batches counted.
            let marking = matches!(
                key,
                SourceKey::File(_) | SourceKey::Glob(_) | SourceKey::Journal(_)
            );
            let stage = LineStage::new(Arc::clone(&routes), tx)
                .counting(&source_label(&key))
                .marking(marking);
            match (&key, &opened) {
                (SourceKey::File(path), Opened::File(_)) => {
                    // Used once: a file dropped by a reload and added back
                    // later is read from its end like any new one.
                    self.saved.remove(path);
                }
                (SourceKey::Glob(glob), Opened::Glob(_)) => {
                    // The same for a glob's files (all in its directory).
                    let dir = glob.parent();
                    self.saved.retain(|p, _| p != glob && p.parent() != dir);
                }
                _ => {}
            }
            let stop = stopper.clone();
            let thread = match (opened, &key) {
                (Opened::File(f), _) => spawn_file(f, stop, stage)?,
                (Opened::Glob(g), _) => spawn_glob(g, stop, stage)?,
                (Opened::Stdin, _) => spawn_stdin(stop, stage, self.stdin_done())?,
                (Opened::Syslog(r), _) => spawn_syslog(r, stop, stage)?,
                (Opened::Journal { skip_older }, SourceKey::Journal(config)) => spawn_journal(
                    config.clone(),
                    Arc::clone(&self.cursors),
                    skip_older,
                    stop,
                    stage,
                )?,
                (Opened::Journal { .. }, _) => continue,
            };
            self.running.insert(
                key,
                Running {
                    routes,
                    stopper,
                    thread,
                },
            );
        }
        for (key, routes) in prepared.routes {
            if let Some(r) = self.running.get(&key) {
                r.routes.store(Arc::new(routes));
            }
        }
        Ok(stopped)
    }

    /// Stops every reader and returns their threads; the failure channel
    /// closes once they are joined.
    pub fn stop_all(&mut self) -> Vec<JoinHandle<()>> {
        self.tx = None;
        let running = std::mem::take(&mut self.running);
        running
            .into_values()
            .map(|r| {
                r.stopper.stop();
                r.thread
            })
            .collect()
    }
}

fn open(
    key: &SourceKey,
    journal_findtime: Duration,
    saved: &BTreeMap<PathBuf, Position>,
) -> Result<Opened, PipelineError> {
    Ok(match key {
        SourceKey::File(path) => {
            let mut opts = FollowOptions::default();
            if let Some(p) = saved.get(path) {
                opts.start = StartAt::Resume(*p);
            }
            Opened::File(Box::new(FileFollower::new(path.clone(), opts)?))
        }
        SourceKey::Glob(path) => Opened::Glob(GlobWatch::resuming(
            path.clone(),
            FollowOptions::default(),
            saved,
        )?),
        SourceKey::Stdin => Opened::Stdin,
        SourceKey::Syslog(c) => Opened::Syslog(SyslogReceiver::bind(
            c.socket.as_deref(),
            c.udp,
            &c.udp_senders,
        )?),
        SourceKey::Journal(c) => {
            journal::check_open(c)?;
            Opened::Journal {
                skip_older: journal_findtime,
            }
        }
    })
}

fn thread(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(PipelineError::Thread)
}

/// A file is read on one thread and its lines judged on another (see
/// [`relay`]); the reading thread ends once the judging one has.
fn spawn_file(
    mut follower: Box<FileFollower>,
    stop: Stopper,
    stage: LineStage,
) -> Result<JoinHandle<()>, PipelineError> {
    let path = follower.path().to_path_buf();
    let (mut relay, judge) =
        relay::relay(format!("judge:{}", path.display()), stage).map_err(PipelineError::Thread)?;
    thread(format!("source:{}", path.display()), move || {
        if let Err(e) = follower.follow(&stop, &mut relay) {
            error!(file = %path.display(), "log source stopped: {e}");
        }
        drop(relay);
        if judge.join().is_err() {
            error!(file = %path.display(), "the thread judging its lines panicked");
        }
    })
}

fn spawn_glob(
    mut watch: GlobWatch,
    stop: Stopper,
    stage: LineStage,
) -> Result<JoinHandle<()>, PipelineError> {
    let name = watch.glob().to_path_buf();
    thread(format!("glob:{}", name.display()), move || {
        if let Err(e) = watch.run(&stop, |file| stage.sibling_for(file)) {
            error!(glob = %name.display(), "log source stopped: {e}");
        }
    })
}

fn spawn_stdin(
    stop: Stopper,
    mut stage: LineStage,
    done: Arc<Notify>,
) -> Result<JoinHandle<()>, PipelineError> {
    thread("source:stdin".into(), move || {
        match stdin::read_lines(&stop, FollowOptions::default().max_line, &mut stage) {
            Ok(StdinEnd::Eof) => {
                info!("standard input ended: stopping");
                done.notify_one();
            }
            Ok(StdinEnd::Stopped) => {}
            Err(e) => {
                error!("standard input: {e}");
                done.notify_one();
            }
        }
    })
}

fn spawn_syslog(
    mut receiver: SyslogReceiver,
    stop: Stopper,
    mut stage: LineStage,
) -> Result<JoinHandle<()>, PipelineError> {
    let counts = Arc::clone(&receiver.counts);
    crate::metrics::syslog(move || counts.snapshot());
    thread("source:syslog".into(), move || {
        if let Err(e) = receiver.run(&stop, &mut stage) {
            error!("syslog receiver stopped: {e}");
        }
        let [received, malformed, oversized, unrouted, rejected, dropped] =
            receiver.counts.snapshot();
        info!(
            received,
            malformed, oversized, unrouted, rejected, dropped, "syslog receiver stopped"
        );
    })
}

fn spawn_journal(
    config: journal::JournalConfig,
    cursors: CursorStores,
    skip_older: Duration,
    stop: Stopper,
    mut stage: LineStage,
) -> Result<JoinHandle<()>, PipelineError> {
    let store = cursors()?;
    // The reader is opened on its thread (sd-journal handles stay on one
    // thread); whether that worked comes back before "ready" is said.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let handle = thread("source:journal".into(), move || {
        let matches = stage.journal_matches();
        let mut reader = match JournalReader::open(&config, &matches, store, skip_older) {
            Ok(r) => {
                let _ = opened_tx.send(Ok(()));
                r
            }
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        if let Err(e) = reader.run(&stop, &mut stage, LineStage::journal_reselect) {
            error!("journal source stopped: {e}");
        }
    })?;
    match opened_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(PipelineError::Thread(std::io::Error::other(
            "the journal thread ended before opening the journal",
        ))),
    }
}

/// What the metrics call a source: a file's path (a glob's pattern, so
/// rotated and new files add no labels), or `stdin`, `syslog`, `journal`.
fn source_label(key: &SourceKey) -> String {
    match key {
        SourceKey::File(p) | SourceKey::Glob(p) => p.to_string_lossy().into_owned(),
        SourceKey::Stdin => "stdin".into(),
        SourceKey::Syslog(_) => "syslog".into(),
        SourceKey::Journal(_) => "journal".into(),
    }
}
