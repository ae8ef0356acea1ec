//! A provider's commitments to its shares and the parties' signed receipts.
//!
//! The provider XOR-shares its value's word and additively shares its
//! blinder into three components `j = 0, 1, 2`; party `i` receives
//! components `i` and `i+1`. Before uploading, the provider commits to
//! every component with a fresh 256-bit salt ([`component_commitment`]) and
//! sends each party all three commitments plus the salts of its two
//! components. A party accepts an upload only if its components open its
//! two commitments, then signs a [`ShareReceipt`] naming the three
//! commitments and the time until which it keeps the shares
//! ([`ShareReceipt::kept_until`]). The provider checks that all three
//! parties signed receipts for the same commitments, each keeping them at
//! least [`MIN_KEEP_SECS`], and hands the receipts to the coordinator with
//! "ready"; the coordinator checks them again, stores them, names their
//! [`ShareReceipt::digest`] in the batch and forwards them with it, and each
//! party uses the uploaded shares only under that digest.
//!
//! What this buys (docs/security.md, "Client inputs"): every component is
//! held by two parties, at least one of them honest, and both checked it
//! against the same commitment. An honest party therefore knows its own
//! components are the provider's; a peer that reports them missing before
//! the time its own receipt promised to keep them, or inconsistent, is
//! lying (or the provider broke SHA-256), and in malicious mode the batch
//! aborts instead of rejecting the provider. The salt keeps a party that
//! does not hold a component from testing guesses of it against its
//! commitment.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::release::{sign_document, verify_document, ReleaseError};
use crate::PartySigningKey;

pub const RECEIPT_VERSION: u32 = 2;
/// The least retention a provider accepts in a receipt, seconds from its
/// own clock: parties keep uploads 180 s, so this allows 30 s of clock
/// skew between provider and party. A party that promised less could
/// stall a batch past its promise and then claim, unjudged, to have
/// dropped the shares.
pub const MIN_KEEP_SECS: u64 = 150;
/// The least retention the coordinator accepts when a provider declares
/// its submission ready: enough for the batch to form and run.
pub const MIN_KEEP_AT_READY_SECS: u64 = 60;
const COMMIT_DOMAIN: &[u8] = b"triad/share-commitment/v1\0";
const RECEIPT_DOMAIN: &[u8] = b"triad/share-receipt/v1\0";
const DIGEST_DOMAIN: &[u8] = b"triad/share-commitments/v1\0";

/// SHA-256 over a domain, the submission id, the component index, the
/// salt and the component as uploaded (canonical lowercase hex: 16 digits
/// of the word, 64 of the blinder), as 64 hex digits.
pub fn component_commitment(
    submission_id: &str,
    component: u8,
    value_bits_hex: &str,
    blinder_hex: &str,
    salt_hex: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(COMMIT_DOMAIN);
    h.update((submission_id.len() as u64).to_le_bytes());
    h.update(submission_id.as_bytes());
    h.update([component]);
    h.update(salt_hex.as_bytes());
    h.update(value_bits_hex.as_bytes());
    h.update(blinder_hex.as_bytes());
    hex::encode(h.finalize())
}

/// What a party signs when it accepts an upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShareReceipt {
    pub version: u32,
    pub submission_id: String,
    /// SHA-256 of the provider's token (64 hex): the upload it keyed.
    pub token_sha256: String,
    /// The commitments to components 0, 1, 2 (64 hex each).
    pub commitments: [String; 3],
    /// Unix seconds until which the signing party keeps the shares unless
    /// their batch commits first: a claim not to hold them before then
    /// contradicts this signature. The only field in which the three
    /// parties' receipts differ.
    pub kept_until: u64,
}

impl ShareReceipt {
    /// SHA-256 of the three commitments (64 hex): what the coordinator
    /// names in a batch item.
    pub fn digest(&self) -> String {
        commitments_digest(&self.commitments)
    }

    pub fn sign(&self, party: u8, key: &PartySigningKey) -> SignedReceipt {
        let receipt_json = serde_json::to_string(self).expect("a receipt serializes");
        SignedReceipt {
            party,
            signature: sign_document(key, RECEIPT_DOMAIN, &receipt_json),
            receipt_json,
        }
    }
}

/// SHA-256 over a domain and the three commitments, as 64 hex digits.
pub fn commitments_digest(commitments: &[String; 3]) -> String {
    let mut h = Sha256::new();
    h.update(DIGEST_DOMAIN);
    for c in commitments {
        h.update(c.as_bytes());
    }
    hex::encode(h.finalize())
}

/// One party's signed receipt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub party: u8,
    /// The exact bytes signed: the [`ShareReceipt`] as JSON.
    pub receipt_json: String,
    /// ed25519 signature (128 hex) over `domain || receipt_json`.
    pub signature: String,
}

/// Three receipts that verified: what all three name, and each party's
/// retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipts {
    /// Party 0's receipt (the others differ only in `kept_until`).
    pub receipt: ShareReceipt,
    /// `kept_until` of parties 0, 1, 2.
    pub kept_until: [u64; 3],
}

impl VerifiedReceipts {
    /// An error naming the first party whose receipt keeps the shares less
    /// than `min_secs` after `now` (unix seconds).
    pub fn check_retention(&self, now: u64, min_secs: u64) -> Result<(), ReleaseError> {
        match self
            .kept_until
            .iter()
            .position(|&t| t < now.saturating_add(min_secs))
        {
            Some(i) => Err(ReleaseError::Malformed(format!(
                "party {i} keeps the shares only until {} (now {now}; at least {min_secs} s needed)",
                self.kept_until[i]
            ))),
            None => Ok(()),
        }
    }
}

/// Checks that parties 0, 1, 2 (in order) signed receipts under `keys`
/// that differ at most in `kept_until`, and returns them.
pub fn verify_receipts(
    copies: &[SignedReceipt],
    keys: &[String; 3],
) -> Result<VerifiedReceipts, ReleaseError> {
    if copies.len() != 3
        || copies
            .iter()
            .enumerate()
            .any(|(i, c)| c.party as usize != i)
    {
        return Err(ReleaseError::WrongParties);
    }
    let mut docs = Vec::with_capacity(3);
    for (c, k) in copies.iter().zip(keys) {
        docs.push(verify_receipt(c, k)?);
    }
    let kept_until = [docs[0].kept_until, docs[1].kept_until, docs[2].kept_until];
    let same = |r: &ShareReceipt| ShareReceipt {
        kept_until: 0,
        ..r.clone()
    };
    if docs.iter().any(|r| same(r) != same(&docs[0])) {
        return Err(ReleaseError::Disagree);
    }
    Ok(VerifiedReceipts {
        receipt: docs.swap_remove(0),
        kept_until,
    })
}

/// Checks one party's receipt under its key (64 hex) and returns it.
pub fn verify_receipt(copy: &SignedReceipt, key: &str) -> Result<ShareReceipt, ReleaseError> {
    verify_document(
        copy.party,
        key,
        RECEIPT_DOMAIN,
        &copy.receipt_json,
        &copy.signature,
    )?;
    let r: ShareReceipt = serde_json::from_str(&copy.receipt_json)
        .map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    if r.version != RECEIPT_VERSION {
        return Err(ReleaseError::Malformed(format!(
            "receipt version {}",
            r.version
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> [PartySigningKey; 3] {
        [7u8, 8, 9].map(|s| PartySigningKey::from_seed([s; 32]))
    }

    fn receipt() -> ShareReceipt {
        ShareReceipt {
            version: RECEIPT_VERSION,
            submission_id: "ab".repeat(16),
            token_sha256: "cd".repeat(32),
            commitments: ["01", "02", "03"].map(|c| c.repeat(32)),
            kept_until: 1_000_180,
        }
    }

    #[test]
    fn three_signatures_on_one_receipt_verify() {
        let k = keys();
        let pk = k.each_ref().map(|k| k.public_key().to_hex());
        let r = receipt();
        // Each party states its own retention; nothing else may differ.
        let copies: Vec<_> = (0..3)
            .map(|i| {
                let mut own = r.clone();
                own.kept_until += i as u64;
                own.sign(i as u8, &k[i])
            })
            .collect();
        let got = verify_receipts(&copies, &pk).unwrap();
        assert_eq!(got.receipt, r);
        assert_eq!(got.kept_until, [1_000_180, 1_000_181, 1_000_182]);
        assert_eq!(
            verify_receipt(&copies[2], &pk[2]).unwrap().kept_until,
            1_000_182
        );
        assert_eq!(
            verify_receipt(&copies[2], &pk[1]),
            Err(ReleaseError::BadSignature(2))
        );
        // Retention: at least MIN_KEEP_SECS from the provider's clock.
        let m = MIN_KEEP_SECS;
        assert!(got.check_retention(1_000_180 - m, m).is_ok());
        let short = got.check_retention(1_000_181 - m, m).unwrap_err();
        assert!(short.to_string().contains("party 0"), "{short}");
        assert!(got.check_retention(u64::MAX, m).is_err());
        assert!(got.check_retention(u64::MAX, 0).is_err());

        // A party that signed other commitments, a copy signed by the wrong
        // key, a missing or reordered copy, a release signature passed off
        // as a receipt: all refused.
        let mut other = r.clone();
        other.commitments[1] = "ff".repeat(32);
        let mut bad = copies.clone();
        bad[2] = other.sign(2, &k[2]);
        assert_eq!(verify_receipts(&bad, &pk), Err(ReleaseError::Disagree));
        let mut bad = copies.clone();
        bad[1] = r.sign(1, &k[0]);
        assert_eq!(
            verify_receipts(&bad, &pk),
            Err(ReleaseError::BadSignature(1))
        );
        assert_eq!(
            verify_receipts(&copies[..2], &pk),
            Err(ReleaseError::WrongParties)
        );
        let mut bad = copies.clone();
        bad.swap(0, 1);
        assert_eq!(verify_receipts(&bad, &pk), Err(ReleaseError::WrongParties));
        let mut bad = copies.clone();
        bad[0].signature = sign_document(&k[0], b"triad/release/v1\0", &bad[0].receipt_json);
        assert_eq!(
            verify_receipts(&bad, &pk),
            Err(ReleaseError::BadSignature(0))
        );
    }

    #[test]
    fn commitments_bind_every_input() {
        let base = component_commitment("s", 0, "00", "11", "22");
        assert_eq!(base.len(), 64);
        for other in [
            component_commitment("t", 0, "00", "11", "22"),
            component_commitment("s", 1, "00", "11", "22"),
            component_commitment("s", 0, "01", "11", "22"),
            component_commitment("s", 0, "00", "12", "22"),
            component_commitment("s", 0, "00", "11", "23"),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(
            receipt().digest(),
            commitments_digest(&["01", "03", "02"].map(|c| c.repeat(32)))
        );
    }
}
