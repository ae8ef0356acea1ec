//! The plaintext reference: the same statistics computed directly, with the
//! derived floats computed a *different* way (two-pass variance, Gini from
//! the pairwise-difference form) so agreement is evidence, not tautology.

use crate::{finish::Derived, StatsError, StatsResult, StatsSpec};

pub fn oracle(values: &[i64], spec: &StatsSpec) -> Result<StatsResult, StatsError> {
    spec.validate()?;
    let n = values.len();
    if n == 0 {
        return Err(StatsError::Empty);
    }
    let mut s = values.to_vec();
    s.sort_unstable();
    let sum: i128 = s.iter().map(|&v| v as i128).sum();
    let sum_squares: u128 = s.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
    let rank_weighted_sum: i128 = s
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i128 + 1) * v as i128)
        .sum();
    let median_pair = (s[(n - 1) / 2], s[n / 2]);
    let mean = sum as f64 / n as f64;
    // Two-pass variance around the exact-rounded mean.
    let variance = {
        let m = sum as f64 / n as f64;
        let dev: f64 = s.iter().map(|&v| (v as f64 - m).powi(2)).sum();
        let corr: f64 = s.iter().map(|&v| v as f64 - m).sum();
        (dev - corr * corr / n as f64) / n as f64
    };
    // Gini = sum_i (2i - n - 1) x_(i) / (n sum x), summed exactly.
    let gini = (sum != 0).then(|| {
        let num: i128 = s
            .iter()
            .enumerate()
            .map(|(i, &v)| (2 * (i as i128 + 1) - n as i128 - 1) * v as i128)
            .sum();
        num as f64 / (n as f64 * sum as f64)
    });
    let histogram = {
        let mut counts = Vec::new();
        let mut prev = 0u64;
        for b in &spec.histogram_bounds {
            let c = s.partition_point(|v| v < b) as u64;
            counts.push(c - prev);
            prev = c;
        }
        counts.push(n as u64 - prev);
        counts
    };
    Ok(StatsResult {
        count: n as u64,
        sum,
        sum_squares,
        min: s[0],
        max: s[n - 1],
        median_pair,
        quantiles: spec
            .quantiles
            .iter()
            .map(|&q| (q, s[oracle_rank(q, n) - 1]))
            .collect(),
        histogram,
        rank_weighted_sum,
        derived: Derived {
            mean,
            variance,
            stddev: variance.sqrt(),
            median: (median_pair.0 as f64 + median_pair.1 as f64) / 2.0,
            gini,
        },
    })
}

/// The nearest rank computed independently of the program's
/// `nearest_rank`: the smallest `k` with `k / n >= q`, compared in decimal
/// parts-per-billion so that e.g. q = 0.07, n = 100 gives 7.
fn oracle_rank(q: f64, n: usize) -> usize {
    let q_ppb = (q * 1e9).round() as u128;
    (1..=n)
        .find(|&k| k as u128 * 1_000_000_000 >= q_ppb * n as u128)
        .unwrap_or(n)
}
