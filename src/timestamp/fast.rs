//! Hand-written readers for the most common default templates.
//!
//! Once a source's template is known, its date sits at the same place in
//! every line; reading it by hand there is many times faster than running the
//! template's regex. Each reader follows its regex's first-choice path and
//! gives up (returns `None`) wherever the regex would have to backtrack
//! further, so the caller falls back to the regex and results never differ.

use super::defaults::{ACCESS, ISO, SYSLOG};
use super::directives::{exact_year_ok, month_number};
use super::fields::Fields;
use super::template::fraction_nanos;

/// Which reader; chosen by the exact pattern text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    /// `(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`
    Syslog,
    /// `%ExY(?P<_sep>[-/.])%m(?P=_sep)%d` then `(?:T|  ?)` (default) or
    /// `[T ]` (the form many filters pin), then `%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`.
    Iso { one_separator: bool },
    /// `%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`
    Access,
}

/// The ISO form filters pin, with exactly one `T` or space before the time.
pub(crate) const ISO_PINNED: &str =
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d[T ]%H:%M:%S(?:[.,]%f)?(?:\s*%z)?";

impl Fast {
    pub fn for_pattern(pattern: &str) -> Option<Fast> {
        let p = pattern.strip_prefix("{^LN-BEG}").unwrap_or(pattern);
        match p {
            SYSLOG => Some(Fast::Syslog),
            ACCESS => Some(Fast::Access),
            ISO => Some(Fast::Iso {
                one_separator: false,
            }),
            ISO_PINNED => Some(Fast::Iso {
                one_separator: true,
            }),
            _ => None,
        }
    }

    /// Reads the date starting at byte `at`; returns its end and fields.
    /// The caller checks the boundaries around it.
    pub fn read(self, line: &[u8], at: usize) -> Option<(usize, Fields)> {
        let mut r = Reader { line, i: at };
        match self {
            Fast::Syslog => r.syslog(),
            Fast::Iso { one_separator } => r.iso(one_separator),
            Fast::Access => r.access(),
        }
    }
}

struct Reader<'a> {
    line: &'a [u8],
    i: usize,
}

fn digit(b: Option<u8>) -> Option<i8> {
    b.filter(u8::is_ascii_digit).map(|b| (b - b'0') as i8)
}

fn year_value(y: &[u8]) -> i32 {
    y.iter().fold(0i32, |a, b| a * 10 + i32::from(b - b'0'))
}

impl Reader<'_> {
    fn at(&self, k: usize) -> Option<u8> {
        self.line.get(self.i + k).copied()
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.at(0)? == b).then(|| self.i += 1)
    }

    /// `%d` (`[1-2]\d|[0 ]?[1-9]|3[0-1]`) where the next byte must satisfy
    /// `then`: the first alternative, in the regex's order, that does.
    fn day(&mut self, then: impl Fn(Option<u8>) -> bool) -> Option<i8> {
        let (a, b) = (self.at(0)?, self.at(1));
        let two = digit(b);
        let candidates = [
            (matches!(a, b'1'..=b'2') && two.is_some(), 2),
            (matches!(a, b'0' | b' ') && two.is_some_and(|d| d >= 1), 2),
            (matches!(a, b'1'..=b'9'), 1),
            (a == b'3' && matches!(b, Some(b'0'..=b'1')), 2),
        ];
        let (_, len) = candidates
            .into_iter()
            .find(|&(ok, len)| ok && then(self.at(len)))?;
        let v = if len == 1 {
            digit(Some(a))?
        } else {
            digit(Some(a)).unwrap_or(0) * 10 + two?
        };
        self.i += len;
        Some(v)
    }

    /// `[0-N]?\d` followed by `next`: two digits (the first at most
    /// `max_first`) if `next` follows them, else one.
    fn number(&mut self, max_first: u8, next: u8) -> Option<i8> {
        let a = self.at(0)?;
        let b = self.at(1);
        let first = digit(Some(a))?;
        if a <= max_first && digit(b).is_some() && self.at(2) == Some(next) {
            self.i += 3;
            return Some(first * 10 + digit(b)?);
        }
        if b == Some(next) {
            self.i += 2;
            return Some(first);
        }
        None
    }

    /// `%S` as two digits; anything else is left to the regex.
    fn seconds(&mut self) -> Option<i8> {
        let a = self.at(0).filter(|a| (b'0'..=b'5').contains(a))?;
        let b = digit(self.at(1))?;
        self.i += 2;
        Some((a - b'0') as i8 * 10 + b)
    }

    /// `(?:[.,]%f)?` with the given separators; greedy up to six digits.
    fn fraction(&mut self, separators: &[u8]) -> Option<i32> {
        if !self.at(0).is_some_and(|s| separators.contains(&s)) {
            return Some(0);
        }
        let start = self.i + 1;
        let n = self
            .line
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n == 0 {
            return Some(0);
        }
        self.i = start + n;
        fraction_nanos(self.line.get(start..start + n)?)
    }

    fn syslog(&mut self) -> Option<(usize, Fields)> {
        let weekday = self.line.get(self.i..self.i + 4)?;
        if is_name(&weekday[..3], WEEKDAYS) && weekday[3] == b' ' {
            self.i += 4;
        }
        let month = month_number(std::str::from_utf8(self.line.get(self.i..self.i + 3)?).ok()?)?;
        self.i += 3;
        self.byte(b' ')?;
        let day = self.day(|b| b == Some(b' '))?;
        self.byte(b' ')?;
        // `%k`: an optional space, then `[0-2]?\d`, then `:`.
        if self.at(0) == Some(b' ') && digit(self.at(1)).is_some() {
            self.i += 1;
        }
        let hour = self.number(b'2', b':')?;
        let minute = self.number(b'5', b':')?;
        let second = self.seconds()?;
        let nanos = self.fraction(b".")?;
        let mut year = None;
        if self.at(0) == Some(b' ') {
            if let Some(y) = self.line.get(self.i + 1..self.i + 5) {
                if exact_year_ok(y) {
                    year = Some(year_value(y));
                    self.i += 5;
                }
            }
        }
        let fields = Fields {
            year,
            month: Some(month),
            day: Some(day),
            hour,
            minute,
            second,
            nanos,
            ..Fields::default()
        };
        Some((self.i, fields))
    }

    fn iso(&mut self, one_separator: bool) -> Option<(usize, Fields)> {
        let y = self.line.get(self.i..self.i + 4)?;
        if !exact_year_ok(y) {
            return None;
        }
        let year = year_value(y);
        self.i += 4;
        let sep = self.at(0).filter(|s| matches!(s, b'-' | b'/' | b'.'))?;
        self.i += 1;
        // `%m` is `0?[1-9]|1[0-2]`: first alternative the separator follows.
        let (a, b) = (self.at(0)?, self.at(1));
        let month = if a == b'0' && digit(b).is_some_and(|d| d >= 1) && self.at(2) == Some(sep) {
            self.i += 2;
            digit(b)?
        } else if (b'1'..=b'9').contains(&a) && b == Some(sep) {
            self.i += 1;
            digit(Some(a))?
        } else if a == b'1' && matches!(b, Some(b'0'..=b'2')) && self.at(2) == Some(sep) {
            self.i += 2;
            10 + digit(b)?
        } else {
            return None;
        };
        self.byte(sep)?;
        let day = self.day(|b| matches!(b, Some(b'T' | b' ')))?;
        if self.byte(b'T').is_none() {
            self.byte(b' ')?;
            if !one_separator && self.at(0) == Some(b' ') {
                self.i += 1;
            }
        }
        let hour = self.hour24()?;
        let minute = self.number(b'5', b':')?;
        let second = self.seconds()?;
        let nanos = self.fraction(b".,")?;
        // `\s` is Unicode-aware in the regex: after a non-ASCII byte there
        // may be a zone only the regex sees.
        if self.line.get(self.blanks_end()).is_some_and(|b| *b >= 0x80) {
            return None;
        }
        let offset = self.zone(true);
        let fields = Fields {
            year: Some(year),
            month: Some(month),
            day: Some(day),
            hour,
            minute,
            second,
            nanos,
            offset,
            ..Fields::default()
        };
        Some((self.i, fields))
    }

    /// Where the ASCII white space (`\s`) from the current byte ends.
    fn blanks_end(&self) -> usize {
        let mut j = self.i;
        while matches!(
            self.line.get(j),
            Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        ) {
            j += 1;
        }
        j
    }

    /// `%H` (`[0-1]?\d|2[0-3]`) followed by `:`, which is consumed.
    fn hour24(&mut self) -> Option<i8> {
        let (a, b) = (self.at(0)?, self.at(1));
        let colon_at = |k| self.at(k) == Some(b':');
        let (len, hour) = if matches!(a, b'0'..=b'1') && digit(b).is_some() && colon_at(2) {
            (3, digit(Some(a))? * 10 + digit(b)?)
        } else if digit(Some(a)).is_some() && b == Some(b':') {
            (2, digit(Some(a))?)
        } else if a == b'2' && matches!(b, Some(b'0'..=b'3')) && colon_at(2) {
            (3, 20 + digit(b)?)
        } else {
            return None;
        };
        self.i += len;
        Some(hour)
    }

    fn access(&mut self) -> Option<(usize, Fields)> {
        let day = self.day(|b| matches!(b, Some(b'-' | b'/')))?;
        let sep = self.at(0)?;
        self.i += 1;
        let month = month_number(std::str::from_utf8(self.line.get(self.i..self.i + 3)?).ok()?)?;
        self.i += 3;
        self.byte(sep)?;
        let y = self.line.get(self.i..self.i + 4)?;
        if !exact_year_ok(y) {
            return None;
        }
        let year = year_value(y);
        self.i += 4;
        if matches!(self.at(0), Some(b' ' | b':')) {
            self.i += 1;
        }
        let hour = self.hour24()?;
        let minute = self.number(b'5', b':')?;
        let second = self.seconds()?;
        let nanos = self.fraction(b".")?;
        // `(?: %z)?`, in a pattern that `%b` makes case-insensitive: a
        // lower-case `utc` matches there but is no zone fail2ban knows, so
        // such lines are left to the regex path.
        let offset = if self.at(0) == Some(b' ') {
            let before = self.i;
            self.i += 1;
            let z = self.zone(false);
            if z.is_none() {
                let rest = self.line.get(self.i..).unwrap_or_default();
                let folded = [&b"z"[..], b"utc", b"gmt"].iter().any(|l| {
                    rest.get(..l.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(l))
                });
                if folded {
                    return None;
                }
                self.i = before;
            }
            z
        } else {
            None
        };
        let fields = Fields {
            year: Some(year),
            month: Some(month),
            day: Some(day),
            hour,
            minute,
            second,
            nanos,
            offset,
            ..Fields::default()
        };
        Some((self.i, fields))
    }

    /// `%z` (`Z|UTC|GMT|[+-][01]\d(?::?\d{2})?`), after blanks if `blanks`
    /// (`\s*`); consumed only when a zone is there.
    fn zone(&mut self, blanks: bool) -> Option<i32> {
        let j = if blanks { self.blanks_end() } else { self.i };
        let rest = self.line.get(j..)?;
        for lit in [&b"Z"[..], b"UTC", b"GMT"] {
            if rest.starts_with(lit) {
                self.i = j + lit.len();
                return Some(0);
            }
        }
        let sign = match rest.first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let h1 = digit(rest.get(1).copied()).filter(|d| *d <= 1)?;
        let h2 = digit(rest.get(2).copied())?;
        let hours = i32::from(h1 * 10 + h2);
        let mut len = 3;
        let mut minutes = 0;
        let colon = usize::from(rest.get(3) == Some(&b':'));
        let m1 = digit(rest.get(3 + colon).copied());
        let m2 = digit(rest.get(4 + colon).copied());
        if let (Some(m1), Some(m2)) = (m1, m2) {
            minutes = i32::from(m1 * 10 + m2);
            len = 5 + colon;
        }
        self.i = j + len;
        Some(sign * (hours * 3600 + minutes * 60))
    }
}

const WEEKDAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

/// Whether three bytes are one of `names`, ignoring ASCII case.
fn is_name(b: &[u8], names: [&[u8; 3]; 7]) -> bool {
    let k = [b[0] | 0x20, b[1] | 0x20, b[2] | 0x20];
    names.contains(&&k)
}
