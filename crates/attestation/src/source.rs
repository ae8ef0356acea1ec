//! Which HTTPS server a study's values must come from, and the check that
//! binds an attestation to it.
//!
//! The notary attests *that some server answered*: the server name the
//! prover connected to and the certificate chain that server presented
//! (checked against the notary's roots). Without a binding to the study's
//! source, any site whose certificate the notary trusts — with the
//! platform roots, any public website — could answer an arbitrary value
//! and a fresh account id on every request. So a study names its source,
//! and the coordinator and every party refuse an attestation from any
//! other one ([`DataSource::check`]). Pure functions, no I/O.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest accepted server name (RFC 1035's 253 characters).
pub const MAX_SERVER_NAME: usize = 253;

/// A study's data source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// The host name (or IP literal) the notary must have connected to and
    /// checked the certificate against, e.g. `api.exchange.example`.
    /// Compared ASCII-case-insensitively.
    pub server_name: String,
    /// Optional pin: SHA-256 (64 lowercase hex) of the certificate chain
    /// the server presented, as in the attestation's `cert_chain_sha256`
    /// ([`cert_chain_sha256`]). A pinned study refuses every other chain,
    /// including a correctly issued certificate for the same name from
    /// another CA; it must be updated when the source renews its
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain_sha256: Option<String>,
}

/// Why a data source or an attestation's origin is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    /// The study's own description is wrong (the operator's fault).
    #[error("data source server name {0:?} is empty, too long or not a host name or IP literal")]
    BadServerName(String),
    #[error("data source certificate pin must be 64 lowercase hex digits")]
    BadPin,
    /// The attestation comes from another server (the presenter's fault).
    #[error("attested server {got:?} is not the study's data source {want:?}")]
    WrongServer { want: String, got: String },
    #[error("attested certificate chain {got} is not the study's pinned chain {want}")]
    WrongCertificate { want: String, got: String },
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl DataSource {
    /// A source by name only, with no certificate pin.
    pub fn named(server_name: impl Into<String>) -> Self {
        Self {
            server_name: server_name.into(),
            cert_chain_sha256: None,
        }
    }

    /// Checks the description itself: a host name of letters, digits, `-`
    /// and `.` (no empty label, no trailing dot), or an IP literal; a pin of
    /// 64 lowercase hex digits.
    pub fn validate(&self) -> Result<(), SourceError> {
        let n = &self.server_name;
        let ip = n.parse::<std::net::IpAddr>().is_ok();
        let host = !n.is_empty()
            && n.len() <= MAX_SERVER_NAME
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !(ip || host) {
            return Err(SourceError::BadServerName(n.clone()));
        }
        if let Some(p) = &self.cert_chain_sha256 {
            if !is_lower_hex(p, 64) {
                return Err(SourceError::BadPin);
            }
        }
        Ok(())
    }

    /// Whether an attestation's origin (its `server_name` and
    /// `cert_chain_sha256`, both covered by the notary's signature) is this
    /// source.
    pub fn check(&self, server_name: &str, cert_chain_sha256: &str) -> Result<(), SourceError> {
        if !server_name.eq_ignore_ascii_case(&self.server_name) {
            return Err(SourceError::WrongServer {
                want: self.server_name.clone(),
                got: server_name.to_string(),
            });
        }
        match &self.cert_chain_sha256 {
            Some(pin) if pin != cert_chain_sha256 => Err(SourceError::WrongCertificate {
                want: pin.clone(),
                got: cert_chain_sha256.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// The chain digest the notary attests: SHA-256 over every certificate in
/// the order the server sent them, each DER prefixed by its length as a
/// big-endian u32 (see `transcript::check_transcript`, step 3).
pub fn cert_chain_sha256<'a>(chain_der: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for der in chain_der {
        h.update((der.len() as u32).to_be_bytes());
        h.update(der);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_pins_are_validated() {
        for ok in ["127.0.0.1", "::1", "api.exchange.example", "a-b.c0"] {
            assert_eq!(DataSource::named(ok).validate(), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "a.",
            ".a",
            "a b",
            "a/b",
            "a:443",
            &"a".repeat(254),
        ] {
            assert!(DataSource::named(bad).validate().is_err(), "{bad:?}");
        }
        let mut s = DataSource::named("a.example");
        s.cert_chain_sha256 = Some("AB".repeat(32));
        assert_eq!(s.validate(), Err(SourceError::BadPin));
        s.cert_chain_sha256 = Some("ab".repeat(32));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn another_server_or_chain_is_refused() {
        let chain = hex::encode(cert_chain_sha256([b"leaf".as_slice(), b"ca"]));
        let other = hex::encode(cert_chain_sha256([b"leaf".as_slice()]));
        let named = DataSource::named("api.exchange.example");
        assert_eq!(named.check("API.Exchange.example", &chain), Ok(()));
        assert!(matches!(
            named.check("evil.example", &chain),
            Err(SourceError::WrongServer { .. })
        ));
        // A suffix or prefix of the name is another server.
        assert!(named.check("api.exchange.example.evil", &chain).is_err());
        assert!(named.check("exchange.example", &chain).is_err());
        let pinned = DataSource {
            cert_chain_sha256: Some(chain.clone()),
            ..named
        };
        assert_eq!(pinned.check("api.exchange.example", &chain), Ok(()));
        assert!(matches!(
            pinned.check("api.exchange.example", &other),
            Err(SourceError::WrongCertificate { .. })
        ));
    }

    proptest! {
        #[test]
        fn only_the_named_server_passes(a in "[a-z0-9]{1,12}(\\.[a-z0-9]{1,12}){0,3}",
                                        b in "[a-z0-9]{1,12}(\\.[a-z0-9]{1,12}){0,3}") {
            let s = DataSource::named(a.clone());
            prop_assert!(s.validate().is_ok());
            prop_assert_eq!(s.check(&b, "").is_ok(), a == b);
        }
    }
}
