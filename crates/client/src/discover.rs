//! Finding a study or a poll by its directory id alone (docs/directory.md,
//! "Services"): a client node joins the directory through a bootstrap
//! list, looks the record up the private way
//! (`triad_directory::node::discover`: the id never leaves this process),
//! verifies it (the id derives from the coordinator's key, the coordinator
//! signed it, all three parties endorsed it, it is valid now), and builds
//! from it the same network description `network.json` would give.
//!
//! Trust: everything comes from the signed record except the trust
//! anchors, which the client brings: the services' CA certificate (whose
//! SHA-256 the record states, so a CA file from anywhere is checked) and,
//! for a data source whose certificate is not from a public CA (a
//! devnet's), that data source's CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_directory::derive::DirectoryId;
use triad_directory::node::{discover, LookupError, NodeHandle};
use triad_directory::publish::{start_client, system_clock};
use triad_directory::record::{Kind, ServiceRecord};
use triad_wire::config::DatasourceEndpoint;
use triad_wire::directory::RecordSpec;
use triad_wire::{NetworkConfig, PartyEndpoint};

use crate::ClientError;

/// Lookups per discovery (a fresh record may still be on its way to the
/// nodes; a lost answer is worth another try).
const ATTEMPTS: u32 = 3;
const RETRY: Duration = Duration::from_secs(1);
/// Longest a whole lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a client finds the directory, and the trust anchors it brings.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DirectoryArgs {
    /// A directory node, `<multiaddr>/p2p/<peer id>` (repeatable). With
    /// --devnet, the devnet's nodes (its devnet.json) are the default.
    #[arg(long = "directory", value_name = "ADDR")]
    pub directory: Vec<String>,
    /// The services' CA certificate (PEM); its SHA-256 must be the one the
    /// record states. With --devnet: <dir>/tls/ca.pem.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// The data source's CA certificate (PEM), for a data source whose
    /// certificate is not from a public CA. With --devnet: the devnet's.
    #[arg(long, value_name = "PEM")]
    pub datasource_ca: Option<PathBuf>,
}

/// What a discovery uses: bootstrap nodes and trust anchors.
#[derive(Clone, Debug)]
pub struct Discovery {
    pub bootstrap: Vec<String>,
    pub ca: Option<PathBuf>,
    pub datasource_ca: Option<PathBuf>,
}

/// `args`, with a devnet directory's nodes and CAs as defaults.
pub fn resolve(args: &DirectoryArgs, devnet: Option<&Path>) -> Result<Discovery, ClientError> {
    let mut d = Discovery {
        bootstrap: args.directory.clone(),
        ca: args.ca.clone(),
        datasource_ca: args.datasource_ca.clone(),
    };
    if let Some(dir) = devnet {
        let path = dir.join("devnet.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ClientError::Io {
            what: format!("{} (is the devnet running?)", path.display()),
            source,
        })?;
        let info: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
        if d.bootstrap.is_empty() {
            d.bootstrap = info["directory"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
        }
        if d.ca.is_none() {
            d.ca = Some(dir.join("tls").join("ca.pem"));
        }
        if d.datasource_ca.is_none() {
            d.datasource_ca = info["network"]["datasource"]["ca_cert"]
                .as_str()
                .map(PathBuf::from);
        }
    }
    if d.bootstrap.is_empty() {
        return Err(ClientError::Usage(
            "no directory node: give --directory <multiaddr>/p2p/<peer id> (or --devnet <dir>)"
                .into(),
        ));
    }
    Ok(d)
}

/// Parses a directory id (64 lowercase hex digits).
pub fn parse_id(s: &str) -> Result<DirectoryId, ClientError> {
    DirectoryId::from_hex(s.trim()).ok_or_else(|| {
        ClientError::Usage(format!(
            "{s:?} is not a directory id (64 lowercase hex digits)"
        ))
    })
}

/// A client node on 127.0.0.1 (a fresh identity), knowing `bootstrap`.
pub async fn client_node(bootstrap: &[String]) -> Result<NodeHandle, ClientError> {
    start_client(
        "127.0.0.1:0".parse().expect("an address"),
        bootstrap,
        system_clock(),
    )
    .await
    .map_err(|e| ClientError::Directory(e.to_string()))
}

/// Finds and verifies `id`'s record of `kind` through a fresh client
/// node bootstrapped to `bootstrap`.
pub async fn find_record(
    bootstrap: &[String],
    id: &DirectoryId,
    kind: Kind,
) -> Result<ServiceRecord, ClientError> {
    let node = client_node(bootstrap).await?;
    find_record_via(&node, id, kind).await
}

/// [`find_record`] through a running node (many lookups share one).
pub async fn find_record_via(
    node: &NodeHandle,
    id: &DirectoryId,
    kind: Kind,
) -> Result<ServiceRecord, ClientError> {
    let what = match kind {
        Kind::Study => "study",
        Kind::Poll => "poll",
    };
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let r = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            discover(node, id, kind, triad_wire::unix_now(), None),
        )
        .await
        .unwrap_or_else(|_| Err(LookupError::Network("the lookup timed out".into())));
        match r {
            Ok(record) => return Ok(record),
            Err(e) => last = Some(e),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(RETRY).await;
        }
    }
    Err(match last {
        Some(LookupError::NotFound(asked)) => ClientError::NotFound {
            what: format!("{what} {}", id.to_hex()),
            asked,
        },
        Some(LookupError::Envelope(e)) => {
            ClientError::Directory(format!("a record under this id was found but refused: {e}"))
        }
        Some(e) => ClientError::Directory(e.to_string()),
        None => ClientError::Directory("no lookup ran".into()),
    })
}

/// The record's `spec`.
pub fn record_spec(record: &ServiceRecord) -> Result<RecordSpec, ClientError> {
    serde_json::from_value(record.body.spec.clone())
        .map_err(|e| ClientError::Directory(format!("the record's spec: {e}")))
}

/// The network description a verified record gives, with the client's
/// trust anchors: `ca` must be the CA whose SHA-256 the record states.
/// What the record does not carry stays empty: the parties' MPC
/// certificates and the consumer API (no client verb here needs them).
pub fn network_from_record(
    record: &ServiceRecord,
    ca: &Path,
    datasource_ca: Option<&Path>,
) -> Result<NetworkConfig, ClientError> {
    let spec = record_spec(record)?;
    let pem = std::fs::read(ca).map_err(|source| ClientError::Io {
        what: format!("CA certificate {}", ca.display()),
        source,
    })?;
    let digest = triad_wire::directory::ca_sha256(&pem)
        .ok_or_else(|| ClientError::Usage(format!("{} holds no PEM certificate", ca.display())))?;
    if !digest.eq_ignore_ascii_case(&spec.ca_sha256) {
        return Err(ClientError::Directory(format!(
            "the CA certificate {} (SHA-256 {digest}) is not the one the record names ({})",
            ca.display(),
            spec.ca_sha256
        )));
    }
    let b = &record.body;
    let mut parties = Vec::with_capacity(3);
    for (i, p) in b.parties.iter().enumerate() {
        parties.push(PartyEndpoint {
            url: p.url.clone(),
            mpc_addr: p.mpc_addr.parse().map_err(|_| {
                ClientError::Directory(format!("party {i}'s MPC address {:?}", p.mpc_addr))
            })?,
            mpc_cert: String::new(),
            sign_key: p.key.clone(),
        });
    }
    let source = spec
        .study
        .as_ref()
        .map(|s| s.source.clone())
        .or_else(|| spec.poll.as_ref().map(|p| p.source.clone()));
    let datasource = match (&spec.source_url, datasource_ca) {
        (Some(url), Some(ca)) => Some(DatasourceEndpoint {
            url: url.clone(),
            ca_cert: ca.to_path_buf(),
            source,
        }),
        _ => None,
    };
    Ok(NetworkConfig {
        ca_cert: ca.to_path_buf(),
        coordinator: b.coordinator.url.clone(),
        coordinator_key: Some(b.coordinator.key.clone()),
        parties: parties
            .try_into()
            .map_err(|_| ClientError::Internal("three parties".into()))?,
        notary: spec.notary,
        notary_key: b.notary_key.clone(),
        api: String::new(),
        datasource,
        // Clients run no MPC.
        mpc_latency_us: 0,
    })
}

/// Discovers `id` of `kind` and returns its record and network
/// description (see [`network_from_record`]); `d.ca` is required.
/// A verb's `--study-id` / `--poll-id`: parses the id, resolves the
/// directory flags (and a devnet's defaults) and discovers the record and
/// the network description it gives.
pub fn discover_by_id(
    rt: &tokio::runtime::Runtime,
    hex: &str,
    args: &DirectoryArgs,
    devnet: Option<&Path>,
    kind: Kind,
) -> Result<(ServiceRecord, NetworkConfig), ClientError> {
    let id = parse_id(hex)?;
    let d = resolve(args, devnet)?;
    rt.block_on(discover_network(&d, &id, kind))
}

pub async fn discover_network(
    d: &Discovery,
    id: &DirectoryId,
    kind: Kind,
) -> Result<(ServiceRecord, NetworkConfig), ClientError> {
    let ca = d.ca.as_deref().ok_or_else(|| {
        ClientError::Usage(
            "give --ca <services' CA certificate> (or --devnet <dir>): the record states its \
             SHA-256, the client brings the certificate"
                .into(),
        )
    })?;
    let record = find_record(&d.bootstrap, id, kind).await?;
    let net = network_from_record(&record, ca, d.datasource_ca.as_deref())?;
    Ok((record, net))
}

/// A human summary of a verified record.
pub fn describe_record(id: &DirectoryId, record: &ServiceRecord) -> String {
    let b = &record.body;
    let kind = match b.kind {
        Kind::Study => "study",
        Kind::Poll => "poll",
    };
    let mut out = format!(
        "{kind} {:?} (directory id {}): signed by its coordinator and endorsed by all three \
         parties, verified locally\n",
        b.name,
        id.to_hex()
    );
    out.push_str(&format!(
        "  valid        unix {} to {} (sequence {})\n",
        b.issued_at, b.expires_at, b.seq
    ));
    out.push_str(&format!(
        "  coordinator  {}  key {}\n",
        b.coordinator.url, b.coordinator.key
    ));
    for (i, p) in b.parties.iter().enumerate() {
        out.push_str(&format!(
            "  party {i}      {}  mpc {}  key {}\n",
            p.url, p.mpc_addr, p.key
        ));
    }
    out.push_str(&format!("  notary key   {}\n", b.notary_key));
    if let Ok(spec) = serde_json::from_value::<RecordSpec>(b.spec.clone()) {
        out.push_str(&format!("  notary       {}\n", spec.notary));
        out.push_str(&format!("  CA SHA-256   {}\n", spec.ca_sha256));
        if let Some(url) = &spec.source_url {
            out.push_str(&format!("  attest from  {url}\n"));
        }
        if let Some(s) = &spec.study {
            out.push_str(&format!(
                "  study        {:?}: field {} at scale {}, source {}, min cohort {}\n",
                s.title, s.data_spec.field, s.data_spec.scale, s.source.server_name, s.min_cohort
            ));
        }
        if let Some(p) = &spec.poll {
            out.push_str(&format!(
                "  poll         {:?}: {} options, {:?}, sign-ups until {}, voting until {}\n",
                p.name, p.vote_options, p.mode, p.signup_deadline, p.voting_deadline
            ));
        }
    }
    out
}
