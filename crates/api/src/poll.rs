//! One poll: the study list from the coordinator, then each study's latest
//! release from the three parties, accepted only when it verifies.

use std::sync::Arc;
use triad_wire::ErrorCode;

use triad_wire::https::read_json;
use triad_wire::messages::{valid_study_id, StudyInfo, StudyParams};
use triad_wire::release::verify_release;
use triad_wire::{ApiError, SignedRelease, VerifiedRelease};

use crate::Shared;

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// `(study, release_no)` newly accepted.
    pub accepted: Vec<(String, u64)>,
    /// `(subject, why)` for everything refused or unreachable (a study id,
    /// or "coordinator"). Studies without any release yet are not listed.
    pub problems: Vec<(String, String)>,
}

pub(crate) async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, ApiError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| ApiError::unavailable(ErrorCode::Transport, e.to_string()))?;
    read_json(resp).await
}

pub(crate) fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

pub(crate) async fn poll_once(shared: &Arc<Shared>) -> PollReport {
    let _serial = shared.poll_lock.lock().await;
    let mut report = PollReport::default();

    let url = format!("{}/v1/studies", base(&shared.net.coordinator));
    match get::<Vec<StudyInfo>>(&shared.http, &url).await {
        Ok(list) => {
            shared.note_problem("coordinator", None);
            update_studies(shared, list, &mut report).await;
        }
        Err(e) => {
            let msg = format!("listing studies: {e}");
            shared.note_problem("coordinator", Some(msg.clone()));
            report.problems.push(("coordinator".into(), msg));
        }
    }

    let ids: Vec<String> = {
        let c = shared.cache.read().expect("cache lock");
        c.studies.keys().cloned().collect()
    };
    for id in ids {
        match poll_study(shared, &id).await {
            Ok(Some(no)) => {
                shared.note_problem(&id, None);
                triad_wire::metrics::count(
                    "triad_api_releases_accepted_total",
                    "Releases the API verified and now serves",
                    &[("study", &id)],
                    1.0,
                );
                report.accepted.push((id, no));
            }
            Ok(None) => shared.note_problem(&id, None),
            Err(why) => {
                shared.note_problem(&id, Some(why.clone()));
                report.problems.push((id, why));
            }
        }
    }
    crate::tallies::poll_polls(shared, &mut report).await;
    shared.mark_polled();
    report
}

async fn update_studies(shared: &Arc<Shared>, list: Vec<StudyInfo>, report: &mut PollReport) {
    let mut changed: Vec<StudyParams> = Vec::new();
    {
        // Progress is the coordinator's word, shown to people waiting for a
        // release and never used to accept one: memory only.
        let mut c = shared.cache.write().expect("cache lock");
        for info in &list {
            if let Some(p) = &info.progress {
                c.progress.insert(info.params.id.clone(), p.clone());
            }
        }
    }
    {
        let c = shared.cache.read().expect("cache lock");
        for info in list {
            if !valid_study_id(&info.params.id) {
                report.problems.push((
                    "coordinator".into(),
                    format!("ignoring study with invalid id {:?}", info.params.id),
                ));
                continue;
            }
            if c.studies.get(&info.params.id) != Some(&info.params) {
                changed.push(info.params);
            }
        }
    }
    if changed.is_empty() {
        return;
    }
    let store = shared.store.clone();
    let to_store = changed.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let s = store.lock().expect("store lock");
        to_store.iter().try_for_each(|p| s.put_study(p))
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "storing studies"),
        Err(e) => tracing::error!(error = %e, "storing studies"),
    }
    // Served even if the write failed: study parameters are public and
    // come back with the next poll.
    let mut c = shared.cache.write().expect("cache lock");
    for p in changed {
        c.studies.insert(p.id.clone(), p);
    }
}

/// `Ok(Some(no))`: release `no` newly accepted; `Ok(None)`: nothing new
/// (or no release yet); `Err`: refused or unreachable, with the reason.
async fn poll_study(shared: &Arc<Shared>, id: &str) -> Result<Option<u64>, String> {
    let fetch = |i: usize| {
        let url = format!(
            "{}/v1/studies/{id}/release/latest",
            base(&shared.net.parties[i].url)
        );
        let http = shared.http.clone();
        async move { get::<SignedRelease>(&http, &url).await }
    };
    let (a, b, c) = tokio::join!(fetch(0), fetch(1), fetch(2));
    let answers = [a, b, c];
    if answers
        .iter()
        .all(|r| matches!(r, Err(e) if e.code == ErrorCode::NoRelease))
    {
        return Ok(None);
    }
    let mut copies = Vec::with_capacity(3);
    let mut errors = Vec::new();
    for (i, r) in answers.into_iter().enumerate() {
        match r {
            Ok(c) => copies.push(c),
            Err(e) => errors.push(format!("party {i}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "release not fetched from all parties: {}",
            errors.join("; ")
        ));
    }
    let verified =
        verify_release(&copies, &shared.keys).map_err(|e| format!("release refused: {e}"))?;
    if verified.release.study_id != id {
        return Err(format!(
            "release refused: the parties answered with a release of study {:?}",
            verified.release.study_id
        ));
    }
    accept(shared, verified).await
}

async fn accept(shared: &Arc<Shared>, v: VerifiedRelease) -> Result<Option<u64>, String> {
    let (id, no) = (v.release.study_id.clone(), v.release.release_no);
    {
        let c = shared.cache.read().expect("cache lock");
        if let Some(have) = c.releases.get(&id).and_then(|h| h.get(&no)) {
            if have.release == v.release {
                return Ok(None);
            }
            return Err(format!(
                "release {no} refused: it differs from the release {no} accepted earlier"
            ));
        }
    }
    let store = shared.store.clone();
    let row = v.clone();
    let now = triad_wire::unix_now();
    tokio::task::spawn_blocking(move || store.lock().expect("store lock").put_release(&row, now))
        .await
        .map_err(|e| format!("caching release {no}: {e}"))?
        .map_err(|e| format!("caching release {no}: {e}"))?;
    let mut c = shared.cache.write().expect("cache lock");
    c.releases.entry(id).or_default().insert(no, v);
    Ok(Some(no))
}
