//! What our sets hold in the kernel, told apart from what we put there.
//!
//! The ban record says what we banned; the kernel says what blocks. They
//! part when someone else edits our sets: `nft flush set` empties the kernel
//! behind the record (the watcher asks for a heal, and a listing that finds
//! the gap asks for one too), `nft add element` puts in an address we never
//! banned. Such an element is foreign: `status` and `banned` show it (it
//! blocks like ours), but we never delete, put back or extend it on our own:
//! it is the admin's, and an admin who removes it wants it gone. It is
//! lifted only when an unban names it; an address we then ban ourselves
//! replaces it and becomes ours.
//!
//! At start, and for a jail new to a reload, nothing can be told apart (a
//! ban we made just before a crash looks the same as one added by hand), so
//! what the kernel holds then is taken as ours.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::wire;
use super::NftBackend;
use crate::enforce::record::{is_host, Until};
use crate::enforce::{EnforceError, InKernel};
use crate::AddrMap;

/// A ban our record holds with at least this much left must be in the
/// kernel when we dump it (the kernel's clock started after ours); one with
/// less may expire while the dump runs.
const DUMP_MARGIN: Duration = Duration::from_secs(1);

/// When an element read back from the kernel ends, by our clock.
pub(super) fn until(e: &wire::Element, now: Instant) -> Until {
    match (e.timeout, e.expires) {
        (_, Some(left)) => Until::At(now + left),
        (Some(t), None) => Until::At(now + t),
        (None, None) => Until::Never,
    }
}

fn left(until: Until, now: Instant) -> Option<Duration> {
    match until {
        Until::Never => None,
        Until::At(t) => Some(t.saturating_duration_since(now)),
    }
}

impl NftBackend {
    /// Every element of a jail's four sets: addresses as /32 or /128, and
    /// prefixes, with when each ends.
    pub(super) fn kernel_bans(
        &mut self,
        jail: &str,
        now: Instant,
    ) -> Result<Vec<(IpNet, Until)>, EnforceError> {
        let mut out = Vec::new();
        for v in ["v4", "v6"] {
            for e in self.load_elements(&format!("{jail}-{v}"))? {
                out.push((IpNet::from(e.addr), until(&e, now)));
            }
        }
        for v in ["net4", "net6"] {
            let elems = self.load_elements(&format!("{jail}-{v}"))?;
            for (net, e) in wire::elements_to_nets(&elems) {
                out.push((net, until(e, now)));
            }
        }
        Ok(out)
    }

    /// Whether `net` is in the record of `jail`, ended or not: an element
    /// the record ended a moment ago is still ours while the kernel holds it.
    fn is_ours(&self, jail: &str, net: &IpNet) -> bool {
        self.bans.get(jail, net).is_some()
    }

    /// Loads a jail's kernel elements into the record: all of them when
    /// `adopt` (nothing to tell them apart by), else only those the record
    /// already holds, the others kept apart as foreign.
    pub(super) fn load_jail(&mut self, jail: &str, adopt: bool) -> Result<(), EnforceError> {
        let now = Instant::now();
        let mut addrs = AddrMap::default();
        let mut nets = AddrMap::default();
        let mut foreign = AddrMap::default();
        for (net, until) in self.kernel_bans(jail, now)? {
            if !adopt && !self.is_ours(jail, &net) {
                foreign.insert(net, until);
            } else if is_host(&net) {
                addrs.insert(net.addr(), until);
            } else {
                nets.insert(net, until);
            }
        }
        if adopt && (!addrs.is_empty() || !nets.is_empty()) {
            tracing::info!(
                jail,
                bans = addrs.len(),
                prefixes = nets.len(),
                "bans already in the kernel kept"
            );
        }
        // Said when their number changes, not at every heal.
        let before = self.foreign.get(jail).map_or(0, |f| f.len());
        if foreign.len() != before {
            tracing::info!(
                jail,
                elements = foreign.len(),
                "elements someone else added to our sets are shown as foreign, not taken as ours"
            );
        }
        self.bans.load(jail, addrs, nets);
        self.foreign.insert(jail.to_string(), foreign);
        Ok(())
    }

    /// Whether `addr` is in a jail's address set only because someone else
    /// put it there: our ban must replace it, as adding over it would
    /// silently keep its timeout.
    pub(super) fn is_foreign(&self, jail: &str, addr: IpAddr) -> bool {
        self.foreign
            .get(jail)
            .is_some_and(|f| f.contains_key(&IpNet::from(addr)))
    }

    /// Forgets that `net` was foreign (we banned it ourselves now).
    pub(super) fn adopted(&mut self, jail: &str, net: &IpNet) {
        if let Some(f) = self.foreign.get_mut(jail) {
            f.remove(net);
        }
    }

    /// A jail's sets as the kernel holds them, ours and foreign apart. A
    /// live ban of the record the kernel lacks was removed by someone the
    /// watch did not hear (or before it listened): flagged, so the enforcer
    /// heals.
    pub(super) fn list_kernel(&mut self, jail: &str) -> Result<InKernel, EnforceError> {
        self.bans.known(jail)?;
        let now = Instant::now();
        let elems = self.kernel_bans(jail, now)?;
        let mut held: AddrMap<IpNet, ()> = AddrMap::default();
        let mut listed = InKernel::default();
        let mut foreign = AddrMap::default();
        for (net, until) in elems {
            held.insert(net, ());
            if self.is_ours(jail, &net) {
                listed.ours.push((net, left(until, now)));
            } else {
                listed.foreign.push((net, left(until, now)));
                foreign.insert(net, until);
            }
        }
        self.foreign.insert(jail.to_string(), foreign);
        let gone = self
            .bans
            .list(jail, now)
            .into_iter()
            .filter(|(_, left)| left.is_none_or(|d| d >= DUMP_MARGIN))
            .filter(|(net, _)| !held.contains_key(net))
            .count();
        if gone > 0 {
            tracing::warn!(
                jail,
                missing = gone,
                "bans of ours are missing from the kernel; putting them back"
            );
            self.changed_by_others = true;
        }
        listed.ours.sort();
        listed.foreign.sort();
        Ok(listed)
    }
}
