//! Sorting by shuffling, then opening comparison results (Hamada et al.,
//! ICISC 2012). After a secure shuffle of *distinct* keys, the outcome of
//! every comparison is a function of a uniformly random permutation only, so
//! opening it reveals nothing about the data; a quicksort then finds the
//! sorting permutation with batched comparisons, one batch per level of the
//! recursion (expected ~1.39 n log2 n comparisons, O(log n) levels).
//!
//! Keys are XOR-shared words, compared with [`lt_open`] in the circuit
//! [`choose`] finds cheaper for each level's batch (a ripple chain of one
//! AND per bit for large batches, a log-depth tree for small ones).
//! Segments of at most [`SMALL`] elements compare all their pairs in one
//! batch and are done, which removes the long tail of levels over a few
//! elements.
//!
//! Callers must make keys distinct (e.g. `value * 2^t + original index`):
//! with ties the opened results would reveal which values are equal.

use crate::protocols::binary::unpack_bits;
use crate::protocols::binary_compare::{choose, lt_open, slice_keys};
use crate::protocols::{compare::lt, open};
use crate::{Bits, IntRing, MpcError, Party, Shares};

/// Segments this small compare all pairs at once instead of recursing.
pub const SMALL: usize = 8;

/// The public permutation `order` such that the keys at `order` ascend.
/// `keys[c]` holds bits `64 c ..` of every key (XOR-shared words); keys must
/// be distinct, `< 2^bits`, and securely shuffled.
pub fn sort_order(
    p: &mut Party,
    keys: &[Shares<Bits>],
    bits: u32,
) -> Result<Vec<usize>, MpcError> {
    let n = keys.first().map_or(0, |k| k.len());
    if keys.iter().any(|k| k.len() != n) || (bits as usize).div_ceil(64) > keys.len() || bits == 0
    {
        return Err(MpcError::InvalidArgument(
            "sort_order: keys must be equal columns covering `bits`",
        ));
    }
    let l = bits as usize;
    quicksort(p, n, |p, xs, ys| {
        let circuit = choose(p, xs.len(), l);
        let (x, y) = (slice_keys(keys, xs, l), slice_keys(keys, ys, l));
        Ok(unpack_bits(&lt_open(p, &x, &y, l, circuit)?, xs.len()))
    })
}

/// [`sort_order`] for arithmetic keys (`< 2^bits`, `bits < T::BITS`),
/// compared with [`lt`] on their difference.
pub fn sort_order_arith<T: IntRing>(
    p: &mut Party,
    keys: &Shares<T>,
    bits: u32,
) -> Result<Vec<usize>, MpcError> {
    quicksort(p, keys.len(), |p, xs, ys| {
        let less = lt(p, &keys.gather(xs), &keys.gather(ys), bits)?;
        Ok(unpack_bits(&open(p, &less)?, xs.len()))
    })
}

/// The batched quicksort over `n` positions; `less(p, xs, ys)` opens
/// `key[xs[k]] < key[ys[k]]` for every `k` in one batch.
fn quicksort(
    p: &mut Party,
    n: usize,
    mut less: impl FnMut(&mut Party, &[usize], &[usize]) -> Result<Vec<bool>, MpcError>,
) -> Result<Vec<usize>, MpcError> {
    let mut idx: Vec<usize> = (0..n).collect();
    // Segments [lo, hi) of `idx` still to be sorted.
    let mut segments: Vec<(usize, usize)> = if n > 1 { vec![(0, n)] } else { vec![] };
    while !segments.is_empty() {
        // Large segments: every element against the first (the pivot).
        // Small ones: every pair.
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for &(lo, hi) in &segments {
            if hi - lo <= SMALL {
                for a in lo..hi {
                    for b in a + 1..hi {
                        xs.push(idx[a]);
                        ys.push(idx[b]);
                    }
                }
            } else {
                for &e in &idx[lo + 1..hi] {
                    xs.push(e);
                    ys.push(idx[lo]);
                }
            }
        }
        let less = less(p, &xs, &ys)?;
        let mut at = 0;
        let mut next = Vec::new();
        for &(lo, hi) in &segments {
            if hi - lo <= SMALL {
                // rank[a] = how many of the segment are below element a.
                let s = hi - lo;
                let mut rank = vec![0usize; s];
                for a in 0..s {
                    for b in a + 1..s {
                        if less[at] {
                            rank[b] += 1
                        } else {
                            rank[a] += 1
                        }
                        at += 1;
                    }
                }
                let old: Vec<usize> = idx[lo..hi].to_vec();
                for (a, &e) in old.iter().enumerate() {
                    idx[lo + rank[a]] = e;
                }
                continue;
            }
            let pivot = idx[lo];
            let (mut left, mut right) = (Vec::new(), Vec::new());
            for &e in &idx[lo + 1..hi] {
                if less[at] {
                    left.push(e)
                } else {
                    right.push(e)
                }
                at += 1;
            }
            let mid = lo + left.len();
            idx[lo..mid].copy_from_slice(&left);
            idx[mid] = pivot;
            idx[mid + 1..hi].copy_from_slice(&right);
            if left.len() > 1 {
                next.push((lo, mid));
            }
            if right.len() > 1 {
                next.push((mid + 1, hi));
            }
        }
        segments = next;
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::{open, shuffle};
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use proptest::prelude::*;

    /// Distinct keys `value * 2^8 + index` as two word columns.
    fn keys(v: &[u64]) -> Vec<u128> {
        v.iter()
            .enumerate()
            .map(|(i, &x)| ((x as u128) << 8) | i as u128)
            .collect()
    }

    fn sorted_by_mpc(keys: &[u128], bits: u32, shuffled: bool) -> Vec<u128> {
        let mut rng = test_rng();
        let col = |c: u32| -> Vec<Bits> { keys.iter().map(|k| Bits((k >> (64 * c)) as u64)).collect() };
        let (lo, hi) = (share_plain(&col(0), &mut rng), share_plain(&col(1), &mut rng));
        let out = run3(|p| {
            let i = p.id.index();
            let mut cols = vec![lo[i].clone(), hi[i].clone()];
            if shuffled {
                cols = shuffle(p, &cols).unwrap();
            }
            let order = sort_order(p, &cols, bits).unwrap();
            let lo = open(p, &cols[0].gather(&order)).unwrap();
            let hi = open(p, &cols[1].gather(&order)).unwrap();
            lo.iter().zip(&hi).map(|(a, b)| a.0 as u128 | ((b.0 as u128) << 64)).collect::<Vec<_>>()
        });
        assert_eq!(out[0], out[1]);
        assert_eq!(out[1], out[2]);
        out[0].clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn shuffle_then_sort_sorts(v in prop::collection::vec(prop_oneof![Just(0u64), Just((1 << 48) - 1), Just(u64::MAX), 0u64..4, any::<u64>()], 1..200)) {
            let k = keys(&v);
            let mut want = k.clone();
            want.sort_unstable();
            prop_assert_eq!(sorted_by_mpc(&k, 72, true), want);
        }
    }

    #[test]
    fn sorted_and_reversed_inputs_and_small_segments() {
        // Without the shuffle: the worst case of a first-element pivot
        // still sorts (only slower); sizes around SMALL exercise both paths.
        for n in [2usize, SMALL - 1, SMALL, SMALL + 1, 40] {
            let asc: Vec<u64> = (0..n as u64).collect();
            let k = keys(&asc);
            assert_eq!(sorted_by_mpc(&k, 72, false), k);
            let desc: Vec<u64> = asc.iter().rev().copied().collect();
            let mut want = keys(&desc);
            want.sort_unstable();
            assert_eq!(sorted_by_mpc(&keys(&desc), 72, false), want);
        }
    }

    #[test]
    fn arithmetic_keys_sort_too() {
        use crate::Z128;
        let v: Vec<u64> = (0..50u64).map(|i| (i * 7919) % 53).collect();
        let k: Vec<Z128> = keys(&v).into_iter().map(Z128::from_u128).collect();
        let sh = share_plain(&k, &mut test_rng());
        let out = run3(|p| {
            let s = shuffle(p, &[sh[p.id.index()].clone()]).unwrap().remove(0);
            let order = sort_order_arith(p, &s, 72).unwrap();
            open(p, &s.gather(&order)).unwrap()
        });
        let mut want = k.clone();
        want.sort_by_key(|x| x.0);
        assert_eq!(out[0], want);
    }

    #[test]
    fn single_and_empty_inputs_and_bad_arguments() {
        for n in [0usize, 1] {
            let words: Vec<Bits> = (0..n as u64).map(Bits).collect();
            let sh = share_plain(&words, &mut test_rng());
            let out = run3(|p| sort_order(p, &[sh[p.id.index()].clone()], 10).unwrap());
            assert_eq!(out[0], (0..n).collect::<Vec<_>>());
        }
        let sh = share_plain(&[Bits(1), Bits(2)], &mut test_rng());
        let out = run3(|p| sort_order(p, &[sh[p.id.index()].clone()], 65).is_err());
        assert!(out.iter().all(|&e| e), "65 bits need two columns");
    }
}
