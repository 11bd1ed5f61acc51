//! The CLI's side of the control socket: one blocking request, one answer.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{
    decode_response, encode, read_frame, write_frame, ErrorCode, FrameError, Reply, Request,
    Response, MAX_RESPONSE,
};

/// How long the CLI waits for the daemon; a reload of a big config is the
/// slowest answer and takes well under this.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the daemon is not running (no socket at {0}); start it with `systemctl start nftjail` or `nftjail run`")]
    NotRunning(String),
    #[error(
        "permission denied on {0}: the control socket is for root (or the configured socket_group)"
    )]
    PermissionDenied(String),
    #[error("talking to the daemon: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("{message}")]
    Daemon { code: ErrorCode, message: String },
}

impl ClientError {
    /// Distinct exit codes, so scripts can tell "not running" from "no such
    /// jail" without parsing messages. 1 is any other failure, 2 bad usage.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning(_) => 3,
            ClientError::PermissionDenied(_) => 4,
            ClientError::Daemon { code, .. } => match code {
                ErrorCode::Denied => 4,
                ErrorCode::UnknownJail => 5,
                ErrorCode::BadAddress => 6,
                ErrorCode::Refused => 7,
                ErrorCode::Config => 8,
                ErrorCode::BadRequest | ErrorCode::Version => 9,
                ErrorCode::Failed => 1,
            },
            ClientError::Io(_) | ClientError::Protocol(_) => 1,
        }
    }
}

/// Sends `req` to the daemon at `socket` and returns its reply.
pub fn request(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let shown = socket.display().to_string();
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(shown.clone())
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(shown.clone()),
        _ => ClientError::Io(e),
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    match write_frame(&mut stream, &encode(req)) {
        // The daemon may answer (a refusal) and close before reading the
        // request; its answer is still waiting in the socket.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        other => other?,
    }
    let bytes = match read_frame(&mut stream, MAX_RESPONSE) {
        Ok(b) => b,
        Err(FrameError::Io(e)) => return Err(ClientError::Io(e)),
        Err(FrameError::Closed) => {
            return Err(ClientError::Protocol(
                "the daemon closed the connection without answering".into(),
            ))
        }
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    };
    match decode_response(&bytes).map_err(ClientError::Protocol)? {
        Response::Ok(reply) => Ok(reply),
        Response::Error(e) => Err(ClientError::Daemon {
            code: e.code,
            message: e.message,
        }),
    }
}
