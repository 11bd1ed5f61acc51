//! Netlink framing for nfnetlink: a message writer (headers, attributes,
//! nests, 4-byte padding) and a reader that never trusts a length.
//!
//! It knows nothing of sets or elements (`element.rs` does); it exists so the
//! byte layout is written once and unit-tested without a kernel. Netlink
//! headers are host-endian; nf_tables attribute values are big-endian.

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFPROTO_INET: u8 = 1;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
/// Set on dump answers when the ruleset changed while the dump ran.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Netlink header (16 bytes) plus nfgenmsg (4 bytes).
#[cfg(test)]
pub const HEADER_LEN: usize = 20;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A growing buffer of netlink messages.
///
/// `seq` numbers the messages written; inside a transaction it is the
/// message's index, which the transport later shifts into its own sequence.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
    /// Start offsets of the open message and nests.
    stack: Vec<usize>,
    pub seq: u32,
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
        self.seq = self.seq.wrapping_add(1);
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

    /// Ends the message begun last, writing its length.
    pub fn end(&mut self) {
        if let Some(start) = self.stack.pop() {
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// An nf_tables message of family inet.
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

    /// A NUL-terminated string, as the kernel's NLA_STRING policy wants.
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

    /// Ends a nest. Callers keep nests under 64 KiB (the length is a u16):
    /// `element.rs` splits element lists well before that.
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
}

/// One netlink message read back.
#[derive(Debug)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    /// For NLMSG_ERROR, the sequence number of the message it answers.
    pub seq: u32,
    /// For NLMSG_ERROR: the negated errno (0 = ack).
    pub error: Option<i32>,
    /// The payload after nfgenmsg (after the errno for NLMSG_ERROR).
    pub body: &'a [u8],
}

/// Byte spans of the whole messages in `buf`; stops at anything malformed.
pub fn spans(buf: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
        if len < 16 || at + len > buf.len() {
            return None;
        }
        let span = at..at + len;
        at += align4(len);
        Some(span)
    })
}

fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a received buffer into messages; stops at anything malformed.
pub fn messages(buf: &[u8]) -> Vec<Msg<'_>> {
    spans(buf)
        .map(|span| {
            let m = &buf[span];
            let (ty, flags) = (ne16(m, 4), ne16(m, 6));
            let payload = &m[16..];
            if ty == NLMSG_ERROR && payload.len() >= 4 {
                let errno = ne32(payload, 0) as i32;
                let echoed = &payload[4..];
                // The answered message's header follows the errno: its seq counts.
                let seq = if echoed.len() >= 12 {
                    ne32(echoed, 8)
                } else {
                    ne32(m, 8)
                };
                Msg {
                    ty,
                    flags,
                    seq,
                    error: Some(errno),
                    body: echoed,
                }
            } else {
                Msg {
                    ty,
                    flags,
                    seq: ne32(m, 8),
                    error: None,
                    body: payload.get(4..).unwrap_or_default(),
                }
            }
        })
        .collect()
}

/// Iterates over the attributes of `buf` as (type without flags, value).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = ne16(buf, 0) as usize;
        let ty = ne16(buf, 2) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, value))
    })
}

/// The first attribute of type `ty`.
pub fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

/// A NUL-terminated string attribute value.
pub fn c_str(v: &[u8]) -> String {
    let v = v.split(|&b| b == 0).next().unwrap_or(v);
    String::from_utf8_lossy(v).into_owned()
}

pub fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_attributes_and_padding() {
        let mut w = Writer::with_seq(5);
        assert_eq!(w.begin_nft(9, NLM_F_CREATE), 5);
        w.attr_str(1, "abc"); // 4 + "abc\0" = 8, no padding
        w.attr_str(2, "abcd"); // 4 + 5 = 9, padded to 12
        w.nest_begin(3);
        w.attr_be32(1, 7);
        w.nest_end();
        w.end();
        assert_eq!(w.buf.len(), HEADER_LEN + 8 + 12 + 4 + 8);
        assert_eq!(ne32(&w.buf, 0) as usize, w.buf.len());
        assert_eq!(ne16(&w.buf, 4), (NFNL_SUBSYS_NFTABLES << 8) | 9);
        assert_eq!(ne16(&w.buf, 6), NLM_F_CREATE | NLM_F_REQUEST);
        assert_eq!(w.buf[16], NFPROTO_INET);
        // The padded string's length field says 9, the next attribute starts at 12.
        assert_eq!(ne16(&w.buf, HEADER_LEN + 8), 9);
        assert_eq!(&w.buf[HEADER_LEN + 8 + 9..HEADER_LEN + 8 + 12], &[0, 0, 0]);
        // The nest carries NLA_F_NESTED and its full length.
        let nest = HEADER_LEN + 20;
        assert_eq!(ne16(&w.buf, nest), 12);
        assert_eq!(ne16(&w.buf, nest + 2), 3 | NLA_F_NESTED);

        let msgs = messages(&w.buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 5);
        assert_eq!(attr(msgs[0].body, 2).map(c_str).unwrap(), "abcd");
        let inner = attr(msgs[0].body, 3).unwrap();
        assert_eq!(attr(inner, 1).unwrap(), 7u32.to_be_bytes());
    }

    #[test]
    fn errors_carry_the_answered_seq() {
        let mut req = Writer::with_seq(42);
        req.begin_nft(14, 0);
        req.end();
        let mut err = Vec::new();
        err.extend_from_slice(&((16 + 4 + 16) as u32).to_ne_bytes());
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&0u16.to_ne_bytes());
        err.extend_from_slice(&0u32.to_ne_bytes()); // outer seq: ignored
        err.extend_from_slice(&0u32.to_ne_bytes());
        err.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        err.extend_from_slice(&req.buf[..16]);
        let m = messages(&err);
        assert_eq!(m[0].error, Some(-libc::ENOENT));
        assert_eq!(m[0].seq, 42);
    }

    #[test]
    fn garbage_is_not_a_panic() {
        assert!(messages(&[0xff; 40]).is_empty());
        assert!(messages(&[20, 0, 0, 0, 2, 0]).is_empty());
        assert_eq!(attrs(&[200, 0, 1, 0]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(be64(&[1, 2, 3]), None);
    }
}
