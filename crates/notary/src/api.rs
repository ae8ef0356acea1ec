//! The notary's HTTPS API: routes, handlers and the parser of the attest
//! body. It runs on the server loop every triad service runs
//! (`triad_wire::serve`: rustls, hyper, axum, with its caps and timeouts)
//! and answers errors in their one shape, `{"error": code, "message": text}`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `ok` |
//! | `GET /v1/info` | [`NotaryInfo`] (proxy endpoint, public key) |
//! | `POST /v1/attest` with [`AttestApiRequest`] | the signed `Attestation` |
//!
//! `/v1/attest` errors: 400 `malformed_body` (not the request's JSON, or a
//! field out of form), 403 `target_refused` (the proxy refused the session's
//! target: not on the allow-list, a special-purpose address or the notary
//! itself), 404 `unknown_session`, 413 `payload_too_large`, 422
//! `session_failed` (the recorded session broke a limit or never reached
//! the server) or `check_failed` (the transcript check or the value claim
//! failed). Any other path is 404 `not_found`, another method 405
//! `method_not_allowed`.
//!
//! The API never logs or stores requests: what the notary holds is the
//! recorded ciphertext, the disclosed rx key and the response it decrypts.

use std::sync::Arc;
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use triad_attestation::{Attestation, DataSpec, NotarySigningKey};
use triad_crypto::fr_from_hex;
use triad_wire::https::{body_bytes, json_fallbacks, parse_json};
use triad_wire::ApiError;

use crate::notarize::{attest_session, AttestationRequest};
use crate::proxy::{ProxyHandle, SessionOutcome};
use crate::transcript::ServerKeyDisclosure;

/// Limits of the API beyond the server loop's (`triad_wire::serve`).
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Largest `POST /v1/attest` body.
    pub max_body: usize,
    /// How long `/v1/attest` waits for a session the proxy is still
    /// relaying (an id the proxy has not seen is answered at once).
    pub session_wait: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            session_wait: Duration::from_secs(5),
        }
    }
}

/// `POST /v1/attest` body.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestApiRequest {
    /// The id sent in the proxy preamble (32 lowercase hex).
    pub session_id: String,
    /// Server→client write key, hex (16 or 32 bytes).
    pub server_key: String,
    /// Server→client IV, hex (4 or 12 bytes).
    pub server_iv: String,
    /// The provider's blinder, 64 hex (BN254 scalar).
    pub blinder: String,
    pub study_id: String,
    pub data_spec: DataSpec,
    /// The fixed-point value the prover read.
    pub expected_value: i64,
}

impl AttestApiRequest {
    /// The body a prover sends for session `session_id`.
    pub fn new(
        session_id: &str,
        disclosure: &ServerKeyDisclosure,
        request: &AttestationRequest,
    ) -> Self {
        Self {
            session_id: session_id.to_string(),
            server_key: hex::encode(&disclosure.key),
            server_iv: hex::encode(&disclosure.iv),
            blinder: triad_crypto::fr_to_hex(&request.blinder),
            study_id: request.study_id.clone(),
            data_spec: request.data_spec.clone(),
            expected_value: request.expected_value,
        }
    }
}

impl std::fmt::Debug for AttestApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestApiRequest({}, redacted)", self.session_id)
    }
}

/// `GET /v1/info` body and the `notary.json` file (plus `url` there).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotaryInfo {
    /// The API's base URL, `https://host:port` (in `notary.json`; the API
    /// itself does not know its external name and omits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The proxy endpoint, `host:port`.
    pub proxy: String,
    /// ed25519 public key, 64 hex.
    pub public_key: String,
    pub key_id: String,
}

/// What the handlers share.
pub struct ApiState {
    pub key: NotarySigningKey,
    pub roots: Arc<RootCertStore>,
    /// Attestation lifetime from the session time.
    pub ttl_secs: u64,
    pub limits: ApiLimits,
    pub proxy: Arc<ProxyHandle>,
    /// `GET /v1/info`'s answer.
    pub info: NotaryInfo,
}

/// How a 403 `target_refused` message starts.
pub const REFUSED_PREFIX: &str = "the notary does not relay to this target: ";

type St = State<Arc<ApiState>>;

/// The API's router (no TLS; `triad_wire::https::serve_with` serves it).
pub fn router(state: Arc<ApiState>) -> Router {
    let max_body = state.limits.max_body;
    let r = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(triad_wire::metrics::serve_metrics))
        .route("/v1/info", get(info))
        .route("/v1/attest", post(attest));
    json_fallbacks(r)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(triad_wire::trace::trace_requests))
        .with_state(state)
}

async fn info(State(s): St) -> Json<NotaryInfo> {
    Json(s.info.clone())
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::MalformedBody, message)
}

/// Decodes a `POST /v1/attest` body: the JSON, then each field's form
/// (session id, hex key and IV, canonical blinder). Pure; also the fuzz
/// target's parser.
pub fn parse_attest(
    body: &[u8],
) -> Result<(AttestApiRequest, ServerKeyDisclosure, AttestationRequest), ApiError> {
    let req: AttestApiRequest = parse_json(body)?;
    let sid_ok = req.session_id.len() == 32
        && req
            .session_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !sid_ok {
        return Err(malformed("session_id must be 32 lowercase hex digits"));
    }
    let key = hex::decode(&req.server_key).map_err(|_| malformed("server_key is not hex"))?;
    let iv = hex::decode(&req.server_iv).map_err(|_| malformed("server_iv is not hex"))?;
    let blinder = fr_from_hex(&req.blinder)
        .map_err(|_| malformed("blinder must be 64 hex digits of a canonical BN254 scalar"))?;
    let ar = AttestationRequest {
        study_id: req.study_id.clone(),
        data_spec: req.data_spec.clone(),
        blinder,
        expected_value: req.expected_value,
    };
    Ok((req, ServerKeyDisclosure { key, iv }, ar))
}

/// `POST /v1/attest`: claims the recorded session (single use, whatever
/// the outcome), checks it with the disclosure and signs.
async fn attest(
    State(s): St,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Attestation>, ApiError> {
    let (req, disclosure, ar) = parse_attest(&body_bytes(body)?)?;
    let Some(outcome) = s
        .proxy
        .wait_session(&req.session_id, s.limits.session_wait)
        .await
    else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownSession,
            "unknown session id (never proxied, already used, or not finished)",
        ));
    };
    let failed = |m: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::SessionFailed,
            m,
        )
    };
    let session = match outcome {
        SessionOutcome::Complete(session) => session,
        SessionOutcome::TranscriptTooLarge => {
            return Err(failed("session exceeded the transcript size limit"))
        }
        SessionOutcome::TimedOut => return Err(failed("session exceeded the time limit")),
        SessionOutcome::ConnectFailed => {
            return Err(failed("the notary could not connect to the server"))
        }
        SessionOutcome::TargetRefused(r) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::TargetRefused,
                format!("{REFUSED_PREFIX}{r}"),
            ))
        }
    };
    // The check is CPU work (AES-GCM over the transcript, signatures).
    let st = s.clone();
    let checked = tokio::task::spawn_blocking(move || {
        attest_session(
            &st.key,
            st.roots.clone(),
            &session,
            &disclosure,
            &ar,
            st.ttl_secs,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("attestation task: {e}")))?;
    checked.map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::CheckFailed,
            e.to_string(),
        )
    })
}
