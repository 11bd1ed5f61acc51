//! Elements without timeout: blocklist entries and `ban --permanent`.
//!
//! A blocklist may hold a hundred thousand entries, so they go in a few
//! large transactions (each under [`MAX_TRANSACTION`]), not one per entry.
//! A transaction is refused whole, so what the kernel would refuse is kept
//! out before sending: a prefix inside or around another one of the same
//! interval set (EEXIST), and a delete of an element that is not there
//! (ENOENT). An element our record holds with a timeout, or that someone
//! else added, is replaced (delete and add in one transaction), since adding
//! over it would keep its timeout.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tracing::debug;

use super::netlink::MAX_TRANSACTION;
use super::wire::{net_set_name, set_name};
use super::{NftBackend, GC_GRACE, PAUSE_WATCH_AT};
use crate::enforce::record::{is_host, Until};
use crate::enforce::{Applied, EnforceError, PermanentOutcomes};

/// Entries per transaction: a prefix of IPv6 is the largest, at about 64
/// bytes with its interval end.
pub(super) const PER_TRANSACTION: usize = MAX_TRANSACTION / 80;

/// How one entry reaches the kernel.
enum Plan {
    /// Nothing there: added in bulk.
    Add,
    /// Held with a timeout, or by someone else: deleted and added again.
    Replace,
}

impl NftBackend {
    /// [`crate::enforce::Backend::ban_permanent`].
    pub(super) fn permanent(&mut self, jail: &str, nets: &[IpNet]) -> PermanentOutcomes {
        self.bans.known(jail)?;
        let now = Instant::now();
        let mut outcomes: Vec<Result<Applied, EnforceError>> = Vec::with_capacity(nets.len());
        let mut todo: Vec<(usize, IpNet, Plan)> = Vec::new();
        // With those decided within this call, so two of them never overlap.
        let mut held = self.intervals(jail, now);
        for (i, net) in nets.iter().enumerate() {
            let net = canonical(net);
            let decided = if is_host(&net) {
                self.plan_host(jail, net.addr(), now)
            } else {
                self.plan_net(&net, &held)
            };
            match decided {
                Ok(Some(plan)) => {
                    if !is_host(&net) {
                        held.insert(net, Held::New);
                    }
                    let outcome = match plan {
                        Plan::Replace if self.bans.get(jail, &net).is_some() => Applied::Extended,
                        _ => Applied::Added,
                    };
                    outcomes.push(Ok(outcome));
                    todo.push((i, net, plan));
                }
                Ok(None) => outcomes.push(Ok(Applied::Unchanged)),
                Err(e) => outcomes.push(Err(e)),
            }
        }
        let paused = todo.len() >= PAUSE_WATCH_AT && self.paused.is_none() && self.pause_watch();
        let sent = self.send_permanent(jail, &todo, &mut outcomes);
        if paused {
            self.resume_watch();
        }
        sent?;
        for (i, net, _) in &todo {
            if matches!(outcomes.get(*i), Some(Ok(_))) {
                self.adopted(jail, net);
                self.bans.insert(jail, *net, Until::Never);
            }
        }
        Ok(outcomes)
    }

    /// None: already banned for good.
    fn plan_host(
        &self,
        jail: &str,
        addr: IpAddr,
        now: Instant,
    ) -> Result<Option<Plan>, EnforceError> {
        let held = self.bans.addrs(jail).and_then(|b| b.get(&addr));
        Ok(match held {
            Some(Until::Never) => None,
            Some(Until::At(t)) if *t + GC_GRACE > now => Some(Plan::Replace),
            Some(Until::At(_)) => Some(Plan::Add),
            None if self.is_foreign(jail, addr) => Some(Plan::Replace),
            None => Some(Plan::Add),
        })
    }

    /// None: already banned for good, by this prefix or one around it.
    fn plan_net(&self, net: &IpNet, held: &Intervals) -> Result<Option<Plan>, EnforceError> {
        let Some((other, how)) = held.overlapping(net) else {
            return Ok(Some(Plan::Add));
        };
        match how {
            Held::Ours(Until::Never) | Held::New if other.contains(net) => Ok(None),
            Held::Ours(_) | Held::Foreign if other == *net => Ok(Some(Plan::Replace)),
            _ => Err(EnforceError::Overlap {
                wanted: net.to_string(),
                existing: other.to_string(),
            }),
        }
    }

    /// [`crate::enforce::Backend::restore`]'s check, one lookup each:
    /// whether prefix `net` overlaps, without being it, a prefix the jail's
    /// sets may hold or one put back before it in the same call (`index`
    /// keeps those, per jail). One that does not is taken into `index`.
    pub(super) fn restore_overlaps(
        &self,
        index: &mut HashMap<String, Intervals>,
        jail: &str,
        net: &IpNet,
    ) -> bool {
        let held = index
            .entry(jail.to_string())
            .or_insert_with(|| self.intervals(jail, Instant::now()));
        match held.overlapping(net) {
            Some((other, _)) if other != *net => {
                debug!(jail, %net, %other, "prefix not put back: it overlaps another banned prefix");
                true
            }
            _ => {
                held.insert(*net, Held::New);
                false
            }
        }
    }

    /// The prefixes a jail's interval sets hold now (ours within the
    /// kernel's grace for collecting expired ones, and foreign ones).
    fn intervals(&self, jail: &str, now: Instant) -> Intervals {
        let mut held = Intervals::default();
        for (net, until) in self.bans.nets(jail).into_iter().flatten() {
            if let Until::At(t) = until {
                if *t + GC_GRACE <= now {
                    continue;
                }
            }
            held.insert(*net, Held::Ours(*until));
        }
        for net in self.foreign.get(jail).into_iter().flatten().map(|(n, _)| n) {
            if !is_host(net) {
                held.insert(*net, Held::Foreign);
            }
        }
        held
    }

    /// Sends the planned entries: additions in bulk, per set, a few large
    /// transactions; replacements one by one. An entry the kernel refuses
    /// alone gets its error in `outcomes`; Err when our table is gone.
    fn send_permanent(
        &mut self,
        jail: &str,
        todo: &[(usize, IpNet, Plan)],
        outcomes: &mut [Result<Applied, EnforceError>],
    ) -> Result<(), EnforceError> {
        let mut bulk: HashMap<String, Vec<(usize, IpNet)>> = HashMap::new();
        for (i, net, plan) in todo {
            match plan {
                Plan::Add => bulk.entry(set_of(jail, net)).or_default().push((*i, *net)),
                Plan::Replace => {
                    if let Err(e) = self.replace_permanent(jail, net) {
                        if e.is_missing() {
                            return Err(e);
                        }
                        set_outcome(outcomes, *i, Err(e));
                    }
                }
            }
        }
        for (set, entries) in &bulk {
            for chunk in entries.chunks(PER_TRANSACTION) {
                let nets: Vec<IpNet> = chunk.iter().map(|(_, n)| *n).collect();
                match self.add_forever(set, &nets) {
                    Ok(()) => {}
                    Err(e) if e.is_missing() => return Err(e),
                    Err(e) => {
                        // Refused whole: find the entries it refuses, alone.
                        debug!(
                            set,
                            entries = chunk.len(),
                            "refused in bulk ({e}); adding one by one"
                        );
                        for (i, net) in chunk {
                            match self.add_forever(set, std::slice::from_ref(net)) {
                                Ok(()) => {}
                                Err(e) if e.is_missing() => return Err(e),
                                Err(e) => set_outcome(outcomes, *i, Err(e)),
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One transaction adding `nets` (all of `set`) without timeout.
    pub(super) fn add_forever(&mut self, set: &str, nets: &[IpNet]) -> Result<(), EnforceError> {
        let mut w = self.nl.writer();
        write(&mut w, &self.table, set, nets, true);
        let msg = format!("add {} entries without timeout to {set}", nets.len());
        self.commit(&w.buf, &|_| msg.clone())
    }

    /// A timed (or foreign) element made permanent: deleted and added in one
    /// transaction, so it is never out; added alone if the kernel already
    /// collected it.
    fn replace_permanent(&mut self, jail: &str, net: &IpNet) -> Result<(), EnforceError> {
        let set = set_of(jail, net);
        let one = std::slice::from_ref(net);
        let mut w = self.nl.writer();
        write(&mut w, &self.table, &set, one, false);
        write(&mut w, &self.table, &set, one, true);
        let msg = format!("make the ban of {net} in {set} permanent");
        match self.commit(&w.buf, &|_| msg.clone()) {
            Err(e) if e.is_missing() => self.add_forever(&set, one),
            other => other,
        }
    }

    /// [`crate::enforce::Backend::lift_many`]: in bulk, per set; a chunk
    /// refused because an element was already gone (deleted by hand) is
    /// done again one by one, skipping what is not there.
    pub(super) fn lift_permanent(
        &mut self,
        jail: &str,
        nets: &[IpNet],
    ) -> Result<usize, EnforceError> {
        self.bans.known(jail)?;
        let mut per_set: HashMap<String, Vec<IpNet>> = HashMap::new();
        for net in nets.iter().map(canonical) {
            let ours = self.bans.get(jail, &net).is_some();
            let theirs = self.foreign.get(jail).is_some_and(|f| f.contains_key(&net));
            if ours || theirs {
                per_set.entry(set_of(jail, &net)).or_default().push(net);
            }
        }
        let paused = nets.len() >= PAUSE_WATCH_AT && self.paused.is_none() && self.pause_watch();
        let lifted = self.delete_sets(jail, &per_set);
        if paused {
            self.resume_watch();
        }
        lifted
    }

    fn delete_sets(
        &mut self,
        jail: &str,
        per_set: &HashMap<String, Vec<IpNet>>,
    ) -> Result<usize, EnforceError> {
        let mut lifted = 0;
        for (set, nets) in per_set {
            for chunk in nets.chunks(PER_TRANSACTION) {
                let mut w = self.nl.writer();
                write(&mut w, &self.table, set, chunk, false);
                let msg = format!("delete {} entries from {set}", chunk.len());
                match self.commit(&w.buf, &|_| msg.clone()) {
                    Ok(()) => lifted += chunk.len(),
                    Err(e) if e.is_missing() && chunk.len() > 1 => {
                        for net in chunk {
                            let mut w = self.nl.writer();
                            write(&mut w, &self.table, set, std::slice::from_ref(net), false);
                            match self.commit(&w.buf, &|_| format!("delete {net} from {set}")) {
                                Ok(()) => lifted += 1,
                                Err(e) if e.is_missing() => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Err(e) if e.is_missing() => {}
                    Err(e) => return Err(e),
                }
                for net in chunk {
                    self.bans.remove(jail, net);
                    self.adopted(jail, net);
                }
            }
        }
        Ok(lifted)
    }
}

/// Adds (without timeout) or deletes of `nets`, all of one set, into `w`.
fn write(w: &mut super::wire::Writer, table: &str, set: &str, nets: &[IpNet], add: bool) {
    let hosts: Vec<(IpAddr, Option<Duration>)> = nets
        .iter()
        .filter(|n| is_host(n))
        .map(|n| (n.addr(), None))
        .collect();
    let prefixes: Vec<(IpNet, Option<Duration>)> = nets
        .iter()
        .filter(|n| !is_host(n))
        .map(|n| (*n, None))
        .collect();
    if !hosts.is_empty() {
        w.elements(table, set, &hosts, add);
    }
    if !prefixes.is_empty() {
        w.intervals(table, set, &prefixes, add);
    }
}

/// The set an entry goes in: an address set or a prefix set.
fn set_of(jail: &str, net: &IpNet) -> String {
    if is_host(net) {
        set_name(jail, net.addr())
    } else {
        net_set_name(jail, net)
    }
}

/// Who holds a prefix of an interval set.
#[derive(Debug, Clone, Copy)]
enum Held {
    Ours(Until),
    Foreign,
    /// Added by this call.
    New,
}

/// Prefixes of one jail's interval sets by where they start. The kernel
/// holds them side by side, never one inside another, so the only one that
/// can overlap a prefix is the last to start at or before its end: one
/// lookup per entry, where comparing with each would cost a blocklist's
/// length squared.
#[derive(Default)]
pub(super) struct Intervals(BTreeMap<(bool, u128), (u128, IpNet, Held)>);

impl Intervals {
    fn insert(&mut self, net: IpNet, held: Held) {
        let (v6, start, end) = span(&net);
        self.0.insert((v6, start), (end, net, held));
    }

    fn overlapping(&self, net: &IpNet) -> Option<(IpNet, Held)> {
        let (v6, start, end) = span(net);
        let ((family, _), (last, other, held)) = self.0.range(..=(v6, end)).next_back()?;
        (*family == v6 && *last >= start).then_some((*other, *held))
    }
}

/// A prefix's family and first and last address.
fn span(net: &IpNet) -> (bool, u128, u128) {
    match net {
        IpNet::V4(n) => (
            false,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// An IPv4-mapped IPv6 address as IPv4, a prefix without host bits.
fn canonical(net: &IpNet) -> IpNet {
    if is_host(net) {
        IpNet::from(net.addr().to_canonical())
    } else {
        net.trunc()
    }
}

fn set_outcome(
    outcomes: &mut [Result<Applied, EnforceError>],
    i: usize,
    r: Result<Applied, EnforceError>,
) {
    if let Some(slot) = outcomes.get_mut(i) {
        *slot = r;
    }
}
