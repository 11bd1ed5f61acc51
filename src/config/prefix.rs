//! Bans wider than one address: a jail's `[jail.X.prefix]` (many addresses
//! of one prefix failing within findtime ban the prefix), `ban_v6_as` (one
//! IPv6 attacker banned as the prefix it most likely owns) and
//! `[daemon] never` (networks nothing bans, whatever a jail says).

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::Checker;

/// `[jail.X.prefix]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrefix {
    /// IPv4 prefix length counted together.
    pub v4: Option<Spanned<i64>>,
    /// IPv6 prefix length counted together.
    pub v6: Option<Spanned<i64>>,
    /// Distinct failing addresses of one prefix, within findtime, that ban it.
    pub maxaddrs: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<toml::Value>>,
    pub bantime: Option<Spanned<toml::Value>>,
}

/// A jail's prefix rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRule {
    pub v4: u8,
    pub v6: u8,
    /// From 2 up: one address alone is the jail's own window's business.
    pub maxaddrs: u32,
    pub findtime: Duration,
    pub bantime: Duration,
}

impl PrefixRule {
    /// The prefix `addr` is counted in.
    pub fn prefix_of(&self, addr: std::net::IpAddr) -> IpNet {
        let len = if addr.is_ipv4() { self.v4 } else { self.v6 };
        IpNet::new(addr, len).map_or_else(|_| IpNet::from(addr), |n| n.trunc())
    }
}

pub const DEFAULT_V4: u8 = 24;
pub const DEFAULT_V6: u8 = 64;
pub const DEFAULT_MAXADDRS: u32 = 5;
/// Shortest prefixes a rule may name: wider ones would ban whole providers.
const SHORTEST_V4: u8 = 8;
const SHORTEST_V6: u8 = 16;

impl Checker<'_> {
    /// `[jail.X.prefix]`; its findtime and bantime default to the jail's.
    pub(super) fn prefix_rule(
        &mut self,
        raw: Option<&Spanned<RawPrefix>>,
        key: &str,
        findtime: Duration,
        bantime: Duration,
    ) -> Option<PrefixRule> {
        let raw = raw?.get_ref();
        let key = format!("{key}.prefix");
        let v4 = self.prefix_len(raw.v4.as_ref(), &format!("{key}.v4"), SHORTEST_V4, 31);
        let v6 = self.prefix_len(raw.v6.as_ref(), &format!("{key}.v6"), SHORTEST_V6, 127);
        let maxaddrs = match raw.maxaddrs.as_ref() {
            None => DEFAULT_MAXADDRS,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(n) if (2..=65_535).contains(&n) => n,
                _ => {
                    self.problem(
                        v.span(),
                        &format!("{key}.maxaddrs"),
                        "must be a whole number from 2 to 65535 (distinct addresses of one prefix)",
                    );
                    DEFAULT_MAXADDRS
                }
            },
        };
        Some(PrefixRule {
            v4: v4.unwrap_or(DEFAULT_V4),
            v6: v6.unwrap_or(DEFAULT_V6),
            maxaddrs,
            findtime: self
                .duration(raw.findtime.as_ref(), &format!("{key}.findtime"))
                .unwrap_or(findtime),
            bantime: self
                .duration(raw.bantime.as_ref(), &format!("{key}.bantime"))
                .unwrap_or(bantime),
        })
    }

    /// A prefix length from `shortest` to `longest`.
    pub(super) fn prefix_len(
        &mut self,
        v: Option<&Spanned<i64>>,
        key: &str,
        shortest: u8,
        longest: u8,
    ) -> Option<u8> {
        let v = v?;
        match u8::try_from(*v.get_ref()) {
            Ok(n) if (shortest..=longest).contains(&n) => Some(n),
            _ => {
                self.problem(
                    v.span(),
                    key,
                    format!("must be a prefix length from {shortest} to {longest}"),
                );
                None
            }
        }
    }

    /// `ban_v6_as`: the IPv6 prefix length a single attacker is banned as.
    pub(super) fn ban_v6_as(&mut self, v: Option<&Spanned<i64>>, key: &str) -> Option<u8> {
        self.prefix_len(v, &format!("{key}.ban_v6_as"), SHORTEST_V6, 127)
    }

    /// `[daemon] never`: networks no jail bans, automatically or by hand.
    pub(super) fn never(&mut self, v: Option<&Spanned<toml::Value>>) -> Vec<IpNet> {
        let nets = self.ignoreip(v, "daemon.never");
        for net in &nets {
            if net.prefix_len() == 0 {
                if let Some(v) = v {
                    self.problem(
                        v.span(),
                        "daemon.never",
                        format!("{net} is every address: nothing could be banned"),
                    );
                }
            }
        }
        nets
    }
}
