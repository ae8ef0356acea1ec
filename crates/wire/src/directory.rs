//! What the services put in a directory record's `spec` and say to each
//! other to publish it (docs/directory.md, "Services"). The record itself,
//! its signatures and its envelope are `triad-directory`'s; this module
//! holds only the JSON the coordinator, the parties and the clients share.
//!
//! A record names the coordinator, the parties and the notary's key; its
//! `spec` adds what a client needs to take part without a network
//! description: the notary's URL, the SHA-256 of the services' CA
//! certificate (the client still brings the CA file, and checks it against
//! this digest), where providers attest from (when the coordinator knows),
//! and the study's data spec or the poll's spec.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triad_attestation::{DataSource, DataSpec};

use crate::poll::PollSpec;

/// Longest human-readable name a record carries (longer names are cut):
/// the record must fit its fixed 2,048-byte padding.
pub const MAX_TITLE_CHARS: usize = 64;

/// A study's terms as a record states them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyTerms {
    /// The study's human-readable name (at most [`MAX_TITLE_CHARS`]).
    pub title: String,
    pub data_spec: DataSpec,
    pub source: DataSource,
    pub min_cohort: u64,
}

/// The `spec` of a directory record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The notary's HTTPS base URL (its key is the record's `notary_key`).
    pub notary: String,
    /// SHA-256 (64 hex) of the DER of the CA certificate that issued every
    /// service's HTTPS certificate ([`ca_sha256`]).
    pub ca_sha256: String,
    /// The account endpoint providers attest from, when the coordinator's
    /// network names one (a devnet's demo data source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// A study's terms (records of kind `study`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<StudyTerms>,
    /// A poll's spec (records of kind `poll`), its name cut to
    /// [`MAX_TITLE_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSpec>,
}

/// `s` cut to [`MAX_TITLE_CHARS`] characters.
pub fn title(s: &str) -> String {
    s.chars().take(MAX_TITLE_CHARS).collect()
}

/// SHA-256 (64 hex) of the first certificate in `ca_pem`, or `None` if it
/// holds none.
pub fn ca_sha256(ca_pem: &[u8]) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    let first = rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem).next()?;
    let der = first.ok()?;
    Some(hex::encode(Sha256::digest(der.as_ref())))
}

/// A party's answer to `POST /internal/directory/endorse`: its endorsement
/// of the record body (`triad-directory`'s `ServiceRecord::endorse`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Endorsement {
    /// The party's index (0, 1, 2).
    pub party: usize,
    /// ed25519 over `"triad/dir/endorse/v1\0" ‖ body`, 128 hex.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_digest_is_over_the_certificate_not_its_pem_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        crate::pki::ServiceCa::create(&path).unwrap();
        let pem = std::fs::read(&path).unwrap();
        let d = ca_sha256(&pem).unwrap();
        assert_eq!(d.len(), 64);
        // The same certificate with CRLF line ends: the same digest.
        let crlf = String::from_utf8(pem.clone())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(ca_sha256(crlf.as_bytes()).unwrap(), d);
        assert_eq!(ca_sha256(b"not a certificate"), None);
    }

    #[test]
    fn titles_are_cut_on_characters() {
        assert_eq!(title("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(title(&long).chars().count(), MAX_TITLE_CHARS);
    }
}
