//! `nftjail` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use nftjail::config::{Config, DEFAULT_PATH};
use nftjail::daemon::{self, RunOptions};

mod cli {
    pub mod test;
}

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
    /// Run one filter over a log file (or - for stdin) and count matches.
    Test {
        /// A built-in filter name or a filter file
        filter: String,
        /// Log file, or - for standard input
        log: String,
        /// Print the lines that matched
        #[arg(long)]
        print_matched: bool,
        /// Print the lines that did not match
        #[arg(long)]
        print_missed: bool,
        /// Print the filter's expanded regexes and exit
        #[arg(long)]
        print_regex: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines go to stderr from a writer thread, so a burst of thousands of
    // ban lines costs the enforcer a queue push each, not a write(2) each.
    // Not lossy: every ban line is written; the guard flushes them at exit.
    let (writer, _flush_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(4096)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(writer)
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
            drop(_flush_at_exit);
            eprintln!("nftjail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Test {
            ref filter,
            ref log,
            print_matched,
            print_missed,
            print_regex,
        } => {
            let opts = cli::test::Options {
                print_matched,
                print_missed,
                print_regex,
            };
            cli::test::run(filter, log, &opts)
        }
        Command::Check => {
            let config = load()?;
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
            let config = load()?;
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
