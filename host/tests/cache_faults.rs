//! A failing, slow or unusable cache costs only its own sink: `mediagraph run` records the test
//! camera with faults injected into one sink's cache files by `strace -P <file> -e inject=...`
//! (only system calls on those files are touched), or with a sink whose cache cannot be
//! created. Needs strace (tests/install-peers.sh installs it).

mod record_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use record_support::*;

const STARTUP: Duration = Duration::from_secs(120);
const DISK_ERROR: &str = "Mediagraph.Diagnostics.CacheDiskError";

fn require_strace() {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is required (tests/install-peers.sh installs it)"
    );
}

fn cache_root(data: &Path) -> PathBuf {
    data.join("var/lib/mediagraph/cache")
}

/// The cache directory of instance `name`'s sink1: `graph::cache_dir_name` joins topology,
/// instance and sink.
fn sink_cache(data: &Path, name: &str) -> PathBuf {
    cache_root(data).join(format!("RecordTest.{name}.sink1"))
}

/// `-P` options naming the segment files `first..=last` of a cache directory, which do not
/// exist yet (strace matches descriptors by the path they resolve to).
fn segment_paths(dir: &Path, ids: std::ops::RangeInclusive<u64>, exts: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for id in ids {
        for ext in exts {
            args.push("-P".to_owned());
            args.push(dir.join(format!("{id:012}.{ext}")).display().to_string());
        }
    }
    args
}

/// `mediagraph run` under strace with `strace_args`; signals go to the recorder itself.
struct Traced {
    proc: Proc,
}

impl Traced {
    fn start(strace_args: &[String], run_args: &[&std::ffi::OsStr]) -> Self {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-e", "signal=none", "-o", "/dev/null"])
            .args(strace_args)
            .arg(env!("CARGO_BIN_EXE_mediagraph"))
            .arg("run")
            .args(run_args)
            .args(["--progress-secs", "1"])
            .env("RUST_LOG", "info");
        Self {
            proc: Proc::spawn(cmd),
        }
    }

    fn recorder_pid(&self) -> String {
        let pid = self.proc.pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap()
            .split_whitespace()
            .next()
            .expect("strace's child")
            .to_owned()
    }

    /// Sends `sig` to the recorder; the time it took to exit, if within `bound`.
    fn stop(&mut self, sig: &str, bound: Duration) -> Option<Duration> {
        let pid = self.recorder_pid();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
        let t = Instant::now();
        while t.elapsed() < bound {
            if !self.proc.is_running() {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn events_of<'a>(
    events: &'a [serde_json::Value],
    kind: &str,
    subject: &str,
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["eventType"] == kind && e["subject"] == subject)
        .collect()
}

#[test]
fn a_read_only_cache_disk_is_reported_once_and_recording_resumes_by_itself() {
    failing_cache_disk("write,writev", "EROFS");
}

#[test]
fn a_cache_disk_io_error_on_sync_is_reported_once_and_recording_resumes_by_itself() {
    failing_cache_disk("fdatasync,fsync", "EIO");
}

#[test]
fn a_cache_file_that_may_not_be_created_is_reported_once_and_recording_resumes_by_itself() {
    failing_cache_disk("openat,openat2", "EACCES");
}

/// Segments 1-5 of the only sink fail with `errno` on `syscalls`: one episode of about five
/// keyframes, reported once as a `CacheDiskError` naming the errno; segment 6 is written and
/// recording goes on by itself.
fn failing_cache_disk(syscalls: &str, errno: &str) {
    require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let topology = write_topology(
        tmp.path(),
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        64,
        "PT30S",
    );
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);
    let mut args = segment_paths(&dir, 1..=5, &["open"]);
    // A file is created by name relative to the cache's directory descriptor (cap-std's
    // openat2), and strace matches such a name as written: list the bare names too.
    for id in 1..=5 {
        args.extend(["-P".to_owned(), format!("{id:012}.open")]);
    }
    args.extend(["-e".to_owned(), format!("inject={syscalls}:error={errno}")]);
    let mut rec = Traced::start(
        &args,
        &[
            topology.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
    );
    rec.proc.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        rec.stop("-INT", Duration::from_secs(20)).is_some(),
        "{}",
        rec.proc.log()
    );
    let log = rec.proc.log();
    let events = rec.proc.events();
    let sink = "/graphInstances/default/sinks/sink1";
    let reported = events_of(&events, DISK_ERROR, sink);
    assert_eq!(reported.len(), 1, "one report per episode:\n{log}");
    assert_eq!(reported[0]["body"]["errorCode"], errno, "{:?}", reported[0]);
    assert!(log.contains("the cache can be written again"), "{log}");
    let segs = sealed(&dir);
    assert!(
        segs.first().is_some_and(|s| s.id >= 6),
        "recorded from segment 6 on: {:?}",
        files(&dir)
    );
    check_segments(&segs, 30.0, 1.0, 0.04);
}

#[test]
fn a_slow_cache_disk_costs_the_other_camera_no_frame_and_sigterm_still_stops() {
    require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--count", "2"]);
    let topology = write_topology(tmp.path(), "rtsp://unused", 64, "PT30S");
    let fast = write_instance(tmp.path(), "fast", &format!("rtsp://127.0.0.1:{port}/cam1"));
    let slow = write_instance(tmp.path(), "slow", &format!("rtsp://127.0.0.1:{port}/cam2"));
    let data = tmp.path().join("data");
    let slow_dir = sink_cache(&data, "slow");
    // Every sync of the slow sink's files takes 1 s: about 2 s per fragment of 1 s.
    let mut args = segment_paths(&slow_dir, 1..=20, &["open", "journal"]);
    for log in ["uploaded.log", "gaps.log"] {
        args.push("-P".to_owned());
        args.push(slow_dir.join(log).display().to_string());
    }
    args.extend([
        "-e".to_owned(),
        "inject=fdatasync,fsync:delay_enter=1000000".to_owned(),
    ]);
    let mut rec = Traced::start(
        &args,
        &[
            topology.as_os_str(),
            "--instance".as_ref(),
            fast.as_os_str(),
            "--instance".as_ref(),
            slow.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
    );
    rec.proc.wait_event("RecordingStarted", STARTUP);
    let recording = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let elapsed = recording.elapsed().as_secs_f64();
    let took = rec.stop("-TERM", Duration::from_secs(30));
    let log = rec.proc.log();
    assert!(took.is_some(), "no exit within 30 s of SIGTERM:\n{log}");

    let fast_dir = sink_cache(&data, "fast");
    let segs = sealed(&fast_dir);
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "the fast camera's session was never interrupted: {segs:?}\n{log}"
    );
    let probes = check_segments(&segs, 30.0, 1.0, 0.04);
    let recorded: f64 = probes.iter().map(Probe::duration).sum();
    assert!(
        recorded >= elapsed - 3.0,
        "the fast camera recorded {recorded:.1} s of {elapsed:.1} s"
    );
    let dropped = log
        .lines()
        .filter(|l| l.contains("fast: cam1→sink1"))
        .any(|l| !l.contains("(0 dropped)"));
    assert!(!dropped, "the fast camera dropped frames:\n{log}");
    assert!(
        !gaps(&fast_dir)
            .iter()
            .any(|g| g["cause"] == "CameraOffline"),
        "{:?}",
        gaps(&fast_dir)
    );
    assert!(
        !sealed(&slow_dir).is_empty(),
        "the slow camera recorded too"
    );
}

#[test]
fn a_sink_that_cannot_start_is_reported_at_once_and_retried_while_others_record() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--count", "2"]);
    let topology = write_topology(tmp.path(), "rtsp://unused", 64, "PT30S");
    let good = write_instance(tmp.path(), "good", &format!("rtsp://127.0.0.1:{port}/cam1"));
    let bad = write_instance(tmp.path(), "bad", &format!("rtsp://127.0.0.1:{port}/cam2"));
    let data = tmp.path().join("data");
    // A file where the bad sink's cache directory goes: the cache cannot be opened.
    let blocked = sink_cache(&data, "bad");
    std::fs::create_dir_all(cache_root(&data)).unwrap();
    std::fs::write(&blocked, b"in the way").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("run")
        .arg(&topology)
        .arg("--instance")
        .arg(&good)
        .arg("--instance")
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "info");
    let mut rec = Proc::spawn(cmd);
    let bad_sink = "/graphInstances/bad/sinks/sink1";
    wait_until("SinkStartFailed", STARTUP, || {
        !events_of(
            &rec.events(),
            "Mediagraph.Diagnostics.SinkStartFailed",
            bad_sink,
        )
        .is_empty()
    });
    rec.wait_event("RecordingStarted", STARTUP);
    let events = rec.events();
    let failed = events_of(&events, "Mediagraph.Diagnostics.SinkStartFailed", bad_sink);
    assert_eq!(
        failed[0]["body"]["errorCode"], "CacheUnavailable",
        "{failed:?}"
    );
    assert!(rec.log().contains("the sink cannot start"), "{}", rec.log());
    assert!(
        events_of(
            &events,
            "Microsoft.Media.Graph.Operational.RecordingStarted",
            bad_sink
        )
        .is_empty()
    );

    std::fs::remove_file(&blocked).unwrap();
    wait_until("the bad sink to record after a retry", STARTUP, || {
        !events_of(
            &rec.events(),
            "Microsoft.Media.Graph.Operational.RecordingStarted",
            bad_sink,
        )
        .is_empty()
    });
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!sealed(&sink_cache(&data, "good")).is_empty());
    assert!(!sealed(&blocked).is_empty(), "{log}");
}

#[test]
fn a_failing_uploaded_log_is_reported_once_and_nothing_is_uploaded_twice() {
    require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let topology = write_topology(
        tmp.path(),
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        64,
        "PT30S",
    );
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);
    // Every mark's sync fails: the blobs are stored (the default local store), the marks not.
    let args: Vec<String> = [
        "-P",
        &dir.join("uploaded.log").display().to_string(),
        "-e",
        "inject=fdatasync:error=EIO",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rec = Traced::start(
        &args,
        &[
            topology.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
    );
    rec.proc.wait_event("RecordingStarted", STARTUP);
    let sink = "/graphInstances/default/sinks/sink1";
    wait_until("a CacheDiskError", Duration::from_secs(90), || {
        !events_of(&rec.proc.events(), DISK_ERROR, sink).is_empty()
    });
    // The stop seals and uploads the open segment: a second failing mark, same episode.
    assert!(
        rec.stop("-INT", Duration::from_secs(30)).is_some(),
        "{}",
        rec.proc.log()
    );
    let log = rec.proc.log();
    let events = rec.proc.events();
    let reported = events_of(&events, DISK_ERROR, sink);
    assert_eq!(reported.len(), 1, "{log}");
    assert_eq!(reported[0]["body"]["errorCode"], "EIO", "{:?}", reported[0]);
    assert!(
        events_of(
            &events,
            "Microsoft.Media.Graph.Diagnostics.StorageError",
            sink
        )
        .is_empty(),
        "the store is not blamed:\n{log}"
    );
    let uploads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("segment uploaded and verified"))
        .collect();
    assert!(uploads.len() >= 2, "{log}");
    let mut blobs: Vec<String> = uploads
        .iter()
        .filter_map(|l| {
            let plain = strip_ansi(l);
            Some(
                plain
                    .split("blob=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .to_owned(),
            )
        })
        .collect();
    let n = blobs.len();
    assert_eq!(n, uploads.len(), "{log}");
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), n, "a segment was uploaded twice:\n{log}");
}

/// The line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
