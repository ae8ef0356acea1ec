//! Shares uploaded by providers, held until their batch commits (or they
//! expire). Keyed by (submission id, SHA-256 of the token), so a stranger
//! who learns a submission id cannot displace its shares: only the upload
//! whose token the coordinator vouches for is used.
//!
//! The party's receipt acknowledges an upload, so the upload is written to
//! the store ([`PartyStore::put_upload`]) before the receipt is signed, and
//! a restarted party loads what has not expired ([`Intake::reload`]); the
//! map here is the copy batches read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{PartyStore, StoreError, StoredUpload};

use crate::refusal::Refusal;
use sha2::{Digest, Sha256};
use triad_crypto::{fr_from_hex, Fr};
use triad_wire::messages::ShareUpload;
use triad_wire::receipt::{component_commitment, ShareReceipt, RECEIPT_VERSION};

/// One party's components of one submission, and the digest of the
/// provider's commitments they opened (the receipt's
/// [`ShareReceipt::digest`], raw).
#[derive(Clone, Copy, Debug)]
pub struct Components {
    pub value_bits: [u64; 2],
    pub blinder: [Fr; 2],
    pub digest: [u8; 32],
}

/// (submission id, SHA-256 of the token).
pub type Key = (String, [u8; 32]);

pub struct Intake {
    max_entries: usize,
    ttl: Duration,
    inner: Mutex<Entries>,
    /// Where uploads are made durable (none: memory only, for tests).
    store: Option<Arc<dyn PartyStore>>,
    /// One lock per stripe of keys, held from the durable write to the
    /// copy in memory: two concurrent uploads under one key leave the
    /// same one in both.
    stripes: [Mutex<()>; STRIPES],
}

const STRIPES: usize = 64;

fn stripe(key: &Key) -> usize {
    // The token digest is uniform: its first byte picks the stripe.
    key.1[0] as usize % STRIPES
}

/// Bytes of [`Components::encode`]: value bits (2 × 8, little-endian),
/// blinder (2 × 32, big-endian canonical), receipt digest (32).
const ENCODED_LEN: usize = 16 + 64 + 32;

impl Components {
    /// The stored form (opaque to the store).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        for v in self.value_bits {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for b in &self.blinder {
            out.extend_from_slice(&hex::decode(triad_crypto::fr_to_hex(b)).expect("hex"));
        }
        out.extend_from_slice(&self.digest);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("stored upload components".into());
        if bytes.len() != ENCODED_LEN {
            return Err(corrupt());
        }
        let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8"));
        let fr = |i: usize| {
            fr_from_hex(&hex::encode(&bytes[16 + 32 * i..48 + 32 * i])).map_err(|_| corrupt())
        };
        Ok(Self {
            value_bits: [word(0), word(1)],
            blinder: [fr(0)?, fr(1)?],
            digest: bytes[80..112].try_into().expect("32"),
        })
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The entries, and their keys in upload order: expiry pops from the
/// front, so an upload costs O(1) amortized however full the intake is (a
/// full intake once rescanned all 200,000 entries under the lock on every
/// upload: a cheap flood).
#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Components, Instant)>,
    /// (upload time, key); stale when the key was removed or uploaded
    /// again later (the map holds the newer time).
    order: VecDeque<(Instant, Key)>,
}

impl Entries {
    fn expire(&mut self, ttl: Duration) {
        while let Some((t, _)) = self.order.front() {
            if t.elapsed() < ttl {
                break;
            }
            let (t, k) = self.order.pop_front().expect("front exists");
            if self.map.get(&k).is_some_and(|(_, at)| *at == t) {
                self.map.remove(&k);
            }
        }
        // Re-uploads and removals leave stale keys behind: rebuild the
        // order once they outnumber the live entries (amortized O(1)).
        if self.order.len() > 2 * self.map.len() + 1024 {
            let mut live: Vec<(Instant, Key)> =
                self.map.iter().map(|(k, (_, t))| (*t, k.clone())).collect();
            live.sort_by_key(|(t, _)| *t);
            self.order = live.into();
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Validates an upload for party `party`: ids and token of the right form,
/// canonical components that open the provider's commitments to
/// components `party` and `party + 1`. Returns the receipt to sign.
pub fn parse_upload(
    u: &ShareUpload,
    party: usize,
) -> Result<(Key, Components, ShareReceipt), Refusal> {
    let bad = |m: &str| Refusal::BadShares(m.to_string());
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
    if !u.salts.iter().all(|s| is_hex(s, 64)) {
        return Err(bad("salts must be 64 lowercase hex digits"));
    }
    if !u.commitments.iter().all(|s| is_hex(s, 64)) {
        return Err(bad("commitments must be 64 lowercase hex digits"));
    }
    for k in 0..2 {
        let j = (party + k) % 3;
        let c = component_commitment(
            &u.submission_id,
            j as u8,
            &u.value_bits[k],
            &u.blinder[k],
            &u.salts[k],
        );
        if c != u.commitments[j] {
            return Err(Refusal::BadShares(format!(
                "component {j} does not open its commitment"
            )));
        }
    }
    let token_sha256 = token_sha256(&u.token);
    let receipt = ShareReceipt {
        version: RECEIPT_VERSION,
        submission_id: u.submission_id.clone(),
        token_sha256: hex::encode(token_sha256),
        commitments: u.commitments.clone(),
        // Set when the upload is held ([`Intake::put`]).
        kept_until: 0,
    };
    let mut digest = [0u8; 32];
    hex::decode_to_slice(receipt.digest(), &mut digest).expect("a digest is 64 hex");
    Ok((
        (u.submission_id.clone(), token_sha256),
        Components {
            value_bits,
            blinder,
            digest,
        },
        receipt,
    ))
}

impl Intake {
    /// An intake in memory only (tests of the intake itself).
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            max_entries,
            ttl,
            inner: Mutex::new(Entries::default()),
            store: None,
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// An intake whose uploads are durable in `store`; call
    /// [`Intake::reload`] (blocking) before serving.
    pub fn durable(max_entries: usize, ttl: Duration, store: Arc<dyn PartyStore>) -> Self {
        Self {
            store: Some(store),
            ..Self::new(max_entries, ttl)
        }
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Loads the stored uploads that have not expired (after a restart);
    /// returns how many. Blocks.
    pub fn reload(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let now_ms = unix_ms();
        let rows = store.uploads_since(now_ms - self.ttl_ms())?;
        let now = Instant::now();
        let mut e = self.lock();
        let mut n = 0;
        // Oldest first, as the order queue expects; the newest if more than
        // fit.
        let skip = rows.len().saturating_sub(self.max_entries);
        for u in rows.into_iter().skip(skip) {
            let c = Components::decode(&u.components)?;
            let age = Duration::from_millis((now_ms - u.uploaded_ms).max(0) as u64);
            let at = now.checked_sub(age).unwrap_or(now);
            let key = (u.submission_id, u.token_sha256);
            e.map.insert(key.clone(), (c, at));
            e.order.push_back((at, key));
            n += 1;
        }
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds an upload: durably first (if backed by a store), so that the
    /// receipt signed after this returns acknowledges stored shares.
    /// Returns the unix second until which it is kept (the receipt's
    /// `kept_until`: the upload time plus the TTL, rounded down). A
    /// re-upload of the same shares refreshes the time; one of other
    /// shares while the first are held is refused, so that a provider
    /// cannot make this party's signed promise to keep the first false.
    /// Blocks.
    pub fn put(&self, key: Key, c: Components) -> Result<u64, Refusal> {
        let _same_key = self.stripes[stripe(&key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        {
            let mut e = self.lock();
            e.expire(self.ttl);
            match e.map.get(&key) {
                Some((held, _)) if held.digest != c.digest => {
                    return Err(Refusal::SharesConflict);
                }
                None if e.map.len() >= self.max_entries => return Err(Refusal::IntakeFull),
                _ => {}
            }
        }
        let now_ms = unix_ms();
        if let Some(store) = &self.store {
            let u = StoredUpload {
                submission_id: key.0.clone(),
                token_sha256: key.1,
                components: c.encode(),
                uploaded_ms: now_ms,
            };
            store.put_upload(&u, now_ms - self.ttl_ms())?;
        }
        let mut e = self.lock();
        let now = Instant::now();
        e.map.insert(key.clone(), (c, now));
        e.order.push_back((now, key));
        Ok((now_ms.max(0) as u64 + self.ttl.as_millis() as u64) / 1000)
    }

    pub fn get(&self, submission_id: &str, token_sha256: &[u8; 32]) -> Option<Components> {
        let e = self.lock();
        e.map
            .get(&(submission_id.to_string(), *token_sha256))
            .filter(|(_, t)| t.elapsed() < self.ttl)
            .map(|(c, _)| *c)
    }

    /// Forgets uploads whose batch committed. Blocks.
    pub fn remove(&self, keys: &[Key]) {
        {
            let mut e = self.lock();
            for k in keys {
                e.map.remove(k);
            }
        }
        if let Some(store) = &self.store {
            // Left behind on failure: they expire with the next upload.
            if let Err(e) = store.remove_uploads(keys) {
                tracing::warn!(error = %e, "could not forget committed uploads");
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_wire::ErrorCode;

    fn key(i: u64) -> Key {
        (format!("{i:032x}"), [0; 32])
    }

    fn comps(v: u64) -> Components {
        Components {
            value_bits: [v, v],
            blinder: [Fr::from(v); 2],
            digest: [0; 32],
        }
    }

    #[test]
    fn full_intake_refuses_until_entries_expire() {
        let intake = Intake::new(3, Duration::from_millis(200));
        for i in 0..3 {
            intake.put(key(i), comps(i)).unwrap();
        }
        let e = intake.put(key(9), comps(9)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::IntakeFull);
        // A re-upload of a held key is taken even when full.
        intake.put(key(1), comps(1)).unwrap();
        assert_eq!(intake.get(&key(1).0, &key(1).1).unwrap().value_bits, [1, 1]);
        std::thread::sleep(Duration::from_millis(250));
        intake.put(key(9), comps(9)).unwrap();
        assert_eq!(intake.len(), 1);
        assert!(intake.get(&key(0).0, &key(0).1).is_none());
    }

    /// The receipt promises to keep the shares until the upload time plus
    /// the TTL: a re-upload of other shares (other commitments) under the
    /// same key cannot replace them before then, and the same shares again
    /// extend the promise.
    #[test]
    fn held_shares_are_not_replaced_by_others() {
        let intake = Intake::new(10, Duration::from_millis(300));
        let other = |v| Components {
            digest: [1; 32],
            ..comps(v)
        };
        let before = unix_ms() as u64 / 1000;
        let kept = intake.put(key(1), comps(1)).unwrap();
        assert!((before..=before + 1).contains(&kept), "{kept} vs {before}");
        let e = intake.put(key(1), other(2)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::WrongState);
        assert_eq!(intake.get(&key(1).0, &key(1).1).unwrap().value_bits, [1, 1]);
        assert!(intake.put(key(1), comps(1)).unwrap() >= kept);
        // Once expired, the key is free again.
        std::thread::sleep(Duration::from_millis(350));
        intake.put(key(1), other(2)).unwrap();
        assert_eq!(intake.get(&key(1).0, &key(1).1).unwrap().digest, [1; 32]);
        let long = Intake::new(10, Duration::from_secs(180));
        let kept = long.put(key(1), comps(1)).unwrap();
        assert!((before + 180..=before + 181).contains(&kept), "{kept}");
    }

    #[test]
    fn repeated_uploads_keep_the_order_bounded() {
        let intake = Intake::new(10, Duration::from_secs(60));
        for round in 0..10_000 {
            intake.put(key(round % 5), comps(round)).unwrap();
        }
        let e = intake.lock();
        assert_eq!(e.map.len(), 5);
        assert!(e.order.len() <= 2 * 5 + 1024 + 1, "{}", e.order.len());
    }

    #[test]
    fn a_removed_key_is_not_expired_twice() {
        let intake = Intake::new(10, Duration::from_millis(100));
        intake.put(key(1), comps(1)).unwrap();
        intake.remove(&[key(1)]);
        std::thread::sleep(Duration::from_millis(150));
        intake.put(key(1), comps(2)).unwrap();
        intake.put(key(2), comps(2)).unwrap();
        assert_eq!(intake.len(), 2);
        assert_eq!(intake.get(&key(1).0, &key(1).1).unwrap().value_bits, [2, 2]);
    }

    #[test]
    fn components_round_trip_through_their_stored_form() {
        use proptest::prelude::*;
        proptest!(|(v0: u64, v1: u64, b0: u64, b1: u64, d: [u8; 32])| {
            let c = Components { value_bits: [v0, v1], blinder: [Fr::from(b0), -Fr::from(b1)], digest: d };
            let back = Components::decode(&c.encode()).unwrap();
            prop_assert_eq!((back.value_bits, back.blinder, back.digest), (c.value_bits, c.blinder, c.digest));
        });
        assert!(Components::decode(&[0; 111]).is_err());
        // A blinder that is not a canonical scalar is corrupt, not wrapped.
        let mut bytes = comps(1).encode();
        bytes[16..48].copy_from_slice(&[0xff; 32]);
        assert!(Components::decode(&bytes).is_err());
    }

    /// What a durable intake acknowledged is held again by a new intake
    /// over the same store (a restart), with its time; committed uploads
    /// are not.
    #[test]
    fn a_durable_intake_reloads_what_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> Arc<dyn PartyStore> {
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("p.sqlite")).unwrap())
        };
        let intake = Intake::durable(10, Duration::from_secs(60), open());
        assert_eq!(intake.reload().unwrap(), 0);
        for i in 0..4 {
            intake.put(key(i), comps(i)).unwrap();
        }
        intake.remove(&[key(2)]);
        drop(intake);
        let again = Intake::durable(10, Duration::from_secs(60), open());
        assert_eq!(again.reload().unwrap(), 3);
        assert_eq!(again.get(&key(3).0, &key(3).1).unwrap().value_bits, [3, 3]);
        assert!(again.get(&key(2).0, &key(2).1).is_none());
        // Expired uploads are not reloaded.
        let short = Intake::durable(10, Duration::from_millis(1), open());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.reload().unwrap(), 0);
    }

    /// Racing uploads under one key leave the same one in memory and in
    /// the store (what a restart would reload).
    #[test]
    fn racing_uploads_of_one_key_agree_in_memory_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn PartyStore> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("p.sqlite")).unwrap());
        for round in 0..5u64 {
            let intake = Intake::durable(10, Duration::from_secs(60), store.clone());
            std::thread::scope(|s| {
                for t in 0..6u64 {
                    let intake = &intake;
                    s.spawn(move || intake.put(key(round), comps(round * 10 + t)).unwrap());
                }
            });
            let held = intake.get(&key(round).0, &key(round).1).unwrap().value_bits;
            let again = Intake::durable(10, Duration::from_secs(60), store.clone());
            again.reload().unwrap();
            let reloaded = again.get(&key(round).0, &key(round).1).unwrap().value_bits;
            assert_eq!(held, reloaded, "round {round}");
        }
    }
}
