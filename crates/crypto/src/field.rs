//! Conversions between BN254 scalars and the integers, bytes and hex strings
//! that appear in attestations and wire formats.

use ark_ff::{BigInteger, PrimeField};
use sha2::{Digest, Sha256};

use crate::Fr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldError {
    #[error("field element hex must be 64 hex digits, got {0} characters")]
    BadLength(usize),
    #[error("field element is not valid hex")]
    BadHex,
    #[error("field element is not reduced modulo the BN254 scalar field order")]
    NotReduced,
}

/// Maps a signed integer to the field: negative values become `p - |v|`,
/// the usual two's-complement-like embedding of circuits.
pub fn fr_from_i128(v: i128) -> Fr {
    let mag = Fr::from(v.unsigned_abs());
    if v < 0 {
        -mag
    } else {
        mag
    }
}

/// `x` as a `u128` if it is below 2^128.
pub fn fr_to_u128(x: &Fr) -> Option<u128> {
    let limbs = x.into_bigint().0;
    (limbs[2] == 0 && limbs[3] == 0).then(|| limbs[0] as u128 | (limbs[1] as u128) << 64)
}

/// The inverse of [`fr_from_i128`]: `None` when `x` is not the image of an
/// `i128` (neither `x` nor `p - x` below 2^127).
pub fn fr_to_i128(x: &Fr) -> Option<i128> {
    let small = |v: &Fr, max: u128| -> Option<u128> {
        let limbs = v.into_bigint().0;
        if limbs[2] != 0 || limbs[3] != 0 {
            return None;
        }
        let m = limbs[0] as u128 | (limbs[1] as u128) << 64;
        (m <= max).then_some(m)
    };
    if let Some(m) = small(x, i128::MAX as u128) {
        return Some(m as i128);
    }
    // Magnitudes up to 2^127 (i128::MIN's) are negative i128s.
    small(&-*x, 1 << 127).map(|m| (m as i128).wrapping_neg())
}

/// Big-endian hex (64 digits, no prefix): the form used in JSON documents.
pub fn fr_to_hex(x: &Fr) -> String {
    let bytes = x.into_bigint().to_bytes_be();
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses [`fr_to_hex`]'s output, rejecting unreduced values so that every
/// element has exactly one encoding (signatures cover the encoding).
pub fn fr_from_hex(s: &str) -> Result<Fr, FieldError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 64 {
        return Err(FieldError::BadLength(s.len()));
    }
    // Hex digits only, checked on bytes before slicing: a multi-byte
    // character would make the slices below panic (found by the fuzz target
    // `notary_request`, now `attest_request`), and `from_str_radix` alone
    // would take a `+` sign.
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError::BadHex);
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| FieldError::BadHex)?;
    }
    let x = Fr::from_be_bytes_mod_order(&bytes);
    if x.into_bigint().to_bytes_be() != bytes {
        return Err(FieldError::NotReduced);
    }
    Ok(x)
}

/// `H(domain || data)` reduced into the field: SHA-256 truncated to 248 bits
/// so the reduction is injective on digests (no modular bias or wrap).
pub fn hash_to_field(domain: &str, data: &[u8]) -> Fr {
    let mut h = Sha256::new();
    h.update((domain.len() as u32).to_be_bytes());
    h.update(domain.as_bytes());
    h.update(data);
    let d = h.finalize();
    Fr::from_be_bytes_mod_order(&d[..31])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest sum of squares the statistics admit, 2^23 · (2^52)^2 =
    /// 2^127, is no i128 but is a u128.
    #[test]
    fn u128_edges() {
        let two127 = Fr::from(1u128 << 127);
        assert_eq!(fr_to_u128(&two127), Some(1 << 127));
        assert_eq!(fr_to_i128(&two127), None);
        assert_eq!(fr_to_u128(&Fr::from(u128::MAX)), Some(u128::MAX));
        assert_eq!(fr_to_u128(&Fr::from(0u64)), Some(0));
        assert_eq!(fr_to_u128(&(Fr::from(u128::MAX) + Fr::from(1u64))), None);
        assert_eq!(fr_to_u128(&-Fr::from(1u64)), None);
    }

    #[test]
    fn i128_round_trip_and_out_of_range() {
        for v in [
            0i128,
            1,
            -1,
            i128::MAX,
            i128::MIN,
            i128::MIN + 1,
            1 << 100,
            -(1 << 94),
        ] {
            assert_eq!(fr_to_i128(&fr_from_i128(v)), Some(v));
        }
        let big = Fr::from(1u128 << 127);
        assert_eq!(fr_to_i128(&big), None);
        assert_eq!(fr_to_i128(&(big * big)), None);
    }

    #[test]
    fn hex_round_trip_and_rejects_unreduced() {
        for v in [0i128, 1, -1, i64::MAX as i128, -(1i128 << 100)] {
            let x = fr_from_i128(v);
            assert_eq!(fr_from_hex(&fr_to_hex(&x)).unwrap(), x);
        }
        // p itself (BN254 scalar order) is not a canonical encoding.
        let p = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
        assert_eq!(fr_from_hex(p), Err(FieldError::NotReduced));
        assert_eq!(fr_from_hex("zz"), Err(FieldError::BadLength(2)));
        // 64 bytes, but not 64 hex digits: a two-byte character across a
        // digit pair (this panicked), and a sign `from_str_radix` accepts.
        let mut multibyte = "0".repeat(9);
        multibyte.push('Η');
        multibyte.push_str(&"0".repeat(53));
        assert_eq!(multibyte.len(), 64);
        assert_eq!(fr_from_hex(&multibyte), Err(FieldError::BadHex));
        let plus = format!("+1{}", "0".repeat(62));
        assert_eq!(fr_from_hex(&plus), Err(FieldError::BadHex));
    }

    #[test]
    fn negative_embedding() {
        assert_eq!(fr_from_i128(-5) + fr_from_i128(5), Fr::from(0u64));
    }
}
