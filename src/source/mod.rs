//! Log sources: files (and globs of files), standard input, the syslog
//! receiver and the systemd journal. Each hands out text lines; the daemon
//! runs the same filters over all of them.
pub mod file;
pub mod glob;
pub mod journal;
pub mod stdin;
pub mod syslog;

use std::io;
use std::os::fd::RawFd;

use file::Stopper;

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
        // SAFETY: `fds` is a valid array of two pollfds for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
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
