//! Whether a reader thread is stuck, for the service watchdog: a reader
//! that has been busy (not waiting in `poll`) for longer than the watchdog
//! interval is wedged somewhere, and systemd should restart the daemon.
//!
//! Each reader thread marks when it wakes up and when it goes back to wait;
//! that is one clock read and one atomic store per wake-up, never per line,
//! so the hot path does not pay for it. The marks live in a thread-local
//! registered once per thread, so every waiting place (files, glob
//! followers on threads of their own, stdin, syslog, journal) is covered
//! without threading a handle through each source's API, and a thread that
//! ends drops out of the registry by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The mark of a thread waiting in `poll`; otherwise the mark is the
/// millisecond (since [`epoch`], plus one) at which the thread woke.
const WAITING: u64 = 0;

static READERS: Mutex<Vec<Weak<AtomicU64>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: Arc<AtomicU64> = register();
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn register() -> Arc<AtomicU64> {
    let mark = Arc::new(AtomicU64::new(WAITING));
    if let Ok(mut readers) = READERS.lock() {
        readers.retain(|w| w.strong_count() > 0);
        readers.push(Arc::downgrade(&mark));
    }
    mark
}

fn now_mark() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// The calling reader is about to wait for input.
pub(crate) fn waiting() {
    MINE.with(|m| m.store(WAITING, Ordering::Relaxed));
}

/// The calling reader woke up and works until its next [`waiting`].
pub(crate) fn woke() {
    let now = now_mark();
    MINE.with(|m| m.store(now, Ordering::Relaxed));
}

/// How many reader threads have been busy, without waiting for input in
/// between, for longer than `limit`.
pub fn stuck_readers(limit: Duration) -> usize {
    let now = now_mark();
    let Ok(readers) = READERS.lock() else {
        return 0;
    };
    readers
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|m| is_stuck(m, now, limit))
        .count()
}

fn is_stuck(mark: &AtomicU64, now: u64, limit: Duration) -> bool {
    let since = mark.load(Ordering::Relaxed);
    let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    since != WAITING && now.saturating_sub(since) > limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A reader thread that wakes and then never waits again is reported
    /// once it has been busy past the limit; once it waits, it is not; once
    /// it ends, it is gone from the registry.
    #[test]
    fn a_reader_busy_past_the_limit_is_stuck_and_a_waiting_one_is_not() {
        let limit = Duration::from_millis(20);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (mark_tx, mark_rx) = mpsc::channel::<Weak<AtomicU64>>();
        let reader = std::thread::spawn(move || {
            woke();
            mark_tx.send(MINE.with(Arc::downgrade)).unwrap();
            release_rx.recv().unwrap();
            waiting();
            mark_tx.send(MINE.with(Arc::downgrade)).unwrap();
            release_rx.recv().unwrap();
        });
        // Other tests' reader threads are registered too: look at this
        // thread's mark, and only check that the count includes it.
        let mark = mark_rx.recv().unwrap();
        let stuck = || is_stuck(&mark.upgrade().unwrap(), now_mark(), limit);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stuck() {
            assert!(Instant::now() < deadline, "a busy reader is never stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(stuck_readers(limit) >= 1);
        release_tx.send(()).unwrap();
        mark_rx.recv().unwrap();
        assert!(!stuck(), "a waiting reader is stuck");
        release_tx.send(()).unwrap();
        reader.join().unwrap();
        assert!(
            mark.upgrade().is_none(),
            "an ended reader is still registered"
        );
    }
}
