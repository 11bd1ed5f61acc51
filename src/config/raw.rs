//! The config file as written: serde structs that mirror the TOML exactly,
//! with spans kept on every value that still needs checking.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub jail: BTreeMap<String, Spanned<RawJail>>,
    #[serde(default)]
    pub syslog: RawSyslog,
    #[serde(default)]
    pub journal: RawJournal,
    pub metrics: Option<RawMetrics>,
    pub cluster: Option<super::cluster::RawCluster>,
}

/// Prometheus metrics: off unless `listen` is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `address:port` to serve `GET /metrics` on.
    pub listen: Option<Spanned<String>>,
    /// Lets `listen` be a non-loopback or wildcard address.
    pub allow_public: Option<bool>,
}

/// The syslog receiver: where rsyslog, syslog-ng or `logger` send to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// Unix datagram socket path.
    pub socket: Option<Spanned<String>>,
    /// Local `address:port` to receive UDP on.
    pub udp: Option<Spanned<String>>,
    /// Addresses and networks allowed to send over UDP.
    pub udp_senders: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Where the systemd journal is read from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    /// A directory of journal files instead of the system journal.
    pub dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// `auto` (default: nft, else ufw), `nft`, `ufw` or `log` (dry run: bans are only logged).
    pub backend: Option<Spanned<String>>,
    /// Name of our nftables table (family inet).
    pub table: Option<Spanned<String>>,
    /// ufw backend: ours go before the admin's Nth rule of each family
    /// (default: just above the first ALLOW).
    pub ufw_position: Option<Spanned<i64>>,
    /// Directory searched for `NAME.toml` filters before the built-in library.
    pub filter_dir: Option<Spanned<String>>,
    /// Cap on addresses whose failures are being counted (oldest forgotten first).
    pub max_tracked: Option<Spanned<i64>>,
    /// Path of the control socket.
    pub socket: Option<Spanned<String>>,
    /// Group allowed to use the control socket besides root.
    pub socket_group: Option<Spanned<String>>,
    /// Directory of the state store (bans, history, read positions).
    pub state_dir: Option<Spanned<String>>,
    /// `keep` (default) or `flush`: what SIGTERM does to the kernel's bans.
    pub on_stop: Option<Spanned<String>>,
    /// How long ban history is kept for bantime increment.
    pub dbpurgeage: Option<Spanned<toml::Value>>,
    /// How long failures and bans are kept for `nftjail report` and `explain`.
    pub report_keep: Option<Spanned<toml::Value>>,
    /// Networks never banned, by any jail, automatically or by hand.
    pub never: Option<Spanned<toml::Value>>,
}

/// fail2ban's `bantime.*` keys, spelled with `_` (a TOML key cannot be both a
/// value and a table). Shared by `[defaults]` and each jail.
#[derive(Debug, Default, Clone)]
pub struct RawIncrement {
    pub bantime_increment: Option<bool>,
    pub bantime_factor: Option<Spanned<toml::Value>>,
    pub bantime_multipliers: Option<Spanned<toml::Value>>,
    pub bantime_maxtime: Option<Spanned<toml::Value>>,
    pub bantime_rndtime: Option<Spanned<toml::Value>>,
    pub bantime_overalljails: Option<bool>,
}

/// Values every jail inherits unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub bantime: Option<Spanned<toml::Value>>,
    pub findtime: Option<Spanned<toml::Value>>,
    pub maxretry: Option<Spanned<i64>>,
    pub ignoreip: Option<Spanned<toml::Value>>,
    pub ignoreself: Option<bool>,
    pub blocktype: Option<Spanned<String>>,
    pub port: Option<Spanned<toml::Value>>,
    pub bantime_increment: Option<bool>,
    pub bantime_factor: Option<Spanned<toml::Value>>,
    pub bantime_multipliers: Option<Spanned<toml::Value>>,
    pub bantime_maxtime: Option<Spanned<toml::Value>>,
    pub bantime_rndtime: Option<Spanned<toml::Value>>,
    pub bantime_overalljails: Option<bool>,
    /// A file of addresses and networks every jail bans without timeout.
    pub blocklist: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJail {
    pub enabled: Option<bool>,
    pub filter: Option<Spanned<String>>,
    pub failregex: Option<Spanned<Vec<String>>>,
    pub ignoreregex: Option<Spanned<Vec<String>>>,
    pub logpath: Option<Spanned<toml::Value>>,
    pub port: Option<Spanned<toml::Value>>,
    pub maxretry: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<toml::Value>>,
    pub bantime: Option<Spanned<toml::Value>>,
    pub ignoreip: Option<Spanned<toml::Value>>,
    pub ignoreself: Option<bool>,
    pub blocktype: Option<Spanned<String>>,
    /// A ufw application profile whose ports the ban covers (ufw backend).
    pub app: Option<Spanned<String>>,
    pub bantime_increment: Option<bool>,
    pub bantime_factor: Option<Spanned<toml::Value>>,
    pub bantime_multipliers: Option<Spanned<toml::Value>>,
    pub bantime_maxtime: Option<Spanned<toml::Value>>,
    pub bantime_rndtime: Option<Spanned<toml::Value>>,
    pub bantime_overalljails: Option<bool>,
    /// journalctl-style matches: entries OR'd, `FIELD=value` terms in one entry AND'd.
    pub journal: Option<Spanned<toml::Value>>,
    /// Program names (syslog tag / APP-NAME) whose messages this jail reads.
    pub syslog: Option<Spanned<toml::Value>>,
    /// A file of addresses and networks banned without timeout ("": none).
    pub blocklist: Option<Spanned<String>>,
    /// Bans of a whole prefix many of whose addresses fail.
    pub prefix: Option<Spanned<super::prefix::RawPrefix>>,
    /// The IPv6 prefix length one IPv6 attacker is banned as.
    pub ban_v6_as: Option<Spanned<i64>>,
    /// `[[jail.X.window]]`: more windows besides the jail's own.
    pub window: Option<Spanned<Vec<Spanned<super::windows::RawWindow>>>>,
    /// `[jail.X.account]`: bans for spraying one account.
    pub account: Option<Spanned<super::windows::RawAccount>>,
}

/// The `bantime_*` keys of `[defaults]` or of a jail, gathered (serde's
/// flatten would lose the spans and the unknown-key check).
macro_rules! increment_of {
    ($t:ty) => {
        impl $t {
            pub fn increment(&self) -> RawIncrement {
                RawIncrement {
                    bantime_increment: self.bantime_increment,
                    bantime_factor: self.bantime_factor.clone(),
                    bantime_multipliers: self.bantime_multipliers.clone(),
                    bantime_maxtime: self.bantime_maxtime.clone(),
                    bantime_rndtime: self.bantime_rndtime.clone(),
                    bantime_overalljails: self.bantime_overalljails,
                }
            }
        }
    };
}
increment_of!(RawDefaults);
increment_of!(RawJail);
