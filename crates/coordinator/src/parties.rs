//! How the coordinator talks to the three parties: a small trait, and its
//! HTTPS implementation. The trait exists so the batch protocol can be
//! tested against in-process parties that fail on cue.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use triad_wire::messages::{PrepareBatch, PrepareResult, ReleaseRequest, INTERNAL_TOKEN_HEADER};
use triad_wire::{ApiError, NetworkConfig, SignedRelease};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failed call to a party (transport, timeout or an error answer).
#[derive(Debug, thiserror::Error)]
#[error("party {party}: {reason}")]
pub struct PartyError {
    pub party: usize,
    pub reason: String,
}

/// The four calls the coordinator makes. `party` is 0, 1 or 2.
pub trait Parties: Send + Sync + 'static {
    fn prepare<'a>(
        &'a self,
        party: usize,
        req: &'a PrepareBatch,
    ) -> BoxFut<'a, Result<PrepareResult, PartyError>>;
    fn commit(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>>;
    fn abort(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>>;
    fn release<'a>(
        &'a self,
        party: usize,
        req: &'a ReleaseRequest,
    ) -> BoxFut<'a, Result<SignedRelease, PartyError>>;
}

/// The parties over HTTPS, authenticated with the internal token.
pub struct HttpParties {
    client: reqwest::Client,
    urls: [String; 3],
    token: String,
}

impl HttpParties {
    /// `timeout` bounds one call, MPC included (prepare, release).
    pub fn new(
        network: &NetworkConfig,
        ca_pem: &[u8],
        token: String,
        timeout: Duration,
    ) -> Result<Self, triad_wire::https::TlsError> {
        Ok(Self {
            client: triad_wire::https::client(ca_pem, timeout)?,
            urls: network
                .parties
                .clone()
                .map(|p| p.url.trim_end_matches('/').to_string()),
            token,
        })
    }

    fn err(party: usize, e: impl std::fmt::Display) -> PartyError {
        PartyError {
            party,
            reason: e.to_string(),
        }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        party: usize,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, PartyError> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.urls[party]))
            .header(INTERNAL_TOKEN_HEADER, &self.token)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| Self::err(party, e))?;
        triad_wire::https::read_json::<T>(resp)
            .await
            .map_err(|e: ApiError| Self::err(party, e))
    }

    /// Commit and abort only need a 2xx; their bodies are not read.
    async fn post_ack(&self, party: usize, path: String) -> Result<(), PartyError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.urls[party]))
            .header(INTERNAL_TOKEN_HEADER, &self.token)
            .send()
            .await
            .map_err(|e| Self::err(party, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::err(party, format!("answered {}", resp.status())))
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(v).ok()
}

impl Parties for HttpParties {
    fn prepare<'a>(
        &'a self,
        party: usize,
        req: &'a PrepareBatch,
    ) -> BoxFut<'a, Result<PrepareResult, PartyError>> {
        Box::pin(self.post(party, "/internal/batches/prepare".into(), json(req)))
    }

    fn commit(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(self.post_ack(party, format!("/internal/batches/{batch_id}/commit")))
    }

    fn abort(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(self.post_ack(party, format!("/internal/batches/{batch_id}/abort")))
    }

    fn release<'a>(
        &'a self,
        party: usize,
        req: &'a ReleaseRequest,
    ) -> BoxFut<'a, Result<SignedRelease, PartyError>> {
        Box::pin(self.post(party, "/internal/releases".into(), json(req)))
    }
}
