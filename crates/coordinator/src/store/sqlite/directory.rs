//! [`DirectoryStore`] on the coordinator's SQLite file (migration 5).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::directory::{kind_str, parse_kind, DirectoryEntry, DirectoryStore, Kind};
use crate::store::StoreError;

/// Migration 5: one directory entry per study or poll.
pub(super) const DIRECTORY_SCHEMA: &str = "
CREATE TABLE directory_entries (
    kind TEXT NOT NULL,           -- study | poll
    name TEXT NOT NULL,           -- the study id, or the poll id in decimal
    id_salt TEXT NOT NULL,        -- 32 hex, never changed
    directory_id TEXT NOT NULL,   -- 64 hex
    seq INTEGER NOT NULL DEFAULT 0,
    published_at INTEGER,
    PRIMARY KEY (kind, name)
);
";

/// Inserts `e` unless its (kind, name) has an entry (inside the caller's
/// transaction).
pub(super) fn insert_entry(c: &Connection, e: &DirectoryEntry) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR IGNORE INTO directory_entries (kind, name, id_salt, directory_id)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            kind_str(e.kind),
            e.name,
            hex::encode(e.id_salt),
            e.directory_id
        ],
    )?;
    Ok(())
}

/// The directory id of (kind, name), if it has an entry.
pub(super) fn directory_id(
    c: &Connection,
    kind: Kind,
    name: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT directory_id FROM directory_entries WHERE kind=?1 AND name=?2",
        params![kind_str(kind), name],
        |r| r.get(0),
    )
    .optional()?)
}

type Row = (String, String, String, String, i64, Option<i64>);

fn entry(r: Row) -> Result<DirectoryEntry, StoreError> {
    let (kind, name, salt, directory_id, seq, published_at) = r;
    let mut id_salt = [0u8; 16];
    hex::decode_to_slice(&salt, &mut id_salt)
        .map_err(|_| StoreError::Corrupt(format!("id_salt {salt:?}")))?;
    Ok(DirectoryEntry {
        kind: parse_kind(&kind)?,
        name,
        id_salt,
        directory_id,
        seq: seq as u64,
        published_at: published_at.map(|t| t as u64),
    })
}

const COLUMNS: &str = "kind, name, id_salt, directory_id, seq, published_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn load(c: &Connection, kind: Kind, name: &str) -> Result<Option<DirectoryEntry>, StoreError> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM directory_entries WHERE kind=?1 AND name=?2"),
        params![kind_str(kind), name],
        row,
    )
    .optional()?
    .map(entry)
    .transpose()
}

impl DirectoryStore for SqliteStore {
    fn ensure_directory_entry(&self, e: &DirectoryEntry) -> Result<DirectoryEntry, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_entry(&tx, e)?;
        let stored = load(&tx, e.kind, &e.name)?
            .ok_or_else(|| StoreError::Corrupt("directory entry vanished".into()))?;
        tx.commit()?;
        Ok(stored)
    }

    fn directory_entry(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<DirectoryEntry>, StoreError> {
        load(&self.conn(), kind, name)
    }

    fn directory_entries(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        let c = self.conn();
        let rows: Vec<Row> = c
            .prepare(&format!(
                "SELECT {COLUMNS} FROM directory_entries ORDER BY kind DESC, name"
            ))?
            .query_map([], row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(entry).collect()
    }

    fn next_directory_seq(&self, kind: Kind, name: &str) -> Result<u64, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE directory_entries SET seq = seq + 1 WHERE kind=?1 AND name=?2",
            params![kind_str(kind), name],
        )?;
        if n != 1 {
            return Err(StoreError::Corrupt(format!(
                "no directory entry for {} {name:?}",
                kind_str(kind)
            )));
        }
        let seq: i64 = tx.query_row(
            "SELECT seq FROM directory_entries WHERE kind=?1 AND name=?2",
            params![kind_str(kind), name],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(seq as u64)
    }

    fn directory_published(&self, kind: Kind, name: &str, at: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE directory_entries SET published_at=?3 WHERE kind=?1 AND name=?2",
            params![kind_str(kind), name, at as i64],
        )?;
        Ok(())
    }
}

// Tests: store/suite.rs runs them on every backend.
