//! The storage trait test suite, run against both backends: every
//! function here takes a way to open the store under test (twice opens the
//! same file or database: a reopen is a restart) and is run by one
//! `#[test]` on SQLite (a temporary directory) and one on PostgreSQL (a
//! fresh database on the test server; those tests fail, never skip, when
//! no server is reachable).

use std::sync::atomic::{AtomicUsize, Ordering};

use triad_attestation::{Attestation, DataSpec};
use triad_wire::messages::{Decision, RejectReason, StudyInfo, StudyParams, SubmissionStatus};
use triad_wire::poll::{LogEntry, MessageKind, PollInfo, PollSpec, PollTally, VerifiedTally};

use super::directory::Kind;
use super::{
    CoordinatorStore, DirectoryEntry, InsertRefused, LogOutcome, NewSignup, NewSubmission,
    NewTicket, SignupRefused, StoreError,
};

/// Opens the store under test (again: the same file or database).
type Open<'a> = &'a dyn Fn() -> Box<dyn CoordinatorStore>;

// ---------- inputs ----------

fn study(id: &str) -> StudyInfo {
    let params: StudyParams = serde_json::from_value(serde_json::json!({
        "id": id, "name": id,
        "data_spec": {"field": "v", "scale": 0, "account_field": "uid"},
        "source": {"server_name": "127.0.0.1"},
        "min_cohort": 10, "min_new": 10, "release_interval_secs": 60,
        "stats": {"quantiles": [], "histogram_bounds": []}
    }))
    .unwrap();
    StudyInfo {
        params,
        created_at: 1,
        contributions: 0,
        releases: 0,
        directory_id: None,
        progress: None,
    }
}

pub(crate) fn entry(kind: Kind, name: &str, salt: u8) -> DirectoryEntry {
    DirectoryEntry {
        kind,
        name: name.into(),
        id_salt: [salt; 16],
        directory_id: format!("{salt:02x}").repeat(32),
        seq: 0,
        published_at: None,
    }
}

/// Creates study `id` with a directory entry.
fn create(s: &dyn CoordinatorStore, id: &str) {
    assert!(s
        .create_study(study(id), &entry(Kind::Study, id, 1))
        .unwrap());
}

/// An attestation that parses (the store never verifies it).
fn attestation(study: &str, nullifier: &str, signature: &str) -> Attestation {
    Attestation {
        version: triad_attestation::ATTESTATION_VERSION,
        notary_key_id: "00".repeat(8),
        server_name: "127.0.0.1".into(),
        cert_chain_sha256: "01".repeat(32),
        session_time: 1,
        expires_at: 2,
        study_id: study.into(),
        data_spec: DataSpec {
            field: "v".into(),
            scale: 0,
            account_field: "uid".into(),
        },
        commitment: "02".repeat(32),
        nullifier: nullifier.into(),
        transcript_sha256: "03".repeat(32),
        signature: signature.into(),
    }
}

/// Submission `id` to `study` with nullifier `n`; its signature is
/// `sig-<id>` and its token digest `tok-<id>`.
fn sub(study: &str, id: &str, n: &str) -> NewSubmission {
    sub_signed(study, id, n, &format!("sig-{id}"))
}

fn sub_signed(study: &str, id: &str, n: &str, sig: &str) -> NewSubmission {
    NewSubmission {
        id: id.into(),
        study: study.into(),
        token_sha256: format!("tok-{id}"),
        commitment: format!("com-{id}"),
        nullifier: n.into(),
        signature: sig.into(),
        attestation_json: attestation(study, n, sig).to_json(),
    }
}

/// Stand-ins for the parties' signed receipts of `id` (the store keeps
/// them as given; the routes verify them).
fn receipts_of(id: &str) -> Vec<triad_wire::receipt::SignedReceipt> {
    (0..3u8)
        .map(|party| triad_wire::receipt::SignedReceipt {
            party,
            receipt_json: format!("{{\"receipt\":\"{id}\"}}"),
            signature: format!("sig-{party}"),
        })
        .collect()
}

/// Admits `id` (nullifier `n-<id>`) and marks it ready.
fn queue(s: &dyn CoordinatorStore, study: &str, id: &str) {
    s.insert_submission(&sub(study, id, &format!("n-{id}")), 1000, 1)
        .unwrap();
    assert!(s
        .mark_ready(id, &format!("digest-{id}"), &receipts_of(id))
        .unwrap());
}

fn status(s: &dyn CoordinatorStore, id: &str) -> SubmissionStatus {
    s.submission(id).unwrap().unwrap().state.status
}

/// Queues `ids`, batches them and commits them all accepted; the batch id.
fn accept(s: &dyn CoordinatorStore, study: &str, ids: &[&str]) -> u64 {
    for id in ids {
        queue(s, study, id);
    }
    let b = s.form_batch(study, ids.len()).unwrap().unwrap();
    assert_eq!(b.items.len(), ids.len());
    s.decide_commit(b.id, &vec![None; ids.len()]).unwrap();
    s.finish_commit(b.id).unwrap();
    b.id
}

fn batch_ids(b: &super::FormedBatch) -> Vec<&str> {
    b.items.iter().map(|i| i.submission_id.as_str()).collect()
}

pub(crate) fn poll_info(id: u64) -> PollInfo {
    let spec: PollSpec = serde_json::from_value(serde_json::json!({
        "id": id, "name": format!("poll {id}"), "vote_options": 2, "mode": "quadratic",
        "signup_deadline": 10, "voting_deadline": 20, "voice_credits": 100,
        "data_spec": {"field": "v", "scale": 0, "account_field": "uid"},
        "source": {"server_name": "127.0.0.1"}
    }))
    .unwrap();
    PollInfo {
        spec,
        created_at: 5,
        signups: 0,
        messages: 0,
        tallied: false,
        directory_id: None,
    }
}

fn signup(poll: u64, n: &str, sig: &str) -> NewSignup {
    NewSignup {
        poll,
        pub_key: format!("macipk.{n}"),
        voice_credits: 100,
        nullifier: n.into(),
        signature: sig.into(),
        attestation_json: attestation("poll", n, sig).to_json(),
        timestamp: 7,
    }
}

fn ticket(poll: u64, sid: &str, kind: MessageKind) -> NewTicket {
    NewTicket {
        poll,
        submission_id: sid.into(),
        token_sha256: "t".into(),
        commitments: [format!("{sid}0"), format!("{sid}1"), format!("{sid}2")],
        kind,
    }
}

fn tally(poll: u64, input: &str) -> VerifiedTally {
    VerifiedTally {
        tally: PollTally {
            version: 1,
            poll_id: poll,
            signups: 2,
            messages: 3,
            input_sha256: input.into(),
            votes: vec![1, 2],
            spent: 5,
            spent_per_option: vec![1, 4],
            deactivations: 0,
            rekeys: 0,
            security: None,
        },
        signatures: vec![],
    }
}

// ---------- admission ----------

/// Every refusal (unknown study, replay, nullifier in use, queue full)
/// writes nothing: the row counts stay, and a signature or nullifier
/// named only by a refused submission stays free.
fn admission_refusals_write_nothing(open: Open) {
    let s = &*open();
    create(s, "s");
    create(s, "t");
    s.insert_submission(&sub("s", "a", "n1"), 10, 1).unwrap();
    let before = s.row_counts().unwrap();
    assert_eq!(before, vec![2, 1, 1, 1, 0, 0]);
    let refused = |r: Result<(), InsertRefused>| {
        assert_eq!(s.row_counts().unwrap(), before);
        r.unwrap_err()
    };
    assert!(matches!(
        refused(s.insert_submission(&sub("nope", "b", "n2"), 10, 1)),
        InsertRefused::UnknownStudy
    ));
    // Replay: the signature of "a" again, under another nullifier.
    assert!(matches!(
        refused(s.insert_submission(&sub_signed("s", "b", "n2", "sig-a"), 10, 1)),
        InsertRefused::Replayed
    ));
    assert!(matches!(
        refused(s.insert_submission(&sub("s", "c", "n1"), 10, 1)),
        InsertRefused::NullifierInUse
    ));
    // One submission in flight: a bound of 1 is full.
    assert!(matches!(
        refused(s.insert_submission(&sub("s", "d", "n3"), 1, 1)),
        InsertRefused::QueueFull
    ));
    // The refused ones reserved nothing: "c"'s signature and "d"'s
    // nullifier are free.
    s.insert_submission(&sub("s", "c", "n3"), 10, 1).unwrap();
    // A nullifier is per study.
    s.insert_submission(&sub("t", "e", "n1"), 10, 1).unwrap();
    assert_eq!(s.row_counts().unwrap(), vec![2, 3, 3, 3, 0, 0]);
}

/// find_admission finds the awaiting submission of a nullifier and token;
/// ready happens once; expiry rejects the awaiting ones and frees their
/// nullifiers.
fn admission_ready_and_expiry(open: Open) {
    let s = &*open();
    create(s, "s");
    s.insert_submission(&sub("s", "a", "n1"), 10, 1).unwrap();
    s.insert_submission(&sub("s", "b", "n2"), 10, 1).unwrap();
    assert_eq!(
        s.find_admission("s", "n1", "tok-a").unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(s.find_admission("s", "n1", "tok-b").unwrap(), None);
    assert_eq!(s.find_admission("t", "n1", "tok-a").unwrap(), None);
    let row = s.submission("a").unwrap().unwrap();
    assert_eq!(row.token_sha256, "tok-a");
    assert_eq!(row.state.study_id, "s");
    assert_eq!(row.state.status, SubmissionStatus::AwaitingShares);
    assert_eq!((row.state.reason, row.state.batch_id), (None, None));
    assert!(s.submission("nope").unwrap().is_none());

    assert!(s.mark_ready("a", "digest", &[]).unwrap());
    assert!(!s.mark_ready("a", "digest", &[]).unwrap());
    assert!(!s.mark_ready("nope", "digest", &[]).unwrap());
    assert_eq!(status(s, "a"), SubmissionStatus::Queued);
    // No longer awaiting: a retry of the admission finds nothing.
    assert_eq!(s.find_admission("s", "n1", "tok-a").unwrap(), None);

    assert_eq!(s.expire_awaiting(3_600_000).unwrap(), 0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(s.expire_awaiting(1).unwrap(), 1);
    let b = s.submission("b").unwrap().unwrap().state;
    assert_eq!(b.status, SubmissionStatus::Rejected);
    assert_eq!(b.reason, Some(RejectReason::SharesTimeout));
    assert_eq!(status(s, "a"), SubmissionStatus::Queued);
    assert_eq!(s.expire_awaiting(1).unwrap(), 0);
    // "b"'s nullifier is free again, "a"'s is held.
    s.insert_submission(&sub("s", "b2", "n2"), 10, 1).unwrap();
    assert!(matches!(
        s.insert_submission(&sub("s", "a2", "n1"), 10, 1),
        Err(InsertRefused::NullifierInUse)
    ));
}

const RACERS: usize = 8;

/// Of many concurrent submissions with one nullifier exactly one commits;
/// the others are refused as such (not failed).
fn concurrent_admissions_one_nullifier(open: Open) {
    let s = &*open();
    create(s, "s");
    // Several rounds, each released at once by a barrier: the first also
    // opens the pool's connections, so the later ones race on warm ones.
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let ok = AtomicUsize::new(0);
        let start = std::sync::Barrier::new(RACERS);
        std::thread::scope(|scope| {
            for t in 0..RACERS {
                let (ok, start) = (&ok, &start);
                scope.spawn(move || {
                    let sub = sub("s", &format!("r{round}-{t}"), &format!("same{round}"));
                    start.wait();
                    match s.insert_submission(&sub, 100, 1) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(InsertRefused::NullifierInUse) => {}
                        Err(e) => panic!("racer {t}: {e:?}"),
                    }
                });
            }
        });
        assert_eq!(ok.load(Ordering::SeqCst), 1, "round {round}");
    }
    let n = ROUNDS as i64;
    assert_eq!(s.row_counts().unwrap(), vec![1, n, n, n, 0, 0]);
}

/// Concurrent submissions with distinct nullifiers never overshoot the
/// queue bound: exactly `max_queue` are admitted.
fn concurrent_admissions_keep_the_queue_bound(open: Open) {
    const MAX_QUEUE: usize = 5;
    let s = &*open();
    create(s, "s");
    let ok = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..RACERS {
            let ok = &ok;
            scope.spawn(move || {
                for k in 0..2 {
                    let id = format!("r{t}-{k}");
                    match s.insert_submission(&sub("s", &id, &id), MAX_QUEUE, 1) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(InsertRefused::QueueFull) => {}
                        Err(e) => panic!("racer {t}: {e:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::SeqCst), MAX_QUEUE);
    let n = MAX_QUEUE as i64;
    assert_eq!(s.row_counts().unwrap(), vec![1, n, n, n, 0, 0]);
}

// ---------- batches ----------

/// Batches take queued submissions in admission order, at most `max`; the
/// commit decision and the verdicts apply on finish.
fn batches_are_fifo_and_apply_verdicts(open: Open) {
    let s = &*open();
    create(s, "s");
    for id in ["a", "b", "c", "d"] {
        s.insert_submission(&sub("s", id, &format!("n-{id}")), 10, 1)
            .unwrap();
    }
    // Ready in another order than admitted; "d" never is.
    for id in ["c", "a", "b"] {
        assert!(s
            .mark_ready(id, &format!("digest-{id}"), &receipts_of(id))
            .unwrap());
    }
    let summary = s.queued_summary().unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].0.as_str(), summary[0].1), ("s", 3));
    assert!(s.form_batch("nope", 10).unwrap().is_none());

    let b1 = s.form_batch("s", 2).unwrap().unwrap();
    assert_eq!(batch_ids(&b1), ["a", "b"]);
    assert_eq!(b1.study.id, "s");
    assert_eq!(b1.items[0].token_sha256, "tok-a");
    assert_eq!(b1.items[0].commitment, "com-a");
    assert_eq!(b1.items[0].shares_digest, "digest-a");
    assert_eq!(b1.items[0].receipts, receipts_of("a"));
    assert_eq!(b1.items[0].attestation.signature, "sig-a");
    assert_eq!(status(s, "a"), SubmissionStatus::Processing);
    // The batch id shows only once accepted.
    assert_eq!(s.submission("a").unwrap().unwrap().state.batch_id, None);
    let b2 = s.form_batch("s", 10).unwrap().unwrap();
    assert_eq!(batch_ids(&b2), ["c"]);
    assert!(b2.id > b1.id);
    assert!(s.form_batch("s", 10).unwrap().is_none());
    assert!(s.queued_summary().unwrap().is_empty());

    assert_eq!(s.unfinished_batches().unwrap().0, vec![b1.id, b2.id]);
    assert_eq!(s.batch_decision(b1.id).unwrap(), Decision::Pending);
    s.decide_commit(b1.id, &[None, Some(RejectReason::CommitmentMismatch)])
        .unwrap();
    assert_eq!(s.batch_decision(b1.id).unwrap(), Decision::Commit);
    let (preparing, committing) = s.unfinished_batches().unwrap();
    assert_eq!(preparing, vec![b2.id]);
    assert_eq!(
        committing.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![b1.id]
    );
    // Nothing applied before everyone acked.
    assert_eq!(status(s, "a"), SubmissionStatus::Processing);
    assert_eq!(s.study("s").unwrap().unwrap().contributions, 0);

    s.finish_commit(b1.id).unwrap();
    let a = s.submission("a").unwrap().unwrap().state;
    assert_eq!(
        (a.status, a.reason, a.batch_id),
        (SubmissionStatus::Accepted, None, Some(b1.id))
    );
    let b = s.submission("b").unwrap().unwrap().state;
    assert_eq!(
        (b.status, b.reason, b.batch_id),
        (
            SubmissionStatus::Rejected,
            Some(RejectReason::CommitmentMismatch),
            None
        )
    );
    assert_eq!(s.study("s").unwrap().unwrap().contributions, 1);
    assert_eq!(s.batch_decision(b1.id).unwrap(), Decision::Commit);
    assert_eq!(s.unfinished_batches().unwrap().1.len(), 0);
    // Finishing again counts nothing twice.
    s.finish_commit(b1.id).unwrap();
    assert_eq!(s.study("s").unwrap().unwrap().contributions, 1);
    // The rejected submission's nullifier is free, the accepted one's held.
    s.insert_submission(&sub("s", "b2", "n-b"), 10, 1).unwrap();
    assert!(matches!(
        s.insert_submission(&sub("s", "a2", "n-a"), 10, 1),
        Err(InsertRefused::NullifierInUse)
    ));
    // Unknown batches are presumed aborted.
    assert_eq!(s.batch_decision(b2.id + 1000).unwrap(), Decision::Abort);
}

/// An abort puts a preparing batch's submissions back in the queue, and
/// rejects them (freeing their nullifiers) once they failed `max_attempts`
/// batches; a decided batch is never aborted.
fn aborts_requeue_then_reject(open: Open) {
    let s = &*open();
    create(s, "s");
    queue(s, "s", "a");
    let b1 = s.form_batch("s", 10).unwrap().unwrap();
    s.abort_batch(b1.id, 2).unwrap();
    assert_eq!(s.batch_decision(b1.id).unwrap(), Decision::Abort);
    assert_eq!(status(s, "a"), SubmissionStatus::Queued);
    assert_eq!(s.queued_summary().unwrap()[0].1, 1);
    // Aborting again changes nothing.
    s.abort_batch(b1.id, 2).unwrap();
    assert_eq!(status(s, "a"), SubmissionStatus::Queued);

    let b2 = s.form_batch("s", 10).unwrap().unwrap();
    assert_eq!(batch_ids(&b2), ["a"]);
    s.abort_batch(b2.id, 2).unwrap();
    let a = s.submission("a").unwrap().unwrap().state;
    assert_eq!(
        (a.status, a.reason),
        (SubmissionStatus::Rejected, Some(RejectReason::BatchFailed))
    );
    assert!(s.form_batch("s", 10).unwrap().is_none());
    s.insert_submission(&sub("s", "a2", "n-a"), 10, 1).unwrap();

    queue(s, "s", "c");
    let b3 = s.form_batch("s", 10).unwrap().unwrap();
    s.decide_commit(b3.id, &[None]).unwrap();
    // Past the point of no return an abort is refused and changes nothing.
    assert!(matches!(
        s.abort_batch(b3.id, 1),
        Err(StoreError::BatchState { ref state, .. }) if state == "committing"
    ));
    assert_eq!(s.batch_decision(b3.id).unwrap(), Decision::Commit);
    assert_eq!(status(s, "c"), SubmissionStatus::Processing);
    let (preparing, committing) = s.unfinished_batches().unwrap();
    assert!(preparing.is_empty());
    assert_eq!(
        committing.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![b3.id]
    );
}

/// The commit decision is taken once and only for a batch in preparation:
/// a second decision keeps the first verdicts, an aborted or unknown batch
/// cannot be committed, and verdicts are applied only after a decision.
fn commit_decisions_follow_the_batch_state(open: Open) {
    let s = &*open();
    create(s, "s");
    queue(s, "s", "a");
    let b = s.form_batch("s", 10).unwrap().unwrap();
    // No decision yet: finishing is refused and changes nothing.
    assert!(matches!(
        s.finish_commit(b.id),
        Err(StoreError::BatchState { ref state, .. }) if state == "preparing"
    ));
    assert_eq!(status(s, "a"), SubmissionStatus::Processing);
    s.decide_commit(b.id, &[Some(RejectReason::CommitmentMismatch)])
        .unwrap();
    // A retried decision with other verdicts does not change them.
    s.decide_commit(b.id, &[None]).unwrap();
    s.finish_commit(b.id).unwrap();
    s.finish_commit(b.id).unwrap();
    let a = s.submission("a").unwrap().unwrap().state;
    assert_eq!(
        (a.status, a.reason),
        (
            SubmissionStatus::Rejected,
            Some(RejectReason::CommitmentMismatch)
        )
    );
    assert_eq!(s.study("s").unwrap().unwrap().contributions, 0);

    queue(s, "s", "c");
    let b2 = s.form_batch("s", 10).unwrap().unwrap();
    s.abort_batch(b2.id, 5).unwrap();
    let before = s.row_counts().unwrap();
    for r in [s.decide_commit(b2.id, &[None]), s.finish_commit(b2.id)] {
        assert!(matches!(
            r,
            Err(StoreError::BatchState { ref state, .. }) if state == "aborted"
        ));
    }
    assert!(matches!(
        s.decide_commit(9_999, &[]),
        Err(StoreError::BatchState { ref state, .. }) if state == "unknown"
    ));
    assert_eq!(s.row_counts().unwrap(), before);
    assert_eq!(status(s, "c"), SubmissionStatus::Queued);
    assert_eq!(s.batch_decision(b2.id).unwrap(), Decision::Abort);
}

/// Everything a restart resumes from is durable: batches and their
/// decisions, submissions, releases, counters.
fn state_survives_a_reopen(open: Open) {
    let s = open();
    create(&*s, "s");
    let done = accept(&*s, "s", &["a"]);
    queue(&*s, "s", "b");
    queue(&*s, "s", "c");
    let committing = s.form_batch("s", 1).unwrap().unwrap();
    s.decide_commit(committing.id, &[Some(RejectReason::SharesMissing)])
        .unwrap();
    let preparing = s.form_batch("s", 1).unwrap().unwrap();
    s.insert_submission(&sub("s", "d", "n-d"), 10, 1).unwrap();
    let attempt = s.release_attempt("s", 1, 100).unwrap();
    s.record_release("s", 1, 1, 100, "{}").unwrap();
    let counts = s.row_counts().unwrap();
    drop(s);

    let s = open();
    assert_eq!(s.row_counts().unwrap(), counts);
    let (p, c) = s.unfinished_batches().unwrap();
    assert_eq!(p, vec![preparing.id]);
    assert_eq!(
        c.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![committing.id]
    );
    assert_eq!(s.batch_decision(done).unwrap(), Decision::Commit);
    assert_eq!(s.batch_decision(committing.id).unwrap(), Decision::Commit);
    assert_eq!(s.batch_decision(preparing.id).unwrap(), Decision::Pending);
    assert_eq!(s.release_attempt("s", 1, 999).unwrap(), attempt);
    let info = s.study("s").unwrap().unwrap();
    assert_eq!((info.contributions, info.releases), (1, 1));
    assert_eq!(
        s.find_admission("s", "n-d", "tok-d").unwrap().as_deref(),
        Some("d")
    );
    // The decided batch finishes after the restart.
    s.finish_commit(committing.id).unwrap();
    assert_eq!(status(&*s, "b"), SubmissionStatus::Rejected);
    s.abort_batch(preparing.id, 5).unwrap();
    assert_eq!(status(&*s, "c"), SubmissionStatus::Queued);
    // Ids only grow across a restart.
    let next = s.form_batch("s", 10).unwrap().unwrap();
    assert!(next.id > preparing.id);
}

// ---------- studies and releases ----------

/// Studies are listed in bytewise id order (as SQLite sorts text), with
/// their counters; a second creation of an id writes nothing.
fn studies_are_listed_in_id_order(open: Open) {
    let s = &*open();
    for id in ["a", "_x", "B"] {
        create(s, id);
    }
    assert!(!s
        .create_study(study("a"), &entry(Kind::Study, "a", 9))
        .unwrap());
    assert!(s.study("nope").unwrap().is_none());
    let ids: Vec<String> = s
        .studies()
        .unwrap()
        .into_iter()
        .map(|i| i.params.id)
        .collect();
    assert_eq!(ids, ["B", "_x", "a"]);
    let ids: Vec<String> = s
        .release_status()
        .unwrap()
        .into_iter()
        .map(|r| r.study.id)
        .collect();
    assert_eq!(ids, ["B", "_x", "a"]);
    let a = s.study("a").unwrap().unwrap();
    assert_eq!(a.params, study("a").params);
    assert_eq!(a.created_at, 1);
    assert_eq!(a.directory_id, Some("01".repeat(32)));
    assert!(a.progress.is_some());
    assert_eq!(s.row_counts().unwrap(), vec![3, 0, 0, 0, 0, 0]);
}

/// Release attempts keep their first (created_at, as_of_batch); release
/// status follows recorded releases and accepted counts.
fn releases_are_recorded_and_attempts_kept(open: Open) {
    let s = &*open();
    create(s, "s");
    create(s, "t");
    let st = s.release_status().unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(
        (
            st[0].accepted,
            st[0].last_release_no,
            st[0].last_count,
            st[0].last_created_at
        ),
        (0, 0, 0, None)
    );
    // Before any batch finished: as of batch 0.
    assert_eq!(s.release_attempt("t", 1, 50).unwrap(), (50, 0));
    let b1 = accept(s, "s", &["a", "b"]);
    assert_eq!(s.release_attempt("s", 1, 100).unwrap(), (100, b1));
    let b2 = accept(s, "s", &["c"]);
    assert!(b2 > b1);
    // A retry gets the first attempt's values.
    assert_eq!(s.release_attempt("s", 1, 200).unwrap(), (100, b1));
    assert_eq!(s.release_attempt("s", 2, 300).unwrap(), (300, b2));
    assert_eq!(s.release_attempt("t", 1, 60).unwrap(), (50, 0));

    s.record_release("s", 1, 2, 100, r#"{"n":1}"#).unwrap();
    // A release number is recorded once.
    assert!(s.record_release("s", 1, 2, 100, "{}").is_err());
    let st = s.release_status().unwrap();
    assert_eq!(st[0].study.id, "s");
    assert_eq!(
        (
            st[0].accepted,
            st[0].last_release_no,
            st[0].last_count,
            st[0].last_created_at
        ),
        (3, 1, 2, Some(100))
    );
    s.record_release("s", 2, 3, 300, "{}").unwrap();
    let st = s.release_status().unwrap();
    assert_eq!(
        (
            st[0].last_release_no,
            st[0].last_count,
            st[0].last_created_at
        ),
        (2, 3, Some(300))
    );
    assert_eq!((st[1].study.id.as_str(), st[1].last_release_no), ("t", 0));
    let info = s.study("s").unwrap().unwrap();
    assert_eq!((info.contributions, info.releases), (3, 2));
    assert_eq!(s.row_counts().unwrap()[5], 2);
}

// ---------- polls ----------

/// Polls and their directory entries, sign-ups with their refusals
/// (nothing written), tallies (first one wins).
fn polls_signups_and_tallies(open: Open) {
    let s = &*open();
    for id in [10, 1, 2] {
        assert!(s
            .create_poll(
                &poll_info(id),
                &entry(Kind::Poll, &id.to_string(), id as u8)
            )
            .unwrap());
    }
    assert!(!s
        .create_poll(&poll_info(1), &entry(Kind::Poll, "1", 9))
        .unwrap());
    assert!(s.poll(3).unwrap().is_none());
    let ids: Vec<u64> = s.polls().unwrap().iter().map(|p| p.spec.id).collect();
    assert_eq!(ids, [1, 2, 10]);
    let p = s.poll(10).unwrap().unwrap();
    assert_eq!(p.spec, poll_info(10).spec);
    assert_eq!(p.created_at, 5);
    assert_eq!(p.directory_id, Some("0a".repeat(32)));
    assert_eq!((p.signups, p.messages, p.tallied), (0, 0, false));

    assert_eq!(s.insert_signup(&signup(1, "n1", "s1")).unwrap(), 1);
    // A signature the study admission saw is a replay here too.
    create(s, "st");
    s.insert_submission(&sub_signed("st", "x", "nx", "s-shared"), 10, 1)
        .unwrap();
    let before = s.row_counts().unwrap();
    let refused = |r: Result<u64, SignupRefused>| {
        assert_eq!(s.row_counts().unwrap(), before);
        assert_eq!(s.signups(1).unwrap().len(), 1);
        r.unwrap_err()
    };
    assert!(matches!(
        refused(s.insert_signup(&signup(3, "n9", "s9"))),
        SignupRefused::UnknownPoll
    ));
    assert!(matches!(
        refused(s.insert_signup(&signup(1, "n1", "s2"))),
        SignupRefused::AlreadySignedUp
    ));
    assert!(matches!(
        refused(s.insert_signup(&signup(1, "n2", "s1"))),
        SignupRefused::Replayed
    ));
    assert!(matches!(
        refused(s.insert_signup(&signup(1, "n2", "s-shared"))),
        SignupRefused::Replayed
    ));
    assert_eq!(s.insert_signup(&signup(1, "n2", "s2")).unwrap(), 2);
    // One sign-up per account and poll: another poll is another index space.
    assert_eq!(s.insert_signup(&signup(2, "n1", "s3")).unwrap(), 1);
    let ups = s.signups(1).unwrap();
    assert_eq!(
        ups.iter().map(|u| u.state_index).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(ups[1].pub_key, "macipk.n2");
    assert_eq!((ups[1].voice_credits, ups[1].timestamp), (100, 7));
    assert_eq!(ups[1].attestation.signature, "s2");
    assert_eq!(s.poll(1).unwrap().unwrap().signups, 2);
    assert!(s.signups(3).unwrap().is_empty());

    assert!(s.tally(1).unwrap().is_none());
    s.put_tally(1, &tally(1, "first")).unwrap();
    s.put_tally(1, &tally(1, "second")).unwrap();
    assert_eq!(s.tally(1).unwrap(), Some(tally(1, "first")));
    assert!(s.poll(1).unwrap().unwrap().tallied);
    assert!(!s.poll(2).unwrap().unwrap().tallied);
}

/// (Moved from store/sqlite/polls.rs.) A ticket holds a slot until it is
/// logged or older than the window.
fn abandoned_tickets_stop_holding_a_slot(open: Open) {
    let s = &*open();
    let hour = 3_600_000;
    let v = MessageKind::Vote;
    assert!(s
        .insert_ticket(&ticket(1, "a", v.clone()), 1, hour)
        .unwrap());
    assert!(!s
        .insert_ticket(&ticket(1, "b", v.clone()), 1, hour)
        .unwrap());
    // Another poll has its own slots.
    assert!(s
        .insert_ticket(&ticket(2, "c", v.clone()), 1, hour)
        .unwrap());
    // "a" is older than the window: it no longer counts.
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(s.insert_ticket(&ticket(1, "b", v.clone()), 1, 1).unwrap());
    // A logged ticket never counts: with "b" logged, "a" and "d" hold
    // the two slots.
    assert!(matches!(
        s.log_message("b", 0, u64::MAX).unwrap(),
        LogOutcome::Logged(_)
    ));
    assert!(s
        .insert_ticket(&ticket(1, "d", v.clone()), 2, hour)
        .unwrap());
    assert!(!s
        .insert_ticket(&ticket(1, "e", v.clone()), 2, hour)
        .unwrap());
}

/// (Moved from store/sqlite/polls.rs, sign-ups now through
/// `insert_signup`.) Re-keys are logged after the sign-up deadline, once
/// per nullifier, at most one per sign-up, with the next state index.
fn rekeys_get_the_next_state_index_and_a_nullifier_once(open: Open) {
    let s = &*open();
    let rekey = |n: &str| MessageKind::Rekey {
        new_key: "k".into(),
        nullifier: n.into(),
    };
    let hour = 3_600_000;
    assert!(s
        .create_poll(&poll_info(1), &entry(Kind::Poll, "1", 1))
        .unwrap());
    // Two sign-ups: at most two re-keys.
    for k in 1..=2 {
        let n = format!("n{k}");
        assert_eq!(s.insert_signup(&signup(1, &n, &n)).unwrap(), k);
    }
    for (sid, kind) in [
        ("v", MessageKind::Vote),
        ("r1", rekey("n1")),
        ("d", MessageKind::Deactivate),
        ("r2", rekey("n2")),
        ("r1again", rekey("n1")),
        ("early", rekey("n3")),
        ("r3", rekey("n3")),
    ] {
        assert!(s
            .insert_ticket(&ticket(1, sid, kind.clone()), 10, hour)
            .unwrap());
    }
    // Before the sign-up deadline a re-key is not logged (nothing
    // written); a vote is.
    let far = u64::MAX;
    assert!(matches!(
        s.log_message("early", far, far).unwrap(),
        LogOutcome::SignupOpen
    ));
    let logged = |sid: &str| match s.log_message(sid, 0, far).unwrap() {
        LogOutcome::Logged(e) => e,
        other => panic!("{sid}: {other:?}"),
    };
    assert_eq!(logged("v").state_index, None);
    let r1 = logged("r1");
    assert_eq!((r1.position, r1.state_index), (1, Some(3)));
    assert_eq!(r1.kind, rekey("n1"));
    assert_eq!(logged("d").kind, MessageKind::Deactivate);
    assert_eq!(logged("r2").state_index, Some(4));
    // Idempotent: the same entry again.
    assert_eq!(logged("r1"), r1);
    // The same nullifier under another ticket: refused, nothing logged.
    assert!(matches!(
        s.log_message("r1again", 0, far).unwrap(),
        LogOutcome::NullifierUsed
    ));
    // As many re-keys as sign-ups: no more.
    assert!(matches!(
        s.log_message("r3", 0, far).unwrap(),
        LogOutcome::RekeyLimit
    ));
    let log = s.log(1).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[1], r1);
    assert_eq!(s.message("r1again").unwrap().unwrap().entry, None);
    assert_eq!(s.poll(1).unwrap().unwrap().messages, 4);
}

/// Tickets and log entries read back as written; a closed poll logs
/// nothing; the log and its positions are per poll.
fn messages_and_the_log(open: Open) {
    let s = &*open();
    assert!(s.message("nope").unwrap().is_none());
    assert!(s
        .insert_ticket(&ticket(1, "a", MessageKind::Vote), 10, 1000)
        .unwrap());
    assert!(s
        .insert_ticket(&ticket(2, "b", MessageKind::Vote), 10, 1000)
        .unwrap());
    assert!(s
        .insert_ticket(&ticket(1, "c", MessageKind::Vote), 10, 1000)
        .unwrap());
    let m = s.message("a").unwrap().unwrap();
    assert_eq!((m.poll, m.token_sha256.as_str()), (1, "t"));
    assert_eq!(m.commitments, ["a0", "a1", "a2"]);
    assert_eq!((m.kind, m.entry), (MessageKind::Vote, None));
    // Past the deadline: nothing written.
    assert!(matches!(
        s.log_message("a", 0, 1).unwrap(),
        LogOutcome::Closed
    ));
    assert!(s.log(1).unwrap().is_empty());
    let now = triad_wire::unix_now();
    let e = |sid: &str| match s.log_message(sid, 0, u64::MAX).unwrap() {
        LogOutcome::Logged(e) => e,
        other => panic!("{sid}: {other:?}"),
    };
    let c = e("c");
    let b = e("b");
    let a = e("a");
    assert_eq!((c.position, a.position, b.position), (0, 1, 0));
    assert!(a.timestamp >= now);
    assert_eq!(
        a,
        LogEntry {
            position: 1,
            submission_id: "a".into(),
            timestamp: a.timestamp,
            commitments: ["a0".into(), "a1".into(), "a2".into()],
            kind: MessageKind::Vote,
            state_index: None,
        }
    );
    assert_eq!(s.message("a").unwrap().unwrap().entry, Some(a.clone()));
    assert_eq!(s.log(1).unwrap(), vec![c, a]);
    assert_eq!(s.log(2).unwrap(), vec![b]);
}

/// Concurrent sign-ups get distinct state indexes, and concurrent
/// loggings distinct positions (and re-keys distinct state indexes after
/// the sign-ups'), without gaps.
fn concurrent_signups_and_logging_take_distinct_places(open: Open) {
    let s = &*open();
    assert!(s
        .create_poll(&poll_info(1), &entry(Kind::Poll, "1", 1))
        .unwrap());
    // Even racers send a vote, odd ones a re-key.
    let kind = |t: usize| match t % 2 {
        0 => MessageKind::Vote,
        _ => MessageKind::Rekey {
            new_key: "k".into(),
            nullifier: format!("r{t}"),
        },
    };
    for t in 0..RACERS {
        assert!(s
            .insert_ticket(&ticket(1, &format!("m{t}"), kind(t)), 100, 3_600_000)
            .unwrap());
    }
    let start = std::sync::Barrier::new(RACERS);
    std::thread::scope(|scope| {
        for t in 0..RACERS {
            let start = &start;
            scope.spawn(move || {
                let n = format!("n{t}");
                start.wait();
                s.insert_signup(&signup(1, &n, &n)).unwrap();
            });
        }
    });
    let indexes: Vec<u64> = s
        .signups(1)
        .unwrap()
        .iter()
        .map(|u| u.state_index)
        .collect();
    assert_eq!(indexes, (1..=RACERS as u64).collect::<Vec<_>>());
    let entries = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..RACERS {
            let (start, entries) = (&start, &entries);
            scope.spawn(move || {
                start.wait();
                match s.log_message(&format!("m{t}"), 0, u64::MAX).unwrap() {
                    LogOutcome::Logged(e) => entries.lock().unwrap().push(e),
                    other => panic!("{other:?}"),
                }
            });
        }
    });
    let entries = entries.into_inner().unwrap();
    let mut positions: Vec<u64> = entries.iter().map(|e| e.position).collect();
    positions.sort();
    assert_eq!(positions, (0..RACERS as u64).collect::<Vec<_>>());
    let mut rekeyed: Vec<u64> = entries.iter().filter_map(|e| e.state_index).collect();
    rekeyed.sort();
    let first = RACERS as u64 + 1;
    assert_eq!(
        rekeyed,
        (first..first + RACERS as u64 / 2).collect::<Vec<_>>()
    );
    assert_eq!(s.log(1).unwrap().len(), RACERS);
}

// ---------- directory ----------

/// (Moved from store/sqlite/directory.rs.) A study and its entry are
/// stored together, a second creation of the id writes neither, the salt
/// never changes, and sequence numbers only grow (also across a reopen).
fn directory_entries_are_stored_with_their_study_and_never_change(open: Open) {
    let db = open();
    assert!(db
        .create_study(study("a"), &entry(Kind::Study, "a", 1))
        .unwrap());
    assert!(!db
        .create_study(study("a"), &entry(Kind::Study, "a", 2))
        .unwrap());
    let e = db.directory_entry(Kind::Study, "a").unwrap().unwrap();
    assert_eq!(e.id_salt, [1; 16]);
    assert_eq!(
        db.study("a").unwrap().unwrap().directory_id,
        Some("01".repeat(32))
    );
    assert!(db.directory_entry(Kind::Poll, "a").unwrap().is_none());
    // Kept on ensure; a study from before the directory gets one.
    assert_eq!(
        db.ensure_directory_entry(&entry(Kind::Study, "a", 3))
            .unwrap()
            .id_salt,
        [1; 16]
    );
    assert_eq!(
        db.ensure_directory_entry(&entry(Kind::Poll, "7", 4))
            .unwrap()
            .id_salt,
        [4; 16]
    );
    assert_eq!(db.next_directory_seq(Kind::Study, "a").unwrap(), 1);
    assert_eq!(db.next_directory_seq(Kind::Study, "a").unwrap(), 2);
    assert!(db.next_directory_seq(Kind::Study, "nope").is_err());
    db.directory_published(Kind::Study, "a", 99).unwrap();
    drop(db);
    let db = open();
    assert_eq!(db.next_directory_seq(Kind::Study, "a").unwrap(), 3);
    let all = db.directory_entries().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].kind, all[0].published_at), (Kind::Study, Some(99)));
    assert_eq!(all[0].seq, 3);
    assert_eq!(all[1].kind, Kind::Poll);
    assert_eq!(all[1], entry(Kind::Poll, "7", 4));
}

/// Studies first, then polls, each in bytewise name order (a poll's name
/// is its id in decimal, so "10" comes before "7").
fn directory_entries_are_listed_studies_first_in_name_order(open: Open) {
    let s = &*open();
    for (kind, name) in [
        (Kind::Poll, "7"),
        (Kind::Study, "b"),
        (Kind::Poll, "10"),
        (Kind::Study, "B"),
        (Kind::Study, "_"),
    ] {
        s.ensure_directory_entry(&entry(kind, name, 1)).unwrap();
    }
    let all: Vec<(Kind, String)> = s
        .directory_entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.name))
        .collect();
    let want = [
        (Kind::Study, "B"),
        (Kind::Study, "_"),
        (Kind::Study, "b"),
        (Kind::Poll, "10"),
        (Kind::Poll, "7"),
    ];
    assert_eq!(all, want.map(|(k, n)| (k, n.to_string())).to_vec());
}

/// One `#[test]` per backend for each suite function.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let open = || -> Box<dyn super::CoordinatorStore> {
                        Box::new(crate::store::SqliteStore::open(dir.path()).unwrap())
                    };
                    super::$name(&open);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    // Kept alive to the end: dropping it drops the database.
                    let db = triad_pg::TestDatabase::new(stringify!($name));
                    let open = || -> Box<dyn super::CoordinatorStore> {
                        Box::new(crate::store::PostgresStore::open(&db.url).unwrap())
                    };
                    super::$name(&open);
                }
            )*
        }
    };
}

both_backends!(
    admission_refusals_write_nothing,
    admission_ready_and_expiry,
    concurrent_admissions_one_nullifier,
    concurrent_admissions_keep_the_queue_bound,
    batches_are_fifo_and_apply_verdicts,
    aborts_requeue_then_reject,
    commit_decisions_follow_the_batch_state,
    state_survives_a_reopen,
    studies_are_listed_in_id_order,
    releases_are_recorded_and_attempts_kept,
    polls_signups_and_tallies,
    abandoned_tickets_stop_holding_a_slot,
    rekeys_get_the_next_state_index_and_a_nullifier_once,
    messages_and_the_log,
    concurrent_signups_and_logging_take_distinct_places,
    directory_entries_are_stored_with_their_study_and_never_change,
    directory_entries_are_listed_studies_first_in_name_order,
);
