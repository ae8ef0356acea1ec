//! The batch commit protocol, recovery and the MPC jobs in an in-process
//! triad (coordinator + three real parties), with faults injected by
//! stopping services at arbitrary points. Every test ends by checking that
//! nothing acknowledged was lost: each accepted submission is held in a
//! committed batch by all three parties, nothing else is, and the signed
//! release counts exactly the accepted contributions.

use std::collections::BTreeSet;
use std::time::Duration;

use triad_wire::messages::SubmissionStatus;
use triad_world::{Contribution, World};

/// Waits for every verdict and returns the accepted contributions.
async fn accepted(w: &World, cs: &[Contribution]) -> Vec<Contribution> {
    let mut out = Vec::new();
    for c in cs {
        if w.verdict(&c.submission_id).await.status == SubmissionStatus::Accepted {
            out.push(c.clone());
        }
    }
    out
}

/// The signed release of all of `ok` states their exact sum, min and max.
async fn assert_released(w: &World, study: &str, ok: &[Contribution]) {
    let r = w.release_with_count(study, ok.len() as u64).await;
    let values: Vec<i64> = ok.iter().map(|c| c.value).collect();
    assert_eq!(r.release.results.sum, World::sum(ok));
    assert_eq!(r.release.results.min, *values.iter().min().unwrap());
    assert_eq!(r.release.results.max, *values.iter().max().unwrap());
}

/// All three parties hold exactly `want` in committed batches.
async fn assert_committed_everywhere(w: &World, want: &[Contribution]) {
    w.settled().await;
    let want: BTreeSet<String> = want.iter().map(|c| c.submission_id.clone()).collect();
    for i in 0..3 {
        assert_eq!(w.committed(i).await, want, "party {i}");
        assert_eq!(w.held(i, None).await, want, "party {i} holds other shares");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contributions_are_committed_by_all_three_and_released() {
    let w = World::start().await;
    w.create_study("plain", 10, 1).await;
    let mut cs = Vec::new();
    for a in 0..12u64 {
        cs.push(w.contribute("plain", a, 1000 + a as i64 * 7).await);
    }
    let ok = accepted(&w, &cs).await;
    assert_eq!(ok.len(), 12, "every honest contribution is accepted");
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "plain", &ok).await;
    // The same account again: refused by the coordinator, nothing stored.
    let again = w.submit_status("plain", 3).await;
    assert_eq!(again, 409);
    assert_committed_everywhere(&w, &ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_stopped_mid_batch_recovers_and_nothing_is_lost() {
    let mut w = World::start().await;
    w.create_study("party-fault", 1, 1).await;
    let mut cs = Vec::new();
    for a in 0..6u64 {
        cs.push(w.contribute("party-fault", a, 50 + a as i64).await);
    }
    // Stop party 1 while those batches are being prepared or committed.
    tokio::time::sleep(Duration::from_millis(30)).await;
    w.kill_party(1).await;
    for a in 6..12u64 {
        // Uploads to party 1 fail until it is back: contribute retries.
        let w2 = &w;
        let c = tokio::time::timeout(
            Duration::from_millis(300),
            w2.contribute("party-fault", a, 50 + a as i64),
        )
        .await;
        if let Ok(c) = c {
            cs.push(c);
        }
    }
    w.restart_party(1).await;
    let mut after = Vec::new();
    for a in 12..16u64 {
        after.push(w.contribute("party-fault", a, 50 + a as i64).await);
    }
    // Batches that failed while the party was down were retried, then
    // rejected (batch_failed): either way, all three agree.
    let ok = accepted(&w, &cs).await;
    let ok_after = accepted(&w, &after).await;
    assert_eq!(
        ok_after.len(),
        after.len(),
        "after the restart all are accepted"
    );
    let ok: Vec<Contribution> = ok.into_iter().chain(ok_after).collect();
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "party-fault", &ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_stopped_mid_batch_settles_every_batch_after_restart() {
    let mut w = World::start().await;
    w.create_study("coord-fault", 1, 1).await;
    let mut cs = Vec::new();
    for round in 0..3u64 {
        for a in 0..6u64 {
            let acct = round * 100 + a;
            cs.push(w.contribute("coord-fault", acct, acct as i64).await);
        }
        // Stop the coordinator at a different point of its batch work each
        // round, then bring it back on the same store.
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        w.kill_coordinator().await;
        w.restart_coordinator().await;
    }
    let ok = accepted(&w, &cs).await;
    assert_eq!(ok.len(), cs.len(), "a restart refuses nothing it admitted");
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "coord-fault", &ok).await;
}
