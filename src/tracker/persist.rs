//! What the state store lacks of the tracker's counts, and where each
//! source had read when they were last stored.
//!
//! A read position may only be stored together with the counts that include
//! every line before it: stored alone, a crash forgets the counts of lines
//! that are not read again; stored with later counts, the restart counts
//! lines twice. Sources send their position with each batch of failures, so
//! between two batches the tracker's counts are exactly those of the lines
//! before the positions it last received, and a [`Checkpoint`] taken there
//! carries both, for one transaction.
//!
//! A checkpoint carries only what changed since the one before: the windows
//! opened (the last keys of the tracker's queue of opened windows, so a
//! flood of new addresses lists nothing twice), those changed (a key is
//! listed once, when its window first changes) and those gone that the
//! store holds (a window opened and banned between two checkpoints, as in a
//! flood, costs the store nothing). The lists are bounded: past the
//! tracker's cap, they are dropped and the next checkpoint writes every
//! window anew, as it does after a reload or a start.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Key, Tracker, Window};
use crate::message::{Checkpoint, ReadAt, ReadMark};

pub(super) struct Unsaved {
    /// Windows opened since the last checkpoint: the last this many keys
    /// of the tracker's `opened` queue.
    pub(super) opened: usize,
    /// Keys whose window (opened before) changed since the last
    /// checkpoint; a key is here at most once while its window is dirty.
    changed: Vec<Key>,
    /// Keys whose stored window went since the last checkpoint.
    forget: Vec<Key>,
    /// Every window is written anew at the next checkpoint.
    rewrite: bool,
    /// Past this many keys the list gives way to a rewrite.
    limit: usize,
    /// The last position of each source, and whether it is not stored yet.
    marks: HashMap<Arc<str>, (ReadAt, bool)>,
}

impl Unsaved {
    pub(super) fn new(max_tracked: usize) -> Unsaved {
        Unsaved {
            opened: 0,
            changed: Vec::new(),
            forget: Vec::new(),
            rewrite: false,
            limit: max_tracked.max(1024),
            marks: HashMap::new(),
        }
    }

    /// `window` of `key` was changed (`new`: opened, its key just queued).
    pub(super) fn changed(&mut self, key: Key, window: &mut Window, new: bool) {
        if window.dirty() || self.rewrite {
            return;
        }
        window.set_dirty(true);
        if new {
            self.opened += 1;
        } else {
            self.changed.push(key);
            self.bound();
        }
    }

    /// `window` of `key` was removed.
    pub(super) fn gone(&mut self, key: Key, window: &Window) {
        if window.stored() && !self.rewrite {
            self.forget.push(key);
            self.bound();
        }
    }

    fn bound(&mut self) {
        if self.changed.len() + self.forget.len() > self.limit {
            self.rewrite_all(self.limit);
        }
    }

    /// The next checkpoint writes every window anew.
    pub(super) fn rewrite_all(&mut self, max_tracked: usize) {
        self.limit = max_tracked.max(1024);
        self.opened = 0;
        self.changed = Vec::new();
        self.forget = Vec::new();
        self.rewrite = true;
    }
}

impl Tracker {
    /// A source read up to `mark`, and every failure it found before it
    /// was counted.
    pub fn read_to(&mut self, mark: ReadMark) {
        self.unsaved.marks.insert(mark.source, (mark.at, true));
    }

    /// What the store lacks, in one checkpoint (None: nothing), as of now:
    /// call it between two batches of failures.
    pub fn checkpoint(&mut self) -> Option<Checkpoint> {
        let mut cp = Checkpoint::new(self.unsaved.rewrite, Vec::new());
        for (source, (at, unsaved)) in &mut self.unsaved.marks {
            if *unsaved || cp.rewrite {
                *unsaved = false;
                cp.marks.push(ReadMark {
                    source: Arc::clone(source),
                    at: at.clone(),
                });
            }
        }
        // Entries use jail ids as indexes: ids are stable across reloads.
        cp.jails = self
            .jails
            .iter()
            .map(|j| j.as_ref().map(|j| Arc::clone(&j.name)))
            .collect();
        if cp.rewrite {
            self.unsaved.rewrite = false;
            self.unsaved.opened = 0;
            let times = self.windows.values().map(Window::len).sum();
            cp.reserve_exact(self.windows.len(), times);
            for (key, w) in &mut self.windows {
                w.set_dirty(false);
                w.set_stored(true);
                cp.count(key.0, key.1, w.times());
            }
        } else {
            let forget = std::mem::take(&mut self.unsaved.forget);
            // Evictions pop the queue's front: fewer may be left.
            let opened = std::mem::take(&mut self.unsaved.opened).min(self.opened.len());
            let since = self.opened.len() - opened;
            let changed = std::mem::take(&mut self.unsaved.changed);
            // At most an entry each; a window holds a time at least.
            let windows = changed.len() + opened;
            cp.reserve_exact(forget.len() + windows, windows);
            // Gone first: a key that went and came back is written again
            // below.
            for key in forget {
                cp.count(key.0, key.1, &[]);
            }
            for key in changed.iter().chain(self.opened.range(since..)) {
                // Gone since it was listed (what was stored of it is in
                // `forget`), or listed twice and written already.
                let Some(w) = self.windows.get_mut(key).filter(|w| w.dirty()) else {
                    continue;
                };
                w.set_dirty(false);
                w.set_stored(true);
                cp.count(key.0, key.1, w.times());
            }
        }
        (!cp.is_empty()).then_some(cp)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::message::{Failure, Position};
    use crate::tracker::Verdict;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    fn tracker(max_tracked: usize) -> Tracker {
        let text = "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 3\nfindtime = 600\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        Tracker::with_limit(cfg.jails, max_tracked)
    }

    fn fail(t: &mut Tracker, addr: &str, secs: u64) -> Verdict {
        t.record(Failure {
            jail: 0,
            addr: addr.parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
            line: None,
            read: None,
            account: None,
        })
    }

    fn mark(offset: u64) -> ReadMark {
        ReadMark {
            source: "/var/log/x".into(),
            at: ReadAt::File(Position {
                offset,
                ..Position::default()
            }),
        }
    }

    fn counted(cp: &Checkpoint) -> Vec<(String, usize)> {
        let mut v: Vec<_> = cp
            .entries()
            .map(|(_, a, t)| (a.to_string(), t.len()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_checkpoint_carries_what_changed_with_the_marks_then_nothing() {
        let mut t = tracker(100);
        assert_eq!(t.checkpoint(), None);
        fail(&mut t, "203.0.113.1", 0);
        fail(&mut t, "203.0.113.1", 1);
        fail(&mut t, "203.0.113.2", 1);
        t.read_to(mark(10));
        let cp = t.checkpoint().unwrap();
        assert!(!cp.rewrite);
        assert_eq!(cp.marks, vec![mark(10)]);
        assert_eq!(
            counted(&cp),
            vec![("203.0.113.1".into(), 2), ("203.0.113.2".into(), 1)]
        );
        assert_eq!(t.checkpoint(), None, "all of it was handed out");

        // The third failure bans: the address is gone from the counts.
        assert!(matches!(fail(&mut t, "203.0.113.1", 2), Verdict::Ban(_)));
        t.read_to(mark(20));
        let cp = t.checkpoint().unwrap();
        assert_eq!(cp.marks, vec![mark(20)]);
        assert_eq!(counted(&cp), vec![("203.0.113.1".into(), 0)]);

        // Banned, then failing again before the next checkpoint: its one
        // new failure is what is written.
        fail(&mut t, "203.0.113.2", 3);
        fail(&mut t, "203.0.113.2", 4);
        fail(&mut t, "203.0.113.2", 5);
        let cp = t.checkpoint().unwrap();
        assert_eq!(
            counted(&cp),
            vec![("203.0.113.2".into(), 0), ("203.0.113.2".into(), 1)]
        );
        assert!(cp.marks.is_empty());

        // Opened and banned between two checkpoints: nothing to store.
        for secs in 6..9 {
            fail(&mut t, "203.0.113.3", secs);
        }
        assert_eq!(t.checkpoint(), None);
    }

    #[test]
    fn a_window_pruned_or_evicted_is_written_as_gone() {
        let mut t = tracker(2);
        fail(&mut t, "203.0.113.1", 0);
        fail(&mut t, "203.0.113.2", 0);
        t.checkpoint().unwrap();
        // A third address evicts the first.
        fail(&mut t, "203.0.113.3", 1);
        let cp = t.checkpoint().unwrap();
        assert_eq!(
            counted(&cp),
            vec![("203.0.113.1".into(), 0), ("203.0.113.3".into(), 1)]
        );
        t.prune(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 700));
        let cp = t.checkpoint().unwrap();
        assert_eq!(
            counted(&cp),
            vec![("203.0.113.2".into(), 0), ("203.0.113.3".into(), 0)]
        );
    }

    #[test]
    fn a_flood_of_new_addresses_lists_each_once_evicted_ones_not_at_all() {
        let mut t = tracker(1024);
        let addr = |i: u32| std::net::Ipv4Addr::from(0xc633_6400 + i).to_string();
        for i in 0..3000 {
            fail(&mut t, &addr(i), 0);
        }
        let cp = t.checkpoint().unwrap();
        assert!(!cp.rewrite);
        let mut listed: Vec<String> = cp.entries().map(|(_, a, _)| a.to_string()).collect();
        listed.sort();
        let mut tracked: Vec<String> = (3000 - 1024..3000).map(addr).collect();
        tracked.sort();
        assert_eq!(listed, tracked, "the windows left, each once");
    }

    #[test]
    fn past_the_cap_the_list_gives_way_to_a_rewrite_of_every_window() {
        let mut t = tracker(1024);
        let addr = |i: u32| std::net::Ipv4Addr::from(0xc633_6400 + i).to_string();
        for i in 0..1024 {
            fail(&mut t, &addr(i), 0);
        }
        t.checkpoint().unwrap();
        // Every stored window changes, and one more goes: past the cap.
        for i in 0..1024 {
            fail(&mut t, &addr(i), 1);
        }
        fail(&mut t, &addr(5000), 1);
        t.read_to(mark(5));
        let cp = t.checkpoint().unwrap();
        assert!(cp.rewrite);
        assert_eq!(cp.len(), t.tracked());
        assert_eq!(cp.marks, vec![mark(5)]);
        assert_eq!(t.checkpoint(), None);
    }

    #[test]
    fn a_later_checkpoint_folded_into_an_earlier_says_what_both_did() {
        let mut t = tracker(100);
        fail(&mut t, "203.0.113.1", 0);
        fail(&mut t, "203.0.113.2", 0);
        t.read_to(mark(1));
        let mut first = t.checkpoint().unwrap();
        fail(&mut t, "203.0.113.1", 1);
        t.read_to(mark(2));
        first.absorb(t.checkpoint().unwrap());
        assert_eq!(first.marks, vec![mark(2)]);
        assert_eq!(
            counted(&first),
            vec![("203.0.113.1".into(), 2), ("203.0.113.2".into(), 1)]
        );
    }
}
