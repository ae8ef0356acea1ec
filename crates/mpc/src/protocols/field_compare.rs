//! Sign and zero tests of bounded `F_r` values with secret results:
//! the building blocks for moving the polls' state steps from Z_2^128
//! into `F_r`, where every product is checked.
//!
//! For `x` known to lie in `(−2^k, 2^k)`, `D = x + 2^k` is in
//! `[0, 2^(k+1))`. A random `R` below `2^L`, `L ≥ k + 1 + σ` with
//! `σ = 40 + ceil(log2 n)` for a batch of `n` (so the whole batch, not each
//! element, is within `2^-40`), is drawn as XOR-shared bits
//! ([`random_shares`]) in equal chunks of at most 64 bits (at most four),
//! brought into `F_r` with one [`b2a_fr`] (whose own masks add their
//! `2^-40` per run); `c = D + R` is opened (no wrap: `c < 2^198 < r`). The
//! distribution of `c` is within `2^-40` of that of `R + 2^k` whatever the
//! values `x`; this is the masked-opening conversion of
//! Catrina and de Hoogh (SCN 2010) and of ABY3 §5.3, with the comparison
//! done on the mask's bits. Then, on the bits of `R` (secret) and of `c`
//! (public):
//! - `x < 0` iff bit `k` of `D = c − R` is 0, and that bit is
//!   `c_k ^ r_k ^ b_k` with `b_k` the borrow into position `k`: a ripple
//!   of `b_{j+1} = maj(¬c_j, r_j, b_j) = (¬c_j ∧ (r_j ⊕ b_j)) ⊕ (r_j ∧ b_j)`
//!   (one AND per bit, the public part local): `k` ANDs and `k` rounds;
//! - `x = 0` iff `D = 2^k` iff `R ≡ c − 2^k (mod 2^(k+1))`, because `D` is
//!   determined by its residue: an equality of `k + 1` secret bits with
//!   public ones, an AND tree: `k` ANDs, `ceil(log2(k+1))` rounds.
//!
//! In malicious mode every AND (binary) and the conversion's gates are
//! recorded and checked before the opening of `c` and before any later
//! opening; `c` is opened with redundancy ([`open`]). The caller must
//! guarantee the bound on `x` (as [`b2a_fr`]'s callers guarantee theirs):
//! an `x` outside it gets a wrong result **and leaks**, because `c` no
//! longer hides its high bits (and may wrap mod `r`). The polls' state
//! step guarantees its bounds by construction (differences of values below
//! 2^50 with `k = 51`, the credit balance below 2^101 with `k = 101`).

use crate::protocols::arithmetic::{open, random_shares};
use crate::protocols::binary::{and, and_reduce, not};
use crate::protocols::conversion::b2a_fr;
use crate::{Bits, Fr, MpcError, Party, Shares};
use ark_ff::{Field, PrimeField};

/// The largest `k`: the mask is then at most 193 bits, `40 + 24` more
/// than `x + 2^k` needs, for batches of up to [`MAX_BATCH`].
pub const MAX_BITS: usize = 128;

/// The largest batch.
pub const MAX_BATCH: usize = 1 << 23;

/// Statistical security of the masked opening per batch, in bits.
const SIGMA: usize = 40;

/// `x + 2^k` masked and opened, with the mask's bits.
struct Masked {
    /// The opened `c`, as four little-endian limbs per element.
    c: Vec<[u64; 4]>,
    /// The mask's bits, plane-major: bit `t` of every element (padded to
    /// whole words) is `bits.slice(plane(t))`.
    bits: Shares<Bits>,
    /// Words per plane of one chunk.
    w: usize,
    /// Chunks, and bits per chunk.
    chunks: usize,
    width: usize,
}

impl Masked {
    /// Bit `t` of the mask, all elements, packed.
    fn plane(&self, t: usize) -> Shares<Bits> {
        let (chunk, j) = (t / self.width, t % self.width);
        let start = (j * self.chunks + chunk) * self.w;
        self.bits.slice(start..start + self.w)
    }

    /// Bit `t` of every opened `c`, packed like [`Masked::plane`].
    fn public_plane(&self, t: usize) -> Vec<Bits> {
        public_plane(&self.c, t, self.w)
    }
}

/// Bit `t` of each of `values`, packed into `w` words.
fn public_plane(values: &[[u64; 4]], t: usize, w: usize) -> Vec<Bits> {
    let mut out = vec![Bits(0); w];
    for (e, c) in values.iter().enumerate() {
        out[e / 64].0 |= ((c[t / 64] >> (t % 64)) & 1) << (e % 64);
    }
    out
}

fn mask_and_open(p: &mut Party, x: &Shares<Fr>, k: usize) -> Result<Masked, MpcError> {
    if k == 0 || k > MAX_BITS {
        return Err(MpcError::InvalidArgument(
            "field comparison: k must be in 1..=128",
        ));
    }
    let n = x.len();
    if n > MAX_BATCH {
        return Err(MpcError::InvalidArgument(
            "field comparison: at most 2^23 values per batch",
        ));
    }
    let w = n.div_ceil(64);
    let np = w * 64;
    let log_n = (usize::BITS - n.max(1).leading_zeros()) as usize;
    let bits_needed = k + 1 + SIGMA + log_n;
    let chunks = bits_needed.div_ceil(64);
    let width = bits_needed.div_ceil(chunks);
    // `width` planes of chunks·w words: element c·np + e is chunk c of the
    // mask of element e.
    let bits = random_shares::<Bits>(p, width * chunks * w);
    let parts = b2a_fr(p, &bits, width, chunks * np)?;
    let step = Fr::from(2u64).pow([width as u64]);
    let mut r = parts.slice(0..n);
    let mut scale = step;
    for c in 1..chunks {
        r = r.add(&parts.slice(c * np..c * np + n).scale(scale));
        scale *= step;
    }
    let offset = Fr::from(2u64).pow([k as u64]);
    let masked = x.add(&r).add_public(p.id, &vec![offset; n]);
    let c = open(p, &masked)?
        .iter()
        .map(|v| v.into_bigint().0)
        .collect();
    Ok(Masked {
        c,
        bits,
        w,
        chunks,
        width,
    })
}

/// `[x < 0]` for `x` in `(−2^k, 2^k)`, `1 ≤ k ≤ MAX_BITS`: packed secret
/// bits (bit `i % 64` of word `i / 64`; bits past `x.len()` are
/// unspecified). See the module docs: `k − 1` AND gates and `k − 1`
/// rounds per batch after the mask's conversion and opening.
pub fn is_negative_fr(p: &mut Party, x: &Shares<Fr>, k: usize) -> Result<Shares<Bits>, MpcError> {
    let m = mask_and_open(p, x, k)?;
    // ¬c_j ∧ y for public c_j: local.
    let and_not_c = |y: &Shares<Bits>, j: usize| -> Shares<Bits> {
        let not_c: Vec<u64> = m.public_plane(j).iter().map(|b| !b.0).collect();
        let f = |v: &[Bits]| v.iter().zip(&not_c).map(|(v, m)| Bits(v.0 & m)).collect();
        Shares::new(f(&y.a), f(&y.b))
    };
    // b_1 = maj(¬c_0, r_0, 0) = ¬c_0 ∧ r_0.
    let mut borrow = and_not_c(&m.plane(0), 0);
    for j in 1..k {
        let r = m.plane(j);
        let both = and(p, &r, &borrow)?;
        let public_part = and_not_c(&r.add(&borrow), j);
        borrow = public_part.add(&both);
    }
    // Bit k of D, complemented.
    let bit_k = m.plane(k).add(&borrow).add_public(p.id, &m.public_plane(k));
    Ok(not(p, &bit_k))
}

/// `[x = 0]` for `x` in `(−2^k, 2^k)`, `1 ≤ k ≤ MAX_BITS`: packed secret
/// bits as [`is_negative_fr`]. About `k` AND gates and `ceil(log2(k+1))`
/// rounds after the mask's conversion.
pub fn is_zero_fr(p: &mut Party, x: &Shares<Fr>, k: usize) -> Result<Shares<Bits>, MpcError> {
    let m = mask_and_open(p, x, k)?;
    // Bits 0..=k of c − 2^k (mod 2^(k+1)), then [r_t == that bit].
    let target: Vec<[u64; 4]> = m.c.iter().map(|c| sub_pow2(c, k)).collect();
    let same: Vec<Shares<Bits>> = (0..=k)
        .map(|t| {
            let differs = m.plane(t).add_public(p.id, &public_plane(&target, t, m.w));
            not(p, &differs)
        })
        .collect();
    let mut all = and_reduce(p, same, m.w, 1)?;
    Ok(all.pop().expect("k + 1 ≥ 2 planes"))
}

/// `c − 2^k` over 256-bit little-endian limbs (wrapping; only the low
/// `k + 1` bits are used).
fn sub_pow2(c: &[u64; 4], k: usize) -> [u64; 4] {
    let mut out = *c;
    let mut borrow = 1u64 << (k % 64);
    for limb in out.iter_mut().skip(k / 64) {
        let (v, o) = limb.overflowing_sub(borrow);
        *limb = v;
        borrow = o as u64;
        if borrow == 0 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::binary::unpack_bits;
    use crate::share::share_plain;
    use crate::testing::{assert_caught, run3, run3_cheating, test_rng, Fault};
    use crate::{PartyId, Security};
    use proptest::prelude::*;
    use std::time::Duration;

    fn fr(v: i128) -> Fr {
        if v < 0 {
            -Fr::from(v.unsigned_abs())
        } else {
            Fr::from(v as u128)
        }
    }

    /// Both tests opened, in the given mode.
    fn run(values: &[Fr], k: usize, security: Security) -> (Vec<bool>, Vec<bool>) {
        let sh = share_plain(values, &mut test_rng());
        let n = values.len();
        let out = run3(|p| {
            p.security = security;
            let x = &sh[p.id.index()];
            let neg = is_negative_fr(p, x, k).unwrap();
            let zero = is_zero_fr(p, x, k).unwrap();
            let opened = open(p, &Shares::concat(&[&neg, &zero])).unwrap();
            let w = n.div_ceil(64);
            (
                unpack_bits(&opened[..w], n),
                unpack_bits(&opened[w..], n),
                p.unchecked_gates() + p.unchecked_products(),
            )
        });
        for o in &out[1..] {
            assert_eq!((&o.0, &o.1), (&out[0].0, &out[0].1));
        }
        assert_eq!(out[0].2, 0, "everything recorded was checked");
        (out[0].0.clone(), out[0].1.clone())
    }

    fn value(k: u32) -> impl Strategy<Value = i128> {
        let top = (1i128 << k) - 1;
        prop_oneof![
            Just(0i128),
            Just(1),
            Just(-1),
            Just(top),
            Just(-top),
            (-top..=top),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn sign_and_zero_tests_match_the_oracle(
            (k, v) in prop_oneof![Just(1u32), Just(2), Just(63), Just(64), Just(65), Just(101), Just(126)]
                .prop_flat_map(|k| (Just(k), prop::collection::vec(value(k), 1..140))),
            malicious in any::<bool>(),
        ) {
            let values: Vec<Fr> = v.iter().map(|&x| fr(x)).collect();
            let mode = if malicious { Security::Malicious } else { Security::SemiHonest };
            let (neg, zero) = run(&values, k as usize, mode);
            prop_assert_eq!(neg, v.iter().map(|&x| x < 0).collect::<Vec<_>>());
            prop_assert_eq!(zero, v.iter().map(|&x| x == 0).collect::<Vec<_>>());
        }
    }

    /// The widest bound: ±(2^128 − 1), ±2^127, ±1, 0.
    #[test]
    fn the_widest_bound() {
        let top = Fr::from(2u64).pow([MAX_BITS as u64]) - Fr::from(1u64);
        let half = Fr::from(2u64).pow([MAX_BITS as u64 - 1]);
        let one = Fr::from(1u64);
        let values = [top, -top, half, -half, one, -one, Fr::from(0u64)];
        let (neg, zero) = run(&values, MAX_BITS, Security::Malicious);
        assert_eq!(neg, [false, true, false, true, false, true, false]);
        assert_eq!(zero, [false, false, false, false, false, false, true]);
    }

    #[test]
    fn bounds_outside_the_range_are_refused() {
        let sh = share_plain(&[Fr::from(3u64)], &mut test_rng());
        let out = run3(|p| {
            let x = &sh[p.id.index()];
            (
                is_negative_fr(p, x, 0).map(|_| ()),
                is_zero_fr(p, x, MAX_BITS + 1).map(|_| ()),
            )
        });
        for (a, b) in out {
            assert!(matches!(a, Err(MpcError::InvalidArgument(_))));
            assert!(matches!(b, Err(MpcError::InvalidArgument(_))));
        }
    }

    /// Every message of every party, flipped or replaced (and a sample
    /// dropped): an honest party aborts, and none opens anything but the
    /// honest result.
    #[test]
    fn every_tampered_message_aborts() {
        let v: Vec<i128> = vec![-5, 0, 7, -1023, 1023, 1, 0, -2];
        let values: Vec<Fr> = v.iter().map(|&x| fr(x)).collect();
        let sh = share_plain(&values, &mut test_rng());
        // Bits past the 8 values are unspecified (they follow the random
        // masks), so only the 8 are compared.
        let victim = |p: &mut Party| -> Result<Vec<bool>, MpcError> {
            p.security = Security::Malicious;
            let x = &sh[p.id.index()];
            let neg = is_negative_fr(p, x, 10)?;
            let zero = is_zero_fr(p, x, 10)?;
            let opened = open(p, &Shares::concat(&[&neg, &zero]))?;
            let mut out = unpack_bits(&opened[..1], 8);
            out.extend(unpack_bits(&opened[1..], 8));
            Ok(out)
        };
        let honest = run3(|p| victim(p).unwrap());
        let sent = run3(|p| {
            victim(p).unwrap();
            p.net.stats().messages_sent
        });
        let mut runs = 0;
        for who in PartyId::ALL {
            for nth in 2..=sent[who.index()] {
                let mut faults = vec![Fault::Flip { at: 0, mask: 0x04 }, Fault::Replace { at: 9 }];
                if nth % 53 == 0 {
                    faults.push(Fault::Drop);
                }
                for fault in faults {
                    runs += 1;
                    let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
                    assert_caught(
                        &out,
                        &honest[0],
                        format!("{who} {fault:?} on message {nth}"),
                    );
                }
            }
        }
        assert!(runs > 100, "only {runs} runs");
    }
}
