//! The `%`-directives of fail2ban's `datepattern` and the regex each stands for.
//!
//! The fragments mirror what fail2ban accepts for each directive (its
//! `strptime` table, with its tighter overrides for day, month and hour), so a
//! pattern matches exactly where it matches in fail2ban. Group names are the
//! directive letters, which is also how fail2ban lets a pattern name a field
//! with a custom group such as `(?P<H>..)`.

use std::sync::OnceLock;
use std::time::SystemTime;

const WEEKDAY: &str = "mon|tue|wed|thu|fri|sat|sun";
const WEEKDAY_FULL: &str = "wednesday|thursday|saturday|tuesday|monday|friday|sunday";
const MONTH: &str = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec";
const MONTH_FULL: &str =
    "september|february|november|december|january|october|august|march|april|june|july|may";

/// Zone abbreviations: one capital letter or three to five.
const ABBR: &str = "[A-Z](?:[A-Z]{2,4})?";

/// The regex for a directive name (the text after `%`), or `None` if
/// fail2ban does not know it either.
pub(crate) fn fragment(name: &str) -> Option<String> {
    let s = match name {
        "a" => format!("(?P<a>{WEEKDAY})"),
        "A" => format!("(?P<A>{WEEKDAY_FULL})"),
        "b" => format!("(?P<b>{MONTH})"),
        "B" => format!("(?P<B>{MONTH_FULL})"),
        "c" => format!(
            r"(?P<a>{WEEKDAY})\s+(?P<b>{MONTH})\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)"
        ),
        "x" => r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)"
            .into(),
        "X" => r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)".into(),
        "d" | "e" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])".into(),
        "f" => r"(?P<f>[0-9]{1,6})".into(),
        "H" => r"(?P<H>[0-1]?\d|2[0-3])".into(),
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])".into(),
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])".into(),
        "k" => r" ?(?P<H>[0-2]?\d)".into(),
        "l" => r" ?(?P<I>1?\d)".into(),
        "m" => r"(?P<m>0?[1-9]|1[0-2])".into(),
        "M" => r"(?P<M>[0-5]?\d)".into(),
        "p" => r"(?P<p>am|pm)".into(),
        "S" => r"(?P<S>[0-5]?\d|6[0-1])".into(),
        "s" => r"(?P<s>\d{1,12})".into(),
        "U" => r"(?P<U>5[0-3]|[0-4]\d|\d)".into(),
        "W" => r"(?P<W>5[0-3]|[0-4]\d|\d)".into(),
        "V" => r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)".into(),
        "G" => r"(?P<G>\d\d\d\d)".into(),
        "u" => r"(?P<u>[1-7])".into(),
        "w" => r"(?P<w>[0-6])".into(),
        "y" | "Exy" => r"(?P<y>\d\d)".into(),
        "Y" => r"(?P<Y>\d{4})".into(),
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)".into(),
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})".into(),
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])".into(),
        "Exm" => r"(?P<m>0[1-9]|1[0-2])".into(),
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])".into(),
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])".into(),
        "Exl" => r" ?(?P<I>1[0-2]|\d)".into(),
        "ExM" => r"(?P<M>[0-5]\d)".into(),
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])".into(),
        "ExY" => format!("(?P<Y>{})", exact_year()),
        "ExZ" => format!("(?P<Z>{ABBR})"),
        "Exz" => format!(r"(?P<z>(?:{ABBR})?[+-][01]\d(?::?\d{{2}})?|{ABBR})"),
        _ => return None,
    };
    Some(s)
}

/// `%ExY` accepts only years from 2000 to a few years ahead, so that random
/// four-digit numbers in a message are not taken for a year.
fn exact_year() -> &'static str {
    static RE: OnceLock<String> = OnceLock::new();
    RE.get_or_init(|| {
        let year = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| 1970 + d.as_secs() / 31_556_952)
            .unwrap_or(2000)
            + 3;
        if (2000..2100).contains(&year) {
            format!(r"20[0-{}]\d", (year / 10) % 10)
        } else {
            r"\d{4}".to_string()
        }
    })
}

/// Whether four bytes are a year `%ExY` accepts.
pub(crate) fn exact_year_ok(y: &[u8]) -> bool {
    let [a, b, c, d] = y else { return false };
    let max_decade = exact_year().as_bytes().get(5).copied().unwrap_or(b'9');
    if exact_year().starts_with(r"\d") {
        return y.iter().all(u8::is_ascii_digit);
    }
    *a == b'2' && *b == b'0' && (b'0'..=max_decade).contains(c) && d.is_ascii_digit()
}

/// Directive names with the `Ex` prefix, longest first so `%ExY` is not read
/// as `%E` followed by `xY`.
pub(crate) const EXTENDED: [&str; 12] = [
    "ExZ", "Exz", "Exd", "Exm", "ExH", "Exk", "Exl", "ExM", "ExS", "ExY", "Exy", "Exd",
];

/// Directives that match letters, which makes the whole pattern
/// case-insensitive as in fail2ban.
pub(crate) fn is_alpha(name: &str) -> bool {
    matches!(name, "a" | "A" | "b" | "B" | "p" | "c")
}

/// Month number of an English month name or abbreviation, any case.
pub(crate) fn month_number(name: &str) -> Option<i8> {
    let b = name.as_bytes();
    let key = [*b.first()? | 0x20, *b.get(1)? | 0x20, *b.get(2)? | 0x20];
    let n = match &key {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(n)
}
