//! Cryptographic building blocks shared by every triad component: the BN254
//! scalar field, circom-compatible Poseidon, and the commitment / nullifier
//! formulas of the attestation (see DESIGN.md, "Contribute").
//!
//! Nothing here is a new primitive: Poseidon comes from `light-poseidon`
//! (circom parameters), hashing from `sha2`.
#![forbid(unsafe_code)]

pub mod field;
pub mod poseidon;

pub use ark_bn254::Fr;
pub use field::{
    fr_from_hex, fr_from_i128, fr_to_hex, fr_to_i128, fr_to_u128, hash_to_field, FieldError,
};
pub use poseidon::{commitment, nullifier, poseidon2};
