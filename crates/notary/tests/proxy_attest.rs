//! Full path over real sockets on 127.0.0.1:0: a rustls TLS 1.2 client talks
//! through the recording proxy to a rustls HTTPS server; the recorded session
//! and the client's disclosed server write key yield an attestation that
//! `verify_attestation` accepts; the API key never appears in what the
//! notary holds.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use triad_attestation::{verify_attestation, DataSpec, NotarySigningKey};
use triad_crypto::{commitment, fr_from_i128, nullifier, Fr};
use triad_notary::*;

const API_KEY: &str = "k3y-that-must-never-reach-the-notary";
const SID: &str = "fedcba9876543210fedcba9876543210";

struct Site {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn site() -> Site {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "demo CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone(), ca_cert.der().clone()],
        PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    Site {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// One-request HTTPS server answering the account JSON if the key matches.
fn serve_once(listener: std::net::TcpListener, cfg: Arc<rustls::ServerConfig>) {
    let (sock, _) = listener.accept().unwrap();
    let conn = rustls::ServerConnection::new(cfg).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0);
        req.extend_from_slice(&buf[..n]);
    }
    let authorised = String::from_utf8_lossy(&req).contains(&format!("X-API-KEY: {API_KEY}"));
    let body = r#"{"uid": 4242, "balances": {"ETH": "3.1400", "BTC": "0.0100"}}"#;
    let resp = if authorised {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    } else {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string()
    };
    tls.write_all(resp.as_bytes()).unwrap();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// The prover's side (the library's `run_session`): TLS 1.2 through the
/// proxy, returns the plaintext response and the rx (server write) key and
/// IV only.
fn prove(proxy: std::net::SocketAddr, port: u16, ca_pem: &str) -> (Vec<u8>, ServerKeyDisclosure) {
    let target = ProveTarget {
        host: "127.0.0.1".into(),
        port,
        path: "/api/v3/account".into(),
        headers: vec![("X-API-KEY".into(), API_KEY.into())],
    };
    let client = prover_client_config(Some(ca_pem.as_bytes()), false).unwrap();
    run_session(proxy, SID, &target, client).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_over_real_sockets_through_the_proxy() {
    let site = site();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let server_cfg = site.server.clone();
    let server = std::thread::spawn(move || serve_once(target, server_cfg));

    let proxy = launch_proxy(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ProxyConfig {
            allowed_targets: vec![AllowedTarget::addr(([127, 0, 0, 1], port).into())],
            ..ProxyConfig::default()
        },
    )
    .unwrap();
    let (addr, ca) = (proxy.addr, site.ca_pem.clone());
    let (resp, disclosure) = tokio::task::spawn_blocking(move || prove(addr, port, &ca))
        .await
        .unwrap();
    server.join().unwrap();
    assert!(resp.starts_with(b"HTTP/1.1 200 OK"));

    let mut outcome = None;
    for _ in 0..200 {
        outcome = proxy.take_session(SID);
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let SessionOutcome::Complete(session) = outcome.expect("session finished") else {
        panic!("session did not complete");
    };

    // The API key is in the request, encrypted under the client write key,
    // which is never disclosed: it appears nowhere the notary can read.
    let key = API_KEY.as_bytes();
    let t = &session.transcript;
    for hay in [
        &t.client_to_server,
        &t.server_to_client,
        &disclosure.key,
        &disclosure.iv,
    ] {
        assert!(!hay.windows(key.len()).any(|w| w == key));
    }
    assert!(!format!("{session:?} {disclosure:?}").contains(API_KEY));

    let notary_key = NotarySigningKey::from_seed([9; 32]);
    let roots = Arc::new(root_store(Some(site.ca_pem.as_bytes()), true).unwrap());
    let request = AttestationRequest {
        study_id: "eth".into(),
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        },
        blinder: Fr::from(5u64),
        expected_value: 31400,
    };
    let att = attest_session(
        &notary_key,
        roots.clone(),
        &session,
        &disclosure,
        &request,
        3600,
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = verify_attestation(&att, &[notary_key.public_key()], now).unwrap();
    assert_eq!(
        v.claims.commitment,
        commitment(fr_from_i128(31400), Fr::from(5u64))
    );
    assert_eq!(v.claims.nullifier, nullifier(b"4242", "eth"));
    assert!(!att.to_json().contains(API_KEY));

    // A foreign trust store refuses the same session.
    let foreign = Arc::new(root_store(Some(self::site().ca_pem.as_bytes()), true).unwrap());
    assert!(matches!(
        attest_session(&notary_key, foreign, &session, &disclosure, &request, 3600),
        Err(NotaryError::Transcript(
            TranscriptError::UntrustedCertificate(_)
        ))
    ));
    proxy.shutdown();
}
