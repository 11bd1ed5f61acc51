//! ufw's lock and ufw's live chains.
//!
//! The lock is the one the `ufw` command takes (a POSIX record lock on
//! `/run/ufw.lock`), so an admin's `ufw` and a batch of ours never
//! interleave their read-modify-write of the rules files.
//!
//! Where iptables runs on nf_tables the chains are changed over netlink
//! (`nftchain`), and the processes here only heal what that cannot: a chain
//! someone else emptied or changed is loaded whole again from its file, and
//! ufw's whole firewall, gone from the kernel while ufw is enabled, is
//! started again by ufw's own `ufw-init start`.
//!
//! Elsewhere the live chains are loaded the way ufw loads them: `iptables-restore -n`
//! with the chain declared, which empties that chain and fills it again in
//! one commit of the table (no moment without the admin's rules), leaving
//! every other chain as it is. It is the one process nftjail forks, once per
//! batch and per family, never per ban: on a host without nf_tables (the
//! reason to use this backend) iptables' legacy tables can only be changed
//! whole, through the table blob that iptables-restore builds, and writing
//! that blob ourselves would copy iptables' own code.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// Held while it lives; released on drop (closing the file drops the lock).
pub struct UfwLock {
    _file: File,
}

pub fn lock(path: &Path) -> std::io::Result<UfwLock> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // SAFETY: a zeroed flock is a valid value; every field we need is set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: F_SETLKW on an open fd with a valid flock pointer.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &fl) };
        if rc == 0 {
            return Ok(UfwLock { _file: file });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Feeds `input` to `program -w -n` and waits for it.
pub fn restore(program: &Path, input: &str) -> std::io::Result<()> {
    run(program, &["-w", "-n"], input)
}

/// `ufw-init start`: ufw's own loading of all its chains from its files,
/// as at boot. Only to heal, when ufw is enabled but its chains are gone
/// from the kernel (`nft flush ruleset`): our chain alone would hang from
/// nothing.
pub fn start_ufw(ufw_init: &Path) -> std::io::Result<()> {
    run(ufw_init, &["start"], "")
}

fn run(program: &Path, args: &[&str], input: &str) -> std::io::Result<()> {
    #[allow(clippy::disallowed_methods)] // the reviewed forks, see the module doc
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
