//! `triad probe --devnet <dir>`: sends hostile requests to every service of
//! a running devnet — malformed, oversized, replayed, unauthenticated and
//! out-of-order ones, plus slow and silent clients — and checks that each
//! is refused cleanly: a specific 4xx in the service's JSON error shape, no
//! 5xx, no service restarted, and no public counter changed.
//!
//! What "refused cleanly" means depends on who refuses:
//! - a handler (every case the service's own code can see) answers the
//!   expected status with `{"error": code, "message": text}`; the notary's
//!   API with its documented `{"error": text}`;
//! - the HTTP layer (hyper) refuses a head it cannot parse or hold (a
//!   request line with raw non-ASCII bytes, a head above its buffer, a URI
//!   above `http`'s length limit) before any service code runs: the status
//!   it writes, or a closed connection, is accepted without a JSON body;
//! - the notary's raw TCP proxy closes a connection with a bad preamble or
//!   a refused target without relaying a byte;
//! - a slow or silent client is disconnected (or answered 408) within
//!   `--slow-secs`.
//!
//! The probe creates one study of its own (through the operator token) and
//! one admitted submission (a real attestation through the notary, for the
//! replay cases); the state is snapshotted after that set-up, so any change
//! afterwards is the probe's requests' doing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use triad_notary::datasource::DatasourceInfo;
use triad_notary::{Attestation, DataSource, DataSpec, ProveTarget};
use triad_wire::messages::{
    CreateStudy, StudyInfo, SubmitRequest, SubmitResponse, ADMIN_TOKEN_HEADER,
    INTERNAL_TOKEN_HEADER,
};
use triad_wire::NetworkConfig;

use crate::devnet::DevnetInfo;

#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The directory of a running `triad devnet` (devnet.json, secrets/).
    #[arg(long)]
    pub devnet: PathBuf,
    /// Print only the summary as one JSON line (with every case in it).
    #[arg(long)]
    pub json: bool,
    /// How long a slow or silent client may stay connected before the
    /// service must have closed the connection (or answered 408).
    #[arg(long, default_value_t = 35)]
    pub slow_secs: u64,
}

/// Largest body of the coordinator's routes (`Limits::default().max_body`).
const COORDINATOR_MAX_BODY: usize = 64 * 1024;
/// Largest body of a party's `POST /v1/shares`.
const PARTY_SHARES_MAX_BODY: usize = 16 * 1024;
/// Largest body of a party's internal routes.
const PARTY_INTERNAL_MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest body of the notary's `POST /v1/attest`.
const NOTARY_MAX_BODY: usize = 64 * 1024;
/// Largest request head the notary reads.
const NOTARY_MAX_HEAD: usize = 8 * 1024;
/// Above hyper's default read buffer (8 KiB + 100 × 4 KiB): the whole head
/// can never be buffered.
const HUGE_HEADER: usize = 512 * 1024;
/// Above the `http` crate's longest URI (65,534 bytes).
const HUGE_URI: usize = 70_000;
/// Below it: the service's own handler sees the path.
const LONG_URI: usize = 60_000;
/// A 32-hex id nobody issued.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef";

/// Which service a case talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Coordinator,
    Party(usize),
    Api,
    Notary,
    Proxy,
}

impl Service {
    fn name(self) -> String {
        match self {
            Self::Coordinator => "coordinator".into(),
            Self::Party(i) => format!("party{i}"),
            Self::Api => "api".into(),
            Self::Notary => "notary".into(),
            Self::Proxy => "notary-proxy".into(),
        }
    }
}

/// What a clean refusal looks like for one case.
#[derive(Clone, Debug)]
enum Expect {
    /// A handler's answer: one of `status`, in the service's JSON error
    /// shape, with one of `codes` as `error` (any code if empty; the
    /// notary's `error` is a sentence, not a code).
    Json {
        status: &'static [u16],
        codes: &'static [&'static str],
    },
    /// Refused by the HTTP layer before any handler: one of these statuses
    /// (no JSON body required) or the connection closed.
    Protocol(&'static [u16]),
    /// The connection closed without a byte back, or (slow clients) one of
    /// these statuses.
    Closed(&'static [u16]),
}

fn json_err(status: &'static [u16], codes: &'static [&'static str]) -> Expect {
    Expect::Json { status, codes }
}

impl Expect {
    fn describe(&self) -> String {
        let list = |s: &[u16]| {
            s.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("|")
        };
        match self {
            Self::Json { status, codes } if codes.is_empty() => format!("{} json", list(status)),
            Self::Json { status, codes } => format!("{} {}", list(status), codes.join("|")),
            Self::Protocol(s) => format!("{}|close", list(s)),
            Self::Closed(s) if s.is_empty() => "close".into(),
            Self::Closed(s) => format!("close|{}", list(s)),
        }
    }
}

/// What came back.
#[derive(Clone, Debug)]
enum Got {
    Answer {
        status: u16,
        body: Vec<u8>,
    },
    /// The peer closed (or reset) the connection after sending `bytes`
    /// bytes that were not an HTTP answer.
    Closed {
        bytes: usize,
        after: Duration,
    },
    /// Still open when the probe stopped waiting.
    Open {
        after: Duration,
    },
    /// The probe could not complete the exchange.
    Error(String),
}

/// One case as reported.
#[derive(Clone, Debug, Serialize)]
struct CaseReport {
    name: String,
    service: String,
    request: String,
    expected: String,
    got: String,
    /// Whether the answer had the service's JSON error shape (`null`: no
    /// answer body to judge).
    json_error: Option<bool>,
    code: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// `{"error": non-empty string, "message": non-empty string}` for the
/// HTTPS services; the notary's API answers `{"error": non-empty string}`.
fn error_shape(service: Service, body: &[u8]) -> (bool, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (false, None);
    };
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let code = text("error");
    let ok = match service {
        Service::Notary => code.is_some(),
        _ => code.is_some() && text("message").is_some(),
    };
    (ok, code)
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(80)]);
    s.replace(['\n', '\r'], " ")
}

/// Judges one case: (json shape, code, ok, problem).
fn judge(
    service: Service,
    expect: &Expect,
    got: &Got,
) -> (Option<bool>, Option<String>, bool, Option<String>) {
    match got {
        Got::Answer { status, body } => {
            let (shape, code) = if body.is_empty() {
                (None, None)
            } else {
                let (ok, code) = error_shape(service, body);
                (Some(ok), code)
            };
            if *status >= 500 {
                return (
                    shape,
                    code,
                    false,
                    Some(format!("server error {status}: {}", snippet(body))),
                );
            }
            let problem = match expect {
                Expect::Json {
                    status: want,
                    codes,
                } => {
                    if !want.contains(status) {
                        Some(format!(
                            "status {status}, expected {}: {}",
                            expect.describe(),
                            snippet(body)
                        ))
                    } else if shape != Some(true) {
                        Some(format!(
                            "{status} without the JSON error shape: {:?}",
                            snippet(body)
                        ))
                    } else if service != Service::Notary
                        && !codes.is_empty()
                        && !code.as_deref().is_some_and(|c| codes.contains(&c))
                    {
                        Some(format!(
                            "error code {:?}, expected {}",
                            code.as_deref().unwrap_or(""),
                            codes.join("|")
                        ))
                    } else {
                        None
                    }
                }
                Expect::Protocol(want) | Expect::Closed(want) => (!want.contains(status))
                    .then(|| format!("status {status}, expected {}", expect.describe())),
            };
            (shape, code, problem.is_none(), problem)
        }
        Got::Closed { bytes, .. } => {
            let problem = match expect {
                Expect::Json { .. } => Some("connection closed without an answer".to_string()),
                Expect::Protocol(_) => None,
                Expect::Closed(_) if *bytes > 0 => {
                    Some(format!("{bytes} bytes came back (relayed?)"))
                }
                Expect::Closed(_) => None,
            };
            (None, None, problem.is_none(), problem)
        }
        Got::Open { after } => (
            None,
            None,
            false,
            Some(format!("connection still open after {:.0?}", after)),
        ),
        Got::Error(e) => (None, None, false, Some(format!("no answer: {e}"))),
    }
}

fn describe_got(got: &Got) -> String {
    match got {
        Got::Answer { status, .. } => status.to_string(),
        Got::Closed { bytes: 0, after } => format!("closed ({:.1?})", after),
        Got::Closed { bytes, after } => format!("closed after {bytes} B ({:.1?})", after),
        Got::Open { after } => format!("open ({:.0?})", after),
        Got::Error(_) => "error".into(),
    }
}

/// An HTTP request for reqwest.
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

fn get(path: impl Into<String>) -> Req {
    Req {
        method: "GET",
        path: path.into(),
        headers: Vec::new(),
        body: None,
    }
}

fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Req {
    Req {
        method: "POST",
        path: path.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.into()),
    }
}

fn method(m: &'static str, path: impl Into<String>) -> Req {
    Req {
        method: m,
        path: path.into(),
        headers: Vec::new(),
        body: None,
    }
}

impl Req {
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn describe(&self) -> String {
        let mut path = self.path.clone();
        if path.len() > 60 {
            path = format!("{}…({} B)", &path[..40], self.path.len());
        }
        match &self.body {
            Some(b) if b.len() > 1024 => format!("{} {path} [{} B body]", self.method, b.len()),
            _ => format!("{} {path}", self.method),
        }
    }
}

/// A JSON value as a body.
fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON serializes")
}

/// `n` bytes of JSON (a long string value).
fn json_of_len(field: &str, n: usize) -> Vec<u8> {
    let mut b = format!("{{\"{field}\": \"").into_bytes();
    b.resize(n.saturating_sub(2), b'a');
    b.extend_from_slice(b"\"}");
    b
}

/// `host:port` of `scheme://host:port`.
fn addr_of(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .split_once("://")
        .map(|x| x.1)
        .unwrap_or(url)
        .trim_end_matches('/');
    rest.parse()
        .with_context(|| format!("{url:?} is not scheme://ip:port"))
}

/// How a raw read ended.
async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Parses what a raw exchange gave back.
fn raw_got(bytes: Vec<u8>, closed: bool, started: Instant) -> Got {
    let after = started.elapsed();
    if bytes.starts_with(b"HTTP/1.") {
        let status = std::str::from_utf8(&bytes[..bytes.len().min(12)])
            .ok()
            .and_then(|s| s.get(9..12))
            .and_then(|s| s.parse().ok());
        if let Some(status) = status {
            let body = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| bytes[i + 4..].to_vec())
                .unwrap_or_default();
            return Got::Answer { status, body };
        }
    }
    if closed {
        Got::Closed {
            bytes: bytes.len(),
            after,
        }
    } else {
        Got::Open { after }
    }
}

/// Writes `parts` (pausing `gap` between them; a write the peer refuses
/// ends the writing), then reads until the peer closes or `wait` passes.
async fn raw_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    parts: &[Vec<u8>],
    gap: Duration,
    wait: Duration,
) -> (Vec<u8>, bool) {
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            tokio::time::sleep(gap).await;
        }
        if s.write_all(p).await.is_err() || s.flush().await.is_err() {
            break;
        }
    }
    read_until_closed(s, wait).await
}

/// A service's socket, spoken to below HTTP.
#[derive(Clone)]
struct RawTarget {
    addr: SocketAddr,
    /// For the HTTPS services; `None`: plain TCP.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl RawTarget {
    /// Connects (and shakes hands), sends `parts` (see [`raw_exchange`]),
    /// reads until the peer closes or `wait` passes.
    async fn exchange(&self, parts: Vec<Vec<u8>>, gap: Duration, wait: Duration) -> Got {
        let started = Instant::now();
        let tcp = match TcpStream::connect(self.addr).await {
            Ok(t) => t,
            Err(e) => return Got::Error(format!("connect {}: {e}", self.addr)),
        };
        let (bytes, closed) = match &self.tls {
            None => {
                let mut tcp = tcp;
                raw_exchange(&mut tcp, &parts, gap, wait).await
            }
            Some(tls) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                let mut s = match tls.connect(name, tcp).await {
                    Ok(s) => s,
                    Err(e) => return Got::Error(format!("TLS handshake: {e}")),
                };
                raw_exchange(&mut s, &parts, gap, wait).await
            }
        };
        raw_got(bytes, closed, started)
    }

    /// Connects and sends nothing at all (not even a TLS hello).
    async fn silent(&self, wait: Duration) -> Got {
        let started = Instant::now();
        let mut tcp = match TcpStream::connect(self.addr).await {
            Ok(t) => t,
            Err(e) => return Got::Error(format!("connect {}: {e}", self.addr)),
        };
        let (bytes, closed) = read_until_closed(&mut tcp, wait).await;
        raw_got(bytes, closed, started)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Snapshot {
    /// Coordinator: study → (contributions, releases).
    coordinator: BTreeMap<String, (u64, u64)>,
    /// Each party's intake count.
    intake: Vec<u64>,
    /// API: study → (releases, latest release no, latest count).
    api: BTreeMap<String, (u64, Option<u64>, Option<u64>)>,
}

/// What the probe set up before the snapshot.
struct Setup {
    study: StudyInfo,
    attestation: Attestation,
    submission: SubmitResponse,
}

struct Probe {
    net: NetworkConfig,
    http: reqwest::Client,
    tls: tokio_rustls::TlsConnector,
    admin_token: String,
    party_token: String,
    coordinator_token: String,
    proxy: SocketAddr,
    slow: Duration,
    reports: Vec<CaseReport>,
}

impl Probe {
    fn base(&self, s: Service) -> String {
        match s {
            Service::Coordinator => self.net.coordinator.clone(),
            Service::Party(i) => self.net.parties[i].url.clone(),
            Service::Api => self.net.api.clone(),
            Service::Notary => self.net.notary.clone(),
            Service::Proxy => format!("tcp://{}", self.proxy),
        }
        .trim_end_matches('/')
        .to_string()
    }

    fn record(&mut self, name: &str, service: Service, request: String, expect: Expect, got: Got) {
        let (json_error, code, ok, problem) = judge(service, &expect, &got);
        self.reports.push(CaseReport {
            name: format!("{}/{name}", service.name()),
            service: service.name(),
            request,
            expected: expect.describe(),
            got: describe_got(&got),
            json_error,
            code,
            ok,
            problem,
        });
    }

    async fn send(&self, service: Service, req: &Req) -> Got {
        let url = format!("{}{}", self.base(service), req.path);
        let m = reqwest::Method::from_bytes(req.method.as_bytes()).expect("valid method");
        let mut rb = self.http.request(m, &url);
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = &req.body {
            rb = rb.body(b.clone());
        }
        match rb.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(b) => Got::Answer {
                        status,
                        body: b.to_vec(),
                    },
                    Err(e) => Got::Error(format!("{status}, then reading the body: {e}")),
                }
            }
            Err(e) => Got::Error(error_chain(&e)),
        }
    }

    /// One HTTPS (or, for the notary, HTTP) request through reqwest.
    async fn http(&mut self, name: &str, service: Service, req: Req, expect: Expect) -> Got {
        let got = if service == Service::Notary {
            // The notary's API is plain HTTP/1.1: speak it raw.
            let mut raw = format!("{} {} HTTP/1.1\r\nHost: notary\r\n", req.method, req.path);
            for (k, v) in &req.headers {
                raw.push_str(&format!("{k}: {v}\r\n"));
            }
            let b = req.body.clone().unwrap_or_default();
            raw.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            ));
            let mut bytes = raw.into_bytes();
            bytes.extend_from_slice(&b);
            self.raw(
                service,
                vec![bytes],
                Duration::ZERO,
                Duration::from_secs(30),
            )
            .await
        } else {
            self.send(service, &req).await
        };
        self.record(name, service, req.describe(), expect, got.clone());
        got
    }

    /// Where raw bytes for `service` go: its address, and the TLS
    /// connector for the HTTPS services.
    fn raw_target(&self, service: Service) -> anyhow::Result<RawTarget> {
        let addr = match service {
            Service::Proxy => self.proxy,
            s => addr_of(&self.base(s))?,
        };
        let tls = match service {
            Service::Notary | Service::Proxy => None,
            _ => Some(self.tls.clone()),
        };
        Ok(RawTarget { addr, tls })
    }

    /// Raw bytes over TCP (notary, proxy) or TLS (the HTTPS services).
    async fn raw(
        &self,
        service: Service,
        parts: Vec<Vec<u8>>,
        gap: Duration,
        wait: Duration,
    ) -> Got {
        match self.raw_target(service) {
            Ok(t) => t.exchange(parts, gap, wait).await,
            Err(e) => Got::Error(e.to_string()),
        }
    }

    async fn raw_case(
        &mut self,
        name: &str,
        service: Service,
        request: &str,
        parts: Vec<Vec<u8>>,
        expect: Expect,
    ) -> Got {
        let got = self
            .raw(service, parts, Duration::ZERO, Duration::from_secs(30))
            .await;
        self.record(name, service, request.to_string(), expect, got.clone());
        got
    }

    // ---- state ----

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let r = self.http.get(url).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("GET {url}: {status} {v}");
        }
        Ok(v)
    }

    async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let studies = self
            .get_json(&format!("{}/v1/studies", self.base(Service::Coordinator)))
            .await?;
        let mut coordinator = BTreeMap::new();
        for s in studies.as_array().context("coordinator studies")? {
            let id = s["id"].as_str().context("study id")?.to_string();
            let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
            coordinator.insert(id, (n("contributions"), n("releases")));
        }
        let mut intake = Vec::new();
        for i in 0..3 {
            let v = self
                .get_json(&format!("{}/v1/info", self.base(Service::Party(i))))
                .await?;
            intake.push(v["intake"].as_u64().context("party intake")?);
        }
        let studies = self
            .get_json(&format!("{}/v1/studies", self.base(Service::Api)))
            .await?;
        let mut api = BTreeMap::new();
        for s in studies.as_array().context("API studies")? {
            let id = s["id"].as_str().context("study id")?.to_string();
            api.insert(
                id,
                (
                    s["releases"].as_u64().unwrap_or(u64::MAX),
                    s["latest_release_no"].as_u64(),
                    s["latest_count"].as_u64(),
                ),
            );
        }
        Ok(Snapshot {
            coordinator,
            intake,
            api,
        })
    }

    // ---- set-up ----

    async fn setup(&self, info: &DevnetInfo) -> anyhow::Result<Setup> {
        let ds = self
            .net
            .datasource
            .clone()
            .context("network.json names no data source")?;
        let source: DataSource = ds.source.clone().context("the data source has no name")?;
        let id = format!("probe-{:08x}", rand::random::<u32>());
        let spec = DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        };
        let study = triad_client::create_study(
            &self.net,
            &self.http,
            &self.admin_token,
            &CreateStudy {
                id: id.clone(),
                name: "triad probe".into(),
                data_spec: spec.clone(),
                source,
                min_cohort: None,
                min_new: None,
                release_interval_secs: Some(3600),
                stats: Default::default(),
            },
        )
        .await
        .context("creating the probe's study")?;
        // A real attestation through the notary, for the replay cases.
        let keys: DatasourceInfo = serde_json::from_str(
            &std::fs::read_to_string(&info.api_keys_file)
                .with_context(|| info.api_keys_file.display().to_string())?,
        )?;
        let key = keys.api_keys.first().context("no data source API key")?;
        let target = ProveTarget::from_url(&ds.url, vec![("X-API-KEY".into(), key.clone())])
            .map_err(|e| anyhow::anyhow!("data source URL: {e}"))?;
        let ca = std::fs::read(&ds.ca_cert)?;
        let notary = self.net.notary.clone();
        let (sid, spec2) = (id.clone(), spec.clone());
        let (attestation, _, _) = tokio::task::spawn_blocking(move || {
            triad_notary::service::prove_with_notary(&notary, &target, Some(&ca), &sid, &spec2)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("attestation through the notary: {e}"))?;
        let r = self
            .http
            .post(format!(
                "{}/v1/studies/{id}/submissions",
                self.base(Service::Coordinator)
            ))
            .json(&SubmitRequest {
                attestation: attestation.clone(),
                token: None,
            })
            .send()
            .await?;
        let status = r.status();
        if status.as_u16() != 202 {
            bail!("the probe's submission: {status} {}", r.text().await?);
        }
        let submission: SubmitResponse = r.json().await?;
        // The API lists the study once its poll has seen it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listed = self
                .get_json(&format!("{}/v1/studies", self.base(Service::Api)))
                .await?;
            if listed
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["id"] == id.as_str()))
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the consumer API did not list study {id} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Setup {
            study,
            attestation,
            submission,
        })
    }

    // ---- the cases ----

    async fn coordinator_cases(&mut self, st: &Setup) {
        use Service::Coordinator as C;
        let study = st.study.params.id.clone();
        let submit = format!("/v1/studies/{study}/submissions");
        let att = serde_json::to_value(&st.attestation).expect("serializes");
        let admin = self.admin_token.clone();

        // Submissions.
        self.http(
            "submit_malformed_json",
            C,
            post(&submit, "{\"attestation\": {"),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_wrong_types",
            C,
            post(&submit, body(&json!({"attestation": 5, "token": [1]}))),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_unknown_field",
            C,
            post(&submit, body(&json!({"attestation": att, "extra": true}))),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        let mut att_extra = att.clone();
        att_extra["extra"] = json!(1);
        self.http(
            "submit_unknown_field_in_attestation",
            C,
            post(&submit, body(&json!({ "attestation": att_extra }))),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_empty_body",
            C,
            post(&submit, Vec::new()),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_oversized",
            C,
            post(
                &submit,
                json_of_len("attestation", COORDINATOR_MAX_BODY + 1024),
            ),
            json_err(&[413], &["payload_too_large"]),
        )
        .await;
        self.http(
            "submit_form_encoded",
            C,
            post(&submit, "attestation=x&token=y")
                .header("content-type", "application/x-www-form-urlencoded"),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_token_out_of_form",
            C,
            post(
                &submit,
                body(&json!({"attestation": att, "token": "NOT-HEX"})),
            ),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "submit_unknown_study",
            C,
            post(
                "/v1/studies/no-such-study-probe/submissions",
                body(&json!({ "attestation": att })),
            ),
            json_err(&[404], &["unknown_study"]),
        )
        .await;
        self.http(
            "submit_study_id_out_of_form",
            C,
            post(
                "/v1/studies/Not_A.Study/submissions",
                body(&json!({ "attestation": att })),
            ),
            json_err(&[400, 404], &["malformed_body", "unknown_study"]),
        )
        .await;
        self.http(
            "submit_replayed_attestation",
            C,
            post(&submit, body(&json!({ "attestation": att }))),
            json_err(&[409], &["attestation_replayed"]),
        )
        .await;
        self.http(
            "submit_replayed_with_other_token",
            C,
            post(
                &submit,
                body(&json!({"attestation": att, "token": "a".repeat(64)})),
            ),
            json_err(&[409], &["attestation_replayed"]),
        )
        .await;
        let mut forged = st.attestation.clone();
        forged.signature = flip_last_hex(&forged.signature);
        self.http(
            "submit_forged_signature",
            C,
            post(&submit, body(&json!({ "attestation": forged }))),
            json_err(&[422], &["attestation_invalid"]),
        )
        .await;
        let mut expired = st.attestation.clone();
        expired.expires_at = expired.session_time.saturating_sub(1);
        self.http(
            "submit_expired_attestation",
            C,
            post(&submit, body(&json!({ "attestation": expired }))),
            json_err(&[422], &["attestation_invalid", "attestation_expired"]),
        )
        .await;
        let mut tampered = st.attestation.clone();
        tampered.commitment = flip_last_hex(&tampered.commitment);
        self.http(
            "submit_tampered_commitment",
            C,
            post(&submit, body(&json!({ "attestation": tampered }))),
            json_err(&[422], &["attestation_invalid"]),
        )
        .await;

        // Ready and status: out of order, unauthenticated, malformed.
        let sid = st.submission.submission_id.clone();
        let ready = format!("/v1/submissions/{sid}/ready");
        self.http(
            "ready_wrong_token",
            C,
            post(&ready, body(&json!({"token": "b".repeat(64)}))),
            json_err(&[403], &["wrong_token"]),
        )
        .await;
        self.http(
            "ready_unknown_submission",
            C,
            post(
                format!("/v1/submissions/{UNKNOWN_ID}/ready"),
                body(&json!({"token": st.submission.token})),
            ),
            json_err(&[404], &["unknown_submission"]),
        )
        .await;
        self.http(
            "ready_malformed_json",
            C,
            post(&ready, "{\"token\""),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "ready_wrong_types",
            C,
            post(&ready, body(&json!({"token": 123}))),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "ready_unknown_field",
            C,
            post(
                &ready,
                body(&json!({"token": "b".repeat(64), "shares": "sent"})),
            ),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "ready_empty_body",
            C,
            post(&ready, Vec::new()),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "ready_form_encoded",
            C,
            post(&ready, format!("token={}", "b".repeat(64)))
                .header("content-type", "application/x-www-form-urlencoded"),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "ready_oversized",
            C,
            post(&ready, json_of_len("token", COORDINATOR_MAX_BODY + 1024)),
            json_err(&[413], &["payload_too_large"]),
        )
        .await;
        self.http(
            "status_unknown_submission",
            C,
            get(format!("/v1/submissions/{UNKNOWN_ID}")),
            json_err(&[404], &["unknown_submission"]),
        )
        .await;
        self.http(
            "status_wait_ms_negative",
            C,
            get(format!("/v1/submissions/{sid}?wait_ms=-1")),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "status_wait_ms_overflow",
            C,
            get(format!(
                "/v1/submissions/{sid}?wait_ms=18446744073709551616"
            )),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "status_wait_ms_not_a_number",
            C,
            get(format!("/v1/submissions/{sid}?wait_ms=soon")),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "status_unknown_query_parameter",
            C,
            get(format!("/v1/submissions/{sid}?wait=1")),
            json_err(&[400], &["malformed_body"]),
        )
        .await;

        // Studies.
        self.http(
            "study_unknown",
            C,
            get("/v1/studies/no-such-study-probe"),
            json_err(&[404], &["unknown_study"]),
        )
        .await;
        self.http(
            "study_id_very_long",
            C,
            get(format!("/v1/studies/{}", "a".repeat(LONG_URI))),
            json_err(&[400, 404, 414], &[]),
        )
        .await;
        self.http(
            "study_id_invalid_utf8",
            C,
            get("/v1/studies/%FF%FE"),
            json_err(&[400, 404], &[]),
        )
        .await;
        let good = json!({
            "id": format!("{study}-x"),
            "name": "probe",
            "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
            "source": st.study.params.source,
            "release_interval_secs": 3600,
        });
        let with = |k: &str, v: Value| {
            let mut g = good.clone();
            g[k] = v;
            body(&g)
        };
        self.http(
            "create_study_no_admin_token",
            C,
            post("/v1/studies", body(&good)),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "create_study_wrong_admin_token",
            C,
            post("/v1/studies", body(&good)).header(ADMIN_TOKEN_HEADER, "c".repeat(64)),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "create_study_min_new_zero",
            C,
            post("/v1/studies", with("min_new", json!(0))).header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["invalid_study"]),
        )
        .await;
        self.http(
            "create_study_threshold_u64_max",
            C,
            post("/v1/studies", with("min_cohort", json!(u64::MAX)))
                .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["invalid_study"]),
        )
        .await;
        self.http(
            "create_study_threshold_above_u64",
            C,
            post(
                "/v1/studies",
                String::from_utf8(body(&good))
                    .expect("JSON is UTF-8")
                    .replacen('{', "{\"min_new\":18446744073709551616,", 1),
            )
            .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "create_study_below_party_floor",
            C,
            post("/v1/studies", with("min_cohort", json!(2))).header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400, 409], &["invalid_study", "below_threshold"]),
        )
        .await;
        self.http(
            "create_study_empty_source",
            C,
            post("/v1/studies", with("source", json!({"server_name": ""})))
                .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["invalid_study"]),
        )
        .await;
        self.http(
            "create_study_id_out_of_form",
            C,
            post("/v1/studies", with("id", json!("Probe Study!")))
                .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["invalid_study"]),
        )
        .await;
        self.http(
            "create_study_wrong_types",
            C,
            post("/v1/studies", with("min_cohort", json!("ten")))
                .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "create_study_unknown_field",
            C,
            post("/v1/studies", with("owner", json!("probe"))).header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        let mut same = good.clone();
        same["id"] = json!(study);
        self.http(
            "create_study_existing_id",
            C,
            post("/v1/studies", body(&same)).header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[409], &["study_exists"]),
        )
        .await;
        self.http(
            "create_study_oversized",
            C,
            post(
                "/v1/studies",
                json_of_len("name", COORDINATOR_MAX_BODY + 1024),
            )
            .header(ADMIN_TOKEN_HEADER, &admin),
            json_err(&[413], &["payload_too_large"]),
        )
        .await;

        // Internal and operator routes.
        self.http(
            "internal_status_no_token",
            C,
            get("/internal/status"),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_batch_no_token",
            C,
            get("/internal/batches/1"),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_batch_wrong_token",
            C,
            get("/internal/batches/1").header(INTERNAL_TOKEN_HEADER, "d".repeat(64)),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        // The coordinator's own token is not the parties' one.
        let ct = self.coordinator_token.clone();
        self.http(
            "internal_batch_coordinator_token",
            C,
            get("/internal/batches/1").header(INTERNAL_TOKEN_HEADER, ct),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        let pt = self.party_token.clone();
        self.http(
            "internal_batch_non_numeric",
            C,
            get("/internal/batches/first").header(INTERNAL_TOKEN_HEADER, &pt),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "internal_batch_above_u64",
            C,
            get("/internal/batches/18446744073709551616").header(INTERNAL_TOKEN_HEADER, &pt),
            json_err(&[400], &["malformed_body"]),
        )
        .await;

        // Routing.
        self.http(
            "unknown_path",
            C,
            get("/v2/everything"),
            json_err(&[404], &[]),
        )
        .await;
        self.http(
            "wrong_method_delete_studies",
            C,
            method("DELETE", "/v1/studies"),
            json_err(&[405], &[]),
        )
        .await;
        self.http(
            "wrong_method_get_submissions",
            C,
            get(&submit),
            json_err(&[405], &[]),
        )
        .await;
        self.protocol_cases(C, "/v1/studies").await;
    }

    /// Requests the HTTP layer refuses before any handler, on an HTTPS
    /// service; `path` is a route that exists.
    async fn protocol_cases(&mut self, s: Service, path: &str) {
        let head = |extra: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
                .into_bytes()
        };
        self.raw_case(
            "huge_header",
            s,
            &format!("GET {path} [{} KiB header]", HUGE_HEADER / 1024),
            vec![head(&format!(
                "X-Probe-Padding: {}\r\n",
                "p".repeat(HUGE_HEADER)
            ))],
            Expect::Protocol(&[431, 400]),
        )
        .await;
        let many: String = (0..200)
            .map(|k| format!("X-Probe-{k}: probe\r\n"))
            .collect();
        self.raw_case(
            "too_many_headers",
            s,
            &format!("GET {path} [200 headers]"),
            vec![head(&many)],
            Expect::Protocol(&[431, 400]),
        )
        .await;
        self.raw_case(
            "uri_above_http_limit",
            s,
            &format!("GET /{}… ({HUGE_URI} B)", "a".repeat(8)),
            vec![format!(
                "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                "a".repeat(HUGE_URI)
            )
            .into_bytes()],
            Expect::Protocol(&[414, 400, 431]),
        )
        .await;
        let mut raw = b"GET /v1/studies/\xff\xfe HTTP/1.1\r\n".to_vec();
        raw.extend_from_slice(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
        self.raw_case(
            "raw_invalid_utf8_in_path",
            s,
            "GET /v1/studies/\\xff\\xfe (raw bytes)",
            vec![raw],
            Expect::Protocol(&[400]),
        )
        .await;
        self.raw_case(
            "garbage_request_line",
            s,
            "garbage",
            vec![b"NOT HTTP AT ALL\r\n\r\n".to_vec()],
            Expect::Protocol(&[400]),
        )
        .await;
    }

    async fn party_cases(&mut self, i: usize, st: &Setup) {
        let p = Service::Party(i);
        let ct = self.coordinator_token.clone();
        let pt = self.party_token.clone();
        let upload = |value_bits: Value, blinder: Value| {
            body(&json!({
                "submission_id": st.submission.submission_id,
                "token": "e".repeat(64),
                "value_bits": value_bits,
                "blinder": blinder,
            }))
        };
        let (bits, fr) = (
            json!(["0".repeat(16), "0".repeat(16)]),
            json!(["0".repeat(64), "0".repeat(64)]),
        );
        self.http(
            "shares_malformed_json",
            p,
            post("/v1/shares", "{\"submission_id\": "),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "shares_empty_body",
            p,
            post("/v1/shares", Vec::new()),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "shares_wrong_types",
            p,
            post("/v1/shares", upload(json!([1, 2]), fr.clone())),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        let mut extra: Value =
            serde_json::from_slice(&upload(bits.clone(), fr.clone())).expect("JSON");
        extra["party"] = json!(i);
        self.http(
            "shares_unknown_field",
            p,
            post("/v1/shares", body(&extra)),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "shares_three_components",
            p,
            post(
                "/v1/shares",
                upload(
                    json!(["0".repeat(16), "0".repeat(16), "0".repeat(16)]),
                    fr.clone(),
                ),
            ),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "shares_bad_value_bits",
            p,
            post("/v1/shares", upload(json!(["zz", "0"]), fr.clone())),
            json_err(&[400], &["bad_shares"]),
        )
        .await;
        self.http(
            "shares_non_canonical_blinder",
            p,
            post(
                "/v1/shares",
                upload(bits.clone(), json!(["f".repeat(64), "0".repeat(64)])),
            ),
            json_err(&[400], &["bad_shares"]),
        )
        .await;
        let mut bad_id: Value =
            serde_json::from_slice(&upload(bits.clone(), fr.clone())).expect("JSON");
        bad_id["submission_id"] = json!("../../etc/passwd");
        self.http(
            "shares_submission_id_out_of_form",
            p,
            post("/v1/shares", body(&bad_id)),
            json_err(&[400], &["bad_shares"]),
        )
        .await;
        self.http(
            "shares_oversized",
            p,
            post(
                "/v1/shares",
                json_of_len("submission_id", PARTY_SHARES_MAX_BODY + 1024),
            ),
            json_err(&[413], &["payload_too_large"]),
        )
        .await;
        self.http(
            "release_study_id_out_of_form",
            p,
            get("/v1/studies/NOT_VALID/release/latest"),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "release_unknown_study",
            p,
            get("/v1/studies/no-such-study-probe/release/latest"),
            json_err(&[404], &["no_release"]),
        )
        .await;
        self.http(
            "release_study_id_invalid_utf8",
            p,
            get("/v1/studies/%FF%FE/release/latest"),
            json_err(&[400], &[]),
        )
        .await;

        // Internal routes without (or with a wrong) coordinator token.
        let prepare = body(&json!({"batch_id": 1, "study": st.study.params, "items": []}));
        self.http(
            "internal_prepare_no_token",
            p,
            post("/internal/batches/prepare", prepare.clone()),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_prepare_party_token",
            p,
            post("/internal/batches/prepare", prepare.clone()).header(INTERNAL_TOKEN_HEADER, &pt),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_commit_wrong_token",
            p,
            post("/internal/batches/1/commit", Vec::new())
                .header(INTERNAL_TOKEN_HEADER, "f".repeat(64)),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_abort_no_token",
            p,
            post("/internal/batches/1/abort", Vec::new()),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        let release = body(&json!({
            "study": st.study.params, "release_no": 1, "created_at": 0, "as_of_batch": 0,
        }));
        self.http(
            "internal_release_wrong_token",
            p,
            post("/internal/releases", release.clone())
                .header(INTERNAL_TOKEN_HEADER, "f".repeat(64)),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_studies_no_token",
            p,
            post(
                "/internal/studies",
                body(&serde_json::to_value(&st.study.params).expect("JSON")),
            ),
            json_err(&[401], &["unauthorized"]),
        )
        .await;
        self.http(
            "internal_oversized_no_token",
            p,
            post(
                "/internal/batches/prepare",
                json_of_len("items", PARTY_INTERNAL_MAX_BODY + 1024),
            ),
            json_err(&[401, 413], &["unauthorized", "payload_too_large"]),
        )
        .await;
        self.http(
            "internal_commit_non_numeric_no_token",
            p,
            post("/internal/batches/first/commit", Vec::new()),
            json_err(&[400, 401], &[]),
        )
        .await;
        // With the coordinator's token: out-of-order requests a party must
        // refuse on its own, none of which writes anything (an abort of an
        // unknown batch would: it is recorded as aborted, so it is not sent).
        self.http(
            "internal_commit_non_numeric",
            p,
            post("/internal/batches/first/commit", Vec::new()).header(INTERNAL_TOKEN_HEADER, &ct),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "internal_commit_never_prepared",
            p,
            post(format!("/internal/batches/{}/commit", i64::MAX), Vec::new())
                .header(INTERNAL_TOKEN_HEADER, &ct),
            json_err(&[404], &["unknown_batch"]),
        )
        .await;
        self.http(
            "internal_prepare_empty_batch",
            p,
            post("/internal/batches/prepare", prepare).header(INTERNAL_TOKEN_HEADER, &ct),
            json_err(&[400], &["malformed_body"]),
        )
        .await;
        self.http(
            "internal_release_out_of_order",
            p,
            post(
                "/internal/releases",
                body(&json!({
                    "study": st.study.params, "release_no": 7, "created_at": 0, "as_of_batch": 0,
                })),
            )
            .header(INTERNAL_TOKEN_HEADER, &ct),
            json_err(&[409], &["wrong_state"]),
        )
        .await;
        self.http(
            "internal_release_unknown_field",
            p,
            post(
                "/internal/releases",
                body(&json!({
                    "study": st.study.params, "release_no": 1, "created_at": 0, "as_of_batch": 0,
                    "force": true,
                })),
            )
            .header(INTERNAL_TOKEN_HEADER, &ct),
            json_err(&[400], &["malformed_body"]),
        )
        .await;

        // Routing.
        self.http("unknown_path", p, get("/v1/nothing"), json_err(&[404], &[]))
            .await;
        self.http(
            "wrong_method_get_shares",
            p,
            get("/v1/shares"),
            json_err(&[405], &[]),
        )
        .await;
        if i == 0 {
            self.protocol_cases(p, "/v1/info").await;
        }
    }

    async fn api_cases(&mut self) {
        let a = Service::Api;
        self.http(
            "latest_unknown_study",
            a,
            get("/v1/studies/no-such-study-probe/release/latest"),
            json_err(&[404], &["unknown_study"]),
        )
        .await;
        self.http(
            "history_unknown_study",
            a,
            get("/v1/studies/no-such-study-probe/releases"),
            json_err(&[404], &["unknown_study"]),
        )
        .await;
        self.http(
            "latest_study_id_out_of_form",
            a,
            get("/v1/studies/NOT_VALID!/release/latest"),
            json_err(&[400, 404], &[]),
        )
        .await;
        self.http(
            "latest_study_id_very_long",
            a,
            get(format!(
                "/v1/studies/{}/release/latest",
                "a".repeat(LONG_URI)
            )),
            json_err(&[400, 404, 414], &[]),
        )
        .await;
        self.http(
            "latest_study_id_invalid_utf8",
            a,
            get("/v1/studies/%FF%FE/release/latest"),
            json_err(&[400, 404], &[]),
        )
        .await;
        self.http(
            "unknown_path",
            a,
            get("/v2/anything"),
            json_err(&[404], &[]),
        )
        .await;
        self.http(
            "wrong_method_post_studies",
            a,
            post("/v1/studies", "{}"),
            json_err(&[405], &[]),
        )
        .await;
        self.http(
            "wrong_method_delete_release",
            a,
            method("DELETE", "/v1/studies/x/release/latest"),
            json_err(&[405], &[]),
        )
        .await;
        self.protocol_cases(a, "/v1/studies").await;
    }

    async fn notary_cases(&mut self) {
        let n = Service::Notary;
        let attest = |over: &[(&str, Value)]| {
            let mut v = json!({
                "session_id": UNKNOWN_ID,
                "server_key": "00".repeat(16),
                "server_iv": "00".repeat(4),
                "blinder": "0".repeat(64),
                "study_id": "probe",
                "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
                "expected_value": 0,
            });
            for (k, x) in over {
                v[*k] = x.clone();
            }
            body(&v)
        };
        self.http(
            "attest_malformed_json",
            n,
            post("/v1/attest", "{oops"),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_bad_hex_key",
            n,
            post("/v1/attest", attest(&[("server_key", json!("zz"))])),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_bad_blinder",
            n,
            post("/v1/attest", attest(&[("blinder", json!("f".repeat(64)))])),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_session_id_out_of_form",
            n,
            post("/v1/attest", attest(&[("session_id", json!("XYZ"))])),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_wrong_types",
            n,
            post("/v1/attest", attest(&[("expected_value", json!("lots"))])),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_unknown_field",
            n,
            post("/v1/attest", attest(&[("value", json!(1))])),
            json_err(&[400], &[]),
        )
        .await;
        self.http(
            "attest_unknown_session",
            n,
            post("/v1/attest", attest(&[])),
            json_err(&[404], &[]),
        )
        .await;
        self.http(
            "attest_oversized",
            n,
            post(
                "/v1/attest",
                json_of_len("session_id", NOTARY_MAX_BODY + 1024),
            ),
            json_err(&[413], &[]),
        )
        .await;
        self.http(
            "wrong_method_delete_info",
            n,
            method("DELETE", "/v1/info"),
            json_err(&[405], &[]),
        )
        .await;
        self.http("unknown_path", n, get("/v2/keys"), json_err(&[404], &[]))
            .await;
        self.raw_case(
            "garbage_request_line",
            n,
            "garbage",
            vec![b"garbage\r\n\r\n".to_vec()],
            json_err(&[400], &[]),
        )
        .await;
        self.raw_case(
            "head_too_large",
            n,
            "GET /v1/info [9 KiB header]",
            vec![format!(
                "GET /v1/info HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(NOTARY_MAX_HEAD + 1024)
            )
            .into_bytes()],
            json_err(&[431], &[]),
        )
        .await;
        self.raw_case(
            "chunked_body",
            n,
            "POST /v1/attest (chunked)",
            vec![b"POST /v1/attest HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                .to_vec()],
            json_err(&[400], &[]),
        )
        .await;
        self.raw_case(
            "invalid_utf8_head",
            n,
            "GET /v1/\\xff (raw bytes)",
            vec![b"GET /v1/\xff HTTP/1.1\r\n\r\n".to_vec()],
            json_err(&[400], &[]),
        )
        .await;
        self.raw_case(
            "content_length_not_a_number",
            n,
            "POST /v1/attest (Content-Length: lots)",
            vec![b"POST /v1/attest HTTP/1.1\r\nContent-Length: lots\r\n\r\n".to_vec()],
            json_err(&[400], &[]),
        )
        .await;
        self.raw_case(
            "body_after_content_length",
            n,
            "POST /v1/attest (body longer than Content-Length)",
            vec![b"POST /v1/attest HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}{}".to_vec()],
            json_err(&[400], &[]),
        )
        .await;
    }

    async fn proxy_cases(&mut self) {
        let px = Service::Proxy;
        let ds = self
            .net
            .datasource
            .as_ref()
            .and_then(|d| addr_of(d.url.split("/api").next().unwrap_or(&d.url)).ok());
        let ds_port = ds.map(|a| a.port()).unwrap_or(443);
        let after = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
        let sid = || format!("{:032x}", rand::random::<u128>());
        let cases: Vec<(&str, String)> = vec![
            (
                "preamble_wrong_version",
                format!("TRIAD-PROXY/2 {} 127.0.0.1 {ds_port}\n", sid()),
            ),
            (
                "preamble_uppercase_session_id",
                format!(
                    "TRIAD-PROXY/1 {} 127.0.0.1 {ds_port}\n",
                    sid().to_uppercase()
                ),
            ),
            (
                "preamble_port_zero",
                format!("TRIAD-PROXY/1 {} 127.0.0.1 0\n", sid()),
            ),
            (
                "preamble_extra_field",
                format!("TRIAD-PROXY/1 {} 127.0.0.1 {ds_port} x\n", sid()),
            ),
            (
                "preamble_bad_host",
                format!("TRIAD-PROXY/1 {} 127.0.0.1/x {ds_port}\n", sid()),
            ),
            ("preamble_overlong", "P".repeat(400)),
            ("http_instead_of_preamble", "GET / HTTP/1.1\r\n".to_string()),
        ];
        for (name, preamble) in cases {
            let got = self
                .raw(
                    px,
                    vec![preamble.into_bytes(), after.clone()],
                    Duration::from_millis(50),
                    Duration::from_secs(10),
                )
                .await;
            self.record(
                name,
                px,
                format!("preamble: {name}"),
                Expect::Closed(&[]),
                got,
            );
        }
        // A TLS ClientHello-like record without any preamble.
        let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00].to_vec();
        let got = self
            .raw(px, vec![hello], Duration::ZERO, Duration::from_secs(10))
            .await;
        self.record(
            "tls_without_preamble",
            px,
            "TLS record, no preamble".into(),
            Expect::Closed(&[]),
            got,
        );
        // Well-formed preambles for targets the notary must not relay to:
        // the coordinator (not on the allow-list) and the notary's own API.
        let targets = [
            (
                "refused_target_coordinator",
                addr_of(&self.net.coordinator).ok(),
            ),
            ("refused_target_notary_api", addr_of(&self.net.notary).ok()),
        ];
        for (name, target) in targets {
            let Some(target) = target else { continue };
            let id = sid();
            let got = self
                .raw(
                    px,
                    vec![
                        format!("TRIAD-PROXY/1 {id} {} {}\n", target.ip(), target.port())
                            .into_bytes(),
                        after.clone(),
                    ],
                    Duration::from_millis(50),
                    Duration::from_secs(10),
                )
                .await;
            self.record(
                name,
                px,
                format!("preamble to {target}"),
                Expect::Closed(&[]),
                got,
            );
            // The notary's API says why, once; the session is then used up.
            let req = |id: &str| {
                post(
                    "/v1/attest",
                    body(&json!({
                        "session_id": id,
                        "server_key": "00".repeat(16),
                        "server_iv": "00".repeat(4),
                        "blinder": "0".repeat(64),
                        "study_id": "probe",
                        "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
                        "expected_value": 0,
                    })),
                )
            };
            self.http(
                &format!("attest_{name}"),
                Service::Notary,
                req(&id),
                json_err(&[403], &[]),
            )
            .await;
            self.http(
                &format!("attest_{name}_again"),
                Service::Notary,
                req(&id),
                json_err(&[404], &[]),
            )
            .await;
        }
    }

    /// Slow and silent clients, all services at once (each waits up to
    /// `slow`).
    async fn slow_cases(&mut self) {
        let slow = self.slow;
        let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
        let mut jobs: Vec<(Service, &str, &str, Option<Vec<u8>>)> = Vec::new();
        for s in [
            Service::Coordinator,
            Service::Party(0),
            Service::Party(1),
            Service::Party(2),
            Service::Api,
        ] {
            jobs.push((
                s,
                "slow_headers",
                "GET /healthz, head never finished",
                Some(head.clone()),
            ));
        }
        jobs.push((
            Service::Coordinator,
            "slow_body",
            "POST ready, Content-Length 100, 9 bytes sent",
            Some(
                format!(
                    "POST /v1/submissions/{UNKNOWN_ID}/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"token\":"
                )
                .into_bytes(),
            ),
        ));
        jobs.push((
            Service::Notary,
            "slow_headers",
            "GET /v1/info, head never finished",
            Some(b"GET /v1/info HTTP/1.1\r\n".to_vec()),
        ));
        jobs.push((
            Service::Proxy,
            "silent_client",
            "connect, send nothing",
            Some(Vec::new()),
        ));
        // A TCP connection that never starts TLS (the handshake deadline).
        jobs.push((
            Service::Coordinator,
            "silent_tcp_no_tls",
            "connect, no TLS handshake",
            None,
        ));
        let mut handles = Vec::new();
        for (s, _, _, bytes) in &jobs {
            let target = self.raw_target(*s);
            let bytes = bytes.clone();
            handles.push(tokio::spawn(async move {
                match (target, bytes) {
                    (Err(e), _) => Got::Error(e.to_string()),
                    (Ok(t), Some(b)) => t.exchange(vec![b], Duration::ZERO, slow).await,
                    (Ok(t), None) => t.silent(slow).await,
                }
            }));
        }
        for ((s, name, what, bytes), h) in jobs.into_iter().zip(handles) {
            let got = h.await.unwrap_or_else(|e| Got::Error(e.to_string()));
            let expect = if bytes.is_some() {
                Expect::Closed(&[408])
            } else {
                Expect::Closed(&[])
            };
            self.record(name, s, what.to_string(), expect, got);
        }
    }
}

/// The hex string with its last digit changed.
fn flip_last_hex(s: &str) -> String {
    let mut v: Vec<char> = s.chars().collect();
    if let Some(c) = v.last_mut() {
        *c = if *c == '0' { '1' } else { '0' };
    }
    v.into_iter().collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn tls_connector(ca_pem: &[u8]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.context("CA PEM")?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

fn read_secret(dir: &std::path::Path, name: &str) -> anyhow::Result<String> {
    let p = dir.join("secrets").join(name);
    Ok(std::fs::read_to_string(&p)
        .with_context(|| p.display().to_string())?
        .trim()
        .to_string())
}

fn read_devnet(dir: &std::path::Path) -> anyhow::Result<DevnetInfo> {
    let p = dir.join("devnet.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{} (is the devnet running?)", p.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// (pid, restarts) by service name.
fn services(info: &DevnetInfo) -> BTreeMap<String, (u32, u32)> {
    info.services
        .iter()
        .map(|s| (s.name.clone(), (s.pid, s.restarts)))
        .collect()
}

/// What differs between two snapshots, one line each.
fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = before
        .coordinator
        .keys()
        .chain(after.coordinator.keys())
        .collect();
    for k in keys {
        let (b, a) = (before.coordinator.get(k), after.coordinator.get(k));
        if b != a {
            out.push(format!(
                "coordinator study {k}: {b:?} -> {a:?} (contributions, releases)"
            ));
        }
    }
    for (i, (b, a)) in before.intake.iter().zip(&after.intake).enumerate() {
        if b != a {
            out.push(format!("party{i} intake: {b} -> {a}"));
        }
    }
    let keys: std::collections::BTreeSet<&String> =
        before.api.keys().chain(after.api.keys()).collect();
    for k in keys {
        let (b, a) = (before.api.get(k), after.api.get(k));
        if b != a {
            out.push(format!(
                "api study {k}: {b:?} -> {a:?} (releases, latest no, latest count)"
            ));
        }
    }
    out
}

#[derive(Serialize)]
struct Summary {
    cases: usize,
    refused_cleanly: usize,
    server_errors: usize,
    state_changed: bool,
    restarts: u32,
    failures: Vec<Value>,
    study: String,
    state_diff: Vec<String>,
    restarted: Vec<String>,
    seconds: f64,
    results: Vec<CaseReport>,
}

/// `triad probe`.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(probe(&args))?;
    if !args.json {
        print_table(&summary);
    }
    let mut line = serde_json::to_value(&summary)?;
    if !args.json {
        // The table already shows every case.
        line.as_object_mut().map(|o| o.remove("results"));
    }
    println!("{line}");
    let clean = summary.refused_cleanly == summary.cases
        && summary.server_errors == 0
        && summary.restarts == 0
        && !summary.state_changed;
    if !clean {
        bail!(
            "{} of {} cases not refused cleanly, {} server errors, {} restarts, state {}",
            summary.cases - summary.refused_cleanly,
            summary.cases,
            summary.server_errors,
            summary.restarts,
            if summary.state_changed {
                "changed"
            } else {
                "unchanged"
            }
        );
    }
    Ok(())
}

async fn probe(args: &ProbeArgs) -> anyhow::Result<Summary> {
    let t0 = Instant::now();
    let dir = args.devnet.as_path();
    let info = read_devnet(dir)?;
    let services_before = services(&info);
    let net = NetworkConfig::load(&info.network_file)?;
    let ca = net.ca_pem()?;
    let notary_url = net.notary.clone();
    let notary_info = tokio::task::spawn_blocking(move || {
        triad_notary::service::ApiClient::new(&notary_url).and_then(|c| c.info())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("notary: {e}"))?;
    let mut p = Probe {
        http: triad_wire::https::client(&ca, Duration::from_secs(60))?,
        tls: tls_connector(&ca)?,
        admin_token: read_secret(dir, "admin.token")?,
        party_token: read_secret(dir, "party.token")?,
        coordinator_token: read_secret(dir, "coordinator.token")?,
        proxy: notary_info
            .proxy
            .parse()
            .with_context(|| format!("notary proxy {:?}", notary_info.proxy))?,
        slow: Duration::from_secs(args.slow_secs),
        net,
        reports: Vec::new(),
    };
    let setup = p.setup(&info).await?;
    let before = p.snapshot().await?;

    p.coordinator_cases(&setup).await;
    for i in 0..3 {
        p.party_cases(i, &setup).await;
    }
    p.api_cases().await;
    p.notary_cases().await;
    p.proxy_cases().await;
    p.slow_cases().await;

    // Give the supervisor (which polls every 300 ms) time to notice a crash.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = p.snapshot().await?;
    let services_after = services(&read_devnet(dir)?);
    let mut restarted = Vec::new();
    let mut restarts = 0;
    for (name, (pid, r)) in &services_before {
        match services_after.get(name) {
            Some((pid2, r2)) if pid2 == pid && r2 == r => {}
            Some((pid2, r2)) => {
                restarts += r2.saturating_sub(*r).max(1);
                restarted.push(format!("{name}: pid {pid} -> {pid2}, restarts {r} -> {r2}"));
            }
            None => {
                restarts += 1;
                restarted.push(format!("{name}: gone from devnet.json"));
            }
        }
    }
    let state_diff = diff(&before, &after);
    let reports = std::mem::take(&mut p.reports);
    let server_errors = reports
        .iter()
        .filter(|r| r.got.parse::<u16>().is_ok_and(|s| s >= 500))
        .count();
    let failures = reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| json!({"case": r.name, "problem": r.problem}))
        .collect();
    Ok(Summary {
        cases: reports.len(),
        refused_cleanly: reports.iter().filter(|r| r.ok).count(),
        server_errors,
        state_changed: !state_diff.is_empty(),
        restarts,
        failures,
        study: setup.study.params.id,
        state_diff,
        restarted,
        seconds: t0.elapsed().as_secs_f64(),
        results: reports,
    })
}

fn print_table(s: &Summary) {
    println!(
        "{:<2} {:<52} {:<58} {:<22} {:<14} json",
        "", "case", "request", "expected", "got"
    );
    for r in &s.results {
        let json = match r.json_error {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let mut req = r.request.clone();
        if req.chars().count() > 58 {
            req = req.chars().take(55).collect::<String>() + "...";
        }
        println!(
            "{:<2} {:<52} {:<58} {:<22} {:<14} {json}",
            if r.ok { "ok" } else { "!!" },
            r.name,
            req,
            r.expected,
            r.got
        );
    }
    println!();
    for r in s.results.iter().filter(|r| !r.ok) {
        println!(
            "FAIL {}: {}",
            r.name,
            r.problem.as_deref().unwrap_or("not refused cleanly")
        );
    }
    for d in &s.state_diff {
        println!("STATE {d}");
    }
    for r in &s.restarted {
        println!("RESTART {r}");
    }
    println!(
        "{} cases, {} refused cleanly, {} server errors, {} restarts, state {} (study {}, {:.1} s)",
        s.cases,
        s.refused_cleanly,
        s.server_errors,
        s.restarts,
        if s.state_changed {
            "CHANGED"
        } else {
            "unchanged"
        },
        s.study,
        s.seconds
    );
}
