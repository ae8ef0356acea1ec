//! Poll tallies at the consumer API: the poll list from the coordinator,
//! then each tallied poll's signed copies from the three parties
//! themselves, accepted only through [`verify_tally`] (three signatures
//! over byte-identical documents) and only for the poll asked for. Tallies
//! are final, so the API keeps them in memory and fetches them again from
//! the parties (which store them durably) after a restart.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use triad_wire::poll::{verify_tally, PollInfo, SignedTally, VerifiedTally};
use triad_wire::{ApiError, ErrorCode};

use crate::poll::{base, get, PollReport};
use crate::Shared;

/// One entry of `GET /v1/polls`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PollSummary {
    #[serde(flatten)]
    pub info: PollInfo,
    /// The verified tally, once the three parties signed it.
    #[serde(default)]
    pub tally: Option<VerifiedTally>,
}

pub(crate) async fn poll_polls(shared: &Arc<Shared>, report: &mut PollReport) {
    let url = format!("{}/v1/polls", base(&shared.net.coordinator));
    let list = match get::<Vec<PollInfo>>(&shared.http, &url).await {
        Ok(l) => l,
        Err(e) => {
            report
                .problems
                .push(("coordinator".into(), format!("listing polls: {e}")));
            return;
        }
    };
    let todo: Vec<u64> = {
        let mut c = shared.cache.write().expect("cache lock");
        for p in &list {
            c.polls.insert(p.spec.id, p.clone());
        }
        list.iter()
            .filter(|p| p.tallied && !c.tallies.contains_key(&p.spec.id))
            .map(|p| p.spec.id)
            .collect()
    };
    for id in todo {
        match fetch_tally(shared, id).await {
            Ok(v) => {
                shared.note_problem(&format!("poll-{id}"), None);
                shared
                    .cache
                    .write()
                    .expect("cache lock")
                    .tallies
                    .insert(id, v);
            }
            Err(why) => {
                shared.note_problem(&format!("poll-{id}"), Some(why.clone()));
                report.problems.push((format!("poll-{id}"), why));
            }
        }
    }
}

async fn fetch_tally(shared: &Arc<Shared>, id: u64) -> Result<VerifiedTally, String> {
    let fetch = |i: usize| {
        let url = format!("{}/v1/polls/{id}/tally", base(&shared.net.parties[i].url));
        let http = shared.http.clone();
        async move { get::<SignedTally>(&http, &url).await }
    };
    let (a, b, c) = tokio::join!(fetch(0), fetch(1), fetch(2));
    let mut copies = Vec::with_capacity(3);
    for (i, r) in [a, b, c].into_iter().enumerate() {
        copies.push(r.map_err(|e| format!("tally not fetched from party {i}: {e}"))?);
    }
    let v = verify_tally(&copies, &shared.keys).map_err(|e| format!("tally refused: {e}"))?;
    if v.tally.poll_id != id {
        return Err(format!(
            "tally refused: the parties answered with poll {}'s",
            v.tally.poll_id
        ));
    }
    Ok(v)
}

pub(crate) async fn list(State(s): State<Arc<Shared>>) -> Json<Vec<PollSummary>> {
    let c = s.cache.read().expect("cache lock");
    Json(
        c.polls
            .values()
            .map(|info| PollSummary {
                info: info.clone(),
                tally: c.tallies.get(&info.spec.id).cloned(),
            })
            .collect(),
    )
}

pub(crate) async fn tally(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<VerifiedTally>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(ErrorCode::MalformedBody, "poll id must be an integer")
    })?;
    let c = s.cache.read().expect("cache lock");
    if let Some(v) = c.tallies.get(&id) {
        return Ok(Json(v.clone()));
    }
    if c.polls.contains_key(&id) {
        Err(ApiError::not_found(
            ErrorCode::NoTally,
            format!("poll {id} has no verified tally yet"),
        ))
    } else {
        Err(ApiError::not_found(
            ErrorCode::UnknownPoll,
            format!("no poll {id}"),
        ))
    }
}
