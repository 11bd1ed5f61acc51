//! Configuration: the TOML file (`raw`) checked once into ready-to-run values.
//!
//! Nothing downstream parses strings: durations, networks, port ranges and
//! compiled filters all come out of [`Config::parse`]. Every problem is reported
//! with file:line:col and its key, all at once, and a config with any problem is
//! refused whole, so the daemon never runs half-configured.

mod backend;
pub mod blocklist;
pub mod cluster;
pub mod duration;
pub mod error;
pub mod files;
mod group;
pub mod ignore;
pub mod metrics;
pub mod persist;
pub mod port;
pub mod prefix;
mod raw;
pub mod sources;
pub mod strict;
pub mod windows;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

pub use backend::BackendKind;
use error::Locator;
pub use error::{ConfigError, Problem};
pub use files::Files;
use ignore::IgnoreList;
pub use metrics::MetricsConfig;
use persist::OnStop;
use raw::{RawConfig, RawJail};
pub use sources::{JournalConfig, JournalMatch, SyslogConfig};
pub use windows::{AccountRule, Window};

use crate::filter::{self, fail2ban, Filter, FilterDef};
use crate::rules::{BlockType, JailRules, PortRange};

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/nftjail/nftjail.toml";
/// Where the daemon listens for `nftjail status`, `ban`, `reload`...
pub const DEFAULT_SOCKET: &str = "/run/nftjail/nftjail.sock";
/// The config compiled into the binary, used when no file exists at [`DEFAULT_PATH`].
pub const EMBEDDED: &str = include_str!("../../config/nftjail.toml");
/// What [`Config::origin`] says for the built-in config.
pub const EMBEDDED_ORIGIN: &str = "<embedded>";

const DEFAULT_BANTIME: Duration = Duration::from_secs(600);
const DEFAULT_FINDTIME: Duration = Duration::from_secs(600);
const DEFAULT_MAXRETRY: u32 = 5;
/// Default cap on addresses whose failures are counted (all jails together).
pub const DEFAULT_MAX_TRACKED: usize = 1_000_000;
/// Longest jail name: the set name `<jail>-v6` must stay well under the
/// kernel's 256-byte limit and readable in `nft list`.
const MAX_JAIL_NAME: usize = 64;

/// A checked, ready-to-run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<embedded>` for the built-in one).
    pub origin: PathBuf,
    pub backend: BackendKind,
    pub table: String,
    /// ufw backend: ours go before the admin's Nth rule of each family
    /// (None: just above the admin's first ALLOW).
    pub ufw_position: Option<usize>,
    /// Cap on failure windows kept by the tracker.
    pub max_tracked: usize,
    /// Enabled jails only, in name order.
    pub jails: Vec<Jail>,
    /// Control socket path.
    pub socket: PathBuf,
    /// Group given read-write access to the control socket (mode 0660), by gid.
    pub socket_group: Option<(String, u32)>,
    /// The state store's directory.
    pub state_dir: PathBuf,
    pub on_stop: OnStop,
    /// Ban history older than this no longer counts for bantime increment.
    pub dbpurgeage: Duration,
    /// Failures and bans older than this are forgotten by `report`.
    pub report_keep: Duration,
    pub syslog: SyslogConfig,
    pub journal: JournalConfig,
    /// Where Prometheus metrics are served (None: not at all).
    pub metrics: Option<MetricsConfig>,
    pub cluster: Option<cluster::ClusterConfig>,
    /// Networks no jail bans (`[daemon] never`), also in every jail's ignore list.
    pub never: Vec<ipnet::IpNet>,
    /// What is accepted but likely not what was meant (an `ignoreip`
    /// network written with host bits), located: `check` prints them,
    /// `run` and `reload` log them.
    pub warnings: Vec<Problem>,
}

/// Where a fail2ban filter comes from: `sshd[mode=aggressive]` or a path, and
/// the filter.d directory it is looked up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2banSpec {
    pub spec: String,
    pub dir: PathBuf,
}

impl Fail2banSpec {
    pub fn load(&self) -> Result<fail2ban::Fail2banFilter, fail2ban::Fail2banError> {
        fail2ban::Fail2banFilter::load(&self.spec, &self.dir)
    }
}

/// One enabled jail.
#[derive(Debug, Clone)]
pub struct Jail {
    pub name: Arc<str>,
    pub filter: Arc<Filter>,
    /// `filter = "fail2ban:NAME[opts]"`: a fail2ban filter file run as
    /// fail2ban runs it (each log reader loads its own instance, since such a
    /// filter keeps state: maxlines buffers, the date format of its file).
    pub fail2ban: Option<Fail2banSpec>,
    /// Files, or globs in the file name (`/var/log/apache2/*error.log`).
    pub logpaths: Vec<PathBuf>,
    /// Journal entries this jail reads (any of them).
    pub journal: Vec<JournalMatch>,
    /// Programs whose messages to the syslog receiver this jail reads.
    pub syslog: Vec<String>,
    /// Empty: every port and protocol.
    pub ports: Vec<PortRange>,
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: Duration,
    pub ignore: IgnoreList,
    pub blocktype: BlockType,
    /// The ufw application profile whose ports a ban covers (ufw backend only).
    pub app: Option<String>,
    /// Longer bans for repeat offenders (`bantime_increment = true`).
    pub increment: Option<crate::bantime::Increment>,
    /// A file of addresses and networks banned without timeout.
    pub blocklist: Option<PathBuf>,
    /// `[jail.X.prefix]`: bans of a prefix many of whose addresses fail.
    pub prefix: Option<prefix::PrefixRule>,
    /// A single IPv6 attacker is banned as its prefix of this length.
    pub ban_v6_as: Option<u8>,
    /// `[[jail.X.window]]` besides its own, and `[jail.X.account]`.
    pub windows: Vec<Window>,
    pub account: Option<AccountRule>,
}

impl Jail {
    pub fn rules(&self) -> JailRules {
        JailRules {
            name: self.name.to_string(),
            ports: self.ports.clone(),
            blocktype: self.blocktype,
            app: self.app.clone(),
        }
    }
}

impl Config {
    /// Reads `path`, or the embedded config when `path` is None and the default
    /// file does not exist; the log paths it names are looked at as `run`
    /// would open them (see [`files`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, Files::Run)
    }

    /// [`Config::load`], looking at the files as `files` says.
    pub fn load_with(path: Option<&Path>, files: Files) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Config::parse(EMBEDDED, Path::new(EMBEDDED_ORIGIN)),
        };
        if let Some(reason) = strict::unsafe_reason(&path) {
            return Err(ConfigError::Unsafe { path, reason });
        }
        let text = files::read_config(&path)?;
        Config::parse_with(&text, &path, files)
    }

    /// Parses and checks `text`; `origin` names it in errors. The disk is
    /// not looked at.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, origin, Files::Ignore)
    }

    /// [`Config::parse`], looking at the files it names as `files` says.
    pub fn parse_with(text: &str, origin: &Path, files: Files) -> Result<Config, ConfigError> {
        let loc = Locator { file: origin, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = loc.key_path_at(span.start);
            ConfigError::Invalid(vec![loc.at(span, key, e.message().trim())])
        })?;
        Checker {
            loc,
            problems: Vec::new(),
            warnings: Vec::new(),
            files,
        }
        .check(raw)
    }

    /// Enabled jail names, in order.
    pub fn jail_names(&self) -> Vec<&str> {
        self.jails.iter().map(|j| &*j.name).collect()
    }

    /// Jails with bantime increment on, by name.
    pub fn increments(&self) -> std::collections::HashMap<String, crate::bantime::Increment> {
        self.jails
            .iter()
            .filter_map(|j| Some((j.name.to_string(), j.increment.clone()?)))
            .collect()
    }

    pub fn jail_rules(&self) -> Vec<JailRules> {
        self.jails.iter().map(Jail::rules).collect()
    }
}

/// Collects every problem while turning the raw config into a checked one.
struct Checker<'a> {
    loc: Locator<'a>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    files: Files,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, key: &str, msg: impl Into<String>) {
        let p = self.loc.at(span, key, msg);
        self.problems.push(p);
    }

    fn warning(&mut self, span: Range<usize>, key: &str, msg: impl Into<String>) {
        let p = self.loc.at(span, key, msg);
        self.warnings.push(p);
    }

    /// Where `item` is written inside the value at `span`, looking from
    /// `*from` on (so a repeated item is found at its own place), at its
    /// opening quote if it has one; the whole value when it is not found
    /// as written (spelled with escapes).
    fn item_span(&self, span: &Range<usize>, item: &str, from: &mut usize) -> Range<usize> {
        let text = self.loc.text;
        let start = (*from).clamp(span.start, span.end.min(text.len()));
        let Some(found) = text
            .get(start..span.end.min(text.len()))
            .and_then(|t| t.find(item))
        else {
            return span.clone();
        };
        let at = start + found;
        *from = at + item.len();
        let quoted = text[..at].ends_with(['"', '\'']);
        (if quoted { at - 1 } else { at })..at + item.len()
    }

    fn check(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let backend = self.backend(&raw.daemon);
        let table = match raw.daemon.table.as_ref() {
            None => "nftjail".to_string(),
            Some(t) => {
                if !valid_name(t.get_ref()) {
                    self.problem(
                        t.span(),
                        "daemon.table",
                        "table name must be 1-64 characters of A-Z a-z 0-9 _ -",
                    );
                }
                t.get_ref().clone()
            }
        };
        let ufw_position = self.ufw_position(&raw.daemon);
        let max_tracked = match raw.daemon.max_tracked.as_ref() {
            None => DEFAULT_MAX_TRACKED,
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.problem(
                        v.span(),
                        "daemon.max_tracked",
                        "must be a whole number from 1 up",
                    );
                    DEFAULT_MAX_TRACKED
                }
            },
        };
        let socket = match raw.daemon.socket.as_ref() {
            None => PathBuf::from(DEFAULT_SOCKET),
            Some(p) if p.get_ref().len() > MAX_SOCKET_PATH => {
                self.problem(p.span(), "daemon.socket", socket_too_long(p.get_ref()));
                PathBuf::from(DEFAULT_SOCKET)
            }
            Some(p) if Path::new(p.get_ref()).is_absolute() => PathBuf::from(p.get_ref()),
            Some(p) => {
                self.problem(p.span(), "daemon.socket", "must be an absolute path");
                PathBuf::from(DEFAULT_SOCKET)
            }
        };
        let socket_group = match raw.daemon.socket_group.as_ref() {
            None => None,
            Some(g) => match group::group_id(g.get_ref()) {
                Some(gid) => Some((g.get_ref().clone(), gid)),
                None => {
                    self.problem(
                        g.span(),
                        "daemon.socket_group",
                        format!("no such group {:?} on this system", g.get_ref()),
                    );
                    None
                }
            },
        };
        let state_dir = self.state_dir(&raw.daemon);
        let on_stop = self.on_stop(&raw.daemon);
        let dbpurgeage = self
            .duration(raw.daemon.dbpurgeage.as_ref(), "daemon.dbpurgeage")
            .unwrap_or(persist::DEFAULT_DBPURGEAGE);
        let report_keep = self.report_keep(&raw.daemon);
        let filter_dir = raw
            .daemon
            .filter_dir
            .as_ref()
            .map(|d| PathBuf::from(d.get_ref()))
            .unwrap_or_else(|| PathBuf::from("/etc/nftjail/filters"));

        let syslog_config = self.syslog_config(&raw.syslog);
        let journal_config = self.journal_config(&raw.journal);
        let metrics = self.metrics_config(raw.metrics.as_ref());
        let never = self.never(raw.daemon.never.as_ref());

        let d = &raw.defaults;
        let default_bantime = self
            .duration(d.bantime.as_ref(), "defaults.bantime")
            .unwrap_or(DEFAULT_BANTIME);
        let default_findtime = self
            .duration(d.findtime.as_ref(), "defaults.findtime")
            .unwrap_or(DEFAULT_FINDTIME);
        let default_maxretry = self
            .maxretry(d.maxretry.as_ref(), "defaults.maxretry")
            .unwrap_or(DEFAULT_MAXRETRY);
        let default_ignore = self.ignoreip(d.ignoreip.as_ref(), "defaults.ignoreip");
        let default_blocktype = self
            .blocktype(d.blocktype.as_ref(), "defaults.blocktype")
            .unwrap_or_default();
        let default_ports = d.port.as_ref().map(|p| self.ports(p, "defaults.port"));
        let default_ignoreself = d.ignoreself.unwrap_or(true);
        let default_increment = d.increment();

        let mut jails = Vec::new();
        for (name, spanned) in &raw.jail {
            let span = spanned.span();
            let j: &RawJail = spanned.get_ref();
            let key = format!("jail.{name}");
            if !valid_name(name) {
                self.problem(
                    span.clone(),
                    &key,
                    "jail name must be 1-64 characters of A-Z a-z 0-9 _ - (it names kernel sets)",
                );
                continue;
            }
            if !j.enabled.unwrap_or(true) {
                continue;
            }
            let fail2ban = j
                .filter
                .as_ref()
                .and_then(|f| Some((f, f.get_ref().strip_prefix("fail2ban:")?)))
                .and_then(|(f, spec)| self.fail2ban(name, spec, f.span()));
            let filter = if fail2ban.is_some() {
                Some(Arc::new(Filter::empty(name)))
            } else {
                self.filter(name, j, &filter_dir, span.clone())
            };
            let logpaths = match j.logpath.as_ref() {
                Some(v) => self.logpaths(v, &format!("{key}.logpath")),
                None => Vec::new(),
            };
            let journal = match j.journal.as_ref() {
                Some(v) => self.journal_matches(v, &format!("{key}.journal")),
                None => Vec::new(),
            };
            let syslog = match j.syslog.as_ref() {
                Some(v) => self.syslog_programs(v, &format!("{key}.syslog"), &syslog_config),
                None => Vec::new(),
            };
            if j.logpath.is_none() && j.journal.is_none() && j.syslog.is_none() {
                self.problem(
                    span.clone(),
                    &key,
                    "an enabled jail needs a logpath, journal or syslog source",
                );
            }
            let ports = match j.port.as_ref() {
                Some(p) => self.ports(p, &format!("{key}.port")),
                None => default_ports.clone().unwrap_or_default(),
            };
            let mut nets = default_ignore.clone();
            nets.extend(self.ignoreip(j.ignoreip.as_ref(), &format!("{key}.ignoreip")));
            let increment = self.increment(&default_increment, &j.increment(), &key);
            let mut jail = Jail {
                increment,
                blocklist: self.jail_blocklist(j.blocklist.as_ref(), d.blocklist.as_ref(), &key),
                name: Arc::from(name.as_str()),
                // A placeholder keeps checking the other keys; the config is
                // refused anyway since the filter problem was recorded.
                filter: filter.unwrap_or_else(|| Arc::new(Filter::empty(name))),
                fail2ban,
                logpaths,
                journal,
                syslog,
                ports,
                maxretry: self
                    .maxretry(j.maxretry.as_ref(), &format!("{key}.maxretry"))
                    .unwrap_or(default_maxretry),
                findtime: self
                    .duration(j.findtime.as_ref(), &format!("{key}.findtime"))
                    .unwrap_or(default_findtime),
                bantime: self
                    .duration(j.bantime.as_ref(), &format!("{key}.bantime"))
                    .unwrap_or(default_bantime),
                ignore: IgnoreList::new(nets, j.ignoreself.unwrap_or(default_ignoreself))
                    .with_never(&never),
                blocktype: self
                    .blocktype(j.blocktype.as_ref(), &format!("{key}.blocktype"))
                    .unwrap_or(default_blocktype),
                app: j.app.as_ref().map(|a| a.get_ref().clone()),
                prefix: None,
                ban_v6_as: self.ban_v6_as(j.ban_v6_as.as_ref(), &key),
                windows: Vec::new(),
                account: None,
            };
            jail.prefix = self.prefix_rule(j.prefix.as_ref(), &key, jail.findtime, jail.bantime);
            self.extra_rules(j, &key, &mut jail);
            jails.push(jail);
        }
        let cluster = self.cluster_config(raw.cluster.as_ref(), &jails);
        if self.problems.is_empty() {
            Ok(Config {
                origin: self.loc.file.to_path_buf(),
                backend,
                table,
                ufw_position,
                max_tracked,
                socket,
                socket_group,
                jails,
                state_dir,
                on_stop,
                dbpurgeage,
                report_keep,
                syslog: syslog_config,
                journal: journal_config,
                metrics,
                cluster,
                never,
                warnings: self.warnings,
            })
        } else {
            Err(ConfigError::Invalid(self.problems))
        }
    }

    fn filter(
        &mut self,
        jail: &str,
        j: &RawJail,
        filter_dir: &Path,
        jail_span: Range<usize>,
    ) -> Option<Arc<Filter>> {
        let key = format!("jail.{jail}");
        let (def, name, span, fkey) = match (&j.filter, &j.failregex) {
            (Some(f), Some(r)) => {
                self.problem(
                    r.span(),
                    &format!("{key}.failregex"),
                    format!(
                        "give either filter = {:?} or failregex, not both",
                        f.get_ref()
                    ),
                );
                return None;
            }
            (Some(f), None) => {
                let name = f.get_ref();
                let fkey = format!("{key}.filter");
                let def = match self.named_filter(name, filter_dir) {
                    Ok(def) => def,
                    Err(msg) => {
                        self.problem(f.span(), &fkey, msg);
                        return None;
                    }
                };
                let mut def = def;
                if let Some(extra) = &j.ignoreregex {
                    def.ignoreregex.extend(extra.get_ref().iter().cloned());
                }
                (def, name.clone(), f.span(), fkey)
            }
            (None, Some(r)) => {
                let def = FilterDef {
                    description: format!("inline filter of jail {jail}"),
                    failregex: r.get_ref().clone(),
                    ignoreregex: j
                        .ignoreregex
                        .as_ref()
                        .map(|i| i.get_ref().clone())
                        .unwrap_or_default(),
                };
                (def, jail.to_string(), r.span(), format!("{key}.failregex"))
            }
            (None, None) => {
                self.problem(
                    jail_span,
                    &key,
                    "a jail needs filter = \"NAME\" or an inline failregex list",
                );
                return None;
            }
        };
        match Filter::compile(&def, &name) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                self.problem(span, &fkey, e.to_string());
                None
            }
        }
    }

    /// Loads a fail2ban filter once to check it; readers load their own.
    fn fail2ban(&mut self, jail: &str, spec: &str, span: Range<usize>) -> Option<Fail2banSpec> {
        let dir = PathBuf::from(fail2ban::DEFAULT_FILTER_DIR);
        match fail2ban::Fail2banFilter::load(spec, &dir) {
            Ok(_) => Some(Fail2banSpec {
                spec: spec.to_string(),
                dir,
            }),
            Err(e) => {
                self.problem(span, &format!("jail.{jail}.filter"), e.to_string());
                None
            }
        }
    }

    fn named_filter(&self, name: &str, dir: &Path) -> Result<FilterDef, String> {
        if !valid_name(name) {
            return Err(format!("filter name {name:?} must be A-Z a-z 0-9 _ -"));
        }
        // An admin's file of the same name replaces the built-in filter.
        let file = dir.join(format!("{name}.toml"));
        if file.exists() {
            if let Some(reason) = strict::unsafe_reason(&file) {
                return Err(format!("refusing filter {}: {reason}", file.display()));
            }
            return filter::load_filter_file(&file).map_err(|e| e.to_string());
        }
        match filter::library(name) {
            Some(text) => FilterDef::parse(text, &format!("<built-in filter {name}>"))
                .map_err(|e| e.to_string()),
            None => Err(format!(
                "unknown filter {name:?}: not in {} nor the built-in library ({})",
                dir.display(),
                filter::library_names().join(", ")
            )),
        }
    }

    fn duration(&mut self, v: Option<&Spanned<toml::Value>>, key: &str) -> Option<Duration> {
        let v = v?;
        let parsed = match v.get_ref() {
            toml::Value::Integer(n) if *n > 0 => {
                duration::within_limit(Duration::from_secs(n.unsigned_abs()))
            }
            toml::Value::Integer(_) => Err("must be positive".to_string()),
            toml::Value::String(s) => duration::parse_duration(s),
            other => Err(format!(
                "expected seconds or a string like \"10m\", found {}",
                other.type_str()
            )),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.problem(v.span(), key, "must be longer than 0 s");
                None
            }
            Ok(d) => Some(d),
            Err(msg) => {
                self.problem(v.span(), key, msg);
                None
            }
        }
    }

    fn maxretry(&mut self, v: Option<&Spanned<i64>>, key: &str) -> Option<u32> {
        let v = v?;
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.problem(v.span(), key, "must be a whole number from 1 up");
                None
            }
        }
    }

    fn blocktype(&mut self, v: Option<&Spanned<String>>, key: &str) -> Option<BlockType> {
        let v = v?;
        match v.get_ref().as_str() {
            "reject" => Some(BlockType::Reject),
            "drop" => Some(BlockType::Drop),
            other => {
                self.problem(
                    v.span(),
                    key,
                    format!("unknown blocktype {other:?} (use \"reject\" or \"drop\")"),
                );
                None
            }
        }
    }

    /// A string (items separated by commas or spaces, as fail2ban writes them),
    /// a number, or a list of either.
    fn strings(&mut self, v: &Spanned<toml::Value>, key: &str) -> Vec<String> {
        let item = |x: &toml::Value| match x {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(n) => Some(n.to_string()),
            _ => None,
        };
        let out: Option<Vec<String>> = match v.get_ref() {
            toml::Value::Array(a) => a.iter().map(item).collect(),
            other => item(other).map(|s| vec![s]),
        };
        out.unwrap_or_else(|| {
            self.problem(v.span(), key, "expected a string or a list of strings");
            Vec::new()
        })
    }

    fn ports(&mut self, v: &Spanned<toml::Value>, key: &str) -> Vec<PortRange> {
        let items = self.strings(v, key);
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        port::parse_ports(&refs).unwrap_or_else(|msg| {
            self.problem(v.span(), key, msg);
            Vec::new()
        })
    }
}

/// Longest path a unix socket address holds (`sun_path`, less its NUL):
/// a longer one could only fail when the daemon binds it.
const MAX_SOCKET_PATH: usize = 107;

fn socket_too_long(path: &str) -> String {
    format!(
        "{} bytes long: a unix socket path holds at most {MAX_SOCKET_PATH}; choose a shorter one",
        path.len()
    )
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_JAIL_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
