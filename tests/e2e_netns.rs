#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! End to end through the real kernel: a failure line in a log becomes an
//! nftables ban that refuses the attacker's next TCP connection, the innocent
//! client still gets through, `nft list set` shows the ban with `expires`, and
//! the kernel lifts it by itself after bantime. IPv4 and IPv6.
//!
//! Topology (all namespaces made here, deleted on drop):
//! ```text
//!   atk 192.0.2.66 / 2001:db8:1::66 ──veth── srv 192.0.2.1 / 2001:db8:1::1   (listener :587)
//!   inno 198.51.100.7 / 2001:db8:2::7 ──veth── srv 198.51.100.1 / 2001:db8:2::1
//! ```

mod common;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{link, require_root, Daemon, Netns};

const SRV4: &str = "192.0.2.1:587";
const SRV6: &str = "[2001:db8:1::1]:587";
const SRV4_INNO: &str = "198.51.100.1:587";
const SRV6_INNO: &str = "[2001:db8:2::1]:587";

fn connect(ns: &Netns, to: &str) -> Result<(), ErrorKind> {
    let addr: SocketAddr = to.parse().expect("test address");
    ns.run(move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

fn listen(ns: &Netns, on: &[&str]) {
    for a in on {
        let addr: SocketAddr = a.parse().expect("test address");
        let listener = ns.run(move || TcpListener::bind(addr).expect("bind in srv namespace"));
        std::thread::spawn(move || for _ in listener.incoming() {});
    }
}

/// Fake firewall tools first on the daemon's PATH: any call is recorded.
fn fake_firewall_tools(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("fakebin");
    std::fs::create_dir(&bin).expect("fakebin");
    let record = dir.join("forked.txt");
    for tool in [
        "nft",
        "iptables",
        "ip6tables",
        "ufw",
        "iptables-restore",
        "ip6tables-restore",
    ] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> {}\nexit 1\n",
                record.display()
            ),
        )
        .expect("fake tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    record
}

fn append(log: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("append");
    }
}

/// A failure line stamped now, as syslog writes it: the daemon counts a
/// line at its own time, and an old stamp would fall outside findtime.
fn sasl_failure(addr: &str, n: usize) -> String {
    let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
    format!("{now} mx1 postfix/submission/smtpd[106{n:02}]: warning: unknown[{addr}]: SASL LOGIN authentication failed: authentication failure")
}

#[test]
fn failure_lines_ban_in_the_kernel_and_the_kernel_expires_the_ban() {
    require_root();
    let srv = Netns::new("srv");
    let atk = Netns::new("atk");
    let inno = Netns::new("inno");
    link(
        &srv,
        &["192.0.2.1/24", "2001:db8:1::1/64"],
        &atk,
        &["192.0.2.66/24", "2001:db8:1::66/64"],
        "a",
    );
    link(
        &srv,
        &["198.51.100.1/24", "2001:db8:2::1/64"],
        &inno,
        &["198.51.100.7/24", "2001:db8:2::7/64"],
        "i",
    );
    listen(&srv, &[SRV4, SRV6, SRV4_INNO, SRV6_INNO]);

    for to in [SRV4, SRV6] {
        assert_eq!(
            connect(&atk, to),
            Ok(()),
            "attacker reaches {to} before any ban"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("mail.log");
    std::fs::write(&log, sasl_failure("192.0.2.66", 0) + "\n").expect("log");
    let config = dir.path().join("nftjail.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n[jail.e2e]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nport = \"submission\"\nmaxretry = 3\nbantime = \"3s\"\nfindtime = \"1m\"\nignoreip = [\"198.51.100.0/24\", \"2001:db8:2::/64\"]\n",
            dir.path().join("nftjail.sock").display(),
            dir.path().join("state").display(),
            log.display()
        ),
    )
    .expect("config");
    let forked = fake_firewall_tools(dir.path());

    let mut cmd = srv.command(env!("CARGO_BIN_EXE_nftjail"));
    cmd.args(["run", "--config"]).arg(&config).env(
        "PATH",
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            dir.path().join("fakebin").display()
        ),
    );
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready", Duration::from_secs(10));

    // Hostile input first: a 1 MiB line, binary junk, a bad address, and
    // failures from ignored networks (ignoreip), which must never ban.
    let mut hostile = vec![
        "X".repeat(1 << 20),
        String::from_utf8_lossy(b"\xff\xfe\x00\x1b[31m junk").into_owned(),
        sasl_failure("999.1.2.3", 9),
    ];
    for n in 0..5 {
        hostile.push(sasl_failure("198.51.100.7", n));
        hostile.push(sasl_failure("2001:db8:2::7", n));
    }
    append(&log, &hostile);

    // The line already in the file is history (the daemon starts at the end):
    // two new failures are not enough, the third bans.
    append(
        &log,
        &[
            sasl_failure("192.0.2.66", 1),
            sasl_failure("2001:db8:1::66", 1),
        ],
    );
    append(
        &log,
        &[
            sasl_failure("192.0.2.66", 2),
            sasl_failure("2001:db8:1::66", 2),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        connect(&atk, SRV4),
        Ok(()),
        "two failures must not ban (maxretry 3)"
    );

    let appended = Instant::now();
    append(
        &log,
        &[
            sasl_failure("192.0.2.66", 3),
            sasl_failure("[2001:db8:1::66]", 3),
        ],
    );

    // Within 1 s, the attacker's next connection is refused (blocktype reject).
    let mut refused = Vec::new();
    for to in [SRV4, SRV6] {
        let deadline = appended + Duration::from_secs(1);
        let outcome = loop {
            match connect(&atk, to) {
                Err(ErrorKind::ConnectionRefused) => break Ok(appended.elapsed()),
                other if Instant::now() > deadline => break Err(other),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        match outcome {
            Ok(t) => refused.push((to, t)),
            Err(last) => panic!(
                "{to} not refused within 1 s (last: {last:?}); log:\n{}",
                daemon.log()
            ),
        }
    }
    eprintln!("refused after: {refused:?}");
    let line = daemon.wait_for("addr=192.0.2.66", Duration::from_secs(2));
    assert!(
        line.contains("jail=e2e") && line.contains("failures=3") && line.contains("bantime=3s"),
        "{line}"
    );
    daemon.wait_for("addr=2001:db8:1::66", Duration::from_secs(2));

    // The innocent client still connects, over both families.
    for to in [SRV4_INNO, SRV6_INNO] {
        assert_eq!(
            connect(&inno, to),
            Ok(()),
            "innocent client must reach {to}"
        );
    }

    // The real nft CLI, an independent reader, sees both bans with `expires`.
    let v4 = srv.output(
        "/usr/sbin/nft",
        &["list", "set", "inet", "nftjail", "e2e-v4"],
    );
    assert!(v4.contains("192.0.2.66 timeout 3s expires"), "{v4}");
    let v6 = srv.output(
        "/usr/sbin/nft",
        &["list", "set", "inet", "nftjail", "e2e-v6"],
    );
    assert!(v6.contains("2001:db8:1::66 timeout 3s expires"), "{v6}");
    assert!(!v4.contains("198.51.100.7"), "ignoreip was banned: {v4}");
    assert!(!v6.contains("2001:db8:2::7"), "ignoreip was banned: {v6}");
    assert!(
        !daemon.log().contains("999.1.2.3"),
        "a bad address reached the tracker"
    );

    // After bantime the kernel has removed them by itself and the client is back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v4 = srv.output(
            "/usr/sbin/nft",
            &["list", "set", "inet", "nftjail", "e2e-v4"],
        );
        let v6 = srv.output(
            "/usr/sbin/nft",
            &["list", "set", "inet", "nftjail", "e2e-v6"],
        );
        if !v4.contains("192.0.2.66") && !v6.contains("2001:db8:1::66") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel did not expire the bans:\n{v4}\n{v6}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for to in [SRV4, SRV6] {
        assert_eq!(
            connect(&atk, to),
            Ok(()),
            "attacker reaches {to} again after expiry"
        );
    }

    daemon.stop();
    let calls = std::fs::read_to_string(&forked).unwrap_or_default();
    assert!(
        calls.is_empty(),
        "the daemon forked firewall tools:\n{calls}"
    );
}
