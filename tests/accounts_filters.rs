#![allow(clippy::unwrap_used)]
//! The account a failure was against, as the daemon's matcher takes it
//! from real-looking lines of our filter library and from a fail2ban
//! filter file's `<F-USER>`: found where the line names it, bounded, one
//! clean line, and never the source of the address, however the client
//! shaped its user name.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use nftjail::filter::fail2ban::Fail2banFilter;
use nftjail::filter::{library, Filter, FilterDef};
use nftjail::matcher::Matcher;
use nftjail::message::Account;

fn ours(name: &str) -> Matcher {
    let def = FilterDef::parse(library(name).unwrap(), name).unwrap();
    Matcher::new(vec![(0, Arc::new(Filter::compile(&def, name).unwrap()))])
}

fn inline(regex: &str) -> Matcher {
    let def = FilterDef {
        description: String::new(),
        failregex: vec![regex.to_string()],
        ignoreregex: Vec::new(),
    };
    Matcher::new(vec![(0, Arc::new(Filter::compile(&def, "t").unwrap()))])
}

/// Each failure the matcher reports: address and account.
fn hits(m: &Matcher, line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    m.scan_accounts(line, |_, addr, account| {
        out.push((addr.to_string(), account.map(|a| a.to_string())));
    });
    // The plain scan finds the same addresses.
    let mut plain = Vec::new();
    m.scan(line, |_, addr| plain.push(addr.to_string()));
    assert_eq!(
        plain,
        out.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(),
        "{line}"
    );
    out
}

fn one(addr: &str, account: Option<&str>) -> Vec<(String, Option<String>)> {
    vec![(addr.to_string(), account.map(str::to_string))]
}

#[test]
fn postfix_sasl_username() {
    let m = ours("postfix-sasl");
    let head = "Mar  5 16:01:34 mx1 postfix/submission/smtpd[10686]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed:";
    assert_eq!(
        hits(
            &m,
            &format!("{head} authentication failure, sasl_username=alice@example.org")
        ),
        one("192.0.2.69", Some("alice@example.org"))
    );
    assert_eq!(
        hits(&m, &format!("{head} UGFzc3dvcmQ6")),
        one("192.0.2.69", None)
    );
    // A user name that imitates the client field and another username.
    assert_eq!(
        hits(
            &m,
            &format!("{head} authentication failure, sasl_username=x]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: y, sasl_username=eve")
        ),
        one("192.0.2.69", Some("x]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: y, sasl_username=eve"))
    );
    let z = ours("zimbra-submission");
    assert_eq!(
        hits(&z, "Mar  5 16:01:34 mail postfix/smtps/smtpd[4711]: warning: host.example[2001:db8::7]: SASL PLAIN authentication failed: authentication failure, sasl_username=user@example.com"),
        one("2001:db8::7", Some("user@example.com"))
    );
}

#[test]
fn dovecot_user() {
    let m = ours("dovecot");
    let got = hits(&m, "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob@example.org>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<AbCd>");
    assert_eq!(
        got,
        vec![("192.0.2.7".into(), Some("bob@example.org".into())); 3]
    );
    // A user name with an address of its own: the address is still the
    // last rip=, Dovecot's.
    let got = hits(&m, "Mar  5 16:01:34 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x, rip=203.0.113.66, lip=1.2.3.4>, method=PLAIN, rip=192.0.2.8, lip=198.51.100.1");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "192.0.2.8");
    assert_eq!(
        got[0].1.as_deref(),
        Some("x, rip=203.0.113.66, lip=1.2.3.4")
    );
    // A login summary without a user field counts, without an account.
    assert_eq!(
        hits(&m, "Mar  5 16:01:34 mx1 dovecot: pop3-login: Aborted login (tried to use disabled plaintext auth): rip=192.0.2.9, lip=198.51.100.1"),
        one("192.0.2.9", None)
    );
}

#[test]
fn sshd_user() {
    let m = ours("sshd");
    let h = "Mar  5 16:01:34 host sshd[77]:";
    for (line, addr, user) in [
        (
            format!("{h} Failed password for root from 192.0.2.1 port 4711 ssh2"),
            "192.0.2.1",
            "root",
        ),
        (
            format!("{h} Failed password for invalid user admin from 192.0.2.2 port 4711 ssh2"),
            "192.0.2.2",
            "admin",
        ),
        (
            format!("{h} Invalid user oracle from 2001:db8::3 port 4711"),
            "2001:db8::3",
            "oracle",
        ),
        (
            format!("{h} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.4  user=root"),
            "192.0.2.4",
            "root",
        ),
        (
            format!("{h} Connection closed by authenticating user git 192.0.2.5 port 4711 [preauth]"),
            "192.0.2.5",
            "git",
        ),
        // The user name holds a whole forged tail: the address is the one
        // sshd wrote last, the account the name as the client sent it.
        (
            format!("{h} Failed password for invalid user x from 203.0.113.5 port 1 ssh2 from 192.0.2.6 port 4711 ssh2"),
            "192.0.2.6",
            "x from 203.0.113.5 port 1 ssh2",
        ),
    ] {
        assert_eq!(hits(&m, &line), one(addr, Some(user)), "{line}");
    }
}

#[test]
fn hostile_account_text_is_bounded_or_refused_and_never_moves_the_address() {
    let m = inline(r"^login for <F-USER>.*</F-USER> failed from <HOST>$");
    // 10 kB of name: kept, cut to the bound.
    let long = "a".repeat(10_000);
    let got = hits(&m, &format!("login for {long} failed from 192.0.2.1"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "192.0.2.1");
    let kept = got[0].1.as_deref().unwrap();
    assert_eq!(kept.len(), Account::MAX_LEN);
    // Control characters: no account, the failure still counts.
    for name in [
        "al\u{1b}[31mice",
        "bob\rroot",
        "x\u{0}y",
        "tab\there",
        "   ",
    ] {
        let got = hits(&m, &format!("login for {name} failed from 192.0.2.2"));
        assert_eq!(got, one("192.0.2.2", None), "{name:?}");
    }
    // Multi-byte text at the bound is cut at a character boundary.
    let wide = "é".repeat(5_000);
    let got = hits(&m, &format!("login for {wide} failed from 192.0.2.3"));
    let kept = got[0].1.as_deref().unwrap();
    assert!(kept.len() <= Account::MAX_LEN && kept.chars().all(|c| c == 'é'));
    // An address inside the name is never the address.
    let got = hits(&m, "login for 203.0.113.7 failed from 192.0.2.4");
    assert_eq!(got, one("192.0.2.4", Some("203.0.113.7")));
}

#[test]
fn fail2ban_filter_files_user_tag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spray.conf");
    std::fs::write(
        &path,
        "[Definition]\nfailregex = ^login of <F-USER>\\S+</F-USER> refused for <HOST>$\n",
    )
    .unwrap();
    let mut f = Fail2banFilter::load(path.to_str().unwrap(), dir.path()).unwrap();
    let now = SystemTime::now();
    let got = f.failures("login of carol@example.org refused for 192.0.2.10", now);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].addr, Some("192.0.2.10".parse::<IpAddr>().unwrap()));
    let account = got[0].user.as_deref().and_then(Account::new);
    assert_eq!(account.unwrap().as_str(), "carol@example.org");
    // The name is no address, even when it looks like one.
    let got = f.failures("login of 203.0.113.1 refused for 192.0.2.11", now);
    assert_eq!(got[0].addr, Some("192.0.2.11".parse::<IpAddr>().unwrap()));
}
