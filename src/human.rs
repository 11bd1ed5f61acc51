//! Durations written for people: in log lines, `status` and `banned`
//! output, the way the config spells them.

use std::time::Duration;

/// `600 s` → `10m`, the way the config spells it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// `3587` → `59m47s`: remaining times, which are rarely whole units.
pub fn human_secs(s: u64) -> String {
    let mut out = String::new();
    let mut rest = s;
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    if rest > 0 || out.is_empty() {
        out.push_str(&format!("{rest}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_units_and_remaining_times() {
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(7_200)), "2h");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human_secs(3_587), "59m47s");
        assert_eq!(human_secs(0), "0s");
        assert_eq!(human_secs(86_401), "1d1s");
    }
}
