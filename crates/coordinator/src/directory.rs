//! Publication of every study and poll in the private directory
//! (docs/directory.md, "Services").
//!
//! Creating a study or poll stores a random 16-byte salt with it
//! ([`new_entry`]); its directory id is `SHA-256(domain ‖ coordinator key
//! ‖ salt)` (`triad_directory::derive`), returned to the operator and
//! stable for the study's life. When the coordinator runs with
//! `--directory`, a [`Publisher`] task then, per study or poll: builds the
//! record body (the coordinator, the three parties, the notary, the
//! terms), signs it, has each party endorse it
//! (`POST /internal/directory/endorse`), checks the result as a reader
//! would, seals it for the DHT under a per-record publisher key, and
//! stores it through the coordinator's own libp2p node.
//!
//! Publication never blocks or fails a creation: the handler only drops a
//! note in a bounded queue ([`Publisher::notify`]); a full queue loses
//! nothing, because the task also rescans the store every
//! [`SCAN_INTERVAL`]. A failed publication is retried with exponential
//! backoff (up to [`MAX_RETRY`]); a published record is published again
//! (fresh validity, next `seq`) every [`REPUBLISH_SECS`], well before it
//! expires after [`RECORD_VALIDITY_SECS`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use triad_directory::derive::DirectoryId;
use triad_directory::envelope::{seal, EnvelopeError};
use triad_directory::node::NodeHandle;
use triad_directory::publish::{publisher_key, start_client, system_clock, ClientNodeError};
use triad_directory::record::{
    PartyEntry, RecordBody, RecordError, Service, ServiceRecord, RECORD_SIZE,
};
use triad_directory::SigningKey;
use triad_wire::directory::{title, RecordSpec, StudyTerms};
use triad_wire::NetworkConfig;

use crate::parties::{Parties, PartyError};
use crate::store::directory::Kind;
use crate::store::{DirectoryEntry, Store, StoreError};

/// The coordinator's signing key file in its data directory (ed25519 seed,
/// 64 hex, 0600): it signs directory records.
pub const COORDINATOR_KEY_FILE: &str = "sign.key";
/// A record is valid this long from its issue.
pub const RECORD_VALIDITY_SECS: u64 = 24 * 3600;
/// A published record is published again after this long.
pub const REPUBLISH_SECS: u64 = 4 * 3600;
/// Pending notes of new studies and polls.
pub const QUEUE: usize = 256;
/// How often the store is rescanned for entries the task does not know.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// First retry delay, doubled per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// Longest wait for the DHT to take a record.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh directory entry for `kind` `name`: a random salt and the id it
/// derives with `coordinator`'s key.
pub fn new_entry(
    coordinator: &SigningKey,
    kind: Kind,
    name: &str,
) -> Result<DirectoryEntry, ring::error::Unspecified> {
    let mut id_salt = [0u8; 16];
    SystemRandom::new().fill(&mut id_salt)?;
    Ok(DirectoryEntry {
        kind,
        name: name.to_string(),
        id_salt,
        directory_id: DirectoryId::derive(&coordinator.public_key().0, &id_salt).to_hex(),
        seq: 0,
        published_at: None,
    })
}

/// Gives every study and poll without a directory entry (made before the
/// directory existed) one.
pub async fn backfill_entries(db: &Store, key: &Arc<SigningKey>) -> Result<usize, StoreError> {
    let key = key.clone();
    db.run(move |s| {
        let mut missing: Vec<(Kind, String)> = Vec::new();
        for st in s.studies()? {
            if st.directory_id.is_none() {
                missing.push((Kind::Study, st.params.id));
            }
        }
        for p in s.polls()? {
            if p.directory_id.is_none() {
                missing.push((Kind::Poll, p.spec.id.to_string()));
            }
        }
        for (kind, name) in &missing {
            let e = new_entry(&key, *kind, name)
                .map_err(|_| StoreError::Corrupt("system RNG failed".into()))?;
            s.ensure_directory_entry(&e)?;
        }
        Ok::<_, StoreError>(missing.len())
    })
    .await
}

/// Why one publication failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no such {0:?} any more")]
    Gone(Kind),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("endorsement: {0}")]
    Party(#[from] PartyError),
    #[error("the record: {0}")]
    Record(#[from] RecordError),
    #[error("the envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("the stored directory id does not derive from this coordinator's key and salt")]
    KeyChanged,
    #[error("the directory network: {0}")]
    Network(String),
}

impl PublishError {
    /// Retrying soon cannot help (a refusal, a record that cannot be
    /// built): wait the longest delay.
    fn is_permanent(&self) -> bool {
        match self {
            Self::Party(e) => e.is_permanent(),
            Self::Record(_) | Self::KeyChanged => true,
            _ => false,
        }
    }
}

/// The handle creations use: a note per new study or poll.
#[derive(Clone, Default)]
pub struct Publisher {
    tx: Option<mpsc::Sender<(Kind, String)>>,
}

impl Publisher {
    /// A publisher that publishes nothing (no `--directory`).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Asks for `kind` `name` to be published soon. Never waits: when the
    /// queue is full the note is dropped, and the next rescan of the store
    /// finds the entry.
    pub fn notify(&self, kind: Kind, name: &str) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send((kind, name.to_string())) {
            tracing::warn!(?kind, name, error = %e, "directory queue full; the rescan will publish it");
        }
    }
}

/// What a publication needs.
pub struct PublishContext {
    pub db: Store,
    pub parties: Arc<dyn Parties>,
    pub key: Arc<SigningKey>,
    pub network: NetworkConfig,
    /// SHA-256 of the network's CA certificate.
    pub ca_sha256: String,
    pub node: NodeHandle,
}

/// Starts the coordinator's directory node (on `listen`, bootstrapped to
/// `bootstrap`) and the publishing task.
pub async fn start(
    listen: SocketAddr,
    bootstrap: &[String],
    db: Store,
    parties: Arc<dyn Parties>,
    key: Arc<SigningKey>,
    network: NetworkConfig,
    ca_sha256: String,
) -> Result<(Publisher, JoinHandle<()>), ClientNodeError> {
    let node = start_client(listen, bootstrap, system_clock()).await?;
    tracing::info!(
        node = %triad_directory::publish::handle_address(&node),
        bootstrap = bootstrap.len(),
        "directory node started; publishing studies and polls"
    );
    let (tx, rx) = mpsc::channel(QUEUE);
    let ctx = PublishContext {
        db,
        parties,
        key,
        network,
        ca_sha256,
        node,
    };
    let task = tokio::spawn(run(ctx, rx));
    Ok((Publisher { tx: Some(tx) }, task))
}

/// When an entry is next due, and how many times in a row it failed.
#[derive(Clone, Copy)]
struct Due {
    kind: Kind,
    at: Instant,
    failures: u32,
}

/// An entry's key in the schedule.
fn slot(kind: Kind, name: String) -> (&'static str, String) {
    (crate::store::directory::kind_str(kind), name)
}

fn retry_delay(failures: u32, permanent: bool) -> Duration {
    if permanent {
        return MAX_RETRY;
    }
    FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

async fn run(ctx: PublishContext, mut rx: mpsc::Receiver<(Kind, String)>) {
    let mut due: HashMap<(&'static str, String), Due> = HashMap::new();
    let mut next_scan = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_scan {
            // Every entry is due at start (the DHT may have lost what it
            // held while this coordinator was down); later scans add only
            // entries this task does not know.
            match ctx.db.run(|s| s.directory_entries()).await {
                Ok(entries) => {
                    for e in entries {
                        due.entry(slot(e.kind, e.name)).or_insert(Due {
                            kind: e.kind,
                            at: now,
                            failures: 0,
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "directory: listing entries"),
            }
            next_scan = now + SCAN_INTERVAL;
        }
        let mut ready: Vec<((&'static str, String), Kind, u32)> = due
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(k, d)| (k.clone(), d.kind, d.failures))
            .collect();
        ready.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, kind, failures) in ready {
            match publish_one(&ctx, kind, &key.1).await {
                Ok(id) => {
                    tracing::info!(kind = ?kind, name = %key.1, id = %id, "published in the directory");
                    due.insert(
                        key,
                        Due {
                            kind,
                            at: Instant::now() + Duration::from_secs(REPUBLISH_SECS),
                            failures: 0,
                        },
                    );
                }
                Err(PublishError::Gone(_)) => {
                    due.remove(&key);
                }
                Err(e) => {
                    let failures = failures.saturating_add(1);
                    let wait = retry_delay(failures, e.is_permanent());
                    tracing::warn!(kind = ?kind, name = %key.1, error = %e, failures,
                        retry_in_secs = wait.as_secs(), "directory publication failed");
                    due.insert(
                        key,
                        Due {
                            kind,
                            at: Instant::now() + wait,
                            failures,
                        },
                    );
                }
            }
        }
        let wake = due
            .values()
            .map(|d| d.at)
            .min()
            .map_or(next_scan, |t| t.min(next_scan));
        tokio::select! {
            note = rx.recv() => match note {
                Some((kind, name)) => {
                    due.insert(slot(kind, name), Due { kind, at: Instant::now(), failures: 0 });
                }
                None => return,
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// The record body of `entry` as of `now`, with `spec`.
pub fn record_body(
    network: &NetworkConfig,
    key: &SigningKey,
    entry: &DirectoryEntry,
    seq: u64,
    now: u64,
    spec: &RecordSpec,
) -> RecordBody {
    RecordBody {
        v: 1,
        kind: entry.kind,
        name: entry.name.clone(),
        id_salt: hex::encode(entry.id_salt),
        seq,
        issued_at: now,
        expires_at: now + RECORD_VALIDITY_SECS,
        coordinator: Service {
            url: network.coordinator.trim_end_matches('/').to_string(),
            key: key.public_key().to_hex(),
        },
        parties: std::array::from_fn(|i| {
            let p = &network.parties[i];
            PartyEntry {
                url: p.url.trim_end_matches('/').to_string(),
                mpc_addr: p.mpc_addr.to_string(),
                key: p.sign_key.to_ascii_lowercase(),
            }
        }),
        notary_key: network.notary_key.to_ascii_lowercase(),
        spec: serde_json::to_value(spec).expect("a record spec serializes"),
    }
}

/// Whether `body` fits the padded record once signed and endorsed.
fn fits(body: &RecordBody) -> bool {
    let r = ServiceRecord {
        body: body.clone(),
        coordinator_sig: "0".repeat(128),
        party_sigs: std::array::from_fn(|_| "0".repeat(128)),
    };
    r.to_padded().is_ok()
}

/// The spec of `kind` `name` as the store holds it now.
async fn spec_of(ctx: &PublishContext, kind: Kind, name: &str) -> Result<RecordSpec, PublishError> {
    let net = &ctx.network;
    let mut spec = RecordSpec {
        notary: net.notary.trim_end_matches('/').to_string(),
        ca_sha256: ctx.ca_sha256.clone(),
        source_url: net.datasource.as_ref().map(|d| d.url.clone()),
        study: None,
        poll: None,
    };
    match kind {
        Kind::Study => {
            let info = ctx
                .db
                .study(name.to_string())
                .await?
                .ok_or(PublishError::Gone(kind))?;
            let p = info.params;
            spec.study = Some(StudyTerms {
                title: title(&p.name),
                data_spec: p.data_spec,
                source: p.source,
                min_cohort: p.min_cohort,
            });
        }
        Kind::Poll => {
            let id: u64 = name.parse().map_err(|_| PublishError::Gone(kind))?;
            let info = ctx
                .db
                .run(move |s| s.poll(id))
                .await?
                .ok_or(PublishError::Gone(kind))?;
            let mut p = info.spec;
            p.name = title(&p.name);
            spec.poll = Some(p);
        }
    }
    Ok(spec)
}

/// Builds, endorses, checks, seals and stores one record; returns the id.
pub async fn publish_one(
    ctx: &PublishContext,
    kind: Kind,
    name: &str,
) -> Result<String, PublishError> {
    let n = name.to_string();
    let entry = ctx
        .db
        .run(move |s| s.directory_entry(kind, &n))
        .await?
        .ok_or(PublishError::Gone(kind))?;
    let id = DirectoryId::derive(&ctx.key.public_key().0, &entry.id_salt);
    if id.to_hex() != entry.directory_id {
        return Err(PublishError::KeyChanged);
    }
    let mut spec = spec_of(ctx, kind, name).await?;
    let now = triad_wire::unix_now();
    let n = name.to_string();
    let seq = ctx.db.run(move |s| s.next_directory_seq(kind, &n)).await?;
    let mut body = record_body(&ctx.network, &ctx.key, &entry, seq, now, &spec);
    if !fits(&body) {
        // The human-readable names are what may be cut.
        if let Some(t) = spec.study.as_mut() {
            t.title.clear();
        }
        if let Some(p) = spec.poll.as_mut() {
            p.name.clear();
        }
        body = record_body(&ctx.network, &ctx.key, &entry, seq, now, &spec);
        if !fits(&body) {
            return Err(RecordError::TooLarge.into());
        }
    }
    let mut record = ServiceRecord::sign(body, &ctx.key);
    let p = &ctx.parties;
    let (a, b, c) = tokio::join!(
        p.endorse(0, &record),
        p.endorse(1, &record),
        p.endorse(2, &record)
    );
    record.party_sigs = [a?, b?, c?];
    // What a reader will check, checked here first: a wrong endorsement is
    // our problem to report, not a record to publish.
    let pins = std::array::from_fn(|i| ctx.network.parties[i].sign_key.to_ascii_lowercase());
    record.verify(&id, kind, now, Some(&pins))?;
    debug_assert!(record.to_padded().map(|r| r.len()) == Ok(RECORD_SIZE));
    let envelope = seal(&record, &id, &publisher_key(&ctx.key, &id), now)?;
    tokio::time::timeout(PUBLISH_TIMEOUT, ctx.node.publish(id.dht_key(), envelope))
        .await
        .map_err(|_| PublishError::Network("timed out".into()))?
        .map_err(PublishError::Network)?;
    let n = name.to_string();
    ctx.db
        .run(move |s| s.directory_published(kind, &n, now))
        .await?;
    Ok(id.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_the_cap() {
        assert_eq!(retry_delay(1, false), FIRST_RETRY);
        assert_eq!(retry_delay(2, false), FIRST_RETRY * 2);
        assert_eq!(retry_delay(40, false), MAX_RETRY);
        assert_eq!(retry_delay(1, true), MAX_RETRY);
    }
}
