//! One camera session, many sinks: an asset sink and a file sink of one source record a
//! camera that allows a single session.

use super::file_sink::{check_playable, mp4_files};
use super::*;

#[test]
fn an_asset_sink_and_a_file_sink_share_the_one_session_the_camera_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--max-sessions", "1"]);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/file-sink");
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("topology.json")).unwrap())
            .unwrap();
    t["properties"]["sinks"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "@type": "#Microsoft.Media.MediaGraphAssetSink",
            "name": "assetSink",
            "assetNamePattern": "cam-${System.GraphInstanceName}",
            "segmentLength": "PT30S",
            "localMediaCacheMaximumSizeMiB": "64",
            "localMediaCachePath": "/var/lib/mediagraph/cache",
            "inputs": [{"nodeName": "rtspSource"}]
        }));
    let topology = tmp.path().join("topology.json");
    std::fs::write(&topology, t.to_string()).unwrap();
    let data = tmp.path().join("data");
    let url = format!("rtspUrl=rtsp://127.0.0.1:{port}/cam1");
    let mut rec = recorder(&topology, &data, &[&url]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(10));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let events = events_in(&log);
    let sessions = diagnostics(&events, "MediaSessionEstablished");
    assert_eq!(sessions.len(), 1, "one session for both sinks: {log}");
    assert!(
        diagnostics(&events, "ProtocolError").is_empty(),
        "the camera refused nothing: {log}"
    );
    let started: Vec<(&str, &str)> = of_type(
        &events,
        "Microsoft.Media.Graph.Operational.RecordingStarted",
    )
    .iter()
    .map(|e| {
        (
            e["subject"].as_str().unwrap(),
            e["body"]["outputType"].as_str().unwrap(),
        )
    })
    .collect();
    assert!(
        started.contains(&("/graphInstances/default/sinks/assetSink", "assetName"))
            && started.contains(&("/graphInstances/default/sinks/fileSink", "filePath")),
        "{started:?}"
    );

    let files = mp4_files(&data.join("var/media/default-fileSink"));
    assert_eq!(files.len(), 1, "{files:?}");
    check_playable(&files[0], 8.0);
    let segments: Vec<PathBuf> =
        mp4_files(&data.join("var/lib/mediagraph/cache/RecordToFiles.default.assetSink"));
    assert_eq!(segments.len(), 1, "{segments:?}");
    check_playable(&segments[0], 8.0);
}
