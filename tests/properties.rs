#![allow(clippy::unwrap_used)]
//! Properties over random inputs, for the two promises a wrong guess would
//! break worst: a filter bans the client the service wrote down, never an
//! address the client typed into a field of its own; and the tracker bans
//! exactly at maxretry failures within findtime, never an ignored address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use nftjail::config::Config;
use nftjail::filter::{library, library_names, Filter, FilterDef};
use nftjail::matcher::Matcher;
use nftjail::message::Failure;
use nftjail::tracker::{Tracker, Verdict};
use proptest::prelude::*;

// ------------------------------------------------------------- filters

const T: &str = "Mar  5 16:01:34 mx1";
const AP: &str = "[Tue Mar 05 16:01:34.123456 2024]";

/// What the client may put in a field, as the service writes it.
#[derive(Clone, Copy, Debug)]
enum Chars {
    /// Any printable text (sshd, Dovecot, Postfix and Apache keep it as sent).
    Any,
    /// No `:` or `"`: an HTTP Basic user name ends at the first colon, and
    /// nginx escapes quotes.
    NginxUser,
    /// No `"`: nginx escapes it in the request and Host fields.
    NoQuote,
    /// No `>`: Postfix quotes an address in `<...>`.
    Angle,
    /// A request URI as sent: no white space (it ends the URI in the
    /// request line) and no `"` (nginx escapes it).
    Uri,
    /// A DNS name: what a reverse lookup may give the client's address.
    HostName,
    /// A HELO name Exim accepts by default (no `helo_accept_junk_hosts`):
    /// a domain or an address literal.
    Helo,
}

impl Chars {
    fn allows(self, c: char) -> bool {
        match self {
            Chars::Any => true,
            Chars::NginxUser => c != ':' && c != '"',
            Chars::NoQuote => c != '"',
            Chars::Angle => c != '>',
            Chars::Uri => !c.is_whitespace() && c != '"',
            Chars::HostName => c.is_ascii_alphanumeric() || c == '.' || c == '-',
            Chars::Helo => c.is_ascii_alphanumeric() || "._-[]:".contains(c),
        }
    }
}

/// One failure line of a filter, from our own fixtures
/// (tests/library_filters.rs): `{H}` where the service writes the client's
/// address, `{0}`, `{1}` where text the client chose goes.
struct Form {
    filter: &'static str,
    line: String,
    fields: &'static [Chars],
}

fn form(filter: &'static str, line: impl Into<String>, fields: &'static [Chars]) -> Form {
    Form {
        filter,
        line: line.into(),
        fields,
    }
}

fn forms() -> Vec<Form> {
    use Chars::*;
    let pf = |service: &str, msg: &str| format!("{T} postfix/{service}[4711]: {msg}");
    let n = "2024/03/05 16:01:34 [error] 4711#4711: *12";
    let rc = "[05-Mar-2024 16:01:34 +0100]: <ab12cd34>";
    let sm = "sm-mta[4711]: 2B4QhT7a004711: AUTH failure (PLAIN)";
    vec![
        form("apache-auth", format!("{AP} [auth_basic:error] [pid 4711:tid 140] [client {{H}}:51234] AH01618: user {{0}} not found: {{1}}"), &[Any, Any]),
        form("apache-auth", format!("{AP} [auth_basic:error] [pid 4711] [client {{H}}:51234] AH01617: user {{0}}: authentication failure for \"{{1}}\": Password Mismatch"), &[Any, Any]),
        form("courier-auth", format!("{T} imapd: LOGIN FAILED, user={{0}}, ip=[{{H}}]"), &[Any]),
        form("courier-auth", format!("{T} pop3d-ssl: LOGIN FAILED, user={{0}}, ip=[{{H}}], port=[4711]"), &[Any]),
        form("cyrus-imap", format!("{T} cyrus/imap[4711]: badlogin: {{0}} [{{H}}] plaintext {{1}} SASL(-13): authentication failure: checkpass failed"), &[HostName, Any]),
        form("dovecot", format!("{T} dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<{{0}}>, method=PLAIN, rip={{H}}, lip=198.51.100.1, TLS, session=<AbCd>"), &[Any]),
        form("dovecot", format!("{T} dovecot: pop3-login: Aborted login (tried to use disabled plaintext auth): user=<{{0}}>, rip={{H}}, lip=198.51.100.1"), &[Any]),
        form("exim", "2024-03-05 16:01:34 login authenticator failed for ({0}) [{H}]: 535 Incorrect authentication data (set_id={1})", &[Helo, Any]),
        form("exim", "2024-03-05 16:01:34 H=({0}) [{H}] F=<{1}> rejected RCPT <{2}>: relay not permitted", &[Helo, Angle, Angle]),
        form("exim", "2024-03-05 16:01:34 SMTP protocol error in \"{0}\" H=(x) [{H}]:4711 I=[198.51.100.1]:587 AUTH command used when not advertised", &[Any]),
        form("exim", "2024-03-05 16:01:34 SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[{H}]:4711 I=[198.51.100.1]:25 input=\"{0}\"", &[Any]),
        form("kopano-webapp", format!("{AP} [php:notice] [pid 4711] [client {{H}}:51234] Kopano WebApp user: {{0}}: authentication failure at MAPI, referer: {{1}}"), &[Any, Any]),
        form("nginx-http-auth", format!("{n} user \"{{0}}\": password mismatch, client: {{H}}, server: www.example.com, request: \"GET {{1}} HTTP/1.1\", host: \"{{2}}\""), &[NginxUser, Uri, NoQuote]),
        form("nginx-http-auth", format!("{n} user \"{{0}}\" was not found in \"/etc/nginx/htpasswd\", client: {{H}}, server: a, request: \"GET {{1}} HTTP/1.1\""), &[NginxUser, Uri]),
        form("postfix", pf("smtpd", "NOQUEUE: reject: RCPT from {0}[{H}]: 554 5.7.1 <{1}>: Relay access denied; from=<{2}> to=<{1}> proto=ESMTP helo=<{3}>"), &[HostName, Angle, Angle, Angle]),
        form("postfix", pf("smtpd", "NOQUEUE: reject: EHLO from unknown[{H}]: 504 5.5.2 <{0}>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<{0}>"), &[Angle]),
        form("postfix", pf("smtpd", "improper command pipelining after EHLO from unknown[{H}]: {0}"), &[Any]),
        form("postfix", pf("submission/smtpd", "disconnect from {0}[{H}] ehlo=1 auth=0/3 quit=1 commands=2/5"), &[HostName]),
        form("postfix-sasl", pf("smtpd", "warning: {0}[{H}]: SASL LOGIN authentication failed: {1}"), &[HostName, Any]),
        form("postfix-sasl", pf("submission/smtpd", "warning: unknown[{H}]: SASL PLAIN authentication failed: authentication failure, sasl_username={0}"), &[Any]),
        form("recidive", "2026-03-05T16:01:34.123456Z  INFO ban: jail=sshd addr={H} failures=5 bantime=10m", &[]),
        form("recidive", format!("{T} nftjail[812]: 2026-03-05T16:01:34.123456Z  INFO ban: jail=postfix-sasl addr={{H}} failures=5 bantime=1h"), &[]),
        form("roundcube-auth", format!("{rc} IMAP Error: Login failed for {{0}} against h from {{H}}. AUTHENTICATE PLAIN: Authentication failed. in /r/rcube_imap.php on line 1 (POST {{1}})"), &[Any, Uri]),
        form("roundcube-auth", format!("{rc} IMAP Error: Login failed for {{0}} against h from {{H}}(X-Forwarded-For: {{1}}). AUTHENTICATE PLAIN: Authentication failed. in /r/rcube_imap.php on line 1 (POST /)"), &[Any, Any]),
        form("sasl", pf("smtpd", "warning: {0}[{H}]: SASL LOGIN authentication failed: {1}"), &[HostName, Any]),
        form("sasl", format!("{T} {sm}: authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user={{0}}, relay={{1}} [{{H}}] (may be forged)"), &[Any, HostName]),
        form("sogo-auth", format!("{T} sogod [4711]: SOGoRootPage Login from '{{0}}, {{H}}' for user '{{1}}' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0"), &[Any, Any]),
        form("sogo-auth", format!("{T} sogod [4711]: SOGoRootPage Login from '{{H}}' for user '{{0}}' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0"), &[Any]),
        form("sshd", format!("{T} sshd[4711]: Failed password for {{0}} from {{H}} port 4711 ssh2"), &[Any]),
        form("sshd", format!("{T} sshd[4711]: Failed password for invalid user {{0}} from {{H}} port 4711 ssh2"), &[Any]),
        form("sshd", format!("{T} sshd[4711]: Invalid user {{0}} from {{H}} port 4711"), &[Any]),
        form("sshd", format!("{T} sshd[4711]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={{H}}  user={{0}}"), &[Any]),
        form("sshd", format!("{T} sshd[4711]: Connection closed by authenticating user {{0}} {{H}} port 4711 [preauth]"), &[Any]),
        form("sshd-aggressive", format!("{T} sshd[4711]: Bad protocol version identification '{{0}}' from {{H}} port 4711"), &[Any]),
        form("sshd-aggressive", format!("{T} sshd[4711]: Unable to negotiate with {{H}} port 4711: no matching cipher found. Their offer: {{0}} [preauth]"), &[Any]),
        form("sshd-aggressive", format!("{T} sshd[4711]: Received disconnect from {{H}}: 11: {{0}} [preauth]"), &[Any]),
        form("sshd-aggressive", format!("{T} sshd[4711]: error: maximum authentication attempts exceeded for {{0}} from {{H}} port 4711 ssh2 [preauth]"), &[Any]),
        form("sshd-aggressive", format!("{T} sshd[4711]: Disconnected from authenticating user {{0}} {{H}} port 4711 [preauth]"), &[Any]),
        form("zimbra-submission", pf("submission/smtpd", "warning: {0}[{H}]: SASL LOGIN authentication failed: {1}"), &[HostName, Any]),
    ]
}

struct Library {
    filters: Vec<(String, Arc<Filter>)>,
    matcher: Matcher,
    forms: Vec<Form>,
}

fn lib() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let filters: Vec<(String, Arc<Filter>)> = library_names()
            .iter()
            .map(|name| {
                let def = FilterDef::parse(library(name).unwrap(), name).unwrap();
                (
                    name.to_string(),
                    Arc::new(Filter::compile(&def, name).unwrap()),
                )
            })
            .collect();
        let matcher = Matcher::new(
            filters
                .iter()
                .enumerate()
                .map(|(i, (_, f))| (i, Arc::clone(f)))
                .collect(),
        );
        Library {
            filters,
            matcher,
            forms: forms(),
        }
    })
}

/// Addresses a client plants in its own text; none is ever the client's.
fn planted() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("6.6.{a}.{b}")),
        (0u16..=0xffff).prop_map(|x| format!("2001:db8:6666::{x:x}")),
        (0u8..=255).prop_map(|a| format!("::ffff:6.6.6.{a}")),
        (0u8..=255).prop_map(|a| format!("[6.6.6.{a}]")),
        (0u8..=255).prop_map(|a| format!("198.18.0.{a}")),
    ]
}

/// Pieces of the filters' fixed text, so a client field can imitate the
/// service's own words around its planted address.
const MIMICRY: &[&str] = &[
    " from ",
    " port 1",
    " port 22 ssh2",
    " ssh2",
    " [preauth]",
    "rip=",
    ", lip=1.1.1.1",
    ", ",
    "client: ",
    "[client ",
    ":1] ",
    "] ",
    "'",
    "\"",
    ": ",
    "(",
    ")",
    "<",
    ">",
    "user=",
    ", ip=[",
    "], port=[1]",
    "relay=",
    " H=",
    "X-Forwarded-For: ",
    "X-Real-IP: ",
    ". ",
    "unknown[",
    " auth=0/5",
    "' for user '",
    " might not have worked",
    "], server: ",
    ", server: ",
    " authenticator failed for ",
    ": 535 ",
    " rejected RCPT ",
    ": relay not permitted",
    " AUTH command used when not advertised",
    "SASL LOGIN authentication failed: ",
    " (auth failed, 20 attempts): ",
    "IMAP Error: Login failed for ",
    " against h from ",
    " in /a.php on line 1 (POST /)",
    "LOGIN FAILED, ",
    " plaintext ",
    " Kopano WebApp user: ",
    ": authentication failure at MAPI",
    " not found",
    " rhost=",
    " (may be forged)",
    "\t",
    "  ",
    "\u{e9}",
    "\u{feff}",
];

/// One piece of a client's text.
#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    /// The line's own text around its address, with a planted address in
    /// its place: `(chars before, chars after, planted)`. The likeliest
    /// way to fool a filter is to echo the very words it looks for.
    Echo(usize, usize, String),
}

/// Text a client might send: planted addresses among the services' own
/// words and random printable characters.
fn client_text() -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        3 => (0usize..80, 0usize..80, planted()).prop_map(|(b, a, p)| Piece::Echo(b, a, p)),
        2 => planted().prop_map(Piece::Text),
        3 => prop::sample::select(MIMICRY).prop_map(|m| Piece::Text(m.to_string())),
        2 => "[ -~]{1,6}".prop_map(Piece::Text),
    ];
    prop::collection::vec(piece, 0..6)
}

/// The form's line around its address, `planted` in the address's place.
fn echo(form: &Form, before: usize, after: usize, planted: &str) -> String {
    let mut line = form.line.replace("{H}", planted);
    for i in 0..form.fields.len() {
        line = line.replace(&format!("{{{i}}}"), "x");
    }
    let Some(at) = line.find(planted) else {
        return String::new();
    };
    let end = at + planted.len();
    let start = at.saturating_sub(before);
    let stop = (end + after).min(line.len());
    line.get(start..stop).unwrap_or(planted).to_string()
}

/// The client's real address, as services write it.
fn client() -> impl Strategy<Value = (String, IpAddr)> {
    prop_oneof![
        (1u8..=254).prop_map(|a| {
            let ip = Ipv4Addr::new(192, 0, 2, a);
            (ip.to_string(), IpAddr::V4(ip))
        }),
        (1u16..=0xffff).prop_map(|x| {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, x);
            (ip.to_string(), IpAddr::V6(ip))
        }),
        (1u8..=254).prop_map(|a| (
            format!("::ffff:192.0.2.{a}"),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, a))
        )),
    ]
}

fn fill(form: &Form, host: &str, fields: &[Vec<Piece>]) -> String {
    let mut line = form.line.replace("{H}", host);
    for (i, (pieces, chars)) in fields.iter().zip(form.fields).enumerate() {
        let text: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Echo(before, after, planted) => echo(form, *before, *after, planted),
            })
            .collect();
        let mut text: String = text.chars().filter(|c| chars.allows(*c)).collect();
        if text.is_empty() && matches!(chars, Chars::HostName) {
            // Postfix and Cyrus write `unknown` when the name is not known.
            text.push_str("unknown");
        }
        line = line.replace(&format!("{{{i}}}"), &text);
    }
    line
}

/// Jails (by index) and the address each blames.
type Hits = Vec<(usize, IpAddr)>;

/// The address each jail's matcher path and the filter itself give `line`.
fn verdicts(lib: &Library, line: &str) -> (Hits, Hits) {
    let mut fast = Vec::new();
    lib.matcher.scan(line, |jail, addr| {
        if !fast.contains(&(jail, addr)) {
            fast.push((jail, addr));
        }
    });
    let plain = lib
        .filters
        .iter()
        .enumerate()
        .filter_map(|(i, (_, f))| f.find(line).map(|a| (i, a)))
        .collect();
    (fast, plain)
}

#[test]
fn every_filter_has_a_form_and_each_form_matches_with_plain_fields() {
    let lib = lib();
    for name in library_names() {
        assert!(
            lib.forms.iter().any(|f| f.filter == *name),
            "no form for {name}"
        );
    }
    for form in &lib.forms {
        let plain: Vec<Vec<Piece>> = ["bob", "x", "y", "z"]
            .map(|t| vec![Piece::Text(t.to_string())])
            .to_vec();
        let line = fill(form, "192.0.2.7", &plain);
        let slot = lib
            .filters
            .iter()
            .position(|(n, _)| n == form.filter)
            .unwrap();
        let want: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(lib.filters[slot].1.find(&line), Some(want), "{line}");
        assert!(verdicts(lib, &line).0.contains(&(slot, want)), "{line}");
    }
}

/// The forms with client text that mimics the services' own words must
/// still be failures most of the time: else the property below would hold
/// only because nothing matched.
#[test]
fn random_client_fields_mostly_leave_a_failure_line() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let lib = lib();
    let mut runner = TestRunner::deterministic();
    let strategy = (client(), prop::collection::vec(client_text(), 4));
    for (i, form) in lib.forms.iter().enumerate() {
        let slot = lib
            .filters
            .iter()
            .position(|(n, _)| n == form.filter)
            .unwrap();
        let mut hits = 0;
        for _ in 0..40 {
            let ((host, addr), fields) = strategy.new_tree(&mut runner).unwrap().current();
            let line = fill(form, &host, &fields);
            hits += usize::from(lib.filters[slot].1.find(&line) == Some(addr));
        }
        assert!(
            hits >= 8,
            "form {i} of {} matched {hits} of 40 random lines",
            form.filter
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whatever the client writes into its own fields, every filter that
    /// matches the line names the address at the line's `<HOST>` place:
    /// the one the service wrote, never one the client planted.
    #[test]
    fn a_filter_bans_the_client_never_an_address_it_wrote(
        index in 0usize..1000,
        (host, addr) in client(),
        fields in prop::collection::vec(client_text(), 4),
    ) {
        let lib = lib();
        let form = &lib.forms[index % lib.forms.len()];
        let line = fill(form, &host, &fields);
        let (fast, plain) = verdicts(lib, &line);
        prop_assert_eq!(&fast, &plain, "matcher and filters disagree on {}", line);
        for (jail, got) in plain {
            prop_assert_eq!(
                got, addr,
                "{} took {} from {}", lib.filters[jail].0, got, line
            );
        }
    }
}

// ------------------------------------------------------------- tracker

const MAXRETRY: std::ops::RangeInclusive<u32> = 1..=5;

/// The addresses of a stream: four clients and three the jail ignores
/// (by network, and one written IPv4-mapped).
const POOL: [&str; 7] = [
    "192.0.2.1",
    "192.0.2.2",
    "2001:db8:7::1",
    "::ffff:192.0.2.3",
    "10.9.0.1",
    "2001:db8:9::5",
    "::ffff:10.9.3.3",
];

fn ignored(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(a) => a.octets()[..2] == [10, 9],
        IpAddr::V6(a) => a.segments()[..3] == [0x2001, 0xdb8, 9],
    }
}

fn tracker(maxretry: u32, findtime: u64) -> Tracker {
    let text = format!(
        "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\n\
         maxretry = {maxretry}\nfindtime = {findtime}\nbantime = 600\n\
         ignoreip = [\"10.9.0.0/16\", \"2001:db8:9::/48\"]\nignoreself = false\n"
    );
    Tracker::new(Config::parse(&text, Path::new("p.toml")).unwrap().jails)
}

fn failure(addr: IpAddr, ms: u64) -> Failure {
    Failure {
        jail: 0,
        addr,
        time: SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_millis(ms),
        line: None,
        read: None,
        account: None,
    }
}

/// Each address's failure times since its last ban, oldest first.
#[derive(Default)]
struct Model(Vec<(IpAddr, Vec<u64>)>);

impl Model {
    fn times(&mut self, addr: IpAddr) -> &mut Vec<u64> {
        let i = match self.0.iter().position(|(a, _)| *a == addr) {
            Some(i) => i,
            None => {
                self.0.push((addr, Vec::new()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// In time order: a ban exactly when an address reaches maxretry
    /// failures inside findtime (counted since its last ban), never for an
    /// ignored address, and the count reported on the way is that count.
    #[test]
    fn the_tracker_bans_exactly_at_maxretry_within_findtime(
        maxretry in MAXRETRY,
        findtime in 1u64..120,
        events in prop::collection::vec((0..POOL.len(), 0u64..40_000), 0..150),
    ) {
        let mut t = tracker(maxretry, findtime);
        let findtime_ms = findtime * 1000;
        let mut model = Model::default();
        let mut now = 0;
        for (who, step) in events {
            now += step;
            let addr: IpAddr = POOL[who].parse().unwrap();
            let verdict = t.record(failure(addr, now));
            if ignored(addr) {
                prop_assert_eq!(verdict, Verdict::Ignored);
                continue;
            }
            let times = model.times(addr.to_canonical());
            times.push(now);
            let inside = times.iter().filter(|&&x| x + findtime_ms > now).count() as u32;
            match verdict {
                Verdict::Ban(order) => {
                    prop_assert!(inside >= maxretry, "banned {} with {} of {} inside findtime", addr, inside, maxretry);
                    prop_assert_eq!(order.target, ipnet::IpNet::from(addr.to_canonical()));
                    times.clear();
                }
                Verdict::Counted { count } => {
                    prop_assert!(inside < maxretry, "{} reached {} failures unbanned", addr, inside);
                    prop_assert_eq!(count, inside);
                }
                other => prop_assert!(false, "{:?} for {}", other, addr),
            }
        }
    }

    /// Out of order (sources deliver late): still never a ban of an ignored
    /// address, and never one without maxretry failures since the address's
    /// last ban that all fit in one findtime.
    #[test]
    fn the_tracker_never_bans_below_maxretry_within_findtime_out_of_order(
        maxretry in MAXRETRY,
        findtime in 1u64..120,
        events in prop::collection::vec((0..POOL.len(), 0u64..600_000), 0..150),
    ) {
        let mut t = tracker(maxretry, findtime);
        let findtime_ms = findtime * 1000;
        let mut model = Model::default();
        for (who, at) in events {
            let addr: IpAddr = POOL[who].parse().unwrap();
            let verdict = t.record(failure(addr, at));
            let banned = matches!(verdict, Verdict::Ban(_));
            prop_assert!(!(banned && ignored(addr)), "banned ignored {}", addr);
            if ignored(addr) {
                continue;
            }
            let times = model.times(addr.to_canonical());
            times.push(at);
            if banned {
                let mut sorted = times.clone();
                sorted.sort_unstable();
                let m = maxretry as usize;
                let fits = sorted.windows(m).any(|w| w[m - 1] - w[0] <= findtime_ms);
                prop_assert!(fits, "banned {} at {} with failures {:?}", addr, at, sorted);
                times.clear();
            }
        }
    }
}
