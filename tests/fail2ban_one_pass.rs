#![allow(clippy::unwrap_used, clippy::expect_used)]
//! fail2ban filter files run together in one pass ([`Fail2banFilters`], as
//! a daemon route runs them) find exactly what each finds fed alone, line
//! by line, on fail2ban's own sample logs (all of them, one stream, so
//! each filter also sees the other programs' lines it must turn away).
//! Needs the Debian `fail2ban` package; skipped, loudly, without it.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nftjail::filter::fail2ban::{Fail2banFilter, Fail2banFilters};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const LOG_DIR: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// Mail and ssh filters an import gives, others with a `datepattern` of
/// their own (their own date group), a multi-line one (`maxlines`), one
/// with a `prefregex`, and options.
const SPECS: [&str; 16] = [
    "sshd",
    "sshd[mode=aggressive]",
    "postfix",
    "postfix[mode=auth]",
    "dovecot",
    "sieve",
    "exim",
    "courier-auth",
    "cyrus-imap",
    "sendmail-auth",
    "roundcube-auth",
    "apache-auth",
    "nginx-http-auth",
    "asterisk",
    "guacamole",
    "ejabberd-auth",
];

type Seen = (usize, usize, String, Option<SystemTime>, usize);

#[test]
fn one_pass_finds_what_each_filter_finds_alone() {
    if !Path::new(FILTER_DIR).is_dir() || !Path::new(LOG_DIR).is_dir() {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    }
    let lines = common::samples::lines(Path::new(LOG_DIR));
    assert!(lines.len() > 1000, "{}", lines.len());
    let load = |spec: &str| Fail2banFilter::load(spec, Path::new(FILTER_DIR)).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_124_013_600);
    let mut alone: Vec<Seen> = Vec::new();
    for (k, spec) in SPECS.iter().enumerate() {
        let mut f = load(spec);
        for (n, line) in lines.iter().enumerate() {
            if let Some(m) = f.process(line, now) {
                alone.push((n, k, m.id, m.time, m.regex));
            }
        }
    }
    let mut together: Vec<Seen> = Vec::new();
    let mut all = Fail2banFilters::new(
        SPECS
            .iter()
            .enumerate()
            .map(|(k, s)| (k, load(s)))
            .collect(),
    );
    for (n, line) in lines.iter().enumerate() {
        all.scan(line, now, |k, m| {
            together.push((n, k, m.id, m.time, m.regex))
        });
    }
    alone.sort();
    together.sort();
    // Every filter finds something in the samples, so agreement means
    // something for each.
    for (k, spec) in SPECS.iter().enumerate() {
        assert!(alone.iter().any(|s| s.1 == k), "{spec} found nothing");
    }
    assert_eq!(together.len(), alone.len());
    for (a, b) in alone.iter().zip(&together) {
        assert_eq!(a, b, "{}: {}", SPECS[a.1], lines[a.0]);
    }
}
