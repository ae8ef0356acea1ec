//! The notary service: the recording proxy plus a minimal HTTP/1.1 JSON API
//! (one request per connection, `Connection: close`):
//!
//! - `GET /v1/info` → `{"public_key": hex, "key_id": hex, "proxy": "host:port"}`
//! - `POST /v1/attest` with [`AttestApiRequest`] → the signed [`Attestation`],
//!   or `{"error": "..."}` with 400 (malformed), 403 (the proxy refused the
//!   session's target: not on the allow-list, a special-purpose address or
//!   the notary itself), 404 (unknown session), 413 (body too large), 422
//!   (refused: the check failed).
//!
//! The API never logs or stores requests: what the notary holds is the
//! recorded ciphertext, the disclosed rx key and the response it decrypts.
//! [`ApiClient`] is the prover's blocking client of this API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};
use tokio::task::JoinHandle;
use triad_crypto::{fr_from_hex, fr_to_hex};

use crate::attestation::{Attestation, NotaryPublicKey, NotarySigningKey};
use crate::notarize::{attest_session, AttestationRequest};
use crate::prover::{
    new_session_id, prove_in_session, prover_client_config, Opening, ProveError, ProveTarget,
};
use crate::proxy::{launch_proxy_guarding, ProxyConfig, ProxyHandle, SessionOutcome};
use crate::spec::DataSpec;
use crate::target::AllowedTarget;
use crate::transcript::{root_store, ServerKeyDisclosure};

/// File names in the notary's data directory.
pub const NOTARY_KEY_FILE: &str = "notary.key";
pub const NOTARY_INFO_FILE: &str = "notary.json";

/// Limits of the API.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub max_head: usize,
    pub max_body: usize,
    /// Reading one request.
    pub read_timeout: Duration,
    /// How long `/v1/attest` waits for a session the proxy is still
    /// relaying (an id the proxy has not seen is answered at once).
    pub session_wait: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_head: 8 * 1024,
            max_body: 64 * 1024,
            read_timeout: Duration::from_secs(10),
            session_wait: Duration::from_secs(5),
        }
    }
}

/// Everything the service needs.
pub struct NotaryServiceConfig {
    pub key: NotarySigningKey,
    pub roots: Arc<RootCertStore>,
    /// Attestation lifetime from the session time.
    pub ttl_secs: u64,
    pub proxy: ProxyConfig,
    pub api: ApiLimits,
}

/// `POST /v1/attest` body.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestApiRequest {
    /// The id sent in the proxy preamble (32 lowercase hex).
    pub session_id: String,
    /// Server→client write key, hex (16 or 32 bytes).
    pub server_key: String,
    /// Server→client IV, hex (4 or 12 bytes).
    pub server_iv: String,
    /// The provider's blinder, 64 hex (BN254 scalar).
    pub blinder: String,
    pub study_id: String,
    pub data_spec: DataSpec,
    /// The fixed-point value the prover read.
    pub expected_value: i64,
}

impl std::fmt::Debug for AttestApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestApiRequest({}, redacted)", self.session_id)
    }
}

/// `GET /v1/info` body and the `notary.json` file (plus `url` there).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotaryInfo {
    /// The API's base URL, `http://host:port` (in `notary.json`; the API
    /// itself does not know its external name and omits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The proxy endpoint, `host:port`.
    pub proxy: String,
    /// ed25519 public key, 64 hex.
    pub public_key: String,
    pub key_id: String,
}

/// A running notary.
pub struct NotaryService {
    pub api_addr: SocketAddr,
    pub proxy_addr: SocketAddr,
    pub public_key: NotaryPublicKey,
    proxy: Arc<ProxyHandle>,
    task: JoinHandle<()>,
}

impl NotaryService {
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn info(&self) -> NotaryInfo {
        NotaryInfo {
            url: Some(self.url()),
            proxy: self.proxy_addr.to_string(),
            public_key: self.public_key.to_hex(),
            key_id: self.public_key.key_id(),
        }
    }

    /// Stops the API and the proxy.
    pub fn shutdown(self) {
        self.task.abort();
        if let Ok(p) = Arc::try_unwrap(self.proxy) {
            p.shutdown();
        }
    }
}

struct State {
    key: NotarySigningKey,
    roots: Arc<RootCertStore>,
    ttl_secs: u64,
    api: ApiLimits,
    proxy: Arc<ProxyHandle>,
    info: String,
}

/// Starts the proxy on `proxy_listener` and the API on `api_listener`.
/// Must run inside a tokio runtime.
pub fn launch_notary(
    api_listener: TcpListener,
    proxy_listener: TcpListener,
    cfg: NotaryServiceConfig,
) -> std::io::Result<NotaryService> {
    let api_addr = api_listener.local_addr()?;
    // The proxy never relays to the API (nor to itself).
    let proxy = Arc::new(launch_proxy_guarding(
        proxy_listener,
        cfg.proxy,
        &[api_addr],
    )?);
    let proxy_addr = proxy.addr;
    let public_key = cfg.key.public_key();
    let info = serde_json::to_string(&NotaryInfo {
        url: None,
        proxy: proxy_addr.to_string(),
        public_key: public_key.to_hex(),
        key_id: public_key.key_id(),
    })
    .map_err(std::io::Error::other)?;
    let state = Arc::new(State {
        key: cfg.key,
        roots: cfg.roots,
        ttl_secs: cfg.ttl_secs,
        api: cfg.api,
        proxy: proxy.clone(),
        info,
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = api_listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let st = state.clone();
            tokio::spawn(async move {
                let _ = handle(sock, st).await;
            });
        }
    });
    Ok(NotaryService {
        api_addr,
        proxy_addr,
        public_key,
        proxy,
        task,
    })
}

fn error_body(msg: &str) -> String {
    json!({ "error": msg }).to_string()
}

async fn write_response(sock: &mut AsyncTcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

enum Parsed {
    Request {
        method: String,
        path: String,
        body: Vec<u8>,
    },
    Error(u16, &'static str),
}

/// A parsed request head: request line and the one header the API reads.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub content_length: usize,
}

/// Parses a request head (the bytes before the blank line, without it):
/// request line, then `Name: value` headers; `Content-Length` is the only
/// one read and `Transfer-Encoding` is refused. Errors carry the status to
/// answer. Pure; public for the fuzz targets only.
#[doc(hidden)]
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, (u16, &'static str)> {
    let Ok(head) = std::str::from_utf8(head) else {
        return Err((400, "request head is not UTF-8"));
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, path, version) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or(""),
    );
    if method.is_empty() || !path.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err((400, "malformed request line"));
    }
    let mut content_length: usize = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err((400, "malformed header line"));
        };
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.trim().parse() else {
                return Err((400, "malformed content-length"));
            };
            content_length = n;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((400, "transfer-encoding is not supported"));
        }
    }
    Ok(RequestHead {
        method,
        path,
        content_length,
    })
}

async fn read_request(sock: &mut AsyncTcpStream, lim: &ApiLimits) -> std::io::Result<Parsed> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // The whole head may arrive in one read: its size is checked
            // where it ends, not only while it is incomplete.
            if i + 4 > lim.max_head {
                return Ok(Parsed::Error(431, "request head too large"));
            }
            break i;
        }
        if buf.len() > lim.max_head {
            return Ok(Parsed::Error(431, "request head too large"));
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Parsed::Error(400, "incomplete request head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let RequestHead {
        method,
        path,
        content_length: length,
    } = match parse_request_head(&buf[..head_end]) {
        Ok(h) => h,
        Err((status, msg)) => return Ok(Parsed::Error(status, msg)),
    };
    if length > lim.max_body {
        return Ok(Parsed::Error(413, "request body too large"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Parsed::Error(
                400,
                "request body shorter than content-length",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if body.len() > length {
        return Ok(Parsed::Error(400, "data after the request body"));
    }
    Ok(Parsed::Request { method, path, body })
}

async fn handle(mut sock: AsyncTcpStream, st: Arc<State>) -> std::io::Result<()> {
    let parsed =
        match tokio::time::timeout(st.api.read_timeout, read_request(&mut sock, &st.api)).await {
            Err(_) => return write_response(&mut sock, 408, &error_body("request timeout")).await,
            Ok(r) => r?,
        };
    let (status, body) = match parsed {
        Parsed::Error(s, m) => (s, error_body(m)),
        Parsed::Request { method, path, body } => match (method.as_str(), path.as_str()) {
            ("GET", "/v1/info") => (200, st.info.clone()),
            ("POST", "/v1/attest") => attest(&st, &body).await,
            (_, "/v1/info" | "/v1/attest") => (405, error_body("method not allowed")),
            _ => (404, error_body("no such endpoint")),
        },
    };
    write_response(&mut sock, status, &body).await
}

/// Decodes a `POST /v1/attest` body. Public for the fuzz targets only.
#[doc(hidden)]
pub fn parse_attest(
    body: &[u8],
) -> Result<(AttestApiRequest, ServerKeyDisclosure, AttestationRequest), String> {
    let req: AttestApiRequest =
        serde_json::from_slice(body).map_err(|e| format!("malformed request JSON: {e}"))?;
    let sid_ok = req.session_id.len() == 32
        && req
            .session_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !sid_ok {
        return Err("session_id must be 32 lowercase hex digits".into());
    }
    let key = hex::decode(&req.server_key).map_err(|_| "server_key is not hex".to_string())?;
    let iv = hex::decode(&req.server_iv).map_err(|_| "server_iv is not hex".to_string())?;
    let blinder = fr_from_hex(&req.blinder)
        .map_err(|_| "blinder must be 64 hex digits of a canonical BN254 scalar".to_string())?;
    let ar = AttestationRequest {
        study_id: req.study_id.clone(),
        data_spec: req.data_spec.clone(),
        blinder,
        expected_value: req.expected_value,
    };
    Ok((req, ServerKeyDisclosure { key, iv }, ar))
}

async fn attest(st: &Arc<State>, body: &[u8]) -> (u16, String) {
    let (req, disclosure, ar) = match parse_attest(body) {
        Ok(x) => x,
        Err(m) => return (400, error_body(&m)),
    };
    let Some(outcome) = st
        .proxy
        .wait_session(&req.session_id, st.api.session_wait)
        .await
    else {
        return (
            404,
            error_body("unknown session id (never proxied, already used, or not finished)"),
        );
    };
    let session = match outcome {
        SessionOutcome::Complete(s) => s,
        SessionOutcome::TranscriptTooLarge => {
            return (
                422,
                error_body("session exceeded the transcript size limit"),
            )
        }
        SessionOutcome::TimedOut => return (422, error_body("session exceeded the time limit")),
        SessionOutcome::ConnectFailed => {
            return (
                422,
                error_body("the notary could not connect to the server"),
            )
        }
        SessionOutcome::TargetRefused(r) => {
            return (403, error_body(&format!("{REFUSED_PREFIX}{r}")))
        }
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        attest_session(
            &st2.key,
            st2.roots.clone(),
            &session,
            &disclosure,
            &ar,
            st2.ttl_secs,
        )
    })
    .await;
    match res {
        Ok(Ok(att)) => (200, att.to_json()),
        Ok(Err(e)) => (422, error_body(&e.to_string())),
        Err(_) => (500, error_body("internal error")),
    }
}

/// How a 403 of `/v1/attest` starts: the proxy refused the session's target.
const REFUSED_PREFIX: &str = "the notary does not relay to this target: ";

/// The prover's blocking client of the notary API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    host: String,
    timeout: Duration,
}

impl ApiClient {
    /// `url` is `http://host:port` (a trailing `/` is accepted).
    pub fn new(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("notary URL {url:?} must start with http://"))?
            .trim_end_matches('/');
        if rest.contains('/') || rest.is_empty() {
            return Err(format!("notary URL {url:?} must be http://host:port"));
        }
        let addr = rest
            .to_socket_addrs()
            .map_err(|e| format!("notary URL {url:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("notary URL {url:?} does not resolve"))?;
        Ok(Self {
            addr,
            host: rest.to_string(),
            timeout: Duration::from_secs(30),
        })
    }

    /// One request; returns (status, body).
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let e = |x: std::io::Error| format!("notary API {}: {x}", self.addr);
        let mut s = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(e)?;
        s.set_read_timeout(Some(self.timeout)).map_err(e)?;
        s.set_write_timeout(Some(self.timeout)).map_err(e)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        s.write_all(&req).map_err(e)?;
        let mut resp = Vec::new();
        s.take(4 << 20).read_to_end(&mut resp).map_err(e)?;
        let end = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("notary API: incomplete response")?;
        let head = String::from_utf8_lossy(&resp[..end]);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("notary API: malformed status line")?;
        Ok((status, resp[end + 4..].to_vec()))
    }

    pub fn info(&self) -> Result<NotaryInfo, String> {
        let (status, body) = self.call("GET", "/v1/info", b"")?;
        if status != 200 {
            return Err(api_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| format!("notary info: {e}"))
    }

    /// Sends the disclosure; returns the attestation or the notary's error.
    pub fn attest(
        &self,
        session_id: &str,
        disclosure: &ServerKeyDisclosure,
        request: &AttestationRequest,
    ) -> Result<Attestation, String> {
        let body = serde_json::to_vec(&AttestApiRequest {
            session_id: session_id.to_string(),
            server_key: hex::encode(&disclosure.key),
            server_iv: hex::encode(&disclosure.iv),
            blinder: fr_to_hex(&request.blinder),
            study_id: request.study_id.clone(),
            data_spec: request.data_spec.clone(),
            expected_value: request.expected_value,
        })
        .map_err(|e| e.to_string())?;
        let (status, body) = self.call("POST", "/v1/attest", &body)?;
        if status != 200 {
            return Err(api_error(status, &body));
        }
        let text = String::from_utf8(body).map_err(|_| "attestation is not UTF-8".to_string())?;
        Attestation::from_json(&text).map_err(|e| format!("notary returned a bad attestation: {e}"))
    }

    /// After a session that broke off (the proxy closes the connection at
    /// once when it refuses the target), asks the notary why: claims the
    /// session with a null disclosure (nothing secret) and returns the
    /// notary's message if it answers 403, the proxy's refusal of the target.
    /// The session is consumed either way; it was of no use anymore.
    pub fn target_refusal(&self, session_id: &str) -> Option<String> {
        let request = AttestationRequest {
            study_id: "-".into(),
            data_spec: DataSpec {
                field: "-".into(),
                scale: 0,
                account_field: "-".into(),
            },
            blinder: triad_crypto::Fr::from(0u64),
            expected_value: 0,
        };
        let null = ServerKeyDisclosure {
            key: vec![0; 16],
            iv: vec![0; 4],
        };
        match self.attest(session_id, &null, &request) {
            Err(e) if e.starts_with("HTTP 403: ") => Some(e["HTTP 403: ".len()..].to_string()),
            _ => None,
        }
    }
}

fn api_error(status: u16, body: &[u8]) -> String {
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    format!("HTTP {status}: {msg}")
}

/// The prover end to end against a notary API: asks `/v1/info` for the
/// proxy and key, runs [`prove`] with the disclosure sent over the API.
/// Returns the attestation, the opening and the notary's public key (the
/// caller verifies with its own trusted keys).
pub fn prove_with_notary(
    notary_url: &str,
    target: &ProveTarget,
    extra_ca_pem: Option<&[u8]>,
    study_id: &str,
    data_spec: &DataSpec,
) -> Result<(Attestation, Opening, NotaryPublicKey), ProveError> {
    let api = ApiClient::new(notary_url).map_err(ProveError::Setup)?;
    let info = api.info().map_err(ProveError::Setup)?;
    let pk = NotaryPublicKey::from_hex(&info.public_key)
        .map_err(|e| ProveError::Setup(format!("notary public key: {e}")))?;
    let proxy = info
        .proxy
        .to_socket_addrs()
        .map_err(|e| ProveError::Setup(format!("notary proxy {:?}: {e}", info.proxy)))?
        .next()
        .ok_or_else(|| ProveError::Setup("notary proxy does not resolve".into()))?;
    let client = prover_client_config(extra_ca_pem, true)?;
    let sid = new_session_id()?;
    let proved = prove_in_session(
        proxy,
        &sid,
        target,
        client,
        study_id,
        data_spec,
        |s, d, r| api.attest(s, d, r),
    );
    let (att, opening) = match proved {
        // The proxy closes the connection of a refused target at once, so the
        // TLS session just breaks; the notary's API says why.
        Err(ProveError::Session(e)) => {
            return Err(match api.target_refusal(&sid) {
                Some(why) => ProveError::TargetRefused(why),
                None => ProveError::Session(e),
            })
        }
        r => r?,
    };
    Ok((att, opening, pk))
}

/// `triad notary`: loads or creates the key in `data_dir`, trusts the
/// platform roots plus `trust_ca`, listens on 127.0.0.1 (API and proxy, port
/// 0 unless given), relays only to `allowed_targets` (see
/// [`ProxyConfig::allowed_targets`]), writes `notary.json` once ready and
/// serves until killed.
pub fn run_notary_blocking(
    data_dir: &Path,
    trust_ca: Option<&Path>,
    api_listen: &str,
    proxy_listen: &str,
    allowed_targets: Vec<AllowedTarget>,
    ready: impl FnOnce(&NotaryInfo),
) -> Result<(), String> {
    triad_files::private_dir(data_dir).map_err(|e| e.to_string())?;
    triad_files::check_private(data_dir, 2).map_err(|e| e.to_string())?;
    let key = NotarySigningKey::load_or_create(&data_dir.join(NOTARY_KEY_FILE))
        .map_err(|e| format!("notary key: {e}"))?;
    let extra = match trust_ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let roots = root_store(extra.as_deref(), true).map_err(|e| format!("trust roots: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let api = TcpListener::bind(api_listen)
            .await
            .map_err(|e| format!("API listen {api_listen}: {e}"))?;
        let px = TcpListener::bind(proxy_listen)
            .await
            .map_err(|e| format!("proxy listen {proxy_listen}: {e}"))?;
        let svc = launch_notary(
            api,
            px,
            NotaryServiceConfig {
                key,
                roots: Arc::new(roots),
                ttl_secs: 24 * 3600,
                proxy: ProxyConfig {
                    allowed_targets,
                    ..ProxyConfig::default()
                },
                api: ApiLimits::default(),
            },
        )
        .map_err(|e| e.to_string())?;
        let info = svc.info();
        write_info(data_dir, &info)?;
        ready(&info);
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn write_info(dir: &Path, info: &NotaryInfo) -> Result<(), String> {
    let path: PathBuf = dir.join(NOTARY_INFO_FILE);
    let text = serde_json::to_string_pretty(info).map_err(|e| e.to_string())?;
    triad_files::write_private(&path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Writes `attestation.json` and `opening.json` (mode 0600) into `out`.
pub fn write_attestation_files(
    out: &Path,
    att: &Attestation,
    opening: &Opening,
) -> Result<(), String> {
    triad_files::private_dir(out).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(opening).map_err(|e| e.to_string())?;
    triad_files::write_private(&out.join("attestation.json"), att.to_json().as_bytes())
        .and_then(|()| triad_files::write_private(&out.join("opening.json"), text.as_bytes()))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn raw(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = AsyncTcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn service() -> NotaryService {
        launch_notary(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            NotaryServiceConfig {
                key: NotarySigningKey::from_seed([1; 32]),
                roots: Arc::new(root_store(None, true).unwrap()),
                ttl_secs: 60,
                proxy: ProxyConfig::default(),
                api: ApiLimits {
                    session_wait: Duration::from_millis(50),
                    ..ApiLimits::default()
                },
            },
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn api_errors_are_specific_json() {
        let svc = service().await;
        let a = svc.api_addr;
        let info = raw(a, b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(info.starts_with("HTTP/1.1 200"), "{info}");
        assert!(info.contains(&svc.public_key.to_hex()));
        assert!(info.contains(&svc.proxy_addr.to_string()));

        let big = format!(
            "POST /v1/attest HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        );
        let r = raw(a, big.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        assert!(r.contains(r#""error":"request body too large""#), "{r}");

        let r = raw(
            a,
            b"POST /v1/attest HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains("malformed request JSON"), "{r}");

        let r = raw(a, b"garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains("malformed request line"), "{r}");

        let r = raw(a, b"DELETE /v1/info HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = raw(a, b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");

        let body = serde_json::to_string(&AttestApiRequest {
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
        })
        .unwrap();
        let req = format!(
            "POST /v1/attest HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = raw(a, req.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        assert!(r.contains("unknown session id"), "{r}");
        let bad_sid = body.replace(&"0".repeat(32), "XYZ");
        let req = format!(
            "POST /v1/attest HTTP/1.1\r\nContent-Length: {}\r\n\r\n{bad_sid}",
            bad_sid.len()
        );
        let r = raw(a, req.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");

        // The blocking client reports the notary's message.
        let client = ApiClient::new(&svc.url()).unwrap();
        let info = tokio::task::spawn_blocking(move || client.info())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.public_key, svc.public_key.to_hex());
        assert!(ApiClient::new("https://x:1").is_err());
        svc.shutdown();
    }
}
