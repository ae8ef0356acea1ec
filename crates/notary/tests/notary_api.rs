//! The demo end to end on 127.0.0.1:0, in process: the data source, the
//! notary service as `triad notary` runs it (key + notary.json in its data
//! dir, the data source's CA trusted, its API on HTTPS with a certificate
//! from a service CA), and the prover over the notary's API. The
//! attestation verifies, commits to the ground-truth value, and the API key
//! never reaches the notary's data directory. Then the API's refusals and
//! errors, each a specific status and code in the services' JSON error shape.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use triad_wire::ErrorCode;

use triad_attestation::{
    parse_fixed_point, verify_attestation, Attestation, DataSpec, NotaryPublicKey, NotarySigningKey,
};
use triad_crypto::{commitment, fr_from_i128, nullifier};
use triad_notary::api::AttestApiRequest;
use triad_notary::service::{
    launch_notary, run_notary_blocking, write_attestation_files, ApiLimits, NotaryOptions,
    NotaryService, NotaryServiceConfig,
};
use triad_notary::*;
use triad_testsite::{launch_datasource, DatasourceConfig, GroundTruth};
use triad_wire::https::{server_config, ErrorBody, ServeLimits};
use triad_wire::pki::{LeafFiles, ServiceCa};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triad-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A service CA in `dir` and the notary's HTTPS leaf; returns the leaf's
/// files and the CA's PEM (what the prover trusts for the API).
fn api_cert(dir: &Path) -> (LeafFiles, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = ServiceCa::create(&dir.join("ca.pem")).unwrap();
    let leaf = ca.issue(dir, "notary").unwrap();
    (leaf, std::fs::read(dir.join("ca.pem")).unwrap())
}

/// A notary on 127.0.0.1:0 inside the current runtime.
async fn notary_on(
    tls_dir: &Path,
    roots: rustls::RootCertStore,
    key: NotarySigningKey,
    allowed: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr) -> Vec<AllowedTarget>,
    session_wait: Duration,
) -> (NotaryService, NotaryClient) {
    let (leaf, ca_pem) = api_cert(tls_dir);
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let px = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_targets = allowed(api.local_addr().unwrap(), px.local_addr().unwrap());
    let svc = launch_notary(
        api,
        px,
        NotaryServiceConfig {
            key,
            roots: Arc::new(roots),
            ttl_secs: 600,
            proxy: ProxyConfig {
                allowed_targets,
                ..ProxyConfig::default()
            },
            api: ApiLimits {
                session_wait,
                ..ApiLimits::default()
            },
            tls: server_config(&leaf.cert, &leaf.key).unwrap(),
            serve: ServeLimits::DEFAULT,
        },
    )
    .unwrap();
    let client = NotaryClient::new(&svc.url(), &ca_pem).unwrap();
    (svc, client)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasource_notary_and_prover_over_the_api() {
    let root = tmpdir("e2e");
    let (ds_dir, notary_dir, out_dir) = (root.join("ds"), root.join("notary"), root.join("out"));
    let ds = launch_datasource(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        DatasourceConfig {
            data_dir: ds_dir.clone(),
            accounts: 8,
            seed: 42,
            padding_assets: 0,
        },
    )
    .unwrap();
    let truth: GroundTruth =
        serde_json::from_str(&std::fs::read_to_string(&ds.info.ground_truth).unwrap()).unwrap();

    let (tx, rx) = mpsc::channel();
    let (nd, ca) = (notary_dir.clone(), ds.info.ca_cert.clone());
    // As the devnet runs it: the data source is the one allowed target.
    let allowed = vec![AllowedTarget::addr(ds.addr)];
    let (leaf, api_ca) = api_cert(&root.join("tls"));
    std::thread::spawn(move || {
        let r = run_notary_blocking(
            NotaryOptions {
                data_dir: &nd,
                trust_ca: Some(&ca),
                api_listen: "127.0.0.1:0",
                proxy_listen: "127.0.0.1:0",
                allowed_targets: allowed,
                tls_cert: &leaf.cert,
                tls_key: &leaf.key,
                serve: ServeLimits::DEFAULT,
            },
            |info| tx.send(Ok(info.clone())).unwrap(),
        );
        if let Err(e) = r {
            let _ = tx.send(Err(e));
        }
    });
    let info = rx.recv().unwrap().unwrap();
    assert!(info
        .url
        .as_deref()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(notary_dir.join("notary.json")).unwrap())
            .unwrap();
    let url = on_disk["url"].as_str().unwrap().to_string();
    assert_eq!(Some(url.clone()), info.url);
    assert_eq!(on_disk["proxy"], info.proxy.as_str());
    let pk = NotaryPublicKey::from_hex(on_disk["public_key"].as_str().unwrap()).unwrap();

    let account = &truth.accounts[3];
    let api_key = account.api_key.clone();
    let target = ProveTarget::from_url(
        &ds.info.url,
        vec![parse_header(&format!("X-API-KEY: {api_key}")).unwrap()],
    )
    .unwrap();
    let spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };
    let ca_pem = std::fs::read(&ds.info.ca_cert).unwrap();
    let notary = NotaryClient::new(&url, &api_ca).unwrap();
    let (att, opening, key) =
        prove_with_notary(&notary, &target, Some(&ca_pem), "eth-holdings", &spec)
            .await
            .unwrap();
    assert_eq!(key, pk);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = verify_attestation(&att, &[pk], now).unwrap();
    let expected = parse_fixed_point(&account.balances["ETH"], 4).unwrap();
    assert_eq!(opening.value, expected);
    assert_eq!(
        v.claims.commitment,
        commitment(fr_from_i128(expected.into()), opening.blinder_fr().unwrap())
    );
    assert_eq!(
        v.claims.nullifier,
        nullifier(account.uid.to_string().as_bytes(), "eth-holdings")
    );
    assert_eq!(v.claims.server_name, "127.0.0.1");

    write_attestation_files(&out_dir, &att, &opening).unwrap();
    let back =
        Attestation::from_json(&std::fs::read_to_string(out_dir.join("attestation.json")).unwrap())
            .unwrap();
    assert_eq!(back, att);
    let o: Opening =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("opening.json")).unwrap())
            .unwrap();
    assert_eq!(o, opening);

    // Refusals reach the prover as clear errors: a bad data source API key
    // (the site's 401), a site certificate the prover does not trust, a
    // field the response lacks.
    let wrong = ProveTarget::from_url(&ds.info.url, vec![("X-API-KEY".into(), "not-a-key".into())])
        .unwrap();
    let e = prove_with_notary(&notary, &wrong, Some(&ca_pem), "eth-holdings", &spec)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProveError::Http(_)) && e.to_string().contains("401"),
        "{e}"
    );
    let untrusted = prove_with_notary(&notary, &target, None, "eth-holdings", &spec)
        .await
        .unwrap_err();
    assert!(matches!(untrusted, ProveError::Session(_)), "{untrusted}");
    let missing = DataSpec {
        field: "balances.DOGE".into(),
        ..spec.clone()
    };
    let e = prove_with_notary(&notary, &target, Some(&ca_pem), "eth-holdings", &missing)
        .await
        .unwrap_err();
    assert!(matches!(e, ProveError::Spec(_)), "{e}");
    // The API only speaks TLS under its CA: another CA's client is refused.
    let other_ca = api_cert(&root.join("other-ca")).1;
    let stranger = NotaryClient::new(&url, &other_ca).unwrap();
    let e = prove_with_notary(&stranger, &target, Some(&ca_pem), "eth-holdings", &spec)
        .await
        .unwrap_err();
    assert!(matches!(e, ProveError::Setup(_)), "{e}");

    // Nothing the notary wrote holds the API key.
    let notary_files = files(&notary_dir);
    assert!(notary_files.len() >= 2, "{notary_files:?}");
    for p in notary_files {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes
                .windows(api_key.len())
                .any(|w| w == api_key.as_bytes()),
            "{} holds the API key",
            p.display()
        );
    }
    assert!(!att.to_json().contains(&api_key));
    ds.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// Over the API: a wrong disclosed key is refused with the checker's message,
/// a lying prover (wrong expected value) is refused, and a session id is
/// single use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refusals_are_clear() {
    let root = tmpdir("refusals");
    let ds = launch_datasource(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        DatasourceConfig {
            data_dir: root.join("ds"),
            accounts: 2,
            seed: 5,
            padding_assets: 0,
        },
    )
    .unwrap();
    let roots = root_store(Some(ds.ca_pem.as_bytes()), false).unwrap();
    let ds_addr = ds.addr;
    let (svc, api) = notary_on(
        &root.join("tls"),
        roots,
        NotarySigningKey::from_seed([3; 32]),
        |_, _| vec![AllowedTarget::addr(ds_addr)],
        Duration::from_millis(300),
    )
    .await;
    let truth = triad_testsite::ground_truth(2, 5);
    let target = ProveTarget::from_url(
        &ds.info.url,
        vec![("X-API-KEY".into(), truth.accounts[1].api_key.clone())],
    )
    .unwrap();
    let client = prover_client_config(Some(ds.ca_pem.as_bytes()), false).unwrap();
    let value = parse_fixed_point(&truth.accounts[1].balances["BTC"], 4).unwrap();
    let request = AttestationRequest {
        study_id: "btc".into(),
        data_spec: DataSpec {
            field: "balances.BTC".into(),
            scale: 4,
            account_field: "uid".into(),
        },
        blinder: triad_crypto::Fr::from(11u64),
        expected_value: value,
    };
    let session = |sid: &'static str| {
        let (proxy, target, client) = (svc.proxy_addr, target.clone(), client.clone());
        tokio::task::spawn_blocking(move || run_session(proxy, sid, &target, client).unwrap())
    };

    let sid = "00000000000000000000000000000001";
    let (_, mut d) = session(sid).await.unwrap();
    d.key[0] ^= 1;
    let e = api.attest(sid, &d, &request).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code),
        (422, ErrorCode::CheckFailed),
        "{e}"
    );
    assert!(e.message.contains("AEAD tag"), "{e}");
    // The session was consumed by the failed attempt.
    d.key[0] ^= 1;
    let e = api.attest(sid, &d, &request).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code),
        (404, ErrorCode::UnknownSession),
        "{e}"
    );

    let sid = "00000000000000000000000000000002";
    let (_, d) = session(sid).await.unwrap();
    let lie = AttestationRequest {
        expected_value: value + 1,
        ..request.clone()
    };
    let e = api.attest(sid, &d, &lie).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code),
        (422, ErrorCode::CheckFailed),
        "{e}"
    );
    assert!(e.message.contains("claimed"), "{e}");

    let sid = "00000000000000000000000000000003";
    let (_, d) = session(sid).await.unwrap();
    let att = api.attest(sid, &d, &request).await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify_attestation(&att, &[svc.public_key], now).unwrap();
    let e = api.attest(sid, &d, &request).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownSession, "{e}");

    svc.shutdown();
    ds.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// The proxy relays only to its allow-list, and the API says so: a target
/// off the list and the notary's own API (even listed) are refused with
/// 403, and the prover reports the refusal instead of a broken session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_targets_are_reported_over_the_api() {
    let root = tmpdir("refused-targets");
    let ds = launch_datasource(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        DatasourceConfig {
            data_dir: root.join("ds"),
            accounts: 2,
            seed: 6,
            padding_assets: 0,
        },
    )
    .unwrap();
    let roots = root_store(Some(ds.ca_pem.as_bytes()), false).unwrap();
    let ds_addr = ds.addr;
    // The operator (wrongly) lists the notary's own API and proxy too.
    let (svc, api) = notary_on(
        &root.join("tls"),
        roots,
        NotarySigningKey::from_seed([7; 32]),
        |api, px| [ds_addr, api, px].map(AllowedTarget::addr).to_vec(),
        Duration::from_millis(500),
    )
    .await;
    let truth = triad_testsite::ground_truth(2, 6);
    let headers = vec![("X-API-KEY".into(), truth.accounts[0].api_key.clone())];
    let spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };
    let ca_pem = ds.ca_pem.clone();
    let prove_at = |port: u16| {
        let url = format!("https://127.0.0.1:{port}/api/v3/account");
        let target = ProveTarget::from_url(&url, headers.clone()).unwrap();
        let (api, ca_pem, spec) = (api.clone(), ca_pem.clone(), spec.clone());
        async move { prove_with_notary(&api, &target, Some(ca_pem.as_bytes()), "eth", &spec).await }
    };

    // The listed data source relays and attests.
    prove_at(ds.addr.port()).await.unwrap();

    // Another local port: not on the list.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    match prove_at(other_port).await {
        Err(ProveError::TargetRefused(m)) => {
            assert!(m.contains("does not relay"), "{m}");
            assert!(
                m.contains(&format!(
                    "127.0.0.1:{other_port} is not on the notary's allow-list"
                )),
                "{m}"
            );
        }
        r => panic!("{r:?}"),
    }
    // The notary's own API and proxy, whatever the list says.
    for port in [svc.api_addr.port(), svc.proxy_addr.port()] {
        match prove_at(port).await {
            Err(ProveError::TargetRefused(m)) => {
                assert!(m.contains("where the notary itself listens"), "{m}")
            }
            r => panic!("{r:?}"),
        }
    }

    // The raw API: a broken session of a refused target is a 403
    // `target_refused` with the refusal, whatever is disclosed.
    let sid = "000000000000000000000000000000aa";
    let target = ProveTarget::from_url(
        &format!("https://127.0.0.1:{other_port}/api/v3/account"),
        headers.clone(),
    )
    .unwrap();
    let client = prover_client_config(Some(ds.ca_pem.as_bytes()), false).unwrap();
    let proxy = svc.proxy_addr;
    let broken = tokio::task::spawn_blocking(move || run_session(proxy, sid, &target, client))
        .await
        .unwrap();
    assert!(matches!(broken, Err(ProveError::Session(_))));
    let request = AttestationRequest {
        study_id: "eth".into(),
        data_spec: spec.clone(),
        blinder: triad_crypto::Fr::from(1u64),
        expected_value: 1,
    };
    let disclosure = ServerKeyDisclosure {
        key: vec![1; 16],
        iv: vec![2; 4],
    };
    let e = api.attest(sid, &disclosure, &request).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code),
        (403, ErrorCode::TargetRefused),
        "{e}"
    );
    assert!(
        e.message
            .starts_with("the notary does not relay to this target: "),
        "{e}"
    );
    drop(other);
    svc.shutdown();
    ds.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// Every error of the API is a specific status with the services' JSON
/// error body `{"error": code, "message": text}`: malformed and oversize
/// bodies, a malformed field, an unknown session, an unknown route, a wrong
/// method. Plain HTTP gets no answer: the API speaks only TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_specific_json() {
    let root = tmpdir("api-errors");
    let (svc, api) = notary_on(
        &root.join("tls"),
        root_store(None, true).unwrap(),
        NotarySigningKey::from_seed([1; 32]),
        |_, _| Vec::new(),
        Duration::from_millis(50),
    )
    .await;
    let info = api.info().await.unwrap();
    assert_eq!(info.public_key, svc.public_key.to_hex());
    assert_eq!(info.proxy, svc.proxy_addr.to_string());
    assert_eq!(info.url, None);

    let ca_pem = std::fs::read(root.join("tls/ca.pem")).unwrap();
    let http = triad_wire::https::client(&ca_pem, Duration::from_secs(10)).unwrap();
    let url = svc.url();
    let call = |method: reqwest::Method, path: &str, body: Vec<u8>| {
        let req = http.request(method, format!("{url}{path}")).body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: ErrorBody = serde_json::from_slice(&r.bytes().await.unwrap())
                .expect("an error answer in the JSON shape");
            (status, body)
        }
    };
    let post = |body: Vec<u8>| call(reqwest::Method::POST, "/v1/attest", body);

    let (st, b) = post(vec![b' '; 100 * 1024]).await;
    assert_eq!((st, b.error.as_str()), (413, "payload_too_large"), "{b:?}");
    let (st, b) = post(b"{oops".to_vec()).await;
    assert_eq!((st, b.error.as_str()), (400, "malformed_body"), "{b:?}");
    assert!(b.message.contains("malformed JSON body"), "{b:?}");
    let (st, b) = post(br#"{"session_id": "x", "extra": 1}"#.to_vec()).await;
    assert_eq!((st, b.error.as_str()), (400, "malformed_body"), "{b:?}");

    let good = AttestApiRequest {
        session_id: "0".repeat(32),
        server_key: "00".repeat(16),
        server_iv: "00".repeat(4),
        blinder: "0".repeat(64),
        study_id: "s".into(),
        data_spec: DataSpec {
            field: "a".into(),
            scale: 0,
            account_field: "uid".into(),
        },
        expected_value: 0,
    };
    let body = serde_json::to_vec(&good).unwrap();
    let (st, b) = post(body.clone()).await;
    assert_eq!((st, b.error.as_str()), (404, "unknown_session"), "{b:?}");
    let bad_sid = AttestApiRequest {
        session_id: "XYZ".into(),
        ..good.clone()
    };
    let (st, b) = post(serde_json::to_vec(&bad_sid).unwrap()).await;
    assert_eq!((st, b.error.as_str()), (400, "malformed_body"), "{b:?}");
    assert!(b.message.contains("session_id"), "{b:?}");
    let bad_blinder = AttestApiRequest {
        blinder: "é".repeat(32),
        ..good
    };
    let (st, b) = post(serde_json::to_vec(&bad_blinder).unwrap()).await;
    assert_eq!((st, b.error.as_str()), (400, "malformed_body"), "{b:?}");
    assert!(b.message.contains("blinder"), "{b:?}");

    let (st, b) = call(reqwest::Method::DELETE, "/v1/info", vec![]).await;
    assert_eq!((st, b.error.as_str()), (405, "method_not_allowed"), "{b:?}");
    let (st, b) = call(reqwest::Method::GET, "/v1/attest", vec![]).await;
    assert_eq!((st, b.error.as_str()), (405, "method_not_allowed"), "{b:?}");
    let (st, b) = call(reqwest::Method::GET, "/nope", vec![]).await;
    assert_eq!((st, b.error.as_str()), (404, "not_found"), "{b:?}");

    // Plain HTTP on the API's port: no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(svc.api_addr).await.unwrap();
    s.write_all(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(!out.starts_with(b"HTTP/1.1 200"), "{out:?}");

    assert!(NotaryClient::new("http://127.0.0.1:1", &ca_pem).is_err());
    svc.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}
