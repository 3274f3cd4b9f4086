//! The `mediagraph` binary: parses the command line and hands each subcommand to the library.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use mediagraph::service::settings::{LogFormat, LogLevel};
use mediagraph::topology;
use tracing_subscriber::EnvFilter;

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
    /// Record the built-in test camera with the shipped CVR topology (Ctrl-C stops).
    Demo(mediagraph::graph::demo::DemoArgs),
    /// Record one graph instance in the foreground until Ctrl-C or SIGTERM.
    Run(mediagraph::graph::cli::RunArgs),
    /// Run the edge service: LVA direct methods over HTTP, durable graphs, status and metrics.
    Serve(mediagraph::service::cli::ServeArgs),
    /// Replay an LVA/AVA sample-app operations file against a running `serve`.
    Ops(mediagraph::service::ops::OpsArgs),
    /// Check a topology (and optional instance) and print what would be recorded.
    Validate {
        #[command(flatten)]
        args: topology::cli::ValidateArgs,
        /// Where plugins named by the topology are looked up (besides the embedded ones).
        #[command(flatten)]
        dirs: mediagraph::plugin::cli::PluginDirs,
    },
    /// List, check and benchmark WebAssembly plugins.
    #[command(subcommand)]
    Plugins(mediagraph::plugin::cli::PluginsCommand),
    /// Inspect what an asset store holds.
    #[command(subcommand)]
    Assets(mediagraph::upload::cli::AssetsCommand),
    /// Export a time range of an asset as one MP4 file (audio included when recorded).
    Export(mediagraph::playback::export::ExportArgs),
}

/// One runtime thread serves every camera. A frame costs a few microseconds of parsing, so one
/// thread keeps up with hundreds of cameras, while spreading tasks over worker threads cost
/// more in wake-ups than the work itself (a quarter of recording CPU at 32 cameras). File I/O
/// and fsync run on tokio's blocking pool, so a slow disk never stalls the sessions.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    if let Command::Serve(args) = &cli.command {
        let serve_matches = matches
            .subcommand_matches("serve")
            .expect("the serve subcommand was parsed");
        let settings = args.settings(serve_matches)?;
        init_logging(settings.log_level, settings.log_format)?;
        return Ok(mediagraph::service::cli::serve(&settings).await?);
    }
    init_logging(None, LogFormat::Text)?;
    match cli.command {
        Command::Camera(args) => mediagraph::camera::cli::run(args).await?,
        Command::Plugins(cmd) => mediagraph::plugin::cli::run(&cmd, &mut std::io::stdout().lock())?,
        Command::Demo(args) => return Ok(mediagraph::graph::demo::demo(args).await?),
        Command::Run(args) => return Ok(mediagraph::graph::cli::run(&args).await?),
        Command::Serve(_) => unreachable!("served above"),
        Command::Ops(args) => return Ok(mediagraph::service::ops::run(&args).await?),
        Command::Assets(cmd) => mediagraph::upload::cli::run(&cmd, &mut std::io::stdout()).await?,
        Command::Export(args) => {
            let bytes = mediagraph::playback::export::run(&args).await?;
            println!(
                "{}: {bytes} bytes (gaps {})",
                args.output.display(),
                mediagraph::playback::export::GAPS_POLICY
            );
        }
        Command::Validate { args, dirs } => {
            let plugins = mediagraph::plugin::PluginHost::new(
                Some(dirs.plugin_dir()),
                mediagraph::events::EventBus::new(),
            )?;
            return Ok(topology::cli::run_validate(&args, &plugins)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr at `level` (else `RUST_LOG`, else info), as text lines or one JSON object a
/// line. Event lines (target `event`) always pass: events have their own level
/// (`diagnosticsLevel`, applied by the event bus), so a quiet log does not hide them, unless
/// `RUST_LOG` names the target itself.
fn init_logging(level: Option<LogLevel>, format: LogFormat) -> anyhow::Result<()> {
    let base = match level {
        Some(level) => level.directive().to_owned(),
        None => std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".to_owned()),
    };
    let target = mediagraph::events::LOG_TARGET;
    let mut filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    if !base.split(',').any(|d| d.trim().starts_with(target)) {
        filter = filter.add_directive(format!("{target}=info").parse()?);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
