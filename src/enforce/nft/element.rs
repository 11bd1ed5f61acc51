//! nf_tables messages rustables 0.9 cannot write or read: sets with
//! `flags timeout` (its SetBuilder leaves the family Unspec), elements with a
//! per-element timeout, and the set / element dumps a restart needs.
//!
//! Element lists are split so that no nest passes 64 KiB: the attribute
//! length is a u16, and a wrapped length makes the kernel refuse the batch.

use std::net::IpAddr;
use std::time::Duration;

use super::wire::{attr, attrs, be64, c_str, Writer, NLM_F_CREATE, NLM_F_DUMP};

pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_GETSET: u16 = 10;
pub const NFT_MSG_DELSET: u16 = 11;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_DELSETELEM: u16 = 14;
pub const NFT_MSG_GETGEN: u16 = 16;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_TIMEOUT: u32 = 0x10;
/// nft's own data type numbers, so `nft list` prints `type ipv4_addr`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;

/// Largest element list we write: well under the u16 limit (about 2,000
/// IPv4 keys with timeouts, 1,500 IPv6).
pub const MAX_ELEMENTS_BYTES: usize = 60 * 1024;

/// Which of a jail's two sets an address belongs to.
pub fn set_name(jail: &str, addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(_) => format!("{jail}-v4"),
        IpAddr::V6(_) => format!("{jail}-v6"),
    }
}

/// The timeout attribute in milliseconds. The kernel refuses a zero
/// timeout, so it rounds up to 1 ms.
fn timeout_ms(t: Duration) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `add set inet TABLE NAME { type ipv4_addr; flags timeout; }` (no EXCL:
/// an existing set and its elements are kept).
pub fn new_set(w: &mut Writer, table: &str, name: &str, v6: bool, id: u32) {
    w.begin_nft(NFT_MSG_NEWSET, NLM_F_CREATE);
    w.attr_str(NFTA_SET_TABLE, table);
    w.attr_str(NFTA_SET_NAME, name);
    w.attr_be32(NFTA_SET_FLAGS, NFT_SET_TIMEOUT);
    w.attr_be32(
        NFTA_SET_KEY_TYPE,
        if v6 { TYPE_IP6ADDR } else { TYPE_IPADDR },
    );
    w.attr_be32(NFTA_SET_KEY_LEN, if v6 { 16 } else { 4 });
    w.attr_be32(NFTA_SET_ID, id);
    w.end();
}

pub fn del_set(w: &mut Writer, table: &str, name: &str) {
    w.begin_nft(NFT_MSG_DELSET, 0);
    w.attr_str(NFTA_SET_TABLE, table);
    w.attr_str(NFTA_SET_NAME, name);
    w.end();
}

/// Writes NEWSETELEM messages adding `elems`, each with its own timeout
/// (None: permanent). Returns how many elements went into each message.
pub fn add_elements(
    w: &mut Writer,
    table: &str,
    set: &str,
    elems: &[(IpAddr, Option<Duration>)],
) -> Vec<usize> {
    element_lists(w, NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, set, elems)
}

/// Writes DELSETELEM messages for `addrs`. Returns how many addresses went
/// into each message.
pub fn delete_elements(w: &mut Writer, table: &str, set: &str, addrs: &[IpAddr]) -> Vec<usize> {
    let elems: Vec<(IpAddr, Option<Duration>)> = addrs.iter().map(|a| (*a, None)).collect();
    element_lists(w, NFT_MSG_DELSETELEM, 0, table, set, &elems)
}

/// As many messages as needed to keep each element list under
/// [`MAX_ELEMENTS_BYTES`].
fn element_lists(
    w: &mut Writer,
    msg: u16,
    flags: u16,
    table: &str,
    set: &str,
    elems: &[(IpAddr, Option<Duration>)],
) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut rest = elems;
    while !rest.is_empty() {
        w.begin_nft(msg, flags);
        w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        w.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        let start = w.buf.len();
        let mut n = 0;
        for (addr, timeout) in rest {
            if w.buf.len() - start > MAX_ELEMENTS_BYTES {
                break;
            }
            w.nest_begin(NFTA_LIST_ELEM);
            w.nest_begin(NFTA_SET_ELEM_KEY);
            match addr {
                IpAddr::V4(a) => w.attr(NFTA_DATA_VALUE, &a.octets()),
                IpAddr::V6(a) => w.attr(NFTA_DATA_VALUE, &a.octets()),
            }
            w.nest_end();
            if let Some(t) = timeout {
                w.attr_be64(NFTA_SET_ELEM_TIMEOUT, timeout_ms(*t));
            }
            w.nest_end();
            n += 1;
        }
        w.nest_end();
        w.end();
        counts.push(n);
        rest = &rest[n..];
    }
    counts
}

/// Dump request for the sets of `table`.
pub fn get_sets(w: &mut Writer, table: &str) -> u32 {
    let seq = w.begin_nft(NFT_MSG_GETSET, NLM_F_DUMP);
    w.attr_str(NFTA_SET_TABLE, table);
    w.end();
    seq
}

/// Dump request for the elements of one set.
pub fn get_elements(w: &mut Writer, table: &str, set: &str) -> u32 {
    let seq = w.begin_nft(NFT_MSG_GETSETELEM, NLM_F_DUMP);
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    w.end();
    seq
}

/// The set name in a NEWSET message of a dump.
pub fn parse_set_name(body: &[u8]) -> Option<String> {
    attr(body, NFTA_SET_NAME).map(c_str)
}

/// An element read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub addr: IpAddr,
    pub timeout: Option<Duration>,
    /// Time left before the kernel removes it, when the dump was made.
    pub expires: Option<Duration>,
}

/// Elements of one NEWSETELEM message (of a dump, or of our own requests);
/// anything that is not a 4- or 16-byte key is skipped.
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
            Some(Element {
                addr,
                timeout: ms(NFTA_SET_ELEM_TIMEOUT),
                expires: ms(NFTA_SET_ELEM_EXPIRATION),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::wire::{messages, HEADER_LEN, NFNL_SUBSYS_NFTABLES};
    use super::*;

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn element_message_bytes() {
        let mut w = Writer::with_seq(7);
        let counts = add_elements(
            &mut w,
            "nftjail",
            "j-v4",
            &[("192.0.2.1".parse().unwrap(), Some(Duration::from_secs(3)))],
        );
        assert_eq!(counts, [1]);
        let list: &[u8] = &[
            32, 0, 3, 0x80, // NFTA_SET_ELEM_LIST_ELEMENTS, nested
            28, 0, 1, 0x80, // NFTA_LIST_ELEM, nested
            12, 0, 1, 0x80, // NFTA_SET_ELEM_KEY, nested
            8, 0, 1, 0, 192, 0, 2, 1, // NFTA_DATA_VALUE
            12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8, // TIMEOUT 3000 ms, big-endian
        ];
        let strings = 12 + 12; // "nftjail\0", "j-v4\0" + padding
        assert_eq!(&w.buf[HEADER_LEN + strings..], list);
        let msgs = messages(&w.buf);
        assert_eq!(msgs[0].ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM);
        assert_eq!(msgs[0].seq, 7);
        let e = &parse_elements(msgs[0].body)[0];
        assert_eq!(e.addr, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            attr(msgs[0].body, NFTA_SET_ELEM_LIST_SET).map(c_str),
            Some("j-v4".into())
        );
    }

    #[test]
    fn big_lists_are_split_under_the_u16_limit() {
        let addrs: Vec<_> = (0..10_000).map(v4).collect();
        let elems: Vec<_> = (0..10_000u64)
            .map(|i| (v4(i as u32), Some(Duration::from_secs(60 + i))))
            .collect();
        let mut w = Writer::default();
        let counts = add_elements(&mut w, "t", "s", &elems);
        assert_eq!(counts.iter().sum::<usize>(), 10_000);
        assert_eq!(counts.len(), 5, "{counts:?}");
        let msgs = messages(&w.buf);
        assert_eq!(msgs.len(), counts.len());
        let mut back = Vec::new();
        for (m, n) in msgs.iter().zip(&counts) {
            let list = attr(m.body, NFTA_SET_ELEM_LIST_ELEMENTS).unwrap();
            assert!(list.len() < MAX_ELEMENTS_BYTES + 64, "{}", list.len());
            let got = parse_elements(m.body);
            assert_eq!(got.len(), *n);
            back.extend(got.into_iter().map(|e| (e.addr, e.timeout)));
        }
        assert_eq!(
            back, elems,
            "split keeps every address and its own timeout, in order"
        );
        let mut w = Writer::default();
        let counts = delete_elements(&mut w, "t", "s", &addrs);
        assert_eq!(counts.iter().sum::<usize>(), 10_000);
        assert_eq!(counts.len(), 3, "{counts:?}");
    }

    #[test]
    fn ipv6_deletes_and_permanent_adds_carry_no_timeout() {
        let mut w = Writer::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        delete_elements(&mut w, "t", "s-v6", &[a]);
        add_elements(&mut w, "t", "s-v6", &[(a, None)]);
        let msgs = messages(&w.buf);
        assert_eq!(msgs[0].ty & 0xff, NFT_MSG_DELSETELEM);
        assert_eq!(msgs[1].ty & 0xff, NFT_MSG_NEWSETELEM);
        for m in &msgs {
            let e = &parse_elements(m.body)[0];
            assert_eq!(e.addr, a);
            assert_eq!(e.timeout, None);
        }
    }

    #[test]
    fn zero_and_huge_timeouts_stay_in_range() {
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_micros(1500)), 1);
        assert_eq!(timeout_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn set_messages() {
        let mut w = Writer::default();
        new_set(&mut w, "nftjail", "sshd-v6", true, 2);
        del_set(&mut w, "nftjail", "old-v4");
        let msgs = messages(&w.buf);
        assert_eq!(msgs[0].ty & 0xff, NFT_MSG_NEWSET);
        assert_eq!(parse_set_name(msgs[0].body).unwrap(), "sshd-v6");
        assert_eq!(
            attr(msgs[0].body, NFTA_SET_FLAGS).unwrap(),
            NFT_SET_TIMEOUT.to_be_bytes()
        );
        assert_eq!(
            attr(msgs[0].body, NFTA_SET_KEY_LEN).unwrap(),
            16u32.to_be_bytes()
        );
        assert_eq!(msgs[1].ty & 0xff, NFT_MSG_DELSET);
        assert_eq!(parse_set_name(msgs[1].body).unwrap(), "old-v4");
    }

    #[test]
    fn garbage_elements_are_skipped() {
        assert!(parse_elements(&[1, 0, 3, 0, 9, 9, 9]).is_empty());
        // A list with one element whose key is 3 bytes long.
        let mut w = Writer::default();
        w.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        w.nest_begin(NFTA_LIST_ELEM);
        w.nest_begin(NFTA_SET_ELEM_KEY);
        w.attr(NFTA_DATA_VALUE, &[1, 2, 3]);
        w.nest_end();
        w.nest_end();
        w.nest_end();
        assert!(parse_elements(&w.buf).is_empty());
    }
}
