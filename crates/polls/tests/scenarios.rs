//! MACI's scenarios as oracle tests, rebuilt from MACI's documented
//! behaviour and the cases of its core `Poll.test.ts` (processMessage
//! errors) and its end-to-end key-change tests (key change against
//! bribery), not copied from them: key changes, nonces, credits, option
//! range, cross-poll replay, and the override rules that follow from
//! processing the log backwards.
//!
//! Each test writes the log in the order the messages were sent; the
//! comments give the processing order (last sent first).

mod common;

use common::*;
use triad_maci::Command;
use triad_polls::{process_poll, Invalid, Mode, PollParams, SignUp};

const BRIBER_OPTION: u64 = 0;
const OWN_OPTION: u64 = 1;

/// MACI's end-to-end key-change test, one key change: the voter votes as the briber
/// watches (original key, nonce 1), then logs a key change that also votes
/// (nonce 1, signed with the original key). Processed first, the key
/// change installs the new key; the bribed vote then fails the signature
/// (and the nonce) check.
#[test]
fn key_change_voids_the_bribed_vote() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    let bribed = vote(1, 1, BRIBER_OPTION, 9, 1, 1);
    let key_change = vote(1, 1, OWN_OPTION, 3, 1, 2);
    let o = process_poll(&p, &ups, &[bribed.clone(), key_change]);
    assert_eq!(o.validity, vec![Err(Invalid::Signature), Ok(())]);
    assert_eq!(o.tally.votes, vec![0, 3]);
    assert_eq!(o.state.leaves()[1].pub_key, pk(2));
    assert_eq!(o.state.leaves()[1].voice_credit_balance, 100 - 9);

    // Without the key change the bribed vote stands.
    let o = process_poll(&p, &ups, &[bribed]);
    assert_eq!(o.tally.votes, vec![9, 0]);
}

/// The brief's case: a key change sent last (nonce 1) invalidates every
/// earlier message signed with the old key — including one that would
/// otherwise be valid (its nonce 2 is exactly what the ballot expects after
/// the key change).
#[test]
fn key_change_sent_last_invalidates_earlier_messages_of_the_old_key() {
    let p = qv(3);
    let ups = [signup(1, 100)];
    let earlier = [vote(1, 1, BRIBER_OPTION, 5, 3, 1), vote(1, 1, 2, 4, 2, 1)];
    // Control: the same log with a last message that keeps key 1.
    let mut keep = earlier.to_vec();
    keep.push(vote(1, 1, OWN_OPTION, 1, 1, 1));
    let o = process_poll(&p, &ups, &keep);
    assert_eq!(o.validity, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(o.tally.votes, vec![5, 1, 4]);

    let mut change = earlier.to_vec();
    change.push(vote(1, 1, OWN_OPTION, 1, 1, 2));
    let o = process_poll(&p, &ups, &change);
    // Processing: the key change (valid, key 1 → 2, ballot nonce 1); then
    // nonce 2 signed with key 1: right nonce, wrong key; then nonce 3: the
    // ballot nonce is still 1, and the key is wrong.
    assert_eq!(
        o.validity,
        vec![Err(Invalid::Signature), Err(Invalid::Signature), Ok(())]
    );
    assert_eq!(o.tally.votes, vec![0, 1, 0]);
    assert_eq!(o.state.ballots()[1].nonce, 1);
}

/// How a client casts several votes with a key change (as clrfund's does):
/// build the batch with nonces 1..k — key change first, signed
/// with the old key, then votes signed with the new key — and log it
/// reversed, so the key change is logged last and processed first.
#[test]
fn batch_with_key_change_then_votes_with_the_new_key() {
    let p = qv(3);
    let ups = [signup(1, 100)];
    let batch = [
        vote(1, 1, 0, 0, 1, 2), // key change: signed by key 1, installs key 2
        vote(1, 2, 1, 5, 2, 2),
        vote(1, 2, 2, 7, 3, 2),
    ];
    let log: Vec<_> = batch.iter().rev().cloned().collect();
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(o.tally.votes, vec![0, 5, 7]);
    assert_eq!(o.tally.spent, 74);
    assert_eq!(o.state.leaves()[1].voice_credit_balance, 26);
    assert_eq!(o.state.ballots()[1].nonce, 3);

    // Logged in build order instead, only the key change counts: the votes
    // are reached first, while the ballot nonce is 0 and the key is key 1.
    let o = process_poll(&p, &ups, &batch);
    assert_eq!(
        o.validity,
        vec![Ok(()), Err(Invalid::Signature), Err(Invalid::Signature)]
    );
    assert_eq!(o.tally.votes, vec![0, 0, 0]);
}

/// Several key changes (MACI's key-change tests): each later key change, signed
/// with the key the leaf has when it is processed, wins; a key change
/// signed with a key that has since been replaced is void.
#[test]
fn several_key_changes() {
    let p = qv(3);
    let ups = [signup(1, 100)];
    let log = [
        vote(1, 1, 0, 9, 1, 1), // bribed, key 1
        vote(1, 1, 1, 3, 1, 2), // key 1 → 2
        vote(1, 1, 2, 2, 1, 3), // key 1 → 3 again (the voter still holds key 1)
    ];
    let o = process_poll(&p, &ups, &log);
    // Processed: the last (key 1 → 3) first; the others were signed with
    // key 1, which is gone.
    assert_eq!(
        o.validity,
        vec![Err(Invalid::Signature), Err(Invalid::Signature), Ok(())]
    );
    assert_eq!(o.tally.votes, vec![0, 0, 2]);
    assert_eq!(o.state.leaves()[1].pub_key, pk(3));

    // A chain: key 1 → 2 logged last, and before it a message signed with
    // key 2 (nonce 2) moving to key 3: both valid, key 3 at the end.
    let log = [vote(1, 2, 1, 4, 2, 3), vote(1, 1, 0, 1, 1, 2)];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Ok(())]);
    assert_eq!(o.state.leaves()[1].pub_key, pk(3));
    assert_eq!(o.tally.votes, vec![1, 4, 0]);
}

/// Wrong nonces (Poll.test.ts "invalid nonce"): nonces that increase in log
/// order count only the first message; nonce 0 never counts; a repeated
/// nonce 1 lets the latest message win.
#[test]
fn wrong_nonces() {
    let p = qv(3);
    let ups = [signup(1, 100)];
    let increasing = [
        vote(1, 1, 0, 1, 1, 1),
        vote(1, 1, 1, 2, 2, 1),
        vote(1, 1, 2, 3, 3, 1),
    ];
    let o = process_poll(&p, &ups, &increasing);
    assert_eq!(
        o.validity,
        vec![Ok(()), Err(Invalid::Nonce), Err(Invalid::Nonce)]
    );
    assert_eq!(o.tally.votes, vec![1, 0, 0]);

    let zero = [vote(1, 1, 0, 1, 0, 1)];
    assert_eq!(
        process_poll(&p, &ups, &zero).validity,
        vec![Err(Invalid::Nonce)]
    );

    // A gap: 1 (last) then 3 — 3 is never the expected 2.
    let gap = [vote(1, 1, 1, 2, 3, 1), vote(1, 1, 0, 1, 1, 1)];
    let o = process_poll(&p, &ups, &gap);
    assert_eq!(o.validity, vec![Err(Invalid::Nonce), Ok(())]);

    // Vote override: the same nonce 1 twice; the later message is
    // processed first and takes the nonce.
    let twice = [vote(1, 1, 0, 5, 1, 1), vote(1, 1, 0, 3, 1, 1)];
    let o = process_poll(&p, &ups, &twice);
    assert_eq!(o.validity, vec![Err(Invalid::Nonce), Ok(())]);
    assert_eq!(o.tally.votes, vec![3, 0, 0]);
}

/// An invalid message does not consume a nonce: the messages around it
/// count as if it were absent.
#[test]
fn invalid_message_does_not_break_the_nonce_sequence() {
    let p = qv(3);
    let ups = [signup(1, 100), signup(2, 100)];
    let log = [
        vote(1, 1, 1, 2, 2, 1),
        vote(1, 9, 2, 1, 1, 9), // a stranger's key, nonce 1
        vote(1, 1, 0, 1, 1, 1),
    ];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Err(Invalid::Signature), Ok(())]);
    assert_eq!(o.tally.votes, vec![1, 2, 0]);
}

/// Without a key change a newer batch does not retire an older, longer
/// one: after the newer batch (nonces 1..j) the ballot nonce is j, and the
/// older messages with nonces j+1, … are valid in turn. MACI behaves so;
/// only a key change retires everything older.
#[test]
fn newer_batch_without_key_change_keeps_older_higher_nonces() {
    let p = qv(3);
    let ups = [signup(1, 100)];
    let older = [vote(1, 1, 2, 4, 2, 1), vote(1, 1, 0, 5, 1, 1)];
    let newer_keep = vote(1, 1, 0, 2, 1, 1);
    let mut log = older.to_vec();
    log.push(newer_keep);
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Err(Invalid::Nonce), Ok(())]);
    assert_eq!(
        o.tally.votes,
        vec![2, 0, 4],
        "the older option-2 vote survives"
    );

    let newer_change = vote(1, 1, 0, 2, 1, 2);
    let mut log = older.to_vec();
    log.push(newer_change);
    let o = process_poll(&p, &ups, &log);
    assert_eq!(
        o.validity,
        vec![Err(Invalid::Signature), Err(Invalid::Signature), Ok(())]
    );
    assert_eq!(o.tally.votes, vec![2, 0, 0]);
}

/// Replace, not add — and "last processed wins": an older message with the
/// right nonce, processed after a newer one for the same option, replaces
/// the newer weight.
#[test]
fn older_message_processed_later_replaces_the_weight() {
    let p = qv(2);
    let ups = [signup(1, 100)];
    let log = [vote(1, 1, 0, 7, 2, 1), vote(1, 1, 0, 2, 1, 1)];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Ok(())]);
    assert_eq!(o.tally.votes, vec![7, 0]);
    assert_eq!(o.state.leaves()[1].voice_credit_balance, 100 - 49);
}

/// Insufficient credits (Poll.test.ts "insufficient voice credits"), QV:
/// the check is against what is left after the messages processed before,
/// and a replaced weight gives its cost back.
#[test]
fn insufficient_credits() {
    let p = qv(3);
    let ups = [signup(1, 100), signup(2, 100)];
    let log = [
        vote(1, 1, 1, 7, 2, 1),  // processed second: 49 > 36 left
        vote(1, 1, 0, 8, 1, 1),  // processed first: 64 of 100
        vote(2, 2, 0, 11, 1, 2), // 121 > 100
        vote(2, 2, 0, 10, 2, 2), // after the invalid one: nonce 2 is wrong
    ];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(
        o.validity,
        vec![
            Err(Invalid::Credits),
            Ok(()),
            Err(Invalid::Credits),
            Err(Invalid::Nonce)
        ]
    );
    assert_eq!(o.tally.votes, vec![8, 0, 0]);
    assert_eq!(o.state.leaves()[1].voice_credit_balance, 36);
    assert_eq!(o.state.leaves()[2].voice_credit_balance, 100);

    // Replacing option 0's 8 by 6 frees 64 − 36 = 28 credits, so a later
    // message (nonce 3, processed third) can then afford 8² = 64 on option 1.
    let log = [
        vote(1, 1, 1, 8, 3, 1),
        vote(1, 1, 0, 6, 2, 1),
        vote(1, 1, 0, 8, 1, 1),
    ];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(o.tally.votes, vec![6, 8, 0]);
    assert_eq!(o.tally.spent, 100);
}

/// Linear mode: the same log costs the weights, not their squares.
#[test]
fn insufficient_credits_linear() {
    let p = params(2, Mode::Linear);
    let ups = [signup(1, 10)];
    let log = [vote(1, 1, 1, 5, 2, 1), vote(1, 1, 0, 6, 1, 1)];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Err(Invalid::Credits), Ok(())]);
    let log = [vote(1, 1, 1, 4, 2, 1), vote(1, 1, 0, 6, 1, 1)];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Ok(())]);
    assert_eq!(o.tally.spent, 10);
}

/// Out-of-range option (Poll.test.ts "invalid vote option index"): V − 1
/// counts, V does not, and the invalid message leaves the nonce for the
/// next one.
#[test]
fn out_of_range_option() {
    let p = qv(5);
    let ups = [signup(1, 100)];
    let log = [vote(1, 1, 4, 3, 1, 1), vote(1, 1, 5, 3, 1, 1)];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(o.validity, vec![Ok(()), Err(Invalid::VoteOption)]);
    assert_eq!(o.tally.votes, vec![0, 0, 0, 0, 3]);
}

/// Replay from another poll: a message validly signed for poll 8 by a
/// voter with the same key and index in poll 7. MACI v3 would accept it
/// (its processing never compares pollId; only the per-poll coordinator key
/// protects it); the triad refuses it.
#[test]
fn replay_from_another_poll() {
    let other = PollParams::new(
        POLL + 1,
        2,
        Mode::Quadratic,
        SIGNUP_DEADLINE,
        VOTING_DEADLINE,
    )
    .unwrap();
    let this = qv(2);
    let ups = [signup(1, 100)];
    let for_other = signed(
        1,
        Command {
            poll_id: POLL + 1,
            ..command(1, 0, 9, 1, 1)
        },
    );
    // Valid where it was meant to go.
    assert_eq!(
        process_poll(&other, &ups, std::slice::from_ref(&for_other)).validity,
        vec![Ok(())]
    );
    // Replayed here: refused, and it changes nothing.
    let o = process_poll(&this, &ups, std::slice::from_ref(&for_other));
    assert_eq!(o.validity, vec![Err(Invalid::PollId)]);
    let empty = process_poll(&this, &ups, &[]);
    assert_eq!((o.state, o.tally), (empty.state, empty.tally));
    // The same vote signed for this poll counts.
    let here = vote(1, 1, 0, 9, 1, 1);
    let o = process_poll(&this, &ups, std::slice::from_ref(&here));
    assert_eq!(o.tally.votes, vec![9, 0]);
    // A replayed key change logged last cannot void this poll's vote.
    let replayed_key_change = signed(
        1,
        Command {
            poll_id: POLL + 1,
            ..command(1, 1, 0, 1, 2)
        },
    );
    let o = process_poll(&this, &ups, &[here, replayed_key_change]);
    assert_eq!(o.validity, vec![Ok(()), Err(Invalid::PollId)]);
    assert_eq!(o.tally.votes, vec![9, 0]);
}

/// Several voters, interleaved in the log: each leaf is processed on its
/// own, and the tally adds them up (MACI's tally: votes, spent, spent per
/// option).
#[test]
fn interleaved_voters_and_tally() {
    let p = qv(3);
    let ups = [
        signup(1, 100),
        signup(2, 50),
        signup(3, 25),
        SignUp {
            timestamp: SIGNUP_DEADLINE,
            ..signup(4, 100)
        },
    ];
    let log = [
        vote(2, 2, 2, 7, 1, 2),
        vote(1, 1, 0, 3, 2, 1),
        vote(3, 3, 1, 5, 1, 3),
        vote(1, 1, 1, 9, 1, 1),
        vote(4, 4, 0, 1, 1, 4), // signed up too late
        vote(2, 2, 2, 5, 1, 2), // overrides voter 2's first message
    ];
    let o = process_poll(&p, &ups, &log);
    assert_eq!(
        o.validity,
        vec![
            Err(Invalid::Nonce),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(Invalid::LateSignUp),
            Ok(())
        ]
    );
    assert_eq!(o.tally.votes, vec![3, 9 + 5, 5]);
    assert_eq!(o.tally.spent_per_option, vec![9, 81 + 25, 25]);
    assert_eq!(o.tally.spent, 140);
    let balances: Vec<u64> = o
        .state
        .leaves()
        .iter()
        .map(|l| l.voice_credit_balance)
        .collect();
    assert_eq!(balances, vec![0, 100 - 90, 50 - 25, 0, 100]);
}
