//! `mediagraph run` end to end: real RTSP peers on loopback (GStreamer's RTSP server and the
//! built-in test camera), the real binary, kill -9, and ffprobe/ffmpeg checks of every segment.
//! Needs ffmpeg/ffprobe, python3-gi and gir1.2-gst-rtsp-server-1.0 (`.ci/run` installs them).

mod hostile_support;
mod record_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use record_support::*;

const FRAME: f64 = 0.04; // 25 fps
const GOP: f64 = 1.0;
/// Bound on start-up to the first recorded fragment (plugin compilation in debug builds).
const STARTUP: Duration = Duration::from_secs(120);
/// An Azure container URL nothing listens on: uploads fail, recording goes on.
const UNREACHABLE_STORE: &str = "http://127.0.0.1:1/devstoreaccount1/assets?sv=2022-11-02&sig=x";

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

#[test]
fn camera_reboot_starts_a_new_run_and_records_the_outage_as_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 10, 500, 25);
    let port = free_port();
    let server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(10));

    // The camera reboots: its sessions drop and the port refuses connections for a while.
    server.crash();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let _server = gst_server(port, &clip, &[]);
    let outage = down.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(12));
    // A reconnect is a gap inside one recording, not a new recording (LVA: RecordingStarted
    // at activation, RecordingStopped at deactivation).
    let operational = |kind: &str| {
        rec.events()
            .iter()
            .filter(|e| e["eventType"] == format!("Microsoft.Media.Graph.Operational.{kind}"))
            .count()
    };
    assert_eq!(operational("RecordingStarted"), 1);
    assert_eq!(operational("RecordingStopped"), 0);
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        log.matches("\"Microsoft.Media.Graph.Operational.RecordingStopped\"")
            .count(),
        1,
        "{log}"
    );

    let segs = sealed(&dir);
    let runs: std::collections::BTreeSet<u64> = segs.iter().map(|s| s.run).collect();
    assert_eq!(runs.len(), 2, "two runs expected: {segs:?}");
    check_segments(&segs, 30.0, GOP, FRAME);
    let offline: Vec<_> = gaps(&dir)
        .into_iter()
        .filter(|g| g["cause"] == "CameraOffline")
        .collect();
    assert_eq!(offline.len(), 1, "one CameraOffline gap: {:?}", gaps(&dir));
    let len = (offline[0]["end"].as_i64().unwrap() - offline[0]["start"].as_i64().unwrap()) as f64
        / TICKS as f64;
    // Loss ≈ outage: plus at most the reconnect backoff in force when the camera came back
    // (≤ 4 s at this point) and the wait for its first keyframe.
    assert!(
        len >= outage - 1.0 && len <= outage + 6.0,
        "gap {len:.1} s for an outage of {outage:.1} s"
    );
    // The gap is exactly the space between the two runs' segments.
    let last_of_first = segs
        .iter()
        .filter(|s| s.run == segs[0].run)
        .map(|s| s.end)
        .max()
        .unwrap();
    let first_of_second = segs
        .iter()
        .filter(|s| s.run != segs[0].run)
        .map(|s| s.start)
        .min()
        .unwrap();
    assert_eq!(offline[0]["start"].as_i64().unwrap(), last_of_first);
    assert_eq!(offline[0]["end"].as_i64().unwrap(), first_of_second);
}

#[test]
fn kill_9_at_random_moments_loses_at_most_a_fragment_plus_reconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 10, 500, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Warm up: the first start compiles the plugins into DATA/plugins/.compiled.
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    rec.crash();
    // 5 kills anywhere in start-up (before or during the RTSP handshake), then 20 at random
    // moments of recording (after the first fragment, 0–3.5 s later: inside a fragment, at a
    // cut, during a seal).
    let startup_kills = 5;
    let recording_kills = 20;
    let mut last_startup_kill = 0i64;
    for i in 0..startup_kills + recording_kills {
        let mut rec = recorder(&topology, &data, &[]);
        if i < startup_kills {
            std::thread::sleep(Duration::from_millis(200 + random() % 1300));
        } else {
            rec.wait_event("RecordingStarted", Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(random() % 3500));
        }
        rec.crash();
        if i + 1 == startup_kills {
            last_startup_kill = mediagraph::time::Ticks90k::now().0;
        }
        // Nothing sealed is ever empty or half-named, even between crash and restart.
        for s in sealed(&dir) {
            assert!(s.end > s.start, "iteration {i}: empty segment {s:?}");
        }
    }
    let rec = recorder(&topology, &data, &[]);
    std::thread::sleep(Duration::from_secs(4));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let names = files(&dir);
    assert!(
        names
            .iter()
            .all(|f| !f.ends_with(".open") && !f.ends_with(".journal") && !f.ends_with(".tmp")),
        "{names:?}"
    );
    let segs = sealed(&dir);
    assert!(
        segs.len() >= recording_kills,
        "most iterations should have sealed something: {names:?}"
    );
    // Every sealed segment decodes, starts with a keyframe and matches its index entry.
    check_segments(&segs, 30.0, GOP, FRAME);
    for w in segs.windows(2) {
        assert!(
            w[1].start >= w[0].end - (FRAME * TICKS as f64) as i64,
            "overlapping segments {w:?}"
        );
    }
    // Every hole in the recording has a cause: a recorded gap spans it.
    let all_gaps = gaps(&dir);
    let frame = (FRAME * TICKS as f64) as i64;
    for w in segs.windows(2) {
        if w[1].start - w[0].end <= frame {
            continue;
        }
        assert!(
            all_gaps.iter().any(|g| {
                g["start"].as_i64().unwrap() <= w[0].end + frame
                    && g["end"].as_i64().unwrap() >= w[1].start - frame
            }),
            "unexplained hole between {:?} and {:?}; gaps {all_gaps:?}",
            w[0],
            w[1]
        );
    }
    // Each crash while recording costs at most one fragment (2 s) plus the restart and
    // reconnect (process start, RTSP handshake, first keyframe: ≤ 3 s here).
    let crash_gaps: Vec<f64> = gaps(&dir)
        .iter()
        .filter(|g| g["cause"] == "Crash" && g["start"].as_i64().unwrap() > last_startup_kill)
        .map(|g| (g["end"].as_i64().unwrap() - g["start"].as_i64().unwrap()) as f64 / TICKS as f64)
        .collect();
    assert!(
        crash_gaps.len() >= recording_kills,
        "crash gaps recorded: {:?}",
        gaps(&dir)
    );
    let worst = crash_gaps.iter().copied().fold(0f64, f64::max);
    eprintln!("crash gaps (s): {crash_gaps:.2?}; worst {worst:.2}");
    for g in &crash_gaps {
        assert!(
            *g <= 2.0 + 3.0 + 1.0,
            "a crash lost {g:.2} s: {crash_gaps:?}"
        );
    }
}

#[test]
fn small_budget_is_never_exceeded_and_evicts_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 Mbit/s: a 30 s segment is ~11 MiB, so a 15 MiB cache (the smallest the topology rules
    // allow for PT30S) must evict while the open segment grows.
    let clip = make_clip(tmp.path(), 10, 3000, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let budget_mib = 15u64;
    let topology = write_topology(tmp.path(), &url, budget_mib, "PT30S");
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);
    // The asset store is unreachable (an outage), so evicted segments were never uploaded.
    let rec = recorder_with(
        &topology,
        &data,
        &[],
        &[
            "--asset-store",
            UNREACHABLE_STORE,
            "--upload-flush-timeout-secs",
            "2",
        ],
    );
    let limit = budget_mib * 1024 * 1024;
    let started = Instant::now();
    let mut peak = 0u64;
    let mut seen_ids = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(95) {
        let used: u64 = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        peak = peak.max(used);
        assert!(used <= limit, "cache holds {used} bytes, budget {limit}");
        seen_ids.extend(sealed(&dir).iter().map(|s| s.id));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let segs = sealed(&dir);
    let remaining: Vec<u64> = segs.iter().map(|s| s.id).collect();
    seen_ids.extend(remaining.iter());
    let evicted: Vec<u64> = seen_ids
        .iter()
        .copied()
        .filter(|id| !remaining.contains(id))
        .collect();
    assert!(
        !evicted.is_empty(),
        "nothing was evicted (peak {peak} bytes); remaining {remaining:?}"
    );
    // Oldest first: every evicted segment is older than every remaining one.
    assert!(
        evicted.iter().max() < remaining.iter().min(),
        "evicted {evicted:?}, remaining {remaining:?}"
    );
    let evicted_gaps = gaps(&dir)
        .into_iter()
        .filter(|g| g["cause"] == "EvictedBeforeUpload")
        .count();
    assert_eq!(
        evicted_gaps,
        evicted.len(),
        "each evicted, never uploaded segment is a gap: {:?}",
        gaps(&dir)
    );
    check_segments(&segs, 30.0, GOP, FRAME);
}

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

#[test]
fn records_h265_video_with_aac_audio_when_the_sink_selects_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--codec", "h265", "--audio"]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    select_audio_and_video(&topology);
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(8));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let segs = sealed(&cache_dir(&data, 1));
    assert_eq!(segs.len(), 1, "{segs:?}");
    check_segments(&segs, 30.0, GOP, FRAME);
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&segs[0].path)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = streams.lines().map(|l| l.split(',').collect()).collect();
    let codecs: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(codecs, ["hevc", "aac"], "{streams}");
    // The audio covers the video's time span: same start and length, to within one frame
    // (plus one AAC frame of 1024 samples at 48 kHz, ~21 ms, for the ends).
    let num = |r: &Vec<&str>, i: usize| -> f64 {
        r[i].parse()
            .unwrap_or_else(|_| panic!("ffprobe: {streams}"))
    };
    let (v_start, v_len) = (num(&rows[0], 1), num(&rows[0], 2));
    let (a_start, a_len) = (num(&rows[1], 1), num(&rows[1], 2));
    assert!(
        (a_start - v_start).abs() <= FRAME + 0.022 && (a_len - v_len).abs() <= FRAME + 0.022,
        "audio {a_start:.3}+{a_len:.3} s vs video {v_start:.3}+{v_len:.3} s"
    );
    assert!(
        segs[0].path.to_string_lossy().contains("hvc1")
            && segs[0].path.to_string_lossy().contains("mp4a.40.2")
    );
}

#[test]
fn a_camera_that_stops_sending_is_detected_as_stalled_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    // PLAY succeeds, then no media ever arrives.
    let url = format!("rtsp://127.0.0.1:{port}/fault/stall");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("MediaSessionEstablished", STARTUP);
    let established = Instant::now();
    rec.wait_event("\"errorCode\":\"Timeout\"", Duration::from_secs(20));
    let detected = established.elapsed();
    // Detected after the 10 s stall timeout, then retried: a second session comes up.
    assert!(
        detected >= Duration::from_secs(9),
        "stall reported after {detected:?}"
    );
    wait_until(
        "a new session after the stall",
        Duration::from_secs(10),
        || rec.log().matches("MediaSessionEstablished").count() >= 2,
    );
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        files(&cache_dir(&data, 1)),
        vec!["gaps.log", "uploaded.log"]
    );
}

/// A camera whose video stops on an open connection while its RTCP reports go on: the session
/// ends as stalled (RTCP does not feed the stall watchdog), and every frame it sent before is
/// recorded. The recorder lets the kernel hold back a quarter second of data between reads (read
/// batching); going quiet must hand that data over before the stall ends the run. Without
/// that, the frames sent after the last read are lost; how many depends on where that read
/// fell, and in trials it was 0–2 frames, so this test caught it in about half the runs.
#[test]
fn a_camera_that_freezes_loses_none_of_the_frames_it_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    // 200 video frames (8 s), then only RTCP sender reports with the connection open.
    let url = format!("rtsp://127.0.0.1:{port}/fault/freeze");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    wait_until(
        "the frozen run ends as stalled",
        Duration::from_secs(30),
        || {
            rec.log()
                .lines()
                .any(|l| l.contains("run ended") && l.contains("stalled"))
        },
    );
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let segs = sealed(&cache_dir(&data, 1));
    let first_run: Vec<&Seg> = segs.iter().filter(|s| s.run == segs[0].run).collect();
    let frames: usize = first_run.iter().map(|s| probe(&s.path).packets.len()).sum();
    assert_eq!(
        frames,
        mediagraph::camera::FREEZE_AFTER_FRAMES as usize,
        "frames recorded in the run before the freeze ({} segments): {log}",
        first_run.len()
    );
    for s in &first_run {
        let p = probe(&s.path);
        assert!(
            p.decode_errors.is_empty(),
            "{}: {}",
            s.path.display(),
            p.decode_errors
        );
    }
}

/// A camera that keeps a session after its connection is cut, and serves one session at a
/// time, refuses the recorder's reconnect until that stale session is gone. The recorder tears
/// it down from a new connection before reconnecting, so recording resumes within seconds
/// instead of after the camera's 60 s session timeout.
#[test]
fn a_stale_session_is_torn_down_so_the_reconnect_is_not_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let camera = camera(port, &["--max-sessions", "1"]);
    // 200 video frames (8 s), then the camera closes the connection and keeps the session.
    let url = format!("rtsp://127.0.0.1:{port}/fault/cut");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    wait_until(
        "a second session after the cut",
        Duration::from_secs(30),
        || camera.log().matches("session playing").count() >= 2,
    );
    // Long enough for the second run's first complete fragment (≤ 2 s), shorter than its 8 s.
    std::thread::sleep(Duration::from_secs(4));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let camera_log = camera.log();
    assert!(
        !camera_log.contains("session refused"),
        "the reconnect met the stale session:\n{camera_log}"
    );
    let first_torn_down = camera_log.find("session torn down");
    let second_played = camera_log
        .match_indices("session playing")
        .nth(1)
        .map(|(i, _)| i);
    assert!(
        first_torn_down.is_some() && first_torn_down < second_played,
        "the stale session was not torn down before the next one played:\n{camera_log}"
    );

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    let first_run: Vec<&Seg> = segs.iter().filter(|s| s.run == segs[0].run).collect();
    let frames: usize = first_run.iter().map(|s| probe(&s.path).packets.len()).sum();
    assert_eq!(
        frames,
        mediagraph::camera::FREEZE_AFTER_FRAMES as usize,
        "frames recorded before the cut: {log}"
    );
    assert!(
        segs.iter().any(|s| s.run != segs[0].run),
        "no second run: {segs:?}"
    );
    let offline: Vec<_> = gaps(&dir)
        .into_iter()
        .filter(|g| g["cause"] == "CameraOffline")
        .collect();
    assert_eq!(offline.len(), 1, "one CameraOffline gap: {:?}", gaps(&dir));
    let secs = (offline[0]["end"].as_i64().unwrap() - offline[0]["start"].as_i64().unwrap()) as f64
        / TICKS as f64;
    // Reconnect backoff (about 1 s) plus the wait for a keyframe; a refused reconnect would
    // have waited out the camera's 60 s session timeout.
    assert!(secs < 10.0, "gap of {secs:.1} s after the cut: {offline:?}");
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

/// x265's open-GOP keyframes are CRA pictures, which retina does not flag as random access
/// points: the host recognises every IRAP itself, so segments still start on time (on CRA
/// pictures) and decode without errors.
#[test]
fn h265_open_gop_cra_keyframes_start_segments() {
    let tmp = tempfile::tempdir().unwrap();
    // 7 s loops: the only IDR is the first picture of each loop, so a 30 s cut falls on a CRA.
    let clip = make_h265_open_gop_clip(&tmp.path().join("clip"), 7);
    let types = h265_nal_types(&std::fs::read(clip.join("video.h265")).unwrap());
    let pictures: Vec<u8> = types.into_iter().filter(|t| *t < 32).collect();
    assert_eq!(
        pictures
            .iter()
            .filter(|t| (16..=21).contains(*t))
            .copied()
            .collect::<Vec<u8>>(),
        [20, 21, 21, 21, 21, 21, 21],
        "the clip should have one IDR, then CRA keyframes"
    );
    let port = free_port();
    let clip_arg = clip.to_string_lossy().into_owned();
    let _camera = camera(port, &["--codec", "h265", "--clip", &clip_arg]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(36));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    // Decodes with no errors, starts with a keyframe, 30 s ± one GOP, no holes.
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 34.0, "recorded {total:.1} s of ~36 s");
    // check_segments saw every segment start with an IRAP picture; some must be CRA.
    let starts: Vec<Option<u8>> = segs.iter().map(|s| first_picture(&s.path).0).collect();
    assert!(
        starts.contains(&Some(21)),
        "a segment should start on a CRA picture: {starts:?}"
    );
}

/// The camera switches resolution mid-stream (new SPS/PPS in band): each switch starts a new
/// segment with its own init, every segment decodes and holds one resolution, and the
/// segments of the run follow each other without a hole.
#[test]
fn a_resolution_change_mid_stream_starts_a_new_segment_with_its_own_init() {
    let tmp = tempfile::tempdir().unwrap();
    let clip =
        make_h264_resolution_switch_clip(&tmp.path().join("clip"), &["640x360", "320x240"], 3);
    let port = free_port();
    let clip_arg = clip.to_string_lossy().into_owned();
    let _camera = camera(port, &["--clip", &clip_arg]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(14));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(
        segs.len() >= 4,
        "a segment per 3 s switch expected: {:?}",
        files(&dir)
    );
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "one run: {segs:?}"
    );
    let mut sizes = Vec::new();
    for s in &segs {
        let p = probe(&s.path);
        assert!(
            p.decode_errors.trim().is_empty(),
            "{}: {}",
            s.path.display(),
            p.decode_errors
        );
        let (first, decodable) = first_picture(&s.path);
        assert!(decodable, "{}: first picture {first:?}", s.path.display());
        // Every decoded frame has the resolution of the segment's init.
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=width,height:frame=width,height"])
            .args(["-of", "csv=p=0"])
            .arg(&s.path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows: Vec<&str> = text
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        rows.dedup();
        assert_eq!(rows.len(), 1, "{}: resolutions {rows:?}", s.path.display());
        sizes.push(rows[0].to_owned());
        let len = p.duration();
        assert!(
            len <= 3.0 + FRAME + 0.01,
            "{}: {len:.3} s",
            s.path.display()
        );
    }
    for (i, w) in segs.windows(2).enumerate() {
        assert_ne!(
            sizes[i],
            sizes[i + 1],
            "a segment per resolution: {sizes:?}"
        );
        let wall_hole = (w[1].start - w[0].end) as f64 / TICKS as f64;
        assert!(
            wall_hole.abs() <= FRAME,
            "hole of {wall_hole:.3} s between {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    // The middle segments are whole 3 s stretches of one resolution.
    for s in &segs[1..segs.len() - 1] {
        let len = (s.end - s.start) as f64 / TICKS as f64;
        assert!(
            (len - 3.0).abs() <= FRAME + 0.01,
            "{}: {len:.3} s",
            s.path.display()
        );
    }
}

/// Records a B-frame stream served by GStreamer's RTSP server from `launch` for ≥ 35 s and
/// checks every segment: decodes with no error or warning, starts with a keyframe, exact
/// frame timing (frames = 25 fps × duration ± one GOP, no holes), decode times strictly
/// increasing and never after presentation, and presentation order ≠ decode order. Nothing
/// is reported as unsupported.
fn records_b_frames(launch: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = gst_launch_server(port, launch);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(38));
    assert!(rec.is_running(), "{}", rec.log());
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        diagnostics(&events, "MediaFormatError").is_empty(),
        "B-frames are supported: no format error expected:\n{log}"
    );
    assert!(log.contains("video has B-frames"), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "one run: {segs:?}"
    );
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    check_b_frames(&segs, &probes, 1.0 / FRAME, (GOP / FRAME) as usize);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 35.0, "recorded {total:.1} s, expected ≥ 35 s");
    let frames: usize = probes.iter().map(|p| p.packets.len()).sum();
    let expected = total / FRAME;
    let reordered: usize = probes
        .iter()
        .map(|p| p.packets.windows(2).filter(|w| w[1].0 < w[0].0).count())
        .sum();
    eprintln!(
        "{} segments, {total:.3} s, {frames} frames (25 fps × duration = {expected:.1}), {reordered} presentation-order reversals",
        segs.len()
    );
    assert!(
        (frames as f64 - expected).abs() <= GOP / FRAME,
        "{frames} frames in {total:.3} s at 25 fps"
    );
}

/// A camera whose H.264 (Main profile) has B-frames: x264 with 2 B-frames and B-pyramid, so
/// the SPS declares a reorder depth of 2.
#[test]
fn h264_b_frames_are_recorded_with_exact_timing() {
    records_b_frames(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max=25 bframes=2 b-adapt=false ! video/x-h264,profile=main \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
    );
}

/// The same with H.265 from x265 (3 B-frames, closed GOPs of 25).
#[test]
fn h265_b_frames_are_recorded_with_exact_timing() {
    records_b_frames(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x265enc speed-preset=ultrafast key-int-max=25 \
           option-string=\"bframes=3:min-keyint=25:scenecut=0:open-gop=0:log-level=error\" \
         ! rtph265pay name=pay0 pt=96 config-interval=-1 )",
    );
}
