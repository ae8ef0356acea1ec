//! Malicious security with abort: honest runs in malicious mode give the
//! oracle's answer; a cheating party (every message it sends, each in
//! turn, with a flipped bit, a replaced value or dropped; or its own share
//! changed before a step) makes every honest party abort, and no honest
//! party returns a result.

use std::time::Duration;

use proptest::prelude::*;
use triad_mpc::network::MemNetwork;
use triad_mpc::protocols::binary::bitslice;
use triad_mpc::protocols::binary_compare::{lt_open, Circuit};
use triad_mpc::protocols::conversion::a2b_sliced;
use triad_mpc::protocols::{and, mul, open, shuffle, sort_order, verify};
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3, run3_cheating, run3_on, test_rng, Fault};
use triad_mpc::{Bits, MpcError, Network, Party, PartyId, Security, Shares, Z64};

/// Plaintext operands and their bit-sliced sharings.
type Inputs = (Vec<u64>, Vec<u64>, [Shares<Bits>; 3], [Shares<Bits>; 3]);
/// What [`victim`] returns: the comparison words and the sort order.
type Outcome = Result<(Vec<Bits>, Vec<usize>), MpcError>;

fn malicious(p: &mut Party) {
    p.security = Security::Malicious;
}

/// Operands for `lt_open` over `l`-bit keys: `(x, y)` plaintext and
/// bit-sliced sharings.
fn comparison_inputs(n: usize, l: u32, seed: u64) -> Inputs {
    let mut prg = triad_mpc::prg::Prg::new([seed as u8; 16]);
    let mask = (1u64 << l) - 1;
    let x: Vec<u64> = (0..n).map(|_| prg.next_u64() & mask).collect();
    let y: Vec<u64> = (0..n)
        .map(|k| {
            if k % 5 == 0 {
                x[k]
            } else {
                prg.next_u64() & mask
            }
        })
        .collect();
    let to64 = |v: &[u64]| -> Vec<Z64> { v.iter().map(|&a| std::num::Wrapping(a)).collect() };
    let xs = bitslice(&to64(&x), l);
    let ys = bitslice(&to64(&y), l);
    let mut rng = test_rng();
    (x, y, share_plain(&xs, &mut rng), share_plain(&ys, &mut rng))
}

fn unpack(words: &[Bits], n: usize) -> Vec<bool> {
    (0..n)
        .map(|k| (words[k / 64].0 >> (k % 64)) & 1 == 1)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Honest parties in malicious mode: the comparator (both circuits),
    /// AND and A2B match the plaintext, and every gate was checked.
    #[test]
    fn honest_malicious_runs_match_the_oracle(n in 1usize..300, l in 1u32..40, seed in any::<u64>()) {
        let (x, y, xs, ys) = comparison_inputs(n, l, seed);
        let out = run3(|p| {
            malicious(p);
            let i = p.id.index();
            let chain = lt_open(p, &xs[i], &ys[i], l as usize, Circuit::Chain).unwrap();
            let tree = lt_open(p, &xs[i], &ys[i], l as usize, Circuit::Tree).unwrap();
            let z = and(p, &xs[i], &ys[i]).unwrap();
            let zo = open(p, &z).unwrap();
            (chain, tree, zo, p.unchecked_gates() == 0, p.checks.gates)
        });
        let want: Vec<bool> = x.iter().zip(&y).map(|(a, b)| a < b).collect();
        let to64 = |v: &[u64]| -> Vec<Z64> { v.iter().map(|&a| std::num::Wrapping(a)).collect() };
        let want_and: Vec<Bits> = bitslice(&to64(&x), l)
            .into_iter()
            .zip(bitslice(&to64(&y), l))
            .map(|(a, b)| a * b)
            .collect();
        for (chain, tree, z, empty, gates) in &out {
            prop_assert_eq!(&unpack(chain, n), &want);
            prop_assert_eq!(&unpack(tree, n), &want);
            prop_assert!(*empty);
            prop_assert!(*gates > 0);
            prop_assert_eq!(z, &want_and);
        }
    }

    #[test]
    fn a2b_in_malicious_mode_matches(v in prop::collection::vec(any::<u64>(), 1..200)) {
        let x: Vec<Z64> = v.iter().map(|&a| std::num::Wrapping(a)).collect();
        let xs = share_plain(&x, &mut test_rng());
        let want = bitslice(&x, 64);
        let out = run3(|p| {
            malicious(p);
            let b = a2b_sliced(p, &xs[p.id.index()]).unwrap();
            open(p, &b).unwrap()
        });
        for o in out {
            prop_assert_eq!(&o, &want);
        }
    }
}

/// A batch above one proof's size (2^20 gates) is split into several
/// proofs and still verifies.
#[test]
fn batches_above_one_proof_verify() {
    let words = (1 << 20) / 64 + 3;
    let mut prg = triad_mpc::prg::Prg::new([3; 16]);
    let x: Vec<Bits> = (0..words).map(|_| Bits(prg.next_u64())).collect();
    let y: Vec<Bits> = (0..words).map(|_| Bits(prg.next_u64())).collect();
    let mut rng = test_rng();
    let (xs, ys) = (share_plain(&x, &mut rng), share_plain(&y, &mut rng));
    let out = run3(|p| {
        malicious(p);
        let i = p.id.index();
        let z = and(p, &xs[i], &ys[i]).unwrap();
        verify(p).unwrap();
        (open(p, &z).unwrap(), p.checks.gates)
    });
    let want: Vec<Bits> = x.iter().zip(&y).map(|(a, b)| *a * *b).collect();
    for (z, gates) in out {
        assert!(z == want);
        assert_eq!(gates, 64 * words as u64);
    }
}

/// Protocols without a check refuse to run in malicious mode instead of
/// running unchecked.
#[test]
fn unchecked_protocols_refuse_in_malicious_mode() {
    let x: Vec<Z64> = vec![std::num::Wrapping(3); 4];
    let xs = share_plain(&x, &mut test_rng());
    let out = run3(|p| {
        malicious(p);
        let i = p.id.index();
        let m = mul(p, &xs[i], &xs[i]).map(|_| ());
        let s = shuffle(p, std::slice::from_ref(&xs[i])).map(|_| ());
        (m, s)
    });
    for (m, s) in out {
        assert!(matches!(m, Err(MpcError::NotMaliciousSecure(_))), "{m:?}");
        assert!(matches!(s, Err(MpcError::NotMaliciousSecure(_))), "{s:?}");
    }
}

/// The protocol every cheating test runs: a 16-bit comparison of 100
/// pairs with the chain circuit, then a sort of 40 keys (without a
/// shuffle: the sort's comparisons and openings are what is tested).
fn victim(
    p: &mut Party,
    xs: &[Shares<Bits>; 3],
    ys: &[Shares<Bits>; 3],
    keys: &[Shares<Bits>; 3],
) -> Outcome {
    malicious(p);
    let i = p.id.index();
    let c = lt_open(p, &xs[i], &ys[i], 16, Circuit::Chain)?;
    let order = sort_order(p, std::slice::from_ref(&keys[i]), 20)?;
    Ok((c, order))
}

fn sort_keys() -> [Shares<Bits>; 3] {
    let mut prg = triad_mpc::prg::Prg::new([5; 16]);
    let keys: Vec<Bits> = (0..40u64)
        .map(|k| Bits(((prg.next_u64() & 0xff) << 6) | k))
        .collect();
    share_plain(&keys, &mut test_rng())
}

/// Messages party `who` sends in an honest run of [`victim`] (the seed
/// exchange included).
fn messages_sent(who: PartyId) -> u64 {
    let (_, _, xs, ys) = comparison_inputs(100, 16, 1);
    let keys = sort_keys();
    let out = run3(|p| {
        victim(p, &xs, &ys, &keys).unwrap();
        p.net.stats().messages_sent
    });
    out[who.index()]
}

/// Runs [`victim`] with `fault` applied to the `nth` message `who` sends;
/// returns the honest parties' results.
fn run_cheating(who: PartyId, fault: Fault, nth: u64) -> Vec<Outcome> {
    let (_, _, xs, ys) = comparison_inputs(100, 16, 1);
    let keys = sort_keys();
    run3_cheating(who, fault, nth, Duration::from_millis(500), |p| {
        victim(p, &xs, &ys, &keys)
    })
}

/// Every message of every party (after the seed exchange), flipped in one
/// bit, changed in a whole value, or dropped: the run aborts. Abort is
/// *selective* at the last opening (an honest party that received only
/// honest copies of the output finishes with the honest run's answer while
/// the other aborts): so at least one honest party aborts, and none returns
/// anything but the honest run's result. A confirmation round would only
/// move the split to that round: agreement among three parties with one
/// cheater needs signatures (docs/security.md), which the services' release
/// has.
#[test]
fn every_tampered_message_aborts_the_run() {
    let (_, _, xs, ys) = comparison_inputs(100, 16, 1);
    let keys = sort_keys();
    let honest = run3(|p| victim(p, &xs, &ys, &keys).unwrap());
    let mut runs = 0;
    for who in PartyId::ALL {
        let total = messages_sent(who);
        for nth in 2..=total {
            for fault in [
                Fault::Flip { at: 3, mask: 0x01 },
                Fault::Flip {
                    at: 7 + nth as usize,
                    mask: 0x80,
                },
                Fault::Replace { at: 0 },
                Fault::Drop,
            ] {
                runs += 1;
                let out = run_cheating(who, fault, nth);
                assert!(
                    out.iter().any(|r| r.is_err()),
                    "{who} {fault:?} on message {nth}/{total}: no honest party aborted"
                );
                for r in out.iter().flatten() {
                    assert!(
                        *r == honest[0],
                        "{who} {fault:?} on message {nth}/{total}: a wrong result"
                    );
                }
            }
        }
    }
    assert!(runs > 100, "only {runs} runs");
}

/// A party that changes its own component before a step (every role):
/// the other holder of that component disagrees, and the check catches it.
#[test]
fn a_party_changing_its_own_share_is_caught() {
    let (_, _, xs, ys) = comparison_inputs(100, 16, 2);
    for cheat in PartyId::ALL {
        for component in 0..2 {
            let out = run3_on(
                MemNetwork::triple(Duration::from_secs(2)).map(|n| Box::new(n) as Box<dyn Network>),
                |p| {
                    malicious(p);
                    let i = p.id.index();
                    let mut x = xs[i].clone();
                    if p.id == cheat {
                        let v = if component == 0 { &mut x.a } else { &mut x.b };
                        v[3].0 ^= 1 << 9;
                    }
                    lt_open(p, &x, &ys[i], 16, Circuit::Chain)
                },
            );
            for (i, r) in out.iter().enumerate() {
                if i != cheat.index() {
                    assert!(
                        matches!(
                            r,
                            Err(MpcError::CheatingDetected { .. }) | Err(MpcError::Net(_))
                        ),
                        "{cheat} changed component {component}: P{i} got {r:?}"
                    );
                }
            }
            // At least one honest party names the check.
            assert!(out
                .iter()
                .enumerate()
                .any(|(i, r)| i != cheat.index()
                    && matches!(r, Err(MpcError::CheatingDetected { .. }))));
        }
    }
}

/// A prover that proves other outputs than it sent is caught by both
/// verifiers (a prover proving a false statement faithfully is tested in
/// `protocols::dzkp`).
#[test]
fn a_proof_of_other_outputs_is_caught() {
    let (_, _, xs, ys) = comparison_inputs(64, 8, 3);
    for cheat in PartyId::ALL {
        let out = run3(|p| {
            malicious(p);
            let i = p.id.index();
            let z = and(p, &xs[i], &ys[i])?;
            if p.id == cheat {
                p.cheat_flip_recorded_output(0, 5);
            }
            let checked = verify(p);
            if p.id != cheat && checked.is_err() {
                // A caller that ignores the failed check still cannot open.
                let again = open(p, &z);
                assert!(
                    matches!(
                        &again,
                        Err(MpcError::CheatingDetected {
                            check: "an earlier check",
                            ..
                        })
                    ),
                    "{again:?}"
                );
            }
            checked?;
            open(p, &z)
        });
        let caught = out
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                *i != cheat.index() && matches!(r, Err(MpcError::CheatingDetected { .. }))
            })
            .count();
        assert_eq!(caught, 2, "{cheat}: {out:?}");
    }
}
