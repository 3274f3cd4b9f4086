//! A camera cannot take the recorder's memory: `mediagraph run` against misbehaving paths of
//! the test camera. Needs nothing but the binary.

mod record_support;

use std::time::Duration;

use record_support::*;

/// An SPS declaring a reorder depth of 1 000 000 pictures: held frames would be the whole
/// run. The depth is clamped to 16 with a diagnostic, and the camera is recorded.
#[test]
fn a_reorder_depth_past_the_codec_limit_is_clamped_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--codec", "h265"]);
    let url = format!("rtsp://127.0.0.1:{port}/fault/deepreorder");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let mut rec = recorder(&topology, &tmp.path().join("data"), &[]);
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let clamped: Vec<_> = diagnostics(&events, "MediaFormatError")
        .into_iter()
        .filter(|e| e["body"]["code"] == "ReorderDepthTooLarge")
        .collect();
    assert_eq!(clamped.len(), 1, "{events:#?}");
    let message = clamped[0]["body"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("1000000") && message.contains("16"),
        "{message}"
    );
}
