//! A camera cannot take the recorder's memory: `mediagraph run` against misbehaving paths of
//! the test camera. Needs nothing but the binary.

mod record_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use record_support::*;

/// An SPS declaring a reorder depth of 1 000 000 pictures: held frames would be the whole
/// run. The depth is clamped to 16 with a diagnostic, and the camera is recorded.
#[test]
fn a_reorder_depth_past_the_codec_limit_is_clamped_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--codec", "h265"]);
    let url = format!("rtsp://127.0.0.1:{port}/fault/deepreorder");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let mut rec = recorder(&topology, &tmp.path().join("data"), &[]);
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let clamped: Vec<_> = diagnostics(&events, "MediaFormatError")
        .into_iter()
        .filter(|e| e["body"]["code"] == "ReorderDepthTooLarge")
        .collect();
    assert_eq!(clamped.len(), 1, "{events:#?}");
    let message = clamped[0]["body"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("1000000") && message.contains("16"),
        "{message}"
    );
}

/// VmHWM of this test's recorder (debug build) with both instances on good paths: 63 MiB.
const BASELINE_MIB: u64 = 64;

/// Most memory (VmHWM) the recorder may reach while one camera floods it with `cap_mib`
/// (its bound) in flight: the baseline, plus twice the cap, since retina's read buffer grows by
/// doubling and the old and the new buffer are both touched while it is copied, plus 64 MiB
/// for what is read between two checks and for the allocator. Measured: 118 MiB (endless
/// access unit, 16 MiB cap), 68 MiB (endless DESCRIBE answer, 1 MiB cap); without the guard
/// either passes a GiB within seconds.
fn rss_bound_mib(cap_mib: u64) -> u64 {
    BASELINE_MIB + 2 * cap_mib + 64
}

/// A `/proc/PID/status` field in KiB, e.g. `VmHWM`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The frames the progress line last reported for instance `name`, and its run number.
fn progress(log: &str, name: &str) -> Option<(u64, u64)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("{name}: cam1→sink1: run ")))?;
    let run = line.split("run ").nth(1)?.split(' ').next()?.parse().ok()?;
    let frames = line
        .split(" frames (")
        .next()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()?;
    assert!(line.contains("(0 dropped)"), "{line}");
    Some((run, frames))
}

/// `mediagraph run` recording `/cam1` (good) and the hostile `path` (bad) of one test camera
/// at once. The bad camera's sessions are ended with the diagnostic `kind`/`code` and retried
/// by the backoff, the recorder's memory stays under [`rss_bound_mib`] (a watcher kills it
/// past that, so the test cannot take the machine's memory either), the good camera records
/// on in one run, and the recorder stops cleanly.
fn hostile_camera_is_cut_off_while_another_records(
    path: &str,
    cap_mib: u64,
    kind: &str,
    code_field: &str,
    code: &str,
) -> Vec<serde_json::Value> {
    let bound_mib = rss_bound_mib(cap_mib);
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let topology = write_topology(tmp.path(), "rtsp://unused", 64, "PT30S");
    let good = write_instance(tmp.path(), "good", &format!("rtsp://127.0.0.1:{port}/cam1"));
    let bad = write_instance(tmp.path(), "bad", &format!("rtsp://127.0.0.1:{port}{path}"));
    let data = tmp.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("run")
        .arg(&topology)
        .arg("--instance")
        .arg(&good)
        .arg("--instance")
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .args(["--progress-secs", "1"])
        .env("RUST_LOG", "info");
    let mut rec = Proc::spawn(cmd);
    let pid = rec.pid();
    let over = Arc::new(AtomicU64::new(0));
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (over, stop) = (over.clone(), stop_watching.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match status_kib(pid, "VmRSS") {
                    Some(kib) if kib > bound_mib * 1024 => {
                        over.store(kib, Ordering::Relaxed);
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                        return;
                    }
                    Some(_) => {}
                    None => return,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let bad_source = "/graphInstances/bad/sources/cam1";
    let wanted = format!("Microsoft.Media.Graph.Diagnostics.{kind}");
    let breaches = |events: &[serde_json::Value]| -> usize {
        events
            .iter()
            .filter(|e| {
                e["eventType"] == wanted
                    && e["subject"] == bad_source
                    && e["body"][code_field] == code
            })
            .count()
    };
    let started = Instant::now();
    while breaches(&rec.events()) < 2 || !rec.log().contains("RecordingStarted") {
        assert!(
            over.load(Ordering::Relaxed) == 0,
            "VmRSS {} KiB passed {bound_mib} MiB:\n{}",
            over.load(Ordering::Relaxed),
            rec.log()
        );
        assert!(rec.is_running(), "recorder exited:\n{}", rec.log());
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no two {code} and a recording within 120 s:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (run, frames) = progress(&rec.log(), "good").unwrap_or((1, 0));
    // A few more retries of the bad camera while the good one records.
    std::thread::sleep(Duration::from_secs(8));
    let log = rec.log();
    let (run_after, frames_after) = progress(&log, "good").expect("progress of the good camera");
    let hwm_kib = status_kib(pid, "VmHWM").expect("recorder running");
    stop_watching.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(
        over.load(Ordering::Relaxed),
        0,
        "VmRSS passed the bound:\n{log}"
    );
    let events = rec.events();
    let (code_exit, log) = rec.stop();
    eprintln!(
        "VmHWM {} MiB (bound {bound_mib} MiB); {} {code}",
        hwm_kib / 1024,
        breaches(&events)
    );
    assert!(hwm_kib <= bound_mib * 1024, "VmHWM {hwm_kib} KiB");
    assert_eq!(code_exit, Some(0), "{log}");
    assert_eq!(
        (run, run_after),
        (1, 1),
        "the good camera's run was never interrupted:\n{log}"
    );
    assert!(
        frames_after >= frames + 25 * 6,
        "good camera: {frames} then {frames_after} frames:\n{log}"
    );
    let good_sink = "/graphInstances/good/sinks/sink1";
    assert!(
        events.iter().any(|e| e["eventType"]
            == "Microsoft.Media.Graph.Operational.RecordingStarted"
            && e["subject"] == good_sink),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e["eventType"]
            == "Microsoft.Media.Graph.Operational.RecordingStarted"
            && e["subject"] == "/graphInstances/bad/sinks/sink1"),
        "the bad camera recorded nothing"
    );
    assert!(!log.contains("not found exactly"), "the guard ran: {log}");
    assert!(!sealed(&data.join("var/lib/mediagraph/cache/RecordTest.good.sink1")).is_empty());
    events
        .into_iter()
        .filter(|e| e["eventType"] == wanted.as_str() && e["subject"] == bad_source)
        .collect()
}

/// A DESCRIBE answered with `Content-Length: 4294967296` and filler as fast as the recorder
/// reads: cut off past 1 MiB, a `ProtocolError` `RtspMessageTooLarge`.
#[test]
fn a_describe_answer_that_never_ends_is_cut_off_while_another_camera_records() {
    let found = hostile_camera_is_cut_off_while_another_records(
        "/fault/hugedescribe",
        1,
        "ProtocolError",
        "errorCode",
        "RtspMessageTooLarge",
    );
    let message = found[0]["body"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("DESCRIBE") && message.contains("1048576"),
        "{message}"
    );
}

/// After PLAY, FU-A fragments of one access unit forever: cut off past 16 MiB, a
/// `MediaFormatError` `AccessUnitTooLarge`.
#[test]
fn an_access_unit_that_never_ends_is_cut_off_while_another_camera_records() {
    let found = hostile_camera_is_cut_off_while_another_records(
        "/fault/endlessau",
        16,
        "MediaFormatError",
        "code",
        "AccessUnitTooLarge",
    );
    let body = &found[0]["body"];
    assert_eq!(body["mediaType"], "video");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("16777216"), "{message}");
}
