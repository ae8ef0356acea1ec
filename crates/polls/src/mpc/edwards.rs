//! Baby Jubjub point arithmetic over shares of BN254 scalars: the curve
//! `a·x² + y² = 1 + d·x²·y²` (a = 168700, d = 168696, circom's form) in
//! projective coordinates `(X : Y : Z)`, `x = X/Z`, `y = Y/Z`.
//!
//! Formulas from the Explicit-Formulas Database (Bernstein, Birkner, Joye,
//! Lange, Peters, "Twisted Edwards curves", AFRICACRYPT 2008):
//! `add-2008-bbjlp` (11 multiplications, 3 rounds here) and
//! `dbl-2008-bbjlp` (7 multiplications, 2 rounds). Both are complete on
//! Baby Jubjub (a is a square, d is not), so no input needs a special case
//! as long as every point is on the curve; the signature check
//! ([`super::signature`]) proves that for the points the client supplies.
//!
//! Every function works on `n` points at once (one batch of columns); a
//! multiplication by a public constant is local.

use triad_maci::babyjub::{BabyJubjub, Point};
use triad_mpc::protocols::arithmetic::{mul, square};
use triad_mpc::{Fr, MpcError, Party, Ring, Shares};

use ark_ec::twisted_edwards::TECurveConfig;

/// `n` points in projective coordinates, each coordinate a column.
#[derive(Clone, Debug)]
pub struct Points {
    pub x: Shares<Fr>,
    pub y: Shares<Fr>,
    pub z: Shares<Fr>,
}

fn coeff_a() -> Fr {
    <BabyJubjub as TECurveConfig>::COEFF_A
}

fn coeff_d() -> Fr {
    <BabyJubjub as TECurveConfig>::COEFF_D
}

impl Points {
    pub fn len(&self) -> usize {
        self.x.len()
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Affine points `(x, y)` given as shares: `Z = 1`.
    pub fn affine(p: &Party, x: Shares<Fr>, y: Shares<Fr>) -> Self {
        let z = Shares::from_public(p.id, &vec![Fr::one(); x.len()]);
        Points { x, y, z }
    }

    pub fn concat(parts: &[&Points]) -> Points {
        let pick = |f: fn(&Points) -> &Shares<Fr>| {
            Shares::concat(&parts.iter().map(|q| f(q)).collect::<Vec<_>>())
        };
        Points {
            x: pick(|q| &q.x),
            y: pick(|q| &q.y),
            z: pick(|q| &q.z),
        }
    }

    pub fn slice(&self, r: std::ops::Range<usize>) -> Points {
        Points {
            x: self.x.slice(r.clone()),
            y: self.y.slice(r.clone()),
            z: self.z.slice(r),
        }
    }

    /// `-P = (−X : Y : Z)`, local.
    pub fn neg(&self) -> Points {
        Points {
            x: self.x.neg(),
            ..self.clone()
        }
    }
}

/// `P + Q` pointwise (add-2008-bbjlp). 11 multiplications, 3 rounds.
pub fn add(p: &mut Party, l: &Points, r: &Points) -> Result<Points, MpcError> {
    let n = l.len();
    if r.len() != n {
        return Err(MpcError::InvalidArgument("add: operands differ in length"));
    }
    // Round 1: A = Z1·Z2, C = X1·X2, D = Y1·Y2, H = (X1+Y1)·(X2+Y2).
    let r1 = mul(
        p,
        &Shares::concat(&[&l.z, &l.x, &l.y, &l.x.add(&l.y)]),
        &Shares::concat(&[&r.z, &r.x, &r.y, &r.x.add(&r.y)]),
    )?
    .split(&[n, n, n, n]);
    let (a, c, d, h) = (&r1[0], &r1[1], &r1[2], &r1[3]);
    // Round 2: B = A², CD = C·D, T1 = A·(H − C − D), T2 = A·(D − a·C).
    let r2 = mul(
        p,
        &Shares::concat(&[a, c, a, a]),
        &Shares::concat(&[a, d, &h.sub(c).sub(d), &d.sub(&c.scale(coeff_a()))]),
    )?
    .split(&[n, n, n, n]);
    let (b, cd, t1, t2) = (&r2[0], &r2[1], &r2[2], &r2[3]);
    // E = d·C·D, F = B − E, G = B + E (local).
    let e = cd.scale(coeff_d());
    let (f, g) = (b.sub(&e), b.add(&e));
    // Round 3: X3 = F·T1, Y3 = G·T2, Z3 = F·G.
    let r3 = mul(
        p,
        &Shares::concat(&[&f, &g, &f]),
        &Shares::concat(&[t1, t2, &g]),
    )?
    .split(&[n, n, n]);
    Ok(Points {
        x: r3[0].clone(),
        y: r3[1].clone(),
        z: r3[2].clone(),
    })
}

/// `2P` pointwise (dbl-2008-bbjlp). 7 multiplications, 2 rounds.
pub fn double(p: &mut Party, q: &Points) -> Result<Points, MpcError> {
    let n = q.len();
    // Round 1: B = (X+Y)², C = X², D = Y², H = Z².
    let sq = square(p, &Shares::concat(&[&q.x.add(&q.y), &q.x, &q.y, &q.z]))?.split(&[n, n, n, n]);
    let (b, c, d, h) = (&sq[0], &sq[1], &sq[2], &sq[3]);
    // E = a·C, F = E + D, J = F − 2H (local).
    let e = c.scale(coeff_a());
    let f = e.add(d);
    let j = f.sub(&h.scale(Fr::from(2u64)));
    // Round 2: X3 = (B − C − D)·J, Y3 = F·(E − D), Z3 = F·J.
    let r = mul(
        p,
        &Shares::concat(&[&b.sub(c).sub(d), &f, &f]),
        &Shares::concat(&[&j, &e.sub(d), &j]),
    )?
    .split(&[n, n, n]);
    Ok(Points {
        x: r[0].clone(),
        y: r[1].clone(),
        z: r[2].clone(),
    })
}

/// `b ? P : O` pointwise for shared bits `b` (0/1 in the field), `O` the
/// identity `(0 : 1 : 1)` scaled to `(0 : Z : Z)`. 2 multiplications,
/// 1 round.
pub fn select(p: &mut Party, b: &Shares<Fr>, q: &Points) -> Result<Points, MpcError> {
    let n = q.len();
    let r = mul(
        p,
        &Shares::concat(&[b, b]),
        &Shares::concat(&[&q.x, &q.y.sub(&q.z)]),
    )?
    .split(&[n, n]);
    Ok(Points {
        x: r[0].clone(),
        y: q.z.add(&r[1]),
        z: q.z.clone(),
    })
}

/// `T[2·hi + lo]` for public affine points `T = [O, t[0], t[1], t[2]]`,
/// given shared bits `lo`, `hi` and their product `lh`; local:
/// `T_0 + lo·(T_1 − T_0) + hi·(T_2 − T_0) + lh·(T_3 − T_2 − T_1 + T_0)`
/// per coordinate, with `T_0 = (0, 1)` and `Z = 1`.
pub fn select_window(
    p: &Party,
    lo: &Shares<Fr>,
    hi: &Shares<Fr>,
    lh: &Shares<Fr>,
    t: &[Point; 3],
) -> Points {
    let n = lo.len();
    let coord = |c0: Fr, c1: Fr, c2: Fr, c3: Fr| {
        lo.scale(c1 - c0)
            .add(&hi.scale(c2 - c0))
            .add(&lh.scale(c3 - c2 - c1 + c0))
            .add_public(p.id, &vec![c0; n])
    };
    let one = Fr::one();
    Points {
        x: coord(Fr::zero(), t[0].x, t[1].x, t[2].x),
        y: coord(one, t[0].y, t[1].y, t[2].y),
        z: Shares::from_public(p.id, &vec![one; n]),
    }
}

/// The sum of `k` groups of `n` points (`groups[j]` holds the j-th term of
/// every sum), by a balanced tree: `⌈log2 k⌉` levels of one batched
/// [`add`] each.
pub fn sum(p: &mut Party, mut groups: Vec<Points>) -> Result<Points, MpcError> {
    if groups.is_empty() {
        return Err(MpcError::InvalidArgument("sum: no terms"));
    }
    let n = groups[0].len();
    while groups.len() > 1 {
        let carry = (groups.len() % 2 == 1).then(|| groups.pop().expect("odd, so non-empty"));
        let half = groups.len() / 2;
        let left = Points::concat(&groups[..half].iter().collect::<Vec<_>>());
        let right = Points::concat(&groups[half..].iter().collect::<Vec<_>>());
        let s = add(p, &left, &right)?;
        groups = (0..half).map(|j| s.slice(j * n..(j + 1) * n)).collect();
        groups.extend(carry);
    }
    Ok(groups.pop().expect("one group left"))
}
