//! `triad bench attest`: the attestation path over loopback sockets. A
//! rustls HTTPS site (local CA, ~4 KB JSON response), the recording proxy,
//! and a TLS 1.2 prover sending a ~1 KB request; each iteration is one full
//! session through the proxy, [`attest_session`] and [`verify_attestation`].
//!
//! Not included (not built yet): the notary's HTTP API hop and the demo data
//! source process; see docs/notary.md.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;

use crate::attestation::{verify_attestation, NotarySigningKey};
use crate::notarize::{attest_session, AttestationRequest};
use crate::prover::{prove, prover_client_config, ProveTarget};
use crate::proxy::{launch_proxy, ProxyConfig, SessionOutcome};
use crate::spec::DataSpec;
use crate::transcript::{root_store, ServerKeyDisclosure};

/// Result of [`run_attest_bench`].
#[derive(Clone, Debug)]
pub struct AttestBenchReport {
    /// Wall time of each attestation (session + attest + verify).
    pub times: Vec<Duration>,
    /// Every attestation verified and committed to the expected value.
    pub correct: bool,
    pub request_bytes: usize,
    pub response_bytes: usize,
}

impl AttestBenchReport {
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }
}

fn site() -> Result<(String, Arc<rustls::ServerConfig>), String> {
    let e = |x: rcgen::Error| x.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "triad bench CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .map_err(e)?
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .map_err(e)?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .map_err(|x| x.to_string())?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone(), ca_cert.der().clone()],
        PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .map_err(|x| x.to_string())?;
    Ok((ca_cert.pem(), Arc::new(cfg)))
}

/// ~4 KB account JSON: `uid`, `balances.ETH` and padding assets.
fn response_body() -> String {
    let mut assets = String::from(r#""ETH": "1.2500""#);
    for i in 0..190 {
        assets.push_str(&format!(r#", "T{i:03}": "{i}.0100""#));
    }
    format!(r#"{{"uid": 123, "balances": {{{assets}}}}}"#)
}

fn serve(listener: std::net::TcpListener, cfg: Arc<rustls::ServerConfig>, n: usize) {
    let body = response_body();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..n {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tls.write_all(resp.as_bytes());
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
}

/// Runs `n` attestations; errors are setup failures, not verification ones
/// (those make `correct` false).
pub fn run_attest_bench(n: usize) -> Result<AttestBenchReport, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|x| x.to_string())?;
    let (ca_pem, server_cfg) = site()?;
    let target = std::net::TcpListener::bind("127.0.0.1:0").map_err(|x| x.to_string())?;
    let port = target.local_addr().map_err(|x| x.to_string())?.port();
    let server = std::thread::spawn(move || serve(target, server_cfg, n));
    let proxy = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        launch_proxy(l, ProxyConfig::default())
    });
    let proxy = proxy.map_err(|x| x.to_string())?;
    let roots = Arc::new(root_store(Some(ca_pem.as_bytes()), true).map_err(|x| x.to_string())?);
    let client = prover_client_config(Some(ca_pem.as_bytes()), false).map_err(|x| x.to_string())?;
    let target = ProveTarget {
        host: "127.0.0.1".into(),
        port,
        path: "/api/v3/account".into(),
        headers: vec![
            ("X-API-KEY".into(), "bench-key".into()),
            ("X-Padding".into(), "p".repeat(900)),
        ],
    };
    let request_bytes = target.request_bytes().len();
    let key = NotarySigningKey::generate().map_err(|x| x.to_string())?;
    let pk = [key.public_key()];
    let spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };
    let mut times = Vec::with_capacity(n);
    let mut correct = true;
    let mut response_bytes = 0;
    for _ in 0..n {
        let start = Instant::now();
        let proxy_ref = &proxy;
        let (key_ref, roots_ref) = (&key, &roots);
        let mut transcript_len = 0;
        let notarize = |sid: &str, d: &ServerKeyDisclosure, req: &AttestationRequest| {
            let mut outcome = None;
            while start.elapsed() < Duration::from_secs(10) {
                outcome = proxy_ref.take_session(sid);
                if outcome.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let Some(SessionOutcome::Complete(session)) = outcome else {
                return Err("session did not complete".to_string());
            };
            transcript_len = session.transcript.server_to_client.len();
            attest_session(key_ref, roots_ref.clone(), &session, d, req, 3600)
                .map_err(|e| e.to_string())
        };
        let ok = prove(proxy.addr, &target, client.clone(), "bench", &spec, notarize)
            .ok()
            .and_then(|(att, opening)| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
                verify_attestation(&att, &pk, now).ok()?;
                (opening.value == 12500).then_some(())
            })
            .is_some();
        times.push(start.elapsed());
        response_bytes = response_bytes.max(transcript_len);
        correct &= ok;
    }
    proxy.shutdown();
    let _ = server.join();
    Ok(AttestBenchReport {
        times,
        correct: correct && n > 0,
        request_bytes,
        response_bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_runs_and_is_correct() {
        let r = super::run_attest_bench(3).unwrap();
        assert!(r.correct);
        assert_eq!(r.times.len(), 3);
        assert!(r.request_bytes >= 1000);
        assert!(r.response_bytes >= 4000, "{}", r.response_bytes);
    }
}
