//! `mediagraph run --http`: the HTTP front door of a recording process. Without a token it
//! refuses a non-loopback address before recording anything; with `--api-token-file` every
//! route needs the token (playback also as `?token=`), the run's assets in its store are
//! served with ranges, and the token never shows in the log.

mod record_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mediagraph::time::Ticks90k;
use mediagraph::upload::local::LocalStore;
use mediagraph::upload::{AssetStore, SegmentFacts, SegmentUpload};

use record_support::*;

const TOKEN: &str = "run-http-test-token-0123456789";

fn get(addr: SocketAddr, target: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the front door");
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
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    (
        head[9..12].parse().unwrap(),
        head,
        raw[split + 4..].to_vec(),
    )
}

/// Stores one segment-shaped blob of `asset` in the local store at `root`; returns its URL
/// path and bytes.
fn stored_blob(root: &Path, asset: &str) -> (String, Vec<u8>) {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = root.with_extension("segment");
    std::fs::write(&file, &bytes).unwrap();
    let store = LocalStore::new(root.to_owned());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let blob = runtime
        .block_on(store.put_segment(SegmentUpload {
            facts: SegmentFacts {
                asset: asset.into(),
                run: 1,
                sequence: 0,
                start: Ticks90k::from_secs(1_700_000_000),
                end: Ticks90k::from_secs(1_700_000_030),
                codecs: "avc1.64001f".into(),
                extension: "mp4".into(),
            },
            file: std::fs::File::open(&file).unwrap(),
            bytes: bytes.len() as u64,
        }))
        .unwrap();
    (
        format!("/assets/{}", blob.name.replacen('/', "/blobs/", 1)),
        bytes,
    )
}

fn front_door_address(run: &Proc) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = run.log();
        if let Some(at) = log.find("playback page and API at http://") {
            let rest = &log[at + "playback page and API at http://".len()..];
            return rest.split('/').next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no front door line:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused_before_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let topology = write_topology(tmp.path(), "rtsp://127.0.0.1:9/x", 16, "PT30S");
    let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("run")
        .arg(&topology)
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without an API token")
            && stderr.contains("--api-token-file"),
        "{stderr}"
    );
    assert!(!stderr.contains("RecordingStarted"), "{stderr}");
}

#[test]
fn with_a_token_every_route_needs_it_and_the_runs_store_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (blob, bytes) = stored_blob(&tmp.path().join("assets"), "cam1-default");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // The camera is down (nothing listens on port 9): the run keeps retrying, and serves.
    let topology = write_topology(tmp.path(), "rtsp://127.0.0.1:9/x", 16, "PT30S");
    let run = recorder_with(
        &topology,
        tmp.path(),
        &[],
        &[
            "--http",
            "127.0.0.1:0",
            "--api-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let addr = front_door_address(&run);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");

    let (status, head, _) = get(addr, "/healthz", "");
    assert_eq!(status, 401, "{head}");
    assert_eq!(get(addr, "/healthz", &bearer).0, 200);
    let (status, _, body) = get(addr, "/assets", "");
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = get(addr, &format!("/assets?token={TOKEN}"), "");
    assert_eq!(status, 200);
    assert_eq!(body, br#"{"assets":["cam1-default"]}"#);
    let (status, head, body) = get(addr, &blob, &format!("{bearer}Range: bytes=100-70099\r\n"));
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, &bytes[100..70_100]);
    let (status, _, body) = get(addr, &format!("{blob}?token={TOKEN}"), "");
    assert_eq!((status, body.len()), (200, bytes.len()));
    let (status, head, _) = get(addr, &format!("/?token={TOKEN}"), "");
    assert_eq!(status, 200);
    assert!(head.contains("set-cookie: mediagraph_playback="), "{head}");
    assert!(!head.contains(&TOKEN.to_ascii_lowercase()), "{head}");

    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
}

/// The URIs of the newest segment in a live playlist: its `#EXT-X-MAP` and its parts, and
/// whether it is complete (has `#EXTINF`).
fn newest_segment(playlist: &str) -> (String, Vec<String>, bool) {
    let uri = |line: &str| {
        let at = line.find("URI=\"").expect("a URI") + 5;
        line[at..].split('"').next().unwrap().to_owned()
    };
    let (mut map, mut parts, mut complete) = (String::new(), Vec::new(), false);
    for line in playlist.lines() {
        if line.starts_with("#EXT-X-MAP:") {
            (map, parts, complete) = (uri(line), Vec::new(), false);
        } else if line.starts_with("#EXT-X-PART:") {
            parts.push(uri(line));
        } else if line.starts_with("#EXTINF:") {
            complete = true;
        }
    }
    (map, parts, complete)
}

fn tag_value<'a>(playlist: &'a str, tag: &str) -> &'a str {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no {tag} in\n{playlist}"))
}

#[test]
fn the_live_playlist_serves_the_open_segment_from_the_cache() {
    require("ffprobe", "ffmpeg");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let topology = write_topology(
        tmp.path(),
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        64,
        "PT30S",
    );
    let run = recorder_with(&topology, tmp.path(), &[], &["--http", "127.0.0.1:0"]);
    let addr = front_door_address(&run);
    let live = "/assets/cam1-default/live.m3u8";

    // Two durable parts of the open segment, long before it is sealed or uploaded.
    let mut playlist = String::new();
    wait_until(
        "two parts of the open segment",
        Duration::from_secs(90),
        || {
            let (status, _, body) = get(addr, live, "");
            assert_eq!(
                status,
                200,
                "{}\n{}",
                String::from_utf8_lossy(&body),
                run.log()
            );
            playlist = String::from_utf8(body).unwrap();
            let (_, parts, complete) = newest_segment(&playlist);
            !complete && parts.len() >= 2
        },
    );
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-MEDIA-SEQUENCE:",
    ] {
        tag_value(&playlist, tag);
    }
    let pdt = tag_value(&playlist, "#EXT-X-PROGRAM-DATE-TIME:");
    let pdt = chrono_secs(pdt);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 60.0..=now).contains(&pdt),
        "the open segment starts within the last minute: {pdt} vs {now}\n{playlist}"
    );
    let (map, parts, _) = newest_segment(&playlist);
    assert!(
        map.contains("/live/"),
        "the open segment's init comes from the cache: {map}"
    );
    assert!(
        playlist.contains(",INDEPENDENT=YES"),
        "parts that start with a keyframe say so\n{playlist}"
    );

    // Init + the first two parts, as served, decode.
    let mut file = Vec::new();
    for uri in [&map, &parts[0], &parts[1]] {
        let (status, head, body) = get(addr, uri, "");
        assert_eq!(status, 200, "{uri}: {head}");
        assert!(head.contains("content-type: video/mp4"), "{head}");
        file.extend_from_slice(&body);
    }
    let (status, head, ranged) = get(addr, &parts[1], "Range: bytes=0-99\r\n");
    assert_eq!((status, ranged.len()), (206, 100), "{head}");
    let path = tmp.path().join("live.mp4");
    std::fs::write(&path, &file).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = probed.split(',').collect();
    assert_eq!(
        fields[..2],
        ["640", "360"],
        "{probed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: u64 = fields[2].parse().unwrap();
    assert!(
        frames >= 25,
        "two parts hold at least a second of video: {frames} frames"
    );

    // A blocking reload for the next part answers once it is there.
    let msn: u64 = tag_value(&playlist, "#EXT-X-MEDIA-SEQUENCE:")
        .parse()
        .unwrap();
    let open_msn = msn + playlist.matches("#EXT-X-MAP:").count() as u64 - 1;
    let next = parts.len();
    let (status, _, body) = get(
        addr,
        &format!("{live}?_HLS_msn={open_msn}&_HLS_part={next}"),
        "",
    );
    assert_eq!(status, 200);
    let later = String::from_utf8(body).unwrap();
    let (later_map, later_parts, _) = newest_segment(&later);
    assert!(
        later_map != map || later_parts.len() > next,
        "the blocking reload returned without part {next}:\n{later}"
    );

    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// Seconds since the epoch of an RFC 3339 UTC instant with milliseconds
/// (`2026-12-08T00:10:21.123Z`), as the playlist writes them.
fn chrono_secs(text: &str) -> f64 {
    let t = mediagraph::playback::available::parse_instant("pdt", text)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    t.0 as f64 / 90_000.0
}
