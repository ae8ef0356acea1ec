//! `triad devnet`: the whole system on this machine as separate OS
//! processes on 127.0.0.1 — data source, notary, three directory nodes,
//! coordinator, three parties, consumer API — with generated keys and
//! certificates, a supervisor that restarts a crashed process, and
//! `<dir>/devnet.json` once all are ready.
//!
//! Layout of the directory (stable across restarts of the devnet: ports,
//! keys and databases are reused):
//! `network.json`, `devnet.json`, `tls/` (service CA and leaves),
//! `secrets/` (internal and admin tokens), one data directory per service
//! (`directory/` holds the directory nodes' identities), `logs/<service>.log`.
//! The directory nodes' addresses (fresh ports at every start, stable peer
//! ids) are in devnet.json's `directory`; the coordinator publishes every
//! study and poll through them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use triad_testsite::{DatasourceInfo, DATASOURCE_INFO_FILE};
use triad_wire::config::{write_atomic, DatasourceEndpoint};
use triad_wire::https::ServeLimits;
use triad_wire::pki::ServiceCa;
use triad_wire::{NetworkConfig, PartyEndpoint};

#[derive(clap::Args, Debug, Clone)]
pub struct DevnetArgs {
    /// Directory for keys, databases, logs and devnet.json.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Accounts of the demo data source.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Seed of the demo data source's accounts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest batch the coordinator forms.
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    /// The parties' security mode for the statistics (docs/security.md).
    /// `malicious` checks every gate of the contribution checks and
    /// releases.
    #[arg(long, value_enum, default_value_t = triad_party::SecurityArg::Malicious)]
    pub security: triad_party::SecurityArg,
    /// The poll jobs' mode: `malicious` checks every phase of the tally
    /// and the re-keying epochs (several times slower; docs/security.md).
    #[arg(long, value_enum, default_value_t = triad_party::SecurityArg::SemiHonest)]
    pub poll_security: triad_party::SecurityArg,
    /// Store in PostgreSQL instead of SQLite files: the URL of a database
    /// on the server whose role may create databases (e.g.
    /// `postgres://triad@127.0.0.1/postgres`; the password in the URL or in
    /// `PGPASSWORD`). The devnet creates one database per service
    /// (coordinator, each party, API), named after its directory, and hands
    /// the password to its services in their environment, never in their
    /// arguments.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

/// One service's database of a devnet on PostgreSQL.
#[derive(Clone)]
struct ServiceDatabase {
    /// `coordinator`, `party0`..`party2` or `api`.
    service: String,
    /// The database's name.
    name: String,
    /// Its URL without the password (what the service is given in its
    /// arguments).
    url: String,
    /// The same with the password, for this process's own use.
    full_url: String,
}

/// The databases of a devnet on PostgreSQL.
#[derive(Clone)]
pub struct Databases {
    services: Vec<ServiceDatabase>,
    /// From the URL or `PGPASSWORD`; the services get it in theirs.
    pub password: Option<String>,
}

/// Names the databases, never the password.
impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|d| d.name.as_str()).collect();
        f.debug_struct("Databases").field("names", &names).finish()
    }
}

impl Databases {
    /// Creates (if missing) the databases of the devnet in `dir` on the
    /// server `admin_url` reaches: `triad_<8 hex of the directory>_<service>`.
    /// A `fresh` devnet (new keys) first drops any left by an earlier one
    /// in the same directory. Blocks.
    pub fn create(admin_url: &str, dir: &Path, fresh: bool) -> anyhow::Result<Self> {
        use sha2::Digest;
        let tag = hex::encode(&sha2::Sha256::digest(dir.display().to_string().as_bytes())[..4]);
        let password = triad_pg::split_password(admin_url)
            .1
            .or_else(|| std::env::var("PGPASSWORD").ok());
        let mut services = Vec::new();
        for service in ["coordinator", "party0", "party1", "party2", "api"] {
            let name = format!("triad_{tag}_{service}");
            if fresh {
                triad_pg::drop_database(admin_url, &name)
                    .with_context(|| format!("dropping the earlier database {name}"))?;
            }
            let full_url = triad_pg::create_database(admin_url, &name).with_context(|| {
                format!(
                    "creating database {name} on {}",
                    triad_pg::redact(admin_url)
                )
            })?;
            services.push(ServiceDatabase {
                service: service.to_string(),
                name,
                url: triad_pg::split_password(&full_url).0,
                full_url,
            });
        }
        Ok(Self { services, password })
    }

    /// Drops the databases (those of a devnet in a scratch directory go
    /// with it). Blocks; callable from async code.
    pub fn drop_all(&self, admin_url: &str) -> anyhow::Result<()> {
        for d in &self.services {
            triad_pg::drop_database(admin_url, &d.name)
                .with_context(|| format!("dropping database {}", d.name))?;
        }
        Ok(())
    }

    fn of(&self, service: &str) -> Option<&ServiceDatabase> {
        self.services.iter().find(|d| d.service == service)
    }

    /// The URL `service` is given (no password).
    pub fn url(&self, service: &str) -> Option<&str> {
        self.of(service).map(|d| d.url.as_str())
    }

    /// The URL with the password, for this process.
    pub fn full_url(&self, service: &str) -> Option<&str> {
        self.of(service).map(|d| d.full_url.as_str())
    }

    /// `service=URL` per service (no password), as devnet.json lists them.
    pub fn listing(&self) -> Vec<String> {
        self.services
            .iter()
            .map(|d| format!("{}={}", d.service, d.url))
            .collect()
    }
}

/// One supervised service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    pub restarts: u32,
}

/// `devnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevnetInfo {
    pub network: NetworkConfig,
    pub network_file: PathBuf,
    pub admin_token_file: PathBuf,
    pub ground_truth: PathBuf,
    pub api_keys_file: PathBuf,
    pub services: Vec<ServiceInfo>,
    /// The directory nodes, `<multiaddr>/p2p/<peer id>` each.
    #[serde(default)]
    pub directory: Vec<String>,
    /// Directory ids of the studies and polls the demos created.
    #[serde(default)]
    pub directory_ids: Vec<ListedId>,
    /// With `--postgres`: each service's database, as `service=URL`
    /// (without the password).
    #[serde(default)]
    pub databases: Vec<String>,
}

/// A study's or poll's directory id, as devnet.json lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListedId {
    /// `study` or `poll`.
    pub kind: String,
    /// Its name in the services (study id, poll id).
    pub name: String,
    /// The directory id (64 hex).
    pub id: String,
}

/// What devnet.json lists besides the processes.
#[derive(Clone, Debug, Default)]
struct Listing {
    directory: Vec<String>,
    ids: Vec<ListedId>,
    databases: Vec<String>,
}

struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    restarts: u32,
}

/// Set in every service's environment: the service exits when its stdin
/// (a pipe held by the devnet) closes, so no service outlives a devnet that
/// was killed, even by SIGKILL.
pub const EXIT_WITH_PARENT_ENV: &str = "TRIAD_EXIT_WITH_PARENT";

/// A running devnet; dropping it stops every process.
pub struct Devnet {
    pub dir: PathBuf,
    pub network: NetworkConfig,
    /// Set when the services store in PostgreSQL.
    pub databases: Option<Databases>,
    /// The server to drop the databases on when the devnet is dropped.
    drop_databases: Option<String>,
    sup: Supervisor,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.sup.shutdown();
        if let (Some(d), Some(url)) = (&self.databases, &self.drop_databases) {
            if let Err(e) = d.drop_all(url) {
                eprintln!("devnet: {e:#}");
            }
        }
    }
}

/// The devnet's processes, from the first one started: dropping it stops
/// them all, also when the devnet fails half-way through starting.
struct Supervisor {
    dir: PathBuf,
    procs: Arc<Mutex<Vec<Proc>>>,
    /// Set in every service's environment (the database password).
    env: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
    /// Set once devnet.json was first written; from then on the monitor
    /// rewrites it after every restart (new pids).
    ready: Arc<AtomicBool>,
    listing: Arc<Mutex<Listing>>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

/// A fresh directory under the system temp dir (created by whoever uses
/// it), removed on drop unless kept.
pub struct ScratchDir {
    pub path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    pub fn new(what: &str, keep: bool) -> Self {
        let path = std::env::temp_dir().join(format!(
            "triad-{what}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        Self { path, keep }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Hands out distinct free ports: every probe listener stays open until
/// the whole set is chosen, so the OS cannot hand the same port out twice.
/// The ports are released before the services bind them; on loopback the
/// window is tiny and a collision shows as a failed start (restarted).
#[derive(Default)]
struct PortPicker(Vec<std::net::TcpListener>);

impl PortPicker {
    fn pick(&mut self) -> anyhow::Result<u16> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        self.0.push(l);
        Ok(port)
    }
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn write_secret(path: &Path, s: &str) -> anyhow::Result<()> {
    Ok(triad_files::write_private(path, s.as_bytes())?)
}

fn spawn(p: &mut Proc) -> anyhow::Result<()> {
    let log = triad_files::append_private(&p.log)?;
    let child = Command::new(std::env::current_exe()?)
        .args(&p.args)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .env(EXIT_WITH_PARENT_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", p.name))?;
    p.child = Some(child);
    Ok(())
}

impl Devnet {
    /// Prepares `dir` (or reuses a previous devnet's keys and ports) and
    /// starts every service; returns once all answer their health checks.
    pub async fn start(args: &DevnetArgs) -> anyhow::Result<Self> {
        let dir = args.data_dir.clone();
        triad_files::private_dir(&dir)?;
        for sub in [
            "tls",
            "secrets",
            "logs",
            "datasource",
            "notary",
            "coordinator",
            "api",
            "directory",
        ] {
            triad_files::private_dir(&dir.join(sub))?;
        }
        let dir = dir.canonicalize()?;
        // devnet.json means "all ready": a previous run's copy must go.
        let _ = std::fs::remove_file(dir.join("devnet.json"));
        let mut sup = Supervisor {
            dir: dir.clone(),
            procs: Arc::new(Mutex::new(Vec::new())),
            env: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            ready: Arc::new(AtomicBool::new(false)),
            listing: Arc::new(Mutex::new(Listing::default())),
            monitor: None,
        };
        let net_file = dir.join("network.json");
        let (ports, fresh) = if net_file.exists() {
            (
                Ports::from_network(&NetworkConfig::load(&net_file)?)?,
                false,
            )
        } else {
            (Ports::allocate()?, true)
        };
        // A devnet from before the notary spoke HTTPS has no notary leaf:
        // a fresh CA and every leaf then.
        if fresh || !dir.join("tls/ca.pem").exists() || !dir.join("tls/notary.pem").exists() {
            let ca = ServiceCa::create(&dir.join("tls/ca.pem"))?;
            for name in ["coordinator", "party0", "party1", "party2", "api", "notary"] {
                ca.issue(&dir.join("tls"), name)?;
            }
            // Each side of the coordinator ⇄ parties link has its own token;
            // the other side keeps only its digest, so no party can act as
            // the coordinator toward the other two.
            for who in ["coordinator", "party"] {
                let t = random_hex(32);
                let digest = hex::encode(triad_wire::https::token_digest(&t));
                write_secret(&dir.join(format!("secrets/{who}.token")), &t)?;
                write_secret(&dir.join(format!("secrets/{who}.token.sha256")), &digest)?;
            }
            write_secret(&dir.join("secrets/admin.token"), &random_hex(32))?;
        }
        // 1. The data source and the notary: the network file names them.
        let ds_dir = dir.join("datasource");
        sup.add(
            "datasource",
            vec![
                "datasource".into(),
                "--data-dir".into(),
                ds_dir.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", ports.datasource),
                "--accounts".into(),
                args.accounts.to_string(),
                "--seed".into(),
                args.seed.to_string(),
            ],
        )?;
        let ds_info_path = ds_dir.join(DATASOURCE_INFO_FILE);
        let ds_info: DatasourceInfo = wait_for(Duration::from_secs(60), || {
            let s = std::fs::read_to_string(&ds_info_path).ok()?;
            let info: DatasourceInfo = serde_json::from_str(&s).ok()?;
            info.url
                .contains(&format!(":{}/", ports.datasource))
                .then_some(info)
        })
        .context("the data source did not start (see logs/datasource.log)")?;
        let notary_dir = dir.join("notary");
        let notary_key = triad_wire::keyfile::load_or_create_signing_key(
            &notary_dir.join(triad_notary::service::NOTARY_KEY_FILE),
        )?
        .public_key()
        .to_hex();
        sup.add(
            "notary",
            vec![
                "notary".into(),
                "--data-dir".into(),
                notary_dir.display().to_string(),
                "--trust-ca".into(),
                ds_info.ca_cert.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", ports.notary),
                "--proxy-listen".into(),
                format!("127.0.0.1:{}", ports.proxy),
                // The proxy relays to the devnet's data source only.
                "--allow-target".into(),
                format!("127.0.0.1:{}", ports.datasource),
                // Its API is HTTPS under the devnet's CA, like every service.
                "--tls-cert".into(),
                dir.join("tls/notary.pem").display().to_string(),
                "--tls-key".into(),
                dir.join("tls/notary.key").display().to_string(),
                // Every simulated provider comes from 127.0.0.1.
                "--max-conns-per-ip".into(),
                ServeLimits::DEFAULT.max_conns.to_string(),
            ],
        )?;
        // 2. The directory: three nodes, each knowing the other two. Their
        // identities are kept in the devnet directory, so a node restarted
        // by the supervisor comes back at the same address.
        let mut nodes = Vec::new();
        for (i, port) in ports.directory.iter().enumerate() {
            let key_file = dir.join(format!("directory/node{i}.key"));
            let peer = crate::directory_cli::node_identity(&key_file)?
                .public()
                .to_peer_id();
            let addr = triad_directory::publish::node_address(
                &triad_directory::node::tcp_multiaddr(([127, 0, 0, 1], *port).into()),
                &peer,
            );
            nodes.push((key_file, addr));
        }
        let directory: Vec<String> = nodes.iter().map(|(_, a)| a.clone()).collect();
        for (i, (key_file, _)) in nodes.iter().enumerate() {
            let ready = dir.join(format!("directory/node{i}.addr"));
            let _ = std::fs::remove_file(&ready);
            let mut a = vec![
                "directory-node".to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", ports.directory[i]),
                "--key-file".into(),
                key_file.display().to_string(),
                "--ready-file".into(),
                ready.display().to_string(),
            ];
            for (j, other) in directory.iter().enumerate() {
                if j != i {
                    a.extend(["--bootstrap".to_string(), other.clone()]);
                }
            }
            sup.add(&format!("directory{i}"), a)?;
        }
        for (i, want) in directory.iter().enumerate() {
            let ready = dir.join(format!("directory/node{i}.addr"));
            wait_for(Duration::from_secs(60), || {
                let got = std::fs::read_to_string(&ready).ok()?;
                (got.trim() == want).then_some(())
            })
            .with_context(|| {
                format!("directory node {i} did not start (see logs/directory{i}.log)")
            })?;
        }
        sup.listing.lock().unwrap().directory = directory.clone();
        // 3. Keys of the coordinator and the parties, then the network
        // description.
        let coordinator_key = triad_wire::keyfile::load_or_create_signing_key(
            &dir.join("coordinator")
                .join(triad_coordinator::directory::COORDINATOR_KEY_FILE),
        )?
        .public_key()
        .to_hex();
        let mut parties = Vec::new();
        for i in 0..3 {
            let keys = triad_party::load_or_create_keys(&dir.join(format!("party{i}")), i)?;
            parties.push(PartyEndpoint {
                url: format!("https://127.0.0.1:{}", ports.party[i]),
                mpc_addr: format!("127.0.0.1:{}", ports.mpc[i]).parse()?,
                mpc_cert: hex::encode(&keys.identity.cert_der),
                sign_key: keys.sign.public_key().to_hex(),
            });
        }
        let network = NetworkConfig {
            mpc_latency_us: 0,
            ca_cert: dir.join("tls/ca.pem"),
            coordinator: format!("https://127.0.0.1:{}", ports.coordinator),
            coordinator_key: Some(coordinator_key),
            parties: parties.try_into().expect("three parties"),
            notary: format!("https://127.0.0.1:{}", ports.notary),
            notary_key,
            api: format!("https://127.0.0.1:{}", ports.api),
            datasource: Some(DatasourceEndpoint {
                url: ds_info.url.clone(),
                ca_cert: ds_info.ca_cert.clone(),
                source: Some(ds_info.source.clone()),
            }),
        };
        network.save(&net_file)?;
        // 4. The parties, the coordinator and the API, on SQLite files or
        // on PostgreSQL databases of their own.
        let databases = match &args.postgres {
            Some(url) => {
                let (url, d) = (url.clone(), dir.clone());
                let dbs = tokio::task::spawn_blocking(move || Databases::create(&url, &d, fresh))
                    .await??;
                if let Some(p) = &dbs.password {
                    sup.env.push(("PGPASSWORD".into(), p.clone()));
                }
                sup.listing.lock().unwrap().databases = dbs.listing();
                Some(dbs)
            }
            None => None,
        };
        let tls = |n: &str| {
            vec![
                "--tls-cert".to_string(),
                dir.join(format!("tls/{n}.pem")).display().to_string(),
                "--tls-key".to_string(),
                dir.join(format!("tls/{n}.key")).display().to_string(),
            ]
        };
        let common = |sub: &str, name: &str, port: u16| {
            let mut v = vec![
                sub.to_string(),
                "--network".into(),
                net_file.display().to_string(),
                "--data-dir".into(),
                dir.join(name).display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                // Every simulated provider of a devnet comes from
                // 127.0.0.1: one address may hold as many connections as
                // all clients together.
                "--max-conns-per-ip".into(),
                ServeLimits::DEFAULT.max_conns.to_string(),
            ];
            v.extend(tls(name));
            if let Some(url) = databases.as_ref().and_then(|d| d.url(name)) {
                v.extend(["--database".to_string(), url.to_string()]);
            }
            v
        };
        let secret = |f: &str| dir.join("secrets").join(f).display().to_string();
        for i in 0..3 {
            let name = format!("party{i}");
            let mut a = common("party", &name, ports.party[i]);
            a.extend(["--id".into(), i.to_string()]);
            let security = clap::ValueEnum::to_possible_value(&args.security).expect("named");
            a.extend(["--security".into(), security.get_name().to_string()]);
            let poll = clap::ValueEnum::to_possible_value(&args.poll_security).expect("named");
            a.extend(["--poll-security".into(), poll.get_name().to_string()]);
            a.extend(["--internal-token-file".into(), secret("party.token")]);
            a.extend([
                "--coordinator-token-digest-file".into(),
                secret("coordinator.token.sha256"),
            ]);
            // Every simulated provider of a devnet comes from 127.0.0.1.
            a.extend(["--per-ip-per-sec".into(), "5000".into()]);
            a.extend(["--per-ip-burst".into(), "10000".into()]);
            sup.add(&name, a)?;
        }
        let mut a = common("coordinator", "coordinator", ports.coordinator);
        a.extend([
            "--internal-token-file".into(),
            secret("coordinator.token"),
            "--party-token-digest-file".into(),
            secret("party.token.sha256"),
            "--admin-token-file".into(),
            dir.join("secrets/admin.token").display().to_string(),
            "--max-batch".into(),
            args.max_batch.to_string(),
        ]);
        // The coordinator publishes every study and poll in the directory.
        for node in &directory {
            a.extend(["--directory".to_string(), node.clone()]);
        }
        sup.add("coordinator", a)?;
        sup.add("api", common("api", "api", ports.api))?;
        sup.start_monitor(network.clone());
        let devnet = Self {
            dir,
            network,
            databases,
            drop_databases: None,
            sup,
        };
        devnet.wait_ready().await?;
        devnet.write_info()?;
        devnet.sup.ready.store(true, Ordering::SeqCst);
        Ok(devnet)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let ca = self.network.ca_pem()?;
        let http = triad_wire::https::client(&ca, Duration::from_secs(2))?;
        let mut urls: Vec<(String, String)> = vec![
            ("coordinator".into(), self.network.coordinator.clone()),
            ("api".into(), self.network.api.clone()),
            ("notary".into(), self.network.notary.clone()),
        ];
        for (i, p) in self.network.parties.iter().enumerate() {
            urls.push((format!("party{i}"), p.url.clone()));
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        for (name, url) in urls {
            let probe = format!("{url}/healthz");
            loop {
                let ok = matches!(http.get(&probe).send().await, Ok(r) if r.status().is_success());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{name} is not ready at {probe} (see logs/{name}.log)");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub fn info(&self) -> DevnetInfo {
        devnet_info(
            &self.dir,
            &self.network,
            &self.sup.procs.lock().unwrap(),
            &self.sup.listing.lock().unwrap(),
        )
    }

    /// The directory nodes, `<multiaddr>/p2p/<peer id>` each.
    pub fn directory(&self) -> Vec<String> {
        self.sup.listing.lock().unwrap().directory.clone()
    }

    /// Lists a study's or poll's directory id in devnet.json.
    pub fn list_directory_id(&self, kind: &str, name: &str, id: &str) -> anyhow::Result<()> {
        let entry = ListedId {
            kind: kind.into(),
            name: name.into(),
            id: id.into(),
        };
        {
            let mut l = self.sup.listing.lock().unwrap();
            if !l.ids.contains(&entry) {
                l.ids.push(entry);
            }
        }
        self.write_info()
    }

    fn write_info(&self) -> anyhow::Result<()> {
        write_info_file(&self.dir, &self.info())
    }

    /// Drops the databases (if any) on the server `admin_url` reaches when
    /// the devnet is dropped, also after an error: for devnets in scratch
    /// directories.
    pub fn drop_databases_on_exit(&mut self, admin_url: &str) {
        self.drop_databases = Some(admin_url.to_string());
    }

    /// Stops every process (also done on drop).
    pub fn shutdown(&mut self) {
        self.sup.shutdown();
    }
}

impl Supervisor {
    fn add(&self, name: &str, args: Vec<String>) -> anyhow::Result<()> {
        let mut p = Proc {
            name: name.to_string(),
            args,
            env: self.env.clone(),
            log: self.dir.join(format!("logs/{name}.log")),
            child: None,
            restarts: 0,
        };
        spawn(&mut p)?;
        self.procs.lock().unwrap().push(p);
        Ok(())
    }

    /// Restarts any process that exits, with a short pause.
    fn start_monitor(&mut self, network: NetworkConfig) {
        let (procs, stop, ready) = (self.procs.clone(), self.stop.clone(), self.ready.clone());
        let listing = self.listing.clone();
        let dir = self.dir.clone();
        self.monitor = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut procs = procs.lock().unwrap();
                let mut restarted = false;
                for p in procs.iter_mut() {
                    let exited = match p.child.as_mut().map(|c| c.try_wait()) {
                        Some(Ok(Some(status))) => Some(status.to_string()),
                        Some(Err(e)) => Some(e.to_string()),
                        None => Some("not running".into()),
                        Some(Ok(None)) => None,
                    };
                    if let Some(why) = exited {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        eprintln!("devnet: {} exited ({why}); restarting", p.name);
                        p.restarts += 1;
                        restarted = true;
                        if let Err(e) = spawn(p) {
                            eprintln!("devnet: restarting {}: {e:#}", p.name);
                            p.child = None;
                        }
                    }
                }
                if restarted && ready.load(Ordering::SeqCst) {
                    let l = listing.lock().unwrap().clone();
                    if let Err(e) = write_info_file(&dir, &devnet_info(&dir, &network, &procs, &l))
                    {
                        eprintln!("devnet: writing devnet.json: {e:#}");
                    }
                }
                drop(procs);
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        for p in self.procs.lock().unwrap().iter_mut() {
            if let Some(c) = p.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn devnet_info(
    dir: &Path,
    network: &NetworkConfig,
    procs: &[Proc],
    listing: &Listing,
) -> DevnetInfo {
    let ds = dir.join("datasource");
    DevnetInfo {
        network: network.clone(),
        network_file: dir.join("network.json"),
        admin_token_file: dir.join("secrets/admin.token"),
        ground_truth: ds.join(triad_testsite::GROUND_TRUTH_FILE),
        api_keys_file: ds.join(DATASOURCE_INFO_FILE),
        services: procs
            .iter()
            .map(|p| ServiceInfo {
                name: p.name.clone(),
                pid: p.child.as_ref().map(|c| c.id()).unwrap_or(0),
                log: p.log.clone(),
                restarts: p.restarts,
            })
            .collect(),
        directory: listing.directory.clone(),
        directory_ids: listing.ids.clone(),
        databases: listing.databases.clone(),
    }
}

fn write_info_file(dir: &Path, info: &DevnetInfo) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(info)?;
    write_atomic(&dir.join("devnet.json"), text.as_bytes())?;
    Ok(())
}

struct Ports {
    datasource: u16,
    notary: u16,
    proxy: u16,
    coordinator: u16,
    api: u16,
    party: [u16; 3],
    mpc: [u16; 3],
    /// Directory nodes: fresh at every start (not in network.json).
    directory: [u16; 3],
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    let rest = url.rsplit_once(':').map(|x| x.1).unwrap_or("");
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .with_context(|| format!("no port in {url:?}"))
}

impl Ports {
    fn allocate() -> anyhow::Result<Self> {
        let mut p = PortPicker::default();
        Ok(Self {
            datasource: p.pick()?,
            notary: p.pick()?,
            proxy: p.pick()?,
            coordinator: p.pick()?,
            api: p.pick()?,
            party: [p.pick()?, p.pick()?, p.pick()?],
            mpc: [p.pick()?, p.pick()?, p.pick()?],
            directory: [p.pick()?, p.pick()?, p.pick()?],
        })
    }

    fn from_network(n: &NetworkConfig) -> anyhow::Result<Self> {
        let ds = n
            .datasource
            .as_ref()
            .context("network.json has no data source")?;
        let ds_port = {
            let host_port = ds.url.trim_start_matches("https://");
            let hp = host_port.split('/').next().unwrap_or("");
            port_of(hp)?
        };
        // The proxy and directory ports are not in network.json; pick
        // fresh ones.
        let mut p = PortPicker::default();
        Ok(Self {
            directory: [p.pick()?, p.pick()?, p.pick()?],
            datasource: ds_port,
            notary: port_of(&n.notary)?,
            proxy: p.pick()?,
            coordinator: port_of(&n.coordinator)?,
            api: port_of(&n.api)?,
            party: [0, 1, 2].map(|i| port_of(&n.parties[i].url).unwrap_or(0)),
            mpc: [0, 1, 2].map(|i| n.parties[i].mpc_addr.port()),
        })
    }
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `triad devnet`: runs until Ctrl-C.
pub fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut d = Devnet::start(&args).await?;
        print_endpoints(&d);
        until_signalled().await?;
        d.shutdown();
        Ok(())
    })
}

/// Returns on Ctrl-C (SIGINT) or SIGTERM.
pub async fn until_signalled() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// In a devnet service: exit once the devnet's end of stdin closes.
pub fn exit_with_parent() {
    if std::env::var_os(EXIT_WITH_PARENT_ENV).is_none() {
        return;
    }
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

pub fn print_endpoints(d: &Devnet) {
    let n = &d.network;
    println!("devnet ready: {}", d.dir.join("devnet.json").display());
    println!("  consumer API + dashboard  {}/", n.api);
    println!("  coordinator               {}", n.coordinator);
    for (i, p) in n.parties.iter().enumerate() {
        println!("  party {i}                   {}", p.url);
    }
    println!("  notary                    {}", n.notary);
    for (i, node) in d.directory().iter().enumerate() {
        println!("  directory node {i}          {node}");
    }
    if let Some(ds) = &n.datasource {
        println!("  data source               {}", ds.url);
    }
    println!("  CA certificate            {}", n.ca_cert.display());
}
