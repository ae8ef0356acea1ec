//! The MPC program: one conversion to binary (bit-sliced), one shuffle, one sort, one
//! dot product, a k-ary search per histogram bound, and one final opening.
//!
//! Semi-honest, the values ride through the shuffle as an arithmetic column
//! mod 2^128 next to the keys. Malicious (see docs/security.md), only the
//! XOR-shared keys are shuffled ([`shuffle_bits`], tags checked), and the
//! sorted values come back from the keys' value bits into `F_r`
//! ([`b2a_fr`]), where every product is checked: the sum, `Σv²` and
//! `Σ i·v_(i)` are exact there (all far below the modulus).

use std::num::Wrapping;

use triad_mpc::protocols::binary::{
    and_reduce, bitslice, map_linear, not, unbitslice, unpack_bits,
};
use triad_mpc::protocols::binary_compare::{and_open, choose, lt_open, slice_keys, slice_public};
use triad_mpc::protocols::conversion::a2b_sliced;
use triad_mpc::protocols::shuffle::shuffle_mixed;
use triad_mpc::protocols::{b2a_fr, dot, open, shuffle_bits, sort_order};
use triad_mpc::{Bits, Fr, Party, Security, Shares, Z128, Z64};

use crate::{finish::derive, nearest_rank, StatsError, StatsResult, StatsSpec, VALUE_BITS};

/// Probes per bound and step of the histogram search: a bound's count is
/// found in `ceil(log_256 n)` batches of comparisons.
const FANOUT: usize = 255;

/// Computes the statistics of `values`: shares of signed fixed-point
/// integers in two's complement mod 2^128, each the sign extension of a
/// 64-bit word (as intake derives them) with `|v| < 2^VALUE_BITS`.
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
    // The 64-bit words, XOR-shared and bit-sliced, then the range check on
    // them: bits 52..63 all equal (the sign). Which inputs fail is opened:
    // it says nothing about the in-range (honest) values.
    let low = Shares::new(
        values
            .a
            .iter()
            .map(|v| Wrapping(v.0 as u64))
            .collect::<Vec<Z64>>(),
        values.b.iter().map(|v| Wrapping(v.0 as u64)).collect(),
    );
    let planes = a2b_sliced(p, &low)?;
    let bad = out_of_range(p, &planes, n)?;
    if !bad.is_empty() {
        return Err(StatsError::OutOfRange(bad));
    }
    // Sort keys, local: the offset-binary value (bit 52 flipped) above a
    // t-bit original index. The index makes keys distinct, so the opened
    // comparisons after the shuffle reveal only a uniformly random
    // permutation, even among equal values.
    let t = usize::BITS - (n - 1).leading_zeros().min(usize::BITS - 1);
    let key_bits = VALUE_BITS + 1 + t;
    let value_mask = (1u64 << (VALUE_BITS + 1)) - 1;
    let words = unbitslice(&planes, 64, n);
    let offset_binary =
        map_linear(&words, |v| v & value_mask).add_public(p.id, &vec![Bits(1 << VALUE_BITS); n]);
    let idx: Vec<Bits> = (0..n as u64).map(Bits).collect();
    let key_lo = map_linear(&offset_binary, |v| v << t).add_public(p.id, &idx);
    let key_hi = map_linear(&offset_binary, |v| v >> (64 - t));

    let keys = [key_lo, key_hi];
    let bound_keys: Vec<u128> = spec
        .histogram_bounds
        .iter()
        .map(|&b| ((b as i128 + (1i128 << VALUE_BITS)) as u128) << t)
        .collect();
    // Order statistics to open: min, max, the median pair, the quantiles.
    let mut picks = vec![0, n - 1, (n - 1) / 2, n / 2];
    picks.extend(spec.quantiles.iter().map(|&q| nearest_rank(q, n) - 1));
    let m = match p.security {
        Security::SemiHonest => {
            moments_semi_honest(p, values, keys, key_bits, &bound_keys, &picks)?
        }
        Security::Malicious => moments_checked(p, keys, t, key_bits, &bound_keys, &picks)?,
    };
    let stat = |k: usize| m.picked[k];
    let median_pair = (stat(2), stat(3));
    let mut histogram = Vec::with_capacity(m.below.len() + 1);
    let mut prev = 0u64;
    for &c in &m.below {
        histogram.push(c as u64 - prev);
        prev = c as u64;
    }
    histogram.push(n as u64 - prev);
    Ok(StatsResult {
        count: n as u64,
        sum: m.sum,
        sum_squares: m.sum_squares,
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
        rank_weighted_sum: m.weighted,
        derived: derive(n as u64, m.sum, m.sum_squares, median_pair, m.weighted),
    })
}

/// What the two variants open: the sums, the picked order statistics and
/// the histogram's counts below each bound.
struct Moments {
    sum: i128,
    sum_squares: u128,
    weighted: i128,
    picked: Vec<i64>,
    below: Vec<usize>,
}

/// Semi-honest: values shuffled with the keys as a Z_2^128 column.
fn moments_semi_honest(
    p: &mut Party,
    values: &Shares<Z128>,
    keys: [Shares<Bits>; 2],
    key_bits: u32,
    bound_keys: &[u128],
    picks: &[usize],
) -> Result<Moments, StatsError> {
    let n = values.len();
    let sum_squares = dot(p, values, values)?;
    let (mut vals, keys) = shuffle_mixed(p, std::slice::from_ref(values), &keys)?;
    let vals = vals.pop().expect("one column");
    let order = sort_order(p, &keys, key_bits)?;
    let sorted_vals = vals.gather(&order);
    // Histogram: for each bound b, the number of values < b, i.e. of keys
    // below (b + offset) * 2^t (one more bit: b may be 2^VALUE_BITS).
    let below = count_below(p, &keys, &order, bound_keys, key_bits as usize + 1)?;
    let weights: Vec<Z128> = (1..=n as u128).map(Wrapping).collect();
    let outputs = Shares::concat(&[
        &values.sum(),
        &sum_squares,
        &sorted_vals.weighted_sum(&weights),
        &sorted_vals.gather(picks),
    ]);
    let opened = open(p, &outputs)?;
    let signed = |v: Z128| v.0 as i128;
    Ok(Moments {
        sum: signed(opened[0]),
        sum_squares: opened[1].0,
        weighted: signed(opened[2]),
        picked: opened[3..].iter().map(|&v| signed(v) as i64).collect(),
        below,
    })
}

/// Malicious-secure: only the keys are shuffled (tags checked); the sorted
/// values are recovered from the keys' value bits into `F_r`, where the
/// sum of squares is a checked dot product and the rest is linear.
fn moments_checked(
    p: &mut Party,
    keys: [Shares<Bits>; 2],
    t: u32,
    key_bits: u32,
    bound_keys: &[u128],
    picks: &[usize],
) -> Result<Moments, StatsError> {
    let n = keys[0].len();
    let keys = shuffle_bits(p, &keys)?;
    let order = sort_order(p, &keys, key_bits)?;
    let below = count_below(p, &keys, &order, bound_keys, key_bits as usize + 1)?;
    // The offset-binary value: key bits t..t+VALUE_BITS+1 (local).
    let width = VALUE_BITS + 1;
    let mask = (1u64 << width) - 1;
    let low = map_linear(&keys[0], |k| k >> t);
    let high = map_linear(&keys[1], |k| if t == 0 { 0 } else { k << (64 - t) });
    let offset_binary = map_linear(&low.add(&high), |v| v & mask).gather(&order);
    let slice = |v: &[Bits]| -> Vec<Bits> {
        let words: Vec<Z64> = v.iter().map(|b| Wrapping(b.0)).collect();
        bitslice(&words, width)
    };
    let planes = Shares::new(slice(&offset_binary.a), slice(&offset_binary.b));
    let offset = Fr::from(1u64 << VALUE_BITS);
    let sorted = b2a_fr(p, &planes, width as usize, n)?.add_public(p.id, &vec![-offset; n]);
    let sum_squares = dot(p, &sorted, &sorted)?;
    let weights: Vec<Fr> = (1..=n as u64).map(Fr::from).collect();
    let outputs = Shares::concat(&[
        &sorted.sum(),
        &sum_squares,
        &sorted.weighted_sum(&weights),
        &sorted.gather(picks),
    ]);
    let opened = open(p, &outputs)?;
    let outside = || {
        StatsError::Mpc(triad_mpc::MpcError::InvalidArgument(
            "a statistic outside the integers it can be",
        ))
    };
    let int = |v: &Fr| triad_crypto::fr_to_i128(v).ok_or_else(outside);
    Ok(Moments {
        sum: int(&opened[0])?,
        // Up to 2^23 · 2^104 = 2^127 (all values at -2^52): beyond i128.
        sum_squares: triad_crypto::fr_to_u128(&opened[1]).ok_or_else(outside)?,
        weighted: int(&opened[2])?,
        picked: opened[3..]
            .iter()
            .map(|v| int(v).map(|x| x as i64))
            .collect::<Result<_, _>>()?,
        below,
    })
}

/// Positions whose word is outside `[-2^VALUE_BITS, 2^VALUE_BITS)`: bits
/// `VALUE_BITS..64` must all equal. Bit-sliced, so an AND tree over 11
/// planes: 4 rounds and 10 bits per value, the last AND opened in its round.
fn out_of_range(p: &mut Party, planes: &Shares<Bits>, n: usize) -> Result<Vec<usize>, StatsError> {
    let w = n.div_ceil(64);
    let plane = |j: usize| planes.slice(j * w..(j + 1) * w);
    let sign = plane(VALUE_BITS as usize);
    // same_j = not(bit_j ^ sign) for j above the sign bit.
    let same: Vec<Shares<Bits>> = (VALUE_BITS as usize + 1..64)
        .map(|j| not(p, &plane(j).add(&sign)))
        .collect();
    let same = and_reduce(p, same, w, 2)?;
    let ok = and_open(p, &same[0], &same[1], &Shares::zeros(w))?;
    let ok = unpack_bits(&ok, n);
    Ok((0..n).filter(|&k| !ok[k]).collect())
}

/// For each public bound key, how many sorted keys are below it: a
/// `FANOUT`-ary search over the sorted order, all bounds in one batch of
/// comparisons per step. The opened results are functions of the counts,
/// which are released.
fn count_below(
    p: &mut Party,
    keys: &[Shares<Bits>],
    order: &[usize],
    bounds: &[u128],
    bits: usize,
) -> Result<Vec<usize>, StatsError> {
    let n = order.len();
    // The count lies in [lo, hi].
    let (mut lo, mut hi) = (vec![0usize; bounds.len()], vec![n; bounds.len()]);
    loop {
        let mut probes: Vec<(usize, usize)> = Vec::new();
        for j in 0..bounds.len() {
            let width = hi[j] - lo[j];
            if width == 0 {
                continue;
            } else if width <= FANOUT {
                probes.extend((lo[j]..hi[j]).map(|pos| (j, pos)));
            } else {
                probes.extend((1..=FANOUT).map(|k| (j, lo[j] + k * width / (FANOUT + 1))));
            }
        }
        if probes.is_empty() {
            return Ok(lo);
        }
        let at: Vec<usize> = probes.iter().map(|&(_, pos)| order[pos]).collect();
        let against: Vec<u128> = probes.iter().map(|&(j, _)| bounds[j]).collect();
        let x = slice_keys(keys, &at, bits);
        let y = slice_public(p, &against, bits);
        let circuit = choose(p, probes.len(), bits);
        let less = unpack_bits(&lt_open(p, &x, &y, bits, circuit)?, probes.len());
        let (mut new_lo, mut new_hi) = (lo.clone(), hi.clone());
        for (&(j, pos), l) in probes.iter().zip(less) {
            if l {
                new_lo[j] = new_lo[j].max(pos + 1);
            } else {
                new_hi[j] = new_hi[j].min(pos);
            }
        }
        (lo, hi) = (new_lo, new_hi);
    }
}
