//! One entry of the farm's stream, both ways: what a node writes for a ban
//! or unban it decided, and the checks a record read back must pass
//! before it reaches the enforcer. Whoever can write to Redis can write
//! anything there, so nothing is taken on trust: sizes are bounded, the
//! address or prefix must be one, the jail one this node shares, the ban
//! end in the future and within `max_bantime`, and no address this node
//! never bans (its `ignoreip`, its own addresses) is banned because the
//! farm said so.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::config::cluster::valid_node;
use crate::config::cluster::ClusterConfig;
use crate::config::Config;
use crate::enforce::enforcer::Shared;
use crate::message::Cause;

/// The record layout this node writes and reads.
pub const VERSION: &str = "1";
/// Most fields a record may have.
pub const MAX_FIELDS: usize = 16;
/// Longest field name or value (a jail name is 64, a cause 256 + its kind).
pub const MAX_VALUE: usize = 300;
/// Shortest prefix taken from the farm: a record cannot blank a continent.
pub const MIN_PREFIX_V4: u8 = 8;
pub const MIN_PREFIX_V6: u8 = 16;

/// Why a record read from the farm is not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("jail {0:?} is not one this node shares")]
    UnknownJail(String),
    #[error("{target} in jail {jail} covers {hit}, which this node never bans (ignoreip, ignoreself or its own address)")]
    Protected {
        jail: String,
        target: String,
        hit: IpNet,
    },
    #[error("ban of {target} in jail {jail} runs {secs}s more, beyond max_bantime ({max}s)")]
    TooLong {
        jail: String,
        target: String,
        secs: u64,
        max: u64,
    },
}

/// A stream entry's fields and values, as read.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What a record turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// To apply.
    Apply(Shared),
    /// Written by this node: already applied here.
    Own,
    /// A ban already over.
    Expired,
}

/// The fields written for `s` by `node`.
pub fn fields(node: &str, s: &Shared) -> Vec<(&'static str, String)> {
    match s {
        Shared::Ban {
            jail,
            target,
            until,
            cause,
        } => vec![
            ("v", VERSION.into()),
            ("node", node.into()),
            ("op", "ban".into()),
            ("jail", jail.to_string()),
            ("target", show(target)),
            ("until", millis(*until).to_string()),
            ("cause", cause.to_string()),
        ],
        Shared::Unban { jail, target } => vec![
            ("v", VERSION.into()),
            ("node", node.into()),
            ("op", "unban".into()),
            ("jail", jail.to_string()),
            ("target", show(target)),
        ],
    }
}

/// A ban's member in the set of active bans: one per jail and target.
pub fn active_member(jail: &str, target: &IpNet) -> String {
    format!("{jail} {}", show(target))
}

/// An address alone, a prefix with its length.
pub fn show(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a node checks records against: its config, and its own addresses
/// (looked up once per connection, not once per record).
pub struct Checker {
    pub config: Arc<Config>,
    pub cluster: ClusterConfig,
    pub own: Vec<IpNet>,
}

impl Checker {
    pub fn new(config: Arc<Config>, cluster: ClusterConfig) -> Checker {
        Checker {
            config,
            cluster,
            own: crate::config::ignore::own_networks(),
        }
    }

    /// A stream entry's fields, as read.
    pub fn check(
        &self,
        fields: &[(Vec<u8>, Vec<u8>)],
        now: SystemTime,
    ) -> Result<Checked, Refusal> {
        if fields.len() > MAX_FIELDS {
            return Err(bad(format!(
                "{} fields, at most {MAX_FIELDS}",
                fields.len()
            )));
        }
        let get = |name: &str| -> Result<Option<&str>, Refusal> {
            match fields.iter().find(|(k, _)| k == name.as_bytes()) {
                None => Ok(None),
                Some((_, v)) if v.len() > MAX_VALUE => Err(bad(format!(
                    "{name} is {} bytes, at most {MAX_VALUE}",
                    v.len()
                ))),
                Some((_, v)) => std::str::from_utf8(v)
                    .map(Some)
                    .map_err(|_| bad(format!("{name} is not UTF-8"))),
            }
        };
        let need = |name: &str| get(name)?.ok_or_else(|| bad(format!("no {name} field")));
        if need("v")? != VERSION {
            return Err(bad(format!(
                "version {:?}, this node reads {VERSION}",
                need("v")?
            )));
        }
        let node = need("node")?;
        if !valid_node(node) {
            return Err(bad(format!("node {node:?} is not a node name")));
        }
        if node == self.cluster.node {
            return Ok(Checked::Own);
        }
        let (op, jail, target) = (need("op")?, need("jail")?, need("target")?);
        self.decide(op, jail, target, get("until")?, get("cause")?, now)
    }

    /// The part of a record the active set holds too.
    fn decide(
        &self,
        op: &str,
        jail: &str,
        target: &str,
        until: Option<&str>,
        cause: Option<&str>,
        now: SystemTime,
    ) -> Result<Checked, Refusal> {
        if !self.cluster.shares(jail) || !self.config.jails.iter().any(|j| &*j.name == jail) {
            return Err(Refusal::UnknownJail(clean(jail)));
        }
        let target = parse_target(target)?;
        let jail: Arc<str> = Arc::from(jail);
        match op {
            "unban" => Ok(Checked::Apply(Shared::Unban { jail, target })),
            "ban" => {
                let until: u64 = until
                    .ok_or_else(|| bad("no until field".into()))?
                    .parse()
                    .map_err(|_| bad("until is not a time in milliseconds".into()))?;
                let now_ms = millis(now);
                if until <= now_ms {
                    return Ok(Checked::Expired);
                }
                let left = Duration::from_millis(until - now_ms);
                if left > self.cluster.max_bantime {
                    return Err(Refusal::TooLong {
                        jail: jail.to_string(),
                        target: show(&target),
                        secs: left.as_secs(),
                        max: self.cluster.max_bantime.as_secs(),
                    });
                }
                self.unprotected(&jail, &target)?;
                let cause = match cause {
                    None => Cause::default(),
                    Some(c) => c
                        .parse()
                        .map_err(|_| bad(format!("cause {:?}", clean(c))))?,
                };
                Ok(Checked::Apply(Shared::Ban {
                    jail,
                    target,
                    until: UNIX_EPOCH + Duration::from_millis(until),
                    cause,
                }))
            }
            other => Err(bad(format!(
                "op {:?} is neither ban nor unban",
                clean(other)
            ))),
        }
    }

    /// An entry of the active set (`jail target`, its end in ms).
    pub fn check_active(
        &self,
        member: &[u8],
        until: u64,
        now: SystemTime,
    ) -> Result<Checked, Refusal> {
        let text = std::str::from_utf8(member).map_err(|_| bad("not UTF-8".into()))?;
        let (jail, target) = text.split_once(' ').ok_or_else(|| {
            bad(format!(
                "active ban {:?} is not \"JAIL TARGET\"",
                clean(text)
            ))
        })?;
        let until = until.to_string();
        self.decide("ban", jail, target, Some(&until), None, now)
    }

    /// A ban this node must refuse: its jail's ignore list, or the node's
    /// own addresses whatever `ignoreself` says.
    fn unprotected(&self, jail: &str, target: &IpNet) -> Result<(), Refusal> {
        let ignore = self
            .config
            .jails
            .iter()
            .find(|j| &*j.name == jail)
            .and_then(|j| j.ignore.overlap(target));
        let own = || {
            self.own
                .iter()
                .find(|n| n.contains(&target.network()) || target.contains(&n.network()))
                .copied()
        };
        match ignore.or_else(own) {
            None => Ok(()),
            Some(hit) => Err(Refusal::Protected {
                jail: jail.to_string(),
                target: show(target),
                hit,
            }),
        }
    }
}

fn bad(why: String) -> Refusal {
    Refusal::Malformed(why)
}

/// Text from a record, fit for one log line.
fn clean(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An address (IPv4-mapped IPv6 taken as IPv4) or a network written
/// without host bits, not wider than [`MIN_PREFIX_V4`] / [`MIN_PREFIX_V6`].
fn parse_target(s: &str) -> Result<IpNet, Refusal> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(a.to_canonical()));
    }
    let net: IpNet = s.parse().map_err(|_| {
        bad(format!(
            "target {:?} is neither an address nor a prefix",
            clean(s)
        ))
    })?;
    if net.trunc() != net {
        return Err(bad(format!("prefix {net} has host bits set")));
    }
    let min = match net {
        IpNet::V4(_) => MIN_PREFIX_V4,
        IpNet::V6(_) => MIN_PREFIX_V6,
    };
    if net.prefix_len() < min {
        return Err(bad(format!("prefix {net} is wider than /{min}")));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn checker() -> Checker {
        let text = "[jail.sshd]\nfilter = \"sshd\"\nlogpath = \"/l\"\nignoreip = \"198.51.100.0/24\"\n\
                    [jail.local]\nfilter = \"sshd\"\nlogpath = \"/l\"\n\
                    [cluster]\nredis = \"redis://h\"\nnode = \"mx1\"\njails = [\"sshd\"]\nmax_bantime = \"1d\"\n";
        let config = Config::parse(text, Path::new("t.toml")).unwrap();
        let cluster = config.cluster.clone().unwrap();
        Checker::new(Arc::new(config), cluster)
    }

    fn rec(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn ban(target: &str, until: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let until = until.to_string();
        rec(&[
            ("v", "1"),
            ("node", "mx2"),
            ("op", "ban"),
            ("jail", "sshd"),
            ("target", target),
            ("until", &until),
            ("cause", "window 0"),
        ])
    }

    #[test]
    fn what_a_node_writes_another_reads() {
        let c = checker();
        let s = Shared::Ban {
            jail: Arc::from("sshd"),
            target: "192.0.2.7/32".parse().unwrap(),
            until: now() + Duration::from_secs(600),
            cause: Cause::Manual,
        };
        let f: Vec<(Vec<u8>, Vec<u8>)> = fields("mx2", &s)
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        assert_eq!(c.check(&f, now()), Ok(Checked::Apply(s.clone())));
        let own: Vec<(Vec<u8>, Vec<u8>)> = fields("mx1", &s)
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        assert_eq!(c.check(&own, now()), Ok(Checked::Own));
        let un = Shared::Unban {
            jail: Arc::from("sshd"),
            target: "2001:db8::/48".parse().unwrap(),
        };
        let f: Vec<(Vec<u8>, Vec<u8>)> = fields("mx2", &un)
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        assert_eq!(c.check(&f, now()), Ok(Checked::Apply(un)));
    }

    #[test]
    fn bad_records_are_refused_with_why() {
        let c = checker();
        let soon = millis(now()) + 60_000;
        let refused = |f: Vec<(Vec<u8>, Vec<u8>)>| c.check(&f, now()).unwrap_err().to_string();
        assert!(refused(ban("not-an-ip", soon)).contains("neither an address"));
        assert!(refused(ban("10.0.0.1/8", soon)).contains("host bits"));
        assert!(refused(ban("0.0.0.0/4", soon)).contains("wider"));
        assert!(refused(ban("198.51.100.9", soon)).contains("never bans"));
        assert!(refused(ban("127.0.0.1", soon)).contains("never bans"));
        let long = millis(now()) + 2 * 86_400_000;
        assert!(refused(ban("192.0.2.1", long)).contains("max_bantime"));
        let mut f = ban("192.0.2.1", soon);
        f[3].1 = b"local".to_vec();
        assert!(refused(f).contains("not one this node shares"));
        let mut f = ban("192.0.2.1", soon);
        f[5].1 = b"tomorrow".to_vec();
        assert!(refused(f).contains("until"));
        let mut f = ban("192.0.2.1", soon);
        f[4].1 = vec![b'1'; 4000];
        assert!(refused(f).contains("bytes"));
        let mut f = ban("192.0.2.1", soon);
        f.remove(0);
        assert!(refused(f).contains("no v field"));
        let mut f = ban("192.0.2.1", soon);
        f[2].1 = b"flush".to_vec();
        assert!(refused(f).contains("neither ban nor unban"));
        let f: Vec<_> = (0..40).map(|i| (vec![i], vec![i])).collect();
        assert!(refused(f).contains("fields"));
        assert_eq!(c.check(&ban("192.0.2.1", 5), now()), Ok(Checked::Expired));
    }

    #[test]
    fn active_entries_are_checked_like_records() {
        let c = checker();
        let soon = millis(now()) + 60_000;
        assert!(matches!(
            c.check_active(b"sshd 192.0.2.1", soon, now()),
            Ok(Checked::Apply(Shared::Ban { .. }))
        ));
        assert!(c.check_active(b"sshd 198.51.100.1", soon, now()).is_err());
        assert!(c.check_active(b"garbage", soon, now()).is_err());
    }
}
