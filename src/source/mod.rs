//! Log sources: files (and globs of files), standard input, the syslog
//! receiver and the systemd journal. Each pushes the lines it reads into a
//! [`Sink`], the one shape every source shares (ripgrep's searcher does the
//! same with its `Sink`): what reads the lines (jails, routes, filters) is
//! the sink's business, so a source knows nothing of it.
pub mod file;
pub mod glob;
pub mod journal;
pub mod liveness;
pub mod stdin;
pub mod syslog;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::SystemTime;

use crate::message::ReadMark;
use file::Stopper;
use journal::JournalEntry;

/// Where a source pushes what it reads.
pub trait Sink {
    /// One line, without its line ending. Returns false when nothing
    /// downstream reads such a line (a syslog program no jail names), which
    /// a source may count.
    fn line(&mut self, line: &Line<'_>) -> bool;

    /// Everything available has been delivered and the source is about to
    /// wait (or to record how far it read): a sink that batches hands its
    /// batch on here, so a burst costs one hand-off and a lone line still
    /// goes out at once.
    fn caught_up(&mut self) {}

    /// Every line delivered so far lies before `mark`, and none after it
    /// was: a sink that batches hands its batch on here with the mark, so
    /// whoever stores the mark stores it with what those lines counted.
    /// Sources that keep a read position call this after each read, which
    /// bounds a batch by what one read holds.
    fn read_to(&mut self, mark: ReadMark) {
        let _ = mark;
        self.caught_up();
    }

    /// [`Sink::read_to`] in the middle of a burst: the read filled the
    /// source's buffer and the next follows at once. A sink that batches
    /// may hold its batch for a few such reads (the next mark covers these
    /// lines too), so a backlog is not handed on in one small message per
    /// read; it must still hand it on at [`Sink::read_to`],
    /// [`Sink::caught_up`], or when full.
    fn read_on(&mut self, mark: ReadMark) {
        self.read_to(mark);
    }

    /// The sink holds as much as it should: a source that marks how far
    /// it read, and can say so after any line, should do it now.
    fn full(&self) -> bool {
        false
    }

    /// A search over many lines at once for the lines worth delivering,
    /// when the sink has one: a file source then hands over only the lines
    /// a search stops in, and tells [`Sink::passed`] how many it passed
    /// over. Asked once per read, so what the sink reads may change
    /// between two reads.
    fn gate(&mut self) -> Option<Arc<dyn LineGate>> {
        None
    }

    /// `lines` whole lines were read and passed over by the [`Sink::gate`]
    /// (none of them holds what a line of use must hold): the sink counts
    /// them as read. Told only to a sink that [`Sink::counts_passed`].
    fn passed(&mut self, lines: u64) {
        let _ = lines;
    }

    /// Whether the sink wants to be told how many lines the gate passed
    /// over. Counting them is a pass over every byte of the read beside
    /// the gate's search: a sink that keeps no count spares it.
    fn counts_passed(&self) -> bool {
        false
    }
}

/// A search for what every line of use holds (grep's way: one search over
/// a whole read, not one per line). Lines it does not stop in are passed
/// over, so it must never miss such a line; stopping where nothing of use
/// is only costs that line's delivery.
pub trait LineGate: Send + Sync {
    /// Where in `text` (any number of lines) something a line of use holds
    /// starts, at or after `from`; None when no line from `from` on can be
    /// of use.
    fn find(&self, text: &[u8], from: usize) -> Option<usize>;
}

/// One line as a source read it.
#[derive(Clone, Copy)]
pub struct Line<'a> {
    pub text: &'a str,
    /// The source's own time for the line (a journal entry's, a syslog
    /// message's zoned stamp); None: a date in the text, if any, says it.
    pub time: Option<SystemTime>,
    /// What the line can be routed by besides its text.
    pub origin: Origin<'a>,
}

/// Where a line came from within its source.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    /// A file or a stream: every line is alike.
    Stream,
    /// A syslog message of this program (tag or APP-NAME).
    Program(&'a str),
    /// A journal entry, with the fields its matches name.
    Journal(&'a JournalEntry),
}

impl<'a> Line<'a> {
    /// A line of a file or stream, with no time of its own.
    pub fn plain(text: &'a str) -> Self {
        Line {
            text,
            time: None,
            origin: Origin::Stream,
        }
    }
}

/// A closure over each line's text as a [`Sink`], for callers that need
/// nothing else (tests, tools): `follower.follow(&stop, &mut Lines(|l| ...))`.
pub struct Lines<F>(pub F);

impl<F: FnMut(&str)> Sink for Lines<F> {
    fn line(&mut self, line: &Line<'_>) -> bool {
        (self.0)(line.text);
        true
    }
}

/// Blocks until `fd` is readable (true) or `stop` fired (false). The sources
/// sleep here, with no periodic wake-up, and stopping wakes them at once.
pub(crate) fn wait_readable(fd: RawFd, stop: &Stopper) -> io::Result<bool> {
    loop {
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        liveness::waiting();
        // SAFETY: `fds` is a valid array of two pollfds for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        liveness::woke();
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[1].revents != 0 {
            return Ok(false);
        }
        if fds[0].revents != 0 {
            return Ok(true);
        }
    }
}
