//! End to end over a real `triad devnet` (data source, notary, coordinator,
//! three parties and the consumer API as separate OS processes on
//! 127.0.0.1): concurrent honest providers, a party or the coordinator
//! killed with SIGKILL in the middle of the batches, and cheating or
//! malformed providers, checked against the ground truth and against what
//! each party actually stored in its SQLite database.
//!
//! The tests run one at a time (a devnet and hundreds of providers keep two
//! cores busy); each starts its own devnet in a temporary directory.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{triad, DevnetProcess};
use serde_json::Value;
use triad_attestation::{parse_fixed_point, Attestation, DataSource, DataSpec};
use triad_client::{
    commit_shares, contribute, split_shares, ClientError, ContributeOptions, Outcome,
};
use triad_crypto::Fr;
use triad_notary::{prove_with_notary, NotaryClient, Opening, ProveTarget};
use triad_stats::StatsSpec;
use triad_testsite::GroundTruth;
use triad_wire::messages::{
    CreateStudy, ReadyRequest, RejectReason, StudyInfo, SubmissionState, SubmissionStatus,
    SubmitRequest, SubmitResponse, INTERNAL_TOKEN_HEADER,
};
use triad_wire::receipt::SignedReceipt;
use triad_wire::{NetworkConfig, VerifiedRelease};

const STUDY: &str = "eth-balances";
const SCALE: u32 = 4;

/// One devnet at a time in this test binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` alone (see [`SERIAL`]) on a multi-threaded runtime.
fn run_alone<F: std::future::Future<Output = ()>>(test: F) {
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `demo_study()` of crates/cli/src/demo.rs, releasing every second.
fn study() -> CreateStudy {
    CreateStudy {
        id: STUDY.into(),
        name: "ETH balances of exchange accounts".into(),
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: SCALE,
            account_field: "uid".into(),
        },
        source: DataSource::named("127.0.0.1"),
        min_cohort: Some(10),
        min_new: Some(10),
        release_interval_secs: Some(1),
        stats: StatsSpec {
            quantiles: vec![0.1, 0.25, 0.75, 0.9],
            histogram_bounds: vec![100_000, 250_000, 500_000, 750_000],
        },
    }
}

fn eth(a: &triad_testsite::Account) -> i64 {
    parse_fixed_point(&a.balances["ETH"], SCALE).expect("ground truth value")
}

/// A `triad devnet` process and what the tests need to talk to it. Dropping
/// it stops the devnet (SIGINT, so it stops its services) and removes the
/// directory; on a failed test the tails of the service logs are printed
/// first.
struct Devnet {
    dir: PathBuf,
    /// The devnet process; dropping it stops every service.
    _process: DevnetProcess,
    net: NetworkConfig,
    http: reqwest::Client,
    truth: GroundTruth,
}

impl Devnet {
    fn start(name: &str, accounts: usize) -> Self {
        Self::from_process(DevnetProcess::start(name, accounts), accounts)
    }

    fn start_on_postgres(name: &str, accounts: usize) -> Self {
        Self::from_process(DevnetProcess::start_on_postgres(name, accounts), accounts)
    }

    fn from_process(process: DevnetProcess, accounts: usize) -> Self {
        let dir = process.dir.clone();
        let mut dn = Self {
            dir: dir.clone(),
            _process: process,
            net: placeholder_net(),
            http: reqwest::Client::new(),
            truth: GroundTruth {
                seed: 0,
                accounts: vec![],
            },
        };
        dn.net = NetworkConfig::load(&dir.join("network.json")).unwrap();
        dn.http =
            triad_wire::https::client(&dn.net.ca_pem().unwrap(), Duration::from_secs(60)).unwrap();
        let info = dn.info();
        let gt = info["ground_truth"].as_str().unwrap();
        dn.truth = serde_json::from_str(&std::fs::read_to_string(gt).unwrap()).unwrap();
        assert!(dn.truth.accounts.len() >= accounts);
        dn
    }

    fn info(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("devnet.json")).unwrap())
            .unwrap()
    }

    /// (pid, restarts) of a service, from the current devnet.json.
    fn service(&self, name: &str) -> (u32, u64) {
        let info = self.info();
        let s = info["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no service {name} in devnet.json"))
            .clone();
        (
            s["pid"].as_u64().unwrap() as u32,
            s["restarts"].as_u64().unwrap(),
        )
    }

    /// `kill -9` of a service; returns once the devnet has restarted it
    /// (devnet.json names a new pid) and it answers its health check.
    async fn kill9_and_wait_restart(&self, name: &str) {
        let (pid, restarts) = self.service(name);
        assert_ne!(pid, 0, "{name} is not running");
        let st = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -9 {pid} ({name})");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (p, r) = self.service(name);
            if p != pid && p != 0 && r > restarts {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} was not restarted within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = match name {
            "coordinator" => self.net.coordinator.clone(),
            n => {
                let i: usize = n.trim_start_matches("party").parse().unwrap();
                self.net.parties[i].url.clone()
            }
        };
        loop {
            let ok = matches!(self.http.get(format!("{url}/healthz")).send().await,
                Ok(r) if r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not come back within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_study(&self, params: &CreateStudy) -> StudyInfo {
        let admin = std::fs::read_to_string(self.dir.join("secrets/admin.token")).unwrap();
        triad_client::create_study(&self.net, &self.http, &admin, params)
            .await
            .expect("create the study")
    }

    async fn study_info(&self) -> StudyInfo {
        let r = self
            .http
            .get(format!("{}/v1/studies/{STUDY}", self.net.coordinator))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET study: {}", r.status());
        r.json().await.unwrap()
    }

    async fn submission(&self, sid: &str) -> SubmissionState {
        let r = self
            .http
            .get(format!("{}/v1/submissions/{sid}", self.net.coordinator))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET submission: {}", r.status());
        r.json().await.unwrap()
    }

    /// Party `i`'s own account of what it holds (`GET /internal/holdings`,
    /// with the coordinator's token): the tests never open a party's database.
    async fn holdings(&self, i: usize) -> serde_json::Value {
        let token = std::fs::read_to_string(self.dir.join("secrets/coordinator.token")).unwrap();
        let r = self
            .http
            .get(format!("{}/internal/holdings", self.net.parties[i].url))
            .header(INTERNAL_TOKEN_HEADER, token.trim())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "party {i} holdings: {}",
            r.status()
        );
        r.json().await.unwrap()
    }

    /// Submission ids party `i` holds in batches in `state` (any if `None`).
    async fn held(&self, i: usize, state: Option<&str>) -> BTreeSet<String> {
        let h = self.holdings(i).await;
        h["holdings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| state.is_none_or(|s| x["state"] == s))
            .map(|x| x["submission_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Submission ids party `i` holds in committed batches.
    async fn committed(&self, i: usize) -> BTreeSet<String> {
        self.held(i, Some("committed")).await
    }

    /// Every submission id party `i` holds shares of, whatever the batch state.
    async fn stored(&self, i: usize) -> BTreeSet<String> {
        self.held(i, None).await
    }

    async fn pending_batches(&self, i: usize) -> usize {
        self.holdings(i).await["pending_batches"]
            .as_array()
            .unwrap()
            .len()
    }

    /// Waits (≤ `secs`) for a verified release of exactly `count` contributions.
    async fn release_with_count(&self, count: usize, secs: u64) -> VerifiedRelease {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last;
        loop {
            match triad_client::latest_release(&self.net, &self.http, STUDY).await {
                Ok(r) if r.release.count as usize == count => return r,
                Ok(r) => last = format!("release {} of {}", r.release.release_no, r.release.count),
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "no release of {count} contributions within {secs} s (last: {last})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Only until network.json is read.
fn placeholder_net() -> NetworkConfig {
    let p = triad_wire::PartyEndpoint {
        url: String::new(),
        mpc_addr: "127.0.0.1:0".parse().unwrap(),
        mpc_cert: String::new(),
        sign_key: String::new(),
    };
    NetworkConfig {
        mpc_latency_us: 0,
        ca_cert: PathBuf::new(),
        coordinator: String::new(),
        coordinator_key: None,
        parties: [p.clone(), p.clone(), p],
        notary: String::new(),
        notary_key: String::new(),
        api: String::new(),
        datasource: None,
    }
}

fn opts() -> ContributeOptions {
    ContributeOptions {
        timeout: Duration::from_secs(120),
        attempts: 3,
        submit_timeout: Duration::from_secs(90),
        ..ContributeOptions::default()
    }
}

type Provider = (i64, tokio::task::JoinHandle<Result<Outcome, ClientError>>);

/// Providers of the accounts `range`, contributing concurrently; the `k`-th
/// starts after `k * stagger` (zero: all at once). Each comes with its
/// ground-truth value.
fn spawn_providers(dn: &Devnet, range: std::ops::Range<usize>, stagger: Duration) -> Vec<Provider> {
    dn.truth.accounts[range]
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let (net, http, key) = (dn.net.clone(), dn.http.clone(), a.api_key.clone());
            let task = tokio::spawn(async move {
                tokio::time::sleep(stagger * k as u32).await;
                contribute(&net, &http, STUDY, &key, &opts()).await
            });
            (eth(a), task)
        })
        .collect()
}

fn assert_agrees(release: &VerifiedRelease, values: &[i64]) {
    let want = triad_stats::oracle(values, &study().stats).unwrap();
    assert_eq!(release.release.count as usize, values.len());
    if let Err(e) = triad_stats::agrees(&release.release.results, &want) {
        panic!(
            "release {} differs from the oracle: {e}\n got {:?}\nwant {want:?}",
            release.release.release_no, release.release.results
        );
    }
}

#[test]
fn two_hundred_concurrent_providers() {
    run_alone(two_hundred());
}

async fn two_hundred() {
    let t0 = Instant::now();
    let n = 200;
    let dn = Devnet::start("two-hundred", n);
    // With min_new = 10 and a release every second, a release may catch
    // 191 of the 200 and the last 9 would never be released; a cohort of
    // 200 makes the first release exactly the 200.
    dn.create_study(&CreateStudy {
        min_cohort: Some(n as u64),
        ..study()
    })
    .await;
    eprintln!("devnet up and study created in {:.1?}", t0.elapsed());

    let t1 = Instant::now();
    let mut values = Vec::new();
    for (truth, task) in spawn_providers(&dn, 0..n, Duration::ZERO) {
        let o = task.await.unwrap().expect("contribution");
        assert!(o.accepted, "rejected: {:?}", o.reason);
        assert_eq!(o.value, truth, "the attested value is the account's");
        assert_eq!((o.study_id.as_str(), o.scale), (STUDY, SCALE));
        values.push(o.value);
    }
    eprintln!("{n} providers accepted in {:.1?}", t1.elapsed());
    assert_eq!(dn.study_info().await.contributions, n as u64);
    for i in 0..3 {
        assert_eq!(dn.committed(i).await.len(), n, "party {i}");
    }

    let release = dn.release_with_count(n, 60).await;
    assert_eq!(release.release.release_no, 1);
    assert_agrees(&release, &values);

    // `triad query --json` prints the same verified release.
    let out = triad()
        .args(["query", "--study", STUDY, "--json", "--devnet"])
        .arg(&dn.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: VerifiedRelease = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(printed.release.count, n as u64);
    assert_eq!(printed.release.study_id, STUDY);
    assert!(printed.release.release_no >= release.release.release_no);
    assert_agrees(&printed, &values);

    // Two parties' databases reconstruct every contribution; the data
    // source's files hold every API key: nothing a devnet wrote (keys,
    // tokens, databases with their WAL files, logs) is readable by others.
    for sub in [
        "party0",
        "party1",
        "party2",
        "coordinator",
        "api",
        "notary",
        "datasource",
        "secrets",
        "tls",
        "logs",
    ] {
        triad_files::check_private(&dn.dir.join(sub), 4).unwrap();
    }
    eprintln!("two_hundred_concurrent_providers: {:.1?}", t0.elapsed());
}

/// 150 providers contributing concurrently (starting over ~3 s, so that
/// batches keep forming); `victim` is killed with SIGKILL once the first
/// contributions are committed; then nothing accepted may be lost, nothing
/// may stay half-stored, and the release must cover exactly the accepted.
async fn kill_mid_batch(victim: &str, postgres: bool) {
    let t0 = Instant::now();
    let (n, top_up) = (150, 10);
    let dn = if postgres {
        Devnet::start_on_postgres(&format!("kill-pg-{victim}"), n + top_up)
    } else {
        Devnet::start(&format!("kill-{victim}"), n + top_up)
    };
    dn.create_study(&study()).await;
    let tasks = spawn_providers(&dn, 0..n, Duration::from_millis(20));

    // Kill as soon as the first batch is committed (or after a while).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if dn.study_info().await.contributions > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = dn.study_info().await.contributions;
    let finished = tasks.iter().filter(|(_, t)| t.is_finished()).count();
    eprintln!(
        "killing {victim} after {:.1?}: {before} committed, {finished} of {n} providers done",
        started.elapsed()
    );
    dn.kill9_and_wait_restart(victim).await;
    eprintln!("{victim} restarted after {:.1?}", started.elapsed());

    let mut accepted: Vec<(String, i64)> = Vec::new();
    let (mut rejected, mut failed) = (Vec::new(), Vec::new());
    // Errors after admission name the submission: what became of it.
    let mut unresolved: Vec<(String, i64)> = Vec::new();
    for (truth, task) in tasks {
        match task.await.unwrap() {
            Ok(o) if o.accepted => {
                assert_eq!(o.value, truth);
                accepted.push((o.submission_id, o.value));
            }
            Ok(o) => {
                let why = o.reason.expect("a rejection names its reason");
                rejected.push(why);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.trim().is_empty(), "an error without a message");
                match e {
                    ClientError::Ready { submission_id, .. }
                    | ClientError::Status { submission_id, .. }
                    | ClientError::StatusTimeout { submission_id, .. } => {
                        unresolved.push((submission_id, truth))
                    }
                    _ => {}
                }
                failed.push(msg);
            }
        }
    }
    eprintln!(
        "after {:.1?}: {} accepted, {} rejected {:?}, {} failed {:?}",
        t0.elapsed(),
        accepted.len(),
        rejected.len(),
        rejected,
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>()
    );
    // A provider whose "ready" (or status poll) hit the restart gets an
    // error, yet the coordinator may have recorded the "ready" and go on to
    // accept the submission; such a submission counts like any accepted one.
    // (One left awaiting shares stays out: nobody will confirm it now.)
    let mut told_error_but_accepted = Vec::new();
    for (sid, value) in unresolved {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let st = dn.submission(&sid).await.status;
            if !matches!(st, SubmissionStatus::Queued | SubmissionStatus::Processing)
                || Instant::now() > deadline
            {
                break st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if status == SubmissionStatus::Accepted {
            told_error_but_accepted.push(sid.clone());
            accepted.push((sid, value));
        }
    }
    if !told_error_but_accepted.is_empty() {
        eprintln!(
            "NOTE: {} provider(s) got an error, but the coordinator accepted their \
             submission: {told_error_but_accepted:?}",
            told_error_but_accepted.len()
        );
    }
    assert!(
        accepted.len() >= 10,
        "too few accepted for a release: {}",
        accepted.len()
    );

    // No party keeps a pending (half-decided) batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pending = Vec::new();
        for i in 0..3 {
            pending.push(dn.pending_batches(i).await);
        }
        if pending.iter().all(|p| *p == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pending batches left after 30 s: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let want: BTreeSet<String> = accepted.iter().map(|(s, _)| s.clone()).collect();
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for i in 0..3 {
        sets.push(dn.committed(i).await);
    }
    for (i, set) in sets.iter().enumerate() {
        let lost: Vec<_> = want.difference(set).collect();
        assert!(
            lost.is_empty(),
            "party {i} lost accepted submissions {lost:?}"
        );
    }
    assert_eq!(sets[0], sets[1], "parties 0 and 1 committed different sets");
    assert_eq!(sets[1], sets[2], "parties 1 and 2 committed different sets");
    let extra: Vec<_> = sets[0].difference(&want).collect();
    assert!(
        extra.is_empty(),
        "committed but never reported accepted: {extra:?}"
    );
    assert_eq!(
        dn.study_info().await.contributions,
        accepted.len() as u64,
        "the coordinator's count of accepted contributions"
    );

    // A release may already cover most of them, and the next one needs
    // min_new (10) more: ten more honest providers make sure it comes.
    let mut values: Vec<i64> = accepted.iter().map(|(_, v)| *v).collect();
    for (truth, task) in spawn_providers(&dn, n..n + top_up, Duration::ZERO) {
        let o = task.await.unwrap().expect("a provider after the restart");
        assert!(o.accepted, "rejected after the restart: {:?}", o.reason);
        assert_eq!(o.value, truth);
        values.push(o.value);
    }
    let release = dn.release_with_count(values.len(), 60).await;
    assert_agrees(&release, &values);
    if postgres {
        // Every service stored in its database, none in a file.
        for f in [
            "coordinator/coordinator.sqlite",
            "party0/party.sqlite",
            "party1/party.sqlite",
            "party2/party.sqlite",
            "api/api.sqlite",
        ] {
            assert!(
                !dn.dir.join(f).exists(),
                "{f} exists on a PostgreSQL devnet"
            );
        }
        assert_eq!(dn.info()["databases"].as_array().unwrap().len(), 5);
    }
    eprintln!(
        "kill_mid_batch({victim}, postgres: {postgres}): {:.1?}",
        t0.elapsed()
    );
}

#[test]
fn kill_a_party_mid_batch() {
    run_alone(kill_mid_batch("party1", false));
}

#[test]
fn kill_the_coordinator_mid_batch() {
    run_alone(kill_mid_batch("coordinator", false));
}

/// The same with every service on a PostgreSQL database of its own.
#[test]
fn kill_a_party_mid_batch_on_postgres() {
    run_alone(kill_mid_batch("party1", true));
}

#[test]
fn kill_the_coordinator_mid_batch_on_postgres() {
    run_alone(kill_mid_batch("coordinator", true));
}

/// How a hand-built provider lies (if at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cheat {
    Honest,
    /// Party 1's second value component differs from party 2's first.
    InconsistentComponents,
    /// The shared blinder is the attested one plus one.
    WrongBlinder,
    /// The shared value is the attested one plus one.
    WrongValue,
    /// Honest, but party 1 is killed with SIGKILL (and restarted by the
    /// devnet) between the uploads and "ready": its receipt acknowledged
    /// shares it must still hold.
    HonestThenParty1Killed,
}

/// A status code and the JSON body (`{"error": code, "message": …}` on errors).
async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn attest(dn: &Devnet, api_key: &str) -> (Attestation, Opening) {
    let ds = dn.net.datasource.clone().unwrap();
    let ca = std::fs::read(&ds.ca_cert).unwrap();
    let target =
        ProveTarget::from_url(&ds.url, vec![("X-API-KEY".into(), api_key.into())]).unwrap();
    let notary = NotaryClient::new(&dn.net.notary, &dn.net.ca_pem().unwrap()).unwrap();
    let spec = study().data_spec;
    let (att, opening, pk) = prove_with_notary(&notary, &target, Some(&ca), STUDY, &spec)
        .await
        .expect("attestation through the notary");
    assert!(pk.to_hex().eq_ignore_ascii_case(&dn.net.notary_key));
    (att, opening)
}

async fn post_submission(dn: &Devnet, study: &str, body: Vec<u8>) -> (u16, Value) {
    let r = dn
        .http
        .post(format!(
            "{}/v1/studies/{study}/submissions",
            dn.net.coordinator
        ))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST submissions");
    answer(r).await
}

fn submit_body(att: &Attestation) -> Vec<u8> {
    serde_json::to_vec(&SubmitRequest {
        token: None,
        attestation: att.clone(),
    })
    .unwrap()
}

/// A hand-built provider: contribute.rs's steps, with an optional lie in
/// the shares. Returns the attestation, the submission and its verdict.
async fn manual_provider(
    dn: &Devnet,
    api_key: &str,
    cheat: Cheat,
) -> (Attestation, SubmitResponse, SubmissionState) {
    let (att, opening) = attest(dn, api_key).await;
    manual_submission(dn, att, opening, cheat).await
}

/// [`manual_provider`] from an attestation already in hand.
async fn manual_submission(
    dn: &Devnet,
    att: Attestation,
    opening: Opening,
    cheat: Cheat,
) -> (Attestation, SubmitResponse, SubmissionState) {
    let (status, body) = post_submission(dn, STUDY, submit_body(&att)).await;
    assert_eq!(status, 202, "submission refused: {body}");
    let sub: SubmitResponse = serde_json::from_value(body).unwrap();
    let blinder = opening.blinder_fr().unwrap();
    let mut rng = rand::rngs::OsRng;
    let mut shares = match cheat {
        Cheat::WrongBlinder => split_shares(opening.value, blinder + Fr::from(1u64), &mut rng),
        Cheat::WrongValue => split_shares(opening.value + 1, blinder, &mut rng),
        _ => split_shares(opening.value, blinder, &mut rng),
    };
    let c = commit_shares(&sub.submission_id, &shares, &mut rng);
    if cheat == Cheat::InconsistentComponents {
        // Party 1's copy of component 2 no longer opens the commitment
        // party 2 checks its copy against.
        shares[1].value_bits[1] ^= 1;
    }
    let mut receipts = Vec::new();
    for (i, s) in shares.iter().enumerate() {
        let r = dn
            .http
            .post(format!("{}/v1/shares", dn.net.parties[i].url))
            .json(&s.to_upload(i, &sub.submission_id, &sub.token, &c))
            .send()
            .await
            .unwrap();
        let got = answer(r).await;
        if cheat == Cheat::InconsistentComponents && i == 1 {
            assert_error("inconsistent upload", &got, 400, "bad_shares");
            continue;
        }
        assert_eq!(got.0, 202, "party {i} refused the upload: {}", got.1);
        receipts.push(serde_json::from_value::<SignedReceipt>(got.1).unwrap());
    }
    if cheat == Cheat::HonestThenParty1Killed {
        dn.kill9_and_wait_restart("party1").await;
    }
    let ready = |receipts: Vec<SignedReceipt>| {
        dn.http
            .post(format!(
                "{}/v1/submissions/{}/ready",
                dn.net.coordinator, sub.submission_id
            ))
            .json(&ReadyRequest {
                token: sub.token.clone(),
                receipts,
            })
            .send()
    };
    if cheat == Cheat::InconsistentComponents {
        // Without party 1's receipt, or with another party's in its place,
        // the coordinator does not queue the submission.
        let two = answer(ready(receipts.clone()).await.unwrap()).await;
        assert_error("two receipts", &two, 400, "bad_receipts");
        let mut forged = receipts.clone();
        let mut copy = receipts[0].clone();
        copy.party = 1;
        forged.insert(1, copy);
        let forged = answer(ready(forged).await.unwrap()).await;
        assert_error("forged receipt", &forged, 400, "bad_receipts");
        let state = dn.submission(&sub.submission_id).await;
        return (att, sub, state);
    }
    let r = ready(receipts).await.unwrap();
    let (status, body) = answer(r).await;
    assert_eq!(status, 202, "ready refused: {body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let s = dn.submission(&sub.submission_id).await;
        if matches!(
            s.status,
            SubmissionStatus::Accepted | SubmissionStatus::Rejected
        ) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{cheat:?}: still {:?} after 60 s",
            s.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    (att, sub, state)
}

fn assert_error(what: &str, got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(got.1["error"], code, "{what}: {}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message in {}",
        got.1
    );
}

#[test]
fn bad_providers_are_rejected_and_store_nothing() {
    run_alone(bad_providers());
}

async fn bad_providers() {
    let t0 = Instant::now();
    let dn = Devnet::start("bad-providers", 20);
    // The study through `triad study create`, as an operator would.
    let out = triad()
        .args(["study", "create", "--id", STUDY, "--name", "ETH balances"])
        .args(["--field", "balances.ETH", "--scale", "4"])
        .args(["--min-cohort", "10", "--min-new", "10"])
        .args(["--release-interval-secs", "1"])
        .args(["--quantile", "0.1", "--quantile", "0.25"])
        .args(["--quantile", "0.75", "--quantile", "0.9"])
        .args(["--histogram-bound", "100000", "--histogram-bound", "250000"])
        .args(["--histogram-bound", "500000", "--histogram-bound", "750000"])
        .args(["--json", "--devnet"])
        .arg(&dn.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let created: StudyInfo =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(created.params.data_spec, study().data_spec);
    assert_eq!(created.params.stats, study().stats);
    assert_eq!(created.params.release_interval_secs, 1);

    let acct = |i: usize| dn.truth.accounts[i].api_key.clone();
    let (ka, kb, kc) = (acct(0), acct(1), acct(2));
    let (a, b, c) = tokio::join!(
        manual_provider(&dn, &ka, Cheat::InconsistentComponents),
        manual_provider(&dn, &kb, Cheat::WrongBlinder),
        manual_provider(&dn, &kc, Cheat::WrongValue),
    );
    // Inconsistent components are refused at upload, so the submission
    // never leaves "awaiting shares" (it expires); the others reach the MPC.
    assert_eq!(a.2.status, SubmissionStatus::AwaitingShares, "{:?}", a.2);
    for got in [&b, &c] {
        assert_eq!(got.2.status, SubmissionStatus::Rejected, "{:?}", got.2);
        assert_eq!(
            got.2.reason,
            Some(RejectReason::CommitmentMismatch),
            "{:?}",
            got.2
        );
    }
    let cheaters = [&a, &b, &c];
    let cheater_ids: Vec<&str> = cheaters
        .iter()
        .map(|x| x.1.submission_id.as_str())
        .collect();
    // An honest provider built the same way is accepted.
    let (h_att, h_sub, h_state) = manual_provider(&dn, &acct(3), Cheat::Honest).await;
    assert_eq!(h_state.status, SubmissionStatus::Accepted, "{h_state:?}");
    for i in 0..3 {
        let stored = dn.stored(i).await;
        for id in &cheater_ids {
            assert!(!stored.contains(*id), "party {i} stored cheater {id}");
        }
        assert_eq!(
            dn.committed(i).await,
            BTreeSet::from([h_sub.submission_id.clone()]),
            "party {i}"
        );
    }

    // Refused requests change nothing.
    let info_before = dn.study_info().await;
    assert_eq!(info_before.contributions, 1);
    let mut states_before = Vec::new();
    for id in cheater_ids.iter().chain([&h_sub.submission_id.as_str()]) {
        states_before.push(dn.submission(id).await);
    }

    let replay = post_submission(&dn, STUDY, submit_body(&h_att)).await;
    assert_error("replay", &replay, 409, "attestation_replayed");
    let (again, _) = attest(&dn, &acct(3)).await;
    let twice = post_submission(&dn, STUDY, submit_body(&again)).await;
    assert_error("second contribution", &twice, 409, "already_contributed");
    let (fresh, fresh_opening) = attest(&dn, &acct(4)).await;
    let unknown = post_submission(&dn, "no-such-study", submit_body(&fresh)).await;
    assert_error("unknown study", &unknown, 404, "unknown_study");
    let malformed = post_submission(&dn, STUDY, b"{\"attestation\": {".to_vec()).await;
    assert_error("malformed JSON", &malformed, 400, "malformed_body");
    let missing = post_submission(&dn, STUDY, b"{}".to_vec()).await;
    assert_error("missing attestation", &missing, 400, "malformed_body");
    let mut huge = b"{\"attestation\": \"".to_vec();
    huge.resize(100 * 1024, b'a');
    huge.extend_from_slice(b"\"}");
    let too_big = post_submission(&dn, STUDY, huge).await;
    assert_eq!(too_big.0, 413, "100 KiB body: {}", too_big.1);
    // A malformed upload to a party: well-formed JSON, bad components.
    let bad_upload = serde_json::json!({
        "submission_id": h_sub.submission_id,
        "token": "zz",
        "value_bits": ["0", "1"],
        "blinder": ["2", "3"],
        "salts": ["4", "5"],
        "commitments": ["6", "7", "8"],
    });
    let r = dn
        .http
        .post(format!("{}/v1/shares", dn.net.parties[0].url))
        .json(&bad_upload)
        .send()
        .await
        .unwrap();
    assert_error("bad upload", &answer(r).await, 400, "bad_shares");

    let info_after = dn.study_info().await;
    assert_eq!(info_after.contributions, info_before.contributions);
    assert_eq!(info_after.params, info_before.params);
    for (before, id) in states_before
        .iter()
        .zip(cheater_ids.iter().chain([&h_sub.submission_id.as_str()]))
    {
        assert_eq!(&dn.submission(id).await, before);
    }
    for i in 0..3 {
        assert_eq!(dn.committed(i).await.len(), 1, "party {i}");
    }
    // The attestation refused for its unknown study left no trace: it is
    // admitted to the right study, and accepted.
    let (_, f_sub, f_state) = manual_submission(&dn, fresh, fresh_opening, Cheat::Honest).await;
    assert_eq!(f_state.status, SubmissionStatus::Accepted, "{f_state:?}");
    assert_eq!(dn.study_info().await.contributions, 2);

    // After all that, an honest provider is still accepted: `triad share`,
    // the API key in the environment (not on the command line).
    let account = &dn.truth.accounts[5];
    let out = triad()
        .env(triad_client::API_KEY_ENV, &account.api_key)
        .args(["share", "--study", STUDY])
        .args(["--json", "--devnet"])
        .arg(&dn.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let o: Outcome =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(o.accepted, "{o:?}");
    assert_eq!((o.value, o.scale, o.attempts), (eth(account), SCALE, 1));
    let state = dn.submission(&o.submission_id).await;
    assert_eq!(state.status, SubmissionStatus::Accepted);
    assert_eq!(dn.study_info().await.contributions, 3);
    // A party killed -9 after signing its receipt still holds the upload.
    let (_, k_sub, k_state) = manual_provider(&dn, &acct(6), Cheat::HonestThenParty1Killed).await;
    assert_eq!(k_state.status, SubmissionStatus::Accepted, "{k_state:?}");
    assert_eq!(dn.study_info().await.contributions, 4);
    let honest = BTreeSet::from([
        h_sub.submission_id,
        f_sub.submission_id,
        o.submission_id,
        k_sub.submission_id,
    ]);
    for i in 0..3 {
        assert_eq!(dn.committed(i).await, honest, "party {i}");
    }
    eprintln!(
        "bad_providers_are_rejected_and_store_nothing: {:.1?}",
        t0.elapsed()
    );
}

/// A background process killed when dropped.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (≤ 60 s) for `path` to hold JSON, then returns it.
fn wait_json(path: &std::path::Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The review's forged-source attack, end to end: a fake "exchange" with
/// its own CA answers huge balances with a fresh account on every request,
/// and a notary holding the devnet's real signing key trusts that CA and
/// relays to it (as any notary trusting the platform roots would for a
/// public site). The attestations are genuine; the coordinator must still
/// refuse them because they do not come from the study's source, whether
/// the fake uses another name (`localhost`) or the study's own name with
/// another certificate chain (the study pins the real one).
#[test]
fn attestations_from_a_forged_source_are_refused() {
    run_alone(forged_source());
}

async fn forged_source() {
    let dn = Devnet::start("forged-source", 20);
    let created = dn
        .create_study(&CreateStudy {
            source: dn
                .net
                .datasource
                .as_ref()
                .and_then(|d| d.source.clone())
                .expect("the devnet names its source"),
            ..study()
        })
        .await;
    assert!(created.params.source.cert_chain_sha256.is_some());

    // The fake exchange: its own CA, other accounts and values.
    let fake_dir = dn.dir.join("forged");
    let _fake = Bg(triad()
        .args([
            "datasource",
            "--accounts",
            "5",
            "--seed",
            "99999",
            "--data-dir",
        ])
        .arg(&fake_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let fake = wait_json(&fake_dir.join("datasource.json"));
    let fake_url = fake["url"].as_str().unwrap().to_string();
    let fake_ca = std::fs::read(fake["ca_cert"].as_str().unwrap()).unwrap();
    let fake_truth: GroundTruth = serde_json::from_str(
        &std::fs::read_to_string(fake["ground_truth"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let port = fake_url
        .trim_start_matches("https://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // A notary with the devnet's own key that trusts and relays to it.
    let rogue_dir = dn.dir.join("rogue-notary");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    std::fs::copy(
        dn.dir
            .join("notary")
            .join(triad_notary::service::NOTARY_KEY_FILE),
        rogue_dir.join(triad_notary::service::NOTARY_KEY_FILE),
    )
    .unwrap();
    let _rogue = Bg(triad()
        .args([
            "notary",
            "--listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
        ])
        // The API's certificate: the devnet notary's own (same CA).
        .arg("--tls-cert")
        .arg(dn.dir.join("tls/notary.pem"))
        .arg("--tls-key")
        .arg(dn.dir.join("tls/notary.key"))
        .args(["--allow-target", &format!("127.0.0.1:{port}")])
        .args(["--allow-target", &format!("localhost:{port}")])
        .args(["--allow-target", &format!("[::1]:{port}")])
        .arg("--trust-ca")
        .arg(fake["ca_cert"].as_str().unwrap())
        .arg("--data-dir")
        .arg(&rogue_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let rogue = wait_json(&rogue_dir.join(triad_notary::service::NOTARY_INFO_FILE));
    let rogue_url = rogue["url"].as_str().unwrap().to_string();

    let before = dn.study_info().await;
    for (i, host) in ["localhost", "127.0.0.1"].into_iter().enumerate() {
        let url = fake_url.replace("127.0.0.1", host);
        let target = ProveTarget::from_url(
            &url,
            vec![("X-API-KEY".into(), fake_truth.accounts[i].api_key.clone())],
        )
        .unwrap();
        let notary = NotaryClient::new(&rogue_url, &dn.net.ca_pem().unwrap()).unwrap();
        let (att, _, pk) =
            prove_with_notary(&notary, &target, Some(&fake_ca), STUDY, &study().data_spec)
                .await
                .expect("the rogue notary attests the fake exchange");
        // A genuine signature by the network's notary key…
        assert!(pk.to_hex().eq_ignore_ascii_case(&dn.net.notary_key));
        assert_eq!(att.server_name, host);
        // …refused all the same, and nothing changes.
        let got = post_submission(&dn, STUDY, submit_body(&att)).await;
        assert_error(&format!("forged source {host}"), &got, 422, "wrong_source");
    }
    let after = dn.study_info().await;
    assert_eq!(after.contributions, before.contributions);
    for i in 0..3 {
        assert!(dn.stored(i).await.is_empty(), "party {i} stored something");
    }
    // The real source is still served.
    let real = &dn.truth.accounts[0];
    let o = contribute(&dn.net, &dn.http, STUDY, &real.api_key, &opts())
        .await
        .expect("an honest contribution");
    assert!(o.accepted, "{o:?}");
}

/// The README's first command on a saturated machine: the review saw
/// `triad demo` wait 600 s and fail when the last contributions were fewer
/// than `min_new` after a release. With two busy loops competing for the
/// CPU, the demo must finish and match the ground truth of exactly the
/// contributions its release covers.
#[test]
fn the_demo_finishes_on_a_busy_machine() {
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let hogs: Vec<Bg> = (0..2)
        .map(|_| {
            Bg(Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap())
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("triad-e2e-{}-demo", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = triad()
        .args([
            "demo",
            "--providers",
            "57",
            "--exit",
            "--json",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    drop(hogs);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(v["match"], true, "{v}");
    let (accepted, released, waiting) = (
        v["accepted"].as_u64().unwrap(),
        v["released"].as_u64().unwrap(),
        v["awaiting_release"].as_u64().unwrap(),
    );
    assert_eq!(accepted, 57, "{}", text(&out));
    assert_eq!(released + waiting, accepted);
    assert!(waiting < 10, "a release may still include {waiting}");
    assert_eq!(v["results"]["count"].as_u64(), Some(released));
    // The default: the parties computed (and signed) it malicious-secure.
    assert_eq!(v["security"], "malicious", "{v}");
}
