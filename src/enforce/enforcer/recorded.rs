//! What follows a ban the kernel took: the state store, the ban log, the
//! farm and the counts hear of it. In a flood this waits while more bans
//! do ([`Unrecorded`]), so no ban waits for the record of another.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, info};

use super::{farm, show, Enforcer, Origin, MAX_BATCH};
use crate::enforce::banlog::BanLog;
use crate::enforce::Applied;
use crate::message::BanOrder;
use crate::metrics;
use crate::state::writer::StateMsg;
use crate::state::StoredBan;

/// Most orders of batches held unrecorded (see [`Unrecorded`]): a flood's
/// bans are recorded at least this often.
pub(super) const HOLD_MAX: usize = 4 * MAX_BATCH;

/// A part of a batch the kernel took (all of it, or what was left once the
/// orders it refused were split off): where in the batch, what each order
/// became, and when.
pub(super) struct Landed {
    pub(super) at: Range<usize>,
    pub(super) applied: Vec<Applied>,
    pub(super) now: SystemTime,
}

/// Batches the kernel took whose bans are not recorded yet: the state
/// store, the ban log, the farm and the counts hear of them once no more
/// bans wait (or [`HOLD_MAX`] orders are held, or anything else is asked).
/// In a flood the next batch goes to the kernel first: recording a batch
/// costs a share of what applying it does, and no ban should wait for the
/// record of another. The kernel still comes first, then the store.
#[derive(Default)]
pub(super) struct Unrecorded {
    batches: Vec<(Vec<BanOrder>, Vec<Landed>)>,
    pub(super) orders: usize,
    /// Emptied batches, to gather the next ones in.
    pub(super) spare: Vec<Vec<BanOrder>>,
}

impl Unrecorded {
    /// Holds `batch` with what landed of it; `batch` is left empty, ready
    /// for the next.
    pub(super) fn hold(&mut self, batch: &mut Vec<BanOrder>, landed: Vec<Landed>) {
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MAX_BATCH));
        self.orders += batch.len();
        self.batches.push((std::mem::replace(batch, next), landed));
    }
}

impl Enforcer {
    /// Records the bans of every held batch, oldest first.
    pub(super) fn record_held(&mut self, unrecorded: &mut Unrecorded) {
        for (mut orders, landed) in std::mem::take(&mut unrecorded.batches) {
            self.record_landed(&orders, landed);
            orders.clear();
            unrecorded.spare.push(orders);
        }
        unrecorded.orders = 0;
    }

    /// Records what landed of `orders` (see [`Enforcer::ban_batch_landed`]).
    pub(super) fn record_landed(&mut self, orders: &[BanOrder], landed: Vec<Landed>) {
        for Landed { at, applied, now } in landed {
            if let Some(orders) = orders.get(at) {
                self.recorded(orders, &applied, now, Origin::Filter);
            }
        }
    }

    /// The rest, once the kernel took `orders`: the state store, the ban
    /// log, the farm and the counts hear of what was `applied` at `now`.
    pub(super) fn recorded(
        &mut self,
        orders: &[BanOrder],
        applied: &[Applied],
        now: SystemTime,
        origin: Origin,
    ) {
        let mut stored = Vec::new();
        for (order, outcome) in orders.iter().zip(applied) {
            if *outcome == Applied::Unchanged {
                continue;
            }
            // Kept in the store's history for bantime increment after a
            // restart (the tracker counts the offences of this run).
            // (A prefix is no one address's offence.)
            let offence = *outcome == Applied::Added && order.is_host();
            if self.state.is_some() {
                stored.push((
                    StoredBan {
                        jail: Arc::clone(&order.jail),
                        net: order.target.trunc(),
                        start: now,
                        until: Some(now + order.bantime),
                        failures: order.failures,
                        line: order.line.as_deref().map(crate::state::bounded_line),
                        cause: order.cause.clone(),
                    },
                    offence,
                ));
            }
        }
        if !stored.is_empty() {
            self.record(StateMsg::Banned(stored));
        }
        let mut logged = BanLog::default();
        // Counted per run of one jail, then added up: a flood is one jail.
        let mut tally: Vec<(&Arc<str>, u64)> = Vec::new();
        for (order, outcome) in orders.iter().zip(applied) {
            let verb = match outcome {
                Applied::Added => "ban",
                Applied::Extended => "ban extended",
                Applied::Unchanged => {
                    debug!(jail = %order.jail, addr = %show(&order.target), "already banned for longer");
                    continue;
                }
            };
            match tally.last_mut() {
                Some((jail, n)) if ***jail == *order.jail => *n += 1,
                _ => tally.push((&order.jail, 1)),
            }
            match origin {
                Origin::Manual => {
                    let target = show(&order.target);
                    let prefix = !order.is_host();
                    crate::enforce::banlog::manual_ban(
                        verb,
                        &order.jail,
                        &target,
                        prefix,
                        order.bantime,
                    );
                }
                Origin::Farm => info!(
                    "{verb}: jail={} addr={} from the farm, {}s left",
                    order.jail,
                    show(&order.target),
                    order.bantime.as_secs()
                ),
                Origin::Filter => logged.push(verb, order),
            }
        }
        logged.flush();
        self.share_bans(orders, applied, now);
        if !tally.is_empty() {
            self.changes += 1;
        }
        for (jail, n) in tally {
            let reason = match origin {
                Origin::Manual => metrics::MANUAL,
                Origin::Filter => metrics::FILTER,
                Origin::Farm => farm::FARM,
            };
            metrics::banned(jail, reason, n);
            match self.totals.get_mut(&**jail) {
                Some(total) => *total += n,
                None => {
                    self.totals.insert(jail.to_string(), n);
                }
            }
        }
    }
}
