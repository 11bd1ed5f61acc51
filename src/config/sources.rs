//! Where jails read from besides plain files: `logpath` globs, the systemd
//! journal (`journal = [...]`), the syslog receiver (`syslog = [...]`), and
//! the `[syslog]`, `[journal]` and `daemon.state_dir` keys they need.

use std::net::SocketAddr;

use ipnet::IpNet;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{RawJournal, RawSyslog};
use super::Checker;
pub use crate::source::journal::{JournalConfig, JournalMatch};

/// The syslog receiver's listening places; none configured means no receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyslogConfig {
    /// A unix datagram socket (what rsyslog's omuxsock and `logger --socket` write to).
    pub socket: Option<PathBuf>,
    /// A UDP address, always a specific local one (never every interface).
    pub udp: Option<SocketAddr>,
    /// Who may send over UDP, which anyone able to reach the port can
    /// forge: loopback by default, and required when `udp` is not loopback.
    pub udp_senders: Vec<IpNet>,
}

impl SyslogConfig {
    pub fn is_configured(&self) -> bool {
        self.socket.is_some() || self.udp.is_some()
    }
}

/// True when the path's file name holds a glob (`*`, `?` or `[`).
pub fn is_glob(path: &Path) -> bool {
    has_glob(&path.to_string_lossy())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Checker<'_> {
    pub(super) fn syslog_config(&mut self, raw: &RawSyslog) -> SyslogConfig {
        let socket = raw.socket.as_ref().and_then(|p| {
            if p.get_ref().len() > super::MAX_SOCKET_PATH {
                let why = super::socket_too_long(p.get_ref());
                self.problem(p.span(), "syslog.socket", why);
                None
            } else if Path::new(p.get_ref()).is_absolute() {
                Some(PathBuf::from(p.get_ref()))
            } else {
                self.problem(p.span(), "syslog.socket", "must be an absolute path");
                None
            }
        });
        let udp = raw
            .udp
            .as_ref()
            .and_then(|a| match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_unspecified() => {
                    self.problem(
                        a.span(),
                        "syslog.udp",
                        "give a specific local address (e.g. \"127.0.0.1:5514\"), not every interface",
                    );
                    None
                }
                Ok(addr) if addr.port() == 0 => {
                    self.problem(a.span(), "syslog.udp", "give a port other than 0");
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        a.span(),
                        "syslog.udp",
                        "expected ADDRESS:PORT, e.g. \"127.0.0.1:5514\" or \"[::1]:5514\"",
                    );
                    None
                }
            });
        let udp_senders = self.udp_senders(raw, udp);
        SyslogConfig {
            socket,
            udp,
            udp_senders,
        }
    }

    /// The UDP sender list, or the loopback networks when `udp` is a
    /// loopback address and none is given. A non-loopback `udp` without a
    /// list is refused: defaulting to loopback would silently drop every
    /// remote message, and defaulting to everyone lets anyone who reaches
    /// the port have any address banned.
    fn udp_senders(&mut self, raw: &RawSyslog, udp: Option<SocketAddr>) -> Vec<IpNet> {
        let Some(list) = &raw.udp_senders else {
            if let (Some(addr), Some(a)) = (udp, &raw.udp) {
                if !addr.ip().is_loopback() {
                    self.problem(
                        a.span(),
                        "syslog.udp_senders",
                        "required when syslog.udp is not a loopback address: list the addresses or networks allowed to send (UDP senders can be forged; prefer [syslog] socket)",
                    );
                }
            }
            return crate::source::syslog::loopback_senders();
        };
        if list.get_ref().is_empty() {
            self.problem(
                list.span(),
                "syslog.udp_senders",
                "give at least one address or network, or leave the key out for loopback only",
            );
        }
        let mut nets = Vec::new();
        for item in list.get_ref() {
            match super::ignore::parse_net(item.get_ref()) {
                Ok(n) => nets.push(n),
                Err(msg) => self.problem(item.span(), "syslog.udp_senders", msg),
            }
        }
        nets
    }

    pub(super) fn journal_config(&mut self, raw: &RawJournal) -> JournalConfig {
        let dir = raw.dir.as_ref().and_then(|p| {
            if Path::new(p.get_ref()).is_absolute() {
                Some(PathBuf::from(p.get_ref()))
            } else {
                self.problem(p.span(), "journal.dir", "must be an absolute path");
                None
            }
        });
        JournalConfig { dir }
    }

    /// Paths and globs; a glob may stand only in the file name, since its
    /// directory is what is watched for new files.
    pub(super) fn logpaths(&mut self, v: &Spanned<toml::Value>, key: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut placed = Vec::new();
        let span = v.span();
        let mut from = span.start;
        for s in self.strings(v, key) {
            let at = self.item_span(&span, &s, &mut from);
            let path = PathBuf::from(&s);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let dir = path.parent().map(|d| d.to_string_lossy().into_owned());
            if has_glob(dir.as_deref().unwrap_or("")) {
                self.problem(
                    v.span(),
                    key,
                    format!("{s:?}: a glob may stand only in the file name, not in its directory"),
                );
                continue;
            }
            if let Some(name) = name.filter(|n| has_glob(n)) {
                if let Err(e) = glob::Pattern::new(&name) {
                    self.problem(v.span(), key, format!("{s:?}: bad glob: {e}"));
                    continue;
                }
            }
            placed.push((path.clone(), at));
            out.push(path);
        }
        self.log_files(key, &placed);
        out
    }

    pub(super) fn journal_matches(
        &mut self,
        v: &Spanned<toml::Value>,
        key: &str,
    ) -> Vec<JournalMatch> {
        let mut out = Vec::new();
        for s in self.strings(v, key) {
            match JournalMatch::parse(&s) {
                Ok(m) => out.push(m),
                Err(msg) => self.problem(v.span(), key, msg),
            }
        }
        out
    }

    pub(super) fn syslog_programs(
        &mut self,
        v: &Spanned<toml::Value>,
        key: &str,
        receiver: &SyslogConfig,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.strings(v, key) {
            if s.is_empty() || s.contains(char::is_whitespace) || s.len() > 128 {
                self.problem(
                    v.span(),
                    key,
                    format!("{s:?}: a program name is 1-128 characters without spaces"),
                );
            } else {
                out.push(s);
            }
        }
        if !out.is_empty() && !receiver.is_configured() {
            self.problem(
                v.span(),
                key,
                "no syslog receiver: set [syslog] socket and/or udp",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn errors(text: &str) -> String {
        match Config::parse(text, Path::new("t.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const JAIL: &str = "[jail.j]\nfailregex = ['from <HOST>']\n";

    #[test]
    fn source_keys_are_checked_and_located() {
        let e = errors(&format!("{JAIL}logpath = \"/var/*/x.log\"\n"));
        assert!(e.contains("t.toml:3:11: jail.j.logpath: \"/var/*/x.log\": a glob may stand only in the file name"), "{e}");
        let e = errors(&format!("{JAIL}journal = [\"unit=ssh\"]\n"));
        assert!(
            e.contains("t.toml:3:11: jail.j.journal: \"unit\" is not a journal field name"),
            "{e}"
        );
        let e = errors(&format!("{JAIL}syslog = \"sshd\"\n"));
        assert!(
            e.contains("t.toml:3:10: jail.j.syslog: no syslog receiver"),
            "{e}"
        );
        let e = errors(&format!(
            "[syslog]\nudp = \"0.0.0.0:514\"\n{JAIL}syslog = \"sshd\"\n"
        ));
        assert!(
            e.contains("t.toml:2:7: syslog.udp: give a specific local address"),
            "{e}"
        );
        let e = errors(&format!(
            "[syslog]\nsocket = \"rel.sock\"\n{JAIL}logpath = \"/dev/null\"\n"
        ));
        assert!(
            e.contains("t.toml:2:10: syslog.socket: must be an absolute path"),
            "{e}"
        );
        let e = errors(&format!(
            "[daemon]\nstate_dir = \"x\"\n{JAIL}logpath = \"/dev/null\"\n"
        ));
        assert!(
            e.contains("daemon.state_dir: must be an absolute path"),
            "{e}"
        );
        let e = errors(JAIL);
        assert!(
            e.contains("jail.j: an enabled jail needs a logpath, journal or syslog source"),
            "{e}"
        );
    }

    #[test]
    fn sources_parse() {
        let text = format!(
            "[daemon]\nstate_dir = \"/tmp/s\"\n[syslog]\nsocket = \"/run/x.sock\"\nudp = \"[::1]:5514\"\n\
             [journal]\ndir = \"/tmp/j\"\n{JAIL}logpath = [\"/var/log/a/*error.log\", \"/var/log/b.log\"]\n\
             journal = [\"_SYSTEMD_UNIT=ssh.service\", \"SYSLOG_IDENTIFIER=a _PID=1\"]\nsyslog = [\"postfix/smtpd\"]\n"
        );
        let c = Config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let j = &c.jails[0];
        assert!(is_glob(&j.logpaths[0]) && !is_glob(&j.logpaths[1]));
        assert_eq!(j.journal.len(), 2);
        assert_eq!(j.journal[1].terms.len(), 2);
        assert_eq!(j.syslog, ["postfix/smtpd"]);
        assert_eq!(c.state_dir, Path::new("/tmp/s"));
        assert_eq!(c.syslog.udp.map(|a| a.port()), Some(5514));
        assert_eq!(c.journal.dir.as_deref(), Some(Path::new("/tmp/j")));
    }

    #[test]
    fn syslog_udp_senders_required_off_loopback() {
        let e = errors(&format!(
            "[syslog]\nudp = \"192.0.2.1:5514\"\n{JAIL}syslog = \"sshd\"\n"
        ));
        assert!(
            e.contains("t.toml:2:7: syslog.udp_senders: required when syslog.udp is not a loopback address"),
            "{e}"
        );
        let e = errors(&format!(
            "[syslog]\nudp = \"192.0.2.1:5514\"\nudp_senders = [\"10.0.0.0/8\", \"nope\"]\n{JAIL}syslog = \"sshd\"\n"
        ));
        assert!(
            e.contains("t.toml:3:30: syslog.udp_senders: \"nope\""),
            "{e}"
        );
        let e = errors(&format!(
            "[syslog]\nudp = \"192.0.2.1:5514\"\nudp_senders = []\n{JAIL}syslog = \"sshd\"\n"
        ));
        assert!(
            e.contains("t.toml:3:15: syslog.udp_senders: give at least one"),
            "{e}"
        );
        let text = format!(
            "[syslog]\nudp = \"192.0.2.1:5514\"\nudp_senders = [\"10.0.0.0/8\", \"::1\"]\n{JAIL}syslog = \"sshd\"\n"
        );
        let c = Config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<IpNet> = ["10.0.0.0/8", "::1/128"].map(|n| n.parse().unwrap()).into();
        assert_eq!(c.syslog.udp_senders, want);
        // Loopback without a list: loopback senders only.
        let text = format!("[syslog]\nudp = \"127.0.0.1:5514\"\n{JAIL}syslog = \"sshd\"\n");
        let c = Config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.syslog.udp_senders,
            crate::source::syslog::loopback_senders()
        );
    }

    #[test]
    fn journal_match_terms() {
        let m = JournalMatch::parse(" _SYSTEMD_UNIT=ssh.service  _PID=1 ").unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(m.to_string(), "_PID=1 _SYSTEMD_UNIT=ssh.service");
        assert!(JournalMatch::parse("").is_err());
        assert!(JournalMatch::parse("unit=ssh").is_err());
        assert!(JournalMatch::parse("1X=a").is_err());
        assert!(JournalMatch::parse("NOEQUALS").is_err());
        // A value may hold '=' and '/'.
        let m = JournalMatch::parse("SYSLOG_IDENTIFIER=postfix/smtpd MESSAGE=a=b");
        assert!(m.is_ok());
    }
}
