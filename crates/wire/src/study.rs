//! The rules about a study that the coordinator and every party enforce
//! alike, as pure functions: which parameters a study may have
//! ([`validate_study`]), which parameters a party accepts to pin
//! ([`check_floors`]), and when a release may be computed
//! ([`release_allowed`]).
//!
//! Output privacy must not depend on the coordinator alone: each party runs
//! the same release rule with the parameters *it* pinned, so one set of
//! functions serves both sides, and every bound here is checked arithmetic
//! (a parameter at 2^64−1 must refuse, not wrap around).

use serde::{Deserialize, Serialize};

use crate::messages::{valid_study_id, StudyParams};

/// Largest `min_cohort` / `min_new`: far above any real study (the target
/// is a million contributions), far below anything that could overflow.
pub const MAX_THRESHOLD: u64 = 1_000_000_000;
/// Longest release interval: one year.
pub const MAX_RELEASE_INTERVAL_SECS: u64 = 366 * 24 * 3600;
/// Longest study name, in bytes.
pub const MAX_STUDY_NAME: usize = 200;
/// Most quantiles and histogram bounds a study may ask for: each costs
/// MPC work in every release.
pub const MAX_QUANTILES: usize = 64;
pub const MAX_HISTOGRAM_BOUNDS: usize = 256;

/// Why a study's parameters are refused. Always the fault of whoever
/// described the study (the operator, or a coordinator asking a party).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    #[error("study id must be 1-64 characters of [a-z0-9-]")]
    BadId,
    #[error("study ids starting with \"poll-\" are reserved for polls' sign-ups")]
    ReservedId,
    #[error("study name must be 1-{MAX_STUDY_NAME} bytes without control characters")]
    BadName,
    #[error("data spec: {0}")]
    DataSpec(String),
    #[error("data source: {0}")]
    Source(#[from] triad_attestation::SourceError),
    #[error("statistics: {0}")]
    Stats(String),
    #[error("{what} must be between {min} and {max}, not {got}")]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("this party requires {what} >= {floor}, the study asks {got}")]
    BelowFloor {
        what: &'static str,
        floor: u64,
        got: u64,
    },
}

fn in_range(what: &'static str, got: u64, min: u64, max: u64) -> Result<(), StudyError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(StudyError::OutOfRange {
            what,
            min,
            max,
            got,
        })
    }
}

/// Every parameter of a study within its bounds. A study that passes can
/// release: thresholds are at least 1 and at most [`MAX_THRESHOLD`], the
/// interval at least a second and at most a year.
pub fn validate_study(p: &StudyParams) -> Result<(), StudyError> {
    if !valid_study_id(&p.id) {
        return Err(StudyError::BadId);
    }
    if p.id.starts_with("poll-") {
        return Err(StudyError::ReservedId);
    }
    if p.name.is_empty() || p.name.len() > MAX_STUDY_NAME || p.name.chars().any(char::is_control) {
        return Err(StudyError::BadName);
    }
    p.data_spec
        .validate()
        .map_err(|e| StudyError::DataSpec(e.to_string()))?;
    p.source.validate()?;
    in_range("min_cohort", p.min_cohort, 1, MAX_THRESHOLD)?;
    in_range("min_new", p.min_new, 1, MAX_THRESHOLD)?;
    in_range(
        "release_interval_secs",
        p.release_interval_secs,
        1,
        MAX_RELEASE_INTERVAL_SECS,
    )?;
    let n = |v: usize| v as u64;
    in_range(
        "the number of quantiles",
        n(p.stats.quantiles.len()),
        0,
        n(MAX_QUANTILES),
    )?;
    in_range(
        "the number of histogram bounds",
        n(p.stats.histogram_bounds.len()),
        0,
        n(MAX_HISTOGRAM_BOUNDS),
    )?;
    p.stats
        .validate()
        .map_err(|e| StudyError::Stats(e.to_string()))
}

/// A party's lower bounds on the thresholds of any study it serves, on top
/// of [`validate_study`]: the coordinator alone cannot make the parties
/// release small cohorts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floors {
    pub min_cohort: u64,
    pub min_new: u64,
}

impl Default for Floors {
    fn default() -> Self {
        Self {
            min_cohort: 10,
            min_new: 10,
        }
    }
}

/// The party's pinning rule: a valid study at or above this party's floors.
pub fn check_floors(p: &StudyParams, floors: Floors) -> Result<(), StudyError> {
    validate_study(p)?;
    for (what, floor, got) in [
        ("min_cohort", floors.min_cohort, p.min_cohort),
        ("min_new", floors.min_new, p.min_new),
    ] {
        if got < floor {
            return Err(StudyError::BelowFloor { what, floor, got });
        }
    }
    Ok(())
}

/// Why a release may not be computed yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseRefused {
    #[error("{count} contributions; a release needs at least {min_cohort}")]
    CohortTooSmall { count: u64, min_cohort: u64 },
    #[error("{new} contributions since the last release; the next needs at least {min_new}")]
    TooFewNew { new: u64, min_new: u64 },
    #[error("{count} contributions, fewer than the {last_count} of the previous release")]
    CountWentBack { count: u64, last_count: u64 },
}

/// The output-privacy rule of a release over `count` contributions when
/// the previous release (if any) covered `last_count`: at least
/// `min_cohort` in all, and at least `min_new` new ones, since two releases
/// that differ by fewer contributions reveal those contributions' values.
/// Thresholds below 1 count as 1; all arithmetic is checked.
pub fn release_allowed(
    p: &StudyParams,
    count: u64,
    previous: Option<u64>,
) -> Result<(), ReleaseRefused> {
    let min_cohort = p.min_cohort.max(1);
    if count < min_cohort {
        return Err(ReleaseRefused::CohortTooSmall { count, min_cohort });
    }
    if let Some(last_count) = previous {
        let new = count
            .checked_sub(last_count)
            .ok_or(ReleaseRefused::CountWentBack { count, last_count })?;
        let min_new = p.min_new.max(1);
        if new < min_new {
            return Err(ReleaseRefused::TooFewNew { new, min_new });
        }
    }
    Ok(())
}

/// How far a study is from its next release, for people waiting on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseProgress {
    /// Accepted contributions.
    pub contributions: u64,
    /// Contributions still needed before the output-privacy rule allows a
    /// release (0: enough).
    pub needed: u64,
    /// When enough are in: the earliest time (Unix seconds) the schedule
    /// allows the next release (the coordinator then starts it within a
    /// tick); `None` while contributions are still needed.
    pub next_release_at: Option<u64>,
}

impl ReleaseProgress {
    /// One line for people: how many contributions are in, and what the
    /// next release waits for.
    fn accepted(&self) -> String {
        match self.contributions {
            1 => "1 contribution".into(),
            n => format!("{n} contributions"),
        }
    }

    pub fn describe(&self) -> String {
        match self.next_release_at {
            None => format!(
                "{} accepted, {} more needed before the next release",
                self.accepted(),
                self.needed
            ),
            Some(t) => format!(
                "{} accepted, enough for the next release, due from {}",
                self.accepted(),
                crate::format_unix(t)
            ),
        }
    }
}

/// The progress of `p` towards its next release with `count` accepted
/// contributions, the previous release (if any) as (count, created_at),
/// at `now`: the inverse of [`release_allowed`] plus the schedule.
pub fn release_progress(
    p: &StudyParams,
    count: u64,
    previous: Option<(u64, u64)>,
    now: u64,
) -> ReleaseProgress {
    let cohort_gap = p.min_cohort.max(1).saturating_sub(count);
    let new_gap = previous.map_or(0, |(last_count, _)| {
        last_count
            .saturating_add(p.min_new.max(1))
            .saturating_sub(count)
    });
    let needed = cohort_gap.max(new_gap);
    let next_release_at = (needed == 0).then(|| {
        previous.map_or(now, |(_, at)| {
            now.max(at.saturating_add(p.release_interval_secs.max(1)))
        })
    });
    ReleaseProgress {
        contributions: count,
        needed,
        next_release_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use triad_attestation::{DataSource, DataSpec};
    use triad_stats::StatsSpec;

    fn study(min_cohort: u64, min_new: u64) -> StudyParams {
        StudyParams {
            id: "s".into(),
            name: "study".into(),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            source: DataSource::named("127.0.0.1"),
            min_cohort,
            min_new,
            release_interval_secs: 60,
            stats: StatsSpec::default(),
        }
    }

    #[test]
    fn parameters_at_the_edges() {
        assert_eq!(validate_study(&study(1, 1)), Ok(()));
        assert_eq!(validate_study(&study(MAX_THRESHOLD, MAX_THRESHOLD)), Ok(()));
        for (c, n) in [(0, 10), (10, 0), (u64::MAX, 10), (10, u64::MAX)] {
            assert!(matches!(
                validate_study(&study(c, n)),
                Err(StudyError::OutOfRange { .. })
            ));
        }
        for i in [0, u64::MAX, MAX_RELEASE_INTERVAL_SECS + 1] {
            let mut s = study(10, 10);
            s.release_interval_secs = i;
            assert!(validate_study(&s).is_err(), "interval {i}");
        }
        let mut s = study(10, 10);
        s.stats.quantiles = vec![0.5; MAX_QUANTILES + 1];
        assert!(validate_study(&s).is_err());
        let mut s = study(10, 10);
        s.source = DataSource::named("");
        assert!(matches!(validate_study(&s), Err(StudyError::Source(_))));
        let mut s = study(10, 10);
        s.name = "a\nb".into();
        assert_eq!(validate_study(&s), Err(StudyError::BadName));
    }

    #[test]
    fn floors_refuse_small_thresholds() {
        let f = Floors::default();
        assert_eq!(check_floors(&study(10, 10), f), Ok(()));
        assert!(matches!(
            check_floors(&study(9, 10), f),
            Err(StudyError::BelowFloor {
                what: "min_cohort",
                ..
            })
        ));
        assert!(matches!(
            check_floors(&study(10, 9), f),
            Err(StudyError::BelowFloor {
                what: "min_new",
                ..
            })
        ));
        // The bypass found in review: min_new = 2^64−1 once passed the
        // floor and made `last_count + min_new` wrap around.
        assert!(check_floors(&study(10, u64::MAX), f).is_err());
    }

    #[test]
    fn huge_min_new_never_wraps_into_a_release() {
        let s = study(10, u64::MAX);
        for (count, last) in [(11, 10), (u64::MAX, 10), (u64::MAX, u64::MAX - 1)] {
            assert!(release_allowed(&s, count, Some(last)).is_err());
        }
        assert_eq!(
            release_allowed(&study(10, 10), 15, Some(20)),
            Err(ReleaseRefused::CountWentBack {
                count: 15,
                last_count: 20
            })
        );
    }

    proptest! {
        /// The rule against its definition in exact (u128) arithmetic.
        #[test]
        fn release_rule_matches_its_definition(
            min_cohort in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>(), 0u64..100],
            min_new in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>(), 0u64..100],
            count in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0u64..300],
            last in proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0u64..300]),
        ) {
            let s = study(min_cohort, min_new);
            let want = u128::from(count) >= u128::from(min_cohort.max(1))
                && last.is_none_or(|l| {
                    u128::from(count) >= u128::from(l) + u128::from(min_new.max(1))
                });
            prop_assert_eq!(release_allowed(&s, count, last).is_ok(), want);
        }
    }

    proptest! {
        /// Progress says "0 needed" exactly when the rule allows a release,
        /// and never names a time before the interval has passed.
        #[test]
        fn progress_agrees_with_the_rule(
            min_cohort in 0u64..50, min_new in 0u64..50, count in 0u64..200,
            last in prop::option::of((0u64..200, 0u64..1_000_000)),
            interval in 0u64..10_000, now in 0u64..2_000_000,
        ) {
            let mut s = study(min_cohort, min_new);
            s.release_interval_secs = interval;
            let last = last.filter(|(c, _)| *c <= count);
            let p = release_progress(&s, count, last, now);
            let allowed = release_allowed(&s, count, last.map(|l| l.0)).is_ok();
            prop_assert_eq!(p.needed == 0, allowed);
            prop_assert_eq!(p.next_release_at.is_some(), allowed);
            if let (Some(t), Some((_, at))) = (p.next_release_at, last) {
                prop_assert!(t >= now && t >= at + interval.max(1));
            }
            if p.needed > 0 {
                // That many more would be enough.
                prop_assert!(release_allowed(&s, count + p.needed, last.map(|l| l.0)).is_ok());
            }
        }
    }
}
