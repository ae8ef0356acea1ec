//! In-process fake parties and coordinator over real HTTPS.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use triad_attestation::DataSpec;
use triad_stats::StatsSpec;
use triad_wire::messages::{StudyInfo, StudyParams};
use triad_wire::pki::ServiceCa;
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::{ApiError, NetworkConfig, PartyEndpoint, PartySigningKey, SignedRelease};

use super::*;

type Slot = Arc<Mutex<Option<SignedRelease>>>;

struct Fake {
    dir: tempfile::TempDir,
    ca: ServiceCa,
    net: NetworkConfig,
    keys: [PartySigningKey; 3],
    slots: [Slot; 3],
    studies: Arc<Mutex<Vec<StudyInfo>>>,
    client: reqwest::Client,
    /// A PostgreSQL cache instead of the SQLite file.
    database: Option<String>,
}

async fn serve_tls(ca: &ServiceCa, dir: &std::path::Path, name: &str, router: Router) -> String {
    let leaf = ca.issue(dir, name).unwrap();
    let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    tokio::spawn(triad_wire::https::serve(l, tls, router));
    url
}

async fn party_release(
    State(slot): State<Slot>,
    Path(_id): Path<String>,
) -> Result<Json<SignedRelease>, ApiError> {
    slot.lock()
        .unwrap()
        .clone()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoRelease, "none yet"))
}

fn study(id: &str) -> StudyInfo {
    StudyInfo {
        params: StudyParams {
            id: id.into(),
            name: format!("Study {id}"),
            source: triad_attestation::DataSource::named("127.0.0.1"),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            min_cohort: 3,
            min_new: 1,
            release_interval_secs: 1,
            stats: StatsSpec {
                quantiles: vec![0.9],
                histogram_bounds: vec![0, 100],
            },
        },
        created_at: 1,
        contributions: 0,
        releases: 0,
        directory_id: None,
        progress: None,
    }
}

fn release(study_id: &str, no: u64, n: i64) -> Release {
    let values: Vec<i64> = (0..n).map(|v| v * 37 - 11).collect();
    let spec = StatsSpec {
        quantiles: vec![0.9],
        histogram_bounds: vec![0, 100],
    };
    Release {
        version: RELEASE_VERSION,
        study_id: study_id.into(),
        release_no: no,
        created_at: 1_700_000_000 + no,
        count: n as u64,
        as_of_batch: no,
        results: triad_stats::oracle(&values, &spec).unwrap(),
        security: None,
    }
}

impl Fake {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        let ca = ServiceCa::create(&ca_path).unwrap();
        let keys = [11u8, 12, 13].map(|s| PartySigningKey::from_seed([s; 32]));
        let slots: [Slot; 3] = Default::default();
        let mut urls = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let r = Router::new()
                .route("/v1/studies/{id}/release/latest", get(party_release))
                .with_state(slot.clone());
            urls.push(serve_tls(&ca, dir.path(), &format!("party{i}"), r).await);
        }
        let studies = Arc::new(Mutex::new(vec![study("eth")]));
        let st = studies.clone();
        let coord = Router::new().route(
            "/v1/studies",
            get(move || {
                let st = st.clone();
                async move { Json(st.lock().unwrap().clone()) }
            }),
        );
        let coordinator = serve_tls(&ca, dir.path(), "coordinator", coord).await;
        let parties = [0, 1, 2].map(|i| PartyEndpoint {
            url: urls[i].clone(),
            mpc_addr: "127.0.0.1:1".parse().unwrap(),
            mpc_cert: String::new(),
            sign_key: keys[i].public_key().to_hex(),
        });
        let net = NetworkConfig {
            mpc_latency_us: 0,
            ca_cert: ca_path.clone(),
            coordinator,
            coordinator_key: None,
            parties,
            notary: "http://127.0.0.1:1".into(),
            notary_key: "00".repeat(32),
            api: "https://127.0.0.1:1".into(),
            datasource: None,
        };
        let client =
            triad_wire::https::client(&std::fs::read(&ca_path).unwrap(), Duration::from_secs(10))
                .unwrap();
        Self {
            dir,
            ca,
            net,
            keys,
            slots,
            studies,
            client,
            database: None,
        }
    }

    fn publish(&self, r: &Release) {
        for i in 0..3 {
            *self.slots[i].lock().unwrap() = Some(sign_release(&self.keys[i], i as u8, r));
        }
    }

    fn set(&self, i: usize, c: Option<SignedRelease>) {
        *self.slots[i].lock().unwrap() = c;
    }

    async fn launch(&self) -> ApiHandle {
        let leaf = self.ca.issue(self.dir.path(), "api").unwrap();
        let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
        let mut cfg = ApiConfig::new(self.net.clone(), self.dir.path().join("api-data"), tls);
        cfg.database = self.database.clone();
        // Tests drive polls themselves (the loop's first poll may race
        // with theirs; polls are serialised, so that is harmless).
        cfg.poll_interval = Duration::from_secs(3600);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        launch(cfg, l).await.unwrap()
    }

    async fn get(&self, api: &ApiHandle, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", api.url()))
            .send()
            .await
            .unwrap()
    }

    async fn latest(&self, api: &ApiHandle) -> Result<VerifiedRelease, ApiError> {
        triad_wire::https::read_json(self.get(api, "/v1/studies/eth/release/latest").await).await
    }
}

#[tokio::test]
async fn serves_only_verified_releases_and_keeps_the_last_good_one() {
    let f = Fake::new().await;
    let api = f.launch().await;
    api.poll_now().await;
    assert_eq!(f.latest(&api).await.unwrap_err().code, ErrorCode::NoRelease);

    let r1 = release("eth", 1, 10);
    f.publish(&r1);
    let rep = api.poll_now().await;
    assert_eq!(rep.accepted, vec![("eth".to_string(), 1)]);
    let got = f.latest(&api).await.unwrap();
    assert_eq!(got.release, r1);
    assert_eq!(got.signatures.len(), 3);

    let r2 = release("eth", 2, 12);
    let good: Vec<SignedRelease> = (0..3)
        .map(|i| sign_release(&f.keys[i], i as u8, &r2))
        .collect();

    // Each bad variant: refused, reported, release 1 still served.
    let mut tampered = good[1].clone();
    tampered.release_json = tampered
        .release_json
        .replace("\"count\":12", "\"count\":13");
    let wrong_key = sign_release(&PartySigningKey::from_seed([99; 32]), 2, &r2);
    let disagreeing = sign_release(&f.keys[2], 2, &release("eth", 2, 13));
    let other_study = release("btc", 2, 12);
    let cases: Vec<(&str, [Option<SignedRelease>; 3])> = vec![
        (
            "tampered",
            [Some(good[0].clone()), Some(tampered), Some(good[2].clone())],
        ),
        (
            "wrong key",
            [
                Some(good[0].clone()),
                Some(good[1].clone()),
                Some(wrong_key),
            ],
        ),
        (
            "disagree",
            [
                Some(good[0].clone()),
                Some(good[1].clone()),
                Some(disagreeing),
            ],
        ),
        (
            "missing party",
            [None, Some(good[1].clone()), Some(good[2].clone())],
        ),
        (
            "copies out of order",
            [
                Some(good[1].clone()),
                Some(good[0].clone()),
                Some(good[2].clone()),
            ],
        ),
        (
            "another study's release",
            [0, 1, 2].map(|i| Some(sign_release(&f.keys[i], i as u8, &other_study))),
        ),
    ];
    for (name, copies) in cases {
        for (i, c) in copies.into_iter().enumerate() {
            f.set(i, c);
        }
        let rep = api.poll_now().await;
        assert!(
            rep.accepted.is_empty(),
            "{name}: accepted {:?}",
            rep.accepted
        );
        assert!(
            rep.problems.iter().any(|(s, _)| s == "eth"),
            "{name}: no problem reported: {rep:?}"
        );
        assert_eq!(f.latest(&api).await.unwrap().release, r1, "{name}");
        let hist: Vec<VerifiedRelease> =
            triad_wire::https::read_json(f.get(&api, "/v1/studies/eth/releases").await)
                .await
                .unwrap();
        assert_eq!(hist.len(), 1, "{name}");
    }

    // A conflicting copy of an already accepted number is refused too.
    f.publish(&release("eth", 1, 11));
    let rep = api.poll_now().await;
    assert!(rep.accepted.is_empty());
    assert_eq!(f.latest(&api).await.unwrap().release, r1);

    f.publish(&r2);
    let rep = api.poll_now().await;
    assert_eq!(rep.accepted, vec![("eth".to_string(), 2)]);
    assert_eq!(f.latest(&api).await.unwrap().release, r2);
    let hist: Vec<VerifiedRelease> =
        triad_wire::https::read_json(f.get(&api, "/v1/studies/eth/releases").await)
            .await
            .unwrap();
    let nos: Vec<u64> = hist.iter().map(|v| v.release.release_no).collect();
    assert_eq!(nos, vec![2, 1]);

    let list: Vec<StudySummary> = triad_wire::https::read_json(f.get(&api, "/v1/studies").await)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, "eth");
    assert_eq!(list[0].latest_release_no, Some(2));
    assert_eq!(list[0].latest_count, Some(12));
    assert_eq!(list[0].releases, 2);
    assert_eq!(list[0].data_spec.scale, 4);
    api.shutdown();
}

#[tokio::test]
async fn cache_survives_a_restart() {
    cache_survives_a_restart_in(None).await;
}

#[tokio::test]
async fn cache_survives_a_restart_on_postgres() {
    let db = triad_pg::TestDatabase::new("api_cache");
    cache_survives_a_restart_in(Some(db.url.clone())).await;
}

async fn cache_survives_a_restart_in(database: Option<String>) {
    let mut f = Fake::new().await;
    f.database = database;
    let api = f.launch().await;
    let r1 = release("eth", 1, 5);
    f.publish(&r1);
    api.poll_now().await;
    let r3 = release("eth", 3, 7);
    f.publish(&r3);
    api.poll_now().await;
    api.shutdown();

    // Parties forget everything and the coordinator is empty: whatever is
    // served now comes from the cache's store.
    for i in 0..3 {
        f.set(i, None);
    }
    f.studies.lock().unwrap().clear();
    let api = f.launch().await;
    api.poll_now().await;
    assert_eq!(f.latest(&api).await.unwrap().release, r3);
    let hist: Vec<VerifiedRelease> =
        triad_wire::https::read_json(f.get(&api, "/v1/studies/eth/releases").await)
            .await
            .unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1].release, r1);
    let list: Vec<StudySummary> = triad_wire::https::read_json(f.get(&api, "/v1/studies").await)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    api.shutdown();

    // A cache whose party keys no longer match is not served.
    let mut net = f.net.clone();
    net.parties[0].sign_key = PartySigningKey::from_seed([42; 32]).public_key().to_hex();
    let leaf = f.ca.issue(f.dir.path(), "api2").unwrap();
    let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
    let mut cfg = ApiConfig::new(net, f.dir.path().join("api-data"), tls);
    cfg.database = f.database.clone();
    cfg.poll_interval = Duration::from_secs(3600);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = launch(cfg, l).await.unwrap();
    assert_eq!(f.latest(&api).await.unwrap_err().code, ErrorCode::NoRelease);
    api.shutdown();
}

/// Unknown paths, wrong methods and path parameters that do not decode
/// answer a specific 4xx in the JSON error shape.
#[tokio::test]
async fn every_error_answer_has_the_json_shape() {
    let f = Fake::new().await;
    let api = f.launch().await;
    let e = triad_wire::https::read_json::<serde_json::Value>(f.get(&api, "/nope").await)
        .await
        .unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (404, ErrorCode::NotFound));
    let e = triad_wire::https::read_json::<serde_json::Value>(
        f.get(&api, "/v1/studies/%FF/releases").await,
    )
    .await
    .unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (400, ErrorCode::BadRequest));
    let r = f
        .client
        .post(format!("{}/v1/studies", api.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    let e = triad_wire::https::read_json::<serde_json::Value>(r)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code),
        (405, ErrorCode::MethodNotAllowed)
    );
    api.shutdown();
}

#[tokio::test]
async fn unknown_study_pages_and_health() {
    let f = Fake::new().await;
    let api = f.launch().await;
    api.poll_now().await;

    let e = triad_wire::https::read_json::<VerifiedRelease>(
        f.get(&api, "/v1/studies/nope/release/latest").await,
    )
    .await
    .unwrap_err();
    assert_eq!(e.status.as_u16(), 404);
    assert_eq!(e.code, ErrorCode::UnknownStudy);
    let e = triad_wire::https::read_json::<Vec<VerifiedRelease>>(
        f.get(&api, "/v1/studies/nope/releases").await,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownStudy);
    let e = f.latest(&api).await.unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (404, ErrorCode::NoRelease));
    let empty: Vec<VerifiedRelease> =
        triad_wire::https::read_json(f.get(&api, "/v1/studies/eth/releases").await)
            .await
            .unwrap();
    assert!(empty.is_empty());

    let page = f.get(&api, "/").await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/v1/studies"));
    // The SVG namespace is a name, not a fetch; nothing else may point
    // outside the machine.
    let rest = html.replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !rest.contains("http://") && !rest.contains("https://"),
        "external assets"
    );

    let doc: serde_json::Value =
        serde_json::from_str(&f.get(&api, "/openapi.json").await.text().await.unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    for p in [
        "/v1/studies",
        "/v1/studies/{id}/release/latest",
        "/v1/studies/{id}/releases",
        "/v1/polls",
        "/v1/polls/{id}/tally",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p}");
    }
    // Every $ref resolves.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let ptr = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(ptr).is_some(), "dangling {r}");
    }

    let h: Health = triad_wire::https::read_json(f.get(&api, "/healthz").await)
        .await
        .unwrap();
    assert_eq!(h.status, "ok");
    assert!(h.last_poll > 0);
    assert_eq!(h.studies, 1);
    api.shutdown();
}
