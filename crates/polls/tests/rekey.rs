//! The re-keying oracle (`triad_polls::rekey`): each rule of deactivation
//! and re-keying, and the scenarios the design must get right.

mod common;

use common::*;
use triad_polls::rekey::{process_poll_with_epochs, Epoch, Registry, RekeyRefused};
use triad_polls::{Invalid, Tally};

fn votes(t: &Tally) -> Vec<u128> {
    t.votes.clone()
}

#[test]
fn a_bribed_voter_deactivates_and_rekeys_and_only_its_new_vote_counts() {
    let p = qv(3);
    let signups = [signup(1, 100), signup(2, 100)];
    let epochs = [Epoch {
        deactivations: vec![deactivation(1, 1, 77)],
        rekeys: vec![rekey(77, 50)],
    }];
    // Leaf 3 is the new key's. The briber keeps voting with the sold key.
    let messages = [
        vote(1, 1, 0, 5, 1, 1),    // the briber, with the sold (deactivated) key
        vote(2, 2, 1, 4, 1, 2),    // an honest voter
        vote(3, 50, 2, 10, 1, 50), // the re-keyed voter, whole budget
        vote(1, 1, 0, 6, 1, 1),    // the briber again
    ];
    let (out, epochs_out, reg) = process_poll_with_epochs(&p, &signups, &epochs, &messages);
    assert_eq!(epochs_out[0].deactivations, vec![true]);
    assert_eq!(epochs_out[0].rekeys, vec![Ok((3, true))]);
    assert_eq!(reg.leaves()[2].voice_credits, 100);
    assert!(!reg.leaves()[0].active);
    assert_eq!(out.validity[0], Err(Invalid::Inactive));
    assert_eq!(out.validity[3], Err(Invalid::Inactive));
    assert_eq!(out.validity[2], Ok(()));
    assert_eq!(votes(&out.tally), vec![0, 4, 10]);
    assert_eq!(out.tally.spent, 16 + 100);
}

#[test]
fn a_second_deactivation_of_a_leaf_in_an_epoch_is_invalid_and_gives_no_second_key() {
    let p = qv(2);
    let signups = [signup(1, 100)];
    let epochs = [Epoch {
        deactivations: vec![deactivation(1, 1, 5), deactivation(1, 1, 6)],
        rekeys: vec![rekey(5, 50), rekey(6, 51)],
    }];
    let (_, out, reg) = process_poll_with_epochs(&p, &signups, &epochs, &[]);
    assert_eq!(out[0].deactivations, vec![true, false]);
    assert_eq!(out[0].rekeys, vec![Ok((2, true)), Ok((3, false))]);
    assert_eq!(reg.leaves().iter().filter(|l| l.active).count(), 1);
    // And in a later epoch the leaf is inactive: nothing to deactivate.
    let epochs = [
        Epoch {
            deactivations: vec![deactivation(1, 1, 5)],
            rekeys: vec![],
        },
        Epoch {
            deactivations: vec![deactivation(1, 1, 6)],
            rekeys: vec![rekey(6, 51)],
        },
    ];
    let (_, out, _) = process_poll_with_epochs(&p, &signups, &epochs, &[]);
    assert_eq!(out[1].deactivations, vec![false]);
    assert_eq!(out[1].rekeys, vec![Ok((2, false))]);
}

#[test]
fn deactivation_needs_the_registered_key_a_valid_signature_and_this_poll() {
    let p = qv(2);
    let signups = [signup(1, 100), signup(2, 100)];
    // A vote message changed leaf 1's key to key 9: the registered key is
    // still key 1, so a deactivation signed by 9 is invalid.
    let mut other_poll = deactivation(1, 1, 5);
    other_poll.command.poll_id = POLL + 1;
    let other_poll = signed(1, other_poll.command);
    let mut late = deactivation(2, 2, 5);
    late.timestamp = VOTING_DEADLINE;
    let mut forged = deactivation(2, 2, 5);
    forged.command.salt += triad_maci::Fr::from(1u64); // signature no longer matches
    let mut reg = Registry::new(&signups);
    let v = reg.deactivate(
        &p,
        &[
            deactivation(1, 9, 5), // not the registered key
            deactivation(1, 2, 5), // another voter's key
            other_poll,
            late,
            forged,
            deactivation(3, 1, 5), // no such leaf
            deactivation(0, 1, 5), // the blank leaf
        ],
    );
    assert_eq!(v, vec![false; 7]);
    assert!(reg.leaves().iter().all(|l| l.active));
    assert!(reg.list().iter().all(|e| !e.valid && e.balance == 0));
}

#[test]
fn a_rekey_with_a_wrong_secret_or_before_any_deactivation_adds_a_key_that_never_counts() {
    let p = qv(2);
    let signups = [signup(1, 100)];
    let epochs = [
        Epoch {
            deactivations: vec![],
            rekeys: vec![rekey(5, 50)], // before the deactivation
        },
        Epoch {
            deactivations: vec![deactivation(1, 1, 5)],
            rekeys: vec![rekey(4, 51)], // the wrong secret
        },
    ];
    let messages = [vote(2, 50, 0, 3, 1, 50), vote(3, 51, 1, 3, 1, 51)];
    let (out, eo, reg) = process_poll_with_epochs(&p, &signups, &epochs, &messages);
    assert_eq!(eo[0].rekeys, vec![Ok((2, false))]);
    assert_eq!(eo[1].rekeys, vec![Ok((3, false))]);
    assert_eq!(reg.leaves()[1].voice_credits, 0);
    assert_eq!(out.validity, vec![Err(Invalid::Inactive); 2]);
    assert_eq!(votes(&out.tally), vec![0, 0]);
    // The secret's nullifier was used by the early re-key: the right
    // secret can no longer re-key (the voter knew it reused s).
    let mut reg2 = reg.clone();
    assert_eq!(
        reg2.rekey(&p, &[rekey(5, 52)]),
        vec![Err(RekeyRefused::NullifierReused)]
    );
    assert_eq!(reg2.leaves().len(), reg.leaves().len());
}

#[test]
fn a_repeated_nullifier_or_a_late_rekey_is_refused_and_adds_nothing() {
    let p = qv(2);
    let mut reg = Registry::new(&[signup(1, 40)]);
    reg.deactivate(&p, &[deactivation(1, 1, 5)]);
    let mut late = rekey(5, 52);
    late.timestamp = VOTING_DEADLINE;
    let r = reg.rekey(&p, &[late, rekey(5, 50), rekey(5, 51)]);
    assert_eq!(
        r,
        vec![
            Err(RekeyRefused::Late),
            Ok((2, true)),
            Err(RekeyRefused::NullifierReused)
        ]
    );
    assert_eq!(reg.leaves().len(), 2);
    assert_eq!(reg.leaves()[1].voice_credits, 40);
}

#[test]
fn a_rekeyed_leaf_can_be_deactivated_again_with_its_new_key_and_keeps_its_balance() {
    let p = qv(2);
    let signups = [signup(1, 64)];
    let epochs = [
        Epoch {
            deactivations: vec![deactivation(1, 1, 5)],
            rekeys: vec![rekey(5, 50)],
        },
        Epoch {
            // The registered key of leaf 2 is key 50.
            deactivations: vec![deactivation(2, 50, 6)],
            rekeys: vec![rekey(6, 51)],
        },
    ];
    let messages = [vote(2, 50, 0, 8, 1, 50), vote(3, 51, 1, 8, 1, 51)];
    let (out, _, reg) = process_poll_with_epochs(&p, &signups, &epochs, &messages);
    assert_eq!(
        reg.leaves().iter().map(|l| l.active).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert_eq!(reg.leaves()[2].voice_credits, 64);
    assert_eq!(out.validity, vec![Err(Invalid::Inactive), Ok(())]);
    assert_eq!(votes(&out.tally), vec![0, 8]);
}

#[test]
fn an_invalid_deactivation_changes_nothing_and_the_voters_votes_still_count() {
    let p = qv(2);
    let signups = [signup(1, 100)];
    let epochs = [Epoch {
        deactivations: vec![deactivation(1, 2, 5)], // wrong key
        rekeys: vec![rekey(5, 50)],
    }];
    let messages = [vote(1, 1, 1, 7, 1, 1), vote(2, 50, 0, 7, 1, 50)];
    let (out, _, _) = process_poll_with_epochs(&p, &signups, &epochs, &messages);
    assert_eq!(out.validity, vec![Ok(()), Err(Invalid::Inactive)]);
    assert_eq!(votes(&out.tally), vec![0, 7]);
}

#[test]
fn the_first_valid_entry_with_the_secret_gives_the_balance() {
    // One secret used for two leaves (one voter, two accounts): one re-key
    // gets the first leaf's budget; the second budget is simply lost.
    let p = qv(2);
    let signups = [signup(1, 30), signup(2, 70)];
    let epochs = [Epoch {
        deactivations: vec![deactivation(1, 1, 5), deactivation(2, 2, 5)],
        rekeys: vec![rekey(5, 50)],
    }];
    let (_, out, reg) = process_poll_with_epochs(&p, &signups, &epochs, &[]);
    assert_eq!(out[0].deactivations, vec![true, true]);
    assert_eq!(reg.leaves()[2].voice_credits, 30);
}
