//! fail2ban's boundary rules, on bytes: a date may not start or end inside a
//! word, and a line-begin anchored one may follow up to two non-word
//! characters. The hand scanners and the detector's fast path check them
//! without a regex, so they must agree with the regex templates.

pub(super) fn is_word(line: &[u8], i: usize) -> bool {
    // Non-ASCII bytes belong to letters often enough that treating them as
    // word characters keeps the boundary rule on the safe side.
    line.get(i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)
}

/// fail2ban's boundary rule at byte `i`: not between two word characters.
pub(crate) fn at_bound(line: &[u8], i: usize) -> bool {
    !(i > 0 && is_word(line, i - 1) && is_word(line, i))
}

/// Where a line-begin anchored date may start: after up to two non-word
/// characters (greedy, so the last non-word one before a word character).
pub(crate) fn line_start(line: &[u8]) -> usize {
    let mut i = 0;
    while i < 2 && i < line.len() && !is_word(line, i) {
        i += 1;
    }
    i
}
