//! HTTPS for the services: a client that trusts only the network's CA,
//! bounded reads of answers, and the JSON error every endpoint answers
//! with (the server loop is in [`crate::serve`]).

use crate::ErrorCode;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The body of every error answer: a stable machine-readable `error` code
/// and a sentence for people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// An error answer: status, code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message.to_string(),
        )
    }
    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
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
        let code = self.code;
        let body = ErrorBody {
            error: self.code,
            message: self.message,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        // For the request metrics (refusals by code).
        resp.extensions_mut().insert(code);
        resp
    }
}

/// Parses a JSON body with a clear 400 on failure. Handlers take the raw
/// bytes and call this instead of axum's `Json` extractor, so every
/// malformed body gets the same error shape.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::MalformedBody,
            format!("malformed JSON body: {e}"),
        )
    })
}

/// A handler's raw body (axum's `Result<Bytes, BytesRejection>`
/// extractor), with a body over the router's `DefaultBodyLimit` answered
/// 413 `payload_too_large` and any other failure 400, in the JSON shape.
pub fn body_bytes(
    b: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "request body too large",
            )
        } else {
            ApiError::bad_request(ErrorCode::MalformedBody, r.body_text())
        }
    })
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
            ErrorCode::Unauthorized,
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
        // Well before a service closes an idle connection (its head
        // timeout), so a request never races the server's close.
        .pool_idle_timeout(ServeLimits::DEFAULT.header_read_timeout / 2)
        .build()
        .map_err(|e| TlsError::Client(e.to_string()))
}

/// Largest answer [`read_json`] reads from a peer.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Reads an answer: the JSON body on 2xx, the [`ErrorBody`] as an
/// [`ApiError`] otherwise. At most [`MAX_ANSWER_BYTES`] are read.
pub async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ApiError> {
    read_json_limited(resp, MAX_ANSWER_BYTES).await
}

/// The bytes of an answer of at most `max` bytes, or `bad_answer` (502)
/// as soon as it is known to be longer, from its `Content-Length` or
/// while it streams in.
async fn read_body_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_long = || {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BadAnswer,
            format!("answer longer than {max} bytes"),
        )
    };
    let announced = resp.content_length().unwrap_or(0);
    if announced > max as u64 {
        return Err(too_long());
    }
    // Grown as data arrives: a length announced but never sent costs little.
    let mut out = Vec::with_capacity(announced.min(64 * 1024) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::unavailable(ErrorCode::Transport, e.to_string()))?
    {
        if chunk.len() > max - out.len() {
            return Err(too_long());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// [`read_json`] reading at most `max` bytes.
pub async fn read_json_limited<T: DeserializeOwned>(
    resp: reqwest::Response,
    max: usize,
) -> Result<T, ApiError> {
    let status = resp.status();
    let bytes = read_body_limited(resp, max).await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::BadAnswer,
                format!("unexpected answer: {e}"),
            )
        });
    }
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => ApiError {
            status,
            code: b.error,
            message: b.message,
        },
        Err(_) => ApiError::new(
            status,
            ErrorCode::HttpError,
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        ),
    })
}

/// The fallback of every service's router: a path no route matches
/// answers 404 in the JSON error shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, "no such endpoint")
}

/// A known path asked with a method it does not serve: 405 in the JSON
/// error shape (axum still adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on this endpoint"),
    )
}

/// Installs [`not_found`] and [`method_not_allowed`] on a service's
/// router. Call it last, after every route and merge: axum gives the
/// method fallback only to the routes that exist at the time.
pub fn json_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The peer's address, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

pub use crate::serve::{serve, serve_with, ServeLimits};
