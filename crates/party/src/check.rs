//! The per-batch MPC check of provider submissions.
//!
//! Each provider sends party `i` the components `(x_i, x_{i+1})` of its
//! value's 64-bit two's-complement word (XOR sharing) and of its blinder
//! (additive sharing in the BN254 scalar field). For a batch of `n`
//! submissions the parties, in a constant number of rounds:
//! 1. agree on which submissions all three received;
//! 2. check that overlapping components agree ([`check_client_input`]);
//! 3. inject the bits into the field and into Z_2^128 and weigh them
//!    (`v = sum_{j<63} 2^j b_j - 2^63 b_63`), so one sharing of the bits
//!    yields the value in both domains with no chance of disagreement;
//! 4. check `-2^52 <= v < 2^52`, the range the statistics support;
//! 5. recompute `Poseidon(v, blinder)` and open only whether it equals the
//!    attested commitment ([`open_is_zero`] opens a random multiple).
//!
//! Opened: the presence bitmap (public anyway), the consistency verdicts,
//! one range bit and one equality bit per submission. Nothing else.
//!
//! In malicious mode (`Party::security`) step 3 converts the bits with
//! [`b2a_fr`] and [`b2a_z128`] (masked components, every AND gate and
//! product checked, compared openings) instead of bit injection, which has
//! no check, and after steps 1 and 2 the parties compare digests of their
//! verdicts (a cheater cannot split the honest parties). Every party used
//! only components that opened the provider's commitments under the digest
//! all three signed receipts for ([`triad_wire::receipt`]), so an
//! inconsistency among present items is a lie by a party and aborts the
//! batch. What a malicious party can still do is claim an honest provider's
//! shares are missing, as a restarted party honestly would: the submission
//! is rejected as `shares_missing` (retryable) — never altered, and the
//! liar signed a receipt for what it claims not to have (docs/security.md).

use std::num::Wrapping;

use triad_mpc::protocols::binary::{bitslice, unpack_bits};
use triad_mpc::protocols::input::Submission;
use triad_mpc::protocols::{
    b2a_fr, b2a_z128, bit_inject, check_client_input, in_range, open, open_is_zero, poseidon2,
};
use triad_mpc::{Bits, Fr, MpcError, Party, Ring, Security, Shares, Z128, Z64};
use triad_stats::VALUE_BITS;
use triad_wire::messages::RejectReason;

/// One party's view of a batch, items in the coordinator's order. Items the
/// party never received hold zero components and `present = false`.
#[derive(Clone, Debug)]
pub struct BatchShares {
    pub present: Vec<bool>,
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

/// ANDs this party's presence bitmap with both peers'. 1 round.
fn agree_presence(p: &mut Party, present: &[bool]) -> Result<Vec<bool>, MpcError> {
    p.rounds += 1;
    let mine: Vec<u8> = present.iter().map(|&b| b as u8).collect();
    let (prev, next) = (p.prev(), p.next());
    for to in [prev, next] {
        p.net.send(to, mine.clone())?;
    }
    let mut all = present.to_vec();
    for from in [prev, next] {
        let v = p.net.recv(from)?;
        if v.len() != present.len() {
            return Err(MpcError::WrongLength {
                from,
                expected: present.len(),
                got: v.len(),
            });
        }
        if v.iter().any(|b| *b > 1) {
            return Err(MpcError::MalformedElement { from });
        }
        all.iter_mut().zip(v).for_each(|(a, b)| *a &= b == 1);
    }
    Ok(all)
}

/// Compares the digest of this party's `verdicts` with both peers' (1
/// round): a cheater that sent the two honest parties different bitmaps
/// in an agreement step is caught before their views diverge further.
fn echo_verdicts(p: &mut Party, verdicts: &[&[bool]]) -> Result<(), MpcError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for v in verdicts {
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.iter().map(|&b| b as u8).collect::<Vec<u8>>());
    }
    let mine = h.finalize().to_vec();
    p.rounds += 1;
    let (prev, next) = (p.prev(), p.next());
    for to in [prev, next] {
        p.net.send(to, mine.clone())?;
    }
    for from in [prev, next] {
        if p.net.recv(from)? != mine {
            return Err(MpcError::CheatingDetected {
                check: "verdict echo",
                detail: format!("party {from} reached other presence or consistency verdicts"),
            });
        }
    }
    Ok(())
}

/// Checks a batch against the attested `commitments` (one per item).
pub fn check_batch(
    p: &mut Party,
    input: &BatchShares,
    commitments: &[Fr],
) -> Result<BatchCheck, MpcError> {
    let n = commitments.len();
    if input.present.len() != n || input.value_bits.len() != n || input.blinder.len() != n {
        return Err(MpcError::InvalidArgument("batch inputs of unequal lengths"));
    }
    let present = agree_presence(p, &input.present)?;
    let subs: Vec<Submission> = (0..n)
        .map(|k| Submission {
            id: k as u64,
            range: k..k + 1,
        })
        .collect();
    let bits_ok = check_client_input(p, &input.value_bits, &subs)?;
    let blinder_ok = check_client_input(p, &input.blinder, &subs)?;
    if p.security == Security::Malicious {
        echo_verdicts(p, &[&present, &bits_ok, &blinder_ok])?;
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
            if !present[k] {
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

    /// How a test item is damaged before the check.
    #[derive(Clone, Copy, Debug)]
    enum Fault {
        None,
        Missing(usize),
        Inconsistent(usize),
        WrongBlinder,
        WrongValue,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            4 => Just(Fault::None),
            1 => (0usize..3).prop_map(Fault::Missing),
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
        let mut present = [vec![true; n], vec![true; n], vec![true; n]];
        for (k, (_, f)) in items.iter().enumerate() {
            match *f {
                Fault::Missing(i) => {
                    present[i][k] = false;
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
                present: present[i].clone(),
                value_bits: bits[i].clone(),
                blinder: bl[i].clone(),
            };
            let got = check_batch(p, &input, &commitments);
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

    /// Malicious mode, a cheating party: every message of every party
    /// with a bit flipped or a value replaced (every fourth also dropped).
    /// No honest party accepts a wrong value or a value whose commitment
    /// does not match: each run either aborts or ends with the honest
    /// verdicts, except that a cheater can make items rejected as missing
    /// (it lies in the presence exchange, as a restarted party would say
    /// the truth; docs/security.md). Lies about consistency abort. The
    /// count of runs that only rejected is printed.
    #[test]
    fn every_tampered_message_of_the_batch_check_aborts_or_only_rejects() {
        use std::time::Duration;
        use triad_mpc::testing::{run3_cheating, Fault};
        use triad_mpc::PartyId;

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
        let n = values.len();
        let victim = |p: &mut Party| {
            p.security = Security::Malicious;
            let i = p.id.index();
            let input = BatchShares {
                present: vec![true; n],
                value_bits: bits[i].clone(),
                blinder: bl[i].clone(),
            };
            let got = check_batch(p, &input, &commitments)?;
            triad_mpc::protocols::verify(p)?;
            Ok(got)
        };
        let sent = run3(|p| {
            victim(p).unwrap();
            p.net.stats().messages_sent
        });
        let (mut runs, mut rejected_only) = (0, 0);
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
                    if done.len() < 2 {
                        continue; // at least one honest party aborted
                    }
                    // Both honest parties finished: the same verdicts, each
                    // the honest one (accepted) or a rejection as missing.
                    assert_eq!(done[0].verdicts, done[1].verdicts, "{who} {fault:?} #{nth}");
                    let mut changed = false;
                    for v in &done[0].verdicts {
                        match v {
                            None => {}
                            Some(RejectReason::SharesMissing) => changed = true,
                            other => panic!("{who} {fault:?} #{nth}: verdict {other:?}"),
                        }
                    }
                    assert!(
                        changed,
                        "{who} {fault:?} on message {nth}: no abort and no effect"
                    );
                    rejected_only += 1;
                }
            }
        }
        eprintln!("{runs} tampered runs, {rejected_only} ended in rejections without an abort");
        assert!(runs > 300, "only {runs} runs");
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let out = run3(|p| {
            let input = BatchShares {
                present: vec![true],
                value_bits: Shares::zeros(1),
                blinder: Shares::zeros(1),
            };
            check_batch(p, &input, &[]).is_err()
        });
        assert_eq!(out, [true; 3]);
    }
}
