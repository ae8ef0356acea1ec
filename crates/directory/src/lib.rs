//! The private directory (docs/directory.md): how a study or a poll is
//! published so that it can be found by its id alone, without the DHT
//! nodes that store it learning the id or its contents, and without anyone
//! who knows the id being able to forge it.
//!
//! * [`derive`]: the identifiers, after IPIP-373 ("Double Hash DHT",
//!   `ipfs/specs` PR 373, with the 64-byte NUL-padded salts of the running
//!   Go code and the IPNI reader-privacy spec): a self-certifying study id
//!   `SHA-256("triad/study-id/v1\0" ‖ coordinator key ‖ salt)`, its
//!   multihash form `MH`, the DHT key `HASH2 = SHA-256(SALT_DOUBLEHASH ‖
//!   MH)`, the record key `K_ENC = SHA-256(SALT_ENCRYPTIONKEY ‖ MH)`, and
//!   the Kademlia position `SHA-256(HASH2)` whose prefix a lookup asks for.
//! * [`record`]: the service record (coordinator, the three parties, the
//!   notary, the spec, validity), signed by the coordinator and endorsed by
//!   each party, padded to a fixed size.
//! * [`envelope`]: what the DHT stores: the padded record sealed with
//!   AES-256-GCM under `K_ENC`, at a fixed size, signed by a per-record
//!   publisher key; [`envelope::check_stored`] is the check a DHT node runs
//!   before storing (size, publisher signature, freshness) — it never needs
//!   the id.
//!
//! Engine, prefix lookups and onion-routed lookups (libp2p) are not built
//! yet (docs/directory.md, "Status").

pub mod derive;
pub mod envelope;
pub mod node;
pub mod onion;
pub mod publish;
pub mod record;
pub mod sim;

/// The ed25519 keys of the coordinator, the parties and publishers (the
/// services' existing key type).
pub use triad_attestation::NotarySigningKey as SigningKey;

/// Verifies an ed25519 signature (`ring`).
pub(crate) fn verify_ed25519(public_key: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(msg, sig)
        .is_ok()
}
