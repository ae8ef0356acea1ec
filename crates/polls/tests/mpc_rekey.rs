//! Re-keying epochs over shares against the oracle (`triad_polls::rekey`),
//! in the in-memory three-party harness: the scenarios of `tests/rekey.rs`
//! and random interleavings (proptest), comparing the leaves' active bits
//! and balances (opened here, for the test only) and the final tally; and
//! what each party sees with valid versus invalid deactivations.

mod common;

use common::*;
use proptest::prelude::*;
use rand::SeedableRng;
use triad_maci::Fr;
use triad_mpc::protocols::arithmetic::open;
use triad_mpc::testing::run3;
use triad_mpc::{Party, Security};
use triad_polls::mpc::process::process_shared_registry;
use triad_polls::mpc::rekey::{
    deactivate_shared, rekey_shared, share_deactivations, share_rekeys, RekeyError, SharedRegistry,
};
use triad_polls::mpc::{encode, share_messages, PlainMessage};
use triad_polls::rekey::{process_poll_with_epochs, Epoch, Rekey};
use triad_polls::{Message, PollParams, SignUp, Tally};

/// What one party ends with: per-epoch re-key verdicts, the leaves'
/// opened active bits and balances, and the tally.
type Run = (
    Vec<Vec<Result<u64, RekeyError>>>,
    Vec<bool>,
    Vec<u64>,
    Tally,
);

fn run_party(
    p: &mut Party,
    params: &PollParams,
    signups: &[SignUp],
    epochs: &[Epoch],
    messages: &[Message],
    seed: u64,
    row_block: usize,
) -> Run {
    let i = p.id.index();
    let mut reg = SharedRegistry::new(p, signups);
    reg.row_block = row_block;
    let mut verdicts = Vec::new();
    for (e, epoch) in epochs.iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + e as u64);
        let d = share_deactivations(&epoch.deactivations, &mut rng).unwrap();
        let times: Vec<u64> = epoch.deactivations.iter().map(|m| m.timestamp).collect();
        deactivate_shared(p, params, &mut reg, &d[i], &times).unwrap();
        let r = share_rekeys(&epoch.rekeys, &mut rng);
        let keys: Vec<_> = epoch.rekeys.iter().map(|r| r.new_key).collect();
        let times: Vec<u64> = epoch.rekeys.iter().map(|r| r.timestamp).collect();
        verdicts.push(rekey_shared(p, params, &mut reg, &r[i], &keys, &times, None).unwrap());
    }
    let n = reg.leaves();
    let active = open(p, &reg.active).unwrap();
    let active: Vec<bool> = (0..n)
        .map(|k| (active[k / 64].0 >> (k % 64)) & 1 == 1)
        .collect();
    let balance: Vec<u64> = open(p, &reg.balance).unwrap().iter().map(|b| b.0).collect();
    let plain: Vec<PlainMessage> = messages.iter().map(|m| encode(m).unwrap()).collect();
    let sh = share_messages(&plain, &mut rand::rngs::StdRng::seed_from_u64(seed + 100));
    let times: Vec<u64> = messages.iter().map(|m| m.timestamp).collect();
    let (tally, _) = process_shared_registry(p, params, &reg, &times, &sh[i]).unwrap();
    (verdicts, active, balance, tally)
}

/// Runs the epochs and the votes over shares and checks every party's
/// result against the oracle.
/// In both modes: malicious, the epochs (F_r and AND gates) are checked
/// and so are the votes' phases 2–4 (`mpc::checked`).
fn check(params: &PollParams, signups: &[SignUp], epochs: &[Epoch], messages: &[Message]) -> Tally {
    let t = check_blocks(params, signups, epochs, messages, 512);
    assert_eq!(
        check_in(params, signups, epochs, messages, 512, Security::Malicious),
        t
    );
    t
}

/// [`check`] with `row_block` rows of the bit matrices per batch.
fn check_blocks(
    params: &PollParams,
    signups: &[SignUp],
    epochs: &[Epoch],
    messages: &[Message],
    row_block: usize,
) -> Tally {
    check_in(
        params,
        signups,
        epochs,
        messages,
        row_block,
        Security::SemiHonest,
    )
}

fn check_in(
    params: &PollParams,
    signups: &[SignUp],
    epochs: &[Epoch],
    messages: &[Message],
    row_block: usize,
    security: Security,
) -> Tally {
    let out = run3(|p| {
        p.security = security;
        let run = run_party(p, params, signups, epochs, messages, 9, row_block);
        // Nothing recorded is left unchecked once the tally is open.
        assert_eq!((p.unchecked_gates(), p.unchecked_products()), (0, 0));
        if security == Security::Malicious && !epochs.iter().all(|e| e.rekeys.is_empty()) {
            assert!(p.checks.products > 0, "the re-keys' products were checked");
        }
        run
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);
    let (verdicts, active, balance, tally) = out[0].clone();
    let (want, want_epochs, reg) = process_poll_with_epochs(params, signups, epochs, messages);
    let want_verdicts: Vec<Vec<Result<u64, RekeyError>>> = want_epochs
        .iter()
        .map(|e| {
            e.rekeys
                .iter()
                .map(|r| r.map(|(i, _)| i).map_err(RekeyError::Refused))
                .collect()
        })
        .collect();
    assert_eq!(verdicts, want_verdicts, "public re-key verdicts");
    assert_eq!(
        active,
        reg.leaves().iter().map(|l| l.active).collect::<Vec<_>>(),
        "active bits"
    );
    // A leaf's balance matters only while it is active.
    for (k, l) in reg.leaves().iter().enumerate() {
        if l.active {
            assert_eq!(balance[k], l.voice_credits, "balance of leaf {}", k + 1);
        }
    }
    assert_eq!(tally, want.tally);
    tally
}

#[test]
fn the_bribery_scenario_over_shares_equals_the_oracle() {
    let p = qv(3);
    let signups = [signup(1, 100), signup(2, 100), signup(3, 64)];
    let epochs = [
        Epoch {
            deactivations: vec![
                deactivation(1, 1, 77), // valid
                deactivation(1, 1, 78), // second of leaf 1: invalid
                deactivation(2, 3, 79), // not leaf 2's key: invalid
            ],
            rekeys: vec![rekey(77, 50), rekey(79, 51), rekey(77, 52)],
        },
        Epoch {
            deactivations: vec![deactivation(3, 3, 80)],
            rekeys: vec![rekey(81, 53), rekey(80, 54)],
        },
    ];
    let messages = [
        vote(1, 1, 0, 5, 1, 1),    // the briber with the sold key
        vote(2, 2, 1, 4, 1, 2),    // honest
        vote(4, 50, 2, 10, 1, 50), // re-keyed voter (leaf 4)
        vote(5, 51, 0, 9, 1, 51),  // failed re-key: never counts
        vote(7, 54, 1, 8, 1, 54),  // leaf 3's re-key (leaf 7), 64 credits
        vote(3, 3, 0, 1, 1, 3),    // deactivated leaf 3: never counts
    ];
    let t = check(&p, &signups, &epochs, &messages);
    assert_eq!(t.votes, vec![0, 4 + 8, 10]);
    // The same with the matrices cut into blocks of 1 and 2 rows.
    for block in [1, 2] {
        assert_eq!(check_blocks(&p, &signups, &epochs, &messages, block), t);
    }
}

#[test]
fn epochs_without_deactivations_or_rekeys_and_empty_polls() {
    let p = qv(2);
    check(&p, &[], &[Epoch::default()], &[]);
    check(
        &p,
        &[signup(1, 10)],
        &[Epoch {
            deactivations: vec![],
            rekeys: vec![rekey(5, 50)],
        }],
        &[vote(1, 1, 1, 3, 1, 1)],
    );
    check(
        &p,
        &[signup(1, 10)],
        &[Epoch {
            deactivations: vec![deactivation(1, 1, 5)],
            rekeys: vec![],
        }],
        &[vote(1, 1, 1, 3, 1, 1)],
    );
}

/// One sign-up (leaf 1, 10 credits), its valid deactivation with secret
/// 5, and the re-key of secret 5 to key 50.
fn one_leaf_rekeyed() -> (PollParams, [SignUp; 1], [Message; 1], [Rekey; 1]) {
    (
        qv(2),
        [signup(1, 10)],
        [deactivation(1, 1, 5)],
        [Rekey {
            secret: Fr::from(5u64),
            new_key: pk(50),
            timestamp: SENT,
        }],
    )
}

#[test]
fn malformed_rekeys_and_deactivations_are_refused_publicly() {
    let (p, signups, d, r) = one_leaf_rekeyed();
    let out = run3(|party| {
        let i = party.id.index();
        let mut reg = SharedRegistry::new(party, &signups);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        // The client lies about the bits of c (deactivation) and of c*.
        let ds = share_deactivations(&d, &mut rng).unwrap();
        // Flip bit 0 of word 0 in one component, consistently at the two
        // parties holding it (party 0's a is party 2's b).
        let bad = {
            let mut x = ds[i].clone();
            if i == 0 {
                x.c_bits.a[0].0 ^= 1;
            }
            if i == 2 {
                x.c_bits.b[0].0 ^= 1;
            }
            x
        };
        let st = deactivate_shared(party, &p, &mut reg, &bad, &[SENT]).unwrap();
        let mut rs = share_rekeys(&r, &mut rng);
        if i == 0 {
            rs[0].c_bits.a[0].0 ^= 1;
        }
        if i == 2 {
            rs[2].c_bits.b[0].0 ^= 1;
        }
        let v = rekey_shared(party, &p, &mut reg, &rs[i], &[pk(50)], &[SENT], None).unwrap();
        (st.entered, v, reg.leaves(), reg.list_len())
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[0], (0, vec![Err(RekeyError::Malformed)], 1, 0));
}

/// Deactivations and re-keys whose copies of a component differ between
/// its two holders (the commitment bits, the command, the secret): in
/// semi-honest mode the client's fault, dropped (nothing enters the list,
/// the re-key is refused as malformed); in malicious mode, where the
/// services bind each component to one logged commitment, a party's lie:
/// every party aborts on the share-set check, before anything else.
#[test]
fn inconsistent_copies_drop_the_message_or_abort_in_malicious_mode() {
    let (p, signups, d, r) = one_leaf_rekeyed();
    // Which copy party 1 alters: 0 the deactivation's commitment bits, 1
    // its command words, 2 the re-key's secret, 3 the re-key's bits.
    for what in 0..4 {
        for security in [Security::SemiHonest, Security::Malicious] {
            let out = run3(|party| {
                party.security = security;
                let i = party.id.index();
                let mut reg = SharedRegistry::new(party, &signups);
                let mut rng = rand::rngs::StdRng::seed_from_u64(3);
                let mut ds = share_deactivations(&d, &mut rng).unwrap()[i].clone();
                let mut rs = share_rekeys(&r, &mut rng)[i].clone();
                if i == 1 {
                    match what {
                        0 => ds.c_bits.a[0].0 ^= 1,
                        1 => ds.msgs.words.b[2].0 ^= 1 << 40,
                        2 => rs.secret.a[0] += Fr::from(1u64),
                        _ => rs.c_bits.b[3].0 ^= 1,
                    }
                }
                let st = deactivate_shared(party, &p, &mut reg, &ds, &[SENT])?;
                let v = rekey_shared(party, &p, &mut reg, &rs, &[pk(50)], &[SENT], None)?;
                Ok::<_, triad_mpc::MpcError>((st.entered, v))
            });
            for o in &out {
                match (security, o) {
                    (Security::SemiHonest, Ok((entered, v))) => {
                        if what < 2 {
                            // The re-key then matches nothing: a new,
                            // inactive leaf (not public).
                            assert_eq!(*entered, 0, "case {what}");
                            assert_eq!(v, &vec![Ok(2)], "case {what}");
                        } else {
                            assert_eq!(*entered, 1, "case {what}");
                            assert_eq!(v, &vec![Err(RekeyError::Malformed)], "case {what}");
                        }
                    }
                    (
                        Security::Malicious,
                        Err(triad_mpc::MpcError::CheatingDetected { check, .. }),
                    ) => assert_eq!(*check, "input consistency", "case {what}"),
                    (_, o) => panic!("case {what}, {security:?}: {o:?}"),
                }
            }
        }
    }
}

/// A random epoch: deactivations by leaves 1..=3 with right or wrong keys
/// and small secrets, re-keys with small secrets (so matches, misses and
/// repeats all occur).
fn arb_epoch() -> impl Strategy<Value = Epoch> {
    let d = (1u64..=4, 1u8..=4, 1u64..=4).prop_map(|(i, k, s)| deactivation(i, k, s));
    let r = (1u64..=5, 50u8..=53).prop_map(|(s, k)| rekey(s, k));
    (
        proptest::collection::vec(d, 0..4),
        proptest::collection::vec(r, 0..3),
    )
        .prop_map(|(deactivations, rekeys)| Epoch {
            deactivations,
            rekeys,
        })
}

fn arb_vote() -> impl Strategy<Value = Message> {
    // Leaves 1..=8 (sign-ups and re-key leaves), signed with a sign-up key
    // or a re-key key.
    (1u64..=8, prop_oneof![1u8..=3, 50u8..=53], 0u64..2, 0u64..11)
        .prop_map(|(i, k, o, w)| vote(i, k, o, w, 1, k))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn random_interleavings_equal_the_oracle(
        epochs in proptest::collection::vec(arb_epoch(), 1..3),
        votes in proptest::collection::vec(arb_vote(), 0..6),
    ) {
        let p = qv(2);
        let signups = [signup(1, 100), signup(2, 50), signup(3, 25)];
        check_blocks(&p, &signups, &epochs, &votes, 2);
    }
}

/// The services' rule (`rekey_shared` with the claimed nullifiers, against
/// `Registry::rekey_logged`): every logged re-key appends a leaf; one whose
/// claimed nullifier is wrong, or repeats one, appends an inactive leaf.
/// An epoch as the services log it: deactivations, then re-keys each with
/// the nullifier its voter claimed.
type LoggedEpoch = (Vec<Message>, Vec<(Rekey, Fr)>);

fn check_logged(signups: &[SignUp], epochs: &[LoggedEpoch]) {
    let p = qv(2);
    let out = run3(|party| {
        let i = party.id.index();
        let mut reg = SharedRegistry::new(party, signups);
        reg.row_block = 2;
        let mut verdicts = Vec::new();
        for (e, (deacts, rekeys)) in epochs.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(40 + e as u64);
            let d = share_deactivations(deacts, &mut rng).unwrap();
            let times: Vec<u64> = deacts.iter().map(|m| m.timestamp).collect();
            deactivate_shared(party, &p, &mut reg, &d[i], &times).unwrap();
            let plain: Vec<Rekey> = rekeys.iter().map(|(r, _)| r.clone()).collect();
            let claims: Vec<Fr> = rekeys.iter().map(|(_, c)| *c).collect();
            let r = share_rekeys(&plain, &mut rng);
            let keys: Vec<_> = plain.iter().map(|r| r.new_key).collect();
            let times: Vec<u64> = plain.iter().map(|r| r.timestamp).collect();
            verdicts.push(
                rekey_shared(party, &p, &mut reg, &r[i], &keys, &times, Some(&claims)).unwrap(),
            );
        }
        let n = reg.leaves();
        let active = open(party, &reg.active).unwrap();
        let active: Vec<bool> = (0..n)
            .map(|k| (active[k / 64].0 >> (k % 64)) & 1 == 1)
            .collect();
        let balance: Vec<u64> = open(party, &reg.balance)
            .unwrap()
            .iter()
            .map(|b| b.0)
            .collect();
        (verdicts, active, balance)
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);
    let (verdicts, active, balance) = out[0].clone();
    let mut reg = triad_polls::rekey::Registry::new(signups);
    let mut index = signups.len() as u64;
    for ((deacts, rekeys), v) in epochs.iter().zip(&verdicts) {
        reg.deactivate(&p, deacts);
        reg.rekey_logged(&p, rekeys);
        // Every logged re-key has the next state index, whatever happens.
        assert_eq!(v.len(), rekeys.len());
        for (r, verdict) in v.iter().enumerate() {
            index += 1;
            if let Ok(i) = verdict {
                assert_eq!(*i, index, "re-key {r}'s state index");
            }
        }
    }
    assert_eq!(reg.leaves().len() as u64, index);
    let want: Vec<bool> = reg.leaves().iter().map(|l| l.active).collect();
    assert_eq!(active, want, "active bits");
    for (k, l) in reg.leaves().iter().enumerate() {
        if l.active {
            assert_eq!(balance[k], l.voice_credits, "balance of leaf {}", k + 1);
        }
    }
}

fn claim(r: &Rekey, honest: bool) -> Fr {
    let n = triad_polls::rekey::rekey_nullifier(&r.secret, POLL);
    if honest {
        n
    } else {
        n + Fr::from(1u64)
    }
}

#[test]
fn a_logged_rekey_with_a_wrong_claimed_nullifier_appends_an_inactive_leaf() {
    let signups = [signup(1, 100), signup(2, 50)];
    let good = rekey(77, 50);
    let wrong = rekey(78, 51);
    let epochs = vec![(
        vec![deactivation(1, 1, 77), deactivation(2, 2, 78)],
        vec![
            (good.clone(), claim(&good, true)),
            (wrong.clone(), claim(&wrong, false)),
        ],
    )];
    check_logged(&signups, &epochs);
    let mut reg = triad_polls::rekey::Registry::new(&signups);
    reg.deactivate(&qv(2), &epochs[0].0);
    assert_eq!(reg.rekey_logged(&qv(2), &epochs[0].1), vec![true, false]);
    assert_eq!(reg.leaves().len(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn logged_rekeys_equal_the_oracle(
        epochs in proptest::collection::vec(
            (arb_epoch(), proptest::collection::vec(any::<bool>(), 3)), 1..3),
    ) {
        let signups = [signup(1, 100), signup(2, 50), signup(3, 25)];
        let epochs: Vec<LoggedEpoch> = epochs
            .into_iter()
            .map(|(e, honest)| {
                let rekeys = e
                    .rekeys
                    .iter()
                    .zip(honest.iter().cycle())
                    .map(|(r, &h)| (r.clone(), claim(r, h)))
                    .collect();
                (e.deactivations, rekeys)
            })
            .collect();
        check_logged(&signups, &epochs);
    }
}
