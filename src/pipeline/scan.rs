//! One entry point for every filter a route runs over a line: our built-in
//! filters in the [`Matcher`]'s one pass, and fail2ban filter files as
//! fail2ban runs them, all of a route's in one more pass (see
//! [`Fail2banFilters`]). It also settles the time a failure counts from.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{debug, error, info};

use crate::config::{Fail2banSpec, Jail};
use crate::filter::fail2ban::{
    self, Fail2banError, Fail2banFilter, Fail2banFilters, FoldedJudge, KeySet,
};
use crate::filter::Filter;
use crate::matcher::Matcher;
use crate::message::{Account, JailId};
use crate::timestamp::DateDetector;

/// A line dated later than this after now is a clock or zone mismatch, not
/// the future: it counts as written now.
const FUTURE_SLACK: Duration = Duration::from_secs(60);

/// The filters of the jails that read one route, shared by its readers.
pub(super) struct JailFilters {
    matcher: Matcher,
    fail2ban: Vec<(JailId, Fail2banSpec)>,
    /// The fail2ban filters as loaded for their keys, one per entry of
    /// `fail2ban`, handed to the first reader that asks: loading parses
    /// and compiles the filter, which start and reload would otherwise
    /// do twice. Later readers (a glob's files, a reload's new stages)
    /// load their own: such a filter keeps state across lines.
    loaded: Mutex<Option<Vec<Result<Fail2banFilter, Fail2banError>>>>,
    /// The fail2ban filters' keys in one search (see
    /// [`fail2ban::key_search`]); None when one of them must see every
    /// line, or did not load.
    fail2ban_keys: Option<KeySet>,
}

impl JailFilters {
    pub(super) fn new(jails: &[(JailId, &Jail)]) -> Self {
        let fail2ban: Vec<(JailId, Fail2banSpec)> = jails
            .iter()
            .filter_map(|(id, j)| Some((*id, j.fail2ban.clone()?)))
            .collect();
        let loaded: Vec<_> = fail2ban.iter().map(|(_, spec)| spec.load()).collect();
        for ((_, spec), f) in fail2ban.iter().zip(&loaded) {
            if let Ok(f) = f {
                match f.fold() {
                    Ok(_) => {
                        info!(filter = %spec.spec, "fail2ban filter compiled into the matcher")
                    }
                    Err(why) => {
                        info!(filter = %spec.spec, "fail2ban filter runs on fail2ban's engine: {why}")
                    }
                }
            }
        }
        let fail2ban_keys = if loaded.is_empty() || loaded.iter().any(Result::is_err) {
            None
        } else {
            fail2ban::key_search(loaded.iter().filter_map(|f| f.as_ref().ok()))
        };
        JailFilters {
            matcher: Matcher::new(
                jails
                    .iter()
                    .filter(|(_, j)| j.fail2ban.is_none())
                    .map(|(id, j)| (*id, Arc::clone(&j.filter)))
                    .collect(),
            ),
            fail2ban,
            loaded: Mutex::new(Some(loaded)),
            fail2ban_keys,
        }
    }

    /// The route's fail2ban filters for a new reader, each with its jail:
    /// those loaded at [`JailFilters::new`] for the first reader, freshly
    /// loaded ones for any other. A filter that cannot be loaded is left
    /// out, and said so.
    fn fail2ban_instances(&self) -> Vec<(JailId, Fail2banFilter)> {
        let taken = self.loaded.lock().ok().and_then(|mut l| l.take());
        let loaded =
            taken.unwrap_or_else(|| self.fail2ban.iter().map(|(_, spec)| spec.load()).collect());
        self.fail2ban
            .iter()
            .zip(loaded)
            .filter_map(|((id, spec), f)| match f {
                Ok(f) => Some((*id, f)),
                Err(e) => {
                    error!(filter = %spec.spec, "fail2ban filter cannot be loaded: {e}");
                    None
                }
            })
            .collect()
    }

    /// Whether a line can hit one of these jails only when it holds one of
    /// their literals (see [`Matcher::gated_by_literals`]): every pattern
    /// of ours gated by a literal, and every fail2ban filter file by its
    /// keys. Such a filter keeps state across lines, but a line without
    /// its keys changes none of it ([`Fail2banFilters`] passes over it,
    /// its date unread), so passing over it unsplit changes nothing.
    pub(super) fn gated_by_literals(&self) -> bool {
        (self.fail2ban.is_empty() || self.fail2ban_keys.is_some())
            && self.matcher.gated_by_literals()
    }

    /// See [`Matcher::find_literal`]; the fail2ban filters' keys too.
    pub(super) fn find_literal(&self, text: &[u8], from: usize) -> Option<usize> {
        let keys = self.fail2ban_keys.as_ref().and_then(|k| k.find(text, from));
        match (self.matcher.find_literal(text, from), keys) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What one reader keeps per route between lines: the date format its lines
/// use (learnt on the first dated line) and its own instances of the
/// route's fail2ban filters (such a filter keeps state across lines).
pub(super) struct ReaderFilters {
    dates: DateDetector,
    fail2ban: Fail2banFilters<JailId>,
}

impl ReaderFilters {
    pub(super) fn new(filters: &JailFilters) -> Self {
        ReaderFilters {
            dates: DateDetector::auto(),
            fail2ban: Fail2banFilters::with_fold(filters.fail2ban_instances(), &mut fold),
        }
    }

    /// Runs every filter of `filters` over `line`, calling `hit` with each
    /// jail and address found, the time the failure counts from (the
    /// line's own, `given` by the source or read from the text, never
    /// later than now) and the account, where the filter captures one.
    ///
    /// `clock` gives now; it is asked only for lines that hit something.
    pub(super) fn scan(
        &mut self,
        filters: &JailFilters,
        line: &str,
        given: Option<SystemTime>,
        clock: &mut impl FnMut() -> SystemTime,
        mut hit: impl FnMut(JailId, IpAddr, SystemTime, Option<Account>),
    ) {
        // Most lines get past no fail2ban filter's keys: the clock is read
        // only for those that do.
        if !self.fail2ban.is_empty() {
            self.fail2ban
                .scan_with_clock(line, &mut *clock, |jail, m, now| {
                    // A host given by name is never looked up (no DNS on the
                    // ban path, whatever the filter's `usedns`): not counted.
                    let Some(addr) = m.addr else {
                        debug!(host = ?m.host, id = %m.id, "failure names no IP address: not counted");
                        return;
                    };
                    let account = m.user.as_deref().and_then(Account::new);
                    hit(
                        jail,
                        addr.to_canonical(),
                        settle(given.or(m.time), now),
                        account,
                    );
                });
        }
        let dates = &mut self.dates;
        let mut time = None;
        filters.matcher.scan_accounts(line, |jail, addr, account| {
            // Dates are read only for lines that hit, once per line.
            let time = *time.get_or_insert_with(|| {
                let now = clock();
                let found = given.or_else(|| dates.find(line, now).map(|f| f.time));
                settle(found, now)
            });
            hit(jail, addr, time, account);
        });
    }
}

/// fail2ban filter files that need nothing but what our matcher does run
/// in one, over the line without its date (see [`Fail2banFilter::fold`]).
fn fold(filters: Vec<Filter>) -> Option<Box<dyn FoldedJudge>> {
    let jails = filters.into_iter().map(Arc::new).enumerate().collect();
    Some(Box::new(Matcher::new(jails)))
}

/// The time a failure counts from: the line's own, or now for a line
/// without one or dated in the future (findtime counts from the event).
fn settle(found: Option<SystemTime>, now: SystemTime) -> SystemTime {
    match found {
        Some(t) if t <= now + FUTURE_SLACK => t.min(now),
        _ => now,
    }
}
