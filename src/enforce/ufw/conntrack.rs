//! Cutting a banned address's open sessions: ufw's before.rules accept
//! RELATED,ESTABLISHED packets before any user rule, so a new ban alone
//! does not stop an attacker already connected. Its conntrack entries are
//! deleted over ctnetlink; its next packet then starts a new entry, which
//! meets the ban.
//!
//! ctnetlink deletes one entry per message, named by its original tuple:
//! so the table is dumped (one family at a time), the entries whose source
//! is banned and whose destination the ban covers are picked, and their
//! tuples (as the kernel gave them) sent back in delete messages.

use std::io;

use neli::consts::socket::{Msg as SendFlags, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::enforce::nft::wire::{self, Writer, NLMSG_DONE, NLM_F_ACK, NLM_F_DUMP};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
/// Delete messages per send, well under the socket's buffer.
const DELETES_PER_SEND: usize = 512;
const RECV_BUFFER: usize = 64 << 10;

/// One entry's original direction, as far as the choice needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    /// IP protocol number (6 tcp, 17 udp).
    pub proto: u8,
    /// Destination port, for tcp and udp.
    pub dport: Option<u16>,
}

/// Deletes the entries of `family` (`libc::AF_INET` or `AF_INET6`) whose
/// flow `cut` picks. Returns how many went.
pub fn cut(family: i32, pick: &dyn Fn(&Flow) -> bool) -> io::Result<usize> {
    let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::empty())?;
    let mut recv = vec![0u8; RECV_BUFFER];
    let family = u8::try_from(family).map_err(|_| io::ErrorKind::InvalidInput)?;

    let mut w = Writer::with_seq(1);
    let dump_seq = w.begin(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
        NLM_F_DUMP,
        family,
        0,
    );
    w.end();
    sock.send(&w.buf, SendFlags::empty())?;
    // The tuples (and zones) of the entries to delete, as the kernel wrote them.
    let mut doomed: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    'dump: loop {
        let n = sock.recv(&mut recv[..], SendFlags::empty())?.0;
        if n == 0 {
            break;
        }
        for m in wire::messages(&recv[..n]) {
            if m.seq != dump_seq {
                continue;
            }
            match m.error {
                Some(0) => break 'dump,
                Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                None if m.ty == NLMSG_DONE => break 'dump,
                None => {
                    let tuple = wire::attrs(m.body).find(|(t, _)| *t == CTA_TUPLE_ORIG);
                    let Some((_, tuple)) = tuple else { continue };
                    if flow(tuple).is_some_and(|f| pick(&f)) {
                        let zone = wire::attrs(m.body)
                            .find(|(t, _)| *t == CTA_ZONE)
                            .map(|(_, z)| z.to_vec());
                        doomed.push((tuple.to_vec(), zone));
                    }
                }
            }
        }
    }

    let mut deleted = 0;
    let mut seq = dump_seq + 1;
    for chunk in doomed.chunks(DELETES_PER_SEND) {
        let mut w = Writer::with_seq(seq);
        for (tuple, zone) in chunk {
            w.begin(
                (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
                NLM_F_ACK,
                family,
                0,
            );
            w.attr(CTA_TUPLE_ORIG | NLA_F_NESTED, tuple);
            if let Some(z) = zone {
                w.attr(CTA_ZONE, z);
            }
            w.end();
        }
        let last = w.seq - 1;
        seq = w.seq;
        sock.send(&w.buf, SendFlags::empty())?;
        let mut answered = 0;
        while answered < chunk.len() {
            let n = sock.recv(&mut recv[..], SendFlags::empty())?.0;
            if n == 0 {
                break;
            }
            for m in wire::messages(&recv[..n]) {
                match m.error {
                    Some(_) if m.seq > last => {}
                    Some(0) => {
                        answered += 1;
                        deleted += 1;
                    }
                    // Gone meanwhile (the session ended): what we wanted.
                    Some(e) if -e == libc::ENOENT => answered += 1,
                    Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                    None => {}
                }
            }
        }
    }
    Ok(deleted)
}

/// Source, protocol and destination port of an original tuple.
fn flow(tuple: &[u8]) -> Option<Flow> {
    let mut src = None;
    let mut proto = None;
    let mut dport = None;
    for (t, v) in wire::attrs(tuple) {
        match t {
            CTA_TUPLE_IP => {
                for (t, v) in wire::attrs(v) {
                    src = match (t, v.len()) {
                        (CTA_IP_V4_SRC, 4) => {
                            Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?)))
                        }
                        (CTA_IP_V6_SRC, 16) => {
                            Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?)))
                        }
                        _ => src,
                    };
                }
            }
            CTA_TUPLE_PROTO => {
                for (t, v) in wire::attrs(v) {
                    match (t, v.len()) {
                        (CTA_PROTO_NUM, 1) => proto = Some(v[0]),
                        (CTA_PROTO_DST_PORT, 2) => dport = Some(u16::from_be_bytes([v[0], v[1]])),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Flow {
        src: src?,
        proto: proto?,
        dport,
    })
}
