//! Two writers on one asset name against Azurite on loopback: the first writer's blob is never
//! replaced. The second writer's upload fails loudly (a `ConditionNotMet` StorageError) and
//! its segment stays in its cache; a re-upload of the same segment is still accepted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::Cache;
use mediagraph::events::EventBus;
use mediagraph::time::Ticks90k;
use mediagraph::upload::config::{StoreSpec, TransferPolicy, open_store, parse_connection_string};
use mediagraph::upload::uploader::{SinkTarget, Uploader, UploaderPolicy};
use mediagraph::upload::{AssetStore, SegmentFacts, SegmentUpload};
use mediagraph_tests::azurite::Azurite;

const START: i64 = 1_800_000_000;

/// A cache holding one sealed segment (run 1, sequence 0, 30 s from `START`) of `body`.
fn cache_with(dir: &std::path::Path, body: &[u8]) -> Arc<Cache> {
    let (cache, _) = Cache::open(dir, u64::MAX).unwrap();
    cache
        .begin_segment(1, 0, Ticks90k::from_secs(START), "avc1.64001f", "mp4")
        .unwrap();
    cache
        .append_fragment(&[body], Ticks90k::from_secs(START + 30))
        .unwrap();
    cache.seal().unwrap();
    Arc::new(cache)
}

fn store(azurite: &Azurite) -> Arc<dyn AssetStore> {
    let spec = parse_connection_string(&azurite.connection_string(), "assets", true).unwrap();
    open_store(StoreSpec::Azure(spec), TransferPolicy::default()).expect("store")
}

fn policy() -> UploaderPolicy {
    UploaderPolicy {
        poll_interval: Duration::from_millis(20),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        flush_timeout: Duration::from_secs(2),
    }
}

fn target() -> SinkTarget {
    SinkTarget {
        subject: "/graphInstances/g/sinks/assetSink".into(),
        asset: "shared-asset".into(),
        output_type: mediagraph::topology::OutputType::AssetName,
        segment_length: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn the_second_writer_fails_loudly_and_keeps_its_segment() {
    let azurite = Azurite::start().expect("Azurite");
    let tmp = tempfile::tempdir().unwrap();
    let first = cache_with(&tmp.path().join("first"), b"the first writer's segment");
    let second = cache_with(&tmp.path().join("second"), b"the second writer's segment");

    let store = store(&azurite);
    store.prepare().await.expect("container");
    let events = EventBus::new();
    let up = Uploader::spawn(
        target(),
        policy(),
        store.clone(),
        first.clone(),
        events.clone(),
    );
    let report = up.stop().await;
    assert!(report.drained, "{:?}", report.status);
    let name = report.status.uploaded[0].clone();

    let up = Uploader::spawn(
        target(),
        policy(),
        store.clone(),
        second.clone(),
        events.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.status().consecutive_failures < 2 {
        assert!(Instant::now() < deadline, "no failure: {:?}", up.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = up.stop().await;
    assert!(!report.drained);
    assert_eq!(report.status.uploaded_segments, 0);
    assert_eq!(second.sealed_pending().len(), 1, "the segment stays cached");
    let errors: Vec<_> = events
        .recent()
        .into_iter()
        .filter_map(|e| match e.body {
            mediagraph::events::Body::StorageError(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(!errors.is_empty());
    for e in &errors {
        assert_eq!(e.error_code, "ConditionNotMet", "{e:?}");
        let message = &e.error_message;
        assert!(
            message.contains(&name) && message.contains("content"),
            "{message}"
        );
    }
    assert_eq!(
        store.read_blob(&name).await.unwrap(),
        b"the first writer's segment",
        "the first writer's blob is intact"
    );

    // The first writer re-uploading its own segment (a crash before the mark) is accepted.
    let file = std::fs::File::open(tmp.path().join("first").join(&first.sealed()[0].file_name));
    let again = store
        .put_segment(SegmentUpload {
            facts: SegmentFacts {
                asset: "shared-asset".into(),
                run: 1,
                sequence: 0,
                start: Ticks90k::from_secs(START),
                end: Ticks90k::from_secs(START + 30),
                codecs: "avc1.64001f".into(),
                extension: "mp4".into(),
            },
            file: file.unwrap(),
            bytes: 26,
        })
        .await
        .expect("same segment again");
    assert_eq!(again.name, name);
}
