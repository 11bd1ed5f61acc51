//! What happened, for the morning's `nftjail report` and for `nftjail
//! explain`: each failure (jail, address, account, the line, bounded) and
//! each ban (jail, target, the rule that decided it, how long), in the
//! `events` table of the state store.
//!
//! Recording must never cost a ban: failures reach the writer through a
//! gauge ([`EventGauge`]) that refuses them, and counts them as dropped,
//! once the writer is that far behind; the count is stored as an event of
//! its own, so a report says what it is missing. Ban events are written in
//! the transaction of the bans themselves, and are never dropped. The
//! table is kept to [`Keep`]: an age and a number of rows, oldest first.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{db_err, from_ms, ms, StateError, Store, StoredBan, DB_FILE};
use crate::message::{Cause, Failure};

/// The schema step that adds the table (one entry of `MIGRATIONS`).
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS events(
         time INTEGER NOT NULL,
         kind TEXT NOT NULL,
         jail TEXT NOT NULL,
         target TEXT NOT NULL,
         account TEXT,
         line TEXT,
         cause TEXT,
         bantime INTEGER,
         count INTEGER);
     CREATE INDEX IF NOT EXISTS events_time ON events(time);
     CREATE INDEX IF NOT EXISTS events_target ON events(target, time);
     CREATE INDEX IF NOT EXISTS events_bans ON events(time) WHERE kind = 'ban';
     CREATE INDEX IF NOT EXISTS events_account ON events(account, time) WHERE account IS NOT NULL;";

/// The kinds of row: `target` is an address for a failure, an address or
/// a network for a ban; a `dropped` row says how many failures (`count`)
/// were not recorded because the writer was behind.
const FAILURE: &str = "failure";
const BAN: &str = "ban";
const DROPPED: &str = "dropped";

/// Most event rows kept, whatever their age: a flood of a week must not
/// fill the disk the store lives on.
pub const MAX_ROWS: usize = 500_000;

/// Failures sent to the writer and not yet taken by it; past this, new
/// ones are dropped (and counted) instead of queued. The writer runs as a
/// background job and falls behind in a flood: that is when the queue must
/// stay short.
pub const MAX_WAITING: usize = 20_000;

/// How long and how many events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub age: Duration,
    pub rows: usize,
}

impl Keep {
    pub fn for_age(age: Duration) -> Keep {
        Keep {
            age,
            rows: MAX_ROWS,
        }
    }
}

/// Failures on their way to the writer, and those dropped on the way.
/// Shared by every sender and the writer.
#[derive(Debug, Default)]
pub struct EventGauge {
    waiting: AtomicUsize,
    dropped: AtomicU64,
}

impl EventGauge {
    /// Whether `n` more failures may be queued; if not they are counted
    /// as dropped.
    pub fn admit(&self, n: usize) -> bool {
        let before = self.waiting.fetch_add(n, Ordering::Relaxed);
        if before + n <= MAX_WAITING {
            return true;
        }
        self.waiting.fetch_sub(n, Ordering::Relaxed);
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        false
    }

    /// The writer took `n` queued failures.
    pub fn taken(&self, n: usize) {
        self.waiting.fetch_sub(n, Ordering::Relaxed);
    }

    /// Failures dropped since the last call, counted once.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Gives back a count that could not be stored, for the next try.
    pub fn dropped_again(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// Longest log line kept with a ban or a failure.
pub const MAX_LINE: usize = 1024;

/// Cuts a log line to [`MAX_LINE`] bytes on a character boundary.
pub fn bounded_line(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

impl Store {
    /// [`Store::put_bans`] for bans decided now (not adopted at a start):
    /// each is an event for the report too, in the same transaction.
    pub fn put_bans_recorded(&mut self, bans: &[(StoredBan, bool)]) -> Result<(), StateError> {
        self.put_bans_as(bans, true)
    }
}

/// How an event names its target: a host as the bare address (as its
/// failures do), a prefix in CIDR form.
pub fn target_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.trunc().to_string()
    }
}

/// A ban's event, inside the transaction that stores the ban.
pub(super) fn put_ban(tx: &rusqlite::Transaction<'_>, b: &StoredBan) -> rusqlite::Result<()> {
    let bantime = b.until.map(|u| ms(u).saturating_sub(ms(b.start)).max(0));
    tx.prepare_cached(
        "INSERT INTO events(time, kind, jail, target, line, cause, bantime)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        ms(b.start),
        BAN,
        &*b.jail,
        target_text(&b.net),
        b.line,
        b.cause.to_string(),
        bantime
    ])
    .map(drop)
}

impl Store {
    /// Records failures (each with its jail's name) and, if some were
    /// dropped on the way, how many, in one transaction.
    pub fn put_failures(
        &mut self,
        failures: &[(Arc<str>, Failure)],
        dropped: u64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let err = |e| db_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO events(time, kind, jail, target, account, line)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for (jail, f) in failures {
                put.execute(params![
                    ms(f.time),
                    FAILURE,
                    &**jail,
                    f.addr.to_string(),
                    f.account.as_ref().map(|a| a.as_str()),
                    f.line.as_deref().map(bounded_line),
                ])
                .map_err(err)?;
            }
            if dropped > 0 {
                tx.prepare_cached(
                    "INSERT INTO events(time, kind, jail, target, count) VALUES (?1, ?2, '', '', ?3)",
                )
                .map_err(err)?
                .execute(params![
                    ms(now),
                    DROPPED,
                    i64::try_from(dropped).unwrap_or(i64::MAX)
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Forgets events older than `keep.age`, then the oldest past
    /// `keep.rows`.
    pub fn purge_events(&mut self, now: SystemTime, keep: Keep) -> Result<usize, StateError> {
        let cutoff = ms(now.checked_sub(keep.age).unwrap_or(UNIX_EPOCH));
        let err = |e| db_err(&self.path, e);
        let mut gone = self
            .conn
            .execute("DELETE FROM events WHERE time < ?1", [cutoff])
            .map_err(err)?;
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(err)?;
        let over = rows - i64::try_from(keep.rows).unwrap_or(i64::MAX);
        if over > 0 {
            gone += self
                .conn
                .execute(
                    "DELETE FROM events WHERE rowid IN
                         (SELECT rowid FROM events ORDER BY time LIMIT ?1)",
                    [over],
                )
                .map_err(err)?;
        }
        Ok(gone)
    }

    /// Opens `dir`'s store to read only, for `report` and `explain`: it
    /// changes nothing, takes no lock a running daemon would wait on, and
    /// works whether the daemon runs or not.
    pub fn open_read_only(dir: &Path) -> Result<Store, StateError> {
        let path = dir.join(DB_FILE);
        let err = |e| db_err(&path, e);
        if !path.exists() {
            return Err(StateError::Dir {
                dir: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {DB_FILE} here: has the daemon run with this state directory?"),
                ),
            });
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let found: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        if found > super::SCHEMA_VERSION {
            return Err(StateError::Version { path, found });
        }
        Ok(Store {
            path,
            conn,
            degraded: None,
        })
    }

    /// Whether the store has the events table yet (a store last opened by
    /// an older nftjail has not).
    pub fn has_events(&self) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| db_err(&self.path, e))
    }
}

/// A failure as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureEvent {
    pub time: SystemTime,
    pub jail: String,
    pub addr: IpAddr,
    pub account: Option<String>,
    pub line: Option<String>,
}

/// A ban as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEvent {
    pub time: SystemTime,
    pub jail: String,
    pub target: IpNet,
    pub cause: Cause,
    /// None: permanent.
    pub bantime: Option<Duration>,
    pub line: Option<String>,
}

/// One event as [`Store::scan`] hands it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    pub time: SystemTime,
    pub kind: Kind,
    pub jail: &'a str,
    /// An address (a failure), an address or a network (a ban).
    pub target: &'a str,
    pub account: Option<&'a str>,
    /// Of a `Dropped` event: how many failures were not recorded.
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Ban,
    Dropped,
}

/// The read side, for `report` and `explain`. Times are inclusive spans.
impl Store {
    fn span_query<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<Option<T>>,
    ) -> Result<Vec<T>, StateError> {
        let err = |e| db_err(&self.path, e);
        let mut stmt = self.conn.prepare(sql).map_err(err)?;
        let mut rows = stmt.query(args).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            if let Some(v) = row(r).map_err(err)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Every event between `from` and `to`, in the table's order, handed
    /// to `each` as borrowed text: one pass for the whole report. The
    /// table is read from end to end rather than through the time index,
    /// since a report's span is most of it (kept to [`MAX_ROWS`]), and
    /// reading in order is many times faster than a lookup per row.
    pub fn scan(
        &self,
        from: SystemTime,
        to: SystemTime,
        mut each: impl FnMut(&Seen<'_>),
    ) -> Result<(), StateError> {
        let err = |e| db_err(&self.path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time, kind, jail, target, account, count FROM events
                 WHERE +time BETWEEN ?1 AND ?2",
            )
            .map_err(err)?;
        let mut rows = stmt.query([ms(from), ms(to)]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let text = |i| r.get_ref(i).ok().and_then(|v| v.as_str().ok());
            let kind = match text(1) {
                Some(FAILURE) => Kind::Failure,
                Some(BAN) => Kind::Ban,
                Some(DROPPED) => Kind::Dropped,
                _ => continue,
            };
            each(&Seen {
                time: from_ms(r.get(0).map_err(err)?),
                kind,
                jail: text(2).unwrap_or_default(),
                target: text(3).unwrap_or_default(),
                account: text(4),
                count: r.get::<_, Option<i64>>(5).map_err(err)?.map_or(0, count),
            });
        }
        Ok(())
    }

    /// Bans decided between `from` and `to`, oldest first; of one jail,
    /// or of every jail when `jail` is None.
    pub fn ban_events(
        &self,
        jail: Option<&str>,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<BanEvent>, StateError> {
        self.span_query(
            "SELECT time, jail, target, cause, bantime, line FROM events INDEXED BY events_bans
             WHERE time BETWEEN ?1 AND ?2 AND kind = 'ban' AND (?3 IS NULL OR jail = ?3)
             ORDER BY time",
            params![ms(from), ms(to), jail],
            |r| {
                let Ok(target) = parse_target(&r.get::<_, String>(2)?) else {
                    return Ok(None);
                };
                let cause: Option<String> = r.get(3)?;
                Ok(Some(BanEvent {
                    time: from_ms(r.get(0)?),
                    jail: r.get(1)?,
                    target,
                    cause: cause.and_then(|c| c.parse().ok()).unwrap_or_default(),
                    bantime: r
                        .get::<_, Option<i64>>(4)?
                        .map(|v| Duration::from_millis(count(v))),
                    line: r.get(5)?,
                }))
            },
        )
    }

    /// Failures in `jail` from addresses inside `net` between `from` and
    /// `to`, oldest first. A host is looked up by its index, and so is an
    /// IPv4 prefix of whole octets (its addresses share their text up to
    /// a dot); another prefix reads the span in table order (see
    /// [`Store::scan`]) and keeps the failures inside.
    pub fn failures_in(
        &self,
        jail: &str,
        net: &IpNet,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<FailureEvent>, StateError> {
        let host = net.prefix_len() == net.max_prefix_len();
        let octets = match net {
            IpNet::V4(n) if !host && n.prefix_len() % 8 == 0 && n.prefix_len() > 0 => {
                let text = n.network().to_string();
                let keep = usize::from(n.prefix_len() / 8);
                let head: Vec<&str> = text.split('.').take(keep).collect();
                Some(format!("{}.", head.join(".")))
            }
            _ => None,
        };
        let (sql, key) = if host {
            (
                "SELECT time, target, account, line FROM events INDEXED BY events_target
                 WHERE target = ?4 AND time BETWEEN ?1 AND ?2 AND kind = 'failure' AND jail = ?3
                 ORDER BY time",
                Some(net.addr().to_string()),
            )
        } else if let Some(head) = octets {
            // '/' sorts right after '.': the range of texts starting `head`.
            (
                "SELECT time, target, account, line FROM events INDEXED BY events_target
                 WHERE target >= ?4 AND target < substr(?4, 1, length(?4) - 1) || '/'
                     AND time BETWEEN ?1 AND ?2 AND kind = 'failure' AND jail = ?3
                 ORDER BY time",
                Some(head),
            )
        } else {
            (
                "SELECT time, target, account, line FROM events
                 WHERE +time BETWEEN ?1 AND ?2 AND kind = 'failure' AND jail = ?3 AND ?4 IS NULL",
                None,
            )
        };
        let mut found = self.span_query(sql, params![ms(from), ms(to), jail, key], |r| {
            let addr: IpAddr = match r.get::<_, String>(1)?.parse() {
                Ok(a) if net.contains(&a) => a,
                _ => return Ok(None),
            };
            Ok(Some(FailureEvent {
                time: from_ms(r.get(0)?),
                jail: jail.to_string(),
                addr,
                account: r.get(2)?,
                line: r.get(3)?,
            }))
        })?;
        // In table order, which is nearly time order: sorted here, after
        // the filter, rather than by SQLite before it.
        found.sort_by_key(|f| f.time);
        Ok(found)
    }
}

impl Store {
    /// The distinct addresses that failed against `account` in `jail`
    /// between `from` and `to`.
    pub fn account_failures(
        &self,
        jail: &str,
        account: &str,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<IpAddr>, StateError> {
        self.span_query(
            "SELECT DISTINCT target FROM events
             WHERE account = ?4 AND time BETWEEN ?1 AND ?2 AND kind = 'failure' AND jail = ?3",
            params![ms(from), ms(to), jail, account],
            |r| Ok(r.get::<_, String>(0)?.parse().ok()),
        )
    }
}

/// A target as [`target_text`] wrote it.
pub fn parse_target(s: &str) -> Result<IpNet, ipnet::AddrParseError> {
    match s.parse::<IpAddr>() {
        Ok(a) => Ok(IpNet::from(a)),
        Err(_) => s.parse(),
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Account, SharedLine};

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nftjail-events-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn failure(addr: &str, secs: u64, account: Option<&str>) -> (Arc<str>, Failure) {
        (
            Arc::from("mail"),
            Failure {
                jail: 0,
                addr: addr.parse().expect("addr"),
                time: UNIX_EPOCH + Duration::from_secs(secs),
                line: Some(SharedLine::new(&format!("fail from {addr}"))),
                read: None,
                account: account.and_then(Account::new),
            },
        )
    }

    #[test]
    fn failures_bans_and_drops_read_back_over_a_span() {
        let dir = tempdir("span");
        let mut s = Store::open(&dir).expect("open");
        let t = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        s.put_failures(
            &[
                failure("192.0.2.1", 100, Some("alice")),
                failure("192.0.2.1", 101, Some("alice")),
                failure("192.0.2.2", 102, Some("alice")),
                failure("198.51.100.9", 50, None),
            ],
            7,
            t(103),
        )
        .expect("failures");
        let ban = StoredBan {
            jail: "mail".into(),
            net: "192.0.2.0/24".parse().expect("net"),
            start: t(104),
            until: Some(t(104 + 3600)),
            failures: 3,
            line: None,
            cause: Cause::Prefix { addrs: 2 },
        };
        s.put_bans_recorded(&[(ban, false)]).expect("ban");
        drop(s);

        let r = Store::open_read_only(&dir).expect("read only");
        assert!(r.has_events().expect("table"));
        let (from, to) = (t(60), t(200));
        let mut seen = Vec::new();
        r.scan(from, to, |e| {
            seen.push((
                e.kind,
                e.target.to_string(),
                e.account.map(str::to_string),
                e.count,
            ))
        })
        .expect("scan");
        let kinds = |k| seen.iter().filter(|e| e.0 == k).count();
        assert_eq!(
            (kinds(Kind::Failure), kinds(Kind::Ban), kinds(Kind::Dropped)),
            (3, 1, 1),
            "the failure before the span is left out: {seen:?}"
        );
        assert!(seen.contains(&(Kind::Dropped, String::new(), None, 7)));
        assert!(seen.contains(&(Kind::Ban, "192.0.2.0/24".into(), None, 0)));
        assert!(seen.contains(&(Kind::Failure, "192.0.2.2".into(), Some("alice".into()), 0)));
        let accounts = r
            .account_failures("mail", "alice", from, to)
            .expect("accounts");
        assert_eq!(accounts.len(), 2);
        let bans = r.ban_events(Some("mail"), from, to).expect("bans");
        assert_eq!(bans[0].cause, Cause::Prefix { addrs: 2 });
        assert_eq!(bans[0].bantime, Some(Duration::from_secs(3600)));
        let net: IpNet = "192.0.2.0/24".parse().expect("net");
        assert_eq!(r.failures_in("mail", &net, from, to).expect("in").len(), 3);
        let host: IpNet = "192.0.2.2/32".parse().expect("net");
        let one = r.failures_in("mail", &host, from, to).expect("host");
        assert_eq!(one[0].line.as_deref(), Some("fail from 192.0.2.2"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn events_are_kept_by_age_and_by_count() {
        let dir = tempdir("keep");
        let mut s = Store::open(&dir).expect("open");
        let rows: Vec<_> = (0..10)
            .map(|i| failure("192.0.2.1", 1000 + i, None))
            .collect();
        s.put_failures(&rows, 0, UNIX_EPOCH).expect("put");
        let now = UNIX_EPOCH + Duration::from_secs(1005);
        let keep = Keep {
            age: Duration::from_secs(3),
            rows: 2,
        };
        assert_eq!(s.purge_events(now, keep).expect("purge"), 8);
        let mut left = Vec::new();
        s.scan(UNIX_EPOCH, now + Duration::from_secs(10), |e| {
            left.push(e.time)
        })
        .expect("left");
        let t = |secs| now + Duration::from_secs(secs);
        assert_eq!(left, vec![t(3), t(4)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_gauge_drops_past_its_bound_and_counts_once() {
        let g = EventGauge::default();
        assert!(g.admit(MAX_WAITING));
        assert!(!g.admit(1));
        g.taken(10);
        assert!(g.admit(10));
        assert_eq!(g.take_dropped(), 1);
        assert_eq!(g.take_dropped(), 0);
    }
}
