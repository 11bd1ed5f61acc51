//! Keys about which firewall takes the bans: `daemon.backend`, and where
//! the ufw backend puts its rules among the admin's (`daemon.ufw_position`).

use super::raw::RawDaemon;
use super::Checker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// nft when the kernel's nf_tables answers, else ufw when it is active.
    Auto,
    Nft,
    /// Rules in ufw's own files and chains, for hosts without nf_tables.
    Ufw,
    /// Dry run: bans are logged, the kernel is not touched.
    Log,
}

impl Checker<'_> {
    pub(super) fn backend(&mut self, d: &RawDaemon) -> BackendKind {
        match d.backend.as_ref() {
            None => BackendKind::Auto,
            Some(b) => match b.get_ref().as_str() {
                "auto" => BackendKind::Auto,
                "nft" => BackendKind::Nft,
                "ufw" => BackendKind::Ufw,
                "log" => BackendKind::Log,
                other => {
                    self.problem(
                        b.span(),
                        "daemon.backend",
                        format!(
                            "unknown backend {other:?} (use \"auto\", \"nft\", \"ufw\" or \"log\")"
                        ),
                    );
                    BackendKind::Auto
                }
            },
        }
    }

    pub(super) fn ufw_position(&mut self, d: &RawDaemon) -> Option<usize> {
        d.ufw_position.as_ref().and_then(|v| {
            let n = usize::try_from(*v.get_ref()).ok().filter(|n| *n >= 1);
            if n.is_none() {
                self.problem(
                    v.span(),
                    "daemon.ufw_position",
                    "must be a whole number from 1 up",
                );
            }
            n
        })
    }
}
