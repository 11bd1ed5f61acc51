//! A backtracker that reads an ASCII line as bytes.
//!
//! On text that is all ASCII (most log lines), every class of a pattern
//! matches the same characters whether the pattern is read as Unicode or
//! as bytes (`\w`, `\s`, `.`, `[^[]`, a case-insensitive letter), and the
//! ways through it are tried in the same order, so the answer is the
//! same, captures and all. The byte reading is cheaper: a Unicode class
//! compiles to many states, and the backtracker tracks states times text
//! positions per line. fail2ban's regexes, full of Unicode `\w` and `\S`,
//! gain most.

use regex_automata::nfa::thompson::{
    self,
    backtrack::{self, BoundedBacktracker},
};
use regex_automata::util::captures::Captures;
use regex_automata::{Input, PatternID};
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
    Repetition,
};

#[derive(Clone)]
pub struct Twin {
    unicode: BoundedBacktracker,
    /// The byte reading; None when the pattern does not compile so (a
    /// class that lists a non-ASCII character) or numbers its groups
    /// otherwise.
    ascii: Option<BoundedBacktracker>,
}

/// A backtracker's scratch space and captures.
type Space = (backtrack::Cache, Captures);

/// Per-thread state of a [`Twin`].
pub struct TwinSpace {
    unicode: Space,
    /// Made when an ASCII line first needs it.
    ascii: Option<Space>,
}

impl TwinSpace {
    /// Captures of the Unicode reading, to say "no match" with.
    pub fn no_match(&mut self) -> &Captures {
        self.unicode.1.set_pattern(None);
        &self.unicode.1
    }
}

impl Twin {
    /// `unicode` is `pattern`'s backtracker.
    pub fn new(pattern: &str, unicode: BoundedBacktracker) -> Twin {
        let ascii = regex_syntax::Parser::new()
            .parse(pattern)
            .ok()
            .and_then(|hir| {
                thompson::Compiler::new()
                    .build_from_hir(&ascii_only(&hir))
                    .ok()
            })
            .and_then(|nfa| BoundedBacktracker::builder().build_from_nfa(nfa).ok())
            .filter(|a| {
                let (a, u) = (a.get_nfa().group_info(), unicode.get_nfa().group_info());
                a.all_group_len() == u.all_group_len()
                    && a.pattern_names(PatternID::ZERO)
                        .eq(u.pattern_names(PatternID::ZERO))
            });
        Twin { unicode, ascii }
    }

    /// Whether ASCII lines have the byte reading.
    #[cfg(test)]
    pub fn has_ascii(&self) -> bool {
        self.ascii.is_some()
    }

    pub fn space(&self) -> TwinSpace {
        TwinSpace {
            unicode: (self.unicode.create_cache(), self.unicode.create_captures()),
            ascii: None,
        }
    }

    /// The reading for a line that is all ASCII (`ascii`) or not.
    fn reading(&self, ascii: bool) -> &BoundedBacktracker {
        match &self.ascii {
            Some(a) if ascii => a,
            _ => &self.unicode,
        }
    }

    /// The longest text the reading for `ascii` takes.
    pub fn max_haystack_len(&self, ascii: bool) -> usize {
        self.reading(ascii).max_haystack_len()
    }

    /// The captures of the first match in `input` (whose haystack is all
    /// ASCII when `ascii`); None when it is too long.
    pub fn captures<'s>(
        &self,
        s: &'s mut TwinSpace,
        input: Input<'_>,
        ascii: bool,
    ) -> Option<&'s mut Captures> {
        let (engine, (cache, caps)) = match &self.ascii {
            Some(a) if ascii => {
                let space = s
                    .ascii
                    .get_or_insert_with(|| (a.create_cache(), a.create_captures()));
                (a, space)
            }
            _ => (&self.unicode, &mut s.unicode),
        };
        engine.try_captures(cache, input, caps).ok()?;
        Some(caps)
    }
}

/// `hir` with every class cut down to its ASCII members: on ASCII text it
/// matches what `hir` matches, the same way, with far fewer states.
fn ascii_only(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            let mut c = c.clone();
            c.intersect(&ClassUnicode::new([ClassUnicodeRange::new('\0', '\x7f')]));
            Hir::class(Class::Unicode(c))
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut c = c.clone();
            c.intersect(&ClassBytes::new([ClassBytesRange::new(0, 0x7f)]));
            Hir::class(Class::Bytes(c))
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(ascii_only(&r.sub)),
            ..r.clone()
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(ascii_only(&c.sub)),
            ..c.clone()
        }),
        HirKind::Concat(v) => Hir::concat(v.iter().map(ascii_only).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(ascii_only).collect()),
        _ => hir.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spans(caps: &Captures) -> Vec<Option<(usize, usize)>> {
        (0..caps.group_len())
            .map(|i| caps.get_group(i).map(|s| (s.start, s.end)))
            .collect()
    }

    /// On an ASCII line the byte reading answers as the Unicode one does,
    /// captures and all, for classes that list non-ASCII characters
    /// (Unicode `\w`, `\S`, `.`, a case-insensitive letter) and patterns
    /// of our library; each has a byte reading.
    #[test]
    fn ascii_lines_take_the_byte_reading_with_the_same_answer() {
        let mut patterns: Vec<String> = vec![
            r"^warning: [-._\w]+\[(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})\]: SASL ((?i)LOGIN|PLAIN) authentication failed:".into(),
            r"^(?P<user>\S+) from (?P<host>[^ ]+)(?: port \d+)?.*$".into(),
            r"^(?i)failed (?:password|publickey) for (?:invalid user )?(?P<user>.*?) from (?P<host>\S+)".into(),
        ];
        for name in crate::filter::library_names() {
            let def = crate::filter::FilterDef::parse(crate::filter::library(name).unwrap(), name)
                .unwrap();
            let f = crate::filter::Filter::compile(&def, name).unwrap();
            patterns.extend(f.failregex.iter().map(|re| re.as_str().to_string()));
        }
        let lines = [
            "warning: mail.example.com[192.0.2.7]: SASL login authentication failed: x",
            "warning: unknown[192.0.2.8]: SASL PLAIN authentication failed:",
            "alice from 192.0.2.9 port 22 ssh2",
            "FAILED password for invalid user bob from 2001:db8::1 port 22",
            "Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed: authentication failure, sasl_username=eve",
            "Mar  5 16:01:34 host sshd[77]: Failed password for root from 192.0.2.7 port 2222 ssh2",
            "nothing",
            "",
        ];
        let mut compared = 0;
        for p in &patterns {
            let unicode = BoundedBacktracker::new(p).unwrap();
            let twin = Twin::new(p, unicode);
            assert!(twin.has_ascii(), "{p}");
            let mut space = twin.space();
            for line in lines {
                for at in 0..line.len().min(3) {
                    let input = || Input::new(line).span(at..line.len());
                    let a = twin.captures(&mut space, input(), true).map(|c| spans(c));
                    let u = twin.captures(&mut space, input(), false).map(|c| spans(c));
                    assert_eq!(a, u, "{p} on {line:?} from {at}");
                    compared += usize::from(
                        a.as_ref()
                            .is_some_and(|s| s.first().is_some_and(Option::is_some)),
                    );
                }
            }
        }
        assert!(compared >= 8, "{compared} matches compared");
    }
}
