//! `cargo xtask fuzz [--secs N] [--seed N] [TARGET...]`: builds the fuzz targets of
//! `fuzz/` (cargo-fuzz's layout) and runs each for N seconds, starting from
//! the committed seed corpus, and fails on the first crash. `cargo xtask
//! ci` runs them all briefly. The build is optimized either way: an
//! unoptimized one saves little build time (the instrumentation is most of
//! it) and runs the targets an order of magnitude slower.
//!
//! It works on a stable toolchain: cargo-fuzz adds `-Z` flags only for a
//! sanitizer, and with `--sanitizer none` every flag it passes (the
//! coverage instrumentation libFuzzer needs, `--cfg fuzzing`) is a stable
//! `-C` option. Debug assertions stay on, so an arithmetic overflow is a
//! crash too. The targets are plain safe Rust over our parsers, where
//! AddressSanitizer would find little that the panics and the invariants
//! each target asserts do not.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cargo;

/// Every target in fuzz/fuzz_targets/, each named for the input it reads.
pub const TARGETS: &[&str] = &[
    "matcher",
    "timestamp",
    "syslog",
    "config",
    "fail2ban",
    "pyregex",
    "control",
    "netlink",
];

/// Seconds per target in `cargo xtask ci`: a smoke run that proves every
/// target builds, reads its seeds and survives a first round of mutation.
pub const CI_SECS: u64 = 5;

/// libFuzzer's seed in `cargo xtask ci`: a fixed one, so CI explores the
/// same inputs in the same order on every machine, and a crash it could
/// meet is met first by `cargo xtask fuzz --seed 1` run longer; a new find
/// then comes from a change to the code, not from the luck of a run.
pub const CI_SEED: u64 = 1;

/// `cargo xtask fuzz` arguments.
pub fn cli(root: &Path, args: &[&str]) -> Result<()> {
    let mut secs = 60;
    let mut seed = None;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--secs" => {
                secs = it
                    .next()
                    .context("--secs needs a number of seconds")?
                    .parse()
                    .context("--secs needs a whole number of seconds")?;
            }
            "--seed" => {
                seed = Some(
                    it.next()
                        .context("--seed needs a number")?
                        .parse()
                        .context("--seed needs a whole number")?,
                );
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown fuzz argument {other:?}; targets: {}",
                TARGETS.join(" ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    run(root, secs, seed, &targets).map(|_| ())
}

/// Installs cargo-fuzz when `cargo fuzz` is not there (`cargo xtask deps`).
pub fn install_cargo_fuzz(root: &Path) -> Result<()> {
    let present = cargo::cargo_command(root)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        eprintln!("deps: cargo-fuzz present");
        return Ok(());
    }
    eprintln!("deps: installing cargo-fuzz (builds and runs the fuzz targets of fuzz/)");
    crate::run(cargo::cargo_command(root).args(["install", "cargo-fuzz", "--locked"]))
}

/// What one target did in its run.
pub struct Outcome {
    pub target: String,
    pub runs: u64,
    pub secs: f64,
    /// Inputs in its working corpus after the run.
    pub corpus: usize,
}

/// Builds every target once, then runs each in turn; the first crash (or
/// input that hangs past the timeout) fails the task with the input saved.
/// `seed`: libFuzzer's own random one when None.
pub fn run(root: &Path, secs: u64, seed: Option<u64>, targets: &[&str]) -> Result<Vec<Outcome>> {
    install_cargo_fuzz(root)?;
    let fuzz_dir = root.join("fuzz");
    let built = Instant::now();
    let mut cmd = cargo::cargo_command(root);
    cmd.args(["fuzz", "build", "--sanitizer", "none", "--debug-assertions"])
        .env("RUSTFLAGS", rustflags());
    crate::run(&mut cmd)?;
    eprintln!(
        "fuzz: targets built in {:.0} s",
        built.elapsed().as_secs_f64()
    );
    let bin_dir = cargo::target_dir(&fuzz_dir)?
        .join(host_triple()?)
        .join("release");
    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_one(&fuzz_dir, &bin_dir, target, secs, seed)?);
    }
    eprintln!("fuzz: {secs} s per target, executions:");
    for o in &outcomes {
        eprintln!(
            "  {:<10} {:>10} runs  {:>8.0}/s  corpus {}",
            o.target,
            o.runs,
            o.runs as f64 / o.secs.max(1.0),
            o.corpus
        );
    }
    Ok(outcomes)
}

fn run_one(
    fuzz_dir: &Path,
    bin_dir: &Path,
    target: &str,
    secs: u64,
    seed: Option<u64>,
) -> Result<Outcome> {
    let seeds = seed_dir(fuzz_dir, target);
    // New inputs go to a working corpus outside the tree, which grows over
    // local runs; the committed seeds are only read.
    let work = cargo::target_dir(fuzz_dir)?.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    for dir in [&work, &artifacts] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_path = cargo::target_dir(fuzz_dir)?.join(format!("fuzz-{target}.log"));
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = Command::new(bin_dir.join(target));
    if let Some(seed) = seed {
        cmd.arg(format!("-seed={seed}"));
    }
    cmd.arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        // A slow input is a finding: lines and datagrams must be cheap.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work)
        .arg(&seeds)
        .stdout(Stdio::null())
        .stderr(log);
    eprintln!("fuzz: {target} for {secs} s (log: {})", log_path.display());
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run the {target} fuzz target; is it built?"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("  | {line}");
        }
        bail!(
            "fuzz target {target} failed ({status}); the input is saved in {}/ \
             (replay: {} INPUT); make it a regression test and fix the code",
            artifacts.display(),
            bin_dir.join(target).display()
        );
    }
    Ok(Outcome {
        target: target.to_string(),
        runs: final_stat(&text, "number_of_executed_units").unwrap_or(0),
        secs: elapsed,
        corpus: fs::read_dir(&work).map(|d| d.count()).unwrap_or(0),
    })
}

/// RUSTFLAGS for the fuzz build. A build script that links a probe
/// program with the target's flags (as the systemd crate's did) gets the
/// coverage instrumentation but not libFuzzer, which defines the
/// instrumentation's symbols: left unresolved in the probe (never run),
/// they are resolved in every fuzz target, which links libFuzzer. Where no
/// such script runs the flag changes nothing. cargo-fuzz puts its own
/// flags before these.
fn rustflags() -> String {
    const PROBE: &str = "-Clink-arg=-Wl,--unresolved-symbols=ignore-in-object-files";
    match std::env::var("RUSTFLAGS") {
        Ok(own) if !own.trim().is_empty() => format!("{own} {PROBE}"),
        _ => PROBE.to_string(),
    }
}

/// A `stat::NAME: N` line of libFuzzer's final statistics.
fn final_stat(log: &str, name: &str) -> Option<u64> {
    let key = format!("stat::{name}:");
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&key)?.trim().parse().ok())
}

/// The triple cargo-fuzz builds for (`--target` of the host), which names
/// the directory the binaries land in.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run {rustc} -vV"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host triple")
}

/// Where a target's committed seeds are.
fn seed_dir(fuzz_dir: &Path, target: &str) -> PathBuf {
    fuzz_dir.join("corpus").join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read_from_the_log() {
        let log =
            "#1234 DONE cov: 10\nstat::number_of_executed_units: 98765\nstat::peak_rss_mb: 40\n";
        assert_eq!(final_stat(log, "number_of_executed_units"), Some(98765));
        assert_eq!(final_stat(log, "peak_rss_mb"), Some(40));
        assert_eq!(final_stat("no stats", "number_of_executed_units"), None);
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap_or_default();
        for t in TARGETS {
            assert!(
                root.join(format!("fuzz/fuzz_targets/{t}.rs")).is_file(),
                "{t}: no source"
            );
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "{t}: not in fuzz/Cargo.toml"
            );
            let seeds = fs::read_dir(seed_dir(&root.join("fuzz"), t))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(seeds > 0, "{t}: no committed seeds");
        }
    }
}
