//! The demo end to end on 127.0.0.1:0, in process: the data source, the
//! notary service as `triad notary` runs it (key + notary.json in its data
//! dir, the data source's CA trusted), and the prover over the notary's HTTP
//! API. The attestation verifies, commits to the ground-truth value, and the
//! API key never reaches the notary's data directory.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use triad_crypto::{commitment, fr_from_i128, nullifier};
use triad_notary::datasource::{launch_datasource, DatasourceConfig, GroundTruth};
use triad_notary::service::{prove_with_notary, run_notary_blocking, write_attestation_files};
use triad_notary::*;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triad-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

#[test]
fn datasource_notary_and_prover_over_the_api() {
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
    std::thread::spawn(move || {
        let r = run_notary_blocking(
            &nd,
            Some(&ca),
            "127.0.0.1:0",
            "127.0.0.1:0",
            allowed,
            |info| tx.send(Ok(info.clone())).unwrap(),
        );
        if let Err(e) = r {
            let _ = tx.send(Err(e));
        }
    });
    let info = rx.recv().unwrap().unwrap();
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
    let (att, opening, key) =
        prove_with_notary(&url, &target, Some(&ca_pem), "eth-holdings", &spec).unwrap();
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

    // Refusals reach the prover as clear errors.
    let wrong = ProveTarget::from_url(&ds.info.url, vec![("X-API-KEY".into(), "not-a-key".into())])
        .unwrap();
    let e = prove_with_notary(&url, &wrong, Some(&ca_pem), "eth-holdings", &spec).unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let untrusted = prove_with_notary(&url, &target, None, "eth-holdings", &spec).unwrap_err();
    assert!(matches!(untrusted, ProveError::Session(_)), "{untrusted}");
    let missing = DataSpec {
        field: "balances.DOGE".into(),
        ..spec.clone()
    };
    let e = prove_with_notary(&url, &target, Some(&ca_pem), "eth-holdings", &missing).unwrap_err();
    assert!(matches!(e, ProveError::Spec(_)), "{e}");

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
#[test]
fn api_refusals_are_clear() {
    use triad_notary::service::{launch_notary, ApiClient, ApiLimits, NotaryServiceConfig};
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
    let rt = tokio::runtime::Runtime::new().unwrap();
    let roots = std::sync::Arc::new(root_store(Some(ds.ca_pem.as_bytes()), false).unwrap());
    let svc = rt
        .block_on(async {
            launch_notary(
                tokio::net::TcpListener::bind("127.0.0.1:0").await?,
                tokio::net::TcpListener::bind("127.0.0.1:0").await?,
                NotaryServiceConfig {
                    key: NotarySigningKey::from_seed([3; 32]),
                    roots,
                    ttl_secs: 600,
                    proxy: ProxyConfig {
                        allowed_targets: vec![AllowedTarget::addr(ds.addr)],
                        ..ProxyConfig::default()
                    },
                    api: ApiLimits {
                        session_wait: std::time::Duration::from_millis(300),
                        ..ApiLimits::default()
                    },
                },
            )
        })
        .unwrap();
    let api = ApiClient::new(&svc.url()).unwrap();
    let truth = triad_notary::datasource::ground_truth(2, 5);
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

    let sid = "00000000000000000000000000000001";
    let (_, mut d) = run_session(svc.proxy_addr, sid, &target, client.clone()).unwrap();
    d.key[0] ^= 1;
    let e = api.attest(sid, &d, &request).unwrap_err();
    assert!(e.starts_with("HTTP 422") && e.contains("AEAD tag"), "{e}");
    // The session was consumed by the failed attempt.
    d.key[0] ^= 1;
    let e = api.attest(sid, &d, &request).unwrap_err();
    assert!(e.starts_with("HTTP 404"), "{e}");

    let sid = "00000000000000000000000000000002";
    let (_, d) = run_session(svc.proxy_addr, sid, &target, client.clone()).unwrap();
    let lie = AttestationRequest {
        expected_value: value + 1,
        ..request.clone()
    };
    let e = api.attest(sid, &d, &lie).unwrap_err();
    assert!(e.starts_with("HTTP 422") && e.contains("claimed"), "{e}");

    let sid = "00000000000000000000000000000003";
    let (_, d) = run_session(svc.proxy_addr, sid, &target, client).unwrap();
    let att = api.attest(sid, &d, &request).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify_attestation(&att, &[svc.public_key], now).unwrap();
    assert!(api
        .attest(sid, &d, &request)
        .unwrap_err()
        .starts_with("HTTP 404"));

    rt.block_on(async { svc.shutdown() });
    ds.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// The proxy relays only to its allow-list, and the API says so: a target
/// off the list and the notary's own API (even listed) are refused with
/// 403, and the prover reports the refusal instead of a broken session.
#[test]
fn refused_targets_are_reported_over_the_api() {
    use triad_notary::service::{launch_notary, ApiClient, ApiLimits, NotaryServiceConfig};
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
    let rt = tokio::runtime::Runtime::new().unwrap();
    let roots = std::sync::Arc::new(root_store(Some(ds.ca_pem.as_bytes()), false).unwrap());
    let svc = rt
        .block_on(async {
            let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let px = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            // The operator (wrongly) lists the notary's own API and proxy too.
            let own = [api.local_addr()?, px.local_addr()?].map(AllowedTarget::addr);
            launch_notary(
                api,
                px,
                NotaryServiceConfig {
                    key: NotarySigningKey::from_seed([7; 32]),
                    roots,
                    ttl_secs: 600,
                    proxy: ProxyConfig {
                        allowed_targets: [vec![AllowedTarget::addr(ds.addr)], own.to_vec()]
                            .concat(),
                        ..ProxyConfig::default()
                    },
                    api: ApiLimits {
                        session_wait: std::time::Duration::from_millis(500),
                        ..ApiLimits::default()
                    },
                },
            )
        })
        .unwrap();
    let truth = triad_notary::datasource::ground_truth(2, 6);
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
        prove_with_notary(&svc.url(), &target, Some(ca_pem.as_bytes()), "eth", &spec)
    };

    // The listed data source relays and attests.
    prove_at(ds.addr.port()).unwrap();

    // Another local port: not on the list.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    match prove_at(other_port) {
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
        match prove_at(port) {
            Err(ProveError::TargetRefused(m)) => {
                assert!(m.contains("where the notary itself listens"), "{m}")
            }
            r => panic!("{r:?}"),
        }
    }

    // The raw API: a broken session of a refused target is a 403 with the
    // refusal, whatever is disclosed.
    let api = ApiClient::new(&svc.url()).unwrap();
    let sid = "000000000000000000000000000000aa";
    let target = ProveTarget::from_url(
        &format!("https://127.0.0.1:{other_port}/api/v3/account"),
        headers.clone(),
    )
    .unwrap();
    let client = prover_client_config(Some(ds.ca_pem.as_bytes()), false).unwrap();
    assert!(matches!(
        run_session(svc.proxy_addr, sid, &target, client),
        Err(ProveError::Session(_))
    ));
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
    let e = api.attest(sid, &disclosure, &request).unwrap_err();
    assert!(
        e.starts_with("HTTP 403: the notary does not relay to this target: "),
        "{e}"
    );
    drop(other);
    rt.block_on(async { svc.shutdown() });
    ds.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}
