#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Farm mode over rediss://: a real `redis-server` speaking only TLS and
//! asking for client certificates, with a CA and certificates made by
//! `openssl` for the test. All four nodes start at once. Two trusting that
//! CA share a ban; a third trusting another CA is refused, says why, and
//! still bans on its own; a fourth without a client certificate is refused.
//!
//! ```text
//!   a 10.9.1.1 ─┐
//!   b 10.9.1.2 ─┤
//!   c 10.9.1.3 ─┼── br0 in hub: redis-server, TLS only, on 10.9.1.254:6380
//!   d 10.9.1.4 ─┘   (c trusts the wrong CA, d shows no certificate)
//! ```

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{kernel_set, require_root, until, Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");
const REDIS: &str = "10.9.1.254";
const PORT: &str = "6380";
const SET: &str = "mail-v4";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is missing: run `cargo xtask deps`");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` (`name.pem`, `name.key`).
fn ca(dir: &Path, name: &str) {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate `name.pem` (key `name.key`) signed by `ca`, naming `san`.
fn issue(dir: &Path, ca: &str, name: &str, san: &str, usage: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    let (pem, key, csr) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

struct Redis {
    child: Child,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    ns: Netns,
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Node {
    fn ok(&self, args: &[&str]) -> String {
        common::client_ok(&self.dir.path().join("s.sock"), args)
    }

    fn banned(&self) -> BTreeSet<String> {
        kernel_set(&self.ns, SET)
    }
}

/// A node set up and checked, its daemon not started yet.
struct Prepared {
    ns: Netns,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Prepared {
    fn start(self) -> Node {
        let mut cmd = self.ns.command(BIN);
        cmd.args(["run", "--config"]).arg(&self.config);
        Node {
            ns: self.ns,
            dir: self.dir,
            daemon: Daemon::spawn(cmd),
        }
    }
}

/// A node trusting `ca`, showing the client certificate in `certs` if given.
fn node(hub: &Netns, i: usize, name: &str, ca: &Path, certs: Option<&Path>) -> Prepared {
    let ns = Netns::new(&format!("tls{name}"));
    common::plug(&ns, &format!("10.9.1.{}/24", i + 1), hub, &format!("tn{i}"));
    // Set-up, not the test: the node reaches Redis's port before its daemon
    // starts, so a first connection is not lost to a link still coming up.
    let to: std::net::SocketAddr = format!("{REDIS}:{PORT}").parse().unwrap();
    assert!(
        until(Duration::from_secs(10), || ns.run(move || {
            std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok()
        })),
        "node {name} cannot reach Redis"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mail.log"), "").unwrap();
    let config = dir.path().join("nftjail.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{sock}\"\nstate_dir = \"{state}\"\n\
             [jail.mail]\nfilter = \"postfix-sasl\"\nlogpath = \"{log}\"\nport = \"submission\"\n\
             maxretry = 3\nfindtime = \"10m\"\nbantime = \"10m\"\n\
             [cluster]\nredis = \"rediss://nftjail:s3cret@{REDIS}:{PORT}\"\nnode = \"{name}\"\n\
             tls_ca = \"{ca}\"\n{client}",
            sock = dir.path().join("s.sock").display(),
            state = dir.path().join("state").display(),
            log = dir.path().join("mail.log").display(),
            ca = ca.display(),
            client = certs
                .map(|c| format!(
                    "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                    c.join("client.pem").display(),
                    c.join("client.key").display()
                ))
                .unwrap_or_default(),
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Prepared { ns, dir, config }
}

#[test]
fn nodes_share_bans_over_rediss_and_a_wrong_ca_is_refused() {
    require_root();
    assert!(
        Path::new("/usr/bin/redis-server").exists(),
        "redis-server is missing: run `cargo xtask deps`"
    );
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    ca(c, "ca");
    ca(c, "other");
    issue(c, "ca", "server", &format!("IP:{REDIS}"), "serverAuth");
    issue(c, "ca", "client", "DNS:nftjail-node", "clientAuth");

    let hub = Netns::new("tlshub");
    common::bridge(&hub, &format!("{REDIS}/24"));
    let path = |f: &str| c.join(f).display().to_string();
    let _redis = Redis {
        child: hub
            .command("redis-server")
            .args([
                "--bind",
                REDIS,
                "--port",
                "0",
                "--tls-port",
                PORT,
                "--save",
                "",
            ])
            .args(["--tls-cert-file", &path("server.pem")])
            .args(["--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem")])
            .args(["--tls-auth-clients", "yes"])
            // A password too: Redis refuses other hosts without one.
            .args(["--user", "default", "on", ">admin", "~*", "&*", "+@all"])
            .args(["--user", "nftjail", "on", ">s3cret", "~nftjail:*", "+@all"])
            .arg("--dir")
            .arg(c)
            .stdout(std::fs::File::create(c.join("redis.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server"),
    };
    let cli = |args: &[&str]| {
        hub.command("redis-cli")
            .args(["-h", REDIS, "-p", PORT, "--tls"])
            .args(["--user", "nftjail", "--pass", "s3cret", "--no-auth-warning"])
            .args(["--cacert", &path("ca.pem")])
            .args(["--cert", &path("client.pem"), "--key", &path("client.key")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    assert!(
        until(Duration::from_secs(10), || cli(&["ping"]).as_deref()
            == Some("PONG")),
        "redis-server did not answer over TLS: {}",
        std::fs::read_to_string(c.join("redis.log")).unwrap_or_default()
    );

    // All four daemons start at once, as a farm does after a reboot or a
    // config push: the two refused nodes' handshakes must not hold up the
    // good ones'.
    let prepared = [
        node(&hub, 0, "a", &c.join("ca.pem"), Some(c)),
        node(&hub, 1, "b", &c.join("ca.pem"), Some(c)),
        node(&hub, 2, "c", &c.join("other.pem"), Some(c)),
        node(&hub, 3, "d", &c.join("ca.pem"), None),
    ];
    let [a, b, wrong, anonymous] = prepared.map(Prepared::start);
    a.daemon
        .wait_for("farm: connected", Duration::from_secs(20));
    b.daemon
        .wait_for("farm: connected", Duration::from_secs(20));
    let refused = wrong
        .daemon
        .wait_for("TLS with Redis", Duration::from_secs(20));
    assert!(refused.contains("tls_ca"), "{refused}");
    // Redis asks for a client certificate: without one, no farm.
    let refused = anonymous.daemon.wait_for("farm: ", Duration::from_secs(20));
    eprintln!("without a client certificate: {refused}");
    assert!(refused.contains("tls_cert"), "{refused}");

    // A's ban reaches B over TLS.
    a.ok(&["ban", "mail", "10.9.1.66"]);
    assert!(
        until(Duration::from_secs(20), || b.banned().contains("10.9.1.66")),
        "A's ban reaches B"
    );
    b.daemon.wait_for("from the farm", Duration::from_secs(5));
    assert_eq!(cli(&["XLEN", "nftjail:bans"]).as_deref(), Some("1"));

    // The node that trusts the wrong CA bans on its own, and says so.
    wrong.ok(&["ban", "mail", "10.9.1.77"]);
    assert!(until(Duration::from_secs(5), || wrong
        .banned()
        .contains("10.9.1.77")));
    assert!(!wrong.banned().contains("10.9.1.66"));
    let status = wrong.ok(&["status"]);
    eprintln!("{status}");
    assert!(status.contains("NOT connected"), "{status}");
    assert!(status.contains("rediss://"), "{status}");
    assert!(anonymous.ok(&["status"]).contains("NOT connected"));
}
