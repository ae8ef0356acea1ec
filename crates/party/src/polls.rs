//! Polls at a party (docs/polls.md, "Service layer"):
//!
//! - `POST /v1/polls/{id}/shares` (voters): this party's share set of one
//!   message, stored durably with the commitment it opens;
//! - `POST /internal/polls` (coordinator): pin a poll;
//! - `POST /internal/polls/{id}/confirm` (coordinator): "do you hold it?",
//!   which marks the share set confirmed (then it never changes);
//! - `POST /internal/polls/{id}/tally` (coordinator): [`check_tally_request`]
//!   judges the sign-ups and the log, then the tally runs on the MPC worker
//!   ([`crate::jobs::tally_poll`]) in a session tagged with the request's
//!   digest, so parties given different logs never compute together;
//! - `GET /v1/polls/{id}/tally`: this party's signed tally.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use triad_attestation::{verify_attestation, NotaryPublicKey};
use triad_maci::PubKey;
use triad_polls::{PollParams, SignUp};
use triad_wire::https::parse_json;
use triad_wire::poll::{
    held_commitments, holder_key, poll_study_id, ConfirmMessage, MessageKind, MessageShares,
    PollSpec, SignedTally, TallyProgress, TallyRequest,
};
use triad_wire::{ApiError, PeerAddr};

use crate::refusal::Refusal;
use crate::service::{blocking, body, hash_token, FromCoordinator, PartyState, St};
use crate::store::PutShares;

/// Unconfirmed uploads kept at most (all polls), and for how long.
const MAX_UNCONFIRMED: usize = 100_000;
const UNCONFIRMED_TTL_MS: i64 = 3_600_000;
/// Clock skew tolerated between the coordinator and this party when
/// judging the voting deadline of an upload or a confirmation.
pub const CLOCK_GRACE_SECS: u64 = 30;

/// Tallies running or failed, by poll: (request digest, failure).
pub type PollJobs = Mutex<HashMap<u64, (String, Option<TallyFailure>)>>;

/// Why a poll's tally job failed, as the next request reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TallyFailure {
    pub why: String,
    /// A check caught a party deviating ([`crate::jobs::JobError::is_cheating`]).
    pub cheating: bool,
}

impl TallyFailure {
    pub fn of(e: &crate::jobs::JobError) -> Self {
        TallyFailure {
            why: e.to_string(),
            cheating: e.is_cheating(),
        }
    }
}

pub(crate) fn public_routes() -> Router<Arc<PartyState>> {
    Router::new().route("/v1/polls/{id}/shares", post(put_shares))
}

/// Largest tally request: the whole log and every sign-up with its
/// attestation (about 1.3 KB per sign-up and 0.35 KB per message, so some
/// 150,000 of each).
pub const MAX_TALLY_REQUEST: usize = 256 * 1024 * 1024;

pub(crate) fn internal_routes() -> Router<Arc<PartyState>> {
    Router::new()
        .route("/internal/polls", post(pin_poll))
        .route("/internal/polls/{id}/confirm", post(confirm))
        .route(
            "/internal/polls/{id}/tally",
            post(tally).layer(DefaultBodyLimit::max(MAX_TALLY_REQUEST)),
        )
}

fn poll_id(id: &str) -> Result<u64, Refusal> {
    id.parse()
        .map_err(|_| Refusal::Malformed("poll id must be an integer".into()))
}

/// The pinned poll `id` (blocks: call it on the blocking pool).
fn pinned_blocking(s: &PartyState, id: u64) -> Result<PollSpec, Refusal> {
    s.store.poll(id)?.ok_or(Refusal::UnknownPoll(id))
}

/// The pinned poll `id`, read off the runtime.
async fn pinned(s: &Arc<PartyState>, id: u64) -> Result<PollSpec, Refusal> {
    blocking(s, move |s| pinned_blocking(s, id)).await
}

async fn pin_poll(
    _: FromCoordinator,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<PollSpec>, ApiError> {
    let spec: PollSpec = parse_json(&body(b)?)?;
    spec.params()
        .map_err(|e| Refusal::InvalidPoll(e.to_string()))?;
    let asked = spec.clone();
    let stored = blocking(&s, move |s| Ok::<_, Refusal>(s.store.pin_poll(&spec)?)).await?;
    if stored != asked {
        return Err(Refusal::PollChanged(asked.id).into());
    }
    Ok(Json(stored))
}

async fn put_shares(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    s.limiter
        .check(peer.0.ip())
        .map_err(IntoResponse::into_response)?;
    let go = async {
        let id = poll_id(&id)?;
        let up: MessageShares = parse_json(&body(b)?)?;
        let (salts, set) = up.parse().map_err(Refusal::BadShares)?;
        let spec = pinned(&s, id).await?;
        if triad_wire::unix_now() >= spec.voting_deadline.saturating_add(CLOCK_GRACE_SECS) {
            return Err(Refusal::PollClosed(id).into());
        }
        // The commitments to the two components this party holds; the
        // coordinator confirms them against the logged ones.
        let held = held_commitments(id, s.index, &salts, &set);
        let token = hash_token(&up.token);
        let c = held.concat();
        let sid = up.submission_id.clone();
        if sid.len() != 32 || !sid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::Malformed("submission id must be 32 hex digits".into()).into());
        }
        let put = blocking(&s, move |s| {
            Ok::<_, Refusal>(s.store.put_message_shares(
                id,
                &sid,
                &token,
                &c,
                &set,
                UNCONFIRMED_TTL_MS,
                MAX_UNCONFIRMED,
            )?)
        })
        .await?;
        match put {
            PutShares::Stored => Ok::<_, ApiError>(json!({ "commitments": held })),
            PutShares::AlreadyConfirmed => Err(Refusal::WrongState(
                "this message's shares are confirmed already".into(),
            )
            .into()),
            PutShares::Full => Err(Refusal::IntakeFull.into()),
        }
    };
    match go.await {
        Ok(v) => Ok((StatusCode::OK, Json(v)).into_response()),
        Err(e) => Err(e.into_response()),
    }
}

async fn confirm(
    _: FromCoordinator,
    State(s): St,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = poll_id(&id)?;
    let req: ConfirmMessage = parse_json(&body(b)?)?;
    let spec = pinned(&s, id).await?;
    if triad_wire::unix_now() >= spec.voting_deadline.saturating_add(CLOCK_GRACE_SECS) {
        return Err(Refusal::PollClosed(id).into());
    }
    let held = blocking(&s, move |s| {
        Ok::<_, Refusal>(s.store.confirm_message(
            id,
            &req.submission_id,
            &req.token_sha256,
            &req.commitment,
            &req.kind,
        )?)
    })
    .await?;
    if !held {
        return Err(Refusal::BadShares(
            "no share set of this message under this token and commitment".into(),
        )
        .into());
    }
    Ok(Json(json!({ "confirmed": true })))
}

/// A tally request this party accepts, reduced to what the MPC needs.
pub struct CheckedTally {
    pub params: PollParams,
    pub signups: Vec<SignUp>,
    /// The log, in order.
    pub entries: Vec<CheckedEntry>,
    /// SHA-256 (hex) of the request: the MPC session's tag and the
    /// tally's `input_sha256`.
    pub input_sha256: String,
}

impl CheckedTally {
    /// (submission id, this party's commitment), in log order.
    pub fn ids(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|e| (e.submission_id.clone(), e.commitment.clone()))
            .collect()
    }
}

/// One log entry as the tally job uses it.
pub struct CheckedEntry {
    pub submission_id: String,
    /// The logged commitments to this party's two components
    /// ([`holder_key`]).
    pub commitment: String,
    pub timestamp: u64,
    pub kind: MessageKind,
    /// Deactivations and re-keys: the re-keying epoch.
    pub epoch: u64,
    /// Re-keys: the new key and the claimed nullifier.
    pub rekey: Option<(PubKey, triad_crypto::Fr)>,
}

/// Judges a tally request (see the module docs): the spec is the one
/// pinned, the poll is closed, every sign-up's attestation verifies as of
/// its sign-up time for `poll-{id}` with the poll's data spec and source,
/// no account or attestation signs up twice, state indexes and log
/// positions run 1.. and 0.. without gaps, every logged message was in
/// time and is named once; a re-key was logged after the sign-up deadline
/// with a key and nullifier that parse, a nullifier not seen before, and
/// the next state index after the sign-ups and earlier re-keys.
pub fn check_tally_request(
    pinned: &PollSpec,
    req: &TallyRequest,
    notary: &NotaryPublicKey,
    party: usize,
    now: u64,
) -> Result<CheckedTally, Refusal> {
    check_tally_digested(pinned, req, request_digest(req), notary, party, now)
}

/// [`check_tally_request`] for a request whose digest the caller has
/// already computed (the handler looks it up first; the request may be
/// hundreds of megabytes).
fn check_tally_digested(
    pinned: &PollSpec,
    req: &TallyRequest,
    input_sha256: String,
    notary: &NotaryPublicKey,
    party: usize,
    now: u64,
) -> Result<CheckedTally, Refusal> {
    let id = pinned.id;
    if req.spec != *pinned {
        return Err(Refusal::PollChanged(id));
    }
    let params = pinned
        .params()
        .map_err(|e| Refusal::InvalidPoll(e.to_string()))?;
    if now < pinned.voting_deadline {
        return Err(Refusal::VotingOpen(id));
    }
    let bad = |m: String| Refusal::BadTallyInput(m);
    let study = poll_study_id(id);
    let mut nullifiers = HashSet::new();
    let mut signatures = HashSet::new();
    let mut signups = Vec::with_capacity(req.signups.len());
    for (k, su) in req.signups.iter().enumerate() {
        if su.state_index != k as u64 + 1 {
            return Err(bad(format!(
                "sign-up {k} has state index {}",
                su.state_index
            )));
        }
        if su.timestamp >= pinned.signup_deadline || su.voice_credits != pinned.voice_credits {
            return Err(bad(format!(
                "sign-up {} is late or has the wrong budget",
                k + 1
            )));
        }
        let pub_key: PubKey = su
            .pub_key
            .parse()
            .map_err(|e| bad(format!("sign-up {}: {e}", k + 1)))?;
        let att = &su.attestation;
        verify_attestation(att, std::slice::from_ref(notary), su.timestamp)
            .map_err(|e| bad(format!("sign-up {}: {e}", k + 1)))?;
        if att.study_id != study || att.data_spec != pinned.data_spec {
            return Err(bad(format!(
                "sign-up {}: attestation for another poll",
                k + 1
            )));
        }
        pinned
            .source
            .check(&att.server_name, &att.cert_chain_sha256)
            .map_err(|e| bad(format!("sign-up {}: {e}", k + 1)))?;
        if !nullifiers.insert(att.nullifier.as_str()) || !signatures.insert(att.signature.as_str())
        {
            return Err(bad(format!(
                "sign-up {}: this account signed up twice",
                k + 1
            )));
        }
        signups.push(SignUp {
            pub_key,
            voice_credits: su.voice_credits,
            timestamp: su.timestamp,
        });
    }
    let mut seen = HashSet::new();
    let mut claimed = HashSet::new();
    let mut next_leaf = signups.len() as u64 + 1;
    let mut entries = Vec::with_capacity(req.log.len());
    for (k, e) in req.log.iter().enumerate() {
        if e.position != k as u64 {
            return Err(bad(format!("log entry {k} has position {}", e.position)));
        }
        if e.timestamp >= pinned.voting_deadline {
            return Err(bad(format!("log entry {k} is after the voting deadline")));
        }
        if !seen.insert(e.submission_id.as_str()) {
            return Err(bad(format!("log entry {k} repeats a message")));
        }
        let rekey = match e.kind.rekey() {
            None if e.state_index.is_some() => {
                return Err(bad(format!("log entry {k} is not a re-key but has a leaf")))
            }
            None => None,
            Some(parsed) => {
                let (key, nullifier) = parsed.map_err(|m| bad(format!("log entry {k}: {m}")))?;
                if e.timestamp < pinned.signup_deadline {
                    return Err(bad(format!("log entry {k} re-keys before sign-up closed")));
                }
                if !claimed.insert(triad_crypto::fr_to_hex(&nullifier)) {
                    return Err(bad(format!("log entry {k} repeats a nullifier")));
                }
                if e.state_index != Some(next_leaf) {
                    return Err(bad(format!(
                        "log entry {k} re-keys to leaf {:?}, not {next_leaf}",
                        e.state_index
                    )));
                }
                next_leaf += 1;
                Some((key, nullifier))
            }
        };
        entries.push(CheckedEntry {
            submission_id: e.submission_id.clone(),
            commitment: holder_key(&e.commitments, party),
            timestamp: e.timestamp,
            kind: e.kind.clone(),
            epoch: pinned.epoch_of(e.timestamp),
            rekey,
        });
    }
    Ok(CheckedTally {
        params,
        signups,
        entries,
        input_sha256,
    })
}

/// SHA-256 (hex) of a tally request's canonical JSON: the MPC session's
/// tag and the tally's `input_sha256`.
pub fn request_digest(req: &TallyRequest) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(req).expect("request serializes"),
    ))
}

/// `POST /internal/polls/{id}/tally`. Idempotent and cheap to repeat: the
/// request's digest is looked up first (a stored tally, a running job), and
/// only a new request is judged ([`check_tally_request`]) and queued.
async fn tally(
    _: FromCoordinator,
    State(s): St,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = poll_id(&id)?;
    let req: TallyRequest = parse_json(&body(b)?)?;
    if req.spec.id != id {
        return Err(Refusal::Malformed("the request is for another poll".into()).into());
    }
    let digest = request_digest(&req);
    if let Some((d, signed)) = blocking(&s, move |s| Ok::<_, Refusal>(s.store.tally(id)?)).await? {
        if d != digest {
            return Err(Refusal::WrongState(
                "this poll was tallied over another log and sign-ups".into(),
            )
            .into());
        }
        return Ok(Json(TallyProgress {
            signed: Some(signed),
            ..TallyProgress::default()
        })
        .into_response());
    }
    let running = |s: &PartyState| {
        let jobs = s.poll_jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(&id).cloned()
    };
    match running(&s) {
        Some((d, None)) if d == digest => {
            return Ok((StatusCode::ACCEPTED, Json(TallyProgress::default())).into_response())
        }
        Some((_, None)) => {
            return Err(Refusal::WrongState(
                "a tally of this poll over another log is running".into(),
            )
            .into())
        }
        _ => {}
    }
    let party = s.index;
    let d = digest.clone();
    let checked = blocking(&s, move |s| {
        let spec = pinned_blocking(s, id)?;
        check_tally_digested(&spec, &req, d, &s.notary_key, party, triad_wire::unix_now())
    })
    .await?;
    let failed = {
        let mut jobs = s.poll_jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(&id) {
            // Queued by a concurrent request meanwhile.
            Some((_, None)) => {
                return Ok((StatusCode::ACCEPTED, Json(TallyProgress::default())).into_response())
            }
            Some((_, Some(why))) => {
                let why = why.clone();
                jobs.insert(id, (digest.clone(), None));
                Some(why)
            }
            None => {
                jobs.insert(id, (digest.clone(), None));
                None
            }
        }
    };
    let state = s.clone();
    let queued = s.spawn_job(move |mesh| {
        let r = crate::jobs::tally_poll(mesh, state.store.as_ref(), &state.key, id, &checked);
        let mut jobs = state.poll_jobs.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(_) => {
                jobs.remove(&id);
            }
            Err(e) => {
                let failure = TallyFailure::of(&e);
                if failure.cheating {
                    tracing::error!(poll = id, error = %e, "poll tally aborted: cheating detected");
                } else {
                    tracing::warn!(poll = id, error = %e, "poll tally failed");
                }
                jobs.insert(id, (checked.input_sha256.clone(), Some(failure)));
            }
        }
    });
    if let Err(e) = queued {
        s.poll_jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        return Err(e.into());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(TallyProgress {
            signed: None,
            cheating: failed.as_ref().is_some_and(|f| f.cheating),
            failed: failed.map(|f| f.why),
        }),
    )
        .into_response())
}

/// `GET /v1/polls/{id}/tally`: this party's signed copy.
pub(crate) async fn signed_tally(
    State(s): St,
    Path(id): Path<String>,
) -> Result<Json<SignedTally>, ApiError> {
    let id = poll_id(&id)?;
    let t = blocking(&s, move |s| Ok::<_, Refusal>(s.store.tally(id)?)).await?;
    Ok(Json(t.ok_or(Refusal::NoTally)?.1))
}

#[cfg(test)]
mod tests {
    //! A malicious coordinator's tally requests: each way of padding,
    //! reusing or back-dating the sign-ups or the log is refused.
    use super::*;
    use triad_attestation::{
        sign_attestation, AttestationClaims, DataSource, DataSpec, NotarySigningKey,
    };
    use triad_crypto::Fr;
    use triad_wire::poll::{LogEntry, PollMode, Signup};

    fn spec() -> PollSpec {
        PollSpec {
            id: 3,
            name: "p".into(),
            vote_options: 2,
            mode: PollMode::Linear,
            signup_deadline: 1000,
            voting_deadline: 2000,
            window: 32,
            voice_credits: 50,
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            source: DataSource::named("exchange.example"),
            rekey_epoch_secs: 100,
        }
    }

    fn signup(notary: &NotarySigningKey, index: u64, account: u64, study: &str) -> Signup {
        let claims = AttestationClaims {
            server_name: "exchange.example".into(),
            cert_chain_sha256: [1; 32],
            session_time: 900,
            expires_at: 5000,
            study_id: study.into(),
            data_spec: spec().data_spec,
            commitment: Fr::from(1u64),
            nullifier: Fr::from(account),
            transcript_sha256: [account as u8; 32],
        };
        Signup {
            state_index: index,
            pub_key: triad_maci::Keypair::generate().public.to_string(),
            voice_credits: 50,
            timestamp: 950,
            attestation: sign_attestation(notary, &claims),
        }
    }

    fn entry(position: u64, sid: &str, timestamp: u64) -> LogEntry {
        LogEntry {
            position,
            submission_id: sid.into(),
            timestamp,
            commitments: ["a".repeat(64), "b".repeat(64), "c".repeat(64)],
            kind: MessageKind::Vote,
            state_index: None,
        }
    }

    fn rekey_entry(position: u64, sid: &str, timestamp: u64, n: u64, leaf: u64) -> LogEntry {
        LogEntry {
            kind: MessageKind::Rekey {
                new_key: triad_maci::Keypair::generate().public.to_string(),
                nullifier: triad_crypto::fr_to_hex(&Fr::from(n)),
            },
            state_index: Some(leaf),
            ..entry(position, sid, timestamp)
        }
    }

    fn honest(notary: &NotarySigningKey) -> TallyRequest {
        TallyRequest {
            spec: spec(),
            signups: vec![
                signup(notary, 1, 11, "poll-3"),
                signup(notary, 2, 12, "poll-3"),
            ],
            log: vec![entry(0, "s0", 1500), entry(1, "s1", 1999)],
        }
    }

    #[test]
    fn a_tally_failure_says_whether_a_check_caught_cheating() {
        use crate::jobs::JobError;
        let caught = TallyFailure::of(&JobError::Mpc(triad_mpc::MpcError::CheatingDetected {
            check: "input consistency",
            detail: "item 3".into(),
        }));
        assert!(caught.cheating);
        assert!(caught.why.contains("input consistency"), "{}", caught.why);
        let missing = TallyFailure::of(&JobError::MissingShares("s0".into()));
        assert!(!missing.cheating);
        // On the wire, `cheating` appears only when set.
        let progress = TallyProgress {
            signed: None,
            failed: Some(missing.why),
            cheating: false,
        };
        let json = serde_json::to_value(&progress).unwrap();
        assert!(json.get("cheating").is_none(), "{json}");
    }

    #[test]
    fn an_honest_request_is_accepted_with_this_partys_commitments() {
        let notary = NotarySigningKey::from_seed([9; 32]);
        let req = honest(&notary);
        let c = check_tally_request(&spec(), &req, &notary.public_key(), 1, 2000).unwrap();
        assert_eq!(c.signups.len(), 2);
        assert_eq!(
            c.ids(),
            vec![
                ("s0".into(), "b".repeat(64) + &"c".repeat(64)),
                ("s1".into(), "b".repeat(64) + &"c".repeat(64))
            ]
        );
        // Party 2 holds components 2 and 0.
        let c2 = check_tally_request(&spec(), &req, &notary.public_key(), 2, 2000).unwrap();
        assert_eq!(c2.ids()[0].1, "c".repeat(64) + &"a".repeat(64));
        let times: Vec<u64> = c.entries.iter().map(|e| e.timestamp).collect();
        assert_eq!(times, vec![1500, 1999]);
        let mut other = req.clone();
        other.log.pop();
        let d = check_tally_request(&spec(), &other, &notary.public_key(), 1, 2000).unwrap();
        assert_ne!(c.input_sha256, d.input_sha256);
    }

    #[test]
    fn every_forgery_of_the_inputs_is_refused() {
        let notary = NotarySigningKey::from_seed([9; 32]);
        let key = notary.public_key();
        let refused = |f: &dyn Fn(&mut TallyRequest), now: u64| {
            let mut r = honest(&notary);
            f(&mut r);
            check_tally_request(&spec(), &r, &key, 0, now).err()
        };
        // Before the deadline: no tally at all.
        assert!(matches!(
            refused(&|_| {}, 1999),
            Some(Refusal::VotingOpen(3))
        ));
        // Another spec than the one pinned (more credits, later deadline).
        assert!(matches!(
            refused(&|r| r.spec.voice_credits = 51, 2000),
            Some(Refusal::PollChanged(3))
        ));
        assert!(matches!(
            refused(&|r| r.spec.voting_deadline = 3000, 3000),
            Some(Refusal::PollChanged(3))
        ));
        let bad = |f: &dyn Fn(&mut TallyRequest)| {
            assert!(
                matches!(refused(f, 2000), Some(Refusal::BadTallyInput(_))),
                "accepted a forged request"
            );
        };
        // A sybil: the same account twice, under two keys.
        bad(&|r| r.signups[1] = signup(&notary, 2, 11, "poll-3"));
        // An attestation made for a study, or for another poll.
        bad(&|r| r.signups[1] = signup(&notary, 2, 12, "a-study"));
        bad(&|r| r.signups[1] = signup(&notary, 2, 12, "poll-4"));
        // An attestation from a notary the party does not trust.
        let stranger = NotarySigningKey::from_seed([8; 32]);
        bad(&|r| r.signups[1] = signup(&stranger, 2, 12, "poll-3"));
        // The same attestation presented twice (a replay).
        bad(&|r| {
            let mut again = r.signups[0].clone();
            again.state_index = 2;
            r.signups[1] = again;
        });
        // A late sign-up, a bigger budget, a gap in the state indexes.
        bad(&|r| r.signups[1].timestamp = 1000);
        bad(&|r| r.signups[1].voice_credits = 51);
        bad(&|r| r.signups[1].state_index = 3);
        bad(&|r| r.signups[0].pub_key = "macipk.00".into());
        // A late message, a repeated one, a gap in the positions.
        bad(&|r| r.log[1].timestamp = 2000);
        bad(&|r| r.log[1].submission_id = "s0".into());
        bad(&|r| r.log[1].position = 2);
    }

    /// Deactivations and re-keys in the log: the epochs are derived from
    /// the log times; a re-key before sign-up closed, a repeated nullifier,
    /// a state index out of turn, a vote with a leaf, and a re-key whose
    /// key or nullifier does not parse are refused.
    #[test]
    fn rekeys_in_the_log_are_checked() {
        let notary = NotarySigningKey::from_seed([9; 32]);
        let key = notary.public_key();
        let with_rekeys = || {
            let mut r = honest(&notary);
            r.log = vec![
                LogEntry {
                    kind: MessageKind::Deactivate,
                    ..entry(0, "d0", 999)
                },
                rekey_entry(1, "r0", 1000, 7, 3),
                entry(2, "v0", 1100),
                rekey_entry(3, "r1", 1250, 8, 4),
            ];
            r
        };
        let c = check_tally_request(&spec(), &with_rekeys(), &key, 2, 2000).unwrap();
        let epochs: Vec<u64> = c.entries.iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, vec![0, 0, 1, 2]);
        assert_eq!(c.entries[1].rekey.as_ref().unwrap().1, Fr::from(7u64));
        let bad = |f: &dyn Fn(&mut TallyRequest)| {
            let mut r = with_rekeys();
            f(&mut r);
            assert!(
                matches!(
                    check_tally_request(&spec(), &r, &key, 0, 2000),
                    Err(Refusal::BadTallyInput(_))
                ),
                "accepted a forged request"
            );
        };
        bad(&|r| r.log[1].timestamp = 999);
        bad(&|r| r.log[3] = rekey_entry(3, "r1", 1250, 7, 4));
        bad(&|r| r.log[3].state_index = Some(3));
        bad(&|r| r.log[3].state_index = Some(5));
        bad(&|r| r.log[3].state_index = None);
        bad(&|r| r.log[2].state_index = Some(5));
        bad(&|r| {
            r.log[1].kind = MessageKind::Rekey {
                new_key: "macipk.00".into(),
                nullifier: triad_crypto::fr_to_hex(&Fr::from(7u64)),
            }
        });
        bad(&|r| {
            r.log[1].kind = MessageKind::Rekey {
                new_key: triad_maci::Keypair::generate().public.to_string(),
                nullifier: "zz".into(),
            }
        });
    }
}
