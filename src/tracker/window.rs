//! One address's failure times in one jail.
//!
//! An attack spread over very many addresses makes one of these per
//! address, and most such addresses fail once or twice before they are
//! banned or forgotten. Those times are held in the map entry itself: a
//! window is as small as a boxed slice with its length would be, and only
//! an address that fails more often than that moves its times to the heap.

/// Times held without an allocation.
const INLINE: usize = 2;

/// Changed since the last checkpoint (its key is in the tracker's list of
/// unsaved changes).
const DIRTY: u8 = 1;
/// In a checkpoint already: the store holds some of its times.
const STORED: u8 = 2;

/// The most recent failure times of one address in one jail, at most the
/// jail's window capacity, in milliseconds since the epoch, oldest first.
pub(super) struct Window(Repr);

/// The length and flags sit beside the enum's tag, in what would be padding.
enum Repr {
    Inline {
        len: u8,
        flags: u8,
        t: [u64; INLINE],
    },
    Heap {
        len: u8,
        flags: u8,
        t: Box<[u64]>,
    },
}

impl Window {
    pub(super) fn new() -> Self {
        Window(Repr::Inline {
            len: 0,
            flags: 0,
            t: [0; INLINE],
        })
    }

    /// The newest `cap` of `times` (sorted), in a window not yet stored.
    pub(super) fn with_newest(times: &[u64], cap: usize) -> Self {
        let keep = &times[times.len().saturating_sub(cap)..];
        let mut w = Window::new();
        w.reserve(keep.len());
        let (slots, len, _) = w.parts();
        slots[..keep.len()].copy_from_slice(keep);
        *len = keep.len() as u8;
        w
    }

    pub(super) fn times(&self) -> &[u64] {
        match &self.0 {
            Repr::Inline { len, t, .. } => &t[..usize::from(*len)],
            Repr::Heap { len, t, .. } => &t[..usize::from(*len)],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.times().len()
    }

    fn flags(&self) -> u8 {
        match &self.0 {
            Repr::Inline { flags, .. } | Repr::Heap { flags, .. } => *flags,
        }
    }

    fn set(&mut self, flag: u8, on: bool) {
        let (_, _, flags) = self.parts();
        if on {
            *flags |= flag;
        } else {
            *flags &= !flag;
        }
    }

    pub(super) fn dirty(&self) -> bool {
        self.flags() & DIRTY != 0
    }

    pub(super) fn set_dirty(&mut self, on: bool) {
        self.set(DIRTY, on);
    }

    pub(super) fn stored(&self) -> bool {
        self.flags() & STORED != 0
    }

    pub(super) fn set_stored(&mut self, on: bool) {
        self.set(STORED, on);
    }

    /// Every slot (kept times first), the length and the flags.
    fn parts(&mut self) -> (&mut [u64], &mut u8, &mut u8) {
        match &mut self.0 {
            Repr::Inline { len, flags, t } => (&mut t[..], len, flags),
            Repr::Heap { len, flags, t } => (&mut t[..], len, flags),
        }
    }

    /// Room for `n` times, moving them to the heap when they do not fit.
    fn reserve(&mut self, n: usize) {
        let (slots, len, flags) = self.parts();
        if slots.len() >= n {
            return;
        }
        let (len, flags) = (*len, *flags);
        let mut t = vec![0; n].into_boxed_slice();
        t[..usize::from(len)].copy_from_slice(&slots[..usize::from(len)]);
        self.0 = Repr::Heap { len, flags, t };
    }

    /// How many times [`Window::push`] of `t` would leave, without adding
    /// it: for the failure that bans, whose window goes at once (an
    /// address at maxretry would move its times to the heap for nothing).
    pub(super) fn count_with(&self, t: u64, findtime: u64, cap: usize) -> usize {
        let kept = self
            .times()
            .iter()
            .filter(|&&x| x + findtime > t && x <= t + findtime)
            .count();
        kept.min(cap.max(1) - 1) + 1
    }

    /// Adds `t`, keeps only times inside `(t - findtime, t + findtime]`, drops
    /// the oldest beyond `cap` (at least 1, at most `u8::MAX`); returns how
    /// many remain.
    pub(super) fn push(&mut self, t: u64, findtime: u64, cap: usize) -> usize {
        let (slots, len, _) = self.parts();
        let mut n = 0;
        for i in 0..usize::from(*len) {
            let x = slots[i];
            if x + findtime > t && x <= t + findtime {
                slots[n] = x;
                n += 1;
            }
        }
        while n >= cap.max(1) {
            slots.copy_within(1..n, 0);
            n -= 1;
        }
        *len = n as u8;
        // The heap holds the jail's whole capacity at once: an address that
        // fails a third time is likely to go on to maxretry.
        self.reserve(cap.max(n + 1));
        let (slots, len, _) = self.parts();
        // Sources can deliver slightly out of order: keep the times sorted.
        let pos = slots[..n].partition_point(|&x| x <= t);
        slots.copy_within(pos..n, pos + 1);
        slots[pos] = t;
        n += 1;
        *len = n as u8;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_no_bigger_than_a_boxed_slice_and_its_length() {
        assert_eq!(std::mem::size_of::<Window>(), 24);
    }

    #[test]
    fn times_stay_sorted_within_findtime_and_capacity_inline_and_on_the_heap() {
        let mut w = Window::new();
        assert_eq!(w.push(10, 100, 2), 1);
        assert_eq!(w.push(5, 100, 2), 2);
        assert_eq!(w.times(), &[5, 10]);
        // Capacity 2: the oldest goes.
        assert_eq!(w.push(20, 100, 2), 2);
        assert_eq!(w.times(), &[10, 20]);
        w.set_dirty(true);
        // A larger capacity moves the times to the heap, flags kept.
        assert_eq!(w.push(30, 100, 5), 3);
        assert!(matches!(w.0, Repr::Heap { .. }));
        assert!(w.dirty() && !w.stored());
        assert_eq!(w.times(), &[10, 20, 30]);
        // Outside findtime of the newest: dropped.
        assert_eq!(w.push(125, 100, 5), 2);
        assert_eq!(w.times(), &[30, 125]);
        w.set_stored(true);
        w.set_dirty(false);
        assert!(!w.dirty() && w.stored());
        let w = Window::with_newest(&[1, 2, 3, 4], 3);
        assert_eq!(w.times(), &[2, 3, 4]);
        assert!(!w.dirty() && !w.stored());
        // What a push would leave, told without one.
        let mut w = Window::new();
        for (t, cap, n) in [(10, 3, 1), (20, 3, 2), (30, 3, 3), (200, 3, 1), (250, 2, 2)] {
            assert_eq!(w.count_with(t, 100, cap), n, "{t}");
            assert_eq!(w.push(t, 100, cap), n, "{t}");
        }
        let mut one = Window::new();
        one.push(1, 100, 1);
        assert_eq!(one.push(2, 100, 1), 1);
        assert_eq!(one.times(), &[2]);
    }
}
