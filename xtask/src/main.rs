#![allow(clippy::disallowed_methods)]
//! Project tasks: `cargo xtask deps | demo | ci | tidy | bench | gen`.
//!
//! xtask is the one place that forks tools freely (apt-get, cargo, ip): it
//! sets the machine up and drives the product, it is not the product.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

mod bench;
mod f2b;
mod gen;
mod nl;
mod tidy;

/// Debian packages the build, the demo and the tests need, with why.
const PACKAGES: &[(&str, &str)] = &[
    ("libclang1", "rustables runs bindgen at build time"),
    (
        "nftables",
        "the `nft` CLI, an independent reader of the kernel in tests and the demo",
    ),
    (
        "iproute2",
        "`ip netns` / veth for the namespace tests and the demo",
    ),
    ("util-linux", "`unshare` for the demo's private /var/log"),
    (
        "python3-pyinotify",
        "fail2ban-server's inotify backend, its fastest, for the side-by-side benchmark",
    ),
    (
        "fail2ban",
        "its sample logs are a test corpus for our filters; fail2ban-regex is a benchmark peer",
    ),
    (
        "libsystemd-dev",
        "the journal source links libsystemd (sd-journal) through the systemd crate",
    ),
    ("pkg-config", "the systemd crate finds libsystemd with it"),
    (
        "systemd-journal-remote",
        "writes real journal files from export-format text for the journal tests",
    ),
    (
        "rsyslog",
        "a real forwarding syslog daemon for the syslog receiver tests",
    ),
    (
        "bsdutils",
        "`logger`, a real syslog sender for the syslog receiver tests",
    ),
    (
        "systemd",
        "`systemd-analyze verify` and `security` check the unit file in tests",
    ),
    (
        "curl",
        "a real HTTP client scraping /metrics in the metrics tests",
    ),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("deps") => deps(),
        Some("demo") => demo(),
        Some("ci") => ci(&rest),
        Some("bench") => {
            deps()?;
            bench::bench(&rest, &root())
        }
        Some("gen") => gen::cli(&rest),
        Some("tidy") => {
            if !tidy::tidy(&root())? {
                std::process::exit(1);
            }
            Ok(())
        }
        Some("listen") => probe::listen(&rest),
        Some("connect") => probe::connect(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 deps   install the Debian packages nftjail needs (as root)\n\
                 demo   ban a simulated SASL brute force in a throwaway network namespace\n\
                 ci     everything CI runs: deps, fmt, tidy, clippy, all tests\n\
                 tidy   the rules in tidy.toml: module layering, file sizes, no forks\n\
                 bench  nftjail beside grep, fail2ban-regex and nft -f; writes BENCHMARKS.md\n\
                 \x20      (--smoke: tiny sizes, --full: large sizes)\n\
                 gen    the benchmarks' mail log: --lines N --attack SHARE --attackers N\n\
                 \x20      --v6 SHARE --seed N [-o FILE] (stdout by default)"
            );
            bail!("no task given")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing packages with apt-get when root; otherwise says what is missing.
fn deps() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(p, _)| !installed(p))
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        eprintln!(
            "deps: all present ({})",
            PACKAGES.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
        );
        return Ok(());
    }
    if !is_root() {
        for (p, why) in PACKAGES.iter().filter(|(p, _)| missing.contains(p)) {
            eprintln!("missing: {p} ({why})");
        }
        bail!(
            "run as root (or: sudo apt-get install {})",
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Everything CI runs, in the order a failure is cheapest to report.
fn ci(extra: &[&str]) -> Result<()> {
    deps()?;
    if !is_root() {
        bail!("the namespace tests need root (they create network namespaces)");
    }
    run(cargo().args(["fmt", "--all", "--check"]))?;
    // Reading files only, so the architecture is checked before anything is built.
    if !tidy::tidy(&root())? {
        bail!("tidy: the tree breaks tidy.toml (listed above)");
    }
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace"]).args(extra))?;
    // Every benchmark scenario at tiny size, so the harness cannot rot.
    bench::bench(&["--smoke"], &root())?;
    eprintln!("ci: all checks passed");
    Ok(())
}

fn demo() -> Result<()> {
    deps()?;
    if !is_root() {
        bail!("the demo creates network namespaces: run it as root");
    }
    run(cargo().args(["build", "--release", "--bin", "nftjail"]))?;
    let nftjail = root().join("target/release/nftjail");
    let xtask = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(include_str!("demo.sh"))
        .env("NFTJAIL", nftjail)
        .env("XTASK", xtask)
        .stdin(Stdio::null());
    let status = cmd.status().context("cannot run bash for the demo")?;
    if !status.success() {
        bail!("the demo failed: {status}");
    }
    Ok(())
}

/// Tiny TCP endpoints for the demo, run inside namespaces with `ip netns exec`,
/// so the demo needs no netcat or python on a fresh machine.
mod probe {
    use std::io::Write;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    use anyhow::{Context, Result};

    pub fn listen(args: &[&str]) -> Result<()> {
        let addr: SocketAddr = args.first().context("listen ADDR:PORT")?.parse()?;
        let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"220 demo ESMTP\r\n");
        }
        Ok(())
    }

    pub fn connect(args: &[&str]) -> Result<()> {
        let addr: SocketAddr = args.first().context("connect ADDR:PORT")?.parse()?;
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(_) => println!("connect {addr}: connected"),
            Err(e) => println!("connect {addr}: {e}"),
        }
        Ok(())
    }
}
