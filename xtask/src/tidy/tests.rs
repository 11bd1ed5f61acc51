//! Each rule on a small tree written to a temporary directory: once broken (the violation is
//! reported) and once with the same text where it does not count (a comment, a literal, test
//! code), which is where a text scanner would go wrong.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use super::check;

const RULES: &str = r#"
max_lines = 700

[layers]
message = []
rules = []   # declared before it exists: fine
filter = ["message"]
enforce = ["message", "rules"]
daemon = ["*"]
main = ["*"]
cli = ["*"]
"#;

/// A clean tree; each test adds or replaces files to break one rule.
const CLEAN: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        "pub mod message;\npub mod filter;\npub mod enforce;\npub mod daemon;\n",
    ),
    ("src/message.rs", "//! Messages.\npub struct Failure;\n"),
    (
        "src/filter/mod.rs",
        "use crate::message::Failure;\nuse super::filter::x;\npub fn f() -> Failure { Failure }\n",
    ),
    (
        "src/enforce.rs",
        "use crate::{message, rules::Port};\nuse crate::AddrMap;\n",
    ),
    (
        "src/daemon/mod.rs",
        "use crate::{enforce, filter::{self, f}};\nfn run() { crate::message::Failure; }\n",
    ),
    ("src/main.rs", "mod cli;\nuse nftjail::daemon;\n"),
    ("src/cli/mod.rs", "use crate::daemon;\n"),
    (
        "xtask/src/main.rs",
        "use std::process::Command;\nfn main() { Command::new(\"cargo\"); }\n",
    ),
    (
        "tests/kernel.rs",
        "fn t() { std::process::Command::new(\"nft\"); }\n",
    ),
];

fn tree(rules: &str, changes: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "tidy.toml", rules);
    for (path, text) in CLEAN.iter().chain(changes) {
        write(dir.path(), path, text);
    }
    dir
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

fn violations(rules: &str, changes: &[(&str, &str)]) -> Vec<String> {
    let dir = tree(rules, changes);
    let report = check(dir.path()).expect("tidy runs");
    report.violations.iter().map(ToString::to_string).collect()
}

#[track_caller]
fn assert_reports(found: &[String], expected: &[&str]) {
    assert_eq!(found, expected, "violations differ");
}

fn lines(n: usize) -> String {
    (0..n).map(|i| format!("const C{i}: u8 = 0;\n")).collect()
}

#[test]
fn clean_tree_passes() {
    assert_reports(&violations(RULES, &[]), &[]);
}

#[test]
fn forbidden_use_is_reported() {
    let found = violations(
        RULES,
        &[(
            "src/filter/mod.rs",
            "use crate::message::Failure;\nuse crate::enforce::Ban;\n",
        )],
    );
    assert_reports(
        &found,
        &["src/filter/mod.rs:2: module `filter` may not import `enforce` (tidy.toml [layers])"],
    );
}

#[test]
fn grouped_use_pub_use_and_expression_paths_are_reported() {
    let text = "\
use crate::{
    message::Failure,
    enforce::{self, Ban},
};
pub use crate :: daemon::Run;
fn f() {
    let x = crate::enforce::ban(1); let y = crate::enforce::ban(2);
}
";
    let found = violations(RULES, &[("src/filter/deep/inner.rs", text)]);
    assert_reports(
        &found,
        &[
            "src/filter/deep/inner.rs:3: module `filter` may not import `enforce` (tidy.toml [layers])",
            "src/filter/deep/inner.rs:5: module `filter` may not import `daemon` (tidy.toml [layers])",
            "src/filter/deep/inner.rs:7: module `filter` may not import `enforce` (tidy.toml [layers])",
        ],
    );
}

#[test]
fn imports_in_comments_literals_and_test_code_are_not_reported() {
    let text = r####"//! See crate::enforce for the other side.
/// Unlike [`crate::enforce::Ban`], this is pure.
// use crate::enforce;
/* use crate::enforce;
   /* nested */ use crate::enforce; */
const A: &str = "use crate::enforce; \" still crate::enforce";
const B: &str = r#"use crate::enforce; " still inside"#;
const C: &[u8] = br##"crate::enforce "# "##;
const D: char = '"';
const E: char = '{';
fn lifetimes<'a>(x: &'a str) -> &'a str { x }
pub(in crate::filter) fn visible() {}
#[cfg(test)]
use crate::enforce::Ban;
#[cfg(test)]
#[allow(unused)]
fn helper() -> crate::enforce::Ban { todo!() }
#[cfg(all(test, target_os = "linux"))]
mod linux { use crate::enforce; }
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{daemon, enforce::Ban};
    fn braces() -> char { '}' }
    const S: &str = "}";
}
"####;
    let found = violations(RULES, &[("src/filter/mod.rs", text)]);
    assert_reports(&found, &[]);

    // What follows a test module is product code again.
    let after = format!("{text}use crate::enforce;\n");
    let found = violations(RULES, &[("src/filter/mod.rs", &after)]);
    assert_reports(
        &found,
        &["src/filter/mod.rs:27: module `filter` may not import `enforce` (tidy.toml [layers])"],
    );

    // `not(test)` and `any(test, ..)` code is built outside tests: it counts.
    let text =
        "#[cfg(not(test))]\nuse crate::enforce;\n#[cfg(any(test, unix))]\nuse crate::daemon;\n";
    let found = violations(RULES, &[("src/filter/mod.rs", text)]);
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn test_module_files_may_import_anything() {
    let changes = [
        ("src/filter/mod.rs", "#[cfg(test)]\nmod checks;\n"),
        ("src/filter/checks.rs", "use crate::enforce;\n"),
        ("src/filter/tests.rs", "use crate::daemon;\n"),
        ("src/filter/only.rs", "#![cfg(test)]\nuse crate::daemon;\n"),
    ];
    assert_reports(&violations(RULES, &changes), &[]);
}

#[test]
fn undeclared_module_is_reported() {
    let found = violations(
        RULES,
        &[
            ("src/extra.rs", "use crate::enforce;\n"),
            ("src/more/mod.rs", "\n"),
        ],
    );
    assert_reports(
        &found,
        &[
            "src/extra.rs: module `extra` is not in tidy.toml [layers]: add it with the modules it may import",
            "src/more/: module `more` is not in tidy.toml [layers]: add it with the modules it may import",
        ],
    );
}

#[test]
fn cycles_and_unknown_names_in_layers_are_reported() {
    let rules = RULES
        .replace("message = []", "message = [\"filter\"]")
        .replace("rules = []", "rules = [\"enforce\", \"mesage\"]");
    let found = violations(&rules, &[]);
    assert_reports(
        &found,
        &[
            "tidy.toml:6: [layers] `rules` lists `mesage`, which is not declared in [layers]",
            "tidy.toml:7: [layers] cycle: filter -> message -> filter (layers only look down: drop one of these imports)",
            "tidy.toml:8: [layers] cycle: enforce -> rules -> enforce (layers only look down: drop one of these imports)",
        ],
    );
}

#[test]
fn importing_a_top_layer_is_a_cycle() {
    let rules = RULES.replace(
        "filter = [\"message\"]",
        "filter = [\"message\", \"daemon\"]",
    );
    let found = violations(&rules, &[]);
    assert_reports(
        &found,
        &["tidy.toml:9: [layers] cycle: daemon -> filter -> daemon (layers only look down: drop one of these imports)"],
    );
}

#[test]
fn long_file_without_a_reason_is_reported() {
    let long = lines(701);
    let found = violations(
        RULES,
        &[("src/filter/big.rs", &long), ("xtask/src/bench.rs", &long)],
    );
    assert_reports(
        &found,
        &[
            "src/filter/big.rs: 701 lines of non-test code (limit 700): split it, or say in tidy.toml [long_files] why it is one file",
            "xtask/src/bench.rs: 701 lines of non-test code (limit 700): split it, or say in tidy.toml [long_files] why it is one file",
        ],
    );

    // At the limit, long only through tests, or a test file: not reported.
    let tested = format!(
        "{}#[cfg(test)]\nmod tests {{\n{}}}\n",
        lines(690),
        lines(100)
    );
    let changes = [
        ("src/filter/big.rs", lines(700)),
        ("src/filter/tested.rs", tested),
        ("src/filter/tests.rs", lines(900)),
        (
            "src/enforce.rs",
            format!("#[cfg(test)]\nmod slow;\n{}", lines(10)),
        ),
        ("src/enforce/slow.rs", lines(900)),
    ];
    let changes: Vec<(&str, &str)> = changes.iter().map(|(p, t)| (*p, t.as_str())).collect();
    assert_reports(&violations(RULES, &changes), &[]);
}

#[test]
fn long_files_entries_need_a_reason_and_go_stale() {
    let rules = format!(
        "{RULES}\n[long_files]\n\
         \"src/filter/big.rs\" = \"one state machine\"\n\
         \"src/filter/mod.rs\" = \"was long once\"\n\
         \"src/filter/gone.rs\" = \"was long once\"\n\
         \"src/filter/tests.rs\" = \"tests are not counted\"\n\
         \"src/enforce.rs\" = \" \"\n"
    );
    let long = lines(701);
    let found = violations(
        &rules,
        &[
            ("src/filter/big.rs", &long),
            ("src/filter/tests.rs", &long),
            ("src/enforce.rs", &long),
        ],
    );
    assert_reports(
        &found,
        &[
            "tidy.toml:15: \"src/filter/mod.rs\": [long_files] entry for a file of 3 lines of non-test code, within 700: remove it",
            "tidy.toml:16: \"src/filter/gone.rs\": [long_files] entry for a file that does not exist: remove it",
            "tidy.toml:17: \"src/filter/tests.rs\": [long_files] entry for test code, which is not counted: remove it",
            "tidy.toml:18: \"src/enforce.rs\": [long_files] entry has no reason",
        ],
    );
}

#[test]
fn command_new_in_product_code_is_reported() {
    let text = "\
use std::process::Command;
fn a() { Command::new(\"nft\"); }
fn b() { std::process::Command::new(\"ip\"); }
fn c() { tokio::process::Command :: new(\"ufw\"); }
";
    let found = violations(RULES, &[("src/enforce.rs", text)]);
    let msg = "`Command::new` forks a process; nftjail never forks (only tests/ and xtask/ may)";
    assert_reports(
        &found,
        &[
            &format!("src/enforce.rs:2: {msg}"),
            &format!("src/enforce.rs:3: {msg}"),
            &format!("src/enforce.rs:4: {msg}"),
        ],
    );
}

#[test]
fn command_new_in_comments_literals_and_tests_is_not_reported() {
    let text = r#"//! Never `Command::new("nft")`.
/* Command::new */
const WHY: &str = "we do not call Command::new(\"nft\")";
const RAW: &str = r"Command::new";
fn builder() -> MyCommand { MyCommand::new() }
#[cfg(test)]
mod tests {
    #[test]
    fn reads_back() { std::process::Command::new("nft"); }
}
"#;
    assert_reports(&violations(RULES, &[("src/enforce.rs", text)]), &[]);
}

/// The scanner on this repository's own code: once comments and literals are blanked, brackets
/// balance in every file, which they would not if a literal or comment were misread.
#[test]
fn every_file_of_this_repository_scans_to_balanced_brackets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository");
    let mut tree = super::Tree::new();
    for dir in ["src", "xtask/src", "tests"] {
        super::read_tree(root, dir, &mut tree).expect("readable tree");
    }
    assert!(tree.len() > 10, "found {} files", tree.len());
    for (path, file) in &tree {
        let mut stack = Vec::new();
        for (at, b) in file.code.bytes().enumerate() {
            match b {
                b'(' | b'[' | b'{' => stack.push(b),
                b')' | b']' | b'}' => {
                    let open = stack.pop();
                    let want = match b {
                        b')' => b'(',
                        b']' => b'[',
                        _ => b'{',
                    };
                    assert_eq!(open, Some(want), "{path}:{}: unbalanced", file.line_of(at));
                }
                _ => {}
            }
        }
        assert!(stack.is_empty(), "{path}: unclosed brackets");
    }
}
