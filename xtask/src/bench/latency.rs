//! Scenario 3, ban latency: one decisive line appended at a time, timed until
//! `nft monitor` reports its element, for nftjail and fail2ban-server.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::daemon::{Daemon, Netns};
use super::report::Targets;
use super::Mode;
use crate::{f2b, gen};

/// Scenario 3: latency from the decisive line to the element in the kernel.
pub(super) fn latency_section(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    targets: &mut Targets,
) -> Result<()> {
    let samples = match mode {
        Mode::Smoke => 20,
        _ => 1_000,
    };
    let _ = writeln!(
        report,
        "\n## 3. Ban latency: decisive line appended → element seen by `nft monitor` (netlink events), maxretry = 1\n\n| tool | samples | p50 | p99 | max |\n|---|---|---|---|---|"
    );
    let lat = latency(nftjail, dir, samples)?;
    let p99 = p99_ms(&lat);
    targets.add("latency p99 ≤ 5 ms", format!("{p99:.2} ms"), p99 <= 5.0);
    let _ = writeln!(report, "| nftjail | {} |", percentiles(lat, 2));
    if f2b::available() {
        let limit = Duration::from_secs(if mode == Mode::Smoke { 20 } else { 120 });
        let lat = f2b_latency(dir, samples, limit)?;
        let _ = writeln!(
            report,
            "| fail2ban-server 1.0.2 | {} |",
            percentiles(lat, 2)
        );
    }
    Ok(())
}

/// maxretry = 1, so every appended line is decisive; `nft monitor` reports
/// each new element from the kernel's own netlink events.
fn latency(nftjail: &Path, dir: &Path, samples: u32) -> Result<Vec<f64>> {
    let ns = Netns::new("latency")?;
    let d = Daemon::start(nftjail, dir, "latency", 1, ns)?;
    latency_of(&d.ns.0, &d.log, samples, Duration::from_secs(600))
}

/// The same with fail2ban-server; it stops after `limit` with the samples it has.
fn f2b_latency(dir: &Path, samples: u32, limit: Duration) -> Result<Vec<f64>> {
    let s = f2b::Server::start(dir, "latency", 1, Netns::new("f2blat")?)?;
    latency_of(&s.ns.0, &s.log, samples, limit)
}

/// Appends one decisive line at a time to `log` and waits for its element in
/// the kernel of namespace `ns`, as `nft monitor` sees it.
fn latency_of(ns: &str, log: &Path, samples: u32, limit: Duration) -> Result<Vec<f64>> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "nft", "monitor", "new", "elements"]);
    let (mut monitor, rx) = monitor(cmd)?;
    let lat = decisive_lines(
        log,
        &rx,
        samples,
        limit,
        Duration::from_secs(10),
        |l, addr| l.contains(&format!("{{ {addr} ")),
    );
    let _ = monitor.kill();
    let _ = monitor.wait();
    lat
}

/// Runs `cmd` (an `nft monitor`) and yields each line it prints with the
/// moment it came; returns once the monitor has had time to subscribe.
pub(super) fn monitor(mut cmd: Command) -> Result<(Child, Receiver<(Instant, String)>)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nft monitor")?;
    let out = child.stdout.take().context("monitor stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    Ok((child, rx))
}

/// Appends to `log` one decisive SASL failure line of a fresh attacker at a
/// time and times it until `rx` yields a line that `seen(line, address)`
/// accepts (each waits at most `wait`); stops after `samples`, or at
/// `limit` with the samples it has. Lines left over after a sample are
/// dropped (a reload may repeat the earlier ones).
pub(super) fn decisive_lines(
    log: &Path,
    rx: &Receiver<(Instant, String)>,
    samples: u32,
    limit: Duration,
    wait: Duration,
    seen: impl Fn(&str, &str) -> bool,
) -> Result<Vec<f64>> {
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut lat = Vec::new();
    let deadline = Instant::now() + limit;
    for i in 0..samples {
        if Instant::now() > deadline {
            break;
        }
        let addr = gen::attacker(100_000 + i, false);
        let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
        let line = format!("{now} mx1 postfix/submission/smtpd[1]: warning: unknown[{addr}]: SASL LOGIN authentication failed: authentication failure\n");
        let start = Instant::now();
        file.write_all(line.as_bytes())?;
        loop {
            let (at, l) = rx
                .recv_timeout(wait)
                .with_context(|| format!("nothing seen for {addr} within {wait:?}"))?;
            if seen(&l, &addr) {
                lat.push((at - start).as_secs_f64());
                break;
            }
        }
        while rx.try_recv().is_ok() {}
    }
    Ok(lat)
}

/// The 99th percentile in ms (NaN when there are no samples).
fn p99_ms(lat: &[f64]) -> f64 {
    let mut l = lat.to_vec();
    l.sort_by(f64::total_cmp);
    l.get(((l.len() as f64 * 0.99) as usize).min(l.len().saturating_sub(1)))
        .map_or(f64::NAN, |v| v * 1e3)
}

/// `| samples | p50 | p99 | max` cells, in ms with `digits` decimals.
pub(super) fn percentiles(mut lat: Vec<f64>, digits: usize) -> String {
    if lat.is_empty() {
        return "0 | – | – | –".into();
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] * 1e3;
    format!(
        "{} | {:.digits$} ms | {:.digits$} ms | {:.digits$} ms",
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    )
}
