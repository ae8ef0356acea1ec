//! The MPC step against its plaintext rule, in the three-party in-memory
//! harness, with random and edge inputs; and what the parties see.

mod common;

use proptest::prelude::*;
use rand::SeedableRng;
use triad_mpc::protocols::arithmetic::open;
use triad_mpc::protocols::binary::unpack_bits;
use triad_mpc::share::share_plain;
use triad_mpc::testing::run3;
use triad_mpc::{Bits, Fr, Party, Security, Shares, Z128};
use triad_polls::mpc::step::StepRing;
use triad_polls::mpc::{apply_plain, apply_step, OneHot, PlainState, StepInput};
use triad_polls::Mode;

/// The step's two number systems as the tests drive them: Z_2^128
/// (semi-honest) and `F_r` (malicious, every product and gate checked).
trait Num: StepRing {
    const SECURITY: Security;
    fn back(&self) -> u64;
}

impl Num for Z128 {
    const SECURITY: Security = Security::SemiHonest;
    fn back(&self) -> u64 {
        self.0 as u64
    }
}

impl Num for Fr {
    const SECURITY: Security = Security::Malicious;
    fn back(&self) -> u64 {
        use ark_ff::PrimeField;
        let limbs = self.into_bigint().0;
        assert!(limbs[1..].iter().all(|&l| l == 0), "a value below 2^64");
        limbs[0]
    }
}

/// One record: state, key_ok, message (nonce, option, weight).
type Case = (PlainState, bool, u64, u64, u64);

fn pack(bits: &[bool]) -> Vec<Bits> {
    let mut w = vec![Bits(0); bits.len().div_ceil(64).max(1)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            w[i / 64].0 |= 1 << (i % 64);
        }
    }
    w
}

/// The three parties' inputs for `cases`, shared with a fixed seed; with
/// `onehot`, the options' one-hot bits and values shared too and the
/// nonce test folded into `key_ok` (as the checked scan passes them).
fn shared_inputs<T: Num>(cases: &[Case], onehot: bool) -> [StepInput<T>; 3] {
    let v = cases[0].0.votes.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut col = |f: &dyn Fn(&Case) -> u64| {
        share_plain(
            &cases.iter().map(|c| T::from_u64(f(c))).collect::<Vec<_>>(),
            &mut rng,
        )
    };
    let nonce = col(&|c| c.0.nonce);
    let balance = col(&|c| c.0.balance);
    let votes: Vec<[Shares<T>; 3]> = (0..v).map(|j| col(&|c| c.0.votes[j])).collect();
    let msg_nonce = col(&|c| c.2);
    let msg_option = col(&|c| c.3);
    let msg_weight = col(&|c| c.4);
    let nonce_ok = |c: &Case| !onehot || c.0.nonce.checked_add(1) == Some(c.2);
    let key_ok = share_plain(
        &pack(&cases.iter().map(|c| c.1 && nonce_ok(c)).collect::<Vec<_>>()),
        &mut rand::rngs::StdRng::seed_from_u64(8),
    );
    let np = cases.len().div_ceil(64) * 64;
    let hot: Vec<Vec<bool>> = (0..v as u64)
        .map(|j| cases.iter().map(|c| c.3 == j).collect())
        .collect();
    let hot_bits = share_plain(
        &hot.iter().flat_map(|h| pack(h)).collect::<Vec<_>>(),
        &mut rand::rngs::StdRng::seed_from_u64(9),
    );
    let hot_values = share_plain(
        &hot.iter()
            .flat_map(|h| (0..np).map(|k| T::from_u64(u64::from(h.get(k) == Some(&true)))))
            .collect::<Vec<_>>(),
        &mut rand::rngs::StdRng::seed_from_u64(10),
    );
    [0, 1, 2].map(|i| StepInput {
        nonce: nonce[i].clone(),
        balance: balance[i].clone(),
        votes: votes.iter().map(|c| c[i].clone()).collect(),
        key_ok: key_ok[i].clone(),
        msg_nonce: msg_nonce[i].clone(),
        msg_option: msg_option[i].clone(),
        msg_weight: msg_weight[i].clone(),
        tested: onehot.then(|| OneHot {
            bits: hot_bits[i].clone(),
            values: hot_values[i].clone(),
        }),
    })
}

/// Runs the step on shares of `cases` and opens everything (tests only),
/// in `T`'s mode; in malicious mode nothing is left unchecked.
fn run<T: Num>(mode: Mode, cases: &[Case]) -> Vec<(bool, PlainState)> {
    run_with::<T>(mode, cases, false)
}

/// [`run`], the one-hot options given or computed by the step.
fn run_with<T: Num>(mode: Mode, cases: &[Case], onehot: bool) -> Vec<(bool, PlainState)> {
    let inputs = shared_inputs::<T>(cases, onehot);
    let n = cases.len();
    let outs = run3(|p: &mut Party| {
        p.security = T::SECURITY;
        let out = apply_step(p, mode, &inputs[p.id.index()]).unwrap();
        let valid = unpack_bits(&open(p, &out.valid).unwrap(), n);
        let nonce = open(p, &out.nonce).unwrap();
        let balance = open(p, &out.balance).unwrap();
        let votes: Vec<Vec<T>> = out.votes.iter().map(|c| open(p, c).unwrap()).collect();
        assert_eq!(p.unchecked_gates() + p.unchecked_products(), 0);
        (0..n)
            .map(|r| {
                (
                    valid[r],
                    PlainState {
                        nonce: nonce[r].back(),
                        balance: balance[r].back(),
                        votes: votes.iter().map(|c| c[r].back()).collect(),
                    },
                )
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[1], outs[2]);
    outs[0].clone()
}

/// Over Z_2^128 (semi-honest) and over `F_r` (malicious), the latter also
/// with the one-hot options given (as the checked scan runs it).
fn check(mode: Mode, cases: &[Case]) {
    let ring = run::<Z128>(mode, cases);
    let field = run::<Fr>(mode, cases);
    let given = run_with::<Fr>(mode, cases, true);
    for (((c, r), f), g) in cases.iter().zip(&ring).zip(&field).zip(&given) {
        let want = apply_plain(mode, &c.0, c.1, c.2, c.3, c.4);
        assert_eq!(*r, want, "Z_2^128 {mode:?} {c:?}");
        assert_eq!(*f, want, "F_r {mode:?} {c:?}");
        assert_eq!(*g, want, "F_r, one-hot given, {mode:?} {c:?}");
    }
}

const MAX50: u64 = (1 << 50) - 1;

#[test]
fn edge_values_match_the_plaintext_rule() {
    let s = |nonce, balance, votes: &[u64]| PlainState {
        nonce,
        balance,
        votes: votes.to_vec(),
    };
    let cases: Vec<Case> = vec![
        // valid: replace weight 3 by 5 (QV: 100 + 9 − 25 = 84 left)
        (s(0, 100, &[3, 0, 0]), true, 1, 0, 5),
        // wrong nonces: 0, 2, and the maximum
        (s(0, 100, &[0, 0, 0]), true, 0, 1, 1),
        (s(0, 100, &[0, 0, 0]), true, 2, 1, 1),
        (s(4, 100, &[0, 0, 0]), true, MAX50, 1, 1),
        // option V−1 valid, V and the maximum out of range
        (s(1, 100, &[0, 0, 0]), true, 2, 2, 1),
        (s(1, 100, &[0, 0, 0]), true, 2, 3, 1),
        (s(1, 100, &[0, 0, 0]), true, 2, MAX50, 1),
        // credits: exactly enough, one short, a huge weight, budget 0
        (s(0, 25, &[0, 0, 0]), true, 1, 1, 5),
        (s(0, 24, &[0, 0, 0]), true, 1, 1, 5),
        (s(0, u64::MAX, &[0, 0, 0]), true, 1, 1, MAX50),
        (s(0, 0, &[0, 0, 0]), true, 1, 0, 0),
        // refunds the old weight before charging the new one
        (s(0, 0, &[7, 0, 0]), true, 1, 0, 7),
        // phase 1 said no: nothing changes
        (s(0, 100, &[0, 0, 0]), false, 1, 0, 1),
        // the largest nonce, and a balance near 2^64 (balance + spent stays
        // below the budget < 2^64: the poll's invariant)
        (
            s(MAX50 - 1, u64::MAX - 1000, &[30, 0, 0]),
            true,
            MAX50,
            0,
            0,
        ),
        (
            s(MAX50 - 1, u64::MAX - 1000, &[30, 0, 0]),
            true,
            MAX50,
            1,
            2,
        ),
    ];
    check(Mode::Quadratic, &cases);
    check(Mode::Linear, &cases);
}

#[test]
fn more_than_one_word_of_records() {
    let cases: Vec<Case> = (0..130u64)
        .map(|i| {
            (
                PlainState {
                    nonce: i % 3,
                    balance: 10 * i,
                    votes: vec![i % 4, 0],
                },
                i % 5 != 0,
                i % 3 + 1 - (i % 7 == 0) as u64,
                i % 3,
                i % 6,
            )
        })
        .collect();
    check(Mode::Quadratic, &cases);
}

fn arb_case(v: usize) -> impl Strategy<Value = Case> {
    (
        0..4u64,
        // A reachable state: balance + cost(votes) < 2^64.
        prop_oneof![0..200u64, Just(0), Just(u64::MAX - 1000)],
        proptest::collection::vec(0..12u64, v),
        any::<bool>(),
        0..5u64,
        prop_oneof![0..(v as u64 + 2), Just(MAX50)],
        prop_oneof![0..15u64, Just(MAX50)],
    )
        .prop_map(|(nonce, balance, votes, key_ok, mn, o, w)| {
            (
                PlainState {
                    nonce,
                    balance,
                    votes,
                },
                key_ok,
                mn,
                o,
                w,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Random batches: every output equals the plaintext rule's.
    #[test]
    fn random_steps_match_the_plaintext_rule(
        cases in (1usize..5).prop_flat_map(|v| proptest::collection::vec(arb_case(v), 1..40)),
        quadratic in any::<bool>(),
    ) {
        let mode = if quadratic { Mode::Quadratic } else { Mode::Linear };
        check(mode, &cases);
    }
}

/// What each party receives during a step does not depend on the inputs:
/// the same number of messages of the same sizes, whatever the votes and
/// whichever messages are valid (nothing is opened inside the step).
#[test]
fn the_traffic_of_a_step_does_not_depend_on_the_votes() {
    fn traffic<T: Num>(cases: &[Case]) -> [(u64, u64); 3] {
        let inputs = shared_inputs::<T>(cases, false);
        run3(|p| {
            p.security = T::SECURITY;
            let before = p.net.stats();
            apply_step(p, Mode::Quadratic, &inputs[p.id.index()]).unwrap();
            triad_mpc::protocols::verify(p).unwrap();
            let after = p.net.stats();
            (
                after.bytes_sent - before.bytes_sent,
                after.messages_sent - before.messages_sent,
            )
        })
    }
    let st = |b| PlainState {
        nonce: 0,
        balance: b,
        votes: vec![0, 0, 0],
    };
    let all_valid: Vec<Case> = (0..20).map(|i| (st(100), true, 1, i % 3, 3)).collect();
    let all_invalid: Vec<Case> = (0..20).map(|i| (st(0), false, 9, 7 + i, MAX50)).collect();
    assert_eq!(traffic::<Z128>(&all_valid), traffic::<Z128>(&all_invalid));
    assert_eq!(traffic::<Fr>(&all_valid), traffic::<Fr>(&all_invalid));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// `apply_plain` is `PollState::process_message` on the fields it sees:
    /// one voter's messages (signed by the voter or by someone else, with
    /// random nonces, options and weights) give the same verdicts, ballot
    /// and balance, with `key_ok` standing for the signature check.
    #[test]
    fn the_plaintext_step_is_process_message(
        msgs in proptest::collection::vec((any::<bool>(), 0..4u64, 0..4u64, 0..8u64), 1..8),
        quadratic in any::<bool>(),
        credits in 0..60u64,
    ) {
        let mode = if quadratic { Mode::Quadratic } else { Mode::Linear };
        let params = common::params(3, mode);
        let mut state = triad_polls::PollState::new(&params, &[common::signup(1, credits)]);
        let mut plain = PlainState { nonce: 0, balance: credits, votes: vec![0, 0, 0] };
        for (by_voter, nonce, option, weight) in msgs {
            let signer = if by_voter { 1 } else { 2 };
            let m = common::vote(1, signer, option, weight, nonce, 1);
            let verdict = state.process_message(&params, &m).is_ok();
            let (valid, next) = apply_plain(mode, &plain, by_voter, nonce, option, weight);
            prop_assert_eq!(valid, verdict);
            plain = next;
            prop_assert_eq!(plain.nonce, state.ballots()[1].nonce);
            prop_assert_eq!(&plain.votes, &state.ballots()[1].votes);
            prop_assert_eq!(plain.balance, state.leaves()[1].voice_credit_balance);
        }
    }
}

/// The step over `F_r` in malicious mode against a cheating party: every
/// third message of every party (rotating through a flipped bit, a
/// replaced value and, on every 45th, a drop) makes an honest party abort,
/// and no honest party opens anything but the honest outputs.
#[test]
fn a_cheating_party_cannot_change_a_checked_step() {
    use std::time::Duration;
    use triad_mpc::testing::{assert_caught, run3_cheating, Fault};
    use triad_mpc::{MpcError, PartyId};
    let st = |nonce, balance, votes: &[u64]| PlainState {
        nonce,
        balance,
        votes: votes.to_vec(),
    };
    let cases: Vec<Case> = vec![
        (st(0, 100, &[3, 0]), true, 1, 0, 5),
        (st(0, 24, &[0, 0]), true, 1, 1, 5),
        (st(2, 9, &[0, 1]), true, 3, 1, 3),
        (st(0, 100, &[0, 0]), false, 1, 0, 1),
    ];
    let inputs = shared_inputs::<Fr>(&cases, false);
    let victim = |p: &mut Party| -> Result<Vec<Fr>, MpcError> {
        p.security = Security::Malicious;
        let out = apply_step(p, Mode::Quadratic, &inputs[p.id.index()])?;
        let mut opened = open(p, &out.valid_ring)?;
        opened.extend(open(p, &out.balance)?);
        for c in &out.votes {
            opened.extend(open(p, c)?);
        }
        Ok(opened)
    };
    let honest = run3(|p| victim(p).unwrap());
    let sent = run3(|p| {
        victim(p).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        for nth in (2..=sent[who.index()]).step_by(3) {
            let fault = match (nth / 3) % 3 {
                _ if nth % 45 == 2 => Fault::Drop,
                0 => Fault::Flip {
                    at: nth as usize,
                    mask: 1 << (nth % 8),
                },
                _ => Fault::Replace {
                    at: 3 * nth as usize,
                },
            };
            runs += 1;
            let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
            assert_caught(
                &out,
                &honest[0],
                format!("{who} {fault:?} on message {nth}"),
            );
        }
    }
    assert!(runs > 100, "only {runs} runs");
}
