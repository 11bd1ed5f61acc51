//! Shutdown, as tokio's guide has it: the readers stop after their last
//! line and their senders drop; the tracker drains and hands back its
//! counts; the enforcer applies every ban queued before its stop; the state
//! writer records exact positions and the counts last.

use tracing::{error, info};

use super::start::Running;
use crate::config::persist::OnStop;
use crate::enforce::enforcer::EnforcerMsg;
use crate::pipeline;
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
        position_saver,
        service,
        ..
    } = running;
    super::service::stopping();
    // Stages stopping on purpose must not read as stalled.
    if let Some(s) = service {
        s.abort();
    }
    if let Some(s) = position_saver {
        s.abort();
    }
    let config = handle.config();
    let flush = config.on_stop == OnStop::Flush && !restart_for_upgrade(&config.socket);
    if !flush {
        info!("stopping: bans stay in the kernel until they expire");
    }
    let _ = stop_server.send(true);
    let _ = server.await;
    let (slots, threads) = {
        let mut sources = handle.sources.lock().await;
        (sources.position_slots(), sources.stop_all())
    };
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
    let counted = match tracker.await {
        Ok(t) => t.snapshot(),
        Err(_) => {
            error!("the tracker task panicked");
            Vec::new()
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
        // The readers have stopped after their last line: these are exact.
        tx.send(StateMsg::Positions(pipeline::read_positions(&slots)));
        let counted = counted
            .into_iter()
            .map(|(jail, addr, t)| (jail.to_string(), addr, t))
            .collect();
        tx.send(StateMsg::Failures(counted));
        tx.sync();
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
