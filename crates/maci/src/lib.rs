//! MACI-compatible keys, signatures and messages (MACI v3, Privacy &
//! Scaling Explorations; `packages/{crypto,domainobjs}`), bit for bit:
//!
//! * [`babyjub`]: Baby Jubjub in circom's form over BN254's scalar field
//!   (the group law from `ark-ec`), point packing;
//! * [`PrivKey`], [`PubKey`], [`Keypair`]: keys, `macisk.`/`macipk.`
//!   strings, the MACI ≥ v2 key derivation (BLAKE-512 of the decimal string);
//! * [`SigningKey`], [`Signature`]: EdDSA-Poseidon (circomlibjs / zk-kit);
//! * [`Command`], [`sign_command`], [`verify_command`], [`encrypt_command`],
//!   [`decrypt_command`], [`message_hash`]: vote commands and messages;
//! * [`ecdh`], [`poseidon_encrypt`], [`poseidon_decrypt`]: the shared key and
//!   the Poseidon duplex-sponge cipher;
//! * [`hash`]: Poseidon helpers and MACI's constants.
//!
//! Nothing here is a new primitive: curve arithmetic from `ark-ec`, Poseidon
//! from `light-poseidon` (circom parameters), BLAKE-512 from `blake-hash`.
//! The known-answer tests (`tests/vectors.rs`) are circomlibjs', MACI's and
//! the triad's shared vectors. Deviations from MACI (all stricter) are
//! stated where they apply: key strings must be canonical, public keys must
//! be in the prime-order subgroup, command fields must be below 2^50, and
//! the cipher always checks its padding.
//!
//! No function here panics on outside input (strings, field elements,
//! ciphertexts); the fuzz target `maci_keys` checks the string parsers.
#![forbid(unsafe_code)]

pub mod babyjub;
pub mod cipher;
pub mod command;
pub mod eddsa;
pub mod hash;
pub mod keys;

pub use triad_crypto::Fr;

pub use babyjub::{Point, PointError, Scalar};
pub use cipher::{ecdh, poseidon_decrypt, poseidon_encrypt, CipherError, SharedKey};
pub use command::{
    decrypt_command, encrypt_command, message_hash, sign_command, verify_command, Command,
    CommandError,
};
pub use eddsa::{Signature, SignatureError, SigningKey};
pub use hash::{chain_hash, NOTHING_UP_MY_SLEEVE};
pub use keys::{KeyError, Keypair, PrivKey, PubKey};
