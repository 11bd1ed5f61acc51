//! nftjail: a fail2ban-class intrusion-prevention daemon that bans attackers
//! straight into kernel nftables sets over netlink.
//!
//! The tree is the pipeline: [`source`] reads lines, [`matcher`] runs every
//! jail's [`filter`] over each line in one pass, [`tracker`] counts failures and
//! decides bans, [`enforce`] puts them in the kernel. [`daemon`] wires them.

pub mod bantime;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod enforce;
pub mod filter;
pub mod matcher;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod rules;
pub mod source;
pub mod state;
pub mod timestamp;
pub mod tracker;

/// A hash map keyed by addresses. The std default (SipHash) was a visible
/// share of the tracker and enforcer during a ban flood; foldhash is several
/// times faster on small keys and still seeded per process, so an attacker
/// choosing addresses cannot aim at collisions.
pub type AddrMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
