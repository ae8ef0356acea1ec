//! The notary's decision, without I/O: from a recorded session and the
//! prover's disclosure to a signed attestation. The proxy and the API (not
//! built yet) only feed this function.

use std::sync::Arc;

use rustls::RootCertStore;
use triad_crypto::Fr;

use crate::http::{response_body, HttpError};
use crate::transcript::{check_transcript, ServerKeyDisclosure, Transcript, TranscriptError};
use triad_attestation::{extract_claim, DataSpec, SpecError};
use triad_attestation::{sign_attestation, Attestation, AttestationClaims, NotarySigningKey};

/// What the proxy recorded for one session.
#[derive(Clone, Debug)]
pub struct RecordedSession {
    /// The host the notary connected to (from the prover's preamble).
    pub server_name: String,
    pub transcript: Transcript,
    /// Unix seconds at the start of the session.
    pub session_time: u64,
}

/// What the prover asks the notary to attest, next to its key disclosure.
/// `Debug` redacts the blinder and the value.
#[derive(Clone)]
pub struct AttestationRequest {
    pub study_id: String,
    pub data_spec: DataSpec,
    /// The provider's blinder; the notary learns it (it also learns the value).
    pub blinder: Fr,
    /// The fixed-point value the prover expects: a sanity check that both
    /// sides read the same response the same way.
    pub expected_value: i64,
}

impl std::fmt::Debug for AttestationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationRequest")
            .field("study_id", &self.study_id)
            .field("data_spec", &self.data_spec)
            .field("blinder", &"<redacted>")
            .field("expected_value", &"<redacted>")
            .finish()
    }
}

/// Why the notary refuses to sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotaryError {
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error("server response: {0}")]
    Http(#[from] HttpError),
    #[error("response does not match the data spec: {0}")]
    Spec(#[from] SpecError),
    #[error("the response holds value {attested}, the prover claimed {claimed}")]
    ValueMismatch { claimed: i64, attested: i64 },
    #[error("study id must be 1..=253 printable bytes")]
    BadStudyId,
}

/// Checks the session (see [`check_transcript`]), extracts the value under
/// the data spec, and signs an attestation valid for `ttl_secs` from the
/// session time.
pub fn attest_session(
    key: &NotarySigningKey,
    roots: Arc<RootCertStore>,
    session: &RecordedSession,
    disclosure: &ServerKeyDisclosure,
    request: &AttestationRequest,
    ttl_secs: u64,
) -> Result<Attestation, NotaryError> {
    if request.study_id.is_empty()
        || request.study_id.len() > 253
        || request.study_id.chars().any(char::is_control)
    {
        return Err(NotaryError::BadStudyId);
    }
    request.data_spec.validate()?;
    let checked = check_transcript(
        &session.transcript,
        &session.server_name,
        disclosure,
        roots,
        session.session_time,
    )?;
    let body = response_body(&checked.plaintext)?;
    let claim = extract_claim(&request.data_spec, &body)?;
    if claim.value != request.expected_value {
        return Err(NotaryError::ValueMismatch {
            claimed: request.expected_value,
            attested: claim.value,
        });
    }
    let claims = AttestationClaims {
        server_name: session.server_name.clone(),
        cert_chain_sha256: checked.cert_chain_sha256,
        session_time: session.session_time,
        expires_at: session.session_time.saturating_add(ttl_secs.max(1)),
        study_id: request.study_id.clone(),
        data_spec: request.data_spec.clone(),
        commitment: claim.commitment(request.blinder),
        nullifier: claim.nullifier(&request.study_id),
        transcript_sha256: session.transcript.sha256(),
    };
    Ok(sign_attestation(key, &claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::root_store;
    use crate::transcript::tests::{aes128, pki, session_with};
    use triad_attestation::verify_attestation;
    use triad_crypto::{commitment, fr_from_i128, nullifier};

    const NOW: u64 = 1_800_000_000;

    fn response(balance: &str) -> Vec<u8> {
        let body =
            format!(r#"{{"uid": 123, "balances": {{"ETH": "{balance}", "BTC": "0.0100"}}}}"#);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn request(expected_value: i64) -> AttestationRequest {
        AttestationRequest {
            study_id: "eth-holdings".into(),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            blinder: Fr::from(77u64),
            expected_value,
        }
    }

    fn run(balance: &str, req: &AttestationRequest) -> Result<Attestation, NotaryError> {
        let p = pki(&["127.0.0.1"]);
        let (transcript, d) = session_with(&p, aes128(), &response(balance));
        let roots = Arc::new(root_store(Some(p.ca_pem.as_bytes()), false).unwrap());
        let session = RecordedSession {
            server_name: "127.0.0.1".into(),
            transcript,
            session_time: NOW,
        };
        attest_session(
            &NotarySigningKey::from_seed([4; 32]),
            roots,
            &session,
            &d,
            req,
            3600,
        )
    }

    #[test]
    fn end_to_end_in_memory_attestation_verifies() {
        let att = run("1.2500", &request(12500)).unwrap();
        let key = NotarySigningKey::from_seed([4; 32]).public_key();
        let v = verify_attestation(&att, &[key], NOW + 1).unwrap();
        assert_eq!(
            v.claims.commitment,
            commitment(fr_from_i128(12500), Fr::from(77u64))
        );
        assert_eq!(v.claims.nullifier, nullifier(b"123", "eth-holdings"));
        assert_eq!(v.claims.server_name, "127.0.0.1");
        assert_eq!(v.claims.expires_at, NOW + 3600);
    }

    #[test]
    fn spec_and_value_mismatches_are_refused() {
        assert_eq!(
            run("1.2500", &request(1)),
            Err(NotaryError::ValueMismatch {
                claimed: 1,
                attested: 12500
            })
        );
        assert!(matches!(
            run("lots", &request(0)),
            Err(NotaryError::Spec(SpecError::NotNumeric(_)))
        ));
        assert!(matches!(
            run("99999999999999999999", &request(0)),
            Err(NotaryError::Spec(SpecError::OutOfRange(_)))
        ));
        let mut other_field = request(0);
        other_field.data_spec.field = "balances.DOGE".into();
        assert!(matches!(
            run("1", &other_field),
            Err(NotaryError::Spec(SpecError::FieldMissing(_)))
        ));
        let mut bad_study = request(10000);
        bad_study.study_id = String::new();
        assert_eq!(run("1", &bad_study), Err(NotaryError::BadStudyId));
    }
}
