//! Dates in log lines: the auto-detector over a stream of lines (it keeps
//! the last template and place between lines), or a fail2ban `datepattern`
//! taken from the input's first line. A date found must be a span of the
//! line on character boundaries, since callers cut it out of the line.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nftjail::timestamp::{DateDetector, Zone};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let detector = if mode & 1 == 0 {
        // Compiling every template takes far longer than a run; a clone of
        // an unused detector starts from the same state.
        static AUTO: OnceLock<DateDetector> = OnceLock::new();
        AUTO.get_or_init(DateDetector::auto).clone()
    } else {
        let Some(pattern) = lines.next() else { return };
        match DateDetector::from_fail2ban(pattern) {
            Ok(d) => d,
            Err(_) => return,
        }
    };
    // A fixed zone and clock: the same input always means the same dates.
    let zone = if mode & 2 == 0 {
        Zone::utc()
    } else {
        Zone::fixed(3600 * 5 + 1800).expect("a valid offset")
    };
    let mut detector = detector.with_zone(zone);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_726_494);
    for line in lines {
        if let Some(found) = detector.find(line, now) {
            assert!(
                found.span.start <= found.span.end && line.get(found.span.clone()).is_some(),
                "span {:?} is not a slice of {line:?}",
                found.span
            );
        }
    }
});
