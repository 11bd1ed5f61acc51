use std::time::{Duration, SystemTime};

use super::*;

fn zurich() -> Zone {
    Zone::named("Europe/Zurich").unwrap()
}

fn utc() -> Zone {
    Zone::named("UTC").unwrap()
}

/// Seconds since the epoch of an RFC 3339 instant.
fn epoch(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn at(s: &str) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(epoch(s) as u64)
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn nanos(t: SystemTime) -> u32 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// The instant auto-detection reads from `line`, in UTC unless it says.
fn auto_utc(line: &str, now: &str) -> Option<(i64, std::ops::Range<usize>)> {
    let mut d = DateDetector::auto().with_zone(utc());
    d.find(line, at(now)).map(|f| (secs(f.time), f.span))
}

const NOW: &str = "2024-06-01T12:00:00Z";

#[test]
fn timestamp_bsd_syslog() {
    let line = "Mar  5 16:01:34 host sshd[1]: Failed password";
    let (t, span) = auto_utc(line, NOW).unwrap();
    assert_eq!(t, epoch("2024-03-05T16:01:34Z"));
    assert_eq!(&line[span], "Mar  5 16:01:34");
}

#[test]
fn timestamp_iso8601_forms() {
    let cases = [
        (
            "2024-03-05T16:01:34.123456+01:00 x",
            "2024-03-05T15:01:34Z",
            "2024-03-05T16:01:34.123456+01:00",
        ),
        (
            "2024-03-05 16:01:34 x",
            "2024-03-05T16:01:34Z",
            "2024-03-05 16:01:34",
        ),
        (
            "2024-03-05T16:01:34Z x",
            "2024-03-05T16:01:34Z",
            "2024-03-05T16:01:34Z",
        ),
        (
            "2022/03/05 16:01:34 [error] 1#1: x",
            "2022-03-05T16:01:34Z",
            "2022/03/05 16:01:34",
        ),
    ];
    for (line, want, text) in cases {
        let (t, span) = auto_utc(line, NOW).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(t, epoch(want), "{line}");
        assert_eq!(&line[span], text, "{line}");
    }
}

#[test]
fn timestamp_rfc5424() {
    let line = "<34>1 2024-03-05T16:01:34Z host app 1 - - msg";
    let (t, span) = auto_utc(line, NOW).unwrap();
    assert_eq!(t, epoch("2024-03-05T16:01:34Z"));
    assert_eq!(&line[span], "2024-03-05T16:01:34Z");
}

#[test]
fn timestamp_apache_and_nginx() {
    let err = "[Sat Mar 05 16:01:34.123456 2022] [auth:error] [pid 1] x";
    let (t, span) = auto_utc(err, NOW).unwrap();
    assert_eq!(t, epoch("2022-03-05T16:01:34Z"));
    assert_eq!(&err[span], "Sat Mar 05 16:01:34.123456 2022");
    let access = r#"1.2.3.4 - - [05/Mar/2022:16:01:34 +0100] "GET / HTTP/1.1" 404"#;
    let (t, span) = auto_utc(access, NOW).unwrap();
    assert_eq!(t, epoch("2022-03-05T15:01:34Z"));
    assert_eq!(&access[span], "05/Mar/2022:16:01:34 +0100");
}

#[test]
fn timestamp_epoch() {
    let (t, _) = auto_utc("1709654494 x", NOW).unwrap();
    assert_eq!(t, epoch("2024-03-05T16:01:34Z"));
    let mut d = DateDetector::auto();
    let f = d.find("1709654494.123 x", at(NOW)).unwrap();
    assert_eq!(secs(f.time), 1709654494);
    assert_eq!(nanos(f.time), 123_000_000);
    assert_eq!(f.span, 0..14);
}

#[test]
fn timestamp_year_inference() {
    // Read on Jan 1, a Dec 31 line is from last year.
    let (t, _) = auto_utc("Dec 31 23:59:00 h x", "2025-01-01T00:10:00Z").unwrap();
    assert_eq!(t, epoch("2024-12-31T23:59:00Z"));
    // Two days ahead cannot be this year.
    let (t, _) = auto_utc("Jun  3 12:00:00 h x", NOW).unwrap();
    assert_eq!(t, epoch("2023-06-03T12:00:00Z"));
    // Within a day ahead is clock skew, still this year.
    let (t, _) = auto_utc("Jun  1 20:00:00 h x", NOW).unwrap();
    assert_eq!(t, epoch("2024-06-01T20:00:00Z"));
}

#[test]
fn timestamp_zones() {
    let line = "2024-03-05 16:01:34 x";
    let mut d = DateDetector::auto().with_zone(zurich());
    assert_eq!(
        secs(d.find(line, at(NOW)).unwrap().time),
        epoch("2024-03-05T15:01:34Z")
    );
    // Summer time applies to summer dates.
    let mut d = DateDetector::auto().with_zone(zurich());
    let f = d.find("2024-07-05 16:01:34 x", at(NOW)).unwrap();
    assert_eq!(secs(f.time), epoch("2024-07-05T14:01:34Z"));
    // An explicit offset wins over the zone.
    let mut d = DateDetector::auto().with_zone(zurich());
    let f = d.find("2024-03-05T16:01:34-05:00 x", at(NOW)).unwrap();
    assert_eq!(secs(f.time), epoch("2024-03-05T21:01:34Z"));
}

#[test]
fn timestamp_from_fail2ban_simple() {
    let mut d = DateDetector::from_fail2ban("^%Y-%m-%d %H:%M:%S")
        .unwrap()
        .with_zone(utc());
    let f = d.find("2024-03-05 16:01:34 x", at(NOW)).unwrap();
    assert_eq!(secs(f.time), epoch("2024-03-05T16:01:34Z"));
    assert!(d.find("x 2024-03-05 16:01:34", at(NOW)).is_none());
    assert!(DateDetector::from_fail2ban("%Y-%q").is_err());
}

/// Lines built from pieces that exercise every choice point of the
/// hand-written readers: the readers must never disagree with the regex.
fn generated_lines() -> Vec<String> {
    let prefixes = ["", "[", "<1>", "host: ", "x"];
    let dates = [
        "Mar  5 16:01:34",
        "Mar 5 16:01:34",
        "mar 05 6:01:34",
        "Sat Mar 31 16:1:34",
        "Sat Mar 30  6:01:34",
        "Dec 31 23:59:59",
        "Feb 30 12:00:00",
        "Mar  5 24:01:34",
        "Mar 3 16:01:61",
        "Mar 35 16:01:34",
        "Mar 32 16:01:34",
        "2024-03-32 16:01:34",
        "2024-03-05T16:01:34",
        "2024-3-5 16:01:34",
        "2024/12/31  23:59:59",
        "2024.10.05 08:01:34",
        "2024-13-05 16:01:34",
        "2024-02-30 16:01:34",
        "2024-03-05 9:01:34",
        "2024-03-05 29:01:34",
        "2024-1-05T1:2:3",
        "1999-03-05 16:01:34",
    ];
    let tails = [
        "", ".1", ".123456", ".1234567", ",5", " 2022", " 2022x", ".5 2023", "Z", " +01:00",
        "+0100", "  -05", " UTC", " GMT", "+01:", "+2500", " Zed", "x", "5", " host", ":", "]",
    ];
    let mut out = Vec::new();
    for p in prefixes {
        for d in dates {
            for t in tails {
                out.push(format!("{p}{d}{t} rest"));
                out.push(format!("{p}{d}{t}"));
            }
        }
    }
    out
}

#[test]
fn timestamp_fast_readers_agree_with_regex() {
    use super::defaults::{ISO, SYSLOG};
    use super::fast::Fast;
    use super::fast::ISO_PINNED;
    let mut compared = 0;
    for pattern in [SYSLOG, ISO, ISO_PINNED] {
        for anchored in [false, true] {
            let text = if anchored {
                format!("{{^LN-BEG}}{pattern}")
            } else {
                pattern.to_string()
            };
            let t = template::Template::pattern(&text).unwrap();
            let fast = t.fast.expect("has a reader");
            for line in generated_lines() {
                let Some(by_regex) = t.search(&line, 0) else {
                    // The reader may only succeed where the regex does.
                    for at in 0..line.len() {
                        assert!(
                            fast_hit(fast, &t, &line, at).is_none(),
                            "{text} on {line:?} at {at}"
                        );
                    }
                    continue;
                };
                if let Some(by_hand) = fast_hit(fast, &t, &line, by_regex.start) {
                    compared += 1;
                    assert_eq!(by_hand.span, by_regex.span, "{text} on {line:?}");
                    assert_eq!(by_hand.fields, by_regex.fields, "{text} on {line:?}");
                }
            }
        }
    }
    assert!(compared > 500, "only {compared} lines read by hand");
    assert_eq!(Fast::for_pattern("%Y"), None);
}
