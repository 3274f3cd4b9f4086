//! Test helper process: uploads every pending segment of a segment directory to an Azure
//! container with the real uploader, then exits. The crash test kills it with SIGKILL
//! mid-upload and runs it again.
//!
//! Usage: upload_segments CONNECTION_STRING CONTAINER SEGMENT_DIR ASSET BLOCK_MIB

use std::sync::Arc;
use std::time::Duration;

use mediagraph::events::EventBus;
use mediagraph::upload::config::{StoreArgs, open_store};
use mediagraph::upload::uploader::{SegmentSource, SinkTarget, Uploader, UploaderPolicy};
use mediagraph_tests::segments::DirSource;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, cs, container, dir, asset, block_mib] = args.as_slice() else {
        anyhow::bail!(
            "usage: upload_segments CONNECTION_STRING CONTAINER SEGMENT_DIR ASSET BLOCK_MIB"
        );
    };
    let flags = StoreArgs {
        azure_connection_string: Some(cs.clone()),
        azure_container: container.clone(),
        azure_create_container: true,
        upload_block_mib: block_mib.parse()?,
        upload_request_timeout_secs: 30,
        upload_request_retries: 1,
        ..StoreArgs::default()
    };
    let store = open_store(flags.spec()?, flags.transfer_policy()?)?;
    let source = Arc::new(DirSource::new(std::path::Path::new(dir)));
    let target = SinkTarget {
        subject: "/test".into(),
        asset: asset.clone(),
        segment_length: Duration::from_secs(30),
    };
    let policy = UploaderPolicy {
        poll_interval: Duration::from_millis(50),
        ..UploaderPolicy::default()
    };
    let uploader = Uploader::spawn(target, policy, store, source.clone(), EventBus::new());
    while !source.sealed_pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(e) = uploader.status().last_error {
            anyhow::bail!("upload failed: {e}");
        }
    }
    let report = uploader.stop().await;
    println!("uploaded {} segments", report.status.uploaded_segments);
    Ok(())
}
