//! The templates tried when a source has no `datepattern`: the formats
//! fail2ban's date detector knows, in its order of preference.

use std::sync::OnceLock;

use super::shape::{Prefix, Shape};
use super::template::Template;

/// A month name and a space, after an optional weekday.
const MONTH_SPACE: Shape = Shape::MonthName {
    prefix: Prefix::None,
    after: b' ',
};

/// One default template.
pub(crate) enum Default {
    /// A `%`-pattern and what its date begins with.
    Pattern(&'static str, Shape),
    Epoch,
    Tai64n,
}

/// ISO 8601 and relatives; also read by hand (`fast`).
pub(crate) const ISO: &str =
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?";

/// BSD syslog and asctime; also read by hand (`fast`).
pub(crate) const SYSLOG: &str = r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?";

/// Apache/nginx access logs and relatives; also read by hand (`fast`).
pub(crate) const ACCESS: &str = r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?";

/// Each format once, unanchored. The order decides ties: more specific
/// formats come before ones that could match a part of them.
pub(crate) const DEFAULTS: [Default; 17] = [
    // ISO 8601 and its relatives: 2005-01-23T21:59:59.981746+01:00,
    // 2005/01/23 21:59:59 (nginx error log), 2006.12.21 06:43:20 (syslog-ng).
    Default::Pattern(ISO, Shape::YearSeparator),
    // BSD syslog and asctime, optional weekday, fraction and year:
    // Mar  5 16:01:34, Sat Mar 05 16:01:34.123456 2022 (Apache error log).
    Default::Pattern(SYSLOG, MONTH_SPACE),
    // asctime with the year before the time: Sun Jan 23 2005 21:59:59.011.
    Default::Pattern(r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?", MONTH_SPACE),
    // Day first: 23/01/2005 21:59:59, 23/01/05 21:59:59, 17-07-2008 17:23:25.
    Default::Pattern(
        r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
        Shape::Day { month_name: false },
    ),
    // Apache/nginx access log [05/Mar/2022:16:01:34 +0100], named and
    // roundcube 26-Jul-2007 15:20:52.252 +0200.
    Default::Pattern(ACCESS, Shape::Day { month_name: true }),
    // cPanel: 05/20/2008:01:57:39.
    Default::Pattern(
        r"%m/%d/%ExY:%H:%M:%S",
        Shape::Number {
            separator: b'/',
            then_day: true,
        },
    ),
    // Month first with a fraction, so it is not taken for day first:
    // 01-27-2012 16:22:44.252.
    Default::Pattern(
        r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
        Shape::Number {
            separator: b'-',
            then_day: true,
        },
    ),
    // Seconds since the epoch at the line start, in brackets or in SELinux
    // audit records.
    Default::Epoch,
    // Only a time of day, at the line start: today is assumed.
    Default::Pattern(
        r"{^LN-BEG}%H:%M:%S",
        Shape::Number {
            separator: b':',
            then_day: false,
        },
    ),
    // <09/16/08@05:03:30>
    Default::Pattern(r"^<%m/%d/%Exy@%H:%M:%S>", Shape::Angle),
    // MySQL: 130322 11:46:11
    Default::Pattern(r"%Exy%Exm%Exd  ?%H:%M:%S", Shape::Digits { count: 6 }),
    // Apache Tomcat: Jan 23, 2005 9:59:59 PM
    Default::Pattern(r"%b %d, %ExY %I:%M:%S %p", MONTH_SPACE),
    // ASSP: Apr-27-13 02:33:06
    Default::Pattern(
        r"^%b-%d-%Exy %k:%M:%S",
        Shape::MonthName {
            prefix: Prefix::None,
            after: b'-',
        },
    ),
    // Basic ISO 8601: 20050123T215959, 20050123 215959.
    Default::Pattern(
        r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
        Shape::Digits { count: 8 },
    ),
    // Zone name before the date (monit): PDT Apr 16 21:05:29
    Default::Pattern(
        r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
        Shape::MonthName {
            prefix: Prefix::ZoneName,
            after: b' ',
        },
    ),
    // Offset before the date: +00:00 Jan 23 21:59:59.011 2005
    Default::Pattern(
        r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
        Shape::MonthName {
            prefix: Prefix::Offset,
            after: b' ',
        },
    ),
    // daemontools' TAI64N labels: @4000000063b2a1c80a1b2c3d
    Default::Tai64n,
];

/// Whether a default is anchored to the line start already.
fn anchored(d: &Default) -> bool {
    matches!(d, Default::Pattern(p, _) if p.starts_with('^') || p.starts_with("{^LN-BEG}"))
}

/// A default as a template, optionally anchored to the line start.
///
/// Compiled, the defaults take megabytes, and a log uses one or two of
/// them, so each is translated and compiled on first use: a daemon whose
/// logs are quiet holds none, a busy one only those its lines needed.
/// Anchored (by `{^LN-BEG}` or `^`), a default matches only at the line
/// start.
fn build(d: &Default, line_begin: bool) -> Template {
    match d {
        Default::Pattern(p, shape) if line_begin && !anchored(d) => {
            Template::pattern_lazy(&format!("{{^LN-BEG}}{p}"), true, *shape)
        }
        Default::Pattern(p, shape) => Template::pattern_lazy(p, anchored(d), *shape),
        Default::Epoch => Template::epoch(false, line_begin),
        Default::Tai64n => Template::tai64n(line_begin),
    }
}

/// The full list for auto-detection: line-start anchored copies first,
/// because a date at the line start is the common case and the safest
/// reading, then every format anywhere in the line. Compiled once per
/// process; each detector gets its own copy (the regexes are shared).
pub(crate) fn all() -> Vec<Template> {
    static ALL: OnceLock<Vec<Template>> = OnceLock::new();
    ALL.get_or_init(compile_all).clone()
}

fn compile_all() -> Vec<Template> {
    let mut out: Vec<Template> = DEFAULTS
        .iter()
        .filter(|d| !anchored(d))
        .map(|d| build(d, true))
        .map(|t| Template { weight: 100.0, ..t })
        .collect();
    out.extend(DEFAULTS.iter().map(|d| build(d, false)));
    out
}

/// `{^LN-BEG}`: only the templates that match at the line start.
pub(crate) fn line_begin_only() -> Vec<Template> {
    all().into_iter().filter(|t| t.line_begin).collect()
}

/// What `{DATE}` stands for, one default at a time: the pattern without a
/// line-begin anchor, or the name of an epoch or TAI64N template (which
/// fail2ban then reads as a `datepattern` again, so `^{DATE}` gives the
/// line-start epoch template and other surroundings a literal word).
pub(crate) fn date_substitutes() -> impl Iterator<Item = &'static str> {
    DEFAULTS.iter().map(|d| match d {
        Default::Pattern(p, _) => p.strip_prefix("{^LN-BEG}").unwrap_or(p),
        Default::Epoch => "Epoch",
        Default::Tai64n => "TAI64N",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are compiled lazily: prove here that every one compiles.
    #[test]
    fn every_default_template_compiles() {
        let all = compile_all();
        assert!(all.len() > DEFAULTS.len());
        for t in &all {
            assert!(t.compiles(), "default template {} does not compile", t.name);
        }
    }

    /// Where a default may match is given before its pattern is read: it
    /// must be what reading the pattern finds.
    #[test]
    fn every_default_template_is_anchored_as_its_regex() {
        let mut lazy = 0;
        for t in &compile_all() {
            if let super::super::template::Kind::Lazy { .. } = t.kind {
                let (_, line_begin) = Template::regex_of(&t.name).expect("translates");
                assert_eq!(t.line_begin, line_begin, "{}", t.name);
                lazy += 1;
            }
        }
        let patterns = DEFAULTS
            .iter()
            .filter(|d| matches!(d, Default::Pattern(..)))
            .count();
        let anchored = DEFAULTS.iter().filter(|d| anchored(d)).count();
        assert_eq!(lazy, 2 * patterns - anchored);
    }
}
