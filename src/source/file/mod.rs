//! Follows a log file like `tail -F`, woken by inotify only (no sleep-poll).
//!
//! The file is known by its inode. Rotation by rename (logrotate's default) or
//! delete-and-create: the old file is drained to its end, its unfinished last
//! line delivered, and it is kept open and drained on every wake-up until the
//! next rotation, because writers often append to it for a moment before they
//! reopen. Then the new file is read from its start. copytruncate: a size below
//! our offset means truncation, and reading restarts at 0. Lines appended
//! between logrotate's copy and its truncate are lost to every reader; that is
//! inherent to copytruncate.

mod lines;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotify::{Inotify, WatchDescriptor, WatchMask};
use tracing::{info, warn};

pub use lines::LineSplitter;

/// Where reading starts in a file that already exists at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Only lines written from now on (the daemon's default: old lines were
    /// dealt with by whoever ran before).
    #[default]
    End,
    Beginning,
}

#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    pub start: StartAt,
    /// Longest line kept; longer ones are cut here with a warning.
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
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: the directory {} does not exist", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
}

/// Wakes a blocked [`FileFollower::follow`] from another thread (an eventfd
/// polled beside the inotify fd).
#[derive(Clone, Debug)]
pub struct Stopper {
    fd: Arc<OwnedFd>,
}

impl Stopper {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd returns a new fd or -1; we own it from here on.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created, valid fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Stopper { fd: Arc::new(fd) })
    }

    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// One open generation of the file.
struct Generation {
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
    lines: LineSplitter,
    watch: Option<WatchDescriptor>,
}

pub struct FileFollower {
    path: PathBuf,
    opts: FollowOptions,
    inotify: Inotify,
    current: Option<Generation>,
    /// The generation before the last rotation, still drained.
    retired: Option<Generation>,
    chunk: Vec<u8>,
}

const FILE_EVENTS: WatchMask = WatchMask::MODIFY
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::ATTRIB);
const DIR_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE);

impl FileFollower {
    /// Opens the file now (so nothing written after this call is missed) and
    /// watches its directory for it to appear or be replaced.
    pub fn new(path: impl Into<PathBuf>, opts: FollowOptions) -> Result<Self, FileSourceError> {
        let path = path.into();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(FileSourceError::NoDirectory { path, dir });
        }
        let inotify = Inotify::init().map_err(|e| io_err(&path, "inotify_init", e))?;
        inotify
            .watches()
            .add(&dir, DIR_EVENTS)
            .map_err(|e| io_err(&path, "watching its directory", e))?;
        let mut follower = FileFollower {
            path,
            opts,
            inotify,
            current: None,
            retired: None,
            chunk: vec![0; 128 * 1024],
        };
        match follower.open_current() {
            Ok(Some(mut g)) => {
                if opts.start == StartAt::End {
                    g.offset = g
                        .file
                        .seek(SeekFrom::End(0))
                        .map_err(|e| io_err(&follower.path, "seek", e))?;
                    if g.offset > 0 && last_byte(&mut g.file, g.offset) != Some(b'\n') {
                        g.lines.skip_to_next_line();
                    }
                }
                follower.current = Some(g);
            }
            Ok(None) => info!(file = %follower.path.display(), "waiting for the file to appear"),
            Err(e) => return Err(io_err(&follower.path, "open", e)),
        }
        Ok(follower)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks, calling `on_line` for each complete line, until `stop` fires.
    pub fn follow(
        &mut self,
        stop: &Stopper,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), FileSourceError> {
        let mut events = vec![0u8; 16 * 1024];
        loop {
            self.catch_up(&mut on_line);
            let mut fds = [
                libc::pollfd {
                    fd: self.inotify.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfds for the call's duration.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(FileSourceError::Io {
                    path: self.path.clone(),
                    what: "poll",
                    source: e,
                });
            }
            if fds[1].revents != 0 {
                // Deliver what was written up to the stop, then return.
                self.catch_up(&mut on_line);
                return Ok(());
            }
            // Drain the queue; what the events were does not matter, since
            // catch_up re-reads the state of the file system.
            loop {
                match self.inotify.read_events(&mut events) {
                    Ok(mut evs) => {
                        if evs.next().is_none() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        return Err(FileSourceError::Io {
                            path: self.path.clone(),
                            what: "reading inotify events",
                            source: e,
                        })
                    }
                }
            }
        }
    }

    /// Reads everything new: the retired file, the current one, and a new file
    /// at the path if it was replaced.
    fn catch_up(&mut self, on_line: &mut dyn FnMut(&str)) {
        if let Some(old) = self.retired.as_mut() {
            drain(&self.path, old, &mut self.chunk, on_line);
        }
        if let Some(cur) = self.current.as_mut() {
            drain(&self.path, cur, &mut self.chunk, on_line);
        }
        let on_disk = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let replaced = match (&self.current, on_disk) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(cur), Some(id)) => (cur.dev, cur.ino) != id,
        };
        if !replaced {
            return;
        }
        match self.open_current() {
            Ok(Some(mut new)) => {
                if let Some(mut old) = self.current.take() {
                    info!(file = %self.path.display(), "rotated: now reading the new file");
                    old.lines.flush(on_line);
                    if let Some(prev) = self.retired.take() {
                        self.unwatch(prev);
                    }
                    self.retired = Some(old);
                }
                drain(&self.path, &mut new, &mut self.chunk, on_line);
                self.current = Some(new);
            }
            Ok(None) => {}
            Err(e) => warn!(file = %self.path.display(), "cannot open: {e}"),
        }
    }

    fn open_current(&mut self) -> io::Result<Option<Generation>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let watch = self.inotify.watches().add(&self.path, FILE_EVENTS).ok();
        Ok(Some(Generation {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset: 0,
            lines: LineSplitter::new(self.opts.max_line),
            watch,
        }))
    }

    fn unwatch(&mut self, generation: Generation) {
        // The current file may share the inode watch (same inode re-linked):
        // only remove a watch nobody else uses.
        let shared =
            self.current.as_ref().and_then(|c| c.watch.as_ref()) == generation.watch.as_ref();
        if let (Some(wd), false) = (generation.watch, shared) {
            let _ = self.inotify.watches().remove(wd);
        }
    }
}

/// Reads one generation to its current end, handling truncation.
fn drain(path: &Path, g: &mut Generation, chunk: &mut [u8], on_line: &mut dyn FnMut(&str)) {
    if let Ok(meta) = g.file.metadata() {
        if meta.len() < g.offset {
            info!(file = %path.display(), "truncated (copytruncate?): reading from the start");
            g.lines.clear();
            g.offset = 0;
            if let Err(e) = g.file.seek(SeekFrom::Start(0)) {
                warn!(file = %path.display(), "seek after truncation: {e}");
                return;
            }
        }
    }
    loop {
        match g.file.read(chunk) {
            Ok(0) => return,
            Ok(n) => {
                g.offset += n as u64;
                let pushed = g.lines.push(&chunk[..n], on_line);
                if pushed.cut > 0 {
                    warn!(
                        file = %path.display(),
                        lines = pushed.cut,
                        "line longer than the limit: cut, the rest of it skipped"
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(file = %path.display(), "read: {e}");
                return;
            }
        }
    }
}

fn io_err(path: &Path, what: &'static str, source: io::Error) -> FileSourceError {
    FileSourceError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn last_byte(file: &mut File, len: u64) -> Option<u8> {
    let mut b = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).ok()?;
    file.read_exact(&mut b).ok()?;
    file.seek(SeekFrom::Start(len)).ok()?;
    Some(b[0])
}
