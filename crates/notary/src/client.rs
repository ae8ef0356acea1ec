//! The prover's client of the notary's HTTPS API ([`crate::api`]): reqwest
//! over the network's CA, as every client of a triad service
//! (`triad_wire::https::client`, answers read with `read_json`, errors as
//! the shared [`ApiError`]); and [`prove_with_notary`], the prover end to end.

use std::net::ToSocketAddrs;
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::http::StatusCode;
use triad_attestation::{Attestation, DataSpec, NotaryPublicKey};
use triad_wire::https::read_json;
use triad_wire::ApiError;

use crate::api::{AttestApiRequest, NotaryInfo};
use crate::notarize::AttestationRequest;
use crate::prover::{
    new_session_id, prover_client_config, read_session, Opening, ProveError, ProveTarget,
};
use crate::transcript::ServerKeyDisclosure;

/// Longest a call to the notary may take (an attest call waits for the
/// session, then for the check).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one notary's API.
#[derive(Clone, Debug)]
pub struct NotaryClient {
    base: String,
    http: reqwest::Client,
}

fn transport(e: reqwest::Error) -> ApiError {
    ApiError::unavailable(ErrorCode::Transport, e.to_string())
}

impl NotaryClient {
    /// `url` is the API's `https://host:port` (a trailing `/` is
    /// accepted); `ca_pem` the CA that issued its certificate (the
    /// network's, `NetworkConfig::ca_cert`).
    pub fn new(url: &str, ca_pem: &[u8]) -> Result<Self, String> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("https://") || base.len() == "https://".len() {
            return Err(format!("notary URL {url:?} must be https://host:port"));
        }
        let http = triad_wire::https::client(ca_pem, TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.to_string(),
            http,
        })
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<NotaryInfo, ApiError> {
        let resp = self
            .http
            .get(format!("{}/v1/info", self.base))
            .send()
            .await
            .map_err(transport)?;
        read_json(resp).await
    }

    /// `POST /v1/attest`: sends the disclosure; the attestation or the
    /// notary's error.
    pub async fn attest(
        &self,
        session_id: &str,
        disclosure: &ServerKeyDisclosure,
        request: &AttestationRequest,
    ) -> Result<Attestation, ApiError> {
        let body = AttestApiRequest::new(session_id, disclosure, request);
        let resp = self
            .http
            .post(format!("{}/v1/attest", self.base))
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        read_json(resp).await
    }

    /// After a session that broke off (the proxy closes the connection at
    /// once when it refuses the target), asks the notary why: claims the
    /// session with a null disclosure (nothing secret) and returns the
    /// notary's message if it answers 403 `target_refused`. The session is
    /// consumed either way; it was of no use anymore.
    pub async fn target_refusal(&self, session_id: &str) -> Option<String> {
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
        match self.attest(session_id, &null, &request).await {
            Err(e) if e.status == StatusCode::FORBIDDEN && e.code == ErrorCode::TargetRefused => {
                Some(e.message)
            }
            _ => None,
        }
    }
}

/// The prover end to end against a notary API: asks `/v1/info` for the
/// proxy and key, runs the TLS session through the proxy (on a blocking
/// thread), sends the disclosure over the API and checks the attestation
/// against its own reading ([`crate::prover::ProverReading::accept`]).
/// `site_ca_pem` is a CA trusted for the site besides the platform roots.
/// Returns the attestation, the opening and the notary's public key (the
/// caller verifies with its own trusted keys). Needs a tokio runtime.
pub async fn prove_with_notary(
    notary: &NotaryClient,
    target: &ProveTarget,
    site_ca_pem: Option<&[u8]>,
    study_id: &str,
    data_spec: &DataSpec,
) -> Result<(Attestation, Opening, NotaryPublicKey), ProveError> {
    let info = notary
        .info()
        .await
        .map_err(|e| ProveError::Setup(format!("notary info: {e}")))?;
    let pk = NotaryPublicKey::from_hex(&info.public_key)
        .map_err(|e| ProveError::Setup(format!("notary public key: {e}")))?;
    let proxy = info
        .proxy
        .to_socket_addrs()
        .map_err(|e| ProveError::Setup(format!("notary proxy {:?}: {e}", info.proxy)))?
        .next()
        .ok_or_else(|| ProveError::Setup("notary proxy does not resolve".into()))?;
    let client = prover_client_config(site_ca_pem, true)?;
    let sid = new_session_id()?;
    let (s, t, study, spec) = (
        sid.clone(),
        target.clone(),
        study_id.to_string(),
        data_spec.clone(),
    );
    let reading =
        tokio::task::spawn_blocking(move || read_session(proxy, &s, &t, client, &study, &spec))
            .await
            .map_err(|e| ProveError::Setup(format!("prover task: {e}")))?;
    let reading = match reading {
        // The proxy closes the connection of a refused target at once, so the
        // TLS session just breaks; the notary's API says why.
        Err(ProveError::Session(e)) => {
            return Err(match notary.target_refusal(&sid).await {
                Some(why) => ProveError::TargetRefused(why),
                None => ProveError::Session(e),
            })
        }
        r => r?,
    };
    let att = notary
        .attest(&sid, &reading.disclosure, &reading.request)
        .await
        .map_err(|e| ProveError::Notary(e.to_string()))?;
    let (att, opening) = reading.accept(att)?;
    Ok((att, opening, pk))
}
