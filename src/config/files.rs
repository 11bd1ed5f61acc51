//! What a loaded config names on disk. `Config::parse` reads a text and
//! never the disk; `Config::load` (run, reload) and `nftjail check` also
//! look at the files: the config file itself must be a regular file (a FIFO
//! would hold the daemon forever), and a log path that `run` would refuse
//! (its directory missing, a file it may not read) is refused here, with
//! its place in the config, before anything starts. So is one file listed
//! twice in a jail, by another spelling or through a symlink: its lines
//! would be counted twice and the jail would ban at half its maxretry.
//! Files are told apart by device and inode, as the readers know them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::sources::is_glob;
use super::{Checker, ConfigError};

/// How far a config's files are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Not at all: a text checked on its own (`Config::parse`).
    Ignore,
    /// What `run` and `reload` refuse: a log directory that is missing, a
    /// log file that cannot be read, one file twice in a jail.
    Run,
    /// `nftjail check`: also what `run` only warns about and then waits
    /// out: a FIFO, device or directory at a log path, or a symlink there
    /// leading out of its directory. Such a jail reads nothing until a
    /// regular file takes the name, which is worth an error before start.
    Check,
}

/// Reads the config file at `path`, refusing anything but a regular file
/// without blocking on it: opened non-blocking, so a FIFO cannot hold the
/// daemon (or a reload) forever, and checked on the descriptor, so what is
/// checked is what is read.
pub(super) fn read_config(path: &Path) -> Result<String, ConfigError> {
    let read_error = |error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
            what: crate::source::file::not_regular(&meta),
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(text)
}

/// The directory a log path (or glob) is read in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

impl Checker<'_> {
    /// Looks at one jail's log paths on disk, each with where it is written.
    pub(super) fn log_files(&mut self, key: &str, paths: &[(PathBuf, Range<usize>)]) {
        if self.files == Files::Ignore {
            return;
        }
        let mut seen: Vec<((u64, u64), &Path)> = Vec::new();
        for (path, span) in paths {
            let shown = path.display();
            let dir = dir_of(path);
            if !dir.is_dir() {
                self.problem(
                    span.clone(),
                    key,
                    format!(
                        "{shown}: its directory {} does not exist or is not a directory; create it or fix the path",
                        dir.display()
                    ),
                );
                continue;
            }
            if is_glob(path) {
                continue;
            }
            let meta = match std::fs::metadata(path) {
                Ok(m) => m,
                // Waited for: a service may create its log later.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.problem(span.clone(), key, format!("{shown}: cannot be read: {e}"));
                    continue;
                }
            };
            if !meta.is_file() {
                if self.files == Files::Check {
                    self.problem(
                        span.clone(),
                        key,
                        format!(
                            "{shown} {}, not a regular file: the jail would read nothing from it \
                             (the daemon warns and waits for a regular file to take the name)",
                            crate::source::file::not_regular(&meta)
                        ),
                    );
                }
                continue;
            }
            if let Err(e) = open_log(path) {
                self.problem(span.clone(), key, format!("{shown}: cannot be read: {e}"));
                continue;
            }
            if self.files == Files::Check {
                if let Some(outside) = leads_outside(path, dir) {
                    self.problem(
                        span.clone(),
                        key,
                        format!(
                            "{shown} resolves to {}, outside its directory: the daemon will not \
                             read it; name the real file instead",
                            outside.display()
                        ),
                    );
                    continue;
                }
            }
            let id = (meta.dev(), meta.ino());
            match seen.iter().find(|(seen_id, _)| *seen_id == id) {
                Some((_, first)) => {
                    let first = first.display();
                    self.problem(
                        span.clone(),
                        key,
                        format!(
                            "{shown} is the same file as {first} (inode {} on device {}): each of \
                             its lines would be counted twice, and the jail would ban at half its \
                             maxretry; list the file once",
                            id.1, id.0
                        ),
                    );
                }
                None => seen.push((id, path)),
            }
        }
    }
}

/// Opens a log file as its reader will, without blocking.
fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Where a symlink at `path` really leads, when that is outside `dir`.
fn leads_outside(path: &Path, dir: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let within = std::fs::canonicalize(dir).ok()?;
    (!real.starts_with(&within)).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(files: Files, text: &str, dir: &Path) -> Result<Config, String> {
        let origin = dir.join("t.toml");
        Config::parse_with(text, &origin, files).map_err(|e| e.to_string())
    }

    #[test]
    fn the_disk_is_looked_at_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[jail.j]\nfailregex = ['x <HOST>']\nlogpath = \"/no/such/dir/x.log\"\n";
        assert!(load(Files::Ignore, text, dir.path()).is_ok());
        let e = load(Files::Run, text, dir.path()).unwrap_err();
        assert!(
            e.contains("t.toml:3:11: jail.j.logpath: /no/such/dir/x.log: its directory /no/such/dir does not exist"),
            "{e}"
        );
    }

    #[test]
    fn one_file_twice_in_a_jail_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("mail.log"), "").unwrap();
        std::os::unix::fs::symlink("mail.log", dir.path().join("alias.log")).unwrap();
        let text = format!(
            "[jail.j]\nfailregex = ['x <HOST>']\nlogpath = [\"{d}/mail.log\", \"{d}/alias.log\"]\n\
             [jail.k]\nfailregex = ['x <HOST>']\nlogpath = \"{d}/mail.log\"\n"
        );
        let e = load(Files::Run, &text, dir.path()).unwrap_err();
        let col = format!("logpath = [\"{d}/mail.log\", ").chars().count() + 1;
        let want = format!(
            "t.toml:3:{col}: jail.j.logpath: {d}/alias.log is the same file as {d}/mail.log"
        );
        assert!(e.contains(&want), "{e}\nwanted: {want}");
        assert!(!e.contains("jail.k"), "another jail may read it: {e}");
        // The same spelling twice, too.
        let text = format!(
            "[jail.j]\nfailregex = ['x <HOST>']\nlogpath = [\"{d}/mail.log\", \"{d}/mail.log\"]\n"
        );
        let e = load(Files::Run, &text, dir.path()).unwrap_err();
        assert!(e.contains("is the same file as"), "{e}");
    }
}
