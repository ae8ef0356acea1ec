//! Replicated secret sharing of a provider's opening.
//!
//! The value's 64-bit two's-complement word is XOR-shared as
//! `x0 ^ x1 ^ x2`; the blinder is additively shared in the BN254 scalar
//! field as `b0 + b1 + b2`. Party `i` receives components `i` and `i+1`
//! (mod 3), so any two parties can reconstruct and no single one learns
//! anything.

use rand::{CryptoRng, RngCore};
use triad_crypto::{fr_to_hex, Fr};
use triad_mpc::share::share_plain;
use triad_mpc::Bits;
use triad_wire::messages::ShareUpload;
use triad_wire::receipt::component_commitment;

/// What one party receives: components `(i, i+1 mod 3)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartyShares {
    pub value_bits: [u64; 2],
    pub blinder: [Fr; 2],
}

impl std::fmt::Debug for PartyShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartyShares(redacted)")
    }
}

impl PartyShares {
    /// The upload body for party `party` (`value_bits` as 16 hex digits,
    /// blinder components as 64 hex digits), with the salts of its two
    /// components and all three commitments.
    pub fn to_upload(
        &self,
        party: usize,
        submission_id: &str,
        token: &str,
        c: &Commitments,
    ) -> ShareUpload {
        ShareUpload {
            submission_id: submission_id.to_string(),
            token: token.to_string(),
            value_bits: self.value_bits.map(|x| format!("{x:016x}")),
            blinder: self.blinder.map(|b| fr_to_hex(&b)),
            salts: [0, 1].map(|k| c.salts[(party + k) % 3].clone()),
            commitments: c.commitments.clone(),
        }
    }
}

/// The provider's salted commitments to the three components
/// ([`triad_wire::receipt`]); component `j` is party `j`'s first.
#[derive(Clone)]
pub struct Commitments {
    /// 64 hex each; secret (with a component, a salt opens a commitment).
    pub salts: [String; 3],
    pub commitments: [String; 3],
}

impl std::fmt::Debug for Commitments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Commitments({:?}, salts redacted)", self.commitments)
    }
}

/// Commits to every component of `shares` under fresh salts.
pub fn commit_shares<R: RngCore + CryptoRng>(
    submission_id: &str,
    shares: &[PartyShares; 3],
    rng: &mut R,
) -> Commitments {
    let salts = [0, 1, 2].map(|_| {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        hex::encode(b)
    });
    let commitments = [0usize, 1, 2].map(|j| {
        component_commitment(
            submission_id,
            j as u8,
            &format!("{:016x}", shares[j].value_bits[0]),
            &fr_to_hex(&shares[j].blinder[0]),
            &salts[j],
        )
    });
    Commitments { salts, commitments }
}

/// A uniformly random field element (512 random bits reduced mod p; the
/// statistical distance from uniform is below 2^-250).
pub fn random_fr<R: RngCore + CryptoRng>(rng: &mut R) -> Fr {
    let two64 = Fr::from(u64::MAX) + Fr::from(1u64);
    let mut acc = Fr::from(0u64);
    for _ in 0..8 {
        acc = acc * two64 + Fr::from(rng.next_u64());
    }
    acc
}

/// Splits `(value, blinder)` into the three parties' shares; element `i`
/// goes to party `i`. The engine's own sharing ([`share_plain`]) fixes the
/// convention, so client and parties cannot disagree on it.
pub fn split_shares<R: RngCore + CryptoRng>(
    value: i64,
    blinder: Fr,
    rng: &mut R,
) -> [PartyShares; 3] {
    let x = share_plain(&[Bits(value as u64)], rng);
    let b = share_plain(&[blinder], rng);
    [0, 1, 2].map(|i| PartyShares {
        value_bits: [x[i].a[0].0, x[i].b[0].0],
        blinder: [b[i].a[0], b[i].b[0]],
    })
}

/// Recombines the three parties' shares (each party's first components);
/// checks nothing. For tests and diagnostics.
pub fn recombine(shares: &[PartyShares; 3]) -> (i64, Fr) {
    let word = shares[0].value_bits[0] ^ shares[1].value_bits[0] ^ shares[2].value_bits[0];
    let b = shares[0].blinder[0] + shares[1].blinder[0] + shares[2].blinder[0];
    (word as i64, b)
}

#[cfg(test)]
mod tests {
    use super::{random_fr, recombine, split_shares, Fr};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};
    use triad_crypto::fr_from_hex;

    fn check(value: i64, blinder: Fr, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = split_shares(value, blinder, &mut rng);
        assert_eq!(recombine(&s), (value, blinder));
        for i in 0..3 {
            let next = &s[(i + 1) % 3];
            assert_eq!(s[i].value_bits[1], next.value_bits[0]);
            assert_eq!(s[i].blinder[1], next.blinder[0]);
        }
        // Any two parties reconstruct: party i holds x_i, x_{i+1}; party
        // i+1 holds x_{i+2}.
        for i in 0..3 {
            let j = (i + 1) % 3;
            let w = s[i].value_bits[0] ^ s[i].value_bits[1] ^ s[j].value_bits[1];
            assert_eq!(w as i64, value);
            assert_eq!(s[i].blinder[0] + s[i].blinder[1] + s[j].blinder[1], blinder);
        }
        // The uploads encode as the wire expects and decode back, and each
        // party's components open the commitments it is sent.
        let c = super::commit_shares("sid", &s, &mut rng);
        for (i, p) in s.iter().enumerate() {
            let u = p.to_upload(i, "sid", "tok", &c);
            for k in 0..2 {
                let j = (i + k) % 3;
                let got = triad_wire::receipt::component_commitment(
                    "sid",
                    j as u8,
                    &u.value_bits[k],
                    &u.blinder[k],
                    &u.salts[k],
                );
                assert_eq!(got, u.commitments[j]);
            }
            for k in 0..2 {
                assert_eq!(u.value_bits[k].len(), 16);
                assert_eq!(
                    u64::from_str_radix(&u.value_bits[k], 16).unwrap(),
                    p.value_bits[k]
                );
                assert_eq!(fr_from_hex(&u.blinder[k]).unwrap(), p.blinder[k]);
            }
        }
    }

    #[test]
    fn edge_values_recombine() {
        let mut rng = StdRng::seed_from_u64(7);
        for v in [0, 1, -1, i64::MIN, i64::MAX, i64::MIN + 1] {
            for b in [
                Fr::from(0u64),
                Fr::from(1u64),
                -Fr::from(1u64),
                random_fr(&mut rng),
            ] {
                check(v, b, rng.next_u64());
            }
        }
    }

    #[test]
    fn shares_are_fresh() {
        let mut rng = rand::rngs::OsRng;
        let a = split_shares(5, Fr::from(9u64), &mut rng);
        let b = split_shares(5, Fr::from(9u64), &mut rng);
        assert_ne!(a, b);
        assert_ne!(random_fr(&mut rng), random_fr(&mut rng));
    }

    fn value() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
    }

    proptest! {
        #[test]
        fn split_recombines(v in value(), bseed in any::<u64>(), seed in any::<u64>()) {
            let blinder = random_fr(&mut StdRng::seed_from_u64(bseed));
            check(v, blinder, seed);
        }
    }
}
