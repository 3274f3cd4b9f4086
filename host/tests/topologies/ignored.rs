//! `--unsupported-nodes`: a CVR topology with a motion-detection side branch is refused by
//! default, and with `ignore` records the GStreamer camera without its analytics nodes, naming
//! each of them in an event once per start.

use super::file_sink::{check_playable, mp4_files};

use super::*;

#[test]
fn analytics_nodes_are_refused_by_default_and_reported_when_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 10, 500, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtspUrl=rtsp://127.0.0.1:{port}/stream");
    let topology = corpus("cvr-with-motion@2.0.json");
    let data = tmp.path().join("data");

    let refused = recorder(&topology, &data, &[&url]);
    let (code, log) = refused.wait_exit(STARTUP);
    assert_eq!(code, Some(2), "{log}");
    for target in ["$.properties.processors[0]", "$.properties.sinks[0]"] {
        assert!(
            log.contains(&format!("{target}: NodeTypeNotSupported")),
            "{target}: {log}"
        );
    }

    let mut run = recorder_with(
        &topology,
        &data,
        &[&url],
        &["--unsupported-nodes", "ignore"],
    );
    run.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(10));
    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "{log}");
    let events = events_in(&log);
    let not_run: Vec<(&str, &str, &str)> = of_type(&events, "Mediagraph.Diagnostics.NodeNotRun")
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap(),
                e["body"]["nodeName"].as_str().unwrap(),
                e["body"]["nodeType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        not_run,
        [
            (
                "/graphInstances/default/processors/motionDetection",
                "motionDetection",
                "#Microsoft.Media.MediaGraphMotionDetectionProcessor"
            ),
            (
                "/graphInstances/default/sinks/hubSink",
                "hubSink",
                "#Microsoft.Media.MediaGraphIoTHubMessageSink"
            ),
        ],
        "one event per ignored node and start"
    );
    let segments = mp4_files(
        &data.join("var/lib/azuremediaservices/tmp/CVRWithMotionDetection.default.assetSink"),
    );
    assert_eq!(segments.len(), 1, "{segments:?}");
    check_playable(&segments[0], 8.0);
    let started = of_type(
        &events,
        "Microsoft.Media.Graph.Operational.RecordingStarted",
    );
    assert_eq!(
        started[0]["body"],
        serde_json::json!({"outputType": "assetName", "outputLocation": "sampleAsset-CVRWithMotionDetection-default"})
    );
}
