//! Scenario 1d: ten jails on one file beside fail2ban-rs with its own ten
//! equivalent filters (from its `gen-config`), on the same file in the same
//! run; nftjail both with ten filters of its library and with the ten stock
//! fail2ban filter files `import-fail2ban` would give an admin.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::report::{human, Row, Targets};
use super::ten_jails::{ten_jails, ten_jails_with, TEN_FAIL2BAN};
use super::{time, which, Mode};

/// The services whose `gen-config` jails fail2ban-rs runs: its filters for
/// the mail host's ten services (what its own template list offers).
const FAIL2BAN_RS_TEN: [&str; 10] = [
    "sshd",
    "postfix",
    "dovecot",
    "courier-auth",
    "cyrus-imap",
    "exim",
    "roundcube-auth",
    "sogo-auth",
    "apache-auth",
    "nginx-auth",
];

/// Scenario 1d: writes its section and its targets.
pub(super) fn ten_side_section(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    log: &Path,
    lines: usize,
    targets: &mut Targets,
) -> Result<()> {
    let runs = if mode == Mode::Smoke { 1 } else { 3 };
    let ours = ten_jails(nftjail, dir, log, runs)?;
    let files = ten_jails_with(nftjail, dir, log, runs, &TEN_FAIL2BAN)?;
    let rs = match which("fail2ban-rs") {
        Some(bin) => Some(fail2ban_rs_ten(&bin, dir, log, lines, runs)?),
        None => None,
    };
    let _ = writeln!(
        report,
        "\n### 1d. Ten jails on the same {lines}-line file beside fail2ban-rs\n\n\
         nftjail through the daemon, timed as in 1b (rotation → the marker's ban in the kernel); \
         fail2ban-rs {} `dry-run` over the same file with the jails its `gen-config` writes for {} \
         (a file analysis: no daemon, no kernel). Median of {runs}. CPU time is every thread's, from the \
         rename to the marker's ban (nftjail: the daemon's threads by the scheduler's count; a file is \
         read on one thread and judged on another) or of the whole run (fail2ban-rs, one thread).\n\n\
         | tool | jails | median time | median rate | vs fail2ban-rs | CPU time | vs fail2ban-rs, CPU |\n|---|---|---|---|---|---|---|",
        super::fail2ban_rs::VERSION,
        FAIL2BAN_RS_TEN.join(", "),
    );
    let vs = |row: &Row| {
        rs.as_ref().map_or("(not installed)".to_string(), |r| {
            format!("{:.2}×", r.median() / row.median())
        })
    };
    let cpu = |row: &Row| {
        row.median_cpu()
            .map_or("—".to_string(), |c| format!("{c:.3} s"))
    };
    let vs_cpu = |row: &Row| match (rs.as_ref().and_then(Row::median_cpu), row.median_cpu()) {
        (Some(r), Some(c)) if c > 0.0 => format!("{:.2}×", r / c),
        _ => "—".to_string(),
    };
    for (label, row) in [
        ("ten filters of our library", &ours),
        (
            "ten stock fail2ban filter files (as `import-fail2ban` writes them)",
            &files,
        ),
    ] {
        let _ = writeln!(
            report,
            "| nftjail | {label} | {:.3} s | {} | {} | {} | {} |",
            row.median(),
            human(row.work / row.median(), "lines/s"),
            vs(row),
            cpu(row),
            vs_cpu(row)
        );
    }
    if let Some(r) = &rs {
        let _ = writeln!(
            report,
            "| fail2ban-rs dry-run | its ten filters | {:.3} s | {} | 1× | {} | 1× |",
            r.median(),
            human(r.work / r.median(), "lines/s"),
            cpu(r),
        );
        for (what, row) in [("library", &ours), ("stock fail2ban files", &files)] {
            let x = r.median() / row.median();
            targets.add(
                &format!("ten jails, {what}: ≥ 3× fail2ban-rs"),
                format!("{x:.2}×"),
                x >= 3.0,
            );
        }
    }
    Ok(())
}

/// fail2ban-rs `dry-run` over `log` with the ten [`FAIL2BAN_RS_TEN`] jails,
/// `runs` times.
fn fail2ban_rs_ten(bin: &Path, dir: &Path, log: &Path, lines: usize, runs: usize) -> Result<Row> {
    let mut cfg = format!(
        "[global]\nstate_file = \"{d}/f2brs-ten.bin\"\nsocket_path = \"{d}/f2brs-ten.sock\"\n\n",
        d = dir.display()
    );
    for service in FAIL2BAN_RS_TEN {
        let out = Command::new(bin)
            .args(["gen-config", service])
            .output()
            .with_context(|| format!("fail2ban-rs gen-config {service}"))?;
        if !out.status.success() {
            bail!("fail2ban-rs gen-config {service} failed");
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            cfg += &toml_line(line, log);
            cfg.push('\n');
        }
        cfg.push('\n');
    }
    let path = dir.join("f2brs-ten.toml");
    std::fs::write(&path, cfg)?;
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..runs {
        let before = super::cpu::children_cpu();
        let (secs, out) = time(
            Command::new(bin)
                .arg("-c")
                .arg(&path)
                .arg("dry-run")
                .arg(log),
        )?;
        if !out.contains("Matches:") {
            bail!("fail2ban-rs dry-run with ten jails printed no matches:\n{out}");
        }
        times.push(secs);
        cpu.push(super::cpu::children_cpu() - before);
    }
    Ok(Row {
        tool: "fail2ban-rs".into(),
        command: format!(
            "fail2ban-rs -c {} dry-run {}",
            path.display(),
            log.display()
        ),
        runs: times,
        work: lines as f64,
        unit: "lines/s",
        note: String::new(),
        cpu,
    })
}

/// One line of `gen-config`'s output for our file: the log path replaced,
/// and a pattern written as a TOML literal string that itself holds a `'`
/// (gen-config writes such a line unparseable) turned into a multi-line
/// literal.
fn toml_line(line: &str, log: &Path) -> String {
    if line.starts_with("log_path") {
        return format!("log_path = \"{}\"", log.display());
    }
    let t = line.trim();
    match t.strip_prefix('\'').and_then(|r| r.strip_suffix("',")) {
        Some(inner) if inner.contains('\'') => format!("    '''{inner}''',"),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_holding_a_quote_becomes_a_multi_line_literal() {
        let log = Path::new("/x/mail.log");
        assert_eq!(
            toml_line("    'Login from '<HOST>.*x',", log),
            "    '''Login from '<HOST>.*x''',"
        );
        assert_eq!(toml_line("    'a <HOST> b',", log), "    'a <HOST> b',");
        assert_eq!(
            toml_line("log_path = \"/var/log/mail.log\"", log),
            "log_path = \"/x/mail.log\""
        );
    }
}
