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

mod defaults;
mod directives;
mod error;
mod fast;
mod fields;
mod template;
mod zone;

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

pub use error::{DatePatternError, ZoneError};
pub use zone::Zone;

use fields::NowCache;
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
/// read with one template until the format changes.
pub struct DateDetector {
    templates: Vec<Template>,
    zone: Zone,
    /// Index of the template that matched last.
    last: Option<usize>,
    /// Where that match started, for retrying unanchored templates there.
    last_start: usize,
    now_cache: NowCache,
    /// The last date read, for lines whose template matched an empty date.
    last_time: Option<SystemTime>,
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
            templates,
            zone: Zone::local(),
            last: None,
            last_start: 0,
            now_cache: NowCache::default(),
            last_time: None,
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
        self
    }

    /// Names of the templates in the order they are tried, for diagnostics.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.name.as_str())
    }

    /// Finds the line's date; `now` drives year inference and is injectable for tests.
    pub fn find(&mut self, line: &str, now: SystemTime) -> Option<Found> {
        let (index, hit) = self.locate(line)?;
        self.last = Some(index);
        self.last_start = hit.start;
        let now_ts = to_timestamp(now)?;
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
        let time = to_system_time(fields.resolve(&self.zone.0, now_ts, &mut self.now_cache)?)?;
        self.last_time = Some(time);
        Some(Found {
            time,
            span: hit.span,
        })
    }

    /// The template that finds the date and its match. The last template is
    /// tried first where it matched before; if it matches elsewhere now, the
    /// others get a chance to find something nearer the line start.
    fn locate(&self, line: &str) -> Option<(usize, Hit)> {
        let mut fallback: Option<(usize, Hit)> = None;
        let mut skip = None;
        if let Some(i) = self.last {
            let t = self.templates.get(i)?;
            if let Some(fast) = t.fast {
                if let Some(hit) = fast_hit(fast, t, line, self.last_start) {
                    return Some((i, hit));
                }
            }
            let from = if t.line_begin { 0 } else { self.last_start };
            match t.search(line, from) {
                Some(hit) if t.line_begin || hit.start == self.last_start => return Some((i, hit)),
                Some(hit) => fallback = Some((i, hit)),
                None if from == 0 => skip = Some(i),
                None => {}
            }
        }
        for (i, t) in self.templates.iter().enumerate() {
            if Some(i) == skip || Some(i) == self.last && fallback.is_some() {
                continue;
            }
            let Some(hit) = t.search(line, 0) else {
                continue;
            };
            if t.line_begin || hit.start == 0 || i + 1 == self.templates.len() {
                return Some((i, hit));
            }
            // A date further into the line than the last one may be part of
            // the message; keep looking for one nearer the start.
            if self.last.is_some() && hit.start > self.last_start {
                if fallback.as_ref().is_none_or(|(_, f)| hit.start < f.start) {
                    fallback = Some((i, hit));
                }
                continue;
            }
            return Some((i, hit));
        }
        fallback
    }
}

/// The hand-written reader's result at the previous position, if the
/// boundary rules around it hold as the regex would require.
fn fast_hit(fast: fast::Fast, t: &Template, line: &str, last_start: usize) -> Option<Hit> {
    let bytes = line.as_bytes();
    let at = if t.line_begin {
        template::line_start(bytes)
    } else {
        last_start
    };
    if !t.line_begin && !template::at_bound(bytes, at) {
        return None;
    }
    let (end, fields) = fast.read(bytes, at)?;
    if !template::at_bound(bytes, end) || !line.is_char_boundary(end) {
        return None;
    }
    Some(Hit {
        start: if t.line_begin { 0 } else { at },
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
            for p in defaults::patterns() {
                let replaced = date_placeholder().replace_all(line, fancy_regex::NoExpand(p));
                // Defaults that cannot stand inside this regex are left out
                // rather than failing the whole pattern.
                if let Ok(t) = Template::pattern(&replaced) {
                    out.push(t);
                }
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
