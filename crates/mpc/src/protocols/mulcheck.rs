//! The check of every multiplication and dot product over the BN254 scalar
//! field `F_r`, and over GF(2^128) (the shuffle's tags), before anything
//! is opened: the distributed zero-knowledge
//! proof of Boyle, Gilboa, Ishai, Nof (CCS 2019, ePrint 2019/1390) for
//! arithmetic gates, on the same halving core as the AND-gate proof
//! ([`crate::protocols::sumcheck`]).
//!
//! # The statement
//! A *gate* is a dot product `sum_k x_k y_k` (a multiplication is one with
//! a single term). Party `i` computes `z_i = sum_k (x_{i,k} y_{i,k} +
//! x_{i,k} y_{i+1,k} + x_{i+1,k} y_{i,k}) + s_n - s_p`, with `s_n` drawn
//! from the PRG it shares with `next` and `s_p` from the one with `prev`,
//! and sends `z_i` to `prev` (as [`crate::protocols::mul`]). As a prover it
//! must show, per gate,
//! `sum_k (x_{i,k} y_{i+1,k} + y_{i,k} x_{i+1,k}) + e + s_n = 0` with
//! `e = sum_k x_{i,k} y_{i,k} - s_p - z_i`, where `x_i, y_i, e` are known
//! to the *left verifier* `prev` (which received `z_i`) and `x_{i+1},
//! y_{i+1}, s_n` to the *right verifier* `next`.
//!
//! Gates are weighted by powers `w^(g+1)` of a Fiat-Shamir challenge `w` drawn
//! after the statement is fixed (it hashes both verifiers' keyed views), so
//! one wrong gate makes the weighted sum nonzero except with probability
//! `gates / r`, about `2^-230`. The weighted sum is the inner product of
//! `u = (w^g x_{i,k}, w^g y_{i,k}, ...)` (left) and
//! `v = (y_{i+1,k}, x_{i+1,k}, ...)` (right), two entries per term, plus
//! two parts each verifier knows whole: `E = sum_g w^g e_g` (left) and
//! `S = sum_g w^g s_{n,g}` (right). Those need no proof: the inner
//! product is claimed to be `-(E + S)`, and each verifier adds its part to
//! its claim share. (Putting `(w^g e_g, 1)` and `(w^g, s_{n,g})` into the
//! vectors, as this module first did, cost two more entries per gate:
//! half the proof of a single product.)
//!
//! The vectors are cut into sub-batches of [`SUB_ENTRIES`] entries (a long
//! dot product spans several); each sub-batch proves its own claim, which
//! the prover sends additively shared (the right share is hashed into the
//! sub-batch's challenges), and the verifiers check in the final exchange
//! that the claims and their own parts sum to zero. The left verifier's
//! claim share is a PRG draw the right verifier never sees, so the sum it
//! sends hides `E`; the right verifier's hides `S` likewise (this relies,
//! as before, on the two honest holders of a component holding the same
//! copy, which the client-input checks and the shuffle's outputs ensure).
//!
//! Challenges live in the field itself: in `F_r` (~2^254) no extension is
//! needed. In GF(2^128) the same bounds are `G / 2^128` for the weights,
//! for a log of `G` gates (the log is checked once it holds
//! [`LOG_LIMIT`] terms and gates, so typically `G` < 2^21, 2^-107), plus
//! `2 / 2^128` per halving level; a prover that re-hashes false proofs
//! (Fiat–Shamir grinding) needs about `2^128 / G` attempts, fewer gates
//! making it harder.
//!
//! # Rounds and bytes
//! Two rounds per check, as the AND-gate proof: (1) proof shares and the
//! left view's hash to `next`, challenges to `prev`; (2) each verifier pair
//! exchanges its folded values, claim shares, the sum of its sub-batch
//! claim shares plus its own part (`E` or `S`) and a digest of the
//! challenges. About `2 log2(SUB_ENTRIES) + 5`
//! field elements per sub-batch.

use sha2::{Digest, Sha256};

use crate::gf128::Gf128;
use crate::prg::Prg;
use crate::protocols::sumcheck::{
    check_final, digest_to, draw_salt, fold_to_end, generic_levels, left_claim, proof_len,
    recv_elems, recv_exact, right_claim, send_elems, view_hash, CheckPrgs, Context, ProofField,
    Transcript,
};
use crate::{Fr, MpcError, Party, Ring};

/// Entries (two per term) per sub-batch proof: bounds the prover's folded
/// vectors to 2 x 8 MiB.
pub const SUB_ENTRIES: usize = 1 << 18;

/// When the log holds this many terms and gates together
/// ([`ProductLog::size`]) the next multiplication checks it first (so
/// memory stays bounded in long arithmetic programs).
pub const LOG_LIMIT: usize = 1 << 21;

const WEIGHTS: &[u8] = b"triad mulcheck v1 gate weights";

/// A field whose products are recorded and checked: `F_r` (arithmetic)
/// and GF(2^128) (the shuffle's tags).
///
/// Crate-private: [`Checked::log`] hands out the party's unchecked
/// products, so a caller outside the engine could otherwise empty the log
/// before its check and open values with unverified products behind them.
pub(crate) trait Checked: ProofField {
    /// Names the proof in errors.
    const CHECK: &'static str;
    /// Fiat-Shamir domain separation.
    const LABEL: &'static [u8];
    fn log(p: &mut Party) -> &mut ProductLog<Self>;
}

impl Checked for Fr {
    const CHECK: &'static str = "F_r multiplication proof";
    const LABEL: &'static [u8] = b"triad mulcheck v1 fr-products";
    fn log(p: &mut Party) -> &mut ProductLog<Self> {
        &mut p.products
    }
}

impl Checked for Gf128 {
    const CHECK: &'static str = "GF(2^128) multiplication proof";
    const LABEL: &'static [u8] = b"triad mulcheck v1 gf128-products";
    fn log(p: &mut Party) -> &mut ProductLog<Self> {
        &mut p.tag_products
    }
}

/// The products computed since the last check (struct of arrays). Per
/// term: our components of both factors. Per gate: where its terms end,
/// our output share, the one received from `next`, and the PRG elements
/// of the zero sharing.
#[derive(Debug)]
pub struct ProductLog<F> {
    xa: Vec<F>,
    xb: Vec<F>,
    ya: Vec<F>,
    yb: Vec<F>,
    ends: Vec<usize>,
    za: Vec<F>,
    zb: Vec<F>,
    sn: Vec<F>,
    sp: Vec<F>,
}

impl<F> Default for ProductLog<F> {
    fn default() -> Self {
        Self {
            xa: Vec::new(),
            xb: Vec::new(),
            ya: Vec::new(),
            yb: Vec::new(),
            ends: Vec::new(),
            za: Vec::new(),
            zb: Vec::new(),
            sn: Vec::new(),
            sp: Vec::new(),
        }
    }
}

impl<F: Ring> ProductLog<F> {
    pub fn gates(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Entries of the proof's vectors: two per term.
    pub fn entries(&self) -> usize {
        2 * self.xa.len()
    }

    /// Terms and gates held: what the log's memory grows with.
    pub fn size(&self) -> usize {
        self.xa.len() + self.ends.len()
    }

    /// Appends gates: the factors' components (all terms), each gate's
    /// number of terms, our output shares and those received from `next`,
    /// the PRG elements shared with next and prev.
    pub(crate) fn record(
        &mut self,
        factors: [&[F]; 4],
        terms: impl Iterator<Item = usize>,
        outputs: [&[F]; 2],
        sn: &[F],
        sp: &[F],
    ) {
        let dst = [&mut self.xa, &mut self.xb, &mut self.ya, &mut self.yb];
        for (d, src) in dst.into_iter().zip(factors) {
            d.extend_from_slice(src);
        }
        let mut end = self.ends.last().copied().unwrap_or(0);
        for t in terms {
            end += t;
            self.ends.push(end);
        }
        self.za.extend_from_slice(outputs[0]);
        self.zb.extend_from_slice(outputs[1]);
        self.sn.extend_from_slice(sn);
        self.sp.extend_from_slice(sp);
    }

    /// Tampers with our copy of one recorded output (tests of a party
    /// that changes its own share: the check must fail).
    pub(crate) fn shift_recorded_output(&mut self, gate: usize) {
        if let Some(z) = self.za.get_mut(gate) {
            *z += F::one();
        }
    }
}

/// One prover's gates as one verifier sees them. The left side's `z` is
/// the prover's output share; the right side has none.
struct Side<'a, F> {
    x: &'a [F],
    y: &'a [F],
    ends: &'a [usize],
    z: Option<&'a [F]>,
    r: &'a [F],
}

impl<F: Ring> Side<'_, F> {
    fn terms(&self, g: usize) -> std::ops::Range<usize> {
        let start = if g == 0 { 0 } else { self.ends[g - 1] };
        start..self.ends[g]
    }

    /// The proof's vector on this side (`u` on the left with the gate
    /// weights `w^(g+1)`, `v` on the right), lazily: two entries per term.
    fn entries(&self, w: F) -> Box<dyn Iterator<Item = F> + '_> {
        match self.z {
            Some(_) => {
                let mut weight = F::one();
                Box::new((0..self.ends.len()).flat_map(move |g| {
                    weight = weight * w;
                    let wg = weight;
                    self.terms(g)
                        .flat_map(move |k| [wg * self.x[k], wg * self.y[k]])
                }))
            }
            None => Box::new(
                (0..self.ends.len())
                    .flat_map(move |g| self.terms(g).flat_map(move |k| [self.y[k], self.x[k]])),
            ),
        }
    }

    /// This side's own part of the weighted statement, which needs no
    /// proof because this verifier knows it whole: `sum_g w^(g+1) e_g` on
    /// the left (`e_g = sum_k x_k y_k - s_p - z`), `sum_g w^(g+1) s_{n,g}`
    /// on the right. The verifier adds it to its claim share, so the
    /// sub-batch claims must sum to minus both parts.
    fn constant(&self, w: F) -> F {
        let mut weight = F::one();
        let mut acc = F::zero();
        for g in 0..self.ends.len() {
            weight = weight * w;
            let own = match self.z {
                Some(z) => {
                    self.terms(g)
                        .fold(F::zero(), |a, k| a + self.x[k] * self.y[k])
                        - self.r[g]
                        - z[g]
                }
                None => self.r[g],
            };
            acc += weight * own;
        }
        acc
    }

    /// A keyed hash of everything this side knows of the statement.
    fn view(&self, side: &[u8], key: &[u8; 32]) -> [u8; 32] {
        view_hash(side, key, 0, |h| {
            let mut buf = Vec::new();
            for v in [self.x, self.y, self.r].into_iter().chain(self.z) {
                buf.clear();
                F::encode(v, &mut buf);
                h.update(&buf);
            }
            for e in self.ends {
                h.update((*e as u64).to_le_bytes());
            }
        })
    }
}

/// Sub-batches of a log with `entries` entries.
fn sub_batches(entries: usize) -> usize {
    entries.div_ceil(SUB_ENTRIES)
}

/// Challenges per sub-batch proof of `len` entries: the halving levels
/// and the final one.
fn levels(len: usize) -> usize {
    generic_levels(len) + 1
}

/// Lengths of the sub-batches.
fn sub_lens(entries: usize) -> Vec<usize> {
    (0..sub_batches(entries))
        .map(|s| SUB_ENTRIES.min(entries - s * SUB_ENTRIES))
        .collect()
}

/// Checks every product recorded since the last check; on success the log
/// is empty. Two rounds. Called by [`crate::protocols::verify`], which
/// poisons the party on failure.
pub(crate) fn check_log<F: Checked>(p: &mut Party) -> Result<(), MpcError> {
    let log = std::mem::take(F::log(p));
    let entries = log.entries();
    let lens = sub_lens(entries);
    let batch = p.checks.batches;
    let (me, prev, next) = (p.id, p.prev(), p.next());

    // Per-check seeds, drawn in the same order at both ends of each link
    // (as the AND-gate proof).
    let CheckPrgs {
        my_left: mut left_prg,
        my_right: mut right_prg,
        as_right_of_prev: mut as_right,
        as_left_of_next: mut as_left,
    } = CheckPrgs::draw(p);

    // 1. Prove.
    let salt = draw_salt(&mut right_prg);
    let view_key = draw_salt(&mut left_prg);
    let left = Side {
        x: &log.xa,
        y: &log.ya,
        ends: &log.ends,
        z: Some(&log.za),
        r: &log.sp,
    };
    let right = Side {
        x: &log.xb,
        y: &log.yb,
        ends: &log.ends,
        z: None,
        r: &log.sn,
    };
    let views = [left.view(b"left", &view_key), right.view(b"right", &salt)];
    let w: F = weight(me, batch, &salt, &views[0], &views[1]);
    let (shares_out, challenges_out) = prove(
        left.entries(w),
        right.entries(w),
        &lens,
        |s| Context::new(F::LABEL, me, batch, s, &salt, [&views[0], &views[1]]),
        &mut left_prg,
        &mut right_prg,
    );
    p.rounds += 1;
    send_elems(p, next, &shares_out)?;
    p.net.send(next, views[0].to_vec())?;
    let mut to_left = vec![w];
    to_left.extend(challenges_out);
    send_elems(p, prev, &to_left)?;
    let n_shares: usize = lens.iter().map(|&l| 1 + proof_len(generic_levels(l))).sum();
    let n_chal: usize = 1 + lens.iter().map(|&l| levels(l)).sum::<usize>();
    let prev_shares: Vec<F> = recv_elems(p, prev, n_shares)?;
    let prev_left_view: [u8; 32] = recv_exact(p, prev, 32)?.try_into().expect("32 bytes");
    let next_challenges: Vec<F> = recv_elems(p, next, n_chal)?;

    // 2. Verify: as the right verifier of `prev` (its right side is our
    // `a` components and `s_p`) and the left verifier of `next` (its left
    // side is our `b` components, the output we received and `s_n`).
    let prev_salt = draw_salt(&mut as_right);
    let next_view_key = draw_salt(&mut as_left);
    let prev_right = Side {
        x: &log.xa,
        y: &log.ya,
        ends: &log.ends,
        z: None,
        r: &log.sp,
    };
    let right_view = prev_right.view(b"right", &prev_salt);
    let prev_w: F = weight(prev, batch, &prev_salt, &prev_left_view, &right_view);
    let mut right_final = verify_right(
        prev_right.entries(prev_w),
        &lens,
        &prev_shares,
        |s| {
            Context::new(
                F::LABEL,
                prev,
                batch,
                s,
                &prev_salt,
                [&prev_left_view, &right_view],
            )
        },
        &mut as_right,
    );
    let next_left = Side {
        x: &log.xb,
        y: &log.yb,
        ends: &log.ends,
        z: Some(&log.zb),
        r: &log.sn,
    };
    let next_w = next_challenges[0];
    let mut left_final = verify_left(
        next_left.entries(next_w),
        &lens,
        &next_challenges[1..],
        &mut as_left,
    );
    // Digests of what each verifier used: the left view's hash, the
    // weight and every challenge.
    let digest = |view: &[u8; 32], w: F, chal: &[F]| -> F {
        let mut h = Sha256::new();
        h.update(view);
        w.absorb(&mut h);
        chal.iter().for_each(|c| c.absorb(&mut h));
        digest_to(h)
    };
    let right_digest = digest(&prev_left_view, prev_w, &right_final.challenges);
    let left_digest = digest(
        &next_left.view(b"left", &next_view_key),
        next_w,
        &next_challenges[1..],
    );
    // Each verifier's own part of the statement joins its claim shares.
    right_final.claim_sum += prev_right.constant(prev_w);
    left_final.claim_sum += next_left.constant(next_w);
    right_final
        .values
        .extend([right_final.claim_sum, right_digest]);
    left_final
        .values
        .extend([left_final.claim_sum, left_digest]);
    p.rounds += 1;
    send_elems(p, next, &right_final.values)?;
    send_elems(p, prev, &left_final.values)?;
    let n_final = 2 * lens.len() + 2;
    let from_next: Vec<F> = recv_elems(p, next, n_final)?;
    let from_prev: Vec<F> = recv_elems(p, prev, n_final)?;
    // As the left verifier of `next`, our counterpart is `prev`; as the
    // right verifier of `prev`, it is `next`.
    for (mine, theirs, prover, other) in [
        (&left_final.values, &from_prev, next, prev),
        (&right_final.values, &from_next, prev, next),
    ] {
        let n = mine.len();
        let without_sum = |v: &[F]| [&v[..n - 2], &v[n - 1..]].concat();
        check_final(
            F::CHECK,
            &without_sum(mine),
            &without_sum(theirs),
            prover,
            other,
        )?;
        if mine[n - 2] + theirs[n - 2] != F::zero() {
            return Err(MpcError::CheatingDetected {
                check: F::CHECK,
                detail: format!(
                    "{prover}'s sub-batch claims and the verifiers' own parts do not sum to zero ({prover} or {other} deviated)"
                ),
            });
        }
    }
    p.checks.products += log.gates() as u64;
    Ok(())
}

/// The gate weight `w`: hashes both views, so it is fixed only after the
/// outputs are.
fn weight<F: ProofField>(
    prover: crate::PartyId,
    batch: u64,
    salt: &[u8; 32],
    left_view: &[u8; 32],
    right_view: &[u8; 32],
) -> F {
    Context::new(WEIGHTS, prover, batch, 0, salt, [left_view, right_view]).challenge(0, &[])
}

/// The prover: per sub-batch the right share of its claim, then the proof.
/// Returns the right shares and the challenges.
fn prove<F: ProofField>(
    mut u_it: impl Iterator<Item = F>,
    mut v_it: impl Iterator<Item = F>,
    lens: &[usize],
    ctx: impl Fn(usize) -> Context,
    left_prg: &mut Prg,
    right_prg: &mut Prg,
) -> (Vec<F>, Vec<F>) {
    let (mut shares, mut challenges) = (Vec::new(), Vec::new());
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for (s, &len) in lens.iter().enumerate() {
        u.clear();
        v.clear();
        u.extend(u_it.by_ref().take(len));
        v.extend(v_it.by_ref().take(len));
        let claim = u
            .iter()
            .zip(&v)
            .fold(F::zero(), |acc, (a, b)| acc + *a * *b);
        let claim_right = claim - F::random(left_prg);
        let mut c = ctx(s);
        c.bind(&claim_right);
        let mut tr = Transcript::new(c);
        tr.finish(&mut u, &mut v, left_prg, right_prg);
        shares.push(claim_right);
        shares.extend(tr.shares);
        challenges.extend(tr.challenges);
    }
    (shares, challenges)
}

/// What a verifier sends its counterpart: per sub-batch its folded value
/// and final claim share, the sum of its sub-batch claim shares.
struct Final<F> {
    values: Vec<F>,
    claim_sum: F,
    challenges: Vec<F>,
}

impl<F: ProofField> Final<F> {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            claim_sum: F::zero(),
            challenges: Vec::new(),
        }
    }
}

fn verify_right<F: ProofField>(
    mut v_it: impl Iterator<Item = F>,
    lens: &[usize],
    shares: &[F],
    ctx: impl Fn(usize) -> Context,
    prg: &mut Prg,
) -> Final<F> {
    let mut out = Final::new();
    let mut v = Vec::new();
    let mut at = 0;
    for (s, &len) in lens.iter().enumerate() {
        let np = proof_len(generic_levels(len));
        let start = shares[at];
        let mut c = ctx(s);
        c.bind(&start);
        let (claim, chal) = right_claim(&shares[at + 1..at + 1 + np], start, &mut c);
        v.clear();
        v.extend(v_it.by_ref().take(len));
        let sigma = F::random(prg);
        out.values.push(fold_to_end(&mut v, &chal, sigma));
        out.values.push(claim);
        out.claim_sum += start;
        out.challenges.extend(chal);
        at += 1 + np;
    }
    out
}

fn verify_left<F: ProofField>(
    mut u_it: impl Iterator<Item = F>,
    lens: &[usize],
    challenges: &[F],
    prg: &mut Prg,
) -> Final<F> {
    let mut out = Final::new();
    let mut u = Vec::new();
    let mut at = 0;
    for &len in lens {
        let nl = levels(len);
        let chal = &challenges[at..at + nl];
        let start = F::random(prg);
        let (claim, rho) = left_claim(chal, start, prg);
        u.clear();
        u.extend(u_it.by_ref().take(len));
        out.values.push(fold_to_end(&mut u, chal, rho));
        out.values.push(claim);
        out.claim_sum += start;
        at += nl;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf128::Gf128;
    use crate::PartyId;
    use proptest::prelude::*;

    /// A prover's two sides for random gates of the given term counts;
    /// `wrong` adds one to the output of that gate.
    struct Gates<F> {
        xa: Vec<F>,
        ya: Vec<F>,
        xb: Vec<F>,
        yb: Vec<F>,
        ends: Vec<usize>,
        z: Vec<F>,
        sp: Vec<F>,
        sn: Vec<F>,
    }

    fn gates<F: ProofField>(terms: &[usize], seed: u8, wrong: Option<usize>) -> Gates<F> {
        gates_off(
            terms,
            seed,
            &wrong.map(|j| vec![(j, F::one())]).unwrap_or_default(),
        )
    }

    /// [`gates`] with `off[i] = (j, d)`: gate `j`'s output off by `d`.
    fn gates_off<F: ProofField>(terms: &[usize], seed: u8, off: &[(usize, F)]) -> Gates<F> {
        let mut prg = Prg::new([seed; 16]);
        let mut r = || F::random(&mut prg);
        let total: usize = terms.iter().sum();
        let mut g = Gates {
            xa: (0..total).map(|_| r()).collect(),
            ya: (0..total).map(|_| r()).collect(),
            xb: (0..total).map(|_| r()).collect(),
            yb: (0..total).map(|_| r()).collect(),
            ends: Vec::new(),
            z: Vec::new(),
            sp: Vec::new(),
            sn: Vec::new(),
        };
        let mut end = 0;
        for (j, &t) in terms.iter().enumerate() {
            let (sn, sp) = (r(), r());
            let acc = (end..end + t).fold(F::zero(), |acc, k| {
                acc + g.xa[k] * (g.ya[k] + g.yb[k]) + g.xb[k] * g.ya[k]
            });
            let bad = off
                .iter()
                .filter(|(k, _)| *k == j)
                .fold(F::zero(), |a, (_, d)| a + *d);
            g.z.push(acc + sn - sp + bad);
            g.sn.push(sn);
            g.sp.push(sp);
            end += t;
            g.ends.push(end);
        }
        g
    }

    impl<F: ProofField> Gates<F> {
        fn left(&self) -> Side<'_, F> {
            Side {
                x: &self.xa,
                y: &self.ya,
                ends: &self.ends,
                z: Some(&self.z),
                r: &self.sp,
            }
        }
        fn right(&self) -> Side<'_, F> {
            Side {
                x: &self.xb,
                y: &self.yb,
                ends: &self.ends,
                z: None,
                r: &self.sn,
            }
        }
        fn entries(&self) -> usize {
            2 * self.xa.len()
        }
    }

    /// The honest statement (the proven inner product plus both sides'
    /// own parts) is zero at any weight; a wrong gate makes it nonzero.
    fn statement_encodes<F: ProofField>(w: F) {
        let ip = |g: &Gates<F>| {
            g.left()
                .entries(w)
                .zip(g.right().entries(w))
                .fold(F::zero(), |a, (u, v)| a + u * v)
                + g.left().constant(w)
                + g.right().constant(w)
        };
        assert_eq!(ip(&gates::<F>(&[1, 3, 0, 5], 1, None)), F::zero());
        assert_ne!(ip(&gates::<F>(&[1, 3, 0, 5], 1, Some(2))), F::zero());
    }

    #[test]
    fn statement_encodes_the_gates() {
        statement_encodes(Fr::from(7u64));
        statement_encodes(Gf128(0x1234_5678_9abc));
    }

    /// Prover and both verifiers in one place (the verifiers hold `honest`,
    /// the prover proves `proven`); `tamper` may change the shares or the
    /// challenges in transit. True when every final check passes.
    fn run<F: Checked>(
        proven: &Gates<F>,
        honest: &Gates<F>,
        tamper: impl Fn(&mut Vec<F>, &mut Vec<F>),
    ) -> bool {
        let lens = sub_lens(proven.entries());
        let (ls, rs) = ([1u8; 16], [2u8; 16]);
        let (mut lp, mut rp) = (Prg::new(ls), Prg::new(rs));
        let salt = draw_salt(&mut rp);
        let views = [[3u8; 32], [4u8; 32]];
        let me = PartyId::ALL[1];
        let ctx = |s| Context::new(F::LABEL, me, 0, s, &salt, [&views[0], &views[1]]);
        let w: F = weight(me, 0, &salt, &views[0], &views[1]);
        let (mut shares, mut chal) = prove(
            proven.left().entries(w),
            proven.right().entries(w),
            &lens,
            ctx,
            &mut lp,
            &mut rp,
        );
        tamper(&mut shares, &mut chal);
        let mut rv = Prg::new(rs);
        draw_salt(&mut rv);
        let rf = verify_right(honest.right().entries(w), &lens, &shares, ctx, &mut rv);
        let lf = verify_left(honest.left().entries(w), &lens, &chal, &mut Prg::new(ls));
        let pairs_ok = (0..lens.len()).all(|s| {
            lf.values[2 * s] * rf.values[2 * s] == lf.values[2 * s + 1] + rf.values[2 * s + 1]
        });
        let own = honest.left().constant(w) + honest.right().constant(w);
        rf.challenges == chal && pairs_ok && lf.claim_sum + rf.claim_sum + own == F::zero()
    }

    fn term_counts() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(prop_oneof![3 => Just(1usize), 1 => 0usize..6], 1..30)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn honest_proofs_verify(terms in term_counts(), seed in any::<u8>()) {
            let g = gates::<Fr>(&terms, seed, None);
            let h = gates::<Gf128>(&terms, seed, None);
            let ok = run(&g, &g, |_, _| {}) && run(&h, &h, |_, _| {});
            prop_assert!(ok);
        }

        /// A wrong output in any gate, proven faithfully, fails; so does a
        /// proof of honest gates checked against a changed view.
        #[test]
        fn one_wrong_gate_is_caught(terms in term_counts(), seed in any::<u8>(), at in any::<usize>()) {
            let j = at % terms.len();
            let bad = gates::<Fr>(&terms, seed, Some(j));
            let wrong_proven = run(&bad, &bad, |_, _| {});
            let good = gates::<Fr>(&terms, seed, None);
            let views_differ = run(&good, &bad, |_, _| {});
            let bad2 = gates::<Gf128>(&terms, seed, Some(j));
            let wrong_proven2 = run(&bad2, &bad2, |_, _| {});
            prop_assert!(!wrong_proven && !views_differ && !wrong_proven2);
        }

        #[test]
        fn tampered_proof_or_challenge_is_caught(terms in term_counts(), seed in any::<u8>(), at in any::<usize>(), chal in any::<bool>()) {
            // Gates without terms make no proof: nothing to tamper with.
            prop_assume!(terms.iter().sum::<usize>() > 0);
            let g = gates::<Gf128>(&terms, seed, None);
            let ok = run(&g, &g, |s, c| {
                let v = if chal { c } else { s };
                let k = at % v.len();
                v[k] += Gf128::ONE;
            });
            let f = gates::<Fr>(&terms, seed, None);
            let ok2 = run(&f, &f, |s, c| {
                let v = if chal { c } else { s };
                let k = at % v.len();
                v[k] += Fr::from(1u64);
            });
            prop_assert!(!ok && !ok2);
        }
    }

    /// Wrong outputs whose errors cancel without the gate weights (`+d`
    /// and `-d` in `F_r`, `+1` twice in GF(2^128)), in gates of one
    /// sub-batch or of two: caught only because gate `g` is weighted by
    /// `w^(g+1)` (a check that dropped or repeated the weights would pass
    /// them).
    #[test]
    fn errors_that_cancel_unweighted_are_caught() {
        let n = SUB_ENTRIES / 2 + 100;
        for (terms, i, j) in [
            (vec![1, 1, 1, 1], 0, 3),
            (vec![2, 0, 3], 1, 2),
            (vec![3, n, 1], 0, 2),
        ] {
            let d = Fr::from(12345u64);
            let f = gates_off::<Fr>(&terms, 4, &[(i, d), (j, -d)]);
            assert!(!run(&f, &f, |_, _| {}), "F_r, gates {i} and {j}");
            let g = gates_off::<Gf128>(&terms, 4, &[(i, Gf128::ONE), (j, Gf128::ONE)]);
            assert!(!run(&g, &g, |_, _| {}), "GF(2^128), gates {i} and {j}");
            // The same sums with the weights all 1 would be zero: the
            // errors cancel in the unweighted statement.
            let ok = gates::<Fr>(&terms, 4, None);
            let unweighted = |x: &Gates<Fr>| x.z.iter().fold(Fr::from(0u64), |a, z| a + *z);
            assert_eq!(unweighted(&f), unweighted(&ok));
        }
    }

    /// A dot product longer than a sub-batch spans several proofs whose
    /// claims only sum to zero together.
    #[test]
    fn long_dot_products_span_sub_batches() {
        let n = SUB_ENTRIES / 2 + 100;
        let g = gates::<Fr>(&[3, n, 1], 9, None);
        assert!(sub_lens(g.entries()).len() >= 2);
        assert!(run(&g, &g, |_, _| {}));
        let bad = gates::<Fr>(&[3, n, 1], 9, Some(1));
        assert!(!run(&bad, &bad, |_, _| {}));
    }

    #[test]
    fn sub_batch_lengths_cover_the_entries() {
        for e in [
            2usize,
            4,
            SUB_ENTRIES,
            SUB_ENTRIES + 2,
            3 * SUB_ENTRIES + 10,
        ] {
            let l = sub_lens(e);
            assert_eq!(l.iter().sum::<usize>(), e);
            assert!(l.iter().all(|&x| x > 0 && x <= SUB_ENTRIES));
        }
        assert!(sub_lens(0).is_empty());
    }
}
