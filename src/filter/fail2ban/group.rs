//! Several fail2ban filters over one stream of lines, in one pass.
//!
//! Filters with the same `datepattern` read each line's date alike (their
//! detectors see the same lines, so they stay in step): it is read once for
//! all of them. The text every admitted line contains (see
//! [`LineGate::keys`](super::gate::LineGate)) of all of them is searched
//! for in one scan of the whole line, before its date is read (the
//! dearest step), and the scan says whose keys the line holds: a line
//! goes only to the filters whose keys it holds (their gates need not
//! look for them again), and a group none of whose members it goes to
//! does not read its date. Each
//! filter runs as fail2ban runs in operation: the first failregex that
//! matches decides the line. What each filter finds is what it finds fed
//! alone, line by line ([`Fail2banFilter::process`]), but for the date an
//! undated line borrows from the line before it: from the last line that
//! got past the keys here.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::dates::LineDates;
use super::filter::{Fail2banFilter, Known, Mode, Placed, PrefixHit, PrefixKey, Shared};
use super::fold::{Fold, FoldedJudge};
use super::keys::KeySet;
use super::matched::Fail2banMatch;
use crate::filter::place_of;

/// One search over any number of lines for the keys of all `filters` (see
/// [`Fail2banFilter::key_search`]): a line without any is nothing to any
/// of them, fed alone or together. None when one of them must see every
/// line.
pub fn key_search<'a>(filters: impl IntoIterator<Item = &'a Fail2banFilter>) -> Option<KeySet> {
    let mut keys: Vec<String> = Vec::new();
    for f in filters {
        f.key_search()?;
        keys.extend(f.gate_keys()?);
    }
    keys.sort();
    keys.dedup();
    // A key that holds another is found through it: a line with the one
    // has the other.
    let held = |k: &String| keys.iter().any(|o| o != k && k.contains(o.as_str()));
    let least: Vec<String> = keys.iter().filter(|k| !held(k)).cloned().collect();
    KeySet::new(least)
}

pub struct Fail2banFilters<K> {
    groups: Vec<Group<K>>,
    /// The keys of every member of every group in one search, each
    /// with the members (numbered across groups, see [`Group::first`])
    /// whose key it is; None when no member has keys.
    keys: Option<KeyOwners>,
    /// Per member: one of its keys is in the line being scanned. Kept
    /// between lines so a line costs no allocation.
    present: Vec<bool>,
}

/// One search for the keys of many filters that says whose they are: a
/// line is searched once, not once per date group and again by each
/// member's gate, and only the members whose keys it holds are judged.
struct KeyOwners {
    keys: KeySet,
    /// Per key (as [`KeySet`] numbers it): the members it is a key of.
    owners: Vec<Vec<usize>>,
}

impl KeyOwners {
    fn new(keys: Vec<String>, owners: Vec<Vec<usize>>) -> Option<KeyOwners> {
        Some(KeyOwners {
            keys: KeySet::new(keys)?,
            owners,
        })
    }

    /// Marks in `present` the members one of whose keys `line` holds.
    fn mark(&self, line: &str, present: &mut [bool]) {
        self.keys.each(line.as_bytes(), |k| {
            for &member in &self.owners[k] {
                present[member] = true;
            }
        });
    }
}

struct Group<K> {
    datepattern: Option<String>,
    dates: LineDates,
    last_date: Option<SystemTime>,
    members: Vec<(K, Fail2banFilter)>,
    /// The number of `members[0]` across groups.
    first: usize,
    /// Per member: it sees every line (no keys).
    always: Vec<bool>,
    /// Per member: where it shares what regexes found in the line with
    /// other members of the same prefregex (see [`Shared`]); None when no
    /// other member has its prefregex.
    share: Vec<Option<Share>>,
    /// Per shared prefregex: its answer on the line being judged.
    prefix: Vec<Option<PrefixHit>>,
    /// Per failregex shared by members of one prefregex: what it made of
    /// the line being judged.
    known: Vec<Known>,
    /// The members compiled into the matcher, judged there together.
    folded: Vec<Folded>,
    /// Per member: it is in one of `folded`.
    is_folded: Vec<bool>,
}

/// Members of a group with the same prefregex (or none) that run in one
/// matcher (see [`super::fold`]), over the prefregex's content.
struct Folded {
    judge: Box<dyn FoldedJudge>,
    /// Per folded filter, as the judge numbers them: its member (the first
    /// one's prefregex cuts the content for all).
    members: Vec<usize>,
}

struct Share {
    /// Its place in [`Group::prefix`].
    prefix: usize,
    /// Per failregex: its place in [`Group::known`].
    places: Vec<usize>,
}

impl<K> Group<K> {
    /// Members of one prefregex share what it and their failregexes
    /// find in a line.
    fn share(&mut self) {
        let keys: Vec<_> = self.members.iter().map(|(_, f)| f.prefix_key()).collect();
        let mut prefixes: Vec<(Option<&str>, Option<&str>)> = Vec::new();
        let mut known: Vec<(usize, &str)> = Vec::new();
        self.share = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let alike = key.is_some() && keys.iter().filter(|k| *k == key).count() > 1;
            let (Some(key), true) = (key, alike) else {
                self.share.push(None);
                continue;
            };
            let prefix = place_of(&mut prefixes, *key);
            let places = self.members[i]
                .1
                .failregex_patterns()
                .map(|pattern| place_of(&mut known, (prefix, pattern)))
                .collect();
            self.share.push(Some(Share { prefix, places }));
        }
        self.prefix = vec![None; prefixes.len()];
        self.known = vec![Known::default(); known.len()];
    }
}

impl<K: Copy> Fail2banFilters<K> {
    /// `filters` each with the key its failures are reported with, all
    /// run on fail2ban's sequential engine.
    pub fn new(filters: Vec<(K, Fail2banFilter)>) -> Fail2banFilters<K> {
        Self::build(filters, None)
    }

    /// [`Fail2banFilters::new`], but those of a date group that can be are
    /// compiled into one matcher by `fold` (see [`Fail2banFilter::fold`]),
    /// which answers for them as the engine would.
    pub fn with_fold(filters: Vec<(K, Fail2banFilter)>, fold: Fold<'_>) -> Fail2banFilters<K> {
        Self::build(filters, Some(fold))
    }

    fn build(filters: Vec<(K, Fail2banFilter)>, mut fold: Option<Fold<'_>>) -> Fail2banFilters<K> {
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
                    first: 0,
                    always: Vec::new(),
                    share: Vec::new(),
                    prefix: Vec::new(),
                    known: Vec::new(),
                    folded: Vec::new(),
                    is_folded: Vec::new(),
                }),
            }
        }
        for g in &mut groups {
            g.is_folded = vec![false; g.members.len()];
            let Some(fold) = fold.as_mut() else { continue };
            // Per prefregex: the members that fold, and their filters.
            let mut units: Vec<(Option<PrefixKey<'_>>, Vec<usize>, Vec<_>)> = Vec::new();
            for (i, (_, f)) in g.members.iter().enumerate() {
                let Ok(filter) = f.fold() else { continue };
                let key = f.prefix_key();
                match units.iter_mut().find(|u| u.0 == key) {
                    Some(u) => {
                        u.1.push(i);
                        u.2.push(filter);
                    }
                    None => units.push((key, vec![i], vec![filter])),
                }
            }
            let mut folded = Vec::new();
            for (_, members, filters) in units {
                if let Some(judge) = fold(filters) {
                    folded.push(Folded { judge, members });
                }
            }
            for f in &folded {
                for &i in &f.members {
                    g.is_folded[i] = true;
                }
            }
            g.folded = folded;
        }
        let mut keys: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut count = 0;
        for g in &mut groups {
            g.share();
            g.first = count;
            for (_, f) in &g.members {
                match f.gate_keys() {
                    Some(ks) => {
                        g.always.push(false);
                        for k in ks {
                            let at = place_of(&mut keys, k);
                            owners.resize_with(keys.len(), Vec::new);
                            owners[at].push(count);
                        }
                    }
                    None => g.always.push(true),
                }
                count += 1;
            }
        }
        let search = (!keys.is_empty())
            .then(|| KeyOwners::new(keys, owners))
            .flatten();
        // Literals build; should they not, every member sees every line.
        if search.is_none() {
            for g in &mut groups {
                g.always.iter_mut().for_each(|a| *a = true);
            }
        }
        Fail2banFilters {
            groups,
            keys: search,
            present: vec![false; count],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many of the filters run in a matcher (see [`Self::with_fold`]).
    pub fn folded_count(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.folded)
            .map(|f| f.members.len())
            .sum()
    }

    /// Feeds `line` to every filter: `hit(key, failure)` for the first
    /// failure each finds (what [`Fail2banFilter::process`] returns), in
    /// the order the filters were given within a date pattern, those
    /// folded into a matcher after the others.
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
        // The keys are looked for in the whole line, before its date is
        // read: the text without the date is a part of it, so a line
        // without a member's key has none once its date is cut either (but
        // for a key that would only form across a date cut out of the
        // middle of a line). Such a line is nothing to that member, and a
        // group none of whose members it is anything to does not read its
        // date, the dearest step.
        self.present.fill(false);
        if let Some(k) = &self.keys {
            k.mark(line, &mut self.present);
        }
        let mut read = None;
        for g in &mut self.groups {
            let present = &self.present[g.first..g.first + g.members.len()];
            if !present.iter().chain(&g.always).any(|&p| p) {
                continue;
            }
            let now = *read.get_or_insert_with(&mut clock);
            let found = g.dates.find(line, now);
            let placed = Placed::new(line, found, &mut g.last_date, now);
            let text = placed.text();
            // A key found in the line may be missing from the text (cut
            // with the date), never the reverse, but for the text of a
            // date cut from the middle: its members then ask their own
            // gate, keys and all.
            let tail = placed.text_is_tail();
            g.prefix.fill(None);
            g.known.fill(Known::default());
            for (i, (key, f)) in g.members.iter_mut().enumerate() {
                let found = present[i];
                if g.is_folded[i] || !(found || g.always[i] || !tail) {
                    continue;
                }
                let shared = g.share[i].as_ref().and_then(|sh| {
                    Some(Shared {
                        prefix: g.prefix.get_mut(sh.prefix)?,
                        known: &mut g.known,
                        places: &sh.places,
                    })
                });
                if let Some(m) = f
                    .judge(&placed, &text, now, Mode::First, found, shared)
                    .into_iter()
                    .next()
                {
                    hit(*key, m, now);
                }
            }
            let date = placed.date();
            for folded in &g.folded {
                if tail && !folded.members.iter().any(|&i| present[i] || g.always[i]) {
                    continue;
                }
                let members = &g.members;
                let Some((_, first)) = folded.members.first().and_then(|&i| members.get(i)) else {
                    continue;
                };
                // Its prefregex does not match: nothing for any of them.
                let Some(content) = first.content(&text) else {
                    continue;
                };
                // Members whose look-ahead refused the matcher's match.
                let mut unsure = Vec::new();
                folded.judge.judge(content, &mut |k, h| {
                    let Some(&i) = folded.members.get(k) else {
                        return;
                    };
                    if h.unsure {
                        unsure.push(i);
                        return;
                    }
                    let Some((key, _)) = members.get(i) else {
                        return;
                    };
                    let m = Fail2banMatch {
                        id: h.host.to_string(),
                        host: Some(h.host.to_string()),
                        addr: h.addr,
                        time: date,
                        user: h.user.map(str::to_string),
                        fields: BTreeMap::new(),
                        regex: h.regex,
                    };
                    hit(*key, m, now);
                });
                // The engine judges those lines as it would unfolded.
                for i in unsure {
                    let Some((key, f)) = g.members.get_mut(i) else {
                        continue;
                    };
                    let judged = f.judge(&placed, &text, now, Mode::First, true, None);
                    if let Some(m) = judged.into_iter().next() {
                        hit(*key, m, now);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// Members of one prefregex (sshd in three modes) share what it and
    /// their failregexes find in a line, and find what they find
    /// unshared: on fail2ban's sample logs, all of them in one stream, the
    /// same failures with sharing as without. Needs the Debian `fail2ban`
    /// package; skipped, loudly, without it.
    #[test]
    fn members_of_one_prefregex_find_what_they_find_unshared() {
        let dir = Path::new(crate::filter::fail2ban::DEFAULT_FILTER_DIR);
        let logs = Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs");
        if !dir.is_dir() || !logs.is_dir() {
            eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
            return;
        }
        let mut names: Vec<_> = std::fs::read_dir(logs)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        let mut lines = Vec::new();
        for p in names {
            let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
            lines.extend(text.lines().map(str::to_string));
        }
        let specs = [
            "sshd",
            "sshd[mode=aggressive]",
            "sshd[mode=ddos]",
            "postfix",
            "postfix[mode=auth]",
            "dovecot",
        ];
        let build = || {
            Fail2banFilters::new(
                specs
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (k, Fail2banFilter::load(s, dir).unwrap()))
                    .collect(),
            )
        };
        let mut shared = build();
        let sharing: usize = shared
            .groups
            .iter()
            .map(|g| g.share.iter().flatten().count())
            .sum();
        assert_eq!(sharing, 3, "the three sshd modes share their prefregex");
        let mut unshared = build();
        for g in &mut unshared.groups {
            g.share.iter_mut().for_each(|s| *s = None);
        }
        let now = UNIX_EPOCH + Duration::from_secs(1_124_013_600);
        let mut found = [Vec::new(), Vec::new()];
        for (n, line) in lines.iter().enumerate() {
            for (all, out) in [&mut shared, &mut unshared].into_iter().zip(&mut found) {
                all.scan(line, now, |k, m| {
                    out.push((n, k, m.id, m.time, m.user, m.regex, m.fields));
                });
            }
        }
        let [with, without] = found;
        for (k, spec) in specs.iter().enumerate().take(3) {
            assert!(without.iter().any(|f| f.1 == k), "{spec} found nothing");
        }
        assert_eq!(with.len(), without.len());
        for (a, b) in with.iter().zip(&without) {
            assert_eq!(a, b, "{}", lines[a.0]);
        }
    }

    /// The members marked are those one of whose keys is in the line,
    /// where keys overlap, start alike (one the other's prefix), or one
    /// holds another, on the automaton and on the SIMD search alike.
    #[test]
    fn marks_every_member_whose_key_the_line_holds() {
        let keys: Vec<String> = [
            "Failed ",
            "Failed publickey for invalid user ",
            "Accepted ",
            " authentication failure",
            "ed p",
            "user",
            "Connection from ",
            "banner exchange: Connection from ",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        // Member i owns key i; member 8 owns keys 0 and 6.
        let mut owners: Vec<Vec<usize>> = (0..keys.len()).map(|i| vec![i]).collect();
        owners[0].push(8);
        owners[6].push(8);
        let lines = [
            "sshd[1]: Failed publickey for invalid user bob from 192.0.2.1",
            "sshd[1]: Failed password for bob",
            "sshd[1]: Accepted  authentication failure",
            "banner exchange: Connection from 192.0.2.1",
            "Connection from 192.0.2.1 user",
            "nothing here",
            "",
            "Failed Failed publickey for invalid user ",
        ];
        let packed = KeyOwners::new(keys.clone(), owners.clone()).unwrap();
        assert!(packed.keys.is_packed());
        let automaton = KeyOwners {
            keys: packed.keys.on_automaton(),
            owners: owners.clone(),
        };
        for line in lines {
            let mut want = vec![false; 9];
            for (k, key) in keys.iter().enumerate() {
                if line.contains(key.as_str()) {
                    for &m in &owners[k] {
                        want[m] = true;
                    }
                }
            }
            for search in [&packed, &automaton] {
                let mut got = vec![false; 9];
                search.mark(line, &mut got);
                assert_eq!(got, want, "{line:?}");
            }
        }
    }
}
