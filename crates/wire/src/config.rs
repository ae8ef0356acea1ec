//! The network description (`network.json`): every endpoint and public key
//! a service or client needs. Secrets never go here: each service reads its
//! own keys from its data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One computation party.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartyEndpoint {
    /// HTTPS base URL: share intake, releases, internal batch endpoints.
    pub url: String,
    /// Where the party accepts its peers' MPC connections (mutual TLS).
    pub mpc_addr: SocketAddr,
    /// The party's MPC certificate (DER, hex), pinned by its peers.
    pub mpc_cert: String,
    /// The party's ed25519 release-signing public key (64 hex).
    pub sign_key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// PEM of the CA that issued every service's HTTPS certificate.
    pub ca_cert: PathBuf,
    /// Coordinator HTTPS base URL.
    pub coordinator: String,
    /// The coordinator's ed25519 public key (64 hex): it signs the
    /// directory records of its studies and polls, and the parties endorse
    /// only records this key signed (docs/directory.md, "Services").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator_key: Option<String>,
    pub parties: [PartyEndpoint; 3],
    /// Notary API HTTPS base URL (its certificate is issued by `ca_cert`,
    /// like every other service's).
    pub notary: String,
    /// The notary's ed25519 public key (64 hex), trusted by the coordinator.
    pub notary_key: String,
    /// Consumer API HTTPS base URL.
    pub api: String,
    /// The demo data source's account endpoint and its CA (devnet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource: Option<DatasourceEndpoint>,
    /// One-way delay between the parties in microseconds, as they assume
    /// it when choosing between protocol circuits with fewer rounds or
    /// fewer bytes (`triad_mpc::LinkModel`). 0 (the default) means one
    /// machine room. All three parties must read the same value: it
    /// decides the shape of their messages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mpc_latency_us: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatasourceEndpoint {
    pub url: String,
    pub ca_cert: PathBuf,
    /// What a study of this data source names as its source (server name,
    /// certificate pin), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<triad_attestation::DataSource>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a network description: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl NetworkConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Writes atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = serde_json::to_string_pretty(self).expect("config serializes");
        write_atomic(path, text.as_bytes()).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })
    }

    pub fn ca_pem(&self) -> Result<Vec<u8>, ConfigError> {
        std::fs::read(&self.ca_cert).map_err(|source| ConfigError::Io {
            path: self.ca_cert.clone(),
            source,
        })
    }
}

/// The flags every HTTPS service of the network takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ServiceArgs {
    /// The network description (network.json).
    #[arg(long)]
    pub network: PathBuf,
    /// The service's data directory (its SQLite file, keys).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Store in PostgreSQL instead of the SQLite file in --data-dir:
    /// `postgres://user@host:port/database`, a database of this service's
    /// own (never one another service uses). Give the password in the
    /// environment (`PGPASSWORD`), not here: arguments are visible to every
    /// user of the machine.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// HTTPS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// HTTPS private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// Most HTTPS connections open at once from one client address (a
    /// devnet, whose providers all come from 127.0.0.1, raises it).
    #[arg(long, default_value_t = crate::https::ServeLimits::DEFAULT.max_conns_per_ip)]
    pub max_conns_per_ip: usize,
    /// Most HTTPS connections open at once.
    #[arg(long, default_value_t = crate::https::ServeLimits::DEFAULT.max_conns)]
    pub max_conns: usize,
}

impl ServiceArgs {
    /// The network description and the HTTPS server configuration.
    pub fn load(&self) -> Result<(NetworkConfig, std::sync::Arc<rustls::ServerConfig>), String> {
        let network = NetworkConfig::load(&self.network).map_err(|e| e.to_string())?;
        let tls = crate::https::server_config(&self.tls_cert, &self.tls_key)
            .map_err(|e| e.to_string())?;
        Ok((network, tls))
    }

    /// The HTTPS server's limits: the defaults with these flags' caps.
    pub fn serve_limits(&self) -> crate::https::ServeLimits {
        crate::https::ServeLimits {
            max_conns_per_ip: self.max_conns_per_ip,
            max_conns: self.max_conns,
            ..crate::https::ServeLimits::DEFAULT
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new file,
/// never a torn one; the file is private to this user (0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    triad_files::write_private(path, bytes)
}
