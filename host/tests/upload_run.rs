//! `mediagraph run` uploads what it records: the built-in test camera is recorded with PT30S
//! into the local asset store; the first upload emits RecordingAvailable, stopping flushes the
//! last segment, and every blob in the asset is a decodable segment of the cache.

mod record_support;

use std::time::Duration;

use record_support::*;

#[test]
fn run_uploads_every_sealed_segment_to_the_local_store_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let store = tmp.path().join("store");
    let store_url = format!("file://{}", store.display());
    let mut rec = recorder_with(&topology, &data, &[], &["--asset-store", &store_url]);
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    rec.wait_event("RecordingAvailable", Duration::from_secs(90));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let segs = sealed(&cache_dir(&data, 1));
    let asset = store.join("cam1-default");
    let mut blobs: Vec<_> = files(&asset)
        .into_iter()
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    blobs.sort();
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {segs:?}");
    assert_eq!(
        blobs.len(),
        segs.len(),
        "every sealed segment uploaded once, including the last: {blobs:?}\n{log}"
    );
    for (blob, seg) in blobs.iter().zip(&segs) {
        let bytes = std::fs::read(asset.join(blob)).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(&seg.path).unwrap(),
            "{blob} is {:?}",
            seg.path
        );
        let probe = probe(&asset.join(blob));
        assert!(
            probe.decode_errors.is_empty(),
            "{blob}: {}",
            probe.decode_errors
        );
        assert!(probe.duration() > 0.0);
    }
    let available = log
        .matches("Microsoft.Media.Graph.Operational.RecordingAvailable")
        .count();
    assert_eq!(available, 1, "{log}");
}
