#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Farm mode against a real `redis-server`: three daemons, each in its own
//! network namespace with its own kernel ruleset, joined by a bridge to
//! Redis and to the attackers.
//!
//! ```text
//!   a 10.9.0.1 ─┐
//!   b 10.9.0.2 ─┤
//!   c 10.9.0.3 ─┼── br0 in hub: redis-server on 10.9.0.254:6379
//!   atk  10.9.0.66 ─┤
//!   atk2 10.9.0.67 ─┘
//! ```

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kernel_set, plug, require_root, sh, until, Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const REDIS: &str = "10.9.0.254";
const SET: &str = "mail-v4";

struct Redis {
    hub: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start(&mut self) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hub, "redis-server"])
            .args(["--bind", REDIS, "--port", "6379", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            // ACL auth, and a user that may touch only our keys. (The
            // default user keeps a password, not `off`: Redis 7.0 replays a
            // transaction of its AOF as the default user.)
            .args(["--user", "default", "on", ">admin", "~*", "&*", "+@all"])
            .args(["--user", "nftjail", "on", ">s3cret"])
            .args(["~nftjail:*", "+@all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        assert!(
            until(Duration::from_secs(10), || self
                .try_cli(&["ping"])
                .as_deref()
                == Some("PONG")),
            "redis-server did not answer"
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill with the pid of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.hub, "redis-cli", "-h", REDIS])
            .args(["--user", "nftjail", "--pass", "s3cret", "--no-auth-warning"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Node {
    ns: Netns,
    ip: String,
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.path().join("mail.log")
    }

    fn fail(&self, addrs: &[String]) {
        let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log())
            .unwrap();
        let mut text = String::new();
        for a in addrs {
            text.push_str(&format!(
                "{now} mx postfix/submission/smtpd[4242]: warning: unknown[{a}]: SASL LOGIN authentication failed: authentication failure\n"
            ));
        }
        f.write_all(text.as_bytes()).unwrap();
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        common::client(&self.dir.path().join("s.sock"), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "nftjail {args:?} failed: {err}");
        out
    }

    /// Stops the daemon (SIGTERM, as systemd does) and starts it again.
    fn restart(&mut self) {
        self.daemon.stop();
        let mut cmd = self.ns.command(BIN);
        cmd.args(["run", "--config"])
            .arg(self.dir.path().join("nftjail.toml"));
        self.daemon = Daemon::spawn(cmd);
    }

    fn banned(&self) -> BTreeSet<String> {
        kernel_set(&self.ns, SET)
    }

    fn holds(&self, addr: &str) -> bool {
        self.banned().contains(addr)
    }
}

struct Farm {
    // Dropped first: the daemons, then Redis, then the namespaces.
    nodes: Vec<Node>,
    redis: Redis,
    atk: Vec<Netns>,
    _hub: Netns,
}

/// Attacker `i` (0: 10.9.0.66, 1: 10.9.0.67) connecting to `node`'s port 587.
fn connect(farm: &Farm, i: usize, node: &Node) -> Result<(), ErrorKind> {
    let addr: SocketAddr = format!("{}:587", node.ip).parse().unwrap();
    farm.atk[i].run(move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

/// A farm of `names.len()` nodes; `cluster` is appended to each node's
/// `[cluster]` section.
fn farm(tag: &str, names: &[&str], cluster: &str, maxretry: u32) -> Farm {
    require_root();
    assert!(
        Path::new("/usr/bin/redis-server").exists() && Path::new("/usr/bin/redis-cli").exists(),
        "redis-server is missing: run `cargo xtask deps`"
    );
    let hub = Netns::new(&format!("{tag}hub"));
    common::bridge(&hub, &format!("{REDIS}/24"));
    let rdir = tempfile::tempdir().unwrap().keep();
    let mut redis = Redis {
        hub: hub.name.clone(),
        dir: rdir,
        child: None,
    };
    redis.start();
    let atk: Vec<Netns> = ["66", "67"]
        .iter()
        .map(|n| {
            let ns = Netns::new(&format!("{tag}atk{n}"));
            plug(&ns, &format!("10.9.0.{n}/24"), &hub, &format!("pa{n}"));
            ns
        })
        .collect();
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ns = Netns::new(&format!("{tag}{name}"));
        let ip = format!("10.9.0.{}", i + 1);
        plug(&ns, &format!("{ip}/24"), &hub, &format!("pn{i}"));
        let listen: SocketAddr = format!("{ip}:587").parse().unwrap();
        let listener = ns.run(move || TcpListener::bind(listen).unwrap());
        std::thread::spawn(move || for _ in listener.incoming() {});
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail.log"), "").unwrap();
        let config = dir.path().join("nftjail.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nsocket = \"{sock}\"\nstate_dir = \"{state}\"\nnever = [\"203.0.113.0/24\"]\n\
                 [jail.mail]\nfilter = \"postfix-sasl\"\nlogpath = \"{log}\"\nport = \"submission\"\n\
                 maxretry = {maxretry}\nfindtime = \"10m\"\nbantime = \"10m\"\nignoreip = [\"10.9.0.200\"]\n\
                 [cluster]\nredis = \"redis://nftjail:s3cret@{REDIS}:6379\"\nnode = \"{name}\"\nmax_bantime = \"1d\"\n{cluster}\n",
                sock = dir.path().join("s.sock").display(),
                state = dir.path().join("state").display(),
                log = dir.path().join("mail.log").display(),
            ),
        )
        .unwrap();
        let mut cmd = ns.command(BIN);
        cmd.args(["run", "--config"]).arg(&config);
        let daemon = Daemon::spawn(cmd);
        daemon.wait_for("farm: connected", Duration::from_secs(20));
        nodes.push(Node {
            ns,
            ip,
            dir,
            daemon,
        });
    }
    Farm {
        nodes,
        redis,
        atk,
        _hub: hub,
    }
}

fn everywhere(farm: &Farm, addr: &str, banned: bool) -> bool {
    until(Duration::from_secs(60), || {
        farm.nodes.iter().all(|n| n.holds(addr) == banned)
    })
}

#[test]
fn bans_unbans_and_counts_are_shared_by_the_farm() {
    let farm = farm("s", &["a", "b", "c"], "shared_counting = true", 3);
    let [a, b, c] = &farm.nodes[..] else {
        unreachable!()
    };
    for n in &farm.nodes {
        assert_eq!(
            connect(&farm, 0, n),
            Ok(()),
            "attacker reaches {} before any ban",
            n.ip
        );
    }

    // An attacker failing on A is refused by B and C.
    a.fail(&vec!["10.9.0.66".to_string(); 3]);
    assert!(
        everywhere(&farm, "10.9.0.66", true),
        "A's ban reaches every node"
    );
    for n in &farm.nodes {
        assert!(
            until(Duration::from_secs(5), || connect(&farm, 0, n)
                == Err(ErrorKind::ConnectionRefused)),
            "attacker refused by {}",
            n.ip
        );
    }
    // The time left, not a fresh bantime: C's ban ends no later than A's.
    let left = |n: &Node| {
        common::kernel(&n.ns, SET)
            .into_iter()
            .find(|e| e.val == "10.9.0.66")
            .and_then(|e| e.expires)
            .unwrap()
    };
    assert!(left(c) <= left(a) + 1, "C {} vs A {}", left(c), left(a));
    b.daemon.wait_for("from the farm", Duration::from_secs(5));

    // An unban on B lifts it everywhere.
    b.ok(&["unban", "mail", "10.9.0.66"]);
    assert!(
        everywhere(&farm, "10.9.0.66", false),
        "B's unban reaches every node"
    );
    assert!(until(Duration::from_secs(5), || connect(&farm, 0, c) == Ok(())));

    // Shared counting: one failure on each node bans at maxretry 3.
    a.fail(&["10.9.0.67".to_string()]);
    b.fail(&["10.9.0.67".to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        farm.nodes.iter().all(|n| !n.holds("10.9.0.67")),
        "two failures across the farm do not ban"
    );
    c.fail(&["10.9.0.67".to_string()]);
    assert!(
        everywhere(&farm, "10.9.0.67", true),
        "the third failure, on C, bans everywhere"
    );
    for n in &farm.nodes {
        assert!(until(Duration::from_secs(5), || connect(&farm, 1, n)
            == Err(ErrorKind::ConnectionRefused)));
    }

    let status = c.ok(&["status"]);
    eprintln!("{status}");
    assert!(status.contains("Farm"), "{status}");
    assert!(
        status.contains("connected") && !status.contains("NOT connected"),
        "{status}"
    );
    for name in ["a (", "b (", "c ("] {
        assert!(status.contains(name), "{status}");
    }
}

#[test]
fn an_outage_loses_nothing_and_lifts_nothing() {
    let mut farm = farm("o", &["a", "b", "c"], "", 3);
    let ban = |n: &Node, addr: &str| n.ok(&["ban", "mail", addr]);
    ban(&farm.nodes[0], "10.9.0.50");
    assert!(everywhere(&farm, "10.9.0.50", true));

    farm.redis.stop();
    let [a, b, _] = &farm.nodes[..] else {
        unreachable!()
    };
    a.daemon.wait_for("unreachable", Duration::from_secs(20));
    // A bans on its own meanwhile, by hand and by its filter, at once.
    let asked = Instant::now();
    ban(a, "10.9.0.66");
    eprintln!(
        "manual ban during the outage answered in {:?}",
        asked.elapsed()
    );
    a.fail(&vec!["10.9.0.67".to_string(); 3]);
    assert!(until(Duration::from_secs(5), || a.holds("10.9.0.66")
        && a.holds("10.9.0.67")));
    let status = a.ok(&["status"]);
    let (_, _, warning) = a.cli(&["status"]);
    eprintln!("{status}");
    assert!(status.contains("NOT connected"), "{status}");
    assert!(warning.contains("Redis unreachable"), "{warning}");
    assert!(!status.contains("Queued for Redis:\t0"), "{status}");
    assert!(b.ok(&["status"]).contains("NOT connected"));
    // No kernel ban is removed by the outage.
    for n in &farm.nodes {
        assert!(n.holds("10.9.0.50"), "{} kept its ban", n.ip);
    }

    farm.redis.start();
    // Kept by Redis (A may already have sent what it queued meanwhile).
    let kept: u32 = farm.redis.cli(&["XLEN", "nftjail:bans"]).parse().unwrap();
    assert!(kept >= 1, "Redis kept the stream over its restart");
    let [a, b, c] = &farm.nodes[..] else {
        unreachable!()
    };
    // Reconnecting waits a growing, jittered while: up to 45 s.
    for addr in ["10.9.0.66", "10.9.0.67", "10.9.0.50"] {
        assert!(
            everywhere(&farm, addr, true),
            "{addr} on every node after the outage"
        );
    }
    for n in [b, c] {
        assert!(until(Duration::from_secs(5), || connect(&farm, 0, n)
            == Err(ErrorKind::ConnectionRefused)));
    }
    assert!(until(Duration::from_secs(15), || a
        .ok(&["status"])
        .contains("Queued for Redis:\t0")));
}

#[test]
fn a_queue_survives_a_restart_during_an_outage() {
    let mut farm = farm("q", &["a", "b"], "", 3);
    farm.redis.stop();
    for n in &farm.nodes {
        n.daemon.wait_for("unreachable", Duration::from_secs(20));
    }
    farm.nodes[0].ok(&["ban", "mail", "10.9.0.66"]);
    let a = &farm.nodes[0];
    assert!(until(Duration::from_secs(5), || a.holds("10.9.0.66")));
    let status = a.ok(&["status"]);
    assert!(status.contains("Queued for Redis:\t1"), "{status}");

    // A restarts while Redis is still down: the ban waits in its store.
    farm.nodes[0].restart();
    let a = &farm.nodes[0];
    a.daemon.wait_for(
        "1 bans and unbans from before the restart",
        Duration::from_secs(20),
    );
    a.daemon.wait_for("unreachable", Duration::from_secs(20));
    let status = a.ok(&["status"]);
    eprintln!("{status}");
    assert!(status.contains("NOT connected"), "{status}");
    assert!(status.contains("Queued for Redis:\t1"), "{status}");
    assert!(!farm.nodes[1].holds("10.9.0.66"));

    farm.redis.start();
    let [a, b] = &farm.nodes[..] else {
        unreachable!()
    };
    // Reconnecting waits a growing, jittered while: up to 45 s.
    assert!(
        until(Duration::from_secs(60), || b.holds("10.9.0.66")),
        "the ban queued before A's restart reaches B"
    );
    assert!(until(Duration::from_secs(5), || connect(&farm, 0, b)
        == Err(ErrorKind::ConnectionRefused)));
    // With the time it had left, not a fresh bantime.
    let left = |n: &Node| {
        common::kernel(&n.ns, SET)
            .into_iter()
            .find(|e| e.val == "10.9.0.66")
            .and_then(|e| e.expires)
            .unwrap()
    };
    assert!(left(b) <= left(a) + 1, "B {} vs A {}", left(b), left(a));
    assert!(until(Duration::from_secs(15), || a
        .ok(&["status"])
        .contains("Queued for Redis:\t0")));
}

#[test]
fn bad_records_and_protected_addresses_are_refused() {
    let farm = farm("r", &["a"], "", 3);
    let a = &farm.nodes[0];
    let soon = (std::time::SystemTime::now() + Duration::from_secs(600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let years = "99999999999999".to_string();
    let long = "x".repeat(5000);
    let record = |jail: &str, target: &str, until: &str, op: &str| {
        farm.redis.cli(&[
            "XADD",
            "nftjail:bans",
            "*",
            "v",
            "1",
            "node",
            "evil",
            "op",
            op,
            "jail",
            jail,
            "target",
            target,
            "until",
            until,
            "cause",
            "manual",
        ]);
    };
    let refusals = [
        (
            "mail",
            "999.1.2.3",
            soon.as_str(),
            "ban",
            "neither an address",
        ),
        ("mail", "0.0.0.0/4", &soon, "ban", "wider than"),
        ("mail", "10.9.0.1/8", &soon, "ban", "host bits"),
        (
            "nope",
            "192.0.2.9",
            &soon,
            "ban",
            "not one this node shares",
        ),
        ("mail", "192.0.2.9", &years, "ban", "max_bantime"),
        ("mail", "192.0.2.9", &soon, "flush", "neither ban nor unban"),
        ("mail", &long, &soon, "ban", "bytes"),
        // ignoreip, the node's own address, loopback, a `never` network:
        ("mail", "10.9.0.200", &soon, "ban", "never bans"),
        ("mail", "10.9.0.1", &soon, "ban", "never bans"),
        ("mail", "127.0.0.1", &soon, "ban", "never bans"),
        ("mail", "203.0.113.0/28", &soon, "ban", "never bans"),
    ];
    for (jail, target, until, op, said) in refusals {
        record(jail, target, until, op);
        a.daemon.wait_for(said, Duration::from_secs(10));
    }
    farm.redis
        .cli(&["XADD", "nftjail:bans", "*", "garbage", "\u{1b}[31m"]);
    a.daemon.wait_for("no v field", Duration::from_secs(10));
    // A good record after all that is still applied.
    record("mail", "192.0.2.99", &soon, "ban");
    assert!(until(Duration::from_secs(10), || a.holds("192.0.2.99")));
    assert_eq!(
        a.banned(),
        BTreeSet::from(["192.0.2.99".to_string()]),
        "nothing refused reached the kernel"
    );
    let status = a.ok(&["status"]);
    assert!(status.contains("Records refused:\t12"), "{status}");
    assert!(a.daemon.log().matches("record refused").count() >= 12);
}

/// Propagation latency A → C (A's log line → C's enforcer applied it) and
/// a 10,000-ban burst. Numbers are printed, not asserted.
/// The harness, not the daemon: a node that resolved the hub's address
/// still reaches it after a later node's port joins the bridge with a lower
/// MAC address, which a bridge without an address of its own would take
/// (the farms above plug and start their nodes one after another).
#[test]
fn the_hub_keeps_its_address_as_nodes_are_plugged_in() {
    require_root();
    let hub = Netns::new("machub");
    common::bridge(&hub, "10.9.4.254/24");
    let to: SocketAddr = "10.9.4.254:7000".parse().unwrap();
    // Never accepted: the kernel completes the handshakes into the backlog.
    let _listener = hub.run(move || TcpListener::bind(to).unwrap());
    let reaches = |ns: &Netns| {
        until(Duration::from_secs(5), || {
            ns.run(move || TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok())
        })
    };
    // Port MACs chosen so that a bridge following its lowest port would
    // move from the first node's port to the third's, while the second node
    // holds the first port's address in its neighbour table.
    let mut nodes = Vec::new();
    for (i, mac) in [
        "02:00:00:00:00:03",
        "02:00:00:00:00:04",
        "02:00:00:00:00:01",
    ]
    .into_iter()
    .enumerate()
    {
        let ns = Netns::new(&format!("mac{i}"));
        let port = format!("pm{i}");
        plug(&ns, &format!("10.9.4.{}/24", i + 1), &hub, &port);
        sh(&["ip", "-n", &hub.name, "link", "set", &port, "address", mac]);
        assert!(reaches(&ns), "node {i} reaches the hub once plugged in");
        nodes.push(ns);
    }
    for (i, ns) in nodes.iter().enumerate() {
        assert!(
            reaches(ns),
            "node {i} still reaches the hub after the others were plugged in"
        );
    }
}

#[test]
#[ignore]
fn measure() {
    let mut farm = farm("m", &["a", "c"], "", 1);
    let (a, c) = (&farm.nodes[0], &farm.nodes[1]);
    // One ban first, not counted: Redis's first append-only write after
    // its start, and each side's first script call, are not propagation.
    a.fail(&["172.17.0.1".to_string()]);
    c.daemon
        .wait_for("addr=172.17.0.1 from the farm", Duration::from_secs(10));
    let mut lat = Vec::new();
    for i in 0..1000u32 {
        let addr = format!("172.16.{}.{}", i / 250, i % 250 + 1);
        let t = Instant::now();
        a.fail(std::slice::from_ref(&addr));
        c.daemon.wait_for(
            &format!("addr={addr} from the farm"),
            Duration::from_secs(10),
        );
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "MEASURE propagation A -> C over {} bans: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );

    let burst: Vec<String> = (0..10_000u32)
        .map(|i| format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let before = c.banned().len();
    let t = Instant::now();
    a.fail(&burst);
    // Listing 10,000 elements costs the kernel and nft a while: every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.banned().len() < before + burst.len() {
        assert!(Instant::now() < deadline, "the burst did not reach C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t.elapsed();
    eprintln!(
        "MEASURE burst of {} bans on A reached C's kernel in {:.2} s: {:.0} bans/s",
        burst.len(),
        took.as_secs_f64(),
        burst.len() as f64 / took.as_secs_f64()
    );
    farm.redis.stop();
}
