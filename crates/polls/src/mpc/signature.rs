//! Phase 1: every message's EdDSA-Poseidon signature checked over shares,
//! under the key the client names, all messages in parallel.
//!
//! MACI's verification (`triad_maci::eddsa::verify`, circomlib's
//! `EdDSAPoseidonVerifier`): with `c = Poseidon(params, newPk.x, newPk.y,
//! salt)` and `hm = Poseidon(R8.x, R8.y, A.x, A.y, c)`, accept iff
//! `S·B8 = R8 + hm·(8A)`. Over shares (docs/polls.md, "Phase 1"):
//!
//! 1. the client's bits (see [`super::encode`]) are injected into the field;
//!    the packed `params`, `newPk.x`, `A.x` and a value `h'` are recomposed
//!    from them (local);
//! 2. `c` and `hm` are computed with Poseidon over shares (t = 5 and t = 6);
//! 3. `Q = Σ_w T_w[s_{2w+1} s_{2w}] − Σ_j h'_j·(2^j·8A) − R8` with the 2-bit
//!    windows of S (public points `k·4^w·B8`: one multiplication per window) and `h'_j` (secret points: the
//!    255 doublings of `8A`, then one multiplication per coordinate), summed
//!    by a tree of complete additions;
//! 4. five values must be zero: `Q.X`, `Q.Y − Q.Z` (Q is the identity),
//!    `hm − h'` (the client's scalar bits are hm's), and the curve equation
//!    for `A` and for `R8`. Each is tested with [`open_is_zero`] (the value
//!    times a fresh random, opened), and a message passes iff all five are
//!    zero.
//!
//! What is opened: one verdict per message, "the signature verifies under
//! the key this message names". It depends only on the sender's own
//! message, never on a voter's state: whether the named key is the voter's
//! *current* key is decided later, secretly, in the scan. A false positive
//! needs one of the masked products to vanish by chance (probability about
//! 5/p per message).
//!
//! Differences from MACI's check, all in favour of a client that lies only
//! about its own message: `S ≥ l` is not refused (`S + l` verifies as `S`:
//! malleability of one's own signature, the command is the same), and the
//! 256 bits of `h'` may spell `hm + p` (a different scalar for the same
//! `hm`; forging with it is as hard as forging with `hm`). The signer key
//! is proved on the curve but not in the prime-order subgroup; `hm·(8A)`
//! clears the cofactor, as in MACI.
//!
//! Cost per message: about 6,900 field multiplications (doublings 1,800;
//! selections 500; windows 130; additions 4,200; Poseidon 620); bit
//! injection needs none semi-honest and 2 checked products per bit in
//! malicious mode (2,688 for the 21 words; see
//! `triad_mpc::protocols::bit_inject`); about 1,000 rounds per chunk of
//! [`CHUNK`] messages.
//!
//! Malicious-secure in a malicious session: everything here is `F_r`
//! products (checked, [`triad_mpc::protocols::mulcheck`]) and the zero
//! tests open only after the check, so a cheating party can neither flip
//! a verdict nor make one depend on a secret.

use std::sync::OnceLock;

use ark_ec::twisted_edwards::TECurveConfig;
use triad_maci::babyjub::{self, base8, BabyJubjub, Point};
use triad_mpc::protocols::arithmetic::{mul, square};
use triad_mpc::protocols::conversion::bit_inject;
use triad_mpc::protocols::poseidon::{open_is_zero, poseidon};
use triad_mpc::{Fr, MpcError, Party, Ring, Shares};

use super::edwards::{self, Points};
use super::encode::{
    SharedMessages, FR, F_NEW_Y, F_R8_X, F_R8_Y, F_SALT, F_SIGNER_Y, WORDS, W_FIELDS, W_HM,
    W_NEW_X, W_S, W_SIGNER_X,
};

/// Messages verified per batch: bounds the memory of the doubling chain
/// (256 points per message).
pub const CHUNK: usize = 256;

/// Bits of each scalar (S and hm), all four words.
const SCALAR_BITS: usize = 256;

/// For each 2-bit window `w < 128` of S, the points `k·4^w·B8` for
/// `k = 1, 2, 3` (k = 0 is the identity), affine.
fn base_windows() -> &'static [[Point; 3]] {
    static T: OnceLock<Vec<[Point; 3]>> = OnceLock::new();
    T.get_or_init(|| {
        let mut out = Vec::with_capacity(SCALAR_BITS / 2);
        let mut p = base8();
        for _ in 0..SCALAR_BITS / 2 {
            let p2 = babyjub::add(&p, &p);
            let p3 = babyjub::add(&p2, &p);
            out.push([p, p2, p3]);
            p = babyjub::add(&p2, &p2);
        }
        out
    })
}

/// `2^e mod p` for `e < 256`.
fn pow2() -> &'static [Fr] {
    static T: OnceLock<Vec<Fr>> = OnceLock::new();
    T.get_or_init(|| {
        let mut out = vec![Fr::from(1u64)];
        for _ in 1..SCALAR_BITS {
            let last = *out.last().expect("non-empty");
            out.push(last + last);
        }
        out
    })
}

/// The injected bits of `m` messages: bit `b` of word `w` of message `k`
/// is element `(k * WORDS + w) * 64 + b`.
struct FieldBits {
    bits: Shares<Fr>,
}

impl FieldBits {
    /// Bit `b` of word `w`, every message, as one column.
    fn column(&self, m: usize, w: usize, b: usize) -> Shares<Fr> {
        let idx: Vec<usize> = (0..m).map(|k| (k * WORDS + w) * 64 + b).collect();
        self.bits.gather(&idx)
    }

    /// `Σ_{b < nbits} bit(w0*64 + b) · 2^(shift + b)` per message, local:
    /// Horner's rule on each component (additions only), then one scaling
    /// by `2^shift`.
    fn recompose(&self, m: usize, w0: usize, nbits: usize, shift: usize) -> Shares<Fr> {
        let horner = |v: &[Fr]| -> Vec<Fr> {
            (0..m)
                .map(|k| {
                    let base = (k * WORDS + w0) * 64;
                    (0..nbits)
                        .rev()
                        .fold(Fr::zero(), |acc, b| acc + acc + v[base + b])
                })
                .collect()
        };
        let out = Shares::new(horner(&self.bits.a), horner(&self.bits.b));
        if shift == 0 {
            out
        } else {
            out.scale(pow2()[shift])
        }
    }
}

fn fr_column(msgs: &SharedMessages, f: usize) -> Shares<Fr> {
    let idx: Vec<usize> = (0..msgs.len()).map(|k| k * FR + f).collect();
    msgs.fr.gather(&idx)
}

/// `a·x² + y² − 1 − d·x²·y²` for affine points, 2 rounds.
fn curve_equation(p: &mut Party, x: &Shares<Fr>, y: &Shares<Fr>) -> Result<Shares<Fr>, MpcError> {
    let n = x.len();
    let sq = square(p, &Shares::concat(&[x, y]))?.split(&[n, n]);
    let x2y2 = mul(p, &sq[0], &sq[1])?;
    let a = <BabyJubjub as TECurveConfig>::COEFF_A;
    let d = <BabyJubjub as TECurveConfig>::COEFF_D;
    Ok(sq[0]
        .scale(a)
        .add(&sq[1])
        .sub(&x2y2.scale(d))
        .add_public(p.id, &vec![-Fr::one(); n]))
}

/// Verifies the signatures of all messages (see the module docs); the
/// verdicts are public and identical at the three parties.
pub fn verify_signatures(p: &mut Party, msgs: &SharedMessages) -> Result<Vec<bool>, MpcError> {
    if msgs.words.len() != msgs.len() * WORDS {
        return Err(MpcError::InvalidArgument(
            "verify_signatures: words and field elements disagree",
        ));
    }
    let mut out = Vec::with_capacity(msgs.len());
    let mut start = 0;
    while start < msgs.len() {
        let end = (start + CHUNK).min(msgs.len());
        out.extend(verify_chunk(p, &msgs.slice(start..end))?);
        start = end;
    }
    Ok(out)
}

fn verify_chunk(p: &mut Party, msgs: &SharedMessages) -> Result<Vec<bool>, MpcError> {
    let m = msgs.len();
    let fb = FieldBits {
        bits: bit_inject::<Fr>(p, &msgs.words, m * WORDS * 64)?,
    };
    // 1. Recompose.
    let mut params = Shares::<Fr>::zeros(m);
    for f in 0..5 {
        params = params.add(&fb.recompose(m, W_FIELDS + f, 50, 50 * f));
    }
    let new_x = fb.recompose(m, W_NEW_X, SCALAR_BITS, 0);
    let signer_x = fb.recompose(m, W_SIGNER_X, SCALAR_BITS, 0);
    let hm_bits = fb.recompose(m, W_HM, SCALAR_BITS, 0);
    let (new_y, signer_y) = (fr_column(msgs, F_NEW_Y), fr_column(msgs, F_SIGNER_Y));
    let (r8x, r8y) = (fr_column(msgs, F_R8_X), fr_column(msgs, F_R8_Y));
    let salt = fr_column(msgs, F_SALT);

    // 2. c and hm.
    let c = poseidon(p, &[&params, &new_x, &new_y, &salt])?;
    let hm = poseidon(p, &[&r8x, &r8y, &signer_x, &signer_y, &c])?;

    // 3. Q = S·B8 − h'·(8A) − R8.
    let mut chain = Points::affine(p, signer_x.clone(), signer_y.clone());
    for _ in 0..3 {
        chain = edwards::double(p, &chain)?;
    }
    let mut powers = vec![chain];
    for _ in 1..SCALAR_BITS {
        let next = edwards::double(p, powers.last().expect("non-empty"))?;
        powers.push(next);
    }
    let hbits: Vec<Shares<Fr>> = (0..SCALAR_BITS)
        .map(|b| fb.column(m, W_HM + b / 64, b % 64))
        .collect();
    let selected = edwards::select(
        p,
        &Shares::concat(&hbits.iter().collect::<Vec<_>>()),
        &Points::concat(&powers.iter().collect::<Vec<_>>()),
    )?;
    drop(powers);
    let mut terms: Vec<Points> = (0..SCALAR_BITS)
        .map(|b| selected.slice(b * m..(b + 1) * m).neg())
        .collect();
    // S·B8 by 2-bit windows of public points: one multiplication
    // (s_lo·s_hi) per window instead of one addition per bit.
    let windows = base_windows();
    let lo: Vec<Shares<Fr>> = (0..windows.len())
        .map(|w| fb.column(m, W_S + (2 * w) / 64, (2 * w) % 64))
        .collect();
    let hi: Vec<Shares<Fr>> = (0..windows.len())
        .map(|w| fb.column(m, W_S + (2 * w + 1) / 64, (2 * w + 1) % 64))
        .collect();
    let both = mul(
        p,
        &Shares::concat(&lo.iter().collect::<Vec<_>>()),
        &Shares::concat(&hi.iter().collect::<Vec<_>>()),
    )?;
    for (w, t) in windows.iter().enumerate() {
        let lh = both.slice(w * m..(w + 1) * m);
        terms.push(edwards::select_window(p, &lo[w], &hi[w], &lh, t));
    }
    terms.push(Points::affine(p, r8x.neg(), r8y.clone()));
    let q = edwards::sum(p, terms)?;

    // 4. The five zero tests.
    let on_curve_a = curve_equation(p, &signer_x, &signer_y)?;
    let on_curve_r8 = curve_equation(p, &r8x, &r8y)?;
    let checks = Shares::concat(&[
        &q.x,
        &q.y.sub(&q.z),
        &hm.sub(&hm_bits),
        &on_curve_a,
        &on_curve_r8,
    ]);
    let zero = open_is_zero(p, &checks)?;
    Ok((0..m).map(|k| (0..5).all(|t| zero[t * m + k])).collect())
}
