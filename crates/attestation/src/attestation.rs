//! The attestation: what the notary signs, its canonical signing bytes, the
//! notary's ed25519 key, and [`verify_attestation`], the one verifier every
//! component calls.
//!
//! JSON is the form people and services exchange; the signature covers the
//! *canonical signing bytes* ([`AttestationClaims::signing_bytes`]): a fixed-order,
//! length-prefixed binary encoding of the decoded fields, so JSON whitespace
//! or key order never matter and every field is covered exactly once.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triad_crypto::{fr_from_hex, fr_to_hex, Fr};

use crate::spec::DataSpec;

/// The only attestation format version this crate produces and accepts.
pub const ATTESTATION_VERSION: u32 = 1;

/// Domain separator prefixed to the signing bytes.
const SIGNING_DOMAIN: &[u8] = b"triad/attestation/v1\0";

/// Clock skew tolerated between notary and verifier, in seconds: an
/// attestation whose session time is at most this far in the future is valid.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Longest accepted server name / study id, in bytes.
const MAX_NAME_LEN: usize = 253;

/// A signed attestation as exchanged in JSON. Hex fields are lowercase,
/// fixed-length; anything else is rejected by [`verify_attestation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    pub version: u32,
    /// First 8 bytes of SHA-256 of the notary's public key, hex (16 digits).
    pub notary_key_id: String,
    /// The host name (or IP literal) the notary connected to and checked the
    /// certificate against.
    pub server_name: String,
    /// SHA-256 over the certificate chain (each DER cert u32-length-prefixed).
    pub cert_chain_sha256: String,
    /// Unix seconds when the TLS session was recorded.
    pub session_time: u64,
    /// Unix seconds after which the attestation is no longer valid.
    pub expires_at: u64,
    pub study_id: String,
    pub data_spec: DataSpec,
    /// `Poseidon(value, blinder)`, 64 hex digits (BN254 scalar, big-endian).
    pub commitment: String,
    /// `Poseidon(H(account id), H(study id))`, 64 hex digits.
    pub nullifier: String,
    /// SHA-256 of the recorded transcript (both directions), hex.
    pub transcript_sha256: String,
    /// ed25519 signature over [`AttestationClaims::signing_bytes`], 128 hex digits.
    pub signature: String,
}

/// Everything the notary attests, before signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationClaims {
    pub server_name: String,
    pub cert_chain_sha256: [u8; 32],
    pub session_time: u64,
    pub expires_at: u64,
    pub study_id: String,
    pub data_spec: DataSpec,
    pub commitment: Fr,
    pub nullifier: Fr,
    pub transcript_sha256: [u8; 32],
}

/// An attestation that passed [`verify_attestation`], fields decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAttestation {
    pub notary_key: NotaryPublicKey,
    pub claims: AttestationClaims,
}

/// Why an attestation is rejected. Every variant is the presenter's fault
/// (forged, stale or damaged attestation), except `UnknownNotaryKey`, which
/// may also mean the verifier's key list is out of date.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    #[error("unsupported attestation version {0} (this verifier accepts {ATTESTATION_VERSION})")]
    UnsupportedVersion(u32),
    #[error("malformed attestation field `{field}`: {reason}")]
    Malformed {
        field: &'static str,
        reason: &'static str,
    },
    #[error("attestation is signed by unknown notary key id {0}")]
    UnknownNotaryKey(String),
    #[error("attestation signature does not verify under notary key {0}")]
    BadSignature(String),
    #[error("attestation expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error("attestation session time {session_time} is in the future (now {now})")]
    NotYetValid { session_time: u64, now: u64 },
    #[error("invalid data spec in attestation: {0}")]
    BadDataSpec(#[from] crate::spec::SpecError),
}

fn malformed(field: &'static str, reason: &'static str) -> AttestationError {
    AttestationError::Malformed { field, reason }
}

/// Strict lowercase hex of exactly `N` bytes.
fn decode_hex<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], AttestationError> {
    if s.len() != 2 * N || s.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed(
            field,
            "expected lowercase hex of the exact length",
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| malformed(field, "bad hex"))?;
    Ok(out)
}

fn decode_fr(field: &'static str, s: &str) -> Result<Fr, AttestationError> {
    // Lowercase and length first, then the shared parser's reduction check.
    decode_hex::<32>(field, s)?;
    fr_from_hex(s).map_err(|_| malformed(field, "not a canonical BN254 scalar"))
}

fn check_name(field: &'static str, s: &str) -> Result<(), AttestationError> {
    if s.is_empty() || s.len() > MAX_NAME_LEN || s.chars().any(char::is_control) {
        return Err(malformed(
            field,
            "empty, too long or with control characters",
        ));
    }
    Ok(())
}

/// Writes `u32 length (big-endian) || bytes`.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

impl AttestationClaims {
    /// Canonical signing bytes:
    /// `domain || u32 version || str key_id || str server_name ||
    /// [32] cert_chain || u64 session_time || u64 expires_at || str study_id ||
    /// str field || u32 scale || str account_field || [32] commitment ||
    /// [32] nullifier || [32] transcript`, integers big-endian, `str` =
    /// u32 length || UTF-8, scalars as 32-byte big-endian.
    pub fn signing_bytes(&self, key_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(SIGNING_DOMAIN);
        out.extend_from_slice(&ATTESTATION_VERSION.to_be_bytes());
        put_bytes(&mut out, key_id.as_bytes());
        put_bytes(&mut out, self.server_name.as_bytes());
        out.extend_from_slice(&self.cert_chain_sha256);
        out.extend_from_slice(&self.session_time.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        put_bytes(&mut out, self.study_id.as_bytes());
        put_bytes(&mut out, self.data_spec.field.as_bytes());
        out.extend_from_slice(&self.data_spec.scale.to_be_bytes());
        put_bytes(&mut out, self.data_spec.account_field.as_bytes());
        for x in [&self.commitment, &self.nullifier] {
            let h = fr_to_hex(x);
            let mut b = [0u8; 32];
            // fr_to_hex always yields 64 hex digits.
            if hex::decode_to_slice(&h, &mut b).is_ok() {
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&self.transcript_sha256);
        out
    }
}

impl Attestation {
    /// Decodes and checks every field's form (not the signature, not time).
    pub fn decode_claims(&self) -> Result<AttestationClaims, AttestationError> {
        if self.version != ATTESTATION_VERSION {
            return Err(AttestationError::UnsupportedVersion(self.version));
        }
        check_name("server_name", &self.server_name)?;
        check_name("study_id", &self.study_id)?;
        self.data_spec.validate()?;
        if self.expires_at <= self.session_time {
            return Err(malformed("expires_at", "not after session_time"));
        }
        Ok(AttestationClaims {
            server_name: self.server_name.clone(),
            cert_chain_sha256: decode_hex("cert_chain_sha256", &self.cert_chain_sha256)?,
            session_time: self.session_time,
            expires_at: self.expires_at,
            study_id: self.study_id.clone(),
            data_spec: self.data_spec.clone(),
            commitment: decode_fr("commitment", &self.commitment)?,
            nullifier: decode_fr("nullifier", &self.nullifier)?,
            transcript_sha256: decode_hex("transcript_sha256", &self.transcript_sha256)?,
        })
    }

    /// Parses the JSON form.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Pretty JSON form.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A notary's ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotaryPublicKey(pub [u8; 32]);

impl NotaryPublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, AttestationError> {
        let s = s.trim().to_ascii_lowercase();
        Ok(Self(decode_hex("public_key", &s)?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 8 bytes of SHA-256 of the key, hex: the `notary_key_id`.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }
}

impl fmt::Debug for NotaryPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NotaryPublicKey({})", self.to_hex())
    }
}

/// Errors of the notary's key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("system random number generator failed")]
    Rng,
    #[error("notary key file is not 64 hex digits")]
    BadKeyFile,
}

/// The notary's ed25519 signing key. `Debug` never shows the secret.
pub struct NotarySigningKey {
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl fmt::Debug for NotarySigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NotarySigningKey({:?}, secret redacted)",
            self.public_key()
        )
    }
}

impl NotarySigningKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("every 32-byte seed is a valid ed25519 secret key");
        Self { seed, pair }
    }

    /// A fresh key from the system RNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| KeyError::Rng)?;
        Ok(Self::from_seed(seed))
    }

    /// The key from the text of its key file: the 32-byte seed as 64 hex
    /// digits, surrounding whitespace ignored. (Reading and creating the
    /// file is the caller's: `triad_wire::keyfile`.)
    pub fn from_key_file(text: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeyError::BadKeyFile)?;
        Ok(Self::from_seed(seed))
    }

    /// The text of this key's key file, [`Self::from_key_file`]'s input.
    /// It is the secret: write it only to a private file.
    pub fn to_key_file(&self) -> String {
        hex::encode(self.seed)
    }

    /// An ed25519 signature over `msg` (the same key store also holds the
    /// parties' release keys).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }

    pub fn public_key(&self) -> NotaryPublicKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        NotaryPublicKey(pk)
    }
}

/// Signs `claims` into an [`Attestation`].
pub fn sign_attestation(key: &NotarySigningKey, claims: &AttestationClaims) -> Attestation {
    let pk = key.public_key();
    let key_id = pk.key_id();
    let sig = key.pair.sign(&claims.signing_bytes(&key_id));
    Attestation {
        version: ATTESTATION_VERSION,
        notary_key_id: key_id,
        server_name: claims.server_name.clone(),
        cert_chain_sha256: hex::encode(claims.cert_chain_sha256),
        session_time: claims.session_time,
        expires_at: claims.expires_at,
        study_id: claims.study_id.clone(),
        data_spec: claims.data_spec.clone(),
        commitment: fr_to_hex(&claims.commitment),
        nullifier: fr_to_hex(&claims.nullifier),
        transcript_sha256: hex::encode(claims.transcript_sha256),
        signature: hex::encode(sig.as_ref()),
    }
}

/// The one attestation verifier (coordinator, parties, consumers, CLI).
///
/// Checks, in order: version; the form of every field; that the key id names
/// one of `trusted_keys`; the ed25519 signature over the canonical signing
/// bytes; then freshness at `now` (Unix seconds): valid from
/// `session_time - MAX_CLOCK_SKEW_SECS` until, excluding, `expires_at`.
/// It does not check study-specific policy (which server, which data spec,
/// nullifier reuse): that is the caller's, on the returned claims.
pub fn verify_attestation(
    att: &Attestation,
    trusted_keys: &[NotaryPublicKey],
    now: u64,
) -> Result<VerifiedAttestation, AttestationError> {
    let claims = att.decode_claims()?;
    let sig: [u8; 64] = decode_hex("signature", &att.signature)?;
    let key = trusted_keys
        .iter()
        .find(|k| k.key_id() == att.notary_key_id)
        .ok_or_else(|| AttestationError::UnknownNotaryKey(att.notary_key_id.clone()))?;
    UnparsedPublicKey::new(&ED25519, key.0)
        .verify(&claims.signing_bytes(&att.notary_key_id), &sig)
        .map_err(|_| AttestationError::BadSignature(att.notary_key_id.clone()))?;
    if now.saturating_add(MAX_CLOCK_SKEW_SECS) < claims.session_time {
        return Err(AttestationError::NotYetValid {
            session_time: claims.session_time,
            now,
        });
    }
    if now >= claims.expires_at {
        return Err(AttestationError::Expired {
            expires_at: claims.expires_at,
            now,
        });
    }
    Ok(VerifiedAttestation {
        notary_key: *key,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_crypto::{commitment, fr_from_i128, nullifier};

    const T0: u64 = 1_800_000_000;

    fn claims() -> AttestationClaims {
        AttestationClaims {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: [7; 32],
            session_time: T0,
            expires_at: T0 + 3600,
            study_id: "eth-holdings".into(),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            commitment: commitment(fr_from_i128(12500), Fr::from(42u64)),
            nullifier: nullifier(b"123", "eth-holdings"),
            transcript_sha256: [9; 32],
        }
    }

    fn key(n: u8) -> NotarySigningKey {
        NotarySigningKey::from_seed([n; 32])
    }

    #[test]
    fn round_trip_through_json_verifies() {
        let k = key(1);
        let att = sign_attestation(&k, &claims());
        let back = Attestation::from_json(&att.to_json()).unwrap();
        let v = verify_attestation(&back, &[key(2).public_key(), k.public_key()], T0 + 10).unwrap();
        assert_eq!(v.claims, claims());
        assert_eq!(v.notary_key, k.public_key());
    }

    #[test]
    fn every_modified_field_is_rejected() {
        let k = key(1);
        let good = sign_attestation(&k, &claims());
        let other_fr = fr_to_hex(&Fr::from(5u64));
        let mut cases: Vec<(&str, Attestation)> = Vec::new();
        let mut push = |name, f: &dyn Fn(&mut Attestation)| {
            let mut a = good.clone();
            f(&mut a);
            cases.push((name, a));
        };
        push("server_name", &|a| a.server_name = "127.0.0.2".into());
        push("cert", &|a| a.cert_chain_sha256 = hex::encode([8u8; 32]));
        push("session_time", &|a| a.session_time -= 1);
        push("expires_at", &|a| a.expires_at += 1);
        push("study", &|a| a.study_id = "other".into());
        push("field", &|a| a.data_spec.field = "balances.BTC".into());
        push("scale", &|a| a.data_spec.scale = 2);
        push("account_field", &|a| {
            a.data_spec.account_field = "id".into()
        });
        push("commitment", &|a| a.commitment = other_fr.clone());
        push("nullifier", &|a| a.nullifier = other_fr.clone());
        push("transcript", &|a| {
            a.transcript_sha256 = hex::encode([1u8; 32])
        });
        push("signature", &|a| {
            let mut s = a.signature.clone().into_bytes();
            s[0] = if s[0] == b'0' { b'1' } else { b'0' };
            a.signature = String::from_utf8(s).unwrap();
        });
        for (name, a) in cases {
            assert_eq!(
                verify_attestation(&a, &[k.public_key()], T0 + 10),
                Err(AttestationError::BadSignature(good.notary_key_id.clone())),
                "{name}"
            );
        }
    }

    #[test]
    fn other_key_and_unknown_key() {
        let att = sign_attestation(&key(1), &claims());
        // Claims the trusted key's id but is signed by another key.
        let mut forged = sign_attestation(&key(3), &claims());
        forged.notary_key_id = att.notary_key_id.clone();
        assert!(matches!(
            verify_attestation(&forged, &[key(1).public_key()], T0),
            Err(AttestationError::BadSignature(_))
        ));
        assert!(matches!(
            verify_attestation(&att, &[key(2).public_key()], T0),
            Err(AttestationError::UnknownNotaryKey(_))
        ));
        assert!(matches!(
            verify_attestation(&att, &[], T0),
            Err(AttestationError::UnknownNotaryKey(_))
        ));
    }

    #[test]
    fn freshness_window() {
        let k = key(1);
        let pk = [k.public_key()];
        let att = sign_attestation(&k, &claims());
        assert!(verify_attestation(&att, &pk, T0 - MAX_CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify_attestation(&att, &pk, T0 - MAX_CLOCK_SKEW_SECS - 1),
            Err(AttestationError::NotYetValid {
                session_time: T0,
                now: T0 - MAX_CLOCK_SKEW_SECS - 1
            })
        );
        assert!(verify_attestation(&att, &pk, T0 + 3599).is_ok());
        assert_eq!(
            verify_attestation(&att, &pk, T0 + 3600),
            Err(AttestationError::Expired {
                expires_at: T0 + 3600,
                now: T0 + 3600
            })
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        let k = key(1);
        let pk = [k.public_key()];
        let good = sign_attestation(&k, &claims());
        let mut a = good.clone();
        a.version = 2;
        assert_eq!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::UnsupportedVersion(2))
        );
        let mut a = good.clone();
        a.commitment = a.commitment.to_uppercase();
        assert!(matches!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::Malformed {
                field: "commitment",
                ..
            })
        ));
        let mut a = good.clone();
        // The BN254 scalar order itself is not a canonical scalar.
        a.nullifier = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001".into();
        assert!(matches!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::Malformed {
                field: "nullifier",
                ..
            })
        ));
        let mut a = good.clone();
        a.expires_at = a.session_time;
        assert!(matches!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::Malformed {
                field: "expires_at",
                ..
            })
        ));
        let mut a = good.clone();
        a.signature.pop();
        assert!(matches!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::Malformed {
                field: "signature",
                ..
            })
        ));
        let mut a = good;
        a.data_spec.scale = 99;
        assert!(matches!(
            verify_attestation(&a, &pk, T0),
            Err(AttestationError::BadDataSpec(_))
        ));
        let unknown_field = r#"{"version":1,"extra":true}"#;
        assert!(Attestation::from_json(unknown_field).is_err());
    }

    #[test]
    fn key_file_text_round_trips_and_debug_hides_it() {
        let a = NotarySigningKey::from_seed([9; 32]);
        let text = a.to_key_file();
        let b = NotarySigningKey::from_key_file(&format!("{text}\n")).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(matches!(
            NotarySigningKey::from_key_file("abc"),
            Err(KeyError::BadKeyFile)
        ));
        assert!(!format!("{a:?}").contains(&text));
    }
}
