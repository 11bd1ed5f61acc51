//! The link to Redis: connect, load the bans that run, follow the stream,
//! send what is queued, beat the heart; on any error drop it all and
//! connect again after a growing, jittered wait (so a farm whose Redis
//! came back does not reconnect in one stampede). Nothing on the ban path
//! waits for anything here.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::record::{self, millis, Checked, Checker, Fields, Refusal};
use super::scripts::{ACTIVE, COUNT, FAILURES, NODES, PUBLISH, SNAPSHOT, STREAM};
use super::{Failed, Inner};
use crate::config::Config;
use crate::enforce::enforcer::{EnforcerMsg, Shared};
use crate::message::{BanOrder, Cause};
use crate::state::Store;

/// How long one XREAD waits for news before it asks again.
const BLOCK: Duration = Duration::from_secs(2);
/// Longest wait for a connection or an answer before Redis counts as down.
const TIMEOUT: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(5);
/// The stream keeps a day of records; running bans do not depend on it
/// (the active set holds them), only unbans missed by a node away longer.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// A node silent this long is no longer listed.
const FORGET_NODE: Duration = Duration::from_secs(24 * 3600);
/// Records or failures per script call.
pub(super) const CHUNK: usize = 1000;
/// Stream entries per read.
const READ: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The state store's key for the last stream entry applied.
const CURSOR: &str = "farm:nftjail:bans";

type ConfigNow = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;
/// Running bans as the active set holds them: member, end (ms).
type Active = Vec<(Vec<u8>, u64)>;

pub(super) async fn run(
    inner: Arc<Inner>,
    config: ConfigNow,
    enforcer: mpsc::Sender<EnforcerMsg>,
    state_dir: PathBuf,
) {
    let url = inner.cluster.redis_shown();
    let client = match super::tls::client(&inner.cluster) {
        Ok(c) => c,
        Err(e) => {
            warn!("farm: cannot use Redis at {url}: {e}; farm mode is off");
            inner.set_error(Some(e));
            return;
        }
    };
    open_outbox(&inner, state_dir.clone()).await;
    let cursor = Cursor::open(state_dir).await;
    let mut failed = 0u32;
    let mut told_tls = false;
    loop {
        let began = Instant::now();
        let end = session(&client, &inner, &config, &enforcer, &cursor).await;
        inner.unsent();
        let was = inner.connected.swap(false, Ordering::Relaxed);
        match end {
            Ok(()) => return,
            Err(e) => {
                match say(&e, was || failed == 0, &mut told_tls) {
                    Say::Tls(check) => warn!(
                        "farm: TLS with Redis at {url} refused: {e}; {check}. \
                         Banning on this node's own counts meanwhile"
                    ),
                    Say::Unreachable => warn!(
                        "farm: Redis at {url} unreachable: {e}; banning on this node's own \
                         counts, what it decides is queued for the farm"
                    ),
                    Say::Again => debug!("farm: Redis at {url} still unreachable: {e}"),
                }
                inner.set_error(Some(e));
            }
        }
        if began.elapsed() > Duration::from_secs(60) {
            failed = 0;
        }
        failed = failed.saturating_add(1);
        // Meanwhile what is decided goes to the state store as it comes.
        let wait = tokio::time::sleep(backoff(failed));
        tokio::pin!(wait);
        loop {
            spill(&inner).await;
            tokio::select! {
                () = &mut wait => break,
                () = inner.wake.notified() => {}
            }
        }
    }
}

/// How a failed session is logged.
#[derive(Debug, PartialEq)]
enum Say {
    /// TLS refused the connection: a warning naming what to check.
    Tls(&'static str),
    /// The first failure since the start or the last connection: a warning.
    Unreachable,
    /// A repeat: debug only.
    Again,
}

/// `first`: the first failure since the start or the last connection.
/// A TLS refusal is warned about once in each run of failures even when
/// others came first (a node that tried before its network was up, then
/// met a CA it does not trust): it names the setting to fix, which a
/// repeat of the first warning would hide.
fn say(e: &str, first: bool, told_tls: &mut bool) -> Say {
    if first {
        *told_tls = false;
    }
    match super::tls::hint(e) {
        Some(check) if first || !*told_tls => {
            *told_tls = true;
            Say::Tls(check)
        }
        _ if first => Say::Unreachable,
        _ => Say::Again,
    }
}

/// Opens the state store's outbox before the first connection, which
/// sends what it holds first.
async fn open_outbox(inner: &Arc<Inner>, dir: PathBuf) {
    let opened = tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir)?;
        let len = store.outbox_len()?;
        Ok::<_, crate::state::StateError>((store, len))
    })
    .await;
    match opened {
        Ok(Ok((store, len))) => {
            if len > 0 {
                info!("farm: {len} bans and unbans from before the restart wait for Redis");
            }
            inner.stored.store(len, Ordering::Relaxed);
            if let Ok(mut slot) = inner.store.lock() {
                *slot = Some(store);
            }
        }
        Ok(Err(e)) => {
            warn!("farm: what waits for Redis is kept in memory only, a restart loses it: {e}")
        }
        Err(_) => {}
    }
}

async fn spill(inner: &Arc<Inner>) {
    let inner = Arc::clone(inner);
    let _ = tokio::task::spawn_blocking(move || inner.spill()).await;
}

/// Sends what the state store's outbox holds, oldest first, deleting each
/// chunk once Redis took it.
async fn send_stored(w: &mut MultiplexedConnection, inner: &Arc<Inner>) -> Result<(), String> {
    while inner.stored.load(Ordering::Relaxed) > 0 {
        let i = Arc::clone(inner);
        let read = tokio::task::spawn_blocking(move || match i.store.lock() {
            Ok(mut slot) => slot.as_mut().map(|s| s.outbox_first(CHUNK)),
            Err(_) => None,
        })
        .await;
        let waiting = match read {
            Ok(Some(Ok(w))) => w,
            Ok(Some(Err(e))) => {
                warn!("farm: cannot read the queue kept in the state store: {e}");
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(through) = waiting.through else {
            inner.stored.store(0, Ordering::Relaxed);
            return Ok(());
        };
        let chunk: Vec<Shared> = waiting.records.into_iter().map(super::shared).collect();
        if !chunk.is_empty() {
            publish(w, &inner.cluster.node, &chunk).await?;
            inner.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let i = Arc::clone(inner);
        let deleted = tokio::task::spawn_blocking(move || match i.store.lock() {
            Ok(mut slot) => slot.as_mut().map(|s| s.outbox_sent(through)),
            Err(_) => None,
        })
        .await;
        match deleted {
            Ok(Some(Ok(left))) => inner.stored.store(left, Ordering::Relaxed),
            Ok(Some(Err(e))) => {
                // Sent again later: at least once, as the stream promises.
                warn!("farm: cannot delete what was sent from the state store: {e}");
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// 250 ms doubling up to 30 s, each wait between half and one and a half of it.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1 << attempt.min(8))
        .min(BACKOFF_MAX);
    base.mul_f64(0.5 + fastrand::f64())
}

fn timeouts(answer: Duration) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(answer)
}

fn text(e: redis::RedisError) -> String {
    e.to_string()
}

/// One connection's life. Ok: the daemon is stopping (the enforcer is gone).
async fn session(
    client: &redis::Client,
    inner: &Arc<Inner>,
    config: &ConfigNow,
    enforcer: &mpsc::Sender<EnforcerMsg>,
    cursor: &Cursor,
) -> Result<(), String> {
    let mut w = client
        .get_multiplexed_async_connection_with_config(&timeouts(TIMEOUT))
        .await
        .map_err(text)?;
    // Its own connection: a blocked XREAD holds up whatever is queued behind it.
    let mut r = client
        .get_multiplexed_async_connection_with_config(&timeouts(BLOCK + TIMEOUT))
        .await
        .map_err(text)?;
    let mut checker = Checker::new(config(), inner.cluster.clone());
    let now = SystemTime::now();
    let snapshot: Value = SNAPSHOT
        .key(super::scripts::STREAM)
        .key(ACTIVE)
        .arg(millis(now))
        .invoke_async(&mut w)
        .await
        .map_err(text)?;
    let (last, active) = read_snapshot(snapshot)?;
    let mut apply = Vec::new();
    for (member, until) in active {
        match checker.check_active(&member, until, now) {
            Ok(Checked::Apply(s)) => apply.push(s),
            Ok(_) => {}
            Err(e) => refuse(inner, "active set", &e),
        }
    }
    let loaded = apply.len();
    if !send(enforcer, apply).await {
        return Ok(());
    }
    let from = match cursor.get() {
        Some(c) if !later(&c, &last) => c,
        _ => last,
    };
    heartbeat(&mut w, inner).await?;
    inner.connected.store(true, Ordering::Relaxed);
    inner.set_error(None);
    info!(
        "farm: connected to {} as node {}: {loaded} running bans loaded, following the stream from {from}",
        inner.cluster.redis_shown(),
        inner.cluster.node
    );
    tokio::select! {
        end = follow(&mut r, inner, config, &mut checker, enforcer, cursor, from) => end,
        end = drain(&mut w, inner, config, enforcer) => end,
    }
}

/// Applies the stream's records as they come.
async fn follow(
    r: &mut MultiplexedConnection,
    inner: &Inner,
    config: &ConfigNow,
    checker: &mut Checker,
    enforcer: &mpsc::Sender<EnforcerMsg>,
    cursor: &Cursor,
    mut from: String,
) -> Result<(), String> {
    loop {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(&from)
            .query_async(r)
            .await
            .map_err(text)?;
        let entries = stream_entries(reply);
        let Some((last, _)) = entries.last() else {
            continue;
        };
        let last = last.clone();
        checker.config = config();
        let now = SystemTime::now();
        let mut apply = Vec::new();
        for (id, fields) in &entries {
            match checker.check(fields, now) {
                Ok(Checked::Apply(s)) => apply.push(s),
                Ok(_) => {}
                Err(e) => refuse(inner, id, &e),
            }
        }
        inner
            .received
            .fetch_add(apply.len() as u64, Ordering::Relaxed);
        if !send(enforcer, apply).await {
            return Ok(());
        }
        from = last;
        cursor.set(&from);
    }
}

/// Sends what is queued as it is queued, and beats the heart.
async fn drain(
    w: &mut MultiplexedConnection,
    inner: &Arc<Inner>,
    config: &ConfigNow,
    enforcer: &mpsc::Sender<EnforcerMsg>,
) -> Result<(), String> {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut unique = Unique::new(&inner.cluster.node);
    loop {
        // Older than anything in memory: first.
        send_stored(w, inner).await?;
        loop {
            let chunk = Inner::take(&inner.outbox, CHUNK);
            if chunk.is_empty() {
                break;
            }
            if let Ok(mut f) = inner.inflight.lock() {
                f.clone_from(&chunk);
            }
            publish(w, &inner.cluster.node, &chunk).await?;
            if let Ok(mut f) = inner.inflight.lock() {
                f.clear();
            }
            inner.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        loop {
            let chunk = Inner::take(&inner.counting, CHUNK);
            if chunk.is_empty() {
                break;
            }
            let decided = match count(w, &config(), &chunk, &mut unique).await {
                Ok(d) => d,
                Err(e) => {
                    Inner::put_back(&inner.counting, chunk);
                    return Err(e);
                }
            };
            if !decided.is_empty() && enforcer.send(EnforcerMsg::Bans(decided)).await.is_err() {
                return Ok(());
            }
        }
        tokio::select! {
            () = inner.wake.notified() => {}
            _ = beat.tick() => heartbeat(w, inner).await?,
        }
    }
}

async fn publish(
    w: &mut MultiplexedConnection,
    node: &str,
    chunk: &[Shared],
) -> Result<(), String> {
    let now = millis(SystemTime::now());
    let keep_from = now.saturating_sub(KEEP.as_millis() as u64);
    let mut call = PUBLISH.prepare_invoke();
    call.key(STREAM)
        .key(ACTIVE)
        .arg(format!("{keep_from}-0"))
        .arg(now);
    for s in chunk {
        match s {
            Shared::Ban {
                jail,
                target,
                until,
                cause,
            } => call
                .arg(node)
                .arg("ban")
                .arg(&**jail)
                .arg(record::show(target))
                .arg(millis(*until))
                .arg(cause.to_string()),
            Shared::Unban { jail, target } => call
                .arg(node)
                .arg("unban")
                .arg(&**jail)
                .arg(record::show(target))
                .arg("")
                .arg(""),
        };
    }
    call.invoke_async::<i64>(w).await.map(drop).map_err(text)
}

/// Members of the farm-wide counts: unique across nodes and restarts.
struct Unique {
    prefix: String,
    seq: u64,
}

impl Unique {
    fn new(node: &str) -> Unique {
        Unique {
            prefix: format!("{node}:{}:", millis(SystemTime::now())),
            seq: 0,
        }
    }

    fn next(&mut self) -> String {
        self.seq += 1;
        format!("{}{}", self.prefix, self.seq)
    }
}

/// Counts a batch of failures farm-wide in one call; the bans it decided.
async fn count(
    w: &mut MultiplexedConnection,
    config: &Config,
    chunk: &[Failed],
    unique: &mut Unique,
) -> Result<Vec<BanOrder>, String> {
    let mut call = COUNT.prepare_invoke();
    call.arg(millis(SystemTime::now()));
    let mut keys = Vec::with_capacity(chunk.len());
    for (jail, addr, time) in chunk {
        let Some(j) = config.jails.iter().find(|j| j.name == *jail) else {
            continue;
        };
        call.key(format!("{FAILURES}{jail}:{addr}"))
            .arg(millis(*time))
            .arg(unique.next())
            .arg(j.findtime.as_millis() as u64)
            .arg(j.maxretry);
        keys.push((Arc::clone(jail), *addr, j.bantime));
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let out: Vec<i64> = call.invoke_async(w).await.map_err(text)?;
    let mut bans = Vec::new();
    for pair in out.chunks(2) {
        let &[i, n] = pair else { continue };
        let Some((jail, addr, bantime)) = usize::try_from(i - 1).ok().and_then(|i| keys.get(i))
        else {
            continue;
        };
        info!("farm: {addr} reached maxretry in jail {jail} across the farm ({n} failures)");
        bans.push(BanOrder {
            failures: u32::try_from(n).unwrap_or(u32::MAX),
            cause: Cause::Window(0),
            ..BanOrder::host(Arc::clone(jail), *addr, *bantime)
        });
    }
    Ok(bans)
}

/// Says this node is alive and reads who else is.
async fn heartbeat(w: &mut MultiplexedConnection, inner: &Inner) -> Result<(), String> {
    let now = millis(SystemTime::now());
    let _: Value = redis::cmd("HSET")
        .arg(NODES)
        .arg(&inner.cluster.node)
        .arg(now)
        .query_async(w)
        .await
        .map_err(text)?;
    let all: Value = redis::cmd("HGETALL")
        .arg(NODES)
        .query_async(w)
        .await
        .map_err(text)?;
    let mut nodes = Vec::new();
    let mut stale = Vec::new();
    for (name, at) in pairs(all) {
        let at = std::str::from_utf8(&at)
            .ok()
            .and_then(|a| a.parse::<u64>().ok());
        match (String::from_utf8(name), at) {
            (Ok(name), Some(at)) if now.saturating_sub(at) < FORGET_NODE.as_millis() as u64 => {
                nodes.push((name, at))
            }
            (Ok(name), _) => stale.push(name),
            (Err(_), _) => {}
        }
    }
    if !stale.is_empty() {
        let _: Value = redis::cmd("HDEL")
            .arg(NODES)
            .arg(&stale)
            .query_async(w)
            .await
            .map_err(text)?;
    }
    nodes.sort();
    if let Ok(mut slot) = inner.nodes.lock() {
        *slot = nodes;
    }
    Ok(())
}

fn refuse(inner: &Inner, entry: &str, e: &Refusal) {
    inner.refused.fetch_add(1, Ordering::Relaxed);
    warn!(entry, "farm: record refused: {e}");
}

/// False when the enforcer is gone (the daemon is stopping).
async fn send(enforcer: &mpsc::Sender<EnforcerMsg>, apply: Vec<Shared>) -> bool {
    apply.is_empty() || enforcer.send(EnforcerMsg::Farm(apply)).await.is_ok()
}

/// Whether stream id `a` comes after `b` (`MS-SEQ`).
fn later(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a) > parse(b)
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        Value::Int(n) => n.to_string().into_bytes(),
        Value::Double(d) => d.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// A flat array (RESP2) or a map (RESP3) as pairs.
fn pairs(v: Value) -> Fields {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|p| match p {
                [k, v] => Some((bytes(k), bytes(v))),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (bytes(k), bytes(v))).collect(),
        _ => Vec::new(),
    }
}

/// XREAD's answer for our one stream: each entry's id and fields.
fn stream_entries(reply: Value) -> Vec<(String, Fields)> {
    let streams = match reply {
        Value::Array(s) => s.into_iter().filter_map(|s| match s {
            Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
            _ => None,
        }),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for e in entries {
            let Value::Array(mut e) = e else { continue };
            if e.len() != 2 {
                continue;
            }
            let fields = e.pop().map(pairs).unwrap_or_default();
            let id = e.pop().map(|i| bytes(&i)).unwrap_or_default();
            out.push((String::from_utf8_lossy(&id).into_owned(), fields));
        }
    }
    out
}

/// The snapshot script's answer: the stream's last id and the running bans.
fn read_snapshot(v: Value) -> Result<(String, Active), String> {
    let Value::Array(mut parts) = v else {
        return Err("unexpected answer to the snapshot script".into());
    };
    if parts.len() != 2 {
        return Err("unexpected answer to the snapshot script".into());
    }
    let active = parts.pop().map(pairs).unwrap_or_default();
    let last = parts.pop().map(|l| bytes(&l)).unwrap_or_default();
    let active = active
        .into_iter()
        .filter_map(|(m, score)| {
            let score: f64 = std::str::from_utf8(&score).ok()?.parse().ok()?;
            Some((m, score as u64))
        })
        .collect();
    Ok((String::from_utf8_lossy(&last).into_owned(), active))
}

/// Where the last applied stream entry is kept: in memory, and in the
/// state store at most once a second (a restart replays at most that
/// second, and replaying is harmless).
struct Cursor {
    current: Mutex<Option<String>>,
    save: Option<watch::Sender<String>>,
}

impl Cursor {
    async fn open(dir: PathBuf) -> Cursor {
        let opened = tokio::task::spawn_blocking(move || {
            let store = Store::open(&dir)?;
            let at = store.cursor(CURSOR)?;
            Ok::<_, crate::state::StateError>((store, at))
        })
        .await;
        let (store, at) = match opened {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                warn!("farm: the stream position is kept in memory only: {e}");
                return Cursor {
                    current: Mutex::new(None),
                    save: None,
                };
            }
            Err(_) => {
                return Cursor {
                    current: Mutex::new(None),
                    save: None,
                }
            }
        };
        let (tx, mut rx) = watch::channel(at.clone().unwrap_or_default());
        tokio::spawn(async move {
            let mut store = store;
            while rx.changed().await.is_ok() {
                let at = rx.borrow_and_update().clone();
                let saved = tokio::task::spawn_blocking(move || {
                    let r = store.set_cursor(CURSOR, &at);
                    (store, r)
                })
                .await;
                match saved {
                    Ok((s, r)) => {
                        store = s;
                        if let Err(e) = r {
                            warn!("farm: cannot save the stream position: {e}");
                        }
                    }
                    Err(_) => return,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Cursor {
            current: Mutex::new(at),
            save: Some(tx),
        }
    }

    fn get(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn set(&self, at: &str) {
        if let Ok(mut c) = self.current.lock() {
            *c = Some(at.to_string());
        }
        if let Some(tx) = &self.save {
            tx.send_replace(at.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_ordered_by_time_then_sequence() {
        assert!(later("2-0", "1-5"));
        assert!(later("1-6", "1-5"));
        assert!(!later("1-5", "1-5"));
        assert!(!later("0-0", "1-0"));
    }

    #[test]
    fn a_tls_refusal_is_told_even_after_a_timeout() {
        let mut told = false;
        let refused = "invalid peer certificate: UnknownIssuer";
        assert_eq!(say("timed out", true, &mut told), Say::Unreachable);
        assert!(matches!(say(refused, false, &mut told), Say::Tls(c) if c.contains("tls_ca")));
        assert_eq!(say(refused, false, &mut told), Say::Again);
        assert_eq!(say("timed out", false, &mut told), Say::Again);
        assert_eq!(say(refused, false, &mut told), Say::Again);
        // Connected in between: a new run of failures, told again.
        assert!(matches!(say(refused, true, &mut told), Say::Tls(_)));
        assert_eq!(say(refused, false, &mut told), Say::Again);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for n in 1..20 {
            let d = backoff(n);
            assert!(
                d >= BACKOFF_MIN && d <= BACKOFF_MAX.mul_f64(1.5),
                "{n}: {d:?}"
            );
        }
    }

    #[test]
    fn xread_answers_are_read_without_trusting_them() {
        let entry = |id: &str, f: &[&str]| {
            Value::Array(vec![
                Value::BulkString(id.into()),
                Value::Array(
                    f.iter()
                        .map(|x| Value::BulkString(x.as_bytes().to_vec()))
                        .collect(),
                ),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(STREAM.into()),
            Value::Array(vec![
                entry("1-0", &["v", "1", "odd"]),
                Value::Int(3),
                entry("2-0", &["node", "mx2"]),
            ]),
        ])]);
        let got = stream_entries(reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1, vec![(b"v".to_vec(), b"1".to_vec())]);
        assert_eq!(got[1].1, vec![(b"node".to_vec(), b"mx2".to_vec())]);
        assert!(stream_entries(Value::Nil).is_empty());
    }
}
