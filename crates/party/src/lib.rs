//! A triad computation party.
//!
//! - [`check`]: the per-batch MPC check of provider submissions;
//! - [`presence`]: its presence exchange, and the judgment of each
//!   party's claims against the receipts (malicious mode);
//! - [`jobs`]: the two MPC jobs (prepare a batch, compute a release);
//! - [`mesh`]: one mutual-TLS MPC session per job, tagged;
//! - [`intake`]: uploaded shares awaiting their batch;
//! - [`store`]: the durable SQLite store;
//! - [`vet`]: the party's own check of each submission's attestation;
//! - [`directory`]: the endorsement of a directory record;
//! - [`refusal`]: why a request is refused, by whose fault;
//! - [`service`]: the HTTPS handlers.
#![forbid(unsafe_code)]

pub mod check;
pub mod directory;
pub mod intake;
pub mod jobs;
pub mod mesh;
pub mod polls;
pub mod presence;
pub mod refusal;
pub mod service;
pub mod store;
pub mod vet;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use triad_mpc::PartyId;
use triad_net::Identity;
use triad_wire::config::write_atomic;
use triad_wire::{NetworkConfig, PartySigningKey};

pub use service::{Floors, PartyState, DEFAULT_UPLOAD_RATE};

/// Key files in a party's data directory.
pub const MPC_CERT_FILE: &str = "mpc-cert.der";
pub const MPC_KEY_FILE: &str = "mpc-key.der";
pub const SIGN_KEY_FILE: &str = "sign.key";
pub const DB_FILE: &str = "party.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> PartyError {
    PartyError::File {
        path: path.into(),
        reason: e.to_string(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    triad_files::write_private(path, bytes)
}

/// The party's long-term keys.
pub struct PartyKeys {
    pub identity: Identity,
    pub sign: PartySigningKey,
}

/// Loads the MPC identity and the release-signing key from `dir`, creating
/// them on first use (a devnet calls this before writing `network.json`).
pub fn load_or_create_keys(dir: &Path, id: usize) -> Result<PartyKeys, PartyError> {
    triad_files::private_dir(dir).map_err(|e| file_err(dir, e))?;
    let (cp, kp) = (dir.join(MPC_CERT_FILE), dir.join(MPC_KEY_FILE));
    if !cp.exists() {
        let idn = Identity::generate(&format!("triad-party-{id}"))
            .map_err(|e| PartyError::Config(e.to_string()))?;
        // A key without its certificate is a half-finished earlier attempt.
        let _ = std::fs::remove_file(&kp);
        write_private(&kp, &idn.key_der).map_err(|e| file_err(&kp, e))?;
        // The certificate last: its presence means the pair is complete.
        write_atomic(&cp, &idn.cert_der).map_err(|e| file_err(&cp, e))?;
    }
    let identity = Identity {
        cert_der: std::fs::read(&cp).map_err(|e| file_err(&cp, e))?,
        key_der: std::fs::read(&kp).map_err(|e| file_err(&kp, e))?,
    };
    let sp = dir.join(SIGN_KEY_FILE);
    let sign = triad_wire::keyfile::load_or_create_signing_key(&sp)
        .map_err(|e| PartyError::Config(e.to_string()))?;
    Ok(PartyKeys { identity, sign })
}

#[derive(Clone)]
pub struct PartyConfig {
    pub id: PartyId,
    /// Holds the keys, and `party.sqlite` unless `database` is set.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL for the store instead of `party.sqlite`: this
    /// party's own database (two parties' rows reconstruct contributions).
    pub database: Option<String>,
    pub network: NetworkConfig,
    pub tls: Arc<rustls::ServerConfig>,
    /// This party's credential toward the coordinator.
    pub internal_token: String,
    /// Digest of the coordinator's credential toward the parties.
    pub coordinator_token_sha256: [u8; 32],
    pub floors: Floors,
    pub upload_rate: triad_wire::limits::RateLimit,
    /// The HTTPS server's connection caps and timeouts.
    pub serve: triad_wire::https::ServeLimits,
    /// The adversary the statistics jobs (the batch check of submissions
    /// and releases) are secure against; all three parties must agree (a
    /// session between parties in different modes fails at setup).
    /// Malicious: every gate and product is checked and every opening
    /// compared. Poll jobs run in [`PartyConfig::poll_security`].
    pub security: triad_mpc::Security,
    /// The mode of the poll jobs, signed in each tally. Malicious checks
    /// every phase of the tally (signature verdicts, grouping, scan, sums)
    /// and the re-keying epochs, at several times their semi-honest time
    /// (docs/benchmarks.md).
    pub poll_security: triad_mpc::Security,
}

/// `--security` of `triad party`, `triad devnet` and `triad bench`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityArg {
    SemiHonest,
    #[default]
    Malicious,
}

impl SecurityArg {
    pub fn mode(self) -> triad_mpc::Security {
        match self {
            SecurityArg::SemiHonest => triad_mpc::Security::SemiHonest,
            SecurityArg::Malicious => triad_mpc::Security::Malicious,
        }
    }
}

/// A running party.
pub struct PartyHandle {
    pub addr: std::net::SocketAddr,
    pub state: Arc<PartyState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PartyHandle {
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the party: keys and store from `data_dir`, the MPC listener on
/// the configured address, HTTPS on `listener`, and the recovery loop.
pub async fn launch(
    cfg: PartyConfig,
    listener: tokio::net::TcpListener,
) -> Result<PartyHandle, PartyError> {
    let i = cfg.id.index();
    let keys = load_or_create_keys(&cfg.data_dir, i)?;
    let me = &cfg.network.parties[i];
    if hex::encode(&keys.identity.cert_der) != me.mpc_cert
        || keys.sign.public_key().to_hex() != me.sign_key
    {
        return Err(PartyError::Config(format!(
            "the keys in {} are not party {i}'s keys in the network description",
            cfg.data_dir.display()
        )));
    }
    let certs = [0, 1, 2].map(|j| hex::decode(&cfg.network.parties[j].mpc_cert));
    let certs = match certs {
        [Ok(a), Ok(b), Ok(c)] => [a, b, c],
        _ => return Err(PartyError::Config("a party's mpc_cert is not hex".into())),
    };
    let addrs = [0, 1, 2].map(|j| cfg.network.parties[j].mpc_addr);
    let notary_key = triad_attestation::NotaryPublicKey::from_hex(&cfg.network.notary_key)
        .map_err(|e| PartyError::Config(format!("network notary_key: {e}")))?;
    let mpc_listener = std::net::TcpListener::bind(me.mpc_addr)?;
    let link = triad_mpc::LinkModel::with_delay(std::time::Duration::from_micros(
        cfg.network.mpc_latency_us,
    ));
    tracing::info!(
        security = ?cfg.security,
        poll_security = ?cfg.poll_security,
        "statistics jobs run in `security`; poll jobs in `poll_security`"
    );
    let mesh = mesh::Mesh::new(
        cfg.id,
        keys.identity,
        certs,
        addrs,
        mpc_listener,
        link,
        mesh::Modes {
            statistics: cfg.security,
            polls: cfg.poll_security,
        },
    );
    // Two parties' files reconstruct every contribution: nothing in the
    // data directory may be readable by another user.
    triad_files::private_dir(&cfg.data_dir).map_err(|e| file_err(&cfg.data_dir, e))?;
    triad_files::check_private(&cfg.data_dir, 2).map_err(|e| PartyError::Config(e.to_string()))?;
    let store: Arc<dyn store::PartyStore> = {
        let (path, database) = (cfg.data_dir.join(DB_FILE), cfg.database.clone());
        let owner = format!("party{}", cfg.id.index());
        // Opening blocks (a PostgreSQL connection runs its own runtime).
        tokio::task::spawn_blocking(
            move || -> Result<Arc<dyn store::PartyStore>, store::StoreError> {
                Ok(match database {
                    Some(url) => Arc::new(store::PostgresStore::open_as(&url, &owner)?),
                    None => Arc::new(store::SqliteStore::open(&path)?),
                })
            },
        )
        .await
        .map_err(|e| PartyError::Config(format!("opening the store: {e}")))??
    };
    let ca = cfg
        .network
        .ca_pem()
        .map_err(|e| PartyError::Config(e.to_string()))?;
    let http = triad_wire::https::client(&ca, Duration::from_secs(30))
        .map_err(|e| PartyError::Config(e.to_string()))?;
    let state = PartyState::new(
        mesh,
        service::Parts {
            store,
            key: keys.sign,
            internal_token: cfg.internal_token,
            coordinator_token_sha256: cfg.coordinator_token_sha256,
            network: cfg.network,
            http,
            floors: cfg.floors,
            notary_key,
            upload_rate: cfg.upload_rate,
        },
    );
    // Uploads this party acknowledged before a restart are held again.
    let st = state.clone();
    let reloaded = tokio::task::spawn_blocking(move || st.intake.reload())
        .await
        .map_err(|e| PartyError::Config(format!("reloading uploads: {e}")))??;
    if reloaded > 0 {
        tracing::info!(uploads = reloaded, "intake: reloaded stored uploads");
    }
    let addr = listener.local_addr()?;
    let router = service::router(state.clone());
    let tls = cfg.tls.clone();
    let limits = service::serve_limits(cfg.serve);
    let server = tokio::spawn(async move {
        if let Err(e) = triad_wire::https::serve_with(listener, tls, router, limits).await {
            tracing::error!(error = %e, "party server stopped");
        }
    });
    let st = state.clone();
    let recovery = tokio::spawn(async move {
        loop {
            service::recover_pending(&st).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    Ok(PartyHandle {
        addr,
        state,
        tasks: vec![server, recovery],
    })
}

/// `triad party`.
#[derive(clap::Args, Debug)]
pub struct PartyArgs {
    #[command(flatten)]
    pub service: triad_wire::config::ServiceArgs,
    /// Party index: 0, 1 or 2.
    #[arg(long)]
    pub id: usize,
    /// File holding this party's token toward the coordinator.
    #[arg(long)]
    pub internal_token_file: PathBuf,
    /// File holding the SHA-256 (hex) of the coordinator's token.
    #[arg(long)]
    pub coordinator_token_digest_file: PathBuf,
    /// Refuse studies whose min_cohort is below this.
    #[arg(long, default_value_t = 10)]
    pub min_cohort_floor: u64,
    /// Refuse studies whose min_new is below this.
    #[arg(long, default_value_t = 10)]
    pub min_new_floor: u64,
    /// The adversary the statistics' MPC is secure against
    /// (docs/security.md); the three parties must agree.
    #[arg(long, value_enum, default_value_t = SecurityArg::Malicious)]
    pub security: SecurityArg,
    /// The poll jobs' mode; the three parties must agree. `malicious`
    /// checks every phase of the tally and the re-keying epochs (several
    /// times slower).
    #[arg(long, value_enum, default_value_t = SecurityArg::SemiHonest)]
    pub poll_security: SecurityArg,
    /// Share uploads per second per client IP (and burst).
    #[arg(long, default_value_t = DEFAULT_UPLOAD_RATE.per_ip_per_sec)]
    pub per_ip_per_sec: f64,
    #[arg(long, default_value_t = DEFAULT_UPLOAD_RATE.per_ip_burst)]
    pub per_ip_burst: f64,
}

pub fn read_token(path: &Path) -> Result<String, PartyError> {
    let t = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let t = t.trim().to_string();
    if t.len() < 32 {
        return Err(file_err(path, "token shorter than 32 characters"));
    }
    Ok(t)
}

/// Runs a party until the process is killed.
pub fn run_blocking(args: PartyArgs) -> Result<(), PartyError> {
    let id =
        PartyId::new(args.id).ok_or_else(|| PartyError::Config("--id must be 0, 1 or 2".into()))?;
    let (network, tls) = args.service.load().map_err(PartyError::Config)?;
    let serve = args.service.serve_limits();
    let internal_token = read_token(&args.internal_token_file)?;
    let coordinator_token_sha256 =
        triad_wire::https::read_digest(&args.coordinator_token_digest_file)
            .map_err(PartyError::Config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.service.listen).await?;
        let h = launch(
            PartyConfig {
                id,
                data_dir: args.service.data_dir,
                database: args.service.database,
                network,
                tls,
                internal_token,
                coordinator_token_sha256,
                floors: Floors {
                    min_cohort: args.min_cohort_floor,
                    min_new: args.min_new_floor,
                },
                upload_rate: triad_wire::limits::RateLimit {
                    per_ip_per_sec: args.per_ip_per_sec,
                    per_ip_burst: args.per_ip_burst,
                    ..DEFAULT_UPLOAD_RATE
                },
                serve,
                security: args.security.mode(),
                poll_security: args.poll_security.mode(),
            },
            listener,
        )
        .await?;
        println!("party {} listening on https://{}", id.index(), h.addr);
        std::future::pending::<()>().await;
        Ok(())
    })
}
