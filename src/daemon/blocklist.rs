//! Loading the jails' blocklist files, at start and on every reload.
//!
//! The files are read here (off the async workers), each bad line logged
//! with its file:line and skipped; an entry that would ban an address the
//! jail never bans (ignoreip, this host's own addresses, loopback) is
//! skipped with a warning. The enforcer then applies the difference from
//! what is loaded. A file that cannot be read leaves its jail's loaded
//! entries as they are: a blocklist fetched by a cron job may be missing
//! for a moment, and that must not lift thousands of bans.

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::config::blocklist as file;
use crate::config::ignore::IgnoreList;
use crate::config::Config;
use crate::enforce::enforcer::{Blocklist, BlocklistApplied, EnforcerMsg};

/// Reads every jail's blocklist and has the enforcer apply them; returns
/// what each jail's load did (empty when the enforcer is gone).
pub(super) async fn load(
    config: &Config,
    enforcer: &mpsc::Sender<EnforcerMsg>,
) -> Vec<BlocklistApplied> {
    let jails: Vec<(Arc<str>, Option<std::path::PathBuf>, IgnoreList)> = config
        .jails
        .iter()
        .map(|j| (Arc::clone(&j.name), j.blocklist.clone(), j.ignore.clone()))
        .collect();
    let read = tokio::task::spawn_blocking(move || {
        // Loopback and this host's addresses, whatever ignoreself says.
        let own = IgnoreList::new(Vec::new(), true);
        let mut cache: Vec<(std::path::PathBuf, Option<file::Blocklist>)> = Vec::new();
        jails
            .into_iter()
            .map(|(jail, path, ignore)| {
                let entries = path.map_or(Some(Vec::new()), |path| {
                    let parsed = match cache.iter().find(|(p, _)| *p == path) {
                        Some((_, parsed)) => parsed.clone(),
                        None => {
                            let parsed = read_file(&path);
                            cache.push((path.clone(), parsed.clone()));
                            parsed
                        }
                    };
                    parsed.map(|b| allowed(&jail, &path, b.entries, &ignore, &own))
                });
                Blocklist { jail, entries }
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(lists) = read else {
        return Vec::new();
    };
    let (tx, rx) = oneshot::channel();
    let msg = EnforcerMsg::Blocklists { lists, reply: tx };
    if enforcer.send(msg).await.is_err() {
        return Vec::new();
    }
    rx.await.unwrap_or_default()
}

/// The file's entries, its bad lines logged; None (and why, logged) when
/// it cannot be read.
fn read_file(path: &Path) -> Option<file::Blocklist> {
    match file::read(path) {
        Ok(b) => {
            for bad in &b.bad {
                warn!("blocklist {bad}");
            }
            info!(
                file = %path.display(),
                entries = b.entries.len(),
                bad = b.bad.len(),
                "blocklist read"
            );
            Some(b)
        }
        Err(e) => {
            warn!(
                file = %path.display(),
                "blocklist {} cannot be read ({e}): the entries loaded from it before are kept",
                path.display()
            );
            None
        }
    }
}

/// The entries a jail may ban: none covering an address it must never ban,
/// and without overlaps among themselves.
fn allowed(
    jail: &str,
    path: &Path,
    entries: Vec<IpNet>,
    ignore: &IgnoreList,
    own: &IgnoreList,
) -> Vec<IpNet> {
    let entries = entries
        .into_iter()
        .filter(|net| {
            let Some(hit) = ignore.overlap(net).or_else(|| own.overlap(net)) else {
                return true;
            };
            warn!(
                jail,
                file = %path.display(),
                entry = %net,
                "blocklist entry {net} skipped: it covers {hit}, which jail {jail} never bans \
                 (ignoreip, or this host's own addresses)"
            );
            false
        })
        .collect::<Vec<_>>();
    // After the check: an address the jail may ban stays in even when a
    // wider entry around it was just left out.
    let (entries, covered) = file::without_overlaps(entries);
    if covered > 0 {
        info!(
            jail,
            file = %path.display(),
            covered,
            "blocklist entries inside wider entries of the same list left out"
        );
    }
    entries
}
