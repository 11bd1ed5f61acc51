//! Dry-run backend: decides exactly what the nft backend would (added,
//! extended, unchanged) and keeps the same record, but touches no kernel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Applied, Backend, EnforceError, JailRules};
use crate::message::BanOrder;

#[derive(Default)]
pub struct LogBackend {
    jails: Vec<String>,
    bans: HashMap<(String, IpAddr), Instant>,
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
        if let Some(o) = orders
            .iter()
            .find(|o| !self.jails.iter().any(|j| **j == *o.jail))
        {
            return Err(EnforceError::UnknownJail(o.jail.to_string()));
        }
        Ok(orders
            .iter()
            .map(|o| {
                let until = now + o.bantime;
                match self.bans.insert((o.jail.to_string(), o.addr), until) {
                    Some(old) if old > now && old >= until => {
                        self.bans.insert((o.jail.to_string(), o.addr), old);
                        Applied::Unchanged
                    }
                    Some(old) if old > now => Applied::Extended,
                    _ => Applied::Added,
                }
            })
            .collect())
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        let now = Instant::now();
        Ok(self
            .bans
            .remove(&(jail.to_string(), addr))
            .is_some_and(|until| until > now))
    }

    fn list(&self, jail: &str) -> Vec<(IpAddr, Option<Duration>)> {
        let now = Instant::now();
        let mut out: Vec<(IpAddr, Option<Duration>)> = self
            .bans
            .iter()
            .filter(|((j, _), _)| j == jail)
            .filter_map(|((_, addr), until)| {
                until
                    .checked_duration_since(now)
                    .filter(|d| !d.is_zero())
                    .map(|d| (*addr, Some(d)))
            })
            .collect();
        out.sort();
        out
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        let until = self.bans.get(&(jail.to_string(), addr))?;
        until.checked_duration_since(Instant::now())
    }
}
