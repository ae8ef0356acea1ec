//! Anonymous deactivation and re-keying over shares: one epoch of
//! [`crate::rekey::Registry`], computed by the three parties with every
//! validity flag, balance and match secret (docs/polls.md, "Anonymous
//! re-keying"; `shared/research/maci.md` §7.3).
//!
//! The registry between epochs ([`SharedRegistry`]): per leaf its
//! registered key and timestamp (public, as sign-ups and re-key keys are),
//! its `active` bit and its balance (XOR-shared); the deactivation list
//! `(fingerprint of c, valid, balance)`, XOR-shared; the nullifiers seen
//! (public).
//!
//! **Deactivations** ([`deactivate_shared`]), for D messages and L leaves:
//! 1. share-set consistency, the signature under the named key (phase 1 of
//!    vote processing, [`verify_signatures`]), the client's bits of `c`
//!    recomposing to the signed salt, the deadline: public, per message
//!    (each failure is the sender's own doing);
//! 2. `E[j][d] = [index_d == j]` for every leaf `j` (public) as an L × D
//!    bit matrix: one AND tree over the index bits, batched;
//! 3. the leaf's registered-key fingerprint `⊕_j E[j][d]·fp_j` (local: the
//!    keys are public), compared with the signer's (128 bits), the leaf's
//!    active bit `⊕_j E[j][d] ∧ active_j`, and the poll id;
//! 4. `M = E ∧ base`, its exclusive prefix OR along `d` per leaf, `F = M ∧
//!    ¬prefix` (the first valid deactivation of each leaf), `valid_d = ⊕_j
//!    F[j][d]`, `active_j ← active_j ∧ ¬OR_d M[j][d]`, and each entry's
//!    balance `⊕_j F[j][d] ∧ balance_j`.
//!
//! **Re-keys** ([`rekey_shared`]), for R requests against the list of T
//! entries: `c* = Poseidon(s, 1)` and `n = Poseidon(s, 2, poll)` over
//! field shares; the client's bits of `c*` must recompose to it (opened
//! zero-test: the sender's own doing); `n` is opened and a repeated one
//! refused publicly; then `eq[r][t] = [fp(c*_r) == fp_t]` (an AND tree over
//! 128 bits), `m = eq ∧ valid`, the first match by prefix OR, `ok_r = OR_t
//! m[r][t]`, `balance_r = ⊕_t first[r][t] ∧ balance_t` (row parities,
//! local). The new leaf is appended with the public new key and the secret
//! `ok_r` and `balance_r`.
//!
//! Opened: per deactivation and re-key only the public verdicts of step 1
//! and the nullifiers; nothing that depends on which leaf or entry matched.
//! The matrices cost O(L·D) and O(R·T) AND gates (64 per word): cheap at
//! thousands, quadratic beyond (a sort-join is the way past that).

use std::collections::HashSet;

use ark_ff::{BigInteger, PrimeField, Zero};
use triad_maci::PubKey;
use triad_mpc::protocols::arithmetic::open;
use triad_mpc::protocols::binary::{and, not};
use triad_mpc::protocols::conversion::bit_inject;
use triad_mpc::protocols::poseidon::{open_is_zero, poseidon};
use triad_mpc::{Bits, Fr, MpcError, Party, Shares};

use super::bitvec::{
    and_all, append_bits, mask, or_rows, parity_rows, planes, prefix_or_exclusive, spread, tile,
    wlen, words, xor_rows,
};
use super::encode::{consistent_items, SharedMessages, FR, F_SALT, WORDS, W_FIELDS, W_SIGNER_X};
use super::signature::verify_signatures;
use crate::params::PollParams;
use crate::rekey::RekeyRefused;
use crate::state::SignUp;

/// Words of the client's bits of a field element (254 bits).
pub const C_WORDS: usize = 4;
/// Leaves (rows of E) per batch of the L × D matrix (bounds memory).
const ROW_BLOCK: usize = 512;

/// The registry between epochs, at one party.
#[derive(Clone, Debug)]
pub struct SharedRegistry {
    /// Registered key per leaf (state index − 1), public.
    pub keys: Vec<PubKey>,
    /// Sign-up time per leaf, public; 0 for re-key leaves.
    pub timestamps: Vec<u64>,
    /// Bit `i`: leaf `i` is active.
    pub active: Shares<Bits>,
    /// One word per leaf: its budget.
    pub balance: Shares<Bits>,
    /// Deactivation list: low and high 64 bits of `c`, one word per entry.
    pub list_fp: [Shares<Bits>; 2],
    /// Bit `t`: entry `t` is valid.
    pub list_valid: Shares<Bits>,
    /// One word per entry.
    pub list_balance: Shares<Bits>,
    /// Nullifiers opened so far (public).
    pub nullifiers: HashSet<Vec<u8>>,
    /// Rows of the L × D and R × T bit matrices per batch (bounds memory;
    /// tests make it small to cross block boundaries).
    pub row_block: usize,
}

impl SharedRegistry {
    /// One active leaf per sign-up, budgets public.
    pub fn new(p: &Party, signups: &[SignUp]) -> Self {
        let n = signups.len();
        let mut active = vec![Bits(0); wlen(n)];
        for k in 0..n {
            active[k / 64].0 |= 1 << (k % 64);
        }
        let balance: Vec<Bits> = signups.iter().map(|s| Bits(s.voice_credits)).collect();
        SharedRegistry {
            keys: signups.iter().map(|s| s.pub_key).collect(),
            timestamps: signups.iter().map(|s| s.timestamp).collect(),
            active: Shares::from_public(p.id, &active),
            balance: Shares::from_public(p.id, &balance),
            list_fp: [Shares::zeros(0), Shares::zeros(0)],
            list_valid: Shares::zeros(0),
            list_balance: Shares::zeros(0),
            nullifiers: HashSet::new(),
            row_block: ROW_BLOCK,
        }
    }

    pub fn leaves(&self) -> usize {
        self.keys.len()
    }

    pub fn list_len(&self) -> usize {
        self.list_balance.len()
    }
}

/// What a client shares per deactivation: the command as a vote's
/// ([`super::encode`]) and the bits of `c` (its salt).
#[derive(Clone, Debug)]
pub struct SharedDeactivations {
    pub msgs: SharedMessages,
    /// [`C_WORDS`] words per deactivation.
    pub c_bits: Shares<Bits>,
}

/// What a client shares per re-key (the new key is public).
#[derive(Clone, Debug)]
pub struct SharedRekeys {
    pub secret: Shares<Fr>,
    /// [`C_WORDS`] words per re-key: the bits of `Poseidon(s, 1)`.
    pub c_bits: Shares<Bits>,
}

/// The 254 bits of a field element as [`C_WORDS`] little-endian words.
pub fn fr_words(x: &Fr) -> [u64; C_WORDS] {
    let b = x.into_bigint().to_bytes_le();
    std::array::from_fn(|k| u64::from_le_bytes(b[8 * k..8 * k + 8].try_into().expect("32 bytes")))
}

/// Public per-deactivation outcome of [`deactivate_shared`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeactivateStats {
    /// Deactivations entered in the list (well formed and in time).
    pub entered: usize,
}

/// `Σ_b bit_b · 2^b` over the [`C_WORDS`] words of each item, in the field.
fn recompose_fr(p: &mut Party, c_bits: &Shares<Bits>, n: usize) -> Result<Shares<Fr>, MpcError> {
    let bits = bit_inject::<Fr>(p, c_bits, n * C_WORDS * 64)?;
    let horner = |v: &[Fr]| -> Vec<Fr> {
        (0..n)
            .map(|k| {
                (0..C_WORDS * 64)
                    .rev()
                    .fold(Fr::zero(), |acc, b| acc + acc + v[k * C_WORDS * 64 + b])
            })
            .collect()
    };
    Ok(Shares::new(horner(&bits.a), horner(&bits.b)))
}

/// `[x_k == value]` for a secret 50-bit field of every item (as planes)
/// against one public value: an AND tree over the 50 planes.
fn eq_public_planes(
    p: &mut Party,
    pl: &[Shares<Bits>],
    value: u64,
) -> Result<Shares<Bits>, MpcError> {
    let sel: Vec<Shares<Bits>> = pl
        .iter()
        .enumerate()
        .map(|(b, x)| {
            if (value >> b) & 1 == 1 {
                x.clone()
            } else {
                not(p, x)
            }
        })
        .collect();
    and_all(p, sel)
}

/// The L × D matrix `E[j][d] = [index_d == j + 1]`, rows `rows`.
fn index_matrix(
    p: &mut Party,
    idx: &[Shares<Bits>],
    hi_zero: &Shares<Bits>,
    k: usize,
    rows: std::ops::Range<usize>,
    d: usize,
) -> Result<Shares<Bits>, MpcError> {
    let w = wlen(d);
    let nrows = rows.len();
    let notp: Vec<Shares<Bits>> = idx[..k].iter().map(|x| not(p, x)).collect();
    let mut vecs: Vec<Shares<Bits>> = (0..k)
        .map(|b| {
            let parts: Vec<&Shares<Bits>> = rows
                .clone()
                .map(|j| {
                    let leaf = (j + 1) as u64;
                    if (leaf >> b) & 1 == 1 {
                        &idx[b]
                    } else {
                        &notp[b]
                    }
                })
                .collect();
            Shares::concat(&parts)
        })
        .collect();
    vecs.push(tile(hi_zero, nrows));
    Ok(mask(&and_all(p, vecs)?, w, d))
}

/// One epoch's deactivations (module docs). `timestamps` are the public
/// log times. Updates `reg` (leaves' active bits, the list).
pub fn deactivate_shared(
    p: &mut Party,
    params: &PollParams,
    reg: &mut SharedRegistry,
    input: &SharedDeactivations,
    timestamps: &[u64],
) -> Result<DeactivateStats, MpcError> {
    let n = input.msgs.len();
    if timestamps.len() != n || input.c_bits.len() != n * C_WORDS {
        return Err(MpcError::InvalidArgument(
            "deactivate_shared: input lengths",
        ));
    }
    // 1. Public per-message checks.
    let ok = consistent_items(
        p,
        &[(&input.msgs.words, WORDS), (&input.c_bits, C_WORDS)],
        &[(&input.msgs.fr, FR)],
        n,
    )?;
    let cons: Vec<usize> = (0..n).filter(|&k| ok[k]).collect();
    let msgs = input.msgs.gather(&cons);
    let cw: Vec<usize> = cons
        .iter()
        .flat_map(|&k| (0..C_WORDS).map(move |w| k * C_WORDS + w))
        .collect();
    let c_bits = input.c_bits.gather(&cw);
    let sig = verify_signatures(p, &msgs)?;
    let salt: Vec<usize> = (0..cons.len()).map(|k| k * FR + F_SALT).collect();
    let diff = recompose_fr(p, &c_bits, cons.len())?.sub(&msgs.fr.gather(&salt));
    let c_ok = open_is_zero(p, &diff)?;
    let keep: Vec<usize> = (0..cons.len())
        .filter(|&k| sig[k] && c_ok[k] && timestamps[cons[k]] < params.voting_deadline())
        .collect();
    let d = keep.len();
    let stats = DeactivateStats { entered: d };
    if d == 0 {
        return Ok(stats);
    }
    let msgs = msgs.gather(&keep);
    let kw: Vec<usize> = keep
        .iter()
        .flat_map(|&k| (0..C_WORDS).map(move |w| k * C_WORDS + w))
        .collect();
    let c_bits = c_bits.gather(&kw);
    let (leaves, w) = (reg.leaves(), wlen(d));

    // 2–3. Planes of the index, poll id and signer fingerprint.
    let idx = planes(&msgs.words, d, WORDS, W_FIELDS, 0..50);
    let poll = planes(&msgs.words, d, WORDS, W_FIELDS + 4, 0..50);
    let signer = planes(&msgs.words, d, WORDS, W_SIGNER_X, 0..128);
    let poll_ok = eq_public_planes(p, &poll, params.poll_id())?;
    let k = (usize::BITS - leaves.leading_zeros()).max(1) as usize;
    let hi: Vec<Shares<Bits>> = idx[k..].iter().map(|x| not(p, x)).collect();
    let hi_zero = if hi.is_empty() {
        not(p, &Shares::zeros(w))
    } else {
        and_all(p, hi)?
    };
    // Active and signed up in time (public), per leaf.
    let timely: Vec<Bits> = (0..wlen(leaves))
        .map(|wd| {
            let mut m = 0u64;
            for b in 0..64 {
                let j = wd * 64 + b;
                if j < leaves && reg.timestamps[j] < params.signup_deadline() {
                    m |= 1 << b;
                }
            }
            Bits(m)
        })
        .collect();
    let live = Shares::new(
        reg.active
            .a
            .iter()
            .zip(&timely)
            .map(|(x, m)| Bits(x.0 & m.0))
            .collect(),
        reg.active
            .b
            .iter()
            .zip(&timely)
            .map(|(x, m)| Bits(x.0 & m.0))
            .collect(),
    );
    let fps: Vec<[u64; 2]> = reg.keys.iter().map(key_fingerprint).collect();
    let mut e_all = Vec::with_capacity(leaves.div_ceil(ROW_BLOCK));
    let mut fpsel: Vec<Shares<Bits>> = vec![Shares::zeros(w); 128];
    let mut active_sel = Shares::<Bits>::zeros(w);
    let mut start = 0;
    while start < leaves {
        let end = (start + reg.row_block.max(1)).min(leaves);
        let e = index_matrix(p, &idx, &hi_zero, k, start..end, d)?;
        for (r, j) in (start..end).enumerate() {
            let row = e.slice(r * w..(r + 1) * w);
            for (b, f) in fpsel.iter_mut().enumerate() {
                if (fps[j][b / 64] >> (b % 64)) & 1 == 1 {
                    *f = f.add(&row);
                }
            }
        }
        let a = and(
            p,
            &e,
            &spread(&slice_bits(&live, start, end), end - start, w),
        )?;
        active_sel = active_sel.add(&xor_rows(&a, end - start, w));
        e_all.push(e);
        start = end;
    }
    let mut key_eq: Vec<Shares<Bits>> = (0..128)
        .map(|b| not(p, &fpsel[b].add(&signer[b])))
        .collect();
    key_eq.push(poll_ok);
    key_eq.push(active_sel);
    let base = mask(&and_all(p, key_eq)?, w, d);

    // 4. First valid deactivation per leaf; new active bits; balances.
    let mut valid = Shares::<Bits>::zeros(w);
    let mut deactivated = Shares::<Bits>::zeros(0);
    let mut bal_planes: Vec<Shares<Bits>> = vec![Shares::zeros(w); 64];
    for (blk, e) in e_all.iter().enumerate() {
        let (s, rows) = (blk * reg.row_block.max(1), e.len() / w);
        let m = and(p, e, &tile(&base, rows))?;
        let pre = prefix_or_exclusive(p, &m, w, d)?;
        let f = and(p, &m, &mask(&not(p, &pre), w, d))?;
        valid = valid.add(&xor_rows(&f, rows, w));
        let gone = or_rows(p, &m, rows, w, d)?;
        deactivated = append_bits(&deactivated, s, &gone, rows);
        // Balance bit b of entry d: ⊕_j F[j][d] ∧ bit b of balance_j.
        let bal = slice_words(&reg.balance, s, s + rows);
        let spread_b: Vec<Shares<Bits>> = (0..64)
            .map(|b| spread(&bit_column(&bal, b), rows, w))
            .collect();
        let fs = tile(&f, 64);
        let prod = and(
            p,
            &fs,
            &Shares::concat(&spread_b.iter().collect::<Vec<_>>()),
        )?;
        for (b, plane) in bal_planes.iter_mut().enumerate() {
            let part = prod.slice(b * rows * w..(b + 1) * rows * w);
            *plane = plane.add(&xor_rows(&part, rows, w));
        }
    }
    let keep_active = mask(&not(p, &deactivated), wlen(leaves), leaves);
    reg.active = and(p, &reg.active, &keep_active)?;

    // The new list entries.
    let t = reg.list_len();
    let lo: Vec<usize> = (0..d).map(|k| k * C_WORDS).collect();
    let hi_w: Vec<usize> = (0..d).map(|k| k * C_WORDS + 1).collect();
    reg.list_fp = [
        Shares::concat(&[&reg.list_fp[0], &c_bits.gather(&lo)]),
        Shares::concat(&[&reg.list_fp[1], &c_bits.gather(&hi_w)]),
    ];
    reg.list_valid = append_bits(&reg.list_valid, t, &valid, d);
    reg.list_balance = Shares::concat(&[&reg.list_balance, &words(&bal_planes, d)]);
    Ok(stats)
}

/// The low 128 bits of a key's `x`.
fn key_fingerprint(k: &PubKey) -> [u64; 2] {
    let [x, _] = k.to_fields();
    let l = x.into_bigint().0;
    [l[0], l[1]]
}

/// Bits `s..e` of a packed vector, as a packed vector. Local.
fn slice_bits(x: &Shares<Bits>, s: usize, e: usize) -> Shares<Bits> {
    append_bits(&Shares::zeros(0), 0, &shift_down(x, s), e - s)
}

/// Packed bits moved down by `s` positions. Local.
fn shift_down(x: &Shares<Bits>, s: usize) -> Shares<Bits> {
    let f = |v: &[Bits]| -> Vec<Bits> {
        let (ws, bs) = (s / 64, s % 64);
        (0..v.len())
            .map(|k| {
                let lo = v.get(k + ws).map_or(0, |w| w.0 >> bs);
                let hi = if bs > 0 {
                    v.get(k + ws + 1).map_or(0, |w| w.0 << (64 - bs))
                } else {
                    0
                };
                Bits(lo | hi)
            })
            .collect()
    };
    Shares::new(f(&x.a), f(&x.b))
}

fn slice_words(x: &Shares<Bits>, s: usize, e: usize) -> Shares<Bits> {
    x.slice(s..e)
}

/// Bit `b` of each word, packed. Local.
fn bit_column(x: &Shares<Bits>, b: usize) -> Shares<Bits> {
    planes(x, x.len(), 1, 0, b..b + 1).pop().expect("one plane")
}

/// One epoch's re-keys (module docs), in log order. Returns per re-key its
/// new leaf's state index or the public reason it was refused. Appends the
/// accepted ones to `reg`.
///
/// `claimed`: the services' rule ([`crate::rekey::Registry::rekey_logged`]).
/// Each re-key was logged with the nullifier its voter claimed and given
/// the next state index, so every one appends a leaf; a re-key whose
/// opened nullifier differs from the claimed one, that is malformed, late
/// or repeats a nullifier, appends an inactive leaf without credits (its
/// verdict says why, publicly: the sender's own doing).
pub fn rekey_shared(
    p: &mut Party,
    params: &PollParams,
    reg: &mut SharedRegistry,
    input: &SharedRekeys,
    new_keys: &[PubKey],
    timestamps: &[u64],
    claimed: Option<&[Fr]>,
) -> Result<Vec<Result<u64, RekeyError>>, MpcError> {
    let n = input.secret.len();
    if new_keys.len() != n
        || timestamps.len() != n
        || input.c_bits.len() != n * C_WORDS
        || claimed.is_some_and(|c| c.len() != n)
    {
        return Err(MpcError::InvalidArgument("rekey_shared: input lengths"));
    }
    let ok = consistent_items(p, &[(&input.c_bits, C_WORDS)], &[(&input.secret, 1)], n)?;
    let one = Shares::from_public(p.id, &vec![Fr::from(1u64); n]);
    let two = Shares::from_public(p.id, &vec![Fr::from(2u64); n]);
    let poll = Shares::from_public(p.id, &vec![Fr::from(params.poll_id()); n]);
    let c = poseidon(p, &[&input.secret, &one])?;
    let nul = poseidon(p, &[&input.secret, &two, &poll])?;
    let nul = open(p, &nul)?;
    let diff = recompose_fr(p, &input.c_bits, n)?.sub(&c);
    let c_ok = open_is_zero(p, &diff)?;
    let mut verdicts = Vec::with_capacity(n);
    let mut accepted = Vec::new();
    let l = reg.leaves();
    for k in 0..n {
        let v = if !ok[k] || !c_ok[k] {
            Err(RekeyError::Malformed)
        } else if timestamps[k] >= params.voting_deadline() {
            Err(RekeyError::Refused(RekeyRefused::Late))
        } else if claimed.is_some_and(|c| c[k] != nul[k]) {
            Err(RekeyError::WrongNullifier)
        } else if !reg.nullifiers.insert(nul[k].into_bigint().to_bytes_be()) {
            Err(RekeyError::Refused(RekeyRefused::NullifierReused))
        } else {
            accepted.push(k);
            Ok((l + accepted.len()) as u64)
        };
        verdicts.push(v);
    }
    // The rows matched against the list: the accepted re-keys, or every
    // logged one (then masked by the public verdicts).
    let rows: Vec<usize> = match claimed {
        None => accepted.clone(),
        Some(_) => (0..n).collect(),
    };
    let r = rows.len();
    if r == 0 {
        return Ok(verdicts);
    }
    let cw: Vec<usize> = rows
        .iter()
        .flat_map(|&k| (0..C_WORDS).map(move |w| k * C_WORDS + w))
        .collect();
    let (mut ok_bits, mut bal_words) = match_list(p, reg, &input.c_bits.gather(&cw), r)?;
    if claimed.is_some() {
        let keep: Vec<bool> = verdicts.iter().map(Result::is_ok).collect();
        let mask_words: Vec<u64> = (0..wlen(n))
            .map(|w| {
                (0..64)
                    .filter(|&b| keep.get(w * 64 + b) == Some(&true))
                    .fold(0u64, |m, b| m | 1 << b)
            })
            .collect();
        let and_mask = |v: &mut [Bits]| v.iter_mut().zip(&mask_words).for_each(|(x, m)| x.0 &= m);
        and_mask(&mut ok_bits.a);
        and_mask(&mut ok_bits.b);
        for (k, kept) in keep.iter().enumerate() {
            if !kept {
                bal_words.a[k] = Bits(0);
                bal_words.b[k] = Bits(0);
            }
        }
        verdicts = verdicts
            .into_iter()
            .enumerate()
            .map(|(k, v)| v.map(|_| (l + k + 1) as u64))
            .collect();
    }
    reg.keys.extend(rows.iter().map(|&k| new_keys[k]));
    reg.timestamps.extend(std::iter::repeat_n(0, r));
    reg.active = append_bits(&reg.active, l, &ok_bits, r);
    reg.balance = Shares::concat(&[&reg.balance, &bal_words]);
    Ok(verdicts)
}

/// For `r` re-keys' bits of `c*` ([`C_WORDS`] words each): whether each
/// matches a valid list entry (packed bits) and the first match's balance
/// (one word each); all zero against an empty list.
fn match_list(
    p: &mut Party,
    reg: &SharedRegistry,
    c_bits: &Shares<Bits>,
    r: usize,
) -> Result<(Shares<Bits>, Shares<Bits>), MpcError> {
    let t = reg.list_len();
    if t == 0 {
        return Ok((Shares::zeros(wlen(r)), Shares::zeros(r)));
    }
    let w = wlen(t);
    // Planes of the list's fingerprints (T bits each) and balances.
    let lo = planes(&reg.list_fp[0], t, 1, 0, 0..64);
    let hi = planes(&reg.list_fp[1], t, 1, 0, 0..64);
    let list_planes: Vec<Shares<Bits>> = lo.into_iter().chain(hi).collect();
    let bal_planes = planes(&reg.list_balance, t, 1, 0, 0..64);
    let mine = planes(c_bits, r, C_WORDS, 0, 0..128);
    let (mut oks, mut bals) = (Shares::<Bits>::zeros(0), Vec::new());
    let mut start = 0;
    // Blocks of re-keys bound the R × T matrices' memory.
    while start < r {
        let end = (start + reg.row_block.max(1)).min(r);
        let rows = end - start;
        let eqs: Vec<Shares<Bits>> = (0..128)
            .map(|b| {
                let theirs = tile(&list_planes[b], rows);
                not(
                    p,
                    &theirs.add(&spread(&slice_bits(&mine[b], start, end), rows, w)),
                )
            })
            .collect();
        let eq = mask(&and_all(p, eqs)?, w, t);
        let m = and(p, &eq, &tile(&reg.list_valid, rows))?;
        let pre = prefix_or_exclusive(p, &m, w, t)?;
        let first = and(p, &m, &mask(&not(p, &pre), w, t))?;
        oks = append_bits(&oks, start, &or_rows(p, &m, rows, w, t)?, rows);
        let tiled: Vec<Shares<Bits>> = bal_planes.iter().map(|x| tile(x, rows)).collect();
        let prod = and(
            p,
            &tile(&first, 64),
            &Shares::concat(&tiled.iter().collect::<Vec<_>>()),
        )?;
        let bits: Vec<Shares<Bits>> = (0..64)
            .map(|b| parity_rows(&prod.slice(b * rows * w..(b + 1) * rows * w), rows, w))
            .collect();
        bals.push(words(&bits, rows));
        start = end;
    }
    Ok((oks, Shares::concat(&bals.iter().collect::<Vec<_>>())))
}

/// Why a re-key is refused publicly over shares: the oracle's reasons, or
/// a malformed request (inconsistent share sets, or bits of `c*` that do
/// not recompose to `Poseidon(s, 1)`: the client's own doing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyError {
    Refused(RekeyRefused),
    Malformed,
    /// Services only: the opened nullifier is not the one the voter
    /// claimed when the re-key was logged.
    WrongNullifier,
}

/// Client side: the three parties' shares of a batch of deactivations
/// (each a signed command whose salt is `c`).
pub fn share_deactivations(
    msgs: &[crate::state::Message],
    rng: &mut impl rand_core::RngCore,
) -> Result<[SharedDeactivations; 3], triad_maci::CommandError> {
    let plain: Vec<super::PlainMessage> =
        msgs.iter().map(super::encode).collect::<Result<_, _>>()?;
    let views = super::share_messages(&plain, rng);
    let words: Vec<Bits> = msgs
        .iter()
        .flat_map(|m| fr_words(&m.command.salt).map(Bits))
        .collect();
    let [w0, w1, w2] = triad_mpc::share::share_plain(&words, rng);
    let [v0, v1, v2] = views;
    Ok([
        SharedDeactivations {
            msgs: v0,
            c_bits: w0,
        },
        SharedDeactivations {
            msgs: v1,
            c_bits: w1,
        },
        SharedDeactivations {
            msgs: v2,
            c_bits: w2,
        },
    ])
}

/// Client side: the three parties' shares of a batch of re-keys (the
/// secret, and the bits of `Poseidon(s, 1)`).
pub fn share_rekeys(
    rekeys: &[crate::rekey::Rekey],
    rng: &mut impl rand_core::RngCore,
) -> [SharedRekeys; 3] {
    let secrets: Vec<Fr> = rekeys.iter().map(|r| r.secret).collect();
    let words: Vec<Bits> = rekeys
        .iter()
        .flat_map(|r| fr_words(&crate::rekey::deactivation_commitment(&r.secret)).map(Bits))
        .collect();
    let [s0, s1, s2] = triad_mpc::share::share_plain(&secrets, rng);
    let [w0, w1, w2] = triad_mpc::share::share_plain(&words, rng);
    [
        SharedRekeys {
            secret: s0,
            c_bits: w0,
        },
        SharedRekeys {
            secret: s1,
            c_bits: w1,
        },
        SharedRekeys {
            secret: s2,
            c_bits: w2,
        },
    ]
}
