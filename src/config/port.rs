//! Ports as fail2ban writes them (`"587"`, `"http,https"`, `"1000:2000"`,
//! `"ssh/tcp"`), parsed once into [`PortRange`]s the backends turn into rules.

use crate::rules::{PortRange, Proto};

/// Parses a fail2ban `port` value: comma- or space-separated items, each a number,
/// a service name, a range (`1000:2000` as fail2ban writes it, or `1000-2000`),
/// optionally followed by `/tcp` or `/udp`. Without a protocol an item means TCP,
/// as fail2ban's default `protocol = tcp`. `all`/`any` (or an empty value) means
/// every port and protocol, expressed as an empty list.
pub fn parse_ports(items: &[&str]) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for raw in items.iter().flat_map(|s| s.split([',', ' ', '\t'])) {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        if item.eq_ignore_ascii_case("all") || item.eq_ignore_ascii_case("any") {
            return Ok(Vec::new());
        }
        let (spec, proto) = match item.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Proto::Tcp),
            Some((spec, "udp")) => (spec, Proto::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "unknown protocol {other:?} in {item:?} (use /tcp or /udp)"
                ))
            }
            None => (item, Proto::Tcp),
        };
        let (first, last) = match spec.split_once([':', '-']) {
            Some((a, b)) => (port_number(a)?, port_number(b)?),
            None => {
                let p = port_number(spec)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("port range {item:?} runs backwards"));
        }
        out.push(PortRange { proto, first, last });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn port_number(s: &str) -> Result<u16, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        return match s.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("port {s:?} is out of range 1-65535")),
            Ok(p) => Ok(p),
        };
    }
    service_port(s).ok_or_else(|| {
        format!(
            "unknown service name {s:?} (not a number, not in /etc/services nor the built-in list)"
        )
    })
}

/// Service names the mail and login stack uses, so a config means the same
/// on a minimal machine without `/etc/services`.
const BUILTIN_SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("smtp", 25),
    ("http", 80),
    ("pop3", 110),
    ("imap", 143),
    ("imap2", 143),
    ("https", 443),
    ("smtps", 465),
    ("submissions", 465),
    ("urd", 465),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
    ("sieve", 4190),
    ("managesieve", 4190),
];

fn service_port(name: &str) -> Option<u16> {
    if let Some(&(_, p)) = BUILTIN_SERVICES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Some(p);
    }
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut words = line.split_whitespace();
        let svc = words.next()?;
        let (port, _) = words.next()?.split_once('/')?;
        let aliases: Vec<&str> = words.collect();
        (svc == name || aliases.contains(&name))
            .then(|| port.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(first: u16, last: u16) -> PortRange {
        PortRange {
            proto: Proto::Tcp,
            first,
            last,
        }
    }

    #[test]
    fn fail2ban_forms() {
        assert_eq!(parse_ports(&["587"]).unwrap(), vec![tcp(587, 587)]);
        assert_eq!(
            parse_ports(&["http,https"]).unwrap(),
            vec![tcp(80, 80), tcp(443, 443)]
        );
        assert_eq!(
            parse_ports(&["smtp,465,submission"]).unwrap(),
            vec![tcp(25, 25), tcp(465, 465), tcp(587, 587)]
        );
        assert_eq!(
            parse_ports(&["1000:2000", "3000-3001/udp"]).unwrap(),
            vec![
                tcp(1000, 2000),
                PortRange {
                    proto: Proto::Udp,
                    first: 3000,
                    last: 3001
                }
            ]
        );
        assert_eq!(parse_ports(&["all"]).unwrap(), vec![]);
    }

    #[test]
    fn bad_ports_are_errors() {
        assert!(parse_ports(&["70000"])
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_ports(&["0"]).is_err());
        assert!(parse_ports(&["2000:1000"])
            .unwrap_err()
            .contains("backwards"));
        assert!(parse_ports(&["22/sctp"]).unwrap_err().contains("protocol"));
        assert!(parse_ports(&["nosuchservice"])
            .unwrap_err()
            .contains("unknown service"));
    }
}
