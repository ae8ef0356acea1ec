//! Property tests over random polls and message logs: credit conservation,
//! tally consistency, determinism, and that neither an outsider's message
//! nor any invalid message changes anything.
//!
//! Keys come from a small pool (labels 1–6) so that random messages are
//! often signed with the right key; label 42 is an outsider that is never
//! registered and never installed by a key change.

mod common;

use common::*;
use proptest::prelude::*;
use triad_maci::Command;
use triad_polls::{process_poll, Invalid, Message, Mode, PollParams, PollState, SignUp};

const OUTSIDER: u8 = 42;

fn budget() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..300,
        1 => Just(0),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn weight() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 0u64..16,
        1 => Just((1 << 32) - 1),
        1 => Just(1 << 32),
        1 => Just((1 << 50) - 1),
        1 => Just(u64::MAX),
    ]
}

fn poll() -> impl Strategy<Value = PollParams> {
    (
        1u64..5,
        prop_oneof![Just(Mode::Quadratic), Just(Mode::Linear)],
    )
        .prop_map(|(v, mode)| params(v, mode))
}

/// Up to four sign-ups, none in one case out of seven.
fn signups() -> impl Strategy<Value = Vec<SignUp>> {
    let one = (
        1u8..=6,
        budget(),
        prop_oneof![9 => Just(SIGNED_UP), 1 => Just(SIGNUP_DEADLINE)],
    )
        .prop_map(|(label, credits, timestamp)| SignUp {
            timestamp,
            ..signup(label, credits)
        });
    (
        prop::bool::weighted(1.0 / 7.0),
        prop::collection::vec(one, 1..5),
    )
        .prop_map(|(none, ups)| if none { Vec::new() } else { ups })
}

/// An unsigned message: a command, who signs it, when it is logged, and
/// whether [`sign_log`] should pick the signer and nonce an honest voter
/// would use.
#[derive(Clone, Debug)]
struct Spec {
    command: Command,
    signer: u8,
    timestamp: u64,
    honest: bool,
}

/// Fields near the interesting values: mostly a registered index (of
/// `voters`), an option in range, a small weight, this poll, before the
/// deadline; a quarter of messages change the key.
fn spec(voters: u64, options: u64) -> impl Strategy<Value = Spec> {
    (
        prop_oneof![8 => 1..voters.max(1) + 1, 1 => 0..voters + 2],
        prop_oneof![12 => 0..options, 1 => 0..options + 2],
        weight(),
        prop_oneof![3 => Just(1u64), 2 => Just(2), 1 => Just(3), 1 => Just(0), 1 => 0u64..6],
        prop_oneof![19 => Just(POLL), 1 => Just(POLL + 1)],
        1u8..=6,
        prop_oneof![3 => Just(None), 1 => (1u8..=6).prop_map(Some)],
        prop_oneof![19 => Just(SENT), 1 => Just(VOTING_DEADLINE)],
        prop::bool::weighted(0.7),
    )
        .prop_map(
            |(index, option, weight, nonce, poll_id, signer, new_key, timestamp, honest)| Spec {
                command: Command {
                    poll_id,
                    // A placeholder key when the new key is "keep": fixed
                    // in `sign_log`.
                    ..command(index, option, weight, nonce, new_key.unwrap_or(0))
                },
                signer,
                timestamp,
                honest,
            },
        )
}

/// Signs a log. Honest messages are signed with the key the leaf should
/// have when the message is processed and carry the nonce it should
/// expect, assuming every earlier-processed honest message was valid (the
/// log is walked backwards, as processing does); the rest keep their random
/// signer and nonce. `keys[i]` is the sign-up label of leaf i + 1. A command
/// with an unpackable field gets the signature of its packable twin.
fn sign_log(keys: &[u8], specs: Vec<Spec>) -> Vec<Message> {
    let mut current: Vec<u8> = keys.to_vec();
    let mut nonces = vec![0u64; keys.len()];
    let mut out: Vec<Message> = specs
        .into_iter()
        .rev()
        .map(|mut spec| {
            let leaf = (spec.command.state_index as usize)
                .checked_sub(1)
                .filter(|&i| i < keys.len());
            if let (true, Some(i)) = (spec.honest, leaf) {
                spec.signer = current[i];
                nonces[i] += 1;
                spec.command.nonce = nonces[i];
            }
            if spec.command.new_pub_key == pk(0) {
                spec.command.new_pub_key = pk(spec.signer);
            }
            if let (true, Some(i)) = (spec.honest, leaf) {
                current[i] = label_of_key(&spec.command.new_pub_key);
            }
            signed_as(spec)
        })
        .collect();
    out.reverse();
    out
}

fn signed_as(spec: Spec) -> Message {
    let packable = Command {
        new_vote_weight: spec.command.new_vote_weight.min((1 << 50) - 1),
        ..spec.command.clone()
    };
    let signature = Message::sign_with(packable, &key(spec.signer), spec.timestamp)
        .unwrap()
        .signature;
    Message {
        command: spec.command,
        signature,
        signer: key(spec.signer).public_key(),
        timestamp: spec.timestamp,
    }
}

/// A poll, its sign-ups, and a log of up to 13 messages.
fn case() -> impl Strategy<Value = (PollParams, Vec<SignUp>, Vec<Message>)> {
    (poll(), signups()).prop_flat_map(|(p, ups)| {
        let keys: Vec<u8> = ups.iter().map(|u| label_of_key(&u.pub_key)).collect();
        let specs = prop::collection::vec(spec(ups.len() as u64, p.vote_options()), 0..14);
        (
            Just(p),
            Just(ups),
            specs.prop_map(move |s| sign_log(&keys, s)),
        )
    })
}

/// A case and one more message for it (signed as an honest voter would
/// sign a message logged last, or at random).
fn case_and_message() -> impl Strategy<Value = (PollParams, Vec<SignUp>, Vec<Message>, Message)> {
    case().prop_flat_map(|(p, ups, msgs)| {
        let keys: Vec<u8> = ups.iter().map(|u| label_of_key(&u.pub_key)).collect();
        let m = spec(ups.len() as u64, p.vote_options())
            .prop_map(move |s| sign_log(&keys, vec![s]).remove(0));
        (Just(p), Just(ups), Just(msgs), m)
    })
}

/// Messages signed by the outsider, with random fields.
fn outsider_message() -> impl Strategy<Value = Message> {
    spec(4, 4).prop_map(|s| {
        signed_as(Spec {
            signer: OUTSIDER,
            ..s
        })
    })
}

/// The pool label (0 to 6) of a key.
fn label_of_key(k: &triad_maci::PubKey) -> u8 {
    (0..=6).find(|&l| pk(l) == *k).expect("tests use pool keys")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Credits are conserved per leaf (so no balance ever goes below zero or
    /// above the budget), the tally is the sum of the ballots, total spent
    /// is the sum of spent per option and at most the sum of budgets, a
    /// ballot's nonce counts its valid messages, and processing twice gives
    /// the same outcome.
    #[test]
    fn invariants((p, ups, msgs) in case()) {
        let o = process_poll(&p, &ups, &msgs);
        prop_assert_eq!(&o, &process_poll(&p, &ups, &msgs), "not deterministic");
        prop_assert_eq!(o.validity.len(), msgs.len());

        let leaves = o.state.leaves();
        let ballots = o.state.ballots();
        prop_assert_eq!(leaves.len(), ups.len() + 1);
        prop_assert_eq!(&leaves[0], &triad_polls::StateLeaf::blank());
        prop_assert_eq!(ballots[0].nonce, 0);
        for (i, up) in ups.iter().enumerate() {
            let spent: u128 = ballots[i + 1].votes.iter().map(|&w| p.mode().cost(w)).sum();
            prop_assert_eq!(
                u128::from(leaves[i + 1].voice_credit_balance) + spent,
                u128::from(up.voice_credits)
            );
            let valid = msgs
                .iter()
                .zip(&o.validity)
                .filter(|(m, v)| v.is_ok() && m.command.state_index == i as u64 + 1)
                .count() as u64;
            prop_assert_eq!(ballots[i + 1].nonce, valid);
        }

        let t = &o.tally;
        prop_assert_eq!(t.spent, t.spent_per_option.iter().sum::<u128>());
        let budgets: u128 = ups.iter().map(|u| u128::from(u.voice_credits)).sum();
        prop_assert!(t.spent <= budgets);
        for opt in 0..p.vote_options() as usize {
            let votes: u128 = ballots.iter().map(|b| u128::from(b.votes[opt])).sum();
            prop_assert_eq!(t.votes[opt], votes);
        }
        if p.mode() == Mode::Linear {
            prop_assert_eq!(&t.votes, &t.spent_per_option);
        }
    }

    /// Messages signed by a key that is never registered (nor installed),
    /// anywhere in the log, are invalid and change neither the state, nor
    /// the tally, nor any other message's verdict.
    #[test]
    fn outsider_messages_change_nothing(
        (p, ups, msgs) in case(),
        outsiders in prop::collection::vec(
            (outsider_message(), any::<prop::sample::Index>()),
            1..5,
        ),
    ) {
        let base = process_poll(&p, &ups, &msgs);
        let mut mixed: Vec<(bool, Message)> = msgs.iter().cloned().map(|m| (false, m)).collect();
        for (m, at) in outsiders {
            let at = at.index(mixed.len() + 1);
            mixed.insert(at, (true, m));
        }
        let log: Vec<Message> = mixed.iter().map(|(_, m)| m.clone()).collect();
        let o = process_poll(&p, &ups, &log);
        prop_assert_eq!(&o.state, &base.state);
        prop_assert_eq!(&o.tally, &base.tally);
        let mut own = Vec::new();
        for ((outsider, _), v) in mixed.iter().zip(&o.validity) {
            if *outsider {
                prop_assert!(v.is_err());
            } else {
                own.push(*v);
            }
        }
        prop_assert_eq!(own, base.validity);
    }

    /// A message that is invalid as the only message leaves the initial
    /// state as it was.
    #[test]
    fn invalid_alone_changes_nothing(
        (p, ups, _, m) in case_and_message(),
    ) {
        let o = process_poll(&p, &ups, std::slice::from_ref(&m));
        if o.validity[0].is_err() {
            prop_assert_eq!(&o.state, &PollState::new(&p, &ups));
            prop_assert_eq!(o.tally.spent, 0);
        }
    }

    /// From any reachable state, an invalid message changes nothing and a
    /// valid one changes only its own leaf and ballot.
    #[test]
    fn one_step_from_any_state(
        (p, ups, msgs, m) in case_and_message(),
    ) {
        let before = process_poll(&p, &ups, &msgs).state;
        let mut after = before.clone();
        match after.process_message(&p, &m) {
            Err(_) => prop_assert_eq!(&after, &before),
            Ok(()) => {
                let i = m.command.state_index as usize;
                for j in 0..before.leaves().len() {
                    if j != i {
                        prop_assert_eq!(&after.leaves()[j], &before.leaves()[j]);
                        prop_assert_eq!(&after.ballots()[j], &before.ballots()[j]);
                    }
                }
                prop_assert_eq!(after.leaves()[i].pub_key, m.command.new_pub_key);
                prop_assert_eq!(after.ballots()[i].nonce, before.ballots()[i].nonce + 1);
                prop_assert_eq!(
                    after.ballots()[i].votes[m.command.vote_option_index as usize],
                    m.command.new_vote_weight
                );
            }
        }
    }

    /// Dropping every invalid message from the log changes neither the
    /// outcome nor any remaining verdict: invalid messages are inert.
    #[test]
    fn invalid_messages_are_inert((p, ups, msgs) in case()) {
        let o = process_poll(&p, &ups, &msgs);
        let kept: Vec<Message> = msgs
            .iter()
            .zip(&o.validity)
            .filter(|(_, v)| v.is_ok())
            .map(|(m, _)| m.clone())
            .collect();
        let k = process_poll(&p, &ups, &kept);
        prop_assert_eq!(&k.state, &o.state);
        prop_assert_eq!(&k.tally, &o.tally);
        prop_assert!(k.validity.iter().all(|v| v.is_ok()));
    }

    /// An unaffordable weight never panics and never changes a balance:
    /// whatever the budget, a QV weight of 2^32 or more is refused unless
    /// its square fits in the balance plus the refunded old weight.
    #[test]
    fn huge_weights_are_refused(budget in budget(), w in (1u64 << 32)..(1 << 50)) {
        let p = params(1, Mode::Quadratic);
        let ups = [signup(1, budget)];
        let o = process_poll(&p, &ups, &[vote(1, 1, 0, w, 1, 1)]);
        prop_assert_eq!(o.validity, vec![Err(Invalid::Credits)]);
        prop_assert_eq!(o.state.leaves()[1].voice_credit_balance, budget);
    }
}
