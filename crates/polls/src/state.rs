//! The poll state (MACI's state leaves and ballots) and the rule that
//! applies one message to it (MACI v3 `Poll.processMessage`, the TypeScript
//! reference of the `MessageValidator` and `StateLeafAndBallotTransformer`
//! circuits).

use triad_maci::hash::pad_key;
use triad_maci::{sign_command, verify_command, Command, CommandError, PubKey, Signature};
use triad_maci::{PrivKey, SigningKey};

use crate::params::PollParams;

/// One sign-up, in sign-up order: the i-th sign-up (from 0) gets state
/// index i + 1, because index 0 is MACI's blank leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignUp {
    /// The voter's key at sign-up.
    pub pub_key: PubKey,
    /// The voter's voice-credit budget (MACI: the initial voice-credit
    /// proxy's amount; it may differ between voters).
    pub voice_credits: u64,
    /// When the sign-up was accepted.
    pub timestamp: u64,
}

/// One entry of the poll's public, ordered message log, already decrypted
/// (in the triad: already reassembled from its shares): MACI's command, the
/// EdDSA-Poseidon signature over `Poseidon(command)`, and the key the
/// client says it signed with.
///
/// The signature is *not* checked on arrival: whether it counts depends on
/// the signer's key at processing time, which earlier-processed (that is,
/// later-sent) messages may have changed.
///
/// `signer` is the triad's one addition to MACI's message (docs/polls.md,
/// deviation 9): the MPC verifies the signature under the claimed key, in
/// parallel for all messages, and then only compares that key with the
/// voter's current key during the scan. A client that names a key other
/// than the one it signed with only invalidates its own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub command: Command,
    pub signature: Signature,
    /// The key the signature is claimed to be under.
    pub signer: PubKey,
    /// When the message was appended to the log.
    pub timestamp: u64,
}

impl Message {
    /// Signs `command` with `key` (the voter's key at processing time, see
    /// [`PollState::process_message`]). Fails only for a command that cannot
    /// be packed (a field of 2^50 or more).
    pub fn sign(command: Command, key: &SigningKey, timestamp: u64) -> Result<Self, CommandError> {
        let signature = sign_command(key, &command)?;
        Ok(Message {
            command,
            signature,
            signer: key.public_key(),
            timestamp,
        })
    }

    /// [`Message::sign`] with a MACI private key.
    pub fn sign_with(
        command: Command,
        key: &PrivKey,
        timestamp: u64,
    ) -> Result<Self, CommandError> {
        Self::sign(command, &key.signing_key(), timestamp)
    }
}

/// MACI's state leaf, v2 form (v3 dropped the timestamp and enforces the
/// sign-up deadline in its contract; the triad keeps it so that the deadline
/// is a processing rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLeaf {
    /// The key commands must be signed with; every valid command replaces
    /// it with its `new_pub_key`.
    pub pub_key: PubKey,
    /// Credits not spent: `budget − Σ_o cost(ballot.votes[o])` at all times.
    pub voice_credit_balance: u64,
    /// The sign-up's timestamp.
    pub timestamp: u64,
}

impl StateLeaf {
    /// MACI's blank leaf at index 0: the padding key (whose discrete
    /// logarithm nobody knows), no credits.
    pub fn blank() -> Self {
        StateLeaf {
            pub_key: PubKey::from_point(pad_key()).expect("the padding key is in the subgroup"),
            voice_credit_balance: 0,
            timestamp: 0,
        }
    }
}

/// MACI's ballot: the number of valid messages processed so far for this
/// leaf, and the current weight per option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    pub nonce: u64,
    /// `votes[o]` for `o` in `0..V`.
    pub votes: Vec<u64>,
}

/// Why a message changes nothing. The validity of a message is the
/// conjunction of all checks, so the order in which they are tried does not
/// matter for the outcome; the reason given is the first that fails, in the
/// order of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A command field is 2^50 or more: it cannot be packed, so it cannot
    /// have been signed (MACI cannot even express it).
    #[error("a command field does not fit in 50 bits")]
    Unpackable,
    /// MACI rule: `1 ≤ stateIndex < numSignUps`, where MACI's count
    /// includes the blank leaf 0.
    #[error("state index out of range")]
    StateIndex,
    /// Triad rule, missing in MACI v3: `pollId` must be this poll's id.
    #[error("command is for another poll")]
    PollId,
    /// The message was logged at or after the voting deadline (MACI: the
    /// contract refuses it).
    #[error("message after the voting deadline")]
    LateMessage,
    /// The leaf signed up at or after the sign-up deadline (MACI v2:
    /// `slTimestamp ≤ pollEndTimestamp`).
    #[error("voter signed up after the sign-up deadline")]
    LateSignUp,
    /// Triad rule (anonymous re-keying): the leaf was deactivated, or is a
    /// re-key leaf whose re-key did not match a valid deactivation.
    #[error("the leaf is not active")]
    Inactive,
    /// Triad rule: only the `window` most recently logged well-formed
    /// messages naming a state index can count (see
    /// [`crate::PollParams::window`]).
    #[error("older than the poll's window of messages for this state index")]
    Window,
    /// MACI rule: the signature must verify under the leaf's *current* key
    /// (in the triad: the claimed signer is the current key and the
    /// signature verifies under it).
    #[error("signature does not verify under the voter's current key")]
    Signature,
    /// MACI rule: `nonce == ballot.nonce + 1`.
    #[error("nonce is not the ballot's nonce + 1")]
    Nonce,
    /// MACI rule: `voteOptionIndex < V`.
    #[error("vote option out of range")]
    VoteOption,
    /// MACI rule: `balance + cost(old weight) − cost(new weight) ≥ 0`.
    #[error("not enough voice credits")]
    Credits,
}

/// The state MACI processes messages against: leaf and ballot per state
/// index, index 0 the blank leaf. Fields are private so that the balance
/// invariant of [`StateLeaf::voice_credit_balance`] holds by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollState {
    leaves: Vec<StateLeaf>,
    ballots: Vec<Ballot>,
    /// Whether each leaf's messages can count (all true without re-keying).
    active: Vec<bool>,
}

impl PollState {
    /// The state before any message: leaf 0 blank, then one leaf per
    /// sign-up with its key and budget, every ballot at nonce 0 with V zero
    /// weights.
    pub fn new(params: &PollParams, signups: &[SignUp]) -> Self {
        let all: Vec<(SignUp, bool)> = signups.iter().map(|s| (s.clone(), true)).collect();
        Self::with_active(params, &all)
    }

    /// [`PollState::new`] with an `active` flag per leaf (anonymous
    /// re-keying, [`crate::rekey`]): an inactive leaf's messages never count.
    pub fn with_active(params: &PollParams, leaves: &[(SignUp, bool)]) -> Self {
        let active: Vec<bool> = std::iter::once(false)
            .chain(leaves.iter().map(|l| l.1))
            .collect();
        let leaves: Vec<StateLeaf> = std::iter::once(StateLeaf::blank())
            .chain(leaves.iter().map(|(s, _)| StateLeaf {
                pub_key: s.pub_key,
                voice_credit_balance: s.voice_credits,
                timestamp: s.timestamp,
            }))
            .collect();
        let blank_ballot = Ballot {
            nonce: 0,
            votes: vec![0; params.options_len()],
        };
        let ballots = vec![blank_ballot; leaves.len()];
        PollState {
            leaves,
            ballots,
            active,
        }
    }

    /// Leaves by state index; `leaves()[0]` is the blank leaf.
    pub fn leaves(&self) -> &[StateLeaf] {
        &self.leaves
    }

    /// Ballots by state index; `ballots()[0]` belongs to the blank leaf.
    pub fn ballots(&self) -> &[Ballot] {
        &self.ballots
    }

    /// Applies one message: MACI v3 `Poll.processMessage`, plus the triad's
    /// poll-id and deadline checks. A valid message sets, for its leaf,
    /// `balance ← balance + cost(old) − cost(new)`, `key ← newPubKey`,
    /// `ballot.nonce ← nonce` (= old nonce + 1) and `votes[option] ← weight`
    /// (replace, not add). An invalid one changes nothing.
    ///
    /// Every valid message is also a key change: a voter who wants to keep
    /// the key puts the current key in `new_pub_key`. And a pure key change
    /// still sets a weight on some option (usually option 0, weight 0, which
    /// resets that option).
    pub fn process_message(&mut self, params: &PollParams, msg: &Message) -> Result<(), Invalid> {
        let c = &msg.command;
        if c.params().is_err() {
            return Err(Invalid::Unpackable);
        }
        // 1 ≤ stateIndex < number of leaves (sign-ups + the blank leaf).
        let index = usize::try_from(c.state_index)
            .ok()
            .filter(|&i| i >= 1 && i < self.leaves.len())
            .ok_or(Invalid::StateIndex)?;
        if c.poll_id != params.poll_id() {
            return Err(Invalid::PollId);
        }
        if msg.timestamp >= params.voting_deadline() {
            return Err(Invalid::LateMessage);
        }
        let leaf = &self.leaves[index];
        if leaf.timestamp >= params.signup_deadline() {
            return Err(Invalid::LateSignUp);
        }
        if !self.active[index] {
            return Err(Invalid::Inactive);
        }
        if msg.signer != leaf.pub_key {
            return Err(Invalid::Signature);
        }
        verify_command(&leaf.pub_key, c, &msg.signature).map_err(|_| Invalid::Signature)?;
        let ballot = &self.ballots[index];
        if ballot.nonce.checked_add(1) != Some(c.nonce) {
            return Err(Invalid::Nonce);
        }
        let option = usize::try_from(c.vote_option_index)
            .ok()
            .filter(|&o| o < params.options_len())
            .ok_or(Invalid::VoteOption)?;
        let mode = params.mode();
        // Costs are below 2^128 and, by the balance invariant, cost(old) ≤
        // budget < 2^64, so the sum cannot overflow; checked anyway.
        let left = u128::from(leaf.voice_credit_balance)
            .checked_add(mode.cost(ballot.votes[option]))
            .and_then(|have| have.checked_sub(mode.cost(c.new_vote_weight)))
            .ok_or(Invalid::Credits)?;
        // left ≤ balance + cost(old) ≤ budget ≤ u64::MAX (the invariant).
        let left = u64::try_from(left).expect("balance + spent never exceeds the budget");

        let leaf = &mut self.leaves[index];
        leaf.voice_credit_balance = left;
        leaf.pub_key = c.new_pub_key;
        let ballot = &mut self.ballots[index];
        ballot.nonce = c.nonce;
        ballot.votes[option] = c.new_vote_weight;
        Ok(())
    }
}
