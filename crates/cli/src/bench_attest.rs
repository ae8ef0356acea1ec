//! `triad bench attest`: the whole attestation path over loopback sockets,
//! in process: the demo data source (~4 KB account JSON), the notary service
//! (recording proxy + HTTPS API), and the prover sending a ~1 KB request.
//! Each timed iteration is one proof (TLS 1.2 session through the proxy,
//! disclosure over the notary's HTTPS API, the notary's full check and
//! signature, the prover's check of the attestation) followed by
//! [`verify_attestation`]. Lives in the CLI so that no library links the
//! demo data source.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triad_attestation::{parse_fixed_point, verify_attestation, DataSpec, NotarySigningKey};
use triad_notary::prover::{new_session_id, prover_client_config, read_session, run_session};
use triad_notary::service::{launch_notary, ApiLimits, NotaryServiceConfig};
use triad_notary::{root_store, AllowedTarget, NotaryClient, ProveTarget, ProxyConfig};
use triad_testsite::{ground_truth, launch_datasource, DatasourceConfig};
use triad_wire::https::{server_config, ServeLimits};
use triad_wire::pki::ServiceCa;

/// Filler assets per response: makes the JSON body about 4 KB.
const PADDING_ASSETS: usize = 240;

/// Result of [`run_attest_bench`].
#[derive(Clone, Debug)]
pub struct AttestBenchReport {
    /// Wall time of each attestation (prove via the API + verify).
    pub times: Vec<Duration>,
    /// Every attestation verified and committed to the expected value.
    pub correct: bool,
    /// The HTTP request inside TLS.
    pub request_bytes: usize,
    /// The HTTP response (plaintext, head + body).
    pub response_bytes: usize,
}

impl AttestBenchReport {
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }
}

/// Runs `n` attestations; errors are setup failures, not verification ones
/// (those make `correct` false).
pub fn run_attest_bench(n: usize) -> Result<AttestBenchReport, String> {
    let dir = std::env::temp_dir().join(format!(
        "triad-bench-attest-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let r = bench_in(&dir, n);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn bench_in(dir: &std::path::Path, n: usize) -> Result<AttestBenchReport, String> {
    let s = |x: std::io::Error| x.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(s)?;
    let ds = launch_datasource(
        std::net::TcpListener::bind("127.0.0.1:0").map_err(s)?,
        DatasourceConfig {
            data_dir: dir.to_path_buf(),
            accounts: 4,
            seed: 1,
            padding_assets: PADDING_ASSETS,
        },
    )?;
    let key = NotarySigningKey::generate().map_err(|x| x.to_string())?;
    let pk = [key.public_key()];
    let roots = root_store(Some(ds.ca_pem.as_bytes()), true).map_err(|x| x.to_string())?;
    // The API's certificate, from a service CA as a devnet issues it.
    let ca = ServiceCa::create(&dir.join("service-ca.pem")).map_err(|x| x.to_string())?;
    let leaf = ca.issue(dir, "notary").map_err(|x| x.to_string())?;
    let tls = server_config(&leaf.cert, &leaf.key).map_err(|x| x.to_string())?;
    let service_ca = std::fs::read(dir.join("service-ca.pem")).map_err(s)?;
    let notary = rt.block_on(async {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let px = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        launch_notary(
            api,
            px,
            NotaryServiceConfig {
                key,
                roots: Arc::new(roots),
                ttl_secs: 3600,
                // The notary relays to the data source only.
                proxy: ProxyConfig {
                    allowed_targets: vec![AllowedTarget::addr(ds.addr)],
                    ..ProxyConfig::default()
                },
                api: ApiLimits::default(),
                tls,
                serve: ServeLimits::DEFAULT,
            },
        )
    });
    let notary = notary.map_err(s)?;
    let api = NotaryClient::new(&notary.url(), &service_ca)?;
    let client =
        prover_client_config(Some(ds.ca_pem.as_bytes()), false).map_err(|x| x.to_string())?;
    let truth = ground_truth(1, 1);
    let account = &truth.accounts[0];
    let expected = parse_fixed_point(&account.balances["ETH"], 4).map_err(|x| x.to_string())?;
    let target = ProveTarget::from_url(
        &ds.info.url,
        vec![
            ("X-API-KEY".into(), account.api_key.clone()),
            ("X-Padding".into(), "p".repeat(900)),
        ],
    )
    .map_err(|x| x.to_string())?;
    let spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };
    // Warm-up session (not timed, never claimed): response size.
    let sid = new_session_id().map_err(|x| x.to_string())?;
    let (resp, _) =
        run_session(notary.proxy_addr, &sid, &target, client.clone()).map_err(|x| x.to_string())?;

    let mut times = Vec::with_capacity(n);
    let mut correct = true;
    for _ in 0..n {
        let start = Instant::now();
        let ok = prove_once(&rt, &api, notary.proxy_addr, &target, client.clone(), &spec)
            .and_then(|(att, opening)| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
                verify_attestation(&att, &pk, now).ok()?;
                (opening.value == expected).then_some(())
            })
            .is_some();
        times.push(start.elapsed());
        correct &= ok;
    }
    rt.block_on(async { notary.shutdown() });
    ds.shutdown();
    Ok(AttestBenchReport {
        times,
        correct: correct && n > 0,
        request_bytes: target.request_bytes().len(),
        response_bytes: resp.len(),
    })
}

/// One proof: the session (blocking, on this thread), the disclosure over
/// the API, the prover's check of the attestation.
fn prove_once(
    rt: &tokio::runtime::Runtime,
    api: &NotaryClient,
    proxy: std::net::SocketAddr,
    target: &ProveTarget,
    client: Arc<rustls::ClientConfig>,
    spec: &DataSpec,
) -> Option<(triad_attestation::Attestation, triad_notary::Opening)> {
    let sid = new_session_id().ok()?;
    let reading = read_session(proxy, &sid, target, client, "bench", spec).ok()?;
    let att = rt
        .block_on(api.attest(&sid, &reading.disclosure, &reading.request))
        .ok()?;
    reading.accept(att).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_runs_and_is_correct() {
        let r = super::run_attest_bench(3).unwrap();
        assert!(r.correct);
        assert_eq!(r.times.len(), 3);
        assert!(r.request_bytes >= 1000, "{}", r.request_bytes);
        assert!(r.response_bytes >= 4000, "{}", r.response_bytes);
    }
}
