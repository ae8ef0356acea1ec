//! The mutual-TLS TCP backend of [`triad_mpc::Network`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use triad_mpc::{NetError, NetStats, Network, PartyId};

use crate::pin::{provider, Identity, Pinned};

/// Frames queued per link and direction before the producer waits.
const QUEUE: usize = 8;

/// Bytes reserved for a frame before its payload arrives: the largest
/// chunk the engine streams (2^16 BN254 elements).
const PREALLOC: usize = 1 << 21;

/// How long one incoming connection may take to complete TLS and name
/// itself.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct TcpConfig {
    pub id: PartyId,
    pub identity: Identity,
    /// Pinned certificate (DER) of every party, indexed by party id.
    pub certs: [Vec<u8>; 3],
    /// Where each party listens (only lower ids are dialled).
    pub addrs: [SocketAddr; 3],
    /// How long `recv` waits for a peer before failing.
    pub timeout: Duration,
    /// Largest frame accepted from a peer.
    pub max_frame: usize,
    /// How long connection setup may take in all.
    pub setup_timeout: Duration,
    /// Emulated one-way delay: a received frame is handed to the protocol
    /// this long after it arrived (frames still pipeline). Zero in
    /// deployments; benchmarks use it to model parties on distant machines.
    pub latency: Duration,
}

impl TcpConfig {
    pub fn new(
        id: PartyId,
        identity: Identity,
        certs: [Vec<u8>; 3],
        addrs: [SocketAddr; 3],
    ) -> Self {
        Self {
            id,
            identity,
            certs,
            addrs,
            timeout: Duration::from_secs(120),
            max_frame: 1 << 30,
            setup_timeout: Duration::from_secs(30),
            latency: Duration::ZERO,
        }
    }
}

struct Link {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Frames with the time they were read off the socket.
    rx: mpsc::Receiver<(std::time::Instant, Result<Vec<u8>, NetError>)>,
    writer: Option<JoinHandle<()>>,
}

pub struct TcpNetwork {
    id: PartyId,
    rt: Runtime,
    links: [Option<Link>; 3],
    timeout: Duration,
    max_frame: usize,
    latency: Duration,
    stats: NetStats,
}

fn io_err(peer: PartyId, e: impl std::fmt::Display) -> NetError {
    NetError::Io {
        peer,
        detail: e.to_string(),
    }
}

fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    // AES-128-GCM first: the fastest suite with AES-NI, at 128-bit security.
    let mut p = (*provider()).clone();
    p.cipher_suites
        .sort_by_key(|s| (s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256) as u8);
    Arc::new(p)
}

impl TcpNetwork {
    /// Connects to the two other parties: dials lower ids, accepts higher
    /// ids on `listener` (already bound, so its port can be published
    /// before anyone dials).
    pub fn establish(cfg: TcpConfig, listener: std::net::TcpListener) -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| NetError::Setup(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let streams = rt.block_on(async {
            tokio::time::timeout(cfg.setup_timeout, connect_all(&cfg, listener))
                .await
                .map_err(|_| {
                    NetError::Setup(format!(
                        "peers not connected within {:?}",
                        cfg.setup_timeout
                    ))
                })?
        })?;
        let mut links: [Option<Link>; 3] = Default::default();
        let _guard = rt.enter();
        for (peer, stream) in streams {
            let (mut rd, mut wr) = tokio::io::split(stream);
            let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
            let (in_tx, in_rx) = mpsc::channel(QUEUE);
            let max = cfg.max_frame;
            let writer = tokio::spawn(async move {
                while let Some(msg) = out_rx.recv().await {
                    let len = (msg.len() as u32).to_be_bytes();
                    if wr.write_all(&len).await.is_err() || wr.write_all(&msg).await.is_err() {
                        return;
                    }
                    if wr.flush().await.is_err() {
                        return;
                    }
                }
                let _ = wr.shutdown().await;
            });
            tokio::spawn(async move {
                loop {
                    let r = read_frame(&mut rd, peer, max).await;
                    let stop = r.is_err();
                    if in_tx.send((std::time::Instant::now(), r)).await.is_err() || stop {
                        return;
                    }
                }
            });
            links[peer.index()] = Some(Link {
                tx: Some(out_tx),
                rx: in_rx,
                writer: Some(writer),
            });
        }
        drop(_guard);
        Ok(Self {
            id: cfg.id,
            rt,
            links,
            timeout: cfg.timeout,
            max_frame: cfg.max_frame.min(u32::MAX as usize),
            latency: cfg.latency,
            stats: NetStats::default(),
        })
    }
}

/// Reads one frame, `u32` big-endian length then the payload, from a peer
/// whose frames may be at most `max` bytes. A stream that ends before a
/// header is [`NetError::Closed`]; one that ends inside a frame is an I/O
/// error. Public for the fuzz targets only.
#[doc(hidden)]
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    peer: PartyId,
    max: usize,
) -> Result<Vec<u8>, NetError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(NetError::Closed(peer))
        }
        Err(e) => return Err(io_err(peer, e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(NetError::Oversize { peer, len, max });
    }
    // A header alone cannot make us allocate more than PREALLOC; larger
    // frames grow with the data actually received. Streamed chunks of the
    // engine fit, so they are read without a copy.
    let mut buf = Vec::with_capacity(len.min(PREALLOC));
    match rd.take(len as u64).read_to_end(&mut buf).await {
        Ok(got) if got == len => Ok(buf),
        Ok(_) => Err(io_err(peer, "connection closed in the middle of a frame")),
        Err(e) => Err(io_err(peer, e)),
    }
}

type Tls = tokio_rustls::TlsStream<TcpStream>;

async fn connect_all(
    cfg: &TcpConfig,
    listener: std::net::TcpListener,
) -> Result<Vec<(PartyId, Tls)>, NetError> {
    let me = cfg.id.index();
    let mut out = Vec::new();
    // Dial lower ids.
    for i in 0..me {
        let peer = PartyId::new(i).unwrap();
        let config = ClientConfig::builder_with_provider(tls_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Pinned::new(vec![cfg.certs[i].clone()]))
            .with_client_auth_cert(vec![cfg.identity.cert()], cfg.identity.key())
            .map_err(|e| NetError::Setup(e.to_string()))?;
        // The peer may not listen yet: retry until the setup deadline
        // (enforced by the caller's timeout around the whole setup).
        let mut backoff = Duration::from_millis(50);
        let tcp = loop {
            match TcpStream::connect(cfg.addrs[i]).await {
                Ok(t) => break t,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(io_err(peer, e)),
            }
        };
        tcp.set_nodelay(true).ok();
        let name = ServerName::try_from(format!("party-{i}"))
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| io_err(peer, format!("TLS handshake: {e}")))?;
        tls.write_all(&[me as u8])
            .await
            .map_err(|e| io_err(peer, e))?;
        tls.flush().await.map_err(|e| io_err(peer, e))?;
        // In TLS 1.3 the client's certificate is checked after the client
        // finished its handshake; wait for the listener's verdict so a
        // refused identity fails here, not at the first protocol message.
        let mut ack = [0u8; 1];
        if tls.read_exact(&mut ack).await.is_err() || ack[0] != 1 {
            return Err(io_err(peer, "TLS peer refused our certificate or id"));
        }
        out.push((peer, Tls::Client(tls)));
    }
    // Accept higher ids.
    let higher: Vec<Vec<u8>> = (me + 1..3).map(|j| cfg.certs[j].clone()).collect();
    if !higher.is_empty() {
        let config = ServerConfig::builder_with_provider(tls_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_client_cert_verifier(Pinned::new(higher))
            .with_single_cert(vec![cfg.identity.cert()], cfg.identity.key())
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener =
            TcpListener::from_std(listener).map_err(|e| NetError::Setup(e.to_string()))?;
        let mut pending: Vec<usize> = (me + 1..3).collect();
        // Each handshake runs in its own task with its own deadline, so a
        // stranger that connects and stays silent cannot hold up the others.
        let mut handshakes = tokio::task::JoinSet::new();
        while !pending.is_empty() {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, _) = accepted.map_err(|e| NetError::Setup(e.to_string()))?;
                    tcp.set_nodelay(true).ok();
                    let (acceptor, certs) = (acceptor.clone(), cfg.certs.clone());
                    handshakes.spawn(tokio::time::timeout(HANDSHAKE_TIMEOUT, async move {
                        let mut tls = acceptor.accept(tcp).await.ok()?;
                        let mut id = [0u8; 1];
                        tls.read_exact(&mut id).await.ok()?;
                        let j = id[0] as usize;
                        let cert_ok = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .is_some_and(|c| j < 3 && c.as_ref() == certs[j].as_slice());
                        cert_ok.then_some((j, tls))
                    }));
                }
                Some(done) = handshakes.join_next() => {
                    // A failed, stalled or refused handshake is dropped.
                    let Ok(Ok(Some((j, mut tls)))) = done else { continue };
                    let Some(pos) = pending.iter().position(|&p| p == j) else { continue };
                    if tls.write_all(&[1]).await.is_err() || tls.flush().await.is_err() {
                        continue;
                    }
                    pending.remove(pos);
                    out.push((PartyId::new(j).unwrap(), Tls::Server(tls)));
                }
            }
        }
    }
    Ok(out)
}

impl Network for TcpNetwork {
    fn id(&self) -> PartyId {
        self.id
    }

    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), NetError> {
        let len = msg.len() as u64 + 4;
        if msg.len() > self.max_frame {
            return Err(NetError::Oversize {
                peer: to,
                len: msg.len(),
                max: self.max_frame,
            });
        }
        let timeout = self.timeout;
        let link = self.links[to.index()].as_mut().ok_or(NetError::SelfSend)?;
        let tx = link.tx.as_ref().ok_or(NetError::Closed(to))?;
        // A peer that is alive but stopped reading fills the queues; give up
        // after the same timeout as a receive instead of blocking forever.
        match self
            .rt
            .block_on(async { tokio::time::timeout(timeout, tx.send(msg)).await })
        {
            Err(_) => return Err(NetError::Timeout(to, timeout)),
            Ok(Err(_)) => return Err(NetError::Closed(to)),
            Ok(Ok(())) => {}
        }
        self.stats.bytes_sent += len;
        self.stats.messages_sent += 1;
        Ok(())
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError> {
        let timeout = self.timeout;
        let link = self.links[from.index()]
            .as_mut()
            .ok_or(NetError::SelfSend)?;
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, link.rx.recv()).await });
        let (arrived, msg) = match r {
            Err(_) => return Err(NetError::Timeout(from, timeout)),
            Ok(None) => return Err(NetError::Closed(from)),
            Ok(Some(m)) => m,
        };
        // Emulated delay: the frame is usable `latency` after it arrived
        // (a thread sleep, precise to well under a millisecond, unlike
        // tokio's 1 ms timer wheel).
        let due = arrived + self.latency;
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let msg = msg?;
        self.stats.bytes_received += msg.len() as u64 + 4;
        Ok(msg)
    }

    fn stats(&self) -> NetStats {
        self.stats
    }
}

impl Drop for TcpNetwork {
    /// Flushes queued frames before closing, so a party's last message is
    /// delivered even when the process exits right after.
    fn drop(&mut self) {
        let writers: Vec<JoinHandle<()>> = self
            .links
            .iter_mut()
            .flatten()
            .filter_map(|l| {
                l.tx.take();
                l.writer.take()
            })
            .collect();
        self.rt.block_on(async {
            for w in writers {
                let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
            }
        });
    }
}
