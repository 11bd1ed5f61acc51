#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! The control socket against a running daemon with the real nft backend in a
//! throwaway network namespace: every command, fail2ban-client's forms, exit
//! codes, hostile clients, a non-root user, reload, and many clients at once
//! while lines stream in.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{require_root, Daemon, Netns};
use nftjail::control::client::request;
use nftjail::control::protocol::{Reply, Request};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

struct Fixture {
    ns: Netns,
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Fixture {
    /// A daemon with jails `a` (a.log, maxretry 2) and `b` (b.log, maxretry 3)
    /// plus whatever `extra` adds.
    fn start(tag: &str, extra: &str) -> Fixture {
        require_root();
        let ns = Netns::new(tag);
        let dir = tempfile::tempdir().unwrap();
        // Others may traverse the directory: the socket's own mode must keep
        // a non-root user out, not the directory's.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["a.log", "b.log"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let fx_config = config_text(dir.path(), "1h", extra);
        std::fs::write(dir.path().join("nftjail.toml"), fx_config).unwrap();
        let mut cmd = ns.command(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(dir.path().join("nftjail.toml"));
        let daemon = Daemon::spawn(cmd);
        daemon.wait_for("ready:", Duration::from_secs(10));
        Fixture { ns, dir, daemon }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("nftjail.sock")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ask(&self, req: Request) -> Reply {
        request(&self.socket(), &req).unwrap()
    }

    /// Runs the CLI: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        common::client(&self.socket(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "nftjail {args:?} failed: {err}");
        out
    }

    fn set(&self, name: &str) -> String {
        self.ns
            .output("nft", &["list", "set", "inet", "nftjail", name])
    }

    fn append(&self, log: &str, lines: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(log))
            .unwrap();
        f.write_all(lines.as_bytes()).unwrap();
    }
}

fn config_text(dir: &Path, bantime_a: &str, extra: &str) -> String {
    format!(
        "[daemon]\nsocket = \"{d}/nftjail.sock\"\nstate_dir = \"{d}/state\"\n\
         [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 2\nbantime = \"{bantime_a}\"\n\
         [jail.b]\nfailregex = ['^bad login from <HOST>$']\nlogpath = \"{d}/b.log\"\nmaxretry = 3\nbantime = \"1h\"\n{extra}",
        d = dir.display()
    )
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn every_command_over_the_socket_and_in_the_kernel() {
    let fx = Fixture::start("ctl-cmds", "");
    fx.append(
        "a.log",
        "fail from 203.0.113.5\nfail from 203.0.113.5\nfail from 203.0.113.6\n",
    );
    fx.daemon
        .wait_for("ban: jail=a addr=203.0.113.5", Duration::from_secs(5));

    let status = fx.ok(&["status"]);
    assert!(status.starts_with("Status\n"), "{status}");
    assert!(status.contains("|- Number of jail:\t2\n"), "{status}");
    assert!(status.contains("`- Jail list:\ta, b\n"), "{status}");

    let a = fx.ok(&["status", "a"]);
    let log_a = fx.path("a.log").display().to_string();
    for want in [
        "Status for the jail: a\n".to_string(),
        "|- Filter\n".into(),
        "|  |- Currently failed:\t1\n".into(),
        "|  |- Total failed:\t3\n".into(),
        format!("|  `- File list:\t{log_a}\n"),
        "`- Actions\n".into(),
        "   |- Currently banned:\t1\n".into(),
        "   |- Total banned:\t1\n".into(),
        "   `- Banned IP list:\t203.0.113.5\n".into(),
    ] {
        assert!(a.contains(&want), "missing {want:?} in:\n{a}");
    }
    let j = json(&fx.ok(&["status", "a", "--json"]));
    assert_eq!(j["kind"], "jail_status");
    assert_eq!(j["total_failed"], 3);
    assert_eq!(j["banned"][0], "203.0.113.5");

    // Manual ban, v4 and v6, with a duration: in the kernel with that timeout.
    let out = fx.ok(&["ban", "b", "203.0.113.7", "--for", "2h"]);
    assert!(out.contains("203.0.113.7 banned"), "{out}");
    let set = fx.set("b-v4");
    assert!(set.contains("203.0.113.7 timeout 2h"), "{set}");
    fx.ok(&["ban", "b", "2001:db8::7"]);
    assert!(fx.set("b-v6").contains("2001:db8::7 timeout 1h"));
    // A /32 is one address.
    fx.ok(&["ban", "a", "203.0.113.8/32"]);
    assert!(fx.set("a-v4").contains("203.0.113.8"));

    let j = json(&fx.ok(&["banned", "203.0.113.7", "--json"]));
    assert_eq!(j["bans"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["bans"][0]["jail"], "b");
    let left = j["bans"][0]["remaining"].as_u64().unwrap();
    assert!(left > 7000 && left <= 7200, "{left}");
    let all = fx.ok(&["banned"]);
    assert_eq!(all.lines().count(), 4, "{all}");

    // unban JAIL ADDR
    fx.ok(&["unban", "b", "203.0.113.7"]);
    assert!(!fx.set("b-v4").contains("203.0.113.7"));
    // unban ADDR lifts it from every jail.
    fx.ok(&["ban", "a", "203.0.113.9"]);
    fx.ok(&["ban", "b", "203.0.113.9"]);
    let out = fx.ok(&["unban", "203.0.113.9"]);
    assert!(
        out.contains("a: 203.0.113.9 unbanned") && out.contains("b: 203.0.113.9 unbanned"),
        "{out}"
    );
    assert!(!fx.set("a-v4").contains("203.0.113.9") && !fx.set("b-v4").contains("203.0.113.9"));
    // unban --all empties every set.
    fx.ok(&["unban", "--all"]);
    for s in ["a-v4", "a-v6", "b-v4", "b-v6"] {
        assert!(
            !fx.set(s).contains("elements"),
            "{s} not empty: {}",
            fx.set(s)
        );
    }
    match fx.ask(Request::Status {
        jail: Some("a".into()),
    }) {
        Reply::JailStatus(s) => {
            assert_eq!(s.currently_banned, 0);
            assert_eq!(s.total_banned, 3, "1 automatic + 2 manual bans in a");
        }
        r => panic!("{r:?}"),
    }

    // Prefixes: in the interval set, covering addresses for `banned`,
    // listed by `status`, refused when they have host bits or cover an
    // ignored address.
    fx.ok(&["ban", "b", "198.51.100.0/24", "--for", "1h"]);
    let set = fx.set("b-net4");
    assert!(set.contains("198.51.100.0/24 timeout 1h"), "{set}");
    fx.ok(&["ban", "b", "2001:db8:5::/48"]);
    assert!(fx.set("b-net6").contains("2001:db8:5::/48 timeout 1h"));
    let j = json(&fx.ok(&["banned", "198.51.100.77", "--json"]));
    assert_eq!(j["bans"][0]["addr"], "198.51.100.0/24", "{j}");
    assert!(fx.ok(&["status", "b"]).contains("198.51.100.0/24"));
    let (code, _, err) = fx.cli(&["ban", "b", "198.51.100.7/24"]);
    assert_eq!(code, 6, "host bits: {err}");
    let (code, _, err) = fx.cli(&["ban", "b", "198.51.100.128/25"]);
    assert_eq!(code, 7, "overlap: {err}");
    let (code, _, err) = fx.cli(&["ban", "b", "127.0.0.0/8"]);
    assert_eq!(code, 7, "covers ignoreself: {err}");
    fx.ok(&["unban", "b", "198.51.100.0/24"]);
    assert!(!fx.set("b-net4").contains("198.51.100.0/24"));
    fx.ok(&["unban", "--all"]);
    assert!(!fx.set("b-net6").contains("elements"));

    let v = fx.ok(&["version"]);
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
}

#[test]
fn errors_have_distinct_exit_codes_and_hostile_clients_are_answered() {
    let fx = Fixture::start("ctl-errors", "");
    let (code, _, err) = fx.cli(&["ban", "nope", "203.0.113.1"]);
    assert_eq!(code, 5, "unknown jail: {err}");
    assert!(err.contains("no jail \"nope\""), "{err}");
    let (code, _, err) = fx.cli(&["ban", "a", "203.0.113.300"]);
    assert_eq!(code, 6, "bad address: {err}");
    let (code, _, err) = fx.cli(&["ban", "a", "0.0.0.0/0"]);
    assert_eq!(code, 6, "everything: {err}");
    // ignoreself: loopback is never banned unless forced.
    let (code, _, err) = fx.cli(&["ban", "a", "127.0.0.1"]);
    assert_eq!(code, 7, "refused: {err}");
    assert!(!fx.set("a-v4").contains("127.0.0.1"));
    fx.ok(&["ban", "a", "127.0.0.1", "--force"]);
    assert!(fx.set("a-v4").contains("127.0.0.1"));

    let (code, _, err) = Command::new(BIN)
        .args(["--socket", "/nonexistent/nftjail.sock", "status"])
        .output()
        .map(|o| {
            (
                o.status.code().unwrap(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, 3, "not running: {err}");
    assert!(err.contains("not running"), "{err}");

    // Garbage inside a valid frame: an error answer, connection still usable.
    let mut s = UnixStream::connect(fx.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for body in [
        &b"\x00\xff\xfe binary junk"[..],
        b"{\"v\":1,\"cmd\":\"format c:\"}",
        b"[]",
    ] {
        s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
        s.write_all(body).unwrap();
        let answer = read_answer(&mut s);
        assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    }
    // An oversized frame is refused before it is read.
    let mut s = UnixStream::connect(fx.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(200_000_000u32).to_be_bytes()).unwrap();
    let answer = read_answer(&mut s);
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    // A half frame and a hang-up.
    let mut s = UnixStream::connect(fx.socket()).unwrap();
    s.write_all(&[0, 0, 1]).unwrap();
    drop(s);

    // Still serving, and the daemon is alive.
    assert!(matches!(
        fx.ask(Request::Status { jail: None }),
        Reply::Jails { .. }
    ));
    assert!(fx.daemon.log().contains("ready:"));
}

fn read_answer(s: &mut UnixStream) -> serde_json::Value {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn fail2ban_client_forms_work_through_a_symlink() {
    let fx = Fixture::start("ctl-f2b", "");
    let link = fx.path("fail2ban-client");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let f2b = |args: &[&str]| -> String {
        let out = Command::new(&link)
            .args(args)
            .env("NFTJAIL_SOCKET", fx.socket())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fail2ban-client {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(f2b(&["status"]).contains("Jail list:\ta, b"));
    assert!(f2b(&["status", "b"]).contains("Status for the jail: b"));
    assert_eq!(f2b(&["set", "b", "banip", "203.0.113.20"]), "1\n");
    assert!(fx.set("b-v4").contains("203.0.113.20"));
    assert_eq!(f2b(&["set", "b", "unbanip", "203.0.113.20"]), "1\n");
    assert!(!fx.set("b-v4").contains("203.0.113.20"));
    f2b(&["set", "a", "banip", "203.0.113.21"]);
    assert_eq!(f2b(&["unban", "203.0.113.21"]), "1\n");
    f2b(&["set", "a", "banip", "203.0.113.22"]);
    f2b(&["set", "b", "banip", "203.0.113.23"]);
    assert_eq!(f2b(&["unban", "--all"]), "2\n");
    assert_eq!(f2b(&["reload"]), "OK\n");
    // The same forms as `nftjail client ...`.
    assert!(fx
        .ok(&["client", "status", "a"])
        .contains("Status for the jail: a"));
    let (code, _, _) = fx.cli(&["client", "start", "a"]);
    assert_ne!(code, 0, "an unsupported form is an error");
}

#[test]
fn a_non_root_user_is_refused() {
    let fx = Fixture::start("ctl-nonroot", "");
    let mode = std::fs::metadata(fx.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let as_nobody = |fx: &Fixture| {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "--socket",
            ])
            .arg(fx.socket())
            .args(["ban", "a", "203.0.113.40"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = as_nobody(&fx);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // Even with the mode opened by hand, the daemon checks the peer itself.
    std::fs::set_permissions(fx.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = as_nobody(&fx);
    assert_eq!(code, 4, "{err}");
    assert!(!fx.set("a-v4").contains("203.0.113.40"));
    assert!(fx.daemon.log().contains("refused a peer"));
}

#[test]
fn reload_keeps_state_refuses_broken_files_and_applies_changes() {
    let fx = Fixture::start(
        "ctl-reload",
        "[jail.c]\nfailregex = ['^c <HOST>$']\nlogpath = \"/dev/null\"\n",
    );
    let config = fx.path("nftjail.toml");
    fx.ok(&["ban", "c", "203.0.113.50"]);
    fx.append("a.log", "fail from 203.0.113.51\nfail from 203.0.113.51\n");
    fx.daemon
        .wait_for("ban: jail=a addr=203.0.113.51", Duration::from_secs(5));
    // One failure of .52 counted before the reload.
    fx.append("a.log", "fail from 203.0.113.52\n");
    wait_until(|| total_failed(&fx, "a") == 3);

    // A broken file: refused with file:line:col, everything stays.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("maxretry = 2", "maxretry = \"two\"")).unwrap();
    let (code, _, err) = fx.cli(&["--config", config.to_str().unwrap(), "reload"]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("nftjail.toml:") && err.contains("jail.a.maxretry"),
        "{err}"
    );
    assert!(err.contains("running config stays"), "{err}");
    assert!(fx.set("a-v4").contains("203.0.113.51"));
    assert!(fx.set("c-v4").contains("203.0.113.50"));
    assert!(fx.ok(&["status"]).contains("Jail list:\ta, b, c"));

    // Changed bantime of a, jail c removed.
    std::fs::write(&config, config_text(fx.dir.path(), "5h", "")).unwrap();
    let out = fx.ok(&["--config", config.to_str().unwrap(), "reload"]);
    assert!(out.contains("bans kept until they expire"), "{out}");
    assert!(fx.ok(&["status"]).contains("Jail list:\ta, b\n"));
    // Its ban stays until it expires, unless lifted on purpose.
    assert!(fx.set("c-v4").contains("203.0.113.50"));
    fx.ok(&["unban", "--jail-gone"]);
    let tables = fx.ns.output("nft", &["list", "table", "inet", "nftjail"]);
    assert!(
        !tables.contains("c-v4"),
        "removed jail's set is gone:\n{tables}"
    );
    // Bans of unchanged jails stay.
    assert!(fx.set("a-v4").contains("203.0.113.51"));
    // Failure counts stay: .52's second failure bans it, with the new bantime.
    fx.append("a.log", "fail from 203.0.113.52\n");
    fx.daemon
        .wait_for("ban: jail=a addr=203.0.113.52", Duration::from_secs(5));
    let set = fx.set("a-v4");
    assert!(set.contains("203.0.113.52 timeout 5h"), "{set}");
    assert!(set.contains("203.0.113.51 timeout 1h"), "{set}");

    // SIGHUP reloads too: jail c comes back.
    std::fs::write(
        &config,
        config_text(
            fx.dir.path(),
            "5h",
            "[jail.c]\nfailregex = ['^c <HOST>$']\nlogpath = \"/dev/null\"\n",
        ),
    )
    .unwrap();
    // SAFETY: kill with our own child's pid.
    unsafe { libc::kill(fx.daemon.child.id() as i32, libc::SIGHUP) };
    fx.daemon
        .wait_for("reloaded: a, b, c", Duration::from_secs(5));
    assert!(fx.ok(&["status"]).contains("Jail list:\ta, b, c"));
}

fn total_failed(fx: &Fixture, jail: &str) -> u64 {
    match fx.ask(Request::Status {
        jail: Some(jail.into()),
    }) {
        Reply::JailStatus(s) => s.total_failed,
        r => panic!("{r:?}"),
    }
}

/// Polls a condition that must become true; a deadline, not a timing claim.
fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_hundred_clients_while_lines_stream_in() {
    let fx = Fixture::start("ctl-load", "");
    const LINES: u64 = 100_000;
    let done = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let socket = fx.socket();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let (done, answers, socket) = (Arc::clone(&done), Arc::clone(&answers), socket.clone());
            std::thread::spawn(move || {
                let jail = if i % 2 == 0 { "b" } else { "a" };
                while !done.load(Ordering::Relaxed) {
                    match request(
                        &socket,
                        &Request::Status {
                            jail: Some(jail.into()),
                        },
                    ) {
                        Ok(Reply::JailStatus(s)) => assert_eq!(s.jail, jail),
                        other => panic!("client {i}: malformed or failed answer: {other:?}"),
                    }
                    answers.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // 100k failures in b from 50k addresses (two each, maxretry 3: no bans),
    // written in chunks while the clients hammer.
    let mut chunk = String::new();
    for n in 0..LINES {
        let k = n % 50_000;
        chunk.push_str(&format!(
            "bad login from 10.{}.{}.{}\n",
            k >> 16,
            (k >> 8) & 255,
            k & 255
        ));
        if chunk.len() > 64 * 1024 {
            fx.append("b.log", &chunk);
            chunk.clear();
        }
    }
    fx.append("b.log", &chunk);
    wait_until(|| total_failed(&fx, "b") == LINES);
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        answers.load(Ordering::Relaxed) >= 200,
        "every client got answers"
    );
    match fx.ask(Request::Status {
        jail: Some("b".into()),
    }) {
        Reply::JailStatus(s) => {
            assert_eq!(s.total_failed, LINES, "every line counted");
            assert_eq!(s.currently_failed, 50_000);
            assert_eq!(s.currently_banned, 0);
        }
        r => panic!("{r:?}"),
    }
    eprintln!("answers served: {}", answers.load(Ordering::Relaxed));
}

#[test]
fn a_line_counts_at_its_own_time_and_old_lines_do_not_count() {
    let fx = Fixture::start(
        "ctl-dates",
        "[jail.d]\nfailregex = ['login failure from <HOST>$']\nlogpath = \"/dev/null\"\nmaxretry = 2\nfindtime = \"10m\"\n",
    );
    // jail d reads a.log too, through a reload that adds the path.
    let config = fx.path("nftjail.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "logpath = \"/dev/null\"",
        &format!("logpath = \"{}\"", fx.path("d.log").display()),
    );
    std::fs::write(fx.path("d.log"), "").unwrap();
    std::fs::write(&config, text).unwrap();
    fx.ok(&["--config", config.to_str().unwrap(), "reload"]);
    // Written long ago (a backlog read late): older than findtime, not counted.
    fx.append(
        "d.log",
        "2020-01-01T00:00:00+00:00 mx1 app: login failure from 203.0.113.60\n\
         2020-01-01T00:00:01+00:00 mx1 app: login failure from 203.0.113.60\n\
         2020-01-01T00:00:02+00:00 mx1 app: login failure from 203.0.113.60\n",
    );
    // Then two recent ones from another address: a ban.
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S+00:00");
    fx.append(
        "d.log",
        &format!("{now} mx1 app: login failure from 203.0.113.61\n{now} mx1 app: login failure from 203.0.113.61\n"),
    );
    fx.daemon
        .wait_for("ban: jail=d addr=203.0.113.61", Duration::from_secs(5));
    match fx.ask(Request::Status {
        jail: Some("d".into()),
    }) {
        Reply::JailStatus(s) => {
            assert_eq!(s.total_failed, 2, "the three old lines were not counted");
            assert_eq!(s.banned, ["203.0.113.61"]);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_jail_runs_a_fail2ban_filter_file_as_it_is() {
    let fx = Fixture::start(
        "ctl-f2bfilter",
        "[jail.f]\nfilter = \"fail2ban:sshd[mode=normal]\"\nlogpath = \"/dev/null\"\nmaxretry = 2\n",
    );
    let config = fx.path("nftjail.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "logpath = \"/dev/null\"",
        &format!("logpath = \"{}\"", fx.path("auth.log").display()),
    );
    std::fs::write(fx.path("auth.log"), "").unwrap();
    std::fs::write(&config, text).unwrap();
    fx.ok(&["--config", config.to_str().unwrap(), "reload"]);
    let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
    // fail2ban's own sshd filter (read from /etc/fail2ban/filter.d) decides.
    fx.append(
        "auth.log",
        &format!(
            "{now} mx1 sshd[4242]: Failed password for root from 203.0.113.80 port 50022 ssh2\n\
             {now} mx1 sshd[4243]: Accepted password for alice from 203.0.113.81 port 50023 ssh2\n\
             {now} mx1 sshd[4244]: Failed password for invalid user admin from 203.0.113.80 port 50024 ssh2\n"
        ),
    );
    fx.daemon
        .wait_for("ban: jail=f addr=203.0.113.80", Duration::from_secs(5));
    assert!(fx.set("f-v4").contains("203.0.113.80"));
    assert!(!fx.set("f-v4").contains("203.0.113.81"));

    // A broken fail2ban filter name is a config error with its location.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("fail2ban:sshd[mode=normal]", "fail2ban:no-such-filter");
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = fx.cli(&["--config", config.to_str().unwrap(), "reload"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("jail.f.filter"), "{err}");
}
