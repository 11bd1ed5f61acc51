//! One compiled fail2ban regex: on Rust's linear-time `regex` when the
//! pattern allows, on `fancy-regex`'s backtracking engine only for the
//! patterns that need look-around, back-references or atomic groups.

use std::fmt;
use std::ops::Range;
use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::nfa::thompson;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::pool::Pool;
use regex_automata::{Anchored, Input};

use super::literals::backtrack_factors;
use super::pyregex;
use crate::filter::literal::required_factors;

/// Generous: fail2ban's `<HOST>` alternatives repeated in long filters
/// exceed the default compiled-size limit.
const SIZE_LIMIT: usize = 64 << 20;

#[derive(Debug)]
enum Engine {
    Linear(regex::Regex),
    Backtrack(fancy_regex::Regex),
}

#[derive(Debug)]
pub struct Compiled {
    engine: Engine,
    names: Vec<Option<String>>,
    /// For a linear regex anchored at the start of the text (a prefregex,
    /// most failregexes): its captures taken in one anchored pass.
    direct: Option<Direct>,
}

/// The `regex` crate finds a match's end with its lazy DFA first, then
/// takes the captures with this same backtracker over that span; a regex
/// that can only match at the start needs the second pass alone (the same
/// engine, the same leftmost-first captures).
struct Direct {
    engine: BoundedBacktracker,
    /// Reused between lines, as the `regex` crate keeps its own.
    scratch: Pool<Scratch, MakeScratch>,
}

type Scratch = (backtrack::Cache, Captures);
type MakeScratch = Box<dyn Fn() -> Scratch + Send + Sync + UnwindSafe + RefUnwindSafe>;

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

impl Direct {
    /// None unless `pattern` only ever matches at the start.
    fn new(pattern: &str) -> Option<Direct> {
        let engine = BoundedBacktracker::builder()
            .thompson(thompson::Config::new().nfa_size_limit(Some(SIZE_LIMIT)))
            .build(pattern)
            .ok()?;
        if !engine.get_nfa().is_always_start_anchored() {
            return None;
        }
        let make: MakeScratch = {
            let engine = engine.clone();
            Box::new(move || (engine.create_cache(), engine.create_captures()))
        };
        Some(Direct {
            engine,
            scratch: Pool::new(make),
        })
    }

    /// The captures of the match at the start of `hay` (not matched:
    /// `is_match` false); None when `hay` is too long for the engine.
    fn captures<T>(&self, hay: &str, read: impl FnOnce(&Captures) -> T) -> Option<T> {
        if hay.len() > self.engine.max_haystack_len() {
            return None;
        }
        let mut scratch = self.scratch.get();
        let (cache, caps) = &mut *scratch;
        let input = Input::new(hay).anchored(Anchored::Yes);
        self.engine.try_captures(cache, input, caps).ok()?;
        Some(read(caps))
    }
}

/// A match: its span and the named groups that took part.
#[derive(Debug, Clone)]
pub struct Hit {
    pub span: Range<usize>,
    pub groups: Vec<(String, Option<Range<usize>>)>,
}

impl Hit {
    /// The span of group `name`, when it took part.
    pub fn range_of(&self, name: &str) -> Option<Range<usize>> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.clone())
    }

    pub fn group<'a>(&self, hay: &'a str, name: &str) -> Option<&'a str> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.clone())
            .and_then(|r| hay.get(r))
    }
}

impl Compiled {
    /// `multiline` is fail2ban's `re.MULTILINE` (set for failregex when
    /// `maxlines` > 1): `^`/`$` then match at every line.
    pub fn new(python: &str, multiline: bool) -> Result<Compiled, String> {
        let t = pyregex::translate(python)?;
        let pattern = if multiline {
            format!("(?m){}", t.pattern)
        } else {
            t.pattern
        };
        let linear = if t.backtrack {
            None
        } else {
            regex::RegexBuilder::new(&pattern)
                .size_limit(SIZE_LIMIT)
                .build()
                .ok()
        };
        let engine = match linear {
            Some(re) => Engine::Linear(re),
            None => Engine::Backtrack(
                fancy_regex::RegexBuilder::new(&pattern)
                    .delegate_size_limit(SIZE_LIMIT)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        };
        let direct = match &engine {
            Engine::Linear(re) => Direct::new(re.as_str()),
            Engine::Backtrack(_) => None,
        };
        let names = match &engine {
            Engine::Linear(re) => re.capture_names().map(|n| n.map(str::to_string)).collect(),
            Engine::Backtrack(re) => re.capture_names().map(|n| n.map(str::to_string)).collect(),
        };
        Ok(Compiled {
            engine,
            names,
            direct,
        })
    }

    /// What every match must contain (see [`required_factors`] and
    /// [`backtrack_factors`]).
    pub fn factors(&self) -> Vec<Vec<String>> {
        match &self.engine {
            Engine::Linear(re) => required_factors(re.as_str()),
            Engine::Backtrack(re) => backtrack_factors(re.as_str()),
        }
    }

    /// Whether the regex can only match at the start of the text (and
    /// runs on the linear engine).
    pub fn is_anchored(&self) -> bool {
        self.direct.is_some()
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.names.iter().flatten().any(|n| n == name)
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().flatten().map(String::as_str)
    }

    /// The first match in `hay`. A backtracking run that exceeds its step
    /// limit counts as no match, as a time-out would in practice.
    pub fn search(&self, hay: &str) -> Option<Hit> {
        let collect =
            |get: &dyn Fn(usize) -> Option<Range<usize>>| -> Vec<(String, Option<Range<usize>>)> {
                self.names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| n.as_ref().map(|n| (n.clone(), get(i))))
                    .collect()
            };
        if let Some(direct) = &self.direct {
            let found = direct.captures(hay, |caps| {
                let span = caps.get_match()?.range();
                let groups = collect(&|i| caps.get_group(i).map(|s| s.range()));
                Some(Hit { span, groups })
            });
            if let Some(found) = found {
                return found;
            }
        }
        match &self.engine {
            Engine::Linear(re) => {
                let caps = re.captures(hay)?;
                let span = caps.get(0)?.range();
                let groups = collect(&|i| caps.get(i).map(|m| m.range()));
                Some(Hit { span, groups })
            }
            Engine::Backtrack(re) => {
                let caps = re.captures(hay).ok()??;
                let span = caps.get(0)?.range();
                let groups = collect(&|i| caps.get(i).map(|m| m.range()));
                Some(Hit { span, groups })
            }
        }
    }

    #[cfg(test)]
    pub fn is_backtracking(&self) -> bool {
        matches!(self.engine, Engine::Backtrack(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookbehind_runs_on_backtracking_engine() {
        let c = Compiled::new(r"(?<=user )(?P<user>\w+)", false).unwrap();
        assert!(c.is_backtracking());
        let hit = c.search("bad user bob").unwrap();
        assert_eq!(hit.group("bad user bob", "user"), Some("bob"));
    }

    #[test]
    fn plain_regex_stays_linear() {
        let c = Compiled::new(r"^a (?P<x>\d+)$", false).unwrap();
        assert!(!c.is_backtracking());
        assert!(c.search("a 12").is_some());
        assert!(c.search("a 12 b").is_none());
    }

    /// A regex anchored at the start takes its captures in one anchored
    /// pass, with the answer the `regex` crate gives; a line too long for
    /// that pass goes the usual way.
    #[test]
    fn anchored_regex_captures_as_the_regex_crate_does() {
        let c = Compiled::new(
            r"^\s*(?:(?P<h>\S+) )?(?P<d>\w+)\[\d+\]: (?P<content>.+)$",
            false,
        )
        .unwrap();
        assert!(c.direct.is_some());
        let re = regex::Regex::new(
            &pyregex::translate(r"^\s*(?:(?P<h>\S+) )?(?P<d>\w+)\[\d+\]: (?P<content>.+)$")
                .unwrap()
                .pattern,
        )
        .unwrap();
        let long = format!(" mx1 sshd[1]: {}", "x".repeat(1 << 20));
        for hay in [
            " mx1 sshd[1]: Accepted",
            "sshd[22]: a: b",
            "nothing",
            "",
            " a b[1]: ",
            long.as_str(),
        ] {
            let want = re.captures(hay).map(|caps| {
                let g = |n: &str| caps.name(n).map(|m| m.range());
                (caps.get(0).unwrap().range(), g("h"), g("d"), g("content"))
            });
            let got = c.search(hay).map(|hit| {
                (
                    hit.span.clone(),
                    hit.range_of("h"),
                    hit.range_of("d"),
                    hit.range_of("content"),
                )
            });
            assert_eq!(got, want, "{hay}");
        }
        assert!(Compiled::new(r"a (?P<x>\d+)", false)
            .unwrap()
            .direct
            .is_none());
        assert!(Compiled::new(r"^a", true).unwrap().direct.is_none());
    }

    #[test]
    fn multiline_anchors_each_line() {
        let c = Compiled::new(r"^b$", true).unwrap();
        assert!(c.search("a\nb\n").is_some());
        let c = Compiled::new(r"^b$", false).unwrap();
        assert!(c.search("a\nb").is_none());
    }
}
