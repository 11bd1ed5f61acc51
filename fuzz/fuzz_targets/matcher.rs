//! Log lines through every built-in filter, both ways a line can be judged:
//! the [`Matcher`] (one pass over all filters, with its literal gates,
//! backtracker and flood mode) must report exactly what each filter's plain
//! regexes find, and every address must be the one the failregex's host
//! group captured at its place in the line.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nftjail::filter::{library, library_names, tags, Filter, FilterDef, MAX_COUNT};
use nftjail::matcher::Matcher;

struct Library {
    filters: Vec<Arc<Filter>>,
    matcher: Matcher,
}

fn built_in() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let filters: Vec<Arc<Filter>> = library_names()
            .iter()
            .map(|name| {
                let text = library(name).expect("listed filter has text");
                let def = FilterDef::parse(text, name).expect("built-in filter parses");
                Arc::new(Filter::compile(&def, name).expect("built-in filter compiles"))
            })
            .collect();
        let matcher = Matcher::new(filters.iter().cloned().enumerate().collect());
        Library { filters, matcher }
    })
}

/// The address the matching failregex's host group holds, read from its
/// position in the line.
fn host_in_place(f: &Filter, regex: usize, line: &str) -> Option<IpAddr> {
    let caps = f.failregex[regex].captures(line)?;
    if let Some(m) = caps.name(tags::HOST_GROUP) {
        let text = &line[m.start()..m.end()];
        let addr = tags::host_at(line, m.start(), m.end())?;
        // The capture is the address as written (brackets and a zone aside).
        assert_eq!(tags::parse_host(text), Some(addr), "{line:?}");
        return Some(addr);
    }
    let m = caps.name(tags::HOST_PORT_GROUP)?;
    tags::host_port_at(line, m.start(), m.end())
}

fn check(lib: &Library, line: &str) {
    let mut got: Vec<(usize, IpAddr)> = Vec::new();
    lib.matcher.scan(line, |jail, addr| got.push((jail, addr)));
    let mut want: Vec<(usize, IpAddr)> = Vec::new();
    for (jail, f) in lib.filters.iter().enumerate() {
        let Some((addr, count)) = f.find_counted(line) else {
            continue;
        };
        assert!(
            (1..=MAX_COUNT).contains(&count),
            "{}: count {count}",
            f.name
        );
        let verdict = f.explain(line).expect("explain agrees with find");
        assert_eq!(verdict.addr, addr, "{}: {line:?}", f.name);
        assert!(verdict.ignored_by.is_empty());
        assert_eq!(
            host_in_place(f, verdict.regex, line),
            Some(addr),
            "{}: address not at the host position of {line:?}",
            f.name
        );
        want.extend(std::iter::repeat_n((jail, addr), count as usize));
    }
    assert_eq!(got, want, "matcher and filters disagree on {line:?}");
    let mut fast = Vec::new();
    lib.matcher
        .explain_fast(line, |jail, regex, addr, _, ignored| {
            if ignored.is_empty() {
                fast.push((jail, regex, addr));
            }
        });
    for (jail, regex, addr) in fast {
        assert_eq!(host_in_place(&lib.filters[jail], regex, line), Some(addr));
    }
}

fuzz_target!(|data: &[u8]| {
    let lib = built_in();
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        check(lib, line);
    }
});
