//! `--unsupported-nodes`: a CVR topology with a motion-detection side branch is refused by
//! default and recorded without its analytics nodes with `ignore`, which names each of them in
//! an event once per start.

use super::*;

/// Nothing listens there: the camera is down, which is enough to see what starts.
const DOWN_CAMERA: &str = "rtspUrl=rtsp://127.0.0.1:1/cam1";

#[test]
fn analytics_nodes_are_refused_by_default_and_reported_when_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let topology = corpus("cvr-with-motion@2.0.json");
    let data = tmp.path().join("data");

    let refused = recorder(&topology, &data, &[DOWN_CAMERA]);
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
        &[DOWN_CAMERA],
        &["--unsupported-nodes", "ignore"],
    );
    run.wait_event("Mediagraph.Diagnostics.NodeNotRun", STARTUP);
    // The sink starts and tries the camera: the graph runs without the nodes.
    run.wait_event("NetworkError", STARTUP);
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
}
