//! Notices when someone else changes our table: `nft flush ruleset`,
//! `nft delete table inet nftjail`, a restart of the nftables service (its
//! script starts with `flush ruleset`), but also a rule inserted into our
//! chain, `nft flush set`, an element deleted or added by hand. The kernel
//! announces every ruleset change on the nftables multicast group; we listen
//! there, with no polling.
//!
//! Any message about our table from another socket counts: each is answered
//! by one heal (rules rebuilt, missing bans put back, elements we did not
//! put there noted as foreign), however long the burst (a flushed set is an
//! event per element: all are read, then one heal). Our own
//! changes carry our socket's port id and are skipped, so a heal never
//! causes another.
//!
//! The price: while anyone listens on that group, the kernel builds one
//! notification per element a transaction adds, so adds cost more (large
//! batches pause the watch, see [`WatchPause`]).
//!
//! The backend opens the watcher and runs it on a thread of its own
//! ([`NftBackend::start_watch`]); nothing outside `nft` knows it exists.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tracing::{debug, info, warn};

use super::netlink::{self, setsockopt};
use super::wire::{self, NFNL_SUBSYS_NFTABLES, NFPROTO_INET};
use super::NftBackend;
use crate::enforce::EnforceError;

/// `NFNLGRP_NFTABLES` from linux/netfilter/nfnetlink.h.
const NFNLGRP_NFTABLES: libc::c_int = 7;
/// The socket's queue: room for the events of a large foreign transaction.
const SOCKET_QUEUE: libc::c_int = 16 << 20;

pub struct Watcher {
    fd: OwnedFd,
    table: String,
    /// The nfgenmsg families whose table of that name we watch.
    families: Vec<u8>,
    /// Our own backend's port id: its changes (a reload deleting rules) are ours.
    own: Option<u32>,
    buf: Vec<u8>,
}

impl Watcher {
    pub fn open(table: &str, own: Option<u32>) -> io::Result<Watcher> {
        Watcher::open_for(&[NFPROTO_INET], table, own)
    }

    /// A watcher of the tables named `table` in `families` (the ufw backend
    /// watches iptables-nft's `filter` of `ip` and `ip6`).
    pub fn open_for(families: &[u8], table: &str, own: Option<u32>) -> io::Result<Watcher> {
        // SAFETY: plain socket(2); the fd is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl with the family set is a valid address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: passes a valid sockaddr_nl and its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            NFNLGRP_NFTABLES,
        )?;
        if setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            SOCKET_QUEUE,
        )
        .is_err()
        {
            let _ = setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                SOCKET_QUEUE,
            );
        }
        Ok(Watcher {
            fd,
            table: table.to_string(),
            families: families.to_vec(),
            own,
            buf: vec![0; netlink::RECV_BUFFER],
        })
    }

    /// A handle that pauses and resumes this watcher's membership of the
    /// group, for the backend's large ban batches (see [`WatchPause`]).
    pub fn pause_handle(&self) -> io::Result<WatchPause> {
        Ok(WatchPause {
            fd: self.fd.try_clone()?,
        })
    }

    /// Blocks until someone else changed our table, then returns once the
    /// burst of events is read (one heal for one `nft flush ruleset` or one
    /// `nft flush set`, however many elements it removed).
    pub fn wait_for_change(&mut self) -> io::Result<()> {
        let mut changed = false;
        let mut flags = 0;
        loop {
            // SAFETY: receives into our own buffer, within its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) if changed => return Ok(()),
                    Some(libc::EAGAIN) => {
                        flags = 0;
                        continue;
                    }
                    // Events were lost: our table may have gone among them.
                    Some(libc::ENOBUFS) => {
                        warn!("ruleset events overflowed; checking our table");
                        changed = true;
                        flags = libc::MSG_DONTWAIT;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            if self.changed_by_others(n as usize) {
                changed = true;
            }
            // Read the rest of the burst without blocking.
            flags = libc::MSG_DONTWAIT;
        }
    }

    fn changed_by_others(&self, n: usize) -> bool {
        for m in wire::messages(&self.buf[..n]) {
            if m.ty >> 8 != NFNL_SUBSYS_NFTABLES {
                continue;
            }
            // Our own changes first: they are most of the traffic.
            if !self.families.contains(&m.family) || Some(m.pid) == self.own {
                continue;
            }
            // Every message naming our table by another socket: the
            // generation message names none.
            if wire::parse_table_name(m.body).as_deref() == Some(self.table.as_str()) {
                debug!(
                    kind = m.ty & 0xff,
                    pid = m.pid,
                    "our table was changed by another socket"
                );
                // The rest of the burst cannot ask for more than one heal.
                return true;
            }
        }
        false
    }
}

/// While anyone listens on the nftables group, the kernel builds a
/// notification for every element a transaction adds, and the watcher
/// thread reads each one only to drop it: a noticeable share of the time a
/// flood of bans takes. So for a large batch the backend leaves the group,
/// and checks the ruleset generation instead: the kernel counts it up once
/// per committed transaction, so if it moved by more than the backend's own
/// commits, someone else changed something meanwhile, and the enforcer
/// checks our table as if the watcher had seen it.
pub struct WatchPause {
    fd: OwnedFd,
}

impl WatchPause {
    /// Leaves (false) or rejoins (true) the nftables notification group.
    pub fn listen(&self, on: bool) -> io::Result<()> {
        let op = if on {
            libc::NETLINK_ADD_MEMBERSHIP
        } else {
            libc::NETLINK_DROP_MEMBERSHIP
        };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_NETLINK, op, NFNLGRP_NFTABLES)
    }
}

impl NftBackend {
    /// Opens the watcher (our own changes told apart by our port id) and
    /// runs it on the `nft-watch` thread, calling `wake` after each change
    /// by someone else until `wake` answers false.
    pub(super) fn start_watch(
        &mut self,
        wake: Box<dyn Fn() -> bool + Send>,
    ) -> Result<(), EnforceError> {
        let mut watcher =
            Watcher::open(&self.table, self.nl.portid()).map_err(EnforceError::Watch)?;
        match watcher.pause_handle() {
            Ok(p) => self.pause = Some(p),
            Err(e) => debug!("large ban batches will not pause the ruleset watch: {e}"),
        }
        std::thread::Builder::new()
            .name("nft-watch".into())
            .spawn(move || loop {
                if let Err(e) = watcher.wait_for_change() {
                    warn!("ruleset watcher stopped: {e}");
                    return;
                }
                if !wake() {
                    return;
                }
            })
            .map_err(EnforceError::Watch)?;
        Ok(())
    }

    /// Leaves the nftables notification group until
    /// [`NftBackend::resume_watch`] (see [`WatchPause`]), noting the ruleset
    /// generation. False, and nothing changed, without a watch or when a
    /// step fails.
    pub fn pause_watch(&mut self) -> bool {
        let Some(p) = &self.pause else {
            return false;
        };
        if self.paused.is_some() {
            return true;
        }
        let generation = p.listen(false).and_then(|()| self.nl.current_generation());
        match generation {
            Ok(g) => {
                self.paused = Some((g, self.commits));
                true
            }
            Err(e) => {
                debug!("not pausing the ruleset watch: {e}");
                let _ = p.listen(true);
                false
            }
        }
    }

    /// Rejoins the group, then compares the generation with the one noted
    /// at [`NftBackend::pause_watch`]: moved by more than our own commits
    /// means someone else committed meanwhile (answered by
    /// [`crate::enforce::Backend::tampered`]).
    pub fn resume_watch(&mut self) {
        let Some((before, commits)) = self.paused.take() else {
            return;
        };
        let rejoined = self.pause.as_ref().map_or(Ok(()), |p| p.listen(true));
        let ours = self.commits - commits;
        match rejoined.and_then(|()| self.nl.current_generation()) {
            Ok(now) if u64::from(now.wrapping_sub(before)) == ours => {}
            Ok(now) => {
                info!(
                    "the ruleset changed during {ours} transactions of ours we did not listen through (generation {before} → {now}); checking our table"
                );
                self.changed_by_others = true;
            }
            Err(e) => {
                warn!("cannot tell whether the ruleset changed during a ban batch: {e}");
                self.changed_by_others = true;
            }
        }
    }
}
