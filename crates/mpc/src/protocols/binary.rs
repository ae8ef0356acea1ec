//! Boolean circuits over XOR-shared words ([`Bits`]): an AND gate is a
//! multiplication in GF(2)^64, so 64 gates cost one word on the wire.
//!
//! Two layouts are used:
//! - *word* layout: one word per element holding that element's 64 bits
//!   (adders with shifts, as in ABY3's Kogge-Stone A2B);
//! - *bit-sliced* layout: plane `j` packs bit `j` of 64 elements per word,
//!   so a circuit touching only some bit positions (a comparison's carry
//!   chain) sends only those planes.

use crate::protocols::arithmetic::mul;
use crate::{Bits, IntRing, MpcError, Party, Shares};

/// Elementwise AND. One round.
pub fn and(p: &mut Party, x: &Shares<Bits>, y: &Shares<Bits>) -> Result<Shares<Bits>, MpcError> {
    mul(p, x, y)
}

/// Local: applies `f` to both components (valid for any XOR-linear map,
/// e.g. shifts and masks).
pub fn map_linear(x: &Shares<Bits>, f: impl Fn(u64) -> u64) -> Shares<Bits> {
    Shares {
        a: x.a.iter().map(|v| Bits(f(v.0))).collect(),
        b: x.b.iter().map(|v| Bits(f(v.0))).collect(),
    }
}

/// Local NOT: XOR with the public all-ones word (component 0 only).
pub fn not(p: &Party, x: &Shares<Bits>) -> Shares<Bits> {
    x.add_public(p.id, &vec![Bits(!0); x.len()])
}

/// In-place transpose of a 64x64 bit matrix (row `r` bit `c` moves to row
/// `c` bit `r`): recursive block swaps, Hacker's Delight §7-3.
pub fn transpose64(m: &mut [u64; 64]) {
    let mut j = 32;
    let mut mask: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((m[k] >> j) ^ m[k + j]) & mask;
            m[k] ^= t << j;
            m[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Bit-slices the low `k` bits of `xs`: returns `k` planes of `ceil(n/64)`
/// words each (plane-major); bit `r` of word `w` of plane `j` is bit `j` of
/// element `64 w + r`.
pub fn bitslice<T: IntRing>(xs: &[T], k: u32) -> Vec<Bits> {
    let k = k as usize;
    let words = xs.len().div_ceil(64);
    let mut planes = vec![Bits(0); k * words];
    let mut block = [0u64; 64];
    for (w, chunk) in xs.chunks(64).enumerate() {
        for half in 0..k.div_ceil(64) {
            block.fill(0);
            for (r, x) in chunk.iter().enumerate() {
                block[r] = (x.to_u128() >> (64 * half)) as u64;
            }
            transpose64(&mut block);
            for (j, row) in block.iter().enumerate().take(k - 64 * half) {
                planes[(64 * half + j) * words + w] = Bits(*row);
            }
        }
    }
    planes
}

/// The inverse of [`bitslice`] for XOR-shared planes: `k <= 64` planes of
/// `ceil(n/64)` words back to one word per element (`n` elements).
pub fn unbitslice(planes: &Shares<Bits>, k: usize, n: usize) -> Shares<Bits> {
    let words = n.div_ceil(64);
    let part = |src: &[Bits]| -> Vec<Bits> {
        let mut out = Vec::with_capacity(n);
        let mut block = [0u64; 64];
        for w in 0..words {
            block.fill(0);
            for (j, row) in block.iter_mut().enumerate().take(k) {
                *row = src[j * words + w].0;
            }
            transpose64(&mut block);
            out.extend(block.iter().take(n - 64 * w).map(|&v| Bits(v)));
        }
        out
    };
    Shares::new(part(&planes.a), part(&planes.b))
}

/// The three summands of `x = x_0 + x_1 + x_2` as XOR sharings, in this
/// party's view: summand `s` is known to the two parties holding component
/// `s`, so it is a sharing with the value in component `s` and zeros
/// elsewhere. No communication.
pub(crate) fn summands(p: &Party, a: &[Bits], b: &[Bits]) -> [Shares<Bits>; 3] {
    let i = p.id.index();
    let zero = vec![Bits(0); a.len()];
    std::array::from_fn(|s| Shares {
        a: if s == i { a.to_vec() } else { zero.clone() },
        b: if s == (i + 1) % 3 {
            b.to_vec()
        } else {
            zero.clone()
        },
    })
}

/// Carry-save step: `x + y + z = s + (c << 1)` bitwise, with
/// `s = x ^ y ^ z` and `c = maj(x, y, z) = ((x ^ z) & (y ^ z)) ^ z`.
/// One round of ANDs.
pub(crate) fn carry_save(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    z: &Shares<Bits>,
) -> Result<(Shares<Bits>, Shares<Bits>), MpcError> {
    let s = x.add(y).add(z);
    let c = and(p, &x.add(z), &y.add(z))?.add(z);
    Ok((s, c))
}

/// `x + y + z mod 2^64` on word-layout sharings: carry-save, then a
/// Kogge-Stone parallel-prefix adder. 1 + 1 + 6 rounds.
pub fn add3_words(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    z: &Shares<Bits>,
) -> Result<Shares<Bits>, MpcError> {
    let n = x.len();
    let (s, c) = carry_save(p, x, y, z)?;
    let c = map_linear(&c, |v| v << 1);
    // Generate / propagate per bit position.
    let mut g = and(p, &s, &c)?;
    let mut pr = s.add(&c);
    let sum_no_carry = pr.clone();
    for (level, shift) in [1u32, 2, 4, 8, 16, 32].into_iter().enumerate() {
        let g_sh = map_linear(&g, |v| v << shift);
        if level < 5 {
            // G' = G ^ (P & (G << s)),  P' = P & (P << s): one round for both.
            let p_sh = map_linear(&pr, |v| v << shift);
            let both = and(
                p,
                &Shares::concat(&[&pr, &pr]),
                &Shares::concat(&[&g_sh, &p_sh]),
            )?;
            let parts = both.split(&[n, n]);
            g = g.add(&parts[0]);
            pr = parts[1].clone();
        } else {
            g = g.add(&and(p, &pr, &g_sh)?);
        }
    }
    Ok(sum_no_carry.add(&map_linear(&g, |v| v << 1)))
}

/// Binary shares of bit `k-1` of `d mod 2^k` for each element of an
/// arithmetic sharing, packed 64 per word (bit-sliced result).
///
/// The three components are bit-sliced locally and added with a
/// carry-save step; only the carry into bit `k-1` is then needed, which a
/// reduction tree over (generate, propagate) pairs computes in
/// `ceil(log2(k-1))` rounds, sending about `3k` bits per element in all
/// instead of the `~13 * 64` bits of a full prefix adder.
pub fn msb<T: IntRing>(p: &mut Party, d: &Shares<T>, k: u32) -> Result<Shares<Bits>, MpcError> {
    if k == 0 || k > T::BITS {
        return Err(MpcError::InvalidArgument("msb: bit width out of range"));
    }
    let k = k as usize;
    let w = d.len().div_ceil(64);
    let pa = bitslice(&d.a, k as u32);
    let pb = bitslice(&d.b, k as u32);
    let [x, y, z] = summands(p, &pa, &pb);
    let plane = |s: &Shares<Bits>, j: usize| s.slice(j * w..(j + 1) * w);
    if k == 1 {
        return Ok(plane(&x.add(&y).add(&z), 0));
    }
    // Carries of planes 0..k-1 feed planes 1..k; the top carry is unused.
    let low = (k - 1) * w;
    let (s, c) = carry_save(p, &x.slice(0..low), &y.slice(0..low), &z.slice(0..low))?;
    let s_top = plane(&x.add(&y).add(&z), k - 1);
    // b_j = c_{j-1}; sum bit k-1 = s_{k-1} ^ b_{k-1} ^ carry_{k-1}.
    let top = s_top.add(&plane(&c, k - 2));
    // Positions 0..k-1 of the addition s + (c << 1). At position 0, b = 0 so
    // g = 0, p = s_0; elsewhere g_j = s_j & c_{j-1}, p_j = s_j ^ c_{j-1}.
    let m = k - 1;
    let mut gen = vec![Shares::<Bits>::zeros(w)];
    let mut prop = vec![plane(&s, 0)];
    if m > 1 {
        let s_hi = s.slice(w..m * w);
        let c_lo = c.slice(0..(m - 1) * w);
        let g = and(p, &s_hi, &c_lo)?;
        let pr = s_hi.add(&c_lo);
        for j in 0..m - 1 {
            gen.push(plane(&g, j));
            prop.push(plane(&pr, j));
        }
    }
    let (gen, _) = reduce_groups(p, gen, prop, w, 1)?;
    Ok(top.add(&gen[0]))
}

/// The reduction tree of carry-lookahead adders and comparators: groups of
/// bit positions, least significant first, each with a "generate" `gen`
/// (for a comparison: "less") and a "propagate" `prop` ("equal") of `w`
/// words, combined pairwise `(G, P)_hi o (G, P)_lo = (G_hi ^ P_hi & G_lo,
/// P_hi & P_lo)` until at most `until` groups are left, one round per
/// level. Group 0's `prop` is never needed (its carry-in is 0) and is not
/// computed.
#[allow(clippy::type_complexity)]
pub fn reduce_groups(
    p: &mut Party,
    mut gen: Vec<Shares<Bits>>,
    mut prop: Vec<Shares<Bits>>,
    w: usize,
    until: usize,
) -> Result<(Vec<Shares<Bits>>, Vec<Shares<Bits>>), MpcError> {
    while gen.len() > until.max(1) {
        let pairs = gen.len() / 2;
        let (mut lhs, mut rhs) = (Vec::new(), Vec::new());
        for t in 0..pairs {
            lhs.push(&prop[2 * t + 1]);
            rhs.push(&gen[2 * t]);
            if t > 0 {
                lhs.push(&prop[2 * t + 1]);
                rhs.push(&prop[2 * t]);
            }
        }
        let prod = and(p, &Shares::concat(&lhs), &Shares::concat(&rhs))?;
        let mut at = 0;
        let mut take = || {
            let s = prod.slice(at..at + w);
            at += w;
            s
        };
        let (mut ng, mut np) = (Vec::new(), Vec::new());
        for t in 0..pairs {
            ng.push(gen[2 * t + 1].add(&take()));
            np.push(if t > 0 { take() } else { Shares::zeros(w) });
        }
        if gen.len() % 2 == 1 {
            ng.push(gen.pop().expect("odd group"));
            np.push(prop.pop().expect("odd group"));
        }
        gen = ng;
        prop = np;
    }
    Ok((gen, prop))
}

/// ANDs `segs` (each `w` words) pairwise, level by level, until at most
/// `until` (at least 1) are left: one round per level, all pairs of a
/// level in one batch.
pub fn and_reduce(
    p: &mut Party,
    mut segs: Vec<Shares<Bits>>,
    w: usize,
    until: usize,
) -> Result<Vec<Shares<Bits>>, MpcError> {
    while segs.len() > until.max(1) {
        let half = segs.len() / 2;
        let lhs: Vec<&Shares<Bits>> = segs[..half].iter().collect();
        let rhs: Vec<&Shares<Bits>> = segs[half..2 * half].iter().collect();
        let prod = and(p, &Shares::concat(&lhs), &Shares::concat(&rhs))?;
        let mut next: Vec<Shares<Bits>> =
            (0..half).map(|k| prod.slice(k * w..(k + 1) * w)).collect();
        if segs.len() % 2 == 1 {
            next.push(segs.pop().expect("odd one out"));
        }
        segs = next;
    }
    Ok(segs)
}

/// Unpacks bit-sliced result bits (public, after opening) into booleans.
pub fn unpack_bits(words: &[Bits], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| (words[i / 64].0 >> (i % 64)) & 1 == 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::open;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Z128, Z64};
    use proptest::prelude::*;
    use std::num::Wrapping;

    #[test]
    fn transpose_is_a_transpose() {
        let mut m = [0u64; 64];
        let mut prg = crate::prg::Prg::new([3; 16]);
        for r in m.iter_mut() {
            *r = prg.next_u64();
        }
        let orig = m;
        transpose64(&mut m);
        for (r, row) in orig.iter().enumerate() {
            for (c, col) in m.iter().enumerate() {
                assert_eq!((col >> r) & 1, (row >> c) & 1);
            }
        }
    }

    #[test]
    fn bitslice_places_bits() {
        let xs: Vec<Z128> = (0..130u128)
            .map(|i| Wrapping((i * 0x1234_5678_9abc_def1_u128) << 3))
            .collect();
        let k = 100;
        let planes = bitslice(&xs, k);
        let w = xs.len().div_ceil(64);
        for (i, x) in xs.iter().enumerate() {
            for j in 0..k as usize {
                let bit = (planes[j * w + i / 64].0 >> (i % 64)) & 1;
                assert_eq!(bit as u128, (x.0 >> j) & 1);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn msb_matches_plaintext(v in prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 63), any::<u64>()], 1..150), k in 1u32..=64) {
            let xs: Vec<Z64> = v.iter().map(|&x| Wrapping(x)).collect();
            let sh = share_plain(&xs, &mut test_rng());
            let out = run3(|p| {
                let m = msb(p, &sh[p.id.index()], k).unwrap();
                open(p, &m).unwrap()
            });
            let got = unpack_bits(&out[0], v.len());
            let want: Vec<bool> = v.iter().map(|x| (x >> (k - 1)) & 1 == 1).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn add3_words_adds(v in prop::collection::vec((any::<u64>(), any::<u64>(), prop_oneof![Just(u64::MAX), any::<u64>()]), 1..20)) {
            let mut rng = test_rng();
            let col = |f: fn(&(u64, u64, u64)) -> u64| v.iter().map(|t| Bits(f(t))).collect::<Vec<_>>();
            let xs = share_plain(&col(|t| t.0), &mut rng);
            let ys = share_plain(&col(|t| t.1), &mut rng);
            let zs = share_plain(&col(|t| t.2), &mut rng);
            let out = run3(|p| {
                let i = p.id.index();
                let s = add3_words(p, &xs[i], &ys[i], &zs[i]).unwrap();
                open(p, &s).unwrap()
            });
            let want: Vec<Bits> = v.iter().map(|t| Bits(t.0.wrapping_add(t.1).wrapping_add(t.2))).collect();
            prop_assert_eq!(&out[1], &want);
        }
    }
}
