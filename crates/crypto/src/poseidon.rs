//! Poseidon over BN254 with circom's parameters (t = 3, x^5, 8 full and 57
//! partial rounds). The native hash is `light-poseidon`'s `new_circom(2)`;
//! the MPC engine evaluates the same permutation over shares using
//! [`params`], so both sides agree by construction.

use std::sync::OnceLock;

use light_poseidon::{parameters::bn254_x5, Poseidon, PoseidonHasher, PoseidonParameters};

use crate::{field::hash_to_field, Fr};

/// Width of the permutation: one capacity element plus two inputs.
pub const WIDTH: usize = 3;

/// Circom round constants and MDS matrix for t = 3.
pub fn params() -> &'static PoseidonParameters<Fr> {
    static P: OnceLock<PoseidonParameters<Fr>> = OnceLock::new();
    P.get_or_init(|| {
        bn254_x5::get_poseidon_parameters::<Fr>(WIDTH as u8).expect("t = 3 is supported")
    })
}

/// The most inputs [`params_for`] serves (circom's tables go up to t = 13).
pub const MAX_INPUTS: usize = 12;

/// Circom round constants and MDS matrix for `inputs + 1` elements (one
/// capacity element), as `light-poseidon`'s `new_circom(inputs)` uses.
/// `None` for 0 or more than [`MAX_INPUTS`] inputs.
pub fn params_for(inputs: usize) -> Option<&'static PoseidonParameters<Fr>> {
    static P: [OnceLock<PoseidonParameters<Fr>>; MAX_INPUTS] =
        [const { OnceLock::new() }; MAX_INPUTS];
    if inputs == 0 || inputs > MAX_INPUTS {
        return None;
    }
    Some(P[inputs - 1].get_or_init(|| {
        bn254_x5::get_poseidon_parameters::<Fr>(inputs as u8 + 1)
            .expect("circom tables cover t = 2..=13")
    }))
}

/// `Poseidon(a, b)`, identical to circomlib's `Poseidon(2)`.
pub fn poseidon2(a: Fr, b: Fr) -> Fr {
    Poseidon::<Fr>::new_circom(2)
        .expect("two inputs are supported")
        .hash(&[a, b])
        .expect("two inputs")
}

/// `commitment = Poseidon(value, blinder)`, the value being the fixed-point
/// integer embedded in the field.
pub fn commitment(value: Fr, blinder: Fr) -> Fr {
    poseidon2(value, blinder)
}

/// `nullifier = Poseidon(H(account id), H(study id))`: one per account and
/// study, unlinkable across studies without knowing the account id.
pub fn nullifier(account_id: &[u8], study_id: &str) -> Fr {
    poseidon2(
        hash_to_field("triad/account", account_id),
        hash_to_field("triad/study", study_id.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::fr_from_hex;

    #[test]
    fn circomlib_test_vector() {
        // circomlibjs poseidon([1, 2]) (test/poseidon.js in iden3/circomlibjs).
        let h = poseidon2(Fr::from(1u64), Fr::from(2u64));
        let want = fr_from_hex("115cc0f5e7d690413df64c6b9662e9cf2a3617f2743245519e19607a4417189a")
            .unwrap();
        assert_eq!(h, want);
    }

    #[test]
    fn params_shape() {
        let p = params();
        assert_eq!(p.width, 3);
        assert_eq!(p.full_rounds, 8);
        assert_eq!(p.partial_rounds, 57);
        assert_eq!(p.ark.len(), 65 * 3);
    }
}
