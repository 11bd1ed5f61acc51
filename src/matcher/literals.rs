//! The patterns' key literals: one search over a line (or a whole read)
//! for all of them, and which of them a line holds.

use memchr::memmem;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::MatchKind;

/// Every literal-gated pattern's key literal (its longest, as [`search_key`]
/// searches for it), each once, and
/// one search for all of them: a line is scanned once, however many
/// patterns, and the scan says which of the literals it holds, so a
/// pattern whose key is missing is passed over without a search of its own.
pub(super) struct Literals {
    pub(super) texts: Vec<Vec<u8>>,
    search: LiteralSearch,
    /// Indices into `texts` ordered by first byte, and where each byte's
    /// run starts in it: the literals a hit at a position may be.
    pub(super) by_first: Vec<usize>,
    pub(super) first_starts: Vec<usize>,
}

enum LiteralSearch {
    /// One literal: `memmem` alone is fastest.
    One(Box<memmem::Finder<'static>>),
    /// Teddy or Aho-Corasick, as the `regex` crate picks them for a set
    /// of literals.
    Many(Prefilter),
    /// An alternation of the escaped literals, should no prefilter build.
    Regex(regex::bytes::Regex),
}

/// Which literals a line holds (see [`Literals::scan`]): bit `i` for
/// literal `i < 64`; past those, only whether any literal was seen.
#[derive(Clone, Copy)]
pub(super) struct Present {
    pub(super) bits: u64,
    pub(super) any: bool,
}

impl Present {
    /// Whether literal `i` is in the line; None when not known (a literal
    /// past the 64th in a line that holds some literal: ask it).
    pub(super) fn has(self, i: usize) -> Option<bool> {
        match u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
            Some(bit) => Some(self.bits & bit != 0),
            None => (!self.any).then_some(false),
        }
    }
}

impl Literals {
    pub(super) fn new(texts: Vec<Vec<u8>>) -> Option<Literals> {
        let search = match texts.as_slice() {
            [] => return None,
            [one] => LiteralSearch::One(Box::new(memmem::Finder::new(one).into_owned())),
            many => match Prefilter::new(MatchKind::LeftmostFirst, many) {
                Some(pre) => LiteralSearch::Many(pre),
                None => {
                    let alternation: Vec<String> = many
                        .iter()
                        .map(|l| regex::escape(&String::from_utf8_lossy(l)))
                        .collect();
                    // Escaped literals always compile; should they somehow
                    // not, the empty regex lets every line through, never none.
                    let re = regex::bytes::Regex::new(&alternation.join("|"))
                        .or_else(|_| regex::bytes::Regex::new(""))
                        .ok()?;
                    LiteralSearch::Regex(re)
                }
            },
        };
        let mut by_first: Vec<usize> = (0..texts.len()).collect();
        by_first.sort_by_key(|&i| texts[i].first().copied());
        let first_starts = (0..=256usize)
            .map(|b| {
                by_first.partition_point(|&i| texts[i].first().map_or(0, |&f| usize::from(f)) < b)
            })
            .collect();
        Some(Literals {
            texts,
            search,
            by_first,
            first_starts,
        })
    }

    /// Where the first of the literals starts in `hay` at or after `from`
    /// (a prefilter may also stop where none does: [`Literals::scan`]
    /// checks each hit).
    pub(super) fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        let at = match &self.search {
            LiteralSearch::One(f) => f.find(rest)?,
            LiteralSearch::Many(pre) => {
                pre.find(rest, regex_automata::Span::from(0..rest.len()))?
                    .start
            }
            LiteralSearch::Regex(re) => re.find(rest)?.start(),
        };
        Some(from + at)
    }

    /// Which literals `hay` holds.
    pub(super) fn scan(&self, hay: &[u8]) -> Present {
        let mut present = Present {
            bits: 0,
            any: false,
        };
        if let LiteralSearch::One(f) = &self.search {
            let found = f.find(hay).is_some();
            present.bits = u64::from(found);
            present.any = found;
            return present;
        }
        let mut from = 0;
        while let Some(at) = self.find(hay, from) {
            let rest = &hay[at..];
            let b = usize::from(rest[0]);
            for &i in &self.by_first[self.first_starts[b]..self.first_starts[b + 1]] {
                if rest.starts_with(&self.texts[i]) {
                    present.any = true;
                    if let Some(bit) = u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
                        present.bits |= bit;
                    }
                }
            }
            from = at + 1;
        }
        present
    }
}

/// Shortest key [`search_key`] leaves: shorter ones stop in too many lines.
const MIN_KEY: usize = 6;

/// What a pattern's longest required literal is searched for by: the
/// literal without its leading punctuation and spaces (`]: Failed ` is
/// searched for as `Failed `), when at least [`MIN_KEY`] bytes are left.
/// A part of a required literal is required too, and the search for
/// many literals sorts candidates by their first bytes: `]: ` follows
/// every syslog program name, so keys that start with it made every
/// line a candidate to check. The whole literal stays one of the
/// pattern's required texts.
pub(super) fn search_key(literal: &str) -> &[u8] {
    let bytes = literal.as_bytes();
    let lead = bytes
        .iter()
        .take_while(|b| b.is_ascii_punctuation() || b.is_ascii_whitespace())
        .count();
    match bytes.get(lead..) {
        Some(rest) if rest.len() >= MIN_KEY => rest,
        _ => bytes,
    }
}

/// What a pattern's lines are searched for by: its longest required
/// literal's [`search_key`], or, when one of its alternations of text
/// (`\((?:tried to use ...|proxy dest auth failed)\)`) is longer by at
/// least [`MIN_KEY`] even in its shortest branch, the keys of all its
/// branches, one of which every line it matches holds. A short literal
/// is often text the program writes on most of its lines (Dovecot's
/// `-login: `), which the search would stop in only for the rest of the
/// text to rule it out; a long branch is the failure's own text.
pub(super) fn search_keys<'a>(literal: &'a str, factor: Option<&'a [String]>) -> Vec<&'a [u8]> {
    let key = search_key(literal);
    match factor {
        Some(branches)
            if branches
                .iter()
                .all(|b| search_key(b).len() >= key.len() + MIN_KEY) =>
        {
            branches.iter().map(|b| search_key(b)).collect()
        }
        _ => vec![key],
    }
}
