//! What the services say to each other about polls (docs/polls.md,
//! "Service layer"): the poll's public description, sign-ups, the public
//! message log, one party's share set of a message with its commitment,
//! the tally request and the tally the three parties sign.
//!
//! A voter's message never reaches one operator whole: the client
//! secret-shares the encoded message ([`triad_polls::mpc::share_messages`])
//! into components 0, 1, 2, commits to each with its own salt
//! ([`component_commitment`]) and hands party `i` only components `i` and
//! `i + 1` with their salts; the coordinator logs the three commitments.
//! Both holders of a component check it against the same logged
//! commitment, so the parties' copies of a logged message agree unless a
//! party lies (docs/polls.md, "Committed components").

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triad_attestation::{Attestation, DataSource, DataSpec};
use triad_crypto::{fr_from_hex, fr_to_hex, Fr};
use triad_polls::mpc::encode::{FR, WORDS};
use triad_polls::mpc::rekey::C_WORDS;
use triad_polls::{Mode, ParamsError, PollParams, Tally};

use crate::release::{sign_document, verify_documents, ReleaseError};
use crate::PartySigningKey;

pub const TALLY_VERSION: u32 = 1;
const TALLY_DOMAIN: &[u8] = b"triad/poll-tally/v1\0";
const SHARE_DOMAIN: &[u8] = b"triad/poll-component/v1\0";
/// Longest poll name.
pub const MAX_POLL_NAME: usize = 200;

/// The study id an attestation for a poll's sign-up names: `poll-{id}`.
/// Study ids may not start with `poll-` ([`crate::study::validate_study`]),
/// so an attestation made for a study never opens a poll's sign-up.
pub fn poll_study_id(poll_id: u64) -> String {
    format!("poll-{poll_id}")
}

/// MACI's `EMode` on the wire.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PollMode {
    Quadratic,
    Linear,
}

impl From<PollMode> for Mode {
    fn from(m: PollMode) -> Mode {
        match m {
            PollMode::Quadratic => Mode::Quadratic,
            PollMode::Linear => Mode::Linear,
        }
    }
}

/// A poll as every service sees it (`POST /v1/polls` by the operator).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// MACI's poll id: below 2^50, packed into every command.
    pub id: u64,
    pub name: String,
    pub vote_options: u64,
    pub mode: PollMode,
    /// Unix seconds, exclusive: sign-ups at or after it are refused.
    pub signup_deadline: u64,
    /// Unix seconds, exclusive: messages logged at or after it are refused.
    pub voting_deadline: u64,
    /// K: only a state index's K most recent well-formed messages count.
    #[serde(default = "default_window")]
    pub window: u64,
    /// The uniform voice-credit budget of every sign-up.
    pub voice_credits: u64,
    /// Sign-up needs an attestation of this spec, from this source, naming
    /// [`poll_study_id`]; its nullifier allows one sign-up per account.
    pub data_spec: DataSpec,
    pub source: DataSource,
    /// Length of a re-keying epoch in seconds: epoch `k` holds the
    /// deactivations and re-keys logged in `[signup_deadline + k·E,
    /// signup_deadline + (k+1)·E)` (earlier deactivations join epoch 0).
    #[serde(default = "default_epoch")]
    pub rekey_epoch_secs: u64,
}

fn default_window() -> u64 {
    triad_polls::DEFAULT_WINDOW
}

/// One hour.
pub const DEFAULT_REKEY_EPOCH_SECS: u64 = 3600;

fn default_epoch() -> u64 {
    DEFAULT_REKEY_EPOCH_SECS
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PollSpecError {
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("the poll name must be 1 to {MAX_POLL_NAME} bytes")]
    Name,
    #[error("the voice-credit budget must be at least 1")]
    NoCredits,
    #[error("data spec: {0}")]
    DataSpec(String),
    #[error("data source: {0}")]
    Source(String),
    #[error("the re-keying epoch must be at least 1 second")]
    Epoch,
}

impl PollSpec {
    /// The processing rules' parameters; refuses what MACI could not run.
    pub fn params(&self) -> Result<PollParams, PollSpecError> {
        if self.name.is_empty()
            || self.name.len() > MAX_POLL_NAME
            || self.name.chars().any(char::is_control)
        {
            return Err(PollSpecError::Name);
        }
        if self.voice_credits == 0 {
            return Err(PollSpecError::NoCredits);
        }
        if self.rekey_epoch_secs == 0 {
            return Err(PollSpecError::Epoch);
        }
        self.data_spec
            .validate()
            .map_err(|e| PollSpecError::DataSpec(e.to_string()))?;
        self.source
            .validate()
            .map_err(|e| PollSpecError::Source(e.to_string()))?;
        Ok(PollParams::new(
            self.id,
            self.vote_options,
            self.mode.into(),
            self.signup_deadline,
            self.voting_deadline,
        )?
        .with_window(self.window)?)
    }

    /// The re-keying epoch of an entry logged at `timestamp`.
    pub fn epoch_of(&self, timestamp: u64) -> u64 {
        timestamp.saturating_sub(self.signup_deadline) / self.rekey_epoch_secs.max(1)
    }
}

/// What a logged message does (docs/polls.md, "Anonymous re-keying").
/// Public: the log says which entries are votes, deactivations and
/// re-keys, never whom they concern or whether they work.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MessageKind {
    /// A MACI command (the share set: the encoded command).
    #[default]
    Vote,
    /// A command signed by the leaf's registered key whose salt is
    /// `c = Poseidon(s, 1)` (the share set: the encoded command and the
    /// bits of `c`).
    Deactivate,
    /// A fresh key and the nullifier `Poseidon(s, 2, poll)` the voter
    /// claims (the share set: `s` in `fr[·][0]` and the bits of
    /// `Poseidon(s, 1)`).
    Rekey {
        /// `macipk.…`
        new_key: String,
        /// 64 hex: the field element, big-endian.
        nullifier: String,
    },
}

impl MessageKind {
    pub fn is_vote(&self) -> bool {
        matches!(self, MessageKind::Vote)
    }

    /// A re-key's new key and claimed nullifier, parsed.
    pub fn rekey(&self) -> Option<Result<(triad_maci::PubKey, Fr), String>> {
        match self {
            MessageKind::Rekey { new_key, nullifier } => Some((|| {
                let k = new_key.parse().map_err(|e| format!("new key: {e}"))?;
                let n = fr_from_hex(nullifier).map_err(|e| format!("nullifier: {e}"))?;
                // One spelling per nullifier: the coordinator compares them
                // as strings, so "0x…" or upper case would let a secret be
                // used twice (and every party would refuse that log).
                if fr_to_hex(&n) != *nullifier {
                    return Err("nullifier: 64 lowercase hex digits, no prefix".into());
                }
                Ok((k, n))
            })()),
            _ => None,
        }
    }

    /// Bytes that bind the kind into a share commitment.
    fn bind(&self, h: &mut Sha256) {
        match self {
            MessageKind::Vote => h.update([0u8]),
            MessageKind::Deactivate => h.update([1u8]),
            MessageKind::Rekey { new_key, nullifier } => {
                h.update([2u8]);
                h.update((new_key.len() as u64).to_le_bytes());
                h.update(new_key.as_bytes());
                h.update(nullifier.as_bytes());
            }
        }
    }
}

/// A poll with its public counters (`GET /v1/polls/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollInfo {
    #[serde(flatten)]
    pub spec: PollSpec,
    pub created_at: u64,
    pub signups: u64,
    /// Messages in the public log.
    pub messages: u64,
    pub tallied: bool,
    /// The poll's directory id (64 hex, docs/directory.md): what a voter
    /// needs to find it (`triad vote --poll-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
}

/// `POST /v1/polls/{id}/signups`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub attestation: Attestation,
    /// The voter's MACI public key (`macipk.…`).
    pub pub_key: String,
}

/// An accepted sign-up: public, as in MACI (`GET /v1/polls/{id}/signups`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// 1, 2, 3, … (0 is MACI's blank leaf).
    pub state_index: u64,
    pub pub_key: String,
    pub voice_credits: u64,
    pub timestamp: u64,
    /// The attestation as submitted; every party re-verifies it.
    pub attestation: Attestation,
}

/// `POST /v1/polls/{id}/messages`: the client's commitments to components
/// 0, 1, 2 of the message ([`component_commitment`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub commitments: [String; 3],
    #[serde(default, skip_serializing_if = "MessageKind::is_vote")]
    pub kind: MessageKind,
}

/// The coordinator's answer: where to upload, with which token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTicket {
    pub submission_id: String,
    /// 64 hex; handed to each party with the shares, as for contributions.
    pub token: String,
    pub parties: Vec<String>,
}

impl std::fmt::Debug for MessageTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageTicket({}, token redacted)", self.submission_id)
    }
}

/// `POST /v1/polls/{id}/shares` at party `i`: its two components of one
/// message (components `i` and `i + 1`), and their salts.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageShares {
    pub submission_id: String,
    pub token: String,
    /// The salts of components `i` and `i + 1`, 64 hex each.
    pub salts: [String; 2],
    /// [`WORDS`] XOR-shared words, components `i` and `i+1`.
    pub words: [Vec<u64>; 2],
    /// [`FR`] field elements (64 hex each), components `i` and `i+1`.
    pub fr: [Vec<String>; 2],
    #[serde(default, skip_serializing_if = "MessageKind::is_vote")]
    pub kind: MessageKind,
    /// Deactivations and re-keys: [`C_WORDS`] words per component, the
    /// bits of a commitment `Poseidon(s, 1)`; absent for votes.
    #[serde(default, skip_serializing_if = "no_words")]
    pub c_bits: [Vec<u64>; 2],
}

fn no_words(w: &[Vec<u64>; 2]) -> bool {
    w[0].is_empty() && w[1].is_empty()
}

impl std::fmt::Debug for MessageShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageShares({}, redacted)", self.submission_id)
    }
}

/// One party's share set, parsed. What the components mean depends on
/// the kind ([`MessageKind`]); unused ones are zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareSet {
    pub kind: MessageKind,
    pub words: [[u64; WORDS]; 2],
    pub fr: [[Fr; FR]; 2],
    pub c_bits: [[u64; C_WORDS]; 2],
}

impl ShareSet {
    /// All-zero components of a kind.
    pub fn zero(kind: MessageKind) -> Self {
        ShareSet {
            kind,
            words: [[0; WORDS]; 2],
            fr: [[Fr::from(0u64); FR]; 2],
            c_bits: [[0; C_WORDS]; 2],
        }
    }

    /// A vote's share set from one party's view of the encoded command
    /// ([`triad_polls::mpc::share_messages`]).
    pub fn vote(v: &triad_polls::mpc::SharedMessages) -> Self {
        let mut set = ShareSet::zero(MessageKind::Vote);
        set.put_command(v);
        set
    }

    /// A deactivation's share set from one party's view
    /// ([`triad_polls::mpc::rekey::share_deactivations`]).
    pub fn deactivation(d: &triad_polls::mpc::rekey::SharedDeactivations) -> Self {
        let mut set = ShareSet::zero(MessageKind::Deactivate);
        set.put_command(&d.msgs);
        set.c_bits = std::array::from_fn(|c| {
            let x = if c == 0 { &d.c_bits.a } else { &d.c_bits.b };
            std::array::from_fn(|k| x[k].0)
        });
        set
    }

    /// A re-key's share set (`kind` names its new key and nullifier) from
    /// one party's view ([`triad_polls::mpc::rekey::share_rekeys`]).
    pub fn rekey(kind: MessageKind, r: &triad_polls::mpc::rekey::SharedRekeys) -> Self {
        let mut set = ShareSet::zero(kind);
        set.fr[0][0] = r.secret.a[0];
        set.fr[1][0] = r.secret.b[0];
        set.c_bits = std::array::from_fn(|c| {
            let x = if c == 0 { &r.c_bits.a } else { &r.c_bits.b };
            std::array::from_fn(|k| x[k].0)
        });
        set
    }

    fn put_command(&mut self, v: &triad_polls::mpc::SharedMessages) {
        for k in 0..WORDS {
            self.words[0][k] = v.words.a[k].0;
            self.words[1][k] = v.words.b[k].0;
        }
        self.fr[0].copy_from_slice(&v.fr.a[..FR]);
        self.fr[1].copy_from_slice(&v.fr.b[..FR]);
    }

    /// Whether the components a kind does not use are zero, and a
    /// re-key's key and nullifier parse.
    pub fn check_shape(&self) -> Result<(), String> {
        let zero_words = self.words.iter().all(|w| w.iter().all(|&x| x == 0));
        let zero_fr_tail = self
            .fr
            .iter()
            .all(|f| f[1..].iter().all(|x| *x == Fr::from(0u64)));
        let zero_c = self.c_bits.iter().all(|w| w.iter().all(|&x| x == 0));
        match &self.kind {
            MessageKind::Vote if !zero_c => Err("a vote carries no commitment bits".into()),
            MessageKind::Rekey { .. } if !zero_words || !zero_fr_tail => {
                Err("a re-key carries only its secret and commitment bits".into())
            }
            k => k.rekey().transpose().map(|_| ()),
        }
    }
}

impl MessageShares {
    /// The two salts and the share set, or why they do not parse.
    pub fn parse(&self) -> Result<([[u8; 32]; 2], ShareSet), String> {
        let salt = |h: &String| -> Result<[u8; 32], String> {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| "each salt must be 64 hex digits".to_string())
        };
        let salts = [salt(&self.salts[0])?, salt(&self.salts[1])?];
        let mut set = ShareSet::zero(self.kind.clone());
        if !no_words(&self.c_bits) {
            if self.c_bits.iter().any(|w| w.len() != C_WORDS) {
                return Err(format!("c_bits has {C_WORDS} words per component"));
            }
            for c in 0..2 {
                set.c_bits[c].copy_from_slice(&self.c_bits[c]);
            }
        }
        for c in 0..2 {
            if self.words[c].len() != WORDS || self.fr[c].len() != FR {
                return Err(format!(
                    "each component has {WORDS} words and {FR} field elements"
                ));
            }
            set.words[c].copy_from_slice(&self.words[c]);
            for (j, h) in self.fr[c].iter().enumerate() {
                set.fr[c][j] = fr_from_hex(h).map_err(|e| format!("fr[{c}][{j}]: {e}"))?;
            }
        }
        set.check_shape()?;
        Ok((salts, set))
    }

    /// Party `i`'s upload: its share set and the salts of components `i`
    /// and `i + 1`.
    pub fn new(submission_id: &str, token: &str, salts: [[u8; 32]; 2], set: &ShareSet) -> Self {
        Self {
            submission_id: submission_id.into(),
            token: token.into(),
            salts: salts.map(hex::encode),
            words: set.words.map(|w| w.to_vec()),
            fr: set.fr.map(|f| f.iter().map(fr_to_hex).collect()),
            kind: set.kind.clone(),
            c_bits: if set.kind.is_vote() {
                [Vec::new(), Vec::new()]
            } else {
                set.c_bits.map(|w| w.to_vec())
            },
        }
    }
}

/// SHA-256 over a domain, the poll id, the kind, the component's index
/// `j`, its salt and the component itself: what the client commits to and
/// the coordinator logs for component `j` of a message. `held` picks the
/// component in a party's share set: 0 for the party's own index, 1 for
/// the next. The salt keeps a party that does not hold the component from
/// testing guesses of the vote; the kind keeps anyone from relabelling a
/// logged message; the index keeps components from being swapped.
pub fn component_commitment(
    poll_id: u64,
    j: usize,
    salt: &[u8; 32],
    set: &ShareSet,
    held: usize,
) -> String {
    let mut h = Sha256::new();
    h.update(SHARE_DOMAIN);
    h.update(poll_id.to_le_bytes());
    set.kind.bind(&mut h);
    h.update([j as u8]);
    h.update(salt);
    for w in set.words[held] {
        h.update(w.to_le_bytes());
    }
    for f in &set.fr[held] {
        h.update(fr_to_hex(f).as_bytes());
    }
    for w in set.c_bits[held] {
        h.update(w.to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// The commitments to the two components party `party` holds (components
/// `party` and `party + 1`), from its share set and their salts.
pub fn held_commitments(
    poll_id: u64,
    party: usize,
    salts: &[[u8; 32]; 2],
    set: &ShareSet,
) -> [String; 2] {
    std::array::from_fn(|c| component_commitment(poll_id, (party + c) % 3, &salts[c], set, c))
}

/// What identifies party `party`'s share set of a logged message in its
/// store and in [`ConfirmMessage`]: the logged commitments to components
/// `party` and `party + 1`, concatenated (128 hex).
pub fn holder_key(commitments: &[String; 3], party: usize) -> String {
    format!("{}{}", commitments[party % 3], commitments[(party + 1) % 3])
}

/// `POST /v1/polls/messages/{sid}/ready`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageReady {
    pub token: String,
}

impl std::fmt::Debug for MessageReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageReady(token redacted)")
    }
}

/// One entry of the public message log, and the voter's receipt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// 0, 1, 2, … in the poll.
    pub position: u64,
    pub submission_id: String,
    /// When the coordinator logged it (before the voting deadline).
    pub timestamp: u64,
    pub commitments: [String; 3],
    #[serde(default, skip_serializing_if = "MessageKind::is_vote")]
    pub kind: MessageKind,
    /// A re-key's new leaf: assigned when it is logged (sign-ups + the
    /// re-keys logged before + 1), whether or not the re-key will work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_index: Option<u64>,
}

/// `POST /internal/polls/{id}/confirm` (coordinator → party): do you hold
/// this message's shares under this token and these commitments? A party
/// that says yes has them durably and marks them confirmed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMessage {
    pub submission_id: String,
    pub token_sha256: String,
    /// The logged commitments to the components the party holds
    /// ([`holder_key`]).
    pub commitment: String,
    /// The kind the coordinator will log: a party confirms only share sets
    /// uploaded as that kind.
    #[serde(default, skip_serializing_if = "MessageKind::is_vote")]
    pub kind: MessageKind,
}

/// `POST /internal/polls/{id}/tally` (coordinator → parties).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyRequest {
    pub spec: PollSpec,
    pub signups: Vec<Signup>,
    pub log: Vec<LogEntry>,
}

/// A party's answer to a [`TallyRequest`]: still computing, or its signed
/// copy. The request is idempotent: asking again never starts a second run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TallyProgress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedTally>,
    /// Why the last run failed, if it did (the next request retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Whether that failure was a check catching a party deviating from
    /// the protocol (malicious mode): an abort an operator must see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cheating: bool,
}

/// What the three parties sign once the poll is processed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PollTally {
    pub version: u32,
    pub poll_id: u64,
    pub signups: u64,
    /// Messages in the log that was processed.
    pub messages: u64,
    /// SHA-256 (hex) of the tally request: the log and sign-ups processed.
    pub input_sha256: String,
    pub votes: Vec<u128>,
    pub spent: u128,
    pub spent_per_option: Vec<u128>,
    /// Deactivations and re-keys in the log (counted in `messages`).
    #[serde(default)]
    pub deactivations: u64,
    #[serde(default)]
    pub rekeys: u64,
    /// The mode the parties processed the poll in: semi-honest, because
    /// the polls' protocols have no malicious-secure version yet (absent
    /// in tallies made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<crate::release::SecurityMode>,
}

impl PollTally {
    pub fn tally(&self) -> Tally {
        Tally {
            votes: self.votes.clone(),
            spent: self.spent,
            spent_per_option: self.spent_per_option.clone(),
        }
    }
}

/// One party's signed copy of a [`PollTally`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedTally {
    pub party: u8,
    pub tally_json: String,
    pub signature: String,
}

/// A tally all three parties signed (`GET /v1/polls/{id}/tally`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifiedTally {
    pub tally: PollTally,
    pub signatures: Vec<SignedTally>,
}

pub fn sign_tally(key: &PartySigningKey, party: u8, tally: &PollTally) -> SignedTally {
    let json = serde_json::to_string(tally).expect("tally serializes");
    let signature = sign_document(key, TALLY_DOMAIN, &json);
    SignedTally {
        party,
        tally_json: json,
        signature,
    }
}

/// Accepts a tally only if parties 0, 1, 2 each signed the same bytes.
pub fn verify_tally(
    copies: &[SignedTally],
    keys: &[String; 3],
) -> Result<VerifiedTally, ReleaseError> {
    let docs: Vec<(u8, &str, &str)> = copies
        .iter()
        .map(|c| (c.party, c.tally_json.as_str(), c.signature.as_str()))
        .collect();
    verify_documents(&docs, keys, TALLY_DOMAIN)?;
    let tally: PollTally = serde_json::from_str(&copies[0].tally_json)
        .map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    if tally.version != TALLY_VERSION {
        return Err(ReleaseError::Malformed(format!(
            "unsupported version {}",
            tally.version
        )));
    }
    Ok(VerifiedTally {
        tally,
        signatures: copies.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ([PartySigningKey; 3], [String; 3]) {
        let k = [1u8, 2, 3].map(|s| PartySigningKey::from_seed([s; 32]));
        let pk = [0, 1, 2].map(|i| k[i].public_key().to_hex());
        (k, pk)
    }

    fn tally() -> PollTally {
        PollTally {
            version: TALLY_VERSION,
            poll_id: 7,
            signups: 3,
            messages: 4,
            input_sha256: "00".repeat(32),
            votes: vec![1, u128::MAX],
            spent: 5,
            spent_per_option: vec![1, 4],
            deactivations: 0,
            rekeys: 0,
            security: Some(crate::release::SecurityMode::SemiHonest),
        }
    }

    #[test]
    fn a_tally_needs_three_signatures_on_the_same_bytes() {
        let (k, pk) = keys();
        let t = tally();
        let copies: Vec<_> = (0..3).map(|i| sign_tally(&k[i], i as u8, &t)).collect();
        assert_eq!(verify_tally(&copies, &pk).unwrap().tally, t);
        assert_eq!(
            verify_tally(&copies[..2], &pk).unwrap_err(),
            ReleaseError::WrongParties
        );
        let mut other = t.clone();
        other.votes[0] = 2;
        let mut forged = copies.clone();
        forged[2] = sign_tally(&k[2], 2, &other);
        assert_eq!(
            verify_tally(&forged, &pk).unwrap_err(),
            ReleaseError::Disagree
        );
        let mut wrong_key = copies.clone();
        wrong_key[1] = sign_tally(&k[0], 1, &t);
        assert_eq!(
            verify_tally(&wrong_key, &pk).unwrap_err(),
            ReleaseError::BadSignature(1)
        );
        // A release signature is not a tally signature (domains differ).
        let mut cross = copies;
        cross[0].signature = sign_document(&k[0], b"triad/release/v1\0", &cross[0].tally_json);
        assert_eq!(
            verify_tally(&cross, &pk).unwrap_err(),
            ReleaseError::BadSignature(0)
        );
    }

    #[test]
    fn share_sets_round_trip_and_commitments_bind_every_field() {
        let set = ShareSet {
            kind: MessageKind::Deactivate,
            words: [[7; WORDS], [u64::MAX; WORDS]],
            fr: [[Fr::from(3u64); FR], [-Fr::from(1u64); FR]],
            c_bits: [[5; C_WORDS], [6; C_WORDS]],
        };
        let salts = [[9; 32], [10; 32]];
        let up = MessageShares::new("sid", "tok", salts, &set);
        let (back_salts, back) = up.parse().unwrap();
        assert_eq!((back_salts, &back), (salts, &set));
        let [c, d] = held_commitments(1, 2, &salts, &set);
        // Party 2 holds components 2 and 0.
        assert_eq!(c, component_commitment(1, 2, &salts[0], &set, 0));
        assert_eq!(d, component_commitment(1, 0, &salts[1], &set, 1));
        assert_ne!(c, component_commitment(2, 2, &salts[0], &set, 0));
        assert_ne!(c, component_commitment(1, 1, &salts[0], &set, 0));
        assert_ne!(c, component_commitment(1, 2, &[8; 32], &set, 0));
        // Each commitment binds every field of its own component and
        // nothing of the other.
        let mut s2 = set.clone();
        s2.words[1][WORDS - 1] ^= 1;
        assert_eq!(held_commitments(1, 2, &salts, &s2)[0], c);
        assert_ne!(held_commitments(1, 2, &salts, &s2)[1], d);
        let mut s3 = set.clone();
        s3.fr[0][FR - 1] += Fr::from(1u64);
        assert_ne!(held_commitments(1, 2, &salts, &s3)[0], c);
        assert_eq!(held_commitments(1, 2, &salts, &s3)[1], d);
        let mut s4 = set.clone();
        s4.c_bits[1][C_WORDS - 1] ^= 1;
        assert_ne!(held_commitments(1, 2, &salts, &s4)[1], d);
        let mut s4 = set.clone();
        s4.words[0][0] ^= 1 << 63;
        assert_ne!(held_commitments(1, 2, &salts, &s4)[0], c);
        // The kind is bound: a deactivation cannot be logged as a vote.
        let mut s5 = set.clone();
        s5.kind = MessageKind::Vote;
        assert_ne!(held_commitments(1, 2, &salts, &s5), [c.clone(), d.clone()]);
        assert_eq!(holder_key(&["a".into(), "b".into(), "c".into()], 2), "ca");
        for bad_salt in ["", "00", &"zz".repeat(32), &"00".repeat(33)] {
            let mut bad = up.clone();
            bad.salts[1] = bad_salt.into();
            assert!(bad.parse().is_err(), "salt {bad_salt:?}");
        }
        let mut bad = up.clone();
        bad.words[0].pop();
        assert!(bad.parse().is_err());
        let mut bad = up;
        bad.fr[1][0] = "zz".into();
        assert!(bad.parse().is_err());
    }

    /// The three parties' share sets of one honestly shared message: each
    /// component's two holders compute the same commitment to it.
    #[test]
    fn both_holders_of_a_component_compute_its_commitment() {
        use rand::SeedableRng;
        let plain = triad_polls::mpc::PlainMessage {
            words: std::array::from_fn(|k| k as u64 * 0x9e37_79b9),
            fr: std::array::from_fn(|k| Fr::from(k as u64 + 5)),
        };
        let views =
            triad_polls::mpc::share_messages(&[plain], &mut rand::rngs::StdRng::seed_from_u64(4));
        let sets = views.map(|v| ShareSet::vote(&v));
        let salts: [[u8; 32]; 3] = std::array::from_fn(|j| [j as u8 + 1; 32]);
        let logged: [String; 3] =
            std::array::from_fn(|j| component_commitment(7, j, &salts[j], &sets[j], 0));
        for (i, set) in sets.iter().enumerate() {
            let mine = [salts[i], salts[(i + 1) % 3]];
            let held = held_commitments(7, i, &mine, set);
            assert_eq!(held.concat(), holder_key(&logged, i), "party {i}");
        }
        // A set whose copy of the next component differs opens only its
        // own component's commitment.
        let mut bad = sets[0].clone();
        bad.words[1][3] ^= 1;
        let held = held_commitments(7, 0, &[salts[0], salts[1]], &bad);
        assert_eq!(held[0], logged[0]);
        assert_ne!(held[1], logged[1]);
    }

    #[test]
    fn share_sets_of_each_kind_keep_their_shape() {
        let key = triad_maci::PrivKey::from_bytes([1; 32])
            .public_key()
            .to_string();
        let rekey = MessageKind::Rekey {
            new_key: key.clone(),
            nullifier: fr_to_hex(&Fr::from(9u64)),
        };
        let mut set = ShareSet::zero(rekey.clone());
        set.fr[0][0] = Fr::from(4u64);
        set.c_bits[1][0] = 1;
        let up = MessageShares::new("sid", "tok", [[1; 32]; 2], &set);
        assert_eq!(up.parse().unwrap().1, set);
        // Round trip through JSON keeps the kind.
        let back: MessageShares =
            serde_json::from_str(&serde_json::to_string(&up).unwrap()).unwrap();
        assert_eq!(back.parse().unwrap().1, set);
        // A re-key with vote words, a vote with commitment bits, a re-key
        // whose key or nullifier does not parse: refused.
        let mut bad = set.clone();
        bad.words[0][0] = 1;
        assert!(MessageShares::new("s", "t", [[1; 32]; 2], &bad)
            .parse()
            .is_err());
        let mut bad = ShareSet::zero(MessageKind::Vote);
        bad.c_bits[0][0] = 1;
        let mut up = MessageShares::new("s", "t", [[1; 32]; 2], &bad);
        up.c_bits = [vec![1; C_WORDS], vec![0; C_WORDS]];
        assert!(up.parse().is_err());
        for kind in [
            MessageKind::Rekey {
                new_key: key.clone(),
                nullifier: fr_to_hex(&Fr::from(0xabcu64)).to_uppercase(),
            },
            MessageKind::Rekey {
                new_key: key.clone(),
                nullifier: format!("0x{}", fr_to_hex(&Fr::from(9u64))),
            },
            MessageKind::Rekey {
                new_key: "macipk.zz".into(),
                nullifier: fr_to_hex(&Fr::from(9u64)),
            },
            MessageKind::Rekey {
                new_key: key,
                nullifier: "00".into(),
            },
        ] {
            let up = MessageShares::new("s", "t", [[1; 32]; 2], &ShareSet::zero(kind));
            assert!(up.parse().is_err());
        }
        let mut short = MessageShares::new("s", "t", [[1; 32]; 2], &set);
        short.c_bits[0].pop();
        assert!(short.parse().is_err());
    }

    #[test]
    fn spec_bounds() {
        let spec = PollSpec {
            id: 1,
            name: "p".into(),
            vote_options: 3,
            mode: PollMode::Quadratic,
            signup_deadline: 10,
            voting_deadline: 20,
            window: 32,
            voice_credits: 100,
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 2,
                account_field: "uid".into(),
            },
            source: DataSource::named("exchange.example"),
            rekey_epoch_secs: 5,
        };
        assert!(spec.params().is_ok());
        assert_eq!(
            [0, 10, 14, 15, u64::MAX].map(|t| spec.epoch_of(t)),
            [0, 0, 0, 1, (u64::MAX - 10) / 5]
        );
        let bad = |f: &dyn Fn(&mut PollSpec)| {
            let mut s = spec.clone();
            f(&mut s);
            s.params().unwrap_err()
        };
        assert_eq!(bad(&|s| s.name.clear()), PollSpecError::Name);
        assert_eq!(bad(&|s| s.voice_credits = 0), PollSpecError::NoCredits);
        assert_eq!(bad(&|s| s.rekey_epoch_secs = 0), PollSpecError::Epoch);
        assert!(matches!(
            bad(&|s| s.vote_options = 0),
            PollSpecError::Params(_)
        ));
        assert!(matches!(bad(&|s| s.id = 1 << 50), PollSpecError::Params(_)));
        assert!(matches!(bad(&|s| s.window = 0), PollSpecError::Params(_)));
        assert!(matches!(
            bad(&|s| s.signup_deadline = 21),
            PollSpecError::Params(_)
        ));
    }
}
