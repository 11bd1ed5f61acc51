//! Scenario 2, ban throughput: N attackers reach maxretry in one append, timed
//! until all N are in the kernel set, for nftjail, the `nft -f` bulk load of
//! the same elements, fail2ban-server and fail2ban-rs.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::daemon::{Daemon, Netns};
use super::fail2ban_rs::{fail2ban_rs_start, table_exists};
use super::report::{human, Row, Targets};
use super::{elements_script, which, Mode};
use crate::gen::{self, Spec};
use crate::{f2b, nl};

/// A time-bounded peer's result: its time and rate, or how far it got.
fn peer_cell(secs: f64, reached: usize, n: u32) -> String {
    let rate = human(reached as f64 / secs, "bans/s");
    if reached == n as usize {
        format!("{secs:.2} s ({rate})")
    } else {
        format!("{reached} of {n} after {secs:.0} s ({rate}), stopped")
    }
}

/// Scenario 2: ban throughput into the kernel.
pub(super) fn bans(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    peers: bool,
    targets: &mut Targets,
) -> Result<()> {
    let sizes: &[u32] = match mode {
        Mode::Smoke => &[200],
        Mode::Fast => &[1_000, 10_000],
        Mode::Full => &[1_000, 10_000, 100_000],
    };
    let ban_runs = if mode == Mode::Smoke { 1 } else { 5 };
    // fail2ban-server bans a few hundred per second: each size gets this long.
    let f2b_limit = Duration::from_secs(match mode {
        Mode::Smoke => 30,
        Mode::Fast => 40,
        Mode::Full => 60,
    });
    let _ = writeln!(report, "\n## 2. Ban throughput: N attackers each reaching maxretry=3, time until all N are in the kernel set\n");
    let _ = writeln!(report, "Every tool timed the same way: from the start of the command (`nft -f`) or from the return of the log append (daemons: one write of all 3N lines, which they cannot see before it ends) until the kernel answers a netlink GETSETELEM for the last element (probe every 0.1 ms), then the whole set is counted. nftjail and `nft -f`: median of {ban_runs} runs (range in brackets); fail2ban-server and fail2ban-rs (their set counted every 20 ms): one run each, stopped after {} s.\n", f2b_limit.as_secs());
    let _ = writeln!(report, "| N | nftjail (daemon, log → kernel) | `nft -f` bulk load of the same N elements | nftjail / nft -f | fail2ban-server 1.0.2 (nftables-allports, pyinotify) | nftjail / fail2ban-server | fail2ban-rs 1.5.4 (nftables backend) |\n|---|---|---|---|---|---|---|");
    for &n in sizes {
        let mut nj = Row {
            tool: "nftjail".into(),
            command: String::new(),
            runs: Vec::new(),
            work: n as f64,
            unit: "bans/s",
            note: String::new(),
            cpu: Vec::new(),
        };
        let mut bulk = Row {
            runs: Vec::new(),
            unit: "elements/s",
            ..nj.clone()
        };
        for run in 0..ban_runs {
            nj.runs.push(daemon_bans(nftjail, dir, n, run)?);
            bulk.runs.push(nft_bulk(dir, n)?);
        }
        let f2b = if peers && f2b::available() {
            let (secs, reached) = f2b_bans(dir, n, f2b_limit)?;
            let rate = reached as f64 / secs;
            let cell = peer_cell(secs, reached, n);
            let x = (n as f64 / nj.median()) / rate;
            let ratio = format!("{x:.0}×");
            targets.add(
                &format!("N={n}: ≥ 200× fail2ban-server"),
                if reached == n as usize {
                    ratio.clone()
                } else {
                    format!("{ratio} (against the rate it reached before it was stopped)")
                },
                x >= 200.0,
            );
            (cell, ratio)
        } else {
            ("not installed".into(), "–".into())
        };
        let rate = n as f64 / nj.median();
        targets.add(
            &format!("N={n}: ≥ 100k bans/s into the kernel"),
            human(rate, "bans/s"),
            rate >= 100e3,
        );
        let pct = 100.0 * bulk.median() / nj.median();
        targets.add(
            &format!("N={n}: ≥ 80% of the `nft -f` rate"),
            format!("{pct:.0}%"),
            pct >= 80.0,
        );
        let rs = match peers.then(|| f2brs_bans(dir, n, f2b_limit)).transpose()? {
            Some(Some((secs, reached))) => peer_cell(secs, reached, n),
            _ => "–".into(),
        };
        let _ = writeln!(
            report,
            "| {n} | {} | {} | {:.0}% | {} | {} | {rs} |",
            nj.rate_cell(),
            bulk.rate_cell(),
            100.0 * bulk.median() / nj.median(),
            f2b.0,
            f2b.1
        );
    }
    Ok(())
}

/// How often the probe asks the kernel while a run is under way.
const POLL: Duration = Duration::from_micros(100);

/// Starts the daemon in a fresh namespace, appends N×3 failures in one write,
/// and times until the kernel holds all N (asked over netlink, see [`nl`]).
/// Attacker N-1 is the last to reach maxretry and bans go to the kernel in
/// order, so its element shows up last; the full count is checked after.
fn daemon_bans(nftjail: &Path, dir: &Path, n: u32, run: usize) -> Result<f64> {
    let d = Daemon::start(
        nftjail,
        dir,
        &format!("bans-{n}-{run}"),
        3,
        Netns::new("daemon")?,
    )?;
    let mut probe = nl::Probe::open(&d.ns.0)?;
    let (day, first_second) = gen::ending_now(n as usize * 3);
    let spec = Spec {
        lines: n as usize * 3,
        attack: 1.0,
        attackers: n,
        v6: 0.0,
        day,
        first_second,
        seed: 7,
    };
    let text = gen::generate(&spec);
    let last: Ipv4Addr = gen::attacker(n - 1, false).parse()?;
    let start = append(&d.log, &text)?;
    let seen = probe
        .wait(POLL, start + Duration::from_secs(120), |p| {
            p.has("nftjail", "bench-v4", last)
        })?
        .context("nftjail: the last ban did not reach the kernel within 120 s")?;
    nl::expect_all(&mut probe, "nftjail", "bench-v4", attackers(n))?;
    Ok((seen - start).as_secs_f64())
}

/// Appends `text` to `log` in one write and returns when that write did:
/// the start of a ban-throughput clock. A daemon cannot see the lines
/// before (inotify reports a write when it ends), so nothing a daemon does
/// falls before it; the write itself is the writer's time, and varies with
/// whether the page cache gets fresh pages.
fn append(log: &Path, text: &str) -> Result<Instant> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)?
        .write_all(text.as_bytes())?;
    Ok(Instant::now())
}

/// The addresses of attackers 0..n (IPv4).
fn attackers(n: u32) -> impl Iterator<Item = Ipv4Addr> {
    (0..n).filter_map(|i| gen::attacker(i, false).parse().ok())
}

/// `nft -f` loading the same N elements (table, set and all elements in one
/// transaction), timed like the daemon: from the command's start until the
/// kernel answers that the last element is there.
fn nft_bulk(dir: &Path, n: u32) -> Result<f64> {
    let ns = Netns::new("bulk")?;
    let mut probe = nl::Probe::open(&ns.0)?;
    let script = elements_script("b", "s", n);
    let file = dir.join(format!("bulk-{n}.nft"));
    std::fs::write(&file, script)?;
    let last: Ipv4Addr = gen::attacker(n - 1, false).parse()?;
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "-f"])
        .arg(&file)
        .stdin(Stdio::null())
        .spawn()?;
    let seen = probe.wait(POLL, start + Duration::from_secs(120), |p| {
        p.has("b", "s", last)
    })?;
    if !child.wait()?.success() {
        bail!("nft -f {} failed", file.display());
    }
    let seen = seen.context("nft -f: the elements did not show up within 120 s")?;
    nl::expect_all(&mut probe, "b", "s", attackers(n))?;
    Ok((seen - start).as_secs_f64())
}

/// fail2ban-server with the scenario-2 input; returns (seconds, elements in
/// the kernel) at the moment all N were there or at `limit`.
fn f2b_bans(dir: &Path, n: u32, limit: Duration) -> Result<(f64, usize)> {
    let s = f2b::Server::start(dir, &format!("bans-{n}"), 3, Netns::new("f2b")?)?;
    let mut probe = nl::Probe::open(&s.ns.0)?;
    let (day, first_second) = gen::ending_now(n as usize * 3);
    let text = gen::generate(&Spec {
        lines: n as usize * 3,
        attack: 1.0,
        attackers: n,
        v6: 0.0,
        day,
        first_second,
        seed: 7,
    });
    let start = append(&s.log, &text)?;
    // fail2ban bans in its own order: count the whole set (a dump) every 20 ms.
    let mut reached = 0;
    let done = probe.wait(Duration::from_millis(20), start + limit, |p| {
        reached = p.count(f2b::TABLE, f2b::SET)?;
        Ok(reached >= n as usize)
    })?;
    let end = done.unwrap_or_else(Instant::now);
    Ok(((end - start).as_secs_f64(), reached))
}

/// fail2ban-rs with its nftables backend (one `nft` per ban) in its own
/// namespace, the scenario-2 input appended to its log; (seconds, elements
/// in its kernel set) when all N were there or at `limit`. None when it is
/// not installed.
fn f2brs_bans(dir: &Path, n: u32, limit: Duration) -> Result<Option<(f64, usize)>> {
    let Some(bin) = which("fail2ban-rs") else {
        return Ok(None);
    };
    let ns = Netns::new("f2brs-bans")?;
    let (log, mut child) = fail2ban_rs_start(
        &bin,
        dir,
        &ns,
        &format!("f2brs-bans-{n}"),
        "bench",
        "max_retry = 3\nfind_time = \"1h\"\nban_time = \"1h\"\nbackend = \"nftables\"\n",
    )?;
    // Started when its table is there (it creates it at start).
    let mut probe = nl::Probe::open(&ns.0)?;
    let ready = probe.wait(
        Duration::from_millis(20),
        Instant::now() + Duration::from_secs(10),
        |p| Ok(p.count("fail2ban-rs", "f2b-bench").is_ok() && table_exists(&ns.0)),
    )?;
    if ready.is_none() || child.try_wait()?.is_some() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("fail2ban-rs did not start in its namespace");
    }
    std::thread::sleep(Duration::from_millis(300));
    let (day, first_second) = gen::ending_now(n as usize * 3);
    let text = gen::generate(&Spec {
        lines: n as usize * 3,
        attack: 1.0,
        attackers: n,
        v6: 0.0,
        day,
        first_second,
        seed: 7,
    });
    let start = append(&log, &text)?;
    let mut reached = 0;
    let done = probe.wait(Duration::from_millis(20), start + limit, |p| {
        reached = p.count("fail2ban-rs", "f2b-bench")?;
        Ok(reached >= n as usize)
    })?;
    let end = done.unwrap_or_else(Instant::now);
    let _ = child.kill();
    let _ = child.wait();
    Ok(Some(((end - start).as_secs_f64(), reached)))
}
