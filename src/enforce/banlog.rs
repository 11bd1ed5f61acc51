//! The log lines of automatic bans: one line per ban, as fail2ban writes
//! them (the `recidive` filter and admins' `grep` read them one address to a
//! line), but a batch's lines are written as one piece.
//!
//! Through `tracing`, each line is an event: its timestamp formatted, a
//! buffer allocated, a queue push, and a wake of the log writer thread; in
//! a flood of bans that cost was a large share of the way to the kernel.
//! Where the daemon's log is plain text (stderr not a terminal, so no
//! colours: under systemd, or redirected to a file), the enforcer formats
//! a batch's lines itself, byte for byte as `tracing` would (a test pins
//! that), with one timestamp for the batch, and hands them to the same
//! writer in one piece. Elsewhere, and when INFO is filtered out, it goes
//! through `tracing` as usual.
//!
//! Where the log is the systemd journal (`nftjail run` under systemd, see
//! `src/cli/logging.rs`), each ban and unban is an event of its own with
//! fields beside the same message, which the journal layer stores as
//! `JAIL=`, `ADDR=`, `FAILURES=`, `BANTIME=` (seconds) and `REASON=`
//! (`maxretry` for a ban the tracker decided, `prefix` for a prefix it
//! banned for its many failing addresses, `manual` for `nftjail ban` and
//! `unban`), so `journalctl -u nftjail JAIL=sshd` finds a jail's bans.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing::info;

use ipnet::IpNet;

use crate::bantime::human;
use crate::message::{BanOrder, Cause};

/// The daemon's log writer, when ban lines may be written to it directly.
static DIRECT: OnceLock<tracing_appender::non_blocking::NonBlocking> = OnceLock::new();

/// Bans and unbans are events with fields (the log is the journal).
static STRUCTURED: AtomicBool = AtomicBool::new(false);

/// Lets ban lines go straight to `writer`, which must be the writer of the
/// `tracing_subscriber::fmt` layer, with ANSI colours and targets off.
pub fn write_directly_to(writer: tracing_appender::non_blocking::NonBlocking) {
    let _ = DIRECT.set(writer);
}

/// Makes every ban and unban an event with its fields (see the module's
/// doc); for a log that stores fields, where plain text would lose them.
pub fn structured_events() {
    STRUCTURED.store(true, Ordering::Relaxed);
}

fn structured() -> bool {
    STRUCTURED.load(Ordering::Relaxed)
}

/// A ban of the tracker's, kept as fields when the log takes fields.
struct Decided {
    verb: &'static str,
    jail: Arc<str>,
    order: Shown,
    bantime: Duration,
}

/// What a ban line says of the order: the address or prefix and what
/// decided it (an address as itself, without its /32 or /128).
struct Shown {
    target: IpNet,
    host: bool,
    cause: Cause,
    failures: u32,
}

impl Shown {
    fn of(order: &BanOrder) -> Shown {
        Shown {
            target: order.target,
            host: order.is_host(),
            cause: order.cause.clone(),
            failures: order.failures,
        }
    }

    /// The `REASON=` of a structured event.
    fn reason(&self) -> &'static str {
        match self.cause {
            Cause::Prefix { .. } => "prefix",
            Cause::Account(_) => "account",
            _ => "maxretry",
        }
    }
}

impl fmt::Display for Shown {
    /// `addr=192.0.2.7 failures=5`, or for a prefix the tracker banned for
    /// its many failing addresses `addr=192.0.2.0/24 cause=prefix addrs=9`
    /// (the recidive filter, which reads `addr=<HOST> `, counts neither
    /// kind of prefix). A ban for spraying an account names it
    /// (`failures=1 account=alice@example.org`: an [`Account`] is one clean
    /// line), so the admin can warn its owner; one of a jail's extra
    /// windows says which (`window=1`).
    ///
    /// [`Account`]: crate::message::Account
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host {
            write!(f, "addr={}", self.target.addr())?;
        } else {
            write!(f, "addr={}", self.target)?;
        }
        match &self.cause {
            Cause::Prefix { addrs } => write!(f, " cause=prefix addrs={addrs}"),
            Cause::Account(a) => write!(f, " failures={} account={a}", self.failures),
            Cause::Window(i) if *i > 0 => write!(f, " failures={} window={i}", self.failures),
            _ => write!(f, " failures={}", self.failures),
        }
    }
}

#[derive(Default)]
pub struct BanLog {
    /// The messages, `\n`-terminated, each after [`BanLog::prefix`] when
    /// the lines go straight to the log's writer.
    text: String,
    lines: usize,
    /// What starts every line written directly: the batch's one timestamp
    /// and the level, as `tracing` writes them (empty: the lines go
    /// through `tracing`, which adds its own). Decided at the first line,
    /// so a flood's lines are formatted once, in their final form.
    prefix: String,
    /// Whether [`BanLog::prefix`] was decided for the lines held now.
    decided: bool,
    /// The last bantime written and how it reads: a flood's bans share one.
    bantime: Option<(Duration, String)>,
    /// The same bans as fields, when [`structured_events`] was asked for.
    events: Vec<Decided>,
}

impl BanLog {
    /// A log whose lines carry `now` and the level, as written to the
    /// daemon's log writer directly (for tests; the daemon decides that
    /// at the first line).
    #[cfg(test)]
    fn direct_at(now: jiff::Timestamp) -> BanLog {
        BanLog {
            prefix: prefix(now),
            decided: true,
            ..BanLog::default()
        }
    }

    pub fn push(&mut self, verb: &'static str, order: &BanOrder) {
        if structured() {
            self.events.push(Decided {
                verb,
                jail: Arc::clone(&order.jail),
                order: Shown::of(order),
                bantime: order.bantime,
            });
            return;
        }
        if !self.decided {
            self.decided = true;
            if DIRECT.get().is_some() && tracing::enabled!(tracing::Level::INFO) {
                self.prefix = prefix(jiff::Timestamp::now());
            }
        }
        if self
            .bantime
            .as_ref()
            .is_none_or(|(d, _)| *d != order.bantime)
        {
            self.bantime = Some((order.bantime, human(order.bantime)));
        }
        let bantime = self.bantime.as_ref().map_or("", |(_, text)| text.as_str());
        self.text.push_str(&self.prefix);
        let _ = writeln!(
            self.text,
            "{verb}: jail={} {} bantime={bantime}",
            order.jail,
            Shown::of(order),
        );
        self.lines += 1;
    }

    /// Writes the lines and forgets them.
    pub fn flush(&mut self) {
        for e in self.events.drain(..) {
            let addr = if e.order.host {
                e.order.target.addr().to_string()
            } else {
                e.order.target.to_string()
            };
            info!(
                jail = %e.jail,
                addr,
                failures = e.order.failures,
                bantime = e.bantime.as_secs(),
                reason = e.order.reason(),
                "{}: jail={} {} bantime={}",
                e.verb,
                e.jail,
                e.order,
                human(e.bantime)
            );
        }
        if self.lines == 0 {
            return;
        }
        // One line goes through `tracing` like any event: a piece of our
        // own would save nothing.
        let direct = DIRECT
            .get()
            .filter(|_| self.lines > 1 && !self.prefix.is_empty());
        match direct {
            Some(writer) => {
                let mut writer = writer.clone();
                let _ = writer.write_all(self.text.as_bytes());
            }
            None => {
                let skip = self.prefix.len();
                for line in self.text.lines() {
                    info!("{}", line.get(skip..).unwrap_or(line));
                }
            }
        }
        self.text.clear();
        self.lines = 0;
        self.prefix.clear();
        self.decided = false;
    }
}

/// How `tracing_subscriber::fmt` starts an INFO event without colours or
/// target: `2026-03-05T16:01:34.123456Z  INFO `.
fn prefix(now: jiff::Timestamp) -> String {
    format!("{}  INFO ", now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// A ban by hand (`nftjail ban`) of an address or a prefix.
pub fn manual_ban(verb: &str, jail: &str, target: &str, prefix: bool, bantime: Duration) {
    let what = if prefix { "prefix" } else { "addr" };
    if structured() {
        info!(
            jail,
            addr = target,
            bantime = bantime.as_secs(),
            reason = "manual",
            "{verb}: jail={jail} {what}={target} manual bantime={}",
            human(bantime)
        );
    } else {
        info!(
            "{verb}: jail={jail} {what}={target} manual bantime={}",
            human(bantime)
        );
    }
}

/// A ban lifted by hand (`nftjail unban`).
pub fn manual_unban(jail: &str, target: &str) {
    if structured() {
        info!(
            jail,
            addr = target,
            reason = "manual",
            "unban: jail={jail} addr={target}"
        );
    } else {
        info!("unban: jail={jail} addr={target}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Cause;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn order(jail: &str, addr: &str, failures: u32) -> BanOrder {
        BanOrder {
            failures,
            cause: Cause::Manual,
            ..BanOrder::host(
                jail.into(),
                addr.parse::<IpAddr>().unwrap(),
                Duration::from_secs(3600),
            )
        }
    }

    /// What `tracing_subscriber::fmt`, set up as `main` sets it up, writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_written_directly_are_those_tracing_writes() {
        let mut log = BanLog::default();
        let mut direct = BanLog::direct_at(jiff::Timestamp::now());
        for log in [&mut log, &mut direct] {
            log.push("ban", &order("ssh", "192.0.2.1", 3));
            log.push("ban extended", &order("smtp", "2001:db8::7", 5));
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_target(false)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for line in log.text.lines() {
                info!("{line}");
            }
        });
        let traced = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let ours = direct.text;
        // Timestamps differ by when each was taken: compare the rest, and
        // the timestamps' shape.
        let split = |s: &str| -> Vec<(usize, String)> {
            s.lines()
                .map(|l| {
                    let (stamp, rest) = l.split_at(l.find(' ').unwrap());
                    (stamp.len(), rest.to_string())
                })
                .collect()
        };
        assert_eq!(
            split(&ours),
            split(&traced),
            "ours:\n{ours}\ntracing:\n{traced}"
        );
        assert_eq!(
            ours.lines().nth(1).unwrap().split_once(' ').unwrap().1,
            " INFO ban extended: jail=smtp addr=2001:db8::7 failures=5 bantime=1h"
        );
        assert!(traced.starts_with(&ours[..4]), "{traced}");
        assert!(ours.lines().all(|l| l.as_bytes()[26] == b'Z'), "{ours}");
    }

    #[test]
    fn every_ban_is_one_line_of_its_own() {
        let mut log = BanLog::direct_at(jiff::Timestamp::now());
        for i in 0..300 {
            let bantime = Duration::from_secs(if i == 150 { 60 } else { 3600 });
            log.push(
                "ban",
                &BanOrder {
                    bantime,
                    ..order("smtp", &format!("10.0.{}.{}", i / 250, i % 250), 5)
                },
            );
        }
        let text = log.text;
        assert_eq!(text.lines().count(), 300);
        assert!(text
            .lines()
            .nth(299)
            .unwrap()
            .ends_with("  INFO ban: jail=smtp addr=10.0.1.49 failures=5 bantime=1h"));
        // Each line says its own bantime, though most share one.
        let bantimes: Vec<&str> = text.lines().map(|l| &l[l.len() - 3..]).collect();
        assert_eq!(bantimes[149..152], ["=1h", "=1m", "=1h"]);
    }
}
