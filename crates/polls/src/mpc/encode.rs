//! How a voter's message is laid out for the triad: what the client
//! secret-shares instead of encrypting its command to one operator.
//!
//! Per message, 21 words of XOR-shared bits and 5 shared field elements:
//!
//! | words | content |
//! |---|---|
//! | 0..5 | the five packed command fields, low 50 bits of each word: state index, vote option, new weight, nonce, poll id |
//! | 5..9 | the bits of `newPubKey.x` (little-endian) |
//! | 9..13 | the bits of the signer's `x` |
//! | 13..17 | the bits of the signature's `S` |
//! | 17..21 | the bits of `hm = Poseidon(R8, A, Poseidon(command))` |
//!
//! and the field elements `newPubKey.y`, signer `y`, `R8.x`, `R8.y`, salt.
//!
//! The parties never take the client's word for anything derived: the
//! packed command, both `x` coordinates and `hm` are recomposed from the
//! bits, and `hm` is recomputed from the command; a client that supplies
//! inconsistent bits only fails its own signature check. Bits 50..64 of a
//! field word are ignored, so every field is below 2^50 by construction.

use ark_ff::{BigInteger, PrimeField};
use rand_core::RngCore;
use triad_maci::hash::poseidon;
use triad_maci::{CommandError, Fr};
use triad_mpc::protocols::input::{check_client_input, Submission};
use triad_mpc::share::share_plain;
use triad_mpc::{Bits, MpcError, Party, Security, Shares};

use crate::state::Message;

/// Bit words per message.
pub const WORDS: usize = 21;
/// First word of the five command fields.
pub const W_FIELDS: usize = 0;
/// First word of `newPubKey.x`.
pub const W_NEW_X: usize = 5;
/// First word of the signer's `x`.
pub const W_SIGNER_X: usize = 9;
/// First word of `S`.
pub const W_S: usize = 13;
/// First word of `hm`.
pub const W_HM: usize = 17;
/// Field elements per message.
pub const FR: usize = 5;
pub const F_NEW_Y: usize = 0;
pub const F_SIGNER_Y: usize = 1;
pub const F_R8_X: usize = 2;
pub const F_R8_Y: usize = 3;
pub const F_SALT: usize = 4;

/// One message in the clear, laid out as above (the client's side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainMessage {
    pub words: [u64; WORDS],
    pub fr: [Fr; FR],
}

/// The shares of `m` messages one party holds: `words[k * WORDS + w]`,
/// `fr[k * FR + f]` for message `k`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedMessages {
    pub words: Shares<Bits>,
    pub fr: Shares<Fr>,
}

impl SharedMessages {
    pub fn len(&self) -> usize {
        self.fr.len() / FR
    }

    pub fn is_empty(&self) -> bool {
        self.fr.is_empty()
    }

    /// Messages `k` for `k` in `keep`, in that order.
    pub fn gather(&self, keep: &[usize]) -> SharedMessages {
        let w: Vec<usize> = keep
            .iter()
            .flat_map(|k| k * WORDS..(k + 1) * WORDS)
            .collect();
        let f: Vec<usize> = keep.iter().flat_map(|k| k * FR..(k + 1) * FR).collect();
        SharedMessages {
            words: self.words.gather(&w),
            fr: self.fr.gather(&f),
        }
    }

    /// Messages `r`.
    pub fn slice(&self, r: std::ops::Range<usize>) -> SharedMessages {
        SharedMessages {
            words: self.words.slice(r.start * WORDS..r.end * WORDS),
            fr: self.fr.slice(r.start * FR..r.end * FR),
        }
    }
}

fn limbs(x: &Fr) -> [u64; 4] {
    x.into_bigint().0
}

/// Lays out a message; fails only for a command that cannot be packed.
pub fn encode(msg: &Message) -> Result<PlainMessage, CommandError> {
    let c = &msg.command;
    let cmd_hash = c.hash()?;
    let [new_x, new_y] = c.new_pub_key.to_fields();
    let [signer_x, signer_y] = msg.signer.to_fields();
    let r8 = msg.signature.r8();
    let hm = poseidon(&[r8.x, r8.y, signer_x, signer_y, cmd_hash]);
    let mut words = [0u64; WORDS];
    let fields = [
        c.state_index,
        c.vote_option_index,
        c.new_vote_weight,
        c.nonce,
        c.poll_id,
    ];
    words[W_FIELDS..W_FIELDS + 5].copy_from_slice(&fields);
    words[W_NEW_X..W_NEW_X + 4].copy_from_slice(&limbs(&new_x));
    words[W_SIGNER_X..W_SIGNER_X + 4].copy_from_slice(&limbs(&signer_x));
    let s = msg.signature.s().into_bigint().to_bytes_le();
    for (k, w) in words[W_S..W_S + 4].iter_mut().enumerate() {
        *w = u64::from_le_bytes(s[8 * k..8 * k + 8].try_into().expect("32 bytes"));
    }
    words[W_HM..W_HM + 4].copy_from_slice(&limbs(&hm));
    let mut fr = [Fr::from(0u64); FR];
    fr[F_NEW_Y] = new_y;
    fr[F_SIGNER_Y] = signer_y;
    fr[F_R8_X] = r8.x;
    fr[F_R8_Y] = r8.y;
    fr[F_SALT] = c.salt;
    Ok(PlainMessage { words, fr })
}

/// Splits messages into the three parties' views (replicated sharing, as
/// [`triad_mpc::share::share_plain`]).
pub fn share_messages(msgs: &[PlainMessage], rng: &mut impl RngCore) -> [SharedMessages; 3] {
    let words: Vec<Bits> = msgs
        .iter()
        .flat_map(|m| m.words.iter().map(|&w| Bits(w)))
        .collect();
    let fr: Vec<Fr> = msgs.iter().flat_map(|m| m.fr).collect();
    let [w0, w1, w2] = share_plain(&words, rng);
    let [f0, f1, f2] = share_plain(&fr, rng);
    [
        SharedMessages { words: w0, fr: f0 },
        SharedMessages { words: w1, fr: f1 },
        SharedMessages { words: w2, fr: f2 },
    ]
}

/// Which of `n` client submissions have consistent share sets in every
/// part: `parts` and `frs` are (shares, elements per submission) pairs
/// (`check_client_input`: the parties compare hashes of the components
/// they share).
///
/// In semi-honest mode an inconsistent submission is the client's fault
/// and is dropped. In malicious mode the caller guarantees that both
/// holders of every component checked it against the same commitment of
/// the client (the service layer does: `triad_wire::poll::
/// component_commitment`, docs/polls.md, "Committed components"), so an
/// inconsistency means a party lied about its components or its check:
/// the run aborts instead of silently dropping the message.
pub fn consistent_items(
    p: &mut Party,
    parts: &[(&Shares<Bits>, usize)],
    frs: &[(&Shares<Fr>, usize)],
    n: usize,
) -> Result<Vec<bool>, MpcError> {
    let subs = |per: usize| -> Vec<Submission> {
        (0..n)
            .map(|k| Submission {
                id: k as u64,
                range: k * per..(k + 1) * per,
            })
            .collect()
    };
    let mut ok = vec![true; n];
    for (x, per) in parts {
        for (o, v) in ok.iter_mut().zip(check_client_input(p, x, &subs(*per))?) {
            *o &= v;
        }
    }
    for (x, per) in frs {
        for (o, v) in ok.iter_mut().zip(check_client_input(p, x, &subs(*per))?) {
            *o &= v;
        }
    }
    if p.security == Security::Malicious {
        if let Some(k) = ok.iter().position(|o| !o) {
            return Err(MpcError::CheatingDetected {
                check: "input consistency",
                detail: format!(
                    "item {k}: components both holders checked against the client's \
                     commitments differ"
                ),
            });
        }
    }
    Ok(ok)
}
