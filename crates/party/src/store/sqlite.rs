//! [`PartyStore`] on SQLite (`party.sqlite`): WAL with `synchronous=FULL`,
//! one transaction per call that changes anything, versioned migrations.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use triad_mpc::{Shares, Z128};
use triad_wire::messages::{RejectReason, StudyParams};
use triad_wire::SignedRelease;

pub(super) mod polls;

use super::{Audit, BatchState, Holding, PartyStore, StoreError, StoredBatch, StoredUpload};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// [`PartyStore`] in one SQLite file, one connection behind a mutex.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    params TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    study_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted')),
    request_sha256 BLOB NOT NULL,
    verdicts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    study_id TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    PRIMARY KEY (study_id, submission_id)
);
CREATE INDEX IF NOT EXISTS shares_batch ON shares(batch_id);
-- This party's own sybil check: an account counts once per study, whatever
-- the coordinator says. Held by pending and committed batches only.
CREATE TABLE IF NOT EXISTS nullifiers (
    study_id TEXT NOT NULL,
    nullifier TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
    PRIMARY KEY (study_id, nullifier)
);
CREATE INDEX IF NOT EXISTS nullifiers_batch ON nullifiers(batch_id);
CREATE TABLE IF NOT EXISTS releases (
    study_id TEXT NOT NULL,
    release_no INTEGER NOT NULL,
    count INTEGER NOT NULL,
    signed TEXT NOT NULL,
    PRIMARY KEY (study_id, release_no)
);
";

/// Schema versions in order; `PRAGMA user_version` counts those applied,
/// each in one transaction with its version bump. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: the base schema (idempotent, so files made before versioning pass
    // through it unchanged).
    SCHEMA,
    // 2: polls (store/sqlite/polls.rs).
    polls::POLL_SCHEMA,
    // 3: providers' uploads, durable before their receipt is signed.
    "CREATE TABLE uploads (
         submission_id TEXT NOT NULL,
         token_sha256 BLOB NOT NULL,
         components BLOB NOT NULL,
         uploaded_ms INTEGER NOT NULL,
         PRIMARY KEY (submission_id, token_sha256)
     );
     CREATE INDEX uploads_time ON uploads (uploaded_ms);",
];

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // The version is read inside each migration's write transaction, so
    // two processes opening an old file at once apply each step once.
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if done < 0 || done as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {done} (this party knows up to {})",
                MIGRATIONS.len()
            )));
        }
        if done as usize > i {
            continue;
        }
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Batch ids are 64-bit signed integers in both backends: a bound above
/// i64::MAX means "all".
pub(super) fn clamp(batch_id: u64) -> i64 {
    batch_id.min(i64::MAX as u64) as i64
}

pub(super) fn z128_blob(x: Z128) -> [u8; 16] {
    x.0.to_le_bytes()
}

pub(super) fn blob_z128(b: &[u8]) -> Result<Z128, StoreError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| StoreError::Corrupt("share component is not 16 bytes".into()))?;
    Ok(std::num::Wrapping(u128::from_le_bytes(arr)))
}

impl SqliteStore {
    /// Runs `insert` (which may or may not overwrite) and returns the study
    /// as stored afterwards, in one transaction.
    fn pin(&self, insert: &str, s: &StudyParams) -> Result<StudyParams, StoreError> {
        let json = serde_json::to_string(s).expect("study serializes");
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(insert, params![s.id, json])?;
        let stored: String = tx.query_row(
            "SELECT params FROM studies WHERE id = ?1",
            params![s.id],
            |r| r.get(0),
        )?;
        tx.commit()?;
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("study: {e}")))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Shares: private from the first byte (SQLite would create 0644).
        triad_files::private_file(path)?;
        let mut conn = Connection::open(path)?;
        // Another process (an operator's tool, a bulk load) may hold the
        // write lock for a moment: wait instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // WAL + FULL: a committed transaction survives power loss, and
        // readers never see a half-written batch.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[allow(clippy::too_many_arguments)] // private: one row per column
    fn put_batch(
        &self,
        batch_id: u64,
        study_id: &str,
        state: BatchState,
        request_sha256: &[u8],
        verdicts: &[Option<RejectReason>],
        passing: &[(String, Z128, Z128)],
        nullifiers: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO batches (batch_id, study_id, state, request_sha256, verdicts)
             VALUES (?1, ?2, ?5, ?3, ?4)",
            params![
                batch_id as i64,
                study_id,
                request_sha256,
                serde_json::to_string(verdicts).expect("verdicts serialize"),
                state.as_str()
            ],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO shares (study_id, submission_id, batch_id, a, b)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, a, b) in passing {
                st.execute(params![
                    study_id,
                    id,
                    batch_id as i64,
                    &z128_blob(*a)[..],
                    &z128_blob(*b)[..]
                ])?;
            }
        }
        {
            let mut st = tx.prepare(
                "INSERT INTO nullifiers (study_id, nullifier, submission_id, batch_id)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, n) in nullifiers {
                st.execute(params![study_id, n, id, batch_id as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn resolve(&self, batch_id: u64, to: BatchState) -> Result<BatchState, StoreError> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur: Option<String> = tx
            .query_row(
                "SELECT state FROM batches WHERE batch_id = ?1",
                params![batch_id as i64],
                |r| r.get(0),
            )
            .optional()?;
        let cur = match cur {
            Some(s) => BatchState::parse(&s)?,
            None if to == BatchState::Aborted => {
                tx.execute(
                    "INSERT INTO batches (batch_id, study_id, state, request_sha256, verdicts)
                     VALUES (?1, '', 'aborted', x'', '[]')",
                    params![batch_id as i64],
                )?;
                tx.commit()?;
                return Ok(BatchState::Aborted);
            }
            None => return Err(StoreError::UnknownBatch(batch_id)),
        };
        if cur != BatchState::Pending {
            return Ok(cur);
        }
        if to == BatchState::Aborted {
            tx.execute(
                "DELETE FROM shares WHERE batch_id = ?1",
                params![batch_id as i64],
            )?;
            tx.execute(
                "DELETE FROM nullifiers WHERE batch_id = ?1",
                params![batch_id as i64],
            )?;
        }
        tx.execute(
            "UPDATE batches SET state = ?2 WHERE batch_id = ?1",
            params![batch_id as i64, to.as_str()],
        )?;
        tx.commit()?;
        Ok(to)
    }
}

impl PartyStore for SqliteStore {
    fn pin_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError> {
        self.pin(
            "INSERT OR IGNORE INTO studies (id, params) VALUES (?1, ?2)",
            s,
        )
    }

    fn pin_new_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError> {
        self.pin(
            "INSERT INTO studies (id, params) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET params = excluded.params
             WHERE NOT EXISTS (SELECT 1 FROM batches WHERE study_id = ?1)",
            s,
        )
    }

    fn study_ids(&self) -> Result<Vec<String>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT id FROM studies ORDER BY id")?;
        let ids = st
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    fn pinned_study(&self, id: &str) -> Result<Option<StudyParams>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT params FROM studies WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("study: {e}")))
        })
        .transpose()
    }

    fn batch(&self, batch_id: u64) -> Result<Option<StoredBatch>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT state, request_sha256, verdicts FROM batches WHERE batch_id = ?1",
                params![batch_id as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(s, h, v)| {
            Ok(StoredBatch {
                state: BatchState::parse(&s)?,
                request_sha256: h,
                verdicts: serde_json::from_str(&v)
                    .map_err(|e| StoreError::Corrupt(format!("verdicts: {e}")))?,
            })
        })
        .transpose()
    }

    fn pending_batches(&self) -> Result<Vec<u64>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT batch_id FROM batches WHERE state = 'pending'")?;
        let ids = st
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids.into_iter().map(|i| i as u64).collect())
    }

    fn put_pending(
        &self,
        batch_id: u64,
        study_id: &str,
        request_sha256: &[u8],
        verdicts: &[Option<RejectReason>],
        passing: &[(String, Z128, Z128)],
        nullifiers: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.put_batch(
            batch_id,
            study_id,
            BatchState::Pending,
            request_sha256,
            verdicts,
            passing,
            nullifiers,
        )
    }

    fn nullifier_used(&self, study_id: &str, nullifier: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM nullifiers WHERE study_id = ?1 AND nullifier = ?2",
                params![study_id, nullifier],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn import_committed(
        &self,
        batch_id: u64,
        study_id: &str,
        rows: &[(String, Z128, Z128)],
    ) -> Result<(), StoreError> {
        self.put_batch(
            batch_id,
            study_id,
            BatchState::Committed,
            b"import",
            &[],
            rows,
            &[],
        )
    }

    fn commit(&self, batch_id: u64) -> Result<BatchState, StoreError> {
        self.resolve(batch_id, BatchState::Committed)
    }

    fn abort(&self, batch_id: u64) -> Result<BatchState, StoreError> {
        self.resolve(batch_id, BatchState::Aborted)
    }

    fn committed_shares(
        &self,
        study_id: &str,
        as_of_batch: u64,
    ) -> Result<(Vec<String>, Shares<Z128>), StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT s.submission_id, s.a, s.b FROM shares s
             JOIN batches b ON b.batch_id = s.batch_id
             WHERE s.study_id = ?1 AND b.state = 'committed' AND s.batch_id <= ?2
             ORDER BY s.batch_id, s.submission_id",
        )?;
        let mut ids = Vec::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut rows = st.query(params![study_id, clamp(as_of_batch)])?;
        while let Some(r) = rows.next()? {
            ids.push(r.get::<_, String>(0)?);
            a.push(blob_z128(&r.get::<_, Vec<u8>>(1)?)?);
            b.push(blob_z128(&r.get::<_, Vec<u8>>(2)?)?);
        }
        Ok((ids, Shares::new(a, b)))
    }

    fn committed_count(&self, study_id: &str, as_of_batch: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM shares s JOIN batches b ON b.batch_id = s.batch_id
             WHERE s.study_id = ?1 AND b.state = 'committed' AND s.batch_id <= ?2",
            params![study_id, clamp(as_of_batch)],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn release(
        &self,
        study_id: &str,
        release_no: u64,
    ) -> Result<Option<(u64, SignedRelease)>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT count, signed FROM releases WHERE study_id = ?1 AND release_no = ?2",
                params![study_id, release_no as i64],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(count, s)| {
            let signed = serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt(format!("release: {e}")))?;
            Ok((count as u64, signed))
        })
        .transpose()
    }

    fn latest_release(
        &self,
        study_id: &str,
    ) -> Result<Option<(u64, u64, SignedRelease)>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT release_no, count, signed FROM releases WHERE study_id = ?1
                 ORDER BY release_no DESC LIMIT 1",
                params![study_id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(no, count, s)| {
            let signed = serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt(format!("release: {e}")))?;
            Ok((no as u64, count as u64, signed))
        })
        .transpose()
    }

    fn put_release(
        &self,
        study_id: &str,
        release_no: u64,
        count: u64,
        signed: &SignedRelease,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO releases (study_id, release_no, count, signed)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                study_id,
                release_no as i64,
                count as i64,
                serde_json::to_string(signed).expect("release serializes")
            ],
        )?;
        Ok(())
    }

    fn audit(&self, after: Option<(&str, &str)>, limit: usize) -> Result<Audit, StoreError> {
        let mut c = self.conn();
        // One read transaction: both lists come from the same snapshot.
        let tx = c.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let pending_batches = tx
            .prepare("SELECT batch_id FROM batches WHERE state = 'pending' ORDER BY batch_id")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|b| b as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = tx.prepare(
            "SELECT s.study_id, s.submission_id, s.batch_id, b.state FROM shares s
             JOIN batches b ON b.batch_id = s.batch_id
             WHERE (s.study_id, s.submission_id) > (?1, ?2)
             ORDER BY s.study_id, s.submission_id LIMIT ?3",
        )?;
        let (study, sub) = after.unwrap_or(("", ""));
        let mut rows = st.query(params![study, sub, limit.min(i64::MAX as usize) as i64])?;
        let mut holdings = Vec::new();
        while let Some(r) = rows.next()? {
            holdings.push(Holding {
                study_id: r.get(0)?,
                submission_id: r.get(1)?,
                batch_id: r.get::<_, i64>(2)? as u64,
                state: BatchState::parse(&r.get::<_, String>(3)?)?,
            });
        }
        Ok(Audit {
            pending_batches,
            holdings,
        })
    }

    fn put_upload(&self, u: &StoredUpload, expire_before_ms: i64) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM uploads WHERE uploaded_ms < ?1",
            params![expire_before_ms],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO uploads (submission_id, token_sha256, components, uploaded_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                u.submission_id,
                &u.token_sha256[..],
                u.components,
                u.uploaded_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn uploads_since(&self, since_ms: i64) -> Result<Vec<StoredUpload>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT submission_id, token_sha256, components, uploaded_ms FROM uploads
             WHERE uploaded_ms >= ?1 ORDER BY uploaded_ms, submission_id",
        )?;
        let rows = st.query_map(params![since_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (submission_id, token, components, uploaded_ms) = r?;
            Ok(StoredUpload {
                submission_id,
                token_sha256: token
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("upload token digest".into()))?,
                components,
                uploaded_ms,
            })
        })
        .collect()
    }

    fn remove_uploads(&self, keys: &[(String, [u8; 32])]) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (sid, token) in keys {
            tx.execute(
                "DELETE FROM uploads WHERE submission_id = ?1 AND token_sha256 = ?2",
                params![sid, &token[..]],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-only checks: the schema's versions. The behaviour every
    //! backend shares is tested in store/suite.rs, on this store and on
    //! PostgreSQL's.
    use super::*;

    fn version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrations_apply_once_and_newer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("party.sqlite");
        SqliteStore::open(&path).unwrap();
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        // Migration 2 is a plain CREATE: a second run would fail.
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        drop(s);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// A file made before versioning (the base schema, `user_version` 0)
    /// passes through migration 1 unchanged and gains the later ones.
    #[test]
    fn an_unversioned_file_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("party.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO batches (batch_id, study_id, state, request_sha256, verdicts)
                 VALUES (1, 'st', 'committed', x'00', '[]')",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO shares (study_id, submission_id, batch_id, a, b)
                 VALUES ('st', 'a', 1, ?1, ?1)",
                params![&z128_blob(std::num::Wrapping(5))[..]],
            )
            .unwrap();
        }
        assert_eq!(version(&path), 0);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 1);
        assert!(crate::store::PollShareStore::poll(&s, 1).unwrap().is_none());
    }
}
