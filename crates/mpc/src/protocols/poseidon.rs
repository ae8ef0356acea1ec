//! Poseidon over shares of BN254 scalars, with circom's parameters taken from
//! `triad_crypto::poseidon::params_for` (the same tables as `light-poseidon`'s
//! `new_circom(n)`), so shared and native hashes agree bit for bit.
//!
//! Round constants and the MDS matrix are public, so only the S-box
//! `x^5 = (x^2)^2 * x` communicates: 3 multiplication rounds per S-box
//! layer. For two inputs (t = 3) that is 65 layers (8 full, 57 partial),
//! 195 rounds for any batch size; four inputs (t = 5) and five (t = 6) have
//! 8 full and 60 partial layers, 204 rounds.

use triad_crypto::poseidon::{params_for, MAX_INPUTS};

use crate::protocols::arithmetic::{mul, square};
use crate::{Fr, MpcError, Party, Ring, Shares};

/// `x^5` elementwise. 3 rounds.
fn pow5(p: &mut Party, x: &Shares<Fr>) -> Result<Shares<Fr>, MpcError> {
    let x2 = square(p, x)?;
    let x4 = square(p, &x2)?;
    mul(p, &x4, x)
}

/// The public MDS layer (linear, so local), on both components.
fn mds(s: &[Shares<Fr>], m: &[Vec<Fr>]) -> Vec<Shares<Fr>> {
    let n = s[0].len();
    let t = s.len();
    let apply = |comp: &dyn Fn(&Shares<Fr>) -> &Vec<Fr>| -> Vec<Vec<Fr>> {
        let mut out: Vec<Vec<Fr>> = vec![vec![Fr::zero(); n]; t];
        for (o, row) in out.iter_mut().zip(m) {
            for (x, coef) in s.iter().zip(row) {
                for (acc, v) in o.iter_mut().zip(comp(x)) {
                    *acc += *v * coef;
                }
            }
        }
        out
    };
    let a = apply(&|x| &x.a);
    let b = apply(&|x| &x.b);
    a.into_iter()
        .zip(b)
        .map(|(a, b)| Shares::new(a, b))
        .collect()
}

/// `Poseidon(x_0[k], …, x_{m-1}[k])` for every `k`, circom's `Poseidon(m)`
/// for `1 ≤ m ≤ 12` inputs. About 200 rounds.
pub fn poseidon(p: &mut Party, inputs: &[&Shares<Fr>]) -> Result<Shares<Fr>, MpcError> {
    let prm = params_for(inputs.len()).ok_or(MpcError::InvalidArgument(
        "poseidon: between 1 and 12 inputs",
    ))?;
    debug_assert!(inputs.len() <= MAX_INPUTS);
    let n = inputs[0].len();
    if inputs.iter().any(|x| x.len() != n) {
        return Err(MpcError::InvalidArgument(
            "poseidon: inputs differ in length",
        ));
    }
    let t = inputs.len() + 1;
    // Capacity element first (domain tag 0), as circom does.
    let mut state: Vec<Shares<Fr>> = std::iter::once(Shares::zeros(n))
        .chain(inputs.iter().map(|x| (*x).clone()))
        .collect();
    let half = prm.full_rounds / 2;
    for round in 0..prm.full_rounds + prm.partial_rounds {
        for (i, s) in state.iter_mut().enumerate() {
            let c = prm.ark[round * t + i];
            *s = s.add_public(p.id, &vec![c; n]);
        }
        let full = round < half || round >= half + prm.partial_rounds;
        if full {
            let all = Shares::concat(&state.iter().collect::<Vec<_>>());
            state = pow5(p, &all)?.split(&vec![n; t]);
        } else {
            state[0] = pow5(p, &state[0])?;
        }
        state = mds(&state, &prm.mds);
    }
    Ok(state.swap_remove(0))
}

/// `Poseidon(a_k, b_k)` for every `k`. 195 rounds.
pub fn poseidon2(p: &mut Party, a: &Shares<Fr>, b: &Shares<Fr>) -> Result<Shares<Fr>, MpcError> {
    if a.len() != b.len() {
        return Err(MpcError::InvalidArgument(
            "poseidon2: inputs differ in length",
        ));
    }
    poseidon(p, &[a, b])
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4))]
        #[test]
        fn matches_light_poseidon_for_four_and_five_inputs(v in prop::collection::vec(prop::collection::vec(fr_strategy(), 5), 1..4)) {
            let mut rng = test_rng();
            for m in [1usize, 4, 5] {
                let cols: Vec<Vec<Fr>> = (0..m).map(|j| v.iter().map(|row| row[j]).collect()).collect();
                let sh: Vec<[Shares<Fr>; 3]> = cols.iter().map(|c| share_plain(c, &mut rng)).collect();
                let out = run3(|p| {
                    let i = p.id.index();
                    let ins: Vec<&Shares<Fr>> = sh.iter().map(|s| &s[i]).collect();
                    let h = poseidon(p, &ins).unwrap();
                    open(p, &h).unwrap()
                });
                let mut native = Poseidon::<Fr>::new_circom(m).unwrap();
                let want: Vec<Fr> = v.iter().map(|row| native.hash(&row[..m]).unwrap()).collect();
                prop_assert_eq!(&out[0], &want);
            }
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
