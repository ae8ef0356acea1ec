//! [`PollStore`] on the coordinator's SQLite file (tables of migration 3).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use triad_wire::poll::{LogEntry, PollInfo, PollSpec, Signup, VerifiedTally};

use super::{now_ms, SqliteStore};
use crate::store::polls::{MessageRow, NewSignup, PollStore, SignupRefused};
use crate::store::StoreError;

/// Migration 3: polls, sign-ups, message tickets and the log, tallies.
pub(super) const POLL_SCHEMA: &str = "
CREATE TABLE polls (
    id INTEGER PRIMARY KEY,
    spec_json TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE poll_signups (
    poll INTEGER NOT NULL,
    state_index INTEGER NOT NULL,
    pub_key TEXT NOT NULL,
    voice_credits INTEGER NOT NULL,
    nullifier TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    attestation TEXT NOT NULL,
    PRIMARY KEY (poll, state_index),
    UNIQUE (poll, nullifier)
);
-- A ticket until logged; position and timestamp are set in one step.
CREATE TABLE poll_messages (
    submission_id TEXT PRIMARY KEY,
    poll INTEGER NOT NULL,
    token_sha256 TEXT NOT NULL,
    commitments TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    position INTEGER,
    timestamp INTEGER,
    UNIQUE (poll, position)
);
CREATE INDEX poll_messages_open ON poll_messages(poll, position);
CREATE TABLE poll_tallies (
    poll INTEGER PRIMARY KEY,
    tally_json TEXT NOT NULL
);
";

/// poll, token digest, commitments (JSON), position, timestamp.
type MessageColumns = (i64, String, String, Option<i64>, Option<i64>);

fn i(v: u64) -> i64 {
    v as i64
}

fn load_poll(c: &Connection, id: u64) -> Result<Option<PollInfo>, StoreError> {
    let row: Option<(String, i64)> = c
        .query_row(
            "SELECT spec_json, created_at FROM polls WHERE id=?1",
            params![i(id)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((json, created_at)) = row else {
        return Ok(None);
    };
    let spec: PollSpec = serde_json::from_str(&json)?;
    let count = |sql: &str| -> Result<i64, StoreError> {
        Ok(c.query_row(sql, params![i(id)], |r| r.get(0))?)
    };
    Ok(Some(PollInfo {
        spec,
        created_at: created_at as u64,
        signups: count("SELECT COUNT(*) FROM poll_signups WHERE poll=?1")? as u64,
        messages: count(
            "SELECT COUNT(*) FROM poll_messages WHERE poll=?1 AND position IS NOT NULL",
        )? as u64,
        tallied: count("SELECT COUNT(*) FROM poll_tallies WHERE poll=?1")? > 0,
    }))
}

fn entry(
    submission_id: String,
    commitments: &str,
    position: Option<i64>,
    timestamp: Option<i64>,
) -> Result<(Option<LogEntry>, [String; 3]), StoreError> {
    let commitments: [String; 3] = serde_json::from_str(commitments)?;
    let entry = match (position, timestamp) {
        (Some(p), Some(t)) => Some(LogEntry {
            position: p as u64,
            submission_id,
            timestamp: t as u64,
            commitments: commitments.clone(),
        }),
        (None, None) => None,
        _ => return Err(StoreError::Corrupt("half-logged message".into())),
    };
    Ok((entry, commitments))
}

impl PollStore for SqliteStore {
    fn create_poll(&self, info: &PollInfo) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO polls (id, spec_json, created_at) VALUES (?1, ?2, ?3)",
            params![
                i(info.spec.id),
                serde_json::to_string(&info.spec)?,
                i(info.created_at)
            ],
        )?;
        Ok(n == 1)
    }

    fn poll(&self, id: u64) -> Result<Option<PollInfo>, StoreError> {
        load_poll(&self.conn(), id)
    }

    fn polls(&self) -> Result<Vec<PollInfo>, StoreError> {
        let c = self.conn();
        let ids: Vec<i64> = c
            .prepare("SELECT id FROM polls ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| load_poll(&c, id as u64).transpose())
            .collect()
    }

    fn insert_signup(&self, s: &NewSignup) -> Result<u64, SignupRefused> {
        let c = &mut *self.conn();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let r = (|| {
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM polls WHERE id=?1", params![i(s.poll)], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Ok(Err(SignupRefused::UnknownPoll));
            }
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM poll_signups WHERE poll=?1 AND nullifier=?2",
                    params![i(s.poll), s.nullifier],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Ok(Err(SignupRefused::AlreadySignedUp));
            }
            let seen = tx.execute(
                "INSERT OR IGNORE INTO seen_signatures (signature, seen_at) VALUES (?1, ?2)",
                params![s.signature, i(s.timestamp)],
            )?;
            if seen == 0 {
                return Ok(Err(SignupRefused::Replayed));
            }
            let index: i64 = tx.query_row(
                "SELECT COUNT(*) + 1 FROM poll_signups WHERE poll=?1",
                params![i(s.poll)],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO poll_signups
                 (poll, state_index, pub_key, voice_credits, nullifier, timestamp, attestation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    i(s.poll),
                    index,
                    s.pub_key,
                    i(s.voice_credits),
                    s.nullifier,
                    i(s.timestamp),
                    s.attestation_json
                ],
            )?;
            Ok::<_, StoreError>(Ok(index as u64))
        })();
        match r {
            Ok(Ok(index)) => {
                tx.commit().map_err(StoreError::from)?;
                Ok(index)
            }
            Ok(Err(refused)) => Err(refused),
            Err(e) => Err(e.into()),
        }
    }

    fn signups(&self, poll: u64) -> Result<Vec<Signup>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(
            "SELECT state_index, pub_key, voice_credits, timestamp, attestation
             FROM poll_signups WHERE poll=?1 ORDER BY state_index",
        )?;
        let rows = q.query_map(params![i(poll)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (state_index, pub_key, credits, timestamp, att) = row?;
            out.push(Signup {
                state_index: state_index as u64,
                pub_key,
                voice_credits: credits as u64,
                timestamp: timestamp as u64,
                attestation: serde_json::from_str(&att)?,
            });
        }
        Ok(out)
    }

    fn insert_ticket(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitments: &[String; 3],
        max_open: usize,
        open_ms: i64,
    ) -> Result<bool, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open: i64 = tx.query_row(
            "SELECT COUNT(*) FROM poll_messages
             WHERE poll=?1 AND position IS NULL AND created_ms > ?2",
            params![i(poll), now_ms() - open_ms],
            |r| r.get(0),
        )?;
        if open as usize >= max_open {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO poll_messages (submission_id, poll, token_sha256, commitments, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                submission_id,
                i(poll),
                token_sha256,
                serde_json::to_string(commitments)?,
                now_ms()
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn message(&self, submission_id: &str) -> Result<Option<MessageRow>, StoreError> {
        let row: Option<MessageColumns> = self
            .conn()
            .query_row(
                "SELECT poll, token_sha256, commitments, position, timestamp
                 FROM poll_messages WHERE submission_id=?1",
                params![submission_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((poll, token_sha256, commitments, position, timestamp)) = row else {
            return Ok(None);
        };
        let (entry, commitments) = entry(submission_id.into(), &commitments, position, timestamp)?;
        Ok(Some(MessageRow {
            poll: poll as u64,
            token_sha256,
            commitments,
            entry,
        }))
    }

    fn log_message(
        &self,
        submission_id: &str,
        deadline: u64,
    ) -> Result<Option<LogEntry>, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (poll, position): (i64, Option<i64>) = tx.query_row(
            "SELECT poll, position FROM poll_messages WHERE submission_id=?1",
            params![submission_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if position.is_none() {
            let timestamp = triad_wire::unix_now();
            if timestamp >= deadline {
                return Ok(None);
            }
            let next: i64 = tx.query_row(
                "SELECT COUNT(*) FROM poll_messages WHERE poll=?1 AND position IS NOT NULL",
                params![poll],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE poll_messages SET position=?2, timestamp=?3 WHERE submission_id=?1",
                params![submission_id, next, i(timestamp)],
            )?;
        }
        let (commitments, position, ts): (String, Option<i64>, Option<i64>) = tx.query_row(
            "SELECT commitments, position, timestamp FROM poll_messages WHERE submission_id=?1",
            params![submission_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        tx.commit()?;
        match entry(submission_id.into(), &commitments, position, ts)?.0 {
            Some(e) => Ok(Some(e)),
            None => Err(StoreError::Corrupt(
                "logged message without a position".into(),
            )),
        }
    }

    fn log(&self, poll: u64) -> Result<Vec<LogEntry>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(
            "SELECT submission_id, commitments, position, timestamp FROM poll_messages
             WHERE poll=?1 AND position IS NOT NULL ORDER BY position",
        )?;
        let rows = q.query_map(params![i(poll)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sid, commitments, position, ts) = row?;
            let e = entry(sid, &commitments, position, ts)?.0;
            out.push(e.ok_or_else(|| StoreError::Corrupt("log row without a position".into()))?);
        }
        Ok(out)
    }

    fn put_tally(&self, poll: u64, tally: &VerifiedTally) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO poll_tallies (poll, tally_json) VALUES (?1, ?2)",
            params![i(poll), serde_json::to_string(tally)?],
        )?;
        Ok(())
    }

    fn tally(&self, poll: u64) -> Result<Option<VerifiedTally>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT tally_json FROM poll_tallies WHERE poll=?1",
                params![i(poll)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_tickets_stop_holding_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let c: [String; 3] = Default::default();
        let hour = 3_600_000;
        assert!(s.insert_ticket(1, "a", "t", &c, 1, hour).unwrap());
        assert!(!s.insert_ticket(1, "b", "t", &c, 1, hour).unwrap());
        // Another poll has its own slots.
        assert!(s.insert_ticket(2, "c", "t", &c, 1, hour).unwrap());
        // "a" is older than the window: it no longer counts.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(s.insert_ticket(1, "b", "t", &c, 1, 1).unwrap());
        // A logged ticket never counts: with "b" logged, "a" and "d" hold
        // the two slots.
        assert!(s.log_message("b", u64::MAX).unwrap().is_some());
        assert!(s.insert_ticket(1, "d", "t", &c, 2, hour).unwrap());
        assert!(!s.insert_ticket(1, "e", "t", &c, 2, hour).unwrap());
    }
}
