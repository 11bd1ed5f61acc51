//! Syslog datagrams (RFC 3164 and RFC 5424) as the receiver reads them off
//! the socket: whatever arrives, parsing gives a message or says why not,
//! and a message read names a program the jails can route by.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nftjail::source::syslog;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = syslog::parse(data) else {
        return;
    };
    assert!(!msg.program.is_empty(), "empty program from {data:?}");
    assert!(!msg.program.contains(' '), "{:?}", msg.program);
    assert!(!msg.text.starts_with(' '), "{:?}", msg.text);
    // The text is the datagram's own, never something made up.
    let sent = String::from_utf8_lossy(data);
    assert!(sent.contains(&msg.text), "{:?} not in {sent:?}", msg.text);
    assert!(sent.contains(&msg.program));
    let line = msg.line("fuzzhost");
    assert!(line.ends_with(&msg.text), "{line:?}");
});
