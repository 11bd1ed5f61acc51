//! The record of active bans a backend keeps beside the kernel (or in
//! place of it, for the dry run): per jail, banned addresses and banned
//! prefixes with when each ends. `status`, `banned`, unbans and the
//! decision whether an order adds, extends or leaves a ban read it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::EnforceError;
use crate::AddrMap;

/// When a ban ends, by our clock (the kernel's timeout, started when it was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    At(Instant),
    /// An element without timeout (added by hand): permanent.
    Never,
}

impl Until {
    /// Time left at `now`: None once over; Some(None) for a permanent ban.
    fn left(&self, now: Instant) -> Option<Option<Duration>> {
        match self {
            Until::Never => Some(None),
            Until::At(t) => t
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
                .map(Some),
        }
    }
}

/// Active bans of every configured jail. The jails' own maps are looked
/// up by name several times per ban, so they hash with the same fast
/// hasher as the addresses.
#[derive(Debug, Default)]
pub struct BanRecord {
    /// Per jail name: banned address → end of ban.
    addrs: AddrMap<String, AddrMap<IpAddr, Until>>,
    /// Per jail name: banned prefix → end of ban.
    nets: AddrMap<String, AddrMap<IpNet, Until>>,
}

impl BanRecord {
    /// An error unless `jail` is configured.
    pub fn known(&self, jail: &str) -> Result<(), EnforceError> {
        if self.addrs.contains_key(jail) {
            Ok(())
        } else {
            Err(EnforceError::UnknownJail(jail.to_string()))
        }
    }

    /// The jails are now `names`: others are forgotten with their bans,
    /// new ones start empty.
    pub fn keep_jails<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let names: Vec<&str> = names.into_iter().collect();
        self.addrs.retain(|j, _| names.contains(&j.as_str()));
        self.nets.retain(|j, _| names.contains(&j.as_str()));
        for name in names {
            self.addrs.entry(name.to_string()).or_default();
            self.nets.entry(name.to_string()).or_default();
        }
    }

    /// Replaces a jail's bans with what the kernel holds.
    pub fn load(&mut self, jail: &str, addrs: AddrMap<IpAddr, Until>, nets: AddrMap<IpNet, Until>) {
        self.addrs.insert(jail.to_string(), addrs);
        self.nets.insert(jail.to_string(), nets);
    }

    pub fn addrs(&self, jail: &str) -> Option<&AddrMap<IpAddr, Until>> {
        self.addrs.get(jail)
    }

    pub fn addrs_mut(&mut self, jail: &str) -> Option<&mut AddrMap<IpAddr, Until>> {
        self.addrs.get_mut(jail)
    }

    pub fn nets(&self, jail: &str) -> Option<&AddrMap<IpNet, Until>> {
        self.nets.get(jail)
    }

    pub fn nets_mut(&mut self, jail: &str) -> Option<&mut AddrMap<IpNet, Until>> {
        self.nets.get_mut(jail)
    }

    /// When the ban of `net` (an address as /32 or /128, or a prefix) ends.
    pub fn get(&self, jail: &str, net: &IpNet) -> Option<Until> {
        if is_host(net) {
            self.addrs.get(jail)?.get(&net.addr()).copied()
        } else {
            self.nets.get(jail)?.get(net).copied()
        }
    }

    /// Records the ban of `net` (an address as /32 or /128, or a prefix);
    /// returns the end it replaced.
    pub fn insert(&mut self, jail: &str, net: IpNet, until: Until) -> Option<Until> {
        if is_host(&net) {
            self.addrs.get_mut(jail)?.insert(net.addr(), until)
        } else {
            self.nets.get_mut(jail)?.insert(net, until)
        }
    }

    /// Forgets the ban of `net`; returns when it would have ended.
    pub fn remove(&mut self, jail: &str, net: &IpNet) -> Option<Until> {
        if is_host(net) {
            self.addrs.get_mut(jail)?.remove(&net.addr())
        } else {
            self.nets.get_mut(jail)?.remove(net)
        }
    }

    /// A jail's active bans, addresses as /32 or /128, sorted, with their
    /// time left (None: a ban without timeout).
    pub fn list(&self, jail: &str, now: Instant) -> Vec<(IpNet, Option<Duration>)> {
        let addrs = self
            .addrs
            .get(jail)
            .into_iter()
            .flatten()
            .filter_map(|(a, u)| u.left(now).map(|l| (IpNet::from(*a), l)));
        let nets = self
            .nets
            .get(jail)
            .into_iter()
            .flatten()
            .filter_map(|(n, u)| u.left(now).map(|l| (*n, l)));
        let mut out: Vec<(IpNet, Option<Duration>)> = addrs.chain(nets).collect();
        out.sort();
        out
    }

    /// Time left on an address's ban (Duration::MAX: permanent; None: not banned).
    pub fn remaining(&self, jail: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        match self.addrs.get(jail)?.get(&addr.to_canonical())?.left(now)? {
            None => Some(Duration::MAX),
            Some(d) => Some(d),
        }
    }

    /// Forgets every ban, keeping the jails (`BanRecord::default()` forgets both).
    pub fn clear(&mut self) {
        self.addrs.values_mut().for_each(AddrMap::clear);
        self.nets.values_mut().for_each(AddrMap::clear);
    }
}

/// A /32 or /128: one address, kept in the address sets.
pub fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}
