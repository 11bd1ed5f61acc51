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
    /// `th dport vmap { 22 : jump j-sshd, … }`: the verdict from the
    /// anonymous map of this id.
    Map(u32),
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

/// Prefix of the regular chain of each jail: `j-<jail>`. A jail name is at
/// most 64 characters, far under the kernel's 256 for a chain name.
pub const JAIL_CHAIN_PREFIX: &str = "j-";

/// The regular chain holding a jail's address lookups.
pub fn jail_chain(jail: &str) -> String {
    format!("{JAIL_CHAIN_PREFIX}{jail}")
}

/// `NFT_MSG_GETCHAIN`, and the chain's table and name attributes.
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;

/// A dump request for the chains of our table.
pub fn get_chains(w: &mut wire::Writer, table: &str) -> u32 {
    let seq = w.begin_nft(NFT_MSG_GETCHAIN, wire::NLM_F_DUMP);
    w.attr_str(NFTA_CHAIN_TABLE, table);
    w.end();
    seq
}

/// The jail chains among the chains of a dump that no wanted jail owns:
/// only ours (`j-` prefix); a chain someone else added is left alone.
pub fn stale_chains(bodies: &[Vec<u8>], jails: &[JailRules]) -> Vec<String> {
    bodies
        .iter()
        .filter_map(|b| {
            let (_, v) = wire::attrs(b).find(|(t, _)| *t == NFTA_CHAIN_NAME)?;
            let v = v.split(|&c| c == 0).next().unwrap_or(v);
            Some(String::from_utf8_lossy(v).into_owned())
        })
        .filter(|name| {
            name.starts_with(JAIL_CHAIN_PREFIX)
                && !jails.iter().any(|j| jail_chain(&j.name) == *name)
        })
        .collect()
}

fn rule_error(jail: &str) -> impl Fn(rustables::error::BuilderError) -> RuleError + '_ {
    move |e| RuleError {
        jail: jail.to_string(),
        message: e.to_string(),
    }
}

/// Messages that create the chains (no EXCL), delete every rule of them and
/// add the wanted ones, then delete the jail chains in `stale` (their jump
/// rules are gone by then). No elements are touched: a set's bans survive a
/// reconcile, and a chain of any older layout is replaced whole in the same
/// step. The jails' sets must exist before these messages in the same
/// transaction, and a stale jail's sets may be deleted only after them.
///
/// The base chain only dispatches: per jail and protocol, one rule matches
/// the jail's ports (one comparison, or one lookup in an anonymous set) and
/// jumps to the jail's chain, which looks the source address up in the
/// jail's sets. A packet to a port no jail watches meets no address lookup
/// at all, and one to a jail's port meets that jail's four (two of the other
/// family end at their first comparison). A reject answers TCP with a reset
/// and anything else with an ICMP error.
pub fn chain_messages(
    table: &str,
    jails: &[JailRules],
    stale: &[String],
) -> Result<Vec<u8>, RuleError> {
    let mut batch = Batch::new();
    let t = Table::new(ProtocolFamily::Inet).with_name(table);
    let hook = Hook::default()
        .with_class(HookClass::In as u32)
        .with_priority(PRIORITY as u32);
    let base = Chain::new(&t)
        .with_name(CHAIN)
        .with_hook(hook)
        .with_policy(ChainPolicy::Accept)
        .with_type(ChainType::Filter);
    batch.add(&base, MsgType::Add);
    // DELRULE with only table and chain: flush the chain's rules. The base
    // chain first, so no jump into a jail chain outlives this step.
    batch.add(&Rule::new(&base).map_err(rule_error(""))?, MsgType::Del);
    let chains: Vec<Chain> = jails
        .iter()
        .map(|j| Chain::new(&t).with_name(jail_chain(&j.name)))
        .collect();
    for (chain, jail) in chains.iter().zip(jails) {
        batch.add(chain, MsgType::Add);
        batch.add(
            &Rule::new(chain).map_err(rule_error(&jail.name))?,
            MsgType::Del,
        );
    }
    let mut out = strip_batch_markers(&batch.finalize());
    let mut next_id = ANON_SET_IDS;
    let add = |out: &mut Vec<u8>, jail: &str, r: Result<Rule, String>| {
        let r = r.map_err(|message| RuleError {
            jail: jail.to_string(),
            message,
        })?;
        let mut one = Batch::new();
        one.add(&r, MsgType::Add);
        out.extend(strip_batch_markers(&one.finalize()));
        Ok::<(), RuleError>(())
    };
    // A jail that watches every port: an unconditional jump.
    for jail in jails.iter().filter(|j| j.ports.is_empty()) {
        add(
            &mut out,
            &jail.name,
            jump(&base, None, &jail_chain(&jail.name)),
        )?;
    }
    for proto in [Proto::Tcp, Proto::Udp] {
        let mut entries: Vec<((u16, u16), String)> = Vec::new();
        for jail in jails {
            for (p, ranges) in ports_by_proto(&jail.ports) {
                if p == proto {
                    entries.extend(ranges.into_iter().map(|r| (r, jail_chain(&jail.name))));
                }
            }
        }
        entries.sort_unstable();
        if shareable(&entries) {
            // Jails of disjoint ports: one lookup finds the jail to jump to.
            next_id += 1;
            let ranges: Vec<(u16, u16)> = entries.iter().map(|e| e.0).collect();
            let jumps: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
            let mut w = wire::Writer::default();
            w.anon_port_set(table, next_id, &ranges, &jumps);
            out.extend_from_slice(&w.buf);
            add(
                &mut out,
                "",
                jump(&base, Some((proto, PortMatch::Map(next_id))), ""),
            )?;
            continue;
        }
        // One jail, or jails sharing a port (a map key has one verdict):
        // a jump per jail, each over its own ports.
        for jail in jails {
            let target = jail_chain(&jail.name);
            for (_, ranges) in ports_by_proto(&jail.ports).iter().filter(|g| g.0 == proto) {
                let matching = match ranges.as_slice() {
                    [(first, last)] => PortMatch::Range(*first, *last),
                    _ => {
                        // The set goes before the rule that binds it.
                        next_id += 1;
                        let mut w = wire::Writer::default();
                        w.anon_port_set(table, next_id, ranges, &[]);
                        out.extend_from_slice(&w.buf);
                        PortMatch::Set(next_id)
                    }
                };
                add(
                    &mut out,
                    &jail.name,
                    jump(&base, Some((proto, matching)), &target),
                )?;
            }
        }
    }
    for (chain, jail) in chains.iter().zip(jails) {
        let protos: Vec<Proto> = ports_by_proto(&jail.ports).iter().map(|g| g.0).collect();
        // The protocol decides the reject, so it is matched only when a
        // reject must tell TCP from the rest.
        let split: Vec<Option<Proto>> = match (jail.blocktype, protos.as_slice()) {
            (BlockType::Reject, [_, ..]) => protos.iter().map(|p| Some(*p)).collect(),
            _ => vec![None],
        };
        // Addresses first, then prefixes, so `nft list` reads in that order.
        for v6 in [false, true] {
            for net in [false, true] {
                for proto in &split {
                    add(&mut out, &jail.name, lookup(chain, jail, v6, net, *proto))?;
                }
            }
        }
    }
    let mut w = wire::Writer::default();
    for name in stale {
        w.begin_nft(wire::NFT_MSG_DELCHAIN, 0);
        w.attr_str(NFTA_CHAIN_TABLE, table);
        w.attr_str(NFTA_CHAIN_NAME, name);
        w.end();
    }
    out.extend_from_slice(&w.buf);
    Ok(out)
}

/// Whether the (sorted) ports of one protocol can be one verdict map: more
/// than one jail, and no port in two jails. An interval map also keeps a
/// gap between ranges, so no range ends where the next one starts.
fn shareable(entries: &[((u16, u16), String)]) -> bool {
    let interval = entries.iter().any(|((a, b), _)| a != b);
    let jails = entries.iter().filter(|e| e.1 != entries[0].1).count();
    jails > 0
        && entries.windows(2).all(|w| {
            let (prev, next) = (w[0].0, w[1].0);
            u32::from(next.0) > u32::from(prev.1) + u32::from(interval)
        })
}

/// `[meta l4proto P th dport A[-B]|{…}] jump j-<jail>`, or
/// `meta l4proto P th dport vmap {…}`
fn jump(base: &Chain, port: Option<(Proto, PortMatch)>, target: &str) -> Result<Rule, String> {
    let mut r = Rule::new(base).map_err(|e| e.to_string())?;
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
            PortMatch::Map(id) => {
                r.add_expr(
                    Lookup::default()
                        .with_set(wire::ANON_SET_NAME)
                        .with_set_id(id)
                        .with_sreg(Register::Reg1)
                        .with_dreg(Register::Verdict),
                );
                return Ok(r);
            }
        }
    }
    r.add_expr(Immediate::new_verdict(VerdictKind::Jump {
        chain: target.to_string(),
    }));
    Ok(r)
}

/// `[meta l4proto P] meta nfproto ipv4|ipv6 ip[6] saddr @<jail>-v4|v6|net4|net6 counter reject|drop`
fn lookup(
    chain: &Chain,
    jail: &JailRules,
    v6: bool,
    net: bool,
    proto: Option<Proto>,
) -> Result<Rule, String> {
    let mut r = Rule::new(chain).map_err(|e| e.to_string())?;
    if let Some(proto) = proto {
        r.add_expr(Meta::new(MetaType::L4Proto));
        let number = match proto {
            Proto::Tcp => libc::IPPROTO_TCP,
            Proto::Udp => libc::IPPROTO_UDP,
        };
        r.add_expr(Cmp::new(CmpOp::Eq, [number as u8]));
    }
    r.add_expr(Meta::new(MetaType::NfProto));
    r.add_expr(Cmp::new(
        CmpOp::Eq,
        [if v6 {
            libc::NFPROTO_IPV6
        } else {
            libc::NFPROTO_IPV4
        } as u8],
    ));
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
    match (jail.blocktype, proto) {
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
    fn the_base_chain_jumps_by_port_to_a_chain_per_jail() {
        let jails = [
            JailRules {
                name: "mail".into(),
                ports: ports(&[
                    (Proto::Tcp, 587, 587),
                    (Proto::Tcp, 25, 25),
                    (Proto::Tcp, 465, 465),
                    (Proto::Udp, 1000, 2000),
                ]),
                blocktype: BlockType::Reject,
                app: None,
            },
            JailRules {
                name: "all".into(),
                ports: Vec::new(),
                blocktype: BlockType::Drop,
                app: None,
            },
            JailRules {
                name: "ssh".into(),
                ports: ports(&[(Proto::Tcp, 22, 22)]),
                blocktype: BlockType::Drop,
                app: None,
            },
        ];
        let mut buf = table_message("nftjail");
        buf.extend(chain_messages("nftjail", &jails, &["j-gone".to_string()]).unwrap());
        let msgs = wire::messages(&buf);
        let types: Vec<u16> = msgs.iter().map(|m| m.ty & 0xff).collect();
        // table; base chain and its flush; each jail chain and its flush;
        // the all-ports jail's jump; the TCP verdict map (NEWSET,
        // NEWSETELEM) and its rule; the mail jail's UDP range's jump; the
        // mail chain's lookups (per family and set kind, one per protocol
        // for the reject), the others' (one per family and set kind); the
        // stale chain deleted.
        let mut want = vec![0, 3, 8, 3, 8, 3, 8, 3, 8, 6, 9, 12, 6, 6];
        want.extend([6; 8]);
        want.extend([6; 8]);
        want.push(5);
        assert_eq!(types, want);
        let ssh = |port| ((port, port), "j-ssh".to_string());
        let mail = |first, last| ((first, last), "j-mail".to_string());
        assert!(shareable(&[ssh(22), mail(25, 25)]));
        assert!(!shareable(&[ssh(22), mail(22, 22)]), "a port of two jails");
        assert!(!shareable(&[ssh(22), ssh(25)]), "one jail");
        assert!(!shareable(&[ssh(22), mail(23, 30)]), "touching intervals");
        assert!(shareable(&[ssh(22), mail(24, 30)]));
    }

    #[test]
    fn only_our_unwanted_jail_chains_are_stale() {
        let chain = |name: &str| {
            let mut w = wire::Writer::default();
            w.begin_nft(3, 0);
            w.attr_str(NFTA_CHAIN_TABLE, "nftjail");
            w.attr_str(NFTA_CHAIN_NAME, name);
            w.end();
            wire::messages(&w.buf)[0].body.to_vec()
        };
        let bodies = ["input", "j-sshd", "j-old", "mine"].map(chain);
        let jails = [JailRules {
            name: "sshd".into(),
            ports: Vec::new(),
            blocktype: BlockType::Drop,
            app: None,
        }];
        assert_eq!(stale_chains(&bodies, &jails), ["j-old"]);
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
