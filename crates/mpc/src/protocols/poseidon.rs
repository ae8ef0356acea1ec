//! Poseidon over shares of BN254 scalars, with circom's parameters taken from
//! `triad_crypto::poseidon::params()` (the same tables as `light-poseidon`'s
//! `new_circom(2)`), so shared and native hashes agree bit for bit.
//!
//! Round constants and the MDS matrix are public, so only the S-box
//! `x^5 = (x^2)^2 * x` communicates: 3 multiplication rounds per S-box
//! layer, 65 layers (8 full, 57 partial), 195 rounds for any batch size.

use triad_crypto::poseidon::{params, WIDTH};

use crate::protocols::arithmetic::{mul, square};
use crate::{Fr, MpcError, Party, Ring, Shares};

/// `x^5` elementwise. 3 rounds.
fn pow5(p: &mut Party, x: &Shares<Fr>) -> Result<Shares<Fr>, MpcError> {
    let x2 = square(p, x)?;
    let x4 = square(p, &x2)?;
    mul(p, &x4, x)
}

/// The public MDS layer, applied to each component (linear, so local).
fn mds(s: &[Shares<Fr>; 3], m: &[Vec<Fr>]) -> [Shares<Fr>; 3] {
    let n = s[0].len();
    let m: [[Fr; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| m[i][j]));
    let apply = |c: [&[Fr]; 3]| -> [Vec<Fr>; 3] {
        let mut out: [Vec<Fr>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
        for ((x, y), z) in c[0].iter().zip(c[1]).zip(c[2]) {
            for (o, row) in out.iter_mut().zip(&m) {
                o.push(*x * row[0] + *y * row[1] + *z * row[2]);
            }
        }
        out
    };
    let [a0, a1, a2] = apply([&s[0].a, &s[1].a, &s[2].a]);
    let [b0, b1, b2] = apply([&s[0].b, &s[1].b, &s[2].b]);
    [
        Shares::new(a0, b0),
        Shares::new(a1, b1),
        Shares::new(a2, b2),
    ]
}

/// `Poseidon(a_k, b_k)` for every `k`. 195 rounds.
pub fn poseidon2(p: &mut Party, a: &Shares<Fr>, b: &Shares<Fr>) -> Result<Shares<Fr>, MpcError> {
    if a.len() != b.len() {
        return Err(MpcError::InvalidArgument(
            "poseidon2: inputs differ in length",
        ));
    }
    let n = a.len();
    let prm = params();
    // Capacity element first (domain tag 0), as circom does.
    let mut state = [Shares::zeros(n), a.clone(), b.clone()];
    let half = prm.full_rounds / 2;
    for round in 0..prm.full_rounds + prm.partial_rounds {
        for (i, s) in state.iter_mut().enumerate() {
            let c = prm.ark[round * WIDTH + i];
            *s = s.add_public(p.id, &vec![c; n]);
        }
        let full = round < half || round >= half + prm.partial_rounds;
        if full {
            let all = Shares::concat(&[&state[0], &state[1], &state[2]]);
            let out = pow5(p, &all)?.split(&[n, n, n]);
            state = [out[0].clone(), out[1].clone(), out[2].clone()];
        } else {
            state[0] = pow5(p, &state[0])?;
        }
        state = mds(&state, &prm.mds);
    }
    let [out, _, _] = state;
    Ok(out)
}

/// `[x == 0]` opened as booleans, revealing nothing else: `x * r` for a
/// random shared `r` is 0 if `x = 0` and uniform otherwise (false
/// positives with probability n/p). 2 rounds.
pub fn open_is_zero(p: &mut Party, x: &Shares<Fr>) -> Result<Vec<bool>, MpcError> {
    let r = crate::protocols::random_shares::<Fr>(p, x.len());
    let masked = mul(p, x, &r)?;
    Ok(crate::protocols::open(p, &masked)?
        .into_iter()
        .map(|v| v == Fr::zero())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::open;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use light_poseidon::{Poseidon, PoseidonHasher};
    use proptest::prelude::*;

    fn fr_strategy() -> impl Strategy<Value = Fr> {
        prop_oneof![
            Just(Fr::from(0u64)),
            Just(-Fr::from(1u64)),
            any::<u64>().prop_map(Fr::from),
            any::<[u64; 4]>().prop_map(|l| {
                let mut prg = crate::prg::Prg::new(bytemuck16(l));
                Fr::random(&mut prg)
            }),
        ]
    }

    fn bytemuck16(l: [u64; 4]) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&l[0].to_le_bytes());
        s[8..].copy_from_slice(&l[1].to_le_bytes());
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6))]
        #[test]
        fn matches_light_poseidon_new_circom_2(v in prop::collection::vec((fr_strategy(), fr_strategy()), 1..6)) {
            let (a, b): (Vec<Fr>, Vec<Fr>) = v.iter().cloned().unzip();
            let mut rng = test_rng();
            let (sa, sb) = (share_plain(&a, &mut rng), share_plain(&b, &mut rng));
            let out = run3(|p| {
                let i = p.id.index();
                let h = poseidon2(p, &sa[i], &sb[i]).unwrap();
                open(p, &h).unwrap()
            });
            let mut native = Poseidon::<Fr>::new_circom(2).unwrap();
            let want: Vec<Fr> = v.iter().map(|(x, y)| native.hash(&[*x, *y]).unwrap()).collect();
            prop_assert_eq!(&out[0], &want);
        }
    }

    #[test]
    fn zero_test_opens_only_the_verdict() {
        let x = vec![
            Fr::from(0u64),
            Fr::from(5u64),
            -Fr::from(1u64),
            Fr::from(0u64),
        ];
        let sh = share_plain(&x, &mut test_rng());
        let out = run3(|p| open_is_zero(p, &sh[p.id.index()]).unwrap());
        assert_eq!(out[0], vec![true, false, false, true]);
    }
}
