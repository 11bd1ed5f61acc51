//! Running as a systemd service (`Type=notify`): READY=1 once the ruleset
//! is in place, the last run's bans are back and every source is open;
//! STATUS= with the jails and the active bans; RELOADING=1 and READY=1
//! around a reload; STOPPING=1 at stop. Without `NOTIFY_SOCKET` (not under
//! systemd) nothing is sent and nothing fails.
//!
//! The watchdog is fed by the pipeline's own heartbeat, not by a timer that
//! would keep ticking while the pipeline is wedged: WATCHDOG=1 goes out only
//! when the tracker task and the enforcer thread each answer a ping through
//! their own channels, and no log reader has been busy (out of `poll`) for
//! longer than the watchdog interval. A stuck stage stops the pings, and
//! systemd restarts the daemon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::control::Handle;
use crate::enforce::enforcer::EnforcerMsg;
use crate::source::liveness;
use crate::tracker::task::TrackerCtl;

/// How often STATUS= is brought up to date (and the stages pinged) when the
/// watchdog does not ask for more often.
const TICK: Duration = Duration::from_secs(5);
/// Bans expire in the kernel without the enforcer hearing of it: the count
/// is asked for at least this often even when no ban changed.
const RECOUNT_EVERY: Duration = Duration::from_secs(60);

/// Sends `states` to the service manager, if there is one. A failure is not
/// the daemon's: it is logged and the daemon goes on.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify: {e}");
    }
}

/// Whether a service manager listens; nothing else here runs without one.
fn managed() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

pub(super) fn ready() {
    notify(&[NotifyState::Ready]);
}

/// systemd times the reload from MONOTONIC_USEC, so it goes with RELOADING=1.
pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

pub(super) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// What `systemctl status nftjail` shows on its Status: line.
fn status_text(jails: &[&str], bans: usize) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{} jail{}: {}; {bans} active ban{}",
        jails.len(),
        s(jails.len()),
        jails.join(", "),
        s(bans)
    )
}

/// Starts the task that keeps STATUS= current and feeds the watchdog; None
/// when no service manager listens.
pub(super) fn spawn(handle: Arc<Handle>) -> Option<JoinHandle<()>> {
    if !managed() {
        return None;
    }
    let watchdog = sd_notify::watchdog_enabled();
    Some(tokio::spawn(watch(handle, watchdog)))
}

async fn watch(handle: Arc<Handle>, watchdog: Option<Duration>) {
    // Half the interval, as sd_watchdog_enabled(3) advises: one late ping
    // does not get the daemon killed.
    let tick = watchdog.map_or(TICK, |w| (w / 2).min(TICK));
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = String::new();
    let mut counted: Option<(u64, Instant, usize)> = None;
    let mut stalled: Option<Stalled> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = handle.status_changed.notified() => counted = None,
        }
        // An answer later than this could no longer keep the watchdog fed.
        let within = watchdog.map_or(tick, |w| w / 2);
        let changes = match heartbeat(&handle.tracker, &handle.enforcer, watchdog, within).await {
            Ok(changes) => {
                if let Some(s) = stalled.take() {
                    info!("the pipeline answers again after a stall ({s}): watchdog pings resume");
                }
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
                changes
            }
            Err(s) => {
                if stalled.is_none() {
                    warn!(
                        "{s}: watchdog pings withheld, systemd will restart the daemon if it lasts"
                    );
                }
                stalled = Some(s);
                continue;
            }
        };
        let stale = match counted {
            Some((c, at, _)) => c != changes || at.elapsed() >= RECOUNT_EVERY,
            None => true,
        };
        if stale {
            let lists = ask(
                &handle.enforcer,
                |reply| EnforcerMsg::List { reply },
                within,
            );
            if let Some(lists) = lists.await {
                let bans = lists.iter().map(|j| j.bans.len()).sum();
                counted = Some((changes, Instant::now(), bans));
            }
        }
        let config = handle.config();
        let bans = counted.map_or(0, |(_, _, n)| n);
        let text = status_text(&config.jail_names(), bans);
        if text != shown {
            notify(&[NotifyState::Status(&text)]);
            shown = text;
        }
    }
}

/// Which stage did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stalled {
    Tracker,
    Enforcer,
    Readers(usize),
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::Tracker => f.write_str("the tracker does not answer"),
            Stalled::Enforcer => f.write_str("the enforcer does not answer"),
            Stalled::Readers(n) => write!(f, "{n} log reader(s) stuck"),
        }
    }
}

/// Each stage answers through its own channel within `within`, and no
/// reader has been busy past the watchdog interval. Returns the enforcer's
/// count of ban changes.
async fn heartbeat(
    tracker: &mpsc::Sender<TrackerCtl>,
    enforcer: &mpsc::Sender<EnforcerMsg>,
    watchdog: Option<Duration>,
    within: Duration,
) -> Result<u64, Stalled> {
    let (tracked, enforced) = tokio::join!(
        ask(tracker, TrackerCtl::Ping, within),
        ask(enforcer, EnforcerMsg::Ping, within),
    );
    tracked.ok_or(Stalled::Tracker)?;
    let changes = enforced.ok_or(Stalled::Enforcer)?;
    if let Some(limit) = watchdog {
        match liveness::stuck_readers(limit) {
            0 => {}
            n => return Err(Stalled::Readers(n)),
        }
    }
    Ok(changes)
}

/// A request to a stage and its answer, or None when none came in time.
async fn ask<M, T>(
    to: &mpsc::Sender<M>,
    make: impl FnOnce(oneshot::Sender<T>) -> M,
    within: Duration,
) -> Option<T> {
    let asked = async {
        let (tx, rx) = oneshot::channel();
        to.send(make(tx)).await.ok()?;
        rx.await.ok()
    };
    tokio::time::timeout(within, asked).await.ok().flatten()
}

/// Test hook, in debug builds only (release builds have neither the
/// variable nor the message): with `NFTJAIL_TEST_STALL_SECS=N` set, SIGUSR2
/// stalls the enforcer thread for N seconds ([`EnforcerMsg::Stall`]), so
/// `tests/service.rs` sees the watchdog pings stop and come back.
#[cfg(debug_assertions)]
pub(super) fn stall_on_sigusr2(enforcer: mpsc::Sender<EnforcerMsg>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Some(secs) = std::env::var("NFTJAIL_TEST_STALL_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return;
    };
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            let stall = EnforcerMsg::Stall(Duration::from_secs(secs));
            if enforcer.send(stall).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_the_jails_and_counts_the_bans() {
        assert_eq!(
            status_text(&["sshd", "postfix"], 3),
            "2 jails: sshd, postfix; 3 active bans"
        );
        assert_eq!(status_text(&["sshd"], 1), "1 jail: sshd; 1 active ban");
    }

    /// A stage that takes its messages but never answers stops the
    /// heartbeat, and the answer says which stage.
    #[tokio::test]
    async fn a_stage_that_does_not_answer_stops_the_heartbeat() {
        let (tracker, mut tracker_rx) = mpsc::channel(8);
        let (enforcer, mut enforcer_rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(m) = tracker_rx.recv().await {
                if let TrackerCtl::Ping(reply) = m {
                    let _ = reply.send(());
                }
            }
        });
        let answering = tokio::spawn(async move {
            let mut answered = 0;
            while let Some(m) = enforcer_rx.recv().await {
                if let EnforcerMsg::Ping(reply) = m {
                    if answered == 0 {
                        let _ = reply.send(7);
                    } else {
                        // Wedged: holds the request, answers nothing.
                        std::mem::forget(reply);
                    }
                    answered += 1;
                }
            }
        });
        let within = Duration::from_millis(200);
        assert_eq!(heartbeat(&tracker, &enforcer, None, within).await, Ok(7));
        assert_eq!(
            heartbeat(&tracker, &enforcer, None, within).await,
            Err(Stalled::Enforcer)
        );
        drop(enforcer);
        let _ = answering.await;
    }
}
