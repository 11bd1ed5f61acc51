//! Tag expansion: `<HOST>` and friends become regex pieces.
//!
//! The host pattern is deliberately loose (it only has to find the token):
//! the captured text is then parsed with `std::net::IpAddr`, so a token that
//! looks like an address but is not one (`999.1.1.1`) makes the line not
//! match instead of banning something wrong.

use std::net::IpAddr;

/// Name of the capture group every failregex gets for the address.
pub const HOST_GROUP: &str = "host";

const IP4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// Hex groups with at least two colons, optionally ending in dotted IPv4
/// (`::ffff:192.0.2.1`).
const IP6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?";

/// A syslog line header up to the program name: a BSD (`Mar  5 16:01:34`) or
/// RFC 3339 timestamp, then the host name. Filters start with it so the
/// program name is taken from its fixed place, never from message text.
const SYSLOG: &str = r"(?:[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) \S+ ";

/// Expands the tags of one regex. Exactly one address tag is required.
pub fn expand(regex: &str) -> Result<String, String> {
    let host = format!(r"\[?(?P<{HOST_GROUP}>{IP4}|{IP6})\]?");
    let mut out = String::with_capacity(regex.len() + 256);
    let mut hosts = 0;
    let mut rest = regex;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (piece, len, is_host) = if tail.starts_with("<HOST>") || tail.starts_with("<ADDR>") {
            (host.as_str(), 6, true)
        } else if tail.starts_with("<IP4>") {
            (IP4_HOST.as_str(), 5, true)
        } else if tail.starts_with("<IP6>") {
            (IP6_HOST.as_str(), 5, true)
        } else if tail.starts_with("<SYSLOG>") {
            (SYSLOG, 8, false)
        } else {
            ("<", 1, false)
        };
        hosts += usize::from(is_host);
        out.push_str(piece);
        rest = &tail[len..];
    }
    out.push_str(rest);
    match hosts {
        1 => Ok(out),
        0 => Err("has no <HOST> (or <ADDR>, <IP4>, <IP6>): it cannot say whom to ban".into()),
        n => Err(format!(
            "has {n} address tags; exactly one <HOST> is allowed"
        )),
    }
}

static IP4_HOST: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!(r"(?P<{HOST_GROUP}>{IP4})"));
static IP6_HOST: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!(r"\[?(?P<{HOST_GROUP}>{IP6})\]?"));

/// Parses captured host text; IPv4-mapped IPv6 comes out as IPv4.
pub fn parse_host(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    text.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn host_of(regex: &str, line: &str) -> Option<IpAddr> {
        let re = Regex::new(&expand(regex).unwrap()).unwrap();
        re.captures(line)
            .and_then(|c| c.name(HOST_GROUP))
            .and_then(|m| parse_host(m.as_str()))
    }

    #[test]
    fn host_forms() {
        let re = r"^from <HOST> port \d+$";
        assert_eq!(
            host_of(re, "from 192.0.2.1 port 22"),
            "192.0.2.1".parse().ok()
        );
        assert_eq!(
            host_of(re, "from 2001:db8::1 port 22"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(
            host_of(re, "from [2001:db8::1] port 22"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(
            host_of(re, "from ::ffff:192.0.2.9 port 22"),
            "192.0.2.9".parse().ok()
        );
        assert_eq!(host_of(re, "from ::1 port 22"), "::1".parse().ok());
        assert_eq!(
            host_of(r"unknown\[<HOST>\]", "unknown[203.0.113.5]"),
            "203.0.113.5".parse().ok()
        );
        assert_eq!(
            host_of(r"unknown\[<HOST>\]", "unknown[2001:db8:1::66]"),
            "2001:db8:1::66".parse().ok()
        );
    }

    #[test]
    fn not_an_address_is_no_match() {
        let re = r"^from <HOST> port \d+$";
        assert_eq!(host_of(re, "from 999.1.1.1 port 22"), None);
        assert_eq!(host_of(re, "from 1.2.3 port 22"), None);
        assert_eq!(host_of(re, "from host.example port 22"), None);
        assert_eq!(host_of(re, "from 1:2:3:4:5:6:7:8:9 port 22"), None);
    }

    #[test]
    fn tag_count_is_checked() {
        assert!(expand("no tag").unwrap_err().contains("no <HOST>"));
        assert!(expand("<HOST> <HOST>").unwrap_err().contains("exactly one"));
        assert!(expand("a <b> <HOST>").is_ok());
    }
}
