//! `contribute` end to end against the real demo data source and notary,
//! with an in-process fake coordinator and fake parties over HTTPS: the
//! admission retries (429 with Retry-After, 503 queue_full), the share
//! upload retry (503 intake_full), a retryable rejection that starts over
//! with a fresh attestation, and the shares recombining to the attested
//! commitment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use triad_attestation::{parse_fixed_point, verify_attestation, DataSpec, NotarySigningKey};
use triad_client::{contribute, ContributeOptions};
use triad_crypto::{commitment, fr_from_hex, fr_from_i128};
use triad_notary::service::{launch_notary, ApiLimits, NotaryServiceConfig};
use triad_notary::{root_store, AllowedTarget, ProxyConfig};
use triad_stats::StatsSpec;
use triad_testsite::{launch_datasource, DatasourceConfig};
use triad_wire::config::DatasourceEndpoint;
use triad_wire::messages::{
    ReadyRequest, RejectReason, ShareUpload, StudyInfo, StudyParams, SubmissionState,
    SubmissionStatus, SubmitRequest, SubmitResponse,
};
use triad_wire::pki::ServiceCa;
use triad_wire::receipt::{component_commitment, verify_receipts, ShareReceipt, RECEIPT_VERSION};
use triad_wire::PartySigningKey;
use triad_wire::{ApiError, NetworkConfig, PartyEndpoint};

#[derive(Default)]
struct Coord {
    submit_calls: u32,
    /// (submission id, token, attestation) per admitted submission.
    admitted: Vec<(String, String, triad_attestation::Attestation)>,
    ready: Vec<String>,
}

type CoordState = Arc<Mutex<Coord>>;

fn study() -> StudyInfo {
    StudyInfo {
        params: StudyParams {
            id: "eth".into(),
            name: "ETH".into(),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            source: triad_attestation::DataSource::named("127.0.0.1"),
            min_cohort: 3,
            min_new: 1,
            release_interval_secs: 1,
            stats: StatsSpec::default(),
        },
        created_at: 1,
        contributions: 0,
        releases: 0,
        directory_id: None,
        progress: None,
    }
}

async fn get_study(Path(id): Path<String>) -> Result<Json<StudyInfo>, ApiError> {
    if id == "eth" {
        Ok(Json(study()))
    } else {
        Err(ApiError::not_found(
            ErrorCode::UnknownStudy,
            "no such study",
        ))
    }
}

async fn submit(State(c): State<CoordState>, body: axum::body::Bytes) -> Response {
    let req: SubmitRequest = match triad_wire::https::parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut c = c.lock().unwrap();
    c.submit_calls += 1;
    match c.submit_calls {
        1 => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "slow down",
            )
            .into_response();
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            r
        }
        2 => ApiError::unavailable(ErrorCode::QueueFull, "queue is full").into_response(),
        n => {
            let sid = format!("{n:032x}");
            let token = format!("{:064x}", n * 7);
            c.admitted
                .push((sid.clone(), token.clone(), req.attestation));
            (
                StatusCode::ACCEPTED,
                Json(SubmitResponse {
                    submission_id: sid,
                    token,
                    parties: vec![],
                }),
            )
                .into_response()
        }
    }
}

async fn ready(
    State(c): State<CoordState>,
    Path(sid): Path<String>,
    Json(r): Json<ReadyRequest>,
) -> Response {
    let mut c = c.lock().unwrap();
    if !c
        .admitted
        .iter()
        .any(|(s, t, _)| *s == sid && *t == r.token)
    {
        return ApiError::bad_request(ErrorCode::WrongToken, "no").into_response();
    }
    // The provider hands over the three parties' receipts for its shares.
    let keys = [0, 1, 2].map(|i| party_key(i).public_key().to_hex());
    let receipt = verify_receipts(&r.receipts, &keys)
        .expect("three matching receipts")
        .receipt;
    assert_eq!(receipt.submission_id, sid);
    c.ready.push(sid);
    StatusCode::ACCEPTED.into_response()
}

async fn status(State(c): State<CoordState>, Path(sid): Path<String>) -> Response {
    let c = c.lock().unwrap();
    let Some(pos) = c.admitted.iter().position(|(s, _, _)| *s == sid) else {
        return ApiError::not_found(ErrorCode::UnknownSubmission, "no").into_response();
    };
    let ready = c.ready.contains(&sid);
    // The first admitted submission is rejected (retryable); the next one
    // is accepted once ready.
    let (status, reason) = match (pos, ready) {
        (_, false) => (SubmissionStatus::AwaitingShares, None),
        (0, true) => (
            SubmissionStatus::Rejected,
            Some(RejectReason::SharesMissing),
        ),
        (_, true) => (SubmissionStatus::Accepted, None),
    };
    Json(SubmissionState {
        submission_id: sid,
        study_id: "eth".into(),
        status,
        reason,
        batch_id: (status == SubmissionStatus::Accepted).then_some(1),
    })
    .into_response()
}

type Uploads = Arc<Mutex<(u32, Vec<ShareUpload>)>>;

/// How long each fake party's receipts promise to keep the shares.
static KEEP_SECS: [AtomicU64; 3] = [
    AtomicU64::new(180),
    AtomicU64::new(180),
    AtomicU64::new(180),
];

async fn shares(State((i, u)): State<(usize, Uploads)>, Json(s): Json<ShareUpload>) -> Response {
    let mut u = u.lock().unwrap();
    u.0 += 1;
    if i == 1 && u.0 == 1 {
        return ApiError::unavailable(ErrorCode::IntakeFull, "busy").into_response();
    }
    // A real party checks the commitments first; the client must not
    // rely on that, so this one signs whatever it was sent.
    let receipt = ShareReceipt {
        version: RECEIPT_VERSION,
        submission_id: s.submission_id.clone(),
        token_sha256: hex::encode(triad_wire::https::token_digest(&s.token)),
        commitments: s.commitments.clone(),
        kept_until: triad_wire::unix_now() + KEEP_SECS[i].load(Ordering::Relaxed),
    }
    .sign(i as u8, &party_key(i));
    u.1.push(s);
    (StatusCode::ACCEPTED, Json(receipt)).into_response()
}

fn party_key(i: usize) -> PartySigningKey {
    PartySigningKey::from_seed([21 + i as u8; 32])
}

async fn serve(ca: &ServiceCa, dir: &std::path::Path, name: &str, r: Router) -> String {
    let leaf = ca.issue(dir, name).unwrap();
    let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    tokio::spawn(triad_wire::https::serve(l, tls, r));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contribute_end_to_end_with_retries() {
    let dir = tempfile::tempdir().unwrap();
    let ds = launch_datasource(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        DatasourceConfig {
            data_dir: dir.path().join("ds"),
            accounts: 4,
            seed: 9,
            padding_assets: 0,
        },
    )
    .unwrap();
    let truth = triad_testsite::ground_truth(4, 9);
    let notary_key = NotarySigningKey::from_seed([5; 32]);
    let pk = notary_key.public_key();
    let roots = Arc::new(root_store(Some(ds.ca_pem.as_bytes()), false).unwrap());
    // Every service's certificate, the notary's too, from one CA.
    let ca_path = dir.path().join("ca.pem");
    let ca = ServiceCa::create(&ca_path).unwrap();
    let leaf = ca.issue(dir.path(), "notary").unwrap();
    let notary = launch_notary(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        NotaryServiceConfig {
            key: notary_key,
            roots,
            ttl_secs: 600,
            // The notary relays to the data source only.
            proxy: ProxyConfig {
                allowed_targets: vec![AllowedTarget::addr(ds.addr)],
                ..ProxyConfig::default()
            },
            api: ApiLimits::default(),
            tls: triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap(),
            serve: triad_wire::https::ServeLimits::DEFAULT,
        },
    )
    .unwrap();

    let coord_state = CoordState::default();
    let coord = Router::new()
        .route("/v1/studies/{id}", get(get_study))
        .route("/v1/studies/{id}/submissions", post(submit))
        .route("/v1/submissions/{sid}/ready", post(ready))
        .route("/v1/submissions/{sid}", get(status))
        .with_state(coord_state.clone());
    let coordinator = serve(&ca, dir.path(), "coordinator", coord).await;
    let uploads: [Uploads; 3] = Default::default();
    let mut urls = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        let r = Router::new()
            .route("/v1/shares", post(shares))
            .with_state((i, u.clone()));
        urls.push(serve(&ca, dir.path(), &format!("party{i}"), r).await);
    }
    let net = NetworkConfig {
        mpc_latency_us: 0,
        ca_cert: ca_path.clone(),
        coordinator,
        coordinator_key: None,
        parties: [0, 1, 2].map(|i| PartyEndpoint {
            url: urls[i].clone(),
            mpc_addr: "127.0.0.1:1".parse().unwrap(),
            mpc_cert: String::new(),
            sign_key: party_key(i).public_key().to_hex(),
        }),
        notary: notary.url(),
        notary_key: pk.to_hex(),
        api: "https://127.0.0.1:1".into(),
        datasource: Some(DatasourceEndpoint {
            url: ds.info.url.clone(),
            ca_cert: ds.info.ca_cert.clone(),
            source: Some(ds.info.source.clone()),
        }),
    };
    let http = triad_wire::https::client(&net.ca_pem().unwrap(), Duration::from_secs(30)).unwrap();
    let account = &truth.accounts[2];
    let opts = ContributeOptions {
        timeout: Duration::from_secs(20),
        ..ContributeOptions::default()
    };
    let out = contribute(&net, &http, "eth", &account.api_key, &opts)
        .await
        .unwrap();
    let expected = parse_fixed_point(&account.balances["ETH"], 4).unwrap();
    assert!(out.accepted, "{out:?}");
    assert_eq!(out.attempts, 2);
    assert_eq!(out.value, expected);
    assert_eq!(out.scale, 4);
    assert_eq!(out.reason, None);

    {
        let c = coord_state.lock().unwrap();
        assert_eq!(c.submit_calls, 4, "429, 503, admitted, admitted again");
        assert_eq!(c.admitted.len(), 2);
        assert_eq!(out.submission_id, c.admitted[1].0);
        // Fresh attestation per attempt.
        assert_ne!(c.admitted[0].2, c.admitted[1].2);

        // Each admitted submission's shares recombine to its attested opening.
        for (sid, token, att) in &c.admitted {
            let mine: Vec<ShareUpload> = uploads
                .iter()
                .map(|u| {
                    u.lock()
                        .unwrap()
                        .1
                        .iter()
                        .find(|s| s.submission_id == *sid)
                        .cloned()
                        .unwrap()
                })
                .collect();
            assert!(mine.iter().all(|s| s.token == *token));
            // Every party got the same commitments, and its components
            // open the two that are its own.
            for (i, u) in mine.iter().enumerate() {
                assert_eq!(u.commitments, mine[0].commitments);
                for k in 0..2 {
                    let j = (i + k) % 3;
                    let c = component_commitment(
                        sid,
                        j as u8,
                        &u.value_bits[k],
                        &u.blinder[k],
                        &u.salts[k],
                    );
                    assert_eq!(c, u.commitments[j], "party {i} component {j}");
                }
            }
            for i in 0..3 {
                assert_eq!(mine[i].value_bits[1], mine[(i + 1) % 3].value_bits[0]);
                assert_eq!(mine[i].blinder[1], mine[(i + 1) % 3].blinder[0]);
            }
            let word = mine
                .iter()
                .map(|s| u64::from_str_radix(&s.value_bits[0], 16).unwrap())
                .fold(0, |a, x| a ^ x);
            assert_eq!(word as i64, expected);
            let blinder = mine
                .iter()
                .map(|s| fr_from_hex(&s.blinder[0]).unwrap())
                .fold(fr_from_i128(0), |a, x| a + x);
            let v = verify_attestation(att, &[pk], triad_wire::unix_now()).unwrap();
            assert_eq!(
                v.claims.commitment,
                commitment(fr_from_i128(expected.into()), blinder)
            );
        }
    }

    // A notary key the network does not trust is refused.
    let mut wrong = net.clone();
    wrong.notary_key = "11".repeat(32);
    let e = contribute(&wrong, &http, "eth", &account.api_key, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e, triad_client::ClientError::NotaryKeyMismatch { .. }),
        "{e}"
    );
    // A party whose receipt promises to keep the shares only briefly
    // could later say, truthfully, that it dropped them: its receipt is
    // refused and the submission is never marked ready.
    KEEP_SECS[2].store(30, Ordering::Relaxed);
    let ready_before = coord_state.lock().unwrap().ready.len();
    let short = ContributeOptions {
        attempts: 1,
        ..opts.clone()
    };
    let e = contribute(&net, &http, "eth", &truth.accounts[1].api_key, &short)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, triad_client::ClientError::Receipts { why, .. }
            if why.contains("party 2 keeps the shares only until")),
        "{e}"
    );
    assert_eq!(coord_state.lock().unwrap().ready.len(), ready_before);
    KEEP_SECS[2].store(180, Ordering::Relaxed);
    // An unknown study names the step and the server's code.
    let e = contribute(&net, &http, "nope", &account.api_key, &opts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown_study"), "{e}");
    // A data source the notary does not relay to (here: the notary's own
    // API) is refused at once with the notary's reason, not retried as a
    // broken session until the submit timeout.
    let elsewhere = ContributeOptions {
        datasource: Some(DatasourceEndpoint {
            url: format!("https://127.0.0.1:{}/v1/info", notary.api_addr.port()),
            ca_cert: ds.info.ca_cert.clone(),
            source: None,
        }),
        ..opts.clone()
    };
    let started = std::time::Instant::now();
    let e = contribute(&net, &http, "eth", &account.api_key, &elsewhere)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            triad_client::ClientError::Attest(triad_notary::ProveError::TargetRefused(_))
        ),
        "{e}"
    );
    assert!(e.to_string().contains("does not relay"), "{e}");
    assert!(started.elapsed() < opts.submit_timeout / 2);
    notary.shutdown();
    ds.shutdown();
}
