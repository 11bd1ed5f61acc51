//! What a pattern's match says: who failed, how often, the account, and
//! where the match ends, read from the backtracker's captures or the
//! `regex` crate's, by our tags' groups or by fail2ban's.

use std::net::IpAddr;

use regex::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::Span;

use super::cut::Groups;
use crate::filter::fail2ban::FAIL2BAN_HOST_GROUPS;
use crate::filter::{hit_and_user_in, parse_count, tags};

/// A pattern's answer on a line it matched, when that answer decides
/// the jail: the next patterns of its jail are not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hit {
    /// Who failed. Always there for our patterns: a match whose host is
    /// not an address is no hit, and the next pattern is tried. A fail2ban
    /// pattern's match that names a host decides the jail whether or not
    /// the host is an address (a `<DNS>` name, `999.1.2.3`), as fail2ban's
    /// first matching failregex does; the daemon never resolves a name.
    pub(super) addr: Option<IpAddr>,
    pub(super) count: u32,
    /// The host's text.
    pub(super) host: Span,
    /// The `user` group's span, where asked for and it took part.
    pub(super) user: Option<Span>,
    /// Where the match ends.
    pub(super) end: usize,
    /// The pattern's look-ahead refused the match (see [`After`]): only
    /// fail2ban's engine can say what the line is.
    pub(super) unsure: bool,
}

/// The hit in captures taken on `line` (`groups`: those that say who
/// failed; `user`: that group's span; `end`: where the match ends), and
/// whether the pattern matched.
pub(super) fn read_hit(
    caps: &Captures,
    groups: Groups,
    user: Option<Span>,
    end: usize,
    line: &str,
) -> (Option<Hit>, bool) {
    if !caps.is_match() {
        return (None, false);
    }
    let span = |g: Option<usize>| g.and_then(|g| caps.get_group(g));
    if groups.host.is_none() && groups.host_port.is_none() {
        return (fail2ban_hit(span, groups.fail2ban, user, end, line), true);
    }
    let (host, addr) = match (span(groups.host), span(groups.host_port)) {
        (Some(h), _) => (h, tags::host_at(line, h.start, h.end)),
        (None, Some(h)) => (h, tags::host_port_at(line, h.start, h.end)),
        (None, None) => return (None, true),
    };
    let count = span(groups.count)
        .and_then(|c| line.get(c.range()))
        .map_or(1, parse_count);
    let hit = addr.filter(|_| count > 0).map(|a| Hit {
        addr: Some(a),
        count,
        host,
        user,
        end,
        unsure: false,
    });
    (hit, true)
}

/// fail2ban's reading of a match: the host is the first of its `ip4`,
/// `ip6` and `dns` groups that took part (`span` of each group index), an
/// address when it is one of the first two and parses as one; a match
/// where none took part names nobody, and fail2ban tries its next
/// failregex.
fn fail2ban_hit(
    span: impl Fn(Option<usize>) -> Option<Span>,
    [ip4, ip6, dns]: [Option<usize>; 3],
    user: Option<Span>,
    end: usize,
    line: &str,
) -> Option<Hit> {
    let (host, is_addr) = match (span(ip4), span(ip6)) {
        (Some(h), _) | (None, Some(h)) => (h, true),
        (None, None) => (span(dns)?, false),
    };
    let addr = line
        .get(host.range())
        .filter(|_| is_addr)
        .and_then(|t| t.parse::<IpAddr>().ok());
    Some(Hit {
        addr,
        count: 1,
        host,
        user,
        end,
        unsure: false,
    })
}

/// The hit by the `regex` crate's captures: what [`read_hit`] reads from
/// the backtracker's.
pub(super) fn regex_hit(re: &Regex, line: &str, want_user: bool) -> Option<Hit> {
    if !re
        .capture_names()
        .any(|n| n == Some(tags::HOST_GROUP) || n == Some(tags::HOST_PORT_GROUP))
    {
        let caps = re.captures(line)?;
        let index = |name: &str| re.capture_names().position(|n| n == Some(name));
        let span = |g: Option<usize>| g.and_then(|g| caps.get(g)).map(|m| Span::from(m.range()));
        let user = span(index(tags::USER_GROUP)).filter(|_| want_user);
        let end = caps.get(0).map_or(0, |m| m.end());
        return fail2ban_hit(span, FAIL2BAN_HOST_GROUPS.map(index), user, end, line);
    }
    let h = hit_and_user_in(re, line, want_user)?;
    Some(Hit {
        addr: Some(h.addr),
        count: h.count,
        host: h.host,
        user: h.user,
        end: h.end,
        unsure: false,
    })
}
