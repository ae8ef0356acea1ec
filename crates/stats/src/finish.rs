//! Finishing in the clear: derived statistics from the opened exact
//! integers, with big-integer arithmetic so nothing cancels or overflows
//! before the final division.

use num_bigint::BigInt;
use num_traits::ToPrimitive;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Derived {
    pub mean: f64,
    /// Population variance.
    pub variance: f64,
    pub stddev: f64,
    pub median: f64,
    /// `None` when the sum is 0 (Gini is undefined).
    pub gini: Option<f64>,
}

fn ratio(num: &BigInt, den: &BigInt) -> f64 {
    // Both fit f64's exponent range; the quotient is correctly rounded up
    // to the two conversions (relative error ~1e-16).
    num.to_f64().unwrap_or(f64::NAN) / den.to_f64().unwrap_or(f64::NAN)
}

pub(crate) fn derive(
    n: u64,
    sum: i128,
    sum_sq: u128,
    median_pair: (i64, i64),
    weighted: i128,
) -> Derived {
    let (nb, s) = (BigInt::from(n), BigInt::from(sum));
    let mean = ratio(&s, &nb);
    // n^2 var = n * sum_sq - sum^2, exact.
    let var_num = &nb * BigInt::from(sum_sq) - &s * &s;
    let variance = ratio(&var_num, &(&nb * &nb));
    // G = (2 W - (n + 1) S) / (n S).
    let gini = (sum != 0).then(|| {
        let num = BigInt::from(2) * BigInt::from(weighted) - (&nb + 1) * &s;
        ratio(&num, &(&nb * &s))
    });
    Derived {
        mean,
        variance,
        stddev: variance.sqrt(),
        median: (median_pair.0 as f64 + median_pair.1 as f64) / 2.0,
        gini,
    }
}
