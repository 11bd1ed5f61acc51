#![allow(clippy::unwrap_used)]
//! The built-in filters on real line forms: what must match (and which
//! address it yields), what must not, and log injection: text the attacker
//! controls (user names, host names) must never supply the address.

use std::net::IpAddr;

use nftjail::filter::{library, library_names, Filter, FilterDef};

fn filter(name: &str) -> Filter {
    let text = library(name).unwrap_or_else(|| panic!("no built-in filter {name}"));
    Filter::compile(&FilterDef::parse(text, name).unwrap(), name).unwrap()
}

fn host(f: &Filter, line: &str) -> Option<String> {
    f.find(line).map(|a: IpAddr| a.to_string())
}

fn assert_hits(f: &Filter, cases: &[(&str, &str)]) {
    for (line, want) in cases {
        assert_eq!(
            host(f, line).as_deref(),
            Some(*want),
            "should match: {line}"
        );
    }
}

fn assert_misses(f: &Filter, lines: &[&str]) {
    for line in lines {
        assert_eq!(host(f, line), None, "should not match: {line}");
    }
}

#[test]
fn every_library_filter_compiles() {
    for name in library_names() {
        filter(name);
    }
}

#[test]
fn postfix_sasl_matches_every_smtpd_service_and_mechanism() {
    let f = filter("postfix-sasl");
    assert_hits(
        &f,
        &[
            ("Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[202.5.53.69]: SASL LOGIN authentication failed: authentication failure", "202.5.53.69"),
            ("Mar  5 16:01:34 mx1 postfix/smtpd[10686]: warning: unknown[202.5.53.69]: SASL PLAIN authentication failed: authentication failure", "202.5.53.69"),
            ("Mar  5 16:01:34 mx1 postfix/smtps/smtpd[7]: warning: unknown[202.5.53.69]: SASL CRAM-MD5 authentication failed: authentication failure", "202.5.53.69"),
            ("Mar 15 06:01:34 mx1 postfix-out/smtpd[7]: warning: mail.example.com[198.51.100.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "198.51.100.4"),
            ("Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[2001:db8::25]: SASL LOGIN authentication failed: authentication failure", "2001:db8::25"),
            ("Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[::ffff:203.0.113.9]: SASL LOGIN authentication failed: authentication failure", "203.0.113.9"),
            ("2024-03-05T16:01:34.123456+01:00 mx1 postfix/submission/smtpd[1]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: authentication failure", "203.0.113.9"),
            ("Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[203.0.113.9]: SASL SCRAM-SHA-256 authentication failed: authentication failure", "203.0.113.9"),
        ],
    );
    assert_misses(
        &f,
        &[
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: connect from unknown[203.0.113.9]",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: disconnect from unknown[203.0.113.9] ehlo=1 auth=0/1 quit=1 commands=2/3",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: 4F2C: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=bob",
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[999.1.1.1]: SASL LOGIN authentication failed: authentication failure",
            "Mar  5 16:01:34 mx1 dovecot: auth: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: x",
            "",
        ],
    );
}

#[test]
fn postfix_sasl_cannot_be_injected() {
    let f = filter("postfix-sasl");
    // A reverse-DNS name or a message that carries a fake client field.
    assert_misses(
        &f,
        &[
            "Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: non-SASL line mentions unknown[6.6.6.6]: SASL LOGIN authentication failed: x",
            "Mar  5 16:01:34 mx1 sshd[1]: Invalid user postfix/smtpd[1]: warning: unknown[6.6.6.6]: SASL LOGIN authentication failed: from 203.0.113.9 port 22",
            "Mar  5 16:01:34 mx1 postfix/cleanup[1]: 4F2C: reject: header Subject: Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[6.6.6.6]: SASL LOGIN authentication failed: x",
        ],
    );
    // The address is the one in the client field, whatever the reason text says.
    assert_hits(
        &f,
        &[("Mar  5 16:01:34 mx1 postfix/submission/smtpd[1]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: unknown[6.6.6.6] from 6.6.6.6", "203.0.113.9")],
    );
}

#[test]
fn sshd_matches_password_and_invalid_user_failures() {
    let f = filter("sshd");
    assert_hits(
        &f,
        &[
            ("Mar  5 16:01:34 host sshd[5]: Failed password for root from 198.51.100.1 port 4711 ssh2", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Failed password for invalid user admin from 198.51.100.1 port 4711 ssh2", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Invalid user admin from 198.51.100.1 port 4711", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Invalid user  from 2001:db8::5 port 4711", "2001:db8::5"),
            ("Mar  5 16:01:34 host sshd-session[5]: Failed password for root from 2001:db8::5 port 4711 ssh2", "2001:db8::5"),
            ("Mar  5 16:01:34 host sshd[5]: Failed publickey for root from 198.51.100.1 port 4711 ssh2: RSA SHA256:abcDEF123+/=", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.1  user=root", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Connection closed by authenticating user root 198.51.100.1 port 4711 [preauth]", "198.51.100.1"),
            ("2024-03-05T16:01:34Z host sshd[5]: Failed password for root from ::ffff:198.51.100.1 port 4711 ssh2", "198.51.100.1"),
        ],
    );
    assert_misses(
        &f,
        &[
            "Mar  5 16:01:34 host sshd[5]: Accepted password for root from 198.51.100.1 port 4711 ssh2",
            "Mar  5 16:01:34 host sshd[5]: Accepted publickey for root from 198.51.100.1 port 4711 ssh2: RSA SHA256:abc",
            "Mar  5 16:01:34 host sshd[5]: Disconnected from user root 198.51.100.1 port 4711",
            "Mar  5 16:01:34 host sshd[5]: Server listening on 0.0.0.0 port 22.",
            "Mar  5 16:01:34 host sshd[5]: Failed password for root from 1.2.3.999 port 4711 ssh2",
        ],
    );
}

#[test]
fn sshd_user_names_cannot_supply_the_address() {
    let f = filter("sshd");
    assert_hits(
        &f,
        &[
            ("Mar  5 16:01:34 host sshd[5]: Failed password for invalid user x from 6.6.6.6 port 1 ssh2 from 198.51.100.1 port 4711 ssh2", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Failed password for x from 6.6.6.6 port 1 from 198.51.100.1 port 4711 ssh2", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Invalid user a from 6.6.6.6 port 1 from 198.51.100.1 port 4711", "198.51.100.1"),
            ("Mar  5 16:01:34 host sshd[5]: Connection closed by authenticating user r 6.6.6.6 port 1 [preauth] 198.51.100.1 port 4711 [preauth]", "198.51.100.1"),
        ],
    );
    // A user name that tries to end the line early: the real tail does not fit, no match.
    assert_misses(
        &f,
        &["Mar  5 16:01:34 host sshd[5]: Failed password for x from 6.6.6.6 port 1 ssh2: RSA SHA256:x from 198.51.100.1 port 4711 ssh3"],
    );
    // A line written by another program does not count as sshd's.
    assert_misses(
        &f,
        &["Mar  5 16:01:34 host postfix/smtpd[1]: warning: sshd[5]: Failed password for root from 6.6.6.6 port 1 ssh2"],
    );
}

#[test]
fn hostile_lines_do_not_panic_or_match() {
    for name in library_names() {
        let f = filter(name);
        let huge = "A".repeat(1 << 20);
        let junk =
            String::from_utf8_lossy(&[0xff, 0x00, 0x1b, b'[', b'3', b'1', b'm', 0xfe]).into_owned();
        for line in [
            huge.as_str(),
            junk.as_str(),
            "\u{0}",
            "[",
            "<HOST>",
            "::::::::::::",
        ] {
            assert_eq!(f.find(line), None, "{name} on hostile input");
        }
    }
}
