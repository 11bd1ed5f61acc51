//! One date template: where in a line a date may stand and how to read it.
//!
//! Pattern templates are turned into a regex the way fail2ban builds its own
//! (`%`-directives expanded, a capture group around the date, word or
//! line-begin boundaries added) so that a `datepattern` written for fail2ban
//! finds the same text here. Epoch and TAI64N templates are scanned by hand
//! (`epoch.rs`, `tai64n.rs`): they are simple and sit at the line start, so no
//! regex is needed.

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use fancy_regex::{Captures, Regex};

use super::directives::{fragment, is_alpha, month_number, EXTENDED};
use super::epoch::{epoch_value, search_epoch, LONG_EPOCH, SHORT_EPOCH};
use super::error::DatePatternError;
use super::fast::Fast;
use super::fields::{zone_offset_seconds, Fields};
use super::shape::Shape;
use super::tai64n::search_tai64n;

/// fail2ban's "not inside a word" test, `(?=^|\b|\W)` at the start and
/// `(?=\b|\W|$)` at the end, both of which hold unless there is a word
/// character on both sides. Written with half word boundaries so the regex
/// needs no look-around and runs on the fast engine.
const BOUND: &str = r"(?:\b{start-half}|\b{end-half})";

/// What the line-begin anchor lets precede a date: up to two non-word
/// characters such as `[` or `<`.
const LINE_START: &str = r"^(?:\W{0,2})?";

/// A match of a template in a line.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    /// Where the whole match starts; fail2ban's "distance" of the date.
    pub start: usize,
    /// Where the whole match ends.
    pub end: usize,
    /// The date text (the template's first group), which a caller cuts out.
    pub span: Range<usize>,
    /// `None` when the text matched but holds no valid value.
    pub fields: Option<Fields>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Begin {
    None,
    Word,
    Line,
}

/// Which field a named group fills.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    Fraction,
    YearDay,
    Zone,
    Epoch,
}

impl Slot {
    fn of(name: &str) -> Option<Slot> {
        Some(match name {
            "Y" => Slot::Year4,
            "y" => Slot::Year2,
            "m" => Slot::Month,
            "b" | "B" => Slot::MonthName,
            "d" => Slot::Day,
            "H" => Slot::Hour,
            "I" => Slot::Hour12,
            "p" => Slot::AmPm,
            "M" => Slot::Minute,
            "S" => Slot::Second,
            "f" => Slot::Fraction,
            "j" => Slot::YearDay,
            "z" | "Z" => Slot::Zone,
            "s" => Slot::Epoch,
            _ => return None,
        })
    }
}

/// The regex crate where the pattern allows (linear time, no allocation
/// per search); fancy-regex where it needs back-references or look-around.
pub(crate) enum Engine {
    Plain {
        re: regex::Regex,
        /// Reused between searches so a search allocates nothing; a mutex
        /// only so compiled templates can be shared, never contended since
        /// each detector has its own copy.
        locations: Mutex<regex::CaptureLocations>,
    },
    Fancy {
        re: Regex,
        /// A plain regex matching wherever `re` does and possibly more: its
        /// linear scan rules out most lines and tells where the backtracking
        /// engine can start.
        prefilter: Option<regex::Regex>,
    },
}

impl Clone for Engine {
    fn clone(&self) -> Engine {
        match self {
            Engine::Plain { re, .. } => Engine::Plain {
                re: re.clone(),
                locations: Mutex::new(re.capture_locations()),
            },
            Engine::Fancy { re, prefilter } => Engine::Fancy {
                re: re.clone(),
                prefilter: prefilter.clone(),
            },
        }
    }
}

#[derive(Clone)]
pub(crate) enum Kind {
    /// A `%`-pattern, or a pattern with `{EPOCH}` in it (`epoch` set).
    Regex {
        engine: Engine,
        slots: Vec<(usize, Slot)>,
        /// For `{EPOCH}` patterns: the group with the number, and whether
        /// milli/microsecond forms are allowed.
        epoch: Option<(usize, bool)>,
    },
    Epoch {
        long: bool,
        line_begin: bool,
    },
    Tai64n {
        line_begin: bool,
    },
    /// `{NONE}`: lines carry no date; the caller's `now` is their time.
    Empty,
    /// A built-in template compiled on first use: compiled, the defaults
    /// take megabytes, and most logs only ever need one or two of them.
    /// The compiled regex is shared by every detector (`shared`); each
    /// detector keeps its own copy of the engine (`local`), as it does for
    /// an eager template, so readers never share capture buffers.
    Lazy {
        shared: Arc<LazyRegex>,
        local: OnceLock<Option<Box<Kind>>>,
    },
}

/// The pattern alone until first use: its translation to a regex runs
/// then too, so the regexes that translate patterns are not built at start
/// either.
pub(crate) struct LazyRegex {
    name: String,
    line_begin: bool,
    compiled: OnceLock<Option<Kind>>,
}

impl LazyRegex {
    fn kind(&self) -> Option<Kind> {
        self.compiled
            .get_or_init(|| {
                Template::regex_of(&self.name)
                    .and_then(|(regex, _)| {
                        Template::compile(&self.name, &regex, self.line_begin, None, None)
                    })
                    .map_err(|e| tracing::warn!("date template {} not usable: {e}", self.name))
                    .ok()
                    .map(|t| t.kind)
            })
            .clone()
    }
}

#[derive(Clone)]
pub(crate) struct Template {
    pub name: String,
    /// Only ever matches at the line start, so a kept template is retried
    /// there instead of near the previous position.
    pub line_begin: bool,
    pub kind: Kind,
    /// How strongly a win pulls the template to the front of the search
    /// order: line-start copies of the defaults pull harder, as in fail2ban.
    pub weight: f64,
    /// A hand-written reader for this exact pattern, used once the template
    /// is known to save running the regex on every line.
    pub fast: Option<Fast>,
    /// What a default's date begins with, so a line that cannot hold it is
    /// passed over without compiling the regex.
    pub shape: Option<Shape>,
}

impl Template {
    pub fn epoch(long: bool, line_begin: bool) -> Template {
        let name = match (long, line_begin) {
            (false, false) => "Epoch",
            (true, false) => "LongEpoch",
            (false, true) => "{^LN-BEG}Epoch",
            (true, true) => "{^LN-BEG}LongEpoch",
        };
        Template {
            name: name.into(),
            line_begin,
            kind: Kind::Epoch { long, line_begin },
            fast: None,
            shape: None,
            weight: 1.0,
        }
    }

    pub fn tai64n(line_begin: bool) -> Template {
        Template {
            name: if line_begin {
                "{^LN-BEG}TAI64N"
            } else {
                "TAI64N"
            }
            .into(),
            line_begin,
            kind: Kind::Tai64n { line_begin },
            fast: None,
            shape: None,
            weight: 1.0,
        }
    }

    pub fn empty() -> Template {
        Template {
            name: "{NONE}".into(),
            line_begin: true,
            kind: Kind::Empty,
            fast: None,
            shape: None,
            weight: 1.0,
        }
    }

    /// A `%`-pattern as fail2ban's `DatePatternRegex` reads it.
    /// [`Template::pattern`] translated and compiled only when first used
    /// (the built-in defaults, which are known to compile); `line_begin` is
    /// what [`Template::regex_of`] will find, given by the caller so that
    /// nothing runs before; `shape` is what its date begins with.
    pub fn pattern_lazy(pattern: &str, line_begin: bool, shape: Shape) -> Template {
        Template {
            name: pattern.to_string(),
            line_begin,
            kind: Kind::Lazy {
                shared: Arc::new(LazyRegex {
                    name: pattern.to_string(),
                    line_begin,
                    compiled: OnceLock::new(),
                }),
                local: OnceLock::new(),
            },
            fast: Fast::for_pattern(pattern),
            shape: Some(shape),
            weight: 1.0,
        }
    }

    pub fn pattern(pattern: &str) -> Result<Template, DatePatternError> {
        let (regex, line_begin) = Template::regex_of(pattern)?;
        let fast = Fast::for_pattern(pattern);
        Template::compile(pattern, &regex, line_begin, None, fast)
    }

    /// The regex a `%`-pattern stands for, and whether it is anchored at the
    /// line start.
    pub(super) fn regex_of(pattern: &str) -> Result<(String, bool), DatePatternError> {
        let mut p = pattern;
        let mut begin = Begin::Word;
        let mut end = true;
        if let Some(rest) = p.strip_prefix("{UNB}") {
            p = rest;
            begin = Begin::None;
            end = false;
        }
        if begin != Begin::None {
            if let Some(rest) = p.strip_prefix("{^LN-BEG}") {
                p = rest;
                begin = Begin::Line;
            }
        }
        let (body, alpha) = expand(p, pattern)?;
        let regex = if alpha { format!("(?i){body}") } else { body };
        Ok(bound(&regex, begin, end))
    }

    /// A pattern with `{EPOCH}`/`{LEPOCH}` in it: the number is read as
    /// epoch seconds wherever the surrounding regex puts it.
    pub fn epoch_pattern(pattern: &str, long: bool) -> Result<Template, DatePatternError> {
        let number = if long { LONG_EPOCH } else { SHORT_EPOCH };
        let replaced = epoch_placeholder().replace_all(pattern, format!("({number})").as_str());
        let (regex, line_begin) = bound(&format!("({replaced})"), Begin::Word, true);
        Template::compile(pattern, &regex, line_begin, Some((2, long)), None)
    }

    fn compile(
        name: &str,
        regex: &str,
        line_begin: bool,
        epoch: Option<(usize, bool)>,
        fast: Option<Fast>,
    ) -> Result<Template, DatePatternError> {
        let slot_of = |(i, n): (usize, Option<&str>)| Some((i, Slot::of(n?)?));
        let (engine, slots) = match regex::Regex::new(regex) {
            Ok(re) => {
                let slots = re.capture_names().enumerate().filter_map(slot_of).collect();
                let locations = Mutex::new(re.capture_locations());
                (Engine::Plain { re, locations }, slots)
            }
            Err(_) => {
                let re = Regex::new(regex).map_err(|e| DatePatternError::Regex {
                    pattern: name.to_string(),
                    source: Box::new(e),
                })?;
                let slots = re.capture_names().enumerate().filter_map(slot_of).collect();
                let prefilter = prefilter(regex);
                (Engine::Fancy { re, prefilter }, slots)
            }
        };
        Ok(Template {
            name: name.to_string(),
            line_begin,
            kind: Kind::Regex {
                engine,
                slots,
                epoch,
            },
            fast,
            shape: None,
            weight: 1.0,
        })
    }

    /// Whether the template can run (a lazy one is compiled to find out).
    #[cfg(test)]
    pub fn compiles(&self) -> bool {
        match &self.kind {
            Kind::Lazy { shared, .. } => shared.kind().is_some(),
            _ => true,
        }
    }

    /// The first match at or after byte `from`.
    pub fn search(&self, line: &str, from: usize) -> Option<Hit> {
        // `from` comes from an earlier line and may not fit this one.
        if !line.is_char_boundary(from) {
            return None;
        }
        search_in(&self.kind, line, from)
    }
}

fn search_in(kind: &Kind, line: &str, from: usize) -> Option<Hit> {
    {
        match kind {
            Kind::Regex {
                engine,
                slots,
                epoch,
            } => match engine {
                Engine::Plain { re, locations } => {
                    let mut locs = locations.lock().ok()?;
                    re.captures_read_at(&mut locs, line, from)?;
                    hit(line, |i| locs.get(i).map(|(s, e)| s..e), slots, *epoch)
                }
                Engine::Fancy { re, prefilter } => {
                    let from = match prefilter {
                        Some(p) => p.find_at(line, from)?.start(),
                        None => from,
                    };
                    let caps = re.captures_from_pos(line, from).ok()??;
                    hit(line, |i| caps.get(i).map(|m| m.range()), slots, *epoch)
                }
            },
            Kind::Epoch { long, line_begin } => {
                search_epoch(line.as_bytes(), from, *long, *line_begin)
            }
            Kind::Tai64n { line_begin } => search_tai64n(line.as_bytes(), from, *line_begin),
            Kind::Empty => (from == 0).then(|| Hit {
                start: 0,
                end: 0,
                span: 0..0,
                fields: Some(Fields::default()),
            }),
            Kind::Lazy { shared, local } => {
                let kind = local.get_or_init(|| shared.kind().map(Box::new));
                search_in(kind.as_deref()?, line, from)
            }
        }
    }
}

/// The prefilter for a template regex that needs back-references: each
/// `(?P=name)` widened to any text. `None` when the regex needs no
/// backtracking engine anyway or uses other features the plain engine lacks.
fn prefilter(regex: &str) -> Option<regex::Regex> {
    static BACKREF: OnceLock<Regex> = OnceLock::new();
    let backref = meta(&BACKREF, r"\(\?P=\w+\)");
    if !backref.is_match(regex).unwrap_or(false) {
        return None;
    }
    let widened = backref.replace_all(regex, "(?s:.*?)");
    regex::Regex::new(&widened).ok()
}

/// `%`-directives replaced by their regex; also says whether any of them
/// matches letters.
fn expand(p: &str, whole: &str) -> Result<(String, bool), DatePatternError> {
    let mut out = String::with_capacity(p.len() * 4);
    let mut alpha = false;
    let mut rest = p;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let name = if after.starts_with('%') {
            "%"
        } else if let Some(ext) = EXTENDED.iter().find(|e| after.starts_with(**e)) {
            ext
        } else {
            let end = after.chars().next().map_or(0, char::len_utf8);
            &after[..end]
        };
        if name == "%" {
            out.push('%');
        } else {
            let frag = fragment(name).ok_or_else(|| DatePatternError::UnknownDirective {
                pattern: whole.to_string(),
                directive: name.to_string(),
            })?;
            alpha |= is_alpha(name);
            out.push_str(&frag);
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    Ok((out, alpha))
}

fn meta(cell: &'static OnceLock<Regex>, re: &str) -> &'static Regex {
    #[allow(clippy::expect_used)] // constant patterns, exercised by every test
    cell.get_or_init(|| Regex::new(re).expect("built-in regex compiles"))
}

fn epoch_placeholder() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    meta(&RE, r"(?i)(?<!\\)\{L?EPOCH\}")
}

/// Whether `pattern` holds an `{EPOCH}`/`{LEPOCH}` placeholder.
pub(crate) fn has_epoch_placeholder(pattern: &str) -> bool {
    epoch_placeholder().is_match(pattern).unwrap_or(false)
}

/// Adds the capture group and boundaries fail2ban adds around a date regex;
/// returns the regex and whether it can only match at the line start.
fn bound(regex: &str, begin: Begin, end: bool) -> (String, bool) {
    static FLAGS: OnceLock<Regex> = OnceLock::new();
    static NO_BEGIN: OnceLock<Regex> = OnceLock::new();
    static NO_END: OnceLock<Regex> = OnceLock::new();
    static GROUPED: OnceLock<Regex> = OnceLock::new();
    static GROUP: OnceLock<Regex> = OnceLock::new();
    static LINE_BOUND: OnceLock<Regex> = OnceLock::new();
    static STARS: OnceLock<Regex> = OnceLock::new();

    let mut regex = regex.trim().to_string();
    // Inline flags such as `(?i)` must stay in front of everything added.
    let mut flags = String::new();
    if let Ok(Some(m)) = meta(&FLAGS, r"\(\?[a-z]+\)").find(&regex) {
        flags = m.as_str().replace('u', "");
        if flags == "(?)" {
            flags.clear();
        }
        regex.replace_range(m.range(), "");
    }
    let no_begin = meta(&NO_BEGIN, r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)");
    let no_end = meta(&NO_END, r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$");
    let bound_begin = begin != Begin::None && !no_begin.is_match(&regex).unwrap_or(false);
    let bound_end = end && !no_end.is_match(&regex).unwrap_or(false);
    let grouped = meta(&GROUPED, r"(?<!\(\?)(?<!\\)\((?!\?)");
    if !grouped.is_match(&regex).unwrap_or(false) {
        let group = meta(&GROUP, r"(?s)^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$");
        regex = group.replace(&regex, "$1($2)$3").into_owned();
    }
    let mut line_begin = false;
    if bound_begin {
        regex = match begin {
            Begin::Line => {
                line_begin = true;
                format!("{LINE_START}{regex}")
            }
            _ => format!("{BOUND}{regex}"),
        };
    }
    if bound_end {
        regex.push_str(BOUND);
    }
    let line_bound = meta(&LINE_BOUND, r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))");
    line_begin |= line_bound.is_match(&regex).unwrap_or(false);
    let stars = meta(&STARS, r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$");
    let regex = stars
        .replace_all(&regex, |c: &Captures<str>| c[0].replace("**", ""))
        .into_owned();
    (format!("{flags}{regex}"), line_begin)
}

fn digits<T: TryFrom<i64>>(s: &str) -> Option<T> {
    let s = s.trim();
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = s.bytes().fold(0i64, |a, b| a * 10 + i64::from(b - b'0'));
    T::try_from(v).ok()
}

/// The hit a regex match makes, from its group ranges.
fn hit(
    line: &str,
    group: impl Fn(usize) -> Option<Range<usize>>,
    slots: &[(usize, Slot)],
    epoch: Option<(usize, bool)>,
) -> Option<Hit> {
    let whole = group(0)?;
    let span = group(1).unwrap_or_else(|| whole.clone());
    let fields = match epoch {
        Some((g, long)) => group(g)
            .and_then(|r| epoch_value(line.get(r)?, long))
            .map(|e| Fields {
                epoch: Some(e),
                ..Fields::default()
            }),
        None => read_fields(line, &group, slots),
    };
    Some(Hit {
        start: whole.start,
        end: whole.end,
        span,
        fields,
    })
}

fn read_fields(
    line: &str,
    group: &impl Fn(usize) -> Option<Range<usize>>,
    slots: &[(usize, Slot)],
) -> Option<Fields> {
    let mut f = Fields::default();
    for &(i, slot) in slots {
        let Some(r) = group(i) else { continue };
        let v = line.get(r)?;
        match slot {
            Slot::Year4 => f.year = Some(digits(v)?),
            Slot::Year2 => f.year = Some(digits::<i32>(v)? + 2000),
            Slot::Month => f.month = Some(digits(v)?),
            Slot::MonthName => f.month = Some(month_number(v)?),
            Slot::Day => f.day = Some(digits(v)?),
            Slot::Hour => f.hour = digits(v)?,
            Slot::Hour12 => f.hour12 = Some(digits(v)?),
            Slot::AmPm => f.pm = Some(v.eq_ignore_ascii_case("pm")),
            Slot::Minute => f.minute = digits(v)?,
            Slot::Second => f.second = digits(v)?,
            Slot::Fraction => f.nanos = fraction_nanos(v.as_bytes())?,
            Slot::YearDay => f.yday = Some(digits(v)?),
            Slot::Zone => {
                f.offset = Some(match v {
                    "Z" | "UTC" | "GMT" => 0,
                    _ => zone_offset_seconds(v)?,
                })
            }
            Slot::Epoch => f.epoch = Some((digits(v)?, 0)),
        }
    }
    Some(f)
}

/// Up to nine fraction digits as nanoseconds.
pub(crate) fn fraction_nanos(d: &[u8]) -> Option<i32> {
    if d.is_empty() || d.len() > 9 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = d.iter().fold(0i32, |a, b| a * 10 + i32::from(b - b'0'));
    for _ in d.len()..9 {
        v *= 10;
    }
    Some(v)
}
