//! The state store under `/var/lib/nftjail/`: what must survive a restart,
//! a reboot or a `kill -9`.
//!
//! SQLite (rusqlite, bundled, WAL): one file, atomic transactions, readable
//! with the `sqlite3` shell by an admin at 3 a.m., and a committed
//! transaction survives the process being killed at any instant (the WAL is
//! in the page cache; `synchronous = NORMAL` only risks the last commits on a
//! power loss, which empties the kernel's sets as well).
//!
//! Ordering invariant (see `daemon::enforcing`): a ban goes to the kernel
//! first and to the store right after, from the enforcer thread through
//! [`writer`]. At every instant a decided ban is in the kernel, the store or
//! both; a restart takes the union (kernel bans missing from the store are
//! adopted, stored bans missing from the kernel are restored with their
//! remaining time), so a `kill -9` loses none. An unban goes the same way, so
//! one cut by a kill in its microsecond window comes back: fail closed.

mod cursor;
pub mod events;
mod jails;
pub mod outbox;
pub mod writer;

pub use events::{bounded_line, MAX_LINE};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension};

/// The database file inside the state directory.
pub const DB_FILE: &str = "nftjail.db";
/// What each schema version after the first adds, in order. An older store
/// is brought up to date in place when opened, never moved aside: it holds
/// the bans. A change is always an addition an older row can take.
const MIGRATIONS: &[&str] = &[
    // 2: which rule decided each ban (NULL in rows from before: the jail's window).
    "ALTER TABLE bans ADD COLUMN cause TEXT;",
    // 3: failures and bans as they happened, for `report` and `explain`.
    events::MIGRATION,
    // 4: the rules each jail had in the kernel, to keep a removed jail's bans across a restart.
    jails::TABLE,
    // 5: what the farm must still hear of, kept through a restart while Redis is down.
    outbox::TABLE,
];
/// The version a store opened by this nftjail has.
const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database {}: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state database {} has schema version {found}, this nftjail knows {SCHEMA_VERSION}; move it away to start afresh",
        path.display()
    )]
    Version { path: PathBuf, found: i64 },
    #[error("state database {} is damaged: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
}

/// One active ban as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBan {
    pub jail: std::sync::Arc<str>,
    /// An address as /32 or /128, or a prefix.
    pub net: IpNet,
    pub start: SystemTime,
    /// None: permanent.
    pub until: Option<SystemTime>,
    /// Failures that led to it (0 for a manual or adopted ban).
    pub failures: u32,
    /// The log line that decided it, if known (bounded in length).
    pub line: Option<String>,
    /// Which rule decided it.
    pub cause: Cause,
}

impl StoredBan {
    /// Time left at `now` (None: permanent; zero: expired).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.until
            .map(|u| u.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// One past ban of an address, for bantime increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastBan {
    pub time: SystemTime,
}

use crate::message::{Cause, Checkpoint, ReadAt};
use crate::source::file::Position;

pub struct Store {
    path: PathBuf,
    conn: Connection,
    /// Set when this is the in-memory stand-in: why the file is not used.
    degraded: Option<String>,
}

pub fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn from_ms(v: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

impl Store {
    /// Opens (creating) `dir/nftjail.db`. The directory is created mode 0700:
    /// the store holds attackers' log lines and nothing anyone else needs.
    ///
    /// A damaged database (not one at all, or one `PRAGMA quick_check`
    /// finds broken below a readable header) is moved aside and a new one
    /// started: the kernel still holds the running bans and they are
    /// adopted at start, so only history and positions are lost, never the
    /// daemon. The damaged file is kept for a post-mortem.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::Dir {
                dir: dir.to_path_buf(),
                source,
            })?;
        let path = dir.join(DB_FILE);
        let damage = match Store::connect(&path).and_then(Store::checked) {
            Err(StateError::Db { source, .. }) if is_corrupt(&source) => source.to_string(),
            Err(StateError::Damaged { detail, .. }) => detail,
            other => return other,
        };
        let aside = path.with_extension(format!("db.corrupt-{}", ms(SystemTime::now()) / 1000));
        tracing::error!(
            file = %path.display(),
            moved_to = %aside.display(),
            "state database damaged ({damage}); moved aside, starting a new one: \
             history and read positions are lost, running bans are taken from the kernel"
        );
        std::fs::rename(&path, &aside).map_err(|source| StateError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        for ext in ["db-wal", "db-shm"] {
            let _ = std::fs::remove_file(path.with_extension(ext));
        }
        Store::connect(&path)
    }

    /// A store in memory standing in for `path` when that cannot be opened
    /// or read: the daemon keeps banning (the kernel holds the bans and a
    /// restart adopts them) and keeps its history for this run only.
    /// `cause` says why, for the reminders the writer logs.
    ///
    /// Whatever of the file can still be read (a read-only disk, not a
    /// damaged file) is copied in first, so stored bans are still put back
    /// after a reboot and repeat offenders still counted.
    pub fn in_memory(path: &Path, cause: String) -> Result<Store, StateError> {
        let conn = Connection::open_in_memory().map_err(|e| db_err(path, e))?;
        let mut store = Store::init(path.to_path_buf(), conn)?;
        store.degraded = Some(cause);
        if path.exists() {
            match store.copy_from(path) {
                Ok(()) => tracing::info!(
                    file = %path.display(),
                    "state read from the file into memory"
                ),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    "state file not readable either, starting empty: {e}"
                ),
            }
        }
        Ok(store)
    }

    /// Copies every table of the file at `path` in, reading it as
    /// immutable: no lock, no journal, nothing written beside it (the disk
    /// may refuse that too). All or nothing.
    fn copy_from(&mut self, path: &Path) -> Result<(), StateError> {
        let escaped = path
            .display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        let uri = format!("file:{escaped}?mode=ro&immutable=1");
        self.conn
            .execute("ATTACH DATABASE ?1 AS old", [uri])
            .map_err(|e| db_err(path, e))?;
        let copied = self.copy_attached(path);
        let detached = self
            .conn
            .execute_batch("DETACH DATABASE old")
            .map_err(|e| db_err(path, e));
        copied.and(detached)
    }

    fn copy_attached(&mut self, path: &Path) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| db_err(path, e))?;
        let found: i64 = tx
            .query_row("SELECT value FROM old.meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .map_err(|e| db_err(path, e))?;
        if !(1..=SCHEMA_VERSION).contains(&found) {
            return Err(StateError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
        // Only the columns every version has, then those the file has.
        tx.execute_batch(
            "INSERT INTO bans(jail, net, start, until, failures, line)
                 SELECT jail, net, start, until, failures, line FROM old.bans;",
        )
        .map_err(|e| db_err(path, e))?;
        if found >= 2 {
            tx.execute_batch(
                "UPDATE bans SET cause = (SELECT o.cause FROM old.bans o
                     WHERE o.jail = bans.jail AND o.net = bans.net);",
            )
            .map_err(|e| db_err(path, e))?;
        }
        jails::copy_attached(&tx).map_err(|e| db_err(path, e))?;
        tx.execute_batch(
            "INSERT INTO history SELECT addr, jail, time FROM old.history;
             INSERT INTO positions SELECT source, dev, ino, head, offset FROM old.positions;
             INSERT INTO failures SELECT jail, addr, time FROM old.failures;
             INSERT INTO cursors SELECT source, cursor FROM old.cursors;",
        )
        .map_err(|e| db_err(path, e))?;
        tx.commit().map_err(|e| db_err(path, e))
    }

    /// Why this store only lives in memory (None: it is the file).
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// `PRAGMA quick_check`: SQLite opens a file whose header is intact
    /// however broken the pages below it are, and the damage would only
    /// show at the first read or write of a running daemon.
    fn checked(self) -> Result<Store, StateError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| db_err(&self.path, e))?;
        if verdict == "ok" {
            Ok(self)
        } else {
            Err(StateError::Damaged {
                path: self.path.clone(),
                detail: verdict,
            })
        }
    }

    fn connect(path: &Path) -> Result<Store, StateError> {
        let path = path.to_path_buf();
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        Store::init(path, conn)
    }

    /// Creates the tables a new store lacks and checks the schema version.
    fn init(path: PathBuf, conn: Connection) -> Result<Store, StateError> {
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS bans(
                 jail TEXT NOT NULL,
                 net TEXT NOT NULL,
                 start INTEGER NOT NULL,
                 until INTEGER,
                 failures INTEGER NOT NULL DEFAULT 0,
                 line TEXT,
                 PRIMARY KEY (jail, net)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS history(
                 addr TEXT NOT NULL,
                 jail TEXT NOT NULL,
                 time INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS history_addr ON history(addr, time);
             CREATE INDEX IF NOT EXISTS history_time ON history(time);
             CREATE TABLE IF NOT EXISTS positions(
                 source TEXT PRIMARY KEY,
                 dev INTEGER NOT NULL,
                 ino INTEGER NOT NULL,
                 head INTEGER NOT NULL,
                 offset INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS failures(
                 jail TEXT NOT NULL,
                 addr TEXT NOT NULL,
                 time INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS failures_key ON failures(jail, addr);
             CREATE TABLE IF NOT EXISTS cursors(
                 source TEXT PRIMARY KEY,
                 cursor TEXT NOT NULL) WITHOUT ROWID;",
        )
        .map_err(db)?;
        let found: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        let mut version = match found {
            None => {
                conn.execute("INSERT INTO meta(key, value) VALUES ('schema', 1)", [])
                    .map_err(db)?;
                1
            }
            Some(v) if (1..=SCHEMA_VERSION).contains(&v) => v,
            Some(v) => return Err(StateError::Version { path, found: v }),
        };
        while version < SCHEMA_VERSION {
            let step = MIGRATIONS
                .get(usize::try_from(version - 1).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or_default();
            let tx = conn.unchecked_transaction().map_err(db)?;
            tx.execute_batch(step).map_err(db)?;
            version += 1;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'schema'", [version])
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(Store {
            path,
            conn,
            degraded: None,
        })
    }

    /// Makes the connection refuse writes as a read-only or full disk does,
    /// so the writer's retries can be tested without either.
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self, refuse: bool) {
        self.conn
            .pragma_update(None, "query_only", refuse)
            .expect("query_only");
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored ban, expired ones included (the caller decides).
    pub fn bans(&self) -> Result<Vec<StoredBan>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT jail, net, start, until, failures, line, cause FROM bans")
            .map_err(|e| db_err(&self.path, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .map_err(|e| db_err(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (jail, net, start, until, failures, line, cause) =
                row.map_err(|e| db_err(&self.path, e))?;
            // A row someone edited by hand into nonsense is skipped, not fatal.
            let Ok(net) = net.parse::<IpNet>() else {
                tracing::warn!(jail, net, "state: unreadable ban skipped");
                continue;
            };
            out.push(StoredBan {
                jail: jail.into(),
                net,
                start: from_ms(start),
                until: until.map(from_ms),
                failures: u32::try_from(failures).unwrap_or(0),
                line,
                // Rows from before causes were kept, or edited by hand.
                cause: cause.and_then(|c| c.parse().ok()).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Records bans (insert or replace) and, for `offence` ones, a history
    /// entry each, in one transaction.
    pub fn put_bans(&mut self, bans: &[(StoredBan, bool)]) -> Result<(), StateError> {
        self.put_bans_as(bans, false)
    }

    pub(super) fn put_bans_as(
        &mut self,
        bans: &[(StoredBan, bool)],
        record: bool,
    ) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| StateError::Db {
            path: self.path.clone(),
            source: e,
        })?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO bans(jail, net, start, until, failures, line, cause)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| db_err(&self.path, e))?;
            let mut hist = tx
                .prepare_cached("INSERT INTO history(addr, jail, time) VALUES (?1, ?2, ?3)")
                .map_err(|e| db_err(&self.path, e))?;
            for (b, offence) in bans {
                put.execute(params![
                    &*b.jail,
                    b.net.to_string(),
                    ms(b.start),
                    b.until.map(ms),
                    b.failures,
                    b.line,
                    b.cause.to_string()
                ])
                .map_err(|e| db_err(&self.path, e))?;
                if *offence {
                    hist.execute(params![b.net.addr().to_string(), &*b.jail, ms(b.start)])
                        .map_err(|e| db_err(&self.path, e))?;
                }
                if record && b.cause != Cause::Blocklist {
                    events::put_ban(&tx, b).map_err(|e| db_err(&self.path, e))?;
                }
            }
        }
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// Forgets bans; `None` as the net means every ban of that jail.
    pub fn remove_bans(&mut self, keys: &[(String, Option<IpNet>)]) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| db_err(&self.path, e))?;
        {
            let mut one = tx
                .prepare_cached("DELETE FROM bans WHERE jail = ?1 AND net = ?2")
                .map_err(|e| db_err(&self.path, e))?;
            let mut all = tx
                .prepare_cached("DELETE FROM bans WHERE jail = ?1")
                .map_err(|e| db_err(&self.path, e))?;
            for (jail, net) in keys {
                match net {
                    Some(n) => one.execute(params![jail, n.to_string()]),
                    None => all.execute(params![jail]),
                }
                .map_err(|e| db_err(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// Drops expired bans and history older than `purge_age`.
    pub fn purge(&mut self, now: SystemTime, purge_age: Duration) -> Result<(), StateError> {
        let cutoff = ms(now.checked_sub(purge_age).unwrap_or(UNIX_EPOCH));
        self.conn
            .execute(
                "DELETE FROM bans WHERE until IS NOT NULL AND until <= ?1",
                [ms(now)],
            )
            .map_err(|e| db_err(&self.path, e))?;
        self.conn
            .execute("DELETE FROM history WHERE time < ?1", [cutoff])
            .map_err(|e| db_err(&self.path, e))?;
        Ok(())
    }

    /// Past bans within `since`, per address and jail, oldest first.
    pub fn history(&self, since: SystemTime) -> Result<Vec<(IpAddr, String, PastBan)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT addr, jail, time FROM history WHERE time >= ?1 ORDER BY time")
            .map_err(|e| db_err(&self.path, e))?;
        let rows = stmt
            .query_map([ms(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| db_err(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (addr, jail, time) = row.map_err(|e| db_err(&self.path, e))?;
            if let Ok(addr) = addr.parse() {
                out.push((
                    addr,
                    jail,
                    PastBan {
                        time: from_ms(time),
                    },
                ));
            }
        }
        Ok(out)
    }

    pub fn positions(&self) -> Result<Vec<(String, Position)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, dev, ino, head, offset FROM positions")
            .map_err(|e| db_err(&self.path, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Position {
                        dev: r.get::<_, i64>(1)? as u64,
                        ino: r.get::<_, i64>(2)? as u64,
                        head: r.get::<_, i64>(3)? as u64,
                        offset: r.get::<_, i64>(4)? as u64,
                    },
                ))
            })
            .map_err(|e| db_err(&self.path, e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_err(&self.path, e))
    }

    /// Saves read positions in one transaction. Stored as SQLite's signed
    /// integers, bit for bit.
    pub fn save_positions(&mut self, positions: &[(String, Position)]) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| db_err(&self.path, e))?;
        for (source, p) in positions {
            put_position(&tx, source, p).map_err(|e| db_err(&self.path, e))?;
        }
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// Read positions and the failure counts that include every line
    /// before them, in one transaction: after a crash the next start reads
    /// again exactly what the stored counts lack.
    pub fn save_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| db_err(&self.path, e))?;
        write_checkpoint(&tx, cp).map_err(|e| db_err(&self.path, e))?;
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// The failures the last run counted when it last stored its counts.
    /// They stay stored until the first checkpoint of this run replaces
    /// them: a crash before that finds them again.
    pub fn failures(&self) -> Result<Vec<(String, IpAddr, SystemTime)>, StateError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT jail, addr, time FROM failures ORDER BY time")
            .map_err(|e| db_err(&self.path, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| db_err(&self.path, e))?;
        for row in rows {
            let (jail, addr, time) = row.map_err(|e| db_err(&self.path, e))?;
            if let Ok(addr) = addr.parse() {
                out.push((jail, addr, from_ms(time)));
            }
        }
        Ok(out)
    }

    pub fn cursor(&self, source: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT cursor FROM cursors WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(&self.path, e))
    }
}

fn put_position(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    p: &Position,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO positions(source, dev, ino, head, offset)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        source,
        p.dev as i64,
        p.ino as i64,
        p.head as i64,
        p.offset as i64
    ])
    .map(drop)
}

fn write_checkpoint(tx: &rusqlite::Transaction<'_>, cp: &Checkpoint) -> rusqlite::Result<()> {
    for mark in &cp.marks {
        match &mark.at {
            ReadAt::File(p) => put_position(tx, &mark.source, p)?,
            ReadAt::Journal(cursor) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO cursors(source, cursor) VALUES (?1, ?2)",
                )?
                .execute(params![&*mark.source, cursor])?;
            }
        }
    }
    if cp.rewrite {
        tx.execute("DELETE FROM failures", [])?;
    }
    let mut forget = tx.prepare_cached("DELETE FROM failures WHERE jail = ?1 AND addr = ?2")?;
    let mut put =
        tx.prepare_cached("INSERT INTO failures(jail, addr, time) VALUES (?1, ?2, ?3)")?;
    for (jail, addr, times) in cp.entries() {
        let addr = addr.to_string();
        if !cp.rewrite {
            forget.execute(params![&**jail, addr])?;
        }
        for t in times {
            put.execute(params![
                &**jail,
                addr,
                i64::try_from(*t).unwrap_or(i64::MAX)
            ])?;
        }
    }
    Ok(())
}

/// The journal reader loads its cursor from here, through its own
/// connection to the same database; the cursor is saved by the state
/// writer, in the checkpoints that hold the counts up to it.
impl crate::source::journal::CursorStore for Store {
    fn load(&self, key: &str) -> Result<Option<String>, crate::source::journal::JournalError> {
        self.cursor(key)
            .map_err(|e| crate::source::journal::JournalError::Cursor(Box::new(e)))
    }
}

/// Not a database at all, or a damaged one (as opposed to a busy or
/// unreadable file, which must stop the start: moving it would lose it).
fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

fn db_err(path: &Path, source: rusqlite::Error) -> StateError {
    StateError::Db {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(jail: &str, net: &str, secs: u64) -> StoredBan {
        let now = SystemTime::now();
        StoredBan {
            jail: jail.into(),
            net: net.parse().expect("net"),
            start: now,
            until: Some(now + Duration::from_secs(secs)),
            failures: 3,
            line: Some("x".into()),
            cause: Cause::Prefix { addrs: 9 },
        }
    }

    #[test]
    fn a_store_of_the_first_schema_is_brought_up_to_date_with_its_bans() {
        let dir = tempdir();
        std::fs::create_dir_all(&dir).expect("dir");
        let conn = Connection::open(dir.join(DB_FILE)).expect("create");
        conn.execute_batch(
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('schema', 1);
             CREATE TABLE bans(jail TEXT NOT NULL, net TEXT NOT NULL, start INTEGER NOT NULL,
                 until INTEGER, failures INTEGER NOT NULL DEFAULT 0, line TEXT,
                 PRIMARY KEY (jail, net)) WITHOUT ROWID;
             INSERT INTO bans VALUES ('sshd', '192.0.2.1/32', 1, NULL, 3, 'l');",
        )
        .expect("old schema");
        drop(conn);
        let mut s = Store::open(&dir).expect("open");
        let got = s.bans().expect("bans");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].cause, Cause::Window(0));
        assert_eq!(got[0].until, None);
        let b = ban("sshd", "192.0.2.2/32", 60);
        s.put_bans(&[(b.clone(), false)]).expect("put");
        drop(s);
        let s = Store::open(&dir).expect("reopen");
        let again = s.bans().expect("bans");
        let read = again.iter().find(|x| x.net == b.net).expect("the new ban");
        assert_eq!(
            read.cause, b.cause,
            "the new column is written and read back"
        );
        let v: i64 = s
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn bans_round_trip_and_expire() {
        let dir = tempdir();
        let mut s = Store::open(&dir).expect("open");
        s.put_bans(&[
            (ban("sshd", "192.0.2.1/32", 3600), true),
            (ban("sshd", "2001:db8::/64", 3600), false),
            (ban("mail", "198.51.100.7/32", 0), true),
        ])
        .expect("put");
        let mut got = s.bans().expect("bans");
        got.sort_by_key(|b| b.net);
        assert_eq!(got.len(), 3);
        s.purge(
            SystemTime::now() + Duration::from_millis(5),
            Duration::from_secs(86400),
        )
        .expect("purge");
        let left: Vec<String> = s
            .bans()
            .expect("bans")
            .iter()
            .map(|b| b.net.to_string())
            .collect();
        assert!(!left.contains(&"198.51.100.7/32".to_string()), "{left:?}");
        assert_eq!(left.len(), 2);
        assert_eq!(s.history(UNIX_EPOCH).expect("history").len(), 2);
        s.retain_jails(&["mail".into()]).expect("retain");
        assert!(s.bans().expect("bans").is_empty());
        drop(s);
        // Reopened: the history is still there.
        let s = Store::open(&dir).expect("reopen");
        assert_eq!(s.history(UNIX_EPOCH).expect("history").len(), 2);
    }

    #[test]
    fn positions_keep_full_u64() {
        let dir = tempdir();
        let mut s = Store::open(&dir).expect("open");
        let p = Position {
            dev: u64::MAX,
            ino: 1 << 63,
            head: 0xdead_beef_dead_beef,
            offset: 12345,
        };
        s.save_positions(&[("/var/log/x".into(), p)]).expect("save");
        assert_eq!(s.positions().expect("load"), vec![("/var/log/x".into(), p)]);
        let journal = crate::message::ReadMark {
            source: "journal".into(),
            at: ReadAt::Journal("s=abc".into()),
        };
        s.save_checkpoint(&Checkpoint::new(false, vec![journal]))
            .expect("cursor");
        assert_eq!(
            s.cursor("journal").expect("cursor").as_deref(),
            Some("s=abc")
        );
    }

    /// A checkpoint changes only the addresses it names, a rewrite
    /// replaces them all, and the positions and cursors come with them.
    #[test]
    fn checkpoints_change_counts_and_positions_together() {
        use crate::message::ReadMark;
        let dir = tempdir();
        let mut s = Store::open(&dir).expect("open");
        let t = |secs: u64| UNIX_EPOCH + Duration::from_secs(1_000_000 + secs);
        let a: IpAddr = "203.0.113.1".parse().expect("addr");
        let b: IpAddr = "203.0.113.2".parse().expect("addr");
        let file = |offset| ReadMark {
            source: "/var/log/x".into(),
            at: ReadAt::File(Position {
                offset,
                ..Position::default()
            }),
        };
        let counts = |rewrite, marks, entries: &[(IpAddr, &[SystemTime])]| {
            let mut cp = Checkpoint::new(rewrite, marks);
            let j = cp.jail(&"j".into());
            for (addr, times) in entries {
                let times: Vec<u64> = times.iter().map(|t| ms(*t) as u64).collect();
                cp.count(j, *addr, &times);
            }
            cp
        };
        s.save_checkpoint(&counts(
            false,
            vec![file(10)],
            &[(a, &[t(1), t(2)]), (b, &[t(3)])],
        ))
        .expect("first");
        let journal = ReadMark {
            source: "journal".into(),
            at: ReadAt::Journal("s=1".into()),
        };
        s.save_checkpoint(&counts(false, vec![file(20), journal], &[(a, &[])]))
            .expect("second");
        let ms_of = |f: Vec<(String, IpAddr, SystemTime)>| {
            f.into_iter()
                .map(|(j, a, t)| (j, a.to_string(), ms(t)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ms_of(s.failures().expect("failures")),
            vec![("j".to_string(), b.to_string(), ms(t(3)))],
            "a's failures are gone, b's stay"
        );
        assert_eq!(s.positions().expect("positions")[0].1.offset, 20);
        assert_eq!(s.cursor("journal").expect("cursor").as_deref(), Some("s=1"));

        s.save_checkpoint(&counts(true, Vec::new(), &[(a, &[t(4)])]))
            .expect("rewrite");
        assert_eq!(
            ms_of(s.failures().expect("failures")),
            vec![("j".to_string(), a.to_string(), ms(t(4)))]
        );
    }

    #[test]
    fn a_damaged_database_is_moved_aside_and_a_new_one_started() {
        let dir = tempdir();
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(DB_FILE), vec![0x5a; 8192]).expect("junk");
        let mut s = Store::open(&dir).expect("a new store despite the junk");
        s.put_bans(&[(ban("sshd", "192.0.2.1/32", 60), true)])
            .expect("usable");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged file is kept");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let line = "é".repeat(MAX_LINE);
        let cut = bounded_line(&line);
        assert!(cut.len() <= MAX_LINE && cut.len() >= MAX_LINE - 1);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "nftjail-state-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}
