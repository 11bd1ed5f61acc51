//! Several fail2ban filters over one stream of lines, in one pass.
//!
//! Filters with the same `datepattern` read each line's date alike (their
//! detectors see the same lines, so they stay in step): it is read once for
//! all of them. The text every admitted line contains (see
//! [`LineGate::keys`](super::gate::LineGate)) of all of them is searched
//! for in one scan of the whole line, before its date is read (the
//! dearest step); a line without any of it goes to none of them. Each
//! filter runs as fail2ban runs in operation: the first failregex that
//! matches decides the line. What each filter finds is what it finds fed
//! alone, line by line ([`Fail2banFilter::process`]), but for the date an
//! undated line borrows from the line before it: from the last line that
//! got past the keys here.

use std::time::SystemTime;

use regex::Regex;

use super::dates::LineDates;
use super::filter::{Fail2banFilter, Mode, Placed};
use super::matched::Fail2banMatch;

/// One search over any number of lines for the keys of all `filters` (see
/// [`Fail2banFilter::key_search`]): a line without any is nothing to any
/// of them, fed alone or together. None when one of them must see every
/// line.
pub fn key_search<'a>(
    filters: impl IntoIterator<Item = &'a Fail2banFilter>,
) -> Option<regex::bytes::Regex> {
    let mut keys: Vec<String> = Vec::new();
    for f in filters {
        f.key_search()?;
        keys.extend(f.gate_keys()?);
    }
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return None;
    }
    let alternation: Vec<String> = keys.iter().map(|k| regex::escape(k)).collect();
    regex::bytes::Regex::new(&alternation.join("|")).ok()
}

pub struct Fail2banFilters<K> {
    groups: Vec<Group<K>>,
}

struct Group<K> {
    datepattern: Option<String>,
    dates: LineDates,
    last_date: Option<SystemTime>,
    members: Vec<(K, Fail2banFilter)>,
    /// The members that see every line (no keys).
    always: Vec<usize>,
    /// The other members' keys in one search; None when there is none.
    keys: Option<Regex>,
}

impl<K: Copy> Fail2banFilters<K> {
    /// `filters` each with the key its failures are reported with.
    pub fn new(filters: Vec<(K, Fail2banFilter)>) -> Fail2banFilters<K> {
        let mut groups: Vec<Group<K>> = Vec::new();
        for (key, filter) in filters {
            let pattern = filter.datepattern().map(str::to_string);
            // A zone of its own: dates read apart.
            let joins = |g: &Group<K>| {
                !filter.zoned() && g.datepattern == pattern && !g.members[0].1.zoned()
            };
            match groups.iter_mut().find(|g| joins(g)) {
                Some(g) => g.members.push((key, filter)),
                None => groups.push(Group {
                    datepattern: pattern,
                    dates: filter.line_dates(),
                    last_date: None,
                    members: vec![(key, filter)],
                    always: Vec::new(),
                    keys: None,
                }),
            }
        }
        for g in &mut groups {
            let mut keys: Vec<String> = Vec::new();
            for (i, (_, f)) in g.members.iter().enumerate() {
                match f.gate_keys() {
                    Some(k) => keys.extend(k),
                    None => g.always.push(i),
                }
            }
            keys.sort();
            keys.dedup();
            if !keys.is_empty() {
                let alternation: Vec<String> = keys.iter().map(|k| regex::escape(k)).collect();
                // Escaped literals compile; should they not, every member
                // sees every line.
                match Regex::new(&alternation.join("|")) {
                    Ok(re) => g.keys = Some(re),
                    Err(_) => g.always = (0..g.members.len()).collect(),
                }
            }
        }
        Fail2banFilters { groups }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Feeds `line` to every filter: `hit(key, failure)` for the first
    /// failure each finds (what [`Fail2banFilter::process`] returns), in
    /// the order the filters were given within a date pattern.
    pub fn scan(&mut self, line: &str, now: SystemTime, mut hit: impl FnMut(K, Fail2banMatch)) {
        self.scan_with_clock(line, || now, |key, m, _| hit(key, m));
    }

    /// [`Fail2banFilters::scan`] asking `clock` for the time only when a
    /// line gets past some filter's keys (most lines do not), and passing
    /// that time on with each failure.
    pub fn scan_with_clock(
        &mut self,
        line: &str,
        mut clock: impl FnMut() -> SystemTime,
        mut hit: impl FnMut(K, Fail2banMatch, SystemTime),
    ) {
        let mut read = None;
        for g in &mut self.groups {
            // The keys are looked for in the whole line, before its date is
            // read: the text without the date is a part of it, so a line
            // without any key has none once its date is cut either (but for
            // a key that would only form across a date cut out of the middle
            // of a line). Such a line is nothing to any member, and reading
            // its date, the dearest step, is saved.
            let keyed = g.keys.as_ref().is_some_and(|k| k.is_match(line));
            if !keyed && g.always.is_empty() {
                continue;
            }
            let now = *read.get_or_insert_with(&mut clock);
            let found = g.dates.find(line, now);
            let placed = Placed::new(line, found, &mut g.last_date, now);
            let text = placed.text();
            for (i, (key, f)) in g.members.iter_mut().enumerate() {
                // `judge` asks the member's own gate of the text.
                if !(keyed || g.always.contains(&i)) {
                    continue;
                }
                if let Some(m) = f.judge(&placed, &text, now, Mode::First).into_iter().next() {
                    hit(*key, m, now);
                }
            }
        }
    }
}
