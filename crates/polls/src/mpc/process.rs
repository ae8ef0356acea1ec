//! Phases 2–4: a whole poll processed over shares, only the tally opened.
//!
//! 0. **Consistency**: the client's three share sets must agree
//!    ([`check_client_input`]); a message whose sets do not is dropped
//!    publicly (its sender's fault), before anything else is computed.
//! 1. **Phase 1** ([`verify_signatures`]) opens, per message, whether its
//!    signature verifies under the key it names. Messages that fail, and
//!    messages logged at or after the voting deadline (public timestamps),
//!    are dropped publicly: they can never count, and the oracle ranks only
//!    the rest ([`crate::well_formed`]).
//! 2. **Fields**: the command fields and 128-bit fingerprints (the low 128
//!    bits of `x`) of the signer and of the new key are injected into
//!    Z_2^128. A message for another poll gets state index 0, which has no
//!    leaf, so it never counts and takes nobody's window (the oracle's rule
//!    too); which messages those are stays secret.
//! 3. **Grouping**: one header record per sign-up (its public key, budget,
//!    whether it signed up in time) and one record per message, keyed by
//!    `(state index, header first, most recent message first)`; a secure
//!    shuffle, then the shuffle-then-sort of `triad_mpc` (keys are distinct,
//!    so the opened comparisons reveal nothing).
//! 4. **Scan**: K = min(window, messages) steps. In each, every record takes
//!    its predecessor's state and applies its own message with
//!    [`apply_step`], the key check being "the named signer's fingerprint
//!    equals the state's key fingerprint, and the predecessor is an exact
//!    state of the same index"; headers then restore their initial state.
//!    After step k, every record at most k places behind its header holds
//!    exactly the state MACI reaches after processing it; the rest are not
//!    exact and never count (the window rule).
//! 5. **Tally**: the last exact record of each index is its final ballot;
//!    `votes[o]` and `spent_per_option[o]` are sums over those, opened.
//!
//! Nothing else is opened: not the grouping (the sort permutation is of
//! shuffled distinct keys), not which messages were valid, not how many
//! messages a voter sent, not any key or balance.
//!
//! **Security mode.** Step 1 (and the re-keying epochs of
//! [`super::rekey`]) computes over `F_r` and binary shares only. Steps 2–5
//! have two implementations: in a semi-honest session the one below, over
//! Z_2^128 (its `eq`, `msb` and arithmetic shuffle have no check); in a
//! malicious session `super::checked`, over binary shares and `F_r`,
//! where every AND gate and product behind the sort's comparisons and the
//! tally is checked before they are opened. Both open the same things and
//! equal the oracle (`tests/mpc_process.rs`, `tests/mpc_rekey.rs`).

use ark_ff::PrimeField;
use triad_mpc::protocols::arithmetic::{mul, open};
use triad_mpc::protocols::binary::{and, map_linear};
use triad_mpc::protocols::compare::{eq, select};
use triad_mpc::protocols::conversion::bit_inject;
use triad_mpc::protocols::shuffle::shuffle;
use triad_mpc::protocols::sort::sort_order_arith;
use triad_mpc::{Bits, IntRing, MpcError, Party, Ring, Security, Shares, Z128};

use super::encode::{SharedMessages, FR, WORDS, W_FIELDS, W_NEW_X, W_SIGNER_X};
use super::signature::verify_signatures;
use super::step::{apply_step, padded, StepInput};
use crate::params::{Mode, PollParams};
use crate::state::SignUp;
use crate::tally::Tally;

/// What the processing reveals besides the tally (all of it public
/// anyway): how many messages had consistent share sets and passed phase 1
/// and the deadline, records sorted, scan steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessStats {
    pub messages: usize,
    pub consistent: usize,
    pub well_formed: usize,
    pub records: usize,
    pub steps: usize,
}

/// Words injected into the ring per message: the five fields, then two
/// words of each fingerprint.
const RING_WORDS: [usize; 9] = [
    W_FIELDS,
    W_FIELDS + 1,
    W_FIELDS + 2,
    W_FIELDS + 3,
    W_FIELDS + 4,
    W_NEW_X,
    W_NEW_X + 1,
    W_SIGNER_X,
    W_SIGNER_X + 1,
];

/// Command fields and fingerprints of `m` messages in the ring.
struct RingFields {
    index: Shares<Z128>,
    option: Shares<Z128>,
    weight: Shares<Z128>,
    nonce: Shares<Z128>,
    poll: Shares<Z128>,
    new_fp: [Shares<Z128>; 2],
    signer_fp: [Shares<Z128>; 2],
}

/// [`ring_fields_chunk`] over chunks of [`super::signature::CHUNK`]
/// messages (bounded memory).
fn ring_fields(p: &mut Party, msgs: &SharedMessages) -> Result<RingFields, MpcError> {
    let chunk = super::signature::CHUNK * 4;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < msgs.len() {
        let end = (start + chunk).min(msgs.len());
        parts.push(ring_fields_chunk(p, &msgs.slice(start..end))?);
        start = end;
    }
    let cat = |f: &dyn Fn(&RingFields) -> &Shares<Z128>| {
        Shares::concat(&parts.iter().map(f).collect::<Vec<_>>())
    };
    Ok(RingFields {
        index: cat(&|r| &r.index),
        option: cat(&|r| &r.option),
        weight: cat(&|r| &r.weight),
        nonce: cat(&|r| &r.nonce),
        poll: cat(&|r| &r.poll),
        new_fp: [cat(&|r| &r.new_fp[0]), cat(&|r| &r.new_fp[1])],
        signer_fp: [cat(&|r| &r.signer_fp[0]), cat(&|r| &r.signer_fp[1])],
    })
}

fn ring_fields_chunk(p: &mut Party, msgs: &SharedMessages) -> Result<RingFields, MpcError> {
    let m = msgs.len();
    let nw = RING_WORDS.len();
    let idx: Vec<usize> = (0..m)
        .flat_map(|k| RING_WORDS.iter().map(move |w| k * WORDS + w))
        .collect();
    let bits = bit_inject::<Z128>(p, &msgs.words.gather(&idx), m * nw * 64)?;
    let value = |slot: usize, nbits: usize| -> Shares<Z128> {
        let mut acc = Shares::<Z128>::zeros(m);
        for b in 0..nbits {
            let col: Vec<usize> = (0..m).map(|k| (k * nw + slot) * 64 + b).collect();
            acc = acc.add(&bits.gather(&col).scale(Z128::from_u128(1u128 << b)));
        }
        acc
    };
    Ok(RingFields {
        index: value(0, 50),
        option: value(1, 50),
        weight: value(2, 50),
        nonce: value(3, 50),
        poll: value(4, 50),
        new_fp: [value(5, 64), value(6, 64)],
        signer_fp: [value(7, 64), value(8, 64)],
    })
}

/// Record `i` gets element `i − 1`; record 0 gets `first`.
pub(super) fn shift_down<T: Ring>(p: &Party, x: &Shares<T>, first: T) -> Shares<T> {
    let n = x.len();
    if n == 0 {
        return x.clone();
    }
    let head = Shares::from_public(p.id, &[first]);
    Shares::concat(&[&head, &x.slice(0..n - 1)])
}

/// Packed bits: bit `i` moves to `i + 1`, bit 0 becomes 0 (local).
pub(super) fn shift_bits_down(x: &Shares<Bits>) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        (0..v.len())
            .map(|k| Bits((v[k].0 << 1) | if k > 0 { v[k - 1].0 >> 63 } else { 0 }))
            .collect()
    };
    Shares::new(f(&x.a), f(&x.b))
}

/// Packed bits: bit `i + 1` moves to `i`; the last bit becomes 0 (the
/// input's bits at and above `n` must be 0).
pub(super) fn shift_bits_up(x: &Shares<Bits>) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        (0..v.len())
            .map(|k| Bits((v[k].0 >> 1) | v.get(k + 1).map_or(0, |w| w.0 << 63)))
            .collect()
    };
    Shares::new(f(&x.a), f(&x.b))
}

/// Clears the bits at and above `n` (AND with a public mask: local).
pub(super) fn mask_len(x: &Shares<Bits>, n: usize) -> Shares<Bits> {
    let words = x.len();
    let masks: Vec<u64> = (0..words)
        .map(|k| {
            let lo = k * 64;
            if n >= lo + 64 {
                !0
            } else if n <= lo {
                0
            } else {
                (1u64 << (n - lo)) - 1
            }
        })
        .collect();
    let apply =
        |v: &[Bits]| -> Vec<Bits> { v.iter().zip(&masks).map(|(w, m)| Bits(w.0 & m)).collect() };
    Shares::new(apply(&x.a), apply(&x.b))
}

/// `[x == 1]` for 0/1 values in the ring, as packed bits.
fn ring_bit(p: &mut Party, x: &Shares<Z128>) -> Result<Shares<Bits>, MpcError> {
    let one = Shares::from_public(p.id, &vec![Z128::one(); x.len()]);
    eq(p, x, &one, 1)
}

/// The low 128 bits of a public key's `x` as two 64-bit halves.
fn fingerprint(k: &triad_maci::PubKey) -> [u64; 2] {
    let [x, _] = k.to_fields();
    let l = x.into_bigint().0;
    [l[0], l[1]]
}

fn z(v: u64) -> Z128 {
    Z128::from_u128(u128::from(v))
}

/// Column order of the records through shuffle and sort.
mod col {
    pub const KEY: usize = 0;
    pub const INDEX: usize = 1;
    pub const IS_HEADER: usize = 2;
    pub const LIVE: usize = 3;
    pub const KEY_LO: usize = 4;
    pub const KEY_HI: usize = 5;
    pub const BALANCE: usize = 6;
    pub const SIGNER_LO: usize = 7;
    pub const SIGNER_HI: usize = 8;
    pub const NEW_LO: usize = 9;
    pub const NEW_HI: usize = 10;
    pub const NONCE: usize = 11;
    pub const OPTION: usize = 12;
    pub const WEIGHT: usize = 13;
    pub const COUNT: usize = 14;
}

/// Processes a poll over shares and opens its tally. `timestamps[k]` is the
/// public log time of message `k` (log order). Every party calls this with
/// the same public inputs and its own shares; the result is identical at
/// the three parties and equals [`crate::process_poll`]'s tally on the
/// messages the shares encode (tested in `tests/mpc_process.rs`).
pub fn process_shared(
    p: &mut Party,
    params: &PollParams,
    signups: &[SignUp],
    timestamps: &[u64],
    msgs: &SharedMessages,
) -> Result<(Tally, ProcessStats), MpcError> {
    let n = signups.len();
    let mut live = vec![Bits(0); n.div_ceil(64)];
    for (k, s) in signups.iter().enumerate() {
        live[k / 64].0 |= u64::from(s.timestamp < params.signup_deadline()) << (k % 64);
    }
    let headers = Headers {
        fps: signups.iter().map(|s| fingerprint(&s.pub_key)).collect(),
        live: Shares::from_public(p.id, &live),
        balance: Shares::from_public(
            p.id,
            &signups
                .iter()
                .map(|s| Bits(s.voice_credits))
                .collect::<Vec<_>>(),
        ),
    };
    process_with(p, params, &headers, timestamps, msgs)
}

/// [`process_shared`] after re-keying epochs: the leaves are the
/// registry's, whose active bits and balances are secret
/// ([`super::rekey`]). Equals [`crate::rekey::process_poll_with_epochs`]'s
/// tally (tested in `tests/mpc_rekey.rs`).
pub fn process_shared_registry(
    p: &mut Party,
    params: &PollParams,
    reg: &super::rekey::SharedRegistry,
    timestamps: &[u64],
    msgs: &SharedMessages,
) -> Result<(Tally, ProcessStats), MpcError> {
    let n = reg.leaves();
    // live = active ∧ signed up in time (public mask), injected.
    let timely: Vec<u64> = (0..n.div_ceil(64))
        .map(|w| {
            (0..64)
                .filter(|&b| {
                    w * 64 + b < n && reg.timestamps[w * 64 + b] < params.signup_deadline()
                })
                .fold(0u64, |m, b| m | 1 << b)
        })
        .collect();
    let headers = Headers {
        fps: reg.keys.iter().map(fingerprint).collect(),
        live: map_linear_indexed(&reg.active, &timely),
        balance: reg.balance.clone(),
    };
    process_with(p, params, &headers, timestamps, msgs)
}

/// Word `k` of `x` ANDed with the public `mask[k]`. Local.
fn map_linear_indexed(x: &Shares<Bits>, mask: &[u64]) -> Shares<Bits> {
    let f = |v: &[Bits]| v.iter().zip(mask).map(|(w, m)| Bits(w.0 & m)).collect();
    Shares::new(f(&x.a), f(&x.b))
}

/// The leaves' header records: public key fingerprints, whether each leaf
/// can count (signed up in time, active: packed bits) and its budget (one
/// word per leaf), XOR-shared.
pub(super) struct Headers {
    pub(super) fps: Vec<[u64; 2]>,
    pub(super) live: Shares<Bits>,
    pub(super) balance: Shares<Bits>,
}

/// The headers' `live` bits and budgets in the ring (semi-honest path).
fn ring_headers(p: &mut Party, h: &Headers) -> Result<(Shares<Z128>, Shares<Z128>), MpcError> {
    let n = h.fps.len();
    let live = bit_inject::<Z128>(p, &h.live, n)?;
    let bits = bit_inject::<Z128>(p, &h.balance, n * 64)?;
    let mut balance = Shares::<Z128>::zeros(n);
    for b in 0..64 {
        let col: Vec<usize> = (0..n).map(|k| k * 64 + b).collect();
        balance = balance.add(&bits.gather(&col).scale(Z128::from_u128(1u128 << b)));
    }
    Ok((live, balance))
}

fn process_with(
    p: &mut Party,
    params: &PollParams,
    headers: &Headers,
    timestamps: &[u64],
    msgs: &SharedMessages,
) -> Result<(Tally, ProcessStats), MpcError> {
    if timestamps.len() != msgs.len() {
        return Err(MpcError::InvalidArgument(
            "process_shared: one timestamp per message",
        ));
    }
    let v = params.options_len();
    let started = std::time::Instant::now();
    // A client's three share sets must agree, or the parties would hold
    // shares of different messages; inconsistent ones are dropped first.
    let consistent = consistent_inputs(p, msgs)?;
    // Phase 1 and the public filter.
    let sig_ok = verify_signatures(p, &msgs.gather(&consistent))?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "poll phase 1 (signatures) done"
    );
    let keep: Vec<usize> = consistent
        .iter()
        .zip(&sig_ok)
        .filter(|&(&k, &ok)| ok && timestamps[k] < params.voting_deadline())
        .map(|(&k, _)| k)
        .collect();
    let kept = msgs.gather(&keep);
    let r = headers.fps.len() + keep.len();
    let steps = keep
        .len()
        .min(usize::try_from(params.window()).unwrap_or(usize::MAX));
    let stats = ProcessStats {
        messages: msgs.len(),
        consistent: consistent.len(),
        well_formed: keep.len(),
        records: r,
        steps,
    };
    if r == 0 {
        return Ok((empty_tally(v), stats));
    }
    let tally = match p.security {
        Security::Malicious => super::checked::phases_checked(p, params, headers, &kept, steps)?,
        Security::SemiHonest => {
            let (live, balance) = ring_headers(p, headers)?;
            let fields = ring_fields(p, &kept)?;
            let records = group(p, params, headers, live, balance, fields)?;
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                records = r,
                "poll grouping done"
            );
            let state = scan(p, params, &records, steps)?;
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                steps,
                "poll scan done"
            );
            open_tally(p, params, &records.same, &state, |x| Some(x.to_u128()))?
        }
    };
    Ok((tally, stats))
}

/// The records after grouping, in sorted order, with the group structure.
struct Records {
    /// The columns of [`col`], sorted.
    c: Vec<Shares<Z128>>,
    /// `[index == previous record's index]`, packed bits.
    same: Shares<Bits>,
    /// `[header ∧ signed up in time]`, packed bits.
    live: Shares<Bits>,
    /// `1 − is_header`, in the ring.
    not_header: Shares<Z128>,
}

impl Records {
    fn len(&self) -> usize {
        self.c[col::KEY].len()
    }
}

/// Builds the header and message records, shuffles them, sorts them by
/// `(index, header first, most recent first)` and derives the group
/// structure. A message for another poll is moved to index 0 (no leaf).
fn group(
    p: &mut Party,
    params: &PollParams,
    headers: &Headers,
    live: Shares<Z128>,
    balance: Shares<Z128>,
    f: RingFields,
) -> Result<Records, MpcError> {
    let (n, m) = (headers.fps.len(), f.index.len());
    let r = n + m;
    let poll = Shares::from_public(p.id, &vec![z(params.poll_id()); m]);
    let poll_ok = eq(p, &f.poll, &poll, 64)?;
    let index = select(p, &poll_ok, &f.index, &Shares::zeros(m))?;

    let pos_bits = usize::BITS - m.leading_zeros();
    let sort_bits = 50 + 1 + pos_bits;
    let public =
        |vals: Vec<u64>| Shares::from_public(p.id, &vals.into_iter().map(z).collect::<Vec<_>>());
    let header_index: Vec<u64> = (1..=n as u64).collect();
    let fps = &headers.fps;
    let zeros_n = Shares::<Z128>::zeros(n);
    let zeros_m = Shares::<Z128>::zeros(m);
    let header_key = Shares::from_public(
        p.id,
        &header_index
            .iter()
            .map(|&i| Z128::from_u128(u128::from(i) << (pos_bits + 1)))
            .collect::<Vec<_>>(),
    );
    let message_key = index
        .scale(Z128::from_u128(1u128 << (pos_bits + 1)))
        .add_public(
            p.id,
            &(0..m)
                .map(|j| Z128::from_u128((1u128 << pos_bits) + (m - 1 - j) as u128))
                .collect::<Vec<_>>(),
        );
    let both = |h: Shares<Z128>, msg: Shares<Z128>| Shares::concat(&[&h, &msg]);
    let cols: Vec<Shares<Z128>> = vec![
        both(header_key, message_key),
        both(public(header_index), index),
        both(public(vec![1; n]), zeros_m.clone()),
        both(live, zeros_m.clone()),
        both(public(fps.iter().map(|f| f[0]).collect()), zeros_m.clone()),
        both(public(fps.iter().map(|f| f[1]).collect()), zeros_m.clone()),
        both(balance, zeros_m),
        both(zeros_n.clone(), f.signer_fp[0].clone()),
        both(zeros_n.clone(), f.signer_fp[1].clone()),
        both(zeros_n.clone(), f.new_fp[0].clone()),
        both(zeros_n.clone(), f.new_fp[1].clone()),
        both(zeros_n.clone(), f.nonce),
        both(zeros_n.clone(), f.option),
        both(zeros_n, f.weight),
    ];
    debug_assert_eq!(cols.len(), col::COUNT);
    let cols = shuffle(p, &cols)?;
    let order = sort_order_arith(p, &cols[col::KEY], sort_bits)?;
    let c: Vec<Shares<Z128>> = cols.iter().map(|x| x.gather(&order)).collect();

    let np = r.div_ceil(64) * 64;
    let prev_index = shift_down(p, &c[col::INDEX], Z128::from_u128(1 << 60));
    let same = mask_len(
        &eq(p, &padded(&c[col::INDEX], np), &padded(&prev_index, np), 64)?,
        r,
    );
    let live = mask_len(&ring_bit(p, &padded(&c[col::LIVE], np))?, r);
    let not_header = c[col::IS_HEADER]
        .neg()
        .add_public(p.id, &vec![Z128::one(); r]);
    Ok(Records {
        c,
        same,
        live,
        not_header,
    })
}

/// Every record's state after the scan, and which states are exact.
pub(super) struct ScanState<T> {
    pub(super) votes: Vec<Shares<T>>,
    pub(super) exact: Shares<Bits>,
}

/// `steps` steps of the scan (module docs, step 4).
fn scan(
    p: &mut Party,
    params: &PollParams,
    rec: &Records,
    steps: usize,
) -> Result<ScanState<Z128>, MpcError> {
    let (r, v) = (rec.len(), params.options_len());
    let c = &rec.c;
    let np = r.div_ceil(64) * 64;
    let w = np / 64;
    let init_key = [c[col::KEY_LO].clone(), c[col::KEY_HI].clone()];
    let init_balance = c[col::BALANCE].clone();
    let mut key = init_key.clone();
    let mut nonce = Shares::<Z128>::zeros(r);
    let mut balance = init_balance.clone();
    let mut votes: Vec<Shares<Z128>> = vec![Shares::zeros(r); v];
    let mut exact = rec.live.clone();
    for _ in 0..steps {
        let prev_key: Vec<Shares<Z128>> =
            key.iter().map(|k| shift_down(p, k, Z128::zero())).collect();
        let prev_exact = shift_bits_down(&exact);
        // key_ok = [signer = state key] ∧ chain, chain = predecessor exact ∧ same index.
        let km = eq(
            p,
            &Shares::concat(&[
                &padded(&c[col::SIGNER_LO], np),
                &padded(&c[col::SIGNER_HI], np),
            ]),
            &Shares::concat(&[&padded(&prev_key[0], np), &padded(&prev_key[1], np)]),
            64,
        )?;
        let ab = and(
            p,
            &Shares::concat(&[&km.slice(0..w), &prev_exact]),
            &Shares::concat(&[&km.slice(w..2 * w), &rec.same]),
        )?;
        let chain = ab.slice(w..2 * w);
        let key_ok = and(p, &ab.slice(0..w), &chain)?;
        let out = apply_step(
            p,
            params.mode(),
            &StepInput {
                nonce: shift_down(p, &nonce, Z128::zero()),
                balance: shift_down(p, &balance, Z128::zero()),
                votes: votes
                    .iter()
                    .map(|x| shift_down(p, x, Z128::zero()))
                    .collect(),
                key_ok,
                msg_nonce: c[col::NONCE].clone(),
                msg_option: c[col::OPTION].clone(),
                msg_weight: c[col::WEIGHT].clone(),
                tested: None,
            },
        )?;
        // key ← valid ? new : previous.
        let dk = mul(
            p,
            &Shares::concat(&[&out.valid_ring, &out.valid_ring]),
            &Shares::concat(&[
                &c[col::NEW_LO].sub(&prev_key[0]),
                &c[col::NEW_HI].sub(&prev_key[1]),
            ]),
        )?;
        let computed_key = [
            prev_key[0].add(&dk.slice(0..r)),
            prev_key[1].add(&dk.slice(r..2 * r)),
        ];
        // Headers keep their initial state: x = init + notHeader·(computed − init).
        let zero = Shares::<Z128>::zeros(r);
        let inits: Vec<&Shares<Z128>> = [&init_key[0], &init_key[1], &zero, &init_balance]
            .into_iter()
            .chain(std::iter::repeat_n(&zero, v))
            .collect();
        let computed: Vec<&Shares<Z128>> =
            [&computed_key[0], &computed_key[1], &out.nonce, &out.balance]
                .into_iter()
                .chain(out.votes.iter())
                .collect();
        let deltas: Vec<Shares<Z128>> =
            computed.iter().zip(&inits).map(|(x, i)| x.sub(i)).collect();
        let nh: Vec<&Shares<Z128>> = std::iter::repeat_n(&rec.not_header, v + 4).collect();
        let upd = mul(
            p,
            &Shares::concat(&nh),
            &Shares::concat(&deltas.iter().collect::<Vec<_>>()),
        )?;
        let next: Vec<Shares<Z128>> = inits
            .iter()
            .enumerate()
            .map(|(j, i)| i.add(&upd.slice(j * r..(j + 1) * r)))
            .collect();
        key = [next[0].clone(), next[1].clone()];
        nonce = next[2].clone();
        balance = next[3].clone();
        votes = next[4..].to_vec();
        // exact = header ∧ live, or a message whose predecessor was exact
        // and of the same index (disjoint cases: XOR).
        exact = rec.live.add(&mask_len(&chain, r));
    }
    Ok(ScanState { votes, exact })
}

/// Opens the tally from the scan's final states, in `T` (`Z_2^128` here,
/// `F_r` in `super::checked`): the last exact record of each index (exact,
/// and the next record is not an exact continuation of it) counts;
/// `votes[o]` and `spent_per_option[o]` are sums over those, opened, and
/// `to_u128` reads them (`None`: beyond 128 bits, an error).
pub(super) fn open_tally<T: Ring>(
    p: &mut Party,
    params: &PollParams,
    same: &Shares<Bits>,
    st: &ScanState<T>,
    to_u128: impl Fn(&T) -> Option<u128>,
) -> Result<Tally, MpcError> {
    let (exact, votes) = (&st.exact, &st.votes);
    let v = params.options_len();
    let r = votes.first().map_or(0, |c| c.len());
    let cont = and(p, &shift_bits_up(same), &shift_bits_up(exact))?;
    let last = and(p, exact, &map_linear(&cont, |x| !x))?;
    let f = bit_inject::<T>(p, &mask_len(&last, r), r)?;
    let fs: Vec<&Shares<T>> = std::iter::repeat_n(&f, v).collect();
    let all_votes = Shares::concat(&votes.iter().collect::<Vec<_>>());
    let fv = mul(p, &Shares::concat(&fs), &all_votes)?;
    let spent_rows = match params.mode() {
        Mode::Quadratic => mul(p, &fv, &all_votes)?,
        Mode::Linear => fv.clone(),
    };
    let sums = |x: &Shares<T>| -> Vec<Shares<T>> {
        (0..v).map(|o| x.slice(o * r..(o + 1) * r).sum()).collect()
    };
    let mut totals = sums(&fv);
    totals.extend(sums(&spent_rows));
    let opened = open(p, &Shares::concat(&totals.iter().collect::<Vec<_>>()))?;
    let as_u128 = opened
        .iter()
        .map(|x| to_u128(x).ok_or(MpcError::InvalidArgument("a tally sum beyond 128 bits")))
        .collect::<Result<Vec<u128>, _>>()?;
    let spent_per_option = as_u128[v..].to_vec();
    Ok(Tally {
        votes: as_u128[..v].to_vec(),
        spent: spent_per_option.iter().sum(),
        spent_per_option,
    })
}

/// The messages whose replicated components agree between the parties
/// ([`check_client_input`] on both the bit words and the field elements),
/// identically at the three parties.
fn consistent_inputs(p: &mut Party, msgs: &SharedMessages) -> Result<Vec<usize>, MpcError> {
    let m = msgs.len();
    let ok = super::encode::consistent_items(p, &[(&msgs.words, WORDS)], &[(&msgs.fr, FR)], m)?;
    Ok((0..m).filter(|&k| ok[k]).collect())
}

/// The tally of a poll with no ballots.
fn empty_tally(v: usize) -> Tally {
    Tally {
        votes: vec![0; v],
        spent: 0,
        spent_per_option: vec![0; v],
    }
}
