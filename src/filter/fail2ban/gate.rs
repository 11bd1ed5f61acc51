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

use crate::filter::literal::Factors;

use super::engine::Compiled;

#[derive(Debug)]
pub(super) struct LineGate {
    /// None: every line is judged (a multi-line buffer keeps every line).
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    prefregex: Factors,
    failregex: Vec<Factors>,
    /// The ignoreregexes asked before the failregexes; empty when they
    /// are asked only after a failregex matched.
    ignore_first: Vec<Factors>,
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
        LineGate {
            inner: Some(Inner {
                prefregex: Factors::new(prefregex.map(Compiled::factors).unwrap_or_default()),
                failregex: failregex.iter().map(|re| factors(re)).collect(),
                ignore_first: ignore_first.iter().map(|re| factors(re)).collect(),
            }),
        }
    }

    /// A gate that admits every line.
    #[cfg(test)]
    pub(super) fn open() -> LineGate {
        LineGate { inner: None }
    }

    /// Whether `text` (the line without its date) may match.
    pub(super) fn admits(&self, text: &str) -> bool {
        let Some(g) = &self.inner else {
            return true;
        };
        let hay = text.as_bytes();
        (g.prefregex.admits(hay) && g.failregex.iter().any(|f| f.admits(hay)))
            || g.ignore_first.iter().any(|f| f.admits(hay))
    }

    /// Whether failregex `index` may match `text` (what it is run on: the
    /// line without its date, or the prefregex's content, a part of it).
    pub(super) fn admits_failregex(&self, index: usize, text: &str) -> bool {
        self.inner
            .as_ref()
            .and_then(|g| g.failregex.get(index))
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
