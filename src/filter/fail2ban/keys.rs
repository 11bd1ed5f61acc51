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

use std::collections::HashMap;

use aho_corasick::{packed, AhoCorasick, AhoCorasickKind, Input, MatchKind, Span};

/// The shortest string several keys are looked for by. Shorter strings
/// shared by keys are everyday words or fragments (`user`, `tion`), met
/// in most lines of any log: each meeting costs a check and a restart of
/// the search.
const SHARED_MIN: usize = 8;

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
/// each it starts. Greedily, the string of at least [`SHARED_MIN`] bytes
/// that the most keys not yet covered hold (the longest of those, the
/// rarer; then the first in byte order, so the choice does not depend on
/// hashing), while one is held by two or more; every key left is looked
/// for as itself.
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
    holders.retain(|_, held| held.len() > 1);
    let mut left = vec![true; keys.len()];
    let mut out = Vec::new();
    loop {
        let best = holders
            .iter()
            .map(|(s, held)| {
                let n = held.iter().filter(|&&k| left[k]).count();
                (n, s.len(), std::cmp::Reverse(*s))
            })
            .filter(|&(n, ..)| n > 1)
            .max();
        let Some((_, _, std::cmp::Reverse(anchor))) = best else {
            break;
        };
        let mut covered = Vec::new();
        for &k in &holders[anchor] {
            if let (true, Some(offset)) = (left[k], keys[k].find(anchor)) {
                left[k] = false;
                covered.push((k, offset));
            }
        }
        out.push((anchor.to_string(), covered));
    }
    for (k, key) in keys.iter().enumerate().filter(|(k, _)| left[*k]) {
        out.push((key.clone(), vec![(k, 0)]));
    }
    out
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

    /// Keys that share long strings are looked for by them; one that
    /// shares nothing long enough by itself.
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
        assert_eq!(names, ["uthentication fail", "invalid user ", "Failed "]);
        assert_eq!(anchors[0].1, [(0, 1), (1, 1)]);
        assert_eq!(anchors[1].1, [(3, 21), (4, 0)]);
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
    /// long strings, start alike and hold one another.
    const PIECES: [&str; 6] = ["ab", "ba ", "aab:b", "b", "abba ab", "a"];

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
            text in made_of(&[PIECES[0], PIECES[1], PIECES[2], PIECES[3], PIECES[4], PIECES[5], "\n", ":"], 24),
        ) {
            let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
            keys.sort();
            keys.dedup();
            prop_assume!(!keys.is_empty());
            check(&keys, &text);
        }
    }
}
