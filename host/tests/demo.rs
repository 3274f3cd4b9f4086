//! The README's first command, `mediagraph demo`: it records the built-in test camera with the
//! shipped topology, uploads playable segments to the local asset store and serves the playback
//! page, availableMedia, an HLS playlist ffmpeg decodes, and blob bytes with Range support.

mod record_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mediagraph::playback::available::parse_instant;
use mediagraph::time::Ticks90k;

use record_support::*;

#[test]
fn demo_records_the_test_camera_into_the_local_asset_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo-data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .args(["--http", "127.0.0.1:0"]);
    cmd.env("RUST_LOG", "info");
    let mut demo = Proc::spawn(cmd);
    let page = page_address(&mut demo);
    demo.wait_event("RecordingStarted", Duration::from_secs(120));
    let asset = data.join("assets/CVRToAsset-default");
    let blobs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&asset)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The first PT30S segment is sealed after ~30 s and then uploaded.
    wait_until(
        "the first uploaded segment",
        Duration::from_secs(90),
        || !blobs().is_empty(),
    );
    check_playback(page, &asset);
    check_service(page);
    let (code, log) = demo.stop();
    assert_eq!(code, Some(0), "{log}");

    let uploaded = blobs();
    assert!(!uploaded.is_empty(), "{log}");
    let total: f64 = uploaded
        .iter()
        .map(|p| {
            let probe = probe(p);
            assert!(
                probe.decode_errors.trim().is_empty(),
                "{}: {}",
                p.display(),
                probe.decode_errors
            );
            assert!(
                probe.packets.first().is_some_and(|k| k.2),
                "{}: no keyframe first",
                p.display()
            );
            probe.duration()
        })
        .sum();
    assert!(total >= 29.0, "uploaded {total:.1} s of video");
    assert!(data.join("topology.json").exists());
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 GET (no client-side path normalization, so traversal attempts reach the
/// server as written).
fn get(addr: SocketAddr, target: &str, extra: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the playback server");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[split + 4..].to_vec();
    let answer = Answer {
        status,
        headers,
        body,
    };
    if let Some(len) = answer.header("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), answer.body.len(), "{target}");
    }
    answer
}

/// `(file name, startutc, endutc)` of the uploaded blobs, in time order.
fn uploaded(asset: &Path) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = std::fs::read_dir(asset)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mp4"))
        .map(|n| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(asset.join(format!("{n}.json"))).unwrap())
                    .unwrap();
            let field = |k: &str| meta[k].as_str().unwrap().to_owned();
            (n, field("startutc"), field("endutc"))
        })
        .collect();
    out.sort();
    out
}

fn check_playback(page: SocketAddr, asset: &Path) {
    let html = get(page, "/", "");
    assert_eq!(html.status, 200);
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let text = html.text();
    assert!(
        text.contains("<video") && text.contains("availableMedia"),
        "{text}"
    );
    assert!(
        !text.contains("src=\"http") && !text.contains("href=\"http"),
        "the page must work offline"
    );

    // One range from the first blob's start to the last blob's end (retried if an upload
    // lands between the listing and the request).
    let base = "/assets/CVRToAsset-default";
    let (blobs, ranges) = (0..5)
        .find_map(|_| {
            let before = uploaded(asset);
            let a = get(
                page,
                &format!(
                    "{base}/availableMedia?precision=full&startTime=2020-01-01T00:00:00Z&endTime=2020-01-02T00:00:00Z"
                ),
                "",
            );
            assert_eq!(a.status, 200, "{}", a.text());
            assert_eq!(a.text(), r#"{"timeRanges":[]}"#);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let day = |secs: i64| Ticks90k::from_secs(secs).to_rfc3339_millis();
            let a = get(
                page,
                &format!(
                    "{base}/availableMedia?precision=full&startTime={}&endTime={}",
                    day(now - 3600),
                    day(now + 3600)
                ),
                "",
            );
            assert_eq!(a.status, 200, "{}", a.text());
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            (uploaded(asset) == before).then(|| (before, v["timeRanges"].clone()))
        })
        .expect("the asset kept changing under availableMedia");
    let ranges = ranges.as_array().unwrap();
    assert_eq!(ranges.len(), 1, "one recording without holes: {ranges:?}");
    assert_eq!(ranges[0]["start"], blobs[0].1.as_str());
    assert_eq!(ranges[0]["end"], blobs.last().unwrap().2.as_str());

    // A rule broken → 400 naming it.
    let bad = get(
        page,
        &format!("{base}/availableMedia?precision=day&startTime=2020-01-01&endTime=2020-03-01"),
        "",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("31 days"), "{}", bad.text());

    // The HLS playlist of the recorded range decodes in ffmpeg without errors, and lasts as
    // long as the range (± one segment: playlists are cut at blob boundaries).
    let (start, end) = (
        ranges[0]["start"].as_str().unwrap(),
        ranges[0]["end"].as_str().unwrap(),
    );
    let url = format!(
        "http://{page}{base}/manifest(format=m3u8-aapl,startTime={start},endTime={end}).m3u8"
    );
    let playlist = get(page, &url[url.find(base).unwrap()..], "");
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert!(
        playlist.text().contains("#EXT-X-MAP:URI="),
        "{}",
        playlist.text()
    );
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-v", "error", "-i", &url])
        .args(["-map", "0:v", "-progress", "pipe:1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (Debian package ffmpeg)");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "ffmpeg: {errors}"
    );
    let frames: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .next_back()
        .and_then(|f| f.trim().parse().ok())
        .expect("ffmpeg progress reports frames");
    let decoded = frames / 25.0; // the test camera's rate
    let secs = |t: &str| parse_instant("t", t).unwrap().0 as f64 / TICKS as f64;
    let range = secs(end) - secs(start);
    assert!(
        range >= 29.0 && (decoded - range).abs() <= 31.0,
        "decoded {decoded:.2} s of a {range:.2} s range"
    );

    // Blob bytes with Range → 206 and exactly those bytes.
    let (file, _, _) = &blobs[0];
    let bytes = std::fs::read(asset.join(file)).unwrap();
    let part = get(
        page,
        &format!("{base}/blobs/{file}"),
        "Range: bytes=100-1099\r\n",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-type"), Some("video/mp4"));
    assert_eq!(
        part.header("content-range").map(str::to_owned),
        Some(format!("bytes 100-1099/{}", bytes.len()))
    );
    assert_eq!(part.body, &bytes[100..1100]);
    let whole = get(page, &format!("{base}/blobs/{file}"), "");
    assert_eq!((whole.status, whole.body.len()), (200, bytes.len()));

    // Nothing outside the store: traversal attempts are refused, raw or percent-encoded.
    for target in [
        "/assets/../../topology.json",
        "/assets/CVRToAsset-default/blobs/..%2F..%2Ftopology.json",
        "/assets/..%2F..%2F/availableMedia?precision=year",
        "/assets/CVRToAsset-default/blobs/%2e%2e/init.mp4",
    ] {
        let a = get(page, target, "");
        assert!(
            a.status == 400 || a.status == 404,
            "{target}: {} {}",
            a.status,
            a.text()
        );
        assert!(!a.text().contains("@apiVersion"), "{target} leaked a file");
    }
}

/// The demo is the service: its instance was set and activated through the direct methods,
/// and the page's asset list names it with its state.
fn check_service(page: SocketAddr) {
    let assets = get(page, "/assets", "");
    assert_eq!(assets.status, 200);
    let list: serde_json::Value = serde_json::from_slice(&assets.body).unwrap();
    assert_eq!(
        list["instances"],
        serde_json::json!([{"name": "default", "state": "Active", "assets": ["CVRToAsset-default"]}]),
        "{list}"
    );
    let status = get(page, "/status", "");
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["instances"][0]["state"], "Active", "{status}");
    assert_eq!(
        status["instances"][0]["sinks"][0]["camera"]["connected"], true,
        "{status}"
    );
}
