//! Healthy cameras: the GStreamer peer and the test camera recorded into 30 s segments.

use super::*;

#[test]
fn records_the_gstreamer_peer_into_30s_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 10, 500, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(76));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("Microsoft.Media.Graph.Diagnostics.MediaSessionEstablished"),
        "{log}"
    );
    assert!(log.contains("progress"), "progress lines expected:\n{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(
        segs.len() >= 3,
        "expected ≥ 3 segments (30 + 30 + rest): {:?}",
        files(&dir)
    );
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "one run expected: {segs:?}"
    );
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 70.0, "recorded {total:.1} s, expected ≥ 70 s");
    assert!(
        files(&dir)
            .iter()
            .all(|f| !f.ends_with(".open") && !f.ends_with(".journal")),
        "{:?}",
        files(&dir)
    );
}

#[test]
fn records_the_test_camera_into_30s_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(76));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 3, "expected ≥ 3 segments: {:?}", files(&dir));
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 70.0, "recorded {total:.1} s, expected ≥ 70 s");
}
