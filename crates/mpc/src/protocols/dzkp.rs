//! The check of every AND gate before anything is opened: a distributed
//! zero-knowledge proof of correct multiplication.
//!
//! Protocol: Boyle, Gilboa, Ishai, Nof, "Practical fully secure three-party
//! computation via sublinear distributed zero-knowledge proofs" (CCS 2019,
//! ePrint 2019/1390), with binary gates lifted to a prime field as in Li et
//! al., "Efficient 3PC for binary circuits with application to
//! maliciously-secure DNN inference" (USENIX Security 2023, ePrint
//! 2023/909); ipa-core ships the same structure. Deviations are noted where
//! they occur.
//!
//! # The statement
//! In an AND (see [`crate::party`] for the share convention) party `i`
//! computes `z_i = x_i y_i ^ x_i y_{i+1} ^ x_{i+1} y_i ^ s_n ^ s_p`, where
//! `s_n` comes from the PRG it shares with `next` and `s_p` from the one it
//! shares with `prev`, and sends `z_i` to `prev`. As a prover it must show
//! `a b ^ c d ^ e ^ f = 0` with
//! - `a = x_i`, `c = y_i`, `e = z_i ^ x_i y_i ^ s_p`: known to the *left
//!   verifier* `prev` (which received `z_i`),
//! - `b = y_{i+1}`, `d = x_{i+1}`, `f = s_n`: known to the *right verifier*
//!   `next`.
//!
//! In `±1` form the relation is `(1-2ab)(1-2cd)(1-2e)(1-2f) = 1`, an inner
//! product of four terms `u_k v_k` with `u = (1-2e)(1, -2a, -2c, 4ac)` known
//! to the left verifier and `v = (1-2f)(1, b, d, bd)` known to the right one.
//! Each gate's product is `±1`, so over `F_p` with `p > 2m` the sum over `m`
//! gates equals `m` exactly when every gate is right: no random weights are
//! needed.
//!
//! # The proof (one per sub-batch of at most [`SUB_GATES`] gates)
//! Sum-check style halving (L = 2): the prover sends `p(X) = sum_t f_t(X)
//! g_t(X)` where `f_t`, `g_t` are the lines through consecutive pairs of
//! `u` and `v`; `p(1) = claim - p(0)` is implied, so only `p(0)` and `p(2)`
//! are sent. A challenge `r` folds `u`, `v` to half the length with claim
//! `p(r)`. The last level (two terms) uses quadratics through a random
//! third point (`ρ` shared by the prover and the left verifier, `σ` with the
//! right one), so the folded values `f(r)`, `g(r)` the verifiers exchange are
//! uniformly random; they check `f(r) g(r) = p(r)`.
//!
//! The proof is *distributed*: every value the prover sends is
//! additively shared between the two verifiers, the left share drawn from
//! the PRG the prover shares with the left verifier and the right share
//! (value minus left share) sent to the right verifier. Neither verifier
//! alone sees anything but uniform field elements.
//!
//! The first two levels depend on each gate only through its left index
//! `(a, c, e)` and right index `(b, d, f)` (eight values each), the third
//! (over pairs of neighbouring gates) only through the pairs of indices and
//! the fourth (over quadruples) through 12-bit quadruple indices. The
//! prover computes levels 1-3 from 4,096 counts and level 4 from 4,096-entry
//! tables (ipa-core issue #1033 and Li et al. describe the same kind of
//! saving for the first level). Levels 5 to 7 (over pairs of quadruples,
//! then pairs of those, …) are computed through the quadruple indices: a
//! fold is linear, so a level-6 value is the sum of two table entries, a
//! level-7 value of four and a level-8 value of eight ([`split_tables`]).
//! Both sides materialise only the level-8 vectors, a thirty-second as long
//! as the gates, with seven additions per element; only those are folded
//! element by element (with lazy reduction, [`Fp2::fold_pairs`]). Small
//! proofs stop after level 5 ([`index_levels`]).
//!
//! # Challenges (a deviation from the interactive protocol)
//! Fiat-Shamir: level `l`'s challenge hashes the statement and the chain of
//! the right shares sent so far, with a salt the prover shares with the
//! right verifier (so the left verifier cannot test guesses of the proof
//! against the hashes). The statement enters as keyed hashes of both
//! verifiers' views ([`view_hash`]); the left one, which the right verifier
//! cannot compute, travels with the shares and is covered by the digests
//! the verifiers compare. (A first version hashed only PRG-derived values,
//! so a prover could compute every challenge before sending its outputs
//! and pick wrong outputs that cancel at those points; the review that
//! found it demonstrated 2,021 wrong gates accepted out of 4,096.)
//! The left share is fixed by the PRG, so the right share determines the
//! proof. The right verifier recomputes the challenges; the prover sends
//! them to the left verifier, and the two verifiers compare digests of the
//! challenges they used in the final exchange. Challenges are drawn from
//! `F_{p^2}` (~2^122 elements, see [`crate::fp61`]), so grinding a false
//! proof takes about 2^119 hashes; MP-SPDZ's advisory on missing
//! Fiat-Shamir context is met by hashing the prover, batch number,
//! sub-batch and level.
//!
//! # Rounds and bytes
//! Two rounds per batch whatever its size: (1) each prover sends its right
//! shares to `next` and its challenges to `prev`; (2) each verifier pair
//! exchanges the folded values, the final claim shares and a digest. Per
//! sub-batch of `2^20` gates about 1 KB.

use sha2::{Digest, Sha256};

use crate::fp61::{Fp, Fp2};
use crate::prg::Prg;
use crate::protocols::sumcheck::{
    check_final, digest_to, draw_salt, fold, fold_to_end, generic_levels, left_claim, line_terms,
    proof_len, recv_elems, recv_exact, right_claim, send_elems, view_hash, CheckPrgs, Context,
    ProofField, Transcript,
};
use crate::{Bits, MpcError, Party};

/// Wall time a checked AND costs (proof and checks, three parties on two
/// cores: 13–17 ns of proof per gate in `bench and` and `bench stats`,
/// docs/benchmarks.md, plus the gate): protocols that choose between
/// circuits weigh gates with it in malicious mode.
pub const CHECKED_GATE_SECONDS: f64 = 20e-9;

/// Gates per proof: bounds a proof's working memory (the prover's
/// quadruple indices and folded vectors, about 2 MiB).
pub const SUB_GATES: usize = 1 << 20;
const SUB_WORDS: usize = SUB_GATES / 64;

/// The AND gates computed since the last check, one word per 64 gates
/// (struct of arrays). A party records, per word, its components of both
/// inputs, its output share and the one it received, and the two PRG
/// words of the zero sharing.
#[derive(Debug, Default)]
pub struct AndLog {
    xa: Vec<u64>,
    xb: Vec<u64>,
    ya: Vec<u64>,
    yb: Vec<u64>,
    za: Vec<u64>,
    zb: Vec<u64>,
    sn: Vec<u64>,
    sp: Vec<u64>,
}

impl AndLog {
    /// Words (64 gates each) waiting for the check.
    pub fn words(&self) -> usize {
        self.za.len()
    }

    pub fn is_empty(&self) -> bool {
        self.za.is_empty()
    }

    /// Appends one batch of gates: `[xa, xb, ya, yb, za, zb]` are the
    /// inputs' components, our output share and the one received from
    /// `next`; `sn`, `sp` the PRG words shared with next and prev.
    pub(crate) fn record(&mut self, shares: [&[Bits]; 6], sn: &[u64], sp: &[u64]) {
        let [xa, xb, ya, yb, za, zb, ln, lp] = self.columns();
        for (d, src) in [xa, xb, ya, yb, za, zb].into_iter().zip(shares) {
            d.extend(src.iter().map(|w| w.0));
        }
        ln.extend_from_slice(sn);
        lp.extend_from_slice(sp);
    }

    /// Empties the log and keeps its memory for the next batch (growing
    /// the vectors again would copy them and fault in fresh pages).
    fn clear(&mut self) {
        self.columns().into_iter().for_each(Vec::clear);
    }

    /// Every column, in the order of [`AndLog::record`]'s arguments.
    fn columns(&mut self) -> [&mut Vec<u64>; 8] {
        [
            &mut self.xa,
            &mut self.xb,
            &mut self.ya,
            &mut self.yb,
            &mut self.za,
            &mut self.zb,
            &mut self.sn,
            &mut self.sp,
        ]
    }

    /// Tampers with our copy of one recorded output (tests of a party
    /// that changes its own share: the check must fail).
    pub(crate) fn flip_recorded_output(&mut self, word: usize, bit: u32) {
        if let Some(z) = self.za.get_mut(word) {
            *z ^= 1 << bit;
        }
    }
}

/// What the checks have cost this party so far (reported by the benches).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CheckStats {
    pub batches: u64,
    /// AND gates checked.
    pub gates: u64,
    /// `F_r` multiplications and dot products checked.
    pub products: u64,
    /// Wall time in the checks (proving, verifying both neighbours and
    /// waiting for their messages), seconds.
    pub proof_seconds: f64,
}

/// Left triple `(a, c, e)` and right triple `(b, d, f)` of 64 gates.
type Triple = [u64; 3];

/// Checks every AND gate and every `F_r` product recorded since the last
/// check ([`crate::protocols::mulcheck`]); on success both logs are empty.
/// Two rounds per non-empty log (none when nothing is pending). An `Err`
/// means the run must abort: either a proof failed (its prover or the other
/// verifier deviated) or a message was malformed. The party stays failed:
/// every later check (so every later opening) returns an error too, so a
/// caller that ignores the error cannot open values whose gates were never
/// checked.
pub fn verify(p: &mut Party) -> Result<(), MpcError> {
    if let Some(why) = &p.failed_check {
        return Err(MpcError::CheatingDetected {
            check: "an earlier check",
            detail: why.clone(),
        });
    }
    if p.ands.is_empty() && p.products.is_empty() && p.tag_products.is_empty() {
        return Ok(());
    }
    let start = std::time::Instant::now();
    let mut out = Ok(());
    if !p.ands.is_empty() {
        out = check_log(p);
    }
    if out.is_ok() && !p.products.is_empty() {
        out = crate::protocols::mulcheck::check_log::<crate::Fr>(p);
    }
    if out.is_ok() && !p.tag_products.is_empty() {
        out = crate::protocols::mulcheck::check_log::<crate::gf128::Gf128>(p);
    }
    match &out {
        Ok(()) => {
            p.checks.batches += 1;
            p.checks.proof_seconds += start.elapsed().as_secs_f64();
        }
        Err(e) => p.failed_check = Some(e.to_string()),
    }
    out
}

fn check_log(p: &mut Party) -> Result<(), MpcError> {
    let mut log = std::mem::take(&mut p.ands);
    let words = log.words();
    let batch = p.checks.batches;
    let (me, prev, next) = (p.id, p.prev(), p.next());
    let subs: Vec<std::ops::Range<usize>> = (0..words)
        .step_by(SUB_WORDS)
        .map(|s| s..(s + SUB_WORDS).min(words))
        .collect();

    // Per-batch seeds, drawn in the same order at both ends of each link:
    // A = the lower party's proof, right side; B = the upper party's
    // proof, left side (see the module comment).
    let CheckPrgs {
        my_left: mut left_prg,
        my_right: mut right_prg,
        as_right_of_prev: mut as_right,
        as_left_of_next: mut as_left,
    } = CheckPrgs::draw(p);

    // 1. Prove: right shares to `next`, challenges to `prev`.
    let salt = draw_salt(&mut right_prg);
    let view_key = draw_salt(&mut left_prg);
    let mut shares_out = Vec::new();
    let mut challenges_out = Vec::new();
    let mut left_views = Vec::with_capacity(32 * subs.len());
    let mut bufs: Buffers = Default::default();
    for (k, r) in subs.iter().enumerate() {
        let left: Vec<Triple> = r.clone().map(|w| prover_left(&log, w)).collect();
        let right: Vec<Triple> = r.clone().map(|w| prover_right(&log, w)).collect();
        let views = [
            triples_view(b"left", &view_key, k, &left),
            triples_view(b"right", &salt, k, &right),
        ];
        left_views.extend_from_slice(&views[0]);
        let ctx = Context::new(LABEL, me, batch, k, &salt, [&views[0], &views[1]]);
        let (shares, chal) = prove(&left, &right, ctx, &mut left_prg, &mut right_prg, &mut bufs);
        shares_out.extend(shares);
        challenges_out.extend(chal);
    }
    // The right verifier cannot compute the left view's hash: it gets it
    // with the shares (the verifiers' digests below include it, so a
    // wrong one is caught).
    p.rounds += 1;
    send_elems(p, next, &shares_out)?;
    p.net.send(next, left_views)?;
    send_elems(p, prev, &challenges_out)?;
    let lens: Vec<usize> = subs.iter().map(|r| 64 * r.len()).collect();
    let proof_len: usize = lens.iter().map(|&m| proof_values(m)).sum();
    let level_len: usize = lens.iter().map(|&m| levels(m)).sum();
    let prev_shares: Vec<Fp2> = recv_elems(p, prev, proof_len)?;
    let prev_left_views = recv_exact(p, prev, 32 * subs.len())?;
    let next_challenges: Vec<Fp2> = recv_elems(p, next, level_len)?;

    // 2. Verify both neighbours' proofs: as the right verifier of `prev`
    // and the left verifier of `next`.
    let prev_salt = draw_salt(&mut as_right);
    let next_view_key = draw_salt(&mut as_left);
    let (mut right_final, mut left_final) = (Vec::new(), Vec::new());
    let (mut right_digest, mut left_digest) = (Sha256::new(), Sha256::new());
    let (mut at_share, mut at_chal) = (0, 0);
    for (k, r) in subs.iter().enumerate() {
        let m = 64 * r.len();
        let (np, nl) = (proof_values(m), levels(m));
        // Right verifier of `prev`: b = y_a, d = x_a, f = s_p.
        let right: Vec<Triple> = r
            .clone()
            .map(|w| [log.ya[w], log.xa[w], log.sp[w]])
            .collect();
        let left_view: &[u8; 32] = prev_left_views[32 * k..32 * (k + 1)]
            .try_into()
            .expect("32 bytes");
        let right_view = triples_view(b"right", &prev_salt, k, &right);
        let ctx = Context::new(LABEL, prev, batch, k, &prev_salt, [left_view, &right_view]);
        let shares = &prev_shares[at_share..at_share + np];
        let (fin, chal) = verify_right(&right, shares, ctx, &mut as_right, &mut bufs);
        right_final.extend(fin);
        right_digest.update(left_view);
        chal.iter().for_each(|c| c.absorb(&mut right_digest));
        // Left verifier of `next`: a = x_b, c = y_b, e = z_b ^ x_b y_b ^ s_n.
        let left: Vec<Triple> = r
            .clone()
            .map(|w| {
                let (x, y) = (log.xb[w], log.yb[w]);
                [x, y, log.zb[w] ^ (x & y) ^ log.sn[w]]
            })
            .collect();
        let chal = &next_challenges[at_chal..at_chal + nl];
        left_digest.update(triples_view(b"left", &next_view_key, k, &left));
        left_final.extend(verify_left(&left, chal, &mut as_left, &mut bufs));
        chal.iter().for_each(|c| c.absorb(&mut left_digest));
        at_share += np;
        at_chal += nl;
    }
    right_final.push(digest_to(right_digest));
    left_final.push(digest_to(left_digest));
    p.rounds += 1;
    send_elems(p, next, &right_final)?;
    send_elems(p, prev, &left_final)?;
    let n_final = 2 * subs.len() + 1;
    let from_next: Vec<Fp2> = recv_elems(p, next, n_final)?;
    let from_prev: Vec<Fp2> = recv_elems(p, prev, n_final)?;
    // As the left verifier of `next`, our counterpart is `prev`; as the
    // right verifier of `prev`, it is `next`.
    check_final(CHECK, &left_final, &from_prev, next, prev)?;
    check_final(CHECK, &right_final, &from_next, prev, next)?;
    p.checks.gates += 64 * words as u64;
    log.clear();
    p.ands = log;
    Ok(())
}

/// Names the proof in errors and in the Fiat-Shamir context.
const CHECK: &str = "AND-gate proof";
const LABEL: &[u8] = b"triad dzkp v2 and-gates";

/// [`view_hash`] of a sub-batch's triples.
fn triples_view(side: &[u8], key: &[u8; 32], sub: usize, triples: &[Triple]) -> [u8; 32] {
    view_hash(side, key, sub, |h| {
        // The same bytes as one update per word, in 4 KiB updates (the
        // hash's per-call cost exceeded its compression at 8 bytes a call).
        let mut buf = [0u8; 24 * 170];
        for chunk in triples.chunks(170) {
            let words = chunk.iter().flatten();
            for (b, w) in buf.chunks_exact_mut(8).zip(words) {
                b.copy_from_slice(&w.to_le_bytes());
            }
            h.update(&buf[..24 * chunk.len()]);
        }
    })
}

fn prover_left(log: &AndLog, w: usize) -> Triple {
    let (x, y) = (log.xa[w], log.ya[w]);
    [x, y, log.za[w] ^ (x & y) ^ log.sp[w]]
}

fn prover_right(log: &AndLog, w: usize) -> Triple {
    [log.yb[w], log.xb[w], log.sn[w]]
}

/// Challenges of a proof over `m` gates: two table levels, the generic
/// ones, the final one.
fn levels(m: usize) -> usize {
    TABLE_LEVELS + generic_levels(m / 4) + 1
}

/// Values sent per proof: `p(0), p(2)` per halving level, `p(0), p(2),
/// p(3), p(4)` for the final quadratic level.
fn proof_values(m: usize) -> usize {
    proof_len(TABLE_LEVELS + generic_levels(m / 4))
}

/// Levels computed from gate indices through tables: two within a gate,
/// one over pairs and one over quadruples of neighbouring gates (`m` is a
/// multiple of 64, so they group within words).
const TABLE_LEVELS: usize = 4;

/// Left vector of the level-0 statement for left index `i = a + 2c + 4e`.
fn u_table(i: usize) -> [i64; 4] {
    let (a, c, e) = ((i & 1) as i64, ((i >> 1) & 1) as i64, ((i >> 2) & 1) as i64);
    let s = 1 - 2 * e;
    [s, -2 * a * s, -2 * c * s, 4 * a * c * s]
}

/// Right vector for right index `j = b + 2d + 4f`.
fn v_table(j: usize) -> [i64; 4] {
    let (b, d, f) = ((j & 1) as i64, ((j >> 1) & 1) as i64, ((j >> 2) & 1) as i64);
    let s = 1 - 2 * f;
    [s, b * s, d * s, b * d * s]
}

/// Index of gate `bit` in a triple of words (the definition
/// [`quad_indices`] computes four at a time).
#[cfg(test)]
fn index(t: &Triple, bit: u32) -> usize {
    (((t[0] >> bit) & 1) | (((t[1] >> bit) & 1) << 1) | (((t[2] >> bit) & 1) << 2)) as usize
}

/// Counts over quadruples of neighbouring gates `4q..4q+3`, by the pair
/// indices of both sides: `cross[2 s + t]` has cell `64 i + j` for the
/// quadruples whose left pair `s` (0: gates `4q, 4q+1`; 1: `4q+2, 4q+3`)
/// has index `i` and whose right pair `t` has index `j`. Level 3 needs the
/// same-pair counts (`cross[0] + cross[3]`), level 4 all four.
fn cross_counts(left: &[u16], right: &[u16]) -> [Vec<u32>; 4] {
    let mut c: [Vec<u32>; 4] = std::array::from_fn(|_| vec![0u32; 4096]);
    for (&l, &r) in left.iter().zip(right) {
        let (l0, l1, r0, r1) = (
            (l as usize / 64) * 64,
            (l as usize % 64) * 64,
            r as usize / 64,
            r as usize % 64,
        );
        c[0][l0 + r0] += 1;
        c[1][l0 + r1] += 1;
        c[2][l1 + r0] += 1;
        c[3][l1 + r1] += 1;
    }
    c
}

/// Counts over pairs of neighbouring gates `(2k, 2k+1)` of
/// `(i, i', j, j')`: cell `64 (8 i + i') + 8 j + j'`.
fn quad_counts(cross: &[Vec<u32>; 4]) -> Vec<u64> {
    cross[0]
        .iter()
        .zip(&cross[3])
        .map(|(&a, &b)| a as u64 + b as u64)
        .collect()
}

/// `sum_{i,j} c[64 i + j] x[i] y[j]` over a 64 × 64 count table.
fn counted_product(c: &[u32], x: &[Fp2; 64], y: &[Fp2; 64]) -> Fp2 {
    let mut total = Fp2::ZERO;
    for (row, xi) in c.chunks_exact(64).zip(x) {
        let mut s = Fp2::ZERO;
        for (&n, yj) in row.iter().zip(y) {
            if n > 0 {
                s += yj.scale(Fp::new(n as u64));
            }
        }
        total += *xi * s;
    }
    total
}

/// Counts of single gates' `(i, j)` (cell `8 i + j`), from the pair
/// counts.
fn pair_counts(quads: &[u64]) -> [u64; 64] {
    let mut n = [0u64; 64];
    for (cell, &c) in quads.iter().enumerate() {
        if c > 0 {
            let (li, rj) = (cell / 64, cell % 64);
            n[8 * (li / 8) + rj / 8] += c;
            n[8 * (li % 8) + rj % 8] += c;
        }
    }
    n
}

/// Level 3's folded value per pair index `8 i + i'`.
fn pair_table(t2: &[Fp2; 8], r3: Fp2) -> [Fp2; 64] {
    std::array::from_fn(|ii| fold(t2[ii / 8], t2[ii % 8], r3))
}

/// The two table levels' folded values per index, from the challenges.
fn table_levels(r1: Fp2, r2: Fp2, table: impl Fn(usize) -> [i64; 4]) -> ([[Fp2; 2]; 8], [Fp2; 8]) {
    let t1: [[Fp2; 2]; 8] = std::array::from_fn(|i| {
        let t = table(i).map(Fp2::from_i64);
        [fold(t[0], t[1], r1), fold(t[2], t[3], r1)]
    });
    let t2 = std::array::from_fn(|i| fold(t1[i][0], t1[i][1], r2));
    (t1, t2)
}

/// Per quadruple of neighbouring gates `4q..4q+3`: `64 pa + pb` with
/// `pa = 8 i_{4q} + i_{4q+1}` and `pb = 8 i_{4q+2} + i_{4q+3}` (12 bits).
/// The index is linear in the gates' bits: with `W(n)` the weighted sum of
/// a nibble's bits (weights 512, 64, 8, 1), it is
/// `W(a) + 2 W(c) + 4 W(e)` over the quadruple's nibbles.
fn quad_indices(triples: &[Triple], out: &mut Vec<u16>) {
    /// The index per 12-bit key `a + 16 c + 256 e` of the three nibbles.
    static INDEX: [u16; 4096] = {
        const fn w(n: usize) -> u16 {
            (512 * (n & 1) + 64 * ((n >> 1) & 1) + 8 * ((n >> 2) & 1) + ((n >> 3) & 1)) as u16
        }
        let mut t = [0u16; 4096];
        let mut k = 0;
        while k < 4096 {
            t[k] = w(k & 15) + 2 * w((k >> 4) & 15) + 4 * w(k >> 8);
            k += 1;
        }
        t
    };
    out.clear();
    out.resize(16 * triples.len(), 0);
    for (t, o) in triples.iter().zip(out.chunks_exact_mut(16)) {
        let [a, c, e] = *t;
        for (q, slot) in o.iter_mut().enumerate() {
            let s = 4 * q;
            let key = ((a >> s) & 15) | (((c >> s) & 15) << 4) | (((e >> s) & 15) << 8);
            *slot = INDEX[key as usize];
        }
    }
}

/// Level 4's folded value per quadruple index `64 pa + pb`: the one
/// table [`split_tables`] starts from.
fn quad_table(t3: &[Fp2; 64], r4: Fp2) -> Vec<Box<QuadTable>> {
    vec![Box::new(std::array::from_fn(|q| {
        fold(t3[q / 64], t3[q % 64], r4)
    }))]
}

/// One table per quadruple index, 4,096 entries.
type QuadTable = [Fp2; 4096];

/// The tables that fold levels 5, 6, … through the quadruple indices.
/// Every fold is linear, so after folding at `r_0..r_j` element `s` of the
/// vector is `sum_k T_k[q_{g s + k}]` over its `g = 2^j` quadruples, with
/// `T_k = t4 · prod_i (r_i if bit i of k else 1 - r_i)`: additions per
/// element instead of multiplications. This splits each of `tables` (the
/// fold so far, `T_k` at index `k`) at the next challenge `r`: `T (1 - r)`
/// at `k`, `T r` at `k + g`.
fn split_tables(tables: Vec<Box<QuadTable>>, r: Fp2) -> Vec<Box<QuadTable>> {
    let mut high: Vec<Box<QuadTable>> = tables.iter().map(|t| Box::new(t.map(|x| r * x))).collect();
    let mut low = tables;
    for (t, h) in low.iter_mut().zip(&high) {
        for (x, &rx) in t.iter_mut().zip(h.iter()) {
            *x -= rx;
        }
    }
    low.append(&mut high);
    low
}

/// Levels after level 4 computed through the quadruple indices for `m`
/// gates: three for large proofs (the level-8 vector, `m / 32` long, is
/// the first materialised), one for small ones, where building the tables
/// (`2^j · 4,096` products at level `5 + j`) would cost more than it saves.
/// Both sides derive it from `m`; `m / 4` is a multiple of 16, so every
/// level halves an even length.
fn index_levels(m: usize) -> usize {
    if m >= 1 << 18 {
        3
    } else {
        1
    }
}

/// The element of a folded vector over `G` quadruples: `sum_k T_k[q_k]`
/// (quadruple indices are below 4,096).
#[inline(always)]
fn gathered<const G: usize>(tables: &[&QuadTable; G], q: &[u16]) -> Fp2 {
    Fp2::sum_few::<G>(std::array::from_fn(|k| tables[k][q[k] as usize & 4095]))
}

fn table_refs<const G: usize>(tables: &[Box<QuadTable>]) -> [&QuadTable; G] {
    std::array::from_fn(|k| &*tables[k])
}

/// `p(0), p(2)` of a level whose terms are pairs of values folded over
/// `G` quadruples each ([`split_tables`]).
fn index_level<const G: usize>(quads: [&[u16]; 2], tables: [&[Box<QuadTable>]; 2]) -> (Fp2, Fp2) {
    let (tu, tv) = (table_refs::<G>(tables[0]), table_refs::<G>(tables[1]));
    let pairs = quads[0]
        .chunks_exact(2 * G)
        .zip(quads[1].chunks_exact(2 * G));
    Fp2::line_sums_of(pairs.map(|(a, b)| {
        let (a, b) = (a.split_at(G), b.split_at(G));
        (
            gathered(&tu, a.0),
            gathered(&tu, a.1),
            gathered(&tv, b.0),
            gathered(&tv, b.1),
        )
    }))
}

/// [`index_level`] for `tables.len()` quadruples per value.
fn index_level_sums(quads: [&[u16]; 2], tables: [&[Box<QuadTable>]; 2]) -> (Fp2, Fp2) {
    match tables[0].len() {
        1 => index_level::<1>(quads, tables),
        2 => index_level::<2>(quads, tables),
        4 => index_level::<4>(quads, tables),
        g => unreachable!("{g} tables"),
    }
}

fn expand<const G: usize>(quads: &[u16], tables: &[Box<QuadTable>], out: &mut Vec<Fp2>) {
    let t = table_refs::<G>(tables);
    out.clear();
    out.extend(quads.chunks_exact(G).map(|q| gathered(&t, q)));
}

/// The first materialised vector (the index levels folded,
/// [`split_tables`]) from the quadruple indices, `tables.len()` per
/// element. Into `out`, reused across proofs (fresh pages cost more than
/// the arithmetic).
fn expand_folded(quads: &[u16], tables: &[Box<QuadTable>], out: &mut Vec<Fp2>) {
    match tables.len() {
        2 => expand::<2>(quads, tables, out),
        8 => expand::<8>(quads, tables, out),
        g => unreachable!("{g} tables"),
    }
}

/// `p(0), p(2)` of a level computed from counts (levels 1–3: each term
/// depends only on its left and right index): cell `side * i + j` counts
/// the terms with indices `(i, j)`, and `t(i, j)` gives their `p(0), p(2)`.
fn counted_level(
    counts: &[u64],
    side: usize,
    t: impl Fn(usize, usize) -> (Fp2, Fp2),
) -> (Fp2, Fp2) {
    let (mut p0, mut p2) = (Fp2::ZERO, Fp2::ZERO);
    for (ij, &c) in counts.iter().enumerate() {
        if c > 0 {
            let (a0, a2) = t(ij / side, ij % side);
            let c = Fp::new(c);
            p0 += a0.scale(c);
            p2 += a2.scale(c);
        }
    }
    (p0, p2)
}

/// Vectors reused across proofs: the two sides' folded values and quadruple
/// indices.
type Buffers = (Vec<Fp2>, Vec<Fp2>, Vec<u16>, Vec<u16>);

/// The prover: the right shares of every proof value and the challenges.
fn prove(
    left: &[Triple],
    right: &[Triple],
    ctx: Context,
    left_prg: &mut Prg,
    right_prg: &mut Prg,
    bufs: &mut Buffers,
) -> (Vec<Fp2>, Vec<Fp2>) {
    let m = 64 * left.len();
    let mut tr = Transcript::new(ctx);
    tr.shares.reserve(proof_values(m));
    tr.challenges.reserve(levels(m));
    // Levels 1 to 3 from the counts.
    let (qu, qv) = (&mut bufs.2, &mut bufs.3);
    quad_indices(left, qu);
    quad_indices(right, qv);
    let cross = cross_counts(qu, qv);
    let quads = quad_counts(&cross);
    let counts = pair_counts(&quads);
    let u0: [[Fp2; 4]; 8] = std::array::from_fn(|i| u_table(i).map(Fp2::from_i64));
    let v0: [[Fp2; 4]; 8] = std::array::from_fn(|j| v_table(j).map(Fp2::from_i64));
    let (p0, p2) = counted_level(&counts, 8, |i, j| {
        let (u, v) = (&u0[i], &v0[j]);
        let (a0, a2) = line_terms(u[0], u[1], v[0], v[1]);
        let (b0, b2) = line_terms(u[2], u[3], v[2], v[3]);
        (a0 + b0, a2 + b2)
    });
    let r1 = tr.send(&[p0, p2], left_prg);
    let (u1, _) = table_levels(r1, Fp2::ZERO, u_table);
    let (v1, _) = table_levels(r1, Fp2::ZERO, v_table);
    let (p0, p2) = counted_level(&counts, 8, |i, j| {
        line_terms(u1[i][0], u1[i][1], v1[j][0], v1[j][1])
    });
    let r2 = tr.send(&[p0, p2], left_prg);
    let (_, ut) = table_levels(r1, r2, u_table);
    let (_, vt) = table_levels(r1, r2, v_table);
    let (p0, p2) = counted_level(&quads, 64, |li, rj| {
        line_terms(ut[li / 8], ut[li % 8], vt[rj / 8], vt[rj % 8])
    });
    let r3 = tr.send(&[p0, p2], left_prg);
    // Level 4 over quadruples: the line through a quadruple's two pair
    // values `x0`, `x1` on each side gives `p(0) = x0 y0` and
    // `p(2) = (2 x1 - x0)(2 y1 - y0) = 4 x1 y1 - 2 x1 y0 - 2 x0 y1 + x0 y0`,
    // each product summed from the cross counts.
    let (tu, tv) = (pair_table(&ut, r3), pair_table(&vt, r3));
    let s: [Fp2; 4] = std::array::from_fn(|k| counted_product(&cross[k], &tu, &tv));
    let two = |x: Fp2| x + x;
    let p0 = s[0];
    let p2 = two(two(s[3])) - two(s[2]) - two(s[1]) + s[0];
    let r4 = tr.send(&[p0, p2], left_prg);
    // Levels 5, 6, … read their terms through the quadruples' indices:
    // each fold is a sum of table entries.
    let (mut tables_u, mut tables_v) = (quad_table(&tu, r4), quad_table(&tv, r4));
    for _ in 0..index_levels(m) {
        let (p0, p2) = index_level_sums([qu, qv], [&tables_u, &tables_v]);
        let r = tr.send(&[p0, p2], left_prg);
        tables_u = split_tables(tables_u, r);
        tables_v = split_tables(tables_v, r);
    }
    let (u, v) = (&mut bufs.0, &mut bufs.1);
    expand_folded(qu, &tables_u, u);
    expand_folded(qv, &tables_v, v);
    tr.finish(u, v, left_prg, right_prg);
    (tr.shares, tr.challenges)
}

/// Folds one side's vector through all levels and returns the final
/// folded value (with the side's mask) at the last challenge.
fn fold_side(
    triples: &[Triple],
    table: impl Fn(usize) -> [i64; 4],
    challenges: &[Fp2],
    mask: Fp2,
    bufs: &mut Buffers,
) -> Fp2 {
    let (_, t2) = table_levels(challenges[0], challenges[1], table);
    let t3 = pair_table(&t2, challenges[2]);
    quad_indices(triples, &mut bufs.2);
    let index = TABLE_LEVELS..TABLE_LEVELS + index_levels(64 * triples.len());
    let tables = challenges[index.clone()]
        .iter()
        .fold(quad_table(&t3, challenges[3]), |t, &r| split_tables(t, r));
    expand_folded(&bufs.2, &tables, &mut bufs.0);
    fold_to_end(&mut bufs.0, &challenges[index.end..], mask)
}

/// The right verifier: recomputes the challenges from the received shares,
/// returns `(g(r), p(r) share)` and the challenges.
fn verify_right(
    right: &[Triple],
    shares: &[Fp2],
    mut ctx: Context,
    prg: &mut Prg,
    buf: &mut Buffers,
) -> ([Fp2; 2], Vec<Fp2>) {
    let (claim, challenges) = right_claim(shares, Fp2::ZERO, &mut ctx);
    let sigma = <Fp2 as crate::Ring>::random(prg);
    let v = fold_side(right, v_table, &challenges, sigma, buf);
    ([v, claim], challenges)
}

/// The left verifier: its shares come from the PRG shared with the
/// prover; the challenges from the prover (checked against the right
/// verifier's by digest). Returns `(f(r), p(r) share)`.
fn verify_left(left: &[Triple], challenges: &[Fp2], prg: &mut Prg, buf: &mut Buffers) -> [Fp2; 2] {
    let m = 64 * left.len();
    let (claim, rho) = left_claim(challenges, Fp2::from_i64(m as i64), prg);
    let u = fold_side(left, u_table, challenges, rho, buf);
    [u, claim]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::sumcheck::fold_in_place;
    use crate::PartyId;
    use proptest::prelude::*;

    /// Gates satisfying the relation: `e = a b ^ c d ^ f`.
    fn honest_gates(words: usize, seed: u8) -> (Vec<Triple>, Vec<Triple>) {
        let mut prg = Prg::new([seed; 16]);
        (0..words)
            .map(|_| {
                let [a, c, b, d, f] = std::array::from_fn(|_| prg.next_u64());
                ([a, c, (a & b) ^ (c & d) ^ f], [b, d, f])
            })
            .unzip()
    }

    /// The context both the prover and the right verifier derive (the left
    /// view's hash as the prover sent it).
    fn ctx(left: &[Triple], right: &[Triple], salt: &[u8; 32]) -> Context {
        let views = [
            triples_view(b"left", &[3; 32], 0, left),
            triples_view(b"right", salt, 0, right),
        ];
        Context::new(LABEL, PartyId::ALL[1], 7, 0, salt, [&views[0], &views[1]])
    }

    /// Prover and both verifiers in one place; `tamper` may change the
    /// right shares or challenges in transit. True when the final check
    /// passes.
    fn run(
        left: &[Triple],
        right: &[Triple],
        tamper: impl Fn(&mut Vec<Fp2>, &mut Vec<Fp2>),
    ) -> bool {
        let (ls, rs) = ([1u8; 16], [2u8; 16]);
        let (mut lp, mut rp) = (Prg::new(ls), Prg::new(rs));
        let salt = draw_salt(&mut rp);
        let mut bufs: Buffers = Default::default();
        let (mut shares, mut chal) = prove(
            left,
            right,
            ctx(left, right, &salt),
            &mut lp,
            &mut rp,
            &mut bufs,
        );
        tamper(&mut shares, &mut chal);
        let mut rv = Prg::new(rs);
        let salt_v = draw_salt(&mut rv);
        let (rfin, rchal) = verify_right(
            right,
            &shares,
            ctx(left, right, &salt_v),
            &mut rv,
            &mut bufs,
        );
        let lfin = verify_left(left, &chal, &mut Prg::new(ls), &mut bufs);
        rchal == chal && lfin[0] * rfin[0] == lfin[1] + rfin[1]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn honest_proofs_verify(words in 1usize..40, seed in any::<u8>()) {
            let (l, r) = honest_gates(words, seed);
            let ok = run(&l, &r, |_, _| {});
            prop_assert!(ok);
        }

        /// One wrong gate anywhere (any of the six inputs) is caught.
        #[test]
        fn one_wrong_gate_is_caught(words in 1usize..20, seed in any::<u8>(), at in any::<usize>(), bit in 0u32..64, which in 0usize..6) {
            let (mut l, mut r) = honest_gates(words, seed);
            let w = at % words;
            if which < 3 { l[w][which] ^= 1 << bit } else { r[w][which - 3] ^= 1 << bit }
            // The prover proves the tampered statement; the verifiers
            // hold the honest one (as when the prover lied in a message).
            let (hl, hr) = honest_gates(words, seed);
            let (ls, rs) = ([1u8; 16], [2u8; 16]);
            let (mut lp, mut rp) = (Prg::new(ls), Prg::new(rs));
            let salt = draw_salt(&mut rp);
            let mut bufs: Buffers = Default::default();
            let (shares, chal) = prove(&l, &r, ctx(&l, &r, &salt), &mut lp, &mut rp, &mut bufs);
            let mut rv = Prg::new(rs);
            let salt_v = draw_salt(&mut rv);
            // The right verifier hashes its own (honest) view; the left
            // view's hash is the one the prover sent.
            let views = [triples_view(b"left", &[3; 32], 0, &l), triples_view(b"right", &salt_v, 0, &hr)];
            let vctx = Context::new(LABEL, PartyId::ALL[1], 7, 0, &salt_v, [&views[0], &views[1]]);
            let (rfin, _) = verify_right(&hr, &shares, vctx, &mut rv, &mut bufs);
            let lfin = verify_left(&hl, &chal, &mut Prg::new(ls), &mut bufs);
            prop_assert!(lfin[0] * rfin[0] != lfin[1] + rfin[1]);
            // A prover that proves a false statement faithfully fails too
            // (the sum is no longer m). Flipping `a` where `b = 0` (and so
            // on) leaves the gate right: only broken relations count.
            let [a, c, e] = l[w];
            let [b, d, f] = r[w];
            if ((a & b) ^ (c & d) ^ e ^ f) >> bit & 1 == 1 {
                let ok = run(&l, &r, |_, _| {});
                prop_assert!(!ok);
            }
        }

        /// A changed proof value at any level, or a changed challenge, is
        /// caught.
        #[test]
        fn tampered_proof_or_challenge_is_caught(words in 1usize..20, seed in any::<u8>(), at in any::<usize>(), chal in any::<bool>()) {
            let (l, r) = honest_gates(words, seed);
            let ok = run(&l, &r, |s, c| {
                let v = if chal { c } else { s };
                let k = at % v.len();
                v[k] += Fp2::ONE;
            });
            prop_assert!(!ok);
        }
    }

    /// Regression for the review's attack: the challenges depend on the
    /// statement, so a prover cannot compute them before choosing its
    /// outputs. One flipped output bit (in the left view) or one changed
    /// right-side word gives different challenges from the first level on.
    #[test]
    fn challenges_bind_the_statement() {
        let (l, r) = honest_gates(8, 11);
        let challenges = |l: &[Triple], r: &[Triple]| {
            let (mut lp, mut rp) = (Prg::new([1; 16]), Prg::new([2; 16]));
            let salt = draw_salt(&mut rp);
            let mut bufs: Buffers = Default::default();
            prove(l, r, ctx(l, r, &salt), &mut lp, &mut rp, &mut bufs).1
        };
        let base = challenges(&l, &r);
        let mut l2 = l.clone();
        l2[5][2] ^= 1 << 17;
        let mut r2 = r.clone();
        r2[2][0] ^= 1 << 40;
        for other in [challenges(&l2, &r), challenges(&l, &r2)] {
            assert_ne!(other[0], base[0]);
            assert!(other.iter().zip(&base).all(|(a, b)| a != b));
        }
    }

    /// The index levels ([`split_tables`]) give the same line sums and the
    /// same folded vector as materialising level 5's vector and folding
    /// it element by element.
    #[test]
    fn index_levels_equal_plain_folds() {
        let mut prg = Prg::new([4; 16]);
        let mut random = || <Fp2 as crate::Ring>::random(&mut prg);
        let t4: [Box<QuadTable>; 2] =
            std::array::from_fn(|_| Box::new(std::array::from_fn(|_| random())));
        let rs: Vec<Fp2> = (0..3).map(|_| random()).collect();
        let mut q = Prg::new([5; 16]);
        let quads: [Vec<u16>; 2] =
            std::array::from_fn(|_| (0..16 * 7).map(|_| (q.next_u64() % 4096) as u16).collect());
        let mut plain: [Vec<Fp2>; 2] =
            std::array::from_fn(|s| quads[s].iter().map(|&i| t4[s][i as usize]).collect());
        let mut tables = t4.clone().map(|t| vec![t]);
        for (level, &r) in rs.iter().enumerate() {
            let want = Fp2::line_sums(&plain[0], &plain[1]);
            let got = index_level_sums([&quads[0], &quads[1]], [&tables[0], &tables[1]]);
            assert_eq!(got, want, "level {}", 5 + level);
            plain.iter_mut().for_each(|x| fold_in_place(x, r));
            tables = tables.map(|t| split_tables(t, r));
            if level == 0 || level == 2 {
                let mut out = Vec::new();
                expand_folded(&quads[1], &tables[1], &mut out);
                assert_eq!(out, plain[1]);
            }
        }
    }

    /// Proofs large enough for three index levels ([`index_levels`]):
    /// honest ones verify; a changed proof value and a wrong gate proven
    /// faithfully are caught.
    #[test]
    fn large_proofs_use_three_index_levels() {
        for words in [4096usize, 4099] {
            assert_eq!(index_levels(64 * words), 3);
            let (l, mut r) = honest_gates(words, 5);
            assert!(run(&l, &r, |_, _| {}));
            assert!(!run(&l, &r, |s, _| s[9] += Fp2::ONE));
            // Flipping `f` breaks the relation whatever the other bits.
            r[words / 2][2] ^= 1 << 9;
            assert!(!run(&l, &r, |_, _| {}));
        }
        assert_eq!(index_levels(64 * 4095), 1);
    }

    #[test]
    fn quad_indices_follow_the_gate_indices() {
        let (l, _) = honest_gates(3, 9);
        let mut q = Vec::new();
        quad_indices(&l, &mut q);
        for (w, t) in l.iter().enumerate() {
            for k in 0..16 {
                let g = 4 * k as u32;
                let want = 512 * index(t, g)
                    + 64 * index(t, g + 1)
                    + 8 * index(t, g + 2)
                    + index(t, g + 3);
                assert_eq!(q[16 * w + k] as usize, want);
            }
        }
    }

    #[test]
    fn sizes_and_levels_agree() {
        for words in [1usize, 2, 3, 5, 16, 100, SUB_WORDS] {
            let m = 64 * words;
            assert_eq!(proof_values(m), 2 * (levels(m) - 1) + 4);
        }
        assert_eq!(generic_levels(64), 5);
        assert_eq!(levels(64), TABLE_LEVELS + 3 + 1);
        // The tables encode the relation: sum_k u_k v_k = (-1)^(ab^cd^e^f).
        for i in 0..8 {
            for j in 0..8 {
                let (u, v) = (u_table(i), v_table(j));
                let s: i64 = (0..4).map(|k| u[k] * v[k]).sum();
                let (a, c, e) = (i & 1, (i >> 1) & 1, (i >> 2) & 1);
                let (b, d, f) = (j & 1, (j >> 1) & 1, (j >> 2) & 1);
                let x = (a & b) ^ (c & d) ^ e ^ f;
                assert_eq!(s, if x == 0 { 1 } else { -1 });
            }
        }
    }
}
