//! fail2ban filter files compiled into the matcher that runs our own
//! filters.
//!
//! fail2ban judges a line filter by filter, regex by regex. Most of its
//! filters need nothing more than our matcher gives: one line at a time,
//! regexes on the linear engine, and no group but the host and the
//! account. Such a filter's regexes run in the matcher (one pass
//! for all of a file's filters, literal gates, captures cut after the
//! host) over the same text fail2ban's would: the line without its date,
//! cut by the filter's own date pattern (see [`super::group`]). What the
//! matcher reads from a match is what fail2ban reads: the first
//! failregex that matches decides the line, its host is the first of the
//! `ip4`, `ip6` and `dns` groups that took part, and a match where none
//! took part leaves the line to the next failregex.
//!
//! A filter with a `prefregex` folds too: the prefregex is run as fail2ban
//! runs it (by the engine, once for all folded filters that share it) and
//! its content goes to the matcher. The prefregex must then capture
//! nothing but the content (its groups would join each failure's).
//!
//! The rest stays on the sequential engine, and [`Fail2banFilter::fold`]
//! says why: a multi-line buffer (`maxlines`), the connection cache and
//! the tags that feed it (`<F-MLFID>`, `<F-NOFAIL>`, `<F-ID>`, ...),
//! look-around or back-references, and groups of other fields.

use std::net::IpAddr;

use regex::{Regex, RegexBuilder};

use super::engine::{Compiled, SIZE_LIMIT};
use super::filter::Fail2banFilter;
use crate::filter::Filter;

/// fail2ban's groups that name who failed, in the order it asks them.
pub const FAIL2BAN_HOST_GROUPS: [&str; 3] = ["ip4", "ip6", "dns"];

/// The named groups the matcher reads itself: who failed and the
/// account. A folded filter with others (`<F-ALT_USER>`, `<F-PORT>`, ...)
/// has its failure's values read by the engine, from the failregex the
/// matcher found, on the lines it found.
const MATCHER_GROUPS: [&str; 4] = ["ip4", "ip6", "dns", "user"];

/// Groups that feed fail2ban's connection cache or change what a failure
/// is counted by: a filter with them stays on the engine.
const ENGINE_GROUPS: [&str; 8] = [
    "fid",
    "mlfid",
    "nofail",
    "mlfgained",
    "mlfforget",
    "mlfpending",
    "content",
    "cidr",
];

/// Whether a folded failregex may have group `name`.
fn foldable_group(name: &str) -> bool {
    if name.starts_with("skiplines") || ENGINE_GROUPS.contains(&name) {
        return false;
    }
    // `<F-ALT_X>` fills X when X is empty: X must be a group that may be.
    let Some(rest) = name.strip_prefix("alt_") else {
        return true;
    };
    let base = match rest.rsplit_once('_') {
        Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => rest,
    };
    let base = match base {
        "id" => "fid",
        "port" => "fport",
        b => b,
    };
    !FAIL2BAN_HOST_GROUPS.contains(&base) && foldable_group(base)
}

/// `re` with fail2ban's host groups renamed, so the matcher takes its
/// every match as deciding (see `fail2ban_hit` in the matcher). None when
/// the pattern's text could hold a group's opening as literal text.
fn hide_hosts(re: &Regex) -> Option<Regex> {
    let mut pattern = re.as_str().to_string();
    if pattern.contains("\\(?P<") {
        return None;
    }
    for g in FAIL2BAN_HOST_GROUPS {
        pattern = pattern.replace(&format!("(?P<{g}>"), &format!("(?P<{g}_in_line>"));
    }
    let hidden = RegexBuilder::new(&pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .ok()?;
    (hidden.captures_len() == re.captures_len()).then_some(hidden)
}

/// What the matcher found for one folded filter on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedHit<'t> {
    /// The failregex that decided the line.
    pub regex: usize,
    /// The host's text, as fail2ban counts failures by it.
    pub host: &'t str,
    /// The host when it is an address.
    pub addr: Option<IpAddr>,
    /// The `user` group's text, when it took part.
    pub user: Option<&'t str>,
}

/// Folded filters judged together over a text (a line without its date).
/// The matcher implements it; it lives a layer above this one.
pub trait FoldedJudge: Send {
    /// Calls `hit(filter, found)` for each filter (numbered in the order
    /// they were folded) that finds a failure in `text`.
    fn judge<'t>(&self, text: &'t str, hit: &mut dyn FnMut(usize, FoldedHit<'t>));
}

/// Builds the judge of a set of folded filters (see
/// [`super::Fail2banFilters::with_fold`]).
pub type Fold<'a> = &'a mut dyn FnMut(Vec<Filter>) -> Option<Box<dyn FoldedJudge>>;

impl Fail2banFilter {
    /// This filter as one of ours, for the matcher, or why it runs on
    /// fail2ban's sequential engine.
    pub fn fold(&self) -> Result<Filter, &'static str> {
        let set = self.compiled();
        if set.maxlines > 1 {
            return Err("it reads several lines at once (maxlines)");
        }
        // A prefregex that names the host: every failregex match is then
        // a failure of that host (its groups join each failure's, see
        // `Fail2banFilter::failure`).
        let mut host_in_prefix = false;
        if let Some(pref) = set.prefregex {
            if pref
                .group_names()
                .any(|g| g != "content" && !foldable_group(g))
            {
                return Err("its prefregex feeds the connection cache (<F-MLFID>, ...)");
            }
            host_in_prefix = FAIL2BAN_HOST_GROUPS.iter().any(|g| pref.has_group(g));
            // fail2ban asks the ignoreregexes of the whole line first when
            // there are few of them, and of the content after a match
            // otherwise: the matcher sees the content alone.
            if !set.ignoreregex.is_empty() && set.ignoreregex.len() + 2 < set.failregex.len() {
                return Err("its ignoreregexes are asked of the line before its prefregex");
            }
        }
        let mut failregex = Vec::with_capacity(set.failregex.len());
        for re in &set.failregex {
            let (linear, _) = re
                .foldable()
                .ok_or("a failregex needs look-around or back-references")?;
            if re.group_names().any(|g| !foldable_group(g)) {
                return Err("a failregex feeds the connection cache or names the failure otherwise than by its host (<F-MLFID>, <F-NOFAIL>, <F-ID>, ...)");
            }
            let names_host = FAIL2BAN_HOST_GROUPS.iter().any(|g| re.has_group(g));
            if !(names_host || host_in_prefix) {
                return Err("a failregex names no host");
            }
            // With the host in the prefregex, any match of a failregex is a
            // failure (of whichever host the engine then reads): the
            // matcher must not read the failregex's own.
            let linear = if names_host && host_in_prefix {
                hide_hosts(linear).ok_or("a failregex's host groups cannot be told apart")?
            } else {
                linear.clone()
            };
            failregex.push(linear);
        }
        let ignoreregex = set
            .ignoreregex
            .iter()
            .map(|re| re.linear_regex().cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or("an ignoreregex needs look-around or back-references")?;
        Ok(Filter::from_fail2ban(self.name(), failregex, ignoreregex))
    }

    /// Whether a folded filter's failures have values the matcher does
    /// not read (see [`MATCHER_GROUPS`]): its prefregex's, or others of
    /// its failregexes'.
    pub(super) fn folded_values(&self) -> bool {
        let set = self.compiled();
        // The matcher runs the part before a look-ahead: the engine
        // confirms its every match.
        let confirmed = |re: &&Compiled| re.foldable().is_some_and(|(_, exact)| !exact);
        set.failregex.iter().any(confirmed)
            || set
                .prefregex
                .is_some_and(|p| p.group_names().any(|g| g != "content"))
            || set
                .failregex
                .iter()
                .any(|re| re.group_names().any(|g| !MATCHER_GROUPS.contains(&g)))
    }
}
