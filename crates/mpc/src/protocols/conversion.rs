//! Conversions between arithmetic and binary sharings (ABY3 §5).

use crate::network::{recv_vec, send_vec};
use crate::protocols::arithmetic::{mul, open_to, reshare, zero_share};
use crate::protocols::binary::{add3_words, and, bitslice, carry_save, summands, transpose64};
use crate::{Bits, Fr, MpcError, Party, PartyId, Ring, Security, Shares, Z128, Z64};

/// Arithmetic (mod 2^64) to binary, word layout: the three components are
/// trivially XOR-shared summands, added in a boolean circuit. 8 rounds.
pub fn a2b(p: &mut Party, x: &Shares<Z64>) -> Result<Shares<Bits>, MpcError> {
    let a: Vec<Bits> = x.a.iter().map(|v| Bits(v.0)).collect();
    let b: Vec<Bits> = x.b.iter().map(|v| Bits(v.0)).collect();
    let [s0, s1, s2] = summands(p, &a, &b);
    add3_words(p, &s0, &s1, &s2)
}

/// Arithmetic (mod 2^64) to binary, bit-sliced: 64 planes of
/// `ceil(n/64)` words, plane `j` holding bit `j` of 64 elements per word.
/// The circuit is the cheaper on this party's links
/// ([`LinkModel`](crate::LinkModel)): for large batches a carry-save step
/// and a ripple-carry adder (63 rounds, 126 bits per element), otherwise
/// [`a2b`]'s log-depth adder (8 rounds, ~830 bits) and a local transpose.
pub fn a2b_sliced(p: &mut Party, x: &Shares<Z64>) -> Result<Shares<Bits>, MpcError> {
    let n = x.len() as f64;
    let gate = p.check_seconds_per_gate();
    let ripple = p.link.cost(63, n * 126.0 / 8.0) + gate * n * 126.0
        < p.link.cost(8, n * 832.0 / 8.0) + gate * n * 832.0;
    if !ripple {
        let words = a2b(p, x)?;
        let z64 = |v: &[Bits]| {
            v.iter()
                .map(|b| std::num::Wrapping(b.0))
                .collect::<Vec<Z64>>()
        };
        return Ok(Shares::new(
            bitslice(&z64(&words.a), 64),
            bitslice(&z64(&words.b), 64),
        ));
    }
    let w = x.len().div_ceil(64);
    let [s0, s1, s2] = summands(p, &bitslice(&x.a, 64), &bitslice(&x.b, 64));
    // x_0 + x_1 + x_2 = s + 2c, then s + t with t = c << 1 (plane 0 zero).
    let (s, c) = carry_save(p, &s0, &s1, &s2)?;
    let plane = |v: &Shares<Bits>, j: usize| v.slice(j * w..(j + 1) * w);
    let t = |j: usize| {
        if j == 0 {
            Shares::zeros(w)
        } else {
            plane(&c, j - 1)
        }
    };
    // carry_0 = carry_1 = 0 (t_0 = 0); carry_{j+1} = maj(s_j, t_j, carry_j).
    let mut sum = Vec::with_capacity(64);
    let mut carry = Shares::<Bits>::zeros(w);
    for j in 0..64 {
        let (sj, tj) = (plane(&s, j), t(j));
        sum.push(sj.add(&tj).add(&carry));
        if (1..63).contains(&j) {
            let u = sj.add(&carry);
            let v = tj.add(&carry);
            carry = and(p, &u, &v)?.add(&carry);
        }
    }
    let refs: Vec<&Shares<Bits>> = sum.iter().collect();
    Ok(Shares::concat(&refs))
}

/// Binary (word layout) to arithmetic mod 2^64.
///
/// Components 1 and 2 of the result are random, drawn from the P0/P1 and
/// P1/P2 streams (`r1`, `r2`). Component 0 must be `x - r1 - r2`: it is
/// computed in a boolean circuit (`-r1` and `-r2` are trivially XOR-shared
/// since each is known to the two parties holding that component) and
/// opened to P0 and P2 only, by P1. 9 rounds.
pub fn b2a(p: &mut Party, x: &Shares<Bits>) -> Result<Shares<Z64>, MpcError> {
    p.semi_honest_only("b2a")?;
    let n = x.len();
    let i = p.id.index();
    let zero = vec![Bits(0); n];
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    if i == 0 {
        r1 = (0..n).map(|_| Z64::random(&mut p.prg_next)).collect();
    }
    if i == 1 {
        r1 = (0..n).map(|_| Z64::random(&mut p.prg_prev)).collect();
        r2 = (0..n).map(|_| Z64::random(&mut p.prg_next)).collect();
    }
    if i == 2 {
        r2 = (0..n).map(|_| Z64::random(&mut p.prg_prev)).collect();
    }
    let neg = |r: &Vec<Z64>| {
        r.iter()
            .map(|v| Bits(v.0.wrapping_neg()))
            .collect::<Vec<_>>()
    };
    // -r1 in component 1 (P0's b, P1's a); -r2 in component 2 (P1's b, P2's a).
    let y = match i {
        0 => Shares::new(zero.clone(), neg(&r1)),
        1 => Shares::new(neg(&r1), zero.clone()),
        _ => Shares::new(zero.clone(), zero.clone()),
    };
    let z = match i {
        1 => Shares::new(zero.clone(), neg(&r2)),
        2 => Shares::new(neg(&r2), zero.clone()),
        _ => Shares::new(zero.clone(), zero),
    };
    let s = add3_words(p, x, &y, &z)?;
    let (p0, p1, p2) = (
        PartyId::new(0).unwrap(),
        PartyId::new(1).unwrap(),
        PartyId::new(2).unwrap(),
    );
    let combine = |s: &Shares<Bits>, c: Vec<Bits>| -> Vec<Z64> {
        s.a.iter()
            .zip(&s.b)
            .zip(c)
            .map(|((a, b), c)| std::num::Wrapping((*a + *b + c).0))
            .collect()
    };
    p.rounds += 1;
    match i {
        0 => {
            let c = recv_vec(p.net.as_mut(), p1, n)?;
            Ok(Shares::new(combine(&s, c), r1))
        }
        1 => {
            send_vec(p.net.as_mut(), p0, &s.b)?;
            send_vec(p.net.as_mut(), p2, &s.a)?;
            Ok(Shares::new(r1, r2))
        }
        _ => {
            let c = recv_vec(p.net.as_mut(), p1, n)?;
            Ok(Shares::new(r2, combine(&s, c)))
        }
    }
}

/// Statistical security of [`b2a_fr`]'s masks per run, bits.
pub const MASK_SIGMA: usize = 40;

/// The mask width's slack σ for `n` values of `l` bits: each value is
/// hidden up to `2^-σ`, so a run of `n` up to `n · 2^-σ`; σ = 40 +
/// ceil(log2 n) makes that 2^-40 per run. Capped where the masks'
/// integers would leave 128 bits (`l + σ + 3 <= 128`): for 64-bit words
/// beyond 2^21 values the run's bound degrades to `n · 2^-61`.
pub fn mask_sigma(l: usize, n: usize) -> usize {
    let log_n = n.max(1).next_power_of_two().trailing_zeros() as usize;
    (MASK_SIGMA + log_n).min(125 - l)
}

/// Bit-sliced binary values below `2^l` (`l <= 64` planes of
/// `ceil(n/64)` words, as [`a2b_sliced`] makes them) to shares in `F_r`;
/// secure against a malicious party in malicious mode.
///
/// Components 1 and 2 of the result are `r1 + 1` and `r2 + 1`, with `r1`,
/// `r2` uniform below `2^(l+σ+1)` (σ = [`mask_sigma`], 40 bits per run);
/// component 0,
/// `x − r1 − r2 − 2`, is computed over `K = l + σ + 3` bits as a
/// two's-complement integer (the masks' sum stays below `2^(K−1)`) and
/// opened to P0 and P2 ([`masked_component`]). P0 learns `x − r2` and P2
/// `x − r1`: each masked up to statistical distance `2^-σ`, because `F_r` has
/// no binary adder and the masks cannot be uniform mod `p`; the integers
/// are exact in `F_r`, far below its modulus. About `2K` AND gates and
/// `K + 2` rounds.
pub fn b2a_fr(
    p: &mut Party,
    planes: &Shares<Bits>,
    l: usize,
    n: usize,
) -> Result<Shares<Fr>, MpcError> {
    if l == 0 || l > 64 || planes.len() != l * n.div_ceil(64) {
        return Err(MpcError::InvalidArgument(
            "b2a_fr: planes do not match l and n",
        ));
    }
    let sigma = mask_sigma(l, n);
    let k = l + sigma + 3;
    let top = if k == 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    };
    let m = masked_component(p, planes, l, n, k, (1u128 << (l + sigma + 1)) - 1)?;
    let signed = |d: u128| {
        if d >> (k - 1) & 1 == 1 {
            -Fr::from(top - d + 1)
        } else {
            Fr::from(d)
        }
    };
    Ok(m.map(signed, |r| Fr::from(r + 1)))
}

/// Bit-sliced two's-complement 64-bit words (64 planes) to shares of their
/// values in Z_2^128 (sign-extended); secure against a malicious party in
/// malicious mode. Exact masks: components 1 and 2 are uniform, component
/// 0 is opened to P0 and P2 ([`masked_component`] over 128 bits). About
/// 256 AND gates and 130 rounds.
pub fn b2a_z128(p: &mut Party, planes: &Shares<Bits>, n: usize) -> Result<Shares<Z128>, MpcError> {
    let w = n.div_ceil(64);
    if planes.len() != 64 * w {
        return Err(MpcError::InvalidArgument("b2a_z128: expected 64 planes"));
    }
    // Sign extension: planes 64..128 repeat plane 63 (linear).
    let sign = planes.slice(63 * w..64 * w);
    let mut parts: Vec<&Shares<Bits>> = vec![planes];
    parts.extend(std::iter::repeat_n(&sign, 64));
    let extended = Shares::concat(&parts);
    let m = masked_component(p, &extended, 128, n, 128, u128::MAX)?;
    Ok(m.map(std::num::Wrapping, |r| {
        std::num::Wrapping(r.wrapping_add(1))
    }))
}

/// One party's parts of a masked conversion: component 0 (at P0 and P2),
/// and the masks it knows.
struct Masked {
    id: usize,
    d: Option<Vec<u128>>,
    r1: Vec<u128>,
    r2: Vec<u128>,
}

impl Masked {
    /// The replicated sharing `(d, r1 + 1, r2 + 1)` in the target ring.
    fn map<T: Ring>(self, d: impl Fn(u128) -> T, r: impl Fn(u128) -> T) -> Shares<T> {
        let conv = |v: Vec<u128>, f: &dyn Fn(u128) -> T| v.into_iter().map(f).collect::<Vec<T>>();
        let d_ = self.d.unwrap_or_default();
        match self.id {
            0 => Shares::new(conv(d_, &d), conv(self.r1, &r)),
            1 => Shares::new(conv(self.r1, &r), conv(self.r2, &r)),
            _ => Shares::new(conv(self.r2, &r), conv(d_, &d)),
        }
    }
}

/// The common core of [`b2a_fr`] and [`b2a_z128`] (ABY3, Mohassel and
/// Rindal, CCS 2018, section 5.3): `r1` (P0/P1 stream) and `r2` (P1/P2
/// stream), each `& mask`, are known to the two parties holding
/// components 1 and 2, so `¬r1`, `¬r2` are XOR-shared with no
/// communication; `d = x + ¬r1 + ¬r2 mod 2^k = x − r1 − r2 − 2` is computed
/// with a carry-save step and a ripple-carry adder over the `k` planes
/// (`x` given in its first `l` planes) and opened to P0 and P2 only
/// ([`open_to`]: compared copies in malicious mode, after every gate is
/// checked). P1 learns nothing.
fn masked_component(
    p: &mut Party,
    planes: &Shares<Bits>,
    l: usize,
    n: usize,
    k: usize,
    mask: u128,
) -> Result<Masked, MpcError> {
    let w = n.div_ceil(64);
    let draw = |prg: &mut crate::prg::Prg| -> Vec<u128> {
        (0..n)
            .map(|_| ((prg.next_u64() as u128) | ((prg.next_u64() as u128) << 64)) & mask)
            .collect()
    };
    let i = p.id.index();
    let r1 = match i {
        0 => draw(&mut p.prg_next),
        1 => draw(&mut p.prg_prev),
        _ => Vec::new(),
    };
    let r2 = match i {
        1 => draw(&mut p.prg_next),
        2 => draw(&mut p.prg_prev),
        _ => Vec::new(),
    };
    let top = if k == 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    };
    // ¬r over k bits, bit-sliced, as a sharing with the value in
    // component `c` (zeros at the party that does not hold it).
    let complement = |r: &[u128], c: usize| -> Shares<Bits> {
        let planes = if r.is_empty() {
            vec![Bits(0); k * w]
        } else {
            let v: Vec<crate::Z128> = r.iter().map(|r| std::num::Wrapping(!r & top)).collect();
            bitslice(&v, k as u32)
        };
        let zero = vec![Bits(0); k * w];
        Shares::new(
            if c == i { planes.clone() } else { zero.clone() },
            if c == (i + 1) % 3 { planes } else { zero },
        )
    };
    let (u1, u2) = (complement(&r1, 1), complement(&r2, 2));
    let x = Shares::concat(&[planes, &Shares::zeros((k - l) * w)]);
    let d = ripple_add3(p, &x, &u1, &u2, k, w)?;
    let at_p0 = open_to(p, &d, PartyId::ALL[0])?;
    let at_p2 = open_to(p, &d, PartyId::ALL[2])?;
    let d = at_p0.or(at_p2).map(|planes| unslice_plain(&planes, k, n));
    Ok(Masked { id: i, d, r1, r2 })
}

/// `x + y + z mod 2^k` on bit-sliced sharings (`k` planes of `w` words):
/// a carry-save step, then a ripple-carry adder. `k` rounds, about `2k`
/// AND gates per element.
fn ripple_add3(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    z: &Shares<Bits>,
    k: usize,
    w: usize,
) -> Result<Shares<Bits>, MpcError> {
    let (s, c) = carry_save(p, x, y, z)?;
    let plane = |v: &Shares<Bits>, j: usize| v.slice(j * w..(j + 1) * w);
    let mut sum = Vec::with_capacity(k);
    let mut carry = Shares::<Bits>::zeros(w);
    for j in 0..k {
        let sj = plane(&s, j);
        let tj = if j == 0 {
            Shares::zeros(w)
        } else {
            plane(&c, j - 1)
        };
        sum.push(sj.add(&tj).add(&carry));
        // carry_1 = maj(s_0, 0, 0) = 0; the carry out of the top is dropped.
        if (1..k - 1).contains(&j) {
            let u = sj.add(&carry);
            let v = tj.add(&carry);
            carry = and(p, &u, &v)?.add(&carry);
        }
    }
    let refs: Vec<&Shares<Bits>> = sum.iter().collect();
    Ok(Shares::concat(&refs))
}

/// Opened bit-sliced planes (`k <= 128` planes of `ceil(n/64)` words) back
/// to one integer per element.
fn unslice_plain(planes: &[Bits], k: usize, n: usize) -> Vec<u128> {
    let words = n.div_ceil(64);
    let mut out = vec![0u128; n];
    let mut block = [0u64; 64];
    for half in 0..k.div_ceil(64) {
        for w in 0..words {
            block.fill(0);
            for (j, row) in block.iter_mut().enumerate().take(k - 64 * half) {
                *row = planes[(64 * half + j) * words + w].0;
            }
            transpose64(&mut block);
            for (r, v) in block
                .iter()
                .enumerate()
                .take(n.saturating_sub(64 * w).min(64))
            {
                out[64 * w + r] |= (*v as u128) << (64 * half);
            }
        }
    }
    out
}

/// Bit injection: packed binary shares of `n` bits (bit `i % 64` of word
/// `i / 64`) to shares of 0/1 in any ring or field.
///
/// With `b = x_0 ^ x_1 ^ x_2`: P0 knows `c = x_0 ^ x_1` and inputs it
/// (components 0 and 1 from the PRG streams it shares with P2 and P1,
/// component 2 sent to P1 and P2); then `b = c + x_2 - 2·c·x_2`. `x_2` is
/// known to P1 and P2 and is 0 or 1, so the local part of `c·x_2` is a
/// selection, not a multiplication: P1 adds `c_1` and P2 adds `c_2 + c_0`
/// where `x_2 = 1`; a zero sharing masks it and one reshare completes it.
/// 2 rounds; no multiplication in `T`.
///
/// Malicious mode ([`bit_inject_checked`], `F_r` only): P0's input above
/// could be any field element, so the XOR is computed from the three
/// components instead, with two checked products.
pub fn bit_inject<T: Ring>(
    p: &mut Party,
    x: &Shares<Bits>,
    n: usize,
) -> Result<Shares<T>, MpcError> {
    if x.len() * 64 < n {
        return Err(MpcError::InvalidArgument(
            "bit_inject: fewer packed bits than n",
        ));
    }
    if p.security == Security::Malicious {
        return bit_inject_checked(p, x, n);
    }
    let bit = |v: &[Bits], k: usize| (v[k / 64].0 >> (k % 64)) & 1 == 1;
    let from_bool = |b: bool| if b { T::one() } else { T::zero() };
    let i = p.id.index();
    let (p0, p1, p2) = (
        PartyId::new(0).unwrap(),
        PartyId::new(1).unwrap(),
        PartyId::new(2).unwrap(),
    );
    // 1. [c], c = x_0 ^ x_1, input by P0.
    p.rounds += 1;
    let c = match i {
        0 => {
            let c0 = T::random_vec(&mut p.prg_prev, n);
            let c1 = T::random_vec(&mut p.prg_next, n);
            let c2: Vec<T> = (0..n)
                .map(|k| from_bool(bit(&x.a, k) ^ bit(&x.b, k)) - c0[k] - c1[k])
                .collect();
            send_vec(p.net.as_mut(), p1, &c2)?;
            send_vec(p.net.as_mut(), p2, &c2)?;
            Shares::new(c0, c1)
        }
        1 => {
            let c1 = T::random_vec(&mut p.prg_prev, n);
            let c2 = recv_vec(p.net.as_mut(), p0, n)?;
            Shares::new(c1, c2)
        }
        _ => {
            let c2 = recv_vec(p.net.as_mut(), p0, n)?;
            let c0 = T::random_vec(&mut p.prg_next, n);
            Shares::new(c2, c0)
        }
    };
    // 2. [c·x_2]: x_2 is P1's b and P2's a.
    let alpha = zero_share::<T>(p, n);
    let z: Vec<T> = match i {
        0 => alpha,
        1 => (0..n)
            .map(|k| {
                if bit(&x.b, k) {
                    c.a[k] + alpha[k]
                } else {
                    alpha[k]
                }
            })
            .collect(),
        _ => (0..n)
            .map(|k| {
                if bit(&x.a, k) {
                    c.a[k] + c.b[k] + alpha[k]
                } else {
                    alpha[k]
                }
            })
            .collect(),
    };
    let cx = reshare(p, z)?;
    // 3. b = c + x_2 - 2·c·x_2, with x_2 in component 2.
    let x2: Shares<T> = match i {
        0 => Shares::zeros(n),
        1 => Shares::new(
            vec![T::zero(); n],
            (0..n).map(|k| from_bool(bit(&x.b, k))).collect(),
        ),
        _ => Shares::new(
            (0..n).map(|k| from_bool(bit(&x.a, k))).collect(),
            vec![T::zero(); n],
        ),
    };
    Ok(c.add(&x2).sub(&cx.scale(T::from_u64(2))))
}

/// Bit injection secure against a malicious party (the route of ABY3
/// §5.4.1 and ipa-core's `convert_bits`): with `b = x_0 ^ x_1 ^ x_2`, each
/// component `x_j` is a trivially shared 0/1 in `F_r` (held by the two
/// parties that hold `x_j` in the binary sharing), and
/// `t = x_0 + x_1 − 2·x_0·x_1`, `b = t + x_2 − 2·t·x_2`: two products, both
/// recorded for the check before the next opening
/// ([`crate::protocols::mulcheck`]). A party that uses another component
/// than its neighbour holds fails that check, as for any product. 2 rounds;
/// each party sends `2n` field elements.
fn bit_inject_checked<T: Ring>(
    p: &mut Party,
    x: &Shares<Bits>,
    n: usize,
) -> Result<Shares<T>, MpcError> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<Fr>() {
        return Err(MpcError::NotMaliciousSecure(
            "bit_inject into a ring (only F_r products are checked)",
        ));
    }
    let bits = |v: &[Bits]| -> Vec<T> {
        (0..n)
            .map(|k| {
                if (v[k / 64].0 >> (k % 64)) & 1 == 1 {
                    T::one()
                } else {
                    T::zero()
                }
            })
            .collect()
    };
    // Component j is party j's `a` and party prev(j)'s `b`.
    let i = p.id.index();
    let component = |j: usize| -> Shares<T> {
        let a = if i == j {
            bits(&x.a)
        } else {
            vec![T::zero(); n]
        };
        let b = if (i + 1) % 3 == j {
            bits(&x.b)
        } else {
            vec![T::zero(); n]
        };
        Shares::new(a, b)
    };
    let [x0, x1, x2] = [component(0), component(1), component(2)];
    let two = T::from_u64(2);
    let x01 = mul(p, &x0, &x1)?;
    let t = x0.add(&x1).sub(&x01.scale(two));
    let tx2 = mul(p, &t, &x2)?;
    Ok(t.add(&x2).sub(&tx2.scale(two)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::open;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Fr, Z128};
    use proptest::prelude::*;
    use std::num::Wrapping;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn a2b_sliced_matches_plaintext_with_either_circuit(
            v in prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 63), Just((1 << 52) - 1), any::<u64>()], 1..150),
            ripple in any::<bool>(),
        ) {
            use crate::protocols::binary::unbitslice;
            let x: Vec<Z64> = v.iter().map(|&a| Wrapping(a)).collect();
            let sh = share_plain(&x, &mut test_rng());
            let out = run3(|p| {
                p.link.round_seconds = if ripple { 0.0 } else { 1.0 };
                let planes = a2b_sliced(p, &sh[p.id.index()]).unwrap();
                open(p, &unbitslice(&planes, 64, v.len())).unwrap()
            });
            let want: Vec<Bits> = v.iter().map(|&a| Bits(a)).collect();
            prop_assert_eq!(&out[0], &want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn a2b_then_b2a_round_trips(v in prop::collection::vec(crate::protocols::edge_u64(), 1..50)) {
            let xs: Vec<Z64> = v.iter().map(|&x| Wrapping(x)).collect();
            let sh = share_plain(&xs, &mut test_rng());
            let out = run3(|p| {
                let b = a2b(p, &sh[p.id.index()]).unwrap();
                let back = b2a(p, &b).unwrap();
                (open(p, &b).unwrap(), open(p, &back).unwrap())
            });
            let bits: Vec<Bits> = v.iter().map(|&x| Bits(x)).collect();
            prop_assert_eq!(&out[0].0, &bits);
            prop_assert_eq!(&out[1].1, &xs);
        }

        #[test]
        fn bit_inject_to_ring_and_field(v in prop::collection::vec(any::<bool>(), 1..140)) {
            let mut packed = vec![Bits(0); v.len().div_ceil(64)];
            for (i, b) in v.iter().enumerate() {
                packed[i / 64].0 |= (*b as u64) << (i % 64);
            }
            let sh = share_plain(&packed, &mut test_rng());
            let n = v.len();
            let out = run3(|p| {
                let s = &sh[p.id.index()];
                let r = bit_inject::<Z128>(p, s, n).unwrap();
                let f = bit_inject::<Fr>(p, s, n).unwrap();
                (open(p, &r).unwrap(), open(p, &f).unwrap())
            });
            let want_r: Vec<Z128> = v.iter().map(|&b| Wrapping(b as u128)).collect();
            let want_f: Vec<Fr> = v.iter().map(|&b| Fr::from(b as u64)).collect();
            prop_assert_eq!(&out[2].0, &want_r);
            prop_assert_eq!(&out[2].1, &want_f);
        }
    }
}
