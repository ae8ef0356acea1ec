//! The proof field of the multiplication checks: the Mersenne prime
//! `p = 2^61 - 1` ([`Fp`]) and its quadratic extension `F_p[i]/(i^2 + 1)`
//! ([`Fp2`], `p = 3 mod 4` so `-1` is not a square), about 2^122 elements.
//!
//! Li et al. (USENIX Security 2023, ePrint 2023/909) and ipa-core prove
//! binary gates in `F_{2^61-1}`; challenges here are drawn from the
//! extension so that a prover who re-hashes a false proof (Fiat-Shamir
//! grinding) succeeds with probability about 2^-120 per attempt instead of
//! 2^-58.

use std::ops::{Add, Mul, Neg, Sub};

pub const P: u64 = (1 << 61) - 1;

/// An element of `F_{2^61-1}`, always reduced (`0 <= v < p`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fp(u64);

impl Fp {
    pub const ZERO: Fp = Fp(0);
    pub const ONE: Fp = Fp(1);

    /// Reduces any `u64`.
    #[inline]
    pub fn new(v: u64) -> Self {
        let r = (v & P) + (v >> 61);
        Fp(if r >= P { r - P } else { r })
    }

    /// A signed small integer.
    pub fn from_i64(v: i64) -> Self {
        if v < 0 {
            -Fp::new(v.unsigned_abs())
        } else {
            Fp::new(v as u64)
        }
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// The canonical encoding check: `Some` only for `v < p`.
    pub fn from_canonical(v: u64) -> Option<Self> {
        (v < P).then_some(Fp(v))
    }

    pub fn pow(self, mut e: u64) -> Self {
        let (mut base, mut acc) = (self, Fp::ONE);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc * base;
            }
            base = base * base;
            e >>= 1;
        }
        acc
    }

    /// `1 / self` by Fermat (the caller never inverts zero).
    pub fn inv(self) -> Self {
        self.pow(P - 2)
    }
}

impl Add for Fp {
    type Output = Fp;
    #[inline]
    fn add(self, o: Fp) -> Fp {
        let s = self.0 + o.0;
        Fp(if s >= P { s - P } else { s })
    }
}

impl Sub for Fp {
    type Output = Fp;
    #[inline]
    fn sub(self, o: Fp) -> Fp {
        let (s, borrow) = self.0.overflowing_sub(o.0);
        Fp(if borrow { s.wrapping_add(P) } else { s })
    }
}

impl Neg for Fp {
    type Output = Fp;
    #[inline]
    fn neg(self) -> Fp {
        Fp::ZERO - self
    }
}

impl Mul for Fp {
    type Output = Fp;
    #[inline(always)]
    fn mul(self, o: Fp) -> Fp {
        // Wrapping: the product of two values below 2^61 cannot overflow,
        // and a checked 128-bit multiplication (release builds keep
        // overflow checks) is a slow library call.
        let t = (self.0 as u128).wrapping_mul(o.0 as u128);
        // t < 2^122: t = hi * 2^61 + lo and 2^61 = 1 (mod p).
        let s = (t as u64 & P) + (t >> 61) as u64;
        Fp(if s >= P { s - P } else { s })
    }
}

impl Fp {
    /// Reduces `t < 2^127` (two folds of the Mersenne form in 128 bits,
    /// then one in 64).
    #[inline(always)]
    fn reduce_wide(t: u128) -> Fp {
        let p = P as u128;
        let t = (t & p) + (t >> 61); // < 2^67
        let t = (t & p) + (t >> 61); // < 2^61 + 2^6
        Fp::new(t as u64)
    }

    /// Reduces `t < 2^124 + 2^62` (one fold in 64 bits suffices: the sum
    /// stays below `2^64`).
    #[inline(always)]
    fn reduce_124(t: u128) -> Fp {
        Fp::new((t as u64 & P).wrapping_add((t >> 61) as u64))
    }

    /// Partly reduces a product `t < 2^127` to below `2^67`, congruent mod
    /// `p`: sums of up to 2^60 of these stay within 128 bits.
    #[inline(always)]
    fn fold_wide(t: u128) -> u128 {
        (t & P as u128) + (t >> 61)
    }
}

/// A product of two 64-bit values in 128 bits (wrapping: it cannot
/// overflow, and release builds keep overflow checks).
#[inline(always)]
fn wide(a: u64, b: u64) -> u128 {
    (a as u128).wrapping_mul(b as u128)
}

/// `re + im * i` with `i^2 = -1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fp2 {
    pub re: Fp,
    pub im: Fp,
}

impl Fp2 {
    pub const ZERO: Fp2 = Fp2 {
        re: Fp::ZERO,
        im: Fp::ZERO,
    };
    pub const ONE: Fp2 = Fp2 {
        re: Fp::ONE,
        im: Fp::ZERO,
    };
    pub const BYTES: usize = 16;

    pub fn from_base(v: Fp) -> Self {
        Fp2 {
            re: v,
            im: Fp::ZERO,
        }
    }

    pub fn from_i64(v: i64) -> Self {
        Self::from_base(Fp::from_i64(v))
    }

    /// `self * c` for a base-field `c` (two base multiplications).
    #[inline]
    pub fn scale(self, c: Fp) -> Self {
        Fp2 {
            re: self.re * c,
            im: self.im * c,
        }
    }

    /// A uniform element from 16 random bytes (each half masked to 61 bits;
    /// the value `p` maps to 0, a bias of 2^-61).
    pub fn from_random_bytes(b: &[u8; 16]) -> Self {
        let half = |s: &[u8]| Fp::new(u64::from_le_bytes(s.try_into().expect("8 bytes")) & P);
        Fp2 {
            re: half(&b[..8]),
            im: half(&b[8..]),
        }
    }

    pub fn encode(xs: &[Fp2], out: &mut Vec<u8>) {
        for x in xs {
            out.extend_from_slice(&x.re.0.to_le_bytes());
            out.extend_from_slice(&x.im.0.to_le_bytes());
        }
    }

    /// Decodes exactly `bytes.len() / 16` canonical elements.
    pub fn decode(bytes: &[u8]) -> Option<Vec<Fp2>> {
        if !bytes.len().is_multiple_of(Self::BYTES) {
            return None;
        }
        bytes
            .chunks_exact(Self::BYTES)
            .map(|c| {
                let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
                Some(Fp2 {
                    re: Fp::from_canonical(word(&c[..8]))?,
                    im: Fp::from_canonical(word(&c[8..]))?,
                })
            })
            .collect()
    }
}

/// The proofs' hot loops over vectors, with one reduction per result
/// instead of one per operation (lazy reduction: operands are kept below
/// `3p` and sums of products in 128 bits).
impl Fp2 {
    /// `x[t] = x[2t] + r (x[2t+1] - x[2t])` for every pair, in place;
    /// returns the number of results (`x.len() / 2`).
    pub fn fold_pairs(x: &mut [Fp2], r: Fp2) -> usize {
        let half = x.len() / 2;
        let (a, b) = (r.re.0, r.im.0);
        for t in 0..half {
            let (x0, x1) = (x[2 * t], x[2 * t + 1]);
            // d = x1 - x0 and -d.im, each in [1, 2p) (wrapping: no
            // overflow is possible, and the checks cost a branch each).
            let d_re = x1.re.0.wrapping_add(P).wrapping_sub(x0.re.0);
            let d_im = x1.im.0.wrapping_add(P).wrapping_sub(x0.im.0);
            let nd_im = x0.im.0.wrapping_add(P).wrapping_sub(x1.im.0);
            // Each sum < 2^124 + 2^61.
            let re = wide(a, d_re)
                .wrapping_add(wide(b, nd_im))
                .wrapping_add(x0.re.0 as u128);
            let im = wide(a, d_im)
                .wrapping_add(wide(b, d_re))
                .wrapping_add(x0.im.0 as u128);
            x[t] = Fp2 {
                re: Fp::reduce_124(re),
                im: Fp::reduce_124(im),
            };
        }
        half
    }

    /// The sum of at most eight elements, reduced once (components are
    /// below `p < 2^61`, so eight of them add without overflow).
    #[inline(always)]
    pub fn sum_few<const G: usize>(xs: [Fp2; G]) -> Fp2 {
        const { assert!(G <= 8) };
        let (mut re, mut im) = (0u64, 0u64);
        for x in xs {
            re += x.re.0;
            im += x.im.0;
        }
        Fp2 {
            re: Fp::new(re),
            im: Fp::new(im),
        }
    }

    /// `(sum u0 v0, sum (2 u1 - u0)(2 v1 - v0))` over the pairs
    /// `(u0, u1) = (u[2t], u[2t+1])` and likewise of `v`: `p(0)` and `p(2)`
    /// of a halving level.
    pub fn line_sums(u: &[Fp2], v: &[Fp2]) -> (Fp2, Fp2) {
        Fp2::line_sums_of(
            u.chunks_exact(2)
                .zip(v.chunks_exact(2))
                .map(|(uc, vc)| (uc[0], uc[1], vc[0], vc[1])),
        )
    }

    /// [`Fp2::line_sums`] over pairs given as `(u0, u1, v0, v1)` (the
    /// prover's first halving level reads them through table indices).
    #[inline(always)]
    pub fn line_sums_of(pairs: impl Iterator<Item = (Fp2, Fp2, Fp2, Fp2)>) -> (Fp2, Fp2) {
        // Accumulators of partly reduced products (< 2^67 each; at most
        // 2^60 pairs).
        let (mut p0_re, mut p0_im, mut p2_re, mut p2_im) = (0u128, 0u128, 0u128, 0u128);
        let three_p = 3 * P;
        for (u0, u1, v0, v1) in pairs {
            // u0 v0, with -u0.im as p - u0.im.
            let re = wide(u0.re.0, v0.re.0).wrapping_add(wide(P.wrapping_sub(u0.im.0), v0.im.0));
            let im = wide(u0.re.0, v0.im.0).wrapping_add(wide(u0.im.0, v0.re.0));
            p0_re = p0_re.wrapping_add(Fp::fold_wide(re));
            p0_im = p0_im.wrapping_add(Fp::fold_wide(im));
            // 2 u1 - u0 and 2 v1 - v0, components in [1, 3p).
            let twice_minus = |x1: Fp, x0: Fp| (x1.0 << 1).wrapping_add(P).wrapping_sub(x0.0);
            let (a_re, a_im) = (twice_minus(u1.re, u0.re), twice_minus(u1.im, u0.im));
            let (b_re, b_im) = (twice_minus(v1.re, v0.re), twice_minus(v1.im, v0.im));
            // Each sum < 2^127.
            let re = wide(a_re, b_re).wrapping_add(wide(three_p.wrapping_sub(a_im), b_im));
            let im = wide(a_re, b_im).wrapping_add(wide(a_im, b_re));
            p2_re = p2_re.wrapping_add(Fp::fold_wide(re));
            p2_im = p2_im.wrapping_add(Fp::fold_wide(im));
        }
        let fp2 = |re, im| Fp2 {
            re: Fp::reduce_wide(re),
            im: Fp::reduce_wide(im),
        };
        (fp2(p0_re, p0_im), fp2(p2_re, p2_im))
    }
}

impl std::ops::AddAssign for Fp2 {
    #[inline]
    fn add_assign(&mut self, o: Fp2) {
        *self = *self + o;
    }
}

impl std::ops::SubAssign for Fp2 {
    #[inline]
    fn sub_assign(&mut self, o: Fp2) {
        *self = *self - o;
    }
}

/// Fp2 as a [`crate::Ring`], so the proofs share the wire encoding and the
/// PRG sampling of the share types.
impl crate::Ring for Fp2 {
    const BYTES: usize = 16;
    fn zero() -> Self {
        Fp2::ZERO
    }
    fn one() -> Self {
        Fp2::ONE
    }
    fn from_u64(v: u64) -> Self {
        Fp2::from_base(Fp::new(v))
    }
    fn random(prg: &mut crate::prg::Prg) -> Self {
        let mut b = [0u8; 16];
        prg.fill(&mut b);
        Fp2::from_random_bytes(&b)
    }
    fn encode(xs: &[Self], out: &mut Vec<u8>) {
        Fp2::encode(xs, out)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        Fp2::decode(bytes).map(|v| v[0])
    }
}

impl Add for Fp2 {
    type Output = Fp2;
    #[inline]
    fn add(self, o: Fp2) -> Fp2 {
        Fp2 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}

impl Sub for Fp2 {
    type Output = Fp2;
    #[inline]
    fn sub(self, o: Fp2) -> Fp2 {
        Fp2 {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
}

impl Neg for Fp2 {
    type Output = Fp2;
    #[inline]
    fn neg(self) -> Fp2 {
        Fp2 {
            re: -self.re,
            im: -self.im,
        }
    }
}

impl Mul for Fp2 {
    type Output = Fp2;
    /// Karatsuba: three base multiplications.
    #[inline(always)]
    fn mul(self, o: Fp2) -> Fp2 {
        let ac = self.re * o.re;
        let bd = self.im * o.im;
        let cross = (self.re + self.im) * (o.re + o.im);
        Fp2 {
            re: ac - bd,
            im: cross - ac - bd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_mul(a: u64, b: u64) -> u64 {
        ((a as u128 * b as u128) % P as u128) as u64
    }

    proptest! {
        #[test]
        fn base_field_matches_u128_arithmetic(a in 0..P, b in 0..P) {
            let (x, y) = (Fp::new(a), Fp::new(b));
            prop_assert_eq!((x * y).value(), naive_mul(a, b));
            prop_assert_eq!((x + y).value(), ((a as u128 + b as u128) % P as u128) as u64);
            prop_assert_eq!(x - y + y, x);
            prop_assert_eq!(x + (-x), Fp::ZERO);
            if a != 0 {
                prop_assert_eq!(x * x.inv(), Fp::ONE);
            }
        }

        #[test]
        fn extension_is_a_field(a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), c in any::<[u8; 16]>()) {
            let (x, y, z) = (Fp2::from_random_bytes(&a), Fp2::from_random_bytes(&b), Fp2::from_random_bytes(&c));
            prop_assert_eq!(x * (y + z), x * y + x * z);
            prop_assert_eq!((x * y) * z, x * (y * z));
            let mut enc = Vec::new();
            Fp2::encode(&[x, y], &mut enc);
            prop_assert_eq!(Fp2::decode(&enc).unwrap(), vec![x, y]);
        }
    }

    #[test]
    fn sum_few_matches_repeated_addition() {
        let top = fp2_of(P - 1, P - 1);
        let mut prg = crate::prg::Prg::new([6; 16]);
        let random: [Fp2; 8] = std::array::from_fn(|_| <Fp2 as crate::Ring>::random(&mut prg));
        for xs in [[top; 8], random, [Fp2::ZERO; 8]] {
            let want = xs.iter().fold(Fp2::ZERO, |s, &x| s + x);
            assert_eq!(Fp2::sum_few(xs), want);
            assert_eq!(Fp2::sum_few([xs[0], xs[1]]), xs[0] + xs[1]);
        }
        assert_eq!(Fp2::sum_few([top; 8]), fp2_of(P - 8, P - 8));
    }

    fn fp2_of(a: u64, b: u64) -> Fp2 {
        Fp2 {
            re: Fp::new(a),
            im: Fp::new(b),
        }
    }

    proptest! {
        #[test]
        fn lazy_kernels_match_the_field_operations(
            v in prop::collection::vec(prop_oneof![Just(0u64), Just(1), Just(P - 1), Just(P - 2), 0..P], 0..40),
            r in (prop_oneof![Just(0u64), Just(P - 1), 0..P], prop_oneof![Just(0u64), Just(P - 1), 0..P]),
        ) {
            let xs: Vec<Fp2> = v.chunks_exact(2).map(|c| fp2_of(c[0], c[1])).collect();
            let r = fp2_of(r.0, r.1);
            let mut folded = xs.clone();
            let half = Fp2::fold_pairs(&mut folded, r);
            prop_assert_eq!(half, xs.len() / 2);
            for t in 0..half {
                let (x0, x1) = (xs[2 * t], xs[2 * t + 1]);
                prop_assert_eq!(folded[t], x0 + r * (x1 - x0));
            }
            let (u, w) = xs.split_at(xs.len() / 2);
            let (mut p0, mut p2) = (Fp2::ZERO, Fp2::ZERO);
            for (uc, wc) in u.chunks_exact(2).zip(w.chunks_exact(2)) {
                p0 += uc[0] * wc[0];
                p2 += (uc[1] + uc[1] - uc[0]) * (wc[1] + wc[1] - wc[0]);
            }
            prop_assert_eq!(Fp2::line_sums(u, w), (p0, p2));
        }
    }

    #[test]
    fn lazy_kernels_at_the_largest_operands() {
        // Every component p - 1: the bounds of the 128-bit sums.
        let m = fp2_of(P - 1, P - 1);
        let z = Fp2::ZERO;
        let mut x = vec![z, m, m, z];
        Fp2::fold_pairs(&mut x, m);
        assert_eq!(x[0], m * m);
        assert_eq!(x[1], m + m * (z - m));
        let big = vec![m; 1 << 12];
        let want = (m * m).scale(Fp::new(1 << 11));
        assert_eq!(Fp2::line_sums(&big, &big), (want, want));
    }

    #[test]
    fn edges_reduce_and_i_squared_is_minus_one() {
        assert_eq!(Fp::new(P), Fp::ZERO);
        assert_eq!(Fp::new(u64::MAX).value(), u64::MAX % P);
        assert_eq!(Fp::from_i64(-1) + Fp::ONE, Fp::ZERO);
        assert_eq!(Fp::new(P - 1) * Fp::new(P - 1), Fp::ONE);
        let i = Fp2 {
            re: Fp::ZERO,
            im: Fp::ONE,
        };
        assert_eq!(i * i, Fp2::from_i64(-1));
        // Non-canonical encodings are refused.
        let mut enc = Vec::new();
        enc.extend_from_slice(&P.to_le_bytes());
        enc.extend_from_slice(&0u64.to_le_bytes());
        assert!(Fp2::decode(&enc).is_none());
        assert!(Fp2::decode(&[0u8; 15]).is_none());
    }
}
