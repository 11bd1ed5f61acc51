//! One pass per line over every jail that reads the same source.
//!
//! All failregexes of all those jails go into one `RegexSet`: a line that no
//! jail cares about (nearly all of them) costs one scan of a lazy DFA and no
//! allocation, whether one jail or ten read the file. Before that, a `memmem`
//! search for each pattern's required literal (see [`crate::filter::literal`])
//! turns most lines away without running any regex. Only when the set says a
//! pattern matched is that pattern's capturing regex run to pull out the host.

use std::net::IpAddr;
use std::sync::Arc;

use memchr::memmem;
use regex::RegexSet;

use crate::filter::{host_in, Filter};
use crate::message::JailId;

pub struct Matcher {
    /// Per pattern of `set`, the literal every match of it contains; None when
    /// some pattern has none (then every line goes through the set instead).
    prefilter: Option<Vec<memmem::Finder<'static>>>,
    set: RegexSet,
    /// For each pattern of `set`: which entry of `jails` it belongs to, and its index there.
    owners: Vec<(usize, usize)>,
    jails: Vec<(JailId, Arc<Filter>)>,
}

impl Matcher {
    pub fn new(jails: Vec<(JailId, Arc<Filter>)>) -> Self {
        let mut owners = Vec::new();
        let mut sources = Vec::new();
        for (slot, (_, filter)) in jails.iter().enumerate() {
            for (i, re) in filter.failregex.iter().enumerate() {
                owners.push((slot, i));
                sources.push(re.as_str().to_string());
            }
        }
        // Each pattern compiled alone when its filter was checked; together
        // they can only exceed the size limit, so raise it rather than fail.
        let set = regex::RegexSetBuilder::new(&sources)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()
            .unwrap_or_else(|_| RegexSet::empty());
        let literals: Option<Vec<String>> = sources
            .iter()
            .map(|s| crate::filter::literal::required_literal(s))
            .collect();
        let prefilter = literals.map(|lits| {
            lits.iter()
                .map(|l| memmem::Finder::new(l.as_bytes()).into_owned())
                .collect()
        });
        Matcher {
            prefilter,
            set,
            owners,
            jails,
        }
    }

    /// Calls `hit(jail, addr)` for each jail whose failregex matches `line`
    /// (first matching failregex of that jail) and whose ignoreregex does not.
    pub fn scan(&self, line: &str, mut hit: impl FnMut(JailId, IpAddr)) {
        match &self.prefilter {
            // Only patterns whose literal is in the line can match; run just
            // those (usually none), in order.
            Some(finders) => {
                let bytes = line.as_bytes();
                let candidates = finders
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.find(bytes).is_some())
                    .map(|(i, _)| i);
                self.confirm(line, candidates, &mut hit);
            }
            None => {
                if self.set.is_match(line) {
                    self.confirm(line, self.set.matches(line).into_iter(), &mut hit);
                }
            }
        }
    }

    /// Runs the capturing regex of each candidate pattern (in pattern order),
    /// reporting each jail at most once and honouring its ignoreregex.
    fn confirm(
        &self,
        line: &str,
        candidates: impl Iterator<Item = usize>,
        hit: &mut impl FnMut(JailId, IpAddr),
    ) {
        let mut last_slot = usize::MAX;
        for pattern in candidates {
            let (slot, index) = self.owners[pattern];
            if slot == last_slot {
                continue;
            }
            let (jail, filter) = &self.jails[slot];
            let Some(addr) = host_in(&filter.failregex[index], line) else {
                continue;
            };
            last_slot = slot;
            if filter.ignoreregex.iter().any(|re| re.is_match(line)) {
                continue;
            }
            hit(*jail, addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterDef;

    fn filter(fail: &[&str], ignore: &[&str]) -> Arc<Filter> {
        let def = FilterDef {
            description: String::new(),
            failregex: fail.iter().map(|s| s.to_string()).collect(),
            ignoreregex: ignore.iter().map(|s| s.to_string()).collect(),
        };
        Arc::new(Filter::compile(&def, "t").unwrap())
    }

    fn hits(m: &Matcher, line: &str) -> Vec<(JailId, String)> {
        let mut out = Vec::new();
        m.scan(line, |j, a| out.push((j, a.to_string())));
        out
    }

    #[test]
    fn every_jail_of_a_line_hits_once() {
        let m = Matcher::new(vec![
            (3, filter(&["fail from <HOST>$", "bad from <HOST>$"], &[])),
            (7, filter(&["from <HOST>$"], &[])),
            (9, filter(&["nomatch <HOST>"], &[])),
        ]);
        assert_eq!(
            hits(&m, "fail from 192.0.2.1"),
            vec![(3, "192.0.2.1".into()), (7, "192.0.2.1".into())]
        );
        assert_eq!(
            hits(&m, "bad from 2001:db8::7"),
            vec![(3, "2001:db8::7".into()), (7, "2001:db8::7".into())]
        );
        assert!(hits(&m, "all good").is_empty());
    }

    #[test]
    fn patterns_without_a_required_literal_go_through_the_set() {
        let m = Matcher::new(vec![
            (0, filter(&["^<HOST>$"], &[])),
            (1, filter(&["from <HOST>$"], &[])),
        ]);
        assert!(m.prefilter.is_none());
        assert_eq!(hits(&m, "2001:db8::9"), vec![(0, "2001:db8::9".into())]);
        assert_eq!(hits(&m, "from 192.0.2.1"), vec![(1, "192.0.2.1".into())]);
        assert!(hits(&m, "nothing").is_empty());
    }

    #[test]
    fn ignoreregex_suppresses_only_its_jail() {
        let m = Matcher::new(vec![
            (0, filter(&["from <HOST>$"], &["trusted"])),
            (1, filter(&["from <HOST>$"], &[])),
        ]);
        assert_eq!(
            hits(&m, "trusted from 192.0.2.1"),
            vec![(1, "192.0.2.1".into())]
        );
    }

    #[test]
    fn second_regex_of_a_jail_is_tried_when_first_host_is_invalid() {
        let m = Matcher::new(vec![(0, filter(&["a <HOST>", "b=<HOST>$"], &[]))]);
        assert_eq!(
            hits(&m, "a 999.9.9.9 b=192.0.2.4"),
            vec![(0, "192.0.2.4".into())]
        );
    }

    #[test]
    fn counts_on_a_generated_mixed_log() {
        let m = Matcher::new(vec![(
            0,
            Arc::new(
                Filter::compile(
                    &FilterDef::parse(crate::filter::library("postfix-sasl").unwrap(), "lib")
                        .unwrap(),
                    "postfix-sasl",
                )
                .unwrap(),
            ),
        )]);
        let mut lines = Vec::new();
        for i in 0..200_000u32 {
            let a = format!("198.51.{}.{}", (i / 250) % 250, i % 250);
            lines.push(if i % 20 == 0 {
                format!("Mar  5 16:01:34 mx1 postfix/submission/smtpd[{i}]: warning: unknown[{a}]: SASL LOGIN authentication failed: authentication failure")
            } else {
                format!("Mar  5 16:01:34 mx1 postfix/smtpd[{i}]: connect from unknown[{a}]")
            });
        }
        let start = std::time::Instant::now();
        let mut n = 0;
        for l in &lines {
            m.scan(l, |_, _| n += 1);
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!("matcher: {:.0} lines/s", lines.len() as f64 / secs);
        assert_eq!(n, 10_000);
    }
}
