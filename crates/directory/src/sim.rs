//! The directory simulation behind `triad bench directory`
//! (docs/directory.md, "Measured"): `nodes` real libp2p nodes in one
//! process on the in-memory transport (noise, yamux), a fraction of them
//! colluding adversaries, `records` studies published, and the same
//! lookups run in four arms:
//!
//! * `plain`: the reader walks to the record's key itself and asks the
//!   closest peers for it (what plain Kademlia does);
//! * `prefix`: IPIP-373 double hashing and a prefix lookup by the reader;
//! * `onion`: the prefix lookup through three Sphinx relays;
//! * `onion_delay_cover`: the same with per-hop delays and cover lookups.
//!
//! The adversary's view is what its nodes logged ([`Observation`]) plus,
//! for the kad walks (libp2p-kad does not report who sent a FIND_NODE),
//! the probability `1 − (1 − F)^m` that one of the `m` peers a walk asked
//! was one of its nodes. Metrics follow the issue: success rate, the
//! requester anonymity degree of Díaz et al. ("Towards measuring
//! anonymity", PET 2002: `d = H(X) / log2(honest nodes)`) with linking by
//! timing and with perfect linking, the probability of naming the right
//! requester–study pair, candidate set sizes, and latency and bytes
//! against plain kad in the same run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::{identity, PeerId};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::derive::{kad_position, DirectoryId};
use crate::envelope::{open, seal, ENVELOPE_SIZE};
use crate::node::{
    onion_lookup, spawn_node_as, steering_preimage, Clock, Listen, NodeHandle, Observation,
    OnionOptions, PrefixAnswer, PrefixRequest, RelayRole, Role, MEMORY_BYTES,
};
use crate::record::{example_body, Kind, ServiceRecord};
use crate::SigningKey;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    /// Fraction of the nodes that collude.
    pub malicious: f64,
    pub lookups: usize,
    /// Records published; by default 30 per prefix of the chosen length.
    pub records: Option<usize>,
    /// Adversaries also drop onion packets, store nothing and answer
    /// prefix requests with nothing.
    pub active: bool,
    /// Lookups in flight at once (what timing linking has to untangle).
    pub concurrency: usize,
    /// Mean per-hop delay and cover lookups of the last arm.
    pub hop_delay: Duration,
    pub cover: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 50,
            malicious: 0.2,
            lookups: 40,
            records: None,
            active: false,
            concurrency: 8,
            hop_delay: Duration::from_millis(20),
            cover: 2,
        }
    }
}

/// One arm's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ArmReport {
    pub arm: String,
    pub adversary: &'static str,
    pub lookups: usize,
    pub success_rate: f64,
    pub requester_anonymity: Anonymity,
    pub exact_identification: f64,
    pub exact_identification_perfect_linking: f64,
    pub candidates_p1: usize,
    pub candidates_median: usize,
    pub attempts_mean: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub bytes_per_lookup: f64,
    pub latency_ratio: f64,
    pub bytes_ratio: f64,
}

/// The Díaz degree over lookups.
#[derive(Clone, Debug, Serialize)]
pub struct Anonymity {
    pub mean: f64,
    pub p5: f64,
    pub perfect_linking_mean: f64,
    pub perfect_linking_p5: f64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub malicious: f64,
    pub honest: usize,
    pub records: usize,
    pub prefix_bits: u8,
    pub setup_s: f64,
    pub arms: Vec<ArmReport>,
}

/// Replication factor of libp2p-kad (its default `k`).
const K: usize = 20;
const NOW: u64 = 1_800_000_000;

struct Net {
    nodes: Vec<NodeHandle>,
    bad: HashSet<PeerId>,
    honest: Vec<usize>,
}

fn kad_key(p: &PeerId) -> [u8; 32] {
    Sha256::digest(p.to_bytes()).into()
}

/// Starts the nodes and fills each routing table as a long-running
/// network would have: up to `K` peers per k-bucket.
async fn start(cfg: &SimConfig) -> Result<Net, String> {
    let clock: Clock = Arc::new(|| NOW);
    let n_bad = (cfg.nodes as f64 * cfg.malicious).round() as usize;
    let mut nodes = Vec::with_capacity(cfg.nodes);
    for i in 0..cfg.nodes {
        let role = if i < n_bad && cfg.active {
            Role::Dropper
        } else {
            Role::Honest
        };
        let key = identity::Keypair::generate_ed25519();
        nodes.push(spawn_node_as(Listen::MemoryPlaintext, key, clock.clone(), role).await?);
    }
    let bad: HashSet<PeerId> = nodes[..n_bad].iter().map(|n| n.peer_id).collect();
    let keys: Vec<[u8; 32]> = nodes.iter().map(|n| kad_key(&n.peer_id)).collect();
    let mut order: Vec<usize> = (0..cfg.nodes).collect();
    for (i, node) in nodes.iter().enumerate() {
        order.shuffle(&mut rand::thread_rng());
        let mut buckets: HashMap<u32, usize> = HashMap::new();
        let mut peers = Vec::new();
        for &j in &order {
            if j == i {
                continue;
            }
            let d: Vec<u8> = keys[i].iter().zip(&keys[j]).map(|(a, b)| a ^ b).collect();
            let lz = leading_zeros(&d);
            let c = buckets.entry(lz).or_default();
            if *c < K {
                *c += 1;
                peers.push((nodes[j].peer_id, nodes[j].addr.clone()));
            }
        }
        node.add_peers(peers).await?;
    }
    let honest = (n_bad..cfg.nodes).collect();
    Ok(Net { nodes, bad, honest })
}

fn leading_zeros(d: &[u8]) -> u32 {
    let mut n = 0;
    for b in d {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// The prefix length for `nodes`: a prefix's region holds at most `K`
/// nodes, so each of them stores every record under the prefix.
pub fn prefix_bits_for(nodes: usize) -> u8 {
    let mut l = 1u8;
    while (nodes as f64) / f64::from(1u32 << l) > K as f64 {
        l += 1;
    }
    l
}

struct Published {
    id: DirectoryId,
    record: ServiceRecord,
}

async fn publish(net: &Net, count: usize) -> Result<Vec<Published>, String> {
    let mut out = Vec::with_capacity(count);
    let t0 = Instant::now();
    for (c, chunk) in (0..count).collect::<Vec<_>>().chunks(64).enumerate() {
        if c % 5 == 0 {
            tracing::info!(
                published = c * 64,
                of = count,
                secs = t0.elapsed().as_secs_f64(),
                "publishing"
            );
        }
        let mut tasks = Vec::new();
        for &k in chunk {
            let coordinator = SigningKey::from_seed(seed(k, 1));
            let parties = [2, 3, 4].map(|j| SigningKey::from_seed(seed(k, j)));
            let salt: [u8; 16] = seed(k, 5)[..16].try_into().expect("16 bytes");
            let mut body = example_body(&coordinator, &parties, salt, NOW - 10);
            body.name = format!("study-{k}");
            let id = body.id().map_err(|e| e.to_string())?;
            let mut record = ServiceRecord::sign(body, &coordinator);
            for (i, p) in parties.iter().enumerate() {
                record.endorse(i, p);
            }
            let env = seal(&record, &id, &coordinator, NOW).map_err(|e| e.to_string())?;
            let via = net.nodes[net.honest[k % net.honest.len()]].clone();
            tasks.push(tokio::spawn(async move {
                // A put reaches fewer than k nodes now and then; retry once.
                if via.publish(id.dht_key(), env.clone()).await.is_err() {
                    let _ = via.publish(id.dht_key(), env).await;
                }
            }));
            out.push(Published { id, record });
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

fn seed(k: usize, j: u8) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"triad/sim");
    h.update((k as u64).to_be_bytes());
    h.update([j]);
    h.finalize().into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arm {
    Plain,
    Prefix,
    Onion,
    OnionDelayCover,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Plain => "plain",
            Arm::Prefix => "prefix",
            Arm::Onion => "onion",
            Arm::OnionDelayCover => "onion_delay_cover",
        }
    }
}

/// What one lookup did, for the adversary model.
struct Outcome {
    ok: bool,
    latency: Duration,
    started: Instant,
    requester: PeerId,
    /// Peers the reader itself asked (prefix or exact requests).
    asked: Vec<PeerId>,
    /// Requests sent by the reader's own kad walks.
    walk_requests: u32,
    candidates: usize,
    routes: Vec<[PeerId; 3]>,
}

async fn direct_lookup(
    via: &NodeHandle,
    target: &Published,
    bits: u8,
    exact: bool,
) -> (bool, Vec<PeerId>, u32, usize) {
    let key = target.id.dht_key();
    let position = kad_position(&key);
    let request = PrefixRequest::of(&position, if exact { 32 } else { bits });
    let preimage = if exact {
        key.to_vec()
    } else {
        steering_preimage(&position, bits)
    };
    let Ok((peers, walk)) = via.closest_counted(preimage).await else {
        return (false, Vec::new(), 0, 0);
    };
    let mut asked = Vec::new();
    let mut seen = HashSet::new();
    // Plain kad asks one peer after another until one has the record; the
    // prefix arm asks three at a time and merges.
    let batch = if exact { 1 } else { 3 };
    let mut found = false;
    for group in peers.chunks(batch) {
        for p in group {
            asked.push(*p);
            if let Ok(PrefixAnswer::Envelopes(envs)) = via.ask_prefix(*p, request).await {
                for e in envs {
                    if e.len() == ENVELOPE_SIZE {
                        seen.insert(e[3..35].to_vec());
                        found |= e[3..35] == key
                            && open(&e, &target.id, Kind::Study, NOW, None)
                                .is_ok_and(|r| r == target.record);
                    }
                }
            }
        }
        if found {
            break;
        }
    }
    (found, asked, walk, seen.len())
}

async fn run_arm(
    net: &Net,
    records: &Arc<Vec<Published>>,
    plan: &[(usize, usize)],
    arm: Arm,
    bits: u8,
    cfg: &SimConfig,
) -> Vec<Outcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let mut tasks = Vec::new();
    for &(who, what) in plan {
        let via = net.nodes[who].clone();
        let records = records.clone();
        let sem = sem.clone();
        let opts = OnionOptions {
            bits,
            retries: 6,
            // About three times the p95 of an undisturbed lookup here: a
            // lost packet costs one timeout, not the lookup.
            timeout: if arm == Arm::OnionDelayCover {
                Duration::from_millis(2500)
            } else {
                Duration::from_millis(1000)
            },
            hop_delay: (arm == Arm::OnionDelayCover).then_some(cfg.hop_delay),
            cover: if arm == Arm::OnionDelayCover {
                cfg.cover
            } else {
                0
            },
        };
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let target = &records[what];
            let started = Instant::now();
            let mut o = Outcome {
                ok: false,
                latency: Duration::ZERO,
                started,
                requester: via.peer_id,
                asked: Vec::new(),
                walk_requests: 0,
                candidates: 0,
                routes: Vec::new(),
            };
            match arm {
                Arm::Plain | Arm::Prefix => {
                    let (ok, asked, walk, cands) =
                        direct_lookup(&via, target, bits, arm == Arm::Plain).await;
                    o.ok = ok;
                    o.asked = asked;
                    o.walk_requests = walk;
                    o.candidates = if arm == Arm::Plain { 1 } else { cands };
                }
                Arm::Onion | Arm::OnionDelayCover => {
                    let r = onion_lookup(&via, &target.id, Kind::Study, &opts, NOW, None).await;
                    match r {
                        Ok((rec, stats)) => {
                            o.ok = rec == target.record;
                            o.candidates = stats.candidates;
                            o.routes = stats.routes;
                        }
                        Err(_) => o.routes = Vec::new(),
                    }
                }
            }
            o.latency = started.elapsed();
            o
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(o) = t.await {
            out.push(o);
        }
    }
    out
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The Díaz degree of a distribution over `h` honest nodes in which
/// `set` shares mass `w` evenly and the rest share `1 − w` evenly.
fn degree(h: usize, set: usize, w: f64) -> f64 {
    if h <= 1 {
        return 0.0;
    }
    let rest = h.saturating_sub(set);
    let mut ent = 0.0;
    let mut add = |count: usize, mass: f64| {
        if count > 0 && mass > 0.0 {
            let p = mass / count as f64;
            ent -= count as f64 * p * p.log2();
        }
    };
    if rest == 0 {
        add(set, 1.0);
    } else {
        add(set, w);
        add(rest, 1.0 - w);
    }
    ent / (h as f64).log2()
}

/// The probability that an adversary who links one route's observations
/// perfectly names its requester (see [`judge`]).
fn named(bad: &HashSet<PeerId>, route: &[PeerId; 3]) -> f64 {
    match (
        bad.contains(&route[0]),
        bad.contains(&route[1]) || bad.contains(&route[2]),
    ) {
        (false, _) => 0.0,
        (true, true) => 1.0,
        (true, false) => 0.5,
    }
}

/// What the adversary makes of one arm's lookups.
fn judge(
    net: &Net,
    cfg: &SimConfig,
    arm: Arm,
    outcomes: &[Outcome],
    window: Duration,
) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let f = net.bad.len() as f64 / net.nodes.len() as f64;
    let h = net.honest.len();
    let walk_exposed = |m: u32| 1.0 - (1.0 - f).powi(m as i32);
    // Onion observations at adversarial nodes: who sent a packet when.
    let mut entries: Vec<(Instant, PeerId)> = Vec::new();
    if matches!(arm, Arm::Onion | Arm::OnionDelayCover) {
        for n in &net.nodes {
            if !net.bad.contains(&n.peer_id) {
                continue;
            }
            for o in n.observations() {
                if let Observation::Onion {
                    from,
                    role: RelayRole::Forward { .. },
                    at,
                } = o
                {
                    if !net.bad.contains(&from) {
                        entries.push((at, from));
                    }
                }
            }
        }
    }
    let cover = if arm == Arm::OnionDelayCover {
        cfg.cover as f64 + 1.0
    } else {
        1.0
    };
    let (mut d_timing, mut d_perfect) = (Vec::new(), Vec::new());
    let (mut id_timing, mut id_perfect) = (0.0, 0.0);
    for o in outcomes {
        let cands = o.candidates.max(1) as f64;
        match arm {
            Arm::Plain | Arm::Prefix => {
                // The reader talks to the DHT itself: a lookup any
                // adversarial node saw names its requester.
                let asked_bad = o.asked.iter().any(|p| net.bad.contains(p));
                let p = if asked_bad {
                    1.0
                } else {
                    walk_exposed(o.walk_requests)
                };
                d_timing.push(1.0 - p);
                d_perfect.push(1.0 - p);
                id_timing += p / cands;
                id_perfect += p / cands;
            }
            Arm::Onion | Arm::OnionDelayCover => {
                // The prefix is assumed known to the adversary (an exit or
                // a region node of its own, or a walk: conservative). The
                // requester is known only through an adversarial first
                // relay, linked to the prefix by timing or perfectly. A
                // Sphinx relay does not know its position: an adversarial
                // first relay knows its predecessor is the requester only
                // if the second relay or the exit is also its own;
                // otherwise the predecessor may be a first relay and the
                // requester its unseen predecessor (even odds).
                let p_named = o
                    .routes
                    .iter()
                    .map(|r| named(&net.bad, r))
                    .fold(0.0, f64::max);
                d_perfect.push(degree(h, 1, p_named.max(1.0 / h as f64)));
                id_perfect += p_named / cands / cover;
                let end = o.started + o.latency;
                let set: HashSet<PeerId> = entries
                    .iter()
                    .filter(|(at, _)| *at + window >= end && *at <= end)
                    .map(|(_, p)| *p)
                    .collect();
                let w = if set.is_empty() { 0.0 } else { f };
                d_timing.push(degree(h, set.len(), w));
                if p_named > 0.0 && set.contains(&o.requester) {
                    id_timing += p_named / set.len() as f64 / cands / cover;
                }
            }
        }
    }
    let n = outcomes.len().max(1) as f64;
    (d_timing, d_perfect, id_timing / n, id_perfect / n)
}

/// Runs the simulation: one network, the four arms on the same lookups.
pub async fn run(cfg: &SimConfig) -> Result<SimReport, String> {
    let t0 = Instant::now();
    let net = start(cfg).await?;
    tracing::info!(
        nodes = cfg.nodes,
        secs = t0.elapsed().as_secs_f64(),
        "nodes started, routing tables seeded"
    );
    let bits = prefix_bits_for(cfg.nodes);
    let count = cfg.records.unwrap_or(30usize << bits);
    let records = Arc::new(publish(&net, count).await?);
    let setup_s = t0.elapsed().as_secs_f64();
    tracing::info!(records = count, secs = setup_s, "records published");
    let mut rng = rand::thread_rng();
    let plan: Vec<(usize, usize)> = (0..cfg.lookups)
        .map(|_| {
            (
                net.honest[rng.gen_range(0..net.honest.len())],
                rng.gen_range(0..count),
            )
        })
        .collect();
    let mut arms = Vec::new();
    let mut base: Option<(f64, f64)> = None;
    for arm in [Arm::Plain, Arm::Prefix, Arm::Onion, Arm::OnionDelayCover] {
        let bytes0 = MEMORY_BYTES.load(Ordering::Relaxed);
        let outcomes = run_arm(&net, &records, &plan, arm, bits, cfg).await;
        // Cover replies still in flight belong to this arm.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bytes = (MEMORY_BYTES.load(Ordering::Relaxed) - bytes0) as f64 / plan.len() as f64;
        let mut lat: Vec<f64> = outcomes
            .iter()
            .map(|o| o.latency.as_secs_f64() * 1e3)
            .collect();
        let p50 = percentile(&mut lat, 0.5);
        let p95 = percentile(&mut lat, 0.95);
        let window = Duration::from_secs_f64(percentile(&mut lat, 0.99) / 1e3);
        let (mut dt, mut dp, idt, idp) = judge(&net, cfg, arm, &outcomes, window);
        let ok = outcomes.iter().filter(|o| o.ok).count();
        tracing::info!(arm = arm.name(), ok, lookups = plan.len(), "arm done");
        let mut cands: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.ok)
            .map(|o| o.candidates as f64)
            .collect();
        let (bp95, bbytes) = *base.get_or_insert((p95, bytes));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let attempts = outcomes
            .iter()
            .map(|o| o.routes.len().max(1) as f64)
            .collect::<Vec<_>>();
        arms.push(ArmReport {
            arm: arm.name().into(),
            adversary: if cfg.active { "active" } else { "passive" },
            lookups: outcomes.len(),
            success_rate: ok as f64 / plan.len().max(1) as f64,
            requester_anonymity: Anonymity {
                mean: mean(&dt),
                p5: percentile(&mut dt, 0.05),
                perfect_linking_mean: mean(&dp),
                perfect_linking_p5: percentile(&mut dp, 0.05),
            },
            exact_identification: idt,
            exact_identification_perfect_linking: idp,
            candidates_p1: percentile(&mut cands, 0.01) as usize,
            candidates_median: percentile(&mut cands, 0.5) as usize,
            attempts_mean: mean(&attempts),
            latency_p50_ms: p50,
            latency_p95_ms: p95,
            bytes_per_lookup: bytes,
            latency_ratio: p95 / bp95.max(1e-9),
            bytes_ratio: bytes / bbytes.max(1.0),
        });
    }
    Ok(SimReport {
        nodes: cfg.nodes,
        malicious: cfg.malicious,
        honest: net.honest.len(),
        records: count,
        prefix_bits: bits,
        setup_s,
        arms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree_is_one_for_uniform_and_zero_for_certainty() {
        assert!((degree(100, 0, 0.0) - 1.0).abs() < 1e-9);
        assert!((degree(100, 100, 1.0) - 1.0).abs() < 1e-9);
        assert!(degree(100, 1, 1.0).abs() < 1e-9);
        let d = degree(100, 5, 0.2);
        assert!(d > 0.9 && d < 1.0, "{d}");
    }

    #[test]
    fn prefix_regions_hold_at_most_k_nodes() {
        assert_eq!(prefix_bits_for(50), 2);
        assert_eq!(prefix_bits_for(1000), 6);
        assert_eq!(prefix_bits_for(20), 1);
    }
}
