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

/// The failures a reader handed on in one go, and how far it had read
/// then. One message per batch: a flood costs a channel operation per
/// batch, not per line.
#[derive(Debug, Default)]
pub struct FailureBatch {
    pub failures: Vec<Failure>,
    /// Where the source stood after the last line of the batch (None: a
    /// source that keeps no read position, or one that read past the
    /// batch's end). Travelling with the failures, it reaches the tracker
    /// right after them, so the tracker knows which counts include which
    /// lines and the two are stored together.
    pub read_to: Option<ReadMark>,
}

/// How far one source had read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    /// The source as the state store keys it: a file's path, a journal's
    /// cursor key.
    pub source: Arc<str>,
    pub at: ReadAt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAt {
    File(Position),
    /// The journal's cursor of the last entry read.
    Journal(String),
}

/// Where reading of a log file stopped: the file by identity (device and
/// inode, plus a hash of its first line, since inodes are reused) and the
/// byte offset of the first line not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub head: u64,
    pub offset: u64,
}

/// What the tracker hands the state store to write in one transaction:
/// read positions together with the failure counts that include every
/// line before them, so after a crash a restart reads again exactly the
/// lines the stored counts lack.
///
/// Compact, as it may hold every address the tracker counts: an entry is
/// a jail index, an address and how many of `times` are its own, with no
/// allocation of its own.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The stored counts are replaced by these (else each entry only
    /// changes the address it names).
    pub rewrite: bool,
    /// Read positions changed since the last checkpoint.
    pub marks: Vec<ReadMark>,
    /// Jail names by the index entries use (None: a removed jail).
    pub jails: Vec<Option<Arc<str>>>,
    counts: Vec<Counted>,
    /// The failure times of the entries, one run after the other, in
    /// milliseconds since the epoch.
    times: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    jail: u16,
    addr: IpAddr,
    len: u8,
}

impl Checkpoint {
    /// One with these marks and no count yet.
    pub fn new(rewrite: bool, marks: Vec<ReadMark>) -> Checkpoint {
        Checkpoint {
            rewrite,
            marks,
            ..Checkpoint::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.rewrite && self.marks.is_empty() && self.counts.is_empty()
    }

    /// Entries, for the store's bound on what it keeps waiting.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// The failure times (ms since the epoch, at most 255) now counted for
    /// `addr` in jail index `jail`; none: no longer counted there.
    pub fn count(&mut self, jail: u16, addr: IpAddr, times: &[u64]) {
        let len = times.len().min(usize::from(u8::MAX));
        self.times.extend_from_slice(&times[..len]);
        self.counts.push(Counted {
            jail,
            addr,
            len: len as u8,
        });
    }

    /// The index of jail `name`, added if new.
    pub fn jail(&mut self, name: &Arc<str>) -> u16 {
        let found = self.jails.iter().position(|j| j.as_ref() == Some(name));
        let i = found.unwrap_or_else(|| {
            self.jails.push(Some(Arc::clone(name)));
            self.jails.len() - 1
        });
        i.min(usize::from(u16::MAX)) as u16
    }

    /// Each entry in order: jail name, address, failure times (ms).
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<str>, IpAddr, &[u64])> + '_ {
        let mut at = 0;
        self.counts.iter().filter_map(move |c| {
            let times = self.times.get(at..at + usize::from(c.len)).unwrap_or(&[]);
            at += usize::from(c.len);
            let jail = self.jails.get(usize::from(c.jail))?.as_ref()?;
            Some((jail, c.addr, times))
        })
    }

    /// Folds a later checkpoint into this one, for a store that could not
    /// take this one yet: written together they say what the later one
    /// would have said after this one.
    pub fn absorb(&mut self, later: Checkpoint) {
        let mut marks = std::mem::take(&mut self.marks);
        for m in later.marks.iter().cloned() {
            match marks.iter_mut().find(|n| n.source == m.source) {
                Some(n) => *n = m,
                None => marks.push(m),
            }
        }
        let mut merged = Checkpoint::new(self.rewrite || later.rewrite, marks);
        // The last word on each address wins; a rewrite forgets what
        // came before it.
        let mut last: std::collections::HashMap<(Arc<str>, IpAddr), Vec<u64>> =
            std::collections::HashMap::new();
        let mut order = Vec::new();
        let earlier = (!later.rewrite).then_some(&*self);
        for cp in earlier.into_iter().chain(Some(&later)) {
            for (jail, addr, times) in cp.entries() {
                let key = (Arc::clone(jail), addr);
                if last.insert(key.clone(), times.to_vec()).is_none() {
                    order.push(key);
                }
            }
        }
        for key in order {
            if let Some(times) = last.get(&key) {
                let jail = merged.jail(&key.0);
                merged.count(jail, key.1, times);
            }
        }
        *self = merged;
    }
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
