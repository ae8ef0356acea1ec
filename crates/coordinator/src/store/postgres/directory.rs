//! [`DirectoryStore`] on the coordinator's PostgreSQL database (migration
//! 5, as in store/sqlite/directory.rs).

use triad_pg::postgres::Row;
use triad_pg::Sql;

use super::PostgresStore;
use crate::store::directory::{kind_str, parse_kind, DirectoryEntry, DirectoryStore, Kind};
use crate::store::StoreError;

/// Migration 5: one directory entry per study or poll. Kind and name are
/// `COLLATE "C"`: entries are listed in bytewise name order, as in SQLite.
pub(super) const DIRECTORY_SCHEMA: &str = r#"
CREATE TABLE directory_entries (
    kind TEXT COLLATE "C" NOT NULL,   -- study | poll
    name TEXT COLLATE "C" NOT NULL,   -- the study id, or the poll id in decimal
    id_salt TEXT NOT NULL,            -- 32 hex, never changed
    directory_id TEXT NOT NULL,       -- 64 hex
    seq BIGINT NOT NULL DEFAULT 0,
    published_at BIGINT,
    PRIMARY KEY (kind, name)
);
"#;

/// Inserts `e` unless its (kind, name) has an entry (inside the caller's
/// transaction).
pub(super) fn insert_entry(c: &mut impl Sql, e: &DirectoryEntry) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO directory_entries (kind, name, id_salt, directory_id)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[
            &kind_str(e.kind),
            &e.name,
            &hex::encode(e.id_salt),
            &e.directory_id,
        ],
    )?;
    Ok(())
}

fn entry(r: &Row) -> Result<DirectoryEntry, StoreError> {
    let salt: &str = r.try_get(2)?;
    let mut id_salt = [0u8; 16];
    hex::decode_to_slice(salt, &mut id_salt)
        .map_err(|_| StoreError::Corrupt(format!("id_salt {salt:?}")))?;
    let published_at: Option<i64> = r.try_get(5)?;
    Ok(DirectoryEntry {
        kind: parse_kind(r.try_get(0)?)?,
        name: r.try_get(1)?,
        id_salt,
        directory_id: r.try_get(3)?,
        seq: r.try_get::<_, i64>(4)? as u64,
        published_at: published_at.map(|t| t as u64),
    })
}

const COLUMNS: &str = "kind, name, id_salt, directory_id, seq, published_at";

fn load(c: &mut impl Sql, kind: Kind, name: &str) -> Result<Option<DirectoryEntry>, StoreError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM directory_entries WHERE kind = $1 AND name = $2"),
        &[&kind_str(kind), &name],
    )?
    .map(|r| entry(&r))
    .transpose()
}

impl DirectoryStore for PostgresStore {
    fn ensure_directory_entry(&self, e: &DirectoryEntry) -> Result<DirectoryEntry, StoreError> {
        self.pool.transaction(|tx| {
            insert_entry(tx, e)?;
            load(tx, e.kind, &e.name)?
                .ok_or_else(|| StoreError::Corrupt("directory entry vanished".into()))
        })
    }

    fn directory_entry(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<DirectoryEntry>, StoreError> {
        load(&mut self.pool.get()?, kind, name)
    }

    fn directory_entries(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        // "study" > "poll": studies first.
        let rows = self.pool.get()?.query(
            &format!("SELECT {COLUMNS} FROM directory_entries ORDER BY kind DESC, name"),
            &[],
        )?;
        rows.iter().map(entry).collect()
    }

    fn next_directory_seq(&self, kind: Kind, name: &str) -> Result<u64, StoreError> {
        self.pool.transaction(|tx| {
            let row = tx.query_opt(
                "UPDATE directory_entries SET seq = seq + 1 WHERE kind = $1 AND name = $2
                 RETURNING seq",
                &[&kind_str(kind), &name],
            )?;
            // An Err rolls back (nothing to roll back: no row matched).
            let Some(row) = row else {
                return Err(StoreError::Corrupt(format!(
                    "no directory entry for {} {name:?}",
                    kind_str(kind)
                )));
            };
            Ok(row.try_get::<_, i64>(0)? as u64)
        })
    }

    fn directory_published(&self, kind: Kind, name: &str, at: u64) -> Result<(), StoreError> {
        self.pool.transaction(|tx| {
            tx.execute(
                "UPDATE directory_entries SET published_at = $3 WHERE kind = $1 AND name = $2",
                &[&kind_str(kind), &name, &(at as i64)],
            )?;
            Ok(())
        })
    }
}
