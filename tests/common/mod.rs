#![allow(clippy::disallowed_methods)]
//! Shared test plumbing: throwaway network namespaces joined by veth pairs,
//! and a daemon child process whose stderr is watched.
//!
//! Everything here needs root and iproute2; a missing prerequisite fails the
//! test with a clear message, it never passes silently.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod samples;

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates network namespaces and must run as root (cargo xtask ci)"
    );
    for tool in ["/usr/sbin/ip", "/usr/sbin/nft"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `cargo xtask deps`"
        );
    }
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("nftjail-t{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `f` on a fresh thread that has entered this namespace; sockets it
    /// creates stay in the namespace whichever thread uses them later.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// `ip netns exec NAME args…` as a Command to adjust and spawn.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins `a` and `b` with a veth pair and gives each end its addresses
/// (`nodad` so IPv6 works at once).
pub fn link(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str], tag: &str) {
    let (ia, ib) = (format!("va{tag}"), format!("vb{tag}"));
    sh(&[
        "ip", "link", "add", &ia, "netns", &a.name, "type", "veth", "peer", "name", &ib, "netns",
        &b.name,
    ]);
    for (ns, ifname, addrs) in [(a, &ia, a_addrs), (b, &ib, b_addrs)] {
        for addr in addrs {
            let mut args = vec!["ip", "-n", &ns.name, "addr", "add", addr, "dev", ifname];
            if addr.contains(':') {
                args.push("nodad");
            }
            sh(&args);
        }
        sh(&["ip", "-n", &ns.name, "link", "set", ifname, "up"]);
    }
    wait_up(a, &ia);
    wait_up(b, &ib);
}

/// The bridge `br0` in `hub`, with `addr`, up: the switch the farm tests
/// plug their nodes into. Its MAC address is set here because a bridge
/// without one takes its lowest port's, which changes as nodes are plugged
/// in: a node that resolved the hub's address before then keeps sending to
/// the old MAC, which the bridge hands up as another host's frame and the
/// hub's IP drops, until the node's neighbour entry expires, tens of
/// seconds later.
pub fn bridge(hub: &Netns, addr: &str) {
    sh(&[
        "ip",
        "-n",
        &hub.name,
        "link",
        "add",
        "br0",
        "address",
        "02:00:00:00:00:fe",
        "type",
        "bridge",
    ]);
    sh(&["ip", "-n", &hub.name, "addr", "add", addr, "dev", "br0"]);
    sh(&["ip", "-n", &hub.name, "link", "set", "br0", "up"]);
}

/// A veth from `ns` (address `addr`) to the bridge `br0` of `hub`, whose
/// end there is `port`.
pub fn plug(ns: &Netns, addr: &str, hub: &Netns, port: &str) {
    let inside = format!("{port}i");
    sh(&[
        "ip", "link", "add", &inside, "netns", &ns.name, "type", "veth", "peer", "name", port,
        "netns", &hub.name,
    ]);
    sh(&["ip", "-n", &ns.name, "addr", "add", addr, "dev", &inside]);
    sh(&["ip", "-n", &ns.name, "link", "set", &inside, "up"]);
    sh(&["ip", "-n", &hub.name, "link", "set", port, "master", "br0"]);
    sh(&["ip", "-n", &hub.name, "link", "set", port, "up"]);
    wait_up(ns, &inside);
    wait_up(hub, port);
    // The first port up gives the bridge its carrier, and the bridge too is
    // given its queue by the link watcher, later.
    wait_up(hub, "br0");
}

/// Waits until `ifname` in `ns` is operationally up. `link set up` returns
/// before the kernel's link watcher has marked a veth's carrier and given it
/// a real queue; until then every packet is dropped, and a first connection
/// can time out on a busy machine.
pub fn wait_up(ns: &Netns, ifname: &str) {
    let up = until(Duration::from_secs(10), || {
        let out = Command::new("ip")
            .args(["-n", &ns.name, "-o", "link", "show", "dev", ifname])
            .output()
            .expect("cannot run ip");
        String::from_utf8_lossy(&out.stdout).contains(" state UP ")
    });
    assert!(up, "{ifname} in {} did not come up", ns.name);
}

/// A running `nftjail` child with its stderr collected line by line.
pub struct Daemon {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Daemon {
        cmd.stderr(Stdio::piped())
            .stdout(Stdio::null())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("cannot start nftjail");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let keep = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nftjail] {line}");
                keep.lock().expect("log lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Daemon { child, lines, rx }
    }

    /// Like [`Daemon::wait_for`], but a line already seen counts too: for
    /// what the daemon may log before the line a test waited for first
    /// (sources start before "ready" is logged, so a ban can precede it).
    pub fn wait_for_seen(&self, needle: &str, timeout: Duration) {
        // The reader thread keeps a line before it sends it, so a line not
        // kept yet is still to come through the channel.
        if !self.log().contains(needle) {
            self.wait_for(needle, timeout);
        }
    }

    /// Waits for a stderr line containing `needle`; panics with the log so far.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no log line containing {needle:?} within {timeout:?}; log:\n{}",
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    pub fn stop(&mut self) {
        // SAFETY: kill with a valid pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nftjail --socket SOCKET ARGS`: (exit code, stdout, stderr).
pub fn client(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nftjail"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run nftjail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`client`] that must succeed: its stdout, or the test fails with the
/// command's error.
pub fn client_ok(socket: &Path, args: &[&str]) -> String {
    let (code, out, err) = client(socket, args);
    assert_eq!(code, 0, "nftjail {args:?} failed: {err}");
    out
}

/// Polls `cond` until it holds (true) or `timeout` passes (false).
pub fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `ok` until it holds and returns how long that took; the test fails
/// with `what` when `limit` passes first (a deadline, not a timing claim).
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// A daemon's own directory (config, logs, socket, state store), removed
/// when the test ends.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// Writes `nftjail.toml`: the `[daemon]` socket and state directory in
    /// this directory, then `config`, in which `{d}` stands for the
    /// directory. Each of `logs` is created empty.
    pub fn new(logs: &[&str], config: &str) -> Workdir {
        require_root();
        let w = Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for log in logs {
            let path = w.path(log);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("log directory");
            }
            std::fs::write(path, "").expect("empty log");
        }
        w.configure(config);
        w
    }

    /// Rewrites `nftjail.toml` as [`Workdir::new`] wrote it, with `config`
    /// in place of the old one: what an admin does before a reload.
    pub fn configure(&self, config: &str) {
        let d = self.dir.path().display().to_string();
        let config = config.replace("{d}", &d);
        self.write(
            "nftjail.toml",
            &format!(
                "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n{config}"
            ),
        );
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    pub fn append(&self, log: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(log))
            .expect("open log");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// `nftjail run` with this config in `ns`, once it is ready.
    pub fn start(&self, ns: &Netns, limit: Duration) -> Daemon {
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_nftjail"));
        cmd.arg("run")
            .arg("--config")
            .arg(self.path("nftjail.toml"));
        let d = Daemon::spawn(cmd);
        d.wait_for("ready:", limit);
        d
    }

    /// A client command over the control socket; its output, or the test
    /// fails with the command's error.
    pub fn cli(&self, args: &[&str]) -> String {
        client_ok(&self.path("nftjail.sock"), args)
    }
}

/// One element of `nft -j list set`: value, timeout and expires in seconds.
#[derive(Debug, Clone)]
pub struct Elem {
    pub val: String,
    pub timeout: Option<u64>,
    pub expires: Option<u64>,
}

/// Our table's set `set` as `nft -j` lists it (empty when it is missing).
pub fn kernel(ns: &Netns, set: &str) -> Vec<Elem> {
    let out = ns
        .command("nft")
        .args(["-j", "list", "set", "inet", "nftjail", set])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut elems = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        let Some(list) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in list {
            let (val, timeout, expires) = match e.get("elem") {
                Some(inner) => (
                    &inner["val"],
                    inner["timeout"].as_u64(),
                    inner["expires"].as_u64(),
                ),
                None => (e, None, None),
            };
            let val = match val.get("prefix") {
                Some(p) => format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]),
                None => val.as_str().unwrap().to_string(),
            };
            elems.push(Elem {
                val,
                timeout,
                expires,
            });
        }
    }
    elems
}

pub fn kernel_set(ns: &Netns, set: &str) -> std::collections::BTreeSet<String> {
    kernel(ns, set).into_iter().map(|e| e.val).collect()
}
