//! Prometheus metrics, off unless `[metrics] listen` is configured.
//!
//! One registry per process, installed at start when the config asks for
//! it; every stage reports through the free functions here, which do
//! nothing when no registry is installed. A process-wide registry keeps the
//! stages' constructors as they are: a handle threaded through every stage
//! for an optional feature would change each one's signature, and a
//! process runs one daemon.
//!
//! Nothing here is paid per line: readers count lines in plain locals and
//! add them here when their batch leaves ([`SourceCounters`]); the tracker,
//! the enforcer and the state writer report once per batch or message.
//! Values that a stage already keeps (active bans, syslog counters) are read
//! when scraped instead of being mirrored.

mod http;

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use http::{ActiveBans, Exporter, MetricsError, SetCount};

/// Why a ban was applied.
pub const FILTER: &str = "filter";
/// `nftjail ban`, or `nftjail unban` for an unban.
pub const MANUAL: &str = "manual";
/// Put back at start from the state store.
pub const RESTORE: &str = "restore";
/// A line of a jail's blocklist file (applied, or lifted once off the file).
pub const BLOCKLIST: &str = "blocklist";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailLabel {
    jail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailReason {
    jail: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JailSet {
    jail: String,
    set: &'static str,
}

type SyslogReader = Box<dyn Fn() -> [u64; 6] + Send + Sync>;

/// Every metric of the daemon, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    lines_read: Family<SourceLabel, Counter>,
    lines_matched: Family<SourceLabel, Counter>,
    source_lag: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    failures: Family<JailLabel, Counter>,
    bans: Family<JailReason, Counter>,
    unbans: Family<JailReason, Counter>,
    active: Family<JailSet, Gauge>,
    enforcer_errors: Counter,
    heals: Counter,
    ban_latency: Histogram,
    tracked: Gauge,
    state_backlog: Gauge,
    state_degraded: Gauge,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
/// The syslog receiver's own counters, read at scrape; a reload that opens a
/// new receiver replaces the reader.
static SYSLOG: Mutex<Option<SyslogReader>> = Mutex::new(None);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            lines_read: Family::default(),
            lines_matched: Family::default(),
            source_lag: Family::default(),
            failures: Family::default(),
            bans: Family::default(),
            unbans: Family::default(),
            active: Family::default(),
            enforcer_errors: Counter::default(),
            heals: Counter::default(),
            // 1 ms to about 65 s.
            ban_latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            tracked: Gauge::default(),
            state_backlog: Gauge::default(),
            state_degraded: Gauge::default(),
        };
        let r = &mut registry;
        r.register(
            "nftjail_lines_read",
            "Lines read, per source",
            m.lines_read.clone(),
        );
        r.register(
            "nftjail_lines_matched",
            "Lines in which a filter found a failure, per source",
            m.lines_matched.clone(),
        );
        r.register(
            "nftjail_source_lag_seconds",
            "For the newest failure a reader handed on: how long after the line's own time it was read (0 for lines without a time)",
            m.source_lag.clone(),
        );
        r.register(
            "nftjail_failures",
            "Failures counted by the tracker, per jail",
            m.failures.clone(),
        );
        r.register(
            "nftjail_bans",
            "Bans applied in the kernel (new or extended), per jail and reason: filter, manual, restore, blocklist",
            m.bans.clone(),
        );
        r.register(
            "nftjail_unbans",
            "Bans lifted before their time, per jail and reason (expiry is the kernel's and is not counted)",
            m.unbans.clone(),
        );
        r.register(
            "nftjail_active_bans",
            "Bans in force, per jail and set (v4, v6: addresses; net4, net6: prefixes)",
            m.active.clone(),
        );
        r.register(
            "nftjail_enforcer_errors",
            "Batches or requests the enforcer could not apply",
            m.enforcer_errors.clone(),
        );
        r.register(
            "nftjail_heals",
            "Times our table was rebuilt with its bans after someone else changed it",
            m.heals.clone(),
        );
        r.register(
            "nftjail_ban_latency_seconds",
            "From reading the line that decided a ban to the kernel accepting the ban",
            m.ban_latency.clone(),
        );
        r.register(
            "nftjail_tracked_addresses",
            "Addresses whose failures the tracker is counting",
            m.tracked.clone(),
        );
        r.register(
            "nftjail_state_backlog",
            "Messages queued for the state writer",
            m.state_backlog.clone(),
        );
        r.register(
            "nftjail_state_degraded",
            "1 while the state store is not the file or refuses writes (bans go on, persistence does not)",
            m.state_degraded.clone(),
        );
        r.register_collector(Box::new(SyslogCollector));
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Installs the registry; from now on the stages' reports are counted.
/// Idempotent: a second call keeps the first registry.
pub fn install() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The registry, when metrics are on.
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// A reader's counters for its source, looked up once per reader so that
/// its flush costs two atomic additions, not a map lookup.
#[derive(Clone)]
pub struct SourceCounters {
    read: Counter,
    matched: Counter,
    lag: Gauge<f64, AtomicU64>,
}

impl SourceCounters {
    /// None when metrics are off.
    pub fn new(source: &str) -> Option<SourceCounters> {
        let m = get()?;
        let label = SourceLabel {
            source: source.to_string(),
        };
        Some(SourceCounters {
            read: m.lines_read.get_or_create_owned(&label),
            matched: m.lines_matched.get_or_create_owned(&label),
            lag: m.source_lag.get_or_create_owned(&label),
        })
    }

    /// Adds what a reader counted since its last flush; `newest` is the
    /// time of the newest failure it handed on, if any.
    pub fn add(&self, read: u64, matched: u64, newest: Option<SystemTime>) {
        if read > 0 {
            self.read.inc_by(read);
        }
        if matched > 0 {
            self.matched.inc_by(matched);
        }
        if let Some(t) = newest {
            let lag = SystemTime::now().duration_since(t).unwrap_or_default();
            self.lag.set(lag.as_secs_f64());
        }
    }
}

/// Failures the tracker counted for `jail` since it last reported.
pub fn failures(jail: &str, n: u64) {
    if let (Some(m), true) = (get(), n > 0) {
        m.failures
            .get_or_create(&JailLabel {
                jail: jail.to_string(),
            })
            .inc_by(n);
    }
}

/// Addresses the tracker counts failures of now.
pub fn tracked(n: usize) {
    if let Some(m) = get() {
        m.tracked.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// `n` bans applied in `jail`, for `reason` ([`FILTER`], [`MANUAL`], [`RESTORE`]).
pub fn banned(jail: &str, reason: &'static str, n: u64) {
    if let Some(m) = get() {
        m.bans
            .get_or_create(&JailReason {
                jail: jail.to_string(),
                reason,
            })
            .inc_by(n);
    }
}

/// One ban lifted in `jail` before its time.
pub fn unbanned(jail: &str, reason: &'static str) {
    if let Some(m) = get() {
        m.unbans
            .get_or_create(&JailReason {
                jail: jail.to_string(),
                reason,
            })
            .inc();
    }
}

/// The kernel accepted bans whose lines were read at `read`.
pub fn ban_latency(read: impl Iterator<Item = Instant>) {
    if let Some(m) = get() {
        let now = Instant::now();
        for r in read {
            m.ban_latency
                .observe(now.saturating_duration_since(r).as_secs_f64());
        }
    }
}

pub fn enforcer_error() {
    if let Some(m) = get() {
        m.enforcer_errors.inc();
    }
}

pub fn healed() {
    if let Some(m) = get() {
        m.heals.inc();
    }
}

/// A message was queued for the state writer.
pub fn state_queued() {
    if let Some(m) = get() {
        m.state_backlog.inc();
    }
}

/// Whether persistence is degraded, said by the state writer each round.
pub fn state_degraded(yes: bool) {
    if let Some(m) = get() {
        m.state_degraded.set(i64::from(yes));
    }
}

/// The state writer took a message off its queue.
pub fn state_taken() {
    if let Some(m) = get() {
        m.state_backlog.dec();
    }
}

/// Where the syslog receiver's counters are read at scrape: received,
/// malformed, oversized, unrouted, rejected (UDP sender not allowed),
/// dropped (by the kernel, queue full).
pub fn syslog(read: impl Fn() -> [u64; 6] + Send + Sync + 'static) {
    if get().is_some() {
        if let Ok(mut s) = SYSLOG.lock() {
            *s = Some(Box::new(read));
        }
    }
}

/// Replaces the active-ban gauges with what the enforcer holds now.
fn set_active(m: &Metrics, counts: Vec<SetCount>) {
    m.active.clear();
    for c in counts {
        m.active
            .get_or_create(&JailSet {
                jail: c.jail,
                set: c.set,
            })
            .set(i64::try_from(c.count).unwrap_or(i64::MAX));
    }
}

/// Reads the syslog receiver's counters when scraped: they are atomics the
/// receiver keeps anyway, so mirroring them would cost a second atomic per
/// message.
#[derive(Debug)]
struct SyslogCollector;

impl Collector for SyslogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = match SYSLOG.lock() {
            Ok(s) => s.as_ref().map(|read| read()),
            Err(_) => None,
        };
        let Some(counts) = counts else { return Ok(()) };
        let mut metric = encoder.encode_descriptor(
            "nftjail_syslog_messages",
            "Messages of the syslog receiver: received, and of those malformed, oversized or unrouted (no jail reads their program); rejected (UDP sender not allowed) and dropped (by the kernel, receive queue full), which were never received",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (kind, n) in [
            "received",
            "malformed",
            "oversized",
            "unrouted",
            "rejected",
            "dropped",
        ]
        .into_iter()
        .zip(counts)
        {
            let labels = [("kind", kind)];
            ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counters_are_encoded_with_their_labels() {
        let m = Metrics::new();
        m.bans
            .get_or_create(&JailReason {
                jail: "sshd".into(),
                reason: FILTER,
            })
            .inc_by(3);
        set_active(
            &m,
            vec![SetCount {
                jail: "sshd".into(),
                set: "v4",
                count: 2,
            }],
        );
        let text = m.encode();
        assert!(
            text.contains("nftjail_bans_total{jail=\"sshd\",reason=\"filter\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("nftjail_active_bans{jail=\"sshd\",set=\"v4\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        // A refresh replaces the gauges: a jail without bans disappears.
        set_active(&m, Vec::new());
        assert!(!m.encode().contains("nftjail_active_bans{"));
    }
}
