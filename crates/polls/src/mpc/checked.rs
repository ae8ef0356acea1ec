//! Phases 2–4 secure against a malicious party: the same grouping, scan
//! and tally as [`super::process`], with every record column binary
//! through the shuffle and the sort, and the state that the MACI rules do
//! arithmetic on in `F_r`, where every product is checked.
//!
//! * **Grouping.** The client's fields are its XOR-shared bit words; the
//!   headers' fingerprints are public, their `live` bits and budgets come
//!   as bits (public, or the registry's [`super::rekey::SharedRegistry`]).
//!   The poll-id test and the state index's selection are AND gates, the
//!   records go through the tag-checked [`shuffle_bits`] and the
//!   shuffle-then-sort [`sort_order`] on keys of `50 + 1 + log2 m` bits.
//! * **Into `F_r`.** Budgets and the message's nonce, option and weight by
//!   [`b2a_fr`] (a masked opening checked like every binary gate), the
//!   header flag by the checked bit injection.
//! * **Scan.** The state key stays binary: the key test is an AND tree over
//!   the 128 fingerprint bits, and the key update two selections by AND.
//!   Nonce, balance and votes are `F_r` columns stepped by
//!   [`apply_step::<Fr>`](super::step::apply_step) (checked products,
//!   [`triad_mpc::protocols::field_compare`] for its equality and sign).
//! * **Tally.** "Last exact record of its index" in binary, injected by the
//!   checked injection, sums of checked products, opened: the engine checks
//!   every AND gate and product recorded so far before the opening.
//!
//! What is opened is what the semi-honest path opens: the sort's
//! comparisons of shuffled distinct keys and the tally (tested against the
//! oracle and a cheating party in `tests/mpc_process.rs`).

use ark_ff::{PrimeField, Zero};
use std::num::Wrapping;
use triad_mpc::protocols::arithmetic::mul;
use triad_mpc::protocols::binary::{and, and_reduce, bitslice, map_linear, not, unbitslice};
use triad_mpc::protocols::conversion::{b2a_fr, bit_inject};
use triad_mpc::protocols::{shuffle_bits, sort_order};
use triad_mpc::{Bits, Fr, MpcError, Party, Shares, Z64};

use super::encode::{SharedMessages, WORDS, W_FIELDS, W_NEW_X, W_SIGNER_X};
use super::process::{mask_len, open_tally, shift_bits_down, shift_down, Headers, ScanState};
use super::step::{apply_step, padded, OneHot, StepInput};
use crate::params::PollParams;
use crate::tally::Tally;

/// The client's packed fields are below 2^50 (the ring path reads the
/// same 50 bits).
const FIELD_MASK: u64 = (1 << 50) - 1;

/// Flag bits of the `FLAGS` column.
const HEADER: u64 = 1;
const LIVE: u64 = 2;

/// Column order of the records through shuffle and sort (binary words).
mod col {
    pub const KEY_LO: usize = 0;
    pub const KEY_HI: usize = 1;
    pub const INDEX: usize = 2;
    pub const FLAGS: usize = 3;
    /// A header's key fingerprint, a message's signer fingerprint.
    pub const FP_LO: usize = 4;
    pub const FP_HI: usize = 5;
    pub const NEW_LO: usize = 6;
    pub const NEW_HI: usize = 7;
    pub const BALANCE: usize = 8;
    pub const NONCE: usize = 9;
    pub const OPTION: usize = 10;
    pub const WEIGHT: usize = 11;
    pub const COUNT: usize = 12;
}

/// Phases 2–4 over the messages that passed phase 1 and the deadline, with
/// `steps` scan steps; opens only the tally.
pub(super) fn phases_checked(
    p: &mut Party,
    params: &PollParams,
    headers: &Headers,
    kept: &SharedMessages,
    steps: usize,
) -> Result<Tally, MpcError> {
    let started = std::time::Instant::now();
    let rec = group(p, params, headers, kept)?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        records = rec.len(),
        "poll grouping done (checked)"
    );
    let state = scan(p, params, &rec, steps)?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        steps,
        "poll scan done (checked)"
    );
    open_tally(p, params, &rec.same, &state, |x| {
        let l = x.into_bigint().0;
        (l[2] == 0 && l[3] == 0).then(|| u128::from(l[0]) | u128::from(l[1]) << 64)
    })
}

/// The sorted records: binary columns, the group structure as packed bits,
/// and the columns the step computes on in `F_r`.
struct Records {
    /// The binary columns of [`col`], sorted.
    c: Vec<Shares<Bits>>,
    /// `[index == previous record's index]`.
    same: Shares<Bits>,
    /// `[header ∧ live]`.
    live: Shares<Bits>,
    /// `[not a header]`, packed bits and in `F_r`.
    not_header: Shares<Bits>,
    not_header_fr: Shares<Fr>,
    balance: Shares<Fr>,
    weight: Shares<Fr>,
    /// The message's nonce minus one (binary words).
    nonce_before: Shares<Bits>,
    /// `[option == j]`, the same in every step.
    onehot: OneHot<Fr>,
}

impl Records {
    fn len(&self) -> usize {
        self.c[col::INDEX].len()
    }
}

/// Word `w` of every message, masked to `mask`.
fn field(msgs: &SharedMessages, w: usize, mask: u64) -> Shares<Bits> {
    let idx: Vec<usize> = (0..msgs.len()).map(|k| k * WORDS + w).collect();
    map_linear(&msgs.words.gather(&idx), |v| v & mask)
}

fn public_words(p: &Party, vals: impl IntoIterator<Item = u64>) -> Shares<Bits> {
    Shares::from_public(p.id, &vals.into_iter().map(Bits).collect::<Vec<_>>())
}

/// Builds the header and message records (binary), shuffles them with the
/// checked shuffle, sorts them by `(index, header first, most recent
/// first)` and derives the group structure and the `F_r` columns.
fn group(
    p: &mut Party,
    params: &PollParams,
    headers: &Headers,
    kept: &SharedMessages,
) -> Result<Records, MpcError> {
    let (n, m) = (headers.fps.len(), kept.len());
    if m >= 1 << 40 || n >= 1 << 50 {
        return Err(MpcError::InvalidArgument(
            "process_shared: too many records",
        ));
    }
    let r = n + m;
    let f = |w: usize| field(kept, w, FIELD_MASK);
    let f64 = |w: usize| field(kept, w, !0);
    // A message for another poll gets index 0 (no leaf).
    let poll_ok = equal_words(
        p,
        &[&f(W_FIELDS + 4)],
        &[&public_words(p, vec![params.poll_id(); m])],
        Vec::new(),
    )?;
    let index = and(p, &f(W_FIELDS), &broadcast(&poll_ok, m))?;

    // Keys: (index, 0 for a header / 1 for a message, m − 1 − position).
    let pos_bits = usize::BITS - m.leading_zeros();
    let s = pos_bits + 1;
    let sort_bits = 50 + s;
    let header_keys: Vec<u128> = (1..=n as u128).map(|i| i << s).collect();
    let msg_low: Vec<Bits> = (0..m)
        .map(|j| Bits((1u64 << pos_bits) + (m - 1 - j) as u64))
        .collect();
    let msg_key_lo = map_linear(&index, |v| v << s).add_public(p.id, &msg_low);
    let msg_key_hi = map_linear(&index, |v| v >> (64 - s));
    let header_flags = map_linear(&bit_words(&headers.live, n), |v| v * LIVE)
        .add_public(p.id, &vec![Bits(HEADER); n]);

    let both = |h: Shares<Bits>, msg: Shares<Bits>| Shares::concat(&[&h, &msg]);
    let (zn, zm) = (Shares::<Bits>::zeros(n), Shares::<Bits>::zeros(m));
    let fps = &headers.fps;
    let cols = vec![
        both(
            public_words(p, header_keys.iter().map(|&k| k as u64)),
            msg_key_lo,
        ),
        both(
            public_words(p, header_keys.iter().map(|&k| (k >> 64) as u64)),
            msg_key_hi,
        ),
        both(public_words(p, 1..=n as u64), index),
        both(header_flags, zm.clone()),
        both(public_words(p, fps.iter().map(|f| f[0])), f64(W_SIGNER_X)),
        both(
            public_words(p, fps.iter().map(|f| f[1])),
            f64(W_SIGNER_X + 1),
        ),
        both(zn.clone(), f64(W_NEW_X)),
        both(zn.clone(), f64(W_NEW_X + 1)),
        both(headers.balance.clone(), zm),
        both(zn.clone(), f(W_FIELDS + 3)),
        both(zn.clone(), f(W_FIELDS + 1)),
        both(zn, f(W_FIELDS + 2)),
    ];
    debug_assert_eq!(cols.len(), col::COUNT);
    let cols = shuffle_bits(p, &cols)?;
    let order = sort_order(p, &cols[col::KEY_LO..=col::KEY_HI], sort_bits)?;
    let c: Vec<Shares<Bits>> = cols.iter().map(|x| x.gather(&order)).collect();

    let prev_index = shift_down(p, &c[col::INDEX], Bits(1 << 60));
    let same = mask_len(
        &equal_words(p, &[&c[col::INDEX]], &[&prev_index], Vec::new())?,
        r,
    );
    let live = pack_bit(&c[col::FLAGS], 1);
    let not_header = mask_len(&not(p, &pack_bit(&c[col::FLAGS], 0)), r);
    // Budgets < 2^64 and weights < 2^50, at once.
    let words = Shares::concat(&[&c[col::BALANCE], &c[col::WEIGHT]]);
    let fr = b2a_fr(p, &planes(&words), 64, 2 * r)?;
    let nonce_before = decrement(p, &c[col::NONCE])?;
    // The header flag and the options' one-hot bits into F_r at once.
    let v = params.options_len();
    let np = r.div_ceil(64) * 64;
    let option = padded(&c[col::OPTION], np);
    let hot = equal_words(
        p,
        &[&Shares::concat(&vec![&option; v])],
        &[&public_words(
            p,
            (0..v as u64).flat_map(|j| std::iter::repeat_n(j, np)),
        )],
        Vec::new(),
    )?;
    let injected = bit_inject::<Fr>(p, &Shares::concat(&[&hot, &not_header]), (v + 1) * np)?;
    let not_header_fr = injected.slice(v * np..v * np + r);
    Ok(Records {
        onehot: OneHot {
            bits: hot,
            values: injected.slice(0..v * np),
        },
        same,
        live,
        not_header,
        not_header_fr,
        balance: fr.slice(0..r),
        weight: fr.slice(r..2 * r),
        nonce_before,
        c,
    })
}

/// `steps` steps of the scan ([`super::process`], step 4).
fn scan(
    p: &mut Party,
    params: &PollParams,
    rec: &Records,
    steps: usize,
) -> Result<ScanState<Fr>, MpcError> {
    let (r, v) = (rec.len(), params.options_len());
    let c = &rec.c;
    // Binary state: the key (init: a header's own) and the nonce (init 0).
    let init = [
        c[col::FP_LO].clone(),
        c[col::FP_HI].clone(),
        Shares::<Bits>::zeros(r),
    ];
    let msg = [&c[col::NEW_LO], &c[col::NEW_HI], &c[col::NONCE]];
    let mut bin = init.clone();
    let mut balance = rec.balance.clone();
    let mut votes: Vec<Shares<Fr>> = vec![Shares::zeros(r); v];
    let mut exact = rec.live.clone();
    let not_header = broadcast(&rec.not_header, r);
    let three = |x: &Shares<Bits>| Shares::concat(&[x, x, x]);
    let zeros = Shares::<Fr>::zeros(r);
    for _ in 0..steps {
        let prev: Vec<Shares<Bits>> = bin.iter().map(|k| shift_down(p, k, Bits(0))).collect();
        // key_ok = [signer = state key] ∧ [nonce = state nonce + 1] ∧ chain,
        // chain = predecessor exact ∧ same index.
        let chain = and(p, &shift_bits_down(&exact), &rec.same)?;
        let key_ok = equal_words(
            p,
            &[&c[col::FP_LO], &c[col::FP_HI], &rec.nonce_before],
            &[&prev[0], &prev[1], &prev[2]],
            vec![chain.clone()],
        )?;
        let out = apply_step(
            p,
            params.mode(),
            &StepInput {
                nonce: zeros.clone(),
                balance: shift_down(p, &balance, Fr::zero()),
                votes: votes.iter().map(|x| shift_down(p, x, Fr::zero())).collect(),
                key_ok,
                msg_nonce: zeros.clone(),
                msg_option: zeros.clone(),
                msg_weight: rec.weight.clone(),
                tested: Some(rec.onehot.clone()),
            },
        )?;
        // Key and nonce ← valid ? the message's : previous; headers keep
        // their own.
        let d = and(
            p,
            &three(&broadcast(&out.valid, r)),
            &Shares::concat(&[
                &msg[0].add(&prev[0]),
                &msg[1].add(&prev[1]),
                &msg[2].add(&prev[2]),
            ]),
        )?;
        let delta: Vec<Shares<Bits>> = (0..3)
            .map(|j| prev[j].add(&d.slice(j * r..(j + 1) * r)).add(&init[j]))
            .collect();
        let e = and(
            p,
            &three(&not_header),
            &Shares::concat(&delta.iter().collect::<Vec<_>>()),
        )?;
        bin = [
            init[0].add(&e.slice(0..r)),
            init[1].add(&e.slice(r..2 * r)),
            init[2].add(&e.slice(2 * r..3 * r)),
        ];
        // Balance and votes in F_r: x = init + notHeader·(computed − init).
        let inits: Vec<&Shares<Fr>> = std::iter::once(&rec.balance)
            .chain(std::iter::repeat_n(&zeros, v))
            .collect();
        let computed: Vec<&Shares<Fr>> = std::iter::once(&out.balance)
            .chain(out.votes.iter())
            .collect();
        let deltas: Vec<Shares<Fr>> = computed.iter().zip(&inits).map(|(x, i)| x.sub(i)).collect();
        let nh: Vec<&Shares<Fr>> = std::iter::repeat_n(&rec.not_header_fr, v + 1).collect();
        let upd = mul(
            p,
            &Shares::concat(&nh),
            &Shares::concat(&deltas.iter().collect::<Vec<_>>()),
        )?;
        balance = inits[0].add(&upd.slice(0..r));
        votes = (0..v)
            .map(|j| upd.slice((j + 1) * r..(j + 2) * r))
            .collect();
        // exact = header ∧ live, or a message whose predecessor was exact
        // and of the same index (disjoint cases: XOR).
        exact = rec.live.add(&mask_len(&chain, r));
    }
    Ok(ScanState { votes, exact })
}

/// `[xs[c] == ys[c] for every column c] ∧ extra…`, packed bits: the 64
/// planes of each column's XOR complemented, then one AND tree with the
/// `extra` packed-bit segments. Bits past the records' count are
/// unspecified.
fn equal_words(
    p: &mut Party,
    xs: &[&Shares<Bits>],
    ys: &[&Shares<Bits>],
    extra: Vec<Shares<Bits>>,
) -> Result<Shares<Bits>, MpcError> {
    let n = xs.first().map_or(0, |x| x.len());
    let w = n.div_ceil(64);
    let mut segs = Vec::with_capacity(64 * xs.len() + extra.len());
    for (x, y) in xs.iter().zip(ys) {
        let same = not(p, &planes(&x.add(y)));
        segs.extend((0..64).map(|j| same.slice(j * w..(j + 1) * w)));
    }
    segs.extend(extra);
    let mut all = and_reduce(p, segs, w, 1)?;
    Ok(all.pop().unwrap_or_else(|| Shares::zeros(w)))
}

/// `x − 1` for words below 2^51, over bits 0..51 (so `0 − 1` is
/// `2^51 − 1`, which no nonce below 2^50 equals): a borrow chain, 50 AND
/// gates and rounds.
fn decrement(p: &mut Party, x: &Shares<Bits>) -> Result<Shares<Bits>, MpcError> {
    const BITS: usize = 51;
    let (n, w) = (x.len(), x.len().div_ceil(64));
    let pl = planes(x);
    let plane = |j: usize| pl.slice(j * w..(j + 1) * w);
    // Bit j of x − 1 is x_j ⊕ borrow_j, borrow_0 = 1, borrow_{j+1} = borrow_j ∧ ¬x_j.
    let mut borrow = not(p, &plane(0));
    let mut out = vec![borrow.clone()];
    for j in 1..BITS {
        out.push(plane(j).add(&borrow));
        if j + 1 < BITS {
            let nx = not(p, &plane(j));
            borrow = and(p, &borrow, &nx)?;
        }
    }
    Ok(unbitslice(
        &Shares::concat(&out.iter().collect::<Vec<_>>()),
        BITS,
        n,
    ))
}

/// The 64 bit planes of XOR-shared words (local).
fn planes(x: &Shares<Bits>) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        let words: Vec<Z64> = v.iter().map(|b| Wrapping(b.0)).collect();
        bitslice(&words, 64)
    };
    Shares::new(f(&x.a), f(&x.b))
}

/// Packed bit `k` as a word per record, all ones or zero (local: each
/// component's bit spread over its word).
fn broadcast(x: &Shares<Bits>, n: usize) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        (0..n)
            .map(|k| Bits(0u64.wrapping_sub((v[k / 64].0 >> (k % 64)) & 1)))
            .collect()
    };
    Shares::new(f(&x.a), f(&x.b))
}

/// Packed bit `k` as bit 0 of word `k` (local).
fn bit_words(x: &Shares<Bits>, n: usize) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        (0..n)
            .map(|k| Bits((v[k / 64].0 >> (k % 64)) & 1))
            .collect()
    };
    Shares::new(f(&x.a), f(&x.b))
}

/// Bit `bit` of every word, packed (local).
fn pack_bit(x: &Shares<Bits>, bit: u32) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        let mut out = vec![Bits(0); v.len().div_ceil(64)];
        for (k, word) in v.iter().enumerate() {
            out[k / 64].0 |= ((word.0 >> bit) & 1) << (k % 64);
        }
        out
    };
    Shares::new(f(&x.a), f(&x.b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_mpc::protocols::open;
    use triad_mpc::testing::run3;
    use triad_mpc::Security;

    /// The local bit movers against plain values, in both share layouts.
    #[test]
    fn broadcast_pack_and_words_are_linear() {
        let bits = [Bits(0b1011), Bits(1 << 63)];
        let out = run3(|p| {
            let x = Shares::from_public(p.id, &bits);
            let b = open(p, &broadcast(&x, 70)).unwrap();
            let w = open(p, &bit_words(&x, 70)).unwrap();
            let back = open(p, &pack_bit(&broadcast(&x, 70), 5)).unwrap();
            (b, w, back)
        });
        let (b, w, back) = &out[0];
        let bit = |k: usize| (bits[k / 64].0 >> (k % 64)) & 1;
        for k in 0..70 {
            assert_eq!(b[k].0, 0u64.wrapping_sub(bit(k)), "broadcast {k}");
            assert_eq!(w[k].0, bit(k), "words {k}");
        }
        assert_eq!(back[0], bits[0]);
        assert_eq!(back[1].0 & 0x3f, bits[1].0 & 0x3f);
    }

    /// The borrow chain against plain values, both modes, 0 included.
    #[test]
    fn decrement_matches_plain() {
        let x = [0u64, 1, 2, 64, (1 << 50) - 1, 1 << 49, 12_345];
        for security in [Security::SemiHonest, Security::Malicious] {
            let out = run3(|p| {
                p.security = security;
                let xs = public_words(p, x);
                let d = decrement(p, &xs).unwrap();
                open(p, &d).unwrap()
            });
            for (k, &v) in x.iter().enumerate() {
                let want = v.wrapping_sub(1) & ((1 << 51) - 1);
                assert_eq!(out[0][k].0, want, "{security:?} {v}");
            }
        }
    }

    /// Word equality with extra bits, both modes, against plain values
    /// (equal, one bit apart at either end, and the extra bit off).
    #[test]
    fn equal_words_matches_plain() {
        let x = [5u64, 5, 1 << 63, 0, u64::MAX, 7];
        let y = [5u64, 4, 0, 0, u64::MAX, 7];
        let extra = Bits(0b101111);
        for security in [Security::SemiHonest, Security::Malicious] {
            let out = run3(|p| {
                p.security = security;
                let xs = public_words(p, x);
                let ys = public_words(p, y);
                let e = Shares::from_public(p.id, &[extra]);
                let eq = equal_words(p, &[&xs], &[&ys], vec![e]).unwrap();
                open(p, &eq).unwrap()[0].0 & 0x3f
            });
            assert_eq!(out, [0b101001; 3], "{security:?}");
        }
    }
}
