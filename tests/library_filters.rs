#![allow(clippy::unwrap_used)]
//! The mail and login filter library on line forms we wrote from the
//! services' documented formats: each filter matches its failures with the
//! right address (IPv4, IPv6, IPv4-mapped), ignores look-alikes, never takes
//! the address from text the client chose, and counts a line that stands
//! for several failures that many times, no line twice.

use std::net::IpAddr;
use std::sync::Arc;

use nftjail::filter::literal::required_literal;
use nftjail::filter::{library, library_names, Filter, FilterDef, MAX_COUNT};
use nftjail::matcher::Matcher;

fn filter(name: &str) -> Filter {
    let text = library(name).unwrap_or_else(|| panic!("no built-in filter {name}"));
    Filter::compile(&FilterDef::parse(text, name).unwrap(), name).unwrap()
}

fn host(f: &Filter, line: &str) -> Option<String> {
    f.find(line).map(|a: IpAddr| a.to_string())
}

#[track_caller]
fn assert_hits(f: &Filter, cases: &[(String, &str)]) {
    for (line, want) in cases {
        assert_eq!(
            host(f, line).as_deref(),
            Some(*want),
            "{} should match: {line}",
            f.name
        );
    }
}

#[track_caller]
fn assert_misses(f: &Filter, lines: &[String]) {
    for line in lines {
        assert_eq!(host(f, line), None, "{} should not match: {line}", f.name);
    }
}

/// Failures the matcher reports for a log, per address, in first-seen order.
fn failures(name: &str, lines: &[String]) -> Vec<(String, usize)> {
    let m = Matcher::new(vec![(0, Arc::new(filter(name)))]);
    let mut out: Vec<(String, usize)> = Vec::new();
    for line in lines {
        m.scan(line, |_, a| {
            let a = a.to_string();
            match out.iter_mut().find(|(h, _)| *h == a) {
                Some((_, n)) => *n += 1,
                None => out.push((a, 1)),
            }
        });
    }
    out
}

const T: &str = "Mar  5 16:01:34 mx1";
const ISO: &str = "2024-03-05T16:01:34.123456+01:00 mx1";

const ALL: [&str; 16] = [
    "apache-auth",
    "courier-auth",
    "cyrus-imap",
    "dovecot",
    "exim",
    "kopano-webapp",
    "nginx-http-auth",
    "postfix",
    "postfix-sasl",
    "recidive",
    "roundcube-auth",
    "sasl",
    "sogo-auth",
    "sshd",
    "sshd-aggressive",
    "zimbra-submission",
];

#[test]
fn every_library_filter_compiles_describes_itself_and_has_literal_gates() {
    assert_eq!(library_names(), ALL);
    for name in library_names() {
        let text = library(name).unwrap();
        let def = FilterDef::parse(text, name).unwrap();
        assert!(!def.description.is_empty(), "{name} has no description");
        assert!(text.starts_with("# "), "{name} has no header comment");
        let f = filter(name);
        // The matcher turns lines away by literal before any regex runs; a
        // built-in pattern without one would cost every line a DFA pass.
        for re in &f.failregex {
            assert!(
                required_literal(re.as_str()).is_some(),
                "{name}: no literal in {}",
                re.as_str()
            );
        }
    }
}

// ---------------------------------------------------------------- postfix

fn pf(service: &str, msg: &str) -> String {
    format!("{T} postfix/{service}[4711]: {msg}")
}

#[test]
fn postfix_counts_failed_auth_from_the_disconnect_summary() {
    let f = filter("postfix");
    let c = |l: &str| f.find_counted(l).map(|(a, n)| (a.to_string(), n));
    let line = pf(
        "submission/smtpd",
        "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/3 quit=1 commands=2/5",
    );
    assert_eq!(c(&line), Some(("192.0.2.7".into(), 3)));
    for (msg, want) in [
        ("disconnect from unknown[192.0.2.7] ehlo=1 auth=0/1 quit=1 commands=2/3", ("192.0.2.7", 1)),
        ("disconnect from unknown[192.0.2.7] helo=1 auth=0/1 rset=1 quit=1 commands=3/4", ("192.0.2.7", 1)),
        ("disconnect from unknown[192.0.2.7] auth=0/2 commands=0/2", ("192.0.2.7", 2)),
        ("disconnect from mail.example.net[2001:db8::7] ehlo=2 starttls=1 auth=0/5 quit=1 commands=4/9", ("2001:db8::7", 5)),
        ("disconnect from unknown[::ffff:192.0.2.8]:51234 ehlo=1 auth=0/1 commands=1/2", ("192.0.2.8", 1)),
        ("disconnect from unknown[192.0.2.7] ehlo=1 auth=0/20 commands=1/21", ("192.0.2.7", 20)),
        ("disconnect from unknown[192.0.2.7] ehlo=1 auth=0/250 commands=1/251", ("192.0.2.7", MAX_COUNT)),
        ("disconnect from unknown[192.0.2.7] ehlo=1 auth=0/99999999999999999999 commands=1/2", ("192.0.2.7", MAX_COUNT)),
    ] {
        for service in ["smtpd", "submission/smtpd", "smtps/smtpd"] {
            let line = pf(service, msg);
            assert_eq!(c(&line), Some((want.0.into(), want.1)), "{line}");
        }
    }
    let iso = format!("{ISO} postfix/smtpd[1]: disconnect from unknown[192.0.2.7] ehlo=1 auth=0/2 quit=1 commands=2/4");
    assert_eq!(c(&iso), Some(("192.0.2.7".into(), 2)));
    // Sessions that logged in, or never tried AUTH, or say nothing failed.
    assert_misses(
        &f,
        &[
            pf("submission/smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6"),
            pf("submission/smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=1/3 mail=1 quit=1 commands=4/6"),
            pf("submission/smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=2/2 quit=1 commands=4"),
            pf("smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"),
            pf("smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/0 commands=1"),
            pf("smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/3 commands=1/4 trailing"),
            pf("smtpd", "disconnect from unknown[192.0.2.7]"),
            pf("cleanup", "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/3 commands=1/4"),
        ],
    );
}

#[test]
fn postfix_counts_each_failed_auth_once_not_twice() {
    // One failed AUTH leaves a SASL warning and then the summary's auth=0/1.
    let one = [
        pf("submission/smtpd", "connect from unknown[192.0.2.7]"),
        pf(
            "submission/smtpd",
            "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: authentication failure",
        ),
        pf(
            "submission/smtpd",
            "lost connection after AUTH from unknown[192.0.2.7]",
        ),
        pf(
            "submission/smtpd",
            "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/1 commands=1/2",
        ),
    ];
    assert_eq!(failures("postfix", &one), [("192.0.2.7".to_string(), 1)]);
    // Three guesses in one session: three SASL lines, one auth=0/3.
    let sasl = pf(
        "smtps/smtpd",
        "warning: unknown[2001:db8::7]: SASL PLAIN authentication failed: UGFzc3dvcmQ6",
    );
    let three = [
        sasl.clone(),
        sasl.clone(),
        sasl,
        pf(
            "smtps/smtpd",
            "disconnect from unknown[2001:db8::7] ehlo=1 auth=0/3 quit=1 commands=2/5",
        ),
    ];
    assert_eq!(
        failures("postfix", &three),
        [("2001:db8::7".to_string(), 3)]
    );
    // AUTH where it is not offered leaves no SASL line: the summary is all.
    let unoffered = [pf(
        "smtpd",
        "disconnect from unknown[192.0.2.9] ehlo=1 auth=0/2 quit=1 commands=2/4",
    )];
    assert_eq!(
        failures("postfix", &unoffered),
        [("192.0.2.9".to_string(), 2)]
    );
    // A typo, then the right password: the user is not counted at all.
    let typo = [
        pf("submission/smtpd", "warning: unknown[192.0.2.10]: SASL LOGIN authentication failed: authentication failure"),
        pf("submission/smtpd", "disconnect from unknown[192.0.2.10] ehlo=1 auth=1/2 mail=1 rcpt=1 data=1 quit=1 commands=6/7"),
    ];
    assert!(failures("postfix", &typo).is_empty());
    // postfix-sasl counts the attempts instead: one per SASL line.
    assert_eq!(
        failures("postfix-sasl", &three),
        [("2001:db8::7".to_string(), 3)]
    );
}

#[test]
fn postfix_counts_abusive_rejects_and_pipelining() {
    let f = filter("postfix");
    let rcpt = |code: &str, reason: &str| {
        pf("smtpd", &format!("NOQUEUE: reject: RCPT from unknown[192.0.2.7]: {code} <a@example.org>: {reason}; from=<x@example.net> to=<a@example.org> proto=ESMTP helo=<x>"))
    };
    assert_hits(
        &f,
        &[
            (rcpt("554 5.7.1", "Relay access denied"), "192.0.2.7"),
            (rcpt("550 5.1.1", "Recipient address rejected: User unknown in virtual mailbox table"), "192.0.2.7"),
            (rcpt("550 5.1.1", "Recipient address rejected: User unknown in local recipient table"), "192.0.2.7"),
            (rcpt("550 5.1.1", "Recipient address rejected: undeliverable address: host mx[192.0.2.99] said: 550 no such user"), "192.0.2.7"),
            (rcpt("550 5.7.1", "Helo command rejected: Host not found"), "192.0.2.7"),
            (rcpt("550 5.1.8", "Sender address rejected: Domain not found"), "192.0.2.7"),
            (rcpt("553 5.7.1", "Sender address rejected: Access denied"), "192.0.2.7"),
            (pf("smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]; from=<x@example.net> to=<a@example.org> proto=ESMTP helo=<x>"), "192.0.2.7"),
            (pf("smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.7]; from=<x@example.net>"), "192.0.2.7"),
            (pf("smtpd", "NOQUEUE: reject: RCPT from h.example[192.0.2.7]: 554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.example; https://example/q?192.0.2.7; from=<x@example.net> to=<a@example.org> proto=ESMTP helo=<h>"), "192.0.2.7"),
            (pf("smtpd", "NOQUEUE: reject: EHLO from unknown[2001:db8::7]: 504 5.5.2 <WIN-ABC>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<WIN-ABC>"), "2001:db8::7"),
            (pf("smtps/smtpd", "NOQUEUE: reject: VRFY from unknown[::ffff:192.0.2.8]: 550 5.1.1 <root>: Recipient address rejected: User unknown in local recipient table; to=<root> proto=SMTP"), "192.0.2.8"),
            (pf("smtpd", "4F2C31A0B: reject: RCPT from h.example[192.0.2.7]:51234: 554 5.7.1 <a@example.org>: Relay access denied; from=<> to=<a@example.org>"), "192.0.2.7"),
            (format!("{T} postfix-in/smtpd[1]: NOQUEUE: reject: MAIL from unknown[192.0.2.7]: 553 5.7.1 <x>: Sender address rejected: need fully-qualified address; proto=ESMTP"), "192.0.2.7"),
            (pf("smtpd", "improper command pipelining after EHLO from unknown[192.0.2.7]: QUIT"), "192.0.2.7"),
            (pf("smtpd", "improper command pipelining after NOOP from mail.example[2001:db8::7]"), "2001:db8::7"),
            (pf("smtpd", "improper command pipelining after AUTH from unknown[192.0.2.7]:51234: \\r\\n"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            // Temporary rejects: greylisting, our DNS, rate limits.
            rcpt("450 4.2.0", "Recipient address rejected: Greylisted"),
            rcpt("450 4.7.1", "Helo command rejected: Host not found"),
            pf("smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]; from=<x@example.net>"),
            rcpt("451 4.3.0", "Temporary lookup failure"),
            // Content verdicts and other reasons.
            pf("smtpd", "4F2C: milter-reject: END-OF-MESSAGE from h.example[192.0.2.7]: 5.7.1 Spam message rejected; from=<x@example.net>"),
            pf("smtpd", "NOQUEUE: reject: DATA from h.example[192.0.2.7]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<>"),
            rcpt("552 5.2.2", "Recipient address rejected: Mailbox full"),
            // Summaries and noise.
            pf("smtpd", "too many errors after RCPT from unknown[192.0.2.7]"),
            pf("smtpd", "lost connection after AUTH from unknown[192.0.2.7]"),
            pf("smtpd", "connect from unknown[192.0.2.7]"),
            pf("submission/smtpd", "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: authentication failure"),
            format!("{T} postfix/postscreen[1]: PREGREET 14 after 0.08 from [192.0.2.7]:59415: EHLO x\\r\\n"),
            pf("cleanup", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 <a@example.org>: Relay access denied;"),
            rcpt("554 5.7.1", "Relay access denied").replace("192.0.2.7", "999.0.2.7"),
        ],
    );
}

#[test]
fn postfix_client_text_cannot_supply_the_address() {
    let f = filter("postfix");
    assert_hits(
        &f,
        &[
            // HELO, sender and recipient carrying addresses.
            (pf("smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 <a@[6.6.6.6]>: Relay access denied; from=<x@[6.6.6.6]> to=<a@[6.6.6.6]> proto=ESMTP helo=<[6.6.6.6]>"), "192.0.2.7"),
            (pf("smtpd", "NOQUEUE: reject: EHLO from unknown[192.0.2.7]: 504 5.5.2 <from unknown[6.6.6.6]>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<from unknown[6.6.6.6]>"), "192.0.2.7"),
            (pf("smtpd", "improper command pipelining after EHLO from unknown[192.0.2.7]: MAIL FROM:<x> from unknown[6.6.6.6]: QUIT"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            // A line that only quotes the forms in client-chosen text.
            pf("smtpd", "warning: Illegal address syntax from unknown[192.0.2.7] in RCPT command: <x disconnect from unknown[6.6.6.6] ehlo=1 auth=0/9 commands=1/10>"),
            pf("cleanup", "4F2C: reject: header Subject: postfix/smtpd[1]: disconnect from unknown[6.6.6.6] auth=0/9 from unknown[192.0.2.7]"),
            pf("smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.2.0 <x: 554 5.7.1 Relay access denied>: Recipient address rejected: Greylisted"),
        ],
    );
}

// ---------------------------------------------------------------- zimbra

#[test]
fn zimbra_submission_matches_submission_and_smtps_sasl_failures() {
    let f = filter("zimbra-submission");
    let fail = "SASL LOGIN authentication failed: authentication failure";
    assert_hits(
        &f,
        &[
            (
                pf(
                    "submission/smtpd",
                    &format!("warning: unknown[192.0.2.7]: {fail}"),
                ),
                "192.0.2.7",
            ),
            (
                pf(
                    "smtps/smtpd",
                    &format!("warning: host.example[2001:db8::7]: {fail}"),
                ),
                "2001:db8::7",
            ),
            (
                pf(
                    "submission/smtpd",
                    &format!(
                        "warning: unknown[::ffff:192.0.2.8]: {fail}, sasl_username=bob@example.com"
                    ),
                ),
                "192.0.2.8",
            ),
            (
                pf(
                    "submission/smtpd",
                    "warning: unknown[192.0.2.7]: SASL PLAIN authentication failed: ",
                ),
                "192.0.2.7",
            ),
            (
                format!("{ISO} postfix/submission/smtpd[1]: warning: unknown[192.0.2.7]: {fail}"),
                "192.0.2.7",
            ),
        ],
    );
    assert_misses(
        &f,
        &[
            pf("smtpd", &format!("warning: unknown[192.0.2.7]: {fail}")),
            pf("submission/smtpd", "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: Connection lost to authentication server"),
            pf("submission/smtpd", "warning: unknown[192.0.2.7]: SASL PLAIN authentication failed: generic failure"),
            pf("submission/smtpd", "warning: unknown[192.0.2.7]: SASL CRAM-MD5 authentication failed: Invalid authentication mechanism"),
            pf("submission/smtpd", "disconnect from unknown[192.0.2.7] ehlo=1 auth=0/1 commands=1/2"),
            format!("{T} saslauthd[9]: auth_zimbra: bob@example.com auth failed: authentication failed for [bob@example.com]"),
        ],
    );
    // The SASL user name is the client's: neither the address nor the excuse.
    assert_hits(
        &f,
        &[(pf("submission/smtpd", "warning: unknown[192.0.2.7]: SASL PLAIN authentication failed: authentication failure, sasl_username=x unknown[6.6.6.6]: generic failure"), "192.0.2.7")],
    );
    assert_misses(
        &f,
        &[pf("submission/smtpd", "warning: SASL authentication failure: user [6.6.6.6]: SASL LOGIN authentication failed: x")],
    );
}

// ---------------------------------------------------------------- dovecot

#[test]
fn dovecot_counts_the_attempts_of_a_failed_connection() {
    let f = filter("dovecot");
    let c = |l: &str| f.find_counted(l).map(|(a, n)| (a.to_string(), n));
    for (line, want, n) in [
        (format!("{T} dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<AbCd>"), "192.0.2.7", 3),
        (format!("{T} dovecot[812]: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=2001:db8::7, lip=2001:db8::1, session=<AbCd>"), "2001:db8::7", 1),
        (format!("{T} dovecot: imap-login: Disconnected: Inactivity (auth failed, 1 attempts in 180 secs): user=<x>, method=PLAIN, rip=::ffff:192.0.2.8, lip=::ffff:198.51.100.1"), "192.0.2.8", 1),
        (format!("{T} dovecot: imap-login: Disconnected: Too many invalid commands (auth failed, 2 attempts in 9 secs): user=<x>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS"), "192.0.2.7", 2),
        (format!("{T} dovecot: imap-login: Login aborted: Connection closed (auth failed, 4 attempts in 8 secs) (auth_failed): user=<x>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<AbCd>"), "192.0.2.7", 4),
        (format!("{T} dovecot: managesieve-login: Disconnected (auth failed, 1 attempts): method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS: Disconnected"), "192.0.2.7", 1),
        (format!("{T} dovecot: submission-login: Aborted login (auth failed, 50 attempts in 99 secs): user=<x>, rip=192.0.2.7, lip=198.51.100.1"), "192.0.2.7", MAX_COUNT),
        (format!("{T} dovecot: pop3-login: Aborted login (tried to use disabled plaintext auth): rip=192.0.2.7, lip=198.51.100.1"), "192.0.2.7", 1),
        (format!("{T} dovecot: imap-login: Disconnected: Too many invalid commands (tried to use disallowed plaintext auth): user=<x>, rip=192.0.2.7, lip=198.51.100.1, session=<Ab>"), "192.0.2.7", 1),
        (format!("{T} dovecot: imap-login: Disconnected (proxy dest auth failed): user=<x>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, session=<Ab>"), "192.0.2.7", 1),
        ("Mar 05 16:01:34 imap-login: Info: Disconnected (auth failed, 2 attempts in 3 secs): user=<x>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1".to_string(), "192.0.2.7", 2),
        (format!("{ISO} dovecot[1]: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS"), "192.0.2.7", 1),
    ] {
        assert_eq!(c(&line), Some((want.to_string(), n)), "{line}");
    }
    assert_misses(
        &f,
        &[
            format!("{T} dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, mpid=4711, TLS"),
            format!("{T} dovecot: imap-login: Disconnected (no auth attempts in 10 secs): user=<>, rip=192.0.2.7, lip=198.51.100.1, TLS handshaking: Disconnected"),
            format!("{T} dovecot: imap-login: Disconnected (auth failed, 0 attempts): user=<x>, rip=192.0.2.7, lip=198.51.100.1"),
            format!("{T} dovecot: auth: passwd-file(bob,192.0.2.7): unknown user"),
            format!("{T} dovecot: auth-worker(12): pam(bob,192.0.2.7): pam_authenticate() failed: Authentication failure (password mismatch?)"),
            format!("{T} dovecot: auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=bob rhost=192.0.2.7"),
            format!("{T} dovecot: imap(bob)<4711><AbCd>: Disconnected: Logged out in=10 out=20"),
            format!("{T} postfix/smtpd[1]: imap-login: Disconnected (auth failed, 3 attempts): rip=192.0.2.7, lip=198.51.100.1"),
        ],
    );
}

#[test]
fn dovecot_user_names_cannot_supply_the_address_or_the_count() {
    let f = filter("dovecot");
    let c = |l: &str| f.find_counted(l).map(|(a, n)| (a.to_string(), n));
    for user in [
        "x>, method=PLAIN, rip=6.6.6.6, lip=198.51.100.1, TLS",
        "rip=6.6.6.6, lip=1.1.1.1",
        "(auth failed, 20 attempts): rip=6.6.6.6, lip=1.1.1.1",
        "x, rip=2001:db8::6, lip=2001:db8::1,",
    ] {
        let line = format!("{T} dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<AbCd>");
        assert_eq!(c(&line), Some(("192.0.2.7".into(), 1)), "{line}");
    }
    // Without Dovecot's fixed text in front, a user name proves nothing.
    assert_misses(
        &f,
        &[format!("{T} dovecot: imap-login: Login: user=<x (auth failed, 3 attempts): rip=6.6.6.6, lip=1.1.1.1>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1")],
    );
}

// ---------------------------------------------------------------- sasl

#[test]
fn sasl_matches_postfix_and_sendmail_failures() {
    let f = filter("sasl");
    let sm = |msg: &str| format!("{T} sm-mta[4711]: 2B4QhT7a004711: AUTH failure (PLAIN): {msg}");
    assert_hits(
        &f,
        &[
            (pf("smtpd", "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: authentication failure"), "192.0.2.7"),
            (pf("submission/smtpd", "warning: h.example[2001:db8::7]: SASL PLAIN authentication failed: UGFzc3dvcmQ6"), "2001:db8::7"),
            (sm("authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=bob, relay=host.example [192.0.2.7] (may be forged)"), "192.0.2.7"),
            (sm("user not found (-20) SASL(-13): user not found: unable to canonify user and get auxprops, user=x, relay=[::ffff:192.0.2.8]"), "192.0.2.8"),
            (sm("authentication failure (-13) SASL(-13): authentication failure: checkpass failed, relay=[IPv6:2001:db8::7]"), "2001:db8::7"),
            (format!("{T} sendmail[4711]: 2B4QhU9c004712: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=test, relay=host.example [192.0.2.7]"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            pf("smtpd", "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: Connection lost to authentication server"),
            sm("generic failure (-1) SASL(-1): generic failure: checkpass failed, user=bob, relay=[192.0.2.7]"),
            format!("{T} sm-mta[4711]: 2B4QhT7a004711: [192.0.2.7]: possible SMTP attack: command=AUTH, count=5"),
            format!("{T} saslauthd[9]: do_auth         : auth failure: [user=bob] [service=smtp] [realm=] [mech=pam] [reason=PAM auth error]"),
            format!("{T} postfix/smtpd[1]: warning: SASL authentication failure: Password verification failed"),
        ],
    );
    // Sendmail writes user= (the client's) before relay=: the last relay wins.
    assert_hits(
        &f,
        &[
            (sm("authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=x, relay=[6.6.6.6], relay=[192.0.2.7] (may be forged)"), "192.0.2.7"),
            (sm("authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=x, relay=[6.6.6.6] (may be forged), relay=[192.0.2.7]"), "192.0.2.7"),
        ],
    );
    // And the excuse in client text does not hide a failure.
    assert_hits(&f, &[(sm("authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=generic failure (-1) , relay=[192.0.2.7]"), "192.0.2.7")]);
}

// ---------------------------------------------------------------- cyrus

#[test]
fn cyrus_imap_matches_badlogin_in_every_client_field_form() {
    let f = filter("cyrus-imap");
    let cy = |prog: &str, rest: &str| format!("{T} {prog}[4711]: badlogin: {rest}");
    assert_hits(
        &f,
        &[
            (cy("cyrus/imaps", "host.example [192.0.2.7] plaintext bob SASL(-13): authentication failure: checkpass failed"), "192.0.2.7"),
            (cy("cyrus/imap", "[2001:db8::7] PLAIN [SASL(-13): authentication failure: Password verification failed]"), "2001:db8::7"),
            (cy("imapd", "local-host[192.0.2.7] CRAM-MD5 [SASL(-13): authentication failure: incorrect digest response]"), "192.0.2.7"),
            (cy("cyrus/pop3", "unknown [::ffff:192.0.2.8] plaintext x SASL(-13): user not found: user: x property: cmusaslsecretPLAIN not found in sasldb"), "192.0.2.8"),
            (cy("cyrus/sieve", "host.example [192.0.2.7] PLAIN [SASL(-13): authentication failure: checkpass failed]"), "192.0.2.7"),
            (cy("pop3d", "[192.0.2.7] plaintext x SASL(-1): generic failure: checkpass failed"), "192.0.2.7"),
            (format!("{ISO} cyrus/imap[1]: badlogin: h.example [192.0.2.7] plaintext bob SASL(-13): authentication failure: checkpass failed"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            cy("cyrus/imap", "host.example [999.0.2.7] plaintext bob SASL(-13): authentication failure"),
            format!("{T} cyrus/imap[4711]: login: host.example [192.0.2.7] bob plaintext+TLS User logged in SESSIONID=<x>"),
            format!("{T} cyrus/imap[4711]: accepted connection"),
            format!("{T} postfix/smtpd[1]: badlogin: host.example [192.0.2.7] plaintext bob SASL(-13): authentication failure"),
        ],
    );
    // The user name comes after the client field.
    assert_hits(
        &f,
        &[(cy("cyrus/imap", "host.example [192.0.2.7] plaintext x [6.6.6.6] PLAIN SASL(-13): authentication failure: checkpass failed"), "192.0.2.7")],
    );
    assert_misses(
        &f,
        &[cy(
            "cyrus/imap",
            "x y [6.6.6.6] plaintext bob SASL(-13): authentication failure",
        )],
    );
}

// ---------------------------------------------------------------- courier

#[test]
fn courier_auth_matches_login_failed_and_takes_the_last_ip_field() {
    let f = filter("courier-auth");
    assert_hits(
        &f,
        &[
            (format!("{T} imapd: LOGIN FAILED, user=bob@example.com, ip=[::ffff:192.0.2.7]"), "192.0.2.7"),
            (format!("{T} pop3d-ssl: LOGIN FAILED, user=bob, ip=[2001:db8::7], port=[4711]"), "2001:db8::7"),
            (format!("{T} imapd-ssl: LOGIN FAILED, method=PLAIN, ip=[::ffff:192.0.2.7]"), "192.0.2.7"),
            (format!("{T} courierpop3login: LOGIN FAILED, user=x, ip=[::ffff:192.0.2.7]"), "192.0.2.7"),
            (format!("{ISO} imapd[12]: LOGIN FAILED, user=x, ip=[192.0.2.7]"), "192.0.2.7"),
            // The user name is the client's.
            (format!("{T} imapd: LOGIN FAILED, user=x, ip=[6.6.6.6], ip=[::ffff:192.0.2.7]"), "192.0.2.7"),
            (format!("{T} imapd: LOGIN FAILED, user=x, ip=[6.6.6.6], port=[1], ip=[::ffff:192.0.2.7], port=[4711]"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!(
                "{T} imapd: LOGIN, user=bob, ip=[::ffff:192.0.2.7], port=[4711], protocol=IMAP"
            ),
            format!("{T} imapd: LOGOUT, user=bob, ip=[::ffff:192.0.2.7], headers=0, body=0"),
            format!("{T} imapd: LOGIN FAILED, user=x, ip=[::ffff:192.0.2.7] x"),
            format!("{T} sshd[1]: imapd: LOGIN FAILED, user=x, ip=[::ffff:192.0.2.7]"),
        ],
    );
}

// ---------------------------------------------------------------- exim

#[test]
fn exim_matches_auth_relay_unknown_user_and_protocol_abuse() {
    let f = filter("exim");
    let d = "2024-03-05 16:01:34";
    assert_hits(
        &f,
        &[
            (format!("{d} dovecot_plain authenticator failed for (User) [192.0.2.7]:4711 I=[198.51.100.1]:587: 535 Incorrect authentication data (set_id=bob@example.com)"), "192.0.2.7"),
            (format!("{d} [4711] login authenticator failed for host.example (x) [2001:db8::7]: 535 Incorrect authentication data"), "2001:db8::7"),
            (format!("{d} plain authenticator failed for ([192.0.2.99]) [192.0.2.7]: 535 Incorrect authentication data: 1 Time(s)"), "192.0.2.7"),
            (format!("{d} 1rBCDe-000AbC-2x login authenticator failed for h.example [::ffff:192.0.2.8]:4711: 535 Incorrect authentication data"), "192.0.2.8"),
            (format!("{d} H=(helo.example) [192.0.2.7]:4711 I=[198.51.100.1]:25 F=<a@example.net> rejected RCPT <b@example.org>: relay not permitted"), "192.0.2.7"),
            (format!("{d} [99] H=host.example [192.0.2.7] F=<a@example.net> rejected RCPT <nobody@example.com>: Unknown user"), "192.0.2.7"),
            (format!("{d} SMTP protocol error in \"AUTH LOGIN\" H=(x) [192.0.2.7]:4711 I=[198.51.100.1]:587 AUTH command used when not advertised"), "192.0.2.7"),
            (format!("{d} SMTP protocol error in \"AUTH LOGIN\" H=(x) [2001:db8::7] AUTH command used when not advertised"), "2001:db8::7"),
            (format!("{d} [5] SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.7]:4711 I=[198.51.100.1]:25 input=\"GET / HTTP/1.1\""), "192.0.2.7"),
            (format!("{T} exim[4711]: login authenticator failed for (x) [192.0.2.7]: 535 Incorrect authentication data"), "192.0.2.7"),
            ("2024-03-05 16:01:34 mx1 exim[4711]: cram_md5 authenticator failed for h.example (mail) [192.0.2.7]: 535 Incorrect authentication data (set_id=carol)".to_string(), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!("{d} login authenticator failed for (x) [192.0.2.7]: 435 Unable to authenticate at present"),
            format!("{d} H=h.example [192.0.2.7] sender verify fail for <x@example.net>: Unrouteable address"),
            format!("{d} SMTP call from [192.0.2.7] dropped: too many syntax or protocol errors (last command was \"AUTH LOGIN\")"),
            format!("{d} no MAIL in SMTP connection from [192.0.2.7] I=[198.51.100.1]:25 D=0s"),
            format!("{d} H=(x) [192.0.2.7] F=<a@example.net> rejected RCPT <b@example.org>: greylisted"),
            format!("{d} 1rBCDe-000AbC-2x <= a@example.net H=h.example [192.0.2.7] P=esmtps S=1234"),
        ],
    );
}

#[test]
fn exim_helo_sender_recipient_and_command_cannot_supply_the_address() {
    let f = filter("exim");
    let d = "2024-03-05 16:01:34";
    assert_hits(
        &f,
        &[
            (format!("{d} login authenticator failed for ([6.6.6.6]) [192.0.2.7]: 535 Incorrect authentication data (set_id=for (x) [6.6.6.6]: 535 )"), "192.0.2.7"),
            (format!("{d} H=([6.6.6.6]) [192.0.2.7] F=<x@[6.6.6.6]> rejected RCPT <H=[6.6.6.6]>: relay not permitted"), "192.0.2.7"),
            (format!("{d} SMTP protocol error in \"AUTH LOGIN H=(x) [6.6.6.6] AUTH command used when not advertised\" H=(x) [192.0.2.7]:4711 I=[198.51.100.1]:587 AUTH command used when not advertised"), "192.0.2.7"),
            (format!("{d} SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.7]:4711 I=[198.51.100.1]:25 input=\"H=[6.6.6.6]\""), "192.0.2.7"),
        ],
    );
    // A HELO holding a fake host field (spaces) is not Exim's; no match.
    assert_misses(
        &f,
        &[format!("{d} login authenticator failed for (x) [6.6.6.6] (y) [192.0.2.7]: 535 Incorrect authentication data")],
    );
}

// ---------------------------------------------------------------- sshd

#[test]
fn sshd_aggressive_adds_preauth_noise_to_sshd() {
    let normal = filter("sshd");
    let f = filter("sshd-aggressive");
    let s = |msg: &str| format!("{T} sshd[4711]: {msg}");
    // Everything sshd counts, aggressive counts.
    let shared = [
        (s("Failed password for root from 192.0.2.7 port 22 ssh2"), "192.0.2.7"),
        (s("Invalid user admin from 2001:db8::7 port 4711"), "2001:db8::7"),
        (s("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7  user=root"), "192.0.2.7"),
        (s("Connection closed by authenticating user root 192.0.2.7 port 1 [preauth]"), "192.0.2.7"),
    ];
    assert_hits(&normal, &shared);
    assert_hits(&f, &shared);
    let extra = [
        (s("Did not receive identification string from 192.0.2.7 port 4711"), "192.0.2.7"),
        (s("Did not receive identification string from 192.0.2.7"), "192.0.2.7"),
        (s("banner exchange: Connection from 192.0.2.7 port 4711: invalid format"), "192.0.2.7"),
        (s("error: kex_exchange_identification: Connection from 2001:db8::7 port 4711: could not read protocol version"), "2001:db8::7"),
        (s("Bad protocol version identification 'GET / HTTP/1.1' from 192.0.2.7 port 4711"), "192.0.2.7"),
        (s("Unable to negotiate with 192.0.2.7 port 4711: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]"), "192.0.2.7"),
        (s("Unable to negotiate with ::ffff:192.0.2.8 port 4711: no matching host key type found. Their offer: ssh-dss [preauth]"), "192.0.2.8"),
        (s("Connection closed by 192.0.2.7 port 4711 [preauth]"), "192.0.2.7"),
        (s("Connection reset by 2001:db8::7 port 4711 [preauth]"), "2001:db8::7"),
        (s("Disconnected from 192.0.2.7 port 4711 [preauth]"), "192.0.2.7"),
        (s("Received disconnect from 192.0.2.7: 11: Bye Bye [preauth]"), "192.0.2.7"),
        (s("error: Received disconnect from 2001:db8::7: 3: Client gave up [preauth]"), "2001:db8::7"),
        (s("error: maximum authentication attempts exceeded for root from 192.0.2.7 port 4711 ssh2 [preauth]"), "192.0.2.7"),
        (s("error: maximum authentication attempts exceeded for invalid user x from 192.0.2.7 port 4711 ssh2 [preauth]"), "192.0.2.7"),
        (s("fatal: Timeout before authentication for 192.0.2.7 port 4711"), "192.0.2.7"),
        (s("ssh_dispatch_run_fatal: Connection from 192.0.2.7 port 4711: message authentication code incorrect [preauth]"), "192.0.2.7"),
        (format!("{T} sshd-session[1]: Connection closed by 192.0.2.7 port 4711 [preauth]"), "192.0.2.7"),
    ];
    assert_hits(&f, &extra);
    assert_misses(
        &normal,
        &extra.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(),
    );
    assert_misses(
        &f,
        &[
            s("Accepted publickey for root from 192.0.2.7 port 4711 ssh2: ED25519 SHA256:x"),
            s("Failed publickey for root from 192.0.2.7 port 4711 ssh2: ED25519 SHA256:x"),
            s("Connection closed by invalid user x 192.0.2.7 port 4711 [preauth]"),
            s("Received disconnect from 192.0.2.7 port 4711:11: disconnected by user"),
            // Counted from the `Disconnected from` line that follows it.
            s("Received disconnect from 192.0.2.7 port 4711:11: Bye Bye [preauth]"),
            s("Disconnected from user root 192.0.2.7 port 4711"),
            s("Connection closed by 192.0.2.7 port 4711"),
            s("Server listening on :: port 22."),
        ],
    );
}

#[test]
fn sshd_aggressive_client_text_cannot_supply_the_address() {
    let f = filter("sshd-aggressive");
    let s = |msg: &str| format!("{T} sshd[4711]: {msg}");
    assert_hits(
        &f,
        &[
            (s("Bad protocol version identification 'x' from 6.6.6.6 port 1' from 192.0.2.7 port 4711"), "192.0.2.7"),
            (s("Unable to negotiate with 192.0.2.7 port 4711: no matching cipher found. Their offer: from 6.6.6.6 port 1 [preauth]"), "192.0.2.7"),
            (s("Received disconnect from 192.0.2.7: 11: from 6.6.6.6: 1: [preauth] [preauth]"), "192.0.2.7"),
            (s("error: maximum authentication attempts exceeded for x from 6.6.6.6 port 1 ssh2 [preauth] from 192.0.2.7 port 4711 ssh2 [preauth]"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[s(
            "Bad protocol version identification 'from 6.6.6.6 port 1'",
        )],
    );
}

#[test]
fn sshd_aggressive_counts_a_preauth_disconnect_once() {
    let s = |msg: &str| format!("{T} sshd[4711]: {msg}");
    let session = [
        s("Connection from 192.0.2.7 port 4711 on 198.51.100.1 port 22 rdomain \"\""),
        s("Received disconnect from 192.0.2.7 port 4711:11: Bye Bye [preauth]"),
        s("Disconnected from 192.0.2.7 port 4711 [preauth]"),
    ];
    assert_eq!(
        failures("sshd-aggressive", &session),
        [("192.0.2.7".to_string(), 1)]
    );
    let guessed = [
        s("Failed password for root from 192.0.2.8 port 4711 ssh2"),
        s("Received disconnect from 192.0.2.8 port 4711:11: Bye [preauth]"),
        s("Disconnected from authenticating user root 192.0.2.8 port 4711 [preauth]"),
    ];
    assert_eq!(
        failures("sshd-aggressive", &guessed),
        [("192.0.2.8".to_string(), 2)]
    );
    assert_eq!(failures("sshd", &guessed), [("192.0.2.8".to_string(), 2)]);
}

// ---------------------------------------------------------------- web

const AP: &str = "[Tue Mar 05 16:01:34.123456 2024]";

#[test]
fn kopano_webapp_matches_apache_error_log_forms() {
    let f = filter("kopano-webapp");
    let msg = "Kopano WebApp user: bob: authentication failure at MAPI";
    assert_hits(
        &f,
        &[
            (format!("{AP} [php:notice] [pid 4711] [client 192.0.2.7:51234] {msg}"), "192.0.2.7"),
            (format!("{AP} [php7:notice] [pid 4711:tid 140] [client [2001:db8::7]:51234] Kopano WebApp user: bob authentication failure at MAPI, referer: https://mail.example.com/webapp/"), "2001:db8::7"),
            (format!("{AP} [:error] [pid 4711] [client 2001:db8::7:51234] {msg}"), "2001:db8::7"),
            (format!("{AP} [php:notice] [pid 4711] [client ::ffff:192.0.2.8:51234] {msg}"), "192.0.2.8"),
            (format!("{AP} [proxy_fcgi:error] [pid 4711:tid 140] [client 192.0.2.7:51234] AH01071: Got error 'PHP message: {msg}'"), "192.0.2.7"),
            (format!("{T} apache2[4711]: [php:notice] [pid 4711] [client 192.0.2.7:51234] {msg}"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!("{AP} [php:notice] [pid 4711] [client 192.0.2.7:51234] Kopano WebApp user: bob: logged in"),
            format!("{AP} [php:notice] [pid 4711] [client 192.0.2.7] {msg}"),
            format!("[05-Mar-2024 16:01:34 UTC] {msg}"),
            format!("{AP} [php:notice] [pid 4711] {msg} [client 192.0.2.7:51234]"),
        ],
    );
    // The user name and referer are the client's.
    assert_hits(
        &f,
        &[
            (format!("{AP} [php:notice] [pid 4711] [client 192.0.2.7:51234] Kopano WebApp user: [client 6.6.6.6:1] from 6.6.6.6: authentication failure at MAPI, referer: [client 6.6.6.6:1]"), "192.0.2.7"),
        ],
    );
}

#[test]
fn apache_auth_matches_basic_and_digest_failures() {
    let f = filter("apache-auth");
    let e = |module: &str, client: &str, msg: &str| {
        format!("{AP} [{module}:error] [pid 4711:tid 140] [client {client}] {msg}")
    };
    assert_hits(
        &f,
        &[
            (e("auth_basic", "192.0.2.7:51234", "AH01617: user bob: authentication failure for \"/private/\": Password Mismatch"), "192.0.2.7"),
            (e("auth_basic", "192.0.2.7:51234", "AH01618: user bob not found: /private/"), "192.0.2.7"),
            (e("auth_basic", "[2001:db8::7]:51234", "AH01614: client used wrong authentication scheme: /private/"), "2001:db8::7"),
            (e("auth_digest", "2001:db8::7:51234", "AH01790: user `bob' in realm `private' not found: /private/"), "2001:db8::7"),
            (e("auth_digest", "::ffff:192.0.2.8:51234", "AH01792: user bob: password mismatch: /private/"), "192.0.2.8"),
            (e("auth_digest", "192.0.2.7:51234", "AH01788: realm mismatch - got `x' but expected `private'"), "192.0.2.7"),
            (e("auth_digest", "192.0.2.7:51234", "AH01777: invalid nonce abc received - user attempted time travel"), "192.0.2.7"),
            (format!("{AP} [auth_basic:error] [pid 4711] [client 192.0.2.7:51234] AH01618: user bob not found: /private/, referer: https://example.com/"), "192.0.2.7"),
            (format!("{T} httpd[4711]: [auth_basic:error] [pid 4711] [client 192.0.2.7:51234] AH01618: user bob not found: /"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            e(
                "authz_core",
                "192.0.2.7:51234",
                "AH01630: client denied by server configuration: /var/www/private",
            ),
            e(
                "authz_core",
                "192.0.2.7:51234",
                "AH01631: user bob: authorization failure for \"/admin/\": ",
            ),
            e(
                "ssl",
                "192.0.2.7:51234",
                "AH02033: No hostname was provided via SNI for a name based virtual host",
            ),
            "[Thu Jul 11 01:21:41 2013] [error] [client 192.0.2.7] user bob not found: /"
                .to_string(),
        ],
    );
    // URL and user name come after the fixed client field.
    assert_hits(
        &f,
        &[(
            e(
                "auth_basic",
                "192.0.2.7:51234",
                "AH01618: user [client 6.6.6.6:1] not found: /[client 6.6.6.6:1]",
            ),
            "192.0.2.7",
        )],
    );
    assert_misses(
        &f,
        &[e("core", "192.0.2.7:51234", "AH00126: Invalid URI in request GET /x [client 6.6.6.6:1] AH01618: user bob not found: /")],
    );
}

#[test]
fn nginx_http_auth_matches_and_takes_nginx_client_field() {
    let f = filter("nginx-http-auth");
    let n = "2024/03/05 16:01:34 [error] 4711#4711: *12";
    assert_hits(
        &f,
        &[
            (format!("{n} user \"bob\": password mismatch, client: 192.0.2.7, server: www.example.com, request: \"GET /private/ HTTP/1.1\", host: \"www.example.com\""), "192.0.2.7"),
            (format!("{n} user \"x\" was not found in \"/etc/nginx/htpasswd\", client: 2001:db8::7, server: , request: \"GET / HTTP/2.0\", host: \"example.com\""), "2001:db8::7"),
            (format!("{n} user \"x y\": password mismatch, client: ::ffff:192.0.2.8, server: a, request: \"GET / HTTP/1.1\""), "192.0.2.8"),
            (format!("{T} nginx: {n} user \"bob\": password mismatch, client: 192.0.2.7, server: a"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!("{n} no user/password was provided for basic authentication, client: 192.0.2.7, server: a, request: \"GET / HTTP/1.1\""),
            format!("{n} open() \"/var/www/x\" failed (2: No such file or directory), client: 192.0.2.7, server: a"),
            format!("{n} user \"bob\": password mismatch, client: 999.0.2.7, server: a"),
        ],
    );
    // The user name cannot hold a colon (Basic credentials split at the
    // first one), so it cannot hold a `client: ` field; request and Host
    // header come after nginx's field.
    assert_hits(
        &f,
        &[(format!("{n} user \"bob\": password mismatch, client: 192.0.2.7, server: a, request: \"GET /?, client: 6.6.6.6, server: HTTP/1.1\", host: \"\", client: 6.6.6.6, server: \""), "192.0.2.7")],
    );
    assert_misses(
        &f,
        &[format!("{n} user \"x\", client: 6.6.6.6, server: \": password mismatch, client: 192.0.2.7, server: a")],
    );
}

#[test]
fn roundcube_auth_matches_imap_login_failures() {
    let f = filter("roundcube-auth");
    let tail = "AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/program/lib/Roundcube/rcube_imap.php on line 211 (POST /?_task=login&_action=login)";
    let rc = "[05-Mar-2024 16:01:34 +0100]: <ab12cd34>";
    assert_hits(
        &f,
        &[
            (format!("{rc} IMAP Error: Login failed for bob@example.com against imap.example.com from 192.0.2.7. {tail}"), "192.0.2.7"),
            (format!("{T} roundcube[4711]: <ab12cd34> IMAP Error: Login failed for bob from 2001:db8::7. LOGIN: Authentication failed. in /usr/share/roundcube/rcube_imap.php on line 200 (POST /mail/?_task=login&_action=login)"), "2001:db8::7"),
            (format!("{rc} IMAP Error: Login failed for bob from 192.0.2.7(X-Real-IP: 198.51.100.3,X-Forwarded-For: 198.51.100.4). {tail}"), "192.0.2.7"),
            (format!("[05-Mar-2024 16:01:34 Europe/Berlin]: IMAP Error: Login failed for bob against h from ::ffff:192.0.2.8. {tail}"), "192.0.2.8"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!("{rc} Failed login for bob from 192.0.2.7 in session abc (error: 0)"),
            format!("{rc} IMAP Error: Login failed for bob from 192.0.2.7. {tail} trailing text"),
            format!("{rc} IMAP Error: Empty startup greeting (localhost:143) in /usr/share/roundcube/rcube_imap.php on line 1 (POST /?_task=login)"),
            format!("{rc} DB Error: Login failed for bob from 192.0.2.7. {tail}"),
        ],
    );
    // User name, forwarding headers and URI are the client's.
    for (user, xff, uri) in [
        ("x from 6.6.6.6. y", "", "/?_task=login"),
        (
            "x from 6.6.6.6. LOGIN: z in /a.php on line 1 (POST /)",
            "",
            "/?_task=login",
        ),
        ("x (X-Real-IP", "", "/?_task=login"),
        (
            "x",
            "(X-Real-IP: a,X-Forwarded-For: b from 6.6.6.6)",
            "/?_task=login",
        ),
        (
            "x",
            "(X-Forwarded-For: 6.6.6.6, 198.51.100.4)",
            "/?from=6.6.6.6.",
        ),
    ] {
        let line = format!("{rc} IMAP Error: Login failed for {user} against h from 192.0.2.7{xff}. AUTHENTICATE PLAIN: Authentication failed. in /r/rcube_imap.php on line 1 (POST {uri})");
        assert_eq!(host(&f, &line).as_deref(), Some("192.0.2.7"), "{line}");
    }
    // Forged headers or user names holding an address claim: no match
    // rather than a wrong ban.
    let user_claim = format!("{rc} IMAP Error: Login failed for x from 6.6.6.6(X-Real-IP:  against h from 192.0.2.7(X-Real-IP: a,X-Forwarded-For: b). AUTHENTICATE PLAIN: Authentication failed. in /r/rcube_imap.php on line 1 (POST /)");
    assert_eq!(host(&f, &user_claim), None, "{user_claim}");
    for xff in [
        "(X-Forwarded-For: from 6.6.6.6(X-Real-IP: z)",
        "(X-Forwarded-For: x from 6.6.6.6(X-Real-IP: z)",
        "(X-Forwarded-For: x). from 6.6.6.6. y)",
    ] {
        let line = format!("{rc} IMAP Error: Login failed for x from 6.6.6.6. against h from 192.0.2.7{xff}. AUTHENTICATE PLAIN: Authentication failed. in /r/rcube_imap.php on line 1 (POST /)");
        assert_eq!(host(&f, &line), None, "{line}");
    }
}

#[test]
fn sogo_auth_takes_the_address_the_proxy_added() {
    let f = filter("sogo-auth");
    let s = |from: &str, user: &str| {
        format!("{T} sogod [4711]: SOGoRootPage Login from '{from}' for user '{user}' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0")
    };
    assert_hits(
        &f,
        &[
            (s("192.0.2.7", "bob"), "192.0.2.7"),
            (s("2001:db8::7", "bob"), "2001:db8::7"),
            (s("::ffff:192.0.2.8", "bob"), "192.0.2.8"),
            (s("198.51.100.9, 192.0.2.7", "bob"), "192.0.2.7"),
            (s("6.6.6.6, 5.5.5.5, 192.0.2.7", "bob"), "192.0.2.7"),
            ("Mar 05 16:01:34 sogod [4711]: SOGoRootPage Login from '192.0.2.7' for user 'bob' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0".to_string(), "192.0.2.7"),
            (format!("{ISO} sogod[4711]: SOGoRootPage Login from '192.0.2.7' for user 'bob' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0"), "192.0.2.7"),
            // Quotes in the client's own list: the proxy's element is still last.
            (s("6.6.6.6', 192.0.2.7", "bob"), "192.0.2.7"),
            (s("x' 6.6.6.6, 192.0.2.7", "bob"), "192.0.2.7"),
        ],
    );
    assert_misses(
        &f,
        &[
            format!("{T} sogod [4711]: SOGoRootPage successful login from '192.0.2.7' for user 'bob' - expire = -1  grace = -1"),
            format!("{T} sogod [4711]: <0x0xb8537990[LDAPSource]> <NSException: 0xb87c3008> NAME:LDAPException REASON:operation bind failed: Invalid credentials (0x31) INFO:{{login = \"uid=bob,ou=users\"; }}"),
            "192.0.2.7 - - [05/Mar/2024:16:01:34 GMT] \"POST /SOGo/connect HTTP/1.1\" 403 34/38 0.311 - - 2M".to_string(),
            // SOGo's separator twice, from the list or from the user name:
            // the split is ambiguous, so unmatched rather than a wrong ban.
            s("x' for user 'y', 6.6.6.6", "bob"),
            s("192.0.2.7", "x' for user 'y', 6.6.6.6' for user 'z"),
            s("6.6.6.6' for user 'x, 192.0.2.7", "bob"),
        ],
    );
}

// ---------------------------------------------------------------- all

#[test]
fn ipv4_mapped_and_invalid_addresses_in_every_filter() {
    // One known-good line per filter: mapped IPv4 comes out as IPv4, an
    // impossible address means no match.
    let cases: [(&str, String); 15] = [
        ("apache-auth", format!("{AP} [auth_basic:error] [pid 1] [client ADDR:51234] AH01618: user bob not found: /")),
        ("courier-auth", format!("{T} imapd: LOGIN FAILED, user=bob, ip=[ADDR]")),
        ("cyrus-imap", format!("{T} cyrus/imap[1]: badlogin: h.example [ADDR] plaintext bob SASL(-13): authentication failure")),
        ("dovecot", format!("{T} dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<x>, method=PLAIN, rip=ADDR, lip=198.51.100.1")),
        ("exim", "2024-03-05 16:01:34 login authenticator failed for (x) [ADDR]: 535 Incorrect authentication data".to_string()),
        ("kopano-webapp", format!("{AP} [php:notice] [pid 1] [client ADDR:51234] Kopano WebApp user: bob: authentication failure at MAPI")),
        ("nginx-http-auth", "2024/03/05 16:01:34 [error] 1#1: *1 user \"bob\": password mismatch, client: ADDR, server: a".to_string()),
        ("postfix", pf("smtpd", "disconnect from unknown[ADDR] ehlo=1 auth=0/1 commands=1/2")),
        ("postfix-sasl", pf("smtpd", "warning: unknown[ADDR]: SASL LOGIN authentication failed: x")),
        ("roundcube-auth", "[05-Mar-2024 16:01:34 +0100]: IMAP Error: Login failed for bob from ADDR. LOGIN: failed. in /r.php on line 1 (POST /)".to_string()),
        ("sasl", pf("smtpd", "warning: unknown[ADDR]: SASL LOGIN authentication failed: x")),
        ("sogo-auth", format!("{T} sogod [1]: SOGoRootPage Login from 'ADDR' for user 'bob' might not have worked - x")),
        ("sshd", format!("{T} sshd[1]: Failed password for root from ADDR port 22 ssh2")),
        ("sshd-aggressive", format!("{T} sshd[1]: Connection closed by ADDR port 22 [preauth]")),
        ("zimbra-submission", pf("submission/smtpd", "warning: unknown[ADDR]: SASL LOGIN authentication failed: x")),
    ];
    for (name, line) in &cases {
        let f = filter(name);
        for (addr, want) in [
            ("192.0.2.7", Some("192.0.2.7")),
            ("::ffff:192.0.2.8", Some("192.0.2.8")),
            ("2001:db8:0:0:0:0:0:7", Some("2001:db8::7")),
            ("999.0.2.7", None),
            ("192.0.2", None),
            ("2001:db8:::7", None),
        ] {
            let l = line.replace("ADDR", addr);
            assert_eq!(host(&f, &l).as_deref(), want, "{name}: {l}");
        }
    }
}

// ------------------------------------------------- fail2ban's sample logs

/// fail2ban's sample logs, from the system's fail2ban package (read at test
/// time, never copied into this repository).
const CORPUS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// A sample log line with fail2ban's annotation: whether its filter (in the
/// mode the file's section sets) counts it, and the host it takes.
struct Sample {
    line: String,
    matched: bool,
    host: Option<IpAddr>,
    mode: String,
}

fn corpus(file: &str) -> Vec<Sample> {
    let path = format!("{CORPUS}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e}; install fail2ban (apt-get install fail2ban)")
    });
    let mut out = Vec::new();
    let mut json: Option<&str> = None;
    let mut mode = String::new();
    for line in text.lines() {
        if let Some(opts) = line.strip_prefix("# filterOptions:") {
            mode = opts
                .split(r#""mode": ""#)
                .nth(1)
                .and_then(|m| m.split('"').next())
                .unwrap_or("")
                .to_string();
        } else if let Some(j) = line.strip_prefix("# failJSON:") {
            json = Some(j);
        } else if !line.starts_with('#') && !line.is_empty() {
            let Some(j) = json.take() else { continue };
            let host = j
                .split(r#""host": ""#)
                .nth(1)
                .and_then(|h| h.split('"').next())
                .and_then(|h| h.parse::<IpAddr>().ok())
                .map(|a| a.to_canonical());
            out.push(Sample {
                line: line.to_string(),
                matched: j.contains(r#""match": true"#),
                host,
                mode: mode.clone(),
            });
        }
    }
    out
}

/// How our filter reads fail2ban's samples: every line we count, fail2ban
/// counts with the same address, except lines containing one of the
/// `deliberate` needles (each a documented choice). Returns (lines both
/// count with the same address, lines fail2ban counts in `modes`).
#[track_caller]
fn agreement(name: &str, file: &str, modes: &[&str], deliberate: &[&str]) -> (usize, usize) {
    let f = filter(name);
    let samples = corpus(file);
    let (mut both, mut theirs) = (0, 0);
    for s in &samples {
        let in_mode = modes.contains(&s.mode.as_str());
        let ours = f.find(&s.line);
        if in_mode && s.matched {
            theirs += 1;
        }
        match ours {
            Some(a) if s.matched && s.host == Some(a) => both += usize::from(in_mode),
            Some(a) => assert!(
                deliberate.iter().any(|d| s.line.contains(d)),
                "{name}: we take {a} from a line fail2ban reads as match={} host={:?}: {}",
                s.matched,
                s.host,
                s.line
            ),
            None => {}
        }
    }
    eprintln!("{name} vs fail2ban {file} {modes:?}: {both} of {theirs} lines agree");
    (both, theirs)
}

// Each test below: every line we count, fail2ban counts with the same
// address (or the difference is a documented choice, named with its
// reason), and at least the lines we agree on today still agree. The
// counts are printed (`--nocapture`); fail2ban counts more where our
// filters deliberately do not (see each filter's header).

#[test]
fn postfix_agrees_with_fail2ban_samples() {
    // fail2ban lists this line under a mode that does not count pipelining.
    let (both, _) = agreement(
        "postfix",
        "postfix",
        &["normal", "errors", "rbl", "auth", "aggressive", "ddos"],
        &["improper command pipelining after AUTH"],
    );
    assert!(both >= 16, "{both}");
}

#[test]
fn zimbra_submission_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("zimbra-submission", "postfix", &["auth"], &[]);
    assert!(both >= 3, "{both}");
}

#[test]
fn sasl_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("sasl", "postfix", &["auth"], &[]);
    assert!(both >= 10, "{both}");
    let (both, _) = agreement("sasl", "sendmail-auth", &[""], &[]);
    assert!(both >= 7, "{both}");
}

#[test]
fn dovecot_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("dovecot", "dovecot", &[""], &[]);
    assert!(both >= 20, "{both}");
}

#[test]
fn cyrus_imap_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("cyrus-imap", "cyrus-imap", &[""], &[]);
    assert!(both >= 9, "{both}");
}

#[test]
fn courier_auth_agrees_with_fail2ban_samples() {
    let (both, theirs) = agreement("courier-auth", "courier-auth", &[""], &[]);
    assert_eq!(both, theirs);
    assert!(both >= 6, "{both}");
}

#[test]
fn exim_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("exim", "exim", &["", "aggressive"], &[]);
    assert!(both >= 20, "{both}");
}

#[test]
fn sshd_aggressive_agrees_with_fail2ban_samples() {
    let (both, _) = agreement(
        "sshd-aggressive",
        "sshd",
        &["", "aggressive", "ddos", "extra"],
        &[
            // As in sshd: stacked-PAM pam_unix lines, and the address is the
            // last `from ADDR port N ssh2` (the user name comes before it).
            "pam_unix(sshd:auth): authentication failure;",
            "from 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2",
            // Pre-auth disconnects are what this mode adds; fail2ban tests
            // these two only as parts of other sequences.
            "Disconnected from authenticating user admin 192.0.2.6 port 33553",
            "Connection closed by 192.0.2.111 [preauth]",
        ],
    );
    // fail2ban also counts `Received disconnect from ADDR port N:..`,
    // which we count from the `Disconnected from` line after it.
    assert!(both >= 42, "{both}");
}

#[test]
fn apache_auth_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("apache-auth", "apache-auth", &["", "aggressive"], &[]);
    assert!(both >= 10, "{both}");
}

#[test]
fn nginx_http_auth_agrees_with_fail2ban_samples() {
    // A Basic user name cannot contain `:`, so `user "test": password
    // mismatch, client: 127.0.0.1` is nginx's own field, not a forged one.
    let (both, _) = agreement(
        "nginx-http-auth",
        "nginx-http-auth",
        &["normal"],
        &[r#"user "test": password mismatch, client: 127.0.0.1"#],
    );
    assert!(both >= 5, "{both}");
}

#[test]
fn roundcube_auth_agrees_with_fail2ban_samples() {
    let (both, _) = agreement("roundcube-auth", "roundcube-auth", &[""], &[]);
    assert!(both >= 12, "{both}");
}

#[test]
fn sogo_auth_agrees_with_fail2ban_samples() {
    // The last X-Forwarded-For element is the one the proxy added; the
    // first is whatever the client claimed.
    let (both, _) = agreement("sogo-auth", "sogo-auth", &[""], &["'192.0.2.16, 10.0.0.1'"]);
    assert!(both >= 5, "{both}");
}

/// The matcher's fast paths (literal gates, text alternations, captures cut
/// at a literal) say exactly what each filter's regexes say, on every line
/// of every sample log fail2ban ships, for every built-in filter.
#[test]
fn the_matcher_agrees_with_the_plain_regexes_on_every_sample_line() {
    let mut lines: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(CORPUS).expect("install fail2ban (apt-get install fail2ban)") {
        let path = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            lines.extend(
                text.lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                    .map(String::from),
            );
        }
    }
    assert!(lines.len() > 1000, "{} sample lines", lines.len());
    let mut hits = 0;
    for name in library_names() {
        let f = Arc::new(filter(name));
        let m = Matcher::new(vec![(0, Arc::clone(&f))]);
        for line in &lines {
            let mut got: Vec<IpAddr> = Vec::new();
            m.scan(line, |_, a| got.push(a));
            let want: Vec<IpAddr> = f
                .find_counted(line)
                .map(|(a, n)| vec![a; n as usize])
                .unwrap_or_default();
            assert_eq!(got, want, "{name}: {line}");
            hits += got.len();
            // `nftjail test`'s way: the fast path's hit, then the verdict.
            let mut fast = None;
            m.explain_fast(line, |_, regex, addr, count, ignored_by| {
                fast = Some(f.verdict_of(line, regex, (addr, count), ignored_by));
            });
            assert_eq!(fast, f.explain(line), "{name}: {line}");
        }
    }
    eprintln!(
        "{} lines × {} filters, {hits} hits, all agreeing",
        lines.len(),
        library_names().len()
    );
    assert!(
        hits > 150,
        "only {hits} hits: the corpus did not exercise the filters"
    );
}
