#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! A reload that removes a jail keeps its bans in the kernel until they
//! expire, says so, lists them, and lifts them only when asked
//! (`unban --jail-gone`); a reload whose config file went missing is
//! refused and changes nothing. The real binary and the real nft backend,
//! in a throwaway network namespace.

mod common;

use std::time::Duration;

use common::{client as cli, client_ok as ok, require_root, Netns, Workdir};

const WAIT: Duration = Duration::from_secs(20);

/// Jail b always; jail a (port 25) while `with_a`.
fn config_text(with_a: bool) -> String {
    let a = if with_a {
        "[jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{d}/a.log\"\nmaxretry = 2\nbantime = \"1h\"\nport = 25\n"
    } else {
        ""
    };
    format!(
        "[defaults]\nignoreself = false\n{a}\
         [jail.b]\nfailregex = ['^bad login from <HOST>$']\nlogpath = \"{{d}}/b.log\"\nbantime = \"1h\"\n"
    )
}

/// Polls until `cond` holds; a deadline, not a timing claim.
fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(90), ok);
}

#[test]
fn a_removed_jails_bans_stay_until_they_expire_or_are_lifted_on_purpose() {
    require_root();
    let ns = Netns::new("rl-gone");
    let w = Workdir::new(&["a.log", "b.log"], &config_text(true));
    let socket = w.path("nftjail.sock");
    let daemon = w.start(&ns, WAIT);
    let set = |name: &str| ns.output("nft", &["list", "set", "inet", "nftjail", name]);
    let table = || ns.output("nft", &["list", "table", "inet", "nftjail"]);

    // Two bans in jail a: one from its log, one by hand that runs out soon.
    w.write("a.log", "fail from 203.0.113.61\nfail from 203.0.113.61\n");
    daemon.wait_for("ban: jail=a addr=203.0.113.61", WAIT);
    ok(&socket, &["ban", "a", "203.0.113.62", "--for", "20s"]);
    assert!(set("a-v4").contains("203.0.113.62"));

    // Jail a removed by a reload: its bans stay in the kernel, with their
    // rule, and the reload says so.
    w.configure(&config_text(false));
    let out = ok(&socket, &["reload"]);
    assert!(
        out.contains("removed, bans kept until they expire") && out.contains("a (2 bans)"),
        "{out}"
    );
    daemon.wait_for(
        "jail a is no longer configured: its 2 ban(s) are kept until they expire",
        WAIT,
    );
    let kept = set("a-v4");
    assert!(
        kept.contains("203.0.113.61") && kept.contains("expires"),
        "{kept}"
    );
    let rules = table();
    assert!(
        rules.contains("tcp dport 25 jump j-a") && rules.contains("ip saddr @a-v4 counter"),
        "the rule stays as it was:\n{rules}"
    );
    let status = ok(&socket, &["status"]);
    assert!(status.contains("Jail list:\tb\n"), "{status}");
    assert!(
        status.contains("Jails no longer configured") && status.contains("a (2 bans)"),
        "{status}"
    );
    let status_a = ok(&socket, &["status", "a"]);
    assert!(
        status_a.contains("No longer configured") && status_a.contains("203.0.113.61"),
        "{status_a}"
    );

    // The kernel expires a kept ban on its own.
    wait_until("the 20 s ban expired in the kernel", || {
        !set("a-v4").contains("203.0.113.62")
    });

    // The config file moved away: the reload is refused, nothing changes
    // (never the built-in config instead).
    let config = w.path("nftjail.toml");
    let away = w.path("moved.toml");
    std::fs::rename(&config, &away).unwrap();
    let (code, _, err) = cli(&socket, &["reload"]);
    assert_ne!(code, 0, "a reload without its config file was accepted");
    assert!(
        err.contains(&format!("cannot read config {}", config.display()))
            && err.contains("running config stays"),
        "{err}"
    );
    assert!(ok(&socket, &["status"]).contains("Jail list:\tb\n"));
    assert!(set("a-v4").contains("203.0.113.61"));
    std::fs::rename(&away, &config).unwrap();

    // Lifted on purpose: the bans go, and the set and rule with them.
    let out = ok(&socket, &["unban", "--jail-gone"]);
    assert!(out.contains("a: 203.0.113.61 unbanned"), "{out}");
    let rules = table();
    assert!(!rules.contains("a-v4"), "{rules}");
    let status = ok(&socket, &["status"]);
    assert!(!status.contains("no longer configured"), "{status}");
    assert!(
        ok(&socket, &["status", "b"]).contains("Status for the jail: b"),
        "jail b untouched"
    );
    drop(daemon);
}

#[test]
fn a_ban_deleted_by_hand_is_put_back_and_reported_as_done_by_someone_else() {
    require_root();
    let ns = Netns::new("rl-hand");
    let w = Workdir::new(&["a.log", "b.log"], &config_text(true));
    let socket = w.path("nftjail.sock");
    let daemon = w.start(&ns, WAIT);

    ok(&socket, &["ban", "a", "203.0.113.71", "--for", "1h"]);
    ns.output(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "nftjail",
            "a-v4",
            "{ 203.0.113.71 }",
        ],
    );
    // The watcher hears the deletion and puts the ban back, saying someone
    // else changed the table; it is never mistaken for an expiry.
    daemon.wait_for("changed by someone else", WAIT);
    let set = ns.output("nft", &["list", "set", "inet", "nftjail", "a-v4"]);
    assert!(set.contains("203.0.113.71"), "put back:\n{set}");
    let out = ok(&socket, &["ban", "a", "203.0.113.71", "--for", "2h"]);
    assert!(out.contains("203.0.113.71"), "{out}");
    assert!(
        !daemon.log().contains("already collected"),
        "{}",
        daemon.log()
    );
    let set = ns.output("nft", &["list", "set", "inet", "nftjail", "a-v4"]);
    assert!(set.contains("203.0.113.71"), "banned again:\n{set}");
}

/// Jail a always; jail b (every port, rejected) while `with_b`.
fn config_b(with_b: bool) -> String {
    let b = if with_b {
        "[jail.b]\nfailregex = ['^bad login from <HOST>$']\nlogpath = \"{d}/b.log\"\nbantime = \"1h\"\n"
    } else {
        ""
    };
    format!(
        "[defaults]\nignoreself = false\n\
         [jail.a]\nfailregex = ['^fail from <HOST>$']\nlogpath = \"{{d}}/a.log\"\nport = 25\n{b}"
    )
}

/// A real TCP connection from `from` to `to`: Ok, or how it failed.
fn connect(from: &Netns, to: &str) -> Result<(), std::io::ErrorKind> {
    let addr: std::net::SocketAddr = to.parse().unwrap();
    from.run(move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map(drop)
            .map_err(|e| e.kind())
    })
}

#[test]
fn a_restart_keeps_a_removed_jails_bans_and_a_reboot_brings_them_back() {
    use std::io::ErrorKind::ConnectionRefused;
    require_root();
    let srv = Netns::new("rl-rst");
    let atk = Netns::new("rl-atk");
    common::link(&srv, &["192.0.2.1/24"], &atk, &["192.0.2.66/24"], "rst");
    let listener = srv.run(|| std::net::TcpListener::bind("192.0.2.1:8025").unwrap());
    std::thread::spawn(move || for _ in listener.incoming() {});
    const SRV: &str = "192.0.2.1:8025";

    let w = Workdir::new(&["a.log", "b.log"], &config_b(true));
    let socket = w.path("nftjail.sock");
    let start = || w.start(&srv, WAIT);
    let b_v4 = || common::kernel_set(&srv, "b-v4");
    let kept = "jail b is no longer configured: its 1 ban(s) are kept until they expire";

    let mut daemon = start();
    assert_eq!(connect(&atk, SRV), Ok(()), "not banned yet");
    ok(&socket, &["ban", "b", "192.0.2.66", "--for", "1h"]);
    assert_eq!(connect(&atk, SRV), Err(ConnectionRefused));
    daemon.stop();

    // Jail b removed while the daemon was stopped: the restart keeps its
    // ban in the kernel, with its rule, and says so.
    w.configure(&config_b(false));
    let mut daemon = start();
    assert!(daemon.log().contains(kept), "{}", daemon.log());
    assert!(b_v4().contains("192.0.2.66"), "{:?}", b_v4());
    assert_eq!(connect(&atk, SRV), Err(ConnectionRefused), "still banned");
    let status = ok(&socket, &["status"]);
    assert!(status.contains("Jail list:\ta\n"), "{status}");
    assert!(status.contains("b (1 ban)"), "{status}");
    daemon.stop();

    // A reboot: the kernel's table is gone, the store stays. The start
    // builds jail b's set and rule again from the store and puts the ban back.
    srv.output("nft", &["delete", "table", "inet", "nftjail"]);
    assert_eq!(connect(&atk, SRV), Ok(()), "the kernel holds nothing");
    let daemon = start();
    assert!(daemon.log().contains(kept), "{}", daemon.log());
    assert!(b_v4().contains("192.0.2.66"), "put back: {:?}", b_v4());
    assert_eq!(connect(&atk, SRV), Err(ConnectionRefused), "banned again");

    // Lifted on purpose.
    let out = ok(&socket, &["unban", "--jail-gone"]);
    assert!(out.contains("b: 192.0.2.66 unbanned"), "{out}");
    assert!(b_v4().is_empty());
    assert_eq!(connect(&atk, SRV), Ok(()));
    assert!(!ok(&socket, &["status"]).contains("no longer configured"));
    drop(daemon);
}
