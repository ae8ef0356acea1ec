//! End-to-end tests of the coordinator: real SQLite in a temporary
//! directory, a real HTTPS server on 127.0.0.1:0, real notary signatures,
//! and in-process fake parties that fail on cue.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use triad_wire::ErrorCode;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use triad_attestation::{
    sign_attestation, Attestation, AttestationClaims, DataSpec, NotarySigningKey,
};
use triad_crypto::fr_from_i128;
use triad_wire::messages::{
    BatchItem, PrepareBatch, PrepareResult, RejectReason, ReleaseRequest, StudyParams,
};
use triad_wire::receipt::{ShareReceipt, SignedReceipt, RECEIPT_VERSION};
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::study::{check_floors, Floors};
use triad_wire::{NetworkConfig, PartyEndpoint, PartySigningKey, SignedRelease};

use crate::parties::{BoxFut, Parties, PartyError, PartyFault};
use crate::store::{CoordinatorStore, SqliteStore};
use crate::{launch_with, BatchConfig, CoordinatorConfig, CoordinatorHandle, Limits};

const ADMIN: &str = "admin-token";
const INTERNAL: &str = "internal-token";

// ---------- fake parties ----------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Disagree,
    /// Never answers (the coordinator is killed meanwhile).
    Block,
    /// Answers as a party whose checks caught a peer cheating.
    Cheat,
}

struct FakeParties {
    keys: [PartySigningKey; 3],
    /// Commitments whose submissions fail the (pretend) MPC check.
    bad: Mutex<HashSet<String>>,
    prepare_mode: Mutex<[Mode; 3]>,
    /// Prepares of each party that fail before it behaves per its mode.
    fail_prepares: Mutex<[u32; 3]>,
    commit_fails: Mutex<[bool; 3]>,
    /// Batches whose commit party 2 refuses (a 4xx: permanent).
    commit_refuses: Mutex<HashSet<u64>>,
    log: Mutex<Vec<String>>,
    pending: Mutex<HashMap<u64, u64>>,
    committed: AtomicU64,
    in_mpc: [AtomicUsize; 3],
    max_in_mpc: AtomicUsize,
    /// The floors the parties pin studies with.
    floors: Mutex<Floors>,
    /// Every item party 0 was asked to prepare.
    items: Mutex<Vec<BatchItem>>,
    /// The party whose poll tallies abort on a detected deviation; the
    /// next party's tally requests fail (as a cheater that answers with
    /// errors), the third answers "still computing". `None`: every tally
    /// request fails as unreachable.
    tally_cheat: Mutex<Option<usize>>,
}

impl FakeParties {
    fn prepared_items(&self) -> Vec<BatchItem> {
        self.items.lock().unwrap().clone()
    }

    fn new() -> Arc<Self> {
        Arc::new(Self {
            keys: party_keys(),
            bad: Mutex::default(),
            prepare_mode: Mutex::new([Mode::Ok; 3]),
            fail_prepares: Mutex::new([0; 3]),
            commit_fails: Mutex::new([false; 3]),
            commit_refuses: Mutex::default(),
            log: Mutex::default(),
            pending: Mutex::default(),
            committed: AtomicU64::new(0),
            items: Mutex::default(),
            in_mpc: Default::default(),
            max_in_mpc: AtomicUsize::new(0),
            floors: Mutex::new(Floors::default()),
            tally_cheat: Mutex::new(None),
        })
    }

    fn logged(&self, entry: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == entry)
            .count()
    }

    fn enter(&self, party: usize) {
        let n = self.in_mpc[party].fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_mpc.fetch_max(n, Ordering::SeqCst);
    }

    fn leave(&self, party: usize) {
        self.in_mpc[party].fetch_sub(1, Ordering::SeqCst);
    }

    fn err(party: usize) -> PartyError {
        PartyError {
            party,
            fault: PartyFault::Unreachable("injected failure".into()),
        }
    }
}

fn party_keys() -> [PartySigningKey; 3] {
    [11u8, 12, 13].map(|s| PartySigningKey::from_seed([s; 32]))
}

impl Parties for FakeParties {
    /// Pins as a real party with default floors would.
    fn pin_study<'a>(
        &'a self,
        party: usize,
        study: &'a StudyParams,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move {
            let floors = *self.floors.lock().unwrap();
            check_floors(study, floors).map_err(|e| PartyError {
                party,
                fault: PartyFault::Refused(triad_wire::ApiError::conflict(
                    ErrorCode::BelowThreshold,
                    e.to_string(),
                )),
            })
        })
    }

    fn prepare<'a>(
        &'a self,
        party: usize,
        req: &'a PrepareBatch,
    ) -> BoxFut<'a, Result<PrepareResult, PartyError>> {
        Box::pin(async move {
            self.enter(party);
            self.log
                .lock()
                .unwrap()
                .push(format!("prepare {party} {}", req.batch_id));
            if party == 0 {
                self.items.lock().unwrap().extend(req.items.iter().cloned());
            }
            // Let the other parties' calls overlap, as real MPC would.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mode = self.prepare_mode.lock().unwrap()[party];
            let fail_now = {
                let mut f = self.fail_prepares.lock().unwrap();
                if f[party] > 0 {
                    f[party] -= 1;
                    true
                } else {
                    false
                }
            };
            let r = if fail_now || mode == Mode::Fail {
                Err(Self::err(party))
            } else if mode == Mode::Cheat {
                // Through the same decoding as a real party's answer.
                Err(PartyError::from_api(
                    party,
                    triad_wire::ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        ErrorCode::CheatingDetected,
                        "cheating detected by the AND-gate proof check: P2 deviated",
                    ),
                ))
            } else {
                if mode == Mode::Block {
                    std::future::pending::<()>().await;
                }
                let bad = self.bad.lock().unwrap();
                let mut verdicts: Vec<Option<RejectReason>> = req
                    .items
                    .iter()
                    .map(|it| {
                        bad.contains(&it.commitment)
                            .then_some(RejectReason::CommitmentMismatch)
                    })
                    .collect();
                if mode == Mode::Disagree {
                    verdicts[0] = Some(RejectReason::InconsistentShares);
                }
                let pass = verdicts.iter().filter(|v| v.is_none()).count() as u64;
                self.pending.lock().unwrap().insert(req.batch_id, pass);
                Ok(PrepareResult {
                    batch_id: req.batch_id,
                    verdicts,
                })
            };
            self.leave(party);
            r
        })
    }

    fn commit(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(async move {
            if self.commit_fails.lock().unwrap()[party] {
                return Err(Self::err(party));
            }
            if party == 2 && self.commit_refuses.lock().unwrap().contains(&batch_id) {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("refused commit {party} {batch_id}"));
                return Err(PartyError {
                    party,
                    fault: PartyFault::Refused(triad_wire::ApiError::not_found(
                        ErrorCode::UnknownBatch,
                        "no such batch here",
                    )),
                });
            }
            self.log
                .lock()
                .unwrap()
                .push(format!("commit {party} {batch_id}"));
            if party == 0 {
                let n = self.pending.lock().unwrap().remove(&batch_id).unwrap_or(0);
                self.committed.fetch_add(n, Ordering::SeqCst);
            }
            Ok(())
        })
    }

    fn abort(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("abort {party} {batch_id}"));
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        party: usize,
        req: &'a ReleaseRequest,
    ) -> BoxFut<'a, Result<SignedRelease, PartyError>> {
        Box::pin(async move {
            self.enter(party);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.log
                .lock()
                .unwrap()
                .push(format!("release {party} {}", req.release_no));
            let count = self.committed.load(Ordering::SeqCst);
            let values: Vec<i64> = (0..count as i64).collect();
            let release = Release {
                version: RELEASE_VERSION,
                study_id: req.study.id.clone(),
                release_no: req.release_no,
                created_at: req.created_at,
                count,
                as_of_batch: req.as_of_batch,
                results: triad_stats::oracle(&values, &req.study.stats).unwrap(),
                security: None,
            };
            self.leave(party);
            Ok(sign_release(&self.keys[party], party as u8, &release))
        })
    }

    // Polls run against real parties (crates/world/tests/polls.rs); the
    // batch tests never reach these.
    fn pin_poll<'a>(
        &'a self,
        party: usize,
        _: &'a triad_wire::poll::PollSpec,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move { Err(Self::err(party)) })
    }

    fn confirm_message<'a>(
        &'a self,
        party: usize,
        _: u64,
        _: &'a triad_wire::poll::ConfirmMessage,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move { Err(Self::err(party)) })
    }

    fn tally_poll<'a>(
        &'a self,
        party: usize,
        req: &'a triad_wire::poll::TallyRequest,
    ) -> BoxFut<'a, Result<triad_wire::poll::TallyProgress, PartyError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("tally {party} {}", req.spec.id));
            match *self.tally_cheat.lock().unwrap() {
                None => Err(Self::err(party)),
                Some(c) if c == party => Ok(triad_wire::poll::TallyProgress {
                    signed: None,
                    failed: Some(
                        "MPC: cheating detected by the input consistency check: item 0".into(),
                    ),
                    cheating: true,
                }),
                Some(c) if (c + 1) % 3 == party => Err(Self::err(party)),
                Some(_) => Ok(Default::default()),
            }
        })
    }

    /// Endorses as a real party of this network would (its key).
    fn endorse<'a>(
        &'a self,
        party: usize,
        record: &'a triad_directory::record::ServiceRecord,
    ) -> BoxFut<'a, Result<String, PartyError>> {
        Box::pin(async move {
            Ok(triad_directory::publish::endorsement(
                record,
                party,
                &party_keys()[party],
            ))
        })
    }
}

// ---------- harness ----------

fn notary_key() -> NotarySigningKey {
    NotarySigningKey::from_seed([7; 32])
}

fn spec() -> DataSpec {
    DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    }
}

static ATT_COUNTER: AtomicU64 = AtomicU64::new(1);

/// An attestation of `account` for `study`, fresh unless told otherwise.
fn attest_with(study: &str, account: u64, f: impl FnOnce(&mut AttestationClaims)) -> Attestation {
    let now = triad_wire::unix_now();
    let n = ATT_COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut claims = AttestationClaims {
        server_name: "127.0.0.1".into(),
        cert_chain_sha256: [1; 32],
        session_time: now - 5,
        expires_at: now + 3600,
        study_id: study.into(),
        data_spec: spec(),
        commitment: fr_from_i128(i128::from(n) * 1000 + 7),
        nullifier: fr_from_i128(i128::from(account) + 1_000_000),
        transcript_sha256: [2; 32],
    };
    f(&mut claims);
    sign_attestation(&notary_key(), &claims)
}

fn attest(study: &str, account: u64) -> Attestation {
    attest_with(study, account, |_| {})
}

struct Env {
    _tmp: tempfile::TempDir,
    data_dir: PathBuf,
    cfg: CoordinatorConfig,
    http: reqwest::Client,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let ca_path = dir.join("ca.pem");
        let ca = triad_wire::pki::ServiceCa::create(&ca_path).unwrap();
        let leaf = ca.issue(&dir, "coordinator").unwrap();
        let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
        let pk = party_keys().map(|k| k.public_key().to_hex());
        let party = |i: usize| PartyEndpoint {
            url: format!("https://127.0.0.1:{}", 9000 + i),
            mpc_addr: format!("127.0.0.1:{}", 9100 + i).parse().unwrap(),
            mpc_cert: String::new(),
            sign_key: pk[i].clone(),
        };
        let network = NetworkConfig {
            mpc_latency_us: 0,
            ca_cert: ca_path.clone(),
            coordinator: "https://127.0.0.1:1".into(),
            coordinator_key: None,
            parties: [party(0), party(1), party(2)],
            notary: "http://127.0.0.1:2".into(),
            notary_key: notary_key().public_key().to_hex(),
            api: "https://127.0.0.1:3".into(),
            datasource: None,
        };
        let ca_pem = std::fs::read(&ca_path).unwrap();
        let data_dir = dir.join("data");
        let cfg = CoordinatorConfig {
            data_dir: data_dir.clone(),
            database: None,
            network,
            tls,
            internal_token: "coordinator-token".into(),
            party_token_sha256: triad_wire::https::token_digest(INTERNAL),
            admin_token: ADMIN.into(),
            limits: Limits::default(),
            batching: BatchConfig {
                linger: Duration::from_millis(30),
                retry_backoff: Duration::from_millis(10),
                tick: Duration::from_millis(20),
                ..BatchConfig::default()
            },
            max_attestation_age_secs: 3600,
            serve: triad_wire::https::ServeLimits::default(),
            directory: Vec::new(),
            directory_listen: "127.0.0.1:0".parse().unwrap(),
        };
        Self {
            _tmp: tmp,
            data_dir,
            cfg,
            http: triad_wire::https::client(&ca_pem, Duration::from_secs(30)).unwrap(),
        }
    }

    async fn launch(&self, parties: Arc<FakeParties>) -> CoordinatorHandle {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        launch_with(self.cfg.clone(), l, parties).await.unwrap()
    }

    fn db(&self) -> SqliteStore {
        SqliteStore::open(&self.data_dir).unwrap()
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

async fn call(
    env: &Env,
    h: &CoordinatorHandle,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Answer {
    let url = format!("{}{path}", h.url());
    let mut req = match method {
        "GET" => env.http.get(url),
        _ => env.http.post(url),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        retry_after,
        body,
    }
}

async fn create_study(env: &Env, h: &CoordinatorHandle, body: Value) -> Answer {
    let b = serde_json::to_vec(&body).unwrap();
    call(
        env,
        h,
        "POST",
        "/v1/studies",
        Some(b),
        &[("x-triad-admin", ADMIN)],
    )
    .await
}

fn study_body(id: &str) -> Value {
    json!({"id": id, "name": "test", "data_spec": spec(), "source": {"server_name": "127.0.0.1"}})
}

async fn submit(env: &Env, h: &CoordinatorHandle, study: &str, att: &Attestation) -> Answer {
    let b = serde_json::to_vec(&json!({ "attestation": att })).unwrap();
    call(
        env,
        h,
        "POST",
        &format!("/v1/studies/{study}/submissions"),
        Some(b),
        &[],
    )
    .await
}

/// The three parties' receipts for `sid`'s shares under `token`, with
/// commitments `c`.
fn receipts(sid: &str, token: &str, c: u8) -> Vec<SignedReceipt> {
    receipts_kept(sid, token, c, triad_wire::unix_now() + 180)
}

/// [`receipts`] keeping the shares until `kept_until` (party `i` one
/// second more per index: each party states its own).
fn receipts_kept(sid: &str, token: &str, c: u8, kept_until: u64) -> Vec<SignedReceipt> {
    let r = ShareReceipt {
        version: RECEIPT_VERSION,
        submission_id: sid.into(),
        token_sha256: crate::admission::token_digest(token),
        commitments: [c, c + 1, c + 2].map(|b| hex::encode([b; 32])),
        kept_until: 0,
    };
    let k = party_keys();
    // Each party states its own retention.
    (0..3)
        .map(|i| {
            ShareReceipt {
                kept_until: kept_until + i as u64,
                ..r.clone()
            }
            .sign(i as u8, &k[i])
        })
        .collect()
}

async fn ready(env: &Env, h: &CoordinatorHandle, sid: &str, token: &str) -> Answer {
    ready_with(env, h, sid, token, receipts(sid, token, 1)).await
}

async fn ready_with(
    env: &Env,
    h: &CoordinatorHandle,
    sid: &str,
    token: &str,
    receipts: Vec<SignedReceipt>,
) -> Answer {
    let b = serde_json::to_vec(&json!({ "token": token, "receipts": receipts })).unwrap();
    call(
        env,
        h,
        "POST",
        &format!("/v1/submissions/{sid}/ready"),
        Some(b),
        &[],
    )
    .await
}

/// Submits and confirms shares; returns the submission id.
async fn contribute(env: &Env, h: &CoordinatorHandle, study: &str, att: &Attestation) -> String {
    let a = submit(env, h, study, att).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let sid = a.body["submission_id"].as_str().unwrap().to_string();
    let r = ready(env, h, &sid, a.body["token"].as_str().unwrap()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "queued");
    sid
}

async fn status_of(env: &Env, h: &CoordinatorHandle, sid: &str) -> Value {
    call(env, h, "GET", &format!("/v1/submissions/{sid}"), None, &[])
        .await
        .body
}

/// Polls until `sid` reaches `status` (10 s at most).
async fn wait_status(env: &Env, h: &CoordinatorHandle, sid: &str, status: &str) -> Value {
    for _ in 0..500 {
        let s = status_of(env, h, sid).await;
        if s["status"] == status {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "submission {sid} never became {status}: {:?}",
        status_of(env, h, sid).await
    );
}

/// The operator status's `cheating_detected` list.
async fn cheating_reports(env: &Env, h: &CoordinatorHandle) -> Vec<Value> {
    let st = call(
        env,
        h,
        "GET",
        "/internal/status",
        None,
        &[("x-triad-admin", ADMIN)],
    )
    .await;
    st.body["cheating_detected"].as_array().unwrap().clone()
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}

async fn releases(env: &Env, h: &CoordinatorHandle) -> u64 {
    let a = call(env, h, "GET", "/v1/studies/s1", None, &[]).await;
    a.body["releases"].as_u64().unwrap()
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_are_created_listed_and_validated() {
    let env = Env::new();
    let h = env.launch(FakeParties::new()).await;
    assert_eq!(
        call(&env, &h, "GET", "/healthz", None, &[]).await.status,
        200
    );

    let b = serde_json::to_vec(&study_body("s1")).unwrap();
    let a = call(
        &env,
        &h,
        "POST",
        "/v1/studies",
        Some(b),
        &[("x-triad-admin", "no")],
    )
    .await;
    assert_eq!((a.status, a.code()), (401, "unauthorized"));

    let a = create_study(&env, &h, study_body("s1")).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["min_cohort"], 10);
    assert_eq!(a.body["min_new"], 10);
    assert_eq!(a.body["release_interval_secs"], 60);
    let a = create_study(&env, &h, study_body("s1")).await;
    assert_eq!((a.status, a.code()), (409, "study_exists"));

    let with = |k: &str, v: Value| {
        let mut b = study_body("s2");
        b[k] = v;
        b
    };
    for bad in [
        study_body("Bad_Id"),
        with("min_cohort", json!(0)),
        // Studies no party would serve or that could never release.
        with("min_new", json!(0)),
        with("min_cohort", json!(u64::MAX)),
        with("min_new", json!(u64::MAX)),
        with("release_interval_secs", json!(u64::MAX)),
        with("release_interval_secs", json!(0)),
        with("min_cohort", json!(5)), // below the parties' floor
        with(
            "data_spec",
            json!({"field": "", "scale": 1, "account_field": "uid"}),
        ),
        with("stats", json!({"quantiles": [2.0], "histogram_bounds": []})),
        with("source", json!({"server_name": ""})),
        with("source", json!({"server_name": "a b"})),
        with(
            "source",
            json!({"server_name": "x.example", "cert_chain_sha256": "zz"}),
        ),
    ] {
        let a = create_study(&env, &h, bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}: {:?}", a.body);
        assert_eq!(a.code(), "invalid_study", "{bad}");
    }
    // The source is required.
    let mut no_source = study_body("s2");
    no_source.as_object_mut().unwrap().remove("source");
    let a = create_study(&env, &h, no_source).await;
    assert_eq!((a.status, a.code()), (400, "malformed_body"));
    let a = call(&env, &h, "GET", "/v1/studies", None, &[]).await;
    assert_eq!(a.body.as_array().unwrap().len(), 1);
    let a = call(&env, &h, "GET", "/v1/studies/s1", None, &[]).await;
    assert_eq!((a.status, a.body["contributions"].clone()), (200, json!(0)));
    let a = call(&env, &h, "GET", "/v1/studies/nope", None, &[]).await;
    assert_eq!((a.status, a.code()), (404, "unknown_study"));
    h.shutdown().await;
}

/// Authentication comes before anything else of the request: the parties'
/// route answers 401 without their token whatever the id (even one that
/// does not decode), the admin route whatever the body (which it does not
/// read). Every error answer (unknown path, wrong method, a path that does
/// not decode) has the JSON shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_comes_first_and_every_error_answer_is_json() {
    let env = Env::new();
    let h = env.launch(FakeParties::new()).await;
    for path in [
        "/internal/batches/1",
        "/internal/batches/abc",
        "/internal/batches/%FF",
    ] {
        for headers in [&[][..], &[("x-triad-internal", "wrong")][..]] {
            let a = call(&env, &h, "GET", path, None, headers).await;
            assert_eq!((a.status, a.code()), (401, "unauthorized"), "{path}");
        }
    }
    let token = [(triad_wire::messages::INTERNAL_TOKEN_HEADER, INTERNAL)];
    let a = call(&env, &h, "GET", "/internal/batches/abc", None, &token).await;
    assert_eq!((a.status, a.code()), (400, "malformed_body"));
    let a = call(&env, &h, "GET", "/internal/batches/%FF", None, &token).await;
    assert_eq!((a.status, a.code()), (400, "bad_request"));
    for body in [b"{not".to_vec(), vec![b' '; 1024 * 1024]] {
        let a = call(&env, &h, "POST", "/v1/studies", Some(body), &[]).await;
        assert_eq!((a.status, a.code()), (401, "unauthorized"));
    }
    let a = call(&env, &h, "GET", "/internal/status", None, &token).await;
    assert_eq!(
        (a.status, a.code()),
        (401, "unauthorized"),
        "the parties' token is not the operator's"
    );

    let a = call(&env, &h, "GET", "/nope", None, &[]).await;
    assert_eq!((a.status, a.code()), (404, "not_found"));
    let a = call(&env, &h, "GET", "/v1/studies/%FF", None, &[]).await;
    assert_eq!((a.status, a.code()), (400, "bad_request"));
    let a = call(&env, &h, "GET", "/v1/submissions/x?wait_ms=soon", None, &[]).await;
    assert_eq!((a.status, a.code()), (400, "malformed_body"));
    let r = env
        .http
        .delete(format!("{}/v1/studies", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST,GET,HEAD");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "method_not_allowed");
    assert!(v["message"].is_string());
    h.shutdown().await;
}

/// The HTTPS server's handler deadline never cuts a status long poll
/// short, whatever deadline the configuration asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_outlasts_a_shorter_request_deadline() {
    let mut env = Env::new();
    env.cfg.serve.request_timeout = Duration::from_secs(1);
    let h = env.launch(FakeParties::new()).await;
    assert_eq!(create_study(&env, &h, study_body("s1")).await.status, 201);
    let a = submit(&env, &h, "s1", &attest("s1", 1)).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let sid = a.body["submission_id"].as_str().unwrap();
    // Never confirmed: the submission stays awaiting_shares for the whole
    // wait, which the handler spends in full.
    let path = format!("/v1/submissions/{sid}?wait_ms=2500");
    let a = call(&env, &h, "GET", &path, None, &[]).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("awaiting_shares")),
        "{:?}",
        a.body
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admission_error_has_its_code_and_changes_nothing() {
    let mut env = Env::new();
    env.cfg.limits.max_queue = 2;
    let h = env.launch(FakeParties::new()).await;
    create_study(&env, &h, study_body("s1")).await;
    create_study(&env, &h, study_body("s2")).await;
    let mut pinned = study_body("pinned");
    pinned["source"]["cert_chain_sha256"] = json!("01".repeat(32));
    assert_eq!(create_study(&env, &h, pinned).await.status, 201);
    let db = env.db();

    // One admitted submission, the reference for replay and sybil checks.
    let first = attest("s1", 1);
    let a = submit(&env, &h, "s1", &first).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["submission_id"].as_str().unwrap().len(), 32);
    assert_eq!(a.body["token"].as_str().unwrap().len(), 64);
    assert_eq!(a.body["parties"].as_array().unwrap().len(), 3);
    let sid = a.body["submission_id"].as_str().unwrap().to_string();
    let token = a.body["token"].as_str().unwrap().to_string();

    let now = triad_wire::unix_now();
    let mut tampered = attest("s1", 2);
    tampered.commitment = attest("s1", 2).commitment;
    let other_notary = {
        let mut c = attest("s1", 3).decode_claims().unwrap();
        c.nullifier = fr_from_i128(3_000_003);
        sign_attestation(&NotarySigningKey::from_seed([9; 32]), &c)
    };
    let raw = |b: &[u8]| b.to_vec();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("s1", raw(b"{not json"), 400, "malformed_body"),
        ("s1", raw(b"{\"attestation\": 5}"), 400, "malformed_body"),
        ("s1", vec![b' '; 70 * 1024], 413, "payload_too_large"),
        (
            "nope",
            serde_json::to_vec(&json!({"attestation": attest("nope", 2)})).unwrap(),
            404,
            "unknown_study",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": tampered})).unwrap(),
            422,
            "attestation_invalid",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": other_notary})).unwrap(),
            422,
            "attestation_invalid",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": attest_with("s1", 4, |c| {
                c.session_time = now - 7200;
                c.expires_at = now - 10;
            })}))
            .unwrap(),
            422,
            "attestation_expired",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": attest_with("s1", 5, |c| {
                c.session_time = now - 3700;
                c.expires_at = now + 600;
            })}))
            .unwrap(),
            422,
            "attestation_stale",
        ),
        (
            "s2",
            serde_json::to_vec(&json!({"attestation": attest("s1", 6)})).unwrap(),
            422,
            "study_mismatch",
        ),
        (
            "s1",
            serde_json::to_vec(
                &json!({"attestation": attest_with("s1", 7, |c| c.data_spec.scale = 2)}),
            )
            .unwrap(),
            422,
            "study_mismatch",
        ),
        // A forged source: the notary attests a session with another
        // server (another name, or the same name with another chain when
        // the study pins one).
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": attest_with("s1", 8, |c| {
                c.server_name = "evil.example".into();
            })}))
            .unwrap(),
            422,
            "wrong_source",
        ),
        (
            "pinned",
            serde_json::to_vec(&json!({"attestation": attest_with("pinned", 9, |c| {
                c.cert_chain_sha256 = [9; 32];
            })}))
            .unwrap(),
            422,
            "wrong_source",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": first})).unwrap(),
            409,
            "attestation_replayed",
        ),
        (
            "s1",
            serde_json::to_vec(&json!({"attestation": attest("s1", 1)})).unwrap(),
            409,
            "already_contributed",
        ),
    ];
    for (study, body, status, code) in cases {
        let before = db.row_counts().unwrap();
        let a = call(
            &env,
            &h,
            "POST",
            &format!("/v1/studies/{study}/submissions"),
            Some(body),
            &[],
        )
        .await;
        assert_eq!((a.status, a.code()), (status, code), "{:?}", a.body);
        assert_eq!(db.row_counts().unwrap(), before, "{code} changed state");
    }

    // Queue bound: max_queue 2, one already in flight.
    let a = submit(&env, &h, "s1", &attest("s1", 10)).await;
    assert_eq!(a.status, 202);
    let before = db.row_counts().unwrap();
    let a = submit(&env, &h, "s1", &attest("s1", 11)).await;
    assert_eq!((a.status, a.code()), (503, "queue_full"));
    assert_eq!(db.row_counts().unwrap(), before);

    // Ready: unknown id, wrong token, then right token, then wrong state.
    let a = ready(&env, &h, "00", &token).await;
    assert_eq!((a.status, a.code()), (404, "unknown_submission"));
    let a = ready(&env, &h, &sid, "bad").await;
    assert_eq!((a.status, a.code()), (403, "wrong_token"));
    assert_eq!(status_of(&env, &h, &sid).await["status"], "awaiting_shares");
    let a = call(&env, &h, "GET", "/v1/submissions/00", None, &[]).await;
    assert_eq!((a.status, a.code()), (404, "unknown_submission"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_providers_token_gets_the_same_admission() {
    let env = Env::new();
    let h = env.launch(FakeParties::new()).await;
    let db = SqliteStore::open(&env.data_dir).unwrap();
    create_study(&env, &h, study_body("s1")).await;
    let att = attest("s1", 1);
    let post = |token: Value| {
        let b = serde_json::to_vec(&json!({"attestation": att, "token": token})).unwrap();
        call(&env, &h, "POST", "/v1/studies/s1/submissions", Some(b), &[])
    };
    let t = "ab".repeat(32);
    let first = post(json!(t)).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert_eq!(first.body["token"], json!(t));
    // The answer was lost; the same request again changes nothing and
    // names the same submission.
    let before = db.row_counts().unwrap();
    let again = post(json!(t)).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["submission_id"], first.body["submission_id"]);
    assert_eq!(db.row_counts().unwrap(), before);
    // Anyone else replaying the attestation (another token, or none) is
    // refused, and so is the provider once it confirmed its shares.
    for other in [json!("cd".repeat(32)), Value::Null] {
        let a = post(other).await;
        assert_eq!((a.status, a.code()), (409, "attestation_replayed"));
    }
    let a = post(json!("AB".repeat(32))).await;
    assert_eq!((a.status, a.code()), (400, "malformed_body"));
    let sid = first.body["submission_id"].as_str().unwrap().to_string();
    assert_eq!(ready(&env, &h, &sid, &t).await.status, 202);
    let a = post(json!(t)).await;
    assert_eq!((a.status, a.code()), (409, "attestation_replayed"));
    assert_eq!(db.row_counts().unwrap(), before);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_with_one_nullifier_admit_exactly_one() {
    let env = Env::new();
    let h = Arc::new(env.launch(FakeParties::new()).await);
    create_study(&env, &h, study_body("s1")).await;
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (env, h) = (env.clone(), h.clone());
            let att = attest("s1", 42);
            tokio::spawn(async move { submit(&env, &h, "s1", &att).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            202 => ok += 1,
            409 => assert_eq!(a.code(), "already_contributed"),
            s => panic!("unexpected {s}: {:?}", a.body),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        env.db().test_query_i64("SELECT COUNT(*) FROM submissions"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let mut env = Env::new();
    env.cfg.limits.per_ip_burst = 5.0;
    env.cfg.limits.per_ip_per_sec = 0.01;
    let h = env.launch(FakeParties::new()).await;
    let path = "/v1/studies/s1/submissions";
    for _ in 0..5 {
        let a = call(&env, &h, "POST", path, Some(b"x".to_vec()), &[]).await;
        assert_eq!(a.status, 400);
    }
    let a = call(&env, &h, "POST", path, Some(b"x".to_vec()), &[]).await;
    assert_eq!((a.status, a.code()), (429, "rate_limited"));
    let secs: u64 = a.retry_after.unwrap().parse().unwrap();
    assert!(secs >= 1);
    // Ready is limited by the same buckets.
    let a = call(
        &env,
        &h,
        "POST",
        "/v1/submissions/x/ready",
        Some(b"{}".to_vec()),
        &[],
    )
    .await;
    assert_eq!(a.status, 429);
    h.shutdown().await;

    let mut env = Env::new();
    env.cfg.limits.global_burst = 3.0;
    env.cfg.limits.global_per_sec = 0.01;
    let h = env.launch(FakeParties::new()).await;
    for _ in 0..3 {
        assert_eq!(
            call(&env, &h, "POST", path, Some(b"x".to_vec()), &[])
                .await
                .status,
            400
        );
    }
    let a = call(&env, &h, "POST", path, Some(b"x".to_vec()), &[]).await;
    assert_eq!(a.status, 429);
    assert!(a.retry_after.is_some());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_and_applies_verdicts() {
    let mut env = Env::new();
    env.cfg.batching.max_batch = 4;
    let fake = FakeParties::new();
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    let atts: Vec<_> = (0..6).map(|i| attest("s1", 100 + i)).collect();
    fake.bad.lock().unwrap().insert(atts[1].commitment.clone());
    let mut sids = Vec::new();
    for a in &atts {
        sids.push(contribute(&env, &h, "s1", a).await);
    }
    for (i, sid) in sids.iter().enumerate() {
        if i == 1 {
            let s = wait_status(&env, &h, sid, "rejected").await;
            assert_eq!(s["reason"], "commitment_mismatch");
        } else {
            wait_status(&env, &h, sid, "accepted").await;
        }
    }
    // FIFO: the first four formed batch 1, every party committed both.
    for p in 0..3 {
        assert_eq!(fake.logged(&format!("commit {p} 1")), 1);
        assert_eq!(fake.logged(&format!("commit {p} 2")), 1);
    }
    let info = call(&env, &h, "GET", "/v1/studies/s1", None, &[])
        .await
        .body;
    assert_eq!(info["contributions"], 5);
    // The rejected provider's nullifier is free again; accepted ones are not.
    assert_eq!(submit(&env, &h, "s1", &attest("s1", 101)).await.status, 202);
    let a = submit(&env, &h, "s1", &attest("s1", 100)).await;
    assert_eq!(a.code(), "already_contributed");
    let a = call(
        &env,
        &h,
        "GET",
        "/internal/batches/1",
        None,
        &[("x-triad-internal", INTERNAL)],
    )
    .await;
    assert_eq!(a.body["decision"], "commit");
    let a = call(
        &env,
        &h,
        "GET",
        "/internal/batches/77",
        None,
        &[("x-triad-internal", INTERNAL)],
    )
    .await;
    assert_eq!(a.body["decision"], "abort");
    let a = call(&env, &h, "GET", "/internal/batches/1", None, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(fake.max_in_mpc.load(Ordering::SeqCst), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_disagreeing_parties_abort_then_batch_failed() {
    for mode in [Mode::Fail, Mode::Disagree, Mode::Cheat] {
        let env = Env::new();
        let fake = FakeParties::new();
        fake.prepare_mode.lock().unwrap()[1] = mode;
        let h = env.launch(fake.clone()).await;
        create_study(&env, &h, study_body("s1")).await;
        let sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
        let s = wait_status(&env, &h, &sid, "rejected").await;
        assert_eq!(s["reason"], "batch_failed", "{mode:?}");
        // The abort is logged (and applied) before the parties hear it.
        let f = fake.clone();
        wait_for(move || f.logged("abort 2 3") == 1).await;
        for b in 1..=3 {
            assert_eq!(fake.logged(&format!("prepare 0 {b}")), 1);
            assert_eq!(fake.logged(&format!("abort 2 {b}")), 1);
        }
        assert_eq!(fake.logged("prepare 0 4"), 0);
        assert_eq!(fake.logged("commit 0 1"), 0);
        // Cheating is told apart from other failures: the operator's status
        // lists each aborted batch with the reporting party.
        let reports = cheating_reports(&env, &h).await;
        if mode == Mode::Cheat {
            assert_eq!(reports.len(), 3, "{reports:?}");
            for (b, r) in reports.iter().enumerate() {
                assert_eq!(r["batch_id"], b as u64 + 1);
                assert_eq!(r["reported_by"], 1);
                assert!(r["what"].as_str().unwrap().contains("AND-gate"), "{r}");
            }
        } else {
            assert!(reports.is_empty(), "{mode:?}: {reports:?}");
        }
        // Nullifier released: the provider may try again.
        assert_eq!(submit(&env, &h, "s1", &attest("s1", 1)).await.status, 202);
        h.shutdown().await;
    }

    // One failure, then success: retried and accepted.
    let env = Env::new();
    let fake = FakeParties::new();
    fake.fail_prepares.lock().unwrap()[2] = 1;
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    let sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
    wait_status(&env, &h, &sid, "accepted").await;
    assert_eq!(fake.logged("abort 0 1"), 1);
    assert_eq!(fake.logged("commit 0 2"), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_aborts_preparing_batches_and_finishes_committed_ones() {
    // A party never answers prepare; the coordinator dies mid-batch.
    let env = Env::new();
    let fake = FakeParties::new();
    fake.prepare_mode.lock().unwrap()[0] = Mode::Block;
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    let sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
    wait_status(&env, &h, &sid, "processing").await;
    let a = call(
        &env,
        &h,
        "GET",
        "/internal/batches/1",
        None,
        &[("x-triad-internal", INTERNAL)],
    )
    .await;
    assert_eq!(a.body["decision"], "pending");
    h.shutdown().await;

    let fake2 = FakeParties::new();
    let h = env.launch(fake2.clone()).await;
    wait_status(&env, &h, &sid, "accepted").await;
    assert_eq!(fake2.logged("abort 0 1"), 1);
    assert_eq!(fake2.logged("commit 0 2"), 1);
    let a = call(
        &env,
        &h,
        "GET",
        "/internal/batches/1",
        None,
        &[("x-triad-internal", INTERNAL)],
    )
    .await;
    assert_eq!(a.body["decision"], "abort");
    assert_eq!(
        env.db().test_query_i64("SELECT attempts FROM submissions"),
        1
    );
    h.shutdown().await;

    // Commit decided, a party never acks; the coordinator dies.
    let env = Env::new();
    let fake = FakeParties::new();
    fake.commit_fails.lock().unwrap()[2] = true;
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    let sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
    let f = fake.clone();
    wait_for(move || f.logged("commit 0 1") == 1).await;
    let a = call(
        &env,
        &h,
        "GET",
        "/internal/batches/1",
        None,
        &[("x-triad-internal", INTERNAL)],
    )
    .await;
    assert_eq!(a.body["decision"], "commit");
    assert_eq!(status_of(&env, &h, &sid).await["status"], "processing");
    h.shutdown().await;

    let fake2 = FakeParties::new();
    let h = env.launch(fake2.clone()).await;
    wait_status(&env, &h, &sid, "accepted").await;
    assert_eq!(fake2.logged("commit 2 1"), 1);
    assert_eq!(fake2.logged("prepare 0 1"), 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_wait_for_min_cohort_and_min_new() {
    let env = Env::new();
    let fake = FakeParties::new();
    *fake.floors.lock().unwrap() = Floors {
        min_cohort: 1,
        min_new: 1,
    };
    let h = env.launch(fake.clone()).await;
    let mut body = study_body("s1");
    body["min_cohort"] = json!(3);
    body["min_new"] = json!(2);
    body["release_interval_secs"] = json!(1);
    assert_eq!(create_study(&env, &h, body).await.status, 201);
    let mut account = 0;
    let mut add = async |n: usize| {
        for _ in 0..n {
            account += 1;
            let sid = contribute(&env, &h, "s1", &attest("s1", account)).await;
            wait_status(&env, &h, &sid, "accepted").await;
        }
    };
    // Releases of one study are at least a second apart; waiting 1.3 s
    // lets the driver pass its release step many times.
    let settle = || tokio::time::sleep(Duration::from_millis(1300));
    add(2).await;
    settle().await;
    assert_eq!(releases(&env, &h).await, 0, "below min_cohort");
    add(1).await;
    let f = fake.clone();
    wait_for(move || f.logged("release 2 1") == 1).await;
    settle().await;
    assert_eq!(releases(&env, &h).await, 1);
    add(1).await;
    settle().await;
    assert_eq!(releases(&env, &h).await, 1, "only one new contribution");
    add(1).await;
    let f = fake.clone();
    wait_for(move || f.logged("release 2 2") == 1).await;
    settle().await;
    assert_eq!(releases(&env, &h).await, 2);
    assert_eq!(fake.logged("release 0 3"), 0);
    let stored = env
        .db()
        .test_query_i64("SELECT count FROM releases WHERE release_no = 2");
    assert_eq!(stored, 5);
    assert_eq!(fake.max_in_mpc.load(Ordering::SeqCst), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_needs_three_receipts_for_this_submission() {
    let env = Env::new();
    let fake = FakeParties::new();
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    let a = submit(&env, &h, "s1", &attest("s1", 1)).await;
    let sid = a.body["submission_id"].as_str().unwrap().to_string();
    let token = a.body["token"].as_str().unwrap().to_string();
    let other = submit(&env, &h, "s1", &attest("s1", 2)).await;
    let other_sid = other.body["submission_id"].as_str().unwrap().to_string();
    let good = receipts(&sid, &token, 1);
    let mut disagree = good.clone();
    disagree[2] = receipts(&sid, &token, 7).remove(2);
    let mut forged = good.clone();
    forged[1] = {
        let doc: ShareReceipt = serde_json::from_str(&good[1].receipt_json).unwrap();
        doc.sign(1, &PartySigningKey::from_seed([99; 32]))
    };
    let cases: Vec<(&str, Vec<SignedReceipt>)> = vec![
        ("none", vec![]),
        ("two", good[..2].to_vec()),
        ("disagreeing", disagree),
        ("forged", forged),
        ("another submission's", receipts(&other_sid, &token, 1)),
        ("another token's", receipts(&sid, &"e".repeat(64), 1)),
        (
            "lapsing",
            receipts_kept(&sid, &token, 1, triad_wire::unix_now() + 30),
        ),
    ];
    for (what, r) in cases {
        let a = ready_with(&env, &h, &sid, &token, r).await;
        assert_eq!(
            (a.status, a.code()),
            (400, "bad_receipts"),
            "{what}: {:?}",
            a.body
        );
    }
    // Refused: still awaiting shares, nothing batched.
    let s = call(
        &env,
        &h,
        "GET",
        &format!("/v1/submissions/{sid}"),
        None,
        &[],
    )
    .await;
    assert_eq!(s.body["status"], "awaiting_shares");
    let a = ready_with(&env, &h, &sid, &token, good.clone()).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    wait_status(&env, &h, &sid, "accepted").await;
    // The batch names the digest the parties signed.
    let doc: ShareReceipt = serde_json::from_str(&good[0].receipt_json).unwrap();
    let items = fake.prepared_items();
    let item = items.iter().find(|i| i.submission_id == sid).unwrap();
    assert_eq!(item.shares_digest, doc.digest());
    // ... and forwards the receipts themselves, as evidence against a
    // party that would claim not to hold the shares.
    assert_eq!(item.receipts, good);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_submissions_time_out_and_ready_is_once() {
    let mut env = Env::new();
    env.cfg.batching.shares_timeout = Duration::from_millis(200);
    let h = env.launch(FakeParties::new()).await;
    create_study(&env, &h, study_body("s1")).await;
    let a = submit(&env, &h, "s1", &attest("s1", 1)).await;
    let sid = a.body["submission_id"].as_str().unwrap().to_string();
    let token = a.body["token"].as_str().unwrap().to_string();
    let s = wait_status(&env, &h, &sid, "rejected").await;
    assert_eq!(s["reason"], "shares_timeout");
    let a = ready(&env, &h, &sid, &token).await;
    assert_eq!((a.status, a.code()), (409, "wrong_state"));
    // The nullifier is free again.
    let sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
    wait_status(&env, &h, &sid, "accepted").await;
    h.shutdown().await;
}

/// A party that refuses a logged commit outright (it lost the batch) used
/// to make the driver retry forever, serving nothing else. Now the batch
/// is reported stuck, other studies keep being served, and the commit is
/// retried until the party acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_is_surfaced_and_does_not_stall_the_driver() {
    let mut env = Env::new();
    env.cfg.batching.commit_patience = Duration::from_millis(300);
    env.cfg.batching.stuck_retry = Duration::from_millis(300);
    let fake = FakeParties::new();
    fake.commit_refuses.lock().unwrap().insert(1);
    let h = env.launch(fake.clone()).await;
    create_study(&env, &h, study_body("s1")).await;
    create_study(&env, &h, study_body("s2")).await;
    let stuck_sid = contribute(&env, &h, "s1", &attest("s1", 1)).await;
    let f = fake.clone();
    wait_for(move || f.logged("refused commit 2 1") >= 1).await;

    let status = |tok: &'static str| {
        let (env, h) = (&env, &h);
        async move {
            call(
                env,
                h,
                "GET",
                "/internal/status",
                None,
                &[("x-triad-admin", tok)],
            )
            .await
        }
    };
    let mut shown = false;
    for _ in 0..100 {
        let a = status(ADMIN).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        if let Some(b) = a.body["stuck_commits"].as_array().and_then(|v| v.first()) {
            assert_eq!(b["batch_id"], 1);
            assert!(
                b["errors"][0].as_str().unwrap().contains("unknown_batch"),
                "{b}"
            );
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown, "the stuck batch is not reported");
    assert_eq!(status("wrong").await.status, 401);
    assert_eq!(
        status_of(&env, &h, &stuck_sid).await["status"],
        "processing"
    );

    // The driver keeps serving: another study's contribution goes through
    // (party 2 acks batch 2's commit: it refuses only the one it lost)...
    let other = contribute(&env, &h, "s2", &attest("s2", 2)).await;
    wait_status(&env, &h, &other, "accepted").await;
    assert_eq!(
        status_of(&env, &h, &stuck_sid).await["status"],
        "processing"
    );
    // The stuck commit is retried.
    let f = fake.clone();
    wait_for(move || f.logged("refused commit 2 1") >= 2).await;
    // ...and once the party acks, the stuck batch is settled and cleared.
    fake.commit_refuses.lock().unwrap().clear();
    wait_status(&env, &h, &stuck_sid, "accepted").await;
    let a = status(ADMIN).await;
    assert_eq!(a.body["stuck_commits"], json!([]));
    h.shutdown().await;
}

/// A poll tally a party aborts because its checks caught a deviation is
/// listed, once, in the operator's status (with the poll and the
/// reporting party), while the tallier keeps asking; nothing is stored.
/// Another party's failing request does not make the report vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_tally_aborted_on_cheating_is_reported_once() {
    use crate::store::directory::Kind;
    use crate::store::suite::{entry, poll_info};
    use crate::store::PollStore;
    let env = Env::new();
    let fake = FakeParties::new();
    *fake.tally_cheat.lock().unwrap() = Some(1);
    let h = env.launch(fake.clone()).await;
    // Poll 7: voting closed at 20 (unix seconds), so the tallier asks.
    let (info, entry) = (poll_info(7), entry(Kind::Poll, "7", 7));
    assert!(env.db().create_poll(&info, &entry).unwrap());
    let f = fake.clone();
    // Three requests: the second round's answer was processed.
    wait_for(move || f.logged("tally 1 7") >= 3).await;
    let reports = cheating_reports(&env, &h).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["poll_id"], 7);
    assert_eq!(reports[0]["reported_by"], 1);
    assert!(reports[0]["what"]
        .as_str()
        .unwrap()
        .contains("input consistency"));
    assert!(reports[0].get("batch_id").is_none());
    let health = call(&env, &h, "GET", "/healthz", None, &[]).await;
    assert_eq!(health.body["cheating_reports"], 1, "{:?}", health.body);
    h.shutdown().await;
    assert!(!env.db().poll(7).unwrap().unwrap().tallied);
}
