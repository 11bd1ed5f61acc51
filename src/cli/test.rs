//! `nftjail test FILTER LOG`: runs one filter over a log and reports what it
//! matched, laid out like fail2ban-regex's report (hits per failregex and
//! ignoreregex, date templates, matched / ignored / missed), at the speed of
//! the daemon's own matcher.
//!
//! Our filters are judged by the daemon's own [`Matcher`], gate and fast
//! capture path alike ([`Matcher::explain_verdicts`]: which failregex,
//! which address, which account, in one pass), so the report is what the
//! daemon would do, at its speed; only the ignoreregexes are then asked of
//! the hits (the same verdict as [`Filter::explain`], which tests hold
//! equal on fail2ban's whole sample corpus and our accounts' lines).
//! fail2ban filter files run through [`Fail2banFilter`], line by line, as
//! the daemon runs them.
//!
//! When every pattern of ours needs a literal, or a fail2ban filter turns
//! away every line without one of its keys, a read is searched for them as
//! a whole, as grep does, and only the lines a search stops in are judged
//! (see [`push_sparse`]): the rest cannot match, and are counted.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use nftjail::filter::fail2ban::{Fail2banFilter, DEFAULT_FILTER_DIR};
use nftjail::filter::{self, Filter, FilterDef};
use nftjail::matcher::Matcher;
use nftjail::source::file::LineSplitter;
use nftjail::timestamp::DateDetector;

/// Longer lines are cut here, as the daemon's file reader cuts them.
const MAX_LINE: usize = 64 * 1024;

pub struct Options {
    pub print_matched: bool,
    pub print_missed: bool,
    pub print_ignored: bool,
    /// Print the expanded failregexes (tags replaced) and exit, e.g. to run
    /// the very same pattern through `grep -P` in a benchmark.
    pub print_regex: bool,
    /// One JSON object per tested line on stdout; the report goes to stderr.
    pub json: bool,
}

/// A loaded filter, of either kind.
// One per run: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Judge {
    Ours {
        filter: Arc<Filter>,
        /// The daemon's matcher, for its gate: most lines stop there.
        gate: Arc<Matcher>,
        dates: DateDetector,
        /// The regexes as the filter file writes them (`<HOST>` unexpanded).
        def: FilterDef,
    },
    Fail2ban(Fail2banFilter),
}

/// What one line came to.
#[derive(Default)]
struct Outcome {
    matched: bool,
    ignored: bool,
    host: Option<String>,
    time: Option<SystemTime>,
    user: Option<String>,
    /// Index of the failregex that blamed the line.
    regex: Option<usize>,
}

/// One `--json` line. `regex` is the number the report shows (from 1).
#[derive(Serialize)]
struct JsonLine<'a> {
    line: u64,
    #[serde(rename = "match")]
    matched: bool,
    ignored: bool,
    host: Option<&'a str>,
    time: Option<String>,
    user: Option<&'a str>,
    regex: Option<usize>,
}

#[derive(Default)]
struct Stats {
    /// Lines judged (comment and empty lines are skipped, as
    /// fail2ban-regex skips them, so its sample files test the same).
    tested: u64,
    skipped: u64,
    matched: u64,
    ignored: u64,
    /// Matched lines whose host is no IP address (a DNS name, or a form
    /// such as `192.030.0.6`): fail2ban counts them, the daemon cannot ban them.
    no_address: u64,
    /// A file's last line had no newline and was left unjudged.
    unterminated: bool,
    fail_hits: Vec<u64>,
    ignore_hits: Vec<u64>,
    /// Template name and lines it dated, in order of first use.
    dates: Vec<(String, u64)>,
}

impl Stats {
    fn date(&mut self, template: &str) {
        match self.dates.iter_mut().find(|(t, _)| t == template) {
            Some((_, n)) => *n += 1,
            None => self.dates.push((template.to_string(), 1)),
        }
    }
}

/// A spec the way an admin writes it: `fail2ban:NAME[opts]`, a fail2ban
/// `.conf` file (with or without `[opts]`), one of our filter files, or a
/// built-in filter's name.
fn load(spec: &str) -> Result<Judge> {
    let fail2ban = |spec: &str| -> Result<Judge> {
        let f = Fail2banFilter::load(spec, Path::new(DEFAULT_FILTER_DIR))
            .with_context(|| format!("fail2ban filter {spec:?}"))?;
        Ok(Judge::Fail2ban(f))
    };
    if let Some(rest) = spec.strip_prefix("fail2ban:") {
        return fail2ban(rest);
    }
    if spec.split('[').next().is_some_and(|p| p.ends_with(".conf")) {
        return fail2ban(spec);
    }
    let def = if Path::new(spec).exists() {
        filter::load_filter_file(Path::new(spec))?
    } else {
        let text = filter::library(spec).with_context(|| {
            format!(
                "no filter {spec:?}: not a file, not in the built-in library ({}), \
                 and not fail2ban:NAME",
                filter::library_names().join(", ")
            )
        })?;
        FilterDef::parse(text, spec)?
    };
    let filter = Arc::new(Filter::compile(&def, spec)?);
    Ok(Judge::Ours {
        gate: Arc::new(Matcher::new(vec![(0, Arc::clone(&filter))])),
        filter,
        dates: DateDetector::auto(),
        def,
    })
}

impl Judge {
    /// The search that may pass over whole runs of lines unjudged (see
    /// [`push_sparse`]), when no line is printed or reported but those the
    /// filter may blame: our matcher's literals, when every pattern needs
    /// one; a fail2ban filter's keys, when it turns away every line
    /// without one before reading its date (as [`Judge::judge`] does).
    fn sparse(&self, opts: &Options) -> Option<Sparse> {
        if opts.json || opts.print_missed {
            return None;
        }
        match self {
            Judge::Ours { gate, .. } if gate.gated_by_literals() => {
                Some(Sparse::Literals(Arc::clone(gate)))
            }
            Judge::Ours { .. } => None,
            Judge::Fail2ban(f) => f.key_search().cloned().map(Sparse::Keys),
        }
    }

    fn failregex_text(&self) -> &[String] {
        match self {
            Judge::Ours { def, .. } => &def.failregex,
            Judge::Fail2ban(f) => f.failregex_text(),
        }
    }

    fn ignoreregex_text(&self) -> &[String] {
        match self {
            Judge::Ours { def, .. } => &def.ignoreregex,
            Judge::Fail2ban(f) => f.ignoreregex_text(),
        }
    }

    /// Judges one line and counts it. `every_date`: read the date of
    /// every line, not only of lines a failregex blames (the daemon reads
    /// them for those only, and so does the fast report).
    fn judge(&mut self, line: &str, now: SystemTime, every_date: bool, st: &mut Stats) -> Outcome {
        let mut out = Outcome::default();
        match self {
            Judge::Ours { gate, dates, .. } => {
                let mut verdict = None;
                gate.explain_verdicts(line, |_, v| verdict = Some(v));
                let blamed = verdict.is_some();
                if blamed || every_date {
                    if let Some(found) = dates.find(line, now) {
                        out.time = Some(found.time);
                        if let Some(t) = dates.current_template() {
                            st.date(t);
                        }
                    }
                }
                let Some(v) = verdict else {
                    return out;
                };
                st.fail_hits[v.regex] += 1;
                for &i in &v.ignored_by {
                    st.ignore_hits[i] += 1;
                }
                out.ignored = !v.ignored_by.is_empty();
                out.matched = !out.ignored;
                out.host = Some(v.addr.to_string());
                out.user = v.user;
                out.regex = Some(v.regex);
            }
            Judge::Fail2ban(f) => {
                // As the daemon: a line the filter's gate turns away is
                // nothing to it, and its date is not read (but for --json).
                let failures = if every_date {
                    f.failures(line, now)
                } else if f.may_match(line) {
                    f.failures_admitted(line, now)
                } else {
                    return out;
                };
                let report = f.last_line();
                out.time = report.time;
                for &i in report.ignoreregex.iter() {
                    st.ignore_hits[i] += 1;
                }
                for &i in report.nofail.iter() {
                    st.fail_hits[i] += 1;
                }
                for m in &failures {
                    st.fail_hits[m.regex] += 1;
                }
                // Every failregex is tried (fail2ban's check-all mode, as
                // its sample tests and our daemon run filters), so a line
                // can hold a failure and a no-failure match: it counts as
                // matched, and as ignored only when nothing else matched.
                out.matched = !failures.is_empty();
                out.ignored =
                    !out.matched && (!report.ignoreregex.is_empty() || !report.nofail.is_empty());
                if let Some(t) = f.last_date_template() {
                    st.date(t);
                }
                if out.matched && failures.iter().all(|m| m.addr.is_none()) {
                    st.no_address += 1;
                }
                if let Some(m) = failures.into_iter().next() {
                    out.host = m.host.or_else(|| m.addr.map(|a| a.to_string()));
                    out.time = m.time.or(out.time);
                    out.user = m.user;
                    out.regex = Some(m.regex);
                }
            }
        }
        out
    }
}

pub fn run(filter_spec: &str, log: &str, opts: &Options) -> Result<()> {
    let mut judge = load(filter_spec)?;
    if opts.print_regex {
        // Ours expanded, so `grep -P` runs the very same pattern.
        match &judge {
            Judge::Ours { filter, .. } => {
                for re in &filter.failregex {
                    println!("{}", re.as_str());
                }
            }
            Judge::Fail2ban(f) => {
                for re in f.failregex_text() {
                    println!("{re}");
                }
            }
        }
        return Ok(());
    }
    let mut input: Box<dyn Read> = if log == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(log).with_context(|| format!("cannot open {log}"))?)
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut st = Stats {
        fail_hits: vec![0; judge.failregex_text().len()],
        ignore_hits: vec![0; judge.ignoreregex_text().len()],
        ..Stats::default()
    };
    let now = SystemTime::now();
    let mut number = 0u64;
    // Set on the first failed write; reading stops there.
    let write_error: RefCell<Option<std::io::Error>> = RefCell::new(None);
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut chunk = vec![0u8; READ_SIZE];
    let mut cut = 0usize;
    let sparse = judge.sparse(opts);
    // Lines passed over by the sparse scan: tested, and missed.
    let mut passed = 0u64;
    let start = Instant::now();
    let mut on_line = |line: &str| {
        number += 1;
        if line.is_empty() || line.starts_with('#') {
            st.skipped += 1;
            return;
        }
        st.tested += 1;
        let o = judge.judge(line, now, opts.json, &mut st);
        if o.matched {
            st.matched += 1;
        } else if o.ignored {
            st.ignored += 1;
        }
        let written = if opts.json {
            let record = JsonLine {
                line: number,
                matched: o.matched,
                ignored: o.ignored,
                host: o.host.as_deref(),
                time: o.time.and_then(rfc3339),
                user: o.user.as_deref(),
                regex: o.regex.map(|i| i + 1),
            };
            serde_json::to_writer(&mut out, &record)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        } else if (o.matched && opts.print_matched)
            || (o.ignored && opts.print_ignored)
            || (!o.matched && !o.ignored && opts.print_missed)
        {
            writeln!(out, "{line}")
        } else {
            Ok(())
        };
        if let Err(e) = written {
            write_error.borrow_mut().get_or_insert(e);
        }
    };
    while write_error.borrow().is_none() {
        let n = input
            .read(&mut chunk)
            .with_context(|| format!("reading {log}"))?;
        if n == 0 {
            break;
        }
        let data = &chunk[..n];
        cut += match &sparse {
            Some(m) => push_sparse(&mut lines, m, data, &mut on_line, &mut passed),
            None => lines.push(data, &mut on_line).cut,
        };
    }
    // A file's last line without its newline is still being written: the
    // daemon waits for the newline, and fail2ban-regex does not read it
    // either. A pipe that ended brings no newline: its last line counts.
    let unterminated = log != "-" && lines.has_partial();
    if !unterminated {
        lines.flush(&mut on_line);
    }
    let secs = start.elapsed().as_secs_f64();
    st.tested += passed;
    let failed = write_error.into_inner().or_else(|| out.flush().err());
    drop(out);
    match failed {
        // The reader went away (`| head`, `jq` done): nothing more to say.
        Some(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
        Some(e) => return Err(e).context("writing to standard output"),
        None => {}
    }
    st.unterminated = unterminated;
    let report = report(filter_spec, &judge, &st, secs, cut, opts.json);
    let written = if opts.json {
        std::io::stderr().lock().write_all(report.as_bytes())
    } else {
        std::io::stdout().lock().write_all(report.as_bytes())
    };
    match written {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("writing the report"),
        _ => Ok(()),
    }
}

/// What a read is searched for to find the lines worth judging.
enum Sparse {
    Literals(Arc<Matcher>),
    Keys(regex::bytes::Regex),
}

impl Sparse {
    /// Where in `text` the first thing searched for starts, at or after
    /// `from`; it may also stop where none does.
    fn find(&self, text: &[u8], from: usize) -> Option<usize> {
        match self {
            Sparse::Literals(m) => m.find_literal(text, from),
            Sparse::Keys(keys) => keys.find_at(text, from).map(|m| m.start()),
        }
    }
}

/// Bytes asked of the file at a time: small enough that the scans of a
/// read find it still in the CPU's cache.
const READ_SIZE: usize = 256 << 10;

/// [`LineSplitter::push`] for a filter whose every pattern needs a literal
/// (or key, see [`Sparse`]): the read is searched for them in one go, as grep does, and only
/// the lines a search stops in are handed to `on_line`; a run of lines
/// between them that holds no literal, no empty or comment line, no `\r`
/// and no line to cut is counted in `passed` (judging them would find
/// nothing: they are missed). Any other run goes through `push` line by
/// line, as every line does without this. Returns the lines cut.
fn push_sparse(
    lines: &mut LineSplitter,
    m: &Sparse,
    data: &[u8],
    on_line: &mut dyn FnMut(&str),
    passed: &mut u64,
) -> usize {
    let (Some(first), Some(last)) = (memchr::memchr(b'\n', data), memchr::memrchr(b'\n', data))
    else {
        return lines.push(data, on_line).cut;
    };
    // The first line may end one held from the last read: the splitter
    // takes it, and holds nothing after its newline.
    let mut cut = lines.push(&data[..=first], on_line).cut;
    let mut at = first + 1;
    while at <= last {
        let hit = m.find(&data[..=last], at);
        // The whole lines before the hit's line (all to the end without one).
        let gap_end = match hit {
            Some(h) => memchr::memrchr(b'\n', &data[at..h]).map_or(at, |i| at + i + 1),
            None => last + 1,
        };
        if gap_end > at {
            // `data[at - 1]` is the newline before the run: an empty first
            // line shows as "\n\n" too.
            let run = &data[at - 1..gap_end];
            if plain_lines(run) {
                *passed += memchr::memchr_iter(b'\n', &data[at..gap_end]).count() as u64;
            } else {
                cut += lines.push(&data[at..gap_end], on_line).cut;
            }
        }
        let Some(h) = hit else { break };
        let end = memchr::memchr(b'\n', &data[h..=last]).map_or(last, |i| h + i);
        cut += lines.push(&data[gap_end..=end], on_line).cut;
        at = end + 1;
    }
    cut + lines.push(&data[last + 1..], on_line).cut
}

/// Whether the lines of `run` (which starts with the newline before its
/// first line and ends with its last line's newline) are all judged as
/// they are: none empty or a comment (skipped), none with a `\r` (taken
/// off a line's end), none longer than [`MAX_LINE`] (cut).
fn plain_lines(run: &[u8]) -> bool {
    if memchr::memchr2(b'#', b'\r', run).is_some() || memchr::memmem::find(run, b"\n\n").is_some() {
        return false;
    }
    // A line longer than MAX_LINE covers a whole window of half that size
    // starting at a multiple of it: one without a newline.
    run.chunks_exact(MAX_LINE / 2)
        .all(|w| memchr::memchr(b'\n', w).is_some())
}

/// RFC 3339 in UTC; `None` for a time jiff cannot hold.
fn rfc3339(t: SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(t).ok().map(|ts| ts.to_string())
}

fn report(spec: &str, judge: &Judge, st: &Stats, secs: f64, cut: usize, all_dates: bool) -> String {
    use std::fmt::Write as _;
    let mut r = String::new();
    let kind = match judge {
        Judge::Ours { .. } => "nftjail filter",
        Judge::Fail2ban(_) => "fail2ban filter file",
    };
    let _ = writeln!(r, "Filter: {spec} ({kind})\n");
    let total: u64 = st.fail_hits.iter().sum();
    let _ = writeln!(r, "Failregex: {total} total");
    let _ = writeln!(r, "|-  #) [# of hits] regular expression");
    for (i, (text, hits)) in judge.failregex_text().iter().zip(&st.fail_hits).enumerate() {
        if *hits > 0 {
            let _ = writeln!(r, "|  {:>2}) [{hits}] {text}", i + 1);
        }
    }
    let _ = writeln!(r, "`-\n");
    let total: u64 = st.ignore_hits.iter().sum();
    let _ = writeln!(r, "Ignoreregex: {total} total");
    if total > 0 {
        let _ = writeln!(r, "|-  #) [# of hits] regular expression");
        for (i, (text, hits)) in judge
            .ignoreregex_text()
            .iter()
            .zip(&st.ignore_hits)
            .enumerate()
        {
            if *hits > 0 {
                let _ = writeln!(r, "|  {:>2}) [{hits}] {text}", i + 1);
            }
        }
        let _ = writeln!(r, "`-");
    }
    let which = match judge {
        Judge::Ours { .. } if !all_dates => " (of the lines a failregex matched)",
        Judge::Fail2ban(_) if !all_dates => " (of the lines the filter's gate let through)",
        _ => "",
    };
    let _ = writeln!(r, "\nDate template hits{which}:");
    let _ = writeln!(r, "|- [# of hits] date format");
    for (t, n) in &st.dates {
        let _ = writeln!(r, "|  [{n}] {t}");
    }
    let _ = writeln!(r, "`-\n");
    let missed = st.tested - st.matched - st.ignored;
    let _ = writeln!(
        r,
        "Lines: {} lines, {} ignored, {} matched, {missed} missed",
        st.tested, st.ignored, st.matched
    );
    if st.no_address > 0 {
        let _ = writeln!(
            r,
            "No address: {} matched lines name a host that is no IP address (nftjail bans addresses only)",
            st.no_address
        );
    }
    if st.skipped > 0 {
        let _ = writeln!(r, "Skipped: {} comment or empty lines", st.skipped);
    }
    if cut > 0 {
        let _ = writeln!(r, "Cut: {cut} lines longer than {MAX_LINE} bytes");
    }
    if st.unterminated {
        let _ = writeln!(
            r,
            "Unterminated: the last line has no newline and is not judged (the daemon waits for it)"
        );
    }
    let rate = st.tested as f64 / secs.max(1e-9);
    let _ = writeln!(r, "[processed in {secs:.3} s, {rate:.0} lines/s]");
    let _ = writeln!(
        r,
        "Results: matched: {}, ignored: {}, missed: {missed}",
        st.matched, st.ignored
    );
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What a read of `text` in reads of `size` bytes hands to the judge:
    /// the lines given to it with their verdict, lines passed over
    /// unjudged, lines cut.
    fn read(m: &Arc<Matcher>, text: &[u8], size: usize, sparse: bool) -> (Vec<String>, u64, usize) {
        let sparse = sparse.then(|| Sparse::Literals(Arc::clone(m)));
        read_with(
            &mut |line| {
                let mut v = None;
                m.explain_verdicts(line, |_, verdict| v = Some(verdict.addr));
                format!("{line:?} {v:?}")
            },
            text,
            size,
            sparse.as_ref(),
        )
    }

    /// [`read`] with any judge, which says what it made of each line it
    /// was handed (ending in " None" for nothing).
    /// The judged lines that blamed a host.
    fn blamed(judged: &[String]) -> Vec<String> {
        judged
            .iter()
            .filter(|l| !l.ends_with(" None"))
            .cloned()
            .collect()
    }

    fn read_with(
        judge: &mut dyn FnMut(&str) -> String,
        text: &[u8],
        size: usize,
        sparse: Option<&Sparse>,
    ) -> (Vec<String>, u64, usize) {
        let mut lines = LineSplitter::new(MAX_LINE);
        let mut judged = Vec::new();
        let mut passed = 0;
        let mut cut = 0;
        let mut on_line = |line: &str| judged.push(judge(line));
        for data in text.chunks(size) {
            cut += if let Some(m) = sparse {
                push_sparse(&mut lines, m, data, &mut on_line, &mut passed)
            } else {
                lines.push(data, &mut on_line).cut
            };
        }
        lines.flush(&mut on_line);
        (judged, passed, cut)
    }

    /// The sparse read blames the same lines with the same verdicts,
    /// skips and cuts the same, and judges or passes every other line,
    /// however the reads fall.
    #[test]
    fn the_sparse_read_judges_as_every_line_does() {
        let def = FilterDef::parse(filter::library("zimbra-submission").unwrap(), "z").unwrap();
        let m = Arc::new(Matcher::new(vec![(
            0,
            Arc::new(Filter::compile(&def, "z").unwrap()),
        )]));
        assert!(m.gated_by_literals());
        let sasl = |i: u32| {
            format!("Mar  5 16:01:34 mx1 postfix/submission/smtpd[{i}]: warning: unknown[192.0.2.{i}]: SASL LOGIN authentication failed: authentication failure\n")
        };
        let mut text = String::new();
        for i in 0..300u32 {
            match i % 13 {
                0 => text += &sasl(i % 250),
                1 => text += "# a comment with SASL in it\n",
                2 => text += "\n",
                3 => text += "Mar  5 16:01:34 mx1 postfix/smtpd[1]: connect from x[192.0.2.1]\r\n",
                4 if i % 3 == 0 => text += &format!("{}\n", "y".repeat(MAX_LINE + 7)),
                4 => text += "\n",
                5 => text += &sasl(7).replace('\n', "\r\n"),
                _ => {
                    text += &format!(
                        "Mar  5 16:01:34 mx1 postfix/smtpd[{i}]: disconnect from x[192.0.2.9]\n"
                    )
                }
            }
        }
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"bad \xff utf-8\n");
        bytes.extend_from_slice(sasl(9).as_bytes());
        let (all, none, all_cut) = read(&m, &bytes, 1 << 20, false);
        assert_eq!(none, 0);
        assert!(blamed(&all).len() > 40);
        for size in [1, 7, 100, 4096, 70_000, 1 << 20] {
            let (judged, passed, cut) = read(&m, &bytes, size, true);
            assert_eq!(blamed(&judged), blamed(&all), "{size}");
            assert_eq!(judged.len() as u64 + passed, all.len() as u64, "{size}");
            assert_eq!(cut, all_cut, "{size}");
            let skipped = |j: &[String]| {
                j.iter()
                    .filter(|l| l.starts_with("\"\"") || l.starts_with("\"#"))
                    .count()
            };
            assert_eq!(skipped(&judged), skipped(&all), "{size}");
            if size >= 4096 {
                assert!(passed > 100, "{size}: {passed}");
            }
        }
    }

    /// A fail2ban filter file read sparsely blames the same lines with the
    /// same hosts as when every line is judged, and is handed or passes
    /// every other line.
    #[test]
    fn a_fail2ban_filter_read_sparsely_judges_as_every_line_does() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("zimbra.conf");
        std::fs::write(
            &conf,
            "[Definition]\nfailregex = postfix/submission/smtpd\\[\\d+\\]: warning: .*\\[<HOST>\\]: SASL \\w+ authentication failed: authentication failure$\n",
        )
        .unwrap();
        let spec = conf.display().to_string();
        let opts = Options {
            print_matched: false,
            print_missed: false,
            print_ignored: false,
            print_regex: false,
            json: false,
        };
        let mut text = String::new();
        for i in 0..400u32 {
            text += &match i % 7 {
                0 => format!("Mar  5 16:01:34 mx1 postfix/submission/smtpd[{i}]: warning: unknown[192.0.2.{}]: SASL LOGIN authentication failed: authentication failure\n", i % 250),
                1 => format!("Mar  5 16:01:34 mx1 postfix/smtps/smtpd[{i}]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: authentication failure\n"),
                2 if i % 49 == 2 => "# authentication failed: authentication failure\n".to_string(),
                3 if i % 49 == 3 => "\n".to_string(),
                _ => format!("Mar  5 16:01:34 mx1 postfix/smtpd[{i}]: disconnect from x[192.0.2.9]\n"),
            };
        }
        let now = SystemTime::now();
        let run = |size: usize, sparse: bool| {
            let mut judge = load(&spec).unwrap();
            let keys = judge.sparse(&opts);
            assert!(keys.is_some());
            let mut st = Stats {
                fail_hits: vec![0; judge.failregex_text().len()],
                ..Stats::default()
            };
            let keys = keys.filter(|_| sparse);
            let mut on_line = |line: &str| {
                let o = judge.judge(line, now, false, &mut st);
                format!("{line:?} {:?}", o.host)
            };
            read_with(&mut on_line, text.as_bytes(), size, keys.as_ref())
        };
        let (all, none, _) = run(1 << 20, false);
        assert_eq!(none, 0);
        assert_eq!(blamed(&all).len(), 58);
        for size in [1, 100, 4096, 1 << 20] {
            let (judged, passed, _) = run(size, true);
            assert_eq!(blamed(&judged), blamed(&all), "{size}");
            assert_eq!(judged.len() as u64 + passed, all.len() as u64, "{size}");
            if size >= 4096 {
                assert!(passed > 100, "{size}: {passed}");
            }
        }
        // A report of every line (missed ones printed) reads every line.
        let every = Options {
            print_missed: true,
            ..opts
        };
        assert!(load(&spec).unwrap().sparse(&every).is_none());
    }
}
