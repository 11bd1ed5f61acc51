//! `nftjail report`: the page an admin reads in the morning, from the
//! state store's events, read-only (the daemon may run or not).
//!
//! Per jail, failures and bans; the addresses that failed most; the
//! prefixes (/24, /64) their failures add up to, by how many distinct
//! addresses failed in each, since a botnet that stays under maxretry from
//! each of its addresses shows only there; the accounts most addresses
//! failed against. `--json` prints the same as one object for scripts.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ipnet::IpNet;
use serde::Serialize;

use nftjail::state::events::{AccountCount, AddrCount};
use nftjail::state::{StoredBan, Store};

/// Prefix lengths failures are added up by: what one network owner
/// usually holds of each family.
pub const V4_PREFIX: u8 = 24;
pub const V6_PREFIX: u8 = 64;

pub struct Options {
    pub since: Duration,
    pub top: usize,
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub since: String,
    pub until: String,
    pub dropped: u64,
    pub jails: Vec<JailRow>,
    pub addresses: Vec<AddrRow>,
    pub prefixes: Vec<PrefixRow>,
    pub accounts: Vec<AccountRow>,
}

#[derive(Debug, Serialize)]
pub struct JailRow {
    pub jail: String,
    pub failures: u64,
    pub bans: u64,
    pub banned_now: u64,
}

#[derive(Debug, Serialize)]
pub struct AddrRow {
    pub address: IpAddr,
    pub failures: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub jails: Vec<String>,
    pub banned: bool,
    pub bans: u64,
}

#[derive(Debug, Serialize)]
pub struct PrefixRow {
    pub prefix: String,
    pub addresses: u64,
    pub failures: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub banned: bool,
    pub banned_addresses: u64,
}

#[derive(Debug, Serialize)]
pub struct AccountRow {
    pub account: String,
    pub addresses: u64,
    pub failures: u64,
    pub first_seen: String,
    pub last_seen: String,
}

pub fn run(state_dir: &Path, opts: &Options) -> anyhow::Result<()> {
    let store = Store::open_read_only(state_dir)?;
    let report = build(&store, opts, SystemTime::now())?;
    let mut out = if opts.json {
        serde_json::to_string(&report)?
    } else {
        human(&report, opts.since)
    };
    out.push('\n');
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("cannot write the report")
}

/// The bans in force at one instant, indexed so that an address or a
/// prefix is looked up without going through them all.
pub struct Active {
    /// By prefix length, the banned networks of that length.
    by_len: HashMap<u8, HashSet<IpNet>>,
    pub bans: Vec<StoredBan>,
}

impl Active {
    pub fn new(bans: Vec<StoredBan>, now: SystemTime) -> Active {
        let bans: Vec<StoredBan> = bans
            .into_iter()
            .filter(|b| b.until.is_none_or(|u| u > now))
            .collect();
        let mut by_len: HashMap<u8, HashSet<IpNet>> = HashMap::new();
        for b in &bans {
            by_len.entry(b.net.prefix_len()).or_default().insert(b.net.trunc());
        }
        Active { by_len, bans }
    }

    /// Whether a ban covers the whole of `net` (an address as /32, /128).
    pub fn covers(&self, net: &IpNet) -> bool {
        self.by_len.iter().any(|(&len, set)| {
            len <= net.prefix_len()
                && IpNet::new(net.addr(), len).is_ok_and(|n| set.contains(&n.trunc()))
        })
    }

    /// Bans in force per jail.
    fn per_jail(&self) -> HashMap<&str, u64> {
        let mut n = HashMap::new();
        for b in &self.bans {
            *n.entry(&*b.jail).or_default() += 1;
        }
        n
    }
}

/// The prefix an address is counted in.
pub fn prefix_of(addr: IpAddr) -> IpNet {
    let len = if addr.is_ipv4() { V4_PREFIX } else { V6_PREFIX };
    IpNet::new(addr, len).map_or(IpNet::from(addr), |n| n.trunc())
}

#[derive(Default)]
struct PrefixSum {
    addresses: u64,
    failures: u64,
    first: Option<SystemTime>,
    last: Option<SystemTime>,
    banned_addresses: u64,
}

pub fn build(store: &Store, opts: &Options, now: SystemTime) -> anyhow::Result<Report> {
    let from = now.checked_sub(opts.since).unwrap_or(SystemTime::UNIX_EPOCH);
    if !store.has_events()? {
        anyhow::bail!(
            "{}: no events recorded yet (the daemon records them from this version on)",
            store.path().display()
        );
    }
    let active = Active::new(store.bans()?, now);
    let in_force = active.per_jail();
    let jails = store
        .jail_counts(from, now)?
        .into_iter()
        .map(|j| JailRow {
            banned_now: in_force.get(j.jail.as_str()).copied().unwrap_or(0),
            jail: j.jail,
            failures: j.failures,
            bans: j.bans,
        })
        .collect();

    let mut top: Vec<(AddrCount, bool)> = Vec::new();
    let mut prefixes: HashMap<IpNet, PrefixSum> = HashMap::new();
    let by_failures = |a: &(AddrCount, bool), b: &(AddrCount, bool)| {
        (b.0.failures, b.0.last, a.0.addr).cmp(&(a.0.failures, a.0.last, b.0.addr))
    };
    store.addr_counts(from, now, |a| {
        let banned = active.covers(&IpNet::from(a.addr));
        let p = prefixes.entry(prefix_of(a.addr)).or_default();
        p.addresses += 1;
        p.failures += a.failures;
        p.first = Some(p.first.map_or(a.first, |f| f.min(a.first)));
        p.last = Some(p.last.map_or(a.last, |l| l.max(a.last)));
        p.banned_addresses += u64::from(banned);
        top.push((a, banned));
        if top.len() > opts.top.max(1) * 4 {
            top.sort_by(by_failures);
            top.truncate(opts.top);
        }
    })?;
    top.sort_by(by_failures);
    top.truncate(opts.top);

    let ban_events = store.ban_events(None, from, now)?;
    let addresses = top
        .into_iter()
        .map(|(a, banned)| AddrRow {
            bans: ban_events
                .iter()
                .filter(|b| b.target.contains(&a.addr))
                .count() as u64,
            address: a.addr,
            failures: a.failures,
            first_seen: rfc3339(a.first),
            last_seen: rfc3339(a.last),
            jails: a.jails,
            banned,
        })
        .collect();

    let mut prefix_rows: Vec<(IpNet, PrefixSum)> = prefixes.into_iter().collect();
    prefix_rows.sort_by(|(na, a), (nb, b)| {
        (b.addresses, b.failures, b.last, na).cmp(&(a.addresses, a.failures, a.last, nb))
    });
    prefix_rows.truncate(opts.top);
    let prefixes = prefix_rows
        .into_iter()
        .map(|(net, p)| PrefixRow {
            prefix: net.to_string(),
            addresses: p.addresses,
            failures: p.failures,
            first_seen: p.first.map(rfc3339).unwrap_or_default(),
            last_seen: p.last.map(rfc3339).unwrap_or_default(),
            banned: active.covers(&net),
            banned_addresses: p.banned_addresses,
        })
        .collect();

    let accounts = store
        .account_counts(from, now, opts.top)?
        .into_iter()
        .map(|a: AccountCount| AccountRow {
            account: a.account,
            addresses: a.addrs,
            failures: a.failures,
            first_seen: rfc3339(a.first),
            last_seen: rfc3339(a.last),
        })
        .collect();

    Ok(Report {
        since: rfc3339(from),
        until: rfc3339(now),
        dropped: store.dropped(from, now)?,
        jails,
        addresses,
        prefixes,
        accounts,
    })
}

/// UTC, to the second, as scripts parse it.
pub fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.round(jiff::Unit::Second).unwrap_or(ts).to_string())
        .unwrap_or_default()
}

/// Local time, as a person reads it.
pub fn local(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| {
            let tz = jiff::tz::TimeZone::system();
            tz.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S").to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn human(r: &Report, since: Duration) -> String {
    let mut o = String::new();
    let span = nftjail::bantime::human(since);
    let _ = writeln!(
        o,
        "nftjail report: the last {span}, {} to {}",
        local(&r.since),
        local(&r.until)
    );
    if r.dropped > 0 {
        let _ = writeln!(
            o,
            "({} failures were not recorded: the state store was behind)",
            r.dropped
        );
    }
    let _ = writeln!(o, "\nJails");
    if r.jails.is_empty() {
        let _ = writeln!(o, "  no failures and no bans");
    } else {
        let _ = writeln!(o, "  {:<24} {:>9} {:>6} {:>11}", "jail", "failures", "bans", "banned now");
    }
    for j in &r.jails {
        let _ = writeln!(
            o,
            "  {:<24} {:>9} {:>6} {:>11}",
            j.jail, j.failures, j.bans, j.banned_now
        );
    }
    if !r.prefixes.is_empty() {
        let _ = writeln!(
            o,
            "\nTop prefixes (/{V4_PREFIX}, /{V6_PREFIX}) by failing addresses\n  {:<24} {:>9} {:>9}  {:<19}  {:<19}  banned",
            "prefix", "addresses", "failures", "first seen", "last seen"
        );
    }
    for p in &r.prefixes {
        let banned = if p.banned {
            "yes".to_string()
        } else if p.banned_addresses > 0 {
            format!("{} of its addresses", p.banned_addresses)
        } else {
            "no".to_string()
        };
        let _ = writeln!(
            o,
            "  {:<24} {:>9} {:>9}  {:<19}  {:<19}  {banned}",
            p.prefix,
            p.addresses,
            p.failures,
            local(&p.first_seen),
            local(&p.last_seen)
        );
    }
    if !r.addresses.is_empty() {
        let _ = writeln!(
            o,
            "\nTop addresses\n  {:<24} {:>9}  {:<19}  {:<19}  {:<6}  jails",
            "address", "failures", "first seen", "last seen", "banned"
        );
    }
    for a in &r.addresses {
        let _ = writeln!(
            o,
            "  {:<24} {:>9}  {:<19}  {:<19}  {:<6}  {}",
            a.address.to_string(),
            a.failures,
            local(&a.first_seen),
            local(&a.last_seen),
            yes(a.banned),
            a.jails.join(", ")
        );
    }
    if !r.accounts.is_empty() {
        let _ = writeln!(
            o,
            "\nTop targeted accounts\n  {:<32} {:>9} {:>9}  {:<19}  last seen",
            "account", "addresses", "failures", "first seen"
        );
    }
    for a in &r.accounts {
        let _ = writeln!(
            o,
            "  {:<32} {:>9} {:>9}  {:<19}  {}",
            a.account,
            a.addresses,
            a.failures,
            local(&a.first_seen),
            local(&a.last_seen)
        );
    }
    o.truncate(o.trim_end().len());
    o
}
