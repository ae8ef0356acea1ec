//! A directory node on rust-libp2p (docs/directory.md, "Engine"): a
//! Kademlia DHT (`libp2p-kad`, private protocol `/triad/dir/kad/1.0.0`)
//! whose nodes validate every record before storing it
//! ([`crate::envelope::check_stored`], through kad's `FilterBoth`), and a
//! prefix lookup protocol (`/triad/dir/prefix/1.0.0`, request-response):
//! "every envelope you hold whose Kademlia position starts with these `l`
//! bits". A reader asks for the prefix of its record's position, never the
//! key, and picks its record out of the answer locally
//! ([`lookup`]); the node it asks learns only the prefix.
//!
//! Each node runs as one tokio task owning its swarm; [`NodeHandle`]
//! talks to it over a bounded channel. Every node keeps an observation log
//! of what it was sent (kinds, keys, prefixes), for the privacy tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::core::Transport as _;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, kad, noise, request_response, yamux, Multiaddr, PeerId, StreamProtocol};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::derive::{has_prefix, kad_position, DirectoryId};
use crate::envelope::{check_stored, open, EnvelopeError, ENVELOPE_SIZE};
use crate::record::{Kind, ServiceRecord};

const KAD_PROTOCOL: &str = "/triad/dir/kad/1.0.0";
const PREFIX_PROTOCOL: &str = "/triad/dir/prefix/1.0.0";
/// A prefix answer holds at most this many envelopes (IPIP-373's
/// `MatchLimit`); beyond, the node answers "too many" and the reader asks
/// for a longer prefix.
pub const MATCH_LIMIT: usize = 64;
/// Longest prefix request: `l` (1 byte) and 32 bytes.
const REQUEST_SIZE: usize = 33;
const MAX_RESPONSE: usize = 3 + MATCH_LIMIT * ENVELOPE_SIZE;

/// Raw bytes over a stream, read to its end, capped.
#[derive(Clone, Default)]
pub struct BytesCodec;

async fn read_capped<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut v).await?;
    if v.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    Ok(v)
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, REQUEST_SIZE).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, MAX_RESPONSE).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    prefix: request_response::Behaviour<BytesCodec>,
}

/// A prefix request: `l` (1..=32 bits here) and the prefix, right-padded
/// with zero bits to 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixRequest {
    pub bits: u8,
    pub prefix: [u8; 32],
}

impl PrefixRequest {
    /// The first `bits` bits of `position`.
    pub fn of(position: &[u8; 32], bits: u8) -> Self {
        let mut prefix = [0u8; 32];
        let b = bits as usize;
        prefix[..b / 8].copy_from_slice(&position[..b / 8]);
        if !b.is_multiple_of(8) {
            prefix[b / 8] = position[b / 8] & (0xffu8 << (8 - b % 8));
        }
        PrefixRequest { bits, prefix }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        [&[self.bits][..], &self.prefix].concat()
    }

    /// Refuses anything but 33 bytes, `1 ≤ l ≤ 32`, and zero bits after
    /// the prefix (one encoding per request).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() != REQUEST_SIZE || !(1..=32).contains(&b[0]) {
            return None;
        }
        let prefix: [u8; 32] = b[1..].try_into().ok()?;
        let r = PrefixRequest::of(&prefix, b[0]);
        (r.prefix == prefix).then_some(r)
    }
}

/// A node's answer to a prefix request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixAnswer {
    Envelopes(Vec<Vec<u8>>),
    /// More than [`MATCH_LIMIT`] match: ask for a longer prefix.
    TooMany(u16),
}

impl PrefixAnswer {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PrefixAnswer::Envelopes(e) => {
                let mut out = vec![0u8];
                out.extend_from_slice(&(e.len() as u16).to_be_bytes());
                for x in e {
                    out.extend_from_slice(x);
                }
                out
            }
            PrefixAnswer::TooMany(n) => [&[1u8][..], &n.to_be_bytes()].concat(),
        }
    }

    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 3 {
            return None;
        }
        let n = u16::from_be_bytes([b[1], b[2]]) as usize;
        match b[0] {
            0 if n <= MATCH_LIMIT && b.len() == 3 + n * ENVELOPE_SIZE => Some(
                PrefixAnswer::Envelopes(b[3..].chunks(ENVELOPE_SIZE).map(<[u8]>::to_vec).collect()),
            ),
            1 if b.len() == 3 => Some(PrefixAnswer::TooMany(n as u16)),
            _ => None,
        }
    }
}

/// What a node was sent, for the privacy tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A record offered for storage: the sender and the DHT key.
    Put {
        from: PeerId,
        key: Vec<u8>,
        stored: bool,
    },
    /// A prefix lookup: the sender and the request.
    Prefix {
        from: PeerId,
        request: PrefixRequest,
    },
}

enum Command {
    AddPeers(Vec<(PeerId, Multiaddr)>),
    Publish {
        key: [u8; 32],
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Closest {
        preimage: Vec<u8>,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Prefix {
        peer: PeerId,
        request: PrefixRequest,
        reply: oneshot::Sender<Result<PrefixAnswer, String>>,
    },
}

/// A running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub peer_id: PeerId,
    pub addr: Multiaddr,
    tx: mpsc::Sender<Command>,
    observed: Arc<Mutex<Vec<Observation>>>,
}

/// Unix seconds (the clock envelopes are judged by).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Where a node listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// A fresh `/memory/N` address: tests and the simulation.
    Memory,
    /// TCP on this address (noise, yamux): a node of a real deployment
    /// (the devnet binds `127.0.0.1:0`).
    Tcp(std::net::SocketAddr),
}

/// Starts a node on the in-memory transport (noise, yamux): for tests
/// and the simulation.
pub async fn spawn_memory_node(clock: Clock) -> Result<NodeHandle, String> {
    spawn_node(Listen::Memory, identity::Keypair::generate_ed25519(), clock).await
}

/// Starts a node with identity `key` listening on `listen`, as one tokio
/// task; returns once it listens.
pub async fn spawn_node(
    listen: Listen,
    key: identity::Keypair,
    clock: Clock,
) -> Result<NodeHandle, String> {
    let peer_id = key.public().to_peer_id();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
    let (mut swarm, addr): (libp2p::Swarm<Behaviour>, Multiaddr) = match listen {
        Listen::Memory => (
            builder
                .with_other_transport(|key| {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                        MemoryTransport::default()
                            .upgrade(Version::V1)
                            .authenticate(noise::Config::new(key)?)
                            .multiplex(yamux::Config::default()),
                    )
                })
                .map_err(|e| err(&e))?
                .with_behaviour(|_| behaviour(peer_id))
                .map_err(|e| err(&e))?
                .with_swarm_config(swarm_config)
                .build(),
            "/memory/0".parse().expect("a memory address"),
        ),
        Listen::Tcp(sa) => (
            builder
                .with_tcp(
                    libp2p::tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .map_err(|e| err(&e))?
                .with_behaviour(|_| behaviour(peer_id))
                .map_err(|e| err(&e))?
                .with_swarm_config(swarm_config)
                .build(),
            tcp_multiaddr(sa),
        ),
    };
    swarm.listen_on(addr).map_err(|e| err(&e))?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let (tx, rx) = mpsc::channel(64);
    let observed = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(run(swarm, rx, observed.clone(), clock));
    Ok(NodeHandle {
        peer_id,
        addr,
        tx,
        observed,
    })
}

fn swarm_config(c: libp2p::swarm::Config) -> libp2p::swarm::Config {
    c.with_idle_connection_timeout(Duration::from_secs(300))
}

/// `/ip4/A/tcp/P` (or `/ip6/…`) for a socket address.
pub fn tcp_multiaddr(sa: std::net::SocketAddr) -> Multiaddr {
    let ip = match sa.ip() {
        std::net::IpAddr::V4(a) => libp2p::multiaddr::Protocol::Ip4(a),
        std::net::IpAddr::V6(a) => libp2p::multiaddr::Protocol::Ip6(a),
    };
    Multiaddr::empty()
        .with(ip)
        .with(libp2p::multiaddr::Protocol::Tcp(sa.port()))
}

fn behaviour(peer_id: PeerId) -> Behaviour {
    let mut cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    cfg.set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_query_timeout(Duration::from_secs(20))
        .set_max_packet_size(16 * 1024);
    let store = MemoryStore::with_config(
        peer_id,
        MemoryStoreConfig {
            max_records: 100_000,
            max_value_bytes: ENVELOPE_SIZE + 1,
            ..Default::default()
        },
    );
    let mut kad = kad::Behaviour::with_config(peer_id, store, cfg);
    kad.set_mode(Some(kad::Mode::Server));
    let prefix = request_response::Behaviour::new(
        [(
            StreamProtocol::new(PREFIX_PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
    );
    Behaviour { kad, prefix }
}

/// Envelopes in `store` whose position starts with the request's prefix.
fn matching(store: &mut MemoryStore, r: &PrefixRequest) -> PrefixAnswer {
    let found: Vec<Vec<u8>> = store
        .records()
        .filter(|rec| {
            <[u8; 32]>::try_from(rec.key.as_ref())
                .is_ok_and(|k| has_prefix(&kad_position(&k), &r.prefix, u32::from(r.bits)))
        })
        .map(|rec| rec.value.clone())
        .collect();
    if found.len() > MATCH_LIMIT {
        PrefixAnswer::TooMany(found.len().min(u16::MAX as usize) as u16)
    } else {
        PrefixAnswer::Envelopes(found)
    }
}

async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut rx: mpsc::Receiver<Command>,
    observed: Arc<Mutex<Vec<Observation>>>,
    clock: Clock,
) {
    let mut puts: HashMap<kad::QueryId, oneshot::Sender<Result<(), String>>> = HashMap::new();
    let mut closest: HashMap<kad::QueryId, oneshot::Sender<Vec<PeerId>>> = HashMap::new();
    let mut asks: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<PrefixAnswer, String>>,
    > = HashMap::new();
    let log = |o: Observation| observed.lock().unwrap_or_else(|e| e.into_inner()).push(o);
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                let b = swarm.behaviour_mut();
                match cmd {
                    Command::AddPeers(peers) => {
                        for (p, a) in peers {
                            b.kad.add_address(&p, a);
                        }
                    }
                    Command::Publish { key, envelope, reply } => {
                        let rec = kad::Record::new(kad::RecordKey::new(&key), envelope);
                        match b.kad.put_record(rec, kad::Quorum::One) {
                            Ok(q) => {
                                puts.insert(q, reply);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                    Command::Closest { preimage, reply } => {
                        closest.insert(b.kad.get_closest_peers(preimage), reply);
                    }
                    Command::Prefix { peer, request, reply } => {
                        asks.insert(b.prefix.send_request(&peer, request.to_bytes()), reply);
                    }
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => match e {
                    kad::Event::InboundRequest {
                        request: kad::InboundRequest::PutRecord { source, record: Some(r), .. },
                    } => {
                        let ok = check_stored(&r.value, r.key.as_ref(), clock()).is_ok();
                        log(Observation::Put { from: source, key: r.key.to_vec(), stored: ok });
                        if ok {
                            let _ = swarm.behaviour_mut().kad.store_mut().put(r);
                        }
                    }
                    kad::Event::OutboundQueryProgressed { id, result, step, .. } => match result {
                        kad::QueryResult::PutRecord(r) => {
                            if let Some(tx) = puts.remove(&id) {
                                let _ = tx.send(r.map(|_| ()).map_err(|e| e.to_string()));
                            }
                        }
                        kad::QueryResult::GetClosestPeers(r) => {
                            let peers = match r {
                                Ok(ok) => ok.peers,
                                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                            };
                            if let Some(tx) = closest.remove(&id) {
                                let _ = tx.send(peers.into_iter().map(|p| p.peer_id).collect());
                            }
                        }
                        _ => {
                            let _ = step;
                        }
                    },
                    _ => {}
                },
                SwarmEvent::Behaviour(BehaviourEvent::Prefix(e)) => match e {
                    request_response::Event::Message { peer, message, .. } => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let answer = match PrefixRequest::parse(&request) {
                                Some(r) => {
                                    log(Observation::Prefix { from: peer, request: r });
                                    matching(swarm.behaviour_mut().kad.store_mut(), &r).to_bytes()
                                }
                                None => Vec::new(),
                            };
                            let _ = swarm.behaviour_mut().prefix.send_response(channel, answer);
                        }
                        request_response::Message::Response { request_id, response } => {
                            if let Some(tx) = asks.remove(&request_id) {
                                let _ = tx.send(
                                    PrefixAnswer::parse(&response).ok_or_else(|| "malformed answer".into()),
                                );
                            }
                        }
                    },
                    request_response::Event::OutboundFailure { request_id, error, .. } => {
                        if let Some(tx) = asks.remove(&request_id) {
                            let _ = tx.send(Err(error.to_string()));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

impl NodeHandle {
    async fn call<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(f(tx))
            .await
            .map_err(|_| "the node stopped".to_string())?;
        rx.await.map_err(|_| "the node stopped".to_string())
    }

    /// Adds peers to this node's routing table (a bootstrap list).
    pub async fn add_peers(&self, peers: Vec<(PeerId, Multiaddr)>) -> Result<(), String> {
        self.tx
            .send(Command::AddPeers(peers))
            .await
            .map_err(|_| "the node stopped".to_string())
    }

    /// Stores `envelope` under `key` at the nodes closest to it (each
    /// checks it first).
    pub async fn publish(&self, key: [u8; 32], envelope: Vec<u8>) -> Result<(), String> {
        self.call(|reply| Command::Publish {
            key,
            envelope,
            reply,
        })
        .await?
    }

    /// The peers closest to `SHA-256(preimage)` (a kad lookup).
    pub async fn closest(&self, preimage: Vec<u8>) -> Result<Vec<PeerId>, String> {
        self.call(|reply| Command::Closest { preimage, reply })
            .await
    }

    /// One prefix request to `peer`.
    pub async fn ask_prefix(
        &self,
        peer: PeerId,
        request: PrefixRequest,
    ) -> Result<PrefixAnswer, String> {
        self.call(|reply| Command::Prefix {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// What this node was sent so far.
    pub fn observations(&self) -> Vec<Observation> {
        self.observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A 32-byte preimage whose SHA-256 starts with the `bits`-bit prefix of
/// `position`: a kad lookup for it steers toward the prefix's region of
/// the key space while the preimage reveals nothing beyond the prefix
/// (about `2^bits` hashes).
pub fn steering_preimage(position: &[u8; 32], bits: u8) -> Vec<u8> {
    let rng = SystemRandom::new();
    let mut r = [0u8; 32];
    loop {
        rng.fill(&mut r).expect("system randomness");
        let h: [u8; 32] = Sha256::digest(r).into();
        if has_prefix(&h, position, u32::from(bits)) {
            return r.to_vec();
        }
    }
}

/// What a private lookup saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Peers asked for the prefix.
    pub asked: usize,
    /// Distinct records (DHT keys) in the answers: the candidate set.
    pub candidates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no node returned a valid record for this id (asked {0})")]
    NotFound(usize),
    #[error("the directory network: {0}")]
    Network(String),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// Finds and verifies `id`'s record through `via`: steers a kad lookup to
/// the region of the record's `bits`-bit position prefix, asks the closest
/// peers (up to `fanout`) for every envelope under that prefix, and keeps
/// the one stored under the id's DHT key that opens and verifies. No
/// message carries the id, its DHT key or its full position.
pub async fn lookup(
    via: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
    bits: u8,
    fanout: usize,
    now: u64,
    pinned_parties: Option<&[String; 3]>,
) -> Result<(ServiceRecord, LookupStats), LookupError> {
    let key = id.dht_key();
    let request = PrefixRequest::of(&kad_position(&key), bits);
    let peers = via
        .closest(steering_preimage(&request.prefix, bits))
        .await
        .map_err(LookupError::Network)?;
    let mut stats = LookupStats::default();
    let mut seen = std::collections::HashSet::new();
    let mut found = None;
    let mut last_err = None;
    for peer in peers.into_iter().take(fanout.max(1)) {
        stats.asked += 1;
        let Ok(PrefixAnswer::Envelopes(envs)) = via.ask_prefix(peer, request).await else {
            continue;
        };
        for env in envs {
            if env.len() == ENVELOPE_SIZE {
                seen.insert(env[3..35].to_vec());
            }
            if found.is_none() && env.len() == ENVELOPE_SIZE && env[3..35] == key {
                match open(&env, id, kind, now, pinned_parties) {
                    Ok(r) => found = Some(r),
                    Err(e) => last_err = Some(e),
                }
            }
        }
    }
    stats.candidates = seen.len();
    match (found, last_err) {
        (Some(r), _) => Ok((r, stats)),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(LookupError::NotFound(stats.asked)),
    }
}

/// Prefix length of [`discover`]'s first try: a prefix this long holds
/// about `records / 2^l` records (20–50 at the simulated size of
/// docs/directory.md); an answer of "too many" lengthens it.
pub const DEFAULT_PREFIX_BITS: u8 = 4;

/// Finds and verifies `id`'s record the private way: the services' entry
/// point (`triad discover`, `share`/`vote` by id).
pub async fn discover(
    via: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
    now: u64,
    pinned_parties: Option<&[String; 3]>,
) -> Result<ServiceRecord, LookupError> {
    lookup(via, id, kind, DEFAULT_PREFIX_BITS, 3, now, pinned_parties)
        .await
        .map(|(r, _)| r)
}
