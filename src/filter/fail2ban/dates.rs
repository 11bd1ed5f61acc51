//! Where the date sits in a line and what time it says. fail2ban cuts the
//! date out before matching failregex, so a filter never sees it. The
//! detection itself is [`crate::timestamp`]'s; this adapter only maps its
//! errors into the filter's.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timestamp::{DateDetector, Zone};

/// A date found in a line.
#[derive(Debug, Clone)]
pub struct Dated {
    pub time: SystemTime,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct LineDates {
    detector: DateDetector,
}

impl LineDates {
    /// fail2ban's default detector (no `datepattern`).
    pub fn auto() -> LineDates {
        LineDates {
            detector: DateDetector::auto(),
        }
    }

    /// A filter's `datepattern` (already %-interpolated; one or more lines).
    pub fn from_pattern(pattern: &str) -> Result<LineDates, String> {
        DateDetector::from_fail2ban(pattern)
            .map(|detector| LineDates { detector })
            .map_err(|e| e.to_string())
    }

    pub fn set_zone(&mut self, zone: Zone) {
        let detector = std::mem::replace(&mut self.detector, DateDetector::auto());
        self.detector = detector.with_zone(zone);
    }

    /// Name of the template that found the last date (for reports).
    pub fn current_template(&self) -> Option<&str> {
        self.detector.current_template()
    }

    /// fail2ban keeps sub-second precision only for Unix epoch dates; a
    /// date read through its strptime loses the fraction, and the time it
    /// reports (and a ban's start) is the whole second.
    pub fn find(&mut self, line: &str, now: SystemTime) -> Option<Dated> {
        let found = self.detector.find(line, now)?;
        let text = line.get(found.span.clone()).unwrap_or("");
        let time = if is_epoch(text) {
            found.time
        } else {
            whole_second(found.time)
        };
        Some(Dated {
            time,
            span: found.span,
        })
    }
}

fn is_epoch(text: &str) -> bool {
    let t = text.trim_start_matches('[').trim_end_matches(']');
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn whole_second(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        // Before 1970: round towards the past, as floor() would.
        Err(e) => {
            let d = e.duration();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            UNIX_EPOCH - Duration::from_secs(secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strptime_dates_drop_the_fraction_epochs_keep_it() {
        let mut d = LineDates::auto();
        let now = UNIX_EPOCH + Duration::from_secs(1_124_013_600);
        let f = d.find("1124013000.250 x", now).unwrap();
        assert_eq!(
            f.time,
            UNIX_EPOCH + Duration::from_millis(1_124_013_000_250)
        );
        let f = d.find("2005-08-14 10:00:00.750 x", now).unwrap();
        assert_eq!(f.time.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(), 0);
    }
}
