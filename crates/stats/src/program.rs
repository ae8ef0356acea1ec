//! The MPC program: one shuffle, one sort, one dot product, a batched
//! binary search per histogram bound, and one final opening.

use std::num::Wrapping;

use triad_mpc::protocols::{binary::unpack_bits, dot, in_range, lt, open, shuffle, sort_order};
use triad_mpc::{Party, Shares, Z128};

use crate::{finish::derive, nearest_rank, StatsError, StatsResult, StatsSpec, VALUE_BITS};

/// Computes the statistics of `values` (shares of signed fixed-point
/// integers in two's complement mod 2^128, `|v| < 2^VALUE_BITS`).
pub fn compute(
    p: &mut Party,
    values: &Shares<Z128>,
    spec: &StatsSpec,
) -> Result<StatsResult, StatsError> {
    spec.validate()?;
    let n = values.len();
    if n == 0 {
        return Err(StatsError::Empty);
    }
    if n > 1 << 23 {
        return Err(StatsError::TooMany(n));
    }
    // Sort keys: (v + 2^VALUE_BITS) * 2^t + original index. The index makes
    // keys distinct, so the opened comparisons after the shuffle reveal only
    // a uniformly random permutation, even among equal values.
    let t = usize::BITS - (n - 1).leading_zeros().min(usize::BITS - 1);
    let key_bits = VALUE_BITS + 1 + t;
    let offset = Wrapping(1u128 << VALUE_BITS);
    // Range check first: an out-of-range key would make the opened sort
    // comparisons inconsistent and leak (docs/security.md). Which inputs
    // fail is opened: it says nothing about the in-range (honest) values.
    let shifted = values.add_public(p.id, &vec![offset; n]);
    let ok = in_range(p, &shifted, VALUE_BITS + 1)?;
    let ok = unpack_bits(&open(p, &ok)?, n);
    let bad: Vec<usize> = (0..n).filter(|&k| !ok[k]).collect();
    if !bad.is_empty() {
        return Err(StatsError::OutOfRange(bad));
    }
    let idx: Vec<Z128> = (0..n as u128).map(Wrapping).collect();
    let keys = shifted.scale(Wrapping(1u128 << t)).add_public(p.id, &idx);

    let sum_squares = dot(p, values, values)?;
    let mut shuffled = shuffle(p, &[values.clone(), keys])?;
    let keys = shuffled.pop().unwrap();
    let vals = shuffled.pop().unwrap();
    let order = sort_order(p, &keys, key_bits)?;
    let (sorted_vals, sorted_keys) = (vals.gather(&order), keys.gather(&order));

    // Histogram: for each bound b, the number of values < b, by a batched
    // binary search over the sorted keys (compare with (b + offset) * 2^t).
    let bounds: Vec<Z128> = spec
        .histogram_bounds
        .iter()
        .map(|&b| Wrapping(((b as i128 + (1i128 << VALUE_BITS)) as u128) << t))
        .collect();
    let mut lo = vec![0usize; bounds.len()];
    let mut hi = vec![n; bounds.len()];
    loop {
        let active: Vec<usize> = (0..bounds.len()).filter(|&j| lo[j] < hi[j]).collect();
        if active.is_empty() {
            break;
        }
        let mids: Vec<usize> = active.iter().map(|&j| (lo[j] + hi[j]) / 2).collect();
        let c: Vec<Z128> = active.iter().map(|&j| bounds[j]).collect();
        let less = lt(
            p,
            &sorted_keys.gather(&mids),
            &Shares::from_public(p.id, &c),
            key_bits,
        )?;
        let less = unpack_bits(&open(p, &less)?, active.len());
        for ((&j, &m), l) in active.iter().zip(&mids).zip(less) {
            if l {
                lo[j] = m + 1
            } else {
                hi[j] = m
            }
        }
    }

    // Order statistics to open: min, max, the median pair, the quantiles.
    let mut picks = vec![0, n - 1, (n - 1) / 2, n / 2];
    picks.extend(spec.quantiles.iter().map(|&q| nearest_rank(q, n) - 1));
    let weights: Vec<Z128> = (1..=n as u128).map(Wrapping).collect();
    let outputs = Shares::concat(&[
        &values.sum(),
        &sum_squares,
        &sorted_vals.weighted_sum(&weights),
        &sorted_vals.gather(&picks),
    ]);
    let opened = open(p, &outputs)?;
    let signed = |v: Z128| v.0 as i128;
    let stat = |k: usize| signed(opened[3 + k]) as i64;
    let (sum, sum_sq, weighted) = (signed(opened[0]), opened[1].0, signed(opened[2]));
    let median_pair = (stat(2), stat(3));
    let mut histogram = Vec::with_capacity(bounds.len() + 1);
    let mut prev = 0u64;
    for &c in &lo {
        histogram.push(c as u64 - prev);
        prev = c as u64;
    }
    histogram.push(n as u64 - prev);
    Ok(StatsResult {
        count: n as u64,
        sum,
        sum_squares: sum_sq,
        min: stat(0),
        max: stat(1),
        median_pair,
        quantiles: spec
            .quantiles
            .iter()
            .enumerate()
            .map(|(k, &q)| (q, stat(4 + k)))
            .collect(),
        histogram,
        rank_weighted_sum: weighted,
        derived: derive(n as u64, sum, sum_sq, median_pair, weighted),
    })
}
