//! The running log readers. Each distinct source is opened once however many
//! jails read it: a file, a glob of files, standard input, the syslog
//! receiver, the journal. A source carries routes (which lines go to which
//! jails' filters: every line of a file; a program's messages on the syslog
//! receiver; the entries a `journal` match selects), swappable through
//! [`ArcSwap`] so a reload changes filters without reopening anything or
//! losing a position.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, Notify};
use tracing::{error, info};

use super::DaemonError;
use crate::config::sources::is_glob;
use crate::config::{Config, Fail2banSpec, JournalConfig, JournalMatch, SyslogConfig};
use crate::filter::fail2ban::Fail2banFilter;
use crate::matcher::Matcher;
use crate::message::{Failure, JailId, SharedLine};
use crate::source::file::{FileFollower, FollowOptions, PositionSlot, StartAt, Stopper};
use crate::source::glob::GlobWatch;
use crate::source::journal::{self, JournalEntry, JournalReader, JournalSink};
use crate::source::stdin::{self, StdinEnd};
use crate::source::syslog::{self, SyslogMessage, SyslogReceiver};
use crate::source::file::Position;
use crate::timestamp::DateDetector;

/// The positions in `slots` (a reader that has read nothing has none), by
/// path as the state store keys them.
pub fn read_positions(slots: &[(PathBuf, PositionSlot)]) -> Vec<(String, Position)> {
    slots
        .iter()
        .filter_map(|(path, slot)| {
            Some((path.to_string_lossy().into_owned(), (*slot.lock().ok()?)?))
        })
        .collect()
}

/// Most failures a reader holds before handing them to the tracker.
pub const FLUSH_AT: usize = 1024;

/// Most bytes of lines a reader holds before handing them over: a flood of
/// long lines flushes sooner, so a batch's buffer stays small.
const FLUSH_TEXT_AT: usize = 256 << 10;

/// A line dated later than this after now is a clock or zone mismatch, not
/// the future: it counts as written now.
const FUTURE_SLACK: Duration = Duration::from_secs(60);

/// The line's own time (so findtime counts from the event), or now for a
/// line without a date. `given` is a time the source knows (journal, RFC 5424).
fn line_time(dates: &mut DateDetector, line: &str, given: Option<SystemTime>) -> SystemTime {
    let now = SystemTime::now();
    let found = given.or_else(|| dates.find(line, now).map(|f| f.time));
    match found {
        Some(t) if t <= now + FUTURE_SLACK => t.min(now),
        _ => now,
    }
}

/// One source, however many jails read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SourceKey {
    File(PathBuf),
    Glob(PathBuf),
    Stdin,
    Syslog(SyslogConfig),
    Journal(JournalConfig),
}

/// Which lines of a source a plan reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    /// Every line (files, globs, stdin).
    All,
    /// Syslog messages of this program.
    Program(String),
    /// Journal entries this match selects.
    Journal(JournalMatch),
}

/// What a source's reader runs, per route.
pub struct Routes {
    routes: Vec<(Route, Plan)>,
}

pub struct Sources {
    /// Cloned into each new reader; dropped at stop so the tracker sees the end.
    tx: Option<mpsc::Sender<Vec<Failure>>>,
    running: BTreeMap<SourceKey, Running>,
    /// `run --stdin JAIL`.
    stdin_jail: Option<String>,
    /// Told when standard input ended, so the daemon stops.
    stdin_done: Arc<Notify>,
    /// Where the last run stopped in each file, used when it is first opened.
    saved: BTreeMap<PathBuf, Position>,
}

struct Running {
    routes: Arc<ArcSwap<Routes>>,
    stopper: Stopper,
    thread: JoinHandle<()>,
    /// A file's read position, for the state store.
    position: Option<PositionSlot>,
}

/// What a reader runs over each line it routes to a plan: our filters in one
/// pass, and fail2ban filter files, each run as fail2ban runs it.
pub struct Plan {
    matcher: Matcher,
    fail2ban: Vec<(JailId, Fail2banSpec)>,
}

/// A source opened by `prepare`, started by `commit`.
enum Opened {
    File(FileFollower),
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
    state_dir: PathBuf,
}

impl Sources {
    pub fn new(
        tx: mpsc::Sender<Vec<Failure>>,
        stdin_jail: Option<String>,
        saved: Vec<(String, Position)>,
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
        }
    }

    /// Where each file's reader stands, for the state store.
    pub fn positions(&self) -> Vec<(String, Position)> {
        read_positions(&self.position_slots())
    }

    /// The files' position slots, to read once the readers have stopped.
    pub fn position_slots(&self) -> Vec<(PathBuf, PositionSlot)> {
        self.running
            .iter()
            .filter_map(|(key, r)| match (key, &r.position) {
                (SourceKey::File(path), Some(slot)) => Some((path.clone(), Arc::clone(slot))),
                _ => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Fires once standard input has been read to its end.
    pub fn stdin_done(&self) -> Arc<Notify> {
        Arc::clone(&self.stdin_done)
    }

    /// Builds every source's routes and opens the sources not yet read.
    /// `ids[i]` is the stable id of `config.jails[i]`.
    pub fn prepare(&self, config: &Config, ids: &[JailId]) -> Result<Prepared, DaemonError> {
        let mut wanted: BTreeMap<SourceKey, BTreeMap<Route, Vec<usize>>> = BTreeMap::new();
        let mut journal_findtime = Duration::ZERO;
        for (i, jail) in config.jails.iter().enumerate() {
            let mut add = |key: SourceKey, route: Route| {
                let jails = wanted.entry(key).or_default().entry(route).or_default();
                if !jails.contains(&i) {
                    jails.push(i);
                }
            };
            for path in &jail.logpaths {
                let key = if is_glob(path) {
                    SourceKey::Glob(path.clone())
                } else {
                    SourceKey::File(path.clone())
                };
                add(key, Route::All);
            }
            if self.stdin_jail.as_deref() == Some(&*jail.name) {
                add(SourceKey::Stdin, Route::All);
            }
            for program in &jail.syslog {
                add(
                    SourceKey::Syslog(config.syslog.clone()),
                    Route::Program(program.clone()),
                );
            }
            for m in &jail.journal {
                add(
                    SourceKey::Journal(config.journal.clone()),
                    Route::Journal(m.clone()),
                );
                journal_findtime = journal_findtime.max(jail.findtime);
            }
        }
        if self.stdin_jail.is_some() && !wanted.contains_key(&SourceKey::Stdin) {
            // Read anyway, to its end, so the pipeline feeding it is not blocked.
            wanted.insert(SourceKey::Stdin, BTreeMap::new());
        }
        let mut prepared = Prepared {
            routes: BTreeMap::new(),
            opened: Vec::new(),
            state_dir: config.state_dir.clone(),
        };
        for (key, routes) in wanted {
            let routes = Routes {
                routes: routes
                    .into_iter()
                    .map(|(route, jails)| (route, plan(config, ids, &jails)))
                    .collect(),
            };
            if !self.running.contains_key(&key) {
                if let SourceKey::Syslog(_) = key {
                    if self
                        .running
                        .keys()
                        .any(|k| matches!(k, SourceKey::Syslog(_)))
                    {
                        return Err(DaemonError::Restart("[syslog] socket or udp"));
                    }
                }
                // Opened now, before "ready" or "reloaded" is said, so a line
                // written after that is never missed by a reader starting up.
                let resume = match &key {
                    SourceKey::File(path) => self.saved.get(path).copied(),
                    _ => None,
                };
                let opened = open(&key, journal_findtime, resume)?;
                let stopper = Stopper::new().map_err(DaemonError::Thread)?;
                prepared.opened.push((key.clone(), opened, stopper));
            }
            prepared.routes.insert(key, routes);
        }
        Ok(prepared)
    }

    /// Applies a prepared change: new routes swapped in, new sources read,
    /// sources no jail reads any more stopped. Returns the stopped threads to join.
    pub fn commit(&mut self, mut prepared: Prepared) -> Result<Vec<JoinHandle<()>>, DaemonError> {
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
            let runner = Runner::new(Arc::clone(&routes), tx);
            let position = match (&key, &opened) {
                (SourceKey::File(path), Opened::File(f)) => {
                    // Used once: a file dropped by a reload and added back
                    // later is read from its end like any new one.
                    self.saved.remove(path);
                    Some(f.position_slot())
                }
                _ => None,
            };
            let thread = match opened {
                Opened::File(f) => spawn_file(f, stopper.clone(), runner)?,
                Opened::Glob(g) => spawn_glob(g, stopper.clone(), runner)?,
                Opened::Stdin => spawn_stdin(stopper.clone(), runner, self.stdin_done())?,
                Opened::Syslog(r) => spawn_syslog(r, stopper.clone(), runner)?,
                Opened::Journal { skip_older } => {
                    let SourceKey::Journal(config) = &key else {
                        continue;
                    };
                    spawn_journal(
                        config.clone(),
                        &prepared.state_dir,
                        skip_older,
                        stopper.clone(),
                        runner,
                    )?
                }
            };
            self.running.insert(
                key,
                Running {
                    routes,
                    stopper,
                    thread,
                    position,
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

fn plan(config: &Config, ids: &[JailId], jails: &[usize]) -> Plan {
    Plan {
        matcher: Matcher::new(
            jails
                .iter()
                .filter(|&&i| config.jails[i].fail2ban.is_none())
                .map(|&i| (ids[i], Arc::clone(&config.jails[i].filter)))
                .collect(),
        ),
        fail2ban: jails
            .iter()
            .filter_map(|&i| Some((ids[i], config.jails[i].fail2ban.clone()?)))
            .collect(),
    }
}

fn open(
    key: &SourceKey,
    journal_findtime: Duration,
    resume: Option<Position>,
) -> Result<Opened, DaemonError> {
    Ok(match key {
        SourceKey::File(path) => {
            let mut opts = FollowOptions::default();
            if let Some(p) = resume {
                opts.start = StartAt::Resume(p);
            }
            Opened::File(FileFollower::new(path.clone(), opts)?)
        }
        SourceKey::Glob(path) => {
            Opened::Glob(GlobWatch::new(path.clone(), FollowOptions::default())?)
        }
        SourceKey::Stdin => Opened::Stdin,
        SourceKey::Syslog(c) => Opened::Syslog(SyslogReceiver::bind(c.socket.as_deref(), c.udp)?),
        SourceKey::Journal(c) => {
            journal::check_open(c)?;
            Opened::Journal {
                skip_older: journal_findtime,
            }
        }
    })
}

/// A reader's view of its routes, with per-route state (the date format a
/// route's lines use, its fail2ban filter instances) rebuilt when a reload
/// brings new routes.
struct Runner {
    routes: Arc<ArcSwap<Routes>>,
    current: Arc<Routes>,
    states: Vec<RouteState>,
    tx: mpsc::Sender<Vec<Failure>>,
    /// Failures of a burst go to the tracker as one message: one wake-up of
    /// its task per batch, not per line (the tracker is quicker than a
    /// reader, so it would sleep between lines). Flushed at [`FLUSH_AT`] and
    /// whenever the source has caught up.
    pending: Vec<Failure>,
    /// The lines of `pending`, end to end: one buffer for the batch (see
    /// [`SharedLine`]), with `spans` saying which failure has which line.
    text: String,
    spans: Vec<(usize, Range<usize>)>,
}

struct RouteState {
    /// Learns the date format on the first dated line and keeps it.
    dates: DateDetector,
    fail2ban: Vec<(JailId, Fail2banFilter)>,
}

impl Runner {
    fn new(routes: Arc<ArcSwap<Routes>>, tx: mpsc::Sender<Vec<Failure>>) -> Self {
        let current = routes.load_full();
        let states = states_for(&current);
        Runner {
            routes,
            current,
            states,
            tx,
            pending: Vec::with_capacity(FLUSH_AT),
            text: String::new(),
            spans: Vec::new(),
        }
    }

    /// Hands the pending failures to the tracker.
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            if !self.spans.is_empty() {
                let buf: Arc<str> = Arc::from(self.text.as_str());
                for (i, range) in self.spans.drain(..) {
                    if let Some(f) = self.pending.get_mut(i) {
                        f.line = SharedLine::in_buffer(&buf, range);
                    }
                }
                self.text.clear();
                if self.text.capacity() > FLUSH_TEXT_AT * 2 {
                    self.text.shrink_to(FLUSH_TEXT_AT);
                }
            }
            let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(FLUSH_AT));
            // A closed channel means shutdown; bans already decided are in
            // the kernel.
            let _ = self.tx.blocking_send(batch);
        }
    }

    /// Picks up new routes after a reload; true when they changed.
    fn refresh(&mut self) -> bool {
        // A lock-free load: a reload swaps routes between two lines, never
        // in the middle of one.
        let now = self.routes.load();
        if Arc::ptr_eq(&now, &self.current) {
            return false;
        }
        self.current = arc_swap::Guard::into_inner(now);
        self.states = states_for(&self.current);
        true
    }

    /// Runs `line` through the plan of every route `pick` accepts; false
    /// when none did.
    fn line(
        &mut self,
        line: &str,
        given: Option<SystemTime>,
        pick: impl Fn(&Route) -> bool,
    ) -> bool {
        self.refresh();
        let mut picked = false;
        for ((route, plan), state) in self.current.routes.iter().zip(&mut self.states) {
            if !pick(route) {
                continue;
            }
            picked = true;
            run_fail2ban(&mut state.fail2ban, line, given, &mut self.pending);
            let mut time = None;
            let mut span: Option<Range<usize>> = None;
            let dates = &mut state.dates;
            let (pending, text, spans) = (&mut self.pending, &mut self.text, &mut self.spans);
            plan.matcher.scan(line, |jail, addr| {
                // Dates are read (and the line copied) only for lines that
                // hit, once per line.
                let time = *time.get_or_insert_with(|| line_time(dates, line, given));
                let span = span.get_or_insert_with(|| {
                    let start = text.len();
                    text.push_str(line);
                    start..text.len()
                });
                spans.push((pending.len(), span.clone()));
                pending.push(Failure {
                    jail,
                    addr,
                    time,
                    line: None,
                });
            });
        }
        if self.pending.len() >= FLUSH_AT || self.text.len() >= FLUSH_TEXT_AT {
            self.flush();
        }
        picked
    }
}

fn states_for(routes: &Routes) -> Vec<RouteState> {
    routes
        .routes
        .iter()
        .map(|(_, plan)| RouteState {
            dates: DateDetector::auto(),
            // This reader's own instances: such a filter keeps state.
            fail2ban: plan
                .fail2ban
                .iter()
                .filter_map(|(id, spec)| match spec.load() {
                    Ok(f) => Some((*id, f)),
                    Err(e) => {
                        error!(filter = %spec.spec, "fail2ban filter cannot be loaded: {e}");
                        None
                    }
                })
                .collect(),
        })
        .collect()
}

fn run_fail2ban(
    filters: &mut [(JailId, Fail2banFilter)],
    line: &str,
    given: Option<SystemTime>,
    out: &mut Vec<Failure>,
) {
    // Most routes have no fail2ban filter: no clock read per line for them.
    if filters.is_empty() {
        return;
    }
    let now = SystemTime::now();
    for (jail, filter) in filters {
        let Some(m) = filter.process(line, now) else {
            continue;
        };
        // <DNS> hosts stay text in fail2ban; we ban addresses only.
        let Some(addr) = m.addr else { continue };
        let time = given
            .or(m.time)
            .filter(|t| *t <= now + FUTURE_SLACK)
            .unwrap_or(now)
            .min(now);
        out.push(Failure {
            jail: *jail,
            addr: addr.to_canonical(),
            time,
            line: Some(SharedLine::new(line)),
        });
    }
}

fn thread(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, DaemonError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(DaemonError::Thread)
}

fn spawn_file(
    mut follower: FileFollower,
    stop: Stopper,
    runner: Runner,
) -> Result<JoinHandle<()>, DaemonError> {
    let path = follower.path().to_path_buf();
    thread(format!("source:{}", path.display()), move || {
        let runner = std::cell::RefCell::new(runner);
        let result = follower.follow_then(
            &stop,
            |line| {
                runner.borrow_mut().line(line, None, |_| true);
            },
            || runner.borrow_mut().flush(),
        );
        if let Err(e) = result {
            error!(file = %path.display(), "log source stopped: {e}");
        }
    })
}

fn spawn_glob(
    mut watch: GlobWatch,
    stop: Stopper,
    runner: Runner,
) -> Result<JoinHandle<()>, DaemonError> {
    let glob = watch.glob().to_path_buf();
    thread(format!("glob:{}", glob.display()), move || {
        let Runner { routes, tx, .. } = runner;
        let result = watch.run(
            &stop,
            |path: &Path, follower| {
                let stopper = Stopper::new()
                    .map_err(|e| error!(file = %path.display(), "cannot follow: {e}"))
                    .ok()?;
                let runner = Runner::new(Arc::clone(&routes), tx.clone());
                match spawn_file(follower, stopper.clone(), runner) {
                    Ok(t) => Some((stopper, t)),
                    Err(e) => {
                        error!(file = %path.display(), "cannot follow: {e}");
                        None
                    }
                }
            },
            |_, (stopper, t): (Stopper, JoinHandle<()>)| {
                // Drained to its end before it returns: nothing read is lost.
                stopper.stop();
                let _ = t.join();
            },
        );
        if let Err(e) = result {
            error!(glob = %glob.display(), "log source stopped: {e}");
        }
    })
}

fn spawn_stdin(
    stop: Stopper,
    mut runner: Runner,
    done: Arc<Notify>,
) -> Result<JoinHandle<()>, DaemonError> {
    thread("source:stdin".into(), move || {
        let result = stdin::read_lines(&stop, FollowOptions::default().max_line, |line| {
            runner.line(line, None, |_| true);
            runner.flush();
        });
        match result {
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
    mut runner: Runner,
) -> Result<JoinHandle<()>, DaemonError> {
    thread("source:syslog".into(), move || {
        let host = syslog::local_hostname();
        let counts = Arc::clone(&receiver.counts);
        let result = receiver.run(&stop, |m: &SyslogMessage| {
            let line = m.line(&host);
            let routed = runner.line(
                &line,
                m.time,
                |r| matches!(r, Route::Program(p) if *p == m.program),
            );
            runner.flush();
            if !routed {
                counts
                    .unrouted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        if let Err(e) = result {
            error!("syslog receiver stopped: {e}");
        }
        let [received, malformed, oversized, unrouted] = counts.snapshot();
        info!(
            received,
            malformed, oversized, unrouted, "syslog receiver stopped"
        );
    })
}

fn spawn_journal(
    config: JournalConfig,
    state_dir: &Path,
    skip_older: Duration,
    stop: Stopper,
    runner: Runner,
) -> Result<JoinHandle<()>, DaemonError> {
    let store = Box::new(crate::state::Store::open(state_dir)?);
    // The reader is opened on its thread (sd-journal handles stay on one
    // thread); whether that worked comes back before "ready" is said.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let handle = thread("source:journal".into(), move || {
        let matches = journal_matches(&runner.current);
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
        let mut sink = Sink { runner };
        if let Err(e) = reader.run(&stop, &mut sink) {
            error!("journal source stopped: {e}");
        }
    })?;
    match opened_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(DaemonError::Thread(std::io::Error::other(
            "the journal thread ended before opening the journal",
        ))),
    }
}

fn journal_matches(routes: &Routes) -> Vec<JournalMatch> {
    routes
        .routes
        .iter()
        .filter_map(|(r, _)| match r {
            Route::Journal(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

struct Sink {
    runner: Runner,
}

impl JournalSink for Sink {
    fn matches_changed(&mut self) -> Option<Vec<JournalMatch>> {
        self.runner
            .refresh()
            .then(|| journal_matches(&self.runner.current))
    }

    fn entry(&mut self, entry: &JournalEntry) {
        self.runner.line(
            &entry.line,
            Some(entry.time),
            |r| matches!(r, Route::Journal(m) if entry.matches(m)),
        );
        self.runner.flush();
    }
}
