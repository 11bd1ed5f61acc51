//! A jail's extra failure windows (`[[jail.X.window]]`) and its account
//! rule (`[jail.X.account]`): the raw tables and their checking.
//!
//! The jail's own maxretry/findtime/bantime stay its first window; extra
//! windows catch what that one lets through (a slow guesser under the
//! burst limit). The account rule catches password spraying: many
//! addresses each failing a little against one mailbox.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Checker;

/// Extra windows a jail may have besides its own (so a ban's window index
/// stays small and each failure checks few windows).
pub const MAX_WINDOWS: usize = 8;
/// Default bound on the accounts one jail's account rule follows.
pub const DEFAULT_MAX_ACCOUNTS: usize = 10_000;
/// Most distinct addresses that may be needed to put an account under
/// attack: the tracker keeps that many per account.
pub const MAX_MAXADDRS: u32 = 1_000;

/// `[[jail.X.window]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub maxretry: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<toml::Value>>,
    pub bantime: Option<Spanned<toml::Value>>,
}

/// `[jail.X.account]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub maxaddrs: Option<Spanned<i64>>,
    pub maxretry: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<toml::Value>>,
    pub bantime: Option<Spanned<toml::Value>>,
    pub max_accounts: Option<Spanned<i64>>,
}

/// One more window of a jail: `maxretry` failures of one address within
/// `findtime` ban it for `bantime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: Duration,
}

/// A jail's account rule. An account is under attack while `maxaddrs`
/// distinct addresses have failed against it within `findtime` (counted
/// as a prefix rule counts its addresses); from then on, an address
/// failing against it is banned once it has `maxretry` failures against
/// it within `findtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRule {
    pub maxaddrs: u32,
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: Duration,
    /// Accounts followed at most (the oldest forgotten first).
    pub max_accounts: usize,
}

impl super::Jail {
    /// How long a failure can still help a ban in this jail: its longest
    /// findtime, of its windows and its account rule.
    pub fn reach(&self) -> Duration {
        let windows = self
            .windows
            .iter()
            .map(|w| w.findtime)
            .fold(self.findtime, Duration::max);
        self.account
            .as_ref()
            .map_or(windows, |a| windows.max(a.findtime))
    }
}

impl Checker<'_> {
    /// Fills `jail`'s extra windows and account rule from its raw table
    /// (`key`: `jail.NAME`), with the jail's own findtime and bantime for
    /// what they do not give.
    pub(super) fn extra_rules(&mut self, raw: &super::RawJail, key: &str, jail: &mut super::Jail) {
        jail.windows = self.windows(raw.window.as_ref(), key, jail.bantime);
        jail.account = self.account_rule(raw.account.as_ref(), key, jail.findtime, jail.bantime);
    }

    /// The extra windows of jail `key` (`jail.NAME`); `bantime`: the
    /// jail's, for a window that gives none.
    pub(super) fn windows(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<RawWindow>>>>,
        key: &str,
        bantime: Duration,
    ) -> Vec<Window> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        if raw.get_ref().len() > MAX_WINDOWS {
            self.problem(
                raw.span(),
                &format!("{key}.window"),
                format!(
                    "{} windows; a jail has at most {MAX_WINDOWS} besides its own",
                    raw.get_ref().len()
                ),
            );
        }
        let mut out = Vec::new();
        for (i, w) in raw.get_ref().iter().enumerate() {
            let wkey = format!("{key}.window[{i}]");
            let r = w.get_ref();
            let maxretry = self.maxretry(r.maxretry.as_ref(), &format!("{wkey}.maxretry"));
            let findtime = self.duration(r.findtime.as_ref(), &format!("{wkey}.findtime"));
            let bantime = self
                .duration(r.bantime.as_ref(), &format!("{wkey}.bantime"))
                .unwrap_or(bantime);
            for (missing, name) in [
                (r.maxretry.is_none(), "maxretry"),
                (r.findtime.is_none(), "findtime"),
            ] {
                if missing {
                    self.problem(w.span(), &wkey, format!("a window needs {name}"));
                }
            }
            if let (Some(maxretry), Some(findtime)) = (maxretry, findtime) {
                out.push(Window {
                    maxretry,
                    findtime,
                    bantime,
                });
            }
        }
        out.truncate(MAX_WINDOWS);
        out
    }

    /// The account rule of jail `key`; `findtime` and `bantime`: the
    /// jail's, for what the rule does not give.
    pub(super) fn account_rule(
        &mut self,
        raw: Option<&Spanned<RawAccount>>,
        key: &str,
        findtime: Duration,
        bantime: Duration,
    ) -> Option<AccountRule> {
        let raw = raw?;
        let akey = format!("{key}.account");
        let r = raw.get_ref();
        let maxaddrs = match r.maxaddrs.as_ref() {
            None => {
                self.problem(raw.span(), &akey, "an account rule needs maxaddrs");
                None
            }
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(n) if (1..=MAX_MAXADDRS).contains(&n) => Some(n),
                _ => {
                    self.problem(
                        v.span(),
                        &format!("{akey}.maxaddrs"),
                        format!("must be a whole number from 1 to {MAX_MAXADDRS}"),
                    );
                    None
                }
            },
        };
        let maxretry = self
            .maxretry(r.maxretry.as_ref(), &format!("{akey}.maxretry"))
            .unwrap_or(1);
        let findtime = self
            .duration(r.findtime.as_ref(), &format!("{akey}.findtime"))
            .unwrap_or(findtime);
        let bantime = self
            .duration(r.bantime.as_ref(), &format!("{akey}.bantime"))
            .unwrap_or(bantime);
        let max_accounts = match r.max_accounts.as_ref() {
            None => DEFAULT_MAX_ACCOUNTS,
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.problem(
                        v.span(),
                        &format!("{akey}.max_accounts"),
                        "must be a whole number from 1 up",
                    );
                    DEFAULT_MAX_ACCOUNTS
                }
            },
        };
        Some(AccountRule {
            maxaddrs: maxaddrs?,
            maxretry,
            findtime,
            bantime,
            max_accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;
    use std::time::Duration;

    fn jail(extra: &str) -> Result<crate::config::Jail, String> {
        let text = format!(
            "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nbantime = \"10m\"\n{extra}"
        );
        Config::parse(&text, Path::new("t.toml"))
            .map(|c| c.jails.into_iter().next().unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn windows_and_account_rule_are_read_with_defaults() {
        let j = jail(
            "[[jail.j.window]]\nmaxretry = 20\nfindtime = \"1d\"\nbantime = \"1w\"\n\
             [[jail.j.window]]\nmaxretry = 50\nfindtime = \"1w\"\n\
             [jail.j.account]\nmaxaddrs = 5\nfindtime = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(j.windows.len(), 2);
        assert_eq!(j.windows[0].maxretry, 20);
        assert_eq!(j.windows[0].bantime, Duration::from_secs(7 * 86_400));
        // No bantime: the jail's.
        assert_eq!(j.windows[1].bantime, Duration::from_secs(600));
        let a = j.account.unwrap();
        assert_eq!((a.maxaddrs, a.maxretry), (5, 1));
        assert_eq!(a.findtime, Duration::from_secs(3600));
        assert_eq!(a.bantime, Duration::from_secs(600));
        assert_eq!(a.max_accounts, super::DEFAULT_MAX_ACCOUNTS);
    }

    #[test]
    fn problems_name_file_line_column_and_key() {
        let e = jail("[[jail.j.window]]\nfindtime = \"1d\"\n").unwrap_err();
        assert!(
            e.contains("t.toml:5:1: jail.j.window[0]: a window needs maxretry"),
            "{e}"
        );
        let e = jail("[[jail.j.window]]\nmaxretry = 0\nfindtime = \"1d\"\n").unwrap_err();
        assert!(
            e.contains("t.toml:6:12: jail.j.window[0].maxretry: must be a whole number"),
            "{e}"
        );
        let e = jail("[jail.j.account]\nmaxaddrs = 0\n").unwrap_err();
        assert!(
            e.contains("t.toml:6:12: jail.j.account.maxaddrs: must be a whole number from 1"),
            "{e}"
        );
        let e = jail("[jail.j.account]\nmaxretry = 2\n").unwrap_err();
        assert!(
            e.contains("jail.j.account: an account rule needs maxaddrs"),
            "{e}"
        );
        let e = jail("[jail.j.account]\nmaxaddrs = 2\nmaxadrs = 3\n").unwrap_err();
        assert!(e.contains("unknown field `maxadrs`"), "{e}");
        let nine = "[[jail.j.window]]\nmaxretry = 9\nfindtime = 9\n".repeat(9);
        let e = jail(&nine).unwrap_err();
        assert!(
            e.contains("jail.j.window: 9 windows; a jail has at most 8"),
            "{e}"
        );
    }
}
