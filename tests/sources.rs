#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The daemon's sources with the real binary and the dry-run backend (bans
//! show in its log): `run --stdin`, `logpath` globs (a file created after
//! start, rotation inside the glob), and the syslog receiver fed by the real
//! `logger` over its unix socket and UDP, in both RFC formats, with
//! malformed and oversized datagrams, and a burst of 100k messages.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use nftjail::control::client::request;
use nftjail::control::protocol::{Reply, Request};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const WAIT: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let text = format!(
        "[daemon]\nbackend = \"log\"\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [defaults]\nignoreself = false\n{body}",
        d = dir.display()
    );
    let path = dir.join("nftjail.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, body: &str) -> Daemon {
    let config = write_config(dir, body);
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(config);
    let d = Daemon::spawn(cmd);
    d.wait_for("ready:", WAIT);
    d
}

fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

fn tool(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run `cargo xtask deps`"
    );
}

#[test]
fn stdin_lines_ban_including_crlf_and_invalid_utf8() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.log"), "").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[jail.j]\nfailregex = ['auth failure from <HOST>']\nlogpath = \"{}/empty.log\"\nmaxretry = 2\n",
            dir.path().display()
        ),
    );
    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--stdin")
        .arg("j")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(
                b"x auth failure from 192.0.2.10\r\n\
                  \xff\xfe bad bytes auth failure from 192.0.2.10\n\
                  x auth failure from 192.0.2.11\n\
                  no newline at the end: auth failure from 192.0.2.12\n\
                  last one auth failure from 192.0.2.12",
            )
            .unwrap();
    }
    // End of input stops the daemon after every line was counted.
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("ban: jail=j addr=192.0.2.10 failures=2"),
        "{log}"
    );
    assert!(
        log.contains("ban: jail=j addr=192.0.2.12 failures=2"),
        "{log}"
    );
    assert!(!log.contains("addr=192.0.2.11"), "{log}");
    assert!(log.contains("standard input ended"), "{log}");
}

#[test]
fn stdin_names_an_unknown_jail() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[jail.j]\nfailregex = ['from <HOST>']\nlogpath = \"/dev/null\"\n",
    );
    let out = Command::new(BIN)
        .args(["run", "--stdin", "nope", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--stdin nope: no such enabled jail"), "{err}");
}

#[test]
fn glob_follows_new_files_and_rotation_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Already there at start: its old lines are not counted.
    append(
        &logs.join("a-error.log"),
        b"fail from 198.51.100.1\nfail from 198.51.100.1\n",
    );
    // Not matched by the glob.
    append(&logs.join("a-access.log"), b"");
    let mut d = start(
        dir.path(),
        &format!(
            "[jail.g]\nfailregex = ['fail from <HOST>$']\nlogpath = \"{}/*error.log\"\nmaxretry = 2\n",
            logs.display()
        ),
    );
    append(&logs.join("a-error.log"), b"fail from 198.51.100.2\n");
    append(&logs.join("a-error.log"), b"fail from 198.51.100.2\n");
    d.wait_for("ban: jail=g addr=198.51.100.2 ", WAIT);

    // Created after start: read from its first line.
    let b = logs.join("b-error.log");
    append(&b, b"fail from 198.51.100.3\nfail from 198.51.100.3\n");
    d.wait_for("ban: jail=g addr=198.51.100.3 ", WAIT);

    // A file whose name does not match is not read.
    append(
        &logs.join("a-access.log"),
        b"fail from 198.51.100.9\nfail from 198.51.100.9\n",
    );

    // Rotation inside the glob: b-error.log moves to b-error.log.1 (no
    // longer matching); the writer appends once more to it before
    // reopening, then writes the new b-error.log. Each file keeps its own
    // position: one failure in each makes two.
    std::fs::rename(&b, logs.join("b-error.log.1")).unwrap();
    append(&logs.join("b-error.log.1"), b"fail from 198.51.100.4\n");
    append(&b, b"fail from 198.51.100.4\n");
    d.wait_for("ban: jail=g addr=198.51.100.4 failures=2", WAIT);

    // A renamed file that still matches is not read twice: c-error.log ->
    // d-error.log with 100.5 once in it, then one more line in d-error.log.
    let c = logs.join("c-error.log");
    append(&c, b"fail from 198.51.100.5\n");
    d.wait_for("new file: following it", WAIT);
    std::fs::rename(&c, logs.join("d-error.log")).unwrap();
    d.wait_for("gone: no longer followed", WAIT);
    d.wait_for(
        &format!("following it file={}", logs.join("d-error.log").display()),
        WAIT,
    );
    // One more: if the rename had made it read again, 100.5 would be banned
    // by its first line alone.
    append(&logs.join("d-error.log"), b"fail from 198.51.100.6\n");
    append(&logs.join("d-error.log"), b"fail from 198.51.100.6\n");
    d.wait_for("ban: jail=g addr=198.51.100.6 ", WAIT);

    // A deleted file is dropped.
    std::fs::remove_file(logs.join("a-error.log")).unwrap();
    d.wait_for(
        &format!("file={}", logs.join("a-error.log").display()),
        WAIT,
    );
    d.stop();
    let log = d.log();
    assert!(!log.contains("addr=198.51.100.1 "), "{log}");
    assert!(!log.contains("addr=198.51.100.9 "), "{log}");
    assert!(!log.contains("addr=198.51.100.5 "), "{log}");
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn logger(args: &[&str], input: Option<&[u8]>) {
    tool("/usr/bin/logger");
    let mut cmd = Command::new("logger");
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = input {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn syslog_body(dir: &Path, port: u16, maxretry: u32) -> String {
    format!(
        "[syslog]\nsocket = \"{d}/syslog.sock\"\nudp = \"127.0.0.1:{port}\"\n\
         [jail.ssh]\nfailregex = ['sshd\\[\\d+\\]: Failed password for \\S+ from <HOST> port']\nsyslog = [\"sshd\"]\nmaxretry = {maxretry}\n\
         [jail.smtp]\nfailregex = ['/smtpd\\[\\d+\\]: warning: \\S+\\[<HOST>\\]: SASL LOGIN authentication failed']\nsyslog = [\"postfix/smtpd\", \"postfix/submission/smtpd\"]\nmaxretry = 2\n",
        d = dir.display()
    )
}

#[test]
fn syslog_receiver_with_logger_both_formats_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let mut d = start(dir.path(), &syslog_body(dir.path(), port, 2));
    let sock = dir.path().join("syslog.sock");
    let sock = sock.to_str().unwrap();
    let port_s = port.to_string();
    let ssh = |ip: &str| format!("Failed password for root from {ip} port 4711 ssh2");

    // Unix socket, RFC 3164 and RFC 5424.
    for format in ["--rfc3164", "--rfc5424"] {
        logger(
            &[
                "-u",
                sock,
                format,
                "-t",
                "sshd",
                "--id=321",
                &ssh("203.0.113.1"),
            ],
            None,
        );
    }
    d.wait_for("ban: jail=ssh addr=203.0.113.1 failures=2", WAIT);
    // UDP, both formats.
    for format in ["--rfc3164", "--rfc5424"] {
        logger(
            &[
                "-n",
                "127.0.0.1",
                "-P",
                &port_s,
                "-d",
                format,
                "-t",
                "sshd",
                "--id=322",
                &ssh("203.0.113.2"),
            ],
            None,
        );
    }
    d.wait_for("ban: jail=ssh addr=203.0.113.2 failures=2", WAIT);
    // Routed by program: a postfix tag goes to the smtp jail only.
    let sasl = "warning: unknown[203.0.113.3]: SASL LOGIN authentication failed: UGFzc3dvcmQ6";
    logger(&["-u", sock, "-t", "postfix/smtpd", "--id=7", sasl], None);
    logger(
        &["-u", sock, "-t", "postfix/submission/smtpd", "--id=8", sasl],
        None,
    );
    d.wait_for("ban: jail=smtp addr=203.0.113.3 failures=2", WAIT);
    // Same text from another program: not routed to any jail.
    logger(
        &["-u", sock, "-t", "notsshd", "--id=9", &ssh("203.0.113.4")],
        None,
    );
    logger(
        &["-u", sock, "-t", "notsshd", "--id=9", &ssh("203.0.113.4")],
        None,
    );

    // Malformed and oversized datagrams are counted and dropped.
    let raw = UnixDatagram::unbound().unwrap();
    raw.send_to(b"no priority at all", sock).unwrap();
    raw.send_to(b"<13>1 not-a-time h a - - - m", sock).unwrap();
    raw.send_to(&vec![b'x'; 20_000], sock).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"<999>garbage", ("127.0.0.1", port)).unwrap();
    // Still alive and reading after them.
    logger(
        &["-u", sock, "-t", "sshd", "--id=1", &ssh("203.0.113.5")],
        None,
    );
    logger(
        &["-u", sock, "-t", "sshd", "--id=1", &ssh("203.0.113.5")],
        None,
    );
    d.wait_for("ban: jail=ssh addr=203.0.113.5 ", WAIT);
    d.stop();
    let log = d.log();
    assert!(!log.contains("addr=203.0.113.4"), "{log}");
    let counts = log
        .lines()
        .find(|l| l.contains("syslog receiver stopped"))
        .unwrap_or_else(|| panic!("no counts line: {log}"));
    // 4 + 2 + 2 + 2 well-formed, 3 malformed, 1 oversized.
    for want in ["received=14", "malformed=3", "oversized=1", "unrouted=2"] {
        assert!(counts.contains(want), "{want} not in {counts}");
    }
    assert!(
        !dir.path().join("syslog.sock").exists(),
        "socket file left behind"
    );
}

/// A local user forging UDP syslog from another loopback address gets no
/// one banned; the allowed sender still does, and the forgeries are counted.
#[test]
fn syslog_udp_from_a_sender_not_allowed_is_rejected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let body = format!(
        "[syslog]\nudp = \"127.0.0.1:{port}\"\nudp_senders = [\"127.0.0.1\"]\n\
         [jail.ssh]\nfailregex = ['sshd\\[\\d+\\]: Failed password for \\S+ from <HOST> port']\nsyslog = [\"sshd\"]\nmaxretry = 3\n"
    );
    let mut d = start(dir.path(), &body);
    let msg = |ip: &str| format!("<38>sshd[1]: Failed password for root from {ip} port 22 ssh2");
    let forger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let allowed = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        forger
            .send_to(msg("8.8.8.8").as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
    for _ in 0..3 {
        allowed
            .send_to(msg("192.0.2.7").as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
    // The receiver reads its socket in arrival order: the forgeries were
    // judged before the ban it waits for.
    d.wait_for("ban: jail=ssh addr=192.0.2.7 failures=3", WAIT);
    d.stop();
    let log = d.log();
    assert!(!log.contains("addr=8.8.8.8"), "{log}");
    assert!(log.contains("UDP datagram from 127.0.0.2 dropped"), "{log}");
    let counts = log
        .lines()
        .find(|l| l.contains("syslog receiver stopped"))
        .unwrap_or_else(|| panic!("no counts line: {log}"));
    for want in ["received=3", "rejected=3", "dropped=0"] {
        assert!(counts.contains(want), "{want} not in {counts}");
    }
}

/// rsyslog as the sender: a message logged to its own socket is forwarded
/// to ours twice, over the unix socket (omuxsock, RFC 3164) and over UDP
/// (omfwd, RFC 5424); the ban at 2 failures needs both to arrive.
#[test]
fn rsyslog_forwards_over_both_transports() {
    tool("/usr/sbin/rsyslogd");
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let mut d = start(dir.path(), &syslog_body(dir.path(), port, 2));
    let p = dir.path().display();
    let conf = format!(
        "global(workDirectory=\"{p}\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{p}/rsyslog-in.sock\")\n\
         *.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"udp\" template=\"RSYSLOG_SyslogProtocol23Format\")\n\
         $ModLoad omuxsock\n$OMUxSockSocket {p}/syslog.sock\n*.* :omuxsock:\n"
    );
    std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
    let mut rsyslog = Command::new("/usr/sbin/rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(dir.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .spawn()
        .unwrap();
    let input = dir.path().join("rsyslog-in.sock");
    let deadline = Instant::now() + WAIT;
    while !input.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    logger(
        &[
            "-u",
            input.to_str().unwrap(),
            "-t",
            "sshd",
            "--id=55",
            "Failed password for root from 203.0.113.77 port 22 ssh2",
        ],
        None,
    );
    d.wait_for("ban: jail=ssh addr=203.0.113.77 failures=2", WAIT);
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(rsyslog.id() as i32, libc::SIGTERM) };
    let _ = rsyslog.wait();
    d.stop();
}

fn total_failed(socket: &Path, jail: &str) -> u64 {
    match request(
        socket,
        &Request::Status {
            jail: Some(jail.into()),
        },
    ) {
        Ok(Reply::JailStatus(s)) => s.total_failed,
        other => panic!("status: {other:?}"),
    }
}

/// 100k messages through `logger` on the unix socket: a blocking sender
/// waits when the queue is full, so none may be lost; every one must be
/// counted as a failure. Prints the rate reached.
#[test]
fn syslog_burst_of_100k_over_the_unix_socket_loses_none() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let mut d = start(dir.path(), &syslog_body(dir.path(), port, 1_000_000_000));
    let mut input = Vec::new();
    for i in 0..N {
        writeln!(
            input,
            "Failed password for root from 10.{}.{}.{} port 22 ssh2",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )
        .unwrap();
    }
    let sock = dir.path().join("syslog.sock");
    let started = Instant::now();
    logger(
        &["-u", sock.to_str().unwrap(), "-t", "sshd", "--id=1"],
        Some(&input),
    );
    let sent = started.elapsed();
    let control = dir.path().join("nftjail.sock");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut total = 0;
    while Instant::now() < deadline {
        total = total_failed(&control, "ssh");
        if total >= N {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let counted = started.elapsed();
    eprintln!(
        "syslog burst (unix socket, logger): {N} sent in {:.2}s ({:.0}/s), all counted after {:.2}s ({:.0}/s)",
        sent.as_secs_f64(),
        N as f64 / sent.as_secs_f64(),
        counted.as_secs_f64(),
        N as f64 / counted.as_secs_f64()
    );
    assert_eq!(total, N, "failures counted");
    d.stop();
    let log = d.log();
    let counts = log
        .lines()
        .find(|l| l.contains("syslog receiver stopped"))
        .unwrap();
    assert!(counts.contains(&format!("received={N}")), "{counts}");
    assert!(counts.contains("malformed=0"), "{counts}");
}

/// UDP has no back-pressure: a sender faster than the reader fills the
/// receive buffer and the kernel drops. Sends bursts of 100k datagrams at
/// rising rates (the last unpaced) and reports the highest rate with
/// nothing dropped (the kernel's own drop counter for the socket,
/// /proc/net/udp). Asserts only that every datagram was either counted as
/// a failure or dropped by the kernel: none lost inside the daemon.
#[test]
fn syslog_udp_rate_before_drops() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let mut d = start(dir.path(), &syslog_body(dir.path(), port, 1_000_000_000));
    let control = dir.path().join("nftjail.sock");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    let mut best_clean = 0.0f64;
    let mut report = Vec::new();
    // The last round is not paced: as fast as one sender goes.
    for rate in [10_000u64, 25_000, 50_000, 100_000, 250_000, u64::MAX] {
        let round = N;
        let drops_before = udp_drops(port);
        let start = Instant::now();
        for i in 0..round {
            if rate != u64::MAX {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            // RFC 5424 with no timestamp: the time of receipt.
            let msg = format!(
                "<38>1 - h sshd 1 - - Failed password for root from 10.9.{}.{} port 22 ssh2",
                (i >> 8) & 255,
                i & 255
            );
            // ENOBUFS would be a loss on our side of the socket: fail then.
            udp.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        sent += round;
        // Let the reader empty the buffer before the next round.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counted = total_failed(&control, "ssh");
            let dropped = udp_drops(port) - drops_before;
            if counted + udp_drops_total(port) >= sent || Instant::now() > deadline {
                let reached = round as f64 / secs;
                if dropped == 0 {
                    best_clean = best_clean.max(reached);
                }
                report.push(format!("{reached:.0}/s: {dropped} dropped"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!(
        "syslog UDP rounds of {N}: {}; highest rate with no drop: {best_clean:.0}/s",
        report.join(", ")
    );
    let counted = total_failed(&control, "ssh");
    assert_eq!(
        counted + udp_drops_total(port),
        sent,
        "every datagram is either counted or dropped by the kernel"
    );
    d.stop();
}

/// The kernel's drop counter of the UDP socket bound to 127.0.0.1:port.
fn udp_drops(port: u16) -> u64 {
    udp_drops_total(port)
}

fn udp_drops_total(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}
