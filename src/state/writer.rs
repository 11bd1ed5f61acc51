//! The state writer thread: the only user of the database once the daemon
//! runs, so SQLite's work never sits on the ban path. The enforcer sends what
//! it applied; messages queued while a transaction ran are written together.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use tracing::warn;

use super::{Store, StoredBan};
use crate::source::file::Position;

/// How often expired bans and old history are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub enum StateMsg {
    /// Bans applied; `true` marks an offence (a new ban, counted in history).
    Banned(Vec<(StoredBan, bool)>),
    /// Bans lifted; a None prefix is every ban of that jail.
    Lifted(Vec<(String, Option<IpNet>)>),
    /// The configured jails after a reload.
    Jails(Vec<String>),
    Positions(Vec<(String, Position)>),
    /// Failures still counted at stop.
    Failures(Vec<(String, std::net::IpAddr, SystemTime)>),
    /// Answered once everything sent before it is committed.
    Sync(Sender<()>),
}

/// A cheap handle to send to the writer; sending never blocks.
#[derive(Clone)]
pub struct StateTx(Sender<StateMsg>);

impl StateTx {
    pub fn send(&self, msg: StateMsg) {
        crate::metrics::state_queued();
        if self.0.send(msg).is_err() {
            crate::metrics::state_taken();
            warn!("state writer gone: a change was not recorded");
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
pub fn spawn(store: Store, purge_age: Duration) -> std::io::Result<(StateTx, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || run(store, rx, purge_age))?;
    Ok((StateTx(tx), thread))
}

fn run(mut store: Store, rx: Receiver<StateMsg>, purge_age: Duration) {
    lower_priority();
    let mut last_purge = Instant::now();
    loop {
        let first = match rx.recv_timeout(PURGE_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut msgs: Vec<StateMsg> = first.into_iter().collect();
        msgs.extend(rx.try_iter().take(1024));
        if msgs.iter().any(|m| matches!(m, StateMsg::Banned(_))) {
            wait_for_the_flood_to_ebb(&rx, &mut msgs);
        }
        // Coalesce consecutive ban batches into one transaction.
        let mut banned: Vec<(StoredBan, bool)> = Vec::new();
        for msg in msgs {
            crate::metrics::state_taken();
            if !matches!(msg, StateMsg::Banned(_)) && !banned.is_empty() {
                report(store.put_bans(&banned));
                banned.clear();
            }
            match msg {
                StateMsg::Banned(b) => banned.extend(b),
                StateMsg::Lifted(keys) => report(store.remove_bans(&keys)),
                StateMsg::Jails(jails) => report(store.retain_jails(&jails).map(|_| ())),
                StateMsg::Positions(p) => report(store.save_positions(&p)),
                StateMsg::Failures(f) => report(store.save_failures(&f)),
                StateMsg::Sync(done) => {
                    let _ = done.send(());
                }
            }
        }
        if !banned.is_empty() {
            report(store.put_bans(&banned));
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            report(store.purge(SystemTime::now(), purge_age));
        }
    }
}

/// Bans keep coming for as long as this waits: no ban for [`QUIET`].
const QUIET: Duration = Duration::from_millis(50);
/// The longest a ban waits to be written while a flood goes on.
const FLOOD_MAX: Duration = Duration::from_secs(2);

/// Gathers what follows a ban until bans stop coming for [`QUIET`] (or
/// [`FLOOD_MAX`] passed, or someone waits on a [`StateMsg::Sync`]), so a
/// flood is written after it, in one transaction. A ban's row costs about
/// as much as matching its lines; written during the flood, even as a
/// background job, it takes the cores and caches the bans are racing to the
/// kernel on. The store may lag the kernel by this much, as it may anyway (see
/// [`lower_priority`]): a restart adopts the bans it finds in the kernel.
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
/// keeps the policy per thread, so only this thread yields.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread with a valid, zeroed
    // sched_param; failure only leaves the default priority.
    #[cfg(target_os = "linux")]
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
            return;
        }
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            warn!(
                "state writer keeps normal priority: {}",
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
            },
            true,
        )
    }

    fn stored(dir: &std::path::Path) -> usize {
        Store::open(dir)
            .and_then(|s| s.bans())
            .map_or(0, |b| b.len())
    }

    /// What the flood wait must not cost: bans sent during a flood are all
    /// written once it ebbs, and a `sync` (a stop) does not wait for the
    /// ebb, even while bans keep coming (it would wait up to FLOOD_MAX).
    #[test]
    fn a_flood_is_written_when_it_ebbs_and_a_sync_does_not_wait_for_that() {
        let dir = std::env::temp_dir().join(format!("nftjail-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tx, thread) = spawn(Store::open(&dir).expect("open"), PURGE_EVERY).expect("spawn");
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
}
