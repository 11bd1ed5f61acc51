//! Opening what a log path names, as root, without trusting what is there.
//!
//! Whoever can create a name in a log directory (a service writing its own
//! log, a user in group `adm`) decides what sits at the path, so before a
//! byte is read the opened file must be:
//!
//! - a regular file: a FIFO with no writer blocks `open` for reading
//!   forever (the jail would never start, and a reload or a stop naming it
//!   would hang), a device may do anything when opened or read, and a
//!   directory has no lines. The path is opened non-blocking, so a FIFO
//!   cannot hold us, and the type is checked on the descriptor, so what is
//!   checked is what is read.
//! - inside the directory that holds the path (or below it), once symlinks
//!   are resolved: a symlink `/var/log/x.log -> /etc/shadow` must not make
//!   the daemon read, and report lines of, a file that was never a log. The
//!   real place of the opened descriptor is what is compared, so swapping
//!   the symlink between the check and the read changes nothing. A log that
//!   really lives elsewhere is followed by naming its real path in the
//!   configuration: the configuration is trusted, a name in a log directory
//!   is not.
//!
//! Anything refused is treated like a missing file: the directory stays
//! watched, and a regular file that takes the name later is followed.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::generation::FileId;

/// What a log path held when it was opened.
pub(super) enum Checked {
    /// A regular file inside the log directory, opened for blocking reads.
    File(File, Metadata),
    /// Nothing there (yet).
    Missing,
    /// Something that must not be read: which inode and why (the warning's
    /// text), together what tells one refusal from the next.
    Refused { id: FileId, why: String },
}

/// Opens `path` for reading if it is a regular file whose real place is
/// inside `within` (the canonical directory of the configured path).
pub(super) fn open_log(path: &Path, within: &Path) -> io::Result<Checked> {
    // A first look by name, so a device or socket is not even opened (opening
    // one can have effects of its own; a socket cannot be opened at all).
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Ok(refused(&meta)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checked::Missing),
        Err(e) => return Err(e),
    }
    // The name may have been replaced since: the descriptor is what counts.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checked::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(refused(&meta));
    }
    set_blocking(&file)?;
    let real = real_path(&file, path)?;
    if !real.starts_with(within) {
        return Ok(Checked::Refused {
            id: (meta.dev(), meta.ino()),
            why: format!(
                "resolves to {}, outside its directory {}; name the real file in the configuration to follow it",
                real.display(),
                within.display()
            ),
        });
    }
    Ok(Checked::File(file, meta))
}

/// What a path holds that is not a regular file, in the words of the
/// refusal (`check` says the same of a log path).
pub fn not_regular(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_fifo() {
        "is a FIFO"
    } else if t.is_dir() {
        "is a directory"
    } else if t.is_char_device() {
        "is a character device"
    } else if t.is_block_device() {
        "is a block device"
    } else if t.is_socket() {
        "is a socket"
    } else {
        "is not a regular file"
    }
}

fn refused(meta: &Metadata) -> Checked {
    let what = not_regular(meta);
    Checked::Refused {
        id: (meta.dev(), meta.ino()),
        why: format!("{what}, not a regular file"),
    }
}

/// Non-blocking was only for `open`: a regular file never blocks a read, but
/// the flag is cleared so reads behave the same on every filesystem.
fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with no pointer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where the opened file really is: the kernel's name for the descriptor,
/// which no later change of the path can alter; resolving the path again is
/// the fallback without /proc.
fn real_path(file: &File, path: &Path) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
}
