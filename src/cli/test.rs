//! `nftjail test FILTER LOG`: runs one filter over a log and reports what it
//! matched, like fail2ban-regex, at the speed of the daemon's own matcher.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use nftjail::filter::{self, Filter, FilterDef};
use nftjail::matcher::Matcher;
use nftjail::source::file::LineSplitter;

pub struct Options {
    pub print_matched: bool,
    pub print_missed: bool,
    /// Print the expanded failregexes (tags replaced) and exit, e.g. to run
    /// the very same pattern through `grep -P` in a benchmark.
    pub print_regex: bool,
}

/// A library name, or a path to a filter file.
fn load(spec: &str) -> Result<Filter> {
    let def = if Path::new(spec).exists() {
        filter::load_filter_file(Path::new(spec))?
    } else {
        let text = filter::library(spec).with_context(|| {
            format!(
                "no filter {spec:?}: not a file, not in the built-in library ({})",
                filter::library_names().join(", ")
            )
        })?;
        FilterDef::parse(text, spec)?
    };
    Ok(Filter::compile(&def, spec)?)
}

pub fn run(filter_spec: &str, log: &str, opts: &Options) -> Result<()> {
    let filter = Arc::new(load(filter_spec)?);
    if opts.print_regex {
        for re in &filter.failregex {
            println!("{}", re.as_str());
        }
        return Ok(());
    }
    let matcher = Matcher::new(vec![(0, filter)]);
    let mut input: Box<dyn Read> = if log == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(log).with_context(|| format!("cannot open {log}"))?)
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut lines = LineSplitter::new(64 * 1024);
    let mut chunk = vec![0u8; 1 << 20];
    let (mut total, mut matched) = (0u64, 0u64);
    let start = Instant::now();
    let mut on_line = |line: &str| {
        total += 1;
        let mut hit = false;
        matcher.scan(line, |_, _| hit = true);
        if hit {
            matched += 1;
        }
        if (hit && opts.print_matched) || (!hit && opts.print_missed) {
            let _ = writeln!(out, "{line}");
        }
    };
    loop {
        let n = input
            .read(&mut chunk)
            .with_context(|| format!("reading {log}"))?;
        if n == 0 {
            break;
        }
        lines.push(&chunk[..n], &mut on_line);
    }
    lines.flush(&mut on_line);
    let secs = start.elapsed().as_secs_f64();
    drop(out);
    eprintln!(
        "Lines: {total}, matched: {matched}, missed: {}\nTime: {secs:.3} s, {:.0} lines/s",
        total - matched,
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}
