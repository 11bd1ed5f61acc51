//! Cheap tests that rule a line out for a default template before its regex
//! is compiled.
//!
//! The defaults are compiled on first use, which keeps the ones a log never
//! needs out of memory. But a detector's first line is searched with every
//! template until one matches, and compiling them one after another would
//! cost that line milliseconds. So each default says what its date must
//! begin with (a year and a separator, a month name and a space, ...),
//! checked on a few bytes. A check may only answer "not here" where the
//! regex cannot match either: at a character beyond ASCII it cannot judge
//! it answers "maybe", because the regexes' `\d`, `\W` and case-insensitive
//! letters match some of those too.

/// What a default template's date begins with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `%ExY`, then `-`, `/` or `.`, then a digit: ISO 8601 and relatives.
    YearSeparator,
    /// An optional `prefix` and an optional weekday, each followed by a
    /// space, then a month name followed by `after`: syslog, asctime,
    /// Tomcat, ASSP.
    MonthName { prefix: Prefix, after: u8 },
    /// `%d`, then `-` or `/`, then a digit or (with `month_name`) a month
    /// name.
    Day { month_name: bool },
    /// One or two digits (`%m`, `%H`), `separator`, then a digit or (with
    /// `then_day`) what `%d` begins with, a digit or a space.
    Number { separator: u8, then_day: bool },
    /// `<` and a digit.
    Angle,
    /// `count` digits, then a space or a `T`: MySQL, basic ISO 8601.
    Digits { count: usize },
}

/// What may stand before a [`Shape::MonthName`] date, with a space after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefix {
    None,
    /// `%Z`: `Z` or three to five letters.
    ZoneName,
    /// `%z`: `Z`, `UTC`, `GMT` or an offset such as `+01:00`.
    Offset,
}

/// The check met a byte beyond ASCII: the regex might match there.
struct Unsure;

type Judged = Result<bool, Unsure>;

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const WEEKDAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

impl Shape {
    /// The first byte of `line` where this shape's date may begin, for a
    /// template anchored at the line start (`line_begin`: at most two
    /// leading non-word characters before the date) or not (anywhere, but
    /// not inside a word).
    pub fn first_begin(self, line: &str, line_begin: bool) -> Option<usize> {
        let b = line.as_bytes();
        if line_begin {
            let mut at = 0;
            for skipped in 0..=2 {
                if self.may_begin(line, at) {
                    return Some(at);
                }
                let c = line.get(at..)?.chars().next()?;
                // `\W` never matches these; it may match any other.
                if skipped == 2 || c.is_ascii_alphanumeric() || c == '_' {
                    return None;
                }
                at += c.len_utf8();
            }
            return None;
        }
        let word = |i: usize| {
            b.get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        };
        line.char_indices()
            .map(|(i, _)| i)
            .filter(|&i| !(i > 0 && word(i - 1) && word(i)))
            .find(|&i| self.may_begin(line, i))
    }

    /// Whether this shape's date may begin at byte `i`, a character start.
    fn may_begin(self, line: &str, i: usize) -> bool {
        let Some(c) = line.get(i..).and_then(|s| s.chars().next()) else {
            return false;
        };
        if c.is_ascii() {
            return self.judge(line.as_bytes(), i).unwrap_or(true);
        }
        // The first character: the only ones beyond ASCII that
        // case-insensitive ASCII letters match are these two; `\d` matches
        // other scripts' digits, which are never letters.
        let letter = matches!(c, 'ſ' | 'K');
        let digit = !c.is_alphabetic();
        match self {
            Shape::YearSeparator | Shape::Number { .. } | Shape::Digits { .. } => digit,
            Shape::MonthName { .. } => letter,
            Shape::Day { .. } | Shape::Angle => false,
        }
    }

    fn judge(self, l: &[u8], i: usize) -> Judged {
        Ok(match self {
            Shape::YearSeparator => digits(l, i, 4)? && is(l, i + 4, b"-/.")? && digit(l, i + 5)?,
            Shape::MonthName { prefix, after } => {
                for start in prefix_ends(l, i, prefix)?.into_iter().flatten() {
                    let weekday = name(l, start, &WEEKDAYS)? && is(l, start + 3, b" ")?;
                    for m in [Some(start), weekday.then_some(start + 4)]
                        .into_iter()
                        .flatten()
                    {
                        if name(l, m, &MONTHS)? && is(l, m + 3, &[after])? {
                            return Ok(true);
                        }
                    }
                }
                false
            }
            Shape::Day { month_name } => {
                let one = is(l, i, b"123456789")?;
                let two = is(l, i, b"0123 ")? && digit(l, i + 1)?;
                for end in [one.then_some(i + 1), two.then_some(i + 2)]
                    .into_iter()
                    .flatten()
                {
                    let next = if month_name {
                        name(l, end + 1, &MONTHS)?
                    } else {
                        digit(l, end + 1)?
                    };
                    if is(l, end, b"-/")? && next {
                        return Ok(true);
                    }
                }
                false
            }
            Shape::Number {
                separator,
                then_day,
            } => {
                if !digit(l, i)? {
                    return Ok(false);
                }
                let two = digit(l, i + 1)?;
                for end in [Some(i + 1), two.then_some(i + 2)].into_iter().flatten() {
                    let next = digit(l, end + 1)? || (then_day && is(l, end + 1, b" ")?);
                    if is(l, end, &[separator])? && next {
                        return Ok(true);
                    }
                }
                false
            }
            Shape::Angle => is(l, i, b"<")? && digit(l, i + 1)?,
            Shape::Digits { count } => digits(l, i, count)? && is(l, i + count, b" Tt")?,
        })
    }
}

/// Where the date proper may begin after `prefix` and its space at `i`:
/// at `i` (no prefix) and after each prefix found there.
fn prefix_ends(l: &[u8], i: usize, prefix: Prefix) -> Result<[Option<usize>; 5], Unsure> {
    let mut out = [Some(i), None, None, None, None];
    let spaced =
        |end: usize| -> Result<Option<usize>, Unsure> { Ok(is(l, end, b" ")?.then_some(end + 1)) };
    match prefix {
        Prefix::None => {}
        Prefix::ZoneName => {
            // A run of letters is the whole zone: `Z` or 3 to 5 of them.
            let mut n = 0;
            while n <= 5 && byte(l, i + n)?.is_some_and(|b| b.is_ascii_alphabetic()) {
                n += 1;
            }
            if (n == 1 && is(l, i, b"zZ")?) || (3..=5).contains(&n) {
                out[1] = spaced(i + n)?;
            }
        }
        Prefix::Offset => {
            if is(l, i, b"zZ")? {
                out[1] = spaced(i + 1)?;
            }
            if literal(l, i, b"utc")? || literal(l, i, b"gmt")? {
                out[1] = spaced(i + 3)?;
            }
            // `[+-][01]\d(?::?\d{2})?`
            if is(l, i, b"+-")? && is(l, i + 1, b"01")? && digit(l, i + 2)? {
                out[2] = spaced(i + 3)?;
                if digits(l, i + 3, 2)? {
                    out[3] = spaced(i + 5)?;
                }
                if is(l, i + 3, b":")? && digits(l, i + 4, 2)? {
                    out[4] = spaced(i + 6)?;
                }
            }
        }
    }
    Ok(out)
}

/// Whether `lit` (lower case) is at `i`, in any case.
fn literal(l: &[u8], i: usize, lit: &[u8]) -> Judged {
    for (j, want) in lit.iter().enumerate() {
        if byte(l, i + j)?.map(|b| b.to_ascii_lowercase()) != Some(*want) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The byte at `i` if ASCII, `None` past the end.
fn byte(l: &[u8], i: usize) -> Result<Option<u8>, Unsure> {
    match l.get(i) {
        Some(b) if !b.is_ascii() => Err(Unsure),
        b => Ok(b.copied()),
    }
}

fn is(l: &[u8], i: usize, set: &[u8]) -> Judged {
    Ok(byte(l, i)?.is_some_and(|b| set.contains(&b)))
}

fn digit(l: &[u8], i: usize) -> Judged {
    Ok(byte(l, i)?.is_some_and(|b| b.is_ascii_digit()))
}

fn digits(l: &[u8], i: usize, count: usize) -> Judged {
    for j in 0..count {
        if !digit(l, i + j)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One of `names` (three lower-case letters), in any case.
fn name(l: &[u8], i: usize, names: &[&[u8; 3]]) -> Judged {
    let mut k = [0u8; 3];
    for (j, slot) in k.iter_mut().enumerate() {
        match byte(l, i + j)? {
            Some(b) if b.is_ascii_alphabetic() => *slot = b.to_ascii_lowercase(),
            _ => return Ok(false),
        }
    }
    Ok(names.contains(&&k))
}
