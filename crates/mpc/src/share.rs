//! Replicated shares of a vector and the operations that need no
//! communication. See [`crate::party`] for the convention: party `i` holds
//! `a = x_i` and `b = x_{i+1}`.

use rand_core::RngCore;

use crate::{prg::Prg, PartyId, Ring};

/// Party-local view of a shared vector (struct of arrays, so loops over
/// components vectorise).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Shares<T> {
    pub a: Vec<T>,
    pub b: Vec<T>,
}

impl<T: Ring> Shares<T> {
    pub fn new(a: Vec<T>, b: Vec<T>) -> Self {
        assert_eq!(a.len(), b.len(), "components must have equal length");
        Self { a, b }
    }

    pub fn zeros(n: usize) -> Self {
        Self {
            a: vec![T::zero(); n],
            b: vec![T::zero(); n],
        }
    }

    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// A sharing of public values: the value sits in component 0, which
    /// party 0 holds as `a` and party 2 as `b`.
    pub fn from_public(id: PartyId, values: &[T]) -> Self {
        let n = values.len();
        match id.index() {
            0 => Self::new(values.to_vec(), vec![T::zero(); n]),
            2 => Self::new(vec![T::zero(); n], values.to_vec()),
            _ => Self::zeros(n),
        }
    }

    pub fn add(&self, o: &Self) -> Self {
        debug_assert_eq!(self.len(), o.len(), "add: lengths differ");
        Self {
            a: self.a.iter().zip(&o.a).map(|(x, y)| *x + *y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| *x + *y).collect(),
        }
    }

    pub fn sub(&self, o: &Self) -> Self {
        debug_assert_eq!(self.len(), o.len(), "sub: lengths differ");
        Self {
            a: self.a.iter().zip(&o.a).map(|(x, y)| *x - *y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| *x - *y).collect(),
        }
    }

    pub fn neg(&self) -> Self {
        Self {
            a: self.a.iter().map(|x| -*x).collect(),
            b: self.b.iter().map(|x| -*x).collect(),
        }
    }

    /// `x + c` elementwise for public `c`.
    pub fn add_public(&self, id: PartyId, c: &[T]) -> Self {
        self.add(&Self::from_public(id, c))
    }

    /// `x * c` elementwise for public `c`.
    pub fn mul_public(&self, c: &[T]) -> Self {
        Self {
            a: self.a.iter().zip(c).map(|(x, y)| *x * *y).collect(),
            b: self.b.iter().zip(c).map(|(x, y)| *x * *y).collect(),
        }
    }

    /// `x * c` for one public scalar.
    pub fn scale(&self, c: T) -> Self {
        Self {
            a: self.a.iter().map(|x| *x * c).collect(),
            b: self.b.iter().map(|x| *x * c).collect(),
        }
    }

    /// `sum_j x_j * w_j` as a one-element sharing.
    pub fn weighted_sum(&self, w: &[T]) -> Self {
        let mut a = T::zero();
        let mut b = T::zero();
        for ((x, y), c) in self.a.iter().zip(&self.b).zip(w) {
            a += *x * *c;
            b += *y * *c;
        }
        Self::new(vec![a], vec![b])
    }

    pub fn sum(&self) -> Self {
        let mut a = T::zero();
        let mut b = T::zero();
        for (x, y) in self.a.iter().zip(&self.b) {
            a += *x;
            b += *y;
        }
        Self::new(vec![a], vec![b])
    }

    /// Elements at `idx`, in that order (applying a public permutation).
    pub fn gather(&self, idx: &[usize]) -> Self {
        Self {
            a: idx.iter().map(|&i| self.a[i]).collect(),
            b: idx.iter().map(|&i| self.b[i]).collect(),
        }
    }

    pub fn slice(&self, r: std::ops::Range<usize>) -> Self {
        Self {
            a: self.a[r.clone()].to_vec(),
            b: self.b[r].to_vec(),
        }
    }

    pub fn concat(parts: &[&Self]) -> Self {
        let n = parts.iter().map(|p| p.len()).sum();
        let mut out = Self {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
        };
        for p in parts {
            out.a.extend_from_slice(&p.a);
            out.b.extend_from_slice(&p.b);
        }
        out
    }

    /// Splits `self` into consecutive pieces of the given lengths.
    pub fn split(&self, lens: &[usize]) -> Vec<Self> {
        let mut at = 0;
        lens.iter()
            .map(|&l| {
                let s = self.slice(at..at + l);
                at += l;
                s
            })
            .collect()
    }
}

/// What a client (or a test) does to share plaintext: three random
/// components summing to each value; party `i` receives `(x_i, x_{i+1})`.
pub fn share_plain<T: Ring>(values: &[T], rng: &mut impl RngCore) -> [Shares<T>; 3] {
    let mut seed = [0u8; 16];
    rng.fill_bytes(&mut seed);
    let mut prg = Prg::new(seed);
    let x0: Vec<T> = values.iter().map(|_| T::random(&mut prg)).collect();
    let x1: Vec<T> = values.iter().map(|_| T::random(&mut prg)).collect();
    let x2: Vec<T> = values
        .iter()
        .zip(x0.iter().zip(&x1))
        .map(|(v, (a, b))| *v - *a - *b)
        .collect();
    [
        Shares::new(x0.clone(), x1.clone()),
        Shares::new(x1, x2.clone()),
        Shares::new(x2, x0),
    ]
}

/// Recombines the three parties' views (tests and the plaintext side of
/// benchmarks only; a party never sees all three).
pub fn reconstruct<T: Ring>(s: &[Shares<T>; 3]) -> Vec<T> {
    (0..s[0].len())
        .map(|k| s[0].a[k] + s[1].a[k] + s[2].a[k])
        .collect()
}
