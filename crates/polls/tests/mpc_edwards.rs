//! Baby Jubjub arithmetic over shares against arkworks' native arithmetic,
//! in the three-party harness: random points (multiples of B8), the
//! identity, and the points of order 2 and 4 (the formulas are complete,
//! so they must agree on every curve point).

use ark_ff::Field;
use proptest::prelude::*;
use triad_maci::babyjub::{self, base8, Point};
use triad_maci::Fr;
use triad_mpc::protocols::arithmetic::open;
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3, test_rng};
use triad_mpc::{Party, Shares};
use triad_polls::mpc::edwards::{self, Points};

/// Affine coordinates of an opened projective point.
fn affine(x: Fr, y: Fr, z: Fr) -> (Fr, Fr) {
    let zi = z.inverse().expect("complete formulas never give Z = 0");
    (x * zi, y * zi)
}

fn point_strategy() -> impl Strategy<Value = Point> {
    prop_oneof![
        1 => Just(Point::new_unchecked(Fr::from(0u64), Fr::from(1u64))),
        // Order 2: (0, −1).
        1 => Just(Point::new_unchecked(Fr::from(0u64), -Fr::from(1u64))),
        6 => any::<u64>().prop_map(|k| babyjub::mul_limbs(&base8(), &[k.max(1)])),
    ]
}

fn shared_points(pts: &[Point], seed: u64) -> [(Shares<Fr>, Shares<Fr>); 3] {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let xs: Vec<Fr> = pts.iter().map(|p| p.x).collect();
    let ys: Vec<Fr> = pts.iter().map(|p| p.y).collect();
    let [x0, x1, x2] = share_plain(&xs, &mut rng);
    let [y0, y1, y2] = share_plain(&ys, &mut rng);
    [(x0, y0), (x1, y1), (x2, y2)]
}

fn open_affine(p: &mut Party, q: &Points) -> Vec<(Fr, Fr)> {
    let (x, y, z) = (
        open(p, &q.x).unwrap(),
        open(p, &q.y).unwrap(),
        open(p, &q.z).unwrap(),
    );
    (0..x.len()).map(|k| affine(x[k], y[k], z[k])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn add_double_select_sum_match_native(
        pairs in prop::collection::vec((point_strategy(), point_strategy(), any::<bool>()), 1..6)
    ) {
        let l: Vec<Point> = pairs.iter().map(|t| t.0).collect();
        let r: Vec<Point> = pairs.iter().map(|t| t.1).collect();
        let bits: Vec<Fr> = pairs.iter().map(|t| Fr::from(t.2 as u64)).collect();
        let (sl, sr) = (shared_points(&l, 1), shared_points(&r, 2));
        let sb = share_plain(&bits, &mut test_rng());
        let out = run3(|p| {
            let i = p.id.index();
            let a = Points::affine(p, sl[i].0.clone(), sl[i].1.clone());
            let b = Points::affine(p, sr[i].0.clone(), sr[i].1.clone());
            let sum = edwards::add(p, &a, &b).unwrap();
            let dbl = edwards::double(p, &a).unwrap();
            let sel = edwards::select(p, &sb[i], &sum).unwrap();
            let tree = edwards::sum(p, vec![a.clone(), b.clone(), dbl.clone()]).unwrap();
            (open_affine(p, &sum), open_affine(p, &dbl), open_affine(p, &sel), open_affine(p, &tree))
        });
        for k in 0..l.len() {
            let want_sum = babyjub::add(&l[k], &r[k]);
            let want_dbl = babyjub::add(&l[k], &l[k]);
            prop_assert_eq!(out[0].0[k], (want_sum.x, want_sum.y));
            prop_assert_eq!(out[0].1[k], (want_dbl.x, want_dbl.y));
            let want_sel = if pairs[k].2 { (want_sum.x, want_sum.y) } else { (Fr::from(0u64), Fr::from(1u64)) };
            prop_assert_eq!(out[0].2[k], want_sel);
            let t = babyjub::add(&want_sum, &want_dbl);
            prop_assert_eq!(out[0].3[k], (t.x, t.y));
        }
        prop_assert_eq!(&out[0], &out[1]);
    }
}

#[test]
fn select_window_picks_each_public_point() {
    let t = [
        base8(),
        babyjub::add(&base8(), &base8()),
        babyjub::mul_limbs(&base8(), &[3]),
    ];
    // Bits (lo, hi) for k = 0..4, one element each.
    let lo: Vec<Fr> = (0..4u64).map(|k| Fr::from(k & 1)).collect();
    let hi: Vec<Fr> = (0..4u64).map(|k| Fr::from(k >> 1)).collect();
    let lh: Vec<Fr> = (0..4u64).map(|k| Fr::from((k & 1) * (k >> 1))).collect();
    let mut rng = test_rng();
    let (slo, shi, slh) = (
        share_plain(&lo, &mut rng),
        share_plain(&hi, &mut rng),
        share_plain(&lh, &mut rng),
    );
    let out = run3(|p| {
        let i = p.id.index();
        let q = edwards::select_window(p, &slo[i], &shi[i], &slh[i], &t);
        open_affine(p, &q)
    });
    assert_eq!(out[0][0], (Fr::from(0u64), Fr::from(1u64)));
    for k in 1..4 {
        assert_eq!(out[0][k], (t[k - 1].x, t[k - 1].y));
    }
}
