//! The HTTP surface. Handlers are thin: they parse, call the rule that
//! decides ([`admit_submission`], the store), and pick the status.

use std::sync::Arc;
use triad_wire::ErrorCode;

use axum::body::Bytes;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Notify;
use triad_attestation::NotaryPublicKey;
use triad_wire::https::{check_token, check_token_digest, json_fallbacks, parse_json, ServeLimits};
use triad_wire::messages::{
    BatchDecision, CreateStudy, ReadyRequest, StudyInfo, StudyParams, SubmissionState,
    SubmissionStatus, SubmitRequest, SubmitResponse, ADMIN_TOKEN_HEADER, INTERNAL_TOKEN_HEADER,
};
use triad_wire::study::validate_study;
use triad_wire::{ApiError, PeerAddr};

use crate::admission::{admit_submission, token_digest, AdmissionError, AdmissionPolicy, Fault};
use crate::batcher::Caught;
use crate::limits::RateLimiter;
use crate::parties::{Parties, PartyError, PartyFault};
use crate::store::directory::Kind;
use crate::store::Store;
use triad_wire::receipt::{verify_receipts, SignedReceipt, MIN_KEEP_AT_READY_SECS};

pub const DEFAULT_MIN_COHORT: u64 = 10;
pub const DEFAULT_MIN_NEW: u64 = 10;
pub const DEFAULT_RELEASE_INTERVAL_SECS: u64 = 60;

pub struct AppState {
    pub db: Store,
    pub limiter: RateLimiter,
    pub trusted_keys: Vec<NotaryPublicKey>,
    pub max_attestation_age_secs: u64,
    pub max_queue: usize,
    pub party_urls: Vec<String>,
    /// The parties' signing keys (64 hex), party 0 first: share receipts
    /// and releases must verify under them.
    pub party_keys: [String; 3],
    pub admin_token: String,
    /// Digest of the parties' token (they ask for batch decisions).
    pub party_token_sha256: [u8; 32],
    pub wake: Arc<Notify>,
    /// See [`crate::batcher::Driver::settled`].
    pub settled: Arc<Notify>,
    /// The parties, asked to pin each new study.
    pub parties: Arc<dyn Parties>,
    /// Logged commits some party has not acked (see the batcher).
    pub stuck: crate::batcher::StuckCommits,
    /// Batches aborted on a party's report of cheating (see the batcher).
    pub cheating: crate::batcher::CheatingReports,
    /// Signs directory records; derives directory ids.
    pub directory_key: Arc<triad_directory::SigningKey>,
    /// Publishes new studies and polls in the directory (or nothing).
    pub publisher: crate::directory::Publisher,
}

impl AppState {
    /// What admission (of a contribution or a poll sign-up) needs.
    pub(crate) fn policy(&self) -> AdmissionPolicy<'_> {
        AdmissionPolicy {
            trusted_keys: &self.trusted_keys,
            max_age_secs: self.max_attestation_age_secs,
            max_queue: self.max_queue,
        }
    }
}

/// A rate-limited public request: 429 before anything else happens, then
/// `go`'s answer with `status`, or its refusal.
pub(crate) async fn limited<T: serde::Serialize>(
    s: &AppState,
    peer: &PeerAddr,
    status: StatusCode,
    go: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<Response, Response> {
    s.limiter
        .check(peer.0.ip())
        .map_err(IntoResponse::into_response)?;
    go.await
        .map(|r| (status, Json(r)).into_response())
        .map_err(IntoResponse::into_response)
}

/// Longest a status request may wait for a verdict.
const MAX_WAIT_MS: u64 = 25_000;

/// The HTTPS server's limits for this router: the handler deadline stays
/// well above the longest status long poll, whatever the caller asked.
pub fn serve_limits(mut l: ServeLimits) -> ServeLimits {
    let floor = Duration::from_millis(MAX_WAIT_MS) + Duration::from_secs(15);
    l.request_timeout = l.request_timeout.max(floor);
    l
}

/// A request with the operator's token. As a handler's first argument it
/// answers 401 before anything else of the request is read.
pub(crate) struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, ApiError> {
        check_token(&parts.headers, ADMIN_TOKEN_HEADER, &s.admin_token).map(|()| Admin)
    }
}

/// A request with the parties' token; see [`Admin`].
struct FromParty;

impl FromRequestParts<Arc<AppState>> for FromParty {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, ApiError> {
        check_token_digest(&parts.headers, INTERNAL_TOKEN_HEADER, &s.party_token_sha256)
            .map(|()| FromParty)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParams {
    /// Wait up to this long for the submission to be accepted or rejected.
    wait_ms: Option<u64>,
}

type St = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    let r = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(triad_wire::metrics::serve_metrics))
        .route("/v1/studies", post(create_study).get(list_studies))
        .route("/v1/studies/{id}", get(get_study))
        .route("/v1/studies/{id}/submissions", post(submit))
        .route("/v1/submissions/{sid}", get(get_submission))
        .route("/v1/submissions/{sid}/ready", post(ready))
        .route("/internal/batches/{id}", get(batch_decision))
        .route("/internal/status", get(status))
        .merge(crate::poll_routes::routes());
    json_fallbacks(r)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(triad_wire::trace::trace_requests))
        .with_state(state)
}

/// The raw body, with an over-long one answered in our JSON shape.
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    triad_wire::https::body_bytes(b)
}

async fn create_study(
    _: Admin,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateStudy = parse_json(&body(b)?)?;
    let params = StudyParams {
        id: req.id,
        name: req.name,
        data_spec: req.data_spec,
        source: req.source,
        min_cohort: req.min_cohort.unwrap_or(DEFAULT_MIN_COHORT),
        min_new: req.min_new.unwrap_or(DEFAULT_MIN_NEW),
        release_interval_secs: req
            .release_interval_secs
            .unwrap_or(DEFAULT_RELEASE_INTERVAL_SECS),
        stats: req.stats,
    };
    validate_study(&params)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidStudy, e.to_string()))?;
    if s.db
        .study(params.id.clone())
        .await
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(ApiError::conflict(
            ErrorCode::StudyExists,
            format!("study {:?} exists", params.id),
        ));
    }
    // Every party pins the study now, with its own floors: a study that a
    // party would refuse at its first batch is refused here instead.
    let p = &*s.parties;
    let (a, b, c) = tokio::join!(
        p.pin_study(0, &params),
        p.pin_study(1, &params),
        p.pin_study(2, &params)
    );
    for r in [a, b, c] {
        match r {
            Ok(()) => {}
            Err(
                e @ PartyError {
                    fault: PartyFault::Refused(_),
                    ..
                },
            ) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidStudy,
                    e.to_string(),
                ))
            }
            Err(e) => {
                return Err(ApiError::unavailable(
                    ErrorCode::PartiesUnavailable,
                    e.to_string(),
                ))
            }
        }
    }
    // The study's directory id, stored with it: what providers find it by.
    let entry = crate::directory::new_entry(&s.directory_key, Kind::Study, &params.id)
        .map_err(|_| ApiError::internal("system RNG failed"))?;
    let now = triad_wire::unix_now();
    let progress = triad_wire::study::release_progress(&params, 0, None, now);
    let info = StudyInfo {
        params,
        created_at: now,
        contributions: 0,
        releases: 0,
        directory_id: Some(entry.directory_id.clone()),
        progress: Some(progress),
    };
    if !s
        .db
        .create_study(info.clone(), entry)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::conflict(
            ErrorCode::StudyExists,
            format!("study {:?} exists", info.params.id),
        ));
    }
    // Published in the background: never delays or fails the creation.
    s.publisher.notify(Kind::Study, &info.params.id);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `GET /healthz`: 200 while the coordinator serves, with its
/// dependencies' state: its store and each party's health answer
/// (`"degraded"` if any is not ok), queued submissions, stuck commits and
/// cheating reports.
async fn health(State(s): St) -> Json<serde_json::Value> {
    let store = match s.db.queued_summary().await {
        Ok(q) => Ok(q.iter().map(|(_, n, _)| *n).sum::<usize>()),
        Err(e) => Err(e.to_string()),
    };
    let p = &*s.parties;
    let (a, b, c) = tokio::join!(p.health(0), p.health(1), p.health(2));
    let parties: Vec<String> = [a, b, c]
        .into_iter()
        .map(|r| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("unreachable: {}", e.fault),
        })
        .collect();
    let ok = store.is_ok() && parties.iter().all(|p| p == "ok");
    let stuck = s.stuck.lock().unwrap_or_else(|e| e.into_inner()).len();
    let cheating = s.cheating.lock().unwrap_or_else(|e| e.into_inner()).len();
    Json(serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "store": store.as_ref().map_or_else(|e| format!("error: {e}"), |_| "ok".to_string()),
        "parties": parties,
        "queued": store.unwrap_or(0),
        "stuck_commits": stuck,
        "cheating_reports": cheating,
    }))
}

/// `GET /internal/status` (operator): what needs an operator's attention.
async fn status(_: Admin, State(s): St) -> Result<Json<serde_json::Value>, ApiError> {
    let stuck: Vec<serde_json::Value> = s
        .stuck
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(id, errors)| serde_json::json!({"batch_id": id, "errors": errors}))
        .collect();
    let cheating: Vec<serde_json::Value> = s
        .cheating
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(caught, party, what)| {
            let (key, id) = match caught {
                Caught::Batch(b) => ("batch_id", b),
                Caught::PollTally(p) => ("poll_id", p),
            };
            serde_json::json!({key: id, "reported_by": party, "what": what})
        })
        .collect();
    Ok(Json(serde_json::json!({
        "stuck_commits": stuck,
        "cheating_detected": cheating,
    })))
}

async fn list_studies(State(s): St) -> Result<Json<Vec<StudyInfo>>, ApiError> {
    Ok(Json(s.db.studies().await.map_err(ApiError::internal)?))
}

async fn get_study(State(s): St, Path(id): Path<String>) -> Result<Json<StudyInfo>, ApiError> {
    s.db.study(id.clone())
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(ErrorCode::UnknownStudy, format!("no study {id:?}")))
}

async fn submit(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(study): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let go = async {
        let req: SubmitRequest = parse_json(&body(b)?)?;
        let admitted = admit_submission(
            &s.db,
            &study,
            &req.attestation,
            req.token.as_deref(),
            &s.policy(),
            triad_wire::unix_now(),
        )
        .await
        .map_err(admission_refusal)?;
        Ok::<_, ApiError>(SubmitResponse {
            submission_id: admitted.submission_id,
            token: admitted.token,
            parties: s.party_urls.clone(),
        })
    };
    limited(&s, &peer, StatusCode::ACCEPTED, go).await
}

/// The status of a refused admission (also a poll sign-up's attestation):
/// 404 for an unknown study, 400 for a malformed token, 409 for a replay or
/// a second contribution, 422 for an attestation that does not fit, 503
/// when full, 500 for our faults.
pub(crate) fn admission_status(e: &AdmissionError) -> StatusCode {
    use AdmissionError as E;
    match e {
        E::MalformedToken => StatusCode::BAD_REQUEST,
        E::UnknownStudy(_) => StatusCode::NOT_FOUND,
        E::Replayed | E::AlreadyContributed => StatusCode::CONFLICT,
        E::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
        E::Store(_) | E::Rng => {
            tracing::error!(error = %e, "admission failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        E::AttestationExpired(_)
        | E::AttestationInvalid(_)
        | E::AttestationStale { .. }
        | E::StudyMismatch
        | E::WrongSource(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The HTTP answer to a refused admission: 404 for an unknown study, 400
/// for a malformed token, 409 for a replay or a second contribution, 422
/// for an attestation that does not fit, 503 when full, 500 for our faults.
fn admission_refusal(e: AdmissionError) -> ApiError {
    let status = admission_status(&e);
    // Our own failures are logged above, not described to the provider.
    let message = match e.fault() {
        Fault::Coordinator => "the coordinator failed; try again later".to_string(),
        Fault::Provider | Fault::Load => e.to_string(),
    };
    ApiError::new(status, e.code(), message)
}

fn unknown_submission(sid: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::UnknownSubmission,
        format!("no submission {sid:?}"),
    )
}

async fn ready(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(sid): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let go = async {
        let req: ReadyRequest = parse_json(&body(b)?)?;
        let row =
            s.db.submission(sid.clone())
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| unknown_submission(&sid))?;
        // Comparing digests keeps the comparison's timing independent of
        // the secret token.
        if token_digest(&req.token) != row.token_sha256 {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::WrongToken,
                "wrong submission token",
            ));
        }
        let digest = check_receipts(&req.receipts, &s.party_keys, &sid, &row.token_sha256)?;
        if !s
            .db
            .mark_ready(sid.clone(), digest, req.receipts.clone())
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::conflict(
                ErrorCode::WrongState,
                format!("submission is {:?}, not awaiting shares", row.state.status),
            ));
        }
        s.wake.notify_one();
        // The state the transition produced; the driver may already have
        // moved on (a full batch starts at once).
        Ok(SubmissionState {
            status: SubmissionStatus::Queued,
            reason: None,
            batch_id: None,
            ..row.state
        })
    };
    limited(&s, &peer, StatusCode::ACCEPTED, go).await
}

/// The digest of the share commitments all three parties signed receipts
/// for, if the receipts are for this submission and its token.
fn check_receipts(
    receipts: &[SignedReceipt],
    keys: &[String; 3],
    sid: &str,
    token_sha256: &str,
) -> Result<String, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorCode::BadReceipts, m);
    let v = verify_receipts(receipts, keys).map_err(|e| bad(format!("share receipts: {e}")))?;
    // Shares about to lapse would only be rejected as missing later.
    v.check_retention(triad_wire::unix_now(), MIN_KEEP_AT_READY_SECS)
        .map_err(|e| bad(format!("share receipts: {e}")))?;
    let r = v.receipt;
    if r.submission_id != sid || r.token_sha256 != token_sha256 {
        return Err(bad(
            "the share receipts are for another submission or token".into(),
        ));
    }
    Ok(r.digest())
}

/// `GET /v1/submissions/{sid}[?wait_ms=N]`: the state now, or (long poll)
/// as soon as it is final, at most N ms (capped) later. Long polling spares
/// the provider's and the coordinator's CPU the repeated requests.
async fn get_submission(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(sid): Path<String>,
    q: Result<Query<WaitParams>, QueryRejection>,
) -> Result<Response, Response> {
    s.limiter
        .check(peer.0.ip())
        .map_err(IntoResponse::into_response)?;
    get_submission_checked(s, sid, q)
        .await
        .map_err(IntoResponse::into_response)
}

async fn get_submission_checked(
    s: Arc<AppState>,
    sid: String,
    q: Result<Query<WaitParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(ErrorCode::MalformedBody, e.body_text()))?;
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    loop {
        // Registered before the read, so a step that ends in between wakes us.
        let settled = s.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let row =
            s.db.submission(sid.clone())
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| unknown_submission(&sid))?;
        let done = matches!(
            row.state.status,
            SubmissionStatus::Accepted | SubmissionStatus::Rejected
        );
        if done || tokio::time::timeout_at(deadline, settled).await.is_err() {
            return Ok(Json(row.state).into_response());
        }
    }
}

async fn batch_decision(
    _: FromParty,
    State(s): St,
    Path(id): Path<String>,
) -> Result<Json<BatchDecision>, ApiError> {
    let batch_id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(ErrorCode::MalformedBody, "batch id must be an integer")
    })?;
    let decision =
        s.db.batch_decision(batch_id)
            .await
            .map_err(ApiError::internal)?;
    Ok(Json(BatchDecision { batch_id, decision }))
}
