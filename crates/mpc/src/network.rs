//! The transport seen by protocols: ordered, reliable byte messages between
//! named parties. Backends: [`MemNetwork`] here (tests, single process) and
//! mutual-TLS TCP in the `triad-net` crate.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use crate::{MpcError, PartyId, Ring};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("party {0} closed the connection")]
    Closed(PartyId),
    #[error("timed out after {1:?} waiting for party {0}")]
    Timeout(PartyId, Duration),
    #[error("party {peer} sent a frame of {len} bytes, above the {max}-byte limit")]
    Oversize {
        peer: PartyId,
        len: usize,
        max: usize,
    },
    #[error("connection to party {peer} failed: {detail}")]
    Io { peer: PartyId, detail: String },
    #[error("a party cannot send to itself")]
    SelfSend,
    #[error("network setup failed: {0}")]
    Setup(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
}

pub trait Network: Send {
    fn id(&self) -> PartyId;
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), NetError>;
    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError>;
    fn stats(&self) -> NetStats;
}

/// Sends a vector of elements as one message.
pub fn send_vec<T: Ring>(net: &mut dyn Network, to: PartyId, xs: &[T]) -> Result<(), MpcError> {
    net.send(to, crate::ring::encode_vec(xs))?;
    Ok(())
}

/// Receives exactly `n` elements from `from`, rejecting a wrong length or a
/// non-canonical element instead of computing on it.
pub fn recv_vec<T: Ring>(
    net: &mut dyn Network,
    from: PartyId,
    n: usize,
) -> Result<Vec<T>, MpcError> {
    let bytes = net.recv(from)?;
    decode_exact(&bytes, from, n)
}

/// Like [`recv_vec`], appending to `out` (no intermediate vector).
pub fn recv_into<T: Ring>(
    net: &mut dyn Network,
    from: PartyId,
    n: usize,
    out: &mut Vec<T>,
) -> Result<(), MpcError> {
    let bytes = net.recv(from)?;
    if bytes.len() != n * T::BYTES {
        return Err(MpcError::WrongLength {
            from,
            expected: n * T::BYTES,
            got: bytes.len(),
        });
    }
    for c in bytes.chunks_exact(T::BYTES) {
        out.push(T::decode(c).ok_or(MpcError::MalformedElement { from })?);
    }
    Ok(())
}

pub fn decode_exact<T: Ring>(bytes: &[u8], from: PartyId, n: usize) -> Result<Vec<T>, MpcError> {
    if bytes.len() != n * T::BYTES {
        return Err(MpcError::WrongLength {
            from,
            expected: n * T::BYTES,
            got: bytes.len(),
        });
    }
    bytes
        .chunks_exact(T::BYTES)
        .map(|c| T::decode(c).ok_or(MpcError::MalformedElement { from }))
        .collect()
}

/// Messages in flight per direction before a sender blocks. Protocols send
/// at most a couple of messages per round and link, so this never stalls a
/// correct protocol, and a runaway sender cannot grow memory without bound.
const MEM_CAPACITY: usize = 64;

/// In-process transport over bounded channels.
pub struct MemNetwork {
    id: PartyId,
    tx: [Option<SyncSender<Vec<u8>>>; 3],
    rx: [Option<Receiver<Vec<u8>>>; 3],
    timeout: Duration,
    stats: NetStats,
}

impl MemNetwork {
    /// Three fully connected endpoints, indexed by party.
    pub fn triple(timeout: Duration) -> [MemNetwork; 3] {
        let mut tx: [[Option<SyncSender<Vec<u8>>>; 3]; 3] = Default::default();
        let mut rx: [[Option<Receiver<Vec<u8>>>; 3]; 3] = Default::default();
        for from in 0..3 {
            for to in 0..3 {
                if from != to {
                    let (s, r) = sync_channel(MEM_CAPACITY);
                    tx[from][to] = Some(s);
                    rx[to][from] = Some(r);
                }
            }
        }
        let mut out = Vec::new();
        for (i, (t, r)) in tx.into_iter().zip(rx).enumerate() {
            out.push(MemNetwork {
                id: PartyId::new(i).unwrap(),
                tx: t,
                rx: r,
                timeout,
                stats: NetStats::default(),
            });
        }
        out.try_into().ok().unwrap()
    }
}

impl Network for MemNetwork {
    fn id(&self) -> PartyId {
        self.id
    }

    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), NetError> {
        let tx = self.tx[to.index()].as_ref().ok_or(NetError::SelfSend)?;
        self.stats.bytes_sent += msg.len() as u64;
        self.stats.messages_sent += 1;
        tx.send(msg).map_err(|_| NetError::Closed(to))
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError> {
        let rx = self.rx[from.index()].as_ref().ok_or(NetError::SelfSend)?;
        match rx.recv_timeout(self.timeout) {
            Ok(m) => {
                self.stats.bytes_received += m.len() as u64;
                Ok(m)
            }
            Err(RecvTimeoutError::Timeout) => Err(NetError::Timeout(from, self.timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(NetError::Closed(from)),
        }
    }

    fn stats(&self) -> NetStats {
        self.stats
    }
}
