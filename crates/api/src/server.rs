//! The HTTP surface: JSON endpoints, the OpenAPI document, the dashboard.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use triad_wire::ErrorCode;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use triad_attestation::DataSpec;
use triad_stats::StatsSpec;
use triad_wire::study::ReleaseProgress;
use triad_wire::{ApiError, VerifiedRelease};

use crate::Shared;

/// One entry of `GET /v1/studies`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StudySummary {
    pub id: String,
    pub name: String,
    pub data_spec: DataSpec,
    pub min_cohort: u64,
    pub min_new: u64,
    pub release_interval_secs: u64,
    pub stats: StatsSpec,
    /// Verified releases the API holds for this study.
    pub releases: u64,
    #[serde(default)]
    pub latest_release_no: Option<u64>,
    #[serde(default)]
    pub latest_count: Option<u64>,
    #[serde(default)]
    pub latest_created_at: Option<u64>,
    /// Contributions so far and when the next release can come, as the
    /// coordinator last reported (absent until it answered once).
    #[serde(default)]
    pub progress: Option<ReleaseProgress>,
}

/// `GET /healthz`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub started_at: u64,
    /// Unix seconds of the last completed poll (0: none yet).
    pub last_poll: u64,
    pub studies: u64,
    pub releases: u64,
    /// The coordinator as the last poll found it: `ok`, or the problem.
    #[serde(default)]
    pub coordinator: String,
    /// Studies and polls whose latest fetch failed (unreachable or refused
    /// parties, a release or tally that did not verify).
    #[serde(default)]
    pub failing: u64,
}

const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let r = Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(health))
        .route("/metrics", get(triad_wire::metrics::serve_metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/studies", get(studies))
        .route("/v1/studies/{id}/release/latest", get(latest))
        .route("/v1/studies/{id}/releases", get(history))
        .route("/v1/polls", get(crate::tallies::list))
        .route("/v1/polls/{id}/tally", get(crate::tallies::tally));
    triad_wire::https::json_fallbacks(r)
        .layer(axum::middleware::from_fn(triad_wire::trace::trace_requests))
        .with_state(shared)
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn health(State(s): State<Arc<Shared>>) -> Json<Health> {
    let (coordinator, failing) = {
        let p = s.problems.lock().expect("problems lock");
        let coordinator = p.get("coordinator").cloned().unwrap_or_else(|| "ok".into());
        (
            coordinator,
            p.keys().filter(|k| *k != "coordinator").count() as u64,
        )
    };
    let c = s.cache.read().expect("cache lock");
    Json(Health {
        status: if coordinator == "ok" && failing == 0 {
            "ok".into()
        } else {
            "degraded".into()
        },
        coordinator,
        failing,
        started_at: s.started,
        last_poll: s.last_poll.load(Ordering::Relaxed),
        studies: c.studies.len() as u64,
        releases: c.releases.values().map(|h| h.len() as u64).sum(),
    })
}

async fn studies(State(s): State<Arc<Shared>>) -> Json<Vec<StudySummary>> {
    let c = s.cache.read().expect("cache lock");
    let mut out: Vec<StudySummary> = c
        .studies
        .values()
        .map(|p| {
            let hist = c.releases.get(&p.id);
            let latest = hist.and_then(|h| h.values().next_back());
            StudySummary {
                id: p.id.clone(),
                name: p.name.clone(),
                data_spec: p.data_spec.clone(),
                min_cohort: p.min_cohort,
                min_new: p.min_new,
                release_interval_secs: p.release_interval_secs,
                stats: p.stats.clone(),
                releases: hist.map_or(0, |h| h.len() as u64),
                latest_release_no: latest.map(|v| v.release.release_no),
                latest_count: latest.map(|v| v.release.count),
                latest_created_at: latest.map(|v| v.release.created_at),
                progress: c.progress.get(&p.id).cloned(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Json(out)
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::UnknownStudy, format!("no study {id:?}"))
}

async fn latest(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<VerifiedRelease>, ApiError> {
    let c = s.cache.read().expect("cache lock");
    if let Some(v) = c.releases.get(&id).and_then(|h| h.values().next_back()) {
        return Ok(Json(v.clone()));
    }
    if c.studies.contains_key(&id) {
        let progress = c
            .progress
            .get(&id)
            .map(|p| format!(": {}", p.describe()))
            .unwrap_or_default();
        Err(ApiError::not_found(
            ErrorCode::NoRelease,
            format!("study {id:?} has no verified release yet{progress}"),
        ))
    } else {
        Err(unknown(&id))
    }
}

async fn history(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<VerifiedRelease>>, ApiError> {
    let c = s.cache.read().expect("cache lock");
    match c.releases.get(&id) {
        Some(h) => Ok(Json(h.values().rev().cloned().collect())),
        None if c.studies.contains_key(&id) => Ok(Json(Vec::new())),
        None => Err(unknown(&id)),
    }
}
