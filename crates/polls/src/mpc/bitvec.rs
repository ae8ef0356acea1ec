//! Packed bit vectors and bit matrices over XOR shares, for the re-keying
//! joins ([`super::rekey`]): a *vector* of `n` bits is `n.div_ceil(64)`
//! words; a *matrix* of `r` rows is `r` such vectors back to back. Local
//! helpers act on both components alike (XOR-linear maps); the others cost
//! AND gates, 64 per word on the wire.

use triad_mpc::protocols::binary::{and, not};
use triad_mpc::{Bits, MpcError, Party, Shares};

/// Words of an `n`-bit vector.
pub fn wlen(n: usize) -> usize {
    n.div_ceil(64)
}

fn map2(x: &Shares<Bits>, f: impl Fn(&[Bits]) -> Vec<Bits>) -> Shares<Bits> {
    Shares::new(f(&x.a), f(&x.b))
}

/// Bit-planes: item `k` has `stride` words starting at `k * stride`; plane
/// `b` (for `b` in `bits`) holds bit `b` (counted from word `off`) of
/// every item, as an `n`-bit vector. Local.
pub fn planes(
    x: &Shares<Bits>,
    n: usize,
    stride: usize,
    off: usize,
    bits: std::ops::Range<usize>,
) -> Vec<Shares<Bits>> {
    bits.map(|b| {
        map2(x, |v| {
            let mut out = vec![Bits(0); wlen(n)];
            for k in 0..n {
                let w = v[k * stride + off + b / 64].0;
                out[k / 64].0 |= ((w >> (b % 64)) & 1) << (k % 64);
            }
            out
        })
    })
    .collect()
}

/// The inverse for up to 64 planes of `n` bits: `n` words, bit `b` of word
/// `k` being bit `k` of plane `b`. Local.
pub fn words(planes: &[Shares<Bits>], n: usize) -> Shares<Bits> {
    let f = |cols: Vec<&Vec<Bits>>| -> Vec<Bits> {
        (0..n)
            .map(|k| {
                let mut w = 0u64;
                for (b, c) in cols.iter().enumerate() {
                    w |= ((c[k / 64].0 >> (k % 64)) & 1) << b;
                }
                Bits(w)
            })
            .collect()
    };
    Shares::new(
        f(planes.iter().map(|x| &x.a).collect()),
        f(planes.iter().map(|x| &x.b).collect()),
    )
}

/// Keeps the first `n` bits of each of the rows of `w` words. Local.
pub fn mask(x: &Shares<Bits>, w: usize, n: usize) -> Shares<Bits> {
    let m: Vec<u64> = (0..w)
        .map(|k| match n.saturating_sub(k * 64) {
            0 => 0,
            r if r >= 64 => !0,
            r => (1u64 << r) - 1,
        })
        .collect();
    map2(x, |v| {
        v.iter()
            .enumerate()
            .map(|(i, x)| Bits(x.0 & m[i % w]))
            .collect()
    })
}

/// `rows` copies of `v` back to back. Local.
pub fn tile(v: &Shares<Bits>, rows: usize) -> Shares<Bits> {
    map2(v, |x| {
        let mut out = Vec::with_capacity(x.len() * rows);
        for _ in 0..rows {
            out.extend_from_slice(x);
        }
        out
    })
}

/// Row `i` is all ones where bit `i` of `bits` is 1 (an XOR sharing of a
/// bit broadcast to `w` words: each component's bit broadcast). Local.
pub fn spread(bits: &Shares<Bits>, rows: usize, w: usize) -> Shares<Bits> {
    map2(bits, |v| {
        let mut out = Vec::with_capacity(rows * w);
        for i in 0..rows {
            let b = (v[i / 64].0 >> (i % 64)) & 1;
            out.extend(std::iter::repeat_n(Bits(0u64.wrapping_sub(b)), w));
        }
        out
    })
}

/// Per row of `w` words, the XOR of its words' bit 0..64 parity: bit `i`
/// of the result is the XOR of all bits of row `i`. Local.
pub fn parity_rows(x: &Shares<Bits>, rows: usize, w: usize) -> Shares<Bits> {
    map2(x, |v| {
        let mut out = vec![Bits(0); wlen(rows)];
        for i in 0..rows {
            let p = v[i * w..(i + 1) * w]
                .iter()
                .fold(0u32, |acc, x| acc ^ (x.0.count_ones() & 1));
            out[i / 64].0 |= u64::from(p) << (i % 64);
        }
        out
    })
}

/// The XOR of all rows (`rows` rows of `w` words). Local.
pub fn xor_rows(x: &Shares<Bits>, rows: usize, w: usize) -> Shares<Bits> {
    map2(x, |v| {
        let mut out = vec![Bits(0); w];
        for i in 0..rows {
            for k in 0..w {
                out[k].0 ^= v[i * w + k].0;
            }
        }
        out
    })
}

/// AND of all vectors (same length), as a balanced tree: one round per
/// level, every pair of a level in one call.
pub fn and_all(p: &mut Party, mut xs: Vec<Shares<Bits>>) -> Result<Shares<Bits>, MpcError> {
    assert!(!xs.is_empty(), "and_all of nothing");
    while xs.len() > 1 {
        let carry = if xs.len() % 2 == 1 { xs.pop() } else { None };
        let half = xs.len() / 2;
        let len = xs[0].len();
        let left: Vec<&Shares<Bits>> = xs.iter().step_by(2).collect();
        let right: Vec<&Shares<Bits>> = xs.iter().skip(1).step_by(2).collect();
        let prod = and(p, &Shares::concat(&left), &Shares::concat(&right))?;
        xs = (0..half)
            .map(|i| prod.slice(i * len..(i + 1) * len))
            .collect();
        xs.extend(carry);
    }
    Ok(xs.pop().expect("one vector left"))
}

/// Shifts each row (of `w` words, `n` bits) towards higher bit indexes by
/// `s` (bit `k` takes bit `k − s`; zeros come in). Local.
fn shift_rows(x: &Shares<Bits>, w: usize, s: usize) -> Shares<Bits> {
    map2(x, |v| {
        let rows = v.len() / w;
        let mut out = vec![Bits(0); v.len()];
        let (ws, bs) = (s / 64, s % 64);
        for r in 0..rows {
            for k in ws..w {
                let src = k - ws;
                let mut word = v[r * w + src].0 << bs;
                if bs > 0 && src > 0 {
                    word |= v[r * w + src - 1].0 >> (64 - bs);
                }
                out[r * w + k] = Bits(word);
            }
        }
        out
    })
}

/// `a OR b = a ⊕ b ⊕ (a ∧ b)`: one AND.
fn or(p: &mut Party, a: &Shares<Bits>, b: &Shares<Bits>) -> Result<Shares<Bits>, MpcError> {
    Ok(a.add(b).add(&and(p, a, b)?))
}

/// Per row of `n` bits (`w` words): bit `k` becomes the OR of bits `0..k`
/// (exclusive prefix OR; bit 0 becomes 0). Kogge-Stone: ⌈log₂ n⌉ rounds.
pub fn prefix_or_exclusive(
    p: &mut Party,
    x: &Shares<Bits>,
    w: usize,
    n: usize,
) -> Result<Shares<Bits>, MpcError> {
    let mut acc = x.clone();
    let mut s = 1;
    while s < n {
        acc = or(p, &acc, &shift_rows(&acc, w, s))?;
        s *= 2;
    }
    Ok(shift_rows(&acc, w, 1))
}

/// Per row of `n` bits (`w` words, bits at and above `n` zero): the OR of
/// the row, packed one bit per row. `log₂ w + 6` rounds.
pub fn or_rows(
    p: &mut Party,
    x: &Shares<Bits>,
    rows: usize,
    w: usize,
    n: usize,
) -> Result<Shares<Bits>, MpcError> {
    // OR = NOT AND NOT; padding bits become ones, neutral for AND.
    let mut y = not(p, &mask(x, w, n));
    let mut width = w;
    while width > 1 {
        let half = width.div_ceil(2);
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for row in 0..rows {
            for k in 0..half {
                l.push(row * width + k);
                r.push(if half + k < width {
                    row * width + half + k
                } else {
                    usize::MAX
                });
            }
        }
        let left = y.gather(&l);
        let ones = not(p, &Shares::zeros(1));
        let right = {
            let pick = |v: &[Bits], o: &[Bits]| -> Vec<Bits> {
                r.iter()
                    .map(|&i| if i == usize::MAX { o[0] } else { v[i] })
                    .collect()
            };
            Shares::new(pick(&y.a, &ones.a), pick(&y.b, &ones.b))
        };
        y = and(p, &left, &right)?;
        width = half;
    }
    // Now one word per row: fold its 64 bits.
    for s in [32u32, 16, 8, 4, 2, 1] {
        let shifted = map2(&y, |v| v.iter().map(|x| Bits(x.0 >> s)).collect());
        y = and(p, &y, &shifted)?;
    }
    let packed = map2(&y, |v| {
        let mut out = vec![Bits(0); wlen(rows)];
        for (i, x) in v.iter().enumerate() {
            out[i / 64].0 |= (x.0 & 1) << (i % 64);
        }
        out
    });
    Ok(mask(&not(p, &packed), wlen(rows), rows))
}

/// Appends the first `m` bits of `y` after the first `n` bits of `x`. Local.
pub fn append_bits(x: &Shares<Bits>, n: usize, y: &Shares<Bits>, m: usize) -> Shares<Bits> {
    let f = |a: &[Bits], b: &[Bits]| -> Vec<Bits> {
        let mut out = vec![Bits(0); wlen(n + m)];
        let bit = |v: &[Bits], k: usize| (v[k / 64].0 >> (k % 64)) & 1;
        for k in 0..n {
            out[k / 64].0 |= bit(a, k) << (k % 64);
        }
        for k in 0..m {
            out[(n + k) / 64].0 |= bit(b, k) << ((n + k) % 64);
        }
        out
    };
    Shares::new(f(&x.a, &y.a), f(&x.b, &y.b))
}
