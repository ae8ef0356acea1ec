//! What triad's provider and consumer verbs do.
//!
//! - [`contribute`] (`triad share`): attest a value through the notary,
//!   submit the attestation, secret-share the opening to the three parties,
//!   confirm, and wait for the verdict; retried with a fresh attestation
//!   when the rejection is retryable;
//! - [`latest_release`] (`triad query`): the latest release from the
//!   consumer API, verified again locally against the party keys of the
//!   network description (the client does not trust the API);
//! - [`create_study`] (`triad study create`);
//! - [`discover`] (`triad discover`, `share --study-id`, `vote --poll-id`):
//!   a study or poll found by its directory id alone;
//! - [`ui`] (`triad ui`): the provider's page on 127.0.0.1, contributing
//!   through this local process.
#![forbid(unsafe_code)]

mod cli;
mod contribute;
pub mod discover;
pub mod poll;
mod poll_cli;
mod shares;
pub mod ui;

use std::path::{Path, PathBuf};
use triad_wire::ErrorCode;

use triad_wire::https::read_json;
use triad_wire::messages::{valid_study_id, CreateStudy, StudyInfo};
use triad_wire::release::verify_release;
use triad_wire::{ApiError, NetworkConfig, ReleaseError, VerifiedRelease};

pub use cli::{
    run_query, run_share, run_study_create, NetworkArgs, QueryArgs, ShareArgs, StudyCreateArgs,
    API_KEY_ENV,
};
pub use contribute::{contribute, ContributeOptions, Outcome, Progress, Step};
pub use poll_cli::{
    read_private_key, run_poll_create, run_poll_deactivate, run_poll_rekey, run_poll_signup,
    run_poll_tally, run_vote, ModeArg, PollCreateArgs, PollDeactivateArgs, PollRekeyArgs,
    PollSignupArgs, PollTallyArgs, VoteArgs,
};
pub use shares::{commit_shares, random_fr, recombine, split_shares, Commitments, PartyShares};

/// Which step of a verb failed, and why (the server's error code and
/// message are inside the [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] triad_wire::config::ConfigError),
    #[error("HTTPS client: {0}")]
    Tls(#[from] triad_wire::https::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the network description names no data source to attest from")]
    NoDatasource,
    #[error("fetching study {study:?} from the coordinator: {source}")]
    Study { study: String, source: ApiError },
    #[error("attesting the value through the notary: {0}")]
    Attest(#[from] triad_notary::ProveError),
    #[error("the notary signed with key {got}, but the network trusts {want}")]
    NotaryKeyMismatch { got: String, want: String },
    #[error("submitting the attestation to the coordinator: {source}")]
    Submit { source: ApiError },
    #[error("sending shares to party {party}: {source}")]
    Shares { party: usize, source: ApiError },
    #[error("the parties' receipts for submission {submission_id}: {why}")]
    Receipts { submission_id: String, why: String },
    #[error("confirming submission {submission_id}: {source}")]
    Ready {
        submission_id: String,
        source: ApiError,
    },
    #[error("asking for the status of submission {submission_id}: {source}")]
    Status {
        submission_id: String,
        source: ApiError,
    },
    #[error("submission {submission_id} still {last} after {secs} s")]
    StatusTimeout {
        submission_id: String,
        last: String,
        secs: u64,
    },
    #[error("submission {submission_id} was rejected: {reason}")]
    Rejected {
        submission_id: String,
        reason: String,
    },
    #[error("fetching the latest release of study {study:?} from the consumer API: {source}")]
    Query { study: String, source: ApiError },
    #[error("the consumer API's release of study {study:?} does not verify: {source}")]
    Verify { study: String, source: VerifyError },
    #[error("study {study:?} has no release yet: {progress}")]
    NoReleaseYet { study: String, progress: String },
    #[error("no study {0:?} (the coordinator does not know it)")]
    UnknownStudy(String),
    #[error("creating study {study:?}: {source}")]
    CreateStudy { study: String, source: ApiError },
    #[error("{what}: {source}")]
    Poll { what: String, source: ApiError },
    #[error("the tally does not verify: {0}")]
    PollTally(ReleaseError),
    #[error("the directory: {0}")]
    Directory(String),
    #[error("no record found for {what} in the directory (asked {asked} nodes)")]
    NotFound { what: String, asked: usize },
    #[error("internal: {0}")]
    Internal(String),
}

/// Why a release from the consumer API was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(transparent)]
    Signatures(#[from] ReleaseError),
    #[error("the release it states differs from the document the parties signed")]
    BodyMismatch,
    #[error("it is a release of study {0:?}")]
    WrongStudy(String),
}

pub(crate) fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// A transport failure as an [`ApiError`], with the whole cause chain.
pub(crate) fn transport(e: reqwest::Error) -> ApiError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ApiError::unavailable(ErrorCode::Transport, msg)
}

pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, ApiError> {
    read_json(http.get(url).send().await.map_err(transport)?).await
}

fn check_study_id(id: &str) -> Result<(), ClientError> {
    if valid_study_id(id) {
        Ok(())
    } else {
        Err(ClientError::Usage(format!(
            "study id {id:?} must be 1-64 characters of [a-z0-9-]"
        )))
    }
}

/// The network description: `<devnet>/network.json` or `network`.
pub fn load_network(
    devnet_dir: Option<&Path>,
    network: Option<&Path>,
) -> Result<NetworkConfig, ClientError> {
    let path: PathBuf = match (devnet_dir, network) {
        (Some(_), Some(_)) => {
            return Err(ClientError::Usage(
                "give either --devnet <dir> or --network <file>, not both".into(),
            ))
        }
        (Some(d), None) => d.join("network.json"),
        (None, Some(n)) => n.to_path_buf(),
        (None, None) => {
            return Err(ClientError::Usage(
                "give --devnet <dir> or --network <network.json>".into(),
            ))
        }
    };
    Ok(NetworkConfig::load(&path)?)
}

/// The party signing keys of `net`, in party order.
pub fn party_keys(net: &NetworkConfig) -> [String; 3] {
    [0, 1, 2].map(|i| net.parties[i].sign_key.to_ascii_lowercase())
}

/// Verifies a release as served by the consumer API: the three signed
/// copies must verify under the network's party keys and be identical,
/// the stated release must be exactly the signed document, and it must
/// be a release of `study_id`. Returns the locally verified release.
pub fn reverify_release(
    net: &NetworkConfig,
    study_id: &str,
    claimed: &VerifiedRelease,
) -> Result<VerifiedRelease, VerifyError> {
    let v = verify_release(&claimed.signatures, &party_keys(net))?;
    // What is returned is the signed document parsed here; the API's
    // restatement must match it (floats went through one more JSON round
    // trip there, hence `agrees` rather than `==`).
    let (a, b) = (&v.release, &claimed.release);
    let same_header = (a.version, &a.study_id, a.release_no, a.created_at, a.count)
        == (b.version, &b.study_id, b.release_no, b.created_at, b.count);
    if !same_header || triad_stats::agrees(&b.results, &a.results).is_err() {
        return Err(VerifyError::BodyMismatch);
    }
    if v.release.study_id != study_id {
        return Err(VerifyError::WrongStudy(v.release.study_id));
    }
    Ok(v)
}

/// The latest release of `study_id` from the consumer API, verified again
/// locally (see [`reverify_release`]).
pub async fn latest_release(
    net: &NetworkConfig,
    http: &reqwest::Client,
    study_id: &str,
) -> Result<VerifiedRelease, ClientError> {
    check_study_id(study_id)?;
    let url = format!("{}/v1/studies/{study_id}/release/latest", base(&net.api));
    let claimed: VerifiedRelease =
        get_json(http, &url)
            .await
            .map_err(|source| ClientError::Query {
                study: study_id.into(),
                source,
            })?;
    reverify_release(net, study_id, &claimed).map_err(|source| ClientError::Verify {
        study: study_id.into(),
        source,
    })
}

/// `POST /v1/studies` at the coordinator with the operator token.
pub async fn create_study(
    net: &NetworkConfig,
    http: &reqwest::Client,
    admin_token: &str,
    study: &CreateStudy,
) -> Result<StudyInfo, ClientError> {
    check_study_id(&study.id)?;
    let err = |source| ClientError::CreateStudy {
        study: study.id.clone(),
        source,
    };
    let resp = http
        .post(format!("{}/v1/studies", base(&net.coordinator)))
        .header(triad_wire::messages::ADMIN_TOKEN_HEADER, admin_token.trim())
        .json(study)
        .send()
        .await
        .map_err(|e| err(transport(e)))?;
    read_json(resp).await.map_err(err)
}

#[cfg(test)]
mod tests;
