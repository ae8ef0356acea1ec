//! What triad's services say to each other.
//!
//! - [`messages`]: every JSON body exchanged between providers, the
//!   coordinator, the three parties and the consumer API;
//! - [`release`]: a release, its canonical signing bytes and the party
//!   signatures that make it acceptable;
//! - [`receipt`]: a provider's salted commitments to its shares and the
//!   parties' signed receipts for them;
//! - [`config`]: the network description every service and client reads;
//! - [`https`]: the pinned-CA HTTP client, bounded answer reads, and the
//!   one JSON error shape every service answers with;
//! - [`serve`]: the HTTPS server loop (rustls, hyper, axum) with its
//!   connection caps and timeouts;
//! - [`poll`]: polls on the wire: sign-ups, the message log, share sets
//!   and their commitments, the tally the three parties sign;
//! - [`study`]: the study rules both the coordinator and the parties
//!   enforce: parameter bounds, the parties' floors, the release rule;
//! - [`trace`]: request ids and spans, the log subscriber;
//! - [`pki`]: the service CA and leaf certificates a devnet generates;
//! - [`keyfile`]: the notary's and the parties' signing keys on disk;
//! - [`directory`]: what a directory record's `spec` carries, and a
//!   party's endorsement of a record.
#![forbid(unsafe_code)]

pub mod config;
pub mod directory;
pub mod error_code;
pub mod https;
pub mod keyfile;
pub mod limits;
pub mod messages;
pub mod pki;
pub mod poll;
pub mod receipt;
pub mod release;
pub mod serve;
pub mod study;
pub mod trace;

pub use config::{NetworkConfig, PartyEndpoint};
pub use error_code::ErrorCode;
pub use https::{ApiError, PeerAddr};
pub use release::{PartySigningKey, Release, ReleaseError, SignedRelease, VerifiedRelease};

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
