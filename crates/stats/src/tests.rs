use std::num::Wrapping;

use proptest::prelude::*;
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3, test_rng};
use triad_mpc::{Security, Z128};

use crate::*;

pub(crate) fn assert_matches(got: &StatsResult, want: &StatsResult) {
    if let Err(e) = agrees(got, want) {
        panic!("{e}");
    }
}

fn run_stats(values: &[i64], spec: &StatsSpec) -> StatsResult {
    run_stats_on(values, spec, None)
}

/// With `round_seconds`, the parties' link model is set so that every
/// choice of circuit goes one way (0: fewest bytes, ripple adders and
/// chains; large: fewest rounds, trees).
fn run_stats_on(values: &[i64], spec: &StatsSpec, round_seconds: Option<f64>) -> StatsResult {
    run_stats_in(values, spec, round_seconds, Security::SemiHonest)
}

fn run_stats_in(
    values: &[i64],
    spec: &StatsSpec,
    round_seconds: Option<f64>,
    security: Security,
) -> StatsResult {
    let x: Vec<Z128> = values
        .iter()
        .map(|&v| Wrapping(v as i128 as u128))
        .collect();
    let sh = share_plain(&x, &mut test_rng());
    let out = run3(|p| {
        if let Some(r) = round_seconds {
            p.link.round_seconds = r;
        }
        p.security = security;
        let got = compute(p, &sh[p.id.index()], spec).unwrap();
        if security == Security::Malicious {
            assert_eq!(p.unchecked_gates() + p.unchecked_products(), 0);
            assert!(p.checks.gates > 0 && p.checks.products > 0);
        }
        got
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);
    out[0].clone()
}

fn value() -> impl Strategy<Value = i64> {
    let max = (1i64 << 48) - 1;
    prop_oneof![
        Just(0i64),
        Just(max),
        Just(1i64 << 48),
        Just(-(1i64 << 48)),
        Just((1i64 << 31) - 1),
        0i64..=max,
        -1000i64..1000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn suite_matches_oracle(values in prop::collection::vec(value(), 1..80),
                            q in prop::collection::vec(0.01f64..=1.0, 0..3)) {
        let spec = StatsSpec {
            quantiles: q,
            histogram_bounds: vec![-5, 0, 1 << 20, (1 << 48) - 1],
        };
        let got = run_stats(&values, &spec);
        assert_matches(&got, &oracle(&values, &spec).unwrap());
    }

    #[test]
    fn both_circuit_choices_match_oracle(values in prop::collection::vec(value(), 1..300)) {
        let spec = StatsSpec {
            quantiles: vec![0.5, 0.9],
            histogram_bounds: vec![-5, 0, 1 << 20, 1 << VALUE_BITS],
        };
        let want = oracle(&values, &spec).unwrap();
        assert_matches(&run_stats_on(&values, &spec, Some(0.0)), &want);
        assert_matches(&run_stats_on(&values, &spec, Some(1.0)), &want);
    }

    /// The malicious-secure variant (checked shuffle, values back from the
    /// keys into F_r) against the same oracle, with both circuit choices.
    #[test]
    fn malicious_suite_matches_oracle(values in prop::collection::vec(value(), 1..70),
                                      q in prop::collection::vec(0.01f64..=1.0, 0..3),
                                      trees in any::<bool>()) {
        let spec = StatsSpec {
            quantiles: q,
            histogram_bounds: vec![-5, 0, 1 << 20, 1 << VALUE_BITS],
        };
        let r = if trees { 1.0 } else { 0.0 };
        let got = run_stats_in(&values, &spec, Some(r), Security::Malicious);
        assert_matches(&got, &oracle(&values, &spec).unwrap());
    }

    #[test]
    fn duplicates_are_handled(v in value(), n in 1usize..40) {
        let values = vec![v; n];
        let spec = StatsSpec { quantiles: vec![0.5, 1.0], histogram_bounds: vec![v, v + 1] };
        assert_matches(&run_stats(&values, &spec), &oracle(&values, &spec).unwrap());
    }
}

#[test]
fn single_value_and_31_bit_regression() {
    // The reference system's program overflowed on 31-bit inputs.
    let values = vec![(1i64 << 31) - 1, (1i64 << 31) - 2, 1 << 30, (1 << 31) - 1];
    let spec = StatsSpec {
        quantiles: vec![0.25, 0.9],
        histogram_bounds: vec![1 << 30],
    };
    assert_matches(&run_stats(&values, &spec), &oracle(&values, &spec).unwrap());
    let one = vec![42i64];
    assert_matches(&run_stats(&one, &spec), &oracle(&one, &spec).unwrap());
    for v in [
        values,
        one,
        vec![-(1 << VALUE_BITS); 3],
        vec![(1 << VALUE_BITS) - 1; 2],
    ] {
        let got = run_stats_in(&v, &spec, None, Security::Malicious);
        assert_matches(&got, &oracle(&v, &spec).unwrap());
    }
}

#[test]
fn empty_and_bad_specs_are_errors() {
    assert!(matches!(
        oracle(&[], &StatsSpec::default()),
        Err(StatsError::Empty)
    ));
    let bad = StatsSpec {
        quantiles: vec![1.5],
        histogram_bounds: vec![],
    };
    assert!(matches!(
        oracle(&[1], &bad),
        Err(StatsError::InvalidSpec(_))
    ));
    let bad = StatsSpec {
        quantiles: vec![],
        histogram_bounds: vec![3, 3],
    };
    assert!(bad.validate().is_err());
}

#[test]
fn sizes_around_powers_of_two_and_48_bit_values() {
    // The tie-break tag width changes at powers of two; values span 0..2^48
    // with many duplicates.
    let spec = StatsSpec {
        quantiles: vec![0.01, 0.5, 0.999],
        histogram_bounds: vec![0, 1, 1 << 24, (1 << 48) - 1, 1 << 48],
    };
    for n in [2usize, 3, 4, 5, 63, 64, 65, 128, 129, 700] {
        let values: Vec<i64> = (0..n as i64)
            .map(|i| match i % 5 {
                0 => 0,
                1 => (1 << 48) - 1,
                2 => 1 << 48,
                3 => i.wrapping_mul(0x9e37_79b9) & ((1 << 48) - 1),
                _ => 12_345,
            })
            .collect();
        assert_matches(&run_stats(&values, &spec), &oracle(&values, &spec).unwrap());
    }
}

#[test]
fn quantile_ranks_are_exact_for_decimal_quantiles() {
    // ceil(0.07 * 100) in floating point is 8; the 7th value is right.
    let values: Vec<i64> = (1..=100).collect();
    let spec = StatsSpec {
        quantiles: vec![0.07, 0.14, 0.28, 0.55, 0.56, 0.5, 1.0],
        histogram_bounds: vec![],
    };
    let got = run_stats(&values, &spec);
    let want: Vec<(f64, i64)> = vec![
        (0.07, 7),
        (0.14, 14),
        (0.28, 28),
        (0.55, 55),
        (0.56, 56),
        (0.5, 50),
        (1.0, 100),
    ];
    assert_eq!(got.quantiles, want);
    assert_matches(&got, &oracle(&values, &spec).unwrap());
}

#[test]
fn out_of_range_inputs_are_refused_before_anything_is_opened() {
    // Inputs are sign extensions of 64-bit words (intake makes them so);
    // the range is checked on the word.
    let lim = 1i128 << VALUE_BITS;
    for bad in [lim, -lim - 1, i64::MAX as i128, i64::MIN as i128, 1 << 60] {
        let x: Vec<Z128> = [5i128, bad, -7]
            .iter()
            .map(|&v| Wrapping(v as u128))
            .collect();
        let sh = share_plain(&x, &mut test_rng());
        let out = run3(|p| compute(p, &sh[p.id.index()], &StatsSpec::default()).err());
        for e in out {
            assert!(
                matches!(e, Some(StatsError::OutOfRange(ref v)) if v == &vec![1]),
                "{bad}: {e:?}"
            );
        }
    }
    // The limits themselves are accepted.
    let edge = vec![(1i64 << VALUE_BITS) - 1, -(1i64 << VALUE_BITS)];
    let spec = StatsSpec::default();
    assert_matches(&run_stats(&edge, &spec), &oracle(&edge, &spec).unwrap());
}

/// A truncated message anywhere in the suite (every party's, at many
/// points) ends in an error, never in a panic, a hang or a wrong result:
/// parties that finish anyway hold the oracle's answer.
#[test]
fn truncated_messages_anywhere_give_errors_not_wrong_results() {
    use std::time::Duration;
    use triad_mpc::network::MemNetwork;
    use triad_mpc::testing::{run3_on, Fault, FaultyNetwork};
    use triad_mpc::Network;

    let values: Vec<i64> = (0..100).map(|i| (i * 7919) % 1000 - 300).collect();
    let spec = StatsSpec {
        quantiles: vec![0.5],
        histogram_bounds: vec![0, 100],
    };
    let want = oracle(&values, &spec).unwrap();
    let x: Vec<Z128> = values
        .iter()
        .map(|&v| Wrapping(v as i128 as u128))
        .collect();
    let sh = share_plain(&x, &mut test_rng());
    for faulty in 0..3 {
        for nth in [2u64, 3, 4, 6, 9, 14, 20, 30, 45, 70, 100, 150] {
            let mut nets: Vec<Box<dyn Network>> = MemNetwork::triple(Duration::from_secs(5))
                .into_iter()
                .map(|n| Box::new(n) as Box<dyn Network>)
                .collect();
            let inner = nets.remove(faulty);
            nets.insert(
                faulty,
                Box::new(FaultyNetwork::new(inner, Fault::Truncate, nth)),
            );
            let nets: [Box<dyn Network>; 3] = nets.try_into().ok().unwrap();
            let out = run3_on(nets, |p| {
                compute(p, &sh[p.id.index()], &spec).map_err(|e| match e {
                    StatsError::Mpc(m) => m,
                    other => panic!("unexpected {other}"),
                })
            });
            for r in out.iter().flatten() {
                assert_matches(r, &want);
            }
            // Every party sends 90 to 120 messages here (the quicksort's
            // levels vary with the shuffle), so up to 45 the fault surely
            // happened, and someone noticed it.
            if nth <= 45 {
                assert!(
                    out.iter().any(|r| r.is_err()),
                    "party {faulty}'s message {nth} was truncated unnoticed"
                );
            }
        }
    }
}

/// Malicious mode, a cheating party: every message of every party (after
/// the seed exchange) with a bit flipped or a value replaced, and every
/// fifth one dropped. At least one honest party aborts in every run, and
/// no honest party returns anything but the oracle's answer.
#[test]
fn every_tampered_message_of_the_suite_aborts_in_malicious_mode() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use triad_mpc::testing::{run3_cheating, Fault};
    use triad_mpc::PartyId;

    let values: Vec<i64> = (0..9).map(|i| (i * 7919) % 1000 - 300).collect();
    let spec = StatsSpec {
        quantiles: vec![0.5],
        histogram_bounds: vec![0, 100],
    };
    let want = oracle(&values, &spec).unwrap();
    let x: Vec<Z128> = values
        .iter()
        .map(|&v| Wrapping(v as i128 as u128))
        .collect();
    let sh = share_plain(&x, &mut test_rng());
    // Messages each party sent in the last run (the cheater's count tells
    // whether its fault fired: the sort's levels, hence the number of
    // messages, vary with the shuffle).
    let sent_in_run: [AtomicU64; 3] = Default::default();
    let victim = |p: &mut triad_mpc::Party| {
        p.security = Security::Malicious;
        let out = compute(p, &sh[p.id.index()], &spec).map_err(|e| match e {
            StatsError::Mpc(m) => m,
            other => panic!("unexpected {other}"),
        });
        sent_in_run[p.id.index()].store(p.net.stats().messages_sent, Ordering::SeqCst);
        out
    };
    let sent = run3(|p| {
        victim(p).unwrap();
        p.net.stats().messages_sent
    });
    let (mut runs, mut unfired) = (0, 0);
    for who in PartyId::ALL {
        for nth in 2..=sent[who.index()] {
            let mut faults = vec![
                Fault::Flip {
                    at: 3 * nth as usize,
                    mask: 0x04,
                },
                Fault::Replace { at: 0 },
            ];
            if nth % 5 == 0 {
                faults.push(Fault::Drop);
            }
            for fault in faults {
                sent_in_run[who.index()].store(0, Ordering::SeqCst);
                let honest = run3_cheating(who, fault, nth, Duration::from_millis(300), victim);
                let cheater_sent = sent_in_run[who.index()].load(Ordering::SeqCst);
                if honest.iter().all(|r| r.is_ok()) {
                    // Only a run shorter than the calibration run (a sort
                    // with fewer levels) may end without the fault.
                    assert!(
                        cheater_sent < nth,
                        "{who} {fault:?} on message {nth}: no honest party aborted"
                    );
                    unfired += 1;
                } else {
                    runs += 1;
                }
                for r in honest.iter().filter_map(|r| r.as_ref().ok()) {
                    assert_matches(r, &want);
                }
            }
        }
    }
    eprintln!("{runs} tampered runs, {unfired} shorter runs without the fault");
    assert!(runs > 300, "only {runs} runs");
}
