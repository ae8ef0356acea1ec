//! `triad poll create | signup | tally` and `triad vote`: argument structs
//! and blocking entry points over [`crate::poll`].

use std::path::{Path, PathBuf};

use triad_attestation::{DataSource, DataSpec};
use triad_maci::{PrivKey, PubKey};
use triad_wire::poll::{PollMode, PollSpec};

use crate::cli::{admin_token, api_key_from, http, print_json, runtime, NetworkArgs, API_KEY_ENV};
use crate::contribute::ContributeOptions;
use crate::poll::{self, Vote};
use crate::ClientError;

/// `triad poll create`.
#[derive(Clone, Debug, clap::Args)]
pub struct PollCreateArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    /// File holding the operator token (default: <devnet>/secrets/admin.token).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// MACI poll id (below 2^50).
    #[arg(long)]
    pub id: u64,
    #[arg(long)]
    pub name: String,
    /// Number of vote options.
    #[arg(long)]
    pub options: u64,
    /// Quadratic (weight w costs w²) or linear (w costs w).
    #[arg(long, value_enum, default_value = "quadratic")]
    pub mode: ModeArg,
    /// Sign-ups close this many seconds from now.
    #[arg(long)]
    pub signup_secs: u64,
    /// Voting closes this many seconds from now (at or after sign-ups).
    #[arg(long)]
    pub voting_secs: u64,
    /// Voice credits of every voter.
    #[arg(long, default_value_t = 100)]
    pub credits: u64,
    /// K: a state index's K most recent well-formed messages can count.
    #[arg(long, default_value_t = triad_polls::DEFAULT_WINDOW)]
    pub window: u64,
    /// JSON path of the attested value (sign-up proves an account holds one).
    #[arg(long, default_value = "balances.ETH")]
    pub field: String,
    #[arg(long, default_value_t = 4)]
    pub scale: u32,
    /// JSON path of the account id (one sign-up per account).
    #[arg(long, default_value = "uid")]
    pub account_field: String,
    /// The data source's server name; default: the network's data source.
    #[arg(long)]
    pub source_host: Option<String>,
    /// Length of a re-keying epoch in seconds (epochs start at the sign-up
    /// deadline).
    #[arg(long, default_value_t = triad_wire::poll::DEFAULT_REKEY_EPOCH_SECS)]
    pub rekey_epoch_secs: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModeArg {
    Quadratic,
    Linear,
}

/// `triad poll signup`. `Debug` redacts the API key.
#[derive(Clone, clap::Args)]
pub struct PollSignupArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[arg(long)]
    pub poll: u64,
    /// A file holding your MACI private key (`macisk.…`; the output of
    /// `triad keygen` works). Only its public key is sent.
    #[arg(long)]
    pub key_file: PathBuf,
    /// A file holding the data source API key (or set TRIAD_API_KEY).
    #[arg(long, conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// The API key itself (discouraged: visible in `ps`).
    #[arg(long)]
    pub api_key: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl std::fmt::Debug for PollSignupArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollSignupArgs")
            .field("poll", &self.poll)
            .field("key_file", &self.key_file)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `triad vote`: one signed command, sent as three share sets.
#[derive(Clone, Debug, clap::Args)]
pub struct VoteArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    /// The poll's MACI id, with --devnet or --network.
    #[arg(long, required_unless_present = "poll_id")]
    pub poll: Option<u64>,
    /// The poll's directory id (64 hex): the coordinator and the parties
    /// are found in the directory (--directory, or --devnet's nodes)
    /// instead of a network description.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["poll", "network"])]
    pub poll_id: Option<String>,
    #[command(flatten)]
    pub dir: crate::discover::DirectoryArgs,
    /// A file holding the MACI private key that signs (your current key).
    #[arg(long)]
    pub key_file: PathBuf,
    /// Your state index (printed by `triad poll signup`).
    #[arg(long)]
    pub state_index: u64,
    #[arg(long)]
    pub option: u64,
    #[arg(long)]
    pub weight: u64,
    /// 1 for the message processed first, i.e. your last one (MACI
    /// processes messages from the last to the first).
    #[arg(long, default_value_t = 1)]
    pub nonce: u64,
    /// Change your key to this public key (`macipk.…`) with this message.
    #[arg(long)]
    pub new_key: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `triad poll deactivate`: stop your current key from counting, keeping
/// a secret with which `triad poll rekey` adds a fresh key anonymously.
#[derive(Clone, Debug, clap::Args)]
pub struct PollDeactivateArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[arg(long)]
    pub poll: u64,
    /// A file holding the key registered for your state index (the sign-up
    /// key, or the key a re-key added).
    #[arg(long)]
    pub key_file: PathBuf,
    #[arg(long)]
    pub state_index: u64,
    /// Where to store the secret (created, mode 0600; never overwritten).
    /// `triad poll rekey` reads it.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Also print the secret (it is then in your terminal's scrollback).
    #[arg(long)]
    pub print_secret: bool,
    #[arg(long)]
    pub json: bool,
}

/// `triad poll rekey`: add a fresh key with a deactivation's secret.
#[derive(Clone, Debug, clap::Args)]
pub struct PollRekeyArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[arg(long)]
    pub poll: u64,
    /// The file `triad poll deactivate` stored the secret in.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// A file holding the new MACI private key (`triad keygen > new.key`).
    #[arg(long)]
    pub new_key_file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// `triad poll tally`.
#[derive(Clone, Debug, clap::Args)]
pub struct PollTallyArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[arg(long)]
    pub poll: u64,
    #[arg(long)]
    pub json: bool,
}

/// A `macisk.` key from a file (the first word of that form in it), so
/// `triad keygen > key` and `triad keygen --json > key` both work. Errors
/// never repeat the file's content.
pub fn read_private_key(path: &Path) -> Result<PrivKey, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        what: format!("key file {}", path.display()),
        source,
    })?;
    let word = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .find(|w| w.starts_with("macisk."))
        .ok_or_else(|| ClientError::Usage(format!("{} holds no macisk. key", path.display())))?;
    word.parse()
        .map_err(|_| ClientError::Usage(format!("{}: invalid MACI private key", path.display())))
}

pub fn run_poll_create(args: PollCreateArgs) -> Result<(), ClientError> {
    let net = args.net.load()?;
    let token = admin_token(args.admin_token_file.as_deref(), args.net.devnet.as_deref())?;
    let source = match &args.source_host {
        Some(h) => DataSource::named(h.clone()),
        None => net
            .datasource
            .as_ref()
            .and_then(|d| d.source.clone())
            .ok_or_else(|| {
                ClientError::Usage("give --source-host: the network names no data source".into())
            })?,
    };
    let now = triad_wire::unix_now();
    let spec = PollSpec {
        id: args.id,
        name: args.name.clone(),
        vote_options: args.options,
        mode: match args.mode {
            ModeArg::Quadratic => PollMode::Quadratic,
            ModeArg::Linear => PollMode::Linear,
        },
        signup_deadline: now.saturating_add(args.signup_secs),
        voting_deadline: now.saturating_add(args.voting_secs),
        window: args.window,
        voice_credits: args.credits,
        data_spec: DataSpec {
            field: args.field.clone(),
            scale: args.scale,
            account_field: args.account_field.clone(),
        },
        source,
        rekey_epoch_secs: args.rekey_epoch_secs,
    };
    spec.params()
        .map_err(|e| ClientError::Usage(format!("poll parameters: {e}")))?;
    let http = http(&net)?;
    let info = runtime()?.block_on(poll::create_poll(&net, &http, &token, &spec))?;
    if args.json {
        print_json(&info);
    } else {
        println!(
            "created poll {} ({:?}): {} options, {:?}, {} credits, sign-ups until {}, voting until {}",
            info.spec.id,
            info.spec.name,
            info.spec.vote_options,
            info.spec.mode,
            info.spec.voice_credits,
            info.spec.signup_deadline,
            info.spec.voting_deadline
        );
        if let Some(id) = &info.directory_id {
            println!(
                "directory id {id}: voters find the poll with `triad vote --poll-id {id} \
                 --directory <node>`"
            );
        }
    }
    Ok(())
}

pub fn run_poll_signup(args: PollSignupArgs) -> Result<(), ClientError> {
    let api_key = api_key_from(
        args.api_key_file.as_ref(),
        args.api_key.as_ref(),
        std::env::var(API_KEY_ENV).ok(),
    )?;
    let key = read_private_key(&args.key_file)?;
    let net = args.net.load()?;
    let http = http(&net)?;
    let s = runtime()?.block_on(poll::signup(
        &net,
        &http,
        args.poll,
        &api_key,
        &key.public_key(),
        &ContributeOptions::default(),
    ))?;
    if args.json {
        print_json(&s);
    } else {
        println!(
            "signed up to poll {}: state index {}, {} voice credits",
            s.poll_id, s.state_index, s.voice_credits
        );
    }
    Ok(())
}

pub fn run_vote(args: VoteArgs) -> Result<(), ClientError> {
    let key = read_private_key(&args.key_file)?;
    let new_key: Option<PubKey> = args
        .new_key
        .as_deref()
        .map(|k| {
            k.parse()
                .map_err(|e| ClientError::Usage(format!("--new-key: {e}")))
        })
        .transpose()?;
    let rt = runtime()?;
    let (net, poll_id) = match &args.poll_id {
        Some(hex) => {
            let (record, net) = crate::discover::discover_by_id(
                &rt,
                hex,
                &args.dir,
                args.net.devnet.as_deref(),
                triad_directory::record::Kind::Poll,
            )?;
            let poll: u64 = record.body.name.parse().map_err(|_| {
                ClientError::Directory(format!(
                    "the record names poll {:?}, not a MACI poll id",
                    record.body.name
                ))
            })?;
            if !args.json {
                println!(
                    "found poll {poll} in the directory: coordinator {}",
                    net.coordinator
                );
            }
            (net, poll)
        }
        None => (
            args.net.load()?,
            args.poll
                .ok_or_else(|| ClientError::Usage("give --poll or --poll-id".into()))?,
        ),
    };
    let http = http(&net)?;
    let vote = Vote {
        option: args.option,
        weight: args.weight,
        nonce: args.nonce,
        new_key,
    };
    let entry = rt.block_on(poll::send_vote(
        &net,
        &http,
        poll_id,
        args.state_index,
        &key,
        &vote,
    ))?;
    // The receipt says the message is logged, never whether it counts.
    if args.json {
        print_json(&entry);
    } else {
        println!(
            "logged at position {} of poll {} (submission {}); whether it counts is known to nobody \
             until the tally",
            entry.position, poll_id, entry.submission_id
        );
    }
    Ok(())
}

/// What `triad poll deactivate` stores: the poll and the secret `s`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SecretFile {
    poll: u64,
    /// 64 hex.
    secret: String,
}

pub fn run_poll_deactivate(args: PollDeactivateArgs) -> Result<(), ClientError> {
    let key = read_private_key(&args.key_file)?;
    if args.secret_file.exists() {
        return Err(ClientError::Usage(format!(
            "{} exists: give a new file for the secret",
            args.secret_file.display()
        )));
    }
    let net = args.net.load()?;
    let http = http(&net)?;
    let secret = crate::random_fr(&mut rand::rngs::OsRng);
    let hex = triad_crypto::fr_to_hex(&secret);
    // Stored before anything is sent: a deactivation whose secret is lost
    // can never be followed by a re-key.
    let json = serde_json::to_vec(&SecretFile {
        poll: args.poll,
        secret: hex.clone(),
    })
    .expect("serializes");
    triad_files::write_private(&args.secret_file, &json).map_err(|source| ClientError::Io {
        what: format!("secret file {}", args.secret_file.display()),
        source,
    })?;
    let message = poll::deactivation_message(args.poll, args.state_index, &key, &secret)?;
    let entry = runtime()?.block_on(poll::send_deactivation(&net, &http, args.poll, &message))?;
    if args.json {
        let mut v = serde_json::to_value(&entry).expect("serializes");
        v["secret_file"] = args.secret_file.display().to_string().into();
        if args.print_secret {
            v["secret"] = hex.into();
        }
        print_json(&v);
    } else {
        println!(
            "deactivation logged at position {} of poll {}; the secret is in {} (whether the \
             deactivation is valid is known to nobody: the parties never tell)",
            entry.position,
            args.poll,
            args.secret_file.display()
        );
        if args.print_secret {
            println!("secret: {hex}");
        }
    }
    Ok(())
}

fn read_secret(path: &Path, poll: u64) -> Result<triad_maci::Fr, ClientError> {
    let text = std::fs::read(path).map_err(|source| ClientError::Io {
        what: format!("secret file {}", path.display()),
        source,
    })?;
    let f: SecretFile = serde_json::from_slice(&text).map_err(|_| {
        ClientError::Usage(format!(
            "{} is not a secret file of triad poll deactivate",
            path.display()
        ))
    })?;
    if f.poll != poll {
        return Err(ClientError::Usage(format!(
            "{} holds a secret for poll {}, not {poll}",
            path.display(),
            f.poll
        )));
    }
    triad_crypto::fr_from_hex(&f.secret)
        .map_err(|_| ClientError::Usage(format!("{}: invalid secret", path.display())))
}

pub fn run_poll_rekey(args: PollRekeyArgs) -> Result<(), ClientError> {
    let secret = read_secret(&args.secret_file, args.poll)?;
    let new_key = read_private_key(&args.new_key_file)?.public_key();
    let net = args.net.load()?;
    let http = http(&net)?;
    let entry = runtime()?.block_on(poll::rekey(&net, &http, args.poll, &secret, &new_key))?;
    let index = entry
        .state_index
        .ok_or_else(|| ClientError::Internal("the re-key's receipt names no state index".into()))?;
    if args.json {
        print_json(&entry);
    } else {
        println!(
            "re-key logged at position {} of poll {}: vote with the new key as state index \
             {index}; whether it carries your credits is known to nobody until the tally",
            entry.position, args.poll
        );
    }
    Ok(())
}

pub fn run_poll_tally(args: PollTallyArgs) -> Result<(), ClientError> {
    let net = args.net.load()?;
    let http = http(&net)?;
    let v = runtime()?.block_on(poll::fetch_tally(&net, &http, args.poll))?;
    if args.json {
        print_json(&v);
    } else {
        let t = &v.tally;
        println!(
            "poll {}: {} sign-ups, {} messages, signed by all three parties",
            t.poll_id, t.signups, t.messages
        );
        for (i, (votes, spent)) in t.votes.iter().zip(&t.spent_per_option).enumerate() {
            println!("  option {i}: {votes} votes ({spent} credits)");
        }
        println!("  credits spent: {}", t.spent);
    }
    Ok(())
}
