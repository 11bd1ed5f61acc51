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

use ipnet::IpNet;

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
    /// The account the failure was against, where the filter captures it
    /// (`<F-USER>`, `sasl_username=`, `user=<…>`, `for USER`). Only ever
    /// counted and shown: never used to pick the address.
    pub account: Option<Account>,
}

/// The account named in a failing line, bounded so that a hostile line
/// cannot make the tracker keep long strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account(Arc<str>);

impl Account {
    /// Longest account kept; longer names are cut at a character boundary
    /// (mail addresses are limited to 254 bytes anyway).
    pub const MAX_LEN: usize = 256;

    /// None for an empty name or one with control characters (a line can
    /// hold anything; what we store and print must stay one clean line).
    pub fn new(name: &str) -> Option<Account> {
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return None;
        }
        let mut end = name.len().min(Self::MAX_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Some(Account(Arc::from(&name[..end])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a ban was decided: logged, stored with the ban and shown by
/// `explain`, so an admin can tell a slow brute force from a sprayed
/// mailbox or a botnet's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// maxretry failures within findtime of one of the jail's windows
    /// (0: the jail's own maxretry/findtime, then its extra windows).
    Window(u8),
    /// This many distinct failing addresses of the banned prefix.
    Prefix { addrs: u32 },
    /// Failing against an account that many addresses were failing against.
    Account(Account),
    /// `nftjail ban`.
    Manual,
    /// A line of the jail's blocklist file.
    Blocklist,
}

impl Default for Cause {
    /// The jail's own window: what every ban was before other causes.
    fn default() -> Cause {
        Cause::Window(0)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Window(i) => write!(f, "window {i}"),
            Cause::Prefix { addrs } => write!(f, "prefix {addrs}"),
            Cause::Account(a) => write!(f, "account {a}"),
            Cause::Manual => f.write_str("manual"),
            Cause::Blocklist => f.write_str("blocklist"),
        }
    }
}

impl std::str::FromStr for Cause {
    type Err = String;

    /// Reads back what `Display` wrote (the state store keeps the text).
    fn from_str(s: &str) -> Result<Cause, String> {
        let bad = || format!("unknown ban cause {s:?}");
        let (kind, rest) = s.split_once(' ').unwrap_or((s, ""));
        match kind {
            "window" => rest.parse().map(Cause::Window).map_err(|_| bad()),
            "prefix" => rest
                .parse()
                .map(|addrs| Cause::Prefix { addrs })
                .map_err(|_| bad()),
            "account" => Account::new(rest).map(Cause::Account).ok_or_else(bad),
            "manual" if rest.is_empty() => Ok(Cause::Manual),
            "blocklist" if rest.is_empty() => Ok(Cause::Blocklist),
            _ => Err(bad()),
        }
    }
}

/// A decision to ban `target` in `jail` for `bantime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanOrder {
    pub jail: Arc<str>,
    /// One address (a /32 or /128, see [`BanOrder::host`]) or a whole
    /// prefix, whose host bits are zero.
    pub target: IpNet,
    pub bantime: Duration,
    /// How many failures inside findtime led to the ban (for the log line).
    pub failures: u32,
    /// The log line that decided it (None for a manual ban).
    pub line: Option<SharedLine>,
    /// When that line was read (see [`Failure::read`]).
    pub read: Option<Instant>,
    /// Which rule decided it.
    pub cause: Cause,
}

impl BanOrder {
    /// A ban of one address (IPv4-mapped IPv6 becomes IPv4), with no
    /// failures, line or read time yet, decided by the jail's own window:
    /// callers set what they know with `..BanOrder::host(..)`.
    pub fn host(jail: Arc<str>, addr: IpAddr, bantime: Duration) -> BanOrder {
        BanOrder {
            jail,
            target: IpNet::from(addr.to_canonical()),
            bantime,
            failures: 0,
            line: None,
            read: None,
            cause: Cause::default(),
        }
    }

    /// A ban of one address (a /32 or /128), not of a prefix.
    pub fn is_host(&self) -> bool {
        self.target.prefix_len() == self.target.max_prefix_len()
    }
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

    /// Room for `entries` more entries and `times` more failure times,
    /// taken exactly: a checkpoint after a flood, or a rewrite, lists
    /// hundreds of thousands of addresses, and room grown by doubling could
    /// stand nearly as large again unused while the store writes it.
    pub fn reserve_exact(&mut self, entries: usize, times: usize) {
        self.counts.reserve_exact(entries);
        self.times.reserve_exact(times);
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

    #[test]
    fn causes_read_back_what_they_print() {
        let causes = [
            Cause::Window(0),
            Cause::Window(2),
            Cause::Prefix { addrs: 9 },
            Cause::Account(Account::new("alice@example.org").unwrap()),
            Cause::Manual,
            Cause::Blocklist,
        ];
        for c in causes {
            assert_eq!(c.to_string().parse::<Cause>(), Ok(c));
        }
        assert!("window x".parse::<Cause>().is_err());
        assert!("manual extra".parse::<Cause>().is_err());
        assert!("".parse::<Cause>().is_err());
    }

    #[test]
    fn accounts_are_bounded_and_one_clean_line() {
        assert_eq!(Account::new(" bob ").unwrap().as_str(), "bob");
        assert!(Account::new("").is_none());
        assert!(Account::new("a\nb").is_none());
        let long = "é".repeat(300);
        let a = Account::new(&long).unwrap();
        assert!(a.as_str().len() <= Account::MAX_LEN);
        assert!(a.as_str().chars().all(|c| c == 'é'));
    }
}
