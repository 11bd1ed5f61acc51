//! Scenario 4, memory and restore: idle RSS beside fail2ban-rs's, bytes per
//! tracked address, and the time to start over bans already in the kernel or
//! only in the state store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::daemon::{Daemon, Netns};
use super::fail2ban_rs::fail2ban_rs_start;
use super::report::Targets;
use super::{elements_script, time, which, Mode};
use crate::gen::{self, Spec};

/// Scenario 4: idle RSS (beside fail2ban-rs's), bytes per tracked address,
/// restore and reboot times.
pub(super) fn memory_section(
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
    let mib = |k: u64| k as f64 / 1024.0;
    let _ = writeln!(
        report,
        "| idle RSS, one jail on one file (VmRSS, as the kernel counts it) | {} |",
        mem.idle.describe()
    );
    let _ = writeln!(
        report,
        "| RSS 2 s after a hundred ordinary log lines (no failure) | {} |",
        mem.read.describe()
    );
    let _ = writeln!(
        report,
        "| binary, stripped (text, data and bss mapped) | {} |",
        binary_size(nftjail)
    );
    let _ = writeln!(
        report,
        "| RSS after {distinct} distinct addresses with one failure each | {:.1} MiB ({:.0} bytes per tracked address in anonymous memory; {:.0} with the code pages the flood ran) |",
        mem.loaded_kib as f64 / 1024.0,
        mem.loaded_anon_kib.saturating_sub(mem.read.anon) as f64 * 1024.0 / distinct as f64,
        (mem.loaded_kib.saturating_sub(mem.read.total)) as f64 * 1024.0 / distinct as f64
    );
    let _ = writeln!(
        report,
        "| start with {} bans already in the kernel and none in the store, until ready (reconcile, dump; the state writer records them in the store after ready) | {:.3} s |",
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
    let idle_mib = mib(mem.idle.total);
    targets.add(
        "idle RSS ≤ 10 MiB",
        format!("{idle_mib:.1} MiB"),
        idle_mib <= 10.0,
    );
    if let Some((rss, read, bin)) = fail2ban_rs_idle(dir)? {
        let rs_mib = mib(rss.total);
        let _ = writeln!(
            report,
            "| fail2ban-rs 1.5.4 idle RSS, same jail | {} |",
            rss.describe()
        );
        let _ = writeln!(
            report,
            "| fail2ban-rs 1.5.4 RSS 2 s after the same hundred lines | {} |",
            read.describe()
        );
        let _ = writeln!(
            report,
            "| fail2ban-rs 1.5.4 binary, stripped (text, data and bss mapped) | {} |",
            binary_size(&bin)
        );
        targets.add(
            "idle RSS below fail2ban-rs's",
            format!("{idle_mib:.1} vs {rs_mib:.1} MiB"),
            idle_mib < rs_mib,
        );
        let (ours, theirs) = (mib(mem.read.total), mib(read.total));
        targets.add(
            "RSS after a hundred ordinary lines below fail2ban-rs's",
            format!("{ours:.1} vs {theirs:.1} MiB"),
            ours < theirs,
        );
    }
    // What the addresses take is anonymous memory; the code the flood runs
    // (file pages, resident once, not per address) is left out here and
    // shown in the table above.
    let per = mem.loaded_anon_kib.saturating_sub(mem.read.anon) as f64 * 1024.0 / distinct as f64;
    targets.add(
        "≤ 200 bytes per tracked address",
        format!("{per:.0} bytes"),
        per <= 200.0,
    );
    Ok(())
}

struct Memory {
    idle: Rss,
    /// 2 s after a hundred ordinary lines were appended to the idle log.
    read: Rss,
    loaded_kib: u64,
    loaded_anon_kib: u64,
    restore_n: u32,
    restore_secs: f64,
    reboot_secs: f64,
}

fn memory(nftjail: &Path, dir: &Path, distinct: u32) -> Result<Memory> {
    let d = Daemon::start(nftjail, dir, "memory", 5, Netns::new("memory")?)?;
    // Idle as fail2ban-rs's is read: 2 s after start (the daemon gives its
    // start-up memory back 1 s after ready).
    std::thread::sleep(Duration::from_secs(2));
    let idle = Rss::of(d.child.id());
    append(&d.log, &ordinary_lines())?;
    std::thread::sleep(Duration::from_secs(2));
    let read = Rss::of(d.child.id());
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
    append(&d.log, &gen::generate(&spec))?;
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
    let loaded_anon_kib = status_kib(d.child.id(), "RssAnon:");
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
    // Stopped as systemd stops it: the bans it adopted are recorded in the
    // store by then (its writer records them after ready).
    stop(d)?;

    // Reboot: an empty kernel (a new namespace) and the same state store.
    let start = Instant::now();
    let d = Daemon::start(nftjail, dir, "restore", 5, Netns::new("reboot")?)?;
    let reboot_secs = start.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&d.err).unwrap_or_default();
    if !log.contains(&format!("restored={restore_n}")) {
        bail!("reboot: the daemon did not restore {restore_n} bans from its store:\n{log}");
    }
    Ok(Memory {
        idle,
        read,
        loaded_kib,
        loaded_anon_kib,
        restore_n,
        restore_secs,
        reboot_secs,
    })
}

/// SIGTERM, and the daemon's exit awaited.
fn stop(mut d: Daemon) -> Result<()> {
    let pid = i32::try_from(d.child.id())?;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("the daemon did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `bin`'s size stripped (what a package would install; debug info and
/// symbols are never loaded), and what the loader maps of it: `size`'s
/// text, data and bss.
fn binary_size(bin: &Path) -> String {
    let stripped = std::env::temp_dir().join(format!("nftjail-bench-strip-{}", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    let len = if ok {
        std::fs::metadata(&stripped).map_or(0, |m| m.len())
    } else {
        0
    };
    let _ = std::fs::remove_file(&stripped);
    format!(
        "{:.1} MiB ({:.1} MiB mapped)",
        len as f64 / 1048576.0,
        loaded_bytes(bin) as f64 / 1048576.0
    )
}

/// What the loader maps of `bin`: its text, data and bss (`size`'s total).
fn loaded_bytes(bin: &Path) -> u64 {
    Command::new("size")
        .arg(bin)
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Resident memory as the kernel counts it (kB): VmRSS and its parts from
/// /proc/PID/status, and of the file-backed part, how much is the
/// program's own file (the rest: shared libraries and mapped files), from
/// /proc/PID/smaps.
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
    own: u64,
}

impl Rss {
    fn of(pid: u32) -> Rss {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let exe = exe.to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        let mut own = 0;
        let mut in_exe = false;
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                // A mapping's header: range, perms, offset, dev, inode, path.
                in_exe = !exe.is_empty() && words.nth(4) == Some(exe.as_str());
            } else if in_exe {
                // Its written data pages are anonymous (copied on write).
                let kib = words
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                match first {
                    "Rss:" => own += kib,
                    "Anonymous:" => own = own.saturating_sub(kib),
                    _ => {}
                }
            }
        }
        Rss {
            total: status_kib(pid, "VmRSS:"),
            anon: status_kib(pid, "RssAnon:"),
            file: status_kib(pid, "RssFile:") + status_kib(pid, "RssShmem:"),
            own,
        }
    }

    fn describe(&self) -> String {
        let mib = |k: u64| k as f64 / 1024.0;
        format!(
            "{:.1} MiB ({:.1} anon, {:.1} file: {:.1} the binary's own pages, {:.1} shared libraries and mapped files)",
            mib(self.total),
            mib(self.anon),
            mib(self.file),
            mib(self.own),
            mib(self.file.saturating_sub(self.own))
        )
    }
}

/// fail2ban-rs RSS with an equivalent jail, in its own namespace: idle, and
/// after the same hundred ordinary lines; and its binary.
fn fail2ban_rs_idle(dir: &Path) -> Result<Option<(Rss, Rss, PathBuf)>> {
    let Some(bin) = which("fail2ban-rs") else {
        return Ok(None);
    };
    let ns = Netns::new("f2brs")?;
    let (log, mut child) = fail2ban_rs_start(&bin, dir, &ns, "f2brs-idle", "postfix", "")?;
    std::thread::sleep(Duration::from_secs(2));
    let idle = Rss::of(child.id());
    append(&log, &ordinary_lines())?;
    std::thread::sleep(Duration::from_secs(2));
    let read = Rss::of(child.id());
    let alive = child.try_wait()?.is_none();
    let _ = child.kill();
    let _ = child.wait();
    Ok(alive.then_some((idle, read, bin)))
}

/// A hundred ordinary mail-log lines ending now (no failure): what any
/// running daemon soon reads, which compiles the date reading the idle
/// figure has not needed yet.
pub(crate) fn ordinary_lines() -> String {
    let (day, first_second) = gen::ending_now(100);
    gen::generate(&Spec {
        lines: 100,
        attack: 0.0,
        attackers: 1,
        v6: 0.0,
        day,
        first_second,
        seed: 3,
    })
}

/// Appends `text` to `log`.
pub(crate) fn append(log: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)?
        .write_all(text.as_bytes())?;
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
