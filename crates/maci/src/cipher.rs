//! ECDH on Baby Jubjub and the Poseidon duplex-sponge cipher that encrypts
//! MACI messages.
//!
//! The cipher is "Poseidon encryption" from Grassi, Khovratovich, Rechberger,
//! Roy, Schofnegger, *Poseidon: A New Hash Function for Zero-Knowledge Proof
//! Systems* (USENIX Security 2021), §8 (authenticated encryption with a
//! duplex sponge), as implemented by zk-kit `@zk-kit/poseidon-cipher` 0.3
//! (`poseidonEncrypt` / `poseidonDecrypt`), which MACI uses:
//!
//! 1. state = `[0, k.x, k.y, nonce + len·2^128]` (width 4), nonce < 2^128;
//! 2. pad the plaintext with zeros to a multiple of 3;
//! 3. per block of 3: permute, add the block to `state[1..4]`, emit
//!    `state[1..4]`;
//! 4. permute once more and emit `state[1]` as the tag.
//!
//! Decryption subtracts and overwrites the rate, then checks the zero
//! padding and the tag. zk-kit checks the padding only for plaintexts
//! longer than 3; here it is always checked (an honest ciphertext always
//! passes, and a tampered one already fails the tag).
//!
//! The permutation is circomlib's Poseidon for t = 4 (8 full and 56 partial
//! rounds), run from `light-poseidon`'s circom parameters: `light-poseidon`
//! only returns `state[0]` of its permutation, and the cipher needs the
//! whole state. The test `permutation_matches_light_poseidon` ties the two.

use std::fmt;
use std::sync::OnceLock;

use ark_ff::{Field, Zero};
use light_poseidon::{parameters::bn254_x5, PoseidonParameters};

use crate::babyjub;
use crate::{Fr, PrivKey, PubKey};

/// Width of the cipher's permutation.
const WIDTH: usize = 4;
/// Elements absorbed per permutation.
const RATE: usize = 3;

fn params() -> &'static PoseidonParameters<Fr> {
    static P: OnceLock<PoseidonParameters<Fr>> = OnceLock::new();
    P.get_or_init(|| {
        bn254_x5::get_poseidon_parameters::<Fr>(WIDTH as u8).expect("t = 4 is supported")
    })
}

/// The circomlib Poseidon permutation for t = 4 (the rounds of
/// `light_poseidon::Poseidon::hash`, on the whole state).
pub(crate) fn permute(state: &mut [Fr; WIDTH]) {
    let p = params();
    let half = p.full_rounds / 2;
    let rounds = p.full_rounds + p.partial_rounds;
    for round in 0..rounds {
        for (i, s) in state.iter_mut().enumerate() {
            *s += p.ark[round * WIDTH + i];
        }
        let full = round < half || round >= half + p.partial_rounds;
        let sbox = |x: Fr| x.square().square() * x;
        if full {
            state.iter_mut().for_each(|s| *s = sbox(*s));
        } else {
            state[0] = sbox(state[0]);
        }
        let old = *state;
        for (i, s) in state.iter_mut().enumerate() {
            *s = old
                .iter()
                .zip(&p.mds[i])
                .fold(Fr::zero(), |acc, (a, m)| acc + *a * m);
        }
    }
}

/// A key of the cipher: in MACI the ECDH point `[x, y]`. `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey(pub [Fr; 2]);

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

/// MACI `genEcdhSharedKey`: `theirs · secretScalar(mine)`. Both sides use
/// the formatted scalar, so `ecdh(a, B) = ecdh(b, A)`.
pub fn ecdh(mine: &PrivKey, theirs: &PubKey) -> SharedKey {
    let p = babyjub::mul(theirs.point(), &mine.signing_key().secret_scalar());
    SharedKey([p.x, p.y])
}

/// Why a ciphertext is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("ciphertext of a {length}-element plaintext must have {expected} elements, got {got}")]
    BadLength {
        length: usize,
        expected: usize,
        got: usize,
    },
    #[error("plaintext padding is not zero")]
    BadPadding,
    #[error("authentication tag does not match")]
    BadTag,
}

/// Ciphertext length for `len` plaintext elements: padded blocks plus tag.
pub fn ciphertext_len(len: usize) -> usize {
    len.div_ceil(RATE) * RATE + 1
}

fn initial_state(key: &SharedKey, nonce: u128, len: usize) -> [Fr; WIDTH] {
    let two_128 = Fr::from(2u64).pow([128]);
    [
        Fr::zero(),
        key.0[0],
        key.0[1],
        Fr::from(nonce) + Fr::from(len as u64) * two_128,
    ]
}

/// zk-kit `poseidonEncrypt(plaintext, key, nonce)`.
pub fn poseidon_encrypt(plaintext: &[Fr], key: &SharedKey, nonce: u128) -> Vec<Fr> {
    let mut state = initial_state(key, nonce, plaintext.len());
    let mut out = Vec::with_capacity(ciphertext_len(plaintext.len()));
    for block in plaintext.chunks(RATE) {
        permute(&mut state);
        for (i, m) in block.iter().enumerate() {
            state[1 + i] += m;
        }
        // Padding elements are zero: state[1 + i] is emitted unchanged.
        out.extend_from_slice(&state[1..]);
    }
    permute(&mut state);
    out.push(state[1]);
    out
}

/// zk-kit `poseidonDecrypt(ciphertext, key, nonce, length)`: the plaintext,
/// or an error if the length, padding or tag is wrong.
pub fn poseidon_decrypt(
    ciphertext: &[Fr],
    key: &SharedKey,
    nonce: u128,
    length: usize,
) -> Result<Vec<Fr>, CipherError> {
    let expected = ciphertext_len(length);
    if ciphertext.len() != expected {
        return Err(CipherError::BadLength {
            length,
            expected,
            got: ciphertext.len(),
        });
    }
    let mut state = initial_state(key, nonce, length);
    let mut plain = Vec::with_capacity(expected - 1);
    for block in ciphertext[..expected - 1].chunks_exact(RATE) {
        permute(&mut state);
        for (i, c) in block.iter().enumerate() {
            plain.push(*c - state[1 + i]);
            state[1 + i] = *c;
        }
    }
    if plain[length..].iter().any(|x| !x.is_zero()) {
        return Err(CipherError::BadPadding);
    }
    permute(&mut state);
    if ciphertext[expected - 1] != state[1] {
        return Err(CipherError::BadTag);
    }
    plain.truncate(length);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::poseidon;

    #[test]
    fn permutation_matches_light_poseidon() {
        // Poseidon(a, b, c) is state[0] of the permutation of [0, a, b, c].
        let inputs = [Fr::from(1u64), Fr::from(2u64), Fr::from(3u64)];
        let mut state = [Fr::zero(), inputs[0], inputs[1], inputs[2]];
        permute(&mut state);
        assert_eq!(state[0], poseidon(&inputs));
        let p = params();
        assert_eq!((p.full_rounds, p.partial_rounds, p.alpha), (8, 56, 5));
    }

    #[test]
    fn empty_plaintext_is_just_a_tag() {
        let key = SharedKey([Fr::from(3u64), Fr::from(4u64)]);
        let c = poseidon_encrypt(&[], &key, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(poseidon_decrypt(&c, &key, 0, 0), Ok(vec![]));
        assert_eq!(
            poseidon_decrypt(&c, &key, 0, 1),
            Err(CipherError::BadLength {
                length: 1,
                expected: 4,
                got: 1
            })
        );
    }
}
