//! Structured request logs: every request gets an id (also sent back as
//! `x-request-id`) and a `tracing` span with its method and *route
//! template* — never the concrete path, whose submission ids are
//! capabilities, and never headers or bodies, which carry tokens and
//! shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Middleware (`axum::middleware::from_fn(trace_requests)`, added with
/// `Router::layer`) that logs each request in a span with its id.
pub async fn trace_requests(req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".into());
    let span = tracing::info_span!("request", id, method = %req.method(), route = %route);
    async move {
        let started = Instant::now();
        let mut resp = next.run(req).await;
        let status = resp.status().as_u16();
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis() as u64;
        let code = resp
            .extensions()
            .get::<crate::ErrorCode>()
            .map_or("", |c| c.as_str());
        crate::metrics::count(
            "triad_http_responses_total",
            "HTTP answers by route, status and error code",
            &[
                ("route", &route),
                ("status", &status.to_string()),
                ("code", code),
            ],
            1.0,
        );
        crate::metrics::observe(
            "triad_http_request_seconds",
            "HTTP request durations by route",
            &[("route", &route)],
            elapsed,
        );
        if resp.status().is_server_error() {
            tracing::error!(status, ms, "answered");
        } else {
            tracing::debug!(status, ms, "answered");
        }
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        resp
    }
    .instrument(span)
    .await
}

/// Installs the process's log subscriber: human-readable lines on stderr,
/// level from `TRIAD_LOG` (e.g. `debug`, `triad_party=debug`), `info` by
/// default. Safe to call twice (the second call does nothing).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
        // libp2p's own info lines (a node's peer id, every new listen
        // address) are noise in a client verb's output.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p_swarm=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
