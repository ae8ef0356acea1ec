//! HTTPS for the services: axum behind rustls, a client that trusts only
//! the network's CA, and the JSON error every endpoint answers with.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The body of every error answer: a stable machine-readable `error` code
/// and a sentence for people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// An error answer: status, code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Parses a JSON body with a clear 400 on failure. Handlers take the raw
/// bytes and call this instead of axum's `Json` extractor, so every
/// malformed body gets the same error shape.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_body", format!("malformed JSON body: {e}")))
}

/// SHA-256 of a token, the form in which a verifier keeps it: a service
/// that only checks a credential never holds the credential itself.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.trim().as_bytes()).into()
}

/// Checks a bearer-style token header against the digest of the expected
/// token. Comparing digests: a timing difference reveals only a prefix of
/// a hash, nothing usable about the token.
pub fn check_token_digest(
    headers: &axum::http::HeaderMap,
    name: &str,
    want: &[u8; 32],
) -> Result<(), ApiError> {
    let got = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !got.is_empty() && token_digest(got) == *want {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("missing or wrong {name} header"),
        ))
    }
}

/// Checks a bearer-style token header against the token itself.
pub fn check_token(
    headers: &axum::http::HeaderMap,
    name: &str,
    want: &str,
) -> Result<(), ApiError> {
    check_token_digest(headers, name, &token_digest(want))
}

/// Reads a file holding a token digest: 64 hex digits.
pub fn read_digest(path: &std::path::Path) -> Result<[u8; 32], String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut d = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut d)
        .map_err(|_| format!("{}: not 64 hex digits", path.display()))?;
    Ok(d)
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Client(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config from a PEM certificate chain and PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// An HTTP client that trusts only the network CA (`ca_pem`), with
/// connect and request timeouts.
pub fn client(ca_pem: &[u8], timeout: Duration) -> Result<reqwest::Client, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| TlsError::Client(format!("CA PEM: {e}")))?;
        roots.add(c)?;
    }
    if roots.is_empty() {
        return Err(TlsError::Client("CA PEM holds no certificate".into()));
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        // Providers run hundreds of requests at once; every idle connection
        // kept saves a TLS handshake.
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| TlsError::Client(e.to_string()))
}

/// Reads an answer: the JSON body on 2xx, the [`ErrorBody`] as an
/// [`ApiError`] otherwise.
pub async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ApiError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable("transport", e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_answer",
                format!("unexpected answer: {e}"),
            )
        });
    }
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => ApiError {
            status,
            code: leak_code(&b.error),
            message: b.message,
        },
        Err(_) => ApiError::new(
            status,
            "http_error",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        ),
    })
}

/// Error codes are a small fixed vocabulary; map known ones back to their
/// static strings and everything else to "other".
fn leak_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "malformed_body",
        "unknown_study",
        "study_exists",
        "attestation_invalid",
        "attestation_expired",
        "attestation_stale",
        "attestation_replayed",
        "already_contributed",
        "study_mismatch",
        "rate_limited",
        "queue_full",
        "unknown_submission",
        "wrong_token",
        "bad_shares",
        "intake_full",
        "below_threshold",
        "no_release",
        "unauthorized",
        "payload_too_large",
        "busy",
        "internal",
        "transport",
        "wrong_state",
        "unknown_batch",
        "study_changed",
        "mpc_failed",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("other")
}

/// The peer's address, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A listener that hands axum only connections whose TLS handshake
/// completed; handshakes run concurrently, each with a deadline, so a slow
/// or silent client holds up nobody.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    pub fn new(listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(256);
        let acceptor = TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        // Out of descriptors and the like: back off, go on.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx2) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = tx2.send((tls, addr)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { local, rx })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop is gone (runtime shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Serves `router` over HTTPS on `listener` until the future completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
) -> std::io::Result<()> {
    let l = TlsListener::new(listener, tls)?;
    axum::serve(l, router.into_make_service_with_connect_info::<PeerAddr>()).await
}
