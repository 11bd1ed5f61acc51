//! Cursors a reader keeps itself, through its own connection to the store:
//! the farm's place in its stream of bans (the journal's cursor, by
//! contrast, goes with the counts in the writer's checkpoints).

use rusqlite::params;

use super::{db_err, StateError, Store};

impl Store {
    pub fn set_cursor(&self, source: &str, cursor: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO cursors(source, cursor) VALUES (?1, ?2)",
                params![source, cursor],
            )
            .map(drop)
            .map_err(|e| db_err(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Store;

    #[test]
    fn a_cursor_saved_is_read_back_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cursor("farm").unwrap(), None);
        store.set_cursor("farm", "1-0").unwrap();
        store.set_cursor("farm", "2-5").unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cursor("farm").unwrap().as_deref(), Some("2-5"));
    }
}
