//! Fuzz targets for every parser of outside input, one `pub fn <target>(data:
//! &[u8])` each. cargo-fuzz runs them from `fuzz/fuzz_targets/<target>.rs`
//! (one line each, nightly); `tests/corpus.rs` replays the committed corpus
//! `fuzz/corpus/<target>/` through them on stable, so every seed and every
//! past crash stays a regression test.
//!
//! Each function feeds the bytes to the real parser and, beyond "no panic",
//! checks invariants where they are cheap: round trips (parse → serialize →
//! parse gives the same value), canonical encodings (a value has exactly one
//! accepted form), and checks that a verifier never accepts what it did not
//! verify. A violated invariant panics, which the fuzzer reports as a crash.
//!
//! | target | parser |
//! |---|---|
//! | [`tls_transcript`] | `triad_notary::check_transcript` (TLS 1.2 records, handshake, AEAD) |
//! | [`http_response`] | `triad_notary::http::response_body` (status, headers, de-chunking) |
//! | [`data_spec`] | `triad_attestation`: `DataSpec` JSON, `extract_claim`, `parse_fixed_point` |
//! | [`attestation`] | `triad_attestation`: `Attestation` JSON, `decode_claims`, signing bytes, `verify_attestation` |
//! | [`proxy_preamble`] | `triad_notary::proxy::parse_preamble` |
//! | [`attest_request`] | `triad_notary::api::parse_attest` (the notary API's `POST /v1/attest` body) |
//! | [`share_upload`] | `ShareUpload` JSON and `triad_party::intake::parse_upload` |
//! | [`prepare_batch`] | `PrepareBatch` JSON and `triad_party::service::validate_prepare` |
//! | [`mpc_frame`] | `triad_net::read_frame` (length-prefixed frames) and `triad_mpc::network::decode_exact` |
//! | [`wire_messages`] | every JSON body of `triad_wire::messages`, `release` and `poll` |
//! | [`maci_keys`] | `macisk.` / `macipk.` strings: `triad_maci::{PrivKey, PubKey}` |
//! | [`poll_shares`] | a voter's share set: `MessageShares` JSON and `MessageShares::parse` |
//! | [`tally_request`] | `TallyRequest` JSON and `triad_party::polls::check_tally_request` |
//! | [`directory_envelope`] | a DHT envelope: `triad_directory::envelope::{check_stored, open}` |
//! | [`prefix_messages`] | the directory's prefix request and answer (`triad_directory::node`) |
//! | [`onion_packet`] | an onion packet as a relay peels it (`triad_directory::onion`) |
//! | [`ui_start`] | `triad ui`'s contribution request (`triad_client::ui::parse_start`) |
#![forbid(unsafe_code)]

mod directory;
mod input;
mod maci;
mod mpc;
mod notary;
mod polls;
mod services;

pub use directory::{
    directory_envelope, fuzz_directory_id, fuzz_onion_relay, onion_packet, prefix_messages,
};
pub use input::{encode_fields, Fields};
pub use maci::maci_keys;
pub use mpc::mpc_frame;
pub use notary::{
    attest_request, attestation, data_spec, fuzz_notary_key, http_response, proxy_preamble,
    tls_transcript, TranscriptCase,
};
pub use polls::{poll_shares, tally_request};
pub use services::{
    prepare_batch, share_upload, ui_start, wire_message_parses, wire_messages, WIRE_TYPES,
};

/// A fuzz target: any bytes in, a panic if the parser breaks an invariant.
pub type Target = fn(&[u8]);

/// Every target by name, as in `fuzz/fuzz_targets/` and `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("tls_transcript", tls_transcript),
    ("http_response", http_response),
    ("data_spec", data_spec),
    ("attestation", attestation),
    ("proxy_preamble", proxy_preamble),
    ("attest_request", attest_request),
    ("share_upload", share_upload),
    ("prepare_batch", prepare_batch),
    ("mpc_frame", mpc_frame),
    ("wire_messages", wire_messages),
    ("maci_keys", maci_keys),
    ("poll_shares", poll_shares),
    ("tally_request", tally_request),
    ("directory_envelope", directory_envelope),
    ("prefix_messages", prefix_messages),
    ("onion_packet", onion_packet),
    ("ui_start", ui_start),
];
