//! Batches and the batch commit protocol (two-phase commit with the three
//! parties), run by the one driver task.
//!
//! The driver is the only caller of the calls that make the parties run
//! MPC (prepare and release): each party runs one MPC session at a time in
//! arrival order, so two concurrent sessions could be ordered differently at
//! different parties and deadlock. Batches and releases therefore
//! interleave in one sequential loop ([`run_driver`]).
//!
//! Protocol, per batch:
//! 1. durably record the batch (state preparing), its submissions processing;
//! 2. send `prepare` to all three parties concurrently;
//! 3. all three answered with equal verdicts → durably log commit (with the
//!    verdicts), then send `commit` to each until it acks, then apply the
//!    verdicts; anything else → durably log abort, send `abort` best effort,
//!    requeue the submissions (rejecting them after `max_attempts`).
//!
//! A party that does not ack a logged commit within `commit_patience`, or
//! refuses it outright (a 4xx: it lost the batch, or aborted it against
//! the protocol), does not stall the driver: the batch stays committing,
//! is reported by `GET /internal/status` and logged at error level, and is
//! retried every `stuck_retry` while other studies keep being served.
//!
//! Presumed abort: a batch the log does not show committed is aborted, so a
//! restart aborts batches still preparing and re-sends commit for batches
//! logged committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use triad_wire::messages::PrepareBatch;

use crate::parties::{Parties, PartyError, PartyFault};
use crate::releases;
use crate::store::{FormedBatch, Store, StoreError};

/// How batches are formed and retried.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Most submissions per batch.
    pub max_batch: usize,
    /// How long the oldest queued submission may wait for a fuller batch.
    pub linger: Duration,
    /// How long a submission may stay awaiting its provider's "ready".
    pub shares_timeout: Duration,
    /// Failed batches a submission survives before `BatchFailed`.
    pub max_attempts: u32,
    /// Pause after an aborted batch, so a failing party is not hammered.
    pub retry_backoff: Duration,
    /// Time limit of one party call (prepare and release run MPC).
    pub party_timeout: Duration,
    /// Longest idle sleep of the driver between looks at the queue.
    pub tick: Duration,
    /// How long a logged commit is re-sent to a party that does not ack
    /// before the batch is reported stuck and left for a later retry.
    pub commit_patience: Duration,
    /// How often commits that some party did not ack are sent again.
    pub stuck_retry: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::from_millis(200),
            shares_timeout: Duration::from_secs(60),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            party_timeout: Duration::from_secs(120),
            tick: Duration::from_millis(100),
            commit_patience: Duration::from_secs(30),
            stuck_retry: Duration::from_secs(30),
        }
    }
}

/// Shortest pause between two steps woken by "ready".
const WAKE_DEBOUNCE: Duration = Duration::from_millis(20);

/// Logged commits some party has not acked: batch id → why, per party.
/// Shared with the status endpoint.
pub type StuckCommits = Arc<Mutex<BTreeMap<u64, Vec<String>>>>;

/// What a party's report of cheating aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caught {
    /// A batch's check of contributions (then aborted and retried).
    Batch(u64),
    /// A poll's tally run (retried by the tallier).
    PollTally(u64),
}

/// The latest runs aborted because a party's checks caught a deviation
/// (malicious mode): (what was aborted, reporting party, what it said), at
/// most [`CHEATING_KEPT`], newest last. Shared with the status endpoint.
pub type CheatingReports = Arc<Mutex<std::collections::VecDeque<(Caught, usize, String)>>>;

/// How many cheating reports the status endpoint keeps.
pub const CHEATING_KEPT: usize = 100;

/// Logs a party's report of cheating as an error and keeps it for the
/// status endpoint. A report already kept (the same run, party and words:
/// a poll's tally is asked for again until it is done) is not repeated.
pub fn record_cheating(reports: &CheatingReports, caught: Caught, party: usize, what: &str) {
    let mut c = reports.lock().unwrap_or_else(|e| e.into_inner());
    if c.iter()
        .any(|(k, p, w)| *k == caught && *p == party && w == what)
    {
        return;
    }
    tracing::error!(?caught, party, what = %what, "cheating detected");
    c.push_back((caught, party, what.to_string()));
    while c.len() > CHEATING_KEPT {
        c.pop_front();
    }
}

/// What the driver shares with the handlers and tests.
pub struct Driver {
    pub db: Store,
    pub parties: Arc<dyn Parties>,
    pub cfg: BatchConfig,
    pub party_keys: [String; 3],
    /// Woken by "ready" so a full batch starts without waiting for a tick.
    pub wake: Arc<Notify>,
    /// Notified after every driver step, so long-polling status requests
    /// re-read their submission when it may have changed.
    pub settled: Arc<Notify>,
    pub stuck: StuckCommits,
    pub cheating: CheatingReports,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends `commit` to every party until each acks, with capped backoff, for
/// at most `patience`; a party's permanent refusal ends its retries at
/// once. Commit is idempotent at the parties, so repeats are harmless.
/// Returns the parties' errors; empty if all three acked.
async fn commit_all(parties: &dyn Parties, batch: u64, patience: Duration) -> Vec<PartyError> {
    let deadline = tokio::time::Instant::now() + patience;
    let one = |i: usize| async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match parties.commit(i, batch).await {
                Ok(()) => return None,
                Err(e) if e.is_permanent() || tokio::time::Instant::now() >= deadline => {
                    return Some(e)
                }
                Err(e) => {
                    tracing::warn!(batch, error = %e, "commit not acked; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    };
    let (a, b, c) = tokio::join!(one(0), one(1), one(2));
    [a, b, c].into_iter().flatten().collect()
}

/// Best effort: a party that misses the abort learns it by asking
/// `GET /internal/batches/{id}` (presumed abort).
async fn abort_all(parties: &dyn Parties, batch: u64) {
    let (a, b, c) = tokio::join!(
        parties.abort(0, batch),
        parties.abort(1, batch),
        parties.abort(2, batch)
    );
    for e in [a, b, c].into_iter().filter_map(Result::err) {
        tracing::warn!(batch, error = %e, "abort not acked (the party will ask)");
    }
}

impl Driver {
    /// Settles what a previous run left unfinished (see module docs).
    pub async fn recover(&self) -> Result<(), BatchError> {
        let (preparing, committing) = self.db.unfinished_batches().await?;
        for id in preparing {
            self.db.abort_batch(id, self.cfg.max_attempts).await?;
            abort_all(&*self.parties, id).await;
        }
        for b in committing {
            self.settle_commit(b.id).await?;
        }
        Ok(())
    }

    /// Sends a logged commit to the parties; once all three acked, applies
    /// the verdicts. Otherwise the batch stays committing and is reported
    /// stuck (see the module docs). Returns whether it was settled.
    async fn settle_commit(&self, batch: u64) -> Result<bool, BatchError> {
        let errors = commit_all(&*self.parties, batch, self.cfg.commit_patience).await;
        if errors.is_empty() {
            self.db.finish_commit(batch).await?;
            self.stuck_commits().remove(&batch);
            return Ok(true);
        }
        for e in &errors {
            tracing::error!(batch, error = %e, "a party did not ack a logged commit; batch stuck");
        }
        self.stuck_commits()
            .insert(batch, errors.iter().map(ToString::to_string).collect());
        Ok(false)
    }

    fn stuck_commits(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<String>>> {
        self.stuck.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends again the commits that some party did not ack.
    async fn retry_stuck_commits(&self) -> Result<(), BatchError> {
        let (_, committing) = self.db.unfinished_batches().await?;
        for b in committing {
            self.settle_commit(b.id).await?;
        }
        Ok(())
    }

    /// Logs a failed prepare; a party's report of cheating is an error an
    /// operator must see (logged, and listed by `GET /internal/status`).
    /// The batch is aborted and retried like any other failure: nothing
    /// was opened, and honest parties never sign a result after a failed
    /// check.
    fn report(&self, batch: u64, e: &PartyError) {
        if let PartyFault::Cheating(what) = &e.fault {
            record_cheating(&self.cheating, Caught::Batch(batch), e.party, what);
        } else {
            tracing::warn!(batch, error = %e, "prepare failed");
        }
    }

    /// Runs one formed batch through the commit protocol; `true` if committed.
    pub async fn run_batch(&self, batch: FormedBatch) -> Result<bool, BatchError> {
        let started = Instant::now();
        let committed = self.run_batch_inner(batch).await?;
        let outcome = if committed { "committed" } else { "aborted" };
        triad_wire::metrics::observe(
            "triad_batch_seconds",
            "Batch durations (prepare to decision) by outcome",
            &[("outcome", outcome)],
            started.elapsed(),
        );
        Ok(committed)
    }

    async fn run_batch_inner(&self, batch: FormedBatch) -> Result<bool, BatchError> {
        let req = PrepareBatch {
            batch_id: batch.id,
            study: batch.study,
            items: batch.items,
        };
        let p = &*self.parties;
        let (a, b, c) = tokio::join!(p.prepare(0, &req), p.prepare(1, &req), p.prepare(2, &req));
        let verdicts = match (a, b, c) {
            (Ok(a), Ok(b), Ok(c))
                if a.verdicts.len() == req.items.len()
                    && a.batch_id == req.batch_id
                    && a == b
                    && b == c =>
            {
                Some(a.verdicts)
            }
            (a, b, c) => {
                for e in [a.err(), b.err(), c.err()].into_iter().flatten() {
                    self.report(req.batch_id, &e);
                }
                None
            }
        };
        match verdicts {
            Some(v) => {
                self.db.decide_commit(req.batch_id, v).await?;
                self.settle_commit(req.batch_id).await?;
                Ok(true)
            }
            None => {
                tracing::warn!(batch = req.batch_id, "batch aborted");
                self.db
                    .abort_batch(req.batch_id, self.cfg.max_attempts)
                    .await?;
                abort_all(p, req.batch_id).await;
                Ok(false)
            }
        }
    }

    /// Forms and runs every batch that is due now; returns whether any
    /// batch ran and whether any aborted.
    async fn run_due_batches(&self) -> Result<(bool, bool), BatchError> {
        let (mut ran, mut aborted) = (false, false);
        let queued = self.db.queued_summary().await?;
        triad_wire::metrics::gauge(
            "triad_queue_depth",
            "Submissions queued for a batch",
            &[],
            queued.iter().map(|(_, n, _)| *n as f64).sum(),
        );
        for (study, count, oldest_ms) in queued {
            let waited = now_ms().saturating_sub(oldest_ms);
            if count < self.cfg.max_batch && waited < self.cfg.linger.as_millis() as i64 {
                continue;
            }
            if let Some(b) = self.db.form_batch(study, self.cfg.max_batch).await? {
                ran = true;
                aborted |= !self.run_batch(b).await?;
            }
        }
        Ok((ran, aborted))
    }

    /// The driver loop: recovery, then forever expire stale submissions,
    /// run due batches and due releases, one at a time.
    pub async fn run(self: Arc<Self>) {
        while let Err(e) = self.recover().await {
            tracing::error!(error = %e, "recovery failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut release_attempts: HashMap<String, Instant> = HashMap::new();
        let mut last_housekeeping: Option<Instant> = None;
        let mut last_stuck_retry = Instant::now();
        loop {
            // Expiry and the release schedule need looking at once a tick,
            // not at every "ready" that wakes the loop.
            let housekeeping = last_housekeeping.is_none_or(|t| t.elapsed() >= self.cfg.tick);
            let step = async {
                let mut expired = 0;
                if housekeeping {
                    expired = self
                        .db
                        .expire_awaiting(self.cfg.shares_timeout.as_millis() as i64)
                        .await?;
                }
                let (ran, aborted) = self.run_due_batches().await?;
                if housekeeping {
                    releases::run_due_releases(&self, &mut release_attempts).await?;
                }
                let has_stuck = !self.stuck_commits().is_empty();
                if has_stuck && last_stuck_retry.elapsed() >= self.cfg.stuck_retry {
                    last_stuck_retry = Instant::now();
                    self.retry_stuck_commits().await?;
                }
                Ok::<_, BatchError>((ran || expired > 0, aborted))
            };
            if housekeeping {
                last_housekeeping = Some(Instant::now());
            }
            let result = step.await;
            // Waiting status requests re-read only when a verdict may have
            // changed (a batch ran, submissions expired, or an error).
            if !matches!(result, Ok((false, _))) {
                self.settled.notify_waiters();
            }
            let result = result.map(|(_, aborted)| aborted);
            match result {
                // Back off without listening to "ready": a failing party
                // should not be asked again at once.
                Ok(true) => tokio::time::sleep(self.cfg.retry_backoff).await,
                Ok(false) => {
                    // A "ready" wakes the loop early; linger is then re-checked.
                    let woken = tokio::time::timeout(self.cfg.tick, self.wake.notified()).await;
                    if woken.is_ok() {
                        // A burst of readies costs one step, not one each.
                        tokio::time::sleep(WAKE_DEBOUNCE).await;
                    }
                }
                Err(e) => {
                    // A failed step may leave a batch preparing or
                    // committing; recovery settles both, as after a restart.
                    tracing::error!(error = %e, "driver step failed; recovering");
                    tokio::time::sleep(self.cfg.tick).await;
                    if let Err(e) = self.recover().await {
                        tracing::error!(error = %e, "recovery failed");
                    }
                }
            }
        }
    }
}
