//! What a filter reports for one failure line.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

/// One failure as fail2ban would count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2banMatch {
    /// What fail2ban counts failures by: the `<F-ID>` text when the regex
    /// has one that differs from the host, else the host text.
    pub id: String,
    /// The host text as matched (`ip4`, `ip6` or `dns` group); `None` only
    /// for failures identified by `<F-ID>` alone.
    pub host: Option<String>,
    /// `host` parsed when it is an address; a `<DNS>` name stays text for
    /// the caller to resolve (or not).
    pub addr: Option<IpAddr>,
    /// The line's time; `None` when the line carried no date and no recent
    /// one was known, where fail2ban in operation takes "now".
    pub time: Option<SystemTime>,
    /// `<F-USER>` (or an `<F-ALT_USER>` fallback).
    pub user: Option<String>,
    /// All other named groups that took part, by fail2ban's names.
    pub fields: BTreeMap<String, String>,
    /// Index of the failregex line that matched.
    pub regex: usize,
}
