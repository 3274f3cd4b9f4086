//! Clip export from real stored segments: the built-in test camera (video and AAC audio) is
//! recorded with PT30S into the local asset store for about 45 s (two segments), then
//! `mediagraph export` cuts a range across the segment boundary, and ffprobe/ffmpeg check the
//! file. Ranges without media and ranges over the maximum are refused.

mod record_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use record_support::*;

/// (start, end) in 90 kHz ticks of each stored segment, in time order.
fn stored_spans(asset_dir: &Path) -> Vec<(i64, i64)> {
    let mut names: Vec<_> = files(asset_dir)
        .into_iter()
        .filter(|n| n.ends_with(".mp4.json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(asset_dir.join(n)).unwrap()).unwrap();
            let tick = |k: &str| meta[k].as_str().unwrap().parse::<i64>().unwrap();
            (tick("start"), tick("end"))
        })
        .collect()
}

fn iso(ticks: i64) -> String {
    mediagraph::time::Ticks90k(ticks).to_rfc3339_millis()
}

fn export(store: &str, start: &str, end: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .args([
            "export",
            "cam1-default",
            "--start",
            start,
            "--end",
            end,
            "-o",
        ])
        .arg(out)
        .args(["--asset-store", store])
        .env_remove("MEDIAGRAPH_AZURE_CONNECTION_STRING")
        .output()
        .unwrap()
}

/// A raw HTTP/1.0 GET (so the answer is not chunked): status, head, body.
fn get(addr: SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the front door");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// `ffprobe` entries of one section as `key=value` lines.
fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_clip_across_a_segment_boundary_plays_with_audio_and_the_right_length() {
    require("ffprobe", "ffmpeg");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--audio"]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    select_audio_and_video(&topology);
    let data = tmp.path().join("data");
    let store_dir = tmp.path().join("store");
    let store = format!("file://{}", store_dir.display());
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut rec = recorder_with(
        &topology,
        &data,
        &[],
        &["--asset-store", &store, "--http", &http.to_string()],
    );
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    // The first segment is uploaded after 30 s; 14 s more make a second one on stop.
    rec.wait_event("RecordingAvailable", Duration::from_secs(90));
    let started = std::time::Instant::now();

    // Over HTTP, while recording goes on: 10 s inside the first segment.
    let first = stored_spans(&store_dir.join("cam1-default"))[0];
    let (start, end) = (first.0 + 5 * TICKS + TICKS / 4, first.0 + 15 * TICKS);
    let url = |s: i64, e: i64| {
        format!(
            "/assets/cam1-default/export.mp4?startTime={}&endTime={}",
            iso(s),
            iso(e)
        )
    };
    let (status, head, body) = get(http, &url(start, end));
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: video/mp4"), "{head}");
    assert!(lower.contains("x-mediagraph-gaps: closed"), "{head}");
    let served = tmp.path().join("served.mp4");
    std::fs::write(&served, &body).unwrap();
    let format = ffprobe(&served, &["-show_entries", "format=duration"]);
    let duration: f64 = format
        .trim()
        .trim_start_matches("duration=")
        .parse()
        .unwrap();
    assert!((9.7..=11.1).contains(&duration), "duration {duration}");
    let probe_served = probe(&served);
    assert!(
        probe_served.decode_errors.is_empty(),
        "{}",
        probe_served.decode_errors
    );
    assert!(probe_served.packets[0].2, "the first frame is a keyframe");
    // No media an hour before: 404 with LVA's error shape; over 24 h: 400.
    let (status, _, body) = get(http, &url(first.0 - 3600 * TICKS, first.0 - 3000 * TICKS));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "NoMediaInRange", "{error}");
    let (status, _, body) = get(http, &url(start, start + 24 * 3600 * TICKS + TICKS));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "TimeRangeTooLong", "{error}");

    std::thread::sleep(Duration::from_secs(14).saturating_sub(started.elapsed()));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let spans = stored_spans(&store_dir.join("cam1-default"));
    assert!(spans.len() >= 2, "two segments expected: {spans:?}");
    let boundary = spans[0].1;
    assert!(spans[1].1 - boundary >= 8 * TICKS, "{spans:?}");
    // 10.5 s before the boundary to 8 s after it: 18.5 s, starting at the keyframe before.
    let (start, end) = (boundary - 10 * TICKS - TICKS / 2, boundary + 8 * TICKS);
    let clip = tmp.path().join("clip.mp4");
    let out = export(&store, &iso(start), &iso(end), &clip);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gaps closed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The test camera's GOP is 1 s: the clip is 18.5 s plus at most one GOP.
    let format = ffprobe(&clip, &["-show_entries", "format=duration"]);
    let duration: f64 = format
        .trim()
        .trim_start_matches("duration=")
        .parse()
        .unwrap();
    assert!((18.4..=19.6).contains(&duration), "duration {duration}");
    let streams = ffprobe(&clip, &["-show_entries", "stream=codec_type"]);
    assert!(streams.contains("codec_type=video"), "{streams}");
    assert!(
        streams.contains("codec_type=audio"),
        "audio was recorded: {streams}"
    );
    let probe = probe(&clip);
    assert!(probe.decode_errors.is_empty(), "{}", probe.decode_errors);
    assert!(probe.packets[0].2, "the first frame is a keyframe");
    assert!(probe.first_pts().abs() < 0.001, "{}", probe.first_pts());
    assert!(
        (probe.duration() - duration).abs() < 0.1,
        "video {} s, file {duration} s",
        probe.duration()
    );
    // One timeline across the boundary: no frame further from the next than 1.5 frames.
    let mut pts: Vec<f64> = probe.packets.iter().map(|p| p.0).collect();
    pts.sort_by(f64::total_cmp);
    let widest = pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(widest < 0.06, "a hole of {widest} s in the video");

    // A range with no media, and a range over the maximum, are refused and write nothing.
    let none = tmp.path().join("none.mp4");
    let before = spans[0].0 - 3600 * TICKS;
    let out = export(&store, &iso(before), &iso(before + 60 * TICKS), &none);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("has no media between"),
        "{err}"
    );
    assert!(!none.exists());
    let out = export(&store, &iso(start), &iso(start + 25 * 3600 * TICKS), &none);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("maximum allowed time range for an export is 24 hours"),
        "{err}"
    );
    assert!(!none.exists());
}
