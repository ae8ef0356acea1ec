//! The whole MPC processing against the plaintext oracle, in the in-memory
//! three-party harness: phase 1 (signatures) against native verification,
//! and `process_shared` against `process_poll` on random polls with every
//! kind of invalid message, small windows included.

mod common;

use common::*;
use proptest::prelude::*;
use rand::SeedableRng;
use triad_maci::{verify_command, Command, Fr};
use triad_mpc::testing::{run3, Fault};
use triad_mpc::Security;
use triad_polls::mpc::{encode, share_messages, verify_signatures, PlainMessage};
use triad_polls::mpc::{process_shared, SharedMessages};
use triad_polls::{process_poll, Message, Mode, PollParams, SignUp};

fn shared(msgs: &[PlainMessage], seed: u64) -> [SharedMessages; 3] {
    share_messages(msgs, &mut rand::rngs::StdRng::seed_from_u64(seed))
}

/// Phase 1's verdicts, the same at the three parties and in both modes;
/// in malicious mode every product was checked.
fn verdicts(msgs: &[PlainMessage]) -> Vec<bool> {
    let sh = shared(msgs, 1);
    let semi_honest = run3(|p| verify_signatures(p, &sh[p.id.index()]).unwrap());
    let malicious = run3(|p| {
        p.security = Security::Malicious;
        let v = verify_signatures(p, &sh[p.id.index()]).unwrap();
        assert!(p.checks.products > 0 && p.unchecked_products() == 0);
        v
    });
    for v in semi_honest.iter().chain(&malicious) {
        assert_eq!(v, &semi_honest[0]);
    }
    semi_honest[0].clone()
}

#[test]
fn phase_one_accepts_exactly_the_signatures_that_verify() {
    let good = vote(1, 1, 2, 3, 1, 4);
    let mut cases: Vec<(PlainMessage, bool)> = vec![(encode(&good).unwrap(), true)];
    // Edge fields: all 50-bit maxima.
    let edge = signed(
        2,
        Command {
            state_index: (1 << 50) - 1,
            vote_option_index: (1 << 50) - 1,
            new_vote_weight: (1 << 50) - 1,
            nonce: (1 << 50) - 1,
            poll_id: (1 << 50) - 1,
            ..command(1, 0, 0, 1, 2)
        },
    );
    cases.push((encode(&edge).unwrap(), true));
    // Signed by key 2 but naming key 1 as the signer (a forgery attempt).
    let mut forged = vote(1, 2, 0, 1, 1, 2);
    forged.signer = pk(1);
    cases.push((encode(&forged).unwrap(), false));
    // Another command under the same signature (tampered weight).
    let mut tampered = good.clone();
    tampered.command.new_vote_weight = 4;
    cases.push((encode(&tampered).unwrap(), false));
    // Tampered bits after encoding: a command field, the new key, hm, S.
    for (word, bit) in [
        (0usize, 0u32),
        (2, 49),
        (5, 0),
        (9, 3),
        (13, 0),
        (17, 0),
        (20, 63),
    ] {
        let mut m = encode(&good).unwrap();
        m.words[word] ^= 1 << bit;
        cases.push((m, false));
    }
    // Bits above 50 in a field word are ignored: the command is the same.
    let mut high = encode(&good).unwrap();
    high.words[1] |= 1 << 60;
    cases.push((high, true));
    // Field elements: signer y, R8, salt.
    for f in 0..5 {
        let mut m = encode(&good).unwrap();
        m.fr[f] += Fr::from(1u64);
        cases.push((m, false));
    }
    let plain: Vec<PlainMessage> = cases.iter().map(|c| c.0.clone()).collect();
    let want: Vec<bool> = cases.iter().map(|c| c.1).collect();
    assert_eq!(verdicts(&plain), want);
    // The oracle agrees on the messages it can express.
    for m in [&good, &edge, &forged, &tampered] {
        let native = verify_command(&m.signer, &m.command, &m.signature).is_ok();
        assert_eq!(
            native,
            cases.iter().any(|c| c.0 == encode(m).unwrap() && c.1)
        );
    }
}

/// The `k`-th fault of a cheating-party sample: a flipped bit, a replaced
/// value or a dropped message in turn, at varying places.
fn nth_fault(k: usize) -> Fault {
    match k % 3 {
        0 => Fault::Flip {
            at: 1 + k * 13,
            mask: 1 << (k % 8),
        },
        1 => Fault::Replace { at: k * 7 },
        _ => Fault::Drop,
    }
}

/// Phase 1 in malicious mode against a cheating party: a sample of every
/// party's messages (the first ones, then every 31st, the last ones; the
/// phase sends about 1,000 per party for one chunk), each flipped,
/// replaced or dropped, makes an honest party abort, and no honest party
/// returns verdicts other than the honest ones. A forged signature and a
/// good one, so a flipped verdict would show either way.
#[test]
fn a_cheating_party_cannot_change_phase_one_verdicts() {
    use std::time::Duration;
    use triad_mpc::testing::{assert_caught, run3_cheating};
    use triad_mpc::{MpcError, Party, PartyId};
    let good = vote(1, 1, 2, 3, 1, 4);
    let mut forged = vote(1, 2, 0, 1, 1, 2);
    forged.signer = pk(1);
    let plain = vec![encode(&good).unwrap(), encode(&forged).unwrap()];
    let sh = shared(&plain, 3);
    let victim = |p: &mut Party| -> Result<Vec<bool>, MpcError> {
        p.security = Security::Malicious;
        verify_signatures(p, &sh[p.id.index()])
    };
    let sent = run3(|p| {
        victim(p).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        let total = sent[who.index()];
        let sample = (2..6)
            .chain((6..total - 3).step_by(31))
            .chain(total - 3..=total);
        for (k, nth) in sample.enumerate() {
            let fault = nth_fault(k);
            runs += 1;
            let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
            assert_caught(
                &out,
                &vec![true, false],
                format!("{who} {fault:?} on message {nth}/{total}"),
            );
        }
    }
    assert!(runs > 100, "only {runs} runs");
}

/// Phases 2–4 in malicious mode against a cheating party: the key-change
/// scenario ([`key_change_poll`]), window
/// 2 so the scan has steps to lose. From the end of phase 1 on, a sample
/// of every party's messages (every one near both ends, 30 between),
/// each flipped, replaced or dropped, makes an honest party abort (unless
/// the run was shorter than the calibration run: the sort's levels vary),
/// and no honest party returns a tally other than the honest one.
#[test]
fn a_cheating_party_cannot_change_the_tally() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use triad_mpc::testing::{assert_caught, run3_cheating};
    use triad_mpc::{MpcError, Party, PartyId};
    let (params, ups, msgs) = key_change_poll();
    let params = params.with_window(2).unwrap();
    let want = process_poll(&params, &ups, &msgs).tally;
    assert_eq!(want.votes, vec![0, 4, 5]);
    let plain: Vec<PlainMessage> = msgs.iter().map(|m| encode(m).unwrap()).collect();
    let times: Vec<u64> = msgs.iter().map(|m| m.timestamp).collect();
    let sh = shared(&plain, 5);
    // Messages each party sent in the last run: the cheater's count tells
    // whether its fault fired (the sort's levels, hence the number of
    // messages, vary with the shuffle).
    let sent_in_run: [AtomicU64; 3] = Default::default();
    let victim = |p: &mut Party| -> Result<triad_polls::Tally, MpcError> {
        p.security = Security::Malicious;
        let out = process_shared(p, &params, &ups, &times, &sh[p.id.index()]);
        sent_in_run[p.id.index()].store(p.net.stats().messages_sent, Ordering::SeqCst);
        Ok(out?.0)
    };
    let phase_one = run3(|p| {
        p.security = Security::Malicious;
        verify_signatures(p, &sh[p.id.index()]).unwrap();
        p.net.stats().messages_sent
    });
    let sent = run3(|p| {
        assert_eq!(victim(p).unwrap(), want);
        p.net.stats().messages_sent
    });
    let (mut runs, mut unfired) = (0, 0);
    for who in PartyId::ALL {
        let (start, total) = (phase_one[who.index()], sent[who.index()]);
        assert!(total > start + 100, "{who}: {start} then {total} messages");
        let step = ((total - start) / 30).max(1) as usize;
        let sample = (start..start + 6)
            .chain((start + 6..total - 5).step_by(step))
            .chain(total - 5..=total);
        for (k, nth) in sample.enumerate() {
            let fault = nth_fault(k);
            sent_in_run[who.index()].store(0, Ordering::SeqCst);
            let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
            let what = format!("{who} {fault:?} on message {nth}/{total}");
            if out.iter().all(|r| r.is_ok()) {
                // Only a run shorter than the calibration run (a sort
                // with fewer levels) may end without the fault.
                let cheater_sent = sent_in_run[who.index()].load(Ordering::SeqCst);
                assert!(cheater_sent < nth, "{what}: no honest party aborted");
                unfired += 1;
                for r in out.iter().flatten() {
                    assert_eq!(r, &want, "{what}: a wrong result");
                }
            } else {
                runs += 1;
                assert_caught(&out, &want, what);
            }
        }
    }
    assert!(runs > 80, "only {runs} runs");
    eprintln!("{runs} tampered runs, {unfired} shorter runs without the fault; messages per party {phase_one:?} to phase 1, {sent:?} in all");
}

/// One random message: who signs, which key it names, what it says.
#[derive(Clone, Debug)]
struct Spec {
    index: u64,
    signer: u8,
    claimed: Option<u8>,
    option: u64,
    weight: u64,
    nonce: u64,
    new_key: u8,
    other_poll: bool,
    late: bool,
}

/// Mostly messages that have a chance: the leaf's own sign-up key signs
/// (`labels[i]` is leaf i + 1's key), the key is kept, nonces are small.
fn spec(labels: Vec<u8>, options: u64) -> impl Strategy<Value = Spec> {
    let voters = labels.len().max(1) as u64;
    (
        prop_oneof![6 => 1..=voters, 1 => Just(0u64), 1 => Just(voters + 1)],
        prop_oneof![3 => Just(None), 1 => (1u8..=6).prop_map(Some)],
        prop_oneof![6 => Just(None), 1 => (1u8..=6).prop_map(Some)],
        prop_oneof![6 => 0..options, 1 => Just(options)],
        prop_oneof![4 => 0u64..6, 1 => Just(1_000_000u64), 1 => Just((1 << 50) - 1)],
        prop_oneof![4 => 1u64..4, 1 => Just(0u64)],
        prop_oneof![2 => Just(None), 1 => (1u8..=6).prop_map(Some)],
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            move |(index, signer, claimed, option, weight, nonce, new_key, other_poll, late)| {
                let own = labels
                    .get(index.wrapping_sub(1) as usize)
                    .copied()
                    .unwrap_or(1);
                let signer = signer.unwrap_or(own);
                Spec {
                    index,
                    signer,
                    claimed,
                    option,
                    weight,
                    nonce,
                    new_key: new_key.unwrap_or(signer),
                    other_poll,
                    late,
                }
            },
        )
}

fn message(s: &Spec) -> Message {
    let mut c = command(s.index, s.option, s.weight, s.nonce, s.new_key);
    if s.other_poll {
        c.poll_id = POLL + 1;
    }
    let mut m = Message::sign_with(
        c,
        &key(s.signer),
        if s.late { VOTING_DEADLINE } else { SENT },
    )
    .unwrap();
    if let Some(k) = s.claimed {
        m.signer = pk(k);
    }
    m
}

fn case() -> impl Strategy<Value = (PollParams, Vec<SignUp>, Vec<Message>)> {
    (
        1u64..4,
        prop::bool::ANY,
        prop_oneof![Just(1u64), Just(2), Just(32)],
        prop::collection::vec(
            (
                1u8..=6,
                prop_oneof![Just(0u64), 1u64..40, Just(u64::MAX)],
                prop::bool::weighted(0.15),
            ),
            0..4,
        ),
    )
        .prop_flat_map(|(options, quadratic, window, ups)| {
            let mode = if quadratic {
                Mode::Quadratic
            } else {
                Mode::Linear
            };
            let p = params(options, mode).with_window(window).unwrap();
            let signups: Vec<SignUp> = ups
                .iter()
                .map(|&(label, credits, late)| SignUp {
                    timestamp: if late { SIGNUP_DEADLINE } else { SIGNED_UP },
                    ..signup(label, credits)
                })
                .collect();
            let labels: Vec<u8> = ups.iter().map(|u| u.0).collect();
            (
                Just(p),
                Just(signups),
                prop::collection::vec(spec(labels, options), 0..9),
            )
        })
        .prop_map(|(p, ups, specs)| (p, ups, specs.iter().map(message).collect()))
}

/// The tally over shares in both modes (malicious: the checked phases 2–4
/// of `mpc::checked`, everything checked before the tally is opened); the
/// three parties and the two modes must agree.
fn run(params: &PollParams, signups: &[SignUp], msgs: &[Message]) -> triad_polls::Tally {
    let semi_honest = run_in(params, signups, msgs, Security::SemiHonest);
    assert_eq!(
        run_in(params, signups, msgs, Security::Malicious),
        semi_honest,
        "malicious against semi-honest"
    );
    semi_honest
}

fn run_in(
    params: &PollParams,
    signups: &[SignUp],
    msgs: &[Message],
    security: Security,
) -> triad_polls::Tally {
    let plain: Vec<PlainMessage> = msgs.iter().map(|m| encode(m).unwrap()).collect();
    let times: Vec<u64> = msgs.iter().map(|m| m.timestamp).collect();
    let sh = shared(&plain, 9);
    let out = run3(|p| {
        p.security = security;
        let out = process_shared(p, params, signups, &times, &sh[p.id.index()]).unwrap();
        assert_eq!((p.unchecked_gates(), p.unchecked_products()), (0, 0));
        out
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);
    out[0].0.clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn mpc_tally_equals_the_oracle((params, signups, msgs) in case()) {
        let o = process_poll(&params, &signups, &msgs);
        VALID.fetch_add(o.valid_positions().len(), std::sync::atomic::Ordering::Relaxed);
        prop_assert_eq!(run(&params, &signups, &msgs), o.tally);
    }
}

/// The briber votes with the sold key 1; the voter later changes to key
/// 3 (nonce 1, logged last) and votes with it (nonce 2, logged before);
/// voter 2 votes once.
fn key_change_poll() -> (PollParams, Vec<SignUp>, Vec<Message>) {
    let ups = vec![signup(1, 100), signup(2, 100)];
    let msgs = vec![
        vote(1, 1, 0, 9, 1, 1),
        vote(1, 3, 2, 5, 2, 3),
        vote(1, 1, 1, 0, 1, 3),
        vote(2, 2, 1, 4, 1, 2),
    ];
    (qv(3), ups, msgs)
}

#[test]
fn key_change_voids_the_bribed_vote_in_mpc() {
    let (p, ups, msgs) = key_change_poll();
    let want = process_poll(&p, &ups, &msgs).tally;
    assert_eq!(want.votes, vec![0, 4, 5]);
    assert_eq!(run(&p, &ups, &msgs), want);
}

#[test]
fn window_drops_older_messages_in_mpc_as_in_the_oracle() {
    let p = qv(2).with_window(2).unwrap();
    let ups = vec![signup(1, 100)];
    // Three messages for leaf 1: only the two most recent can count.
    let msgs = vec![
        vote(1, 1, 0, 3, 3, 1),
        vote(1, 1, 1, 2, 2, 1),
        vote(1, 1, 0, 1, 1, 1),
    ];
    let o = process_poll(&p, &ups, &msgs);
    assert_eq!(o.validity[0], Err(triad_polls::Invalid::Window));
    assert_eq!(o.tally.votes, vec![1, 2]);
    assert_eq!(run(&p, &ups, &msgs), o.tally);
}

#[test]
fn empty_polls() {
    let p = qv(2);
    assert_eq!(run(&p, &[], &[]).votes, vec![0, 0]);
    assert_eq!(run(&p, &[signup(1, 5)], &[]).votes, vec![0, 0]);
    assert_eq!(run(&p, &[], &[vote(1, 1, 0, 1, 1, 1)]).votes, vec![0, 0]);
}

static VALID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_valid_signature_under_another_voters_key_does_not_count() {
    let p = qv(2);
    let ups = vec![signup(1, 100), signup(2, 100)];
    // Voter 2 signs a vote for leaf 1 with its own (registered) key.
    let msgs = vec![vote(2, 2, 1, 3, 1, 2), vote(1, 2, 0, 4, 1, 2)];
    let o = process_poll(&p, &ups, &msgs);
    assert_eq!(o.validity[1], Err(triad_polls::Invalid::Signature));
    assert_eq!(o.tally.votes, vec![0, 3]);
    assert_eq!(run(&p, &ups, &msgs), o.tally);
}

#[test]
fn phase_one_across_chunks() {
    let good = encode(&vote(1, 1, 2, 3, 1, 4)).unwrap();
    let n = triad_polls::mpc::signature::CHUNK + 5;
    let mut msgs = vec![good.clone(); n];
    let bad = n - 2;
    msgs[bad].words[0] ^= 1;
    let got = verdicts(&msgs);
    let want: Vec<bool> = (0..n).map(|k| k != bad).collect();
    assert_eq!(got, want);
}

/// A client that sends inconsistent share sets (one party's copy of a
/// component differs) loses its own message, and only it, in semi-honest
/// mode. In malicious mode the services bind every component to one
/// logged commitment that both holders check, so inconsistent copies mean
/// a party lies: the run aborts at every party, naming the check.
#[test]
fn inconsistent_share_sets_drop_the_message_or_abort_in_malicious_mode() {
    let p = qv(2);
    let ups = vec![signup(1, 100), signup(2, 100)];
    let msgs = [vote(1, 1, 0, 3, 1, 1), vote(2, 2, 1, 4, 1, 2)];
    let plain: Vec<PlainMessage> = msgs.iter().map(|m| encode(m).unwrap()).collect();
    let times: Vec<u64> = msgs.iter().map(|m| m.timestamp).collect();
    for (field, party) in [(false, 0usize), (true, 1), (false, 2)] {
        let mut sh = shared(&plain, 3);
        // Party `party`'s copy of component `party` of message 1.
        if field {
            sh[party].fr.a[triad_polls::mpc::encode::FR] += Fr::from(1u64);
        } else {
            sh[party].words.a[triad_polls::mpc::encode::WORDS].0 ^= 4;
        }
        let out = run3(|pt| process_shared(pt, &p, &ups, &times, &sh[pt.id.index()]).unwrap());
        assert_eq!(out[0], out[1]);
        assert_eq!(out[1], out[2]);
        let want = process_poll(&p, &ups, &msgs[..1]).tally;
        assert_eq!(out[0].0, want);
        assert_eq!(out[0].1.consistent, 1, "dropped by the share-set check");
        assert_eq!(out[0].1.well_formed, 1);
        let out = run3(|pt| {
            pt.security = Security::Malicious;
            process_shared(pt, &p, &ups, &times, &sh[pt.id.index()])
        });
        for r in out {
            match r {
                Err(triad_mpc::MpcError::CheatingDetected { check, detail }) => {
                    assert_eq!(check, "input consistency");
                    assert!(detail.starts_with("item 1:"), "{detail}");
                }
                other => panic!("party {party}: {other:?}"),
            }
        }
    }
}

/// The silent censorship a malicious party could do before the components
/// were bound (docs/security.md, "Client inputs of polls"): lying in the
/// share-set check (a flipped or replaced hash or verdict, or a dropped
/// one) so that an honest voter's message is dropped as inconsistent. In
/// malicious mode each such run aborts; none returns a tally without the
/// vote.
#[test]
fn a_party_cannot_silently_drop_a_vote_by_lying_in_the_share_set_check() {
    use std::time::Duration;
    use triad_mpc::testing::{assert_caught, run3_cheating};
    use triad_mpc::PartyId;
    let p = qv(2);
    let ups = vec![signup(1, 100), signup(2, 100)];
    let msgs = [vote(1, 1, 0, 3, 1, 1), vote(2, 2, 1, 4, 1, 2)];
    let plain: Vec<PlainMessage> = msgs.iter().map(|m| encode(m).unwrap()).collect();
    let times: Vec<u64> = msgs.iter().map(|m| m.timestamp).collect();
    let sh = shared(&plain, 5);
    let want = process_poll(&p, &ups, &msgs).tally;
    let victim = |pt: &mut triad_mpc::Party| {
        pt.security = Security::Malicious;
        process_shared(pt, &p, &ups, &times, &sh[pt.id.index()]).map(|(t, _)| t)
    };
    assert!(run3(|pt| victim(pt).unwrap() == want).iter().all(|&ok| ok));
    // Message 1 is the session's seed; messages 2..=7 are the share-set
    // check (a hash to the previous party, verdicts to both, for the
    // words and the field elements).
    for who in PartyId::ALL {
        for nth in 2..=7 {
            for fault in [
                Fault::Flip { at: 0, mask: 1 },
                Fault::Replace { at: 3 },
                Fault::Drop,
            ] {
                let out = run3_cheating(who, fault, nth, Duration::from_millis(500), victim);
                assert_caught(&out, &want, format!("{who} {fault:?} on message {nth}"));
            }
        }
    }
}

/// The known limit of the window (docs/polls.md, "The window K"), as a
/// test: K well-formed messages naming a victim's index, signed with the
/// attacker's own key and logged after the victim's vote, push the vote
/// out of the window in the oracle and in the MPC alike; with one message
/// fewer the vote counts. Garbage (a signature that does not verify under
/// the key it names, a message for another poll) takes no slot.
#[test]
fn window_griefing_is_the_documented_limit_and_garbage_takes_no_slot() {
    let k = 3;
    let p = qv(2).with_window(k).unwrap();
    let ups = vec![signup(1, 100), signup(2, 100)];
    let victim = vote(1, 1, 1, 5, 1, 1);
    let junk = |n: usize| -> Vec<Message> { (0..n).map(|_| vote(1, 2, 0, 1, 1, 2)).collect() };
    for (n, counts) in [(k as usize, false), (k as usize - 1, true)] {
        let mut msgs = vec![victim.clone()];
        msgs.extend(junk(n));
        let o = process_poll(&p, &ups, &msgs);
        assert_eq!(
            o.tally.votes[1],
            if counts { 5 } else { 0 },
            "{n} junk messages"
        );
        assert_eq!(run(&p, &ups, &msgs), o.tally);
    }
    // Many messages that are not well-formed do not evict the vote.
    let mut msgs = vec![victim.clone()];
    for _ in 0..k + 2 {
        let mut forged = vote(1, 2, 0, 1, 1, 2);
        forged.signer = pk(1);
        msgs.push(forged);
        let mut other_poll = command(1, 0, 1, 1, 1);
        other_poll.poll_id = POLL + 1;
        msgs.push(signed(1, other_poll));
    }
    let o = process_poll(&p, &ups, &msgs);
    assert_eq!(o.tally.votes[1], 5);
    assert_eq!(run(&p, &ups, &msgs), o.tally);
}
