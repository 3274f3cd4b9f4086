//! `mediagraph demo`, the README's first command: starts the built-in test camera and records
//! it with the shipped LVA topology (`topologies/cvr-asset`) exactly as `mediagraph run` would,
//! into a data directory whose asset store is a local directory, and serves the playback page
//! for that store (`playback::server`). It only supplies the camera, the parameters and the
//! page; recording is `run`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::cli::{RunArgs, RunError};
use crate::camera::{CameraConfig, CameraError, TestCamera};
use crate::playback::server::{self, Playback};
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
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_http_addr)]
    pub http: SocketAddr,
}

fn parse_http_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<u16>()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        })
        .map_err(|_| format!("expected ADDR:PORT or PORT, got '{text}'"))
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
    #[error("playback page: cannot listen on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
    let listener = server::bind(args.http)
        .await
        .map_err(|source| DemoError::Http {
            addr: args.http,
            source,
        })?;
    let page = listener.local_addr().map_err(|source| DemoError::Http {
        addr: args.http,
        source,
    })?;
    let store = Arc::new(LocalStore::new(assets.clone()));
    let asset = AssetName::new(ASSET).expect("the demo's asset name is valid");
    let http = tokio::spawn(server::serve(listener, Playback::new(store, vec![asset])));
    println!(
        "demo: test camera at {}; recording it into {} (Ctrl-C seals and stops)",
        camera.url(1),
        data_dir.display()
    );
    println!(
        "demo: playback page at http://{page}/ (segments appear as they are uploaded, every 30 s)"
    );
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
    };
    let code = super::cli::run(&run).await;
    http.abort();
    let code = code?;
    camera.stop().await;
    println!(
        "demo: the recording is in {}; list it with\n  mediagraph assets list {ASSET} --asset-store file://{}",
        assets.display(),
        assets.display()
    );
    Ok(code)
}
