//! Blocklist files (`blocklist = "/etc/nftjail/blocklist.txt"`): addresses
//! and CIDR networks one per line, banned without timeout.
//!
//! Such files are often fetched from elsewhere and large, so a bad line is
//! never fatal: it is reported with its file and line and skipped, and the
//! rest is loaded. `#` starts a comment, and so does `;` (the form of
//! Spamhaus' DROP list: `192.0.2.0/24 ; SBL123`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// A blocklist file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// Entries in file order, addresses as /32 or /128, duplicates kept.
    pub entries: Vec<IpNet>,
    /// Lines that are neither blank, a comment nor an entry.
    pub bad: Vec<BadLine>,
}

/// A line skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub file: PathBuf,
    /// From 1.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}; line skipped",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// Reads and parses the file at `path`.
pub fn read(path: &Path) -> std::io::Result<Blocklist> {
    let bytes = std::fs::read(path)?;
    Ok(parse(&String::from_utf8_lossy(&bytes), path))
}

/// Parses a blocklist's text; `file` names it in the bad lines.
pub fn parse(text: &str, file: &Path) -> Blocklist {
    let mut out = Blocklist::default();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split(['#', ';']).next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry) {
            Ok(net) => out.entries.push(net),
            Err(reason) => out.bad.push(BadLine {
                file: file.to_path_buf(),
                line: i + 1,
                reason,
            }),
        }
    }
    out
}

/// One entry: an address, or a network without host bits.
fn parse_entry(entry: &str) -> Result<IpNet, String> {
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(addr.to_canonical()));
    }
    let shown: String = entry.chars().take(80).collect();
    match entry.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => Err(format!(
            "{net} has host bits set: write {} for the network, or {} alone for one address",
            net.trunc(),
            net.addr()
        )),
        Ok(net) if net.prefix_len() == 0 => Err(format!("{net} would block every address")),
        Ok(IpNet::V6(n)) if n.addr().to_ipv4_mapped().is_some() => {
            Err(format!("{n}: write IPv4-mapped networks as IPv4"))
        }
        Ok(net) => Ok(net),
        Err(_) => Err(format!(
            "{shown:?} is neither an IP address nor a CIDR network"
        )),
    }
}

/// The entries without duplicates and without those inside another entry
/// (an address or network a wider network of the list already covers),
/// sorted: what goes in the kernel, where a network set refuses one
/// network inside another. Returns them and how many were covered.
pub fn without_overlaps(mut entries: Vec<IpNet>) -> (Vec<IpNet>, usize) {
    // Sorted by family, then network address, then wider first: a network
    // inside another comes after it, before anything outside it.
    entries.sort_unstable();
    entries.dedup();
    let mut kept: Vec<IpNet> = Vec::with_capacity(entries.len());
    let mut covered = 0;
    let mut outer: Option<IpNet> = None;
    for net in entries {
        if outer.is_some_and(|o| o.contains(&net)) {
            covered += 1;
            continue;
        }
        outer = Some(net);
        kept.push(net);
    }
    (kept, covered)
}

impl super::Checker<'_> {
    /// A jail's blocklist: its own `blocklist`, else the one of `[defaults]`
    /// (whose problem is reported once, not once per jail).
    pub(super) fn jail_blocklist(
        &mut self,
        own: Option<&toml::Spanned<String>>,
        default: Option<&toml::Spanned<String>>,
        jail_key: &str,
    ) -> Option<PathBuf> {
        if own.is_some() {
            return self.blocklist_path(own, &format!("{jail_key}.blocklist"));
        }
        let key = "defaults.blocklist";
        if self.problems.iter().any(|p| p.key == key) {
            return None;
        }
        self.blocklist_path(default, key)
    }

    /// `blocklist = "PATH"`: an absolute path ("" for none, so a jail can
    /// leave out the one `[defaults]` gives). The file itself is read when
    /// the daemon starts or reloads: it may be fetched later, and a bad
    /// line in it is never a reason to refuse the config.
    pub(super) fn blocklist_path(
        &mut self,
        v: Option<&toml::Spanned<String>>,
        key: &str,
    ) -> Option<PathBuf> {
        let v = v?;
        let path = v.get_ref();
        if path.is_empty() {
            return None;
        }
        if !Path::new(path).is_absolute() {
            self.problem(v.span(), key, "must be an absolute path");
            return None;
        }
        Some(PathBuf::from(path))
    }
}

/// What `nftjail check` says of each jail's blocklist: its bad lines, or
/// why it cannot be read (the daemon would load nothing from it).
pub fn check(jails: &[super::Jail]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: Vec<&Path> = Vec::new();
    for path in jails.iter().filter_map(|j| j.blocklist.as_deref()) {
        if seen.contains(&path) {
            continue;
        }
        seen.push(path);
        match read(path) {
            Ok(b) => out.extend(b.bad.iter().map(ToString::to_string)),
            Err(e) => out.push(format!("blocklist {}: {e}", path.display())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn entries_comments_blank_and_bad_lines() {
        let text = "# a list\n\n192.0.2.7\n198.51.100.0/24 ; SBL1\n2001:db8::/32 # inline\n\
                    not an address\n10.0.0.1/8\n0.0.0.0/0\n::ffff:192.0.2.9\n";
        let b = parse(text, Path::new("/etc/nftjail/bl.txt"));
        assert_eq!(
            b.entries,
            [
                net("192.0.2.7/32"),
                net("198.51.100.0/24"),
                net("2001:db8::/32"),
                net("192.0.2.9/32")
            ]
        );
        let lines: Vec<usize> = b.bad.iter().map(|l| l.line).collect();
        assert_eq!(lines, [6, 7, 8]);
        let shown = b.bad[0].to_string();
        assert!(
            shown.starts_with("/etc/nftjail/bl.txt:6: \"not an address\""),
            "{shown}"
        );
        assert!(
            b.bad[1].reason.contains("10.0.0.0/8"),
            "{}",
            b.bad[1].reason
        );
    }

    #[test]
    fn a_jail_takes_its_own_blocklist_else_the_defaults_and_empty_means_none() {
        let jail = |name: &str, extra: &str| {
            format!("[jail.{name}]\nfilter = \"sshd\"\nlogpath = \"/var/log/auth.log\"\n{extra}")
        };
        let text = format!(
            "[defaults]\nblocklist = \"/etc/nftjail/all.txt\"\n{}{}{}",
            jail("a", ""),
            jail("b", "blocklist = \"/etc/nftjail/b.txt\"\n"),
            jail("c", "blocklist = \"\"\n")
        );
        let config = super::super::Config::parse(&text, Path::new("t.toml")).unwrap();
        let lists: Vec<Option<&Path>> = config
            .jails
            .iter()
            .map(|j| j.blocklist.as_deref())
            .collect();
        assert_eq!(
            lists,
            [
                Some(Path::new("/etc/nftjail/all.txt")),
                Some(Path::new("/etc/nftjail/b.txt")),
                None
            ]
        );

        // A relative path is refused once, located, however many jails inherit it.
        let text = format!(
            "[defaults]\nblocklist = \"bl.txt\"\n{}{}",
            jail("a", ""),
            jail("b", "")
        );
        let err = super::super::Config::parse(&text, Path::new("t.toml"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "t.toml:2:13: defaults.blocklist: must be an absolute path"
        );
    }

    #[test]
    fn entries_inside_wider_ones_are_dropped() {
        let (kept, covered) = without_overlaps(vec![
            net("10.1.2.3/32"),
            net("10.1.0.0/16"),
            net("10.0.0.0/8"),
            net("10.0.0.0/8"),
            net("11.0.0.1/32"),
            net("2001:db8::1/128"),
            net("2001:db8::/64"),
        ]);
        assert_eq!(
            kept,
            [net("10.0.0.0/8"), net("11.0.0.1/32"), net("2001:db8::/64")]
        );
        assert_eq!(covered, 3);
    }
}
