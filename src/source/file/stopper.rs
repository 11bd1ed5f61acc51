//! The cancellation signal of a file source: an eventfd that `follow` polls
//! beside its inotify fd, so stopping wakes it at once without any periodic
//! wake-up to check a flag.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Cheap, cloneable handle; [`Stopper::stop`] makes every running (and every
/// later) [`super::FileFollower::follow`] on it return promptly. One stopper is
/// shared by all sources, like one cancellation token for the whole daemon.
#[derive(Clone, Debug)]
pub struct Stopper {
    fd: Arc<OwnedFd>,
}

impl Stopper {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created, valid fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Stopper { fd: Arc::new(fd) })
    }

    /// Level-triggered and permanent: the eventfd stays readable, so every
    /// follower sees it, however many there are and whenever they poll.
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd we own. It can only
        // fail when the counter is about to overflow, i.e. already stopped.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
