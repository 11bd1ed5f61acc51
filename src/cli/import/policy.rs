//! What fail2ban's values become in nftjail's syntax: times, ports,
//! block types, names; pure functions, tested here.

use std::path::PathBuf;

use nftjail::config::port;

/// fail2ban's `logpath` lines (`PATH [head|tail]`), globs expanded the
/// way fail2ban expands them when it starts.
pub fn logpaths(value: &str, notes: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.rsplit_once(' ') {
            Some((p, "head" | "tail")) => p.trim(),
            _ => line,
        };
        if !path.contains(['*', '?', '[']) {
            out.push(path.to_string());
            continue;
        }
        let found: Vec<String> = glob::glob(path)
            .map(|paths| {
                paths
                    .filter_map(|p| p.ok())
                    .filter(|p| p.exists())
                    .map(|p: PathBuf| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if found.is_empty() {
            notes.push(format!("logpath {path}: no file matches now"));
        } else {
            notes.push(format!(
                "logpath {path}: the files it matches now; nftjail does not expand globs, add new ones by hand"
            ));
        }
        out.extend(found);
    }
    out
}

/// `port` and `protocol` in nftjail's syntax; `None` for every port.
pub fn ports(value: &str, protocol: &str) -> Result<Option<String>, String> {
    let items: Vec<&str> = value
        .split([',', ' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
        .collect();
    if items.is_empty()
        || items
            .iter()
            .any(|i| matches!(*i, "0:65535" | "1:65535" | "all" | "any"))
    {
        return Ok(None);
    }
    let protos: &[&str] = match protocol.trim() {
        "tcp" | "" => &[""],
        "udp" => &["/udp"],
        "all" => &["/tcp", "/udp"],
        other => return Err(format!("protocol {other} (nftjail blocks tcp and udp)")),
    };
    let with_proto: Vec<String> = items
        .iter()
        .flat_map(|i| protos.iter().map(move |p| format!("{i}{p}")))
        .collect();
    let refs: Vec<&str> = with_proto.iter().map(String::as_str).collect();
    port::parse_ports(&refs)?;
    Ok(Some(with_proto.join(",")))
}

/// fail2ban's time syntax (`600`, `10m`, `1h 30m`, `1d12h`, `2 weeks`,
/// `1mo`, `1y`, `-1`) in seconds; negative means permanent.
pub fn seconds(value: &str) -> Result<i64, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("not a time fail2ban's way ({v:?})");
    let mut total: i64 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', '+']);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest[..letters].to_lowercase();
        rest = &rest[letters..];
        // fail2ban's units: a year is 365.25 days, a month a twelfth of it.
        let factor = match unit.as_str() {
            "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1,
            "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60,
            "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3_600,
            "d" | "dd" | "da" | "day" | "days" => 86_400,
            "w" | "ww" | "we" | "wee" | "week" | "weeks" => 604_800,
            "mo" | "mon" | "month" | "months" => 2_629_800,
            "y" | "yy" | "ye" | "yea" | "year" | "years" => 31_557_600,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(factor)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Seconds in the largest whole unit nftjail's duration syntax has.
pub fn duration(secs: u64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// `drop` when the ban action drops (a `blocktype` saying DROP, or a
/// blackhole route), else `reject` as fail2ban's iptables and nftables
/// actions do by default.
pub fn blocktype(banaction: &str, blocktype: &str) -> &'static str {
    let b = format!("{banaction} {blocktype}").to_lowercase();
    if b.contains("drop") || b.contains("blackhole") || b.starts_with("route") {
        "drop"
    } else {
        "reject"
    }
}

/// A jail name nftjail accepts: other characters become `-`.
pub fn toml_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if clean.is_empty() {
        "jail".into()
    } else {
        clean
    }
}

pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn list(items: &[String]) -> String {
    if let [one] = items {
        return quote(one);
    }
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Multi-line values (action lists) on one comment line.
pub fn one_line(v: &str) -> String {
    v.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_times() {
        assert_eq!(seconds("600"), Ok(600));
        assert_eq!(seconds("10m"), Ok(600));
        assert_eq!(seconds("1h 30m"), Ok(5400));
        assert_eq!(seconds("1d12h"), Ok(129_600));
        assert_eq!(seconds("2 weeks"), Ok(1_209_600));
        assert_eq!(seconds("1mo"), Ok(2_629_800));
        assert_eq!(seconds("1y"), Ok(31_557_600));
        assert_eq!(seconds("-1"), Ok(-1));
        assert!(seconds("10x").is_err());
        assert!(seconds("1h-5m").is_err());
        assert_eq!(duration(600), "10m");
        assert_eq!(duration(172_800), "2d");
        assert_eq!(duration(1_209_600), "2w");
        assert_eq!(duration(90), "90s");
    }

    #[test]
    fn ports_and_protocols() {
        assert_eq!(ports("ssh", "tcp"), Ok(Some("ssh".into())));
        assert_eq!(
            ports("smtp,465,submission", "tcp"),
            Ok(Some("smtp,465,submission".into()))
        );
        assert_eq!(ports("53", "udp"), Ok(Some("53/udp".into())));
        assert_eq!(ports("53", "all"), Ok(Some("53/tcp,53/udp".into())));
        assert_eq!(ports("0:65535", "tcp"), Ok(None));
        assert!(ports("nosuchservice", "tcp").is_err());
        assert!(ports("22", "sctp").is_err());
    }

    #[test]
    fn blocktypes() {
        assert_eq!(blocktype("iptables-multiport", ""), "reject");
        assert_eq!(blocktype("nftables[blocktype=drop]", ""), "drop");
        assert_eq!(blocktype("iptables-multiport", "DROP"), "drop");
        assert_eq!(blocktype("route", ""), "drop");
    }

    #[test]
    fn names_and_values() {
        assert_eq!(toml_name("nginx.http"), "nginx-http");
        assert_eq!(one_line("a\n  b\n"), "a ; b");
    }
}
