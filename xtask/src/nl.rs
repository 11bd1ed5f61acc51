//! The benchmark's own eye on the kernel: a NETLINK_NETFILTER socket inside a
//! named namespace that asks "is this element in the set?" (one GETSETELEM,
//! a few µs) and "how many elements?" (a dump).
//!
//! Why not `nft list set` or the daemon's log: forking `nft` costs
//! milliseconds and a log says what a tool believes, not what the kernel
//! holds. Every tool in a scenario is timed by this same probe, so the
//! comparison is between equals: from the start of the command (or the log
//! append) until the kernel answers that the elements are there.

use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const LIST_TABLE: u16 = 1;
const LIST_SET: u16 = 2;
const LIST_ELEMENTS: u16 = 3;
const LIST_ELEM: u16 = 1;
const ELEM_KEY: u16 = 1;
const DATA_VALUE: u16 = 1;

/// A netfilter netlink socket opened inside a named network namespace.
pub struct Probe {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Probe {
    /// Opens the socket from a short-lived thread that entered `netns`:
    /// a socket stays in the namespace it was created in, whatever thread
    /// uses it later, and this process's own threads stay where they are.
    pub fn open(netns: &str) -> Result<Probe> {
        let path = format!("/run/netns/{netns}");
        let fd = std::thread::spawn(move || -> Result<OwnedFd> {
            let ns = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            // SAFETY: a valid namespace fd; affects only this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error()).context("setns");
            }
            // SAFETY: plain socket(2); the result is checked before use.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_NETFILTER,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error()).context("netlink socket");
            }
            // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
        Ok(Probe {
            fd,
            seq: 1,
            buf: vec![0; 1 << 20],
        })
    }

    fn request(&mut self, flags: u16, table: &str, set: &str, key: Option<[u8; 4]>) -> Vec<u8> {
        self.seq += 1;
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM).to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
        attr(&mut m, LIST_TABLE, &nul(table));
        attr(&mut m, LIST_SET, &nul(set));
        if let Some(k) = key {
            let mut value = Vec::new();
            attr(&mut value, DATA_VALUE, &k);
            let mut elem = Vec::new();
            attr(&mut elem, ELEM_KEY | NLA_F_NESTED, &value);
            let mut list = Vec::new();
            attr(&mut list, LIST_ELEM | NLA_F_NESTED, &elem);
            attr(&mut m, LIST_ELEMENTS | NLA_F_NESTED, &list);
        }
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    fn send(&self, m: &[u8]) -> Result<()> {
        // SAFETY: a live buffer and its length; the kernel is the peer (no address needed).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
        if n != m.len() as isize {
            return Err(io::Error::last_os_error()).context("netlink send");
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<usize> {
        // SAFETY: writes at most buf.len() bytes into our own buffer.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error()).context("netlink recv");
        }
        Ok(n as usize)
    }

    /// Whether `addr` is in the IPv4 set `table`/`set` of family inet; a
    /// missing table or set counts as "not yet".
    pub fn has(&mut self, table: &str, set: &str, addr: Ipv4Addr) -> Result<bool> {
        let m = self.request(NLM_F_REQUEST, table, set, Some(addr.octets()));
        self.send(&m)?;
        let seq = self.seq;
        loop {
            let n = self.recv()?;
            for (ty, mseq, body) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                if ty == NLMSG_ERROR {
                    let errno = body
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    return match -errno {
                        0 => Ok(true),
                        libc::ENOENT => Ok(false),
                        e => Err(io::Error::from_raw_os_error(e)).context("GETSETELEM"),
                    };
                }
                if ty & 0xff == NFT_MSG_NEWSETELEM {
                    return Ok(true);
                }
            }
        }
    }

    /// Distinct elements in `table`/`set` (a dump); 0 when the set does not
    /// exist. Keys are deduplicated: a dump that runs while the kernel
    /// resizes the set's hash table may return an element twice.
    pub fn count(&mut self, table: &str, set: &str) -> Result<usize> {
        let m = self.request(NLM_F_REQUEST | NLM_F_DUMP, table, set, None);
        self.send(&m)?;
        let seq = self.seq;
        let mut keys: HashSet<Vec<u8>> = HashSet::new();
        loop {
            let n = self.recv()?;
            for (ty, mseq, body) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(keys.len()),
                    NLMSG_ERROR => {
                        let errno = body
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return match -errno {
                            0 => Ok(keys.len()),
                            libc::ENOENT => Ok(0),
                            e => Err(io::Error::from_raw_os_error(e)).context("element dump"),
                        };
                    }
                    _ => {
                        // nfgenmsg, then attributes; the element list holds one nest per element.
                        for (aty, payload) in attrs(body.get(4..).unwrap_or_default()) {
                            if aty != LIST_ELEMENTS {
                                continue;
                            }
                            for (_, elem) in attrs(payload).filter(|(t, _)| *t == LIST_ELEM) {
                                let key = attrs(elem)
                                    .find(|(t, _)| *t == ELEM_KEY)
                                    .and_then(|(_, k)| attrs(k).find(|(t, _)| *t == DATA_VALUE))
                                    .map(|(_, v)| v.to_vec());
                                if let Some(k) = key {
                                    keys.insert(k);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Polls until `done` says yes, every `every`; returns when it did, or
    /// None at `deadline`.
    pub fn wait(
        &mut self,
        every: Duration,
        deadline: Instant,
        mut done: impl FnMut(&mut Probe) -> Result<bool>,
    ) -> Result<Option<Instant>> {
        loop {
            if done(self)? {
                return Ok(Some(Instant::now()));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(every);
        }
    }
}

fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn attr(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + ((4 - len % 4) % 4), 0);
}

/// (type, seq, body) of each netlink message in one datagram.
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = buf.get(at..at + 16)?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        let body = buf.get(at + 16..at + len)?;
        at += (len + 3) & !3;
        Some((ty, seq, body))
    })
}

/// (type without flags, payload) of each attribute in `buf`.
fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = buf.get(at..at + 4)?;
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        if len < 4 {
            return None;
        }
        let ty = u16::from_ne_bytes([h[2], h[3]]) & NLA_TYPE_MASK;
        let payload = buf.get(at + 4..at + len)?;
        at += (len + 3) & !3;
        Some((ty, payload))
    })
}

/// Fails unless every one of `addrs` is in the set (one GET each: a dump
/// just after a bulk insert can miss elements while the kernel resizes the
/// set's hash table), and the set holds nothing else.
pub fn expect_all(
    p: &mut Probe,
    table: &str,
    set: &str,
    addrs: impl Iterator<Item = Ipv4Addr>,
) -> Result<()> {
    let mut n = 0;
    for a in addrs {
        if !p.has(table, set, a)? {
            bail!("{a} is not in the kernel set {table}/{set}");
        }
        n += 1;
    }
    // Extra elements: the dump may still be short while a resize runs, so ask again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = p.count(table, set)?;
        if got == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the kernel holds {got} elements in {table}/{set}, expected {n}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
