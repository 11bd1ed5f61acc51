//! `nftjail reload` and SIGHUP: the new config replaces the running one in
//! every stage, or in none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::control::Handle;
use crate::config::Config;
use crate::config::EMBEDDED_ORIGIN;
use crate::control::protocol::{self, ErrorCode, Reply, Response};
use crate::control::server::error;
use crate::enforce::enforcer::{EnforcerMsg, GoneJail};
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
        let kept = self
            .ask(&self.enforcer, |reply| EnforcerMsg::Reconcile {
                rules,
                reply,
            })
            .await?
            .map_err(refused)?;
        // Nothing below can fail: every stage switches.
        let _ = self
            .enforcer
            .send(EnforcerMsg::Never(new.never.clone()))
            .await;
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
        // Under the lock too: two reloads' blocklists never cross.
        super::blocklist::load(&new, &self.enforcer).await;
        drop(sources);
        let _ =
            tokio::task::spawn_blocking(move || stopped.into_iter().for_each(|t| drop(t.join())))
                .await;
        let reply = changes(&old, &new, kept);
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
        let path = reload_path(self.config_path.as_deref(), &self.config().origin);
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
        for w in &new.warnings {
            warn!("{w}");
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

/// The file a reload reads: the one given on the command line, else the
/// one the running config came from. Only a daemon running on the built-in
/// config looks for the default file again: one that ran on
/// /etc/nftjail/nftjail.toml must not fall back to the built-in jails
/// because the file was moved away (its reload is refused instead).
fn reload_path(given: Option<&Path>, running: &Path) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None if running == Path::new(EMBEDDED_ORIGIN) => None,
        None => Some(running.to_path_buf()),
    }
}

/// The jails before and after, logged and answered; `kept`: the jails
/// gone from the config whose bans still run.
fn changes(old: &Config, new: &Config, kept: Vec<GoneJail>) -> Reply {
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
    for k in &kept {
        k.say_kept();
    }
    Reply::Reloaded {
        jails: after,
        added,
        removed,
        kept: kept
            .into_iter()
            .map(|k| protocol::GoneJail {
                jail: k.jail,
                bans: k.bans as u64,
            })
            .collect(),
    }
}

/// Settings the running daemon cannot switch in place.
fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    if old.backend != new.backend {
        Some("daemon.backend")
    } else if old.table != new.table {
        Some("daemon.table")
    } else if old.ufw_position != new.ufw_position {
        Some("daemon.ufw_position")
    } else if old.socket != new.socket || old.socket_group != new.socket_group {
        Some("daemon.socket")
    } else if old.state_dir != new.state_dir {
        Some("daemon.state_dir")
    } else if old.dbpurgeage != new.dbpurgeage {
        Some("daemon.dbpurgeage")
    } else if old.report_keep != new.report_keep {
        Some("daemon.report_keep")
    } else if old.metrics != new.metrics {
        Some("[metrics]")
    } else if old.cluster != new.cluster {
        Some("[cluster]")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_reads_the_file_the_daemon_runs_on_never_the_built_in_config() {
        let given = Path::new("/tmp/x.toml");
        let default = Path::new(crate::config::DEFAULT_PATH);
        assert_eq!(
            reload_path(Some(given), default).as_deref(),
            Some(given),
            "--config stands"
        );
        // Started on the default file: a reload reads it, and fails when
        // it is gone, rather than falling back to the built-in jails.
        assert_eq!(reload_path(None, default).as_deref(), Some(default));
        // Started on the built-in config: the default file may appear.
        assert_eq!(reload_path(None, Path::new(EMBEDDED_ORIGIN)), None);
    }
}
