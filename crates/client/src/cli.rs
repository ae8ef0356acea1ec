//! Argument structs and blocking entry points of `triad share`,
//! `triad query` and `triad study create`.

use std::path::PathBuf;
use std::time::Duration;

use triad_attestation::{DataSource, DataSpec};
use triad_stats::StatsSpec;
use triad_wire::messages::{CreateStudy, StudyInfo};
use triad_wire::{ErrorCode, NetworkConfig, VerifiedRelease};

use crate::contribute::{contribute, ContributeOptions, Outcome};
use crate::{base, create_study, get_json, latest_release, load_network, ClientError};

/// Per-request timeout of the CLI's HTTPS client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the network description is.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NetworkArgs {
    /// A devnet directory (its network.json is used).
    #[arg(long, conflicts_with = "network")]
    pub devnet: Option<PathBuf>,
    /// A network description file (network.json).
    #[arg(long)]
    pub network: Option<PathBuf>,
}

impl NetworkArgs {
    pub fn load(&self) -> Result<NetworkConfig, ClientError> {
        load_network(self.devnet.as_deref(), self.network.as_deref())
    }
}

/// The environment variable `triad share` reads the API key from.
pub const API_KEY_ENV: &str = "TRIAD_API_KEY";

/// `triad share`. `Debug` redacts the API key.
#[derive(Clone, clap::Args)]
#[command(
    after_help = "The data source API key comes from exactly one of --api-key-file, \
the TRIAD_API_KEY environment variable, or --api-key. Prefer the file or the variable: \
a key on the command line is visible to other users of the machine (ps, /proc) and \
stays in the shell history."
)]
pub struct ShareArgs {
    /// Study id (as the services name it), with --devnet or --network.
    #[arg(long, required_unless_present = "study_id")]
    pub study: Option<String>,
    /// The study's directory id (64 hex): the coordinator, the parties and
    /// the notary are found in the directory (--directory, or --devnet's
    /// nodes) instead of a network description.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["study", "network"])]
    pub study_id: Option<String>,
    #[command(flatten)]
    pub dir: crate::discover::DirectoryArgs,
    /// A file holding the data source API key (recommended; surrounding
    /// whitespace is ignored). The key is sent as X-API-KEY inside TLS and
    /// never disclosed to the notary.
    #[arg(long, value_name = "PATH", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// The data source API key itself. Discouraged: other users see it in
    /// `ps`; use --api-key-file or the TRIAD_API_KEY environment variable.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    /// How long to wait for the verdict of each attempt.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Attempts in all (retryable rejections start over with a fresh
    /// attestation).
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Print one JSON line instead of a summary.
    #[arg(long)]
    pub json: bool,
}

impl std::fmt::Debug for ShareArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareArgs")
            .field("study", &self.study)
            .field("study_id", &self.study_id)
            .field("dir", &self.dir)
            .field("api_key_file", &self.api_key_file)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("net", &self.net)
            .field("timeout_secs", &self.timeout_secs)
            .field("attempts", &self.attempts)
            .field("json", &self.json)
            .finish()
    }
}

impl ShareArgs {
    /// The API key from its one source: `--api-key-file`, the
    /// `TRIAD_API_KEY` variable (its value is `env`; empty counts as
    /// unset) or `--api-key`. Errors never show the key.
    pub fn api_key(&self, env: Option<String>) -> Result<String, ClientError> {
        api_key_from(self.api_key_file.as_ref(), self.api_key.as_ref(), env)
    }
}

/// The API key from its one source (see [`ShareArgs::api_key`]).
pub(crate) fn api_key_from(
    file: Option<&PathBuf>,
    arg: Option<&String>,
    env: Option<String>,
) -> Result<String, ClientError> {
    {
        let env = env.filter(|v| !v.is_empty());
        let given: Vec<&str> = [
            file.map(|_| "--api-key-file"),
            env.as_ref().map(|_| API_KEY_ENV),
            arg.map(|_| "--api-key"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            return Err(ClientError::Usage(format!(
                "the API key is given more than once ({}): give exactly one source",
                given.join(", ")
            )));
        }
        let (key, from) = match (file, env, arg) {
            (Some(path), _, _) => {
                let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
                    what: format!("API key file {}", path.display()),
                    source,
                })?;
                (text.trim().to_string(), path.display().to_string())
            }
            (None, Some(v), _) => (v.trim().to_string(), API_KEY_ENV.to_string()),
            (None, None, Some(k)) => (k.trim().to_string(), "--api-key".to_string()),
            (None, None, None) => {
                return Err(ClientError::Usage(format!(
                    "no data source API key: give --api-key-file <path> (recommended), \
                     set {API_KEY_ENV}, or give --api-key"
                )))
            }
        };
        if key.is_empty() {
            return Err(ClientError::Usage(format!(
                "the API key in {from} is empty"
            )));
        }
        if key.chars().any(char::is_control) {
            return Err(ClientError::Usage(format!(
                "the API key in {from} must be one line without control characters"
            )));
        }
        Ok(key)
    }
}

/// `triad query`.
#[derive(Clone, Debug, clap::Args)]
pub struct QueryArgs {
    /// Study id.
    #[arg(long)]
    pub study: String,
    #[command(flatten)]
    pub net: NetworkArgs,
    /// Print the verified release as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// `triad study create`.
#[derive(Clone, Debug, clap::Args)]
pub struct StudyCreateArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    /// File holding the operator token (default: <devnet>/secrets/admin.token).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Study id: 1-64 characters of [a-z0-9-].
    #[arg(long)]
    pub id: String,
    /// Human-readable name.
    #[arg(long)]
    pub name: String,
    /// JSON path of the value in the data source's response, e.g. balances.ETH.
    #[arg(long)]
    pub field: String,
    /// Fixed-point scale (decimal digits kept).
    #[arg(long)]
    pub scale: u32,
    /// JSON path of the account id (sybil nullifier input).
    #[arg(long, default_value = "uid")]
    pub account_field: String,
    /// No release before this many contributions.
    #[arg(long)]
    pub min_cohort: Option<u64>,
    /// No new release before this many new contributions.
    #[arg(long)]
    pub min_new: Option<u64>,
    #[arg(long)]
    pub release_interval_secs: Option<u64>,
    /// A quantile in (0, 1] to release (repeatable).
    #[arg(long = "quantile")]
    pub quantiles: Vec<f64>,
    /// A histogram bucket bound in fixed-point units (repeatable, increasing).
    #[arg(long = "histogram-bound", allow_negative_numbers = true)]
    pub histogram_bounds: Vec<i64>,
    /// The data source's server name (as in its certificate): attestations
    /// from any other server are refused. Default: the network
    /// description's data source (a devnet's own), with its certificate pin.
    #[arg(long)]
    pub source_host: Option<String>,
    /// Pin the source's certificate chain (SHA-256, 64 hex, as in the
    /// attestations' cert_chain_sha256); only with --source-host.
    #[arg(long, requires = "source_host")]
    pub source_cert_sha256: Option<String>,
    /// Print the created study as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The operator token from `--admin-token-file`, or a devnet's
/// `secrets/admin.token`.
pub(crate) fn admin_token(
    file: Option<&std::path::Path>,
    devnet: Option<&std::path::Path>,
) -> Result<String, ClientError> {
    let token_path = match (file, devnet) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(d)) => d.join("secrets").join("admin.token"),
        (None, None) => {
            return Err(ClientError::Usage(
                "give --admin-token-file (or --devnet <dir> to use <dir>/secrets/admin.token)"
                    .into(),
            ))
        }
    };
    let token = std::fs::read_to_string(&token_path).map_err(|source| ClientError::Io {
        what: format!("admin token {}", token_path.display()),
        source,
    })?;
    Ok(token.trim().to_string())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClientError::Io {
            what: "tokio runtime".into(),
            source,
        })
}

pub(crate) fn http(net: &NetworkConfig) -> Result<reqwest::Client, ClientError> {
    Ok(triad_wire::https::client(&net.ca_pem()?, REQUEST_TIMEOUT)?)
}

/// A fixed-point integer in decimal (exact).
pub(crate) fn fixed(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let p = 10u128.pow(scale.min(38));
    let a = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", a / p, a % p, width = scale as usize)
}

/// A derived float in the study's units.
fn scaled(x: f64, scale: u32) -> String {
    format!("{:.*}", scale as usize + 2, x / 10f64.powi(scale as i32))
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string(v).expect("serializes"));
}

/// `triad share`. Prints the outcome; a rejection is an error (after
/// printing), so the exit status says whether the value was accepted.
pub fn run_share(args: ShareArgs) -> Result<(), ClientError> {
    let api_key = args.api_key(std::env::var(API_KEY_ENV).ok())?;
    let rt = runtime()?;
    let (net, study) = match &args.study_id {
        Some(hex) => {
            let (record, net) = crate::discover::discover_by_id(
                &rt,
                hex,
                &args.dir,
                args.net.devnet.as_deref(),
                triad_directory::record::Kind::Study,
            )?;
            if !args.json {
                println!(
                    "found study {:?} in the directory: coordinator {}, parties {}, {}, {}",
                    record.body.name,
                    net.coordinator,
                    net.parties[0].url,
                    net.parties[1].url,
                    net.parties[2].url
                );
            }
            (net, record.body.name)
        }
        None => (
            args.net.load()?,
            args.study
                .clone()
                .ok_or_else(|| ClientError::Usage("give --study or --study-id".into()))?,
        ),
    };
    let http = http(&net)?;
    let opts = ContributeOptions {
        timeout: Duration::from_secs(args.timeout_secs),
        attempts: args.attempts.max(1),
        ..ContributeOptions::default()
    };
    let out: Outcome = rt.block_on(contribute(&net, &http, &study, &api_key, &opts))?;
    if args.json {
        print_json(&out);
    } else {
        let value = fixed(out.value as i128, out.scale);
        let tries = if out.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", out.attempts)
        };
        if out.accepted {
            println!(
                "contribution to study {} accepted: value {value} (submission {}, {tries}); \
                 it will count from the next release",
                out.study_id, out.submission_id
            );
        } else {
            let why = out
                .reason
                .map_or_else(|| "no reason given".to_string(), |r| r.to_string());
            println!(
                "contribution to study {} rejected: {why} (submission {}, {tries})",
                out.study_id, out.submission_id
            );
        }
    }
    if out.accepted {
        Ok(())
    } else {
        Err(ClientError::Rejected {
            submission_id: out.submission_id,
            reason: out
                .reason
                .map_or_else(|| "no reason given".into(), |r| r.to_string()),
        })
    }
}

/// The study's scale as the consumer API states it (display only).
async fn study_scale(net: &NetworkConfig, http: &reqwest::Client, id: &str) -> Option<u32> {
    let list: Vec<serde_json::Value> = get_json(http, &format!("{}/v1/studies", base(&net.api)))
        .await
        .ok()?;
    let s = list.iter().find(|s| s["id"] == id)?;
    s["data_spec"]["scale"].as_u64().map(|x| x as u32)
}

/// A human summary of a verified release.
pub fn describe_release(v: &VerifiedRelease, scale: Option<u32>) -> String {
    let r = &v.release;
    let s = &r.results;
    let sc = scale.unwrap_or(0);
    let unit = match scale {
        Some(sc) => format!("values at scale 10^-{sc}"),
        None => "values in the study's fixed-point units".into(),
    };
    let mut out = format!(
        "study {} — release #{} (created at unix {}), signed by all three parties and verified locally\n",
        r.study_id, r.release_no, r.created_at
    );
    out.push_str(&format!("  ({unit})\n"));
    out.push_str(&format!("  count   {}\n", r.count));
    out.push_str(&format!("  mean    {}\n", scaled(s.derived.mean, sc)));
    out.push_str(&format!("  stddev  {}\n", scaled(s.derived.stddev, sc)));
    out.push_str(&format!("  min     {}\n", fixed(s.min as i128, sc)));
    out.push_str(&format!("  max     {}\n", fixed(s.max as i128, sc)));
    out.push_str(&format!("  median  {}\n", scaled(s.derived.median, sc)));
    for (q, x) in &s.quantiles {
        out.push_str(&format!("  q{q:<6} {}\n", fixed(*x as i128, sc)));
    }
    match s.derived.gini {
        Some(g) => out.push_str(&format!("  gini    {g:.4}\n")),
        None => out.push_str("  gini    undefined (sum is 0)\n"),
    }
    if !s.histogram.is_empty() {
        out.push_str(&format!("  histogram {:?}\n", s.histogram));
    }
    out
}

/// `triad query`.
pub fn run_query(args: QueryArgs) -> Result<(), ClientError> {
    let net = args.net.load()?;
    let http = http(&net)?;
    runtime()?.block_on(async {
        let v = match latest_release(&net, &http, &args.study).await {
            Ok(v) => v,
            // No release yet, or one the API has not fetched: the
            // coordinator says whether the study exists and how far it is.
            Err(ClientError::Query { study, source })
                if matches!(source.code, ErrorCode::NoRelease | ErrorCode::UnknownStudy) =>
            {
                let url = format!("{}/v1/studies/{study}", base(&net.coordinator));
                return Err(match get_json::<StudyInfo>(&http, &url).await {
                    Ok(info) => ClientError::NoReleaseYet {
                        study,
                        progress: info
                            .progress
                            .map(|p| p.describe())
                            .unwrap_or_else(|| format!("{} contributions", info.contributions)),
                    },
                    Err(e) if e.code == ErrorCode::UnknownStudy => ClientError::UnknownStudy(study),
                    Err(_) => ClientError::Query { study, source },
                });
            }
            Err(e) => return Err(e),
        };
        if args.json {
            print_json(&v);
        } else {
            let scale = study_scale(&net, &http, &args.study).await;
            print!("{}", describe_release(&v, scale));
        }
        Ok(())
    })
}

/// `triad study create`.
pub fn run_study_create(args: StudyCreateArgs) -> Result<(), ClientError> {
    let net = args.net.load()?;
    let token = admin_token(args.admin_token_file.as_deref(), args.net.devnet.as_deref())?;
    let stats = StatsSpec {
        quantiles: args.quantiles.clone(),
        histogram_bounds: args.histogram_bounds.clone(),
    };
    stats
        .validate()
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let source = match &args.source_host {
        Some(host) => DataSource {
            server_name: host.clone(),
            cert_chain_sha256: args.source_cert_sha256.clone(),
        },
        None => net
            .datasource
            .as_ref()
            .and_then(|d| d.source.clone())
            .ok_or_else(|| {
                ClientError::Usage(
                    "give --source-host: the network description names no data source".into(),
                )
            })?,
    };
    source
        .validate()
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let req = CreateStudy {
        source,
        id: args.id.clone(),
        name: args.name.clone(),
        data_spec: DataSpec {
            field: args.field.clone(),
            scale: args.scale,
            account_field: args.account_field.clone(),
        },
        min_cohort: args.min_cohort,
        min_new: args.min_new,
        release_interval_secs: args.release_interval_secs,
        stats,
    };
    let http = http(&net)?;
    let info = runtime()?.block_on(create_study(&net, &http, &token, &req))?;
    if args.json {
        print_json(&info);
    } else {
        let p = &info.params;
        println!(
            "created study {} ({:?}): field {} at scale {}, min cohort {}, min new {}, \
             release every {} s",
            p.id,
            p.name,
            p.data_spec.field,
            p.data_spec.scale,
            p.min_cohort,
            p.min_new,
            p.release_interval_secs
        );
        if let Some(id) = &info.directory_id {
            println!(
                "directory id {id}: providers find the study with `triad share --study-id {id} \
                 --directory <node>`"
            );
        }
    }
    Ok(())
}
