//! Baby Jubjub in the circom form, the curve of MACI keys (EIP-2494,
//! circomlib `babyjub.circom`, circomlibjs `src/babyjub.js`):
//!
//! ```text
//! 168700·x² + y² = 1 + 168696·x²·y²   over the BN254 scalar field Fr
//! ```
//!
//! The group law is arkworks' generic twisted Edwards implementation
//! (`ark-ec`, extended coordinates, the unified addition of Hisil–Wong–
//! Carter–Dawson 2008); this module only supplies circom's constants.
//! `ark-ed-on-bn254` is the same group in the isomorphic form with a = 1
//! (its x is this x times √168700) and a different generator, so its points
//! are not used: only its scalar field, the integers modulo the subgroup
//! order l, which is the same for both forms.
//!
//! Points are packed as circomlibjs `packPoint` / zk-kit `packPoint`: y in 32
//! little-endian bytes, bit 255 set iff x > (p−1)/2.

use ark_ec::{
    twisted_edwards::{Affine, MontCurveConfig, Projective, TECurveConfig},
    AdditiveGroup, CurveConfig, CurveGroup,
};
use ark_ff::{BigInteger, MontFp, PrimeField, Zero};

use crate::Fr;

/// Integers modulo the prime subgroup order
/// l = 2736030358979909402780800718157159386076813972158567259200215660948447373041.
pub use ark_ed_on_bn254::Fr as Scalar;

/// A point of Baby Jubjub (circom form), affine coordinates over [`Fr`].
/// Constructed only on the curve: by the group law, [`unpack`], or
/// [`point`] (which checks).
pub type Point = Affine<BabyJubjub>;

/// Curve constants of Baby Jubjub in circom's form, for `ark-ec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BabyJubjub;

/// x of Base8, the generator of the prime-order subgroup (circomlibjs `Base8`).
const BASE8_X: Fr =
    MontFp!("5299619240641551281634865583518297030282874472190772894086521144482721001553");
/// y of Base8.
const BASE8_Y: Fr =
    MontFp!("16950150798460657717958625567821834550301663161624707787222815936182638968203");

impl CurveConfig for BabyJubjub {
    type BaseField = Fr;
    type ScalarField = Scalar;
    /// The group has order 8·l.
    const COFACTOR: &'static [u64] = &[8];
    /// 8⁻¹ mod l.
    const COFACTOR_INV: Scalar =
        MontFp!("2394026564107420727433200628387514462817212225638746351800188703329891451411");
}

impl TECurveConfig for BabyJubjub {
    const COEFF_A: Fr = MontFp!("168700");
    const COEFF_D: Fr = MontFp!("168696");
    const GENERATOR: Point = Affine::new_unchecked(BASE8_X, BASE8_Y);
    type MontCurveConfig = BabyJubjub;
}

/// The birationally equivalent Montgomery curve B·v² = u³ + A·u² + u with
/// A = 2(a+d)/(a−d) = 168698, B = 4/(a−d) = 1 (EIP-2494). Required by
/// `ark-ec`; nothing here uses it.
impl MontCurveConfig for BabyJubjub {
    const COEFF_A: Fr = MontFp!("168698");
    const COEFF_B: Fr = MontFp!("1");
    type TECurveConfig = BabyJubjub;
}

/// Base8 = 8·(generator of the full group), the generator of the subgroup
/// of order l that every MACI key lives in.
pub fn base8() -> Point {
    BabyJubjub::GENERATOR
}

/// Why 32 bytes or two coordinates are not a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    #[error("y coordinate is not below the field order p")]
    NotReduced,
    #[error("not a point of Baby Jubjub")]
    NotOnCurve,
    #[error("non-canonical encoding: sign bit set for x = 0")]
    NonCanonical,
}

/// A point from its coordinates, checked to be on the curve.
pub fn point(x: Fr, y: Fr) -> Result<Point, PointError> {
    let p = Affine::new_unchecked(x, y);
    if p.is_on_curve() {
        Ok(p)
    } else {
        Err(PointError::NotOnCurve)
    }
}

/// `k·P` for an integer k given as little-endian 64-bit limbs, by a
/// Montgomery ladder over every bit of `k` (leading zeros too): the sequence
/// of group operations does not depend on the scalar. (Not fully constant
/// time: the swap is a branch and arkworks' field arithmetic is not
/// audited for it.)
pub fn mul_limbs(p: &Point, k: &[u64]) -> Point {
    let mut r0 = Projective::<BabyJubjub>::zero();
    let mut r1: Projective<BabyJubjub> = (*p).into();
    for limb in k.iter().rev() {
        for i in (0..64).rev() {
            if (limb >> i) & 1 == 1 {
                r0 += r1;
                r1.double_in_place();
            } else {
                r1 += r0;
                r0.double_in_place();
            }
        }
    }
    r0.into_affine()
}

/// `k·P` for k modulo l. Only for points of the order-l subgroup (keys,
/// Base8), where reducing k mod l does not change the result.
pub fn mul(p: &Point, k: &Scalar) -> Point {
    mul_limbs(p, k.into_bigint().as_ref())
}

/// `P + Q` (the unified twisted Edwards addition; also for P = Q).
pub fn add(p: &Point, q: &Point) -> Point {
    (Projective::<BabyJubjub>::from(*p) + q).into_affine()
}

/// Whether `P` is in the subgroup of order l (l·P = O).
pub fn in_prime_subgroup(p: &Point) -> bool {
    p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve()
}

/// circomlibjs `packPoint`: y little-endian, bit 255 = [x > (p−1)/2].
pub fn pack(p: &Point) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&p.y.into_bigint().to_bytes_le());
    if is_negative(&p.x) {
        out[31] |= 0x80;
    }
    out
}

/// circomlibjs `unpackPoint`, strict: y must be reduced, the curve must have
/// a point with that y, and the sign bit may only be set if x ≠ 0 (so each
/// point has exactly one encoding).
pub fn unpack(bytes: &[u8; 32]) -> Result<Point, PointError> {
    let negative = bytes[31] & 0x80 != 0;
    let mut y_bytes = *bytes;
    y_bytes[31] &= 0x7f;
    let y = Fr::from_le_bytes_mod_order(&y_bytes);
    if y.into_bigint().to_bytes_le() != y_bytes {
        return Err(PointError::NotReduced);
    }
    let (x, neg_x) = Point::get_xs_from_y_unchecked(y).ok_or(PointError::NotOnCurve)?;
    // Of the two roots take the one ≤ (p−1)/2, its negation if the sign is set.
    let small = if is_negative(&x) { neg_x } else { x };
    let x = if negative {
        if small.is_zero() {
            return Err(PointError::NonCanonical);
        }
        -small
    } else {
        small
    };
    point(x, y)
}

/// ffjavascript's sign convention: x is "negative" iff x > (p−1)/2.
fn is_negative(x: &Fr) -> bool {
    x.into_bigint() > Fr::MODULUS_MINUS_ONE_DIV_TWO
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn base8_has_order_l() {
        let b = base8();
        assert!(b.is_on_curve());
        assert!(in_prime_subgroup(&b));
        assert!(!b.is_zero());
        let l = Scalar::MODULUS;
        assert_eq!(
            l.to_string(),
            "2736030358979909402780800718157159386076813972158567259200215660948447373041"
        );
        assert!(mul_limbs(&b, l.as_ref()).is_zero());
    }

    #[test]
    fn ladder_matches_double_and_add() {
        let b = base8();
        for k in [0u64, 1, 2, 3, 7, 8, 1 << 40, u64::MAX] {
            let want = (Projective::<BabyJubjub>::from(b) * Scalar::from(k)).into_affine();
            assert_eq!(mul(&b, &Scalar::from(k)), want, "k = {k}");
        }
        let k = Scalar::from_str("1234567890123456789012345678901234567890").unwrap();
        let want = (Projective::<BabyJubjub>::from(b) * k).into_affine();
        assert_eq!(mul(&b, &k), want);
    }

    #[test]
    fn pack_round_trip_and_strictness() {
        let b = base8();
        for k in 1u64..20 {
            let p = mul(&b, &Scalar::from(k));
            assert_eq!(unpack(&pack(&p)).unwrap(), p);
            let neg = -p;
            assert_eq!(unpack(&pack(&neg)).unwrap(), neg);
        }
        // The identity (0, 1) with the sign bit set is a second encoding.
        let mut id = pack(&Point::zero());
        assert_eq!(unpack(&id).unwrap(), Point::zero());
        id[31] |= 0x80;
        assert_eq!(unpack(&id), Err(PointError::NonCanonical));
        // y = p is not reduced.
        let mut p = [0u8; 32];
        p.copy_from_slice(&Fr::MODULUS.to_bytes_le());
        assert_eq!(unpack(&p), Err(PointError::NotReduced));
        assert_eq!(unpack(&[0x7f; 32]), Err(PointError::NotReduced));
    }

    #[test]
    fn point_checks_the_curve() {
        assert_eq!(
            point(Fr::from(1u64), Fr::from(1u64)),
            Err(PointError::NotOnCurve)
        );
        assert!(point(BASE8_X, BASE8_Y).is_ok());
    }
}
