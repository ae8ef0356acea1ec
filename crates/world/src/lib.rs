//! An in-process triad for tests: the coordinator and three real parties
//! (real HTTPS, real mutual-TLS MPC on loopback, SQLite stores in a
//! temporary directory) in one process, so that the batch commit protocol,
//! recovery and the MPC jobs are exercised in seconds under `cargo test`.
//!
//! Faults are injected by stopping a service at any await point
//! ([`World::kill_party`], [`World::kill_coordinator`]: the in-process
//! equivalent of kill -9, as every state change is a committed transaction)
//! and starting it again on the same data directory and address. Providers
//! are simulated without a notary: [`World::contribute`] signs an
//! attestation with the network's notary key, then submits, uploads the
//! three share sets and declares the submission ready, as the client does.
//!
//! Limits of an in-process kill: a party's MPC job already running on its
//! worker thread finishes (the thread is not a task), as if the process had
//! died just after that job's last write; the MPC sessions run over
//! loopback mutual TLS, not the engine's in-memory network, because the
//! party's session setup (a fresh mesh per job, tag check) is what recovery
//! depends on.
//!
//! The real-process end-to-end tests (`crates/cli/tests/services_e2e.rs`)
//! stay: they cover the binaries, the devnet and the notary.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use triad_attestation::{
    sign_attestation, AttestationClaims, DataSource, DataSpec, NotarySigningKey,
};
use triad_coordinator::{BatchConfig, CoordinatorConfig, CoordinatorHandle, Limits};
use triad_crypto::{commitment, fr_from_i128, nullifier, Fr};
use triad_mpc::PartyId;
use triad_party::{Floors, PartyConfig, PartyHandle};
use triad_wire::messages::{
    CreateStudy, ReadyRequest, StudyInfo, SubmissionState, SubmissionStatus, SubmitRequest,
    SubmitResponse, INTERNAL_TOKEN_HEADER,
};
use triad_wire::{NetworkConfig, PartyEndpoint, VerifiedRelease};

/// The data spec every study of a world uses.
pub fn spec() -> DataSpec {
    DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    }
}

const ADMIN_TOKEN: &str = "world-admin-token-0123456789abcdef";
const COORDINATOR_TOKEN: &str = "world-coordinator-token-0123456789";
const PARTY_TOKEN: &str = "world-party-token-0123456789abcdef";

/// A running in-process triad. Dropping it stops every service and removes
/// its directory.
pub struct World {
    _dir: tempfile::TempDir,
    pub net: NetworkConfig,
    pub http: reqwest::Client,
    notary: NotarySigningKey,
    coordinator_cfg: CoordinatorConfig,
    coordinator_addr: SocketAddr,
    coordinator: Option<CoordinatorHandle>,
    party_cfgs: [PartyConfig; 3],
    party_addrs: [SocketAddr; 3],
    parties: [Option<PartyHandle>; 3],
    /// Listeners that hold each service's port from the moment it is
    /// chosen until the service first starts, so that nothing else (another
    /// test's port 0, an outgoing connection's source port) takes it.
    reserved: HashMap<SocketAddr, std::net::TcpListener>,
}

/// A submission admitted and uploaded, not yet ready ([`World::upload`]).
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub contribution: Contribution,
    token: String,
    /// The parties' receipts, party 0 first.
    pub receipts: Vec<triad_wire::receipt::SignedReceipt>,
}

impl Uploaded {
    /// The key parties hold its shares under: (submission id, SHA-256 of
    /// the token).
    pub fn intake_key(&self) -> (String, [u8; 32]) {
        (
            self.contribution.submission_id.clone(),
            triad_wire::https::token_digest(&self.token),
        )
    }
}

/// What [`World::contribute`] got back.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub submission_id: String,
    pub value: i64,
}

/// A free loopback port, held by the returned listener until released.
fn reserve(reserved: &mut HashMap<SocketAddr, std::net::TcpListener>) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = l.local_addr().expect("its address");
    reserved.insert(addr, l);
    addr
}

/// Binds `addr` again after its previous owner stopped: the old listener
/// goes away once the aborted tasks are dropped, which takes a moment.
async fn rebind(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("rebind {addr}: {e}"),
        }
    }
}

impl World {
    /// Starts the coordinator and the three parties with fast batching, in
    /// the parties' default security mode (malicious for the statistics;
    /// poll jobs semi-honest).
    pub async fn start() -> World {
        Self::start_with(triad_party::SecurityArg::default().mode()).await
    }

    /// The parties' security mode (the statistics jobs').
    pub fn security(&self) -> triad_mpc::Security {
        self.party_cfgs[0].security
    }

    /// [`World::start`] with the parties in the given security mode.
    pub async fn start_with(security: triad_mpc::Security) -> World {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        let ca_path = root.join("ca.pem");
        let ca = triad_wire::pki::ServiceCa::create(&ca_path).expect("service CA");
        std::fs::create_dir_all(root.join("tls")).expect("tls directory");
        let tls = |name: &str| {
            let leaf = ca.issue(&root.join("tls"), name).expect("leaf certificate");
            triad_wire::https::server_config(&leaf.cert, &leaf.key).expect("TLS config")
        };
        let mut reserved = HashMap::new();
        let coordinator_addr = reserve(&mut reserved);
        let party_addrs = [0, 1, 2].map(|_| reserve(&mut reserved));
        let party_dirs: [PathBuf; 3] = [0, 1, 2].map(|i| root.join(format!("party{i}")));
        let endpoints: [PartyEndpoint; 3] = [0, 1, 2].map(|i| {
            let keys = triad_party::load_or_create_keys(&party_dirs[i], i).expect("party keys");
            PartyEndpoint {
                url: format!("https://{}", party_addrs[i]),
                mpc_addr: reserve(&mut reserved),
                mpc_cert: hex::encode(&keys.identity.cert_der),
                sign_key: keys.sign.public_key().to_hex(),
            }
        });
        let notary = NotarySigningKey::from_seed(rand::random());
        let net = NetworkConfig {
            mpc_latency_us: 0,
            ca_cert: ca_path.clone(),
            coordinator: format!("https://{coordinator_addr}"),
            coordinator_key: None,
            parties: endpoints,
            // Not part of a world: providers are simulated.
            notary: "http://127.0.0.1:1".into(),
            notary_key: notary.public_key().to_hex(),
            api: "https://127.0.0.1:1".into(),
            datasource: None,
        };
        let coordinator_cfg = CoordinatorConfig {
            data_dir: root.join("coordinator"),
            database: None,
            network: net.clone(),
            tls: tls("coordinator"),
            internal_token: COORDINATOR_TOKEN.into(),
            party_token_sha256: triad_wire::https::token_digest(PARTY_TOKEN),
            admin_token: ADMIN_TOKEN.into(),
            limits: Limits::default(),
            batching: BatchConfig {
                max_batch: 8,
                linger: Duration::from_millis(50),
                // Enough attempts to ride out a restart (a peer's MPC setup
                // may wait for a restarted party for seconds).
                max_attempts: 20,
                retry_backoff: Duration::from_millis(200),
                tick: Duration::from_millis(20),
                party_timeout: Duration::from_secs(10),
                ..BatchConfig::default()
            },
            max_attestation_age_secs: 3600,
            serve: triad_wire::https::ServeLimits::default(),
            directory: Vec::new(),
            directory_listen: "127.0.0.1:0".parse().expect("an address"),
        };
        let party_cfgs = [0, 1, 2].map(|i| PartyConfig {
            id: PartyId::new(i).expect("party index"),
            data_dir: party_dirs[i].clone(),
            database: None,
            network: net.clone(),
            tls: tls(&format!("party{i}")),
            internal_token: PARTY_TOKEN.into(),
            coordinator_token_sha256: triad_wire::https::token_digest(COORDINATOR_TOKEN),
            // Low floors, so that a test can ask for a release after every
            // batch (min_new = 1) and wait for an exact count.
            floors: Floors {
                min_cohort: 1,
                min_new: 1,
            },
            upload_rate: triad_party::DEFAULT_UPLOAD_RATE,
            serve: triad_wire::https::ServeLimits::default(),
            security,
            // The world's polls are small: checked phase 1 costs little.
            poll_security: security,
        });
        let ca_pem = std::fs::read(&ca_path).expect("CA certificate");
        let http = triad_wire::https::client(&ca_pem, Duration::from_secs(30)).expect("client");
        let mut w = World {
            _dir: dir,
            net,
            http,
            notary,
            coordinator_cfg,
            coordinator_addr,
            coordinator: None,
            party_cfgs,
            party_addrs,
            parties: [None, None, None],
            reserved,
        };
        for i in 0..3 {
            w.restart_party(i).await;
        }
        w.restart_coordinator().await;
        w
    }

    /// Stops party `i` at its next await point (in flight or not).
    pub async fn kill_party(&mut self, i: usize) {
        if let Some(h) = self.parties[i].take() {
            h.abort();
        }
        // Let the runtime drop the aborted tasks.
        tokio::task::yield_now().await;
    }

    /// The listener for `addr`: the reservation on first start, a fresh
    /// bind after a restart.
    async fn listener(&mut self, addr: SocketAddr) -> tokio::net::TcpListener {
        match self.reserved.remove(&addr) {
            Some(l) => {
                l.set_nonblocking(true).expect("non-blocking listener");
                tokio::net::TcpListener::from_std(l).expect("tokio listener")
            }
            None => rebind(addr).await,
        }
    }

    /// Starts party `i` (again) on its data directory and address.
    pub async fn restart_party(&mut self, i: usize) {
        self.kill_party(i).await;
        // The party binds its MPC port itself: release the reservation
        // just before it does.
        let mpc = self.net.parties[i].mpc_addr;
        self.reserved.remove(&mpc);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.listener(self.party_addrs[i]).await;
            // The MPC listener of the previous incarnation may still be
            // held by its worker thread for a moment.
            match triad_party::launch(self.party_cfgs[i].clone(), l).await {
                Ok(h) => {
                    self.parties[i] = Some(h);
                    return;
                }
                Err(triad_party::PartyError::Io(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("party {i} did not start: {e}"),
            }
        }
    }

    /// Stops the coordinator at its next await point.
    pub async fn kill_coordinator(&mut self) {
        if let Some(h) = self.coordinator.take() {
            h.shutdown().await;
        }
    }

    /// Starts the coordinator (again) on its data directory and address.
    pub async fn restart_coordinator(&mut self) {
        self.kill_coordinator().await;
        let l = self.listener(self.coordinator_addr).await;
        let h = triad_coordinator::launch(self.coordinator_cfg.clone(), l)
            .await
            .expect("coordinator starts");
        self.coordinator = Some(h);
    }

    /// Creates a study whose contributions come from "127.0.0.1".
    pub async fn create_study(&self, id: &str, min_cohort: u64, min_new: u64) -> StudyInfo {
        let req = CreateStudy {
            id: id.into(),
            name: id.into(),
            data_spec: spec(),
            source: DataSource::named("127.0.0.1"),
            min_cohort: Some(min_cohort),
            min_new: Some(min_new),
            release_interval_secs: Some(1),
            stats: Default::default(),
        };
        triad_client::create_study(&self.net, &self.http, ADMIN_TOKEN, &req)
            .await
            .expect("create the study")
    }

    /// The operator token (tests create polls with it).
    pub fn admin_token(&self) -> &'static str {
        ADMIN_TOKEN
    }

    /// An attestation for `account` naming `study` (a study id, or a poll's
    /// `poll-{id}`), signed by the world's notary key, from "127.0.0.1".
    pub fn attestation(&self, study: &str, account: u64) -> triad_attestation::Attestation {
        self.attested(study, account, 1).0.attestation
    }

    /// One provider: an attestation of `value` for `account` signed by the
    /// world's notary key, the submission, three share uploads and ready.
    /// Retries while a service is down (the world may be mid-fault), up to
    /// 60 s; the caller waits for the verdict with [`World::verdict`].
    pub async fn contribute(&self, study: &str, account: u64, value: i64) -> Contribution {
        let c = self.upload(study, account, value).await;
        self.ready(&c).await;
        c.contribution
    }

    /// The first half of [`World::contribute`]: admitted, shares uploaded
    /// to all three parties, not yet declared ready.
    pub async fn upload(&self, study: &str, account: u64, value: i64) -> Uploaded {
        self.upload_shares_of(study, account, value, value).await
    }

    /// [`World::upload`] of shares of `shared` under an attestation of
    /// `attested` (a provider whose shares do not match its attestation
    /// when the two differ).
    pub async fn upload_shares_of(
        &self,
        study: &str,
        account: u64,
        attested: i64,
        shared: i64,
    ) -> Uploaded {
        let value = attested;
        let (req, blinder) = self.attested(study, account, value);
        let token = req.token.clone().unwrap_or_default();
        let url = format!("{}/v1/studies/{study}/submissions", self.net.coordinator);
        let sub: SubmitResponse = self.post_retrying(&url, &req).await;
        let mut rng = rand::rngs::OsRng;
        let shares = triad_client::split_shares(shared, blinder, &mut rng);
        let c = triad_client::commit_shares(&sub.submission_id, &shares, &mut rng);
        let mut receipts = Vec::new();
        for (i, s) in shares.iter().enumerate() {
            let url = format!("{}/v1/shares", self.net.parties[i].url);
            receipts.push(
                self.post_retrying(&url, &s.to_upload(i, &sub.submission_id, &token, &c))
                    .await,
            );
        }
        Uploaded {
            contribution: Contribution {
                submission_id: sub.submission_id,
                value,
            },
            token,
            receipts,
        }
    }

    /// The second half of [`World::contribute`]: declares the submission
    /// ready (its batch may form from now on).
    pub async fn ready(&self, u: &Uploaded) {
        let url = format!(
            "{}/v1/submissions/{}/ready",
            self.net.coordinator, u.contribution.submission_id
        );
        let body = ReadyRequest {
            token: u.token.clone(),
            receipts: u.receipts.clone(),
        };
        let _: Value = self.post_retrying(&url, &body).await;
    }

    /// A submission request with a fresh attestation of `value` for
    /// `account`, and the blinder of its commitment.
    fn attested(&self, study: &str, account: u64, value: i64) -> (SubmitRequest, Fr) {
        let blinder = Fr::from(rand::random::<u64>()) * Fr::from(rand::random::<u64>());
        let now = triad_wire::unix_now();
        let claims = AttestationClaims {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: [1; 32],
            session_time: now - 1,
            expires_at: now + 3600,
            study_id: study.into(),
            data_spec: spec(),
            commitment: commitment(fr_from_i128(i128::from(value)), blinder),
            nullifier: nullifier(account.to_string().as_bytes(), study),
            transcript_sha256: rand::random(),
        };
        let req = SubmitRequest {
            attestation: sign_attestation(&self.notary, &claims),
            token: Some(hex::encode(rand::random::<[u8; 32]>())),
        };
        (req, blinder)
    }

    /// Submits a fresh attestation for `account` once and returns the HTTP
    /// status and error code (for refusals: a second contribution of one
    /// account, say).
    pub async fn submit_status(&self, study: &str, account: u64) -> (u16, String) {
        let (req, _) = self.attested(study, account, 1);
        let url = format!("{}/v1/studies/{study}/submissions", self.net.coordinator);
        let r = self
            .http
            .post(&url)
            .json(&req)
            .send()
            .await
            .expect("submit");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        (status, v["error"].as_str().unwrap_or_default().to_string())
    }

    /// POSTs until a 2xx (a service mid-restart refuses connections).
    async fn post_retrying<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &impl serde::Serialize,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = match self.http.post(url).json(body).send().await {
                Ok(r) if r.status().is_success() => {
                    return r.json().await.expect("a JSON answer");
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    // `ready` repeated after a lost answer: already queued.
                    if status == 409 && text.contains("\"wrong_state\"") {
                        return serde_json::from_value(Value::Null).expect("a unit answer");
                    }
                    // A replayed submission of the same attestation and
                    // token is answered with the first admission; other 4xx
                    // are final.
                    assert!(status.is_server_error(), "POST {url}: {status} {text}");
                    format!("{status} {text}")
                }
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "POST {url}: {last}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The submission's state at the coordinator (retrying while it is down).
    pub async fn submission(&self, id: &str) -> SubmissionState {
        let url = format!("{}/v1/submissions/{id}", self.net.coordinator);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return r.json().await.expect("submission state");
                }
            }
            assert!(Instant::now() < deadline, "GET {url} kept failing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (≤ 60 s) until the submission is accepted or rejected.
    pub async fn verdict(&self, id: &str) -> SubmissionState {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.submission(id).await;
            if matches!(
                s.status,
                SubmissionStatus::Accepted | SubmissionStatus::Rejected
            ) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{id} still {:?} after 60 s",
                s.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Party `i`'s `GET /internal/holdings` (with the coordinator's token),
    /// every page: `{"pending_batches": [...], "holdings": [...]}`.
    pub async fn holdings(&self, i: usize) -> Value {
        let mut all = Vec::new();
        let mut pending;
        let mut after: Option<(String, String)> = None;
        loop {
            let mut req = self
                .http
                .get(format!("{}/internal/holdings", self.net.parties[i].url))
                .header(INTERNAL_TOKEN_HEADER, COORDINATOR_TOKEN);
            if let Some((st, sub)) = &after {
                req = req.query(&[("after_study", st), ("after_submission", sub)]);
            }
            let r = req.send().await.expect("holdings");
            assert!(r.status().is_success(), "holdings: {}", r.status());
            let mut page: Value = r.json().await.expect("holdings JSON");
            pending = page["pending_batches"].take();
            let rows = page["holdings"].as_array().cloned().unwrap_or_default();
            let Some(last) = rows.last() else { break };
            after = Some((
                last["study_id"].as_str().unwrap_or_default().into(),
                last["submission_id"].as_str().unwrap_or_default().into(),
            ));
            all.extend(rows);
        }
        serde_json::json!({"pending_batches": pending, "holdings": all})
    }

    /// Party `i`'s running state (what a test that plays a cheating party
    /// reaches into). Panics if it is stopped.
    pub fn party_state(&self, i: usize) -> std::sync::Arc<triad_party::PartyState> {
        self.parties[i]
            .as_ref()
            .expect("party running")
            .state
            .clone()
    }

    /// The coordinator's `GET /internal/status` (operator's view).
    pub async fn coordinator_status(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/internal/status", self.net.coordinator))
            .header("x-triad-admin", ADMIN_TOKEN)
            .send()
            .await
            .expect("status");
        assert!(r.status().is_success(), "status: {}", r.status());
        r.json().await.expect("status JSON")
    }

    /// Submission ids party `i` holds in committed batches.
    pub async fn committed(&self, i: usize) -> std::collections::BTreeSet<String> {
        self.held(i, Some("committed")).await
    }

    /// Submission ids party `i` holds shares of in batches in `state`
    /// (whatever the state if `None`).
    pub async fn held(&self, i: usize, state: Option<&str>) -> std::collections::BTreeSet<String> {
        let h = self.holdings(i).await;
        h["holdings"]
            .as_array()
            .expect("holdings array")
            .iter()
            .filter(|x| state.is_none_or(|s| x["state"] == s))
            .map(|x| x["submission_id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits (≤ 60 s) until no party has a pending batch.
    pub async fn settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut pending = 0;
            for i in 0..3 {
                pending += self.holdings(i).await["pending_batches"]
                    .as_array()
                    .map_or(0, Vec::len);
            }
            if pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{pending} batches still pending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (≤ 60 s) for a release of `study` covering exactly `count`
    /// contributions, verified against the three parties' keys.
    pub async fn release_with_count(&self, study: &str, count: u64) -> VerifiedRelease {
        let deadline = Instant::now() + Duration::from_secs(60);
        let keys = triad_client::party_keys(&self.net);
        loop {
            let mut copies = Vec::new();
            for p in &self.net.parties {
                let url = format!("{}/v1/studies/{study}/release/latest", p.url);
                if let Ok(r) = self.http.get(&url).send().await {
                    if r.status().is_success() {
                        copies.push(
                            r.json::<triad_wire::SignedRelease>()
                                .await
                                .expect("release"),
                        );
                    }
                }
            }
            if copies.len() == 3 {
                // Copies of different release numbers do not verify together:
                // a party may be one release ahead for a moment.
                if let Ok(v) = triad_wire::release::verify_release(&copies, &keys) {
                    if v.release.count == count {
                        return v;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no release of {count} contributions within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The plaintext sum of accepted contributions, for oracle checks.
    pub fn sum(contributions: &[Contribution]) -> i128 {
        contributions.iter().map(|c| i128::from(c.value)).sum()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(h) = self.coordinator.take() {
            h.abort();
        }
        for h in self.parties.iter_mut().filter_map(Option::take) {
            h.abort();
        }
    }
}
