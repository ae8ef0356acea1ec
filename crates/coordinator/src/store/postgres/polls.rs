//! [`PollStore`] on the coordinator's PostgreSQL database (tables of
//! migrations 3 and 4, as in store/sqlite/polls.rs).

use triad_pg::postgres::Row;
use triad_pg::Sql;
use triad_wire::poll::{LogEntry, MessageKind, PollInfo, PollSpec, Signup, VerifiedTally};

use super::{now_ms, PostgresStore};
use crate::store::polls::{LogOutcome, MessageRow, NewSignup, NewTicket, PollStore, SignupRefused};
use crate::store::StoreError;

/// Migration 3: polls, sign-ups, message tickets and the log, tallies.
pub(super) const POLL_SCHEMA: &str = "
CREATE TABLE polls (
    id BIGINT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE poll_signups (
    poll BIGINT NOT NULL,
    state_index BIGINT NOT NULL,
    pub_key TEXT NOT NULL,
    voice_credits BIGINT NOT NULL,
    nullifier TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    attestation TEXT NOT NULL,
    -- Named: a race for an index is retried (postgres.rs, COMPUTED_KEYS).
    CONSTRAINT poll_signups_state_index PRIMARY KEY (poll, state_index),
    UNIQUE (poll, nullifier)
);
-- A ticket until logged; position and timestamp are set in one step.
CREATE TABLE poll_messages (
    submission_id TEXT PRIMARY KEY,
    poll BIGINT NOT NULL,
    token_sha256 TEXT NOT NULL,
    commitments TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    position BIGINT,
    timestamp BIGINT,
    CONSTRAINT poll_messages_position UNIQUE (poll, position)
);
CREATE INDEX poll_messages_open ON poll_messages (poll, position);
CREATE TABLE poll_tallies (
    poll BIGINT PRIMARY KEY,
    tally_json TEXT NOT NULL
);
";

/// Migration 4: what each message does (JSON of `MessageKind`; NULL for
/// a vote), a re-key's claimed nullifier (unique among logged ones) and
/// the state index it was given when logged.
pub(super) const REKEY_SCHEMA: &str = "
ALTER TABLE poll_messages ADD COLUMN kind TEXT;
ALTER TABLE poll_messages ADD COLUMN nullifier TEXT;
ALTER TABLE poll_messages ADD COLUMN state_index BIGINT;
CREATE UNIQUE INDEX poll_messages_nullifier ON poll_messages (poll, nullifier)
    WHERE nullifier IS NOT NULL AND position IS NOT NULL;
";

fn kind_of(json: Option<&str>) -> Result<MessageKind, StoreError> {
    Ok(match json {
        None => MessageKind::Vote,
        Some(j) => serde_json::from_str(j)?,
    })
}

fn i(v: u64) -> i64 {
    v as i64
}

/// A poll with its counters and directory id, in one statement; rows as
/// [`poll_from_row`] reads them.
const POLL_SELECT: &str = "
SELECT p.spec_json, p.created_at,
       (SELECT COUNT(*) FROM poll_signups s WHERE s.poll = p.id),
       (SELECT COUNT(*) FROM poll_messages m WHERE m.poll = p.id AND m.position IS NOT NULL),
       EXISTS (SELECT 1 FROM poll_tallies t WHERE t.poll = p.id),
       d.directory_id
FROM polls p
LEFT JOIN directory_entries d ON d.kind = 'poll' AND d.name = p.id::TEXT";

fn poll_from_row(r: &Row) -> Result<PollInfo, StoreError> {
    let spec: PollSpec = serde_json::from_str(r.try_get(0)?)?;
    Ok(PollInfo {
        spec,
        created_at: r.try_get::<_, i64>(1)? as u64,
        signups: r.try_get::<_, i64>(2)? as u64,
        messages: r.try_get::<_, i64>(3)? as u64,
        tallied: r.try_get(4)?,
        directory_id: r.try_get(5)?,
    })
}

/// A message's log entry (if logged) and its commitments.
fn entry(
    submission_id: String,
    commitments: &str,
    position: Option<i64>,
    timestamp: Option<i64>,
    kind: MessageKind,
    state_index: Option<i64>,
) -> Result<(Option<LogEntry>, [String; 3]), StoreError> {
    let commitments: [String; 3] = serde_json::from_str(commitments)?;
    let entry = match (position, timestamp) {
        (Some(p), Some(t)) => Some(LogEntry {
            position: p as u64,
            submission_id,
            timestamp: t as u64,
            commitments: commitments.clone(),
            kind,
            state_index: state_index.map(|x| x as u64),
        }),
        (None, None) => None,
        _ => return Err(StoreError::Corrupt("half-logged message".into())),
    };
    Ok((entry, commitments))
}

/// The entry of a row of (submission_id, commitments, position, timestamp,
/// kind, state_index).
fn log_entry(r: &Row) -> Result<Option<LogEntry>, StoreError> {
    Ok(entry(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        kind_of(r.try_get(4)?)?,
        r.try_get(5)?,
    )?
    .0)
}

const LOG_COLUMNS: &str = "submission_id, commitments, position, timestamp, kind, state_index";

fn load_poll(c: &mut impl Sql, id: u64) -> Result<Option<PollInfo>, StoreError> {
    c.query_opt(&format!("{POLL_SELECT} WHERE p.id = $1"), &[&i(id)])?
        .map(|r| poll_from_row(&r))
        .transpose()
}

impl PollStore for PostgresStore {
    fn create_poll(
        &self,
        info: &PollInfo,
        entry: &crate::store::DirectoryEntry,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&info.spec)?;
        self.pool.transaction(|tx| {
            let n = tx.execute(
                "INSERT INTO polls (id, spec_json, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&i(info.spec.id), &json, &i(info.created_at)],
            )?;
            if n != 1 {
                return Ok(false);
            }
            super::directory::insert_entry(tx, entry)?;
            Ok(true)
        })
    }

    fn poll(&self, id: u64) -> Result<Option<PollInfo>, StoreError> {
        load_poll(&mut self.pool.get()?, id)
    }

    fn polls(&self) -> Result<Vec<PollInfo>, StoreError> {
        let rows = self
            .pool
            .get()?
            .query(&format!("{POLL_SELECT} ORDER BY p.id"), &[])?;
        rows.iter().map(poll_from_row).collect()
    }

    fn insert_signup(&self, s: &NewSignup) -> Result<u64, SignupRefused> {
        // Every refusal is the closure's Err: nothing is written.
        self.pool.transaction(|tx| {
            if tx
                .query_opt("SELECT 1 FROM polls WHERE id = $1", &[&i(s.poll)])?
                .is_none()
            {
                return Err(SignupRefused::UnknownPoll);
            }
            if tx
                .query_opt(
                    "SELECT 1 FROM poll_signups WHERE poll = $1 AND nullifier = $2",
                    &[&i(s.poll), &s.nullifier],
                )?
                .is_some()
            {
                return Err(SignupRefused::AlreadySignedUp);
            }
            let seen = tx.execute(
                "INSERT INTO seen_signatures (signature, seen_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&s.signature, &i(s.timestamp)],
            )?;
            if seen == 0 {
                return Err(SignupRefused::Replayed);
            }
            let index: i64 = tx
                .query_one(
                    "SELECT COUNT(*) + 1 FROM poll_signups WHERE poll = $1",
                    &[&i(s.poll)],
                )?
                .try_get(0)?;
            tx.execute(
                "INSERT INTO poll_signups
                 (poll, state_index, pub_key, voice_credits, nullifier, timestamp, attestation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &i(s.poll),
                    &index,
                    &s.pub_key,
                    &i(s.voice_credits),
                    &s.nullifier,
                    &i(s.timestamp),
                    &s.attestation_json,
                ],
            )?;
            Ok(index as u64)
        })
    }

    fn signups(&self, poll: u64) -> Result<Vec<Signup>, StoreError> {
        let rows = self.pool.get()?.query(
            "SELECT state_index, pub_key, voice_credits, timestamp, attestation
             FROM poll_signups WHERE poll = $1 ORDER BY state_index",
            &[&i(poll)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Signup {
                    state_index: r.try_get::<_, i64>(0)? as u64,
                    pub_key: r.try_get(1)?,
                    voice_credits: r.try_get::<_, i64>(2)? as u64,
                    timestamp: r.try_get::<_, i64>(3)? as u64,
                    attestation: serde_json::from_str(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    fn insert_ticket(
        &self,
        t: &NewTicket,
        max_open: usize,
        open_ms: i64,
    ) -> Result<bool, StoreError> {
        let commitments = serde_json::to_string(&t.commitments)?;
        let kind = (!t.kind.is_vote())
            .then(|| serde_json::to_string(&t.kind))
            .transpose()?;
        let nullifier = match &t.kind {
            MessageKind::Rekey { nullifier, .. } => Some(nullifier.as_str()),
            _ => None,
        };
        self.pool.transaction(|tx| {
            let now = now_ms();
            let open: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM poll_messages
                     WHERE poll = $1 AND position IS NULL AND created_ms > $2",
                    &[&i(t.poll), &(now - open_ms)],
                )?
                .try_get(0)?;
            if open as usize >= max_open {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO poll_messages
                 (submission_id, poll, token_sha256, commitments, created_ms, kind, nullifier)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &t.submission_id,
                    &i(t.poll),
                    &t.token_sha256,
                    &commitments,
                    &now,
                    &kind,
                    &nullifier,
                ],
            )?;
            Ok(true)
        })
    }

    fn message(&self, submission_id: &str) -> Result<Option<MessageRow>, StoreError> {
        let row = self.pool.get()?.query_opt(
            "SELECT poll, token_sha256, commitments, position, timestamp, kind, state_index
             FROM poll_messages WHERE submission_id = $1",
            &[&submission_id],
        )?;
        let Some(r) = row else {
            return Ok(None);
        };
        let kind = kind_of(r.try_get(5)?)?;
        let (entry, commitments) = entry(
            submission_id.into(),
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            kind.clone(),
            r.try_get(6)?,
        )?;
        Ok(Some(MessageRow {
            poll: r.try_get::<_, i64>(0)? as u64,
            token_sha256: r.try_get(1)?,
            commitments,
            kind,
            entry,
        }))
    }

    fn log_message(
        &self,
        submission_id: &str,
        signup_deadline: u64,
        deadline: u64,
    ) -> Result<LogOutcome, StoreError> {
        self.pool.transaction(|tx| {
            let r = tx.query_one(
                "SELECT poll, position, nullifier FROM poll_messages WHERE submission_id = $1",
                &[&submission_id],
            )?;
            let poll: i64 = r.try_get(0)?;
            let position: Option<i64> = r.try_get(1)?;
            let nullifier: Option<String> = r.try_get(2)?;
            if position.is_none() {
                // Read inside the transaction (and again on a retry).
                let timestamp = triad_wire::unix_now();
                if timestamp >= deadline {
                    return Ok(LogOutcome::Closed);
                }
                let mut state_index = None;
                if let Some(n) = &nullifier {
                    // A re-key: sign-ups are final, its nullifier is new, and
                    // its leaf comes after the sign-ups and earlier re-keys.
                    if timestamp < signup_deadline {
                        return Ok(LogOutcome::SignupOpen);
                    }
                    let used: i64 = tx
                        .query_one(
                            "SELECT COUNT(*) FROM poll_messages
                             WHERE poll = $1 AND nullifier = $2 AND position IS NOT NULL",
                            &[&poll, n],
                        )?
                        .try_get(0)?;
                    if used > 0 {
                        return Ok(LogOutcome::NullifierUsed);
                    }
                    let counts = tx.query_one(
                        "SELECT (SELECT COUNT(*) FROM poll_signups WHERE poll = $1),
                                (SELECT COUNT(*) FROM poll_messages
                                 WHERE poll = $1 AND state_index IS NOT NULL)",
                        &[&poll],
                    )?;
                    let (signups, rekeys): (i64, i64) = (counts.try_get(0)?, counts.try_get(1)?);
                    if rekeys >= signups {
                        return Ok(LogOutcome::RekeyLimit);
                    }
                    state_index = Some(signups + rekeys + 1);
                }
                let next: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM poll_messages
                         WHERE poll = $1 AND position IS NOT NULL",
                        &[&poll],
                    )?
                    .try_get(0)?;
                tx.execute(
                    "UPDATE poll_messages SET position = $2, timestamp = $3, state_index = $4
                     WHERE submission_id = $1",
                    &[&submission_id, &next, &i(timestamp), &state_index],
                )?;
            }
            let r = tx.query_one(
                &format!("SELECT {LOG_COLUMNS} FROM poll_messages WHERE submission_id = $1"),
                &[&submission_id],
            )?;
            match log_entry(&r)? {
                Some(e) => Ok(LogOutcome::Logged(e)),
                None => Err(StoreError::Corrupt(
                    "logged message without a position".into(),
                )),
            }
        })
    }

    fn log(&self, poll: u64) -> Result<Vec<LogEntry>, StoreError> {
        let rows = self.pool.get()?.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM poll_messages
                 WHERE poll = $1 AND position IS NOT NULL ORDER BY position"
            ),
            &[&i(poll)],
        )?;
        rows.iter()
            .map(|r| {
                log_entry(r)?
                    .ok_or_else(|| StoreError::Corrupt("log row without a position".into()))
            })
            .collect()
    }

    fn put_tally(&self, poll: u64, tally: &VerifiedTally) -> Result<(), StoreError> {
        let json = serde_json::to_string(tally)?;
        self.pool.transaction(|tx| {
            tx.execute(
                "INSERT INTO poll_tallies (poll, tally_json) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&i(poll), &json],
            )?;
            Ok(())
        })
    }

    fn tally(&self, poll: u64) -> Result<Option<VerifiedTally>, StoreError> {
        let row = self.pool.get()?.query_opt(
            "SELECT tally_json FROM poll_tallies WHERE poll = $1",
            &[&i(poll)],
        )?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(r.try_get(0)?)?))
    }
}
