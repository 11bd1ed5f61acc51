//! The state writer thread: the only user of the database once the daemon
//! runs, so SQLite's work never sits on the ban path. The enforcer sends what
//! it applied; messages queued while a transaction ran are written together.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use tracing::{error, info, warn};

use super::events::{EventGauge, Keep};
use super::{Store, StoredBan};
use crate::message::{Checkpoint, Failure};
use crate::rules::JailRules;

/// How often expired bans and old history are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub enum StateMsg {
    /// Bans applied; `true` marks an offence (a new ban, counted in history).
    Banned(Vec<(StoredBan, bool)>),
    /// Bans found in the kernel at start that the store lacked: recorded
    /// as they are, without a ban event (no ban was decided).
    Adopted(Vec<(StoredBan, bool)>),
    /// Bans lifted; a None prefix is every ban of that jail.
    Lifted(Vec<(String, Option<IpNet>)>),
    /// The jails the kernel holds after a start, a reload or `unban
    /// --jail-gone` (configured ones, and removed ones whose bans still
    /// run), with their rules: the bans of any other jail are forgotten.
    Jails(Vec<JailRules>),
    /// Read positions with the counts that include the lines before them.
    Checkpoint(Checkpoint),
    /// Answered once everything sent before it is committed.
    Sync(Sender<()>),
    /// Failures for the report, with their jails' names (sent through
    /// [`StateTx::failures`] only: it keeps the gauge).
    Failures(Vec<(Arc<str>, Failure)>),
}

/// A cheap handle to send to the writer; sending never blocks.
#[derive(Clone)]
pub struct StateTx {
    tx: Sender<StateMsg>,
    events: Arc<EventGauge>,
    /// The writer thread's id, once it runs (0 before): for [`StateTx::hurry`].
    writer: Arc<AtomicI32>,
}

impl StateTx {
    pub fn send(&self, msg: StateMsg) {
        crate::metrics::state_queued();
        if self.tx.send(msg).is_err() {
            crate::metrics::state_taken();
            warn!("state writer gone: a change was not recorded");
        }
    }

    /// Failures for the report; dropped (and counted) rather than queued
    /// while the writer is far behind, so they never hold a ban up.
    pub fn failures(&self, failures: Vec<(Arc<str>, Failure)>) {
        let n = failures.len();
        if self.admit_failures(n) {
            self.admitted_failures(failures, n);
        }
    }

    /// Whether `n` failures for the report may be sent now; if not, they
    /// are counted as dropped. Asked before the failures are copied for
    /// the writer: in a flood most batches are refused, and then cost
    /// nothing.
    pub fn admit_failures(&self, n: usize) -> bool {
        n > 0 && self.events.admit(n)
    }

    /// Sends failures after [`StateTx::admit_failures`] admitted
    /// `admitted` of them; fewer may come (those of ignored addresses are
    /// left out), and the room of the others is given back.
    pub fn admitted_failures(&self, failures: Vec<(Arc<str>, Failure)>, admitted: usize) {
        self.events.taken(admitted.saturating_sub(failures.len()));
        if !failures.is_empty() {
            self.send(StateMsg::Failures(failures));
        }
    }

    /// Puts the writer back to normal priority, for the stop: what it has
    /// left to write is then all the daemon waits on, and as a background
    /// job on a busy machine it would wait for every other process (a
    /// flood's bans, held back while it went on, can be many), past the
    /// service manager's stop timeout. Changing another thread's policy
    /// takes effect at once, even inside a long transaction. Without
    /// CAP_SYS_NICE the kernel refuses it and the stop is only slower.
    pub fn hurry(&self) {
        let tid = self.writer.load(Ordering::Acquire);
        if tid > 0 {
            normal_priority(tid);
        }
    }

    /// Waits until everything sent so far is written (at stop, and in tests).
    pub fn sync(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(StateMsg::Sync(tx));
        let _ = rx.recv_timeout(Duration::from_secs(30));
    }
}

/// Starts the writer. It ends when every [`StateTx`] is dropped, after
/// writing what was queued.
pub fn spawn(
    store: Store,
    purge_age: Duration,
    keep: Keep,
) -> std::io::Result<(StateTx, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let events = Arc::new(EventGauge::default());
    let gauge = Arc::clone(&events);
    let writer = Arc::new(AtomicI32::new(0));
    let id = Arc::clone(&writer);
    let thread = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || {
            id.store(lower_priority(), Ordering::Release);
            run(store, rx, purge_age, Recorder::new(keep, gauge))
        })?;
    Ok((StateTx { tx, events, writer }, thread))
}

/// The writer's side of the events: failures taken this round, and when
/// the table was last trimmed.
struct Recorder {
    keep: Keep,
    gauge: Arc<EventGauge>,
    failures: Vec<(Arc<str>, Failure)>,
    /// Rows written since the last trim: a flood trims before the hour.
    since_purge: usize,
}

impl Recorder {
    fn new(keep: Keep, gauge: Arc<EventGauge>) -> Recorder {
        Recorder {
            keep,
            gauge,
            failures: Vec::new(),
            since_purge: 0,
        }
    }

    fn take(&mut self, failures: Vec<(Arc<str>, Failure)>) {
        self.gauge.taken(failures.len());
        self.failures.extend(failures);
    }

    /// Writes what this round took, unless the store refuses writes: then
    /// they are dropped and counted, not kept waiting with the bans.
    fn write(&mut self, store: &mut Store, refusing: bool) {
        let failures = std::mem::take(&mut self.failures);
        let dropped = self.gauge.take_dropped();
        if failures.is_empty() && dropped == 0 {
            return;
        }
        let all = failures.len() as u64 + dropped;
        if refusing {
            self.gauge.dropped_again(all);
            return;
        }
        match store.put_failures(&failures, dropped, SystemTime::now()) {
            Ok(()) => self.since_purge += failures.len(),
            Err(e) => {
                warn!("failures not recorded for the report: {e}");
                self.gauge.dropped_again(all);
            }
        }
        if self.since_purge >= self.keep.rows / 10 {
            self.purge(store);
        }
    }

    fn purge(&mut self, store: &mut Store) {
        self.since_purge = 0;
        if let Err(e) = store.purge_events(SystemTime::now(), self.keep) {
            warn!("old events not purged: {e}");
        }
    }
}

/// One change to write; what failed waits in [`Backlog`] in this form.
enum Change {
    Banned(Vec<(StoredBan, bool)>),
    Adopted(Vec<(StoredBan, bool)>),
    Lifted(Vec<(String, Option<IpNet>)>),
    Jails(Vec<JailRules>),
    Checkpoint(Checkpoint),
}

impl Change {
    fn write(&self, store: &mut Store) -> Result<(), super::StateError> {
        match self {
            Change::Banned(b) => store.put_bans_recorded(b),
            Change::Adopted(b) => store.put_bans(b),
            Change::Lifted(keys) => store.remove_bans(keys),
            Change::Jails(jails) => store.set_jails(jails).map(|_| ()),
            Change::Checkpoint(cp) => store.save_checkpoint(cp),
        }
    }

    /// Rows it holds, for the backlog's bound.
    fn size(&self) -> usize {
        match self {
            Change::Banned(b) | Change::Adopted(b) => b.len(),
            Change::Lifted(k) => k.len(),
            Change::Jails(j) => j.len(),
            Change::Checkpoint(cp) => cp.marks.len() + cp.len(),
        }
        .max(1)
    }
}

/// Most rows kept waiting while the store refuses writes. Past it the
/// oldest changes are dropped, which loses no ban: a ban not written is in
/// the kernel and adopted at the next start, an unban not written comes
/// back there (fail closed).
const BACKLOG_MAX: usize = 100_000;
/// First wait before writing again after a failure; doubled up to
/// [`RETRY_MAX`] while the store keeps refusing.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often a daemon running without its store file says so again: a
/// single line at start scrolls away, the missing persistence does not.
const REMIND_EVERY: Duration = Duration::from_secs(600);

/// Changes the store refused (a read-only or full disk), kept in order and
/// written again with backoff, so a disk that comes back loses nothing.
struct Backlog {
    changes: std::collections::VecDeque<Change>,
    rows: usize,
    dropped: usize,
    /// When to try again (None: nothing waits).
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Backlog {
    fn new() -> Backlog {
        Backlog {
            changes: std::collections::VecDeque::new(),
            rows: 0,
            dropped: 0,
            retry_at: None,
            backoff: RETRY_FIRST,
        }
    }

    /// Writes `change` unless older ones still wait (order matters: an
    /// unban must not be overtaken by the ban it lifts).
    fn write(&mut self, store: &mut Store, change: Change) {
        if self.changes.is_empty() {
            match change.write(store) {
                Ok(()) => return,
                Err(e) => self.failed(&e),
            }
        }
        self.keep(change);
    }

    fn keep(&mut self, mut change: Change) {
        // A checkpoint only says what changed since the one before: one
        // waiting takes the new one in and moves to the back (written
        // later is safe, written ahead of the bans before it is not).
        if let Change::Checkpoint(later) = change {
            let waiting = self
                .changes
                .iter()
                .position(|old| matches!(old, Change::Checkpoint(_)));
            change = match waiting.and_then(|i| self.changes.remove(i)) {
                Some(old) => {
                    self.rows -= old.size();
                    match old {
                        Change::Checkpoint(mut cp) => {
                            cp.absorb(later);
                            Change::Checkpoint(cp)
                        }
                        _ => Change::Checkpoint(later),
                    }
                }
                None => Change::Checkpoint(later),
            };
        }
        self.rows += change.size();
        self.changes.push_back(change);
        // The checkpoint is never dropped (what later ones say builds on
        // it), nor the newest change.
        while self.rows > BACKLOG_MAX {
            let last = self.changes.len().saturating_sub(1);
            let oldest = self
                .changes
                .iter()
                .take(last)
                .position(|c| !matches!(c, Change::Checkpoint(_)));
            match oldest.and_then(|i| self.changes.remove(i)) {
                Some(old) => {
                    self.rows -= old.size();
                    self.dropped += old.size();
                }
                None => break,
            }
        }
    }

    /// The first failure of a streak is logged; the streak's end is too.
    fn failed(&mut self, e: &super::StateError) {
        if self.retry_at.is_none() {
            error!(
                "state store refuses writes ({e}): changes are kept in memory and written \
                 again until it accepts them; banning goes on"
            );
            self.backoff = RETRY_FIRST;
        } else {
            self.backoff = (self.backoff * 2).min(RETRY_MAX);
        }
        self.retry_at = Some(Instant::now() + self.backoff);
    }

    /// Writes what waits, oldest first, if its time has come (or `now`
    /// is forced, at stop).
    fn retry(&mut self, store: &mut Store, forced: bool) {
        match self.retry_at {
            Some(at) if forced || Instant::now() >= at => {}
            _ => return,
        }
        while let Some(change) = self.changes.front() {
            if let Err(e) = change.write(store) {
                self.failed(&e);
                return;
            }
            self.rows -= change.size();
            self.changes.pop_front();
        }
        info!(
            dropped = self.dropped,
            "state store accepts writes again; what waited is written"
        );
        self.dropped = 0;
        self.retry_at = None;
    }
}

fn run(mut store: Store, rx: Receiver<StateMsg>, purge_age: Duration, mut events: Recorder) {
    let mut last_purge = Instant::now();
    let mut next_reminder = Instant::now() + REMIND_EVERY;
    let mut backlog = Backlog::new();
    publish(&store, &backlog);
    loop {
        let now = Instant::now();
        let mut wake = (last_purge + PURGE_EVERY).min(next_reminder);
        if let Some(at) = backlog.retry_at {
            wake = wake.min(at);
        }
        let first = match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut msgs: Vec<StateMsg> = first.into_iter().collect();
        msgs.extend(rx.try_iter().take(1024));
        if msgs
            .iter()
            .any(|m| matches!(m, StateMsg::Banned(_) | StateMsg::Failures(_)))
        {
            wait_for_the_flood_to_ebb(&rx, &mut msgs);
        }
        backlog.retry(&mut store, false);
        // Coalesce consecutive ban batches into one transaction.
        let mut banned: Vec<(StoredBan, bool)> = Vec::new();
        for msg in msgs {
            crate::metrics::state_taken();
            let coalesced = matches!(msg, StateMsg::Banned(_) | StateMsg::Failures(_));
            if !coalesced && !banned.is_empty() {
                backlog.write(&mut store, Change::Banned(std::mem::take(&mut banned)));
            }
            let change = match msg {
                StateMsg::Banned(b) => {
                    banned.extend(b);
                    continue;
                }
                StateMsg::Adopted(b) => Change::Adopted(b),
                StateMsg::Lifted(keys) => Change::Lifted(keys),
                StateMsg::Jails(jails) => Change::Jails(jails),
                StateMsg::Checkpoint(cp) => Change::Checkpoint(cp),
                StateMsg::Sync(done) => {
                    // What came before it is written before the answer.
                    events.write(&mut store, backlog.retry_at.is_some());
                    let _ = done.send(());
                    continue;
                }
                StateMsg::Failures(f) => {
                    events.take(f);
                    continue;
                }
            };
            backlog.write(&mut store, change);
        }
        if !banned.is_empty() {
            backlog.write(&mut store, Change::Banned(banned));
        }
        events.write(&mut store, backlog.retry_at.is_some());
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            report(store.purge(SystemTime::now(), purge_age));
            events.purge(&mut store);
        }
        if Instant::now() >= next_reminder {
            next_reminder = Instant::now() + REMIND_EVERY;
            remind(&store, &backlog);
        }
        publish(&store, &backlog);
    }
    // At stop: one last try for what waits, so a disk that came back
    // meanwhile gets the final positions and counts.
    backlog.retry(&mut store, true);
    if !backlog.changes.is_empty() {
        error!(
            rows = backlog.rows,
            "state store still refuses writes at stop: these changes are lost \
             (running bans stay in the kernel and are adopted at the next start)"
        );
    }
}

/// Why persistence is degraded right now (None: the file takes every
/// write), for `status` and the metrics: a line in the log at start is
/// easily missed, a field every `status` shows is not. Written by the
/// writer thread after each round, read by the control socket.
static DEGRADED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// See [`DEGRADED`].
pub fn degraded() -> Option<String> {
    DEGRADED.lock().ok().and_then(|d| d.clone())
}

fn publish(store: &Store, backlog: &Backlog) {
    let now = if let Some(cause) = store.degraded() {
        Some(format!(
            "the store could not be opened ({cause}): bans are kept in the kernel and in memory only"
        ))
    } else if backlog.retry_at.is_some() {
        Some(format!(
            "the store refuses writes: {} changes wait to be written",
            backlog.rows
        ))
    } else {
        None
    };
    crate::metrics::state_degraded(now.is_some());
    if let Ok(mut d) = DEGRADED.lock() {
        if *d != now {
            *d = now;
        }
    }
}

/// The periodic reminder that persistence is degraded.
fn remind(store: &Store, backlog: &Backlog) {
    if let Some(cause) = store.degraded() {
        error!(
            path = %store.path().display(),
            "state persistence degraded: the store could not be opened ({cause}); \
             bans are in the kernel only and history is lost at stop"
        );
    } else if backlog.retry_at.is_some() {
        error!(
            path = %store.path().display(),
            waiting = backlog.rows,
            dropped = backlog.dropped,
            "state persistence degraded: the store still refuses writes"
        );
    }
}

/// A flood goes on for as long as this waits: nothing new for [`QUIET`].
const QUIET: Duration = Duration::from_millis(50);
/// The longest a ban or a failure waits to be written while a flood goes on.
const FLOOD_MAX: Duration = Duration::from_secs(2);

/// Gathers what follows a ban or a failure for the report until nothing
/// comes for [`QUIET`] (or [`FLOOD_MAX`] passed, or someone waits on a
/// [`StateMsg::Sync`]), so a flood is written after it, in one transaction.
/// A row costs about as much as matching its line; written during the
/// flood, even as a background job, it takes the cores and caches the bans
/// are racing to the kernel on (a flood's failures come before its bans:
/// the addresses reach maxretry last). The store may lag the kernel by this
/// much, as it may anyway (see [`lower_priority`]): a restart adopts the
/// bans it finds in the kernel. Failures waiting here still count as
/// waiting ([`super::events::MAX_WAITING`]): past that, new ones are
/// dropped and counted, so the wait holds a bounded number of them.
fn wait_for_the_flood_to_ebb(rx: &Receiver<StateMsg>, msgs: &mut Vec<StateMsg>) {
    let until = Instant::now() + FLOOD_MAX;
    let is_sync = |m: &StateMsg| matches!(m, StateMsg::Sync(_));
    let mut waited_on = msgs.iter().any(is_sync);
    while !waited_on {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match rx.recv_timeout(QUIET.min(left)) {
            Ok(m) => {
                let from = msgs.len();
                msgs.push(m);
                msgs.extend(rx.try_iter());
                waited_on = msgs[from..].iter().any(is_sync);
            }
            Err(_) => return,
        }
    }
}

/// Runs this thread as a background job (`SCHED_IDLE`, or nice 19 where
/// that is refused). During a flood of bans the reader, tracker and
/// enforcer need every core and SQLite would take a share of them: the
/// store may lag the kernel until the flood ebbs
/// (sending never blocks, and a restart takes the union of kernel and
/// store), the bans may not. On an idle machine it runs at once. Linux
/// keeps the policy per thread, so only this thread yields. Returns the
/// thread's id, for [`StateTx::hurry`].
fn lower_priority() -> i32 {
    // SAFETY: plain syscalls on the calling thread with a valid, zeroed
    // sched_param; failure only leaves the default priority.
    #[cfg(target_os = "linux")]
    unsafe {
        let tid = libc::gettid();
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
            return tid;
        }
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            warn!(
                "state writer keeps normal priority: {}",
                std::io::Error::last_os_error()
            );
        }
        tid
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Thread `tid` back to the normal policy and nice 0 (see [`StateTx::hurry`]).
fn normal_priority(tid: i32) {
    // SAFETY: plain syscalls on a thread id of this process with a valid,
    // zeroed sched_param; failure leaves the priority as it was.
    #[cfg(target_os = "linux")]
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        let policy = libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param);
        let nice = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 0);
        if policy != 0 || nice != 0 {
            tracing::debug!(
                "state writer stays a background job at stop: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn report(r: Result<(), super::StateError>) {
    if let Err(e) = r {
        warn!("state not saved: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StoredBan;

    fn ban(i: u32) -> (StoredBan, bool) {
        let now = SystemTime::now();
        let addr = std::net::Ipv4Addr::from(0xc000_0200 + i);
        (
            StoredBan {
                jail: "j".into(),
                net: IpNet::from(std::net::IpAddr::V4(addr)),
                start: now,
                until: Some(now + Duration::from_secs(600)),
                failures: 3,
                line: None,
                cause: Default::default(),
            },
            true,
        )
    }

    fn stored(dir: &std::path::Path) -> usize {
        Store::open(dir)
            .and_then(|s| s.bans())
            .map_or(0, |b| b.len())
    }

    /// A writer over a fresh store in a directory named for `tag`.
    fn writer(tag: &str) -> (std::path::PathBuf, StateTx, JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("nftjail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tx, thread) = spawn(
            Store::open(&dir).expect("open"),
            PURGE_EVERY,
            Keep::for_age(PURGE_EVERY),
        )
        .expect("spawn");
        (dir, tx, thread)
    }

    /// The writer runs as a background job, and `hurry` (the stop) puts
    /// it back to the normal policy. Needs CAP_SYS_NICE for the way back,
    /// as the tests have (they run as root).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_is_a_background_job_until_the_stop_hurries_it() {
        let (dir, tx, thread) = writer("hurry");
        let policy = |tid: i32| {
            // SAFETY: a query of a thread of this process.
            unsafe { libc::sched_getscheduler(tid) }
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while tx.writer.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let tid = tx.writer.load(Ordering::Acquire);
        assert!(tid > 0, "the writer says which thread it is");
        assert_eq!(policy(tid), libc::SCHED_IDLE);
        tx.hurry();
        assert_eq!(policy(tid), libc::SCHED_OTHER);
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) },
            0
        );
        drop(tx);
        thread.join().expect("writer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What the flood wait must not cost: bans sent during a flood are all
    /// written once it ebbs, and a `sync` (a stop) does not wait for the
    /// ebb, even while bans keep coming (it would wait up to FLOOD_MAX).
    #[test]
    fn a_flood_is_written_when_it_ebbs_and_a_sync_does_not_wait_for_that() {
        let (dir, tx, thread) = writer("writer");
        let flood = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..3000 {
                    tx.send(StateMsg::Banned(vec![ban(i)]));
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let asked = Instant::now();
        tx.sync();
        // Generous: the wait it must not do is FLOOD_MAX (2 s).
        assert!(
            asked.elapsed() < FLOOD_MAX / 2,
            "sync took {:?}",
            asked.elapsed()
        );
        assert!(stored(&dir) > 0);
        flood.join().expect("flood");
        tx.sync();
        assert_eq!(stored(&dir), 3000);
        drop(tx);
        thread.join().expect("writer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store that refuses writes loses nothing it is sent: the changes
    /// wait, in order (the unban after the ban it lifts), and are written
    /// once it accepts them again.
    #[test]
    fn refused_writes_wait_in_order_and_are_written_when_the_store_accepts_them() {
        let dir = std::env::temp_dir().join(format!("nftjail-backlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).expect("open");
        let mut backlog = Backlog::new();
        store.refuse_writes(true);
        backlog.write(&mut store, Change::Banned(vec![ban(1), ban(2)]));
        let lifted = ("j".to_string(), Some(ban(1).0.net));
        backlog.write(&mut store, Change::Lifted(vec![lifted]));
        backlog.write(&mut store, Change::Checkpoint(Checkpoint::default()));
        backlog.write(&mut store, Change::Checkpoint(Checkpoint::default()));
        assert!(backlog.retry_at.is_some(), "a failure streak is on");
        assert_eq!(
            backlog.changes.len(),
            3,
            "a waiting checkpoint takes the next one in"
        );
        backlog.retry(&mut store, true);
        assert_eq!(backlog.changes.len(), 3, "still refused: still waiting");
        assert_eq!(stored(&dir), 0);

        store.refuse_writes(false);
        backlog.retry(&mut store, true);
        assert!(backlog.changes.is_empty() && backlog.retry_at.is_none());
        let left: Vec<IpNet> = store.bans().expect("bans").iter().map(|b| b.net).collect();
        assert_eq!(left, vec![ban(2).0.net], "the unban came after the ban");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Failure `i` of a test flood: jail `j`, an address of its own.
    fn failure(i: u32) -> (Arc<str>, Failure) {
        let f = Failure {
            jail: 0,
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + i)),
            time: SystemTime::now(),
            line: Some("fail".into()),
            read: None,
            account: None,
        };
        (Arc::from("j"), f)
    }

    /// Failures reach the events table; those the writer could not take
    /// in time are dropped and their count is stored instead.
    #[test]
    fn failures_are_recorded_and_those_dropped_counted() {
        use crate::state::events::{Kind, MAX_WAITING};
        let dir = std::env::temp_dir().join(format!("nftjail-events-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keep = Keep::for_age(Duration::from_secs(3600));
        let (tx, thread) =
            spawn(Store::open(&dir).expect("open"), PURGE_EVERY, keep).expect("spawn");
        tx.failures((0..=MAX_WAITING as u32).map(failure).collect());
        tx.failures((0..3).map(failure).collect());
        tx.sync();
        let mut kinds = Vec::new();
        let far = SystemTime::now() + Duration::from_secs(60);
        Store::open(&dir)
            .expect("reopen")
            .scan(SystemTime::UNIX_EPOCH, far, |e| {
                kinds.push((e.kind, e.count))
            })
            .expect("scan");
        let failures = kinds.iter().filter(|k| k.0 == Kind::Failure).count();
        assert_eq!(failures, 3);
        assert!(
            kinds.contains(&(Kind::Dropped, MAX_WAITING as u64 + 1)),
            "{kinds:?}"
        );
        drop(tx);
        thread.join().expect("writer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Failures wait for a flood to ebb like bans, and while they wait
    /// they still count as waiting: the next ones are dropped (and
    /// counted), not held too.
    #[test]
    fn failures_wait_for_the_flood_to_ebb_and_still_count_as_waiting() {
        use crate::state::events::{Kind, MAX_WAITING};
        let (dir, tx, thread) = writer("events-flood");
        tx.failures((0..MAX_WAITING as u32).map(failure).collect());
        // The flood goes on (a checkpoint now and then, well within QUIET):
        // the writer holds the failures, so there is no room for more.
        for _ in 0..40 {
            std::thread::sleep(QUIET / 10);
            tx.send(StateMsg::Checkpoint(Checkpoint::default()));
        }
        assert!(!tx.admit_failures(1));
        tx.sync();
        let mut kinds = Vec::new();
        let far = SystemTime::now() + Duration::from_secs(60);
        Store::open(&dir)
            .expect("reopen")
            .scan(SystemTime::UNIX_EPOCH, far, |e| {
                kinds.push((e.kind, e.count))
            })
            .expect("scan");
        let failures = kinds.iter().filter(|k| k.0 == Kind::Failure).count();
        assert_eq!(failures, MAX_WAITING);
        let others: Vec<_> = kinds.iter().filter(|k| k.0 != Kind::Failure).collect();
        assert!(kinds.contains(&(Kind::Dropped, 1)), "{others:?}");
        assert!(tx.admit_failures(1), "written: room again");
        drop(tx);
        thread.join().expect("writer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The backlog is bounded: past it the oldest changes go, the newest
    /// stay.
    #[test]
    fn the_backlog_is_bounded() {
        let mut backlog = Backlog::new();
        for i in 0..3 {
            let bans = (0..BACKLOG_MAX / 2).map(|j| ban(i * 1_000_000 + j as u32));
            backlog.keep(Change::Banned(bans.collect()));
        }
        assert!(backlog.rows <= BACKLOG_MAX);
        assert_eq!(backlog.dropped, BACKLOG_MAX / 2);
        assert_eq!(backlog.changes.len(), 2);
    }
}
