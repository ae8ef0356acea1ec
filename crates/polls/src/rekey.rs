//! Anonymous deactivation and re-keying: the plaintext oracle
//! (docs/polls.md, "Anonymous re-keying"; after "Adding anonymization to
//! MACI", ethresear.ch/t/6329, with the triad's secret-shared list instead
//! of a single operator or ElGamal).
//!
//! * **Deactivate**: a MACI command signed by the leaf's *registered* key
//!   (its sign-up key, or the key its re-key added; not a key set by a vote
//!   message), whose salt carries `c = Poseidon(s, 1)` for a secret `s` the
//!   voter keeps. It is valid iff it is well formed (fields pack, this
//!   poll, logged before the voting deadline), names a leaf `1 ≤ i ≤
//!   leaves` that signed up in time and is active, its named signer is
//!   that leaf's registered key and the signature verifies, and it is the
//!   first such deactivation of the leaf in its epoch. A valid one makes
//!   the leaf inactive (its votes stop counting) and adds `(c, valid,
//!   balance)` to the list; every deactivation adds an entry, an invalid one
//!   with `valid = false`.
//! * **Re-key**: the voter gives `s` and a fresh public key. Its nullifier
//!   `n = Poseidon(s, 2, pollId)` is public: a nullifier seen before, or a
//!   re-key logged at or after the voting deadline, is refused and adds
//!   nothing. Otherwise a new leaf is **always** appended with the new key;
//!   it is active, with the budget of the matched leaf, iff `Poseidon(s, 1)`
//!   equals the commitment of a valid list entry (the first such entry
//!   counts); else it is inactive with no credits. Nobody but the three
//!   parties together learns which.
//! * **Epochs**: deactivations of an epoch are judged against the leaves
//!   at the epoch's start; then its re-keys are matched against the whole
//!   list so far. After the last epoch, votes are processed against the
//!   leaves ([`Registry::initial_state`]).
//!
//! The domain-separated hashes replace the proposal's `H(s+1)` / `H(s+2)`
//! (with which a nullifier equals the next secret's commitment).

use std::collections::HashSet;

use ark_ff::{BigInteger, PrimeField};
use triad_maci::hash::poseidon;
use triad_maci::{verify_command, Fr, PubKey};

use crate::params::PollParams;
use crate::state::{Message, PollState, SignUp};

/// `c = Poseidon(s, 1)`: what a deactivation carries in its salt.
pub fn deactivation_commitment(s: &Fr) -> Fr {
    poseidon(&[*s, Fr::from(1u64)])
}

/// `n = Poseidon(s, 2, pollId)`: opened when the voter re-keys.
pub fn rekey_nullifier(s: &Fr, poll_id: u64) -> Fr {
    poseidon(&[*s, Fr::from(2u64), Fr::from(poll_id)])
}

/// A leaf of the poll state before vote processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The registered key (deactivations must be signed with it).
    pub pub_key: PubKey,
    pub voice_credits: u64,
    /// The sign-up's timestamp; 0 for a re-key leaf (never late).
    pub timestamp: u64,
    pub active: bool,
}

/// A re-key request: the secret behind a deactivation and the new key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rekey {
    pub secret: Fr,
    pub new_key: PubKey,
    /// When it was logged.
    pub timestamp: u64,
}

/// One epoch: its deactivations, then its re-keys, each in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Epoch {
    pub deactivations: Vec<Message>,
    pub rekeys: Vec<Rekey>,
}

/// An entry of the deactivation list (secret-shared in the MPC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub commitment: Fr,
    pub valid: bool,
    /// The deactivated leaf's budget (0 if not valid).
    pub balance: u64,
}

/// Why a re-key is refused publicly (it then adds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RekeyRefused {
    #[error("this secret's nullifier was used before")]
    NullifierReused,
    #[error("re-key after the voting deadline")]
    Late,
}

/// What one epoch did (for tests: in the MPC only the refusals and the
/// count of appended leaves are public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochOutcome {
    /// Per deactivation, in log order: valid.
    pub deactivations: Vec<bool>,
    /// Per re-key, in log order: the new leaf's state index and whether it
    /// is active, or why it was refused.
    pub rekeys: Vec<Result<(u64, bool), RekeyRefused>>,
}

/// The leaves and the deactivation list across epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    leaves: Vec<Leaf>,
    list: Vec<ListEntry>,
    nullifiers: HashSet<Vec<u8>>,
}

fn fr_key(x: &Fr) -> Vec<u8> {
    x.into_bigint().to_bytes_be()
}

impl Registry {
    /// One active leaf per sign-up (state index `i + 1`).
    pub fn new(signups: &[SignUp]) -> Self {
        Registry {
            leaves: signups
                .iter()
                .map(|s| Leaf {
                    pub_key: s.pub_key,
                    voice_credits: s.voice_credits,
                    timestamp: s.timestamp,
                    active: true,
                })
                .collect(),
            list: Vec::new(),
            nullifiers: HashSet::new(),
        }
    }

    /// Leaves by state index − 1.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    pub fn list(&self) -> &[ListEntry] {
        &self.list
    }

    /// Judges a batch of deactivations against the leaves as they are now
    /// (module docs), then applies the valid ones. Returns validity per
    /// deactivation.
    pub fn deactivate(&mut self, params: &PollParams, batch: &[Message]) -> Vec<bool> {
        let mut taken = HashSet::new();
        let valid: Vec<bool> = batch
            .iter()
            .map(|m| {
                let ok = self.deactivation_ok(params, m);
                ok && taken.insert(m.command.state_index)
            })
            .collect();
        for (m, &v) in batch.iter().zip(&valid) {
            let balance = if v {
                let leaf = &mut self.leaves[m.command.state_index as usize - 1];
                leaf.active = false;
                leaf.voice_credits
            } else {
                0
            };
            self.list.push(ListEntry {
                commitment: m.command.salt,
                valid: v,
                balance,
            });
        }
        valid
    }

    fn deactivation_ok(&self, params: &PollParams, m: &Message) -> bool {
        let c = &m.command;
        if c.params().is_err() || c.poll_id != params.poll_id() {
            return false;
        }
        if m.timestamp >= params.voting_deadline() {
            return false;
        }
        let Some(leaf) = usize::try_from(c.state_index)
            .ok()
            .filter(|&i| i >= 1 && i <= self.leaves.len())
            .map(|i| &self.leaves[i - 1])
        else {
            return false;
        };
        leaf.active
            && leaf.timestamp < params.signup_deadline()
            && m.signer == leaf.pub_key
            && verify_command(&m.signer, c, &m.signature).is_ok()
    }

    /// Processes a batch of re-keys in log order (module docs).
    pub fn rekey(
        &mut self,
        params: &PollParams,
        batch: &[Rekey],
    ) -> Vec<Result<(u64, bool), RekeyRefused>> {
        batch
            .iter()
            .map(|r| {
                if r.timestamp >= params.voting_deadline() {
                    return Err(RekeyRefused::Late);
                }
                let n = rekey_nullifier(&r.secret, params.poll_id());
                if !self.nullifiers.insert(fr_key(&n)) {
                    return Err(RekeyRefused::NullifierReused);
                }
                let c = deactivation_commitment(&r.secret);
                let found = self.list.iter().find(|e| e.valid && e.commitment == c);
                self.leaves.push(Leaf {
                    pub_key: r.new_key,
                    voice_credits: found.map_or(0, |e| e.balance),
                    timestamp: 0,
                    active: found.is_some(),
                });
                Ok((self.leaves.len() as u64, found.is_some()))
            })
            .collect()
    }

    /// The services' rule for re-keys (docs/polls.md, "Service layer"):
    /// the coordinator logged each with the nullifier its voter claimed
    /// (refusing a repeated one, and late ones, before logging) and gave it
    /// the next state index, so **every** logged re-key appends a leaf. The
    /// leaf is active iff the secret's nullifier is the claimed one, was
    /// not seen before, the re-key is in time, and its commitment matches
    /// a valid list entry. Returns per re-key whether its leaf is active.
    pub fn rekey_logged(&mut self, params: &PollParams, batch: &[(Rekey, Fr)]) -> Vec<bool> {
        batch
            .iter()
            .map(|(r, claimed)| {
                let n = rekey_nullifier(&r.secret, params.poll_id());
                let honest = n == *claimed
                    && r.timestamp < params.voting_deadline()
                    && self.nullifiers.insert(fr_key(&n));
                let c = deactivation_commitment(&r.secret);
                let found = self
                    .list
                    .iter()
                    .find(|e| e.valid && e.commitment == c)
                    .filter(|_| honest);
                self.leaves.push(Leaf {
                    pub_key: r.new_key,
                    voice_credits: found.map_or(0, |e| e.balance),
                    timestamp: 0,
                    active: found.is_some(),
                });
                found.is_some()
            })
            .collect()
    }

    /// One epoch: its deactivations, then its re-keys.
    pub fn epoch(&mut self, params: &PollParams, e: &Epoch) -> EpochOutcome {
        EpochOutcome {
            deactivations: self.deactivate(params, &e.deactivations),
            rekeys: self.rekey(params, &e.rekeys),
        }
    }

    /// The state vote processing starts from: one leaf per entry, with its
    /// registered key, budget and active flag.
    pub fn initial_state(&self, params: &PollParams) -> PollState {
        let leaves: Vec<(SignUp, bool)> = self
            .leaves
            .iter()
            .map(|l| {
                (
                    SignUp {
                        pub_key: l.pub_key,
                        voice_credits: l.voice_credits,
                        timestamp: l.timestamp,
                    },
                    l.active,
                )
            })
            .collect();
        PollState::with_active(params, &leaves)
    }
}

/// A whole poll with re-keying: the epochs in order, then the votes.
pub fn process_poll_with_epochs(
    params: &PollParams,
    signups: &[SignUp],
    epochs: &[Epoch],
    messages: &[Message],
) -> (crate::Outcome, Vec<EpochOutcome>, Registry) {
    let mut registry = Registry::new(signups);
    let outcomes = epochs.iter().map(|e| registry.epoch(params, e)).collect();
    let outcome = crate::process_poll_from(params, registry.initial_state(params), messages);
    (outcome, outcomes, registry)
}
