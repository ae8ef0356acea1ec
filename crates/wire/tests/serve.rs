//! The HTTPS server loop against misbehaving clients, over real TLS on
//! 127.0.0.1: slow-loris clients (silent, head or body trickled, not
//! reading the answer) are cut off by the timeouts, the connection caps
//! refuse at accept time and release on close, a normal client is served
//! while slow ones hold connections, every error answer has the JSON
//! shape, and `read_json` refuses oversize answers.
//!
//! Timing: the limits under test are 1-2 s; the tests only ask that things
//! happen within 20 s, so a loaded machine does not make them flaky.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use triad_wire::ErrorCode;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use triad_wire::https::{read_json, read_json_limited, ServeLimits};

/// Bound on anything the tests wait for.
const PATIENCE: Duration = Duration::from_secs(20);
const BIG: usize = 32 * 1024 * 1024;

struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A body of `n` chunks of 1 KiB that announces no length (so it is sent
/// chunked).
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
            b' ';
            1024
        ])))))
    }
}

fn router() -> Router {
    let json_array = |n: usize| {
        let mut v = b"[".to_vec();
        v.extend(std::iter::repeat_n(b"0,".as_slice(), n).flatten());
        v.extend_from_slice(b"0]");
        v
    };
    let big_json = json_array(600_000);
    let small_json = json_array(10);
    let r = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/echo", post(|b: Bytes| async move { b.len().to_string() }))
        // Refuses without reading the body, as an auth extractor does.
        .route(
            "/refuse",
            post(|| async {
                triad_wire::ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "no token",
                )
            }),
        )
        .route("/big", get(|| async { vec![b'x'; BIG] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "late"
            }),
        )
        .route(
            "/id/{n}",
            get(|Path(n): Path<u64>| async move { n.to_string() }),
        )
        .route(
            "/json/big",
            get(move || {
                let b = big_json.clone();
                async move { ([("content-type", "application/json")], b) }
            }),
        )
        .route(
            "/json/small",
            get(move || {
                let b = small_json.clone();
                async move { ([("content-type", "application/json")], b) }
            }),
        )
        .route(
            "/json/chunked",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    Body::new(Chunks(4096)),
                )
            }),
        );
    triad_wire::https::json_fallbacks(r)
}

async fn start(limits: ServeLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    let ca = triad_wire::pki::ServiceCa::create(&ca_path).unwrap();
    let leaf = ca.issue(dir.path(), "svc").unwrap();
    let tls = triad_wire::https::server_config(&leaf.cert, &leaf.key).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(triad_wire::https::serve_with(l, tls, router(), limits));
    Server {
        ca_pem: std::fs::read(&ca_path).unwrap(),
        _dir: dir,
        addr,
        task,
    }
}

/// Short timeouts for the stage under test.
fn quick() -> ServeLimits {
    ServeLimits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        write_stall_timeout: Duration::from_secs(1),
        ..ServeLimits::DEFAULT
    }
}

/// Timeouts that never fire during a test.
fn patient() -> ServeLimits {
    ServeLimits {
        handshake_timeout: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(600),
        ..ServeLimits::DEFAULT
    }
}

async fn tls_connect(s: &Server) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&s.ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(s.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    timeout(
        PATIENCE,
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake did not finish"))?
}

/// Reads until the server closes (EOF or error): what was read, and
/// whether the close came before `within` ran out.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the connection is still open: nothing to read and no EOF for a
/// moment.
async fn still_open(s: &mut TlsStream<TcpStream>) -> bool {
    let mut b = [0u8; 1];
    timeout(Duration::from_millis(50), s.read(&mut b))
        .await
        .is_err()
}

/// Sends `bytes` one at a time, `gap` apart, until the server closes:
/// how many were sent, and what was read.
async fn trickle(s: &mut TlsStream<TcpStream>, bytes: &[u8], gap: Duration) -> (usize, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            return (i, got);
        }
        match timeout(gap, s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return (i + 1, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    (bytes.len(), got)
}

fn client(s: &Server) -> reqwest::Client {
    triad_wire::https::client(&s.ca_pem, PATIENCE).unwrap()
}

async fn fetch(s: &Server, path: &str) -> reqwest::Response {
    client(s)
        .get(format!("https://{}{path}", s.addr))
        .send()
        .await
        .unwrap()
}

// ---------- slow-loris clients ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_before_and_after_the_handshake() {
    let s = start(quick()).await;
    let mut tls = tls_connect(&s).await.unwrap();
    let (got, closed) = read_to_close(&mut tls, PATIENCE).await;
    assert!(closed, "silent TLS connection still open after 20 s");
    assert!(got.is_empty());
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let (_, closed) = read_to_close(&mut tcp, PATIENCE).await;
    assert!(
        closed,
        "connection without a handshake still open after 20 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_cut_off() {
    let s = start(quick()).await;
    let mut tls = tls_connect(&s).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-pad: {}\r\n\r\n",
        "a".repeat(200)
    );
    // 250 bytes, 100 ms apart: 25 s to send it all.
    let t0 = Instant::now();
    let (sent, got) = trickle(&mut tls, head.as_bytes(), Duration::from_millis(100)).await;
    assert!(sent < head.len(), "the whole head was accepted");
    assert!(
        t0.elapsed() < PATIENCE,
        "closed only after {:?}",
        t0.elapsed()
    );
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_and_is_closed() {
    let s = start(quick()).await;
    let mut tls = tls_connect(&s).await.unwrap();
    tls.write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 250\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let (sent, mut got) = trickle(&mut tls, &[b'x'; 250], Duration::from_millis(100)).await;
    let (rest, closed) = read_to_close(&mut tls, PATIENCE).await;
    got.extend(rest);
    let text = String::from_utf8_lossy(&got);
    assert!(sent < 250, "the whole body was accepted");
    assert!(closed && t0.elapsed() < 2 * PATIENCE);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""error":"request_timeout""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = start(quick()).await;
    let mut tls = tls_connect(&s).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_to_close(&mut tls, PATIENCE).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "idle keep-alive connection still open after 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_answers_503_request_timeout() {
    let s = start(quick()).await;
    let t0 = Instant::now();
    let r = fetch(&s, "/slow").await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "request_timeout");
    assert!(t0.elapsed() < PATIENCE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_its_slot_released() {
    let s = start(ServeLimits {
        max_conns_per_ip: 1,
        ..quick()
    })
    .await;
    let mut slow = tls_connect(&s).await.unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The only slot is the slow client's until the stall timeout cuts it.
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < PATIENCE,
            "the stalled connection kept its slot"
        );
        if let Ok(mut c) = tls_connect(&s).await {
            if c.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .await
                .is_ok()
            {
                let (got, _) = read_to_close(&mut c, PATIENCE).await;
                if got.starts_with(b"HTTP/1.1 200") {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (got, closed) = read_to_close(&mut slow, PATIENCE).await;
    assert!(closed);
    assert!(got.len() < BIG, "the whole answer arrived");
}

/// An answer given before the body was read (a 401 from an auth
/// extractor) reaches a client that is still sending a large body: the
/// server reads and discards the rest for a moment before it closes, so
/// the client gets the answer rather than a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_a_client_still_sending_its_body() {
    let s = start(ServeLimits::DEFAULT).await;
    for _ in 0..3 {
        let r = client(&s)
            .post(format!("https://{}/refuse", s.addr))
            .body(vec![b' '; 8 * 1024 * 1024])
            .send()
            .await
            .expect("an answer, not a reset");
        assert_eq!(error_of(r).await, (401, "unauthorized".into()));
    }
}

// ---------- connection caps ----------

async fn cap_refuses_then_releases(limits: ServeLimits, cap: usize) {
    let s = start(limits).await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tls_connect(&s).await.expect("within the cap"));
    }
    assert!(
        tls_connect(&s).await.is_err(),
        "a connection over the cap got through"
    );
    for c in &mut held {
        assert!(still_open(c).await);
    }
    drop(held.pop());
    let t0 = Instant::now();
    while tls_connect(&s).await.is_err() {
        assert!(t0.elapsed() < PATIENCE, "a closed connection kept its slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_per_ip_cap_is_refused() {
    cap_refuses_then_releases(
        ServeLimits {
            max_conns_per_ip: 4,
            ..patient()
        },
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_global_cap_is_refused() {
    cap_refuses_then_releases(
        ServeLimits {
            max_conns: 3,
            max_conns_per_ip: 64,
            ..patient()
        },
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_slow_clients_hold_connections() {
    let s = start(patient()).await;
    // 20 that never start a handshake, 30 silent after it, 10 halfway
    // through a head: 60 of the 64 this address may open.
    let mut raw = Vec::new();
    for _ in 0..20 {
        raw.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut tls = Vec::new();
    for i in 0..40 {
        let mut c = tls_connect(&s).await.unwrap();
        if i % 4 == 0 {
            c.write_all(b"GET /healthz HTTP/1.1\r\nhost: lo")
                .await
                .unwrap();
        }
        tls.push(c);
    }
    let t0 = Instant::now();
    let r = fetch(&s, "/healthz").await;
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < PATIENCE);
    for c in &mut tls {
        assert!(still_open(c).await, "a slow client was dropped");
    }
}

// ---------- the JSON error shape ----------

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("a JSON error body");
    assert!(v["message"].is_string(), "{v}");
    (status, v["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_wrong_methods_and_rejections_answer_json() {
    let s = start(ServeLimits::DEFAULT).await;
    assert_eq!(
        error_of(fetch(&s, "/nope").await).await,
        (404, "not_found".into())
    );
    let r = client(&s)
        .post(format!("https://{}/healthz", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    assert_eq!(error_of(r).await, (405, "method_not_allowed".into()));
    // Path<u64> rejects in plain text; the server rewrites it.
    assert_eq!(
        error_of(fetch(&s, "/id/abc").await).await,
        (400, "bad_request".into())
    );
    // An invalid percent-encoding in a path parameter.
    assert_eq!(
        error_of(fetch(&s, "/id/%FF").await).await,
        (400, "bad_request".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_heads_answer_414_and_431_in_json() {
    let s = start(ServeLimits::DEFAULT).await;
    let long_path = format!("/healthz?{}", "a".repeat(10 * 1024));
    assert_eq!(
        error_of(fetch(&s, &long_path).await).await,
        (414, "uri_too_long".into())
    );
    let r = client(&s)
        .get(format!("https://{}/healthz", s.addr))
        .header("x-big", "b".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (431, "headers_too_large".into()));
    let mut req = client(&s).get(format!("https://{}/healthz", s.addr));
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await.unwrap();
    assert_eq!(error_of(r).await, (431, "headers_too_large".into()));
    // Within the limits, the same request is fine.
    assert_eq!(fetch(&s, "/healthz?a=1").await.status(), 200);
}

// ---------- bounded answer reads ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_json_refuses_answers_over_its_limit() {
    let s = start(ServeLimits::DEFAULT).await;
    // Announced length over the limit.
    let e = read_json_limited::<Vec<u64>>(fetch(&s, "/json/big").await, 1024 * 1024)
        .await
        .unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (502, ErrorCode::BadAnswer));
    // No announced length: refused while streaming.
    let e = read_json_limited::<Value>(fetch(&s, "/json/chunked").await, 64 * 1024)
        .await
        .unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (502, ErrorCode::BadAnswer));
    // Within the limit (and with the default one): read.
    let v: Vec<u64> = read_json_limited(fetch(&s, "/json/small").await, 1024)
        .await
        .unwrap();
    assert_eq!(v.len(), 11);
    let v: Vec<u64> = read_json(fetch(&s, "/json/big").await).await.unwrap();
    assert_eq!(v.len(), 600_001);
    // An error answer over the limit is refused the same way.
    let e = read_json_limited::<Value>(fetch(&s, "/nope").await, 8)
        .await
        .unwrap_err();
    assert_eq!((e.status.as_u16(), e.code), (502, ErrorCode::BadAnswer));
}
