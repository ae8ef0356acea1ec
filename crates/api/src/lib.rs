//! triad's consumer API.
//!
//! A poll loop lists the studies at the coordinator and fetches each
//! study's latest release from all three parties; a release is accepted
//! only through [`triad_wire::release::verify_release`] (three valid
//! signatures over byte-identical documents) and only if it is the
//! release of the study it was asked for. Accepted releases are cached in
//! SQLite (`<data_dir>/api.sqlite`) and memory and served over HTTPS with a
//! small dashboard. Anything that fails verification is logged and never
//! served; the previous good release stays. Poll tallies are fetched and
//! verified the same way ([`tallies`]). The API never asks anyone to
//! compute anything.
#![forbid(unsafe_code)]

mod poll;
mod server;
pub mod store;
mod tallies;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use triad_wire::messages::StudyParams;
use triad_wire::{NetworkConfig, VerifiedRelease};

pub use poll::PollReport;
pub use server::{Health, StudySummary};
pub use tallies::PollSummary;

/// Name of the API's SQLite file inside its data directory.
pub const DB_FILE: &str = "api.sqlite";
/// Default poll interval.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Everything [`launch`] needs.
#[derive(Clone)]
pub struct ApiConfig {
    pub network: NetworkConfig,
    /// Holds `api.sqlite` (created if missing) unless `database` is set.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL for the cache instead of `api.sqlite` (its own
    /// database, never one another service uses).
    pub database: Option<String>,
    pub poll_interval: Duration,
    /// Timeout of each request to the coordinator and the parties.
    pub request_timeout: Duration,
    pub tls: Arc<rustls::ServerConfig>,
    /// The HTTPS server's connection caps and timeouts.
    pub serve: triad_wire::https::ServeLimits,
}

impl ApiConfig {
    /// A config with the default poll interval (1 s) and request timeout (10 s).
    pub fn new(network: NetworkConfig, data_dir: PathBuf, tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            network,
            data_dir,
            database: None,
            poll_interval: DEFAULT_POLL,
            request_timeout: Duration::from_secs(10),
            tls,
            serve: triad_wire::https::ServeLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiServiceError {
    #[error(transparent)]
    Config(#[from] triad_wire::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] triad_wire::https::TlsError),
    #[error("{what}: {reason}")]
    Store { what: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("party {party}'s signing key is not 64 hex digits")]
    BadPartyKey { party: usize },
}

/// The cache: what the API serves.
#[derive(Default)]
pub(crate) struct Cache {
    pub studies: BTreeMap<String, StudyParams>,
    /// Per study, accepted releases by number.
    pub releases: HashMap<String, BTreeMap<u64, VerifiedRelease>>,
    /// Polls as the coordinator lists them, and their verified tallies.
    pub polls: BTreeMap<u64, triad_wire::poll::PollInfo>,
    pub tallies: HashMap<u64, triad_wire::poll::VerifiedTally>,
    /// Per study, its progress towards the next release as the
    /// coordinator last reported it.
    pub progress: HashMap<String, triad_wire::study::ReleaseProgress>,
}

pub(crate) struct Shared {
    pub net: NetworkConfig,
    pub keys: [String; 3],
    pub http: reqwest::Client,
    pub store: Arc<Mutex<Box<dyn store::ReleaseCache>>>,
    pub cache: RwLock<Cache>,
    /// Last problem reported per subject, so a persistent failure is logged
    /// once rather than every poll.
    pub problems: Mutex<HashMap<String, String>>,
    pub poll_lock: tokio::sync::Mutex<()>,
    pub last_poll: AtomicU64,
    pub started: u64,
}

/// A running API.
pub struct ApiHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    poller: tokio::task::JoinHandle<()>,
}

impl ApiHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>` (or the bound address).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Runs one poll now (serialised with the background loop) and says
    /// what was accepted and what was refused.
    pub async fn poll_now(&self) -> PollReport {
        poll::poll_once(&self.shared).await
    }

    /// Waits until the server stops (it normally never does).
    pub async fn wait(self) -> std::io::Result<()> {
        let r = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        self.poller.abort();
        r
    }

    /// Stops serving and polling.
    pub fn shutdown(self) {
        self.server.abort();
        self.poller.abort();
    }
}

fn check_keys(net: &NetworkConfig) -> Result<[String; 3], ApiServiceError> {
    let keys = [0, 1, 2].map(|i| net.parties[i].sign_key.to_ascii_lowercase());
    for (i, k) in keys.iter().enumerate() {
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiServiceError::BadPartyKey { party: i });
        }
    }
    Ok(keys)
}

/// Opens the cache, starts the poll loop and serves HTTPS on `listener`.
pub async fn launch(
    cfg: ApiConfig,
    listener: tokio::net::TcpListener,
) -> Result<ApiHandle, ApiServiceError> {
    let keys = check_keys(&cfg.network)?;
    let http = triad_wire::https::client(&cfg.network.ca_pem()?, cfg.request_timeout)?;
    triad_files::private_dir(&cfg.data_dir)
        .and_then(|()| Ok(triad_files::check_private(&cfg.data_dir, 2)?))
        .map_err(|source| ApiServiceError::Io {
            what: cfg.data_dir.display().to_string(),
            source,
        })?;
    let db_path = cfg.data_dir.join(DB_FILE);
    let (store, loaded) = {
        let keys = keys.clone();
        let database = cfg.database.clone();
        tokio::task::spawn_blocking(move || {
            let s: Box<dyn store::ReleaseCache> = match database {
                Some(url) => Box::new(store::PostgresCache::open(&url)?),
                None => Box::new(store::SqliteCache::open(&db_path)?),
            };
            let l = store::load(s.as_ref(), &keys)?;
            Ok::<_, ApiServiceError>((s, l))
        })
        .await
        .map_err(|e| ApiServiceError::Io {
            what: "opening the cache".into(),
            source: std::io::Error::other(e.to_string()),
        })??
    };
    for s in &loaded.skipped {
        tracing::warn!(entry = %s, "cache: skipped");
    }
    let mut cache = Cache::default();
    for s in loaded.studies {
        cache.studies.insert(s.id.clone(), s);
    }
    for v in loaded.releases {
        cache
            .releases
            .entry(v.release.study_id.clone())
            .or_default()
            .insert(v.release.release_no, v);
    }
    let addr = listener
        .local_addr()
        .map_err(|source| ApiServiceError::Io {
            what: "listener address".into(),
            source,
        })?;
    let shared = Arc::new(Shared {
        net: cfg.network.clone(),
        keys,
        http,
        store: Arc::new(Mutex::new(store)),
        cache: RwLock::new(cache),
        problems: Mutex::new(HashMap::new()),
        poll_lock: tokio::sync::Mutex::new(()),
        last_poll: AtomicU64::new(0),
        started: triad_wire::unix_now(),
    });
    let router = server::router(shared.clone());
    let server = tokio::spawn(triad_wire::https::serve_with(
        listener,
        cfg.tls.clone(),
        router,
        cfg.serve,
    ));
    let poller = {
        let shared = shared.clone();
        let every = cfg.poll_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                poll::poll_once(&shared).await;
                tokio::time::sleep(every).await;
            }
        })
    };
    Ok(ApiHandle {
        addr,
        shared,
        server,
        poller,
    })
}

/// `triad api`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub service: triad_wire::config::ServiceArgs,
    /// Poll interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// What `triad api` writes to `<data_dir>/api.json` once it listens.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ApiInfo {
    pub url: String,
}

/// `triad api`: serves until killed. Prints the URL and writes
/// `<data_dir>/api.json` once listening.
pub fn run_blocking(args: ApiArgs) -> Result<(), ApiServiceError> {
    let network = NetworkConfig::load(&args.service.network)?;
    let tls = triad_wire::https::server_config(&args.service.tls_cert, &args.service.tls_key)?;
    let mut cfg = ApiConfig::new(network, args.service.data_dir.clone(), tls);
    cfg.database = args.service.database.clone();
    cfg.poll_interval = Duration::from_millis(args.poll_ms.max(10));
    cfg.serve = args.service.serve_limits();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| ApiServiceError::Io {
            what: "tokio runtime".into(),
            source,
        })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.service.listen)
            .await
            .map_err(|source| ApiServiceError::Io {
                what: format!("listen on {}", args.service.listen),
                source,
            })?;
        let handle = launch(cfg, listener).await?;
        let info = ApiInfo { url: handle.url() };
        write_info(&args.service.data_dir, &info)?;
        println!("api listening on {}", info.url);
        handle.wait().await.map_err(|source| ApiServiceError::Io {
            what: "serving".into(),
            source,
        })
    })
}

fn write_info(dir: &Path, info: &ApiInfo) -> Result<(), ApiServiceError> {
    let path = dir.join("api.json");
    let text = serde_json::to_string_pretty(info).expect("info serializes");
    triad_wire::config::write_atomic(&path, text.as_bytes()).map_err(|source| ApiServiceError::Io {
        what: path.display().to_string(),
        source,
    })
}

impl Shared {
    pub(crate) fn note_problem(&self, subject: &str, problem: Option<String>) {
        let mut p = self.problems.lock().expect("problems lock");
        match problem {
            Some(msg) => {
                if p.get(subject) != Some(&msg) {
                    tracing::warn!(%subject, %msg, "poll failed");
                    p.insert(subject.to_string(), msg);
                }
            }
            None => {
                if p.remove(subject).is_some() {
                    tracing::info!(%subject, "poll ok again");
                }
            }
        }
    }

    pub(crate) fn mark_polled(&self) {
        self.last_poll
            .store(triad_wire::unix_now(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
