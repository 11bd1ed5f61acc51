//! The daemon's side of the control socket: accept, check the peer, read one
//! framed request at a time, answer, all within a time budget per connection.
//! What a request does is the [`Handler`]'s business; this file only keeps a
//! misbehaving client from hurting the daemon or the other clients.
//!
//! Everything here runs on the tokio runtime, apart from the log readers'
//! threads, so a flood of clients can slow other clients but never ingestion.

use std::future::Future;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

use super::peers::{Peer, Peers};
use super::protocol::{
    decode_request, encode, ErrorCode, ErrorReply, Request, Response, MAX_REQUEST,
};

/// Connections held at once. Past this, a newcomer pushes out the peer that
/// has waited longest without sending a request (see [`super::peers`]).
const MAX_CLIENTS: usize = 512;
/// A connection's whole life, from accept: reading its requests and writing
/// its answers must fit in it, however the peer paces its bytes, so no peer
/// keeps a slot by trickling.
pub const BUDGET: Duration = Duration::from_secs(10);
/// The time executing a request takes is the daemon's, not the peer's: an
/// answer ready after the budget still gets this long to be written.
const GRACE: Duration = Duration::from_secs(5);

/// Executes requests. Implemented by the daemon.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Response> + Send;
}

/// Who may talk to the daemon besides root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    pub group: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another nftjail daemon is already answering on {0}")]
    InUse(PathBuf),
    #[error(
        "cannot give the control socket {path} to socket_group (gid {gid}): the daemon is not \
         in that group; add it to the daemon's groups (SupplementaryGroups= in a drop-in: \
         systemctl edit nftjail), or make the socket's directory belong to it with the setgid bit"
    )]
    NotInGroup { path: PathBuf, gid: u32 },
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Creates the socket with its final permissions before anyone can connect:
/// mode 0600 (0660 with a group), owned by the daemon's user.
pub fn bind(path: &Path, access: Access) -> Result<UnixListener, BindError> {
    let err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        }
    }
    if path.exists() {
        // A socket file left by a daemon that died: nobody answers on it.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // The umask makes bind(2) create the socket already closed to others, so
    // there is no moment where it is open to everyone before the chmod.
    // SAFETY: umask has no memory effects; it is process-wide, and at start
    // no other thread of ours creates files.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(err)?;
    if let Some(gid) = access.group {
        give_to_group(path, gid)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    }
    Ok(listener)
}

/// The socket is born with the daemon's group, or its directory's when that
/// is setgid; only another group needs a chown, which takes membership of
/// that group (or CAP_CHOWN, which the shipped unit does not grant).
fn give_to_group(path: &Path, gid: u32) -> Result<(), BindError> {
    let err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).map_err(err)?.gid() == gid {
        return Ok(());
    }
    match std::os::unix::fs::chown(path, None, Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(BindError::NotInGroup {
            path: path.to_path_buf(),
            gid,
        }),
        other => other.map_err(err),
    }
}

/// Serves until `stop` turns true; then removes the socket file.
///
/// The accept loop never waits on a peer: each connection is its own task
/// with its own deadline, so a request is never queued behind idle peers.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    path: PathBuf,
    access: Access,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let peers = Peers::default();
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if out_of_descriptors(&e) && peers.push_out_oldest() => {
                    // The pushed-out peer's descriptor is freed as its task
                    // ends; the pause lets that happen first, so usually one
                    // peer goes for each descriptor needed.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                Err(e) => {
                    warn!("control socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let deadline = Instant::now() + BUDGET;
        let peer = peers.join();
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every slot is taken: make room. Only when every peer is busy
                // executing a request does this wait, for the first to finish.
                if !peers.push_out_oldest() {
                    debug!("control socket: every slot busy with a request");
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, access, &*handler, &peer, deadline).await {
                debug!("control client: {e}");
            }
            drop(peer);
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What a peer sent next.
enum Incoming {
    Request(Vec<u8>),
    TooLarge(usize),
    Closed,
}

async fn connection<H: Handler>(
    mut stream: UnixStream,
    access: Access,
    handler: &H,
    peer: &Peer,
    deadline: Instant,
) -> io::Result<()> {
    if !allowed(&stream, access) {
        warn!("control socket: refused a peer that is neither root nor in socket_group");
        let answer = error(
            ErrorCode::Denied,
            "permission denied: the control socket is for root (or the configured socket_group)",
        );
        return write_by(&mut stream, &answer, deadline).await;
    }
    loop {
        let pushed_out = peer.waiting();
        let incoming = tokio::select! {
            read = timeout_at(deadline, read_request(&mut stream)) => read,
            _ = pushed_out => {
                debug!("control client pushed out by a newer one");
                return Ok(());
            }
        };
        if !peer.busy() {
            return Ok(());
        }
        let body = match incoming {
            // The connection's budget is spent.
            Err(_) => return Ok(()),
            Ok(Incoming::Closed) => return Ok(()),
            Ok(Incoming::Request(body)) => body,
            Ok(Incoming::TooLarge(len)) => {
                let answer = error(
                    ErrorCode::BadRequest,
                    format!("request of {len} bytes is over the {MAX_REQUEST}-byte limit"),
                );
                return write_by(&mut stream, &answer, deadline).await;
            }
        };
        let answer = match decode_request(&body) {
            Ok(req) => handler.handle(req).await,
            Err(e) => Response::Error(e),
        };
        write_by(&mut stream, &answer, deadline.max(Instant::now() + GRACE)).await?;
    }
}

/// Reads one framed request; an I/O error ends the connection like a hang-up.
async fn read_request(stream: &mut UnixStream) -> Incoming {
    let len = match stream.read_u32().await {
        Ok(len) => len as usize,
        Err(_) => return Incoming::Closed,
    };
    if len > MAX_REQUEST {
        return Incoming::TooLarge(len);
    }
    let mut body = vec![0; len];
    match stream.read_exact(&mut body).await {
        Ok(_) => Incoming::Request(body),
        Err(_) => Incoming::Closed,
    }
}

/// Writes an answer, giving up at `deadline` (a peer that does not read its
/// answer must not keep the connection either).
async fn write_by(stream: &mut UnixStream, answer: &Response, deadline: Instant) -> io::Result<()> {
    timeout_at(deadline, write(stream, answer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the answer was not read in time"))?
}

async fn write(stream: &mut UnixStream, answer: &Response) -> io::Result<()> {
    let body = encode(answer);
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "answer too large"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

/// The socket's mode already keeps others out; checking the peer's
/// credentials as well means a mode changed by hand does not open the daemon.
fn allowed(stream: &UnixStream, access: Access) -> bool {
    let Ok(cred) = stream.peer_cred() else {
        return false;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() == 0 || cred.uid() == me {
        return true;
    }
    let Some(gid) = access.group else {
        return false;
    };
    if cred.gid() == gid {
        return true;
    }
    // Supplementary groups are not in SO_PEERCRED.
    if let Some(groups) = peer_groups(stream) {
        return groups.contains(&gid);
    }
    // Where SO_PEERGROUPS is missing, the kernel shows them in /proc, which
    // the shipped unit hides (ProtectProc=invisible): hence SO_PEERGROUPS first.
    cred.pid()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .is_some_and(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
        })
}

/// The peer's supplementary groups as the kernel took them at connect
/// (SO_PEERGROUPS, Linux 4.13); None where it is not available.
#[cfg(target_os = "linux")]
fn peer_groups(stream: &UnixStream) -> Option<Vec<libc::gid_t>> {
    use std::os::fd::AsRawFd;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let size = std::mem::size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(groups.len() * size).ok()?;
        // SAFETY: `groups` is a live buffer of `len` bytes for the call's duration.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(usize::try_from(len).ok()? / size);
            return Some(groups);
        }
        // ERANGE: `len` now says how much is needed.
        let needed = usize::try_from(len).ok()? / size;
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || needed <= groups.len()
        {
            return None;
        }
        groups.resize(needed, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn peer_groups(_: &UnixStream) -> Option<Vec<libc::gid_t>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SO_PEERGROUPS hands back the connecting process's supplementary
    /// groups: here, this test's own.
    #[tokio::test]
    async fn peer_groups_are_the_peers_supplementary_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut ours = vec![0 as libc::gid_t; 256];
        // SAFETY: `ours` is a live buffer of 256 gids.
        let n = unsafe { libc::getgroups(256, ours.as_mut_ptr()) };
        assert!(n >= 0, "{}", io::Error::last_os_error());
        ours.truncate(n as usize);
        let mut got = peer_groups(&a).expect("SO_PEERGROUPS on this kernel");
        ours.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, ours);
    }
}
