//! `cargo xtask order [--secs N]`: writes `link/start-and-idle.order`, the
//! functions the daemon runs to start, while idle and to read its first
//! lines, which `build.rs` has the linker put together at the head of the
//! text (see there for why).
//!
//! The release daemon runs under callgrind in a network namespace of its own
//! with one jail on one file, configured and started as scenario 4 of the
//! benchmarks starts it (the keys a config has decide which of the config
//! reader's code runs).
//! Callgrind's counts are dumped twice: after start and N seconds of idle,
//! and after a hundred ordinary lines were appended and read (what a daemon
//! does soon after it starts); then it is stopped, and what its stop ran is
//! left out. The list is the functions of the first dump, then those only
//! the second saw, each part in the binary's own order: the code idle needs
//! is packed first, and the code reading lines goes on right after it.
//! Code changes rename and move functions (the numbered names of local
//! copies change with nearly any change), so the list goes stale: a name
//! the build no longer has is skipped (costing memory, never correctness),
//! and `cargo xtask bench --only-memory` shows when the resident code grows.
//! Run it on the final release build, then build again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::memory;

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
            "[daemon]\nsocket = \"{d}/nftjail.sock\"\n\
             [jail.bench]\nfilter = \"postfix-sasl\"\nlogpath = \"{l}\"\nport = \"submission\"\n\
             maxretry = 5\nfindtime = \"1h\"\nbantime = \"1h\"\n",
            d = d.display(),
            l = log.display()
        ),
    )?;
    let out = d.join("callgrind.out");
    let err = d.join("stderr");
    eprintln!("order: the daemon under callgrind: start, {secs} s of idle, a hundred lines");
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
        .arg("--state-dir")
        .arg(d.join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .context("cannot run valgrind (cargo xtask deps installs it)")?;
    let pid = child.id();
    let profiled = (|| {
        wait_for(&err, " ready: ", Duration::from_secs(300))?;
        std::thread::sleep(Duration::from_secs(secs));
        let idle = dump(pid, &out, 1)?;
        memory::append(&log, &memory::ordinary_lines())?;
        // Read when the daemon's log says nothing more for a while: the
        // lines are ordinary, so it says nothing; a fixed wait, generous
        // for valgrind's pace.
        std::thread::sleep(Duration::from_secs(15));
        let read = dump(pid, &out, 2)?;
        Ok::<_, anyhow::Error>((idle, read))
    })();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the daemon under callgrind did not stop within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (idle, read) = profiled?;
    let bin_name = bin.to_string_lossy();
    let mut names = Names::default();
    let idle = names.functions_run_in(&idle, &bin_name);
    let read = names.functions_run_in(&read, &bin_name);
    if idle.is_empty() {
        bail!("callgrind saw no function of {} run", bin.display());
    }
    // The binary's own order: `nm -n` lists symbols by address.
    let nm = Command::new("nm")
        .args(["-n", "--defined-only"])
        .arg(&bin)
        .output()
        .context("cannot run nm (binutils)")?;
    let nm = String::from_utf8_lossy(&nm.stdout);
    let mut seen = HashSet::new();
    let mut list = String::new();
    let mut counts = Vec::new();
    for part in [&idle, &read] {
        for line in nm.lines() {
            let mut f = line.split_whitespace();
            let (Some(_addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if matches!(kind, "t" | "T") && part.contains(name) && seen.insert(name.to_string()) {
                list.push_str(name);
                list.push('\n');
            }
        }
        counts.push(seen.len());
    }
    let path = root.join("link/start-and-idle.order");
    std::fs::write(&path, &list)?;
    let first = counts.first().copied().unwrap_or(0);
    eprintln!(
        "order: {} functions ({first} at start and idle, {} more to read lines) written to {}",
        seen.len(),
        seen.len() - first,
        path.display()
    );
    Ok(())
}

/// Waits until `file` holds `text`.
fn wait_for(file: &Path, text: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains(text)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon under callgrind did not say {text:?} within {} s",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Has callgrind dump its counts so far (and zero them), and returns the
/// `n`th dump: callgrind writes it beside `out`, as `out.n`.
fn dump(pid: u32, out: &Path, n: u32) -> Result<String> {
    let status = Command::new("callgrind_control")
        .arg("--dump")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()
        .context("cannot run callgrind_control (valgrind)")?;
    if !status.success() {
        bail!("callgrind_control --dump {pid} failed");
    }
    let file = out.with_file_name(format!(
        "{}.{n}",
        out.file_name()
            .map_or_else(Default::default, |f| f.to_string_lossy())
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Complete once its totals line is written.
        if let Ok(text) = std::fs::read_to_string(&file) {
            if text.contains("\ntotals:") {
                return Ok(text);
            }
        }
        if Instant::now() > deadline {
            bail!("callgrind wrote no dump at {}", file.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Callgrind's compressed names: `fn=(7) name` the first time, `fn=(7)`
/// after; `cfn=`/`cob=` lines name callees the same way. A later dump of
/// the same run may refer to names an earlier one defined, so the tables
/// are kept across the dumps, read in order.
#[derive(Default)]
struct Names {
    functions: HashMap<String, String>,
    objects: HashMap<String, String>,
}

/// A compressed name: `(id) text` defines `id`, `(id)` alone refers to an
/// earlier definition, plain `text` stands for itself.
fn interned(
    table: &mut HashMap<String, String>,
    id: Option<&str>,
    text: Option<&str>,
) -> Option<String> {
    match (id, text) {
        (Some(id), Some(t)) => {
            table.insert(id.to_string(), t.to_string());
            Some(t.to_string())
        }
        (Some(id), None) => table.get(id).cloned(),
        (None, t) => t.map(str::to_string),
    }
}

impl Names {
    /// The names of the functions of object `binary` that a callgrind
    /// profile (or one dump of it) saw run.
    fn functions_run_in(&mut self, profile: &str, binary: &str) -> HashSet<String> {
        fn split(v: &str) -> (Option<&str>, Option<&str>) {
            match v.strip_prefix('(').and_then(|r| r.split_once(')')) {
                Some((id, rest)) => (Some(id), Some(rest.trim()).filter(|r| !r.is_empty())),
                None => (None, Some(v.trim())),
            }
        }
        let mut ours = false;
        let mut ran = HashSet::new();
        for line in profile.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (id, text) = split(value);
            match key {
                "ob" | "cob" => {
                    let path = interned(&mut self.objects, id, text);
                    if key == "ob" {
                        ours = path.as_deref() == Some(binary);
                    }
                }
                "fn" | "cfn" => {
                    let name = interned(&mut self.functions, id, text);
                    if key == "fn" && ours {
                        ran.extend(name);
                    }
                }
                _ => {}
            }
        }
        ran
    }
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
        let ran = Names::default().functions_run_in(profile, "/x/nftjail");
        let mut got: Vec<&str> = ran.iter().map(String::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, ["_RNvidle", "_RNvmain"]);
    }

    #[test]
    fn a_later_dump_reads_names_an_earlier_one_defined() {
        let first =
            "ob=(1) /x/nftjail\nfn=(1) _RNvstart\n0 1\nob=(2) /lib/libc.so.6\nfn=(2) read\n0 1\n";
        let second = "ob=(1)\nfn=(3) _RNvline\n0 1\nfn=(1)\n0 1\nob=(2)\nfn=(2)\n0 1\n";
        let mut names = Names::default();
        let start = names.functions_run_in(first, "/x/nftjail");
        let read = names.functions_run_in(second, "/x/nftjail");
        assert_eq!(start, HashSet::from(["_RNvstart".to_string()]));
        assert_eq!(
            read,
            HashSet::from(["_RNvline".to_string(), "_RNvstart".to_string()])
        );
    }
}
