//! EdDSA-Poseidon on Baby Jubjub, as circomlibjs `eddsa.signPoseidon` /
//! `verifyPoseidon` and zk-kit `@zk-kit/eddsa-poseidon` (`signMessage`,
//! `verifySignature`), which MACI uses for commands.
//!
//! Key expansion (RFC 8032 §5.1.5 style, with BLAKE-512 for SHA-512):
//! `h = BLAKE-512(seed)`; `s = LE(prune(h[0..32]))` with
//! `prune: b[0] &= 0xF8, b[31] &= 0x7F, b[31] |= 0x40`; public key
//! `A = Base8·(s >> 3)`.
//!
//! Signing: `r = LE(BLAKE-512(h[32..64] ‖ LE32(M))) mod l`, `R8 = Base8·r`,
//! `hm = Poseidon(R8.x, R8.y, A.x, A.y, M)`, `S = (r + hm·s) mod l`.
//! Note s is the pruned scalar *before* the shift, and the verifier
//! multiplies A by 8 to match: `S·Base8 = R8 + hm·(8·A)`.
//!
//! The seed is whatever bytes the key convention hashes: circomlibjs
//! `prv2pub` hashes the raw private-key bytes; MACI ≥ v2 hashes the UTF-8
//! decimal string of the private key ([`crate::PrivKey::signing_key`]).

use std::fmt;

use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField, Zero};
use blake_hash::{Blake512, Digest};

use crate::babyjub::{self, base8, Point, PointError, Scalar};
use crate::hash::poseidon;
use crate::{Fr, PubKey};

/// BLAKE-512 (the SHA-3 finalist, not BLAKE2b), as circomlibjs and zk-kit
/// use it. From the `blake-hash` crate.
pub fn blake512(data: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(&Blake512::digest(data));
    out
}

/// An expanded EdDSA-Poseidon signing key: the BLAKE-512 hash of the seed.
/// `Debug` is redacted.
#[derive(Clone)]
pub struct SigningKey {
    h: [u8; 64],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Expands a seed: circomlibjs `prv2pub(seed)` / zk-kit with a byte seed.
    pub fn from_seed(seed: &[u8]) -> Self {
        SigningKey { h: blake512(seed) }
    }

    /// `LE(prune(h[0..32]))`, the unshifted scalar s of the signing equation.
    fn pruned(&self) -> [u8; 32] {
        let mut s = [0u8; 32];
        s.copy_from_slice(&self.h[..32]);
        s[0] &= 0xF8;
        s[31] &= 0x7F;
        s[31] |= 0x40;
        s
    }

    /// The secret scalar `(s >> 3) mod l` (zk-kit `deriveSecretScalar`, MACI
    /// `formatPrivKeyForBabyJub`): the public key is `Base8·secret_scalar`,
    /// and ECDH multiplies by it.
    pub fn secret_scalar(&self) -> Scalar {
        let mut s = <Scalar as PrimeField>::BigInt::zero();
        // The pruned value is below 2^255, so it fits 4 limbs exactly.
        let bytes = self.pruned();
        for (i, limb) in s.0.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            *limb = u64::from_le_bytes(b);
        }
        Scalar::from_le_bytes_mod_order(&(s >> 3).to_bytes_le())
    }

    /// `A = Base8·secret_scalar`.
    pub fn public_key(&self) -> PubKey {
        PubKey::from_subgroup_point(babyjub::mul(&base8(), &self.secret_scalar()))
    }

    /// Signs a field element (circomlibjs `signPoseidon`).
    pub fn sign(&self, msg: Fr) -> Signature {
        let a = self.public_key();
        let mut nonce_input = [0u8; 64];
        nonce_input[..32].copy_from_slice(&self.h[32..]);
        nonce_input[32..].copy_from_slice(&msg.into_bigint().to_bytes_le());
        let r = Scalar::from_le_bytes_mod_order(&blake512(&nonce_input));
        let r8 = babyjub::mul(&base8(), &r);
        let hm = challenge(&r8, a.point(), msg);
        let s = Scalar::from_le_bytes_mod_order(&self.pruned());
        Signature {
            r8,
            s: r + field_to_scalar(&hm) * s,
        }
    }
}

/// `hm = Poseidon(R8.x, R8.y, A.x, A.y, M)` (5 inputs, t = 6).
fn challenge(r8: &Point, a: &Point, msg: Fr) -> Fr {
    poseidon(&[r8.x, r8.y, a.x, a.y, msg])
}

/// A field element read as an integer and reduced mod l.
fn field_to_scalar(x: &Fr) -> Scalar {
    Scalar::from_le_bytes_mod_order(&x.into_bigint().to_bytes_le())
}

/// An EdDSA-Poseidon signature `(R8, S)`, with R8 on the curve and S < l
/// (enforced by every constructor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    r8: Point,
    s: Scalar,
}

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature S is not below the subgroup order l")]
    ScalarTooLarge,
    #[error("signature R8 is not a point of Baby Jubjub")]
    R8NotOnCurve,
    #[error("signature does not verify under this key and message")]
    Mismatch,
}

impl Signature {
    /// From the three field elements MACI carries (`R8.x, R8.y, S`), with the
    /// checks of circomlibjs `verifyPoseidon`: R8 on the curve, S < l.
    pub fn from_fields(r8x: Fr, r8y: Fr, s: Fr) -> Result<Self, SignatureError> {
        let r8 = babyjub::point(r8x, r8y).map_err(|_: PointError| SignatureError::R8NotOnCurve)?;
        let s_int = s.into_bigint();
        if s_int >= Scalar::MODULUS {
            return Err(SignatureError::ScalarTooLarge);
        }
        Ok(Signature {
            r8,
            s: Scalar::from_bigint(s_int).ok_or(SignatureError::ScalarTooLarge)?,
        })
    }

    /// `[R8.x, R8.y, S]`.
    pub fn to_fields(&self) -> [Fr; 3] {
        let s = Fr::from_le_bytes_mod_order(&self.s.into_bigint().to_bytes_le());
        [self.r8.x, self.r8.y, s]
    }

    /// The point R8.
    pub fn r8(&self) -> &Point {
        &self.r8
    }

    /// The scalar S (< l).
    pub fn s(&self) -> &Scalar {
        &self.s
    }
}

/// Verifies `S·Base8 = R8 + hm·(8·A)` (circomlibjs `verifyPoseidon`). The
/// remaining checks of the README (S < l, R8 and A on the curve, A.x ≠ 0)
/// hold by construction of [`Signature`] and [`PubKey`] (a `PubKey` is a
/// point of the order-l subgroup other than the identity, which is stricter
/// than A.x ≠ 0: it also refuses keys of small order, under which anyone
/// could sign).
pub fn verify(pk: &PubKey, msg: Fr, sig: &Signature) -> Result<(), SignatureError> {
    let a = pk.point();
    debug_assert!(!a.x.is_zero());
    let hm = challenge(&sig.r8, a, msg);
    let left = babyjub::mul(&base8(), &sig.s);
    // hm·(8·A) with hm as an integer, exactly as the circuit computes it.
    let a8 = a.mul_by_cofactor();
    let right = babyjub::add(&sig.r8, &babyjub::mul_limbs(&a8, hm.into_bigint().as_ref()));
    if left == right {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake512_empty() {
        // H1: BLAKE-512("") from the BLAKE specification.
        let want = "a8cfbbd73726062df0c6864dda65defe58ef0cc52a5625090fa17601e1eecd1b\
                    628e94f396ae402a00acc9eab77b4d4c2e852aaaa25a636d80af3fc7913ef5b8";
        let got: String = blake512(b"").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn from_fields_checks() {
        let k = SigningKey::from_seed(b"seed");
        let sig = k.sign(Fr::from(7u64));
        let [x, y, s] = sig.to_fields();
        assert_eq!(Signature::from_fields(x, y, s), Ok(sig));
        assert_eq!(
            Signature::from_fields(x + Fr::from(1u64), y, s),
            Err(SignatureError::R8NotOnCurve)
        );
        let l = Fr::from_le_bytes_mod_order(&Scalar::MODULUS.to_bytes_le());
        assert_eq!(
            Signature::from_fields(x, y, l),
            Err(SignatureError::ScalarTooLarge)
        );
        // S + l is the same scalar mod l: the malleability S < l prevents.
        assert_eq!(
            Signature::from_fields(x, y, s + l),
            Err(SignatureError::ScalarTooLarge)
        );
    }
}
