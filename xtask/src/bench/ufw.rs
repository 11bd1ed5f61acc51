//! Scenario 2b, the ufw backend beside fail2ban's `action = ufw`: bans/s in
//! a burst of attackers and ban latency (decisive line written → its rule
//! live in ufw's user chain), on the same generated log.
//!
//! Each tool gets a network namespace with ufw enabled in it (the Debian
//! package, the admin's rules of a mail host) and a private mount namespace
//! over a copy of `/etc/ufw` and `/run`, so ufw, nftjail, fail2ban-server
//! and the `ufw` processes its action forks all see that copy and that
//! namespace's chains; the host's firewall is never touched. "Live" is the
//! kernel's word: iptables runs on nf_tables here, so `nft monitor` reports
//! each rule ufw's chain gets, and `iptables -S` counts them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::daemon::Netns;
use super::report::human;
use super::Mode;
use crate::f2b;
use crate::gen::{self, Spec};

/// A namespace with ufw enabled in it over its own copy of ufw's files.
struct UfwNs {
    ns: Netns,
    root: PathBuf,
}

impl UfwNs {
    fn new(dir: &Path, tag: &str) -> Result<UfwNs> {
        if !Path::new("/usr/sbin/ufw").exists() {
            bail!("ufw is missing: run `cargo xtask deps`");
        }
        let ns = Netns::new(tag)?;
        let root = dir.join(format!("ufw-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("run"))?;
        let etc = root.join("etc");
        let ok = Command::new("cp")
            .args(["-a", "/etc/ufw"])
            .arg(&etc)
            .status()?
            .success();
        if !ok {
            bail!("cannot copy /etc/ufw");
        }
        for f in ["user.rules", "user6.rules"] {
            std::fs::copy(format!("/usr/share/ufw/iptables/{f}"), etc.join(f))?;
        }
        std::fs::write(etc.join("ufw.conf"), "ENABLED=no\nLOGLEVEL=off\n")?;
        // ufw enable would apply these kernel settings; none is needed here.
        std::fs::write(etc.join("sysctl.conf"), "")?;
        let u = UfwNs { ns, root };
        // A mail host's rules: a network refused by hand, then the services.
        for args in [
            &["--force", "enable"][..],
            &["allow", "587/tcp"],
            &["allow", "80"],
            &["insert", "1", "reject", "from", "95.181.157.0/24"],
        ] {
            let out = u.command("ufw").args(args).output()?;
            if !out.status.success() {
                bail!(
                    "ufw {args:?} in {}: {}",
                    u.ns.0,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(u)
    }

    /// `program` in the namespace, over this copy of /etc/ufw and /run.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.0, "unshare", "-m"])
            .args(["--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/ufw && mount --bind {} /run && exec \"$@\"",
                self.root.join("etc").display(),
                self.root.join("run").display()
            ))
            .args(["sh", program]);
        c
    }

    /// Rules of ours or fail2ban's live in ufw's IPv4 user chain (the
    /// attackers are 10.0.0.0/8).
    fn live(&self) -> Result<usize> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns.0])
            .args(["iptables", "-w", "-S", "ufw-user-input"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" -s 10."))
            .count())
    }

    /// `nft monitor new rules` in the namespace: each line with when it came.
    fn monitor(&self) -> Result<(Child, Receiver<(Instant, String)>)> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0])
            .args(["nft", "monitor", "new", "rules"]);
        super::latency::monitor(cmd)
    }
}

/// A daemon (nftjail or fail2ban-server) in a [`UfwNs`]; killed on drop.
struct Running {
    child: Child,
    ufw: UfwNs,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(file: &Path, needle: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not start within 30 s; log tail:\n{}",
                text.lines().rev().take(8).collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nftjail with `backend = "ufw"`, one jail on the log.
fn nftjail(nftjail: &Path, dir: &Path, tag: &str, maxretry: u32) -> Result<Running> {
    let ufw = UfwNs::new(dir, tag)?;
    let log = dir.join(format!("{tag}.log"));
    std::fs::write(&log, "")?;
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nbackend = \"ufw\"\nsocket = \"{}\"\n[jail.bench]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = {maxretry}\nfindtime = \"1h\"\nbantime = \"1h\"\n",
            dir.join(format!("{tag}.sock")).display(),
            log.display()
        ),
    )?;
    let err = dir.join(format!("{tag}.err"));
    let child = ufw
        .command(&nftjail.display().to_string())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join(format!("{tag}-state")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let r = Running { child, ufw, log };
    wait_for(&err, " ready: ", "nftjail")?;
    Ok(r)
}

/// fail2ban-server (the Debian package) with `banaction = ufw`: its stock
/// ufw action, one `ufw prepend reject from IP` per ban.
fn fail2ban(dir: &Path, tag: &str, maxretry: u32) -> Result<Running> {
    let ufw = UfwNs::new(dir, tag)?;
    let (conf, log) = crate::f2b::config(dir, tag, maxretry, "ufw")?;
    let child = ufw
        .command("fail2ban-server")
        .args(["-f", "-x", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start fail2ban-server")?;
    let r = Running { child, ufw, log };
    wait_for(
        &conf.join("server.log"),
        "Jail 'bench' started",
        "fail2ban-server",
    )?;
    Ok(r)
}

/// The burst: `n` attackers each reaching maxretry = 3 in one append;
/// (seconds, rules live) when `goal` rules are live or at `limit`.
fn burst(r: &Running, n: u32, goal: usize, limit: Duration) -> Result<(f64, usize)> {
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
    std::fs::OpenOptions::new()
        .append(true)
        .open(&r.log)?
        .write_all(text.as_bytes())?;
    let start = Instant::now();
    loop {
        let live = r.ufw.live()?;
        let took = start.elapsed();
        if live >= goal || took > limit {
            return Ok((took.as_secs_f64(), live));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One decisive line at a time (maxretry = 1), each timed until `nft
/// monitor` reports a rule for its address in ufw's chain; stops at `limit`.
fn latency(r: &Running, samples: u32, limit: Duration) -> Result<Vec<f64>> {
    let (mut monitor, rx) = r.ufw.monitor()?;
    // Rules of the earlier bans come again with each reload: only a rule
    // for this address in ufw's chain counts.
    let lat = super::latency::decisive_lines(
        &r.log,
        &rx,
        samples,
        limit,
        Duration::from_secs(20),
        |l, addr| l.contains("ufw-user-input") && l.contains(&format!("ip saddr {addr} ")),
    );
    let _ = monitor.kill();
    let _ = monitor.wait();
    lat
}

fn burst_cell(secs: f64, live: usize, goal: usize) -> String {
    let rate = human(live as f64 / secs, "bans/s");
    if live >= goal {
        format!("{live} in {secs:.2} s ({rate})")
    } else {
        format!("{live} after {secs:.0} s ({rate}), stopped")
    }
}

/// Scenario 2b: the section of the report.
pub(super) fn ufw_section(
    report: &mut String,
    mode: Mode,
    nftjail_bin: &Path,
    dir: &Path,
) -> Result<()> {
    let (n, f2b_goal, samples, f2b_samples) = match mode {
        Mode::Smoke => (100u32, 20usize, 20u32, 10u32),
        _ => (1_000, 200, 200, 100),
    };
    let limit = Duration::from_secs(if mode == Mode::Smoke { 20 } else { 60 });
    let _ = writeln!(
        report,
        "\n## 2b. The ufw backend beside fail2ban's `action = ufw`\n\n\
         ufw enabled in a network namespace (a mail host's rules: a manual reject, allow 587/tcp, allow 80) over a private copy of /etc/ufw and /run; nftjail with `backend = \"ufw\"` and fail2ban-server 1.0.2 with `banaction = ufw` (its stock action: one `ufw prepend reject from IP` per ban) read the same generated log. \
         Burst: {n} attackers each reaching maxretry = 3 in one append, timed from the append's return until the rules are live in ufw's chain (`iptables -S ufw-user-input` counted every 10 ms); fail2ban-server is stopped at {f2b_goal} rules or {}s, its rate is what it reached. \
         Latency: maxretry = 1, one decisive line at a time, until `nft monitor` reports the address's rule in ufw-user-input.\n\n\
         | tool | burst: rules live | latency samples | p50 | p99 | max |\n|---|---|---|---|---|---|",
        limit.as_secs()
    );
    let r = nftjail(nftjail_bin, dir, "ufw-burst", 3)?;
    let (secs, live) = burst(&r, n, n as usize, Duration::from_secs(120))?;
    drop(r);
    let burst_nj = burst_cell(secs, live, n as usize);
    let r = nftjail(nftjail_bin, dir, "ufw-lat", 1)?;
    let lat = latency(&r, samples, Duration::from_secs(120))?;
    drop(r);
    let _ = writeln!(
        report,
        "| nftjail (`backend = \"ufw\"`) | {burst_nj} | {} |",
        super::latency::percentiles(lat, 1)
    );
    if f2b::available() {
        let r = fail2ban(dir, "f2bufw-burst", 3)?;
        let (secs, live) = burst(&r, n, f2b_goal, limit)?;
        drop(r);
        let burst_f2b = burst_cell(secs, live, f2b_goal);
        let r = fail2ban(dir, "f2bufw-lat", 1)?;
        let lat = latency(&r, f2b_samples, limit)?;
        drop(r);
        let _ = writeln!(
            report,
            "| fail2ban-server 1.0.2 (`action = ufw`) | {burst_f2b} | {} |",
            super::latency::percentiles(lat, 1)
        );
    } else {
        let _ = writeln!(report, "| fail2ban-server | not installed | | | | |");
    }
    Ok(())
}
