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
use crate::filter::place_of;

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
    /// texts one of which that must start with for it to match (see
    /// [`Compiled::starts`]). Asked before its factors: one look at the
    /// first bytes leaves most failregexes of a filter untried.
    starts: Vec<Option<Starts>>,
    /// Per failregex: [`Inner::failregex`] without the factors its
    /// [`Inner::starts`] already hold (each of those texts contains one
    /// of the factor's strings), asked of what it is run on.
    after_starts: Vec<Factors>,
    /// Per first byte of a text, and last for the empty text: its list
    /// in [`Inner::to_try`].
    by_first: Vec<u16>,
    /// The failregexes a text may match as far as its first byte tells
    /// (see [`Inner::starts`]), in order: of every first byte, those
    /// whose beginnings include it and those whose beginnings are not
    /// known. A filter's failregexes mostly begin differently, so most
    /// texts are tried with a few of them.
    to_try: Vec<Vec<usize>>,
    /// The failregex whose factors admitted the last line admitted:
    /// asked first, as lines of one kind tend to come in runs. Which
    /// failregex admits a line does not change whether one does.
    last_admitting: AtomicUsize,
    /// The ignoreregexes asked before the failregexes; empty when they
    /// are asked only after a failregex matched.
    ignore_first: Vec<Factors>,
}

/// The failregexes worth trying on a text (see [`LineGate::to_try`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum ToTry {
    All,
    List(u16),
}

/// Texts one of which a text must start with (see [`Compiled::starts`]).
#[derive(Debug)]
struct Starts {
    /// Their first bytes, asked first: most texts start with none.
    first: ByteSet,
    texts: Vec<Vec<u8>>,
}

impl Starts {
    fn new(texts: Vec<Vec<u8>>) -> Starts {
        let mut first = ByteSet::default();
        for t in &texts {
            if let Some(&b) = t.first() {
                first.insert(b);
            }
        }
        Starts { first, texts }
    }

    fn admits(&self, hay: &[u8]) -> bool {
        match hay.first() {
            Some(&b) if self.first.contains(b) => self.texts.iter().any(|t| hay.starts_with(t)),
            _ => false,
        }
    }

    /// Whether each of these texts contains one of `any`: a text that
    /// starts with one of them then holds one of `any` too.
    fn each_holds_one_of(&self, any: &[String]) -> bool {
        self.texts.iter().all(|t| {
            any.iter()
                .any(|s| memchr::memmem::find(t, s.as_bytes()).is_some())
        })
    }
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
        let starts: Vec<Option<Starts>> = failregex
            .iter()
            .map(|re| re.starts().map(Starts::new))
            .collect();
        let after_starts = failregex
            .iter()
            .zip(&starts)
            .map(|(re, st)| {
                let mut all = re.factors();
                if let Some(st) = st {
                    all.retain(|any| !st.each_holds_one_of(any));
                }
                Factors::new(all)
            })
            .collect();
        let mut to_try: Vec<Vec<usize>> = Vec::new();
        let by_first = (0..=256)
            .map(|b: usize| {
                let first = u8::try_from(b).ok();
                let list: Vec<usize> = starts
                    .iter()
                    .enumerate()
                    .filter(|(_, st)| {
                        st.as_ref()
                            .is_none_or(|st| first.is_some_and(|b| st.first.contains(b)))
                    })
                    .map(|(i, _)| i)
                    .collect();
                // At most 257 lists, one per first byte.
                u16::try_from(place_of(&mut to_try, list)).unwrap_or(u16::MAX)
            })
            .collect();
        let mut gate = LineGate {
            inner: Some(Inner {
                keys: None,
                prefregex: Factors::new(prefregex.map(Compiled::factors).unwrap_or_default()),
                failregex: failregex.iter().map(|re| factors(re)).collect(),
                starts,
                after_starts,
                by_first,
                to_try,
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

    /// This gate without its check of how a text starts (as if no
    /// failregex's beginnings were known, its factors all asked), and
    /// which failregexes had one.
    #[cfg(test)]
    pub(super) fn forget_starts(&mut self) -> Vec<bool> {
        let Some(g) = &mut self.inner else {
            return Vec::new();
        };
        let had = g.starts.iter_mut().map(|f| f.take().is_some()).collect();
        g.to_try = vec![(0..g.failregex.len()).collect()];
        g.by_first = vec![0; 257];
        g.after_starts = g
            .failregex
            .iter()
            .map(|f| Factors::new(f.strings().to_vec()))
            .collect();
        had
    }

    /// Whether `text` (the line without its date) may match.
    pub(super) fn admits(&self, text: &str) -> bool {
        let Some(g) = &self.inner else {
            return true;
        };
        let hay = text.as_bytes();
        if g.keys.as_ref().is_some_and(|k| !k.is_match(hay)) {
            return false;
        }
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

    /// Which failregexes may match `text` as far as its first byte tells,
    /// walked with [`LineGate::nth_to_try`].
    pub(super) fn to_try(&self, text: &str) -> ToTry {
        let Some(g) = &self.inner else {
            return ToTry::All;
        };
        let slot = text.as_bytes().first().map_or(256, |&b| usize::from(b));
        match g.by_first.get(slot) {
            Some(&list) => ToTry::List(list),
            None => ToTry::All,
        }
    }

    /// The `k`th failregex (of `count`) in `to_try`, in order; None past
    /// the last.
    pub(super) fn nth_to_try(&self, to_try: ToTry, k: usize, count: usize) -> Option<usize> {
        match (to_try, &self.inner) {
            (ToTry::List(list), Some(g)) => g.to_try.get(usize::from(list))?.get(k).copied(),
            _ => (k < count).then_some(k),
        }
    }

    /// Whether failregex `index` may match `text` (what it is run on: the
    /// line without its date, or the prefregex's content, a part of it).
    pub(super) fn admits_failregex(&self, index: usize, text: &str) -> bool {
        let Some(g) = &self.inner else {
            return true;
        };
        let hay = text.as_bytes();
        if let Some(Some(starts)) = g.starts.get(index) {
            if !starts.admits(hay) {
                return false;
            }
        }
        g.after_starts.get(index).is_none_or(|f| f.admits(hay))
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
