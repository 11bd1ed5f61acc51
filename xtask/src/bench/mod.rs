//! `cargo xtask bench [--full | --smoke]`: nftjail beside its peers, same
//! input, same run, written to BENCHMARKS.md.
//!
//! One file per scenario, each writing its section of the report: matching
//! (1), ten jails on one file (1b), ban throughput (2), the ufw backend beside fail2ban's ufw
//! action (2b), latency (3), memory and restore (4), farm propagation (5), the packet path (6).
//! Here: choosing the mode, running them in order, and the
//! helpers more than one scenario times its runs with.

mod bans;
mod cpu;
mod daemon;
mod fail2ban_rs;
mod farm;
mod filter_paths;
mod flood;
mod latency;
mod matching;
pub(crate) mod memory;
mod packet;
mod report;
mod ten_jails;
mod ten_side;
mod ufw;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::gen::{self, Spec};

pub use daemon::Netns;

use bans::bans;
use latency::latency_section;
use matching::matching;
use memory::memory_section;
use report::Targets;
use ten_jails::{ten_jails, ten_jails_section};

/// How big every scenario runs: `--smoke` only checks that the harness
/// works (nothing is written), the default and `--full` write BENCHMARKS.md.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Fast,
    Full,
}

pub fn bench(args: &[&str], root: &Path) -> Result<()> {
    let mode = if args.contains(&"--smoke") {
        Mode::Smoke
    } else if args.contains(&"--full") {
        Mode::Full
    } else {
        Mode::Fast
    };
    // `--only-farm`: scenario 5 alone, for work on farm mode.
    if args.contains(&"--only-farm") {
        let mut report = String::new();
        farm::farm_section(&mut report, root)?;
        println!("{report}");
        return Ok(());
    }
    // `--only-packet`: scenario 6 alone, for work on the ruleset.
    if args.contains(&"--only-packet") {
        let dir = tempdir()?;
        let mut report = String::new();
        packet::packet_section(&mut report, mode, &dir)?;
        println!("{report}");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    // A given binary (another build, to set beside this one) instead of
    // this tree's release build.
    let nftjail = match std::env::var_os("NFTJAIL_BENCH_BINARY") {
        Some(bin) => PathBuf::from(bin),
        None => crate::cargo::release_binary(root)?,
    };
    if mode != Mode::Smoke {
        fail2ban_rs::install_if_missing()?;
    }
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

    // `--only-flood`: scenario 1c alone, for work on the cost per failure.
    if args.contains(&"--only-flood") {
        let mut targets = Targets::default();
        flood::flood_section(&mut report, mode, &nftjail, &dir, &mut targets)?;
        println!("{report}\n{}", targets.table());
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

    // `--only-ufw`: scenario 2b alone, for work on the ufw backend.
    if args.contains(&"--only-ufw") {
        ufw::ufw_section(&mut report, mode, &nftjail, &dir)?;
        println!("{report}");
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
    // `--only-filter-paths [--baseline BIN]`: one regex by each path, and
    // ten stock fail2ban filter files, for work on the filter paths.
    if args.contains(&"--only-filter-paths") {
        let baseline = args
            .iter()
            .position(|a| *a == "--baseline")
            .and_then(|i| args.get(i + 1))
            .map(Path::new);
        print!(
            "{}",
            filter_paths::filter_paths(&nftjail, baseline, &dir, &log, lines)?
        );
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    // `--only-ten-side`: scenario 1d alone, ten jails beside fail2ban-rs.
    if args.contains(&"--only-ten-side") {
        let mut targets = Targets::default();
        ten_side::ten_side_section(&mut report, mode, &nftjail, &dir, &log, lines, &mut targets)?;
        println!("{report}\n{}", targets.table());
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    // `--only-ten`: scenario 1b alone, for work on the matching path.
    if args.contains(&"--only-ten") {
        let ten = ten_jails(&nftjail, &dir, &log, 3)?;
        println!("ten jails, {lines} lines: {}", ten.rate_cell());
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let mut targets = Targets::default();
    matching(&mut report, mode, &nftjail, &dir, &log, lines, &mut targets)?;

    ten_jails_section(&mut report, mode, &nftjail, &dir, &log, lines, &mut targets)?;

    flood::flood_section(&mut report, mode, &nftjail, &dir, &mut targets)?;

    ten_side::ten_side_section(&mut report, mode, &nftjail, &dir, &log, lines, &mut targets)?;

    let _ = writeln!(
        report,
        "\n### 1e. One regex by every path a user can take, on the same {lines}-line file\n\n\
         A deployment's Zimbra SASL failregex (`…\\[<HOST>\\]: SASL \\w+ authentication failed: \
         authentication failure$`) as our built-in `zimbra-submission` filter, inline in a filter \
         file of ours, in a fail2ban filter file, and fail2ban-rs with it; `nftjail test` (read, \
         match, date), best of 3. Then ten jails on ten stock fail2ban filter files through the \
         daemon (`cargo xtask bench --only-filter-paths`).\n\n{}",
        filter_paths::filter_paths(&nftjail, None, &dir, &log, lines)?
    );

    bans(&mut report, mode, &nftjail, &dir, true, &mut targets)?;

    ufw::ufw_section(&mut report, mode, &nftjail, &dir)?;

    latency_section(&mut report, mode, &nftjail, &dir, &mut targets)?;

    memory_section(&mut report, mode, &nftjail, &dir, &mut targets)?;

    packet::packet_section(&mut report, mode, &dir)?;

    // The farm needs a release build of the cluster test; the smoke run
    // leaves it out (`cargo test` builds and runs the farm's own tests).
    if mode != Mode::Smoke {
        farm::farm_section(&mut report, root)?;
    }
    let _ = write!(
        report,
        "\n## Performance targets against this run\n\n{}",
        targets.table()
    );

    println!("{report}");
    if mode != Mode::Smoke {
        let doc = format!(
            "# Benchmarks\n\nMeasured with `cargo xtask bench{}` (release build), every tool in the same run on the\nsame generated input; where a table gives runs, the median and the range over them.\n\n{report}\n{}",
            if mode == Mode::Full { " --full" } else { "" },
            include_str!("../bench_notes.md")
        );
        std::fs::write(root.join("BENCHMARKS.md"), doc)?;
        println!("wrote BENCHMARKS.md");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
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

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
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
