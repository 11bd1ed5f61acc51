//! Standard input as a log source (`nftjail run --stdin JAIL`): for
//! pipelines (`journalctl -f -o short | nftjail run --stdin sshd`) and tests.

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use super::file::{LineSplitter, Stopper};
use super::{wait_readable, Line, Sink};

/// How the reading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StdinEnd {
    /// The writer closed its end: every line was delivered.
    Eof,
    Stopped,
}

/// Reads lines from standard input (lossy UTF-8, "\n" or "\r\n") until end
/// of input or `stop`; a last line without its newline is delivered at EOF.
pub fn read_lines<S: Sink + ?Sized>(
    stop: &Stopper,
    max_line: usize,
    sink: &mut S,
) -> io::Result<StdinEnd> {
    let stdin = io::stdin();
    let fd = stdin.as_raw_fd();
    let mut lock = stdin.lock();
    let mut lines = LineSplitter::new(max_line);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Poll first: a read with nothing written would block past a stop.
        if !wait_readable(fd, stop)? {
            return Ok(StdinEnd::Stopped);
        }
        match lock.read(&mut buf) {
            Ok(0) => {
                lines.flush(&mut |text| {
                    sink.line(&Line::plain(text));
                });
                sink.caught_up();
                return Ok(StdinEnd::Eof);
            }
            Ok(n) => {
                lines.push(&buf[..n], &mut |text| {
                    sink.line(&Line::plain(text));
                });
                sink.caught_up();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
