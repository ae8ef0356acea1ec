//! `triad bench <op>`: protocol benchmarks over the in-memory transport or
//! three OS processes connected by mutual-TLS TCP on 127.0.0.1.
//!
//! Inputs come from a seeded dealer that every process re-derives, so each
//! party can also compute the plaintext answer and the opened result is
//! compared with it (`correct`). Timing starts after connection setup, seed
//! agreement and input sharing, with the parties aligned by one opening;
//! it covers the protocol only (the correctness opening is not timed).

use std::num::Wrapping;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use triad_mpc::network::MemNetwork;
use triad_mpc::protocols::{
    and, binary::unpack_bits, lt, mul, open, poseidon2, shuffle_bits, sort_order, verify,
};
use triad_mpc::share::share_plain;
use triad_mpc::{Bits, Fr, Network, Party, PartyId, Ring, Shares, Z128, Z64};
use triad_net::{Identity, TcpConfig, TcpNetwork};
use triad_stats::{StatsSpec, VALUE_BITS};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Mul,
    /// `--n` multiplications in the BN254 scalar field (checked in
    /// malicious mode; `mul` over Z_2^64 has no check).
    #[serde(rename = "mul-fr")]
    MulFr,
    /// `--n` AND gates on XOR-shared bits (64 per word): with
    /// `--security malicious`, what the check costs per gate.
    And,
    Cmp,
    Poseidon,
    Sort,
    Stats,
    /// One MACI state step over secret shares for N records, 4 options,
    /// quadratic voting (`triad_polls::mpc::apply_step`).
    #[serde(rename = "poll-step")]
    PollStep,
    /// A whole poll: `--voters` sign-ups, `--messages` messages, processed
    /// over shares and checked against the oracle (bench_poll.rs).
    Poll,
    Attest,
    /// Contributions end to end over a devnet (see bench_services.rs).
    Submit,
    /// One release over N stored contributions on a devnet.
    Release,
    /// The private directory: `--nodes` libp2p nodes in one process, a
    /// fraction `--malicious` colluding (passive, then dropping), the
    /// lookup arms of docs/directory.md.
    Directory,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Mem,
    Tcp,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    op: Op,
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Providers contributing at the same time (`submit`).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Sign-ups (`poll`).
    #[arg(long, default_value_t = 1_000)]
    voters: usize,
    /// Messages (`poll`; default: as many as `--voters`).
    #[arg(long)]
    messages: Option<usize>,
    /// Deactivations and re-keys in one epoch before the votes (`poll`;
    /// at most `--voters`).
    #[arg(long, default_value_t = 0)]
    rekeys: usize,
    /// Directory nodes (`directory`).
    #[arg(long, default_value_t = 1_000)]
    nodes: usize,
    /// Fraction of colluding directory nodes (`directory`).
    #[arg(long, default_value_t = 0.2)]
    malicious: f64,
    /// Lookups per arm (`directory`).
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Emulated one-way delay between the parties, in milliseconds (TCP
    /// transport; frames are held this long before they are written).
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// The one-way delay the parties assume when they choose between
    /// circuits with fewer rounds or fewer bytes (default: `--latency-ms`);
    /// a different value shows what a wrong assumption costs.
    #[arg(long)]
    model_latency_ms: Option<f64>,
    /// `malicious`: every AND is checked before anything is opened and
    /// openings are compared (ops without a check refuse to run). Default:
    /// `malicious` for the ops that have a malicious-secure version,
    /// `semi-honest` for the rest (`mul` over Z_2^64, `poll-step`, `poll`).
    /// `poll --security malicious` checks every phase of the tally and the
    /// re-keying; `poll-step --security malicious` runs the step over F_r,
    /// checked.
    #[arg(long, value_enum)]
    security: Option<SecurityArg>,
    /// A demonstration cheat: this party flips one bit in a message during
    /// the timed protocol. With `--security malicious` the run must abort
    /// and the bench exits non-zero naming the failed check.
    #[arg(long, value_enum)]
    cheat: Option<CheatArg>,
    /// `submit`, `release`: the devnet's services store in PostgreSQL,
    /// one database each on this server (see `triad devnet --postgres`).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

pub use triad_party::SecurityArg;

/// The security an op runs in unless `--security` says otherwise: malicious
/// wherever the op has a malicious-secure version.
fn default_security(op: Op) -> SecurityArg {
    match op {
        // Malicious `poll` checks every phase (several times slower):
        // opt-in, as for the parties (`triad party --poll-security`).
        Op::Mul | Op::PollStep | Op::Poll => SecurityArg::SemiHonest,
        Op::MulFr
        | Op::And
        | Op::Cmp
        | Op::Poseidon
        | Op::Sort
        | Op::Stats
        | Op::Attest
        | Op::Submit
        | Op::Release
        | Op::Directory => SecurityArg::Malicious,
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum CheatArg {
    Party0,
    Party1,
    Party2,
}

/// The message the cheating party tampers with: past the seed exchange and
/// the aligning opening, inside the timed protocol.
const CHEAT_MESSAGE: u64 = 8;

#[derive(Args, Debug)]
pub struct BenchPartyArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    id: usize,
    #[arg(long, value_enum)]
    op: Op,
    #[arg(long)]
    n: usize,
    #[arg(long)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    voters: usize,
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    model_latency_ms: f64,
    #[arg(long, value_enum, default_value_t = SecurityArg::SemiHonest)]
    security: SecurityArg,
    /// This party cheats (see `BenchArgs::cheat`).
    #[arg(long)]
    cheat: bool,
}

/// What one party measured.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartyReport {
    seconds: f64,
    bytes_sent: u64,
    correct: bool,
    /// Communication rounds of the timed part.
    #[serde(default)]
    rounds: u64,
    /// The party process's peak resident set (VmHWM); with the in-memory
    /// transport all three share one process.
    #[serde(default)]
    peak_rss_bytes: u64,
    /// Op-specific figures (`poll`: messages that passed phase 1, steps).
    #[serde(default)]
    extra: serde_json::Value,
    /// AND gates checked, check batches and the wall time of the checks
    /// (malicious mode).
    #[serde(default)]
    gates_checked: u64,
    /// F_r and GF(2^128) products (multiplications, dot products) checked.
    #[serde(default)]
    products_checked: u64,
    #[serde(default)]
    check_batches: u64,
    #[serde(default)]
    proof_seconds: f64,
}

/// VmHWM of this process, in bytes (0 where /proc is missing).
fn peak_rss() -> u64 {
    peak_rss_of("self")
}

/// VmHWM of process `pid` ("self" for this one), in bytes (0 where /proc
/// is missing).
pub(crate) fn peak_rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Which benchmark a party runs and on what.
#[derive(Clone, Copy)]
struct Job<'a> {
    op: Op,
    n: usize,
    seed: u64,
    voters: usize,
    latency: Duration,
    model_latency: Duration,
    dir: &'a Path,
    security: SecurityArg,
    /// The cheating party, if any.
    cheat: Option<usize>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let security = args.security.unwrap_or_else(|| default_security(args.op));
    match args.op {
        Op::Attest => return crate::notary_cli::bench_attest(args.n, args.json),
        Op::Submit => {
            return crate::bench_services::submit(
                args.n,
                args.concurrency,
                security,
                args.postgres.clone(),
                args.json,
            )
        }
        Op::Release => {
            return crate::bench_services::release(
                args.n,
                args.seed,
                security,
                args.postgres.clone(),
                args.json,
            )
        }
        Op::Directory => return directory(&args),
        _ => {}
    }
    let n = match args.op {
        Op::Poll => args.messages.unwrap_or(args.voters),
        _ => args.n,
    };
    if args.op == Op::Poll && args.voters == 0 {
        bail!("--voters must be at least 1");
    }
    if n == 0 {
        bail!("--n (or --messages) must be at least 1");
    }
    let model_ms = args.model_latency_ms.unwrap_or(args.latency_ms);
    if !(0.0..=10_000.0).contains(&args.latency_ms) || !(0.0..=10_000.0).contains(&model_ms) {
        bail!("--latency-ms and --model-latency-ms must be between 0 and 10000");
    }
    if args.latency_ms > 0.0 && args.transport == Transport::Mem {
        bail!("--latency-ms needs the TCP transport");
    }
    let dir = private_dir()?;
    let reports = (|| {
        if args.op == Op::Poll {
            crate::bench_poll::prepare(&dir, args.voters, n, args.rekeys, args.seed)?;
        }
        let job = Job {
            op: args.op,
            n,
            seed: args.seed,
            voters: args.voters,
            latency: Duration::from_secs_f64(args.latency_ms / 1e3),
            model_latency: Duration::from_secs_f64(model_ms / 1e3),
            dir: &dir,
            security,
            cheat: args.cheat.map(|c| c as usize),
        };
        match args.transport {
            Transport::Mem => run_mem(job),
            Transport::Tcp => run_tcp(job),
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let reports = reports?;
    let args = BenchArgs { n, ..args };
    let seconds = reports.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let bytes = reports.iter().map(|r| r.bytes_sent).max().unwrap_or(0);
    let correct = reports.iter().all(|r| r.correct);
    let peak_rss = reports.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0);
    let rounds = reports.iter().map(|r| r.rounds).max().unwrap_or(0);
    let gates_checked = reports.iter().map(|r| r.gates_checked).max().unwrap_or(0);
    let check_batches = reports.iter().map(|r| r.check_batches).max().unwrap_or(0);
    let products_checked = reports
        .iter()
        .map(|r| r.products_checked)
        .max()
        .unwrap_or(0);
    let proof_seconds = reports.iter().map(|r| r.proof_seconds).fold(0.0, f64::max);
    let per_second = args.n as f64 / seconds;
    println!(
        "{:?} n={} over {:?}: {:.3} s ({:.0} per second), {:.1} MB sent per party, {} rounds, peak RSS {:.0} MB, correct: {}",
        args.op,
        args.n,
        args.transport,
        seconds,
        per_second,
        bytes as f64 / 1e6,
        rounds,
        peak_rss as f64 / 1e6,
        correct
    );
    if security == SecurityArg::Malicious && gates_checked + products_checked > 0 {
        println!(
            "checks: {gates_checked} AND gates and {products_checked} field products in {check_batches} batches, {proof_seconds:.3} s of proof and checks per party ({:.1} ns per AND gate, all checks included)",
            proof_seconds * 1e9 / gates_checked.max(1) as f64
        );
    }
    if args.json {
        let mut line = serde_json::json!({
            "bench": args.op, "n": args.n, "transport": args.transport,
            "seconds": seconds, "per_second": per_second,
            "bytes_sent_per_party": bytes, "correct": correct,
            "peak_rss_bytes": peak_rss, "rounds": rounds,
            "latency_ms": args.latency_ms, "model_latency_ms": model_ms,
            "security": security, "gates_checked": gates_checked,
            "products_checked": products_checked,
            "check_batches": check_batches, "proof_seconds": proof_seconds,
            "proof_ns_per_gate": if gates_checked > 0 { proof_seconds * 1e9 / gates_checked as f64 } else { 0.0 },
        });
        if args.op == Op::Poll {
            line["voters"] = args.voters.into();
            line["messages"] = args.n.into();
            line["rekeys"] = args.rekeys.into();
            if let Some(serde_json::Value::Object(extra)) = reports.first().map(|r| r.extra.clone())
            {
                line.as_object_mut().expect("an object").extend(extra);
            }
        }
        println!("{line}");
    }
    if !correct {
        bail!("the opened result differs from the plaintext oracle");
    }
    Ok(())
}

fn run_mem(job: Job) -> Result<Vec<PartyReport>> {
    let nets = MemNetwork::triple(Duration::from_secs(600));
    let outcomes: Vec<Result<PartyReport>> = std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .enumerate()
            .map(|(i, net)| {
                s.spawn(move || -> Result<PartyReport> {
                    party_main(cheating(Box::new(net), job.cheat == Some(i)), job)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("party thread panicked"))?)
            .collect()
    });
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Ok(r) => reports.push(r),
            Err(e) => failures.push(format!("party {i}: {e:#}")),
        }
    }
    if failures.is_empty() {
        Ok(reports)
    } else {
        bail!("{}", failures.join("; "))
    }
}

/// The demonstration cheat: one bit of one message flipped.
fn cheating(net: Box<dyn Network>, cheat: bool) -> Box<dyn Network> {
    if cheat {
        let fault = triad_mpc::testing::Fault::Flip { at: 0, mask: 1 };
        Box::new(triad_mpc::testing::FaultyNetwork::new(
            net,
            fault,
            CHEAT_MESSAGE,
        ))
    } else {
        net
    }
}

/// A fresh private directory for the parties' keys and inputs: `create`
/// fails if the path exists, so nobody can pre-plant files there.
fn private_dir() -> Result<PathBuf> {
    let nonce: u64 = rand::random();
    let dir = std::env::temp_dir().join(format!("triad-bench-{}-{nonce:016x}", std::process::id()));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

fn run_tcp(job: Job) -> Result<Vec<PartyReport>> {
    let Job {
        op,
        n,
        seed,
        voters,
        latency,
        model_latency,
        dir,
        security,
        cheat,
    } = job;
    for i in 0..3 {
        let id = Identity::generate(&format!("party-{i}"))?;
        triad_files::write_private(&dir.join(format!("cert-{i}.der")), &id.cert_der)?;
        triad_files::write_private(&dir.join(format!("key-{i}.der")), &id.key_der)?;
    }
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..3 {
        let child = Command::new(&exe)
            .args(["bench-party", "--dir"])
            .arg(dir)
            .args([
                "--id",
                &i.to_string(),
                "--n",
                &n.to_string(),
                "--seed",
                &seed.to_string(),
                "--voters",
                &voters.to_string(),
                "--latency-ms",
                &(latency.as_secs_f64() * 1e3).to_string(),
                "--model-latency-ms",
                &(model_latency.as_secs_f64() * 1e3).to_string(),
            ])
            .args(["--op", op.to_possible_value().unwrap().get_name()])
            .args([
                "--security",
                security.to_possible_value().unwrap().get_name(),
            ])
            .args(if cheat == Some(i) {
                &["--cheat"][..]
            } else {
                &[]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                // Do not leave the parties already started waiting for peers.
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e).context("spawning a bench party");
            }
        }
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().last().map(serde_json::from_str::<PartyReport>) {
            Some(Ok(r)) if out.status.success() => reports.push(r),
            _ => {
                // The party's own error (its last line on stderr) names
                // what failed, e.g. the check that caught a cheater.
                let err = String::from_utf8_lossy(&out.stderr);
                let why = err
                    .lines()
                    .find_map(|l| l.strip_prefix("Error: "))
                    .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
                    .unwrap_or("");
                failures.push(format!("party {i} failed ({}): {why}", out.status));
            }
        }
    }
    if failures.is_empty() {
        Ok(reports)
    } else {
        bail!("{}", failures.join("; "))
    }
}

/// One party of a TCP benchmark: publish our address, find the others',
/// connect, run, print the report as JSON.
pub fn run_party(args: BenchPartyArgs) -> Result<()> {
    let id = PartyId::new(args.id).ok_or_else(|| anyhow!("--id must be 0, 1 or 2"))?;
    let dir = &args.dir;
    let read = |name: String| std::fs::read(dir.join(name));
    let certs: [Vec<u8>; 3] = [
        read("cert-0.der".into())?,
        read("cert-1.der".into())?,
        read("cert-2.der".into())?,
    ];
    let identity = Identity {
        cert_der: certs[args.id].clone(),
        key_der: read(format!("key-{}.der", args.id))?,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    publish(dir, args.id, &listener.local_addr()?.to_string())?;
    let mut addrs = [listener.local_addr()?; 3];
    for (j, a) in addrs.iter_mut().enumerate() {
        if j != args.id {
            *a = wait_for(dir, j)?.parse()?;
        }
    }
    let latency = Duration::from_secs_f64(args.latency_ms / 1e3);
    let mut cfg = TcpConfig::new(id, identity, certs, addrs);
    cfg.latency = latency;
    let net = TcpNetwork::establish(cfg, listener)?;
    let job = Job {
        op: args.op,
        n: args.n,
        seed: args.seed,
        voters: args.voters,
        latency,
        model_latency: Duration::from_secs_f64(args.model_latency_ms / 1e3),
        dir,
        security: args.security,
        cheat: args.cheat.then_some(args.id),
    };
    let report = party_main(cheating(Box::new(net), args.cheat), job)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn publish(dir: &Path, id: usize, addr: &str) -> Result<()> {
    Ok(triad_files::write_private(
        &dir.join(format!("addr-{id}")),
        addr.as_bytes(),
    )?)
}

fn wait_for(dir: &Path, id: usize) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join(format!("addr-{id}"))) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("party {id} did not publish its address");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deals `values` from the seeded dealer and keeps this party's shares.
fn deal<T: Ring>(values: &[T], rng: &mut StdRng, id: PartyId) -> Shares<T> {
    let [a, b, c] = share_plain(values, rng);
    [a, b, c].into_iter().nth(id.index()).unwrap()
}

fn party_main(net: Box<dyn Network>, job: Job) -> Result<PartyReport> {
    let (mut r, checks) = party_run(net, job)?;
    r.peak_rss_bytes = peak_rss();
    r.gates_checked = checks.gates;
    r.products_checked = checks.products;
    r.check_batches = checks.batches;
    r.proof_seconds = checks.proof_seconds;
    Ok(r)
}

fn party_run(
    net: Box<dyn Network>,
    job: Job,
) -> Result<(PartyReport, triad_mpc::protocols::dzkp::CheckStats)> {
    let mut p = Party::setup(net)?;
    p.link = triad_mpc::LinkModel::with_delay(job.model_latency);
    p.security = job.security.mode();
    let report = party_ops(&mut p, job)?;
    Ok((report, p.checks))
}

fn party_ops(p: &mut Party, job: Job) -> Result<PartyReport> {
    let Job { op, n, seed, .. } = job;
    let id = p.id;
    let mut rng = StdRng::seed_from_u64(seed);
    // `run` returns the time and whether the opened result is right.
    // `time` runs `f`, returns the time and whether the opened result is
    // right, and records the rounds `f` took in `p.rounds`' delta.
    let rounds = std::cell::Cell::new(0u64);
    let time =
        |p: &mut Party, f: &mut dyn FnMut(&mut Party) -> Result<bool>| -> Result<(f64, bool)> {
            open(p, &Shares::<Z64>::zeros(1))?; // align the parties
            let (start, before) = (Instant::now(), p.rounds);
            let ok = f(p)?;
            let secs = start.elapsed().as_secs_f64();
            rounds.set(p.rounds - before);
            Ok((secs, ok))
        };
    let (seconds, correct, bytes_before);
    match op {
        Op::Mul => {
            let x: Vec<Z64> = (0..n).map(|_| Wrapping(rng.gen())).collect();
            let y: Vec<Z64> = (0..n).map(|_| Wrapping(rng.gen())).collect();
            let (xs, ys) = (deal(&x, &mut rng, id), deal(&y, &mut rng, id));
            bytes_before = p.net.stats().bytes_sent;
            let mut z = Shares::<Z64>::new(Vec::new(), Vec::new());
            (seconds, _) = time(p, &mut |p| {
                z = mul(p, &xs, &ys)?;
                Ok(true)
            })?;
            let sent = p.net.stats().bytes_sent;
            correct = open(p, &z)? == x.iter().zip(&y).map(|(a, b)| a * b).collect::<Vec<_>>();
            return Ok(PartyReport {
                seconds,
                bytes_sent: sent - bytes_before,
                correct,
                rounds: rounds.get(),
                ..Default::default()
            });
        }
        Op::MulFr => {
            let x: Vec<Fr> = (0..n).map(|_| Fr::from(rng.gen::<u64>())).collect();
            let y: Vec<Fr> = (0..n).map(|_| Fr::from(rng.gen::<u64>())).collect();
            let (xs, ys) = (deal(&x, &mut rng, id), deal(&y, &mut rng, id));
            bytes_before = p.net.stats().bytes_sent;
            (seconds, correct) = time(p, &mut |p| {
                let z = mul(p, &xs, &ys)?;
                verify(p)?;
                Ok(open(p, &z)? == x.iter().zip(&y).map(|(a, b)| *a * *b).collect::<Vec<_>>())
            })?;
        }
        Op::And => {
            let words = n.div_ceil(64);
            let x: Vec<Bits> = (0..words).map(|_| Bits(rng.gen())).collect();
            let y: Vec<Bits> = (0..words).map(|_| Bits(rng.gen())).collect();
            let (xs, ys) = (deal(&x, &mut rng, id), deal(&y, &mut rng, id));
            bytes_before = p.net.stats().bytes_sent;
            (seconds, correct) = time(p, &mut |p| {
                let z = and(p, &xs, &ys)?;
                verify(p)?;
                Ok(open(p, &z)? == x.iter().zip(&y).map(|(a, b)| *a * *b).collect::<Vec<_>>())
            })?;
        }
        Op::Cmp => {
            let x: Vec<Z64> = (0..n).map(|_| Wrapping(rng.gen::<u64>() >> 1)).collect();
            let y: Vec<Z64> = (0..n)
                .map(|k| {
                    if k % 10 == 0 {
                        x[k]
                    } else {
                        Wrapping(rng.gen::<u64>() >> 1)
                    }
                })
                .collect();
            let (xs, ys) = (deal(&x, &mut rng, id), deal(&y, &mut rng, id));
            bytes_before = p.net.stats().bytes_sent;
            (seconds, correct) = time(p, &mut |p| {
                let c = lt(p, &xs, &ys, 63)?;
                let got = unpack_bits(&open(p, &c)?, n);
                Ok(got
                    .iter()
                    .zip(x.iter().zip(&y))
                    .all(|(g, (a, b))| *g == (a < b)))
            })?;
        }
        Op::Poseidon => {
            let a: Vec<Fr> = (0..n).map(|_| Fr::from(rng.gen::<u64>())).collect();
            let b: Vec<Fr> = (0..n).map(|_| Fr::from(rng.gen::<u64>())).collect();
            let (sa, sb) = (deal(&a, &mut rng, id), deal(&b, &mut rng, id));
            bytes_before = p.net.stats().bytes_sent;
            let mut h = Shares::default();
            (seconds, _) = time(p, &mut |p| {
                h = poseidon2(p, &sa, &sb)?;
                Ok(true)
            })?;
            let sent = p.net.stats().bytes_sent;
            let got = open(p, &h)?;
            correct = got
                .iter()
                .zip(a.iter().zip(&b))
                .all(|(g, (x, y))| *g == triad_crypto::poseidon2(*x, *y));
            return Ok(PartyReport {
                seconds,
                bytes_sent: sent - bytes_before,
                correct,
                rounds: rounds.get(),
                ..Default::default()
            });
        }
        Op::Sort => {
            let v: Vec<u64> = (0..n).map(|_| rng.gen_range(0..1u64 << 48)).collect();
            let t = usize::BITS - (n.max(2) - 1).leading_zeros();
            let keys: Vec<u128> = v
                .iter()
                .enumerate()
                .map(|(i, &x)| ((x as u128) << t) | i as u128)
                .collect();
            let col = |c: u32| -> Vec<Bits> {
                keys.iter().map(|k| Bits((k >> (64 * c)) as u64)).collect()
            };
            let cols = [deal(&col(0), &mut rng, id), deal(&col(1), &mut rng, id)];
            let mut want = keys.clone();
            want.sort_unstable();
            bytes_before = p.net.stats().bytes_sent;
            (seconds, correct) = time(p, &mut |p| {
                // Malicious-secure in malicious mode (tags checked before
                // the first comparison is opened).
                let s = shuffle_bits(p, &cols)?;
                let order = sort_order(p, &s, 48 + t)?;
                let lo = open(p, &s[0].gather(&order))?;
                let hi = open(p, &s[1].gather(&order))?;
                Ok(lo
                    .iter()
                    .zip(&hi)
                    .map(|(a, b)| a.0 as u128 | (b.0 as u128) << 64)
                    .eq(want.iter().copied()))
            })?;
        }
        Op::Stats => {
            const { assert!(VALUE_BITS >= 48) };
            // Skewed magnitudes up to 2^48 (balances), with duplicates.
            let v: Vec<i64> = (0..n)
                .map(|k| {
                    let bits = rng.gen_range(1..=48);
                    if k % 7 == 0 {
                        1_000_000
                    } else {
                        rng.gen_range(0..1i64 << bits)
                    }
                })
                .collect();
            let spec = StatsSpec {
                quantiles: vec![0.1, 0.25, 0.75, 0.9, 0.99],
                histogram_bounds: (0..10).map(|j| 1i64 << (5 * j)).collect(),
            };
            let x: Vec<Z128> = v.iter().map(|&a| Wrapping(a as i128 as u128)).collect();
            let xs = deal(&x, &mut rng, id);
            let want = triad_stats::oracle(&v, &spec)?;
            bytes_before = p.net.stats().bytes_sent;
            (seconds, correct) = time(p, &mut |p| {
                let got = triad_stats::compute(p, &xs, &spec)?;
                Ok(triad_stats::agrees(&got, &want).is_ok())
            })?;
        }
        Op::PollStep => {
            // Semi-honest over Z_2^128 (what a poll's scan runs); malicious
            // over F_r, the check included in the time.
            let (seconds, correct, bytes_sent) = match p.security {
                triad_mpc::Security::SemiHonest => {
                    poll_step::<Z128>(p, n, &mut rng, &mut |p, f| time(p, f))?
                }
                triad_mpc::Security::Malicious => {
                    poll_step::<triad_mpc::Fr>(p, n, &mut rng, &mut |p, f| time(p, f))?
                }
            };
            return Ok(PartyReport {
                seconds,
                bytes_sent,
                correct,
                rounds: rounds.get(),
                ..Default::default()
            });
        }
        Op::Poll => {
            bytes_before = p.net.stats().bytes_sent;
            let (secs, out) = crate::bench_poll::party(p, job.dir, seed, &mut |p, f| time(p, f))?;
            return Ok(PartyReport {
                seconds: secs,
                bytes_sent: p.net.stats().bytes_sent - bytes_before,
                correct: out.correct,
                rounds: rounds.get(),
                extra: serde_json::json!({
                    "well_formed": out.well_formed,
                    "steps": out.steps,
                    "rekey_seconds": out.rekey_seconds,
                }),
                ..Default::default()
            });
        }
        Op::Attest | Op::Submit | Op::Release | Op::Directory => {
            bail!("{op:?} is not a three-party benchmark")
        }
    }
    let bytes_sent = p.net.stats().bytes_sent - bytes_before;
    Ok(PartyReport {
        seconds,
        bytes_sent,
        correct,
        rounds: rounds.get(),
        ..Default::default()
    })
}

/// `triad bench directory`: the simulation twice on fresh networks
/// (passive adversaries, then droppers); one JSON line per arm and run,
/// then the whole report as the last line.
fn directory(args: &BenchArgs) -> Result<()> {
    if args.nodes < 8 || !(0.0..0.9).contains(&args.malicious) || args.lookups == 0 {
        bail!("--nodes must be at least 8, --malicious in [0, 0.9), --lookups at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for active in [false, true] {
        let cfg = triad_directory::sim::SimConfig {
            nodes: args.nodes,
            malicious: args.malicious,
            lookups: args.lookups,
            active,
            ..Default::default()
        };
        let report = rt
            .block_on(triad_directory::sim::run(&cfg))
            .map_err(|e| anyhow::anyhow!("directory simulation: {e}"))?;
        for a in &report.arms {
            println!("{}", serde_json::to_string(a)?);
        }
        runs.push(report);
    }
    let summary = serde_json::json!({ "bench": "directory", "runs": runs });
    if args.json {
        println!("{summary}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// A bench number system for `poll-step`: the step's ring or field, with
/// the way back to the plaintext.
trait StepNum: triad_polls::mpc::step::StepRing {
    fn back(&self) -> u128;
}

impl StepNum for Z128 {
    fn back(&self) -> u128 {
        self.0
    }
}

impl StepNum for triad_mpc::Fr {
    fn back(&self) -> u128 {
        triad_crypto::fr_to_u128(self).unwrap_or(u128::MAX)
    }
}

/// `bench poll-step` over `T`: the time (with the check in malicious
/// mode), whether the opened verdicts and balances match the plaintext
/// rule, and the bytes sent while timed.
fn poll_step<T: StepNum>(
    p: &mut Party,
    n: usize,
    rng: &mut StdRng,
    time: &mut crate::bench_poll::Timer,
) -> Result<(f64, bool, u64)> {
    use triad_polls::mpc::{apply_plain, apply_step, PlainState, StepInput};
    const V: usize = 4;
    /// State, phase 1's verdict, message (nonce, option, weight).
    type Case = (PlainState, bool, u64, u64, u64);
    // Reachable states (balance + Σ cost(votes) < 2^64) and messages
    // of which about half are valid.
    let cases: Vec<Case> = (0..n)
        .map(|_| {
            let votes: Vec<u64> = (0..V).map(|_| rng.gen_range(0..10)).collect();
            let s = PlainState {
                nonce: rng.gen_range(0..5),
                balance: rng.gen_range(0..500),
                votes,
            };
            let nonce = s.nonce + u64::from(rng.gen_bool(0.9));
            let key_ok = rng.gen_bool(0.9);
            (
                s,
                key_ok,
                nonce,
                rng.gen_range(0..V as u64 + 1),
                rng.gen_range(0..25),
            )
        })
        .collect();
    let id = p.id;
    let mut col = |f: &dyn Fn(&Case) -> u64| {
        deal(
            &cases.iter().map(|c| T::from_u64(f(c))).collect::<Vec<_>>(),
            rng,
            id,
        )
    };
    let nonce = col(&|c| c.0.nonce);
    let balance = col(&|c| c.0.balance);
    let votes: Vec<Shares<T>> = (0..V).map(|j| col(&|c| c.0.votes[j])).collect();
    let msg_nonce = col(&|c| c.2);
    let msg_option = col(&|c| c.3);
    let msg_weight = col(&|c| c.4);
    let mut words = vec![triad_mpc::Bits(0); n.div_ceil(64).max(1)];
    for (k, c) in cases.iter().enumerate() {
        words[k / 64].0 |= u64::from(c.1) << (k % 64);
    }
    let key_ok = deal(&words, rng, id);
    let input = StepInput {
        nonce,
        balance,
        votes,
        key_ok,
        msg_nonce,
        msg_option,
        msg_weight,
        tested: None,
    };
    let bytes_before = p.net.stats().bytes_sent;
    let mut out = None;
    let (seconds, _) = time(p, &mut |p| {
        out = Some(apply_step(p, triad_polls::Mode::Quadratic, &input)?);
        triad_mpc::protocols::verify(p)?;
        Ok(true)
    })?;
    let sent = p.net.stats().bytes_sent;
    let out = out.context("the step ran")?;
    let valid = unpack_bits(&open(p, &out.valid)?, n);
    let balance = open(p, &out.balance)?;
    let correct = cases.iter().enumerate().all(|(k, c)| {
        let (ok, next) = apply_plain(triad_polls::Mode::Quadratic, &c.0, c.1, c.2, c.3, c.4);
        ok == valid[k] && u128::from(next.balance) == balance[k].back()
    });
    Ok((seconds, correct, sent - bytes_before))
}
