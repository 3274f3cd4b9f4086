//! `mediagraph serve`: one long-running process for the edge box. Takes the data directory's
//! lock, loads the stored topologies and instances, answers the HTTP API, activates the
//! instances that were active, and on SIGINT/SIGTERM stops recording (seal, TEARDOWN, bounded
//! upload flush) while keeping what is stored, so the next start resumes. A second signal
//! exits at once (start-up reconciliation of the caches covers that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use tokio::sync::watch;

use super::{Service, ServiceError, api};
use crate::datadir::{DataDirLock, EXIT_LOCKED, LockError};
use crate::events::EventBus;
use crate::graph::RunOptions;
use crate::graph::cli::StopSignals;
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
    /// Address of the HTTP API. Only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:9600")]
    pub listen: SocketAddr,
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
    #[error(
        "refusing to listen on {0}: the API has no authentication yet, so only loopback addresses are allowed"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub async fn serve(args: &ServeArgs) -> Result<ExitCode, ServeError> {
    if !args.listen.ip().is_loopback() {
        return Err(ServeError::NotLoopback(args.listen));
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: args.listen,
        source,
    })?;
    // Tests and scripts read this line to find a port chosen by the OS (--listen ...:0).
    println!(
        "serve: listening on http://{addr}/ (data directory {})",
        data_dir.display()
    );
    let app = api::routes(service.clone()).route("/healthz", get(|| async { "ok" }));
    let (stop_http, mut http_stopped) = watch::channel(false);
    let http = tokio::spawn(async move {
        let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = http_stopped.wait_for(|s| *s).await;
        });
        if let Err(e) = graceful.await {
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
