//! Enforcing: turn [`BanOrder`]s into kernel state.
//!
//! [`enforcer`] is the loop that owns the backend (and writes the ban log
//! lines, [`banlog`]); [`restore`] makes the kernel and the state store agree
//! at start. The backends sit behind one small trait, so the daemon picks
//! one at start (nft over netlink, or `log` for a dry run) and nothing else
//! knows which one runs.

pub mod banlog;
pub mod enforcer;
pub mod log;
pub mod metrics;
pub mod nft;
pub mod record;
pub mod restore;
pub mod ufw;

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::message::BanOrder;
use crate::rules::JailRules;

/// Outcome of applying one ban order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The address was not banned; it is now.
    Added,
    /// It was banned with less time left; its timeout was raised in place.
    Extended,
    /// It was already banned for at least as long; nothing was sent.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("kernel refused {what}: {source}")]
    Kernel {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("jail {0:?} is not configured in the enforcer")]
    UnknownJail(String),
    #[error("{wanted} overlaps the banned prefix {existing}: unban that first")]
    Overlap { wanted: String, existing: String },
    /// A manual ban covering a network `[daemon] never` names: no flag
    /// overrides that (edit the config to ban there).
    #[error("{wanted} covers {never}, which [daemon] never lets anything ban")]
    Never { wanted: String, never: String },
    #[error("cannot watch for ruleset changes: {0}")]
    Watch(std::io::Error),
    /// ufw's files, lock or chains (the ufw backend).
    #[error("{0}")]
    Ufw(String),
    /// `backend = "auto"` found neither firewall usable.
    #[error("no firewall backend can run: nft: {nft}; ufw: {ufw}")]
    NoBackend { nft: String, ufw: String },
    /// The state store, read at start to reconcile it with the kernel.
    #[error("{0}")]
    State(#[from] crate::state::StateError),
}

impl EnforceError {
    /// The kernel's ENOENT: our table, a chain, a set or an element is not
    /// there (someone flushed the ruleset, or the kernel already collected
    /// an expired element).
    pub fn is_missing(&self) -> bool {
        matches!(self, EnforceError::Kernel { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
    }
}

/// A firewall backend. Calls are synchronous: each is one netlink transaction
/// (or none), measured in microseconds, so the enforcer runs them on its own thread.
pub trait Backend: Send {
    /// Make the kernel match `jails`: create what is missing, remove what belongs
    /// to jails no longer configured, keep every existing ban. Never flushes sets.
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError>;

    /// Apply many bans in one transaction. Returns one outcome per order, in order.
    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError>;

    /// Lift a ban. Unbanning an address that is not banned is not an error.
    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError>;

    /// Time left on a ban according to the backend's own record (None: not banned).
    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration>;

    /// A jail's active bans, addresses as /32 or /128, with their time left
    /// (None: a ban without timeout).
    fn list(&self, jail: &str) -> Vec<(IpNet, Option<Duration>)>;

    /// Ban a whole prefix (kept apart from addresses, in interval sets).
    /// A prefix overlapping another banned prefix is refused.
    fn ban_net(
        &mut self,
        jail: &str,
        net: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError>;

    /// Lift a prefix ban (exactly that prefix).
    fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError>;

    /// Ban addresses (/32, /128) and prefixes with no timeout, many at once
    /// (a blocklist, `nftjail ban --permanent`): the kernel never expires
    /// them. One outcome per entry, in order; an entry refused on its own
    /// (a prefix overlapping another banned prefix) is an Err in its place,
    /// the others still applied. Err for the whole call when nothing could be.
    fn ban_permanent(&mut self, _jail: &str, _nets: &[IpNet]) -> PermanentOutcomes {
        Err(EnforceError::Netlink(
            "this backend cannot hold bans without timeout".into(),
        ))
    }

    /// Lifts many bans at once (entries gone from a blocklist); returns how
    /// many were lifted. What is not banned is skipped.
    fn lift_many(&mut self, jail: &str, nets: &[IpNet]) -> Result<usize, EnforceError> {
        let mut n = 0;
        for net in nets {
            let lifted = if record::is_host(net) {
                self.unban(jail, net.addr())?
            } else {
                self.unban_net(jail, *net)?
            };
            n += usize::from(lifted);
        }
        Ok(n)
    }

    /// Put bans back with the time they had left (after a reboot, or after
    /// someone flushed the ruleset). Bans the backend already holds are left
    /// as they are. Returns how many were put back.
    fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError>;

    /// Removes everything we put in the kernel (`on_stop = "flush"`).
    fn remove_all(&mut self) -> Result<(), EnforceError>;

    /// Starts noticing when someone else changes what this backend put in
    /// the kernel (`nft flush ruleset`, a restart of the nftables service),
    /// from a thread of its own, calling `wake` after each such change so
    /// the enforcer can rebuild. `wake` answers false once nobody listens
    /// any more: the watch ends then. Backends with nothing to watch do nothing.
    fn watch_for_tampering(
        &mut self,
        _wake: Box<dyn Fn() -> bool + Send>,
    ) -> Result<(), EnforceError> {
        Ok(())
    }

    /// Whether someone else changed our part of the kernel at a moment the
    /// watch could not see (asked after each batch and each
    /// [`Backend::in_kernel`]; answering clears it).
    fn tampered(&mut self) -> bool {
        false
    }

    /// For a backend whose firewall has no timeouts of its own (ufw): lifts
    /// the bans whose time is up, returning how many. Its watch wakes the
    /// enforcer when the next one is due, and the enforcer calls this then.
    /// None: this backend does not expire bans itself, so a wake means
    /// someone else changed our rules, and the enforcer heals.
    fn expire(&mut self) -> Option<Result<usize, EnforceError>> {
        None
    }

    /// A jail's bans as the kernel holds them right now, for `status` and
    /// `banned`: the record can be wrong behind our back (someone flushed a
    /// set, or added an element by hand). Backends without a kernel answer
    /// from their record, with nothing foreign.
    fn in_kernel(&mut self, jail: &str) -> Result<InKernel, EnforceError> {
        Ok(InKernel {
            ours: self.list(jail),
            foreign: Vec::new(),
        })
    }
}

/// What [`Backend::ban_permanent`] did with each entry.
pub type PermanentOutcomes = Result<Vec<Result<Applied, EnforceError>>, EnforceError>;

/// What a jail's sets hold in the kernel, addresses as /32 or /128, each
/// with its time left (None: no timeout), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InKernel {
    /// Elements we put there.
    pub ours: Vec<(IpNet, Option<Duration>)>,
    /// Elements someone else added to our sets while we ran: they block like
    /// ours, so they are shown, but they are the admin's, so we neither put
    /// them back nor lift them unless an unban names them.
    pub foreign: Vec<(IpNet, Option<Duration>)>,
}

/// A ban to put back: an address (/32, /128) or a prefix, its whole
/// bantime and the time it has left (None: permanent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub jail: String,
    pub net: IpNet,
    pub timeout: Option<Duration>,
    pub remaining: Option<Duration>,
}
