//! The per-batch MPC check of provider submissions.
//!
//! Each provider sends party `i` the components `(x_i, x_{i+1})` of its
//! value's 64-bit two's-complement word (XOR sharing) and of its blinder
//! (additive sharing in the BN254 scalar field). For a batch of `n`
//! submissions the parties, in a constant number of rounds:
//! 1. tell each other which submissions each holds and accepts
//!    ([`Holding`]): an item any party refuses or lacks is rejected;
//! 2. check that overlapping components agree ([`check_client_input`]);
//! 3. inject the bits into the field and into Z_2^128 and weigh them
//!    (`v = sum_{j<63} 2^j b_j - 2^63 b_63`), so one sharing of the bits
//!    yields the value in both domains with no chance of disagreement;
//! 4. check `-2^52 <= v < 2^52`, the range the statistics support;
//! 5. recompute `Poseidon(v, blinder)` and open only whether it equals the
//!    attested commitment ([`open_is_zero`] opens a random multiple).
//!
//! Opened: the holdings (public anyway), the consistency verdicts,
//! one range bit and one equality bit per submission. Nothing else.
//!
//! In malicious mode (`Party::security`) step 3 converts the bits with
//! [`b2a_fr`] and [`b2a_z128`] (masked components, every AND gate and
//! product checked, compared openings) instead of bit injection, which has
//! no check, and after steps 1 and 2 the parties compare digests of what
//! each told the others (a cheater cannot split the honest parties). Every
//! party used only components that opened the provider's commitments under
//! the digest all three signed receipts for ([`triad_wire::receipt`]), so
//! an inconsistency among present items is a lie by a party and aborts
//! the batch. So does a claim not to hold an item's shares before the time
//! the claimer's own signed receipt promised to keep them ([`Evidence`]),
//! and a refusal of an attestation this party's own vetting accepts (when
//! no clock difference can explain it): a malicious party can force an
//! abort, but not silently have an honest provider's value dropped.

use std::num::Wrapping;

use triad_mpc::protocols::binary::{bitslice, unpack_bits};
use triad_mpc::protocols::input::Submission;
use triad_mpc::protocols::{
    b2a_fr, b2a_z128, bit_inject, check_client_input, in_range, open, open_is_zero, poseidon2,
};
use triad_mpc::{Bits, Fr, MpcError, Party, Ring, Security, Shares, Z128, Z64};
use triad_stats::VALUE_BITS;
use triad_wire::messages::RejectReason;

use crate::presence::{echo_verdicts, exchange_holdings, judge_claims};
pub use crate::presence::{Evidence, Holding, NoEvidence, CLOCK_SKEW_SECS};

/// One party's view of a batch, items in the coordinator's order. Items the
/// party does not hold have zero components.
#[derive(Clone, Debug)]
pub struct BatchShares {
    pub holding: Vec<Holding>,
    /// One word per item.
    pub value_bits: Shares<Bits>,
    pub blinder: Shares<Fr>,
}

/// The verdicts (equal at all three parties) and the passing values.
#[derive(Clone, Debug)]
pub struct BatchCheck {
    pub verdicts: Vec<Option<RejectReason>>,
    /// Every item's value in Z_2^128 (meaningless for rejected items).
    pub values: Shares<Z128>,
}

/// Weights of the two's-complement bits: `2^j`, and `-2^63` for the sign.
fn bit_weights<T: Ring>() -> Vec<T> {
    let mut w: Vec<T> = (0..63).map(|j| T::from_u64(1u64 << j)).collect();
    w.push(-T::from_u64(1u64 << 63));
    w
}

/// `sum_j w_j b_{k,j}` for each item `k` (local).
fn weigh<T: Ring>(bits: &Shares<T>, n: usize) -> Shares<T> {
    let w = bit_weights::<T>();
    let dot = |v: &[T], k: usize| {
        v[64 * k..64 * k + 64]
            .iter()
            .zip(&w)
            .fold(T::zero(), |acc, (b, c)| acc + *b * *c)
    };
    Shares::new(
        (0..n).map(|k| dot(&bits.a, k)).collect(),
        (0..n).map(|k| dot(&bits.b, k)).collect(),
    )
}

/// `x` with the items not `usable` replaced by zero sharings (local).
fn zero_unusable<T: Ring>(x: &Shares<T>, usable: &[bool]) -> Shares<T> {
    let keep = |v: &[T]| -> Vec<T> {
        v.iter()
            .zip(usable)
            .map(|(x, &u)| if u { *x } else { T::zero() })
            .collect()
    };
    Shares::new(keep(&x.a), keep(&x.b))
}

/// The words' values in `F_r` and Z_2^128 with checked conversions: the
/// field value from the word with its sign bit flipped (`v + 2^63`, below
/// 2^64), the ring value sign-extended.
fn values_checked(
    p: &mut Party,
    words: &Shares<Bits>,
) -> Result<(Shares<Fr>, Shares<Z128>), MpcError> {
    let n = words.len();
    let slice = |v: &[Bits]| -> Vec<Bits> {
        let z: Vec<Z64> = v.iter().map(|b| Wrapping(b.0)).collect();
        bitslice(&z, 64)
    };
    let planes = Shares::new(slice(&words.a), slice(&words.b));
    let w = n.div_ceil(64);
    let flipped = Shares::concat(&[
        &planes.slice(0..63 * w),
        &planes
            .slice(63 * w..64 * w)
            .add_public(p.id, &vec![Bits(!0); w]),
    ]);
    let offset = Fr::from(1u64 << 63);
    let v_fr = b2a_fr(p, &flipped, 64, n)?.add_public(p.id, &vec![-offset; n]);
    let v_ring = b2a_z128(p, &planes, n)?;
    Ok((v_fr, v_ring))
}

/// Checks a batch against the attested `commitments` (one per item); in
/// malicious mode the peers' presence claims are weighed against
/// `evidence`.
pub fn check_batch(
    p: &mut Party,
    input: &BatchShares,
    commitments: &[Fr],
    evidence: &dyn Evidence,
) -> Result<BatchCheck, MpcError> {
    let n = commitments.len();
    if input.holding.len() != n || input.value_bits.len() != n || input.blinder.len() != n {
        return Err(MpcError::InvalidArgument("batch inputs of unequal lengths"));
    }
    let claims = exchange_holdings(p, &input.holding, evidence.now())?;
    let holdings = &claims.holdings;
    let refused: Vec<bool> = (0..n)
        .map(|k| holdings.iter().any(|h| h[k] == Holding::Refused))
        .collect();
    let present: Vec<bool> = (0..n)
        .map(|k| holdings.iter().all(|h| h[k] == Holding::Held))
        .collect();
    let subs: Vec<Submission> = (0..n)
        .map(|k| Submission {
            id: k as u64,
            range: k..k + 1,
        })
        .collect();
    let bits_ok = check_client_input(p, &input.value_bits, &subs)?;
    let blinder_ok = check_client_input(p, &input.blinder, &subs)?;
    if p.security == Security::Malicious {
        echo_verdicts(p, &claims, &[&bits_ok, &blinder_ok])?;
        judge_claims(p.id, &claims, evidence)?;
        // Both holders of every component checked it against the
        // commitments all three parties signed receipts for: components
        // that differ mean a holder lies, not that the provider erred.
        if let Some(k) = (0..n).find(|&k| present[k] && !(bits_ok[k] && blinder_ok[k])) {
            return Err(MpcError::CheatingDetected {
                check: "input consistency",
                detail: format!(
                    "item {k}: components both holders checked against the provider's \
                     commitments differ"
                ),
            });
        }
    }
    // Items missing somewhere or inconsistent are rejected whatever follows;
    // all three parties know which (the verdicts above are agreed), so each
    // replaces their components by zeros: the sharings below are then
    // consistent, and in malicious mode a provider's bad shares cannot make
    // the checks abort the whole batch.
    let usable: Vec<bool> = (0..n)
        .map(|k| present[k] && bits_ok[k] && blinder_ok[k])
        .collect();
    let value_bits = zero_unusable(&input.value_bits, &usable);
    let blinder = zero_unusable(&input.blinder, &usable);

    let (v_fr, v_ring) = match p.security {
        Security::SemiHonest => (
            weigh(&bit_inject::<Fr>(p, &value_bits, 64 * n)?, n),
            weigh(&bit_inject::<Z128>(p, &value_bits, 64 * n)?, n),
        ),
        Security::Malicious => values_checked(p, &value_bits)?,
    };

    let offset = Wrapping(1u128 << VALUE_BITS);
    let shifted = v_ring.add_public(p.id, &vec![offset; n]);
    let in_range_bits = in_range(p, &shifted, VALUE_BITS + 1)?;
    let in_range = unpack_bits(&open(p, &in_range_bits)?, n);

    let diff = poseidon2(p, &v_fr, &blinder)?
        .add_public(p.id, &commitments.iter().map(|c| -*c).collect::<Vec<_>>());
    let equal = open_is_zero(p, &diff)?;

    let verdicts = (0..n)
        .map(|k| {
            if refused[k] {
                Some(RejectReason::AttestationRefused)
            } else if !present[k] {
                Some(RejectReason::SharesMissing)
            } else if !(bits_ok[k] && blinder_ok[k]) {
                Some(RejectReason::InconsistentShares)
            } else if !in_range[k] {
                Some(RejectReason::ValueOutOfRange)
            } else if !equal[k] {
                Some(RejectReason::CommitmentMismatch)
            } else {
                None
            }
        })
        .collect();
    Ok(BatchCheck {
        verdicts,
        values: v_ring,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;
    use triad_crypto::{commitment, fr_from_i128};
    use triad_mpc::share::{reconstruct, share_plain};
    use triad_mpc::testing::{run3, test_rng};
    use triad_mpc::PartyId;

    /// How a test item is damaged before the check.
    #[derive(Clone, Copy, Debug)]
    enum Fault {
        None,
        Missing(usize),
        /// Party `i`'s vetting refuses the attestation.
        Refused(usize),
        Inconsistent(usize),
        WrongBlinder,
        WrongValue,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            4 => Just(Fault::None),
            1 => (0usize..3).prop_map(Fault::Missing),
            1 => (0usize..3).prop_map(Fault::Refused),
            1 => (0usize..6).prop_map(Fault::Inconsistent),
            1 => Just(Fault::WrongBlinder),
            1 => Just(Fault::WrongValue),
        ]
    }

    fn value() -> impl Strategy<Value = i64> {
        let lim = 1i64 << VALUE_BITS;
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(lim - 1),
            Just(-lim),
            Just(lim),
            Just(-lim - 1),
            Just(i64::MAX),
            Just(i64::MIN),
            -lim..lim,
            any::<i64>(),
        ]
    }

    /// The plaintext oracle of [`check_batch`].
    fn expected(v: i64, f: Fault) -> Option<RejectReason> {
        let lim = 1i64 << VALUE_BITS;
        match f {
            Fault::Refused(_) => Some(RejectReason::AttestationRefused),
            Fault::Missing(_) => Some(RejectReason::SharesMissing),
            Fault::Inconsistent(_) => Some(RejectReason::InconsistentShares),
            _ if !(-lim..lim).contains(&v) => Some(RejectReason::ValueOutOfRange),
            Fault::WrongBlinder | Fault::WrongValue => Some(RejectReason::CommitmentMismatch),
            Fault::None => None,
        }
    }

    fn run(items: &[(i64, Fault)]) {
        run_in(items, Security::SemiHonest);
        run_in(items, Security::Malicious);
    }

    fn run_in(items: &[(i64, Fault)], security: Security) {
        let mut rng = test_rng();
        let n = items.len();
        let blinders: Vec<Fr> = (0..n).map(|_| Fr::from(rng.gen::<u64>())).collect();
        let commitments: Vec<Fr> = items
            .iter()
            .zip(&blinders)
            .map(|((v, _), b)| commitment(fr_from_i128(*v as i128), *b))
            .collect();
        // What the providers share: sometimes not what they attested.
        let shared_bits: Vec<Bits> = items
            .iter()
            .map(|(v, f)| match f {
                Fault::WrongValue => Bits((*v as u64) ^ 1),
                _ => Bits(*v as u64),
            })
            .collect();
        let shared_blinders: Vec<Fr> = items
            .iter()
            .zip(&blinders)
            .map(|((_, f), b)| match f {
                Fault::WrongBlinder => *b + Fr::from(1u64),
                _ => *b,
            })
            .collect();
        let mut bits = share_plain(&shared_bits, &mut rng);
        let mut bl = share_plain(&shared_blinders, &mut rng);
        let mut holding = [0, 1, 2].map(|_| vec![Holding::Held; n]);
        for (k, (_, f)) in items.iter().enumerate() {
            match *f {
                Fault::Missing(i) | Fault::Refused(i) => {
                    holding[i][k] = match f {
                        Fault::Missing(_) => Holding::Missing,
                        _ => Holding::Refused,
                    };
                    bits[i].a[k] = Bits(0);
                    bits[i].b[k] = Bits(0);
                }
                Fault::Inconsistent(c) => {
                    let (i, first) = (c % 3, c < 3);
                    if first {
                        bits[i].a[k].0 ^= 1 << (k % 64);
                    } else {
                        bl[i].b[k] += Fr::from(1u64);
                    }
                }
                _ => {}
            }
        }
        let out = run3(|p| {
            p.security = security;
            let i = p.id.index();
            let input = BatchShares {
                holding: holding[i].clone(),
                value_bits: bits[i].clone(),
                blinder: bl[i].clone(),
            };
            // No receipts, every vetting unsure: every claim stands.
            let got = check_batch(p, &input, &commitments, &NoEvidence);
            if got.is_ok() {
                triad_mpc::protocols::verify(p).unwrap();
            }
            got
        });
        // In malicious mode the parties only use components that opened
        // the provider's commitments: an inconsistent item means a party
        // lies, and the batch aborts.
        let inconsistent = items
            .iter()
            .any(|(_, f)| matches!(f, Fault::Inconsistent(_)));
        if security == Security::Malicious && inconsistent {
            for o in &out {
                assert!(
                    matches!(
                        o,
                        Err(MpcError::CheatingDetected {
                            check: "input consistency",
                            ..
                        })
                    ),
                    "{o:?}"
                );
            }
            return;
        }
        let out: Vec<BatchCheck> = out.into_iter().map(Result::unwrap).collect();
        let want: Vec<_> = items.iter().map(|(v, f)| expected(*v, *f)).collect();
        for o in &out {
            assert_eq!(o.verdicts, want, "items {items:?}");
        }
        let values = reconstruct(&[
            out[0].values.clone(),
            out[1].values.clone(),
            out[2].values.clone(),
        ]);
        for (k, (v, _)) in items.iter().enumerate() {
            if want[k].is_none() {
                assert_eq!(values[k], Wrapping(*v as i128 as u128), "value {v}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn verdicts_match_the_oracle(items in prop::collection::vec((value(), fault()), 1..40)) {
            run(&items);
        }
    }

    #[test]
    fn duplicates_and_edges_pass() {
        let lim = 1i64 << VALUE_BITS;
        run(&[
            (0, Fault::None),
            (0, Fault::None),
            (lim - 1, Fault::None),
            (-lim, Fault::None),
            (-1, Fault::None),
            (lim, Fault::None),
            (i64::MIN, Fault::WrongBlinder),
        ]);
    }

    /// Evidence for tests: every party's receipt keeps every item until
    /// `kept` (none if `None`), vetting is `unsure` or not, the clock
    /// reads `now`.
    struct TestEvidence {
        kept: Option<u64>,
        unsure: bool,
        now: u64,
    }

    impl Evidence for TestEvidence {
        fn kept_until(&self, _: usize, _: PartyId) -> Option<u64> {
            self.kept
        }
        fn vetting_unsure(&self, _: usize) -> bool {
            self.unsure
        }
        fn now(&self) -> u64 {
            self.now
        }
    }

    /// Evidence that every claim of a missing item or a refusal is false.
    const DAMNING: TestEvidence = TestEvidence {
        kept: Some(1_000_180),
        unsure: false,
        now: 1_000_000,
    };

    /// Six honest items, shared; the check of party `p` with holdings
    /// `holding` (its own) against `evidence`.
    fn six_items() -> (Vec<Fr>, [Shares<Bits>; 3], [Shares<Fr>; 3]) {
        let values: Vec<i64> = vec![5, -7, 1 << 40, 0, -(1 << 51), 12345];
        let mut rng = test_rng();
        let blinders: Vec<Fr> = values.iter().map(|_| Fr::from(rng.gen::<u64>())).collect();
        let commitments: Vec<Fr> = values
            .iter()
            .zip(&blinders)
            .map(|(v, b)| commitment(fr_from_i128(*v as i128), *b))
            .collect();
        let words: Vec<Bits> = values.iter().map(|&v| Bits(v as u64)).collect();
        let bits = share_plain(&words, &mut rng);
        let bl = share_plain(&blinders, &mut rng);
        (commitments, bits, bl)
    }

    /// A party that holds (and accepts) an honest provider's item but says
    /// it lacks the shares, or refuses the attestation. In malicious mode
    /// both honest parties abort naming the check when the evidence
    /// contradicts the claim (the liar's own receipt keeps the shares
    /// beyond now plus the clock skew; their vetting is sure); when it
    /// does not (no receipt, a receipt about to lapse, an attestation at
    /// the edge of its validity), or in semi-honest mode, the item is
    /// rejected, retryably, and nothing else changes.
    #[test]
    fn false_claims_of_missing_shares_or_refusal_abort_when_evidence_contradicts_them() {
        let (commitments, bits, bl) = six_items();
        let lapsing = TestEvidence {
            kept: Some(DAMNING.now + CLOCK_SKEW_SECS),
            ..DAMNING
        };
        let no_receipt = TestEvidence {
            kept: None,
            ..DAMNING
        };
        let unsure = TestEvidence {
            unsure: true,
            ..DAMNING
        };
        for liar in PartyId::ALL {
            for claim in [Holding::Missing, Holding::Refused] {
                let cases: [(&TestEvidence, Security, bool); 5] = [
                    (&DAMNING, Security::Malicious, true),
                    (&DAMNING, Security::SemiHonest, false),
                    (&lapsing, Security::Malicious, claim == Holding::Refused),
                    (&no_receipt, Security::Malicious, claim == Holding::Refused),
                    (&unsure, Security::Malicious, claim == Holding::Missing),
                ];
                for (evidence, security, aborts) in cases {
                    let out = run3(|p| {
                        p.security = security;
                        let i = p.id.index();
                        let mut holding = vec![Holding::Held; 6];
                        if p.id == liar {
                            holding[2] = claim;
                        }
                        let input = BatchShares {
                            holding,
                            value_bits: bits[i].clone(),
                            blinder: bl[i].clone(),
                        };
                        check_batch(p, &input, &commitments, evidence)
                    });
                    let case = format!("{liar} {claim:?} {security:?} kept {:?}", evidence.kept);
                    for honest in PartyId::ALL.into_iter().filter(|&q| q != liar) {
                        let got = &out[honest.index()];
                        if aborts {
                            let want = match claim {
                                Holding::Missing => "presence claim",
                                _ => "attestation vetting",
                            };
                            match got {
                                Err(MpcError::CheatingDetected { check, detail }) => {
                                    assert_eq!(*check, want, "{case}");
                                    assert!(
                                        detail.contains(&format!("{liar}")),
                                        "{case}: {detail}"
                                    );
                                    assert!(detail.contains("item 2"), "{case}: {detail}");
                                }
                                other => panic!("{case}: {other:?}"),
                            }
                        } else {
                            let v = &got
                                .as_ref()
                                .unwrap_or_else(|e| panic!("{case}: {e}"))
                                .verdicts;
                            let want = match claim {
                                Holding::Missing => RejectReason::SharesMissing,
                                _ => RejectReason::AttestationRefused,
                            };
                            let mut all = vec![None; 6];
                            all[2] = Some(want);
                            assert_eq!(*v, all, "{case}");
                        }
                    }
                }
            }
        }
    }

    /// Judging depends on the parties' clocks: a claimer whose stated
    /// clock is more than `CLOCK_SKEW_SECS` from an honest party's makes
    /// that party abort without accusing it (a badly set clock is not a
    /// lie), whether its claim is a missing item or a refusal; within the
    /// skew the claim is judged as usual.
    #[test]
    fn a_claim_from_a_distant_clock_aborts_without_an_accusation() {
        let (commitments, bits, bl) = six_items();
        for claim in [Holding::Missing, Holding::Refused] {
            for (offset, skewed) in [(CLOCK_SKEW_SECS + 1, true), (CLOCK_SKEW_SECS, false)] {
                let liar = PartyId::new(1).unwrap();
                let out = run3(|p| {
                    p.security = Security::Malicious;
                    let i = p.id.index();
                    let mut holding = vec![Holding::Held; 6];
                    let mut evidence = TestEvidence { ..DAMNING };
                    if p.id == liar {
                        holding[4] = claim;
                        evidence.now += offset;
                    }
                    let input = BatchShares {
                        holding,
                        value_bits: bits[i].clone(),
                        blinder: bl[i].clone(),
                    };
                    check_batch(p, &input, &commitments, &evidence)
                });
                for honest in [0, 2] {
                    match (&out[honest], skewed) {
                        (Err(MpcError::ClockSkew { from, seconds, .. }), true) => {
                            assert_eq!((*from, *seconds), (liar, offset));
                        }
                        (Err(MpcError::CheatingDetected { .. }), false) => {}
                        (other, _) => panic!("{claim:?} offset {offset}: {other:?}"),
                    }
                }
            }
        }
    }

    /// Malicious mode, a cheating party: every message of every party
    /// with a bit flipped or a value replaced (every fourth also dropped),
    /// the honest parties holding every receipt (as the services forward
    /// them). Every run aborts at an honest party: no honest party accepts
    /// a wrong value or one whose commitment does not match, and a
    /// cheater cannot even have an honest provider's item rejected (a
    /// false claim of missing shares or of a refusal is caught,
    /// [`false_claims_of_missing_shares_or_refusal_abort_when_evidence_contradicts_them`]).
    #[test]
    fn every_tampered_message_of_the_batch_check_aborts() {
        use std::time::Duration;
        use triad_mpc::testing::{run3_cheating, Fault};
        use triad_mpc::PartyId;

        let (commitments, bits, bl) = six_items();
        let n = commitments.len();
        let victim = |p: &mut Party| {
            p.security = Security::Malicious;
            let i = p.id.index();
            let input = BatchShares {
                holding: vec![Holding::Held; n],
                value_bits: bits[i].clone(),
                blinder: bl[i].clone(),
            };
            let got = check_batch(p, &input, &commitments, &DAMNING)?;
            triad_mpc::protocols::verify(p)?;
            Ok(got)
        };
        let sent = run3(|p| {
            victim(p).unwrap();
            p.net.stats().messages_sent
        });
        let mut runs = 0;
        for who in PartyId::ALL {
            for nth in 2..=sent[who.index()] {
                let mut faults = vec![
                    Fault::Flip {
                        at: 7 * nth as usize,
                        mask: 0x01,
                    },
                    Fault::Replace { at: 3 },
                ];
                if nth % 4 == 0 {
                    faults.push(Fault::Drop);
                }
                for fault in faults {
                    runs += 1;
                    let honest = run3_cheating(who, fault, nth, Duration::from_millis(300), victim);
                    let done: Vec<&BatchCheck> =
                        honest.iter().filter_map(|r| r.as_ref().ok()).collect();
                    assert!(
                        done.len() < 2,
                        "{who} {fault:?} on message {nth}: both honest parties finished with {:?}",
                        done[0].verdicts
                    );
                }
            }
        }
        eprintln!("{runs} tampered runs, each aborted at an honest party");
        assert!(runs > 300, "only {runs} runs");
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let out = run3(|p| {
            let input = BatchShares {
                holding: vec![Holding::Held],
                value_bits: Shares::zeros(1),
                blinder: Shares::zeros(1),
            };
            check_batch(p, &input, &[], &NoEvidence).is_err()
        });
        assert_eq!(out, [true; 3]);
    }
}
