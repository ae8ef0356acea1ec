//! triad's notary (DESIGN.md, "Attestation, v1 and beyond"): the service that
//! watches a prover's TLS session and signs what the server said.
//!
//! The attestation it signs — format, canonical bytes, [`verify_attestation`],
//! data spec and data source — is the small `triad-attestation` crate, which
//! is what the other services link. This crate holds the notary itself and
//! its prover:
//! - [`transcript`]: the pure TLS 1.2 transcript checker (chain, host name,
//!   ServerKeyExchange signature, AES-GCM tag of every server record);
//! - [`http`]: the response parser run on the decrypted server stream;
//! - [`notarize`]: the notary's decision, session + disclosure → attestation;
//! - [`proxy`]: the recording TCP proxy with size and time limits;
//! - [`target`]: where the proxy may connect (allow-list, special-purpose
//!   addresses, the notary itself), checked on the resolved addresses;
//! - [`prover`]: the prover as a library call ([`prove`]): TLS 1.2 through
//!   the proxy, rx key/IV disclosure only, attestation + [`Opening`];
//! - [`api`]: the notary's HTTPS API (routes, handlers, the attest body
//!   parser) on the services' shared stack, `triad_wire::serve`;
//! - [`service`]: the notary service (proxy + API) and `triad notary`;
//! - [`client`]: the prover's client of that API and [`prove_with_notary`].
//!
//! [`verify_attestation`]: triad_attestation::verify_attestation
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod http;
pub mod notarize;
pub mod prover;
pub mod proxy;
pub mod service;
pub mod target;
pub mod transcript;

pub use client::{prove_with_notary, NotaryClient};
pub use notarize::{attest_session, AttestationRequest, NotaryError, RecordedSession};
pub use prover::{
    parse_header, prove, prover_client_config, run_session, Opening, ProveError, ProveTarget,
};
pub use proxy::{launch_proxy, ProxyConfig, ProxyHandle, SessionOutcome};
pub use target::{AllowedTarget, TargetRefusal};
pub use transcript::{
    check_transcript, root_store, CheckedResponse, ServerKeyDisclosure, Transcript, TranscriptError,
};
