//! The polls' HTTP surface: thin handlers over [`crate::polls`].
//!
//! `POST /v1/polls` (operator), `GET /v1/polls`, `GET /v1/polls/{id}`,
//! `GET|POST /v1/polls/{id}/signups`, `POST /v1/polls/{id}/messages`,
//! `POST /v1/poll-messages/{sid}/ready`, `GET /v1/polls/{id}/log`,
//! `GET /v1/polls/{id}/tally`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use triad_wire::https::parse_json;
use triad_wire::poll::{
    LogEntry, MessageReady, MessageRequest, MessageTicket, PollInfo, PollSpec, Signup,
    SignupRequest, VerifiedTally,
};
use triad_wire::{ApiError, ErrorCode, PeerAddr};

use crate::polls::{self, PollError, PollFault};
use crate::routes::{limited, Admin, AppState};

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/polls", post(create).get(list))
        .route("/v1/polls/{id}", get(info))
        .route("/v1/polls/{id}/signups", post(signup).get(signups))
        .route("/v1/polls/{id}/messages", post(message))
        .route("/v1/poll-messages/{sid}/ready", post(ready))
        .route("/v1/polls/{id}/log", get(log))
        .route("/v1/polls/{id}/tally", get(tally))
}

/// The HTTP answer to a refused poll request.
fn refusal(e: PollError) -> ApiError {
    use PollError as E;
    let status = match &e {
        E::UnknownPoll(_) | E::UnknownMessage(_) | E::NoTally(_) => StatusCode::NOT_FOUND,
        E::PollExists(_) | E::AlreadySignedUp | E::NullifierUsed => StatusCode::CONFLICT,
        E::SignupClosed(_)
        | E::PollClosed(_)
        | E::VotingOpen(_)
        | E::SignupOpen(_)
        | E::RekeyLimit(_) => StatusCode::FORBIDDEN,
        E::WrongToken => StatusCode::FORBIDDEN,
        E::InvalidPoll(_) | E::BadKey(_) | E::BadRekey(_) | E::MalformedCommitment => {
            StatusCode::BAD_REQUEST
        }
        E::Attestation(a) => crate::routes::admission_status(a),
        E::PartyRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::QueueFull | E::PartiesUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Store(_) | E::Rng => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = if e.fault() == PollFault::Coordinator {
        tracing::error!(error = %e, "poll request failed");
        "the coordinator failed; try again later".to_string()
    } else {
        e.to_string()
    };
    ApiError::new(status, e.code(), message)
}

fn poll_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(ErrorCode::MalformedBody, "poll id must be an integer"))
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    triad_wire::https::body_bytes(b)
}

async fn create(
    _: Admin,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let spec: PollSpec = parse_json(&body(b)?)?;
    let info = polls::create_poll(
        &s.db,
        &s.parties,
        &s.directory_key,
        spec,
        triad_wire::unix_now(),
    )
    .await
    .map_err(refusal)?;
    // Published in the background: never delays or fails the creation.
    s.publisher.notify(
        crate::store::directory::Kind::Poll,
        &info.spec.id.to_string(),
    );
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn list(State(s): St) -> Result<Json<Vec<PollInfo>>, ApiError> {
    Ok(Json(
        s.db.run(|d| d.polls()).await.map_err(ApiError::internal)?,
    ))
}

async fn info(State(s): St, Path(id): Path<String>) -> Result<Json<PollInfo>, ApiError> {
    let id = poll_id(&id)?;
    s.db.run(move |d| d.poll(id))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| refusal(PollError::UnknownPoll(id)))
}

async fn signups(State(s): St, Path(id): Path<String>) -> Result<Json<Vec<Signup>>, ApiError> {
    let id = poll_id(&id)?;
    let _known: Json<PollInfo> = info(State(s.clone()), Path(id.to_string())).await?;
    Ok(Json(
        s.db.run(move |d| d.signups(id))
            .await
            .map_err(ApiError::internal)?,
    ))
}

async fn log(State(s): St, Path(id): Path<String>) -> Result<Json<Vec<LogEntry>>, ApiError> {
    let id = poll_id(&id)?;
    let _known: Json<PollInfo> = info(State(s.clone()), Path(id.to_string())).await?;
    Ok(Json(
        s.db.run(move |d| d.log(id))
            .await
            .map_err(ApiError::internal)?,
    ))
}

async fn tally(State(s): St, Path(id): Path<String>) -> Result<Json<VerifiedTally>, ApiError> {
    let id = poll_id(&id)?;
    Ok(Json(polls::tally(&s.db, id).await.map_err(refusal)?))
}

async fn signup(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let go = async {
        let id = poll_id(&id)?;
        let req: SignupRequest = parse_json(&body(b)?)?;
        let (state_index, voice_credits) =
            polls::admit_signup(&s.db, id, &req, &s.policy(), triad_wire::unix_now())
                .await
                .map_err(refusal)?;
        Ok::<_, ApiError>(serde_json::json!({
            "state_index": state_index,
            "voice_credits": voice_credits,
        }))
    };
    limited(&s, &peer, StatusCode::CREATED, go).await
}

async fn message(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let go = async {
        let id = poll_id(&id)?;
        let req: MessageRequest = parse_json(&body(b)?)?;
        let (submission_id, token) =
            polls::open_ticket(&s.db, id, &req, s.max_queue, triad_wire::unix_now())
                .await
                .map_err(refusal)?;
        Ok::<_, ApiError>(MessageTicket {
            submission_id,
            token,
            parties: s.party_urls.clone(),
        })
    };
    limited(&s, &peer, StatusCode::ACCEPTED, go).await
}

async fn ready(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(sid): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let go = async {
        let req: MessageReady = parse_json(&body(b)?)?;
        polls::log_message(&s.db, &s.parties, &sid, &req.token, triad_wire::unix_now())
            .await
            .map_err(refusal)
    };
    limited(&s, &peer, StatusCode::OK, go).await
}
