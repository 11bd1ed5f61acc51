//! `nftjail explain JAIL ADDR|NET`: why an address or a network is banned
//! (the rule that decided it, when, until when, and the log lines that
//! counted, ready to paste into an abuse report), or, if it is not, how
//! far it is from each rule. Read-only, from the state store's bans and
//! events; the config, when it can be read, gives the jail's thresholds.
//!
//! Exit status: 0 banned, 1 not banned, 2 an error.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use nftjail::bantime::{human, human_secs};
use nftjail::config::Jail;
use nftjail::message::Cause;
use nftjail::state::events::FailureEvent;
use nftjail::state::{Store, StoredBan};

use super::report::{local, prefix_of, rfc3339, Active};

/// Most failures printed; the count says how many more there were.
const MAX_SHOWN: usize = 50;
/// Most accounts of an address looked at by `explain`.
const MAX_ACCOUNTS: usize = 5;
/// How far back failures are looked for when neither `--window` nor the
/// jail's findtime says.
const DEFAULT_WINDOW: Duration = Duration::from_secs(86_400);

pub struct Query<'a> {
    pub jail: &'a str,
    pub target: &'a str,
    pub window: Option<Duration>,
    /// The jail as configured, when the config could be read.
    pub config: Option<&'a Jail>,
}

pub fn run(state_dir: &Path, q: &Query<'_>) -> ExitCode {
    match explain(state_dir, q, SystemTime::now()) {
        Ok((text, banned)) => {
            println!("{}", text.trim_end());
            ExitCode::from(if banned { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("nftjail: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_target(s: &str) -> anyhow::Result<IpNet> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr.to_canonical()));
    }
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| anyhow::anyhow!("{s:?} is neither an address nor a network (CIDR)"))
}

/// The text to print, and whether it is banned.
pub fn explain(state_dir: &Path, q: &Query<'_>, now: SystemTime) -> anyhow::Result<(String, bool)> {
    let target = parse_target(q.target)?;
    let store = Store::open_read_only(state_dir)?;
    let events = store.has_events()?;
    let active = Active::new(store.bans()?, now);
    let findtime = q.config.map(|j| j.findtime);
    let window = q.window.or(findtime).unwrap_or(DEFAULT_WINDOW);
    // The ban that covers it; the broadest first, as it is the one that
    // outlasts the others.
    let ban = active
        .bans
        .iter()
        .filter(|b| &*b.jail == q.jail && b.net.prefix_len() <= target.prefix_len())
        .filter(|b| b.net.contains(&target.addr()))
        .min_by_key(|b| b.net.prefix_len());
    let mut o = String::new();
    let Some(ban) = ban else {
        not_banned(&mut o, &store, q, target, window, now, events)?;
        return Ok((o, false));
    };
    let shown = if ban.net == target {
        show(&target)
    } else {
        format!("{} (inside {})", show(&target), ban.net)
    };
    let _ = writeln!(o, "{shown} is banned in {}", q.jail);
    let _ = writeln!(o, "  rule:    {}", rule(ban, q.config));
    let _ = writeln!(o, "  since:   {}", local(&rfc3339(ban.start)));
    let _ = match ban.until {
        None => writeln!(o, "  until:   never (permanent)"),
        Some(u) => writeln!(
            o,
            "  until:   {} (in {})",
            local(&rfc3339(u)),
            human_secs(u.duration_since(now).unwrap_or_default().as_secs())
        ),
    };
    if let Some(line) = &ban.line {
        let _ = writeln!(o, "  decided by: {line}");
    }
    if !events {
        let _ = writeln!(o, "  (no failures recorded: the store has no events yet)");
        return Ok((o, true));
    }
    // The window of the rule that decided it, unless told.
    let prefix_findtime = q.config.and_then(|j| j.prefix.as_ref()).map(|p| p.findtime);
    let window = match (&ban.cause, q.window, prefix_findtime) {
        (Cause::Prefix { .. }, None, Some(f)) => f,
        _ => window,
    };
    let from = ban
        .start
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let failures = store.failures_in(q.jail, &ban.net, from, ban.start)?;
    let _ = writeln!(
        o,
        "\nFailures from {} in the {} before the ban ({}):",
        show(&ban.net),
        human(window),
        failures.len()
    );
    lines(&mut o, &failures);
    Ok((o, true))
}

/// A host as its bare address, a prefix in CIDR form.
fn show(net: &IpNet) -> String {
    nftjail::state::events::target_text(net)
}

/// The rule that decided `ban`, in words.
fn rule(ban: &StoredBan, jail: Option<&Jail>) -> String {
    match &ban.cause {
        Cause::Window(i) => {
            let limits = match (*i, jail) {
                (0, Some(j)) => format!(" ({} failures within {})", j.maxretry, human(j.findtime)),
                _ => String::new(),
            };
            format!("window {i}{limits}: {} failures counted", ban.failures)
        }
        Cause::Prefix { addrs } => {
            let limits = jail
                .and_then(|j| j.prefix.as_ref())
                .map(|p| format!(" (at {} within {})", p.maxaddrs, human(p.findtime)))
                .unwrap_or_default();
            format!(
                "prefix {}: {addrs} distinct addresses of it were failing{limits}",
                ban.net
            )
        }
        Cause::Account(a) => format!(
            "account {a}: many addresses were failing against it, and this one failed against it too"
        ),
        Cause::Manual => "manual (nftjail ban)".to_string(),
        Cause::Blocklist => "blocklist (a line of the jail's blocklist file)".to_string(),
    }
}

fn lines(o: &mut String, failures: &[FailureEvent]) {
    let skip = failures.len().saturating_sub(MAX_SHOWN);
    if skip > 0 {
        let _ = writeln!(o, "  ({skip} earlier not shown)");
    }
    for f in &failures[skip..] {
        let account = f
            .account
            .as_deref()
            .map(|a| format!(" [{a}]"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {}  {}{account}  {}",
            local(&rfc3339(f.time)),
            f.addr,
            f.line.as_deref().unwrap_or("(line not kept)")
        );
    }
}

/// How far `target` is from each rule of the jail, over `window`.
fn not_banned(
    o: &mut String,
    store: &Store,
    q: &Query<'_>,
    target: IpNet,
    window: Duration,
    now: SystemTime,
    events: bool,
) -> anyhow::Result<()> {
    let _ = writeln!(o, "{} is not banned in {}", show(&target), q.jail);
    if !events {
        let _ = writeln!(o, "  (no failures recorded: the store has no events yet)");
        return Ok(());
    }
    let from = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let own = store.failures_in(q.jail, &target, from, now)?;
    let span = human(window);
    match q.config {
        Some(j) if target.prefix_len() == target.max_prefix_len() => {
            let recent = own
                .iter()
                .filter(|f| f.time.checked_add(j.findtime).is_some_and(|e| e > now))
                .count();
            let left = (j.maxretry as usize).saturating_sub(recent);
            let _ = writeln!(
                o,
                "  window 0: {recent} of {} failures within {}: {left} more would ban it",
                j.maxretry,
                human(j.findtime)
            );
        }
        _ => {
            let _ = writeln!(o, "  failures within {span}: {}", own.len());
        }
    }
    // The prefix its failures add up to (the jail's prefix rule's, if it
    // has one), and the accounts it tried.
    let rule = q.config.and_then(|j| j.prefix.as_ref());
    let prefix = match rule {
        _ if target.prefix_len() != target.max_prefix_len() => target,
        Some(r) => r.prefix_of(target.addr()),
        None => prefix_of(target.addr()),
    };
    let around = if prefix == target {
        own.clone()
    } else {
        let since = rule.and_then(|r| now.checked_sub(r.findtime));
        let since = since.map_or(from, |s| s.min(from));
        store.failures_in(q.jail, &prefix, since, now)?
    };
    let distinct = |since: SystemTime| {
        let mut addrs: Vec<IpAddr> = around
            .iter()
            .filter(|f| f.time >= since)
            .map(|f| f.addr)
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        addrs.len()
    };
    let _ = match rule {
        Some(r) => {
            let n = distinct(now.checked_sub(r.findtime).unwrap_or(SystemTime::UNIX_EPOCH));
            let max = r.maxaddrs as usize;
            writeln!(
                o,
                "  prefix {prefix}: {n} of {max} distinct failing addresses within {}: {} more would ban it",
                human(r.findtime),
                max.saturating_sub(n)
            )
        }
        None => writeln!(
            o,
            "  prefix {prefix}: {} distinct failing addresses, {} failures within {span} (no prefix rule)",
            distinct(from),
            around.len()
        ),
    };
    let mut accounts: Vec<&str> = own.iter().filter_map(|f| f.account.as_deref()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    // Each is a pass over the span: a few show a spray well enough.
    accounts.truncate(MAX_ACCOUNTS);
    for account in accounts {
        let mut by: Vec<IpAddr> = store
            .account_failures(q.jail, account, from, now)?
            .into_iter()
            .collect();
        by.sort_unstable();
        by.dedup();
        let _ = writeln!(
            o,
            "  account {account}: {} distinct addresses failing against it within {span}",
            by.len()
        );
    }
    if let Some(last) = store
        .ban_events(Some(q.jail), SystemTime::UNIX_EPOCH, now)?
        .into_iter()
        .rev()
        .find(|b| b.target.contains(&target.addr()))
    {
        let _ = writeln!(
            o,
            "  last banned {} ({}, {}), over since",
            local(&rfc3339(last.time)),
            last.cause,
            last.bantime.map_or_else(|| "permanent".to_string(), human)
        );
    }
    if !own.is_empty() {
        let _ = writeln!(o, "\nIts failures within {span} ({}):", own.len());
        lines(o, &own);
    }
    Ok(())
}
