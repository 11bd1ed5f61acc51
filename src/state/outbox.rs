//! The farm's outbox: bans and unbans this node decided that Redis has not
//! taken yet. Redis may be down longer than the daemon runs (an upgrade, a
//! reboot during the outage): what the other nodes must still hear of is
//! kept here, in order, and deleted once Redis acknowledged it. Kept
//! through the farm link's own connection to the store, like its cursor.

use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use rusqlite::params;

use super::{db_err, from_ms, ms, StateError, Store};
use crate::message::Cause;

/// Schema 5. `id` orders the rows: each appended one gets a larger id than
/// every row present.
pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS farm_outbox(
        id INTEGER PRIMARY KEY,
        op TEXT NOT NULL,
        jail TEXT NOT NULL,
        target TEXT NOT NULL,
        until INTEGER,
        cause TEXT);";

/// One record waiting for Redis (the farm's own type lives above the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Ban {
        jail: Arc<str>,
        target: IpNet,
        until: SystemTime,
        cause: Cause,
    },
    Unban {
        jail: Arc<str>,
        target: IpNet,
    },
}

/// The oldest records waiting, and the id of the last row read (rows up to
/// it are deleted once sent; unreadable ones with them).
#[derive(Debug, Default)]
pub struct Waiting {
    pub records: Vec<Outgoing>,
    pub through: Option<i64>,
}

impl Store {
    /// Appends `items` in order, then drops the oldest rows past `max`.
    /// Returns the rows now waiting and how many were dropped.
    pub fn outbox_append(
        &mut self,
        items: &[Outgoing],
        max: usize,
    ) -> Result<(u64, u64), StateError> {
        let path = self.path.clone();
        let db = |e| db_err(&path, e);
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO farm_outbox(op, jail, target, until, cause)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db)?;
            for item in items {
                match item {
                    Outgoing::Ban {
                        jail,
                        target,
                        until,
                        cause,
                    } => put.execute(params![
                        "ban",
                        &**jail,
                        target.to_string(),
                        ms(*until),
                        cause.to_string()
                    ]),
                    Outgoing::Unban { jail, target } => put.execute(params![
                        "unban",
                        &**jail,
                        target.to_string(),
                        None::<i64>,
                        None::<String>
                    ]),
                }
                .map_err(db)?;
            }
        }
        let len: i64 = tx
            .query_row("SELECT count(*) FROM farm_outbox", [], |r| r.get(0))
            .map_err(db)?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let dropped = (len - max).max(0);
        if dropped > 0 {
            tx.execute(
                "DELETE FROM farm_outbox WHERE id IN
                     (SELECT id FROM farm_outbox ORDER BY id LIMIT ?1)",
                [dropped],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(((len - dropped) as u64, dropped as u64))
    }

    /// Rows waiting.
    pub fn outbox_len(&self) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT count(*) FROM farm_outbox", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| db_err(&self.path, e))
    }

    /// Up to `n` of the oldest records, in order. A row edited by hand
    /// into nonsense is skipped (and goes with the others once sent).
    pub fn outbox_first(&self, n: usize) -> Result<Waiting, StateError> {
        let db = |e| db_err(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, op, jail, target, until, cause FROM farm_outbox ORDER BY id LIMIT ?1",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([i64::try_from(n).unwrap_or(i64::MAX)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(db)?;
        let mut out = Waiting::default();
        for row in rows {
            let (id, op, jail, target, until, cause) = row.map_err(db)?;
            out.through = Some(id);
            let Ok(target) = target.parse::<IpNet>() else {
                tracing::warn!(id, target, "state: unreadable farm outbox row skipped");
                continue;
            };
            let jail: Arc<str> = jail.into();
            let record = match (op.as_str(), until) {
                ("ban", Some(until)) => Outgoing::Ban {
                    jail,
                    target,
                    until: from_ms(until),
                    cause: cause.and_then(|c| c.parse().ok()).unwrap_or_default(),
                },
                ("unban", _) => Outgoing::Unban { jail, target },
                _ => {
                    tracing::warn!(id, op, "state: unreadable farm outbox row skipped");
                    continue;
                }
            };
            out.records.push(record);
        }
        Ok(out)
    }

    /// Deletes the rows up to `id` (sent); returns the rows still waiting.
    pub fn outbox_sent(&mut self, through: i64) -> Result<u64, StateError> {
        self.conn
            .execute("DELETE FROM farm_outbox WHERE id <= ?1", [through])
            .map_err(|e| db_err(&self.path, e))?;
        self.outbox_len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ban(i: u8) -> Outgoing {
        Outgoing::Ban {
            jail: "mail".into(),
            target: format!("192.0.2.{i}/32").parse().unwrap(),
            until: from_ms(1_800_000_000_000 + i64::from(i)),
            cause: Cause::Manual,
        }
    }

    #[test]
    fn records_come_back_in_order_across_a_reopen_until_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let unban = Outgoing::Unban {
            jail: "mail".into(),
            target: "2001:db8::/64".parse().unwrap(),
        };
        let items = [ban(1), unban.clone(), ban(2)];
        assert_eq!(store.outbox_append(&items, 10).unwrap(), (3, 0));
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.outbox_len().unwrap(), 3);
        let first = store.outbox_first(2).unwrap();
        assert_eq!(first.records, vec![ban(1), unban]);
        assert_eq!(store.outbox_sent(first.through.unwrap()).unwrap(), 1);
        let rest = store.outbox_first(10).unwrap();
        assert_eq!(rest.records, vec![ban(2)]);
        assert_eq!(store.outbox_sent(rest.through.unwrap()).unwrap(), 0);
        assert!(store.outbox_first(10).unwrap().through.is_none());
    }

    #[test]
    fn past_the_cap_the_oldest_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.outbox_append(&[ban(1), ban(2), ban(3)], 4).unwrap();
        assert_eq!(store.outbox_append(&[ban(4), ban(5)], 4).unwrap(), (4, 1));
        let left = store.outbox_first(10).unwrap().records;
        assert_eq!(left, vec![ban(2), ban(3), ban(4), ban(5)]);
    }

    #[test]
    fn a_row_edited_into_nonsense_is_skipped_and_deleted_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.outbox_append(&[ban(1)], 10).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO farm_outbox(op, jail, target) VALUES ('ban', 'mail', 'x')",
                [],
            )
            .unwrap();
        store.outbox_append(&[ban(2)], 10).unwrap();
        let got = store.outbox_first(10).unwrap();
        assert_eq!(got.records, vec![ban(1), ban(2)]);
        assert_eq!(store.outbox_sent(got.through.unwrap()).unwrap(), 0);
    }
}
