//! `cargo xtask bench [--full | --smoke]`: nftjail beside its peers, same
//! input, same run, written to BENCHMARKS.md.
//!
//! Scenario 1 (matching) and 2 (ban throughput against the `nft -f` bulk
//! rate) are here; fail2ban-server ban throughput, latency and memory are not
//! yet (see BENCHMARKS.md).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::gen::{self, Spec};
use crate::{f2b, nl};

/// Our postfix-sasl failregex in fail2ban-rs's syntax (it finds the date itself).
const FAIL2BAN_RS_POSTFIX: &str = r"postfix(?:-[\w.-]+)?/(?:[\w.-]+/)?smtpd\[\d+\]: warning: [\w.-]+\[<HOST>\]: SASL [A-Z0-9-]+ authentication failed: ";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Fast,
    Full,
}

/// The issue's targets beside what this run measured: (target, measured, met).
#[derive(Default)]
struct Targets(Vec<(String, String, bool)>);

impl Targets {
    fn add(&mut self, target: &str, measured: String, met: bool) {
        self.0.push((target.to_string(), measured, met));
    }
    fn table(&self) -> String {
        let mut t = String::from("| target | measured | met |\n|---|---|---|\n");
        for (target, measured, met) in &self.0 {
            let _ = writeln!(
                t,
                "| {target} | {measured} | {} |",
                if *met { "yes" } else { "**no**" }
            );
        }
        t
    }
}

#[derive(Clone)]
struct Row {
    tool: String,
    command: String,
    /// Seconds per run.
    runs: Vec<f64>,
    work: f64,
    unit: &'static str,
    note: String,
}

impl Row {
    fn median(&self) -> f64 {
        let mut r = self.runs.clone();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }
    /// `0.030 s (333.3 k bans/s; 300.1 k – 350.2 k)`: median and range.
    fn rate_cell(&self) -> String {
        let min = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.runs.iter().copied().fold(0.0, f64::max);
        format!(
            "{:.3} s ({}; {} – {})",
            self.median(),
            human(self.work / self.median(), self.unit),
            human(self.work / max, self.unit),
            human(self.work / min, self.unit)
        )
    }
    fn cells(&self) -> String {
        let rate = |s: f64| self.work / s;
        let min = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.runs.iter().copied().fold(0.0, f64::max);
        format!(
            "| {} | {} | {:.3} s | {} | {} – {} | {} | `{}` |",
            self.tool,
            self.runs.len(),
            self.median(),
            human(rate(self.median()), self.unit),
            human(rate(max), self.unit),
            human(rate(min), self.unit),
            self.note,
            self.command
        )
    }
}

fn human(v: f64, unit: &str) -> String {
    if v >= 1e6 {
        format!("{:.2} M {unit}", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k {unit}", v / 1e3)
    } else {
        format!("{v:.0} {unit}")
    }
}

fn time(cmd: &mut Command) -> Result<(f64, String)> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let secs = start.elapsed().as_secs_f64();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // grep -c exits 1 when it counts 0; anything else failing is an error.
    if !out.status.success() && out.status.code() != Some(1) {
        bail!("{cmd:?} failed: {}\n{text}", out.status);
    }
    Ok((secs, text))
}

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

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

pub fn bench(args: &[&str], root: &Path) -> Result<()> {
    let mode = if args.contains(&"--smoke") {
        Mode::Smoke
    } else if args.contains(&"--full") {
        Mode::Full
    } else {
        Mode::Fast
    };
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "--bin", "nftjail"])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |t| root.join(t));
    let nftjail = target.join("release/nftjail");
    let dir = tempdir()?;
    let mut report = String::new();
    let machine = machine();
    let _ = writeln!(report, "Machine: {machine}\n");
    // `--only-bans`: scenario 2 alone without fail2ban, for working on the ban path.
    if args.contains(&"--only-bans") {
        bans(
            &mut report,
            mode,
            &nftjail,
            &dir,
            false,
            &mut Targets::default(),
        )?;
        println!("{report}");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    // `--only-memory`: scenario 4 alone, for work on the footprint.
    if args.contains(&"--only-memory") {
        let mut targets = Targets::default();
        memory_section(&mut report, mode, &nftjail, &dir, &mut targets)?;
        println!("{report}\n{}", targets.table());
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    // Scenario 1: matching.
    let lines = match mode {
        Mode::Smoke => 20_000,
        Mode::Fast => 1_000_000,
        Mode::Full => 2_000_000,
    };
    let log = dir.join("mail.log");
    let (day, first_second) = gen::ending_now(lines);
    let spec = Spec {
        lines,
        attack: 0.05,
        attackers: 5_000,
        v6: 0.2,
        day,
        first_second,
        seed: 42,
    };
    std::fs::write(&log, gen::generate(&spec))?;
    // `--only-ten`: scenario 1b alone, for work on the matching path.
    if args.contains(&"--only-ten") {
        let ten = ten_jails(&nftjail, &dir, &log, 3)?;
        println!("ten jails, {lines} lines: {}", ten.rate_cell());
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let runs = if mode == Mode::Smoke { 1 } else { 5 };
    let mut rows = Vec::new();
    let mut targets = Targets::default();
    let regex = String::from_utf8(
        Command::new(&nftjail)
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
        let (n, l) = (nftjail.clone(), log.clone());
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
        let (r, l) = (regex.clone(), log.clone());
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
        let l = log.clone();
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
        let l = log.clone();
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

    // Scenario 1b: ten jails on one file, through the daemon.
    let ten = ten_jails(
        &nftjail,
        &dir,
        &log,
        if mode == Mode::Smoke { 1 } else { 3 },
    )?;
    let _ = writeln!(
        report,
        "\n### 1b. Ten jails (ten different filters of our library) on the same {lines}-line file, through the daemon\n\n\
         Time from renaming the file over the daemon's log (a rotation: the daemon reads the new file from its start) until the ban decided by a marker line at its end is in the kernel.\n\n\
         | runs | median time | median rate | range |\n|---|---|---|---|\n| {} | {:.3} s | {} | {} – {} |\n\n\
         Jails: {}. Target ≥ 2 M lines/s.",
        ten.runs.len(),
        ten.median(),
        human(ten.work / ten.median(), "lines/s"),
        human(ten.work / ten.runs.iter().copied().fold(0.0, f64::max), "lines/s"),
        human(ten.work / ten.runs.iter().copied().fold(f64::INFINITY, f64::min), "lines/s"),
        TEN_FILTERS.join(", ")
    );
    let ten_rate = ten.work / ten.median();
    targets.add(
        "10 jails on one file ≥ 2 M lines/s",
        human(ten_rate, "lines/s"),
        ten_rate >= 2e6,
    );

    bans(&mut report, mode, &nftjail, &dir, true, &mut targets)?;

    // Scenario 3: latency from the decisive line to the element in the kernel.
    let samples = match mode {
        Mode::Smoke => 20,
        _ => 1_000,
    };
    let _ = writeln!(
        report,
        "\n## 3. Ban latency: decisive line appended → element seen by `nft monitor` (netlink events), maxretry = 1\n\n| tool | samples | p50 | p99 | max |\n|---|---|---|---|---|"
    );
    let lat = latency(&nftjail, &dir, samples)?;
    let p99 = p99_ms(&lat);
    targets.add("latency p99 ≤ 5 ms", format!("{p99:.2} ms"), p99 <= 5.0);
    let _ = writeln!(report, "| nftjail | {} |", percentiles(lat));
    if f2b::available() {
        let limit = Duration::from_secs(if mode == Mode::Smoke { 20 } else { 120 });
        let lat = f2b_latency(&dir, samples, limit)?;
        let _ = writeln!(report, "| fail2ban-server 1.0.2 | {} |", percentiles(lat));
    }

    // Scenario 4: memory and restore.
    memory_section(&mut report, mode, &nftjail, &dir, &mut targets)?;
    let _ = write!(
        report,
        "\n## Targets (issue 8) against this run\n\n{}",
        targets.table()
    );

    println!("{report}");
    if mode != Mode::Smoke {
        let doc = format!(
            "# Benchmarks\n\nMeasured with `cargo xtask bench{}` (release build), every tool in the same run on the\nsame generated input; where a table gives runs, the median and the range over them.\n\n{report}\n{}",
            if mode == Mode::Full { " --full" } else { "" },
            include_str!("bench_notes.md")
        );
        std::fs::write(root.join("BENCHMARKS.md"), doc)?;
        println!("wrote BENCHMARKS.md");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

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
fn bans(
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

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nftjail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // Other work on the machine slows a multi-threaded pipeline more than a
    // one-shot command: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores, {cpu}, Linux {}; load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// A named network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Result<Netns> {
        let name = format!("nftjail-bench-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()?
            .success();
        if !ok {
            bail!("ip netns add {name} failed (root needed)");
        }
        Ok(Netns(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
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
/// falls before it; the write itself is the writer's time and varies here
/// from 10 to 110 ms for 39 MB, by whether the page cache gets fresh pages
/// (first touch of guest memory on this VM).
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

/// An nft script that creates `table`/`set` and adds attackers 0..n with a
/// 1 h timeout, 1,000 elements per statement.
fn elements_script(table: &str, set: &str, n: u32) -> String {
    let mut script = format!(
        "add table inet {table}\nadd set inet {table} {set} {{ type ipv4_addr; flags timeout; }}\n"
    );
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let elems: Vec<String> = chunk
            .iter()
            .map(|&i| format!("{} timeout 1h", gen::attacker(i, false)))
            .collect();
        let _ = writeln!(
            script,
            "add element inet {table} {set} {{ {} }}",
            elems.join(", ")
        );
    }
    script
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A daemon in its own namespace on a fresh log; killed on drop.
struct Daemon {
    child: std::process::Child,
    err: PathBuf,
    ns: Netns,
    log: PathBuf,
}

impl Daemon {
    fn start(nftjail: &Path, dir: &Path, tag: &str, maxretry: u32, ns: Netns) -> Result<Daemon> {
        let log = dir.join(format!("{tag}.log"));
        std::fs::write(&log, "")?;
        let cfg = format!(
            "[daemon]\nsocket = \"{}\"\n[jail.bench]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = {maxretry}\nfindtime = \"1h\"\nbantime = \"1h\"\n",
            dir.join(format!("{tag}.sock")).display(),
            log.display()
        );
        Self::start_with(nftjail, dir, tag, &cfg, log, ns)
    }

    /// A daemon with config text `config`, which reads `log`.
    fn start_with(
        nftjail: &Path,
        dir: &Path,
        tag: &str,
        config: &str,
        log: PathBuf,
        ns: Netns,
    ) -> Result<Daemon> {
        let cfg = dir.join(format!("{tag}.toml"));
        std::fs::write(&cfg, config)?;
        let err = dir.join(format!("{tag}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(nftjail)
            .args(["run", "--config"])
            .arg(&cfg)
            // Its own state: a store from another scenario must not restore
            // bans into this one.
            .arg("--state-dir")
            .arg(dir.join(format!("{tag}-state")))
            .stderr(std::fs::File::create(&err)?)
            .stdout(Stdio::null())
            .spawn()?;
        let d = Daemon {
            child,
            err,
            ns,
            log,
        };
        d.wait_log(|t| t.contains(" ready: "), Duration::from_secs(30))?;
        Ok(d)
    }

    fn wait_log(&self, pred: impl Fn(&str) -> bool, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(&self.err).unwrap_or_default();
            if pred(&text) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "daemon: timed out; log tail:\n{}",
                    text.lines().rev().take(5).collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    use std::io::{BufRead, BufReader, Write};
    let mut monitor = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "monitor", "new", "elements"])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = monitor.stdout.take().context("monitor stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
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
                .recv_timeout(Duration::from_secs(10))
                .context("no element event within 10 s")?;
            if l.contains(&format!("{{ {addr} ")) {
                lat.push((at - start).as_secs_f64());
                break;
            }
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    Ok(lat)
}

/// The 99th percentile in ms (NaN when there are no samples).
fn p99_ms(lat: &[f64]) -> f64 {
    let mut l = lat.to_vec();
    l.sort_by(f64::total_cmp);
    l.get(((l.len() as f64 * 0.99) as usize).min(l.len().saturating_sub(1)))
        .map_or(f64::NAN, |v| v * 1e3)
}

/// `| samples | p50 | p99 | max` cells.
fn percentiles(mut lat: Vec<f64>) -> String {
    if lat.is_empty() {
        return "0 | – | – | –".into();
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] * 1e3;
    format!(
        "{} | {:.2} ms | {:.2} ms | {:.2} ms",
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    )
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

/// Whether fail2ban-rs has made its table in namespace `ns`.
fn table_exists(ns: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "list",
            "table",
            "inet",
            "fail2ban-rs",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
/// the first failure, and one thread reads the file in order, so the
/// marker's element in the kernel means every line before it was matched by
/// all ten jails. Also checks the postfix-sasl jail banned every IPv4
/// attacker of the file.
fn ten_jails(nftjail: &Path, dir: &Path, input: &Path, runs: usize) -> Result<Row> {
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
    };
    for run in 0..runs {
        let tag = format!("ten-{run}");
        let log = dir.join(format!("{tag}.log"));
        std::fs::write(&log, "")?;
        let mut cfg = format!(
            "[daemon]\nsocket = \"{}\"\n",
            dir.join(format!("{tag}.sock")).display()
        );
        for f in TEN_FILTERS {
            let maxretry = if f == "sshd" { 1 } else { 5 };
            let _ = write!(
                cfg,
                "[jail.{f}]\nfilter = \"{f}\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = {maxretry}\nfindtime = \"1h\"\nbantime = \"1h\"\n",
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
        drop(file);
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
        nl::expect_all(
            &mut probe,
            "nftjail",
            "postfix-sasl-v4",
            v4_banned.iter().copied(),
        )?;
    }
    Ok(row)
}

/// Scenario 4: idle RSS (beside fail2ban-rs's), bytes per tracked address,
/// restore and reboot times.
fn memory_section(
    report: &mut String,
    mode: Mode,
    nftjail: &Path,
    dir: &Path,
    targets: &mut Targets,
) -> Result<()> {
    let distinct = match mode {
        Mode::Smoke => 10_000,
        Mode::Fast => 1_000_000,
        Mode::Full => 1_000_000,
    };
    let mem = memory(nftjail, dir, distinct)?;
    let _ = writeln!(
        report,
        "\n## 4. Memory and restore\n\n| what | nftjail |\n|---|---|"
    );
    let _ = writeln!(
        report,
        "| idle RSS, one jail on one file | {:.1} MiB |",
        mem.idle_kib as f64 / 1024.0
    );
    let _ = writeln!(
        report,
        "| RSS after {distinct} distinct addresses with one failure each | {:.1} MiB ({:.0} bytes per tracked address) |",
        mem.loaded_kib as f64 / 1024.0,
        (mem.loaded_kib.saturating_sub(mem.idle_kib)) as f64 * 1024.0 / distinct as f64
    );
    let _ = writeln!(
        report,
        "| start with {} bans already in the kernel and none in the store, until ready (reconcile, dump, record all in the store) | {:.3} s |",
        mem.restore_n, mem.restore_secs
    );
    let _ = writeln!(
        report,
        "| reboot: start with an empty kernel and {} bans in the store, until ready (all restored with their remaining time) | {:.3} s |",
        mem.restore_n, mem.reboot_secs
    );
    targets.add(
        "100k bans restored in ≤ 1 s (after a reboot: store → empty kernel)",
        format!("{} bans in {:.3} s", mem.restore_n, mem.reboot_secs),
        mem.reboot_secs <= 1.0 && mem.restore_n >= 100_000,
    );
    let idle_mib = mem.idle_kib as f64 / 1024.0;
    targets.add(
        "idle RSS ≤ 10 MiB",
        format!("{idle_mib:.1} MiB"),
        idle_mib <= 10.0,
    );
    if let Some(rss) = fail2ban_rs_idle(dir)? {
        let rs_mib = rss as f64 / 1024.0;
        let _ = writeln!(
            report,
            "| fail2ban-rs 1.5.4 idle RSS, same jail | {rs_mib:.1} MiB |"
        );
        targets.add(
            "idle RSS below fail2ban-rs's",
            format!("{idle_mib:.1} vs {rs_mib:.1} MiB"),
            idle_mib < rs_mib,
        );
    }
    let per = (mem.loaded_kib.saturating_sub(mem.idle_kib)) as f64 * 1024.0 / distinct as f64;
    targets.add(
        "≤ 200 bytes per tracked address",
        format!("{per:.0} bytes"),
        per <= 200.0,
    );
    Ok(())
}

struct Memory {
    idle_kib: u64,
    loaded_kib: u64,
    restore_n: u32,
    restore_secs: f64,
    reboot_secs: f64,
}

fn memory(nftjail: &Path, dir: &Path, distinct: u32) -> Result<Memory> {
    use std::io::Write;
    let d = Daemon::start(nftjail, dir, "memory", 5, Netns::new("memory")?)?;
    // Idle as fail2ban-rs's is read: 2 s after start (the daemon gives its
    // start-up memory back 1 s after ready).
    std::thread::sleep(Duration::from_secs(2));
    let idle_kib = rss_kib(d.child.id());
    let (day, first_second) = gen::ending_now(distinct as usize);
    let spec = Spec {
        lines: distinct as usize,
        attack: 1.0,
        attackers: distinct,
        v6: 0.0,
        day,
        first_second,
        seed: 9,
    };
    let text = gen::generate(&spec);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&d.log)?
        .write_all(text.as_bytes())?;
    // Done when RSS has not grown for a second.
    let mut last = 0;
    let mut still = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while still.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(d.child.id());
        if now != last {
            last = now;
            still = Instant::now();
        }
    }
    let loaded_kib = last;
    drop(d);

    // Restore: 100k elements in the kernel, then a daemon start.
    let restore_n = distinct.min(100_000);
    let ns = Netns::new("restore")?;
    // The daemon creates bench-v6 itself on reconcile.
    let script = elements_script("nftjail", "bench-v4", restore_n);
    let file = dir.join("restore.nft");
    std::fs::write(&file, script)?;
    time(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "nft", "-f"])
            .arg(&file),
    )?;
    let start = Instant::now();
    let d = Daemon::start(nftjail, dir, "restore", 5, ns)?;
    let restore_secs = start.elapsed().as_secs_f64();
    let kept = std::fs::read_to_string(&d.err).unwrap_or_default();
    if !kept.contains(&format!("bans={restore_n}")) {
        bail!("restore: the daemon did not report {restore_n} kept bans:\n{kept}");
    }
    drop(d);

    // Reboot: an empty kernel (a new namespace) and the same state store.
    let start = Instant::now();
    let d = Daemon::start(nftjail, dir, "restore", 5, Netns::new("reboot")?)?;
    let reboot_secs = start.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&d.err).unwrap_or_default();
    if !log.contains(&format!("restored={restore_n}")) {
        bail!("reboot: the daemon did not restore {restore_n} bans from its store:\n{log}");
    }
    Ok(Memory {
        idle_kib,
        loaded_kib,
        restore_n,
        restore_secs,
        reboot_secs,
    })
}

/// Starts fail2ban-rs in `ns` with one jail `jail` (our postfix-sasl pattern
/// on port 587) over a new empty log `TAG.log`, plus `extra` jail keys.
fn fail2ban_rs_start(
    bin: &Path,
    dir: &Path,
    ns: &Netns,
    tag: &str,
    jail: &str,
    extra: &str,
) -> Result<(PathBuf, std::process::Child)> {
    let log = dir.join(format!("{tag}.log"));
    std::fs::write(&log, "")?;
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[global]\nstate_file = \"{d}/{tag}.bin\"\nsocket_path = \"{d}/{tag}.sock\"\n\n[jail.{jail}]\nlog_path = \"{l}\"\ndate_format = \"syslog\"\nport = [\"587\"]\n{extra}filter = ['{FAIL2BAN_RS_POSTFIX}']\n",
            d = dir.display(),
            l = log.display()
        ),
    )?;
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(bin)
        .arg("-c")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok((log, child))
}

/// fail2ban-rs idle RSS with an equivalent jail, in its own namespace.
fn fail2ban_rs_idle(dir: &Path) -> Result<Option<u64>> {
    let Some(bin) = which("fail2ban-rs") else {
        return Ok(None);
    };
    let ns = Netns::new("f2brs")?;
    let (_log, mut child) = fail2ban_rs_start(&bin, dir, &ns, "f2brs-idle", "postfix", "")?;
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(child.id());
    let alive = child.try_wait()?.is_none();
    let _ = child.kill();
    let _ = child.wait();
    Ok(alive.then_some(rss))
}
