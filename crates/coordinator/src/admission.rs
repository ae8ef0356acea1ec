//! THE admission rule: [`admit_submission`] decides whether an attested
//! submission enters the queue. Every check lives here, in this order:
//!
//! 1. the study exists;
//! 2. the attestation verifies under a trusted notary key and is within its
//!    validity window ([`triad_attestation::verify_attestation`]);
//! 3. it is fresh: the TLS session is at most `max_age_secs` old;
//! 4. it is for this study, with this study's data spec, and from this
//!    study's data source (server name, certificate pin if any);
//! 5. then, atomically with the insert (see [`Db::insert_submission`]):
//!    its signature was never seen before (replay), its nullifier is not held
//!    by an accepted or in-flight submission of the study (sybil), and the
//!    admission queue has room.
//!
//! A refusal at any step changes no state.

use axum::http::StatusCode;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use triad_attestation::{verify_attestation, Attestation, AttestationError, NotaryPublicKey};
use triad_wire::ApiError;

use crate::db::{Db, InsertRefused, NewSubmission};

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

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn random_hex(rng: &SystemRandom, n: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; n];
    rng.fill(&mut b)
        .map_err(|_| ApiError::internal("system RNG failed"))?;
    Ok(hex::encode(b))
}

/// SHA-256 (hex) of the token string the provider holds: the parties get
/// this, never the token itself.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The admission rule (see the module docs). `now` is Unix seconds.
pub async fn admit_submission(
    db: &Db,
    study_id: &str,
    att: &Attestation,
    token: Option<&str>,
    policy: &AdmissionPolicy<'_>,
    now: u64,
) -> Result<Admitted, ApiError> {
    if token.is_some_and(|t| {
        t.len() != 64 || !t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }) {
        return Err(ApiError::bad_request(
            "malformed_body",
            "token must be 64 lowercase hex digits",
        ));
    }
    let study = db
        .study(study_id.to_string())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("unknown_study", format!("no study {study_id:?}")))?;

    let verified = verify_attestation(att, policy.trusted_keys, now).map_err(|e| match e {
        AttestationError::Expired { .. } | AttestationError::NotYetValid { .. } => {
            unprocessable("attestation_expired", e.to_string())
        }
        _ => unprocessable("attestation_invalid", e.to_string()),
    })?;
    let session_time = verified.claims.session_time;
    if now.saturating_sub(session_time) > policy.max_age_secs {
        return Err(unprocessable(
            "attestation_stale",
            format!(
                "the attested session is {} s old; at most {} s are accepted",
                now - session_time,
                policy.max_age_secs
            ),
        ));
    }
    if att.study_id != study.params.id || att.data_spec != study.params.data_spec {
        return Err(unprocessable(
            "study_mismatch",
            "the attestation is for another study or data spec",
        ));
    }
    study
        .params
        .source
        .check(&att.server_name, &att.cert_chain_sha256)
        .map_err(|e| unprocessable("wrong_source", e.to_string()))?;

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
        Err(InsertRefused::UnknownStudy) => Err(ApiError::not_found(
            "unknown_study",
            format!("no study {study_id:?}"),
        )),
        Err(InsertRefused::Replayed) => {
            // The provider's own retry after a lost answer: same attestation,
            // same token, admission still in flight. Nothing is written.
            if let Some(t) = token {
                let found = db
                    .find_admission(study_id.to_string(), att.nullifier.clone(), token_digest(t))
                    .await
                    .map_err(ApiError::internal)?;
                if let Some(submission_id) = found {
                    return Ok(Admitted {
                        submission_id,
                        token: t.to_string(),
                    });
                }
            }
            Err(ApiError::conflict(
                "attestation_replayed",
                "this attestation was already presented",
            ))
        }
        Err(InsertRefused::NullifierInUse) => Err(ApiError::conflict(
            "already_contributed",
            "this account already contributed to the study",
        )),
        Err(InsertRefused::QueueFull) => Err(ApiError::unavailable(
            "queue_full",
            "the admission queue is full; try again later",
        )),
        Err(InsertRefused::Db(e)) => Err(ApiError::internal(e)),
    }
}
