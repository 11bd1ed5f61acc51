//! TAI64N labels (`@` and 24 hex digits, as daemontools' multilog writes),
//! scanned by hand: a fixed shape needs no regex.

use super::bounds::{is_word, line_start};
use super::fields::Fields;
use super::template::Hit;

/// The first TAI64N label at or after byte `from`.
pub(super) fn search_tai64n(line: &[u8], from: usize, line_begin: bool) -> Option<Hit> {
    let at_hex = |at: usize| -> Option<Hit> {
        let hex = line.get(at + 1..at + 25)?;
        if line.get(at) != Some(&b'@')
            || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        if is_word(line, at + 25) {
            return None;
        }
        let val = |r: &[u8]| {
            r.iter().fold(0i64, |a, b| {
                a * 16 + i64::from((*b as char).to_digit(16).unwrap_or(0))
            })
        };
        let secs = val(&hex[1..16]);
        let nanos = i32::try_from(val(&hex[16..24]))
            .ok()
            .filter(|n| *n < 1_000_000_000);
        Some(Hit {
            start: at,
            end: at + 25,
            span: at..at + 25,
            fields: nanos.map(|n| Fields {
                epoch: Some((secs, n)),
                ..Fields::default()
            }),
        })
    };
    if line_begin {
        if from != 0 {
            return None;
        }
        let mut s = line_start(line);
        // The `@` is itself a non-word character the anchor may have eaten.
        if s > 0 && line.get(s) != Some(&b'@') && line.get(s - 1) == Some(&b'@') {
            s -= 1;
        }
        return at_hex(s).map(|h| Hit { start: 0, ..h });
    }
    let mut pos = from;
    while let Some(i) = memchr::memchr(b'@', line.get(pos..)?) {
        if let Some(h) = at_hex(pos + i) {
            return Some(h);
        }
        pos += i + 1;
    }
    None
}
