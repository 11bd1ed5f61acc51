//! Follows a log file like `tail -F`, woken by inotify only (no sleep-poll).
//!
//! The file is known by its inode, not its name. On every wake-up the source
//! reads what is new and then checks which inode the path names now:
//!
//! - Rotation by rename (logrotate's default) or delete-and-create: the old
//!   file is drained to its end and its unfinished last line delivered (its
//!   newline will never come). It is then kept open and drained on every
//!   wake-up until the next rotation, because writers often append to it for
//!   a moment before they reopen. The new file is read from its start.
//! - copytruncate: a size below our offset means truncation, and reading
//!   restarts at 0. Lines appended between logrotate's copy and its truncate
//!   are lost to every reader; that is inherent to copytruncate. So is a
//!   truncation followed by writes that outgrow our offset before we wake:
//!   it cannot be told from an append.
//! - A file that does not exist yet is waited for (its directory is watched)
//!   and read from its start: all of it is new.
//! - What is not a regular file inside the path's directory (a FIFO, a
//!   device, a directory, a symlink leading out of the directory) is
//!   refused with a warning and treated as missing: `open.rs` says why.

mod generation;
mod lines;
mod open;
mod stopper;

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotify::{Inotify, WatchMask};
use tracing::{info, warn};

use generation::{Drained, FileId, Generation};
use open::{open_log, Checked};

use super::{Line, Sink};
use crate::message::{ReadAt, ReadMark};

pub use crate::message::Position;

pub use lines::{LineSplitter, Pushed};
pub use open::not_regular;
pub use stopper::Stopper;

/// Where reading starts in a file that already exists at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Only lines written from now on (the daemon's default: old lines were
    /// dealt with by whoever ran before).
    #[default]
    End,
    Beginning,
    /// Where a previous run stopped (from the state store): the rest of
    /// that file, also when it was rotated away meanwhile (found by inode
    /// in the same directory), then the file now at the path from its start.
    /// Lines written while the daemon was stopped are read exactly once.
    Resume(Position),
}

#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    pub start: StartAt,
    /// Longest line kept, in bytes; longer ones are cut here with a warning,
    /// which bounds memory whatever a log contains.
    pub max_line: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            start: StartAt::End,
            max_line: 64 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("log file {}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "log file {}: its directory {} does not exist or is not a directory; create it or fix the path",
        path.display(),
        dir.display()
    )]
    NoDirectory { path: PathBuf, dir: PathBuf },
}

/// Writes and renames of the followed file itself (by inode).
const FILE_EVENTS: WatchMask = WatchMask::MODIFY
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::ATTRIB);
/// Names appearing and going in its directory; no MODIFY here, or every write
/// to any other log beside it would wake us.
const DIR_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE);

/// Big reads: a burst of lines costs few syscalls.
const CHUNK: usize = 128 * 1024;

pub struct FileFollower {
    path: PathBuf,
    /// The path as read positions are keyed.
    key: std::sync::Arc<str>,
    /// The path's directory with every symlink resolved: what is read must
    /// really be in it or below it.
    within: PathBuf,
    opts: FollowOptions,
    inotify: Inotify,
    /// What was refused at the path last (a FIFO, a symlink out of the
    /// directory) and why, so it is warned about once, not on every wake-up.
    /// It is still looked at again on each wake-up: a regular file that
    /// takes the name may well reuse the refused thing's inode number.
    refused: Option<(FileId, String)>,
    /// What the path named when last looked at.
    current: Option<Generation>,
    /// The generation before the last rotation, still drained.
    retired: Option<Generation>,
    chunk: Vec<u8>,
}

impl FileFollower {
    /// Opens the file now (so nothing written after this call is missed) and
    /// watches its directory for it to appear or be replaced.
    pub fn new(path: impl Into<PathBuf>, opts: FollowOptions) -> Result<Self, FileSourceError> {
        let path = path.into();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(FileSourceError::NoDirectory { path, dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FileSourceError::NoDirectory { path, dir })
            }
            Err(e) => return Err(io_err(&path, "cannot access its directory", e)),
        }
        let within = std::fs::canonicalize(&dir)
            .map_err(|e| io_err(&path, "cannot resolve its directory", e))?;
        let inotify = Inotify::init().map_err(|e| io_err(&path, "inotify_init", e))?;
        inotify
            .watches()
            .add(&dir, DIR_EVENTS)
            .map_err(|e| io_err(&path, "cannot watch its directory", e))?;
        let mut follower = FileFollower {
            key: path.to_string_lossy().into(),
            path,
            within,
            opts,
            inotify,
            refused: None,
            current: None,
            retired: None,
            chunk: vec![0; CHUNK],
        };
        let opened = follower
            .open_path()
            .map_err(|e| io_err(&follower.path, "cannot open", e))?;
        match (opened, opts.start) {
            (Some(g), StartAt::Resume(p)) => follower.resume(Some(g), &p)?,
            (None, StartAt::Resume(p)) => {
                follower.resume(None, &p)?;
                info!(file = %follower.path.display(), "waiting for the file to appear");
            }
            (Some(mut g), StartAt::End) => {
                g.seek_to_end()
                    .map_err(|e| io_err(&follower.path, "cannot seek to its end", e))?;
                follower.current = Some(g);
            }
            (Some(g), StartAt::Beginning) => follower.current = Some(g),
            (None, _) => info!(file = %follower.path.display(), "waiting for the file to appear"),
        }
        Ok(follower)
    }

    /// Picks up where a previous run stopped.
    fn resume(&mut self, now: Option<Generation>, p: &Position) -> Result<(), FileSourceError> {
        let at_path = now.map(|mut g| (g.is(p), g));
        match at_path {
            Some((true, mut g)) => {
                let len = g.file.metadata().map(|m| m.len()).unwrap_or(0);
                if len >= p.offset {
                    g.seek_to(p.offset)
                        .map_err(|e| io_err(&self.path, "cannot seek to the saved position", e))?;
                    info!(file = %self.path.display(), offset = p.offset, "resuming where the last run stopped");
                } else {
                    info!(file = %self.path.display(), "truncated while we were stopped: reading from the start");
                }
                self.current = Some(g);
            }
            other => {
                // Rotated while we were stopped: finish the old file first.
                if let Some(old) = self.find_rotated(p) {
                    self.retired = Some(old);
                }
                if let Some((_, g)) = other {
                    info!(file = %self.path.display(), "a new file since the last run: reading it from the start");
                    self.current = Some(g);
                }
            }
        }
        Ok(())
    }

    /// The file a saved position was in, if it still exists beside the path
    /// under another name (logrotate's `mail.log.1`), opened at that position.
    fn find_rotated(&mut self, p: &Position) -> Option<Generation> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty())?;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || (meta.dev(), meta.ino()) != (p.dev, p.ino) {
                continue;
            }
            let Ok(Checked::File(file, meta)) = open_log(&entry.path(), &self.within) else {
                continue;
            };
            let mut g = Generation::new(file, &meta, self.opts.max_line);
            if !g.is(p) || meta.len() < p.offset || g.seek_to(p.offset).is_err() {
                continue;
            }
            info!(
                file = %self.path.display(),
                rotated = %entry.path().display(),
                "rotated while we were stopped: reading the rest of the old file first"
            );
            let by_fd = format!("/proc/self/fd/{}", g.file.as_raw_fd());
            g.watch = self.inotify.watches().add(&by_fd, FILE_EVENTS).ok();
            return Some(g);
        }
        None
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks, pushing each complete line (without its "\n" or "\r\n",
    /// decoded lossily as UTF-8) into `sink`, and telling it when it has
    /// caught up, until `stop` fires; then returns `Ok(())` after delivering
    /// what was written up to then.
    pub fn follow<S: Sink + ?Sized>(
        &mut self,
        stop: &Stopper,
        sink: &mut S,
    ) -> Result<(), FileSourceError> {
        let mut events = vec![0u8; 16 * 1024];
        loop {
            self.catch_up(sink);
            let readable = super::wait_readable(self.inotify.as_raw_fd(), stop)
                .map_err(|e| io_err(&self.path, "poll", e))?;
            if !readable {
                self.catch_up(sink);
                return Ok(());
            }
            self.discard_events(&mut events)?;
        }
    }

    /// Empties the inotify queue. Which events came does not matter:
    /// `catch_up` looks at the files themselves, which also covers a queue
    /// overflow.
    fn discard_events(&mut self, buf: &mut [u8]) -> Result<(), FileSourceError> {
        loop {
            match self.inotify.read_events(buf) {
                Ok(mut events) => {
                    if events.next().is_none() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path, "cannot read inotify events", e)),
            }
        }
    }

    /// Reads everything new: the retired file, the current one, and a new file
    /// at the path if it was replaced. After each read the sink is told
    /// where a restart would resume, and once more at the end.
    fn catch_up<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        let key = std::sync::Arc::clone(&self.key);
        let mark = |p| ReadMark {
            source: std::sync::Arc::clone(&key),
            at: ReadAt::File(p),
        };
        self.read_new(&mut |d| match d {
            Drained::Line(text) => {
                sink.line(&Line::plain(text));
            }
            Drained::Read { at, more: true } => sink.read_on(mark(at)),
            Drained::Read { at, more: false } => sink.read_to(mark(at)),
            Drained::Gate { gate, count } => {
                *gate = sink.gate();
                *count = sink.counts_passed();
            }
            Drained::Passed(n) => sink.passed(n),
        });
        match self.resume_at() {
            Some(p) => sink.read_to(mark(p)),
            None => sink.caught_up(),
        }
    }

    /// Where a restart would resume: the current file, or the one rotated
    /// away while no new one has come yet.
    fn resume_at(&mut self) -> Option<Position> {
        match (self.current.as_mut(), self.retired.as_mut()) {
            (Some(g), _) | (None, Some(g)) => Some(g.position()),
            (None, None) => None,
        }
    }

    fn read_new(&mut self, on: &mut dyn FnMut(Drained<'_>)) {
        if let Some(old) = self.retired.as_mut() {
            // Lines the old file still gets are read, but a restart resumes
            // in the current file: where that stands is the mark.
            let resume = self.current.as_mut().map(Generation::position);
            old.drain(
                &self.path,
                &mut self.chunk,
                &mut |d: Drained<'_>| match (d, resume) {
                    (Drained::Read { more, .. }, Some(at)) => on(Drained::Read { at, more }),
                    (d, _) => on(d),
                },
            );
        }
        if let Some(cur) = self.current.as_mut() {
            cur.drain(&self.path, &mut self.chunk, on);
        }
        let Ok(meta) = std::fs::metadata(&self.path) else {
            // Gone (between a rename and the create): keep what we have.
            return;
        };
        if self.current_id() == Some((meta.dev(), meta.ino())) {
            return;
        }
        match self.open_path() {
            Ok(Some(new)) => self.switch_to(new, on),
            Ok(None) => {}
            Err(e) => warn!(file = %self.path.display(), "cannot open: {e}"),
        }
    }

    /// Makes `new` (just opened at the path) the current generation. Until
    /// `new` is read, a restart would resume in the file it replaces (found
    /// by inode), then read `new` from its start.
    fn switch_to(&mut self, mut new: Generation, on: &mut dyn FnMut(Drained<'_>)) {
        if self.current_id() == Some(new.id) {
            // Replaced and put back between our stat and our open.
            return;
        }
        if self.retired.as_ref().map(|g| g.id) == Some(new.id) {
            // The rotated file was moved back: resume it where we were, so
            // nothing in it is read twice.
            drop(new);
            std::mem::swap(&mut self.current, &mut self.retired);
            if let Some(old) = self.retired.as_mut() {
                old.lines.flush(&mut |l| on(Drained::Line(l)));
            }
            return;
        }
        if let Some(mut old) = self.current.take() {
            info!(file = %self.path.display(), "rotated: now reading the new file");
            // Once more: the writer may have appended since the drain above.
            old.drain(&self.path, &mut self.chunk, on);
            old.lines.flush(&mut |l| on(Drained::Line(l)));
            let resume = old.position();
            if let Some(mut prev) = self.retired.take() {
                prev.drain(&self.path, &mut self.chunk, &mut |d: Drained<'_>| match d {
                    Drained::Read { more, .. } => on(Drained::Read { at: resume, more }),
                    d => on(d),
                });
                prev.lines.flush(&mut |l| on(Drained::Line(l)));
                if prev.watch.is_some() && prev.watch != old.watch && prev.watch != new.watch {
                    if let Some(wd) = prev.watch.take() {
                        // It may already be gone with its inode; nothing to do then.
                        let _ = self.inotify.watches().remove(wd);
                    }
                }
            }
            self.retired = Some(old);
        }
        new.drain(&self.path, &mut self.chunk, on);
        self.current = Some(new);
    }

    fn current_id(&self) -> Option<FileId> {
        self.current.as_ref().map(|g| g.id)
    }

    /// Opens the path and watches the inode that was opened; `None` when
    /// nothing, or nothing that may be read, is there.
    fn open_path(&mut self) -> io::Result<Option<Generation>> {
        let mut g = match open_log(&self.path, &self.within)? {
            Checked::File(file, meta) => Generation::new(file, &meta, self.opts.max_line),
            Checked::Missing => {
                self.refused = None;
                return Ok(None);
            }
            Checked::Refused { id, why } => {
                let seen = (id, why);
                if self.refused.as_ref() != Some(&seen) {
                    warn!(file = %self.path.display(), "not read: {}; treated as missing until a regular file is there", seen.1);
                    self.refused = Some(seen);
                }
                return Ok(None);
            }
        };
        self.refused = None;
        // Through /proc the watch lands on the inode we hold, even if the
        // path was replaced meanwhile; the path is the fallback without /proc.
        let by_fd = format!("/proc/self/fd/{}", g.file.as_raw_fd());
        let mut watches = self.inotify.watches();
        g.watch = watches
            .add(&by_fd, FILE_EVENTS)
            .or_else(|_| watches.add(&self.path, FILE_EVENTS))
            .map_err(
                |e| warn!(file = %self.path.display(), "cannot watch; changes are seen late: {e}"),
            )
            .ok();
        Ok(Some(g))
    }
}

fn io_err(path: &Path, what: &'static str, source: io::Error) -> FileSourceError {
    FileSourceError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}
