//! The field-generic core of the distributed zero-knowledge proofs of
//! [`crate::protocols::dzkp`] (AND gates, lifted to `F_{p^2}`) and
//! [`crate::protocols::mulcheck`] (products over the BN254 scalar field).
//!
//! A prover knows two vectors `u` (also known to its *left verifier*) and
//! `v` (known to its *right verifier*) and proves `sum_k u_k v_k = c` for a
//! claim `c` additively shared between the verifiers. Sum-check style
//! halving with `L = 2` (Boyle, Gilboa, Ishai, Nof, CCS 2019, section 4):
//! per level the prover sends `p(0)` and `p(2)` of `p(X) = sum_t f_t(X)
//! g_t(X)` (lines through consecutive pairs), `p(1) = claim - p(0)` being
//! implied; a challenge `r` folds both vectors to half length with claim
//! `p(r)`. The last level (two terms) uses quadratics through a random
//! third point (`ρ` from the prover's PRG with the left verifier, `σ` with
//! the right one), so the folded values the verifiers finally exchange are
//! uniform; they check `f(r) g(r) = p(r)`.
//!
//! Every value the prover sends is additively shared: the left share from
//! the PRG it shares with the left verifier, the right share (value minus
//! left share) sent to the right verifier. Challenges are Fiat-Shamir
//! hashes ([`Context`]) of the statement's view hashes and the right
//! shares so far, keyed by a salt the left verifier does not know.

use ark_ff::{Field, PrimeField};
use sha2::{Digest, Sha256};

use crate::fp61::Fp2;
use crate::gf128::Gf128;
use crate::prg::Prg;
use crate::{Fr, MpcError, Party, PartyId, Ring};

/// A field a proof runs over: a [`Ring`] (wire encoding, PRG sampling)
/// with evaluation points, inverses and hashing.
pub trait ProofField: Ring {
    /// The `j`-th evaluation point: `node(0) = 0`, `node(1) = 1`, all
    /// distinct (the integers in odd characteristic).
    fn node(j: u64) -> Self;
    /// `f(2)` of the line `f` through `(0, x0)` and `(1, x1)`.
    #[inline]
    fn at_two(x0: Self, x1: Self) -> Self {
        x0 + Self::node(2) * (x1 - x0)
    }
    /// `x[t] = x[2t] + r (x[2t+1] - x[2t])` for every pair, in place;
    /// returns `x.len() / 2`.
    #[inline]
    fn fold_pairs(x: &mut [Self], r: Self) -> usize {
        let half = x.len() / 2;
        for t in 0..half {
            x[t] = fold(x[2 * t], x[2 * t + 1], r);
        }
        half
    }
    /// `p(0)` and `p(2)` of a halving level: the sums of [`line_terms`]
    /// over the pairs of `u` and `v`.
    #[inline]
    fn line_sums(u: &[Self], v: &[Self]) -> (Self, Self) {
        let (mut p0, mut p2) = (Self::zero(), Self::zero());
        for (uc, vc) in u.chunks_exact(2).zip(v.chunks_exact(2)) {
            let (a0, a2) = line_terms(uc[0], uc[1], vc[0], vc[1]);
            p0 += a0;
            p2 += a2;
        }
        (p0, p2)
    }
    /// The inverse of a nonzero element.
    fn inv(self) -> Self;
    /// A (nearly) uniform element from a hash output.
    fn from_digest(d: &[u8; 32]) -> Self;
    fn absorb(&self, h: &mut Sha256) {
        let mut b = Vec::with_capacity(Self::BYTES);
        Self::encode(std::slice::from_ref(self), &mut b);
        h.update(b);
    }
}

impl ProofField for Fp2 {
    fn node(j: u64) -> Self {
        Fp2::from_i64(j as i64)
    }
    #[inline]
    fn at_two(x0: Self, x1: Self) -> Self {
        x1 + x1 - x0
    }
    fn fold_pairs(x: &mut [Self], r: Self) -> usize {
        Fp2::fold_pairs(x, r)
    }
    fn line_sums(u: &[Self], v: &[Self]) -> (Self, Self) {
        Fp2::line_sums(u, v)
    }
    fn inv(self) -> Self {
        // (a + bi)^-1 = (a - bi) / (a^2 + b^2); a^2 + b^2 != 0 as -1 is
        // not a square mod 2^61 - 1.
        let n = (self.re * self.re + self.im * self.im).inv();
        Fp2 {
            re: self.re * n,
            im: -(self.im * n),
        }
    }
    fn from_digest(d: &[u8; 32]) -> Self {
        Fp2::from_random_bytes(d[..16].try_into().expect("16 bytes"))
    }
    fn absorb(&self, h: &mut Sha256) {
        h.update(self.re.value().to_le_bytes());
        h.update(self.im.value().to_le_bytes());
    }
}

impl ProofField for Gf128 {
    fn node(j: u64) -> Self {
        match j {
            0 => Gf128::ZERO,
            1 => Gf128::ONE,
            // Small words: distinct from each other, 0 and ONE.
            _ => Gf128::from_word(j),
        }
    }
    fn inv(self) -> Self {
        Gf128::inv(self)
    }
    fn from_digest(d: &[u8; 32]) -> Self {
        Gf128(u128::from_le_bytes(d[..16].try_into().expect("16 bytes")))
    }
}

impl ProofField for Fr {
    fn node(j: u64) -> Self {
        Fr::from(j)
    }
    #[inline]
    fn at_two(x0: Self, x1: Self) -> Self {
        x1 + x1 - x0
    }
    fn inv(self) -> Self {
        self.inverse().expect("nonzero")
    }
    /// 256 bits reduced mod `p ≈ 2^254`: min-entropy above 252 bits.
    fn from_digest(d: &[u8; 32]) -> Self {
        Fr::from_le_bytes_mod_order(d)
    }
}

/// Hash context of one proof.
pub(crate) struct Context {
    hash: Sha256,
}

impl Context {
    /// `views`: the keyed hashes of the left and the right verifier's view
    /// of the statement ([`view_hash`]), so every challenge depends on the
    /// values being proven.
    pub(crate) fn new(
        label: &[u8],
        prover: PartyId,
        batch: u64,
        sub: usize,
        salt: &[u8; 32],
        views: [&[u8; 32]; 2],
    ) -> Self {
        let mut hash = Sha256::new();
        hash.update(label);
        hash.update([prover.index() as u8]);
        hash.update(batch.to_le_bytes());
        hash.update((sub as u64).to_le_bytes());
        hash.update(salt);
        hash.update(views[0]);
        hash.update(views[1]);
        Self { hash }
    }

    /// Hashes a prover message that precedes the first level.
    pub(crate) fn bind<F: ProofField>(&mut self, v: &F) {
        v.absorb(&mut self.hash);
    }

    /// The challenge after the right shares of one more level.
    pub(crate) fn challenge<F: ProofField>(&mut self, level: usize, right_shares: &[F]) -> F {
        self.hash.update((level as u64).to_le_bytes());
        right_shares.iter().for_each(|v| v.absorb(&mut self.hash));
        let d: [u8; 32] = self.hash.clone().finalize().into();
        F::from_digest(&d)
    }
}

/// A keyed hash of one verifier's view of a sub-batch: what binds the
/// Fiat-Shamir challenges to the statement. Without it every challenge
/// could be computed before the outputs are sent (they would depend only
/// on PRG output the prover knows), and a prover could choose wrong
/// outputs whose effects cancel at those challenges (found in review: a
/// subset-sum over thousands of gates). The key is shared by the prover and
/// that verifier only, so the other verifier learns nothing from the hash.
/// `feed` hashes the view's values.
pub(crate) fn view_hash(
    side: &[u8],
    key: &[u8; 32],
    sub: usize,
    feed: impl FnOnce(&mut Sha256),
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"triad dzkp v2 view");
    h.update(side);
    h.update(key);
    h.update((sub as u64).to_le_bytes());
    feed(&mut h);
    h.finalize().into()
}

pub(crate) fn digest_to<F: ProofField>(h: Sha256) -> F {
    F::from_digest(&h.finalize().into())
}

/// The PRGs of one check, drawn from the pairwise streams in the same order
/// at both ends of each link: ours as a prover (left and right side) and
/// ours as the right verifier of `prev` and the left verifier of `next`.
pub(crate) struct CheckPrgs {
    pub(crate) my_left: Prg,
    pub(crate) my_right: Prg,
    pub(crate) as_right_of_prev: Prg,
    pub(crate) as_left_of_next: Prg,
}

impl CheckPrgs {
    pub(crate) fn draw(p: &mut Party) -> Self {
        let seed = |prg: &mut Prg| {
            let mut s = [0u8; 16];
            prg.fill(&mut s);
            Prg::new(s)
        };
        let (my_right, as_left_of_next) = (seed(&mut p.prg_next), seed(&mut p.prg_next));
        let (as_right_of_prev, my_left) = (seed(&mut p.prg_prev), seed(&mut p.prg_prev));
        Self {
            my_left,
            my_right,
            as_right_of_prev,
            as_left_of_next,
        }
    }
}

pub(crate) fn draw_salt(prg: &mut Prg) -> [u8; 32] {
    let mut s = [0u8; 32];
    prg.fill(&mut s);
    s
}

/// Generic halving levels for `n` terms (down to two).
pub(crate) fn generic_levels(mut n: usize) -> usize {
    let mut l = 0;
    while n > 2 {
        n = n.div_ceil(2);
        l += 1;
    }
    l
}

/// `p(0)` and `p(2)` of the lines through `(u0, u1)` and `(v0, v1)`.
#[inline]
pub(crate) fn line_terms<F: ProofField>(u0: F, u1: F, v0: F, v1: F) -> (F, F) {
    (u0 * v0, F::at_two(u0, u1) * F::at_two(v0, v1))
}

#[inline]
pub(crate) fn fold<F: ProofField>(x0: F, x1: F, r: F) -> F {
    x0 + r * (x1 - x0)
}

/// Lagrange weights at `r` for the nodes `0..n` (`n` = 3 or 5).
pub(crate) fn lagrange<F: ProofField>(r: F, n: usize) -> Vec<F> {
    (0..n)
        .map(|k| {
            let mut num = F::one();
            let mut den = F::one();
            for j in 0..n as u64 {
                if j != k as u64 {
                    num = num * (r - F::node(j));
                    den = den * (F::node(k as u64) - F::node(j));
                }
            }
            num * den.inv()
        })
        .collect()
}

/// Halves `x` in place: `x[t] = x[2t] + r (x[2t+1] - x[2t])`.
pub(crate) fn fold_in_place<F: ProofField>(x: &mut Vec<F>, r: F) {
    let half = F::fold_pairs(x, r);
    x.truncate(half);
}

/// The final quadratic through `(x0, x1, mask)` at nodes 0, 1, 2,
/// evaluated at nodes 0..=4.
fn extend_quadratic<F: ProofField>(x0: F, x1: F, mask: F) -> [F; 5] {
    let at = |j: u64| {
        let w = lagrange(F::node(j), 3);
        w[0] * x0 + w[1] * x1 + w[2] * mask
    };
    [x0, x1, mask, at(3), at(4)]
}

/// Pads to even length (a zero term adds nothing to the inner product).
pub(crate) fn pad_even<F: ProofField>(v: &mut Vec<F>) {
    if v.len() % 2 == 1 {
        v.push(F::zero());
    }
}

/// What the prover has sent so far in one proof: the right shares and the
/// challenges derived from them.
pub(crate) struct Transcript<F> {
    pub(crate) ctx: Context,
    pub(crate) shares: Vec<F>,
    pub(crate) challenges: Vec<F>,
}

impl<F: ProofField> Transcript<F> {
    pub(crate) fn new(ctx: Context) -> Self {
        Self {
            ctx,
            shares: Vec::new(),
            challenges: Vec::new(),
        }
    }

    /// Splits `values` into a left share (from the PRG shared with the left
    /// verifier) and a right share (recorded for the right verifier) and
    /// derives the next challenge.
    pub(crate) fn send(&mut self, values: &[F], left_prg: &mut Prg) -> F {
        let right: Vec<F> = values.iter().map(|v| *v - F::random(left_prg)).collect();
        self.shares.extend_from_slice(&right);
        let r = self.ctx.challenge(self.challenges.len() + 1, &right);
        self.challenges.push(r);
        r
    }

    /// The generic halving levels and the masked final level on the
    /// materialised vectors (consumed as scratch space).
    pub(crate) fn finish(
        &mut self,
        u: &mut Vec<F>,
        v: &mut Vec<F>,
        left_prg: &mut Prg,
        right_prg: &mut Prg,
    ) {
        while u.len() > 2 {
            pad_even(u);
            pad_even(v);
            let (p0, p2) = F::line_sums(u, v);
            let r = self.send(&[p0, p2], left_prg);
            fold_in_place(u, r);
            fold_in_place(v, r);
        }
        // Final level: quadratics through a random third point, so the
        // folded values the verifiers exchange are uniform (`p(1)` is
        // implied by the claim and not sent).
        u.resize(2, F::zero());
        v.resize(2, F::zero());
        let rho = F::random(left_prg);
        let sigma = F::random(right_prg);
        let f = extend_quadratic(u[0], u[1], rho);
        let g = extend_quadratic(v[0], v[1], sigma);
        let pv: Vec<F> = f.iter().zip(&g).map(|(a, b)| *a * *b).collect();
        self.send(&[pv[0], pv[2], pv[3], pv[4]], left_prg);
    }
}

/// Values sent by a proof with `halvings` halving levels: `p(0), p(2)`
/// each, then `p(0), p(2), p(3), p(4)` for the final level.
pub(crate) fn proof_len(halvings: usize) -> usize {
    2 * halvings + 4
}

/// Folds one side's materialised vector through the generic levels from
/// `challenges[0]` and returns its final value (with `mask`) at the last
/// challenge.
pub(crate) fn fold_to_end<F: ProofField>(x: &mut Vec<F>, challenges: &[F], mask: F) -> F {
    let mut level = 0;
    while x.len() > 2 {
        pad_even(x);
        fold_in_place(x, challenges[level]);
        level += 1;
    }
    x.resize(2, F::zero());
    let w = lagrange(challenges[level], 3);
    w[0] * x[0] + w[1] * x[1] + w[2] * mask
}

/// One verifier's running claim share over the levels.
pub(crate) struct ClaimShare<F> {
    pub(crate) claim: F,
}

impl<F: ProofField> ClaimShare<F> {
    pub(crate) fn halve(&mut self, p0: F, p2: F, r: F) {
        let w = lagrange(r, 3);
        self.claim = w[0] * p0 + w[1] * (self.claim - p0) + w[2] * p2;
    }

    /// `p(r)` of the final degree-4 polynomial from `p(0), p(2..4)`.
    pub(crate) fn last(&self, p: &[F], r: F) -> F {
        let vals = [p[0], self.claim - p[0], p[1], p[2], p[3]];
        lagrange(r, 5)
            .iter()
            .zip(vals)
            .fold(F::zero(), |acc, (w, v)| acc + *w * v)
    }
}

/// The right verifier's walk over the received shares: recomputes every
/// challenge and returns the final claim share and the challenges.
pub(crate) fn right_claim<F: ProofField>(shares: &[F], start: F, ctx: &mut Context) -> (F, Vec<F>) {
    let mut claim = ClaimShare { claim: start };
    let nl = shares.len() / 2 - 1;
    let mut challenges = Vec::with_capacity(nl);
    for l in 0..nl - 1 {
        let (p0, p2) = (shares[2 * l], shares[2 * l + 1]);
        let r = ctx.challenge(l + 1, &shares[2 * l..2 * l + 2]);
        claim.halve(p0, p2, r);
        challenges.push(r);
    }
    let last = &shares[2 * (nl - 1)..];
    let r = ctx.challenge(nl, last);
    challenges.push(r);
    (claim.last(last, r), challenges)
}

/// The left verifier's claim share and the prover's final left mask `ρ`:
/// its shares are the PRG's (drawn in the prover's order: the halving
/// levels', `ρ`, the final level's), the challenges the prover's.
pub(crate) fn left_claim<F: ProofField>(challenges: &[F], start: F, prg: &mut Prg) -> (F, F) {
    let nl = challenges.len();
    let mut claim = ClaimShare { claim: start };
    for &r in &challenges[..nl - 1] {
        let (p0, p2) = (F::random(prg), F::random(prg));
        claim.halve(p0, p2, r);
    }
    let rho = F::random(prg);
    let last: Vec<F> = (0..4).map(|_| F::random(prg)).collect();
    (claim.last(&last, challenges[nl - 1]), rho)
}

/// `mine` holds `(folded value, final claim share)` per proof and a
/// digest; the other verifier's holds the other side. `check` names the
/// proof in the error.
pub(crate) fn check_final<F: ProofField>(
    check: &'static str,
    mine: &[F],
    theirs: &[F],
    prover: PartyId,
    other: PartyId,
) -> Result<(), MpcError> {
    let n = mine.len();
    if mine[n - 1] != theirs[n - 1] {
        return Err(MpcError::CheatingDetected {
            check,
            detail: format!(
                "the verifiers of {prover}'s proof derived different challenges ({prover} or {other} deviated)"
            ),
        });
    }
    for k in (0..n - 1).step_by(2) {
        if mine[k] * theirs[k] != mine[k + 1] + theirs[k + 1] {
            return Err(MpcError::CheatingDetected {
                check,
                detail: format!(
                    "{prover}'s multiplications do not verify ({prover} or {other} deviated)"
                ),
            });
        }
    }
    Ok(())
}

pub(crate) fn send_elems<F: ProofField>(
    p: &mut Party,
    to: PartyId,
    xs: &[F],
) -> Result<(), MpcError> {
    let mut out = Vec::with_capacity(xs.len() * F::BYTES);
    F::encode(xs, &mut out);
    p.net.send(to, out)?;
    Ok(())
}

pub(crate) fn recv_elems<F: ProofField>(
    p: &mut Party,
    from: PartyId,
    n: usize,
) -> Result<Vec<F>, MpcError> {
    let bytes = p.net.recv(from)?;
    if bytes.len() != n * F::BYTES {
        return Err(MpcError::WrongLength {
            from,
            expected: n * F::BYTES,
            got: bytes.len(),
        });
    }
    bytes
        .chunks_exact(F::BYTES)
        .map(F::decode)
        .collect::<Option<Vec<F>>>()
        .ok_or(MpcError::MalformedElement { from })
}

/// Receives a message of exactly `len` bytes.
pub(crate) fn recv_exact(p: &mut Party, from: PartyId, len: usize) -> Result<Vec<u8>, MpcError> {
    let got = p.net.recv(from)?;
    if got.len() != len {
        return Err(MpcError::WrongLength {
            from,
            expected: len,
            got: got.len(),
        });
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fp61::Fp;
    use proptest::prelude::*;

    fn fp2(a: u64, b: u64) -> Fp2 {
        Fp2 {
            re: Fp::new(a),
            im: Fp::new(b),
        }
    }

    proptest! {
        #[test]
        fn inverses(a in 1u64..(1 << 61) - 1, b in any::<u64>(), c in 1u64..u64::MAX) {
            let x = fp2(a, b);
            prop_assert_eq!(x * ProofField::inv(x), Fp2::ONE);
            let y = Fr::from(c);
            prop_assert_eq!(y * ProofField::inv(y), Fr::from(1u64));
            let z = Gf128(c as u128 * 0x9e37_79b9);
            prop_assert_eq!(z * ProofField::inv(z), Gf128::ONE);
        }

        /// The extended quadratic agrees with Lagrange interpolation.
        #[test]
        fn extension_interpolates(a in any::<u64>(), b in any::<u64>(), m in any::<u64>()) {
            let (x0, x1, mk) = (Fr::from(a), Fr::from(b), Fr::from(m));
            let e = extend_quadratic(x0, x1, mk);
            for (t, want) in e.iter().enumerate() {
                let w = lagrange(<Fr as ProofField>::node(t as u64), 3);
                prop_assert_eq!(w[0] * x0 + w[1] * x1 + w[2] * mk, *want);
            }
        }
    }

    #[test]
    fn decoding_rejects_non_canonical_and_short_elements() {
        assert!(<Fr as Ring>::decode(&[0xff; 32]).is_none());
        assert!(<Fr as Ring>::decode(&[0; 31]).is_none());
        assert!(<Fp2 as Ring>::decode(&[0; 15]).is_none());
        assert!(<Fp2 as Ring>::decode(&[0xff; 16]).is_none());
        assert!(<Gf128 as Ring>::decode(&[0xff; 16]).is_some());
    }
}
