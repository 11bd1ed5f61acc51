//! The one nfnetlink socket kept open for the daemon's life, and the two ways
//! we talk over it: atomic transactions and dumps.
//!
//! One socket, not one per call as rustables' `Batch::send` does: opening a
//! socket per ban costs more than the ban, and only a long-lived socket can
//! have its buffers raised once so that big transactions fit.
//!
//! A transaction is sent as batch begin … end followed, in a second send, by
//! a GETGEN request with an ack. The kernel answers the batch (an error for
//! every refused message, acks for rustables' messages which ask for them)
//! before it reads the GETGEN, so that ack is the last word: everything
//! before it belongs to the batch. Element messages ask for no ack, so
//! 10,000 bans cost no 10,000 answers.

use std::io;
use std::os::fd::AsRawFd;

use neli::consts::socket::{Msg as SendFlags, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::element::NFT_MSG_GETGEN;
use super::transaction::Transaction;
use super::wire::{
    self, spans, Writer, NFNL_SUBSYS_NFTABLES, NLMSG_DONE, NLM_F_ACK, NLM_F_DUMP_INTR,
};

/// Socket buffers we ask for (FORCE: past `net.core.wmem_max`, as root).
const BUFFER: libc::c_int = 8 << 20;
/// Errors echo only the failing message's header, not its 60 KiB payload.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// Largest transaction we send, whatever the buffer.
const MAX_TRANSACTION: usize = 4 << 20;
/// A kernel that does not answer within this is stuck; say so rather than hang.
const RECV_TIMEOUT: libc::timeval = libc::timeval {
    tv_sec: 30,
    tv_usec: 0,
};
/// A dump interrupted by a concurrent change is redone this many times.
const DUMP_TRIES: usize = 5;

/// A message of a transaction the kernel refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Index of the message in the [`Transaction`].
    pub index: usize,
    pub errno: i32,
}

pub struct NfSocket {
    sock: NlSocket,
    next_seq: u32,
    recv: Vec<u8>,
    /// Bytes one transaction may take, from the send buffer we got.
    max_transaction: usize,
}

impl NfSocket {
    pub fn open() -> io::Result<Self> {
        let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::empty())?;
        let fd = sock.as_raw_fd();
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            // FORCE needs CAP_NET_ADMIN; without it we get what wmem_max allows.
            if setsockopt(fd, libc::SOL_SOCKET, force, &BUFFER).is_err() {
                let _ = setsockopt(fd, libc::SOL_SOCKET, plain, &BUFFER);
            }
        }
        let _ = setsockopt(fd, libc::SOL_NETLINK, NETLINK_CAP_ACK, &1);
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &RECV_TIMEOUT)?;
        // The kernel reports double what was set; a send must stay below it.
        let sndbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        let max_transaction =
            (usize::try_from(sndbuf).unwrap_or(0) / 2).clamp(64 << 10, MAX_TRANSACTION);
        Ok(NfSocket {
            sock,
            next_seq: 1,
            recv: vec![0; 1 << 20],
            max_transaction,
        })
    }

    /// Bytes of messages one [`Transaction`] may hold.
    pub fn max_transaction(&self) -> usize {
        self.max_transaction
    }

    fn take_seqs(&mut self, n: usize) -> u32 {
        let first = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
        if self.next_seq < first {
            self.next_seq = 1;
            return self.take_seqs(n);
        }
        first
    }

    /// Sends `tx` as one atomic transaction and reads every answer. Returns
    /// the refusals (empty: all of it applied; otherwise none of it did).
    pub fn transact(&mut self, tx: &Transaction) -> io::Result<Vec<Refusal>> {
        // batch begin, the messages, batch end, then the GETGEN sentinel.
        let base = self.take_seqs(tx.len() + 3);
        let mut w = Writer::with_seq(base);
        w.batch_begin();
        let body = tx.bytes();
        w.buf.reserve(body.len() + 64);
        for (i, span) in spans(body).enumerate() {
            let start = w.buf.len();
            w.buf.extend_from_slice(&body[span]);
            let seq = base.wrapping_add(1 + i as u32);
            w.buf[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
        }
        w.seq = base.wrapping_add(1 + tx.len() as u32);
        w.batch_end();
        let mut sentinel = Writer::with_seq(w.seq);
        let sentinel_seq = sentinel.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_ACK,
            0,
            0,
        );
        sentinel.end();
        self.send(&w.buf)?;
        self.send(&sentinel.buf)?;

        let first = base.wrapping_add(1);
        let mut refused = Vec::new();
        loop {
            let n = self.receive()?;
            for m in wire::messages(&self.recv[..n]) {
                match m.error {
                    Some(0) if m.seq == sentinel_seq => return Ok(refused),
                    Some(e) if m.seq == sentinel_seq => {
                        return Err(io::Error::from_raw_os_error(-e))
                    }
                    Some(e) if e != 0 => {
                        let index = m.seq.wrapping_sub(first) as usize;
                        if index < tx.len() {
                            refused.push(Refusal { index, errno: -e });
                        } else if m.seq == base || m.seq == w.seq.wrapping_sub(1) {
                            // The batch markers themselves were refused.
                            return Err(io::Error::from_raw_os_error(-e));
                        }
                        // Otherwise a late answer to an earlier request: not ours.
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends one dump request (written by `build`, which returns its seq) and
    /// returns the body of every answer. ENOENT (no such table or set) is an
    /// empty dump. A dump the kernel marks interrupted is done again.
    pub fn dump(&mut self, build: impl Fn(&mut Writer) -> u32) -> io::Result<Vec<Vec<u8>>> {
        for _ in 0..DUMP_TRIES {
            let mut w = Writer::with_seq(self.take_seqs(1));
            let seq = build(&mut w);
            self.send(&w.buf)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'answers: loop {
                let n = self.receive()?;
                for m in wire::messages(&self.recv[..n]) {
                    if m.seq != seq {
                        continue;
                    }
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match m.error {
                        Some(e) if -e == libc::ENOENT => return Ok(Vec::new()),
                        Some(0) => break 'answers,
                        Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                        None if m.ty == NLMSG_DONE => break 'answers,
                        None => out.push(m.body.to_vec()),
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(io::Error::other(
            "the ruleset kept changing while we listed it",
        ))
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

    fn receive(&mut self) -> io::Result<usize> {
        loop {
            match self.sock.recv(&mut self.recv[..], SendFlags::empty()) {
                Ok((n, _)) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the kernel did not answer on the nfnetlink socket",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live T and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: i32, level: i32, name: i32) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are live and len is value's size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}
