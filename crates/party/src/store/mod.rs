//! The party's durable state behind one trait, [`PartyStore`]: pinned
//! studies, batches with their state, share components, this party's own
//! nullifiers and its signed releases.
//!
//! What every implementation must guarantee (the batch commit protocol and
//! the "no data loss" rule rest on it):
//! - a batch's row, its shares and its nullifiers are written in one
//!   transaction ([`PartyStore::put_pending`]): a crash leaves all or nothing;
//! - `commit` and `abort` are single transactions, idempotent, and an abort
//!   of an unknown batch is recorded, so a late prepare cannot store it;
//! - every call that returns `Ok` after a change has made it durable;
//! - statistics read committed batches only;
//! - a provider's upload is durable before the party signs its receipt
//!   ([`PartyStore::put_upload`]): a receipt acknowledges the shares, so a
//!   party killed after signing still holds them when it restarts.
//!
//! The SQLite implementation is [`sqlite::SqliteStore`] (the default);
//! PostgreSQL is the second backend, [`postgres::PostgresStore`], with the
//! same guarantees. One test suite (`suite.rs`) runs against both. The
//! methods are blocking:
//! callers on the async runtime go through `tokio::task::spawn_blocking`.

pub mod polls;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod suite;

use triad_mpc::{Shares, Z128};
use triad_wire::messages::{RejectReason, StudyParams};
use triad_wire::SignedRelease;

pub use polls::{PollShareStore, PutShares};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Why the store could not answer. `Backend` and `Io` are the operator's
/// problem (disk, database server); `Corrupt` means stored data no longer
/// parses; `UnknownBatch` is the caller's (commit of a batch never prepared).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("no batch {0} was prepared here")]
    UnknownBatch(u64),
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Pending,
    Committed,
    Aborted,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "committed" => Self::Committed,
            "aborted" => Self::Aborted,
            _ => return Err(StoreError::Corrupt(format!("batch state {s:?}"))),
        })
    }
}

/// A stored batch: its state, the hash of the prepare request and the
/// verdicts it produced (so a repeated prepare gets the same answer).
#[derive(Clone, Debug)]
pub struct StoredBatch {
    pub state: BatchState,
    pub request_sha256: Vec<u8>,
    pub verdicts: Vec<Option<RejectReason>>,
}

/// One submission whose shares this party holds, and its batch's state
/// (never the shares themselves): what an operator's audit sees.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Holding {
    pub study_id: String,
    pub submission_id: String,
    pub batch_id: u64,
    pub state: BatchState,
}

/// A provider's upload as the party holds it until its batch commits:
/// keyed by (submission id, SHA-256 of the token); `components` is the
/// intake's own encoding of this party's two components and the receipt
/// digest (opaque to the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUpload {
    pub submission_id: String,
    pub token_sha256: [u8; 32],
    pub components: Vec<u8>,
    /// Unix time of the upload, in milliseconds.
    pub uploaded_ms: i64,
}

/// A page of [`PartyStore::audit`]: ids and states, never shares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    pub pending_batches: Vec<u64>,
    pub holdings: Vec<Holding>,
}

/// The party's storage. See the module documentation for the guarantees.
pub trait PartyStore: polls::PollShareStore + Send + Sync + 'static {
    /// The study as this party first saw it: stored on first sight and
    /// returned unchanged afterwards, so later requests cannot loosen it.
    fn pin_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError>;

    /// Pins a study announced at its creation: like [`PartyStore::pin_study`],
    /// except that a study no batch ever used may be pinned again with new
    /// parameters (an operator retrying a creation that another party
    /// refused). Once a batch names the study, its parameters are fixed.
    fn pin_new_study(&self, s: &StudyParams) -> Result<StudyParams, StoreError>;

    fn study_ids(&self) -> Result<Vec<String>, StoreError>;

    /// The study as pinned here, if it is.
    fn pinned_study(&self, id: &str) -> Result<Option<StudyParams>, StoreError>;

    fn batch(&self, batch_id: u64) -> Result<Option<StoredBatch>, StoreError>;

    fn pending_batches(&self) -> Result<Vec<u64>, StoreError>;

    /// Stores a checked batch as pending, with the shares of the passing
    /// items and their nullifiers, in one transaction.
    /// `passing`: (submission id, a, b); `nullifiers`: (submission id, nullifier).
    fn put_pending(
        &self,
        batch_id: u64,
        study_id: &str,
        request_sha256: &[u8],
        verdicts: &[Option<RejectReason>],
        passing: &[(String, Z128, Z128)],
        nullifiers: &[(String, String)],
    ) -> Result<(), StoreError>;

    /// Whether an account (its nullifier) already counts in `study_id`
    /// (held by a pending or committed batch).
    fn nullifier_used(&self, study_id: &str, nullifier: &str) -> Result<bool, StoreError>;

    /// Stores `rows` as one already-committed batch: a bulk load of
    /// contributions checked elsewhere (benchmarks, migrations). Never used
    /// by the batch protocol, which always goes through pending.
    fn import_committed(
        &self,
        batch_id: u64,
        study_id: &str,
        rows: &[(String, Z128, Z128)],
    ) -> Result<(), StoreError>;

    /// Pending → committed. Idempotent; refuses an aborted batch.
    fn commit(&self, batch_id: u64) -> Result<BatchState, StoreError>;

    /// Pending → aborted, dropping its shares. Idempotent; refuses a
    /// committed batch. Unknown batches are recorded as aborted, so a late
    /// prepare of an aborted batch cannot store anything.
    fn abort(&self, batch_id: u64) -> Result<BatchState, StoreError>;

    /// Committed shares of a study up to `as_of_batch`, in a canonical order
    /// (the same at every party), and the submission ids in that order.
    fn committed_shares(
        &self,
        study_id: &str,
        as_of_batch: u64,
    ) -> Result<(Vec<String>, Shares<Z128>), StoreError>;

    fn committed_count(&self, study_id: &str, as_of_batch: u64) -> Result<u64, StoreError>;

    /// Release `release_no`: (count, signed copy).
    fn release(
        &self,
        study_id: &str,
        release_no: u64,
    ) -> Result<Option<(u64, SignedRelease)>, StoreError>;

    /// The latest release: (release_no, count, signed copy).
    fn latest_release(
        &self,
        study_id: &str,
    ) -> Result<Option<(u64, u64, SignedRelease)>, StoreError>;

    /// Stores a release; if release `release_no` is already stored (a
    /// retried request), keeps the stored one.
    fn put_release(
        &self,
        study_id: &str,
        release_no: u64,
        count: u64,
        signed: &SignedRelease,
    ) -> Result<(), StoreError>;

    /// One consistent snapshot for an audit: the pending batches, and up to
    /// `limit` submissions whose shares are held with their batch's state,
    /// in (study, submission) order, starting after `after` (a (study,
    /// submission) pair) if given.
    fn audit(&self, after: Option<(&str, &str)>, limit: usize) -> Result<Audit, StoreError>;

    /// Holds an upload durably (replacing one under the same key) and, in
    /// the same transaction, forgets uploads older than
    /// `expire_before_ms`. Called before the receipt is signed.
    fn put_upload(&self, u: &StoredUpload, expire_before_ms: i64) -> Result<(), StoreError>;

    /// Uploads made at or after `since_ms`, oldest first: what a restarted
    /// party holds again.
    fn uploads_since(&self, since_ms: i64) -> Result<Vec<StoredUpload>, StoreError>;

    /// Forgets uploads (their batch committed).
    fn remove_uploads(&self, keys: &[(String, [u8; 32])]) -> Result<(), StoreError>;
}
