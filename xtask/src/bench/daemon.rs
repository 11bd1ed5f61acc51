//! A network namespace per run, and nftjail's daemon started inside one: every
//! scenario gets a kernel of its own, so no run sees another's sets or bans.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

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

/// A daemon in its own namespace on a fresh log; killed on drop.
pub(super) struct Daemon {
    pub(super) child: std::process::Child,
    pub(super) err: PathBuf,
    pub(super) ns: Netns,
    pub(super) log: PathBuf,
}

impl Daemon {
    pub(super) fn start(
        nftjail: &Path,
        dir: &Path,
        tag: &str,
        maxretry: u32,
        ns: Netns,
    ) -> Result<Daemon> {
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
    pub(super) fn start_with(
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
