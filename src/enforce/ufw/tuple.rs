//! One ban as ufw writes a rule: a `### tuple ###` line that ufw reads back
//! (for `ufw status`, and when it rewrites its files) followed by the
//! `-A ufw-user-input` lines it loads into the live chain. The text is what
//! `ufw reject from ADDR to any port P proto tcp comment C` would write, so
//! ufw rewriting the file for an admin's own command keeps it as it is.
//!
//! Our rules are told apart by their comment, `nftjail:JAIL`, followed by
//! `until` and the end of the ban in UTC when it has one: ufw has no
//! timeouts, so the file itself says when each ban ends, and a restart
//! (or another host reading the file) knows which ones are over.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::rules::{BlockType, PortRange, Proto};

/// What every comment of ours starts with.
pub const MARK: &str = "nftjail:";
/// Most ports (a range counts twice) iptables' multiport match takes.
const MULTIPORT_MAX: usize = 15;

/// The ports one tuple covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroup {
    /// None: tcp and udp both (ufw's `any` with a port).
    pub proto: Option<Proto>,
    /// ufw's spelling: `22`, `22,80`, `1000:2000`.
    pub ports: String,
}

/// What a jail's bans cover, worked out once per jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Empty: every port and protocol.
    pub groups: Vec<PortGroup>,
    /// The application profile the ports come from.
    pub app: Option<String>,
    pub blocktype: BlockType,
}

impl Target {
    /// A jail's ports, grouped as ufw groups them: one tuple per protocol,
    /// or one `any` tuple when tcp and udp list the same ports.
    pub fn from_ports(ports: &[PortRange], blocktype: BlockType) -> Target {
        let spelled = |proto: Proto| -> Vec<String> {
            let mut v: Vec<&PortRange> = ports.iter().filter(|p| p.proto == proto).collect();
            v.sort();
            v.dedup();
            v.iter()
                .map(|p| {
                    if p.first == p.last {
                        p.first.to_string()
                    } else {
                        format!("{}:{}", p.first, p.last)
                    }
                })
                .collect()
        };
        let (tcp, udp) = (spelled(Proto::Tcp), spelled(Proto::Udp));
        let mut groups = Vec::new();
        if !tcp.is_empty() && tcp == udp {
            groups.extend(chunks(None, &tcp));
        } else {
            groups.extend(chunks(Some(Proto::Tcp), &tcp));
            groups.extend(chunks(Some(Proto::Udp), &udp));
        }
        Target {
            groups,
            app: None,
            blocktype,
        }
    }
}

impl Target {
    /// Whether a ban refuses packets of IP protocol `proto` to `dport`.
    pub fn covers(&self, proto: u8, dport: Option<u16>) -> bool {
        if self.groups.is_empty() {
            return true;
        }
        let proto = match proto {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            _ => return false,
        };
        let Some(port) = dport else {
            return false;
        };
        let in_range = |r: &str| match r.split_once(':') {
            Some((a, b)) => {
                a.parse::<u16>().is_ok_and(|a| a <= port)
                    && b.parse::<u16>().is_ok_and(|b| port <= b)
            }
            None => r.parse::<u16>() == Ok(port),
        };
        self.groups
            .iter()
            .any(|g| g.proto.is_none_or(|p| p == proto) && g.ports.split(',').any(in_range))
    }
}

/// Port lists cut to what one multiport match takes.
pub fn chunks(proto: Option<Proto>, ports: &[String]) -> Vec<PortGroup> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut weight = 0;
    for p in ports {
        let w = if p.contains(':') { 2 } else { 1 };
        if weight + w > MULTIPORT_MAX {
            out.push(PortGroup {
                proto,
                ports: cur.join(","),
            });
            cur.clear();
            weight = 0;
        }
        cur.push(p);
        weight += w;
    }
    if !cur.is_empty() {
        out.push(PortGroup {
            proto,
            ports: cur.join(","),
        });
    }
    out
}

/// The comment of a ban: `nftjail:JAIL`, and `until` its end in UTC.
pub fn comment(jail: &str, until: Option<u64>) -> String {
    match until {
        None => format!("{MARK}{jail}"),
        Some(secs) => {
            let at = jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
                .unwrap_or(jiff::Timestamp::MAX);
            format!("{MARK}{jail} until {}", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        }
    }
}

/// A comment of ours read back: jail and end (unix seconds; None: permanent).
/// None for anyone else's comment, or one of ours that is garbled.
pub fn parse_comment(text: &str) -> Option<(String, Option<u64>)> {
    let rest = text.strip_prefix(MARK)?;
    match rest.split_once(" until ") {
        None if !rest.is_empty() && !rest.contains(' ') => Some((rest.to_string(), None)),
        None => None,
        Some((jail, at)) => {
            let ts: jiff::Timestamp = at.parse().ok()?;
            Some((jail.to_string(), u64::try_from(ts.as_second()).ok()))
        }
    }
}

/// The text of one ban: a block per port group (or one for every port).
pub fn render(out: &mut String, target: &Target, net: &IpNet, comment: &str, v6: bool) {
    let src = if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    };
    let dst = if v6 { "::/0" } else { "0.0.0.0/0" };
    let chain = if v6 {
        "ufw6-user-input"
    } else {
        "ufw-user-input"
    };
    let action = match target.blocktype {
        BlockType::Reject => "reject",
        BlockType::Drop => "deny",
    };
    let apps = match &target.app {
        Some(a) => format!(" {} -", a.replace(' ', "%20")),
        None => String::new(),
    };
    let hex = hex(comment);
    let any = [PortGroup {
        proto: None,
        ports: "any".into(),
    }];
    let groups = if target.groups.is_empty() {
        &any[..]
    } else {
        &target.groups[..]
    };
    for g in groups {
        let proto = g.proto.map_or("any".to_string(), |p| p.to_string());
        let _ = writeln!(
            out,
            "### tuple ### {action} {proto} {} {dst} any {src}{apps} in comment={hex}",
            g.ports
        );
        let protos: &[Option<Proto>] = match (g.proto, g.ports.as_str()) {
            (_, "any") => &[None],
            (Some(Proto::Tcp), _) => &[Some(Proto::Tcp)],
            (Some(Proto::Udp), _) => &[Some(Proto::Udp)],
            (None, _) => &[Some(Proto::Tcp), Some(Proto::Udp)],
        };
        for p in protos {
            out.push_str("-A ");
            out.push_str(chain);
            if let Some(p) = p {
                if g.ports.contains([',', ':']) {
                    let _ = write!(out, " -p {p} -m multiport --dports {}", g.ports);
                } else {
                    let _ = write!(out, " -p {p} --dport {}", g.ports);
                }
            }
            let _ = write!(out, " -s {src}");
            match (target.blocktype, p) {
                (BlockType::Drop, _) => out.push_str(" -j DROP"),
                (BlockType::Reject, Some(Proto::Tcp)) => {
                    out.push_str(" -j REJECT --reject-with tcp-reset")
                }
                (BlockType::Reject, _) => out.push_str(" -j REJECT"),
            }
            if let Some(a) = &target.app {
                let _ = write!(
                    out,
                    " -m comment --comment 'dapp_{}'",
                    a.replace(' ', "%20")
                );
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

/// ufw keeps comments hex-encoded in its files.
fn hex(s: &str) -> String {
    s.bytes().fold(String::new(), |mut o, b| {
        let _ = write!(o, "{b:02x}");
        o
    })
}

fn unhex(s: &str) -> Option<String> {
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A ban of ours read from a `### tuple ###` line: jail, banned net, end.
pub fn parse_ours(tuple: &str) -> Option<(String, IpNet, Option<u64>)> {
    let rest = tuple.strip_prefix("### tuple ###")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let comment = fields.iter().find_map(|f| f.strip_prefix("comment="))?;
    let (jail, until) = parse_comment(&unhex(comment)?)?;
    // action proto dport dst sport src …
    let src = fields.get(5)?;
    let net: IpNet = src
        .parse()
        .or_else(|_| src.parse::<std::net::IpAddr>().map(IpNet::from))
        .ok()?;
    Some((jail, net, until))
}

/// Any rule's `### tuple ###` line, read: what an import needs to know of
/// the admin's rules (which networks ufw lets in wholesale, which it
/// refuses by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `allow`, `deny`, `reject`, `limit`, with ufw's `_log`/`_log-all`.
    pub action: String,
    pub proto: String,
    pub dport: String,
    pub dst: String,
    pub sport: String,
    pub src: String,
    /// The application profile the rule names on the destination side.
    pub app: Option<String>,
    /// `in`, `out`, `fwd`, with `_IFACE` when it names an interface.
    pub direction: String,
    /// Decoded from ufw's hex.
    pub comment: Option<String>,
}

impl Rule {
    /// The line read back: `None` when it is not one ufw writes.
    pub fn parse(line: &str) -> Option<Rule> {
        let rest = line.strip_prefix("### tuple ###")?;
        let mut fields: Vec<&str> = rest.split_whitespace().collect();
        let comment = match fields.last().and_then(|f| f.strip_prefix("comment=")) {
            Some(c) => {
                let c = unhex(c);
                fields.pop();
                c
            }
            None => None,
        };
        let app = |a: &str| (a != "-").then(|| a.replace("%20", " "));
        let (app, direction) = match fields.len() {
            7 => (None, fields[6]),
            9 => (app(fields[6]), fields[8]),
            _ => return None,
        };
        Some(Rule {
            action: fields[0].to_string(),
            proto: fields[1].to_string(),
            dport: fields[2].to_string(),
            dst: fields[3].to_string(),
            sport: fields[4].to_string(),
            src: fields[5].to_string(),
            app,
            direction: direction.to_string(),
            comment,
        })
    }

    /// The source as a network (a bare address is one host).
    pub fn src_net(&self) -> Option<IpNet> {
        self.src
            .parse()
            .ok()
            .or_else(|| self.src.parse::<std::net::IpAddr>().ok().map(IpNet::from))
    }

    /// Whether the rule covers every port, protocol and destination, on
    /// the way in: `ufw allow|reject|deny from NET` and nothing more.
    pub fn is_wholesale(&self) -> bool {
        let any_dst = matches!(self.dst.as_str(), "0.0.0.0/0" | "::/0" | "any");
        self.proto == "any"
            && self.dport == "any"
            && self.sport == "any"
            && any_dst
            && self.app.is_none()
            && self.direction == "in"
    }
}

/// Whether a tuple is an admin's rule that lets traffic in (`allow`,
/// `limit`, with or without logging, on the input side): ours go above
/// the first of those.
pub fn lets_in(tuple: &str) -> bool {
    let mut f = tuple
        .strip_prefix("### tuple ###")
        .unwrap_or("")
        .split_whitespace();
    let action = f.next().unwrap_or("");
    let direction = f.rfind(|w| !w.starts_with("comment=")).unwrap_or("");
    (action.starts_with("allow") || action.starts_with("limit")) && direction.starts_with("in")
}

/// Unix seconds at which a ban of `bantime` started at `now` ends
/// (rounded up: a ban never ends early); None past what a date can say,
/// which is as good as permanent.
pub fn until(now: SystemTime, bantime: Duration) -> Option<u64> {
    let d = now.checked_add(bantime)?.duration_since(UNIX_EPOCH).ok()?;
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    // jiff's dates end in the year 9999.
    (secs < 253_402_300_799).then_some(secs)
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
    fn a_ban_is_written_as_ufw_writes_it() {
        let t = Target::from_ports(&[tcp(22, 22)], BlockType::Reject);
        let mut out = String::new();
        render(
            &mut out,
            &t,
            &"1.2.3.4/32".parse().unwrap(),
            "nftjail:sshd",
            false,
        );
        assert_eq!(
            out,
            "### tuple ### reject tcp 22 0.0.0.0/0 any 1.2.3.4 in comment=6e66746a61696c3a73736864\n\
             -A ufw-user-input -p tcp --dport 22 -s 1.2.3.4 -j REJECT --reject-with tcp-reset\n\n"
        );
        let first = out.lines().next().unwrap();
        assert_eq!(
            parse_ours(first),
            Some(("sshd".into(), "1.2.3.4/32".parse().unwrap(), None))
        );
    }

    #[test]
    fn every_port_and_both_protocols_and_drop() {
        let t = Target::from_ports(&[], BlockType::Drop);
        let mut out = String::new();
        render(
            &mut out,
            &t,
            &"2001:db8::/64".parse().unwrap(),
            "nftjail:x",
            true,
        );
        assert!(out.starts_with("### tuple ### deny any any ::/0 any 2001:db8::/64 in comment="));
        assert!(out.contains("\n-A ufw6-user-input -s 2001:db8::/64 -j DROP\n"));
        let both = Target::from_ports(
            &[
                tcp(80, 80),
                PortRange {
                    proto: Proto::Udp,
                    first: 80,
                    last: 80,
                },
            ],
            BlockType::Reject,
        );
        let mut out = String::new();
        render(
            &mut out,
            &both,
            &"1.2.3.4/32".parse().unwrap(),
            "nftjail:x",
            false,
        );
        assert!(out.contains("-p tcp --dport 80 -s 1.2.3.4 -j REJECT --reject-with tcp-reset\n"));
        assert!(out.contains("-p udp --dport 80 -s 1.2.3.4 -j REJECT\n"));
    }

    #[test]
    fn a_target_covers_its_ports_and_protocols_only() {
        let t = Target::from_ports(&[tcp(22, 22), tcp(1000, 2000)], BlockType::Reject);
        assert!(t.covers(6, Some(22)) && t.covers(6, Some(1500)));
        assert!(!t.covers(17, Some(22)) && !t.covers(6, Some(80)) && !t.covers(1, None));
        assert!(Target::from_ports(&[], BlockType::Drop).covers(1, None));
    }

    #[test]
    fn an_application_profile_ban_is_written_as_ufw_writes_it() {
        let t = Target {
            groups: vec![
                PortGroup {
                    proto: Some(Proto::Tcp),
                    ports: "6881".into(),
                },
                PortGroup {
                    proto: None,
                    ports: "51413".into(),
                },
            ],
            app: Some("KTorrent".into()),
            blocktype: BlockType::Reject,
        };
        let mut out = String::new();
        render(
            &mut out,
            &t,
            &"1.2.3.4/32".parse().unwrap(),
            "nftjail:x",
            false,
        );
        assert_eq!(
            out,
            "### tuple ### reject tcp 6881 0.0.0.0/0 any 1.2.3.4 KTorrent - in comment=6e66746a61696c3a78\n\
             -A ufw-user-input -p tcp --dport 6881 -s 1.2.3.4 -j REJECT --reject-with tcp-reset -m comment --comment 'dapp_KTorrent'\n\n\
             ### tuple ### reject any 51413 0.0.0.0/0 any 1.2.3.4 KTorrent - in comment=6e66746a61696c3a78\n\
             -A ufw-user-input -p tcp --dport 51413 -s 1.2.3.4 -j REJECT --reject-with tcp-reset -m comment --comment 'dapp_KTorrent'\n\
             -A ufw-user-input -p udp --dport 51413 -s 1.2.3.4 -j REJECT -m comment --comment 'dapp_KTorrent'\n\n"
        );
    }

    #[test]
    fn many_ports_are_cut_for_multiport() {
        let ports: Vec<PortRange> = (1..=20).map(|p| tcp(p, p)).collect();
        let t = Target::from_ports(&ports, BlockType::Reject);
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.groups[1].ports, "16,17,18,19,20");
    }

    #[test]
    fn the_end_of_a_ban_is_read_back() {
        let c = comment("sshd", Some(1_800_000_000));
        assert_eq!(c, "nftjail:sshd until 2027-01-15T08:00:00Z");
        assert_eq!(
            parse_comment(&c),
            Some(("sshd".into(), Some(1_800_000_000)))
        );
        assert_eq!(parse_comment("admin said so"), None);
        assert_eq!(unhex(&hex(&c)).as_deref(), Some(c.as_str()));
    }

    #[test]
    fn an_admins_rule_is_read_back() {
        let lan = Rule::parse("### tuple ### allow any any 0.0.0.0/0 any 10.7.57.0/24 in").unwrap();
        assert!(lan.is_wholesale() && lan.action == "allow");
        assert_eq!(lan.src_net(), Some("10.7.57.0/24".parse().unwrap()));
        let app = Rule::parse(
            "### tuple ### allow tcp 587 0.0.0.0/0 any 0.0.0.0/0 zimbra-submission - in",
        )
        .unwrap();
        assert_eq!(app.app.as_deref(), Some("zimbra-submission"));
        assert!(!app.is_wholesale());
        let f2b = Rule::parse(&format!(
            "### tuple ### reject any any 0.0.0.0/0 any 203.0.113.9 in comment={}",
            hex("by Fail2Ban after 3 attempts")
        ))
        .unwrap();
        assert_eq!(f2b.comment.as_deref(), Some("by Fail2Ban after 3 attempts"));
        assert_eq!(f2b.src_net(), Some("203.0.113.9/32".parse().unwrap()));
        assert_eq!(Rule::parse("### tuple ### allow any"), None);
    }

    #[test]
    fn allow_and_limit_rules_on_input_let_in() {
        assert!(lets_in(
            "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in"
        ));
        assert!(lets_in(
            "### tuple ### limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in_eth0 comment=61"
        ));
        assert!(!lets_in(
            "### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in"
        ));
        assert!(!lets_in(
            "### tuple ### allow any any 0.0.0.0/0 any 0.0.0.0/0 out"
        ));
    }
}
