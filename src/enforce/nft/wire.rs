//! nfnetlink encoding and decoding for what rustables 0.9 lacks: sets with
//! `flags timeout`, set elements with per-element timeout and expiration, and
//! the set / element dumps a restart needs.
//!
//! Everything here is pure bytes in, bytes out, so it is unit-tested without
//! a kernel. Attribute values of nf_tables are big-endian.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFPROTO_INET: u8 = 1;

pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_DELCHAIN: u16 = 5;
pub const NFT_MSG_DELRULE: u16 = 8;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_GETSET: u16 = 10;
pub const NFT_MSG_DELSET: u16 = 11;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_DELSETELEM: u16 = 14;
pub const NFT_MSG_NEWGEN: u16 = 15;
pub const NFT_MSG_GETGEN: u16 = 16;
/// NFTA_GEN_ID, the only attribute of a NEWGEN message.
const NFTA_GEN_ID: u16 = 1;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_ANONYMOUS: u32 = 0x1;
const NFT_SET_CONSTANT: u32 = 0x2;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFTA_SET_DATA_TYPE: u16 = 6;
/// A map's data type for verdicts, and the nests an element's verdict goes in.
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
/// nft's own data type numbers, so `nft list` prints `type ipv4_addr`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_SERVICE: u32 = 13;
/// The name an anonymous set is created with: the kernel fills in the number.
pub const ANON_SET_NAME: &str = "__set%d";

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;

/// Stay well under the u16 attribute length (rustables' bug at ~4,095 keys).
pub const MAX_ELEMENTS_BYTES: usize = 60 * 1024;

/// Which of a jail's two address sets an address belongs to.
pub fn set_name(jail: &str, addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(_) => format!("{jail}-v4"),
        IpAddr::V6(_) => format!("{jail}-v6"),
    }
}

/// Which of a jail's two prefix sets (`flags interval,timeout`) a prefix belongs to.
pub fn net_set_name(jail: &str, net: &IpNet) -> String {
    match net {
        IpNet::V4(_) => format!("{jail}-net4"),
        IpNet::V6(_) => format!("{jail}-net6"),
    }
}

/// The first address after a prefix: the key of its interval-end element.
/// None when the prefix runs to the end of the address space.
fn after(net: &IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) => u32::from(n.broadcast())
            .checked_add(1)
            .map(|x| IpAddr::from(x.to_be_bytes())),
        IpNet::V6(n) => u128::from(n.broadcast())
            .checked_add(1)
            .map(|x| IpAddr::from(x.to_be_bytes())),
    }
}

/// A growing buffer of netlink messages.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
    /// Start offsets of open nests and the current message.
    stack: Vec<usize>,
    pub seq: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Writer {
    pub fn with_seq(seq: u32) -> Self {
        Writer {
            seq,
            ..Writer::default()
        }
    }

    /// Starts a message; returns its sequence number.
    pub fn begin(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> u32 {
        let seq = self.seq;
        self.seq += 1;
        self.stack.push(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        seq
    }

    pub fn end(&mut self) {
        if let Some(start) = self.stack.pop() {
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// An nf_tables message (type in the nftables subsystem).
    pub fn begin_nft(&mut self, msg: u16, flags: u16) -> u32 {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, NFPROTO_INET, 0)
    }

    pub fn attr(&mut self, ty: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len() + align4(len) - len, 0);
    }

    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    pub fn attr_be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn attr_be64(&mut self, ty: u16, v: u64) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn nest_begin(&mut self, ty: u16) {
        self.stack.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    pub fn nest_end(&mut self) {
        if let Some(start) = self.stack.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    pub fn batch_begin(&mut self) -> u32 {
        let seq = self.begin(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
        seq
    }

    pub fn batch_end(&mut self) -> u32 {
        let seq = self.begin(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
        seq
    }

    /// `add set inet TABLE NAME { type ipv4_addr; flags timeout; }` (no EXCL:
    /// an existing set and its elements are kept); `interval` adds
    /// `flags interval` for prefixes.
    pub fn new_set(&mut self, table: &str, name: &str, v6: bool, interval: bool, id: u32) -> u32 {
        let seq = self.begin_nft(NFT_MSG_NEWSET, NLM_F_CREATE);
        self.attr_str(NFTA_SET_TABLE, table);
        self.attr_str(NFTA_SET_NAME, name);
        let flags = if interval {
            NFT_SET_TIMEOUT | NFT_SET_INTERVAL
        } else {
            NFT_SET_TIMEOUT
        };
        self.attr_be32(NFTA_SET_FLAGS, flags);
        self.attr_be32(
            NFTA_SET_KEY_TYPE,
            if v6 { TYPE_IP6ADDR } else { TYPE_IPADDR },
        );
        self.attr_be32(NFTA_SET_KEY_LEN, if v6 { 16 } else { 4 });
        self.attr_be32(NFTA_SET_ID, id);
        self.end();
        seq
    }

    pub fn del_table(&mut self, table: &str) -> u32 {
        let seq = self.begin_nft(NFT_MSG_DELTABLE, 0);
        // NFTA_TABLE_NAME, attribute 1 like NFTA_SET_TABLE.
        self.attr_str(NFTA_SET_TABLE, table);
        self.end();
        seq
    }

    pub fn del_set(&mut self, table: &str, name: &str) -> u32 {
        let seq = self.begin_nft(NFT_MSG_DELSET, 0);
        self.attr_str(NFTA_SET_TABLE, table);
        self.attr_str(NFTA_SET_NAME, name);
        self.end();
        seq
    }

    /// Element messages for one set, split so that no element list passes
    /// [`MAX_ELEMENTS_BYTES`]. `timeout` None means a delete.
    /// Returns the sequence numbers used, one per message.
    pub fn elements(
        &mut self,
        table: &str,
        set: &str,
        elems: &[(IpAddr, Option<Duration>)],
        add: bool,
    ) -> Vec<u32> {
        self.chunked(table, set, elems, add, |w, (addr, timeout)| {
            w.key_elem(*addr, *timeout, false)
        })
    }

    /// Prefixes as intervals: a start element (carrying the timeout) and an
    /// interval-end element at the first address after the prefix (carrying
    /// nothing else: the kernel refuses a timeout there). Split like
    /// [`Writer::elements`] (a blocklist holds many prefixes); returns the
    /// sequence numbers used.
    pub fn intervals(
        &mut self,
        table: &str,
        set: &str,
        nets: &[(IpNet, Option<Duration>)],
        add: bool,
    ) -> Vec<u32> {
        self.chunked(table, set, nets, add, |w, (net, timeout)| {
            w.key_elem(net.network(), *timeout, false);
            if let Some(end) = after(net) {
                w.key_elem(end, None, true);
            }
        })
    }

    /// Elements put back with the time they had left: `timeout` is the whole
    /// ban, `expires` what remains (the kernel shows `timeout T expires E`;
    /// it refuses E > T). Prefixes are sent as intervals. Split like
    /// [`Writer::elements`]; returns the sequence numbers used.
    pub fn restore(
        &mut self,
        table: &str,
        set: &str,
        elems: &[(IpNet, Duration, Duration)],
    ) -> Vec<u32> {
        self.chunked(table, set, elems, true, |w, (net, timeout, expires)| {
            let timeout = (*timeout).max(*expires);
            w.elem_begin(net.network(), Some(timeout), false);
            w.attr_be64(
                NFTA_SET_ELEM_EXPIRATION,
                (expires.as_millis() as u64).clamp(1, timeout.as_millis().max(1) as u64),
            );
            w.nest_end();
            if net.prefix_len() != net.max_prefix_len() {
                if let Some(end) = after(net) {
                    w.key_elem(end, None, true);
                }
            }
        })
    }

    /// Add (or delete) messages for `items` of one set, as many as it takes
    /// to keep each element list under [`MAX_ELEMENTS_BYTES`]; `each` writes
    /// one item's element(s). Returns the sequence numbers used.
    fn chunked<T>(
        &mut self,
        table: &str,
        set: &str,
        items: &[T],
        add: bool,
        mut each: impl FnMut(&mut Self, &T),
    ) -> Vec<u32> {
        let (msg, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        let mut seqs = Vec::new();
        let mut rest = items;
        while !rest.is_empty() {
            seqs.push(self.begin_nft(msg, flags));
            self.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
            self.attr_str(NFTA_SET_ELEM_LIST_SET, set);
            self.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            let start = self.buf.len();
            let mut n = 0;
            for item in rest {
                if self.buf.len() - start > MAX_ELEMENTS_BYTES {
                    break;
                }
                each(self, item);
                n += 1;
            }
            self.nest_end();
            self.end();
            rest = &rest[n..];
        }
        seqs
    }

    /// A rule's own port list, `{ 465, 587 }` or `{ 25, 5000-5010 }`: an
    /// anonymous constant set (the kernel names it `__setN` and frees it
    /// with its rule) and its elements, which must come before the rule in
    /// the transaction. The rule finds it by `id`. `ranges` are sorted and
    /// do not touch one another; a set with any range is an interval set.
    /// With `jumps` (one chain per range), a verdict map instead:
    /// `{ 22 : jump j-sshd, 465 : jump j-mail }`.
    pub fn anon_port_set(&mut self, table: &str, id: u32, ranges: &[(u16, u16)], jumps: &[&str]) {
        let interval = ranges.iter().any(|(a, b)| a != b);
        self.begin_nft(NFT_MSG_NEWSET, NLM_F_CREATE);
        self.attr_str(NFTA_SET_TABLE, table);
        self.attr_str(NFTA_SET_NAME, ANON_SET_NAME);
        let mut flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        if interval {
            flags |= NFT_SET_INTERVAL;
        }
        if !jumps.is_empty() {
            flags |= NFT_SET_MAP;
        }
        self.attr_be32(NFTA_SET_FLAGS, flags);
        self.attr_be32(NFTA_SET_KEY_TYPE, TYPE_INET_SERVICE);
        self.attr_be32(NFTA_SET_KEY_LEN, 2);
        if !jumps.is_empty() {
            self.attr_be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
        }
        self.attr_be32(NFTA_SET_ID, id);
        self.end();
        self.begin_nft(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        self.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        self.attr_str(NFTA_SET_ELEM_LIST_SET, ANON_SET_NAME);
        self.attr_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
        self.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for (i, &(first, last)) in ranges.iter().enumerate() {
            match jumps.get(i) {
                Some(chain) => {
                    self.nest_begin(NFTA_LIST_ELEM);
                    self.nest_begin(NFTA_SET_ELEM_KEY);
                    self.attr(NFTA_DATA_VALUE, &first.to_be_bytes());
                    self.nest_end();
                    self.nest_begin(NFTA_SET_ELEM_DATA);
                    self.nest_begin(NFTA_DATA_VERDICT);
                    self.attr(NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
                    self.attr_str(NFTA_VERDICT_CHAIN, chain);
                    self.nest_end();
                    self.nest_end();
                    self.nest_end();
                }
                None => self.port_elem(first, false),
            }
            if interval {
                if let Some(end) = last.checked_add(1) {
                    self.port_elem(end, true);
                }
            }
        }
        self.nest_end();
        self.end();
    }

    fn port_elem(&mut self, port: u16, interval_end: bool) {
        self.nest_begin(NFTA_LIST_ELEM);
        self.nest_begin(NFTA_SET_ELEM_KEY);
        self.attr(NFTA_DATA_VALUE, &port.to_be_bytes());
        self.nest_end();
        if interval_end {
            self.attr_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        self.nest_end();
    }

    fn key_elem(&mut self, addr: IpAddr, timeout: Option<Duration>, interval_end: bool) {
        self.elem_begin(addr, timeout, interval_end);
        self.nest_end();
    }

    /// An element with its key, flags and timeout, left open for more
    /// attributes (an expiration); the caller closes it with `nest_end`.
    fn elem_begin(&mut self, addr: IpAddr, timeout: Option<Duration>, interval_end: bool) {
        self.nest_begin(NFTA_LIST_ELEM);
        self.nest_begin(NFTA_SET_ELEM_KEY);
        match addr {
            IpAddr::V4(a) => self.attr(NFTA_DATA_VALUE, &a.octets()),
            IpAddr::V6(a) => self.attr(NFTA_DATA_VALUE, &a.octets()),
        }
        self.nest_end();
        if interval_end {
            self.attr_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        if let Some(t) = timeout {
            // The kernel refuses a zero timeout; round up to 1 ms.
            self.attr_be64(NFTA_SET_ELEM_TIMEOUT, (t.as_millis() as u64).max(1));
        }
    }

    pub fn get_sets(&mut self, table: &str) -> u32 {
        let seq = self.begin_nft(NFT_MSG_GETSET, NLM_F_DUMP);
        self.attr_str(NFTA_SET_TABLE, table);
        self.end();
        seq
    }

    pub fn get_elements(&mut self, table: &str, set: &str) -> u32 {
        let seq = self.begin_nft(NFT_MSG_GETSETELEM, NLM_F_DUMP);
        self.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        self.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        self.end();
        seq
    }

    pub fn get_gen(&mut self) -> u32 {
        let seq = self.begin_nft(NFT_MSG_GETGEN, NLM_F_ACK);
        self.end();
        seq
    }
}

/// One netlink message read back: header fields and the payload after nfgenmsg.
#[derive(Debug)]
pub struct Msg<'a> {
    pub ty: u16,
    pub seq: u32,
    /// For NLMSG_ERROR: the negated errno (0 = ack).
    pub error: Option<i32>,
    pub body: &'a [u8],
    /// The port id of the socket whose request caused it (in notifications).
    pub pid: u32,
    /// The nfgenmsg family (inet, ip, ...); 0 when absent.
    pub family: u8,
}

/// Splits a received buffer into messages; stops at anything malformed.
pub fn messages(buf: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let payload = &rest[16..len];
        let (error, body) = if ty == NLMSG_ERROR && payload.len() >= 4 {
            (
                Some(i32::from_ne_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ])),
                &payload[4..],
            )
        } else if payload.len() >= 4 {
            (None, &payload[4..])
        } else {
            (None, &payload[..0])
        };
        // For errors, the offending message's header follows; its seq is what counts.
        let seq = match error {
            Some(_) if body.len() >= 12 => {
                u32::from_ne_bytes([body[8], body[9], body[10], body[11]])
            }
            _ => seq,
        };
        let pid = u32::from_ne_bytes([rest[12], rest[13], rest[14], rest[15]]);
        let family = if len > 16 { rest[16] } else { 0 };
        out.push(Msg {
            ty,
            seq,
            error,
            body,
            pid,
            family,
        });
        rest = &rest[align4(len).min(rest.len())..];
    }
    out
}

/// Iterates over the attributes of `buf` as (type without flags, value).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, value))
    })
}

fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

fn c_str(v: &[u8]) -> String {
    let v = v.split(|&b| b == 0).next().unwrap_or(v);
    String::from_utf8_lossy(v).into_owned()
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// The table a table, chain, rule, set or element message is about: each
/// carries it as attribute 1.
pub fn parse_table_name(body: &[u8]) -> Option<String> {
    attr(body, NFTA_SET_TABLE).map(c_str)
}

/// The ruleset generation a NEWGEN message (the answer to GETGEN) carries:
/// the kernel counts it up by one for every transaction it commits.
pub fn parse_gen_id(body: &[u8]) -> Option<u32> {
    attr(body, NFTA_GEN_ID).and_then(be32)
}

/// The name in a NEWSET message of a dump; None for an anonymous set (a
/// rule's port list): it belongs to its rule and goes with it, so nothing
/// that walks our named sets may see or delete it.
pub fn parse_set_name(body: &[u8]) -> Option<String> {
    let flags = attr(body, NFTA_SET_FLAGS).and_then(be32).unwrap_or(0);
    if flags & NFT_SET_ANONYMOUS != 0 {
        return None;
    }
    attr(body, NFTA_SET_NAME).map(c_str)
}

/// An element read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub addr: IpAddr,
    pub timeout: Option<Duration>,
    /// Time left before the kernel removes it.
    pub expires: Option<Duration>,
    /// An interval-end element of a prefix set.
    pub interval_end: bool,
}

/// Prefixes from an interval set's elements: each start paired with the
/// nearest end above it. A range that is not one aligned prefix (made by
/// hand) is left out: we never made it.
pub fn elements_to_nets(elems: &[Element]) -> Vec<(IpNet, &Element)> {
    // Ends of each family apart: a set has one family, but these come from
    // bytes read off a socket, and an IPv4 end must not close an IPv6 range.
    let ends = |v4: bool| {
        let mut ends: Vec<u128> = elems
            .iter()
            .filter(|e| e.interval_end && e.addr.is_ipv4() == v4)
            .map(|e| key_num(&e.addr))
            .collect();
        ends.sort_unstable();
        ends
    };
    let (ends4, ends6) = (ends(true), ends(false));
    elems
        .iter()
        .filter(|e| !e.interval_end)
        .filter_map(|e| {
            let start = key_num(&e.addr);
            let (bits, ends) = if e.addr.is_ipv4() {
                (32, &ends4)
            } else {
                (128, &ends6)
            };
            let end = ends.get(ends.partition_point(|&x| x <= start)).copied();
            // None: all 2^128 addresses of IPv6 (`::/0`), one more than a
            // u128 holds.
            let size = match end {
                Some(end) => Some(end - start),
                // Runs to the end of the address space.
                None if bits == 32 => Some((1u128 << 32) - start),
                None => (u128::MAX - start).checked_add(1),
            };
            let prefix = match size {
                Some(size) if size.is_power_of_two() && start % size == 0 => {
                    bits - size.trailing_zeros() as u8
                }
                Some(_) => return None,
                None => 0,
            };
            IpNet::new(e.addr, prefix).ok().map(|n| (n, e))
        })
        .collect()
}

fn key_num(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

/// Elements of a NEWSETELEM message of a dump.
pub fn parse_elements(body: &[u8]) -> Vec<Element> {
    let Some(list) = attr(body, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    attrs(list)
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .filter_map(|(_, elem)| {
            let key = attr(attr(elem, NFTA_SET_ELEM_KEY)?, NFTA_DATA_VALUE)?;
            let addr = match key.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(key).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(key).ok()?),
                _ => return None,
            };
            let ms = |ty| attr(elem, ty).and_then(be64).map(Duration::from_millis);
            let flags = attr(elem, NFTA_SET_ELEM_FLAGS).and_then(be32).unwrap_or(0);
            Some(Element {
                addr,
                timeout: ms(NFTA_SET_ELEM_TIMEOUT),
                expires: ms(NFTA_SET_ELEM_EXPIRATION),
                interval_end: flags & NFT_SET_ELEM_INTERVAL_END != 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_message_layout() {
        let mut w = Writer::with_seq(7);
        let seqs = w.elements(
            "nftjail",
            "j-v4",
            &[("192.0.2.1".parse().unwrap(), Some(Duration::from_secs(3)))],
            true,
        );
        assert_eq!(seqs, [7]);
        let msgs = messages(&w.buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM);
        assert_eq!(msgs[0].seq, 7);
        let list = attr(msgs[0].body, NFTA_SET_ELEM_LIST_ELEMENTS).unwrap();
        let elems = parse_elements(msgs[0].body);
        assert_eq!(elems.len(), 1);
        assert_eq!(elems[0].addr.to_string(), "192.0.2.1");
        assert_eq!(elems[0].timeout, Some(Duration::from_secs(3)));
        // nest(4) + key nest(4) + value(8) + timeout(12)
        assert_eq!(list.len(), 28);
        assert_eq!(
            attr(msgs[0].body, NFTA_SET_ELEM_LIST_SET)
                .map(c_str)
                .unwrap(),
            "j-v4"
        );
    }

    #[test]
    fn big_lists_are_split_under_the_u16_limit() {
        let elems: Vec<_> = (0..10_000u32)
            .map(|i| (IpAddr::from(i.to_be_bytes()), Some(Duration::from_secs(60))))
            .collect();
        let mut w = Writer::default();
        let seqs = w.elements("t", "s", &elems, true);
        assert!(seqs.len() >= 5, "{}", seqs.len());
        let msgs = messages(&w.buf);
        let total: usize = msgs.iter().map(|m| parse_elements(m.body).len()).sum();
        assert_eq!(total, 10_000);
        for m in &msgs {
            assert!(m.body.len() < 65_535);
        }
    }

    #[test]
    fn ipv6_and_deletes() {
        let mut w = Writer::default();
        w.elements(
            "t",
            "s-v6",
            &[("2001:db8::1".parse().unwrap(), None)],
            false,
        );
        let msgs = messages(&w.buf);
        assert_eq!(msgs[0].ty & 0xff, NFT_MSG_DELSETELEM);
        let e = &parse_elements(msgs[0].body)[0];
        assert_eq!(e.addr.to_string(), "2001:db8::1");
        assert_eq!(e.timeout, None);
    }

    #[test]
    fn whole_address_spaces_and_mixed_families_read_back() {
        // Found by the netlink fuzz target: `::/0` (a start with no end)
        // overflowed the size of its range, and an IPv6 end taken for an
        // IPv4 start underflowed its prefix length.
        let el = |a: &str, interval_end| Element {
            addr: a.parse().unwrap(),
            timeout: None,
            expires: None,
            interval_end,
        };
        let nets = |elems: &[Element]| -> Vec<String> {
            elements_to_nets(elems)
                .iter()
                .map(|(n, _)| n.to_string())
                .collect()
        };
        assert_eq!(nets(&[el("::", false)]), ["::/0"]);
        assert_eq!(nets(&[el("0.0.0.0", false)]), ["0.0.0.0/0"]);
        assert_eq!(
            nets(&[el("0.0.0.0", false), el("::1:0:0:0", true)]),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            nets(&[el("::", false), el("0.0.1.0", true), el("::1:0:0", true)]),
            ["::/96"]
        );
    }

    #[test]
    fn garbage_is_not_a_panic() {
        assert!(messages(&[0xff; 40]).is_empty());
        assert!(parse_elements(&[1, 0, 3, 0, 9, 9, 9]).is_empty());
        assert_eq!(attrs(&[200, 0, 1, 0]).count(), 0);
    }
}
