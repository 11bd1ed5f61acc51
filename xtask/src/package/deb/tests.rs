use std::path::Path;
use std::process::Command;

use super::*;

fn pkg() -> Package {
    serde_json::from_str(
        r#"{"name":"nftjail","version":"1.2.3","authors":["A Maintainer <a@example.org>"],
            "license":"GPL-3.0-or-later"}"#,
    )
    .expect("package json")
}

#[test]
fn control_names_what_dpkg_and_lintian_need() {
    let c = control(&pkg(), "amd64", "libc6 (>= 2.34), libsystemd0", 4242);
    for line in [
        "Package: nftjail\n",
        "Version: 1.2.3\n",
        "Architecture: amd64\n",
        "Maintainer: A Maintainer <a@example.org>\n",
        "Installed-Size: 4242\n",
        "Depends: libc6 (>= 2.34), libsystemd0\n",
        "Section: net\n",
        "Priority: optional\n",
    ] {
        assert!(c.contains(line), "{line:?} missing from\n{c}");
    }
    // The long description: every line indented, none empty.
    let long: Vec<&str> = c
        .lines()
        .skip_while(|l| !l.starts_with("Description:"))
        .skip(1)
        .collect();
    assert!(!long.is_empty());
    assert!(long
        .iter()
        .all(|l| l.starts_with(' ') && l.trim().len() > 1));
}

#[test]
fn changelog_lines_fit_80_columns() {
    let long = format!("## Unreleased\n\n- {}\n", "word ".repeat(60));
    let text = debian_changelog(&long, "1", "A <a@example.org>", "");
    assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    assert_eq!(text.matches("word").count(), 60);
}

#[test]
fn changelog_takes_the_first_section() {
    let md = "# Changelog\n\n## Unreleased\n\nFeature:\n- one thing\n  that wraps\n- another\n\n## 0.0.1\n\n- old\n";
    let text = debian_changelog(
        md,
        "1.2.3",
        "A <a@example.org>",
        "Mon, 07 Dec 2026 10:00:00 +0000",
    );
    assert_eq!(
        text,
        "nftjail (1.2.3) unstable; urgency=medium\n\n  [ Feature ]\n  * one thing that wraps\n  * another\n\n -- A <a@example.org>  Mon, 07 Dec 2026 10:00:00 +0000\n"
    );
}

/// Runs one maintainer script with stub deb-systemd-helper,
/// deb-systemd-invoke and systemctl that log their arguments; `systemd`
/// says whether the machine looks booted with systemd.
fn run_script(name: &str, args: &[&str], systemd: bool) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    let run = dir.path().join("run-systemd-system");
    let log = dir.path().join("calls");
    std::fs::create_dir(&bin).expect("bin");
    if systemd {
        std::fs::create_dir(&run).expect("run dir");
    }
    for tool in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let stub = bin.join(tool);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 0\n",
                log.display()
            ),
        )
        .expect("stub");
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let text = maintainer_scripts()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)
        .expect("script exists");
    let text = text
        .replace("/run/systemd/system", &run.to_string_lossy())
        .replace(
            "/usr/bin/deb-systemd-helper",
            &bin.join("deb-systemd-helper").to_string_lossy(),
        );
    let script = dir.path().join(name);
    std::fs::write(&script, text).expect("script");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("sh")
        .arg(&script)
        .args(args)
        .env("PATH", path)
        .env_remove("DPKG_ROOT")
        .status()
        .expect("sh runs");
    assert!(status.success(), "{name} {args:?} failed");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn invoked(calls: &[String]) -> Vec<&str> {
    calls
        .iter()
        .filter(|c| c.starts_with("deb-systemd-invoke"))
        .map(String::as_str)
        .collect()
}

#[test]
fn first_install_enables_and_starts() {
    let calls = run_script("postinst", &["configure"], true);
    assert!(
        calls.contains(&"deb-systemd-helper enable nftjail.service".to_string()),
        "{calls:?}"
    );
    assert_eq!(
        invoked(&calls),
        ["deb-systemd-invoke start nftjail.service"]
    );
}

#[test]
fn upgrade_restarts_and_never_stops() {
    let prerm = run_script("prerm", &["upgrade", "1.2.3"], true);
    assert_eq!(
        invoked(&prerm),
        Vec::<&str>::new(),
        "prerm upgrade must leave the daemon running"
    );
    let postinst = run_script("postinst", &["configure", "1.2.2"], true);
    assert_eq!(
        invoked(&postinst),
        ["deb-systemd-invoke restart nftjail.service"]
    );
}

#[test]
fn removal_stops_and_purge_forgets() {
    let prerm = run_script("prerm", &["remove"], true);
    assert_eq!(invoked(&prerm), ["deb-systemd-invoke stop nftjail.service"]);
    let postrm = run_script("postrm", &["purge"], true);
    assert!(
        postrm.contains(&"deb-systemd-helper purge nftjail.service".to_string()),
        "{postrm:?}"
    );
}

#[test]
fn without_systemd_running_nothing_is_started_but_the_unit_is_enabled() {
    let calls = run_script("postinst", &["configure"], false);
    assert_eq!(invoked(&calls), Vec::<&str>::new());
    assert!(
        calls.contains(&"deb-systemd-helper enable nftjail.service".to_string()),
        "{calls:?}"
    );
}

#[test]
fn scripts_are_posix_sh() {
    for (name, text) in maintainer_scripts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, &text).expect("write");
        let ok = Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("sh")
            .success();
        assert!(ok, "{name} does not parse");
        assert!(text.starts_with("#!/bin/sh\nset -e\n"));
        assert!(Path::new(&path).exists());
    }
}
