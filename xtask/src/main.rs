#![allow(clippy::disallowed_methods)]
//! Project tasks: `cargo xtask deps | demo | ci | deb | install | tidy | bench | gen | fuzz`.
//!
//! xtask is the one place that forks tools freely (apt-get, cargo, ip): it
//! sets the machine up and drives the product, it is not the product.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

mod bench;
mod cargo;
mod f2b;
mod fuzz;
mod gen;
mod nl;
mod order;
mod package;
mod tidy;

/// Debian packages building nftjail, its package and the demo need, with
/// why: all `cargo xtask demo` and `cargo xtask deb` install on a host.
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("libclang1", "rustables runs bindgen at build time"),
    (
        "libsystemd0",
        "the journal source loads libsystemd (sd-journal) when a journal is read",
    ),
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
        "dpkg-dev",
        "dpkg-shlibdeps computes the .deb's Depends (cargo xtask deb)",
    ),
    ("binutils", "`strip` for the packaged binary"),
];

/// Debian packages only the tests and benchmarks need (`cargo xtask ci`,
/// `cargo xtask deps`), with why.
const PACKAGES: &[(&str, &str)] = &[
    (
        "python3-pyinotify",
        "fail2ban-server's inotify backend, its fastest, for the side-by-side benchmark",
    ),
    (
        "fail2ban",
        "its sample logs are a test corpus for our filters; fail2ban-regex is a benchmark peer",
    ),
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
    ("lintian", "checks the .deb in `cargo xtask ci`"),
    (
        "ufw",
        "real ufw (and the iptables it drives) for the ufw backend's tests, in private namespaces",
    ),
    (
        "redis-server",
        "a real Redis (and redis-cli) for the farm-mode tests and benchmark, run by the tests themselves",
    ),
];

/// Debian packages the fuzz targets need beside the build's (`cargo xtask
/// fuzz`, and `cargo xtask ci`, which runs them briefly), with why.
const FUZZ_PACKAGES: &[(&str, &str)] = &[(
    "g++",
    "libfuzzer-sys compiles libFuzzer, which is C++, into each fuzz target",
)];

/// `cargo xtask order`: the daemon's start and idle code, seen by callgrind.
const ORDER_PACKAGES: &[(&str, &str)] = &[(
    "valgrind",
    "callgrind lists the functions the daemon runs at start and idle (cargo xtask order)",
)];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("deps") => {
            deps(ALL_PACKAGES)?;
            fuzz::install_cargo_fuzz(&root())
        }
        Some("demo") => demo(),
        Some("ci") => ci(&rest),
        Some("deb") => {
            deps(&[BUILD_PACKAGES])?;
            let deb = package::deb::build(&root())?;
            // `--check`: what `cargo xtask ci` checks of the package (needs lintian).
            if rest.contains(&"--check") {
                package::verify::verify(&root(), &deb)?;
            }
            Ok(())
        }
        Some("install") => package::install::install(&root(), &rest),
        Some("bench") => {
            deps(ALL_PACKAGES)?;
            bench::bench(&rest, &root())
        }
        Some("gen") => gen::cli(&rest),
        Some("order") => {
            deps(&[BUILD_PACKAGES, ORDER_PACKAGES])?;
            order::order(&root(), &rest)
        }
        Some("fuzz") => {
            deps(&[BUILD_PACKAGES, FUZZ_PACKAGES])?;
            fuzz::cli(&root(), &rest)
        }
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
                 deps   install the Debian packages the build and the tests need (as root),\n\
                 \x20      and cargo-fuzz\n\
                 demo   ban a simulated SASL brute force in a throwaway network namespace\n\
                 ci     everything CI runs: deps, fmt, tidy, clippy, all tests, fuzzing, the .deb\n\
                 deb    target/debian/nftjail_VERSION_ARCH.deb; --check: list, unpack, run, lintian\n\
                 install [--prefix DIR (/usr/local)] [--destdir DIR]  the .deb's files, without dpkg\n\
                 tidy   the rules in tidy.toml: module layering, file sizes, no forks\n\
                 bench  nftjail beside grep, fail2ban-regex and nft -f; writes BENCHMARKS.md\n\
                 \x20      (--smoke: tiny sizes, --full: large sizes)\n\
                 order  [--secs N (40)]  link/start-and-idle.order: the functions the daemon\n\
                 \x20      runs at start and idle (callgrind), laid out together by build.rs\n\
                 gen    the benchmarks' mail log: --lines N --attack SHARE --attackers N\n\
                 \x20      --v6 SHARE --seed N [-o FILE] (stdout by default)\n\
                 fuzz   [--secs N (60)] [TARGET...]  each fuzz target of fuzz/ for N seconds\n\
                 \x20      from the committed seeds; fails on a crash"
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

/// Every package the tests need: the build's, the test-only ones and the fuzzers'.
const ALL_PACKAGES: &[&[(&str, &str)]] = &[BUILD_PACKAGES, PACKAGES, FUZZ_PACKAGES];

/// Installs the missing packages with apt-get when root, after saying which
/// and why; otherwise says what is missing. No service a package brings
/// (rsyslog, fail2ban) is started: see [`NoServiceStarts`].
fn deps(lists: &[&[(&'static str, &'static str)]]) -> Result<()> {
    let wanted: Vec<(&str, &str)> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    let missing: Vec<(&str, &str)> = wanted
        .iter()
        .copied()
        .filter(|(p, _)| !installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!(
            "deps: all present ({})",
            wanted.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
        );
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    if !is_root() {
        for (p, why) in &missing {
            eprintln!("missing: {p} ({why})");
        }
        bail!("run as root (or: sudo apt-get install {})", names.join(" "));
    }
    eprintln!(
        "deps: installing {} Debian package(s) with apt-get:",
        missing.len()
    );
    for (p, why) in &missing {
        eprintln!("  {p}: {why}");
    }
    let _guard = NoServiceStarts::install()?;
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&names)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A /usr/sbin/policy-rc.d that exits 101 ("action forbidden") while
/// apt-get runs, so packages installed for the tests (rsyslog, fail2ban)
/// do not start their services on the admin's machine: invoke-rc.d and
/// deb-systemd-invoke ask it first. Made only when none exists, removed on
/// drop; an existing one is the admin's and is left alone.
struct NoServiceStarts {
    created: Option<PathBuf>,
}

impl NoServiceStarts {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> Result<NoServiceStarts> {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(Self::PATH);
        if path.exists() {
            eprintln!(
                "deps: {} exists; it decides which services start",
                path.display()
            );
            return Ok(NoServiceStarts { created: None });
        }
        std::fs::write(
            &path,
            "#!/bin/sh\n# Written by cargo xtask deps while apt-get runs: start no service.\nexit 101\n",
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        eprintln!(
            "deps: services stay stopped ({} exits 101 until apt-get is done)",
            path.display()
        );
        Ok(NoServiceStarts {
            created: Some(path),
        })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = &self.created {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!(
                    "deps: cannot remove {}: {e}; remove it by hand",
                    path.display()
                );
            }
        }
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Everything CI runs, in the order a failure is cheapest to report.
fn ci(extra: &[&str]) -> Result<()> {
    deps(ALL_PACKAGES)?;
    if !is_root() {
        bail!("the namespace tests need root (they create network namespaces)");
    }
    // The configs the tests write take the umask; root's usual 022 keeps them
    // from being group-writable, which the daemon refuses (config/strict.rs).
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o022) };
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
    // Every fuzz target briefly, from its seeds: each still builds and a
    // first round of mutations finds nothing (longer runs: `cargo xtask fuzz`).
    fuzz::run(&root(), fuzz::CI_SECS, Some(fuzz::CI_SEED), fuzz::TARGETS)?;
    // The package, built once from the release binary and checked as an
    // admin meets it (not inside `cargo test`: see package/verify.rs).
    let deb = package::deb::build(&root())?;
    package::verify::verify(&root(), &deb)?;
    // Every benchmark scenario at tiny size, so the harness cannot rot.
    bench::bench(&["--smoke"], &root())?;
    eprintln!("ci: all checks passed");
    Ok(())
}

fn demo() -> Result<()> {
    deps(&[BUILD_PACKAGES])?;
    if !is_root() {
        bail!("the demo creates network namespaces: run it as root");
    }
    let nftjail = cargo::release_binary(&root())?;
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
