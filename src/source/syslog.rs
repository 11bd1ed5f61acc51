//! The syslog receiver: a unix datagram socket and/or a UDP socket on a
//! configured local address, taking RFC 3164 and RFC 5424 messages (what
//! rsyslog, syslog-ng and `logger` send).
//!
//! The parser is our own and small: a message is read far enough to find
//! its program name (for routing to jails), its pid, host and time, and is
//! then handed on as the line a syslog daemon would have written to a file
//! (`Mmm dd HH:MM:SS HOST PROGRAM[PID]: MESSAGE`), so the same filters read
//! files and the receiver. A datagram that is malformed or larger than
//! [`MAX_MESSAGE`] is counted and dropped, never fatal.
//!
//! UDP has no sender authentication: anyone who can reach the port can
//! claim any program and any address in the text. Datagrams are taken only
//! from the configured sender networks (loopback unless told otherwise);
//! the rest are counted as rejected. The unix socket, writable by root
//! only, is the safe transport.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

use super::file::Stopper;
use super::{Line, Origin, Sink};

/// Longest message taken, in bytes; rsyslog's default maxMessageSize is 8k.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Kernel receive buffer asked for each socket: a burst waits here while
/// the filters catch up, instead of being dropped (UDP) or blocking the
/// senders (unix socket).
const RCVBUF: libc::c_int = 8 * 1024 * 1024;

/// One message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    /// The tag (RFC 3164) or APP-NAME (RFC 5424): what jails route by.
    pub program: String,
    pub pid: Option<String>,
    pub host: Option<String>,
    /// The message's own time when it says it with a zone (RFC 5424, or an
    /// RFC 3339 stamp in RFC 3164 form); None for the classic
    /// `Mmm dd HH:MM:SS`, which the line's date reader reads.
    pub time: Option<SystemTime>,
    /// The classic timestamp as sent, when there was one.
    stamp: Option<String>,
    pub text: String,
}

impl SyslogMessage {
    /// The line a syslog daemon would write to a file for this message.
    pub fn line(&self, local_host: &str) -> String {
        let stamp = match (&self.stamp, self.time) {
            (Some(s), _) => s.clone(),
            (None, t) => classic_stamp(t.unwrap_or_else(SystemTime::now)),
        };
        let host = self.host.as_deref().unwrap_or(local_host);
        match &self.pid {
            Some(pid) => format!("{stamp} {host} {}[{pid}]: {}", self.program, self.text),
            None => format!("{stamp} {host} {}: {}", self.program, self.text),
        }
    }
}

/// `Nov 25 10:00:00` in the local zone.
fn classic_stamp(t: SystemTime) -> String {
    let zoned = jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::system());
    zoned.strftime("%b %e %H:%M:%S").to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no <PRI> at the start")]
    NoPri,
    #[error("no program name (tag)")]
    NoTag,
    #[error("RFC 5424 header: {0}")]
    Header(&'static str),
}

/// Reads one datagram (without a trailing newline or NUL, which some senders add).
pub fn parse(data: &[u8]) -> Result<SyslogMessage, Malformed> {
    let data = data
        .strip_suffix(b"\0")
        .unwrap_or(data)
        .strip_suffix(b"\n")
        .unwrap_or(data);
    let text = String::from_utf8_lossy(data);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let rest = text.strip_prefix('<').ok_or(Malformed::NoPri)?;
    let close = rest.find('>').ok_or(Malformed::NoPri)?;
    let pri = &rest[..close];
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::NoPri);
    }
    if pri.parse::<u16>().map_or(true, |p| p > 191) {
        return Err(Malformed::NoPri);
    }
    let rest = &rest[close + 1..];
    match rest.strip_prefix("1 ") {
        Some(after) => parse_5424(after),
        None => parse_3164(rest),
    }
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
fn parse_5424(s: &str) -> Result<SyslogMessage, Malformed> {
    let mut rest = s;
    let mut field = |what: &'static str| -> Result<&str, Malformed> {
        let (f, r) = rest.split_once(' ').ok_or(Malformed::Header(what))?;
        rest = r;
        if f.is_empty() {
            return Err(Malformed::Header(what));
        }
        Ok(f)
    };
    let stamp = field("no TIMESTAMP")?;
    let host = field("no HOSTNAME")?;
    let app = field("no APP-NAME")?;
    let procid = field("no PROCID")?;
    let _msgid = field("no MSGID")?;
    let time = match stamp {
        "-" => None,
        t => Some(
            t.parse::<jiff::Timestamp>()
                .ok()
                .and_then(|t| SystemTime::try_from(t).ok())
                .ok_or(Malformed::Header("TIMESTAMP is not RFC 3339"))?,
        ),
    };
    let msg = skip_structured_data(rest).ok_or(Malformed::Header("bad STRUCTURED-DATA"))?;
    // rsyslog keeps the space that followed the tag in MSG: a filter
    // expects one space after the header, so leading spaces go.
    // The BOM RFC 5424 puts before UTF-8 text may itself be followed by
    // the space a sender put after its header.
    let msg = msg.trim_start_matches(' ');
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    let msg = msg.trim_start_matches(' ');
    if app == "-" {
        return Err(Malformed::NoTag);
    }
    let nil = |v: &str| (v != "-").then(|| v.to_string());
    Ok(SyslogMessage {
        program: app.to_string(),
        pid: nil(procid),
        host: nil(host),
        time,
        stamp: None,
        text: msg.to_string(),
    })
}

/// What follows STRUCTURED-DATA: `-`, or `[id k="v" ...]` elements whose
/// values may hold escaped `\]` and `\"`.
fn skip_structured_data(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix('-') {
        return Some(r);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    if bytes.first() != Some(&b'[') {
        return None;
    }
    while bytes.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match bytes.get(i)? {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    s.get(i..)
}

/// `[TIMESTAMP ][HOSTNAME ]TAG[PID]: MSG`. The hostname is left out by
/// senders on the local socket (`logger`, glibc's syslog(3)).
fn parse_3164(s: &str) -> Result<SyslogMessage, Malformed> {
    let mut rest = s;
    let mut stamp = None;
    let mut time = None;
    if let Some(st) = classic_prefix(rest) {
        stamp = Some(st.to_string());
        rest = &rest[st.len()..];
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    } else if let Some((first, r)) = rest.split_once(' ') {
        // rsyslog's high-precision form: an RFC 3339 stamp.
        if let Some(t) = first
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok())
        {
            time = Some(t);
            rest = r;
        }
    }
    let (first, after_first) = rest.split_once(' ').unwrap_or((rest, ""));
    let (host, tagged) = if first.ends_with(':') || first.contains('[') {
        (None, rest)
    } else {
        (Some(first.to_string()), after_first)
    };
    let end = tagged.find([':', '[', ' ']).ok_or(Malformed::NoTag)?;
    let program = &tagged[..end];
    if program.is_empty() || program.len() > 128 {
        return Err(Malformed::NoTag);
    }
    let mut r = &tagged[end..];
    let mut pid = None;
    if let Some(p) = r.strip_prefix('[') {
        let close = p.find(']').ok_or(Malformed::NoTag)?;
        pid = Some(p[..close].to_string());
        r = &p[close + 1..];
    }
    let text = r.strip_prefix(':').ok_or(Malformed::NoTag)?;
    let text = text.trim_start_matches(' ');
    Ok(SyslogMessage {
        program: program.to_string(),
        pid,
        host,
        time,
        stamp,
        text: text.to_string(),
    })
}

/// `Mmm dd HH:MM:SS` (day space-padded) at the start of `s`.
fn classic_prefix(s: &str) -> Option<&str> {
    let st = s.get(..15)?;
    let b = st.as_bytes();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Compared as bytes: a sender's text may put a multi-byte character
    // across the month's end, where slicing the `str` would panic.
    let ok = months.iter().any(|m| b.starts_with(m.as_bytes()))
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && [7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    ok.then_some(st)
}

/// Counters of the receiver, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct SyslogCounts {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    /// Well-formed, but no jail reads its program.
    pub unrouted: AtomicU64,
    /// UDP datagrams from a sender outside the allowed networks: not
    /// counted as received, since nothing of them was read.
    pub rejected: AtomicU64,
    /// UDP datagrams the kernel dropped because our receive queue was full
    /// (`SO_RXQ_OVFL`): they never reached us, so this is the only trace of
    /// a flood outrunning the filters.
    pub dropped: AtomicU64,
}

impl SyslogCounts {
    /// received, malformed, oversized, unrouted, rejected, dropped.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            self.received.load(Ordering::Relaxed),
            self.malformed.load(Ordering::Relaxed),
            self.oversized.load(Ordering::Relaxed),
            self.unrouted.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        ]
    }
}

/// The senders taken over UDP when none are configured: the host itself.
pub fn loopback_senders() -> Vec<IpNet> {
    vec![
        IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
        IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("syslog socket {}: {what}: {source}", path.display())]
    Unix {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("syslog udp {addr}: {source}")]
    Udp {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

pub struct SyslogReceiver {
    unix: Option<(PathBuf, UnixDatagram)>,
    udp: Option<UdpSocket>,
    /// Who may send over UDP; a sender's IPv4-mapped address is compared
    /// as IPv4.
    udp_senders: Vec<IpNet>,
    pub counts: Arc<SyslogCounts>,
}

impl SyslogReceiver {
    /// Binds now, so a message sent once the daemon said "ready" is kept.
    /// A stale socket file left by a previous run is replaced; any other
    /// file at the path is refused. `udp_senders` empty means the loopback
    /// networks only, so a forgotten list never opens the port to everyone.
    pub fn bind(
        socket: Option<&Path>,
        udp: Option<SocketAddr>,
        udp_senders: &[IpNet],
    ) -> Result<Self, SyslogError> {
        let unix = match socket {
            None => None,
            Some(path) => {
                let err = |what, source| SyslogError::Unix {
                    path: path.to_path_buf(),
                    what,
                    source,
                };
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
                        .map_err(|e| err("cannot remove the old socket", e))?,
                    Ok(_) => {
                        return Err(err(
                            "refusing to replace it",
                            io::Error::new(io::ErrorKind::AlreadyExists, "not a socket"),
                        ))
                    }
                    Err(_) => {}
                }
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| err("cannot create its directory", e))?;
                }
                let s = UnixDatagram::bind(path).map_err(|e| err("cannot bind", e))?;
                // Root only, like the control socket: whoever can write here
                // can have addresses banned. rsyslog forwards as root.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err("cannot set its mode", e))?;
                s.set_nonblocking(true)
                    .map_err(|e| err("cannot make it non-blocking", e))?;
                raise_rcvbuf(s.as_raw_fd());
                Some((path.to_path_buf(), s))
            }
        };
        let udp = match udp {
            None => None,
            Some(addr) => {
                let err = |source| SyslogError::Udp { addr, source };
                let s = UdpSocket::bind(addr).map_err(err)?;
                s.set_nonblocking(true).map_err(err)?;
                raise_rcvbuf(s.as_raw_fd());
                // Only UDP: a unix datagram sender waits when our queue is
                // full, the kernel drops nothing on our side.
                set_int_opt(s.as_raw_fd(), libc::SO_RXQ_OVFL, 1).map_err(err)?;
                Some(s)
            }
        };
        let udp_senders = if udp_senders.is_empty() {
            loopback_senders()
        } else {
            udp_senders.to_vec()
        };
        Ok(SyslogReceiver {
            unix,
            udp,
            udp_senders,
            counts: Arc::new(SyslogCounts::default()),
        })
    }

    /// The UDP address actually bound (the port, when 0 was asked for).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Receives until `stop`, pushing each well-formed message into `sink`
    /// as the line a syslog daemon would write, routed by its program; the
    /// rest, and messages no route reads, are counted.
    pub fn run<S: Sink + ?Sized>(&mut self, stop: &Stopper, sink: &mut S) -> io::Result<()> {
        let host = local_hostname();
        let fds: Vec<RawFd> = self
            .unix
            .iter()
            .map(|(_, s)| s.as_raw_fd())
            .chain(self.udp.iter().map(|s| s.as_raw_fd()))
            .collect();
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        loop {
            let mut polls: Vec<libc::pollfd> = fds
                .iter()
                .chain(std::iter::once(&stop.raw()))
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            super::liveness::waiting();
            // SAFETY: `polls` is a valid array of pollfds for the call's duration.
            let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
            super::liveness::woke();
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let stopping = polls.last().is_some_and(|p| p.revents != 0);
            // Drain what is queued even when stopping: it was sent while we ran.
            let udp = self.udp.as_ref().map(|s| s.as_raw_fd());
            for &fd in &fds {
                self.drain(fd, Some(fd) == udp, &mut buf, &host, sink)?;
            }
            sink.caught_up();
            if stopping {
                return Ok(());
            }
        }
    }

    fn drain<S: Sink + ?Sized>(
        &self,
        fd: RawFd,
        udp: bool,
        buf: &mut [u8],
        host: &str,
        sink: &mut S,
    ) -> io::Result<()> {
        loop {
            let got = match recv_datagram(fd, buf) {
                Ok(got) => got,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    // An ICMP error from an earlier exchange: not ours to stop on.
                    io::ErrorKind::ConnectionRefused => continue,
                    _ => return Err(e),
                },
            };
            if let Some(total) = got.drops {
                // The kernel's count since the socket was made, as of this
                // datagram: the highest seen is the total.
                self.counts
                    .dropped
                    .fetch_max(u64::from(total), Ordering::Relaxed);
            }
            if udp && !self.sender_allowed(got.from) {
                let count = self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                // The first of each thousand, so a flood cannot flood our log.
                if count % 1000 == 0 {
                    let from = got.from.map_or_else(|| "?".into(), |a| a.to_string());
                    tracing::warn!(
                        rejected = count + 1,
                        "syslog: UDP datagram from {from} dropped: not in [syslog] udp_senders"
                    );
                }
                continue;
            }
            let n = got.len;
            self.counts.received.fetch_add(1, Ordering::Relaxed);
            if n > MAX_MESSAGE {
                self.counts.oversized.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match parse(&buf[..n]) {
                Ok(m) => {
                    let text = m.line(host);
                    let line = Line {
                        text: &text,
                        time: m.time,
                        origin: Origin::Program(&m.program),
                    };
                    if !sink.line(&line) {
                        self.counts.unrouted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let count = self.counts.malformed.fetch_add(1, Ordering::Relaxed);
                    // The first of each thousand, so a flood cannot flood our log.
                    if count % 1000 == 0 {
                        tracing::warn!(
                            malformed = count + 1,
                            "syslog: malformed message dropped: {e}"
                        );
                    }
                }
            }
        }
    }
}

impl SyslogReceiver {
    fn sender_allowed(&self, from: Option<IpAddr>) -> bool {
        from.is_some_and(|a| {
            let a = a.to_canonical();
            self.udp_senders.iter().any(|n| n.contains(&a))
        })
    }
}

/// One datagram as `recvmsg` returned it.
struct Received {
    /// Its real length, which may exceed the buffer (MSG_TRUNC).
    len: usize,
    /// The sender, for an IP socket.
    from: Option<IpAddr>,
    /// The socket's drop count when the kernel attached one (SO_RXQ_OVFL).
    drops: Option<u32>,
}

/// Receives one datagram with its sender and the kernel's drop count.
/// MSG_TRUNC: the datagram's real length comes back even when it did not
/// fit, so an oversized one is told from a full one.
fn recv_datagram(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr; the pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `name`, `iov` (over `buf`) and `control`, all
    // live and of the sizes given, for the call's duration.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut drops = None;
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk only within
    // msg_controllen, and a SO_RXQ_OVFL payload is one u32 (read unaligned).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SO_RXQ_OVFL
                && (*c).cmsg_len as usize >= libc::CMSG_LEN(4) as usize
            {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received {
        len: n as usize,
        from: sender(&name, msg.msg_namelen),
        drops,
    })
}

/// The IP address in a sockaddr recvmsg filled, if it is one.
fn sender(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<IpAddr> {
    let len = len as usize;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in, and the kernel wrote that many bytes.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes())))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says sockaddr_in6, and the kernel wrote that many bytes.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

fn set_int_opt(fd: RawFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        if let Some((path, _)) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Root may go past the rmem_max sysctl (SO_RCVBUFFORCE); others get what it allows.
fn raise_rcvbuf(fd: RawFd) {
    let size = RCVBUF;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: passes a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// This host's name, for messages that do not carry one.
pub fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SyslogMessage {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn rfc3164_local_and_remote() {
        let m = ok(
            "<38>Nov  5 10:00:01 sshd[123]: Failed password for root from 192.0.2.7 port 22 ssh2\n",
        );
        assert_eq!(m.program, "sshd");
        assert_eq!(m.pid.as_deref(), Some("123"));
        assert_eq!(m.host, None);
        assert_eq!(
            m.line("mx"),
            "Nov  5 10:00:01 mx sshd[123]: Failed password for root from 192.0.2.7 port 22 ssh2"
        );
        let m = ok("<22>Nov 25 10:00:01 mail postfix/smtpd[9]: warning: x");
        assert_eq!(m.program, "postfix/smtpd");
        assert_eq!(m.host.as_deref(), Some("mail"));
        assert_eq!(m.text, "warning: x");
        let m = ok("<13>2026-11-25T10:00:01.5+00:00 host app: hi");
        assert_eq!(m.program, "app");
        assert!(m.time.is_some());
        let m = ok("<13>Nov 25 10:00:01 host app: ");
        assert_eq!(m.text, "");
    }

    #[test]
    fn rfc5424() {
        let m = ok("<34>1 2026-11-25T10:00:01.003Z mx postfix/smtpd 42 - [a b=\"x\\]y\"][c] \u{feff}warning: hi");
        assert_eq!(m.program, "postfix/smtpd");
        assert_eq!(m.pid.as_deref(), Some("42"));
        assert_eq!(m.host.as_deref(), Some("mx"));
        assert_eq!(m.text, "warning: hi");
        assert!(m.time.is_some());
        // rsyslog's RSYSLOG_SyslogProtocol23Format keeps the tag's space.
        let m = ok("<13>1 2026-11-25T10:49:24.318659+00:00 vm sshd 5 - -  Failed password\n");
        assert_eq!(
            m.line("x"),
            format!(
                "{} vm sshd[5]: Failed password",
                classic_stamp(m.time.unwrap_or(SystemTime::UNIX_EPOCH))
            )
        );
        let m = ok("<34>1 - - sshd - - -");
        assert_eq!(m.text, "");
        assert_eq!(m.pid, None);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "no pri",
            "<>x",
            "<999>Nov 25 10:00:01 a b: c",
            "<13",
            "<13>1 2026-13-45T99:00:00Z h a - - - m",
            "<13>1 - h - - - - m",
            "<13>1 - h a - - [unclosed",
            "<13>just words without a tag",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} was taken");
        }
        // Invalid UTF-8 is decoded lossily, never refused.
        let m = parse(b"<13>app: caf\xe9").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.text, "caf\u{fffd}");
    }

    #[test]
    fn a_space_after_the_bom_is_not_kept_in_the_text() {
        // Found by the syslog fuzz target: the text began with the space
        // after the BOM, one more than filters expect after the header.
        let m =
            parse("<34>1 2026-11-25T10:00:01Z mx sshd 42 - - \u{feff} Failed password".as_bytes())
                .unwrap();
        assert_eq!(m.text, "Failed password");
        assert_eq!(m.program, "sshd");
    }

    #[test]
    fn a_character_across_the_month_end_is_no_classic_stamp() {
        // Found by the syslog fuzz target: a multi-byte character (here
        // the replacement for an invalid byte) ending past the month's
        // three bytes panicked the receiver's thread.
        // Refused as it has no tag where one belongs, as any other text
        // that is not a stamp there would be.
        assert_eq!(
            parse(b"<38>D\xa1c  4 03:22:32 mx1 app: hi"),
            Err(Malformed::NoTag)
        );
        assert_eq!(
            parse("<38>Ja\u{e9} 5 10:00:01 host app: x".as_bytes()),
            Err(Malformed::NoTag)
        );
    }
}

#[cfg(test)]
mod receiver_tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Keeps every line it is given.
    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Sink for Lines {
        fn line(&mut self, line: &Line<'_>) -> bool {
            self.0.push(line.text.to_string());
            true
        }
    }

    fn receiver(senders: &[&str]) -> SyslogReceiver {
        let nets: Vec<IpNet> = senders
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect();
        let at = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        SyslogReceiver::bind(None, Some(at), &nets).unwrap()
    }

    fn send_from(from: Ipv4Addr, to: SocketAddr, text: &str) {
        let s = UdpSocket::bind((from, 0)).unwrap();
        s.send_to(text.as_bytes(), to).unwrap();
    }

    /// Delivers what is queued now: a stopper already fired makes `run`
    /// drain once and return.
    fn drain(r: &mut SyslogReceiver) -> Vec<String> {
        let stop = Stopper::new().unwrap();
        stop.stop();
        let mut lines = Lines::default();
        r.run(&stop, &mut lines).unwrap();
        lines.0
    }

    #[test]
    fn syslog_udp_takes_only_allowed_senders() {
        let mut r = receiver(&["127.0.0.1/32"]);
        let to = r.udp_addr().unwrap();
        send_from(
            Ipv4Addr::new(127, 0, 0, 2),
            to,
            "<38>sshd[1]: from 8.8.8.8 forged",
        );
        send_from(Ipv4Addr::LOCALHOST, to, "<38>sshd[2]: from 192.0.2.7 real");
        let lines = drain(&mut r);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("sshd[2]: from 192.0.2.7 real"),
            "{lines:?}"
        );
        let [received, _, _, _, rejected, dropped] = r.counts.snapshot();
        assert_eq!((received, rejected, dropped), (1, 1, 0));
    }

    #[test]
    fn syslog_udp_senders_default_to_loopback() {
        let r = receiver(&[]);
        assert!(r.sender_allowed(Some("127.0.0.2".parse().unwrap())));
        assert!(r.sender_allowed(Some("::1".parse().unwrap())));
        assert!(r.sender_allowed(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!r.sender_allowed(Some("192.0.2.7".parse().unwrap())));
        assert!(!r.sender_allowed(None));
    }

    #[test]
    fn syslog_udp_counts_kernel_drops() {
        let mut r = receiver(&[]);
        let to = r.udp_addr().unwrap();
        let fd = r.udp.as_ref().unwrap().as_raw_fd();
        // The smallest queue the kernel allows, so a burst overflows it.
        set_int_opt(fd, libc::SO_RCVBUF, 1).unwrap();
        const SENT: u64 = 500;
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for i in 0..SENT {
            s.send_to(format!("<38>app[{i}]: x").as_bytes(), to)
                .unwrap();
        }
        drain(&mut r);
        // The kernel reports the count on the next datagram it queues.
        s.send_to(b"<38>app[0]: last", to).unwrap();
        drain(&mut r);
        let [received, _, _, _, rejected, dropped] = r.counts.snapshot();
        assert!(dropped > 0, "nothing dropped: {received} received");
        assert_eq!(rejected, 0);
        assert_eq!(received + dropped, SENT + 1);
    }
}
