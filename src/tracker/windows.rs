//! Several windows per jail, checked in the same pass: the jail's own
//! maxretry/findtime/bantime (window 0) and its `[[jail.X.window]]`
//! entries (1, 2, …), say a burst window and a slow one.
//!
//! One list of failure times per address serves them all: it keeps the
//! newest times up to the largest maxretry, within the longest findtime.
//! That is enough for each window: when `maxretry` failures fall inside a
//! window's findtime, they are the newest `maxretry` times, and the list
//! keeps at least that many. When several windows decide at once, the
//! longest ban wins. As with one window, a ban clears the address's
//! failures, for every window.

use std::time::Duration;

use crate::config::Jail;
use crate::message::Cause;

/// The window capacity of a jail's addresses: its largest maxretry, kept
/// within what a `u8` length can count.
pub(super) fn capacity(jail: &Jail) -> usize {
    let largest = jail
        .windows
        .iter()
        .map(|w| w.maxretry)
        .fold(jail.maxretry, u32::max);
    (largest as usize).clamp(1, usize::from(u8::MAX))
}

/// How long a failure can still help a ban in this jail: its longest
/// findtime.
pub(super) fn longest_findtime(jail: &Jail) -> Duration {
    jail.windows
        .iter()
        .map(|w| w.findtime)
        .fold(jail.findtime, Duration::max)
}

/// What the windows decide after a failure at `t` (ms) joined `times`
/// (sorted, the ones kept): None, or the window with the longest ban among
/// those whose maxretry is reached, with the failures it counted.
pub(super) fn decide(jail: &Jail, times: &[u64], t: u64) -> Option<(Cause, u32, Duration)> {
    let own = (jail.maxretry, jail.findtime, jail.bantime);
    let extra = jail
        .windows
        .iter()
        .map(|w| (w.maxretry, w.findtime, w.bantime));
    let mut best: Option<(Cause, u32, Duration)> = None;
    for (i, (maxretry, findtime, bantime)) in std::iter::once(own).chain(extra).enumerate() {
        let findtime = findtime.as_millis() as u64;
        let count = times
            .iter()
            .filter(|&&x| x + findtime > t && x <= t + findtime)
            .count() as u32;
        let reached = count >= maxretry.clamp(1, u32::from(u8::MAX));
        if reached && best.as_ref().is_none_or(|b| bantime > b.2) {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            best = Some((Cause::Window(i), count, bantime));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn jail(extra: &str) -> Jail {
        let text = format!(
            "[jail.j]\nfailregex = ['from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 3\nfindtime = 60\nbantime = 300\n{extra}"
        );
        Config::parse(&text, Path::new("t.toml"))
            .unwrap()
            .jails
            .remove(0)
    }

    #[test]
    fn the_longest_ban_among_the_windows_reached_wins() {
        let j = jail(
            "[[jail.j.window]]\nmaxretry = 5\nfindtime = 600\nbantime = 3000\n\
             [[jail.j.window]]\nmaxretry = 4\nfindtime = 600\nbantime = 30\n",
        );
        assert_eq!(capacity(&j), 5);
        assert_eq!(longest_findtime(&j), Duration::from_secs(600));
        let s = |x: u64| x * 1000;
        // Three within 60 s: the jail's own window.
        let times = [s(0), s(10), s(20)];
        assert_eq!(
            decide(&j, &times, s(20)),
            Some((Cause::Window(0), 3, Duration::from_secs(300)))
        );
        // Four spread over 10 min: window 2 only (its 30 s ban).
        let times = [s(0), s(100), s(200), s(300)];
        assert_eq!(
            decide(&j, &times, s(300)),
            Some((Cause::Window(2), 4, Duration::from_secs(30)))
        );
        // Five: windows 1 and 2 reached; window 1's ban is longer.
        let times = [s(0), s(100), s(200), s(300), s(400)];
        assert_eq!(
            decide(&j, &times, s(400)),
            Some((Cause::Window(1), 5, Duration::from_secs(3000)))
        );
        assert_eq!(decide(&j, &[s(0), s(100)], s(100)), None);
    }
}
