//! GF(2^128): the field the shuffle's tags live in (a tag `α·x` is linear
//! over XOR, so it survives a shuffle of XOR-shared words) and the field
//! their multiplication proofs run in.
//!
//! Arithmetic is the POLYVAL field of RFC 8452 (section 3): `GF(2)[x] /
//! (x^128 + x^127 + x^126 + x^121 + 1)`, bit `i` of the little-endian
//! integer the coefficient of `x^i`. Multiplication is the vetted
//! constant-time `polyval` crate (RustCrypto, CLMUL when the CPU has it),
//! whose block operation is `dot(a, b) = a b x^-128`; elements are kept in
//! the Montgomery form `a x^128`, where `dot` is exactly the field
//! multiplication and addition is XOR. So `ONE` is `x^128 mod P`.

use std::ops::{Add, AddAssign, Mul, Neg, Sub, SubAssign};

use polyval::universal_hash::{KeyInit, UniversalHash};
use polyval::Polyval;

use crate::prg::Prg;
use crate::Ring;

/// An element of GF(2^128) in Montgomery form (see the module comment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gf128(pub u128);

impl Gf128 {
    pub const ZERO: Gf128 = Gf128(0);
    /// `x^128 mod P = x^127 + x^126 + x^121 + 1`: the Montgomery form of 1.
    pub const ONE: Gf128 = Gf128((1 << 127) | (1 << 126) | (1 << 121) | 1);
    pub const BYTES: usize = 16;

    /// A field element whose Montgomery form is `v` (injective: distinct
    /// words give distinct elements).
    pub fn from_word(v: u64) -> Self {
        Gf128(v as u128)
    }

    /// `self^(2^128 - 2)`, the inverse of a nonzero element.
    pub fn inv(self) -> Self {
        // Square-and-multiply over the exponent 2^128 - 2 (all ones but
        // the lowest bit).
        let mut acc = Gf128::ONE;
        for bit in (0..128).rev() {
            acc = acc * acc;
            if bit != 0 {
                acc = acc * self;
            }
        }
        acc
    }
}

// Characteristic 2: addition and subtraction are XOR.
#[allow(clippy::suspicious_arithmetic_impl)]
impl Add for Gf128 {
    type Output = Gf128;
    #[inline]
    fn add(self, o: Gf128) -> Gf128 {
        Gf128(self.0 ^ o.0)
    }
}

#[allow(clippy::suspicious_arithmetic_impl)]
impl Sub for Gf128 {
    type Output = Gf128;
    #[inline]
    fn sub(self, o: Gf128) -> Gf128 {
        Gf128(self.0 ^ o.0)
    }
}

impl Neg for Gf128 {
    type Output = Gf128;
    #[inline]
    fn neg(self) -> Gf128 {
        self
    }
}

#[allow(clippy::suspicious_op_assign_impl)]
impl AddAssign for Gf128 {
    #[inline]
    fn add_assign(&mut self, o: Gf128) {
        self.0 ^= o.0;
    }
}

#[allow(clippy::suspicious_op_assign_impl)]
impl SubAssign for Gf128 {
    #[inline]
    fn sub_assign(&mut self, o: Gf128) {
        self.0 ^= o.0;
    }
}

impl Mul for Gf128 {
    type Output = Gf128;
    #[inline]
    fn mul(self, o: Gf128) -> Gf128 {
        let mut h = Polyval::new(&self.0.to_le_bytes().into());
        h.update(&[o.0.to_le_bytes().into()]);
        Gf128(u128::from_le_bytes(h.finalize().into()))
    }
}

impl Ring for Gf128 {
    const BYTES: usize = 16;
    fn zero() -> Self {
        Gf128::ZERO
    }
    fn one() -> Self {
        Gf128::ONE
    }
    /// The image of the integer `v` (characteristic 2: its parity).
    fn from_u64(v: u64) -> Self {
        if v & 1 == 1 {
            Gf128::ONE
        } else {
            Gf128::ZERO
        }
    }
    fn random(prg: &mut Prg) -> Self {
        let mut b = [0u8; 16];
        prg.fill(&mut b);
        Gf128(u128::from_le_bytes(b))
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        out.reserve(xs.len() * 16);
        for x in xs {
            out.extend_from_slice(&x.0.to_le_bytes());
        }
    }
    /// Every 16 bytes are a canonical element.
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Gf128(u128::from_le_bytes(bytes.try_into().ok()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: schoolbook carry-less product reduced mod P, then the
    /// Montgomery factor `x^-128` applied as 128 halvings.
    fn reference_dot(a: u128, b: u128) -> u128 {
        // Product a*b mod P (plain).
        let mut acc = 0u128;
        let mut x = a;
        for i in 0..128 {
            if (b >> i) & 1 == 1 {
                acc ^= x;
            }
            // x *= X mod P
            let carry = x >> 127;
            x <<= 1;
            if carry == 1 {
                x ^= (1 << 127) | (1 << 126) | (1 << 121) | 1;
            }
        }
        // Divide by x^128: 128 times "x /= X mod P" (P has constant 1).
        for _ in 0..128 {
            if acc & 1 == 1 {
                acc ^= (1 << 127) | (1 << 126) | (1 << 121) | 1;
                acc = (acc >> 1) | (1 << 127);
            } else {
                acc >>= 1;
            }
        }
        acc
    }

    proptest! {
        #[test]
        fn multiplication_matches_the_reference(a in any::<u128>(), b in any::<u128>()) {
            prop_assert_eq!((Gf128(a) * Gf128(b)).0, reference_dot(a, b));
        }

        #[test]
        fn field_laws(a in any::<u128>(), b in any::<u128>(), c in any::<u128>()) {
            let (a, b, c) = (Gf128(a), Gf128(b), Gf128(c));
            prop_assert_eq!(a * Gf128::ONE, a);
            prop_assert_eq!(a * b, b * a);
            prop_assert_eq!((a * b) * c, a * (b * c));
            prop_assert_eq!(a * (b + c), a * b + a * c);
            if a != Gf128::ZERO {
                prop_assert_eq!(a * a.inv(), Gf128::ONE);
            }
        }
    }
}
