//! Splits a byte stream into lines with bounded memory.
//!
//! Whole lines inside a read chunk are handed out straight from the chunk (no
//! copy, and no allocation when they are valid UTF-8); only a line that
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
}

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

    pub fn push(&mut self, mut data: &[u8], on_line: &mut dyn FnMut(&str)) -> Pushed {
        let mut pushed = Pushed::default();
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let segment = &data[..nl];
            data = &data[nl + 1..];
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.carry.is_empty() {
                let line = strip_cr(segment);
                if line.len() > self.max_line {
                    pushed.cut += 1;
                    deliver(&line[..self.max_line], on_line);
                } else {
                    deliver(line, on_line);
                }
                continue;
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
        if !self.discarding && !data.is_empty() {
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
        pushed
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
}
