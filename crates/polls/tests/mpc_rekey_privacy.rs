//! What each party sees during a re-keying epoch and the vote processing
//! after it does not depend on whether the deactivation and the re-key
//! worked: with the parties' randomness and the clients' share randomness
//! fixed, a scenario where voter 1 deactivates its key and re-keys
//! successfully and one where the deactivation is signed by another
//! voter's registered key (invalid, secretly) give every party the same
//! sequence of message sizes and the same opened values (signature
//! verdicts, consistency checks, nullifiers), and the same public re-key
//! answers; only the tally differs.

mod common;

use common::*;
use rand::SeedableRng;
use triad_polls::mpc::process::process_shared_registry;
use triad_polls::mpc::rekey::{
    deactivate_shared, rekey_shared, share_deactivations, share_rekeys, SharedRegistry,
};
use triad_polls::mpc::{encode, share_messages, PlainMessage};
use triad_polls::rekey::{process_poll_with_epochs, Epoch};
use triad_polls::{Message, Tally};

type Public = (
    usize,
    Vec<Result<u64, triad_polls::mpc::rekey::RekeyError>>,
    Vec<String>,
);

/// `logged`: the services' rule (each re-key with its claimed nullifier).
fn run(epoch: &Epoch, votes: &[Message], logged: bool) -> ([Vec<Event>; 3], Public, Tally) {
    let p = qv(3);
    let signups = [signup(1, 100), signup(2, 100), signup(3, 100)];
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let d = share_deactivations(&epoch.deactivations, &mut rng).unwrap();
    let r = share_rekeys(&epoch.rekeys, &mut rng);
    let plain: Vec<PlainMessage> = votes.iter().map(|m| encode(m).unwrap()).collect();
    let sh = share_messages(&plain, &mut rng);
    let keys: Vec<_> = epoch.rekeys.iter().map(|r| r.new_key).collect();
    let claimed: Vec<triad_maci::Fr> = epoch
        .rekeys
        .iter()
        .map(|r| triad_polls::rekey::rekey_nullifier(&r.secret, POLL))
        .collect();
    let claimed = logged.then_some(&claimed[..]);
    let (views, out) = recorded(|party| {
        let i = party.id.index();
        let mut reg = SharedRegistry::new(party, &signups);
        let dt: Vec<u64> = epoch.deactivations.iter().map(|m| m.timestamp).collect();
        let st = deactivate_shared(party, &p, &mut reg, &d[i], &dt).unwrap();
        let rt: Vec<u64> = epoch.rekeys.iter().map(|r| r.timestamp).collect();
        let v = rekey_shared(party, &p, &mut reg, &r[i], &keys, &rt, claimed).unwrap();
        let mut nullifiers: Vec<String> = reg
            .nullifiers
            .iter()
            .map(|n| n.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        nullifiers.sort();
        let times: Vec<u64> = votes.iter().map(|m| m.timestamp).collect();
        let (t, _) = process_shared_registry(party, &p, &reg, &times, &sh[i]).unwrap();
        ((st.entered, v, nullifiers), t)
    });
    let (public, tally) = out[0].clone();
    let (want, _, _) = process_poll_with_epochs(&p, &signups, std::slice::from_ref(epoch), votes);
    assert_eq!(tally, want.tally);
    (views, public, tally)
}

#[test]
fn a_parties_view_does_not_depend_on_whether_re_keying_worked() {
    let votes = [
        vote(1, 1, 0, 9, 1, 1),    // the briber, with voter 1's sold key
        vote(4, 50, 1, 10, 1, 50), // voter 1's new key (leaf 4)
        vote(2, 2, 2, 3, 1, 2),
    ];
    let works = Epoch {
        deactivations: vec![deactivation(1, 1, 77), deactivation(3, 3, 5)],
        rekeys: vec![rekey(77, 50)],
    };
    // The same, except that voter 1's deactivation is signed by voter 2's
    // registered key: its signature verifies (publicly), but it is not
    // leaf 1's key, so it is invalid and the re-key matches nothing.
    let fails = Epoch {
        deactivations: vec![deactivation(1, 2, 77), deactivation(3, 3, 5)],
        rekeys: vec![rekey(77, 50)],
    };
    // As the oracle runs it, and as the services do (claimed nullifiers).
    for logged in [false, true] {
        let (va, pa, ta) = run(&works, &votes, logged);
        let (vb, pb, tb) = run(&fails, &votes, logged);
        assert_eq!(pa, pb, "public outcomes");
        for i in 0..3 {
            assert_eq!(va[i], vb[i], "party {i}'s view");
        }
        // Only the tally tells the two apart: the new key's vote counts,
        // or the briber's.
        assert_eq!(ta.votes, vec![0, 10, 3]);
        assert_eq!(tb.votes, vec![9, 0, 3]);
    }
}

/// Within a batch of re-keys, the new leaves are appended in the order the
/// re-keys were logged, whichever deactivation each one matches: two
/// voters who deactivate and re-key give every party the same view
/// whether re-key 1 carries voter 1's secret and re-key 2 voter 2's, or
/// the other way round (the new keys and their order are the same; only
/// which budget each new leaf received differs, and that stays secret).
#[test]
fn the_order_of_new_leaves_does_not_reveal_which_deactivation_they_came_from() {
    // Leaf 1 has 100 credits, leaf 2 has 100; votes with both new keys.
    let votes = [vote(4, 50, 0, 7, 1, 50), vote(5, 51, 1, 8, 1, 51)];
    let straight = Epoch {
        deactivations: vec![deactivation(1, 1, 77), deactivation(2, 2, 78)],
        rekeys: vec![rekey(77, 50), rekey(78, 51)],
    };
    // Voter 2 re-keys first: the same new keys in the same order, but the
    // secrets (hence the matched deactivations) swapped.
    let crossed = Epoch {
        deactivations: vec![deactivation(1, 1, 78), deactivation(2, 2, 77)],
        rekeys: vec![rekey(77, 50), rekey(78, 51)],
    };
    for logged in [false, true] {
        let (va, pa, ta) = run(&straight, &votes, logged);
        let (vb, pb, tb) = run(&crossed, &votes, logged);
        assert_eq!(pa, pb, "public outcomes");
        for i in 0..3 {
            assert_eq!(va[i], vb[i], "party {i}'s view");
        }
        assert_eq!(ta, tb);
        assert_eq!(ta.votes, vec![7, 8, 0]);
    }
}
