//! The nft backend: bans as elements with timeouts in kernel sets, over
//! netlink, with no process forked.
//!
//! Files: `wire` frames netlink messages, `element` encodes sets, elements
//! and their dumps, `ruleset` builds the table, chain and rules with
//! rustables, `transaction` labels the messages of one atomic batch,
//! `socket` sends it and reads the answers, `record` keeps what we banned
//! and until when. This file decides what each order needs and ties them up.
//!
//! Invariant: the record and the kernel agree. The record changes only after
//! the kernel accepted the transaction; an extension is a delete and an add in
//! one transaction (portable to 6.1, where re-adding does not update a
//! timeout), so the address is never unbanned in between.

mod element;
mod record;
mod ruleset;
mod socket;
mod transaction;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Applied, Backend, EnforceError, JailRules};
use crate::message::BanOrder;
use element::set_name;
use record::{End, Plan, Record, FOREVER};
use socket::{NfSocket, Refusal};
use transaction::Transaction;

/// Attempts of one ban transaction: deletes refused with ENOENT are split,
/// then dropped, so at most two retries.
const BAN_ATTEMPTS: usize = 3;
/// How often the record forgets bans that surely ended.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct NftBackend {
    table: String,
    sock: NfSocket,
    record: Record,
    last_prune: Instant,
}

/// One order that needs the kernel.
struct Work {
    jail: Arc<str>,
    addr: IpAddr,
    bantime: Duration,
    plan: Plan,
}

/// Addresses deleted from one set by one message (or more, if long).
struct Deletes {
    set: String,
    addrs: Vec<IpAddr>,
}

impl NftBackend {
    /// Opens the nfnetlink socket. Nothing is sent to the kernel until
    /// [`Backend::reconcile`], which must come before any ban.
    pub fn open(table: &str) -> Result<Self, EnforceError> {
        let sock = NfSocket::open().map_err(|e| kernel("opening the nfnetlink socket", e))?;
        Ok(NftBackend {
            table: table.to_string(),
            sock,
            record: Record::default(),
            last_prune: Instant::now(),
        })
    }

    /// Sends `tx`; Ok(refusals) when the kernel refused some of it (then none
    /// of it applied).
    fn send(&mut self, tx: &Transaction) -> Result<Vec<Refusal>, EnforceError> {
        if tx.is_empty() {
            return Ok(Vec::new());
        }
        self.sock.transact(tx).map_err(|e| {
            kernel(
                &format!(
                    "a transaction of {} messages on table inet {}",
                    tx.len(),
                    self.table
                ),
                e,
            )
        })
    }

    /// Sends `tx`; any refusal is an error naming the refused message.
    fn commit(&mut self, tx: &Transaction) -> Result<(), EnforceError> {
        let refusals = self.send(tx)?;
        match refusals.first() {
            None => Ok(()),
            Some(r) => Err(refused(tx, *r, refusals.len())),
        }
    }

    fn existing_sets(&mut self) -> Result<Vec<String>, EnforceError> {
        let table = self.table.clone();
        let bodies = self
            .sock
            .dump(|w| element::get_sets(w, &table))
            .map_err(|e| kernel(&format!("listing the sets of table inet {table}"), e))?;
        Ok(bodies
            .iter()
            .filter_map(|b| element::parse_set_name(b))
            .collect())
    }

    /// The set's elements and when each ends by the kernel's clock.
    fn load_set(&mut self, set: &str) -> Result<HashMap<IpAddr, End>, EnforceError> {
        let table = self.table.clone();
        let before = Instant::now();
        let bodies = self
            .sock
            .dump(|w| element::get_elements(w, &table, set))
            .map_err(|e| kernel(&format!("listing the elements of set {set}"), e))?;
        let after = Instant::now();
        Ok(bodies
            .iter()
            .flat_map(|b| element::parse_elements(b))
            .map(|e| {
                let end = match (e.expires, e.timeout) {
                    (Some(left), _) | (None, Some(left)) => End::of(left, before, after),
                    (None, None) => End::Never,
                };
                (e.addr, end)
            })
            .collect())
    }

    /// Applies one chunk of orders in one transaction, retrying without the
    /// deletes the kernel refused with ENOENT (an element it had already
    /// expired, or one removed by hand): the add alone then does the ban.
    fn apply(&mut self, chunk: &[Work]) -> Result<(), EnforceError> {
        let mut deletes: Vec<Deletes> = Vec::new();
        let mut batched: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let mut adds: BTreeMap<String, Vec<(IpAddr, Option<Duration>)>> = BTreeMap::new();
        for w in chunk {
            let set = set_name(&w.jail, &w.addr);
            match w.plan {
                Plan::Replace => batched.entry(set.clone()).or_default().push(w.addr),
                Plan::TryReplace => deletes.push(Deletes {
                    set: set.clone(),
                    addrs: vec![w.addr],
                }),
                Plan::Add | Plan::Nothing => {}
            }
            let timeout = (w.bantime < FOREVER).then_some(w.bantime);
            adds.entry(set).or_default().push((w.addr, timeout));
        }
        deletes.extend(
            batched
                .into_iter()
                .map(|(set, addrs)| Deletes { set, addrs }),
        );

        for attempt in 1..=BAN_ATTEMPTS {
            let mut tx = Transaction::new();
            // Message indexes of each delete group, to map refusals back.
            let mut owners: Vec<std::ops::Range<usize>> = Vec::new();
            for d in &deletes {
                let label = match d.addrs.as_slice() {
                    [one] => format!("delete {one} from set {}", d.set),
                    many => format!("delete {} elements from set {}", many.len(), d.set),
                };
                owners.push(tx.push(label, |w| {
                    element::delete_elements(w, &self.table, &d.set, &d.addrs);
                }));
            }
            for (set, elems) in &adds {
                tx.push(format!("add {} elements to set {set}", elems.len()), |w| {
                    element::add_elements(w, &self.table, set, elems);
                });
            }
            let refusals = self.send(&tx)?;
            let Some(first) = refusals.first() else {
                return Ok(());
            };
            let gone: HashSet<usize> = refusals
                .iter()
                .filter(|r| r.errno == libc::ENOENT)
                .filter_map(|r| owners.iter().position(|o| o.contains(&r.index)))
                .collect();
            let only_gone = refusals
                .iter()
                .all(|r| r.errno == libc::ENOENT && owners.iter().any(|o| o.contains(&r.index)));
            if !only_gone || attempt == BAN_ATTEMPTS {
                let r = refusals
                    .iter()
                    .find(|r| {
                        r.errno != libc::ENOENT || !owners.iter().any(|o| o.contains(&r.index))
                    })
                    .unwrap_or(first);
                return Err(refused(&tx, *r, refusals.len()));
            }
            // A refused single delete is dropped; a refused list is split, so
            // the next attempt names the very elements that are gone.
            let mut next = Vec::with_capacity(deletes.len());
            for (i, d) in deletes.into_iter().enumerate() {
                if !gone.contains(&i) {
                    next.push(d);
                } else if d.addrs.len() == 1 {
                    debug!(set = %d.set, addr = %d.addrs[0], "already gone from the kernel; adding it afresh");
                } else {
                    next.extend(d.addrs.into_iter().map(|a| Deletes {
                        set: d.set.clone(),
                        addrs: vec![a],
                    }));
                }
            }
            deletes = next;
        }
        Ok(())
    }
}

impl Backend for NftBackend {
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
        let existing = self.existing_sets()?;
        let wanted: Vec<String> = jails
            .iter()
            .flat_map(|j| [format!("{}-v4", j.name), format!("{}-v6", j.name)])
            .collect();
        let stale: Vec<&String> = existing.iter().filter(|s| !wanted.contains(s)).collect();

        let mut tx = Transaction::new();
        ruleset::add_table(&mut tx, &self.table);
        for (i, name) in wanted.iter().enumerate() {
            tx.push(format!("add set {name}"), |w| {
                element::new_set(w, &self.table, name, name.ends_with("-v6"), i as u32 + 1)
            });
        }
        ruleset::replace_rules(&mut tx, &self.table, jails)
            .map_err(|e| EnforceError::Netlink(e.to_string()))?;
        // After the rules that used them are gone, in the same transaction.
        for name in &stale {
            tx.push(
                format!("delete set {name} of a jail no longer configured"),
                |w| element::del_set(w, &self.table, name),
            );
        }
        self.commit(&tx)?;
        if !stale.is_empty() {
            info!(sets = ?stale, "removed the sets of jails no longer configured");
        }

        // Load what the kernel holds, so re-bans and remaining() are right
        // after a restart.
        let mut loaded = HashMap::new();
        for jail in jails {
            let mut bans = self.load_set(&format!("{}-v4", jail.name))?;
            bans.extend(self.load_set(&format!("{}-v6", jail.name))?);
            if !bans.is_empty() {
                info!(jail = %jail.name, bans = bans.len(), "bans already in the kernel kept");
            }
            loaded.insert(jail.name.clone(), bans);
        }
        self.record.load(loaded);
        Ok(())
    }

    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
        if let Some(o) = orders.iter().find(|o| !self.record.has_jail(&o.jail)) {
            return Err(EnforceError::UnknownJail(o.jail.to_string()));
        }
        let now = Instant::now();
        if now.duration_since(self.last_prune) > PRUNE_EVERY {
            self.record.prune(now);
            self.last_prune = now;
        }
        let mut outcomes = Vec::with_capacity(orders.len());
        let mut todo: Vec<Work> = Vec::new();
        // Orders decided in this call, so a duplicate builds on the first.
        let mut pending: HashMap<(&str, IpAddr), usize> = HashMap::new();
        for o in orders {
            let addr = o.addr.to_canonical();
            if let Some(&i) = pending.get(&(&*o.jail, addr)) {
                if o.bantime > todo[i].bantime {
                    todo[i].bantime = o.bantime;
                    outcomes.push(Applied::Extended);
                } else {
                    outcomes.push(Applied::Unchanged);
                }
                continue;
            }
            let plan = record::plan(self.record.state(&o.jail, addr, now), o.bantime);
            outcomes.push(match plan {
                Plan::Add | Plan::TryReplace => Applied::Added,
                Plan::Replace => Applied::Extended,
                Plan::Nothing => Applied::Unchanged,
            });
            if plan != Plan::Nothing {
                pending.insert((&*o.jail, addr), todo.len());
                todo.push(Work {
                    jail: o.jail.clone(),
                    addr,
                    bantime: o.bantime,
                    plan,
                });
            }
        }
        for range in chunks(&todo, self.sock.max_transaction(), self.table.len()) {
            let chunk = &todo[range];
            let sent = Instant::now();
            self.apply(chunk)?;
            let acked = Instant::now();
            for w in chunk {
                self.record
                    .insert(&w.jail, w.addr, End::of(w.bantime, sent, acked));
            }
        }
        Ok(outcomes)
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        if !self.record.has_jail(jail) {
            return Err(EnforceError::UnknownJail(jail.to_string()));
        }
        let addr = addr.to_canonical();
        if self.record.state(jail, addr, Instant::now()) == record::State::Absent {
            // Never banned, or the kernel surely expired it: nothing to send.
            self.record.remove(jail, addr);
            return Ok(false);
        }
        let set = set_name(jail, &addr);
        let mut tx = Transaction::new();
        tx.push(format!("delete {addr} from set {set}"), |w| {
            element::delete_elements(w, &self.table, &set, &[addr]);
        });
        let refusals = self.send(&tx)?;
        self.record.remove(jail, addr);
        match refusals.first() {
            None => Ok(true),
            Some(r) if r.errno == libc::ENOENT => Ok(false),
            Some(r) => Err(refused(&tx, *r, refusals.len())),
        }
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        self.record
            .remaining(jail, addr.to_canonical(), Instant::now())
    }
}

/// Cuts `todo` into transactions of at most about `budget` bytes, so each
/// fits the socket's send buffer (8 MiB as root; ~200 KiB without FORCE).
fn chunks(todo: &[Work], budget: usize, table_len: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, w) in todo.iter().enumerate() {
        // Key, timeout and nests of the add and of a batched delete; a
        // TryReplace delete is a message of its own with both names.
        let mut cost = 72;
        if w.plan == Plan::TryReplace {
            cost += 48 + table_len + w.jail.len();
        }
        if bytes + cost > budget && i > start {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += cost;
    }
    if start < todo.len() {
        out.push(start..todo.len());
    }
    out
}

fn kernel(what: &str, source: io::Error) -> EnforceError {
    EnforceError::Kernel {
        what: what.to_string(),
        source,
    }
}

/// The error for a refused transaction, naming the message.
fn refused(tx: &Transaction, r: Refusal, count: usize) -> EnforceError {
    let others = match count {
        0 | 1 => String::new(),
        n => format!(", and {} other messages", n - 1),
    };
    warn!(
        message = tx.label(r.index),
        errno = r.errno,
        "the kernel refused a transaction"
    );
    kernel(
        &format!(
            "{} (message {} of {}{others}; the whole transaction was aborted, nothing applied)",
            tx.label(r.index),
            r.index + 1,
            tx.len()
        ),
        io::Error::from_raw_os_error(r.errno),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(n: usize, plan: Plan) -> Vec<Work> {
        (0..n as u32)
            .map(|i| Work {
                jail: Arc::from("sshd"),
                addr: IpAddr::from(i.to_be_bytes()),
                bantime: Duration::from_secs(60),
                plan,
            })
            .collect()
    }

    #[test]
    fn one_transaction_when_it_fits_several_when_not() {
        let todo = work(10_000, Plan::Add);
        let whole = chunks(&todo, 4 << 20, 7);
        assert_eq!((whole.len(), whole[0].clone()), (1, 0..10_000));
        let small = chunks(&todo, 200 << 10, 7);
        assert!(small.len() > 1, "{small:?}");
        assert_eq!(small.first().map(|r| r.start), Some(0));
        assert_eq!(small.last().map(|r| r.end), Some(10_000));
        assert!(small.windows(2).all(|w| w[0].end == w[1].start));
        assert!(small.iter().all(|r| r.len() * 72 <= 200 << 10));
        let tries = chunks(&work(10_000, Plan::TryReplace), 200 << 10, 7);
        assert!(tries.len() > small.len());
        assert!(chunks(&[], 1 << 20, 7).is_empty());
        // Even a budget smaller than one order sends it, alone.
        assert_eq!(chunks(&work(2, Plan::Add), 10, 7), [0..1, 1..2]);
    }
}
