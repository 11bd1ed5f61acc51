//! `cargo xtask tidy`: the architecture rules a reviewer would otherwise repeat on every change,
//! kept by a tool (as rust-analyzer's tidy test keeps its own).
//!
//! The rules live in `tidy.toml` at the repository root, next to the code they describe:
//! which top-level library module may import which (layers only look down), which files may be
//! long and why, and that the product never forks a process. The check only reads files, so it
//! runs in CI before anything is built and needs no network.

mod scan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

use scan::{is_ident, Scanned};

/// `tidy.toml`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    /// Lines of non-test code past which a file needs a stated reason.
    max_lines: usize,
    /// Top-level module → the other top-level modules it may import (`"*"`: any).
    layers: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    /// File → why it is one file although it is long.
    #[serde(default)]
    long_files: BTreeMap<Spanned<String>, String>,
    /// File → why it may fork (`Command::new`): each one a reviewed exception.
    #[serde(default)]
    forks: BTreeMap<String, String>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Rule {
    Layers,
    FileSize,
    NoForks,
}

/// One broken rule, printed `path:line: message` as compilers do, so editors can jump to it.
#[derive(Debug)]
pub struct Violation {
    pub rule: Rule,
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

pub struct Report {
    pub violations: Vec<Violation>,
    pub files: usize,
}

/// Runs every rule on the tree at `root`, prints what is broken and a summary, and says whether
/// the tree is clean. Violations are the expected outcome of a check, not an error of the task,
/// so they are not returned as one (no backtrace under them).
pub fn tidy(root: &Path) -> Result<bool> {
    let report = check(root)?;
    for v in &report.violations {
        println!("{v}");
    }
    if report.violations.is_empty() {
        println!("tidy: {} files follow tidy.toml", report.files);
        return Ok(true);
    }
    let count = |rule| report.violations.iter().filter(|v| v.rule == rule).count();
    println!(
        "tidy: {} violations in {} files checked ({} layering, {} file size, {} forks); \
         fix the code, or change tidy.toml if the design changed",
        report.violations.len(),
        report.files,
        count(Rule::Layers),
        count(Rule::FileSize),
        count(Rule::NoForks),
    );
    Ok(false)
}

/// The repository's source files, scanned: path relative to the root → file.
type Tree = BTreeMap<String, Scanned>;

pub fn check(root: &Path) -> Result<Report> {
    let rules_path = root.join("tidy.toml");
    let text = fs::read_to_string(&rules_path)
        .with_context(|| format!("cannot read {}", rules_path.display()))?;
    let rules: Rules =
        toml::from_str(&text).with_context(|| format!("{} is not valid", rules_path.display()))?;
    let mut tree = Tree::new();
    for dir in ["src", "xtask/src"] {
        read_tree(root, dir, &mut tree)?;
    }
    let tests = test_files(&tree);
    let mut violations = Vec::new();
    layers(&rules, &text, &tree, &tests, &mut violations);
    file_sizes(&rules, &text, &tree, &tests, &mut violations);
    forks(&rules, &tree, &tests, &mut violations);
    violations.sort_by(|a, b| (a.rule, &a.path, a.line).cmp(&(b.rule, &b.path, b.line)));
    Ok(Report {
        violations,
        files: tree.len(),
    })
}

fn read_tree(root: &Path, dir: &str, tree: &mut Tree) -> Result<()> {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {dir}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{dir}/{name}");
        if entry.file_type()?.is_dir() {
            read_tree(root, &path, tree)?;
        } else if name.ends_with(".rs") {
            let src =
                fs::read_to_string(entry.path()).with_context(|| format!("cannot read {path}"))?;
            tree.insert(path, Scanned::new(&src));
        }
    }
    Ok(())
}

/// Files that are test code as a whole: named `tests.rs`, `#![cfg(test)]`, or declared by their
/// parent with `#[cfg(test)] mod name;` (with everything below such a module).
fn test_files(tree: &Tree) -> BTreeSet<String> {
    let mut prefixes = Vec::new();
    for (path, file) in tree {
        let dir = match path.rsplit_once('/') {
            Some((dir, "mod.rs" | "lib.rs" | "main.rs")) => dir.to_string(),
            _ => path.trim_end_matches(".rs").to_string(),
        };
        for name in &file.test_mods {
            prefixes.push(format!("{dir}/{name}.rs"));
            prefixes.push(format!("{dir}/{name}/"));
        }
    }
    tree.iter()
        .filter(|(path, file)| {
            path.ends_with("/tests.rs")
                || file.all_test
                || prefixes.iter().any(|p| path.starts_with(p.as_str()))
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// The top-level library module a file under `src/` belongs to (`src/a/b.rs` → `a`).
fn top_module(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

fn line_in(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn layers(
    rules: &Rules,
    text: &str,
    tree: &Tree,
    tests: &BTreeSet<String>,
    out: &mut Vec<Violation>,
) {
    let declared: BTreeMap<&str, &Spanned<String>> = rules
        .layers
        .keys()
        .map(|k| (k.get_ref().as_str(), k))
        .collect();
    let allowed = |m: &str| -> Option<&Vec<Spanned<String>>> {
        rules
            .layers
            .iter()
            .find(|(k, _)| k.get_ref() == m)
            .map(|(_, v)| v)
    };
    let toml_violation = |offset: usize, message: String| Violation {
        rule: Rule::Layers,
        path: "tidy.toml".into(),
        line: Some(line_in(text, offset)),
        message,
    };

    // The declaration itself: every name it uses is a module, and it has no cycle.
    for (m, list) in &rules.layers {
        for x in list {
            if x.get_ref() != "*" && !declared.contains_key(x.get_ref().as_str()) {
                out.push(toml_violation(
                    x.span().start,
                    format!(
                        "[layers] `{}` lists `{}`, which is not declared in [layers]",
                        m.get_ref(),
                        x.get_ref()
                    ),
                ));
            }
        }
    }
    for cycle in cycles(rules) {
        let first = declared[cycle[0].as_str()];
        out.push(toml_violation(
            first.span().start,
            format!(
                "[layers] cycle: {} (layers only look down: drop one of these imports)",
                cycle.join(" -> ")
            ),
        ));
    }

    // Every module in src/ has a place in the layering.
    let mut present = BTreeMap::new();
    for path in tree.keys().filter(|p| p.as_str() != "src/lib.rs") {
        if let Some(m) = top_module(path) {
            let shown = if path.matches('/').count() > 1 {
                format!("src/{m}/")
            } else {
                path.clone()
            };
            present.entry(m).or_insert(shown);
        }
    }
    for (m, shown) in &present {
        if !declared.contains_key(m) {
            out.push(Violation {
                rule: Rule::Layers,
                path: shown.clone(),
                line: None,
                message: format!(
                    "module `{m}` is not in tidy.toml [layers]: add it with the modules it may import"
                ),
            });
        }
    }

    // Every `crate::x` path in product code goes down the layering.
    for (path, file) in tree {
        if path == "src/lib.rs" || tests.contains(path) {
            continue;
        }
        let Some(m) = top_module(path) else { continue };
        let Some(list) = allowed(m) else { continue };
        if list.iter().any(|x| x.get_ref() == "*") {
            continue;
        }
        let mut seen = BTreeSet::new();
        for (offset, x) in crate_paths(&file.code) {
            // `crate::AddrMap` and the like are items of the crate root, open to every module.
            let is_module = declared.contains_key(x) || present.contains_key(x);
            if x == m || !is_module || file.is_test(offset) {
                continue;
            }
            if list.iter().any(|a| a.get_ref() == x) {
                continue;
            }
            let line = file.line_of(offset);
            if seen.insert((line, x)) {
                out.push(Violation {
                    rule: Rule::Layers,
                    path: path.clone(),
                    line: Some(line),
                    message: format!("module `{m}` may not import `{x}` (tidy.toml [layers])"),
                });
            }
        }
    }
}

/// The modules a module may import, as graph edges: `"*"` reaches every module that is not
/// itself `"*"`, so a top layer that lists everything cannot also be imported from below.
fn edges(rules: &Rules) -> BTreeMap<&str, Vec<&str>> {
    let top: BTreeSet<&str> = rules
        .layers
        .iter()
        .filter(|(_, list)| list.iter().any(|x| x.get_ref() == "*"))
        .map(|(m, _)| m.get_ref().as_str())
        .collect();
    let names: Vec<&str> = rules.layers.keys().map(|k| k.get_ref().as_str()).collect();
    rules
        .layers
        .iter()
        .map(|(m, list)| {
            let m = m.get_ref().as_str();
            let to: Vec<&str> = if top.contains(m) {
                names.iter().copied().filter(|x| !top.contains(x)).collect()
            } else {
                list.iter()
                    .map(|x| x.get_ref().as_str())
                    .filter(|x| names.contains(x))
                    .collect()
            };
            (m, to.into_iter().filter(|x| *x != m).collect())
        })
        .collect()
}

/// Cycles in the declared layering, each once: the shortest cycle through each module that is
/// the smallest name on it, listed from that module and back to it.
fn cycles(rules: &Rules) -> Vec<Vec<String>> {
    let edges = edges(rules);
    let mut found = Vec::new();
    for &start in edges.keys() {
        // Breadth first from `start`'s imports back to `start`.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        for &x in &edges[start] {
            if parent.insert(x, start).is_none() {
                queue.push_back(x);
            }
        }
        let mut closed = None;
        while let Some(node) = queue.pop_front() {
            if node == start {
                closed = Some(node);
                break;
            }
            for &x in edges.get(node).into_iter().flatten() {
                if !parent.contains_key(x) {
                    parent.insert(x, node);
                    queue.push_back(x);
                }
            }
        }
        let Some(mut node) = closed else { continue };
        let mut path = vec![start.to_string()];
        loop {
            node = parent[node];
            if node == start {
                break;
            }
            path.push(node.to_string());
        }
        path[1..].reverse();
        path.push(start.to_string());
        if path.iter().all(|n| n.as_str() >= start) {
            found.push(path);
        }
    }
    found
}

/// Every `crate::x` in masked code, with the offset of `x`; `crate::{a::b, c}` yields `a` and `c`.
/// `pub(in crate::x)` is a visibility, not an import, and is skipped.
fn crate_paths(code: &str) -> Vec<(usize, &str)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate") {
        let end = at + "crate".len();
        if (at > 0 && is_ident(bytes[at - 1])) || bytes.get(end).is_some_and(|&b| is_ident(b)) {
            continue;
        }
        if code[..at].trim_end().ends_with("in")
            && code[..at]
                .trim_end()
                .trim_end_matches("in")
                .trim_end()
                .ends_with('(')
        {
            continue;
        }
        let Some(after) = path_sep(code, end) else {
            continue;
        };
        if bytes.get(after) == Some(&b'{') {
            group_items(code, after, &mut found);
        } else if let Some(x) = ident_at(code, after) {
            found.push((after, x));
        }
    }
    found
}

/// The offset after `::` (whitespace allowed around it), if one follows `from`.
fn path_sep(code: &str, from: usize) -> Option<usize> {
    let rest = &code[from..];
    let trimmed = rest.trim_start().strip_prefix("::")?;
    let after = from + rest.len() - trimmed.len();
    Some(after + trimmed.len() - trimmed.trim_start().len())
}

fn ident_at(code: &str, at: usize) -> Option<&str> {
    let len = code[at..].bytes().take_while(|&b| is_ident(b)).count();
    (len > 0).then(|| &code[at..at + len])
}

/// The first name of each item in the `{ .. }` group opening at `open`.
fn group_items<'a>(code: &'a str, open: usize, found: &mut Vec<(usize, &'a str)>) {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut item_start = true;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => {
                depth += 1;
                item_start = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            b',' if depth == 1 => item_start = true,
            _ if b.is_ascii_whitespace() => {}
            _ if item_start && depth == 1 => {
                item_start = false;
                if let Some(x) = ident_at(code, j).filter(|x| *x != "self") {
                    found.push((j, x));
                }
            }
            _ => {}
        }
    }
}

fn file_sizes(
    rules: &Rules,
    text: &str,
    tree: &Tree,
    tests: &BTreeSet<String>,
    out: &mut Vec<Violation>,
) {
    let max = rules.max_lines;
    let lines = |path: &str| -> Option<usize> {
        let file = tree.get(path).filter(|_| !tests.contains(path))?;
        Some(file.code_lines())
    };
    for path in tree.keys() {
        let Some(n) = lines(path) else { continue };
        let listed = rules.long_files.keys().any(|k| k.get_ref() == path);
        if n > max && !listed {
            out.push(Violation {
                rule: Rule::FileSize,
                path: path.clone(),
                line: None,
                message: format!(
                    "{n} lines of non-test code (limit {max}): split it, or say in \
                     tidy.toml [long_files] why it is one file"
                ),
            });
        }
    }
    for (path, reason) in &rules.long_files {
        let line = Some(line_in(text, path.span().start));
        let message = match lines(path.get_ref()) {
            _ if reason.trim().is_empty() => "[long_files] entry has no reason".to_string(),
            None if tests.contains(path.get_ref()) => {
                "[long_files] entry for test code, which is not counted: remove it".to_string()
            }
            None => "[long_files] entry for a file that does not exist: remove it".to_string(),
            Some(n) if n <= max => format!(
                "[long_files] entry for a file of {n} lines of non-test code, within {max}: \
                 remove it"
            ),
            Some(_) => continue,
        };
        out.push(Violation {
            rule: Rule::FileSize,
            path: "tidy.toml".into(),
            line,
            message: format!("\"{}\": {message}", path.get_ref()),
        });
    }
}

/// `Command::new` in product code, outside the files `[forks]` lists with a reason: nftjail talks
/// netlink and never forks (`.clippy.toml` says the same for `std::process::Command::new`; this
/// also catches tokio's and any re-export).
fn forks(rules: &Rules, tree: &Tree, tests: &BTreeSet<String>, out: &mut Vec<Violation>) {
    for (path, reason) in &rules.forks {
        if reason.trim().is_empty() || !tree.contains_key(path) {
            out.push(Violation {
                rule: Rule::NoForks,
                path: "tidy.toml".into(),
                line: None,
                message: format!("[forks] \"{path}\": needs a reason and an existing file"),
            });
        }
    }
    for (path, file) in tree {
        if !path.starts_with("src/") || tests.contains(path) || rules.forks.contains_key(path) {
            continue;
        }
        let bytes = file.code.as_bytes();
        for (at, _) in file.code.match_indices("Command") {
            let end = at + "Command".len();
            if (at > 0 && is_ident(bytes[at - 1])) || file.is_test(at) {
                continue;
            }
            let Some(after) = path_sep(&file.code, end) else {
                continue;
            };
            if ident_at(&file.code, after) == Some("new") {
                out.push(Violation {
                    rule: Rule::NoForks,
                    path: path.clone(),
                    line: Some(file.line_of(at)),
                    message: "`Command::new` forks a process; nftjail never forks \
                              (only tests/ and xtask/ may)"
                        .into(),
                });
            }
        }
    }
}
