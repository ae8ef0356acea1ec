//! `triad probe --devnet <dir>`: sends hostile requests to every service of
//! a running devnet — malformed, oversized, replayed, unauthenticated and
//! out-of-order ones, plus slow and silent clients — and checks that each
//! is refused cleanly: a specific 4xx in the service's JSON error shape, no
//! 5xx, no service restarted, and no public counter changed.
//!
//! What "refused cleanly" means depends on who refuses:
//! - a handler (every case the service's own code can see) answers the
//!   expected status with `{"error": code, "message": text}` (the notary's
//!   API too: it runs on the same HTTPS stack);
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
use triad_attestation::{Attestation, DataSource, DataSpec};
use triad_notary::ProveTarget;
use triad_testsite::DatasourceInfo;
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
/// Above hyper's default read buffer (8 KiB + 100 × 4 KiB): the whole head
/// can never be buffered.
const HUGE_HEADER: usize = 512 * 1024;
/// Above the `http` crate's longest URI (65,534 bytes).
const HUGE_URI: usize = 70_000;
/// Below it: the service's own handler sees the path.
const LONG_URI: usize = 60_000;
/// How long a raw exchange waits for the answer.
const RAW_WAIT: Duration = Duration::from_secs(30);
const FORM: &str = "application/x-www-form-urlencoded";
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
    /// shape, with one of `codes` as `error` (any code if empty).
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

const fn json_err(status: &'static [u16], codes: &'static [&'static str]) -> Expect {
    Expect::Json { status, codes }
}

const MALFORMED: Expect = json_err(&[400], &["malformed_body"]);
const UNAUTHORIZED: Expect = json_err(&[401], &["unauthorized"]);
const TOO_LARGE: Expect = json_err(&[413], &["payload_too_large"]);
const BAD_SHARES: Expect = json_err(&[400], &["bad_shares"]);
const INVALID_STUDY: Expect = json_err(&[400], &["invalid_study"]);
const REPLAYED: Expect = json_err(&[409], &["attestation_replayed"]);
/// The fallbacks: the codes are the service's to choose.
const NOT_FOUND: Expect = json_err(&[404], &[]);
const NOT_ALLOWED: Expect = json_err(&[405], &[]);

impl Expect {
    fn describe(&self) -> String {
        let list = |s: &[u16]| {
            s.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("|")
        };
        match self {
            Self::Json { status, codes: [] } => format!("{} json", list(status)),
            Self::Json { status, codes } => format!("{} {}", list(status), codes.join("|")),
            Self::Protocol(s) => format!("{}|close", list(s)),
            Self::Closed([]) => "close".into(),
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

/// `{"error": non-empty string, "message": non-empty string}`, every
/// service's error shape.
fn error_shape(body: &[u8]) -> (bool, Option<String>) {
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
    (code.is_some() && text("message").is_some(), code)
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(80)]);
    s.replace(['\n', '\r'], " ")
}

/// Judges one case: (json shape, code, ok, problem).
fn judge(expect: &Expect, got: &Got) -> (Option<bool>, Option<String>, bool, Option<String>) {
    match got {
        Got::Answer { status, body } => {
            let (shape, code) = if body.is_empty() {
                (None, None)
            } else {
                let (ok, code) = error_shape(body);
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
                    } else if !codes.is_empty()
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
    /// Coordinator: poll → (sign-ups, logged messages, tallied).
    polls: BTreeMap<u64, (u64, u64, bool)>,
}

/// What the probe set up before the snapshot.
struct Setup {
    study: StudyInfo,
    attestation: Attestation,
    submission: SubmitResponse,
    /// The probe's own poll (open for a day).
    poll: u64,
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
        let (json_error, code, ok, problem) = judge(&expect, &got);
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

    /// One HTTPS request through reqwest.
    async fn http(&mut self, name: &str, service: Service, req: Req, expect: Expect) -> Got {
        let got = self.send(service, &req).await;
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
            Service::Proxy => None,
            _ => Some(self.tls.clone()),
        };
        Ok(RawTarget { addr, tls })
    }

    /// Raw bytes over TCP (the proxy) or TLS (the HTTPS services).
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
        let got = self.raw(service, parts, Duration::ZERO, RAW_WAIT).await;
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
        let listed = self
            .get_json(&format!("{}/v1/polls", self.base(Service::Coordinator)))
            .await?;
        let mut polls = BTreeMap::new();
        for p in listed.as_array().context("coordinator polls")? {
            let n = |k: &str| p[k].as_u64().unwrap_or(u64::MAX);
            polls.insert(n("id"), (n("signups"), n("messages"), p["tallied"] == true));
        }
        Ok(Snapshot {
            coordinator,
            intake,
            api,
            polls,
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
        let notary = triad_notary::NotaryClient::new(&self.net.notary, &self.net.ca_pem()?)
            .map_err(|e| anyhow::anyhow!("notary: {e}"))?;
        let (attestation, _, _) =
            triad_notary::prove_with_notary(&notary, &target, Some(&ca), &id, &spec)
                .await
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
        let poll = rand::random::<u64>() >> 14;
        let now = triad_wire::unix_now();
        triad_client::poll::create_poll(
            &self.net,
            &self.http,
            &self.admin_token,
            &triad_wire::poll::PollSpec {
                id: poll,
                name: "triad probe".into(),
                vote_options: 3,
                mode: triad_wire::poll::PollMode::Quadratic,
                signup_deadline: now + 86_400,
                voting_deadline: now + 86_400,
                window: 32,
                voice_credits: 100,
                data_spec: spec,
                source: study.params.source.clone(),
                rekey_epoch_secs: 3600,
            },
        )
        .await
        .context("creating the probe's poll")?;
        Ok(Setup {
            study,
            attestation,
            submission,
            poll,
        })
    }

    // ---- the cases ----

    /// Sends each `(name, request, expectation)` to `service`.
    async fn run_all(&mut self, service: Service, cases: Vec<(&str, Req, Expect)>) {
        for (name, req, expect) in cases {
            self.http(name, service, req, expect).await;
        }
    }

    async fn coordinator_cases(&mut self, st: &Setup) {
        let study = st.study.params.id.clone();
        let submit = format!("/v1/studies/{study}/submissions");
        let att = serde_json::to_value(&st.attestation).expect("serializes");
        let with_att = |extra: &[(&str, Value)]| {
            let mut v = json!({ "attestation": att });
            for (k, x) in extra {
                v[*k] = x.clone();
            }
            body(&v)
        };
        let mut att_extra = att.clone();
        att_extra["extra"] = json!(1);
        let mut forged = st.attestation.clone();
        forged.signature = flip_last_hex(&forged.signature);
        let mut expired = st.attestation.clone();
        expired.expires_at = expired.session_time.saturating_sub(1);
        let mut tampered = st.attestation.clone();
        tampered.commitment = flip_last_hex(&tampered.commitment);
        let sid = st.submission.submission_id.clone();
        let ready = format!("/v1/submissions/{sid}/ready");
        let forged_receipts: Vec<Value> = (0..3)
            .map(|p| json!({"party": p, "receipt_json": "{}", "signature": "0".repeat(128)}))
            .collect();
        let status = |q: &str| get(format!("/v1/submissions/{sid}?{q}"));
        let admin = self.admin_token.clone();
        // A valid new study; each case spoils one thing. The `*_existing`
        // ones name the probe's own study: if the spoilt part were ignored,
        // the answer would be 409 `study_exists`, not a new study.
        let good = json!({
            "id": format!("{study}-x"),
            "name": "probe",
            "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
            "source": st.study.params.source,
            "release_interval_secs": 3600,
        });
        let create = |edits: &[(&str, Value)]| {
            let mut g = good.clone();
            for (k, v) in edits {
                g[*k] = v.clone();
            }
            post("/v1/studies", body(&g)).header(ADMIN_TOKEN_HEADER, &admin)
        };
        let existing = |k: &str, v: Value| create(&[("id", json!(study)), (k, v)]);
        let mut spec_extra = good["data_spec"].clone();
        spec_extra["unit"] = json!("ETH");
        let mut source_extra = good["source"].clone();
        source_extra["port"] = json!(443);
        let above_u64 = String::from_utf8(body(&good))
            .expect("JSON is UTF-8")
            .replacen('{', "{\"min_new\":18446744073709551616,", 1);
        let (pt, ct) = (self.party_token.clone(), self.coordinator_token.clone());
        let cases = vec![
            // Submissions.
            (
                "submit_malformed_json",
                post(&submit, "{\"attestation\": {"),
                MALFORMED,
            ),
            (
                "submit_wrong_types",
                post(&submit, body(&json!({"attestation": 5, "token": [1]}))),
                MALFORMED,
            ),
            (
                "submit_unknown_field",
                post(&submit, with_att(&[("extra", json!(true))])),
                MALFORMED,
            ),
            (
                "submit_unknown_field_in_attestation",
                post(&submit, body(&json!({ "attestation": att_extra }))),
                MALFORMED,
            ),
            ("submit_empty_body", post(&submit, Vec::new()), MALFORMED),
            (
                "submit_oversized",
                post(
                    &submit,
                    json_of_len("attestation", COORDINATOR_MAX_BODY + 1024),
                ),
                TOO_LARGE,
            ),
            (
                "submit_form_encoded",
                post(&submit, "attestation=x&token=y").header("content-type", FORM),
                MALFORMED,
            ),
            (
                "submit_token_out_of_form",
                post(&submit, with_att(&[("token", json!("NOT-HEX"))])),
                MALFORMED,
            ),
            (
                "submit_unknown_study",
                post("/v1/studies/no-such-study-probe/submissions", with_att(&[])),
                json_err(&[404], &["unknown_study"]),
            ),
            (
                "submit_study_id_out_of_form",
                post("/v1/studies/Not_A.Study/submissions", with_att(&[])),
                json_err(&[400, 404], &["malformed_body", "unknown_study"]),
            ),
            (
                "submit_replayed_attestation",
                post(&submit, with_att(&[])),
                REPLAYED,
            ),
            (
                "submit_replayed_with_other_token",
                post(&submit, with_att(&[("token", json!("a".repeat(64)))])),
                REPLAYED,
            ),
            (
                "submit_forged_signature",
                post(&submit, body(&json!({ "attestation": forged }))),
                json_err(&[422], &["attestation_invalid"]),
            ),
            (
                "submit_expired_attestation",
                post(&submit, body(&json!({ "attestation": expired }))),
                json_err(&[422], &["attestation_invalid", "attestation_expired"]),
            ),
            (
                "submit_tampered_commitment",
                post(&submit, body(&json!({ "attestation": tampered }))),
                json_err(&[422], &["attestation_invalid"]),
            ),
            // Ready and status: out of order, unauthenticated, malformed.
            (
                "ready_wrong_token",
                post(
                    &ready,
                    body(&json!({"token": "b".repeat(64), "receipts": []})),
                ),
                json_err(&[403], &["wrong_token"]),
            ),
            (
                "ready_without_receipts",
                post(
                    &ready,
                    body(&json!({"token": st.submission.token, "receipts": []})),
                ),
                json_err(&[400], &["bad_receipts"]),
            ),
            (
                "ready_forged_receipts",
                post(
                    &ready,
                    body(&json!({"token": st.submission.token, "receipts": forged_receipts})),
                ),
                json_err(&[400], &["bad_receipts"]),
            ),
            (
                "ready_unknown_submission",
                post(
                    format!("/v1/submissions/{UNKNOWN_ID}/ready"),
                    body(&json!({"token": st.submission.token, "receipts": []})),
                ),
                json_err(&[404], &["unknown_submission"]),
            ),
            (
                "ready_malformed_json",
                post(&ready, "{\"token\""),
                MALFORMED,
            ),
            (
                "ready_wrong_types",
                post(&ready, body(&json!({"token": 123}))),
                MALFORMED,
            ),
            (
                "ready_unknown_field",
                post(
                    &ready,
                    body(&json!({"token": "b".repeat(64), "shares": "sent"})),
                ),
                MALFORMED,
            ),
            ("ready_empty_body", post(&ready, Vec::new()), MALFORMED),
            (
                "ready_form_encoded",
                post(&ready, format!("token={}", "b".repeat(64))).header("content-type", FORM),
                MALFORMED,
            ),
            (
                "ready_oversized",
                post(&ready, json_of_len("token", COORDINATOR_MAX_BODY + 1024)),
                TOO_LARGE,
            ),
            (
                "status_unknown_submission",
                get(format!("/v1/submissions/{UNKNOWN_ID}")),
                json_err(&[404], &["unknown_submission"]),
            ),
            ("status_wait_ms_negative", status("wait_ms=-1"), MALFORMED),
            (
                "status_wait_ms_above_u64",
                status("wait_ms=18446744073709551616"),
                MALFORMED,
            ),
            (
                "status_wait_ms_not_a_number",
                status("wait_ms=soon"),
                MALFORMED,
            ),
            (
                "status_unknown_query_parameter",
                status("wait=1"),
                MALFORMED,
            ),
            // Studies.
            (
                "study_unknown",
                get("/v1/studies/no-such-study-probe"),
                json_err(&[404], &["unknown_study"]),
            ),
            (
                "study_id_very_long",
                get(format!("/v1/studies/{}", "a".repeat(LONG_URI))),
                json_err(&[400, 404, 414], &[]),
            ),
            (
                "study_id_invalid_utf8",
                get("/v1/studies/%FF%FE"),
                json_err(&[400, 404], &[]),
            ),
            (
                "create_study_no_admin_token",
                post("/v1/studies", body(&good)),
                UNAUTHORIZED,
            ),
            (
                "create_study_wrong_admin_token",
                post("/v1/studies", body(&good)).header(ADMIN_TOKEN_HEADER, "c".repeat(64)),
                UNAUTHORIZED,
            ),
            (
                "create_study_min_new_zero",
                create(&[("min_new", json!(0))]),
                INVALID_STUDY,
            ),
            (
                "create_study_threshold_u64_max",
                create(&[("min_cohort", json!(u64::MAX))]),
                INVALID_STUDY,
            ),
            (
                "create_study_threshold_above_u64",
                post("/v1/studies", above_u64).header(ADMIN_TOKEN_HEADER, &admin),
                MALFORMED,
            ),
            (
                "create_study_below_party_floor",
                create(&[("min_cohort", json!(2))]),
                json_err(&[400, 409], &["invalid_study", "below_threshold"]),
            ),
            (
                "create_study_empty_source",
                create(&[("source", json!({"server_name": ""}))]),
                INVALID_STUDY,
            ),
            (
                "create_study_empty_field_path",
                create(&[(
                    "data_spec",
                    json!({"field": "", "scale": 4, "account_field": "uid"}),
                )]),
                INVALID_STUDY,
            ),
            (
                "create_study_interval_zero",
                create(&[("release_interval_secs", json!(0))]),
                INVALID_STUDY,
            ),
            (
                "create_study_quantile_above_one",
                create(&[("stats", json!({"quantiles": [1.5], "histogram_bounds": []}))]),
                INVALID_STUDY,
            ),
            (
                "create_study_id_out_of_form",
                create(&[("id", json!("Probe Study!"))]),
                INVALID_STUDY,
            ),
            (
                "create_study_wrong_types",
                create(&[("min_cohort", json!("ten"))]),
                MALFORMED,
            ),
            (
                "create_study_unknown_field",
                create(&[("owner", json!("probe"))]),
                MALFORMED,
            ),
            (
                "create_study_unknown_field_in_data_spec",
                existing("data_spec", spec_extra),
                MALFORMED,
            ),
            (
                "create_study_unknown_field_in_source",
                existing("source", source_extra),
                MALFORMED,
            ),
            (
                "create_study_unknown_field_in_stats",
                existing(
                    "stats",
                    json!({"quantiles": [], "histogram_bounds": [], "histogram_bound": [1]}),
                ),
                MALFORMED,
            ),
            (
                "create_study_existing_id",
                existing("name", json!("probe again")),
                json_err(&[409], &["study_exists"]),
            ),
            (
                "create_study_oversized",
                post(
                    "/v1/studies",
                    json_of_len("name", COORDINATOR_MAX_BODY + 1024),
                )
                .header(ADMIN_TOKEN_HEADER, &admin),
                TOO_LARGE,
            ),
            // Operator and internal routes.
            (
                "internal_status_no_token",
                get("/internal/status"),
                UNAUTHORIZED,
            ),
            (
                "internal_status_party_token",
                get("/internal/status").header(ADMIN_TOKEN_HEADER, &pt),
                UNAUTHORIZED,
            ),
            (
                "internal_batch_no_token",
                get("/internal/batches/1"),
                UNAUTHORIZED,
            ),
            (
                "internal_batch_wrong_token",
                get("/internal/batches/1").header(INTERNAL_TOKEN_HEADER, "d".repeat(64)),
                UNAUTHORIZED,
            ),
            // The coordinator's own token is not the parties' one.
            (
                "internal_batch_coordinator_token",
                get("/internal/batches/1").header(INTERNAL_TOKEN_HEADER, &ct),
                UNAUTHORIZED,
            ),
            (
                "internal_batch_non_numeric",
                get("/internal/batches/first").header(INTERNAL_TOKEN_HEADER, &pt),
                MALFORMED,
            ),
            (
                "internal_batch_above_u64",
                get("/internal/batches/18446744073709551616").header(INTERNAL_TOKEN_HEADER, &pt),
                MALFORMED,
            ),
            // Routing.
            ("unknown_path", get("/v2/everything"), NOT_FOUND),
            (
                "wrong_method_delete_studies",
                method("DELETE", "/v1/studies"),
                NOT_ALLOWED,
            ),
            ("wrong_method_get_submissions", get(&submit), NOT_ALLOWED),
        ];
        self.run_all(Service::Coordinator, cases).await;
        self.protocol_cases(Service::Coordinator, "/v1/studies")
            .await;
    }

    /// Heads the service must refuse whole, on an HTTPS service; `path` is
    /// a route that exists (and answers 200 to a plain GET).
    async fn protocol_cases(&mut self, s: Service, path: &str) {
        let head = |extra: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
                .into_bytes()
        };
        let pad = |n: usize| format!("X-Probe-Padding: {}\r\n", "p".repeat(n));
        let fields = |n: usize| {
            (0..n)
                .map(|k| format!("X-Probe-{k}: p\r\n"))
                .collect::<String>()
        };
        let mut utf8 = b"GET /v1/studies/\xff\xfe HTTP/1.1\r\n".to_vec();
        utf8.extend_from_slice(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let cases: Vec<(&str, String, Vec<u8>, Expect)> = vec![
            // Above a sane head size, but within what hyper buffers: the
            // service itself can (and should) refuse it in its JSON shape.
            (
                "header_40_kib",
                format!("GET {path} [40 KiB header]"),
                head(&pad(40 * 1024)),
                json_err(&[431], &[]),
            ),
            (
                "headers_150",
                format!("GET {path} [150 header fields]"),
                head(&fields(150)),
                json_err(&[431], &[]),
            ),
            // Beyond what the HTTP layer holds: hyper's bare refusal.
            (
                "huge_header",
                format!("GET {path} [{} KiB header]", HUGE_HEADER / 1024),
                head(&pad(HUGE_HEADER)),
                Expect::Protocol(&[431, 400]),
            ),
            (
                "headers_300",
                format!("GET {path} [300 header fields]"),
                head(&fields(300)),
                Expect::Protocol(&[431, 400]),
            ),
            (
                "uri_above_http_limit",
                format!("GET /aaaa… ({HUGE_URI} B)"),
                format!(
                    "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    "a".repeat(HUGE_URI)
                )
                .into_bytes(),
                Expect::Protocol(&[414, 400, 431]),
            ),
            (
                "raw_invalid_utf8_in_path",
                "GET /v1/studies/\\xff\\xfe (raw bytes)".into(),
                utf8,
                Expect::Protocol(&[400]),
            ),
            (
                "garbage_request_line",
                "NOT HTTP AT ALL".into(),
                b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
                Expect::Protocol(&[400]),
            ),
        ];
        for (name, what, bytes, expect) in cases {
            self.raw_case(name, s, &what, vec![bytes], expect).await;
        }
    }

    async fn party_cases(&mut self, i: usize, st: &Setup) {
        let p = Service::Party(i);
        let (ct, pt) = (self.coordinator_token.clone(), self.party_token.clone());
        let upload = |edits: &[(&str, Value)]| {
            let mut v = json!({
                "submission_id": st.submission.submission_id,
                "token": "e".repeat(64),
                "value_bits": ["0".repeat(16), "0".repeat(16)],
                "blinder": ["0".repeat(64), "0".repeat(64)],
                "salts": ["0".repeat(64), "0".repeat(64)],
                "commitments": ["0".repeat(64), "0".repeat(64), "0".repeat(64)],
            });
            for (k, x) in edits {
                v[*k] = x.clone();
            }
            post("/v1/shares", body(&v))
        };
        let params = serde_json::to_value(&st.study.params).expect("serializes");
        let release = |no: u64, edits: &[(&str, Value)]| {
            let mut v = json!({
                "study": params, "release_no": no, "created_at": 0, "as_of_batch": 0,
            });
            for (k, x) in edits {
                v[*k] = x.clone();
            }
            post("/internal/releases", body(&v))
        };
        let mut stats_extra = params.clone();
        stats_extra["stats"]["histogram_bound"] = json!([1]);
        let prepare = body(&json!({"batch_id": 1, "study": params, "items": []}));
        let token = |r: Req, t: &str| r.header(INTERNAL_TOKEN_HEADER, t);
        let wrong = "f".repeat(64);
        let cases = vec![
            (
                "shares_malformed_json",
                post("/v1/shares", "{\"submission_id\": "),
                MALFORMED,
            ),
            (
                "shares_empty_body",
                post("/v1/shares", Vec::new()),
                MALFORMED,
            ),
            (
                "shares_wrong_types",
                upload(&[("value_bits", json!([1, 2]))]),
                MALFORMED,
            ),
            (
                "shares_unknown_field",
                upload(&[("party", json!(i))]),
                MALFORMED,
            ),
            (
                "shares_three_components",
                upload(&[("value_bits", json!(vec!["0".repeat(16); 3]))]),
                MALFORMED,
            ),
            (
                "shares_bad_value_bits",
                upload(&[("value_bits", json!(["zz", "0"]))]),
                BAD_SHARES,
            ),
            (
                "shares_non_canonical_blinder",
                upload(&[("blinder", json!(["f".repeat(64), "0".repeat(64)]))]),
                BAD_SHARES,
            ),
            (
                "shares_submission_id_out_of_form",
                upload(&[("submission_id", json!("../../etc/passwd"))]),
                BAD_SHARES,
            ),
            ("shares_commitment_not_opened", upload(&[]), BAD_SHARES),
            (
                "shares_token_out_of_form",
                upload(&[("token", json!("zz"))]),
                BAD_SHARES,
            ),
            (
                "shares_oversized",
                post(
                    "/v1/shares",
                    json_of_len("submission_id", PARTY_SHARES_MAX_BODY + 1024),
                ),
                TOO_LARGE,
            ),
            (
                "release_study_id_out_of_form",
                get("/v1/studies/NOT_VALID/release/latest"),
                MALFORMED,
            ),
            (
                "release_unknown_study",
                get("/v1/studies/no-such-study-probe/release/latest"),
                json_err(&[404], &["no_release"]),
            ),
            (
                "release_study_id_invalid_utf8",
                get("/v1/studies/%FF%FE/release/latest"),
                json_err(&[400], &[]),
            ),
            // Internal routes without the coordinator's token.
            (
                "internal_prepare_no_token",
                post("/internal/batches/prepare", prepare.clone()),
                UNAUTHORIZED,
            ),
            (
                "internal_prepare_party_token",
                token(post("/internal/batches/prepare", prepare.clone()), &pt),
                UNAUTHORIZED,
            ),
            (
                "internal_commit_wrong_token",
                token(post("/internal/batches/1/commit", Vec::new()), &wrong),
                UNAUTHORIZED,
            ),
            (
                "internal_abort_no_token",
                post("/internal/batches/1/abort", Vec::new()),
                UNAUTHORIZED,
            ),
            (
                "internal_release_wrong_token",
                token(release(1, &[]), &wrong),
                UNAUTHORIZED,
            ),
            (
                "internal_studies_no_token",
                post("/internal/studies", body(&params)),
                UNAUTHORIZED,
            ),
            (
                "internal_holdings_no_token",
                get("/internal/holdings"),
                UNAUTHORIZED,
            ),
            (
                "internal_holdings_party_token",
                token(get("/internal/holdings?limit=1"), &pt),
                UNAUTHORIZED,
            ),
            (
                "internal_oversized_no_token",
                post(
                    "/internal/batches/prepare",
                    json_of_len("items", PARTY_INTERNAL_MAX_BODY + 1024),
                ),
                json_err(&[401, 413], &["unauthorized", "payload_too_large"]),
            ),
            (
                "internal_commit_non_numeric_no_token",
                post("/internal/batches/first/commit", Vec::new()),
                json_err(&[400, 401], &[]),
            ),
            // With the coordinator's token: requests a party must refuse on
            // its own, none of which writes anything. (An abort of an
            // unknown batch would: it is recorded as aborted. Not sent.)
            (
                "internal_commit_non_numeric",
                token(post("/internal/batches/first/commit", Vec::new()), &ct),
                json_err(&[400], &[]),
            ),
            (
                "internal_commit_never_prepared",
                token(
                    post(format!("/internal/batches/{}/commit", i64::MAX), Vec::new()),
                    &ct,
                ),
                json_err(&[404], &["unknown_batch"]),
            ),
            (
                "internal_prepare_empty_batch",
                token(post("/internal/batches/prepare", prepare), &ct),
                MALFORMED,
            ),
            (
                "internal_release_out_of_order",
                token(release(7, &[]), &ct),
                json_err(&[409], &["wrong_state"]),
            ),
            (
                "internal_release_unknown_field",
                token(release(7, &[("force", json!(true))]), &ct),
                MALFORMED,
            ),
            (
                "internal_release_unknown_field_in_stats",
                token(release(7, &[("study", stats_extra)]), &ct),
                MALFORMED,
            ),
            // Routing.
            ("unknown_path", get("/v1/nothing"), NOT_FOUND),
            ("wrong_method_get_shares", get("/v1/shares"), NOT_ALLOWED),
            (
                "wrong_method_get_prepare",
                get("/internal/batches/prepare"),
                NOT_ALLOWED,
            ),
        ];
        self.run_all(p, cases).await;
        if i == 0 {
            self.protocol_cases(p, "/v1/info").await;
        }
    }

    /// Polls: bad ids, bodies, keys and attestations at the coordinator,
    /// bad share sets and missing credentials at the parties, bad ids at
    /// the API; nothing may change the probe's poll.
    async fn poll_cases(&mut self, st: &Setup) {
        let poll = st.poll;
        let admin = self.admin_token.clone();
        let key = triad_maci::Keypair::generate().public.to_string();
        let att = serde_json::to_value(&st.attestation).expect("serializes");
        let signup = |k: &str| body(&json!({ "attestation": att, "pub_key": k }));
        let hex64 = "ab".repeat(32);
        let cases = vec![
            (
                "poll_create_no_admin_token",
                post("/v1/polls", "{}"),
                json_err(&[401], &["unauthorized"]),
            ),
            (
                "poll_create_malformed",
                post("/v1/polls", "{oops").header(ADMIN_TOKEN_HEADER, &admin),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "poll_create_id_too_large",
                post(
                    "/v1/polls",
                    body(&json!({
                        "id": 1u64 << 50, "name": "x", "vote_options": 2, "mode": "linear",
                        "signup_deadline": u64::MAX, "voting_deadline": u64::MAX,
                        "voice_credits": 1,
                        "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
                        "source": st.study.params.source,
                    })),
                )
                .header(ADMIN_TOKEN_HEADER, &admin),
                json_err(&[400], &["invalid_poll"]),
            ),
            (
                "poll_id_not_a_number",
                get("/v1/polls/abc"),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "poll_id_above_u64",
                get("/v1/polls/18446744073709551616"),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "poll_unknown",
                get(format!("/v1/polls/{}", u64::MAX)),
                json_err(&[404], &["unknown_poll"]),
            ),
            (
                "poll_no_tally_yet",
                get(format!("/v1/polls/{poll}/tally")),
                json_err(&[404], &["no_tally"]),
            ),
            (
                "signup_malformed",
                post(format!("/v1/polls/{poll}/signups"), "{oops"),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "signup_bad_key",
                post(format!("/v1/polls/{poll}/signups"), signup("macipk.zz")),
                json_err(&[400], &["bad_key"]),
            ),
            (
                "signup_with_a_study_attestation",
                post(format!("/v1/polls/{poll}/signups"), signup(&key)),
                json_err(&[422], &["study_mismatch"]),
            ),
            (
                "signup_unknown_poll",
                post(format!("/v1/polls/{}/signups", u64::MAX), signup(&key)),
                json_err(&[404], &["unknown_poll"]),
            ),
            (
                "message_commitment_not_hex",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": ["zz", hex64, hex64] })),
                ),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "message_two_commitments",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": [hex64, hex64] })),
                ),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "message_unknown_poll",
                post(
                    format!("/v1/polls/{}/messages", u64::MAX),
                    body(&json!({ "commitments": [hex64, hex64, hex64] })),
                ),
                json_err(&[404], &["unknown_poll"]),
            ),
            (
                // The probe's poll is in its sign-up period.
                "rekey_before_signup_closes",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": [hex64, hex64, hex64],
                        "kind": {"type": "rekey", "new_key": key,
                                 "nullifier": format!("{}1", "0".repeat(63))} })),
                ),
                json_err(&[403], &["signup_open"]),
            ),
            (
                "rekey_bad_new_key",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": [hex64, hex64, hex64],
                        "kind": {"type": "rekey", "new_key": "macipk.zz", "nullifier": hex64} })),
                ),
                json_err(&[400], &["bad_key"]),
            ),
            (
                "rekey_nullifier_not_a_field_element",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": [hex64, hex64, hex64],
                        "kind": {"type": "rekey", "new_key": key, "nullifier": "f".repeat(64)} })),
                ),
                json_err(&[400], &["bad_key"]),
            ),
            (
                "message_unknown_kind",
                post(
                    format!("/v1/polls/{poll}/messages"),
                    body(&json!({ "commitments": [hex64, hex64, hex64],
                        "kind": {"type": "abstain"} })),
                ),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "ready_unknown_message",
                post(
                    format!("/v1/poll-messages/{}/ready", "0".repeat(32)),
                    body(&json!({ "token": hex64 })),
                ),
                json_err(&[404], &["unknown_submission"]),
            ),
        ];
        self.run_all(Service::Coordinator, cases).await;
        let shares = |words: usize| {
            body(&json!({
                "submission_id": "0".repeat(32), "token": hex64, "salts": [hex64, hex64],
                "words": [vec![0u64; words], vec![0u64; 21]],
                "fr": [vec!["0".repeat(64); 5], vec!["0".repeat(64); 5]],
            }))
        };
        for i in 0..3 {
            let cases = vec![
                (
                    "poll_shares_malformed",
                    post(format!("/v1/polls/{poll}/shares"), "{oops"),
                    json_err(&[400], &["malformed_body"]),
                ),
                (
                    "poll_shares_wrong_length",
                    post(format!("/v1/polls/{poll}/shares"), shares(20)),
                    json_err(&[400], &["bad_shares"]),
                ),
                (
                    "poll_shares_short_salt",
                    post(
                        format!("/v1/polls/{poll}/shares"),
                        body(&json!({
                            "submission_id": "0".repeat(32), "token": hex64, "salts": [hex64, "00"],
                            "words": [vec![0u64; 21], vec![0u64; 21]],
                            "fr": [vec!["0".repeat(64); 5], vec!["0".repeat(64); 5]],
                        })),
                    ),
                    json_err(&[400], &["bad_shares"]),
                ),
                (
                    "poll_shares_rekey_with_vote_words",
                    post(
                        format!("/v1/polls/{poll}/shares"),
                        body(&json!({
                            "submission_id": "0".repeat(32), "token": hex64, "salts": [hex64, hex64],
                            "words": [vec![1u64; 21], vec![0u64; 21]],
                            "fr": [vec!["0".repeat(64); 5], vec!["0".repeat(64); 5]],
                            "kind": {"type": "rekey", "new_key": key, "nullifier": hex64},
                            "c_bits": [vec![0u64; 4], vec![0u64; 4]],
                        })),
                    ),
                    json_err(&[400], &["bad_shares"]),
                ),
                (
                    "poll_shares_short_c_bits",
                    post(
                        format!("/v1/polls/{poll}/shares"),
                        body(&json!({
                            "submission_id": "0".repeat(32), "token": hex64, "salts": [hex64, hex64],
                            "words": [vec![0u64; 21], vec![0u64; 21]],
                            "fr": [vec!["0".repeat(64); 5], vec!["0".repeat(64); 5]],
                            "kind": {"type": "deactivate"},
                            "c_bits": [vec![0u64; 3], vec![0u64; 4]],
                        })),
                    ),
                    json_err(&[400], &["bad_shares"]),
                ),
                (
                    "poll_shares_unknown_poll",
                    post(format!("/v1/polls/{}/shares", u64::MAX), shares(21)),
                    json_err(&[404], &["unknown_poll"]),
                ),
                (
                    "poll_pin_no_token",
                    post("/internal/polls", "{}"),
                    json_err(&[401], &["unauthorized"]),
                ),
                (
                    "poll_tally_no_token",
                    post(format!("/internal/polls/{poll}/tally"), "{}"),
                    json_err(&[401], &["unauthorized"]),
                ),
                (
                    "poll_tally_not_signed_yet",
                    get(format!("/v1/polls/{poll}/tally")),
                    json_err(&[404], &["no_tally"]),
                ),
            ];
            self.run_all(Service::Party(i), cases).await;
        }
        let cases = vec![
            (
                "api_poll_id_not_a_number",
                get("/v1/polls/abc/tally"),
                json_err(&[400], &["malformed_body"]),
            ),
            (
                "api_poll_unknown",
                get(format!("/v1/polls/{}/tally", u64::MAX)),
                json_err(&[404], &["unknown_poll"]),
            ),
        ];
        self.run_all(Service::Api, cases).await;
    }

    async fn api_cases(&mut self) {
        let cases = vec![
            (
                "latest_unknown_study",
                get("/v1/studies/no-such-study-probe/release/latest"),
                json_err(&[404], &["unknown_study"]),
            ),
            (
                "history_unknown_study",
                get("/v1/studies/no-such-study-probe/releases"),
                json_err(&[404], &["unknown_study"]),
            ),
            (
                "latest_study_id_out_of_form",
                get("/v1/studies/NOT_VALID!/release/latest"),
                json_err(&[400, 404], &[]),
            ),
            (
                "latest_study_id_very_long",
                get(format!(
                    "/v1/studies/{}/release/latest",
                    "a".repeat(LONG_URI)
                )),
                json_err(&[400, 404, 414], &[]),
            ),
            (
                "latest_study_id_invalid_utf8",
                get("/v1/studies/%FF%FE/release/latest"),
                json_err(&[400, 404], &[]),
            ),
            ("unknown_path", get("/v2/anything"), NOT_FOUND),
            (
                "wrong_method_post_studies",
                post("/v1/studies", "{}"),
                NOT_ALLOWED,
            ),
            (
                "wrong_method_delete_release",
                method("DELETE", "/v1/studies/x/release/latest"),
                NOT_ALLOWED,
            ),
        ];
        self.run_all(Service::Api, cases).await;
        self.protocol_cases(Service::Api, "/v1/studies").await;
    }

    async fn notary_cases(&mut self) {
        let attest = |edits: &[(&str, Value)]| post("/v1/attest", attest_body(UNKNOWN_ID, edits));
        let cases = vec![
            (
                "attest_malformed_json",
                post("/v1/attest", "{oops"),
                MALFORMED,
            ),
            (
                "attest_empty_body",
                post("/v1/attest", Vec::new()),
                MALFORMED,
            ),
            (
                "attest_bad_hex_key",
                attest(&[("server_key", json!("zz"))]),
                MALFORMED,
            ),
            (
                "attest_bad_hex_iv",
                attest(&[("server_iv", json!("0g"))]),
                MALFORMED,
            ),
            (
                "attest_bad_blinder",
                attest(&[("blinder", json!("f".repeat(64)))]),
                MALFORMED,
            ),
            (
                "attest_session_id_out_of_form",
                attest(&[("session_id", json!("XYZ"))]),
                MALFORMED,
            ),
            (
                "attest_wrong_types",
                attest(&[("expected_value", json!("lots"))]),
                MALFORMED,
            ),
            (
                "attest_unknown_field",
                attest(&[("value", json!(1))]),
                MALFORMED,
            ),
            (
                "attest_unknown_field_in_data_spec",
                attest(&[(
                    "data_spec",
                    json!({"field": "a", "scale": 0, "account_field": "uid", "x": 1}),
                )]),
                MALFORMED,
            ),
            (
                "attest_unknown_session",
                attest(&[]),
                json_err(&[404], &["unknown_session"]),
            ),
            (
                "attest_oversized",
                post(
                    "/v1/attest",
                    json_of_len("session_id", NOTARY_MAX_BODY + 1024),
                ),
                TOO_LARGE,
            ),
            ("wrong_method_get_attest", get("/v1/attest"), NOT_ALLOWED),
            (
                "wrong_method_delete_info",
                method("DELETE", "/v1/info"),
                NOT_ALLOWED,
            ),
            ("unknown_path", get("/v2/keys"), NOT_FOUND),
        ];
        self.run_all(Service::Notary, cases).await;
        // Heads, framing and encodings: the same HTTP layer as every service.
        self.protocol_cases(Service::Notary, "/v1/info").await;
    }

    async fn proxy_cases(&mut self) {
        let px = Service::Proxy;
        let ds_port = self
            .net
            .datasource
            .as_ref()
            .and_then(|d| addr_of(d.url.split("/api").next().unwrap_or(&d.url)).ok())
            .map_or(443, |a| a.port());
        // After the preamble: bytes that any relayed target would answer.
        let after = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
        let sid = || format!("{:032x}", rand::random::<u128>());
        let hello = vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "preamble_wrong_version",
                format!("TRIAD-PROXY/2 {} 127.0.0.1 {ds_port}\n", sid()).into(),
            ),
            (
                "preamble_uppercase_session_id",
                format!(
                    "TRIAD-PROXY/1 {} 127.0.0.1 {ds_port}\n",
                    sid().to_uppercase()
                )
                .into(),
            ),
            (
                "preamble_short_session_id",
                format!("TRIAD-PROXY/1 abc 127.0.0.1 {ds_port}\n").into(),
            ),
            (
                "preamble_port_zero",
                format!("TRIAD-PROXY/1 {} 127.0.0.1 0\n", sid()).into(),
            ),
            (
                "preamble_port_above_u16",
                format!("TRIAD-PROXY/1 {} 127.0.0.1 65536\n", sid()).into(),
            ),
            (
                "preamble_extra_field",
                format!("TRIAD-PROXY/1 {} 127.0.0.1 {ds_port} x\n", sid()).into(),
            ),
            (
                "preamble_bad_host",
                format!("TRIAD-PROXY/1 {} 127.0.0.1/x {ds_port}\n", sid()).into(),
            ),
            ("preamble_overlong", "P".repeat(400).into()),
            (
                "preamble_invalid_utf8",
                b"TRIAD-PROXY/1 \xff\xfe 127.0.0.1 1\n".to_vec(),
            ),
            ("http_instead_of_preamble", b"GET / HTTP/1.1\r\n".to_vec()),
            ("tls_without_preamble", hello),
        ];
        for (name, preamble) in cases {
            let what = printable(&preamble, 48);
            let got = self
                .raw(
                    px,
                    vec![preamble, after.clone()],
                    Duration::from_millis(50),
                    RAW_WAIT,
                )
                .await;
            self.record(name, px, what, Expect::Closed(&[]), got);
        }
        // Well-formed preambles for targets the notary must not relay to:
        // the coordinator (not on the allow-list) and the notary's own API.
        // The notary's API then says why, once: the session is used up.
        let targets = [
            ("refused_target_coordinator", addr_of(&self.net.coordinator)),
            ("refused_target_notary_api", addr_of(&self.net.notary)),
        ];
        for (name, target) in targets {
            let target = match target {
                Ok(t) => t,
                Err(e) => {
                    self.record(
                        name,
                        px,
                        "preamble".into(),
                        Expect::Closed(&[]),
                        Got::Error(e.to_string()),
                    );
                    continue;
                }
            };
            let id = sid();
            let preamble = format!("TRIAD-PROXY/1 {id} {} {}\n", target.ip(), target.port());
            let got = self
                .raw(
                    px,
                    vec![preamble.into_bytes(), after.clone()],
                    Duration::from_millis(50),
                    RAW_WAIT,
                )
                .await;
            self.record(
                name,
                px,
                format!("preamble to {target}"),
                Expect::Closed(&[]),
                got,
            );
            let req = || post("/v1/attest", attest_body(&id, &[]));
            self.http(
                &format!("attest_{name}"),
                Service::Notary,
                req(),
                json_err(&[403], &["target_refused"]),
            )
            .await;
            self.http(
                &format!("attest_{name}_again"),
                Service::Notary,
                req(),
                json_err(&[404], &["unknown_session"]),
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
            Service::Party(0),
            "slow_body",
            "POST /v1/shares, Content-Length 100, 2 bytes sent",
            Some(
                b"POST /v1/shares HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\""
                    .to_vec(),
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
        // TCP connections that never start TLS (the handshake deadline).
        for s in [
            Service::Coordinator,
            Service::Party(0),
            Service::Api,
            Service::Notary,
        ] {
            jobs.push((s, "silent_tcp_no_tls", "connect, no TLS handshake", None));
        }
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

/// A `POST /v1/attest` body for session `id`, with `edits`.
fn attest_body(id: &str, edits: &[(&str, Value)]) -> Vec<u8> {
    let mut v = json!({
        "session_id": id,
        "server_key": "00".repeat(16),
        "server_iv": "00".repeat(4),
        "blinder": "0".repeat(64),
        "study_id": "probe",
        "data_spec": {"field": "balances.ETH", "scale": 4, "account_field": "uid"},
        "expected_value": 0,
    });
    for (k, x) in edits {
        v[*k] = x.clone();
    }
    body(&v)
}

/// `bytes` as a short printable string.
fn printable(bytes: &[u8], max: usize) -> String {
    let s: String = String::from_utf8_lossy(bytes).escape_debug().collect();
    if s.chars().count() > max {
        s.chars().take(max - 3).collect::<String>() + "..."
    } else {
        s
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
    let keys: std::collections::BTreeSet<&u64> =
        before.polls.keys().chain(after.polls.keys()).collect();
    for k in keys {
        let (b, a) = (before.polls.get(k), after.polls.get(k));
        if b != a {
            out.push(format!(
                "poll {k}: {b:?} -> {a:?} (sign-ups, messages, tallied)"
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
        // The summary line says what failed; no error chain (or backtrace)
        // to add to it.
        eprintln!(
            "triad probe: {} of {} cases not refused cleanly, {} server errors, {} restarts, state {}",
            summary.cases - summary.refused_cleanly,
            summary.cases,
            summary.server_errors,
            summary.restarts,
            if summary.state_changed { "changed" } else { "unchanged" }
        );
        std::process::exit(1);
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
    let notary_info = triad_notary::NotaryClient::new(&net.notary, &ca)
        .map_err(|e| anyhow::anyhow!("notary: {e}"))?
        .info()
        .await
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
    p.poll_cases(&setup).await;
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
