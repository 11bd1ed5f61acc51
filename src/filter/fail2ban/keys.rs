//! One search for the keys of many fail2ban filters (the text one of which
//! every line a filter may match holds, see
//! [`LineGate::keys`](super::gate::LineGate)), through fewer strings than
//! there are keys.
//!
//! A SIMD multi-string search slows with the number of strings it looks
//! for (it sorts them into a few buckets by their first bytes, and checks
//! every string of a bucket wherever the bucket's bytes turn up), and
//! stock filters bring dozens of keys, many of them alike
//! (`Authentication failed for `, `authentication failure for `, ...).
//! So keys that share a long enough string are looked for by that string,
//! their *anchor*, and each found anchor is checked in place against the
//! keys it stands for: where a key starts, its anchor starts a known
//! distance further on, so every key is found, and only keys are reported.
//! An anchor met without its keys costs one comparison, never a line.
//!
//! Any part of a key finds it as well as the whole does, so each anchor is
//! the part that starts with the bytes the least common in logs: the
//! searcher stops to check wherever text starts like one of its strings,
//! and a string that starts with a space or a lower-case word stops it in
//! most lines.

use std::collections::HashMap;

use aho_corasick::{packed, AhoCorasick, AhoCorasickKind, Input, MatchKind, Span};

/// The shortest string several keys are looked for by. Shorter strings
/// shared by keys are everyday words or fragments (`user`, `tion`), met
/// in most lines of any log: each meeting costs a check and a restart of
/// the search.
const SHARED_MIN: usize = 7;

/// The shortest part of a single key it is looked for by (all of it when
/// shorter): past the bytes the searcher compares before it stops, so that
/// the part turns up without its key seldom.
const ALONE_MIN: usize = 6;

/// What one more anchor costs, in the units of [`lead`]: every string
/// widens the set of bytes its bucket stops at, so a string that stands
/// for one key is worth it only where the anchor it spares starts much
/// more commonly.
const ANCHOR_COST: u64 = 30_000_000_000;

/// Most anchors searched by the slim SIMD searcher (see [`Search::new`]).
const FAT_FROM: usize = 24;

/// Many keys in one search, which finds every place one starts.
pub struct KeySet {
    search: Search,
    anchors: Vec<String>,
    keys: Vec<String>,
    /// Per anchor (pattern number): the keys it stands for, each with how
    /// far into the key the anchor starts.
    holders: Vec<Vec<(usize, usize)>>,
    /// Per anchor: the other anchors that may start where it does (one a
    /// prefix of the other), which a leftmost-first search does not report.
    same_start: Vec<Vec<usize>>,
}

impl KeySet {
    /// None when there are no keys, one is empty, or the search does not
    /// build: then no line may be passed over for want of a key.
    pub fn new(keys: Vec<String>) -> Option<KeySet> {
        if keys.is_empty() || keys.iter().any(String::is_empty) {
            return None;
        }
        let (anchors, holders) = choose_anchors(&keys).into_iter().unzip();
        Self::with_search(keys, anchors, holders, Search::new)
    }

    fn with_search(
        keys: Vec<String>,
        anchors: Vec<String>,
        holders: Vec<Vec<(usize, usize)>>,
        search: impl FnOnce(&[String]) -> Option<Search>,
    ) -> Option<KeySet> {
        let same_start = anchors
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (0..anchors.len())
                    .filter(|&j| {
                        j != i && (anchors[j].starts_with(a) || a.starts_with(&anchors[j]))
                    })
                    .collect()
            })
            .collect();
        Some(KeySet {
            search: search(&anchors)?,
            anchors,
            keys,
            holders,
            same_start,
        })
    }

    /// The keys, numbered as [`KeySet::each`] reports them.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Where a key starts in `hay` at or after `from`: the one whose anchor
    /// comes first. A key lies within no line but its own, and so does its
    /// anchor: the line this lies in is the first from `from` on that holds
    /// a key.
    pub fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        let mut at = from;
        while at <= hay.len() {
            let m = self.search.find(hay, at)?;
            let p = m.start();
            let mut first = None;
            let stop = self.at_anchor(hay, p, m.pattern().as_usize(), &mut |_, start| {
                first = Some(start).filter(|&s| s >= from);
                first.is_some()
            });
            if stop {
                return first;
            }
            at = p + 1;
        }
        None
    }

    /// Calls `found` with each key `hay` holds (as often as it starts
    /// there). Each search starts one byte past where the last found
    /// anchor starts, so every place an anchor starts is found; at each,
    /// the anchors that start alike are checked there too.
    pub fn each(&self, hay: &[u8], mut found: impl FnMut(usize)) {
        let mut at = 0;
        while at <= hay.len() {
            let Some(m) = self.search.find(hay, at) else {
                return;
            };
            let p = m.start();
            self.at_anchor(hay, p, m.pattern().as_usize(), &mut |key, _| {
                found(key);
                false
            });
            at = p + 1;
        }
    }

    /// Calls `found` with each key (and where it starts) whose anchor
    /// starts at `at`, given that `anchor` does, until it says to stop
    /// (true, returned).
    fn at_anchor(
        &self,
        hay: &[u8],
        at: usize,
        anchor: usize,
        found: &mut impl FnMut(usize, usize) -> bool,
    ) -> bool {
        if self.around(hay, at, anchor, found) {
            return true;
        }
        for &b in &self.same_start[anchor] {
            let other = self.anchors[b].as_bytes();
            if hay.get(at..at + other.len()) == Some(other) && self.around(hay, at, b, found) {
                return true;
            }
        }
        false
    }

    /// [`KeySet::at_anchor`] for `anchor` alone, known to be at `at`: of
    /// each of its keys, only the text before and after it is compared.
    fn around(
        &self,
        hay: &[u8],
        at: usize,
        anchor: usize,
        found: &mut impl FnMut(usize, usize) -> bool,
    ) -> bool {
        let end = at + self.anchors[anchor].len();
        for &(key, offset) in &self.holders[anchor] {
            let k = self.keys[key].as_bytes();
            let Some(start) = at.checked_sub(offset) else {
                continue;
            };
            let (Some(before), Some(after)) = (k.get(..offset), k.get(offset + end - at..)) else {
                continue;
            };
            if hay.get(start..at) == Some(before)
                && hay.get(end..end + after.len()) == Some(after)
                && found(key, start)
            {
                return true;
            }
        }
        false
    }
}

/// The strings to look for: each with the keys it stands for and where in
/// each it starts. Greedily, the string that costs least per key not yet
/// covered: a string of at least [`SHARED_MIN`] bytes held by two or more
/// of them, or one key alone, each weighed by how commonly text starts
/// like its part that starts rarest (see [`rarest_part`]), plus
/// [`ANCHOR_COST`]. Ties go to the string that covers more keys, then the
/// longer (it turns up without them the less), then the first in byte
/// order, so the choice does not depend on hashing.
fn choose_anchors(keys: &[String]) -> Vec<(String, Vec<(usize, usize)>)> {
    let mut holders: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        for (a, _) in k.char_indices() {
            let ends = (a + SHARED_MIN..=k.len()).filter(|&b| k.is_char_boundary(b));
            for b in ends {
                let held = holders.entry(&k[a..b]).or_default();
                // Keys are walked in turn: a string met again in the same key is last.
                if held.last() != Some(&i) {
                    held.push(i);
                }
            }
        }
    }
    let cost = |s: &str, least: usize| ANCHOR_COST + lead(rarest_part(s, least).as_bytes());
    let shared: Vec<(&str, Vec<usize>, u64)> = holders
        .into_iter()
        .filter(|(_, held)| held.len() > 1)
        .map(|(s, held)| (s, held, cost(s, SHARED_MIN)))
        .collect();
    let mut left = vec![true; keys.len()];
    let mut out: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    loop {
        let alone = keys
            .iter()
            .enumerate()
            .filter(|&(k, _)| left[k])
            .map(|(k, key)| (key.as_str(), vec![k], cost(key, ALONE_MIN), ALONE_MIN));
        let together = shared.iter().filter_map(|(s, held, c)| {
            let held: Vec<usize> = held.iter().copied().filter(|&k| left[k]).collect();
            (held.len() > 1).then_some((*s, held, *c, SHARED_MIN))
        });
        // Costs per key, x.2 / x.1.len() against y.2 / y.1.len(), unrounded.
        let best = alone.chain(together).min_by(|x, y| {
            (u128::from(x.2) * y.1.len() as u128)
                .cmp(&(u128::from(y.2) * x.1.len() as u128))
                .then(y.1.len().cmp(&x.1.len()))
                .then(y.0.len().cmp(&x.0.len()))
                .then(x.0.cmp(y.0))
        });
        let Some((s, covered, _, least)) = best else {
            return out;
        };
        let anchor = rarest_part(s, least);
        let mut held = Vec::new();
        for k in covered {
            left[k] = false;
            if let Some(offset) = keys[k].find(anchor) {
                held.push((k, offset));
            }
        }
        // Keys cut to one string are looked for by it once.
        match out.iter_mut().find(|(a, _)| a == anchor) {
            Some((_, h)) => h.extend(held),
            None => out.push((anchor.to_string(), held)),
        }
    }
}

/// The part of `s`, of at least `least` bytes (all of it when shorter),
/// that starts with the rarest bytes (see [`lead`]), running on to the end
/// of `s`: the longer, the more seldom it turns up without its keys.
fn rarest_part(s: &str, least: usize) -> &str {
    let least = least.min(s.len());
    s.char_indices()
        .map(|(i, _)| i)
        .filter(|&i| s.len() - i >= least)
        .min_by_key(|&i| lead(&s.as_bytes()[i..]))
        .map_or(s, |i| &s[i..])
}

/// How commonly text starts like `s`: the product of how common each of
/// its first [`LEAD`] bytes is in logs (see [`commonness`]).
fn lead(s: &[u8]) -> u64 {
    s.iter()
        .take(LEAD)
        .map(|&b| u64::from(commonness(b)))
        .product()
}

/// The bytes the searcher fingerprints its strings by (when all are at
/// least as long), which decide where it stops to check.
const LEAD: usize = 4;

/// About how many of every ten thousand bytes of log text are `b`: what
/// logs are made of (words in lower case, numbers, addresses, times and
/// their separators) rather than any one log. Only the order and rough
/// size matter.
fn commonness(b: u8) -> u16 {
    match b {
        b' ' => 1500,
        b'e' => 900,
        b't' => 650,
        b'a' => 620,
        b'o' => 600,
        b'i' => 580,
        b'n' => 570,
        b's' => 560,
        b'r' => 520,
        b'1' => 450,
        b'0' | b'2' => 400,
        b'l' => 380,
        b'.' | b'd' => 350,
        b'c' => 320,
        b':' => 300,
        b'u' => 280,
        b'm' => 260,
        b'h' | b'3'..=b'9' => 250,
        b'p' => 230,
        b'f' => 200,
        b'g' => 170,
        b'=' => 150,
        b'y' | b'w' | b'b' => 120,
        b'/' | b'[' | b']' | b',' | b'-' => 100,
        b'v' => 90,
        b'k' | b'S' => 60,
        b'x' | b'\n' | b'A' => 50,
        b'_' | b'E' | b'T' | b'R' | b'N' | b'I' | b'O' | b'C' | b'D' => 40,
        b'L' | b'P' | b'M' => 35,
        b'<' | b'>' | b'@' | b'(' | b')' | b';' | b'U' | b'F' => 30,
        b'H' | b'G' | b'B' => 25,
        b'\'' | b'"' => 20,
        b'K' | b'V' | b'W' => 15,
        b'q' | b'j' | b'z' | b'Y' | b'X' | b'+' => 10,
        b'J' | b'Q' | b'Z' | b'#' | b'!' | b'?' | b'*' | b'%' | b'&' | b'{' | b'}' | b'|' => 5,
        b'\t' | b'\\' => 5,
        b'$' | b'~' | b'^' | b'`' => 3,
        _ => 1,
    }
}

enum Search {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Search {
    /// Leftmost-first: each search finds the anchor that starts first
    /// (the first given of those that start there), skipping most of the
    /// text with SIMD, as an overlapping search cannot.
    fn new(anchors: &[String]) -> Option<Search> {
        let build = |fat: Option<bool>| {
            packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .heuristic_pattern_limits(false)
                .only_teddy_fat(fat)
                .builder()
                .extend(anchors)
                .build()
        };
        // Past a few strings to each of the slim searcher's eight buckets,
        // the checks of a bucket's strings wherever its bytes turn up cost
        // more than the fat searcher's sixteen buckets at half the stride
        // (the library turns to it only with more strings). It needs AVX2:
        // without it, the library's choice.
        let fat = (anchors.len() > FAT_FROM).then_some(true);
        match build(fat).or_else(|| build(None)) {
            Some(p) => Some(Search::Packed(p)),
            // No SIMD searcher on this machine.
            None => Self::automaton(anchors),
        }
    }

    fn automaton(anchors: &[String]) -> Option<Search> {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(anchors)
            .ok()
            .map(Search::Automaton)
    }

    /// The leftmost-first anchor in `hay` starting at `from` or later.
    fn find(&self, hay: &[u8], from: usize) -> Option<aho_corasick::Match> {
        let span = Span {
            start: from,
            end: hay.len(),
        };
        match self {
            Search::Packed(p) => p.find_in(hay, span),
            Search::Automaton(a) => a.find(Input::new(hay).span(span)),
        }
    }
}

#[cfg(test)]
impl KeySet {
    /// This set searched by the automaton, as on a machine without SIMD.
    pub(super) fn on_automaton(&self) -> KeySet {
        let (anchors, holders) = (self.anchors.clone(), self.holders.clone());
        KeySet::with_search(self.keys.clone(), anchors, holders, Search::automaton)
            .unwrap_or_else(|| panic!("the automaton builds"))
    }

    pub(super) fn is_packed(&self) -> bool {
        matches!(self.search, Search::Packed(_))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every key, with each place it starts in `hay`, by brute force.
    fn starts(keys: &[String], hay: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            for s in 0..hay.len() {
                if hay[s..].starts_with(key.as_bytes()) {
                    out.push((k, s));
                }
            }
        }
        out.sort();
        out
    }

    fn check(keys: &[String], text: &str) {
        let Some(set) = KeySet::new(keys.to_vec()) else {
            panic!("keys {keys:?} build");
        };
        parts_of_their_keys(&set);
        let hay = text.as_bytes();
        let want = starts(keys, hay);
        for set in [&set, &set.on_automaton()] {
            // Each key as often as it starts in the text.
            let mut got: Vec<usize> = Vec::new();
            set.each(hay, |k| got.push(k));
            got.sort();
            let mut keys_of: Vec<usize> = want.iter().map(|&(k, _)| k).collect();
            keys_of.sort();
            assert_eq!(got, keys_of, "{keys:?} in {text:?}");
            // From every place: a key starts where `find` says, and its
            // line is the first from there with a key.
            for from in 0..=hay.len() {
                let line_of = |at: usize| text[..at].matches('\n').count();
                let first = want
                    .iter()
                    .filter(|&&(_, s)| s >= from)
                    .map(|&(_, s)| s)
                    .min();
                match (set.find(hay, from), first) {
                    (None, None) => {}
                    (Some(at), Some(first)) => {
                        assert!(want.iter().any(|&(_, s)| s == at), "{at} in {text:?}");
                        assert!(at >= from);
                        assert_eq!(line_of(at), line_of(first), "{keys:?} in {text:?}");
                    }
                    (got, first) => {
                        panic!("{got:?} for {first:?}: {keys:?} in {text:?} from {from}")
                    }
                }
            }
        }
    }

    /// Every key it stands for holds each anchor where the set says, and
    /// every key has one anchor.
    fn parts_of_their_keys(set: &KeySet) {
        let mut seen = vec![0; set.keys.len()];
        for (a, held) in set.anchors.iter().zip(&set.holders) {
            for &(k, offset) in held {
                let key = &set.keys[k];
                assert_eq!(
                    key.get(offset..offset + a.len()),
                    Some(a.as_str()),
                    "{key:?}"
                );
                seen[k] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{:?}: {seen:?}", set.keys);
    }

    /// A key is looked for by its part that starts with the rarest
    /// bytes, mid-key here; found through it at the very start and end
    /// of the text, it is reported where the key starts, and a cut key
    /// whose part is whole is not reported.
    #[test]
    fn a_key_found_by_a_part_within_it_is_reported_where_it_starts() {
        let key = "note: Quux happened";
        let keys = vec![key.to_string(), "warning: ".to_string()];
        let set = KeySet::new(keys.clone()).unwrap();
        let i = set.anchors.iter().position(|a| a.starts_with('Q')).unwrap();
        assert_eq!(set.anchors[i], "Quux happened");
        assert_eq!(set.holders[i], [(0, 6)]);
        for text in [key, "note: Quux happened\nx", "a note: Quux happened"] {
            let at = text.find(key).unwrap();
            assert_eq!(set.find(text.as_bytes(), 0), Some(at), "{text:?}");
            let mut got = Vec::new();
            set.each(text.as_bytes(), |k| got.push(k));
            assert_eq!(got, [0], "{text:?}");
            check(&keys, text);
        }
        for cut in ["ote: Quux happened", "note: Quux happene", "Quux happened"] {
            assert_eq!(set.find(cut.as_bytes(), 0), None);
            check(&keys, cut);
        }
        check(&keys, "note: Quux happenednote: Quux happened warning: ");
    }

    /// Each key's anchor is a part of it, in stock filters' keys and in
    /// keys with bytes past ASCII, where a part starts on a character.
    #[test]
    fn an_anchor_is_a_part_of_each_key_it_stands_for() {
        let keys: Vec<String> = [
            "Authentication failed for ",
            "authentication failure",
            "pam_unix(sshd:auth): authentication failure;",
            "Connection closed by",
            "Connection reset by",
            "Ünknown ÿser ÿ",
            "ÿÿÿÿÿÿ",
            "é",
            "reject:",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        let set = KeySet::new(keys.clone()).unwrap();
        parts_of_their_keys(&set);
        check(&keys, "x Ünknown ÿser ÿÿÿÿÿÿ é reject: Connection reset by");
    }

    /// Keys that share a string are looked for by it (`Failed `); a key
    /// alone, by its part that starts rarest (`failure`, not the word
    /// before it). Two keys that share only strings starting with
    /// lower-case letters (`uthentication fail`) are looked for apart, by
    /// parts that start less commonly.
    #[test]
    fn keys_alike_share_an_anchor() {
        let keys: Vec<String> = [
            "Authentication failed for ",
            "authentication failure",
            "Failed ",
            "Failed publickey for invalid user ",
            "invalid user ",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        let anchors = choose_anchors(&keys);
        let names: Vec<&str> = anchors.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "Failed ",
                "Authentication failed for ",
                "nvalid user ",
                "failure"
            ]
        );
        assert_eq!(anchors[0].1, [(2, 0), (3, 0)]);
        assert_eq!(anchors[2].1, [(4, 1)]);
        assert_eq!(anchors[3].1, [(1, 15)]);
        check(
            &keys,
            "sshd[1]: Failed publickey for invalid user bob\n\
             pam: authentication failure; Authentication failed for x\n\
             nothing here: uthentication fail, invalid use\n\
             Failed Failed",
        );
    }

    /// Past [`FAT_FROM`] anchors, the searcher changes: every key is
    /// still found where it starts.
    #[test]
    fn many_keys_are_found_as_few_are() {
        let keys: Vec<String> = (0..FAT_FROM + 6).map(|i| format!("w{i}x")).collect();
        assert!(choose_anchors(&keys).len() > FAT_FROM);
        check(&keys, "a w1x w12x\nw3xw29xw2\n\nw0x w10 w7\nx w22xw23x w5x");
    }

    /// Pieces that keys and lines are made of, so keys overlap, share
    /// long strings, start alike and hold one another, and are looked
    /// for by parts that start mid-key (at a rare byte, `Q`).
    const PIECES: [&str; 7] = ["ab", "ba ", "aab:b", "b", "abba ab", "a", "Qa"];

    fn made_of(pieces: &[&'static str], most: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pieces.to_vec()), 0..most)
            .prop_map(|v| v.concat())
    }

    proptest! {
        /// Every key found where it starts, by SIMD and automaton alike,
        /// and `find` stops in the first line that holds one.
        #[test]
        fn finds_every_key_as_brute_force_does(
            keys in prop::collection::vec(made_of(&PIECES, 5), 1..10),
            text in made_of(&[PIECES[0], PIECES[1], PIECES[2], PIECES[3], PIECES[4], PIECES[5], PIECES[6], "\n", ":"], 24),
        ) {
            let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
            keys.sort();
            keys.dedup();
            prop_assume!(!keys.is_empty());
            check(&keys, &text);
        }
    }
}

/// Timings of the key searches of ten stock filters over a large mail log
/// (`NFTJAIL_KEYS_LOG`, or `/tmp/m1.log`), as the reader and the filters
/// run them, for comparing anchor choices:
/// `cargo test --release --lib keys::timing -- --ignored --nocapture`.
#[cfg(test)]
mod timing {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::super::filter::Fail2banFilter;
    use super::*;

    const SPECS: [&str; 10] = [
        "postfix[mode=auth]",
        "postfix",
        "dovecot",
        "sieve",
        "sshd",
        "sshd[mode=aggressive]",
        "exim",
        "courier-auth",
        "cyrus-imap",
        "sendmail-auth",
    ];

    fn best_of_5(mut run: impl FnMut() -> usize) -> (Duration, usize) {
        let mut out = (Duration::MAX, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let n = run();
            out = (out.0.min(t.elapsed()), n);
        }
        out
    }

    fn show(name: &str, set: &KeySet, hay: &[u8]) {
        println!(
            "{name}: {} keys, {} anchors",
            set.keys.len(),
            set.anchors.len()
        );
        for (a, held) in set.anchors.iter().zip(&set.holders) {
            let met = memchr::memmem::find_iter(hay, a.as_bytes()).count();
            println!("  {a:?} for {} keys, met {met} times", held.len());
        }
    }

    #[test]
    #[ignore = "a timing over a large log, for comparing anchor choices"]
    fn time_stock_filters() {
        let dir = Path::new(crate::filter::fail2ban::DEFAULT_FILTER_DIR);
        let log = std::env::var("NFTJAIL_KEYS_LOG").unwrap_or_else(|_| "/tmp/m1.log".into());
        let Ok(hay) = std::fs::read(&log) else {
            panic!("no {log} to time the search over");
        };
        let filters: Vec<Fail2banFilter> = SPECS
            .iter()
            .map(|s| Fail2banFilter::load(s, dir).unwrap())
            .collect();
        // As the reader builds it, and as the filters do.
        let whole = super::super::group::key_search(&filters).unwrap();
        let mut keys: Vec<String> = Vec::new();
        for f in &filters {
            for k in f.gate_keys().unwrap() {
                crate::filter::place_of(&mut keys, k);
            }
        }
        let line = KeySet::new(keys).unwrap();
        show("whole", &whole, &hay);
        show("line", &line, &hay);
        // The lines the reader stops in, resuming past each.
        let stops = || {
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(h) = whole.find(&hay, at) {
                let start = memchr::memrchr(b'\n', &hay[..h]).map_or(0, |i| i + 1);
                let end = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
                out.push((start, end));
                at = end + 1;
            }
            out
        };
        let (t, n) = best_of_5(|| stops().len());
        println!("find: {n} lines stopped in, {t:?}");
        let lines = stops();
        let (t, n) = best_of_5(|| {
            let mut n = 0;
            for &(s, e) in &lines {
                line.each(&hay[s..e], |_| n += 1);
            }
            n
        });
        println!("each: {n} keys in those lines, {t:?}");
    }
}
