//! Dry-run backend: decides exactly what the nft backend would (added,
//! extended, unchanged) and keeps the same record, but touches no kernel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Applied, Backend, EnforceError, Restore};
use crate::message::BanOrder;
use crate::rules::JailRules;

#[derive(Default)]
pub struct LogBackend {
    jails: Vec<String>,
    /// Addresses as /32 or /128 beside prefixes, like the listing shows them.
    bans: HashMap<(String, IpNet), Instant>,
}

impl LogBackend {
    fn known(&self, jail: &str) -> Result<(), EnforceError> {
        if self.jails.iter().any(|j| j == jail) {
            Ok(())
        } else {
            Err(EnforceError::UnknownJail(jail.to_string()))
        }
    }

    fn put(&mut self, jail: &str, net: IpNet, bantime: Duration, now: Instant) -> Applied {
        let until = now + bantime;
        match self.bans.insert((jail.to_string(), net), until) {
            Some(old) if old > now && old >= until => {
                self.bans.insert((jail.to_string(), net), old);
                Applied::Unchanged
            }
            Some(old) if old > now => Applied::Extended,
            _ => Applied::Added,
        }
    }

    fn lift(&mut self, jail: &str, net: IpNet) -> bool {
        let now = Instant::now();
        self.bans
            .remove(&(jail.to_string(), net))
            .is_some_and(|until| until > now)
    }
}

impl Backend for LogBackend {
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
        self.jails = jails.iter().map(|j| j.name.clone()).collect();
        let jails = &self.jails;
        self.bans.retain(|(j, _), _| jails.contains(j));
        Ok(())
    }

    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
        let now = Instant::now();
        for o in orders {
            self.known(&o.jail)?;
        }
        Ok(orders
            .iter()
            .map(|o| self.put(&o.jail, IpNet::from(o.addr.to_canonical()), o.bantime, now))
            .collect())
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        Ok(self.lift(jail, IpNet::from(addr.to_canonical())))
    }

    fn list(&self, jail: &str) -> Vec<(IpNet, Option<Duration>)> {
        let now = Instant::now();
        let mut out: Vec<(IpNet, Option<Duration>)> = self
            .bans
            .iter()
            .filter(|((j, _), _)| j == jail)
            .filter_map(|((_, net), until)| {
                until
                    .checked_duration_since(now)
                    .filter(|d| !d.is_zero())
                    .map(|d| (*net, Some(d)))
            })
            .collect();
        out.sort();
        out
    }

    fn ban_net(
        &mut self,
        jail: &str,
        net: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError> {
        self.known(jail)?;
        Ok(self.put(jail, net.trunc(), bantime, Instant::now()))
    }

    fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError> {
        Ok(self.lift(jail, net.trunc()))
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        self.bans.clear();
        Ok(())
    }

    fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError> {
        let now = Instant::now();
        let mut n = 0;
        for b in bans {
            self.known(&b.jail)?;
            let key = (b.jail.clone(), b.net.trunc());
            if self.bans.get(&key).is_some_and(|u| *u > now) {
                continue;
            }
            // A permanent ban is kept for a century: the dry run has no "never".
            let left = b
                .remaining
                .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
            self.bans.insert(key, now + left);
            n += 1;
        }
        Ok(n)
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        let until = self
            .bans
            .get(&(jail.to_string(), IpNet::from(addr.to_canonical())))?;
        until.checked_duration_since(Instant::now())
    }
}
