//! Filters: what a failure line looks like for one service, and where in it
//! the attacker's address sits.
//!
//! A filter is a TOML file of our own (`config/filters/NAME.toml`, embedded in
//! the binary) with `failregex` and `ignoreregex` lists. Compiling expands the
//! tags (`<HOST>`, `<SYSLOG>`, see [`tags`]) and checks every regex once, so a
//! bad filter is a config error, never a runtime surprise.

pub mod fail2ban;
pub mod library;
pub mod literal;
pub mod recent;
pub mod tags;

use std::net::IpAddr;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

pub use library::{library, library_names};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("cannot read filter {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{col}: {message}")]
    Parse {
        origin: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("filter {filter}: {kind}[{index}] {message}")]
    Regex {
        filter: String,
        kind: &'static str,
        index: usize,
        message: String,
    },
}

/// A filter as written in its file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    #[serde(default)]
    pub description: String,
    pub failregex: Vec<String>,
    #[serde(default)]
    pub ignoreregex: Vec<String>,
}

impl FilterDef {
    /// Parses filter TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FilterDef, FilterError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..at];
            FilterError::Parse {
                origin: origin.to_string(),
                line: before.matches('\n').count() + 1,
                col: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                message: e.message().trim().to_string(),
            }
        })
    }
}

/// Reads a user filter file (`/etc/nftjail/filters/NAME.toml`).
pub fn load_filter_file(path: impl AsRef<Path>) -> Result<FilterDef, FilterError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| FilterError::Read {
        path: path.display().to_string(),
        source,
    })?;
    FilterDef::parse(&text, &path.display().to_string())
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    /// Tag-expanded failregexes, in file order; each has one `host` group.
    /// The matcher reads their source text to find its literal gates.
    pub failregex: Vec<Regex>,
    /// Tag-expanded; a line any of them matches is not a failure.
    pub ignoreregex: Vec<Regex>,
    /// Per failregex: whether it captures the account, and what a line
    /// must hold for it to.
    users: Vec<tags::UserGroup>,
    /// Per failregex of a fail2ban filter compiled in: the look-ahead its
    /// match must pass where it ends (see [`After`]).
    after: Vec<Option<After>>,
}

/// fail2ban's trailing look-ahead (`... failed:(?! Connection lost ...)`),
/// which Rust's engines lack: the regex before it is matched, and this
/// checked where that match ends. Where it does not pass, only fail2ban's
/// engine can say whether the whole matches elsewhere.
#[derive(Debug, Clone)]
pub struct After {
    look: regex_automata::meta::Regex,
    /// `(?!...)`: it passes where `look` does not match.
    negative: bool,
}

impl After {
    pub fn new(look: regex_automata::meta::Regex, negative: bool) -> After {
        After { look, negative }
    }

    /// Whether a match ending at `at` in `line` passes.
    pub fn passes(&self, line: &str, at: usize) -> bool {
        let input = regex_automata::Input::new(line)
            .span(at..line.len())
            .anchored(regex_automata::Anchored::Yes);
        self.look.is_match(input) != self.negative
    }
}

impl Filter {
    pub fn compile(def: &FilterDef, name: &str) -> Result<Filter, FilterError> {
        let err = |kind, index, message: String| FilterError::Regex {
            filter: name.to_string(),
            kind,
            index,
            message,
        };
        if def.failregex.is_empty() {
            return Err(err(
                "failregex",
                0,
                "is empty: the filter would never match".into(),
            ));
        }
        let failregex = def
            .failregex
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let expanded = tags::expand(r).map_err(|m| err("failregex", i, m))?;
                Regex::new(&expanded).map_err(|e| err("failregex", i, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ignoreregex = def
            .ignoreregex
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let expanded = tags::expand_ignore(r).map_err(|m| err("ignoreregex", i, m))?;
                Regex::new(&expanded).map_err(|e| err("ignoreregex", i, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter {
            name: name.to_string(),
            users: failregex.iter().map(tags::UserGroup::of).collect(),
            after: vec![None; failregex.len()],
            failregex,
            ignoreregex,
        })
    }

    /// A fail2ban filter file's regexes, compiled already, as the matcher
    /// runs them (see [`fail2ban::Fail2banFilter::fold`]): who failed is
    /// read from fail2ban's `ip4`, `ip6` and `dns` groups.
    /// `after`: per failregex, the look-ahead its match must pass.
    pub fn from_fail2ban(
        name: &str,
        failregex: Vec<(Regex, Option<After>)>,
        ignoreregex: Vec<Regex>,
    ) -> Filter {
        let (failregex, after): (Vec<_>, Vec<_>) = failregex.into_iter().unzip();
        Filter {
            name: name.to_string(),
            users: failregex.iter().map(tags::UserGroup::of).collect(),
            after,
            failregex,
            ignoreregex,
        }
    }

    /// The look-ahead failregex `index`'s match must pass (see [`After`]).
    pub fn after(&self, index: usize) -> Option<&After> {
        self.after.get(index).and_then(Option::as_ref)
    }

    /// Whether failregex `index` may capture an account on `line`, which
    /// it blamed: a regex without a `user` group never does, one whose
    /// group follows fixed text (`sasl_username=`) only on a line holding
    /// that text. Running the regex again for the group is saved otherwise.
    pub fn may_capture_user(&self, index: usize, line: &str) -> bool {
        self.users.get(index).is_some_and(|u| u.may_match(line))
    }

    /// A filter that matches nothing (stands in for one that failed to load).
    pub fn empty(name: &str) -> Filter {
        Filter {
            name: name.to_string(),
            failregex: Vec::new(),
            ignoreregex: Vec::new(),
            users: Vec::new(),
            after: Vec::new(),
        }
    }

    /// The address this line blames, if it is a failure and not ignored.
    /// The matcher does the same for many filters at once; this is the
    /// one-filter reference used by tests and tools.
    pub fn find(&self, line: &str) -> Option<IpAddr> {
        self.find_counted(line).map(|(addr, _)| addr)
    }

    /// [`Filter::find`] with the number of failures the line stands for
    /// (see [`MAX_COUNT`]); a line that says it stands for none is no match.
    pub fn find_counted(&self, line: &str) -> Option<(IpAddr, u32)> {
        let hit = self.failregex.iter().find_map(|re| hit_in(re, line))?;
        (!self.ignoreregex.iter().any(|re| re.is_match(line))).then_some(hit)
    }
}

/// Why a filter blames a line, in detail: for reports such as `nftjail
/// test`, which say which regex matched. The matcher keeps to the cheaper
/// [`Filter::find_counted`] path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Index of the first failregex that yields an address.
    pub regex: usize,
    pub addr: IpAddr,
    /// Failures the line stands for (see [`MAX_COUNT`]).
    pub count: u32,
    /// The regex's `user` group, when it has one that took part.
    pub user: Option<String>,
    /// Indices of the ignoreregexes that match: not empty means the line
    /// is no failure.
    pub ignored_by: Vec<usize>,
}

impl Filter {
    /// [`Filter::find_counted`]'s judgement with its reasons; also
    /// returns lines an ignoreregex excuses (`ignored_by` not empty).
    /// [`Filter::explain`]'s verdict for a hit already found (by the
    /// matcher's fast path, [`crate::matcher::Matcher::explain_fast`]):
    /// failregex `regex` yields `addr` and `count` on `line`, and the
    /// ignoreregexes `ignored_by` match it. Only a regex with a `user`
    /// group is run again, for that group.
    pub fn verdict_of(
        &self,
        line: &str,
        regex: usize,
        (addr, count): (IpAddr, u32),
        ignored_by: Vec<usize>,
    ) -> Verdict {
        let user = self
            .failregex
            .get(regex)
            .filter(|_| self.may_capture_user(regex, line))
            .and_then(|re| re.captures(line))
            .and_then(|caps| caps.name(tags::USER_GROUP).map(|u| u.as_str().to_string()));
        Verdict {
            regex,
            addr,
            count,
            user,
            ignored_by,
        }
    }

    pub fn explain(&self, line: &str) -> Option<Verdict> {
        let (regex, (addr, count), user) =
            self.failregex.iter().enumerate().find_map(|(i, re)| {
                let caps = re.captures(line)?;
                let hit = hit_of(&caps, line)?;
                let user = caps.name(tags::USER_GROUP).map(|u| u.as_str().to_string());
                Some((i, hit, user))
            })?;
        let ignored_by = self
            .ignoreregex
            .iter()
            .enumerate()
            .filter(|(_, re)| re.is_match(line))
            .map(|(i, _)| i)
            .collect();
        Some(Verdict {
            regex,
            addr,
            count,
            user,
            ignored_by,
        })
    }
}

/// The most failures one line may stand for. The number is written by the
/// logging program but sits in a line an attacker can shape, and the
/// matcher reports each failure separately: without a cap a single line
/// (`auth=0/4000000000`) would mean billions of calls, and any value above
/// maxretry bans at once anyway. 20 is Postfix's default
/// `smtpd_hard_error_limit`, the most failures an honest server lets one
/// session have, and above any sensible maxretry.
pub const MAX_COUNT: u32 = 20;

/// Runs one expanded failregex and takes the address from its host group
/// (`None` when the regex does not match or the capture is not a whole,
/// valid address, see [`tags::host_at`]) and the failure count: the
/// `count` group read as a decimal number and capped at [`MAX_COUNT`], 1
/// when the regex has no such group.
/// A count of 0 says the line records no failure, so it is no match; a
/// count that is not a number (a hand-written group that captured other
/// text) counts once, as the line did match.
pub(crate) fn hit_in(re: &Regex, line: &str) -> Option<(IpAddr, u32)> {
    hit_of(&re.captures(line)?, line)
}

/// [`hit_in`] with the span of the `user` group when `want_user` and it
/// took part, the host's and where the match ends: one pass of the regex
/// for all.
pub(crate) fn hit_and_user_in(re: &Regex, line: &str, want_user: bool) -> Option<HitSpans> {
    let caps = re.captures(line)?;
    let (addr, count) = hit_of(&caps, line)?;
    let user = caps
        .name(tags::USER_GROUP)
        .filter(|_| want_user)
        .map(|u| regex_automata::Span::from(u.range()));
    let host = caps
        .name(tags::HOST_GROUP)
        .or_else(|| caps.name(tags::HOST_PORT_GROUP))
        .map_or(regex_automata::Span::from(0..0), |h| h.range().into());
    let end = caps.get(0).map_or(0, |m| m.end());
    Some(HitSpans {
        addr,
        count,
        user,
        host,
        end,
    })
}

/// What [`hit_and_user_in`] finds.
pub(crate) struct HitSpans {
    pub addr: IpAddr,
    pub count: u32,
    /// The `user` group's span, when wanted and it took part.
    pub user: Option<regex_automata::Span>,
    pub host: regex_automata::Span,
    /// Where the match ends.
    pub end: usize,
}

/// [`hit_in`] for captures already taken.
fn hit_of(caps: &regex::Captures<'_>, line: &str) -> Option<(IpAddr, u32)> {
    let addr = if let Some(host) = caps.name(tags::HOST_GROUP) {
        tags::host_at(line, host.start(), host.end())
    } else {
        let host = caps.name(tags::HOST_PORT_GROUP)?;
        tags::host_port_at(line, host.start(), host.end())
    }?;
    let count = caps
        .name(tags::COUNT_GROUP)
        .map_or(1, |c| parse_count(c.as_str()));
    (count > 0).then_some((addr, count))
}

/// Decimal digits, saturating at [`MAX_COUNT`] however many there are.
pub(crate) fn parse_count(text: &str) -> u32 {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    text.bytes().fold(0u32, |n, b| {
        n.saturating_mul(10)
            .saturating_add(u32::from(b - b'0'))
            .min(MAX_COUNT)
    })
}

/// Where `item` is in `items`, added at the end if it is not there yet:
/// a short list of distinct values built once, each use naming its place.
pub(crate) fn place_of<T: PartialEq>(items: &mut Vec<T>, item: T) -> usize {
    match items.iter().position(|have| *have == item) {
        Some(at) => at,
        None => {
            items.push(item);
            items.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn def(fail: &[&str], ignore: &[&str]) -> FilterDef {
        FilterDef {
            description: String::new(),
            failregex: fail.iter().map(|s| s.to_string()).collect(),
            ignoreregex: ignore.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parse_reads_our_format() {
        let text = "description = \"x\"\nfailregex = ['''from <HOST>$''']\n";
        let d = FilterDef::parse(text, "f.toml").unwrap();
        assert_eq!(d.description, "x");
        assert_eq!(d.failregex, ["from <HOST>$"]);
        assert!(d.ignoreregex.is_empty());
    }

    #[test]
    fn parse_errors_name_origin_line_and_column() {
        let e = FilterDef::parse("failregex = ['a <HOST>']\nfailregx = []\n", "/etc/f.toml");
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.starts_with("/etc/f.toml:2:1: unknown field `failregx`"),
            "{msg}"
        );
        let msg = FilterDef::parse("description = 3\n", "lib")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("lib:1:15: "), "{msg}");
    }

    #[test]
    fn compile_errors_name_filter_index_and_cause() {
        let msg = |d: FilterDef| Filter::compile(&d, "web").unwrap_err().to_string();
        let m = msg(def(&["ok <HOST>", "bad ( <HOST>"], &[]));
        assert!(m.starts_with("filter web: failregex[1] "), "{m}");
        assert!(m.contains("unclosed group"), "{m}");
        let m = msg(def(&["<HOST>", "no address"], &[]));
        assert!(
            m.starts_with("filter web: failregex[1] has no <HOST>"),
            "{m}"
        );
        let m = msg(def(&["<HOST> and <HOST>"], &[]));
        assert!(m.contains("failregex[0] has 2 address tags"), "{m}");
        let m = msg(def(&["<HOST>"], &["ok", "["]));
        assert!(m.starts_with("filter web: ignoreregex[1] "), "{m}");
        let m = msg(def(&[], &[]));
        assert!(m.contains("failregex[0] is empty"), "{m}");
    }

    #[test]
    fn find_applies_ignoreregex_with_tags() {
        let f = Filter::compile(&def(&["from <HOST>$"], &["^trusted from <HOST>$"]), "t").unwrap();
        assert_eq!(f.find("from 192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(f.find("trusted from 192.0.2.1"), None);
    }

    #[test]
    fn count_group_is_parsed_capped_and_zero_is_no_match() {
        let f = Filter::compile(&def(&[r"from <HOST> failed=<COUNT>$"], &[]), "c").unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(f.find_counted("from 192.0.2.1 failed=3"), Some((ip, 3)));
        assert_eq!(f.find_counted("from 192.0.2.1 failed=20"), Some((ip, 20)));
        assert_eq!(
            f.find_counted("from 192.0.2.1 failed=21"),
            Some((ip, MAX_COUNT))
        );
        assert_eq!(
            f.find_counted("from 192.0.2.1 failed=99999999999999999999999"),
            Some((ip, MAX_COUNT))
        );
        assert_eq!(f.find_counted("from 192.0.2.1 failed=007"), Some((ip, 7)));
        assert_eq!(f.find_counted("from 192.0.2.1 failed=0"), None);
        assert_eq!(f.find_counted("from 192.0.2.1 failed=000"), None);
        // Without a count group a match is one failure.
        let one = Filter::compile(&def(&[r"from <HOST>$"], &[]), "o").unwrap();
        assert_eq!(one.find_counted("from 192.0.2.1"), Some((ip, 1)));
        // A hand-written group with other text counts once.
        let odd = Filter::compile(&def(&[r"from <HOST> n=(?P<count>\w+)$"], &[]), "x").unwrap();
        assert_eq!(odd.find_counted("from 192.0.2.1 n=many"), Some((ip, 1)));
        assert_eq!(odd.find_counted("from 192.0.2.1 n=2"), Some((ip, 2)));
    }

    #[test]
    fn explain_names_the_regex_user_and_ignoreregexes() {
        let f = Filter::compile(
            &def(
                &[r"^a from <HOST>$", r"^b for (?P<user>\S+) from <HOST>$"],
                &["^x", "for root"],
            ),
            "e",
        )
        .unwrap();
        let v = f.explain("b for bob from 192.0.2.8").unwrap();
        assert_eq!((v.regex, v.user.as_deref()), (1, Some("bob")));
        assert_eq!(v.addr, "192.0.2.8".parse::<IpAddr>().unwrap());
        assert!(v.ignored_by.is_empty());
        let v = f.explain("b for root from 192.0.2.8").unwrap();
        assert_eq!(v.ignored_by, [1]);
        assert_eq!(f.find("b for root from 192.0.2.8"), None);
        assert_eq!(f.explain("a from 192.0.2.9").unwrap().user, None);
        assert_eq!(f.explain("a from nowhere"), None);
    }

    #[test]
    fn hostport_takes_the_port_off_unbracketed_ipv6() {
        let f = Filter::compile(&def(&[r"^\[client <HOSTPORT>\] x$"], &[]), "hp").unwrap();
        let got = |l: &str| f.find(l).map(|a| a.to_string());
        assert_eq!(
            got("[client 192.0.2.1:4711] x").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            got("[client 2001:db8::1:4711] x").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            got("[client 2001:db8::25:80] x").as_deref(),
            Some("2001:db8::25")
        );
        assert_eq!(
            got("[client [2001:db8::1]:4711] x").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            got("[client ::ffff:192.0.2.9:4711] x").as_deref(),
            Some("192.0.2.9")
        );
        // The port is required: without it the address is not trusted.
        assert_eq!(got("[client 192.0.2.1] x"), None);
        assert_eq!(got("[client 999.0.2.1:80] x"), None);
        assert_eq!(got("[client 1.192.0.2.1:80] x"), None);
    }

    #[test]
    fn load_filter_file_reports_missing_files() {
        let msg = load_filter_file("/nonexistent/x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("cannot read filter /nonexistent/x.toml: "),
            "{msg}"
        );
    }
}
