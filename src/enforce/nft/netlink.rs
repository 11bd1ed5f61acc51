//! One nfnetlink socket kept open for the daemon's life, and the two ways we
//! talk over it: atomic transactions and dumps.
//!
//! A transaction is sent without per-message acks; the kernel reports errors
//! anyway. To know when it has answered everything, a GETGEN request with an
//! ack follows the batch in a second send: its ack is the last word.

use std::io;
use std::os::fd::AsRawFd;

use neli::consts::socket::{Msg as SendFlags, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::wire::{self, Writer, NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWGEN, NLMSG_DONE};

/// The message type of the kernel's answer to GETGEN.
const NEWGEN: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;

const BUFFER: libc::c_int = 8 << 20;
/// Errors echo only the failing message's header, not its 60 KiB payload.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// Largest transaction we send in one go.
pub const MAX_TRANSACTION: usize = 2 << 20;
/// One datagram per recv: the kernel sizes a dump's datagrams from the
/// largest buffer a reader offered, capped at 32 KiB (netlink_recvmsg), and
/// notifications fill at most NLMSG_GOODSIZE. Twice the cap leaves room;
/// a bigger buffer would only sit in the heap, the largest part of an idle
/// daemon's.
pub const RECV_BUFFER: usize = 64 << 10;

/// A message the kernel refused, and why.
#[derive(Debug)]
pub struct Refused {
    pub seq: u32,
    pub errno: i32,
}

pub struct Netlink {
    sock: NlSocket,
    pub next_seq: u32,
    recv: Vec<u8>,
    /// The ruleset generation right after our last transaction (the
    /// answer to its closing GETGEN).
    pub generation: Option<u32>,
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::empty())?;
        let fd = sock.as_raw_fd();
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            // FORCE needs CAP_NET_ADMIN, which we have when we can do anything at all.
            if setsockopt(fd, libc::SOL_SOCKET, force, BUFFER).is_err() {
                let _ = setsockopt(fd, libc::SOL_SOCKET, plain, BUFFER);
            }
        }
        let _ = setsockopt(fd, libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        Ok(Netlink {
            sock,
            next_seq: 1,
            recv: vec![0; RECV_BUFFER],
            generation: None,
        })
    }

    /// The port id the kernel gave our socket: change notifications caused
    /// by our own transactions carry it.
    pub fn portid(&self) -> Option<u32> {
        // SAFETY: getsockname writes at most `len` bytes into a zeroed sockaddr_nl.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockname(
                self.sock.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(addr.nl_pid)
    }

    /// A writer whose sequence numbers continue ours.
    pub fn writer(&self) -> Writer {
        Writer::with_seq(self.next_seq)
    }

    /// Sends `body` (messages without batch markers) as one atomic transaction.
    /// Messages from rustables are renumbered into our sequence first.
    /// Returns the refusals (empty: everything applied).
    pub fn transact(&mut self, body: &[u8]) -> io::Result<Vec<Refused>> {
        let mut w = Writer::with_seq(self.next_seq);
        w.batch_begin();
        let mut at = 0;
        while at + 16 <= body.len() {
            let len =
                u32::from_ne_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]) as usize;
            if len < 16 || at + len > body.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed message in transaction",
                ));
            }
            let start = w.buf.len();
            w.buf.extend_from_slice(&body[at..at + len]);
            w.buf.resize(start + ((len + 3) & !3), 0);
            w.buf[start + 8..start + 12].copy_from_slice(&w.seq.to_ne_bytes());
            w.seq += 1;
            at += (len + 3) & !3;
        }
        w.batch_end();
        let sentinel_seq = w.seq;
        let mut s = Writer::with_seq(sentinel_seq);
        s.get_gen();
        self.next_seq = s.seq;
        self.send(&w.buf)?;
        self.send(&s.buf)?;
        let mut refused = Vec::new();
        loop {
            let n = self.sock.recv(&mut self.recv[..], SendFlags::empty())?.0;
            for m in wire::messages(&self.recv[..n]) {
                if m.seq == sentinel_seq && m.ty == NEWGEN {
                    self.generation = wire::parse_gen_id(m.body);
                }
                match m.error {
                    Some(0) if m.seq == sentinel_seq => return Ok(refused),
                    Some(e) if e != 0 && m.seq == sentinel_seq => {
                        return Err(io::Error::from_raw_os_error(-e))
                    }
                    Some(e) if e != 0 => refused.push(Refused {
                        seq: m.seq,
                        errno: -e,
                    }),
                    _ => {}
                }
            }
        }
    }

    /// The ruleset generation now: GETGEN is answered like a one-message dump.
    pub fn current_generation(&mut self) -> io::Result<u32> {
        self.dump(|w| w.get_gen())?
            .iter()
            .find_map(|body| wire::parse_gen_id(body))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "GETGEN without a generation")
            })
    }

    /// Sends one dump request (built by `build`) and returns the body of every
    /// answer message. ENOENT (no such table or set) is an empty dump.
    pub fn dump(&mut self, build: impl FnOnce(&mut Writer) -> u32) -> io::Result<Vec<Vec<u8>>> {
        let mut w = Writer::with_seq(self.next_seq);
        let seq = build(&mut w);
        self.next_seq = w.seq;
        self.send(&w.buf)?;
        let mut out = Vec::new();
        loop {
            let n = self.sock.recv(&mut self.recv[..], SendFlags::empty())?.0;
            for m in wire::messages(&self.recv[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.error {
                    Some(e) if -e == libc::ENOENT => return Ok(Vec::new()),
                    Some(0) => return Ok(out),
                    Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                    None if m.ty == NLMSG_DONE => return Ok(out),
                    None => out.push(m.body.to_vec()),
                }
            }
        }
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        let sent = self.sock.send(buf, SendFlags::empty())?;
        if sent != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(())
    }
}

pub(super) fn setsockopt(fd: i32, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
