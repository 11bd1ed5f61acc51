//! `nftjail import-fail2ban --move-ufw-rules`: the second step of the move
//! from fail2ban + ufw, run once nftjail runs with the imported config.
//!
//! The import offers the admin's hand-made `ufw reject|deny from NET` rules
//! as a blocklist and leaves them in ufw, so the networks are refused all
//! along. This step removes from ufw exactly those of them that the running
//! daemon holds as bans without timeout (asked over its control socket, so
//! a daemon that is down, runs another config or failed to read the list
//! removes nothing): a network is never let in between the two firewalls.
//!
//! The removal is what `ufw delete` does, once for them all: under ufw's
//! lock (`/run/ufw.lock`, which the `ufw` command takes), the rules' blocks
//! are cut out of `user.rules` / `user6.rules` (every other byte stays), and
//! when ufw is enabled each changed file is loaded again into ufw's user
//! chains with `iptables-restore -n`, as ufw reloads them after a delete.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;

use nftjail::control::client::request;
use nftjail::control::protocol::{BanInfo, Reply, Request};
use nftjail::enforce::ufw::tuple::Rule;

use super::ufw::{AdminRule, UfwHost};

/// Where ufw keeps what this step changes.
pub struct MovePaths {
    /// `/etc/ufw`.
    pub dir: PathBuf,
    /// `/run/ufw.lock`.
    pub lock: PathBuf,
    pub iptables_restore: PathBuf,
    pub ip6tables_restore: PathBuf,
}

impl MovePaths {
    pub fn new(dir: &Path) -> MovePaths {
        MovePaths {
            dir: dir.to_path_buf(),
            lock: "/run/ufw.lock".into(),
            iptables_restore: "/usr/sbin/iptables-restore".into(),
            ip6tables_restore: "/usr/sbin/ip6tables-restore".into(),
        }
    }
}

/// Removes from ufw the admin's refusals the daemon at `socket` holds.
pub fn run(paths: &MovePaths, socket: &Path) -> Result<()> {
    let host = UfwHost::read(&paths.dir)?
        .with_context(|| format!("{} has no user.rules: no ufw rules", paths.dir.display()))?;
    if host.refused.is_empty() {
        println!("ufw has no hand-made `reject|deny from NET` rule: nothing to move");
        return Ok(());
    }
    let bans = match request(socket, &Request::Banned { addr: None }) {
        Ok(Reply::Banned { bans }) => bans,
        Ok(other) => bail!("the daemon answered {other:?} to `banned`"),
        Err(e) => bail!(
            "cannot ask the daemon which networks it holds ({e}); start nftjail with the \
             imported config first: ufw's rules stay until it holds them"
        ),
    };
    let (moving, left): (Vec<&AdminRule>, Vec<&AdminRule>) = host
        .refused
        .iter()
        .partition(|r| !holders(&bans, &r.net).is_empty());
    for r in &left {
        eprintln!(
            "left in ufw: {} (the daemon holds no ban without timeout for {}: is it in the \
             blocklist of the config it runs?)",
            r.describe(),
            r.net
        );
    }
    if moving.is_empty() {
        bail!("the daemon holds none of ufw's hand-made refusals: nothing removed from ufw");
    }
    let removed = remove(paths, &moving)?;
    for r in &moving {
        println!(
            "removed from ufw: {} (held by nftjail in {}; on those jails' ports)",
            r.describe(),
            holders(&bans, &r.net).join(", ")
        );
    }
    if removed < moving.len() {
        eprintln!(
            "{} of those rules were no longer in ufw's files",
            moving.len() - removed
        );
    }
    Ok(())
}

/// The jails holding `net` as a ban of nftjail's without timeout.
fn holders<'a>(bans: &'a [BanInfo], net: &IpNet) -> Vec<&'a str> {
    let mut jails: Vec<&str> = bans
        .iter()
        .filter(|b| !b.foreign && b.remaining.is_none())
        .filter(|b| parse_net(&b.addr).is_some_and(|n| n == net.trunc()))
        .map(|b| b.jail.as_str())
        .collect();
    jails.dedup();
    jails
}

fn parse_net(text: &str) -> Option<IpNet> {
    match text.parse::<IpAddr>() {
        Ok(a) => Some(IpNet::from(a.to_canonical())),
        Err(_) => text.parse::<IpNet>().ok().map(|n| n.trunc()),
    }
}

/// Cuts `rules` out of ufw's files and reloads the changed families'
/// chains, under ufw's lock; how many were found.
fn remove(paths: &MovePaths, rules: &[&AdminRule]) -> Result<usize> {
    let _lock = lock(&paths.lock)
        .with_context(|| format!("cannot take ufw's lock {}", paths.lock.display()))?;
    let enabled = std::fs::read_to_string(paths.dir.join("ufw.conf")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim().replace(['"', '\''], "") == "ENABLED=yes")
    });
    let mut found = 0;
    for (file, restore) in [
        ("user.rules", &paths.iptables_restore),
        ("user6.rules", &paths.ip6tables_restore),
    ] {
        let ours: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.file == file)
            .map(|r| &r.rule)
            .collect();
        if ours.is_empty() {
            continue;
        }
        let path = paths.dir.join(file);
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (new, n) = without(&old, &ours);
        if n == 0 {
            continue;
        }
        found += n;
        write_file(&path, &new).with_context(|| format!("cannot write {}", path.display()))?;
        if enabled {
            if let Err(e) = load(restore, &new) {
                // The file goes back to what the chains still hold.
                let _ = write_file(&path, &old);
                return Err(e).with_context(|| format!("loading {file} into ufw's chains"));
            }
        }
    }
    Ok(found)
}

/// `text` without the blocks (tuple line, chain lines, blank line) of
/// `rules`, and how many were cut; every other byte as it was.
fn without(text: &str, rules: &[&Rule]) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut cut = 0;
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare.starts_with("### tuple ###") || bare.starts_with("### END RULES ###") {
            skipping = Rule::parse(bare).is_some_and(|r| rules.contains(&&r));
            cut += usize::from(skipping);
        }
        if !skipping {
            out.push_str(line);
        }
    }
    (out, cut)
}

/// Replaces a file whole, keeping its mode.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("rules");
    let tmp = path.with_file_name(format!(".{name}.nftjail"));
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, mode)?;
    std::fs::rename(&tmp, path)
}

/// `program -n` fed a whole rules file: flushes and fills again the chains
/// it declares (ufw's user chains), in one commit, as ufw does.
fn load(program: &Path, text: &str) -> Result<()> {
    #[allow(clippy::disallowed_methods)] // see tidy.toml [forks]
    let mut child = Command::new(program)
        .args(["-w", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// ufw's own lock: a POSIX record lock on the whole file, held until drop.
fn lock(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // SAFETY: a zeroed flock is valid; the fields used are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: F_SETLKW on an open fd with a valid flock pointer.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &fl) };
        if rc == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "*filter\n:ufw-user-input - [0:0]\n### RULES ###\n\n\
### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in\n\
-A ufw-user-input -s 95.181.157.0/24 -j REJECT\n\n\
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n\
-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n\n\
### tuple ### reject any any 0.0.0.0/0 any 95.181.158.0/24 in\n\
-A ufw-user-input -s 95.181.158.0/24 -j REJECT\n\n\
### END RULES ###\n\n### LOGGING ###\nCOMMIT\n";

    #[test]
    fn only_the_named_blocks_go() {
        let rule =
            Rule::parse("### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in").unwrap();
        let (out, n) = without(FILE, &[&rule]);
        assert_eq!(n, 1);
        assert_eq!(
            out,
            FILE.replace(
                "### tuple ### reject any any 0.0.0.0/0 any 95.181.157.0/24 in\n\
                 -A ufw-user-input -s 95.181.157.0/24 -j REJECT\n\n",
                ""
            )
        );
        let last =
            Rule::parse("### tuple ### reject any any 0.0.0.0/0 any 95.181.158.0/24 in").unwrap();
        let (out, n) = without(FILE, &[&last]);
        assert_eq!(n, 1);
        assert!(out.ends_with("ACCEPT\n\n### END RULES ###\n\n### LOGGING ###\nCOMMIT\n"));
        assert_eq!(without(FILE, &[]), (FILE.to_string(), 0));
    }

    #[test]
    fn a_daemon_holds_a_net_only_without_timeout_and_as_its_own() {
        let ban = |addr: &str, remaining, foreign| BanInfo {
            jail: "j".into(),
            addr: addr.into(),
            remaining,
            foreign,
        };
        let net: IpNet = "95.181.157.0/24".parse().unwrap();
        assert!(holders(&[ban("95.181.157.0/24", Some(60), false)], &net).is_empty());
        assert!(holders(&[ban("95.181.157.0/24", None, true)], &net).is_empty());
        assert_eq!(holders(&[ban("95.181.157.0/24", None, false)], &net), ["j"]);
        let one: IpNet = "192.0.2.7/32".parse().unwrap();
        assert_eq!(holders(&[ban("192.0.2.7", None, false)], &one), ["j"]);
    }
}
