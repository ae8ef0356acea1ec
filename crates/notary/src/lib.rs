//! triad's notary (DESIGN.md, "Attestation, v1 and beyond").
//!
//! This crate holds the parts every component shares:
//! - [`attestation`]: the versioned attestation, its canonical signing bytes,
//!   the notary's ed25519 key, and the one verifier [`verify_attestation`]
//!   used by the coordinator, the parties, consumers and the CLI;
//! - [`spec`]: the study's data spec (JSON path, fixed-point scale, account-id
//!   path) and the extraction of the attested value from a JSON response;
//! - [`source`]: the study's data source (server name, optional certificate
//!   pin) and the check binding an attestation to it;
//! - [`transcript`]: the pure TLS 1.2 transcript checker (chain, host name,
//!   ServerKeyExchange signature, AES-GCM tag of every server record);
//! - [`http`]: the response parser run on the decrypted server stream;
//! - [`notarize`]: the notary's decision, session + disclosure → attestation;
//! - [`proxy`]: the recording TCP proxy with size and time limits;
//! - [`target`]: where the proxy may connect (allow-list, special-purpose
//!   addresses, the notary itself), checked on the resolved addresses;
//! - [`prover`]: the prover as a library call ([`prove`]): TLS 1.2 through
//!   the proxy, rx key/IV disclosure only, attestation + [`Opening`];
//! - [`service`]: the notary service (proxy + HTTP API), its blocking client
//!   and the prover against it (`prove_with_notary`);
//! - [`datasource`]: the demo HTTPS data source (exchange-like account API);
//! - [`mod@bench`]: the loopback attestation benchmark (data source + notary
//!   service + prover).
#![forbid(unsafe_code)]

pub mod attestation;
pub mod bench;
pub mod datasource;
pub mod http;
pub mod notarize;
pub mod prover;
pub mod proxy;
pub mod service;
pub mod source;
pub mod spec;
pub mod target;

pub use attestation::{
    sign_attestation, verify_attestation, Attestation, AttestationClaims, AttestationError,
    NotaryPublicKey, NotarySigningKey, VerifiedAttestation, ATTESTATION_VERSION,
};
pub use source::{cert_chain_sha256, DataSource, SourceError};
pub use spec::{extract_claim, parse_fixed_point, DataSpec, ExtractedClaim, SpecError};
pub mod transcript;

pub use bench::{run_attest_bench, AttestBenchReport};
pub use notarize::{attest_session, AttestationRequest, NotaryError, RecordedSession};
pub use prover::{
    parse_header, prove, prover_client_config, run_session, Opening, ProveError, ProveTarget,
};
pub use proxy::{launch_proxy, ProxyConfig, ProxyHandle, SessionOutcome};
pub use target::{AllowedTarget, TargetRefusal};
pub use transcript::{
    check_transcript, root_store, CheckedResponse, ServerKeyDisclosure, Transcript, TranscriptError,
};
