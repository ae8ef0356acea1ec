//! The prover as a library call: one TLS 1.2 session to the site through
//! the notary's recording proxy, with secret extraction; the prover reads
//! the value from its own copy of the response, picks a random blinder,
//! discloses only the server→client (rx) key and IV, and gets back a signed
//! attestation plus the opening `{value, blinder}` it keeps.
//!
//! How the disclosure reaches the notary is the caller's choice: a
//! `notarize` callback ([`prove`]), or two steps around an asynchronous call
//! ([`read_session`], then [`ProverReading::accept`]), which is how
//! [`crate::client::prove_with_notary`] uses the notary's HTTPS API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use triad_crypto::{fr_from_hex, fr_to_hex, Fr};

use crate::http::{response_body, HttpError};
use crate::notarize::AttestationRequest;
use crate::transcript::{root_store, ServerKeyDisclosure};
use triad_attestation::Attestation;
use triad_attestation::{extract_claim, DataSpec, ExtractedClaim, SpecError};

/// Socket timeout of the prover's session (connect, read, write).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response the prover reads (the proxy's default limit is 1 MiB).
const MAX_RESPONSE: usize = 1 << 20;

/// The secret the provider keeps: `commitment = Poseidon(value, blinder)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    /// The fixed-point integer (value × 10^scale).
    pub value: i64,
    /// BN254 scalar, 64 lowercase hex digits, big-endian.
    pub blinder: String,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opening(redacted)")
    }
}

impl Opening {
    pub fn blinder_fr(&self) -> Result<Fr, ProveError> {
        fr_from_hex(&self.blinder)
            .map_err(|_| ProveError::Setup("opening blinder is not a scalar".into()))
    }
}

/// The site and request to prove. `Debug` shows header names but not their
/// values (credentials), and the path without its query.
#[derive(Clone)]
pub struct ProveTarget {
    /// Host name or IP literal, as in the certificate.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra request headers (credentials go here; they stay encrypted
    /// under the client write key, which is never disclosed).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for ProveTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = match self.path.split_once('?') {
            Some((p, _)) => format!("{p}?<redacted>"),
            None => self.path.clone(),
        };
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, _)| format!("{n}: <redacted>"))
            .collect();
        f.debug_struct("ProveTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &path)
            .field("headers", &headers)
            .finish()
    }
}

impl ProveTarget {
    /// Parses `https://host[:port][/path]` (port defaults to 443).
    pub fn from_url(url: &str, headers: Vec<(String, String)>) -> Result<Self, ProveError> {
        let bad = |why: &str| ProveError::Setup(format!("URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (authority, 443),
        };
        if host.is_empty() || port == 0 || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("empty host, port 0 or whitespace in the path"));
        }
        for (n, v) in &headers {
            let ok_name = !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !ok_name || v.chars().any(|c| c == '\r' || c == '\n') {
                return Err(ProveError::Setup(format!(
                    "bad header name or value for {n:?}"
                )));
            }
        }
        Ok(Self {
            host: host.to_string(),
            port,
            path: path.to_string(),
            headers,
        })
    }

    /// The HTTP/1.1 request sent inside TLS (`Connection: close`).
    pub fn request_bytes(&self) -> Vec<u8> {
        let mut r = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", self.path, self.host);
        for (n, v) in &self.headers {
            r.push_str(&format!("{n}: {v}\r\n"));
        }
        r.push_str("Connection: close\r\n\r\n");
        r.into_bytes()
    }
}

/// Parses a `Name: value` header argument.
pub fn parse_header(h: &str) -> Result<(String, String), ProveError> {
    let (n, v) = h
        .split_once(':')
        .ok_or_else(|| ProveError::Setup("header must be `Name: value`".into()))?;
    Ok((n.trim().to_string(), v.trim().to_string()))
}

/// Why proving failed.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("{0}")]
    Setup(String),
    #[error("TLS session through the proxy: {0}")]
    Session(String),
    // No `#[from]`/`#[source]`: the message already holds the cause, so
    // error chains (anyhow) print it once.
    #[error("the site's response: {0}")]
    Http(HttpError),
    #[error("the site's response does not match the data spec: {0}")]
    Spec(SpecError),
    #[error("the notary refused: {0}")]
    Notary(String),
    /// The notary's proxy does not relay to the site (its allow-list, or a
    /// special-purpose address): the operator's policy, not the site's fault.
    #[error("{0}")]
    TargetRefused(String),
    #[error("the notary's attestation does not match the prover's own reading: {0}")]
    Mismatch(&'static str),
}

impl From<HttpError> for ProveError {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

impl From<SpecError> for ProveError {
    fn from(e: SpecError) -> Self {
        Self::Spec(e)
    }
}

/// A rustls client for provers: TLS 1.2 only, secret extraction on,
/// resumption off (a resumed session has no Certificate for the notary).
pub fn prover_client_config(
    extra_ca_pem: Option<&[u8]>,
    platform_roots: bool,
) -> Result<Arc<rustls::ClientConfig>, ProveError> {
    let roots = root_store(extra_ca_pem, platform_roots)
        .map_err(|e| ProveError::Setup(format!("trust roots: {e}")))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .map_err(|e| ProveError::Setup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.enable_secret_extraction = true;
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A fresh 128-bit session id (32 lowercase hex digits).
pub fn new_session_id() -> Result<String, ProveError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ProveError::Setup("system RNG failed".into()))?;
    Ok(hex::encode(b))
}

/// A uniformly random 248-bit blinder (below the BN254 order).
pub fn random_blinder() -> Result<Fr, ProveError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b[1..])
        .map_err(|_| ProveError::Setup("system RNG failed".into()))?;
    fr_from_hex(&hex::encode(b)).map_err(|_| ProveError::Setup("blinder encoding".into()))
}

/// Runs one TLS 1.2 session to `target` through the proxy at `proxy` under
/// `session_id`; returns the plaintext response and the rx key and IV only.
pub fn run_session(
    proxy: SocketAddr,
    session_id: &str,
    target: &ProveTarget,
    client: Arc<rustls::ClientConfig>,
) -> Result<(Vec<u8>, ServerKeyDisclosure), ProveError> {
    let e = |x: std::io::Error| ProveError::Session(x.to_string());
    let mut sock = TcpStream::connect_timeout(&proxy, IO_TIMEOUT).map_err(e)?;
    sock.set_nodelay(true).map_err(e)?;
    sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(e)?;
    sock.set_write_timeout(Some(IO_TIMEOUT)).map_err(e)?;
    sock.write_all(
        format!(
            "TRIAD-PROXY/1 {session_id} {} {}\n",
            target.host, target.port
        )
        .as_bytes(),
    )
    .map_err(e)?;
    let name = ServerName::try_from(target.host.clone())
        .map_err(|x| ProveError::Setup(format!("server name: {x}")))?;
    let conn = rustls::ClientConnection::new(client, name)
        .map_err(|x| ProveError::Session(x.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&target.request_bytes()).map_err(e)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = tls.read(&mut buf).map_err(e)?;
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
        if resp.len() > MAX_RESPONSE {
            return Err(ProveError::Session("response larger than 1 MiB".into()));
        }
    }
    let rustls::StreamOwned { conn, sock } = tls;
    drop(sock);
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|x| ProveError::Session(format!("secret extraction: {x}")))?;
    match secrets.rx.1 {
        rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv } => Ok((
            resp,
            ServerKeyDisclosure {
                key: key.as_ref().to_vec(),
                iv: iv.as_ref().to_vec(),
            },
        )),
        _ => Err(ProveError::Session("non-AES-GCM suite negotiated".into())),
    }
}

/// The full prover: session through the proxy, own reading of the value,
/// random blinder, then `notarize(session id, disclosure, request)` (which
/// reaches the notary), and a check that the attestation commits to the
/// prover's value and blinder. Returns the attestation and the opening.
pub fn prove<F>(
    proxy: SocketAddr,
    target: &ProveTarget,
    client: Arc<rustls::ClientConfig>,
    study_id: &str,
    data_spec: &DataSpec,
    notarize: F,
) -> Result<(Attestation, Opening), ProveError>
where
    F: FnOnce(&str, &ServerKeyDisclosure, &AttestationRequest) -> Result<Attestation, String>,
{
    let sid = new_session_id()?;
    prove_in_session(proxy, &sid, target, client, study_id, data_spec, notarize)
}

/// [`prove`] under a session id chosen by the caller (fresh from
/// [`new_session_id`]), so the caller can ask the notary about the session
/// if it breaks off.
pub fn prove_in_session<F>(
    proxy: SocketAddr,
    sid: &str,
    target: &ProveTarget,
    client: Arc<rustls::ClientConfig>,
    study_id: &str,
    data_spec: &DataSpec,
    notarize: F,
) -> Result<(Attestation, Opening), ProveError>
where
    F: FnOnce(&str, &ServerKeyDisclosure, &AttestationRequest) -> Result<Attestation, String>,
{
    let reading = read_session(proxy, sid, target, client, study_id, data_spec)?;
    let att = notarize(sid, &reading.disclosure, &reading.request).map_err(ProveError::Notary)?;
    reading.accept(att)
}

/// The prover's side of one session before the notary answers: what to
/// disclose, what to ask, and the prover's own reading of the value to hold
/// the attestation against. `Debug` shows none of it.
pub struct ProverReading {
    /// The rx key and IV for the notary.
    pub disclosure: ServerKeyDisclosure,
    /// Study, spec, blinder and the value the prover read.
    pub request: AttestationRequest,
    claim: ExtractedClaim,
    server_name: String,
}

impl std::fmt::Debug for ProverReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProverReading(redacted)")
    }
}

/// Step 1 of [`prove`] (blocking I/O): runs the TLS session through the
/// proxy under `sid`, reads the value under `data_spec` from the response
/// and draws the blinder. Step 2 is the notary's, step 3
/// [`ProverReading::accept`].
pub fn read_session(
    proxy: SocketAddr,
    sid: &str,
    target: &ProveTarget,
    client: Arc<rustls::ClientConfig>,
    study_id: &str,
    data_spec: &DataSpec,
) -> Result<ProverReading, ProveError> {
    data_spec.validate()?;
    let (resp, disclosure) = run_session(proxy, sid, target, client)?;
    let body = response_body(&resp)?;
    let claim = extract_claim(data_spec, &body)?;
    let blinder = random_blinder()?;
    let request = AttestationRequest {
        study_id: study_id.to_string(),
        data_spec: data_spec.clone(),
        blinder,
        expected_value: claim.value,
    };
    Ok(ProverReading {
        disclosure,
        request,
        claim,
        server_name: target.host.clone(),
    })
}

impl ProverReading {
    /// Step 3 of [`prove`] (no I/O): accepts the notary's attestation only
    /// if it commits to the prover's own value and blinder, carries the
    /// nullifier of the account the prover read, and names the study, spec
    /// and server asked for. Returns it with the opening.
    pub fn accept(self, att: Attestation) -> Result<(Attestation, Opening), ProveError> {
        let Self {
            request,
            claim,
            server_name,
            ..
        } = self;
        if att.commitment != fr_to_hex(&claim.commitment(request.blinder)) {
            return Err(ProveError::Mismatch("commitment"));
        }
        if att.nullifier != fr_to_hex(&claim.nullifier(&request.study_id)) {
            return Err(ProveError::Mismatch("nullifier"));
        }
        if att.study_id != request.study_id
            || att.data_spec != request.data_spec
            || att.server_name != server_name
        {
            return Err(ProveError::Mismatch("study, data spec or server name"));
        }
        Ok((
            att,
            Opening {
                value: claim.value,
                blinder: fr_to_hex(&request.blinder),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_header_parsing() {
        let t = ProveTarget::from_url(
            "https://127.0.0.1:8443/api/v3/account?x=1",
            vec![parse_header("X-API-KEY: abc").unwrap()],
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8443));
        assert_eq!(t.path, "/api/v3/account?x=1");
        assert_eq!(
            t.request_bytes(),
            b"GET /api/v3/account?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: abc\r\nConnection: close\r\n\r\n"
        );
        let t = ProveTarget::from_url("https://example.com", vec![]).unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        for bad in [
            "http://x/",
            "https://:1/",
            "https://h:0/",
            "https://h:x/",
            "https://h/a b",
        ] {
            assert!(ProveTarget::from_url(bad, vec![]).is_err(), "{bad}");
        }
        assert!(
            ProveTarget::from_url("https://h/", vec![("A".into(), "b\r\nC: d".into())]).is_err()
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn blinders_and_session_ids_are_fresh() {
        let (a, b) = (random_blinder().unwrap(), random_blinder().unwrap());
        assert_ne!(a, b);
        let s = new_session_id().unwrap();
        assert_eq!(s.len(), 32);
        assert_ne!(s, new_session_id().unwrap());
    }
}
