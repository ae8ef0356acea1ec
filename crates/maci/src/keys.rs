//! MACI key pairs and their string forms (MACI v3
//! `packages/domainobjs/ts/{privateKey,publicKey,keyPair}.ts`).
//!
//! * A private key is 32 random bytes read as a big-endian integer, not
//!   reduced (`generatePrivateKey`). `macisk.` + 64 lowercase hex digits.
//! * Its secret scalar (MACI ≥ v2, zk-kit `deriveSecretScalar`) expands the
//!   UTF-8 **decimal string** of that integer with BLAKE-512, prunes, shifts
//!   right by 3 and reduces mod l ([`SigningKey`]). MACI ≤ v1.1 and aMACI
//!   hash the integer's minimal big-endian bytes instead, which gives another
//!   public key; that convention is not offered here.
//! * A public key is `Base8·secretScalar`. `macipk.` + the lowercase hex of
//!   the packed point read as a little-endian integer, without leading
//!   zeros, padded to an even number of digits (`PublicKey.serialize`).
//!
//! Parsing is strict: exactly the strings MACI's serializers produce are
//! accepted (one string per key), with a [`KeyError`] saying what is wrong.
//! Deviation: a public key must be a point of the order-l subgroup other than
//! the identity. MACI accepts any point on the curve, but no MACI key
//! generation produces another, and keys of small order would let anyone
//! sign for them.

use std::fmt;
use std::str::FromStr;

use ark_ff::BigInt;
use rand_core::{CryptoRngCore, OsRng};

use crate::babyjub::{self, Point, PointError};
use crate::eddsa::{self, Signature, SignatureError, SigningKey};
use crate::Fr;

/// The prefix of a serialized private key.
pub const PRIV_KEY_PREFIX: &str = "macisk.";
/// The prefix of a serialized public key.
pub const PUB_KEY_PREFIX: &str = "macipk.";

/// Why a key string or key coordinates are refused. Every variant is the
/// input's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected a key starting with `{expected}`")]
    MissingPrefix { expected: &'static str },
    #[error("{what} must be {expected} hex digits, got {got}")]
    BadLength {
        what: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("key must be lowercase hex digits (0-9, a-f) after the prefix")]
    BadHex,
    #[error("public key hex is not in canonical form (no leading zero byte, even length)")]
    NonCanonical,
    #[error("public key is not a valid point: {0}")]
    Point(#[from] PointError),
    #[error("public key is not in the prime-order subgroup of Baby Jubjub")]
    NotInSubgroup,
}

/// A MACI private key: a 256-bit integer (big-endian bytes). `Debug` is
/// redacted; [`PrivKey::to_macisk`] is the only way to print it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivKey([u8; 32]);

impl fmt::Debug for PrivKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivKey(<redacted>)")
    }
}

impl PrivKey {
    /// 32 bytes from `rng` (MACI `generatePrivateKey`).
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        PrivKey(b)
    }

    /// The integer in big-endian bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PrivKey(bytes)
    }

    /// The integer in big-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The integer in decimal, as JavaScript's `BigInt.toString()`.
    fn decimal(&self) -> String {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.0[32 - 8 * (i + 1)..32 - 8 * i]);
            *limb = u64::from_be_bytes(b);
        }
        BigInt::new(limbs).to_string()
    }

    /// The EdDSA key of MACI ≥ v2: BLAKE-512 of the decimal string.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(self.decimal().as_bytes())
    }

    /// `Base8·secretScalar`.
    pub fn public_key(&self) -> PubKey {
        self.signing_key().public_key()
    }

    /// `macisk.` + 64 lowercase hex digits.
    pub fn to_macisk(&self) -> String {
        let mut s = String::with_capacity(PRIV_KEY_PREFIX.len() + 64);
        s.push_str(PRIV_KEY_PREFIX);
        push_hex(&mut s, &self.0);
        s
    }
}

impl FromStr for PrivKey {
    type Err = KeyError;

    /// Parses `macisk.` + exactly 64 lowercase hex digits.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let hex = s
            .strip_prefix(PRIV_KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix {
                expected: PRIV_KEY_PREFIX,
            })?;
        check_hex_digits(hex)?;
        if hex.len() != 64 {
            return Err(KeyError::BadLength {
                what: "private key",
                expected: "64",
                got: hex.len(),
            });
        }
        let mut b = [0u8; 32];
        decode_hex(hex, &mut b);
        Ok(PrivKey(b))
    }
}

/// A MACI public key: a point of the order-l subgroup, not the identity.
/// `Display` gives the `macipk.` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PubKey(Point);

impl PubKey {
    /// From coordinates: on the curve, in the prime-order subgroup, not the
    /// identity.
    pub fn new(x: Fr, y: Fr) -> Result<Self, KeyError> {
        Self::from_point(babyjub::point(x, y)?)
    }

    /// From a point, with the subgroup check of [`PubKey::new`].
    pub fn from_point(p: Point) -> Result<Self, KeyError> {
        if p.is_zero() || !babyjub::in_prime_subgroup(&p) {
            return Err(KeyError::NotInSubgroup);
        }
        Ok(PubKey(p))
    }

    /// For points known to be multiples of Base8 by a non-zero scalar.
    pub(crate) fn from_subgroup_point(p: Point) -> Self {
        debug_assert!(babyjub::in_prime_subgroup(&p) && !p.is_zero());
        PubKey(p)
    }

    /// The point A.
    pub fn point(&self) -> &Point {
        &self.0
    }

    /// `[x, y]`.
    pub fn to_fields(&self) -> [Fr; 2] {
        [self.0.x, self.0.y]
    }

    /// circomlibjs `packPoint`.
    pub fn pack(&self) -> [u8; 32] {
        babyjub::pack(&self.0)
    }

    /// MACI `PublicKey.hash()`: `Poseidon(x, y)`.
    pub fn hash(&self) -> Fr {
        crate::hash::poseidon(&[self.0.x, self.0.y])
    }

    /// Verifies an EdDSA-Poseidon signature of `msg` under this key.
    pub fn verify(&self, msg: Fr, sig: &Signature) -> Result<(), SignatureError> {
        eddsa::verify(self, msg, sig)
    }
}

impl fmt::Display for PubKey {
    /// `macipk.` + hex of the packed point as a little-endian integer:
    /// big-endian digits, leading zero bytes dropped (at least one byte).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut be = self.pack();
        be.reverse();
        let start = be.iter().position(|&b| b != 0).unwrap_or(31);
        let mut s = String::from(PUB_KEY_PREFIX);
        push_hex(&mut s, &be[start..]);
        f.write_str(&s)
    }
}

impl FromStr for PubKey {
    type Err = KeyError;

    /// Parses exactly what [`PubKey`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let hex = s
            .strip_prefix(PUB_KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix {
                expected: PUB_KEY_PREFIX,
            })?;
        check_hex_digits(hex)?;
        if hex.is_empty() || hex.len() > 64 || hex.len() % 2 != 0 {
            return Err(KeyError::BadLength {
                what: "public key",
                expected: "an even number of (2 to 64)",
                got: hex.len(),
            });
        }
        if hex.len() > 2 && hex.starts_with("00") {
            return Err(KeyError::NonCanonical);
        }
        let mut be = [0u8; 32];
        decode_hex(hex, &mut be[32 - hex.len() / 2..]);
        be.reverse();
        PubKey::from_point(babyjub::unpack(&be)?)
    }
}

/// A private key with its public key.
#[derive(Clone, Debug)]
pub struct Keypair {
    pub private: PrivKey,
    pub public: PubKey,
}

impl Keypair {
    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> Self {
        Self::from_private(PrivKey::random(&mut OsRng))
    }

    /// The key pair of a private key.
    pub fn from_private(private: PrivKey) -> Self {
        let public = private.public_key();
        Keypair { private, public }
    }
}

/// Only `0-9a-f`, checked on bytes so that no slicing below can split a
/// multi-byte character.
fn check_hex_digits(hex: &str) -> Result<(), KeyError> {
    if hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(KeyError::BadHex)
    }
}

/// Decodes checked lowercase hex (`hex.len() == 2 * out.len()`).
fn decode_hex(hex: &str, out: &mut [u8]) {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    };
    for (o, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *o = digit(pair[0]) << 4 | digit(pair[1]);
    }
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_of_small_and_large_keys() {
        let mut b = [0u8; 32];
        assert_eq!(PrivKey(b).decimal(), "0");
        b[31] = 10;
        assert_eq!(PrivKey(b).decimal(), "10");
        assert_eq!(
            PrivKey([0xff; 32]).decimal(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
    }

    #[test]
    fn priv_key_errors() {
        assert_eq!(
            "macipk.00".parse::<PrivKey>(),
            Err(KeyError::MissingPrefix {
                expected: PRIV_KEY_PREFIX
            })
        );
        assert!(matches!(
            "macisk.00".parse::<PrivKey>(),
            Err(KeyError::BadLength { got: 2, .. })
        ));
        let upper = format!("macisk.{}", "A".repeat(64));
        assert_eq!(upper.parse::<PrivKey>(), Err(KeyError::BadHex));
        let multibyte = format!("macisk.{}é{}", "0".repeat(31), "0".repeat(31));
        assert_eq!(multibyte.parse::<PrivKey>(), Err(KeyError::BadHex));
        assert_eq!(format!("{:?}", PrivKey([1; 32])), "PrivKey(<redacted>)");
    }

    #[test]
    fn pub_key_errors() {
        let pk = PrivKey([7; 32]).public_key();
        let s = pk.to_string();
        assert_eq!(s.parse::<PubKey>(), Ok(pk));
        assert_eq!(
            "macipk.".parse::<PubKey>().map(|_| ()),
            Err(KeyError::BadLength {
                what: "public key",
                expected: "an even number of (2 to 64)",
                got: 0
            })
        );
        // A leading zero byte is a second encoding of the same integer.
        let hex = &s[PUB_KEY_PREFIX.len()..];
        if hex.len() < 64 {
            let padded = format!("{PUB_KEY_PREFIX}00{hex}");
            assert_eq!(padded.parse::<PubKey>(), Err(KeyError::NonCanonical));
        }
        // A packed key with a leading zero byte has 62 digits (MACI drops
        // leading zeros).
        let mut b = [0u8; 32];
        b[31] = 0x9e;
        let short = PrivKey(b).public_key();
        let s = "macipk.821105ff408b07b805a4056eff0afb822b8b6d1701790e0aa161ce48c39442";
        assert_eq!(short.to_string(), s);
        assert_eq!(s.parse::<PubKey>(), Ok(short));
        let padded = s.replace("macipk.", "macipk.00");
        assert_eq!(padded.parse::<PubKey>(), Err(KeyError::NonCanonical));
        // The identity (y = 1) is on the curve but not a key.
        assert_eq!("macipk.01".parse::<PubKey>(), Err(KeyError::NotInSubgroup));
        // The order-2 point (0, −1) neither.
        let minus_one = -Fr::from(1u64);
        assert_eq!(
            PubKey::new(Fr::from(0u64), minus_one),
            Err(KeyError::NotInSubgroup)
        );
    }
}
