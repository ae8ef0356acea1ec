//! Sorting by shuffling, then opening comparison results (Hamada et al.,
//! ICISC 2012). After a secure shuffle of *distinct* keys, the outcome of
//! every comparison is a function of a uniformly random permutation only, so
//! opening it reveals nothing about the data; a quicksort then finds the
//! sorting permutation with batched comparisons, one batch per level of the
//! recursion (expected ~1.39 n log2 n comparisons, O(log n) levels).
//!
//! Callers must make keys distinct (e.g. `value * 2^t + original index`):
//! with ties the opened results would reveal which values are equal.

use crate::protocols::{binary::unpack_bits, compare::lt, open};
use crate::{IntRing, MpcError, Party, Shares};

/// The public permutation `order` such that `keys.gather(&order)` is
/// ascending. `keys` must be distinct, `< 2^bits`, and securely shuffled.
pub fn sort_order<T: IntRing>(
    p: &mut Party,
    keys: &Shares<T>,
    bits: u32,
) -> Result<Vec<usize>, MpcError> {
    let n = keys.len();
    let mut idx: Vec<usize> = (0..n).collect();
    // Segments [lo, hi) of `idx` still to be sorted.
    let mut segments: Vec<(usize, usize)> = if n > 1 { vec![(0, n)] } else { vec![] };
    while !segments.is_empty() {
        // Compare every element of a segment with its first element.
        let (mut elems, mut pivots) = (Vec::new(), Vec::new());
        for &(lo, hi) in &segments {
            for &e in &idx[lo + 1..hi] {
                elems.push(e);
                pivots.push(idx[lo]);
            }
        }
        let less = lt(p, &keys.gather(&elems), &keys.gather(&pivots), bits)?;
        let less = unpack_bits(&open(p, &less)?, elems.len());
        let mut at = 0;
        let mut next = Vec::new();
        for &(lo, hi) in &segments {
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
    use crate::protocols::shuffle;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Ring, Z128};
    use proptest::prelude::*;
    use std::num::Wrapping;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn shuffle_then_sort_sorts(v in prop::collection::vec(prop_oneof![Just(0u64), Just((1 << 48) - 1), 0u64..4, any::<u64>()], 1..120)) {
            // Distinct keys: value * 2^8 + index (values up to 2^64, n < 2^8).
            let keys: Vec<Z128> = v.iter().enumerate()
                .map(|(i, &x)| Wrapping(((x as u128) << 8) | i as u128)).collect();
            let sh = share_plain(&keys, &mut test_rng());
            let out = run3(|p| {
                let s = shuffle(p, &[sh[p.id.index()].clone()]).unwrap().remove(0);
                let order = sort_order(p, &s, 72).unwrap();
                open(p, &s.gather(&order)).unwrap()
            });
            let mut want = keys.clone();
            want.sort_by_key(|k| k.0);
            prop_assert_eq!(&out[0], &want);
            prop_assert_eq!(&out[1], &want);
        }
    }

    #[test]
    fn single_and_empty_inputs() {
        for n in [0usize, 1] {
            let keys: Vec<Z128> = (0..n as u64).map(Z128::from_u64).collect();
            let sh = share_plain(&keys, &mut test_rng());
            let out = run3(|p| sort_order(p, &sh[p.id.index()], 10).unwrap());
            assert_eq!(out[0], (0..n).collect::<Vec<_>>());
        }
    }
}
