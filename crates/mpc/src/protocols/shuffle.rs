//! Secure three-party shuffle: the composition of three random
//! permutations, each known to one pair of parties and hidden from the
//! third, so no single party knows the composed permutation.
//!
//! Step `s` (pair `s`, `s+1`; the third is `t = s+2`). Party `s` holds
//! `x_s + x_{s+1}` and party `s+1` holds `x_{s+2}`: a 2-of-2 sharing with no
//! communication. Both permute their part with `π_s` (from their shared
//! PRG). The new components `y_s` (shared by `s` and `t`) and `y_{s+2}`
//! (shared by `s+1` and `t`) are drawn from PRGs; `s` and `s+1` exchange
//! `π(x_s + x_{s+1}) - y_s` and `π(x_{s+2}) - y_{s+2}`, each masked by a
//! value the receiver does not know, and both learn `y_{s+1}`. One round
//! per step, three in all; `t` neither sends nor receives.

use rand::seq::SliceRandom;

use crate::network::{recv_vec, send_vec};
use crate::{MpcError, Party, Ring, Shares};

/// Shuffles the rows of several equally long columns with one hidden
/// permutation (the columns stay aligned). 3 rounds.
pub fn shuffle<T: Ring>(p: &mut Party, cols: &[Shares<T>]) -> Result<Vec<Shares<T>>, MpcError> {
    let n = cols.first().map_or(0, |c| c.len());
    if cols.iter().any(|c| c.len() != n) {
        return Err(MpcError::InvalidArgument(
            "shuffle: columns differ in length",
        ));
    }
    let mut cols = cols.to_vec();
    let me = p.id.index();
    let ncols = cols.len();
    let (next, prev) = (p.next(), p.prev());
    for s in 0..3 {
        let draw = |prg: &mut crate::prg::Prg| -> Vec<Vec<T>> {
            (0..ncols)
                .map(|_| (0..n).map(|_| T::random(prg)).collect())
                .collect()
        };
        if me == s {
            let perm = permutation(&mut p.prg_next, n);
            let ys = draw(&mut p.prg_prev);
            let mine: Vec<Vec<T>> = cols
                .iter()
                .zip(&ys)
                .map(|(c, y)| {
                    perm.iter()
                        .zip(y)
                        .map(|(&k, y)| c.a[k] + c.b[k] - *y)
                        .collect()
                })
                .collect();
            let flat: Vec<T> = mine.concat();
            send_vec(p.net.as_mut(), next, &flat)?;
            let theirs: Vec<T> = recv_vec(p.net.as_mut(), next, flat.len())?;
            for (j, c) in cols.iter_mut().enumerate() {
                let y1 = (0..n).map(|k| mine[j][k] + theirs[j * n + k]).collect();
                *c = Shares::new(ys[j].clone(), y1);
            }
        } else if me == (s + 1) % 3 {
            let perm = permutation(&mut p.prg_prev, n);
            let ys = draw(&mut p.prg_next);
            let mine: Vec<Vec<T>> = cols
                .iter()
                .zip(&ys)
                .map(|(c, y)| perm.iter().zip(y).map(|(&k, y)| c.b[k] - *y).collect())
                .collect();
            let flat: Vec<T> = mine.concat();
            send_vec(p.net.as_mut(), prev, &flat)?;
            let theirs: Vec<T> = recv_vec(p.net.as_mut(), prev, flat.len())?;
            for (j, c) in cols.iter_mut().enumerate() {
                let y1 = (0..n).map(|k| mine[j][k] + theirs[j * n + k]).collect();
                *c = Shares::new(y1, ys[j].clone());
            }
        } else {
            let y_s = draw(&mut p.prg_next);
            let y_s2 = draw(&mut p.prg_prev);
            for (j, c) in cols.iter_mut().enumerate() {
                *c = Shares::new(y_s2[j].clone(), y_s[j].clone());
            }
        }
    }
    Ok(cols)
}

/// A uniformly random permutation from a shared PRG (Fisher-Yates with
/// unbiased index sampling), identical at both holders of the stream.
fn permutation(prg: &mut crate::prg::Prg, n: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(prg);
    perm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::open;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Fr, Z64};
    use proptest::prelude::*;
    use std::num::Wrapping;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn shuffle_permutes_rows_together(v in prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], 1..60)) {
            let x: Vec<Z64> = v.iter().map(|&a| Wrapping(a)).collect();
            let tag: Vec<Z64> = (0..v.len() as u64).map(Wrapping).collect();
            let mut rng = test_rng();
            let (xs, ts) = (share_plain(&x, &mut rng), share_plain(&tag, &mut rng));
            let out = run3(|p| {
                let i = p.id.index();
                let c = shuffle(p, &[xs[i].clone(), ts[i].clone()]).unwrap();
                (open(p, &c[0]).unwrap(), open(p, &c[1]).unwrap())
            });
            let (vals, tags) = &out[0];
            // Every row moved as a unit and tags form a permutation.
            let mut seen = vec![false; v.len()];
            for (val, t) in vals.iter().zip(tags) {
                let t = t.0 as usize;
                prop_assert!(!seen[t]);
                seen[t] = true;
                prop_assert_eq!(*val, x[t]);
            }
        }
    }

    #[test]
    fn shuffle_works_in_the_field_and_is_not_identity() {
        let x: Vec<Fr> = (0..200u64).map(Fr::from).collect();
        let xs = share_plain(&x, &mut test_rng());
        let out = run3(|p| {
            let c = shuffle(p, &[xs[p.id.index()].clone()]).unwrap();
            open(p, &c[0]).unwrap()
        });
        let mut sorted = out[0].clone();
        sorted.sort();
        assert_eq!(sorted, x);
        assert_ne!(out[0], x, "a 200-element shuffle left everything in place");
    }
}
