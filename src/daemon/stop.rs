//! Shutdown, as tokio's guide has it: the readers stop after their last
//! line (and where they stopped) and their senders drop; the tracker drains
//! and hands back its counts; the enforcer applies every ban queued before
//! its stop; the state writer records the counts with the exact positions
//! last.

use tracing::{error, info};

use super::start::Running;
use crate::config::persist::OnStop;
use crate::enforce::enforcer::EnforcerMsg;
use crate::state::writer::StateMsg;

/// A package upgrade restarts the daemon; with `on_stop = "flush"` that
/// stop would lift every ban for the moments the new binary takes to start.
/// The package's postinst leaves this file beside the control socket just
/// before it restarts the service: the stop it asks for keeps the bans
/// (the new daemon adopts them), once.
pub const KEEP_BANS_ONCE: &str = "keep-bans-on-stop";

fn restart_for_upgrade(socket: &std::path::Path) -> bool {
    let marker = socket.with_file_name(KEEP_BANS_ONCE);
    let found = std::fs::remove_file(&marker).is_ok();
    if found {
        info!(marker = %marker.display(), "restarted for an upgrade: bans stay for the new daemon");
    }
    found
}

pub(super) async fn stop(running: Running) {
    let Running {
        handle,
        server,
        stop_server,
        tracker,
        enforcer,
        enforcer_tx,
        state,
        service,
        ..
    } = running;
    super::service::stopping();
    // Stages stopping on purpose must not read as stalled.
    if let Some(s) = service {
        s.abort();
    }
    let config = handle.config();
    let flush = config.on_stop == OnStop::Flush && !restart_for_upgrade(&config.socket);
    if !flush {
        info!("stopping: bans stay in the kernel until they expire");
    }
    let _ = stop_server.send(true);
    let _ = server.await;
    let threads = handle.sources.lock().await.stop_all();
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_err)
            .count()
    });
    if joined.await.unwrap_or(1) > 0 {
        error!("a log source thread panicked");
    }
    let mut tracker = match tracker.await {
        Ok(t) => Some(t),
        Err(_) => {
            error!("the tracker task panicked");
            None
        }
    };
    // Every decided ban is queued ahead of this.
    let _ = enforcer_tx.send(EnforcerMsg::Stop { flush }).await;
    if tokio::task::spawn_blocking(move || enforcer.join().is_err())
        .await
        .unwrap_or(true)
    {
        error!("the enforcer thread panicked");
    }
    drop(handle);
    if let Some((tx, thread)) = state {
        tx.hurry();
        // The readers have stopped after their last line, and every ban
        // decided is applied: the last counts and positions go after them.
        if let Some(cp) = tracker.as_mut().and_then(|t| t.checkpoint()) {
            tx.send(StateMsg::Checkpoint(cp));
        }
        tx.sync();
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
