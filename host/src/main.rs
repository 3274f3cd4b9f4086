use clap::{Parser, Subcommand};

/// Continuous video recording driven by LVA media-graph topologies.
#[derive(Parser)]
#[command(name = "mediagraph", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, check and benchmark WebAssembly plugins.
    #[command(subcommand)]
    Plugins(mediagraph::plugin::cli::PluginsCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugins(cmd) => mediagraph::plugin::cli::run(&cmd, &mut std::io::stdout().lock())?,
    }
    Ok(())
}
