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
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn nanos(t: SystemTime) -> u32 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
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
        "05/Mar/2024:16:01:34",
        "5-mar-2024 16:01:34",
        "31/Dec/2023 6:01:34",
        "05/Mar-2024:16:01:34",
        "30/Feb/2024:24:01:34",
        "05/Mar/2024::16:01:34",
    ];
    let tails = [
        "",
        ".1",
        ".123456",
        ".1234567",
        ",5",
        " 2022",
        " 2022x",
        ".5 2023",
        "Z",
        " +01:00",
        "+0100",
        "  -05",
        " UTC",
        " GMT",
        "+01:",
        "+2500",
        " Zed",
        "x",
        "5",
        " host",
        ":",
        "]",
        " +0100]",
        " z",
        " utc]",
        " -0130\"",
        "\x0c+0100",
        " \u{a0}+0100",
        "\u{a0}x",
        "\t-0100",
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
    use super::defaults::{ACCESS, ISO, SYSLOG};
    use super::fast::Fast;
    use super::fast::ISO_PINNED;
    let mut compared = 0;
    for pattern in [SYSLOG, ISO, ISO_PINNED, ACCESS] {
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

/// The time (seconds, nanoseconds) and date text `pattern` finds in `line`,
/// in UTC unless the line says otherwise.
fn pinned(pattern: &str, line: &str) -> Option<(i64, u32, String)> {
    let mut d = DateDetector::from_fail2ban(pattern)
        .unwrap()
        .with_zone(utc());
    let f = d.find(line, at(NOW))?;
    Some((secs(f.time), nanos(f.time), line[f.span].to_string()))
}

#[test]
fn timestamp_fractional_seconds() {
    let mut d = DateDetector::auto().with_zone(utc());
    let f = d.find("2024-03-05T16:01:34.123456Z x", at(NOW)).unwrap();
    assert_eq!(
        (secs(f.time), nanos(f.time)),
        (epoch("2024-03-05T16:01:34Z"), 123_456_000)
    );
    let f = d.find("2024-03-05 16:01:34,5 x", at(NOW)).unwrap();
    assert_eq!(nanos(f.time), 500_000_000);
    let mut d = DateDetector::auto().with_zone(utc());
    let f = d
        .find("[Sat Mar 05 16:01:34.000789 2022] x", at(NOW))
        .unwrap();
    assert_eq!(nanos(f.time), 789_000);
    let (_, n, text) = pinned("%H:%M:%S.%f", "16:01:34.1 x").unwrap();
    assert_eq!((n, text.as_str()), (100_000_000, "16:01:34.1"));
}

#[test]
fn timestamp_invalid_dates_give_none() {
    for line in [
        "2024-02-30 16:01:34 x",
        "2023-02-29T00:00:00 x",
        "Feb 30 12:00:00 host x",
        "Mar  5 24:00:00 host x",
        "2024-03-05 25:61:61 x",
        "Mar  5 16:01:60 host x",
        "no date here 12:3",
        "",
    ] {
        let mut d = DateDetector::auto().with_zone(utc());
        assert_eq!(d.find(line, at(NOW)), None, "{line:?}");
    }
    // Years beyond what an instant can hold.
    assert_eq!(pinned("^%s", "999999999999 x"), None);
    assert_eq!(pinned("^%Y-%m-%d", "0000-00-01 x"), None);
    assert_eq!(pinned("^%Y-%m-%d", "0000-01-01 x"), None);
    // Year 1 is a valid date, long before the epoch.
    let (t, _, _) = pinned("^%Y-%m-%d %H:%M:%S", "0001-01-01 00:00:00 x").unwrap();
    assert_eq!(t, -62135596800);
}

#[test]
fn timestamp_never_panics_on_junk() {
    let mut d = DateDetector::auto();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"0123456789 :-/.,TZ+[]@<>()abcMarJanSat\xc3\xa9\xff\x00\t";
    for len in [0usize, 1, 2, 3, 17, 40, 300] {
        for _ in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(xorshift(&mut seed) % alphabet.len() as u64) as usize])
                .collect();
            let line = String::from_utf8_lossy(&bytes);
            if let Some(f) = d.find(&line, at(NOW)) {
                assert!(line.get(f.span.clone()).is_some(), "{line:?} {f:?}");
            }
        }
    }
    // A long syslog line, then a short one: the kept position is past its end.
    assert!(d
        .find(&format!("{} Mar  5 16:01:34 x", "é".repeat(200)), at(NOW))
        .is_some());
    assert!(d.find("é", at(NOW)).is_none());
    let huge = format!("Mar  5 16:01:34 {}", "1".repeat(1 << 20));
    assert!(d.find(&huge, at(NOW)).is_some());
    let huge = "2024-03-05 1".repeat(1 << 16);
    let _ = DateDetector::auto().find(&huge, at(NOW));
}

#[test]
fn timestamp_line_begin_anchor() {
    let line = "x Mar  5 16:01:34 y";
    assert!(pinned("{^LN-BEG}", line).is_none());
    let (t, _, text) = pinned("{^LN-BEG}", "[Mar  5 16:01:34] y").unwrap();
    assert_eq!(
        (t, text.as_str()),
        (epoch("2024-03-05T16:01:34Z"), "Mar  5 16:01:34")
    );
    let (_, _, text) = auto_with("x Mar  5 16:01:34 y").unwrap();
    assert_eq!(text, "Mar  5 16:01:34");
    assert!(pinned("{^LN-BEG}%H:%M:%S", "a 16:01:34").is_none());
    assert!(pinned("%H:%M:%S", "a 16:01:34").is_some());
}

fn auto_with(line: &str) -> Option<(i64, u32, String)> {
    let mut d = DateDetector::auto().with_zone(utc());
    let f = d.find(line, at(NOW))?;
    Some((secs(f.time), nanos(f.time), line[f.span].to_string()))
}

#[test]
fn timestamp_other_default_formats() {
    let cases = [
        (
            "23/01/2005 21:59:59 x",
            "2005-01-23T21:59:59Z",
            "23/01/2005 21:59:59",
        ),
        (
            "23/01/05 21:59:59 x",
            "2005-01-23T21:59:59Z",
            "23/01/05 21:59:59",
        ),
        (
            "named 26-Jul-2007 15:20:52.252 x",
            "2007-07-26T15:20:52.252Z",
            "26-Jul-2007 15:20:52.252",
        ),
        (
            "x 05/20/2008:01:57:39 y",
            "2008-05-20T01:57:39Z",
            "05/20/2008:01:57:39",
        ),
        (
            "x 01-27-2012 16:22:44.252 y",
            "2012-01-27T16:22:44.252Z",
            "01-27-2012 16:22:44.252",
        ),
        (
            "<09/16/08@05:03:30> x",
            "2008-09-16T05:03:30Z",
            "<09/16/08@05:03:30>",
        ),
        (
            "130322 11:46:11 [Warning] x",
            "2013-03-22T11:46:11Z",
            "130322 11:46:11",
        ),
        (
            "Jan 23, 2005 9:59:59 PM x",
            "2005-01-23T21:59:59Z",
            "Jan 23, 2005 9:59:59 PM",
        ),
        (
            "Jan 23, 2005 12:00:01 AM x",
            "2005-01-23T00:00:01Z",
            "Jan 23, 2005 12:00:01 AM",
        ),
        (
            "Apr-27-13 02:33:06 x",
            "2013-04-27T02:33:06Z",
            "Apr-27-13 02:33:06",
        ),
        (
            "20050123T215959 x",
            "2005-01-23T21:59:59Z",
            "20050123T215959",
        ),
        (
            "Sun Jan 23 2005 21:59:59.011 x",
            "2005-01-23T21:59:59.011Z",
            "Sun Jan 23 2005 21:59:59.011",
        ),
        (
            "+01:00 Jan 23 21:59:59.011 2005 x",
            "2005-01-23T20:59:59.011Z",
            "+01:00 Jan 23 21:59:59.011 2005",
        ),
        (
            "@400000005c8e1a2b0a1b2c3d x",
            "2019-03-17T09:58:03.169552957Z",
            "@400000005c8e1a2b0a1b2c3d",
        ),
    ];
    for (line, want, text) in cases {
        let (t, n, got) = auto_with(line).unwrap_or_else(|| panic!("{line}"));
        let want_ts: jiff::Timestamp = want.parse().unwrap();
        assert_eq!(
            (t, n as i32),
            (want_ts.as_second(), want_ts.subsec_nanosecond()),
            "{line}"
        );
        assert_eq!(got, text, "{line}");
    }
    // Only a time of day: today, or yesterday if that would be ahead of now.
    let (t, _, _) = auto_with("11:00:00 x").unwrap();
    assert_eq!(t, epoch("2024-06-01T11:00:00Z"));
    let (t, _, _) = auto_with("13:00:00 x").unwrap();
    assert_eq!(t, epoch("2024-05-31T13:00:00Z"));
}

#[test]
fn timestamp_directives() {
    let cases = [
        (
            "^%Y %j %H:%M:%S",
            "2024 065 16:01:34 x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%y-%m-%d %H:%M:%S",
            "24-03-05 16:01:34 x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%A, %B %d %Y %H:%M:%S",
            "Tuesday, March 05 2024 16:01:34 x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%a %b %e %H:%M:%S %Y",
            "TUE MAR  5 16:01:34 2024 x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%Y-%m-%d %I:%M:%S %p",
            "2024-03-05 04:01:34 pm x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%Y-%m-%d %H:%M:%S %Z",
            "2024-03-05 16:01:34 CET x",
            "2024-03-05T15:01:34Z",
        ),
        (
            "^%Y-%m-%d %H:%M:%S %z",
            "2024-03-05 16:01:34 -0130 x",
            "2024-03-05T17:31:34Z",
        ),
        (
            "^%Y-%m-%d %H:%M:%S %Exz",
            "2024-03-05 16:01:34 CET+01 x",
            "2024-03-05T14:01:34Z",
        ),
        ("^ts=%s", "ts=1709654494 x", "2024-03-05T16:01:34Z"),
        (
            "^%%%Y-%m-%d %H:%M:%S",
            "%2024-03-05 16:01:34 x",
            "2024-03-05T16:01:34Z",
        ),
        (
            "^%ExY%Exm%Exd %ExH%ExM%ExS",
            "20240305 160134 x",
            "2024-03-05T16:01:34Z",
        ),
        ("^%x %X", "03/05/24 16:01:34 x", "2024-03-05T16:01:34Z"),
        ("^%c", "Tue Mar  5 16:01:34 2024 x", "2024-03-05T16:01:34Z"),
    ];
    for (pattern, line, want) in cases {
        let (t, _, _) = pinned(pattern, line).unwrap_or_else(|| panic!("{pattern} on {line}"));
        assert_eq!(t, epoch(want), "{pattern} on {line}");
    }
    for bad in ["%Y-%q", "%", "%E", "(unclosed %Y"] {
        assert!(DateDetector::from_fail2ban(bad).is_err(), "{bad}");
    }
    assert!(matches!(
        DateDetector::from_fail2ban(" \n "),
        Err(DatePatternError::Empty)
    ));
}

#[test]
fn timestamp_named_forms() {
    // A fraction needs three to six digits, else only the seconds are read.
    let (_, n, text) = pinned("EPOCH", "1709654494.5 x").unwrap();
    assert_eq!((n, text.as_str()), (0, "1709654494"));
    let (t, n, text) = pinned("EPOCH", "1709654494.500 x").unwrap();
    assert_eq!(
        (t, n, text.as_str()),
        (1709654494, 500_000_000, "1709654494.500")
    );
    let (t, n, _) = pinned("LEPOCH", "1709654494123 x").unwrap();
    assert_eq!((t, n), (1709654494, 123_000_000));
    let (t, n, _) = pinned("LEPOCH", "1709654494123456 x").unwrap();
    assert_eq!((t, n), (1709654494, 123_456_000));
    assert!(pinned("EPOCH", "17096544941 x").is_some());
    assert!(pinned("EPOCH", "170965449412 x").is_none());
    let (_, _, text) = pinned("{^LN-BEG}EPOCH", "[1709654494] x").unwrap();
    assert_eq!(text, "1709654494");
    let (_, _, text) = pinned("EPOCH", "type=X msg=audit(1709654494.123:42): y").unwrap();
    assert_eq!(text, "1709654494.123");
    let (t, _, text) = pinned(r"^\[{EPOCH}\]", "[1709654494] x").unwrap();
    assert_eq!((t, text.as_str()), (1709654494, "[1709654494]"));
    let (t, _, _) = pinned("TAI64N", "x @400000005c8e1a2b0a1b2c3d y").unwrap();
    assert_eq!(t, 0x5c8e1a2b);
    let (t, _, _) = pinned("ISO8601", "x 2024-03-05T16:01:34+01:00 y").unwrap();
    assert_eq!(t, epoch("2024-03-05T15:01:34Z"));
    // {NONE}: the lines carry no date; they are dated now.
    let (t, _, text) = pinned("{NONE}", "2024-03-05T16:01:34 x").unwrap();
    assert_eq!((t, text.as_str()), (epoch(NOW), ""));
    // {DATE} stands for every default format.
    let (t, _, text) = pinned(r"^<W>{DATE}", "<W>2024-03-05 16:01:34.123 1 => x").unwrap();
    assert_eq!(
        (t, text.as_str()),
        (epoch("2024-03-05T16:01:34Z"), "<W>2024-03-05 16:01:34.123")
    );
    // Several patterns, one a line: each is tried.
    let two = "^%Y-%m-%d %H:%M:%S\n^%d.%m.%Y %H:%M:%S";
    assert!(pinned(two, "2024-03-05 16:01:34 x").is_some());
    assert!(pinned(two, "05.03.2024 16:01:34 x").is_some());
}

#[test]
fn timestamp_zone_names() {
    assert_eq!(
        format!("{:?}", Zone::named("Europe/Zurich").unwrap()),
        "Zone(Europe/Zurich)"
    );
    assert!(Zone::named("Nowhere/Bogus").is_err());
    let line = "2024-03-05 16:01:34 x";
    for (name, want) in [
        ("UTC+0100", "2024-03-05T15:01:34Z"),
        ("-05:00", "2024-03-05T21:01:34Z"),
        ("GMT", "2024-03-05T16:01:34Z"),
        ("America/New_York", "2024-03-05T21:01:34Z"),
    ] {
        let mut d = DateDetector::auto().with_zone(name.parse().unwrap());
        assert_eq!(
            secs(d.find(line, at(NOW)).unwrap().time),
            epoch(want),
            "{name}"
        );
    }
    // Wall-clock times skipped by DST move forward; repeated ones take the
    // first (summer-time) occurrence.
    let mut d = DateDetector::auto().with_zone(zurich());
    let gap = d.find("2024-03-31 02:30:00 x", at(NOW)).unwrap();
    assert_eq!(secs(gap.time), epoch("2024-03-31T01:30:00Z"));
    let fold = d.find("2024-10-27 02:30:00 x", at(NOW)).unwrap();
    assert_eq!(secs(fold.time), epoch("2024-10-27T00:30:00Z"));
}

#[test]
fn timestamp_template_is_kept_and_changed() {
    let mut d = DateDetector::auto().with_zone(utc());
    let now = at(NOW);
    assert!(d.find("Mar  5 16:01:34 host a", now).is_some());
    // The message mentions another date; the kept syslog date wins.
    let f = d
        .find("Mar  5 16:01:35 host at 2020-01-01 00:00:00", now)
        .unwrap();
    assert_eq!(secs(f.time), epoch("2024-03-05T16:01:35Z"));
    // The log switches format: detection starts over.
    let f = d.find("2024-03-05T16:01:36Z host b", now).unwrap();
    assert_eq!(secs(f.time), epoch("2024-03-05T16:01:36Z"));
    let f = d.find("Mar  5 16:01:37 host c", now).unwrap();
    assert_eq!(secs(f.time), epoch("2024-03-05T16:01:37Z"));
    assert!(d.current_template().is_some_and(|t| t.contains("%b %d")));
    let order: Vec<String> = d.template_names().map(String::from).collect();
    d.reset();
    assert_eq!(d.current_template(), None);
    let fresh: Vec<String> = DateDetector::auto()
        .template_names()
        .map(String::from)
        .collect();
    let reset: Vec<String> = d.template_names().map(String::from).collect();
    assert_eq!(reset, fresh);
    assert_ne!(order, fresh, "wins moved templates forward");
}

/// The `datepattern` a filter file sets itself, unescaped as fail2ban's
/// config reader would; `None` if the file is absent or uses interpolation.
fn filter_datepattern(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/etc/fail2ban/filter.d/{name}.conf")).ok()?;
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "datepattern").then(|| v.trim().to_string())
    })?;
    if value.contains("%(") || value.contains('<') && value.contains("/datepattern>") {
        return None;
    }
    Some(value.replace("%%", "%"))
}

#[test]
fn timestamp_fail2ban_filter_datepatterns() {
    let cases = [
        (
            "assp",
            "Apr-27-13 02:33:06 [Worker_1] x",
            "2013-04-27T02:33:06Z",
            "Apr-27-13 02:33:06",
        ),
        (
            "centreon",
            "2024-03-05 16:01:34 x",
            "2024-03-05T16:01:34Z",
            "2024-03-05 16:01:34",
        ),
        (
            "counter-strike",
            "L 03/05/2024 - 16:01:34: x",
            "2024-05-03T16:01:34Z",
            "L 03/05/2024 - 16:01:34",
        ),
        (
            "directadmin",
            "2024:03:05-16:01:34: x",
            "2024-03-05T16:01:34Z",
            "2024:03:05-16:01:34",
        ),
        (
            "dovecot",
            "@400000005c8e1a2b0a1b2c3d x",
            "2019-03-17T09:58:03Z",
            "@400000005c8e1a2b0a1b2c3d",
        ),
        (
            "ejabberd-auth",
            "=INFO REPORT==== 2013-07-14 17:53:40 ===",
            "2013-07-14T17:53:40Z",
            "2013-07-14 17:53:40",
        ),
        (
            "freeswitch",
            "2024-03-05 16:01:34.123456 [WARNING] x",
            "2024-03-05T16:01:34Z",
            "2024-03-05 16:01:34.123456",
        ),
        (
            "freeswitch",
            "03-05 16:01:34 [WARNING] x",
            "2024-03-05T16:01:34Z",
            "03-05 16:01:34",
        ),
        (
            "grafana",
            "t=2024-03-05T16:01:34+0100 lvl=eror x",
            "2024-03-05T15:01:34Z",
            "t=2024-03-05T16:01:34+0100",
        ),
        (
            "kerio",
            "[05/Mar/2024 16:01:34] x",
            "2024-03-05T16:01:34Z",
            "[05/Mar/2024 16:01:34]",
        ),
        (
            "murmur",
            "<W>2024-03-05 16:01:34.123 1 => x",
            "2024-03-05T16:01:34Z",
            "<W>2024-03-05 16:01:34.123",
        ),
        (
            "nginx-bad-request",
            "2024/03/05 16:01:34 [error] x",
            "2024-03-05T16:01:34Z",
            "2024/03/05 16:01:34",
        ),
        (
            "nsd",
            "[1709654494] nsd[1]: x",
            "2024-03-05T16:01:34Z",
            "1709654494",
        ),
        (
            "openhab",
            "x [05/March/2024:16:01:34 +0100] y",
            "2024-03-05T15:01:34Z",
            "05/March/2024:16:01:34 +0100",
        ),
        (
            "oracleims",
            r#"<co ts="2024-03-05T16:01:34.123+01:00" x"#,
            "2024-03-05T15:01:34Z",
            r#"<co ts="2024-03-05T16:01:34.123+01:00" "#,
        ),
        (
            "recidive",
            "2024-03-05 16:01:34,123 fail2ban.actions [1]: x",
            "2024-03-05T16:01:34Z",
            "2024-03-05 16:01:34,123",
        ),
        (
            "selinux-common",
            "type=USER_AUTH msg=audit(1709654494.123:42): x",
            "2024-03-05T16:01:34Z",
            "1709654494.123",
        ),
        (
            "squirrelmail",
            "03/05/2024 16:01:34 [LOGIN_ERROR] x",
            "2024-03-05T16:01:34Z",
            "03/05/2024 16:01:34",
        ),
        (
            "tine20",
            "a -- b -- - 2024-03-05T16:01:34+00:00 - x",
            "2024-03-05T16:01:34Z",
            "2024-03-05T16:01:34+00:00",
        ),
        (
            "apache-badbots",
            r#"192.0.2.1 - - [05/Mar/2024:16:01:34 +0100] "GET / HTTP/1.1""#,
            "2024-03-05T15:01:34Z",
            "05/Mar/2024:16:01:34 +0100",
        ),
        (
            "apache-fakegooglebot",
            "x [05/Mar/2024:16:01:34 +0100] y",
            "2024-03-05T15:01:34Z",
            "[05/Mar/2024:16:01:34 +0100]",
        ),
        (
            "3proxy",
            "[Mar  5 16:01:34] x",
            "2024-03-05T16:01:34Z",
            "Mar  5 16:01:34",
        ),
    ];
    let mut tried = 0;
    for (filter, line, want, text) in cases {
        let Some(pattern) = filter_datepattern(filter) else {
            eprintln!("filter.d/{filter}.conf not readable; case skipped");
            continue;
        };
        tried += 1;
        let (t, _, got) =
            pinned(&pattern, line).unwrap_or_else(|| panic!("{filter} [{pattern}] on {line}"));
        assert_eq!(
            (t, got.as_str()),
            (epoch(want), text),
            "{filter} [{pattern}] on {line}"
        );
    }
    if tried == 0 {
        eprintln!("fail2ban filters not installed; nothing checked");
    }
}

#[test]
fn timestamp_detector_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    send(&DateDetector::auto());
}

#[test]
fn timestamp_repeated_dates_resolve_as_fresh() {
    // One detector reading the same date text again, as a busy log writes
    // it, answers what a fresh detector answers, whatever `now` did meanwhile.
    let mut d = DateDetector::auto().with_zone(utc());
    let fresh = |line: &str, now: SystemTime| {
        DateDetector::auto()
            .with_zone(utc())
            .find(line, now)
            .map(|f| f.time)
    };
    let nows = [
        at("2025-01-01T00:10:00Z"),
        at("2025-01-01T00:10:00Z"),
        at("2024-12-31T23:50:00Z"),
        at("2025-12-31T00:00:00Z"),
    ];
    for now in nows {
        let line = "Dec 31 23:59:00 h x";
        assert_eq!(d.find(line, now).map(|f| f.time), fresh(line, now));
    }
    // Time of day only: compared with `now` to the nanosecond, so never
    // taken from the line before.
    let mut d = DateDetector::auto().with_zone(utc());
    let line = "12:00:00.500 h x";
    let base = at("2024-06-01T12:00:00Z");
    for ms in [200, 800, 200] {
        let now = base + Duration::from_millis(ms);
        let got = d.find(line, now).map(|f| f.time);
        assert_eq!(got, fresh(line, now), "now +{ms} ms");
    }
}

/// The same detector reading every date by regex alone, as the full search
/// did before shapes and hand-written readers: the reference for both.
fn regex_only(mut d: DateDetector) -> DateDetector {
    for t in &mut d.templates {
        t.fast = None;
        t.shape = None;
    }
    d
}

/// Names of the default templates whose regex this detector has compiled
/// (or taken from another detector that compiled it).
fn compiled(d: &DateDetector) -> Vec<&str> {
    d.templates
        .iter()
        .filter(|t| matches!(&t.kind, template::Kind::Lazy { local, .. } if local.get().is_some()))
        .map(|t| t.name.as_str())
        .collect()
}

/// Lines of every shape a detector meets: each default format at the line
/// start, after a prefix and deep in a message; epoch and TAI64N; lines
/// without a date; text beyond ASCII (letters that fold to ASCII ones,
/// other scripts' digits, non-ASCII space); and random junk.
fn shape_lines() -> Vec<String> {
    let dates = [
        "Mar  5 16:01:34",
        "Sat Mar 05 16:01:34.000789 2022",
        "sun jan 23 2005 21:59:59.011",
        "2024-03-05T16:01:34.123+01:00",
        "2022/03/05 16:01:34",
        "2006.12.21 06:43:20",
        "23/01/2005 21:59:59",
        " 5/01/05 21:59:59",
        "05/Mar/2022:16:01:34 +0100",
        "26-Jul-2007 15:20:52.252",
        "05/20/2008:01:57:39",
        "01-27-2012 16:22:44.252",
        "16:01:34",
        "<09/16/08@05:03:30>",
        "130322 11:46:11",
        "130322  11:46:11",
        "Jan 23, 2005 9:59:59 PM",
        "Apr-27-13 02:33:06",
        "20050123T215959",
        "20050123 215959,5Z",
        "PDT Apr 16 21:05:29",
        "Z Apr 16 21:05:29",
        "UTC Sat Apr 16 21:05:29",
        "+00:00 Jan 23 21:59:59.011 2005",
        "-0500 Jan 23 21:59:59",
        "+01 Jan 23 21:59:59",
        "1709654494",
        "1709654494.123",
        "@400000005c8e1a2b0a1b2c3d",
        "ſat Mar  5 16:01:34",
        "Mar \u{a0}5 16:01:34",
        "٢٠٢٤-03-05 16:01:34",
        "2024-03-05 1٦:01:34",
        "KST Mar  5 16:01:34",
        "Mar 5 16:01",
        "2024-03-05",
        "12:3",
    ];
    let prefixes = [
        "",
        "[",
        "<13>",
        "- ",
        "[ ",
        "«",
        "é ",
        "x",
        "host sshd[1]: at ",
        "1.2.3.4 - - [",
        "type=AVC msg=audit(",
        "ſ",
    ];
    let tails = ["", " x", "] y", "x", ":42): y", " 2024-03-05 16:01:34"];
    let mut out = generated_lines();
    for p in prefixes {
        for d in dates {
            for t in tails {
                out.push(format!("{p}{d}{t}"));
            }
        }
    }
    out.extend(
        [
            "",
            "no date here",
            "sshd[1]: Connection closed by 1.2.3.4 port 22 [preauth]",
            "port 22: x",
            "GET / HTTP/1.1 Mon Tue Mar",
            "Сообщение без даты",
            "日志 2024-03-05 16:01:34 消息",
            "Mar  5 16:01:34 host сообщение",
        ]
        .map(String::from),
    );
    let alphabet: Vec<char> = "0123456789 :-/.,TZ+[]@<>()aMarJanSatuUTC\u{a0}ſK٣é\t"
        .chars()
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in [1usize, 4, 12, 24, 60] {
        for _ in 0..400 {
            let line: String = (0..len)
                .map(|_| alphabet[(xorshift(&mut seed) % alphabet.len() as u64) as usize])
                .collect();
            out.push(line);
        }
    }
    out
}

/// A shape may pass over a line only where its regex finds nothing: no
/// match may begin before the first place the shape allows.
#[test]
fn timestamp_shapes_never_rule_out_a_match() {
    let lines = shape_lines();
    let (mut matched, mut ruled_out) = (0, 0);
    for t in defaults::all() {
        let Some(shape) = t.shape else { continue };
        for line in &lines {
            let first = shape.first_begin(line, t.line_begin);
            match t.search(line, 0) {
                Some(hit) => {
                    matched += 1;
                    assert!(
                        first.is_some_and(|f| f <= hit.span.start),
                        "{} on {line:?}: match at {}, shape says {first:?}",
                        t.name,
                        hit.span.start
                    );
                }
                None if first.is_none() => ruled_out += 1,
                None => {}
            }
        }
    }
    assert!(matched > 2_000, "only {matched} matches");
    assert!(ruled_out > 100_000, "only {ruled_out} lines ruled out");
}

/// Shapes and hand-written readers in the full search change nothing: the
/// same template wins, with the same date at the same place, and templates
/// move in the search order as before, for a first line and for a log
/// whose lines change format.
#[test]
fn timestamp_cold_search_finds_what_the_regex_finds() {
    let now = at(NOW);
    let lines = shape_lines();
    let mut found = 0;
    for line in &lines {
        let mut cold = DateDetector::auto().with_zone(utc());
        let mut reference = regex_only(DateDetector::auto()).with_zone(utc());
        let got = cold.find(line, now);
        assert_eq!(got, reference.find(line, now), "{line:?}");
        assert_eq!(
            cold.current_template(),
            reference.current_template(),
            "{line:?}"
        );
        found += usize::from(got.is_some());
    }
    assert!(found > 2_000, "only {found} lines with a date");
    let mut cold = DateDetector::auto().with_zone(utc());
    let mut reference = regex_only(DateDetector::auto()).with_zone(utc());
    for line in &lines {
        assert_eq!(cold.find(line, now), reference.find(line, now), "{line:?}");
        assert_eq!(cold.current_template(), reference.current_template());
    }
    assert!(
        cold.template_names().eq(reference.template_names()),
        "search order"
    );
}

/// A detector's first line of the common formats is read without
/// compiling a template's regex; lines without a date compile none either.
#[test]
fn timestamp_first_line_compiles_no_regex() {
    let now = at(NOW);
    let dated = [
        "Mar  5 16:01:34 mx1 postfix/smtpd[1234]: warning: unknown[10.0.0.1]: SASL LOGIN authentication failed: authentication failure",
        "2024-03-05T16:01:34.123456+01:00 host sshd[1]: Failed password",
        "2022/03/05 16:01:34 [error] 1#1: *1 user \"x\" was not found",
        "[Sat Mar 05 16:01:34.000789 2022] [auth_basic:error] [pid 1] AH01618: user x not found",
        "1.2.3.4 - - [05/Mar/2022:16:01:34 +0100] \"GET / HTTP/1.1\" 401 123 \"-\" \"curl/8.0\"",
    ];
    for line in dated {
        let mut d = DateDetector::auto();
        assert!(d.find(line, now).is_some(), "{line}");
        assert_eq!(compiled(&d), Vec::<&str>::new(), "{line}");
        // Without shapes and readers the same line needs regexes.
        let mut reference = regex_only(DateDetector::auto());
        assert!(reference.find(line, now).is_some(), "{line}");
        assert!(!compiled(&reference).is_empty(), "{line}");
    }
    for line in [
        "sshd[1]: Connection closed by 1.2.3.4 port 22 [preauth]",
        "no date here",
    ] {
        let mut d = DateDetector::auto();
        assert_eq!(d.find(line, now), None, "{line}");
        assert_eq!(compiled(&d), Vec::<&str>::new(), "{line}");
    }
}

/// A small deterministic generator for junk lines: the same lines every run.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}
