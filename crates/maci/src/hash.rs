//! The Poseidon hashes and constants of MACI (`packages/crypto/ts/hashing.ts`
//! and `constants.ts`): circomlib Poseidon with 1 to 15 inputs through
//! `light-poseidon`'s `new_circom(n)`, the 12-input composition that hashes a
//! message, and the message hash chain of MACI v3.

use ark_ff::MontFp;
use light_poseidon::{Poseidon, PoseidonHasher};

use crate::babyjub::{self, Point};
use crate::Fr;

/// circomlib `Poseidon(n)` of `inputs` (1 ≤ n ≤ 12 here; MACI's `hashN`).
///
/// # Panics
/// If `inputs` is empty or longer than 15 (a caller bug: every call in this
/// crate has a fixed length).
pub fn poseidon(inputs: &[Fr]) -> Fr {
    Poseidon::<Fr>::new_circom(inputs.len())
        .and_then(|mut h| h.hash(inputs))
        .expect("1 to 15 Poseidon inputs")
}

/// MACI `hash12`: `Poseidon4(Poseidon5(e0..e4), Poseidon5(e5..e9), e10, e11)`.
pub fn hash12(e: &[Fr; 12]) -> Fr {
    poseidon(&[poseidon(&e[..5]), poseidon(&e[5..10]), e[10], e[11]])
}

/// `NOTHING_UP_MY_SLEEVE = keccak256("Maci") mod p`, the first value of the
/// message hash chain.
pub const NOTHING_UP_MY_SLEEVE: Fr =
    MontFp!("8370432830353022751713833565135785980866757267633941821328460903436894336785");

/// The next value of the message hash chain (MACI v3 `Poll.publishMessage`):
/// `Poseidon(prev, messageHash)`.
pub fn chain_hash(prev: Fr, message_hash: Fr) -> Fr {
    poseidon(&[prev, message_hash])
}

/// MACI's padding key, the first circomlib Pedersen generator; the
/// coordinates of the blank state leaf (index 0).
pub fn pad_key() -> Point {
    // A fixed point of the curve; `point` checks it.
    babyjub::point(
        MontFp!("10457101036533406547632367118273992217979173478358440826365724437999023779287"),
        MontFp!("19824078218392094440610104313265183977899662750282163392862422243483260492317"),
    )
    .expect("the padding key is on the curve")
}

/// `PAD_KEY_HASH = Poseidon(padKey.x, padKey.y)`.
pub fn pad_key_hash() -> Fr {
    let k = pad_key();
    poseidon(&[k.x, k.y])
}

/// The MACI v3 blank state leaf hash, `Poseidon(padKey.x, padKey.y, 0)`.
pub fn blank_state_leaf_hash() -> Fr {
    let k = pad_key();
    poseidon(&[k.x, k.y, Fr::from(0u64)])
}
