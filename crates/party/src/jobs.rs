//! The two MPC jobs a party runs, each a plain function over the mesh and
//! the store, run one at a time on the party's MPC worker thread.

use sha2::{Digest, Sha256};
use triad_mpc::{Bits, Fr, Shares};
use triad_stats::StatsSpec;
use triad_wire::messages::{PrepareBatch, RejectReason, ReleaseRequest};
use triad_wire::poll::{sign_tally, PollTally, SignedTally, TALLY_VERSION};
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::{PartySigningKey, SignedRelease};

use crate::check::{check_batch, BatchShares};
use crate::intake::Components;
use crate::mesh::{Mesh, SessionError};
use crate::store::{PartyStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("MPC: {0}")]
    Mpc(#[from] triad_mpc::MpcError),
    #[error("statistics: {0}")]
    Stats(#[from] triad_stats::StatsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("no confirmed share set of logged message {0}")]
    MissingShares(String),
}

fn tag(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Checks a batch in MPC and stores the passing items as pending.
/// `inputs[k]` is this party's copy of item `k`, if it received one;
/// `refused[k]` says this party refused item `k`'s attestation (its shares
/// then count as missing, and the verdict names the refusal).
pub fn prepare(
    mesh: &Mesh,
    store: &dyn PartyStore,
    req: &PrepareBatch,
    request_sha256: &[u8; 32],
    commitments: &[Fr],
    inputs: &[Option<Components>],
    refused: &[bool],
) -> Result<Vec<Option<RejectReason>>, JobError> {
    let n = inputs.len();
    let inputs: Vec<Option<Components>> = inputs
        .iter()
        .zip(refused)
        .map(|(c, r)| if *r { None } else { *c })
        .collect();
    let comp = |c: &Option<Components>, j: usize| c.map(|c| c.value_bits[j]).unwrap_or(0);
    let fr = |c: &Option<Components>, j: usize| c.map(|c| c.blinder[j]).unwrap_or(Fr::from(0u64));
    let shares = BatchShares {
        present: inputs.iter().map(Option::is_some).collect(),
        value_bits: Shares::new(
            inputs.iter().map(|c| Bits(comp(c, 0))).collect(),
            inputs.iter().map(|c| Bits(comp(c, 1))).collect(),
        ),
        blinder: Shares::new(
            inputs.iter().map(|c| fr(c, 0)).collect(),
            inputs.iter().map(|c| fr(c, 1)).collect(),
        ),
    };
    let mut checked = {
        let mut p = mesh.session(tag(&[b"prepare", request_sha256]))?;
        check_batch(&mut p, &shares, commitments)?
    };
    for (v, r) in checked.verdicts.iter_mut().zip(refused) {
        if *r {
            *v = Some(RejectReason::AttestationRefused);
        }
    }
    let pass: Vec<usize> = (0..n).filter(|&k| checked.verdicts[k].is_none()).collect();
    let passing: Vec<_> = pass
        .iter()
        .map(|&k| {
            (
                req.items[k].submission_id.clone(),
                checked.values.a[k],
                checked.values.b[k],
            )
        })
        .collect();
    let nullifiers: Vec<_> = pass
        .iter()
        .map(|&k| {
            (
                req.items[k].submission_id.clone(),
                req.items[k].attestation.nullifier.clone(),
            )
        })
        .collect();
    store.put_pending(
        req.batch_id,
        &req.study.id,
        request_sha256,
        &checked.verdicts,
        &passing,
        &nullifiers,
    )?;
    Ok(checked.verdicts)
}

/// Computes, signs and stores a release over every committed contribution.
pub fn release(
    mesh: &Mesh,
    store: &dyn PartyStore,
    key: &PartySigningKey,
    req: &ReleaseRequest,
) -> Result<SignedRelease, JobError> {
    let study = &req.study;
    let (ids, shares) = store.committed_shares(&study.id, req.as_of_batch)?;
    // The tag covers the input set, so parties with different committed
    // sets refuse to compute rather than release garbage.
    let ids_digest = Sha256::digest(ids.join(",").as_bytes());
    let spec: &StatsSpec = &study.stats;
    let spec_json = serde_json::to_vec(spec).expect("spec serializes");
    let results = {
        let mut p = mesh.session(tag(&[
            b"release",
            study.id.as_bytes(),
            &req.release_no.to_le_bytes(),
            &req.created_at.to_le_bytes(),
            &req.as_of_batch.to_le_bytes(),
            &ids_digest,
            &spec_json,
        ]))?;
        triad_stats::compute(&mut p, &shares, spec)?
    };
    let release = Release {
        version: RELEASE_VERSION,
        study_id: study.id.clone(),
        release_no: req.release_no,
        created_at: req.created_at,
        count: ids.len() as u64,
        as_of_batch: req.as_of_batch,
        results,
    };
    let signed = sign_release(key, mesh.id.index() as u8, &release);
    store.put_release(&study.id, req.release_no, release.count, &signed)?;
    // A retried release this party had already stored: answer with the
    // stored copy (the same bytes, as the coordinator reuses created_at).
    match store.latest_release(&study.id)? {
        Some((no, _, stored)) if no == req.release_no => Ok(stored),
        _ => Ok(signed),
    }
}

/// Processes a closed poll over this party's confirmed share sets
/// ([`triad_polls::mpc::process_shared`], which opens only the tally),
/// then signs and stores the tally.
pub fn tally_poll(
    mesh: &Mesh,
    store: &dyn PartyStore,
    key: &PartySigningKey,
    poll: u64,
    req: &crate::polls::CheckedTally,
) -> Result<SignedTally, JobError> {
    use triad_polls::mpc::SharedMessages;
    let sets = store.confirmed_shares(poll, &req.ids)?;
    let n = sets.len();
    let mut words = [Vec::with_capacity(n * 21), Vec::with_capacity(n * 21)];
    let mut fr = [Vec::with_capacity(n * 5), Vec::with_capacity(n * 5)];
    for (set, (sid, _)) in sets.into_iter().zip(&req.ids) {
        let set = set.ok_or_else(|| JobError::MissingShares(sid.clone()))?;
        for c in 0..2 {
            words[c].extend(set.words[c].iter().map(|&w| Bits(w)));
            fr[c].extend_from_slice(&set.fr[c]);
        }
    }
    let [wa, wb] = words;
    let [fa, fb] = fr;
    let msgs = SharedMessages {
        words: Shares::new(wa, wb),
        fr: Shares::new(fa, fb),
    };
    let input = hex::decode(&req.input_sha256).unwrap_or_default();
    let (tally, stats) = {
        let mut p = mesh.session(tag(&[b"poll-tally", &poll.to_le_bytes(), &input]))?;
        triad_polls::mpc::process_shared(&mut p, &req.params, &req.signups, &req.timestamps, &msgs)?
    };
    tracing::info!(
        poll,
        messages = stats.messages,
        steps = stats.steps,
        "poll processed"
    );
    let doc = PollTally {
        version: TALLY_VERSION,
        poll_id: poll,
        signups: req.signups.len() as u64,
        messages: n as u64,
        input_sha256: req.input_sha256.clone(),
        votes: tally.votes,
        spent: tally.spent,
        spent_per_option: tally.spent_per_option,
    };
    let signed = sign_tally(key, mesh.id.index() as u8, &doc);
    store.put_tally(poll, &req.input_sha256, &signed)?;
    Ok(store.tally(poll)?.map(|(_, t)| t).unwrap_or(signed))
}
