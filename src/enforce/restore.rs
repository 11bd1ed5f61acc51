//! At start: make the kernel and the state store agree, losing nothing.
//!
//! The kernel keeps its sets across a daemon restart (and a `kill -9`); the
//! store keeps them across a reboot. Start takes the union: stored bans the
//! kernel lacks are put back with their remaining time, kernel bans the store
//! lacks (those applied just before a kill, before the store caught up) are
//! adopted into it. Expired ones are dropped on both sides.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tracing::info;

use super::{Backend, EnforceError, Restore};
use crate::bantime::Offences;
use crate::config::Config;
use crate::message::Cause;
use crate::rules::JailRules;
use crate::state::{Store, StoredBan};

/// A stored end and the kernel's may differ by the time a transaction took;
/// beyond this the kernel's (the one that acts) is written to the store.
const DRIFT: Duration = Duration::from_secs(2);

/// `jails`: what the backend was reconciled with, the configured jails and
/// those the config dropped whose bans the last run kept (see
/// [`gone_at_start`]); stored bans of any other jail are dropped. Returns
/// the bans now in force, for [`offences`] (read once: a start over many
/// bans would read them twice otherwise), and the kernel's bans the store
/// lacks, for the state writer to record ([`AtStart`]).
pub fn at_start(
    backend: &mut dyn Backend,
    store: &mut Store,
    config: &Config,
    jails: &[JailRules],
) -> Result<AtStart, EnforceError> {
    let now = SystemTime::now();
    store.purge(now, config.dbpurgeage)?;
    let names: Vec<String> = jails.iter().map(|j| j.name.clone()).collect();
    let dropped = store.retain_jails(&names)?;
    if dropped > 0 {
        info!(
            jails = dropped,
            "stored bans of jails no longer configured dropped"
        );
    }
    let mut stored: crate::AddrMap<(String, IpNet), StoredBan> = store
        .bans()?
        .into_iter()
        .map(|b| ((b.jail.to_string(), b.net), b))
        .collect();
    let mut kernel: crate::AddrMap<(String, IpNet), Option<Duration>> = crate::AddrMap::default();
    for jail in &names {
        for (net, left) in backend.list(jail) {
            kernel.insert((jail.clone(), net), left);
        }
    }

    let missing: Vec<Restore> = stored
        .iter()
        .filter(|(k, _)| !kernel.contains_key(*k))
        .filter_map(|((jail, net), b)| {
            let remaining = b.remaining(now);
            if remaining.is_some_and(|d| d.is_zero()) {
                return None;
            }
            let timeout = b.until.and_then(|u| u.duration_since(b.start).ok());
            Some(Restore {
                jail: jail.clone(),
                net: *net,
                timeout,
                remaining,
            })
        })
        .collect();
    let restored = backend.restore(&missing)?;
    for r in &missing {
        crate::metrics::banned(&r.jail, crate::metrics::RESTORE, 1);
    }

    let adopt: Vec<(StoredBan, bool)> = kernel
        .iter()
        .filter(|(k, left)| match stored.get(*k) {
            None => true,
            Some(b) => match (b.remaining(now), left) {
                (Some(s), Some(k)) => s.abs_diff(*k) > DRIFT,
                (None, None) => false,
                _ => true,
            },
        })
        .map(|((jail, net), left)| {
            let old = stored.get(&(jail.clone(), *net));
            (
                StoredBan {
                    jail: jail.as_str().into(),
                    net: *net,
                    start: old.map_or(now, |b| b.start),
                    until: left.map(|d| now + d),
                    failures: old.map_or(0, |b| b.failures),
                    line: old.and_then(|b| b.line.clone()),
                    // Found in the kernel without a record: put there by hand.
                    cause: old.map_or(Cause::Manual, |b| b.cause.clone()),
                },
                false,
            )
        })
        .collect();
    if restored > 0 || !adopt.is_empty() {
        info!(
            restored,
            adopted = adopt.len(),
            store = %store.path().display(),
            "kernel and state store reconciled: bans restored from the store, kernel bans recorded"
        );
    }
    for (b, _) in &adopt {
        stored.insert((b.jail.to_string(), b.net), b.clone());
    }
    Ok(AtStart {
        bans: stored.into_values().collect(),
        adopted: adopt,
    })
}

/// What [`at_start`] leaves to do.
pub struct AtStart {
    /// Every ban in force, stored or adopted.
    pub bans: Vec<StoredBan>,
    /// The kernel's bans the store lacks (or holds with another end), not
    /// yet written: the state writer records them once the daemon runs.
    /// Until then the kernel holds them, and a start after a crash adopts
    /// them again, so start need not wait for a write of every one.
    pub adopted: Vec<(StoredBan, bool)>,
}

/// Jails the config no longer names whose bans the last run kept (a
/// reload removed, renamed or disabled them, or the config was edited while
/// the daemon was stopped), with the rules the store kept for them: those
/// with a stored ban still running. The backend must hold them like the
/// configured ones, or its reconcile would delete their sets and bans, and
/// a reboot would not put them back.
pub fn gone_at_start(
    store: &Store,
    configured: &[JailRules],
) -> Result<Vec<JailRules>, EnforceError> {
    Ok(store
        .jails_holding_bans(SystemTime::now())?
        .into_iter()
        .filter(|j| !configured.iter().any(|c| c.name == j.name))
        .collect())
}

/// Earlier bans within `dbpurgeage`, for the tracker's bantime increment;
/// those still in force (`bans`, as [`at_start`] left the store) are
/// marked running (a ban decided again while one runs is not a new offence).
pub fn offences(
    store: &Store,
    config: &Config,
    bans: &[StoredBan],
) -> Result<Offences, EnforceError> {
    let now = SystemTime::now();
    let since = now
        .checked_sub(config.dbpurgeage)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // A permanent ban runs for a century, as far as counting goes.
    let forever = now + Duration::from_secs(100 * 365 * 86_400);
    let running: crate::AddrMap<(String, IpAddr), SystemTime> = bans
        .iter()
        .filter(|b| b.net.prefix_len() == b.net.max_prefix_len())
        .map(|b| {
            (
                (b.jail.to_string(), b.net.addr()),
                b.until.unwrap_or(forever),
            )
        })
        .collect();
    let mut o = Offences::new(config.dbpurgeage);
    for (addr, jail, past) in store.history(since)? {
        let until = running
            .get(&(jail.clone(), addr))
            .copied()
            .filter(|u| *u > past.time)
            .unwrap_or(past.time);
        o.record(addr, jail.into(), past.time, until);
    }
    Ok(o)
}
