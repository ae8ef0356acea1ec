//! The storage trait test suite, run against both backends: every check
//! takes an opener (a closure opening the same store again, so a check can
//! prove what survives a reopen) and the `suite!` list below runs each one
//! on a fresh SQLite file (`store::suite::sqlite::*`) and on a fresh
//! PostgreSQL database (`store::suite::postgres::*`). The PostgreSQL ones
//! fail, never skip, without a server (`triad_pg::test_server_url`).

use std::collections::BTreeSet;
use std::num::Wrapping;

use triad_attestation::{DataSource, DataSpec};
use triad_crypto::Fr;
use triad_mpc::Z128;
use triad_polls::mpc::encode::{FR, WORDS};
use triad_polls::mpc::rekey::C_WORDS;
use triad_stats::StatsSpec;
use triad_wire::messages::{RejectReason, StudyParams};
use triad_wire::poll::{MessageKind, PollMode, PollSpec, ShareSet, SignedTally};
use triad_wire::SignedRelease;

use super::{BatchState, Holding, PartyStore, PutShares, StoreError, StoredUpload};

type Open<'a> = &'a dyn Fn() -> Box<dyn PartyStore>;

fn study(id: &str, name: &str) -> StudyParams {
    StudyParams {
        id: id.into(),
        name: name.into(),
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        },
        source: DataSource::named("127.0.0.1"),
        min_cohort: 10,
        min_new: 10,
        release_interval_secs: 1,
        stats: StatsSpec::default(),
    }
}

fn sh(id: &str, v: u128) -> (String, Z128, Z128) {
    // High bits set: the whole 128 bits must round-trip.
    (id.to_string(), Wrapping(v), Wrapping(u128::MAX - v))
}

fn nul(id: &str, n: &str) -> (String, String) {
    (id.to_string(), n.to_string())
}

fn signed(party: u8, json: &str) -> SignedRelease {
    SignedRelease {
        party,
        release_json: json.into(),
        signature: "ab".repeat(64),
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Ids whose byte order differs from most locales' order (case, `-`, `_`).
const AWKWARD: [&str; 5] = ["B", "a", "a-b", "a_c", "ab"];

pub(super) fn pins_a_study_on_first_sight(open: Open) {
    let s = open();
    assert!(s.pinned_study("a1").unwrap().is_none());
    assert_eq!(s.pin_study(&study("a1", "first")).unwrap().name, "first");
    // Later requests cannot change it.
    assert_eq!(s.pin_study(&study("a1", "second")).unwrap().name, "first");
    assert_eq!(s.pinned_study("a1").unwrap().unwrap(), study("a1", "first"));
    for id in ["b", "a-2"] {
        s.pin_study(&study(id, id)).unwrap();
    }
    // Byte order.
    assert_eq!(s.study_ids().unwrap(), ids(&["a-2", "a1", "b"]));
    // Durable.
    drop(s);
    let s = open();
    assert_eq!(s.pinned_study("a1").unwrap().unwrap().name, "first");
}

pub(super) fn pins_a_new_study_until_a_batch_names_it(open: Open) {
    let s = open();
    assert_eq!(s.pin_new_study(&study("n", "v1")).unwrap().name, "v1");
    // No batch used it yet: an operator's retry may change it.
    assert_eq!(s.pin_new_study(&study("n", "v2")).unwrap().name, "v2");
    assert_eq!(s.pinned_study("n").unwrap().unwrap().name, "v2");
    // pin_study never changes it.
    assert_eq!(s.pin_study(&study("n", "v3")).unwrap().name, "v2");
    // A batch names the study: fixed, even once that batch is aborted.
    s.put_pending(1, "n", b"h", &[None], &[sh("x", 1)], &[nul("x", "nx")])
        .unwrap();
    assert_eq!(s.pin_new_study(&study("n", "v4")).unwrap().name, "v2");
    assert_eq!(s.abort(1).unwrap(), BatchState::Aborted);
    assert_eq!(s.pin_new_study(&study("n", "v5")).unwrap().name, "v2");
    // An aborted unknown batch names no study.
    assert_eq!(s.abort(2).unwrap(), BatchState::Aborted);
    assert_eq!(s.pin_new_study(&study("m", "w1")).unwrap().name, "w1");
    assert_eq!(s.pin_new_study(&study("m", "w2")).unwrap().name, "w2");
    drop(s);
    let s = open();
    assert_eq!(s.pinned_study("n").unwrap().unwrap().name, "v2");
    assert_eq!(s.pinned_study("m").unwrap().unwrap().name, "w2");
}

fn upload(id: &str, token: u8, c: u8, at: i64) -> StoredUpload {
    StoredUpload {
        submission_id: id.into(),
        token_sha256: [token; 32],
        components: vec![c; 112],
        uploaded_ms: at,
    }
}

/// Uploads are held across a reopen, replaced under the same key, kept
/// apart under another token, expired by age and forgotten on request.
pub(super) fn uploads_are_durable_until_removed_or_expired(open: Open) {
    let s = open();
    s.put_upload(&upload("a", 1, 1, 1_000), 0).unwrap();
    s.put_upload(&upload("b", 1, 2, 2_000), 0).unwrap();
    // The same submission under another token is another upload.
    s.put_upload(&upload("a", 2, 3, 2_500), 0).unwrap();
    // A repeated upload replaces the earlier one.
    s.put_upload(&upload("b", 1, 4, 3_000), 0).unwrap();
    drop(s);
    let s = open();
    let all = s.uploads_since(0).unwrap();
    assert_eq!(
        all,
        vec![
            upload("a", 1, 1, 1_000),
            upload("a", 2, 3, 2_500),
            upload("b", 1, 4, 3_000)
        ]
    );
    assert_eq!(s.uploads_since(2_500).unwrap().len(), 2);
    // Forgetting is by exact key; unknown keys are ignored.
    s.remove_uploads(&[("a".into(), [2; 32]), ("zz".into(), [9; 32])])
        .unwrap();
    assert_eq!(
        s.uploads_since(0).unwrap(),
        vec![upload("a", 1, 1, 1_000), upload("b", 1, 4, 3_000)]
    );
    // An upload expires uploads older than its bound in one transaction.
    s.put_upload(&upload("c", 1, 5, 9_000), 2_000).unwrap();
    assert_eq!(
        s.uploads_since(0).unwrap(),
        vec![upload("b", 1, 4, 3_000), upload("c", 1, 5, 9_000)]
    );
}

pub(super) fn pending_commit_abort_and_reopen(open: Open) {
    let s = open();
    s.put_pending(1, "st", b"h1", &[None], &[sh("a", 1)], &[nul("a", "n1")])
        .unwrap();
    s.put_pending(
        2,
        "st",
        b"h2",
        &[None, None],
        &[sh("b", 2), sh("c", 3)],
        &[nul("b", "n2")],
    )
    .unwrap();
    // Pending shares are not statistics input.
    assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 0);
    assert_eq!(s.pending_batches().unwrap(), vec![1, 2]);
    assert_eq!(s.commit(1).unwrap(), BatchState::Committed);
    assert!(s.nullifier_used("st", "n2").unwrap());
    assert_eq!(s.abort(2).unwrap(), BatchState::Aborted);
    // An aborted batch gives its accounts back; a committed one keeps them.
    assert!(!s.nullifier_used("st", "n2").unwrap());
    assert!(s.nullifier_used("st", "n1").unwrap());
    // Idempotent, and a resolved batch never flips.
    assert_eq!(s.commit(1).unwrap(), BatchState::Committed);
    assert_eq!(s.abort(1).unwrap(), BatchState::Committed);
    assert_eq!(s.commit(2).unwrap(), BatchState::Aborted);
    assert_eq!(s.abort(2).unwrap(), BatchState::Aborted);
    // Abort of an unknown batch fences a late prepare.
    assert_eq!(s.abort(3).unwrap(), BatchState::Aborted);
    assert!(s
        .put_pending(3, "st", b"h3", &[None], &[sh("d", 4)], &[])
        .is_err());
    drop(s);
    // Everything above was durable.
    let s = open();
    let (got, shares) = s.committed_shares("st", u64::MAX).unwrap();
    assert_eq!(got, ids(&["a"]));
    assert_eq!(shares.a, vec![Wrapping(1)]);
    assert_eq!(shares.b, vec![Wrapping(u128::MAX - 1)]);
    assert!(s.pending_batches().unwrap().is_empty());
    assert_eq!(s.batch(2).unwrap().unwrap().state, BatchState::Aborted);
    assert_eq!(s.batch(3).unwrap().unwrap().state, BatchState::Aborted);
    assert!(s.nullifier_used("st", "n1").unwrap());
    assert!(!s.nullifier_used("st", "n2").unwrap());
    // A submission id is stored once per study.
    assert!(s
        .put_pending(4, "st", b"h4", &[None], &[sh("a", 5)], &[])
        .is_err());
    assert!(s.batch(4).unwrap().is_none());
}

pub(super) fn put_pending_is_all_or_nothing(open: Open) {
    let s = open();
    let verdicts = [None, Some(RejectReason::CommitmentMismatch), None];
    s.put_pending(
        1,
        "st",
        b"hash-1",
        &verdicts,
        &[sh("a", 1), sh("c", 3)],
        &[nul("a", "n1"), nul("c", "n3")],
    )
    .unwrap();
    let b = s.batch(1).unwrap().unwrap();
    assert_eq!(b.state, BatchState::Pending);
    assert_eq!(b.request_sha256, b"hash-1");
    assert_eq!(b.verdicts, verdicts);
    assert!(s.batch(9).unwrap().is_none());
    assert!(s.nullifier_used("st", "n1").unwrap());
    // An account counts per study.
    assert!(!s.nullifier_used("other", "n1").unwrap());

    let before = s.audit(None, 100).unwrap();
    // The last nullifier is taken: nothing of the batch is stored.
    let e = s.put_pending(
        2,
        "st",
        b"hash-2",
        &[None, None],
        &[sh("x", 7), sh("y", 8)],
        &[nul("x", "n7"), nul("y", "n1")],
    );
    assert!(e.is_err(), "{e:?}");
    // The last share's submission is taken: likewise.
    let e = s.put_pending(3, "st", b"h", &[None], &[sh("z", 7), sh("a", 9)], &[]);
    assert!(e.is_err(), "{e:?}");
    // A batch id is stored once: the first stays.
    let e = s.put_pending(1, "st", b"again", &[None], &[sh("w", 1)], &[]);
    assert!(e.is_err(), "{e:?}");
    assert!(s.batch(2).unwrap().is_none());
    assert!(s.batch(3).unwrap().is_none());
    assert_eq!(s.batch(1).unwrap().unwrap().request_sha256, b"hash-1");
    assert!(!s.nullifier_used("st", "n7").unwrap());
    assert_eq!(s.audit(None, 100).unwrap(), before);
    assert_eq!(s.pending_batches().unwrap(), vec![1]);

    // The same submission ids and nullifiers are free in another study;
    // a batch may hold no shares at all.
    s.put_pending(4, "other", b"h4", &[None], &[sh("a", 4)], &[nul("a", "n1")])
        .unwrap();
    s.put_pending(
        5,
        "st",
        b"h5",
        &[Some(RejectReason::SharesMissing)],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(s.pending_batches().unwrap(), vec![1, 4, 5]);
    assert!(s.nullifier_used("other", "n1").unwrap());
}

pub(super) fn commit_and_abort_are_idempotent(open: Open) {
    let s = open();
    // Commit of a batch never prepared is the caller's error, and records
    // nothing.
    assert!(matches!(s.commit(7), Err(StoreError::UnknownBatch(7))));
    assert!(s.batch(7).unwrap().is_none());
    s.put_pending(7, "st", b"h", &[None], &[sh("a", 1)], &[nul("a", "n")])
        .unwrap();
    for _ in 0..2 {
        assert_eq!(s.commit(7).unwrap(), BatchState::Committed);
    }
    assert_eq!(s.abort(7).unwrap(), BatchState::Committed);
    assert_eq!(s.batch(7).unwrap().unwrap().state, BatchState::Committed);
    assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 1);

    s.put_pending(8, "st", b"h", &[None], &[sh("b", 2)], &[nul("b", "m")])
        .unwrap();
    for _ in 0..2 {
        assert_eq!(s.abort(8).unwrap(), BatchState::Aborted);
    }
    assert_eq!(s.commit(8).unwrap(), BatchState::Aborted);
    assert_eq!(s.batch(8).unwrap().unwrap().state, BatchState::Aborted);
    // Its shares are dropped.
    assert!(s
        .audit(None, 10)
        .unwrap()
        .holdings
        .iter()
        .all(|h| h.batch_id != 8));

    // Abort of an unknown batch is recorded, and idempotent too.
    for _ in 0..2 {
        assert_eq!(s.abort(9).unwrap(), BatchState::Aborted);
    }
    assert_eq!(s.commit(9).unwrap(), BatchState::Aborted);
    assert_eq!(s.batch(9).unwrap().unwrap().state, BatchState::Aborted);

    // An imported batch is committed from the start.
    s.import_committed(10, "st", &[sh("c", 3)]).unwrap();
    assert_eq!(s.batch(10).unwrap().unwrap().state, BatchState::Committed);
    assert_eq!(s.abort(10).unwrap(), BatchState::Committed);
    assert_eq!(s.commit(10).unwrap(), BatchState::Committed);
    assert!(s.pending_batches().unwrap().is_empty());
    drop(s);
    let s = open();
    assert_eq!(s.batch(7).unwrap().unwrap().state, BatchState::Committed);
    assert_eq!(s.batch(8).unwrap().unwrap().state, BatchState::Aborted);
    assert_eq!(s.batch(9).unwrap().unwrap().state, BatchState::Aborted);
    assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 2);
}

pub(super) fn committed_shares_as_of_batch(open: Open) {
    let s = open();
    // Batch 1: committed, ids in an order locales disagree on.
    let one: Vec<_> = AWKWARD
        .iter()
        .rev()
        .enumerate()
        .map(|(i, id)| sh(id, 10 + i as u128))
        .collect();
    s.put_pending(1, "st", b"h", &[None; 5], &one, &[]).unwrap();
    s.commit(1).unwrap();
    // Batch 2: pending. Batch 3: committed. Batch 4: aborted. Batch 6: imported.
    s.put_pending(2, "st", b"h", &[None], &[sh("p", 20)], &[])
        .unwrap();
    s.put_pending(3, "st", b"h", &[None], &[sh("0", 30), sh("Z", 31)], &[])
        .unwrap();
    s.commit(3).unwrap();
    s.put_pending(4, "st", b"h", &[None], &[sh("q", 40)], &[])
        .unwrap();
    s.abort(4).unwrap();
    s.import_committed(6, "st", &[sh("i2", 61), sh("i1", 60)])
        .unwrap();
    // Another study's shares never mix in.
    s.import_committed(5, "zz", &[sh("a", 50)]).unwrap();

    let by_batch_1: Vec<String> = AWKWARD.iter().map(|s| s.to_string()).collect();
    let value = |id: &str| -> u128 {
        match id {
            "p" => 20,
            "0" => 30,
            "Z" => 31,
            "i1" => 60,
            "i2" => 61,
            _ => 10 + AWKWARD.iter().rev().position(|x| *x == id).unwrap() as u128,
        }
    };
    let check = |as_of: u64, want: Vec<String>| {
        let (got, shares) = s.committed_shares("st", as_of).unwrap();
        assert_eq!(got, want, "as of {as_of}");
        let a: Vec<Z128> = want.iter().map(|id| Wrapping(value(id))).collect();
        let b: Vec<Z128> = want
            .iter()
            .map(|id| Wrapping(u128::MAX - value(id)))
            .collect();
        assert_eq!(shares.a, a, "as of {as_of}");
        assert_eq!(shares.b, b, "as of {as_of}");
        assert_eq!(
            s.committed_count("st", as_of).unwrap(),
            want.len() as u64,
            "as of {as_of}"
        );
    };
    check(0, vec![]);
    // Batch order, then byte order of the submission ids.
    check(1, by_batch_1.clone());
    check(2, by_batch_1.clone());
    let mut to_3 = by_batch_1.clone();
    to_3.extend(ids(&["0", "Z"]));
    check(3, to_3.clone());
    check(5, to_3.clone());
    let mut all = to_3;
    all.extend(ids(&["i1", "i2"]));
    check(6, all.clone());
    check(i64::MAX as u64, all.clone());
    check(u64::MAX, all);
    assert_eq!(s.committed_count("zz", u64::MAX).unwrap(), 1);
    assert_eq!(s.committed_count("none", u64::MAX).unwrap(), 0);
    assert!(s.committed_shares("none", u64::MAX).unwrap().0.is_empty());
    // Batch 2 commits late: it counts from then on, in its place.
    s.commit(2).unwrap();
    let (got, _) = s.committed_shares("st", 2).unwrap();
    assert_eq!(got.last().unwrap(), "p");
    assert_eq!(s.committed_count("st", u64::MAX).unwrap(), 10);
}

pub(super) fn releases_are_kept_first_come(open: Open) {
    let s = open();
    assert!(s.release("st", 1).unwrap().is_none());
    assert!(s.latest_release("st").unwrap().is_none());
    s.put_release("st", 1, 100, &signed(0, "{\"n\":1}"))
        .unwrap();
    // A retried request keeps the stored one.
    s.put_release("st", 1, 999, &signed(1, "{\"n\":\"other\"}"))
        .unwrap();
    assert_eq!(
        s.release("st", 1).unwrap().unwrap(),
        (100, signed(0, "{\"n\":1}"))
    );
    // Numeric order: 10 is after 9.
    s.put_release("st", 9, 150, &signed(0, "9")).unwrap();
    s.put_release("st", 10, 160, &signed(0, "10")).unwrap();
    s.put_release("other", 11, 5, &signed(2, "o")).unwrap();
    assert_eq!(
        s.latest_release("st").unwrap().unwrap(),
        (10, 160, signed(0, "10"))
    );
    assert_eq!(
        s.latest_release("other").unwrap().unwrap(),
        (11, 5, signed(2, "o"))
    );
    assert!(s.release("st", 2).unwrap().is_none());
    assert!(s.release("other", 1).unwrap().is_none());
    drop(s);
    let s = open();
    assert_eq!(s.release("st", 9).unwrap().unwrap(), (150, signed(0, "9")));
    assert_eq!(s.latest_release("st").unwrap().unwrap().0, 10);
}

pub(super) fn audit_pages_through_holdings(open: Open) {
    let s = open();
    s.put_pending(1, "s1", b"h", &[None; 5], &AWKWARD.map(|id| sh(id, 1)), &[])
        .unwrap();
    s.commit(1).unwrap();
    s.put_pending(2, "s2", b"h", &[None], &[sh("m", 2)], &[])
        .unwrap();
    s.put_pending(3, "s0", b"h", &[None], &[sh("gone", 3)], &[])
        .unwrap();
    s.abort(3).unwrap();
    s.put_pending(4, "s-1", b"h", &[None], &[sh("k", 4)], &[])
        .unwrap();
    s.abort(5).unwrap();

    let holding = |study: &str, sub: &str, batch: u64, state| Holding {
        study_id: study.into(),
        submission_id: sub.into(),
        batch_id: batch,
        state,
    };
    // (study, submission) in byte order: "s-1" < "s1" < "s2".
    let mut want = vec![holding("s-1", "k", 4, BatchState::Pending)];
    want.extend(
        AWKWARD
            .iter()
            .map(|id| holding("s1", id, 1, BatchState::Committed)),
    );
    want.push(holding("s2", "m", 2, BatchState::Pending));

    let all = s.audit(None, 100).unwrap();
    assert_eq!(all.pending_batches, vec![2, 4]);
    assert_eq!(all.holdings, want);
    // An audit carries ids and states, never shares.
    let json = serde_json::to_value(&all).unwrap();
    for h in json["holdings"].as_array().unwrap() {
        let keys: BTreeSet<&str> = h.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["batch_id", "state", "study_id", "submission_id"])
        );
    }

    // Pages of 3, each starting after the last one's end.
    let mut paged = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = s
            .audit(after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())), 3)
            .unwrap();
        assert_eq!(page.pending_batches, vec![2, 4]);
        assert!(page.holdings.len() <= 3);
        let Some(last) = page.holdings.last() else {
            break;
        };
        after = Some((last.study_id.clone(), last.submission_id.clone()));
        paged.extend(page.holdings);
    }
    assert_eq!(paged, want);
    // Starting mid-study, and past the end.
    let mid = s.audit(Some(("s1", "a-b")), 2).unwrap();
    assert_eq!(mid.holdings, want[4..6].to_vec());
    assert!(s.audit(Some(("s3", "")), 10).unwrap().holdings.is_empty());
    assert!(s.audit(None, 0).unwrap().holdings.is_empty());
}

fn share_set(x: u64) -> ShareSet {
    ShareSet {
        kind: if x.is_multiple_of(2) {
            MessageKind::Vote
        } else {
            MessageKind::Deactivate
        },
        words: [[x; WORDS], [u64::MAX - x; WORDS]],
        fr: [[Fr::from(x); FR], [-Fr::from(x); FR]],
        c_bits: [[x; C_WORDS], [x + 1; C_WORDS]],
    }
}

fn poll_spec(id: u64, name: &str) -> PollSpec {
    PollSpec {
        id,
        name: name.into(),
        vote_options: 2,
        mode: PollMode::Linear,
        signup_deadline: 1000,
        voting_deadline: 2000,
        window: 32,
        voice_credits: 50,
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        },
        source: DataSource::named("exchange.example"),
        rekey_epoch_secs: 100,
    }
}

pub(super) fn poll_uploads_are_replaced_until_confirmed_then_fixed(open: Open) {
    let s = open();
    let put = |sid: &str, tok: &str, c: &str, x: u64, max: usize| {
        s.put_message_shares(1, sid, tok, c, &share_set(x), 3_600_000, max)
            .unwrap()
    };
    assert_eq!(put("a", "t1", "c1", 1, 10), PutShares::Stored);
    // Replaced while unconfirmed (a voter's retry).
    assert_eq!(put("a", "t2", "c2", 2, 10), PutShares::Stored);
    let vote = MessageKind::Vote;
    assert!(!s.confirm_message(1, "a", "t1", "c1", &vote).unwrap());
    assert!(!s.confirm_message(1, "a", "t2", "c1", &vote).unwrap());
    assert!(!s.confirm_message(2, "a", "t2", "c2", &vote).unwrap());
    // A ticket of another kind than the shares uploaded is not confirmed.
    assert!(!s
        .confirm_message(1, "a", "t2", "c2", &MessageKind::Deactivate)
        .unwrap());
    // Unconfirmed shares are never handed out.
    assert_eq!(
        s.confirmed_shares(1, &[("a".into(), "c2".into())]).unwrap(),
        vec![None]
    );
    assert!(s.confirm_message(1, "a", "t2", "c2", &vote).unwrap());
    // Idempotent.
    assert!(s.confirm_message(1, "a", "t2", "c2", &vote).unwrap());
    assert_eq!(put("a", "t3", "c3", 3, 10), PutShares::AlreadyConfirmed);
    let got = s
        .confirmed_shares(
            1,
            &[
                ("a".into(), "c2".into()),
                ("a".into(), "c1".into()),
                ("nobody".into(), "c2".into()),
            ],
        )
        .unwrap();
    assert_eq!(got, vec![Some(share_set(2)), None, None]);
    assert!(s.confirmed_shares(1, &[]).unwrap().is_empty());
    // The same submission id in another poll is another upload.
    assert_eq!(
        s.put_message_shares(2, "a", "u", "d", &share_set(4), 3_600_000, 10)
            .unwrap(),
        PutShares::Stored
    );
    assert_eq!(
        s.confirmed_shares(2, &[("a".into(), "d".into())]).unwrap(),
        vec![None]
    );
    // The unconfirmed bound (poll 2's upload counts: every poll shares it).
    assert_eq!(put("b", "t", "c", 4, 2), PutShares::Stored);
    assert_eq!(put("c", "t", "c", 5, 2), PutShares::Full);
    // Replacing an unconfirmed upload needs no room.
    assert_eq!(put("b", "t", "c", 6, 2), PutShares::Stored);
    // Expired uploads make room (a negative ttl drops every unconfirmed one).
    assert_eq!(
        s.put_message_shares(1, "c", "t", "c", &share_set(5), -1, 1)
            .unwrap(),
        PutShares::Stored
    );
    assert!(s
        .confirm_message(1, "c", "t", "c", &MessageKind::Deactivate)
        .unwrap());
    assert_eq!(
        s.confirmed_shares(1, &[("b".into(), "c".into()), ("c".into(), "c".into())])
            .unwrap(),
        vec![None, Some(share_set(5))]
    );
    // Expiry never touches a confirmed upload.
    drop(s);
    let s = open();
    assert_eq!(
        s.put_message_shares(1, "d", "t", "c", &share_set(6), -1, 10)
            .unwrap(),
        PutShares::Stored
    );
    assert_eq!(
        s.confirmed_shares(1, &[("a".into(), "c2".into()), ("c".into(), "c".into())])
            .unwrap(),
        vec![Some(share_set(2)), Some(share_set(5))]
    );
}

pub(super) fn polls_and_tallies_are_kept_first_come(open: Open) {
    let s = open();
    assert!(s.poll(3).unwrap().is_none());
    assert_eq!(s.pin_poll(&poll_spec(3, "first")).unwrap().name, "first");
    assert_eq!(s.pin_poll(&poll_spec(3, "second")).unwrap().name, "first");
    assert_eq!(s.poll(3).unwrap().unwrap(), poll_spec(3, "first"));
    let big = (1u64 << 50) - 1;
    assert_eq!(s.pin_poll(&poll_spec(big, "big")).unwrap().id, big);

    let t = |p: u8| SignedTally {
        party: p,
        tally_json: format!("{{\"p\":{p}}}"),
        signature: "cd".repeat(64),
    };
    assert!(s.tally(3).unwrap().is_none());
    s.put_tally(3, "digest-1", &t(1)).unwrap();
    s.put_tally(3, "digest-2", &t(2)).unwrap();
    assert_eq!(s.tally(3).unwrap().unwrap(), ("digest-1".into(), t(1)));
    assert!(s.tally(4).unwrap().is_none());
    drop(s);
    let s = open();
    assert_eq!(s.poll(big).unwrap().unwrap().name, "big");
    assert_eq!(s.tally(3).unwrap().unwrap(), ("digest-1".into(), t(1)));
}

/// Of several batches racing with one nullifier, exactly one is stored,
/// and the others leave nothing behind.
pub(super) fn racing_batches_with_one_nullifier_store_one(open: Open) {
    let s = open();
    let s = &*s;
    const THREADS: u64 = 6;
    for round in 0..4u64 {
        let nullifier = format!("n{round}");
        let results: Vec<(u64, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let nullifier = &nullifier;
                    scope.spawn(move || {
                        let batch = round * 100 + t;
                        let sub = format!("r{round}-t{t}");
                        let own = format!("own-{batch}");
                        let r = s.put_pending(
                            batch,
                            "st",
                            b"h",
                            &[None, None],
                            &[sh(&sub, batch as u128), sh(&own, 1)],
                            &[nul(&own, &own), (sub.clone(), nullifier.clone())],
                        );
                        (batch, r.is_ok())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<u64> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (batch, ok) in results {
            assert_eq!(s.batch(batch).unwrap().is_some(), ok);
            assert_eq!(s.nullifier_used("st", &format!("own-{batch}")).unwrap(), ok);
        }
        assert!(s.nullifier_used("st", &nullifier).unwrap());
    }
    let audit = s.audit(None, 1000).unwrap();
    assert_eq!(audit.pending_batches.len(), 4);
    assert_eq!(audit.holdings.len(), 8);
}

/// Commit and abort racing on one batch: every caller hears the one state
/// the batch ends in, and its shares are kept exactly when it committed.
pub(super) fn racing_commit_and_abort_agree(open: Open) {
    let s = open();
    let s = &*s;
    for batch in 1..=6u64 {
        let sub = format!("s{batch}");
        s.put_pending(
            batch,
            "st",
            b"h",
            &[None],
            &[sh(&sub, 1)],
            &[nul(&sub, &sub)],
        )
        .unwrap();
        let answers: Vec<BatchState> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|t| {
                    scope.spawn(move || {
                        if (t + batch) % 2 == 0 {
                            s.commit(batch).unwrap()
                        } else {
                            s.abort(batch).unwrap()
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let end = s.batch(batch).unwrap().unwrap().state;
        assert_ne!(end, BatchState::Pending);
        assert!(answers.iter().all(|a| *a == end), "{answers:?} vs {end:?}");
        let committed = end == BatchState::Committed;
        assert_eq!(s.nullifier_used("st", &sub).unwrap(), committed);
        let held = s.audit(None, 100).unwrap().holdings;
        assert_eq!(held.iter().any(|h| h.submission_id == sub), committed);
    }
    assert!(s.pending_batches().unwrap().is_empty());
}

/// Uploads racing for the unconfirmed bound never overshoot it, and pins
/// racing with different specs all get the first one.
pub(super) fn racing_uploads_keep_the_bound(open: Open) {
    let s = open();
    let s = &*s;
    const BOUND: usize = 7;
    let stored: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                scope.spawn(move || {
                    let mut stored = 0;
                    for i in 0..4 {
                        let sid = format!("t{t}-{i}");
                        let r = s
                            .put_message_shares(
                                1,
                                &sid,
                                "tok",
                                "c",
                                &share_set(i),
                                3_600_000,
                                BOUND,
                            )
                            .unwrap();
                        if r == PutShares::Stored {
                            stored += 1;
                        } else {
                            assert_eq!(r, PutShares::Full);
                        }
                    }
                    stored
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(stored, BOUND);

    let names: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                scope.spawn(move || {
                    let a = s.pin_poll(&poll_spec(9, &format!("p{t}"))).unwrap().name;
                    let b = s.pin_study(&study("race", &format!("s{t}"))).unwrap().name;
                    format!("{a}/{b}")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
    assert_eq!(
        format!(
            "{}/{}",
            s.poll(9).unwrap().unwrap().name,
            s.pinned_study("race").unwrap().unwrap().name
        ),
        names[0]
    );
}

/// Runs each check on both backends: `sqlite::<check>` on a fresh file,
/// `postgres::<check>` on a fresh database.
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            use crate::store::{PartyStore, SqliteStore};
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("party.sqlite");
                    super::$check(&|| {
                        Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn PartyStore>
                    });
                }
            )*
        }
        mod postgres {
            use crate::store::{PartyStore, PostgresStore};
            $(
                #[test]
                fn $check() {
                    // Dropped (with the database) when the test ends.
                    let db = triad_pg::TestDatabase::new(stringify!($check));
                    super::$check(&|| {
                        Box::new(PostgresStore::open(&db.url).unwrap()) as Box<dyn PartyStore>
                    });
                }
            )*
        }
    };
}

suite!(
    pins_a_study_on_first_sight,
    pins_a_new_study_until_a_batch_names_it,
    pending_commit_abort_and_reopen,
    uploads_are_durable_until_removed_or_expired,
    put_pending_is_all_or_nothing,
    commit_and_abort_are_idempotent,
    committed_shares_as_of_batch,
    releases_are_kept_first_come,
    audit_pages_through_holdings,
    poll_uploads_are_replaced_until_confirmed_then_fixed,
    polls_and_tallies_are_kept_first_come,
    racing_batches_with_one_nullifier_store_one,
    racing_commit_and_abort_agree,
    racing_uploads_keep_the_bound,
);
