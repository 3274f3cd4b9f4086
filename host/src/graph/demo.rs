//! `mediagraph demo`, the README's first command: starts the built-in test camera and the
//! edge service (`crate::service`) in this process on a data directory whose asset store is a
//! local directory, sets the shipped LVA topology (`topologies/cvr-asset`) and one instance for
//! the camera through the service's direct methods, activates it, and serves the playback page
//! (which shows the instance and its state), the playback API and the service's API through
//! the HTTP front door. It only supplies the camera, the calls and the address line;
//! recording is the service's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::RunOptions;
use super::cli::StopSignals;
use crate::camera::{CameraConfig, CameraError, TestCamera};
use crate::datadir::{DataDirLock, EXIT_LOCKED, LockError};
use crate::events::EventBus;
use crate::http::{ApiToken, HttpError, Limits};
use crate::plugin::{PluginError, PluginHost};
use crate::service::{Policy, Service, ServiceError, api};
use crate::upload::config::StoreArgs;

/// The shipped CVR topology, so the demo runs from any directory.
const TOPOLOGY: &str = include_str!("../../../topologies/cvr-asset/topology.json");
/// The asset the demo records: `${System.GraphTopologyName}-${System.GraphInstanceName}` of the
/// shipped topology with no instance file.
const ASSET: &str = "CVRToAsset-default";

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the cache, the asset store (DIR/assets) and a copy of the topology go.
    #[arg(long, default_value = "demo-data")]
    pub data_dir: PathBuf,
    /// Port of the test camera (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address of the playback page and API (ADDR:PORT, or a bare port on 127.0.0.1; port 0
    /// picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = crate::http::parse_listen_addr)]
    pub http: SocketAddr,
    /// File holding an API token the page and API then require (see `run --api-token-file`).
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("test camera: {0}")]
    Camera(#[from] CameraError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("playback page: {0}")]
    Http(#[from] HttpError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("plugins: {0}")]
    Plugins(#[from] PluginError),
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the service refused {method} with status {status}: {payload}")]
    Method {
        method: &'static str,
        status: u16,
        payload: Value,
    },
}

/// The instance the demo records: its asset is `CVRToAsset-default`, as before the service.
const INSTANCE: &str = "default";

pub async fn demo(args: DemoArgs) -> Result<ExitCode, DemoError> {
    let write_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| DemoError::Write { path, source }
    };
    std::fs::create_dir_all(&args.data_dir).map_err(write_err(&args.data_dir))?;
    let data_dir = std::path::absolute(&args.data_dir).map_err(write_err(&args.data_dir))?;
    let token = args
        .api_token_file
        .as_deref()
        .map(ApiToken::from_file)
        .transpose()?;
    let _lock = match DataDirLock::acquire(&data_dir) {
        Ok(lock) => lock,
        Err(e @ LockError::Locked { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_LOCKED));
        }
        Err(e) => return Err(e.into()),
    };
    let camera = TestCamera::start(CameraConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], args.port)),
        ..CameraConfig::default()
    })
    .await?;
    // A copy of what is recorded, for the reader (the service keeps its own in state.json).
    let topology_file = data_dir.join("topology.json");
    std::fs::write(&topology_file, TOPOLOGY).map_err(write_err(&topology_file))?;
    let assets = data_dir.join("assets");
    let events = EventBus::new();
    let plugins = PluginHost::new(Some(data_dir.join("plugins")), events.clone())?;
    let options = RunOptions {
        data_dir: Some(data_dir.clone()),
        progress_every: Duration::from_secs(10),
        upload: StoreArgs::default().setup(&assets)?,
    };
    let service = Service::open(&data_dir, plugins, events, options, Policy::default())?;

    let door = api::front_door(service.clone(), Limits::default(), token);
    let listener = door.bind(args.http).await?;
    let page = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: args.http,
        source,
    })?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let stopped = async move {
            let _ = http_stopped.await;
        };
        if let Err(e) = door.serve(listener, stopped).await {
            tracing::error!("http: {e}");
        }
    });

    // Through the direct methods, as an operator would: the camera's port is new each time,
    // so the instance is set again (the stored state is the service's, kept between demos).
    let topology: Value = serde_json::from_str(TOPOLOGY).expect("the shipped topology is JSON");
    let instance = json!({"@apiVersion": "2.0", "name": INSTANCE, "properties": {
    "topologyName": topology["name"],
    "description": "the demo's test camera",
    "parameters": [
        {"name": "rtspUrl", "value": camera.url(1).to_string()},
        {"name": "cacheMaxMiB", "value": "256"}
    ]}});
    let name = json!({"@apiVersion": "2.0", "name": INSTANCE});
    for (method, payload) in [
        ("GraphTopologySet", topology),
        ("GraphInstanceSet", instance),
        ("GraphInstanceActivate", name),
    ] {
        let r = service
            .call(method, payload, api::DEFAULT_METHOD_TIMEOUT)
            .await;
        if r.status >= 300 {
            return Err(DemoError::Method {
                method,
                status: r.status,
                payload: r.payload,
            });
        }
    }
    println!(
        "demo: test camera at {}; recording it into {} (Ctrl-C seals and stops)",
        camera.url(1),
        data_dir.display()
    );
    println!(
        "demo: playback page at http://{page}/ (segments appear as they are uploaded, every 30 s)"
    );
    if let Some(file) = &args.api_token_file {
        println!(
            "demo: the page needs the API token: open it with ?token=TOKEN (TOKEN as in {})",
            file.display()
        );
    }
    let mut signals = StopSignals::new();
    signals.recv().await;
    tracing::info!("stopping: sealing open segments (signal again to exit at once)");
    tokio::spawn(async move {
        signals.recv().await;
        std::process::exit(130);
    });
    // Recording stops (sealed, uploaded); the instance stays desired-active in the state, as
    // after any stop of the service. Playback goes on until then.
    service.shutdown().await;
    let _ = http_stop.send(());
    let _ = http.await;
    camera.stop().await;
    println!(
        "demo: the recording is in {}; list it with\n  mediagraph assets list {ASSET} --asset-store file://{}",
        assets.display(),
        assets.display()
    );
    Ok(ExitCode::SUCCESS)
}
