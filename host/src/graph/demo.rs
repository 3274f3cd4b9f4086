//! `mediagraph demo`, the README's first command: starts the built-in test camera and records
//! it with the shipped LVA topology (`topologies/cvr-asset`) exactly as `mediagraph run` would,
//! into a data directory whose asset store is a local directory, and serves the playback page
//! for that store through the HTTP front door (`crate::http`). It only supplies the camera, the parameters and the
//! page; recording is `run`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::cli::{RunArgs, RunError};
use crate::camera::{CameraConfig, CameraError, TestCamera};
use crate::http::HttpError;
use crate::http::cli::HttpArgs;
use crate::topology::AssetName;
use crate::upload::config::StoreArgs;
use crate::upload::local::LocalStore;

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
    Run(#[from] RunError),
}

pub async fn demo(args: DemoArgs) -> Result<ExitCode, DemoError> {
    let camera = TestCamera::start(CameraConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], args.port)),
        ..CameraConfig::default()
    })
    .await?;
    let write_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| DemoError::Write { path, source }
    };
    std::fs::create_dir_all(&args.data_dir).map_err(write_err(&args.data_dir))?;
    let data_dir = std::path::absolute(&args.data_dir).map_err(write_err(&args.data_dir))?;
    let topology = data_dir.join("topology.json");
    std::fs::write(&topology, TOPOLOGY).map_err(write_err(&topology))?;
    let assets = data_dir.join("assets");
    let store = Arc::new(LocalStore::new(assets.clone()));
    let asset = AssetName::new(ASSET).expect("the demo's asset name is valid");
    let front_door = HttpArgs {
        http: Some(args.http),
        api_token_file: args.api_token_file.clone(),
    };
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = http_stopped.await;
    };
    let (page, http) = front_door
        .start(args.http, store, vec![asset], stop)
        .await?;
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
    let run = RunArgs {
        topology,
        instances: Vec::new(),
        params: vec![
            ("rtspUrl".into(), camera.url(1).to_string()),
            ("cacheMaxMiB".into(), "256".into()),
        ],
        param_files: Vec::new(),
        data_dir: Some(data_dir.clone()),
        progress_secs: 10,
        store: StoreArgs::default(),
        http: HttpArgs::default(),
    };
    let code = super::cli::run(&run).await;
    let _ = http_stop.send(());
    let _ = http.await;
    let code = code?;
    camera.stop().await;
    println!(
        "demo: the recording is in {}; list it with\n  mediagraph assets list {ASSET} --asset-store file://{}",
        assets.display(),
        assets.display()
    );
    Ok(code)
}
