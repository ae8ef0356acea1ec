//! CLI edge of the notary issue: `triad datasource`, `triad notary`,
//! `triad attest`, `triad verify-attestation`, and `triad bench attest`.
//!
//! Thin wrappers over `triad_notary` (see docs/notary.md): the services and
//! the prover are library calls; this file only parses flags and prints.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Subcommand;
use triad_notary::{verify_attestation, Attestation, NotaryPublicKey};

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
    },
    /// Prove a value served over HTTPS through a notary.
    Attest {
        /// The notary's API URL.
        #[arg(long)]
        notary: String,
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
        } => notary(data_dir, trust_ca, &listen, &proxy_listen, allow_targets),
        NotaryCommand::Attest {
            notary,
            url,
            header,
            study,
            field,
            scale,
            account_field,
            trust_ca,
            out,
        } => {
            let spec = triad_notary::DataSpec {
                field,
                scale,
                account_field,
            };
            attest(&notary, &url, &header, &study, spec, trust_ca, &out)
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
    let r = triad_notary::run_attest_bench(n).map_err(|e| anyhow::anyhow!("bench setup: {e}"))?;
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
    let cfg = triad_notary::datasource::DatasourceConfig {
        data_dir: data_dir.clone(),
        accounts,
        seed,
        padding_assets: 0,
    };
    let ds = triad_notary::datasource::launch_datasource(listener, cfg)
        .map_err(|e| anyhow::anyhow!("starting the data source: {e}"))?;
    println!(
        "datasource: {} ({accounts} accounts, seed {seed}); wrote {}",
        ds.info.url,
        data_dir
            .join(triad_notary::datasource::DATASOURCE_INFO_FILE)
            .display()
    );
    ds.wait();
    Ok(())
}

fn notary(
    data_dir: PathBuf,
    trust_ca: Option<PathBuf>,
    listen: &str,
    proxy_listen: &str,
    allow_targets: Vec<triad_notary::AllowedTarget>,
) -> anyhow::Result<()> {
    if allow_targets.is_empty() {
        eprintln!("notary: no --allow-target given: the proxy relays to nothing");
    }
    let allowed = allow_targets
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    triad_notary::service::run_notary_blocking(
        &data_dir,
        trust_ca.as_deref(),
        listen,
        proxy_listen,
        allow_targets,
        |info| {
            println!(
                "notary: API {} proxy {} (relays to: {allowed}) key {}; wrote {}",
                info.url.as_deref().unwrap_or("?"),
                info.proxy,
                info.public_key,
                data_dir
                    .join(triad_notary::service::NOTARY_INFO_FILE)
                    .display()
            );
        },
    )
    .map_err(|e| anyhow::anyhow!("notary: {e}"))
}

fn attest(
    notary_url: &str,
    url: &str,
    headers: &[String],
    study: &str,
    spec: triad_notary::DataSpec,
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
    let (att, opening, key) =
        triad_notary::service::prove_with_notary(notary_url, &target, ca.as_deref(), study, &spec)
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
