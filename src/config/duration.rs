//! Durations as admins write them: `600` (seconds, as fail2ban), `"30s"`,
//! `"10m"`, `"1h"`, `"1d"`, `"1w"`, and sums such as `"1h 30m"`.

use std::time::Duration;

use crate::bantime::{human, MAX_BANTIME};

/// Refuses a duration longer than the kernel takes as an element timeout
/// ([`MAX_BANTIME`]): caught when the config is read, it cannot abort a
/// transaction of bans later.
pub fn within_limit(d: Duration) -> Result<Duration, String> {
    if d > MAX_BANTIME {
        return Err(format!(
            "{} is longer than the longest ban the kernel takes (at most {})",
            human(d),
            human(MAX_BANTIME)
        ));
    }
    Ok(d)
}

/// Reads a duration, bounded by [`within_limit`] (the manual `ban --for`
/// goes through here too).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected a number with an optional unit s, m, h, d or w"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            other => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {other:?} (use s, m, h, d or w)"
                ))
            }
        };
        rest = rest[unit_len..].trim_start();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    within_limit(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let secs = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("600"), Ok(600));
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("1h"), Ok(3600));
        assert_eq!(secs("1d"), Ok(86400));
        assert_eq!(secs("1w"), Ok(604800));
        assert_eq!(secs("1h 30m"), Ok(5400));
        assert!(secs("10x").unwrap_err().contains("unknown unit"));
        assert!(secs("m").is_err());
        assert!(secs("").is_err());
        assert!(secs("99999999999999999999w").is_err());
        assert!(secs("100000000w").unwrap_err().contains("at most 26000w"));
        assert_eq!(secs("26000w"), Ok(MAX_BANTIME.as_secs()));
    }
}
