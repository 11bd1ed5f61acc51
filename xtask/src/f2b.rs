//! fail2ban-server beside nftjail: the Debian package's own server, run in
//! a namespace of its own with a config directory in the bench's tempdir
//! (socket, pidfile, log there; ban database in memory), one jail on the
//! generated log with the stock `postfix[mode=auth]` filter, the pyinotify
//! backend (its fastest) and the stock `nftables-allports` action, which
//! forks `nft` per ban.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::Netns;

/// The kernel names the stock nftables action uses for jail `bench`.
pub const TABLE: &str = "f2b-table";
pub const SET: &str = "addr-set-bench";

pub struct Server {
    child: Child,
    pub ns: Netns,
    pub log: PathBuf,
    pub conf: PathBuf,
}

pub fn available() -> bool {
    Path::new("/usr/bin/fail2ban-server").is_file() && Path::new("/etc/fail2ban").is_dir()
}

/// A private copy of Debian's fail2ban config in `dir` (socket, pidfile and
/// log there, ban database in memory) with one jail `bench` on a fresh,
/// empty log, the stock `postfix[mode=auth]` filter, the pyinotify backend
/// and `banaction`. Returns the config directory and the log.
pub fn config(dir: &Path, tag: &str, maxretry: u32, banaction: &str) -> Result<(PathBuf, PathBuf)> {
    let conf = dir.join(format!("f2b-{tag}"));
    let _ = std::fs::remove_dir_all(&conf);
    std::fs::create_dir_all(&conf)?;
    // The stock filters and actions; not jail.d (Debian enables sshd there).
    for sub in [
        "fail2ban.conf",
        "jail.conf",
        "paths-common.conf",
        "paths-debian.conf",
    ] {
        std::fs::copy(Path::new("/etc/fail2ban").join(sub), conf.join(sub))
            .with_context(|| format!("copy /etc/fail2ban/{sub}"))?;
    }
    for sub in ["filter.d", "action.d"] {
        let ok = Command::new("cp")
            .arg("-r")
            .arg(Path::new("/etc/fail2ban").join(sub))
            .arg(&conf)
            .status()?
            .success();
        if !ok {
            bail!("cannot copy /etc/fail2ban/{sub}");
        }
    }
    let log = dir.join(format!("f2b-{tag}.log"));
    std::fs::write(&log, "")?;
    let d = conf.display();
    std::fs::write(
        conf.join("fail2ban.local"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {d}/server.log\nsocket = {d}/server.sock\npidfile = {d}/server.pid\ndbfile = :memory:\n"
        ),
    )?;
    std::fs::write(
        conf.join("jail.local"),
        format!(
            "[DEFAULT]\nbackend = pyinotify\nbanaction = {banaction}\nbanaction_allports = {banaction}\n\n[bench]\nenabled = true\nfilter = postfix[mode=auth]\nlogpath = {}\nport = submission\nmaxretry = {maxretry}\nfindtime = 1h\nbantime = 1h\n",
            log.display()
        ),
    )?;
    Ok((conf, log))
}

impl Server {
    pub fn start(dir: &Path, tag: &str, maxretry: u32, ns: Netns) -> Result<Server> {
        let (conf, log) = config(dir, tag, maxretry, "nftables-allports")?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, "fail2ban-server", "-f", "-x", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start fail2ban-server")?;
        let s = Server {
            child,
            ns,
            log,
            conf,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(s.conf.join("server.log")).unwrap_or_default();
            if text.contains("Jail 'bench' started") {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "fail2ban-server did not start its jail within 30 s; log tail:\n{}",
                    text.lines().rev().take(8).collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
