//! [`PollStore`] on the coordinator's SQLite file (tables of migration 3).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use triad_wire::poll::{LogEntry, MessageKind, PollInfo, PollSpec, Signup, VerifiedTally};

use super::{now_ms, SqliteStore};
use crate::store::polls::{LogOutcome, MessageRow, NewSignup, NewTicket, PollStore, SignupRefused};
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

/// Migration 4: what each message does (JSON of `MessageKind`; NULL for
/// a vote), a re-key's claimed nullifier (unique among logged ones) and
/// the state index it was given when logged.
pub(super) const REKEY_SCHEMA: &str = "
ALTER TABLE poll_messages ADD COLUMN kind TEXT;
ALTER TABLE poll_messages ADD COLUMN nullifier TEXT;
ALTER TABLE poll_messages ADD COLUMN state_index INTEGER;
CREATE UNIQUE INDEX poll_messages_nullifier ON poll_messages(poll, nullifier)
    WHERE nullifier IS NOT NULL AND position IS NOT NULL;
";

/// commitments, position, timestamp, kind, state index.
type MessageTail = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// poll, token digest, commitments (JSON), position, timestamp, kind
/// (JSON), state index.
type MessageColumns = (
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

fn kind_of(json: Option<String>) -> Result<MessageKind, StoreError> {
    Ok(match json {
        None => MessageKind::Vote,
        Some(j) => serde_json::from_str(&j)?,
    })
}

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
        directory_id: super::directory::directory_id(
            c,
            crate::store::directory::Kind::Poll,
            &id.to_string(),
        )?,
    }))
}

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

impl PollStore for SqliteStore {
    fn create_poll(
        &self,
        info: &PollInfo,
        entry: &crate::store::DirectoryEntry,
    ) -> Result<bool, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO polls (id, spec_json, created_at) VALUES (?1, ?2, ?3)",
            params![
                i(info.spec.id),
                serde_json::to_string(&info.spec)?,
                i(info.created_at)
            ],
        )?;
        if n != 1 {
            return Ok(false);
        }
        super::directory::insert_entry(&tx, entry)?;
        tx.commit()?;
        Ok(true)
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
        t: &NewTicket,
        max_open: usize,
        open_ms: i64,
    ) -> Result<bool, StoreError> {
        let (poll, kind) = (t.poll, &t.kind);
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
            "INSERT INTO poll_messages
             (submission_id, poll, token_sha256, commitments, created_ms, kind, nullifier)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.submission_id,
                i(poll),
                t.token_sha256,
                serde_json::to_string(&t.commitments)?,
                now_ms(),
                (!kind.is_vote())
                    .then(|| serde_json::to_string(kind))
                    .transpose()?,
                match kind {
                    MessageKind::Rekey { nullifier, .. } => Some(nullifier.as_str()),
                    _ => None,
                }
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn message(&self, submission_id: &str) -> Result<Option<MessageRow>, StoreError> {
        let row: Option<MessageColumns> = self
            .conn()
            .query_row(
                "SELECT poll, token_sha256, commitments, position, timestamp, kind, state_index
                 FROM poll_messages WHERE submission_id=?1",
                params![submission_id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((poll, token_sha256, commitments, position, timestamp, kind, index)) = row else {
            return Ok(None);
        };
        let kind = kind_of(kind)?;
        let (entry, commitments) = entry(
            submission_id.into(),
            &commitments,
            position,
            timestamp,
            kind.clone(),
            index,
        )?;
        Ok(Some(MessageRow {
            poll: poll as u64,
            token_sha256,
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
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (poll, position, nullifier): (i64, Option<i64>, Option<String>) = tx.query_row(
            "SELECT poll, position, nullifier FROM poll_messages WHERE submission_id=?1",
            params![submission_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if position.is_none() {
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
                let used: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM poll_messages
                     WHERE poll=?1 AND nullifier=?2 AND position IS NOT NULL",
                    params![poll, n],
                    |r| r.get(0),
                )?;
                if used > 0 {
                    return Ok(LogOutcome::NullifierUsed);
                }
                let (signups, rekeys): (i64, i64) = tx.query_row(
                    "SELECT (SELECT COUNT(*) FROM poll_signups WHERE poll=?1),
                            (SELECT COUNT(*) FROM poll_messages
                             WHERE poll=?1 AND state_index IS NOT NULL)",
                    params![poll],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if rekeys >= signups {
                    return Ok(LogOutcome::RekeyLimit);
                }
                state_index = Some(signups + rekeys + 1);
            }
            let next: i64 = tx.query_row(
                "SELECT COUNT(*) FROM poll_messages WHERE poll=?1 AND position IS NOT NULL",
                params![poll],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE poll_messages SET position=?2, timestamp=?3, state_index=?4
                 WHERE submission_id=?1",
                params![submission_id, next, i(timestamp), state_index],
            )?;
        }
        let (commitments, position, ts, kind, index): MessageTail = tx.query_row(
            "SELECT commitments, position, timestamp, kind, state_index
             FROM poll_messages WHERE submission_id=?1",
            params![submission_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        tx.commit()?;
        let kind = kind_of(kind)?;
        match entry(
            submission_id.into(),
            &commitments,
            position,
            ts,
            kind,
            index,
        )?
        .0
        {
            Some(e) => Ok(LogOutcome::Logged(e)),
            None => Err(StoreError::Corrupt(
                "logged message without a position".into(),
            )),
        }
    }

    fn log(&self, poll: u64) -> Result<Vec<LogEntry>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(
            "SELECT submission_id, commitments, position, timestamp, kind, state_index
             FROM poll_messages WHERE poll=?1 AND position IS NOT NULL ORDER BY position",
        )?;
        let rows = q.query_map(params![i(poll)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sid, commitments, position, ts, kind, index) = row?;
            let e = entry(sid, &commitments, position, ts, kind_of(kind)?, index)?.0;
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

// Tests: store/suite.rs runs them on every backend.
