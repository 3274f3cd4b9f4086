//! The `mediagraph` binary: parses the command line and hands each subcommand to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mediagraph::topology;

#[derive(Parser)]
#[command(
    name = "mediagraph",
    version,
    about = "Continuous video recording driven by LVA media-graph topologies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology (and optional instance) and print what would be recorded.
    Validate(topology::cli::ValidateArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Validate(args) => Ok(topology::cli::run_validate(
            &args,
            &topology::DefaultPluginNames,
        )?),
    }
}
