//! `nftjail generate man DIR` / `generate completions DIR`: the manual pages
//! and shell completions, rendered from the very clap definition that parses
//! the command line, so a new option cannot be missing from either.
//!
//! Hidden from `--help`: packagers run it (`cargo xtask deb`, `cargo xtask
//! install`), not admins.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use clap::{Command, Subcommand};
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// Section 8: system administration commands and daemons.
const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

#[derive(Subcommand)]
pub enum What {
    /// nftjail.8 and one nftjail-SUBCOMMAND.8 page per subcommand.
    Man {
        /// Directory to write the pages into (created if missing)
        dir: std::path::PathBuf,
    },
    /// Completions for bash (nftjail.bash), zsh (_nftjail) and fish (nftjail.fish).
    Completions {
        /// Directory to write the scripts into (created if missing)
        dir: std::path::PathBuf,
    },
}

/// The files the daemon reads and writes, for the main page's FILES section:
/// what an admin looks for first in a daemon's manual.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/nftjail/nftjail.toml",
        "The configuration (a commented default is installed). When it does not exist the same \
         default, compiled into the binary, is used. It must be owned by root and not writable \
         by group or others.",
    ),
    (
        "/etc/nftjail/filters/NAME.toml",
        "A filter named in filter = \"NAME\"; it takes precedence over the built-in filter of \
         the same name. Same ownership rule as the configuration.",
    ),
    (
        "/usr/share/nftjail/filters/",
        "The built-in filter library, for reference: these filters are compiled into the binary; \
         copy one to /etc/nftjail/filters to change it.",
    ),
    (
        "/var/lib/nftjail/nftjail.db",
        "Active bans, ban history and read positions (daemon.state_dir).",
    ),
    (
        "/run/nftjail/nftjail.sock",
        "The control socket used by status, ban, unban, banned and reload (daemon.socket).",
    ),
];

pub fn run(what: &What, cmd: Command) -> anyhow::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    match what {
        What::Man { dir } => man(&cmd, dir),
        What::Completions { dir } => completions(&mut cmd, dir),
    }
}

fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(BufWriter::new(file))
}

fn man(cmd: &Command, dir: &Path) -> anyhow::Result<()> {
    // Every page's footer names the program and its version, subcommands' too.
    let page = |c: &Command| {
        Man::new(c.clone())
            .section(SECTION)
            .manual(MANUAL)
            .source(concat!("nftjail ", env!("CARGO_PKG_VERSION")))
    };
    let main = page(cmd);
    let mut out = create(dir, &main.get_filename())?;
    main.render_title(&mut out)?;
    main.render_name_section(&mut out)?;
    main.render_synopsis_section(&mut out)?;
    main.render_description_section(&mut out)?;
    main.render_options_section(&mut out)?;
    main.render_subcommands_section(&mut out)?;
    files_and_see_also(cmd).to_writer(&mut out)?;
    main.render_version_section(&mut out)?;
    out.flush()?;
    // One page per subcommand, named as the main page's SUBCOMMANDS section
    // refers to them: nftjail-run(8), nftjail-check(8)...
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = page(sub);
        let mut out = create(dir, &man.get_filename())?;
        man.render(&mut out)?;
        out.flush()?;
    }
    Ok(())
}

fn files_and_see_also(cmd: &Command) -> Roff {
    let mut roff = Roff::default();
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []);
        roff.text([bold(*path)]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("nftjail-{}({SECTION})", s.get_name()))
        .collect();
    refs.extend(["nft(8)".to_string(), "systemctl(1)".to_string()]);
    roff.text([roman(refs.join(", "))]);
    roff
}

fn completions(cmd: &mut Command, dir: &Path) -> anyhow::Result<()> {
    for (shell, name) in [
        (Shell::Bash, "nftjail.bash"),
        (Shell::Zsh, "_nftjail"),
        (Shell::Fish, "nftjail.fish"),
    ] {
        let mut out = create(dir, name)?;
        clap_complete::generate(shell, cmd, "nftjail", &mut out);
        out.flush()?;
    }
    Ok(())
}
