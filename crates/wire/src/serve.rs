//! The HTTPS server loop every service runs: TLS (rustls) in front of
//! HTTP/1.1 (hyper) in front of an axum [`Router`], with a bound at every
//! stage where a peer could otherwise hold a connection, a task or memory
//! for free.
//!
//! | stage | bound | over it |
//! |---|---|---|
//! | 1. accept | [`ServeLimits::max_conns_per_ip`], [`ServeLimits::max_conns`] | the socket is closed at once, before any TLS work |
//! | 2. TLS handshake | [`ServeLimits::handshake_timeout`]; at most [`ServeLimits::max_handshakes`] at once | closed; the accept loop waits for a slot, so a burst queues in the backlog |
//! | 3. request head | [`ServeLimits::header_read_timeout`], from the connection's start or the end of the previous response | closed (hyper) |
//! | 4. request body | [`ServeLimits::body_timeout`] from the head | 408 `request_timeout`, closed |
//! | 5. handler | [`ServeLimits::request_timeout`] from the head | 503 `request_timeout`, closed |
//! | 6. response | a write blocked for [`ServeLimits::write_stall_timeout`] (the client stopped reading) | closed |
//! | 7. close | what the client still sends is read and discarded for at most 10 s (lingering close), unless a deadline ended the connection | closed |
//!
//! Hyper starts its head timer whenever a connection goes idle, so stage 3
//! is also the keep-alive idle timeout: a connection with no request under
//! way lives at most `header_read_timeout`. Heads over [`MAX_URI_BYTES`],
//! [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] get 414 / 431 in the JSON error
//! shape; hyper's own hard stop ([`HYPER_MAX_BUF`]) lies above those and
//! answers a bare 431. Every other error answer without the JSON shape (an
//! axum extractor's plain-text rejection, say) is rewritten into it, so a
//! client always gets `{"error", "message"}`.
//!
//! The connection counters are released by a guard that the stream owns:
//! whatever ends a connection (the peer, a timeout, the server stopping)
//! releases its slot. Connection tasks belong to the serve future: dropping
//! it (aborting the service's task) ends every connection.

use crate::ErrorCode;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::https::{ApiError, PeerAddr};

/// Longest request target (path and query) answered normally; longer: 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and header fields) answered
/// normally; larger: 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields in a request; more: 431.
pub const MAX_HEADERS: usize = 100;
/// Hyper's connection buffer: a head that does not fit gets hyper's own
/// bare 431. Above [`MAX_HEAD_BYTES`], so oversize heads up to here get
/// the JSON answer; far below hyper's default (~400 KiB), so an idle
/// connection costs little.
pub const HYPER_MAX_BUF: usize = 64 * 1024;
/// Header fields hyper parses (beyond [`MAX_HEADERS`], so that the 431 for
/// too many is ours, in the JSON shape).
const HYPER_MAX_HEADERS: usize = 2 * MAX_HEADERS;
/// Lingering close: after the last answer, what the client still sends is
/// read and discarded for at most this long in all, ...
const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// ... and this long without a byte ...
const LINGER_IDLE: Duration = Duration::from_secs(2);
/// ... and this many bytes.
const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Descriptors kept for everything but client connections (the store,
/// outgoing calls, MPC links) when the open-file limit caps `max_conns`.
const RESERVED_FDS: u64 = 128;

/// The limits of [`serve_with`]. [`ServeLimits::default`] suits a public
/// service; a devnet, whose simulated providers all come from 127.0.0.1,
/// raises `max_conns_per_ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once, handshakes included (capped below the
    /// process's open-file limit at start).
    pub max_conns: usize,
    /// Connections open at once from one client address (IPv6: one /64).
    pub max_conns_per_ip: usize,
    /// TLS handshakes in progress at once.
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    /// From the connection's start, or the end of the previous response,
    /// to the complete head of the next request; also the keep-alive idle
    /// timeout.
    pub header_read_timeout: Duration,
    /// From the head to the end of the request body.
    pub body_timeout: Duration,
    /// From the head to the handler's answer. Services whose handlers wait
    /// longer on purpose (a long poll, an MPC job) raise it above that.
    pub request_timeout: Duration,
    /// Longest a write of the answer may stay blocked (the client stopped
    /// reading).
    pub write_stall_timeout: Duration,
}

impl ServeLimits {
    pub const DEFAULT: Self = Self {
        max_conns: 1024,
        max_conns_per_ip: 64,
        max_handshakes: 128,
        handshake_timeout: Duration::from_secs(10),
        header_read_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        write_stall_timeout: Duration::from_secs(30),
    };

    /// The limits actually applied: counts at least 1, the body deadline
    /// within the request deadline, and `max_conns` below the open-file
    /// limit (otherwise idle connections could use every descriptor and
    /// leave none for the accept of a legitimate client).
    fn effective(self, open_files: Option<u64>) -> Self {
        let mut l = self;
        l.max_conns = l.max_conns.max(1);
        if let Some(n) = open_files {
            let room = n.saturating_sub(RESERVED_FDS).max(16);
            l.max_conns = l.max_conns.min(usize::try_from(room).unwrap_or(usize::MAX));
        }
        l.max_conns_per_ip = l.max_conns_per_ip.clamp(1, l.max_conns);
        l.max_handshakes = l.max_handshakes.max(1);
        l.body_timeout = l.body_timeout.min(l.request_timeout);
        l
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The soft limit on open files (Linux: `/proc/self/limits`), if known.
fn open_file_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------- connection accounting ----------

/// Open connections, in all and per client address.
struct ConnTable {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place in the [`ConnTable`]; released on drop.
struct ConnSlot {
    table: Arc<ConnTable>,
    key: IpAddr,
}

/// The address a per-client cap counts: IPv4 (mapped or not) as is, IPv6
/// by /64, the block a single subscriber usually holds.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl ConnTable {
    fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            counts: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a connection from `ip`, or `None` over either cap.
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let key = client_key(ip);
        let mut g = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *g;
        let n = per_ip.get(&key).copied().unwrap_or(0);
        if *total >= self.max_total || n >= self.max_per_ip {
            return None;
        }
        *total += 1;
        per_ip.insert(key, n + 1);
        Some(ConnSlot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.table.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *g;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.key);
            }
        }
    }
}

/// The server side of one connection: the TLS stream, its slot in the
/// connection table (released when hyper drops the stream), and the write
/// stall deadline.
struct ServerIo {
    tls: TlsStream<TcpStream>,
    _slot: ConnSlot,
    write_stall_timeout: Duration,
    /// Armed while a write is blocked.
    stall: Option<Pin<Box<Sleep>>>,
}

impl ServerIo {
    /// After a write returned `Pending`: the error once the write has been
    /// blocked for `write_stall_timeout`.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let t = self.write_stall_timeout;
        let sleep = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_step<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx).map(Err),
        }
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tls).poll_write(cx, buf);
        this.write_step(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tls).poll_write_vectored(cx, bufs);
        this.write_step(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tls).poll_flush(cx);
        this.write_step(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tls).poll_shutdown(cx);
        this.write_step(cx, r)
    }
}

// ---------- the request body deadline ----------

/// The request body, failing once its deadline passes; `late` tells the
/// serve loop to answer 408 whatever the handler made of the error.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
}

/// The error a handler's body read gets when the body is late.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
pub struct BodyTimeout;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(f) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.late.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------- requests ----------

/// The answer that also closes the connection (after a timeout the
/// connection's state is not worth keeping).
fn closing(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 414 / 431 for an oversize head, in the JSON shape.
fn check_head<B>(req: &Request<B>) -> Result<(), ApiError> {
    let u = req.uri();
    let uri = u.scheme_str().map_or(0, str::len)
        + u.authority().map_or(0, |a| a.as_str().len())
        + u.path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("request target over {MAX_URI_BYTES} bytes"),
        ));
    }
    let headers = req.headers();
    let head: usize = uri
        + req.method().as_str().len()
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if headers.len() > MAX_HEADERS || head > MAX_HEAD_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!("request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"),
        ));
    }
    Ok(())
}

/// The error code of an error answer that came without one.
fn code_for_status(s: StatusCode) -> ErrorCode {
    match s {
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Unprocessable,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::HttpError,
    }
}

/// Rewrites an error answer that is not in the JSON error shape (axum's
/// plain-text extractor rejections, say) into it, keeping its status and
/// headers and using its text as the message.
async fn json_error_shape(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code_for_status(status), message).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    out
}

/// One request: head checks, the peer's address for handlers, the body
/// and handler deadlines, and the JSON error shape on every error.
/// `timed_out` is set when a deadline ended the request (the connection
/// then closes without lingering).
async fn handle(
    mut router: Router,
    peer: SocketAddr,
    limits: ServeLimits,
    timed_out: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    if let Err(e) = check_head(&req) {
        return Ok(e.into_response());
    }
    let start = Instant::now();
    let late = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(PeerAddr(peer)));
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: start + limits.body_timeout,
        sleep: None,
        late: late.clone(),
    });
    // Only the method is logged: paths hold submission ids (capabilities).
    let method = parts.method.clone();
    let call = tower_service::Service::call(&mut router, Request::from_parts(parts, body));
    let outcome = tokio::time::timeout_at(start + limits.request_timeout, call).await;
    // A late body is the client's doing, whatever the handler made of it.
    if late.load(Ordering::Relaxed) {
        tracing::debug!(%method, "request body late");
        timed_out.store(true, Ordering::Relaxed);
        return Ok(closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "request body not received within {} s",
                limits.body_timeout.as_secs_f64()
            ),
        )));
    }
    let resp = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(%method, "handler exceeded the request deadline");
            timed_out.store(true, Ordering::Relaxed);
            closing(ApiError::unavailable(
                ErrorCode::RequestTimeout,
                format!(
                    "no answer within {} s",
                    limits.request_timeout.as_secs_f64()
                ),
            ))
        }
    };
    Ok(json_error_shape(resp).await)
}

// ---------- connections ----------

/// What every connection of one server shares.
struct Server {
    acceptor: TlsAcceptor,
    http: hyper::server::conn::http1::Builder,
    router: Router,
    limits: ServeLimits,
}

/// One connection: the handshake (holding a handshake slot), then HTTP/1.1
/// until either side closes or a timeout ends it. Errors are the peer's
/// doing (resets, timeouts, malformed requests): the connection just ends.
async fn connection(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnSlot,
    handshake: OwnedSemaphorePermit,
) {
    let limits = server.limits;
    let _ = tcp.set_nodelay(true);
    let tls =
        match tokio::time::timeout(limits.handshake_timeout, server.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            _ => return,
        };
    drop(handshake);
    let io = TokioIo::new(ServerIo {
        tls,
        _slot: slot,
        write_stall_timeout: limits.write_stall_timeout,
        stall: None,
    });
    let router = server.router.clone();
    let timed_out = Arc::new(AtomicBool::new(false));
    let t = timed_out.clone();
    let svc =
        hyper::service::service_fn(move |req| handle(router.clone(), peer, limits, t.clone(), req));
    let conn = server.http.serve_connection(io, svc).without_shutdown();
    if let Ok(parts) = conn.await {
        if !timed_out.load(Ordering::Relaxed) {
            linger(parts.io.into_inner()).await;
        }
    }
}

/// Closes a connection politely (RFC 9112, section 9.6): our side first,
/// then what the client still sends is read and discarded for a moment.
/// A client still sending a body that was answered before it was read (a
/// 401 from an auth extractor, a 413) then reads the answer; closing at
/// once, with its bytes unread, would reset the connection and lose it.
async fn linger(mut io: ServerIo) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !matches!(
        tokio::time::timeout(LINGER_IDLE, io.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let end = Instant::now() + LINGER_TOTAL;
    let mut buf = [0u8; 8 * 1024];
    let mut discarded = 0usize;
    while discarded < LINGER_MAX_BYTES {
        let wait = (Instant::now() + LINGER_IDLE).min(end);
        match tokio::time::timeout_at(wait, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

/// Serves `router` over HTTPS on `listener` with [`ServeLimits::default`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
) -> io::Result<()> {
    serve_with(listener, tls, router, ServeLimits::default()).await
}

/// Serves `router` over HTTPS on `listener` within `limits`. Runs until
/// dropped; dropping it ends every connection.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: ServeLimits,
) -> io::Result<()> {
    let asked = limits.max_conns;
    let limits = limits.effective(open_file_limit());
    if limits.max_conns < asked {
        tracing::warn!(
            max_conns = limits.max_conns,
            asked,
            "HTTPS connections capped below the open-file limit"
        );
    }
    let table = ConnTable::new(limits.max_conns, limits.max_conns_per_ip);
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS);
    let server = Arc::new(Server {
        acceptor: TlsAcceptor::from(tls),
        http,
        router,
        limits,
    });
    let mut conns = JoinSet::new();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: say so now and then,
                // back off, go on.
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "HTTPS accept failed; backing off");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        // Over a cap: the socket is dropped, i.e. closed, before any TLS.
        let Some(slot) = table.try_acquire(peer.ip()) else {
            continue;
        };
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            continue;
        };
        conns.spawn(connection(server.clone(), tcp, peer, slot, permit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_global_caps_count_and_release() {
        let t = ConnTable::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = t.try_acquire(a).unwrap();
        let a2 = t.try_acquire(a).unwrap();
        assert!(t.try_acquire(a).is_none(), "per-IP cap");
        let b1 = t.try_acquire(b).unwrap();
        assert!(t.try_acquire(b).is_none(), "global cap");
        drop(a1);
        let _b2 = t.try_acquire(b).unwrap();
        drop((a2, b1));
        assert_eq!(
            t.counts.lock().unwrap().1.len(),
            1,
            "empty entries are dropped"
        );
    }

    #[test]
    fn ipv6_clients_count_by_64_and_mapped_ipv4_as_ipv4() {
        let t = ConnTable::new(10, 1);
        let _x = t.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(t.try_acquire("2001:db8::ffff:2".parse().unwrap()).is_none());
        let _y = t.try_acquire("2001:db8:0:1::1".parse().unwrap()).unwrap();
        let _z = t.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert!(t.try_acquire("::ffff:192.0.2.7".parse().unwrap()).is_none());
    }

    #[test]
    fn effective_limits_stay_below_the_open_file_limit() {
        let l = ServeLimits::DEFAULT.effective(Some(300));
        assert_eq!(l.max_conns, 300 - RESERVED_FDS as usize);
        assert_eq!(l.max_conns_per_ip, 64);
        let l = ServeLimits {
            max_conns_per_ip: 5000,
            ..ServeLimits::DEFAULT
        }
        .effective(None);
        assert_eq!(l.max_conns_per_ip, l.max_conns);
        assert_eq!(
            ServeLimits::DEFAULT.effective(Some(1 << 20)),
            ServeLimits::DEFAULT
        );
    }
}
