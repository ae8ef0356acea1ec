//! The notary service: the recording proxy (raw TCP, [`crate::proxy`]) and
//! the HTTPS API ([`crate::api`]) on the server loop every triad service
//! runs, started together so that the proxy never relays to the API;
//! `triad notary` ([`run_notary_blocking`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use triad_attestation::{Attestation, NotaryPublicKey, NotarySigningKey};
use triad_wire::https::ServeLimits;

use crate::api::{router, ApiState};
pub use crate::api::{ApiLimits, AttestApiRequest, NotaryInfo};
use crate::prover::Opening;
use crate::proxy::{launch_proxy_guarding, ProxyConfig, ProxyHandle};
use crate::target::AllowedTarget;
use crate::transcript::root_store;

/// File names in the notary's data directory.
pub const NOTARY_KEY_FILE: &str = "notary.key";
pub const NOTARY_INFO_FILE: &str = "notary.json";

/// Everything the service needs.
pub struct NotaryServiceConfig {
    pub key: NotarySigningKey,
    /// The roots the notary checks the proxied servers' chains against.
    pub roots: Arc<RootCertStore>,
    /// Attestation lifetime from the session time.
    pub ttl_secs: u64,
    pub proxy: ProxyConfig,
    pub api: ApiLimits,
    /// The API's HTTPS certificate (`triad_wire::https::server_config`).
    pub tls: Arc<rustls::ServerConfig>,
    /// The API's connection caps and timeouts.
    pub serve: ServeLimits,
}

/// A running notary.
pub struct NotaryService {
    pub api_addr: SocketAddr,
    pub proxy_addr: SocketAddr,
    pub public_key: NotaryPublicKey,
    proxy: Arc<ProxyHandle>,
    task: JoinHandle<std::io::Result<()>>,
}

impl NotaryService {
    /// The API's base URL on its bound address.
    pub fn url(&self) -> String {
        format!("https://{}", self.api_addr)
    }

    pub fn info(&self) -> NotaryInfo {
        NotaryInfo {
            url: Some(self.url()),
            proxy: self.proxy_addr.to_string(),
            public_key: self.public_key.to_hex(),
            key_id: self.public_key.key_id(),
        }
    }

    /// Stops the API and the proxy.
    pub fn shutdown(self) {
        self.task.abort();
        if let Ok(p) = Arc::try_unwrap(self.proxy) {
            p.shutdown();
        }
    }
}

/// The API's server limits: a handler waits up to `session_wait` for its
/// session and then checks it, so the handler deadline stays above that.
fn serve_limits(mut l: ServeLimits, api: &ApiLimits) -> ServeLimits {
    let floor = api.session_wait + std::time::Duration::from_secs(30);
    l.request_timeout = l.request_timeout.max(floor);
    l
}

/// Starts the proxy on `proxy_listener` and the HTTPS API on
/// `api_listener`. Must run inside a tokio runtime.
pub fn launch_notary(
    api_listener: TcpListener,
    proxy_listener: TcpListener,
    cfg: NotaryServiceConfig,
) -> std::io::Result<NotaryService> {
    let api_addr = api_listener.local_addr()?;
    // The proxy never relays to the API (nor to itself).
    let proxy = Arc::new(launch_proxy_guarding(
        proxy_listener,
        cfg.proxy,
        &[api_addr],
    )?);
    let proxy_addr = proxy.addr;
    let public_key = cfg.key.public_key();
    let info = NotaryInfo {
        url: None,
        proxy: proxy_addr.to_string(),
        public_key: public_key.to_hex(),
        key_id: public_key.key_id(),
    };
    let limits = serve_limits(cfg.serve, &cfg.api);
    let state = Arc::new(ApiState {
        key: cfg.key,
        roots: cfg.roots,
        ttl_secs: cfg.ttl_secs,
        limits: cfg.api,
        proxy: proxy.clone(),
        info,
    });
    let task = tokio::spawn(triad_wire::https::serve_with(
        api_listener,
        cfg.tls,
        router(state),
        limits,
    ));
    Ok(NotaryService {
        api_addr,
        proxy_addr,
        public_key,
        proxy,
        task,
    })
}

/// What `triad notary` runs.
pub struct NotaryOptions<'a> {
    /// Signing key, `notary.json`.
    pub data_dir: &'a Path,
    /// A CA (PEM) the notary trusts for proxied servers besides the
    /// platform roots.
    pub trust_ca: Option<&'a Path>,
    pub api_listen: &'a str,
    pub proxy_listen: &'a str,
    /// See [`ProxyConfig::allowed_targets`].
    pub allowed_targets: Vec<AllowedTarget>,
    /// The API's certificate chain and key (PEM).
    pub tls_cert: &'a Path,
    pub tls_key: &'a Path,
    pub serve: ServeLimits,
}

/// `triad notary`: loads or creates the key in `data_dir`, trusts the
/// platform roots plus `trust_ca` for proxied servers, serves the API over
/// HTTPS with the given certificate, relays only to `allowed_targets`,
/// writes `notary.json` once ready and serves until killed.
pub fn run_notary_blocking(
    opts: NotaryOptions<'_>,
    ready: impl FnOnce(&NotaryInfo),
) -> Result<(), String> {
    let data_dir = opts.data_dir;
    triad_files::private_dir(data_dir).map_err(|e| e.to_string())?;
    triad_files::check_private(data_dir, 2).map_err(|e| e.to_string())?;
    let key = triad_wire::keyfile::load_or_create_signing_key(&data_dir.join(NOTARY_KEY_FILE))
        .map_err(|e| format!("notary key: {e}"))?;
    let extra = match opts.trust_ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let roots = root_store(extra.as_deref(), true).map_err(|e| format!("trust roots: {e}"))?;
    let tls = triad_wire::https::server_config(opts.tls_cert, opts.tls_key)
        .map_err(|e| format!("API certificate: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let api = TcpListener::bind(opts.api_listen)
            .await
            .map_err(|e| format!("API listen {}: {e}", opts.api_listen))?;
        let px = TcpListener::bind(opts.proxy_listen)
            .await
            .map_err(|e| format!("proxy listen {}: {e}", opts.proxy_listen))?;
        let svc = launch_notary(
            api,
            px,
            NotaryServiceConfig {
                key,
                roots: Arc::new(roots),
                ttl_secs: 24 * 3600,
                proxy: ProxyConfig {
                    allowed_targets: opts.allowed_targets,
                    ..ProxyConfig::default()
                },
                api: ApiLimits::default(),
                tls,
                serve: opts.serve,
            },
        )
        .map_err(|e| e.to_string())?;
        let info = svc.info();
        write_info(data_dir, &info)?;
        ready(&info);
        match svc.task.await {
            Ok(Ok(())) => Err("the API server stopped".to_string()),
            Ok(Err(e)) => Err(format!("API server: {e}")),
            Err(e) => Err(format!("API server task: {e}")),
        }
    })
}

fn write_info(dir: &Path, info: &NotaryInfo) -> Result<(), String> {
    let path: PathBuf = dir.join(NOTARY_INFO_FILE);
    let text = serde_json::to_string_pretty(info).map_err(|e| e.to_string())?;
    triad_files::write_private(&path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Writes `attestation.json` and `opening.json` (mode 0600) into `out`.
pub fn write_attestation_files(
    out: &Path,
    att: &Attestation,
    opening: &Opening,
) -> Result<(), String> {
    triad_files::private_dir(out).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(opening).map_err(|e| e.to_string())?;
    triad_files::write_private(&out.join("attestation.json"), att.to_json().as_bytes())
        .and_then(|()| triad_files::write_private(&out.join("opening.json"), text.as_bytes()))
        .map_err(|e| e.to_string())
}
