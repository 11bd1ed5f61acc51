//! Scenario 1b: ten jails on one file, through the daemon, timed from a
//! rotation of the whole scenario-1 file until its last line's ban is in the
//! kernel.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::daemon::{Daemon, Netns};
use super::report::{human, Row, Targets};
use super::Mode;
use crate::nl;

/// Scenario 1b on the scenario-1 `log` of `lines` lines.
pub(super) fn ten_jails_section(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    log: &Path,
    lines: usize,
    targets: &mut Targets,
) -> Result<()> {
    let ten = ten_jails(nftjail, dir, log, if mode == Mode::Smoke { 1 } else { 3 })?;
    let _ = writeln!(
        report,
        "\n### 1b. Ten jails (ten different filters of our library) on the same {lines}-line file, through the daemon\n\n\
         Time from renaming the file over the daemon's log (a rotation: the daemon reads the new file from its start; the file is written and synced to disk before the clock starts) until the ban decided by a marker line at its end is in the kernel.\n\n\
         | runs | median time | median rate | range | CPU time, all threads |\n|---|---|---|---|---|\n| {} | {:.3} s | {} | {} – {} | {} |\n\n\
         Jails: {}. Target ≥ 2 M lines/s.",
        ten.runs.len(),
        ten.median(),
        human(ten.work / ten.median(), "lines/s"),
        human(ten.work / ten.runs.iter().copied().fold(0.0, f64::max), "lines/s"),
        human(ten.work / ten.runs.iter().copied().fold(f64::INFINITY, f64::min), "lines/s"),
        ten.median_cpu().map_or("—".to_string(), |c| format!("{c:.3} s")),
        TEN_FILTERS.join(", ")
    );
    let ten_rate = ten.work / ten.median();
    targets.add(
        "10 jails on one file ≥ 2 M lines/s",
        human(ten_rate, "lines/s"),
        ten_rate >= 2e6,
    );
    Ok(())
}

/// Ten of our library's filters, all reading the mail log.
const TEN_FILTERS: [&str; 10] = [
    "postfix-sasl",
    "postfix",
    "dovecot",
    "sasl",
    "sshd",
    "sshd-aggressive",
    "exim",
    "courier-auth",
    "cyrus-imap",
    "roundcube-auth",
];

/// A marker address no generated line uses.
const MARKER: &str = "10.255.255.254";

/// The daemon with ten jails on one file: the whole scenario-1 file, then
/// one sshd failure from [`MARKER`], replaces its log; the `sshd` jail bans on
/// the first failure, and the file is read and judged in order, so the
/// marker's element in the kernel means every line before it was matched by
/// all ten jails. Also checks the postfix-sasl jail banned every IPv4
/// attacker of the file.
pub(super) fn ten_jails(nftjail: &Path, dir: &Path, input: &Path, runs: usize) -> Result<Row> {
    let ours = TEN_FILTERS.map(|f| (f, f));
    ten_jails_with(nftjail, dir, input, runs, &ours)
}

/// Ten stock fail2ban filter files on the mail log, named as the jails of
/// [`TEN_FILTERS`] they stand for where there is one: what
/// `import-fail2ban` gives an admin coming from fail2ban.
pub(super) const TEN_FAIL2BAN: [(&str, &str); 10] = [
    ("postfix-sasl", "fail2ban:postfix[mode=auth]"),
    ("postfix", "fail2ban:postfix"),
    ("dovecot", "fail2ban:dovecot"),
    ("sieve", "fail2ban:sieve"),
    ("sshd", "fail2ban:sshd"),
    ("sshd-aggressive", "fail2ban:sshd[mode=aggressive]"),
    ("exim", "fail2ban:exim"),
    ("courier-auth", "fail2ban:courier-auth"),
    ("cyrus-imap", "fail2ban:cyrus-imap"),
    ("sendmail-auth", "fail2ban:sendmail-auth"),
];

/// [`ten_jails`] with the given jails (name, filter): one named `sshd`
/// must ban the marker, one named `postfix-sasl` every SASL attacker.
pub(super) fn ten_jails_with(
    nftjail: &Path,
    dir: &Path,
    input: &Path,
    runs: usize,
    jails: &[(&str, &str)],
) -> Result<Row> {
    use std::io::Write;
    let text = std::fs::read(input)?;
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    // The IPv4 attackers with at least maxretry (5) SASL failures in the file.
    let mut failures: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        if !line.ends_with(b"authentication failed: authentication failure") {
            continue;
        }
        let addr = line
            .split(|&b| b == b'[')
            .nth(2)
            .and_then(|r| r.split(|&b| b == b']').next());
        if let Some(a) = addr.filter(|a| a.contains(&b'.')) {
            *failures.entry(a).or_default() += 1;
        }
    }
    let v4_banned: Vec<Ipv4Addr> = failures
        .iter()
        .filter(|(_, &n)| n >= 5)
        .filter_map(|(a, _)| std::str::from_utf8(a).ok()?.parse().ok())
        .collect();
    let mut row = Row {
        tool: "nftjail daemon, 10 jails".into(),
        command: String::new(),
        runs: Vec::new(),
        work: lines as f64,
        unit: "lines/s",
        note: String::new(),
        cpu: Vec::new(),
    };
    for run in 0..runs {
        let tag = format!("ten-{run}");
        // A store left by an earlier call would restore the marker's ban.
        let _ = std::fs::remove_dir_all(dir.join(format!("{tag}-state")));
        let log = dir.join(format!("{tag}.log"));
        std::fs::write(&log, "")?;
        let mut cfg = format!(
            "[daemon]\nsocket = \"{}\"\n",
            dir.join(format!("{tag}.sock")).display()
        );
        for (name, f) in jails {
            let maxretry = if *name == "sshd" { 1 } else { 5 };
            let _ = write!(
                cfg,
                "[jail.{name}]\nfilter = \"{f}\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = {maxretry}\nfindtime = \"1h\"\nbantime = \"1h\"\n",
                log.display()
            );
        }
        let d = Daemon::start_with(nftjail, dir, &tag, &cfg, log, Netns::new("ten")?)?;
        let mut probe = nl::Probe::open(&d.ns.0)?;
        let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
        let marker =
            format!("{now} mx1 sshd[77]: Failed password for root from {MARKER} port 2222 ssh2\n");
        // The whole file is written beside the log first and then renamed
        // over it, as a rotation would: the daemon reads the new file from
        // its start, so the time is the daemon's reading alone, not also
        // the copy of 100+ MB into the page cache that an append would be.
        let next = dir.join(format!("{tag}.next"));
        let mut file = std::fs::File::create(&next)?;
        file.write_all(&text)?;
        file.write_all(marker.as_bytes())?;
        // On disk before the clock starts: the kernel writing back 100+ MB
        // of the bench's own write would otherwise run beside the daemon's
        // reading and take CPU from it (the other tools read a file written
        // back long before).
        file.sync_all()?;
        drop(file);
        let pid = d.child.id();
        let cpu = super::cpu::threads_cpu(pid);
        let start = Instant::now();
        std::fs::rename(&next, &d.log)?;
        let seen = probe
            .wait(
                Duration::from_micros(500),
                start + Duration::from_secs(300),
                |p| p.has("nftjail", "sshd-v4", MARKER.parse()?),
            )?
            .context("ten jails: the marker's ban did not reach the kernel within 300 s")?;
        row.runs.push((seen - start).as_secs_f64());
        row.cpu.push(super::cpu::threads_cpu(pid) - cpu);
        nl::expect_all(
            &mut probe,
            "nftjail",
            "postfix-sasl-v4",
            v4_banned.iter().copied(),
        )?;
    }
    Ok(row)
}
