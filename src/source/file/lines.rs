//! Splits a byte stream into lines with bounded memory.
//!
//! Whole lines inside a read chunk are handed out straight from the chunk (no
//! copy); only a line that straddles two reads is assembled in the carry
//! buffer, which never grows past `max_line`: a longer line is cut there,
//! delivered once, and the rest of it discarded up to its newline.

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

    /// Forgets a partial line (the file it came from was truncated).
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
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    let segment = &data[..nl];
                    data = &data[nl + 1..];
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.carry.is_empty() {
                        if segment.len() > self.max_line {
                            pushed.cut += 1;
                            deliver(&segment[..self.max_line], on_line);
                        } else {
                            deliver(segment, on_line);
                        }
                    } else {
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
                }
                None => {
                    if !self.discarding {
                        let room = self.max_line - self.carry.len();
                        if data.len() > room {
                            self.carry.extend_from_slice(&data[..room]);
                            pushed.cut += 1;
                            deliver(&self.carry, on_line);
                            self.carry.clear();
                            self.discarding = true;
                        } else {
                            self.carry.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
        pushed
    }

    /// Delivers a held partial line as a line: its file was rotated away, so
    /// its newline will never come.
    pub fn flush(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.carry.is_empty() {
            deliver(&self.carry, on_line);
            self.carry.clear();
        }
        self.discarding = false;
    }
}

fn deliver(bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text: Cow<str> = String::from_utf8_lossy(bytes);
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
    fn overlong_is_cut_once_and_memory_stays_bounded() {
        let mut s = LineSplitter::new(8);
        let (lines, cut) = run(&mut s, &[b"0123456789", b"abcdef", b"ghij\nok\n"]);
        assert_eq!(lines, ["01234567", "ok"]);
        assert_eq!(cut, 1);
        assert!(s.carry.capacity() <= 64);
        let (lines, cut) = run(&mut s, &[b"xx", b"0123456789\nz\n"]);
        assert_eq!(lines, ["xx012345", "z"]);
        assert_eq!(cut, 1);
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let mut s = LineSplitter::new(100);
        let (lines, _) = run(&mut s, &[b"a\xffb\n"]);
        assert_eq!(lines, ["a\u{fffd}b"]);
    }

    #[test]
    fn skip_and_flush() {
        let mut s = LineSplitter::new(100);
        s.skip_to_next_line();
        let (lines, _) = run(&mut s, &[b"tail of old\nnew\npart"]);
        assert_eq!(lines, ["new"]);
        let mut out = Vec::new();
        s.flush(&mut |l| out.push(l.to_string()));
        assert_eq!(out, ["part"]);
    }
}
