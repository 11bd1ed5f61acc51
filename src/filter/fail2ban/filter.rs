//! The compiled filter and its per-line state: the `maxlines` buffer, the
//! last known date and the multi-line failure cache (`<F-MLFID>`), kept
//! so a line is judged exactly as fail2ban's `Filter.processLine` judges it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::config::ConfigSet;
use super::dates::{Dated, LineDates};
use super::engine::{Compiled, Hit};
use super::error::Fail2banError;
use super::gate::LineGate;
use super::matched::Fail2banMatch;
use super::options::{combined, parse_spec};
use super::tags;

/// A remembered date older than this is not lent to an undated line.
const LAST_DATE_REUSE: Duration = Duration::from_secs(60);
/// fail2ban's multi-line failure cache: at most this many connections,
/// each forgotten after five minutes.
const MLFID_MAX: usize = 100;
const MLFID_TTL: Duration = Duration::from_secs(300);
/// How most stock filters end their prefregex: the rest of the line is
/// the content the failregexes see (see [`Fail2banFilter::prefix_hit`]).
const CONTENT_TAIL: &str = "<F-CONTENT>.+</F-CONTENT>$";
/// Groups that identify a failure, in fail2ban's order.
const ID_GROUPS: [&str; 5] = ["fid", "ip4", "ip6", "dns", "mlfid"];

/// One buffered line split around its date: fail2ban matches the text
/// before and after the date joined, never the date itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    pre: String,
    post: String,
}

impl Line {
    fn text(&self) -> String {
        format!("{}{}", self.pre, self.post)
    }
}

/// A line split around its date, and the time it counts from: what
/// fail2ban's `processLine` makes of it before any regex runs.
pub(super) struct Placed<'a> {
    pre: &'a str,
    post: &'a str,
    date: Option<SystemTime>,
    /// A date was found in this very line.
    dated: bool,
}

impl<'a> Placed<'a> {
    /// `found`: the line's date as the filter's detector read it;
    /// `last_date`: the last date seen, lent to undated lines while recent
    /// (and updated here).
    pub(super) fn new(
        line: &'a str,
        found: Option<Dated>,
        last_date: &mut Option<SystemTime>,
        now: SystemTime,
    ) -> Placed<'a> {
        let recent = last_date.filter(|t| *t + LAST_DATE_REUSE > now);
        let whole = |date| Placed {
            pre: "",
            post: line,
            date,
            dated: false,
        };
        match found {
            Some(found) if !found.span.is_empty() && line.get(found.span.clone()).is_some() => {
                *last_date = Some(found.time);
                Placed {
                    pre: &line[..found.span.start],
                    post: &line[found.span.end..],
                    date: Some(found.time),
                    dated: true,
                }
            }
            // An optional date that matched empty: the last one, or now.
            Some(found) => match recent {
                Some(t) => whole(Some(t)),
                None => {
                    let s = found.span.start.min(line.len());
                    let e = found.span.end.clamp(s, line.len());
                    Placed {
                        pre: line.get(..s).unwrap_or(""),
                        post: line.get(e..).unwrap_or(line),
                        date: Some(now),
                        dated: false,
                    }
                }
            },
            None => whole(recent),
        }
    }

    /// Whether the text regexes see is the end of the line, not two parts
    /// joined: text that is not in the line is not in it either.
    pub(super) fn text_is_tail(&self) -> bool {
        self.pre.is_empty()
    }

    /// The time the line counts from (see [`Placed::new`]).
    pub(super) fn date(&self) -> Option<SystemTime> {
        self.date
    }

    /// The text regexes see: the line without its date.
    pub(super) fn text(&self) -> Cow<'a, str> {
        if self.pre.is_empty() {
            Cow::Borrowed(self.post)
        } else {
            Cow::Owned(format!("{}{}", self.pre, self.post))
        }
    }
}

/// A prefregex and its head as compiled (see [`Fail2banFilter::prefix_key`]).
pub(super) type PrefixKey<'a> = (Option<&'a str>, Option<&'a str>);

/// The prefregex's match on a line and its content's range (see
/// [`Fail2banFilter::prefix_hit`]); None when it does not match.
pub(super) type PrefixHit = Option<(Option<Hit>, Option<Range<usize>>)>;

/// What one failregex made of one text, as far as it was asked.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Known {
    /// [`LineGate::admits_failregex`].
    admits: Option<bool>,
    /// Whether it matches.
    matches: Option<bool>,
}

/// What filters of one date group that share a prefregex (and with it
/// what their failregexes are run on) learnt of the line being judged:
/// the same regex on the same text finds the same, so it is asked once
/// for all of them (sshd and its aggressive mode share most of theirs).
/// Only what a regex finds is shared, never a filter's state.
pub(super) struct Shared<'m> {
    /// The prefregex's answer, once one member asked.
    pub(super) prefix: &'m mut Option<PrefixHit>,
    /// Per failregex of the members sharing the prefregex.
    pub(super) known: &'m mut [Known],
    /// Per failregex of this filter: its place in `known`.
    pub(super) places: &'m [usize],
}

impl Shared<'_> {
    fn known(&mut self, index: usize) -> Option<&mut Known> {
        self.known.get_mut(*self.places.get(index)?)
    }
}

fn join(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.pre);
        s.push_str(&l.post);
        s.push('\n');
    }
    s
}

/// Matched group values of one failure (absent = did not take part), with
/// the users seen on the same connection.
#[derive(Debug, Clone, Default)]
struct Fail {
    groups: HashMap<String, String>,
    users: BTreeSet<String>,
}

impl Fail {
    fn get(&self, k: &str) -> Option<&str> {
        self.groups.get(k).map(String::as_str)
    }
    /// Python truthiness of a group: taken part and not empty.
    fn truthy(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| !v.is_empty())
    }
    fn take_truthy(&mut self, k: &str) -> bool {
        self.groups.remove(k).is_some_and(|v| !v.is_empty())
    }
}

/// The group values of one match by name, borrowed from the texts
/// matched (absent = did not take part): fail2ban's dict of a match
/// before a connection's cache merges it.
struct Values<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Values<'a> {
    fn get(&self, k: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// Python truthiness of a group: taken part and not empty.
    fn truthy(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| !v.is_empty())
    }

    fn set(&mut self, k: &'a str, v: &'a str) {
        match self.0.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k, v)),
        }
    }

    /// The groups of `hit` on `hay` that took part, over those already
    /// here, but for `skip`.
    fn take_from(&mut self, hit: &'a Hit, hay: &'a str, skip: &str) {
        for (k, r) in hit.groups() {
            if k == skip {
                continue;
            }
            if let Some(v) = r.and_then(|r| hay.get(r)) {
                self.set(k, v);
            }
        }
    }

    /// `<F-ALT_USER>` and the like fill `user` when it is missing: in
    /// the order of their names, each non-empty one fills its group
    /// when that is empty or absent.
    fn alt_values(&mut self) {
        let mut alts: Vec<(&'a str, &'a str, &'a str)> = self
            .0
            .iter()
            .filter_map(|&(k, v)| {
                let rest = k.strip_prefix("alt_")?;
                let base = match rest.rsplit_once('_') {
                    Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
                    _ => rest,
                };
                let base = match base {
                    "id" => "fid",
                    "port" => "fport",
                    b => b,
                };
                Some((k, base, v))
            })
            .collect();
        // Group names are unique: the name alone orders them.
        alts.sort_by_key(|(k, _, _)| *k);
        for (_, name, value) in alts {
            if !value.is_empty() && !self.truthy(name) {
                self.set(name, value);
            }
        }
    }
}

/// A fail2ban regex with the name of the option line it came from.
#[derive(Debug)]
struct Rule {
    re: Compiled,
    multiline: bool,
}

impl Rule {
    /// Searches `buf` (lines each ending in `\n`). A regex compiled without
    /// `re.MULTILINE` sees `$` match only at the very end, so it gets the
    /// buffer without its final newline.
    fn search(&self, buf: &str) -> Option<Hit> {
        if self.multiline {
            self.re.search(buf)
        } else {
            self.re.search(buf.strip_suffix('\n').unwrap_or(buf))
        }
    }
}

/// How many failregexes a line is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Every one (fail2ban's check-all mode, of its tests and
    /// `fail2ban-regex`): what each matches is reported.
    All,
    /// Up to the first that matches, which decides the line: fail2ban in
    /// operation.
    First,
}

/// What a failregex that matched (and was not ignored) makes of a line.
enum Judged {
    Failure(Fail2banMatch),
    /// Nothing; the next failregex is tried.
    Next,
    /// Nothing; in operation, the line is done.
    Stop,
}

impl Mode {
    /// Adds a failure to `out`; whether the line is done.
    fn take(self, judged: Judged, out: &mut Vec<Fail2banMatch>) -> bool {
        match judged {
            Judged::Failure(m) => {
                out.push(m);
                self == Mode::First
            }
            Judged::Next => false,
            Judged::Stop => self == Mode::First,
        }
    }
}

/// A filter's compiled regexes (see [`Fail2banFilter::compiled`]).
pub(super) struct Regexes<'a> {
    pub(super) maxlines: usize,
    pub(super) prefregex: Option<&'a Compiled>,
    pub(super) failregex: Vec<&'a Compiled>,
    pub(super) ignoreregex: Vec<&'a Compiled>,
}

/// What the last line fed to a filter did besides the failures it
/// returned: what `nftjail test` reports the way fail2ban-regex does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineReport {
    /// The line's time: its own date, one lent from a recent line as
    /// fail2ban lends it, or `None` when no date is known.
    pub time: Option<SystemTime>,
    /// A date template found a date in this very line.
    pub dated: bool,
    /// Indices of the ignoreregexes that matched it.
    pub ignoreregex: Vec<usize>,
    /// Indices of the failregexes that matched it as a non-failure
    /// (`<F-NOFAIL>`): fail2ban-regex counts such a line as ignored.
    pub nofail: Vec<usize>,
}

impl LineReport {
    fn clear(&mut self) {
        self.time = None;
        self.dated = false;
        self.ignoreregex.clear();
        self.nofail.clear();
    }
}

/// A fail2ban filter, loaded from its files and ready to judge lines.
#[derive(Debug)]
pub struct Fail2banFilter {
    name: String,
    prefregex: Option<Rule>,
    /// A prefregex `^HEAD<F-CONTENT>.+</F-CONTENT>$` of a filter of one
    /// line at a time: HEAD alone, when it is anchored at the start.
    pref_head: Option<Compiled>,
    failregex: Vec<Rule>,
    /// Per failregex: it names `<F-MLFGAINED>` and `<F-MLFFORGET>` and
    /// nothing (no `alt_` or `mlfpending` group, here or in the prefregex)
    /// that could turn its match into a failure of a connection not yet
    /// seen (see [`Fail2banFilter::forget_unseen`]).
    gains_and_forgets: Vec<bool>,
    /// Per failregex flagged in `gains_and_forgets`: each of its matches
    /// has `<F-MLFGAINED>` and `<F-MLFFORGET>` with text, an address or
    /// `<F-ID>`, and (here or in the prefregex) `<F-MLFID>`. While the
    /// cache holds no connection, such a match is a no-failure that ends
    /// the line whatever the groups hold: whether it matches is all that
    /// is asked (see [`Fail2banFilter::find_line`]).
    always_forgets: Vec<bool>,
    ignoreregex: Vec<Rule>,
    /// The regexes as the filter file writes them (tags unexpanded), for
    /// reports that show which one matched.
    failregex_text: Vec<String>,
    ignoreregex_text: Vec<String>,
    last: LineReport,
    maxlines: usize,
    journalmatch: Vec<String>,
    datepattern: Option<String>,
    dates: LineDates,
    buffer: Vec<Line>,
    last_date: Option<SystemTime>,
    /// Lines without any text a match needs are not run through the regexes.
    gate: LineGate,
    /// [`with_zone`](Self::with_zone) was called.
    zoned: bool,
    mlfid: Vec<(String, SystemTime, Fail)>,
}

impl Fail2banFilter {
    /// `spec` like `postfix[mode=auth]`, `sshd`, or a path to a `.conf`;
    /// `dir` the `filter.d` directory names are looked up in.
    pub fn load(spec: &str, dir: &Path) -> Result<Fail2banFilter, Fail2banError> {
        let (name, options) = parse_spec(spec)?;
        Self::load_with_options(&name, &options, dir)
    }

    /// Like [`load`](Self::load) with the options given apart from the
    /// name, for callers (a jail config) that hold them as key/value pairs.
    pub fn load_with_options(
        name: &str,
        options: &[(String, String)],
        dir: &Path,
    ) -> Result<Fail2banFilter, Fail2banError> {
        let options = options.to_vec();
        let name = name.to_string();
        let as_path = Path::new(&name);
        let base = if name.contains('/') || name.ends_with(".conf") {
            as_path.with_extension("")
        } else {
            dir.join(&name)
        };
        let display = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        let config = ConfigSet::read(&base)?;
        let opts = combined(&config, &options, &display)?;
        Self::from_options(&display, &opts)
    }

    /// Builds the filter from final option values (after interpolation).
    fn from_options(
        name: &str,
        opts: &HashMap<String, String>,
    ) -> Result<Fail2banFilter, Fail2banError> {
        let value_error = |key: &str, value: &str, message: String| Fail2banError::Value {
            filter: name.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            message,
        };
        let maxlines = match opts.get("maxlines").map(|s| s.trim()) {
            None | Some("") => 1,
            Some(v) => v
                .parse::<usize>()
                .map_err(|e| value_error("maxlines", v, e.to_string()))?
                .max(1),
        };
        let use_dns = !matches!(
            opts.get("usedns")
                .map(|s| s.trim().to_lowercase())
                .as_deref(),
            Some("no")
        );
        let compile = |key: &str, line: usize, text: &str, multiline: bool| {
            let expanded = tags::expand(text, use_dns);
            if expanded.trim_start().is_empty() {
                return Err(Fail2banError::Regex {
                    filter: name.to_string(),
                    key: key.to_string(),
                    line,
                    message: "empty regex".into(),
                });
            }
            Compiled::new(&expanded, multiline)
                .map(|re| Rule { re, multiline })
                .map_err(|message| Fail2banError::Regex {
                    filter: name.to_string(),
                    key: key.to_string(),
                    line,
                    message,
                })
        };
        let prefregex = match opts.get("prefregex").filter(|v| !v.is_empty()) {
            Some(v) => Some(compile("prefregex", 1, v, false)?),
            None => None,
        };
        let pref_head = opts
            .get("prefregex")
            .filter(|_| maxlines == 1)
            .and_then(|v| v.strip_suffix(CONTENT_TAIL))
            .and_then(|head| Compiled::new(&tags::expand(head, use_dns), false).ok())
            .filter(Compiled::is_anchored);
        let lines = |key: &str| -> Vec<(usize, String)> {
            opts.get(key)
                .map(|v| {
                    v.split('\n')
                        .enumerate()
                        .filter(|(_, l)| !l.is_empty())
                        .map(|(i, l)| (i + 1, l.to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut failregex = Vec::new();
        let mut failregex_text = Vec::new();
        for (line, text) in lines("failregex") {
            let rule = compile("failregex", line, &text, maxlines > 1)?;
            let has_id = |re: &Compiled| ID_GROUPS.iter().any(|g| re.has_group(g));
            if !has_id(&rule.re) && !prefregex.as_ref().is_some_and(|p| has_id(&p.re)) {
                return Err(Fail2banError::Regex {
                    filter: name.to_string(),
                    key: "failregex".into(),
                    line,
                    message: "no <HOST>, <ADDR>, <F-ID> or other failure-id group".into(),
                });
            }
            failregex.push(rule);
            failregex_text.push(text);
        }
        let plain = |re: &Compiled| {
            !re.group_names()
                .any(|n| n.starts_with("alt_") || n == "mlfpending")
        };
        let gains_and_forgets = failregex
            .iter()
            .map(|r: &Rule| {
                r.re.has_group("mlfgained")
                    && r.re.has_group("mlfforget")
                    && plain(&r.re)
                    && prefregex.as_ref().is_none_or(|p| plain(&p.re))
            })
            .collect();
        let pref_has_mlfid = prefregex
            .as_ref()
            .is_some_and(|p| p.re.always_has(&["mlfid"], false));
        let always_forgets = failregex
            .iter()
            .map(|r: &Rule| {
                r.re.always_has(&["mlfgained"], true)
                    && r.re.always_has(&["mlfforget"], true)
                    && r.re.always_has(&["ip4", "ip6", "dns", "fid"], false)
                    && (pref_has_mlfid || r.re.always_has(&["mlfid"], false))
            })
            .collect();
        let mut ignoreregex = Vec::new();
        let mut ignoreregex_text = Vec::new();
        for (line, text) in lines("ignoreregex") {
            ignoreregex.push(compile("ignoreregex", line, &text, false)?);
            ignoreregex_text.push(text);
        }
        let datepattern = opts
            .get("datepattern")
            .filter(|v| !v.trim().is_empty())
            .cloned();
        let dates = match &datepattern {
            Some(p) => LineDates::from_pattern(p)
                .map_err(|message| value_error("datepattern", p, message))?,
            None => LineDates::auto(),
        };
        let journalmatch = lines("journalmatch").into_iter().map(|(_, l)| l).collect();
        // `find` asks the ignoreregexes first when there are this few.
        let ignore_first: Vec<&Compiled> = if ignoreregex.len() + 2 < failregex.len() {
            ignoreregex.iter().map(|r: &Rule| &r.re).collect()
        } else {
            Vec::new()
        };
        let gate = LineGate::new(
            prefregex.as_ref().map(|r| &r.re),
            &failregex.iter().map(|r| &r.re).collect::<Vec<_>>(),
            &ignore_first,
            maxlines,
        );
        Ok(Fail2banFilter {
            gate,
            zoned: false,
            name: name.to_string(),
            prefregex,
            pref_head,
            failregex,
            gains_and_forgets,
            always_forgets,
            ignoreregex,
            failregex_text,
            ignoreregex_text,
            last: LineReport::default(),
            maxlines,
            journalmatch,
            datepattern,
            dates,
            buffer: Vec::new(),
            last_date: None,
            mlfid: Vec::new(),
        })
    }

    /// Zone for dates written without one (default: the system's local
    /// zone, `$TZ` honoured), as fail2ban's `logtimezone`.
    pub fn with_zone(mut self, zone: crate::timestamp::Zone) -> Fail2banFilter {
        self.dates.set_zone(zone);
        self.zoned = true;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn maxlines(&self) -> usize {
        self.maxlines
    }
    /// `journalmatch` lines, unparsed, for a journal source to apply.
    pub fn journalmatch(&self) -> &[String] {
        &self.journalmatch
    }
    pub fn datepattern(&self) -> Option<&str> {
        self.datepattern.as_deref()
    }
    pub fn failregex_count(&self) -> usize {
        self.failregex.len()
    }
    /// The failregex lines as written (tags unexpanded), in index order.
    pub fn failregex_text(&self) -> &[String] {
        &self.failregex_text
    }
    pub fn ignoreregex_text(&self) -> &[String] {
        &self.ignoreregex_text
    }
    /// What the last line fed did besides its failures.
    pub fn last_line(&self) -> &LineReport {
        &self.last
    }
    /// Name of the date template that found the last line's date, `None`
    /// when that line had no date of its own.
    pub fn last_date_template(&self) -> Option<&str> {
        self.last
            .dated
            .then(|| self.dates.current_template())
            .flatten()
    }

    /// Feeds one log line; returns the failure fail2ban would count for it.
    ///
    /// As fail2ban in operation: the first failregex that matches decides
    /// the line (the later ones are not tried, so they change no state).
    pub fn process(&mut self, line: &str, now: SystemTime) -> Option<Fail2banMatch> {
        let found = self.dates.find(line, now);
        let placed = Placed::new(line, found, &mut self.last_date, now);
        let text = placed.text();
        self.judge(&placed, &text, now, Mode::First, false, None)
            .into_iter()
            .next()
    }

    /// Every failure the line produces with each failregex tried (fail2ban's
    /// check-all mode, used by its sample tests); usually zero or one.
    pub fn failures(&mut self, line: &str, now: SystemTime) -> Vec<Fail2banMatch> {
        self.failures_of(line, now, false)
    }

    /// [`failures`](Self::failures) of a line [`may_match`](Self::may_match)
    /// let through: the gate is not asked a second time (see
    /// [`judge`](Self::judge)'s `keys_found`; the answer is the same).
    pub fn failures_admitted(&mut self, line: &str, now: SystemTime) -> Vec<Fail2banMatch> {
        self.failures_of(line, now, true)
    }

    fn failures_of(&mut self, line: &str, now: SystemTime, admitted: bool) -> Vec<Fail2banMatch> {
        let found = self.dates.find(line, now);
        let placed = Placed::new(line, found, &mut self.last_date, now);
        let text = placed.text();
        self.judge(&placed, &text, now, Mode::All, admitted, None)
    }

    /// Feeds a line whose time is already known (a journal entry): no date
    /// is looked for in the text.
    pub fn process_dated(&mut self, line: &str, time: SystemTime) -> Option<Fail2banMatch> {
        self.dated(line, time, Mode::First).into_iter().next()
    }

    pub fn failures_dated(&mut self, line: &str, time: SystemTime) -> Vec<Fail2banMatch> {
        self.dated(line, time, Mode::All)
    }

    fn dated(&mut self, line: &str, time: SystemTime, mode: Mode) -> Vec<Fail2banMatch> {
        self.last_date = Some(time);
        let placed = Placed {
            pre: "",
            post: line,
            date: Some(time),
            dated: false,
        };
        self.judge(&placed, line, time, mode, false, None)
    }

    /// Judges a placed line; `text` is its text without the date. A line
    /// the gate turns away leaves no trace but its date. `keys_found`: one
    /// of this filter's [`gate_keys`](Self::gate_keys) is known to be in
    /// the line (a search over several filters' keys at once): the gate
    /// is then not asked. It only spares the regexes lines none of them
    /// can match, so such a line, judged, leaves no trace either (each
    /// failregex is asked its own part of the gate's question before it
    /// runs, see [`LineGate::admits_failregex`]). Most lines that hold a
    /// key are admitted, and asking the gate first would cost them more
    /// than it spares the rest.
    pub(super) fn judge(
        &mut self,
        placed: &Placed<'_>,
        text: &str,
        now: SystemTime,
        mode: Mode,
        keys_found: bool,
        shared: Option<Shared<'_>>,
    ) -> Vec<Fail2banMatch> {
        self.last.clear();
        self.last.dated = placed.dated;
        self.last.time = placed.date;
        if !keys_found && !self.gate.admits(text) {
            return Vec::new();
        }
        if self.maxlines == 1 {
            return self.find_line(text, placed.date, now, mode, shared);
        }
        let tuple = Line {
            pre: placed.pre.to_string(),
            post: placed.post.to_string(),
        };
        self.find(tuple, placed.date, now, mode)
    }

    /// Whether the gate lets `text` (a line without its date) through.
    #[cfg(test)]
    pub(super) fn admits(&self, text: &str) -> bool {
        self.gate.admits(text)
    }

    /// Whether this filter may find anything in `line`, judged on the whole
    /// line before its date is read: a line turned away here gives no
    /// failure and no ignoreregex or `<F-NOFAIL>` hit when fed (the text
    /// the regexes see is a part of it, but for text that would only form
    /// across a date cut out of the middle of a line). Only its date, and
    /// the date it would lend an undated line after it, are not read.
    /// Always true for a multi-line filter, whose buffer keeps every line.
    pub fn may_match(&self, line: &str) -> bool {
        self.gate.admits(line)
    }

    /// What a line's prefregex answer depends on beside the line: the
    /// prefregex and the head run alone (see [`prefix_hit`](Self::prefix_hit)).
    /// None for a multi-line filter, which shares nothing.
    pub(super) fn prefix_key(&self) -> Option<PrefixKey<'_>> {
        (self.maxlines == 1).then(|| {
            (
                self.prefregex.as_ref().map(|p| p.re.pattern()),
                self.pref_head.as_ref().map(Compiled::pattern),
            )
        })
    }

    /// What the failregexes see of `text` (a line without its date): the
    /// prefregex's content, or the text itself without a prefregex or
    /// when the content is empty; None when the prefregex does not match.
    /// For a filter of one line at a time.
    pub(super) fn content<'t>(&self, text: &'t str) -> Option<&'t str> {
        let Some(pref) = &self.prefregex else {
            return Some(text);
        };
        let (_, content) = self.prefix_hit(pref, text)?;
        let content = content.and_then(|r| text.get(r));
        Some(content.filter(|c| !c.is_empty()).unwrap_or(text))
    }

    /// The failregexes' patterns as compiled, in index order.
    pub(super) fn failregex_patterns(&self) -> impl Iterator<Item = &str> {
        self.failregex.iter().map(|r| r.re.pattern())
    }

    /// The compiled prefregex, failregexes and ignoreregexes, and
    /// `maxlines`: what [`super::fold`] decides by.
    pub(super) fn compiled(&self) -> Regexes<'_> {
        Regexes {
            maxlines: self.maxlines,
            prefregex: self.prefregex.as_ref().map(|r| &r.re),
            failregex: self.failregex.iter().map(|r| &r.re).collect(),
            ignoreregex: self.ignoreregex.iter().map(|r| &r.re).collect(),
        }
    }

    /// See [`LineGate::keys`].
    pub fn gate_keys(&self) -> Option<Vec<String>> {
        self.gate.keys()
    }

    /// One search over any number of lines for the text every line this
    /// filter may match holds (see [`may_match`](Self::may_match)), so a
    /// reader can pass over the lines where it finds none without feeding
    /// them: they would change nothing but the date an undated line after
    /// them borrows. None when the filter must see every line.
    pub fn key_search(&self) -> Option<&regex::bytes::Regex> {
        self.gate.key_search()
    }

    /// A copy of this filter's date detector, as it stands.
    pub(super) fn line_dates(&self) -> LineDates {
        self.dates.clone()
    }

    /// Whether the filter reads dates in a zone of its own (see
    /// [`with_zone`](Self::with_zone)).
    pub(super) fn zoned(&self) -> bool {
        self.zoned
    }

    /// fail2ban's `findFailure`, in check-all mode or as in operation.
    fn find(
        &mut self,
        tuple: Line,
        date: Option<SystemTime>,
        now: SystemTime,
        mode: Mode,
    ) -> Vec<Fail2banMatch> {
        let mut out = Vec::new();
        if self.maxlines > 1 {
            self.buffer.push(tuple);
            let excess = self.buffer.len().saturating_sub(self.maxlines);
            self.buffer.drain(..excess);
        } else {
            self.buffer = vec![tuple];
        }
        let org = self.buffer.clone();
        let mut buf = Some(join(&org));
        if !self.ignoreregex.is_empty()
            && self.ignoreregex.len() + 2 < self.failregex.len()
            && self.ignored(buf.as_deref().unwrap_or(""), &org, None)
        {
            return out;
        }
        // The prefregex's match and the text it was run on.
        let mut pre: Option<(Hit, String)> = None;
        if let Some(pref) = &self.prefregex {
            let text = buf.clone().unwrap_or_default();
            let Some(hit) = pref.search(&text) else {
                return out;
            };
            let content = hit.group(&text, "content").filter(|c| !c.is_empty());
            if let Some(content) = content {
                self.buffer = vec![Line {
                    pre: String::new(),
                    post: content.to_string(),
                }];
                buf = None;
            }
            pre = Some((hit, text));
        }
        for index in 0..self.failregex.len() {
            let text = match buf.take() {
                Some(b) => b,
                None => join(&self.buffer),
            };
            buf = Some(text.clone());
            let Some(hit) = self.failregex[index].search(&text) else {
                continue;
            };
            if !self.ignoreregex.is_empty() && self.ignored(&text, &org, Some((index, &hit, &text)))
            {
                if mode == Mode::First {
                    break;
                }
                buf = None;
                continue;
            }
            if self.maxlines > 1 {
                self.buffer = unmatched(&hit, &text, &org, &self.failregex[index].re);
                buf = None;
            }
            let pre = pre.as_ref().map(|(h, t)| (h, t.as_str()));
            if mode.take(self.failure(index, pre, &hit, &text, date, now), &mut out) {
                break;
            }
        }
        out
    }

    /// [`find`](Self::find) for a filter of one line at a time (`maxlines`
    /// 1): the same steps on the line's text as it is, without the buffer
    /// the multi-line case keeps (each line replaces it whole there).
    fn find_line(
        &mut self,
        text: &str,
        date: Option<SystemTime>,
        now: SystemTime,
        mode: Mode,
        mut shared: Option<Shared<'_>>,
    ) -> Vec<Fail2banMatch> {
        let mut out = Vec::new();
        if !self.ignoreregex.is_empty()
            && self.ignoreregex.len() + 2 < self.failregex.len()
            && self.ignored_line(text)
        {
            return out;
        }
        // The prefregex's match, with its groups once a failregex needs
        // them (most lines that get this far end without).
        let mut pre_hit = None;
        // The prefregex's head matched, its groups not taken yet.
        let mut head_pending = false;
        // What the failregexes see: the line, or the prefregex's content.
        let mut seen = text;
        if let Some(pref) = &self.prefregex {
            let found = match shared.as_mut() {
                Some(sh) => sh
                    .prefix
                    .get_or_insert_with(|| self.prefix_hit(pref, text))
                    .clone(),
                None => self.prefix_hit(pref, text),
            };
            let Some((hit, content)) = found else {
                return out;
            };
            head_pending = hit.is_none();
            pre_hit = hit;
            // An empty content leaves the line as it is, as in fail2ban.
            if let Some(content) = content.and_then(|r| text.get(r)) {
                if !content.is_empty() {
                    seen = content;
                }
            }
        }
        // Only those the content's first byte allows are asked.
        let to_try = self.gate.to_try(seen);
        let count = self.failregex.len();
        for k in 0..count {
            let Some(index) = self.gate.nth_to_try(to_try, k, count) else {
                break;
            };
            // What another member sharing the prefregex learnt of this
            // failregex on this text.
            let mut known = shared.as_mut().and_then(|sh| sh.known(index));
            // Its required text missing, a failregex cannot match: not run.
            let admits = match known.as_deref_mut() {
                Some(k) => *k
                    .admits
                    .get_or_insert_with(|| self.gate.admits_failregex(index, seen)),
                None => self.gate.admits_failregex(index, seen),
            };
            if !admits {
                continue;
            }
            let matches = known.as_ref().and_then(|k| k.matches);
            if matches == Some(false) {
                continue;
            }
            // A success ending a connection while none is cached: what
            // `forget_unseen` would make of its match, whatever it holds.
            let forgets = self.gains_and_forgets[index] && self.always_forgets[index] && {
                self.mlfid.retain(|(_, t, _)| *t + MLFID_TTL > now);
                self.mlfid.is_empty()
            };
            if forgets {
                let matches = matches.unwrap_or_else(|| self.failregex[index].re.is_match(seen));
                if let Some(k) = known.as_deref_mut() {
                    k.matches = Some(matches);
                }
                if !matches {
                    continue;
                }
                if !self.ignoreregex.is_empty() && self.ignored_line(seen) {
                    if mode == Mode::First {
                        break;
                    }
                    continue;
                }
                self.last.nofail.push(index);
                if mode.take(Judged::Stop, &mut out) {
                    break;
                }
                continue;
            }
            let hit = self.failregex[index].re.search(seen);
            if let Some(k) = known {
                k.matches = Some(hit.is_some());
            }
            let Some(hit) = hit else {
                continue;
            };
            if !self.ignoreregex.is_empty() && self.ignored_line(seen) {
                if mode == Mode::First {
                    break;
                }
                continue;
            }
            // A head without named groups has none to give: not run again.
            if head_pending {
                head_pending = false;
                pre_hit = self
                    .pref_head
                    .as_ref()
                    .filter(|h| h.group_names().next().is_some())
                    .and_then(|h| h.search(text));
            }
            if self.gains_and_forgets[index] {
                let pre = pre_hit.as_ref().map(|h| (h, text));
                if let Some(judged) = self.forget_unseen(index, &hit, seen, pre, now) {
                    if mode.take(judged, &mut out) {
                        break;
                    }
                    continue;
                }
            }
            let pre = pre_hit.as_ref().map(|h| (h, text));
            if mode.take(self.failure(index, pre, &hit, seen, date, now), &mut out) {
                break;
            }
        }
        out
    }

    /// The prefregex's match on `text` (a line) and the range of its
    /// content; None when it does not match. For `^HEAD<F-CONTENT>.+</F-CONTENT>$`
    /// HEAD is run alone: the whole regex's match is HEAD's first
    /// (leftmost-first) match that leaves a non-empty rest without a
    /// newline, the rest being the content. So when HEAD's own match leaves
    /// such a rest it is the answer, without walking the rest of the line
    /// through `.+`; when HEAD does not match, neither does the whole; else
    /// the whole regex is asked.
    ///
    /// HEAD's match is found without its groups: the match is None then,
    /// and `pref_head.search(text)` gives it, groups and all, should a
    /// failregex's match need them (most lines end without).
    fn prefix_hit(&self, pref: &Rule, text: &str) -> Option<(Option<Hit>, Option<Range<usize>>)> {
        if let Some(head) = &self.pref_head {
            let end = head.find(text)?.end;
            if text
                .get(end..)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('\n'))
            {
                return Some((None, Some(end..text.len())));
            }
        }
        let hit = pref.re.search(text)?;
        let content = hit.range_of("content");
        Some((Some(hit), content))
    }

    /// What [`failure`](Self::failure) makes of a match of a failregex
    /// flagged in `gains_and_forgets` when it names a connection the cache
    /// does not hold, worked out from the match as it is (no group maps
    /// built); None when that is not the case, and `failure` must decide.
    ///
    /// A success (`<F-MLFGAINED>`) that also ends its connection
    /// (`<F-MLFFORGET>`) on a connection never seen: fail2ban's merge
    /// makes it a no-failure of one user and caches nothing, so the line
    /// ends there, a no-failure when it names an address. Most such lines
    /// (each accepted login) are this case.
    ///
    /// `pre`: the prefregex's match and the text it was run on.
    fn forget_unseen<'t>(
        &mut self,
        index: usize,
        hit: &Hit,
        text: &'t str,
        pre: Option<(&Hit, &'t str)>,
        now: SystemTime,
    ) -> Option<Judged> {
        // The failregex's value when its group took part, else the
        // prefregex's: the merge `failure` does (the prefregex's content
        // is never asked for).
        let value = |name: &str| -> Option<&'t str> {
            match hit.range_of(name) {
                Some(r) => text.get(r),
                None => pre.and_then(|(h, t)| t.get(h.range_of(name)?)),
            }
        };
        let truthy = |name: &str| value(name).is_some_and(|v| !v.is_empty());
        if !(truthy("mlfgained") && truthy("mlfforget")) {
            return None;
        }
        let id = value("mlfid")?;
        self.mlfid.retain(|(_, t, _)| *t + MLFID_TTL > now);
        if self.mlfid.iter().any(|(k, _, _)| k == id) {
            return None;
        }
        if ["ip4", "ip6", "dns", "fid"]
            .iter()
            .any(|g| value(g).is_some())
        {
            self.last.nofail.push(index);
        }
        Some(Judged::Stop)
    }

    /// [`ignored`](Self::ignored) for one line: every ignoreregex that
    /// matches `text` is recorded.
    fn ignored_line(&mut self, text: &str) -> bool {
        let mut found = false;
        for (i, rule) in self.ignoreregex.iter().enumerate() {
            if rule.re.search(text).is_some() {
                found = true;
                if !self.last.ignoreregex.contains(&i) {
                    self.last.ignoreregex.push(i);
                }
            }
        }
        found
    }

    /// What failregex `index` reports with its match `hit` on `hay` and
    /// the prefregex's match `pre` (with the text it was run on):
    /// fail2ban's steps after a failregex matched and was not ignored.
    fn failure(
        &mut self,
        index: usize,
        pre: Option<(&Hit, &str)>,
        hit: &Hit,
        hay: &str,
        date: Option<SystemTime>,
        now: SystemTime,
    ) -> Judged {
        // An optional group the failregex left unmatched keeps what
        // the prefregex captured (fail2ban 1.1.1 on; before, it was
        // lost, and no stock filter of those versions relied on it).
        let mut values = Values(Vec::with_capacity(
            pre.map_or(0, |(h, _)| h.group_count()) + hit.group_count(),
        ));
        if let Some((h, text)) = pre {
            values.take_from(h, text, "content");
        }
        values.take_from(hit, hay, "");
        values.alt_values();
        let Some(id) = values.get("mlfid") else {
            return self.conclude(index, &values, None, date);
        };
        // A connection's lines pool their groups in the cache, owned.
        let id = id.to_string();
        let fail = Fail {
            groups: values
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            users: BTreeSet::new(),
        };
        let fail = self.merge(&id, fail, now);
        let merged = Values(
            fail.groups
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        );
        self.conclude(index, &merged, Some(&id), date)
    }

    /// [`failure`](Self::failure)'s last steps on the match's group
    /// values, merged with its connection's (`mlfid`) when it has one.
    fn conclude(
        &mut self,
        index: usize,
        fail: &Values<'_>,
        mlfid: Option<&str>,
        date: Option<SystemTime>,
    ) -> Judged {
        let fid = fail.get("fid");
        let host = ["ip4", "ip6", "dns"].iter().find_map(|g| fail.get(g));
        let Some(ip) = host.or(fid) else {
            if let Some(id) = mlfid {
                if let Some(entry) = self.mlfid.iter_mut().find(|(k, _, _)| k == id) {
                    entry.2.groups.insert("mlfpending".into(), "1".into());
                }
            }
            // fail2ban: a connection still waiting for its address ends
            // the line; a regex that names none is an error, the next is
            // tried.
            return if mlfid.is_some() {
                Judged::Stop
            } else {
                Judged::Next
            };
        };
        if fail.truthy("nofail") {
            self.last.nofail.push(index);
            // fail2ban ends the line at a connection's no-failure.
            return if mlfid.is_some() {
                Judged::Stop
            } else {
                Judged::Next
            };
        }
        let id = match fid {
            Some(f) if f != ip => f,
            _ => ip,
        };
        let addr = fail
            .get("ip4")
            .or_else(|| fail.get("ip6"))
            .and_then(|a| a.parse::<IpAddr>().ok());
        let fields = fail
            .0
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    *k,
                    "ip4" | "ip6" | "dns" | "user" | "mlfpending" | "nofail" | "mlfgained"
                ) && !k.starts_with("skiplines")
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Judged::Failure(Fail2banMatch {
            id: id.to_string(),
            host: host.map(str::to_string),
            addr,
            time: date,
            user: fail.get("user").map(str::to_string),
            fields,
            regex: index,
        })
    }

    /// Whether an ignoreregex matches; for a multi-line buffer only the
    /// lines the failregex matched are looked at, and an ignored match
    /// drops them from the buffer.
    fn ignored(&mut self, buf: &str, org: &[Line], fail: Option<(usize, &Hit, &str)>) -> bool {
        let (text, scope) = match fail {
            Some((index, hit, hay)) if self.maxlines > 1 => {
                let (m, _) = split_lines(hit, hay, org, &self.failregex[index].re);
                (join(&m), m)
            }
            _ => (buf.to_string(), org.to_vec()),
        };
        let _ = scope;
        let mut found = false;
        for (i, rule) in self.ignoreregex.iter().enumerate() {
            if rule.search(&text).is_some() {
                found = true;
                if !self.last.ignoreregex.contains(&i) {
                    self.last.ignoreregex.push(i);
                }
                if self.maxlines > 1 {
                    if let Some((index, hit, hay)) = fail {
                        self.buffer = unmatched(hit, hay, org, &self.failregex[index].re);
                    }
                }
            }
        }
        found
    }

    /// fail2ban's `_mergeFailure`: lines of one connection (same
    /// `<F-MLFID>`) pool their groups; `<F-NOFAIL>` lines only help
    /// identify, `<F-MLFFORGET>` ends the connection, `<F-MLFGAINED>`
    /// (a success) cancels what was pending unless several users tried.
    fn merge(&mut self, id: &str, mut fail: Fail, now: SystemTime) -> Fail {
        self.mlfid.retain(|(_, t, _)| *t + MLFID_TTL > now);
        let mut flags = 0u8;
        if fail.truthy("mlfgained") {
            flags |= 8 | 1;
            if !fail.truthy("nofail") {
                let gained = fail.get("mlfgained").unwrap_or_default().to_string();
                fail.groups.insert("nofail".into(), gained);
            }
        } else if fail.truthy("nofail") {
            flags |= 1;
        }
        if fail.take_truthy("mlfforget") {
            flags |= 2;
        }
        let user = fail
            .get("user")
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        let position = self.mlfid.iter().position(|(k, _, _)| k == id);
        let users;
        let mut merged = match position {
            Some(pos) => {
                let cached = &mut self.mlfid[pos].2;
                if let Some(u) = user {
                    cached.users.insert(u);
                }
                users = cached.users.len();
                if cached.take_truthy("nofail") {
                    flags |= 4;
                }
                if cached.take_truthy("mlfgained") {
                    flags |= 4;
                }
                if flags & 8 != 0 {
                    cached.groups.remove("mlfpending");
                }
                for (k, v) in fail.groups {
                    cached.groups.insert(k, v);
                }
                let merged = cached.clone();
                if flags & 2 != 0 {
                    self.mlfid.remove(pos);
                }
                merged
            }
            None => {
                if let Some(u) = user {
                    fail.users.insert(u);
                }
                users = fail.users.len();
                if flags & 2 == 0 {
                    if self.mlfid.len() >= MLFID_MAX {
                        self.mlfid.remove(0);
                    }
                    self.mlfid.push((id.to_string(), now, fail.clone()));
                }
                fail
            }
        };
        if merged.take_truthy("mlfpending") || users > 1 {
            merged.groups.remove("nofail");
            merged.groups.remove("mlfgained");
        }
        // The cache shares fail2ban's dict: mirror the pops on it.
        if let Some(entry) = self.mlfid.iter_mut().find(|(k, _, _)| k == id) {
            entry.2.groups = merged.groups.clone();
            entry.2.users = merged.users.clone();
        }
        merged
    }
}

/// The buffer lines a match covered and the rest, as fail2ban splits them
/// (lines captured by `<SKIPLINES>` count as not matched).
fn split_lines(hit: &Hit, hay: &str, org: &[Line], re: &Compiled) -> (Vec<Line>, Vec<Line>) {
    if org.len() <= 1 {
        return (org.to_vec(), Vec::new());
    }
    let start = hit.span.start;
    let end = hit.span.end;
    let line_start = hay
        .get(..(start + 1).min(hay.len()))
        .and_then(|h| h.rfind('\n'))
        .map_or(0, |p| p + 1);
    let from = end.saturating_sub(1).min(hay.len());
    let line_end = hay
        .get(from..)
        .and_then(|h| h.find('\n'))
        .map_or(hay.len(), |p| from + p + 1);
    let count = |upto: usize| hay.get(..upto).map_or(0, |h| h.matches('\n').count());
    let (lc1, lc2) = (
        count(line_start).min(org.len()),
        count(line_end).min(org.len()),
    );
    let mut matched: Vec<Line> = org[lc1..lc2.max(lc1)].to_vec();
    let mut rest: Vec<Line> = org[..lc1].to_vec();
    let skipped: Vec<String> = re
        .group_names()
        .filter(|n| n.starts_with("skiplines"))
        .filter_map(|n| hit.group(hay, n))
        .collect::<String>()
        .lines()
        .map(str::to_string)
        .collect();
    let mut n = 0;
    for s in skipped {
        if let Some(m) = matched.iter().skip(n).position(|l| l.text() == s) {
            rest.push(matched.remove(n + m));
            n += m;
        }
    }
    rest.extend(org[lc2.max(lc1)..].iter().cloned());
    (matched, rest)
}

fn unmatched(hit: &Hit, hay: &str, org: &[Line], re: &Compiled) -> Vec<Line> {
    if org.len() <= 1 {
        return Vec::new();
    }
    split_lines(hit, hay, org, re).1
}

#[cfg(test)]
mod tests;
