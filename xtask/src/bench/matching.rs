//! Scenario 1, matching: `nftjail test` on the generated mail log beside
//! `grep -cP` with the same regex, fail2ban-regex and fail2ban-rs, each
//! checked to find the failures the generator wrote.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use super::fail2ban_rs::FAIL2BAN_RS_POSTFIX;
use super::report::{Row, Targets};
use super::{time, which, Mode};

/// The number right after `marker` in a tool's output (the whole output when
/// `marker` is empty); 0 when there is none.
fn number_after(out: &str, marker: &str) -> u64 {
    let rest = if marker.is_empty() {
        Some(out)
    } else {
        out.split(marker).nth(1)
    };
    rest.map(|r| {
        r.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    })
    .and_then(|d| d.parse().ok())
    .unwrap_or(0)
}

/// Scenario 1: matching the `lines`-line mail `log` with each tool installed.
pub(super) fn matching(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    log: &Path,
    lines: usize,
    targets: &mut Targets,
) -> Result<()> {
    let runs = if mode == Mode::Smoke { 1 } else { 5 };
    let mut rows = Vec::new();
    let regex = String::from_utf8(
        Command::new(nftjail)
            .args(["test", "postfix-sasl", "-", "--print-regex"])
            .output()?
            .stdout,
    )?;
    let regex = regex.trim().to_string();
    let expected = (lines as f64 * 0.05) as u64;

    let mut row = |tool: &str,
                   note: &str,
                   runs: usize,
                   mut make: Box<dyn FnMut() -> Command>,
                   check: &dyn Fn(&str) -> Result<()>|
     -> Result<()> {
        let mut times = Vec::new();
        let mut shown = String::new();
        for _ in 0..runs {
            let mut cmd = make();
            shown = format!("{cmd:?}").replace('"', "");
            if tool == "grep -cP" {
                shown = "grep -cP \"$(nftjail test postfix-sasl - --print-regex)\" mail.log".into();
            }
            let (secs, out) = time(&mut cmd)?;
            check(&out)?;
            times.push(secs);
        }
        rows.push(Row {
            tool: tool.into(),
            command: shown
                .replace(&*dir.to_string_lossy(), "")
                .replace(&*nftjail.to_string_lossy(), "nftjail")
                .trim_start_matches('/')
                .chars()
                .take(160)
                .collect(),
            runs: times,
            work: lines as f64,
            unit: "lines/s",
            note: note.into(),
            cpu: Vec::new(),
        });
        Ok(())
    };
    // Every tool must find about the 5% the generator wrote, or its speed means nothing.
    let expect = |got: u64| -> Result<()> {
        if got.abs_diff(expected) <= expected / 20 + 5 {
            Ok(())
        } else {
            bail!("matched {got}, expected ~{expected}")
        }
    };
    {
        let (n, l) = (nftjail.to_path_buf(), log.to_path_buf());
        row(
            "nftjail test",
            "postfix-sasl, one pass",
            runs,
            Box::new(move || {
                let mut c = Command::new(&n);
                c.args(["test", "postfix-sasl"]).arg(&l);
                c
            }),
            &|out| expect(number_after(out, "matched: ")),
        )?;
    }
    {
        let (r, l) = (regex.clone(), log.to_path_buf());
        row(
            "grep -cP",
            "same regex",
            runs,
            Box::new(move || {
                let mut c = Command::new("grep");
                c.arg("-cP").arg(&r).arg(&l);
                c
            }),
            &|out| expect(number_after(out, "")),
        )?;
    }
    if let Some(f2b) = which("fail2ban-regex") {
        let l = log.to_path_buf();
        let f2b_runs = if mode == Mode::Full { 3 } else { 1 };
        row(
            "fail2ban-regex",
            "stock filter postfix[mode=auth]",
            f2b_runs,
            Box::new(move || {
                let mut c = Command::new(&f2b);
                c.arg(&l)
                    .arg("/etc/fail2ban/filter.d/postfix.conf[mode=auth]");
                c
            }),
            &|out| expect(number_after(out, "Failregex: ")),
        )?;
    } else {
        let _ = writeln!(
            report,
            "fail2ban-regex not installed (apt-get install fail2ban): left out.\n"
        );
    }
    if let Some(f2brs) = which("fail2ban-rs") {
        let cfg = dir.join("fail2ban-rs.toml");
        std::fs::write(
            &cfg,
            format!(
                "[global]\nstate_file = \"{d}/f2brs-state.bin\"\nsocket_path = \"{d}/f2brs.sock\"\n\n[jail.postfix]\nlog_path = \"{l}\"\ndate_format = \"syslog\"\nfilter = ['{FAIL2BAN_RS_POSTFIX}']\n",
                d = dir.display(),
                l = log.display()
            ),
        )?;
        let l = log.to_path_buf();
        row(
            "fail2ban-rs dry-run",
            "1.5.4, equivalent pattern",
            runs,
            Box::new(move || {
                let mut c = Command::new(&f2brs);
                c.arg("-c").arg(&cfg).arg("dry-run").arg(&l);
                c
            }),
            &|out| expect(number_after(out, "Matches:")),
        )?;
    } else {
        let _ = writeln!(
            report,
            "fail2ban-rs not installed (cargo install fail2ban-rs): left out.\n"
        );
    }
    let _ = writeln!(
        report,
        "## 1. Matching: {lines} lines, 5% Postfix SASL failures\n"
    );
    let _ = writeln!(report, "| tool | runs | median time | median rate | range | note | command |\n|---|---|---|---|---|---|---|");
    let base = rows
        .iter()
        .find(|r| r.tool == "grep -cP")
        .map(|r| r.work / r.median());
    for r in &rows {
        let _ = writeln!(report, "{}", r.cells());
    }
    if let (Some(grep), Some(nj)) = (base, rows.first().map(|r| r.work / r.median())) {
        let pct = 100.0 * nj / grep;
        let _ = writeln!(report, "\nnftjail / grep -cP = {pct:.0}%");
        targets.add(
            "matching ≥ 50% of grep -cP",
            format!("{pct:.0}%"),
            pct >= 50.0,
        );
        if let Some(rs) = rows.iter().find(|r| r.tool == "fail2ban-rs dry-run") {
            let x = nj / (rs.work / rs.median());
            let _ = writeln!(report, "nftjail / fail2ban-rs = {x:.2}×");
            targets.add(
                "matching faster than fail2ban-rs",
                format!("{x:.2}×"),
                x > 1.0,
            );
        }
        if let Some(f2b) = rows.iter().find(|r| r.tool == "fail2ban-regex") {
            let x = nj / (f2b.work / f2b.median());
            let _ = writeln!(report, "nftjail / fail2ban-regex = {x:.0}×");
            targets.add(
                "matching ≥ 60× fail2ban-regex",
                format!("{x:.0}×"),
                x >= 60.0,
            );
        }
    }
    Ok(())
}
