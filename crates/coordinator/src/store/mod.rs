//! The coordinator's durable state behind one trait, [`CoordinatorStore`]:
//! studies, submissions, nullifiers, seen attestation signatures, batches
//! and releases. State lives here and nowhere else, so a restart resumes
//! from the store.
//!
//! What every implementation must guarantee (the batch commit protocol and
//! admission rest on it):
//! - admission ([`CoordinatorStore::insert_submission`]) reserves the replay
//!   record, the nullifier and a queue slot and writes the submission in one
//!   serialisable transaction: of two submissions with one nullifier exactly
//!   one commits, and a refusal writes nothing;
//! - a batch is formed durably before any party hears of it, and the commit
//!   decision ([`CoordinatorStore::decide_commit`]) is durable before anyone
//!   is told (the point of no return);
//! - every call that returns `Ok` after a change has made it durable.
//!
//! The SQLite implementation is [`sqlite::SqliteStore`] (the default); the
//! PostgreSQL one is [`postgres::PostgresStore`], with the same guarantees
//! from serialisable transactions retried on conflict. One test suite
//! (`store/suite.rs`) runs against both. Trait methods block; services
//! hold a [`Store`], which runs them on the blocking pool.

pub mod directory;
pub mod polls;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use std::sync::Arc;

use triad_wire::messages::{
    BatchItem, Decision, RejectReason, StudyInfo, StudyParams, SubmissionState, SubmissionStatus,
};
use triad_wire::receipt::SignedReceipt;

pub use directory::{DirectoryEntry, DirectoryStore};
pub use polls::{LogOutcome, MessageRow, NewSignup, NewTicket, PollStore, SignupRefused};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Why the store could not answer: the operator's problem (disk, database
/// server, a corrupt row), never the caller's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored value {0:?} is not valid")]
    Corrupt(String),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
    /// A batch is not in the state the call needs (e.g. a commit of an
    /// aborted batch): a bug of the caller's, refused with nothing written.
    #[error("batch {batch} is {state}: {refused}")]
    BatchState {
        batch: u64,
        state: String,
        refused: &'static str,
    },
}

/// What admission inserts.
#[derive(Clone, Debug)]
pub struct NewSubmission {
    pub id: String,
    pub study: String,
    pub token_sha256: String,
    pub commitment: String,
    pub nullifier: String,
    pub signature: String,
    pub attestation_json: String,
}

/// Why the admission transaction refused (no row written).
#[derive(Debug, thiserror::Error)]
pub enum InsertRefused {
    #[error("unknown study")]
    UnknownStudy,
    #[error("attestation already seen")]
    Replayed,
    #[error("nullifier already in use")]
    NullifierInUse,
    #[error("admission queue full")]
    QueueFull,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A submission as the ready handler needs it.
#[derive(Clone, Debug)]
pub struct SubmissionRow {
    pub state: SubmissionState,
    pub token_sha256: String,
}

/// A formed batch.
#[derive(Clone, Debug)]
pub struct FormedBatch {
    pub id: u64,
    pub study: StudyParams,
    pub items: Vec<BatchItem>,
}

/// A batch whose commit decision is logged but not yet acknowledged by all.
#[derive(Clone, Debug)]
pub struct CommittingBatch {
    pub id: u64,
}

/// Counters a release decision needs.
#[derive(Clone, Debug)]
pub struct ReleaseStatus {
    pub study: StudyParams,
    pub accepted: u64,
    pub last_release_no: u64,
    pub last_count: u64,
    pub last_created_at: Option<u64>,
}

// Stored forms both backends share.

fn parse_status(s: &str) -> Result<SubmissionStatus, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| StoreError::Corrupt(s.into()))
}

fn reason_str(r: RejectReason) -> String {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{r:?}"),
    }
}

fn parse_reason(s: &str) -> Result<RejectReason, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| StoreError::Corrupt(s.into()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The coordinator's storage. See the module documentation for the
/// guarantees every implementation gives.
pub trait CoordinatorStore:
    polls::PollStore + directory::DirectoryStore + Send + Sync + 'static
{
    /// Inserts a study and its directory entry in one transaction;
    /// `Ok(false)` (and nothing written) if the id exists.
    fn create_study(&self, info: StudyInfo, entry: &DirectoryEntry) -> Result<bool, StoreError>;

    fn study(&self, id: &str) -> Result<Option<StudyInfo>, StoreError>;

    fn studies(&self) -> Result<Vec<StudyInfo>, StoreError>;

    /// The admission transaction: replay record, nullifier reservation,
    /// queue bound (`max_queue` submissions in flight) and the submission
    /// row, all or nothing.
    fn insert_submission(
        &self,
        s: &NewSubmission,
        max_queue: usize,
        now: u64,
    ) -> Result<(), InsertRefused>;

    /// The submission of this account (nullifier) in `study` that still
    /// awaits its shares and whose token hashes to `token_sha256`, if any.
    fn find_admission(
        &self,
        study: &str,
        nullifier: &str,
        token_sha256: &str,
    ) -> Result<Option<String>, StoreError>;

    fn submission(&self, id: &str) -> Result<Option<SubmissionRow>, StoreError>;

    /// awaiting_shares → queued, recording the digest of the share
    /// commitments the parties signed receipts for and the receipts
    /// themselves (forwarded in the batch); `Ok(false)` if it was in
    /// another state.
    fn mark_ready(
        &self,
        id: &str,
        shares_digest: &str,
        receipts: &[SignedReceipt],
    ) -> Result<bool, StoreError>;

    /// Rejects submissions that waited for shares longer than `timeout_ms`
    /// and frees their nullifiers; returns how many.
    fn expire_awaiting(&self, timeout_ms: i64) -> Result<usize, StoreError>;

    /// Per study with queued submissions: (study, queued count, oldest
    /// queued time in ms), oldest study first.
    fn queued_summary(&self) -> Result<Vec<(String, usize, i64)>, StoreError>;

    /// Takes up to `max` queued submissions of `study` in admission order
    /// into a new batch (state preparing), durably, before any party hears of it.
    fn form_batch(&self, study: &str, max: usize) -> Result<Option<FormedBatch>, StoreError>;

    /// Logs the commit decision and the verdicts (the point of no return).
    fn decide_commit(
        &self,
        batch: u64,
        verdicts: &[Option<RejectReason>],
    ) -> Result<(), StoreError>;

    /// All three parties acked the commit: apply the verdicts.
    fn finish_commit(&self, batch: u64) -> Result<(), StoreError>;

    /// Logs an abort: submissions go back to the queue, or are rejected
    /// once they failed `max_attempts` batches.
    fn abort_batch(&self, batch: u64, max_attempts: u32) -> Result<(), StoreError>;

    /// Batches a restart must settle: (preparing ids, committing ids).
    fn unfinished_batches(&self) -> Result<(Vec<u64>, Vec<CommittingBatch>), StoreError>;

    /// The decision a party recovering a batch gets; unknown ids are
    /// presumed aborted.
    fn batch_decision(&self, batch: u64) -> Result<Decision, StoreError>;

    /// Per study, the counters a release decision needs.
    fn release_status(&self) -> Result<Vec<ReleaseStatus>, StoreError>;

    /// `(created_at, as_of_batch)` of release `release_no`: `now` and the
    /// last finished batch on the first attempt, the same on every retry,
    /// so every party signs the same document over the same input set.
    fn release_attempt(
        &self,
        study: &str,
        release_no: u64,
        now: u64,
    ) -> Result<(u64, u64), StoreError>;

    fn record_release(
        &self,
        study: &str,
        release_no: u64,
        count: u64,
        created_at: u64,
        release_json: &str,
    ) -> Result<(), StoreError>;

    /// Row counts of studies, submissions, nullifiers, seen signatures,
    /// batches and releases, in that order: what tests and the probe compare
    /// to prove that a refusal wrote nothing.
    fn row_counts(&self) -> Result<Vec<i64>, StoreError>;
}

/// The handle services hold: a shared [`CoordinatorStore`] whose blocking
/// calls run on tokio's blocking pool.
#[derive(Clone)]
pub struct Store(Arc<dyn CoordinatorStore>);

impl Store {
    pub fn new(inner: impl CoordinatorStore) -> Self {
        Self(Arc::new(inner))
    }

    /// Opens (or creates) the default SQLite store, `<dir>/coordinator.sqlite`.
    pub fn open_sqlite(dir: &std::path::Path) -> Result<Self, StoreError> {
        Ok(Self::new(SqliteStore::open(dir)?))
    }

    /// Connects to the PostgreSQL database at `url` and migrates it.
    /// Blocks (it connects and runs migrations): async callers run it on
    /// the blocking pool (`tokio::task::spawn_blocking`).
    pub fn open_postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(PostgresStore::open(url)?))
    }

    pub(crate) async fn run<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn CoordinatorStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            triad_wire::metrics::timed(
                "triad_store_seconds",
                "Store call durations",
                &[("service", "coordinator")],
                || f(inner.as_ref()),
            )
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub async fn create_study(
        &self,
        info: StudyInfo,
        entry: DirectoryEntry,
    ) -> Result<bool, StoreError> {
        self.run(move |s| s.create_study(info, &entry)).await
    }

    pub async fn study(&self, id: String) -> Result<Option<StudyInfo>, StoreError> {
        self.run(move |s| s.study(&id)).await
    }

    pub async fn studies(&self) -> Result<Vec<StudyInfo>, StoreError> {
        self.run(|s| s.studies()).await
    }

    pub async fn find_admission(
        &self,
        study: String,
        nullifier: String,
        token_sha256: String,
    ) -> Result<Option<String>, StoreError> {
        self.run(move |s| s.find_admission(&study, &nullifier, &token_sha256))
            .await
    }

    pub async fn submission(&self, id: String) -> Result<Option<SubmissionRow>, StoreError> {
        self.run(move |s| s.submission(&id)).await
    }

    pub async fn mark_ready(
        &self,
        id: String,
        shares_digest: String,
        receipts: Vec<SignedReceipt>,
    ) -> Result<bool, StoreError> {
        self.run(move |s| s.mark_ready(&id, &shares_digest, &receipts))
            .await
    }

    pub async fn expire_awaiting(&self, timeout_ms: i64) -> Result<usize, StoreError> {
        self.run(move |s| s.expire_awaiting(timeout_ms)).await
    }

    pub async fn queued_summary(&self) -> Result<Vec<(String, usize, i64)>, StoreError> {
        self.run(|s| s.queued_summary()).await
    }

    pub async fn form_batch(
        &self,
        study: String,
        max: usize,
    ) -> Result<Option<FormedBatch>, StoreError> {
        self.run(move |s| s.form_batch(&study, max)).await
    }

    pub async fn decide_commit(
        &self,
        batch: u64,
        verdicts: Vec<Option<RejectReason>>,
    ) -> Result<(), StoreError> {
        self.run(move |s| s.decide_commit(batch, &verdicts)).await
    }

    pub async fn finish_commit(&self, batch: u64) -> Result<(), StoreError> {
        self.run(move |s| s.finish_commit(batch)).await
    }

    pub async fn abort_batch(&self, batch: u64, max_attempts: u32) -> Result<(), StoreError> {
        self.run(move |s| s.abort_batch(batch, max_attempts)).await
    }

    pub async fn unfinished_batches(&self) -> Result<(Vec<u64>, Vec<CommittingBatch>), StoreError> {
        self.run(|s| s.unfinished_batches()).await
    }

    pub async fn batch_decision(&self, batch: u64) -> Result<Decision, StoreError> {
        self.run(move |s| s.batch_decision(batch)).await
    }

    pub async fn release_status(&self) -> Result<Vec<ReleaseStatus>, StoreError> {
        self.run(|s| s.release_status()).await
    }

    pub async fn release_attempt(
        &self,
        study: String,
        release_no: u64,
        now: u64,
    ) -> Result<(u64, u64), StoreError> {
        self.run(move |s| s.release_attempt(&study, release_no, now))
            .await
    }

    pub async fn record_release(
        &self,
        study: String,
        release_no: u64,
        count: u64,
        created_at: u64,
        release_json: String,
    ) -> Result<(), StoreError> {
        self.run(move |s| s.record_release(&study, release_no, count, created_at, &release_json))
            .await
    }

    pub async fn row_counts(&self) -> Result<Vec<i64>, StoreError> {
        self.run(|s| s.row_counts()).await
    }

    pub async fn insert_submission(
        &self,
        sub: NewSubmission,
        max_queue: usize,
        now: u64,
    ) -> Result<(), InsertRefused> {
        self.run(move |s| s.insert_submission(&sub, max_queue, now))
            .await
    }
}
