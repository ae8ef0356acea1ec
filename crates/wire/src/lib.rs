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
//! - [`metrics`]: Prometheus text metrics, `GET /metrics`;
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
pub mod metrics;
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

/// Unix seconds as `YYYY-MM-DD hh:mm:ss UTC` (proleptic Gregorian; the
/// days-to-civil conversion of Howard Hinnant's "chrono-Compatible
/// Low-Level Date Algorithms").
pub fn format_unix(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_unix_known_dates() {
        assert_eq!(super::format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::format_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::format_unix(1_796_271_522), "2026-12-03 04:18:42 UTC");
        assert_eq!(super::format_unix(4_107_542_399), "2100-02-28 23:59:59 UTC");
    }
}
