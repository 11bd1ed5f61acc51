//! ufw's `user.rules` / `user6.rules`: cut into the admin's rules, kept as
//! the exact text ufw wrote, and ours, written again from the ban record.
//!
//! Between `### RULES ###` and `### END RULES ###` each rule is a block: its
//! `### tuple ###` line, the chain lines under it, and the blank line after.
//! Ours are taken out and put back together, just above the admin's first
//! rule that lets traffic in (or at the configured place), so the admin's
//! blocks keep their bytes and their order.

use std::net::IpAddr;

use ipnet::IpNet;

use super::tuple;

/// One family's rules file, cut up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesFile {
    /// Everything up to the first rule (or to `### END RULES ###`).
    head: String,
    /// The admin's rules, each with its trailing blank line.
    admin: Vec<String>,
    /// Our bans found in the file: jail, net, end (unix seconds).
    pub ours: Vec<(String, IpNet, Option<u64>)>,
    /// From `### END RULES ###` to the end.
    tail: String,
}

#[derive(Debug, thiserror::Error)]
#[error("no \"### RULES ###\" / \"### END RULES ###\" section: not a rules file ufw wrote")]
pub struct NotUfw;

impl RulesFile {
    pub fn parse(text: &str) -> Result<RulesFile, NotUfw> {
        let start = text.find("### RULES ###\n").ok_or(NotUfw)?;
        let end = text[start..]
            .find("### END RULES ###")
            .map(|e| start + e)
            .ok_or(NotUfw)?;
        let body = &text[start..end];
        // The head ends where the first tuple starts.
        let first = body.find("### tuple ###").map_or(end, |i| start + i);
        let mut blocks: Vec<&str> = Vec::new();
        let mut at = first;
        while at < end {
            let next = text[at + 1..end]
                .find("\n### tuple ###")
                .map_or(end, |i| at + 1 + i + 1);
            blocks.push(&text[at..next]);
            at = next;
        }
        let mut admin = Vec::new();
        let mut ours = Vec::new();
        for b in blocks {
            let tuple_line = b.lines().next().unwrap_or("");
            if tuple_line.contains(" comment=") {
                if let Some(ban) = tuple::parse_ours(tuple_line) {
                    if !ours.contains(&ban) {
                        ours.push(ban);
                    }
                    continue;
                }
            }
            admin.push(b.to_string());
        }
        Ok(RulesFile {
            head: text[..first].to_string(),
            admin,
            ours,
            tail: text[end..].to_string(),
        })
    }

    /// The file with `ours` (rendered blocks) in place of what was ours:
    /// before the admin's `position`-th rule (1-based) when given, else
    /// before the admin's first rule that lets traffic in, else after the
    /// admin's rules.
    pub fn render(&self, ours: &str, position: Option<usize>) -> String {
        let at = match position {
            Some(p) => p.saturating_sub(1).min(self.admin.len()),
            None => self
                .admin
                .iter()
                .position(|b| tuple::lets_in(b.lines().next().unwrap_or("")))
                .unwrap_or(self.admin.len()),
        };
        let mut out = String::with_capacity(self.head.len() + ours.len() + self.tail.len() + 4096);
        out.push_str(&self.head);
        for b in &self.admin[..at] {
            out.push_str(b);
        }
        out.push_str(ours);
        for b in &self.admin[at..] {
            out.push_str(b);
        }
        out.push_str(&self.tail);
        out
    }

    /// The admin's rules, as ufw wrote them.
    #[cfg(test)]
    pub fn admin(&self) -> &[String] {
        &self.admin
    }
}

/// Which file a ban goes to.
pub fn is_v6(net: &IpNet) -> bool {
    matches!(net.addr(), IpAddr::V6(_))
}

/// The chain lines of a rendered file for the live chain: what
/// `iptables-restore -n` loads into `chain` (and only that chain).
pub fn chain_restore(text: &str, chain: &str) -> String {
    let prefix = format!("-A {chain} ");
    let mut out = format!("*filter\n:{chain} - [0:0]\n");
    for l in text.lines().filter(|l| l.starts_with(&prefix)) {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "*filter\n:ufw-user-input - [0:0]\n### RULES ###\n\n### END RULES ###\n\n### LOGGING ###\nCOMMIT\n";
    const ADMIN: &str = "*filter\n:ufw-user-input - [0:0]\n### RULES ###\n\n\
### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in\n\
-A ufw-user-input -s 95.181.157.0/24 -j REJECT\n\n\
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n\
-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n\n\
### tuple ### allow any 80 0.0.0.0/0 any 0.0.0.0/0 in\n\
-A ufw-user-input -p tcp --dport 80 -j ACCEPT\n\
-A ufw-user-input -p udp --dport 80 -j ACCEPT\n\n\
### END RULES ###\nCOMMIT\n";

    const OURS: &str =
        "### tuple ### reject any any 0.0.0.0/0 any 1.2.3.4 in comment=6e66746a61696c3a78\n\
-A ufw-user-input -s 1.2.3.4 -j REJECT\n\n";

    #[test]
    fn ours_go_above_the_first_allow_and_come_out_again() {
        let f = RulesFile::parse(ADMIN).unwrap();
        assert_eq!(f.admin().len(), 3);
        let with = f.render(OURS, None);
        let allow = with.find("allow tcp 22").unwrap();
        let ours = with.find("1.2.3.4").unwrap();
        let manual = with.find("95.181.157.0/24").unwrap();
        assert!(manual < ours && ours < allow, "{with}");
        let again = RulesFile::parse(&with).unwrap();
        assert_eq!(
            again.ours,
            vec![("x".into(), "1.2.3.4/32".parse().unwrap(), None)]
        );
        assert_eq!(again.admin(), f.admin());
        assert_eq!(again.render("", None), ADMIN);
    }

    #[test]
    fn an_empty_ruleset_takes_ours_and_gives_them_back() {
        let f = RulesFile::parse(EMPTY).unwrap();
        let with = f.render(OURS, None);
        assert!(
            with.contains("### RULES ###\n\n### tuple ### reject"),
            "{with}"
        );
        assert!(with.contains("REJECT\n\n### END RULES ###"), "{with}");
        assert_eq!(RulesFile::parse(&with).unwrap().render("", None), EMPTY);
    }

    #[test]
    fn a_configured_position_counts_the_admins_rules() {
        let f = RulesFile::parse(ADMIN).unwrap();
        let with = f.render(OURS, Some(1));
        assert!(with.find("1.2.3.4").unwrap() < with.find("95.181.157.0/24").unwrap());
        let last = f.render(OURS, Some(99));
        assert!(last.find("1.2.3.4").unwrap() > last.find("allow any 80").unwrap());
    }

    #[test]
    fn the_live_chain_gets_every_line_of_it() {
        let f = RulesFile::parse(ADMIN).unwrap().render(OURS, None);
        let r = chain_restore(&f, "ufw-user-input");
        assert!(
            r.starts_with("*filter\n:ufw-user-input - [0:0]\n-A ufw-user-input -s 95.181.157.0/24")
        );
        assert_eq!(r.matches("-A ").count(), 5);
        assert!(r.ends_with("COMMIT\n"));
    }

    #[test]
    fn a_file_ufw_did_not_write_is_refused() {
        assert!(RulesFile::parse("hello\n").is_err());
    }
}
