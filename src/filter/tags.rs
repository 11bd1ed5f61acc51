//! Tag expansion: `<HOST>` and friends become regex pieces, and the text a
//! host tag captured becomes an address.
//!
//! Address tags (exactly one per failregex): `<HOST>` / `<ADDR>` (IPv4 or
//! IPv6, optionally bracketed), `<IP4>`, `<IP6>`, and `<HOSTPORT>` (an
//! address followed by `:PORT`). Others: `<COUNT>` (how many failures the
//! line stands for), and line headers `<SYSLOG>` (BSD or RFC 3339 syslog
//! header and host name), `<TIMESTAMP>` (the date alone) and
//! `<APACHE_ERROR>` (Apache 2.4 error log fields up to `[client ...]`).
//! `<F-USER>...</F-USER>` (fail2ban's spelling) captures the account the
//! failure was against: only counted and shown, never a source of the
//! address, which stays the host tag's alone.
//!
//! The host pattern is deliberately loose (it only has to find the token):
//! the captured text is then parsed with `std::net::IpAddr`, and a capture
//! that is not a whole address token (`999.1.1.1`, the `1.2.3.4` inside
//! `21.2.3.4`, the head of `2001:db8::1:22`) makes the line not match instead
//! of banning something wrong. The expanded regexes stay PCRE-compatible so
//! `nftjail test --print-regex` output can be fed to `grep -P`.

use std::net::IpAddr;

use memchr::memmem;
use regex::Regex;

/// Name of the capture group every failregex gets for the address.
pub const HOST_GROUP: &str = "host";

/// Name of the group `<HOSTPORT>` captures its address in: the address is
/// followed by `:PORT`, so there a colon and digits end the token instead of
/// continuing it (`2001:db8::1:4711` is `2001:db8::1`, port 4711).
pub const HOST_PORT_GROUP: &str = "hostport";

/// Name of the group that says how many failures one line stands for
/// (`<COUNT>`, or written by hand as `(?P<count>...)`).
pub const COUNT_GROUP: &str = "count";

/// Name of the group that holds the account a failure was against
/// (`<F-USER>...</F-USER>`, or written by hand as `(?P<user>...)`).
pub const USER_GROUP: &str = "user";

// ASCII classes throughout (`[0-9]`, not `\d`): they mean what a log
// writes, and keep the automata small, which makes extracting the host
// several times cheaper than with Unicode classes.
const IP4: &str = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}";
/// Hex groups with at least two colons, optionally ending in dotted IPv4
/// (`::ffff:192.0.2.1`), optionally with a zone (`fe80::1%eth0`, stripped).
const IP6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9_.-]+)?";

/// A syslog line header up to the program name: an optional `<PRI>`, a BSD
/// (`Mar  5 16:01:34`, journalctl's `.123456` too) or RFC 3339 timestamp,
/// then the host name. Filters start with it so the program name is taken
/// from its fixed place, never from message text.
const SYSLOG: &str = concat!(
    r"(?:<[0-9]{1,3}>)?",
    r"(?:[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?",
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)",
    r" [^ ]+ ",
);

/// The timestamp part of [`SYSLOG`] alone, for logs a program writes itself
/// with a syslog-like date but no host name (Dovecot's `log_path`, Exim's
/// mainlog).
const TIMESTAMP: &str = concat!(
    r"(?:[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?",
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)",
    r" ",
);

/// An Apache 2.4 error log line up to its `[client ...]` field:
/// `[Tue Mar 05 16:01:34.123456 2024] [module:level] [pid N(:tid N)] `,
/// written to a file or, after a syslog header, by `ErrorLog syslog:`.
/// The fields are fixed by httpd, so a filter that follows this with
/// `\[client <HOSTPORT>\]` takes the client from its fixed place, before any
/// request text (URL, user name) the client chose.
const APACHE_ERROR: &str = concat!(
    r"(?:\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)? [0-9]{4}\] ",
    r"|(?:<[0-9]{1,3}>)?(?:[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?",
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)",
    r" [^ ]+ (?:apache2|httpd)(?:/[A-Za-z0-9_.-]+)?(?:\[[0-9]+\])?: )",
    r"\[[A-Za-z0-9_]*:[a-z0-9]+\] \[pid [0-9]+(?::tid [0-9]+)?\] ",
);

/// Whether a failregex captures the account, and the fixed text right
/// before its group (`, sasl_username=`), which a line must hold for the
/// group to take part: a line without it needs no second run for it.
#[derive(Debug, Clone)]
pub enum UserGroup {
    None,
    Always,
    After(Box<memmem::Finder<'static>>),
}

/// Fixed text shorter than this is too common to be worth a search.
const MIN_USER_LITERAL: usize = 3;

impl UserGroup {
    pub fn of(re: &Regex) -> UserGroup {
        if !re.capture_names().any(|n| n == Some(USER_GROUP)) {
            return UserGroup::None;
        }
        let text = re.as_str();
        let open = format!("(?P<{USER_GROUP}>");
        // Flags (`(?i)`) could make the text match otherwise than byte
        // for byte.
        let groups = text.matches("(?:").count() + text.matches("(?P<").count();
        let flags = text.matches("(?").count() > groups;
        let Some(at) = text.find(&open).filter(|_| !flags) else {
            return UserGroup::Always;
        };
        let literal = fixed_text_before(&text[..at]);
        if literal.len() < MIN_USER_LITERAL {
            return UserGroup::Always;
        }
        UserGroup::After(Box::new(
            memmem::Finder::new(literal.as_bytes()).into_owned(),
        ))
    }

    pub fn may_match(&self, line: &str) -> bool {
        match self {
            UserGroup::None => false,
            UserGroup::Always => true,
            UserGroup::After(f) => f.find(line.as_bytes()).is_some(),
        }
    }
}

/// The run of plain characters at the end of `regex` (what must precede
/// a group that follows it), without a character an escape made special.
fn fixed_text_before(regex: &str) -> &str {
    let meta = |c: char| r"\()[]{}?*+|.^$".contains(c);
    let start = regex
        .char_indices()
        .rev()
        .find(|&(_, c)| meta(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let run = &regex[start..];
    // `\s` leaves `s` behind, `\x41` leaves `x41`: drop what follows a
    // backslash.
    if regex[..start].ends_with('\\') {
        return "";
    }
    // A group's opening: `(?:` and `(?P<name>` are syntax, not text.
    if regex[..start].ends_with("(?") {
        return match run.strip_prefix(':') {
            Some(text) => text,
            None => run
                .strip_prefix("P<")
                .and_then(|r| Some(r.split_once('>')?.1))
                .unwrap_or(""),
        };
    }
    run
}

/// The tags a filter may use, and what each expands to.
fn tag(name: &str) -> Option<(String, bool)> {
    let host = |inner: &str, brackets: bool| {
        let group = format!("(?P<{HOST_GROUP}>{inner})");
        if brackets {
            format!(r"\[?{group}\]?")
        } else {
            group
        }
    };
    Some(match name {
        "HOST" | "ADDR" => (host(&format!("{IP4}|{IP6}"), true), true),
        "IP4" => (host(IP4, false), true),
        "IP6" => (host(IP6, true), true),
        // Brackets are optional around IPv6 (`[2001:db8::1]:80`, Apache's
        // `2001:db8::1:80`); the port is required, which is what makes the
        // unbracketed form unambiguous.
        "HOSTPORT" => (
            format!(r"\[?(?P<{HOST_PORT_GROUP}>{IP4}|{IP6})\]?:[0-9]{{1,5}}"),
            true,
        ),
        "COUNT" => (format!("(?P<{COUNT_GROUP}>[0-9]+)"), false),
        "F-USER" => (format!("(?P<{USER_GROUP}>"), false),
        "/F-USER" => (")".to_string(), false),
        "SYSLOG" => (SYSLOG.to_string(), false),
        "TIMESTAMP" => (TIMESTAMP.to_string(), false),
        "APACHE_ERROR" => (APACHE_ERROR.to_string(), false),
        _ => return None,
    })
}

/// Expands the tags of a failregex: exactly one address tag is required.
pub fn expand(regex: &str) -> Result<String, String> {
    let (out, hosts) = expand_tags(regex);
    match hosts {
        1 => Ok(out),
        0 => Err("has no <HOST> (or <ADDR>, <IP4>, <IP6>): it cannot say whom to ban".into()),
        n => Err(format!(
            "has {n} address tags; exactly one <HOST> is allowed"
        )),
    }
}

/// Expands the tags of an ignoreregex, which needs no address but may have one.
pub fn expand_ignore(regex: &str) -> Result<String, String> {
    match expand_tags(regex) {
        (_, n) if n > 1 => Err(format!("has {n} address tags; at most one is allowed")),
        (out, _) => Ok(out),
    }
}

/// Replaces every known `<TAG>`; other `<...>` text (named groups, literal
/// angle brackets) is left alone. Returns the text and the address tag count.
fn expand_tags(regex: &str) -> (String, usize) {
    let mut out = String::with_capacity(regex.len() + 256);
    let mut hosts = 0;
    let mut rest = regex;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let name = tail[1..].split_once('>').map(|(n, _)| n);
        match name.and_then(|n| Some((n, tag(n)?))) {
            Some((name, (piece, is_host))) => {
                hosts += usize::from(is_host);
                out.push_str(&piece);
                rest = &tail[name.len() + 2..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    (out, hosts)
}

/// The address a host tag captured at `start..end` of `line`, if that text is
/// a whole address token. IPv4-mapped IPv6 comes out as IPv4.
pub fn host_at(line: &str, start: usize, end: usize) -> Option<IpAddr> {
    host_token_at(line, start, end, false)
}

/// [`host_at`] for an address that `:PORT` follows (`<HOSTPORT>`): there the
/// colon after the address is the port separator, not more address.
pub fn host_port_at(line: &str, start: usize, end: usize) -> Option<IpAddr> {
    host_token_at(line, start, end, true)
}

fn host_token_at(line: &str, start: usize, end: usize, port_follows: bool) -> Option<IpAddr> {
    let bytes = line.as_bytes();
    let text = &line[start..end];
    let before = start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(end).copied();
    let next = bytes.get(end + 1).copied();
    let v4 = !text.contains(':');
    // The capture must not start inside a longer token: `2` + `1.2.3.4`,
    // `2001:db8:` + `:1`, `2001:db8::` + `1.2.3.4`.
    let starts_inside = match before {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' => true,
        // Sendmail writes `[IPv6:2001:db8::1]`: that colon ends a label.
        Some(b':') if line[..start].ends_with("[IPv6:") => false,
        Some(b':') => {
            let prev = start.checked_sub(2).map(|i| bytes[i]);
            prev.is_some_and(|p| p.is_ascii_hexdigit() || p == b':')
        }
        _ => false,
    };
    // ... nor end inside one: `1.2.3.45` + `6`, `1.2.3.4` + `.5`,
    // `2001:db8::1` + `:22` (ambiguous, so not ours to guess).
    let ends_inside = match after {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => true,
        Some(b'.') => next.is_some_and(|n| n.is_ascii_digit()),
        Some(b':') if port_follows => next.is_none_or(|n| !n.is_ascii_digit()),
        Some(b':') => !v4 && next.is_some_and(|n| n.is_ascii_hexdigit() || n == b':'),
        _ => false,
    };
    if starts_inside || ends_inside {
        return None;
    }
    parse_host(text)
}

/// Parses host text (brackets and a zone are dropped); IPv4-mapped IPv6
/// comes out as IPv4. Text that is not an address gives `None`.
pub fn parse_host(text: &str) -> Option<IpAddr> {
    let text = text.strip_prefix('[').unwrap_or(text);
    let text = text.strip_suffix(']').unwrap_or(text);
    let text = text.split_once('%').map_or(text, |(addr, _zone)| addr);
    text.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use regex::Regex;

    fn host_of(regex: &str, line: &str) -> Option<IpAddr> {
        let re = Regex::new(&expand(regex).unwrap()).unwrap();
        let m = re.captures(line)?.name(HOST_GROUP)?;
        host_at(line, m.start(), m.end())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn host_forms() {
        let re = r"^from <HOST> port \d+$";
        assert_eq!(host_of(re, "from 192.0.2.1 port 22"), ip("192.0.2.1"));
        assert_eq!(host_of(re, "from 2001:db8::1 port 22"), ip("2001:db8::1"));
        assert_eq!(host_of(re, "from [2001:db8::1] port 22"), ip("2001:db8::1"));
        assert_eq!(
            host_of(re, "from ::ffff:192.0.2.9 port 22"),
            ip("192.0.2.9")
        );
        assert_eq!(
            host_of(re, "from [::ffff:192.0.2.9] port 22"),
            ip("192.0.2.9")
        );
        assert_eq!(host_of(re, "from ::1 port 22"), ip("::1"));
        assert_eq!(host_of(re, "from fe80::1%eth0 port 22"), ip("fe80::1"));
        assert_eq!(
            host_of(re, "from 2001:db8:0:0:0:0:0:1 port 22"),
            ip("2001:db8::1")
        );
        let client = r"unknown\[<HOST>\]";
        assert_eq!(host_of(client, "unknown[203.0.113.5]"), ip("203.0.113.5"));
        assert_eq!(
            host_of(client, "unknown[2001:db8:1::66]"),
            ip("2001:db8:1::66")
        );
        assert_eq!(host_of("<ADDR>$", "x 192.0.2.3"), ip("192.0.2.3"));
    }

    #[test]
    fn family_tags() {
        assert_eq!(host_of("from <IP4>$", "from 192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(host_of("from <IP4>$", "from 2001:db8::1"), None);
        assert_eq!(
            host_of("from <IP6>$", "from [2001:db8::1]"),
            ip("2001:db8::1")
        );
        assert_eq!(host_of("from <IP6>$", "from 192.0.2.1"), None);
    }

    #[test]
    fn not_an_address_is_no_match() {
        let re = r"^from <HOST> port \d+$";
        for line in [
            "from 999.1.1.1 port 22",
            "from 1.2.3 port 22",
            "from 01.2.3.4 port 22",
            "from host.example port 22",
            "from 1:2:3:4:5:6:7:8:9 port 22",
            "from ::::: port 22",
        ] {
            assert_eq!(host_of(re, line), None, "{line}");
        }
    }

    #[test]
    fn a_piece_of_a_longer_token_is_no_match() {
        // A greedy prefix lets the tag start late or end early; the part it
        // found must not be taken for the address.
        assert_eq!(host_of(r".*<HOST>", "x 999.1.1.1"), None);
        assert_eq!(host_of(r".*<HOST>", "x 21.2.3.4"), None);
        assert_eq!(host_of(r".*<HOST>", "x 2001:db8::1.2.3.4"), None);
        assert_eq!(
            host_of(r"x <HOST>", "x 2001:db8::1.2.3.4"),
            ip("2001:db8::102:304")
        );
        assert_eq!(host_of(r"from <HOST>", "from 1.2.3.4567"), None);
        assert_eq!(host_of(r"from <HOST>", "from 1.2.3.4.5"), None);
        assert_eq!(host_of(r"from <HOST>:\d+", "from 2001:db8::1:22"), None);
        assert_eq!(host_of(r"from <HOST>x", "from 1.2.3.4x"), None);
        // Address-like neighbours that are not part of the token are fine.
        assert_eq!(
            host_of(r"from <HOST>:\d+", "from 192.0.2.1:22"),
            ip("192.0.2.1")
        );
        assert_eq!(host_of(r"from <HOST>", "from 192.0.2.1."), ip("192.0.2.1"));
        assert_eq!(host_of(r"IP:<HOST>", "IP:192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(
            host_of(r"\[IPv6:<HOST>\]", "[IPv6:2001:db8::1]"),
            ip("2001:db8::1")
        );
        assert_eq!(host_of(r"xIPv6:<HOST>\]", "[xIPv6:2001:db8::1]"), None);
    }

    #[test]
    fn tag_count_is_checked() {
        assert!(expand("no tag").unwrap_err().contains("no <HOST>"));
        assert!(expand("<HOST> <HOST>").unwrap_err().contains("exactly one"));
        assert!(expand("<HOST> <IP4>").unwrap_err().contains("exactly one"));
        assert!(expand("a <b> <HOST>").is_ok());
        assert!(expand_ignore("no tag").is_ok());
        assert!(expand_ignore("<HOST> <ADDR>").is_err());
    }

    #[test]
    fn unknown_tags_and_named_groups_are_left_alone() {
        let out = expand(r"(?P<user>\w+) <x> <HOST").unwrap_err();
        assert!(out.contains("no <HOST>"));
        let out = expand(r"(?P<user>\w+) <x> <HOST>").unwrap();
        assert!(out.starts_with(r"(?P<user>\w+) <x> "));
    }

    #[test]
    fn count_and_header_tags_are_not_address_tags() {
        assert!(expand("<COUNT> failures")
            .unwrap_err()
            .contains("no <HOST>"));
        assert!(expand("<HOSTPORT> <HOST>")
            .unwrap_err()
            .contains("exactly one"));
        let re = Regex::new(&expand(r"^<TIMESTAMP>n=<COUNT> <HOST>$").unwrap()).unwrap();
        let caps = re.captures("2024-03-05 16:01:34 n=12 192.0.2.1").unwrap();
        assert_eq!(&caps[COUNT_GROUP], "12");
        assert!(re.is_match("Mar 05 16:01:34 n=1 192.0.2.1"));
        assert!(!re.is_match("Mar 05 16:01:34 host n=1 192.0.2.1"));
    }

    #[test]
    fn user_tags_capture_the_account_beside_the_host() {
        let re = Regex::new(&expand(r"^for <F-USER>\S+</F-USER> from <HOST>$").unwrap()).unwrap();
        let caps = re.captures("for alice from 192.0.2.1").unwrap();
        assert_eq!(&caps[USER_GROUP], "alice");
        assert_eq!(&caps[HOST_GROUP], "192.0.2.1");
    }

    #[test]
    fn a_user_group_after_fixed_text_is_looked_for_only_where_the_text_is() {
        let group = |re: &str| UserGroup::of(&Regex::new(&expand(re).unwrap()).unwrap());
        let g = group(r"<HOST> failed(?:.*?, sasl_username=<F-USER>.+</F-USER>)?");
        assert!(g.may_match("x, sasl_username=bob"));
        assert!(!g.may_match("1.2.3.4 failed: authentication failure"));
        assert!(group(r"for (?:invalid user )?<F-USER>\S+</F-USER> from <HOST>").may_match("x"));
        assert!(group(r"x\s<F-USER>\S+</F-USER> <HOST>").may_match("x"));
        assert!(group(r"(?i)user=<F-USER>\S+</F-USER> <HOST>").may_match("x"));
        assert!(!group(r"from <HOST>").may_match("x"));
        assert_eq!(fixed_text_before(r"a\sfoo"), "");
        assert_eq!(fixed_text_before(r"(?:x), user=<"), ", user=<");
        assert_eq!(fixed_text_before(r"y (?:user=<"), "user=<");
        assert_eq!(fixed_text_before(r"y (?P<n>user=<"), "user=<");
        assert_eq!(fixed_text_before(r"a?bc"), "bc");
    }

    #[test]
    fn apache_error_headers() {
        let re = Regex::new(&expand(r"^<APACHE_ERROR>\[client <HOSTPORT>\] x$").unwrap()).unwrap();
        for head in [
            "[Tue Mar 05 16:01:34.123456 2024] [php:notice] [pid 4711] ",
            "[Tue Mar 05 16:01:34 2024] [auth_basic:error] [pid 4711:tid 140] ",
            "[Tue Mar  5 16:01:34.1 2024] [:error] [pid 1] ",
            "Mar  5 16:01:34 web apache2[4711]: [php7:notice] [pid 4711] ",
            "2024-03-05T16:01:34+01:00 web httpd/vhost[1]: [core:info] [pid 1] ",
        ] {
            let line = format!("{head}[client 192.0.2.1:4711] x");
            assert!(re.is_match(&line), "{line}");
        }
        // The client field must follow httpd's own fields directly.
        assert!(!re.is_match(
            "[Tue Mar 05 16:01:34 2024] [php:notice] [pid 1] y [client 192.0.2.1:4711] x"
        ));
        assert!(!re.is_match(
            "Mar  5 16:01:34 web cron[1]: [php:notice] [pid 1] [client 192.0.2.1:4711] x"
        ));
    }

    #[test]
    fn syslog_headers() {
        let re = Regex::new(&expand(r"^<SYSLOG>sshd\[\d+\]: from <HOST>$").unwrap()).unwrap();
        for head in [
            "Mar  5 16:01:34 h",
            "Mar 15 16:01:34 h",
            "Mar 05 16:01:34.123456 h",
            "<38>Mar  5 16:01:34 h",
            "2024-03-05T16:01:34.123456+01:00 h",
            "2024-03-05T16:01:34+0100 h",
            "2024-03-05 16:01:34,123 h",
            "2024-03-05T16:01:34Z h",
        ] {
            let line = format!("{head} sshd[1]: from 192.0.2.1");
            assert!(re.is_match(&line), "{line}");
        }
        // The program must sit right after the header, not in the message.
        assert!(!re.is_match("Mar  5 16:01:34 h cron[2]: sshd[1]: from 192.0.2.1"));
    }
}
