//! Service benchmarks over a real devnet (separate processes, HTTPS, mutual
//! TLS between the parties, SQLite files or, with `--postgres`, one
//! PostgreSQL database per service):
//!
//! - `triad bench submit --n N`: N providers contribute through the whole
//!   flow (attestation, admission, shares, MPC check, 2PC); contributions
//!   per second, then the time from the last contribution to a verified
//!   release.
//! - `triad bench release --n N`: N contributions already committed at
//!   the three parties (written straight into their stores, as N real
//!   contributions would leave them); the time of one release: each party
//!   loads the shares, computes the statistics suite in MPC, signs; then
//!   the three signatures are verified and the result is checked against
//!   the plaintext oracle.

use std::num::Wrapping;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::json;
use triad_mpc::share::share_plain;
use triad_mpc::Z128;
use triad_party::store::{PartyStore, PostgresStore, SqliteStore};
use triad_testsite::GroundTruth;
use triad_wire::messages::{ReleaseRequest, StudyParams, INTERNAL_TOKEN_HEADER};
use triad_wire::release::verify_release;
use triad_wire::SignedRelease;

use crate::demo::{
    contribute_all, demo_study, devnet_source, wait_final_release, Reach, DEMO_STUDY, MIN_NEW,
};
use crate::devnet::{Devnet, DevnetArgs, ScratchDir};

pub fn submit(
    n: usize,
    concurrency: usize,
    security: triad_party::SecurityArg,
    postgres: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let dir = ScratchDir::new("bench-submit", false);
    let backend = backend_name(&postgres);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut devnet = Devnet::start(&DevnetArgs {
            data_dir: dir.path.clone(),
            accounts: n.max(10),
            seed: 7,
            max_batch: 256,
            security,
            poll_security: triad_party::SecurityArg::SemiHonest,
            postgres: postgres.clone(),
        })
        .await?;
        if let Some(url) = &postgres {
            devnet.drop_databases_on_exit(url);
        }
        let net = devnet.network.clone();
        let http = triad_wire::https::client(&net.ca_pem()?, Duration::from_secs(60))?;
        let admin = std::fs::read_to_string(dir.path.join("secrets/admin.token"))?;
        triad_client::create_study(&net, &http, &admin, &demo_study(devnet_source(&net)?)).await?;
        let truth: GroundTruth =
            serde_json::from_str(&std::fs::read_to_string(devnet.info().ground_truth)?)?;
        let accounts: Vec<_> = truth.accounts.into_iter().take(n).collect();
        let reach = Reach::Network(Box::new(net.clone()));
        let run = contribute_all(&reach, &http, &accounts, concurrency).await?;
        let accepted = run.accepted.len();
        let per_second = accepted as f64 / run.seconds;
        let release_secs = if accepted >= 10 {
            Some(
                wait_final_release(&net, &http, DEMO_STUDY, accepted as u64, MIN_NEW)
                    .await?
                    .1,
            )
        } else {
            None
        };
        let cpu = service_cpu_seconds(&devnet);
        devnet.shutdown();
        let own = process_cpu_seconds("self");
        eprintln!(
            "CPU seconds: providers (this process) {own:.2}; {}",
            cpu.iter()
                .map(|(n, s)| format!("{n} {s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "submit n={n} concurrency={concurrency} store={backend}: {accepted} accepted in {:.2} s ({per_second:.0} per second); \
             last contribution to verified release: {}",
            run.seconds,
            release_secs.map(|s| format!("{s:.2} s")).unwrap_or("-".into())
        );
        if json {
            println!(
                "{}",
                json!({"bench": "submit", "n": n, "accepted": accepted, "concurrency": concurrency,
                       "store": backend, "security": security,
                       "seconds": run.seconds, "per_second": per_second,
                       "release_seconds": release_secs,
                       "cpu_seconds": cpu.iter().cloned().chain([("providers".to_string(), own)])
                           .collect::<std::collections::BTreeMap<_, _>>()})
            );
        }
        if accepted != n {
            bail!("{} contributions were not accepted: {:?}", n - accepted, run.failures.first());
        }
        Ok(())
    })
}

pub fn release(
    n: usize,
    seed: u64,
    security: triad_party::SecurityArg,
    postgres: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let dir = ScratchDir::new("bench-release", false);
    let backend = backend_name(&postgres);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut devnet = Devnet::start(&DevnetArgs {
            data_dir: dir.path.clone(),
            accounts: 10,
            seed: 7,
            max_batch: 256,
            security,
            poll_security: triad_party::SecurityArg::SemiHonest,
            postgres: postgres.clone(),
        })
        .await?;
        if let Some(url) = &postgres {
            devnet.drop_databases_on_exit(url);
        }
        let net = devnet.network.clone();
        // A study the coordinator does not know, so its scheduler never
        // starts an MPC job of its own while this one runs.
        let base = demo_study(devnet_source(&net)?);
        let study = StudyParams {
            id: "bench-release".into(),
            name: base.name,
            data_spec: base.data_spec,
            source: base.source,
            min_cohort: 10,
            min_new: 10,
            release_interval_secs: 3600,
            stats: base.stats,
        };
        let t = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<i64> = (0..n).map(|_| rng.gen_range(0..1_000_000)).collect();
        let ring: Vec<Z128> = values.iter().map(|&v| Wrapping(v as i128 as u128)).collect();
        let shares = share_plain(&ring, &mut rng);
        let batch_id = 1u64 << 40;
        for (i, sh) in shares.into_iter().enumerate() {
            let name = format!("party{i}");
            let url = match devnet.databases.as_ref() {
                Some(d) => Some(d.full_url(&name).context("party database")?.to_string()),
                None => None,
            };
            let path = dir.path.join(&name).join(triad_party::DB_FILE);
            let study_id = study.id.clone();
            // Store calls block (PostgreSQL's client runs its own runtime).
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let store: Box<dyn PartyStore> = match url {
                    Some(url) => Box::new(PostgresStore::open_as(&url, &name)?),
                    None => Box::new(SqliteStore::open(&path)?),
                };
                let passing: Vec<_> = (0..n)
                    .map(|k| (format!("{k:032x}"), sh.a[k], sh.b[k]))
                    .collect();
                store.import_committed(batch_id, &study_id, &passing)?;
                Ok(())
            })
            .await??;
        }
        let stored_secs = t.elapsed().as_secs_f64();
        eprintln!("stored {n} contributions at each party in {stored_secs:.1} s");
        let token = std::fs::read_to_string(dir.path.join("secrets/coordinator.token"))?;
        let http = triad_wire::https::client(&net.ca_pem()?, Duration::from_secs(3600))?;
        let req = ReleaseRequest {
            study: study.clone(),
            release_no: 1,
            created_at: triad_wire::unix_now(),
            as_of_batch: batch_id,
        };
        let t = Instant::now();
        let calls = net.parties.iter().map(|p| {
            let (http, token, req) = (http.clone(), token.trim().to_string(), req.clone());
            let url = format!("{}/internal/releases", p.url);
            async move {
                let r = http
                    .post(url)
                    .header(INTERNAL_TOKEN_HEADER, token)
                    .json(&req)
                    .send()
                    .await?;
                triad_wire::https::read_json::<SignedRelease>(r)
                    .await
                    .map_err(anyhow::Error::from)
            }
        });
        let copies: Vec<SignedRelease> = futures_join(calls).await?;
        let keys = triad_client::party_keys(&net);
        let verified = verify_release(&copies, &keys).context("verifying the release")?;
        let seconds = t.elapsed().as_secs_f64();
        let want = triad_stats::oracle(&values, &study.stats)?;
        let correct = triad_stats::agrees(&verified.release.results, &want).is_ok();
        // Per party, the largest: peak resident set (VmHWM) and the rounds
        // of the computation, which each party logs with the release.
        let parties: Vec<_> = devnet
            .info()
            .services
            .into_iter()
            .filter(|s| s.name.starts_with("party"))
            .collect();
        let peak_rss = parties.iter().map(|s| crate::bench::peak_rss_of(&s.pid.to_string())).max().unwrap_or(0);
        let rounds = parties
            .iter()
            .filter_map(|s| logged_rounds(&dir.path.join(format!("logs/{}.log", s.name)), &study.id))
            .max()
            .unwrap_or(0);
        devnet.shutdown();
        println!(
            "release n={n} store={backend}: {seconds:.2} s from request to three verified signatures; correct: {correct}"
        );
        if json {
            println!(
                "{}",
                json!({"bench": "release", "n": n, "store": backend, "security": security,
                       "seconds": seconds,
                       "correct": correct, "rounds": rounds, "peak_rss_bytes": peak_rss,
                       "store_seconds": stored_secs})
            );
        }
        if !correct {
            bail!("the release disagrees with the plaintext oracle");
        }
        Ok(())
    })
}

/// The rounds a party logged with its last "release computed" line for
/// `study`.
fn logged_rounds(log: &std::path::Path, study: &str) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("release computed") && l.contains(study))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("rounds=")?.parse().ok())
}

/// User + system CPU seconds of a process from /proc (Linux; 0 elsewhere).
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime is the 14th
    // field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of every devnet service so far.
fn service_cpu_seconds(d: &Devnet) -> Vec<(String, f64)> {
    d.info()
        .services
        .iter()
        .map(|s| (s.name.clone(), process_cpu_seconds(&s.pid.to_string())))
        .collect()
}

/// Awaits the three party calls concurrently.
async fn futures_join<F, T>(calls: impl Iterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

fn backend_name(postgres: &Option<String>) -> &'static str {
    if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}
