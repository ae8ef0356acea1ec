//! [`PollShareStore`] in the party's SQLite file (migration 2). The share
//! set encoding here is the PostgreSQL store's too.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use triad_crypto::{fr_from_hex, fr_to_hex};
use triad_polls::mpc::encode::{FR, WORDS};
use triad_polls::mpc::rekey::C_WORDS;
use triad_wire::poll::{MessageKind, PollSpec, ShareSet, SignedTally};

use super::SqliteStore;
use crate::store::polls::{PollShareStore, PutShares};
use crate::store::StoreError;

pub(super) const POLL_SCHEMA: &str = "
CREATE TABLE polls (
    id INTEGER PRIMARY KEY,
    spec_json TEXT NOT NULL
);
CREATE TABLE poll_shares (
    poll INTEGER NOT NULL,
    submission_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    commitment TEXT NOT NULL,
    shares TEXT NOT NULL,          -- JSON: words[2][21], fr[2][5] (hex)
    received_ms INTEGER NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (poll, submission_id)
);
CREATE INDEX poll_shares_unconfirmed ON poll_shares(confirmed, received_ms);
CREATE TABLE poll_tallies (
    poll INTEGER PRIMARY KEY,
    input_sha256 TEXT NOT NULL,
    signed_json TEXT NOT NULL
);
";

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    words: [Vec<u64>; 2],
    fr: [Vec<String>; 2],
    #[serde(default)]
    kind: MessageKind,
    #[serde(default)]
    c_bits: [Vec<u64>; 2],
}

pub(in crate::store) fn encode(s: &ShareSet) -> String {
    serde_json::to_string(&Stored {
        words: s.words.map(|w| w.to_vec()),
        fr: s.fr.map(|f| f.iter().map(fr_to_hex).collect()),
        kind: s.kind.clone(),
        c_bits: s.c_bits.map(|w| w.to_vec()),
    })
    .expect("share set serializes")
}

pub(in crate::store) fn decode(json: &str) -> Result<ShareSet, StoreError> {
    let bad = |e: String| StoreError::Corrupt(format!("poll shares: {e}"));
    let s: Stored = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let mut out = ShareSet::zero(s.kind);
    for c in 0..2 {
        if s.words[c].len() != WORDS || s.fr[c].len() != FR {
            return Err(bad("wrong length".into()));
        }
        if !s.c_bits[c].is_empty() {
            if s.c_bits[c].len() != C_WORDS {
                return Err(bad("wrong length".into()));
            }
            out.c_bits[c].copy_from_slice(&s.c_bits[c]);
        }
        out.words[c].copy_from_slice(&s.words[c]);
        for (j, h) in s.fr[c].iter().enumerate() {
            out.fr[c][j] = fr_from_hex(h).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(out)
}

pub(in crate::store) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PollShareStore for SqliteStore {
    fn pin_poll(&self, spec: &PollSpec) -> Result<PollSpec, StoreError> {
        let c = self.conn();
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        c.execute(
            "INSERT OR IGNORE INTO polls (id, spec_json) VALUES (?1, ?2)",
            params![spec.id as i64, json],
        )?;
        let stored: String = c.query_row(
            "SELECT spec_json FROM polls WHERE id=?1",
            params![spec.id as i64],
            |r| r.get(0),
        )?;
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn poll(&self, id: u64) -> Result<Option<PollSpec>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT spec_json FROM polls WHERE id=?1",
                params![id as i64],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn put_message_shares(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        shares: &ShareSet,
        ttl_ms: i64,
        max_unconfirmed: usize,
    ) -> Result<PutShares, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        tx.execute(
            "DELETE FROM poll_shares WHERE confirmed=0 AND received_ms < ?1",
            params![now - ttl_ms],
        )?;
        let confirmed: Option<i64> = tx
            .query_row(
                "SELECT confirmed FROM poll_shares WHERE poll=?1 AND submission_id=?2",
                params![poll as i64, submission_id],
                |r| r.get(0),
            )
            .optional()?;
        match confirmed {
            Some(1) => return Ok(PutShares::AlreadyConfirmed),
            Some(_) => {}
            None => {
                let open: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM poll_shares WHERE confirmed=0",
                    [],
                    |r| r.get(0),
                )?;
                if open as usize >= max_unconfirmed {
                    tx.commit()?;
                    return Ok(PutShares::Full);
                }
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO poll_shares
             (poll, submission_id, token_sha256, commitment, shares, received_ms, confirmed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                poll as i64,
                submission_id,
                token_sha256,
                commitment,
                encode(shares),
                now
            ],
        )?;
        tx.commit()?;
        Ok(PutShares::Stored)
    }

    fn confirm_message(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        kind: &MessageKind,
    ) -> Result<bool, StoreError> {
        let c = &mut *self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held: Option<String> = tx
            .query_row(
                "SELECT shares FROM poll_shares
                 WHERE poll=?1 AND submission_id=?2 AND token_sha256=?3 AND commitment=?4",
                params![poll as i64, submission_id, token_sha256, commitment],
                |r| r.get(0),
            )
            .optional()?;
        match held {
            Some(json) if decode(&json)?.kind == *kind => {}
            _ => return Ok(false),
        }
        tx.execute(
            "UPDATE poll_shares SET confirmed=1 WHERE poll=?1 AND submission_id=?2",
            params![poll as i64, submission_id],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn confirmed_shares(
        &self,
        poll: u64,
        ids: &[(String, String)],
    ) -> Result<Vec<Option<ShareSet>>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(
            "SELECT shares FROM poll_shares
             WHERE poll=?1 AND submission_id=?2 AND commitment=?3 AND confirmed=1",
        )?;
        ids.iter()
            .map(|(sid, commitment)| {
                let json: Option<String> = q
                    .query_row(params![poll as i64, sid, commitment], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j)).transpose()
            })
            .collect()
    }

    fn put_tally(&self, poll: u64, input_sha256: &str, t: &SignedTally) -> Result<(), StoreError> {
        let json = serde_json::to_string(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn().execute(
            "INSERT OR IGNORE INTO poll_tallies (poll, input_sha256, signed_json)
             VALUES (?1, ?2, ?3)",
            params![poll as i64, input_sha256, json],
        )?;
        Ok(())
    }

    fn tally(&self, poll: u64) -> Result<Option<(String, SignedTally)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT input_sha256, signed_json FROM poll_tallies WHERE poll=?1",
                params![poll as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(d, j)| {
            serde_json::from_str(&j)
                .map(|t| (d, t))
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }
}
