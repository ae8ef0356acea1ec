//! Comparison of XOR-shared integers, opened: the sort's and the
//! histogram's comparator.
//!
//! Operands are bit-sliced: plane `j` (bit `j`, least significant first)
//! packs that bit of 64 elements per word. `x < y` is the borrow out of
//! `x - y`, i.e. the complement of the carry out of `x + not(y) + 1`, and
//! two circuits compute it:
//! - [`Circuit::Chain`]: the ripple carry `c' = ((x ^ c) & (not(y) ^ c)) ^ c`,
//!   one AND per bit: `l` bits sent per comparison, `l` rounds;
//! - [`Circuit::Tree`]: per bit "less" `L = not(x) & y` and "equal"
//!   `E = not(x ^ y)`, combined pairwise `(L, E)_hi o (L, E)_lo =
//!   (L_hi ^ E_hi & L_lo, E_hi & E_lo)` in `ceil(log2 l)` levels: about
//!   `3 l` bits, `1 + ceil(log2 l)` rounds.
//!
//! [`choose`] picks the cheaper one for a batch from the party's
//! [`LinkModel`](crate::LinkModel): chains for large batches on fast links,
//! trees for small batches or slow links. Either way the last AND and the
//! opening share one round ([`and_open`]).

use crate::network::{recv_vec, send_vec};
use crate::protocols::arithmetic::{mul, mul_into, open};
use crate::protocols::binary::{not, reduce_groups, transpose64};
use crate::{Bits, MpcError, Party, Security, Shares};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Chain,
    Tree,
}

impl Circuit {
    /// Rounds for `l`-bit operands, the opening included.
    pub fn rounds(self, l: usize) -> u64 {
        match self {
            Circuit::Chain => l as u64,
            Circuit::Tree => 1 + (l.max(1) as u64).next_power_of_two().trailing_zeros() as u64,
        }
    }

    /// Bits one party sends per comparison of `l`-bit operands, the
    /// opening included (it sends its share of the last AND to both peers).
    pub fn bits_sent(self, l: usize) -> f64 {
        match self {
            Circuit::Chain => l as f64 + 1.0,
            Circuit::Tree => 3.0 * l as f64,
        }
    }
}

/// The circuit with the lower estimated time for `m` comparisons of
/// `l`-bit operands on this party's links; in malicious mode every AND
/// also costs its check ([`Party::check_seconds_per_gate`]), which favours the
/// chain (a third of the tree's gates).
pub fn choose(p: &Party, m: usize, l: usize) -> Circuit {
    let per_gate = p.check_seconds_per_gate();
    let cost = |c: Circuit| {
        let gates = m as f64 * c.bits_sent(l);
        p.link.cost(c.rounds(l), gates / 8.0) + per_gate * gates
    };
    if cost(Circuit::Chain) < cost(Circuit::Tree) {
        Circuit::Chain
    } else {
        Circuit::Tree
    }
}

/// Opens `lin ^ (x & y)` in one round: each party's additive share of the
/// product (masked by a fresh zero sharing, so the three shares are a
/// random sharing of the result) plus its component of `lin` goes to both
/// peers. The bytes of an AND and an opening, in the round of the AND.
pub fn and_open(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    lin: &Shares<Bits>,
) -> Result<Vec<Bits>, MpcError> {
    let n = x.len();
    if y.len() != n || lin.len() != n {
        return Err(MpcError::InvalidArgument(
            "and_open: operands differ in length",
        ));
    }
    if p.security == Security::Malicious {
        // The AND is checked before anything is opened: one more round.
        let t = mul(p, x, y)?;
        return open(p, &t.add(lin));
    }
    let mine: Vec<Bits> = (0..n)
        .map(|k| {
            let (xa, xb, ya, yb) = (x.a[k].0, x.b[k].0, y.a[k].0, y.b[k].0);
            let zero = p.prg_next.next_u64() ^ p.prg_prev.next_u64();
            Bits((xa & (ya ^ yb)) ^ (xb & ya) ^ zero ^ lin.a[k].0)
        })
        .collect();
    p.rounds += 1;
    let (prev, next) = (p.prev(), p.next());
    send_vec(p.net.as_mut(), prev, &mine)?;
    send_vec(p.net.as_mut(), next, &mine)?;
    let from_next: Vec<Bits> = recv_vec(p.net.as_mut(), next, n)?;
    let from_prev: Vec<Bits> = recv_vec(p.net.as_mut(), prev, n)?;
    Ok((0..n)
        .map(|k| mine[k] + from_next[k] + from_prev[k])
        .collect())
}

/// Opens `[x < y]` for bit-sliced operands of `l` planes of `w` words each
/// (`x.len() == y.len() == l * w`): `w` words, bit `r` of word `i` for
/// element `64 i + r`.
pub fn lt_open(
    p: &mut Party,
    x: &Shares<Bits>,
    y: &Shares<Bits>,
    l: usize,
    circuit: Circuit,
) -> Result<Vec<Bits>, MpcError> {
    if l == 0 || x.len() != y.len() || !x.len().is_multiple_of(l) {
        return Err(MpcError::InvalidArgument(
            "lt_open: operands must be l equal planes",
        ));
    }
    let w = x.len() / l;
    let plane = |s: &Shares<Bits>, j: usize| s.slice(j * w..(j + 1) * w);
    let out = match circuit {
        Circuit::Chain => {
            // c_0 = 1; c_{j+1} = ((x_j ^ c_j) & (not y_j ^ c_j)) ^ c_j. The
            // operands of each round's AND are built in reused buffers.
            let mut c = Shares::from_public(p.id, &vec![Bits(!0); w]);
            let (mut u, mut v, mut t) = (Shares::zeros(w), Shares::zeros(w), Shares::zeros(w));
            // `not` is XOR with a public 1, which sits in component 0
            // (party 0's `a`, party 2's `b`).
            let me = p.id.index();
            let one = move |comp: usize, negate: bool| {
                let public = (me == 0 && comp == 0) || (me == 2 && comp == 1);
                if negate && public {
                    !0
                } else {
                    0
                }
            };
            let fill = |dst: &mut Shares<Bits>,
                        src: &Shares<Bits>,
                        c: &Shares<Bits>,
                        j: usize,
                        negate: bool| {
                let (oa, ob) = (one(0, negate), one(1, negate));
                for (d, (s, c)) in dst
                    .a
                    .iter_mut()
                    .zip(src.a[j * w..(j + 1) * w].iter().zip(&c.a))
                {
                    *d = Bits(s.0 ^ c.0 ^ oa);
                }
                for (d, (s, c)) in dst
                    .b
                    .iter_mut()
                    .zip(src.b[j * w..(j + 1) * w].iter().zip(&c.b))
                {
                    *d = Bits(s.0 ^ c.0 ^ ob);
                }
            };
            for j in 0..l - 1 {
                fill(&mut u, x, &c, j, false);
                fill(&mut v, y, &c, j, true);
                mul_into(p, &u, &v, &mut t)?;
                for (c, t) in c.a.iter_mut().zip(&t.a) {
                    *c += *t;
                }
                for (c, t) in c.b.iter_mut().zip(&t.b) {
                    *c += *t;
                }
            }
            fill(&mut u, x, &c, l - 1, false);
            fill(&mut v, y, &c, l - 1, true);
            and_open(p, &u, &v, &c)?
                .into_iter()
                .map(|v| Bits(!v.0))
                .collect()
        }
        Circuit::Tree => {
            let not_x = not(p, x);
            // Equal = not(x ^ y) = not_x ^ y.
            let eq = not_x.add(y);
            if l == 1 {
                return and_open(p, &not_x, y, &Shares::zeros(w));
            }
            let less = mul(p, &not_x, y)?;
            let gen: Vec<Shares<Bits>> = (0..l).map(|j| plane(&less, j)).collect();
            let prop: Vec<Shares<Bits>> = (0..l).map(|j| plane(&eq, j)).collect();
            // Down to two groups; the last combination is opened with its
            // AND.
            let (gen, prop) = reduce_groups(p, gen, prop, w, 2)?;
            and_open(p, &prop[1], &gen[0], &gen[1])?
        }
    };
    Ok(out)
}

/// Bit-slices XOR-shared keys held as words (`keys[c]` holds bits
/// `64 c .. 64 c + 63` of every element), taking the elements at `idx`:
/// `bits` planes of `ceil(idx.len() / 64)` words, least significant first.
pub fn slice_keys(keys: &[Shares<Bits>], idx: &[usize], bits: usize) -> Shares<Bits> {
    let part = |pick: fn(&Shares<Bits>) -> &Vec<Bits>| -> Vec<Bits> {
        let words = idx.len().div_ceil(64);
        let mut planes = vec![Bits(0); bits * words];
        let mut block = [0u64; 64];
        for (c, col) in keys.iter().enumerate() {
            let lo = 64 * c;
            if lo >= bits {
                break;
            }
            let take = (bits - lo).min(64);
            let col = pick(col);
            for (wi, chunk) in idx.chunks(64).enumerate() {
                block.fill(0);
                for (r, &i) in chunk.iter().enumerate() {
                    block[r] = col[i].0;
                }
                transpose64(&mut block);
                for (j, row) in block.iter().enumerate().take(take) {
                    planes[(lo + j) * words + wi] = Bits(*row);
                }
            }
        }
        planes
    };
    Shares {
        a: part(|s| &s.a),
        b: part(|s| &s.b),
    }
}

/// Bit-slices one public key per element (for comparisons with public
/// bounds), in the layout of [`slice_keys`].
pub fn slice_public(p: &Party, keys: &[u128], bits: usize) -> Shares<Bits> {
    let cols: Vec<Shares<Bits>> = (0..bits.div_ceil(64))
        .map(|c| {
            let words: Vec<Bits> = keys.iter().map(|k| Bits((k >> (64 * c)) as u64)).collect();
            Shares::from_public(p.id, &words)
        })
        .collect();
    let idx: Vec<usize> = (0..keys.len()).collect();
    slice_keys(&cols, &idx, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::binary::unpack_bits;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use proptest::prelude::*;

    /// Shares `vals` (up to 128 bits) as word columns.
    fn share_keys(vals: &[u128], bits: usize) -> [Vec<Shares<Bits>>; 3] {
        let mut rng = test_rng();
        let mut out: [Vec<Shares<Bits>>; 3] = Default::default();
        for c in 0..bits.div_ceil(64) {
            let words: Vec<Bits> = vals.iter().map(|v| Bits((v >> (64 * c)) as u64)).collect();
            let [a, b, d] = share_plain(&words, &mut rng);
            out[0].push(a);
            out[1].push(b);
            out[2].push(d);
        }
        out
    }

    fn check(pairs: &[(u128, u128)], bits: usize, circuit: Circuit) {
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let xs: Vec<u128> = pairs.iter().map(|p| p.0 & mask).collect();
        let ys: Vec<u128> = pairs.iter().map(|p| p.1 & mask).collect();
        let (kx, ky) = (share_keys(&xs, bits), share_keys(&ys, bits));
        let idx: Vec<usize> = (0..pairs.len()).collect();
        let out = run3(|p| {
            let i = p.id.index();
            let x = slice_keys(&kx[i], &idx, bits);
            let y = slice_keys(&ky[i], &idx, bits);
            let before = p.rounds;
            let r = lt_open(p, &x, &y, bits, circuit).unwrap();
            (r, p.rounds - before)
        });
        let want: Vec<bool> = xs.iter().zip(&ys).map(|(a, b)| a < b).collect();
        for (r, rounds) in &out {
            assert_eq!(unpack_bits(r, pairs.len()), want);
            assert_eq!(*rounds, circuit.rounds(bits), "{circuit:?} rounds");
        }
    }

    fn edge() -> impl Strategy<Value = u128> {
        prop_oneof![
            Just(0u128),
            Just(1),
            Just(u128::MAX),
            Just(1u128 << 75),
            Just((1u128 << 76) - 1),
            any::<u128>(),
            0u128..4,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn lt_open_matches_plaintext(
            pairs in prop::collection::vec((edge(), edge()), 1..150),
            bits in prop_oneof![Just(1usize), Just(2), Just(3), Just(64), Just(65), Just(76), Just(128), 1usize..128],
        ) {
            check(&pairs, bits, Circuit::Chain);
            check(&pairs, bits, Circuit::Tree);
        }

        #[test]
        fn equal_operands_are_not_less(v in prop::collection::vec(edge(), 1..70), bits in 1usize..=128) {
            let pairs: Vec<(u128, u128)> = v.iter().map(|&x| (x, x)).collect();
            check(&pairs, bits, Circuit::Chain);
            check(&pairs, bits, Circuit::Tree);
        }

        #[test]
        fn and_open_opens_the_product(v in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 1..40)) {
            let mut rng = test_rng();
            let col = |f: fn(&(u64, u64, u64)) -> u64| v.iter().map(|t| Bits(f(t))).collect::<Vec<_>>();
            let (xs, ys, ls) = (share_plain(&col(|t| t.0), &mut rng), share_plain(&col(|t| t.1), &mut rng), share_plain(&col(|t| t.2), &mut rng));
            let out = run3(|p| { let i = p.id.index(); and_open(p, &xs[i], &ys[i], &ls[i]).unwrap() });
            let want: Vec<Bits> = v.iter().map(|t| Bits((t.0 & t.1) ^ t.2)).collect();
            for o in &out { prop_assert_eq!(o, &want); }
        }
    }

    #[test]
    fn choose_prefers_chains_for_big_batches_on_fast_links() {
        let out = run3(|p| {
            let small = choose(p, 100, 76);
            let big = choose(p, 1 << 20, 76);
            p.link = crate::LinkModel::with_delay(std::time::Duration::from_millis(10));
            (small, big, choose(p, 1 << 20, 76))
        });
        assert_eq!(out[0], (Circuit::Tree, Circuit::Chain, Circuit::Tree));
        // Checked gates are dear: in malicious mode a mid-sized batch on
        // a fast link takes the chain.
        let out = run3(|p| {
            let semi = choose(p, 10_000, 76);
            p.security = Security::Malicious;
            (semi, choose(p, 10_000, 76))
        });
        assert_eq!(out[0], (Circuit::Tree, Circuit::Chain));
    }

    #[test]
    fn public_keys_compare_like_shared_ones() {
        let xs: Vec<u128> = vec![5, 1 << 70, 0, 99];
        let bounds: Vec<u128> = vec![6, 1 << 70, 0, 3];
        let kx = share_keys(&xs, 76);
        let out = run3(|p| {
            let x = slice_keys(&kx[p.id.index()], &[0, 1, 2, 3], 76);
            let y = slice_public(p, &bounds, 76);
            unpack_bits(&lt_open(p, &x, &y, 76, Circuit::Tree).unwrap(), 4)
        });
        assert_eq!(out[0], vec![true, false, false, false]);
    }
}
