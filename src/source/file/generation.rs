//! One opened incarnation of the followed path: the file, which inode it is,
//! how far it was read, and its own partial line. After a rotation the old
//! generation lives on beside the new one, so each keeps its own offset and
//! line buffer and no line of one is glued to a line of the other.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use inotify::WatchDescriptor;
use tracing::{info, warn};

use super::lines::LineSplitter;
use super::Position;
use crate::source::LineGate;

/// The first line (or first 4 KiB) identifies a file.
const HEAD: usize = 4096;

/// FNV-1a of the first line: stable across builds and releases, unlike std's
/// hasher, since it is stored. None until a first line is complete.
fn head_hash(file: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; HEAD];
    let n = file.read_at(&mut buf, 0).ok()?;
    let line = match memchr::memchr(b'\n', &buf[..n]) {
        Some(i) => &buf[..i],
        None if n == HEAD => &buf[..],
        None => return None,
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in line {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // 0 means "unknown" in a saved position.
    Some(h.max(1))
}

/// Identity of a file across renames: device and inode.
pub(super) type FileId = (u64, u64);

/// What draining a generation hands out.
pub(super) enum Drained<'a> {
    Line(&'a str),
    /// After each read: where a restart would resume this file, and
    /// whether the read filled the buffer (`more`): then more is most
    /// likely there to read at once, a backlog or a burst.
    Read {
        at: Position,
        more: bool,
    },
    /// Before each read's lines: the sink's gate, if it has one, goes in
    /// `gate` (see [`crate::source::Sink::gate`]), and whether the lines
    /// it passes over are to be counted in `count`.
    Gate {
        gate: &'a mut Option<Arc<dyn LineGate>>,
        count: &'a mut bool,
    },
    /// Whole lines of a read the gate passed over, when counted.
    Passed(u64),
}

pub(super) struct Generation {
    pub(super) file: File,
    pub(super) id: FileId,
    offset: u64,
    pub(super) lines: LineSplitter,
    /// `None` when the watch could not be added; the file is then still read
    /// on every other wake-up.
    pub(super) watch: Option<WatchDescriptor>,
    /// Hash of the first line, once there is one: inodes are reused, so the
    /// identity of a file across a restart is its inode and its first line.
    head: Option<u64>,
}

impl Generation {
    /// A file just opened and checked (`super::open::open_log`), read from
    /// offset 0.
    pub(super) fn new(file: File, meta: &Metadata, max_line: usize) -> Generation {
        Generation {
            file,
            id: (meta.dev(), meta.ino()),
            offset: 0,
            lines: LineSplitter::new(max_line),
            watch: None,
            head: None,
        }
    }

    /// Resumes at a saved offset (the start of a line).
    pub(super) fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        self.offset = self.file.seek(SeekFrom::Start(offset))?;
        self.lines.clear();
        Ok(())
    }

    /// Where reading stands, as a restart would resume it: the offset of the
    /// first byte not yet delivered as part of a line.
    pub(super) fn position(&mut self) -> Position {
        if self.head.is_none() {
            self.head = head_hash(&self.file);
        }
        Position {
            dev: self.id.0,
            ino: self.id.1,
            head: self.head.unwrap_or(0),
            offset: self.offset.saturating_sub(self.lines.held() as u64),
        }
    }

    /// Whether this is the file a saved position was taken in.
    pub(super) fn is(&mut self, p: &Position) -> bool {
        if self.id != (p.dev, p.ino) {
            return false;
        }
        if self.head.is_none() {
            self.head = head_hash(&self.file);
        }
        // 0: the first line was not complete when the position was saved.
        p.head == 0 || self.head == Some(p.head)
    }

    /// Starts after what is already there. An unfinished last line is skipped
    /// too: its start was written before us, so it is not a new line.
    pub(super) fn seek_to_end(&mut self) -> io::Result<()> {
        self.offset = self.file.seek(SeekFrom::End(0))?;
        if self.offset > 0 {
            let mut last = [0u8; 1];
            self.file.seek(SeekFrom::Start(self.offset - 1))?;
            self.file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                self.lines.skip_to_next_line();
            }
        }
        Ok(())
    }

    /// Reads to the current end of the file, restarting at 0 when it shrank
    /// below our offset (copytruncate), handing out each line and, after
    /// each read, where a restart would resume. Errors are logged, not
    /// returned: a read error on a log must not stop the source, and the
    /// next wake-up tries again.
    pub(super) fn drain(&mut self, path: &Path, chunk: &mut [u8], on: &mut dyn FnMut(Drained<'_>)) {
        match self.file.metadata() {
            Ok(meta) if meta.len() < self.offset => {
                info!(file = %path.display(), "truncated (copytruncate?): reading from the start");
                // Its newline went into the copy, if anywhere: never to us.
                self.lines.flush(&mut |l| on(Drained::Line(l)));
                self.offset = 0;
                if let Err(e) = self.file.seek(SeekFrom::Start(0)) {
                    warn!(file = %path.display(), "cannot seek after truncation: {e}");
                    return;
                }
            }
            _ => {}
        }
        loop {
            match self.file.read(chunk) {
                Ok(0) => return,
                Ok(n) => {
                    self.offset += n as u64;
                    let Some(data) = chunk.get(..n) else { return };
                    let (mut gate, mut count) = (None, false);
                    on(Drained::Gate {
                        gate: &mut gate,
                        count: &mut count,
                    });
                    let pushed = match gate {
                        Some(g) => self
                            .lines
                            .push_gated(data, &*g, count, &mut |l| on(Drained::Line(l))),
                        None => self.lines.push(data, &mut |l| on(Drained::Line(l))),
                    };
                    if pushed.cut > 0 {
                        warn!(
                            file = %path.display(),
                            "line longer than max_line cut; the rest of it was skipped"
                        );
                    }
                    if pushed.passed > 0 {
                        on(Drained::Passed(pushed.passed));
                    }
                    on(Drained::Read {
                        at: self.position(),
                        more: n == chunk.len(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(file = %path.display(), "cannot read: {e}");
                    return;
                }
            }
        }
    }
}
