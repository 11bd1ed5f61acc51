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

/// Messages that create the chain (no EXCL), delete every rule of it and add
/// the wanted ones. No elements are touched: a set's bans survive a reconcile.
/// The jails' sets must exist before these messages in the same transaction.
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
    for jail in jails {
        for v6 in [false, true] {
            let ports: Vec<Option<PortRange>> = if jail.ports.is_empty() {
                vec![None]
            } else {
                jail.ports.iter().copied().map(Some).collect()
            };
            // Addresses first, then prefixes, so `nft list` reads in that order.
            for net in [false, true] {
                for port in &ports {
                    let rule = rule(&chain, jail, v6, net, *port).map_err(|message| RuleError {
                        jail: jail.name.clone(),
                        message,
                    })?;
                    batch.add(&rule, MsgType::Add);
                }
            }
        }
    }
    Ok(strip_batch_markers(&batch.finalize()))
}

/// `[meta l4proto P th dport A[-B]] ip[6] saddr @<jail>-v4|v6|net4|net6 counter reject|drop`
fn rule(
    chain: &Chain,
    jail: &JailRules,
    v6: bool,
    net: bool,
    port: Option<PortRange>,
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
    if let Some(p) = port {
        r.add_expr(Meta::new(MetaType::L4Proto));
        let (proto, field) = match p.proto {
            Proto::Tcp => (
                libc::IPPROTO_TCP,
                TransportHeaderField::Tcp(TCPHeaderField::Dport),
            ),
            Proto::Udp => (
                libc::IPPROTO_UDP,
                TransportHeaderField::Udp(UDPHeaderField::Dport),
            ),
        };
        r.add_expr(Cmp::new(CmpOp::Eq, [proto as u8]));
        r.add_expr(HighLevelPayload::Transport(field).build());
        if p.first == p.last {
            r.add_expr(Cmp::new(CmpOp::Eq, p.first.to_be_bytes()));
        } else {
            r.add_expr(Cmp::new(CmpOp::Gte, p.first.to_be_bytes()));
            r.add_expr(Cmp::new(CmpOp::Lte, p.last.to_be_bytes()));
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
    match (jail.blocktype, port.map(|p| p.proto)) {
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

    #[test]
    fn one_table_one_chain_one_flush_and_rules_per_port_and_family() {
        let jails = [JailRules {
            name: "sshd".into(),
            ports: vec![
                PortRange {
                    proto: Proto::Tcp,
                    first: 22,
                    last: 22,
                },
                PortRange {
                    proto: Proto::Udp,
                    first: 1000,
                    last: 2000,
                },
            ],
            blocktype: BlockType::Reject,
            app: None,
        }];
        let mut buf = table_message("nftjail");
        buf.extend(chain_messages("nftjail", &jails).unwrap());
        let msgs = wire::messages(&buf);
        let types: Vec<u16> = msgs.iter().map(|m| m.ty & 0xff).collect();
        // table, chain, flush (DELRULE), then 2 families x 2 set kinds x 2 ports
        assert_eq!(types, [0, 3, 8, 6, 6, 6, 6, 6, 6, 6, 6]);
    }
}
