//! `triad share`: attest, submit, share, confirm, wait.

use std::time::Duration;
use triad_wire::ErrorCode;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use triad_attestation::{Attestation, DataSpec};
use triad_notary::{prove_with_notary, NotaryClient, Opening, ProveTarget};
use triad_wire::config::DatasourceEndpoint;
use triad_wire::https::read_json;
use triad_wire::messages::{
    ReadyRequest, RejectReason, StudyInfo, SubmissionState, SubmissionStatus, SubmitRequest,
    SubmitResponse,
};
use triad_wire::{ApiError, NetworkConfig};

use crate::shares::{commit_shares, split_shares, PartyShares};
use crate::{base, check_study_id, get_json, transport, ClientError};
use triad_wire::receipt::{verify_receipts, SignedReceipt, MIN_KEEP_SECS};

/// How hard [`contribute`] tries.
#[derive(Clone, Debug)]
pub struct ContributeOptions {
    /// How long to wait for the verdict of one attempt after "ready".
    pub timeout: Duration,
    /// Attempts in all (a retryable rejection starts a new one with a
    /// fresh attestation).
    pub attempts: u32,
    /// How long to keep retrying admission (429 / 503) and share uploads
    /// (503 intake_full) per attempt.
    pub submit_timeout: Duration,
    /// Status polling interval.
    pub poll_interval: Duration,
    /// Overrides the network description's data source.
    pub datasource: Option<DatasourceEndpoint>,
    /// Told each step as it starts (`triad ui` shows them).
    pub progress: Progress,
}

/// A step of [`contribute`], for whoever watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading the study's parameters from the coordinator.
    Study,
    /// The TLS session with the data source, through the notary.
    Attest,
    /// Presenting the attestation to the coordinator.
    Submit,
    /// Sending the committed shares to the three parties and checking
    /// their receipts.
    Shares,
    /// Waiting for the parties' MPC check and the batch's commit.
    Verdict,
}

/// Where [`contribute`] reports its steps (attempt number, step).
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<dyn Fn(u32, Step) + Send + Sync>>);

impl Progress {
    pub fn new(f: impl Fn(u32, Step) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }

    fn report(&self, attempt: u32, step: Step) {
        if let Some(f) = &self.0 {
            f(attempt, step);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(watched)"
        } else {
            "Progress(none)"
        })
    }
}

impl Default for ContributeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            attempts: 3,
            submit_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            datasource: None,
            progress: Progress::default(),
        }
    }
}

/// How a contribution ended. `Debug` redacts the value.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    pub study_id: String,
    /// The last attempt's submission.
    pub submission_id: String,
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The batch that carried the accepted contribution: releases with
    /// `as_of_batch` at or above it include it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<u64>,
    /// The provider's own attested value (fixed-point integer), for its
    /// own display only.
    pub value: i64,
    /// The study's fixed-point scale (`value` × 10^-scale).
    pub scale: u32,
    pub attempts: u32,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("study_id", &self.study_id)
            .field("submission_id", &self.submission_id)
            .field("accepted", &self.accepted)
            .field("reason", &self.reason)
            .field("batch_id", &self.batch_id)
            .field("value", &"<redacted>")
            .field("scale", &self.scale)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The data source to attest from (`opts`' override or the network's),
/// with the API key as `X-API-KEY`, and the data source's CA.
pub(crate) fn prove_target(
    net: &NetworkConfig,
    opts: &ContributeOptions,
    api_key: &str,
) -> Result<(ProveTarget, Vec<u8>), ClientError> {
    let ds = opts
        .datasource
        .clone()
        .or_else(|| net.datasource.clone())
        .ok_or(ClientError::NoDatasource)?;
    let ds_ca = std::fs::read(&ds.ca_cert).map_err(|source| ClientError::Io {
        what: format!("data source CA {}", ds.ca_cert.display()),
        source,
    })?;
    let target = ProveTarget::from_url(&ds.url, vec![("X-API-KEY".into(), api_key.into())])?;
    Ok((target, ds_ca))
}

/// Contributes the caller's value to `study_id` (see the crate docs).
/// `api_key` is sent to the data source as `X-API-KEY`, inside TLS, under
/// the client write key the notary never sees.
pub async fn contribute(
    net: &NetworkConfig,
    http: &reqwest::Client,
    study_id: &str,
    api_key: &str,
    opts: &ContributeOptions,
) -> Result<Outcome, ClientError> {
    check_study_id(study_id)?;
    opts.progress.report(1, Step::Study);
    let coord = base(&net.coordinator).to_string();
    let study_url = format!("{coord}/v1/studies/{study_id}");
    let study: StudyInfo = retry_transient(opts, || get_json(http, &study_url))
        .await
        .map_err(|source| ClientError::Study {
            study: study_id.into(),
            source,
        })?;
    let (target, ds_ca) = prove_target(net, opts, api_key)?;
    let spec = study.params.data_spec.clone();
    let attempts = opts.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        opts.progress.report(attempt, Step::Attest);
        let (att, opening) = attest(net, &target, &ds_ca, study_id, &spec, opts).await?;
        let blinder = opening.blinder_fr()?;
        opts.progress.report(attempt, Step::Submit);
        let sub = submit(http, &coord, study_id, &att, opts).await?;
        opts.progress.report(attempt, Step::Shares);
        let shares = split_shares(opening.value, blinder, &mut rand::rngs::OsRng);
        let receipts = upload_all(net, http, &sub, &shares, opts).await?;
        ready(http, &coord, &sub, receipts, opts).await?;
        opts.progress.report(attempt, Step::Verdict);
        let state = wait_verdict(http, &coord, &sub.submission_id, opts).await?;
        let accepted = state.status == SubmissionStatus::Accepted;
        let retry = !accepted && state.reason.is_some_and(|r| r.retryable()) && attempt < attempts;
        if retry {
            continue;
        }
        return Ok(Outcome {
            study_id: study_id.into(),
            submission_id: sub.submission_id,
            accepted,
            reason: state.reason,
            batch_id: state.batch_id,
            value: opening.value,
            scale: spec.scale,
            attempts: attempt,
        });
    }
}

pub(crate) async fn attest(
    net: &NetworkConfig,
    target: &ProveTarget,
    ds_ca: &[u8],
    study_id: &str,
    spec: &DataSpec,
    opts: &ContributeOptions,
) -> Result<(Attestation, Opening), ClientError> {
    let deadline = Instant::now() + opts.submit_timeout;
    let mut backoff = Backoff::new();
    // The notary's API is HTTPS under the network's CA, like every service.
    let notary = NotaryClient::new(&net.notary, &net.ca_pem()?)
        .map_err(|e| ClientError::Usage(format!("the network's notary: {e}")))?;
    loop {
        let r = prove_with_notary(&notary, target, Some(ds_ca), study_id, spec).await;
        let (att, opening, pk) = match r {
            // A busy notary refuses connections over its limit, and a
            // restarting one answers nothing: both are worth another try.
            Err(triad_notary::ProveError::Session(_) | triad_notary::ProveError::Setup(_))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
            r => r?,
        };
        if !pk.to_hex().eq_ignore_ascii_case(&net.notary_key) {
            return Err(ClientError::NotaryKeyMismatch {
                got: pk.to_hex(),
                want: net.notary_key.clone(),
            });
        }
        return Ok((att, opening));
    }
}

/// Exponential backoff with jitter, capped at 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(200))
    }
    fn next(&mut self) -> Duration {
        use rand::Rng;
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d + d.mul_f64(rand::thread_rng().gen_range(0.0..0.25))
    }
}

/// Sleeps `d` unless that passes `deadline`; `false` if out of time.
async fn sleep_before(deadline: Instant, d: Duration) -> bool {
    let now = Instant::now();
    if now + d > deadline {
        return false;
    }
    tokio::time::sleep(d).await;
    true
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

async fn submit(
    http: &reqwest::Client,
    coord: &str,
    study_id: &str,
    att: &Attestation,
    opts: &ContributeOptions,
) -> Result<SubmitResponse, ClientError> {
    let deadline = Instant::now() + opts.submit_timeout;
    // Our own token makes a retry after a lost answer safe: the coordinator
    // recognises (attestation, token) and answers with the same admission.
    let token = {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let body = SubmitRequest {
        attestation: att.clone(),
        token: Some(token),
    };
    let url = format!("{coord}/v1/studies/{study_id}/submissions");
    let mut backoff = Backoff::new();
    loop {
        let resp = match http.post(&url).json(&body).send().await {
            Ok(r) => r,
            // The coordinator may be restarting; the request is idempotent.
            Err(e) => {
                let source = transport(e);
                if !sleep_before(deadline, backoff.next()).await {
                    return Err(ClientError::Submit { source });
                }
                continue;
            }
        };
        let status = resp.status().as_u16();
        let wait = retry_after(&resp);
        let err = match read_json::<SubmitResponse>(resp).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let pause = match (status, err.code) {
            (429, _) | (_, ErrorCode::RateLimited) => wait.unwrap_or_else(|| backoff.next()),
            (503, ErrorCode::QueueFull) | (503, ErrorCode::Busy) => backoff.next(),
            (s, _) if s >= 500 => backoff.next(),
            _ => return Err(ClientError::Submit { source: err }),
        };
        if !sleep_before(deadline, pause.max(Duration::from_millis(50))).await {
            return Err(ClientError::Submit { source: err });
        }
    }
}

/// Uploads one party's shares; its signed receipt.
async fn upload_one(
    http: &reqwest::Client,
    party: usize,
    url: String,
    body: triad_wire::messages::ShareUpload,
    deadline: Instant,
) -> Result<SignedReceipt, ClientError> {
    let mut backoff = Backoff::new();
    loop {
        let err = match http.post(&url).json(&body).send().await {
            Ok(resp) => match read_json::<SignedReceipt>(resp).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            },
            Err(e) => transport(e),
        };
        // A full intake or a dropped connection is worth another try (the
        // upload is idempotent); a refusal is not.
        let again = matches!(
            err.code,
            ErrorCode::IntakeFull | ErrorCode::Busy | ErrorCode::Transport
        );
        if !again || !sleep_before(deadline, backoff.next()).await {
            return Err(ClientError::Shares { party, source: err });
        }
    }
}

/// Commits to the shares, uploads them, and checks that the three parties
/// signed receipts for exactly these commitments (under the keys of the
/// caller's network description), each keeping them at least
/// [`triad_wire::receipt::MIN_KEEP_SECS`]; the receipts, party 0 first.
async fn upload_all(
    net: &NetworkConfig,
    http: &reqwest::Client,
    sub: &SubmitResponse,
    shares: &[PartyShares; 3],
    opts: &ContributeOptions,
) -> Result<Vec<SignedReceipt>, ClientError> {
    let commitments = commit_shares(&sub.submission_id, shares, &mut rand::rngs::OsRng);
    // Shares go to the parties of the caller's own network description,
    // whatever the coordinator lists.
    let deadline = Instant::now() + opts.submit_timeout;
    let one = |i: usize| {
        upload_one(
            http,
            i,
            format!("{}/v1/shares", base(&net.parties[i].url)),
            shares[i].to_upload(i, &sub.submission_id, &sub.token, &commitments),
            deadline,
        )
    };
    let (a, b, c) = tokio::join!(one(0), one(1), one(2));
    let receipts = vec![a?, b?, c?];
    let keys = net.parties.clone().map(|p| p.sign_key);
    let bad = |why: String| ClientError::Receipts {
        submission_id: sub.submission_id.clone(),
        why,
    };
    let v = verify_receipts(&receipts, &keys).map_err(|e| bad(e.to_string()))?;
    // A party that promises to keep the shares only briefly could later
    // claim, truthfully, to have dropped them: refuse such a receipt now.
    v.check_retention(triad_wire::unix_now(), MIN_KEEP_SECS)
        .map_err(|e| bad(e.to_string()))?;
    let r = v.receipt;
    if r.submission_id != sub.submission_id || r.commitments != commitments.commitments {
        return Err(bad("a receipt names other shares than the ones sent".into()));
    }
    Ok(receipts)
}

async fn ready(
    http: &reqwest::Client,
    coord: &str,
    sub: &SubmitResponse,
    receipts: Vec<SignedReceipt>,
    opts: &ContributeOptions,
) -> Result<(), ClientError> {
    let err = |source| ClientError::Ready {
        submission_id: sub.submission_id.clone(),
        source,
    };
    let url = format!("{coord}/v1/submissions/{}/ready", sub.submission_id);
    let body = ReadyRequest {
        token: sub.token.clone(),
        receipts,
    };
    let send = || async {
        let resp = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        if resp.status().is_success() {
            return Ok(());
        }
        read_json::<serde_json::Value>(resp).await.map(|_| ())
    };
    match retry_transient(opts, send).await {
        Ok(()) => Ok(()),
        // An earlier "ready" whose answer was lost did arrive: the verdict
        // (from wait_verdict) tells what became of the submission.
        Err(e) if e.code == ErrorCode::WrongState => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Retries `f` on transport errors and 5xx answers (a coordinator that
/// restarts, a party that is busy) until `opts.submit_timeout`.
async fn retry_transient<T, F, Fut>(opts: &ContributeOptions, mut f: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let deadline = Instant::now() + opts.submit_timeout;
    let mut backoff = Backoff::new();
    loop {
        match f().await {
            Err(e)
                if (e.code == ErrorCode::Transport || e.status.is_server_error())
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(backoff.next()).await;
            }
            r => return r,
        }
    }
}

fn status_name(s: SubmissionStatus) -> &'static str {
    match s {
        SubmissionStatus::AwaitingShares => "awaiting shares",
        SubmissionStatus::Queued => "queued",
        SubmissionStatus::Processing => "processing",
        SubmissionStatus::Accepted => "accepted",
        SubmissionStatus::Rejected => "rejected",
    }
}

async fn wait_verdict(
    http: &reqwest::Client,
    coord: &str,
    sid: &str,
    opts: &ContributeOptions,
) -> Result<SubmissionState, ClientError> {
    let start = Instant::now();
    // Long poll: the coordinator answers as soon as the verdict is in.
    let url = format!("{coord}/v1/submissions/{sid}?wait_ms=10000");
    let mut last;
    loop {
        match get_json::<SubmissionState>(http, &url).await {
            Ok(s)
                if matches!(
                    s.status,
                    SubmissionStatus::Accepted | SubmissionStatus::Rejected
                ) =>
            {
                return Ok(s)
            }
            Ok(s) => last = status_name(s.status).into(),
            // Transient trouble: keep asking until the deadline.
            Err(e) if e.status.is_server_error() || e.code == ErrorCode::Transport => {
                last = format!("unanswered ({e})")
            }
            Err(source) => {
                return Err(ClientError::Status {
                    submission_id: sid.into(),
                    source,
                })
            }
        }
        if !sleep_before(start + opts.timeout, opts.poll_interval).await {
            return Err(ClientError::StatusTimeout {
                submission_id: sid.into(),
                last,
                secs: opts.timeout.as_secs(),
            });
        }
    }
}
