//! One real party over HTTPS (its peers are absent): bad uploads and bad
//! internal requests get specific errors and change nothing, internal
//! endpoints need the token, and the party enforces the output-privacy rule
//! on its own store before any MPC starts.

use std::num::Wrapping;
use std::time::Duration;

use serde_json::{json, Value};
use triad_mpc::PartyId;
use triad_party::intake::token_sha256;
use triad_party::store::{PartyStore, SqliteStore};
use triad_party::{launch, load_or_create_keys, Floors, PartyConfig, DB_FILE};
use triad_stats::StatsSpec;
use triad_wire::messages::{ReleaseRequest, StudyParams, INTERNAL_TOKEN_HEADER};
use triad_wire::pki::ServiceCa;
use triad_wire::receipt::{component_commitment, verify_receipts, ShareReceipt, SignedReceipt};
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::{NetworkConfig, PartyEndpoint};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    url: String,
    http: reqwest::Client,
    network: NetworkConfig,
}

/// The coordinator the fixture's party trusts (directory records).
fn coordinator_key() -> triad_directory::SigningKey {
    triad_directory::SigningKey::from_seed([9; 32])
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    let ca = ServiceCa::create(&ca_path).unwrap();
    let leaf = ca.issue(dir.path(), "party0").unwrap();
    let parties: Vec<PartyEndpoint> = (0..3)
        .map(|i| {
            let keys = load_or_create_keys(&dir.path().join(format!("p{i}")), i).unwrap();
            PartyEndpoint {
                url: "https://127.0.0.1:1".into(),
                mpc_addr: free_addr(),
                mpc_cert: hex::encode(&keys.identity.cert_der),
                sign_key: keys.sign.public_key().to_hex(),
            }
        })
        .collect();
    let network = NetworkConfig {
        mpc_latency_us: 0,
        ca_cert: ca_path.clone(),
        // Nobody answers there: pending batches simply stay pending.
        coordinator: "https://127.0.0.1:1".into(),
        coordinator_key: Some(coordinator_key().public_key().to_hex()),
        parties: parties.try_into().unwrap(),
        notary: "http://127.0.0.1:1".into(),
        notary_key: triad_attestation::NotarySigningKey::from_seed([5; 32])
            .public_key()
            .to_hex(),
        api: "https://127.0.0.1:1".into(),
        datasource: None,
    };
    let data = dir.path().join("p0");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = launch(
        PartyConfig {
            database: None,
            id: PartyId::new(0).unwrap(),
            data_dir: data.clone(),
            network: network.clone(),
            tls: triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap(),
            internal_token: "party-token-party-token-party-token".into(),
            coordinator_token_sha256: triad_wire::https::token_digest(TOKEN),
            floors: Floors {
                min_cohort: 5,
                min_new: 2,
            },
            upload_rate: triad_wire::limits::RateLimit {
                per_ip_per_sec: 0.001,
                per_ip_burst: 10.0,
                global_per_sec: 1000.0,
                global_burst: 1000.0,
            },
            serve: triad_wire::https::ServeLimits::default(),
            security: Default::default(),
            poll_security: Default::default(),
        },
        listener,
    )
    .await
    .unwrap();
    let http =
        triad_wire::https::client(&std::fs::read(&ca_path).unwrap(), Duration::from_secs(30))
            .unwrap();
    Fixture {
        _dir: dir,
        data,
        url: format!("https://{}", h.addr),
        http,
        network,
    }
}

async fn post(f: &Fixture, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let mut req = f
        .http
        .post(format!("{}{path}", f.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.header(INTERNAL_TOKEN_HEADER, t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn intake(f: &Fixture) -> u64 {
    let v: Value = f
        .http
        .get(format!("{}/v1/info", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["intake"].as_u64().unwrap()
}

/// An upload to party 0 (components 0 and 1) with commitments its
/// components open; component 2's commitment is arbitrary.
fn upload_json(value: &str, blinder: &str) -> Value {
    let sid = "ab".repeat(16);
    let (v1, b1) = ("0000000000000000".to_string(), "00".repeat(32));
    let salts = ["11".repeat(32), "22".repeat(32)];
    let c0 = component_commitment(&sid, 0, value, blinder, &salts[0]);
    let c1 = component_commitment(&sid, 1, &v1, &b1, &salts[1]);
    json!({
        "submission_id": sid,
        "token": "cd".repeat(32),
        "value_bits": [value, v1],
        "blinder": [blinder, b1],
        "salts": salts,
        "commitments": [c0, c1, "33".repeat(32)],
    })
}

fn upload(value: &str, blinder: &str) -> Vec<u8> {
    upload_json(value, blinder).to_string().into_bytes()
}

fn study(min_cohort: u64, min_new: u64) -> StudyParams {
    StudyParams {
        id: "s1".into(),
        name: "s".into(),
        source: triad_attestation::DataSource::named("127.0.0.1"),
        data_spec: triad_attestation::DataSpec {
            field: "v".into(),
            scale: 0,
            account_field: "uid".into(),
        },
        min_cohort,
        min_new,
        release_interval_secs: 1,
        stats: StatsSpec::default(),
    }
}

fn release_req(s: StudyParams, no: u64) -> Vec<u8> {
    release_at(s, no, 1)
}

fn release_at(s: StudyParams, no: u64, created_at: u64) -> Vec<u8> {
    serde_json::to_vec(&ReleaseRequest {
        study: s,
        release_no: no,
        created_at,
        as_of_batch: u64::MAX,
    })
    .unwrap()
}

fn import(f: &Fixture, batch: u64, n: usize) {
    let store = SqliteStore::open(&f.data.join(DB_FILE)).unwrap();
    let rows: Vec<_> = (0..n)
        .map(|k| (format!("{batch:016x}{k:016x}"), Wrapping(1), Wrapping(2)))
        .collect();
    store.import_committed(batch, "s1", &rows).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_refused_and_store_nothing() {
    let f = start().await;
    let good = upload("00000000000000ff", &"00".repeat(32));
    let (status, receipt) = post(&f, "/v1/shares", good.clone(), None).await;
    assert_eq!(status, 202);
    assert_eq!(intake(&f).await, 1);
    // The answer is party 0's signed receipt for exactly these commitments.
    let receipt: SignedReceipt = serde_json::from_value(receipt).unwrap();
    assert_eq!(receipt.party, 0);
    let doc: ShareReceipt = serde_json::from_str(&receipt.receipt_json).unwrap();
    let sent = upload_json("00000000000000ff", &"00".repeat(32));
    assert_eq!(json!(doc.commitments), sent["commitments"]);
    assert_eq!(
        doc.token_sha256,
        hex::encode(token_sha256(&"cd".repeat(32)))
    );
    let keys = f.network.parties.clone().map(|p| p.sign_key);
    let mut three = vec![receipt.clone(); 3];
    three[1].party = 1;
    three[2].party = 2;
    let own = [0, 0, 0].map(|_| keys[0].clone());
    assert_eq!(
        verify_receipts(&three, &own).map(|v| v.receipt),
        Ok(doc.clone())
    );
    assert_eq!(
        verify_receipts(&three, &keys),
        Err(triad_wire::ReleaseError::BadSignature(1)),
        "party 0's receipt verifies under its own key only"
    );
    // Components that do not open their commitments: refused.
    let mut wrong_salt = upload_json("00000000000000ff", &"00".repeat(32));
    wrong_salt["salts"][1] = json!("44".repeat(32));
    let mut other_component = upload_json("00000000000000ff", &"00".repeat(32));
    other_component["value_bits"][1] = json!("0000000000000001");
    let mut upper_commitment = upload_json("00000000000000ff", &"00".repeat(32));
    let c0 = upper_commitment["commitments"][0]
        .as_str()
        .unwrap()
        .to_uppercase();
    upper_commitment["commitments"][0] = json!(c0);
    // The BN254 modulus itself is not a canonical scalar.
    let p = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (upload("ff", &"00".repeat(32)), 400, "bad_shares"),
        (
            upload("00000000000000FF", &"00".repeat(32)),
            400,
            "bad_shares",
        ),
        (upload("00000000000000ff", p), 400, "bad_shares"),
        (wrong_salt.to_string().into_bytes(), 400, "bad_shares"),
        (other_component.to_string().into_bytes(), 400, "bad_shares"),
        (upper_commitment.to_string().into_bytes(), 400, "bad_shares"),
        (b"{not json".to_vec(), 400, "malformed_body"),
        (b"{}".to_vec(), 400, "malformed_body"),
        (vec![b' '; 20 * 1024], 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let (s, v) = post(&f, "/v1/shares", body, None).await;
        assert_eq!((s, v["error"].as_str().unwrap_or("")), (status, code));
    }
    assert_eq!(intake(&f).await, 1, "refused uploads stored nothing");
    // The burst is 10 uploads per client address, used up by the ten
    // above; the 11th is refused with a Retry-After and stores nothing.
    let r = f
        .http
        .post(format!("{}/v1/shares", f.url))
        .body(upload("00000000000000aa", &"00".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(intake(&f).await, 1);
}

/// A receipt promises to keep the shares for the intake's 180 s from the
/// upload (`kept_until`, evidence against a party that would later claim
/// not to hold them); the same shares again renew it, and other shares
/// under the same key while these are held are refused (409) and leave
/// them in place, so a provider cannot make the promise false.
#[tokio::test(flavor = "multi_thread")]
async fn receipts_promise_retention_and_held_shares_are_not_replaced() {
    let f = start().await;
    let send = |value: &'static str| {
        let f = &f;
        async move { post(f, "/v1/shares", upload(value, &"00".repeat(32)), None).await }
    };
    let kept = |v: Value| -> u64 {
        let r: SignedReceipt = serde_json::from_value(v).unwrap();
        serde_json::from_str::<ShareReceipt>(&r.receipt_json)
            .unwrap()
            .kept_until
    };
    let before = triad_wire::unix_now();
    let (status, r) = send("00000000000000ff").await;
    assert_eq!(status, 202, "{r}");
    let first = kept(r);
    let after = triad_wire::unix_now();
    assert!(
        (before + 180..=after + 180).contains(&first),
        "kept until {first}, uploaded in {before}..={after}"
    );
    let (status, r) = send("00000000000000ff").await;
    assert_eq!(status, 202, "{r}");
    assert!(kept(r) >= first);
    let (status, r) = send("00000000000000fe").await;
    assert_eq!(
        (status, r["error"].as_str()),
        (409, Some("wrong_state")),
        "{r}"
    );
    assert_eq!(intake(&f).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_endpoints_need_the_token_and_refuse_bad_requests() {
    let f = start().await;
    let body = release_req(study(10, 10), 1);
    for token in [None, Some("wrong")] {
        let (s, v) = post(&f, "/internal/releases", body.clone(), token).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (401, "unauthorized"));
        let (s, _) = post(&f, "/internal/batches/7/commit", vec![], token).await;
        assert_eq!(s, 401);
    }
    // An empty batch is malformed; an aborted batch can neither be
    // prepared nor committed later.
    let empty = json!({"batch_id": 7, "study": study(10, 10), "items": []}).to_string();
    let (s, v) = post(&f, "/internal/batches/prepare", empty.into(), Some(TOKEN)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "malformed_body"));
    let (s, v) = post(&f, "/internal/batches/99/commit", vec![], Some(TOKEN)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (404, "unknown_batch"));
    assert_eq!(
        post(&f, "/internal/batches/7/abort", vec![], Some(TOKEN))
            .await
            .0,
        200
    );
    let (s, v) = post(&f, "/internal/batches/7/commit", vec![], Some(TOKEN)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "wrong_state"));
    let att = triad_attestation::sign_attestation(
        &triad_attestation::NotarySigningKey::from_seed([5; 32]),
        &triad_attestation::AttestationClaims {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: [0; 32],
            session_time: 1,
            expires_at: 2,
            study_id: "s1".into(),
            data_spec: study(10, 10).data_spec,
            commitment: triad_crypto::Fr::from(1u64),
            nullifier: triad_crypto::Fr::from(2u64),
            transcript_sha256: [0; 32],
        },
    );
    let item = json!({"batch_id": 7, "study": study(10, 10), "items": [{
        "submission_id": "ab".repeat(16), "token_sha256": "cd".repeat(32),
        "commitment": att.commitment.clone(), "shares_digest": "ef".repeat(32),
        "attestation": att}]})
    .to_string();
    let (s, v) = post(&f, "/internal/batches/prepare", item.into(), Some(TOKEN)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "wrong_state"));
    // An item whose receipts are not the three parties' in order is
    // malformed (before any state is looked at).
    let receipt = |party: u8| json!({"party": party, "receipt_json": "{}", "signature": "00"});
    for receipts in [
        json!([receipt(0), receipt(1)]),
        json!([receipt(0), receipt(2), receipt(1)]),
        json!([receipt(0), receipt(1), receipt(2), receipt(0)]),
    ] {
        let bad = json!({"batch_id": 8, "study": study(10, 10), "items": [{
            "submission_id": "ab".repeat(16), "token_sha256": "cd".repeat(32),
            "commitment": att.commitment.clone(), "shares_digest": "ef".repeat(32),
            "attestation": att, "receipts": receipts}]})
        .to_string();
        let (s, v) = post(&f, "/internal/batches/prepare", bad.into(), Some(TOKEN)).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap()),
            (400, "malformed_body"),
            "{v}"
        );
    }
    let r = f
        .http
        .get(format!("{}/v1/studies/s1/release/latest", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// Authentication comes before anything else of the request: without the
/// coordinator's token every internal route answers 401 whatever its id,
/// so a caller learns nothing of the routes' shape. With it, a bad id is a
/// 400; unknown paths and wrong methods answer too, all in the JSON shape.
#[tokio::test(flavor = "multi_thread")]
async fn internal_routes_authenticate_before_parsing_and_errors_are_json() {
    let f = start().await;
    for path in [
        "/internal/batches/abc/commit",
        "/internal/batches/abc/abort",
        "/internal/batches/%FF/commit",
        "/internal/batches/18446744073709551616/abort",
        "/internal/batches/7/commit",
        "/internal/batches/prepare",
        "/internal/releases",
        "/internal/studies",
    ] {
        for token in [None, Some("wrong")] {
            let (s, v) = post(&f, path, vec![], token).await;
            assert_eq!(
                (s, v["error"].as_str().unwrap_or("")),
                (401, "unauthorized"),
                "{path} {token:?}"
            );
        }
    }
    for path in ["/internal/batches/abc/commit", "/internal/batches/-1/abort"] {
        let (s, v) = post(&f, path, vec![], Some(TOKEN)).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap_or("")),
            (400, "malformed_body")
        );
    }
    let (s, v) = post(&f, "/internal/batches/%FF/abort", vec![], Some(TOKEN)).await;
    assert_eq!((s, v["error"].as_str().unwrap_or("")), (400, "bad_request"));

    let (s, v) = post(&f, "/nope", vec![], None).await;
    assert_eq!((s, v["error"].as_str().unwrap_or("")), (404, "not_found"));
    for path in ["/v1/shares", "/internal/batches/7/commit"] {
        let r = f.http.get(format!("{}{path}", f.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405, "{path}");
        assert_eq!(r.headers()["allow"], "POST");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "method_not_allowed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_party_enforces_min_cohort_and_min_new_itself() {
    let f = start().await;
    let below =
        |s: u16, v: &Value| assert_eq!((s, v["error"].as_str().unwrap()), (409, "below_threshold"));
    // Nothing stored, then 9 of a cohort of 10.
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_req(study(10, 10), 1),
        Some(TOKEN),
    )
    .await;
    below(s, &v);
    import(&f, 1, 9);
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_req(study(10, 10), 1),
        Some(TOKEN),
    )
    .await;
    below(s, &v);
    // Releases are numbered in order.
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_req(study(10, 10), 2),
        Some(TOKEN),
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "wrong_state"));
    // After a release of 12, three new contributions are not enough for
    // min_new = 10; the study's thresholds cannot be changed once pinned,
    // nor set below this party's floors.
    import(&f, 2, 6);
    let store = SqliteStore::open(&f.data.join(DB_FILE)).unwrap();
    let key = triad_wire::keyfile::load_or_create_signing_key(&f.data.join("sign.key")).unwrap();
    let values: Vec<i64> = (0..12).collect();
    let r = Release {
        version: RELEASE_VERSION,
        study_id: "s1".into(),
        release_no: 1,
        created_at: 1,
        count: 12,
        as_of_batch: 1,
        results: triad_stats::oracle(&values, &StatsSpec::default()).unwrap(),
        security: None,
    };
    store
        .put_release("s1", 1, 12, &sign_release(&key, 0, &r))
        .unwrap();
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_req(study(10, 10), 2),
        Some(TOKEN),
    )
    .await;
    below(s, &v);
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_req(study(10, 2), 2),
        Some(TOKEN),
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "study_changed"));
    let mut other = study(4, 10);
    other.id = "s2".into();
    let (s, v) = post(&f, "/internal/releases", release_req(other, 1), Some(TOKEN)).await;
    below(s, &v);
    // A retry of release 1 must ask for the same document.
    let (s, v) = post(
        &f,
        "/internal/releases",
        release_at(study(10, 10), 1, 2),
        Some(TOKEN),
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "wrong_state"));
    // The stored release is served as is.
    let got: triad_wire::SignedRelease = f
        .http
        .get(format!("{}/v1/studies/s1/release/latest", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, sign_release(&key, 0, &r));
}

/// The bypass found in review: a coordinator pinned `min_new = 2^64−1`,
/// `last_count + min_new` wrapped around in release builds, and the party
/// released after one new contribution. Every pinned parameter now has an
/// upper bound, and the rule is checked arithmetic.
#[tokio::test(flavor = "multi_thread")]
async fn parameters_that_would_wrap_the_release_rule_are_never_pinned() {
    let f = start().await;
    import(&f, 1, 12);
    for bad in [study(10, u64::MAX), study(u64::MAX, 10), {
        let mut s = study(10, 10);
        s.release_interval_secs = u64::MAX;
        s
    }] {
        let (s, v) = post(
            &f,
            "/internal/studies",
            serde_json::to_vec(&bad).unwrap(),
            Some(TOKEN),
        )
        .await;
        assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_study"));
        let (s, v) = post(&f, "/internal/releases", release_req(bad, 1), Some(TOKEN)).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_study"));
    }
    // Nothing was pinned: the study can still be announced properly.
    let (s, v) = post(
        &f,
        "/internal/studies",
        serde_json::to_vec(&study(10, 10)).unwrap(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["min_new"], 10);
}

/// A study is announced to every party at creation; one no batch has used
/// yet may be announced again with other parameters (a creation retried
/// after another party refused it), never once it holds contributions.
#[tokio::test(flavor = "multi_thread")]
async fn announced_studies_are_fixed_once_used() {
    let f = start().await;
    let announce = |s: StudyParams| {
        let f = &f;
        async move {
            post(
                f,
                "/internal/studies",
                serde_json::to_vec(&s).unwrap(),
                Some(TOKEN),
            )
            .await
        }
    };
    let (s, v) = announce(study(4, 10)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "below_threshold"));
    assert_eq!(announce(study(10, 10)).await.0, 200);
    assert_eq!(announce(study(20, 10)).await.0, 200);
    let (s, _) = post(
        &f,
        "/internal/studies",
        serde_json::to_vec(&study(20, 10)).unwrap(),
        None,
    )
    .await;
    assert_eq!(s, 401);
    import(&f, 1, 3);
    let (s, v) = announce(study(10, 10)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (409, "study_changed"));
    assert_eq!(announce(study(20, 10)).await.0, 200);
}

async fn get(f: &Fixture, path_and_query: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = f.http.get(format!("{}{path_and_query}", f.url));
    if let Some(t) = token {
        req = req.header(INTERNAL_TOKEN_HEADER, t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The audit route: coordinator's token only, bounded pages in a stable
/// order, ids and states only (never a share component), and bad queries
/// refused with a JSON 400.
#[tokio::test(flavor = "multi_thread")]
async fn holdings_are_authenticated_paged_and_hold_no_shares() {
    let f = start().await;
    import(&f, 1, 5);
    for token in [None, Some("wrong")] {
        let (s, v) = get(&f, "/internal/holdings", token).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap_or("")),
            (401, "unauthorized")
        );
    }
    let (s, all) = get(&f, "/internal/holdings", Some(TOKEN)).await;
    assert_eq!(s, 200, "{all}");
    let rows = all["holdings"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["batch_id", "state", "study_id", "submission_id"]);
        assert_eq!(r["state"], "committed");
    }
    // Two pages of two and one of one, in the same order as the whole.
    let mut paged = Vec::new();
    let mut q = "?limit=2".to_string();
    loop {
        let (s, page) = get(&f, &format!("/internal/holdings{q}"), Some(TOKEN)).await;
        assert_eq!(s, 200, "{page}");
        let page = page["holdings"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        q = format!(
            "?limit=2&after_study={}&after_submission={}",
            last["study_id"].as_str().unwrap(),
            last["submission_id"].as_str().unwrap()
        );
        assert!(page.len() <= 2);
        paged.extend(page);
    }
    assert_eq!(&paged, rows);
    for bad in [
        "?limit=0",
        "?limit=10001",
        "?limit=-1",
        "?limit=18446744073709551616",
        "?after_study=s1",
        "?after_submission=x",
        "?nope=1",
    ] {
        let (s, v) = get(&f, &format!("/internal/holdings{bad}"), Some(TOKEN)).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap_or("")),
            (400, "malformed_body"),
            "{bad}"
        );
    }
}

/// A study record of the fixture's network, signed by `signer`.
fn directory_record(
    f: &Fixture,
    s: &StudyParams,
    signer: &triad_directory::SigningKey,
) -> triad_directory::record::ServiceRecord {
    use triad_directory::record::{Kind, PartyEntry, RecordBody, Service, ServiceRecord};
    let n = &f.network;
    let now = triad_wire::unix_now();
    let ca = triad_wire::directory::ca_sha256(&n.ca_pem().unwrap()).unwrap();
    let spec = triad_wire::directory::RecordSpec {
        notary: n.notary.clone(),
        ca_sha256: ca,
        source_url: None,
        study: Some(triad_wire::directory::StudyTerms {
            title: s.name.clone(),
            data_spec: s.data_spec.clone(),
            source: s.source.clone(),
            min_cohort: s.min_cohort,
        }),
        poll: None,
    };
    let body = RecordBody {
        v: 1,
        kind: Kind::Study,
        name: s.id.clone(),
        id_salt: "42".repeat(16),
        seq: 1,
        issued_at: now,
        expires_at: now + 3600,
        coordinator: Service {
            url: n.coordinator.clone(),
            key: signer.public_key().to_hex(),
        },
        parties: std::array::from_fn(|i| PartyEntry {
            url: n.parties[i].url.clone(),
            mpc_addr: n.parties[i].mpc_addr.to_string(),
            key: n.parties[i].sign_key.clone(),
        }),
        notary_key: n.notary_key.clone(),
        spec: serde_json::to_value(spec).unwrap(),
    };
    ServiceRecord::sign(body, signer)
}

/// `POST /internal/directory/endorse`: a record of this network and of a
/// study pinned here is endorsed (the signature `ServiceRecord::endorse`
/// makes with this party's key); a record naming another key for this
/// party, one from another coordinator, one of an unpinned study, and a
/// caller without the token are refused with specific errors.
#[tokio::test(flavor = "multi_thread")]
async fn directory_records_are_endorsed_only_as_they_are() {
    let f = start().await;
    let path = "/internal/directory/endorse";
    let s = study(10, 10);
    let good = directory_record(&f, &s, &coordinator_key());
    let body = |r: &triad_directory::record::ServiceRecord| serde_json::to_vec(r).unwrap();
    // Not pinned yet: 409.
    let (st, v) = post(&f, path, body(&good), Some(TOKEN)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("endorsement_refused")),
        "{v}"
    );
    let (st, _) = post(
        &f,
        "/internal/studies",
        serde_json::to_vec(&s).unwrap(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 200);
    // Without the coordinator's token: 401, before anything is judged.
    let (st, _) = post(&f, path, body(&good), None).await;
    assert_eq!(st, 401);
    // The record as it is: endorsed by this party's release key.
    let (st, v) = post(&f, path, body(&good), Some(TOKEN)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["party"], 0);
    let key = load_or_create_keys(&f.data, 0).unwrap().sign;
    assert_eq!(
        v["signature"].as_str().unwrap(),
        triad_directory::publish::endorsement(&good, 0, &key)
    );
    // This party's entry with another key, or another URL: 409.
    let mut other = good.clone();
    other.body.parties[0].key = f.network.parties[1].sign_key.clone();
    let other = triad_directory::record::ServiceRecord::sign(other.body, &coordinator_key());
    let (st, v) = post(&f, path, body(&other), Some(TOKEN)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("endorsement_refused")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("party 0"), "{v}");
    let mut moved = good.clone();
    moved.body.parties[0].url = "https://evil.example".into();
    let moved = triad_directory::record::ServiceRecord::sign(moved.body, &coordinator_key());
    let (st, v) = post(&f, path, body(&moved), Some(TOKEN)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("endorsement_refused")),
        "{v}"
    );
    // Another coordinator (naming itself), or a tampered body: 403.
    let stranger = triad_directory::SigningKey::from_seed([10; 32]);
    let (st, v) = post(
        &f,
        path,
        body(&directory_record(&f, &s, &stranger)),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("endorsement_refused")),
        "{v}"
    );
    let mut tampered = good.clone();
    tampered.body.seq = 2;
    let (st, v) = post(&f, path, body(&tampered), Some(TOKEN)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("endorsement_refused")),
        "{v}"
    );
    // Not a record: 400.
    let (st, v) = post(&f, path, b"{}".to_vec(), Some(TOKEN)).await;
    assert_eq!(st, 400, "{v}");
}
