//! One step of the MACI state machine applied to a batch of (state,
//! message) pairs, over secret shares.
//!
//! This is "apply" of the design in docs/polls.md ("What the MPC phase keeps
//! secret") and `shared/research/maci.md` §7.2, phase 3: every record holds
//! a voter's ballot state and one message addressed to it; the step decides,
//! without opening anything, whether the message is valid under MACI's
//! rules (nonce = ballot nonce + 1, option < V, credits stay ≥ 0, and the
//! signature/key/index checks of phase 1, which arrive as the secret bit
//! `key_ok`), and applies it: weight replaced, nonce advanced, balance
//! charged. Invalid messages change nothing, and which ones were invalid
//! stays secret. The plaintext rule is [`apply_plain`], the same subset of
//! [`crate::PollState::process_message`].
//!
//! Ranges (guaranteed upstream: the client's packed fields are < 2^50 and
//! budgets < 2^64): nonces, options and weights below 2^50, and the poll's
//! invariant `balance + Σ cost(votes) ≤ budget < 2^64`, so every quantity
//! below fits in Z_2^128 with its sign bit free:
//! `|balance + cost(old) − cost(new)| < 2^101`.
//!
//! Rounds (all records and options at once): equality tests 7, bit
//! injection and the old-weight dot product 3, squares 1, sign 8, ANDs 3,
//! injection 2, updates 1 — about 25 rounds per step whatever the batch
//! size; no opening.
//!
//! **Over `F_r`** ([`StepRing`] for `Fr`) the same step is malicious-secure:
//! products and bit injection are checked, and the equality and sign tests
//! are [`is_zero_fr`] and [`is_negative_fr`] (a masked opening, then binary
//! circuits on the mask's bits: about 110 rounds for each mask's
//! conversion, 101 for the sign's borrow chain), so it runs in a malicious
//! session (tested against [`apply_plain`] and a cheating party in
//! `tests/mpc.rs`). Over Z_2^128 it is semi-honest only (the
//! ring's `eq` and `msb` have no check). A whole poll's phases 2–4 use
//! the ring in a semi-honest session ([`super::process`]) and `F_r` in a
//! malicious one (`super::checked`).

use triad_mpc::protocols::arithmetic::mul;
use triad_mpc::protocols::binary::{and, msb, not};
use triad_mpc::protocols::compare::eq;
use triad_mpc::protocols::conversion::bit_inject;
use triad_mpc::protocols::field_compare::{is_negative_fr, is_zero_fr};
use triad_mpc::{Bits, Fr, MpcError, Party, Ring, Shares, Z128};

/// What the step needs of its number system beyond products: an equality
/// test of values below 2^50 and the sign of values in `(−2^101, 2^101)`,
/// both with secret packed-bit results.
pub trait StepRing: Ring {
    fn equal(p: &mut Party, x: &Shares<Self>, y: &Shares<Self>) -> Result<Shares<Bits>, MpcError>;
    fn negative(p: &mut Party, x: &Shares<Self>) -> Result<Shares<Bits>, MpcError>;
}

/// Semi-honest only: `eq` and `msb` over the ring.
impl StepRing for Z128 {
    fn equal(p: &mut Party, x: &Shares<Self>, y: &Shares<Self>) -> Result<Shares<Bits>, MpcError> {
        eq(p, x, y, 64)
    }

    fn negative(p: &mut Party, x: &Shares<Self>) -> Result<Shares<Bits>, MpcError> {
        msb(p, x, 128)
    }
}

/// Malicious-secure in a malicious session (module docs).
impl StepRing for Fr {
    fn equal(p: &mut Party, x: &Shares<Self>, y: &Shares<Self>) -> Result<Shares<Bits>, MpcError> {
        is_zero_fr(p, &x.sub(y), 51)
    }

    fn negative(p: &mut Party, x: &Shares<Self>) -> Result<Shares<Bits>, MpcError> {
        is_negative_fr(p, x, 101)
    }
}

use crate::Mode;

/// One step's inputs for `n` records, every column secret-shared.
#[derive(Clone, Debug)]
pub struct StepInput<T = Z128> {
    /// The ballot's nonce (messages so far).
    pub nonce: Shares<T>,
    /// The voter's remaining voice credits.
    pub balance: Shares<T>,
    /// The ballot's weight per option: `V` columns of `n`.
    pub votes: Vec<Shares<T>>,
    /// Phase 1's verdict on the message (signature under the voter's
    /// current key, state index, poll id, deadlines), packed bits.
    pub key_ok: Shares<Bits>,
    pub msg_nonce: Shares<T>,
    pub msg_option: Shares<T>,
    pub msg_weight: Shares<T>,
    /// The message tests the caller made: `None`, both are made here;
    /// `Some(onehot)`, the caller gives `[msg_option == j]` for every
    /// option `j` and has folded the nonce test `[msg_nonce == nonce + 1]`
    /// into `key_ok`, and the step makes no equality test (the checked
    /// scan: options are tested once for all steps, nonces in binary).
    pub tested: Option<OneHot<T>>,
}

/// `[option == j]` for `j < V` over `n` records.
#[derive(Clone, Debug)]
pub struct OneHot<T = Z128> {
    /// Packed bits: `V` segments of `ceil(n/64)` words, segment `j` for
    /// option `j`.
    pub bits: Shares<Bits>,
    /// The same bits as 0/1 in `T`: `V` segments of `ceil(n/64)·64`.
    pub values: Shares<T>,
}

/// The state after the step and the (secret) validity of each message.
#[derive(Clone, Debug)]
pub struct StepOutput<T = Z128> {
    pub valid: Shares<Bits>,
    /// `valid` as 0/1 in the ring (already computed for the updates).
    pub valid_ring: Shares<T>,
    pub nonce: Shares<T>,
    pub balance: Shares<T>,
    pub votes: Vec<Shares<T>>,
}

/// A record in plaintext, for the oracle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainState {
    pub nonce: u64,
    pub balance: u64,
    pub votes: Vec<u64>,
}

/// The plaintext rule [`apply_step`] computes: MACI's nonce, option and
/// credit checks (as in [`crate::PollState::process_message`]) on top of
/// phase 1's `key_ok`; a valid message replaces the option's weight.
pub fn apply_plain(
    mode: Mode,
    s: &PlainState,
    key_ok: bool,
    msg_nonce: u64,
    option: u64,
    weight: u64,
) -> (bool, PlainState) {
    let nonce_ok = s.nonce.checked_add(1) == Some(msg_nonce);
    let Some(o) = usize::try_from(option).ok().filter(|&o| o < s.votes.len()) else {
        return (false, s.clone());
    };
    let have = u128::from(s.balance) + mode.cost(s.votes[o]);
    let Some(left) = have.checked_sub(mode.cost(weight)) else {
        return (false, s.clone());
    };
    if !(key_ok && nonce_ok) {
        return (false, s.clone());
    }
    let mut next = s.clone();
    next.nonce = msg_nonce;
    next.balance = u64::try_from(left).expect("left ≤ balance + cost(old) < 2^64 by the invariant");
    next.votes[o] = weight;
    (true, next)
}

/// Pads a column with zeros to `np` rows (whole 64-bit words of records).
pub(super) fn padded<T: Ring>(x: &Shares<T>, np: usize) -> Shares<T> {
    let mut x = x.clone();
    x.a.resize(np, T::zero());
    x.b.resize(np, T::zero());
    x
}

/// Words `k*w .. (k+1)*w` of packed bits (segment `k` of `w` words).
fn segment(x: &Shares<Bits>, k: usize, w: usize) -> Shares<Bits> {
    x.slice(k * w..(k + 1) * w)
}

/// The cost of each weight: `w²` (QV, one multiplication) or `w`.
fn cost<T: Ring>(p: &mut Party, mode: Mode, w: &Shares<T>) -> Result<Shares<T>, MpcError> {
    match mode {
        Mode::Quadratic => mul(p, w, w),
        Mode::Linear => Ok(w.clone()),
    }
}

/// One MACI step over `n` records at once (see the module docs). Opens
/// nothing; the output validity bits are secret.
pub fn apply_step<T: StepRing>(
    p: &mut Party,
    mode: Mode,
    s: &StepInput<T>,
) -> Result<StepOutput<T>, MpcError> {
    let n = s.nonce.len();
    let v = s.votes.len();
    let cols = [&s.balance, &s.msg_nonce, &s.msg_option, &s.msg_weight];
    if v == 0
        || cols.iter().any(|c| c.len() != n)
        || s.votes.iter().any(|c| c.len() != n)
        || s.key_ok.len() * 64 < n
        || s.tested.as_ref().is_some_and(|h| {
            h.bits.len() != v * n.div_ceil(64) || h.values.len() != v * n.div_ceil(64) * 64
        })
    {
        return Err(MpcError::InvalidArgument(
            "apply_step: columns differ in length",
        ));
    }
    let np = n.div_ceil(64) * 64;
    let w = np / 64;
    let me = p.id;

    // 1. Unless the caller made them, [msg nonce == nonce + 1] and the
    //    one-hot option [option == j] for every j < V, in one equality
    //    test (all values < 2^64).
    let (nonce_ok, onehot) = match &s.tested {
        Some(h) => (
            Shares::from_public(me, &vec![Bits(!0); w]),
            (0..v).map(|j| segment(&h.bits, j, w)).collect::<Vec<_>>(),
        ),
        None => {
            let mut xs = vec![padded(&s.msg_nonce, np)];
            let mut ys = vec![padded(&s.nonce.add_public(me, &vec![T::one(); n]), np)];
            let option = padded(&s.msg_option, np);
            for j in 0..v {
                xs.push(option.clone());
                ys.push(Shares::from_public(me, &vec![T::from_u64(j as u64); np]));
            }
            let e = T::equal(
                p,
                &Shares::concat(&xs.iter().collect::<Vec<_>>()),
                &Shares::concat(&ys.iter().collect::<Vec<_>>()),
            )?;
            (
                segment(&e, 0, w),
                (0..v).map(|j| segment(&e, 1 + j, w)).collect(),
            )
        }
    };
    // At most one j matches, so their XOR (local) is [option < V].
    let option_ok = onehot
        .iter()
        .skip(1)
        .fold(onehot[0].clone(), |acc, f| acc.add(f));

    // 2. The option's old weight: Σ_j [option == j] · votes_j.
    let f = match &s.tested {
        Some(h) => h.values.clone(),
        None => bit_inject::<T>(
            p,
            &Shares::concat(&onehot.iter().collect::<Vec<_>>()),
            v * np,
        )?,
    };
    let votes_p: Vec<Shares<T>> = s.votes.iter().map(|c| padded(c, np)).collect();
    let fv = mul(p, &f, &Shares::concat(&votes_p.iter().collect::<Vec<_>>()))?;
    let old = (1..v).fold(fv.slice(0..np), |acc, j| {
        acc.add(&fv.slice(j * np..(j + 1) * np))
    });

    // 3. Credits left if the message is applied, and [left ≥ 0] (its sign).
    let weight = padded(&s.msg_weight, np);
    let costs = cost(p, mode, &Shares::concat(&[&old, &weight]))?;
    let left = padded(&s.balance, np)
        .add(&costs.slice(0..np))
        .sub(&costs.slice(np..2 * np));
    let negative = T::negative(p, &left)?;
    let credits_ok = not(p, &negative);

    // 4. valid = key_ok ∧ nonce_ok ∧ option_ok ∧ credits_ok.
    let mut key_ok = s.key_ok.clone();
    key_ok.a.resize(w, Bits(0));
    key_ok.b.resize(w, Bits(0));
    let ab = and(
        p,
        &Shares::concat(&[&key_ok, &option_ok]),
        &Shares::concat(&[&nonce_ok, &credits_ok]),
    )?;
    let valid = and(p, &ab.slice(0..w), &ab.slice(w..2 * w))?;

    // 5. g_j = valid ∧ [option == j]; inject g and valid together.
    let valid_v: Vec<&Shares<Bits>> = (0..v).map(|_| &valid).collect();
    let g = and(
        p,
        &Shares::concat(&onehot.iter().collect::<Vec<_>>()),
        &Shares::concat(&valid_v),
    )?;
    let injected = bit_inject::<T>(p, &Shares::concat(&[&valid, &g]), (1 + v) * np)?;

    // 6. Updates, one multiplication round: balance += valid·(left − balance),
    //    votes_j += g_j·(weight − old); nonce += valid (local).
    let bal = padded(&s.balance, np);
    let delta_w = weight.sub(&old);
    let mut rhs = vec![left.sub(&bal)];
    rhs.extend((0..v).map(|_| delta_w.clone()));
    let prod = mul(
        p,
        &injected,
        &Shares::concat(&rhs.iter().collect::<Vec<_>>()),
    )?;
    let valid_r = injected.slice(0..np);
    let trim = |x: Shares<T>| x.slice(0..n);
    Ok(StepOutput {
        valid,
        valid_ring: trim(valid_r.clone()),
        nonce: trim(padded(&s.nonce, np).add(&valid_r)),
        balance: trim(bal.add(&prod.slice(0..np))),
        votes: (0..v)
            .map(|j| trim(votes_p[j].add(&prod.slice((1 + j) * np..(2 + j) * np))))
            .collect(),
    })
}
