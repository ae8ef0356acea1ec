//! triad's attestation (DESIGN.md, "Attestation, v1 and beyond"): what every
//! component needs to accept or refuse a notary's word, and nothing more.
//!
//! - [`attestation`]: the versioned attestation, its canonical signing bytes,
//!   the notary's ed25519 key, and the one verifier [`verify_attestation`]
//!   used by the coordinator, the parties, consumers and the CLI;
//! - [`spec`]: the study's data spec (JSON path, fixed-point scale, account-id
//!   path) and the extraction of the attested value from a JSON response;
//! - [`source`]: the study's data source (server name, optional certificate
//!   pin) and the check binding an attestation to it.
//!
//! Pure functions over bytes and values: no sockets, no files, no async
//! runtime, no TLS stack. The notary itself (transcript checker, recording
//! proxy, prover, HTTP API) is `triad-notary`; services link only this crate.
#![forbid(unsafe_code)]

pub mod attestation;
pub mod source;
pub mod spec;

pub use attestation::{
    sign_attestation, verify_attestation, Attestation, AttestationClaims, AttestationError,
    KeyError, NotaryPublicKey, NotarySigningKey, VerifiedAttestation, ATTESTATION_VERSION,
    MAX_CLOCK_SKEW_SECS,
};
pub use source::{cert_chain_sha256, DataSource, SourceError};
pub use spec::{
    extract_claim, parse_fixed_point, DataSpec, ExtractedClaim, FixedPointError, SpecError,
};
