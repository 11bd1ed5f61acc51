//! How a batch reaches ufw's live chains, chosen once at start:
//!
//! - **netlink**, where iptables is the nf_tables variant
//!   (`xtables-nft-multi`) and ufw's chain is an nf_tables chain: the rules
//!   that changed, in one transaction per family, in the form
//!   iptables-nft writes them (`nftchain`, `xtrule`): no process at all.
//!   The `filter` tables are watched as the nft backend watches its own, so
//!   a chain someone emptied or a firewall someone flushed is put back.
//! - **restore**, where iptables is the legacy one: one
//!   `iptables-restore -n` per batch and family, as ufw itself loads them
//!   (`live`).
//!
//! `NFTJAIL_UFW_LIVE=restore` forces the second on any host (a way out
//! should an iptables release read our rules differently).

use std::path::Path;

use tracing::{info, warn};

use super::{live, nftchain, Family, UfwPaths};
use crate::enforce::nft::netlink::Netlink;
use crate::enforce::nft::watch::Watcher;

pub enum Live {
    Netlink(Box<Netlink>),
    Restore,
}

/// Whether `program` is iptables on nf_tables (its link resolves to the
/// nft multi-binary, as Debian's alternatives set it).
fn is_nft_variant(program: &Path) -> bool {
    std::fs::canonicalize(program)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().contains("nft")))
        .unwrap_or(false)
}

impl Live {
    pub fn detect(paths: &UfwPaths) -> Live {
        if std::env::var("NFTJAIL_UFW_LIVE").is_ok_and(|v| v == "restore") {
            info!("ufw's chains are loaded with iptables-restore (NFTJAIL_UFW_LIVE=restore)");
            return Live::Restore;
        }
        if !is_nft_variant(&paths.iptables_restore) || !is_nft_variant(&paths.ip6tables_restore) {
            info!("iptables is the legacy one: ufw's chains are loaded with iptables-restore");
            return Live::Restore;
        }
        let nl = match Netlink::open() {
            Ok(nl) => nl,
            Err(e) => {
                warn!("no nfnetlink socket ({e}): ufw's chains are loaded with iptables-restore");
                return Live::Restore;
            }
        };
        let mut nl = Box::new(nl);
        match nftchain::exists(&mut nl, super::FAMILIES[0].chain, false) {
            Ok(true) => {
                info!("ufw's chains are nf_tables chains: changed over netlink");
                Live::Netlink(nl)
            }
            Ok(false) => {
                info!("ufw's chains are not in nf_tables: loaded with iptables-restore");
                Live::Restore
            }
            Err(e) => {
                warn!("cannot list ufw's chain ({e}): loaded with iptables-restore");
                Live::Restore
            }
        }
    }

    /// Whether the live chain is checked even when its file did not change
    /// (a wake of the watch asks for that).
    pub fn checks(&self) -> bool {
        matches!(self, Live::Netlink(_))
    }

    /// Brings `f`'s live chain from the file `old` to the file `new`.
    pub fn load(
        &mut self,
        f: &Family,
        paths: &UfwPaths,
        old: &str,
        new: &str,
    ) -> Result<(), String> {
        let program = if f.v6 {
            &paths.ip6tables_restore
        } else {
            &paths.iptables_restore
        };
        let restore = || {
            live::restore(program, &super::file::chain_restore(new, f.chain))
                .map_err(|e| format!("loading {}: {e}", f.chain))
        };
        let nl = match self {
            Live::Restore if old == new => return Ok(()),
            Live::Restore => return restore(),
            Live::Netlink(nl) => nl,
        };
        // ufw disabled: its chains are gone on purpose; the files keep ours.
        if !super::enabled(&paths.dir) {
            return Ok(());
        }
        let (o, n) = (
            nftchain::chain_lines(old, f.chain),
            nftchain::chain_lines(new, f.chain),
        );
        match nftchain::update(nl, f.chain, f.v6, &o, &n) {
            Ok(_) => Ok(()),
            Err(nftchain::ChainError::Missing(chain)) => {
                warn!("ufw is enabled but {chain} is gone from the kernel: starting ufw again");
                live::start_ufw(&paths.ufw_init)
                    .map_err(|e| format!("{}: {e}", paths.ufw_init.display()))
            }
            Err(e @ nftchain::ChainError::Io(_)) => Err(format!("{}: {e}", f.chain)),
            Err(e) => {
                warn!("{e}: loading it whole from its file");
                restore()
            }
        }
    }

    /// The watch of the `filter` tables, on a thread of its own, calling
    /// `wake` after each change by someone else. None for the restore path
    /// (legacy iptables sends no notifications).
    pub fn watch(&self, wake: Box<dyn Fn() -> bool + Send>) -> Result<(), std::io::Error> {
        let Live::Netlink(nl) = self else {
            return Ok(());
        };
        let families = [nftchain::family(false), nftchain::family(true)];
        let mut watcher = Watcher::open_for(&families, nftchain::TABLE, nl.portid())?;
        std::thread::Builder::new()
            .name("ufw-watch".into())
            .spawn(move || loop {
                if let Err(e) = watcher.wait_for_change() {
                    warn!("ufw chain watcher stopped: {e}");
                    return;
                }
                if !wake() {
                    return;
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_is_where_the_link_leads() {
        let dir = tempfile::tempdir().unwrap();
        for (bin, link) in [
            ("xtables-nft-multi", "iptables-restore"),
            ("xtables-legacy-multi", "iptables-legacy-restore"),
        ] {
            std::fs::write(dir.path().join(bin), "").unwrap();
            std::os::unix::fs::symlink(dir.path().join(bin), dir.path().join(link)).unwrap();
        }
        assert!(is_nft_variant(&dir.path().join("iptables-restore")));
        assert!(!is_nft_variant(&dir.path().join("iptables-legacy-restore")));
        assert!(!is_nft_variant(&dir.path().join("absent")));
    }
}
