//! CLI edge of the notary issue: `triad datasource`, `triad notary`,
//! `triad attest`, `triad verify-attestation`, and `triad bench attest`.
//!
//! Thin wrappers (see docs/notary.md) over `triad_notary` (the notary
//! service and the prover), `triad_attestation` (the verifier) and
//! `triad_testsite` (the demo data source): library calls; this file only
//! parses flags and prints.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Subcommand;
use triad_attestation::{verify_attestation, Attestation, NotaryPublicKey};
use triad_notary::service::NotaryOptions;
use triad_wire::https::ServeLimits;

#[derive(Subcommand)]
pub enum NotaryCommand {
    /// Run the demo HTTPS data source (an exchange-like account API).
    Datasource {
        /// Directory for the CA, ground truth and datasource.json.
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on (default 127.0.0.1:0).
        #[arg(long)]
        listen: Option<String>,
        /// Number of deterministic accounts.
        #[arg(long, default_value_t = 1000)]
        accounts: usize,
        /// Seed of the accounts.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the notary: TCP proxy for provers' TLS sessions plus its API.
    Notary {
        /// Directory for the signing key, notary.json and logs.
        #[arg(long)]
        data_dir: PathBuf,
        /// Extra CA certificate (PEM) trusted besides the platform roots.
        #[arg(long)]
        trust_ca: Option<PathBuf>,
        /// API listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Proxy listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        proxy_listen: String,
        /// A `host:port` the proxy may relay provers to (repeatable; none
        /// by default, so nothing is relayed). A listed name must resolve
        /// to public addresses only; a loopback, private or other
        /// special-purpose address needs its exact `address:port` listed.
        /// The notary's own API and proxy are never relayed to.
        #[arg(long = "allow-target", value_name = "HOST:PORT")]
        allow_targets: Vec<triad_notary::AllowedTarget>,
        /// The API's HTTPS certificate chain (PEM); a devnet issues it from
        /// its service CA, like every service's.
        #[arg(long)]
        tls_cert: PathBuf,
        /// The API's HTTPS private key (PEM).
        #[arg(long)]
        tls_key: PathBuf,
        /// Most API connections open at once from one client address.
        #[arg(long, default_value_t = ServeLimits::DEFAULT.max_conns_per_ip)]
        max_conns_per_ip: usize,
        /// Most API connections open at once.
        #[arg(long, default_value_t = ServeLimits::DEFAULT.max_conns)]
        max_conns: usize,
    },
    /// Prove a value served over HTTPS through a notary.
    Attest {
        /// The notary's API URL (`https://host:port`).
        #[arg(long)]
        notary: String,
        /// The CA (PEM) that issued the notary API's certificate (a
        /// devnet's `tls/ca.pem`).
        #[arg(long)]
        notary_ca: PathBuf,
        /// The https URL to fetch.
        #[arg(long)]
        url: String,
        /// Request header `Name: value` (repeatable); never shown to the notary.
        #[arg(long)]
        header: Vec<String>,
        /// Study id.
        #[arg(long)]
        study: String,
        /// Dot-separated JSON path of the value, e.g. `balances.ETH`.
        #[arg(long)]
        field: String,
        /// Fixed-point scale (decimal places).
        #[arg(long)]
        scale: u32,
        /// JSON path of the account id (nullifier input).
        #[arg(long, default_value = "uid")]
        account_field: String,
        /// Extra CA certificate (PEM) to trust for the site.
        #[arg(long)]
        trust_ca: Option<PathBuf>,
        /// Output directory for attestation.json and opening.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an attestation file; exit 0 and print its fields when valid.
    VerifyAttestation {
        /// attestation.json
        file: PathBuf,
        /// Trusted notary public key (hex, repeatable).
        #[arg(long)]
        notary_key: Vec<String>,
        /// A notary.json whose `public_key` to trust (repeatable).
        #[arg(long)]
        notary_info: Vec<PathBuf>,
    },
}

pub fn run(cmd: NotaryCommand) -> anyhow::Result<()> {
    match cmd {
        NotaryCommand::VerifyAttestation {
            file,
            notary_key,
            notary_info,
        } => verify_file(&file, &notary_key, &notary_info),
        NotaryCommand::Datasource {
            data_dir,
            listen,
            accounts,
            seed,
        } => datasource(data_dir, listen, accounts, seed),
        NotaryCommand::Notary {
            data_dir,
            trust_ca,
            listen,
            proxy_listen,
            allow_targets,
            tls_cert,
            tls_key,
            max_conns_per_ip,
            max_conns,
        } => notary(NotaryOptions {
            data_dir: &data_dir,
            trust_ca: trust_ca.as_deref(),
            api_listen: &listen,
            proxy_listen: &proxy_listen,
            allowed_targets: allow_targets,
            tls_cert: &tls_cert,
            tls_key: &tls_key,
            serve: ServeLimits {
                max_conns_per_ip,
                max_conns,
                ..ServeLimits::DEFAULT
            },
        }),
        NotaryCommand::Attest {
            notary,
            notary_ca,
            url,
            header,
            study,
            field,
            scale,
            account_field,
            trust_ca,
            out,
        } => {
            let spec = triad_attestation::DataSpec {
                field,
                scale,
                account_field,
            };
            let notary = (notary.as_str(), notary_ca.as_path());
            attest(notary, &url, &header, &study, spec, trust_ca, &out)
        }
    }
}

/// `triad bench attest --n N [--json]`: n full attestations over loopback
/// (demo data source, notary service with its recording proxy and HTTP API,
/// TLS 1.2 prover, notary check + signature, verification).
pub fn bench_attest(n: usize, json: bool) -> anyhow::Result<()> {
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let r = crate::bench_attest::run_attest_bench(n)
        .map_err(|e| anyhow::anyhow!("bench setup: {e}"))?;
    let median = r.median().as_secs_f64();
    let mut sorted = r.times.clone();
    sorted.sort();
    let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)].as_secs_f64();
    println!(
        "attest: n={n} request={} B response={} B median={:.2} ms p90={:.2} ms correct={}",
        r.request_bytes,
        r.response_bytes,
        median * 1e3,
        p90 * 1e3,
        r.correct
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "attest", "n": n, "seconds": median, "correct": r.correct})
        );
    }
    if !r.correct {
        bail!("some attestations did not verify");
    }
    Ok(())
}

fn datasource(
    data_dir: PathBuf,
    listen: Option<String>,
    accounts: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let addr = listen.unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener =
        std::net::TcpListener::bind(&addr).with_context(|| format!("listening on {addr}"))?;
    let cfg = triad_testsite::DatasourceConfig {
        data_dir: data_dir.clone(),
        accounts,
        seed,
        padding_assets: 0,
    };
    let ds = triad_testsite::launch_datasource(listener, cfg)
        .map_err(|e| anyhow::anyhow!("starting the data source: {e}"))?;
    println!(
        "datasource: {} ({accounts} accounts, seed {seed}); wrote {}",
        ds.info.url,
        data_dir
            .join(triad_testsite::DATASOURCE_INFO_FILE)
            .display()
    );
    ds.wait();
    Ok(())
}

fn notary(opts: NotaryOptions<'_>) -> anyhow::Result<()> {
    if opts.allowed_targets.is_empty() {
        eprintln!("notary: no --allow-target given: the proxy relays to nothing");
    }
    let allowed = opts
        .allowed_targets
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let data_dir = opts.data_dir.to_path_buf();
    triad_notary::service::run_notary_blocking(opts, |info| {
        println!(
            "notary: API {} proxy {} (relays to: {allowed}) key {}; wrote {}",
            info.url.as_deref().unwrap_or("?"),
            info.proxy,
            info.public_key,
            data_dir
                .join(triad_notary::service::NOTARY_INFO_FILE)
                .display()
        );
    })
    .map_err(|e| anyhow::anyhow!("notary: {e}"))
}

fn attest(
    (notary_url, notary_ca): (&str, &std::path::Path),
    url: &str,
    headers: &[String],
    study: &str,
    spec: triad_attestation::DataSpec,
    trust_ca: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let headers = headers
        .iter()
        .map(|h| triad_notary::parse_header(h))
        .collect::<Result<Vec<_>, _>>()
        .context("--header")?;
    let target = triad_notary::ProveTarget::from_url(url, headers).context("--url")?;
    let ca = match &trust_ca {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let notary_ca =
        std::fs::read(notary_ca).with_context(|| format!("reading {}", notary_ca.display()))?;
    let notary = triad_notary::NotaryClient::new(notary_url, &notary_ca)
        .map_err(|e| anyhow::anyhow!("--notary: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (att, opening, key) = rt
        .block_on(triad_notary::prove_with_notary(
            &notary,
            &target,
            ca.as_deref(),
            study,
            &spec,
        ))
        .context("attestation failed")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    verify_attestation(&att, &[key], now).context("the notary's attestation does not verify")?;
    triad_notary::service::write_attestation_files(out, &att, &opening)
        .map_err(|e| anyhow::anyhow!("writing the result: {e}"))?;
    println!(
        "attested {} = {} (scale {}) for study {study}; wrote {} and {}",
        spec.field,
        opening.value,
        spec.scale,
        out.join("attestation.json").display(),
        out.join("opening.json").display()
    );
    Ok(())
}

fn verify_file(file: &PathBuf, keys_hex: &[String], infos: &[PathBuf]) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for k in keys_hex {
        keys.push(NotaryPublicKey::from_hex(k).with_context(|| format!("--notary-key {k:?}"))?);
    }
    for p in infos {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        let hex = v
            .get("public_key")
            .and_then(|x| x.as_str())
            .with_context(|| format!("{} has no string `public_key`", p.display()))?;
        keys.push(NotaryPublicKey::from_hex(hex).with_context(|| p.display().to_string())?);
    }
    if keys.is_empty() {
        bail!("no trusted notary key: pass --notary-key <hex> or --notary-info <notary.json>");
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let att = Attestation::from_json(&text)
        .with_context(|| format!("{} is not an attestation", file.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let v = verify_attestation(&att, &keys, now)
        .with_context(|| format!("attestation {} is invalid", file.display()))?;
    let c = &v.claims;
    println!("valid attestation");
    println!("  notary key   {}", v.notary_key.to_hex());
    println!("  server       {}", c.server_name);
    println!("  cert chain   {}", att.cert_chain_sha256);
    println!("  session time {}", c.session_time);
    println!("  expires at   {}", c.expires_at);
    println!("  study        {}", c.study_id);
    println!(
        "  data spec    field={} scale={} account_field={}",
        c.data_spec.field, c.data_spec.scale, c.data_spec.account_field
    );
    println!("  commitment   {}", att.commitment);
    println!("  nullifier    {}", att.nullifier);
    println!("  transcript   {}", att.transcript_sha256);
    Ok(())
}
