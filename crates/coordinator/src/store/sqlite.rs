//! [`CoordinatorStore`] on SQLite: WAL with `synchronous=FULL`, versioned
//! migrations, one transaction per call that changes anything.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use triad_wire::messages::{
    BatchItem, Decision, RejectReason, StudyInfo, StudyParams, SubmissionState, SubmissionStatus,
};
use triad_wire::receipt::SignedReceipt;

mod directory;
mod polls;

use super::{now_ms, parse_reason, parse_status, reason_str};
use super::{
    CommittingBatch, CoordinatorStore, FormedBatch, InsertRefused, NewSubmission, ReleaseStatus,
    StoreError, SubmissionRow,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    params_json TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
-- seq orders admission: batches take submissions FIFO.
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    study TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    commitment TEXT NOT NULL,
    nullifier TEXT NOT NULL,
    attestation TEXT NOT NULL,    -- JSON, forwarded to the parties in the batch
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    queued_ms INTEGER,
    batch_id INTEGER
);
CREATE INDEX IF NOT EXISTS submissions_status ON submissions(status, study, seq);
-- A nullifier is held while its submission is accepted or in flight;
-- rejection deletes the row so the provider may try again.
CREATE TABLE IF NOT EXISTS nullifiers (
    study TEXT NOT NULL,
    nullifier TEXT NOT NULL,
    submission_id TEXT NOT NULL UNIQUE,
    PRIMARY KEY (study, nullifier)
);
-- Every attestation signature ever admitted; never deleted.
CREATE TABLE IF NOT EXISTS seen_signatures (
    signature TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study TEXT NOT NULL,
    state TEXT NOT NULL,          -- preparing | committing | done | aborted
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    submission_id TEXT NOT NULL,
    verdict TEXT,                 -- set with the commit decision
    PRIMARY KEY (batch_id, pos)
);
-- The created_at chosen for a release number, kept across retries so the
-- parties that already signed it and those that did not sign the same bytes.
CREATE TABLE IF NOT EXISTS release_attempts (
    study TEXT NOT NULL,
    release_no INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    as_of_batch INTEGER NOT NULL,
    PRIMARY KEY (study, release_no)
);
CREATE TABLE IF NOT EXISTS releases (
    study TEXT NOT NULL,
    release_no INTEGER NOT NULL,
    count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    release_json TEXT NOT NULL,
    PRIMARY KEY (study, release_no)
);
";

/// [`CoordinatorStore`] in one SQLite file (`coordinator.sqlite`), one
/// connection behind a mutex: with `BEGIN IMMEDIATE` it serialises
/// admissions, so of two submissions with one nullifier exactly one commits.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Rejects one submission and frees its nullifier.
fn reject(tx: &Connection, submission: &str, reason: RejectReason) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE submissions SET status='rejected', reason=?2, batch_id=NULL WHERE id=?1",
        params![submission, reason_str(reason)],
    )?;
    tx.execute(
        "DELETE FROM nullifiers WHERE submission_id=?1",
        params![submission],
    )?;
    Ok(())
}

/// `Ok` if `batch` is in one of `allowed`, else [`StoreError::BatchState`].
fn expect_state(
    conn: &Connection,
    batch: u64,
    allowed: &[&str],
    refused: &'static str,
) -> Result<(), StoreError> {
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM batches WHERE id=?1",
            params![batch as i64],
            |r| r.get(0),
        )
        .optional()?;
    match state {
        Some(s) if allowed.contains(&s.as_str()) => Ok(()),
        s => Err(StoreError::BatchState {
            batch,
            state: s.unwrap_or_else(|| "unknown".into()),
            refused,
        }),
    }
}

fn load_study(conn: &Connection, id: &str) -> Result<Option<StudyInfo>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT params_json, created_at FROM studies WHERE id=?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((json, created_at)) = row else {
        return Ok(None);
    };
    let params: StudyParams = serde_json::from_str(&json)?;
    // A counter kept by `finish_commit`: admission and every tick read it,
    // so they must not scan a study's submissions.
    let contributions: i64 = conn.query_row(
        "SELECT accepted FROM studies WHERE id=?1",
        params![id],
        |r| r.get(0),
    )?;
    let releases: i64 = conn.query_row(
        "SELECT COUNT(*) FROM releases WHERE study=?1",
        params![id],
        |r| r.get(0),
    )?;
    let last: Option<(i64, i64)> = conn
        .query_row(
            "SELECT count, created_at FROM releases WHERE study=?1
             ORDER BY release_no DESC LIMIT 1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let progress = triad_wire::study::release_progress(
        &params,
        contributions as u64,
        last.map(|(c, t)| (c as u64, t as u64)),
        triad_wire::unix_now(),
    );
    Ok(Some(StudyInfo {
        params,
        created_at: created_at as u64,
        contributions: contributions as u64,
        releases: releases as u64,
        directory_id: directory::directory_id(conn, crate::store::directory::Kind::Study, id)?,
        progress: Some(progress),
    }))
}

/// Schema changes after the first, in order; `PRAGMA user_version` counts
/// those applied. Each runs in one transaction with its version bump.
const MIGRATIONS: &[&str] = &[
    // 1: the base schema (idempotent, so databases made before versioning
    // pass through it unchanged).
    SCHEMA,
    // 2: a per-study counter of accepted submissions.
    "ALTER TABLE studies ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
     UPDATE studies SET accepted =
         (SELECT COUNT(*) FROM submissions s WHERE s.study = studies.id AND s.status = 'accepted');",
    // 3: polls (store/sqlite/polls.rs).
    polls::POLL_SCHEMA,
    // 4: deactivations and re-keys in the poll log.
    polls::REKEY_SCHEMA,
    // 5: directory entries of studies and polls (store/sqlite/directory.rs).
    directory::DIRECTORY_SCHEMA,
    // 6: the digest of the share commitments the parties signed receipts
    // for, set by "ready" (submissions queued before it have none: the
    // parties then find no shares under it and reject them as missing).
    "ALTER TABLE submissions ADD COLUMN shares_digest TEXT NOT NULL DEFAULT '';",
    // 7: the parties' signed receipts (JSON), forwarded with the batch as
    // evidence against a party that claims not to hold the shares.
    "ALTER TABLE submissions ADD COLUMN receipts TEXT NOT NULL DEFAULT '[]';",
];

/// Brings the database to the latest schema version.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // The version is read inside each migration's write transaction, so
    // two processes opening an old file at once apply each step once.
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if done < 0 || done as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {done} (this coordinator knows up to {})",
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

impl SqliteStore {
    /// Opens (or creates) `<dir>/coordinator.sqlite`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("coordinator.sqlite");
        triad_files::private_file(&path)?;
        let mut conn = Connection::open(path)?;
        // WAL + FULL: a committed decision survives power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs arbitrary SQL in tests.
    #[cfg(test)]
    pub fn test_query_i64(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

impl CoordinatorStore for SqliteStore {
    fn create_study(
        &self,
        info: StudyInfo,
        entry: &super::DirectoryEntry,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&info.params)?;
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO studies (id, params_json, created_at) VALUES (?1, ?2, ?3)",
            params![info.params.id, json, info.created_at as i64],
        )?;
        if n != 1 {
            return Ok(false);
        }
        directory::insert_entry(&tx, entry)?;
        tx.commit()?;
        Ok(true)
    }

    fn study(&self, id: &str) -> Result<Option<StudyInfo>, StoreError> {
        load_study(&self.conn(), id)
    }

    fn studies(&self) -> Result<Vec<StudyInfo>, StoreError> {
        let c = &mut *self.conn();
        let ids: Vec<String> = c
            .prepare("SELECT id FROM studies ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(load_study(c, &id)?);
        }
        Ok(out)
    }

    fn insert_submission(
        &self,
        s: &NewSubmission,
        max_queue: usize,
        now: u64,
    ) -> Result<(), InsertRefused> {
        let c = &mut *self.conn();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let r = (|| {
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM studies WHERE id=?1", params![s.study], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Ok(Err(InsertRefused::UnknownStudy));
            }
            let seen = tx.execute(
                "INSERT OR IGNORE INTO seen_signatures (signature, seen_at) VALUES (?1, ?2)",
                params![s.signature, now as i64],
            )?;
            if seen == 0 {
                return Ok(Err(InsertRefused::Replayed));
            }
            let fresh = tx.execute(
                "INSERT OR IGNORE INTO nullifiers (study, nullifier, submission_id)
                 VALUES (?1, ?2, ?3)",
                params![s.study, s.nullifier, s.id],
            )?;
            if fresh == 0 {
                return Ok(Err(InsertRefused::NullifierInUse));
            }
            let in_flight: i64 = tx.query_row(
                "SELECT COUNT(*) FROM submissions
                 WHERE status IN ('awaiting_shares','queued','processing')",
                [],
                |r| r.get(0),
            )?;
            if in_flight as usize >= max_queue {
                return Ok(Err(InsertRefused::QueueFull));
            }
            tx.execute(
                "INSERT INTO submissions
                 (id, study, token_sha256, commitment, nullifier, attestation, status,
                  created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'awaiting_shares', ?7)",
                params![
                    s.id,
                    s.study,
                    s.token_sha256,
                    s.commitment,
                    s.nullifier,
                    s.attestation_json,
                    now_ms()
                ],
            )?;
            Ok::<_, StoreError>(Ok(()))
        })();
        match r {
            Ok(Ok(())) => {
                tx.commit().map_err(StoreError::from)?;
                Ok(())
            }
            // Dropping the transaction rolls back: a refusal writes nothing.
            Ok(Err(refused)) => Err(refused),
            Err(e) => Err(e.into()),
        }
    }

    fn find_admission(
        &self,
        study: &str,
        nullifier: &str,
        token_sha256: &str,
    ) -> Result<Option<String>, StoreError> {
        let c = &mut *self.conn();
        Ok(c.query_row(
            "SELECT s.id FROM nullifiers n JOIN submissions s ON s.id = n.submission_id
             WHERE n.study = ?1 AND n.nullifier = ?2 AND s.token_sha256 = ?3
               AND s.status = 'awaiting_shares'",
            params![study, nullifier, token_sha256],
            |r| r.get(0),
        )
        .optional()?)
    }

    fn submission(&self, id: &str) -> Result<Option<SubmissionRow>, StoreError> {
        let c = &mut *self.conn();
        type Row = (String, String, Option<String>, String, Option<i64>);
        let row: Option<Row> = c
            .query_row(
                "SELECT study, status, reason, token_sha256, batch_id
                 FROM submissions WHERE id=?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((study, status, reason, token_sha256, batch_id)) = row else {
            return Ok(None);
        };
        let status = parse_status(&status)?;
        Ok(Some(SubmissionRow {
            state: SubmissionState {
                submission_id: id.to_string(),
                study_id: study,
                status,
                reason: reason.as_deref().map(parse_reason).transpose()?,
                batch_id: batch_id
                    .filter(|_| status == SubmissionStatus::Accepted)
                    .map(|b| b as u64),
            },
            token_sha256,
        }))
    }

    fn mark_ready(
        &self,
        id: &str,
        shares_digest: &str,
        receipts: &[SignedReceipt],
    ) -> Result<bool, StoreError> {
        let receipts = serde_json::to_string(receipts)?;
        let c = &mut *self.conn();
        let n = c.execute(
            "UPDATE submissions SET status='queued', queued_ms=?2, shares_digest=?3, receipts=?4
             WHERE id=?1 AND status='awaiting_shares'",
            params![id, now_ms(), shares_digest, receipts],
        )?;
        Ok(n == 1)
    }

    fn expire_awaiting(&self, timeout_ms: i64) -> Result<usize, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction()?;
        let ids: Vec<String> = tx
            .prepare(
                "SELECT id FROM submissions WHERE status='awaiting_shares' AND created_ms < ?1",
            )?
            .query_map(params![now_ms() - timeout_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &ids {
            reject(&tx, id, RejectReason::SharesTimeout)?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    fn queued_summary(&self) -> Result<Vec<(String, usize, i64)>, StoreError> {
        let c = &mut *self.conn();
        let v = c
            .prepare(
                "SELECT study, COUNT(*), MIN(queued_ms) FROM submissions
                 WHERE status='queued' GROUP BY study ORDER BY MIN(seq)",
            )?
            .query_map([], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as usize, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        Ok(v)
    }

    fn form_batch(&self, study: &str, max: usize) -> Result<Option<FormedBatch>, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(info) = load_study(&tx, study)? else {
            return Ok(None);
        };
        let items: Vec<BatchItem> = tx
            .prepare(
                "SELECT id, token_sha256, commitment, attestation, shares_digest, receipts
                 FROM submissions WHERE status='queued' AND study=?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![study, max as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .map(|row| {
                let (submission_id, token_sha256, commitment, json, shares_digest, receipts) = row?;
                let attestation = triad_attestation::Attestation::from_json(&json)
                    .map_err(|e| StoreError::Corrupt(format!("stored attestation: {e}")))?;
                Ok(BatchItem {
                    submission_id,
                    token_sha256,
                    commitment,
                    shares_digest,
                    attestation,
                    receipts: serde_json::from_str(&receipts)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        if items.is_empty() {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO batches (study, state, created_at) VALUES (?1, 'preparing', ?2)",
            params![study, triad_wire::unix_now() as i64],
        )?;
        let id = tx.last_insert_rowid();
        for (pos, it) in items.iter().enumerate() {
            tx.execute(
                "INSERT INTO batch_items (batch_id, pos, submission_id) VALUES (?1, ?2, ?3)",
                params![id, pos as i64, it.submission_id],
            )?;
            tx.execute(
                "UPDATE submissions SET status='processing', batch_id=?2 WHERE id=?1",
                params![it.submission_id, id],
            )?;
        }
        tx.commit()?;
        Ok(Some(FormedBatch {
            id: id as u64,
            study: info.params,
            items,
        }))
    }

    fn decide_commit(
        &self,
        batch: u64,
        verdicts: &[Option<RejectReason>],
    ) -> Result<(), StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let moved = tx.execute(
            "UPDATE batches SET state='committing' WHERE id=?1 AND state='preparing'",
            params![batch as i64],
        )?;
        if moved == 0 {
            // Logged before (a retry): the verdicts stay as decided.
            return expect_state(&tx, batch, &["committing", "done"], "no commit decision");
        }
        for (pos, v) in verdicts.iter().enumerate() {
            tx.execute(
                "UPDATE batch_items SET verdict=?3 WHERE batch_id=?1 AND pos=?2",
                params![batch as i64, pos as i64, v.map(reason_str)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn finish_commit(&self, batch: u64) -> Result<(), StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let moved = tx.execute(
            "UPDATE batches SET state='done' WHERE id=?1 AND state='committing'",
            params![batch as i64],
        )?;
        if moved == 0 {
            // Finished before (a retry) is fine; anything else is refused.
            return expect_state(&tx, batch, &["done"], "verdicts not applied");
        }
        let items: Vec<(String, Option<String>)> = tx
            .prepare("SELECT submission_id, verdict FROM batch_items WHERE batch_id=?1")?
            .query_map(params![batch as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut accepted = 0i64;
        for (sid, verdict) in items {
            match verdict {
                None => {
                    accepted += tx.execute(
                        "UPDATE submissions SET status='accepted'
                         WHERE id=?1 AND status != 'accepted'",
                        params![sid],
                    )? as i64;
                }
                Some(r) => reject(&tx, &sid, parse_reason(&r)?)?,
            }
        }
        tx.execute(
            "UPDATE studies SET accepted = accepted + ?2
             WHERE id = (SELECT study FROM batches WHERE id = ?1)",
            params![batch as i64, accepted],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn abort_batch(&self, batch: u64, max_attempts: u32) -> Result<(), StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE batches SET state='aborted' WHERE id=?1 AND state='preparing'",
            params![batch as i64],
        )?;
        if n == 0 {
            // Aborted before (a retry) is fine; past the point of no return
            // it is refused.
            return expect_state(
                &tx,
                batch,
                &["aborted"],
                "no abort after the commit decision",
            );
        }
        {
            let items: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT s.id, s.attempts FROM batch_items b JOIN submissions s
                     ON s.id = b.submission_id WHERE b.batch_id=?1",
                )?
                .query_map(params![batch as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (sid, attempts) in items {
                let attempts = attempts + 1;
                if attempts >= i64::from(max_attempts) {
                    tx.execute(
                        "UPDATE submissions SET attempts=?2 WHERE id=?1",
                        params![sid, attempts],
                    )?;
                    reject(&tx, &sid, RejectReason::BatchFailed)?;
                } else {
                    tx.execute(
                        "UPDATE submissions SET status='queued', attempts=?2, batch_id=NULL
                         WHERE id=?1",
                        params![sid, attempts],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn unfinished_batches(&self) -> Result<(Vec<u64>, Vec<CommittingBatch>), StoreError> {
        let c = &mut *self.conn();
        let get = |state: &str| -> Result<Vec<u64>, StoreError> {
            Ok(
                c.prepare("SELECT id FROM batches WHERE state=?1 ORDER BY id")?
                    .query_map(params![state], |r| r.get::<_, i64>(0))?
                    .map(|r| r.map(|v| v as u64))
                    .collect::<Result<_, _>>()?,
            )
        };
        let preparing = get("preparing")?;
        let committing = get("committing")?
            .into_iter()
            .map(|id| CommittingBatch { id })
            .collect();
        Ok((preparing, committing))
    }

    fn batch_decision(&self, batch: u64) -> Result<Decision, StoreError> {
        let c = &mut *self.conn();
        let state: Option<String> = c
            .query_row(
                "SELECT state FROM batches WHERE id=?1",
                params![batch as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match state.as_deref() {
            Some("preparing") => Decision::Pending,
            Some("committing") | Some("done") => Decision::Commit,
            _ => Decision::Abort,
        })
    }

    fn release_status(&self) -> Result<Vec<ReleaseStatus>, StoreError> {
        let c = &mut *self.conn();
        let ids: Vec<String> = c
            .prepare("SELECT id FROM studies ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            let Some(info) = load_study(c, &id)? else {
                continue;
            };
            let last: Option<(i64, i64, i64)> = c
                .query_row(
                    "SELECT release_no, count, created_at FROM releases WHERE study=?1
                     ORDER BY release_no DESC LIMIT 1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            out.push(ReleaseStatus {
                study: info.params,
                accepted: info.contributions,
                last_release_no: last.map_or(0, |l| l.0 as u64),
                last_count: last.map_or(0, |l| l.1 as u64),
                last_created_at: last.map(|l| l.2 as u64),
            });
        }
        Ok(out)
    }

    fn release_attempt(
        &self,
        study: &str,
        release_no: u64,
        now: u64,
    ) -> Result<(u64, u64), StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO release_attempts (study, release_no, created_at, as_of_batch)
             VALUES (?1, ?2, ?3,
                     (SELECT COALESCE(MAX(id), 0) FROM batches WHERE state = 'done'))",
            params![study, release_no as i64, now as i64],
        )?;
        let (t, b): (i64, i64) = tx.query_row(
            "SELECT created_at, as_of_batch FROM release_attempts
             WHERE study = ?1 AND release_no = ?2",
            params![study, release_no as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.commit()?;
        Ok((t as u64, b as u64))
    }

    fn record_release(
        &self,
        study: &str,
        release_no: u64,
        count: u64,
        created_at: u64,
        release_json: &str,
    ) -> Result<(), StoreError> {
        let c = &mut *self.conn();
        c.execute(
            "INSERT INTO releases (study, release_no, count, created_at, release_json)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                study,
                release_no as i64,
                count as i64,
                created_at as i64,
                release_json
            ],
        )?;
        Ok(())
    }

    fn row_counts(&self) -> Result<Vec<i64>, StoreError> {
        let c = self.conn();
        let mut v = Vec::new();
        for t in [
            "studies",
            "submissions",
            "nullifiers",
            "seen_signatures",
            "batches",
            "releases",
        ] {
            v.push(c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// A database written before schema versions existed keeps its data
    /// and gets the accepted counter filled from its submissions.
    #[test]
    fn an_unversioned_database_is_migrated() {
        let dir = std::env::temp_dir().join(format!("triad-coord-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let c = Connection::open(dir.join("coordinator.sqlite")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            let params = serde_json::json!({
                "id": "s", "name": "s",
                "data_spec": {"field": "v", "scale": 0, "account_field": "uid"},
                "source": {"server_name": "127.0.0.1"},
                "min_cohort": 10, "min_new": 10, "release_interval_secs": 60,
                "stats": {"quantiles": [], "histogram_bounds": []}
            });
            c.execute(
                "INSERT INTO studies (id, params_json, created_at) VALUES ('s', ?1, 1)",
                params![params.to_string()],
            )
            .unwrap();
            for (i, status) in ["accepted", "accepted", "queued", "accepted"]
                .iter()
                .enumerate()
            {
                c.execute(
                    "INSERT INTO submissions (id, study, token_sha256, commitment, nullifier,
                     attestation, status, created_ms) VALUES (?1, 's', '', '', ?1, '', ?2, 0)",
                    params![format!("sub{i}"), status],
                )
                .unwrap();
            }
        }
        let db = SqliteStore::open(&dir).unwrap();
        assert_eq!(db.study("s").unwrap().unwrap().contributions, 3);
        assert_eq!(
            db.test_query_i64("PRAGMA user_version"),
            MIGRATIONS.len() as i64
        );
        drop(db);
        // Opening again applies nothing twice.
        let db = SqliteStore::open(&dir).unwrap();
        assert_eq!(db.study("s").unwrap().unwrap().contributions, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
