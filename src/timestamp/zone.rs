//! The zone a log line's wall-clock time is read in when the line names none.

use std::fmt;
use std::str::FromStr;

use jiff::tz::{Offset, TimeZone};

use super::error::ZoneError;

/// A time zone for times written without an offset.
///
/// Wraps a tz-database zone so DST changes are applied for the date the line
/// carries, not for the date it is read.
#[derive(Clone)]
pub struct Zone(pub(crate) TimeZone);

impl Zone {
    /// The system's zone; `$TZ` is honoured because daemons are often run
    /// with a zone different from the host's in containers.
    pub fn local() -> Zone {
        Zone(TimeZone::system())
    }

    /// Coordinated Universal Time.
    pub fn utc() -> Zone {
        Zone(TimeZone::UTC)
    }

    /// A tz-database name (`Europe/Zurich`, `UTC`) or a fixed offset as
    /// fail2ban's `logtimezone` accepts it (`UTC+0100`, `-05:00`), so a jail
    /// config written for fail2ban keeps working.
    pub fn named(name: &str) -> Result<Zone, ZoneError> {
        let name = name.trim();
        if let Some(seconds) = parse_fixed(name) {
            let offset =
                Offset::from_seconds(seconds).map_err(|_| ZoneError::Unknown(name.to_string()))?;
            return Ok(Zone(TimeZone::fixed(offset)));
        }
        TimeZone::get(name)
            .map(Zone)
            .map_err(|_| ZoneError::Unknown(name.to_string()))
    }

    /// A zone that is always `seconds` east of UTC.
    pub fn fixed(seconds: i32) -> Result<Zone, ZoneError> {
        Offset::from_seconds(seconds)
            .map(|o| Zone(TimeZone::fixed(o)))
            .map_err(|_| ZoneError::Unknown(seconds.to_string()))
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::local()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.iana_name() {
            Some(name) => write!(f, "Zone({name})"),
            None => write!(f, "Zone({:?})", self.0),
        }
    }
}

impl FromStr for Zone {
    type Err = ZoneError;
    fn from_str(s: &str) -> Result<Zone, ZoneError> {
        Zone::named(s)
    }
}

/// `[UTC|GMT|Z][+-]hh[[:]mm]` → seconds east; `None` when `s` is not of that
/// shape (so it is tried as a tz-database name instead). A bare `UTC`/`GMT`
/// is left to the database.
fn parse_fixed(s: &str) -> Option<i32> {
    let rest = ["UTC", "GMT", "Z"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    let b = rest.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |r: &[u8]| -> Option<i32> {
        if r.len() == 2 && r.iter().all(u8::is_ascii_digit) {
            Some(i32::from(r[0] - b'0') * 10 + i32::from(r[1] - b'0'))
        } else {
            None
        }
    };
    let (h, m) = match &b[1..] {
        [h1, h2] => (digits(&[*h1, *h2])?, 0),
        [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
        [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
        _ => return None,
    };
    if m >= 60 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}
