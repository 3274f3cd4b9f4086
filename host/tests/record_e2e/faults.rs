//! Bad input: peers that answer garbage, video without keyframes, codecs that cannot be
//! recorded, a formatter plugin that answers nonsense. Each is reported and recording goes on
//! where it can.

use super::*;

#[test]
fn bad_input_gives_diagnostics_retries_and_leaves_no_files() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 4, 300, 25);
    // 1: nothing listens. 2: a camera that wants another password. 3: an HTTP server.
    // 4: a server that answers with garbage.
    let closed = free_port();
    let auth_port = free_port();
    let _auth = gst_server(
        auth_port,
        &clip,
        &["--user", "admin", "--password", "right"],
    );
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let serve = |l: std::net::TcpListener, reply: &'static [u8]| {
        std::thread::spawn(move || {
            for mut s in l.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            }
        })
    };
    let http_port = http.local_addr().unwrap().port();
    let garbage_port = garbage.local_addr().unwrap().port();
    serve(http, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    serve(
        garbage,
        b"\x00\xff\x13garbage\x01\x02\r\n\r\n\xfe\xfe RTSP/9 ???\r\n\r\n",
    );
    let urls = [
        format!("rtsp://127.0.0.1:{closed}/x"),
        format!("rtsp://127.0.0.1:{auth_port}/stream"),
        format!("rtsp://127.0.0.1:{http_port}/x"),
        format!("rtsp://127.0.0.1:{garbage_port}/x"),
    ];
    let data = tmp.path().join("data");
    let mut recs = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let dir = tmp.path().join(format!("t{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let topology = write_topology(&dir, url, 64, "PT30S");
        let data = data.join(format!("d{i}"));
        recs.push((
            recorder(&topology, &data, &["user=admin", "password=wrong"]),
            data,
        ));
    }
    let kinds = [
        "NetworkError",
        "AuthenticationError",
        "ProtocolError",
        "ProtocolError",
    ];
    for ((rec, _), kind) in recs.iter_mut().zip(kinds) {
        rec.wait_event(kind, STARTUP);
    }
    std::thread::sleep(Duration::from_secs(8));
    for ((mut rec, data), kind) in recs.into_iter().zip(kinds) {
        assert!(
            rec.is_running(),
            "the recorder must survive bad input:\n{}",
            rec.log()
        );
        let events = rec.events();
        let (code, log) = rec.stop();
        assert_eq!(code, Some(0), "{log}");
        assert!(
            !log.contains("wrong"),
            "the password must not be logged:\n{log}"
        );
        let found: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["eventType"] == format!("Microsoft.Media.Graph.Diagnostics.{kind}"))
            .collect();
        // Reported with what went wrong, and retried with backoff: ≥ 2 attempts, far fewer
        // than a busy loop would make.
        assert!(
            found.len() >= 2 && found.len() <= 10,
            "{} {kind} events: {events:#?}\n{log}",
            found.len()
        );
        assert!(
            found
                .iter()
                .all(|e| e["subject"] == "/graphInstances/default/sources/cam1")
        );
        if kind == "AuthenticationError" {
            assert_eq!(found[0]["body"]["errorCode"], "401");
        }
        // Backoff, not a fixed retry interval: each pause is longer than the one before.
        let times: Vec<f64> = found.iter().map(|e| event_secs(e)).collect();
        let pauses: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            pauses[0] >= 0.3 && pauses.windows(2).all(|p| p[1] > p[0]),
            "{kind}: pauses between attempts do not grow: {pauses:.3?}"
        );
        let names = files(&cache_dir(&data, 1));
        assert_eq!(names, vec!["gaps.log", "uploaded.log"], "leaked files");
    }
}

#[test]
fn video_without_keyframes_is_reported_once_and_the_session_waits_for_one() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    // Video flows, but every keyframe is left out: nothing can start a run.
    let url = format!("rtsp://127.0.0.1:{port}/fault/nokeyframe");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("MediaSessionEstablished", STARTUP);
    let established = Instant::now();
    rec.wait_event("\"code\":\"NoKeyframe\"", Duration::from_secs(45));
    let reported = established.elapsed();
    // After the 30 s keyframe wait, not before: waiting for a keyframe is normal.
    assert!(
        reported >= Duration::from_secs(29),
        "reported after {reported:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches("\"code\":\"NoKeyframe\"").count(), 1, "{log}");
    // Frames keep coming, so the session is neither stalled nor retried.
    assert_eq!(log.matches("MediaSessionEstablished").count(), 1, "{log}");
    assert!(!log.contains("RecordingStarted"), "{log}");
    assert_eq!(
        files(&cache_dir(&data, 1)),
        vec!["gaps.log", "uploaded.log"]
    );
}

/// A formatter plugin that answers nonsense (fmt_hostile leaves every sample out of its plan)
/// is replaced by the default format-cmaf at the next keyframe: recording goes on in playable
/// segments and the fault is reported naming the plugin.
#[test]
fn a_failing_formatter_plugin_is_replaced_and_recording_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&topology).unwrap()).unwrap();
    json["properties"]["sinks"][0]["plugins"] = serde_json::json!({"formatter": "fmt_hostile"});
    std::fs::write(&topology, json.to_string()).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(
        hostile_support::hostile_dir().join("fmt_hostile.wasm"),
        data.join("plugins/fmt_hostile.wasm"),
    )
    .unwrap();

    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(40));
    let faults: Vec<serde_json::Value> = rec
        .events()
        .into_iter()
        .filter(|e| e["eventType"] == "Mediagraph.Diagnostics.PluginFault")
        .collect();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!faults.is_empty(), "no PluginFault event: {log}");
    assert!(
        faults.iter().all(|e| e["body"]["plugin"] == "fmt_hostile"),
        "{faults:?}"
    );

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    // Lost: at most the first fragment (≤ 2 s) and the wait for the next keyframe (≤ 1 GOP).
    assert!(total >= 34.0, "recorded {total:.1} s of ~40 s");
}

/// A camera sending H.264 video with G.711 (PCMU) audio to a sink that selects audio: the
/// audio track is reported by codec and track, and the video is recorded on its own.
#[test]
fn g711_audio_is_reported_and_the_h264_video_is_still_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = gst_launch_server(
        port,
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0 \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 \
         audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! mulawenc \
         ! rtppcmupay name=pay1 )",
    );
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    select_audio_and_video(&topology);
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    // One PT30S segment seals while recording; the rest is sealed at stop.
    std::thread::sleep(Duration::from_secs(36));
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let format_errors = diagnostics(&events, "MediaFormatError");
    let sessions = diagnostics(&events, "MediaSessionEstablished").len();
    assert!(sessions >= 1, "{log}");
    assert_eq!(
        format_errors.len(),
        sessions,
        "one report per session, not per packet:\n{log}"
    );
    for e in &format_errors {
        let body = &e["body"];
        assert_eq!(body["code"], "UnsupportedCodec", "{e}");
        assert_eq!(body["mediaType"], "audio", "{e}");
        assert_eq!(body["encoding"], "PCMU", "{e}");
        assert_eq!(body["track"], 1, "{e}");
        let message = body["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("audio track 1 (PCMU, 8000 Hz)"),
            "{message}"
        );
        assert_eq!(e["subject"], "/graphInstances/default/sources/cam1");
    }

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 34.0, "recorded {total:.1} s of ~36 s");
    for s in &segs {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name"])
            .args(["-of", "csv=p=0"])
            .arg(&s.path)
            .output()
            .unwrap();
        let codecs = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            codecs.split_whitespace().collect::<Vec<_>>(),
            ["h264"],
            "{}",
            s.path.display()
        );
    }
    assert!(
        files(&dir)
            .iter()
            .all(|f| !f.ends_with(".open") && !f.ends_with(".journal")),
        "{:?}",
        files(&dir)
    );
}

/// A camera offering only MJPEG: each attempt reports that nothing is recordable (naming the
/// track and codec), attempts back off exponentially, and the cache stays empty.
#[test]
fn an_mjpeg_only_camera_is_reported_and_retried_with_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = gst_launch_server(
        port,
        "( videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 \
         ! jpegenc ! rtpjpegpay name=pay0 pt=26 )",
    );
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("MediaFormatError", STARTUP);
    std::thread::sleep(Duration::from_secs(14));
    assert!(
        rec.is_running(),
        "the recorder must survive an unrecordable camera:\n{}",
        rec.log()
    );
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let attempts = diagnostics(&events, "MediaFormatError");
    for e in &attempts {
        assert_eq!(e["body"]["code"], "UnsupportedCodec", "{e}");
        let message = e["body"]["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("nothing recordable") && message.contains("video track 0 (JPEG"),
            "{message}"
        );
    }
    // Backoff 0.5 s, 1 s, 2 s, 4 s, 8 s (±25 %): about 5 attempts in the first 14 s, each
    // pause longer than the one before; a hot loop would make hundreds.
    assert!(
        (4..=7).contains(&attempts.len()),
        "{} attempts in ~14 s:\n{log}",
        attempts.len()
    );
    let times: Vec<f64> = attempts.iter().map(|e| event_secs(e)).collect();
    let pauses: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{} attempts, pauses (s): {pauses:.3?}", attempts.len());
    assert!(pauses[0] >= 0.3, "first retry after {:.3} s", pauses[0]);
    assert!(
        pauses.windows(2).all(|p| p[1] > p[0]),
        "pauses between attempts do not grow: {pauses:.3?}"
    );
    assert!(
        diagnostics(&events, "MediaSessionEstablished").is_empty(),
        "no session may be played:\n{log}"
    );
    assert!(!log.contains("RecordingStarted"), "{log}");
    assert_eq!(
        files(&cache_dir(&data, 1)),
        vec!["gaps.log", "uploaded.log"],
        "leaked files"
    );
}
