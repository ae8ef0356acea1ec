//! A release and its signatures. Each party signs the exact JSON bytes of
//! the [`Release`] it computed; a consumer accepts a release only if all
//! three parties signed byte-identical documents ([`verify_release`]).
//! Signing bytes rather than re-serialised structs means nobody depends on
//! float formatting round-tripping through a JSON parser.

use ring::signature::{UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use triad_stats::StatsResult;

/// The parties' ed25519 release keys use the notary's key store.
pub use triad_attestation::NotarySigningKey as PartySigningKey;

pub const RELEASE_VERSION: u32 = 1;
const SIGNING_DOMAIN: &[u8] = b"triad/release/v1\0";

/// What a release states.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: u32,
    pub study_id: String,
    /// 1, 2, 3, … per study.
    pub release_no: u64,
    pub created_at: u64,
    /// Contributions included: those of every batch committed with an id
    /// up to `as_of_batch`.
    pub count: u64,
    pub as_of_batch: u64,
    pub results: StatsResult,
    /// The adversary the parties' MPC was secure against when they
    /// computed this release (they agree on it at session setup, so all
    /// three signed the same); absent in releases made before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityMode>,
}

/// The security mode a release or a poll tally was computed in
/// (docs/security.md).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// Secure against one party that follows the protocol but is curious.
    SemiHonest,
    /// Secure with abort against one party that deviates: every gate and
    /// product was checked and every opening compared before the results
    /// were opened.
    Malicious,
}

impl From<triad_mpc::Security> for SecurityMode {
    fn from(s: triad_mpc::Security) -> Self {
        match s {
            triad_mpc::Security::SemiHonest => SecurityMode::SemiHonest,
            triad_mpc::Security::Malicious => SecurityMode::Malicious,
        }
    }
}

impl SecurityMode {
    /// For people: "semi-honest" or "malicious-secure"; "mode not
    /// recorded" for documents made before the mode was signed.
    pub fn describe(mode: Option<SecurityMode>) -> &'static str {
        match mode {
            Some(SecurityMode::SemiHonest) => "semi-honest",
            Some(SecurityMode::Malicious) => "malicious-secure",
            None => "mode not recorded",
        }
    }
}

/// One party's signed copy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedRelease {
    pub party: u8,
    /// The exact bytes that were signed: the [`Release`] as JSON.
    pub release_json: String,
    /// ed25519 signature (128 hex) over `domain || release_json`.
    pub signature: String,
}

/// A release all three parties signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifiedRelease {
    pub release: Release,
    /// The three signed copies, party 0 first.
    pub signatures: Vec<SignedRelease>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("expected one copy from each of the three parties")]
    WrongParties,
    #[error("party {0}'s signature does not verify")]
    BadSignature(u8),
    #[error("party {0}'s public key is malformed")]
    BadKey(u8),
    #[error("the parties signed different documents")]
    Disagree,
    #[error("the signed document is not a release: {0}")]
    Malformed(String),
}

/// Signs `json` under `domain`: the signature (128 hex) over
/// `domain || json`. Releases and poll tallies use distinct domains, so a
/// signature on one is never a signature on the other.
pub(crate) fn sign_document(key: &PartySigningKey, domain: &[u8], json: &str) -> String {
    hex::encode(key.sign(&[domain, json.as_bytes()].concat()))
}

/// Checks `(party, json, signature)` copies: parties 0, 1, 2 in order,
/// each signature valid under `keys[i]` (64 hex) and `domain`, and the
/// three documents byte-identical.
/// Checks party `party`'s ed25519 signature (hex) over `domain || json`
/// under its key (64 hex).
pub(crate) fn verify_document(
    party: u8,
    key: &str,
    domain: &[u8],
    json: &str,
    sig: &str,
) -> Result<(), ReleaseError> {
    let pk = hex::decode(key).map_err(|_| ReleaseError::BadKey(party))?;
    let sig = hex::decode(sig).map_err(|_| ReleaseError::BadSignature(party))?;
    UnparsedPublicKey::new(&ED25519, &pk)
        .verify(&[domain, json.as_bytes()].concat(), &sig)
        .map_err(|_| ReleaseError::BadSignature(party))
}

pub(crate) fn verify_documents(
    copies: &[(u8, &str, &str)],
    keys: &[String; 3],
    domain: &[u8],
) -> Result<(), ReleaseError> {
    if copies.len() != 3 || copies.iter().enumerate().any(|(i, c)| c.0 as usize != i) {
        return Err(ReleaseError::WrongParties);
    }
    for ((party, json, sig), k) in copies.iter().zip(keys) {
        verify_document(*party, k, domain, json, sig)?;
    }
    if copies.iter().any(|c| c.1 != copies[0].1) {
        return Err(ReleaseError::Disagree);
    }
    Ok(())
}

/// Signs `release` as party `party`.
pub fn sign_release(key: &PartySigningKey, party: u8, release: &Release) -> SignedRelease {
    let release_json = serde_json::to_string(release).expect("release serializes");
    SignedRelease {
        party,
        signature: sign_document(key, SIGNING_DOMAIN, &release_json),
        release_json,
    }
}

/// Accepts a release only if `copies` are parties 0, 1, 2 in order, each
/// signature verifies under `keys[i]` (64 hex), and the documents are equal.
pub fn verify_release(
    copies: &[SignedRelease],
    keys: &[String; 3],
) -> Result<VerifiedRelease, ReleaseError> {
    let docs: Vec<(u8, &str, &str)> = copies
        .iter()
        .map(|c| (c.party, c.release_json.as_str(), c.signature.as_str()))
        .collect();
    verify_documents(&docs, keys, SIGNING_DOMAIN)?;
    let release: Release = serde_json::from_str(&copies[0].release_json)
        .map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    if release.version != RELEASE_VERSION {
        return Err(ReleaseError::Malformed(format!(
            "unsupported version {}",
            release.version
        )));
    }
    Ok(VerifiedRelease {
        release,
        signatures: copies.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(count: u64) -> Release {
        let values: Vec<i64> = (0..count as i64).map(|v| v * 7 - 3).collect();
        let spec = triad_stats::StatsSpec {
            quantiles: vec![0.9],
            histogram_bounds: vec![0, 10],
        };
        Release {
            version: RELEASE_VERSION,
            study_id: "s".into(),
            release_no: 1,
            created_at: 5,
            count,
            as_of_batch: 1,
            results: triad_stats::oracle(&values, &spec).unwrap(),
            security: Some(SecurityMode::Malicious),
        }
    }

    fn keys() -> ([PartySigningKey; 3], [String; 3]) {
        let k = [1u8, 2, 3].map(|s| PartySigningKey::from_seed([s; 32]));
        let pk = [0, 1, 2].map(|i| k[i].public_key().to_hex());
        (k, pk)
    }

    #[test]
    fn three_signatures_verify_and_tampering_fails() {
        let (k, pk) = keys();
        let r = release(11);
        let copies: Vec<_> = (0..3).map(|i| sign_release(&k[i], i as u8, &r)).collect();
        let v = verify_release(&copies, &pk).unwrap();
        assert_eq!(v.release, r);

        let mut bad = copies.clone();
        bad[1].release_json = bad[1].release_json.replace("\"count\":11", "\"count\":12");
        assert_eq!(
            verify_release(&bad, &pk),
            Err(ReleaseError::BadSignature(1))
        );

        // A party signing a different document is caught even if valid.
        let mut other = copies.clone();
        other[2] = sign_release(&k[2], 2, &release(12));
        assert_eq!(verify_release(&other, &pk), Err(ReleaseError::Disagree));

        // Swapped keys, missing party.
        let swapped = [pk[1].clone(), pk[0].clone(), pk[2].clone()];
        assert_eq!(
            verify_release(&copies, &swapped),
            Err(ReleaseError::BadSignature(0))
        );
        assert_eq!(
            verify_release(&copies[..2], &pk),
            Err(ReleaseError::WrongParties)
        );
    }
}
