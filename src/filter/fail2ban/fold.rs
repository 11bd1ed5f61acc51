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
//! A failregex that ends in a look-ahead (`postfix[mode=auth]`'s
//! `(?! Connection lost ...)`) folds as the part before it, the
//! look-ahead checked where that part's match ends ([`crate::filter::After`]),
//! as the engine itself first tries; where the look-ahead refuses, the
//! engine judges that line for that filter.
//!
//! The rest stays on the sequential engine, and [`Fail2banFilter::fold`]
//! says why: a multi-line buffer (`maxlines`), the connection cache and
//! the tags that feed it (`<F-MLFID>`, `<F-NOFAIL>`, `<F-ID>`, ...),
//! other look-around or back-references, and groups the matcher does not
//! read (`<F-ALT_USER>`, other fields, a prefregex's host). Those last
//! could be read by the engine from the line the matcher found, but that
//! is a second capture pass per failure line, dearer than the engine's
//! own way.

use std::net::IpAddr;

use super::filter::Fail2banFilter;
use crate::filter::Filter;

/// fail2ban's groups that name who failed, in the order it asks them.
pub const FAIL2BAN_HOST_GROUPS: [&str; 3] = ["ip4", "ip6", "dns"];

/// The named groups a folded failregex may have: those that say who
/// failed and the account, which is all the daemon reads of a failure.
const FOLDED_GROUPS: [&str; 4] = ["ip4", "ip6", "dns", "user"];

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
    /// The failregex's look-ahead refused the match: the engine must
    /// judge the line.
    pub unsure: bool,
}

/// Folded filters judged together over a text (a line without its date).
/// The matcher implements it; it lives a layer above this one.
pub trait FoldedJudge: Send {
    /// Calls `hit(filter, found)` for each filter (numbered in the order
    /// they were folded) that finds a failure in `text`.
    fn judge(&self, text: &str, hit: &mut dyn FnMut(usize, FoldedHit<'_>));
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
            return Err("it reads several lines at once (maxlines): fail2ban's multi-line buffer");
        }
        if let Some(pref) = set.prefregex {
            if pref.group_names().any(|g| g != "content") {
                return Err("its prefregex captures more than its content (the host, <F-MLFID>, ...), which the engine merges into each failure");
            }
            // fail2ban asks the ignoreregexes of the whole line first when
            // there are few of them, and of the content after a match
            // otherwise: the matcher sees the content alone.
            if !set.ignoreregex.is_empty() && set.ignoreregex.len() + 2 < set.failregex.len() {
                return Err("its ignoreregexes are asked of the line before its prefregex");
            }
        }
        let mut failregex = Vec::with_capacity(set.failregex.len());
        for re in &set.failregex {
            let (body, after) = re.foldable();
            let linear = body
                .linear_regex()
                .ok_or("a failregex needs look-around or back-references")?;
            if re.group_names().any(|g| !FOLDED_GROUPS.contains(&g)) {
                return Err("a failregex captures more than the host and the account (<F-ALT_USER>, <F-MLFID>, <F-NOFAIL>, <F-ID>, other fields), which the engine reads");
            }
            if !FAIL2BAN_HOST_GROUPS.iter().any(|g| re.has_group(g)) {
                return Err("a failregex names no host");
            }
            // Before a look-ahead, a match that names no host would leave
            // the line to the next failregex where the look-ahead might
            // have refused it (see `After`).
            if after.is_some() && !body.always_has(&FAIL2BAN_HOST_GROUPS, false) {
                return Err("a failregex before its look-ahead may name no host");
            }
            failregex.push((linear.clone(), after));
        }
        let ignoreregex = set
            .ignoreregex
            .iter()
            .map(|re| re.linear_regex().cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or("an ignoreregex needs look-around or back-references")?;
        Ok(Filter::from_fail2ban(self.name(), failregex, ignoreregex))
    }
}
