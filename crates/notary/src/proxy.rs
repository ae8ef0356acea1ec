//! The recording TCP proxy. A prover connects, sends one preamble line
//! `TRIAD-PROXY/1 <session id: 32 lowercase hex> <host> <port>\n`, and its
//! TLS session to `host:port` then flows through, recorded byte for byte in
//! each direction. Limits: preamble time, session time, transcript size and
//! the number of concurrent connections; a session that breaks a limit is
//! closed at once and recorded only as its outcome (no bytes kept).
//!
//! The proxy relays only to targets its operator allows (see [`crate::target`]):
//! `host:port` must be on [`ProxyConfig::allowed_targets`], the host is
//! resolved once, every address is checked (special-purpose addresses only
//! when listed exactly, the notary's own addresses never), and the proxy
//! connects to the checked addresses. A refused target is recorded as
//! [`SessionOutcome::TargetRefused`] and the prover's connection closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::notarize::RecordedSession;
use crate::target::{resolve_checked, AllowedTarget, Resolved, TargetPolicy, TargetRefusal};
use crate::transcript::Transcript;

/// Longest accepted preamble line, in bytes.
const MAX_PREAMBLE: usize = 300;
/// How many finished sessions are kept for the API to claim; the oldest are
/// dropped first.
const MAX_FINISHED: usize = 1024;

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Both directions together.
    pub max_transcript_bytes: usize,
    /// From the preamble to the end of both directions.
    pub session_timeout: Duration,
    pub preamble_timeout: Duration,
    pub max_connections: usize,
    /// The only `host:port` targets relayed to (empty: none). A listed host
    /// name must still resolve to public addresses only; a loopback,
    /// private or other special-purpose address is relayed to only if that
    /// exact `address:port` is listed too.
    pub allowed_targets: Vec<AllowedTarget>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_transcript_bytes: 1 << 20,
            session_timeout: Duration::from_secs(30),
            preamble_timeout: Duration::from_secs(5),
            max_connections: 256,
            allowed_targets: Vec::new(),
        }
    }
}

/// How a proxied session ended.
#[derive(Clone, Debug)]
pub enum SessionOutcome {
    Complete(RecordedSession),
    TranscriptTooLarge,
    TimedOut,
    /// The name did not resolve or no checked address accepted the connection.
    ConnectFailed,
    /// The proxy does not relay to this target; nothing was connected.
    TargetRefused(TargetRefusal),
}

/// The proxy's sessions, under one lock so a session moves from `running`
/// to `finished` atomically.
#[derive(Default)]
struct Sessions {
    finished: HashMap<String, SessionOutcome>,
    /// Finished session ids, oldest first.
    order: Vec<String>,
    /// Preamble read, outcome not yet known (how many connections per id).
    running: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Sessions>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sessions> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running proxy. Dropping it does not stop it; call [`ProxyHandle::shutdown`].
pub struct ProxyHandle {
    pub addr: std::net::SocketAddr,
    sessions: Shared,
    /// Woken whenever a session finishes.
    done: Arc<tokio::sync::Notify>,
    active: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ProxyHandle {
    /// Removes and returns a finished session's outcome (single use).
    pub fn take_session(&self, session_id: &str) -> Option<SessionOutcome> {
        let mut g = lock(&self.sessions);
        let out = g.finished.remove(session_id);
        g.order.retain(|s| s != session_id);
        out
    }

    /// Takes the session (see [`ProxyHandle::take_session`]), waiting up to
    /// `timeout` if the proxy is still relaying it. A session id the proxy
    /// has not seen gets `None` at once: a prover holding a disclosure has
    /// finished its handshake, so the proxy has read its preamble, and one
    /// whose connection was refused over the limit left no session to wait for.
    pub async fn wait_session(
        &self,
        session_id: &str,
        timeout: Duration,
    ) -> Option<SessionOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = lock(&self.sessions);
                if let Some(o) = g.finished.remove(session_id) {
                    g.order.retain(|s| s != session_id);
                    return Some(o);
                }
                if !g.running.contains_key(session_id) {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.take_session(session_id);
            }
        }
    }

    /// Connections currently open (being relayed or awaiting a preamble).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Stops accepting; open sessions end on their own limits.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Starts the proxy on `listener` (tests bind `127.0.0.1:0`). The proxy
/// never relays to its own address.
pub fn launch_proxy(listener: TcpListener, config: ProxyConfig) -> std::io::Result<ProxyHandle> {
    launch_proxy_guarding(listener, config, &[])
}

/// [`launch_proxy`], also never relaying to `also_own` (the notary's API).
pub(crate) fn launch_proxy_guarding(
    listener: TcpListener,
    config: ProxyConfig,
    also_own: &[std::net::SocketAddr],
) -> std::io::Result<ProxyHandle> {
    let addr = listener.local_addr()?;
    let mut own = vec![addr];
    own.extend_from_slice(also_own);
    let policy = Arc::new(TargetPolicy {
        allowed: config.allowed_targets.clone(),
        own,
    });
    let sessions: Shared = Arc::default();
    let active = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let done = Arc::new(tokio::sync::Notify::new());
    let (f, a, d) = (sessions.clone(), active.clone(), done.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                // E.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // Over the connection limit: refuse by closing.
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            let (f, a, d, cfg) = (f.clone(), a.clone(), d.clone(), config.clone());
            let policy = policy.clone();
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Some((id, outcome)) = serve(sock, &cfg, &policy, &f).await {
                    let mut g = lock(&f);
                    if let Some(n) = g.running.get_mut(&id) {
                        *n -= 1;
                        if *n == 0 {
                            g.running.remove(&id);
                        }
                    }
                    if g.finished.insert(id.clone(), outcome).is_none() {
                        g.order.push(id);
                    }
                    while g.order.len() > MAX_FINISHED {
                        let old = g.order.remove(0);
                        g.finished.remove(&old);
                    }
                    drop(g);
                    d.notify_waiters();
                }
                a.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            });
        }
    });
    Ok(ProxyHandle {
        addr,
        sessions,
        done,
        active,
        task,
    })
}

/// Parses `TRIAD-PROXY/1 <sid> <host> <port>` (the line without its `\n`).
/// Public for the fuzz targets only.
#[doc(hidden)]
pub fn parse_preamble(line: &[u8]) -> Option<(String, String, u16)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut it = line.split(' ');
    if it.next()? != "TRIAD-PROXY/1" {
        return None;
    }
    let sid = it.next()?;
    let host = it.next()?;
    let port: u16 = it.next()?.parse().ok()?;
    let sid_ok = sid.len() == 32 && sid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if it.next().is_some() || !sid_ok || !host_ok || port == 0 {
        return None;
    }
    Some((sid.to_string(), host.to_string(), port))
}

async fn read_preamble(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so no TLS bytes after the newline are consumed.
    while line.len() <= MAX_PREAMBLE {
        if sock.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        if byte[0] == b'\n' {
            return Some(line);
        }
        line.push(byte[0]);
    }
    None
}

/// One connection. Once the preamble is parsed the session is `running` and
/// every path returns its outcome (the caller moves it to `finished`).
async fn serve(
    mut client: TcpStream,
    cfg: &ProxyConfig,
    policy: &TargetPolicy,
    sessions: &Shared,
) -> Option<(String, SessionOutcome)> {
    let line = tokio::time::timeout(cfg.preamble_timeout, read_preamble(&mut client))
        .await
        .ok()??;
    let (sid, host, port) = parse_preamble(&line)?;
    *lock(sessions).running.entry(sid.clone()).or_insert(0) += 1;
    let deadline = tokio::time::Instant::now() + cfg.session_timeout;
    let session_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Resolve once and connect only to the addresses that passed the check
    // (never to the name again: no DNS rebinding between check and connect).
    let addrs = match tokio::time::timeout_at(deadline, resolve_checked(policy, &host, port)).await
    {
        Ok(Resolved::Addrs(a)) => a,
        Ok(Resolved::Refused(r)) => return Some((sid, SessionOutcome::TargetRefused(r))),
        Ok(Resolved::Unresolvable) => return Some((sid, SessionOutcome::ConnectFailed)),
        Err(_) => return Some((sid, SessionOutcome::TimedOut)),
    };
    let server = match tokio::time::timeout_at(deadline, TcpStream::connect(addrs.as_slice())).await
    {
        Ok(Ok(s)) => s,
        _ => return Some((sid, SessionOutcome::ConnectFailed)),
    };
    let outcome =
        match tokio::time::timeout_at(deadline, relay(client, server, cfg.max_transcript_bytes))
            .await
        {
            Err(_) => SessionOutcome::TimedOut,
            Ok(None) => SessionOutcome::TranscriptTooLarge,
            Ok(Some(transcript)) => SessionOutcome::Complete(RecordedSession {
                server_name: host,
                transcript,
                session_time,
            }),
        };
    Some((sid, outcome))
}

/// Relays until both sides have closed; `None` if the size limit is hit.
async fn relay(client: TcpStream, server: TcpStream, max: usize) -> Option<Transcript> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut t = Transcript::default();
    let (mut up_open, mut down_open) = (true, true);
    let mut ubuf = vec![0u8; 16 * 1024];
    let mut dbuf = vec![0u8; 16 * 1024];
    while up_open || down_open {
        tokio::select! {
            r = cr.read(&mut ubuf), if up_open => match r {
                Ok(0) | Err(_) => { up_open = false; let _ = sw.shutdown().await; }
                Ok(n) => {
                    t.client_to_server.extend_from_slice(&ubuf[..n]);
                    if t.client_to_server.len() + t.server_to_client.len() > max { return None; }
                    if sw.write_all(&ubuf[..n]).await.is_err() { up_open = false; }
                }
            },
            r = sr.read(&mut dbuf), if down_open => match r {
                Ok(0) | Err(_) => { down_open = false; let _ = cw.shutdown().await; }
                Ok(n) => {
                    t.server_to_client.extend_from_slice(&dbuf[..n]);
                    if t.client_to_server.len() + t.server_to_client.len() > max { return None; }
                    if cw.write_all(&dbuf[..n]).await.is_err() { down_open = false; }
                }
            },
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "0123456789abcdef0123456789abcdef";

    /// Limits for tests; relays only to `allowed`.
    fn cfg(allowed: &[&str]) -> ProxyConfig {
        ProxyConfig {
            max_transcript_bytes: 4096,
            session_timeout: Duration::from_millis(400),
            preamble_timeout: Duration::from_millis(200),
            max_connections: 8,
            allowed_targets: allowed.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// A target that answers "world!" to whatever it is sent, and counts
    /// the connections it accepted.
    async fn echo_target() -> (u16, Arc<AtomicUsize>) {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = target.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(b"world!").await;
                    }
                });
            }
        });
        (port, accepted)
    }

    /// Sends the preamble for `host port` plus "hello"; returns what came back.
    async fn through(p: &ProxyHandle, sid: &str, host: &str, port: u16) -> Vec<u8> {
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("TRIAD-PROXY/1 {sid} {host} {port}\nhello").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got).await;
        got
    }

    async fn wait_for(p: &ProxyHandle, sid: &str) -> SessionOutcome {
        for _ in 0..200 {
            if let Some(o) = p.take_session(sid) {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("session never finished");
    }

    #[test]
    fn preamble_parsing() {
        assert!(parse_preamble(format!("TRIAD-PROXY/1 {SID} 127.0.0.1 443").as_bytes()).is_some());
        for bad in [
            format!("TRIAD-PROXY/2 {SID} 127.0.0.1 443"),
            format!("TRIAD-PROXY/1 {} 127.0.0.1 443", SID.to_uppercase()),
            format!("TRIAD-PROXY/1 {SID} bad/host 443"),
            format!("TRIAD-PROXY/1 {SID} h 0"),
            format!("TRIAD-PROXY/1 {SID} h 443 extra"),
            "TRIAD-PROXY/1 short h 1".to_string(),
        ] {
            assert!(parse_preamble(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relays_and_records_both_directions() {
        let (port, _) = echo_target().await;
        let allowed = format!("127.0.0.1:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        assert_eq!(through(&p, SID, "127.0.0.1", port).await, b"world!");
        match wait_for(&p, SID).await {
            SessionOutcome::Complete(s) => {
                assert_eq!(s.transcript.client_to_server, b"hello");
                assert_eq!(s.transcript.server_to_client, b"world!");
                assert_eq!(s.server_name, "127.0.0.1");
            }
            o => panic!("{o:?}"),
        }
        assert!(p.take_session(SID).is_none(), "sessions are single use");
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_transcript_is_cut() {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = target.accept().await.unwrap();
            let _ = s.write_all(&[7u8; 64 * 1024]).await;
        });
        let allowed = format!("127.0.0.1:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("TRIAD-PROXY/1 {SID} 127.0.0.1 {port}\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got).await;
        assert!(got.len() < 64 * 1024);
        assert!(matches!(
            wait_for(&p, SID).await,
            SessionOutcome::TranscriptTooLarge
        ));
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_clients_time_out_and_free_resources() {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        // The target accepts and then says nothing, forever.
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = target.accept().await {
                held.push(s);
            }
        });
        let allowed = format!("127.0.0.1:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        // One client stalls after the preamble, one never sends a preamble.
        let mut stalled = TcpStream::connect(p.addr).await.unwrap();
        stalled
            .write_all(format!("TRIAD-PROXY/1 {SID} 127.0.0.1 {port}\n").as_bytes())
            .await
            .unwrap();
        let mut silent = TcpStream::connect(p.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.active_connections(), 2);
        assert!(matches!(wait_for(&p, SID).await, SessionOutcome::TimedOut));
        // Both connections are closed by the proxy.
        let mut buf = [0u8; 1];
        let eof = |r: std::io::Result<usize>| matches!(r, Ok(0) | Err(_));
        assert!(eof(stalled.read(&mut buf).await));
        assert!(eof(silent.read(&mut buf).await));
        for _ in 0..100 {
            if p.active_connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(p.active_connections(), 0);
        p.shutdown();
    }

    fn refused(o: SessionOutcome) -> TargetRefusal {
        match o {
            SessionOutcome::TargetRefused(r) => r,
            o => panic!("expected a refused target, got {o:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loopback_is_refused_by_default() {
        let (port, accepted) = echo_target().await;
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            ProxyConfig::default(),
        )
        .unwrap();
        assert_eq!(through(&p, SID, "127.0.0.1", port).await, b"");
        assert!(matches!(
            refused(wait_for(&p, SID).await),
            TargetRefusal::NotAllowed { .. }
        ));
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was connected");
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn targets_off_the_list_are_refused() {
        let (port, accepted) = echo_target().await;
        let (other, other_accepted) = echo_target().await;
        let allowed = format!("127.0.0.1:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        // The listed target relays; another port of the same host does not.
        assert_eq!(through(&p, SID, "127.0.0.1", port).await, b"world!");
        assert!(matches!(
            wait_for(&p, SID).await,
            SessionOutcome::Complete(_)
        ));
        let sid2 = "11111111111111111111111111111111";
        assert_eq!(through(&p, sid2, "127.0.0.1", other).await, b"");
        let r = refused(wait_for(&p, sid2).await);
        assert_eq!(
            r,
            TargetRefusal::NotAllowed {
                host: "127.0.0.1".into(),
                port: other
            }
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(other_accepted.load(Ordering::SeqCst), 0);
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listed_name_resolving_to_loopback_is_refused() {
        let (port, accepted) = echo_target().await;
        // The name is listed, its loopback address is not.
        let allowed = format!("localhost:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        assert_eq!(through(&p, SID, "localhost", port).await, b"");
        match refused(wait_for(&p, SID).await) {
            TargetRefusal::SpecialAddress { addr, class, .. } => {
                assert!(addr.ip().is_loopback(), "{addr}");
                assert_eq!(class, "loopback");
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_proxy_never_relays_to_itself() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = listener.local_addr().unwrap();
        // Even listed explicitly, by address and by name.
        let (by_addr, by_name) = (own.to_string(), format!("localhost:{}", own.port()));
        let p = launch_proxy(listener, cfg(&[&by_addr, &by_name])).unwrap();
        assert_eq!(through(&p, SID, "127.0.0.1", own.port()).await, b"");
        assert!(matches!(
            refused(wait_for(&p, SID).await),
            TargetRefusal::NotaryItself { addr, .. } if addr == own
        ));
        let sid2 = "22222222222222222222222222222222";
        assert_eq!(through(&p, sid2, "localhost", own.port()).await, b"");
        assert!(matches!(
            refused(wait_for(&p, sid2).await),
            TargetRefusal::NotaryItself { .. }
        ));
        // No relayed connection to itself was opened (each `through` is one
        // connection, closed): nothing is left open.
        for _ in 0..100 {
            if p.active_connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(p.active_connections(), 0);
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_only_for_sessions_in_progress() {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        // The target accepts and then says nothing.
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = target.accept().await {
                held.push(s);
            }
        });
        let allowed = format!("127.0.0.1:{port}");
        let p = launch_proxy(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cfg(&[&allowed]),
        )
        .unwrap();
        // Never seen: answered at once, not after the wait.
        let t = tokio::time::Instant::now();
        assert!(p.wait_session(SID, Duration::from_secs(5)).await.is_none());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // In progress: waited for until it ends (here at the session limit).
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("TRIAD-PROXY/1 {SID} 127.0.0.1 {port}\n").as_bytes())
            .await
            .unwrap();
        while p.active_connections() == 0 || !lock(&p.sessions).running.contains_key(SID) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let o = p.wait_session(SID, Duration::from_secs(5)).await;
        assert!(matches!(o, Some(SessionOutcome::TimedOut)), "{o:?}");
        assert!(lock(&p.sessions).running.is_empty());
        p.shutdown();
    }
}
