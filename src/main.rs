//! `besu-operator`: the CLI edge. Library code lives in `besu_operator`; each
//! subcommand's argument parsing and printing lives in `src/cli/<name>.rs`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// mimalloc, not the system allocator: it hands freed pages back to the kernel within
/// milliseconds, where glibc's malloc kept the heap's bring-up peak resident for good
/// (RSS at rest ~ peak, measured with 100 networks; README "Benchmark").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "besu-operator",
    version,
    about = "Runs Hyperledger Besu private networks on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Node keys: generate a key in Besu's format, or inspect one (public key, address, enode).
    Key(cli::key::KeyArgs),
    /// Genesis: encode BFT extraData, or generate a whole genesis with its validator keys.
    Genesis(cli::genesis::GenesisArgs),
    /// Print the CustomResourceDefinitions as YAML (or write them with --write).
    Crd(cli::crd::CrdArgs),
    /// Print every object the operator would create for a BesuNetwork or BesuNode manifest.
    Render(cli::render::RenderArgs),
    /// Run the operator: reconcile BesuNetworks and BesuNodes.
    Run(cli::run::RunArgs),
    /// Copy a custom Ethereum network's ConfigMap files into a directory, decompressing
    /// `*.gz` (the init container of an EthereumNode whose genesis state is compressed).
    NetworkFiles(cli::network_files::NetworkFilesArgs),
    /// Give a data volume copied from another replica its own P2P identity (the first
    /// init container of an EthereumNode with backup or restore).
    DataIdentity(cli::data_identity::DataIdentityArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Key(args) => cli::key::run(args),
        Command::Genesis(args) => cli::genesis::run(args),
        Command::Crd(args) => cli::crd::run(args),
        Command::Render(args) => cli::render::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::NetworkFiles(args) => cli::network_files::run(args),
        Command::DataIdentity(args) => cli::data_identity::run(args),
    }
}
