//! What each party receives must not depend on the secrets: for two
//! different inputs the shape of every party's view (who sent how many
//! bytes, in which order) is the same, and every received payload is masked
//! (about half of its bits set even when every input is zero).

use std::num::Wrapping;

use triad_mpc::protocols::binary_compare::{lt_open, Circuit};
use triad_mpc::protocols::conversion::a2b_sliced;
use triad_mpc::protocols::shuffle::shuffle_mixed;
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3_viewed, test_rng, View};
use triad_mpc::{Bits, Party, Security, Shares, Z128, Z64};

fn shape(v: &View) -> Vec<(usize, usize)> {
    v.iter().map(|(from, m)| (from.index(), m.len())).collect()
}

/// Fraction of set bits over all received payloads.
fn ones(v: &View) -> f64 {
    let (set, all) = v.iter().fold((0u64, 0u64), |(s, a), (_, m)| {
        (
            s + m.iter().map(|b| b.count_ones() as u64).sum::<u64>(),
            a + 8 * m.len() as u64,
        )
    });
    set as f64 / all.max(1) as f64
}

/// Runs `f` on two secret inputs; checks equal shapes and masked payloads
/// on the all-zero one.
fn check<I: Sync>(zero: &I, other: &I, f: impl Fn(&mut Party, &I) + Sync) {
    let (_, vz) = run3_viewed(|p| f(p, zero));
    let (_, vo) = run3_viewed(|p| f(p, other));
    for i in 0..3 {
        assert_eq!(
            shape(&vz[i]),
            shape(&vo[i]),
            "party {i}: view shape depends on the input"
        );
        if !vz[i].is_empty() {
            let r = ones(&vz[i]);
            assert!(
                (0.45..0.55).contains(&r),
                "party {i}: {r} of received bits set on zero input"
            );
        }
    }
}

fn shares<T: triad_mpc::Ring>(v: &[T]) -> [Shares<T>; 3] {
    share_plain(v, &mut test_rng())
}

#[test]
fn shuffle_views_are_masked_and_p1_receives_nothing() {
    let n = 4096;
    let zero = (shares(&vec![Wrapping(0u128); n]), shares(&vec![Bits(0); n]));
    let other = (
        shares(
            &(0..n as u128)
                .map(|i| Wrapping(i * 0x9e37_79b9))
                .collect::<Vec<Z128>>(),
        ),
        shares(&(0..n as u64).map(Bits).collect::<Vec<_>>()),
    );
    check(&zero, &other, |p, (v, k)| {
        let i = p.id.index();
        shuffle_mixed(p, std::slice::from_ref(&v[i]), std::slice::from_ref(&k[i])).unwrap();
    });
    let (_, views) = run3_viewed(|p| {
        let i = p.id.index();
        shuffle_mixed(p, std::slice::from_ref(&zero.0[i]), &[zero.1[i].clone()]).unwrap();
    });
    assert!(views[1].is_empty(), "P1 receives nothing in the shuffle");
}

#[test]
fn comparator_views_do_not_depend_on_the_keys() {
    // 76-bit keys, bit-sliced: 76 planes of 64 words (4096 comparisons).
    let words = 64 * 76;
    let zero = (shares(&vec![Bits(0); words]), shares(&vec![Bits(0); words]));
    let other = (
        shares(
            &(0..words as u64)
                .map(|i| Bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect::<Vec<_>>(),
        ),
        shares(&vec![Bits(!0); words]),
    );
    for circuit in [Circuit::Chain, Circuit::Tree] {
        check(&zero, &other, |p, (x, y)| {
            let i = p.id.index();
            lt_open(p, &x[i], &y[i], 76, circuit).unwrap();
        });
        // Malicious mode adds the proofs of the AND gates and the compared
        // opening: still the same shapes, still masked.
        check(&zero, &other, |p, (x, y)| {
            p.security = Security::Malicious;
            let i = p.id.index();
            lt_open(p, &x[i], &y[i], 76, circuit).unwrap();
        });
    }
}

#[test]
fn conversion_views_do_not_depend_on_the_values() {
    let n = 4096;
    let zero = shares(&vec![Wrapping(0u64); n]);
    let other = shares(
        &(0..n as u64)
            .map(|i| Wrapping(u64::MAX - i))
            .collect::<Vec<Z64>>(),
    );
    for ripple in [true, false] {
        check(&zero, &other, |p, x| {
            p.link.round_seconds = if ripple { 0.0 } else { 1.0 };
            a2b_sliced(p, &x[p.id.index()]).unwrap();
        });
    }
}

/// Equal view shapes for two inputs (no masking test: malicious-mode
/// protocols open public values, such as the shuffle's check value, which
/// is zero, and its random coefficient seed).
fn check_shapes<I: Sync>(a: &I, b: &I, f: impl Fn(&mut Party, &I) + Sync) {
    let (_, va) = run3_viewed(|p| f(p, a));
    let (_, vb) = run3_viewed(|p| f(p, b));
    for i in 0..3 {
        assert_eq!(
            shape(&va[i]),
            shape(&vb[i]),
            "party {i}: view shape depends on the input"
        );
    }
}

/// The malicious shuffle: the same message shapes for all-zero rows and
/// distinct random rows, with the tags' products checked and the check
/// value opened.
#[test]
fn malicious_shuffle_views_do_not_depend_on_the_rows() {
    use triad_mpc::protocols::shuffle_bits;
    let n = 1000;
    let zero = [shares(&vec![Bits(0); n]), shares(&vec![Bits(0); n])];
    let other = [
        shares(
            &(0..n as u64)
                .map(|i| Bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect::<Vec<_>>(),
        ),
        shares(&(0..n as u64).map(Bits).collect::<Vec<_>>()),
    ];
    check_shapes(&zero, &other, |p, x| {
        p.security = Security::Malicious;
        let i = p.id.index();
        shuffle_bits(p, &[x[0][i].clone(), x[1][i].clone()]).unwrap();
    });
}

/// Binary to F_r: the same shapes for the smallest and the largest values
/// (what P0 and P2 open is `x - r2` / `x - r1`, masked by 92-bit `r`s:
/// statistical hiding, docs/security.md).
#[test]
fn b2a_fr_views_do_not_depend_on_the_values() {
    use triad_mpc::protocols::b2a_fr;
    use triad_mpc::protocols::binary::bitslice;
    let n = 2048;
    let planes = |v: u64| shares(&bitslice(&vec![Wrapping(v); n], 52));
    let (small, large) = (planes(0), planes((1 << 52) - 1));
    check_shapes(&small, &large, |p, x| {
        p.security = Security::Malicious;
        b2a_fr(p, &x[p.id.index()], 52, n).unwrap();
    });
}
