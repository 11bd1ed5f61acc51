//! The table, chain and rules, built with rustables.
//!
//! rustables encodes them; we take its finalized batch bytes, drop its own
//! begin/end markers and splice the messages into our transaction, so the
//! rules, our sets and elements change in one atomic step.

use rustables::expr::{
    Cmp, CmpOp, Counter, HighLevelPayload, IPv4HeaderField, IPv6HeaderField, IcmpCode, Immediate,
    Lookup, Meta, MetaType, NetworkHeaderField, Register, Reject, RejectType, TCPHeaderField,
    TransportHeaderField, UDPHeaderField, VerdictKind,
};
use rustables::{
    Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily, Rule, Table,
};

use super::wire;
use crate::rules::{BlockType, JailRules, PortRange, Proto};

/// Our one base chain.
pub const CHAIN: &str = "input";
/// `filter - 10`: before a typical `inet filter input` chain at priority 0,
/// so a ban wins over an accept rule there.
const PRIORITY: i32 = -10;

#[derive(Debug, thiserror::Error)]
#[error("building rule for jail {jail}: {message}")]
pub struct RuleError {
    jail: String,
    message: String,
}

/// The message that creates the table (no EXCL: an existing one stays).
pub fn table_message(table: &str) -> Vec<u8> {
    let mut batch = Batch::new();
    batch.add(
        &Table::new(ProtocolFamily::Inet).with_name(table),
        MsgType::Add,
    );
    strip_batch_markers(&batch.finalize())
}

/// Set ids of the rules' anonymous port sets start here, far above the ids
/// the jails' named sets use in the same transaction.
const ANON_SET_IDS: u32 = 1 << 24;

/// How a rule matches the destination port of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    /// `th dport 22` or `th dport 5000-5010`: compared in the rule.
    Range(u16, u16),
    /// `th dport { 465, 587 }`: looked up in the anonymous set of this id.
    Set(u32),
}

/// A jail's ports per protocol, each list sorted with overlapping and
/// touching ranges merged (an interval set refuses overlaps, and fewer
/// elements read better). An empty result: every port and protocol.
fn ports_by_proto(ports: &[PortRange]) -> Vec<(Proto, Vec<(u16, u16)>)> {
    let mut out: Vec<(Proto, Vec<(u16, u16)>)> = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let mut ranges: Vec<(u16, u16)> = ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| (p.first.min(p.last), p.first.max(p.last)))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => {
                    prev.1 = prev.1.max(last);
                }
                _ => merged.push((first, last)),
            }
        }
        if !merged.is_empty() {
            out.push((proto, merged));
        }
    }
    out
}

/// Messages that create the chain (no EXCL), delete every rule of it and add
/// the wanted ones. No elements are touched: a set's bans survive a reconcile,
/// and a chain of any older layout is replaced whole in the same step.
/// The jails' sets must exist before these messages in the same transaction.
///
/// One rule per set of a jail and protocol: the jail's ports of that
/// protocol are one comparison, or one lookup in an anonymous set, so a
/// packet meets four rules per jail (two of the other family end at their
/// first comparison) however many ports the jail lists. A jail with TCP and
/// UDP ports has a rule per protocol: a reject answers TCP with a reset and
/// UDP with an ICMP error.
pub fn chain_messages(table: &str, jails: &[JailRules]) -> Result<Vec<u8>, RuleError> {
    let mut batch = Batch::new();
    let t = Table::new(ProtocolFamily::Inet).with_name(table);
    let hook = Hook::default()
        .with_class(HookClass::In as u32)
        .with_priority(PRIORITY as u32);
    let chain = Chain::new(&t)
        .with_name(CHAIN)
        .with_hook(hook)
        .with_policy(ChainPolicy::Accept)
        .with_type(ChainType::Filter);
    batch.add(&chain, MsgType::Add);
    // DELRULE with only table and chain: flush the chain's rules.
    let flush = Rule::new(&chain).map_err(|e| RuleError {
        jail: String::new(),
        message: e.to_string(),
    })?;
    batch.add(&flush, MsgType::Del);
    let mut out = strip_batch_markers(&batch.finalize());
    let mut next_id = ANON_SET_IDS;
    for jail in jails {
        let groups = ports_by_proto(&jail.ports);
        // Addresses first, then prefixes, so `nft list` reads in that order.
        for v6 in [false, true] {
            for net in [false, true] {
                let mut wanted: Vec<Option<(Proto, PortMatch)>> = Vec::new();
                if groups.is_empty() {
                    wanted.push(None);
                }
                for (proto, ranges) in &groups {
                    let matching = match ranges.as_slice() {
                        [(first, last)] => PortMatch::Range(*first, *last),
                        _ => {
                            // The set goes before the rule that binds it.
                            next_id += 1;
                            let mut w = wire::Writer::default();
                            w.anon_port_set(table, next_id, ranges);
                            out.extend_from_slice(&w.buf);
                            PortMatch::Set(next_id)
                        }
                    };
                    wanted.push(Some((*proto, matching)));
                }
                for port in wanted {
                    let rule = rule(&chain, jail, v6, net, port).map_err(|message| RuleError {
                        jail: jail.name.clone(),
                        message,
                    })?;
                    let mut one = Batch::new();
                    one.add(&rule, MsgType::Add);
                    out.extend(strip_batch_markers(&one.finalize()));
                }
            }
        }
    }
    Ok(out)
}

/// `[meta l4proto P th dport A[-B]|{…}] ip[6] saddr @<jail>-v4|v6|net4|net6 counter reject|drop`
fn rule(
    chain: &Chain,
    jail: &JailRules,
    v6: bool,
    net: bool,
    port: Option<(Proto, PortMatch)>,
) -> Result<Rule, String> {
    let mut r = Rule::new(chain).map_err(|e| e.to_string())?;
    r.add_expr(Meta::new(MetaType::NfProto));
    r.add_expr(Cmp::new(
        CmpOp::Eq,
        [if v6 {
            libc::NFPROTO_IPV6
        } else {
            libc::NFPROTO_IPV4
        } as u8],
    ));
    if let Some((proto, matching)) = port {
        r.add_expr(Meta::new(MetaType::L4Proto));
        let (number, field) = match proto {
            Proto::Tcp => (
                libc::IPPROTO_TCP,
                TransportHeaderField::Tcp(TCPHeaderField::Dport),
            ),
            Proto::Udp => (
                libc::IPPROTO_UDP,
                TransportHeaderField::Udp(UDPHeaderField::Dport),
            ),
        };
        r.add_expr(Cmp::new(CmpOp::Eq, [number as u8]));
        r.add_expr(HighLevelPayload::Transport(field).build());
        match matching {
            PortMatch::Range(first, last) if first == last => {
                r.add_expr(Cmp::new(CmpOp::Eq, first.to_be_bytes()));
            }
            PortMatch::Range(first, last) => {
                r.add_expr(Cmp::new(CmpOp::Gte, first.to_be_bytes()));
                r.add_expr(Cmp::new(CmpOp::Lte, last.to_be_bytes()));
            }
            PortMatch::Set(id) => r.add_expr(
                Lookup::default()
                    .with_set(wire::ANON_SET_NAME)
                    .with_set_id(id)
                    .with_sreg(Register::Reg1),
            ),
        }
    }
    let saddr = if v6 {
        NetworkHeaderField::IPv6(IPv6HeaderField::Saddr)
    } else {
        NetworkHeaderField::IPv4(IPv4HeaderField::Saddr)
    };
    r.add_expr(HighLevelPayload::Network(saddr).build());
    let suffix = match (net, v6) {
        (false, false) => "v4",
        (false, true) => "v6",
        (true, false) => "net4",
        (true, true) => "net6",
    };
    let set = format!("{}-{suffix}", jail.name);
    r.add_expr(Lookup::default().with_set(set).with_sreg(Register::Reg1));
    r.add_expr(Counter::default());
    match (jail.blocktype, port.map(|(proto, _)| proto)) {
        (BlockType::Drop, _) => r.add_expr(Immediate::new_verdict(VerdictKind::Drop)),
        (BlockType::Reject, Some(Proto::Tcp)) => {
            r.add_expr(Reject::default().with_type(RejectType::TcpRst))
        }
        (BlockType::Reject, _) => r.add_expr(
            Reject::default()
                .with_type(RejectType::IcmpxUnreach)
                .with_icmp_code(IcmpCode::PortUnreach),
        ),
    }
    Ok(r)
}

/// Drops the first (BATCH_BEGIN) and last (BATCH_END) messages of a finalized
/// rustables batch; our transport renumbers the rest.
fn strip_batch_markers(buf: &[u8]) -> Vec<u8> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if ty != wire::NFNL_MSG_BATCH_BEGIN && ty != wire::NFNL_MSG_BATCH_END {
            spans.push(at..at + len);
        }
        at += (len + 3) & !3;
    }
    spans
        .into_iter()
        .flat_map(|s| buf[s].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(list: &[(Proto, u16, u16)]) -> Vec<PortRange> {
        list.iter()
            .map(|&(proto, first, last)| PortRange { proto, first, last })
            .collect()
    }

    #[test]
    fn one_rule_per_set_and_protocol_with_the_ports_as_one_set() {
        let jails = [JailRules {
            name: "mail".into(),
            ports: ports(&[
                (Proto::Tcp, 587, 587),
                (Proto::Tcp, 25, 25),
                (Proto::Tcp, 465, 465),
                (Proto::Udp, 1000, 2000),
            ]),
            blocktype: BlockType::Reject,
            app: None,
        }];
        let mut buf = table_message("nftjail");
        buf.extend(chain_messages("nftjail", &jails).unwrap());
        let msgs = wire::messages(&buf);
        let types: Vec<u16> = msgs.iter().map(|m| m.ty & 0xff).collect();
        // table, chain, flush (DELRULE); then per family and set kind the TCP
        // port set (NEWSET, NEWSETELEM) and its rule, and the UDP range's rule.
        let per_set = [9, 12, 6, 6];
        let mut want = vec![0, 3, 8];
        for _ in 0..4 {
            want.extend(per_set);
        }
        assert_eq!(types, want);
    }

    #[test]
    fn ports_are_grouped_sorted_and_merged() {
        let got = ports_by_proto(&ports(&[
            (Proto::Udp, 53, 53),
            (Proto::Tcp, 587, 587),
            (Proto::Tcp, 25, 25),
            (Proto::Tcp, 26, 30),
            (Proto::Tcp, 28, 40),
            (Proto::Tcp, 65535, 65535),
        ]));
        assert_eq!(
            got,
            [
                (Proto::Tcp, vec![(25, 40), (587, 587), (65535, 65535)]),
                (Proto::Udp, vec![(53, 53)]),
            ]
        );
        assert!(ports_by_proto(&[]).is_empty());
    }
}
