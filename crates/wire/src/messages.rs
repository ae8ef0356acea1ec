//! JSON bodies of every request and answer between providers, the
//! coordinator, the parties and the consumer API. Each struct refuses
//! unknown fields so a misspelt field is an error, not a silent default.

use serde::{Deserialize, Serialize};
use triad_attestation::{Attestation, DataSource, DataSpec};
use triad_stats::StatsSpec;

/// Longest study id, in bytes; ids are `[a-z0-9-]`.
pub const MAX_STUDY_ID: usize = 64;

/// Checks a study id's form: 1–64 bytes of `[a-z0-9-]`.
pub fn valid_study_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_STUDY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A study as every service sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyParams {
    pub id: String,
    pub name: String,
    pub data_spec: DataSpec,
    /// The HTTPS server every contribution must be attested from.
    pub source: DataSource,
    /// No release before this many contributions.
    pub min_cohort: u64,
    /// No new release before this many contributions since the last one.
    pub min_new: u64,
    pub release_interval_secs: u64,
    pub stats: StatsSpec,
}

/// `POST /v1/studies` (operator).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStudy {
    pub id: String,
    pub name: String,
    pub data_spec: DataSpec,
    /// The HTTPS server contributions must come from (required).
    pub source: DataSource,
    #[serde(default)]
    pub min_cohort: Option<u64>,
    #[serde(default)]
    pub min_new: Option<u64>,
    #[serde(default)]
    pub release_interval_secs: Option<u64>,
    #[serde(default)]
    pub stats: StatsSpec,
}

/// A study with its public counters (`GET /v1/studies`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyInfo {
    #[serde(flatten)]
    pub params: StudyParams,
    pub created_at: u64,
    /// Accepted contributions (committed by all three parties).
    pub contributions: u64,
    pub releases: u64,
    /// The study's directory id (64 hex, docs/directory.md): what a
    /// provider needs to find it (`triad share --study-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
    /// How far the study is from its next release (the coordinator fills
    /// it in when it answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::study::ReleaseProgress>,
}

/// `POST /v1/studies/{id}/submissions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub attestation: Attestation,
    /// A token the provider chose (64 lowercase hex); without one the
    /// coordinator picks it. With one, a retry after a lost answer (same
    /// attestation, same token) gets the same admission back instead of
    /// `attestation_replayed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The coordinator's answer to an admitted submission.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// 32 hex; also the capability to read the submission's status.
    pub submission_id: String,
    /// 64 hex; the provider hands it to each party with its shares, the
    /// coordinator gives the parties only its SHA-256.
    pub token: String,
    /// The three parties' HTTPS base URLs, party 0 first.
    pub parties: Vec<String>,
}

/// `POST /v1/submissions/{id}/ready`: the provider sent all its shares.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyRequest {
    pub token: String,
    /// The three parties' receipts for the uploaded shares, party 0 first
    /// ([`crate::receipt`]): all three must have signed the same one.
    pub receipts: Vec<crate::receipt::SignedReceipt>,
}

impl std::fmt::Debug for SubmitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubmitResponse({}, token redacted)", self.submission_id)
    }
}

impl std::fmt::Debug for ReadyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyRequest(token redacted)")
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Admitted; the coordinator waits for the provider's "ready".
    AwaitingShares,
    /// Ready, waiting for a batch.
    Queued,
    /// In a batch the parties are checking.
    Processing,
    /// Stored by all three parties.
    Accepted,
    Rejected,
}

/// Why a submission was refused after admission.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    #[error("at least one party never received this submission's shares")]
    SharesMissing,
    #[error("the shares sent to the parties are inconsistent with each other")]
    InconsistentShares,
    #[error("the shared value and blinder do not match the attested commitment")]
    CommitmentMismatch,
    #[error("the value is outside the range statistics support (|v| < 2^52 fixed-point units)")]
    ValueOutOfRange,
    #[error("the batch failed repeatedly; submit again with a fresh attestation")]
    BatchFailed,
    #[error("the provider did not confirm its shares in time")]
    SharesTimeout,
    #[error("a computation party refused the attestation (invalid, for another study, or the account is already counted)")]
    AttestationRefused,
}

impl RejectReason {
    /// Whether a fresh attempt of the same provider may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::SharesMissing | Self::BatchFailed | Self::SharesTimeout
        )
    }
}

/// `GET /v1/submissions/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubmissionState {
    pub submission_id: String,
    pub study_id: String,
    pub status: SubmissionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The batch that carried an accepted submission: a release with
    /// `as_of_batch` at or above it includes this contribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<u64>,
}

/// `POST {party}/v1/shares`: one submission's components for one party.
/// Party `i` gets components `(x_i, x_{i+1})` of the value's 64 bits
/// (XOR sharing of the two's-complement word) and of the blinder (additive
/// sharing in the BN254 scalar field).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareUpload {
    pub submission_id: String,
    pub token: String,
    /// Two components, 16 hex each.
    pub value_bits: [String; 2],
    /// Two components, 64 hex each.
    pub blinder: [String; 2],
    /// The salts of this party's two components (64 hex each).
    pub salts: [String; 2],
    /// The commitments to all three components (64 hex each,
    /// [`crate::receipt::component_commitment`]).
    pub commitments: [String; 3],
}

impl std::fmt::Debug for ShareUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShareUpload({}, redacted)", self.submission_id)
    }
}

/// One submission of a batch, as the coordinator describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub submission_id: String,
    /// SHA-256 of the provider's token (hex): which uploaded shares count.
    pub token_sha256: String,
    /// The attested `Poseidon(value, blinder)` (64 hex).
    pub commitment: String,
    /// The digest of the share commitments all three parties signed
    /// receipts for ([`crate::receipt::ShareReceipt::digest`], 64 hex):
    /// only shares uploaded under it count.
    pub shares_digest: String,
    /// The notary's attestation itself: each party verifies it and keeps
    /// its own nullifier set, so a coordinator cannot invent submissions.
    pub attestation: Attestation,
    /// The three parties' signed receipts for `shares_digest`, party 0
    /// first: the evidence an honest party holds against a peer that
    /// claims not to hold shares it promised to keep (malicious mode).
    #[serde(default)]
    pub receipts: Vec<crate::receipt::SignedReceipt>,
}

/// `POST {party}/internal/batches/prepare`: check the batch in MPC and
/// store the passing shares as pending.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrepareBatch {
    pub batch_id: u64,
    pub study: StudyParams,
    pub items: Vec<BatchItem>,
}

/// A party's answer to `prepare`: one verdict per item, `None` = passes.
/// The three parties' answers must be equal (they come out of the same MPC).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PrepareResult {
    pub batch_id: u64,
    pub verdicts: Vec<Option<RejectReason>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Commit,
    Abort,
    /// Not decided yet (the coordinator is still collecting votes).
    Pending,
}

/// `GET {coordinator}/internal/batches/{id}`: a party recovering a pending
/// batch asks for the outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchDecision {
    pub batch_id: u64,
    pub decision: Decision,
}

/// `POST {party}/internal/releases`: compute and sign the next release.
/// The party enforces min_cohort / min_new itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub study: StudyParams,
    pub release_no: u64,
    /// Chosen by the coordinator so the three signed documents are equal.
    pub created_at: u64,
    /// The release covers the committed batches with ids up to this one;
    /// fixed on the first attempt so a retry computes over the same set.
    pub as_of_batch: u64,
}

/// Header carrying the internal bearer token (coordinator ⇄ parties).
pub const INTERNAL_TOKEN_HEADER: &str = "x-triad-internal";
/// Header carrying the operator token (`POST /v1/studies`).
pub const ADMIN_TOKEN_HEADER: &str = "x-triad-admin";
