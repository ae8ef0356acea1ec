//! Shares uploaded by providers, held in memory until their batch commits
//! (or they expire). Keyed by (submission id, SHA-256 of the token), so a
//! stranger who learns a submission id cannot displace its shares: only
//! the upload whose token the coordinator vouches for is used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use triad_crypto::{fr_from_hex, Fr};
use triad_wire::messages::ShareUpload;
use triad_wire::ApiError;

/// One party's components of one submission.
#[derive(Clone, Copy, Debug)]
pub struct Components {
    pub value_bits: [u64; 2],
    pub blinder: [Fr; 2],
}

/// (submission id, SHA-256 of the token).
pub type Key = (String, [u8; 32]);

pub struct Intake {
    max_entries: usize,
    ttl: Duration,
    map: Mutex<HashMap<Key, (Components, Instant)>>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Validates an upload: ids and token of the right form, canonical
/// components.
pub fn parse_upload(u: &ShareUpload) -> Result<(Key, Components), ApiError> {
    let bad = |m: &str| ApiError::bad_request("bad_shares", m.to_string());
    if !is_hex(&u.submission_id, 32) {
        return Err(bad("submission_id must be 32 lowercase hex digits"));
    }
    if !is_hex(&u.token, 64) {
        return Err(bad("token must be 64 lowercase hex digits"));
    }
    let mut value_bits = [0u64; 2];
    for (o, s) in value_bits.iter_mut().zip(&u.value_bits) {
        if !is_hex(s, 16) {
            return Err(bad("value_bits components must be 16 lowercase hex digits"));
        }
        *o = u64::from_str_radix(s, 16).map_err(|_| bad("value_bits component"))?;
    }
    let mut blinder = [Fr::from(0u64); 2];
    for (o, s) in blinder.iter_mut().zip(&u.blinder) {
        if !is_hex(s, 64) {
            return Err(bad("blinder components must be 64 lowercase hex digits"));
        }
        *o =
            fr_from_hex(s).map_err(|_| bad("blinder component is not a canonical BN254 scalar"))?;
    }
    Ok((
        (u.submission_id.clone(), token_sha256(&u.token)),
        Components {
            value_bits,
            blinder,
        },
    ))
}

impl Intake {
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            max_entries,
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Components, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put(&self, key: Key, c: Components) -> Result<(), ApiError> {
        let mut m = self.lock();
        if m.len() >= self.max_entries {
            let ttl = self.ttl;
            m.retain(|_, (_, t)| t.elapsed() < ttl);
            if m.len() >= self.max_entries {
                return Err(ApiError::unavailable(
                    "intake_full",
                    "too many unprocessed uploads; retry later",
                ));
            }
        }
        m.insert(key, (c, Instant::now()));
        Ok(())
    }

    pub fn get(&self, submission_id: &str, token_sha256: &[u8; 32]) -> Option<Components> {
        self.lock()
            .get(&(submission_id.to_string(), *token_sha256))
            .map(|(c, _)| *c)
    }

    pub fn remove(&self, keys: &[Key]) {
        let mut m = self.lock();
        for k in keys {
            m.remove(k);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
