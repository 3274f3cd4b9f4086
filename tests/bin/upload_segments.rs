//! Test helper process: uploads every pending segment of a cache directory to an Azure
//! container with the real uploader, then exits. The crash test kills it with SIGKILL
//! mid-upload and runs it again.
//!
//! Usage: upload_segments CONNECTION_STRING CONTAINER CACHE_DIR ASSET BLOCK_MIB

use std::sync::Arc;
use std::time::Duration;

use mediagraph::cache::Cache;
use mediagraph::events::EventBus;
use mediagraph::upload::config::StoreArgs;
use mediagraph::upload::uploader::{SinkTarget, Uploader, UploaderPolicy};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, cs, container, dir, asset, block_mib] = args.as_slice() else {
        anyhow::bail!(
            "usage: upload_segments CONNECTION_STRING CONTAINER CACHE_DIR ASSET BLOCK_MIB"
        );
    };
    let flags = StoreArgs {
        azure_connection_string: Some(cs.clone()),
        azure_container: container.clone(),
        azure_create_container: true,
        upload_block_mib: block_mib.parse()?,
        upload_request_retries: 1,
        ..StoreArgs::default()
    };
    let store = flags.open()?;
    let (cache, _) = Cache::open(std::path::Path::new(dir), u64::MAX)?;
    let cache = Arc::new(cache);
    let target = SinkTarget {
        subject: "/test".into(),
        asset: asset.clone(),
        output_type: mediagraph::topology::OutputType::AssetName,
        segment_length: Duration::from_secs(30),
    };
    let policy = UploaderPolicy {
        poll_interval: Duration::from_millis(50),
        ..UploaderPolicy::default()
    };
    let uploader = Uploader::spawn(target, policy, store, cache.clone(), EventBus::new());
    while !cache.sealed_pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(e) = uploader.status().last_error {
            anyhow::bail!("upload failed: {e}");
        }
    }
    let report = uploader.stop().await;
    cache.close()?;
    println!("uploaded {} segments", report.status.uploaded_segments);
    Ok(())
}
