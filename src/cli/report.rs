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

use nftjail::state::events::{parse_target, Kind, Seen};
use nftjail::state::{Store, StoredBan};

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
            by_len
                .entry(b.net.prefix_len())
                .or_default()
                .insert(b.net.trunc());
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

/// One address's failures over the span.
struct AddrSum {
    /// Its number, for the accounts' sets of distinct addresses.
    id: u32,
    failures: u64,
    first: SystemTime,
    last: SystemTime,
    /// Indexes into [`Tally::jails`].
    jails: Vec<u16>,
}

struct AccountSum {
    failures: u64,
    first: SystemTime,
    last: SystemTime,
    addrs: HashSet<u32>,
}

/// What one pass over the span's events adds up.
#[derive(Default)]
struct Tally {
    /// Name, failures, bans.
    jails: Vec<(String, u64, u64)>,
    addrs: HashMap<Box<str>, AddrSum>,
    accounts: HashMap<Box<str>, AccountSum>,
    bans: Vec<IpNet>,
    dropped: u64,
}

impl Tally {
    fn jail(&mut self, name: &str) -> usize {
        match self.jails.iter().position(|j| j.0 == name) {
            Some(i) => i,
            None => {
                self.jails.push((name.to_string(), 0, 0));
                self.jails.len() - 1
            }
        }
    }

    fn add(&mut self, e: &Seen<'_>) {
        match e.kind {
            Kind::Dropped => self.dropped += e.count,
            Kind::Ban => {
                let j = self.jail(e.jail);
                self.jails[j].2 += 1;
                if let Ok(net) = parse_target(e.target) {
                    self.bans.push(net);
                }
            }
            Kind::Failure => {
                let j = self.jail(e.jail);
                self.jails[j].1 += 1;
                if !self.addrs.contains_key(e.target) {
                    let id = u32::try_from(self.addrs.len()).unwrap_or(u32::MAX);
                    let sum = AddrSum {
                        id,
                        failures: 0,
                        first: e.time,
                        last: e.time,
                        jails: Vec::new(),
                    };
                    self.addrs.insert(e.target.into(), sum);
                }
                let Some(a) = self.addrs.get_mut(e.target) else {
                    return;
                };
                a.failures += 1;
                a.first = a.first.min(e.time);
                a.last = a.last.max(e.time);
                let j = u16::try_from(j).unwrap_or(u16::MAX);
                if !a.jails.contains(&j) {
                    a.jails.push(j);
                }
                let id = a.id;
                if let Some(account) = e.account {
                    let acc = self
                        .accounts
                        .entry(account.into())
                        .or_insert_with(|| AccountSum {
                            failures: 0,
                            first: e.time,
                            last: e.time,
                            addrs: HashSet::new(),
                        });
                    acc.failures += 1;
                    acc.first = acc.first.min(e.time);
                    acc.last = acc.last.max(e.time);
                    acc.addrs.insert(id);
                }
            }
        }
    }
}

pub fn build(store: &Store, opts: &Options, now: SystemTime) -> anyhow::Result<Report> {
    let from = now
        .checked_sub(opts.since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if !store.has_events()? {
        anyhow::bail!(
            "{}: no events recorded yet (the daemon records them from this version on)",
            store.path().display()
        );
    }
    let mut tally = Tally::default();
    store.scan(from, now, |e| tally.add(e))?;
    let active = Active::new(store.bans()?, now);
    let in_force = active.per_jail();
    let mut jails: Vec<JailRow> = tally
        .jails
        .iter()
        .map(|(jail, failures, bans)| JailRow {
            jail: jail.clone(),
            failures: *failures,
            bans: *bans,
            banned_now: in_force.get(jail.as_str()).copied().unwrap_or(0),
        })
        .collect();
    jails.sort_by(|a, b| a.jail.cmp(&b.jail));

    let mut top: Vec<(IpAddr, &AddrSum, bool)> = Vec::new();
    let mut prefixes: HashMap<IpNet, PrefixSum> = HashMap::new();
    let by_failures = |a: &(IpAddr, &AddrSum, bool), b: &(IpAddr, &AddrSum, bool)| {
        (b.1.failures, b.1.last, a.0).cmp(&(a.1.failures, a.1.last, b.0))
    };
    for (text, a) in &tally.addrs {
        let Ok(addr) = text.parse::<IpAddr>() else {
            continue;
        };
        let banned = active.covers(&IpNet::from(addr));
        let p = prefixes.entry(prefix_of(addr)).or_default();
        p.addresses += 1;
        p.failures += a.failures;
        p.first = Some(p.first.map_or(a.first, |f| f.min(a.first)));
        p.last = Some(p.last.map_or(a.last, |l| l.max(a.last)));
        p.banned_addresses += u64::from(banned);
        top.push((addr, a, banned));
        if top.len() > opts.top.max(1) * 4 {
            top.sort_by(by_failures);
            top.truncate(opts.top);
        }
    }
    top.sort_by(by_failures);
    top.truncate(opts.top);
    let addresses = top
        .into_iter()
        .map(|(addr, a, banned)| AddrRow {
            address: addr,
            failures: a.failures,
            first_seen: rfc3339(a.first),
            last_seen: rfc3339(a.last),
            jails: a
                .jails
                .iter()
                .filter_map(|&j| tally.jails.get(usize::from(j)).map(|j| j.0.clone()))
                .collect(),
            banned,
            bans: tally.bans.iter().filter(|n| n.contains(&addr)).count() as u64,
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

    let mut accounts: Vec<(&str, &AccountSum)> =
        tally.accounts.iter().map(|(k, v)| (&**k, v)).collect();
    accounts.sort_by(|(na, a), (nb, b)| {
        (b.addrs.len(), b.failures, na).cmp(&(a.addrs.len(), a.failures, nb))
    });
    accounts.truncate(opts.top);
    let accounts = accounts
        .into_iter()
        .map(|(name, a)| AccountRow {
            account: name.to_string(),
            addresses: a.addrs.len() as u64,
            failures: a.failures,
            first_seen: rfc3339(a.first),
            last_seen: rfc3339(a.last),
        })
        .collect();

    Ok(Report {
        since: rfc3339(from),
        until: rfc3339(now),
        dropped: tally.dropped,
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
        let _ = writeln!(
            o,
            "  {:<24} {:>9} {:>6} {:>11}",
            "jail", "failures", "bans", "banned now"
        );
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
