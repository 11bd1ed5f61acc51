//! When a log line says it was written.
//!
//! findtime must count from the event, not from when nftjail got to read the
//! line (a restart re-reads backlog, a slow disk delays it), so each matching
//! line's own timestamp is parsed. Detection follows fail2ban's date detector
//! closely, because filters ported from fail2ban rely on which date it picks
//! and on the date text being cut out of the line before `failregex` runs.
//!
//! A [`DateDetector`] either tries every known template
//! ([`DateDetector::auto`]) or the ones a filter pins with fail2ban's
//! `datepattern` syntax ([`DateDetector::from_fail2ban`]). Whichever matched
//! last is tried first on the next line, at the same place, which makes the
//! steady state one cheap check per line.
//!
//! Auto-detection knows fail2ban's default formats: ISO 8601 / RFC 3339 with
//! `-`, `/` or `.` between date fields (so also RFC 5424 and nginx error
//! logs), BSD syslog and asctime (Apache error logs) with optional weekday,
//! fraction and year, Apache/nginx access logs, day-first and month-first
//! numeric dates, cPanel, MySQL, Tomcat, ASSP, basic ISO 8601, epoch seconds
//! (line start, `[...]`, SELinux `audit(...)`), time-of-day only, and
//! TAI64N. Each is tried anchored at the line start first, then anywhere.
//!
//! Filling in what a line leaves out follows fail2ban too: no year means
//! this year unless that is more than a day ahead of `now`; no date means
//! today unless ahead of `now`; a pattern that matches an empty date means
//! the previous line's date if under a minute old, else `now`. Impossible
//! dates give `None` rather than a guess.

mod bounds;
mod defaults;
mod directives;
mod epoch;
mod error;
mod fast;
mod fields;
mod shape;
mod tai64n;
mod template;
mod zone;

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

pub use error::{DatePatternError, ZoneError};
pub use zone::Zone;

use fields::{Fields, NowCache};
use template::{has_epoch_placeholder, Hit, Template};

/// A date found in a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub time: SystemTime,
    /// Byte range of the date text in `line`, so a caller can cut it out.
    pub span: Range<usize>,
}

/// Finds the date in each line of one source.
///
/// Keeps the template that matched last (and where), so lines of one log are
/// read with one template until the format changes. Cloning an unused
/// detector is the cheap way to give each source its own (compiling a
/// `datepattern` costs far more).
#[derive(Clone)]
pub struct DateDetector {
    templates: Vec<Template>,
    zone: Zone,
    /// Index of the template that matched last.
    last: Option<usize>,
    /// Where (in characters) that match started; before any match 1, as in
    /// fail2ban, so a first date at the line start or one character in is
    /// taken at once.
    last_distance: usize,
    /// Where (in characters) it ended.
    last_end_chars: usize,
    /// The characters before and at its start, before and at its end.
    last_chars: [Option<char>; 4],
    /// Per template: how often it won and where it last matched.
    stats: Vec<Stats>,
    /// The first template that never won, as a place to move winners to.
    first_unused: usize,
    now_cache: NowCache,
    /// The last date read, for lines whose template matched an empty date.
    last_time: Option<SystemTime>,
    /// The last fields resolved, in which second of `now`, and the instant
    /// they gave: a busy log writes the same timestamp on many lines in a
    /// row, and resolving one (zone rules, year inference) costs more than
    /// reading it.
    resolved: Option<(Fields, i64, Timestamp)>,
}

impl std::fmt::Debug for DateDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.templates.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("DateDetector")
            .field("templates", &names)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl DateDetector {
    fn with_templates(templates: Vec<Template>) -> DateDetector {
        DateDetector {
            stats: (0..templates.len()).map(Stats::new).collect(),
            first_unused: 0,
            templates,
            zone: Zone::local(),
            last: None,
            last_distance: 1,
            last_end_chars: 0,
            last_chars: [None; 4],
            now_cache: NowCache::default(),
            last_time: None,
            resolved: None,
        }
    }

    /// Every known template; the first one that matches a line is kept for later lines.
    pub fn auto() -> DateDetector {
        DateDetector::with_templates(defaults::all())
    }

    /// A fail2ban `datepattern` value: one pattern per line, each a
    /// `%`-pattern (with `{^LN-BEG}`/`{UNB}` prefixes and regex syntax) or one
    /// of `{DATE}` inside a regex, `{^LN-BEG}`, `{DEFAULT}`, `{NONE}`,
    /// `EPOCH`, `LEPOCH`, `{EPOCH}` inside a regex, `TAI64N`, `ISO8601`.
    ///
    /// `%%` must already be unescaped to `%` as fail2ban's config reader does.
    pub fn from_fail2ban(pattern: &str) -> Result<DateDetector, DatePatternError> {
        let mut templates = Vec::new();
        for line in pattern.lines().map(str::trim).filter(|l| !l.is_empty()) {
            add_pattern(&mut templates, line)?;
        }
        if templates.is_empty() {
            return Err(DatePatternError::Empty);
        }
        Ok(DateDetector::with_templates(templates))
    }

    /// Zone for times written without one (default: the system's local zone, $TZ honoured).
    pub fn with_zone(mut self, zone: Zone) -> DateDetector {
        self.zone = zone;
        self.resolved = None;
        self
    }

    /// Names of the templates in the order they are tried, for diagnostics.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.name.as_str())
    }

    /// Forgets what the source's lines looked like (template, order,
    /// positions, last date), as a new detector would; cheaper than
    /// building one, e.g. when a log file is replaced by another program's.
    pub fn reset(&mut self) {
        let mut both: Vec<(Template, Stats)> =
            self.templates.drain(..).zip(self.stats.drain(..)).collect();
        both.sort_by_key(|(_, s)| s.home);
        for (t, s) in both {
            self.stats.push(Stats::new(s.home));
            self.templates.push(t);
        }
        self.first_unused = 0;
        self.last = None;
        self.last_distance = 1;
        self.last_end_chars = 0;
        self.last_chars = [None; 4];
        self.last_time = None;
        self.resolved = None;
    }

    /// Name of the template that found the last date, for diagnostics
    /// (`nftjail test` can say which format it detected).
    pub fn current_template(&self) -> Option<&str> {
        self.templates.get(self.last?).map(|t| t.name.as_str())
    }

    /// Finds the line's date; `now` drives year inference and is injectable for tests.
    pub fn find(&mut self, line: &str, now: SystemTime) -> Option<Found> {
        let (index, hit) = self.locate(line)?;
        let now_ts = to_timestamp(now)?;
        self.won(index, line, (hit.start, hit.end), now_ts.as_second());
        let fields = hit.fields?;
        if hit.span.is_empty() {
            // The pattern says this line has no date of its own (a
            // continuation line, `{NONE}`): like fail2ban, take the previous
            // line's if it is recent, else now.
            let recent = now.checked_sub(RECENT).unwrap_or(SystemTime::UNIX_EPOCH);
            let time = self.last_time.filter(|t| *t > recent).unwrap_or(now);
            return Some(Found {
                time,
                span: hit.span,
            });
        }
        let time = to_system_time(self.resolve(&fields, now_ts)?)?;
        self.last_time = Some(time);
        Some(Found {
            time,
            span: hit.span,
        })
    }

    /// The instant `fields` name as of `now`, from the last line's when it
    /// wrote the same fields in the same second of `now`. Fields without a
    /// date (time of day only) are compared with `now` to the nanosecond
    /// (a time ahead of it is yesterday's): those are always resolved.
    fn resolve(&mut self, fields: &Fields, now: Timestamp) -> Option<Timestamp> {
        let second = now.as_second();
        if let Some((f, s, t)) = &self.resolved {
            if f == fields && *s == second {
                return Some(*t);
            }
        }
        let t = fields.resolve(&self.zone.0, now, &mut self.now_cache)?;
        let dated = fields.month.is_some() || fields.yday.is_some() || fields.epoch.is_some();
        self.resolved = dated.then_some((*fields, second, t));
        Some(t)
    }

    /// Byte offsets in `line` of the last match's start and end (kept in
    /// characters, as fail2ban compares them), clamped to the line's end
    /// like a Python slice.
    fn last_place(&self, line: &str) -> (usize, usize) {
        (
            byte_of_char(line, self.last_distance),
            byte_of_char(line, self.last_end_chars),
        )
    }

    /// fail2ban's test that the last template's date is still where it
    /// was: the character before the date (or its first one, if not
    /// alphanumeric) and the one after it (or its last one, likewise) are
    /// as in the previous line.
    fn same_surroundings(&self, line: &str, from: usize, to: usize) -> bool {
        let before = |at: usize| line.get(..at).and_then(|s| s.chars().next_back());
        let after = |at: usize| line.get(at..).and_then(|s| s.chars().next());
        let [before_start, at_start, before_end, at_end] = self.last_chars;
        let not_alnum = |c: Option<char>| c.is_some_and(|c| !c.is_alphanumeric());
        let start_ok =
            before(from) == before_start || (after(from) == at_start && not_alnum(at_start));
        let end_ok = after(to) == at_end || (before(to) == before_end && not_alnum(before_end));
        start_ok && end_ok
    }

    /// Books a win of template `index` and, like fail2ban, moves it towards
    /// the front so a source's format is found early in the next search.
    fn won(&mut self, index: usize, line: &str, (start, end): (usize, usize), now: i64) {
        let distance = chars_before(line, start);
        let before = |at: usize| line.get(..at).and_then(|s| s.chars().next_back());
        let after = |at: usize| line.get(at..).and_then(|s| s.chars().next());
        self.last_chars = [before(start), after(start), before(end), after(end)];
        self.last_end_chars = chars_before(line, end);
        if let Some(s) = self.stats.get_mut(index) {
            s.wins = s.wins.saturating_add(1);
            s.distance = distance;
            s.last_used = now;
        }
        if self.first_unused == index {
            self.first_unused += 1;
        }
        self.last_distance = distance;
        let mut index = index;
        if index != 0 && Some(index) != self.last {
            index = self.move_forward(index);
        }
        self.last = Some(index);
    }

    /// fail2ban's bubbling: to the first never-used place (or half-way to
    /// the front) if this template now weighs more than the one there or
    /// that one has long been unused, else one place up on the same terms.
    fn move_forward(&mut self, from: usize) -> usize {
        let weight = |d: &DateDetector, i: usize| -> f64 {
            match (d.stats.get(i), d.templates.get(i)) {
                (Some(s), Some(t)) => f64::from(s.wins) * t.weight / s.distance.max(1) as f64,
                _ => 0.0,
            }
        };
        let mine = weight(self, from);
        let unused_since = self.stats.get(from).map_or(0, |s| s.last_used) - UNUSED_SECONDS;
        let movable = |d: &DateDetector, to: usize| {
            mine > weight(d, to) || d.stats.get(to).is_some_and(|s| unused_since > s.last_used)
        };
        let mut to = if self.first_unused < from {
            self.first_unused
        } else {
            from / 2
        };
        if !movable(self, to) {
            if to + 1 == from {
                return from;
            }
            to = from - 1;
            if !movable(self, to) {
                return from;
            }
        }
        let t = self.templates.remove(from);
        self.templates.insert(to, t);
        let s = self.stats.remove(from);
        self.stats.insert(to, s);
        while self
            .stats
            .get(self.first_unused)
            .is_some_and(|s| s.wins > 0)
        {
            self.first_unused += 1;
        }
        to
    }

    /// The template that finds the date and its match, chosen as fail2ban
    /// chooses. The last template is tried first where it matched before. A
    /// full search takes the first template that matches at the line start,
    /// or no further in than the last date and than this template's own last
    /// match; other matches are held back and the nearest one is taken if
    /// nothing better comes, since a date deep in a line may be part of the
    /// message.
    fn locate(&self, line: &str) -> Option<(usize, Hit)> {
        let mut best: Option<(usize, Hit)> = None;
        let mut searched = None;
        if let Some(i) = self.last {
            let t = self.templates.get(i)?;
            if t.line_begin {
                searched = Some(i);
                if let Some(hit) = t.fast.and_then(|f| fast_hit(f, t, line, 0)) {
                    return Some((i, hit));
                }
                if let Some(hit) = t.search(line, 0) {
                    return Some((i, hit));
                }
            } else {
                // An unanchored template must find its date exactly where it
                // did before, or another template may fit the line better.
                // Where the text around that place looks as before, only that
                // part of the line is searched (as fail2ban does); else all.
                let (from, to) = self.last_place(line);
                let same_place = |h: &Hit| {
                    chars_before(line, h.start) == self.last_distance
                        && chars_before(line, h.end) == self.last_end_chars
                };
                let hit = match (from, to) {
                    (from, to) if self.same_surroundings(line, from, to) => {
                        let fast = t.fast.and_then(|f| fast_hit(f, t, line, from));
                        match fast.filter(|h| h.end == to) {
                            Some(hit) => return Some((i, hit)),
                            None => t.search(line.get(..to)?, from),
                        }
                    }
                    _ => {
                        searched = Some(i);
                        t.search(line, 0)
                    }
                };
                if let Some(hit) = hit {
                    if same_place(&hit) || self.templates.len() == 1 {
                        return Some((i, hit));
                    }
                    best = Some((i, hit));
                }
            }
        }
        let count = self.templates.len();
        for (i, t) in self.templates.iter().enumerate() {
            if Some(i) == searched {
                continue;
            }
            let Some(hit) = search_cold(t, line) else {
                continue;
            };
            let own = self.stats.get(i).copied().unwrap_or(Stats::new(i));
            if i + 1 == count || t.line_begin {
                return Some((i, hit));
            }
            let distance = chars_before(line, hit.start);
            if distance > own.distance || distance > self.last_distance {
                if best.as_ref().is_none_or(|(_, b)| hit.start < b.start) {
                    best = Some((i, hit));
                }
                continue;
            }
            return Some((i, hit));
        }
        best
    }
}

/// Byte offset of character `n` of `line` (`line.len()` past the last);
/// cheap for the usual ASCII prefix.
fn byte_of_char(line: &str, n: usize) -> usize {
    let b = line.as_bytes();
    if b.get(..n).is_some_and(|p| p.is_ascii()) {
        return n;
    }
    line.char_indices().nth(n).map_or(line.len(), |(i, _)| i)
}

/// Characters in `line` before byte `at`.
fn chars_before(line: &str, at: usize) -> usize {
    line.as_bytes()
        .get(..at)
        .map_or(0, |b| b.iter().filter(|&&c| c & 0xc0 != 0x80).count())
}

/// What the detector remembers of one template.
#[derive(Clone, Copy, Debug)]
struct Stats {
    /// Its place in the list before any reordering.
    home: usize,
    wins: u32,
    /// Where (in characters) it last found a date.
    distance: usize,
    /// When (`now`, in seconds) it last found one; 0 for never.
    last_used: i64,
}

impl Stats {
    fn new(home: usize) -> Stats {
        Stats {
            home,
            wins: 0,
            distance: usize::MAX,
            last_used: 0,
        }
    }
}

/// After this long without a date a template may be displaced by another.
const UNUSED_SECONDS: i64 = 300;

/// `t.search(line, 0)`, the first match anywhere, without compiling a lazy
/// template's regex where its shape rules the line out, or where its
/// hand-written reader reads a date at the first place the shape allows:
/// no earlier place can hold one, so that is the regex's match too. A
/// detector's first line is searched with one template after another, and
/// would otherwise compile each until one matched.
fn search_cold(t: &Template, line: &str) -> Option<Hit> {
    let Some(shape) = t.shape else {
        return t.search(line, 0);
    };
    let at = shape.first_begin(line, t.line_begin)?;
    if let Some(hit) = t.fast.and_then(|f| fast_hit(f, t, line, at)) {
        return Some(hit);
    }
    t.search(line, 0)
}

/// The hand-written reader's result at the previous position, if the
/// boundary rules around it hold as the regex would require.
fn fast_hit(fast: fast::Fast, t: &Template, line: &str, last_start: usize) -> Option<Hit> {
    let bytes = line.as_bytes();
    let at = if t.line_begin {
        bounds::line_start(bytes)
    } else {
        last_start
    };
    if !t.line_begin && !bounds::at_bound(bytes, at) {
        return None;
    }
    let (end, fields) = fast.read(bytes, at)?;
    if !bounds::at_bound(bytes, end) || !line.is_char_boundary(end) {
        return None;
    }
    Some(Hit {
        start: if t.line_begin { 0 } else { at },
        end,
        span: at..end,
        fields: Some(fields),
    })
}

fn add_pattern(out: &mut Vec<Template>, line: &str) -> Result<(), DatePatternError> {
    let key = if line.contains('%') {
        line.to_string()
    } else {
        line.to_ascii_uppercase()
    };
    match key.as_str() {
        "{^LN-BEG}" => out.extend(defaults::line_begin_only()),
        "{DEFAULT}" => out.extend(defaults::all()),
        "{NONE}" => out.push(Template::empty()),
        "EPOCH" => out.push(Template::epoch(false, false)),
        "{^LN-BEG}EPOCH" | "^EPOCH" => out.push(Template::epoch(false, true)),
        "LEPOCH" => out.push(Template::epoch(true, false)),
        "{^LN-BEG}LEPOCH" | "^LEPOCH" => out.push(Template::epoch(true, true)),
        "TAI64N" => out.push(Template::tai64n(false)),
        "{^LN-BEG}TAI64N" | "^TAI64N" => out.push(Template::tai64n(true)),
        "ISO8601" => out.push(Template::pattern(ISO8601)?),
        "{^LN-BEG}ISO8601" | "^ISO8601" => {
            out.push(Template::pattern(&format!("{{^LN-BEG}}{ISO8601}"))?)
        }
        _ if has_epoch_placeholder(line) => {
            out.push(Template::epoch_pattern(line, key.contains("LEPOCH"))?)
        }
        _ if date_placeholder().is_match(line).unwrap_or(false) => {
            for p in defaults::date_substitutes() {
                let replaced = date_placeholder().replace_all(line, fancy_regex::NoExpand(p));
                // Defaults that cannot stand inside this regex are left out
                // rather than failing the whole pattern.
                let _ = add_pattern(out, &replaced);
            }
        }
        _ => out.push(Template::pattern(line)?),
    }
    Ok(())
}

/// How old the previous line's date may be to stand for a dateless line.
const RECENT: Duration = Duration::from_secs(60);

/// ISO 8601 as the `ISO8601` shorthand means it: full date, `T` or space,
/// optional fraction and zone.
const ISO8601: &str = r"%ExY-%Exm-%ExdT%ExH:%ExM:%ExS(?:[.,]%f)?(?:\s*%z)?";

fn date_placeholder() -> &'static fancy_regex::Regex {
    static RE: OnceLock<fancy_regex::Regex> = OnceLock::new();
    #[allow(clippy::expect_used)] // constant pattern, exercised by the tests
    RE.get_or_init(|| fancy_regex::Regex::new(r"(?i)(?<!\\)\{DATE\}").expect("compiles"))
}

fn to_timestamp(t: SystemTime) -> Option<Timestamp> {
    Timestamp::try_from(t).ok()
}

fn to_system_time(ts: Timestamp) -> Option<SystemTime> {
    let secs = ts.as_second();
    let nanos = u32::try_from(ts.subsec_nanosecond()).ok()?;
    if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

#[cfg(test)]
mod tests;
