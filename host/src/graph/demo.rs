//! `mediagraph demo`, the README's first command: starts the built-in test camera and records
//! it with the shipped LVA topology (`topologies/cvr-asset`) exactly as `mediagraph run` would,
//! into a data directory whose asset store is a local directory. It only supplies the camera
//! and the parameters; everything else is `run`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::cli::{RunArgs, RunError};
use crate::camera::{CameraConfig, CameraError, TestCamera};
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
    println!(
        "demo: test camera at {}; recording it into {} (Ctrl-C seals and stops)",
        camera.url(1),
        data_dir.display()
    );
    let run = RunArgs {
        topology,
        instances: Vec::new(),
        params: vec![
            ("rtspUrl".into(), camera.url(1).to_string()),
            ("cacheMaxMiB".into(), "256".into()),
        ],
        data_dir: Some(data_dir.clone()),
        progress_secs: 10,
        store: StoreArgs::default(),
    };
    let code = super::cli::run(&run).await?;
    camera.stop().await;
    println!(
        "demo: the recording is in {}; list it with\n  mediagraph assets list {ASSET} --asset-store file://{}",
        data_dir.join("assets").display(),
        data_dir.join("assets").display()
    );
    Ok(code)
}
