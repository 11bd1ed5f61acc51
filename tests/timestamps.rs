//! Conformance with fail2ban's own date detection, on fail2ban's sample logs.
//!
//! fail2ban annotates each sample line it checks with a `# failJSON: {...}`
//! line whose `"time"` is the local time (TZ=Europe/Zurich) fail2ban reads
//! from that line, with "now" fixed at 2005-08-14 12:00:00 CEST. This test
//! reads every sample log of the installed fail2ban, dates each line with
//! [`DateDetector`] (using the filter's resolved `datepattern`, else auto
//! detection) and compares. The filters' `datepattern` values are resolved
//! by fail2ban's own config reader (through the system python), because they
//! are inherited and interpolated across files.
//!
//! Skipped, with a message, where fail2ban is not installed.

#![allow(clippy::disallowed_methods)] // runs fail2ban's config reader

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use nftjail::timestamp::{DateDetector, Zone};
use serde_json::Value;

const F2B: &str = "/usr/lib/python3/dist-packages/fail2ban";
/// fail2ban's test "now": Sun Aug 14 12:00:00 CEST 2005 (tests/utils.py).
const TEST_NOW: u64 = 1_124_013_600;
/// The share of annotated lines whose time must agree with fail2ban's.
const AGREEMENT_FLOOR: f64 = 1.0;

/// Prints the resolved `datepattern` of each (filter, options) request, one
/// JSON value a line (`null`: none, or the filter cannot be read).
const RESOLVE: &str = r#"
import json, sys
from fail2ban.client.filterreader import FilterReader
for line in sys.stdin:
    name, opts = json.loads(line)
    dp = None
    try:
        f = FilterReader(name, "jail", opts, basedir="/etc/fail2ban")
        f.read()
        f.getOptions({})
        for opt in f.convert():
            if opt[2] == "datepattern":
                dp = opt[3]
    except Exception:
        pass
    print(json.dumps(dp), flush=True)
"#;

/// One block of lines read with one filter configuration.
struct Block {
    filter: String,
    options: serde_json::Map<String, Value>,
    /// (annotation, line) pairs; lines without annotation are fed to the
    /// detector too, as fail2ban does, but not checked.
    lines: Vec<(Option<Value>, String)>,
}

fn parse_file(name: &str, logs: &Path, blocks: &mut Vec<Block>) {
    let Ok(text) = std::fs::read_to_string(logs.join(name)) else {
        return;
    };
    let mut common = serde_json::Map::new();
    let mut current = Block {
        filter: name.to_string(),
        options: serde_json::Map::new(),
        lines: Vec::new(),
    };
    let mut pending: Option<Value> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let directive = line
            .trim_start_matches('#')
            .trim_start()
            .split_once(':')
            .filter(|_| line.starts_with('#'));
        match directive {
            Some(("failJSON", json)) => pending = serde_json::from_str(json).ok(),
            Some(("fileOptions", json)) => {
                if let Ok(Value::Object(o)) = serde_json::from_str(json) {
                    common = o;
                }
            }
            Some(("filterOptions", json)) => {
                let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                let first = match v {
                    Value::Array(a) => a.into_iter().next().unwrap_or(Value::Null),
                    v => v,
                };
                let mut options = common.clone();
                if let Value::Object(o) = first {
                    options.extend(o);
                }
                let next = Block {
                    filter: name.to_string(),
                    options,
                    lines: Vec::new(),
                };
                blocks.push(std::mem::replace(&mut current, next));
            }
            Some(("addFILE", json)) => {
                if let Ok(Value::String(f)) = serde_json::from_str(json) {
                    parse_file(&f, logs, blocks);
                }
            }
            _ if line.starts_with('#') || line.trim().is_empty() => {}
            _ => current.lines.push((pending.take(), line.to_string())),
        }
    }
    blocks.push(current);
}

fn resolve_patterns(blocks: &[Block]) -> Option<Vec<Option<String>>> {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", RESOLVE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut input = String::new();
    for b in blocks {
        let opts: serde_json::Map<String, Value> = b
            .options
            .iter()
            .filter(|(k, _)| !k.starts_with("test."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        input.push_str(&serde_json::to_string(&(&b.filter, opts)).ok()?);
        input.push('\n');
    }
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let patterns: Vec<Option<String>> = text
        .lines()
        .map(|l| serde_json::from_str::<Option<String>>(l).ok().flatten())
        .collect();
    (patterns.len() == blocks.len()).then_some(patterns)
}

/// The annotated local time as (seconds, microseconds) since the epoch.
fn annotated(zone: &jiff::tz::TimeZone, text: &str) -> Option<(i64, i64)> {
    let dt: jiff::civil::DateTime = text.parse().ok()?;
    let ts = zone.to_timestamp(dt).ok()?;
    Some((ts.as_second(), i64::from(ts.subsec_nanosecond()) / 1000))
}

/// Every block of fail2ban's sample logs, the file each came from, and the
/// date pattern of the filter each belongs to.
fn sample_blocks() -> (Vec<Block>, Vec<String>, Vec<Option<String>>) {
    let logs = Path::new(F2B).join("tests/files/logs");
    let Ok(dir) = std::fs::read_dir(&logs) else {
        panic!(
            "fail2ban sample logs not found at {}: run `cargo xtask deps`",
            logs.display()
        );
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut blocks = Vec::new();
    let mut file_of_block = Vec::new();
    for name in &names {
        let before = blocks.len();
        parse_file(name, &logs, &mut blocks);
        file_of_block.extend(std::iter::repeat_n(name.clone(), blocks.len() - before));
    }
    let Some(patterns) = resolve_patterns(&blocks) else {
        panic!("fail2ban's config reader (python3 + fail2ban) could not be run: run `cargo xtask deps`");
    };
    (blocks, file_of_block, patterns)
}

#[derive(Default)]
struct Tally {
    checked: usize,
    agreed: usize,
    disagreements: Vec<String>,
}

#[test]
fn timestamps_agree_with_fail2ban_sample_logs() {
    let (blocks, file_of_block, patterns) = sample_blocks();

    let zurich = jiff::tz::TimeZone::get("Europe/Zurich").expect("tz database has Europe/Zurich");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(TEST_NOW);
    let mut per_file: BTreeMap<String, Tally> = BTreeMap::new();
    let mut skipped = 0usize;
    for ((block, pattern), file) in blocks.iter().zip(&patterns).zip(&file_of_block) {
        // Journal lines get their time from the journal, not the text.
        let journal = block.options.get("logtype").and_then(Value::as_str) == Some("journal");
        let mut detector = match pattern {
            Some(p) => DateDetector::from_fail2ban(p)
                .unwrap_or_else(|e| panic!("{file}: datepattern {p:?}: {e}")),
            None => DateDetector::auto(),
        }
        .with_zone(Zone::named("Europe/Zurich").expect("zone"));
        let tally = per_file.entry(file.clone()).or_default();
        for (note, line) in &block.lines {
            let found = detector.find(line, now);
            let Some(note) = note else { continue };
            let checked = note.get("match").and_then(Value::as_bool) == Some(true)
                && note.get("constraint").is_none();
            let Some(time) = note.get("time").and_then(Value::as_str) else {
                continue;
            };
            if !checked || journal {
                skipped += 1;
                continue;
            }
            let Some((want_s, want_us)) = annotated(&zurich, time) else {
                skipped += 1;
                continue;
            };
            tally.checked += 1;
            let got = found.as_ref().map(|f| {
                let d = f
                    .time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                (d.as_secs() as i64, i64::from(d.subsec_micros()))
            });
            let agree = match got {
                // fail2ban keeps sub-seconds only where the annotation has them.
                Some((s, us)) => s == want_s && (want_us == 0 || us == want_us),
                None => false,
            };
            if agree {
                tally.agreed += 1;
            } else {
                let got_text = got.map_or("none".to_string(), |(s, _)| {
                    jiff::Timestamp::from_second(s)
                        .map(|t| zurich.to_datetime(t).to_string())
                        .unwrap_or_default()
                });
                tally.disagreements.push(format!(
                    "{file} [{}]: want {time}, got {got_text}: {line}",
                    pattern.as_deref().unwrap_or("auto")
                ));
            }
        }
    }

    let (mut checked, mut agreed) = (0, 0);
    println!("{:<32} {:>7} {:>7}", "sample log", "agreed", "checked");
    for (file, t) in &per_file {
        if t.checked > 0 {
            println!("{file:<32} {:>7} {:>7}", t.agreed, t.checked);
        }
        checked += t.checked;
        agreed += t.agreed;
    }
    for t in per_file.values() {
        for d in &t.disagreements {
            println!("DISAGREE {d}");
        }
    }
    let share = agreed as f64 / checked.max(1) as f64;
    println!(
        "overall: {agreed}/{checked} agree ({:.2}%), {skipped} annotated lines not checkable",
        share * 100.0
    );
    assert!(checked > 500, "too few annotated lines found: {checked}");
    assert!(
        share >= AGREEMENT_FLOOR,
        "agreement {agreed}/{checked} below the floor {AGREEMENT_FLOOR}"
    );
}

/// Lines per second of `find` once the template is known; run with
/// `cargo test --release --test timestamps -- --ignored --nocapture`.
/// Prints only: speed depends on the machine, so nothing is asserted.
#[test]
#[ignore]
fn timestamps_throughput() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_717_243_200);
    let junk = "z".repeat(100_000);
    let cases = [
        ("bsd syslog", "Mar  5 16:01:34 host sshd[1234]: Failed password for root from 192.0.2.1 port 22 ssh2"),
        ("iso 8601", "2024-03-05T16:01:34.123456+01:00 host sshd[1234]: Failed password for root from 192.0.2.1"),
        ("access log", r#"192.0.2.1 - - [05/Mar/2024:16:01:34 +0100] "GET /wp-login.php HTTP/1.1" 404 153"#),
        ("epoch", "1709654494.123 host sshd[1234]: Failed password for root from 192.0.2.1"),
        ("no date", "host sshd[1234]: Failed password for root from 192.0.2.1 port 22 ssh2 at :34"),
        ("100kB junk", junk.as_str()),
    ];
    for (name, line) in cases {
        // Varying seconds so no cache sees the same line twice in a row.
        let lines: Vec<String> = (0..60)
            .map(|s| line.replacen(":34", &format!(":{s:02}"), 1))
            .collect();
        let mut d = DateDetector::auto().with_zone(Zone::named("Europe/Zurich").expect("zone"));
        let n = if line.len() > 1000 { 200 } else { 200_000 };
        let start = std::time::Instant::now();
        let mut found = 0usize;
        for i in 0..n {
            found += usize::from(d.find(&lines[i % lines.len()], now).is_some());
        }
        let secs = start.elapsed().as_secs_f64();
        let expected = if name.starts_with("no") || name.contains("junk") {
            0
        } else {
            n
        };
        assert_eq!(found, expected, "{name}");
        println!("{name:<12} {:>10.0} lines/s", n as f64 / secs);
    }
}

/// Runs fail2ban's own `DateDetector` (TZ=Europe/Zurich, now = TEST_NOW)
/// on each block's lines, as fail2ban's filter does it; prints per block a
/// JSON list with, per line, `[byte start, byte end, time]` of the date or
/// `null`.
const DETECT: &str = r#"
import json, os, sys, time
os.environ["TZ"] = "Europe/Zurich"
time.tzset()
from fail2ban.server.mytime import MyTime
from fail2ban.server.datedetector import DateDetector
MyTime.setTime(int(sys.argv[1]))
def detector(pattern):
    dd = DateDetector()
    for p in [p.strip() for p in (pattern or "").split("\n") if p.strip()]:
        dd.appendTemplate(p)
    return dd
for block in sys.stdin:
    block = json.loads(block)
    dd = detector(block["pattern"])
    last, out = None, []
    for line in block["lines"]:
        if block.get("fresh"):
            dd, last = detector(block["pattern"]), None
        res = None
        try:
            m, tmpl = dd.matchTime(line)
            if m:
                s, e = m.start(1), m.end(1)
                bs, be = len(line[:s].encode()), len(line[:e].encode())
                if e > s:
                    d = dd.getTime(line[s:e], (m, tmpl))
                    if d is not None:
                        last = d[0]
                        res = [bs, be, d[0]]
                else:
                    now = MyTime.time()
                    res = [bs, be, last if last and last > now - 60 else now]
        except Exception:
            res = None
        out.append(res)
    print(json.dumps(out), flush=True)
"#;

/// fail2ban's detector and ours on every line of every sample log (not
/// only the annotated ones): same date text, same time.
#[test]
fn timestamps_match_fail2ban_detector_on_every_line() {
    let (blocks, file_of_block, patterns) = sample_blocks();
    // Each block twice: with the filter's datepattern and auto-detected.
    let n_blocks = blocks.len();
    let blocks: Vec<&Block> = blocks.iter().chain(blocks.iter()).collect();
    let file_of_block: Vec<String> = file_of_block
        .iter()
        .map(|f| format!("{f} (datepattern)"))
        .chain(file_of_block.iter().map(|f| format!("{f} (auto)")))
        .collect();
    let patterns: Vec<Option<String>> = patterns
        .into_iter()
        .chain(std::iter::repeat_n(None, n_blocks))
        .collect();
    let mut input = String::new();
    for (b, p) in blocks.iter().zip(&patterns) {
        let lines: Vec<&str> = b.lines.iter().map(|(_, l)| l.as_str()).collect();
        let v = serde_json::json!({ "pattern": p, "lines": lines });
        input.push_str(&v.to_string());
        input.push('\n');
    }
    let Some(theirs) = run_python(DETECT, &[&TEST_NOW.to_string()], &input) else {
        panic!("fail2ban's date detector (python3 + fail2ban) could not be run: run `cargo xtask deps`");
    };
    let theirs: Vec<Vec<Option<(usize, usize, f64)>>> = theirs
        .lines()
        .map(|l| serde_json::from_str(l).expect("detector output is JSON"))
        .collect();
    assert_eq!(theirs.len(), blocks.len(), "one result list per block");

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(TEST_NOW);
    let (mut lines, mut agreed) = (0usize, 0usize);
    let mut per_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (((block, pattern), file), theirs) in blocks
        .iter()
        .zip(&patterns)
        .zip(&file_of_block)
        .zip(&theirs)
    {
        let mut detector = match pattern {
            Some(p) => DateDetector::from_fail2ban(p).expect("datepattern compiles"),
            None => DateDetector::auto(),
        }
        .with_zone(Zone::named("Europe/Zurich").expect("zone"));
        for ((_, line), want) in block.lines.iter().zip(theirs) {
            let got = detector.find(line, now).map(|f| {
                let d = f
                    .time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                (f.span, d.as_secs_f64())
            });
            let same = match (&got, want) {
                (None, None) => true,
                (Some((span, t)), Some((s, e, w))) => {
                    // fail2ban drops sub-seconds except for epoch numbers.
                    let time_ok =
                        t.floor() == w.floor() && (w.fract() == 0.0 || (t - w).abs() < 1e-5);
                    span.start == *s && span.end == *e && time_ok
                }
                _ => false,
            };
            lines += 1;
            let entry = per_file.entry(file.as_str()).or_default();
            entry.1 += 1;
            if same {
                agreed += 1;
                entry.0 += 1;
            } else {
                disagreements.push(format!("{file}: fail2ban {want:?}, ours {got:?}: {line}"));
            }
        }
    }
    for (file, (a, n)) in &per_file {
        if a != n {
            println!("{file:<32} {a:>5}/{n:<5} lines agree");
        }
    }
    for d in &disagreements {
        println!("DIFFER {d}");
    }
    println!("every line: {agreed}/{lines} agree with fail2ban's detector");
    let dated = theirs.iter().flatten().filter(|t| t.is_some()).count();
    println!("{dated} of them dated by fail2ban");
    assert!(
        lines > 1000 && dated > 1000,
        "too few sample lines: {lines}, {dated} dated"
    );
    assert!(
        agreed as f64 / lines as f64 >= EVERY_LINE_FLOOR,
        "{agreed}/{lines} below the floor {EVERY_LINE_FLOOR}"
    );
}

/// The share of all sample lines on which date text and time must agree.
const EVERY_LINE_FLOOR: f64 = 1.0;

fn run_python(script: &str, args: &[&str], input: &str) -> Option<String> {
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_string();
    // Written from a thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())?
}

/// Dates in every default format and some near misses, in surroundings
/// that test the boundary rules.
fn synthetic_lines() -> Vec<String> {
    let prefixes = ["", "[", "<13>1 ", "host ", "x", "  ", "((", "audit(", "é "];
    let dates = [
        "Mar  5 16:01:34",
        "Sat Mar 05 16:01:34.123456 2004",
        "2004-03-05T16:01:34.123+01:00",
        "2004-03-05 16:01:34",
        "2004-3-5  6:01:34",
        "2004/03/05 16:01:34",
        "05/Mar/2004:16:01:34 +0100",
        "1109654494",
        "1109654494.123",
        "23/01/2005 21:59:59",
        "23-01-05 21:59:59",
        "01-27-2005 16:22:44.252",
        "050322 11:46:11",
        "Jan 23, 2005 9:59:59 PM",
        "Apr-27-05 02:33:06",
        "20050123T215959",
        "20050123 215959,5",
        "PDT Apr 16 21:05:29",
        "+02:00 Jan 23 21:59:59.011 2005",
        "@400000004c8e1a2b0a1b2c3d",
        "16:01:34",
        "<09/16/04@05:03:30>",
        "26-Jul-2004 15:20:52.252 +0200",
        "05/20/2004:01:57:39",
        "Sun Jan 23 2005 21:59:59.011",
        "2005.01.23 21:59:59",
        "2004-02-30 16:01:34",
        "Feb 29 12:00:00",
        "Aug 15 11:00:00",
        "Aug 16 12:00:01",
        "13:30:00",
        "2005-08-14 12:00:00 CEST",
        "Mar 31 25:01:34",
        "1999-03-05 16:01:34",
    ];
    let tails = [
        "", " x", "x", ".5", ",123", " 2004", "Z", " +0100", "]", ":1)",
    ];
    let mut out = Vec::new();
    for p in prefixes {
        for d in dates {
            for t in tails {
                out.push(format!("{p}{d}{t}"));
            }
        }
    }
    // Date-like junk: digits, separators and month names in random order.
    let pieces = [
        "0",
        "1",
        "2",
        "3",
        "5",
        "9",
        "20",
        "04",
        "12",
        "31",
        "1109654494",
        ":",
        "-",
        "/",
        ".",
        ",",
        " ",
        "  ",
        "T",
        "Z",
        "+01",
        "[",
        "]",
        "@",
        "Mar",
        "Sat",
        "PDT",
        "pm",
        "é",
        "x",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..1500 {
        let mut line = String::new();
        for _ in 0..(seed % 12 + 4) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            line.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        out.push(line);
    }
    out
}

/// fail2ban's detector and ours on synthetic lines, each read by a fresh
/// detector: auto-detection and a few filters' datepatterns.
#[test]
fn timestamps_match_fail2ban_detector_on_synthetic_lines() {
    let lines = synthetic_lines();
    // Auto-detection, and every datepattern the installed filters resolve to.
    let filters: Vec<Block> = std::fs::read_dir("/etc/fail2ban/filter.d")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".conf").map(String::from))
                .map(|filter| Block {
                    filter,
                    options: serde_json::Map::new(),
                    lines: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut resolved: Vec<String> = resolve_patterns(&filters)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    resolved.sort();
    resolved.dedup();
    let patterns: Vec<Option<&str>> = std::iter::once(None)
        .chain(resolved.iter().map(|p| Some(p.as_str())))
        .collect();
    println!(
        "synthetic lines with auto-detection and {} datepatterns",
        resolved.len()
    );
    // Each pattern twice: every line read by a fresh detector, then all
    // lines in a shuffled order by one detector that keeps its template.
    let mut shuffled = lines.clone();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..shuffled.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let runs: Vec<(Option<&str>, &Vec<String>, bool)> = patterns
        .iter()
        .map(|p| (*p, &lines, true))
        .chain(patterns.iter().map(|p| (*p, &shuffled, false)))
        .collect();
    let mut input = String::new();
    for (p, lines, fresh) in &runs {
        let v = serde_json::json!({ "pattern": p, "lines": lines, "fresh": fresh });
        input.push_str(&v.to_string());
        input.push('\n');
    }
    let Some(theirs) = run_python(DETECT, &[&TEST_NOW.to_string()], &input) else {
        panic!("fail2ban's date detector (python3 + fail2ban) could not be run: run `cargo xtask deps`");
    };
    let theirs: Vec<Vec<Option<(usize, usize, f64)>>> = theirs
        .lines()
        .map(|l| serde_json::from_str(l).expect("detector output is JSON"))
        .collect();
    assert_eq!(theirs.len(), runs.len());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(TEST_NOW);
    let (mut total, mut agreed, mut dated) = (0usize, 0usize, 0usize);
    for ((pattern, lines, fresh), theirs) in runs.iter().zip(&theirs) {
        let unused = match pattern {
            Some(p) => DateDetector::from_fail2ban(p).expect("datepattern compiles"),
            None => DateDetector::auto(),
        }
        .with_zone(Zone::named("Europe/Zurich").expect("zone"));
        let mut detector = unused.clone();
        for (line, want) in lines.iter().zip(theirs) {
            if *fresh {
                detector.reset();
            }
            let got = detector.find(line, now).map(|f| {
                let d = f
                    .time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                (f.span, d.as_secs_f64())
            });
            total += 1;
            dated += usize::from(want.is_some());
            if same_date(&got, want) {
                agreed += 1;
            } else {
                println!(
                    "DIFFER [{}] fail2ban {want:?}, ours {got:?}: {line:?}",
                    pattern.unwrap_or("auto")
                );
            }
        }
    }
    println!("synthetic: {agreed}/{total} agree with fail2ban's detector ({dated} dated by it)");
    assert!(
        dated > 5000,
        "generator produced too few dated lines: {dated}"
    );
    assert!(
        agreed as f64 / total as f64 >= SYNTHETIC_FLOOR,
        "{agreed}/{total} below the floor {SYNTHETIC_FLOOR}"
    );
}

/// The share of synthetic lines on which date text and time must agree.
const SYNTHETIC_FLOOR: f64 = 1.0;

/// Same date text and time; fail2ban drops sub-seconds except for epoch
/// numbers, so fractions are compared only where it kept one.
fn same_date(
    got: &Option<(std::ops::Range<usize>, f64)>,
    want: &Option<(usize, usize, f64)>,
) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some((span, t)), Some((s, e, w))) => {
            let time_ok = t.floor() == w.floor() && (w.fract() == 0.0 || (t - w).abs() < 1e-5);
            span.start == *s && span.end == *e && time_ok
        }
        _ => false,
    }
}
