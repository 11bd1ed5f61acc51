//! Captures from the part of the line that holds them.
//!
//! The backtracker that takes the host out of a matching line costs about
//! three times the lazy DFA that says it matches, and most of that goes on
//! the syslog header and program name before the host, which capture
//! nothing. So a pattern `A L B`, where `L` is a literal of its top-level
//! sequence and every capture we read is in `B`, is cut at `L`. When `L`
//! occurs exactly once in a line, every match has it there, so the line
//! matches iff `A` matches all of what comes before and `B` matches after
//! it, and the backtracker's first match of the whole pattern has the same
//! captures as its first match of `B` alone (the part before is forced).
//! `A` is then checked by a DFA and only `B` goes through the backtracker.
//! A line where `L` is missing or repeated takes the whole-pattern path.
//!
//! `B` is split once more after the part holding the host, `B = H T`, when
//! `T` holds no capture we read: the backtracker runs over `H` alone and a
//! DFA checks that `T` matches where `H`'s match ended. The backtracker's
//! first match of `H` is the highest-priority way through `H`; when `T`
//! follows it, the highest-priority match of `B` goes through it too (any
//! other way through `H` ranks lower), so the captures are the same. When
//! `T` does not follow it, the whole `B` goes through the backtracker. On a
//! SASL line this leaves the text after the address (`: SASL LOGIN
//! authentication failed: …`, half the line) to the DFA.
//!
//! The account (`user` group) is read from the same pass. Where it lies in
//! `T` (`, sasl_username=…` after the address) and the caller wants it, `T`
//! goes through a backtracker of its own instead of the DFA, anchored where
//! `H` ended: for the same reason as above, `T`'s first match there is the
//! one the whole pattern's first match goes through, so its `user` group
//! is the whole pattern's.

use memchr::memmem;
use regex::Regex;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::{meta, Input, PatternID, Span};
use regex_syntax::hir::{Hir, HirKind, Look};

use super::twin::{Twin, TwinSpace};
use crate::filter::fail2ban::FAIL2BAN_HOST_GROUPS;
use crate::filter::tags;

/// Literals shorter than this are too common to be unique in a line.
const MIN_CUT: usize = 4;

#[derive(Clone)]
pub struct Cut {
    literal: memmem::Finder<'static>,
    /// `^(?:A)$`, over the text before the literal.
    before: Regex,
    /// `B`, run anchored right after the literal.
    pub engine: Twin,
    /// The groups read from `engine`'s captures.
    pub groups: Groups,
    /// The `user` group's index in `engine`'s captures.
    user: Option<usize>,
    /// The `user` group is in `A`: a line whose account is wanted takes
    /// the whole-pattern path.
    user_before: bool,
    /// `B` split after the host (see [`Head`]).
    head: Option<Head>,
}

/// `B` split after the host: `H`'s backtracker with its group indices, and
/// `T`, run anchored where `H` ended.
#[derive(Clone)]
struct Head {
    engine: Twin,
    groups: Groups,
    /// The `user` group's index in `engine`'s captures.
    user: Option<usize>,
    tail: meta::Regex,
    /// `T`'s backtracker and its `user` group index, when `T` holds that
    /// group: run instead of `tail` when the account is wanted.
    user_tail: Option<(BoundedBacktracker, usize)>,
}

/// Per-thread state of a cut's backtrackers.
pub struct CutScratch {
    space: TwinSpace,
    head: Option<TwinSpace>,
    user_tail: Option<(backtrack::Cache, Captures)>,
}

/// What [`Cut::captures`] found: captures of the whole pattern (offsets
/// into the line), the group indices to read them by, the `user` group's
/// span when it was wanted and took part, and where the match ends.
pub type CutCaptures<'s> = (&'s Captures, Groups, Option<Span>, usize);

/// Where a pattern's captures say who failed: our tags' host, host:port
/// and count groups, or, for a fail2ban filter compiled into the matcher,
/// fail2ban's `ip4`, `ip6` and `dns` (see [`crate::filter::Hosts`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Groups {
    pub host: Option<usize>,
    pub host_port: Option<usize>,
    pub count: Option<usize>,
    /// fail2ban's host groups, in the order it asks them.
    pub fail2ban: [Option<usize>; 3],
}

/// The groups of a backtracker that say who failed.
pub(super) fn groups(engine: &BoundedBacktracker) -> Groups {
    let info = engine.get_nfa().group_info();
    let group = |name: &str| info.to_index(PatternID::ZERO, name);
    Groups {
        host: group(tags::HOST_GROUP),
        host_port: group(tags::HOST_PORT_GROUP),
        count: group(tags::COUNT_GROUP),
        fail2ban: FAIL2BAN_HOST_GROUPS.map(group),
    }
}

/// Whether `hir` holds a group that says who failed.
fn holds_host(hir: &Hir) -> bool {
    [tags::HOST_GROUP, tags::HOST_PORT_GROUP]
        .iter()
        .chain(&FAIL2BAN_HOST_GROUPS)
        .any(|g| has_group(hir, g))
}

/// The `user` group's index in a backtracker's captures.
pub(super) fn user_group(engine: &BoundedBacktracker) -> Option<usize> {
    engine
        .get_nfa()
        .group_info()
        .to_index(PatternID::ZERO, tags::USER_GROUP)
}

/// `b` split after its first top-level part holding the host: `H`'s
/// backtracker with its groups, and `T` as an anchored DFA-backed regex
/// (and a backtracker where it holds the account). None when `T` is empty
/// or holds the count.
fn split_after_host(b: &[Hir]) -> Option<Head> {
    // The last part holding one: a fail2ban `<ADDR>` may be split over
    // several, and all must be in `H`.
    let h = b.iter().rposition(holds_host)?;
    let (head, tail) = b.split_at(h + 1);
    if tail.is_empty() || tail.iter().any(|p| has_group(p, tags::COUNT_GROUP)) {
        return None;
    }
    let head_text = Hir::concat(head.to_vec()).to_string();
    let engine = BoundedBacktracker::new(&head_text).ok()?;
    let tail_text = Hir::concat(tail.to_vec()).to_string();
    let user_tail = if tail.iter().any(|p| has_group(p, tags::USER_GROUP)) {
        // Without it the account would be missed on this path.
        let e = BoundedBacktracker::new(&tail_text).ok()?;
        let user = user_group(&e)?;
        Some((e, user))
    } else {
        None
    };
    let tail = meta::Regex::new(&tail_text).ok()?;
    Some(Head {
        groups: groups(&engine),
        user: user_group(&engine),
        engine: Twin::new(&head_text, engine),
        tail,
        user_tail,
    })
}

impl Cut {
    /// The cut of `pattern` at its last top-level literal before the host
    /// group, if it has one that qualifies.
    pub fn new(pattern: &str) -> Option<Cut> {
        let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let host = parts.iter().position(holds_host)?;
        let at = (0..host)
            .rev()
            .find(|&i| matches!(parts[i].kind(), HirKind::Literal(l) if l.0.len() >= MIN_CUT))?;
        let HirKind::Literal(literal) = parts[at].kind() else {
            return None;
        };
        let (a, b) = (&parts[..at], &parts[at + 1..]);
        // What we read must all be in B; A's look-arounds, but for the
        // line start, would see a different text end than in the line.
        if a.iter()
            .any(|p| has_group(p, tags::COUNT_GROUP) || has_look(p))
        {
            return None;
        }
        let before = Regex::new(&format!("(?:{})\\z", Hir::concat(a.to_vec()))).ok()?;
        let b_text = Hir::concat(b.to_vec()).to_string();
        let engine = BoundedBacktracker::new(&b_text).ok()?;
        Some(Cut {
            literal: memmem::Finder::new(&literal.0).into_owned(),
            before,
            groups: groups(&engine),
            user: user_group(&engine),
            user_before: a.iter().any(|p| has_group(p, tags::USER_GROUP)),
            head: split_after_host(b),
            engine: Twin::new(&b_text, engine),
        })
    }

    /// Whether `B` is split after the host (see the module doc).
    #[cfg(test)]
    pub fn splits_after_host(&self) -> bool {
        self.head.is_some()
    }

    pub fn scratch(&self) -> CutScratch {
        CutScratch {
            space: self.engine.space(),
            head: self.head.as_ref().map(|h| h.engine.space()),
            user_tail: self
                .head
                .as_ref()
                .and_then(|h| h.user_tail.as_ref())
                .map(|(e, _)| (e.create_cache(), e.create_captures())),
        }
    }

    /// Captures of the whole pattern on `line` (see [`CutCaptures`]; the
    /// `user` span only when `want_user`, where the match ends only when
    /// `want_end`, else 0); None when this line needs the
    /// whole-pattern path (the literal missing or repeated, or the rest too
    /// long for the backtracker).
    pub fn captures<'s>(
        &self,
        s: &'s mut CutScratch,
        line: &str,
        want_user: bool,
        want_end: bool,
        ascii: bool,
    ) -> Option<CutCaptures<'s>> {
        if want_user && self.user_before {
            return None;
        }
        let bytes = line.as_bytes();
        let at = self.literal.find(bytes)?;
        let after = at + self.literal.needle().len();
        if self.literal.find(&bytes[at + 1..]).is_some() {
            return None;
        }
        if line.len() - after > self.engine.max_haystack_len(ascii) {
            return None;
        }
        if !self.before.is_match(line.get(..at)?) {
            return Some((s.space.no_match(), self.groups, None, 0));
        }
        let input = Input::new(line)
            .span(after..line.len())
            .anchored(regex_automata::Anchored::Yes);
        if let (Some(head), Some(space)) = (&self.head, &mut s.head) {
            if let Some(caps) = head.engine.captures(space, input.clone(), ascii) {
                let caps = &*caps;
                let Some(end) = caps.get_match().map(|m| m.end()) else {
                    // `H` fails, so `B` does.
                    return Some((caps, head.groups, None, 0));
                };
                let rest = Input::new(line)
                    .span(end..line.len())
                    .anchored(regex_automata::Anchored::Yes);
                let user_tail = head.user_tail.as_ref().filter(|_| want_user);
                match (user_tail, &mut s.user_tail) {
                    (Some((engine, user)), Some((t_cache, t_caps))) => {
                        // Too long for it: the whole `B` is asked below.
                        if engine.try_captures(t_cache, rest, t_caps).is_ok() {
                            if let Some(m) = t_caps.get_match() {
                                let user = t_caps.get_group(*user);
                                return Some((caps, head.groups, user, m.end()));
                            }
                        }
                    }
                    _ => {
                        // Where the match ends is found only when asked:
                        // whether it matches may be known sooner.
                        let end = if want_end {
                            head.tail.search(&rest).map(|m| m.end())
                        } else {
                            head.tail.is_match(rest).then_some(0)
                        };
                        if let Some(end) = end {
                            let user = head.user.filter(|_| want_user);
                            let user = user.and_then(|u| caps.get_group(u));
                            return Some((caps, head.groups, user, end));
                        }
                    }
                }
            }
        }
        let caps = self.engine.captures(&mut s.space, input, ascii)?;
        let user = self.user.filter(|_| want_user);
        let end = caps.get_match().map_or(0, |m| m.end());
        let user = user.and_then(|u| caps.get_group(u));
        Some((caps, self.groups, user, end))
    }
}

fn has_group(hir: &Hir, name: &str) -> bool {
    match hir.kind() {
        HirKind::Capture(c) => c.name.as_deref() == Some(name) || has_group(&c.sub, name),
        HirKind::Repetition(r) => has_group(&r.sub, name),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(|h| has_group(h, name)),
        _ => false,
    }
}

/// Whether `hir` holds a look-around other than the text start.
fn has_look(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(Look::Start) => false,
        HirKind::Look(_) => true,
        HirKind::Capture(c) => has_look(&c.sub),
        HirKind::Repetition(r) => has_look(&r.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(has_look),
        _ => false,
    }
}
