//! The control protocol: one JSON object per frame, each frame a 4-byte
//! big-endian length then the bytes.
//!
//! Length framing rather than newline-delimited JSON so a reader knows how much
//! to accept before parsing anything: a peer announcing a frame over the limit
//! is answered and dropped without the daemon buffering it. Every request and
//! response carries the protocol version `v`, so a client newer or older than
//! the daemon gets a clear error instead of a misread answer.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to [`Request`] or [`Reply`].
pub const VERSION: u32 = 1;
/// Requests are small; anything larger is garbage or hostile.
pub const MAX_REQUEST: usize = 64 * 1024;
/// A `banned` listing of a million bans stays under this.
pub const MAX_RESPONSE: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Without a jail: the jail list; with one: its counters and bans.
    Status {
        #[serde(default)]
        jail: Option<String>,
    },
    /// A manual ban; `addr` is parsed by the daemon so it reports what is wrong.
    Ban {
        jail: String,
        addr: String,
        /// Ban length in seconds; the jail's bantime when absent.
        #[serde(default)]
        seconds: Option<u64>,
        /// Ban even an address the jail ignores (ignoreip, ignoreself).
        #[serde(default)]
        force: bool,
        /// Without timeout, kept across restarts until an unban (`seconds` unused).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        permanent: bool,
    },
    /// `jail` None: every jail; `addr` None: every address.
    Unban {
        #[serde(default)]
        jail: Option<String>,
        #[serde(default)]
        addr: Option<String>,
    },
    /// Active bans, all or of one address.
    Banned {
        #[serde(default)]
        addr: Option<String>,
    },
    Reload,
    Version,
    /// Lift every ban of the jails no longer configured (kept by a reload
    /// until they expire).
    UnbanGone,
}

/// What travels on the wire in each direction: the version beside the body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u32,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    Error(ErrorReply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

/// Kinds of failure a script can branch on; each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not framed, not JSON, not a known command, or too large.
    BadRequest,
    /// The client speaks another protocol version.
    Version,
    UnknownJail,
    BadAddress,
    /// The address is one the jail never bans (ignoreip/ignoreself) and `force` was not given.
    Refused,
    /// The new config has errors; the running one stays.
    Config,
    /// The kernel or the daemon could not do it.
    Failed,
    /// The peer is neither root nor in the configured socket_group.
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Jails {
        jails: Vec<String>,
        /// Jails no longer configured whose bans run until they expire.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gone: Vec<GoneJail>,
        /// Why the state store does not keep what happens (None: it does):
        /// bans go on, but would not survive a reboot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        degraded: Option<String>,
        /// Farm mode's link (None: farm mode is off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        farm: Option<Box<FarmStatus>>,
    },
    JailStatus(Box<JailStatus>),
    Banned {
        bans: Vec<BanInfo>,
    },
    /// A manual ban: `outcome` is "added", "extended" or "unchanged".
    Ban {
        jail: String,
        addr: String,
        seconds: u64,
        outcome: String,
        /// Without timeout (`seconds` is 0).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        permanent: bool,
    },
    Unbanned {
        bans: Vec<BanInfo>,
    },
    Reloaded {
        jails: Vec<String>,
        added: Vec<String>,
        removed: Vec<String>,
        /// Removed jails whose bans are kept until they expire.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<GoneJail>,
    },
    Version {
        version: String,
    },
}

/// fail2ban-client's `status JAIL` figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailStatus {
    pub jail: String,
    pub currently_failed: u64,
    pub total_failed: u64,
    pub files: Vec<String>,
    pub currently_banned: u64,
    pub total_banned: u64,
    pub banned: Vec<String>,
    /// No longer configured: only its bans remain, until they expire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
    /// Those of `banned` someone else added to the jail's sets by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<String>,
    /// Accounts under attack now (the jail's account rule): their owners
    /// may want a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// How many of `banned` have no timeout (blocklist, `ban --permanent`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub permanent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Farm mode, as `status` shows it: what the link to Redis last knew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmStatus {
    /// The Redis URL, password hidden.
    pub redis: String,
    pub node: String,
    pub connected: bool,
    /// Why Redis cannot be used, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nodes seen, with their last heartbeat.
    pub nodes: Vec<FarmNode>,
    /// Bans and unbans taken from the farm and sent to it since start.
    pub received: u64,
    pub sent: u64,
    /// Records read from the farm and refused (malformed, or naming an
    /// address this node never bans).
    pub refused: u64,
    /// Records waiting for Redis.
    pub queued: u64,
    /// Records dropped because the queue was full.
    pub dropped: u64,
    pub shared_counting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmNode {
    pub node: String,
    pub seen_secs_ago: u64,
}

/// A jail no longer configured and how many of its bans still run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoneJail {
    pub jail: String,
    pub bans: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub jail: String,
    pub addr: String,
    /// Seconds left; None for a ban without timeout.
    pub remaining: Option<u64>,
    /// Added to the jail's set by someone else, not banned by nftjail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed")]
    Closed,
}

/// Reads one frame; `Closed` on a clean end of stream between frames.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        other => other?,
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)?;
    w.flush()
}

/// Encodes a message with its version.
pub fn encode<T: Serialize>(body: T) -> Vec<u8> {
    // Serializing our own plain structs cannot fail; an empty object is a
    // safe answer should it ever.
    serde_json::to_vec(&Envelope { v: VERSION, body }).unwrap_or_else(|_| b"{}".to_vec())
}

/// Decodes a request, checking the version first so a newer client learns
/// that rather than "unknown field".
pub fn decode_request(bytes: &[u8]) -> Result<Request, ErrorReply> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ErrorReply {
        code: ErrorCode::BadRequest,
        message: format!("not a JSON request: {e}"),
    })?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(ErrorReply {
                code: ErrorCode::Version,
                message: format!("protocol version {v} is not supported (daemon speaks {VERSION})"),
            })
        }
        None => {
            return Err(ErrorReply {
                code: ErrorCode::BadRequest,
                message: "request has no protocol version \"v\"".into(),
            })
        }
    }
    let mut value = value;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("v");
    }
    serde_json::from_value(value).map_err(|e| ErrorReply {
        code: ErrorCode::BadRequest,
        message: format!("bad request: {e}"),
    })
}

pub fn decode_response(bytes: &[u8]) -> Result<Response, String> {
    let env: Envelope<Response> = serde_json::from_slice(bytes)
        .map_err(|e| format!("malformed answer from the daemon: {e}"))?;
    if env.v != VERSION {
        return Err(format!(
            "the daemon speaks protocol version {}, this client {VERSION}",
            env.v
        ));
    }
    Ok(env.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_version() {
        for req in [
            Request::Status { jail: None },
            Request::Status {
                jail: Some("sshd".into()),
            },
            Request::Ban {
                jail: "sshd".into(),
                addr: "203.0.113.9".into(),
                seconds: Some(60),
                force: false,
                permanent: false,
            },
            Request::Ban {
                jail: "sshd".into(),
                addr: "198.51.100.0/24".into(),
                seconds: None,
                force: false,
                permanent: true,
            },
            Request::Unban {
                jail: None,
                addr: None,
            },
            Request::Reload,
        ] {
            let bytes = encode(&req);
            assert!(String::from_utf8_lossy(&bytes).contains("\"v\":1"));
            assert_eq!(decode_request(&bytes).unwrap(), req);
        }
    }

    #[test]
    fn garbage_and_other_versions_are_told_apart() {
        assert_eq!(
            decode_request(b"\x00\xffjunk").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            decode_request(br#"{"cmd":"status"}"#).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            decode_request(br#"{"v":2,"cmd":"status"}"#)
                .unwrap_err()
                .code,
            ErrorCode::Version
        );
        assert_eq!(
            decode_request(br#"{"v":1,"cmd":"rm -rf"}"#)
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn frames_are_length_prefixed_and_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 5]);
        assert_eq!(read_frame(&mut &buf[..], 16).unwrap(), b"hello");
        assert!(matches!(
            read_frame(&mut &buf[..], 4),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        ));
        assert!(matches!(
            read_frame(&mut &b""[..], 4),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::Ok(Reply::Jails {
            jails: vec!["a".into()],
            gone: Vec::new(),
            degraded: None,
            farm: None,
        });
        assert_eq!(decode_response(&encode(&r)).unwrap(), r);
        let r = Response::Ok(Reply::Jails {
            jails: vec!["a".into()],
            gone: vec![GoneJail {
                jail: "b".into(),
                bans: 2,
            }],
            degraded: Some("the store refuses writes".into()),
            farm: Some(Box::new(FarmStatus {
                redis: "redis://10.0.0.5:6379".into(),
                node: "mx1".into(),
                connected: false,
                error: Some("connection refused".into()),
                nodes: vec![FarmNode {
                    node: "mx2".into(),
                    seen_secs_ago: 3,
                }],
                received: 1,
                sent: 2,
                refused: 0,
                queued: 5,
                dropped: 0,
                shared_counting: true,
            })),
        });
        assert_eq!(decode_response(&encode(&r)).unwrap(), r);
        let e = Response::Error(ErrorReply {
            code: ErrorCode::UnknownJail,
            message: "no jail x".into(),
        });
        assert_eq!(decode_response(&encode(&e)).unwrap(), e);
    }
}
