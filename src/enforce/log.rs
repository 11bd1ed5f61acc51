//! Dry-run backend: decides exactly what the nft backend would (added,
//! extended, unchanged) and keeps the same record, but touches no kernel.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::record::{BanRecord, Until};
use super::{Applied, Backend, EnforceError, Restore};
use crate::message::BanOrder;
use crate::rules::JailRules;

#[derive(Default)]
pub struct LogBackend {
    bans: BanRecord,
}

impl LogBackend {
    fn put(&mut self, jail: &str, net: IpNet, bantime: Duration, now: Instant) -> Applied {
        let until = now + bantime;
        match self.bans.insert(jail, net, Until::At(until)) {
            Some(Until::At(old)) if old > now && old >= until => {
                self.bans.insert(jail, net, Until::At(old));
                Applied::Unchanged
            }
            Some(Until::At(old)) if old > now => Applied::Extended,
            _ => Applied::Added,
        }
    }

    fn lift(&mut self, jail: &str, net: IpNet) -> bool {
        let now = Instant::now();
        self.bans
            .remove(jail, &net)
            .is_some_and(|until| match until {
                Until::At(t) => t > now,
                Until::Never => true,
            })
    }
}

impl Backend for LogBackend {
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
        self.bans.keep_jails(jails.iter().map(|j| j.name.as_str()));
        Ok(())
    }

    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
        let now = Instant::now();
        for o in orders {
            self.bans.known(&o.jail)?;
        }
        Ok(orders
            .iter()
            .map(|o| self.put(&o.jail, o.target.trunc(), o.bantime, now))
            .collect())
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        Ok(self.lift(jail, IpNet::from(addr.to_canonical())))
    }

    fn list(&self, jail: &str) -> Vec<(IpNet, Option<Duration>)> {
        self.bans.list(jail, Instant::now())
    }

    fn ban_net(
        &mut self,
        jail: &str,
        net: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError> {
        self.bans.known(jail)?;
        Ok(self.put(jail, net.trunc(), bantime, Instant::now()))
    }

    fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError> {
        Ok(self.lift(jail, net.trunc()))
    }

    fn ban_permanent(&mut self, jail: &str, nets: &[IpNet]) -> super::PermanentOutcomes {
        self.bans.known(jail)?;
        let now = Instant::now();
        Ok(nets
            .iter()
            .map(|n| {
                let net = n.trunc();
                Ok(match self.bans.insert(jail, net, Until::Never) {
                    Some(Until::Never) => Applied::Unchanged,
                    Some(Until::At(t)) if t > now => Applied::Extended,
                    _ => Applied::Added,
                })
            })
            .collect())
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        self.bans.clear();
        Ok(())
    }

    fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError> {
        let now = Instant::now();
        let mut n = 0;
        for b in bans {
            self.bans.known(&b.jail)?;
            let net = b.net.trunc();
            if matches!(self.bans.get(&b.jail, &net), Some(Until::At(t)) if t > now) {
                continue;
            }
            // A permanent ban is kept for a century: the dry run has no "never".
            let left = b
                .remaining
                .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
            self.bans.insert(&b.jail, net, Until::At(now + left));
            n += 1;
        }
        Ok(n)
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        self.bans.remaining(jail, addr, Instant::now())
    }
}
