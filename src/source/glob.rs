//! `logpath` globs (`/var/log/apache2/*error.log`): the directory is watched
//! with inotify, and every file whose name matches gets its own
//! [`FileFollower`] (own position, own rotation handling). A file that
//! appears later is read from its start (all of it is new); a file whose name
//! goes away is drained and dropped.
//!
//! Each file's read position is kept under its own path, as a single file's
//! is, and the glob records that it was followed: at the next start a file
//! read before resumes where it stopped, and one that appeared while the
//! daemon was stopped is read from its start.
//!
//! Only the file name may hold the glob: the directory is what is watched.
//! Only regular files match (a FIFO, device or directory whose name matches
//! is passed over: opening one could block or read what is no log), and a
//! matching symlink is read only if it leads to a file inside the directory,
//! as for a single path (see [`FileFollower`]).
//! A name that appears holding a file we already follow under another name
//! (`a.log` renamed to `b.log`, both matching) is read from its end, so no
//! line is counted twice; a line written in the instant between the old
//! name's follower being drained and the new name's being opened is missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotify::{Inotify, WatchMask};
use tracing::{error, info, warn};

use super::file::{FileFollower, FileSourceError, FollowOptions, Position, StartAt, Stopper};
use super::{wait_readable, Sink};
use crate::message::{ReadAt, ReadMark};

/// A file's reader thread and what stops it.
type Following = (Stopper, std::thread::JoinHandle<()>);

/// Runs `follower` on a thread of its own until its stopper fires.
pub fn spawn_follower<S: Sink + Send + 'static>(
    mut follower: FileFollower,
    mut sink: S,
) -> io::Result<Following> {
    let stopper = Stopper::new()?;
    let stop = stopper.clone();
    let path = follower.path().to_path_buf();
    let thread = std::thread::Builder::new()
        .name(format!("source:{}", path.display()))
        .spawn(move || {
            if let Err(e) = follower.follow(&stop, &mut sink) {
                error!(file = %path.display(), "log source stopped: {e}");
            }
        })?;
    Ok((stopper, thread))
}

type FileId = (u64, u64);

const DIR_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);

pub struct GlobWatch {
    glob: PathBuf,
    dir: PathBuf,
    pattern: glob::Pattern,
    opts: FollowOptions,
    inotify: Inotify,
    /// Followers opened at start, handed to the caller when `run` begins.
    initial: Vec<(PathBuf, FileId, FileFollower)>,
}

impl GlobWatch {
    /// Watches the directory and opens the files that match now, at their
    /// end (what is there was dealt with before us), before returning: a line
    /// written after this call is never missed.
    pub fn new(glob: PathBuf, opts: FollowOptions) -> Result<Self, FileSourceError> {
        Self::resuming(glob, opts, &BTreeMap::new())
    }

    /// Like [`GlobWatch::new`], but where a previous run followed the glob
    /// (`saved`: its read positions by path, the glob's own entry among
    /// them): a file it read resumes where it stopped, and a file it did
    /// not know was written while we were stopped, and is read from its
    /// start.
    pub fn resuming(
        glob: PathBuf,
        opts: FollowOptions,
        saved: &BTreeMap<PathBuf, Position>,
    ) -> Result<Self, FileSourceError> {
        let err = |what, source| FileSourceError::Io {
            path: glob.clone(),
            what,
            source,
        };
        let dir = match glob.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(FileSourceError::NoDirectory { path: glob, dir });
        }
        let name = glob
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pattern = glob::Pattern::new(&name)
            .map_err(|e| err("bad glob", io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let inotify = Inotify::init().map_err(|e| err("inotify_init", e))?;
        inotify
            .watches()
            .add(&dir, DIR_EVENTS)
            .map_err(|e| err("cannot watch its directory", e))?;
        let mut watch = GlobWatch {
            glob,
            dir,
            pattern,
            opts,
            inotify,
            initial: Vec::new(),
        };
        let followed_before = saved.contains_key(&watch.glob);
        // A file read before under another name (rotated to a name that
        // matches too) is finished by that name's follower.
        let read_before: HashSet<FileId> = saved.values().map(|p| (p.dev, p.ino)).collect();
        for (path, id) in watch.scan() {
            let start = match saved.get(&path) {
                Some(p) => StartAt::Resume(*p),
                None if followed_before && !read_before.contains(&id) => StartAt::Beginning,
                None => opts.start,
            };
            let f = FileFollower::new(path.clone(), FollowOptions { start, ..opts })?;
            watch.initial.push((path, id, f));
        }
        Ok(watch)
    }

    pub fn glob(&self) -> &Path {
        &self.glob
    }

    /// Regular files in the directory whose names match, with their inodes.
    fn scan(&self) -> BTreeMap<PathBuf, FileId> {
        self.scan_all().0
    }

    /// The matching files, and the inodes of every file in the directory.
    fn scan_all(&self) -> (BTreeMap<PathBuf, FileId>, HashSet<FileId>) {
        let mut matching = BTreeMap::new();
        let mut all = HashSet::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                warn!(glob = %self.glob.display(), "cannot list its directory: {e}");
                return (matching, all);
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Through symlinks, as a follower opens them.
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            let id = (m.dev(), m.ino());
            all.insert(id);
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| self.pattern.matches(n)) {
                matching.insert(path, id);
            }
        }
        (matching, all)
    }

    /// Follows the matching files until `stop`, each on a thread of its own
    /// pushing into the sink `sink_for` makes for its path. A follower whose
    /// file is gone, and every follower at the end, is stopped and joined
    /// (it drains its file first), so nothing it read is lost.
    ///
    /// First the glob itself is marked as read (a position of its own,
    /// naming no file), so the next start knows that a file it finds
    /// without a position is new.
    pub fn run<S: Sink + Send + 'static>(
        &mut self,
        stop: &Stopper,
        mut sink_for: impl FnMut(&Path) -> S,
    ) -> io::Result<()> {
        sink_for(&self.glob).read_to(ReadMark {
            source: self.glob.to_string_lossy().into(),
            at: ReadAt::File(Position::default()),
        });
        let mut start = |path: &Path, follower: FileFollower| {
            let sink = sink_for(path);
            match spawn_follower(follower, sink) {
                Ok(t) => Some(t),
                Err(e) => {
                    error!(file = %path.display(), "cannot follow: {e}");
                    None
                }
            }
        };
        let end = |_: &Path, (stopper, thread): Following| {
            stopper.stop();
            if thread.join().is_err() {
                error!("a log file reader panicked");
            }
        };
        self.follow_all(stop, &mut start, end)
    }

    fn follow_all<T>(
        &mut self,
        stop: &Stopper,
        mut start: impl FnMut(&Path, FileFollower) -> Option<T>,
        mut end: impl FnMut(&Path, T),
    ) -> io::Result<()> {
        let mut running: BTreeMap<PathBuf, (FileId, T)> = BTreeMap::new();
        for (path, id, f) in std::mem::take(&mut self.initial) {
            if let Some(t) = start(&path, f) {
                running.insert(path, (id, t));
            }
        }
        let mut events = vec![0u8; 16 * 1024];
        let result = loop {
            match wait_readable(self.inotify.as_raw_fd(), stop) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            // Which events came does not matter: the directory is listed again.
            loop {
                match self.inotify.read_events(&mut events) {
                    Ok(ev) => {
                        if ev.count() == 0 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let (now, all) = self.scan_all();
            let matched_ids: HashSet<FileId> = now.values().copied().collect();
            let followed: HashMap<FileId, &PathBuf> =
                running.iter().map(|(p, (id, _))| (*id, p)).collect();
            let mut new = Vec::new();
            for (path, id) in &now {
                if running.contains_key(path) {
                    continue;
                }
                // Renamed from a name we follow: its lines were read there.
                let start_at = if followed.contains_key(id) {
                    StartAt::End
                } else {
                    StartAt::Beginning
                };
                new.push((path.clone(), *id, start_at));
            }
            // A name gone while its file is still in the directory under a
            // name we do not read is a rotation in progress (`x.log` ->
            // `x.log.1`): its follower keeps draining the old file and takes
            // the new one when it comes. Gone for good (deleted, moved
            // out), or now read under another matching name: dropped.
            let gone: Vec<PathBuf> = running
                .iter()
                .filter(|(p, (id, _))| {
                    !now.contains_key(*p) && (!all.contains(id) || matched_ids.contains(id))
                })
                .map(|(p, _)| p.clone())
                .collect();
            for path in gone {
                if let Some((_, t)) = running.remove(&path) {
                    info!(file = %path.display(), glob = %self.glob.display(), "gone: no longer followed");
                    end(&path, t);
                }
            }
            for (path, id, start_at) in new {
                let opts = FollowOptions {
                    start: start_at,
                    ..self.opts
                };
                match FileFollower::new(path.clone(), opts) {
                    Ok(f) => {
                        info!(file = %path.display(), glob = %self.glob.display(), "new file: following it");
                        if let Some(t) = start(&path, f) {
                            running.insert(path, (id, t));
                        }
                    }
                    Err(e) => warn!("{e}"),
                }
            }
            // A name that now holds another inode (rotation in place) is
            // its follower's business; remember the inode it holds now.
            for (path, (id, _)) in running.iter_mut() {
                if let Some(now_id) = now.get(path) {
                    *id = *now_id;
                }
            }
        };
        for (path, (_, t)) in running {
            end(&path, t);
        }
        result
    }
}
