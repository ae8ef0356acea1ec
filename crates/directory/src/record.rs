//! The service record: where a study's or poll's services are and which
//! keys they hold, signed by the coordinator and endorsed by each of the
//! three parties (docs/directory.md, "Records"). The parties'
//! endorsements stop a coordinator (or anyone with its key) from pairing
//! real party keys with endpoints of its own, or from listing parties that
//! never agreed to serve the study.

use serde::{Deserialize, Serialize};

use crate::derive::DirectoryId;
use crate::{verify_ed25519, SigningKey};

/// The padded plaintext's size: every record is exactly this long before
/// encryption, so a ciphertext's length says nothing about its study.
pub const RECORD_SIZE: usize = 2048;
/// Domain of the coordinator's signature.
const RECORD_DOMAIN: &[u8] = b"triad/dir/record/v1\0";
/// Domain of a party's endorsement.
const ENDORSE_DOMAIN: &[u8] = b"triad/dir/endorse/v1\0";
/// A record is valid for at most this long (IPIP-373's 48 h).
pub const MAX_VALIDITY_SECS: u64 = 48 * 3600;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Study,
    Poll,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `https://…`
    pub url: String,
    /// ed25519 public key, 64 hex.
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartyEntry {
    pub url: String,
    /// The party's MPC listener (`host:port`).
    pub mpc_addr: String,
    /// The party's release-signing key, 64 hex.
    pub key: String,
}

/// What the coordinator and the parties sign.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    pub v: u32,
    pub kind: Kind,
    /// The study's or poll's name in the services (`study_id`, or the
    /// MACI poll id as a string).
    pub name: String,
    /// The 16-byte salt of the directory id, 32 hex.
    pub id_salt: String,
    /// Higher replaces lower.
    pub seq: u64,
    pub issued_at: u64,
    pub expires_at: u64,
    pub coordinator: Service,
    pub parties: [PartyEntry; 3],
    /// The notary's key, 64 hex.
    pub notary_key: String,
    /// The study's parameters or the poll's spec, as the services serve them.
    pub spec: serde_json::Value,
}

/// A body with its four signatures (128 hex each).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    pub body: RecordBody,
    pub coordinator_sig: String,
    pub party_sigs: [String; 3],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the record does not fit in {RECORD_SIZE} bytes")]
    TooLarge,
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("the record is for another id (its coordinator key and salt do not hash to it)")]
    WrongId,
    #[error("the coordinator's signature does not verify")]
    CoordinatorSignature,
    #[error("party {0}'s endorsement does not verify")]
    PartySignature(usize),
    #[error("party {0}'s key is not the one expected")]
    UnexpectedParty(usize),
    #[error("the record is not valid at this time")]
    Expired,
    #[error("the record is a {0:?}, not what was looked for")]
    WrongKind(Kind),
}

fn key32(hex_key: &str, what: &str) -> Result<[u8; 32], RecordError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut out)
        .map_err(|_| RecordError::Malformed(format!("{what}: not 64 hex digits")))?;
    Ok(out)
}

fn sig64(hex_sig: &str) -> Option<[u8; 64]> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(hex_sig, &mut out).ok()?;
    Some(out)
}

impl RecordBody {
    /// The bytes signed: the body's JSON (fields in declaration order, the
    /// spec's object keys sorted: one encoding per body).
    pub fn signing_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record body serializes")
    }

    /// The directory id this body's coordinator key and salt derive.
    pub fn id(&self) -> Result<DirectoryId, RecordError> {
        let key = key32(&self.coordinator.key, "coordinator key")?;
        let mut salt = [0u8; 16];
        hex::decode_to_slice(&self.id_salt, &mut salt)
            .map_err(|_| RecordError::Malformed("id_salt: not 32 hex digits".into()))?;
        Ok(DirectoryId::derive(&key, &salt))
    }
}

impl ServiceRecord {
    /// The coordinator's signature; endorsements are added with
    /// [`ServiceRecord::endorse`].
    pub fn sign(body: RecordBody, coordinator: &SigningKey) -> Self {
        let msg = [RECORD_DOMAIN, &body.signing_bytes()].concat();
        ServiceRecord {
            coordinator_sig: hex::encode(coordinator.sign(&msg)),
            party_sigs: Default::default(),
            body,
        }
    }

    /// Party `i`'s endorsement of the body.
    pub fn endorse(&mut self, i: usize, party: &SigningKey) {
        let msg = [ENDORSE_DOMAIN, &self.body.signing_bytes()].concat();
        self.party_sigs[i] = hex::encode(party.sign(&msg));
    }

    /// Accepts the record as `id`'s, of `kind`, at time `now`: the id
    /// recomputes from the coordinator key and salt, the coordinator's
    /// signature and the three endorsements verify, it is valid now (and
    /// for at most [`MAX_VALIDITY_SECS`]), and, when the caller knows the
    /// parties' keys (a pinned network), they are these.
    pub fn verify(
        &self,
        id: &DirectoryId,
        kind: Kind,
        now: u64,
        pinned_parties: Option<&[String; 3]>,
    ) -> Result<(), RecordError> {
        let b = &self.body;
        if b.v != 1 {
            return Err(RecordError::Malformed(format!("version {}", b.v)));
        }
        if b.id()? != *id {
            return Err(RecordError::WrongId);
        }
        if b.kind != kind {
            return Err(RecordError::WrongKind(b.kind));
        }
        let bytes = b.signing_bytes();
        let ck = key32(&b.coordinator.key, "coordinator key")?;
        let ok = sig64(&self.coordinator_sig)
            .is_some_and(|s| verify_ed25519(&ck, &[RECORD_DOMAIN, &bytes].concat(), &s));
        if !ok {
            return Err(RecordError::CoordinatorSignature);
        }
        let endorsed = [ENDORSE_DOMAIN, &bytes].concat();
        for (i, p) in b.parties.iter().enumerate() {
            if pinned_parties.is_some_and(|keys| keys[i] != p.key) {
                return Err(RecordError::UnexpectedParty(i));
            }
            let pk = key32(&p.key, "party key")?;
            let ok = sig64(&self.party_sigs[i]).is_some_and(|s| verify_ed25519(&pk, &endorsed, &s));
            if !ok {
                return Err(RecordError::PartySignature(i));
            }
        }
        if now < b.issued_at
            || now >= b.expires_at
            || b.expires_at.saturating_sub(b.issued_at) > MAX_VALIDITY_SECS
        {
            return Err(RecordError::Expired);
        }
        Ok(())
    }

    /// `len (u16, big-endian) ‖ JSON ‖ zeros` to [`RECORD_SIZE`] bytes.
    pub fn to_padded(&self) -> Result<Vec<u8>, RecordError> {
        let json = serde_json::to_vec(self).expect("a record serializes");
        if json.len() + 2 > RECORD_SIZE {
            return Err(RecordError::TooLarge);
        }
        let mut out = Vec::with_capacity(RECORD_SIZE);
        out.extend_from_slice(&(json.len() as u16).to_be_bytes());
        out.extend_from_slice(&json);
        out.resize(RECORD_SIZE, 0);
        Ok(out)
    }

    /// The inverse of [`ServiceRecord::to_padded`]; refuses any other
    /// padding (one encoding per record).
    pub fn from_padded(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() != RECORD_SIZE {
            return Err(RecordError::Malformed("wrong padded size".into()));
        }
        let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        if len + 2 > RECORD_SIZE || bytes[2 + len..].iter().any(|&b| b != 0) {
            return Err(RecordError::Malformed("bad padding".into()));
        }
        serde_json::from_slice(&bytes[2..2 + len])
            .map_err(|e| RecordError::Malformed(e.to_string()))
    }
}

/// An example study record body of `coordinator` and `parties`, valid
/// for a day from `now` (tests, fuzz seeds, documentation).
pub fn example_body(
    coordinator: &SigningKey,
    parties: &[SigningKey; 3],
    salt: [u8; 16],
    now: u64,
) -> RecordBody {
    RecordBody {
        v: 1,
        kind: Kind::Study,
        name: "eth-balances".into(),
        id_salt: hex::encode(salt),
        seq: 1,
        issued_at: now,
        expires_at: now + 24 * 3600,
        coordinator: Service {
            url: "https://127.0.0.1:8443".into(),
            key: coordinator.public_key().to_hex(),
        },
        parties: std::array::from_fn(|i| PartyEntry {
            url: format!("https://127.0.0.1:{}", 9001 + i),
            mpc_addr: format!("127.0.0.1:{}", 9101 + i),
            key: parties[i].public_key().to_hex(),
        }),
        notary_key: "ab".repeat(32),
        spec: serde_json::json!({"field": "balances.ETH", "scale": 4, "account_field": "uid"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SigningKey, [SigningKey; 3]) {
        (
            SigningKey::from_seed([1; 32]),
            [2u8, 3, 4].map(|s| SigningKey::from_seed([s; 32])),
        )
    }

    fn signed(now: u64) -> (ServiceRecord, DirectoryId, [String; 3]) {
        let (c, p) = keys();
        let body = example_body(&c, &p, [7; 16], now);
        let id = body.id().unwrap();
        let mut r = ServiceRecord::sign(body, &c);
        for (i, k) in p.iter().enumerate() {
            r.endorse(i, k);
        }
        let pins = std::array::from_fn(|i| p[i].public_key().to_hex());
        (r, id, pins)
    }

    #[test]
    fn a_signed_record_verifies_and_round_trips_through_its_padding() {
        let (r, id, pins) = signed(1000);
        r.verify(&id, Kind::Study, 1000, Some(&pins)).unwrap();
        r.verify(&id, Kind::Study, 1000 + 24 * 3600 - 1, None)
            .unwrap();
        let padded = r.to_padded().unwrap();
        assert_eq!(padded.len(), RECORD_SIZE);
        assert_eq!(ServiceRecord::from_padded(&padded).unwrap(), r);
    }

    #[test]
    fn forged_tampered_expired_or_unendorsed_records_are_refused() {
        let (r, id, pins) = signed(1000);
        let check = |x: &ServiceRecord| x.verify(&id, Kind::Study, 1000, Some(&pins));
        // Another id (a record of another study presented for this one).
        let other = DirectoryId::derive(&[9; 32], &[9; 16]);
        assert_eq!(
            r.verify(&other, Kind::Study, 1000, None),
            Err(RecordError::WrongId)
        );
        // Someone who knows the id signs a record with its own key: the id
        // no longer derives from the record's coordinator key.
        let (_, p) = keys();
        let forger = SigningKey::from_seed([66; 32]);
        let mut body = r.body.clone();
        body.coordinator.key = forger.public_key().to_hex();
        let mut forged = ServiceRecord::sign(body, &forger);
        for (i, k) in p.iter().enumerate() {
            forged.endorse(i, k);
        }
        assert_eq!(check(&forged), Err(RecordError::WrongId));
        // A changed endpoint after signing.
        let mut t = r.clone();
        t.body.parties[1].url = "https://evil.example".into();
        assert_eq!(check(&t), Err(RecordError::CoordinatorSignature));
        // One endorsement missing or by another key.
        let mut t = r.clone();
        t.party_sigs[2] = String::new();
        assert_eq!(check(&t), Err(RecordError::PartySignature(2)));
        let mut t = r.clone();
        t.party_sigs.swap(0, 1);
        assert_eq!(check(&t), Err(RecordError::PartySignature(0)));
        // Not the pinned parties.
        let mut wrong = pins.clone();
        wrong[1] = "cd".repeat(32);
        assert_eq!(
            r.verify(&id, Kind::Study, 1000, Some(&wrong)),
            Err(RecordError::UnexpectedParty(1))
        );
        // Before, at and after its validity; validity too long.
        assert_eq!(
            r.verify(&id, Kind::Study, 999, None),
            Err(RecordError::Expired)
        );
        assert_eq!(
            r.verify(&id, Kind::Study, 1000 + 24 * 3600, None),
            Err(RecordError::Expired)
        );
        let (c, p) = keys();
        let mut body = example_body(&c, &p, [7; 16], 1000);
        body.expires_at = 1000 + MAX_VALIDITY_SECS + 1;
        let long = ServiceRecord::sign(body, &c);
        assert!(long.verify(&id, Kind::Study, 1000, None).is_err());
        // A study's record is not a poll's.
        assert_eq!(
            r.verify(&id, Kind::Poll, 1000, None),
            Err(RecordError::WrongKind(Kind::Study))
        );
    }

    #[test]
    fn oversized_records_and_other_paddings_are_refused() {
        let (mut r, _, _) = signed(1000);
        let padded = r.to_padded().unwrap();
        let mut bad = padded.clone();
        bad[RECORD_SIZE - 1] = 1;
        assert!(ServiceRecord::from_padded(&bad).is_err());
        bad = padded.clone();
        bad[0] = 0xff;
        assert!(ServiceRecord::from_padded(&bad).is_err());
        assert!(ServiceRecord::from_padded(&padded[1..]).is_err());
        r.body.spec = serde_json::json!({"blob": "x".repeat(RECORD_SIZE)});
        assert_eq!(r.to_padded(), Err(RecordError::TooLarge));
    }
}
