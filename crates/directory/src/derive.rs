//! Identifiers and keys of a directory record (docs/directory.md,
//! "Derivations"). IPIP-373's double hashing with the 64-byte NUL-padded
//! salts that go-libp2p-kad-dht's prototype and go-libipni use (the IPIP
//! text writes them unpadded; the running code pads them, and so do we).
//! Deviations from IPIP-373, written down: the encryption key is
//! `SHA-256(SALT_ENCRYPTIONKEY ‖ MH)` as in the IPNI reader-privacy spec,
//! never `MH` itself; the id is self-certifying (a hash of the
//! coordinator's key and a salt) rather than a content hash.

use sha2::{Digest, Sha256};

/// Domain of the self-certifying study id.
pub const STUDY_ID_DOMAIN: &[u8] = b"triad/study-id/v1\0";

/// `"CR_DOUBLEHASH"` NUL-padded to 64 bytes.
pub const SALT_DOUBLEHASH: [u8; 64] = pad64(b"CR_DOUBLEHASH");
/// `"CR_ENCRYPTIONKEY"` NUL-padded to 64 bytes.
pub const SALT_ENCRYPTIONKEY: [u8; 64] = pad64(b"CR_ENCRYPTIONKEY");

const fn pad64(s: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i];
        i += 1;
    }
    out
}

/// A study's or poll's directory id: 32 bytes, shown as 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirectoryId(pub [u8; 32]);

impl DirectoryId {
    /// `SHA-256("triad/study-id/v1\0" ‖ coordinator key ‖ salt)`: whoever
    /// knows the id can check that a record names the coordinator key it
    /// was made from, so knowing it does not let anyone forge the record.
    pub fn derive(coordinator_key: &[u8; 32], salt: &[u8; 16]) -> Self {
        let mut h = Sha256::new();
        h.update(STUDY_ID_DOMAIN);
        h.update(coordinator_key);
        h.update(salt);
        DirectoryId(h.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(DirectoryId(out))
    }

    /// The sha2-256 multihash form `0x12 0x20 ‖ id` (34 bytes), what the
    /// Go implementations hash.
    pub fn multihash(&self) -> [u8; 34] {
        let mut mh = [0u8; 34];
        mh[0] = 0x12;
        mh[1] = 0x20;
        mh[2..].copy_from_slice(&self.0);
        mh
    }

    /// `HASH2 = SHA-256(SALT_DOUBLEHASH ‖ MH)`: the DHT record key. DHT
    /// nodes see only this.
    pub fn dht_key(&self) -> [u8; 32] {
        salted(&SALT_DOUBLEHASH, &self.multihash())
    }

    /// `K_ENC = SHA-256(SALT_ENCRYPTIONKEY ‖ MH)`: the AES-256-GCM key.
    pub fn encryption_key(&self) -> [u8; 32] {
        salted(&SALT_ENCRYPTIONKEY, &self.multihash())
    }
}

fn salted(salt: &[u8; 64], data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(data);
    h.finalize().into()
}

/// The Kademlia position of a DHT key: libp2p-kad places a record at
/// `SHA-256(key)` (`kbucket::Key::new`).
pub fn kad_position(dht_key: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(dht_key).into()
}

/// Whether the first `bits` bits of `position` equal those of `prefix`.
pub fn has_prefix(position: &[u8; 32], prefix: &[u8; 32], bits: u32) -> bool {
    let bits = bits.min(256) as usize;
    let (full, rest) = (bits / 8, bits % 8);
    if position[..full] != prefix[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    position[full] & mask == prefix[full] & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers computed independently (Python `hashlib`, recorded in
    /// `shared/research/dht.md` §1.6 and recomputed for this test).
    #[test]
    fn derivations_match_the_known_answers() {
        // Vector A: go-libp2p-kad-dht's test input as a multihash.
        let digest = Sha256::digest(b"testing double hash");
        assert_eq!(
            hex::encode(digest),
            "0fc036f2c8508bd0f86ecefc0d97b124eed6a0626b9cd638a67d8a0362b945be"
        );
        let id = DirectoryId(digest.into());
        assert_eq!(
            hex::encode(id.dht_key()),
            "a844e2f64a457f7dae144ecb16fd23462d9761f5e0e446fc2b1be32e6c27da4a"
        );
        assert_eq!(
            hex::encode(id.encryption_key()),
            "6a69c4919b347bc255a41c22621ef85a5907a19ac1cfb472fa67f9abb89a8152"
        );
        // Vector B: a triad study id.
        let id = DirectoryId::derive(&[0x11; 32], &[0x22; 16]);
        assert_eq!(
            id.to_hex(),
            "de1116158e1141dbae9415b2b80ce1c55644bf02d9d8a4d52c384e0209a8567f"
        );
        let key = id.dht_key();
        assert_eq!(
            hex::encode(key),
            "a62b030ab97dc540f8b79859b74b7518c2483ec48a2f279e83254c7ed3dddc44"
        );
        let pos = kad_position(&key);
        assert_eq!(
            hex::encode(pos),
            "d3784962920a39c03b00d42c0de92b98430015195f713bb092742f0166c60ef1"
        );
        // prefix(5) = 0b11010.
        let mut p = [0u8; 32];
        p[0] = 0b1101_0000;
        assert!(has_prefix(&pos, &p, 5));
        p[0] = 0b1101_1000;
        assert!(!has_prefix(&pos, &p, 5));
        assert!(has_prefix(&pos, &pos, 256));
        assert!(has_prefix(&pos, &[0; 32], 0));
    }

    #[test]
    fn salts_are_padded_to_64_bytes() {
        assert_eq!(&SALT_DOUBLEHASH[..13], b"CR_DOUBLEHASH");
        assert!(SALT_DOUBLEHASH[13..].iter().all(|&b| b == 0));
        assert_eq!(&SALT_ENCRYPTIONKEY[..16], b"CR_ENCRYPTIONKEY");
        assert!(SALT_ENCRYPTIONKEY[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn ids_parse_only_as_64_lowercase_hex() {
        let id = DirectoryId::derive(&[1; 32], &[2; 16]);
        assert_eq!(DirectoryId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(DirectoryId::from_hex(&id.to_hex().to_uppercase()), None);
        assert_eq!(DirectoryId::from_hex(&id.to_hex()[1..]), None);
        assert_eq!(DirectoryId::from_hex("zz"), None);
    }
}
