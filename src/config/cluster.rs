//! `[cluster]`: farm mode, where nodes share their bans (and, if asked,
//! their failure counts) through a Redis server. Off unless `redis` is
//! given: a single host needs none of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use serde::Deserialize;
use toml::Spanned;

use super::{Checker, Files};

/// Durations the farm may hand a node, unless `max_bantime` says otherwise:
/// a record asking for longer is refused, so whoever can write to Redis
/// cannot ban an address here for ever.
pub const DEFAULT_MAX_BANTIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest node name: it travels in every record.
pub const MAX_NODE: usize = 64;

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `redis[s]://[user:password@]host[:port][/db]`.
    pub redis: Option<Spanned<String>>,
    /// rediss://: the CA (PEM) that signed the server's certificate;
    /// default: the system's roots.
    pub tls_ca: Option<Spanned<String>>,
    /// rediss:// with client certificates: this node's certificate chain
    /// and its private key (PEM), both or neither.
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    /// Unique per node; default: the host name.
    pub node: Option<Spanned<String>>,
    /// Jails whose bans (and counts) are shared; default: all.
    pub jails: Option<Spanned<Vec<Spanned<String>>>>,
    /// maxretry holds across the farm, not per node.
    pub shared_counting: Option<bool>,
    /// Longest ban accepted from the farm.
    pub max_bantime: Option<Spanned<toml::Value>>,
}

/// Farm mode, checked: bans (and counts) shared through Redis
/// (`Config::cluster`, None: off).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The URL as given, password included: only ever handed to the client.
    pub redis: String,
    /// This node's name in the records it publishes.
    pub node: String,
    /// Shared jails (None: all).
    pub jails: Option<Vec<String>>,
    pub shared_counting: bool,
    pub max_bantime: Duration,
    /// Some for rediss:// (TLS), None for redis://.
    pub tls: Option<TlsFiles>,
}

/// What rediss:// trusts and shows, as files read when the link starts
/// (checked when the config is loaded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA to trust (None: the system's roots).
    pub ca: Option<PathBuf>,
    /// Certificate chain and private key for client authentication.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl ClusterConfig {
    /// Whether `jail`'s bans and counts are shared.
    pub fn shares(&self, jail: &str) -> bool {
        self.jails
            .as_ref()
            .is_none_or(|j| j.iter().any(|x| x == jail))
    }

    /// The URL with its password hidden, for logs and `status`.
    pub fn redis_shown(&self) -> String {
        hide_password(&self.redis)
    }
}

/// The password never reaches a log line or a debug print.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis", &self.redis_shown())
            .field("node", &self.node)
            .field("jails", &self.jails)
            .field("shared_counting", &self.shared_counting)
            .field("max_bantime", &self.max_bantime)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Checker<'_> {
    /// `jails`: the enabled jails, which `cluster.jails` must name.
    pub(super) fn cluster_config(
        &mut self,
        raw: Option<&RawCluster>,
        jails: &[super::Jail],
    ) -> Option<ClusterConfig> {
        let raw = raw?;
        let jails: Vec<&str> = jails.iter().map(|j| &*j.name).collect();
        let Some(url) = raw.redis.as_ref() else {
            if raw.node.is_some() || raw.jails.is_some() || raw.shared_counting.is_some() {
                self.problem(
                    0..0,
                    "cluster.redis",
                    "[cluster] needs redis = \"redis://HOST:PORT\" (farm mode is off without it)",
                );
            }
            return None;
        };
        if let Err(msg) = check_url(url.get_ref()) {
            self.problem(url.span(), "cluster.redis", msg);
        }
        let tls = self.cluster_tls(raw, url.get_ref().starts_with("rediss://"));
        let node = match raw.node.as_ref() {
            Some(n) => {
                if !valid_node(n.get_ref()) {
                    self.problem(
                        n.span(),
                        "cluster.node",
                        format!("node name must be 1-{MAX_NODE} characters of A-Z a-z 0-9 . _ -"),
                    );
                }
                n.get_ref().clone()
            }
            None => match host_name() {
                Some(h) if valid_node(&h) => h,
                other => {
                    self.problem(
                        url.span(),
                        "cluster.node",
                        format!(
                            "the host name {:?} cannot name this node; set node = \"NAME\" \
                             (1-{MAX_NODE} characters of A-Z a-z 0-9 . _ -)",
                            other.unwrap_or_default()
                        ),
                    );
                    String::new()
                }
            },
        };
        let shared = raw.jails.as_ref().map(|list| {
            for j in list.get_ref() {
                if !jails.contains(&j.get_ref().as_str()) {
                    self.problem(
                        j.span(),
                        "cluster.jails",
                        format!(
                            "{:?} is not an enabled jail (enabled: {})",
                            j.get_ref(),
                            jails.join(", ")
                        ),
                    );
                }
            }
            list.get_ref().iter().map(|j| j.get_ref().clone()).collect()
        });
        let max_bantime = self
            .duration(raw.max_bantime.as_ref(), "cluster.max_bantime")
            .unwrap_or(DEFAULT_MAX_BANTIME);
        Some(ClusterConfig {
            redis: url.get_ref().clone(),
            node,
            jails: shared,
            shared_counting: raw.shared_counting.unwrap_or(false),
            max_bantime,
            tls,
        })
    }

    /// `tls_*`: only with rediss://, each file read and its PEM checked
    /// now, so a typo shows at `check`, not as a farm that never connects.
    fn cluster_tls(&mut self, raw: &RawCluster, tls: bool) -> Option<TlsFiles> {
        let given = [
            (&raw.tls_ca, "cluster.tls_ca"),
            (&raw.tls_cert, "cluster.tls_cert"),
            (&raw.tls_key, "cluster.tls_key"),
        ];
        if !tls {
            for (v, key) in given {
                if let Some(v) = v {
                    self.problem(
                        v.span(),
                        key,
                        "only for rediss:// (TLS): write redis = \"rediss://HOST:PORT\"",
                    );
                }
            }
            return None;
        }
        let ca = raw
            .tls_ca
            .as_ref()
            .map(|p| self.pem_file(p, "cluster.tls_ca", Pem::Certificates));
        let client = match (&raw.tls_cert, &raw.tls_key) {
            (Some(c), Some(k)) => Some((
                self.pem_file(c, "cluster.tls_cert", Pem::Certificates),
                self.pem_file(k, "cluster.tls_key", Pem::Key),
            )),
            (Some(one), None) | (None, Some(one)) => {
                self.problem(
                    one.span(),
                    if raw.tls_cert.is_some() {
                        "cluster.tls_cert"
                    } else {
                        "cluster.tls_key"
                    },
                    "a client certificate needs both tls_cert and tls_key",
                );
                None
            }
            (None, None) => None,
        };
        Some(TlsFiles { ca, client })
    }

    fn pem_file(&mut self, p: &Spanned<String>, key: &str, kind: Pem) -> PathBuf {
        let path = PathBuf::from(p.get_ref());
        if !path.is_absolute() {
            self.problem(p.span(), key, "must be an absolute path");
        } else if self.files != Files::Ignore {
            if let Err(msg) = check_pem(&path, kind) {
                self.problem(p.span(), key, msg);
            }
        }
        path
    }
}

#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    Key,
}

/// Reads `path` as the link will, and says what is wrong with it.
fn check_pem(path: &Path, kind: Pem) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match kind {
        Pem::Certificates => {
            let certs = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{shown}: not a PEM certificate file: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "{shown} holds no certificate (-----BEGIN CERTIFICATE-----)"
                ));
            }
        }
        Pem::Key => {
            PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| format!("{shown} holds no PEM private key: {e}"))?;
        }
    }
    Ok(())
}

pub fn valid_node(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NODE
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// This host's name as its UTS namespace says it.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string())
}

/// `redis[s]://[user[:password]@]host[:port][/db]`; what else is refused says
/// why and what to write instead.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected redis://[user:password@]HOST[:PORT][/DB]".into());
    };
    match scheme {
        "redis" | "rediss" => {}
        "redis+sentinel" | "redis-sentinel" | "sentinel" => {
            return Err(
                "Redis Sentinel URLs are not supported: give the master's redis://HOST:PORT \
                 (or a virtual address that follows it)"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "unknown scheme {other:?}: expected redis:// or rediss://[user:password@]HOST[:PORT][/DB]"
            ))
        }
    }
    let (authority, db) = match rest.split_once('/') {
        Some((a, db)) => (a, Some(db)),
        None => (rest, None),
    };
    let host_port = match authority.rsplit_once('@') {
        Some((auth, hp)) => {
            if auth.is_empty() {
                return Err("empty user:password before @".into());
            }
            hp
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host is written [ADDRESS]")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{h:?} is not an IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(format!("{host:?} is not a host name or address"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("{p:?} is not a port (1-65535)")),
        }
    }
    if let Some(db) = db.filter(|d| !d.is_empty()) {
        if db.parse::<u32>().is_err() {
            return Err(format!("{db:?} is not a database number"));
        }
    }
    Ok(())
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((auth, hp)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{hp}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    const JAIL: &str = "[jail.sshd]\nfilter = \"sshd\"\nlogpath = \"/var/log/auth.log\"\n";

    fn parse(cluster: &str) -> Result<Config, ConfigError> {
        let text = format!("{JAIL}[cluster]\n{cluster}\n");
        Config::parse(&text, Path::new("t.toml"))
    }

    #[test]
    fn off_unless_redis_is_given() {
        assert!(Config::parse(JAIL, Path::new("t.toml"))
            .unwrap()
            .cluster
            .is_none());
        let e = parse("node = \"mx1\"").unwrap_err().to_string();
        assert!(e.contains("cluster.redis"), "{e}");
    }

    #[test]
    fn a_full_section_is_read() {
        let c = parse(
            "redis = \"redis://nftjail:s3cret@10.0.0.5:6379/2\"\nnode = \"mx1\"\n\
             jails = [\"sshd\"]\nshared_counting = true\nmax_bantime = \"2d\"",
        )
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.node, "mx1");
        assert!(c.shares("sshd") && !c.shares("other"));
        assert!(c.shared_counting);
        assert_eq!(c.max_bantime, Duration::from_secs(2 * 86400));
        assert_eq!(c.redis_shown(), "redis://nftjail:***@10.0.0.5:6379/2");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn defaults_share_everything_under_the_host_name() {
        let c = parse("redis = \"redis://[::1]:6379\"")
            .unwrap()
            .cluster
            .unwrap();
        assert!(c.shares("anything"));
        assert!(!c.shared_counting);
        assert_eq!(c.max_bantime, DEFAULT_MAX_BANTIME);
        assert!(!c.node.is_empty());
    }

    #[test]
    fn refusals_name_file_line_column_and_key() {
        for (line, key, said) in [
            (
                "redis = \"redis://h\"\ntls_ca = \"/etc/ca.pem\"",
                "cluster.tls_ca",
                "only for rediss://",
            ),
            (
                "redis = \"rediss://h\"\ntls_ca = \"ca.pem\"",
                "cluster.tls_ca",
                "absolute",
            ),
            (
                "redis = \"rediss://h\"\ntls_cert = \"/etc/c.pem\"",
                "cluster.tls_cert",
                "both tls_cert and tls_key",
            ),
            (
                "redis = \"redis+sentinel://h:26379/mymaster\"",
                "cluster.redis",
                "Sentinel",
            ),
            ("redis = \"http://h\"", "cluster.redis", "scheme"),
            ("redis = \"redis://h:99999\"", "cluster.redis", "port"),
            ("redis = \"redis://h/x\"", "cluster.redis", "database"),
            (
                "redis = \"redis://h\"\nnode = \"a b\"",
                "cluster.node",
                "node name",
            ),
            (
                "redis = \"redis://h\"\njails = [\"nope\"]",
                "cluster.jails",
                "not an enabled jail",
            ),
            (
                "redis = \"redis://h\"\nmax_bantime = \"soon\"",
                "cluster.max_bantime",
                "",
            ),
            ("redis = \"redis://h\"\nport = 1", "port", ""),
        ] {
            let e = parse(line).unwrap_err().to_string();
            assert!(e.starts_with("t.toml:"), "{e}");
            assert!(e.contains(key) && e.contains(said), "{line}: {e}");
        }
        let e = parse("redis = \"sentinel://h:6379\"")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:5:9: cluster.redis: "), "{e}");
    }

    #[test]
    fn rediss_reads_its_files_when_the_config_is_loaded() {
        let c = parse("redis = \"rediss://h:6380\"")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.tls, Some(TlsFiles::default()), "the system's roots");
        assert_eq!(
            parse("redis = \"redis://h\"").unwrap().cluster.unwrap().tls,
            None
        );

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (key, path, said) in [
            ("tls_ca", &junk, "holds no certificate"),
            ("tls_ca", &missing, "cannot read"),
        ] {
            let text = format!(
                "{JAIL}[cluster]\nredis = \"rediss://h\"\n{key} = \"{}\"\n",
                path.display()
            );
            let e = Config::parse_with(&text, Path::new("t.toml"), Files::Run)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("t.toml:6:10: cluster.{key}: ")) && e.contains(said),
                "{e}"
            );
            // A text checked on its own does not look at the disk.
            assert!(Config::parse(&text, Path::new("t.toml")).is_ok());
        }
        let text = format!(
            "{JAIL}[cluster]\nredis = \"rediss://h\"\ntls_cert = \"{0}\"\ntls_key = \"{0}\"\n",
            junk.display()
        );
        let e = Config::parse_with(&text, Path::new("t.toml"), Files::Run)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cluster.tls_key") && e.contains("no PEM private key"),
            "{e}"
        );
    }
}
