//! `nftjail` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use nftjail::config::{Config, Files, DEFAULT_PATH};
use nftjail::daemon::{self, RunOptions};

mod cli {
    pub mod client;
    pub mod explain;
    pub mod generate;
    pub mod import;
    pub mod logging;
    pub mod report;
    pub mod test;
}

use cli::client::Style;
use nftjail::control::client::ClientError;
use nftjail::control::protocol::Request;

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
    /// Control socket of the daemon [default: the config's daemon.socket]
    #[arg(long, global = true, value_name = "PATH", env = "NFTJAIL_SOCKET")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground, logging to stderr (to the journal,
    /// with fields, when stderr is the journal under systemd).
    Run {
        /// Log this level and above; stands over NFTJAIL_LOG (an EnvFilter
        /// directive, e.g. `info,nftjail::source=debug`) [default: info]
        #[arg(long, value_name = "LEVEL")]
        log_level: Option<cli::logging::Level>,
        /// Log bans instead of putting them in the kernel (and keep no state).
        #[arg(long)]
        dry_run: bool,
        /// State directory, instead of the config's daemon.state_dir.
        #[arg(long, value_name = "DIR", env = "NFTJAIL_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Also read log lines from standard input, for this jail; the daemon stops at its end
        #[arg(long, value_name = "JAIL")]
        stdin: Option<String>,
    },
    /// Check the config and exit: 0 when it is valid.
    Check,
    /// Run one filter over a log file (or - for stdin) and report what it
    /// matched, like fail2ban-regex.
    Test {
        /// A built-in filter name, a filter file, or fail2ban:NAME[opts]
        /// (a fail2ban filter from /etc/fail2ban/filter.d, or a .conf path)
        filter: String,
        /// Log file, or - for standard input
        log: String,
        /// Print the lines that matched
        #[arg(long, conflicts_with = "json")]
        print_matched: bool,
        /// Print the lines that did not match
        #[arg(long, conflicts_with = "json")]
        print_missed: bool,
        /// Print the lines a failregex matched but an ignoreregex (or a
        /// fail2ban <F-NOFAIL> group) excused
        #[arg(long, conflicts_with = "json")]
        print_ignored: bool,
        /// Print the filter's failregexes and exit (ours with tags expanded, for grep -P)
        #[arg(long)]
        print_regex: bool,
        /// One JSON object per tested line on stdout (line, match, ignored,
        /// host, time, user, regex); the report goes to stderr
        #[arg(long)]
        json: bool,
    },
    /// Read a fail2ban configuration (jail.conf, jail.d, jail.local) and
    /// print the equivalent nftjail.toml for its enabled jails.
    ImportFail2ban {
        /// fail2ban's configuration directory
        #[arg(default_value = "/etc/fail2ban")]
        dir: PathBuf,
        /// Write the TOML here instead of to standard output (and the
        /// admin's hand-made ufw refusals beside it, as ufw-blocklist.txt)
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Where the jails that banned through fail2ban's ufw action ban now
        #[arg(long, value_enum, default_value = "nft")]
        backend: cli::import::ImportBackend,
        /// ufw's directory: its rules files and applications.d
        #[arg(long, value_name = "DIR", default_value = "/etc/ufw")]
        ufw_dir: PathBuf,
        /// Add the networks ufw lets in wholesale (`ufw allow from NET`) to
        /// the ignoreip of the jails imported from the ufw action
        #[arg(long)]
        ignore_ufw_allowed: bool,
        /// Second step, once nftjail runs with the imported config: remove
        /// from ufw the admin's hand-made refusals (`ufw reject|deny from
        /// NET`) that the daemon holds as blocklist bans; writes no config
        #[arg(long, conflicts_with_all = ["output", "ignore_ufw_allowed"])]
        move_ufw_rules: bool,
    },
    /// The jail list, or one jail's counters and bans (fail2ban-client's layout).
    Status {
        jail: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ban an address in a jail now.
    Ban {
        jail: String,
        addr: String,
        /// How long (600, 30s, 10m, 1h, 1d, 1w) [default: the jail's bantime]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Ban even an address the jail ignores (ignoreip, ignoreself)
        #[arg(long)]
        force: bool,
        /// No timeout: kept across restarts and reboots until `nftjail unban`
        #[arg(long, conflicts_with = "duration")]
        permanent: bool,
        #[arg(long)]
        json: bool,
    },
    /// Lift bans: `unban JAIL ADDR`, `unban ADDR` (every jail), `unban --all`
    /// or `unban --jail-gone`.
    Unban {
        #[arg(num_args = 0..=2, value_names = ["JAIL", "ADDR"])]
        args: Vec<String>,
        /// Every ban of every jail
        #[arg(long, conflicts_with = "args")]
        all: bool,
        /// Every ban of the jails a reload removed from the config (kept
        /// until they expire otherwise)
        #[arg(long, conflicts_with_all = ["args", "all"])]
        jail_gone: bool,
        #[arg(long)]
        json: bool,
    },
    /// Active bans with the time they have left, all or of one address.
    Banned {
        addr: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Make the daemon re-read its config; a broken file is reported and the running config stays.
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// This program's version and the running daemon's.
    Version {
        #[arg(long)]
        json: bool,
    },
    /// fail2ban-client's forms: status [JAIL], set JAIL banip|unbanip ADDR, unban ADDR|--all, reload.
    /// Also what runs when the binary is called through a `fail2ban-client` symlink.
    Client {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// What the state store saw: failures and bans per jail, the top
    /// addresses, prefixes (/24, /64) and targeted accounts. Works with the
    /// daemon running or stopped.
    Report {
        /// How far back (30m, 24h, 7d)
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        since: String,
        /// Rows in each top list
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: usize,
        /// One JSON object
        #[arg(long)]
        json: bool,
        /// State directory, instead of the config's daemon.state_dir.
        #[arg(long, value_name = "DIR", env = "NFTJAIL_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Why ADDR (or NET) is banned in JAIL: the rule, when, until when and
    /// the log lines that counted; if it is not, how far it is from each
    /// rule. Exit status 0 banned, 1 not banned, 2 error.
    Explain {
        jail: String,
        #[arg(value_name = "ADDR|NET")]
        target: String,
        /// How far back failures are looked for [default: the jail's findtime]
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// State directory, instead of the config's daemon.state_dir.
        #[arg(long, value_name = "DIR", env = "NFTJAIL_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// The manual pages or shell completions, for packaging.
    #[command(hide = true, subcommand)]
    Generate(cli::generate::What),
}

fn main() -> ExitCode {
    // Called as `fail2ban-client` (a symlink): every argument is a
    // fail2ban-client form, so scripts written for fail2ban keep working.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "fail2ban-client");
    if called {
        argv.insert(1, "client".into());
    }
    let cli = Cli::parse_from(argv);
    let level = match &cli.command {
        Command::Run { log_level, .. } => *log_level,
        _ => None,
    };
    let _flush_at_exit = cli::logging::init(level);
    if let Command::Explain { .. } = cli.command {
        return explain(&cli);
    }
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            drop(_flush_at_exit);
            eprintln!("nftjail: {e:#}");
            let code = e
                .downcast_ref::<ClientError>()
                .map_or(1, ClientError::exit_code);
            ExitCode::from(code)
        }
    }
}

/// The socket to talk to: `--socket`/`$NFTJAIL_SOCKET`, else the config's,
/// else the default; a config that does not parse must not stop `nftjail status`.
fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.socket {
        return s.clone();
    }
    if let Ok(c) = Config::load(cli.config.as_deref()) {
        return c.socket;
    }
    // A broken file (say, after an edit that `reload` is about to refuse):
    // its daemon.socket line is still the best guess at where the daemon is.
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "socket").then(|| {
                    value
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string()
                })
            })
        })
        .filter(|s| s.starts_with('/'))
        .map_or_else(
            || PathBuf::from(nftjail::config::DEFAULT_SOCKET),
            PathBuf::from,
        )
}

/// `--state-dir`, else the config's, else the default: `report` and
/// `explain` read the store without the daemon.
fn state_dir(cli: &Cli, given: Option<&PathBuf>) -> (PathBuf, Option<Config>) {
    let config = Config::load_with(cli.config.as_deref(), Files::Ignore).ok();
    let dir = given.cloned().unwrap_or_else(|| {
        config.as_ref().map_or_else(
            || PathBuf::from(nftjail::config::persist::DEFAULT_STATE_DIR),
            |c| c.state_dir.clone(),
        )
    });
    (dir, config)
}

/// `nftjail explain`, with its own exit statuses.
fn explain(cli: &Cli) -> ExitCode {
    let Command::Explain {
        jail,
        target,
        window,
        state_dir: given,
    } = &cli.command
    else {
        return ExitCode::from(2);
    };
    let window = match window
        .as_deref()
        .map(nftjail::config::duration::parse_duration)
    {
        Some(Err(e)) => {
            eprintln!("nftjail: --window: {e}");
            return ExitCode::from(2);
        }
        other => other.and_then(Result::ok),
    };
    let (dir, config) = state_dir(cli, given.as_ref());
    let query = cli::explain::Query {
        jail,
        target,
        window,
        config: config
            .as_ref()
            .and_then(|c| c.jails.iter().find(|j| &*j.name == jail)),
    };
    cli::explain::run(&dir, &query)
}

fn ask(cli: &Cli, req: Request, json: bool) -> anyhow::Result<()> {
    let style = if json { Style::Json } else { Style::Human };
    Ok(cli::client::run(&socket_path(cli), req, style)?)
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Test {
            ref filter,
            ref log,
            print_matched,
            print_missed,
            print_ignored,
            print_regex,
            json,
        } => {
            let opts = cli::test::Options {
                print_matched,
                print_missed,
                print_ignored,
                print_regex,
                json,
            };
            cli::test::run(filter, log, &opts)
        }
        Command::ImportFail2ban {
            ref dir,
            ref output,
            backend,
            ref ufw_dir,
            ignore_ufw_allowed,
            move_ufw_rules,
        } => {
            if move_ufw_rules {
                let paths = cli::import::ufw_move::MovePaths::new(ufw_dir);
                return cli::import::ufw_move::run(&paths, &socket_path(&cli));
            }
            let opts = cli::import::Options {
                backend,
                ufw_dir: ufw_dir.clone(),
                ignore_ufw_allowed,
            };
            cli::import::run(dir, output.as_deref(), &opts)
        }
        Command::Generate(ref what) => cli::generate::run(what, Cli::command()),
        Command::Report {
            ref since,
            top,
            json,
            ref state_dir,
        } => {
            let since = nftjail::config::duration::parse_duration(since)
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let (dir, _) = self::state_dir(&cli, state_dir.as_ref());
            cli::report::run(&dir, &cli::report::Options { since, top, json })
        }
        // Answered in main, with its own exit statuses.
        Command::Explain { .. } => Ok(()),
        Command::Check => {
            let config = Config::load_with(cli.config.as_deref(), Files::Check)?;
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            for w in nftjail::config::blocklist::check(&config.jails) {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: OK, {} jail(s): {}",
                config.origin.display(),
                config.jails.len(),
                config.jail_names().join(", ")
            );
            Ok(())
        }
        Command::Status { ref jail, json } => {
            ask(&cli, Request::Status { jail: jail.clone() }, json)
        }
        Command::Ban {
            ref jail,
            ref addr,
            ref duration,
            force,
            permanent,
            json,
        } => {
            let seconds = duration
                .as_deref()
                .map(nftjail::config::duration::parse_duration)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--for: {e}"))?
                .map(|d| d.as_secs());
            let req = Request::Ban {
                jail: jail.clone(),
                addr: addr.clone(),
                seconds,
                force,
                permanent,
            };
            ask(&cli, req, json)
        }
        Command::Unban {
            ref args,
            all,
            jail_gone,
            json,
        } => {
            if jail_gone {
                return ask(&cli, Request::UnbanGone, json);
            }
            let req = match (all, args.as_slice()) {
                (true, _) => Request::Unban {
                    jail: None,
                    addr: None,
                },
                (false, [addr]) => Request::Unban {
                    jail: None,
                    addr: Some(addr.clone()),
                },
                (false, [jail, addr]) => Request::Unban {
                    jail: Some(jail.clone()),
                    addr: Some(addr.clone()),
                },
                _ => anyhow::bail!(
                    "usage: nftjail unban JAIL ADDR | unban ADDR | unban --all | unban --jail-gone"
                ),
            };
            ask(&cli, req, json)
        }
        Command::Banned { ref addr, json } => {
            ask(&cli, Request::Banned { addr: addr.clone() }, json)
        }
        Command::Reload { json } => ask(&cli, Request::Reload, json),
        Command::Version { json } => ask(&cli, Request::Version, json),
        Command::Client { ref args } => {
            let requests = cli::client::fail2ban_forms(args).map_err(anyhow::Error::msg)?;
            let socket = socket_path(&cli);
            for req in requests {
                cli::client::run(&socket, req, Style::Fail2ban)?;
            }
            Ok(())
        }
        Command::Run {
            dry_run,
            state_dir,
            ref stdin,
            ..
        } => {
            let config = load()?;
            for w in &config.warnings {
                tracing::warn!("{w}");
            }
            if let Some(jail) = stdin {
                if !config.jails.iter().any(|j| &*j.name == jail) {
                    anyhow::bail!(
                        "--stdin {jail}: no such enabled jail (jails: {})",
                        config.jail_names().join(", ")
                    );
                }
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime
                .block_on(daemon::run(
                    config,
                    RunOptions {
                        dry_run,
                        config_path: cli.config.clone(),
                        state_dir,
                        stdin_jail: stdin.clone(),
                    },
                ))
                .with_context(|| format!("daemon failed (config default path: {DEFAULT_PATH})"))
        }
    }
}
