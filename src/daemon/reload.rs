//! `nftjail reload` and SIGHUP: the new config replaces the running one in
//! every stage, or in none.

use std::sync::Arc;

use tracing::{info, warn};

use super::control::Handle;
use crate::config::Config;
use crate::control::protocol::{ErrorCode, Reply, Response};
use crate::control::server::error;
use crate::enforce::enforcer::EnforcerMsg;
use crate::tracker::task::TrackerCtl;

impl Handle {
    /// All or nothing: the new file is parsed and checked, new log files are
    /// opened and the kernel reconciled (one transaction) before any stage
    /// switches; a failure at any of these leaves the running config as it was.
    /// systemd hears RELOADING=1 before and READY=1 after, refused or not:
    /// either way the daemon runs on.
    pub async fn reload(&self) -> Result<Reply, Response> {
        super::service::reloading();
        let reloaded = self.switch().await;
        super::service::ready();
        self.status_changed.notify_one();
        reloaded
    }

    async fn switch(&self) -> Result<Reply, Response> {
        // Held throughout: two reloads never interleave.
        let mut sources = self.sources.lock().await;
        let new = self.read_new_config().await?;
        let old = self.config();
        let (ids, jails) = match self.slots.lock() {
            Ok(mut s) => s.assign(&new),
            Err(_) => return Err(error(ErrorCode::Failed, "internal state poisoned")),
        };
        let prepared = sources.prepare(&new, &ids).map_err(refused)?;
        let rules = new.jail_rules();
        self.ask(&self.enforcer, |reply| EnforcerMsg::Reconcile {
            rules,
            reply,
        })
        .await?
        .map_err(refused)?;
        // Nothing below can fail: every stage switches.
        let max_tracked = new.max_tracked;
        self.ask(&self.tracker, |reply| TrackerCtl::Reconfigure {
            jails,
            max_tracked,
            reply,
        })
        .await?;
        let stopped = sources
            .commit(prepared)
            .map_err(|e| error(ErrorCode::Failed, e.to_string()))?;
        drop(sources);
        let _ =
            tokio::task::spawn_blocking(move || stopped.into_iter().for_each(|t| drop(t.join())))
                .await;
        let reply = changes(&old, &new);
        match self.config.write() {
            Ok(mut c) => *c = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
        super::give_back_freed_heap();
        Ok(reply)
    }

    /// The config file again, checked, with the command line's overrides;
    /// refused when it changes what only a restart can change.
    async fn read_new_config(&self) -> Result<Config, Response> {
        let path = self.config_path.clone();
        let mut new = tokio::task::spawn_blocking(move || Config::load(path.as_deref()))
            .await
            .map_err(|e| error(ErrorCode::Failed, e.to_string()))?
            .map_err(|e| {
                warn!("reload refused, the running config stays: {e}");
                error(
                    ErrorCode::Config,
                    format!("{e}\nthe running config stays in force"),
                )
            })?;
        if let Some(dir) = &self.state_dir {
            new.state_dir = dir.clone();
        }
        match needs_restart(&self.config(), &new) {
            Some(what) => Err(error(
                ErrorCode::Config,
                format!("{what} changed: that needs a restart; the running config stays in force"),
            )),
            None => Ok(new),
        }
    }
}

fn refused(e: impl std::fmt::Display) -> Response {
    error(
        ErrorCode::Failed,
        format!("{e}; the running config stays in force"),
    )
}

/// The jails before and after, logged and answered.
fn changes(old: &Config, new: &Config) -> Reply {
    let names =
        |c: &Config| -> Vec<String> { c.jail_names().into_iter().map(String::from).collect() };
    let (before, after) = (names(old), names(new));
    let added: Vec<String> = after
        .iter()
        .filter(|j| !before.contains(j))
        .cloned()
        .collect();
    let removed: Vec<String> = before
        .iter()
        .filter(|j| !after.contains(j))
        .cloned()
        .collect();
    info!(
        config = %new.origin.display(),
        added = ?added,
        removed = ?removed,
        "reloaded: {}",
        after.join(", ")
    );
    Reply::Reloaded {
        jails: after,
        added,
        removed,
    }
}

/// Settings the running daemon cannot switch in place.
fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    if old.backend != new.backend {
        Some("daemon.backend")
    } else if old.table != new.table {
        Some("daemon.table")
    } else if old.socket != new.socket || old.socket_group != new.socket_group {
        Some("daemon.socket")
    } else if old.state_dir != new.state_dir {
        Some("daemon.state_dir")
    } else if old.dbpurgeage != new.dbpurgeage {
        Some("daemon.dbpurgeage")
    } else if old.metrics != new.metrics {
        Some("[metrics]")
    } else {
        None
    }
}
