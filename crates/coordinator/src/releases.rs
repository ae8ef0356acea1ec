//! The release schedule. A study gets its next release when
//! - at least `min_cohort` contributions are accepted,
//! - at least `min_new` were accepted since the previous release (otherwise
//!   two releases would differ by one person's value), and
//! - `release_interval_secs` passed since the previous release (and since
//!   the previous failed attempt).
//!
//! Only the driver calls [`run_due_releases`]: consumers can never trigger
//! a release, and the release's MPC never overlaps a batch's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use triad_wire::messages::ReleaseRequest;
use triad_wire::release::verify_release;
use triad_wire::study::release_allowed;

use crate::batcher::{BatchError, Driver};
use crate::store::ReleaseStatus;

/// Whether the gates let `s` have its next release at `now` (Unix seconds):
/// the output-privacy rule the parties enforce too
/// ([`triad_wire::study::release_allowed`]), and the schedule.
pub fn release_due(s: &ReleaseStatus, now: u64) -> bool {
    let p = &s.study;
    let previous = (s.last_release_no > 0).then_some(s.last_count);
    release_allowed(p, s.accepted, previous).is_ok()
        && s.last_created_at
            .is_none_or(|t| now >= t.saturating_add(min_spacing_secs(p.release_interval_secs)))
}

/// At least a second between releases of a study, whatever its interval:
/// an interval of 0 must not turn the driver into a release loop.
fn min_spacing_secs(interval: u64) -> u64 {
    interval.max(1)
}

/// Asks the parties for every due release, one study at a time.
pub async fn run_due_releases(
    d: &Driver,
    attempts: &mut HashMap<String, Instant>,
) -> Result<(), BatchError> {
    let now = triad_wire::unix_now();
    for s in d.db.release_status().await? {
        if !release_due(&s, now) {
            continue;
        }
        let interval = Duration::from_secs(min_spacing_secs(s.study.release_interval_secs));
        if attempts
            .get(&s.study.id)
            .is_some_and(|t| t.elapsed() < interval)
        {
            continue;
        }
        attempts.insert(s.study.id.clone(), Instant::now());
        let release_no = s.last_release_no + 1;
        // A retry must ask for the same document: some parties may have
        // signed and stored it before the previous attempt failed.
        let (created_at, as_of_batch) =
            d.db.release_attempt(s.study.id.clone(), release_no, now)
                .await?;
        let req = ReleaseRequest {
            study: s.study.clone(),
            release_no,
            created_at,
            as_of_batch,
        };
        let p = &*d.parties;
        let (a, b, c) = tokio::join!(p.release(0, &req), p.release(1, &req), p.release(2, &req));
        let copies = match (a, b, c) {
            (Ok(a), Ok(b), Ok(c)) => vec![a, b, c],
            (a, b, c) => {
                for e in [a.err(), b.err(), c.err()].into_iter().flatten() {
                    tracing::warn!(study = %s.study.id, release = req.release_no, error = %e, "release failed");
                }
                continue;
            }
        };
        let verified = match verify_release(&copies, &d.party_keys) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(study = %s.study.id, release = req.release_no, error = %e, "release copies refused");
                continue;
            }
        };
        let r = &verified.release;
        if r.study_id != s.study.id || r.release_no != req.release_no {
            tracing::error!(
                study = %s.study.id,
                release = req.release_no,
                signed_study = %r.study_id,
                signed_release = r.release_no,
                "parties signed another release than asked"
            );
            continue;
        }
        let json = serde_json::to_string(&verified).map_err(crate::store::StoreError::from)?;
        d.db.record_release(
            s.study.id.clone(),
            r.release_no,
            r.count,
            r.created_at,
            json,
        )
        .await?;
        triad_wire::metrics::count(
            "triad_releases_total",
            "Releases signed by all three parties and recorded",
            &[("study", &s.study.id)],
            1.0,
        );
    }
    Ok(())
}
