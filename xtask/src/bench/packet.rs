//! Scenario 6: the packet path. What nftjail's chain costs the kernel for
//! every packet that reaches the host, whether or not its source is banned.
//!
//! Ten mail jails with three ports each, their address sets filled, in one
//! namespace; a SYN flood from sources none of them banned (so every rule
//! is evaluated) comes in over a veth from a second namespace. A veth hands
//! the packet to the receiving side in the sender's own softirq, on the
//! sender's CPU: the sending thread's CPU time (pinned to one core) plus
//! what that core's ksoftirqd took is the whole cost of a packet, sending,
//! receiving, the chain and the TCP reset included. Four layouts are
//! loaded in turn with `nft -f` on the same sets: none (the cost of a
//! packet without nftjail), a rule per port, family and set (the layout of
//! earlier releases), a rule per set with the jail's ports as one
//! anonymous set (the release before), and a regular chain per jail with
//! the address lookups, jumped to from the base chain by the jail's ports
//! (the layout the daemon builds now: `nft/nftjail.nft` lists the same way
//! as what the daemon builds, see tests/nft_kernel.rs).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{Mode, Netns};
use crate::gen;

const JAILS: u32 = 10;
const PORTS: [u16; 3] = [25, 465, 587];
/// Banned addresses per jail (IPv4 set), and banned /24 prefixes per jail.
const ADDRS: u32 = 10_000;
const PREFIXES: u32 = 100;
const TX_ADDR: Ipv4Addr = Ipv4Addr::new(172, 31, 99, 1);
const RX_ADDR: Ipv4Addr = Ipv4Addr::new(172, 31, 99, 2);
/// Flood sources: 198.18.0.0/15 (benchmarking), never in a set.
const SOURCES: u32 = 1 << 16;
/// The flood's destination ports: one every jail lists, and one none does
/// (the host's other traffic, which passes the chain too).
const TARGETS: [u16; 2] = [PORTS[0], 443];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Empty,
    PerPort,
    PerSet,
    PerJail,
}

impl Layout {
    fn label(self) -> &'static str {
        match self {
            Layout::Empty => "no rules (the host without nftjail's chain)",
            Layout::PerPort => "a rule per port, family and set (earlier releases)",
            Layout::PerSet => "a rule per set, ports as an anonymous set (the release before)",
            Layout::PerJail => "a chain per jail, jumped to by the jail's ports (now)",
        }
    }
}

pub(super) fn packet_section(report: &mut String, mode: Mode, dir: &Path) -> Result<()> {
    let packets: u64 = match mode {
        Mode::Smoke => 20_000,
        Mode::Fast => 500_000,
        Mode::Full => 2_000_000,
    };
    let rounds = if mode == Mode::Smoke { 1 } else { 3 };
    let (rx, tx) = (Netns::new("pkt-rx")?, Netns::new("pkt-tx")?);
    wire_up(&rx, &tx)?;
    let cpu = flood_cpu();
    let sets = sets_script();
    let layouts = [
        Layout::Empty,
        Layout::PerPort,
        Layout::PerSet,
        Layout::PerJail,
    ];
    let mut best = [[f64::MAX; TARGETS.len()]; 4];
    for _ in 0..rounds {
        for (i, layout) in layouts.iter().enumerate() {
            let script = dir.join("packet.nft");
            std::fs::write(&script, format!("{sets}{}", chain(*layout)))?;
            run_in(&rx, "nft", &["-f", &script.to_string_lossy()])?;
            for (t, port) in TARGETS.iter().enumerate() {
                // Warm up: ARP, caches, the sets' first lookups.
                flood(&tx.0, cpu, *port, packets / 10)?;
                let before = rx_packets(&rx)?;
                let soft = ksoftirqd_ticks(cpu);
                let spent = flood(&tx.0, cpu, *port, packets)?;
                let soft = ksoftirqd_ticks(cpu).saturating_sub(soft);
                let got = rx_packets(&rx)?.saturating_sub(before);
                if got < packets / 2 {
                    bail!("only {got} of {packets} packets reached the jailed namespace");
                }
                let ns = (spent.as_nanos() as f64 + soft as f64 * tick_ns()) / got as f64;
                eprintln!(
                    "packet path, port {port}, {}: {ns:.0} ns/packet ({got} packets; sender {spent:?}, ksoftirqd {soft} ticks)",
                    layout.label(),
                );
                best[i][t] = best[i][t].min(ns);
            }
        }
    }
    let _ = writeln!(
        report,
        "\n## 6. The packet path\n\n{JAILS} mail jails, ports {} each (reject), {ADDRS} banned addresses and {PREFIXES} banned /24 prefixes per jail; \
         a SYN flood to port {} (every jail's) and to port {} (no jail's) from {SOURCES} unbanned sources over a veth from another namespace \
         ({packets} packets each, best of {rounds}). CPU per packet: the pinned sending thread (the receiving softirq runs on it) plus its core's \
         ksoftirqd; in brackets, the chain's own part (less the run without rules).\n",
        PORTS.map(|p| p.to_string()).join(", "),
        TARGETS[0],
        TARGETS[1],
    );
    let _ = writeln!(
        report,
        "| chain | rules | ns/packet, port {} | ns/packet, port {} |\n|---|---|---|---|",
        TARGETS[0], TARGETS[1]
    );
    for (i, layout) in layouts.iter().enumerate() {
        let rules = match layout {
            Layout::Empty => 0,
            Layout::PerPort => JAILS as usize * PORTS.len() * 4,
            Layout::PerSet => JAILS as usize * 4,
            // The jump in the base chain, four lookups in the jail's chain.
            Layout::PerJail => JAILS as usize * 5,
        };
        let cells: Vec<String> = (0..TARGETS.len())
            .map(|t| format!("{:.0} ({:.0})", best[i][t], best[i][t] - best[0][t]))
            .collect();
        let _ = writeln!(
            report,
            "| {} | {rules} | {} |",
            layout.label(),
            cells.join(" | ")
        );
    }
    Ok(())
}

fn run_in(ns: &Netns, cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, cmd])
        .args(args)
        .output()
        .with_context(|| format!("ip netns exec {} {cmd}", ns.0))?;
    if !out.status.success() {
        bail!(
            "{cmd} {args:?} in {}: {}",
            ns.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A veth between the namespaces; the receiver answers the flood's
/// sources through it (its TCP resets) and takes any source (no reverse
/// path filter: the sources are spoofed).
fn wire_up(rx: &Netns, tx: &Netns) -> Result<()> {
    let ip = |args: &[&str]| -> Result<()> {
        let ok = Command::new("ip").args(args).status()?.success();
        if !ok {
            bail!("ip {args:?} failed");
        }
        Ok(())
    };
    ip(&[
        "-n", &tx.0, "link", "add", "vtx", "type", "veth", "peer", "name", "vrx", "netns", &rx.0,
    ])?;
    let (t, r) = (format!("{TX_ADDR}/30"), format!("{RX_ADDR}/30"));
    ip(&["-n", &tx.0, "addr", "add", &t, "dev", "vtx"])?;
    ip(&["-n", &rx.0, "addr", "add", &r, "dev", "vrx"])?;
    for (ns, dev) in [(tx, "vtx"), (rx, "vrx")] {
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns.0, "link", "set", dev, "up"])?;
    }
    ip(&[
        "-n",
        &rx.0,
        "route",
        "add",
        "default",
        "via",
        &TX_ADDR.to_string(),
    ])?;
    run_in(
        rx,
        "sysctl",
        &[
            "-qw",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.vrx.rp_filter=0",
        ],
    )?;
    Ok(())
}

/// The ten jails' sets, filled.
fn sets_script() -> String {
    let mut s = String::from("flush ruleset\ntable inet nftjail {\n");
    for j in 0..JAILS {
        let elems: Vec<String> = (0..ADDRS)
            .map(|i| format!("{} timeout 1h", gen::attacker(j * ADDRS + i, false)))
            .collect();
        let nets: Vec<String> = (0..PREFIXES)
            .map(|i| format!("100.{}.{}.0/24 timeout 1h", 64 + j, i))
            .collect();
        let _ = writeln!(
            s,
            "\tset mail{j}-v4 {{ type ipv4_addr; flags timeout; elements = {{ {} }} }}\n\
             \tset mail{j}-v6 {{ type ipv6_addr; flags timeout; }}\n\
             \tset mail{j}-net4 {{ type ipv4_addr; flags interval,timeout; elements = {{ {} }} }}\n\
             \tset mail{j}-net6 {{ type ipv6_addr; flags interval,timeout; }}",
            elems.join(", "),
            nets.join(", ")
        );
    }
    s
}

/// The chains of one layout, closing the table `sets_script` opened.
fn chain(layout: Layout) -> String {
    if layout == Layout::PerJail {
        return jail_chains();
    }
    let mut s = String::from(
        "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n",
    );
    let ports = PORTS.map(|p| p.to_string());
    for j in 0..JAILS {
        for (family, nfproto, kinds) in [
            ("ip", "ipv4", ["v4", "net4"]),
            ("ip6", "ipv6", ["v6", "net6"]),
        ] {
            for kind in kinds {
                // The family first, as the daemon's rules have it (nft
                // itself would test it only before the address).
                let head = format!("meta nfproto {nfproto}");
                let tail = format!("{family} saddr @mail{j}-{kind} counter reject with tcp reset");
                match layout {
                    Layout::Empty => {}
                    Layout::PerPort => {
                        for p in &ports {
                            let _ = writeln!(s, "\t\t{head} tcp dport {p} {tail}");
                        }
                    }
                    Layout::PerSet => {
                        let _ =
                            writeln!(s, "\t\t{head} tcp dport {{ {} }} {tail}", ports.join(", "));
                    }
                    Layout::PerJail => {}
                }
            }
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// What the daemon builds now: the base chain jumps by port to a regular
/// chain per jail, which holds the jail's four address lookups (the
/// protocol first, then the family, as the daemon's rules have them).
fn jail_chains() -> String {
    let mut s = String::new();
    let ports = PORTS.map(|p| p.to_string()).join(", ");
    for j in 0..JAILS {
        let _ = writeln!(s, "\tchain j-mail{j} {{");
        for (family, nfproto, kinds) in [
            ("ip", "ipv4", ["v4", "net4"]),
            ("ip6", "ipv6", ["v6", "net6"]),
        ] {
            for kind in kinds {
                let _ = writeln!(
                    s,
                    "\t\tmeta l4proto tcp meta nfproto {nfproto} {family} saddr @mail{j}-{kind} counter reject with tcp reset"
                );
            }
        }
        s.push_str("\t}\n");
    }
    s.push_str(
        "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n",
    );
    for j in 0..JAILS {
        let _ = writeln!(s, "\t\ttcp dport {{ {ports} }} jump j-mail{j}");
    }
    s.push_str("\t}\n}\n");
    s
}

/// The core the flood runs on: the last one, away from core 0's chores.
fn flood_cpu() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .unwrap_or(0)
}

fn tick_ns() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1e9 / hz.max(1) as f64
}

/// utime + stime of `ksoftirqd/<cpu>`, in clock ticks (0 if not found).
fn ksoftirqd_ticks(cpu: usize) -> u64 {
    let want = format!("ksoftirqd/{cpu}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != want {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|x| x.parse().ok())
            .collect();
        return f.iter().sum();
    }
    0
}

/// Packets the receiving veth took in.
fn rx_packets(rx: &Netns) -> Result<u64> {
    let dev = run_in(rx, "cat", &["/proc/net/dev"])?;
    dev.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == "vrx").then(|| rest.split_whitespace().nth(1)?.parse().ok())?
        })
        .context("no vrx in /proc/net/dev")
}

/// Sends `n` SYNs to RX_ADDR:`port` from namespace `ns`, on a thread
/// pinned to `cpu`; returns that thread's CPU time.
fn flood(ns: &str, cpu: usize, port: u16, n: u64) -> Result<Duration> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || -> Result<Duration> {
        let file = std::fs::File::open(&path).with_context(|| path.clone())?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns/sched_setaffinity act on this thread only; the fd is open.
        unsafe {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                bail!("setns {path}: {}", std::io::Error::last_os_error());
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
        // SAFETY: a raw socket we close below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            bail!("raw socket: {}", std::io::Error::last_os_error());
        }
        let dst = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(RX_ADDR).to_be(),
            },
            sin_zero: [0; 8],
        };
        let start = thread_cpu();
        let mut pkt = [0u8; 40];
        for i in 0..n {
            let src =
                Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i as u32 % SOURCES));
            syn(&mut pkt, src, RX_ADDR, 1024 + (i % 60_000) as u16, port);
            // SAFETY: sends our buffer to a valid address; errors (a full
            // queue) only lose that packet, which the receiver's count shows.
            unsafe {
                libc::sendto(
                    fd,
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    std::mem::size_of_val(&dst) as u32,
                );
            }
        }
        let spent = thread_cpu().saturating_sub(start);
        // SAFETY: closes the socket opened above.
        unsafe { libc::close(fd) };
        Ok(spent)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An IPv4 + TCP SYN with correct checksums (the kernel fills in the IP
/// header's own checksum and length for a raw socket).
fn syn(pkt: &mut [u8; 40], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) {
    pkt.fill(0);
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&40u16.to_be_bytes());
    pkt[8] = 64;
    pkt[9] = libc::IPPROTO_TCP as u8;
    pkt[12..16].copy_from_slice(&src.octets());
    pkt[16..20].copy_from_slice(&dst.octets());
    let tcp = &mut pkt[20..];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64_240u16.to_be_bytes());
    let mut sum: u32 = 0;
    for pair in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum += libc::IPPROTO_TCP as u32 + 20;
    for pair in tcp.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    tcp[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}
