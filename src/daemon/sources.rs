//! The running log readers: one thread per distinct file, however many jails
//! read it, with the file's matcher swappable so a reload changes filters
//! without reopening the file or losing its position.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tracing::error;

use super::DaemonError;
use crate::config::{Config, Fail2banSpec};
use crate::filter::fail2ban::Fail2banFilter;
use crate::matcher::Matcher;
use crate::message::{Failure, JailId};
use crate::source::file::{FileFollower, FollowOptions, Stopper};
use crate::timestamp::DateDetector;

/// A line dated later than this after now is a clock or zone mismatch, not
/// the future: it counts as written now.
const FUTURE_SLACK: Duration = Duration::from_secs(60);

/// Failures a reader holds back before handing them over in the middle of
/// a burst; whatever it holds goes out as soon as it has read all there is.
pub const FLUSH_AT: usize = 256;

/// The line's own time (so findtime counts from the event), or now for a
/// line without a date.
fn line_time(dates: &mut DateDetector, line: &str) -> SystemTime {
    let now = SystemTime::now();
    match dates.find(line, now) {
        Some(found) if found.time <= now + FUTURE_SLACK => found.time.min(now),
        _ => now,
    }
}

pub struct Sources {
    /// Cloned into each new reader; dropped at stop so the tracker sees the end.
    tx: Option<mpsc::Sender<Vec<Failure>>>,
    running: BTreeMap<PathBuf, Running>,
}

struct Running {
    plan: Arc<ArcSwap<Plan>>,
    stopper: Stopper,
    thread: JoinHandle<()>,
}

/// What a reader runs over each line of its file: our filters in one pass,
/// and fail2ban filter files, each run as fail2ban runs it.
pub struct Plan {
    matcher: Matcher,
    fail2ban: Vec<(JailId, Fail2banSpec)>,
}

/// Everything a config change needs that can fail, done before anything changes.
pub struct Prepared {
    matchers: BTreeMap<PathBuf, Plan>,
    opened: Vec<(PathBuf, FileFollower, Stopper)>,
}

impl Sources {
    pub fn new(tx: mpsc::Sender<Vec<Failure>>) -> Self {
        Sources {
            tx: Some(tx),
            running: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Builds every file's matcher and opens the files not yet followed.
    /// `ids[i]` is the stable id of `config.jails[i]`.
    pub fn prepare(&self, config: &Config, ids: &[JailId]) -> Result<Prepared, DaemonError> {
        let mut by_path: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
        for (i, jail) in config.jails.iter().enumerate() {
            for path in &jail.logpaths {
                by_path.entry(path.clone()).or_default().push(i);
            }
        }
        let mut prepared = Prepared {
            matchers: BTreeMap::new(),
            opened: Vec::new(),
        };
        for (path, jails) in by_path {
            let matcher = Plan {
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
            };
            if !self.running.contains_key(&path) {
                // Opened now, before "ready" or "reloaded" is said, so a line
                // written after that is never missed by a reader starting up.
                let follower = FileFollower::new(path.clone(), FollowOptions::default())?;
                let stopper = Stopper::new().map_err(DaemonError::Thread)?;
                prepared.opened.push((path.clone(), follower, stopper));
            }
            prepared.matchers.insert(path, matcher);
        }
        Ok(prepared)
    }

    /// Applies a prepared change: new matchers swapped in, new files read,
    /// files no jail reads any more stopped. Returns the stopped threads to join.
    pub fn commit(&mut self, mut prepared: Prepared) -> Result<Vec<JoinHandle<()>>, DaemonError> {
        let mut stopped = Vec::new();
        let gone: Vec<PathBuf> = self
            .running
            .keys()
            .filter(|p| !prepared.matchers.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(r) = self.running.remove(&path) {
                r.stopper.stop();
                stopped.push(r.thread);
            }
        }
        for (path, follower, stopper) in prepared.opened.drain(..) {
            let Some(matcher) = prepared.matchers.remove(&path) else {
                continue;
            };
            let Some(tx) = self.tx.clone() else {
                break;
            };
            let plan = Arc::new(ArcSwap::from_pointee(matcher));
            let thread = spawn(
                path.clone(),
                follower,
                stopper.clone(),
                Arc::clone(&plan),
                tx,
            )?;
            self.running.insert(
                path,
                Running {
                    plan,
                    stopper,
                    thread,
                },
            );
        }
        for (path, matcher) in prepared.matchers {
            if let Some(r) = self.running.get(&path) {
                r.plan.store(Arc::new(matcher));
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

fn spawn(
    path: PathBuf,
    mut follower: FileFollower,
    stop: Stopper,
    plan: Arc<ArcSwap<Plan>>,
    tx: mpsc::Sender<Vec<Failure>>,
) -> Result<JoinHandle<()>, DaemonError> {
    // One per file: it learns the file's date format on the first dated
    // line and keeps it. Made here, before the daemon says "ready": the
    // first one compiles every date template (tens of ms), which would
    // otherwise delay the first lines read after "ready".
    let mut dates = DateDetector::auto();
    std::thread::Builder::new()
        .name(format!("source:{}", path.display()))
        .spawn(move || {
            // This reader's own instances of the plan's fail2ban filters,
            // loaded again when a reload brings a new plan.
            let mut fail2ban = Fail2banRunner::default();
            // Failures of a burst go to the tracker as one message: one
            // wake-up of its task per batch, not per line (the tracker is
            // quicker than a reader, so it would sleep between lines).
            let pending = RefCell::new(Vec::with_capacity(FLUSH_AT));
            let flush = |pending: &mut Vec<Failure>| {
                if !pending.is_empty() {
                    let batch = std::mem::replace(pending, Vec::with_capacity(FLUSH_AT));
                    // A closed channel means shutdown; bans already decided
                    // are in the kernel.
                    let _ = tx.blocking_send(batch);
                }
            };
            let on_line = |line: &str| {
                // A lock-free load: a reload swaps the plan between two
                // lines, never in the middle of one.
                let plan = plan.load();
                let mut pending = pending.borrow_mut();
                fail2ban.run(&plan, line, &mut pending);
                let matcher = &plan.matcher;
                let mut time = None;
                matcher.scan(line, |jail, addr| {
                    // Dates are read only for lines that hit, once per line.
                    let time = *time.get_or_insert_with(|| line_time(&mut dates, line));
                    pending.push(Failure { jail, addr, time });
                });
                if pending.len() >= FLUSH_AT {
                    flush(&mut pending);
                }
            };
            let result = follower.follow_then(&stop, on_line, || flush(&mut pending.borrow_mut()));
            if let Err(e) = result {
                error!(file = %path.display(), "log source stopped: {e}");
            }
        })
        .map_err(DaemonError::Thread)
}

/// The fail2ban filters of one reader, instantiated from its current plan.
#[derive(Default)]
struct Fail2banRunner {
    /// The plan they were loaded from, to notice a reload.
    from: Option<Arc<Plan>>,
    filters: Vec<(JailId, Fail2banFilter)>,
}

impl Fail2banRunner {
    fn run(&mut self, plan: &Arc<Plan>, line: &str, out: &mut Vec<Failure>) {
        if plan.fail2ban.is_empty() {
            self.filters.clear();
            return;
        }
        if !self.from.as_ref().is_some_and(|p| Arc::ptr_eq(p, plan)) {
            self.from = Some(Arc::clone(plan));
            self.filters = plan
                .fail2ban
                .iter()
                .filter_map(|(id, spec)| match spec.load() {
                    Ok(f) => Some((*id, f)),
                    Err(e) => {
                        error!(filter = %spec.spec, "fail2ban filter cannot be loaded: {e}");
                        None
                    }
                })
                .collect();
        }
        let now = SystemTime::now();
        for (jail, filter) in &mut self.filters {
            let Some(m) = filter.process(line, now) else {
                continue;
            };
            // <DNS> hosts stay text in fail2ban; we ban addresses only.
            let Some(addr) = m.addr else { continue };
            let time = m
                .time
                .filter(|t| *t <= now + FUTURE_SLACK)
                .unwrap_or(now)
                .min(now);
            out.push(Failure {
                jail: *jail,
                addr: addr.to_canonical(),
                time,
            });
        }
    }
}
