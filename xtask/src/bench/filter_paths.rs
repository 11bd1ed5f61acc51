//! `cargo xtask bench --only-filter-paths [--baseline BIN]`: the ways one
//! failregex reaches nftjail, side by side on the scenario-1 mail log: a
//! built-in filter, the same regex inline in a filter file of ours, the
//! same regex in a fail2ban filter file, fail2ban-rs with it; then ten
//! jails on ten stock fail2ban filter files through the daemon. With
//! `--baseline`, every nftjail row runs that binary too, alternating with
//! the current one, so both see the same load.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use super::ten_jails::{ten_jails_with, TEN_FAIL2BAN};
use super::{time, which};

/// A deployment's Zimbra SASL failregex, as its admin wrote it.
const ZIMBRA: &str = r"postfix/submission/smtpd\[\d+\]: warning: .*\[<HOST>\]: SASL \w+ authentication failed: authentication failure$";

/// Best of `runs` timed runs of `make()`, each checked to match `expected`
/// lines (±5%; None: any), the number read after `marker` (empty: the
/// whole output); and that number.
fn best(
    runs: usize,
    expected: Option<u64>,
    marker: &str,
    make: &dyn Fn() -> Command,
) -> Result<(f64, u64)> {
    let mut best = f64::INFINITY;
    let mut count = 0;
    for _ in 0..runs {
        let (secs, out) = time(&mut make())?;
        // An empty marker: the output is the count (grep -c).
        let after = if marker.is_empty() {
            Some(out.as_str())
        } else {
            out.split(marker).nth(1)
        };
        let got: u64 = after
            .map(|r| {
                r.trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        if let Some(want) = expected.filter(|&w| got.abs_diff(w) > w / 20 + 5) {
            bail!("{:?}: matched {got}, expected ~{want}", make());
        }
        count = got;
        best = best.min(secs);
    }
    Ok((best, count))
}

pub(super) fn filter_paths(
    nftjail: &Path,
    baseline: Option<&Path>,
    dir: &Path,
    log: &Path,
    lines: usize,
) -> Result<String> {
    let sasl = (lines as f64 * 0.05) as u64;
    let ours = dir.join("zimbra-inline.toml");
    std::fs::write(&ours, format!("failregex = ['{ZIMBRA}']\n"))?;
    let theirs = dir.join("zimbra-f2b.conf");
    std::fs::write(&theirs, format!("[Definition]\nfailregex = {ZIMBRA}\n"))?;
    // The inline regex's count is what the same regex must find by the
    // other paths (the built-in filter reads more forms of the line).
    let (_, zimbra) = best(1, None, "matched: ", &|| {
        let mut c = Command::new(nftjail);
        c.arg("test").arg(&ours).arg(log);
        c
    })?;
    if zimbra == 0 {
        bail!("the Zimbra regex matched nothing in {}", log.display());
    }
    let specs = [
        (
            "built-in zimbra-submission",
            "zimbra-submission".to_string(),
            None,
        ),
        ("inline failregex", ours.display().to_string(), Some(zimbra)),
        (
            "fail2ban filter file",
            theirs.display().to_string(),
            Some(zimbra),
        ),
        (
            "fail2ban:postfix[mode=auth]",
            "fail2ban:postfix[mode=auth]".to_string(),
            Some(sasl),
        ),
    ];
    let mut out = String::from("| path | best of 3 | vs fail2ban-rs |");
    out += if baseline.is_some() {
        " baseline |\n|---|---|---|---|\n"
    } else {
        "\n|---|---|---|\n"
    };
    let pad = if baseline.is_some() { " |" } else { "" };
    if let Some(grep) = which("grep") {
        let (secs, n) = best(3, Some(zimbra), "", &|| {
            let mut c = Command::new(&grep);
            c.arg("-cP").arg(grep_regex(ZIMBRA)).arg(log);
            c
        })?;
        out += &format!("| `grep -cP`, the same regex | {secs:.3} s | ({n} lines) |{pad}\n");
    }
    let rs = match which("fail2ban-rs") {
        Some(bin) => {
            let cfg = dir.join("f2brs-zimbra.toml");
            std::fs::write(
                &cfg,
                format!(
                    "[global]\nstate_file = \"{d}/f2brs-z.bin\"\nsocket_path = \"{d}/f2brs-z.sock\"\n\n[jail.zimbra]\nlog_path = \"{l}\"\ndate_format = \"syslog\"\nfilter = ['{ZIMBRA}']\n",
                    d = dir.display(),
                    l = log.display()
                ),
            )?;
            // Counted as it counts (it leaves out some lines ours count):
            // reported, not checked.
            let (secs, n) = best(3, None, "Matches:", &|| {
                let mut c = Command::new(&bin);
                c.arg("-c").arg(&cfg).arg("dry-run").arg(log);
                c
            })?;
            out += &format!("| fail2ban-rs dry-run | {secs:.3} s | 1× ({n} matches) |{pad}\n");
            Some(secs)
        }
        None => None,
    };
    for (label, spec, expected) in specs {
        let run = |bin: &Path| -> Result<f64> {
            let (secs, _) = best(1, expected, "matched: ", &|| {
                let mut c = Command::new(bin);
                c.arg("test").arg(&spec).arg(log);
                c
            })?;
            Ok(secs)
        };
        let (mut now, mut before) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            if let Some(b) = baseline {
                before = before.min(run(b)?);
            }
            now = now.min(run(nftjail)?);
        }
        let vs = |s: f64| rs.map_or("—".to_string(), |r| format!("{:.2}×", r / s));
        out += &format!("| nftjail, {label} | {now:.3} s | {} |", vs(now));
        if baseline.is_some() {
            out += &format!(" {before:.3} s ({}) |", vs(before));
        }
        out += "\n";
    }
    let ten = |bin: &Path| -> Result<f64> {
        let row = ten_jails_with(bin, dir, log, 1, &TEN_FAIL2BAN)?;
        Ok(row.runs.iter().copied().fold(f64::INFINITY, f64::min))
    };
    let (mut now, mut before) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        if let Some(b) = baseline {
            before = before.min(ten(b)?);
        }
        now = now.min(ten(nftjail)?);
    }
    out += &format!(
        "| nftjail, ten jails on ten stock fail2ban filter files, through the daemon | {now:.3} s ({:.2} M lines/s) | — |",
        lines as f64 / now / 1e6
    );
    if baseline.is_some() {
        out += &format!(
            " {before:.3} s ({:.2} M lines/s) |",
            lines as f64 / before / 1e6
        );
    }
    out += "\n";
    Ok(out)
}

/// `<HOST>` as grep -P reads it: any address-like text between the brackets.
fn grep_regex(fail2ban: &str) -> String {
    fail2ban.replace("<HOST>", "[0-9a-fA-F.:]+")
}
