#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Prefix bans through the real kernel: a botnet of one /24 (or /64) whose
//! every address stays under maxretry is banned as the prefix, and a
//! connection from another address of it is refused; an ignored address,
//! a `never` network or an address of this host inside the prefix prevents
//! the ban, and the log says why; host and prefix bans come and go in any
//! order without a netlink error; `ban_v6_as` bans an IPv6 attacker's /64.
//!
//! Topology (namespaces made here, deleted on drop):
//! ```text
//!   atk 10.77.x.y/16, fd00:77::x/48 (many) ──veth── srv 10.77.0.1/16, fd00:77::1/48 (listener :587)
//! ```

mod common;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kernel_set, link, require_root, Daemon, Netns};
use nftjail::enforce::nft::NftBackend;
use nftjail::enforce::{Applied, Backend};
use nftjail::message::{BanOrder, Cause};
use nftjail::rules::{BlockType, JailRules};

const SRV4: &str = "10.77.0.1";
const SRV6: &str = "fd00:77::1";
const PORT: u16 = 587;

/// A TCP connection to the server from `from` (an address of `ns`).
fn connect_from(ns: &Netns, from: &str, to: &str) -> Result<(), ErrorKind> {
    let from: IpAddr = from.parse().unwrap();
    let to = SocketAddr::new(to.parse().unwrap(), PORT);
    ns.run(move || {
        use std::os::fd::FromRawFd;
        let family = if from.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket/bind on a fresh fd owned by the stream.
        let stream = unsafe {
            let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            TcpStream::from_raw_fd(fd)
        };
        let (sa, len) = sockaddr(SocketAddr::new(from, 0));
        // SAFETY: `sa` is a valid sockaddr of `len` bytes.
        let rc = unsafe {
            use std::os::fd::AsRawFd;
            libc::bind(
                stream.as_raw_fd(),
                (&sa as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        assert_eq!(rc, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let (sa, len) = sockaddr(to);
        // SAFETY: as above; a blocking connect on our own fd.
        let rc = unsafe {
            use std::os::fd::AsRawFd;
            libc::connect(
                stream.as_raw_fd(),
                (&sa as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().kind())
        }
    })
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, u32) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (ss, std::mem::size_of::<libc::sockaddr_in>() as u32)
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (ss, std::mem::size_of::<libc::sockaddr_in6>() as u32)
        }
    }
}

fn listen(ns: &Netns) {
    for a in [SRV4, SRV6] {
        let addr = SocketAddr::new(a.parse().unwrap(), PORT);
        let listener = ns.run(move || TcpListener::bind(addr).expect("bind in srv namespace"));
        std::thread::spawn(move || for _ in listener.incoming() {});
    }
}

/// srv and atk joined; atk holds `addrs` besides its first address.
fn topology(tag: &str, addrs: &[&str]) -> (Netns, Netns) {
    require_root();
    let srv = Netns::new(&format!("{tag}srv"));
    let atk = Netns::new(&format!("{tag}atk"));
    link(
        &srv,
        &[&format!("{SRV4}/16"), &format!("{SRV6}/48")],
        &atk,
        &["10.77.1.1/16", "fd00:77:0:1::1/48"],
        tag,
    );
    let dev = format!("vb{tag}");
    for a in addrs {
        let len = if a.contains(':') { 48 } else { 16 };
        let mut args = vec!["ip", "-n", &atk.name, "addr", "add"];
        let cidr = format!("{a}/{len}");
        args.push(&cidr);
        args.extend(["dev", &dev]);
        if a.contains(':') {
            args.push("nodad");
        }
        common::sh(&args);
    }
    listen(&srv);
    (srv, atk)
}

fn append(log: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A Postfix SASL failure stamped now.
fn failure(addr: &str) -> String {
    let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
    format!("{now} mx1 postfix/submission/smtpd[10601]: warning: unknown[{addr}]: SASL LOGIN authentication failed: authentication failure")
}

/// The daemon in `srv` with `jails` (TOML) reading `mail.log` in `dir`.
fn daemon(srv: &Netns, dir: &Path, head: &str, jails: &str) -> Daemon {
    let log = dir.join("mail.log");
    std::fs::write(&log, "").unwrap();
    let config = dir.join("nftjail.toml");
    let jails = jails.replace("LOG", &log.display().to_string());
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n{head}\n{jails}",
            dir.join("nftjail.sock").display(),
            dir.join("state").display(),
        ),
    )
    .unwrap();
    let mut cmd = srv.command(env!("CARGO_BIN_EXE_nftjail"));
    cmd.args(["run", "--config"]).arg(&config);
    let daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready", Duration::from_secs(10));
    daemon
}

/// Waits until `ok` holds, or panics with `what` and the daemon's log.
fn wait_until(daemon: &Daemon, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} within {timeout:?}; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nine_addresses_of_one_prefix_under_maxretry_ban_the_prefix() {
    let (srv, atk) = topology(
        "pn",
        &[
            "10.77.5.200",
            "10.77.6.7",
            "fd00:77:0:5::200",
            "fd00:77:0:6::7",
            "fd00:77:0:7::2",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(
        &srv,
        dir.path(),
        "never = [\"10.77.9.192/26\"]",
        "[jail.mail]\nfilter = \"postfix-sasl\"\nlogpath = \"LOG\"\nport = \"submission\"\nmaxretry = 3\nfindtime = \"1m\"\nbantime = \"1m\"\nban_v6_as = 64\nignoreip = [\"10.77.8.5\"]\n[jail.mail.prefix]\nv4 = 24\nv6 = 64\nmaxaddrs = 9\nfindtime = \"1h\"\nbantime = \"1h\"\n",
    );
    let log = dir.path().join("mail.log");
    for (from, to) in [("10.77.5.200", SRV4), ("fd00:77:0:5::200", SRV6)] {
        assert_eq!(
            connect_from(&atk, from, to),
            Ok(()),
            "{from} before any ban"
        );
    }

    // Nine addresses of 10.77.5.0/24 and of fd00:77:0:5::/64, two failures
    // each: none reaches maxretry 3.
    let mut lines = Vec::new();
    for _ in 0..2 {
        for h in 1..=9 {
            lines.push(failure(&format!("10.77.5.{}", h * 10)));
            lines.push(failure(&format!("fd00:77:0:5::{:x}", h * 16)));
        }
    }
    let appended = Instant::now();
    append(&log, &lines);
    let line = d.wait_for("addr=10.77.5.0/24", Duration::from_secs(5));
    assert!(
        line.contains("jail=mail")
            && line.contains("cause=prefix addrs=9")
            && line.contains("bantime=1h"),
        "{line}"
    );
    let line = d.wait_for("addr=fd00:77:0:5::/64", Duration::from_secs(5));
    assert!(line.contains("cause=prefix addrs=9"), "{line}");
    eprintln!(
        "both prefixes banned {:?} after the lines were appended",
        appended.elapsed()
    );
    assert!(
        !d.log().contains("ban extended"),
        "a prefix crossing maxaddrs again at once is the same ban"
    );
    assert!(
        !d.log().contains("ban: jail=mail addr=10.77.5.10 "),
        "no address reached maxretry"
    );

    // Another address of each prefix is refused at its first connection;
    // a neighbour prefix still gets through.
    for (from, to) in [("10.77.5.200", SRV4), ("fd00:77:0:5::200", SRV6)] {
        wait_until(
            &d,
            &format!("{from} refused"),
            Duration::from_secs(2),
            || connect_from(&atk, from, to) == Err(ErrorKind::ConnectionRefused),
        );
    }
    for (from, to) in [("10.77.6.7", SRV4), ("fd00:77:0:6::7", SRV6)] {
        assert_eq!(
            connect_from(&atk, from, to),
            Ok(()),
            "{from} is in another prefix"
        );
    }
    assert!(kernel_set(&srv, "mail-net4").contains("10.77.5.0/24"));
    assert!(kernel_set(&srv, "mail-net6").contains("fd00:77:0:5::/64"));
    assert!(kernel_set(&srv, "mail-v4").is_empty(), "no address ban");

    // Prefixes holding an ignoreip address, a never network, or this
    // host's own address: not banned, said once per prefix however many
    // lines come.
    let mut lines = Vec::new();
    for round in 0..3 {
        for h in 1..=9 {
            if round < 2 {
                lines.push(failure(&format!("10.77.8.{}", 100 + h + 10 * round)));
                lines.push(failure(&format!("10.77.9.{}", 100 + h + 10 * round)));
            }
            lines.push(failure(&format!("10.77.0.{}", 100 + h + 10 * round)));
        }
    }
    // Then one IPv6 attacker, banned as its /64 (ban_v6_as).
    for _ in 0..3 {
        lines.push(failure("fd00:77:0:7::1"));
    }
    append(&log, &lines);
    let line = d.wait_for("addr=fd00:77:0:7::/64", Duration::from_secs(5));
    assert!(line.contains("failures=3"), "{line}");
    wait_until(&d, "fd00:77:0:7::2 refused", Duration::from_secs(2), || {
        connect_from(&atk, "fd00:77:0:7::2", SRV6) == Err(ErrorKind::ConnectionRefused)
    });
    let text = d.log();
    for (prefix, why) in [
        ("10.77.8.0/24", "covers 10.77.8.5 (the jail's ignoreip)"),
        ("10.77.9.0/24", "covers 10.77.9.192/26 ([daemon] never)"),
        ("10.77.0.0/24", "covers 10.77.0.1 (an address of this host)"),
    ] {
        let said: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("prefix {prefix} not banned")))
            .collect();
        assert_eq!(said.len(), 1, "{prefix}: {said:?}\n{text}");
        assert!(said[0].contains(why), "{}", said[0]);
    }
    let net4 = kernel_set(&srv, "mail-net4");
    assert_eq!(net4.len(), 1, "{net4:?}");

    // `nftjail status` names the banned prefixes.
    let status = srv.output(
        env!("CARGO_BIN_EXE_nftjail"),
        &[
            "status",
            "mail",
            "--socket",
            &dir.path().join("nftjail.sock").display().to_string(),
        ],
    );
    assert!(
        status.contains("10.77.5.0/24") && status.contains("fd00:77:0:5::/64"),
        "{status}"
    );

    // `[daemon] never` holds against a ban by hand, --force or not; an
    // ignoreip address yields to --force.
    let sock = dir.path().join("nftjail.sock").display().to_string();
    for (target, force) in [("10.77.9.200", true), ("10.77.9.0/24", false)] {
        let mut args = vec!["ban", "mail", target, "--socket", &sock];
        if force {
            args.push("--force");
        }
        let out = srv
            .command(env!("CARGO_BIN_EXE_nftjail"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{target} was banned");
        assert!(
            err.contains("covers 10.77.9.192/26, which [daemon] never lets anything ban"),
            "{err}"
        );
    }
    let out = srv.output(
        env!("CARGO_BIN_EXE_nftjail"),
        &["ban", "mail", "10.77.8.5", "--force", "--socket", &sock],
    );
    assert!(out.contains("10.77.8.5"), "{out}");
    d.stop();
}

#[test]
fn host_and_prefix_bans_are_added_and_expire_in_every_order() {
    let (srv, _atk) = topology("po", &[]);
    let dir = tempfile::tempdir().unwrap();
    // Both jails read every line: in `a` the host ban ends before the
    // prefix ban, in `b` after it.
    let jail = |name: &str, host: u64, prefix: u64| {
        format!("[jail.{name}]\nfilter = \"postfix-sasl\"\nlogpath = \"LOG\"\nport = \"submission\"\nmaxretry = 2\nfindtime = \"1m\"\nbantime = {host}\n[jail.{name}.prefix]\nmaxaddrs = 3\nfindtime = \"1m\"\nbantime = {prefix}\n")
    };
    let mut d = daemon(&srv, dir.path(), "", &(jail("a", 2, 4) + &jail("b", 4, 2)));
    let log = dir.path().join("mail.log");
    let empty = |d: &Daemon| {
        wait_until(d, "every ban expired", Duration::from_secs(12), || {
            ["a-v4", "a-net4", "b-v4", "b-net4"]
                .iter()
                .all(|s| kernel_set(&srv, s).is_empty())
        })
    };

    // A host ban, then a prefix ban over it.
    append(&log, &[failure("10.77.20.1"), failure("10.77.20.1")]);
    d.wait_for("ban: jail=b addr=10.77.20.1 ", Duration::from_secs(5));
    let host = Instant::now();
    append(&log, &[failure("10.77.20.2"), failure("10.77.20.3")]);
    d.wait_for("ban: jail=b addr=10.77.20.0/24", Duration::from_secs(5));
    for jail in ["a", "b"] {
        assert!(kernel_set(&srv, &format!("{jail}-net4")).contains("10.77.20.0/24"));
    }
    // Both kinds held together (unless this machine took the host ban's
    // whole bantime to get here: then the expiry orders still ran).
    if host.elapsed() < Duration::from_secs(2) {
        assert!(kernel_set(&srv, "b-v4").contains("10.77.20.1"));
    }
    empty(&d);

    // A prefix ban, then a host ban inside it; then again once both
    // expired (the same prefix, added anew).
    for _ in 0..2 {
        append(
            &log,
            &[
                failure("10.77.21.1"),
                failure("10.77.21.2"),
                failure("10.77.21.3"),
            ],
        );
        d.wait_for("ban: jail=b addr=10.77.21.0/24", Duration::from_secs(5));
        let prefix = Instant::now();
        append(&log, &[failure("10.77.21.3")]);
        d.wait_for("ban: jail=b addr=10.77.21.3 ", Duration::from_secs(5));
        for jail in ["a", "b"] {
            assert!(kernel_set(&srv, &format!("{jail}-v4")).contains("10.77.21.3"));
        }
        if prefix.elapsed() < Duration::from_secs(2) {
            assert!(kernel_set(&srv, "a-net4").contains("10.77.21.0/24"));
        }
        empty(&d);
    }
    let text = d.log();
    for bad in ["WARN", "ERROR", "not applied", "refused"] {
        assert!(!text.contains(bad), "{bad:?} in the log:\n{text}");
    }
    d.stop();
}

fn jails() -> Vec<JailRules> {
    vec![JailRules {
        name: "mail".into(),
        ports: Vec::new(),
        blocktype: BlockType::Reject,
        app: None,
    }]
}

fn prefix(net: &str, secs: u64) -> BanOrder {
    let net: ipnet::IpNet = net.parse().unwrap();
    BanOrder {
        target: net,
        cause: Cause::Prefix { addrs: 9 },
        ..BanOrder::host(Arc::from("mail"), net.addr(), Duration::from_secs(secs))
    }
}

/// Overlapping prefixes never reach the kernel's interval set together:
/// a narrower one under a wider is left out, a wider one that outlives
/// the narrower ones replaces them in one transaction, one that would
/// shorten a narrower ban is left out.
#[test]
fn overlapping_prefixes_are_settled_before_the_kernel_sees_them() {
    require_root();
    let ns = Netns::new("pover");
    let listing = ns.run(|| {
        let mut b = NftBackend::open("nftjail").unwrap();
        b.reconcile(&jails()).unwrap();
        let host = BanOrder::host(
            Arc::from("mail"),
            "192.0.2.7".parse().unwrap(),
            Duration::from_secs(600),
        );
        let out = b
            .ban(&[
                prefix("192.0.2.0/24", 600),
                host,
                prefix("198.51.100.0/24", 7200),
            ])
            .unwrap();
        assert_eq!(out, [Applied::Added, Applied::Added, Applied::Added]);
        // Inside a wider one: nothing to do.
        assert_eq!(
            b.ban(&[prefix("192.0.2.128/25", 60)]).unwrap(),
            [Applied::Unchanged]
        );
        // Around a narrower one that ends sooner: replaces it.
        assert_eq!(
            b.ban(&[prefix("192.0.0.0/16", 3600)]).unwrap(),
            [Applied::Added]
        );
        // Around one banned for longer: left out.
        assert_eq!(
            b.ban(&[prefix("198.51.0.0/16", 60)]).unwrap(),
            [Applied::Unchanged]
        );
        // Adjacent prefixes share an interval boundary: both fit.
        assert_eq!(
            b.ban(&[prefix("198.51.101.0/24", 60)]).unwrap(),
            [Applied::Added]
        );
        // A restore of everything the store may hold (the replaced /24
        // too) sends no overlap.
        let listed = b.list("mail");
        let mut again = NftBackend::open("nftjail").unwrap();
        again.reconcile(&jails()).unwrap();
        b.remove_all().unwrap();
        again.reconcile(&jails()).unwrap();
        let mut restore: Vec<nftjail::enforce::Restore> = listed
            .iter()
            .map(|(n, left)| nftjail::enforce::Restore {
                jail: "mail".into(),
                net: *n,
                timeout: *left,
                remaining: *left,
            })
            .collect();
        restore.push(nftjail::enforce::Restore {
            jail: "mail".into(),
            net: "192.0.2.0/24".parse().unwrap(),
            timeout: Some(Duration::from_secs(600)),
            remaining: Some(Duration::from_secs(500)),
        });
        let put_back = again.restore(&restore).unwrap();
        assert_eq!(put_back, listed.len(), "{listed:?}");
        listed
    });
    let shown: Vec<String> = listing.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        shown,
        [
            "192.0.0.0/16",
            "192.0.2.7/32",
            "198.51.100.0/24",
            "198.51.101.0/24"
        ]
    );
    let net4 = kernel_set(&ns, "mail-net4");
    assert_eq!(
        net4.into_iter().collect::<Vec<_>>(),
        ["192.0.0.0/16", "198.51.100.0/24", "198.51.101.0/24"]
    );
}
