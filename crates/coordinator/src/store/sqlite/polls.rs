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

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(poll: u64, sid: &str, kind: MessageKind) -> NewTicket {
        NewTicket {
            poll,
            submission_id: sid.into(),
            token_sha256: "t".into(),
            commitments: Default::default(),
            kind,
        }
    }

    #[test]
    fn abandoned_tickets_stop_holding_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let hour = 3_600_000;
        let v = MessageKind::Vote;
        assert!(s
            .insert_ticket(&ticket(1, "a", v.clone()), 1, hour)
            .unwrap());
        assert!(!s
            .insert_ticket(&ticket(1, "b", v.clone()), 1, hour)
            .unwrap());
        // Another poll has its own slots.
        assert!(s
            .insert_ticket(&ticket(2, "c", v.clone()), 1, hour)
            .unwrap());
        // "a" is older than the window: it no longer counts.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(s.insert_ticket(&ticket(1, "b", v.clone()), 1, 1).unwrap());
        // A logged ticket never counts: with "b" logged, "a" and "d" hold
        // the two slots.
        assert!(matches!(
            s.log_message("b", 0, u64::MAX).unwrap(),
            LogOutcome::Logged(_)
        ));
        assert!(s
            .insert_ticket(&ticket(1, "d", v.clone()), 2, hour)
            .unwrap());
        assert!(!s
            .insert_ticket(&ticket(1, "e", v.clone()), 2, hour)
            .unwrap());
    }

    #[test]
    fn rekeys_get_the_next_state_index_and_a_nullifier_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let rekey = |n: &str| MessageKind::Rekey {
            new_key: "k".into(),
            nullifier: n.into(),
        };
        let hour = 3_600_000;
        // Two sign-ups: at most two re-keys.
        for k in 1..=2 {
            s.conn()
                .execute(
                    "INSERT INTO poll_signups (poll, state_index, pub_key, voice_credits,
                     nullifier, timestamp, attestation) VALUES (1, ?1, 'k', 1, ?1, 0, '')",
                    params![k],
                )
                .unwrap();
        }
        for (sid, kind) in [
            ("v", MessageKind::Vote),
            ("r1", rekey("n1")),
            ("d", MessageKind::Deactivate),
            ("r2", rekey("n2")),
            ("r1again", rekey("n1")),
            ("early", rekey("n3")),
            ("r3", rekey("n3")),
        ] {
            assert!(s
                .insert_ticket(&ticket(1, sid, kind.clone()), 10, hour)
                .unwrap());
        }
        // Before the sign-up deadline a re-key is not logged (nothing
        // written); a vote is.
        let far = u64::MAX;
        assert!(matches!(
            s.log_message("early", far, far).unwrap(),
            LogOutcome::SignupOpen
        ));
        let logged = |sid: &str| match s.log_message(sid, 0, far).unwrap() {
            LogOutcome::Logged(e) => e,
            other => panic!("{sid}: {other:?}"),
        };
        assert_eq!(logged("v").state_index, None);
        let r1 = logged("r1");
        assert_eq!((r1.position, r1.state_index), (1, Some(3)));
        assert_eq!(r1.kind, rekey("n1"));
        assert_eq!(logged("d").kind, MessageKind::Deactivate);
        assert_eq!(logged("r2").state_index, Some(4));
        // Idempotent: the same entry again.
        assert_eq!(logged("r1"), r1);
        // The same nullifier under another ticket: refused, nothing logged.
        assert!(matches!(
            s.log_message("r1again", 0, far).unwrap(),
            LogOutcome::NullifierUsed
        ));
        // As many re-keys as sign-ups: no more.
        assert!(matches!(
            s.log_message("r3", 0, far).unwrap(),
            LogOutcome::RekeyLimit
        ));
        let log = s.log(1).unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(log[1], r1);
        assert_eq!(s.message("r1again").unwrap().unwrap().entry, None);
    }
}
