//! One test per validity rule and per update rule of
//! `PollState::process_message`, with the edge values of each: every
//! invalid message must leave the state exactly as it was.

mod common;

use common::*;
use triad_maci::Command;
use triad_polls::{
    process_poll, Invalid, Message, Mode, PollParams, PollState, SignUp, MAX_VOTE_OPTIONS,
};

/// Applies `msg` alone to the poll `signups` starts; checks that an invalid
/// message changed nothing, and returns the verdict and the state after.
fn apply(
    params: &PollParams,
    signups: &[SignUp],
    msg: &Message,
) -> (Result<(), Invalid>, PollState) {
    let before = PollState::new(params, signups);
    let mut after = before.clone();
    let verdict = after.process_message(params, msg);
    if verdict.is_err() {
        assert_eq!(after, before, "an invalid message changed the state");
    }
    // process_poll agrees with the single step.
    let outcome = process_poll(params, signups, std::slice::from_ref(msg));
    assert_eq!(outcome.validity, vec![verdict]);
    assert_eq!(outcome.state, after);
    (verdict, after)
}

fn verdict(params: &PollParams, signups: &[SignUp], msg: &Message) -> Result<(), Invalid> {
    apply(params, signups, msg).0
}

/// A message whose command cannot be packed, with some signature.
fn unpackable(mut c: Command, f: impl FnOnce(&mut Command)) -> Message {
    let sig = signed(1, c.clone()).signature;
    f(&mut c);
    Message {
        command: c,
        signature: sig,
        signer: key(1).public_key(),
        timestamp: SENT,
    }
}

#[test]
fn initial_state() {
    let p = qv(3);
    let s = PollState::new(&p, &[signup(1, 100), signup(2, 50)]);
    assert_eq!(s.leaves().len(), 3);
    assert_eq!(s.leaves()[0], triad_polls::StateLeaf::blank());
    assert_eq!(s.leaves()[1].pub_key, pk(1));
    assert_eq!(s.leaves()[1].voice_credit_balance, 100);
    assert_eq!(s.leaves()[2].voice_credit_balance, 50);
    for b in s.ballots() {
        assert_eq!(b.nonce, 0);
        assert_eq!(b.votes, vec![0, 0, 0]);
    }
}

#[test]
fn valid_vote_updates_leaf_and_ballot() {
    let p = qv(3);
    let (v, s) = apply(&p, &[signup(1, 100)], &vote(1, 1, 2, 9, 1, 5));
    assert_eq!(v, Ok(()));
    let leaf = &s.leaves()[1];
    assert_eq!(leaf.voice_credit_balance, 100 - 81);
    assert_eq!(leaf.pub_key, pk(5), "every valid message sets the key");
    assert_eq!(leaf.timestamp, SIGNED_UP);
    assert_eq!(s.ballots()[1].nonce, 1);
    assert_eq!(s.ballots()[1].votes, vec![0, 0, 9]);
}

#[test]
fn state_index_range() {
    let p = qv(2);
    let ups = [signup(1, 100), signup(2, 100)];
    // 0 is the blank leaf; nobody can sign for it.
    assert_eq!(
        verdict(&p, &ups, &vote(0, 1, 0, 1, 1, 1)),
        Err(Invalid::StateIndex)
    );
    assert_eq!(verdict(&p, &ups, &vote(1, 1, 0, 1, 1, 1)), Ok(()));
    // = number of sign-ups: the last voter (MACI's numSignUps counts leaf 0).
    assert_eq!(verdict(&p, &ups, &vote(2, 2, 0, 1, 1, 2)), Ok(()));
    // = number of leaves (MACI's numSignUps): out of range.
    assert_eq!(
        verdict(&p, &ups, &vote(3, 2, 0, 1, 1, 2)),
        Err(Invalid::StateIndex)
    );
    assert_eq!(
        verdict(&p, &ups, &vote((1 << 50) - 1, 2, 0, 1, 1, 2)),
        Err(Invalid::StateIndex)
    );
    // No sign-ups: no index is valid.
    assert_eq!(
        verdict(&p, &[], &vote(1, 1, 0, 1, 1, 1)),
        Err(Invalid::StateIndex)
    );
}

#[test]
fn state_index_names_the_leaf_whose_key_must_sign() {
    let p = qv(2);
    let ups = [signup(1, 100), signup(2, 100)];
    // Voter 1's key on voter 2's leaf.
    assert_eq!(
        verdict(&p, &ups, &vote(2, 1, 0, 1, 1, 1)),
        Err(Invalid::Signature)
    );
}

#[test]
fn unpackable_fields() {
    let p = qv(2);
    let ups = [signup(1, u64::MAX)];
    let base = command(1, 0, 1, 1, 1);
    for f in [
        (|c: &mut Command| c.state_index = 1 << 50) as fn(&mut Command),
        |c| c.state_index = u64::MAX,
        |c| c.vote_option_index = 1 << 50,
        |c| c.new_vote_weight = 1 << 50,
        |c| c.new_vote_weight = u64::MAX,
        |c| c.nonce = 1 << 50,
        |c| c.poll_id = 1 << 50,
    ] {
        assert_eq!(
            verdict(&p, &ups, &unpackable(base.clone(), f)),
            Err(Invalid::Unpackable)
        );
    }
    assert!(Message::sign_with(
        Command {
            new_vote_weight: 1 << 50,
            ..base
        },
        &key(1),
        SENT
    )
    .is_err());
}

#[test]
fn poll_id_must_match() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    for other in [0, POLL - 1, POLL + 1, (1 << 50) - 1] {
        let c = Command {
            poll_id: other,
            ..command(1, 0, 1, 1, 1)
        };
        assert_eq!(verdict(&p, &ups, &signed(1, c)), Err(Invalid::PollId));
    }
}

#[test]
fn voting_deadline_is_exclusive() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    let at = |t| Message::sign_with(command(1, 0, 1, 1, 1), &key(1), t).unwrap();
    assert_eq!(verdict(&p, &ups, &at(0)), Ok(()));
    assert_eq!(verdict(&p, &ups, &at(VOTING_DEADLINE - 1)), Ok(()));
    assert_eq!(
        verdict(&p, &ups, &at(VOTING_DEADLINE)),
        Err(Invalid::LateMessage)
    );
    assert_eq!(verdict(&p, &ups, &at(u64::MAX)), Err(Invalid::LateMessage));
}

#[test]
fn signup_deadline_is_exclusive() {
    let p = qv(2);
    let msg = vote(1, 1, 0, 1, 1, 1);
    let up = |t| SignUp {
        timestamp: t,
        ..signup(1, 100)
    };
    assert_eq!(verdict(&p, &[up(SIGNUP_DEADLINE - 1)], &msg), Ok(()));
    assert_eq!(
        verdict(&p, &[up(SIGNUP_DEADLINE)], &msg),
        Err(Invalid::LateSignUp)
    );
    // A late sign-up still takes its index: the next voter's index does not move.
    let ups = [up(SIGNUP_DEADLINE), signup(2, 100)];
    assert_eq!(verdict(&p, &ups, &vote(2, 2, 0, 1, 1, 2)), Ok(()));
}

#[test]
fn signature_under_current_key() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    // Signed with a stranger's key.
    assert_eq!(
        verdict(&p, &ups, &vote(1, 9, 0, 1, 1, 1)),
        Err(Invalid::Signature)
    );
    // Signed with the new key it installs instead of the current one.
    assert_eq!(
        verdict(&p, &ups, &vote(1, 5, 0, 1, 1, 5)),
        Err(Invalid::Signature)
    );
    // A signature of another command (weight changed after signing).
    let mut m = vote(1, 1, 0, 1, 1, 1);
    m.command.new_vote_weight = 2;
    assert_eq!(verdict(&p, &ups, &m), Err(Invalid::Signature));
    // The salt is signed too.
    let mut m = vote(1, 1, 0, 1, 1, 1);
    m.command.salt += triad_maci::Fr::from(1u64);
    assert_eq!(verdict(&p, &ups, &m), Err(Invalid::Signature));
    // The new key is signed too.
    let mut m = vote(1, 1, 0, 1, 1, 1);
    m.command.new_pub_key = pk(6);
    assert_eq!(verdict(&p, &ups, &m), Err(Invalid::Signature));
}

#[test]
fn nonce_is_ballot_nonce_plus_one() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    assert_eq!(
        verdict(&p, &ups, &vote(1, 1, 0, 1, 0, 1)),
        Err(Invalid::Nonce)
    );
    assert_eq!(verdict(&p, &ups, &vote(1, 1, 0, 1, 1, 1)), Ok(()));
    assert_eq!(
        verdict(&p, &ups, &vote(1, 1, 0, 1, 2, 1)),
        Err(Invalid::Nonce)
    );
    assert_eq!(
        verdict(&p, &ups, &vote(1, 1, 0, 1, (1 << 50) - 1, 1)),
        Err(Invalid::Nonce)
    );
    // After one valid message the ballot nonce is 1: the next processed
    // message needs nonce 2.
    let mut s = PollState::new(&p, &ups);
    assert_eq!(s.process_message(&p, &vote(1, 1, 0, 1, 1, 1)), Ok(()));
    assert_eq!(
        s.process_message(&p, &vote(1, 1, 1, 1, 1, 1)),
        Err(Invalid::Nonce)
    );
    assert_eq!(s.process_message(&p, &vote(1, 1, 1, 1, 2, 1)), Ok(()));
    assert_eq!(s.ballots()[1].nonce, 2);
}

#[test]
fn vote_option_range() {
    let ups = [signup(1, 100)];
    for v in [1, 3, MAX_VOTE_OPTIONS] {
        let p = qv(v);
        assert_eq!(verdict(&p, &ups, &vote(1, 1, v - 1, 1, 1, 1)), Ok(()));
        assert_eq!(
            verdict(&p, &ups, &vote(1, 1, v, 1, 1, 1)),
            Err(Invalid::VoteOption)
        );
    }
    assert_eq!(
        verdict(&qv(3), &ups, &vote(1, 1, (1 << 50) - 1, 1, 1, 1)),
        Err(Invalid::VoteOption)
    );
}

#[test]
fn quadratic_credits() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    let (v, s) = apply(&p, &ups, &vote(1, 1, 0, 10, 1, 1));
    assert_eq!(v, Ok(()));
    assert_eq!(s.leaves()[1].voice_credit_balance, 0);
    assert_eq!(
        verdict(&p, &ups, &vote(1, 1, 0, 11, 1, 1)),
        Err(Invalid::Credits)
    );
}

#[test]
fn linear_credits() {
    let p = params(2, Mode::Linear);
    let ups = [signup(1, 100)];
    let (v, s) = apply(&p, &ups, &vote(1, 1, 1, 100, 1, 1));
    assert_eq!(v, Ok(()));
    assert_eq!(s.leaves()[1].voice_credit_balance, 0);
    assert_eq!(
        verdict(&p, &ups, &vote(1, 1, 1, 101, 1, 1)),
        Err(Invalid::Credits)
    );
}

#[test]
fn replacing_a_weight_refunds_its_cost() {
    for (mode, first, second, left) in [
        (Mode::Quadratic, 10, 6, 100 - 36),
        (Mode::Quadratic, 10, 0, 100),
        (Mode::Linear, 100, 40, 60),
    ] {
        let p = params(2, mode);
        let mut s = PollState::new(&p, &[signup(1, 100)]);
        assert_eq!(s.process_message(&p, &vote(1, 1, 0, first, 1, 1)), Ok(()));
        assert_eq!(s.leaves()[1].voice_credit_balance, 0);
        // Replace, not add: the old weight's cost comes back first.
        assert_eq!(s.process_message(&p, &vote(1, 1, 0, second, 2, 1)), Ok(()));
        assert_eq!(s.leaves()[1].voice_credit_balance, left);
        assert_eq!(s.ballots()[1].votes, vec![second, 0]);
    }
}

#[test]
fn credits_are_per_voter_not_per_option() {
    let p = qv(2);
    let mut s = PollState::new(&p, &[signup(1, 100)]);
    assert_eq!(s.process_message(&p, &vote(1, 1, 0, 8, 1, 1)), Ok(()));
    // 64 spent, 36 left: 7² = 49 does not fit, 6² = 36 does.
    assert_eq!(
        s.process_message(&p, &vote(1, 1, 1, 7, 2, 1)),
        Err(Invalid::Credits)
    );
    assert_eq!(s.process_message(&p, &vote(1, 1, 1, 6, 2, 1)), Ok(()));
    assert_eq!(s.leaves()[1].voice_credit_balance, 0);
}

#[test]
fn weight_zero() {
    let p = qv(2);
    // Valid even with no credits: a pure key change.
    let (v, s) = apply(&p, &[signup(1, 0)], &vote(1, 1, 0, 0, 1, 4));
    assert_eq!(v, Ok(()));
    assert_eq!(s.leaves()[1].pub_key, pk(4));
    assert_eq!(s.leaves()[1].voice_credit_balance, 0);
    // And it resets the weight of the option it names.
    let mut s = PollState::new(&p, &[signup(1, 100)]);
    assert_eq!(s.process_message(&p, &vote(1, 1, 1, 5, 1, 1)), Ok(()));
    assert_eq!(s.process_message(&p, &vote(1, 1, 1, 0, 2, 4)), Ok(()));
    assert_eq!(s.ballots()[1].votes, vec![0, 0]);
    assert_eq!(s.leaves()[1].voice_credit_balance, 100);
}

#[test]
fn budget_zero() {
    for mode in [Mode::Quadratic, Mode::Linear] {
        let p = params(2, mode);
        let ups = [signup(1, 0)];
        assert_eq!(verdict(&p, &ups, &vote(1, 1, 0, 0, 1, 1)), Ok(()));
        assert_eq!(
            verdict(&p, &ups, &vote(1, 1, 0, 1, 1, 1)),
            Err(Invalid::Credits)
        );
    }
}

#[test]
fn budget_u64_max() {
    let ups = [signup(1, u64::MAX)];
    let q = qv(2);
    // (2^32 − 1)² = 2^64 − 2^33 + 1 fits in the budget.
    let w = (1u64 << 32) - 1;
    let (v, s) = apply(&q, &ups, &vote(1, 1, 0, w, 1, 1));
    assert_eq!(v, Ok(()));
    assert_eq!(s.leaves()[1].voice_credit_balance, u64::MAX - w * w);
    // 2^32 squared overflows u64: unaffordable, no panic.
    assert_eq!(
        verdict(&q, &ups, &vote(1, 1, 0, 1 << 32, 1, 1)),
        Err(Invalid::Credits)
    );
    assert_eq!(
        verdict(&q, &ups, &vote(1, 1, 0, (1 << 50) - 1, 1, 1)),
        Err(Invalid::Credits)
    );
    // Linear: the largest packable weight is affordable.
    let l = params(2, Mode::Linear);
    let (v, s) = apply(&l, &ups, &vote(1, 1, 1, (1 << 50) - 1, 1, 1));
    assert_eq!(v, Ok(()));
    assert_eq!(
        s.leaves()[1].voice_credit_balance,
        u64::MAX - ((1 << 50) - 1)
    );
    let t = process_poll(&l, &ups, &[vote(1, 1, 1, (1 << 50) - 1, 1, 1)]).tally;
    assert_eq!(t.votes, vec![0, (1 << 50) - 1]);
}

#[test]
fn weight_squared_overflowing_u64_with_old_weight() {
    // balance + old² − new² computed exactly: an affordable replacement
    // whose intermediate sum exceeds u64.
    let q = qv(1);
    let w = (1u64 << 32) - 1;
    let mut s = PollState::new(&q, &[signup(1, u64::MAX)]);
    assert_eq!(s.process_message(&q, &vote(1, 1, 0, w, 1, 1)), Ok(()));
    assert_eq!(s.process_message(&q, &vote(1, 1, 0, w - 1, 2, 1)), Ok(()));
    let spent = u128::from(w - 1) * u128::from(w - 1);
    assert_eq!(
        u128::from(s.leaves()[1].voice_credit_balance),
        u128::from(u64::MAX) - spent
    );
    assert_eq!(
        s.process_message(&q, &vote(1, 1, 0, 1 << 32, 3, 1)),
        Err(Invalid::Credits)
    );
}

#[test]
fn tally_sums_ballots() {
    let p = qv(3);
    let ups = [signup(1, 100), signup(2, 100), signup(3, 100)];
    let msgs = [
        vote(1, 1, 1, 4, 2, 1),
        vote(1, 1, 0, 3, 1, 1),
        vote(2, 2, 0, 5, 1, 2),
        // Invalid (credits): counts nothing.
        vote(3, 3, 2, 11, 1, 3),
    ];
    let o = process_poll(&p, &ups, &msgs);
    assert_eq!(o.valid_positions(), vec![0, 1, 2]);
    assert_eq!(o.tally.votes, vec![8, 4, 0]);
    assert_eq!(o.tally.spent_per_option, vec![9 + 25, 16, 0]);
    assert_eq!(o.tally.spent, 50);

    let l = params(3, Mode::Linear);
    let o = process_poll(&l, &ups, &msgs);
    assert_eq!(o.valid_positions(), vec![0, 1, 2, 3]);
    assert_eq!(o.tally.votes, vec![8, 4, 11]);
    assert_eq!(o.tally.spent_per_option, vec![8, 4, 11]);
    assert_eq!(o.tally.spent, 23);
}

#[test]
fn empty_poll() {
    let p = qv(4);
    let o = process_poll(&p, &[], &[]);
    assert_eq!(o.state.leaves().len(), 1);
    assert_eq!(o.tally.votes, vec![0; 4]);
    assert_eq!(o.tally.spent, 0);
    assert!(o.validity.is_empty());
}
