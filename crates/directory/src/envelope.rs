//! What the DHT stores: a fixed-size envelope around the padded record
//! (docs/directory.md, "Envelope").
//!
//! ```text
//! ver 0x01 | alg 0x80 0x40 (varint of aes-gcm-256, 0x2000) | dht_key[32]
//! | nonce[12] | ct[RECORD_SIZE + 16] = AES-256-GCM(K_ENC, nonce, record,
//!                aad = "triad/dir/v1\0" ‖ dht_key)
//! | publisher_pk[32] | ts u64 (big-endian)
//! | sig[64] = ed25519(publisher, "triad/dir/envelope/v1\0" ‖ everything before sig)
//! ```
//!
//! A DHT node checks what it can without the id ([`check_stored`]): the
//! size, the layout, the key it is stored under, the publisher's signature
//! and the time. Only a reader who knows the id derives `K_ENC`, decrypts
//! and verifies the record's own signatures ([`open`]).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

use crate::derive::DirectoryId;
use crate::record::{Kind, RecordError, ServiceRecord, RECORD_SIZE};
use crate::{verify_ed25519, SigningKey};

const VERSION: u8 = 1;
const ALG: [u8; 2] = [0x80, 0x40];
const AAD_DOMAIN: &[u8] = b"triad/dir/v1\0";
const SIG_DOMAIN: &[u8] = b"triad/dir/envelope/v1\0";
/// Bytes of every envelope.
pub const ENVELOPE_SIZE: usize = 1 + 2 + 32 + 12 + RECORD_SIZE + 16 + 32 + 8 + 64;
/// How old an envelope's timestamp may be (IPIP-373's 48 h), and how far
/// in the future (clock skew).
pub const MAX_AGE_SECS: u64 = 48 * 3600;
pub const MAX_SKEW_SECS: u64 = 300;

const KEY_AT: usize = 3;
const NONCE_AT: usize = KEY_AT + 32;
const CT_AT: usize = NONCE_AT + 12;
const PK_AT: usize = CT_AT + RECORD_SIZE + 16;
const TS_AT: usize = PK_AT + 32;
const SIG_AT: usize = TS_AT + 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("an envelope is {ENVELOPE_SIZE} bytes, not {0}")]
    Size(usize),
    #[error("unknown envelope version or algorithm")]
    Version,
    #[error("the envelope is stored under another key")]
    WrongKey,
    #[error("the publisher's signature does not verify")]
    Signature,
    #[error("the envelope's time is too old or in the future")]
    Stale,
    #[error("the envelope does not decrypt under this id")]
    Decrypt,
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("system random number generator failed")]
    Rng,
}

/// The fields of an envelope a DHT node may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub dht_key: [u8; 32],
    pub publisher: [u8; 32],
    pub timestamp: u64,
}

/// Seals `record` for `id`: pads, encrypts under `K_ENC` with a random
/// nonce, stamps `now` and signs with `publisher` (a key held by the
/// coordinator for this record).
pub fn seal(
    record: &ServiceRecord,
    id: &DirectoryId,
    publisher: &SigningKey,
    now: u64,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut plain = record.to_padded()?;
    let dht_key = id.dht_key();
    let mut nonce = [0u8; 12];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| EnvelopeError::Rng)?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &id.encryption_key()).expect("32-byte key"));
    let aad = [AAD_DOMAIN, &dht_key].concat();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&aad),
        &mut plain,
    )
    .map_err(|_| EnvelopeError::Decrypt)?;
    let mut out = Vec::with_capacity(ENVELOPE_SIZE);
    out.push(VERSION);
    out.extend_from_slice(&ALG);
    out.extend_from_slice(&dht_key);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&plain);
    out.extend_from_slice(&publisher.public_key().0);
    out.extend_from_slice(&now.to_be_bytes());
    let sig = publisher.sign(&[SIG_DOMAIN, &out].concat());
    out.extend_from_slice(&sig);
    debug_assert_eq!(out.len(), ENVELOPE_SIZE);
    Ok(out)
}

/// What a DHT node checks before storing `bytes` under `dht_key` at time
/// `now` (it never learns the id): exact size, version, the key, the
/// publisher's signature, and a timestamp neither older than
/// [`MAX_AGE_SECS`] nor more than [`MAX_SKEW_SECS`] ahead.
pub fn check_stored(bytes: &[u8], dht_key: &[u8], now: u64) -> Result<Header, EnvelopeError> {
    if bytes.len() != ENVELOPE_SIZE {
        return Err(EnvelopeError::Size(bytes.len()));
    }
    if bytes[0] != VERSION || bytes[1..3] != ALG {
        return Err(EnvelopeError::Version);
    }
    if &bytes[KEY_AT..NONCE_AT] != dht_key {
        return Err(EnvelopeError::WrongKey);
    }
    let publisher: [u8; 32] = bytes[PK_AT..TS_AT].try_into().expect("32 bytes");
    let timestamp = u64::from_be_bytes(bytes[TS_AT..SIG_AT].try_into().expect("8 bytes"));
    let signed = [SIG_DOMAIN, &bytes[..SIG_AT]].concat();
    if !verify_ed25519(&publisher, &signed, &bytes[SIG_AT..]) {
        return Err(EnvelopeError::Signature);
    }
    if timestamp.saturating_add(MAX_AGE_SECS) < now || timestamp > now.saturating_add(MAX_SKEW_SECS)
    {
        return Err(EnvelopeError::Stale);
    }
    Ok(Header {
        dht_key: bytes[KEY_AT..NONCE_AT].try_into().expect("32 bytes"),
        publisher,
        timestamp,
    })
}

/// A reader's side: `bytes` found for `id` is checked as a node would,
/// decrypted under `K_ENC`, and its record verified
/// ([`ServiceRecord::verify`]).
pub fn open(
    bytes: &[u8],
    id: &DirectoryId,
    kind: Kind,
    now: u64,
    pinned_parties: Option<&[String; 3]>,
) -> Result<ServiceRecord, EnvelopeError> {
    let dht_key = id.dht_key();
    check_stored(bytes, &dht_key, now)?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &id.encryption_key()).expect("32-byte key"));
    let nonce: [u8; 12] = bytes[NONCE_AT..CT_AT].try_into().expect("12 bytes");
    let mut ct = bytes[CT_AT..PK_AT].to_vec();
    let aad = [AAD_DOMAIN, &dht_key].concat();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut ct,
        )
        .map_err(|_| EnvelopeError::Decrypt)?;
    let record = ServiceRecord::from_padded(plain)?;
    record.verify(id, kind, now, pinned_parties)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::example_body;

    fn sealed(now: u64) -> (Vec<u8>, DirectoryId, ServiceRecord) {
        let c = SigningKey::from_seed([1; 32]);
        let p = [2u8, 3, 4].map(|s| SigningKey::from_seed([s; 32]));
        let body = example_body(&c, &p, [7; 16], now);
        let id = body.id().unwrap();
        let mut r = ServiceRecord::sign(body, &c);
        for (i, k) in p.iter().enumerate() {
            r.endorse(i, k);
        }
        let publisher = SigningKey::from_seed([5; 32]);
        (seal(&r, &id, &publisher, now).unwrap(), id, r)
    }

    /// AES-256-GCM under vector B's `K_ENC` with the envelope's AAD,
    /// computed independently (Python `cryptography`, shared/research/dht.md
    /// §1.6, recomputed for this test).
    #[test]
    fn the_record_cipher_matches_the_known_answer() {
        let id = DirectoryId::derive(&[0x11; 32], &[0x22; 16]);
        assert_eq!(
            hex::encode(id.encryption_key()),
            "98d41fcc5872049d49ff10fcd77a35d40c7337a425cdbe2e403772a48e0a5fb6"
        );
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &id.encryption_key()).unwrap());
        let mut buf = b"hello triad".to_vec();
        let nonce: [u8; 12] = std::array::from_fn(|i| i as u8);
        let aad = [AAD_DOMAIN, &id.dht_key()].concat();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex::encode(&buf),
            "cdfdd6e19d4c4eac9547f090051779ada3b08c7d32e287111d250e"
        );
    }

    #[test]
    fn an_envelope_opens_under_its_id_and_nothing_else() {
        let (env, id, r) = sealed(1000);
        assert_eq!(env.len(), ENVELOPE_SIZE);
        let h = check_stored(&env, &id.dht_key(), 1000).unwrap();
        assert_eq!(h.timestamp, 1000);
        assert_eq!(open(&env, &id, Kind::Study, 1000, None).unwrap(), r);
        let other = DirectoryId::derive(&[1; 32], &[8; 16]);
        assert_eq!(
            open(&env, &other, Kind::Study, 1000, None),
            Err(EnvelopeError::WrongKey)
        );
    }

    /// A node never sees the id or the plaintext: neither the id, nor the
    /// record's name, URLs or keys occur in the stored bytes.
    #[test]
    fn the_stored_bytes_hide_the_id_and_the_record() {
        let (env, id, r) = sealed(1000);
        let contains = |needle: &[u8]| env.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&id.0));
        assert!(!contains(&id.multihash()));
        assert!(!contains(id.to_hex().as_bytes()));
        assert!(!contains(r.body.name.as_bytes()));
        assert!(!contains(r.body.coordinator.url.as_bytes()));
        assert!(!contains(r.body.parties[0].key.as_bytes()));
        // Two seals of the same record differ (random nonce).
        let (again, _, _) = sealed(1000);
        assert_ne!(env[CT_AT..PK_AT], again[CT_AT..PK_AT]);
    }

    #[test]
    fn nodes_refuse_tampered_oversized_stale_or_misplaced_envelopes() {
        let (env, id, _) = sealed(1000);
        let key = id.dht_key();
        assert_eq!(
            check_stored(&env[1..], &key, 1000),
            Err(EnvelopeError::Size(ENVELOPE_SIZE - 1))
        );
        let mut big = env.clone();
        big.push(0);
        assert!(matches!(
            check_stored(&big, &key, 1000),
            Err(EnvelopeError::Size(_))
        ));
        for at in [CT_AT + 5, PK_AT + 1, TS_AT + 7, SIG_AT + 3, NONCE_AT] {
            let mut t = env.clone();
            t[at] ^= 1;
            assert_eq!(
                check_stored(&t, &key, 1000),
                Err(EnvelopeError::Signature),
                "byte {at}"
            );
        }
        let mut t = env.clone();
        t[0] = 2;
        assert_eq!(check_stored(&t, &key, 1000), Err(EnvelopeError::Version));
        assert_eq!(
            check_stored(&env, &[0; 32], 1000),
            Err(EnvelopeError::WrongKey)
        );
        assert_eq!(
            check_stored(&env, &key, 1000 + MAX_AGE_SECS + 1),
            Err(EnvelopeError::Stale)
        );
        assert_eq!(
            check_stored(&env, &key, 1000 - MAX_SKEW_SECS - 1),
            Err(EnvelopeError::Stale)
        );
        assert!(check_stored(&env, &key, u64::MAX).is_err());
        assert!(check_stored(&env, &key, 0).is_err());
    }

    /// Someone who knows the id (hence `K_ENC`) can re-encrypt a record of
    /// its own under a fresh publisher key, and nodes store it; readers
    /// refuse it because its signatures do not verify for this id.
    #[test]
    fn knowing_the_id_is_not_enough_to_forge_its_record() {
        let (_, id, r) = sealed(1000);
        let forger = SigningKey::from_seed([66; 32]);
        let mut body = r.body.clone();
        body.coordinator.url = "https://evil.example".into();
        let mut forged = ServiceRecord::sign(body, &forger);
        forged.party_sigs = r.party_sigs.clone();
        let env = seal(&forged, &id, &forger, 1000).unwrap();
        check_stored(&env, &id.dht_key(), 1000).unwrap();
        assert!(matches!(
            open(&env, &id, Kind::Study, 1000, None),
            Err(EnvelopeError::Record(_))
        ));
    }
}
