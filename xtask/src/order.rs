//! `cargo xtask order [--secs N]`: writes `link/start-and-idle.order`, the
//! functions the daemon runs to start and while idle, which `build.rs` has
//! the linker put together at the head of the text (see there for why).
//!
//! The release daemon runs under callgrind in a network namespace of its own
//! with one jail on one file (as scenario 4 of the benchmarks measures it),
//! for N seconds of start and idle, then stops; every function of the
//! binary that callgrind saw run is listed, in the binary's own order. Code
//! changes rename and move functions, so the list goes stale: a name the
//! build no longer has is skipped (costing memory, never correctness), and
//! `cargo xtask bench --only-memory` shows when the resident code grows.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub fn order(root: &Path, args: &[&str]) -> Result<()> {
    let secs: u64 = match args.iter().position(|a| *a == "--secs") {
        Some(i) => args
            .get(i + 1)
            .context("--secs needs a value")?
            .parse()
            .context("--secs: a number of seconds")?,
        None => 40,
    };
    let bin = crate::cargo::release_binary(root)?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let log = d.join("mail.log");
    std::fs::write(&log, "")?;
    let cfg = d.join("nftjail.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
             [jail.bench]\nfilter = \"postfix-sasl\"\nlogpath = \"{l}\"\nport = \"submission\"\n",
            d = d.display(),
            l = log.display()
        ),
    )?;
    let out = d.join("callgrind.out");
    eprintln!("order: the daemon under callgrind for {secs} s of start and idle");
    // `unshare -n` execs valgrind, which runs the daemon in its own process:
    // the child is the daemon, and a SIGTERM stops it as systemd would.
    let mut child = Command::new("unshare")
        .arg("-n")
        .arg("valgrind")
        .args(["--tool=callgrind", "--demangle=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&bin)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run valgrind (cargo xtask deps installs it)")?;
    std::thread::sleep(Duration::from_secs(secs));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the daemon under callgrind did not stop within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let profile = std::fs::read_to_string(&out)
        .with_context(|| format!("callgrind wrote no profile at {}", out.display()))?;
    let ran = functions_run_in(&profile, &bin.to_string_lossy());
    if ran.is_empty() {
        bail!("callgrind saw no function of {} run", bin.display());
    }
    // The binary's own order: `nm -n` lists symbols by address.
    let nm = Command::new("nm")
        .args(["-n", "--defined-only"])
        .arg(&bin)
        .output()
        .context("cannot run nm (binutils)")?;
    let mut seen = HashSet::new();
    let mut list = String::new();
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        let mut f = line.split_whitespace();
        let (Some(_addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if matches!(kind, "t" | "T") && ran.contains(name) && seen.insert(name.to_string()) {
            list.push_str(name);
            list.push('\n');
        }
    }
    let path = root.join("link/start-and-idle.order");
    std::fs::write(&path, &list)?;
    eprintln!(
        "order: {} functions of {} run at start and idle written to {}",
        seen.len(),
        ran.len(),
        path.display()
    );
    Ok(())
}

/// The names of the functions of object `binary` that a callgrind profile
/// saw run. Names and objects are compressed: `fn=(7) name` the first
/// time, `fn=(7)` after; `cfn=`/`cob=` lines name callees the same way.
fn functions_run_in(profile: &str, binary: &str) -> HashSet<String> {
    fn split(v: &str) -> (Option<&str>, Option<&str>) {
        match v.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, rest)) => (Some(id), Some(rest.trim()).filter(|r| !r.is_empty())),
            None => (None, Some(v.trim())),
        }
    }
    let mut names: HashMap<String, String> = HashMap::new();
    let mut objects: HashMap<String, String> = HashMap::new();
    let mut ours = false;
    let mut ran = HashSet::new();
    for line in profile.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (id, text) = split(value);
        match key {
            "ob" | "cob" => {
                let path = match (id, text) {
                    (Some(id), Some(t)) => {
                        objects.insert(id.to_string(), t.to_string());
                        Some(t.to_string())
                    }
                    (Some(id), None) => objects.get(id).cloned(),
                    (None, t) => t.map(str::to_string),
                };
                if key == "ob" {
                    ours = path.as_deref() == Some(binary);
                }
            }
            "fn" | "cfn" => {
                let name = match (id, text) {
                    (Some(id), Some(t)) => {
                        names.insert(id.to_string(), t.to_string());
                        Some(t.to_string())
                    }
                    (Some(id), None) => names.get(id).cloned(),
                    (None, t) => t.map(str::to_string),
                };
                if key == "fn" && ours {
                    ran.extend(name);
                }
            }
            _ => {}
        }
    }
    ran
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_binarys_functions_are_read_through_compressed_names() {
        let profile = "\
ob=(1) /x/nftjail
fn=(1) _RNvmain
cob=(2) /lib/libc.so.6
cfn=(2) memcpy
calls=1 0
0 5
ob=(2)
fn=(2)
0 3
ob=(1)
fn=(3) _RNvidle
0 1
fn=(1)
0 1
";
        let ran = functions_run_in(profile, "/x/nftjail");
        let mut got: Vec<&str> = ran.iter().map(String::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, ["_RNvidle", "_RNvmain"]);
    }
}
