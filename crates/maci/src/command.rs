//! MACI vote commands (v3 `VoteCommand`, v2 `PCommand`; same packing):
//! packing, hashing, signing, and encryption into a 10-element message.
//!
//! * `params = stateIndex + (voteOptionIndex << 50) + (newVoteWeight << 100) +
//!   (nonce << 150) + (pollId << 200)`, each field below 2^50. (MACI's
//!   TypeScript asserts `2^50 >= x`, an off-by-one that would let 2^50 carry
//!   into the next field; here 2^50 itself is refused.)
//! * command = `[params, newPk.x, newPk.y, salt]`; the signed message is
//!   `Poseidon(command)` (4 inputs) — the salt is signed.
//! * plaintext = `[params, newPk.x, newPk.y, salt, R8.x, R8.y, S]`,
//!   encrypted with the ECDH key of an ephemeral key pair and the
//!   coordinator's key, nonce 0, into 10 elements.
//! * message hash = `hash12([...ciphertext, encPk.x, encPk.y])`, chained
//!   with [`crate::chain_hash`].

use ark_ff::{BigInteger, Field, PrimeField};

use crate::cipher::{poseidon_decrypt, poseidon_encrypt, CipherError, SharedKey};
use crate::eddsa::{Signature, SignatureError, SigningKey};
use crate::hash::{hash12, poseidon};
use crate::keys::KeyError;
use crate::{Fr, PubKey};

/// Bits per packed field.
pub const FIELD_BITS: u32 = 50;
/// Elements of an encrypted command.
pub const MESSAGE_LEN: usize = 10;
/// Elements of a command's plaintext.
pub const PLAINTEXT_LEN: usize = 7;

/// A vote (and key change) command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub state_index: u64,
    pub vote_option_index: u64,
    pub new_vote_weight: u64,
    pub nonce: u64,
    pub poll_id: u64,
    /// The key the voter's state leaf takes if the command is valid.
    pub new_pub_key: PubKey,
    pub salt: Fr,
}

/// Why a command cannot be packed, decoded or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{field} = {value} does not fit in {FIELD_BITS} bits")]
    FieldTooLarge { field: &'static str, value: u64 },
    #[error("packed params has bits set above bit 250")]
    ParamsTooLarge,
    #[error("new public key: {0}")]
    NewPubKey(KeyError),
    #[error("signature: {0}")]
    Signature(SignatureError),
    #[error("decryption: {0}")]
    Cipher(#[from] CipherError),
}

const NAMES: [&str; 5] = [
    "stateIndex",
    "voteOptionIndex",
    "newVoteWeight",
    "nonce",
    "pollId",
];

impl Command {
    fn packed_fields(&self) -> [u64; 5] {
        [
            self.state_index,
            self.vote_option_index,
            self.new_vote_weight,
            self.nonce,
            self.poll_id,
        ]
    }

    /// The packed `params` element; refuses a field of 2^50 or more.
    pub fn params(&self) -> Result<Fr, CommandError> {
        let mut acc = Fr::from(0u64);
        for (i, (value, field)) in self.packed_fields().into_iter().zip(NAMES).enumerate() {
            if value >> FIELD_BITS != 0 {
                return Err(CommandError::FieldTooLarge { field, value });
            }
            // Below 2^250 < p: the sum is the integer, unreduced.
            acc += Fr::from(value) * Fr::from(2u64).pow([u64::from(FIELD_BITS) * i as u64]);
        }
        Ok(acc)
    }

    /// `[params, newPk.x, newPk.y, salt]`.
    pub fn to_fields(&self) -> Result<[Fr; 4], CommandError> {
        let [x, y] = self.new_pub_key.to_fields();
        Ok([self.params()?, x, y, self.salt])
    }

    /// The signed message `Poseidon(params, newPk.x, newPk.y, salt)`.
    pub fn hash(&self) -> Result<Fr, CommandError> {
        Ok(poseidon(&self.to_fields()?))
    }

    /// The inverse of [`Command::to_fields`]: refuses bits above 250 in
    /// `params` (one encoding per command) and a new key that is not a key.
    pub fn from_fields(fields: &[Fr; 4]) -> Result<Self, CommandError> {
        let bits = fields[0].into_bigint().to_bits_le();
        if bits[5 * FIELD_BITS as usize..].iter().any(|b| *b) {
            return Err(CommandError::ParamsTooLarge);
        }
        let mut v = [0u64; 5];
        for (i, out) in v.iter_mut().enumerate() {
            for bit in 0..FIELD_BITS as usize {
                if bits[i * FIELD_BITS as usize + bit] {
                    *out |= 1 << bit;
                }
            }
        }
        Ok(Command {
            state_index: v[0],
            vote_option_index: v[1],
            new_vote_weight: v[2],
            nonce: v[3],
            poll_id: v[4],
            new_pub_key: PubKey::new(fields[1], fields[2]).map_err(CommandError::NewPubKey)?,
            salt: fields[3],
        })
    }
}

/// Signs a command with the voter's current key.
pub fn sign_command(key: &SigningKey, command: &Command) -> Result<Signature, CommandError> {
    Ok(key.sign(command.hash()?))
}

/// Whether `sig` is a signature of `command` under `signer` (the key of the
/// voter's state leaf at processing time, not `command.new_pub_key`).
pub fn verify_command(
    signer: &PubKey,
    command: &Command,
    sig: &Signature,
) -> Result<(), CommandError> {
    signer
        .verify(command.hash()?, sig)
        .map_err(CommandError::Signature)
}

/// The 7-element plaintext `[params, newPk.x, newPk.y, salt, R8.x, R8.y, S]`.
pub fn command_plaintext(
    command: &Command,
    sig: &Signature,
) -> Result<[Fr; PLAINTEXT_LEN], CommandError> {
    let [p, x, y, salt] = command.to_fields()?;
    let [r8x, r8y, s] = sig.to_fields();
    Ok([p, x, y, salt, r8x, r8y, s])
}

/// MACI `Command.encrypt`: the 10-element message, under the shared key of
/// the voter's ephemeral key and the coordinator's key, nonce 0.
pub fn encrypt_command(
    command: &Command,
    sig: &Signature,
    key: &SharedKey,
) -> Result<[Fr; MESSAGE_LEN], CommandError> {
    let c = poseidon_encrypt(&command_plaintext(command, sig)?, key, 0);
    Ok(c.try_into().expect("7 elements encrypt to 10"))
}

/// MACI `Command.decrypt` (the checked variant): the command and its
/// signature, not yet verified against any key.
pub fn decrypt_command(
    message: &[Fr; MESSAGE_LEN],
    key: &SharedKey,
) -> Result<(Command, Signature), CommandError> {
    let p = poseidon_decrypt(message, key, 0, PLAINTEXT_LEN)?;
    let command = Command::from_fields(&[p[0], p[1], p[2], p[3]])?;
    let sig = Signature::from_fields(p[4], p[5], p[6]).map_err(CommandError::Signature)?;
    Ok((command, sig))
}

/// The message hash MACI v3 chains: `hash12([...message, encPk.x, encPk.y])`.
pub fn message_hash(message: &[Fr; MESSAGE_LEN], enc_pub_key: &PubKey) -> Fr {
    let mut e = [Fr::from(0u64); 12];
    e[..MESSAGE_LEN].copy_from_slice(message);
    e[10..].copy_from_slice(&enc_pub_key.to_fields());
    hash12(&e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivKey;

    fn command() -> Command {
        Command {
            state_index: 1,
            vote_option_index: 2,
            new_vote_weight: 9,
            nonce: 1,
            poll_id: 0,
            new_pub_key: PrivKey::from_bytes([3; 32]).public_key(),
            salt: Fr::from(5u64),
        }
    }

    #[test]
    fn field_limits() {
        let mut c = command();
        c.new_vote_weight = (1 << 50) - 1;
        assert!(c.params().is_ok());
        c.new_vote_weight = 1 << 50;
        assert_eq!(
            c.params(),
            Err(CommandError::FieldTooLarge {
                field: "newVoteWeight",
                value: 1 << 50
            })
        );
        let mut fields = command().to_fields().unwrap();
        fields[0] += Fr::from(2u64).pow([250]);
        assert_eq!(
            Command::from_fields(&fields),
            Err(CommandError::ParamsTooLarge)
        );
    }
}
