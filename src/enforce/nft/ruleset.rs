//! The table, chain and rules, built with rustables.
//!
//! rustables encodes them; we take its finalized batch bytes and splice the
//! messages into our [`Transaction`], so the rules, our sets and elements
//! change in one atomic step. One rustables batch per rule, so each rule has
//! its own label when the kernel refuses it.

use rustables::expr::{
    Cmp, CmpOp, Counter, HighLevelPayload, IPv4HeaderField, IPv6HeaderField, IcmpCode, Immediate,
    Lookup, Meta, MetaType, NetworkHeaderField, Register, Reject, RejectType, TCPHeaderField,
    TransportHeaderField, UDPHeaderField, VerdictKind,
};
use rustables::{
    Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily, Rule, Table,
};

use super::transaction::Transaction;
use crate::config::port::{PortRange, Proto};
use crate::enforce::{BlockType, JailRules};

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

/// Adds the table (no EXCL: an existing one and its contents stay).
pub fn add_table(tx: &mut Transaction, table: &str) {
    let mut batch = Batch::new();
    batch.add(
        &Table::new(ProtocolFamily::Inet).with_name(table),
        MsgType::Add,
    );
    tx.splice(&batch.finalize(), format!("add table inet {table}"));
}

/// Adds the chain (no EXCL), deletes every rule of it and adds the wanted
/// ones, in this order inside the caller's transaction, so there is no moment
/// without rules. No element is touched: a set's bans survive a reconcile.
/// The jails' sets must be added before these messages.
pub fn replace_rules(
    tx: &mut Transaction,
    table: &str,
    jails: &[JailRules],
) -> Result<(), RuleError> {
    let t = Table::new(ProtocolFamily::Inet).with_name(table);
    let hook = Hook::default()
        .with_class(HookClass::In as u32)
        .with_priority(PRIORITY as u32);
    let chain = Chain::new(&t)
        .with_name(CHAIN)
        .with_hook(hook)
        .with_policy(ChainPolicy::Accept)
        .with_type(ChainType::Filter);
    let mut batch = Batch::new();
    batch.add(&chain, MsgType::Add);
    tx.splice(&batch.finalize(), format!("add chain inet {table} {CHAIN}"));
    // DELRULE with only table and chain: every rule of the chain.
    let flush = Rule::new(&chain).map_err(|e| RuleError {
        jail: String::new(),
        message: e.to_string(),
    })?;
    let mut batch = Batch::new();
    batch.add(&flush, MsgType::Del);
    tx.splice(
        &batch.finalize(),
        format!("delete the rules of chain {CHAIN}"),
    );
    for jail in jails {
        for v6 in [false, true] {
            let ports: Vec<Option<PortRange>> = if jail.ports.is_empty() {
                vec![None]
            } else {
                jail.ports.iter().copied().map(Some).collect()
            };
            for port in ports {
                let rule = rule(&chain, jail, v6, port).map_err(|message| RuleError {
                    jail: jail.name.clone(),
                    message,
                })?;
                let mut batch = Batch::new();
                batch.add(&rule, MsgType::Add);
                let what = match port {
                    Some(p) if p.first == p.last => format!("{} dport {}", p.proto, p.first),
                    Some(p) => format!("{} dport {}-{}", p.proto, p.first, p.last),
                    None => "every port".to_string(),
                };
                let family = if v6 { "ip6" } else { "ip" };
                tx.splice(
                    &batch.finalize(),
                    format!("add rule for jail {} ({what}, {family} saddr)", jail.name),
                );
            }
        }
    }
    Ok(())
}

/// `[meta l4proto P th dport A[-B]] ip[6] saddr @<jail>-v4|6 counter reject|drop`
fn rule(
    chain: &Chain,
    jail: &JailRules,
    v6: bool,
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
    let set = format!("{}-{}", jail.name, if v6 { "v6" } else { "v4" });
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

#[cfg(test)]
mod tests {
    use super::super::wire::messages;
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
        }];
        let mut tx = Transaction::new();
        add_table(&mut tx, "nftjail");
        replace_rules(&mut tx, "nftjail", &jails).unwrap();
        let msgs = messages(tx.bytes());
        let types: Vec<u16> = msgs.iter().map(|m| m.ty & 0xff).collect();
        // table, chain, flush (DELRULE), then 2 families x 2 ports
        assert_eq!(types, [0, 3, 8, 6, 6, 6, 6]);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(tx.label(0), "add table inet nftjail");
        assert_eq!(
            tx.label(3),
            "add rule for jail sshd (tcp dport 22, ip saddr)"
        );
        assert_eq!(
            tx.label(6),
            "add rule for jail sshd (udp dport 1000-2000, ip6 saddr)"
        );
    }
}
