//! The rules each jail had in the kernel when the config was last applied
//! (its ports, protocol, block type, ufw profile): what a start needs to
//! build again the sets and rule of a jail the config no longer names but
//! whose bans still run. Without them a restart, or a reboot that emptied
//! the kernel, would drop such a jail's bans and let its offenders back in.
//!
//! Written with every change of the jails the kernel holds (start, reload,
//! `unban --jail-gone`), in the transaction that drops the bans of the
//! jails gone from that list; readable with the `sqlite3` shell.

use rusqlite::{params, Connection};

use std::time::SystemTime;

use super::{db_err, ms, StateError, Store};
use crate::rules::{BlockType, JailRules, PortRange, Proto};

/// The table, as a migration adds it to an older store.
pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS jails(
        name TEXT PRIMARY KEY,
        ports TEXT NOT NULL,
        blocktype TEXT NOT NULL,
        app TEXT) WITHOUT ROWID;";

impl Store {
    /// The jails the kernel held when the config was last applied, with
    /// their rules. A row that cannot be read (edited by hand) is skipped.
    pub fn jails(&self) -> Result<Vec<JailRules>, StateError> {
        self.read_jails(
            "SELECT name, ports, blocktype, app FROM jails ORDER BY name",
            [],
        )
    }

    /// [`Store::jails`] that hold a ban still running at `now`: asked
    /// at start, so it reads one ban per jail, not every ban.
    pub fn jails_holding_bans(&self, now: SystemTime) -> Result<Vec<JailRules>, StateError> {
        self.read_jails(
            "SELECT name, ports, blocktype, app FROM jails j WHERE EXISTS (
                 SELECT 1 FROM bans b WHERE b.jail = j.name AND (b.until IS NULL OR b.until > ?1))
             ORDER BY name",
            [ms(now)],
        )
    }

    fn read_jails(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<JailRules>, StateError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| db_err(&self.path, e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| db_err(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, ports, blocktype, app) = row.map_err(|e| db_err(&self.path, e))?;
            match (parse_ports(&ports), parse_blocktype(&blocktype)) {
                (Some(ports), Some(blocktype)) => out.push(JailRules {
                    name,
                    ports,
                    blocktype,
                    app,
                }),
                _ => tracing::warn!(
                    jail = name,
                    ports,
                    blocktype,
                    "state: unreadable jail skipped"
                ),
            }
        }
        Ok(out)
    }

    /// Keeps only the bans of these jails, those the kernel holds (a jail
    /// removed from the config takes its bans with it once its kernel sets
    /// are deleted). Returns how many jails' bans were dropped.
    pub fn retain_jails(&mut self, jails: &[String]) -> Result<usize, StateError> {
        let gone: Vec<(String, Option<ipnet::IpNet>)> = banned(&self.conn)
            .map_err(|e| db_err(&self.path, e))?
            .into_iter()
            .filter(|j| !jails.contains(j))
            .map(|j| (j, None))
            .collect();
        self.remove_bans(&gone)?;
        Ok(gone.len())
    }

    /// The kernel now holds exactly these jails: their rules replace the
    /// stored ones, and the bans of every other jail are forgotten, in one
    /// transaction. Returns how many jails' bans were dropped.
    pub fn set_jails(&mut self, jails: &[JailRules]) -> Result<usize, StateError> {
        let tx = self.conn.transaction().map_err(|e| db_err(&self.path, e))?;
        let dropped = {
            let stored = banned(&tx).map_err(|e| db_err(&self.path, e))?;
            let mut forget = tx
                .prepare_cached("DELETE FROM bans WHERE jail = ?1")
                .map_err(|e| db_err(&self.path, e))?;
            let mut dropped = 0;
            for jail in stored
                .iter()
                .filter(|j| !jails.iter().any(|r| r.name == **j))
            {
                forget.execute([jail]).map_err(|e| db_err(&self.path, e))?;
                dropped += 1;
            }
            tx.execute("DELETE FROM jails", [])
                .map_err(|e| db_err(&self.path, e))?;
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO jails(name, ports, blocktype, app) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| db_err(&self.path, e))?;
            for j in jails {
                put.execute(params![
                    j.name,
                    show_ports(&j.ports),
                    show_blocktype(j.blocktype),
                    j.app
                ])
                .map_err(|e| db_err(&self.path, e))?;
            }
            dropped
        };
        tx.commit().map_err(|e| db_err(&self.path, e))?;
        Ok(dropped)
    }
}

/// The jails with stored bans.
fn banned(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT jail FROM bans")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Copies the jails of the store attached as `old` (see
/// [`Store::in_memory`]), if it is of a version that has them.
pub(super) fn copy_attached(tx: &Connection) -> rusqlite::Result<()> {
    let has_jails: bool = tx.query_row(
        "SELECT count(*) > 0 FROM old.sqlite_master WHERE type = 'table' AND name = 'jails'",
        [],
        |r| r.get(0),
    )?;
    if has_jails {
        tx.execute_batch("INSERT INTO jails SELECT name, ports, blocktype, app FROM old.jails;")?;
    }
    Ok(())
}

/// `tcp/22,tcp/8000-8080,udp/53`; empty: every port and protocol.
fn show_ports(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|p| {
            if p.first == p.last {
                format!("{}/{}", p.proto, p.first)
            } else {
                format!("{}/{}-{}", p.proto, p.first, p.last)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_ports(text: &str) -> Option<Vec<PortRange>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|one| {
            let (proto, range) = one.split_once('/')?;
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let (first, last) = (first.parse().ok()?, last.parse().ok()?);
            (first <= last).then_some(PortRange { proto, first, last })
        })
        .collect()
}

fn show_blocktype(b: BlockType) -> &'static str {
    match b {
        BlockType::Reject => "reject",
        BlockType::Drop => "drop",
    }
}

fn parse_blocktype(text: &str) -> Option<BlockType> {
    match text {
        "reject" => Some(BlockType::Reject),
        "drop" => Some(BlockType::Drop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::StoredBan;

    fn jail(name: &str, ports: Vec<PortRange>, blocktype: BlockType) -> JailRules {
        JailRules {
            name: name.into(),
            ports,
            blocktype,
            app: None,
        }
    }

    #[test]
    fn jails_rules_round_trip_and_replace_the_last_ones_with_the_bans_of_the_others() {
        let dir = std::env::temp_dir().join(format!("nftjail-jails-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir).expect("open");
        let tcp = |first, last| PortRange {
            proto: Proto::Tcp,
            first,
            last,
        };
        let udp53 = PortRange {
            proto: Proto::Udp,
            first: 53,
            last: 53,
        };
        let mut mail = jail(
            "mail",
            vec![tcp(25, 25), tcp(587, 600), udp53],
            BlockType::Drop,
        );
        mail.app = Some("Postfix".into());
        let all = jail("all", Vec::new(), BlockType::Reject);
        s.set_jails(&[mail.clone(), all.clone()]).expect("set");
        assert_eq!(s.jails().expect("jails"), [all.clone(), mail.clone()]);
        // Closed, so its log is in the file a store in memory reads.
        let path = s.path().to_path_buf();
        drop(s);
        let memory = Store::in_memory(&path, "test".into()).expect("in memory");
        assert_eq!(
            memory.jails().expect("jails"),
            [all.clone(), mail.clone()],
            "a store standing in for the file keeps what the file held"
        );
        let mut s = Store::open(&dir).expect("reopen");

        let now = SystemTime::now();
        let ban = |jail: &str| {
            (
                StoredBan {
                    jail: jail.into(),
                    net: "192.0.2.1/32".parse().expect("net"),
                    start: now,
                    until: Some(now + Duration::from_secs(60)),
                    failures: 1,
                    line: None,
                    cause: Default::default(),
                },
                true,
            )
        };
        s.put_bans(&[ban("mail"), ban("all")]).expect("bans");
        assert_eq!(
            s.jails_holding_bans(now).expect("jails"),
            [all.clone(), mail.clone()]
        );
        let later = now + Duration::from_secs(61);
        assert!(s.jails_holding_bans(later).expect("jails").is_empty());
        assert_eq!(s.set_jails(std::slice::from_ref(&all)).expect("set"), 1);
        assert_eq!(s.jails().expect("jails"), [all]);
        let left: Vec<String> = s
            .bans()
            .expect("bans")
            .iter()
            .map(|b| b.jail.to_string())
            .collect();
        assert_eq!(left, ["all"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_port_list_reads_back_as_written_and_nonsense_is_refused() {
        for text in ["", "tcp/22", "tcp/22,udp/1000-2000"] {
            let ports = parse_ports(text).expect(text);
            assert_eq!(show_ports(&ports), text);
        }
        for bad in ["tcp", "sctp/1", "tcp/2-1", "tcp/x", "tcp/70000"] {
            assert!(parse_ports(bad).is_none(), "{bad}");
        }
    }
}
