//! The `triad` binary: every service, the client verbs, `devnet`, `demo` and
//! `bench`. A thin edge over the libraries; errors become `anyhow` here only.

mod bench;
mod notary_cli;

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
    Demo,
    /// Measure a protocol or a service (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// Internal: one party of a multi-process benchmark.
    #[command(hide = true)]
    BenchParty(bench::BenchPartyArgs),
    #[command(flatten)]
    Notary(notary_cli::NotaryCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo => {
            println!(
                "triad demo: not yet available (the services issue has not landed); \
                 try `triad bench stats --n 10000 --transport tcp`"
            );
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::BenchParty(args) => bench::run_party(args),
        Command::Notary(cmd) => notary_cli::run(cmd),
    }
}
