//! How the coordinator talks to the three parties: a small trait, and its
//! HTTPS implementation. The trait exists so the batch protocol can be
//! tested against in-process parties that fail on cue.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::StatusCode;
use triad_directory::record::ServiceRecord;
use triad_wire::directory::Endorsement;
use triad_wire::messages::{
    PrepareBatch, PrepareResult, ReleaseRequest, StudyParams, INTERNAL_TOKEN_HEADER,
};
use triad_wire::poll::{ConfirmMessage, PollSpec, TallyProgress, TallyRequest};
use triad_wire::{ApiError, NetworkConfig, SignedRelease};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failed call to a party.
#[derive(Debug, thiserror::Error)]
#[error("party {party}: {fault}")]
pub struct PartyError {
    pub party: usize,
    pub fault: PartyFault,
}

/// Whose fault a failed call is, and whether repeating it can help.
#[derive(Debug, thiserror::Error)]
pub enum PartyFault {
    /// Transport error, timeout, or the party answered that it is busy
    /// (5xx, 408, 429): repeating the call may succeed.
    #[error("{0}")]
    Unreachable(String),
    /// The party understood the call and refused it (a 4xx): repeating the
    /// same call gets the same answer.
    #[error("refused: {0}")]
    Refused(ApiError),
    /// The party's checks caught a party (possibly itself, as reported by
    /// an honest peer) deviating from the protocol: the job aborted with
    /// nothing opened. Repeating may succeed if the cheater stops.
    #[error("cheating detected: {0}")]
    Cheating(String),
}

impl PartyError {
    /// `true` if repeating the same call cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self.fault, PartyFault::Refused(_))
    }

    pub(crate) fn from_api(party: usize, e: ApiError) -> Self {
        let transient = e.status.is_server_error()
            || e.status == StatusCode::REQUEST_TIMEOUT
            || e.status == StatusCode::TOO_MANY_REQUESTS;
        let fault = if e.code == triad_wire::ErrorCode::CheatingDetected {
            PartyFault::Cheating(e.message.clone())
        } else if transient {
            PartyFault::Unreachable(e.to_string())
        } else {
            PartyFault::Refused(e)
        };
        Self { party, fault }
    }
}

/// The calls the coordinator makes. `party` is 0, 1 or 2.
pub trait Parties: Send + Sync + 'static {
    /// Asks the party to pin a new study: it refuses parameters below its
    /// own floors, so a study no party would serve is refused at creation.
    fn pin_study<'a>(
        &'a self,
        party: usize,
        study: &'a StudyParams,
    ) -> BoxFut<'a, Result<(), PartyError>>;
    fn prepare<'a>(
        &'a self,
        party: usize,
        req: &'a PrepareBatch,
    ) -> BoxFut<'a, Result<PrepareResult, PartyError>>;
    fn commit(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>>;
    fn abort(&self, party: usize, batch_id: u64) -> BoxFut<'_, Result<(), PartyError>>;
    /// The party's `GET /healthz` (for the coordinator's own health
    /// answer); in-process stand-ins are healthy.
    fn health(&self, _party: usize) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(async { Ok(()) })
    }
    fn release<'a>(
        &'a self,
        party: usize,
        req: &'a ReleaseRequest,
    ) -> BoxFut<'a, Result<SignedRelease, PartyError>>;
    /// Asks the party to pin a new poll (it refuses a spec it cannot run).
    fn pin_poll<'a>(
        &'a self,
        party: usize,
        spec: &'a PollSpec,
    ) -> BoxFut<'a, Result<(), PartyError>>;
    /// Does the party hold this message's shares, durably, under this
    /// token and commitment? `Ok` means yes, and it marked them confirmed.
    fn confirm_message<'a>(
        &'a self,
        party: usize,
        poll: u64,
        req: &'a ConfirmMessage,
    ) -> BoxFut<'a, Result<(), PartyError>>;
    /// Starts (or reports on) the party's tally of a closed poll.
    fn tally_poll<'a>(
        &'a self,
        party: usize,
        req: &'a TallyRequest,
    ) -> BoxFut<'a, Result<TallyProgress, PartyError>>;
    /// Asks the party to endorse a directory record the coordinator
    /// signed; returns its endorsement (128 hex).
    fn endorse<'a>(
        &'a self,
        party: usize,
        record: &'a ServiceRecord,
    ) -> BoxFut<'a, Result<String, PartyError>>;
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
            fault: PartyFault::Unreachable(e.to_string()),
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
            .map_err(|e: ApiError| PartyError::from_api(party, e))
    }

    /// Commit and abort only need a 2xx; an error answer is kept whole.
    async fn post_ack(&self, party: usize, path: String) -> Result<(), PartyError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.urls[party]))
            .header(INTERNAL_TOKEN_HEADER, &self.token)
            .send()
            .await
            .map_err(|e| Self::err(party, e))?;
        triad_wire::https::read_json::<serde_json::Value>(resp)
            .await
            .map(drop)
            .map_err(|e: ApiError| PartyError::from_api(party, e))
    }
}

fn json<T: serde::Serialize>(v: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(v).ok()
}

impl Parties for HttpParties {
    fn pin_study<'a>(
        &'a self,
        party: usize,
        study: &'a StudyParams,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move {
            self.post::<serde_json::Value>(party, "/internal/studies".into(), json(study))
                .await
                .map(drop)
        })
    }

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

    fn health(&self, party: usize) -> BoxFut<'_, Result<(), PartyError>> {
        Box::pin(async move {
            let url = format!("{}/healthz", self.urls[party]);
            let resp = self
                .client
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| Self::err(party, e))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(Self::err(party, format!("health answer {}", resp.status())))
            }
        })
    }

    fn release<'a>(
        &'a self,
        party: usize,
        req: &'a ReleaseRequest,
    ) -> BoxFut<'a, Result<SignedRelease, PartyError>> {
        Box::pin(self.post(party, "/internal/releases".into(), json(req)))
    }

    fn pin_poll<'a>(
        &'a self,
        party: usize,
        spec: &'a PollSpec,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move {
            self.post::<serde_json::Value>(party, "/internal/polls".into(), json(spec))
                .await
                .map(drop)
        })
    }

    fn confirm_message<'a>(
        &'a self,
        party: usize,
        poll: u64,
        req: &'a ConfirmMessage,
    ) -> BoxFut<'a, Result<(), PartyError>> {
        Box::pin(async move {
            self.post::<serde_json::Value>(
                party,
                format!("/internal/polls/{poll}/confirm"),
                json(req),
            )
            .await
            .map(drop)
        })
    }

    fn tally_poll<'a>(
        &'a self,
        party: usize,
        req: &'a TallyRequest,
    ) -> BoxFut<'a, Result<TallyProgress, PartyError>> {
        let path = format!("/internal/polls/{}/tally", req.spec.id);
        Box::pin(self.post(party, path, json(req)))
    }

    fn endorse<'a>(
        &'a self,
        party: usize,
        record: &'a ServiceRecord,
    ) -> BoxFut<'a, Result<String, PartyError>> {
        Box::pin(async move {
            let e: Endorsement = self
                .post(party, "/internal/directory/endorse".into(), json(record))
                .await?;
            if e.party != party {
                return Err(Self::err(party, format!("endorsed as party {}", e.party)));
            }
            Ok(e.signature)
        })
    }
}
