//! triad's coordinator: studies, admission (attestation, freshness, replay
//! and sybil checks), rate limits, batching, the batch commit protocol with
//! the three parties, and the release schedule. It never sees a value or a
//! share: only attestation metadata, commitments, nullifiers and timings.
//!
//! - [`admission`]: the admission rule, [`admission::admit_submission`];
//! - [`limits`]: per-IP and global token buckets;
//! - [`batcher`]: batch formation and two-phase commit, in the one driver task;
//! - [`releases`]: when a study gets its next release;
//! - [`parties`]: the calls to the parties, behind a trait;
//! - [`directory`]: each study's and poll's directory id, and their
//!   publication in the private directory;
//! - [`store`]: the storage trait and its SQLite implementation; [`routes`]: the HTTP handlers.
#![forbid(unsafe_code)]

pub mod admission;
pub mod batcher;
pub mod directory;
pub mod limits;
pub mod parties;
pub mod poll_routes;
pub mod polls;
pub mod releases;
pub mod routes;
pub mod store;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use triad_attestation::NotaryPublicKey;
use triad_wire::NetworkConfig;

pub use batcher::BatchConfig;
pub use limits::Limits;

use crate::batcher::Driver;
use crate::limits::RateLimiter;
use crate::parties::{HttpParties, Parties};
use crate::routes::AppState;
use crate::store::Store;

/// Default freshness window of an attestation's TLS session.
pub const DEFAULT_MAX_ATTESTATION_AGE_SECS: u64 = 3600;

/// Everything the coordinator needs to run.
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// Holds `coordinator.sqlite` (unless `database` is set) and keys.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL for the store instead of `coordinator.sqlite`.
    pub database: Option<String>,
    pub network: NetworkConfig,
    pub tls: Arc<rustls::ServerConfig>,
    /// The coordinator's credential toward the parties (`x-triad-internal`);
    /// the parties hold only its digest.
    pub internal_token: String,
    /// Digest of the parties' credential for `GET /internal/batches/{id}`.
    pub party_token_sha256: [u8; 32],
    /// Operator token for creating studies (`x-triad-admin`).
    pub admin_token: String,
    pub limits: Limits,
    pub batching: BatchConfig,
    pub max_attestation_age_secs: u64,
    /// The HTTPS server's connection caps and timeouts.
    pub serve: triad_wire::https::ServeLimits,
    /// Directory nodes (`<multiaddr>/p2p/<peer id>`) to publish studies
    /// and polls through; none: nothing is published (ids are still
    /// derived and stored).
    pub directory: Vec<String>,
    /// Where the coordinator's own directory node listens.
    pub directory_listen: SocketAddr,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_deref().map(triad_pg::redact))
            .field("network", &self.network)
            .field("internal_token", &"<redacted>")
            .field("admin_token", &"<redacted>")
            .field("limits", &self.limits)
            .field("batching", &self.batching)
            .field("max_attestation_age_secs", &self.max_attestation_age_secs)
            .field("serve", &self.serve)
            .field("directory", &self.directory)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Network(#[from] triad_wire::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] triad_wire::https::TlsError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] triad_wire::keyfile::KeyFileError),
    #[error("the directory: {0}")]
    Directory(#[from] triad_directory::publish::ClientNodeError),
}

/// A running coordinator: its address and its two tasks (HTTPS server and
/// driver).
pub struct CoordinatorHandle {
    pub addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    driver: JoinHandle<()>,
    tallier: JoinHandle<()>,
    /// The directory publisher, when the coordinator publishes.
    publisher: Option<JoinHandle<()>>,
}

impl CoordinatorHandle {
    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops both tasks at their next await point. Every state change is a
    /// committed SQLite transaction, so stopping anywhere is safe: the next
    /// launch on the same data directory recovers.
    pub fn abort(&self) {
        self.server.abort();
        self.driver.abort();
        self.tallier.abort();
        if let Some(p) = &self.publisher {
            p.abort();
        }
    }

    /// Aborts and waits until both tasks are gone.
    pub async fn shutdown(self) {
        self.abort();
        let _ = self.server.await;
        let _ = self.driver.await;
        let _ = self.tallier.await;
        if let Some(p) = self.publisher {
            let _ = p.await;
        }
    }

    /// Waits until the server stops (it normally never does).
    pub async fn wait(self) -> Result<(), CoordinatorError> {
        let r = self.server.await;
        self.driver.abort();
        self.tallier.abort();
        if let Some(p) = &self.publisher {
            p.abort();
        }
        match r {
            Ok(r) => Ok(r?),
            Err(e) => Err(CoordinatorError::Config(format!("server task: {e}"))),
        }
    }
}

/// Starts the coordinator on `listener`, talking to the parties over HTTPS.
pub async fn launch(
    cfg: CoordinatorConfig,
    listener: TcpListener,
) -> Result<CoordinatorHandle, CoordinatorError> {
    let ca = cfg.network.ca_pem()?;
    let parties = HttpParties::new(
        &cfg.network,
        &ca,
        cfg.internal_token.clone(),
        cfg.batching.party_timeout,
    )?;
    launch_with(cfg, listener, Arc::new(parties)).await
}

/// [`launch`] with any [`Parties`] implementation (tests use in-process fakes).
pub(crate) async fn launch_with(
    cfg: CoordinatorConfig,
    listener: TcpListener,
    parties: Arc<dyn Parties>,
) -> Result<CoordinatorHandle, CoordinatorError> {
    if cfg.batching.max_batch == 0 || cfg.batching.max_attempts == 0 {
        return Err(CoordinatorError::Config(
            "max_batch and max_attempts must be at least 1".into(),
        ));
    }
    let notary_key = NotaryPublicKey::from_hex(&cfg.network.notary_key)
        .map_err(|e| CoordinatorError::Config(format!("network notary_key: {e}")))?;
    triad_files::private_dir(&cfg.data_dir)?;
    triad_files::check_private(&cfg.data_dir, 2)
        .map_err(|e| CoordinatorError::Config(e.to_string()))?;
    let db = {
        let (dir, database) = (cfg.data_dir.clone(), cfg.database.clone());
        // Opening blocks (a PostgreSQL connection runs its own runtime).
        tokio::task::spawn_blocking(move || match database {
            Some(url) => Store::open_postgres(&url),
            None => Store::open_sqlite(&dir),
        })
        .await
        .map_err(|e| store::StoreError::Task(e.to_string()))??
    };
    // The key that signs directory records, and derives every study's and
    // poll's directory id: the network description, if it names one, must
    // name this one (the parties endorse only records it signed).
    let key = Arc::new(triad_wire::keyfile::load_or_create_signing_key(
        &cfg.data_dir.join(directory::COORDINATOR_KEY_FILE),
    )?);
    let pk = key.public_key().to_hex();
    if let Some(named) = &cfg.network.coordinator_key {
        if !named.eq_ignore_ascii_case(&pk) {
            return Err(CoordinatorError::Config(format!(
                "the network description names coordinator key {named}, but {} holds {pk}",
                cfg.data_dir.join(directory::COORDINATOR_KEY_FILE).display()
            )));
        }
    }
    let filled = directory::backfill_entries(&db, &key).await?;
    if filled > 0 {
        tracing::info!(filled, "directory ids given to earlier studies and polls");
    }
    let (publisher, publisher_task) = if cfg.directory.is_empty() {
        (directory::Publisher::disabled(), None)
    } else {
        let ca_sha256 =
            triad_wire::directory::ca_sha256(&cfg.network.ca_pem()?).ok_or_else(|| {
                CoordinatorError::Config("the network CA holds no certificate".into())
            })?;
        let (p, task) = directory::start(
            cfg.directory_listen,
            &cfg.directory,
            db.clone(),
            parties.clone(),
            key.clone(),
            cfg.network.clone(),
            ca_sha256,
        )
        .await?;
        (p, Some(task))
    };
    let wake = Arc::new(Notify::new());
    let settled = Arc::new(Notify::new());
    let stuck = batcher::StuckCommits::default();
    let cheating = batcher::CheatingReports::default();
    let state = Arc::new(AppState {
        db: db.clone(),
        limiter: RateLimiter::new(cfg.limits.rate()),
        trusted_keys: vec![notary_key],
        max_attestation_age_secs: cfg.max_attestation_age_secs,
        max_queue: cfg.limits.max_queue,
        party_urls: cfg.network.parties.iter().map(|p| p.url.clone()).collect(),
        admin_token: cfg.admin_token.clone(),
        party_token_sha256: cfg.party_token_sha256,
        party_keys: cfg.network.parties.clone().map(|p| p.sign_key),
        wake: wake.clone(),
        settled: settled.clone(),
        parties: parties.clone(),
        stuck: stuck.clone(),
        cheating: cheating.clone(),
        directory_key: key,
        publisher,
    });
    let tallier = polls::Tallier {
        db: db.clone(),
        parties: parties.clone(),
        party_keys: cfg.network.parties.clone().map(|p| p.sign_key),
        tick: cfg.batching.tick.max(Duration::from_secs(1)),
        cheating: cheating.clone(),
    };
    let driver = Arc::new(Driver {
        db,
        parties,
        cfg: cfg.batching.clone(),
        party_keys: cfg.network.parties.clone().map(|p| p.sign_key),
        wake,
        settled,
        stuck,
        cheating,
    });
    let addr = listener.local_addr()?;
    let router = routes::router(state, cfg.limits.max_body);
    let limits = routes::serve_limits(cfg.serve);
    let server = tokio::spawn(triad_wire::https::serve_with(
        listener,
        cfg.tls.clone(),
        router,
        limits,
    ));
    let driver = tokio::spawn(driver.run());
    let tallier = tokio::spawn(tallier.run());
    Ok(CoordinatorHandle {
        addr,
        server,
        driver,
        tallier,
        publisher: publisher_task,
    })
}

/// `triad coordinator` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct CoordinatorArgs {
    #[command(flatten)]
    pub service: triad_wire::config::ServiceArgs,
    /// File holding the coordinator's token toward the parties.
    #[arg(long)]
    pub internal_token_file: PathBuf,
    /// File holding the SHA-256 (hex) of the parties' token.
    #[arg(long)]
    pub party_token_digest_file: PathBuf,
    /// File holding the operator token.
    #[arg(long)]
    pub admin_token_file: PathBuf,
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    #[arg(long, default_value_t = 200)]
    pub linger_ms: u64,
    #[arg(long, default_value_t = 60)]
    pub shares_timeout_secs: u64,
    #[arg(long, default_value_t = DEFAULT_MAX_ATTESTATION_AGE_SECS)]
    pub max_attestation_age_secs: u64,
    #[arg(long, default_value_t = 2000.0)]
    pub per_ip_per_sec: f64,
    #[arg(long, default_value_t = 4000.0)]
    pub per_ip_burst: f64,
    #[arg(long, default_value_t = 5000.0)]
    pub global_per_sec: f64,
    #[arg(long, default_value_t = 10000.0)]
    pub global_burst: f64,
    #[arg(long, default_value_t = 20_000)]
    pub max_queue: usize,
    /// A directory node to publish studies and polls through, as
    /// `<multiaddr>/p2p/<peer id>` (repeatable). Without any, nothing is
    /// published (directory ids are still derived and returned).
    #[arg(long = "directory", value_name = "ADDR")]
    pub directory: Vec<String>,
    /// Where the coordinator's own directory node listens (TCP).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub directory_listen: SocketAddr,
}

fn read_token(path: &PathBuf) -> Result<String, CoordinatorError> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| CoordinatorError::Config(format!("{}: {e}", path.display())))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(CoordinatorError::Config(format!(
            "{}: empty token",
            path.display()
        )));
    }
    Ok(t)
}

impl CoordinatorArgs {
    pub fn to_config(&self) -> Result<CoordinatorConfig, CoordinatorError> {
        Ok(CoordinatorConfig {
            data_dir: self.service.data_dir.clone(),
            database: self.service.database.clone(),
            network: NetworkConfig::load(&self.service.network)?,
            tls: triad_wire::https::server_config(&self.service.tls_cert, &self.service.tls_key)?,
            internal_token: read_token(&self.internal_token_file)?,
            party_token_sha256: triad_wire::https::read_digest(&self.party_token_digest_file)
                .map_err(CoordinatorError::Config)?,
            admin_token: read_token(&self.admin_token_file)?,
            limits: Limits {
                per_ip_per_sec: self.per_ip_per_sec,
                per_ip_burst: self.per_ip_burst,
                global_per_sec: self.global_per_sec,
                global_burst: self.global_burst,
                max_queue: self.max_queue,
                ..Limits::default()
            },
            batching: BatchConfig {
                max_batch: self.max_batch,
                linger: Duration::from_millis(self.linger_ms),
                shares_timeout: Duration::from_secs(self.shares_timeout_secs),
                ..BatchConfig::default()
            },
            max_attestation_age_secs: self.max_attestation_age_secs,
            serve: self.service.serve_limits(),
            directory: self.directory.clone(),
            directory_listen: self.directory_listen,
        })
    }
}

/// Runs the coordinator until the process ends.
pub fn run_blocking(args: CoordinatorArgs) -> Result<(), CoordinatorError> {
    let cfg = args.to_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.service.listen).await?;
        let handle = launch(cfg, listener).await?;
        tracing::info!(url = %handle.url(), "coordinator listening");
        handle.wait().await
    })
}
