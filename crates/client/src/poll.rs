//! Polls from the voter's and the operator's side: create a poll, sign up
//! with an attested account, send a vote or a key change as secret shares
//! (never whole to one operator), and fetch the tally the three parties
//! signed (verified here against the network's party keys, not taken on
//! the coordinator's word).

use rand::RngCore;
use triad_attestation::Attestation;
use triad_maci::{Command, PrivKey, PubKey};
use triad_polls::mpc::rekey::{share_deactivations, share_rekeys};
use triad_polls::mpc::{encode, share_messages};
use triad_polls::rekey::{deactivation_commitment, rekey_nullifier, Rekey};
use triad_polls::Message;
use triad_wire::https::read_json;
use triad_wire::messages::ADMIN_TOKEN_HEADER;
use triad_wire::poll::{
    component_commitment, poll_study_id, verify_tally, LogEntry, MessageKind, MessageReady,
    MessageRequest, MessageShares, MessageTicket, PollInfo, PollSpec, ShareSet, SignupRequest,
    VerifiedTally,
};
use triad_wire::{ApiError, NetworkConfig};

use crate::contribute::{attest, prove_target, ContributeOptions};
use crate::{base, get_json, party_keys, transport, ClientError};

fn step(what: impl Into<String>) -> impl FnOnce(ApiError) -> ClientError {
    let what = what.into();
    move |source| ClientError::Poll { what, source }
}

async fn post_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &impl serde::Serialize,
    admin: Option<&str>,
) -> Result<T, ApiError> {
    let mut req = http.post(url).json(body);
    if let Some(t) = admin {
        req = req.header(ADMIN_TOKEN_HEADER, t);
    }
    read_json(req.send().await.map_err(transport)?).await
}

/// `POST /v1/polls` with the operator token.
pub async fn create_poll(
    net: &NetworkConfig,
    http: &reqwest::Client,
    admin_token: &str,
    spec: &PollSpec,
) -> Result<PollInfo, ClientError> {
    let url = format!("{}/v1/polls", base(&net.coordinator));
    post_json(http, &url, spec, Some(admin_token))
        .await
        .map_err(step(format!("creating poll {}", spec.id)))
}

pub async fn poll_info(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
) -> Result<PollInfo, ClientError> {
    let url = format!("{}/v1/polls/{poll}", base(&net.coordinator));
    get_json(http, &url)
        .await
        .map_err(step(format!("fetching poll {poll}")))
}

/// An accepted sign-up.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Signed {
    pub poll_id: u64,
    pub state_index: u64,
    pub voice_credits: u64,
}

/// Signs `key` up to `poll` with an attestation already made for it
/// (`study_id` = `poll-{id}`).
pub async fn signup_attested(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    attestation: Attestation,
    key: &PubKey,
) -> Result<Signed, ClientError> {
    let url = format!("{}/v1/polls/{poll}/signups", base(&net.coordinator));
    let req = SignupRequest {
        attestation,
        pub_key: key.to_string(),
    };
    let v: serde_json::Value = post_json(http, &url, &req, None)
        .await
        .map_err(step(format!("signing up to poll {poll}")))?;
    let field = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| ClientError::Internal(format!("sign-up answer without {k}")))
    };
    Ok(Signed {
        poll_id: poll,
        state_index: field("state_index")?,
        voice_credits: field("voice_credits")?,
    })
}

/// Attests the caller's account through the notary for `poll` (the same
/// flow as a contribution, for `poll-{id}` and the poll's data spec).
/// `api_key` goes to the data source inside TLS only.
pub async fn attest_for_poll(
    net: &NetworkConfig,
    poll: u64,
    data_spec: &triad_attestation::DataSpec,
    api_key: &str,
    opts: &ContributeOptions,
) -> Result<Attestation, ClientError> {
    let (target, ds_ca) = prove_target(net, opts, api_key)?;
    let (att, _opening) =
        attest(net, &target, &ds_ca, &poll_study_id(poll), data_spec, opts).await?;
    Ok(att)
}

/// Attests the caller's account ([`attest_for_poll`]) and signs `key` up.
pub async fn signup(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    api_key: &str,
    key: &PubKey,
    opts: &ContributeOptions,
) -> Result<Signed, ClientError> {
    let info = poll_info(net, http, poll).await?;
    let att = attest_for_poll(net, poll, &info.spec.data_spec, api_key, opts).await?;
    signup_attested(net, http, poll, att, key).await
}

/// What a voter asks for: a vote, optionally with a key change.
#[derive(Clone, Debug)]
pub struct Vote {
    pub option: u64,
    pub weight: u64,
    pub nonce: u64,
    /// The key the voter's state leaf takes if the command is valid
    /// (MACI's key change); `None` keeps the signing key.
    pub new_key: Option<PubKey>,
}

/// Signs one MACI command with `key`, splits it into the three parties'
/// share sets, has them stored, and waits until the coordinator logged it.
/// Returns the receipt: the log entry (position, time, commitments).
pub async fn send_vote(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    state_index: u64,
    key: &PrivKey,
    vote: &Vote,
) -> Result<LogEntry, ClientError> {
    let signing = key.signing_key();
    let command = Command {
        state_index,
        vote_option_index: vote.option,
        new_vote_weight: vote.weight,
        nonce: vote.nonce,
        poll_id: poll,
        new_pub_key: vote.new_key.unwrap_or_else(|| signing.public_key()),
        salt: crate::random_fr(&mut rand::rngs::OsRng),
    };
    let message = Message::sign(command, &signing, 0)
        .map_err(|e| ClientError::Usage(format!("the command cannot be signed: {e}")))?;
    send_message(net, http, poll, &message).await
}

/// [`send_vote`] for an already signed message (tests send forged ones).
pub async fn send_message(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    message: &Message,
) -> Result<LogEntry, ClientError> {
    let plain = encode(message)
        .map_err(|e| ClientError::Usage(format!("the command does not pack: {e}")))?;
    let views = share_messages(&[plain], &mut rand::rngs::OsRng);
    let sets = views.map(|v| ShareSet::vote(&v));
    send_sets(net, http, poll, sets).await
}

/// Salts and commits to the three components, opens a ticket with the
/// commitments (and the kind), uploads each party's share set (components
/// `i` and `i + 1`) with their salts, and waits until the coordinator
/// logged the message. Returns the log entry.
async fn send_sets(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    sets: [ShareSet; 3],
) -> Result<LogEntry, ClientError> {
    let mut rng = rand::rngs::OsRng;
    let salts: [[u8; 32]; 3] = std::array::from_fn(|_| {
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        salt
    });
    // Component j is the first of party j's share set.
    let commitments =
        std::array::from_fn(|j| component_commitment(poll, j, &salts[j], &sets[j], 0));
    let url = format!("{}/v1/polls/{poll}/messages", base(&net.coordinator));
    let req = MessageRequest {
        commitments,
        kind: sets[0].kind.clone(),
    };
    let ticket: MessageTicket = post_json(http, &url, &req, None)
        .await
        .map_err(step(format!("opening a message to poll {poll}")))?;
    for (i, set) in sets.iter().enumerate() {
        let url = format!("{}/v1/polls/{poll}/shares", base(&net.parties[i].url));
        let held = [salts[i], salts[(i + 1) % 3]];
        let up = MessageShares::new(&ticket.submission_id, &ticket.token, held, set);
        let _: serde_json::Value = post_json(http, &url, &up, None)
            .await
            .map_err(|source| ClientError::Shares { party: i, source })?;
    }
    let url = format!(
        "{}/v1/poll-messages/{}/ready",
        base(&net.coordinator),
        ticket.submission_id
    );
    post_json(
        http,
        &url,
        &MessageReady {
            token: ticket.token.clone(),
        },
        None,
    )
    .await
    .map_err(step("logging the message"))
}

/// The deactivation of `state_index`'s registered key `key` carrying
/// `c = Poseidon(secret, 1)` in its salt (docs/polls.md, "Anonymous
/// re-keying"); the other command fields do not matter.
pub fn deactivation_message(
    poll: u64,
    state_index: u64,
    key: &PrivKey,
    secret: &triad_maci::Fr,
) -> Result<Message, ClientError> {
    let signing = key.signing_key();
    let command = Command {
        state_index,
        vote_option_index: 0,
        new_vote_weight: 0,
        nonce: 0,
        poll_id: poll,
        new_pub_key: signing.public_key(),
        salt: deactivation_commitment(secret),
    };
    Message::sign(command, &signing, 0)
        .map_err(|e| ClientError::Usage(format!("the command cannot be signed: {e}")))
}

/// Deactivates `state_index`'s key: a fresh secret `s`, the signed
/// deactivation as secret shares (with the bits of its commitment), logged
/// like a vote. Returns the receipt and `s` (keep it: re-keying needs it).
/// The receipt is the same whether or not the deactivation is valid: only
/// the three parties together ever learn that, and they never tell.
pub async fn deactivate(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    state_index: u64,
    key: &PrivKey,
) -> Result<(LogEntry, triad_maci::Fr), ClientError> {
    let secret = crate::random_fr(&mut rand::rngs::OsRng);
    let message = deactivation_message(poll, state_index, key, &secret)?;
    Ok((send_deactivation(net, http, poll, &message).await?, secret))
}

/// [`deactivate`] for an already signed message (tests send invalid ones).
pub async fn send_deactivation(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    message: &Message,
) -> Result<LogEntry, ClientError> {
    let views = share_deactivations(std::slice::from_ref(message), &mut rand::rngs::OsRng)
        .map_err(|e| ClientError::Usage(format!("the command does not pack: {e}")))?;
    let sets = views.map(|v| ShareSet::deactivation(&v));
    send_sets(net, http, poll, sets).await
}

/// Adds `new_key` to the poll anonymously with the secret of a
/// deactivation: the secret and the bits of its commitment as shares, the
/// new key and the nullifier `Poseidon(s, 2, poll)` in the clear. The
/// receipt names the new key's state index; it is the same whether or not
/// the secret matches a valid deactivation. A second re-key with the same
/// secret is refused (409 `nullifier_used`): the voter knew it reused it.
pub async fn rekey(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
    secret: &triad_maci::Fr,
    new_key: &PubKey,
) -> Result<LogEntry, ClientError> {
    let r = Rekey {
        secret: *secret,
        new_key: *new_key,
        timestamp: 0,
    };
    let kind = MessageKind::Rekey {
        new_key: new_key.to_string(),
        nullifier: triad_crypto::fr_to_hex(&rekey_nullifier(secret, poll)),
    };
    let views = share_rekeys(&[r], &mut rand::rngs::OsRng);
    let sets = views.map(|v| ShareSet::rekey(kind.clone(), &v));
    send_sets(net, http, poll, sets).await
}

/// The tally of `poll`, accepted only if the three parties' signatures
/// verify under the network's keys and it is this poll's.
pub async fn fetch_tally(
    net: &NetworkConfig,
    http: &reqwest::Client,
    poll: u64,
) -> Result<VerifiedTally, ClientError> {
    let url = format!("{}/v1/polls/{poll}/tally", base(&net.coordinator));
    let claimed: VerifiedTally = get_json(http, &url)
        .await
        .map_err(step(format!("fetching the tally of poll {poll}")))?;
    let v = verify_tally(&claimed.signatures, &party_keys(net)).map_err(ClientError::PollTally)?;
    if v.tally.poll_id != poll || v.tally != claimed.tally {
        return Err(ClientError::PollTally(triad_wire::ReleaseError::Disagree));
    }
    Ok(v)
}
