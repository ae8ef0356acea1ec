//! The two MPC jobs a party runs, each a plain function over the mesh and
//! the store, run one at a time on the party's MPC worker thread.

use sha2::{Digest, Sha256};
use triad_mpc::{Bits, Fr, Shares};
use triad_polls::mpc::SharedMessages;
use triad_stats::StatsSpec;
use triad_wire::messages::{PrepareBatch, RejectReason, ReleaseRequest};
use triad_wire::poll::{sign_tally, MessageKind, PollTally, ShareSet, SignedTally, TALLY_VERSION};
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::{PartySigningKey, SignedRelease};

use crate::check::{check_batch, BatchShares, Evidence, Holding};
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

impl JobError {
    /// Whether a check caught a party deviating from the protocol.
    pub fn is_cheating(&self) -> bool {
        use triad_mpc::MpcError::CheatingDetected;
        matches!(
            self,
            Self::Mpc(CheatingDetected { .. })
                | Self::Stats(triad_stats::StatsError::Mpc(CheatingDetected { .. }))
        )
    }
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
/// `refused[k]` says this party refused item `k`'s attestation (its
/// shares then count as missing, and every party's verdict names the
/// refusal); the peers' claims are weighed against `evidence`.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    mesh: &Mesh,
    store: &dyn PartyStore,
    req: &PrepareBatch,
    request_sha256: &[u8; 32],
    commitments: &[Fr],
    inputs: &[Option<Components>],
    refused: &[bool],
    evidence: &dyn Evidence,
) -> Result<Vec<Option<RejectReason>>, JobError> {
    let n = inputs.len();
    let holding: Vec<Holding> = inputs
        .iter()
        .zip(refused)
        .map(|(c, r)| match (c, r) {
            (_, true) => Holding::Refused,
            (None, false) => Holding::Missing,
            (Some(_), false) => Holding::Held,
        })
        .collect();
    let inputs: Vec<Option<Components>> = inputs
        .iter()
        .zip(refused)
        .map(|(c, r)| if *r { None } else { *c })
        .collect();
    let comp = |c: &Option<Components>, j: usize| c.map(|c| c.value_bits[j]).unwrap_or(0);
    let fr = |c: &Option<Components>, j: usize| c.map(|c| c.blinder[j]).unwrap_or(Fr::from(0u64));
    let shares = BatchShares {
        holding,
        value_bits: Shares::new(
            inputs.iter().map(|c| Bits(comp(c, 0))).collect(),
            inputs.iter().map(|c| Bits(comp(c, 1))).collect(),
        ),
        blinder: Shares::new(
            inputs.iter().map(|c| fr(c, 0)).collect(),
            inputs.iter().map(|c| fr(c, 1)).collect(),
        ),
    };
    let checked = {
        let mut p = mesh.session("prepare", tag(&[b"prepare", request_sha256]))?;
        check_batch(&mut p, &shares, commitments, evidence)?
    };
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
    let started = std::time::Instant::now();
    let (results, rounds, bytes_sent) = {
        let mut p = mesh.session(
            "release",
            tag(&[
                b"release",
                study.id.as_bytes(),
                &req.release_no.to_le_bytes(),
                &req.created_at.to_le_bytes(),
                &req.as_of_batch.to_le_bytes(),
                &ids_digest,
                &spec_json,
            ]),
        )?;
        let (rounds, bytes) = (p.rounds, p.net.stats().bytes_sent);
        let results = triad_stats::compute(&mut p, &shares, spec)?;
        (results, p.rounds - rounds, p.net.stats().bytes_sent - bytes)
    };
    tracing::info!(
        study = %study.id,
        count = ids.len(),
        rounds,
        bytes_sent,
        seconds = started.elapsed().as_secs_f64(),
        "release computed"
    );
    let release = Release {
        version: RELEASE_VERSION,
        study_id: study.id.clone(),
        release_no: req.release_no,
        created_at: req.created_at,
        count: ids.len() as u64,
        as_of_batch: req.as_of_batch,
        results,
        security: Some(mesh.security().into()),
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

/// Processes a closed poll (docs/polls.md, "Service layer" and
/// "Anonymous re-keying"): loads this party's confirmed share sets of the
/// checked log, runs the re-keying epochs in order (each epoch's
/// deactivations, then its re-keys, under the services' rule that every
/// logged re-key appends a leaf), then the votes, in an MPC session tagged
/// with the request's digest; signs and stores the tally.
pub fn tally_poll(
    mesh: &Mesh,
    store: &dyn PartyStore,
    key: &PartySigningKey,
    poll: u64,
    req: &crate::polls::CheckedTally,
) -> Result<SignedTally, JobError> {
    let sets = store.confirmed_shares(poll, &req.ids())?;
    let mut input = PollInput::default();
    for (set, e) in sets.into_iter().zip(&req.entries) {
        let set = set.ok_or_else(|| JobError::MissingShares(e.submission_id.clone()))?;
        if set.kind != e.kind {
            // The commitment binds the kind: only a forged log gets here.
            return Err(JobError::MissingShares(e.submission_id.clone()));
        }
        input.push(e, &set);
    }
    let digest = hex::decode(&req.input_sha256).unwrap_or_default();
    let mut p = mesh.poll_session(
        "poll-tally",
        tag(&[b"poll-tally", &poll.to_le_bytes(), &digest]),
    )?;
    let (tally, stats) = if input.epochs.is_empty() {
        triad_polls::mpc::process_shared(
            &mut p,
            &req.params,
            &req.signups,
            &input.vote_times,
            &input.votes.shares(),
        )?
    } else {
        use triad_polls::mpc::rekey::{deactivate_shared, rekey_shared, SharedRegistry};
        let mut reg = SharedRegistry::new(&p, &req.signups);
        for epoch in input.epochs.values() {
            deactivate_shared(
                &mut p,
                &req.params,
                &mut reg,
                &epoch.deactivations(),
                &epoch.deact_times,
            )?;
            rekey_shared(
                &mut p,
                &req.params,
                &mut reg,
                &epoch.rekeys(),
                &epoch.new_keys,
                &epoch.rekey_times,
                Some(&epoch.claimed),
            )?;
        }
        triad_polls::mpc::process::process_shared_registry(
            &mut p,
            &req.params,
            &reg,
            &input.vote_times,
            &input.votes.shares(),
        )?
    };
    let security = p.security;
    drop(p);
    tracing::info!(
        poll,
        messages = stats.messages,
        steps = stats.steps,
        epochs = input.epochs.len(),
        "poll processed"
    );
    let doc = PollTally {
        version: TALLY_VERSION,
        poll_id: poll,
        signups: req.signups.len() as u64,
        messages: req.entries.len() as u64,
        input_sha256: req.input_sha256.clone(),
        votes: tally.votes,
        spent: tally.spent,
        spent_per_option: tally.spent_per_option,
        deactivations: input.deactivations,
        rekeys: input.rekeys,
        // Every phase ran in the session's mode (`--poll-security`):
        // malicious checks phase 1, the epochs and phases 2–4.
        security: Some(security.into()),
    };
    let signed = sign_tally(key, mesh.id.index() as u8, &doc);
    store.put_tally(poll, &req.input_sha256, &signed)?;
    Ok(store.tally(poll)?.map(|(_, t)| t).unwrap_or(signed))
}

/// This party's components of encoded commands (votes or deactivations).
#[derive(Default)]
struct Commands {
    words: [Vec<Bits>; 2],
    fr: [Vec<Fr>; 2],
}

impl Commands {
    fn push(&mut self, set: &ShareSet) {
        for c in 0..2 {
            self.words[c].extend(set.words[c].iter().map(|&w| Bits(w)));
            self.fr[c].extend_from_slice(&set.fr[c]);
        }
    }

    fn shares(&self) -> SharedMessages {
        SharedMessages {
            words: Shares::new(self.words[0].clone(), self.words[1].clone()),
            fr: Shares::new(self.fr[0].clone(), self.fr[1].clone()),
        }
    }
}

/// One re-keying epoch's inputs at this party, in log order.
#[derive(Default)]
struct EpochInput {
    deacts: Commands,
    deact_bits: [Vec<Bits>; 2],
    deact_times: Vec<u64>,
    secrets: [Vec<Fr>; 2],
    rekey_bits: [Vec<Bits>; 2],
    new_keys: Vec<triad_maci::PubKey>,
    rekey_times: Vec<u64>,
    claimed: Vec<Fr>,
}

impl EpochInput {
    fn deactivations(&self) -> triad_polls::mpc::rekey::SharedDeactivations {
        triad_polls::mpc::rekey::SharedDeactivations {
            msgs: self.deacts.shares(),
            c_bits: Shares::new(self.deact_bits[0].clone(), self.deact_bits[1].clone()),
        }
    }

    fn rekeys(&self) -> triad_polls::mpc::rekey::SharedRekeys {
        triad_polls::mpc::rekey::SharedRekeys {
            secret: Shares::new(self.secrets[0].clone(), self.secrets[1].clone()),
            c_bits: Shares::new(self.rekey_bits[0].clone(), self.rekey_bits[1].clone()),
        }
    }
}

/// A poll's log at this party, split into votes and re-keying epochs.
#[derive(Default)]
struct PollInput {
    votes: Commands,
    vote_times: Vec<u64>,
    epochs: std::collections::BTreeMap<u64, EpochInput>,
    deactivations: u64,
    rekeys: u64,
}

impl PollInput {
    fn push(&mut self, e: &crate::polls::CheckedEntry, set: &ShareSet) {
        let bits = |c: usize| set.c_bits[c].iter().map(|&w| Bits(w));
        match (&set.kind, &e.rekey) {
            (MessageKind::Vote, _) => {
                self.votes.push(set);
                self.vote_times.push(e.timestamp);
            }
            (MessageKind::Deactivate, _) => {
                let ep = self.epochs.entry(e.epoch).or_default();
                ep.deacts.push(set);
                for c in 0..2 {
                    ep.deact_bits[c].extend(bits(c));
                }
                ep.deact_times.push(e.timestamp);
                self.deactivations += 1;
            }
            (MessageKind::Rekey { .. }, Some((new_key, claimed))) => {
                let ep = self.epochs.entry(e.epoch).or_default();
                for c in 0..2 {
                    ep.secrets[c].push(set.fr[c][0]);
                    ep.rekey_bits[c].extend(bits(c));
                }
                ep.new_keys.push(*new_key);
                ep.rekey_times.push(e.timestamp);
                ep.claimed.push(*claimed);
                self.rekeys += 1;
            }
            (MessageKind::Rekey { .. }, None) => unreachable!("checked: a re-key parses"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobError;
    use triad_mpc::MpcError;

    #[test]
    fn cheating_is_told_apart_from_other_failures() {
        let caught = || MpcError::CheatingDetected {
            check: "shuffle tags",
            detail: "rows do not match".into(),
        };
        assert!(JobError::Mpc(caught()).is_cheating());
        assert!(JobError::Stats(triad_stats::StatsError::Mpc(caught())).is_cheating());
        assert!(!JobError::Mpc(MpcError::InvalidArgument("x")).is_cheating());
        assert!(!JobError::MissingShares("m".into()).is_cheating());
    }
}
