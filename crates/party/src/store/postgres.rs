//! [`PartyStore`] and [`PollShareStore`] on PostgreSQL (`--database
//! postgres://…`), built on `triad-pg`: a small pool of blocking
//! connections, every change in one `SERIALIZABLE` transaction (retried on
//! a serialisation failure, so it behaves as if the calls ran one at a
//! time, as on SQLite's single connection), versioned migrations.
//!
//! The schema mirrors the SQLite one (store/sqlite.rs), migration for
//! migration, so a version means the same tables in both. Every text
//! column that is ordered or compared is `COLLATE "C"`: the canonical order
//! of [`PartyStore::committed_shares`] must be byte order, as SQLite's, at
//! every party whatever the server's default collation.
//!
//! Difference from SQLite: PostgreSQL's `TEXT` cannot hold a NUL byte, so a
//! study, submission or nullifier id containing one is refused with an
//! error here (the ids a party stores are hex, or study ids it checked).

use triad_mpc::{Shares, Z128};
use triad_pg::postgres::{self, IsolationLevel, Row};
use triad_pg::{Conflict, PgError, Pool};
use triad_wire::messages::{RejectReason, StudyParams};
use triad_wire::poll::{MessageKind, PollSpec, ShareSet, SignedTally};
use triad_wire::SignedRelease;

use super::polls::{PollShareStore, PutShares};
use super::sqlite::polls::{decode as decode_shares, encode as encode_shares, now_ms};
use super::sqlite::{blob_z128, clamp, z128_blob};
use super::{Audit, BatchState, Holding, PartyStore, StoreError, StoredBatch, StoredUpload};

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            // The bare driver error, so `is_conflict` can find it.
            PgError::Db(e) => e.into(),
            PgError::TooNew { found, known } => StoreError::Corrupt(format!(
                "schema version {found} (this party knows up to {known})"
            )),
            e @ (PgError::Url(_) | PgError::Owner { .. }) => StoreError::Backend(Box::new(e)),
        }
    }
}

impl Conflict for StoreError {
    fn is_conflict(&self) -> bool {
        match self {
            StoreError::Backend(b) => {
                b.downcast_ref::<postgres::Error>()
                    .is_some_and(triad_pg::is_conflict)
                    || b.downcast_ref::<PgError>().is_some_and(|e| e.is_conflict())
            }
            _ => false,
        }
    }
}

/// Migration 1: the base schema (SQLite's, in PostgreSQL's dialect). Plain
/// `CREATE`: unlike SQLite's first migration there are no unversioned
/// databases to pass through, and running it twice must fail loudly.
const SCHEMA: &str = r#"
CREATE TABLE studies (
    id TEXT COLLATE "C" PRIMARY KEY,
    params TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id BIGINT PRIMARY KEY,
    study_id TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted')),
    request_sha256 BYTEA NOT NULL,
    verdicts TEXT NOT NULL
);
CREATE INDEX batches_study ON batches(study_id);
CREATE TABLE shares (
    study_id TEXT COLLATE "C" NOT NULL,
    submission_id TEXT COLLATE "C" NOT NULL,
    batch_id BIGINT NOT NULL REFERENCES batches(batch_id),
    a BYTEA NOT NULL,
    b BYTEA NOT NULL,
    PRIMARY KEY (study_id, submission_id)
);
CREATE INDEX shares_batch ON shares(batch_id);
-- This party's own sybil check: an account counts once per study, whatever
-- the coordinator says. Held by pending and committed batches only.
CREATE TABLE nullifiers (
    study_id TEXT COLLATE "C" NOT NULL,
    nullifier TEXT COLLATE "C" NOT NULL,
    submission_id TEXT COLLATE "C" NOT NULL,
    batch_id BIGINT NOT NULL REFERENCES batches(batch_id),
    PRIMARY KEY (study_id, nullifier)
);
CREATE INDEX nullifiers_batch ON nullifiers(batch_id);
CREATE TABLE releases (
    study_id TEXT COLLATE "C" NOT NULL,
    release_no BIGINT NOT NULL,
    count BIGINT NOT NULL,
    signed TEXT NOT NULL,
    PRIMARY KEY (study_id, release_no)
);
"#;

/// Migration 2: polls (SQLite's store/sqlite/polls.rs).
const POLL_SCHEMA: &str = r#"
CREATE TABLE polls (
    id BIGINT PRIMARY KEY,
    spec_json TEXT NOT NULL
);
CREATE TABLE poll_shares (
    poll BIGINT NOT NULL,
    submission_id TEXT COLLATE "C" NOT NULL,
    token_sha256 TEXT NOT NULL,
    commitment TEXT NOT NULL,
    shares TEXT NOT NULL,          -- JSON: words[2][21], fr[2][5] (hex)
    received_ms BIGINT NOT NULL,
    confirmed BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (poll, submission_id)
);
CREATE INDEX poll_shares_unconfirmed ON poll_shares(confirmed, received_ms);
CREATE TABLE poll_tallies (
    poll BIGINT PRIMARY KEY,
    input_sha256 TEXT NOT NULL,
    signed_json TEXT NOT NULL
);
"#;

/// Schema versions in order, the same count and order as SQLite's
/// (`triad_schema.version` counts those applied). Append, never edit.
pub const MIGRATIONS: &[&str] = &[
    // 1: the base schema.
    SCHEMA,
    // 2: polls.
    POLL_SCHEMA,
    // 3: providers' uploads, durable before their receipt is signed.
    r#"CREATE TABLE uploads (
         submission_id TEXT COLLATE "C" NOT NULL,
         token_sha256 BYTEA NOT NULL,
         components BYTEA NOT NULL,
         uploaded_ms BIGINT NOT NULL,
         PRIMARY KEY (submission_id, token_sha256)
     );
     CREATE INDEX uploads_time ON uploads (uploaded_ms);"#,
];

/// Connections the store keeps open at most.
const POOL_SIZE: usize = 8;

/// [`PartyStore`] in one PostgreSQL database (one per party, never shared).
pub struct PostgresStore {
    pool: Pool,
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

impl PostgresStore {
    /// Connects to `url` and brings its schema to the latest version.
    /// Blocks: from async code call it on the blocking pool.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_as(url, "party")
    }

    /// [`PostgresStore::open`] for `owner` (`party0`..`party2`): a
    /// database another party (or service) claimed is refused.
    pub fn open_as(url: &str, owner: &str) -> Result<Self, StoreError> {
        let pool = Pool::connect(url, POOL_SIZE)?;
        triad_pg::claim(&pool, owner)?;
        triad_pg::migrate(&pool, MIGRATIONS)?;
        Ok(Self { pool })
    }

    /// The pool, for tests that inspect the database.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.pool.get()?.query_opt(sql, params)?)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.pool.get()?.query(sql, params)?)
    }

    /// Runs `insert` (which may or may not overwrite; `$1` id, `$2` params)
    /// and returns the study as stored afterwards, in one transaction.
    fn pin(&self, insert: &str, s: &StudyParams) -> Result<StudyParams, StoreError> {
        let json = serde_json::to_string(s).expect("study serializes");
        let stored: String = self.pool.transaction(|tx| {
            tx.execute(insert, &[&s.id, &json])?;
            Ok::<_, StoreError>(
                tx.query_one("SELECT params FROM studies WHERE id = $1", &[&s.id])?
                    .try_get(0)?,
            )
        })?;
        serde_json::from_str(&stored).map_err(corrupt("study"))
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
        let verdicts = serde_json::to_string(verdicts).expect("verdicts serialize");
        let ids: Vec<&str> = passing.iter().map(|(id, _, _)| id.as_str()).collect();
        let a_blobs: Vec<Vec<u8>> = passing.iter().map(|p| z128_blob(p.1).to_vec()).collect();
        let b_blobs: Vec<Vec<u8>> = passing.iter().map(|p| z128_blob(p.2).to_vec()).collect();
        let n_subs: Vec<&str> = nullifiers.iter().map(|(id, _)| id.as_str()).collect();
        let n_vals: Vec<&str> = nullifiers.iter().map(|(_, n)| n.as_str()).collect();
        let batch = batch_id as i64;
        self.pool.transaction(|tx| {
            tx.execute(
                "INSERT INTO batches (batch_id, study_id, state, request_sha256, verdicts)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &batch,
                    &study_id,
                    &state.as_str(),
                    &request_sha256,
                    &verdicts,
                ],
            )?;
            // One statement per table, however large the batch.
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO shares (study_id, submission_id, batch_id, a, b)
                     SELECT $1, t.id, $2, t.a, t.b
                     FROM unnest($3::TEXT[], $4::BYTEA[], $5::BYTEA[]) AS t(id, a, b)",
                    &[&study_id, &batch, &ids, &a_blobs, &b_blobs],
                )?;
            }
            if !n_vals.is_empty() {
                tx.execute(
                    "INSERT INTO nullifiers (study_id, nullifier, submission_id, batch_id)
                     SELECT $1, t.n, t.id, $2
                     FROM unnest($3::TEXT[], $4::TEXT[]) AS t(n, id)",
                    &[&study_id, &batch, &n_vals, &n_subs],
                )?;
            }
            Ok(())
        })
    }

    fn resolve(&self, batch_id: u64, to: BatchState) -> Result<BatchState, StoreError> {
        let batch = batch_id as i64;
        self.pool.transaction(|tx| {
            let cur: Option<String> = tx
                .query_opt("SELECT state FROM batches WHERE batch_id = $1", &[&batch])?
                .map(|r| r.try_get(0))
                .transpose()?;
            let cur = match cur {
                Some(s) => BatchState::parse(&s)?,
                None if to == BatchState::Aborted => {
                    tx.execute(
                        "INSERT INTO batches (batch_id, study_id, state, request_sha256, verdicts)
                         VALUES ($1, '', 'aborted', ''::BYTEA, '[]')",
                        &[&batch],
                    )?;
                    return Ok(BatchState::Aborted);
                }
                None => return Err(StoreError::UnknownBatch(batch_id)),
            };
            if cur != BatchState::Pending {
                return Ok(cur);
            }
            if to == BatchState::Aborted {
                tx.execute("DELETE FROM shares WHERE batch_id = $1", &[&batch])?;
                tx.execute("DELETE FROM nullifiers WHERE batch_id = $1", &[&batch])?;
            }
            tx.execute(
                "UPDATE batches SET state = $2 WHERE batch_id = $1",
                &[&batch, &to.as_str()],
            )?;
            Ok(to)
        })
    }
}

impl PartyStore for PostgresStore {
    fn pin_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError> {
        self.pin(
            "INSERT INTO studies (id, params) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            s,
        )
    }

    fn pin_new_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError> {
        self.pin(
            "INSERT INTO studies (id, params) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET params = EXCLUDED.params
             WHERE NOT EXISTS (SELECT 1 FROM batches WHERE study_id = $1)",
            s,
        )
    }

    fn study_ids(&self) -> Result<Vec<String>, StoreError> {
        self.query("SELECT id FROM studies ORDER BY id", &[])?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    fn pinned_study(&self, id: &str) -> Result<Option<StudyParams>, StoreError> {
        self.query_opt("SELECT params FROM studies WHERE id = $1", &[&id])?
            .map(|r| {
                let json: String = r.try_get(0)?;
                serde_json::from_str(&json).map_err(corrupt("study"))
            })
            .transpose()
    }

    fn batch(&self, batch_id: u64) -> Result<Option<StoredBatch>, StoreError> {
        self.query_opt(
            "SELECT state, request_sha256, verdicts FROM batches WHERE batch_id = $1",
            &[&(batch_id as i64)],
        )?
        .map(|r| {
            Ok(StoredBatch {
                state: BatchState::parse(r.try_get(0)?)?,
                request_sha256: r.try_get(1)?,
                verdicts: serde_json::from_str(r.try_get(2)?).map_err(corrupt("verdicts"))?,
            })
        })
        .transpose()
    }

    fn pending_batches(&self) -> Result<Vec<u64>, StoreError> {
        self.query(
            "SELECT batch_id FROM batches WHERE state = 'pending' ORDER BY batch_id",
            &[],
        )?
        .iter()
        .map(|r| Ok(r.try_get::<_, i64>(0)? as u64))
        .collect()
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
            .query_opt(
                "SELECT 1 FROM nullifiers WHERE study_id = $1 AND nullifier = $2",
                &[&study_id, &nullifier],
            )?
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
        let rows = self.query(
            "SELECT s.submission_id, s.a, s.b FROM shares s
             JOIN batches b ON b.batch_id = s.batch_id
             WHERE s.study_id = $1 AND b.state = 'committed' AND s.batch_id <= $2
             ORDER BY s.batch_id, s.submission_id",
            &[&study_id, &clamp(as_of_batch)],
        )?;
        let mut ids = Vec::with_capacity(rows.len());
        let (mut a, mut b) = (
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
        );
        for r in &rows {
            ids.push(r.try_get::<_, String>(0)?);
            a.push(blob_z128(r.try_get(1)?)?);
            b.push(blob_z128(r.try_get(2)?)?);
        }
        Ok((ids, Shares::new(a, b)))
    }

    fn committed_count(&self, study_id: &str, as_of_batch: u64) -> Result<u64, StoreError> {
        let n: i64 = self
            .query_opt(
                "SELECT COUNT(*) FROM shares s JOIN batches b ON b.batch_id = s.batch_id
                 WHERE s.study_id = $1 AND b.state = 'committed' AND s.batch_id <= $2",
                &[&study_id, &clamp(as_of_batch)],
            )?
            .expect("COUNT returns a row")
            .try_get(0)?;
        Ok(n as u64)
    }

    fn release(
        &self,
        study_id: &str,
        release_no: u64,
    ) -> Result<Option<(u64, SignedRelease)>, StoreError> {
        self.query_opt(
            "SELECT count, signed FROM releases WHERE study_id = $1 AND release_no = $2",
            &[&study_id, &(release_no as i64)],
        )?
        .map(|r| {
            let count: i64 = r.try_get(0)?;
            let signed = serde_json::from_str(r.try_get(1)?).map_err(corrupt("release"))?;
            Ok((count as u64, signed))
        })
        .transpose()
    }

    fn latest_release(
        &self,
        study_id: &str,
    ) -> Result<Option<(u64, u64, SignedRelease)>, StoreError> {
        self.query_opt(
            "SELECT release_no, count, signed FROM releases WHERE study_id = $1
             ORDER BY release_no DESC LIMIT 1",
            &[&study_id],
        )?
        .map(|r| {
            let no: i64 = r.try_get(0)?;
            let count: i64 = r.try_get(1)?;
            let signed = serde_json::from_str(r.try_get(2)?).map_err(corrupt("release"))?;
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
        let json = serde_json::to_string(signed).expect("release serializes");
        self.pool.transaction(|tx| {
            tx.execute(
                "INSERT INTO releases (study_id, release_no, count, signed)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&study_id, &(release_no as i64), &(count as i64), &json],
            )?;
            Ok(())
        })
    }

    fn audit(&self, after: Option<(&str, &str)>, limit: usize) -> Result<Audit, StoreError> {
        let mut c = self.pool.get()?;
        // One read-only transaction: both lists come from the same snapshot.
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let pending_batches = tx
            .query(
                "SELECT batch_id FROM batches WHERE state = 'pending' ORDER BY batch_id",
                &[],
            )?
            .iter()
            .map(|r| Ok(r.try_get::<_, i64>(0)? as u64))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (study, sub) = after.unwrap_or(("", ""));
        let limit = limit.min(i64::MAX as usize) as i64;
        let holdings = tx
            .query(
                "SELECT s.study_id, s.submission_id, s.batch_id, b.state FROM shares s
                 JOIN batches b ON b.batch_id = s.batch_id
                 WHERE (s.study_id, s.submission_id) > ($1, $2)
                 ORDER BY s.study_id, s.submission_id LIMIT $3",
                &[&study, &sub, &limit],
            )?
            .iter()
            .map(|r| {
                Ok(Holding {
                    study_id: r.try_get(0)?,
                    submission_id: r.try_get(1)?,
                    batch_id: r.try_get::<_, i64>(2)? as u64,
                    state: BatchState::parse(r.try_get(3)?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit()?;
        Ok(Audit {
            pending_batches,
            holdings,
        })
    }

    fn put_upload(&self, u: &StoredUpload, expire_before_ms: i64) -> Result<(), StoreError> {
        // Two statements, each its own transaction: uploads are independent
        // rows, and a serialisable range delete beside every insert would
        // make concurrent uploads conflict. Expired rows go first, so the
        // new one is never among them.
        let mut c = self.pool.get()?;
        c.execute(
            "DELETE FROM uploads WHERE uploaded_ms < $1",
            &[&expire_before_ms],
        )?;
        c.execute(
            "INSERT INTO uploads (submission_id, token_sha256, components, uploaded_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (submission_id, token_sha256) DO UPDATE
             SET components = excluded.components, uploaded_ms = excluded.uploaded_ms",
            &[
                &u.submission_id,
                &&u.token_sha256[..],
                &u.components,
                &u.uploaded_ms,
            ],
        )?;
        Ok(())
    }

    fn uploads_since(&self, since_ms: i64) -> Result<Vec<StoredUpload>, StoreError> {
        let rows = self.query(
            "SELECT submission_id, token_sha256, components, uploaded_ms FROM uploads
             WHERE uploaded_ms >= $1 ORDER BY uploaded_ms, submission_id",
            &[&since_ms],
        )?;
        rows.iter()
            .map(|r| {
                let token: Vec<u8> = r.try_get(1)?;
                Ok(StoredUpload {
                    submission_id: r.try_get(0)?,
                    token_sha256: token
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("upload token digest".into()))?,
                    components: r.try_get(2)?,
                    uploaded_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    fn remove_uploads(&self, keys: &[(String, [u8; 32])]) -> Result<(), StoreError> {
        let ids: Vec<&str> = keys.iter().map(|(s, _)| s.as_str()).collect();
        let tokens: Vec<&[u8]> = keys.iter().map(|(_, t)| &t[..]).collect();
        self.pool.transaction(|tx| {
            tx.execute(
                "DELETE FROM uploads u USING UNNEST($1::TEXT[], $2::BYTEA[]) AS k(sid, tok)
                 WHERE u.submission_id = k.sid AND u.token_sha256 = k.tok",
                &[&ids, &tokens],
            )?;
            Ok::<_, StoreError>(())
        })
    }
}

impl PollShareStore for PostgresStore {
    fn pin_poll(&self, spec: &PollSpec) -> Result<PollSpec, StoreError> {
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id = spec.id as i64;
        let stored: String = self.pool.transaction(|tx| {
            tx.execute(
                "INSERT INTO polls (id, spec_json) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, &json],
            )?;
            Ok::<_, StoreError>(
                tx.query_one("SELECT spec_json FROM polls WHERE id = $1", &[&id])?
                    .try_get(0)?,
            )
        })?;
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn poll(&self, id: u64) -> Result<Option<PollSpec>, StoreError> {
        self.query_opt("SELECT spec_json FROM polls WHERE id = $1", &[&(id as i64)])?
            .map(|r| {
                serde_json::from_str(r.try_get(0)?).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    fn put_message_shares(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        shares: &ShareSet,
        ttl_ms: i64,
        max_unconfirmed: usize,
    ) -> Result<PutShares, StoreError> {
        let poll = poll as i64;
        let json = encode_shares(shares);
        self.pool.transaction(|tx| {
            // Read inside the closure: a retry takes a fresh time.
            let now = now_ms();
            tx.execute(
                "DELETE FROM poll_shares WHERE NOT confirmed AND received_ms < $1",
                &[&now.saturating_sub(ttl_ms)],
            )?;
            let confirmed: Option<bool> = tx
                .query_opt(
                    "SELECT confirmed FROM poll_shares WHERE poll = $1 AND submission_id = $2",
                    &[&poll, &submission_id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            match confirmed {
                Some(true) => return Ok(PutShares::AlreadyConfirmed),
                Some(false) => {}
                None => {
                    let open: i64 = tx
                        .query_one("SELECT COUNT(*) FROM poll_shares WHERE NOT confirmed", &[])?
                        .try_get(0)?;
                    if open as usize >= max_unconfirmed {
                        // The expired ones stay dropped.
                        return Ok(PutShares::Full);
                    }
                }
            }
            tx.execute(
                "INSERT INTO poll_shares
                 (poll, submission_id, token_sha256, commitment, shares, received_ms, confirmed)
                 VALUES ($1, $2, $3, $4, $5, $6, FALSE)
                 ON CONFLICT (poll, submission_id) DO UPDATE SET
                     token_sha256 = EXCLUDED.token_sha256,
                     commitment = EXCLUDED.commitment,
                     shares = EXCLUDED.shares,
                     received_ms = EXCLUDED.received_ms,
                     confirmed = FALSE",
                &[
                    &poll,
                    &submission_id,
                    &token_sha256,
                    &commitment,
                    &json,
                    &now,
                ],
            )?;
            Ok(PutShares::Stored)
        })
    }

    fn confirm_message(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        kind: &MessageKind,
    ) -> Result<bool, StoreError> {
        let poll = poll as i64;
        self.pool.transaction(|tx| {
            let held: Option<String> = tx
                .query_opt(
                    "SELECT shares FROM poll_shares
                     WHERE poll = $1 AND submission_id = $2 AND token_sha256 = $3
                       AND commitment = $4",
                    &[&poll, &submission_id, &token_sha256, &commitment],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            match held {
                Some(json) if decode_shares(&json)?.kind == *kind => {}
                _ => return Ok(false),
            }
            tx.execute(
                "UPDATE poll_shares SET confirmed = TRUE WHERE poll = $1 AND submission_id = $2",
                &[&poll, &submission_id],
            )?;
            Ok(true)
        })
    }

    fn confirmed_shares(
        &self,
        poll: u64,
        ids: &[(String, String)],
    ) -> Result<Vec<Option<ShareSet>>, StoreError> {
        let mut c = self.pool.get()?;
        let poll = poll as i64;
        ids.iter()
            .map(|(sid, commitment)| {
                c.query_opt(
                    "SELECT shares FROM poll_shares
                     WHERE poll = $1 AND submission_id = $2 AND commitment = $3 AND confirmed",
                    &[&poll, sid, commitment],
                )?
                .map(|r| decode_shares(r.try_get(0)?))
                .transpose()
            })
            .collect()
    }

    fn put_tally(&self, poll: u64, input_sha256: &str, t: &SignedTally) -> Result<(), StoreError> {
        let json = serde_json::to_string(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let poll = poll as i64;
        self.pool.transaction(|tx| {
            tx.execute(
                "INSERT INTO poll_tallies (poll, input_sha256, signed_json)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&poll, &input_sha256, &json],
            )?;
            Ok(())
        })
    }

    fn tally(&self, poll: u64) -> Result<Option<(String, SignedTally)>, StoreError> {
        self.query_opt(
            "SELECT input_sha256, signed_json FROM poll_tallies WHERE poll = $1",
            &[&(poll as i64)],
        )?
        .map(|r| {
            let digest: String = r.try_get(0)?;
            let t = serde_json::from_str(r.try_get(1)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok((digest, t))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    //! PostgreSQL-only checks; the behaviour every backend shares is tested
    //! in store/suite.rs. They fail, never skip, without a server.
    use super::*;

    /// Two parties given one database: the second is refused before it
    /// adds or reads anything (their rows together would reconstruct
    /// every contribution).
    #[test]
    fn a_second_party_on_one_database_is_refused() {
        let db = TestDatabase::new("party_owner");
        let first = PostgresStore::open_as(&db.url, "party0").unwrap();
        first
            .put_upload(
                &StoredUpload {
                    submission_id: "a".into(),
                    token_sha256: [1; 32],
                    components: vec![0; 112],
                    uploaded_ms: 1,
                },
                0,
            )
            .unwrap();
        let e = PostgresStore::open_as(&db.url, "party1")
            .err()
            .expect("refused");
        assert!(e.to_string().contains("belongs to party0"), "{e}");
        // The owner itself opens it again.
        PostgresStore::open_as(&db.url, "party0").unwrap();
    }
    use triad_pg::TestDatabase;

    fn exec(store: &PostgresStore, sql: &str) {
        store.pool().get().unwrap().batch_execute(sql).unwrap();
    }

    #[test]
    fn migrations_apply_once_and_newer_databases_are_refused() {
        let db = TestDatabase::new("party_pg_migrations");
        let s = PostgresStore::open(&db.url).unwrap();
        assert_eq!(
            triad_pg::schema_version(s.pool()).unwrap(),
            MIGRATIONS.len() as i64
        );
        s.import_committed(
            1,
            "st",
            &[("a".into(), std::num::Wrapping(5), std::num::Wrapping(6))],
        )
        .unwrap();
        drop(s);
        // Plain CREATEs: a migration run twice would fail this open.
        let s = PostgresStore::open(&db.url).unwrap();
        assert_eq!(
            triad_pg::schema_version(s.pool()).unwrap(),
            MIGRATIONS.len() as i64
        );
        assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 1);
        let rows: i64 = s
            .pool()
            .get()
            .unwrap()
            .query_one("SELECT COUNT(*) FROM triad_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
        exec(
            &s,
            &format!("UPDATE triad_schema SET version = {}", MIGRATIONS.len() + 1),
        );
        drop(s);
        assert!(matches!(
            PostgresStore::open(&db.url),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// The canonical share order is byte order whatever the server's
    /// default collation: every ordered text column says `COLLATE "C"`.
    #[test]
    fn ordered_text_columns_compare_bytes() {
        let db = TestDatabase::new("party_pg_collation");
        let s = PostgresStore::open(&db.url).unwrap();
        let rows = triad_pg::column_collations(
            s.pool(),
            "column_name IN ('study_id', 'submission_id', 'nullifier')
             OR (table_name = 'studies' AND column_name = 'id')",
        )
        .unwrap();
        // studies.id; study_id of batches, shares, nullifiers, releases;
        // submission_id of shares, nullifiers, poll_shares, uploads;
        // nullifier.
        assert_eq!(rows.len(), 10);
        for (t, c, coll) in rows {
            assert_eq!(coll.as_deref(), Some("C"), "{t}.{c}");
        }
    }

    /// A serialisation failure read through [`StoreError`] is a conflict
    /// (so [`Pool::transaction`] retries it); other database errors are not.
    #[test]
    fn serialisation_failures_are_conflicts() {
        let db = TestDatabase::new("party_pg_conflict");
        let s = PostgresStore::open(&db.url).unwrap();
        let (mut c1, mut c2) = (s.pool().get().unwrap(), s.pool().get().unwrap());
        let begin = |c: &mut postgres::Client| {
            c.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .unwrap()
        };
        begin(&mut c1);
        begin(&mut c2);
        // Write skew: each reads what the other writes.
        for (c, id) in [(&mut c1, 1i64), (&mut c2, 2i64)] {
            c.query("SELECT COUNT(*) FROM polls", &[]).unwrap();
            c.execute(
                "INSERT INTO polls (id, spec_json) VALUES ($1, '{}')",
                &[&id],
            )
            .unwrap();
        }
        c1.batch_execute("COMMIT").unwrap();
        let e: StoreError = c2.batch_execute("COMMIT").unwrap_err().into();
        assert!(e.is_conflict(), "{e}");
        drop((c1, c2));

        let dup: Result<(), StoreError> = s.pool().transaction(|tx| {
            tx.execute("INSERT INTO polls (id, spec_json) VALUES (1, '{}')", &[])?;
            Ok(())
        });
        let e = dup.unwrap_err();
        assert!(matches!(e, StoreError::Backend(_)), "{e}");
        assert!(!e.is_conflict());
        assert!(!StoreError::UnknownBatch(1).is_conflict());
        let url: StoreError = PgError::Url("x".into()).into();
        assert!(!url.is_conflict());
    }
}
