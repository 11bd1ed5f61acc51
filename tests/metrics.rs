#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)]
//! Prometheus metrics through the real daemon: `nftjail run` in a network
//! namespace with `[metrics]` set, a ban caused by log lines, scraped with
//! curl from inside the namespace; hostile clients do not stop the
//! endpoint; `nftjail check` refuses a public address.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{require_root, Daemon, Netns};

const LISTEN: &str = "127.0.0.1:9716";
const URL: &str = "http://127.0.0.1:9716/metrics";

fn require_curl() {
    assert!(
        Path::new("/usr/bin/curl").exists(),
        "/usr/bin/curl is missing: run `cargo xtask deps`"
    );
}

/// A failure line stamped now, as syslog writes it.
fn sasl_failure(addr: &str, n: usize) -> String {
    let now = jiff::ZonedDateTime::now().strftime("%b %e %H:%M:%S");
    format!("{now} mx1 postfix/submission/smtpd[106{n:02}]: warning: unknown[{addr}]: SASL LOGIN authentication failed: authentication failure")
}

fn append(log: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// `curl` in the namespace: (status code, headers and body).
fn curl(ns: &Netns, url: &str) -> (String, String) {
    let out = ns
        .command("curl")
        .args(["-sS", "-D", "-", "--max-time", "10", url])
        .output()
        .expect("cannot run curl");
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split(' ').nth(1).unwrap_or_default().to_string();
    (status, text)
}

/// The value of the sample named exactly `sample` (name and labels).
fn value(scrape: &str, sample: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_ban_from_a_log_line_is_counted_and_scraped() {
    require_root();
    require_curl();
    let srv = Netns::new("metrics");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    let config = dir.path().join("nftjail.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n[metrics]\nlisten = \"{LISTEN}\"\n[jail.mx]\nfilter = \"postfix-sasl\"\nlogpath = \"{}\"\nmaxretry = 2\nbantime = \"10m\"\nfindtime = \"1m\"\n",
            dir.path().join("nftjail.sock").display(),
            dir.path().join("state").display(),
            log.display()
        ),
    )
    .unwrap();
    let mut cmd = srv.command(env!("CARGO_BIN_EXE_nftjail"));
    cmd.args(["run", "--config"]).arg(&config);
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for("ready", Duration::from_secs(10));

    append(
        &log,
        &[
            "an unrelated line".to_string(),
            sasl_failure("192.0.2.66", 1),
            sasl_failure("192.0.2.66", 2),
        ],
    );
    daemon.wait_for("jail=mx", Duration::from_secs(10));

    // The ban is in the kernel once logged; the scrape asks the enforcer.
    let bans = "nftjail_bans_total{jail=\"mx\",reason=\"filter\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let (status, text) = curl(&srv, URL);
        assert_eq!(status, "200", "{text}");
        if value(&text, bans) == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        scrape.contains("Content-Type: application/openmetrics-text"),
        "{scrape}"
    );
    assert_eq!(value(&scrape, bans), Some(1.0), "{scrape}");
    let active = "nftjail_active_bans{jail=\"mx\",set=\"v4\"}";
    assert_eq!(value(&scrape, active), Some(1.0), "{scrape}");
    let source = log.display();
    let read = value(
        &scrape,
        &format!("nftjail_lines_read_total{{source=\"{source}\"}}"),
    );
    assert_eq!(read, Some(3.0), "{scrape}");
    let matched = value(
        &scrape,
        &format!("nftjail_lines_matched_total{{source=\"{source}\"}}"),
    );
    assert_eq!(matched, Some(2.0), "{scrape}");
    assert_eq!(
        value(&scrape, "nftjail_failures_total{jail=\"mx\"}"),
        Some(2.0),
        "{scrape}"
    );
    assert_eq!(
        value(&scrape, "nftjail_ban_latency_seconds_count"),
        Some(1.0),
        "{scrape}"
    );
    assert!(scrape.trim_end().ends_with("# EOF"), "{scrape}");

    // Other paths are not found.
    let (status, _) = curl(&srv, "http://127.0.0.1:9716/");
    assert_eq!(status, "404");

    // Hostile clients: one that sends nothing and stays, an oversized
    // request, binary garbage. None of them stops the endpoint.
    let hostile = srv.run(|| {
        let idle = TcpStream::connect(LISTEN).unwrap();
        let mut huge = TcpStream::connect(LISTEN).unwrap();
        // The server may close before all of it is sent.
        let _ = huge.write_all(&vec![b'A'; 1 << 20]);
        let mut answer = String::new();
        let _ = huge.read_to_string(&mut answer);
        let mut junk = TcpStream::connect(LISTEN).unwrap();
        junk.write_all(b"\xff\xfe\x00\x1b[31m\r\n\r\n").unwrap();
        let mut refused = String::new();
        junk.read_to_string(&mut refused).unwrap();
        (idle, answer, refused)
    });
    assert!(
        hostile.1.is_empty() || hostile.1.starts_with("HTTP/1.1 431"),
        "{}",
        hostile.1
    );
    assert!(hostile.2.starts_with("HTTP/1.1 400"), "{}", hostile.2);
    let (status, text) = curl(&srv, URL);
    assert_eq!(status, "200");
    assert_eq!(value(&text, bans), Some(1.0), "{text}");
    drop(hostile);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon stopped:\n{}",
        daemon.log()
    );
    daemon.stop();
}

#[test]
fn check_refuses_a_public_metrics_address_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nftjail.toml");
    let text = "[metrics]\nlisten = \"0.0.0.0:9716\"\n";
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nftjail"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let at = format!("{}:2:10: metrics.listen:", config.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("allow_public"), "{err}");

    std::fs::write(&config, format!("{text}allow_public = true\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nftjail"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
