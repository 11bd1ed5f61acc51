#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]
//! `nftjail test`: the real binary over real files, its report and its
//! `--json` lines read back. fail2ban filters are checked against the
//! `# failJSON:` annotations of fail2ban's own sample log (Debian package
//! `fail2ban`, read from the system at test time; missing is a failure).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const SSHD_SAMPLE: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/sshd";

/// Runs `nftjail test ARGS` with `stdin` fed; (exit ok, stdout, stderr).
fn nftjail_test(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("test")
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The binary may stop reading early on an error; that is fine.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Our own filter file: two failregexes (the first with a user group),
/// one ignoreregex.
fn own_filter(dir: &Path) -> PathBuf {
    let path = dir.join("svc.toml");
    std::fs::write(
        &path,
        r#"description = "test service"
failregex = [
    '''svc\[\d+\]: auth failed for (?P<user>\S+) from <HOST>$''',
    '''svc\[\d+\]: bad token from <HOST>$''',
]
ignoreregex = ['''for monitor from''']
"#,
    )
    .unwrap();
    path
}

const LOG: &str = "\
2026-01-02T03:04:05Z mx svc[1]: auth failed for alice from 192.0.2.10
2026-01-02T03:04:06Z mx svc[1]: bad token from 2001:db8::5
# a comment line, skipped as fail2ban-regex skips it

2026-01-02T03:04:07Z mx svc[1]: auth failed for monitor from 192.0.2.11
2026-01-02T03:04:08Z mx svc[1]: auth ok for bob from 192.0.2.12
";

#[test]
fn report_counts_matched_ignored_missed_and_hits_per_regex() {
    let d = tempfile::tempdir().unwrap();
    let filter = own_filter(d.path());
    let (ok, out, err) = nftjail_test(&[filter.to_str().unwrap(), "-"], LOG.as_bytes());
    assert!(ok, "{err}");
    assert!(
        out.contains("Lines: 4 lines, 1 ignored, 2 matched, 1 missed"),
        "{out}"
    );
    assert!(
        out.contains("Results: matched: 2, ignored: 1, missed: 1"),
        "{out}"
    );
    assert!(out.contains("Skipped: 2 comment or empty lines"), "{out}");
    // Regex 1 blamed alice and (ignored) monitor, regex 2 the token line.
    assert!(out.contains("Failregex: 3 total"), "{out}");
    assert!(out.contains("|   1) [2] svc"), "{out}");
    assert!(out.contains("|   2) [1] svc"), "{out}");
    assert!(out.contains("Ignoreregex: 1 total"), "{out}");
    assert!(out.contains("|   1) [1] for monitor from"), "{out}");
    // Dates are read for the three lines a failregex matched.
    assert!(out.contains("Date template hits (of the lines a failregex matched)"));
    assert!(out.contains("|  [3] "), "{out}");
    assert!(out.contains(" lines/s]"), "{out}");
}

#[test]
fn a_files_last_line_without_newline_waits_as_in_the_daemon() {
    let d = tempfile::tempdir().unwrap();
    let filter = own_filter(d.path());
    let log = d.path().join("svc.log");
    let text = LOG.trim_end_matches('\n');
    std::fs::write(&log, text).unwrap();
    let args = [filter.to_str().unwrap(), log.to_str().unwrap()];
    let (ok, out, err) = nftjail_test(&args, b"");
    assert!(ok, "{err}");
    // bob's line is still being written: not judged, and said so.
    assert!(
        out.contains("Lines: 3 lines, 1 ignored, 2 matched, 0 missed"),
        "{out}"
    );
    assert!(out.contains("Unterminated: the last line"), "{out}");
    // From a pipe that ended, the last line counts.
    let (ok, out, err) = nftjail_test(&[args[0], "-"], text.as_bytes());
    assert!(ok, "{err}");
    assert!(out.contains("Lines: 4 lines"), "{out}");
    assert!(!out.contains("Unterminated"), "{out}");
}

#[test]
fn print_options_print_only_their_lines() {
    let d = tempfile::tempdir().unwrap();
    let filter = own_filter(d.path());
    let f = filter.to_str().unwrap();
    let log_lines = |args: &[&str]| -> Vec<String> {
        let (ok, out, err) = nftjail_test(args, LOG.as_bytes());
        assert!(ok, "{err}");
        out.lines()
            .filter(|l| l.starts_with("2026-"))
            .map(str::to_string)
            .collect()
    };
    let matched = log_lines(&[f, "-", "--print-matched"]);
    assert_eq!(matched.len(), 2);
    assert!(matched[0].ends_with("alice from 192.0.2.10"));
    assert!(matched[1].ends_with("from 2001:db8::5"));
    let ignored = log_lines(&[f, "-", "--print-ignored"]);
    assert_eq!(ignored.len(), 1);
    assert!(ignored[0].contains("monitor"));
    let missed = log_lines(&[f, "-", "--print-missed"]);
    assert_eq!(missed.len(), 1);
    assert!(missed[0].contains("auth ok for bob"));
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn json_gives_one_object_per_tested_line_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let filter = own_filter(d.path());
    let (ok, out, err) = nftjail_test(&[filter.to_str().unwrap(), "-", "--json"], LOG.as_bytes());
    assert!(ok, "{err}");
    let v = json_lines(&out);
    assert_eq!(v.len(), 4, "{out}");
    let keys = |o: &Value| {
        (
            o["line"].as_u64().unwrap(),
            o["match"].as_bool().unwrap(),
            o["ignored"].as_bool().unwrap(),
            o["host"].as_str().map(str::to_string),
            o["time"].as_str().map(str::to_string),
            o["user"].as_str().map(str::to_string),
            o["regex"].as_u64(),
        )
    };
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        keys(&v[0]),
        (
            1,
            true,
            false,
            s("192.0.2.10"),
            s("2026-01-02T03:04:05Z"),
            s("alice"),
            Some(1)
        )
    );
    assert_eq!(
        keys(&v[1]),
        (
            2,
            true,
            false,
            s("2001:db8::5"),
            s("2026-01-02T03:04:06Z"),
            None,
            Some(2)
        )
    );
    // Line numbers count the skipped comment and empty lines.
    assert_eq!(
        keys(&v[2]),
        (
            5,
            false,
            true,
            s("192.0.2.11"),
            s("2026-01-02T03:04:07Z"),
            s("monitor"),
            Some(1)
        )
    );
    assert_eq!(
        keys(&v[3]),
        (6, false, false, None, s("2026-01-02T03:04:08Z"), None, None)
    );
    // The report went to stderr.
    assert!(
        err.contains("Results: matched: 2, ignored: 1, missed: 1"),
        "{err}"
    );
}

#[test]
fn built_in_filter_by_name_and_print_regex() {
    let line = "Mar  5 16:01:34 mx1 postfix/submission/smtpd[7]: warning: unknown[192.0.2.77]: \
                SASL LOGIN authentication failed: UGFzc3dvcmQ6\n";
    let (ok, out, err) = nftjail_test(&["postfix-sasl", "-", "--json"], line.as_bytes());
    assert!(ok, "{err}");
    let v = json_lines(&out);
    assert_eq!(v[0]["host"], "192.0.2.77");
    assert_eq!(v[0]["match"], true);
    let (ok, out, _) = nftjail_test(&["postfix-sasl", "-", "--print-regex"], b"");
    assert!(ok);
    assert!(out.contains("SASL"), "{out}");
    let (ok, _, err) = nftjail_test(&["no-such-filter", "-"], b"");
    assert!(!ok);
    assert!(err.contains("no filter \"no-such-filter\""), "{err}");
    let (ok, _, err) = nftjail_test(&["fail2ban:no-such-filter", "-"], b"");
    assert!(!ok);
    assert!(err.contains("no-such-filter.conf"), "{err}");
}

/// The expectations of fail2ban's sample: `# failJSON:` says whether the
/// next line matches and with which host and user; a line without one must
/// not match. Only the first block (default options) without constraints.
fn sample_expectations(text: &str) -> Vec<(u64, Option<Value>)> {
    let mut out = Vec::new();
    let mut pending: Option<Value> = None;
    let mut skip_next = false;
    let mut blocks = 0;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("# filterOptions:") {
            blocks += 1;
            if blocks > 1 {
                break;
            }
            continue;
        }
        if let Some(json) = line.strip_prefix("# failJSON:") {
            let v: Value = serde_json::from_str(json.trim()).unwrap();
            skip_next = v.get("constraint").is_some();
            pending = Some(v);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let expected = pending.take();
        if !std::mem::take(&mut skip_next) {
            out.push((i as u64 + 1, expected));
        }
    }
    out
}

#[test]
fn fail2ban_sshd_through_test_agrees_with_fail2ban_sample() {
    let text = std::fs::read(SSHD_SAMPLE).unwrap_or_else(|e| {
        panic!("{SSHD_SAMPLE}: {e} (install the Debian package fail2ban: cargo xtask ci does)")
    });
    let (ok, out, err) = nftjail_test(&["fail2ban:sshd", "-", "--json"], &text);
    assert!(ok, "{err}");
    let got: std::collections::HashMap<u64, Value> = json_lines(&out)
        .into_iter()
        .map(|v| (v["line"].as_u64().unwrap(), v))
        .collect();
    let expect = sample_expectations(&String::from_utf8_lossy(&text));
    assert!(expect.len() > 60, "sample too short: {}", expect.len());
    let mut matches = 0;
    for (line, want) in &expect {
        let o = &got[line];
        let want_match = want
            .as_ref()
            .and_then(|w| w["match"].as_bool())
            .unwrap_or(false);
        assert_eq!(o["match"], want_match, "line {line}: {o} vs {want:?}");
        if let Some(host) = want.as_ref().and_then(|w| w["host"].as_str()) {
            assert_eq!(o["host"], host, "line {line}");
        }
        if let Some(user) = want.as_ref().and_then(|w| w["user"].as_str()) {
            assert_eq!(o["user"], user, "line {line}");
        }
        matches += usize::from(want_match);
    }
    assert!(matches > 30, "{matches}");
    // The human report names the filter's own regexes and date templates.
    let (ok, out, _) = nftjail_test(&["fail2ban:sshd", "-"], &text);
    assert!(ok);
    assert!(out.contains("(fail2ban filter file)"), "{out}");
    assert!(out.contains("from <HOST>"), "{out}");
    assert!(out.contains("{^LN-BEG}"), "{out}");
}

#[test]
fn hostile_input_never_crashes() {
    let d = tempfile::tempdir().unwrap();
    let filter = own_filter(d.path());
    let mut junk: Vec<u8> = Vec::new();
    junk.extend_from_slice(b"\x00\x00svc[1]: bad token from 192.0.2.1\x00\n");
    junk.extend_from_slice(b"\xff\xfe\xfd svc[1]: bad token from 192.0.2.2\n");
    // A 1 MB line that ends like a failure: cut at 64 KiB, so no match.
    junk.extend(std::iter::repeat_n(b'A', 1 << 20));
    junk.extend_from_slice(b" svc[1]: bad token from 192.0.2.3\n");
    // Pseudo-random bytes, newlines included.
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        junk.push((x >> 16) as u8);
    }
    junk.extend_from_slice(b"\nsvc[1]: bad token from 192.0.2.4");
    for spec in [filter.to_str().unwrap(), "fail2ban:sshd", "postfix-sasl"] {
        let (ok, out, err) = nftjail_test(&[spec, "-", "--json"], &junk);
        assert!(ok, "{spec}: {err}");
        let v = json_lines(&out);
        assert!(v.len() > 3, "{spec}");
        assert!(
            err.contains("Cut: 1 lines longer than 65536 bytes"),
            "{err}"
        );
        if spec.ends_with("svc.toml") {
            let hosts: Vec<&str> = v
                .iter()
                .filter(|o| o["match"] == true)
                .filter_map(|o| o["host"].as_str())
                .collect();
            // The random bytes may not match anything here.
            assert_eq!(hosts, ["192.0.2.2", "192.0.2.4"], "{spec}");
        }
        let (ok, _, err) = nftjail_test(&[spec, "-"], &junk);
        assert!(ok, "{spec}: {err}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    let line = "Mar  5 16:01:34 mx1 postfix/smtpd[7]: connect from unknown[192.0.2.1]\n";
    let input = line.repeat(200_000);
    for args in [
        &["postfix-sasl", "-", "--json"][..],
        &["postfix-sasl", "-", "--print-missed"],
    ] {
        let mut child = Command::new(BIN)
            .arg("test")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(data.as_bytes());
        });
        // Read one line, then go away like `| head -1`.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(
            first.starts_with("{\"line\":1,") || first == line,
            "{first}"
        );
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
}
