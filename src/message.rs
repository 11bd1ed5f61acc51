//! The typed messages that flow one way down the pipeline:
//! source → matcher → [`Failure`] → tracker → [`BanOrder`] → enforcer.
//!
//! They live in one small module so that no stage has to import another stage
//! to speak to it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Index of a jail in the checked configuration (`Config::jails`).
///
/// An index rather than a name keeps the hot path free of string hashing;
/// the name travels only once a ban is decided.
pub type JailId = usize;

/// One authentication failure seen in a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub jail: JailId,
    /// Always normalized: IPv4-mapped IPv6 arrives here as IPv4.
    pub addr: IpAddr,
    /// When the failure happened: the line's own time, or when it was read.
    pub time: SystemTime,
    /// The line, shared by the jails it hit: the one that decides a ban is
    /// kept with the ban in the state store. The tracker keeps no lines.
    pub line: Option<Arc<str>>,
}

/// A decision to ban `addr` in `jail` for `bantime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanOrder {
    pub jail: Arc<str>,
    pub addr: IpAddr,
    pub bantime: Duration,
    /// How many failures inside findtime led to the ban (for the log line).
    pub failures: u32,
    /// The log line that decided it (None for a manual ban).
    pub line: Option<Arc<str>>,
}
