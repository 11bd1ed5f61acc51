//! Splits a byte stream into lines with bounded memory.
//!
//! Whole lines inside a read chunk are handed out straight from the chunk (no
//! copy, and no allocation when they are valid UTF-8, which is checked once
//! for all the whole lines of a read, not line by line); only a line that
//! straddles two reads is assembled in the carry buffer, which never grows
//! past `max_line`: a longer line is cut there, delivered once, and the rest of
//! it discarded up to its newline.

use std::borrow::Cow;

pub struct LineSplitter {
    carry: Vec<u8>,
    max_line: usize,
    /// Inside an overlong line whose first `max_line` bytes were delivered.
    discarding: bool,
}

/// What the splitter reports besides lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Lines cut at `max_line` during this push.
    pub cut: usize,
    /// Whole lines passed over undelivered by [`LineSplitter::push_gated`].
    pub passed: u64,
}

impl Pushed {
    fn add(&mut self, other: Pushed) {
        self.cut += other.cut;
        self.passed += other.passed;
    }
}

/// Lines in a row a gate stops in before [`LineSplitter::push_gated`]
/// splits the rest of the read as [`LineSplitter::push`] does: where nearly
/// every line holds what the gate looks for (a flood), a search per line
/// would cost more than it spares.
const DENSE: u32 = 8;

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            carry: Vec::new(),
            max_line: max_line.max(1),
            discarding: false,
        }
    }

    /// True when a partial line is held, waiting for its newline.
    pub fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Bytes of a partial line held (read from the file, not yet delivered).
    pub fn held(&self) -> usize {
        self.carry.len()
    }

    /// Forgets a partial line without delivering it.
    pub fn clear(&mut self) {
        self.carry.clear();
        self.discarding = false;
    }

    /// Skips bytes up to and including the next newline (start at the end of a
    /// file whose last line is unfinished: its tail is not a whole line).
    pub fn skip_to_next_line(&mut self) {
        self.carry.clear();
        self.discarding = true;
    }

    pub fn push(&mut self, data: &[u8], on_line: &mut dyn FnMut(&str)) -> Pushed {
        let mut pushed = Pushed::default();
        let Some(last) = memchr::memrchr(b'\n', data) else {
            self.hold(data, &mut pushed, on_line);
            return pushed;
        };
        let mut at = 0;
        if self.discarding || !self.carry.is_empty() {
            // The first newline ends the line held from earlier reads.
            let nl = memchr::memchr(b'\n', data).unwrap_or(last);
            self.end_held(&data[..nl], &mut pushed, on_line);
            at = nl + 1;
        }
        // The whole lines of this read are checked as UTF-8 in one pass,
        // several times cheaper than line by line; a line in the checked
        // text is handed out as it is.
        let mut checked = Checked::new(data, at, last);
        while at <= last {
            let nl = memchr::memchr(b'\n', &data[at..=last]).map_or(last, |i| at + i);
            let segment = strip_cr(&data[at..nl]);
            if segment.len() > self.max_line {
                pushed.cut += 1;
                deliver(&segment[..self.max_line], on_line);
            } else {
                if at >= checked.end() {
                    // Past a line that is not UTF-8: check the rest again.
                    checked = Checked::new(data, at, last);
                }
                match checked.get(at, at + segment.len()) {
                    Some(line) => on_line(line),
                    None => deliver(segment, on_line),
                }
            }
            at = nl + 1;
        }
        self.hold(&data[last + 1..], &mut pushed, on_line);
        pushed
    }

    /// [`LineSplitter::push`] that delivers only the lines `gate` stops in
    /// and, when asked to `count`, counts the others in [`Pushed::passed`].
    /// A run of lines the gate passes over is only passed over when
    /// splitting it would deliver each of them whole (none to cut at
    /// `max_line`); otherwise it is split as `push` splits it. The line held from the last read and the
    /// unfinished last line go through `push` too, so what is held, cut
    /// and delivered is the same as by `push`, less the lines passed over.
    pub fn push_gated(
        &mut self,
        data: &[u8],
        gate: &dyn super::super::LineGate,
        count: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Pushed {
        let (Some(first), Some(last)) = (memchr::memchr(b'\n', data), memchr::memrchr(b'\n', data))
        else {
            return self.push(data, on_line);
        };
        // Ends the line held from the last read; nothing is held after it.
        let mut pushed = self.push(&data[..=first], on_line);
        let mut at = first + 1;
        let mut dense = 0;
        while at <= last {
            if dense >= DENSE {
                pushed.add(self.push(&data[at..=last], on_line));
                break;
            }
            let hit = gate.find(&data[..=last], at).map(|h| h.clamp(at, last));
            // The whole lines before the line the search stopped in.
            let run_end = match hit {
                Some(h) => memchr::memrchr(b'\n', &data[at..h]).map_or(at, |i| at + i + 1),
                None => last + 1,
            };
            if run_end > at {
                dense = 0;
                let run = &data[at..run_end];
                if self.none_to_cut(run) {
                    if count {
                        pushed.passed += memchr::memchr_iter(b'\n', run).count() as u64;
                    }
                } else {
                    pushed.add(self.push(run, on_line));
                }
            } else {
                dense += 1;
            }
            let Some(h) = hit else { break };
            let end = memchr::memchr(b'\n', &data[h..=last]).map_or(last, |i| h + i);
            pushed.add(self.push(&data[run_end..=end], on_line));
            at = end + 1;
        }
        pushed.add(self.push(&data[last + 1..], on_line));
        pushed
    }

    /// Whether no line of `run` (whole lines, each ending in a newline) is
    /// longer than `max_line`. A longer line covers a whole aligned window
    /// of half that size, one without a newline; a window without one may
    /// also be part of a shorter line, which only says no for nothing.
    fn none_to_cut(&self, run: &[u8]) -> bool {
        run.chunks_exact((self.max_line / 2).max(1))
            .all(|w| memchr::memchr(b'\n', w).is_some())
    }

    /// Ends the line held from earlier reads with `segment`, the text up to
    /// its newline, and delivers it (or drops the rest of a line already
    /// delivered cut).
    fn end_held(&mut self, segment: &[u8], pushed: &mut Pushed, on_line: &mut dyn FnMut(&str)) {
        if self.discarding {
            self.discarding = false;
            return;
        }
        // The "\r" of a CRLF may have come with the previous read.
        let segment = if segment.is_empty() {
            if self.carry.last() == Some(&b'\r') {
                self.carry.pop();
            }
            segment
        } else {
            strip_cr(segment)
        };
        let room = self.max_line - self.carry.len();
        if segment.len() > room {
            pushed.cut += 1;
            self.carry.extend_from_slice(&segment[..room]);
        } else {
            self.carry.extend_from_slice(segment);
        }
        deliver(&self.carry, on_line);
        self.carry.clear();
    }

    /// Holds `data`, the start of a line whose newline has not come yet.
    fn hold(&mut self, data: &[u8], pushed: &mut Pushed, on_line: &mut dyn FnMut(&str)) {
        if self.discarding || data.is_empty() {
            return;
        }
        let room = self.max_line - self.carry.len();
        if data.len() > room {
            // Deliver the cut line now: holding it would keep memory
            // and delay it for as long as the line goes on.
            self.carry.extend_from_slice(&data[..room]);
            pushed.cut += 1;
            deliver(&self.carry, on_line);
            self.carry.clear();
            self.discarding = true;
        } else {
            self.carry.extend_from_slice(data);
        }
    }

    /// Delivers a held partial line as a line: its file was rotated away or
    /// truncated, so its newline will never come.
    pub fn flush(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.carry.is_empty() {
            deliver(strip_cr(&self.carry), on_line);
            self.carry.clear();
        }
        self.discarding = false;
    }
}

/// The longest valid UTF-8 run of a read from a line start on, as text.
struct Checked<'a> {
    /// Where `text` starts in the read.
    start: usize,
    text: &'a str,
}

impl<'a> Checked<'a> {
    /// The valid UTF-8 text of `data[from..to]` from its start.
    fn new(data: &'a [u8], from: usize, to: usize) -> Checked<'a> {
        let bytes = data.get(from..to).unwrap_or_default();
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        };
        Checked { start: from, text }
    }

    /// Where the checked text ends in the read.
    fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// The line at `from..to` of the read, when it is in the checked text.
    /// Both ends sit after or before a newline, which is ASCII, so they
    /// are character boundaries of valid text.
    fn get(&self, from: usize, to: usize) -> Option<&'a str> {
        self.text
            .get(from.checked_sub(self.start)?..to.checked_sub(self.start)?)
    }
}

fn strip_cr(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn deliver(bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
    // std's validator has a word-at-a-time ASCII path that the lossy
    // decoder's chunk iterator lacks; a log line is nearly always valid.
    let text: Cow<str> = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    on_line(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut LineSplitter, chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let mut cut = 0;
        for c in chunks {
            cut += s.push(c, &mut |l| out.push(l.to_string())).cut;
        }
        (out, cut)
    }

    #[test]
    fn whole_partial_and_crlf() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(&mut s, &[b"a\nb", b"c\r\nd"]);
        assert_eq!(lines, ["a", "bc"]);
        assert!(s.has_partial());
        let (lines, _) = run(&mut s, &[b"\n"]);
        assert_eq!(lines, ["d"]);
        assert!(!s.has_partial());
    }

    #[test]
    fn crlf_split_across_reads() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(&mut s, &[b"ab\r", b"\ncd\r", b"\r\n", b"\r\n"]);
        assert_eq!(lines, ["ab", "cd\r", ""]);
    }

    #[test]
    fn a_line_of_exactly_max_line_is_not_cut() {
        let mut s = LineSplitter::new(4);
        let (lines, cut) = run(&mut s, &[b"abcd\r\nab", b"cd\r\n", b"abcd\n"]);
        assert_eq!(lines, ["abcd", "abcd", "abcd"]);
        assert_eq!(cut, 0);
    }

    #[test]
    fn overlong_is_cut_once_and_memory_stays_bounded() {
        let mut s = LineSplitter::new(8);
        let (lines, cut) = run(&mut s, &[b"0123456789", b"abcdef", b"ghij\nok\n"]);
        assert_eq!(lines, ["01234567", "ok"]);
        assert_eq!(cut, 1);
        let (lines, cut) = run(&mut s, &[b"xx", b"0123456789\nz\n"]);
        assert_eq!(lines, ["xx012345", "z"]);
        assert_eq!(cut, 1);
        let (lines, cut) = run(&mut s, &[b"0123456789abc\n"]);
        assert_eq!(lines, ["01234567"]);
        assert_eq!(cut, 1);
    }

    #[test]
    fn a_huge_line_in_many_reads_never_grows_the_carry() {
        let mut s = LineSplitter::new(1000);
        let chunk = [b'x'; 300];
        let mut out = Vec::new();
        let mut cut = 0;
        for _ in 0..10_000 {
            cut += s.push(&chunk, &mut |l| out.push(l.len())).cut;
            assert!(s.carry.capacity() <= 2000);
        }
        cut += s.push(b"\nnext\n", &mut |l| out.push(l.len())).cut;
        assert_eq!(out, [1000, 4]);
        assert_eq!(cut, 1);
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(&mut s, &[b"a\xffb\n", b"\xc3", b"\xa9\n"]);
        assert_eq!(lines, ["a\u{fffd}b", "é"]);
    }

    #[test]
    fn skip_and_flush() {
        let mut s = LineSplitter::new(100);
        s.skip_to_next_line();
        let (lines, _) = run(&mut s, &[b"tail of old\nnew\npart\r"]);
        assert_eq!(lines, ["new"]);
        let mut out = Vec::new();
        s.flush(&mut |l| out.push(l.to_string()));
        assert_eq!(out, ["part"]);
        assert!(!s.has_partial());
    }

    #[test]
    fn clear_forgets_the_partial_line() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(&mut s, &[b"half"]);
        assert!(lines.is_empty());
        s.clear();
        let (lines, _) = run(&mut s, &[b"whole\n"]);
        assert_eq!(lines, ["whole"]);
    }

    /// Lines after a line that is not UTF-8, in the same read, are still
    /// handed out whole, and the bad one lossily; a character split
    /// between two reads is whole in its line.
    #[test]
    fn a_bad_line_amid_good_ones_and_a_split_character() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(
            &mut s,
            &[
                b"ok\nb\xffd\n\xe9\ngood \xc3",
                b"\xa9\nfine\r\nlast\xc3\xa9\n",
            ],
        );
        assert_eq!(
            lines,
            [
                "ok",
                "b\u{fffd}d",
                "\u{fffd}",
                "good \u{e9}",
                "fine",
                "last\u{e9}"
            ]
        );
        // Every way of cutting a text into two reads gives the same lines.
        let text = "a\r\nb\u{e9}c\n\nd\u{1f600}\r\ne\n".as_bytes();
        for cut in 0..=text.len() {
            let mut s = LineSplitter::new(100);
            let (lines, _) = run(&mut s, &[&text[..cut], &text[cut..]]);
            assert_eq!(lines, ["a", "b\u{e9}c", "", "d\u{1f600}", "e"], "{cut}");
        }
    }

    /// A gate that stops wherever its literal starts.
    struct Literal(&'static [u8]);

    impl crate::source::LineGate for Literal {
        fn find(&self, text: &[u8], from: usize) -> Option<usize> {
            memchr::memmem::find(text.get(from..)?, self.0).map(|i| from + i)
        }
    }

    /// Splits `chunks` by `push` or `push_gated` (counting the lines passed
    /// over): the lines delivered, the lines passed over, the lines cut,
    /// and what is held at the end.
    fn split(gated: bool, chunks: &[&[u8]]) -> (Vec<String>, u64, usize, usize) {
        split_counting(gated, true, chunks)
    }

    fn split_counting(
        gated: bool,
        count: bool,
        chunks: &[&[u8]],
    ) -> (Vec<String>, u64, usize, usize) {
        let mut s = LineSplitter::new(12);
        let mut out = Vec::new();
        let (mut passed, mut cut) = (0, 0);
        for c in chunks {
            let mut on = |l: &str| out.push(l.to_string());
            let p = if gated {
                s.push_gated(c, &Literal(b"FAIL"), count, &mut on)
            } else {
                s.push(c, &mut on)
            };
            passed += p.passed;
            cut += p.cut;
        }
        (out, passed, cut, s.held())
    }

    /// Whatever the reads, the gate changes only which lines without its
    /// literal are delivered: every line holding it comes, in order and
    /// as `push` gives it, the rest are delivered or counted as passed,
    /// lines are cut and held alike.
    #[test]
    fn gated_lines_are_the_plain_ones_less_those_passed_over() {
        let text: &[u8] = b"a FAIL 1\nquiet\n\nno\r\nFAIL\r\nx\xffFAIL y\nmuch too long a line here\n\
            long line then FAIL at its end\nFA\nIL\nok\nFAIL twice FAIL\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\
            FAIL\nFAIL\nFAIL\nFAIL\nFAIL\nFAIL\nFAIL\nFAIL\nFAIL\nFAIL\nk\nFAIL at the end";
        let has = |l: &String| l.contains("FAIL");
        let whole = split(false, &[text]);
        for size in 1..=text.len() {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            let plain = split(false, &chunks);
            let gated = split(true, &chunks);
            assert_eq!(plain, whole, "{size}");
            assert_eq!(
                gated.0.iter().filter(|l| has(l)).collect::<Vec<_>>(),
                plain.0.iter().filter(|l| has(l)).collect::<Vec<_>>(),
                "{size}"
            );
            assert_eq!(
                gated.0.len() as u64 + gated.1,
                plain.0.len() as u64,
                "{size}"
            );
            assert_eq!((gated.2, gated.3), (plain.2, plain.3), "{size}");
            let mut rest = plain.0.iter();
            for l in &gated.0 {
                assert!(rest.any(|p| p == l), "{size}: {l:?} out of order");
            }
            // Not counting the lines passed over changes nothing else.
            let uncounted = split_counting(true, false, &chunks);
            assert_eq!(uncounted.1, 0, "{size}");
            assert_eq!(
                (&uncounted.0, uncounted.2, uncounted.3),
                (&gated.0, gated.2, gated.3),
                "{size}"
            );
        }
        // One read: the quiet lines are passed over, the long one is not.
        let (lines, passed, cut, _) = split(true, &[text]);
        assert!(passed > 0);
        assert!(lines.iter().any(|l| l == "much too lon"));
        assert_eq!(cut, whole.2);
    }
}
