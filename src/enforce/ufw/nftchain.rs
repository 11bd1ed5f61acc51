//! ufw's live chains where iptables runs on nf_tables (`iptables -V` says
//! `nf_tables`): `ufw-user-input` in `ip filter` and `ufw6-user-input` in
//! `ip6 filter` are nf_tables chains, so a batch changes them over netlink,
//! in one transaction per family, without a process.
//!
//! The chain is read first and held against the rules file as it was
//! before the batch: the same number of rules, and each rule whose line we
//! understand ([`XtRule`]) equal to that line. Then the old lines and the
//! new are compared: the rules of lines gone are deleted by handle, the new
//! lines are inserted before the next rule that stays (or appended), so the
//! chain ends up in the order of the new file, and the admin's rules are
//! never deleted or re-added. When the chain does not match the old file
//! (someone flushed it, or loaded something else), the caller loads the
//! chain whole from the file instead.

use std::collections::HashMap;
use std::io;

use super::xtrule::XtRule;
use crate::enforce::nft::netlink::{Netlink, MAX_TRANSACTION};
use crate::enforce::nft::wire::{self, NFNL_SUBSYS_NFTABLES, NLM_F_ACK, NLM_F_CREATE};

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_DUMP: u16 = 0x300;
const NFTA_RULE_TABLE: u16 = 1;
/// A chain's name is attribute 3 of a chain message (2 is its handle).
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_POSITION: u16 = 6;
/// The table iptables-nft keeps the filter chains in.
pub const TABLE: &str = "filter";

/// Why a chain could not be changed over netlink.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("chain {0} is not loaded")]
    Missing(String),
    #[error("chain {chain} does not hold what the rules file says ({why})")]
    Drift { chain: String, why: String },
    #[error("a line of the new rules file is not one we can write over netlink: {0}")]
    Unknown(String),
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    #[error("the kernel refused the change of {chain} (errno {errno})")]
    Refused { chain: String, errno: i32 },
}

/// The nfgenmsg family of a chain.
pub fn family(v6: bool) -> u8 {
    if v6 {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    }
}

/// The `-A CHAIN` lines of a rules file, in order: what the live chain holds.
pub fn chain_lines<'a>(text: &'a str, chain: &str) -> Vec<&'a str> {
    let prefix = format!("-A {chain} ");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Whether the chain exists in nf_tables.
pub fn exists(nl: &mut Netlink, chain: &str, v6: bool) -> io::Result<bool> {
    let found = nl.dump(|w| {
        let seq = w.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN,
            NLM_F_ACK,
            family(v6),
            0,
        );
        w.attr_str(NFTA_RULE_TABLE, TABLE);
        w.attr_str(NFTA_CHAIN_NAME, chain);
        w.end();
        seq
    })?;
    Ok(!found.is_empty())
}

/// The chain's rules in order: handle and expressions.
fn rules(nl: &mut Netlink, chain: &str, v6: bool) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let bodies = nl.dump(|w| {
        let seq = w.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
            NLM_F_DUMP,
            family(v6),
            0,
        );
        w.attr_str(NFTA_RULE_TABLE, TABLE);
        w.attr_str(NFTA_RULE_CHAIN, chain);
        w.end();
        seq
    })?;
    Ok(bodies
        .iter()
        .filter_map(|b| {
            let mut handle = None;
            let mut exprs = Vec::new();
            for (t, v) in wire::attrs(b) {
                match t {
                    NFTA_RULE_HANDLE => {
                        handle = v
                            .get(..8)
                            .and_then(|v| v.try_into().ok())
                            .map(u64::from_be_bytes)
                    }
                    NFTA_RULE_EXPRESSIONS => exprs = v.to_vec(),
                    _ => {}
                }
            }
            Some((handle?, exprs))
        })
        .collect())
}

/// One step from the old lines to the new.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The old line at this index stays.
    Keep(usize),
    /// The old line at this index goes.
    Delete(usize),
    /// This new line comes in here.
    Insert(usize),
}

/// Walks the new lines, keeping each old line that comes next in the new
/// order, deleting the old lines skipped over, inserting the new ones not
/// found. Our rules are sorted the same way in both files, so the admin's
/// lines and the bans that stay are kept.
fn diff(old: &[&str], new: &[&str]) -> Vec<Step> {
    let mut at: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in old.iter().enumerate().rev() {
        at.entry(l).or_default().push(i);
    }
    let mut steps = Vec::with_capacity(old.len().max(new.len()));
    let mut cursor = 0;
    for (k, l) in new.iter().enumerate() {
        let found = at.get_mut(l).and_then(|v| {
            while v.last().is_some_and(|&i| i < cursor) {
                v.pop();
            }
            v.pop()
        });
        match found {
            Some(j) => {
                steps.extend((cursor..j).map(Step::Delete));
                steps.push(Step::Keep(j));
                cursor = j + 1;
            }
            None => steps.push(Step::Insert(k)),
        }
    }
    steps.extend((cursor..old.len()).map(Step::Delete));
    steps
}

/// Brings the live chain from `old` (the lines it should hold now) to
/// `new` in one transaction. Returns how many rules were added and deleted.
pub fn update(
    nl: &mut Netlink,
    chain: &str,
    v6: bool,
    old: &[&str],
    new: &[&str],
) -> Result<(usize, usize), ChainError> {
    if !exists(nl, chain, v6)? {
        return Err(ChainError::Missing(chain.to_string()));
    }
    let live = rules(nl, chain, v6)?;
    let drift = |why: String| ChainError::Drift {
        chain: chain.to_string(),
        why,
    };
    if live.len() != old.len() {
        return Err(drift(format!(
            "{} rules where the file has {}",
            live.len(),
            old.len()
        )));
    }
    for (i, (line, (_, exprs))) in old.iter().zip(&live).enumerate() {
        if let Some(want) = XtRule::parse(line, v6) {
            if XtRule::decode(exprs, v6).as_ref() != Some(&want) {
                return Err(drift(format!("rule {} is not {line:?}", i + 1)));
            }
        }
    }
    let steps = diff(old, new);
    let mut w = nl.writer();
    let mut deleted = 0;
    for s in &steps {
        if let Step::Delete(i) = s {
            if XtRule::parse(old[*i], v6).is_none() {
                // Only lines we can write again may go: the rest is iptables'.
                return Err(ChainError::Unknown(old[*i].to_string()));
            }
            w.begin(
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE,
                0,
                family(v6),
                0,
            );
            w.attr_str(NFTA_RULE_TABLE, TABLE);
            w.attr_str(NFTA_RULE_CHAIN, chain);
            w.attr_be64(NFTA_RULE_HANDLE, live[*i].0);
            w.end();
            deleted += 1;
        }
    }
    // Each insert goes before the next rule that stays; none: at the end.
    let mut before: Option<u64> = None;
    let mut inserts = Vec::new();
    for s in steps.iter().rev() {
        match s {
            Step::Keep(i) => before = Some(live[*i].0),
            Step::Insert(k) => inserts.push((*k, before)),
            Step::Delete(_) => {}
        }
    }
    let added = inserts.len();
    for (k, before) in inserts.into_iter().rev() {
        let rule = XtRule::parse(new[k], v6).ok_or_else(|| ChainError::Unknown(new[k].into()))?;
        let flags = if before.is_some() {
            NLM_F_CREATE
        } else {
            NLM_F_CREATE | NLM_F_APPEND
        };
        w.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
            flags,
            family(v6),
            0,
        );
        w.attr_str(NFTA_RULE_TABLE, TABLE);
        w.attr_str(NFTA_RULE_CHAIN, chain);
        if let Some(h) = before {
            w.attr_be64(NFTA_RULE_POSITION, h);
        }
        rule.encode(&mut w);
        w.end();
    }
    if added + deleted == 0 {
        return Ok((0, 0));
    }
    // One transaction, unless it would pass what one send takes (a start
    // putting back many thousands of bans): then several, each a whole
    // number of rules, deletes first, inserts in order.
    for body in split(&w.buf, MAX_TRANSACTION) {
        let refused = nl.transact(body)?;
        if let Some(r) = refused.first() {
            return Err(ChainError::Refused {
                chain: chain.to_string(),
                errno: r.errno,
            });
        }
    }
    Ok((added, deleted))
}

/// Cuts a run of netlink messages into runs of at most `max` bytes (a
/// larger single message alone).
fn split(buf: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at + 4 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let next = (at + ((len + 3) & !3)).min(buf.len());
        if next - start > max && at > start {
            out.push(&buf[start..at]);
            start = at;
        }
        if len == 0 {
            break;
        }
        at = next;
    }
    if start < buf.len() {
        out.push(&buf[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(old: &[&str], new: &[&str]) -> Vec<String> {
        let steps = diff(old, new);
        let mut out = Vec::new();
        for s in steps {
            match s {
                Step::Keep(i) => out.push(old[i].to_string()),
                Step::Insert(k) => out.push(new[k].to_string()),
                Step::Delete(_) => {}
            }
        }
        out
    }

    #[test]
    fn a_large_change_is_cut_between_messages() {
        let mut w = crate::enforce::nft::wire::Writer::default();
        for _ in 0..10 {
            w.begin(1, 0, 2, 0);
            w.attr(1, &[0; 96]);
            w.end();
        }
        let parts = split(&w.buf, 250);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.len() == 240));
        assert_eq!(split(&w.buf, 1 << 20), [&w.buf[..]]);
    }

    #[test]
    fn the_diff_keeps_the_admins_lines_and_ends_in_the_new_order() {
        let old = ["m", "b1", "b3", "a22", "a80"];
        let new = ["m", "b1", "b2", "b4", "a22", "a80"];
        assert_eq!(apply(&old, &new), new);
        let steps = diff(&old, &new);
        assert!(steps.contains(&Step::Delete(2)));
        assert_eq!(
            steps.iter().filter(|s| matches!(s, Step::Keep(_))).count(),
            4
        );
        assert_eq!(apply(&old, &["m", "a22", "a80"]), ["m", "a22", "a80"]);
        assert_eq!(apply(&[], &["x", "y"]), ["x", "y"]);
        assert_eq!(apply(&["x", "x"], &["x"]), ["x"]);
    }
}
