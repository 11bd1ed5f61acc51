//! Addresses a jail must never ban: `ignoreip` networks, `[daemon] never`
//! networks, plus, with `ignoreself`, loopback and every address of this
//! host.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    /// Every network below: what [`IgnoreList::contains`] looks at.
    nets: Vec<IpNet>,
    /// Of those, the ones `[daemon] never` names.
    never: Vec<IpNet>,
    /// Of those, the ones `ignoreself` added.
    own: Vec<IpNet>,
}

/// Why an [`IgnoreList`] protects a network, for the log line that says
/// why a prefix was not banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    IgnoreIp,
    Never,
    OwnAddress,
}

impl std::fmt::Display for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protected::IgnoreIp => "the jail's ignoreip",
            Protected::Never => "[daemon] never",
            Protected::OwnAddress => "an address of this host",
        })
    }
}

impl IgnoreList {
    pub fn new(mut nets: Vec<IpNet>, ignoreself: bool) -> Self {
        let own = if ignoreself {
            own_networks()
        } else {
            Vec::new()
        };
        nets.extend(own.iter().copied());
        nets.sort();
        nets.dedup();
        IgnoreList {
            nets,
            never: Vec::new(),
            own,
        }
    }

    /// Adds the networks `[daemon] never` names.
    pub fn with_never(mut self, never: &[IpNet]) -> Self {
        self.never = never.to_vec();
        self.nets.extend_from_slice(never);
        self.nets.sort();
        self.nets.dedup();
        self
    }

    /// An ignored network inside or around `net`, with why it is ignored.
    pub fn protected(&self, net: &IpNet) -> Option<(IpNet, Protected)> {
        let hit = self.overlap(net)?;
        let why = if self.never.contains(&hit) {
            Protected::Never
        } else if self.own.contains(&hit) {
            Protected::OwnAddress
        } else {
            Protected::IgnoreIp
        };
        Some((hit, why))
    }

    /// True when `addr` (normalized: IPv4-mapped IPv6 counts as IPv4) must not be banned.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// An ignored network inside or around `net`, if any: banning `net`
    /// would ban some address this list protects.
    pub fn overlap(&self, net: &IpNet) -> Option<IpNet> {
        self.nets
            .iter()
            .find(|n| n.contains(&net.network()) || net.contains(&n.network()))
            .copied()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

/// Parses one `ignoreip` item: an address or a CIDR network.
pub fn parse_net(item: &str) -> Result<IpNet, String> {
    let item = item.trim();
    if let Ok(net) = item.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    item.parse::<IpAddr>()
        .map(|a| IpNet::from(a.to_canonical()))
        .map_err(|_| {
            format!("{item:?} is neither an IP address nor a CIDR network (e.g. 192.0.2.0/24, 2001:db8::/32)")
        })
}

/// A warning when `item` is a network written with host bits set
/// (`1.2.3.4/8`), which is read as its network (`1.0.0.0/8`): far more
/// than the one address it looks like.
pub fn host_bits(item: &str) -> Option<String> {
    let net = item.trim().parse::<IpNet>().ok()?;
    let trunc = net.trunc();
    (net != trunc).then(|| {
        format!(
            "{item:?} has host bits set and is read as {trunc}, every address of that network; \
             write {trunc} if that is meant, or {} alone for one address",
            net.addr()
        )
    })
}

/// Loopback ranges and the host's own interface addresses (fail2ban's
/// `ignoreself`), as they are now.
pub fn own_networks() -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    nets.extend(interface_addresses().into_iter().map(IpNet::from));
    nets
}

fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let sa = (*cur).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        out.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

impl super::Checker<'_> {
    /// `ignoreip`: addresses and networks, in a string or a list, split on
    /// commas and blanks as fail2ban writes them.
    pub(super) fn ignoreip(
        &mut self,
        v: Option<&toml::Spanned<toml::Value>>,
        key: &str,
    ) -> Vec<ipnet::IpNet> {
        let Some(v) = v else { return Vec::new() };
        let mut nets = Vec::new();
        let span = v.span();
        let mut from = span.start;
        for item in self.strings(v, key) {
            for word in item.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
                let at = self.item_span(&span, word, &mut from);
                match parse_net(word) {
                    Ok(n) => {
                        // `ban` refuses such a prefix; here it was always
                        // read as its network, so it still is, but said.
                        if let Some(widened) = host_bits(word) {
                            self.warning(at, key, widened);
                        }
                        nets.push(n)
                    }
                    Err(msg) => self.problem(v.span(), key, msg),
                }
            }
        }
        nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_and_single_addresses() {
        let nets = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
            .iter()
            .map(|s| parse_net(s).unwrap())
            .collect();
        let list = IgnoreList::new(nets, false);
        assert!(list.contains(ip("192.0.2.200")));
        assert!(list.contains(ip("::ffff:192.0.2.1")));
        assert!(list.contains(ip("2001:db8:1::5")));
        assert!(list.contains(ip("198.51.100.7")));
        assert!(!list.contains(ip("198.51.100.8")));
        assert!(!list.contains(ip("127.0.0.1")));
        assert!(!list.contains(ip("2001:db9::1")));
    }

    #[test]
    fn ignoreself_covers_loopback() {
        let list = IgnoreList::new(Vec::new(), true);
        assert!(list.contains(ip("127.0.0.1")));
        assert!(list.contains(ip("127.8.9.10")));
        assert!(list.contains(ip("::1")));
    }

    #[test]
    fn bad_items() {
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("300.1.1.1").is_err());
        assert!(parse_net("example.org").is_err());
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn host_bits_are_told() {
        let w = host_bits("1.2.3.4/8").unwrap();
        assert!(
            w.contains("read as 1.0.0.0/8") && w.contains("1.2.3.4 alone"),
            "{w}"
        );
        assert_eq!(host_bits("1.0.0.0/8"), None);
        assert_eq!(host_bits("1.2.3.4"), None);
        assert_eq!(host_bits("2001:db8::1/128"), None);
    }
}
