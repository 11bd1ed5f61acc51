//! The nft backend: bans as elements with timeouts in kernel sets, over
//! netlink, with no process forked.
//!
//! Files: `wire` encodes and decodes nfnetlink messages (sets, elements,
//! dumps), `ruleset` builds the table, chain and rules with rustables,
//! `netlink` owns the socket, `watch` notices changes by others, `listing`
//! reads our sets back and tells our elements from foreign ones. This file
//! keeps the record of bans (a [`BanRecord`]) and decides what each order
//! needs.
//!
//! Invariant: the record and the kernel agree. The record changes only after
//! the kernel accepted the transaction; an extension is a delete and an add in
//! one transaction (portable to 6.1, where re-adding does not update a
//! timeout), so the address is never unbanned in between.

mod listing;
pub(crate) mod netlink;
mod permanent;
mod prefix;
mod ruleset;
pub(crate) mod watch;
pub mod wire;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::record::{BanRecord, Until};
use super::{Applied, Backend, EnforceError, InKernel, Restore};
use crate::message::BanOrder;
use crate::rules::JailRules;
use ipnet::IpNet;
use netlink::{Netlink, Refused, MAX_TRANSACTION};
use watch::WatchPause;
use wire::{net_set_name, set_name};

/// How long after our record says a ban expired the kernel may still hold the
/// element before its garbage collector runs; such an element must be deleted
/// before it is added again, or the add would be a silent no-op.
const GC_GRACE: Duration = Duration::from_secs(60);
/// Most dumps of one set at start before its union is taken as it is.
const DUMP_TRIES: usize = 5;
/// Orders per transaction: about 40 bytes each stays under [`MAX_TRANSACTION`].
const ORDERS_PER_TRANSACTION: usize = MAX_TRANSACTION / 64;
/// Bans in one call from which the watch is paused (see [`WatchPause`]):
/// below that, the two setsockopts and two GETGEN round trips cost more than
/// the notifications they spare.
const PAUSE_WATCH_AT: usize = 128;

pub struct NftBackend {
    table: String,
    nl: Netlink,
    /// What our sets hold: addresses (the `-v4`/`-v6` sets) and prefixes
    /// (the `-net4`/`-net6` sets), with when each ban ends.
    bans: BanRecord,
    /// Per jail: elements someone else added to our sets while we ran (see
    /// `listing`), addresses as /32 or /128.
    foreign: crate::AddrMap<String, crate::AddrMap<IpNet, Until>>,
    /// Set once [`Backend::watch_for_tampering`] started the watcher.
    pause: Option<WatchPause>,
    /// While the watch is paused: the ruleset generation then, and our
    /// commits then.
    paused: Option<(u32, u64)>,
    /// Transactions the kernel committed for us.
    commits: u64,
    /// Someone else committed while the watch was paused.
    changed_by_others: bool,
}

/// What one order needs from the kernel, judged from the ban record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementChange {
    Add,
    /// Delete then add in the same transaction.
    Replace,
    Nothing,
}

impl NftBackend {
    pub fn open(table: &str) -> Result<Self, EnforceError> {
        let nl = Netlink::open().map_err(|e| kernel("opening the nfnetlink socket", e))?;
        Ok(NftBackend {
            table: table.to_string(),
            nl,
            bans: BanRecord::default(),
            foreign: crate::AddrMap::default(),
            pause: None,
            paused: None,
            commits: 0,
            changed_by_others: false,
        })
    }

    /// Sends a transaction; a refusal becomes an error naming the message.
    fn commit(
        &mut self,
        body: &[u8],
        describe: &dyn Fn(u32) -> String,
    ) -> Result<(), EnforceError> {
        let refused = self
            .nl
            .transact(body)
            .map_err(|e| kernel("sending a transaction", e))?;
        match refused.first() {
            None => {
                self.commits += 1;
                Ok(())
            }
            Some(Refused { seq, errno }) => Err(kernel(
                &format!(
                    "{} (transaction of {} bytes aborted, nothing applied)",
                    describe(*seq),
                    body.len()
                ),
                io::Error::from_raw_os_error(*errno),
            )),
        }
    }

    fn existing_sets(&mut self) -> Result<Vec<String>, EnforceError> {
        let table = self.table.clone();
        let bodies = self
            .nl
            .dump(|w| w.get_sets(&table))
            .map_err(|e| kernel("listing our sets", e))?;
        Ok(bodies
            .iter()
            .filter_map(|b| wire::parse_set_name(b))
            .collect())
    }

    /// Every element of a set. A dump walks the kernel's hash table again
    /// for each datagram, skipping what it sent before; a resize between
    /// two (right after a bulk insert) reorders the table, so the dump
    /// misses some elements without saying so, and sends as many others
    /// twice. A dump that repeats none missed none: it is taken at once
    /// (a second dump of a large set would double the time to start over
    /// it). One that repeats some is dumped again until a dump repeats
    /// none and holds all the others saw, and the union is taken.
    fn load_elements(&mut self, set: &str) -> Result<Vec<wire::Element>, EnforceError> {
        let table = self.table.clone();
        let mut seen: HashMap<(IpAddr, bool), wire::Element> = HashMap::new();
        for _ in 0..DUMP_TRIES {
            let bodies = self
                .nl
                .dump(|w| w.get_elements(&table, set))
                .map_err(|e| kernel(&format!("listing the elements of {set}"), e))?;
            let elems: Vec<wire::Element> = bodies
                .iter()
                .flat_map(|b| wire::parse_elements(b))
                .collect();
            let n = elems.len();
            for e in elems {
                seen.insert((e.addr, e.interval_end), e);
            }
            if seen.len() == n {
                break;
            }
        }
        Ok(seen.into_values().collect())
    }

    /// What an order of `jail` needs, judged from these maps of the jail
    /// (its bans, the foreign elements of its sets): a flood's orders share
    /// one jail, so they are looked up once per run of orders.
    fn plan(
        bans: Option<&crate::AddrMap<IpAddr, Until>>,
        foreign: Option<&crate::AddrMap<IpNet, Until>>,
        addr: IpAddr,
        bantime: Duration,
        now: Instant,
    ) -> ElementChange {
        match bans.and_then(|bans| bans.get(&addr)) {
            None if foreign.is_some_and(|f| f.contains_key(&IpNet::from(addr))) => {
                ElementChange::Replace
            }
            None => ElementChange::Add,
            Some(Until::Never) => ElementChange::Nothing,
            Some(Until::At(t)) if *t > now => {
                if bantime > *t - now {
                    ElementChange::Replace
                } else {
                    ElementChange::Nothing
                }
            }
            Some(Until::At(t)) if now - *t < GC_GRACE => ElementChange::Replace,
            Some(Until::At(_)) => ElementChange::Add,
        }
    }

    /// Applies decided orders, a transaction per chunk, and records them.
    /// A chunk the kernel refuses is recorded not at all (its transaction
    /// was aborted whole), so the enforcer can split a refused batch and
    /// send its parts again against a record that still matches the kernel.
    fn apply_all(
        &mut self,
        todo: &[(&str, IpAddr, Duration, ElementChange)],
        now: Instant,
    ) -> Result<(), EnforceError> {
        for chunk in todo.chunks(ORDERS_PER_TRANSACTION) {
            self.apply(chunk)?;
            // A flood's orders share one jail: its maps are looked up once
            // per run of orders, not once per order.
            for run in chunk.chunk_by(|a, b| a.0 == b.0) {
                let jail = run[0].0;
                if let Some(foreign) = self.foreign.get_mut(jail).filter(|f| !f.is_empty()) {
                    for (_, addr, ..) in run {
                        foreign.remove(&IpNet::from(*addr));
                    }
                }
                if let Some(bans) = self.bans.addrs_mut(jail) {
                    bans.reserve(run.len());
                    for (_, addr, bantime, _) in run {
                        // The kernel started its clock after `now`: our record may
                        // end a few ms early, never late (GC_GRACE covers the gap).
                        bans.insert(*addr, Until::At(now + *bantime));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies one chunk of decided orders in one transaction.
    fn apply(
        &mut self,
        chunk: &[(&str, IpAddr, Duration, ElementChange)],
    ) -> Result<(), EnforceError> {
        // Per set: deletes first, then adds (a replace is both). Grouped by
        // jail and family, so a flood names each set once, not once a ban.
        type Elems = Vec<(IpAddr, Option<Duration>)>;
        type Groups<'a> = Vec<((&'a str, bool), Elems)>;
        fn group<'a>(groups: &mut Groups<'a>, jail: &'a str, elem: (IpAddr, Option<Duration>)) {
            let key = (jail, elem.0.is_ipv6());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, elems)) => elems.push(elem),
                None => groups.push((key, vec![elem])),
            }
        }
        let mut del_groups: Groups = Vec::new();
        let mut add_groups: Groups = Vec::new();
        for (jail, addr, bantime, plan) in chunk {
            if *plan == ElementChange::Replace {
                group(&mut del_groups, jail, (*addr, None));
            }
            group(&mut add_groups, jail, (*addr, Some(*bantime)));
        }
        let named = |groups: Groups| -> Vec<(String, Elems)> {
            groups
                .into_iter()
                .filter_map(|((jail, _), elems)| Some((set_name(jail, elems.first()?.0), elems)))
                .collect()
        };
        let (dels, adds) = (named(del_groups), named(add_groups));
        let mut w = self.nl.writer();
        let mut del_msgs: Vec<(u32, String)> = Vec::new();
        let mut what: Vec<(u32, String)> = Vec::new();
        for (set, elems) in &dels {
            for seq in w.elements(&self.table, set, elems, false) {
                del_msgs.push((seq, set.clone()));
                what.push((seq, format!("delete from {set}")));
            }
        }
        for (set, elems) in &adds {
            for seq in w.elements(&self.table, set, elems, true) {
                what.push((seq, format!("add to {set}")));
            }
        }
        // The transport renumbers from the same counter, shifted by its batch-begin message.
        let first = self.nl.next_seq;
        let describe = move |seq: u32| {
            what.iter().find(|(s, _)| *s + 1 == seq).map_or_else(
                || format!("message {}", seq.wrapping_sub(first)),
                |(_, d)| d.clone(),
            )
        };
        let body = w.buf;
        match self.commit(&body, &describe) {
            Err(e) if e.is_missing() && !dels.is_empty() => {
                // A delete hit an element no longer in the kernel: redo the
                // replaces one by one (delete+add, or add alone), saying
                // which element was gone and why it may have been.
                debug!("a ban to replace was no longer in the kernel; retrying one by one");
                for (jail, addr, bantime, plan) in chunk {
                    let set = set_name(jail, *addr);
                    let mut w = self.nl.writer();
                    if *plan == ElementChange::Replace {
                        w.elements(&self.table, &set, &[(*addr, None)], false);
                    }
                    w.elements(&self.table, &set, &[(*addr, Some(*bantime))], true);
                    let msg = format!("ban {addr} in {set}");
                    match self.commit(&w.buf, &|_| msg.clone()) {
                        Err(e) if e.is_missing() => {
                            self.say_why_gone(jail, *addr, &set);
                            let mut w = self.nl.writer();
                            w.elements(&self.table, &set, &[(*addr, Some(*bantime))], true);
                            self.commit(&w.buf, &|_| msg.clone())?;
                        }
                        other => other?,
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// Sends [`Backend::restore`]'s elements, per set: timed ones with
    /// their timeout and time left, permanent ones without.
    fn restore_sets(
        &mut self,
        timed: &HashMap<String, Vec<(IpNet, Duration, Duration)>>,
        forever: &HashMap<String, Vec<IpNet>>,
    ) -> Result<(), EnforceError> {
        // One transaction per set chunk keeps each under MAX_TRANSACTION.
        for (set, elems) in timed {
            for chunk in elems.chunks(ORDERS_PER_TRANSACTION / 2) {
                let mut w = self.nl.writer();
                w.restore(&self.table, set, chunk);
                let msg = format!("restore {} bans into {set}", chunk.len());
                self.commit(&w.buf, &|_| msg.clone())?;
            }
        }
        for (set, nets) in forever {
            for chunk in nets.chunks(permanent::PER_TRANSACTION) {
                self.add_forever(set, chunk)?;
            }
        }
        Ok(())
    }
}

impl NftBackend {
    /// An element to replace was not in the kernel. Our record tells the
    /// two causes apart: a ban whose time was up was collected by the
    /// kernel (expected, quiet); one with time left was removed by someone
    /// else (`nft delete element`, `nft flush set`), which an admin should
    /// hear about, since that ban was lifted behind the daemon's back.
    fn say_why_gone(&self, jail: &str, addr: IpAddr, set: &str) {
        let now = Instant::now();
        match self.bans.addrs(jail).and_then(|b| b.get(&addr)) {
            Some(Until::At(t)) if *t <= now => {
                debug!(%addr, set, "its expired ban was already collected by the kernel: adding it again");
            }
            _ => warn!(
                %addr,
                set,
                "ban of {addr} was no longer in set {set}: removed by someone else \
                 (nft delete element? nft flush set?), not by its timeout; adding it again"
            ),
        }
    }
}

impl Backend for NftBackend {
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
        let existing = self.existing_sets()?;
        let wanted: Vec<String> = jails
            .iter()
            .flat_map(|j| ["v4", "v6", "net4", "net6"].map(|k| format!("{}-{k}", j.name)))
            .collect();
        let mut body = ruleset::table_message(&self.table);
        let mut w = self.nl.writer();
        for (i, name) in wanted.iter().enumerate() {
            let v6 = name.ends_with('6');
            let interval = name.ends_with("-net4") || name.ends_with("-net6");
            w.new_set(&self.table, name, v6, interval, i as u32 + 1);
        }
        body.extend_from_slice(&w.buf);
        let table = self.table.clone();
        let chains = self
            .nl
            .dump(|w| ruleset::get_chains(w, &table))
            .map_err(|e| kernel("listing our chains", e))?;
        let stale_chains = ruleset::stale_chains(&chains, jails);
        let rules = ruleset::chain_messages(&self.table, jails, &stale_chains)
            .map_err(|e| EnforceError::Netlink(e.to_string()))?;
        body.extend_from_slice(&rules);
        let stale: Vec<&String> = existing.iter().filter(|s| !wanted.contains(s)).collect();
        let mut w = wire::Writer::default();
        for name in &stale {
            w.del_set(&self.table, name);
        }
        body.extend_from_slice(&w.buf);
        self.commit(&body, &|_| format!("reconciling table inet {table}"))?;
        if !stale.is_empty() || !stale_chains.is_empty() {
            info!(sets = ?stale, chains = ?stale_chains, "removed the sets and chains of jails no longer configured");
        }

        // Load what the kernel holds, so re-bans and remaining() are right
        // after a restart, and a heal knows what is missing.
        let first_sight: Vec<bool> = jails
            .iter()
            .map(|j| self.bans.known(&j.name).is_err())
            .collect();
        self.bans.keep_jails(jails.iter().map(|j| j.name.as_str()));
        self.foreign
            .retain(|name, _| jails.iter().any(|j| j.name == *name));
        for (jail, adopt) in jails.iter().zip(first_sight) {
            self.load_jail(&jail.name, adopt)?;
        }
        Ok(())
    }

    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
        // A flood's orders share one jail: each jail is checked once per run.
        let mut checked: Option<&Arc<str>> = None;
        for o in orders {
            if checked.is_some_and(|c| Arc::ptr_eq(c, &o.jail)) {
                continue;
            }
            if self.bans.known(&o.jail).is_err() {
                return Err(EnforceError::UnknownJail(o.jail.to_string()));
            }
            checked = Some(&o.jail);
        }
        // Prefixes first, each in its own transaction (they are few): a
        // refusal before anything was applied fails the call whole, so the
        // enforcer can split the batch against a record that still matches
        // the kernel.
        let mut prefixes = Vec::new();
        let mut sent = false;
        for o in orders.iter().filter(|o| !o.is_host()) {
            prefixes.push(match self.ban_prefix(&o.jail, o.target, o.bantime, false) {
                Ok(a) => {
                    sent |= a != Applied::Unchanged;
                    a
                }
                Err(e) if !sent => return Err(e),
                Err(e) => {
                    warn!(jail = %o.jail, prefix = %o.target, "prefix ban not applied: {e}");
                    Applied::Unchanged
                }
            });
        }
        let mut prefixes = prefixes.into_iter();
        let mut outcomes = Vec::with_capacity(orders.len());
        let now = Instant::now();
        // Jails by reference, not by a count on the name: the tracker's
        // thread counts on the same names as it decides more bans.
        let mut todo: Vec<(&str, IpAddr, Duration, ElementChange)> =
            Vec::with_capacity(orders.len());
        // Decided within this call, so a duplicate sees the first one's effect.
        let mut pending: crate::AddrMap<(&str, IpAddr), Duration> = crate::AddrMap::default();
        let mut maps = None;
        for o in orders {
            if !o.is_host() {
                outcomes.push(prefixes.next().unwrap_or(Applied::Unchanged));
                continue;
            }
            let addr = o.target.addr().to_canonical();
            let key = (&*o.jail, addr);
            if let Some(&earlier) = pending.get(&key) {
                if o.bantime > earlier {
                    if let Some(t) = todo
                        .iter_mut()
                        .rev()
                        .find(|t| t.0 == &*o.jail && t.1 == addr)
                    {
                        t.2 = o.bantime;
                    }
                    pending.insert(key, o.bantime);
                    outcomes.push(Applied::Extended);
                } else {
                    outcomes.push(Applied::Unchanged);
                }
                continue;
            }
            let (bans, foreign) = match maps {
                Some((jail, bans, foreign)) if Arc::ptr_eq(jail, &o.jail) => (bans, foreign),
                _ => {
                    let (bans, foreign) = (self.bans.addrs(&o.jail), self.foreign.get(&*o.jail));
                    maps = Some((&o.jail, bans, foreign));
                    (bans, foreign)
                }
            };
            let plan = Self::plan(bans, foreign, addr, o.bantime, now);
            outcomes.push(match plan {
                ElementChange::Add => Applied::Added,
                ElementChange::Replace if matches!(self.remaining(&o.jail, addr), Some(d) if !d.is_zero()) => {
                    Applied::Extended
                }
                ElementChange::Replace => Applied::Added,
                ElementChange::Nothing => Applied::Unchanged,
            });
            if plan != ElementChange::Nothing {
                pending.insert(key, o.bantime);
                todo.push((&o.jail, addr, o.bantime, plan));
            }
        }
        // Only a span this call started is ended here.
        let paused = todo.len() >= PAUSE_WATCH_AT && self.paused.is_none() && self.pause_watch();
        let applied = self.apply_all(&todo, now);
        if paused {
            self.resume_watch();
        }
        applied?;
        Ok(outcomes)
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        let addr = addr.to_canonical();
        let now = Instant::now();
        let Some(bans) = self.bans.addrs(jail) else {
            return Err(EnforceError::UnknownJail(jail.to_string()));
        };
        match bans.get(&addr) {
            // Added by hand and named in an unban: the admin's to lift.
            None if self.is_foreign(jail, addr) => self.adopted(jail, &IpNet::from(addr)),
            None => return Ok(false),
            Some(Until::At(t)) if *t <= now => {
                if let Some(b) = self.bans.addrs_mut(jail) {
                    b.remove(&addr);
                }
                return Ok(false);
            }
            Some(_) => {}
        }
        let set = set_name(jail, addr);
        let mut w = self.nl.writer();
        w.elements(&self.table, &set, &[(addr, None)], false);
        let result = self.commit(&w.buf, &|_| format!("unban {addr} from {set}"));
        if let Some(b) = self.bans.addrs_mut(jail) {
            b.remove(&addr);
        }
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_missing() => Ok(false),
            Err(e) => Err(e),
        }
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
        self.ban_prefix(jail, net, bantime, true)
    }

    fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError> {
        let net = net.trunc();
        let now = Instant::now();
        let Some(nets) = self.bans.nets_mut(jail) else {
            return Err(EnforceError::UnknownJail(jail.to_string()));
        };
        let Some(until) = nets.remove(&net) else {
            return Ok(false);
        };
        if matches!(until, Until::At(t) if t + GC_GRACE <= now) {
            return Ok(false);
        }
        let set = net_set_name(jail, &net);
        let mut w = self.nl.writer();
        w.intervals(&self.table, &set, &[(net, None)], false);
        match self.commit(&w.buf, &|_| format!("unban {net} from {set}")) {
            Ok(()) => Ok(matches!(until, Until::Never) || matches!(until, Until::At(t) if t > now)),
            Err(e) if e.is_missing() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError> {
        let now = Instant::now();
        let live = |u: &Until| match u {
            Until::Never => true,
            Until::At(t) => *t > now,
        };
        // Per set: timed elements, and permanent ones (no timeout at all).
        let mut timed: HashMap<String, Vec<(IpNet, Duration, Duration)>> = HashMap::new();
        let mut forever: HashMap<String, Vec<IpNet>> = HashMap::new();
        let mut todo: Vec<(String, IpNet, Option<Duration>)> = Vec::new();
        // Wider prefixes first: one that overlaps a prefix put back before
        // it (a narrower one the wider replaced, both still in the store)
        // is left out, as the kernel would refuse it.
        let mut bans: Vec<&Restore> = bans.iter().collect();
        bans.sort_by_key(|b| b.net.prefix_len());
        let mut index = HashMap::new();
        for b in bans {
            let net = b.net.trunc();
            let host = net.prefix_len() == net.max_prefix_len();
            let held = if host {
                let Some(r) = self.bans.addrs(&b.jail) else {
                    return Err(EnforceError::UnknownJail(b.jail.clone()));
                };
                r.get(&net.addr()).is_some_and(live)
            } else {
                let Some(r) = self.bans.nets(&b.jail) else {
                    return Err(EnforceError::UnknownJail(b.jail.clone()));
                };
                r.get(&net).is_some_and(live)
            };
            if held
                || b.remaining.is_some_and(|d| d.is_zero())
                || (!host && self.restore_overlaps(&mut index, &b.jail, &net))
            {
                continue;
            }
            let set = if host {
                set_name(&b.jail, net.addr())
            } else {
                net_set_name(&b.jail, &net)
            };
            match b.remaining {
                Some(left) => timed.entry(set).or_default().push((
                    net,
                    b.timeout.unwrap_or(left).max(left),
                    left,
                )),
                None => forever.entry(set).or_default().push(net),
            }
            todo.push((b.jail.clone(), net, b.remaining));
        }
        if todo.is_empty() {
            return Ok(0);
        }
        // A heal after a flushed set puts back many bans at once: as for
        // a large ban batch, the watch is paused rather than fed an event
        // per element (a change by others meanwhile is still noticed).
        let paused = todo.len() >= PAUSE_WATCH_AT && self.paused.is_none() && self.pause_watch();
        let sent = self.restore_sets(&timed, &forever);
        if paused {
            self.resume_watch();
        }
        sent?;
        for (jail, net, left) in &todo {
            let until = match left {
                Some(d) => Until::At(now + *d),
                None => Until::Never,
            };
            self.bans.insert(jail, *net, until);
        }
        Ok(todo.len())
    }

    fn ban_permanent(&mut self, jail: &str, nets: &[IpNet]) -> super::PermanentOutcomes {
        self.permanent(jail, nets)
    }

    fn lift_many(&mut self, jail: &str, nets: &[IpNet]) -> Result<usize, EnforceError> {
        self.lift_permanent(jail, nets)
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        let mut w = self.nl.writer();
        w.del_table(&self.table);
        let table = self.table.clone();
        match self.commit(&w.buf, &|_| format!("deleting table inet {table}")) {
            Ok(()) => {}
            Err(e) if e.is_missing() => {}
            Err(e) => return Err(e),
        }
        self.bans = BanRecord::default();
        self.foreign.clear();
        Ok(())
    }

    fn watch_for_tampering(
        &mut self,
        wake: Box<dyn Fn() -> bool + Send>,
    ) -> Result<(), EnforceError> {
        self.start_watch(wake)
    }

    fn tampered(&mut self) -> bool {
        std::mem::take(&mut self.changed_by_others)
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        self.bans.remaining(jail, addr, Instant::now())
    }

    fn in_kernel(&mut self, jail: &str) -> Result<InKernel, EnforceError> {
        self.list_kernel(jail)
    }
}

fn kernel(what: &str, source: io::Error) -> EnforceError {
    EnforceError::Kernel {
        what: what.to_string(),
        source,
    }
}
