//! What a party sees while processing a poll does not depend on the votes.
//!
//! Two polls with the same public inputs (sign-ups, log length, timestamps,
//! every signature valid) and the same state indices named in the same
//! positions, but different secret contents: options, weights, nonces, key
//! changes, and so which messages are valid. With the parties' randomness
//! fixed, in both security modes, every party sends and receives exactly the same sequence of
//! message sizes in both polls. That sequence includes the shape of the
//! sort's recursion, which follows its opened comparison results, so a
//! comparison that depended on a vote would show; and the opened tally is
//! checked to differ (the only thing meant to).
//!
//! (With different state indices the sort's comparisons differ, and so may
//! their number; they are a function of a uniformly random permutation of
//! distinct keys only, which is the argument of Hamada et al. for
//! shuffle-then-sort, not something one run can test.)

mod common;

use common::*;
use rand::SeedableRng;
use triad_mpc::Security;
use triad_polls::mpc::{encode, process_shared, share_messages, PlainMessage};
use triad_polls::{process_poll, Message};

/// Runs a poll with fixed party randomness; returns each party's view
/// (message lengths) and the tally.
fn view(msgs: &[Message], security: Security) -> ([Vec<Event>; 3], triad_polls::Tally) {
    let p = qv(3);
    let ups = vec![signup(1, 100), signup(2, 100), signup(3, 50)];
    let plain: Vec<PlainMessage> = msgs.iter().map(|m| encode(m).unwrap()).collect();
    let times: Vec<u64> = msgs.iter().map(|m| m.timestamp).collect();
    let sh = share_messages(&plain, &mut rand::rngs::StdRng::seed_from_u64(5));
    let (views, tallies) = recorded(|party| {
        let i = party.id.index();
        party.security = security;
        process_shared(party, &p, &ups, &times, &sh[i]).unwrap().0
    });
    assert_eq!(tallies[0], process_poll(&p, &ups, msgs).tally);
    (views, tallies[0].clone())
}

#[test]
fn what_each_party_sees_does_not_depend_on_the_votes() {
    // Same indices in the same positions (1, 2, 1, 3, 2), everything else
    // different: in A all five count; in B a key change voids two, one has
    // a wrong nonce, one cannot pay.
    let a = vec![
        vote(1, 1, 0, 1, 2, 1),
        vote(2, 2, 1, 2, 1, 2),
        vote(1, 1, 2, 3, 1, 1),
        vote(3, 3, 0, 1, 1, 3),
        vote(2, 2, 0, 0, 2, 2),
    ];
    let b = vec![
        vote(1, 1, 2, 9, 1, 4),
        vote(2, 2, 2, 5, 7, 2),
        vote(1, 1, 1, 1, 1, 4),
        vote(3, 3, 1, 8, 1, 3),
        vote(2, 5, 1, 1, 1, 2),
    ];
    // Both modes: semi-honest (phases 2–4 over Z_2^128) and malicious
    // (phases 2–4 over binary shares and F_r, with the checks' messages).
    for security in [Security::SemiHonest, Security::Malicious] {
        let (va, ta) = view(&a, security);
        let (vb, tb) = view(&b, security);
        assert_ne!(ta, tb, "the polls must differ in what they open");
        for i in 0..3 {
            assert_eq!(va[i], vb[i], "{security:?}: party {i}'s view differs");
        }
    }
}
