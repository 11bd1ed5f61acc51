#![allow(clippy::unwrap_used)]
//! Config errors name file:line:col and the key, all problems at once, and a
//! config with any problem is refused whole.

use std::path::Path;
use std::time::Duration;

use nftjail::config::{Config, ConfigError, EMBEDDED};
use nftjail::rules::{BlockType, PortRange, Proto};

fn errors(text: &str) -> String {
    match Config::parse(text, Path::new("/etc/nftjail/nftjail.toml")) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e @ ConfigError::Invalid(_)) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

const JAIL: &str = "[jail.sshd]\nfilter = \"sshd\"\nlogpath = \"/var/log/auth.log\"\n";

#[test]
fn embedded_default_config_is_valid() {
    let cfg = Config::parse(EMBEDDED, Path::new("<embedded>")).expect("embedded config");
    let names: Vec<&str> = cfg.jails.iter().map(|j| &*j.name).collect();
    assert_eq!(names, ["postfix-sasl", "sshd"]);
    let postfix = &cfg.jails[0];
    assert_eq!(postfix.maxretry, 5);
    assert_eq!(postfix.bantime, Duration::from_secs(600));
    let ports: Vec<u16> = postfix.ports.iter().map(|p| p.first).collect();
    assert_eq!(ports, [25, 465, 587]);
    assert_eq!(cfg.table, "nftjail");
    let prefix = postfix
        .prefix
        .as_ref()
        .expect("the mail jail bans prefixes");
    assert_eq!((prefix.v4, prefix.v6, prefix.maxaddrs), (24, 64, 5));
    assert_eq!(prefix.findtime, Duration::from_secs(3600));
    assert_eq!(prefix.bantime, Duration::from_secs(86400));
    assert!(cfg.jails[1].prefix.is_none(), "sshd counts addresses only");
}

#[test]
fn full_jail_is_checked_into_typed_values() {
    let cfg = Config::parse(
        r#"
[defaults]
bantime = "1h"
maxretry = 4

[jail.zimbra-submission]
filter = "postfix-sasl"
logpath = ["/var/log/zimbra.log", "/var/log/mail.log"]
port = "submission,smtps,1000:1002/udp"
findtime = 90
bantime = "1d"
ignoreip = "192.0.2.0/24 2001:db8::/32"
ignoreself = false
blocktype = "drop"

[jail.off]
enabled = false
filter = "nosuchfilter"
"#,
        Path::new("t.toml"),
    )
    .expect("valid config");
    assert_eq!(cfg.jails.len(), 1, "disabled jails are not checked nor run");
    let j = &cfg.jails[0];
    assert_eq!(&*j.name, "zimbra-submission");
    assert_eq!(j.logpaths.len(), 2);
    assert_eq!(j.maxretry, 4, "inherited from [defaults]");
    assert_eq!(j.findtime, Duration::from_secs(90));
    assert_eq!(j.bantime, Duration::from_secs(86400));
    assert_eq!(j.blocktype, BlockType::Drop);
    assert_eq!(
        j.ports,
        vec![
            PortRange {
                proto: Proto::Tcp,
                first: 465,
                last: 465
            },
            PortRange {
                proto: Proto::Tcp,
                first: 587,
                last: 587
            },
            PortRange {
                proto: Proto::Udp,
                first: 1000,
                last: 1002
            },
        ]
    );
    assert!(j.ignore.contains("192.0.2.9".parse().unwrap()));
    assert!(j.ignore.contains("2001:db8::9".parse().unwrap()));
    assert!(
        !j.ignore.contains("127.0.0.1".parse().unwrap()),
        "ignoreself = false"
    );
}

#[test]
fn unknown_key_names_file_line_col_and_key() {
    let text = format!("{JAIL}bantme = \"10m\"\n");
    assert_eq!(
        errors(&text),
        "/etc/nftjail/nftjail.toml:4:1: jail.sshd.bantme: unknown field `bantme`, expected one of `enabled`, `filter`, `failregex`, `ignoreregex`, `logpath`, `port`, `maxretry`, `findtime`, `bantime`, `ignoreip`, `ignoreself`, `blocktype`, `app`, `bantime_increment`, `bantime_factor`, `bantime_multipliers`, `bantime_maxtime`, `bantime_rndtime`, `bantime_overalljails`, `journal`, `syslog`, `blocklist`, `prefix`, `ban_v6_as`, `window`, `account`"
    );
}

#[test]
fn bad_duration_names_its_position() {
    let text = format!("{JAIL}bantime = \"10x\"\n");
    assert_eq!(
        errors(&text),
        "/etc/nftjail/nftjail.toml:4:11: jail.sshd.bantime: invalid duration \"10x\": unknown unit \"x\" (use s, m, h, d or w)"
    );
}

#[test]
fn a_duration_past_the_kernels_limit_is_refused_with_the_maximum() {
    let text = format!(
        "[defaults]\nfindtime = 99999999999\n{JAIL}bantime = \"100000000w\"\nbantime_increment = true\nbantime_maxtime = \"26001w\"\n"
    );
    let e = errors(&text);
    for want in [
        "/etc/nftjail/nftjail.toml:2:12: defaults.findtime: 99999999999s is longer than the longest ban the kernel takes (at most 26000w)",
        "/etc/nftjail/nftjail.toml:6:11: jail.sshd.bantime: 100000000w is longer than the longest ban the kernel takes (at most 26000w)",
        "/etc/nftjail/nftjail.toml:8:19: jail.sshd.bantime_maxtime: 26001w is longer than the longest ban the kernel takes (at most 26000w)",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    let ok = Config::parse(
        &format!("{JAIL}bantime = \"26000w\"\n"),
        Path::new("t.toml"),
    )
    .expect("the maximum itself is taken");
    assert_eq!(ok.jails[0].bantime, Duration::from_secs(26_000 * 604_800));
}

#[test]
fn wrong_type_names_its_position() {
    let text = format!("{JAIL}maxretry = \"five\"\n");
    let e = errors(&text);
    assert!(
        e.starts_with("/etc/nftjail/nftjail.toml:4:12: jail.sshd.maxretry: "),
        "{e}"
    );
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn toml_syntax_error_is_located() {
    let e = errors("[defaults]\nbantime = \n");
    assert!(e.starts_with("/etc/nftjail/nftjail.toml:2:"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "[defaults]\nmaxretry = 0\n\n[jail.a]\nfilter = \"nosuch\"\nlogpath = \"/x\"\nport = \"70000\"\nignoreip = [\"10.0.0.0/33\"]\nblocktype = \"tarpit\"\n";
    let e = errors(text);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(
        lines[0].starts_with(
            "/etc/nftjail/nftjail.toml:2:12: defaults.maxretry: must be a whole number from 1 up"
        ),
        "{e}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "/etc/nftjail/nftjail.toml:5:10: jail.a.filter: unknown filter \"nosuch\""
        )),
        "{e}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "/etc/nftjail/nftjail.toml:7:8: jail.a.port: port \"70000\" is out of range"
        )),
        "{e}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "/etc/nftjail/nftjail.toml:8:12: jail.a.ignoreip: \"10.0.0.0/33\" is neither"
        )),
        "{e}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "/etc/nftjail/nftjail.toml:9:13: jail.a.blocktype: unknown blocktype \"tarpit\""
        )),
        "{e}"
    );
}

#[test]
fn jail_without_logpath_or_filter_is_refused() {
    let e = errors("[jail.x]\nport = \"ssh\"\n");
    assert!(e.contains("jail.x: a jail needs filter"), "{e}");
    assert!(e.contains("jail.x: an enabled jail needs a logpath"), "{e}");
}

#[test]
fn filter_and_inline_failregex_are_exclusive_and_bad_regex_is_located() {
    let e = errors("[jail.x]\nfilter = \"sshd\"\nfailregex = ['<HOST>']\nlogpath = \"/x\"\n");
    assert!(
        e.contains(":3:13: jail.x.failregex: give either filter"),
        "{e}"
    );
    let e = errors("[jail.x]\nfailregex = ['from <HOST> ((']\nlogpath = \"/x\"\n");
    assert!(
        e.starts_with("/etc/nftjail/nftjail.toml:2:13: jail.x.failregex: "),
        "{e}"
    );
}

#[test]
fn jail_names_must_be_valid_set_names() {
    let e = errors("[jail.\"bad name\"]\nfilter = \"sshd\"\nlogpath = \"/x\"\n");
    assert!(e.contains("jail.bad name: jail name must be"), "{e}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Config::load(Some(Path::new("/nonexistent/nftjail.toml"))).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read config /nonexistent/nftjail.toml"),
        "{e}"
    );
}

#[test]
fn state_and_increment_keys_are_checked_with_their_place() {
    let text = format!(
        "[daemon]\nstate_dir = \"var/lib\"\non_stop = \"maybe\"\ndbpurgeage = \"soon\"\n\
         [defaults]\nbantime_factor = -1\n{JAIL}bantime_increment = true\nbantime_multipliers = \"1 x 4\"\nbantime_maxtime = \"1 parsec\"\n"
    );
    let e = errors(&text);
    for want in [
        "nftjail.toml:2:13: daemon.state_dir: must be an absolute path",
        "nftjail.toml:3:11: daemon.on_stop: unknown value \"maybe\"",
        "nftjail.toml:4:14: daemon.dbpurgeage:",
        "nftjail.toml:6:18: defaults.bantime_factor: must be a number above 0",
        "nftjail.toml:11:23: jail.sshd.bantime_multipliers: expected numbers above 0",
        "nftjail.toml:12:19: jail.sshd.bantime_maxtime:",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // fail2ban's dotted spelling cannot sit beside bantime in TOML: a clear error.
    let e = errors(&format!(
        "{JAIL}bantime = \"1h\"\nbantime.increment = true\n"
    ));
    assert!(e.contains("nftjail.toml:5:"), "{e}");

    let ok = Config::parse(
        &format!(
            "[defaults]\nbantime_increment = true\nbantime_factor = 2\n{JAIL}bantime_multipliers = [1, 3, 9]\nbantime_overalljails = true\n\
             [jail.other]\nfilter = \"sshd\"\nlogpath = \"/var/log/x\"\nbantime_increment = false\n"
        ),
        Path::new("t.toml"),
    )
    .expect("valid");
    let inc = ok.increments();
    assert_eq!(inc.len(), 1, "jail other turned it off");
    let sshd = &inc["sshd"];
    assert_eq!(sshd.factor, 2.0);
    assert_eq!(sshd.multipliers, vec![1.0, 3.0, 9.0]);
    assert!(sshd.overalljails);
    assert_eq!(ok.state_dir, Path::new("/var/lib/nftjail"));
}

/// A config dir with `nftjail.toml` (mode 0644) whose jail uses the sshd
/// filter, looked up first in `filters/`.
fn config_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let filters = dir.path().join("filters");
    std::fs::create_dir(&filters).unwrap();
    let path = dir.path().join("nftjail.toml");
    let text = format!("[daemon]\nfilter_dir = \"{}\"\n{JAIL}", filters.display());
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, path)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_filter_file_in_filter_dir_replaces_the_built_in_one() {
    let (dir, path) = config_dir();
    let config = Config::load(Some(&path)).unwrap();
    let built_in = config.jails[0].filter.failregex.len();
    assert!(built_in > 1, "the built-in sshd filter has several regexes");

    let own = dir.path().join("filters/sshd.toml");
    std::fs::write(&own, "failregex = ['''^Bad login from <HOST>$''']\n").unwrap();
    set_mode(&own, 0o644);
    let config = Config::load(Some(&path)).unwrap();
    let filter = &config.jails[0].filter;
    assert_eq!(filter.failregex.len(), 1);
    assert_eq!(
        filter.find("Bad login from 192.0.2.7"),
        Some("192.0.2.7".parse().unwrap())
    );
}

#[test]
fn a_group_writable_config_is_refused_with_the_fix() {
    let (_dir, path) = config_dir();
    set_mode(&path, 0o664);
    let e = Config::load(Some(&path)).unwrap_err();
    assert!(matches!(e, ConfigError::Unsafe { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("chmod go-w {}", path.display())),
        "{msg}"
    );
    set_mode(&path, 0o644);
    assert!(Config::load(Some(&path)).is_ok());
}

#[test]
fn a_world_writable_filter_override_is_refused_with_the_fix() {
    let (dir, path) = config_dir();
    let own = dir.path().join("filters/sshd.toml");
    std::fs::write(&own, "failregex = ['''^Bad login from <HOST>$''']\n").unwrap();
    set_mode(&own, 0o666);
    let msg = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(msg.contains("jail.sshd.filter"), "{msg}");
    assert!(
        msg.contains(&format!("chmod go-w {}", own.display())),
        "{msg}"
    );
}

#[test]
fn a_config_owned_by_another_user_is_refused_when_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can hand a file to another user; the CI runs as root.
        panic!("this test needs root (cargo xtask ci runs the tests as root)");
    }
    let (_dir, path) = config_dir();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let msg = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(msg.contains("uid 65534"), "{msg}");
    assert!(
        msg.contains(&format!("chown root: {}", path.display())),
        "{msg}"
    );
}

#[test]
fn report_keep_is_a_duration_checked_with_its_place() {
    let e = errors(&format!("[daemon]\nreport_keep = \"a while\"\n{JAIL}"));
    assert!(e.contains("nftjail.toml:2:15: daemon.report_keep:"), "{e}");
    let e = errors(&format!("[daemon]\nreport_keep = 0\n{JAIL}"));
    assert!(e.contains("nftjail.toml:2:15: daemon.report_keep:"), "{e}");
    let week = Config::parse(JAIL, Path::new("t.toml")).expect("valid");
    assert_eq!(week.report_keep, Duration::from_secs(7 * 86_400));
    let set = Config::parse(
        &format!("[daemon]\nreport_keep = \"30d\"\n{JAIL}"),
        Path::new("t.toml"),
    )
    .expect("valid");
    assert_eq!(set.report_keep, Duration::from_secs(30 * 86_400));
}

#[test]
fn prefix_rule_defaults_and_checks() {
    let cfg = Config::parse(
        &format!("[daemon]\nnever = [\"10.0.0.0/8\", \"2001:db8:ffff::/48\"]\n{JAIL}findtime = \"2h\"\nbantime = \"3h\"\nban_v6_as = 64\n[jail.sshd.prefix]\nmaxaddrs = 9\n"),
        Path::new("t.toml"),
    )
    .expect("valid config");
    let j = &cfg.jails[0];
    let p = j.prefix.as_ref().unwrap();
    assert_eq!((p.v4, p.v6, p.maxaddrs), (24, 64, 9));
    assert_eq!(p.findtime, Duration::from_secs(7200), "the jail's findtime");
    assert_eq!(
        p.bantime,
        Duration::from_secs(3 * 3600),
        "the jail's bantime"
    );
    assert_eq!(j.ban_v6_as, Some(64));
    assert_eq!(cfg.never.len(), 2);
    assert!(
        j.ignore.contains("10.1.2.3".parse().unwrap()),
        "never is ignored by every jail"
    );
    assert!(j.ignore.contains("2001:db8:ffff:1::1".parse().unwrap()));

    let text = format!(
        "[daemon]\nnever = [\"0.0.0.0/0\"]\n{JAIL}ban_v6_as = 200\n[jail.sshd.prefix]\nv4 = 33\nv6 = 8\nmaxaddrs = 1\nbantime = \"x\"\ncount = 3\n"
    );
    let e = errors(&text);
    assert!(
        e.starts_with(
            "/etc/nftjail/nftjail.toml:12:1: jail.sshd.prefix.count: unknown field `count`"
        ),
        "{e}"
    );
    let text = format!(
        "[daemon]\nnever = [\"0.0.0.0/0\"]\n{JAIL}ban_v6_as = 200\n[jail.sshd.prefix]\nv4 = 33\nv6 = 8\nmaxaddrs = 1\nbantime = \"x\"\n"
    );
    let e = errors(&text);
    for want in [
        "nftjail.toml:2:9: daemon.never: 0.0.0.0/0 is every address",
        "nftjail.toml:6:13: jail.sshd.ban_v6_as: must be a prefix length from 16 to 127",
        "nftjail.toml:8:6: jail.sshd.prefix.v4: must be a prefix length from 8 to 31",
        "nftjail.toml:9:6: jail.sshd.prefix.v6: must be a prefix length from 16 to 127",
        "nftjail.toml:10:12: jail.sshd.prefix.maxaddrs: must be a whole number from 2",
        "nftjail.toml:11:11: jail.sshd.prefix.bantime: invalid duration",
    ] {
        assert!(e.contains(want), "{want:?} not in:\n{e}");
    }
}
