#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every stock fail2ban filter against fail2ban's own sample logs, judged
//! line by line the way fail2ban's `samplestestcase.py` judges them: the
//! `# failJSON:` annotation says whether the next line must match, and
//! with which host, user and time; `# filterOptions:` switches to other
//! option sets; plain lines must not match. Time is read as fail2ban's
//! tests read it: zone Europe/Zurich, "now" fixed at 2005-08-14 12:00 CEST.
//!
//! Two trees are judged: Debian's `fail2ban` package (its filters and
//! sample logs read from the system; missing ones fail the test), and,
//! when `NFTJAIL_F2B_TREE` names one, a fail2ban source tree (its
//! `config/filter.d` against its `fail2ban/tests/files/logs`), e.g. the
//! development tree an admin's next distribution ships; without the
//! variable that test says so and passes.
//!
//! The figures go to their section of `docs/fail2ban-conformance.md` when
//! `NFTJAIL_WRITE_CONFORMANCE=1`; otherwise the test fails when a filter
//! agrees on fewer lines than recorded there.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nftjail::filter::fail2ban::{Fail2banFilter, Fail2banMatch};
use nftjail::timestamp::Zone;
use serde_json::Value;

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const LOG_DIR: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";
/// A fail2ban source tree to judge besides Debian's.
const TREE_ENV: &str = "NFTJAIL_F2B_TREE";
/// fail2ban's TEST_NOW: Sun Aug 14 12:00:00 CEST 2005.
const TEST_NOW: u64 = 1_124_013_600;
const DOC: &str = "docs/fail2ban-conformance.md";

/// Filters that must agree on every line.
/// (`sasl` has no stock file any more: it is `postfix[mode=auth]`.)
const NAMED: [&str; 10] = [
    "postfix",
    "dovecot",
    "sshd",
    "cyrus-imap",
    "courier-auth",
    "exim",
    "roundcube-auth",
    "sogo-auth",
    "apache-auth",
    "nginx-http-auth",
];

#[derive(Debug, Default, Clone)]
struct Tally {
    checked: usize,
    agree: usize,
    why: Vec<String>,
}

impl Tally {
    fn disagree(&self) -> usize {
        self.checked - self.agree
    }
}

type Opts = BTreeMap<String, String>;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(TEST_NOW)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Day of month of the last Sunday of a month with 31 days.
fn last_sunday(y: i64, m: i64) -> i64 {
    let last = days_from_civil(y, m, 31);
    // 1970-01-01 was a Thursday (weekday 4, Sunday 0).
    let wd = (last + 4).rem_euclid(7);
    31 - wd
}

/// A local time in CET/CEST (EU rules) as the Unix time `mktime` gives.
fn zurich(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (y, mo, da) = (d[0], d[1], d[2]);
    let naive = days_from_civil(y, mo, da) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let start = days_from_civil(y, 3, last_sunday(y, 3)) * 86_400 + 2 * 3600;
    let end = days_from_civil(y, 10, last_sunday(y, 10)) * 86_400 + 3 * 3600;
    let summer = naive >= start && naive < end;
    let secs = naive - if summer { 7200 } else { 3600 };
    let micros: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")[..6].parse().ok()?
    };
    let base = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?);
    Some(base + Duration::from_micros(micros))
}

/// The few Python conditions the sample logs use.
fn condition(expr: &str, name: &str, opts: &Opts) -> bool {
    let (lhs, rhs, eq) = match expr.split_once("!=") {
        Some((l, r)) => (l, r, false),
        None => match expr.split_once("==") {
            Some((l, r)) => (l, r, true),
            None => panic!("unknown condition {expr}"),
        },
    };
    let lit = rhs.trim().trim_matches(|c| c == '\'' || c == '"');
    let lhs = lhs.trim();
    let value = if lhs == "name" {
        Some(name.to_string())
    } else if let Some(key) = lhs
        .strip_prefix("opts.get(")
        .and_then(|r| r.strip_suffix(')'))
    {
        opts.get(key.trim_matches(|c| c == '\'' || c == '"'))
            .cloned()
    } else {
        panic!("unknown condition {expr}")
    };
    (value.as_deref() == Some(lit)) == eq
}

fn json_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn annotation(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for key in ["failJSON", "fileOptions", "filterOptions", "addFILE"] {
        if let Some(json) = rest.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            if !json.is_empty() {
                return Some((key, json));
            }
        }
    }
    None
}

fn same_host(got: &str, want: &str) -> bool {
    match (got.parse::<IpAddr>(), want.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => got == want,
    }
}

/// Why a result disagrees with the annotation, or `None` if it agrees.
fn judge(found: &[Fail2banMatch], want: &serde_json::Map<String, Value>) -> Option<String> {
    let should = want.get("match").and_then(Value::as_bool).unwrap_or(false);
    let Some(first) = found.first() else {
        return should.then(|| "no match".to_string());
    };
    if !should {
        return Some(format!("matched (regex {})", first.regex));
    }
    if found.len() > 1 {
        return Some("several regexes matched".into());
    }
    if let Some(host) = want.get("host") {
        let host = json_str(host);
        if !same_host(&first.id, &host) {
            return Some(format!("host {} != {host}", first.id));
        }
    }
    if let Some(user) = want.get("user") {
        let user = user.as_str().map(str::to_string);
        if first.user != user {
            return Some(format!("user {:?} != {user:?}", first.user));
        }
    }
    if let Some(time) = want.get("time").and_then(Value::as_str) {
        let expected = zurich(time);
        if first.time != expected {
            let show = |t: Option<SystemTime>| {
                t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or("none".to_string(), |d| format!("{:.3}", d.as_secs_f64()))
            };
            return Some(format!("time {} != {}", show(first.time), show(expected)));
        }
    }
    None
}

struct Case {
    flt_name: String,
    opts: Opts,
}

/// One fail2ban tree: its filters, its sample logs, and the section of
/// the document its figures go to.
struct Tree {
    /// Section marker in the document.
    key: &'static str,
    title: String,
    filters: PathBuf,
    logs: PathBuf,
}

impl Tree {
    fn debian() -> Tree {
        Tree {
            key: "debian",
            title: format!("Debian's fail2ban package{}", debian_version()),
            filters: PathBuf::from(FILTER_DIR),
            logs: PathBuf::from(LOG_DIR),
        }
    }

    /// The tree named by `NFTJAIL_F2B_TREE`, if any.
    fn source() -> Option<Tree> {
        let root = PathBuf::from(std::env::var_os(TREE_ENV)?);
        let version = std::fs::read_to_string(root.join("fail2ban/version.py"))
            .ok()
            .and_then(|v| {
                v.lines()
                    .find_map(|l| l.strip_prefix("version = "))
                    .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            })
            .unwrap_or_else(|| "unknown version".into());
        Some(Tree {
            key: "source",
            title: format!("fail2ban source tree {version}"),
            filters: root.join("config/filter.d"),
            logs: root.join("fail2ban/tests/files/logs"),
        })
    }

    fn present(&self) -> bool {
        self.filters.is_dir() && self.logs.is_dir()
    }
}

/// ` 1.0.2` when the package's version can be read.
fn debian_version() -> String {
    let text = std::fs::read_to_string("/usr/lib/python3/dist-packages/fail2ban/version.py")
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| format!(" {}", v.trim().trim_matches(['"', '\''])))
        .unwrap_or_default()
}

fn load(tree: &Tree, name: &str, opts: &Opts) -> Result<Fail2banFilter, String> {
    let options: Vec<(String, String)> = opts
        .iter()
        .filter(|(k, _)| !k.starts_with("test."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let zone = Zone::named("Europe/Zurich").map_err(|e| e.to_string())?;
    Fail2banFilter::load_with_options(name, &options, &tree.filters)
        .map(|f| f.with_zone(zone))
        .map_err(|e| e.to_string())
}

fn run_filter(tree: &Tree, name: &str) -> Tally {
    let mut tally = Tally::default();
    let mut filters: HashMap<String, Result<Fail2banFilter, String>> = HashMap::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut common: Opts = Opts::new();
    let mut files = vec![name.to_string()];
    let mut i = 0;
    while i < files.len() {
        let file = files[i].clone();
        i += 1;
        let bytes = std::fs::read(tree.logs.join(&file)).expect("sample log");
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.split_inclusive('\n').enumerate();
        let mut ignore_block = false;
        while let Some((number, raw)) = lines.next() {
            let mut raw = raw;
            let mut number = number;
            let mut faildata = serde_json::Map::new();
            if let Some((kind, json)) = annotation(raw.trim_end_matches(['\r', '\n'])) {
                let value: Value = serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("{file}:{}: {e}", number + 1));
                match kind {
                    "fileOptions" => {
                        common = value
                            .as_object()
                            .map(|o| o.iter().map(|(k, v)| (k.clone(), json_str(v))).collect())
                            .unwrap_or_default();
                        continue;
                    }
                    "filterOptions" => {
                        cases.clear();
                        ignore_block = false;
                        let sets = match value {
                            Value::Array(a) => a,
                            other => vec![other],
                        };
                        for set in sets {
                            let mut opts = common.clone();
                            if let Some(o) = set.as_object() {
                                for (k, v) in o {
                                    opts.insert(k.clone(), json_str(v));
                                }
                            }
                            if let Some(c) = opts.get("test.condition") {
                                ignore_block = !condition(c, name, &opts);
                            }
                            if !ignore_block {
                                let own: Opts = opts
                                    .iter()
                                    .filter(|(k, _)| !k.starts_with("test."))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect();
                                let suffix = match opts.get("test.filter-name") {
                                    Some(n) => n.clone(),
                                    None if own.is_empty() => String::new(),
                                    None => format!("{own:?}"),
                                };
                                let flt_name = format!("{name}{suffix}");
                                filters
                                    .entry(flt_name.clone())
                                    .or_insert_with(|| load(tree, name, &own));
                                cases.push(Case { flt_name, opts });
                            }
                        }
                        continue;
                    }
                    "addFILE" => {
                        files.push(json_str(&value));
                        continue;
                    }
                    _ => {
                        faildata = value.as_object().cloned().unwrap_or_default();
                        match lines.next() {
                            Some((n, next)) => {
                                raw = next;
                                number = n;
                            }
                            None => break,
                        }
                    }
                }
            } else if ignore_block || raw.starts_with('#') || raw.trim().is_empty() {
                continue;
            }
            if ignore_block {
                continue;
            }
            if cases.is_empty() {
                filters
                    .entry(name.to_string())
                    .or_insert_with(|| load(tree, name, &Opts::new()));
                cases.push(Case {
                    flt_name: name.to_string(),
                    opts: Opts::new(),
                });
            }
            let line = raw.trim_end_matches(['\r', '\n']);
            for case in &cases {
                if let Some(c) = faildata.get("constraint").and_then(Value::as_str) {
                    if !condition(c, name, &case.opts) {
                        continue;
                    }
                }
                tally.checked += 1;
                let verdict = match filters.get_mut(&case.flt_name) {
                    Some(Ok(filter)) => {
                        let found =
                            if case.opts.get("logtype").map(String::as_str) == Some("journal") {
                                let prefixed = match case.opts.get("test.prefix-line") {
                                    Some(p) => format!("{p}{line}"),
                                    None => line.to_string(),
                                };
                                filter.failures_dated(&prefixed, now())
                            } else {
                                filter.failures(line, now())
                            };
                        judge(&found, &faildata)
                    }
                    Some(Err(e)) => Some(format!("load error: {e}")),
                    None => Some("filter missing".into()),
                };
                match verdict {
                    None => tally.agree += 1,
                    Some(why) => {
                        if tally.why.len() < 3 {
                            tally.why.push(format!("{file}:{}: {why}", number + 1));
                        }
                        if std::env::var_os("NFTJAIL_CONFORMANCE_VERBOSE").is_some() {
                            eprintln!(
                                "{}: {file}:{}: {why}\n    {line}",
                                case.flt_name,
                                number + 1
                            );
                        }
                    }
                }
            }
        }
    }
    tally
}

fn stock_filters(tree: &Tree) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&tree.filters)
        .expect("filter.d")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stem = n.strip_suffix(".conf")?.to_string();
            (!n.ends_with("common.conf") && !stem.starts_with('.')).then_some(stem)
        })
        .filter(|n| tree.logs.join(n).is_file())
        .collect();
    names.sort();
    names
}

fn pct(agree: usize, checked: usize) -> f64 {
    if checked == 0 {
        100.0
    } else {
        agree as f64 * 100.0 / checked as f64
    }
}

/// The document's head, written when it has none yet; hand-written notes
/// outside the generated sections are kept on every rewrite.
const HEAD: &str = "# fail2ban filter conformance\n\n\
Generated by `NFTJAIL_WRITE_CONFORMANCE=1 cargo test --test fail2ban_conformance`\n\
(add `NFTJAIL_F2B_TREE=DIR` for a fail2ban source tree's section); the test fails\n\
when a filter agrees on fewer lines than recorded here.\n\n\
Each stock filter of a tree (`filter.d`) is run over fail2ban's sample log of\n\
the same name (`fail2ban/tests/files/logs/`), the way fail2ban's own\n\
`samplestestcase.py` runs it: every option set of `# filterOptions:`, zone\n\
Europe/Zurich, now = 2005-08-14 12:00 CEST. A line is *checked* once per option\n\
set; it *agrees* when match/no match, host (fail2ban's failure id), user and time\n\
(where annotated) are the same as fail2ban's annotation. Plain lines without an\n\
annotation must not match, as in fail2ban's test.\n\n\
Not compared: annotation keys other than `match`, `host`, `user`, `time`\n\
(`attempts`, `users`, `desc`...); fail2ban's test-only filters `zzz-*`\n\
(their includes point into fail2ban's source tree). `sasl` is no longer a\n\
stock filter (it became `postfix[mode=auth]`, covered under postfix).\n\
Dates: fail2ban keeps sub-second precision only for Unix-epoch dates, so\n\
other dates are reported in whole seconds, as fail2ban's strptime does.\n";

fn begin_marker(key: &str) -> String {
    format!("<!-- generated: {key} -->\n")
}

fn end_marker(key: &str) -> String {
    format!("<!-- end: {key} -->\n")
}

/// The generated part of `doc` for `key`, markers excluded.
fn section<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    let begin = begin_marker(key);
    let start = doc.find(&begin)? + begin.len();
    let len = doc[start..].find(&end_marker(key))?;
    Some(&doc[start..start + len])
}

/// `doc` with the section `key` replaced by `body` (appended if missing).
fn replace_section(doc: &str, key: &str, body: &str) -> String {
    let (begin, end) = (begin_marker(key), end_marker(key));
    let block = format!("{begin}{body}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{block}{}", &doc[..s], &doc[e + end.len()..])
        }
        _ => {
            let base = if doc.is_empty() { HEAD } else { doc };
            format!(
                "{}\n{block}",
                base.trim_end_matches('\n').to_string() + "\n"
            )
        }
    }
}

fn render(tree: &Tree, results: &BTreeMap<String, Tally>) -> String {
    let (checked, agree) = results
        .values()
        .fold((0, 0), |(c, a), t| (c + t.checked, a + t.agree));
    let exact = results.values().filter(|t| t.disagree() == 0).count();
    let mut s = String::new();
    let _ = writeln!(s, "## {}\n", tree.title);
    let _ = writeln!(
        s,
        "Filters `{}`, samples `{}`.\n",
        tree.filters.display(),
        tree.logs.display()
    );
    let _ = writeln!(
        s,
        "**Overall: {agree} of {checked} checked lines agree ({:.2}%); \
         {exact} of {} filters agree on every line.**\n",
        pct(agree, checked),
        results.len()
    );
    s.push_str("| filter | checked | agree | disagree | % | why (first disagreements) |\n");
    s.push_str("|---|---:|---:|---:|---:|---|\n");
    for (name, t) in results {
        let why = t.why.join("; ").replace('|', "\\|");
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {:.1} | {why} |",
            t.checked,
            t.agree,
            t.disagree(),
            pct(t.agree, t.checked)
        );
    }
    s
}

/// `filter -> agree` as recorded in a section's table.
fn recorded(section: &str) -> BTreeMap<String, usize> {
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.len() < 5 {
                return None;
            }
            let agree = cells[3].parse().ok()?;
            cells[2].parse::<usize>().ok()?;
            Some((cells[1].to_string(), agree))
        })
        .collect()
}

/// Both trees' tests may write the one document at the same time.
static DOC_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs every filter of `tree` and writes or checks its figures.
fn judge_tree(tree: &Tree) {
    let only = std::env::var("NFTJAIL_CONFORMANCE_ONLY").ok();
    let mut results = BTreeMap::new();
    for name in stock_filters(tree) {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        results.insert(name.clone(), run_filter(tree, &name));
    }
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let body = render(tree, &results);
    let _guard = DOC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    if std::env::var_os("NFTJAIL_WRITE_CONFORMANCE").is_some() {
        std::fs::write(&doc_path, replace_section(&doc, tree.key, &body)).unwrap();
        return;
    }
    eprintln!("{body}");
    let Some(part) = section(&doc, tree.key) else {
        if tree.key == "debian" {
            panic!("{DOC} has no section for {}", tree.key);
        }
        eprintln!(
            "{DOC} records nothing for {} yet: write it with NFTJAIL_WRITE_CONFORMANCE=1",
            tree.title
        );
        return;
    };
    // Another source tree's figures say nothing about this one (Debian's
    // are always compared: its package is what the test stands on).
    let heading = format!("## {}", tree.title);
    if tree.key != "debian" && part.lines().next() != Some(heading.as_str()) {
        eprintln!(
            "{DOC} records {:?}, not {}: not compared (NFTJAIL_WRITE_CONFORMANCE=1 records it)",
            part.lines().next().unwrap_or(""),
            tree.title
        );
        return;
    }
    let before = recorded(part);
    let mut worse = Vec::new();
    for (name, t) in &results {
        if let Some(&was) = before.get(name) {
            if t.agree < was {
                worse.push(format!("{name}: {} < {was} ({:?})", t.agree, t.why));
            }
        }
    }
    if only.is_none() {
        for name in before.keys().filter(|n| !results.contains_key(*n)) {
            worse.push(format!("{name}: recorded but not run any more"));
        }
    }
    assert!(worse.is_empty(), "agreement dropped: {worse:#?}");
}

#[test]
fn stock_filters_agree_with_fail2ban_samples() {
    let tree = Tree::debian();
    if !tree.present() {
        panic!("fail2ban is not installed ({FILTER_DIR}, {LOG_DIR}): run `cargo xtask deps`");
    }
    judge_tree(&tree);
}

#[test]
fn source_tree_filters_agree_with_its_samples() {
    let Some(tree) = Tree::source() else {
        eprintln!(
            "skipped: {TREE_ENV} names no fail2ban source tree \
             (e.g. {TREE_ENV}=/tmp/f2bdev, a checkout of fail2ban's repository)"
        );
        return;
    };
    assert!(
        tree.present(),
        "{TREE_ENV}: no {} or {}",
        tree.filters.display(),
        tree.logs.display()
    );
    judge_tree(&tree);
}

#[test]
fn named_filters_load() {
    if !Path::new(FILTER_DIR).is_dir() {
        panic!("fail2ban is not installed ({FILTER_DIR}): run `cargo xtask deps`");
    }
    for name in NAMED {
        let f = Fail2banFilter::load(name, Path::new(FILTER_DIR));
        assert!(f.is_ok(), "{name}: {:?}", f.err());
    }
}

#[test]
fn document_sections_are_replaced_in_place() {
    let doc = replace_section("# t\n\nnotes\n", "debian", "A\n");
    let doc = replace_section(&doc, "source", "B\n");
    let doc = replace_section(&doc, "debian", "C\n");
    assert_eq!(section(&doc, "debian"), Some("C\n"));
    assert_eq!(section(&doc, "source"), Some("B\n"));
    assert!(doc.starts_with("# t\n\nnotes\n"));
}

#[test]
fn zurich_time_follows_summer_time() {
    // 2005-08-14 12:00 CEST is fail2ban's TEST_NOW.
    assert_eq!(zurich("2005-08-14T12:00:00"), Some(now()));
    // Winter: one hour east of UTC.
    assert_eq!(
        zurich("2005-01-01T01:00:00"),
        Some(UNIX_EPOCH + Duration::from_secs(1_104_537_600))
    );
}

#[test]
fn prefregex_address_survives_an_unmatched_optional_group() {
    // Dovecot 2.4's passdb line names the address in the prefix only; the
    // failregex's own optional address group is then unmatched.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.conf"),
        "[Definition]\n\
         prefregex = ^auth\\(\\S*,<ADDR>\\): <F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^(?:x\\(<ADDR>\\): )?[Pp]assword mismatch\n",
    )
    .unwrap();
    let mut f = Fail2banFilter::load("f", dir.path()).unwrap();
    let found = f.failures("auth(u@example.com,192.0.2.110): Password mismatch", now());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "192.0.2.110");
}
