//! The recording TCP proxy. A prover connects, sends one preamble line
//! `TRIAD-PROXY/1 <session id: 32 lowercase hex> <host> <port>\n`, and its
//! TLS session to `host:port` then flows through, recorded byte for byte in
//! each direction. Limits: preamble time, session time, transcript size and
//! the number of concurrent connections; a session that breaks a limit is
//! closed at once and recorded only as its outcome (no bytes kept).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::notarize::RecordedSession;
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_transcript_bytes: 1 << 20,
            session_timeout: Duration::from_secs(30),
            preamble_timeout: Duration::from_secs(5),
            max_connections: 256,
        }
    }
}

/// How a proxied session ended.
#[derive(Clone, Debug)]
pub enum SessionOutcome {
    Complete(RecordedSession),
    TranscriptTooLarge,
    TimedOut,
    ConnectFailed,
}

type Finished = Arc<Mutex<(HashMap<String, SessionOutcome>, Vec<String>)>>;

/// A running proxy. Dropping it does not stop it; call [`ProxyHandle::shutdown`].
pub struct ProxyHandle {
    pub addr: std::net::SocketAddr,
    finished: Finished,
    /// Woken whenever a session finishes.
    done: Arc<tokio::sync::Notify>,
    active: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ProxyHandle {
    /// Removes and returns a finished session's outcome (single use).
    pub fn take_session(&self, session_id: &str) -> Option<SessionOutcome> {
        let mut g = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let out = g.0.remove(session_id);
        g.1.retain(|s| s != session_id);
        out
    }

    /// Waits up to `timeout` for the session to finish, then takes it
    /// (see [`ProxyHandle::take_session`]).
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
            if let Some(o) = self.take_session(session_id) {
                return Some(o);
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

/// Starts the proxy on `listener` (tests bind `127.0.0.1:0`).
pub fn launch_proxy(listener: TcpListener, config: ProxyConfig) -> std::io::Result<ProxyHandle> {
    let addr = listener.local_addr()?;
    let finished: Finished = Arc::default();
    let active = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let done = Arc::new(tokio::sync::Notify::new());
    let (f, a, d) = (finished.clone(), active.clone(), done.clone());
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
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Some((id, outcome)) = serve(sock, &cfg).await {
                    let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
                    if g.0.insert(id.clone(), outcome).is_none() {
                        g.1.push(id);
                    }
                    while g.1.len() > MAX_FINISHED {
                        let old = g.1.remove(0);
                        g.0.remove(&old);
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
        finished,
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

async fn serve(mut client: TcpStream, cfg: &ProxyConfig) -> Option<(String, SessionOutcome)> {
    let line = tokio::time::timeout(cfg.preamble_timeout, read_preamble(&mut client))
        .await
        .ok()??;
    let (sid, host, port) = parse_preamble(&line)?;
    let deadline = tokio::time::Instant::now() + cfg.session_timeout;
    let session_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let server =
        match tokio::time::timeout_at(deadline, TcpStream::connect((host.as_str(), port))).await {
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

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            max_transcript_bytes: 4096,
            session_timeout: Duration::from_millis(400),
            preamble_timeout: Duration::from_millis(200),
            max_connections: 8,
        }
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
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = target.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"world!").await.unwrap();
        });
        let p = launch_proxy(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg()).unwrap();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("TRIAD-PROXY/1 {SID} 127.0.0.1 {port}\nhello").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"world!");
        drop(c);
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
        let p = launch_proxy(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg()).unwrap();
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
        let p = launch_proxy(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg()).unwrap();
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
}
