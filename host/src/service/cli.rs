//! `mediagraph serve`: one long-running process for the edge box. Takes the data directory's
//! lock, loads the stored topologies and instances, answers the HTTP API, activates the
//! instances that were active, and on SIGINT/SIGTERM stops recording (seal, TEARDOWN, bounded
//! upload flush) while keeping what is stored, so the next start resumes. A second signal
//! exits at once (start-up reconciliation of the caches covers that).
//!
//! Its settings come from `--config FILE` (TOML, [`super::settings`]) under the flags given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use super::settings::{Flags, LogFormat, LogLevel, Settings, SettingsError, SettingsFile};
use super::{Policy, Service, ServiceError, api};
use crate::datadir::{DataDirLock, EXIT_LOCKED, LockError};
use crate::events::{DiagnosticsLevel, EventBus};
use crate::graph::RunOptions;
use crate::graph::cli::StopSignals;
use crate::http::{ApiToken, HttpError, Limits};
use crate::plugin::{PluginError, PluginHost};
use crate::topology::UnsupportedNodes;
use crate::upload::config::StoreSpec;

/// How long open connections (an event stream, say) may delay the stop before they are cut.
const HTTP_DRAIN: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Settings file (TOML; names as LVA's module twin: applicationDataDirectory,
    /// allowUnsecuredEndpoints, logLevel, diagnosticsLevel, ...). Flags given override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The service's data directory (LVA's applicationDataDirectory): its state, the caches
    /// (the topologies' absolute cache paths are taken relative to it), DIR/plugins and, by
    /// default, the asset store DIR/assets.
    #[arg(long, default_value = "/var/lib/mediagraph")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API, playback and metrics (ADDR:PORT, or a bare port on 127.0.0.1).
    /// A non-loopback address needs --api-token-file.
    #[arg(long, default_value = "127.0.0.1:9600", value_parser = crate::http::parse_listen_addr)]
    pub listen: SocketAddr,
    /// File holding the API token every request must then carry
    /// (`Authorization: Bearer TOKEN`; playback URLs also take `?token=`).
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Accept topologies whose cameras use unsecured (plain RTSP) endpoints and asset stores
    /// reached over http (LVA's allowUnsecuredEndpoints). The RTSP client has no TLS
    /// transport yet, so false refuses every camera.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_unsecured_endpoints: bool,
    /// Log level: Verbose, Information, Warning, Error or None (LVA's logLevel; default
    /// RUST_LOG, else Information). Events are not hidden by it: see --diagnostics-level.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// How each stderr line is written: text, or json (every line one JSON object).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which diagnostic events are logged and streamed: Information, Warning, Error,
    /// Critical or None (LVA's diagnosticsLevel). Operational events always are.
    #[arg(long, value_name = "LEVEL", default_value = "Information")]
    pub diagnostics_level: DiagnosticsLevel,
    /// What a topology Set does with nodes this host does not run (motion detection,
    /// extensions, ...): reject the topology, or ignore them and record the rest.
    #[arg(long, value_enum, default_value_t = UnsupportedNodes::Reject)]
    pub unsupported_nodes: UnsupportedNodes,
    /// Seconds between progress lines of each recording camera.
    #[arg(long, default_value_t = 60)]
    pub progress_secs: u64,
    #[command(flatten)]
    pub store: crate::upload::config::StoreArgs,
}

impl ServeArgs {
    /// The settings: the `--config` file (if any) under the flags `matches` says were given on
    /// the command line.
    pub fn settings(&self, matches: &clap::ArgMatches) -> Result<Settings, SettingsError> {
        let (file, path) = match &self.config {
            Some(path) => (SettingsFile::read(path)?, path.clone()),
            None => (SettingsFile::default(), PathBuf::new()),
        };
        Flags {
            args: self,
            given: |id: &str| {
                matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            },
        }
        .merge(file)
        .map_err(|message| SettingsError::Invalid { path, message })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("plugins: {0}")]
    Plugins(#[from] PluginError),
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// The store's location when it is reached over plain http (never a credential: the SAS is
/// not part of the endpoint).
fn unsecured_store(spec: &StoreSpec) -> Option<String> {
    match spec {
        StoreSpec::Azure(a) if a.blob_endpoint.scheme() == "http" => {
            Some(format!("{}{}", a.blob_endpoint, a.container))
        }
        _ => None,
    }
}

pub async fn serve(args: &Settings) -> Result<ExitCode, ServeError> {
    // The token and the address are checked before anything is locked or loaded.
    let token = args
        .api_token_file
        .as_deref()
        .map(ApiToken::from_file)
        .transpose()?;
    if token.is_none() && !args.listen.ip().is_loopback() {
        return Err(HttpError::ExposedWithoutToken { addr: args.listen }.into());
    }
    let data_dir_err = |source| ServeError::DataDir {
        path: args.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&args.data_dir).map_err(data_dir_err)?;
    let data_dir = std::path::absolute(&args.data_dir).map_err(data_dir_err)?;
    let _lock = match DataDirLock::acquire(&data_dir) {
        Ok(lock) => lock,
        Err(e @ LockError::Locked { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_LOCKED));
        }
        Err(e) => return Err(e.into()),
    };
    let events = EventBus::with_level(args.diagnostics_level);
    let plugins = PluginHost::new(Some(data_dir.join("plugins")), events.clone())?;
    let default_store = data_dir.join("assets");
    let policy = Policy {
        unsupported_nodes: args.unsupported_nodes,
        allow_unsecured_endpoints: args.allow_unsecured_endpoints,
        unsecured_store: unsecured_store(&args.store.spec_or(&default_store)?),
    };
    let options = RunOptions {
        data_dir: Some(data_dir.clone()),
        progress_every: args.progress_every,
        upload: args.store.setup(&default_store)?,
    };
    let service = Service::open(&data_dir, plugins, events, options, policy)?;
    let door = api::front_door(service.clone(), Limits::default(), token);
    let listener = door.bind(args.listen).await?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: args.listen,
        source,
    })?;
    // Tests and scripts read this line to find a port chosen by the OS (--listen ...:0).
    println!(
        "serve: listening on http://{addr}/ (data directory {})",
        data_dir.display()
    );
    let (stop_http, mut http_stopped) = watch::channel(false);
    let http = tokio::spawn(async move {
        let stopped = async move {
            let _ = http_stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = door.serve(listener, stopped).await {
            tracing::error!(error = %e, "the HTTP listener failed");
        }
    });
    let resume = tokio::spawn({
        let service = service.clone();
        async move { service.resume().await }
    });

    let mut signals = StopSignals::new();
    signals.recv().await;
    tracing::info!("stopping: sealing open segments (signal again to exit at once)");
    tokio::spawn(async move {
        signals.recv().await;
        std::process::exit(130);
    });
    let _ = stop_http.send(true);
    let _ = tokio::time::timeout(HTTP_DRAIN, http).await;
    let _ = resume.await;
    service.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
