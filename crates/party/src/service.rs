//! The party's HTTPS service: thin handlers over the intake, the store and
//! the MPC worker.
//!
//! Public: `POST /v1/shares`, `GET /v1/studies/{id}/release/latest`,
//! `GET /v1/info`, `GET /healthz`. Internal (coordinator only, bearer
//! token): `POST /internal/batches/prepare`, `POST
//! /internal/batches/{id}/commit`, `POST /internal/batches/{id}/abort`,
//! `POST /internal/releases`, `POST /internal/studies`,
//! `GET /internal/holdings`, `POST /internal/directory/endorse`.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts as RequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use triad_attestation::NotaryPublicKey;
use triad_crypto::{fr_from_hex, Fr};
use triad_wire::https::{check_token_digest, json_fallbacks, parse_json, ServeLimits};
use triad_wire::limits::{RateLimit, RateLimiter};
use triad_wire::messages::{
    valid_study_id, BatchDecision, Decision, PrepareBatch, PrepareResult, ReleaseRequest,
    ShareUpload, StudyParams, INTERNAL_TOKEN_HEADER,
};
use triad_wire::receipt::SignedReceipt;
use triad_wire::release::Release;
use triad_wire::study::{check_floors, release_allowed, StudyError};
use triad_wire::{ApiError, NetworkConfig, PartySigningKey, PeerAddr, SignedRelease};

use crate::intake::{parse_upload, token_sha256, Components, Intake, Key};
use crate::jobs::{self, JobError};
use crate::mesh::Mesh;
use crate::refusal::Refusal;
use crate::store::{Audit, BatchState, PartyStore};

/// Largest batch a party accepts.
pub const MAX_BATCH: usize = 10_000;

/// The largest prepare request: [`MAX_BATCH`] items of about 2.2 KB each
/// (the attestation and the three signed receipts), with room to spare.
const MAX_PREPARE_BODY: usize = 32 * 1024 * 1024;
/// How long a handler waits for its MPC job (queue plus run).
const JOB_TIMEOUT: Duration = Duration::from_secs(600);
/// MPC jobs waiting for the worker: the coordinator's single driver issues
/// one at a time, so a longer queue means a misbehaving caller.
const JOB_QUEUE: usize = 8;
/// Prepared batches whose intake entries are remembered until decided.
const MAX_BATCH_KEYS: usize = 1024;

/// The HTTPS server's limits for this router: the handler deadline stays
/// above [`JOB_TIMEOUT`], so an internal call waiting for its MPC job gets
/// the job's own answer. (Heads, bodies and stalled writes keep their
/// short deadlines.)
pub fn serve_limits(mut l: ServeLimits) -> ServeLimits {
    l.request_timeout = l.request_timeout.max(JOB_TIMEOUT + Duration::from_secs(30));
    l
}

type Job = Box<dyn FnOnce(&Mesh) + Send>;

pub use triad_wire::study::Floors;

pub struct PartyState {
    pub store: Arc<dyn PartyStore>,
    pub intake: Intake,
    pub(crate) limiter: RateLimiter,
    pub key: Arc<PartySigningKey>,
    pub internal_token: String,
    pub coordinator_token_sha256: [u8; 32],
    pub network: NetworkConfig,
    pub http: reqwest::Client,
    pub floors: Floors,
    /// The notary key attestations must be signed with.
    pub notary_key: NotaryPublicKey,
    jobs: mpsc::SyncSender<Job>,
    /// Which intake entries each prepared batch used (dropped on commit).
    batch_keys: Mutex<HashMap<u64, Vec<Key>>>,
    /// Poll tallies running or failed on the worker (see [`crate::polls`]).
    pub(crate) poll_jobs: crate::polls::PollJobs,
    /// This party's index (0, 1, 2).
    pub index: usize,
}

/// What a party's service is made of, besides its MPC mesh.
pub struct Parts {
    pub store: Arc<dyn PartyStore>,
    pub key: PartySigningKey,
    /// This party's credential toward the coordinator.
    pub internal_token: String,
    /// Digest of the coordinator's credential: a party can check it but,
    /// not holding it, cannot give orders to the other parties.
    pub coordinator_token_sha256: [u8; 32],
    pub network: NetworkConfig,
    pub http: reqwest::Client,
    pub floors: Floors,
    pub notary_key: NotaryPublicKey,
    /// Limits on share uploads (per client IP and global).
    pub upload_rate: RateLimit,
}

/// Default upload limits: a provider uploads once per contribution, so a
/// client address above a few per second is not one provider.
pub const DEFAULT_UPLOAD_RATE: RateLimit = RateLimit {
    per_ip_per_sec: 20.0,
    per_ip_burst: 100.0,
    global_per_sec: 5000.0,
    global_burst: 10000.0,
};

/// How long uploaded shares wait for their batch: beyond the coordinator's
/// shares timeout (60 s) plus a batch's run, nothing will ask for them.
const INTAKE_TTL: Duration = Duration::from_secs(180);

impl PartyState {
    pub fn new(mesh: Mesh, parts: Parts) -> Arc<Self> {
        let Parts {
            store,
            key,
            internal_token,
            coordinator_token_sha256,
            network,
            http,
            floors,
            notary_key,
            upload_rate,
        } = parts;
        let index = mesh.id.index();
        let (tx, rx) = mpsc::sync_channel::<Job>(JOB_QUEUE);
        // The one MPC worker: jobs run strictly one after another, in the
        // order the coordinator's single driver issued them.
        std::thread::Builder::new()
            .name("mpc-worker".into())
            .spawn(move || {
                for job in rx {
                    job(&mesh);
                }
            })
            .expect("spawn MPC worker");
        let intake = Intake::durable(200_000, INTAKE_TTL, store.clone());
        Arc::new(Self {
            store,
            intake,
            limiter: RateLimiter::new(upload_rate),
            key: Arc::new(key),
            internal_token,
            coordinator_token_sha256,
            network,
            http,
            floors,
            notary_key,
            jobs: tx,
            batch_keys: Mutex::new(HashMap::new()),
            poll_jobs: Default::default(),
            index,
        })
    }

    /// The study as this party pinned it on first sight. A request that
    /// changes what protects contributors (data spec, thresholds,
    /// statistics) is refused, and so is a study below this party's floors:
    /// the coordinator alone cannot make the parties release small cohorts.
    fn pin(&self, study: &StudyParams) -> Result<StudyParams, Refusal> {
        self.pin_with(study, <dyn PartyStore>::pin_study)
    }

    /// [`PartyState::pin`] with the store's pinning operation `op`.
    fn pin_with(
        &self,
        study: &StudyParams,
        op: impl FnOnce(&dyn PartyStore, &StudyParams) -> Result<StudyParams, crate::store::StoreError>,
    ) -> Result<StudyParams, Refusal> {
        check_floors(study, self.floors).map_err(|e| match e {
            StudyError::BelowFloor { .. } => Refusal::BelowThreshold(e.to_string()),
            _ => Refusal::InvalidStudy(e),
        })?;
        let pinned = op(self.store.as_ref(), study)?;
        if pinned != *study {
            let same_protection = pinned.data_spec == study.data_spec
                && pinned.source == study.source
                && pinned.min_cohort == study.min_cohort
                && pinned.min_new == study.min_new
                && pinned.stats == study.stats;
            if !same_protection {
                return Err(Refusal::StudyChanged(study.id.clone()));
            }
        }
        Ok(pinned)
    }

    /// Remembers which intake entries a prepared batch used, until its
    /// decision. Bounded: beyond [`MAX_BATCH_KEYS`] undecided batches the
    /// oldest are forgotten (their entries then simply expire).
    fn remember_batch_keys(&self, batch_id: u64, keys: Vec<Key>) {
        let mut m = self.batch_keys.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(batch_id, keys);
        while m.len() > MAX_BATCH_KEYS {
            let Some(oldest) = m.keys().min().copied() else {
                break;
            };
            m.remove(&oldest);
        }
    }

    /// This party's own admission check of every item ([`crate::vet`]).
    fn vet_attestations(
        &self,
        req: &PrepareBatch,
        study: &StudyParams,
        now: u64,
    ) -> Result<Vec<bool>, Refusal> {
        Ok(crate::vet::refused_items(
            &req.items,
            study,
            &self.notary_key,
            now,
            |n| self.store.nullifier_used(&study.id, n),
        )?)
    }

    /// Queues `f` on the MPC worker without waiting for it (a poll's
    /// tally, which may outlast any HTTP request); 503 `busy` when full.
    pub(crate) fn spawn_job(&self, f: impl FnOnce(&Mesh) + Send + 'static) -> Result<(), Refusal> {
        self.jobs.try_send(Box::new(f)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Refusal::Busy("the MPC queue is full"),
            mpsc::TrySendError::Disconnected(_) => Refusal::internal("MPC worker is gone"),
        })
    }

    /// Runs `f` on the MPC worker and waits for its result. The queue is
    /// bounded (503 `busy` when full), and a job whose caller gave up
    /// (timed out, disconnected) before it started is skipped.
    async fn run_job<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mesh) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, Refusal> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |mesh| {
            if tx.is_closed() {
                tracing::info!("MPC job skipped: its caller is gone");
                return;
            }
            let _ = tx.send(f(mesh));
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Refusal::Busy("the MPC queue is full"),
            mpsc::TrySendError::Disconnected(_) => Refusal::internal("MPC worker is gone"),
        })?;
        match tokio::time::timeout(JOB_TIMEOUT, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) if e.is_cheating() => {
                tracing::error!(error = %e, "MPC job aborted: cheating detected");
                Err(Refusal::Cheating(e.to_string()))
            }
            Ok(Ok(Err(e))) => Err(Refusal::Mpc(e.to_string())),
            Ok(Err(_)) => Err(Refusal::internal("MPC job dropped")),
            Err(_) => Err(Refusal::Busy("MPC job timed out")),
        }
    }
}

pub(crate) type St = State<Arc<PartyState>>;

/// A request with the coordinator's token. As an internal handler's first
/// argument it answers 401 before anything else of the request is read
/// (its path parameters, its body): an unauthenticated caller learns
/// nothing about the routes' shape and costs no body read.
pub(crate) struct FromCoordinator;

impl FromRequestParts<Arc<PartyState>> for FromCoordinator {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut RequestParts,
        s: &Arc<PartyState>,
    ) -> Result<Self, ApiError> {
        check_token_digest(
            &parts.headers,
            INTERNAL_TOKEN_HEADER,
            &s.coordinator_token_sha256,
        )
        .map(|()| FromCoordinator)
    }
}

/// The raw body, with an over-long one answered in our JSON shape.
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    triad_wire::https::body_bytes(b)
}

/// The HTTP answer to a [`Refusal`]: the one place the party's statuses are
/// chosen. 400 malformed, 404 unknown, 409 conflicts with what this party
/// pinned or decided, 503 load or a failed MPC session (the coordinator
/// retries), 500 this party's own failure.
impl From<Refusal> for ApiError {
    fn from(e: Refusal) -> Self {
        use Refusal as R;
        let status = match &e {
            R::Malformed(_) | R::BadShares(_) | R::InvalidStudy(_) | R::InvalidPoll(_) => {
                StatusCode::BAD_REQUEST
            }
            R::UnknownBatch(_) | R::NoRelease | R::UnknownPoll(_) | R::NoTally => {
                StatusCode::NOT_FOUND
            }
            R::BelowThreshold(_)
            | R::StudyChanged(_)
            | R::WrongState(_)
            | R::PollChanged(_)
            | R::SharesConflict => StatusCode::CONFLICT,
            R::PollClosed(_) | R::VotingOpen(_) => StatusCode::FORBIDDEN,
            // 403: the coordinator is not trusted here; 409: the record
            // does not describe this network or a study pinned here.
            R::NotEndorsed(e) if e.is_untrusted() => StatusCode::FORBIDDEN,
            R::NotEndorsed(_) => StatusCode::CONFLICT,
            R::BadTallyInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            R::Busy(_) | R::IntakeFull | R::Mpc(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A peer's fault, not this party's or the caller's.
            R::Cheating(_) => StatusCode::BAD_GATEWAY,
            R::Internal(_) => {
                tracing::error!(error = %e, "party failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

pub fn router(state: Arc<PartyState>) -> Router {
    let public = Router::new()
        .route("/v1/shares", post(put_shares))
        .merge(crate::polls::public_routes())
        .layer(DefaultBodyLimit::max(16 * 1024));
    let internal = Router::new()
        .route(
            "/internal/batches/prepare",
            post(prepare).layer(DefaultBodyLimit::max(MAX_PREPARE_BODY)),
        )
        .route("/internal/batches/{id}/commit", post(commit))
        .route("/internal/batches/{id}/abort", post(abort))
        .route("/internal/releases", post(release))
        .route("/internal/studies", post(pin_study))
        .route("/internal/holdings", get(holdings))
        .merge(crate::polls::internal_routes())
        .merge(crate::directory::internal_routes())
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
    let r = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(triad_wire::metrics::serve_metrics))
        .route("/v1/info", get(info))
        .route("/v1/studies/{id}/release/latest", get(latest_release))
        .route("/v1/polls/{id}/tally", get(crate::polls::signed_tally))
        .merge(public)
        .merge(internal);
    json_fallbacks(r)
        .layer(axum::middleware::from_fn(triad_wire::trace::trace_requests))
        .with_state(state)
}

async fn info(State(s): St) -> Json<serde_json::Value> {
    Json(json!({
        "sign_key": s.key.public_key().to_hex(),
        "intake": s.intake.len(),
    }))
}

/// `GET /healthz`: 200 while the party serves, with its store's state
/// (`"degraded"` if it fails), the intake's size and the security mode.
async fn health(State(s): St) -> Json<serde_json::Value> {
    let store = blocking(&s, |s| s.store.pending_batches().map_err(Refusal::from)).await;
    Json(json!({
        "status": if store.is_ok() { "ok" } else { "degraded" },
        "party": s.index,
        "store": store.as_ref().map_or_else(|e| format!("error: {e}"), |_| "ok".to_string()),
        "pending_batches": store.map_or(0, |b| b.len()),
        "intake": s.intake.len(),
    }))
}

async fn put_shares(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SignedReceipt>), Response> {
    s.limiter
        .check(peer.0.ip())
        .map_err(IntoResponse::into_response)?;
    // The upload is made durable before the receipt is signed: off the
    // runtime.
    blocking(&s, move |s| put_shares_checked(s, b))
        .await
        .map_err(IntoResponse::into_response)
}

/// Checks an upload against the provider's commitments, holds it, and
/// answers with this party's signed receipt.
fn put_shares_checked(
    s: &PartyState,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SignedReceipt>), ApiError> {
    let upload: ShareUpload = parse_json(&body(b)?)?;
    let (key, c, mut receipt) = parse_upload(&upload, s.index)?;
    receipt.kept_until = s.intake.put(key, c)?;
    let signed = receipt.sign(s.index as u8, &s.key);
    Ok((StatusCode::ACCEPTED, Json(signed)))
}

async fn latest_release(
    State(s): St,
    Path(id): Path<String>,
) -> Result<Json<SignedRelease>, ApiError> {
    if !valid_study_id(&id) {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedBody,
            "invalid study id",
        ));
    }
    let store = s.store.clone();
    let got = tokio::task::spawn_blocking(move || store.latest_release(&id))
        .await
        .map_err(ApiError::internal)?
        .map_err(Refusal::from)?;
    match got {
        Some((_, _, signed)) => Ok(Json(signed)),
        None => Err(ApiError::not_found(
            ErrorCode::NoRelease,
            "no release of this study yet",
        )),
    }
}

/// Decodes and checks a prepare request before any MPC. Public for the fuzz
/// targets only.
#[doc(hidden)]
pub fn validate_prepare(req: &PrepareBatch) -> Result<Vec<Fr>, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorCode::MalformedBody, m);
    if !valid_study_id(&req.study.id) {
        return Err(bad("invalid study id".into()));
    }
    if req.items.is_empty() || req.items.len() > MAX_BATCH {
        return Err(bad(format!("a batch holds 1..={MAX_BATCH} items")));
    }
    let mut seen = std::collections::HashSet::new();
    req.items
        .iter()
        .map(|it| {
            if !seen.insert(&it.submission_id) {
                return Err(bad(format!("duplicate item {}", it.submission_id)));
            }
            let mut h = [0u8; 32];
            hex::decode_to_slice(&it.token_sha256, &mut h)
                .map_err(|_| bad("token_sha256 must be 64 hex digits".into()))?;
            hex::decode_to_slice(&it.shares_digest, &mut h)
                .map_err(|_| bad("shares_digest must be 64 hex digits".into()))?;
            let in_order = it
                .receipts
                .iter()
                .enumerate()
                .all(|(i, r)| r.party as usize == i);
            if !(it.receipts.is_empty() || (it.receipts.len() == 3 && in_order)) {
                return Err(bad(format!(
                    "item {} must carry no receipts or parties 0, 1, 2's",
                    it.submission_id
                )));
            }
            fr_from_hex(&it.commitment).map_err(|_| bad("commitment is not a scalar".into()))
        })
        .collect()
}

/// Runs `f` on the blocking pool: SQLite and signature checks never hold
/// a runtime thread (two such calls on a 2-thread runtime would stall
/// `/healthz` and every upload).
pub(crate) async fn blocking<T: Send + 'static, E: From<Refusal> + Send + 'static>(
    s: &Arc<PartyState>,
    f: impl FnOnce(&PartyState) -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| E::from(Refusal::internal(e)))?
}

/// What a prepare request needs from the store before any MPC.
enum PrepareStart {
    /// A repeated prepare: the stored answer.
    Answered(PrepareResult),
    /// A new batch of this pinned study; `pending` if earlier batches still
    /// wait for their decision.
    New { study: StudyParams, pending: bool },
}

async fn prepare(
    _: FromCoordinator,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<PrepareResult>, ApiError> {
    let req: PrepareBatch = parse_json(&body(b)?)?;
    let commitments = validate_prepare(&req)?;
    let hash: [u8; 32] = Sha256::digest(serde_json::to_vec(&req).expect("serializes")).into();
    let (batch_id, pin_req) = (req.batch_id, req.study.clone());
    let start = blocking(&s, move |s| {
        // A repeated prepare gets the stored answer; an aborted batch stays so.
        if let Some(stored) = s.store.batch(batch_id).map_err(Refusal::from)? {
            return match stored.state {
                BatchState::Aborted => Err(ApiError::conflict(
                    ErrorCode::WrongState,
                    format!("batch {batch_id} was aborted"),
                )),
                _ if stored.request_sha256 != hash => Err(ApiError::conflict(
                    ErrorCode::WrongState,
                    format!("batch {batch_id} was prepared with other items"),
                )),
                _ => Ok(PrepareStart::Answered(PrepareResult {
                    batch_id,
                    verdicts: stored.verdicts,
                })),
            };
        }
        let study = s.pin(&pin_req)?;
        let pending = !s.store.pending_batches().map_err(Refusal::from)?.is_empty();
        Ok(PrepareStart::New { study, pending })
    })
    .await?;
    let study = match start {
        PrepareStart::Answered(r) => return Ok(Json(r)),
        PrepareStart::New { study, pending } => {
            // A batch whose abort this party missed still holds its shares
            // as pending; settle such batches first, or their submission
            // ids would collide with this batch's retry of them.
            if pending {
                recover_pending(&s).await;
                // One still undecided would also count its nullifiers as
                // used, and this party would refuse their retried items
                // (which, in malicious mode, the others judge a lie).
                let left =
                    blocking(&s, |s| s.store.pending_batches().map_err(Refusal::from)).await?;
                if let Some(b) = left.first() {
                    tracing::warn!(batch = b, "prepare refused: an earlier batch is undecided");
                    return Err(Refusal::Busy("an earlier batch is still undecided here").into());
                }
            }
            study
        }
    };
    let keys: Vec<Key> = req
        .items
        .iter()
        .map(|it| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(&it.token_sha256, &mut h).expect("validated");
            (it.submission_id.clone(), h)
        })
        .collect();
    // Only shares uploaded under the commitments all three parties signed
    // receipts for count: a re-upload of other shares after the receipts
    // is, to this party, no upload at all.
    let inputs: Vec<Option<Components>> = keys
        .iter()
        .zip(&req.items)
        .map(|((id, h), it)| {
            s.intake
                .get(id, h)
                .filter(|c| hex::encode(c.digest) == it.shares_digest)
        })
        .collect();
    let req = Arc::new(req);
    let req2 = req.clone();
    // Up to MAX_BATCH signature checks: off the runtime.
    let vetted_at = triad_wire::unix_now();
    let refused = blocking(&s, move |s| s.vet_attestations(&req2, &study, vetted_at)).await?;
    let store = s.store.clone();
    let req2 = req.clone();
    let sign_keys = s.network.parties.clone().map(|p| p.sign_key);
    let verdicts = s
        .run_job(move |mesh| {
            let evidence = crate::vet::BatchEvidence {
                items: &req2.items,
                keys: sign_keys,
                vetted_at,
            };
            jobs::prepare(
                mesh,
                store.as_ref(),
                &req2,
                &hash,
                &commitments,
                &inputs,
                &refused,
                &evidence,
            )
        })
        .await?;
    // Only the passing items' uploads are consumed when the batch commits:
    // a rejected item's upload stays held until `kept_until`, as its
    // receipt promised (a coordinator that batched it again would
    // otherwise have this honest party judged a liar).
    let passing: Vec<Key> = keys
        .into_iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    s.remember_batch_keys(req.batch_id, passing);
    Ok(Json(PrepareResult {
        batch_id: req.batch_id,
        verdicts,
    }))
}

/// Applies the coordinator's decision on a batch.
pub fn apply_decision(s: &PartyState, batch_id: u64, d: Decision) -> Result<BatchState, Refusal> {
    let st = match d {
        Decision::Commit => s.store.commit(batch_id)?,
        Decision::Abort => s.store.abort(batch_id)?,
        Decision::Pending => return Err(Refusal::Malformed("no decision".into())),
    };
    // Decided either way: the batch's intake entries are no longer
    // needed under this id (an aborted batch's submissions come back in a
    // new batch, which remembers them again; their uploads stay in the
    // intake until that batch commits or they expire).
    let keys = s
        .batch_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&batch_id);
    if let (Some(keys), BatchState::Committed) = (keys, st) {
        s.intake.remove(&keys);
    }
    Ok(st)
}

async fn decide(
    s: &Arc<PartyState>,
    id: &str,
    d: Decision,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(ErrorCode::MalformedBody, "batch id must be an integer")
    })?;
    let got = blocking(s, move |s| apply_decision(s, id, d)).await?;
    let want = if d == Decision::Commit {
        BatchState::Committed
    } else {
        BatchState::Aborted
    };
    if got != want {
        return Err(ApiError::conflict(
            ErrorCode::WrongState,
            format!("batch {id} is already {got:?}"),
        ));
    }
    Ok(Json(
        json!({"batch_id": id, "state": format!("{got:?}").to_lowercase()}),
    ))
}

async fn commit(
    _: FromCoordinator,
    State(s): St,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&s, &id, Decision::Commit).await
}

async fn abort(
    _: FromCoordinator,
    State(s): St,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&s, &id, Decision::Abort).await
}

/// `POST /internal/studies`: the coordinator announces a new study; this
/// party pins it or says why it never will serve it.
async fn pin_study(
    _: FromCoordinator,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<StudyParams>, ApiError> {
    let study: StudyParams = parse_json(&body(b)?)?;
    let pinned = blocking(&s, move |s| {
        s.pin_with(&study, <dyn PartyStore>::pin_new_study)
    })
    .await?;
    Ok(Json(pinned))
}

/// `GET /internal/holdings[?after_study=…&after_submission=…&limit=…]`:
/// the batches this party has not settled, and which submissions it holds
/// shares of in which batch state, a page at a time (at most
/// [`MAX_HOLDINGS_PAGE`], in (study, submission) order): the coordinator's
/// (and the tests') audit of a party without reading its database. Ids and
/// states only, never shares.
async fn holdings(
    _: FromCoordinator,
    State(s): St,
    q: Result<Query<HoldingsQuery>, QueryRejection>,
) -> Result<Json<Audit>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(ErrorCode::MalformedBody, e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_HOLDINGS_PAGE);
    if limit == 0 || limit > MAX_HOLDINGS_PAGE {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedBody,
            format!("limit must be 1..={MAX_HOLDINGS_PAGE}"),
        ));
    }
    let after = match (q.after_study, q.after_submission) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::MalformedBody,
                "after_study and after_submission go together",
            ))
        }
    };
    let page = blocking(&s, move |s| {
        let after = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        Ok::<_, Refusal>(s.store.audit(after, limit)?)
    })
    .await?;
    Ok(Json(page))
}

/// Largest page of `GET /internal/holdings`.
pub const MAX_HOLDINGS_PAGE: usize = 10_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldingsQuery {
    after_study: Option<String>,
    after_submission: Option<String>,
    limit: Option<usize>,
}

async fn release(
    _: FromCoordinator,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<SignedRelease>, ApiError> {
    let req: ReleaseRequest = parse_json(&body(b)?)?;
    let req = blocking(&s, move |s| release_checks(s, req)).await?;
    let (store, key) = (s.store.clone(), s.key.clone());
    let signed = s
        .run_job(move |mesh| jobs::release(mesh, store.as_ref(), &key, &req))
        .await?;
    Ok(Json(signed))
}

/// The party's own checks of a release request, against its store: the
/// pinned study, the release order, and the output-privacy rule.
fn release_checks(s: &PartyState, mut req: ReleaseRequest) -> Result<ReleaseRequest, Refusal> {
    req.study = s.pin(&req.study)?;
    let latest = s.store.latest_release(&req.study.id)?;
    let latest_no = latest.as_ref().map(|(no, _, _)| *no).unwrap_or(0);
    if let Some((no, _, signed)) = latest.as_ref().filter(|l| l.0 == req.release_no) {
        // A retry: the peers may not have stored this release, so join the
        // computation again; it must ask for the same document.
        let stored: Release = serde_json::from_str(&signed.release_json)
            .map_err(|e| Refusal::internal(format!("stored release: {e}")))?;
        if stored.created_at != req.created_at {
            return Err(Refusal::WrongState(format!(
                "release {no} was made at {}",
                stored.created_at
            )));
        }
    } else if req.release_no != latest_no + 1 {
        return Err(Refusal::WrongState(format!(
            "next release is {}, not {}",
            latest_no + 1,
            req.release_no
        )));
    }
    // Output privacy is the party's own rule, not only the coordinator's:
    // the same release rule, with the thresholds this party pinned.
    let previous = match req.release_no.checked_sub(1).filter(|n| *n > 0) {
        Some(last_no) => Some(
            s.store
                .release(&req.study.id, last_no)?
                .map(|(count, _)| count)
                .ok_or_else(|| Refusal::internal(format!("release {last_no} is missing")))?,
        ),
        None => None,
    };
    let count = s.store.committed_count(&req.study.id, req.as_of_batch)?;
    release_allowed(&req.study, count, previous)
        .map_err(|e| Refusal::BelowThreshold(e.to_string()))?;
    Ok(req)
}

/// Resolves batches left pending (after a restart, or a lost commit) by
/// asking the coordinator for its decision.
pub async fn recover_pending(s: &Arc<PartyState>) {
    // SQLite blocks: off the runtime's worker threads.
    let pending = match blocking(s, |s| s.store.pending_batches().map_err(Refusal::from)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "recovery: reading pending batches");
            return;
        }
    };
    for id in pending {
        let url = format!("{}/internal/batches/{id}", s.network.coordinator);
        let resp = s
            .http
            .get(&url)
            .header(INTERNAL_TOKEN_HEADER, &s.internal_token)
            .send()
            .await;
        let d: Result<BatchDecision, _> = match resp {
            Ok(r) => triad_wire::https::read_json(r).await,
            Err(e) => Err(ApiError::unavailable(ErrorCode::Transport, e.to_string())),
        };
        match d {
            Ok(BatchDecision { decision, .. }) if decision != Decision::Pending => {
                if let Err(e) = blocking(s, move |s| apply_decision(s, id, decision)).await {
                    tracing::error!(batch = id, error = %e, "recovery: applying the decision");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(batch = id, error = %e, "recovery: asking the coordinator"),
        }
    }
}

/// Token hash helper re-exported for clients and tests.
pub fn hash_token(token: &str) -> String {
    hex::encode(token_sha256(token))
}
