#![allow(clippy::disallowed_methods, clippy::unwrap_used)]
//! What the package is made of and what an installed daemon insists on, at
//! the command line: `nftjail generate` renders section-8 pages and
//! completions from the parser's own definition, and `run` and `check`
//! refuse a config file others may write. The .deb itself is built and
//! checked by `cargo xtask ci` (`cargo xtask deb --check`): a release build
//! inside `cargo test` would wait on the build lock this run holds.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_nftjail");

fn nftjail(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NFTJAIL_LOG")
        .output()
        .unwrap()
}

#[test]
fn generate_man_writes_section_8_pages_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = nftjail(&["generate", "man", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let main = std::fs::read_to_string(dir.path().join("nftjail.8")).unwrap();
    assert!(main.starts_with(".ie"), "roff output");
    assert!(main.contains(".TH nftjail 8"), "{main}");
    for section in [
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH FILES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(main.contains(section), "{section} missing");
    }
    assert!(main.contains("/etc/nftjail/nftjail.toml"));
    for sub in [
        "run",
        "check",
        "test",
        "import-fail2ban",
        "status",
        "ban",
        "unban",
        "reload",
    ] {
        let page = std::fs::read_to_string(dir.path().join(format!("nftjail-{sub}.8"))).unwrap();
        assert!(page.contains(&format!(".TH nftjail-{sub} 8")), "{sub}");
        let footer = concat!("nftjail ", env!("CARGO_PKG_VERSION"));
        assert!(page.contains(footer), "{sub}: no {footer:?} footer");
    }
    // The packaging command documents nothing an admin would run.
    assert!(!dir.path().join("nftjail-generate.8").exists());
    assert!(!main.contains("generate"));
}

#[test]
fn generate_completions_writes_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    let out = nftjail(&["generate", "completions", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let bash = std::fs::read_to_string(dir.path().join("nftjail.bash")).unwrap();
    assert!(
        bash.contains("complete -F _nftjail"),
        "bash registers the function"
    );
    assert!(bash.contains("import-fail2ban"));
    let zsh = std::fs::read_to_string(dir.path().join("_nftjail")).unwrap();
    assert!(zsh.starts_with("#compdef nftjail"));
    let fish = std::fs::read_to_string(dir.path().join("nftjail.fish")).unwrap();
    assert!(fish.contains("complete -c nftjail"));
    // bash itself must accept the script.
    let ok = Command::new("bash")
        .arg("-n")
        .arg(dir.path().join("nftjail.bash"))
        .status()
        .expect("bash is installed")
        .success();
    assert!(ok);
}

fn group_writable_config(dir: &Path) -> String {
    let path = dir.join("nftjail.toml");
    std::fs::write(
        &path,
        "[daemon]\nbackend = \"log\"\n[jail.sshd]\nfilter = \"sshd\"\nlogpath = \"/var/log/auth.log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn check_and_run_refuse_a_group_writable_config_and_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = group_writable_config(dir.path());
    for args in [
        vec!["check", "-c", &path],
        vec![
            "run",
            "--dry-run",
            "-c",
            &path,
            "--state-dir",
            "/nonexistent",
        ],
    ] {
        let out = nftjail(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted it");
        assert!(
            stderr.contains(&format!("chmod go-w {path}")),
            "{args:?}: {stderr}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = nftjail(&["check", "-c", &path]);
    assert!(out.status.success(), "{out:?}");
}
