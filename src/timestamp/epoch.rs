//! Epoch-second dates: the numbers an `{EPOCH}`/`{LEPOCH}` pattern
//! captures, and the built-in Epoch templates, scanned by hand. They sit at
//! the line start, inside `[...]` or in an SELinux `audit(...)`, so a few byte
//! checks find them without a regex.

use super::bounds::{is_word, line_start};
use super::fields::Fields;
use super::template::{fraction_nanos, Hit};

/// Epoch seconds, optionally with a fraction; the long form also takes
/// 13/14-digit milliseconds and 16/17-digit microseconds.
pub(super) const SHORT_EPOCH: &str = r"\d{10,11}\b(?:\.\d{3,6})?";
pub(super) const LONG_EPOCH: &str = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?";

/// The instant an epoch number names, as `(seconds, nanoseconds)`.
pub(crate) fn epoch_value(text: &str, long: bool) -> Option<(i64, i32)> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int.is_empty() || int.len() > 17 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = int.bytes().fold(0i64, |a, b| a * 10 + i64::from(b - b'0'));
    let frac_nanos = match frac {
        Some(f) => fraction_nanos(f.as_bytes())?,
        None => 0,
    };
    let (secs, nanos) = if long && int.len() >= 16 && frac.is_none() {
        (n / 1_000_000, (n % 1_000_000) as i32 * 1000)
    } else if long && int.len() >= 13 {
        (n / 1000, (n % 1000) as i32 * 1_000_000 + frac_nanos / 1000)
    } else {
        (n, frac_nanos)
    };
    Some((secs, nanos))
}

fn digit_run(line: &[u8], at: usize) -> usize {
    line.get(at..)
        .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// Reads an epoch number at `at`, with the boundary checks of fail2ban's
/// epoch regexes; returns the end of the number.
fn epoch_at(line: &[u8], at: usize, long: bool) -> Option<usize> {
    let n = digit_run(line, at);
    let ok_int = if long {
        matches!(n, 10 | 11 | 13 | 14 | 16 | 17)
    } else {
        matches!(n, 10 | 11)
    };
    if !ok_int {
        return None;
    }
    let mut end = at + n;
    if line.get(end) == Some(&b'.') {
        let f = digit_run(line, end + 1);
        let frac_ok = if long {
            (13..=14).contains(&n) && (1..=6).contains(&f)
        } else {
            (3..=6).contains(&f)
        };
        if frac_ok && !is_word(line, end + 1 + f) {
            end += 1 + f;
        }
    }
    (!is_word(line, end)).then_some(end)
}

/// The first Epoch template date at or after byte `from`.
pub(super) fn search_epoch(line: &[u8], from: usize, long: bool, line_begin: bool) -> Option<Hit> {
    let hit = |at: usize, start: usize| -> Option<Hit> {
        let end = epoch_at(line, at, long)?;
        let text = std::str::from_utf8(line.get(at..end)?).ok()?;
        Some(Hit {
            start,
            end,
            span: at..end,
            fields: epoch_value(text, long).map(|e| Fields {
                epoch: Some(e),
                ..Fields::default()
            }),
        })
    };
    if line_begin {
        return if from == 0 {
            hit(line_start(line), 0)
        } else {
            None
        };
    }
    if from == 0 {
        if let Some(h) = hit(0, 0) {
            return Some(h);
        }
    }
    if from <= 1 && line.first() == Some(&b'[') {
        if let Some(h) = hit(1, 1) {
            return Some(h);
        }
    }
    // SELinux audit lines: `audit(1709654494.123:42)`.
    let mut pos = from.saturating_sub(6);
    while let Some(i) = memchr::memmem::find(line.get(pos..)?, b"audit(") {
        let at = pos + i + 6;
        if at >= from && (pos + i == 0 || !is_word(line, pos + i - 1)) {
            if let Some(h) = hit(at, at) {
                return Some(h);
            }
        }
        pos = at;
    }
    None
}
