//! The typed messages that flow one way down the pipeline:
//! source → matcher → [`Failure`] → tracker → [`BanOrder`] → enforcer.
//!
//! They live in one small module so that no stage has to import another stage
//! to speak to it.

use std::fmt;
use std::net::IpAddr;
use std::ops::{Deref, Range};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    pub line: Option<SharedLine>,
    /// When its line was read, for the ban latency metric (None: not from
    /// a line read in this run). One clock read per failing line, none for
    /// the other lines.
    pub read: Option<Instant>,
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
    pub line: Option<SharedLine>,
    /// When that line was read (see [`Failure::read`]).
    pub read: Option<Instant>,
}

/// A log line that travels with its failure without a copy of its own.
///
/// A reader puts the lines that hit of one batch into one buffer and hands
/// out ranges of it: one allocation per batch instead of one per line. Per
/// line, that allocation is a large part of a reader's time in a flood (the
/// lines are freed on other threads, so glibc's thread cache never serves
/// them). The buffer lives until the last of its lines is dropped: the
/// tracker drops all but the lines that decide a ban, and the enforcer
/// copies those into the ban's record.
#[derive(Clone)]
pub struct SharedLine {
    buf: Arc<str>,
    start: u32,
    end: u32,
}

impl SharedLine {
    /// A line in a buffer of its own.
    pub fn new(line: &str) -> SharedLine {
        SharedLine {
            start: 0,
            end: u32::try_from(line.len()).unwrap_or(u32::MAX),
            buf: Arc::from(line),
        }
    }

    /// `range` of `buf`; None unless it is a range of whole characters of
    /// a buffer below 4 GiB.
    pub fn in_buffer(buf: &Arc<str>, range: Range<usize>) -> Option<SharedLine> {
        buf.get(range.clone())?;
        Some(SharedLine {
            buf: Arc::clone(buf),
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        })
    }
}

impl Deref for SharedLine {
    type Target = str;

    fn deref(&self) -> &str {
        self.buf
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl fmt::Debug for SharedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for SharedLine {
    fn eq(&self, other: &SharedLine) -> bool {
        **self == **other
    }
}

impl Eq for SharedLine {}

impl From<&str> for SharedLine {
    fn from(line: &str) -> SharedLine {
        SharedLine::new(line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_of_one_buffer_read_back_their_own_text() {
        let buf: Arc<str> = Arc::from("first line\nsecond ünïcode line\n");
        let a = SharedLine::in_buffer(&buf, 0..10).unwrap();
        let b = SharedLine::in_buffer(&buf, 11..32).unwrap();
        assert_eq!(&*a, "first line");
        assert_eq!(&*b, "second ünïcode line");
        assert_eq!(b, SharedLine::new("second ünïcode line"));
        // Not on a character boundary, or past the end: refused.
        assert!(SharedLine::in_buffer(&buf, 11..19).is_none());
        assert!(SharedLine::in_buffer(&buf, 0..500).is_none());
        drop(buf);
        assert_eq!(&*a, "first line");
    }
}
