//! `triad demo`: a devnet, a study, N simulated providers contributing
//! concurrently through the real flow (each finds the study by its
//! directory id through the private directory, then attestation through
//! the notary, admission at the coordinator, shares to the parties, MPC
//! check), the release, and the released statistics next to the plaintext
//! ground truth.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use triad_attestation::{parse_fixed_point, DataSource, DataSpec};
use triad_client::discover::{client_node, find_record_via, network_from_record};
use triad_client::{contribute, create_study, latest_release, ContributeOptions};
use triad_directory::derive::DirectoryId;
use triad_directory::node::NodeHandle;
use triad_directory::record::{Kind, ServiceRecord};
use triad_stats::{StatsResult, StatsSpec};
use triad_testsite::{Account, GroundTruth};
use triad_wire::messages::{CreateStudy, StudyInfo};
use triad_wire::{NetworkConfig, VerifiedRelease};

use crate::devnet::{print_endpoints, Devnet, DevnetArgs, ScratchDir};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
    /// Simulated providers.
    #[arg(long, default_value_t = 1000)]
    pub providers: usize,
    /// Exit after printing the results instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// End with one JSON line of the results.
    #[arg(long)]
    pub json: bool,
    /// Devnet directory (default: a fresh temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Providers contributing at the same time.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Store in PostgreSQL, one database per service on this server (see
    /// `triad devnet --postgres`), instead of SQLite files.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The parties' security mode for the statistics (docs/security.md).
    #[arg(long, value_enum, default_value_t = triad_party::SecurityArg::Malicious)]
    pub security: triad_party::SecurityArg,
}

#[derive(clap::Subcommand, Debug)]
pub enum DemoCommand {
    /// A poll: voters sign up and vote as secret shares, a briber votes
    /// with bought keys, some voters override it with a key change; the
    /// tally signed by all three parties next to the plaintext oracle's.
    Poll(crate::demo_poll::DemoPollArgs),
}

pub const DEMO_STUDY: &str = "eth-balances";
const SCALE: u32 = 4;
/// The demo study's thresholds.
const MIN_COHORT: u64 = 10;
pub const MIN_NEW: u64 = 10;
/// How long the demo waits for a release in all: far more than a loaded
/// machine needs, short of hanging forever.
const RELEASE_WAIT: Duration = Duration::from_secs(600);

/// The devnet's data source as a study names it (server name and the
/// pinned certificate chain).
pub fn devnet_source(net: &NetworkConfig) -> anyhow::Result<DataSource> {
    net.datasource
        .as_ref()
        .and_then(|d| d.source.clone())
        .context("the network description names no data source")
}

/// The demo's study, reading the ETH balance from `source`.
pub fn demo_study(source: DataSource) -> CreateStudy {
    CreateStudy {
        id: DEMO_STUDY.into(),
        name: "ETH balances of exchange accounts".into(),
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: SCALE,
            account_field: "uid".into(),
        },
        source,
        min_cohort: Some(MIN_COHORT),
        min_new: Some(MIN_NEW),
        release_interval_secs: Some(2),
        stats: StatsSpec {
            quantiles: vec![0.1, 0.25, 0.75, 0.9],
            histogram_bounds: vec![100_000, 250_000, 500_000, 750_000],
        },
    }
}

fn progress(done: usize, total: usize, accepted: usize, started: Instant) {
    let width = 30;
    let filled = done * width / total.max(1);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
    eprint!(
        "\r  [{}{}] {done}/{total} contributed, {accepted} accepted ({rate:.0}/s)   ",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

/// A demo's running devnet and what the demo needs to drive it.
pub struct DemoDevnet {
    pub devnet: Devnet,
    pub net: NetworkConfig,
    pub http: reqwest::Client,
    pub admin: String,
    /// The data source's accounts.
    pub truth: GroundTruth,
}

/// Starts a devnet in `dir` with `accounts` data-source accounts (at least
/// 10) for a demo called `what`.
pub async fn start_devnet(
    dir: &std::path::Path,
    accounts: usize,
    what: &str,
    security: triad_party::SecurityArg,
    poll_security: triad_party::SecurityArg,
    postgres: Option<String>,
) -> anyhow::Result<DemoDevnet> {
    eprintln!("{what}: starting a devnet in {}", dir.display());
    let devnet = Devnet::start(&DevnetArgs {
        data_dir: dir.to_path_buf(),
        accounts: accounts.max(10),
        seed: 1,
        max_batch: 256,
        security,
        poll_security,
        postgres,
    })
    .await?;
    let net = devnet.network.clone();
    let http = triad_wire::https::client(&net.ca_pem()?, Duration::from_secs(60))?;
    let admin = std::fs::read_to_string(dir.join("secrets/admin.token"))?;
    let truth: GroundTruth =
        serde_json::from_str(&std::fs::read_to_string(devnet.info().ground_truth)?)?;
    Ok(DemoDevnet {
        devnet,
        net,
        http,
        admin,
        truth,
    })
}

/// How long a demo waits for a new study or poll to appear in the
/// directory (it is published in the background after its creation).
const PUBLISH_WAIT: Duration = Duration::from_secs(90);

/// Waits until `id`'s record of `kind` is found (and verified) through
/// `node`; returns it and the seconds waited.
pub async fn wait_discoverable(
    node: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
) -> anyhow::Result<(ServiceRecord, f64)> {
    let from = Instant::now();
    loop {
        match find_record_via(node, id, kind).await {
            Ok(r) => return Ok((r, from.elapsed().as_secs_f64())),
            Err(e) if from.elapsed() > PUBLISH_WAIT => {
                return Err(e).context("the directory never returned the record")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The data source's CA of the devnet (what a provider brings for its
/// own exchange's API).
pub fn datasource_ca(net: &NetworkConfig) -> Option<PathBuf> {
    net.datasource.as_ref().map(|d| d.ca_cert.clone())
}

/// The demo's directory: `data_dir` if given, else a fresh temporary one
/// (kept while `keep`, i.e. while the demo serves after its run).
pub fn demo_dir(
    data_dir: &Option<PathBuf>,
    label: &str,
    keep: bool,
) -> (Option<ScratchDir>, PathBuf) {
    let scratch = data_dir.is_none().then(|| ScratchDir::new(label, keep));
    let dir = match (data_dir, &scratch) {
        (Some(d), _) => d.clone(),
        (None, s) => s.as_ref().expect("scratch dir").path.clone(),
    };
    (scratch, dir)
}

/// Unless `exit`, prints the endpoints and serves until Ctrl-C; then stops
/// the devnet.
pub async fn serve_until_signalled(devnet: &mut Devnet, exit: bool) -> anyhow::Result<()> {
    if !exit {
        print_endpoints(devnet);
        println!("serving until Ctrl-C");
        crate::devnet::until_signalled().await?;
    }
    devnet.shutdown();
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(DemoCommand::Poll(a)) = args.command {
        return crate::demo_poll::run(a);
    }
    if args.providers == 0 {
        bail!("--providers must be at least 1");
    }
    // A temporary devnet outlives the demo only while it keeps serving.
    let (_scratch, dir) = demo_dir(&args.data_dir, "demo", !args.exit);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(demo(args, dir))
}

async fn demo(args: DemoArgs, dir: PathBuf) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let n = args.providers;
    let DemoDevnet {
        mut devnet,
        net,
        http,
        admin,
        truth,
    } = start_devnet(
        &dir,
        n,
        "triad demo",
        args.security,
        triad_party::SecurityArg::SemiHonest,
        args.postgres.clone(),
    )
    .await?;
    // A scratch devnet's databases go with its directory.
    if let (None, Some(url)) = (&args.data_dir, &args.postgres) {
        devnet.drop_databases_on_exit(url);
    }
    let study = demo_study(devnet_source(&net)?);
    let info: StudyInfo = match create_study(&net, &http, &admin, &study).await {
        Ok(info) => info,
        // A reused devnet directory already has the study.
        Err(e) if e.to_string().contains("study_exists") => {
            let url = format!("{}/v1/studies/{DEMO_STUDY}", net.coordinator);
            http.get(url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?
        }
        Err(e) => return Err(e).context("creating the demo study"),
    };
    // The providers are handed the study's directory id, nothing else: each
    // finds the coordinator, the parties and the notary in the directory.
    let id_hex = info
        .directory_id
        .context("the coordinator gave the study no directory id")?;
    let id = DirectoryId::from_hex(&id_hex).context("the study's directory id")?;
    devnet.list_directory_id("study", DEMO_STUDY, &id_hex)?;
    let node = client_node(&devnet.directory()).await?;
    let (_, published_secs) = wait_discoverable(&node, &id, Kind::Study).await?;
    eprintln!(
        "triad demo: study {DEMO_STUDY:?} is in the directory as {id_hex} ({published_secs:.1} s \
         after its creation); each provider gets only this id and finds the study's services \
         through the private directory lookup"
    );
    let accounts: Vec<_> = truth.accounts.into_iter().take(n).collect();
    eprintln!(
        "triad demo: {n} providers discover and contribute to study {DEMO_STUDY:?} ({} at a time)",
        args.concurrency
    );
    let reach = Reach::Directory {
        node,
        id,
        ca: net.ca_cert.clone(),
        datasource_ca: datasource_ca(&net),
    };
    let run = contribute_all(&reach, &http, &accounts, args.concurrency).await?;
    let (accepted, contribute_secs) = (run.accepted, run.seconds);
    for f in run.failures.iter().take(5) {
        eprintln!("  {f}");
    }
    eprintln!(
        "triad demo: {} of {n} accepted in {contribute_secs:.1} s ({:.0}/s); waiting for the release",
        accepted.len(),
        n as f64 / contribute_secs
    );
    let (release, release_secs) = if (accepted.len() as u64) < MIN_COHORT {
        (None, 0.0)
    } else {
        let (r, secs) =
            wait_final_release(&net, &http, DEMO_STUDY, accepted.len() as u64, MIN_NEW).await?;
        (Some(r), secs)
    };
    // The ground truth of exactly the contributions the release covers:
    // those of the batches up to its `as_of_batch`. Contributions that came
    // after it wait for `min_new` more before any release may include them.
    let included: Vec<&Account> = match &release {
        Some(r) => accepted
            .iter()
            .filter(|(_, batch)| *batch <= r.release.as_of_batch)
            .map(|(a, _)| *a)
            .collect(),
        None => Vec::new(),
    };
    let values: Vec<i64> = included
        .iter()
        .map(|a| parse_fixed_point(&a.balances["ETH"], SCALE))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("ground truth: {e}"))?;
    let truth = if values.is_empty() {
        None
    } else {
        Some(triad_stats::oracle(&values, &study.stats)?)
    };
    let waiting = accepted.len() - included.len();
    let got = release.as_ref().map(|r| &r.release.results);
    let matches = match (got, &truth) {
        (Some(g), Some(t)) => triad_stats::agrees(g, t).is_ok(),
        _ => false,
    };
    if let (Some(g), Some(t)) = (got, &truth) {
        print_table(g, t);
    } else {
        println!("no release: fewer than min_cohort ({MIN_COHORT}) contributions were accepted");
    }
    if waiting > 0 {
        println!(
            "{waiting} contributions arrived after the last release; fewer than min_new \
             ({MIN_NEW}), so no release may include them yet"
        );
    }
    let security = release.as_ref().and_then(|r| r.release.security);
    let mode = triad_wire::release::SecurityMode::describe(security);
    println!(
        "{} of {n} contributions accepted, {} in release {} ({mode}) signed by all three parties; {}",
        accepted.len(),
        included.len(),
        release.as_ref().map(|r| r.release.release_no).unwrap_or(0),
        if matches {
            "every statistic equals the ground truth"
        } else {
            "MISMATCH with the ground truth"
        }
    );
    println!(
        "every provider found study {DEMO_STUDY:?} by its directory id {id_hex} (record signed by \
         the coordinator, endorsed by the three parties, verified by each provider); no provider \
         read the network description"
    );
    println!(
        "contributions: {contribute_secs:.1} s ({:.0}/s); last contribution to verified release: {release_secs:.1} s",
        n as f64 / contribute_secs
    );
    if args.json {
        println!(
            "{}",
            json!({
                "providers": n,
                "accepted": accepted.len(),
                "released": included.len(),
                "awaiting_release": waiting,
                "results": got,
                "ground_truth": truth,
                "match": matches,
                "security": security,
                "seconds": t0.elapsed().as_secs_f64(),
                "contribute_seconds": contribute_secs,
                "release_wait_seconds": release_secs,
                "directory_id": id_hex,
                "discovered": true,
                "per_second": n as f64 / contribute_secs,
                "data_dir": dir,
            })
        );
    }
    serve_until_signalled(&mut devnet, args.exit).await?;
    if !matches {
        bail!("the release does not match the ground truth");
    }
    Ok(())
}

/// How the providers of [`contribute_all`] reach the study.
#[derive(Clone)]
pub enum Reach {
    /// Handed the network description (benchmarks).
    Network(Box<NetworkConfig>),
    /// Handed the study's directory id: each provider looks it up through
    /// `node` and builds its network description from the verified record,
    /// with the trust anchors it brings (the services' CA, checked against
    /// the record, and its data source's CA).
    Directory {
        node: NodeHandle,
        id: DirectoryId,
        ca: PathBuf,
        datasource_ca: Option<PathBuf>,
    },
}

impl Reach {
    /// The network description and the study's name, as one provider gets
    /// them.
    async fn study(&self) -> Result<(NetworkConfig, String), triad_client::ClientError> {
        match self {
            Reach::Network(net) => Ok((net.as_ref().clone(), DEMO_STUDY.to_string())),
            Reach::Directory {
                node,
                id,
                ca,
                datasource_ca,
            } => {
                let record = find_record_via(node, id, Kind::Study).await?;
                let net = network_from_record(&record, ca, datasource_ca.as_deref())?;
                Ok((net, record.body.name))
            }
        }
    }
}

/// What [`contribute_all`] saw.
pub struct Contributions<'a> {
    /// Accepted accounts with the batch that carried each.
    pub accepted: Vec<(&'a Account, u64)>,
    pub failures: Vec<String>,
    pub seconds: f64,
}

/// Every account contributes to the demo study, `concurrency` at a time,
/// through the real flow; a progress bar on a terminal, a line every few
/// seconds otherwise.
pub async fn contribute_all<'a>(
    reach: &Reach,
    http: &reqwest::Client,
    accounts: &'a [Account],
    concurrency: usize,
) -> anyhow::Result<Contributions<'a>> {
    let n = accounts.len();
    let started = Instant::now();
    let (done, accepted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let reach = Arc::new(reach.clone());
    let mut tasks = Vec::with_capacity(n);
    for a in accounts {
        let (reach, http, key) = (reach.clone(), http.clone(), a.api_key.clone());
        let (sem, done, accepted) = (sem.clone(), done.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = match reach.study().await {
                Ok((net, study)) => {
                    contribute(&net, &http, &study, &key, &ContributeOptions::default()).await
                }
                Err(e) => Err(e),
            };
            if matches!(&r, Ok(o) if o.accepted) {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            done.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    let tty = std::io::stderr().is_terminal();
    let ticker = {
        let (done, accepted) = (done.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let (d, a) = (done.load(Ordering::SeqCst), accepted.load(Ordering::SeqCst));
                if tty {
                    progress(d, n, a, started);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                } else {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    eprintln!("  {d}/{n} contributed, {a} accepted");
                }
            }
        })
    };
    let mut out = Contributions {
        accepted: Vec::new(),
        failures: Vec::new(),
        seconds: 0.0,
    };
    for (t, a) in tasks.into_iter().zip(accounts) {
        match t.await? {
            Ok(o) if o.accepted => match o.batch_id {
                Some(b) => out.accepted.push((a, b)),
                None => out
                    .failures
                    .push(format!("account {}: accepted without a batch id", a.uid)),
            },
            Ok(o) => out
                .failures
                .push(format!("account {}: rejected: {:?}", a.uid, o.reason)),
            Err(e) => out.failures.push(format!("account {}: {e}", a.uid)),
        }
    }
    ticker.abort();
    out.seconds = started.elapsed().as_secs_f64();
    if tty {
        progress(n, n, out.accepted.len(), started);
        eprintln!();
    }
    Ok(out)
}

/// Once `accepted` contributions are in (and no more come), waits for the
/// last release the rule allows: the one covering all of them, or, when
/// the latest release leaves fewer than `min_new` uncovered, that one (no
/// later release may come until `min_new` more contributions arrive).
/// Returns it (verified again here) and the seconds waited.
pub async fn wait_final_release(
    net: &NetworkConfig,
    http: &reqwest::Client,
    study: &str,
    accepted: u64,
    min_new: u64,
) -> anyhow::Result<(VerifiedRelease, f64)> {
    let from = Instant::now();
    loop {
        if let Ok(r) = latest_release(net, http, study).await {
            if r.release.count == accepted
                || accepted.saturating_sub(r.release.count) < min_new.max(1)
            {
                return Ok((r, from.elapsed().as_secs_f64()));
            }
        }
        if from.elapsed() > RELEASE_WAIT {
            bail!(
                "no release within {} s of the last of {accepted} contributions",
                RELEASE_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fx(v: i64) -> String {
    format!("{:.4}", v as f64 / 10f64.powi(SCALE as i32))
}

fn print_table(got: &StatsResult, want: &StatsResult) {
    let s = 10f64.powi(SCALE as i32);
    let mut rows: Vec<(String, String, String)> = vec![
        (
            "count".into(),
            got.count.to_string(),
            want.count.to_string(),
        ),
        (
            "sum (ETH)".into(),
            format!("{:.4}", got.sum as f64 / s),
            format!("{:.4}", want.sum as f64 / s),
        ),
        (
            "mean".into(),
            format!("{:.6}", got.derived.mean / s),
            format!("{:.6}", want.derived.mean / s),
        ),
        (
            "stddev".into(),
            format!("{:.6}", got.derived.stddev / s),
            format!("{:.6}", want.derived.stddev / s),
        ),
        ("min".into(), fx(got.min), fx(want.min)),
        (
            "median".into(),
            format!("{:.4}", got.derived.median / s),
            format!("{:.4}", want.derived.median / s),
        ),
        ("max".into(), fx(got.max), fx(want.max)),
    ];
    for ((q, g), (_, w)) in got.quantiles.iter().zip(&want.quantiles) {
        rows.push((format!("quantile {q}"), fx(*g), fx(*w)));
    }
    rows.push((
        "gini".into(),
        format!("{:.6}", got.derived.gini.unwrap_or(f64::NAN)),
        format!("{:.6}", want.derived.gini.unwrap_or(f64::NAN)),
    ));
    rows.push((
        "histogram".into(),
        format!("{:?}", got.histogram),
        format!("{:?}", want.histogram),
    ));
    println!(
        "{:<14} {:>28} {:>28}",
        "statistic", "released (MPC)", "ground truth"
    );
    for (k, g, w) in rows {
        let mark = if g == w { "" } else { "  <-- differs" };
        println!("{k:<14} {g:>28} {w:>28}{mark}");
    }
}
