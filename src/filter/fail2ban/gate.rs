//! Which lines a fail2ban filter can have anything to say about.
//!
//! A filter of one line at a time (`maxlines` 1) keeps no state from a line
//! that no regex of it matches but the date, and the date is read before
//! this gate. So a line without the text every match of its regexes
//! requires (see [`required_factors`](crate::filter::literal::required_factors))
//! is judged as "nothing here" without running them. A match of any
//! failregex needs the prefregex to match too (its `<F-CONTENT>` is part
//! of the same line); an ignoreregex that fail2ban asks before the
//! failregexes is reported even on lines no failregex matches, so it opens
//! the gate as well.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::filter::literal::Factors;

use super::engine::{ByteSet, Compiled};

#[derive(Debug)]
pub(super) struct LineGate {
    /// None: every line is judged (a multi-line buffer keeps every line).
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// [`LineGate::keys`] in one search, asked first: most lines hold
    /// none, and are turned away by one scan instead of one per factor.
    /// Over bytes, so a reader can also search a whole read with it.
    keys: Option<regex::bytes::Regex>,
    prefregex: Factors,
    failregex: Vec<Factors>,
    /// Per failregex anchored at the start of what it is run on: the
    /// bytes that text may start with for it to match (see
    /// [`Compiled::first_bytes`]). Asked before its factors: one look at
    /// the first byte leaves most failregexes of a filter untried.
    first_bytes: Vec<Option<ByteSet>>,
    /// The failregex whose factors admitted the last line admitted:
    /// asked first, as lines of one kind tend to come in runs. Which
    /// failregex admits a line does not change whether one does.
    last_admitting: AtomicUsize,
    /// The ignoreregexes asked before the failregexes; empty when they
    /// are asked only after a failregex matched.
    ignore_first: Vec<Factors>,
}

impl Inner {
    /// Whether the factors of some failregex admit `hay`, the one that
    /// admitted the last such line asked first.
    fn any_failregex_admits(&self, hay: &[u8]) -> bool {
        let n = self.failregex.len();
        let start = self.last_admitting.load(Ordering::Relaxed);
        let found = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.failregex[i].admits(hay));
        if let Some(i) = found {
            self.last_admitting.store(i, Ordering::Relaxed);
        }
        found.is_some()
    }
}

impl LineGate {
    pub(super) fn new(
        prefregex: Option<&Compiled>,
        failregex: &[&Compiled],
        ignore_first: &[&Compiled],
        maxlines: usize,
    ) -> LineGate {
        if maxlines > 1 {
            return LineGate { inner: None };
        }
        let factors = |re: &Compiled| Factors::new(re.factors());
        let mut gate = LineGate {
            inner: Some(Inner {
                keys: None,
                prefregex: Factors::new(prefregex.map(Compiled::factors).unwrap_or_default()),
                failregex: failregex.iter().map(|re| factors(re)).collect(),
                first_bytes: failregex.iter().map(|re| re.first_bytes()).collect(),
                last_admitting: AtomicUsize::new(0),
                ignore_first: ignore_first.iter().map(|re| factors(re)).collect(),
            }),
        };
        let keys = gate.keys().filter(|k| !k.is_empty()).and_then(|keys| {
            let alternation: Vec<String> = keys.iter().map(|k| regex::escape(k)).collect();
            // Escaped literals compile; should they not, the factors
            // alone decide.
            regex::bytes::Regex::new(&alternation.join("|")).ok()
        });
        if let Some(inner) = &mut gate.inner {
            inner.keys = keys;
        }
        gate
    }

    /// A gate that admits every line.
    #[cfg(test)]
    pub(super) fn open() -> LineGate {
        LineGate { inner: None }
    }

    /// This gate without its first-byte check (as if no failregex's first
    /// bytes were known), and which failregexes had one.
    #[cfg(test)]
    pub(super) fn forget_first_bytes(&mut self) -> Vec<bool> {
        let Some(g) = &mut self.inner else {
            return Vec::new();
        };
        g.first_bytes
            .iter_mut()
            .map(|f| f.take().is_some())
            .collect()
    }

    /// Whether `text` (the line without its date) may match.
    pub(super) fn admits(&self, text: &str) -> bool {
        self.admits_keyed(text, false)
    }

    /// [`LineGate::admits`], told by `keys_found` that one of
    /// [`LineGate::keys`] was seen in the line `text` comes from (a search
    /// over several filters' keys at once): the search for them is then
    /// left out. The answer is the same: each key is one of the factors
    /// asked next (the prefregex's, or every failregex's and early
    /// ignoreregex's when the prefregex has none), so a text without any
    /// key is turned away by them all the same.
    pub(super) fn admits_keyed(&self, text: &str, keys_found: bool) -> bool {
        let Some(g) = &self.inner else {
            return true;
        };
        if !keys_found
            && g.keys
                .as_ref()
                .is_some_and(|k| !k.is_match(text.as_bytes()))
        {
            return false;
        }
        let hay = text.as_bytes();
        (g.prefregex.admits(hay) && g.any_failregex_admits(hay))
            || g.ignore_first.iter().any(|f| f.admits(hay))
    }

    /// The search for [`LineGate::keys`], when every admitted line holds
    /// one of them (a line without any is never admitted) and none holds
    /// U+FFFD, which a line that is not UTF-8 only shows once decoded: a
    /// reader may then pass over the lines of a read where it finds none.
    pub(super) fn key_search(&self) -> Option<&regex::bytes::Regex> {
        let keys = self.inner.as_ref()?.keys.as_ref()?;
        self.keys()?
            .iter()
            .all(|k| !k.contains('\u{FFFD}'))
            .then_some(keys)
    }

    /// Whether failregex `index` may match `text` (what it is run on: the
    /// line without its date, or the prefregex's content, a part of it).
    pub(super) fn admits_failregex(&self, index: usize, text: &str) -> bool {
        let Some(g) = &self.inner else {
            return true;
        };
        if let Some(Some(first)) = g.first_bytes.get(index) {
            match text.as_bytes().first() {
                Some(b) if first.contains(*b) => {}
                _ => return false,
            }
        }
        g.failregex
            .get(index)
            .is_none_or(|f| f.admits(text.as_bytes()))
    }

    /// Strings one of which every admitted line contains; None when some
    /// lines are admitted without any (the filter must see every line).
    pub(super) fn keys(&self) -> Option<Vec<String>> {
        let g = self.inner.as_ref()?;
        let mut keys: Vec<String> = Vec::new();
        let mut add = |f: &Factors| -> Option<()> {
            keys.extend(f.key()?.iter().cloned());
            Some(())
        };
        match g.prefregex.key() {
            Some(_) => add(&g.prefregex)?,
            None => {
                for f in &g.failregex {
                    add(f)?;
                }
            }
        }
        for f in &g.ignore_first {
            add(f)?;
        }
        keys.sort();
        keys.dedup();
        Some(keys)
    }
}
