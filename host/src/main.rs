use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mediagraph",
    version,
    about = "Continuous video recording driven by LVA media graphs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the built-in RTSP test camera (a looping clip on /cam1 … /camN).
    Camera(mediagraph::camera::cli::CameraArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Camera(args) => mediagraph::camera::cli::run(args).await?,
    }
    Ok(())
}
