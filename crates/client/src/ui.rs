//! `triad ui`: a provider's page on 127.0.0.1. The page picks a study,
//! takes the data source API key, and asks *this local process* to
//! contribute: the TLS session through the notary, the shares, their
//! commitments and the receipts are made here by the same code as `triad
//! share` ([`contribute`]); no remote server ever sees the key. The page
//! shows each step, the verdict and the study's latest verified release.
//!
//! Only loopback addresses are served. Every `/api/` call needs the
//! session token printed with the URL (in the URL's fragment, which
//! browsers never send to servers or in referrers), and a `Host` of this
//! address: another local user or a web page the provider visits (DNS
//! rebinding) cannot drive it or read its results.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triad_wire::messages::StudyInfo;
use triad_wire::{ApiError, ErrorCode, NetworkConfig};

use crate::contribute::{contribute, ContributeOptions, Outcome, Progress, Step};
use crate::{base, get_json, latest_release, ClientError, NetworkArgs};

const PAGE: &str = include_str!("ui.html");
/// Contributions running at once.
const MAX_RUNNING: usize = 4;
/// Finished contributions remembered for the page.
const KEPT: usize = 100;
const TOKEN_HEADER: &str = "x-triad-ui-token";

/// `triad ui`.
#[derive(Clone, Debug, clap::Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    /// Where to listen: a loopback address only.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Also write the page's URL (with its token) to this file, readable by
    /// its owner only.
    #[arg(long)]
    pub url_file: Option<PathBuf>,
}

/// One contribution started from the page.
#[derive(Clone, Debug, Serialize)]
struct Job {
    id: u64,
    study: String,
    /// `running`, `done` or `failed`.
    state: &'static str,
    /// (attempt, step) in order.
    steps: Vec<(u32, Step)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

struct Ui {
    net: NetworkConfig,
    http: reqwest::Client,
    token_sha256: [u8; 32],
    /// `127.0.0.1:<port>` and `localhost:<port>`.
    hosts: [String; 2],
    jobs: Mutex<(u64, BTreeMap<u64, Job>, VecDeque<u64>)>,
}

type St = State<Arc<Ui>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    study: String,
    api_key: String,
}

impl Ui {
    /// The page's own origin and token, or a refusal.
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.iter().any(|h| h == host) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Unauthorized,
                "wrong Host: open the page at the address triad ui printed",
            ));
        }
        let token = headers
            .get(TOKEN_HEADER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if given != self.token_sha256 {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "missing or wrong session token: open the URL triad ui printed",
            ));
        }
        Ok(())
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        let mut j = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = j.1.get_mut(&id) {
            f(job);
        }
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

async fn studies(State(ui): St, headers: HeaderMap) -> Result<Json<Vec<StudyInfo>>, ApiError> {
    ui.check(&headers)?;
    let url = format!("{}/v1/studies", base(&ui.net.coordinator));
    Ok(Json(get_json(&ui.http, &url).await?))
}

/// The page's `POST /api/contributions` body: (study id, API key), the key
/// trimmed. Public for the fuzz target only.
#[doc(hidden)]
pub fn parse_start(body: &[u8]) -> Result<(String, String), ApiError> {
    let req: StartRequest = triad_wire::https::parse_json(body)?;
    let key = req.api_key.trim().to_string();
    if key.is_empty() || key.len() > 4096 || key.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            ErrorCode::BadRequest,
            "the API key must be one line of printable characters",
        ));
    }
    if !triad_wire::messages::valid_study_id(&req.study) {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedBody,
            "pick a study from the list",
        ));
    }
    Ok((req.study, key))
}

async fn start(State(ui): St, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    ui.check(&headers)?;
    let (study, key) = parse_start(&body)?;
    let id = {
        let mut j = ui.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if j.1.values().filter(|x| x.state == "running").count() >= MAX_RUNNING {
            return Err(ApiError::unavailable(
                ErrorCode::Busy,
                "contributions are already running; wait for one to finish",
            ));
        }
        j.0 += 1;
        let id = j.0;
        j.1.insert(
            id,
            Job {
                id,
                study: study.clone(),
                state: "running",
                steps: Vec::new(),
                outcome: None,
                error: None,
            },
        );
        j.2.push_back(id);
        while j.2.len() > KEPT {
            if let Some(old) = j.2.pop_front() {
                j.1.remove(&old);
            }
        }
        id
    };
    let watcher = ui.clone();
    let opts = ContributeOptions {
        progress: Progress::new(move |attempt, step| {
            watcher.update(id, |j| j.steps.push((attempt, step)));
        }),
        ..ContributeOptions::default()
    };
    let ui2 = ui.clone();
    tokio::spawn(async move {
        let r = contribute(&ui2.net, &ui2.http, &study, &key, &opts).await;
        ui2.update(id, |j| match r {
            Ok(o) => {
                j.state = "done";
                j.outcome = Some(o);
            }
            Err(e) => {
                tracing::info!(job = id, error = %e, "contribution failed");
                j.state = "failed";
                j.error = Some(explain(&e));
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// The error as the page shows it: a refused key said plainly first.
fn explain(e: &ClientError) -> String {
    let text = e.to_string();
    if text.contains("HTTP status 401") || text.contains("HTTP status 403") {
        format!("The data source refused this API key. ({text})")
    } else {
        text
    }
}

async fn job(
    State(ui): St,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<Job>, ApiError> {
    ui.check(&headers)?;
    let j = ui.jobs.lock().unwrap_or_else(|e| e.into_inner());
    j.1.get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, format!("no contribution {id}")))
}

/// The study's latest release, verified again here against the party keys
/// of this process's network description.
async fn release(
    State(ui): St,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, ApiError> {
    ui.check(&headers)?;
    match latest_release(&ui.net, &ui.http, &study).await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(ClientError::Query { source, .. }) => Err(source),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BadAnswer,
            e.to_string(),
        )),
    }
}

/// Serves the page on `listener` (loopback only) until the process ends;
/// returns the page's URL with its token first through `on_url`.
pub async fn serve(
    net: NetworkConfig,
    http: reqwest::Client,
    listener: tokio::net::TcpListener,
    on_url: impl FnOnce(&str),
) -> Result<(), ClientError> {
    let addr = listener.local_addr().map_err(|source| ClientError::Io {
        what: "the page's listener".into(),
        source,
    })?;
    if !addr.ip().is_loopback() {
        return Err(ClientError::Usage(format!(
            "triad ui serves loopback addresses only, not {addr}"
        )));
    }
    let token = {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let ui = Arc::new(Ui {
        net,
        http,
        token_sha256: Sha256::digest(token.as_bytes()).into(),
        hosts: [
            format!("127.0.0.1:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ],
        jobs: Mutex::default(),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/api/studies", get(studies))
        .route("/api/studies/{id}/release", get(release))
        .route("/api/contributions", post(start))
        .route("/api/contributions/{id}", get(job))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(triad_wire::trace::trace_requests))
        .with_state(ui);
    on_url(&format!("http://127.0.0.1:{}/#token={token}", addr.port()));
    axum::serve(listener, app)
        .await
        .map_err(|source| ClientError::Io {
            what: "serving the page".into(),
            source,
        })
}

/// `triad ui`.
pub fn run_ui(args: UiArgs) -> Result<(), ClientError> {
    let net = args.net.load()?;
    let http = crate::cli::http(&net)?;
    crate::cli::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|source| ClientError::Io {
                what: format!("listening on {}", args.listen),
                source,
            })?;
        let url_file = args.url_file.clone();
        serve(net, http, listener, move |url| {
            println!("triad ui: open {url}");
            if let Some(f) = url_file {
                if let Err(e) = triad_files::write_private(&f, url.as_bytes()) {
                    eprintln!("writing {}: {e}", f.display());
                }
            }
        })
        .await
    })
}
