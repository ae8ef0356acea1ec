//! Comparison, equality and selection.

use crate::network::{recv_vec, send_vec};
use crate::protocols::arithmetic::mul;
use crate::protocols::binary::{and, map_linear, msb};
use crate::protocols::conversion::bit_inject;
use crate::{Bits, IntRing, MpcError, Party, PartyId, Ring, Shares};

/// `[x < y]` for values in `[0, 2^bits)`, as packed binary shares
/// (bit `i % 64` of word `i / 64`). The difference `x - y` taken mod
/// `2^(bits+1)` has its top bit set exactly when `x < y`, so this is one
/// [`msb`]: `2 + ceil(log2(bits))` rounds.
pub fn lt<T: IntRing>(
    p: &mut Party,
    x: &Shares<T>,
    y: &Shares<T>,
    bits: u32,
) -> Result<Shares<Bits>, MpcError> {
    if bits >= T::BITS {
        return Err(MpcError::InvalidArgument("lt: need bits < ring width"));
    }
    if x.len() != y.len() {
        return Err(MpcError::InvalidArgument("lt: operands differ in length"));
    }
    msb(p, &x.sub(y), bits + 1)
}

/// `[x < c]` for a public bound `c` per element.
pub fn lt_public<T: IntRing>(
    p: &mut Party,
    x: &Shares<T>,
    c: &[T],
    bits: u32,
) -> Result<Shares<Bits>, MpcError> {
    lt(p, x, &Shares::from_public(p.id, c), bits)
}

/// `[x == y] (mod 2^bits)` for `bits <= 64`, packed like [`lt`].
///
/// With `d = x - y = d_0 + d_1 + d_2`, `d == 0` iff `u = d_0 + d_1` equals
/// `v = -d_2`. Party 0 knows `u` and inputs it as an XOR sharing (one
/// message to each other party); `v` is already known to parties 1 and 2,
/// so it is a sharing with the value in component 2. Then `not(u ^ v)` is
/// AND-reduced over its bits in 6 rounds: 7 rounds in all.
pub fn eq<T: IntRing>(
    p: &mut Party,
    x: &Shares<T>,
    y: &Shares<T>,
    bits: u32,
) -> Result<Shares<Bits>, MpcError> {
    p.semi_honest_only("eq (party 0 inputs a masked difference)")?;
    if bits == 0 || bits > 64 {
        return Err(MpcError::InvalidArgument("eq: bits must be in 1..=64"));
    }
    if x.len() != y.len() {
        return Err(MpcError::InvalidArgument("eq: operands differ in length"));
    }
    let n = x.len();
    let mask = if bits == 64 { !0 } else { (1u64 << bits) - 1 };
    let d = x.sub(y);
    let low = |v: T| v.to_u128() as u64 & mask;
    let p0 = PartyId::new(0).unwrap();
    let (p1, p2) = (p0.next(), p0.prev());
    // U: component 0 from the P0/P2 stream, component 1 from the P0/P1
    // stream, component 2 = u ^ U_0 ^ U_1 sent by P0 to P1 and P2.
    p.rounds += 1;
    let u = match p.id.index() {
        0 => {
            let u0: Vec<Bits> = (0..n).map(|_| Bits::random(&mut p.prg_prev)).collect();
            let u1: Vec<Bits> = (0..n).map(|_| Bits::random(&mut p.prg_next)).collect();
            let u2: Vec<Bits> = (0..n)
                .map(|k| Bits(low(d.a[k] + d.b[k])) + u0[k] + u1[k])
                .collect();
            send_vec(p.net.as_mut(), p1, &u2)?;
            send_vec(p.net.as_mut(), p2, &u2)?;
            Shares::new(u0, u1)
        }
        1 => {
            let u1: Vec<Bits> = (0..n).map(|_| Bits::random(&mut p.prg_prev)).collect();
            let u2 = recv_vec(p.net.as_mut(), p0, n)?;
            Shares::new(u1, u2)
        }
        _ => {
            let u2 = recv_vec(p.net.as_mut(), p0, n)?;
            let u0: Vec<Bits> = (0..n).map(|_| Bits::random(&mut p.prg_next)).collect();
            Shares::new(u2, u0)
        }
    };
    let zero = vec![Bits(0); n];
    let v = match p.id.index() {
        0 => Shares::new(zero.clone(), zero),
        1 => Shares::new(zero, d.b.iter().map(|&c| Bits(low(-c))).collect()),
        _ => Shares::new(d.a.iter().map(|&c| Bits(low(-c))).collect(), zero),
    };
    // e = not(u ^ v) with the bits above `bits` forced to 1.
    let mut e = u.add(&v).add_public(p.id, &vec![Bits(!0); n]);
    if bits < 64 {
        // AND with a public mask is local on XOR shares; then set the
        // ignored high bits so they do not affect the AND-reduction.
        e = map_linear(&e, |w| w & mask).add_public(p.id, &vec![Bits(!mask); n]);
    }
    for shift in [32u32, 16, 8, 4, 2, 1] {
        let hi = map_linear(&e, |w| w >> shift);
        e = and(p, &e, &hi)?;
    }
    Ok(pack_bit0(&e))
}

/// Packs bit 0 of each element's word into bit-sliced form (local: the map
/// is XOR-linear).
fn pack_bit0(e: &Shares<Bits>) -> Shares<Bits> {
    let pack = |v: &[Bits]| {
        let mut out = vec![Bits(0); v.len().div_ceil(64)];
        for (i, w) in v.iter().enumerate() {
            out[i / 64].0 |= (w.0 & 1) << (i % 64);
        }
        out
    };
    Shares::new(pack(&e.a), pack(&e.b))
}

/// `[0 <= x < 2^bits]` for every element, `x` read as an unsigned integer
/// mod 2^BITS, packed like [`lt`]. Unlike [`lt`] this is correct for *any*
/// input: it is `not msb(x) and msb(x - 2^bits)` over the full ring width,
/// so it can vet values from untrusted clients. `msb` is run once on both
/// vectors (padded to whole words), then one AND: about 12 rounds.
pub fn in_range<T: IntRing>(
    p: &mut Party,
    x: &Shares<T>,
    bits: u32,
) -> Result<Shares<Bits>, MpcError> {
    if bits == 0 || bits >= T::BITS {
        return Err(MpcError::InvalidArgument(
            "in_range: bits must be in 1..BITS",
        ));
    }
    let n = x.len();
    let padded = n.div_ceil(64) * 64;
    let mut both = x.clone();
    both.a.resize(padded, T::zero());
    both.b.resize(padded, T::zero());
    let shifted = both.add_public(p.id, &vec![-T::from_u128(1u128 << bits); padded]);
    let m = msb(p, &Shares::concat(&[&both, &shifted]), T::BITS)?;
    let w = padded / 64;
    let (top_x, top_shifted) = (m.slice(0..w), m.slice(w..2 * w));
    let not_top_x = top_x.add_public(p.id, &vec![Bits(!0); w]);
    and(p, &not_top_x, &top_shifted)
}

/// `c ? x : y` elementwise, `c` packed binary shares. Bit injection then one
/// multiplication: `y + c * (x - y)`; 3 rounds.
pub fn select<T: Ring>(
    p: &mut Party,
    c: &Shares<Bits>,
    x: &Shares<T>,
    y: &Shares<T>,
) -> Result<Shares<T>, MpcError> {
    let c = bit_inject::<T>(p, c, x.len())?;
    Ok(y.add(&mul(p, &c, &x.sub(y))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::binary::unpack_bits;
    use crate::protocols::open;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Z128, Z64};
    use proptest::prelude::*;
    use std::num::Wrapping;

    fn lt_eq_case(pairs: Vec<(u64, u64)>, bits: u32) {
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1 << bits) - 1
        };
        let pairs: Vec<(u64, u64)> = pairs
            .into_iter()
            .map(|(a, b)| (a & mask, b & mask))
            .collect();
        let x: Vec<Z128> = pairs.iter().map(|p| Wrapping(p.0 as u128)).collect();
        let y: Vec<Z128> = pairs.iter().map(|p| Wrapping(p.1 as u128)).collect();
        let mut rng = test_rng();
        let (xs, ys) = (share_plain(&x, &mut rng), share_plain(&y, &mut rng));
        let out = run3(|p| {
            let i = p.id.index();
            let l = lt(p, &xs[i], &ys[i], bits).unwrap();
            let e = eq(p, &xs[i], &ys[i], bits).unwrap();
            (open(p, &l).unwrap(), open(p, &e).unwrap())
        });
        let n = pairs.len();
        let lt_want: Vec<bool> = pairs.iter().map(|(a, b)| a < b).collect();
        let eq_want: Vec<bool> = pairs.iter().map(|(a, b)| a == b).collect();
        assert_eq!(unpack_bits(&out[2].0, n), lt_want);
        assert_eq!(unpack_bits(&out[2].1, n), eq_want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn in_range_is_right_for_any_input(v in prop::collection::vec(prop_oneof![
            Just(0u128), Just((1 << 53) - 1), Just(1 << 53), Just(u128::MAX), Just(1u128 << 127),
            Just((1u128 << 127) + (1 << 52)), any::<u128>(), 0u128..(1 << 54)], 1..100)) {
            let x: Vec<Z128> = v.iter().map(|&a| Wrapping(a)).collect();
            let sh = share_plain(&x, &mut test_rng());
            let out = run3(|p| {
                let r = in_range(p, &sh[p.id.index()], 53).unwrap();
                open(p, &r).unwrap()
            });
            let want: Vec<bool> = v.iter().map(|&a| a < 1 << 53).collect();
            prop_assert_eq!(unpack_bits(&out[1], v.len()), want);
        }

        #[test]
        fn lt_and_eq_match_plaintext(pairs in prop::collection::vec((crate::protocols::edge_u64(), crate::protocols::edge_u64()), 1..100), bits in prop_oneof![Just(1u32), Just(48), Just(64), 2u32..64]) {
            lt_eq_case(pairs, bits);
        }

        #[test]
        fn duplicates_compare_equal(v in prop::collection::vec(crate::protocols::edge_u64(), 1..30)) {
            lt_eq_case(v.iter().map(|&x| (x, x)).collect(), 64);
        }

        #[test]
        fn select_matches_plaintext(v in prop::collection::vec((any::<bool>(), any::<u64>(), any::<u64>()), 1..70)) {
            let mut rng = test_rng();
            let mut packed = vec![Bits(0); v.len().div_ceil(64)];
            for (i, t) in v.iter().enumerate() {
                packed[i / 64].0 |= (t.0 as u64) << (i % 64);
            }
            let cs = share_plain(&packed, &mut rng);
            let xs = share_plain(&v.iter().map(|t| Wrapping(t.1)).collect::<Vec<Z64>>(), &mut rng);
            let ys = share_plain(&v.iter().map(|t| Wrapping(t.2)).collect::<Vec<Z64>>(), &mut rng);
            let out = run3(|p| {
                let i = p.id.index();
                let s = select(p, &cs[i], &xs[i], &ys[i]).unwrap();
                open(p, &s).unwrap()
            });
            let want: Vec<Z64> = v.iter().map(|t| Wrapping(if t.0 { t.1 } else { t.2 })).collect();
            prop_assert_eq!(&out[0], &want);
        }
    }
}
