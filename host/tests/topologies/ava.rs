//! AVA's video-sink topologies record unchanged, their parameters bound by a live pipeline
//! (AVA's instance document), into the video they name.

use super::file_sink::{check_playable, mp4_files};
use super::*;

/// Records `topology` (a corpus file) from `url` for about 10 s, bound by a live pipeline
/// named `pipeline`; returns the recorder's log, the video's cached segments and the
/// directory holding them.
fn record_ava(
    topology: &str,
    pipeline: &str,
    url: &str,
) -> (String, Vec<PathBuf>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let path = corpus(topology);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let name = t["name"].as_str().unwrap();
    let instance = tmp.path().join("live-pipeline.json");
    let doc = serde_json::json!({
        "@apiVersion": "1.1",
        "name": pipeline,
        "properties": {
            "topologyName": name,
            "parameters": [{"name": "rtspUrl", "value": url}]
        }
    });
    std::fs::write(&instance, doc.to_string()).unwrap();
    let data = tmp.path().join("data");
    let mut rec = recorder_with(
        &path,
        &data,
        &[],
        &["--instance", instance.to_str().unwrap()],
    );
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(10));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let cache = data.join(format!(
        "var/lib/videoanalyzer/tmp/{name}.{pipeline}.videoSink"
    ));
    (log, mp4_files(&cache), tmp)
}

/// The three Recording* events of the video sink, each naming the video.
fn check_video_events(log: &str, pipeline: &str, video: &str) {
    let events = events_in(log);
    for kind in ["RecordingStarted", "RecordingAvailable", "RecordingStopped"] {
        let e = of_type(
            &events,
            &format!("Microsoft.Media.Graph.Operational.{kind}"),
        );
        assert_eq!(e.len(), 1, "{kind}: {log}");
        assert_eq!(
            e[0]["subject"],
            format!("/graphInstances/{pipeline}/sinks/videoSink")
        );
        assert_eq!(
            e[0]["body"],
            serde_json::json!({"outputType": "videoName", "outputLocation": video})
        );
    }
}

#[test]
fn ava_cvr_video_sink_records_the_test_camera_into_its_video() {
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let (log, segments, _tmp) = record_ava("ava/cvr-video-sink.json", "cam-video", &url);
    check_video_events(&log, "cam-video", "sample-cvr-video-sink");
    assert_eq!(segments.len(), 1, "{segments:?}");
    check_playable(&segments[0], 8.0);
}

#[test]
fn ava_audio_video_records_both_tracks() {
    let port = free_port();
    let _camera = camera(port, &["--audio"]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let (log, segments, _tmp) = record_ava("ava/audio-video.json", "cam-av", &url);
    check_video_events(&log, "cam-av", "sample-audio-video");
    assert_eq!(segments.len(), 1, "{segments:?}");
    check_playable(&segments[0], 8.0);
    let streams = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&segments[0])
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&streams.stdout);
    assert!(
        streams.contains("h264,video") && streams.contains("aac,audio"),
        "{streams}"
    );
}
