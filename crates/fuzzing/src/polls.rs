//! Targets for the polls' bodies at a party: a voter's share set
//! (`POST /v1/polls/{id}/shares`) and the coordinator's tally request
//! (`POST /internal/polls/{id}/tally`).

use triad_party::polls::check_tally_request;
use triad_wire::https::parse_json;
use triad_wire::poll::{held_commitments, holder_key, MessageShares, TallyRequest};

use crate::fuzz_notary_key;

/// `MessageShares` JSON and `MessageShares::parse`. Invariants: JSON round
/// trip; an accepted share set re-encodes to a body that parses to the same
/// salts and set; each component's commitment changes when one of its
/// words or elements does, and only then.
pub fn poll_shares(data: &[u8]) {
    let Ok(up) = parse_json::<MessageShares>(data) else {
        return;
    };
    let json = serde_json::to_string(&up).unwrap();
    let back: MessageShares = serde_json::from_str(&json).expect("own JSON parses");
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let Ok((salts, set)) = up.parse() else {
        return;
    };
    let again = MessageShares::new(&up.submission_id, &up.token, salts, &set);
    assert_eq!(
        again.parse().expect("re-encoded shares parse"),
        (salts, set.clone())
    );
    let [c, d] = held_commitments(1, 0, &salts, &set);
    let mut w = set.clone();
    w.words[1][0] ^= 1;
    let [c1, d1] = held_commitments(1, 0, &salts, &w);
    assert_eq!(c1, c);
    assert_ne!(d1, d);
    let mut f = set.clone();
    f.fr[0][0] += triad_crypto::Fr::from(1u64);
    let [c2, d2] = held_commitments(1, 0, &salts, &f);
    assert_ne!(c2, c);
    assert_eq!(d2, d);
}

/// `TallyRequest` JSON through the party's `check_tally_request` (notary:
/// the fuzz key; pinned spec: the request's own; judged at its voting
/// deadline, as every party). Invariants: JSON round trip; an accepted
/// request gives one state-index sign-up per entry, one (id, the logged
/// commitments to this party's two components) per log entry, in order, every timestamp before the
/// deadline, re-keys after the sign-up deadline with fresh nullifiers and
/// consecutive state indexes, and a digest that names the request; a request under another
/// pinned spec is refused.
pub fn tally_request(data: &[u8]) {
    let Ok(req) = parse_json::<TallyRequest>(data) else {
        return;
    };
    let json = serde_json::to_string(&req).unwrap();
    let back: TallyRequest = serde_json::from_str(&json).expect("own JSON parses");
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let notary = fuzz_notary_key().public_key();
    let now = req.spec.voting_deadline;
    for party in 0..3 {
        let Ok(c) = check_tally_request(&req.spec, &req, &notary, party, now) else {
            continue;
        };
        assert_eq!(c.signups.len(), req.signups.len());
        assert_eq!(c.entries.len(), req.log.len());
        let mut nullifiers = std::collections::HashSet::new();
        let mut leaf = req.signups.len() as u64;
        for (k, e) in req.log.iter().enumerate() {
            let got = &c.entries[k];
            assert_eq!(got.submission_id, e.submission_id);
            assert_eq!(got.commitment, holder_key(&e.commitments, party));
            assert!(got.timestamp < req.spec.voting_deadline);
            assert_eq!(got.kind, e.kind);
            // Re-keys: after sign-up, a new nullifier, the next leaf.
            if let Some((_, n)) = &got.rekey {
                assert!(got.timestamp >= req.spec.signup_deadline);
                assert!(nullifiers.insert(triad_crypto::fr_to_hex(n)));
                leaf += 1;
                assert_eq!(e.state_index, Some(leaf));
            } else {
                assert_eq!(e.state_index, None);
            }
        }
        assert_eq!(c.input_sha256.len(), 64);
        let mut other = req.spec.clone();
        other.voice_credits = other.voice_credits.wrapping_add(1).max(1);
        if other != req.spec {
            assert!(check_tally_request(&other, &req, &notary, party, now).is_err());
        }
        if now > 0 {
            assert!(check_tally_request(&req.spec, &req, &notary, party, now - 1).is_err());
        }
    }
}
