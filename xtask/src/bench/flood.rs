//! Scenario 1c, a flood: a log in which every line is a failure (a real
//! attack day: many distinct attackers, each failing maxretry times),
//! through the daemon, timed from a rotation of the whole file until the
//! last ban is in the kernel; and what each failure line costs, stage by
//! stage (match, capture and date; track; enforce).

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cpu::{children_cpu, process_cpu};
use super::daemon::{Daemon, Netns};
use super::fail2ban_rs::FAIL2BAN_RS_POSTFIX;
use super::report::{human, Targets};
use super::{time, which, Mode};
use crate::gen::{self, Spec};
use crate::nl;

/// Failures per attacker: the jail's maxretry, so every attacker is banned
/// once, by its last failure.
const MAXRETRY: u32 = 5;

/// Scenario 1c: writes its section and its target.
pub(super) fn flood_section(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    targets: &mut Targets,
) -> Result<()> {
    let lines: u32 = if mode == Mode::Smoke {
        50_000
    } else {
        1_000_000
    };
    let runs = if mode == Mode::Smoke { 1 } else { 3 };
    let f = flood(nftjail, dir, lines, runs)?;
    let n = f64::from(lines);
    let rate = |s: f64| human(n / s, "lines/s");
    let per = |s: f64| format!("{:.0} ns", s * 1e9 / n);
    let _ = writeln!(
        report,
        "\n### 1c. Flood: {lines} lines, every one a Postfix SASL failure, {} attackers ({MAXRETRY} failures each, 10% IPv6), through the daemon\n\n\
         Time from renaming the file (written and synced to disk first) over the daemon's log until every attacker's ban is in the kernel \
         (log backend: until the last line's ban is logged; the run then checks that every attacker's ban was); \
         the file is read and judged in order (one thread reads, another judges); best of {runs}. \
         Each row adds a stage to the one above it: its CPU time per line less the row above's is that stage's cost \
         (CPU time, all threads: what the work costs whatever else the machine runs).\n\n\
         | what | time | rate | CPU time | CPU per line | stage's CPU per line |\n|---|---|---|---|---|---|",
        lines / MAXRETRY
    );
    let mut above = 0.0;
    for (what, (secs, cpu)) in [
        (
            "`nftjail test postfix-sasl flood.log`: match, capture, date",
            f.test,
        ),
        (
            "daemon, `backend = \"log\"`: + read, track, ban decided and logged, state store",
            f.log,
        ),
        ("daemon, `backend = \"nft\"`: + bans into the kernel", f.nft),
    ] {
        let _ = writeln!(
            report,
            "| {what} | {secs:.3} s | {} | {cpu:.2} s | {} | {} |",
            rate(secs),
            per(cpu),
            per((cpu - above).max(0.0))
        );
        above = cpu;
    }
    match f.fail2ban_rs {
        Some(secs) => {
            let _ = writeln!(
                report,
                "| fail2ban-rs {} dry-run, same file (matching and counting, no kernel) | {secs:.3} s | {} | | | |\n\nnftjail daemon / fail2ban-rs dry-run = {:.2}×",
                super::fail2ban_rs::VERSION,
                rate(secs),
                secs / f.nft.0
            );
        }
        None => {
            let _ = writeln!(report, "\nfail2ban-rs not run (not installed): left out.");
        }
    }
    let r = n / f.nft.0;
    targets.add(
        "flood through the daemon ≥ 1 M lines/s",
        human(r, "lines/s"),
        r >= 1e6,
    );
    Ok(())
}

/// Best times, in seconds, of each way through the flood file: (wall,
/// CPU). CPU time is what the work costs whatever else the machine runs.
struct Flood {
    test: (f64, f64),
    log: (f64, f64),
    nft: (f64, f64),
    fail2ban_rs: Option<f64>,
}

fn flood(nftjail: &Path, dir: &Path, lines: u32, runs: usize) -> Result<Flood> {
    let attackers = lines / MAXRETRY;
    let (day, first_second) = gen::ending_now(lines as usize);
    let spec = Spec {
        lines: lines as usize,
        attack: 1.0,
        attackers,
        v6: 0.1,
        day,
        first_second,
        seed: 11,
    };
    let text = gen::generate(&spec);
    let file = dir.join("flood.log");
    std::fs::write(&file, &text)?;
    // The IPv6 attackers are the first ones: the last line's is IPv4.
    let last: Ipv4Addr = gen::attacker(attackers - 1, false).parse()?;
    let best = |v: Vec<f64>| v.into_iter().fold(f64::INFINITY, f64::min);
    let best2 = |v: Vec<(f64, f64)>| {
        v.into_iter().fold((f64::INFINITY, f64::INFINITY), |a, b| {
            (a.0.min(b.0), a.1.min(b.1))
        })
    };

    let mut test = Vec::new();
    for _ in 0..runs {
        let cpu = children_cpu();
        let (secs, out) = time(
            Command::new(nftjail)
                .args(["test", "postfix-sasl"])
                .arg(&file),
        )?;
        if !out.contains(&format!("matched: {lines}")) {
            bail!("flood: nftjail test did not match every line:\n{out}");
        }
        test.push((secs, children_cpu() - cpu));
    }
    let mut log = Vec::new();
    let mut nft = Vec::new();
    for run in 0..runs {
        let n = attackers as usize;
        log.push(through_daemon(nftjail, dir, &text, run, "log", last, n)?);
        nft.push(through_daemon(nftjail, dir, &text, run, "nft", last, n)?);
    }
    Ok(Flood {
        test: best2(test),
        log: best2(log),
        nft: best2(nft),
        fail2ban_rs: fail2ban_rs(dir, &file, lines, runs)?.map(best),
    })
}

/// One run of the daemon with `backend` over the flood `text`: seconds from
/// the rename until every attacker's ban is in the kernel (log backend: until
/// the ban of `last` is logged), and the CPU time the daemon spent meanwhile.
fn through_daemon(
    nftjail: &Path,
    dir: &Path,
    text: &str,
    run: usize,
    backend: &str,
    last: Ipv4Addr,
    attackers: usize,
) -> Result<(f64, f64)> {
    use std::io::Write;
    let tag = format!("flood-{backend}-{run}");
    let _ = std::fs::remove_dir_all(dir.join(format!("{tag}-state")));
    let log = dir.join(format!("{tag}.log"));
    std::fs::write(&log, "")?;
    let cfg = format!(
        "[daemon]\nsocket = \"{}\"\nbackend = \"{backend}\"\n[jail.bench]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = {MAXRETRY}\nfindtime = \"1h\"\nbantime = \"1h\"\n",
        dir.join(format!("{tag}.sock")).display(),
        log.display()
    );
    let d = Daemon::start_with(nftjail, dir, &tag, &cfg, log, Netns::new("flood")?)?;
    let next = dir.join(format!("{tag}.next"));
    let mut f = std::fs::File::create(&next)?;
    f.write_all(text.as_bytes())?;
    // On disk before the clock starts, as in the ten-jail run: the
    // writeback of the bench's own write is not the daemon's work.
    f.sync_all()?;
    drop(f);
    let deadline = Duration::from_secs(300);
    let pid = d.child.id();
    let cpu = process_cpu(pid);
    let (secs, cpu) = if backend == "nft" {
        let mut probe = nl::Probe::open(&d.ns.0)?;
        let start = Instant::now();
        std::fs::rename(&next, &d.log)?;
        let seen = probe
            .wait(Duration::from_micros(500), start + deadline, |p| {
                p.has("nftjail", "bench-v4", last)
            })?
            .context("flood: the last ban did not reach the kernel within 300 s")?;
        // The last line's ban says the reader got to the end, not that every
        // attacker before it is in the kernel (a batch's bans go in the
        // tracker's order, and a loaded machine can hold a batch back): the
        // run ends when the sets hold every one, or it lost a ban.
        let count = |p: &mut nl::Probe| -> Result<usize> {
            Ok(p.count("nftjail", "bench-v4")? + p.count("nftjail", "bench-v6")?)
        };
        let mut held = count(&mut probe)?;
        let mut seen = seen;
        let wait = Instant::now() + Duration::from_secs(30);
        while held < attackers && Instant::now() < wait {
            std::thread::sleep(Duration::from_millis(2));
            held = count(&mut probe)?;
            seen = Instant::now();
        }
        let spent = process_cpu(pid) - cpu;
        if held != attackers {
            bail!("flood: the kernel's sets hold {held} bans 30 s after the last one, not the {attackers} attackers");
        }
        ((seen - start).as_secs_f64(), spent)
    } else {
        let mut err = std::fs::File::open(&d.err)?;
        let from = err.seek(SeekFrom::End(0))?;
        let start = Instant::now();
        std::fs::rename(&next, &d.log)?;
        wait_for_line(&mut err, from, &format!("addr={last} "), start + deadline)?;
        let secs = start.elapsed().as_secs_f64();
        let spent = process_cpu(pid) - cpu;
        // The last line's ban need not be the last one logged (a batch's
        // bans are in the tracker's order): every attacker's ban line must
        // follow soon after it, or the log lost one.
        let wait = Instant::now() + Duration::from_secs(30);
        let logged = loop {
            let mut text = String::new();
            err.seek(SeekFrom::Start(from))?;
            err.read_to_string(&mut text)?;
            let logged = text.lines().filter(|l| l.contains(" ban: ")).count();
            if logged >= attackers || Instant::now() > wait {
                break logged;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if logged != attackers {
            bail!("flood: the log backend logged {logged} bans, not the {attackers} attackers");
        }
        (secs, spent)
    };
    let _ = std::fs::remove_file(dir.join(format!("{tag}.err")));
    Ok((secs, cpu))
}

/// Reads the growing file `f` from `from` until a line holds `needle`.
fn wait_for_line(f: &mut std::fs::File, from: u64, needle: &str, deadline: Instant) -> Result<()> {
    let mut buf = Vec::new();
    let mut scanned: usize = 0;
    f.seek(SeekFrom::Start(from))?;
    loop {
        let n = f.read_to_end(&mut buf)?;
        if n > 0 {
            // Look again a needle's length before the end: it may have been cut.
            let at = scanned.saturating_sub(needle.len());
            if memfind(&buf[at..], needle.as_bytes()) {
                return Ok(());
            }
            scanned = buf.len();
        } else if Instant::now() > deadline {
            bail!("flood: no log line with {needle:?} within the deadline");
        } else {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// fail2ban-rs dry-run on the same file, when installed (a stand-in that
/// prints no count is left out).
fn fail2ban_rs(dir: &Path, file: &Path, lines: u32, runs: usize) -> Result<Option<Vec<f64>>> {
    let Some(bin) = which("fail2ban-rs") else {
        return Ok(None);
    };
    let cfg = dir.join("flood-f2brs.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nstate_file = \"{d}/flood-f2brs.bin\"\nsocket_path = \"{d}/flood-f2brs.sock\"\n\n[jail.postfix]\nlog_path = \"{l}\"\ndate_format = \"syslog\"\nfilter = ['{FAIL2BAN_RS_POSTFIX}']\n",
            d = dir.display(),
            l = file.display()
        ),
    )?;
    let mut out = Vec::new();
    for _ in 0..runs {
        let (secs, text) = time(
            Command::new(&bin)
                .arg("-c")
                .arg(&cfg)
                .arg("dry-run")
                .arg(file),
        )?;
        let matched = text
            .split("Matches:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.replace(',', "").parse::<u32>().ok());
        match matched {
            Some(m) if m.abs_diff(lines) <= lines / 100 => out.push(secs),
            Some(m) => bail!("flood: fail2ban-rs matched {m} of {lines} lines"),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}
