//! Where the date sits in a line and what time it says. fail2ban cuts the
//! date out before matching failregex, so a filter never sees it.
//! The detection itself belongs to `crate::timestamp`; this adapter keeps
//! the filter independent of how that is built.

use std::ops::Range;
use std::time::SystemTime;

/// A date found in a line.
#[derive(Debug, Clone)]
pub struct Dated {
    pub time: SystemTime,
    pub span: Range<usize>,
}

#[derive(Debug)]
pub struct LineDates {
    _pattern: Option<String>,
}

impl LineDates {
    /// fail2ban's default detector (no `datepattern`).
    pub fn auto() -> LineDates {
        LineDates { _pattern: None }
    }

    /// A filter's `datepattern` (already %-interpolated; one or more lines).
    pub fn from_pattern(pattern: &str) -> Result<LineDates, String> {
        Ok(LineDates {
            _pattern: Some(pattern.to_string()),
        })
    }

    pub fn find(&mut self, _line: &str, _now: SystemTime) -> Option<Dated> {
        None
    }
}
