//! The ufw half of the move from fail2ban + ufw: which jails ban through
//! fail2ban's `ufw` action and with which of its options (resolved as
//! fail2ban resolves them: `action.d/ufw.conf`, its `.local`, then the
//! jail's `ufw[k=v]`), and what the admin's own ufw rules say: networks
//! let in wholesale (offered as `ignoreip`) and networks refused by hand
//! (offered as a blocklist).

use std::path::{Path, PathBuf};

use std::fmt::Write as _;

use anyhow::{Context, Result};
use ipnet::IpNet;

use nftjail::enforce::ufw::apps;
use nftjail::enforce::ufw::tuple::{PortGroup, Rule, MARK};
use nftjail::filter::fail2ban::{parse_spec, JailConfig};

use super::policy::quote;
use super::{ImportBackend, Summary, UfwContext, BLOCKLIST_FILE};

/// `[daemon]` and `[defaults]` for the jails that banned through ufw: the
/// backend they ban in, and the admin's hand-made refusals as a blocklist.
pub fn prelude(
    ufw: &UfwContext,
    blocklist: Option<&Path>,
    summary: &mut Summary,
) -> Result<String> {
    let mut t = String::new();
    if ufw.jails.is_empty() {
        return Ok(t);
    }
    let (backend, why) = match ufw.opts.backend {
        ImportBackend::Nft => (
            "nft",
            "bans go into nftjail's own nftables table, which refuses an address\n\
             # even where ufw's chains accept its port; ufw's rules stay as they are",
        ),
        ImportBackend::Ufw => (
            "ufw",
            "bans are rules in ufw's own files, shown by `ufw status numbered`,\n\
             # as fail2ban's ufw action made them",
        ),
    };
    let _ = writeln!(
        t,
        "[daemon]\n# Jails {} banned through fail2ban's ufw action;\n# {why}.\nbackend = {}\n",
        ufw.jails.join(", "),
        quote(backend)
    );
    summary.did.push(format!(
        "jails {} banned through fail2ban's ufw action: backend = {backend:?}",
        ufw.jails.join(", ")
    ));
    let Some(host) = ufw.host else {
        summary.left.push(match &ufw.unread {
            Some(why) => format!("no ufw rules read: {why}"),
            None => format!(
                "no ufw rules read: {} has no user.rules (--ufw-dir names ufw's directory)",
                ufw.opts.ufw_dir.display()
            ),
        });
        return Ok(t);
    };
    if host.fail2ban_bans > 0 {
        summary.left.push(format!(
            "{} ufw rules are fail2ban's own current bans (comment \"by Fail2Ban …\"): fail2ban \
             removes them when it stops",
            host.fail2ban_bans
        ));
    }
    if host.refused.is_empty() {
        return Ok(t);
    }
    let deletes: Vec<String> = host.refused.iter().map(|r| r.delete_command()).collect();
    match blocklist {
        Some(path) => {
            std::fs::write(path, blocklist_text(&host.refused))
                .with_context(|| format!("cannot write {}", path.display()))?;
            let _ = writeln!(
                t,
                "[defaults]\n# The networks refused by hand in ufw ({} of them), banned by every jail\n\
                 # on its ports without timeout. They stay in ufw too, until\n\
                 # `nftjail import-fail2ban --move-ufw-rules` once nftjail holds them.\nblocklist = {}\n",
                host.refused.len(),
                quote(&path.display().to_string())
            );
            summary.did.push(format!(
                "the admin's {} hand-made ufw refusals written to {} (blocklist = in [defaults])",
                host.refused.len(),
                path.display()
            ));
            summary.left.push(format!(
                "those rules stay in ufw, so nothing is unprotected in between; once nftjail runs \
                 with the blocklist, `nftjail import-fail2ban --move-ufw-rules` removes from ufw \
                 those the daemon holds (or by hand:\n{}). ufw refused them on every port; the \
                 blocklist refuses them on the jails' ports",
                deletes.join("\n")
            ));
        }
        None => summary.left.push(format!(
            "the admin's hand-made ufw refusals ({}) were not written as a blocklist: give -o FILE \
             and they are written beside it as {BLOCKLIST_FILE}. They stay in ufw.",
            host.refused
                .iter()
                .map(|r| r.net.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    Ok(t)
}

/// fail2ban's ufw action of one jail, its options resolved.
#[derive(Debug, Default)]
pub struct UfwAction {
    /// As the jail names it (`ufw`, `ufw[application=x]`).
    pub spec: String,
    pub application: Option<String>,
    /// `reject` or `deny`.
    pub blocktype: String,
    /// Where fail2ban put its rules: `prepend`, `insert N` (newer action)
    /// or `insertpos` (older one).
    pub position: Option<String>,
    pub kill_mode: Option<String>,
}

/// The jail's ufw action, if it bans through ufw: an `action` line whose
/// name starts with `ufw`, else a `banaction` that does.
pub fn action_of(config: &JailConfig, jail: &str) -> Result<Option<UfwAction>> {
    let lines = config.get(jail, "action")?.unwrap_or_default();
    let banaction = config.get(jail, "banaction")?.unwrap_or_default();
    let spec = lines
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ufw"))
        .or_else(|| Some(banaction.trim()).filter(|b| b.starts_with("ufw")));
    let Some(spec) = spec else {
        return Ok(None);
    };
    let (name, own) = parse_spec(spec).with_context(|| format!("action {spec:?}"))?;
    let mut opts = config
        .action_options(&name)
        .with_context(|| format!("action.d/{name}"))?
        .unwrap_or_default();
    for (k, v) in own {
        match opts.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => opts.push((k, v)),
        }
    }
    let get = |k: &str| {
        opts.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_string())
            .filter(|v| !v.is_empty())
    };
    let position = get("insertpos")
        .map(|p| format!("insertpos = {p}"))
        .or_else(|| get("add").map(|a| format!("add = {a}")));
    Ok(Some(UfwAction {
        spec: spec.to_string(),
        application: get("application"),
        blocktype: get("blocktype").unwrap_or_else(|| "reject".into()),
        position,
        kill_mode: get("kill-mode"),
    }))
}

/// An admin's rule, with where it was read.
#[derive(Debug, Clone)]
pub struct AdminRule {
    pub net: IpNet,
    pub rule: Rule,
    pub file: &'static str,
}

impl AdminRule {
    /// The ufw command that removes this rule.
    pub fn delete_command(&self) -> String {
        let (action, log) = match self.rule.action.split_once('_') {
            Some((a, l)) => (a, format!(" {l}")),
            None => (self.rule.action.as_str(), String::new()),
        };
        format!("ufw delete {action}{log} from {}", self.rule.src)
    }

    /// How ufw would list it, for comments.
    pub fn describe(&self) -> String {
        let comment = self
            .rule
            .comment
            .as_ref()
            .map(|c| format!(" comment {c:?}"))
            .unwrap_or_default();
        format!(
            "ufw {} from {} ({}){comment}",
            self.rule.action, self.rule.src, self.file
        )
    }
}

/// What the admin's ufw rules offer an import.
#[derive(Debug, Default)]
pub struct UfwHost {
    pub dir: PathBuf,
    /// `allow from NET` to everything: the host's own networks.
    pub allowed: Vec<AdminRule>,
    /// `reject|deny from NET` to everything, by hand.
    pub refused: Vec<AdminRule>,
    /// fail2ban's own current bans (`comment "by Fail2Ban …"`): left to it.
    pub fail2ban_bans: usize,
}

impl UfwHost {
    /// `None` when `dir` holds no ufw rules file.
    pub fn read(dir: &Path) -> Result<Option<UfwHost>> {
        let mut host = UfwHost {
            dir: dir.to_path_buf(),
            ..UfwHost::default()
        };
        let mut any = false;
        for file in ["user.rules", "user6.rules"] {
            let path = dir.join(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            any = true;
            for rule in text.lines().filter_map(Rule::parse) {
                let Some(net) = rule.src_net().filter(|n| n.prefix_len() > 0) else {
                    continue;
                };
                if !rule.is_wholesale() {
                    continue;
                }
                let comment = rule.comment.as_deref().unwrap_or("");
                if comment.starts_with(MARK) {
                    continue;
                }
                if comment.starts_with("by Fail2Ban") {
                    host.fail2ban_bans += 1;
                    continue;
                }
                let r = AdminRule { net, rule, file };
                if r.rule.action.starts_with("allow") {
                    host.allowed.push(r);
                } else if r.rule.action.starts_with("reject") || r.rule.action.starts_with("deny") {
                    host.refused.push(r);
                }
            }
        }
        Ok(any.then_some(host))
    }

    /// The ports of application profile `name` in nftjail's syntax.
    pub fn app_ports(&self, name: &str) -> Result<String, String> {
        let groups =
            apps::ports(&self.dir.join("applications.d"), name).map_err(|e| e.to_string())?;
        Ok(port_list(&groups))
    }
}

/// ufw's port groups as an nftjail `port` value (`587/tcp`; no protocol
/// in ufw is tcp and udp both).
fn port_list(groups: &[PortGroup]) -> String {
    let mut out: Vec<String> = Vec::new();
    for g in groups {
        let protos: Vec<String> = match g.proto {
            Some(p) => vec![p.to_string()],
            None => vec!["tcp".into(), "udp".into()],
        };
        for port in g.ports.split(',') {
            for p in &protos {
                let item = format!("{port}/{p}");
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
    }
    out.join(",")
}

/// The blocklist file: one network a line, the ufw rule it came from as
/// its comment.
pub fn blocklist_text(refused: &[AdminRule]) -> String {
    let mut out = String::from(
        "# Networks the admin refused by hand in ufw, written by `nftjail import-fail2ban`.\n",
    );
    for r in refused {
        out.push_str(&format!("{}  # {}\n", r.net, r.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftjail::rules::Proto;

    #[test]
    fn profile_ports_become_an_nftjail_port_list() {
        let groups = vec![
            PortGroup {
                proto: Some(Proto::Tcp),
                ports: "587".into(),
            },
            PortGroup {
                proto: None,
                ports: "5060,6000:6010".into(),
            },
        ];
        assert_eq!(
            port_list(&groups),
            "587/tcp,5060/tcp,5060/udp,6000:6010/tcp,6000:6010/udp"
        );
    }

    #[test]
    fn delete_commands_name_the_rule_as_ufw_takes_it() {
        let rule = Rule::parse("### tuple ### reject_log any any 0.0.0.0/0 any 95.181.157.0/24 in")
            .unwrap();
        let r = AdminRule {
            net: "95.181.157.0/24".parse().unwrap(),
            rule,
            file: "user.rules",
        };
        assert_eq!(
            r.delete_command(),
            "ufw delete reject log from 95.181.157.0/24"
        );
    }
}
