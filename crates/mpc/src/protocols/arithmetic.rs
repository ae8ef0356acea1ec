//! Linear-secret-sharing basics over any [`Ring`]: correlated randomness,
//! multiplication (Araki et al. 2016), dot product and opening.

use std::any::Any;

use crate::gf128::Gf128;
use crate::network::{recv_into, recv_vec, send_vec};
use crate::protocols::dzkp::verify;
use crate::protocols::mulcheck::{Checked, LOG_LIMIT};
use crate::{Bits, Fr, MpcError, Party, PartyId, Ring, Security, Shares};

/// Additive shares of zero (`α_0 + α_1 + α_2 = 0`) with no communication:
/// `α_i = F(k_{i,i+1}) - F(k_{i-1,i})`.
pub fn zero_share<T: Ring>(p: &mut Party, n: usize) -> Vec<T> {
    let next = T::random_vec(&mut p.prg_next, n);
    let prev = T::random_vec(&mut p.prg_prev, n);
    next.into_iter().zip(prev).map(|(a, b)| a - b).collect()
}

/// Replicated shares of a uniformly random secret, no communication: the
/// component party `i` shares with `prev` is drawn from their common PRG.
pub fn random_shares<T: Ring>(p: &mut Party, n: usize) -> Shares<T> {
    let a = T::random_vec(&mut p.prg_prev, n);
    let b = T::random_vec(&mut p.prg_next, n);
    Shares::new(a, b)
}

/// Elements per message when a large vector is streamed: big enough to
/// amortise framing, small enough that computing the next chunk overlaps
/// with sending the previous one (the transport writes in the background).
pub const CHUNK: usize = 1 << 16;

/// Streams a vector to `to` while receiving one of the same length from
/// `from`, in chunks: `produce(range, out)` appends our elements for `range`
/// just before they are sent, so local work overlaps with the network.
/// Still one round: every party sends all its chunks before it needs any
/// of the others' beyond the previous chunk.
pub fn stream_exchange<T: Ring>(
    p: &mut Party,
    to: crate::PartyId,
    from: crate::PartyId,
    n: usize,
    produce: impl FnMut(&mut Party, std::ops::Range<usize>, &mut Vec<T>),
) -> Result<(Vec<T>, Vec<T>), MpcError> {
    let (mut mine, mut theirs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    stream_exchange_into(p, to, from, n, produce, &mut mine, &mut theirs)?;
    Ok((mine, theirs))
}

/// [`stream_exchange`] into the caller's buffers (cleared first; no
/// allocation once their capacity suffices).
pub fn stream_exchange_into<T: Ring>(
    p: &mut Party,
    to: crate::PartyId,
    from: crate::PartyId,
    n: usize,
    mut produce: impl FnMut(&mut Party, std::ops::Range<usize>, &mut Vec<T>),
    mine: &mut Vec<T>,
    theirs: &mut Vec<T>,
) -> Result<(), MpcError> {
    p.rounds += 1;
    mine.clear();
    theirs.clear();
    let chunks: Vec<std::ops::Range<usize>> = if n == 0 {
        // One empty message keeps the round structure identical for n = 0.
        std::iter::once(0..0).collect()
    } else {
        (0..n)
            .step_by(CHUNK)
            .map(|s| s..(s + CHUNK).min(n))
            .collect()
    };
    for (k, r) in chunks.iter().enumerate() {
        produce(p, r.clone(), mine);
        send_vec(p.net.as_mut(), to, &mine[r.clone()])?;
        if k > 0 {
            recv_into(p.net.as_mut(), from, chunks[k - 1].len(), theirs)?;
        }
    }
    let last = chunks.last().unwrap();
    recv_into(p.net.as_mut(), from, last.len(), theirs)?;
    Ok(())
}

/// Turns additive shares (party `i` holds `z_i`, already re-randomised) into
/// replicated ones. One round: send `z_i` to `prev`, receive `z_{i+1}`.
pub fn reshare<T: Ring>(p: &mut Party, z: Vec<T>) -> Result<Shares<T>, MpcError> {
    p.semi_honest_only("reshare")?;
    let (prev, next) = (p.prev(), p.next());
    let (a, b) = stream_exchange(p, prev, next, z.len(), |_, r, out| {
        out.extend_from_slice(&z[r])
    })?;
    Ok(Shares::new(a, b))
}

/// The local half of multiplication: additive shares of `x * y`, masked by a
/// zero sharing so they reveal nothing when sent.
pub fn mul_local<T: Ring>(p: &mut Party, x: &Shares<T>, y: &Shares<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    mul_local_into(p, x, y, 0..x.len(), &mut out);
    out
}

fn mul_local_into<T: Ring>(
    p: &mut Party,
    x: &Shares<T>,
    y: &Shares<T>,
    r: std::ops::Range<usize>,
    out: &mut Vec<T>,
) {
    let (xa, xb, ya, yb) = (&x.a[r.clone()], &x.b[r.clone()], &y.a[r.clone()], &y.b[r]);
    // The zero sharing is drawn in small blocks straight into the sum, so
    // no buffer of the whole chunk is allocated and zeroed.
    const BLOCK: usize = 1024;
    let mut mask = [T::zero(); BLOCK];
    for s in (0..xa.len()).step_by(BLOCK) {
        let e = (s + BLOCK).min(xa.len());
        let mask = &mut mask[..e - s];
        for m in mask.iter_mut() {
            *m = T::random(&mut p.prg_next);
        }
        for m in mask.iter_mut() {
            *m -= T::random(&mut p.prg_prev);
        }
        out.extend(
            (s..e)
                .zip(mask.iter())
                .map(|(k, m)| xa[k] * (ya[k] + yb[k]) + xb[k] * ya[k] + *m),
        );
    }
}

/// Elementwise `x * y`. One round; each party sends `n` elements.
pub fn mul<T: Ring>(p: &mut Party, x: &Shares<T>, y: &Shares<T>) -> Result<Shares<T>, MpcError> {
    let mut out = Shares::new(Vec::new(), Vec::new());
    mul_into(p, x, y, &mut out)?;
    Ok(out)
}

/// [`mul`] into `out`, reusing its buffers: no allocation once they are
/// large enough (the comparator's chain multiplies once per key bit into
/// the same buffer).
pub fn mul_into<T: Ring>(
    p: &mut Party,
    x: &Shares<T>,
    y: &Shares<T>,
    out: &mut Shares<T>,
) -> Result<(), MpcError> {
    if x.len() != y.len() {
        return Err(MpcError::InvalidArgument("mul: operands differ in length"));
    }
    if p.security == Security::Malicious {
        // AND gates (protocols::dzkp) and F_r products (protocols::mulcheck)
        // have checks; the downcasts succeed exactly when `T` is `Bits` or
        // `Fr`.
        if let Some(z) = checked_products(p, x, y, &vec![1; x.len()]) {
            *out = z?;
            return Ok(());
        }
        let xb = (x as &dyn Any).downcast_ref::<Shares<Bits>>();
        let yb = (y as &dyn Any).downcast_ref::<Shares<Bits>>();
        let out_bits = (out as &mut dyn Any).downcast_mut::<Shares<Bits>>();
        return match (xb, yb, out_bits) {
            (Some(x), Some(y), Some(out)) => and_recorded_into(p, x, y, out),
            _ => Err(MpcError::NotMaliciousSecure(
                "multiplication over Z_2^k (only F_r and AND gates are checked)",
            )),
        };
    }
    let (prev, next) = (p.prev(), p.next());
    let Shares { a, b } = out;
    a.reserve(x.len());
    b.reserve(x.len());
    stream_exchange_into(
        p,
        prev,
        next,
        x.len(),
        |p, r, out| mul_local_into(p, x, y, r, out),
        a,
        b,
    )
}

/// Whether products over `T` have a check ([`Checked`]).
fn is_checked<T: Ring>() -> bool {
    let t = std::any::TypeId::of::<T>();
    t == std::any::TypeId::of::<Fr>() || t == std::any::TypeId::of::<Gf128>()
}

/// [`products_recorded`] when `T` is a [`Checked`] field, `None` otherwise
/// (the downcasts succeed exactly for `Fr` and `Gf128`).
fn checked_products<T: Ring>(
    p: &mut Party,
    x: &Shares<T>,
    y: &Shares<T>,
    terms: &[usize],
) -> Option<Result<Shares<T>, MpcError>> {
    fn with<F: Checked, T: Ring>(
        p: &mut Party,
        x: &Shares<T>,
        y: &Shares<T>,
        terms: &[usize],
    ) -> Option<Result<Shares<T>, MpcError>> {
        let x = (x as &dyn Any).downcast_ref::<Shares<F>>()?;
        let y = (y as &dyn Any).downcast_ref::<Shares<F>>()?;
        Some(products_recorded(p, x, y, terms).map(|z| {
            let boxed: Box<dyn Any> = Box::new(z);
            *boxed.downcast::<Shares<T>>().expect("T is F")
        }))
    }
    with::<Fr, T>(p, x, y, terms).or_else(|| with::<Gf128, T>(p, x, y, terms))
}

/// Dot products over `F_r` with every gate recorded for the check before
/// the next opening ([`crate::protocols::mulcheck`]): gate `j` sums the
/// next `terms[j]` products of `x` and `y`. The same messages as [`mul`]
/// and [`dot`] (one element per gate, one round), with the two PRG
/// elements of the zero sharing kept apart. A log past
/// [`LOG_LIMIT`] terms and gates is checked first.
fn products_recorded<F: Checked>(
    p: &mut Party,
    x: &Shares<F>,
    y: &Shares<F>,
    terms: &[usize],
) -> Result<Shares<F>, MpcError> {
    if x.len() != y.len() || terms.iter().sum::<usize>() != x.len() {
        return Err(MpcError::InvalidArgument(
            "products: operands differ in length",
        ));
    }
    if F::log(p).size() >= LOG_LIMIT {
        verify(p)?;
    }
    let gates = terms.len();
    let sn = F::random_vec(&mut p.prg_next, gates);
    let sp = F::random_vec(&mut p.prg_prev, gates);
    let mut z = Vec::with_capacity(gates);
    let mut k = 0;
    for (j, &t) in terms.iter().enumerate() {
        let mut acc = sn[j] - sp[j];
        for k in k..k + t {
            acc += x.a[k] * (y.a[k] + y.b[k]) + x.b[k] * y.a[k];
        }
        z.push(acc);
        k += t;
    }
    let (prev, next) = (p.prev(), p.next());
    let (a, b) = stream_exchange(p, prev, next, gates, |_, r, out| {
        out.extend_from_slice(&z[r])
    })?;
    F::log(p).record(
        [&x.a, &x.b, &y.a, &y.b],
        terms.iter().copied(),
        [&a, &b],
        &sn,
        &sp,
    );
    Ok(Shares::new(a, b))
}

/// AND with the gate recorded for the check before the next opening
/// ([`crate::protocols::dzkp`]): the same messages as [`mul`], with the
/// two PRG words of the zero sharing kept apart.
fn and_recorded_into(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    out: &mut Shares<Bits>,
) -> Result<(), MpcError> {
    let n = x.len();
    let sn: Vec<u64> = (0..n).map(|_| p.prg_next.next_u64()).collect();
    let sp: Vec<u64> = (0..n).map(|_| p.prg_prev.next_u64()).collect();
    let z: Vec<Bits> = (0..n)
        .map(|k| {
            let (xa, xb, ya, yb) = (x.a[k].0, x.b[k].0, y.a[k].0, y.b[k].0);
            Bits((xa & (ya ^ yb)) ^ (xb & ya) ^ sn[k] ^ sp[k])
        })
        .collect();
    let (prev, next) = (p.prev(), p.next());
    let Shares { a, b } = out;
    stream_exchange_into(
        p,
        prev,
        next,
        n,
        |_, r, out| out.extend_from_slice(&z[r]),
        a,
        b,
    )?;
    p.ands.record([&x.a, &x.b, &y.a, &y.b, a, b], &sn, &sp);
    Ok(())
}

/// Elementwise `x^2`. One round; one local product per element instead of
/// three: `z_i = x_i (x_i + 2 x_{i+1})`.
pub fn square<T: Ring>(p: &mut Party, x: &Shares<T>) -> Result<Shares<T>, MpcError> {
    if p.security == Security::Malicious && is_checked::<T>() {
        return mul(p, x, x);
    }
    p.semi_honest_only("square over Z_2^k")?;
    let (prev, next) = (p.prev(), p.next());
    let (a, b) = stream_exchange(p, prev, next, x.len(), |p, r, out| {
        let alpha = zero_share::<T>(p, r.len());
        out.extend(
            x.a[r.clone()]
                .iter()
                .zip(&x.b[r])
                .zip(alpha)
                .map(|((xa, xb), al)| *xa * (*xa + *xb + *xb) + al),
        )
    })?;
    Ok(Shares::new(a, b))
}

/// `sum_j x_j * y_j` as a one-element sharing. One round, one element sent,
/// whatever the length: the products are summed before resharing.
pub fn dot<T: Ring>(p: &mut Party, x: &Shares<T>, y: &Shares<T>) -> Result<Shares<T>, MpcError> {
    if x.len() != y.len() {
        return Err(MpcError::InvalidArgument("dot: operands differ in length"));
    }
    if p.security == Security::Malicious {
        if let Some(z) = checked_products(p, x, y, &[x.len()]) {
            return z;
        }
    }
    p.semi_honest_only("dot over Z_2^k")?;
    let mut acc = T::zero();
    for ((xa, xb), (ya, yb)) in x.a.iter().zip(&x.b).zip(y.a.iter().zip(&y.b)) {
        acc += *xa * *ya + *xa * *yb + *xb * *ya;
    }
    let alpha = zero_share::<T>(p, 1)[0];
    reshare(p, vec![acc + alpha])
}

/// Reveals `x` to all three parties. One round: each party is missing
/// `x_{i+2}`, which `next` holds as its `b`.
///
/// Every AND recorded so far is checked first ([`verify`], two rounds when
/// any are pending): nothing is opened on top of an unchecked gate. In
/// malicious mode the missing component comes from both peers and must
/// agree (Furukawa et al. EUROCRYPT 2017, "compare views"), so a party
/// that sends a wrong component is caught instead of changing the value.
pub fn open<T: Ring>(p: &mut Party, x: &Shares<T>) -> Result<Vec<T>, MpcError> {
    verify(p)?;
    if p.security == Security::Malicious {
        return open_compared(p, x);
    }
    let (prev, next) = (p.prev(), p.next());
    let (_, c) = stream_exchange(p, prev, next, x.len(), |_, r, out| {
        out.extend_from_slice(&x.b[r])
    })?;
    Ok(with_missing(x, c))
}

/// The opened values: our two components plus the missing one.
fn with_missing<T: Ring>(x: &Shares<T>, missing: Vec<T>) -> Vec<T> {
    x.a.iter()
        .zip(&x.b)
        .zip(missing)
        .map(|((a, b), c)| *a + *b + c)
        .collect()
}

/// [`open`] with redundancy: the missing component `x_{i+2}` is `next`'s
/// `b` and `prev`'s `a`; both send it and the copies must agree. One round,
/// twice the bytes.
fn open_compared<T: Ring>(p: &mut Party, x: &Shares<T>) -> Result<Vec<T>, MpcError> {
    let (prev, next) = (p.prev(), p.next());
    let n = x.len();
    p.rounds += 1;
    send_vec(p.net.as_mut(), prev, &x.b)?;
    send_vec(p.net.as_mut(), next, &x.a)?;
    let from_next: Vec<T> = recv_vec(p.net.as_mut(), next, n)?;
    let from_prev: Vec<T> = recv_vec(p.net.as_mut(), prev, n)?;
    if from_next != from_prev {
        return Err(MpcError::CheatingDetected {
            check: "opening",
            detail: format!("{next} and {prev} sent different copies of the same component"),
        });
    }
    Ok(with_missing(x, from_next))
}

/// Reveals `x` to `target` only (`Some` there, `None` elsewhere). One
/// round: `next(target)` sends its `b`; in malicious mode `prev(target)`
/// also sends its `a` (the same component) and the target compares the
/// copies. Every recorded gate is checked first.
pub fn open_to<T: Ring>(
    p: &mut Party,
    x: &Shares<T>,
    target: PartyId,
) -> Result<Option<Vec<T>>, MpcError> {
    verify(p)?;
    p.rounds += 1;
    let compared = p.security == Security::Malicious;
    if p.id == target.next() {
        send_vec(p.net.as_mut(), target, &x.b)?;
    } else if p.id == target.prev() && compared {
        send_vec(p.net.as_mut(), target, &x.a)?;
    }
    if p.id != target {
        return Ok(None);
    }
    let c: Vec<T> = recv_vec(p.net.as_mut(), target.next(), x.len())?;
    if compared {
        let copy: Vec<T> = recv_vec(p.net.as_mut(), target.prev(), x.len())?;
        if copy != c {
            return Err(MpcError::CheatingDetected {
                check: "opening",
                detail: format!(
                    "{} and {} sent different copies of the same component",
                    target.next(),
                    target.prev()
                ),
            });
        }
    }
    Ok(Some(with_missing(x, c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Bits, Fr, Z128, Z64};
    use proptest::prelude::*;
    use std::num::Wrapping;

    fn check_mul<T: Ring>(x: Vec<T>, y: Vec<T>) {
        let mut rng = test_rng();
        let xs = share_plain(&x, &mut rng);
        let ys = share_plain(&y, &mut rng);
        let out = run3(|p| {
            let i = p.id.index();
            let z = mul(p, &xs[i], &ys[i]).unwrap();
            let d = dot(p, &xs[i], &ys[i]).unwrap();
            let sq = square(p, &xs[i]).unwrap();
            (
                open(p, &z).unwrap(),
                open(p, &d).unwrap(),
                open(p, &sq).unwrap(),
            )
        });
        let want: Vec<T> = x.iter().zip(&y).map(|(a, b)| *a * *b).collect();
        let want_dot = want.iter().fold(T::zero(), |acc, v| acc + *v);
        let want_sq: Vec<T> = x.iter().map(|a| *a * *a).collect();
        for (z, d, sq) in out {
            assert_eq!(z, want);
            assert_eq!(d, vec![want_dot]);
            assert_eq!(sq, want_sq);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn mul_and_dot_match_plaintext_z64(v in prop::collection::vec((crate::protocols::edge_u64(), crate::protocols::edge_u64()), 1..40)) {
            let (x, y): (Vec<_>, Vec<_>) = v.into_iter().map(|(a, b)| (Wrapping(a), Wrapping(b))).unzip();
            check_mul::<Z64>(x, y);
        }

        #[test]
        fn mul_matches_plaintext_z128(v in prop::collection::vec((any::<u128>(), prop_oneof![Just(0u128), Just(u128::MAX), any::<u128>()]), 1..20)) {
            let (x, y): (Vec<_>, Vec<_>) = v.into_iter().map(|(a, b)| (Wrapping(a), Wrapping(b))).unzip();
            check_mul::<Z128>(x, y);
        }

        #[test]
        fn and_matches_plaintext(v in prop::collection::vec((crate::protocols::edge_u64(), crate::protocols::edge_u64()), 1..20)) {
            let (x, y): (Vec<_>, Vec<_>) = v.into_iter().map(|(a, b)| (Bits(a), Bits(b))).unzip();
            check_mul::<Bits>(x, y);
        }

        #[test]
        fn field_mul_matches_plaintext(v in prop::collection::vec((any::<u64>(), any::<i64>()), 1..10)) {
            let (x, y): (Vec<_>, Vec<_>) = v.into_iter()
                .map(|(a, b)| (Fr::from(a), triad_crypto::fr_from_i128(b as i128))).unzip();
            check_mul::<Fr>(x, y);
        }
    }

    /// Vectors above [`CHUNK`] are streamed in several messages: the
    /// result is the same, and each party sent one message per chunk.
    #[test]
    fn multi_chunk_streaming_matches_plaintext() {
        let n = 2 * CHUNK + 3;
        let mut prg = crate::prg::Prg::new([9; 16]);
        let x: Vec<Z64> = Z64::random_vec(&mut prg, n);
        let mut y: Vec<Z64> = Z64::random_vec(&mut prg, n);
        y[0] = Wrapping(u64::MAX);
        y[n - 1] = Wrapping(0);
        let mut rng = test_rng();
        let (xs, ys) = (share_plain(&x, &mut rng), share_plain(&y, &mut rng));
        let out = run3(|p| {
            let i = p.id.index();
            let before = p.net.stats().messages_sent;
            let z = mul(p, &xs[i], &ys[i]).unwrap();
            let messages = p.net.stats().messages_sent - before;
            (open(p, &z).unwrap(), messages)
        });
        let want: Vec<Z64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
        for (z, messages) in out {
            assert_eq!(messages, 3, "three chunks");
            assert!(z == want, "streamed product differs from the plaintext");
        }
    }

    #[test]
    fn open_to_reveals_only_to_target_and_random_shares_are_consistent() {
        let x: Vec<Z64> = vec![Wrapping(5), Wrapping(u64::MAX)];
        let xs = share_plain(&x, &mut test_rng());
        for t in PartyId::ALL {
            let out = run3(|p| {
                let r = random_shares::<Z64>(p, 3);
                let opened_r = open(p, &r).unwrap();
                let z: Vec<Z64> = zero_share(p, 4);
                (open_to(p, &xs[p.id.index()], t).unwrap(), opened_r, z)
            });
            for (i, (o, _, _)) in out.iter().enumerate() {
                assert_eq!(o.is_some(), i == t.index());
            }
            assert_eq!(out[t.index()].0.as_ref().unwrap(), &x);
            assert_eq!(out[0].1, out[1].1);
            assert_eq!(out[1].1, out[2].1);
            for k in 0..4 {
                assert_eq!(out[0].2[k] + out[1].2[k] + out[2].2[k], Wrapping(0));
            }
        }
    }
}
