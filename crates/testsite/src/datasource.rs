//! The demo data source: an HTTPS server imitating an exchange's account
//! API. `GET /api/v3/account` with a valid `X-API-KEY` header answers
//! `{"uid": N, "balances": {"ETH": "1.2500", "BTC": "0.0100"}}` for the
//! key's account; a wrong or missing key gets 401. Accounts, balances and
//! API keys derive deterministically from a seed. A local CA and a leaf
//! certificate for `127.0.0.1` / `localhost` are generated with rcgen on
//! first start and persisted in the data directory. TLS 1.2 and 1.3 are
//! offered (provers ask for 1.2).
//!
//! Blocking I/O with one thread per connection: a demo, not a service.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File names inside the data directory.
pub const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key.pem";
const LEAF_CERT_FILE: &str = "leaf.pem";
const LEAF_KEY_FILE: &str = "leaf.key.pem";
pub const GROUND_TRUTH_FILE: &str = "ground_truth.json";
pub const DATASOURCE_INFO_FILE: &str = "datasource.json";

/// Largest request head accepted, and per-connection I/O timeout.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How many API keys `datasource.json` lists.
const LISTED_KEYS: usize = 5;

/// `Debug` redacts the seed (every API key derives from it).
#[derive(Clone)]
pub struct DatasourceConfig {
    pub data_dir: PathBuf,
    pub accounts: usize,
    pub seed: u64,
    /// Extra filler assets `T000`, `T001`, … in every response (not in the
    /// ground truth), to make responses of a realistic size (benchmark).
    pub padding_assets: usize,
}

/// One account of the ground truth. `Debug` shows the uid only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uid: u64,
    pub api_key: String,
    /// Asset → decimal string with 4 places.
    pub balances: std::collections::BTreeMap<String, String>,
}

/// The ground-truth file: every account's values.
/// `Debug` counts the accounts (keys, balances and seed redacted).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    pub accounts: Vec<Account>,
}

/// What `datasource.json` holds. `Debug` counts the API keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct DatasourceInfo {
    /// `https://127.0.0.1:<port>/api/v3/account`
    pub url: String,
    /// Path of the CA certificate (PEM) to trust.
    pub ca_cert: PathBuf,
    /// Path of the ground-truth JSON.
    pub ground_truth: PathBuf,
    /// A few valid API keys (those of the first accounts).
    pub api_keys: Vec<String>,
    /// What a study of this data source names as its source: the server
    /// name of `url` and the digest of the chain this server presents.
    pub source: triad_attestation::source::DataSource,
}

impl std::fmt::Debug for DatasourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasourceConfig")
            .field("data_dir", &self.data_dir)
            .field("accounts", &self.accounts)
            .field("seed", &"<redacted>")
            .field("padding_assets", &self.padding_assets)
            .finish()
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({}, redacted)", self.uid)
    }
}

impl std::fmt::Debug for GroundTruth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroundTruth({} accounts, redacted)", self.accounts.len())
    }
}

impl std::fmt::Debug for DatasourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasourceInfo")
            .field("url", &self.url)
            .field("ca_cert", &self.ca_cert)
            .field("ground_truth", &self.ground_truth)
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .field("source", &self.source)
            .finish()
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fixed4(units: u64) -> String {
    format!("{}.{:04}", units / 10_000, units % 10_000)
}

/// The deterministic accounts of `seed`: uid `100000 + i`, ETH in
/// [0, 100) and BTC in [0, 10) with 4 decimals, API key = hex of
/// SHA-256(seed, i) truncated to 16 bytes.
pub fn ground_truth(accounts: usize, seed: u64) -> GroundTruth {
    let accounts = (0..accounts as u64)
        .map(|i| {
            let r = splitmix(seed ^ splitmix(i));
            let mut h = Sha256::new();
            h.update(b"triad/demo-datasource/api-key");
            h.update(seed.to_be_bytes());
            h.update(i.to_be_bytes());
            let key = hex::encode(&h.finalize()[..16]);
            let mut balances = std::collections::BTreeMap::new();
            balances.insert("ETH".to_string(), fixed4(r % 1_000_000));
            balances.insert("BTC".to_string(), fixed4((r >> 32) % 100_000));
            Account {
                uid: 100_000 + i,
                api_key: key,
                balances,
            }
        })
        .collect();
    GroundTruth { seed, accounts }
}

/// Loads the CA and leaf from `dir`, or generates and persists them.
/// Returns (CA PEM, server config, SHA-256 of the chain as presented).
fn load_or_create_pki(dir: &Path) -> Result<(String, Arc<rustls::ServerConfig>, [u8; 32]), String> {
    let e = |x: rcgen::Error| x.to_string();
    let io = |p: &Path, x: std::io::Error| format!("{}: {x}", p.display());
    let leaf_path = dir.join(LEAF_CERT_FILE);
    if !leaf_path.exists() {
        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "triad demo data source CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let leaf_key = KeyPair::generate().map_err(e)?;
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).map_err(e)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "triad demo data source");
        let leaf = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(e)?;
        write_private(&dir.join(CA_KEY_FILE), ca_key.serialize_pem().as_bytes())?;
        write_private(
            &dir.join(LEAF_KEY_FILE),
            leaf_key.serialize_pem().as_bytes(),
        )?;
        write_private(&dir.join(CA_CERT_FILE), ca_cert.pem().as_bytes())?;
        // The leaf last: its presence means the set is complete.
        write_private(&leaf_path, leaf.pem().as_bytes())?;
    }
    let ca_pem = std::fs::read_to_string(dir.join(CA_CERT_FILE))
        .map_err(|x| io(&dir.join(CA_CERT_FILE), x))?;
    let leaf_der = CertificateDer::from_pem_file(&leaf_path).map_err(|x| x.to_string())?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|x| x.to_string())?;
    let key = PrivateKeyDer::from_pem_file(dir.join(LEAF_KEY_FILE)).map_err(|x| x.to_string())?;
    let chain_sha256 =
        triad_attestation::source::cert_chain_sha256([leaf_der.as_ref(), ca_der.as_ref()]);
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .map_err(|x| x.to_string())?
    .with_no_client_auth()
    .with_single_cert(vec![leaf_der, ca_der], key)
    .map_err(|x| x.to_string())?;
    Ok((ca_pem, Arc::new(cfg), chain_sha256))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    triad_files::write_private(path, bytes).map_err(|x| x.to_string())
}

/// A running data source.
pub struct DatasourceHandle {
    pub addr: SocketAddr,
    pub info: DatasourceInfo,
    pub ca_pem: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DatasourceHandle {
    /// Stops accepting and waits for the accept loop to end.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Blocks until the accept loop ends (forever, for the CLI).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the data source on `listener`: creates the data directory, the
/// PKI (first start), the ground truth and `datasource.json` (written last,
/// once ready).
pub fn launch_datasource(
    listener: TcpListener,
    config: DatasourceConfig,
) -> Result<DatasourceHandle, String> {
    if config.accounts == 0 {
        return Err("at least one account is needed".into());
    }
    let dir = &config.data_dir;
    triad_files::private_dir(dir).map_err(|x| x.to_string())?;
    triad_files::check_private(dir, 2).map_err(|x| x.to_string())?;
    let (ca_pem, tls, chain_sha256) = load_or_create_pki(dir)?;
    let truth = ground_truth(config.accounts, config.seed);
    let truth_path = dir.join(GROUND_TRUTH_FILE);
    let truth_json = serde_json::to_string_pretty(&truth).map_err(|x| x.to_string())?;
    // The ground truth holds every account's API key and values.
    write_private(&truth_path, truth_json.as_bytes())?;
    let addr = listener.local_addr().map_err(|x| x.to_string())?;
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let info = DatasourceInfo {
        url: format!("https://{host}:{}/api/v3/account", addr.port()),
        ca_cert: abs(dir.join(CA_CERT_FILE)),
        ground_truth: abs(truth_path),
        api_keys: truth
            .accounts
            .iter()
            .take(LISTED_KEYS)
            .map(|a| a.api_key.clone())
            .collect(),
        source: triad_attestation::source::DataSource {
            server_name: host.clone(),
            cert_chain_sha256: Some(hex::encode(chain_sha256)),
        },
    };
    let by_key: Arc<HashMap<String, String>> = Arc::new(
        truth
            .accounts
            .iter()
            .map(|a| {
                let mut balances = a.balances.clone();
                for i in 0..config.padding_assets {
                    balances.insert(format!("T{i:03}"), format!("{i}.0100"));
                }
                let body = serde_json::json!({"uid": a.uid, "balances": balances}).to_string();
                (a.api_key.clone(), body)
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        for sock in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                return;
            }
            let Ok(sock) = sock else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let (tls, by_key) = (tls.clone(), by_key.clone());
            std::thread::spawn(move || {
                let _ = serve_one(sock, tls, &by_key);
            });
        }
    });
    let info_path = dir.join(DATASOURCE_INFO_FILE);
    let info_json = serde_json::to_string_pretty(&info).map_err(|x| x.to_string())?;
    // It lists API keys.
    write_private(&info_path, info_json.as_bytes())?;
    Ok(DatasourceHandle {
        addr,
        info,
        ca_pem,
        stop,
        thread: Some(thread),
    })
}

fn serve_one(
    sock: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    by_key: &HashMap<String, String>,
) -> std::io::Result<()> {
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let conn = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if req.len() > MAX_REQUEST_HEAD {
            return respond(
                &mut tls,
                431,
                "Request Header Fields Too Large",
                r#"{"error":"request head too large"}"#,
            );
        }
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&req[..head_end]);
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/api/v3/account" {
        return respond(&mut tls, 404, "Not Found", r#"{"error":"not found"}"#);
    }
    if method != "GET" {
        return respond(
            &mut tls,
            405,
            "Method Not Allowed",
            r#"{"error":"use GET"}"#,
        );
    }
    let key = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("x-api-key"))
        .map(|(_, v)| v.trim().to_string());
    match key.and_then(|k| by_key.get(&k)) {
        Some(body) => respond(&mut tls, 200, "OK", body),
        None => respond(
            &mut tls,
            401,
            "Unauthorized",
            r#"{"error":"missing or invalid X-API-KEY"}"#,
        ),
    }
}

fn respond(
    tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
    status: u16,
    reason: &str,
    body: &str,
) -> std::io::Result<()> {
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(resp.as_bytes())?;
    tls.conn.send_close_notify();
    tls.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use triad_notary::prover::prover_client_config;

    fn get(addr: SocketAddr, ca_pem: &str, key: Option<&str>, path: &str) -> String {
        let client = prover_client_config(Some(ca_pem.as_bytes()), false).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        let conn =
            rustls::ClientConnection::new(client, ServerName::try_from("127.0.0.1").unwrap())
                .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let hdr = key
            .map(|k| format!("X-API-KEY: {k}\r\n"))
            .unwrap_or_default();
        write!(
            tls,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{hdr}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        tls.read_to_string(&mut out).unwrap();
        out
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("triad-ds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn ground_truth_is_deterministic() {
        let a = ground_truth(20, 7);
        assert_eq!(a, ground_truth(20, 7));
        assert_ne!(a, ground_truth(20, 8));
        assert_eq!(a.accounts[3].uid, 100_003);
        let keys: std::collections::HashSet<_> = a.accounts.iter().map(|x| &x.api_key).collect();
        assert_eq!(keys.len(), 20);
        for acc in &a.accounts {
            for v in acc.balances.values() {
                assert!(triad_attestation::parse_fixed_point(v, 4).is_ok(), "{v}");
                assert_eq!(v.split('.').nth(1).map(str::len), Some(4));
            }
        }
    }

    #[test]
    fn serves_accounts_and_refuses_bad_keys() {
        let dir = tmpdir("serve");
        let cfg = DatasourceConfig {
            data_dir: dir.clone(),
            accounts: 10,
            seed: 3,
            padding_assets: 0,
        };
        let ds = launch_datasource(TcpListener::bind("127.0.0.1:0").unwrap(), cfg.clone()).unwrap();
        let info: DatasourceInfo =
            serde_json::from_str(&std::fs::read_to_string(dir.join(DATASOURCE_INFO_FILE)).unwrap())
                .unwrap();
        assert_eq!(
            info.url,
            format!("https://127.0.0.1:{}/api/v3/account", ds.addr.port())
        );
        assert_eq!(info.api_keys.len(), LISTED_KEYS);
        let truth: GroundTruth =
            serde_json::from_str(&std::fs::read_to_string(&info.ground_truth).unwrap()).unwrap();
        assert_eq!(truth, ground_truth(10, 3));
        let ca = std::fs::read_to_string(&info.ca_cert).unwrap();

        let acc = &truth.accounts[2];
        let ok = get(ds.addr, &ca, Some(&acc.api_key), "/api/v3/account");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        let body = triad_notary::http::response_body(ok.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["uid"], acc.uid);
        assert_eq!(v["balances"]["ETH"], acc.balances["ETH"].as_str());
        assert_eq!(v["balances"]["BTC"], acc.balances["BTC"].as_str());

        for key in [None, Some("wrong"), Some("")] {
            let r = get(ds.addr, &ca, key, "/api/v3/account");
            assert!(r.starts_with("HTTP/1.1 401"), "{key:?}: {r}");
        }
        let r = get(ds.addr, &ca, Some(&acc.api_key), "/other");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        ds.shutdown();

        // Restart: same CA (persisted), same ground truth.
        let ds = launch_datasource(TcpListener::bind("127.0.0.1:0").unwrap(), cfg).unwrap();
        assert_eq!(ds.ca_pem, ca);
        let ok = get(ds.addr, &ca, Some(&acc.api_key), "/api/v3/account");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        ds.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
