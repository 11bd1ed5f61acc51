//! One compiled fail2ban regex: on Rust's linear-time `regex` when the
//! pattern allows, on `fancy-regex`'s backtracking engine only for the
//! patterns that need look-around, back-references or atomic groups.

use std::fmt;
use std::ops::Range;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::{Arc, OnceLock};

use regex_automata::nfa::thompson;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Hir, HirKind};

use super::literals::backtrack_factors;
use super::pyregex;
use crate::filter::literal::required_factors;
use crate::filter::recent::Recent;
use crate::filter::After;

/// Generous: fail2ban's `<HOST>` alternatives repeated in long filters
/// exceed the default compiled-size limit.
const SIZE_LIMIT: usize = 64 << 20;
/// More beginnings than this are cut to their first bytes (see
/// [`Compiled::starts`]): comparing each would cost more than it saves.
const MAX_STARTS: usize = 16;

#[derive(Debug)]
enum Engine {
    Linear(regex::Regex),
    Backtrack(fancy_regex::Regex),
}

#[derive(Debug)]
pub struct Compiled {
    engine: Engine,
    /// The named groups, shared with each [`Hit`].
    named: Arc<Named>,
    /// For a linear regex with named groups: its captures taken by the
    /// backtracker alone where that pays (see [`Direct`]).
    direct: Option<Direct>,
    /// For a backtracking regex that is a linear one with one look-ahead
    /// at its very end: the two apart (see [`Ahead`]).
    ahead: Option<Box<Ahead>>,
    /// It can only match at the start of the text (and is linear).
    anchored: bool,
    /// A linear regex without named groups (a prefregex's part before its
    /// content, most often): only where its match ends is read, by the
    /// DFA alone. Taking captures would cost a pass of the capturing
    /// engine, whose scratch space grows with the compiled regex (large
    /// for fail2ban's Unicode `\w` and `\S` runs) times the text.
    find_only: bool,
}

/// A regex `BODY(?!LOOK)` or `BODY(?=LOOK)`, where neither part needs
/// backtracking (`postfix`'s `... authentication failed:(?! Connection
/// lost ...)`), run without the backtracking engine on most lines.
///
/// A backtracking search tries the starts from the left and, at each, the
/// ways through BODY in priority order, and returns the first way whose
/// end passes the look-ahead. The linear engine's leftmost-first match of
/// BODY alone is the first way through BODY at the leftmost start where
/// BODY matches at all: when its end passes the look-ahead, it is the
/// backtracking search's answer too, captures and all. When BODY does not
/// match, neither does the whole regex. Only when the look-ahead refuses
/// that end is the backtracking engine asked (another way, or a later
/// start, may still pass).
#[derive(Debug)]
struct Ahead {
    body: Compiled,
    /// The look-ahead, checked where BODY's match ends.
    look: After,
}

impl Ahead {
    /// Splits a translated pattern (Rust syntax) into BODY and its
    /// trailing look-ahead; None unless it is of that form and both parts
    /// run on the linear engine with the groups of the whole.
    fn new(pattern: &str, named: &Named) -> Option<Ahead> {
        let (body, look, negative, flags) = split_trailing_lookahead(pattern)?;
        // Its captures as any linear regex's (see [`Direct`]): the lines
        // that reach it have passed its literal gate and mostly match.
        let body = Compiled::linear(body)?;
        if *body.named != *named {
            return None;
        }
        let look = regex_automata::meta::Regex::builder()
            .configure(regex_automata::meta::Config::new().nfa_size_limit(Some(SIZE_LIMIT)))
            .build(&format!("{flags}(?:{look})"))
            .ok()?;
        // A group inside the look-ahead would be one of the whole regex's.
        if look.group_info().all_group_len() != 1 {
            return None;
        }
        Some(Ahead {
            body,
            look: After::new(look, negative),
        })
    }
}

/// `BODY(?!LOOK)` or `BODY(?=LOOK)` → (BODY, LOOK, negative, the flag
/// groups BODY sets at its top level, which LOOK is under too). None for
/// any other form: a pattern that does not end with such a group, one
/// with a top-level `|` (the look-ahead would belong to one branch), or
/// in verbose mode (`(?x)`, where text is read differently).
fn split_trailing_lookahead(pattern: &str) -> Option<(&str, &str, bool, String)> {
    if pattern.contains("(?x") || !pattern.ends_with(')') {
        return None;
    }
    let bytes = pattern.as_bytes();
    let mut open: Vec<usize> = Vec::new();
    let mut last_top = None;
    let mut flags = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                // A class, Rust's nested classes included; `]` right after
                // the opening (or `^`) is a literal.
                let mut depth = 0usize;
                loop {
                    match bytes.get(i)? {
                        b'\\' => i += 1,
                        b'[' => {
                            depth += 1;
                            if bytes.get(i + 1) == Some(&b'^') {
                                i += 1;
                            }
                            if bytes.get(i + 1) == Some(&b']') {
                                i += 1;
                            }
                        }
                        b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'(' => open.push(i),
            b')' => {
                let start = open.pop()?;
                if open.is_empty() {
                    let group = &pattern[start..=i];
                    let is_flags = group.len() > 3
                        && group[2..group.len() - 1]
                            .bytes()
                            .all(|b| b"imsuUR-".contains(&b))
                        && group.starts_with("(?");
                    if is_flags && i + 1 < bytes.len() {
                        flags.push_str(group);
                    }
                    last_top = Some(start);
                }
            }
            b'|' if open.is_empty() => return None,
            _ => {}
        }
        i += 1;
    }
    if !open.is_empty() {
        return None;
    }
    let start = last_top?;
    let group = &pattern[start..];
    let negative = match group.get(..3)? {
        "(?!" => true,
        "(?=" => false,
        _ => return None,
    };
    let look = &group[3..group.len() - 1];
    Some((&pattern[..start], look, negative, flags))
}

/// The `regex` crate finds a match with its lazy DFA first, then takes
/// the captures with this same backtracker over that span. On a line that
/// matches, the backtracker alone gives the same leftmost-first answer
/// for a regex that can only match at the start, and the DFA pass is
/// wasted; on
/// one that does not, the DFA gives up sooner than the backtracker, which
/// clears scratch space for the whole line first. So which way is cheaper
/// depends on how often the lines that reach this regex match: each
/// regex goes the backtracker's way while most of its recent lines have
/// matched (a failregex behind its literal gate, a prefregex), the
/// `regex` crate's otherwise. An unanchored regex always goes the crate's
/// way: the backtracker alone would try each start in turn, which costs
/// more than it saves.
///
/// A line that is all ASCII (most log lines) goes to a backtracker of the
/// pattern read as bytes, not Unicode characters. On such text every
/// class matches the same characters either way (`\w`, `\s`, `.`,
/// `[^[]`, a case-insensitive letter), and the ways through the pattern
/// are tried in the pattern's own order either way, so the answer is the
/// same, captures and all. It is cheaper: a Unicode class compiles to
/// many states (one per run of UTF-8 sequences), and the backtracker
/// clears and tracks a set of states times text positions per line. The
/// Unicode reading is compiled only when a line needs it: most lines
/// never do, and compiling each regex's twice would slow every start.
/// (The one-pass DFA, which takes captures in one forward pass, builds
/// for almost none of fail2ban's stock regexes: `\S+` or `.*` followed by
/// what they can also match leave a choice open.)
struct Direct {
    /// The byte reading; None when the pattern does not compile so (a
    /// class that lists a non-ASCII character, say).
    ascii: Option<BoundedBacktracker>,
    /// The Unicode reading, for a line with other characters; None when
    /// it does not compile for the backtracker.
    unicode: OnceLock<Option<BoundedBacktracker>>,
    pattern: Box<str>,
    /// Reused between lines, as the `regex` crate keeps its own: the
    /// thread that uses it first takes it without a lock.
    scratch: Pool<Scratch, MakeScratch>,
}

/// A backtracker's scratch space and captures.
type Space = (backtrack::Cache, Captures);

struct Scratch {
    /// For [`Direct::ascii`] and [`Direct::unicode`], each made when first
    /// used.
    ascii: Option<Space>,
    unicode: Option<Space>,
    /// How often the lines that reached this regex matched it lately.
    recent: Recent,
}

type MakeScratch = Box<dyn Fn() -> Scratch + Send + Sync + UnwindSafe + RefUnwindSafe>;

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

/// The backtracker for `pattern`, its classes read as bytes when `bytes`.
fn backtracker(pattern: &str, bytes: bool) -> Option<BoundedBacktracker> {
    let mut builder = BoundedBacktracker::builder();
    if bytes {
        // A class may then match bytes that are not UTF-8, which only a
        // line with non-ASCII bytes could hold, and such a line never
        // takes this way.
        builder.syntax(syntax::Config::new().unicode(false).utf8(false));
    }
    builder
        .thompson(thompson::Config::new().nfa_size_limit(Some(SIZE_LIMIT)))
        .build(pattern)
        .ok()
}

impl Direct {
    /// None when `re` does not compile for the backtracker or can match
    /// elsewhere than at the start.
    fn new(re: &regex::Regex) -> Option<Direct> {
        let pattern = re.as_str();
        // Both readings have the same groups and anchors: the byte one,
        // cheaper to compile, tells.
        let ascii = backtracker(pattern, true).filter(|a| {
            let info = a.get_nfa().group_info();
            info.all_group_len() == re.captures_len()
                && info.pattern_names(PatternID::ZERO).eq(re.capture_names())
        });
        let unicode = OnceLock::new();
        let nfa_anchored = match &ascii {
            Some(a) => a.get_nfa().is_always_start_anchored(),
            None => {
                let u = unicode.get_or_init(|| backtracker(pattern, false));
                u.as_ref()?.get_nfa().is_always_start_anchored()
            }
        };
        if !nfa_anchored {
            return None;
        }
        let make: MakeScratch = Box::new(|| Scratch {
            ascii: None,
            unicode: None,
            recent: Recent::default(),
        });
        Some(Direct {
            ascii,
            unicode,
            pattern: pattern.into(),
            scratch: Pool::new(make),
        })
    }

    /// The first match in `hay` and its groups (`read` turns captures
    /// into the answer, None when not matched), by whichever way has been
    /// cheaper for this regex's recent lines; `fallback` is the `regex`
    /// crate's way, also taken when `hay` is too long for the backtracker.
    fn search<T>(
        &self,
        hay: &str,
        read: impl FnOnce(&Captures) -> Option<T>,
        fallback: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let mut guard = self.scratch.get();
        let s = &mut *guard;
        let found = if s.recent.try_line() {
            match self.run(s, hay, hay.is_ascii()) {
                Some(caps) => read(caps),
                None => fallback(),
            }
        } else {
            fallback()
        };
        s.recent.record(found.is_some());
        found
    }

    /// The backtracker alone, its answer; the byte reading when `ascii`
    /// (`hay` is all ASCII) and there is one. None when `hay` is too long
    /// for it, or the pattern does not compile for it.
    fn run<'s>(&self, s: &'s mut Scratch, hay: &str, ascii: bool) -> Option<&'s Captures> {
        let (engine, space) = match &self.ascii {
            Some(engine) if ascii => (engine, &mut s.ascii),
            _ => {
                let unicode = self
                    .unicode
                    .get_or_init(|| backtracker(&self.pattern, false));
                (unicode.as_ref()?, &mut s.unicode)
            }
        };
        if hay.len() > engine.max_haystack_len() {
            return None;
        }
        let (cache, caps) =
            space.get_or_insert_with(|| (engine.create_cache(), engine.create_captures()));
        let input = Input::new(hay).anchored(Anchored::Yes);
        engine.try_captures(cache, input, caps).ok()?;
        Some(caps)
    }
}

/// The plain text a backtracking pattern (fancy-regex syntax) opens with
/// after `^` (start of text): every match starts with it. None when the
/// pattern does not open so, or reads text in a way literals do not follow
/// (`(?x)`, or a case-insensitive literal).
fn backtrack_start(pattern: &str) -> Option<Vec<u8>> {
    use fancy_regex::{Assertion, Expr};
    if pattern.contains("(?x") {
        return None;
    }
    let tree = Expr::parse_tree(pattern).ok()?;
    let Expr::Concat(parts) = &tree.expr else {
        return None;
    };
    let mut parts = parts.iter();
    if !matches!(parts.next(), Some(Expr::Assertion(Assertion::StartText))) {
        return None;
    }
    let mut start = Vec::new();
    for part in parts {
        match part {
            Expr::Literal { val, casei: false } => start.extend_from_slice(val.as_bytes()),
            _ => break,
        }
    }
    (!start.is_empty()).then_some(start)
}

/// Whether every match of `hir` goes through a group `wanted` accepts:
/// one on the way every match takes (each part of a sequence, each branch
/// of an alternation, a repetition taken at least once, whose last round
/// the group reports).
fn always_takes_part(hir: &Hir, wanted: &dyn Fn(&Capture) -> bool) -> bool {
    match hir.kind() {
        HirKind::Capture(c) => wanted(c) || always_takes_part(&c.sub, wanted),
        HirKind::Concat(parts) => parts.iter().any(|h| always_takes_part(h, wanted)),
        HirKind::Alternation(branches) => branches.iter().all(|h| always_takes_part(h, wanted)),
        HirKind::Repetition(r) => r.min > 0 && always_takes_part(&r.sub, wanted),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => false,
    }
}

/// A set of bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

/// A regex's named groups: their numbers and names, in order. Shared by
/// every [`Hit`] of the regex, which names its groups without copying.
#[derive(Debug, PartialEq, Eq)]
struct Named {
    numbers: Vec<usize>,
    names: Vec<Box<str>>,
}

impl Named {
    fn new<'a>(names: impl Iterator<Item = Option<&'a str>>) -> Arc<Named> {
        let (numbers, names) = names
            .enumerate()
            .filter_map(|(i, n)| Some((i, Box::from(n?))))
            .unzip();
        Arc::new(Named { numbers, names })
    }
}

/// Every group's span, by number (0, the whole match, first).
#[cfg(test)]
pub type GroupSpans = Vec<Option<Range<usize>>>;

/// A match: its span and the named groups that took part.
#[derive(Debug, Clone)]
pub struct Hit {
    pub span: Range<usize>,
    named: Arc<Named>,
    /// Per named group, in order: its span when it took part.
    spans: Vec<Option<Range<usize>>>,
}

impl Hit {
    /// The span of group `name`, when it took part.
    pub fn range_of(&self, name: &str) -> Option<Range<usize>> {
        let at = self.named.names.iter().position(|n| **n == *name)?;
        self.spans.get(at)?.clone()
    }

    pub fn group<'a>(&self, hay: &'a str, name: &str) -> Option<&'a str> {
        hay.get(self.range_of(name)?)
    }

    /// Each named group with its span when it took part, in order.
    pub fn groups(&self) -> impl Iterator<Item = (&str, Option<Range<usize>>)> {
        self.named
            .names
            .iter()
            .map(|n| &**n)
            .zip(self.spans.iter().cloned())
    }

    /// How many named groups the regex has.
    pub fn group_count(&self) -> usize {
        self.spans.len()
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
        if !t.backtrack {
            if let Some(linear) = Compiled::linear(&pattern) {
                return Ok(linear);
            }
        }
        let re = fancy_regex::RegexBuilder::new(&pattern)
            .delegate_size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        let named = Named::new(re.capture_names());
        let ahead = Ahead::new(&pattern, &named).map(Box::new);
        Ok(Compiled {
            engine: Engine::Backtrack(re),
            named,
            direct: None,
            ahead,
            anchored: false,
            find_only: false,
        })
    }

    /// `pattern` (Rust syntax) on the linear engine; None when it does not
    /// compile there.
    fn linear(pattern: &str) -> Option<Compiled> {
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(SIZE_LIMIT)
            .build()
            .ok()?;
        let named = Named::new(re.capture_names());
        let find_only = named.numbers.is_empty();
        let one_pass = Direct::new(&re);
        Some(Compiled {
            anchored: one_pass.is_some(),
            direct: one_pass.filter(|_| !find_only),
            named,
            engine: Engine::Linear(re),
            ahead: None,
            find_only,
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

    /// Texts one of which every match starts with, for a regex that can
    /// only match at the start of the text: a text starting with none of
    /// them cannot match. None when that is not known: a regex not
    /// anchored, one that may match the empty string, or one whose
    /// beginnings are too many to list. On the backtracking engine only a
    /// pattern that opens with `^` and plain text is read (the rest of it
    /// may need backtracking, that text does not).
    pub fn starts(&self) -> Option<Vec<Vec<u8>>> {
        let mut starts = match &self.engine {
            Engine::Linear(re) if self.anchored => {
                // Parsed as the `regex` crate parses it (Unicode on, UTF-8 only).
                let hir = regex_syntax::Parser::new().parse(re.as_str()).ok()?;
                let mut extractor = Extractor::new();
                extractor.kind(ExtractKind::Prefix);
                // Every match begins with one of these, exact or not.
                let seq = extractor.extract(&hir);
                let literals: Vec<Vec<u8>> = seq
                    .literals()?
                    .iter()
                    .map(|l| l.as_bytes().to_vec())
                    .collect();
                literals
            }
            Engine::Linear(_) => return None,
            Engine::Backtrack(re) => vec![backtrack_start(re.as_str())?],
        };
        if starts.iter().any(Vec::is_empty) {
            return None;
        }
        // A text that starts with one starts with every shorter one of its
        // beginnings listed too: the longer are not needed.
        starts.sort();
        starts.dedup();
        let all = starts.clone();
        starts.retain(|s| !all.iter().any(|t| t.len() < s.len() && s.starts_with(t)));
        // Many beginnings (a case-folded word): their first bytes, still
        // a necessary condition, and quicker to compare.
        if starts.len() > MAX_STARTS {
            for s in &mut starts {
                s.truncate(1);
            }
            starts.dedup();
        }
        Some(starts)
    }

    /// Whether in every match one of the groups `names` takes part, with
    /// text of at least one byte when `nonempty`. False when that is not
    /// known (a regex on the backtracking engine).
    pub fn always_has(&self, names: &[&str], nonempty: bool) -> bool {
        let Engine::Linear(re) = &self.engine else {
            return false;
        };
        let Ok(hir) = regex_syntax::Parser::new().parse(re.as_str()) else {
            return false;
        };
        let wanted = |c: &Capture| {
            c.name.as_deref().is_some_and(|n| names.contains(&n))
                && (!nonempty || c.sub.properties().minimum_len().is_some_and(|n| n > 0))
        };
        always_takes_part(&hir, &wanted)
    }

    /// Where the first match is, as [`search`](Self::search) finds it,
    /// without taking captures where the engine allows.
    pub fn find(&self, hay: &str) -> Option<Range<usize>> {
        match &self.engine {
            Engine::Linear(re) => Some(re.find(hay)?.range()),
            Engine::Backtrack(_) => Some(self.search(hay)?.span),
        }
    }

    /// Whether the text matches, as [`search`](Self::search) would find,
    /// without taking captures where the engine allows.
    pub fn is_match(&self, hay: &str) -> bool {
        match &self.engine {
            Engine::Linear(re) => re.is_match(hay),
            Engine::Backtrack(_) => self.search(hay).is_some(),
        }
    }

    /// The pattern as compiled (Rust syntax): two regexes of the same
    /// pattern find the same in the same text.
    pub fn pattern(&self) -> &str {
        match &self.engine {
            Engine::Linear(re) => re.as_str(),
            Engine::Backtrack(re) => re.as_str(),
        }
    }

    /// The regex on Rust's linear engine, when it needs no other.
    pub fn linear_regex(&self) -> Option<&regex::Regex> {
        let Engine::Linear(re) = &self.engine else {
            return None;
        };
        Some(re)
    }

    /// What the matcher may run in this one's place (see [`super::fold`]):
    /// this, or the part before a trailing look-ahead and the look-ahead to
    /// check where its match ends, as [`Compiled::search`] does first.
    pub fn foldable(&self) -> (&Compiled, Option<After>) {
        match &self.ahead {
            None => (self, None),
            Some(a) => (&a.body, Some(a.look.clone())),
        }
    }

    /// Whether the regex can only match at the start of the text (and
    /// runs on the linear engine).
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.group_names().any(|n| n == name)
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.named.names.iter().map(|n| &**n)
    }

    /// The first match in `hay`. A backtracking run that exceeds its step
    /// limit counts as no match, as a time-out would in practice.
    pub fn search(&self, hay: &str) -> Option<Hit> {
        let hit = |span: Range<usize>, get: &dyn Fn(usize) -> Option<Range<usize>>| Hit {
            span,
            named: Arc::clone(&self.named),
            spans: self.named.numbers.iter().map(|&i| get(i)).collect(),
        };
        if self.find_only {
            if let Engine::Linear(re) = &self.engine {
                let span = re.find(hay)?.range();
                return Some(hit(span, &|_| None));
            }
        }
        if let Some(ahead) = &self.ahead {
            let hit = ahead.body.search(hay)?;
            if ahead.look.passes(hay, hit.span.end) {
                return Some(hit);
            }
        }
        match &self.engine {
            Engine::Linear(re) => {
                let fallback = || {
                    let caps = re.captures(hay)?;
                    let span = caps.get(0)?.range();
                    Some(hit(span, &|i| caps.get(i).map(|m| m.range())))
                };
                let Some(direct) = &self.direct else {
                    return fallback();
                };
                let read = |caps: &Captures| {
                    let span = caps.get_match()?.range();
                    Some(hit(span, &|i| caps.get_group(i).map(|s| s.range())))
                };
                direct.search(hay, read, fallback)
            }
            Engine::Backtrack(re) => {
                let caps = re.captures(hay).ok()??;
                let span = caps.get(0)?.range();
                Some(hit(span, &|i| caps.get(i).map(|m| m.range())))
            }
        }
    }

    /// The spans of every group (0, the whole match, first) as each way
    /// of the backtracker alone finds them, `None` for no match: the
    /// Unicode reading of the pattern, then the byte reading when there
    /// is one and `hay` is all ASCII (see [`Direct`]). None when this
    /// regex has no such way; a way `hay` is too long for gives no answer.
    #[cfg(test)]
    pub fn backtracker_groups(&self, hay: &str) -> Option<Vec<Option<GroupSpans>>> {
        let direct = self.direct.as_ref()?;
        let mut guard = direct.scratch.get();
        let spans = |caps: &Captures| {
            let groups = (0..caps.group_len()).map(|i| caps.get_group(i).map(|s| s.range()));
            caps.is_match().then(|| groups.collect())
        };
        let mut found: Vec<_> = direct
            .run(&mut guard, hay, false)
            .map(spans)
            .into_iter()
            .collect();
        if hay.is_ascii() && direct.ascii.is_some() {
            found.extend(direct.run(&mut guard, hay, true).map(spans));
        }
        Some(found)
    }

    /// Whether the backtracker has a byte reading of the pattern for
    /// lines that are all ASCII (see [`Direct`]).
    #[cfg(test)]
    pub fn has_ascii_way(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.ascii.is_some())
    }

    /// The linear part before a trailing look-ahead (see [`Ahead`]).
    #[cfg(test)]
    pub fn ahead_body(&self) -> Option<&Compiled> {
        self.ahead.as_deref().map(|a| &a.body)
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
        let c = Compiled::new(r"a (?P<x>\d+)", false).unwrap();
        assert!(c.direct.is_none() && !c.is_anchored());
        assert!(Compiled::new(r"^a", true).unwrap().direct.is_none());
        // Without named groups only the span is read, by the DFA; the
        // regex still counts as anchored.
        let c = Compiled::new(r"^\s*(?:\S+ )?\w+\[\d+\]: ", false).unwrap();
        assert!(c.find_only && c.is_anchored() && c.direct.is_none());
        let hit = c.search(" mx1 sshd[1]: Accepted").unwrap();
        assert_eq!((hit.span.clone(), hit.group_count()), (0..14, 0));
        assert!(c.search("sshd: x").is_none());
    }

    /// An ASCII line's captures are taken by the pattern read as bytes,
    /// another's by its Unicode reading, each with the `regex` crate's
    /// answer: also where the two readings differ off ASCII (a no-break
    /// space is `\s`, the Kelvin sign is a case-insensitive `k`, `é` is
    /// `\w`), and on a line too long for the Unicode reading only. A
    /// pattern the byte reading refuses (a class with a non-ASCII
    /// character) keeps the Unicode one.
    #[test]
    fn ascii_lines_take_the_byte_reading_with_the_same_answer() {
        let cases: [(&str, &[&str]); 3] = [
            (
                r"(?i)^\s*(?P<k>k\w*)\s+(?P<rest>[^\[]*?)(?:\[(?P<n>\d+)\])?$",
                &[
                    "  key value[12]",
                    "\u{a0}key value[12]",
                    "\u{212a}ey caf\u{e9}",
                    "Key caf\u{e9}[3]",
                    "kelvin",
                    "x key",
                    "",
                ],
            ),
            (
                r"^(?P<h>\S+) (?:(?P<a>\w+)|(?P<b>.+))$",
                &[
                    "a b",
                    "a b c",
                    "\u{e9} \u{e9}",
                    "a \u{e9}t\u{e9}",
                    "a\u{a0}b c",
                ],
            ),
            ("^[\u{e9}\\d]+ (?P<w>\\w+)", &["\u{e9}9 x", "12 x", "ab x"]),
        ];
        for (pattern, lines) in cases {
            let c = Compiled::new(pattern, false).unwrap();
            assert!(c.direct.is_some(), "{pattern}");
            assert_eq!(c.has_ascii_way(), !pattern.contains('\u{e9}'), "{pattern}");
            let re = regex::Regex::new(&pyregex::translate(pattern).unwrap().pattern).unwrap();
            let long = format!("k {}", "v".repeat(20_000));
            for hay in lines.iter().copied().chain([long.as_str()]) {
                let want = re.captures(hay).map(|caps| {
                    (0..caps.len())
                        .map(|i| caps.get(i).map(|m| m.range()))
                        .collect::<Vec<_>>()
                });
                let ways = c.backtracker_groups(hay).unwrap();
                // Unicode first, when the line is not too long for it;
                // then bytes, on an all-ASCII line.
                let expected = usize::from(hay.len() < 10_000)
                    + usize::from(hay.is_ascii() && c.has_ascii_way());
                assert_eq!(ways.len(), expected, "{pattern}: {hay:?}");
                for got in ways {
                    assert_eq!(got, want, "{pattern}: {hay:?}");
                }
                let named = |n| {
                    want.as_ref().and_then(|w| {
                        w[re.capture_names().position(|x| x == Some(n)).unwrap()].clone()
                    })
                };
                let got = c.search(hay);
                assert_eq!(
                    got.as_ref().map(|h| h.span.clone()),
                    want.as_ref().and_then(|w| w[0].clone()),
                    "{pattern}: {hay:?}"
                );
                for name in c.group_names() {
                    assert_eq!(
                        got.as_ref().and_then(|h| h.range_of(name)),
                        named(name),
                        "{pattern}: {hay:?}"
                    );
                }
            }
        }
    }

    /// An unanchored regex answers as the `regex` crate does whatever
    /// share of its lines match, and on a line too long for the
    /// backtracker.
    #[test]
    fn unanchored_regex_captures_as_the_regex_crate_does_either_way() {
        let python = r"(?:from|rhost=) ?(?P<host>\S+)(?: port (?P<port>\d+))?(?P<tail> x)?$";
        let c = Compiled::new(python, false).unwrap();
        assert!(c.direct.is_none());
        let re = regex::Regex::new(&pyregex::translate(python).unwrap().pattern).unwrap();
        let long = format!("{} from a.b port 9", "é".repeat(1 << 19));
        let matching = [
            "auth failure from 192.0.2.1 port 22",
            "rhost=h.example x",
            "from from  fromrhost=é",
            long.as_str(),
        ];
        let other = ["nothing here", "", "from ", "rhost= port 2 "];
        let check = |hay: &str| {
            let want = re.captures(hay).map(|caps| {
                let g = |n: &str| caps.name(n).map(|m| m.range());
                (
                    caps.get(0).unwrap().range(),
                    g("host"),
                    g("port"),
                    g("tail"),
                )
            });
            let got = c.search(hay).map(|hit| {
                let g = |n: &str| hit.range_of(n);
                (hit.span.clone(), g("host"), g("port"), g("tail"))
            });
            assert_eq!(got, want, "{hay}");
            want.is_some()
        };
        // Most lines matching, then most not, then matching again.
        for round in [&matching[..], &other[..], &matching[..]] {
            for _ in 0..200 {
                for hay in round {
                    assert_eq!(check(hay), round == &matching[..], "{hay}");
                }
            }
            for hay in matching.iter().chain(&other) {
                check(hay);
            }
        }
    }

    /// A match's span and its groups' spans, by group number.
    type Found = (Range<usize>, Vec<Option<Range<usize>>>);

    /// A regex ending in a look-ahead runs its body on the linear engine
    /// and answers as the backtracking engine does: the same match and
    /// groups, or none, whether the look-ahead passes at the body's first
    /// match, refuses it (a later start matches), or refuses every one.
    #[test]
    fn trailing_lookahead_answers_as_the_backtracking_engine() {
        let postfix = r"^[^[]*\[(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})\](?::\d+)?: SASL ((?i)LOGIN|PLAIN|(?:CRAM|DIGEST)-MD5) authentication failed:(?! Connection lost to authentication server| Invalid authentication mechanism)";
        let cases: [(&str, &[&str]); 4] = [
            (
                postfix,
                &[
                    "unknown[192.0.2.1]: SASL LOGIN authentication failed: authentication failure",
                    "unknown[192.0.2.1]: SASL login authentication failed: UGFzc3dvcmQ6",
                    "unknown[192.0.2.1]: SASL PLAIN authentication failed: Connection lost to authentication server",
                    "unknown[192.0.2.1]: SASL PLAIN authentication failed: Invalid authentication mechanism",
                    "unknown[192.0.2.1]: SASL PLAIN authentication failed:",
                    "unknown[nothing]: SASL PLAIN authentication failed: x",
                    "",
                ],
            ),
            (
                r"(?P<n>\d+)x(?!y)",
                &["1xy 2x", "1xy 2xy", "12x", "x", "3xy4x"],
            ),
            (r"(?m)^a(?P<n>b+)(?=$)", &["abb\nab", "abbc\nabc", "ab"]),
            (r"(?i)from (?P<h>\S+)(?!\.example)", &["FROM a.example", "from host.test", "from b.EXAMPLE c"]),
        ];
        for (pattern, lines) in cases {
            let c = Compiled::new(pattern, false).unwrap();
            assert!(c.is_backtracking(), "{pattern}");
            assert!(c.ahead.is_some(), "{pattern}: not split");
            let fancy =
                fancy_regex::Regex::new(&pyregex::translate(pattern).unwrap().pattern).unwrap();
            for line in lines.iter().copied() {
                // Unnamed groups are not reported: compare the named ones.
                let want: Option<Found> = fancy.captures(line).unwrap().map(|caps| {
                    let groups: Vec<_> = c
                        .named
                        .numbers
                        .iter()
                        .map(|&i| caps.get(i).map(|m| m.range()))
                        .collect();
                    (caps.get(0).unwrap().range(), groups)
                });
                let got: Option<Found> = c.search(line).map(|hit| {
                    let groups: Vec<_> = c.group_names().map(|n| hit.range_of(n)).collect();
                    (hit.span.clone(), groups)
                });
                assert_eq!(got, want, "{pattern}: {line:?}");
            }
        }
        // Not of that form: stays on the backtracking engine alone.
        for pattern in [
            r"a(?!b)c",
            r"x|a(?!b)",
            r"(?<=a)b",
            r"a(?!(?P<g>b))",
            r"(?x)a (?!b)",
        ] {
            let c = Compiled::new(pattern, false).unwrap();
            assert!(c.ahead.is_none(), "{pattern}");
        }
        assert_eq!(
            split_trailing_lookahead(r"(?m)[(\])]\((?i)a(?!b|\))"),
            Some((r"(?m)[(\])]\((?i)a", r"b|\)", true, "(?m)(?i)".to_string()))
        );
    }

    /// A group on the way of every match, or one of several in each
    /// branch, always takes part; an optional one, or one in a branch
    /// without it, may not; an empty match of it is not text.
    #[test]
    fn groups_every_match_takes_part_in() {
        let has = |pattern: &str, names: &[&str], nonempty: bool| {
            Compiled::new(pattern, false)
                .unwrap()
                .always_has(names, nonempty)
        };
        assert!(has(r"^(?:(?P<a>x)|(?P<b>y))z", &["a", "b"], true));
        assert!(!has(r"^(?:(?P<a>x)|(?P<b>y))z", &["a"], false));
        assert!(!has(r"^(?:(?P<a>x)|y)z", &["a"], false));
        assert!(!has(r"^(?P<a>x)?z", &["a"], false));
        assert!(has(r"^(?:w(?P<a>x))+z", &["a"], true));
        assert!(!has(r"^(?:w(?P<a>x)){0,2}z", &["a"], false));
        assert!(has(r"^(?P<a>x*)z", &["a"], false));
        assert!(!has(r"^(?P<a>x*)z", &["a"], true));
        assert!(has(r"^(?P<o>(?P<a>x)y)", &["a"], true));
        // Not known on the backtracking engine.
        assert!(!has(r"(?<=w)(?P<a>x)", &["a"], false));
    }

    /// What a text must start with for a regex anchored at the start:
    /// every beginning of the linear engine's, the plain text after `^`
    /// of the backtracking engine's; nothing when a match may start
    /// otherwise or that is not known.
    #[test]
    fn starts_of_anchored_regexes() {
        let starts = |python: &str| {
            Compiled::new(python, false).unwrap().starts().map(|s| {
                s.into_iter()
                    .map(|t| String::from_utf8(t).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            starts(r"^Accepted \w+ for (?P<u>\S+)"),
            list(&["Accepted "])
        );
        assert_eq!(
            starts(r"^[aA]uth(?:entication)? failure"),
            list(&[
                "Auth failure",
                "Authentication failure",
                "auth failure",
                "authentication failure"
            ])
        );
        // One beginning of another: the shorter says it all.
        assert_eq!(starts(r"^(?:ab|abc|b)x"), list(&["abcx", "abx", "bx"]));
        assert_eq!(starts(r"^(?:ab|a)c"), list(&["abc", "ac"]));
        assert_eq!(starts(r"^(?:ab|a)\w"), list(&["a"]));
        // Not anchored, or a match may start anywhere / be empty.
        assert_eq!(starts(r"Accepted \w+"), None);
        assert_eq!(starts(r"^(?:x|)\w+ refused"), None);
        assert_eq!(starts(r"^(?:a)?"), None);
        assert_eq!(starts(r"^\w+ x"), None);
        // Many beginnings: their first bytes.
        let words: Vec<String> = (0..20).map(|i| format!("w{i}x")).collect();
        assert_eq!(starts(&format!("^(?:{})", words.join("|"))), list(&["w"]));
        // The backtracking engine: the plain text after `^`.
        assert_eq!(
            starts(r"^Failed (?P<a>x)?(?(a)y|z) from"),
            list(&["Failed "])
        );
        assert_eq!(starts(r"^ab?c(?!d)"), list(&["a"]));
        assert_eq!(starts(r"^a\.b\[(?=c)"), list(&["a.b["]));
        assert_eq!(starts(r"^(?=a)abc"), None);
        assert_eq!(starts(r"^x|y(?=z)"), None);
        assert_eq!(starts(r"(?<=a)^b"), None);
        assert_eq!(starts(r"^(?i:ab)(?=c)"), None);
        assert_eq!(starts(r"(?i)^ab(?=c)"), None);
        assert_eq!(starts(r"^\d(?=c)"), None);
        // What a text starting otherwise is: not matched.
        for (python, texts) in [
            (r"^ab?c(?!d)", &["ac", "abc", "acd x", "bc", "", "Ac"][..]),
            (r"^a\.b\[(?=c)", &["a.b[c", "a.b[", "axb[c"][..]),
            (r"^(?:ab|a)c", &["abc", "ac", "abd", "bc"][..]),
        ] {
            let c = Compiled::new(python, false).unwrap();
            let st = c.starts().unwrap();
            for t in texts {
                if c.is_match(t) {
                    assert!(
                        st.iter().any(|s| t.as_bytes().starts_with(s)),
                        "{python}: {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn multiline_anchors_each_line() {
        let c = Compiled::new(r"^b$", true).unwrap();
        assert!(c.search("a\nb\n").is_some());
        let c = Compiled::new(r"^b$", false).unwrap();
        assert!(c.search("a\nb").is_none());
    }
}
