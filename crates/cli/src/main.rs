//! The `triad` binary: every service, the client verbs, `devnet`, `demo` and
//! `bench`. A thin edge over the libraries; errors become `anyhow` here only.

mod bench;
mod bench_attest;
mod bench_poll;
mod bench_services;
mod demo;
mod demo_poll;
mod devnet;
mod directory_cli;
mod maci_cli;
mod notary_cli;
mod probe;
mod status;

use clap::{Parser, Subcommand};

/// Keeps freed memory for reuse instead of returning it to the OS, so the
/// large per-round buffers of the MPC engine do not page-fault each time
/// (measured: see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "triad",
    version,
    about = "Private statistics and collusion-resistant polls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on this machine with simulated providers.
    Demo(demo::DemoArgs),
    /// Start every service as separate processes on 127.0.0.1.
    Devnet(devnet::DevnetArgs),
    /// One line per service of a devnet: process and health.
    Status(status::StatusArgs),
    /// A provider's page on 127.0.0.1: contribute through this process.
    Ui(triad_client::ui::UiArgs),
    /// Run a computation party.
    Party(triad_party::PartyArgs),
    /// Run the coordinator.
    Coordinator(triad_coordinator::CoordinatorArgs),
    /// Run the consumer API and dashboard.
    Api(triad_api::ApiArgs),
    /// Contribute your value to a study (attest, submit, share, wait).
    Share(triad_client::ShareArgs),
    /// Print the latest verified release of a study.
    Query(triad_client::QueryArgs),
    /// Operator commands for studies.
    #[command(subcommand)]
    Study(StudyCommand),
    /// Send hostile requests to every service of a running devnet and check
    /// each is refused cleanly, with no restart and no state change.
    Probe(probe::ProbeArgs),
    /// Measure a protocol or a service (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// Internal: one party of a multi-process benchmark.
    #[command(hide = true)]
    BenchParty(bench::BenchPartyArgs),
    #[command(flatten)]
    Notary(notary_cli::NotaryCommand),
    /// Poll commands: create, sign up, read the tally.
    #[command(subcommand)]
    Poll(PollCommand),
    /// Vote in a poll (or change your key): the signed command goes to the
    /// three parties as secret shares.
    Vote(triad_client::VoteArgs),
    /// Generate a MACI key pair (`macisk.…` / `macipk.…`) from OS randomness.
    Keygen(maci_cli::KeygenArgs),
    /// MACI key commands.
    #[command(subcommand)]
    Key(maci_cli::KeyCommand),
    /// Run one node of the private directory (libp2p Kademlia).
    DirectoryNode(directory_cli::DirectoryNodeArgs),
    /// Find a study's or poll's record by its directory id, privately, and
    /// verify it.
    Discover(directory_cli::DiscoverArgs),
}

#[derive(Subcommand)]
enum PollCommand {
    /// Create a poll at the coordinator (operator).
    Create(triad_client::PollCreateArgs),
    /// Sign up with an attested account and your MACI public key.
    Signup(triad_client::PollSignupArgs),
    /// Deactivate your key; stores the secret that re-keying needs.
    Deactivate(triad_client::PollDeactivateArgs),
    /// Add a fresh key anonymously with a deactivation's secret.
    Rekey(triad_client::PollRekeyArgs),
    /// Print a poll's tally, verified against the three parties' keys.
    Tally(triad_client::PollTallyArgs),
}

#[derive(Subcommand)]
enum StudyCommand {
    /// Create a study at the coordinator.
    Create(triad_client::StudyCreateArgs),
}

/// mimalloc v3's `mi_option_purge_delay` (mimalloc.h; checked against the
/// vendored header of libmimalloc-sys 0.1.49).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Freed memory is returned to the OS after 1 s instead of mimalloc's
/// 10 ms: the engine frees and reallocates buffers of the same sizes every
/// round, and re-faulting them (zeroing huge pages) cost about a fifth of
/// `bench stats --n 1000000` (docs/benchmarks.md). Unlike the
/// `MIMALLOC_PURGE_DELAY` variable it needs no environment.
///
/// Transparent huge pages are disabled for the process (and the parties,
/// services and bench processes it spawns, which inherit the setting):
/// mimalloc asks for them on its arenas, and every first touch of a 2 MiB
/// page zeroes all of it, also after a purge of a small part of it. That
/// zeroing was a fifth to a third of the CPU of the malicious checks
/// (`perf` of `bench stats --n 10000` and `bench poseidon`); without it
/// they ran 8 % (stats) to 2x (poseidon) faster (docs/benchmarks.md). This
/// is what `MIMALLOC_ALLOW_THP=0` does, but that is read before `main`.
fn tune_allocator() {
    // SAFETY: a plain setter of a global option in the linked mimalloc,
    // called before any thread is spawned; an unknown index is ignored.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 1000) }
    #[cfg(target_os = "linux")]
    {
        /// `PR_SET_THP_DISABLE` of linux/prctl.h.
        const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
        extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        // SAFETY: prctl with integer arguments only; it sets a flag of
        // this process's memory map and fails harmlessly (-1) on kernels
        // without it, in which case huge pages simply stay allowed.
        let _ = unsafe {
            prctl(
                PR_SET_THP_DISABLE,
                1 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
            )
        };
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    // Whatever this process creates (keys, tokens, databases and their WAL
    // files, logs, attestations) is private to this user from the start.
    triad_files::restrict_umask();
    triad_wire::trace::init_logging();
    devnet::exit_with_parent();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Devnet(args) => devnet::run(args),
        Command::Status(args) => status::run(args),
        Command::Ui(args) => Ok(triad_client::ui::run_ui(args)?),
        Command::Party(args) => Ok(triad_party::run_blocking(args)?),
        Command::Coordinator(args) => Ok(triad_coordinator::run_blocking(args)?),
        Command::Api(args) => Ok(triad_api::run_blocking(args)?),
        Command::Share(args) => Ok(triad_client::run_share(args)?),
        Command::Query(args) => Ok(triad_client::run_query(args)?),
        Command::Study(StudyCommand::Create(args)) => Ok(triad_client::run_study_create(args)?),
        Command::Probe(args) => probe::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchParty(args) => bench::run_party(args),
        Command::Notary(cmd) => notary_cli::run(cmd),
        Command::Poll(PollCommand::Create(a)) => Ok(triad_client::run_poll_create(a)?),
        Command::Poll(PollCommand::Signup(a)) => Ok(triad_client::run_poll_signup(a)?),
        Command::Poll(PollCommand::Tally(a)) => Ok(triad_client::run_poll_tally(a)?),
        Command::Poll(PollCommand::Deactivate(a)) => Ok(triad_client::run_poll_deactivate(a)?),
        Command::Poll(PollCommand::Rekey(a)) => Ok(triad_client::run_poll_rekey(a)?),
        Command::Vote(a) => Ok(triad_client::run_vote(a)?),
        Command::Keygen(args) => maci_cli::keygen(args),
        Command::Key(cmd) => maci_cli::run(cmd),
        Command::DirectoryNode(args) => directory_cli::run_node(args),
        Command::Discover(args) => directory_cli::run_discover(args),
    }
}
