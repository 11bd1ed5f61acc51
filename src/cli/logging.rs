//! Where the daemon's log goes: the systemd journal, through its native
//! protocol, when stderr is the journal (under systemd); plain lines on
//! stderr otherwise. The journal keeps each event's priority and fields,
//! so bans can be queried by field (`journalctl -u nftjail JAIL=sshd`);
//! plain text keeps the fast path for ban lines (`enforce/banlog.rs`).

use std::os::unix::fs::MetadataExt;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Messages waiting for the log writer thread; a full queue makes the
/// logging thread wait (nothing is dropped).
const LOG_QUEUE: usize = 256;

/// `nftjail run --log-level`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn directive(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// `--log-level` stands over `NFTJAIL_LOG` (an EnvFilter directive such as
/// `info,nftjail::source=debug`), which stands over the default, info. A
/// directive that does not parse is said, not silently dropped.
fn filter(level: Option<Level>) -> EnvFilter {
    if let Some(level) = level {
        return EnvFilter::new(level.directive());
    }
    match std::env::var("NFTJAIL_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("nftjail: NFTJAIL_LOG={spec:?} ignored: {e}");
            EnvFilter::new("info")
        }),
        Err(_) => EnvFilter::new("info"),
    }
}

/// Whether stderr is the journal stream systemd connected: `JOURNAL_STREAM`
/// names its device and inode (systemd.exec(5)). Checking them, not only
/// the variable, keeps `nftjail run 2>file` started from a unit (or a
/// shell inheriting the variable) writing plain text where it was told.
fn stderr_is_the_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

/// Sets up the global subscriber. The guard flushes buffered plain lines
/// when dropped: keep it until the end of `main`.
pub fn init(level: Option<Level>) -> Option<WorkerGuard> {
    if stderr_is_the_journal() {
        // The journal socket not answering leaves plain lines on stderr,
        // which the journal reads as well.
        if let Ok(journal) = tracing_journald::layer() {
            let journal = journal
                .with_field_prefix(None)
                .with_syslog_identifier("nftjail".into());
            nftjail::daemon::ban_events_with_fields();
            tracing_subscriber::registry()
                .with(filter(level))
                .with(journal)
                .init();
            return None;
        }
    }
    // Log lines go to stderr from a writer thread, so a burst of ban lines
    // costs the enforcer a queue push, not a write(2) each. Not lossy: every
    // ban line is written; the guard flushes them at exit. A burst's ban
    // lines go as one message (`enforce/banlog.rs`), so a short queue holds
    // many; its slots are allocated and written when it is made, and stay
    // resident for the daemon's life, so it is kept to what a burst needs.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE)
        .finish(std::io::stderr());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !ansi {
        // Plain text: a flood's ban lines may skip the per-line event.
        nftjail::daemon::ban_lines_written_directly_to(writer.clone());
    }
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
        .with_env_filter(filter(level))
        .init();
    Some(guard)
}
