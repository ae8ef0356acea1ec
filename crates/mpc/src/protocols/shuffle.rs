//! Secure three-party shuffle in two rounds and four messages: the
//! composition of three random permutations, each known to one pair of
//! parties and hidden from the third, so no single party knows the
//! composed permutation.
//!
//! With `x = x_0 + x_1 + x_2` (party `i` holds `x_i, x_{i+1}`) and `π_01`,
//! `π_12`, `π_20` drawn from the PRG each pair shares:
//! 1. P0 and P1 hold a 2-of-2 sharing with no communication: `A = x_0 + x_1`
//!    at P0, `B = x_2` at P1. P0 sends `π_01(A) + z` to P2; P1 sends
//!    `π_12(π_01(B) - z) + z'` to P0 (`z` from the P0/P1 stream, `z'` from
//!    P1/P2's). Both messages go out at once.
//! 2. P2 holds `C = π_20(π_12(π_01(A) + z) - z')`, P0 holds
//!    `D = π_20(π_12(π_01(B) - z) + z')`, and `C + D = π_20 π_12 π_01 (x)`.
//!    The new components `y_1` (P0/P1 stream) and `y_2` (P1/P2 stream) are
//!    drawn; P0 sends `D - y_1` to P2 and P2 sends `C - y_2` to P0, so both
//!    learn `y_0 = C + D - y_1 - y_2`. P1 receives nothing.
//!
//! Every message is masked by a stream its receiver does not hold; each
//! party knows two of the three permutations. Four messages of `n`
//! elements per column instead of the six of three sequential re-sharings
//! (the "reshuffle" of Araki et al., "Secure graph analysis at scale",
//! CCS 2021, specialised to replicated shares).

use rand::seq::SliceRandom;

use crate::gf128::Gf128;
use crate::network::{recv_vec, send_vec};
use crate::prg::Prg;
use crate::protocols::{mul, open, random_shares};
use crate::{Bits, MpcError, Party, PartyId, Ring, Security, Shares};

/// Shuffles the rows of several equally long columns with one hidden
/// permutation (the columns stay aligned). 2 rounds.
pub fn shuffle<T: Ring>(p: &mut Party, cols: &[Shares<T>]) -> Result<Vec<Shares<T>>, MpcError> {
    Ok(shuffle_mixed::<T, Bits>(p, cols, &[])?.0)
}

/// [`shuffle`] for columns of two element types (e.g. arithmetic values and
/// XOR-shared sort keys), all moved by the same permutation. 2 rounds.
#[allow(clippy::type_complexity)]
pub fn shuffle_mixed<T: Ring, U: Ring>(
    p: &mut Party,
    ts: &[Shares<T>],
    us: &[Shares<U>],
) -> Result<(Vec<Shares<T>>, Vec<Shares<U>>), MpcError> {
    p.semi_honest_only("shuffle of arithmetic columns (use shuffle_bits)")?;
    shuffle_unchecked(p, ts, us)
}

/// Shuffles XOR-shared columns with one hidden permutation, secure against
/// a malicious party in malicious mode (2 rounds semi-honest; 5 more
/// rounds in malicious mode, plus the checks of the tags' products).
///
/// In malicious mode every row carries a tag `α·x` in GF(2^128), with `x`
/// the row's words packed two to an element and `α` a random shared key
/// no party knows. Tags are linear over XOR, so they survive the shuffle;
/// whatever a cheating party does to the messages adds errors `δ` to the
/// rows and `ε` to the tags (or moves rows and tags apart), and the check
/// `Σ r^k (α·y_k − t_k) = 0`, with `r` public and drawn after the shuffle,
/// holds only if `ε_k = α δ_k` for every row: a guess of `α` (probability
/// `2^-128`, plus `rows / 2^128` for `r`). The tags' multiplications are
/// checked ([`crate::protocols::mulcheck`]) before `r` is opened, and the
/// check is opened before anything else. The privacy of the order rests on
/// the honest pair's permutation, which a cheater never sees. After
/// Asharov et al., "Efficient secure three-party sorting with applications
/// to data analysis and heavy hitters" (CCS 2022), section 5, and
/// ipa-core's malicious shuffle, with a SPDZ-style MAC over GF(2^128).
pub fn shuffle_bits(p: &mut Party, cols: &[Shares<Bits>]) -> Result<Vec<Shares<Bits>>, MpcError> {
    if p.security == Security::SemiHonest {
        return shuffle(p, cols);
    }
    let n = cols.first().map(|c| c.len()).unwrap_or(0);
    if cols.iter().any(|c| c.len() != n) {
        return Err(MpcError::InvalidArgument(
            "shuffle: columns differ in length",
        ));
    }
    // No rows: nothing to move or check. (With zero rows one party was
    // left with a pending check the others did not have, so the next
    // opening stalled; test `an_empty_shuffle_is_empty`.)
    if n == 0 {
        return Ok(cols.to_vec());
    }
    // Tags: one GF(2^128) product per row and pair of columns.
    let packed = pack(cols);
    let alpha = random_shares::<Gf128>(p, 1);
    let tags: Vec<Shares<Gf128>> = packed
        .iter()
        .map(|c| {
            let key = Shares::new(vec![alpha.a[0]; n], vec![alpha.b[0]; n]);
            mul(p, c, &key)
        })
        .collect::<Result<_, _>>()?;
    let (out, out_tags) = shuffle_unchecked(p, cols, &tags)?;
    // The coefficients' seed, opened only now (the opening checks the
    // tags' products first).
    let seed = random_shares::<Gf128>(p, 1);
    let r = open(p, &seed)?[0];
    // One random linear combination over every packed word and its tag
    // (rows of all packed columns concatenated, coefficients r^(k+1)).
    let words = Shares::concat(&pack(&out).iter().collect::<Vec<_>>());
    let all_tags = Shares::concat(&out_tags.iter().collect::<Vec<_>>());
    let (w, t) = (fold_long(&words, r), fold_long(&all_tags, r));
    let diff = mul(p, &w, &alpha)?.sub(&t);
    // Opened times a fresh random factor: a failed check reveals that it
    // failed and nothing about the errors or the rows behind them.
    let mask = random_shares::<Gf128>(p, 1);
    let masked = mul(p, &diff, &mask)?;
    if open(p, &masked)?[0] != Gf128::ZERO {
        let why = "the shuffled rows do not match their tags (a party deviated in the shuffle)";
        p.failed_check = Some(why.into());
        return Err(MpcError::CheatingDetected {
            check: "shuffle tags",
            detail: why.into(),
        });
    }
    Ok(out)
}

/// `Σ_k r^(k+1) x_k` of a sharing (local: multiplying by a public
/// constant is linear over XOR).
fn fold_long(x: &Shares<Gf128>, r: Gf128) -> Shares<Gf128> {
    let (mut a, mut b) = (Gf128::ZERO, Gf128::ZERO);
    let mut power = Gf128::ONE;
    for (xa, xb) in x.a.iter().zip(&x.b) {
        power = power * r;
        a += power * *xa;
        b += power * *xb;
    }
    Shares::new(vec![a], vec![b])
}

/// Packs XOR-shared word columns two to a GF(2^128) element (the low and
/// high halves of its Montgomery form): an injective map, linear over XOR.
fn pack(cols: &[Shares<Bits>]) -> Vec<Shares<Gf128>> {
    let join = |lo: &[Bits], hi: Option<&[Bits]>| -> Vec<Gf128> {
        (0..lo.len())
            .map(|k| {
                let h = hi.map(|h| h[k].0).unwrap_or(0);
                Gf128(lo[k].0 as u128 | (h as u128) << 64)
            })
            .collect()
    };
    cols.chunks(2)
        .map(|pair| {
            let hi = pair.get(1);
            Shares::new(
                join(&pair[0].a, hi.map(|h| h.a.as_slice())),
                join(&pair[0].b, hi.map(|h| h.b.as_slice())),
            )
        })
        .collect()
}

/// The shuffle itself, with no check: secure against a semi-honest party;
/// a malicious one can add errors and move rows, which
/// [`shuffle_bits`]' tags catch.
#[allow(clippy::type_complexity)]
fn shuffle_unchecked<T: Ring, U: Ring>(
    p: &mut Party,
    ts: &[Shares<T>],
    us: &[Shares<U>],
) -> Result<(Vec<Shares<T>>, Vec<Shares<U>>), MpcError> {
    let n = ts
        .first()
        .map(|c| c.len())
        .or(us.first().map(|c| c.len()))
        .unwrap_or(0);
    if ts.iter().any(|c| c.len() != n) || us.iter().any(|c| c.len() != n) {
        return Err(MpcError::InvalidArgument(
            "shuffle: columns differ in length",
        ));
    }
    p.rounds += 2;
    let (p0, p1, p2) = (PartyId::ALL[0], PartyId::ALL[1], PartyId::ALL[2]);
    match p.id.index() {
        0 => {
            let pi01 = permutation(&mut p.prg_next, n);
            let pi20 = permutation(&mut p.prg_prev, n);
            // Round 1: π_01(A) + z to P2.
            send_masked(p, p2, ts, &pi01, |c, k| c.a[k] + c.b[k])?;
            send_masked(p, p2, us, &pi01, |c, k| c.a[k] + c.b[k])?;
            let dt = recv_permuted::<T>(p, p1, ts.len(), n, &pi20)?;
            let du = recv_permuted::<U>(p, p1, us.len(), n, &pi20)?;
            // Round 2: D - y_1 to P2, C - y_2 from P2.
            let (mt, y1t) = send_unmasked_part(p, p2, dt)?;
            let (mu, y1u) = send_unmasked_part(p, p2, du)?;
            let ot = finish(p, p2, mt, y1t, |y0, y1| Shares::new(y0, y1))?;
            let ou = finish(p, p2, mu, y1u, |y0, y1| Shares::new(y0, y1))?;
            Ok((ot, ou))
        }
        1 => {
            let pi01 = permutation(&mut p.prg_prev, n);
            let pi12 = permutation(&mut p.prg_next, n);
            // Round 1: π_12(π_01(B) - z) + z' to P0.
            send_p1(p, p0, ts, &pi01, &pi12)?;
            send_p1(p, p0, us, &pi01, &pi12)?;
            let y1t = draw_cols::<T>(&mut p.prg_prev, ts.len(), n);
            let y1u = draw_cols::<U>(&mut p.prg_prev, us.len(), n);
            let y2t = draw_cols::<T>(&mut p.prg_next, ts.len(), n);
            let y2u = draw_cols::<U>(&mut p.prg_next, us.len(), n);
            Ok((pair(y1t, y2t), pair(y1u, y2u)))
        }
        _ => {
            let pi12 = permutation(&mut p.prg_prev, n);
            let pi20 = permutation(&mut p.prg_next, n);
            let ct = recv_p2::<T>(p, p0, ts.len(), n, &pi12, &pi20)?;
            let cu = recv_p2::<U>(p, p0, us.len(), n, &pi12, &pi20)?;
            let (mt, y2t) = send_unmasked_part(p, p0, ct)?;
            let (mu, y2u) = send_unmasked_part(p, p0, cu)?;
            let ot = finish(p, p0, mt, y2t, |y0, y2| Shares::new(y2, y0))?;
            let ou = finish(p, p0, mu, y2u, |y0, y2| Shares::new(y2, y0))?;
            Ok((ot, ou))
        }
    }
}

fn pair<T: Ring>(a: Vec<Vec<T>>, b: Vec<Vec<T>>) -> Vec<Shares<T>> {
    a.into_iter()
        .zip(b)
        .map(|(a, b)| Shares::new(a, b))
        .collect()
}

fn draw_cols<T: Ring>(prg: &mut Prg, cols: usize, n: usize) -> Vec<Vec<T>> {
    (0..cols).map(|_| T::random_vec(prg, n)).collect()
}

/// P0, round 1: for each column `π(part) + z`, `z` from the P0/P1 stream.
fn send_masked<T: Ring>(
    p: &mut Party,
    to: PartyId,
    cols: &[Shares<T>],
    perm: &[usize],
    part: impl Fn(&Shares<T>, usize) -> T,
) -> Result<(), MpcError> {
    if cols.is_empty() {
        return Ok(());
    }
    let n = perm.len();
    let z = draw_cols::<T>(&mut p.prg_next, cols.len(), n);
    let mut msg = Vec::with_capacity(cols.len() * n);
    for (c, z) in cols.iter().zip(&z) {
        msg.extend(perm.iter().zip(z).map(|(&k, z)| part(c, k) + *z));
    }
    send_vec(p.net.as_mut(), to, &msg)
}

/// P1, round 1: `π_12(π_01(x_2) - z) + z'`.
fn send_p1<T: Ring>(
    p: &mut Party,
    to: PartyId,
    cols: &[Shares<T>],
    pi01: &[usize],
    pi12: &[usize],
) -> Result<(), MpcError> {
    if cols.is_empty() {
        return Ok(());
    }
    let n = pi01.len();
    let z = draw_cols::<T>(&mut p.prg_prev, cols.len(), n);
    let z2 = draw_cols::<T>(&mut p.prg_next, cols.len(), n);
    let mut msg = Vec::with_capacity(cols.len() * n);
    for ((c, z), z2) in cols.iter().zip(&z).zip(&z2) {
        let inner: Vec<T> = pi01.iter().zip(z).map(|(&k, z)| c.b[k] - *z).collect();
        msg.extend(pi12.iter().zip(z2).map(|(&k, z2)| inner[k] + *z2));
    }
    send_vec(p.net.as_mut(), to, &msg)
}

/// P0, end of round 1: `D = π_20(message)` per column.
fn recv_permuted<T: Ring>(
    p: &mut Party,
    from: PartyId,
    cols: usize,
    n: usize,
    perm: &[usize],
) -> Result<Vec<Vec<T>>, MpcError> {
    if cols == 0 {
        return Ok(Vec::new());
    }
    let msg: Vec<T> = recv_vec(p.net.as_mut(), from, cols * n)?;
    Ok(msg
        .chunks_exact(n.max(1))
        .take(cols)
        .map(|m| perm.iter().map(|&k| m[k]).collect())
        .collect())
}

/// P2, end of round 1: `C = π_20(π_12(message) - z')`.
fn recv_p2<T: Ring>(
    p: &mut Party,
    from: PartyId,
    cols: usize,
    n: usize,
    pi12: &[usize],
    pi20: &[usize],
) -> Result<Vec<Vec<T>>, MpcError> {
    if cols == 0 {
        return Ok(Vec::new());
    }
    let msg: Vec<T> = recv_vec(p.net.as_mut(), from, cols * n)?;
    let z2 = draw_cols::<T>(&mut p.prg_prev, cols, n);
    Ok(msg
        .chunks_exact(n.max(1))
        .take(cols)
        .zip(&z2)
        .map(|(m, z2)| {
            let inner: Vec<T> = pi12.iter().zip(z2).map(|(&k, z2)| m[k] - *z2).collect();
            pi20.iter().map(|&k| inner[k]).collect()
        })
        .collect())
}

/// Round 2, P0 and P2: draws this party's new component `y` (P0: `y_1`
/// from the P0/P1 stream; P2: `y_2` from the P1/P2 stream), sends
/// `half - y`, returns it with `y`.
#[allow(clippy::type_complexity)]
fn send_unmasked_part<T: Ring>(
    p: &mut Party,
    to: PartyId,
    half: Vec<Vec<T>>,
) -> Result<(Vec<Vec<T>>, Vec<Vec<T>>), MpcError> {
    if half.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let n = half[0].len();
    let prg = if p.id.index() == 0 {
        &mut p.prg_next
    } else {
        &mut p.prg_prev
    };
    let y = draw_cols::<T>(prg, half.len(), n);
    let mine: Vec<Vec<T>> = half
        .iter()
        .zip(&y)
        .map(|(h, y)| h.iter().zip(y).map(|(h, y)| *h - *y).collect())
        .collect();
    send_vec(p.net.as_mut(), to, &mine.concat())?;
    Ok((mine, y))
}

/// Round 2, P0 and P2: `y_0 = mine + theirs`, then the new shares.
fn finish<T: Ring>(
    p: &mut Party,
    from: PartyId,
    mine: Vec<Vec<T>>,
    y: Vec<Vec<T>>,
    make: impl Fn(Vec<T>, Vec<T>) -> Shares<T>,
) -> Result<Vec<Shares<T>>, MpcError> {
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let n = mine[0].len();
    let theirs: Vec<T> = recv_vec(p.net.as_mut(), from, mine.len() * n)?;
    Ok(mine
        .into_iter()
        .zip(y)
        .enumerate()
        .map(|(j, (m, y))| {
            let y0 = m
                .iter()
                .zip(&theirs[j * n..(j + 1) * n])
                .map(|(a, b)| *a + *b)
                .collect();
            make(y0, y)
        })
        .collect())
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
