//! The algebraic structures shares live in. Replicated sharing and its
//! multiplication only need a commutative ring, so one generic
//! implementation of every linear and multiplicative protocol serves all:
//! - [`Z64`], [`Z128`]: integers mod 2^64 / 2^128 (statistics);
//! - [`Bits`]: 64 independent bits, XOR as `+` and AND as `*`, i.e. the ring
//!   GF(2)^64, so an AND gate is a multiplication;
//! - [`Fr`]: the BN254 scalar field (Poseidon, commitments).

use std::fmt::Debug;
use std::num::Wrapping;
use std::ops::{Add, AddAssign, Mul, Neg, Sub, SubAssign};

use ark_ff::{BigInt, PrimeField};

use crate::prg::Prg;

pub use ark_bn254::Fr;

pub type Z64 = Wrapping<u64>;
pub type Z128 = Wrapping<u128>;

pub trait Ring:
    Copy
    + Send
    + Sync
    + 'static
    + PartialEq
    + Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
{
    /// Encoded size of one element on the wire.
    const BYTES: usize;
    fn zero() -> Self;
    fn one() -> Self;
    fn from_u64(v: u64) -> Self;
    /// A uniformly random element drawn from `prg` (deterministic per stream,
    /// so two parties with the same seed draw the same element).
    fn random(prg: &mut Prg) -> Self;
    /// `n` random elements; the same stream as `n` calls of [`Ring::random`].
    fn random_vec(prg: &mut Prg, n: usize) -> Vec<Self> {
        (0..n).map(|_| Self::random(prg)).collect()
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>);
    /// Decodes exactly `BYTES` bytes; `None` for a non-canonical encoding.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// Rings of integers mod 2^BITS, whose elements can be viewed as bit strings.
pub trait IntRing: Ring {
    const BITS: u32;
    fn to_u128(self) -> u128;
    /// Reduces `v` mod 2^BITS.
    fn from_u128(v: u128) -> Self;
}

impl Ring for Z64 {
    const BYTES: usize = 8;
    fn zero() -> Self {
        Wrapping(0)
    }
    fn one() -> Self {
        Wrapping(1)
    }
    fn from_u64(v: u64) -> Self {
        Wrapping(v)
    }
    #[inline]
    fn random(prg: &mut Prg) -> Self {
        Wrapping(prg.next_u64())
    }
    fn random_vec(prg: &mut Prg, n: usize) -> Vec<Self> {
        words(prg, n).into_iter().map(Wrapping).collect()
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        out.reserve(xs.len() * 8);
        for x in xs {
            out.extend_from_slice(&x.0.to_le_bytes());
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Wrapping(u64::from_le_bytes(bytes.try_into().ok()?)))
    }
}

impl IntRing for Z64 {
    const BITS: u32 = 64;
    fn to_u128(self) -> u128 {
        self.0 as u128
    }
    fn from_u128(v: u128) -> Self {
        Wrapping(v as u64)
    }
}

impl Ring for Z128 {
    const BYTES: usize = 16;
    fn zero() -> Self {
        Wrapping(0)
    }
    fn one() -> Self {
        Wrapping(1)
    }
    fn from_u64(v: u64) -> Self {
        Wrapping(v as u128)
    }
    #[inline]
    fn random(prg: &mut Prg) -> Self {
        let lo = prg.next_u64() as u128;
        let hi = prg.next_u64() as u128;
        Wrapping(lo | (hi << 64))
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        out.reserve(xs.len() * 16);
        for x in xs {
            out.extend_from_slice(&x.0.to_le_bytes());
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Wrapping(u128::from_le_bytes(bytes.try_into().ok()?)))
    }
}

impl IntRing for Z128 {
    const BITS: u32 = 128;
    fn to_u128(self) -> u128 {
        self.0
    }
    fn from_u128(v: u128) -> Self {
        Wrapping(v)
    }
}

/// 64 independent bits: `+` is XOR, `*` is AND (GF(2)^64, so the
/// "suspicious" operators in these impls are the point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bits(pub u64);

#[allow(clippy::suspicious_arithmetic_impl)]
impl Add for Bits {
    type Output = Self;
    #[inline]
    fn add(self, o: Self) -> Self {
        Bits(self.0 ^ o.0)
    }
}
#[allow(clippy::suspicious_arithmetic_impl)]
impl Sub for Bits {
    type Output = Self;
    #[inline]
    fn sub(self, o: Self) -> Self {
        Bits(self.0 ^ o.0)
    }
}
#[allow(clippy::suspicious_arithmetic_impl)]
impl Mul for Bits {
    type Output = Self;
    #[inline]
    fn mul(self, o: Self) -> Self {
        Bits(self.0 & o.0)
    }
}
impl Neg for Bits {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        self
    }
}
#[allow(clippy::suspicious_op_assign_impl)]
impl AddAssign for Bits {
    #[inline]
    fn add_assign(&mut self, o: Self) {
        self.0 ^= o.0
    }
}
#[allow(clippy::suspicious_op_assign_impl)]
impl SubAssign for Bits {
    #[inline]
    fn sub_assign(&mut self, o: Self) {
        self.0 ^= o.0
    }
}

impl Ring for Bits {
    const BYTES: usize = 8;
    fn zero() -> Self {
        Bits(0)
    }
    fn one() -> Self {
        Bits(!0)
    }
    fn from_u64(v: u64) -> Self {
        Bits(v)
    }
    #[inline]
    fn random(prg: &mut Prg) -> Self {
        Bits(prg.next_u64())
    }
    fn random_vec(prg: &mut Prg, n: usize) -> Vec<Self> {
        words(prg, n).into_iter().map(Bits).collect()
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        out.reserve(xs.len() * 8);
        for x in xs {
            out.extend_from_slice(&x.0.to_le_bytes());
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Bits(u64::from_le_bytes(bytes.try_into().ok()?)))
    }
}

impl Ring for Fr {
    const BYTES: usize = 32;
    fn zero() -> Self {
        Fr::from(0u64)
    }
    fn one() -> Self {
        Fr::from(1u64)
    }
    fn from_u64(v: u64) -> Self {
        Fr::from(v)
    }
    /// Rejection sampling of the Montgomery representation: uniform, and
    /// far cheaper than reducing a wide integer (a random Montgomery form is
    /// a random element, the map being a bijection).
    fn random(prg: &mut Prg) -> Self {
        loop {
            let mut limbs = [0u64; 4];
            for l in limbs.iter_mut() {
                *l = prg.next_u64();
            }
            limbs[3] &= (1 << 62) - 1;
            let b = BigInt(limbs);
            if b < Fr::MODULUS {
                return Fr::new_unchecked(b);
            }
        }
    }
    /// Sends the Montgomery limbs as they are: no conversion on either side.
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        out.reserve(xs.len() * 32);
        for x in xs {
            for l in (x.0).0 {
                out.extend_from_slice(&l.to_le_bytes());
            }
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut limbs = [0u64; 4];
        for (l, c) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            *l = u64::from_le_bytes(c.try_into().ok()?);
        }
        let b = BigInt(limbs);
        (b < Fr::MODULUS).then(|| Fr::new_unchecked(b))
    }
}

/// `n` words from one bulk fill (same stream as `n` calls of `next_u64`).
fn words(prg: &mut Prg, n: usize) -> Vec<u64> {
    let mut bytes = vec![0u8; n * 8];
    prg.fill(&mut bytes);
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Encodes a vector of elements as one message.
pub fn encode_vec<T: Ring>(xs: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(xs.len() * T::BYTES);
    T::encode(xs, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Ring>(prg: &mut Prg) {
        let xs: Vec<T> = (0..50).map(|_| T::random(prg)).collect();
        let bytes = encode_vec(&xs);
        assert_eq!(bytes.len(), xs.len() * T::BYTES);
        let back: Vec<T> = bytes
            .chunks_exact(T::BYTES)
            .map(|c| T::decode(c).unwrap())
            .collect();
        assert_eq!(xs, back);
    }

    #[test]
    fn encodings_round_trip() {
        let mut prg = Prg::new([1; 16]);
        round_trip::<Z64>(&mut prg);
        round_trip::<Z128>(&mut prg);
        round_trip::<Bits>(&mut prg);
        round_trip::<Fr>(&mut prg);
    }

    #[test]
    fn field_decode_rejects_unreduced() {
        assert!(Fr::decode(&[0xff; 32]).is_none());
        assert!(Fr::decode(&[0; 31]).is_none());
    }
}
