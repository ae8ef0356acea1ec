//! THE admission rule: [`admit_submission`] decides whether an attested
//! submission enters the queue. Every check lives here, in this order:
//!
//! 1. the study exists;
//! 2. the attestation verifies under a trusted notary key and is within its
//!    validity window ([`triad_attestation::verify_attestation`]);
//! 3. it is fresh: the TLS session is at most `max_age_secs` old;
//! 4. it is for this study, with this study's data spec, and from this
//!    study's data source (server name, certificate pin if any);
//! 5. then, atomically with the insert (see [`crate::store::CoordinatorStore::insert_submission`]):
//!    its signature was never seen before (replay), its nullifier is not held
//!    by an accepted or in-flight submission of the study (sybil), and the
//!    admission queue has room.
//!
//! A refusal at any step changes no state.

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use triad_attestation::{
    verify_attestation, Attestation, AttestationError, DataSource, DataSpec, NotaryPublicKey,
    SourceError,
};
use triad_wire::ErrorCode;

use crate::store::{InsertRefused, NewSubmission, Store, StoreError};

/// What the coordinator needs to judge a submission.
pub struct AdmissionPolicy<'a> {
    pub trusted_keys: &'a [NotaryPublicKey],
    pub max_age_secs: u64,
    pub max_queue: usize,
}

/// An admitted submission: its id and the provider's token.
#[derive(Clone)]
pub struct Admitted {
    pub submission_id: String,
    pub token: String,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Admitted({}, token redacted)", self.submission_id)
    }
}

/// Why a submission was not admitted, grouped by whose fault it is. The
/// handler picks the HTTP status ([`crate::routes`]); nothing here knows HTTP.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    // The provider's fault: the request can never succeed as it is.
    #[error("token must be 64 lowercase hex digits")]
    MalformedToken,
    #[error("no study {0:?}")]
    UnknownStudy(String),
    #[error("{0}")]
    AttestationExpired(AttestationError),
    #[error("{0}")]
    AttestationInvalid(AttestationError),
    #[error("the attested session is {age} s old; at most {max} s are accepted")]
    AttestationStale { age: u64, max: u64 },
    #[error("the attestation is for another study or data spec")]
    StudyMismatch,
    #[error("{0}")]
    WrongSource(SourceError),
    #[error("this attestation was already presented")]
    Replayed,
    #[error("this account already contributed to the study")]
    AlreadyContributed,
    // Nobody's fault: load. The same request may succeed later.
    #[error("the admission queue is full; try again later")]
    QueueFull,
    // The coordinator's fault.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("system RNG failed")]
    Rng,
}

/// Whose fault an [`AdmissionError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The provider sent something that will never be admitted.
    Provider,
    /// The coordinator is busy; retry later.
    Load,
    /// The coordinator failed.
    Coordinator,
}

impl AdmissionError {
    pub fn fault(&self) -> Fault {
        match self {
            Self::QueueFull => Fault::Load,
            Self::Store(_) | Self::Rng => Fault::Coordinator,
            _ => Fault::Provider,
        }
    }

    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedToken => ErrorCode::MalformedBody,
            Self::UnknownStudy(_) => ErrorCode::UnknownStudy,
            Self::AttestationExpired(_) => ErrorCode::AttestationExpired,
            Self::AttestationInvalid(_) => ErrorCode::AttestationInvalid,
            Self::AttestationStale { .. } => ErrorCode::AttestationStale,
            Self::StudyMismatch => ErrorCode::StudyMismatch,
            Self::WrongSource(_) => ErrorCode::WrongSource,
            Self::Replayed => ErrorCode::AttestationReplayed,
            Self::AlreadyContributed => ErrorCode::AlreadyContributed,
            Self::QueueFull => ErrorCode::QueueFull,
            Self::Store(_) | Self::Rng => ErrorCode::Internal,
        }
    }
}

fn random_hex(rng: &SystemRandom, n: usize) -> Result<String, AdmissionError> {
    let mut b = vec![0u8; n];
    rng.fill(&mut b).map_err(|_| AdmissionError::Rng)?;
    Ok(hex::encode(b))
}

/// SHA-256 (hex) of the token string the provider holds: the parties get
/// this, never the token itself.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Steps 2 to 4 of the rule (see the module docs) for any attested
/// request: a contribution to study `study_id`, or a poll's sign-up (whose
/// attestations name [`triad_wire::poll::poll_study_id`]).
pub fn check_attestation(
    att: &Attestation,
    policy: &AdmissionPolicy<'_>,
    study_id: &str,
    data_spec: &DataSpec,
    source: &DataSource,
    now: u64,
) -> Result<(), AdmissionError> {
    let verified = verify_attestation(att, policy.trusted_keys, now).map_err(|e| match e {
        AttestationError::Expired { .. } | AttestationError::NotYetValid { .. } => {
            AdmissionError::AttestationExpired(e)
        }
        _ => AdmissionError::AttestationInvalid(e),
    })?;
    let session_time = verified.claims.session_time;
    if now.saturating_sub(session_time) > policy.max_age_secs {
        return Err(AdmissionError::AttestationStale {
            age: now - session_time,
            max: policy.max_age_secs,
        });
    }
    if att.study_id != study_id || att.data_spec != *data_spec {
        return Err(AdmissionError::StudyMismatch);
    }
    source
        .check(&att.server_name, &att.cert_chain_sha256)
        .map_err(AdmissionError::WrongSource)?;

    Ok(())
}

/// The admission rule (see the module docs). `now` is Unix seconds.
pub async fn admit_submission(
    db: &Store,
    study_id: &str,
    att: &Attestation,
    token: Option<&str>,
    policy: &AdmissionPolicy<'_>,
    now: u64,
) -> Result<Admitted, AdmissionError> {
    if token.is_some_and(|t| {
        t.len() != 64 || !t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }) {
        return Err(AdmissionError::MalformedToken);
    }
    let study = db
        .study(study_id.to_string())
        .await?
        .ok_or_else(|| AdmissionError::UnknownStudy(study_id.to_string()))?;

    check_attestation(
        att,
        policy,
        &study.params.id,
        &study.params.data_spec,
        &study.params.source,
        now,
    )?;

    let rng = SystemRandom::new();
    let admitted = Admitted {
        submission_id: random_hex(&rng, 16)?,
        token: match token {
            Some(t) => t.to_string(),
            None => random_hex(&rng, 32)?,
        },
    };
    let row = NewSubmission {
        id: admitted.submission_id.clone(),
        study: study.params.id.clone(),
        token_sha256: token_digest(&admitted.token),
        // verify_attestation checked both are canonical lowercase hex.
        commitment: att.commitment.clone(),
        nullifier: att.nullifier.clone(),
        signature: att.signature.clone(),
        attestation_json: att.to_json(),
    };
    match db.insert_submission(row, policy.max_queue, now).await {
        Ok(()) => Ok(admitted),
        Err(InsertRefused::UnknownStudy) => Err(AdmissionError::UnknownStudy(study_id.to_string())),
        Err(InsertRefused::Replayed) => {
            // The provider's own retry after a lost answer: same attestation,
            // same token, admission still in flight. Nothing is written.
            if let Some(t) = token {
                let found = db
                    .find_admission(study_id.to_string(), att.nullifier.clone(), token_digest(t))
                    .await?;
                if let Some(submission_id) = found {
                    return Ok(Admitted {
                        submission_id,
                        token: t.to_string(),
                    });
                }
            }
            Err(AdmissionError::Replayed)
        }
        Err(InsertRefused::NullifierInUse) => Err(AdmissionError::AlreadyContributed),
        Err(InsertRefused::QueueFull) => Err(AdmissionError::QueueFull),
        Err(InsertRefused::Store(e)) => Err(e.into()),
    }
}
