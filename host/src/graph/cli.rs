//! `mediagraph run TOPOLOGY.json [--instance FILE] [--param NAME=VALUE]... [--data-dir DIR]`:
//! resolves the graph, records in the foreground, stops cleanly on Ctrl-C or SIGTERM (the open
//! segments are sealed). A second signal exits at once; start-up reconciliation covers that.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{GraphError, RunOptions};
use crate::datadir::{DataDirLock, EXIT_LOCKED, LockError};
use crate::events::EventBus;
use crate::plugin::{PluginError, PluginHost};
use crate::topology::{self, ResolvedGraph, UnsupportedNodes};

/// Exit status of a topology that breaks a rule (as `mediagraph validate`).
const EXIT_INVALID: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Topology JSON file (LVA @apiVersion 1.0 or 2.0).
    pub topology: PathBuf,
    /// Graph instance JSON file giving the parameter values; repeat it to record several
    /// instances (cameras) of the topology in this one process.
    #[arg(long = "instance")]
    pub instances: Vec<PathBuf>,
    /// Parameter value, applied over the instance's; may be repeated.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Parameter value read from a file (a trailing newline is dropped), for secrets such as
    /// `rtspPassword` that must not be on the command line; may be repeated.
    #[arg(long = "param-file", value_name = "NAME=FILE", value_parser = parse_param)]
    pub param_files: Vec<(String, String)>,
    /// Directory the topology's absolute cache paths are taken relative to (plugins are read
    /// from DIR/plugins). Without it the paths are used as they are.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node types this host does not run (motion detection, extensions, IoT Hub nodes):
    /// `reject` refuses the topology; `ignore` records every sink fed straight from the RTSP
    /// source and reports each such node once per start (`Mediagraph.Diagnostics.NodeNotRun`).
    #[arg(long, value_enum, default_value_t = UnsupportedNodes::Reject)]
    pub unsupported_nodes: UnsupportedNodes,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
    #[command(flatten)]
    pub store: crate::upload::config::StoreArgs,
    #[command(flatten)]
    pub http: crate::http::cli::HttpArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugins: {0}")]
    Plugins(#[from] PluginError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
    #[error("HTTP front door: {0}")]
    Http(#[from] crate::http::HttpError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        // The text is not echoed: it may be a secret typed without its name.
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

fn read(path: &Path) -> Result<String, RunError> {
    std::fs::read_to_string(path).map_err(|source| RunError::Read {
        path: path.to_owned(),
        source,
    })
}

pub async fn run(args: &RunArgs) -> Result<ExitCode, RunError> {
    // Held until the process ends: no other `run` or `serve` records into this directory.
    let _lock = match args
        .data_dir
        .as_deref()
        .map(DataDirLock::acquire)
        .transpose()
    {
        Ok(lock) => lock,
        Err(e @ LockError::Locked { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_LOCKED));
        }
        Err(e) => return Err(e.into()),
    };
    let topology_json = read(&args.topology)?;
    let params = topology::cli::with_param_files(&args.params, &args.param_files)
        .map_err(|(path, source)| RunError::Read { path, source })?;
    let events = EventBus::new();
    let plugins = Arc::new(PluginHost::new(
        args.data_dir.as_ref().map(|d| d.join("plugins")),
        events.clone(),
    )?);
    let instance_files: Vec<Option<&PathBuf>> = if args.instances.is_empty() {
        vec![None]
    } else {
        args.instances.iter().map(Some).collect()
    };
    let mut graphs = Vec::new();
    for file in instance_files {
        let instance_json = file.map(|f| read(f)).transpose()?;
        match topology::resolve_with(
            &topology_json,
            instance_json.as_deref(),
            &params,
            plugins.as_ref(),
            SystemTime::now(),
            args.unsupported_nodes,
        ) {
            Ok(g) => {
                if graphs
                    .iter()
                    .any(|o: &ResolvedGraph| o.instance_name == g.instance_name)
                {
                    // Their caches and assets would be the same directories.
                    eprintln!(
                        "invalid: graph instance name '{}' is given twice",
                        g.instance_name
                    );
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
                graphs.push(g)
            }
            Err(body) => {
                for d in body.details() {
                    eprintln!("{d}");
                }
                let what = file.map_or(args.topology.display(), |f| f.display());
                eprintln!("invalid: {} error(s) in {what}", body.details().len());
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    let default_store = args.data_dir.as_ref().map_or_else(
        || PathBuf::from(crate::upload::config::DEFAULT_LOCAL_STORE),
        |d| d.join("assets"),
    );
    let options = RunOptions {
        data_dir: args.data_dir.clone(),
        progress_every: Duration::from_secs(args.progress_secs.max(1)),
        upload: args.store.setup(&default_store)?,
    };
    if args.http.api_token_file.is_some() && args.http.http.is_none() {
        tracing::warn!("--api-token-file has no effect without --http");
    }
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match args.http.http {
        Some(addr) => {
            let assets = graphs
                .iter()
                .flat_map(|g| g.asset_sinks.iter().map(|s| s.asset_name.clone()))
                .collect();
            let stop = async move {
                let _ = http_stopped.await;
            };
            let (bound, task) = args
                .http
                .start(addr, options.upload.store.clone(), assets, stop)
                .await?;
            tracing::info!("http: playback page and API at http://{bound}/");
            Some(task)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut signals = StopSignals::new();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("stopping: sealing open segments (signal again to exit at once)");
        let _ = stop_tx.send(true);
        signals.recv().await;
        std::process::exit(130);
    });
    let runs = graphs.iter().map(|graph| {
        tracing::info!(
            topology = %graph.topology_name,
            instance = %graph.instance_name,
            sinks = graph.asset_sinks.len() + graph.file_sinks.len(),
            "recording"
        );
        super::run(graph, &plugins, &events, &options, stop_rx.clone())
    });
    let results = futures::future::join_all(runs).await;
    // Playback goes on until every recorder has sealed and flushed its uploads.
    let _ = http_stop.send(());
    if let Some(task) = http {
        let _ = task.await;
    }
    for result in results {
        result?;
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM, as a stream: each `recv` waits for the next one.
pub(crate) struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    pub(crate) async fn recv(&mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => {}
            _ = next(&mut self.term) => {}
        }
    }
}
