//! Cameras behind Basic and Digest authentication, and TEARDOWN on stop.

use super::*;

/// The topology's credentials answer both challenge schemes a camera may send, through the
/// recorder itself (not only a player), from our test camera and from GStreamer's RTSP server:
/// each is recorded, and stopping the recorder tears every session down (TEARDOWN), so the
/// camera's session slot is free at once.
#[test]
fn records_cameras_that_require_basic_or_digest_auth_and_tears_down_on_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 4, 300, 25);
    let credentials = ["--user", "admin", "--password", "s3cret", "--auth"];
    let peers: Vec<(String, Proc, String)> = ["basic", "digest"]
        .into_iter()
        .flat_map(|scheme| {
            let args = [&credentials[..], &[scheme]].concat();
            let port = free_port();
            let ours = camera(port, &args);
            let ours_url = format!("rtsp://127.0.0.1:{port}/cam1");
            let port = free_port();
            let gst = gst_server(port, &clip, &args);
            let gst_url = format!("rtsp://127.0.0.1:{port}/stream");
            [
                (format!("test camera, {scheme}"), ours, ours_url),
                (format!("GStreamer, {scheme}"), gst, gst_url),
            ]
        })
        .collect();
    let mut recorders: Vec<(Proc, PathBuf)> = peers
        .iter()
        .enumerate()
        .map(|(i, (_, _, url))| {
            let dir = tmp.path().join(format!("t{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let topology = write_topology(&dir, url, 64, "PT30S");
            let data = dir.join("data");
            let rec = recorder(&topology, &data, &["user=admin", "password=s3cret"]);
            (rec, data)
        })
        .collect();
    for (rec, _) in &mut recorders {
        rec.wait_event("RecordingStarted", STARTUP);
    }
    std::thread::sleep(Duration::from_secs(6));

    for ((peer, server, _), (rec, data)) in peers.iter().zip(recorders) {
        let events = rec.events();
        let (code, log) = rec.stop();
        assert_eq!(code, Some(0), "{peer}: {log}");
        assert!(
            !log.contains("s3cret"),
            "{peer}: the password must not be logged"
        );
        assert!(
            diagnostics(&events, "AuthenticationError").is_empty(),
            "{peer}: {log}"
        );
        let segs = sealed(&cache_dir(&data, 1));
        let frames: usize = segs
            .iter()
            .map(|s| {
                let p = probe(&s.path);
                assert!(p.decode_errors.is_empty(), "{peer}: {}", p.decode_errors);
                assert!(p.packets[0].2, "{peer}: the first frame is not a keyframe");
                p.packets.len()
            })
            .sum();
        // ≥ 6 s were recorded after the first durable fragment, at 25 fps.
        assert!(frames >= 150, "{peer}: {frames} frames recorded");
        let server_log = server.log();
        let played = server_log.matches("session playing").count();
        let torn_down = server_log.matches("session torn down").count();
        assert!(
            played >= 1 && torn_down == played,
            "{peer}: {played} sessions played, {torn_down} torn down:\n{server_log}"
        );
    }
}
