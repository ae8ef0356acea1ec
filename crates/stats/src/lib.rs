//! Statistics over secret-shared fixed-point integers.
//!
//! [`compute`] is the MPC program, [`oracle`] the plaintext reference; both
//! return a [`StatsResult`] whose integer fields must agree exactly and
//! whose derived floats must agree within 1e-9 relative.
//!
//! What is opened (the declared outputs, nothing else): the sum, the sum of
//! squares, the rank-weighted sum `sum_i i * x_(i)` (Gini), the order
//! statistics used for min / max / median / quantiles, and the cumulative
//! bucket counts. Sorting opens comparison results of *shuffled, distinct*
//! keys, which reveal only a uniformly random permutation (docs/security.md).
#![forbid(unsafe_code)]

mod finish;
mod oracle;
mod program;

pub use finish::Derived;
pub use oracle::oracle;
pub use program::compute;

use serde::{Deserialize, Serialize};

/// Inputs are fixed-point integers `v` with `-2^VALUE_BITS <= v < 2^VALUE_BITS`
/// (values up to 2^48 at any declared scale fit with room to spare). Sums
/// of squares are exact in Z_2^128 for up to 2^23 contributions.
pub const VALUE_BITS: u32 = 52;

/// Which statistics to release beyond the fixed suite.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsSpec {
    /// Quantiles in `(0, 1]`, nearest-rank definition: the `ceil(q n)`-th
    /// smallest value.
    pub quantiles: Vec<f64>,
    /// Public bucket bounds, strictly increasing; buckets are
    /// `(-inf, b_0), [b_0, b_1), ..., [b_last, inf)`.
    pub histogram_bounds: Vec<i64>,
}

/// Released statistics, in the fixed-point units of the input.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatsResult {
    pub count: u64,
    pub sum: i128,
    pub sum_squares: u128,
    pub min: i64,
    pub max: i64,
    /// The one or two middle order statistics (lower, upper).
    pub median_pair: (i64, i64),
    pub quantiles: Vec<(f64, i64)>,
    pub histogram: Vec<u64>,
    /// `sum_{i=1..n} i * x_(i)` over the sorted values.
    pub rank_weighted_sum: i128,
    pub derived: Derived,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("no contributions to compute statistics over")]
    Empty,
    #[error("too many contributions ({0}); at most 2^23 are supported")]
    TooMany(usize),
    #[error("inputs at positions {0:?} are outside [-2^52, 2^52)")]
    OutOfRange(Vec<usize>),
    #[error("invalid specification: {0}")]
    InvalidSpec(&'static str),
    #[error(transparent)]
    Mpc(#[from] triad_mpc::MpcError),
}

impl StatsSpec {
    pub fn validate(&self) -> Result<(), StatsError> {
        if self.quantiles.iter().any(|q| !(*q > 0.0 && *q <= 1.0)) {
            return Err(StatsError::InvalidSpec("quantiles must be in (0, 1]"));
        }
        if self.histogram_bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(StatsError::InvalidSpec(
                "histogram bounds must increase strictly",
            ));
        }
        let lim = 1i64 << VALUE_BITS;
        if self.histogram_bounds.iter().any(|b| *b < -lim || *b > lim) {
            return Err(StatsError::InvalidSpec(
                "histogram bound out of the value range",
            ));
        }
        Ok(())
    }
}

/// Checks an MPC result against the oracle's: integers exactly, derived
/// floats within 1e-9 relative (with an absolute floor for values that are
/// 0 on one side and rounding noise on the other). Returns what differs.
pub fn agrees(got: &StatsResult, want: &StatsResult) -> Result<(), String> {
    let close = |a: f64, b: f64, floor: f64| (a - b).abs() <= 1e-9 * (a.abs().max(b.abs()) + floor);
    let (g, w) = (&got.derived, &want.derived);
    let floor = (w.mean.abs() + 1.0).powi(2) * 1e-6;
    let mut diffs = Vec::new();
    if !close(g.mean, w.mean, 1.0) {
        diffs.push(format!("mean {} vs {}", g.mean, w.mean));
    }
    if !close(g.variance, w.variance, floor) {
        diffs.push(format!("variance {} vs {}", g.variance, w.variance));
    }
    if !close(g.stddev, w.stddev, floor.sqrt()) {
        diffs.push(format!("stddev {} vs {}", g.stddev, w.stddev));
    }
    if g.median != w.median {
        diffs.push(format!("median {} vs {}", g.median, w.median));
    }
    match (g.gini, w.gini) {
        (Some(a), Some(b)) if !close(a, b, 1e-6) => diffs.push(format!("gini {a} vs {b}")),
        (Some(_), None) | (None, Some(_)) => diffs.push("gini defined on one side only".into()),
        _ => {}
    }
    let exact = |r: &StatsResult| {
        (
            r.count,
            r.sum,
            r.sum_squares,
            r.min,
            r.max,
            r.median_pair,
            r.quantiles.clone(),
            r.histogram.clone(),
            r.rank_weighted_sum,
        )
    };
    if exact(got) != exact(want) {
        diffs.push(format!(
            "exact fields differ: {:?} vs {:?}",
            exact(got),
            exact(want)
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// 1-based nearest rank of quantile `q` among `n` values: `ceil(q n)`.
/// `q n` is snapped to the nearest integer when within rounding error of
/// it, so e.g. `0.07 * 100 = 7.000000000000001` gives rank 7, not 8.
pub(crate) fn nearest_rank(q: f64, n: usize) -> usize {
    let x = q * n as f64;
    let r = x.round();
    let rank = if (x - r).abs() <= 1e-9 * x.max(1.0) {
        r
    } else {
        x.ceil()
    };
    (rank as usize).clamp(1, n)
}

#[cfg(test)]
mod tests;
