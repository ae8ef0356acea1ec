//! `triad directory-node` (one node of the private directory, as a
//! process) and `triad discover` (find and verify a study's or poll's
//! record by its directory id). See docs/directory.md, "Services".

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use triad_client::discover::{describe_record, find_record, parse_id, resolve, DirectoryArgs};
use triad_directory::node::{spawn_node, Listen};
use triad_directory::publish::{
    handle_address, keypair_from_seed, parse_bootstrap, system_clock, Keypair,
};
use triad_directory::record::Kind;

/// `triad directory-node`.
#[derive(clap::Args, Debug, Clone)]
pub struct DirectoryNodeArgs {
    /// TCP listen address of the node.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The node's identity: an ed25519 seed (64 hex), created (0600) if
    /// missing. The peer id, hence the node's address, follows from it.
    #[arg(long)]
    pub key_file: PathBuf,
    /// Another node, `<multiaddr>/p2p/<peer id>` (repeatable).
    #[arg(long = "bootstrap", value_name = "ADDR")]
    pub bootstrap: Vec<String>,
    /// Written (atomically, 0600) with `<multiaddr>/p2p/<peer id>` once the
    /// node listens.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// The libp2p identity kept in `path` (created if missing).
pub fn node_identity(path: &std::path::Path) -> anyhow::Result<Keypair> {
    let key = triad_wire::keyfile::load_or_create_signing_key(path)?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(key.to_key_file(), &mut seed)
        .context("the node key file is not a 32-byte seed")?;
    Ok(keypair_from_seed(seed))
}

/// `triad directory-node`: runs until SIGINT or SIGTERM.
pub fn run_node(args: DirectoryNodeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let key = node_identity(&args.key_file)?;
        let me = key.public().to_peer_id();
        let peers: Vec<_> = parse_bootstrap(&args.bootstrap)?
            .into_iter()
            .filter(|(p, _)| *p != me)
            .collect();
        let node = spawn_node(Listen::Tcp(args.listen), key, system_clock())
            .await
            .map_err(|e| anyhow::anyhow!("starting the directory node: {e}"))?;
        let known = peers.len();
        node.add_peers(peers)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let addr = handle_address(&node);
        tracing::info!(%addr, bootstrap = known, "directory node listening");
        if let Some(path) = &args.ready_file {
            triad_files::write_private(path, addr.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        crate::devnet::until_signalled().await?;
        tracing::info!("directory node stopping");
        Ok(())
    })
}

/// `triad discover`.
#[derive(clap::Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["study", "poll"]))]
pub struct DiscoverArgs {
    /// A study's directory id (64 hex).
    #[arg(long, value_name = "HEX")]
    pub study: Option<String>,
    /// A poll's directory id (64 hex).
    #[arg(long, value_name = "HEX")]
    pub poll: Option<String>,
    #[command(flatten)]
    pub dir: DirectoryArgs,
    /// A devnet directory: its directory nodes (devnet.json).
    #[arg(long)]
    pub devnet: Option<PathBuf>,
    /// Print the verified record as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// `triad discover`: the record, found the private way and verified.
pub fn run_discover(args: DiscoverArgs) -> anyhow::Result<()> {
    let (hex, kind) = match (&args.study, &args.poll) {
        (Some(h), None) => (h, Kind::Study),
        (None, Some(h)) => (h, Kind::Poll),
        _ => anyhow::bail!("give exactly one of --study <id> and --poll <id>"),
    };
    let id = parse_id(hex)?;
    let d = resolve(&args.dir, args.devnet.as_deref())?;
    let rt = tokio::runtime::Runtime::new()?;
    let record = rt.block_on(find_record(&d.bootstrap, &id, kind))?;
    if args.json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        print!("{}", describe_record(&id, &record));
    }
    Ok(())
}
