//! One pass per line over every jail that reads the same source.
//!
//! Nearly every line matches nothing, so the whole design is about turning
//! those away cheaply, without allocating, however many jails read the file:
//!
//! * a pattern with a required literal (see [`crate::filter::literal`]), as
//!   every built-in pattern has, is covered by one multi-literal search over
//!   all those literals at once (the `regex` crate runs an alternation of
//!   plain literals as a SIMD / Aho-Corasick scan);
//! * the patterns without one go into a single `RegexSet` (one lazy-DFA pass).
//!
//! Only a line that gets past that gate is looked at per pattern: the
//! pattern's own literal (`memmem`) or set bit, then its capturing regex to
//! take the host out. A pattern that also captures the account
//! (`<F-USER>`) reads it from that same pass, when the caller wants it and
//! the line may hold it (see [`Filter::may_capture_user`]); lines and
//! callers without an account pay nothing for it.

use std::net::IpAddr;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memchr::memmem;
use regex::{Regex, RegexSet, RegexSetBuilder};
use regex_automata::nfa::thompson::backtrack::BoundedBacktracker;
use regex_automata::util::pool::Pool;
use regex_automata::Input;

use crate::filter::literal::{required_factors, required_literal, required_literals, Factors};
use crate::filter::recent::Recent;
use crate::filter::{place_of, tags, After, Filter, Verdict};
use crate::message::{Account, JailId};

mod cut;
mod fold;
mod hit;
mod literals;
mod share;
mod twin;
use cut::{Cut, CutScratch, Groups};
use hit::{read_hit, regex_hit, Hit};
use literals::{search_keys, Literals};
use share::{share_answers, Kept, KEPT};
use twin::{Twin, TwinSpace};

pub struct Matcher {
    jails: Vec<(JailId, Arc<Filter>)>,
    /// Every failregex of every jail, jail by jail, in filter order.
    patterns: Vec<Pattern>,
    /// The patterns' key literals, found in one scan of a line.
    literals: Option<Literals>,
    /// The patterns without a literal, decided together.
    set: Option<RegexSet>,
    /// Patterns that neither gate covers (the set was too large to build):
    /// their regex is run on every line. Slow but never blind.
    ungated: bool,
    /// Per jail, per ignoreregex: what a line must contain for it to be
    /// worth running (a flood's every line reaches the ignoreregexes).
    ignore_gates: Vec<Vec<Factors>>,
    /// Per key literal (an index into [`Literals`]), the patterns it gates:
    /// [`Matcher::find_literal`] checks their other required text before
    /// stopping in a line.
    keyed: Vec<Vec<usize>>,
    /// [`Matcher::gated_by_literals`], asked once.
    gated: bool,
}

struct Pattern {
    /// Index into `Matcher::jails`.
    slot: usize,
    /// Index into that filter's `failregex`.
    index: usize,
    gate: Gate,
    /// The pattern's alternations of text (`(?:tried to use ...|proxy dest
    /// auth failed)`), which its literals cannot express: one of each must
    /// be in the line too.
    alternatives: Factors,
    /// Its captures in one pass (see [`Anchored`]).
    anchored: Option<Anchored>,
    /// It has a `user` group: the account is taken from a line it blames.
    user: bool,
    /// The look-ahead its match must pass where it ends (a fail2ban
    /// filter's, see [`After`]).
    after: Option<After>,
    /// Its required text holds no U+FFFD, so it is in a line's raw bytes
    /// whenever it is in the line as judged (bad bytes decoded to U+FFFD).
    raw_text: bool,
    /// Where its answer on a line is kept for a later pattern that gives
    /// the same (see `same_as`): an index into the line's kept answers.
    keep: Option<usize>,
    /// A pattern before it, of another jail, that matches the same lines
    /// with the same host and count (see [`share::same_core`]): its kept answer
    /// is this one's, unless this one is to read its own account.
    same_as: Option<usize>,
}

/// The capturing engine alone, run anchored at the line start (as every
/// pattern of our library is, `^<SYSLOG>...`; others behind a lazy `.*?`).
/// `Regex::captures`
/// first runs the lazy DFA to find where the match ends, then this same
/// backtracker over that span; a match anchored at 0 needs only the second
/// pass. Same engine, same leftmost-first result; less time on a line that
/// matches. On a line that does not, the DFA gives up sooner
/// than the backtracker, so which way is cheaper depends on how often the
/// lines that get past this pattern's gate match: a pattern whose gate is
/// a common word (`postfix`) goes DFA first, one whose lines mostly match
/// (every line of a flood) goes straight to the backtracker. Lines longer
/// than the backtracker takes go to `Regex::captures`.
struct Anchored {
    engine: Twin,
    /// Reused between lines. A pool as the `regex` crate keeps its caches
    /// in: the thread that uses it first (a source's reader) takes its
    /// scratch with an atomic load, no lock; another thread gets one of
    /// its own.
    scratch: Pool<Scratch, MakeScratch>,
    /// The groups that say who failed (see [`read_hit`]).
    groups: Groups,
    /// The `user` group's index.
    user: Option<usize>,
    /// The same captures from the part of the line after a literal (see
    /// [`cut`]), when the pattern has such a literal.
    cut: Option<Cut>,
    /// Most recent lines that reached this pattern matched it (a flood):
    /// its own literals are not searched for first, since the engine,
    /// which answers anyway, would find them all there.
    flood: AtomicBool,
    /// Where a match ends is read (for a look-ahead, see [`After`]).
    want_end: bool,
}

type MakeScratch = Box<dyn Fn() -> Scratch + Send + Sync + UnwindSafe + RefUnwindSafe>;

struct Scratch {
    space: TwinSpace,
    cut: Option<CutScratch>,
    /// How often the lines that reached this pattern matched it lately.
    recent: Recent,
}

impl Anchored {
    fn new(pattern: &str) -> Option<Anchored> {
        let engine = BoundedBacktracker::new(pattern).ok()?;
        if engine.get_nfa().is_always_start_anchored() {
            return Anchored::with(pattern, engine);
        }
        // An unanchored search is an anchored one behind a lazy `.*?` (so
        // the regex crate runs it): the same leftmost-first match, the same
        // captures. The pattern's own groups keep their numbers.
        let wrapped = format!("^(?s:.)*?(?:{pattern})");
        let engine = BoundedBacktracker::new(&wrapped).ok()?;
        Anchored::with(&wrapped, engine)
    }

    fn with(pattern: &str, engine: BoundedBacktracker) -> Option<Anchored> {
        let cut = Cut::new(pattern);
        let groups = cut::groups(&engine);
        let user = cut::user_group(&engine);
        let engine = Twin::new(pattern, engine);
        let make: MakeScratch = {
            let (engine, cut) = (engine.clone(), cut.clone());
            Box::new(move || Scratch {
                space: engine.space(),
                cut: cut.as_ref().map(Cut::scratch),
                recent: Recent::default(),
            })
        };
        let scratch = Pool::new(make);
        Some(Anchored {
            cut,
            want_end: false,
            flood: AtomicBool::new(false),
            groups,
            user,
            engine,
            scratch,
        })
    }

    /// As [`regex_hit`] (`re` is the same pattern), by whichever way
    /// has been cheaper for this pattern's recent lines.
    fn hit(&self, re: &Regex, line: &str, want_user: bool) -> Option<Hit> {
        let mut s = self.scratch.get();
        let (found, matched) = if s.recent.try_line() {
            match self.direct(&mut s, line, want_user) {
                Some(found) => found,
                None => (regex_hit(re, line, want_user), false),
            }
        } else {
            let found = regex_hit(re, line, want_user);
            (found, found.is_some())
        };
        s.recent.record(matched);
        self.flood.store(s.recent.flooding(), Ordering::Relaxed);
        found
    }

    /// Whether most recent lines matched (see `flood`). A line let through
    /// by it that does not match counts against it, so a flood's end turns
    /// the literals back on.
    fn in_flood(&self) -> bool {
        self.flood.load(Ordering::Relaxed)
    }

    /// The backtracker alone: the hit (with the `user` span when
    /// `want_user`) and whether the pattern matched; None when the line is
    /// too long for it.
    fn direct(&self, s: &mut Scratch, line: &str, want_user: bool) -> Option<(Option<Hit>, bool)> {
        let ascii = line.is_ascii();
        if let (Some(cut), Some(cs)) = (&self.cut, &mut s.cut) {
            if let Some((caps, groups, user, end)) =
                cut.captures(cs, line, want_user, self.want_end, ascii)
            {
                return Some(read_hit(caps, groups, user, end, line));
            }
        }
        if line.len() > self.engine.max_haystack_len(ascii) {
            return None;
        }
        let input = Input::new(line).anchored(regex_automata::Anchored::Yes);
        let caps = self.engine.captures(&mut s.space, input, ascii)?;
        let user = self.user.filter(|_| want_user);
        let user = user.and_then(|u| caps.get_group(u));
        let end = caps.get_match().map_or(0, |m| m.end());
        Some(read_hit(caps, self.groups, user, end, line))
    }
}

enum Gate {
    /// The pattern's keys (indices into [`Literals`], see [`search_keys`]),
    /// one of which is in every line it matches, each with its own search,
    /// and its other required literals, which must all be in the line.
    Literal {
        keys: Vec<(usize, memmem::Finder<'static>)>,
        others: Vec<memmem::Finder<'static>>,
    },
    /// Index of the pattern in `Matcher::set`.
    Set(usize),
    None,
}

impl Matcher {
    pub fn new(jails: Vec<(JailId, Arc<Filter>)>) -> Self {
        let mut patterns = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut unliteral: Vec<&str> = Vec::new();
        for (slot, (_, filter)) in jails.iter().enumerate() {
            for (index, re) in filter.failregex.iter().enumerate() {
                let alternatives: Vec<Vec<String>> = required_factors(re.as_str())
                    .into_iter()
                    .filter(|f| f.len() > 1)
                    .collect();
                let factors = Factors::new(alternatives.clone());
                let gate = match required_literal(re.as_str()) {
                    Some(lit) => {
                        let key_texts = search_keys(&lit, factors.key());
                        let required = required_literals(re.as_str());
                        let others = required
                            .iter()
                            .filter(|l| key_texts != [l.as_bytes()])
                            .map(|l| memmem::Finder::new(l.as_bytes()).into_owned())
                            .collect();
                        let keys = key_texts
                            .iter()
                            .map(|&text| {
                                let key = place_of(&mut literals, text.to_vec());
                                (key, memmem::Finder::new(text).into_owned())
                            })
                            .collect();
                        Gate::Literal { keys, others }
                    }
                    None => {
                        unliteral.push(re.as_str());
                        Gate::Set(unliteral.len() - 1)
                    }
                };
                let mut anchored = Anchored::new(re.as_str());
                let after = filter.after(index).cloned();
                if let Some(a) = &mut anchored {
                    a.want_end = after.is_some();
                }
                let replacement = '\u{FFFD}';
                let raw_text = !required_literals(re.as_str())
                    .iter()
                    .chain(alternatives.iter().flatten())
                    .any(|t| t.contains(replacement));
                patterns.push(Pattern {
                    raw_text,
                    keep: None,
                    same_as: None,
                    slot,
                    index,
                    gate,
                    alternatives: factors,
                    anchored,
                    after,
                    user: re.capture_names().any(|n| n == Some(tags::USER_GROUP)),
                });
            }
        }
        let literals = Literals::new(literals);
        let mut ungated = false;
        let set = if unliteral.is_empty() {
            None
        } else {
            // Each pattern compiled alone when its filter was checked; together
            // they can only exceed the size limits, so raise them.
            match RegexSetBuilder::new(&unliteral)
                .size_limit(256 << 20)
                .dfa_size_limit(64 << 20)
                .build()
            {
                Ok(set) => Some(set),
                Err(e) => {
                    tracing::warn!(
                        "matcher: patterns too large to combine ({e}); running each on every line"
                    );
                    for p in &mut patterns {
                        if matches!(p.gate, Gate::Set(_)) {
                            p.gate = Gate::None;
                        }
                    }
                    ungated = true;
                    None
                }
            }
        };
        share_answers(&jails, &mut patterns);
        let mut keyed = vec![Vec::new(); literals.as_ref().map_or(0, |l| l.texts.len())];
        for (i, p) in patterns.iter().enumerate() {
            if let Gate::Literal { keys, .. } = &p.gate {
                for (key, _) in keys {
                    if let Some(k) = keyed.get_mut(*key) {
                        k.push(i);
                    }
                }
            }
        }
        let ignore_gates = jails
            .iter()
            .map(|(_, f)| {
                f.ignoreregex
                    .iter()
                    .map(|re| Factors::new(required_factors(re.as_str())))
                    .collect()
            })
            .collect();
        let mut m = Matcher {
            jails,
            patterns,
            literals,
            set,
            ungated,
            ignore_gates,
            keyed,
            gated: false,
        };
        m.gated = m.gated_by_literals();
        m
    }

    /// Whether any pattern could match `line`: the gate of
    /// [`Matcher::scan`] alone, without taking captures. For callers that
    /// judge the few lines that pass in their own, slower detail
    /// (`nftjail test` says which regex matched).
    pub fn may_match(&self, line: &str) -> bool {
        self.ungated
            || self
                .literals
                .as_ref()
                .is_some_and(|g| g.find(line.as_bytes(), 0).is_some())
            || self.set.as_ref().is_some_and(|s| s.is_match(line))
    }

    /// Whether every pattern is gated by a literal: then a line holds one
    /// of the literals [`Matcher::find_literal`] looks for, or it matches
    /// nothing. A caller with many lines at once (`nftjail test` reading a
    /// file) can then search them all in one go and judge only the lines
    /// a search stops in.
    pub fn gated_by_literals(&self) -> bool {
        // A line that is not UTF-8 is judged as decoded, with U+FFFD in
        // place of its bad bytes, which only a literal holding U+FFFD sees.
        let replacement = "\u{FFFD}".as_bytes();
        !self.ungated
            && self.set.is_none()
            && self.literals.as_ref().is_none_or(|l| {
                l.texts
                    .iter()
                    .all(|t| memmem::find(t, replacement).is_none())
            })
    }

    /// Where in `text` (any number of lines) the first line that may hit
    /// a pattern holds one of the literals the patterns are gated by, at
    /// or after `from`; a search may also stop where nothing hits. Only
    /// meaningful when [`Matcher::gated_by_literals`]. `text` from `from`
    /// on must be whole lines (`from` is 0 or just after a newline), as
    /// a reader's text is: the line around a literal is checked from the
    /// last newline before it.
    ///
    /// A key literal is often common text (a program's `disconnect from`
    /// line) that the pattern's other required text then rules out: such a
    /// line is passed over here, in the one search over the whole text,
    /// rather than stopped in and judged on its own.
    pub fn find_literal(&self, text: &[u8], from: usize) -> Option<usize> {
        let literals = self.literals.as_ref()?;
        let mut at = from;
        loop {
            let found = literals.find(text, at)?;
            if !self.gated {
                return Some(found);
            }
            let start = memchr::memrchr(b'\n', &text[from..found]).map_or(from, |i| from + i + 1);
            // A line without its newline yet may get the rest of its text
            // with the next read: it is stopped in.
            let Some(end) = memchr::memchr(b'\n', &text[found..]).map(|i| found + i) else {
                return Some(found);
            };
            if self.keys_may_hit(literals, &text[start..end], found - start) {
                return Some(found);
            }
            at = found + 1;
        }
    }

    /// Whether a pattern gated by a literal that starts at `at` in `line`
    /// finds all its required text in the line (what
    /// [`Matcher::first_hits`] asks of it before running its regex).
    fn keys_may_hit(&self, literals: &Literals, line: &[u8], at: usize) -> bool {
        let Some(rest) = line.get(at..) else {
            return true;
        };
        let Some(&b) = rest.first() else {
            return false;
        };
        let b = usize::from(b);
        literals.by_first[literals.first_starts[b]..literals.first_starts[b + 1]]
            .iter()
            .filter(|&&i| rest.starts_with(&literals.texts[i]))
            .flat_map(|&i| self.keyed.get(i).map_or(&[][..], Vec::as_slice))
            .any(|&pi| {
                let p = &self.patterns[pi];
                let Gate::Literal { others, .. } = &p.gate else {
                    return true;
                };
                if !p.raw_text {
                    return true;
                }
                // One of its keys was found at `at`.
                others.iter().all(|f| f.find(line).is_some()) && p.alternatives.admits(line)
            })
    }

    /// Calls `hit(jail, addr)` for each jail whose failregex matches `line`
    /// (its first failregex that yields an address) and whose ignoreregex
    /// does not; once per failure when the line stands for several (a
    /// `<COUNT>` group, at most [`crate::filter::MAX_COUNT`]), so counting
    /// stays the caller's plain one-call-one-failure. Jails are reported in
    /// the order given to [`Matcher::new`].
    pub fn scan(&self, line: &str, mut hit: impl FnMut(JailId, IpAddr)) {
        self.first_hits(line, false, |p, h, _| {
            let Some(addr) = h.addr else { return };
            if self.ignored_by(p.slot, line).next().is_none() {
                for _ in 0..h.count {
                    hit(self.jails[p.slot].0, addr);
                }
            }
        });
    }

    /// [`Matcher::scan`] with the account each failure was against, where
    /// the pattern that blamed the line captures one (see [`Account`]:
    /// bounded, None for text with control characters).
    pub fn scan_accounts(&self, line: &str, mut hit: impl FnMut(JailId, IpAddr, Option<Account>)) {
        self.first_hits(line, true, |p, h, user| {
            let Some(addr) = h.addr else { return };
            if self.ignored_by(p.slot, line).next().is_none() {
                let account = user.and_then(Account::new);
                for _ in 0..h.count {
                    hit(self.jails[p.slot].0, addr, account.clone());
                }
            }
        });
    }

    /// For each jail, its first failregex that yields an address on `line`:
    /// `hit(jail, failregex index, address, count, indices of the
    /// ignoreregexes that match)`. What [`Filter::explain`] finds, by the
    /// fast path: `nftjail test` reports with it.
    pub fn explain_fast(
        &self,
        line: &str,
        mut hit: impl FnMut(JailId, usize, IpAddr, u32, Vec<usize>),
    ) {
        self.first_hits(line, false, |p, h, _| {
            let Some(addr) = h.addr else { return };
            let ignored_by = self.ignored_by(p.slot, line).collect();
            hit(self.jails[p.slot].0, p.index, addr, h.count, ignored_by);
        });
    }

    /// [`Matcher::explain_fast`] with the `user` group read in the same
    /// pass: per jail, the [`Verdict`] that [`Filter::explain`] gives.
    pub fn explain_verdicts(&self, line: &str, mut hit: impl FnMut(JailId, Verdict)) {
        self.first_hits(line, true, |p, h, user| {
            let Some(addr) = h.addr else { return };
            let verdict = Verdict {
                regex: p.index,
                addr,
                count: h.count,
                user: user.map(str::to_string),
                ignored_by: self.ignored_by(p.slot, line).collect(),
            };
            hit(self.jails[p.slot].0, verdict);
        });
    }

    /// Indices of the ignoreregexes of the jail in `slot` that match
    /// `line`, each asked only when the line holds its required text.
    fn ignored_by<'a>(&'a self, slot: usize, line: &'a str) -> impl Iterator<Item = usize> + 'a {
        let filter = &self.jails[slot].1;
        filter
            .ignoreregex
            .iter()
            .zip(&self.ignore_gates[slot])
            .enumerate()
            .filter(move |(_, (re, gate))| gate.admits(line.as_bytes()) && re.is_match(line))
            .map(|(i, _)| i)
    }

    /// The walk behind [`Matcher::scan`]: the gate, then each jail's
    /// patterns in order until one yields an address; with the `user`
    /// group's text when `want_user` and the pattern has one that took part.
    fn first_hits<'l>(
        &self,
        line: &'l str,
        want_user: bool,
        mut found: impl FnMut(&Pattern, &Hit, Option<&'l str>),
    ) {
        let bytes = line.as_bytes();
        let present = self.literals.as_ref().map(|l| l.scan(bytes));
        let literal = present.is_some_and(|p| p.any);
        let set = self.set.as_ref().filter(|s| s.is_match(line));
        if !literal && set.is_none() && !self.ungated {
            return;
        }
        // Past the gate: rare, so allocating here is fine.
        let set_matches = set.map(|s| s.matches(line));
        let mut done_slot = usize::MAX;
        let mut kept: [Kept; KEPT] = [None; KEPT];
        for p in &self.patterns {
            if p.slot == done_slot {
                continue;
            }
            let filter = &self.jails[p.slot].1;
            let user = want_user && p.user && filter.may_capture_user(p.index, line);
            // Another jail's pattern already answered for this one.
            if let Some(Some(answer)) = p.same_as.filter(|_| !user).and_then(|k| kept.get(k)) {
                if let Some(hit) = answer {
                    done_slot = p.slot;
                    found(p, hit, None);
                }
                continue;
            }
            let keep = p.keep.and_then(|k| kept.get_mut(k));
            let candidate = match &p.gate {
                Gate::Literal { keys, others } => {
                    // The keys were looked for by the scan (when it could
                    // not tell, they are asked here). In a flood the others
                    // are left to the engine, which answers anyway; the
                    // keys still keep another jail's lines out of this
                    // pattern's engine.
                    let flood = p.anchored.as_ref().is_some_and(Anchored::in_flood);
                    let key_in = keys
                        .iter()
                        .any(|(key, f)| match present.map(|p| p.has(*key)) {
                            Some(Some(known)) => known,
                            _ => f.find(bytes).is_some(),
                        });
                    let others = if flood { &[][..] } else { others.as_slice() };
                    key_in && others.iter().all(|f| f.find(bytes).is_some())
                }
                Gate::Set(i) => set_matches.as_ref().is_some_and(|m| m.matched(*i)),
                Gate::None => true,
            };
            if !candidate || !p.alternatives.admits(bytes) {
                // Its required text is missing: no pattern of its core matches.
                if let Some(keep) = keep {
                    *keep = Some(None);
                }
                continue;
            }
            let re = &filter.failregex[p.index];
            let hit = match &p.anchored {
                Some(a) => a.hit(re, line, user),
                None => regex_hit(re, line, user),
            };
            if let Some(keep) = keep {
                *keep = Some(hit.map(|h| Hit { user: None, ..h }));
            }
            if let Some(mut hit) = hit {
                if let Some(after) = &p.after {
                    hit.unsure = !after.passes(line, hit.end);
                }
                done_slot = p.slot;
                found(p, &hit, hit.user.and_then(|u| line.get(u.range())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::literals::search_key;
    use super::share::same_core;
    use super::*;
    use crate::filter::{hit_in, FilterDef};

    /// [`Anchored::hit`] without the account, as [`hit_in`] answers.
    fn plain(hit: Option<Hit>) -> Option<(IpAddr, u32)> {
        hit.and_then(|h| Some((h.addr?, h.count)))
    }

    fn filter(fail: &[&str], ignore: &[&str]) -> Arc<Filter> {
        let def = FilterDef {
            description: String::new(),
            failregex: fail.iter().map(|s| s.to_string()).collect(),
            ignoreregex: ignore.iter().map(|s| s.to_string()).collect(),
        };
        Arc::new(Filter::compile(&def, "t").unwrap())
    }

    fn library(name: &str) -> Arc<Filter> {
        let def = FilterDef::parse(crate::filter::library(name).unwrap(), name).unwrap();
        Arc::new(Filter::compile(&def, name).unwrap())
    }

    fn hits(m: &Matcher, line: &str) -> Vec<(JailId, String)> {
        let mut out = Vec::new();
        m.scan(line, |j, a| out.push((j, a.to_string())));
        out
    }

    /// The one-pass path must answer exactly as `hit_in` does, for every
    /// pattern of the library and for hand-written ones with each group.
    #[test]
    fn anchored_path_agrees_with_hit_in() {
        let lines = [
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed: authentication failure",
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: mail.example.com[2001:db8::1]:4711: SASL PLAIN authentication failed:",
            "Mar  5 16:01:34 mx1 sshd[77]: Failed password for root from 192.0.2.7 port 2222 ssh2",
            "Mar  5 16:01:34 mx1 sshd[77]: Failed password for invalid user x from 2001:db8::7 port 22 ssh2",
            "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 3 attempts in 9 secs): user=<a>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.10, TLS",
            "Mar  5 16:01:34 mx1 postfix/smtpd[2]: disconnect from unknown[192.0.2.11] ehlo=1 auth=0/5 quit=1 commands=1/6",
            "auth failed 7 times for 192.0.2.1:8080",
            "nothing to see here",
            "",
            // The cut literal twice (whole-pattern path), or forged after a
            // header that does not match (the part before the cut fails).
            "Mar  5 16:01:34 mx1 postfix/smtpd[3]: warning: unknown[192.0.2.12]: SASL LOGIN authentication failed: ]: warning: x[192.0.2.13]: SASL LOGIN authentication failed",
            "Mar  5 16:01:34 mx1 evil: postfix/smtpd[4]: warning: unknown[192.0.2.14]: SASL LOGIN authentication failed",
            "Mar  5 16:01:34 mx1 sshd[77]: Failed password for root from 192.0.2.15 port 1 ssh2: Failed password for root from 192.0.2.16 port 2 ssh2",
        ];
        let mut checked = 0;
        for name in crate::filter::library_names() {
            for re in &library(name).failregex {
                let a = Anchored::new(re.as_str());
                assert!(a.is_some(), "{name}: {re}");
                if let Some(a) = a {
                    for line in lines {
                        let want = hit_in(re, line);
                        let mut s = a.scratch.get();
                        let direct = a.direct(&mut s, line, false).map(|(found, _)| plain(found));
                        assert_eq!(direct, Some(want), "{name}: {line}");
                        drop(s);
                        assert_eq!(plain(a.hit(re, line, false)), want, "{name}: {line}");
                        checked += usize::from(want.is_some());
                    }
                }
            }
        }
        // postfix-sasl (2 lines), postfix, sshd (2), dovecot at least.
        assert!(checked >= 6, "{checked}");
        // The cut is taken by the library's common patterns.
        for name in ["postfix-sasl", "sshd", "dovecot"] {
            let cuts = library(name)
                .failregex
                .iter()
                .filter(|re| Cut::new(re.as_str()).is_some())
                .count();
            assert!(cuts > 0, "{name}: no pattern is cut");
        }
        let f = filter(
            &[
                "^auth failed <COUNT> times for <HOSTPORT>$",
                "failed for <HOST>",
            ],
            &[],
        );
        let a = Anchored::new(f.failregex[0].as_str()).unwrap();
        let hit = plain(a.hit(&f.failregex[0], lines[6], false));
        assert_eq!(hit, hit_in(&f.failregex[0], lines[6]));
        assert_eq!(hit, Some(("192.0.2.1".parse().unwrap(), 7)));
    }

    /// A pattern not anchored at the line start takes the same path behind
    /// a lazy `.*?`, and finds what the regex finds: the leftmost match
    /// (the first of two hosts), or none. An inline regex as admins write
    /// them is cut after the host too.
    #[test]
    fn an_unanchored_pattern_takes_the_anchored_path_with_the_same_answer() {
        let f = filter(
            &[
                "failed for <HOST>",
                r"postfix/submission/smtpd\[\d+\]: warning: .*\[<HOST>\]: SASL \w+ authentication failed: authentication failure$",
            ],
            &[],
        );
        let lines = [
            "x failed for 192.0.2.1 then failed for 192.0.2.2",
            "failed for 2001:db8::3",
            "failed for nobody",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed: authentication failure",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: a[b]: warning: x[192.0.2.70]: SASL PLAIN authentication failed: authentication failure",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[192.0.2.71]: SASL LOGIN authentication failed: authentication failure x",
            "",
        ];
        let mut found = 0;
        for re in &f.failregex {
            let a = Anchored::new(re.as_str()).unwrap();
            for line in lines {
                let want = hit_in(re, line);
                let mut s = a.scratch.get();
                let direct = a.direct(&mut s, line, false).map(|(found, _)| plain(found));
                assert_eq!(direct, Some(want), "{re}: {line}");
                found += usize::from(want.is_some());
            }
        }
        assert_eq!(found, 4);
        assert_eq!(
            hit_in(&f.failregex[0], lines[0]),
            Some(("192.0.2.1".parse().unwrap(), 1))
        );
        let wrapped = format!("^(?s:.)*?(?:{})", f.failregex[1].as_str());
        assert!(Cut::new(&wrapped).unwrap().splits_after_host());
    }

    /// The split after the host: when the tail does not follow the host's
    /// first (longest) match, the whole pattern may still match with a
    /// shorter host, and must be asked. (Here that host is refused anyway,
    /// as part of a longer token, but the pattern did match.)
    #[test]
    fn the_tail_after_the_host_is_checked_where_the_host_ended() {
        let f = filter(
            &["^<SYSLOG>prog\\[[0-9]+\\]: from <HOST>1 end(?: .*)?$"],
            &[],
        );
        let re = &f.failregex[0];
        let cut = Cut::new(re.as_str()).unwrap();
        assert!(cut.splits_after_host());
        let mut s = cut.scratch();
        let a = Anchored::new(re.as_str()).unwrap();
        for line in [
            "Mar  5 16:01:34 h prog[1]: from 192.0.2.11 end",
            "Mar  5 16:01:34 h prog[1]: from 192.0.2.1 end",
            "Mar  5 16:01:34 h prog[1]: from 192.0.2.101 end x",
            "Mar  5 16:01:34 h prog[1]: from 2001:db8::11 end",
        ] {
            // Both readings (see `twin`), each with where the match ends.
            for ascii in [false, true] {
                let (caps, groups, user, end) =
                    cut.captures(&mut s, line, false, true, ascii).unwrap();
                let (hit, matched) = read_hit(caps, groups, user, end, line);
                if matched {
                    assert_eq!(Some(end), re.find(line).map(|m| m.end()), "{line}");
                }
                let hit = plain(hit);
                assert_eq!(matched, re.is_match(line), "{line}");
                assert_eq!(hit, hit_in(re, line), "{line}");
                assert_eq!(plain(a.hit(re, line, false)), hit, "{line}");
            }
        }
        // The library's SASL pattern is split there.
        let sasl = &library("postfix-sasl").failregex[0];
        assert!(Cut::new(sasl.as_str()).unwrap().splits_after_host());
    }

    /// The account read in the matcher's one pass is the `user` group of
    /// the whole regex's match ([`Filter::explain`]), on every path: the
    /// cut split after the host, the whole part after the cut, the whole
    /// pattern (a repeated cut literal, a group before the cut), the
    /// DFA-first way, and a line too long for the backtracker.
    #[test]
    fn the_account_is_the_whole_regexs_user_group_on_every_path() {
        let sasl = "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed:";
        let ssh = "Mar  5 16:01:34 host sshd[77]:";
        let long = "é".repeat(40_000);
        let lines = [
            format!("{sasl} authentication failure, sasl_username=alice@example.org"),
            format!("{sasl} authentication failure, sasl_username=a, sasl_username=b"),
            format!("{sasl} UGFzc3dvcmQ6"),
            format!("{sasl} x, sasl_username="),
            format!("{sasl}, sasl_username=bob"),
            format!("{sasl} x, sasl_username={long}"),
            format!("{sasl} authentication failure, sasl_username=x]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: y, sasl_username=eve"),
            format!("{ssh} Failed password for root from 192.0.2.1 port 4711 ssh2"),
            format!("{ssh} Failed password for invalid user x from 203.0.113.5 port 1 ssh2 from 192.0.2.6 port 4711 ssh2"),
            format!("{ssh} Invalid user oracle from 2001:db8::3 port 4711"),
            format!("{ssh} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.4  user=root"),
            format!("{ssh} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.4"),
            format!("{ssh} Connection closed by authenticating user git 192.0.2.5 port 4711 [preauth]"),
            "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob@example.org>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<AbCd>".to_string(),
            "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x, rip=203.0.113.66, lip=1.2.3.4>, method=PLAIN, rip=192.0.2.8, lip=198.51.100.1".to_string(),
            "nothing".to_string(),
        ];
        let mut users = 0;
        for name in ["postfix-sasl", "zimbra-submission", "sshd", "dovecot"] {
            let f = library(name);
            let m = Matcher::new(vec![(0, f.clone())]);
            // Twice: the second round after the matched lines have turned
            // the patterns to the backtracker first.
            for _ in 0..2 {
                for line in &lines {
                    let want = f.explain(line);
                    let mut got = None;
                    m.explain_verdicts(line, |_, v| got = Some(v));
                    assert_eq!(got, want, "{name}: {line}");
                    let mut accounts = Vec::new();
                    m.scan_accounts(line, |_, _, a| accounts.push(a));
                    let want = want.filter(|v| v.ignored_by.is_empty());
                    let count = want.as_ref().map_or(0, |v| v.count as usize);
                    let account = want.and_then(|v| v.user).and_then(|u| Account::new(&u));
                    users += usize::from(account.is_some());
                    assert_eq!(accounts, vec![account; count], "{name}: {line}");
                }
            }
            for p in &m.patterns {
                if let Some(a) = &p.anchored {
                    let re = &f.failregex[p.index];
                    for line in &lines {
                        let want = f.explain(line).filter(|v| v.regex == p.index);
                        let got = a.hit(re, line, true).map(|h| {
                            (h.addr, h.count, h.user.map(|u| line[u.range()].to_string()))
                        });
                        if let Some(v) = want {
                            assert_eq!(
                                got,
                                Some((Some(v.addr), v.count, v.user)),
                                "{name}: {line}"
                            );
                        }
                    }
                }
            }
        }
        assert!(users >= 20, "{users}");
        let cut = Cut::new(library("postfix-sasl").failregex[0].as_str()).unwrap();
        assert!(cut.splits_after_host());
    }

    /// In a flood a pattern's own literals are skipped: the engine still
    /// decides, so a look-alike line gets nothing, and enough of them turn
    /// the literals back on.
    #[test]
    fn a_flood_skips_the_literals_but_not_the_answer() {
        let m = Matcher::new(vec![(0, library("postfix-sasl"))]);
        let sasl = |i: u32| {
            format!("Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.{i}]: SASL LOGIN authentication failed: x")
        };
        for i in 1..200 {
            assert_eq!(hits(&m, &sasl(i % 250)).len(), 1);
        }
        let a = m.patterns[0].anchored.as_ref().unwrap();
        assert!(a.in_flood());
        // Has the shared literal, lacks the pattern's others.
        let fake = "Mar  5 16:01:34 mx1 postfix/smtpd[1]: info: unknown[192.0.2.9]: SASL LOGIN authentication failed: x";
        for _ in 0..400 {
            assert!(hits(&m, fake).is_empty());
        }
        assert!(!a.in_flood());
        assert_eq!(hits(&m, &sasl(7)), [(0, "192.0.2.7".to_string())]);
    }

    /// Behind a gate of several jails' literals, a flooded pattern still
    /// asks for its first literal: the other jails' lines do not reach its
    /// engine (which would cost their time and end its flood mode).
    #[test]
    fn another_jails_lines_stay_out_of_a_flooded_pattern() {
        let m = Matcher::new(vec![(0, library("postfix-sasl")), (1, library("sshd"))]);
        let sasl = |i: u32| {
            format!("Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.{i}]: SASL LOGIN authentication failed: x")
        };
        for i in 1..200 {
            assert_eq!(
                hits(&m, &sasl(i % 250)),
                [(0, format!("192.0.2.{}", i % 250))]
            );
        }
        let flooded = m.patterns.iter().find(|p| p.slot == 0).unwrap();
        let a = flooded.anchored.as_ref().unwrap();
        assert!(a.in_flood());
        for i in 1..400 {
            let ssh = format!("Mar  5 16:01:34 mx1 sshd[7]: Failed password for root from 198.51.100.{} port 22 ssh2", i % 250);
            assert_eq!(hits(&m, &ssh), [(1, format!("198.51.100.{}", i % 250))]);
        }
        assert!(a.in_flood(), "sshd lines reached the SASL pattern's engine");
    }

    /// The one scan of a line says which literals it holds, also where
    /// one literal starts another or they overlap, and past the 64th; a
    /// jail whose key literal is missing is not asked.
    #[test]
    fn the_literal_scan_finds_every_literal_a_line_holds() {
        let l = Literals::new(
            ["SASL LOGIN", "SASL ", "LOGIN auth", "nowhere"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        )
        .unwrap();
        let p = l.scan(b"x SASL LOGIN auth y");
        assert_eq!((p.bits, p.any), (0b0111, true));
        let p = l.scan(b"x SASL PLAIN y");
        assert_eq!((p.bits, p.any), (0b0010, true));
        let p = l.scan(b"nothing here");
        assert_eq!((p.bits, p.any), (0, false));
        assert_eq!(p.has(70), Some(false));
        assert_eq!(l.scan(b"a").has(1), Some(false));
        // 70 jails, each with its own literal: the last ones are past the
        // bits and still found.
        let jails: Vec<(JailId, Arc<Filter>)> = (0..70)
            .map(|j| {
                let re = format!("^svc{j:02} failed from <HOST>$");
                (j, filter(&[re.as_str()], &[]))
            })
            .collect();
        let m = Matcher::new(jails);
        for j in [0, 5, 63, 64, 69] {
            assert_eq!(
                hits(&m, &format!("svc{j:02} failed from 192.0.2.{j}")),
                [(j, format!("192.0.2.{j}"))]
            );
        }
        assert!(hits(&m, "svc70 failed from 192.0.2.1").is_empty());
        assert!(m.gated_by_literals());
        let text = b"one\ntwo\nsvc64 failed from 192.0.2.1\n";
        assert_eq!(m.find_literal(text, 0), Some(8));
        assert_eq!(m.find_literal(text, 9), None);
    }

    #[test]
    fn two_jails_on_one_line_both_hit_once() {
        let m = Matcher::new(vec![
            (3, filter(&["fail from <HOST>$", "from <HOST>$"], &[])),
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
    fn a_jail_with_two_failregexes_matches_either() {
        let m = Matcher::new(vec![(
            0,
            filter(&["^auth failed for <HOST>$", "^bad user from <HOST>$"], &[]),
        )]);
        assert_eq!(
            hits(&m, "auth failed for 192.0.2.1"),
            vec![(0, "192.0.2.1".into())]
        );
        assert_eq!(
            hits(&m, "bad user from ::ffff:192.0.2.2"),
            vec![(0, "192.0.2.2".into())]
        );
        assert!(hits(&m, "auth ok for 192.0.2.1").is_empty());
    }

    #[test]
    fn patterns_without_a_required_literal_go_through_the_set() {
        let m = Matcher::new(vec![
            (0, filter(&["^<HOST>$"], &[])),
            (1, filter(&["from <HOST>$"], &[])),
            (2, filter(&["(?i)failed for <HOST>$"], &[])),
        ]);
        assert!(m.set.is_some() && m.literals.is_some());
        assert_eq!(hits(&m, "2001:db8::9"), vec![(0, "2001:db8::9".into())]);
        assert_eq!(hits(&m, "from 192.0.2.1"), vec![(1, "192.0.2.1".into())]);
        assert_eq!(
            hits(&m, "FAILED for 192.0.2.1"),
            vec![(2, "192.0.2.1".into())]
        );
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
        assert_eq!(hits(&m, "x from 192.0.2.1").len(), 2);
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
    fn a_counted_line_is_reported_once_per_failure() {
        let m = Matcher::new(vec![
            (0, filter(&["failed <COUNT> times from <HOST>$"], &[])),
            (1, filter(&["from <HOST>$"], &[])),
        ]);
        let h = hits(&m, "failed 3 times from 192.0.2.1");
        assert_eq!(
            h,
            vec![
                (0, "192.0.2.1".into()),
                (0, "192.0.2.1".into()),
                (0, "192.0.2.1".into()),
                (1, "192.0.2.1".into())
            ]
        );
        assert_eq!(
            hits(&m, "failed 4000000000 times from 192.0.2.1").len(),
            crate::filter::MAX_COUNT as usize + 1
        );
        assert_eq!(
            hits(&m, "failed 0 times from 192.0.2.1"),
            vec![(1, "192.0.2.1".into())]
        );
    }

    #[test]
    fn no_jails_match_nothing() {
        assert!(hits(&Matcher::new(Vec::new()), "from 192.0.2.1").is_empty());
    }

    /// A mail server's log: one SASL failure in 20 lines, one sshd failure in
    /// 50, the rest ordinary traffic, several lines mentioning the same words.
    fn mixed_log(n: u32) -> Vec<String> {
        (0..n)
            .map(|i| {
                let a = format!("198.51.{}.{}", (i / 250) % 250, i % 250);
                let t = "Mar  5 16:01:34 mx1";
                if i % 20 == 0 {
                    format!("{t} postfix/submission/smtpd[{i}]: warning: unknown[{a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
                } else if i % 50 == 1 {
                    format!("{t} sshd[{i}]: Failed password for invalid user admin from {a} port {i} ssh2")
                } else if i % 50 == 3 {
                    format!("{t} sshd[{i}]: Accepted password for root from {a} port {i} ssh2")
                } else if i % 7 == 0 {
                    format!("{t} postfix/smtpd[{i}]: disconnect from unknown[{a}] ehlo=1 auth=0/1 quit=1 commands=2/3")
                } else {
                    format!("{t} postfix/smtpd[{i}]: connect from mail-{i}.example.net[{a}]")
                }
            })
            .collect()
    }

    fn count(m: &Matcher, lines: &[String], label: &str) -> Vec<usize> {
        let mut per_jail = vec![0usize; 16];
        let start = std::time::Instant::now();
        for l in lines {
            m.scan(l, |j, _| per_jail[j] += 1);
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!("matcher, {label}: {:.0} lines/s", lines.len() as f64 / secs);
        per_jail
    }

    #[test]
    fn counts_on_a_generated_mixed_log() {
        let lines = mixed_log(200_000);
        let idle = |j: JailId| {
            let re = format!(r"^<SYSLOG>svc{j}\[\d+\]: login failed for \S+ from <HOST>$");
            (j, filter(&[re.as_str()], &[]))
        };
        let one = Matcher::new(vec![(0, library("postfix-sasl"))]);
        assert_eq!(count(&one, &lines, "1 jail")[0], 10_000);

        // Ten jails on one file, nine of them for services that never log
        // here: the cost should stay close to one jail's.
        let ten_idle = Matcher::new(
            std::iter::once((0, library("postfix-sasl")))
                .chain((1..10).map(idle))
                .collect(),
        );
        let per_jail = count(&ten_idle, &lines, "10 jails, 1 active");
        assert_eq!(per_jail[0], 10_000);
        assert!(per_jail[1..].iter().all(|&n| n == 0));

        // Ten jails, three active (postfix-sasl twice, sshd): every hit is
        // extracted per jail, so this costs more by the extra hits only.
        let ten_busy = Matcher::new(
            [(0, "postfix-sasl"), (1, "sshd"), (2, "postfix-sasl")]
                .into_iter()
                .map(|(j, name)| (j, library(name)))
                .chain((3..10).map(idle))
                .collect(),
        );
        let per_jail = count(&ten_busy, &lines, "10 jails, 3 active");
        assert_eq!(per_jail[0], 10_000);
        assert_eq!(per_jail[1], 4_000);
        assert_eq!(per_jail[2], 10_000);
        assert!(per_jail[3..].iter().all(|&n| n == 0));
    }

    /// The ten library jails of a mail server's log, as one reader runs them.
    fn mail_jails() -> Matcher {
        let names = [
            "postfix-sasl",
            "postfix",
            "dovecot",
            "sasl",
            "sshd",
            "sshd-aggressive",
            "exim",
            "courier-auth",
            "cyrus-imap",
            "roundcube-auth",
        ];
        Matcher::new(
            names
                .iter()
                .enumerate()
                .map(|(j, n)| (j, library(n)))
                .collect(),
        )
    }

    /// Where in `text` the line holding byte `at` starts and ends.
    fn line_at(text: &str, at: usize) -> std::ops::Range<usize> {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        start..end
    }

    /// A key literal in a line that lacks the pattern's other required
    /// text (a plain `disconnect from`, a successful dovecot login) does
    /// not stop the literal search: it goes on to the line that can hit.
    #[test]
    fn the_literal_search_passes_over_lines_other_text_rules_out() {
        let m = mail_jails();
        assert!(m.gated_by_literals());
        let benign = "Mar  5 16:01:34 mx1 postfix/submission/smtpd[16491]: disconnect from mail.example.net[192.168.212.169] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6\n\
            Mar  5 16:01:34 mx1 dovecot: auth: passwd-file(bob,192.0.2.1): auth failed, unknown user\n";
        for line in benign.lines() {
            assert!(hits(&m, line).is_empty(), "{line}");
            // Each holds a key literal: the plain search stops in it.
            assert!(
                m.literals
                    .as_ref()
                    .unwrap()
                    .find(line.as_bytes(), 0)
                    .is_some(),
                "{line}"
            );
        }
        assert_eq!(m.find_literal(benign.as_bytes(), 0), None);
        let failing = "Mar  5 16:01:35 mx1 postfix/smtpd[2]: disconnect from unknown[192.0.2.11] ehlo=1 auth=0/5 quit=1 commands=1/6\n";
        let text = format!("{benign}{failing}{benign}");
        let at = m.find_literal(text.as_bytes(), 0).unwrap();
        assert_eq!(
            line_at(&text, at),
            benign.len()..benign.len() + failing.len() - 1
        );
        // From the next line on, only the benign lines are left.
        let next = benign.len() + failing.len();
        assert_eq!(m.find_literal(text.as_bytes(), next), None);
        // A line whose newline has not come yet may still get its text.
        let unfinished = benign.lines().next().unwrap();
        assert!(m.find_literal(unfinished.as_bytes(), 0).is_some());
    }

    /// Whatever precedes it, a line that hits a jail is always stopped in
    /// by the literal search.
    #[test]
    fn the_literal_search_stops_in_every_line_that_hits() {
        let m = mail_jails();
        let lines = [
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed: authentication failure",
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: mail.example.com[2001:db8::1]:4711: SASL PLAIN authentication failed:",
            "Mar  5 16:01:34 mx1 sshd[77]: Failed password for root from 192.0.2.7 port 2222 ssh2",
            "Mar  5 16:01:34 mx1 sshd[77]: Invalid user x from 2001:db8::7 port 22",
            "Mar  5 16:01:34 mx1 sshd[77]: Connection closed by 192.0.2.8 port 22 [preauth]",
            "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 3 attempts in 9 secs): user=<a>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.10, TLS",
            "Mar  5 16:01:34 mx1 dovecot: imap-login: Aborted login (tried to use disallowed plaintext auth): user=<a>, rip=192.0.2.19, lip=192.0.2.10",
            "Mar  5 16:01:34 mx1 postfix/smtpd[2]: disconnect from unknown[192.0.2.11] ehlo=1 auth=0/5 quit=1 commands=1/6",
            "Mar  5 16:01:34 mx1 postfix/smtpd[2]: NOQUEUE: reject: RCPT from unknown[192.0.2.12]: 554 5.7.1 <a@b>: Relay access denied",
            "Mar  5 16:01:34 mx1 imapd[5]: LOGIN FAILED, user=bob, ip=[192.0.2.13]",
            "Mar  5 16:01:34 mx1 imaps[6]: badlogin: host.example [192.0.2.14] plaintext bob SASL(-13): authentication failure",
            "Mar  5 16:01:34 mx1 dovecot: managesieve-login: Disconnected (proxy dest auth failed): user=<x>, method=PLAIN, rip=192.0.2.20, lip=198.51.100.1",
            "Mar  5 16:01:34 mx1 dovecot: pop3-login: Aborted login (tried to use disabled plaintext auth): rip=192.0.2.21, lip=198.51.100.1",
            "Mar  5 16:01:34 mx1 sshd[77]: Connection closed by authenticating user git 192.0.2.22 port 4711 [preauth]",
            "Mar  5 16:01:34 mx1 sshd[77]: Disconnected from 192.0.2.23 port 22 [preauth]",
            "Mar  5 16:01:34 mx1 sshd[77]: banner exchange: Connection from 192.0.2.24 port 4711: invalid format",
            "Mar  5 16:01:34 mx1 postfix/smtpd[2]: NOQUEUE: reject: EHLO from unknown[192.0.2.25]: 504 5.5.2 <WIN-ABC>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<WIN-ABC>",
        ];
        let before = [
            "",
            "Mar  5 16:01:33 mx1 postfix/smtpd[2]: disconnect from a.example[192.0.2.1] ehlo=1 auth=1 quit=1 commands=3\n",
            "Mar  5 16:01:33 mx1 dovecot: imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.10\n",
        ];
        for line in lines {
            assert!(!hits(&m, line).is_empty(), "no jail hits {line}");
            for b in before {
                let text = format!("{b}{line}\n");
                let at = m.find_literal(text.as_bytes(), 0);
                assert_eq!(
                    at.map(|at| line_at(&text, at)),
                    Some(b.len()..text.len() - 1),
                    "{line}"
                );
            }
        }
    }

    /// postfix-sasl's and sasl's Postfix patterns differ only by the
    /// account part at the end: whichever comes first answers for the
    /// other, and every jail still gets what its filter alone finds
    /// (address, count, account), in either order and beside jails whose
    /// patterns share nothing.
    #[test]
    fn patterns_of_the_same_core_share_one_answer() {
        assert_eq!(
            same_core(library("postfix-sasl").failregex[0].as_str()),
            same_core(library("sasl").failregex[0].as_str())
        );
        assert_ne!(
            same_core(library("postfix").failregex[0].as_str()),
            same_core(library("sasl").failregex[0].as_str())
        );
        // An optional part that holds the host decides the host: kept.
        assert_ne!(same_core(r"^a(?: (?P<host>\S+))?"), same_core(r"^a"));
        assert_eq!(
            same_core(r"^a (?P<host>\S+)"),
            same_core(r"^a (?P<host>\S+)(?: b)?")
        );
        let sasl = "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed:";
        let lines = [
            format!("{sasl} authentication failure, sasl_username=alice@example.org"),
            format!("{sasl} authentication failure"),
            format!("{sasl} Connection lost to authentication server"),
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: mail.example.com[2001:db8::1]:4711: SASL PLAIN authentication failed".to_string(),
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[999.0.2.1]: SASL PLAIN authentication failed:".to_string(),
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: info: unknown[192.0.2.3]: SASL PLAIN authentication failed:".to_string(),
            "Mar  5 16:01:34 mx1 postfix/smtpd[2]: disconnect from unknown[192.0.2.11] ehlo=1 auth=0/5 quit=1 commands=1/6".to_string(),
            "Mar  5 16:01:34 mx1 sm-mta[4711]: 2B4QhT7a004711: AUTH failure (PLAIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=bob, relay=host.example [192.0.2.7] (may be forged)".to_string(),
        ];
        for names in [
            ["postfix-sasl", "postfix", "sasl"],
            ["sasl", "postfix", "postfix-sasl"],
        ] {
            let filters: Vec<Arc<Filter>> = names.iter().map(|n| library(n)).collect();
            let m = Matcher::new(filters.iter().cloned().enumerate().collect());
            let shared: Vec<_> = m.patterns.iter().filter(|p| p.same_as.is_some()).collect();
            assert_eq!(shared.len(), 1, "{names:?}");
            assert_eq!(shared[0].slot, 2, "{names:?}");
            for _ in 0..2 {
                for line in &lines {
                    let mut got = Vec::new();
                    m.explain_verdicts(line, |j, v| got.push((j, v)));
                    let want: Vec<_> = filters
                        .iter()
                        .enumerate()
                        .filter_map(|(j, f)| Some((j, f.explain(line)?)))
                        .collect();
                    assert_eq!(got, want, "{names:?}: {line}");
                    let mut accounts = Vec::new();
                    m.scan_accounts(line, |j, a, u| accounts.push((j, a, u)));
                    let want: Vec<_> = want
                        .into_iter()
                        .filter(|(_, v)| v.ignored_by.is_empty())
                        .flat_map(|(j, v)| {
                            let account = v.user.as_deref().and_then(Account::new);
                            std::iter::repeat_n((j, v.addr, account), v.count as usize)
                        })
                        .collect();
                    assert_eq!(accounts, want, "{names:?}: {line}");
                }
            }
        }
        // Both jails counted the SASL failure, one with the account.
        let m = Matcher::new(vec![(0, library("postfix-sasl")), (1, library("sasl"))]);
        let mut got = Vec::new();
        m.scan_accounts(&lines[0], |j, a, u| {
            got.push((j, a.to_string(), u.is_some()))
        });
        assert_eq!(
            got,
            [
                (0, "192.0.2.69".to_string(), true),
                (1, "192.0.2.69".to_string(), false)
            ]
        );
    }

    /// A pattern whose alternation of text is much longer than its
    /// longest literal is searched for by the alternation's branches: a
    /// successful Dovecot login holds the pattern's `-login: ` but no
    /// branch, and the search does not stop in it at all; each branch's
    /// line still stops it (see the test above for the lines that hit).
    #[test]
    fn a_long_alternation_is_searched_for_by_its_branches() {
        let branches = [
            " (tried to use disabled plaintext auth)".to_string(),
            " (proxy dest auth failed)".to_string(),
        ];
        assert_eq!(
            search_keys("-login: ", Some(&branches)),
            [
                &b"tried to use disabled plaintext auth)"[..],
                b"proxy dest auth failed)"
            ]
        );
        // A branch barely longer than the literal leaves the literal.
        let short = ["password".to_string(), "keyboard-interactive".to_string()];
        assert_eq!(search_keys("]: Failed ", Some(&short)), [b"Failed "]);
        assert_eq!(search_keys("]: Failed ", None), [b"Failed "]);
        let m = mail_jails();
        let texts = &m.literals.as_ref().unwrap().texts;
        assert!(!texts.iter().any(|t| t == b"login: "));
        let login = "Mar  5 16:01:34 mx1 dovecot: imap-login: Login: user=<a@example.org>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.10, mpid=1, TLS, session=<abc1>\n";
        assert!(hits(&m, login.trim_end()).is_empty());
        assert_eq!(m.literals.as_ref().unwrap().find(login.as_bytes(), 0), None);
        let failed = "Mar  5 16:01:35 mx1 dovecot: imap-login: Aborted login (tried to use disallowed plaintext auth): user=<a>, rip=192.0.2.19, lip=192.0.2.10\n";
        let text = format!("{login}{failed}{login}");
        let at = m.find_literal(text.as_bytes(), 0).unwrap();
        assert_eq!(
            line_at(&text, at),
            login.len()..login.len() + failed.len() - 1
        );
        assert_eq!(hits(&m, failed.trim_end()), [(2, "192.0.2.19".to_string())]);
        assert_eq!(
            m.find_literal(text.as_bytes(), login.len() + failed.len()),
            None
        );
    }

    /// Keys lose their leading punctuation and spaces (the `]: ` after
    /// every syslog program name), unless too little would be left.
    #[test]
    fn search_keys_start_with_the_message_text() {
        assert_eq!(search_key("]: Failed "), b"Failed ");
        assert_eq!(
            search_key(" authentication failed"),
            b"authentication failed"
        );
        assert_eq!(search_key("]: abc: "), b"]: abc: ");
        assert_eq!(search_key("IMAP Error: "), b"IMAP Error: ");
        let m = mail_jails();
        let texts = &m.literals.as_ref().unwrap().texts;
        assert!(texts.iter().any(|t| t == b"Failed "));
        assert!(!texts.iter().any(|t| t.starts_with(b"]: ")));
    }
}
