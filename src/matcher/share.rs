//! Patterns of different jails that give the same answer on every line
//! (the postfix-sasl and sasl filters' Postfix patterns): the first of
//! them that a line reaches answers for the others, so a line both jails
//! count goes through the capturing engine once.

use std::sync::Arc;

use regex_syntax::hir::{Hir, HirKind};

use super::{Hit, Pattern};
use crate::filter::{tags, Filter};
use crate::message::JailId;

/// Most patterns whose answer on a line is kept for another (see
/// `Pattern::keep`): the answers live on the stack, line by line.
pub(super) const KEPT: usize = 8;

/// A pattern's answer on a line as kept for another pattern (see
/// `Pattern::same_as`): None while not asked.
pub(super) type Kept = Option<Option<Hit>>;

/// `pattern` less the optional parts at its end that hold no host or
/// count: two patterns with the same such core match the same lines
/// with the same host and count. An optional part at the end always
/// matches (empty if need be), so it decides no line; and the first
/// match of the whole pattern goes through the first way through the
/// core that matches, whatever follows, so the core's captures are the
/// same. The postfix-sasl and sasl filters' Postfix patterns differ only
/// by the account part at the end.
pub(super) fn same_core(pattern: &str) -> Option<Hir> {
    fn reads(h: &Hir) -> bool {
        match h.kind() {
            HirKind::Capture(c) => {
                [tags::HOST_GROUP, tags::HOST_PORT_GROUP, tags::COUNT_GROUP]
                    .iter()
                    .any(|g| c.name.as_deref() == Some(*g))
                    || reads(&c.sub)
            }
            HirKind::Repetition(r) => reads(&r.sub),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(reads),
            _ => false,
        }
    }
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let HirKind::Concat(parts) = hir.kind() else {
        return Some(hir);
    };
    let mut parts = parts.clone();
    while let Some(last) = parts.last() {
        let optional =
            matches!(last.kind(), HirKind::Repetition(r) if r.min == 0 && r.max == Some(1));
        if !optional || reads(last) {
            break;
        }
        parts.pop();
    }
    Some(Hir::concat(parts))
}

/// Marks the patterns whose answer another, later pattern of another
/// jail gives too (see [`same_core`]), at most [`KEPT`] of them.
pub(super) fn share_answers(jails: &[(JailId, Arc<Filter>)], patterns: &mut [Pattern]) {
    // A fail2ban filter's host groups are not ours: its core would not
    // keep them (see [`super::fail2ban_hit`]), so it shares nothing.
    let ours = |re: &regex::Regex| {
        re.capture_names()
            .any(|n| n == Some(tags::HOST_GROUP) || n == Some(tags::HOST_PORT_GROUP))
    };
    let cores: Vec<_> = patterns
        .iter()
        .map(|p| {
            let re = &jails[p.slot].1.failregex[p.index];
            ours(re).then(|| same_core(re.as_str())).flatten()
        })
        .collect();
    let mut kept = 0;
    for i in 0..patterns.len() {
        let Some(core) = &cores[i] else { continue };
        let earlier = (0..i)
            .find(|&j| patterns[j].slot != patterns[i].slot && cores[j].as_ref() == Some(core));
        let Some(j) = earlier else { continue };
        let keep = match patterns[j].keep {
            Some(k) => k,
            None if kept < KEPT => {
                kept += 1;
                patterns[j].keep = Some(kept - 1);
                kept - 1
            }
            None => continue,
        };
        patterns[i].same_as = Some(keep);
    }
}
