//! The batch commit protocol, recovery and the MPC jobs in an in-process
//! triad (coordinator + three real parties), with faults injected by
//! stopping services at arbitrary points. Every test ends by checking that
//! nothing acknowledged was lost: each accepted submission is held in a
//! committed batch by all three parties, nothing else is, and the signed
//! release counts exactly the accepted contributions.

use std::collections::BTreeSet;
use std::time::Duration;

use triad_wire::messages::SubmissionStatus;
use triad_wire::release::SecurityMode;
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
    // All three signed the mode they computed in.
    assert_eq!(r.release.security, Some(SecurityMode::from(w.security())));
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

/// The same flow with the three parties in semi-honest mode (the default,
/// used by the other tests here, is malicious: every batch check and
/// release with every gate and product checked and every opening
/// compared).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn semi_honest_parties_commit_and_release() {
    let w = World::start_with(triad_mpc::Security::SemiHonest).await;
    w.create_study("checked", 10, 1).await;
    let mut cs = Vec::new();
    for a in 0..11u64 {
        let v = match a {
            0 => -(1 << 40),
            1 => 0,
            _ => 1000 + a as i64 * 7,
        };
        cs.push(w.contribute("checked", a, v).await);
    }
    let ok = accepted(&w, &cs).await;
    assert_eq!(ok.len(), 11, "every honest contribution is accepted");
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "checked", &ok).await;
}

/// A party that drops shares it signed a receipt for, and so claims in
/// the presence exchange not to hold them while its receipt promises to
/// keep them: in malicious mode it cannot get the honest provider
/// silently rejected. The honest parties abort every attempt naming the
/// "presence claim" check and the liar, the coordinator lists the
/// cheating, nothing of that batch is committed, and after its retries
/// the batch's submissions are rejected `batch_failed` (retryable). In
/// semi-honest mode, where nobody lies, the same drop (an honest party's
/// lost upload) only rejects that item as `shares_missing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_that_drops_acknowledged_shares_cannot_reject_them_silently() {
    use triad_mpc::Security;
    use triad_wire::messages::RejectReason;
    for security in [Security::Malicious, Security::SemiHonest] {
        let w = World::start_with(security).await;
        w.create_study("liar", 1, 1).await;
        let mut ups = Vec::new();
        for a in 0..3u64 {
            ups.push(w.upload("liar", a, 10 + a as i64).await);
        }
        w.party_state(1).intake.remove(&[ups[1].intake_key()]);
        for u in &ups {
            w.ready(u).await;
        }
        let cs: Vec<Contribution> = ups.iter().map(|u| u.contribution.clone()).collect();
        let dropped = w.verdict(&cs[1].submission_id).await;
        assert_eq!(dropped.status, SubmissionStatus::Rejected, "{security:?}");
        let ok = accepted(&w, &cs).await;
        let reports = w.coordinator_status().await["cheating_detected"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match security {
            Security::Malicious => {
                assert_eq!(dropped.reason, Some(RejectReason::BatchFailed));
                assert!(!reports.is_empty());
                for r in &reports {
                    let what = r["what"].as_str().unwrap_or_default();
                    assert!(
                        what.contains("presence claim") && what.contains("P1"),
                        "{r}"
                    );
                    assert_ne!(r["reported_by"], 1, "{r}");
                }
            }
            Security::SemiHonest => {
                assert_eq!(dropped.reason, Some(RejectReason::SharesMissing));
                assert_eq!(ok.len(), 2, "the other two are accepted");
                assert!(reports.is_empty(), "{reports:?}");
            }
        }
        assert_committed_everywhere(&w, &ok).await;
    }
}

/// A committed batch consumes only its passing items' uploads: each party
/// still holds a rejected item's shares afterwards, as its receipt
/// promised (so a coordinator that batched the item again could not have
/// honest parties judged liars for lacking them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_batch_keeps_the_uploads_of_its_rejected_items() {
    use triad_wire::messages::RejectReason;
    let w = World::start().await;
    w.create_study("keep", 1, 1).await;
    let good = w.upload("keep", 0, 5).await;
    let bad = w.upload_shares_of("keep", 1, 5, 6).await;
    w.ready(&good).await;
    w.ready(&bad).await;
    let v = w.verdict(&good.contribution.submission_id).await;
    assert_eq!(v.status, SubmissionStatus::Accepted, "{v:?}");
    let v = w.verdict(&bad.contribution.submission_id).await;
    assert_eq!(v.reason, Some(RejectReason::CommitmentMismatch), "{v:?}");
    assert_committed_everywhere(&w, std::slice::from_ref(&good.contribution)).await;
    for i in 0..3 {
        let intake = &w.party_state(i).intake;
        let (sid, token) = bad.intake_key();
        assert!(intake.get(&sid, &token).is_some(), "party {i} dropped it");
        let (sid, token) = good.intake_key();
        assert!(intake.get(&sid, &token).is_none(), "party {i} kept it");
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
    assert_eq!(again, (409, "already_contributed".to_string()));
    assert_committed_everywhere(&w, &ok).await;
}

/// A party's receipt acknowledges an upload, so the upload is durable
/// before the receipt is signed: a party killed with every upload in its
/// intake holds them again after its restart, and no provider is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_a_party_acknowledged_survive_its_restart() {
    let mut w = World::start().await;
    w.create_study("party-fault", 1, 1).await;
    let mut ups = Vec::new();
    for a in 0..12u64 {
        ups.push(w.upload("party-fault", a, 50 + a as i64).await);
    }
    // Party 1 goes down with every upload in its intake before any batch
    // forms, so the first prepares certainly meet a dead party.
    w.kill_party(1).await;
    for u in &ups {
        w.ready(u).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.restart_party(1).await;
    let cs: Vec<Contribution> = ups.iter().map(|u| u.contribution.clone()).collect();
    let ok = accepted(&w, &cs).await;
    assert_eq!(
        ok.len(),
        cs.len(),
        "party 1 reloaded the uploads it had acknowledged"
    );
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "party-fault", &ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_stopped_mid_prepare_loses_nothing_acknowledged() {
    let mut w = World::start().await;
    w.create_study("mid-prepare", 1, 1).await;
    let mut cs = Vec::new();
    for a in 0..8u64 {
        let u = w.upload("mid-prepare", a, 7 * a as i64).await;
        w.ready(&u).await;
        cs.push(u.contribution);
    }
    // Kill party 2 as soon as a batch is being prepared (the coordinator
    // reports its submissions as processing).
    let hit = wait_processing(&w, &cs).await;
    w.kill_party(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.restart_party(2).await;
    assert!(
        hit,
        "no batch was seen in flight: the fault was not injected mid-batch"
    );
    // Whatever each verdict, all three parties agree with the coordinator.
    let ok = accepted(&w, &cs).await;
    assert_committed_everywhere(&w, &ok).await;
    if !ok.is_empty() {
        assert_released(&w, "mid-prepare", &ok).await;
    }
}

/// Polls (≤ 5 s) until some submission is in a batch being prepared.
async fn wait_processing(w: &World, cs: &[Contribution]) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        for c in cs {
            if w.submission(&c.submission_id).await.status == SubmissionStatus::Processing {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_stopped_mid_batch_settles_every_batch_after_restart() {
    let mut w = World::start().await;
    w.create_study("coord-fault", 1, 1).await;
    let mut cs = Vec::new();
    let mut hits = 0;
    for round in 0..3u64 {
        let mut batch = Vec::new();
        for a in 0..6u64 {
            let acct = round * 100 + a;
            let u = w.upload("coord-fault", acct, acct as i64).await;
            w.ready(&u).await;
            batch.push(u.contribution);
        }
        // Stop the coordinator while a batch of this round is in flight,
        // then bring it back on the same store.
        if wait_processing(&w, &batch).await {
            hits += 1;
        }
        w.kill_coordinator().await;
        w.restart_coordinator().await;
        cs.extend(batch);
    }
    assert!(hits > 0, "no kill landed while a batch was in flight");
    let ok = accepted(&w, &cs).await;
    assert_eq!(ok.len(), cs.len(), "a restart refuses nothing it admitted");
    assert_committed_everywhere(&w, &ok).await;
    assert_released(&w, "coord-fault", &ok).await;
}
