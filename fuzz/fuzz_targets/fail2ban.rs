//! fail2ban filter files read as fail2ban reads them (INI with includes
//! and interpolation, tags, Python regexes translated for Rust's engines,
//! datepattern), then log lines judged by the filter. The input is a filter
//! file, a NUL byte, then log lines.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nftjail::filter::fail2ban::Fail2banFilter;
use nftjail::timestamp::Zone;

/// A directory of this process's own for the filter file (the reader takes
/// a path: includes are found beside it).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("nftjail-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let (file, lines) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let path = dir().join("fuzz.conf");
    std::fs::write(&path, file).expect("write the filter file");
    let Some(spec) = path.to_str() else { return };
    let Ok(filter) = Fail2banFilter::load(spec, dir()) else {
        return;
    };
    let mut filter = filter.with_zone(Zone::utc());
    let text = String::from_utf8_lossy(lines);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_726_494);
    for line in text.split('\n') {
        for m in filter.failures(line, now) {
            assert!(m.regex < filter.failregex_count());
            if let Some(addr) = m.addr {
                // The address is the host text the regex captured, parsed.
                let host = m.host.as_deref().expect("an address comes from host text");
                assert_eq!(
                    host.parse::<std::net::IpAddr>().ok(),
                    Some(addr),
                    "{line:?}"
                );
            }
        }
    }
});
