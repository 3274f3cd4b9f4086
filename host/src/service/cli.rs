//! `mediagraph serve`: one long-running process for the edge box. Takes the data directory's
//! lock, loads the stored topologies and instances, answers the HTTP API, activates the
//! instances that were active, and on SIGINT/SIGTERM stops recording (seal, TEARDOWN, bounded
//! upload flush) while keeping what is stored, so the next start resumes. A second signal
//! exits at once (start-up reconciliation of the caches covers that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use super::{Service, ServiceError, api};
use crate::datadir::{DataDirLock, EXIT_LOCKED, LockError};
use crate::events::EventBus;
use crate::graph::RunOptions;
use crate::graph::cli::StopSignals;
use crate::http::{ApiToken, HttpError, Limits};
use crate::plugin::{PluginError, PluginHost};

/// How long open connections (an event stream, say) may delay the stop before they are cut.
const HTTP_DRAIN: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
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
    /// Seconds between progress lines of each recording camera.
    #[arg(long, default_value_t = 60)]
    pub progress_secs: u64,
    #[command(flatten)]
    pub store: crate::upload::config::StoreArgs,
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

pub async fn serve(args: &ServeArgs) -> Result<ExitCode, ServeError> {
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
    let events = EventBus::new();
    let plugins = PluginHost::new(Some(data_dir.join("plugins")), events.clone())?;
    let options = RunOptions {
        data_dir: Some(data_dir.clone()),
        progress_every: Duration::from_secs(args.progress_secs.max(1)),
        upload: args.store.setup(&data_dir.join("assets"))?,
    };
    let service = Service::open(&data_dir, plugins, events, options)?;
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
