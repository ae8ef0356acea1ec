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
use std::time::{Duration, Instant};

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
use crate::onion;
use crate::onion::REPLY_PACKET_SIZE;
use crate::record::{Kind, ServiceRecord};

const KAD_PROTOCOL: &str = "/triad/dir/kad/1.0.0";
const PREFIX_PROTOCOL: &str = "/triad/dir/prefix/1.0.0";
const ONION_PROTOCOL: &str = "/triad/dir/onion/1.0.0";
/// A prefix answer holds at most this many envelopes (IPIP-373's
/// `MatchLimit`); beyond, the node answers "too many" and the reader asks
/// for a longer prefix.
pub const MATCH_LIMIT: usize = 64;
/// Longest prefix request: `l` (1 byte) and 32 bytes.
pub const REQUEST_SIZE: usize = 33;
const MAX_RESPONSE: usize = 3 + MATCH_LIMIT * ENVELOPE_SIZE;

/// Raw bytes over a stream, read to its end, capped.
#[derive(Clone)]
pub struct BytesCodec {
    max_request: usize,
    max_response: usize,
}

impl Default for BytesCodec {
    /// The prefix protocol's caps.
    fn default() -> Self {
        BytesCodec {
            max_request: REQUEST_SIZE,
            max_response: MAX_RESPONSE,
        }
    }
}

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
        read_capped(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, self.max_response).await
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
    onion: request_response::Behaviour<BytesCodec>,
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

/// What a node was sent, for the privacy tests and the simulation's
/// adversary (a colluding node logs exactly this).
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
        at: Instant,
    },
    /// An onion packet: the sender, and what peeling it showed this relay
    /// (the next hop, or that it is the exit; never the request of a
    /// packet it forwards).
    Onion {
        from: PeerId,
        role: RelayRole,
        at: Instant,
    },
}

/// What a relay learned from peeling a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayRole {
    Forward {
        next: PeerId,
    },
    Exit {
        request: PrefixRequest,
    },
    /// A reply to one of this node's own lookups.
    Reader,
    Refused,
}

/// How a node behaves: honestly, or as a colluding adversary of the
/// simulation that, when active, drops every onion packet, stores no
/// record and answers every prefix request with nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Honest,
    Dropper,
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
        reply: oneshot::Sender<(Vec<PeerId>, u32)>,
    },
    Prefix {
        peer: PeerId,
        request: PrefixRequest,
        reply: oneshot::Sender<Result<PrefixAnswer, String>>,
    },
    Onion {
        peer: PeerId,
        packet: Vec<u8>,
    },
    OnionLookup {
        built: onion::BuiltRequest,
        reply: oneshot::Sender<Result<PrefixAnswer, String>>,
    },
    RoutingPeers(oneshot::Sender<Vec<PeerId>>),
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

/// Bytes written on every in-memory connection of this process (the
/// simulation's byte counts).
pub static MEMORY_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A connection that counts what it writes into [`MEMORY_BYTES`].
struct Counted<T>(T);

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.0).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = r {
            MEMORY_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Where a node listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// A fresh `/memory/N` address (noise, yamux): tests.
    Memory,
    /// A fresh `/memory/N` address with libp2p's plaintext handshake
    /// instead of noise: the 1,000-node simulation only, where noise's
    /// per-connection buffers (about 100 KB a side) would not fit in
    /// memory. Nodes still prove their peer ids; the simulated adversary
    /// is the nodes themselves, not the wire.
    MemoryPlaintext,
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
    spawn_node_as(listen, key, clock, Role::Honest).await
}

/// [`spawn_node`] with a [`Role`] (the simulation's adversaries).
pub async fn spawn_node_as(
    listen: Listen,
    key: identity::Keypair,
    clock: Clock,
    role: Role,
) -> Result<NodeHandle, String> {
    let secret = onion::sphinx_secret(&key).ok_or("the identity must be ed25519")?;
    let peer_id = key.public().to_peer_id();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
    let (mut swarm, addr): (libp2p::Swarm<Behaviour>, Multiaddr) = match listen {
        Listen::Memory => (
            builder
                .with_other_transport(|key| {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                        MemoryTransport::default()
                            .map(|conn, _| Counted(conn))
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
        Listen::MemoryPlaintext => (
            builder
                .with_other_transport(|key| {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                        MemoryTransport::default()
                            .map(|conn, _| Counted(conn))
                            .upgrade(Version::V1)
                            .authenticate(libp2p::plaintext::Config::new(key))
                            .multiplex(yamux::Config::default()),
                    )
                })
                .map_err(|e| err(&e))?
                .with_behaviour(|_| behaviour(peer_id))
                .map_err(|e| err(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
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
    let (tx, rx) = mpsc::channel(256);
    let observed = Arc::new(Mutex::new(Vec::new()));
    let me = Relay {
        peer_id,
        secret,
        role,
        tx: tx.downgrade(),
        observed: observed.clone(),
        clock,
        held: Arc::new(tokio::sync::Semaphore::new(MAX_HELD)),
        exits: Arc::new(tokio::sync::Semaphore::new(MAX_EXITS)),
        no_bootstrap: matches!(listen, Listen::MemoryPlaintext),
    };
    tokio::spawn(run(swarm, rx, me));
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
        .set_max_packet_size(16 * 1024)
        // Publishers republish (the coordinator, before expiry); nodes do
        // not re-replicate on their own, and routing tables fill from
        // traffic and bootstrap lists rather than from periodic walks.
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_periodic_bootstrap_interval(None);
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
    let onion = request_response::Behaviour::with_codec(
        BytesCodec {
            max_request: REPLY_PACKET_SIZE,
            max_response: 0,
        },
        [(
            StreamProtocol::new(ONION_PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
    );
    Behaviour { kad, prefix, onion }
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

/// A node's own state that its event loop and the tasks it spawns share.
struct Relay {
    peer_id: PeerId,
    secret: x25519_dalek::StaticSecret,
    role: Role,
    /// To itself, for the exit's lookups (weak: the node stops when the
    /// last [`NodeHandle`] is dropped).
    tx: mpsc::WeakSender<Command>,
    observed: Arc<Mutex<Vec<Observation>>>,
    clock: Clock,
    /// Packets held for their delay and exit lookups running: each is
    /// bounded, beyond which packets are dropped (a flood costs the
    /// flooder, not the relay's memory).
    held: Arc<tokio::sync::Semaphore>,
    exits: Arc<tokio::sync::Semaphore>,
    /// The simulation seeds routing tables itself and stops kad's
    /// automatic bootstrap (a storm of walks at 1,000 nodes).
    no_bootstrap: bool,
}

/// Packets a relay holds for their delays at once.
const MAX_HELD: usize = 4096;
/// Exit lookups a relay runs at once.
const MAX_EXITS: usize = 64;

impl Relay {
    fn log(&self, o: Observation) {
        self.observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(o);
    }

    fn handle(&self) -> Option<NodeHandle> {
        Some(NodeHandle {
            peer_id: self.peer_id,
            addr: Multiaddr::empty(),
            tx: self.tx.upgrade()?,
            observed: self.observed.clone(),
        })
    }
}

/// Replay tags remembered (a relay peels each packet once); the oldest
/// half is forgotten beyond this.
const REPLAY_CACHE: usize = 1 << 16;

type Waiting = HashMap<
    [u8; 16],
    (
        onion::PendingReply,
        oneshot::Sender<Result<PrefixAnswer, String>>,
    ),
>;

async fn run(mut swarm: libp2p::Swarm<Behaviour>, mut rx: mpsc::Receiver<Command>, me: Relay) {
    let mut puts: HashMap<kad::QueryId, oneshot::Sender<Result<(), String>>> = HashMap::new();
    let mut closest: HashMap<kad::QueryId, oneshot::Sender<(Vec<PeerId>, u32)>> = HashMap::new();
    let mut asks: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<PrefixAnswer, String>>,
    > = HashMap::new();
    let mut waiting: Waiting = HashMap::new();
    let mut seen: std::collections::HashSet<[u8; 32]> = Default::default();
    let mut outbox = Outbox::default();
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
                    Command::Onion { peer, packet } => {
                        outbox.send(b, peer, packet);
                    }
                    Command::OnionLookup { built, reply } => {
                        waiting.retain(|_, (_, tx)| !tx.is_closed());
                        outbox.send(b, built.first_hop, built.packet);
                        waiting.insert(built.identifier, (built.pending, reply));
                    }
                    Command::RoutingPeers(reply) => {
                        let peers = b
                            .kad
                            .kbuckets()
                            .flat_map(|k| k.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
                            .collect();
                        let _ = reply.send(peers);
                    }
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => match e {
                    kad::Event::InboundRequest {
                        request: kad::InboundRequest::PutRecord { source, record: Some(r), .. },
                    } => {
                        let ok = me.role == Role::Honest
                            && check_stored(&r.value, r.key.as_ref(), (me.clock)()).is_ok();
                        me.log(Observation::Put { from: source, key: r.key.to_vec(), stored: ok });
                        if ok {
                            let _ = swarm.behaviour_mut().kad.store_mut().put(r);
                        }
                    }
                    kad::Event::OutboundQueryProgressed { id, result, stats, .. } => match result {
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
                            if let Some((peer, packet)) = outbox.finding.remove(&id) {
                                outbox.found(&mut swarm, peer, packet, &peers);
                                continue;
                            }
                            if let Some(tx) = closest.remove(&id) {
                                let _ = tx.send((
                                    peers.into_iter().map(|p| p.peer_id).collect(),
                                    stats.num_requests(),
                                ));
                            }
                        }
                        kad::QueryResult::Bootstrap(_) if me.no_bootstrap => {
                            if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                                q.finish();
                            }
                        }
                        _ => {}
                    },
                    _ => {}
                },
                SwarmEvent::Behaviour(BehaviourEvent::Prefix(e)) => match e {
                    request_response::Event::Message { peer, message, .. } => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let answer = match PrefixRequest::parse(&request) {
                                Some(r) => {
                                    me.log(Observation::Prefix { from: peer, request: r, at: Instant::now() });
                                    if me.role == Role::Honest {
                                        matching(swarm.behaviour_mut().kad.store_mut(), &r).to_bytes()
                                    } else {
                                        PrefixAnswer::Envelopes(Vec::new()).to_bytes()
                                    }
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
                SwarmEvent::Behaviour(BehaviourEvent::Onion(e)) => match e {
                    request_response::Event::Message {
                        peer,
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    } => {
                        let _ = swarm.behaviour_mut().onion.send_response(channel, Vec::new());
                        on_packet(&me, peer, request, &mut seen, &mut waiting);
                    }
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, .. },
                        ..
                    } => {
                        outbox.sent.remove(&request_id);
                    }
                    request_response::Event::OutboundFailure { request_id, error, .. } => {
                        outbox.failed(swarm.behaviour_mut(), request_id, &error);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

/// Onion packets on their way to the next relay. A relay may not know the
/// next hop's address (the reader chose it from its own routing table):
/// when the dial fails, a kad lookup for the peer finds it, and the packet
/// is sent once more.
#[derive(Default)]
struct Outbox {
    /// Sent, waiting for the next relay's acknowledgement.
    sent: HashMap<request_response::OutboundRequestId, (PeerId, Vec<u8>, bool)>,
    /// Waiting for a lookup of the next hop.
    finding: HashMap<kad::QueryId, (PeerId, Vec<u8>)>,
}

/// Packets held for a retry at once (beyond, new ones go out once only).
const MAX_OUTBOX: usize = 1024;

impl Outbox {
    fn send(&mut self, b: &mut Behaviour, peer: PeerId, packet: Vec<u8>) {
        self.send_try(b, peer, packet, false);
    }

    fn send_try(&mut self, b: &mut Behaviour, peer: PeerId, packet: Vec<u8>, retried: bool) {
        if self.sent.len() + self.finding.len() >= MAX_OUTBOX {
            b.onion.send_request(&peer, packet);
            return;
        }
        let id = b.onion.send_request(&peer, packet.clone());
        self.sent.insert(id, (peer, packet, retried));
    }

    fn failed(
        &mut self,
        b: &mut Behaviour,
        id: request_response::OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        let Some((peer, packet, retried)) = self.sent.remove(&id) else {
            return;
        };
        if !retried && matches!(error, request_response::OutboundFailure::DialFailure) {
            let q = b.kad.get_closest_peers(peer);
            self.finding.insert(q, (peer, packet));
        }
    }

    fn found(
        &mut self,
        swarm: &mut libp2p::Swarm<Behaviour>,
        peer: PeerId,
        packet: Vec<u8>,
        peers: &[kad::PeerInfo],
    ) {
        let Some(info) = peers.iter().find(|p| p.peer_id == peer) else {
            tracing::debug!(%peer, "next hop not found: packet dropped");
            return;
        };
        for a in &info.addrs {
            swarm.add_peer_address(peer, a.clone());
        }
        self.send_try(swarm.behaviour_mut(), peer, packet, true);
    }
}

/// One onion packet from `from`: peel it once (replays are dropped), then
/// forward it, perform the lookup as the exit, or deliver a reply to the
/// lookup waiting for it.
fn on_packet(
    me: &Relay,
    from: PeerId,
    packet: Vec<u8>,
    seen: &mut std::collections::HashSet<[u8; 32]>,
    waiting: &mut Waiting,
) {
    let at = Instant::now();
    let Some(tag) = onion::replay_tag(&packet) else {
        return;
    };
    if !seen.insert(tag) {
        return;
    }
    if seen.len() > REPLAY_CACHE {
        seen.clear();
        seen.insert(tag);
    }
    let step = onion::process(&packet, &me.secret, &me.peer_id);
    let role = match &step {
        Ok(onion::Step::Forward { next, .. }) => RelayRole::Forward { next: *next },
        Ok(onion::Step::Exit { request, .. }) => RelayRole::Exit { request: *request },
        Ok(onion::Step::Reply { .. }) => RelayRole::Reader,
        Err(_) => RelayRole::Refused,
    };
    me.log(Observation::Onion { from, role, at });
    if me.role != Role::Honest {
        return;
    }
    let Some(handle) = me.handle() else { return };
    match step {
        Ok(onion::Step::Forward {
            next,
            packet,
            delay,
        }) => {
            let Ok(permit) = me.held.clone().try_acquire_owned() else {
                tracing::debug!("relay full: packet dropped");
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                if !delay.is_zero() {
                    tokio::time::sleep(delay.min(MAX_HOP_DELAY)).await;
                }
                let _ = handle.tx.send(Command::Onion { peer: next, packet }).await;
            });
        }
        Ok(onion::Step::Exit { request, surb }) => {
            let Ok(permit) = me.exits.clone().try_acquire_owned() else {
                tracing::debug!("exit busy: request dropped");
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let found = exit_lookup(&handle, request, EXIT_FANOUT).await;
                if let Ok((packet, next)) = onion::answer(surb, &found.to_bytes()) {
                    let _ = handle.tx.send(Command::Onion { peer: next, packet }).await;
                }
            });
        }
        Ok(onion::Step::Reply {
            identifier,
            payload,
        }) => {
            if let Some((pending, tx)) = waiting.remove(&identifier) {
                let answer = onion::open_reply(&pending, payload)
                    .ok()
                    .and_then(|b| PrefixAnswer::parse(&b))
                    .ok_or_else(|| "malformed reply".to_string());
                let _ = tx.send(answer);
            }
        }
        Err(e) => tracing::debug!(%from, error = %e, "onion packet refused"),
    }
}

/// A relay holds a packet at most this long, whatever its header says.
const MAX_HOP_DELAY: Duration = Duration::from_secs(10);
/// Peers an exit asks for a prefix.
pub const EXIT_FANOUT: usize = 3;

/// The exit's lookup: every envelope under the prefix that the `fanout`
/// peers closest to the prefix's region hold, deduplicated by key and
/// capped at what a reply carries.
async fn exit_lookup(via: &NodeHandle, request: PrefixRequest, fanout: usize) -> PrefixAnswer {
    let Ok(peers) = via
        .closest(steering_preimage(&request.prefix, request.bits))
        .await
    else {
        return PrefixAnswer::Envelopes(Vec::new());
    };
    let mut by_key: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    // The peers are asked at once: one round trip, not `fanout`.
    let answers = libp2p::futures::future::join_all(
        peers
            .into_iter()
            .take(fanout)
            .map(|peer| via.ask_prefix(peer, request)),
    )
    .await;
    for answer in answers {
        match answer {
            Ok(PrefixAnswer::Envelopes(envs)) => {
                for e in envs {
                    if e.len() == ENVELOPE_SIZE {
                        by_key.entry(e[3..35].to_vec()).or_insert(e);
                    }
                }
            }
            Ok(PrefixAnswer::TooMany(n)) => return PrefixAnswer::TooMany(n),
            Err(_) => {}
        }
    }
    if by_key.len() > onion::REPLY_ENVELOPES {
        return PrefixAnswer::TooMany(by_key.len() as u16);
    }
    PrefixAnswer::Envelopes(by_key.into_values().collect())
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
        Ok(self.closest_counted(preimage).await?.0)
    }

    /// [`NodeHandle::closest`] and how many requests the walk sent (each
    /// of which showed its target to the peer asked).
    pub async fn closest_counted(&self, preimage: Vec<u8>) -> Result<(Vec<PeerId>, u32), String> {
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
    /// The onion routes tried, in order (the last one answered).
    pub routes: Vec<[PeerId; 3]>,
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

/// How an onion-routed lookup runs.
#[derive(Clone, Debug)]
pub struct OnionOptions {
    /// Prefix length of the first try.
    pub bits: u8,
    /// Fresh routes tried after a lost or empty answer (relays of a
    /// failed route are not used again).
    pub retries: usize,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Mean per-hop delay (exponential, drawn by the reader), or none.
    pub hop_delay: Option<Duration>,
    /// Dummy lookups of random prefixes sent with each real one, on their
    /// own routes.
    pub cover: usize,
}

impl Default for OnionOptions {
    fn default() -> Self {
        OnionOptions {
            bits: DEFAULT_PREFIX_BITS,
            retries: 5,
            timeout: Duration::from_secs(10),
            hop_delay: None,
            cover: 0,
        }
    }
}

impl NodeHandle {
    /// The peers in this node's routing table: the relays it can choose.
    pub async fn routing_peers(&self) -> Result<Vec<PeerId>, String> {
        self.call(Command::RoutingPeers).await
    }

    /// Sends a raw onion packet to `peer` (what a relay does; tests send
    /// replays and garbage with it).
    pub async fn send_onion(&self, peer: PeerId, packet: Vec<u8>) -> Result<(), String> {
        self.tx
            .send(Command::Onion { peer, packet })
            .await
            .map_err(|_| "the node stopped".to_string())
    }

    /// Sends `request` through `route` (its last relay is the exit) and
    /// waits up to `timeout` for the answer through the reply block.
    pub async fn onion_ask(
        &self,
        request: PrefixRequest,
        route: &[PeerId; onion::HOPS],
        hop_delay: Option<Duration>,
        timeout: Duration,
    ) -> Result<PrefixAnswer, String> {
        let reply_route = [route[1], route[0]];
        let built = onion::build_request(&request, route, &reply_route, &self.peer_id, hop_delay)
            .map_err(|e| e.to_string())?;
        let answer = self.call(|reply| Command::OnionLookup { built, reply });
        match tokio::time::timeout(timeout, answer).await {
            Ok(r) => r?,
            Err(_) => Err("no reply".into()),
        }
    }
}

/// Three distinct relays out of `peers`, none of them in `avoid`.
fn pick_route(peers: &[PeerId], avoid: &std::collections::HashSet<PeerId>) -> Option<[PeerId; 3]> {
    use rand::seq::SliceRandom;
    let usable: Vec<PeerId> = peers
        .iter()
        .filter(|p| !avoid.contains(p))
        .copied()
        .collect();
    let r: Vec<PeerId> = usable
        .choose_multiple(&mut rand::thread_rng(), onion::HOPS)
        .copied()
        .collect();
    r.try_into().ok()
}

/// Finds and verifies `id`'s record through the onion: the prefix request
/// goes through three relays chosen from the routing table, the last one
/// performs the prefix lookup and answers through the reply block; the
/// reader keeps the envelope stored under the id's key that opens and
/// verifies. A lost answer (a relay that drops) or one without the record
/// is retried on fresh relays; "too many" lengthens the prefix.
pub async fn onion_lookup(
    via: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
    opts: &OnionOptions,
    now: u64,
    pinned_parties: Option<&[String; 3]>,
) -> Result<(ServiceRecord, LookupStats), LookupError> {
    let key = id.dht_key();
    let position = kad_position(&key);
    let peers = via.routing_peers().await.map_err(LookupError::Network)?;
    let mut avoid = std::collections::HashSet::new();
    let mut bits = opts.bits;
    let mut stats = LookupStats::default();
    let mut last_err = None;
    let mut attempt = 0;
    // Exits that said "too many" at the current length: one exit could
    // lie to push the reader to a longer, less anonymous prefix, so it
    // takes two.
    let mut too_many = 0;
    while attempt <= opts.retries {
        let Some(route) = pick_route(&peers, &avoid) else {
            if stats.asked > 0 {
                // Every relay has been tried (a small network).
                break;
            }
            return Err(LookupError::Network(format!(
                "fewer than {} usable relays",
                onion::HOPS
            )));
        };
        for _ in 0..opts.cover {
            if let Some(r) = pick_route(&peers, &avoid) {
                let mut random = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut random)
                    .expect("system randomness");
                let (via, dummy) = (via.clone(), PrefixRequest::of(&random, bits));
                let (delay, timeout) = (opts.hop_delay, opts.timeout);
                tokio::spawn(async move { via.onion_ask(dummy, &r, delay, timeout).await });
            }
        }
        stats.asked += 1;
        stats.routes.push(route);
        let request = PrefixRequest::of(&position, bits);
        match via
            .onion_ask(request, &route, opts.hop_delay, opts.timeout)
            .await
        {
            Ok(PrefixAnswer::TooMany(_)) if bits < 32 => {
                too_many += 1;
                if too_many == 2 {
                    bits += 1;
                    too_many = 0;
                }
                avoid.extend(route);
                continue;
            }
            Ok(PrefixAnswer::Envelopes(envs)) => {
                stats.candidates = envs.len();
                for env in envs {
                    if env.len() == ENVELOPE_SIZE && env[3..35] == key {
                        match open(&env, id, kind, now, pinned_parties) {
                            Ok(r) => return Ok((r, stats)),
                            Err(e) => last_err = Some(e),
                        }
                    }
                }
            }
            _ => {}
        }
        avoid.extend(route);
        attempt += 1;
    }
    match last_err {
        Some(e) => Err(e.into()),
        None => Err(LookupError::NotFound(stats.asked)),
    }
}

/// Finds and verifies `id`'s record the private way (onion-routed prefix
/// lookup, [`onion_lookup`] with the defaults): the services' entry point
/// (`triad discover`, `share`/`vote` by id).
pub async fn discover(
    via: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
    now: u64,
    pinned_parties: Option<&[String; 3]>,
) -> Result<ServiceRecord, LookupError> {
    onion_lookup(via, id, kind, &OnionOptions::default(), now, pinned_parties)
        .await
        .map(|(r, _)| r)
}
