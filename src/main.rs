//! `nftjail` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use nftjail::config::{Config, DEFAULT_PATH};
use nftjail::daemon::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "nftjail",
    version,
    about = "Bans attackers found in logs into kernel nftables sets"
)]
struct Cli {
    /// Config file [default: /etc/nftjail/nftjail.toml, else the built-in config]
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground, logging to stderr.
    Run {
        /// Log bans instead of putting them in the kernel.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the config and exit: 0 when it is valid.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NFTJAIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nftjail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check => {
            println!(
                "{}: OK, {} jail(s): {}",
                config.origin.display(),
                config.jails.len(),
                config
                    .jails
                    .iter()
                    .map(|j| &*j.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Run { dry_run } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime
                .block_on(daemon::run(config, RunOptions { dry_run }))
                .with_context(|| format!("daemon failed (config default path: {DEFAULT_PATH})"))
        }
    }
}
