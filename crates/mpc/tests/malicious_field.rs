//! Malicious security with abort for arithmetic over the BN254 scalar
//! field (`protocols::mulcheck`): honest runs in malicious mode match the
//! plaintext; a cheating party (every message it sends flipped, replaced
//! or dropped; its own share changed; a proof of other outputs than it
//! sent) makes at least one honest party abort and none return a wrong
//! result.

use std::time::Duration;

use proptest::prelude::*;
use triad_mpc::network::MemNetwork;
use triad_mpc::protocols::binary::bitslice;
use triad_mpc::protocols::{
    b2a_fr, b2a_z128, dot, mul, open, open_is_zero, poseidon2, square, verify,
};
use triad_mpc::share::share_plain;
use triad_mpc::testing::{assert_caught, run3, run3_cheating, run3_on, test_rng, Fault};
use triad_mpc::{Bits, Fr, MpcError, Network, Party, PartyId, Ring, Security, Shares, Z64};

fn malicious(p: &mut Party) {
    p.security = Security::Malicious;
}

fn fr() -> impl Strategy<Value = Fr> {
    prop_oneof![
        Just(Fr::from(0u64)),
        Just(Fr::from(1u64)),
        Just(-Fr::from(1u64)),
        any::<u64>().prop_map(Fr::from),
        any::<[u8; 16]>().prop_map(|s| <Fr as Ring>::random(&mut triad_mpc::prg::Prg::new(s))),
    ]
}

fn sum(v: impl Iterator<Item = Fr>) -> Fr {
    v.fold(Fr::from(0u64), |a, b| a + b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// mul, square, dot, Poseidon and the zero test in malicious mode
    /// match the plaintext, and every product was checked.
    #[test]
    fn honest_malicious_field_runs_match_the_oracle(
        xy in prop::collection::vec((fr(), fr()), 1..40),
        zero_at in any::<usize>(),
    ) {
        let (x, mut y): (Vec<Fr>, Vec<Fr>) = xy.into_iter().unzip();
        let n = x.len();
        y[zero_at % n] = Fr::from(0u64);
        let mut rng = test_rng();
        let (xs, ys) = (share_plain(&x, &mut rng), share_plain(&y, &mut rng));
        let out = run3(|p| {
            malicious(p);
            let i = p.id.index();
            let m = mul(p, &xs[i], &ys[i]).unwrap();
            let s = square(p, &xs[i]).unwrap();
            let d = dot(p, &xs[i], &ys[i]).unwrap();
            let h = poseidon2(p, &xs[i], &ys[i]).unwrap();
            let unchecked = p.unchecked_products();
            let opened = open(p, &Shares::concat(&[&m, &s, &d, &h])).unwrap();
            let zero = open_is_zero(p, &ys[i]).unwrap();
            (opened, zero, unchecked > 0, p.unchecked_products(), p.checks.products)
        });
        let mut want: Vec<Fr> = x.iter().zip(&y).map(|(a, b)| *a * *b).collect();
        want.extend(x.iter().map(|a| *a * *a));
        want.push(sum(x.iter().zip(&y).map(|(a, b)| *a * *b)));
        want.extend(x.iter().zip(&y).map(|(a, b)| triad_crypto::poseidon2(*a, *b)));
        let want_zero: Vec<bool> = y.iter().map(|v| *v == Fr::from(0u64)).collect();
        for (opened, zero, recorded, left, checked) in &out {
            prop_assert_eq!(opened, &want);
            prop_assert_eq!(zero, &want_zero);
            prop_assert!(*recorded);
            prop_assert_eq!(*left, 0);
            prop_assert!(*checked > 2 * n as u64);
        }
    }
}

/// Bit-sliced values below `2^l` and their sharing.
fn sliced(v: &[u64], l: u32) -> [Shares<Bits>; 3] {
    let z: Vec<Z64> = v.iter().map(|&a| std::num::Wrapping(a)).collect();
    share_plain(&bitslice(&z, l), &mut test_rng())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Binary to F_r in both modes, for widths 1..=64 with the edge values
    /// 0 and 2^l - 1.
    #[test]
    fn b2a_fr_matches_the_oracle(l in 1u32..=64, raw in prop::collection::vec(any::<u64>(), 1..150), edge in any::<bool>(), mal in any::<bool>()) {
        let top = if l == 64 { u64::MAX } else { (1u64 << l) - 1 };
        let mut v: Vec<u64> = raw.iter().map(|x| x & top).collect();
        if edge {
            v[0] = 0;
            let last = v.len() - 1;
            v[last] = top;
        }
        let sh = sliced(&v, l);
        let n = v.len();
        let out = run3(|p| {
            if mal {
                malicious(p);
            }
            let f = b2a_fr(p, &sh[p.id.index()], l as usize, n).unwrap();
            open(p, &f).unwrap()
        });
        let want: Vec<Fr> = v.iter().map(|&a| Fr::from(a)).collect();
        for o in out {
            prop_assert_eq!(&o, &want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Two's-complement words to Z_2^128 (sign-extended), both modes.
    #[test]
    fn b2a_z128_matches_the_oracle(raw in prop::collection::vec(prop_oneof![Just(0i64), Just(-1), Just(i64::MIN), Just(i64::MAX), any::<i64>()], 1..130), mal in any::<bool>()) {
        let words: Vec<u64> = raw.iter().map(|&v| v as u64).collect();
        let sh = sliced(&words, 64);
        let n = raw.len();
        let out = run3(|p| {
            if mal {
                malicious(p);
            }
            let v = b2a_z128(p, &sh[p.id.index()], n).unwrap();
            open(p, &v).unwrap()
        });
        let want: Vec<triad_mpc::Z128> = raw.iter().map(|&v| std::num::Wrapping(v as i128 as u128)).collect();
        for o in out {
            prop_assert_eq!(&o, &want);
        }
    }
}

/// Every tampered message of a malicious `b2a_fr` (the adder's gates and
/// both compared openings) aborts the run or leaves the honest result.
#[test]
fn every_tampered_b2a_message_aborts_the_run() {
    let v: Vec<u64> = (0..70u64)
        .map(|k| (k * 0x9e37_79b9) & ((1 << 20) - 1))
        .collect();
    let sh = sliced(&v, 20);
    let victim = |p: &mut Party| -> Outcome {
        malicious(p);
        let f = b2a_fr(p, &sh[p.id.index()], 20, 70)?;
        open(p, &f)
    };
    let want: Vec<Fr> = v.iter().map(|&a| Fr::from(a)).collect();
    let sent = run3(|p| {
        victim(p).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        for nth in 2..=sent[who.index()] {
            for fault in [
                Fault::Flip { at: 2, mask: 0x08 },
                Fault::Replace { at: 8 },
                Fault::Drop,
            ] {
                runs += 1;
                let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
                assert_caught(&out, &want, format!("{who} {fault:?} on message {nth}"));
            }
        }
    }
    assert!(runs > 100, "only {runs} runs");
}

/// A dot product longer than one sub-batch of the proof, and a log past
/// the limit that forces a check before the next product.
#[test]
fn long_dot_products_and_long_logs_verify() {
    let n = triad_mpc::protocols::mulcheck::SUB_ENTRIES + 17;
    let mut prg = triad_mpc::prg::Prg::new([4; 16]);
    let x: Vec<Fr> = (0..n).map(|_| <Fr as Ring>::random(&mut prg)).collect();
    let y: Vec<Fr> = (0..n).map(|_| <Fr as Ring>::random(&mut prg)).collect();
    let mut rng = test_rng();
    let (xs, ys) = (share_plain(&x, &mut rng), share_plain(&y, &mut rng));
    let out = run3(|p| {
        malicious(p);
        let i = p.id.index();
        let d = dot(p, &xs[i], &ys[i]).unwrap();
        let d = open(p, &d).unwrap();
        // Enough elementwise products (a term and a gate each) to pass the
        // log limit.
        let rounds = triad_mpc::protocols::mulcheck::LOG_LIMIT / (2 * n) + 2;
        let mut m = xs[i].clone();
        for _ in 0..rounds {
            m = mul(p, &m, &ys[i]).unwrap();
        }
        let batches_before_open = p.checks.batches;
        (d, open(p, &m).unwrap(), batches_before_open)
    });
    let mut want_m = x.clone();
    let rounds = triad_mpc::protocols::mulcheck::LOG_LIMIT / (2 * n) + 2;
    for _ in 0..rounds {
        want_m = want_m.iter().zip(&y).map(|(a, b)| *a * *b).collect();
    }
    let want_d = sum(x.iter().zip(&y).map(|(a, b)| *a * *b));
    for (d, m, batches) in out {
        assert_eq!(d, vec![want_d]);
        assert!(m == want_m);
        // One check before the first opening, at least one forced by the
        // log limit.
        assert!(batches >= 2, "{batches}");
    }
}

/// Multiplication over Z_2^k still has no check and refuses.
#[test]
fn ring_products_still_refuse() {
    let x: Vec<triad_mpc::Z128> = vec![std::num::Wrapping(3); 4];
    let xs = share_plain(&x, &mut test_rng());
    let out = run3(|p| {
        malicious(p);
        let i = p.id.index();
        (
            mul(p, &xs[i], &xs[i]).map(|_| ()),
            dot(p, &xs[i], &xs[i]).map(|_| ()),
            square(p, &xs[i]).map(|_| ()),
        )
    });
    for (m, d, s) in out {
        for r in [m, d, s] {
            assert!(matches!(r, Err(MpcError::NotMaliciousSecure(_))), "{r:?}");
        }
    }
}

type Outcome = Result<Vec<Fr>, MpcError>;

/// Operands of the victim program.
fn victim_inputs() -> ([Shares<Fr>; 3], [Shares<Fr>; 3]) {
    let x: Vec<Fr> = (1..=12u64).map(|k| Fr::from(k * 1_000_003)).collect();
    let y: Vec<Fr> = (1..=12u64).map(|k| Fr::from(k * 7 + 5)).collect();
    let mut rng = test_rng();
    (share_plain(&x, &mut rng), share_plain(&y, &mut rng))
}

/// A product, a dot product and two Poseidon hashes, opened together.
fn victim(p: &mut Party, xs: &[Shares<Fr>; 3], ys: &[Shares<Fr>; 3]) -> Outcome {
    malicious(p);
    let i = p.id.index();
    let m = mul(p, &xs[i], &ys[i])?;
    let d = dot(p, &xs[i], &m)?;
    let h = poseidon2(p, &xs[i].slice(0..2), &ys[i].slice(0..2))?;
    open(p, &Shares::concat(&[&m, &d, &h]))
}

fn run_cheating(who: PartyId, fault: Fault, nth: u64) -> Vec<Outcome> {
    let (xs, ys) = victim_inputs();
    run3_cheating(who, fault, nth, Duration::from_millis(500), |p| {
        victim(p, &xs, &ys)
    })
}

/// Every message of every party after the seed exchange, with a bit
/// flipped (two positions), a value replaced, or dropped: at least one
/// honest party aborts, and none returns anything but the honest result
/// (abort is selective at the last opening, as for AND gates).
#[test]
fn every_tampered_field_message_aborts_the_run() {
    let (xs, ys) = victim_inputs();
    let honest = run3(|p| victim(p, &xs, &ys).unwrap());
    let sent = run3(|p| {
        victim(p, &xs, &ys).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        let total = sent[who.index()];
        for nth in 2..=total {
            for fault in [
                Fault::Flip { at: 5, mask: 0x02 },
                Fault::Flip {
                    at: 11 + 3 * nth as usize,
                    mask: 0x40,
                },
                Fault::Replace { at: 8 },
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
    assert!(runs > 50, "only {runs} runs");
}

/// A party that changes its own component of an operand before a product
/// or a dot product (every party, both components) is caught.
#[test]
fn a_party_changing_its_own_field_share_is_caught() {
    let (xs, ys) = victim_inputs();
    for dot_product in [false, true] {
        for cheat in PartyId::ALL {
            for component in 0..2 {
                let out = run3_on(
                    MemNetwork::triple(Duration::from_secs(2))
                        .map(|n| Box::new(n) as Box<dyn Network>),
                    |p| {
                        malicious(p);
                        let i = p.id.index();
                        let mut x = xs[i].clone();
                        if p.id == cheat {
                            let v = if component == 0 { &mut x.a } else { &mut x.b };
                            v[3] += Fr::from(1u64);
                        }
                        let z = if dot_product {
                            dot(p, &x, &ys[i])?
                        } else {
                            mul(p, &x, &ys[i])?
                        };
                        open(p, &z)
                    },
                );
                let caught = out.iter().enumerate().any(|(i, r)| {
                    i != cheat.index() && matches!(r, Err(MpcError::CheatingDetected { .. }))
                });
                assert!(caught, "{cheat} changed component {component}: {out:?}");
                for (i, r) in out.iter().enumerate() {
                    assert!(
                        i == cheat.index() || r.is_err(),
                        "{cheat} changed component {component}: P{i} got {r:?}"
                    );
                }
            }
        }
    }
}

/// A prover that proves another output than it sent is caught by both
/// verifiers, which then refuse every later opening.
#[test]
fn a_proof_of_other_field_outputs_is_caught() {
    let (xs, ys) = victim_inputs();
    for cheat in PartyId::ALL {
        let out = run3(|p| {
            malicious(p);
            let i = p.id.index();
            let z = mul(p, &xs[i], &ys[i])?;
            if p.id == cheat {
                p.cheat_shift_recorded_product(4);
            }
            let checked = verify(p);
            if p.id != cheat && checked.is_err() {
                assert!(matches!(
                    open(p, &z),
                    Err(MpcError::CheatingDetected {
                        check: "an earlier check",
                        ..
                    })
                ));
            }
            checked?;
            open(p, &z)
        });
        let caught = out
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                *i != cheat.index()
                    && matches!(
                        r,
                        Err(MpcError::CheatingDetected {
                            check: "F_r multiplication proof",
                            ..
                        })
                    )
            })
            .count();
        assert_eq!(caught, 2, "{cheat}: {out:?}");
    }
}

/// Packs bools into words, bit `i % 64` of word `i / 64`.
fn pack(v: &[bool]) -> Vec<Bits> {
    let mut packed = vec![Bits(0); v.len().div_ceil(64)];
    for (i, b) in v.iter().enumerate() {
        packed[i / 64].0 |= (*b as u64) << (i % 64);
    }
    packed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Bit injection into F_r in malicious mode matches the plaintext (all
    /// zeros, all ones, random, lengths across word boundaries), and both
    /// of its products per bit were recorded and checked.
    #[test]
    fn malicious_bit_injection_matches_the_oracle(
        v in prop::collection::vec(any::<bool>(), 1..200),
        fill in prop::option::of(any::<bool>()),
    ) {
        let v: Vec<bool> = match fill {
            Some(b) => vec![b; v.len()],
            None => v,
        };
        let n = v.len();
        let sh = share_plain(&pack(&v), &mut test_rng());
        let out = run3(|p| {
            malicious(p);
            let f = triad_mpc::protocols::bit_inject::<Fr>(p, &sh[p.id.index()], n).unwrap();
            let recorded = p.unchecked_products();
            (open(p, &f).unwrap(), recorded, p.unchecked_products())
        });
        let want: Vec<Fr> = v.iter().map(|&b| Fr::from(b as u64)).collect();
        for (opened, recorded, left) in out {
            prop_assert_eq!(&opened, &want);
            prop_assert_eq!(recorded, 2 * n as u64);
            prop_assert_eq!(left, 0);
        }
    }
}

/// Injection into a ring has no check in malicious mode and refuses.
#[test]
fn malicious_bit_injection_into_a_ring_refuses() {
    let sh = share_plain(&pack(&[true, false, true]), &mut test_rng());
    let out = run3(|p| {
        malicious(p);
        triad_mpc::protocols::bit_inject::<triad_mpc::Z128>(p, &sh[p.id.index()], 3).map(|_| ())
    });
    for r in out {
        assert!(matches!(r, Err(MpcError::NotMaliciousSecure(_))), "{r:?}");
    }
}

/// Every message of a malicious bit injection, tampered with, aborts the
/// run or leaves the honest result; a party that flips its own copy of a
/// binary component before the injection (every party, both copies) is
/// caught by an honest party.
#[test]
fn tampered_or_inconsistent_bit_injection_is_caught() {
    let v: Vec<bool> = (0..130).map(|k| (k * 7 + k / 5) % 3 == 0).collect();
    let n = v.len();
    let sh = share_plain(&pack(&v), &mut test_rng());
    let want: Vec<Fr> = v.iter().map(|&b| Fr::from(b as u64)).collect();
    let victim = |p: &mut Party| -> Outcome {
        malicious(p);
        let f = triad_mpc::protocols::bit_inject::<Fr>(p, &sh[p.id.index()], n)?;
        open(p, &f)
    };
    let sent = run3(|p| {
        victim(p).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        for nth in 2..=sent[who.index()] {
            for fault in [
                Fault::Flip { at: 3, mask: 0x10 },
                Fault::Replace { at: 8 },
                Fault::Drop,
            ] {
                runs += 1;
                let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
                assert_caught(&out, &want, format!("{who} {fault:?} on message {nth}"));
            }
        }
    }
    assert!(runs >= 30, "only {runs} runs");
    for cheat in PartyId::ALL {
        for component in 0..2 {
            for bit in [0, 77] {
                let out = run3_on(
                    MemNetwork::triple(Duration::from_secs(2))
                        .map(|n| Box::new(n) as Box<dyn Network>),
                    |p| {
                        malicious(p);
                        let mut x = sh[p.id.index()].clone();
                        if p.id == cheat {
                            let w = if component == 0 { &mut x.a } else { &mut x.b };
                            w[bit / 64].0 ^= 1 << (bit % 64);
                        }
                        let f = triad_mpc::protocols::bit_inject::<Fr>(p, &x, n)?;
                        open(p, &f)
                    },
                );
                let caught = out.iter().enumerate().any(|(i, r)| {
                    i != cheat.index() && matches!(r, Err(MpcError::CheatingDetected { .. }))
                });
                assert!(
                    caught,
                    "{cheat} flipped bit {bit} of copy {component}: {out:?}"
                );
                for (i, r) in out.iter().enumerate() {
                    assert!(
                        i == cheat.index() || r.is_err() || r.as_ref().is_ok_and(|o| *o == want),
                        "{cheat} flipped bit {bit} of copy {component}: P{i} got {r:?}"
                    );
                }
            }
        }
    }
}
