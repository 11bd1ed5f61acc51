//! An imported filter beside the built-in filter for the same service, on
//! the jail's own current log: a fail2ban filter written for another
//! version of a program's messages can miss every real failure (a `$`
//! where the program now writes more), and a migrated jail would then
//! never ban. Lines the built-in filter blames and the imported one does
//! not are shown, so the admin sees it before switching.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use nftjail::filter::fail2ban::Fail2banFilter;
use nftjail::filter::{self, Filter, FilterDef};

/// Only the end of a large log is read: the current messages are what
/// matter, and an import stays quick.
const TAIL: u64 = 16 << 20;
/// Examples shown per jail.
const EXAMPLES: usize = 3;

/// What the two filters made of one log.
#[derive(Debug)]
pub struct Comparison {
    pub builtin: String,
    pub log: String,
    pub lines: usize,
    pub imported_hits: usize,
    pub builtin_hits: usize,
    /// Lines the built-in filter blames and the imported one misses.
    pub missed: usize,
    pub examples: Vec<String>,
}

impl Comparison {
    /// The warning, when the imported filter misses what the built-in one finds.
    pub fn warning(&self, jail: &str) -> Option<String> {
        if self.missed == 0 {
            return None;
        }
        let mut w = format!(
            "jail {jail}: its fail2ban filter misses {} of the {} lines of {} that the built-in \
             filter {:?} matches (it matched {} of {} lines); as imported, this jail may never ban. \
             Check with `nftjail test {} {}` and consider filter = {:?}.",
            self.missed,
            self.builtin_hits,
            self.log,
            self.builtin,
            self.imported_hits,
            self.lines,
            self.builtin,
            self.log,
            self.builtin
        );
        if !self.examples.is_empty() {
            w.push_str(" For example:");
        }
        for e in &self.examples {
            w.push_str("\n    ");
            w.push_str(e);
        }
        Some(w)
    }
}

/// The built-in filter for a fail2ban filter or jail name, if one exists.
pub fn builtin_for(names: &[&str]) -> Option<(String, FilterDef)> {
    names.iter().find_map(|n| {
        let text = filter::library(n)?;
        FilterDef::parse(text, n).ok().map(|d| (n.to_string(), d))
    })
}

/// Runs both filters over the end of `log`; `None` when it cannot be read.
pub fn compare(
    imported_spec: &str,
    filter_dir: &Path,
    builtin: (String, FilterDef),
    log: &str,
) -> Option<Comparison> {
    let mut imported = Fail2banFilter::load(imported_spec, filter_dir).ok()?;
    let ours = Filter::compile(&builtin.1, &builtin.0).ok()?;
    let text = tail(Path::new(log))?;
    let now = SystemTime::now();
    let mut c = Comparison {
        builtin: builtin.0,
        log: log.to_string(),
        lines: 0,
        imported_hits: 0,
        builtin_hits: 0,
        missed: 0,
        examples: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        c.lines += 1;
        let theirs = !imported.failures(line, now).is_empty();
        let mine = ours.find(line).is_some();
        c.imported_hits += usize::from(theirs);
        c.builtin_hits += usize::from(mine);
        if mine && !theirs {
            c.missed += 1;
            if c.examples.len() < EXAMPLES {
                c.examples.push(line.chars().take(300).collect());
            }
        }
    }
    Some(c)
}

fn tail(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        // The first line was cut by the seek.
        let first = text.find('\n').map_or(text.len(), |i| i + 1);
        text.drain(..first);
    }
    Some(text)
}
