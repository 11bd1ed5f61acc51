#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The nft backend against the real kernel, each test in a fresh network
//! namespace of its own thread (`unshare(CLONE_NEWNET)`), with the `nft` CLI
//! as an independent reader.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nftjail::enforce::enforcer::Enforcer;
use nftjail::enforce::nft::NftBackend;
use nftjail::enforce::{Applied, Backend};
use nftjail::message::{BanOrder, Cause};
use nftjail::rules::{BlockType, JailRules, PortRange, Proto};

/// Moves this test's thread into a new, empty network namespace.
fn fresh_netns() {
    // SAFETY: geteuid/unshare have no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "kernel tests need root (cargo xtask ci)"
    );
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

fn nft(args: &[&str]) -> String {
    let out = Command::new("/usr/sbin/nft")
        .args(args)
        .output()
        .expect("the nft CLI is needed as an independent reader: cargo xtask deps");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn jail(name: &str, ports: &[(Proto, u16, u16)], blocktype: BlockType) -> JailRules {
    JailRules {
        name: name.into(),
        ports: ports
            .iter()
            .map(|&(proto, first, last)| PortRange { proto, first, last })
            .collect(),
        blocktype,
        app: None,
    }
}

fn example_jails() -> Vec<JailRules> {
    vec![
        jail("sshd", &[(Proto::Tcp, 22, 22)], BlockType::Reject),
        jail(
            "zimbra-submission",
            &[
                (Proto::Tcp, 465, 465),
                (Proto::Tcp, 587, 587),
                (Proto::Udp, 5000, 5010),
            ],
            BlockType::Drop,
        ),
    ]
}

fn order(jail: &str, addr: &str, secs: u64) -> BanOrder {
    BanOrder {
        failures: 5,
        cause: Cause::default(),
        ..BanOrder::host(
            Arc::from(jail),
            addr.parse().unwrap(),
            Duration::from_secs(secs),
        )
    }
}

/// `timeout T expires E` → E in whole seconds (nft prints e.g. `9m59s` or `4s999ms`).
fn expires_secs(listing: &str, addr: &str) -> Option<u64> {
    let at = listing.find(&format!("{addr} timeout"))?;
    let rest = &listing[at..];
    let e = rest.split("expires ").nth(1)?;
    let e: String = e
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut secs = 0;
    let mut n = 0u64;
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            n = n * 10 + u64::from(d);
            continue;
        }
        match c {
            'd' => secs += n * 86400,
            'h' => secs += n * 3600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
            }
            'm' => secs += n * 60,
            's' => secs += n,
            _ => {}
        }
        n = 0;
    }
    Some(secs)
}

#[test]
fn reconcile_builds_the_golden_layout_and_is_idempotent() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let first = nft(&["list", "table", "inet", "nftjail"]);
    let golden = include_str!("../nft/golden/example.nft");
    assert_eq!(first, golden, "listing differs from nft/golden/example.nft");
    b.reconcile(&example_jails()).unwrap();
    let mut again = NftBackend::open("nftjail").unwrap();
    again.reconcile(&example_jails()).unwrap();
    assert_eq!(
        nft(&["list", "table", "inet", "nftjail"]),
        golden,
        "reconcile is not idempotent"
    );
    // The committed script loads into an empty kernel and lists the same.
    nft(&["delete", "table", "inet", "nftjail"]);
    nft(&[
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/nft/nftjail.nft"),
    ]);
    assert_eq!(nft(&["list", "table", "inet", "nftjail"]), golden);
}

/// The chain an earlier release built for the example jails: a rule per
/// port, family and set.
const OLDER_LAYOUT: &str = "table inet nftjail {
\tset sshd-v4 { type ipv4_addr; flags timeout; elements = { 203.0.113.5 timeout 10m } }
\tset sshd-v6 { type ipv6_addr; flags timeout; }
\tset sshd-net4 { type ipv4_addr; flags interval,timeout; }
\tset sshd-net6 { type ipv6_addr; flags interval,timeout; }
\tset zimbra-submission-v4 { type ipv4_addr; flags timeout; elements = { 198.51.100.7 } }
\tset zimbra-submission-v6 { type ipv6_addr; flags timeout; elements = { 2001:db8::7 timeout 1h } }
\tset zimbra-submission-net4 { type ipv4_addr; flags interval,timeout; elements = { 192.0.2.0/24 timeout 1h } }
\tset zimbra-submission-net6 { type ipv6_addr; flags interval,timeout; }
\tchain input {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\ttcp dport 22 ip saddr @sshd-v4 counter reject with tcp reset
\t\ttcp dport 22 ip saddr @sshd-net4 counter reject with tcp reset
\t\ttcp dport 22 ip6 saddr @sshd-v6 counter reject with tcp reset
\t\ttcp dport 22 ip6 saddr @sshd-net6 counter reject with tcp reset
\t\ttcp dport 465 ip saddr @zimbra-submission-v4 counter drop
\t\ttcp dport 587 ip saddr @zimbra-submission-v4 counter drop
\t\tudp dport 5000-5010 ip saddr @zimbra-submission-v4 counter drop
\t\ttcp dport 465 ip saddr @zimbra-submission-net4 counter drop
\t\ttcp dport 587 ip saddr @zimbra-submission-net4 counter drop
\t\tudp dport 5000-5010 ip saddr @zimbra-submission-net4 counter drop
\t\ttcp dport 465 ip6 saddr @zimbra-submission-v6 counter drop
\t\ttcp dport 587 ip6 saddr @zimbra-submission-v6 counter drop
\t\tudp dport 5000-5010 ip6 saddr @zimbra-submission-v6 counter drop
\t\ttcp dport 465 ip6 saddr @zimbra-submission-net6 counter drop
\t\ttcp dport 587 ip6 saddr @zimbra-submission-net6 counter drop
\t\tudp dport 5000-5010 ip6 saddr @zimbra-submission-net6 counter drop
\t}
}
";

/// The chain the release before this layout built: a rule per family and
/// set, the jail's ports as an anonymous set.
const RULE_PER_SET_LAYOUT: &str = "table inet nftjail {
\tset sshd-v4 { type ipv4_addr; flags timeout; elements = { 203.0.113.5 timeout 10m } }
\tset sshd-v6 { type ipv6_addr; flags timeout; }
\tset sshd-net4 { type ipv4_addr; flags interval,timeout; }
\tset sshd-net6 { type ipv6_addr; flags interval,timeout; }
\tset zimbra-submission-v4 { type ipv4_addr; flags timeout; elements = { 198.51.100.7 } }
\tset zimbra-submission-v6 { type ipv6_addr; flags timeout; elements = { 2001:db8::7 timeout 1h } }
\tset zimbra-submission-net4 { type ipv4_addr; flags interval,timeout; elements = { 192.0.2.0/24 timeout 1h } }
\tset zimbra-submission-net6 { type ipv6_addr; flags interval,timeout; }
\tchain input {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\ttcp dport 22 ip saddr @sshd-v4 counter reject with tcp reset
\t\ttcp dport 22 ip saddr @sshd-net4 counter reject with tcp reset
\t\ttcp dport 22 ip6 saddr @sshd-v6 counter reject with tcp reset
\t\ttcp dport 22 ip6 saddr @sshd-net6 counter reject with tcp reset
\t\ttcp dport { 465, 587 } ip saddr @zimbra-submission-v4 counter drop
\t\tudp dport 5000-5010 ip saddr @zimbra-submission-v4 counter drop
\t\ttcp dport { 465, 587 } ip saddr @zimbra-submission-net4 counter drop
\t\tudp dport 5000-5010 ip saddr @zimbra-submission-net4 counter drop
\t\ttcp dport { 465, 587 } ip6 saddr @zimbra-submission-v6 counter drop
\t\tudp dport 5000-5010 ip6 saddr @zimbra-submission-v6 counter drop
\t\ttcp dport { 465, 587 } ip6 saddr @zimbra-submission-net6 counter drop
\t\tudp dport 5000-5010 ip6 saddr @zimbra-submission-net6 counter drop
\t}
}
";

#[test]
fn an_upgrade_replaces_the_per_port_rules_and_keeps_every_ban() {
    for layout in [OLDER_LAYOUT, RULE_PER_SET_LAYOUT] {
        upgrade_from(layout);
    }
}

fn upgrade_from(layout: &str) {
    fresh_netns();
    let script = std::env::temp_dir().join(format!("nftjail-older-{}.nft", std::process::id()));
    std::fs::write(&script, layout).unwrap();
    nft(&["-f", script.to_str().unwrap()]);
    let _ = std::fs::remove_file(&script);
    let before: Vec<String> = ["sshd-v4", "zimbra-submission-v4", "zimbra-submission-v6"]
        .iter()
        .chain(&["zimbra-submission-net4"])
        .map(|set| nft(&["list", "set", "inet", "nftjail", set]))
        .collect();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let rules = |listing: &str| -> Vec<String> {
        listing
            .lines()
            .filter(|l| l.contains(" saddr @") || l.contains("jump ") || l.contains("chain "))
            .map(str::to_string)
            .collect()
    };
    let table = nft(&["list", "table", "inet", "nftjail"]);
    assert_eq!(
        rules(&table),
        rules(include_str!("../nft/golden/example.nft")),
        "{table}"
    );
    for (set, was) in ["sshd-v4", "zimbra-submission-v4", "zimbra-submission-v6"]
        .iter()
        .chain(&["zimbra-submission-net4"])
        .zip(&before)
    {
        let now = nft(&["list", "set", "inet", "nftjail", set]);
        let elements = |l: &str| {
            l.split("elements = ")
                .nth(1)
                .map(|e| e.split(" expires").next().unwrap_or(e).to_string())
        };
        assert!(elements(was).is_some(), "{was}");
        assert_eq!(elements(&now), elements(was), "{set} lost elements: {now}");
    }
    // A second reconcile (the daemon's next start) changes nothing.
    b.reconcile(&example_jails()).unwrap();
    assert_eq!(
        rules(&nft(&["list", "table", "inet", "nftjail"])),
        rules(&table)
    );
}

#[test]
fn reconcile_keeps_bans_and_removes_jails_no_longer_configured() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    b.ban(&[
        order("sshd", "203.0.113.5", 600),
        order("zimbra-submission", "203.0.113.6", 600),
    ])
    .unwrap();
    // Restart with only sshd: its ban stays, zimbra's sets and rules go.
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()[..1]).unwrap();
    let table = nft(&["list", "table", "inet", "nftjail"]);
    assert!(table.contains("203.0.113.5 timeout 10m expires"), "{table}");
    assert!(!table.contains("zimbra"), "{table}");
    let left = b.remaining("sshd", "203.0.113.5".parse().unwrap()).unwrap();
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    // Nothing outside our table is touched.
    nft(&["add", "table", "inet", "other"]);
    nft(&["add", "set", "inet", "other", "keep", "{ type ipv4_addr; }"]);
    b.reconcile(&[]).unwrap();
    assert!(nft(&["list", "ruleset"]).contains("set keep"));
}

#[test]
fn ban_extend_unchanged_and_unban_agree_with_the_kernel() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let out = b
        .ban(&[
            order("sshd", "203.0.113.7", 60),
            order("sshd", "2001:db8::7", 60),
        ])
        .unwrap();
    assert_eq!(out, [Applied::Added, Applied::Added]);
    let v4 = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert!(v4.contains("203.0.113.7 timeout 1m expires"), "{v4}");
    let v6 = nft(&["list", "set", "inet", "nftjail", "sshd-v6"]);
    assert!(v6.contains("2001:db8::7 timeout 1m expires"), "{v6}");

    // Longer: extended in place (delete+add in one transaction).
    assert_eq!(
        b.ban(&[order("sshd", "203.0.113.7", 3600)]).unwrap(),
        [Applied::Extended]
    );
    let v4 = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert!(v4.contains("203.0.113.7 timeout 1h expires"), "{v4}");
    assert!(expires_secs(&v4, "203.0.113.7").unwrap() > 3500, "{v4}");
    // Shorter: nothing sent, the longer ban stays.
    assert_eq!(
        b.ban(&[order("sshd", "203.0.113.7", 10)]).unwrap(),
        [Applied::Unchanged]
    );
    assert!(nft(&["list", "set", "inet", "nftjail", "sshd-v4"]).contains("timeout 1h"));
    // Duplicates in one batch: one add, the longer wins.
    let out = b
        .ban(&[
            order("sshd", "203.0.113.8", 60),
            order("sshd", "203.0.113.8", 120),
        ])
        .unwrap();
    assert_eq!(out, [Applied::Added, Applied::Extended]);
    assert!(nft(&["list", "set", "inet", "nftjail", "sshd-v4"]).contains("203.0.113.8 timeout 2m"));

    assert!(b.unban("sshd", "203.0.113.7".parse().unwrap()).unwrap());
    assert!(!b.unban("sshd", "203.0.113.7".parse().unwrap()).unwrap());
    assert!(!b.unban("sshd", "198.51.100.1".parse().unwrap()).unwrap());
    assert!(!nft(&["list", "set", "inet", "nftjail", "sshd-v4"]).contains("203.0.113.7"));
    assert!(b.ban(&[order("nosuch", "203.0.113.9", 60)]).is_err());
}

#[test]
fn ten_thousand_bans_in_one_call_all_reach_the_kernel() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let orders: Vec<BanOrder> = (0..10_000u32)
        .map(|i| BanOrder {
            failures: 5,
            ..BanOrder::host(
                Arc::from("sshd"),
                IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()),
                Duration::from_secs(600),
            )
        })
        .collect();
    let start = Instant::now();
    let out = b.ban(&orders).unwrap();
    let took = start.elapsed();
    eprintln!(
        "10,000 bans in one call: {took:?} ({:.0}/s)",
        10_000.0 / took.as_secs_f64()
    );
    assert!(out.iter().all(|a| *a == Applied::Added));
    let listing = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert_eq!(listing.matches("expires").count(), 10_000);
    assert!(
        listing.contains("10.0.39.15 timeout 10m"),
        "last address present"
    );
}

/// Right after a bulk insert the kernel grows the set's hash table in the
/// background; a dump meeting that resize misses elements and repeats
/// others. A restart at that moment must still adopt every one, whether
/// or not the first dump was disturbed.
#[test]
fn a_restart_right_after_a_bulk_insert_adopts_every_element() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let n = 100_000u32;
    let mut script = String::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let elems: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "{} timeout 1h",
                    IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())
                )
            })
            .collect();
        script.push_str(&format!(
            "add element inet nftjail sshd-v4 {{ {} }}\n",
            elems.join(", ")
        ));
    }
    let file = std::env::temp_dir().join(format!("nftjail-bulk-{}.nft", std::process::id()));
    std::fs::write(&file, script).unwrap();
    nft(&["-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let kept = b.list("sshd");
    assert_eq!(kept.len(), n as usize);
    let distinct: std::collections::HashSet<_> = kept.iter().map(|(net, _)| *net).collect();
    assert_eq!(distinct.len(), n as usize);
}

#[test]
fn the_kernel_expires_a_ban_by_itself_and_it_can_be_banned_again() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    b.ban(&[order("sshd", "203.0.113.10", 1)]).unwrap();
    assert!(nft(&["list", "set", "inet", "nftjail", "sshd-v4"]).contains("203.0.113.10"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.remaining("sshd", "203.0.113.10".parse().unwrap()), None);
    // Banned again right after expiry (the kernel may not have collected the
    // old element yet): it must really be in the set with the new timeout.
    assert_eq!(
        b.ban(&[order("sshd", "203.0.113.10", 600)]).unwrap(),
        [Applied::Added]
    );
    let v4 = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert!(expires_secs(&v4, "203.0.113.10").unwrap() > 590, "{v4}");
    b.ban(&[order("sshd", "203.0.113.11", 1)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nft(&["list", "set", "inet", "nftjail", "sshd-v4"]).contains("203.0.113.11") {
        assert!(
            Instant::now() < deadline,
            "kernel did not expire the element"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_banned_source_is_refused_on_the_jails_port_only() {
    fresh_netns();
    let lo = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(lo.success());
    let mut b = NftBackend::open("nftjail").unwrap();
    // Two entries: the ports are one anonymous interval set in the rule.
    let ports = [(Proto::Tcp, 2525, 2525), (Proto::Tcp, 2600, 2610)];
    b.reconcile(&[jail("j", &ports, BlockType::Reject)])
        .unwrap();
    let on = |port| TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (_a, _b, _c) = (on(2525), on(2526), on(2605));
    let connect = |from: &str, port: u16| {
        let sock = socket2_connect(from, port);
        sock.map(drop).map_err(|e| e.kind())
    };
    assert_eq!(connect("127.0.0.2", 2525), Ok(()));
    b.ban(&[order("j", "127.0.0.2", 60)]).unwrap();
    assert_eq!(
        connect("127.0.0.2", 2525),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        connect("127.0.0.2", 2605),
        Err(std::io::ErrorKind::ConnectionRefused),
        "inside the jail's port range"
    );
    assert_eq!(
        connect("127.0.0.3", 2525),
        Ok(()),
        "another source still connects"
    );
    assert_eq!(
        connect("127.0.0.2", 2526),
        Ok(()),
        "another port is not the jail's"
    );
    let table = nft(&["list", "chain", "inet", "nftjail", "input"]);
    assert!(
        table.contains("tcp dport { 2525, 2600-2610 } jump j-j"),
        "{table}"
    );
    let chain = nft(&["list", "chain", "inet", "nftjail", "j-j"]);
    assert!(
        chain.contains("ip saddr @j-v4 counter packets 2"),
        "{chain}"
    );

    // A banned prefix refuses every address inside it, and only those.
    b.ban_net(
        "j",
        "127.0.9.0/24".parse().unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    for inside in ["127.0.9.1", "127.0.9.254"] {
        assert_eq!(
            connect(inside, 2525),
            Err(std::io::ErrorKind::ConnectionRefused),
            "{inside}"
        );
    }
    assert_eq!(connect("127.0.10.1", 2525), Ok(()), "outside the prefix");
}

/// Connects from a chosen loopback source address.
fn socket2_connect(from: &str, port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = from.parse().unwrap();
    // SAFETY: plain socket/bind/connect on a fresh fd we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let stream = TcpStream::from_raw_fd(fd);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&sa) as u32,
        );
        assert_eq!(rc, 0, "bind {from}");
        let dst = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&dst as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&dst) as u32,
        );
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _: SocketAddr = stream.peer_addr()?;
        Ok(stream)
    }
}

#[test]
fn prefixes_go_in_interval_sets_without_overlaps_and_survive_a_restart() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let net4: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
    let net6: ipnet::IpNet = "2001:db8:77::/48".parse().unwrap();
    let top: ipnet::IpNet = "255.255.255.0/24".parse().unwrap();
    let hour = Duration::from_secs(3600);
    assert_eq!(b.ban_net("sshd", net4, hour).unwrap(), Applied::Added);
    assert_eq!(b.ban_net("sshd", net6, hour).unwrap(), Applied::Added);
    // The last /24 of the address space has no interval end element.
    assert_eq!(b.ban_net("sshd", top, hour).unwrap(), Applied::Added);
    let s4 = nft(&["list", "set", "inet", "nftjail", "sshd-net4"]);
    assert!(s4.contains("198.51.100.0/24 timeout 1h expires"), "{s4}");
    assert!(s4.contains("255.255.255.0/24 timeout 1h expires"), "{s4}");
    let s6 = nft(&["list", "set", "inet", "nftjail", "sshd-net6"]);
    assert!(s6.contains("2001:db8:77::/48 timeout 1h expires"), "{s6}");

    // Inside or around a banned prefix: refused before the kernel says EEXIST.
    for overlapping in ["198.51.100.128/25", "198.51.0.0/16"] {
        let e = b
            .ban_net("sshd", overlapping.parse().unwrap(), hour)
            .unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }
    // The same prefix: longer extends, shorter changes nothing.
    assert_eq!(
        b.ban_net("sshd", net4, Duration::from_secs(60)).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(
        b.ban_net("sshd", net4, 2 * hour).unwrap(),
        Applied::Extended
    );
    let s4 = nft(&["list", "set", "inet", "nftjail", "sshd-net4"]);
    assert!(s4.contains("198.51.100.0/24 timeout 2h expires"), "{s4}");

    // A restart reads the prefixes back with their time left.
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let listed = b.list("sshd");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let (_, left) = listed.iter().find(|(n, _)| *n == net4).unwrap();
    assert!(left.unwrap() > Duration::from_secs(7100), "{left:?}");

    assert!(b.unban_net("sshd", net4).unwrap());
    assert!(!b.unban_net("sshd", net4).unwrap());
    let s4 = nft(&["list", "set", "inet", "nftjail", "sshd-net4"]);
    assert!(!s4.contains("198.51.100.0/24"), "{s4}");
    assert!(s4.contains("255.255.255.0/24"), "{s4}");
    // After the unban the /25 fits.
    assert_eq!(
        b.ban_net("sshd", "198.51.100.128/25".parse().unwrap(), hour)
            .unwrap(),
        Applied::Added
    );
}

/// A large batch pauses the ruleset watch (the kernel then builds no
/// notification per element), and the ruleset generation tells whether
/// anyone else committed meanwhile. Both answers, with the backend's own
/// watch on the namespace: quiet around our own batches, and loud when `nft`
/// commits in the paused span; and the watch, resumed, sees the next change.
#[test]
fn a_paused_watch_notices_a_commit_by_others_by_the_ruleset_generation() {
    fresh_netns();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&example_jails()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    b.watch_for_tampering(Box::new(move || tx.send(()).is_ok()))
        .unwrap();
    let orders = |base: u32| -> Vec<BanOrder> {
        (0..1_000u32)
            .map(|i| {
                order(
                    "sshd",
                    &IpAddr::from((base + i).to_be_bytes()).to_string(),
                    600,
                )
            })
            .collect()
    };

    // Our own batches, paused inside ban() and across an outer span: nothing by others.
    b.ban(&orders(0x0a00_0000)).unwrap();
    assert!(!b.tampered(), "our own commits counted as someone else's");
    assert!(b.pause_watch());
    b.ban(&orders(0x0a01_0000)).unwrap();
    b.ban(&orders(0x0a02_0000)).unwrap();
    b.resume_watch();
    assert!(!b.tampered(), "our own commits counted as someone else's");

    // Someone else commits while the watch is paused: noticed once, then cleared.
    assert!(b.pause_watch());
    b.ban(&orders(0x0a03_0000)).unwrap();
    nft(&["add", "table", "inet", "someone-else"]);
    b.ban(&orders(0x0a04_0000)).unwrap();
    b.resume_watch();
    assert!(
        b.tampered(),
        "a commit by others in the paused span went unnoticed"
    );
    assert!(!b.tampered(), "answering clears it");
    let listing = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert_eq!(listing.matches("expires").count(), 5_000);

    // Resumed: the watch sees the next deletion of our table.
    assert!(rx.try_recv().is_err(), "woken by our own commits");
    nft(&["delete", "table", "inet", "nftjail"]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(()));
}

#[test]
fn a_refused_order_fails_alone_and_the_rest_of_its_batch_is_applied() {
    fresh_netns();
    let jails = example_jails();
    let mut b = NftBackend::open("nftjail").unwrap();
    b.reconcile(&jails).unwrap();
    let mut e = Enforcer::new(Box::new(b), &jails, None);
    // Past the kernel's limit on an element timeout: the config refuses
    // such a bantime, so the order is made here.
    let mut bad = order("sshd", "192.0.2.66", 600);
    bad.bantime = Duration::from_secs(u64::MAX / 1000);
    let batch = [
        order("sshd", "192.0.2.1", 600),
        order("zimbra-submission", "198.51.100.7", 600),
        bad,
        order("zimbra-submission", "2001:db8::5", 600),
        order("sshd", "192.0.2.2", 600),
    ];
    let refused = e.ban_batch(&batch).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].index, 2);
    assert_eq!(&*refused[0].jail, "sshd");
    assert_eq!(refused[0].target.to_string(), "192.0.2.66/32");
    let msg = refused[0].error.to_string();
    assert!(msg.contains("out of range"), "{msg}");

    let sshd = nft(&["list", "set", "inet", "nftjail", "sshd-v4"]);
    assert!(sshd.contains("192.0.2.1 "), "{sshd}");
    assert!(sshd.contains("192.0.2.2 "), "{sshd}");
    assert!(!sshd.contains("192.0.2.66"), "{sshd}");
    let v4 = nft(&["list", "set", "inet", "nftjail", "zimbra-submission-v4"]);
    assert!(v4.contains("198.51.100.7 "), "{v4}");
    let v6 = nft(&["list", "set", "inet", "nftjail", "zimbra-submission-v6"]);
    assert!(v6.contains("2001:db8::5 "), "{v6}");

    // Nothing of the refused order was kept: the same batch again is
    // refused for that order alone.
    let again = e.ban_batch(&batch).unwrap();
    assert_eq!(again.iter().map(|r| r.index).collect::<Vec<_>>(), [2]);
}

#[test]
fn jails_of_disjoint_ports_share_a_verdict_map_and_each_refuses_only_its_own() {
    fresh_netns();
    let lo = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(lo.success());
    let mut b = NftBackend::open("nftjail").unwrap();
    let a = [(Proto::Tcp, 2525, 2525), (Proto::Tcp, 2600, 2610)];
    b.reconcile(&[
        jail("a", &a, BlockType::Reject),
        jail("b", &[(Proto::Tcp, 3000, 3000)], BlockType::Reject),
    ])
    .unwrap();
    let input = nft(&["list", "chain", "inet", "nftjail", "input"]);
    assert!(
        input.contains("tcp dport vmap { 2525 : jump j-a, 2600-2610 : jump j-a, 3000 : jump j-b }"),
        "{input}"
    );
    let on = |port| TcpListener::bind(("127.0.0.1", port)).unwrap();
    let _listening = [on(2525), on(2605), on(3000), on(2611)];
    let connect =
        |from: &str, port: u16| socket2_connect(from, port).map(drop).map_err(|e| e.kind());
    b.ban(&[order("a", "127.0.0.2", 60), order("b", "127.0.0.3", 60)])
        .unwrap();
    let refused = Err(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(connect("127.0.0.2", 2525), refused);
    assert_eq!(connect("127.0.0.2", 2605), refused, "inside a's range");
    assert_eq!(connect("127.0.0.2", 3000), Ok(()), "b's port");
    assert_eq!(connect("127.0.0.2", 2611), Ok(()), "past a's range");
    assert_eq!(connect("127.0.0.3", 3000), refused);
    assert_eq!(connect("127.0.0.3", 2525), Ok(()), "a's port");
}
