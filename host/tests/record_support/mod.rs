//! Support for the recording end-to-end tests: real peers (GStreamer's RTSP server, the built-in
//! test camera), the real `mediagraph` binary, and ffprobe/ffmpeg checks of what it recorded.
//!
//! The tests live in `host/tests/` (not the `tests/` crate) because Cargo gives integration
//! tests of the `mediagraph` package the path of its binary (`CARGO_BIN_EXE_mediagraph`) and
//! builds it before running them.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TICKS: i64 = 90_000;

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    /// SIGINT, then waits (bounded) for a clean exit; returns the exit status code.
    pub fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within 20 s after SIGINT:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9: no chance to clean up.
    pub fn crash(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The LVA events the recorder logged, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| l.find("{\"eventType\"").map(|i| &l[i..]))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn require(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is required (Debian package {package}; .ci/run installs it)"
    );
}

/// A small H.264 clip (no B-frames, GOP `gop` frames at 25 fps) made with ffmpeg's test source.
pub fn make_clip(dir: &Path, secs: u32, kbit: u32, gop: u32) -> PathBuf {
    let out = dir.join(format!("clip-{kbit}k.mp4"));
    encode_cbr_h264(&out, secs, kbit, gop, &[]);
    out
}

/// `dir/clip/video.h264` for the test camera's `--clip`: 10 s of constant-bitrate 640x360 H.264
/// (1 s GOP, no B-frames), so a cache budget fills at a known rate.
pub fn make_camera_clip(dir: &Path, kbit: u32) -> PathBuf {
    let clip = dir.join("clip");
    std::fs::create_dir_all(&clip).unwrap();
    encode_cbr_h264(&clip.join("video.h264"), 10, kbit, 25, &["-f", "h264"]);
    clip
}

fn encode_cbr_h264(out: &Path, secs: u32, kbit: u32, gop: u32, output_args: &[&str]) {
    require("ffmpeg", "ffmpeg");
    let rate = format!("{kbit}k");
    let gop = gop.to_string();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25")
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-pix_fmt", "yuv420p", "-b:v", &rate, "-minrate", &rate])
        .args(["-maxrate", &rate, "-bufsize", &format!("{}k", kbit / 2)])
        .args(["-x264-params", "nal-hrd=cbr:force-cfr=1"])
        .args(output_args)
        .arg(out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not make the test clip");
}

/// `dir/video.h265` for the test camera's `--clip dir`: x265 with open GOPs (keyframes after
/// the first are CRA pictures, not IDR), no B-frames, a keyframe every 25 frames at 25 fps.
pub fn make_h265_open_gop_clip(dir: &Path, secs: u32) -> PathBuf {
    require("ffmpeg", "ffmpeg");
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("video.h265");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate=25:duration={secs}"))
        .args([
            "-c:v", "libx265", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args([
            "-x265-params",
            "bframes=0:keyint=25:min-keyint=25:scenecut=0:open-gop=1:log-level=error",
        ])
        .args(["-b:v", "300k", "-f", "hevc"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not make the H.265 clip");
    dir.to_path_buf()
}

/// `dir/video.h264` for the test camera's `--clip dir`: `secs` seconds at each of `sizes` in
/// turn (e.g. `["640x360", "320x240"]`), so the stream changes resolution with in-band
/// SPS/PPS at every switch. No B-frames, a keyframe every 25 frames at 25 fps.
pub fn make_h264_resolution_switch_clip(dir: &Path, sizes: &[&str], secs: u32) -> PathBuf {
    require("ffmpeg", "ffmpeg");
    std::fs::create_dir_all(dir).unwrap();
    let mut stream = Vec::new();
    for size in sizes {
        let part = dir.join(format!("{size}.h264"));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=25:duration={secs}"))
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
            .args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
            .args(["-pix_fmt", "yuv420p", "-b:v", "300k", "-f", "h264"])
            .arg(&part)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg could not make the {size} clip");
        stream.extend(std::fs::read(&part).unwrap());
    }
    std::fs::write(dir.join("video.h264"), stream).unwrap();
    dir.to_path_buf()
}

fn python_with_gi() -> &'static str {
    // The Debian python3 has python3-gi; a python3 earlier on PATH (pyenv) may not.
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// GStreamer's RTSP server (tests/peers/gst_rtsp_server.py) serving `clip` on `port`.
pub fn gst_server(port: u16, clip: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![std::ffi::OsStr::new("--clip"), clip.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    gst_peer(port, &args)
}

/// GStreamer's RTSP server running a gst-rtsp-server launch line (live test sources and
/// encoders, payloaders `pay0`, `pay1`, …) for each session, at `rtsp://127.0.0.1:PORT/stream`.
pub fn gst_launch_server(port: u16, launch: &str) -> Proc {
    gst_peer(port, &["--launch", launch].map(std::ffi::OsStr::new))
}

fn gst_peer(port: u16, args: &[&std::ffi::OsStr]) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/gst_rtsp_server.py");
    let mut cmd = Command::new(python_with_gi());
    cmd.arg(script)
        .args(["--port", &port.to_string()])
        .args(args);
    let mut p = Proc::spawn(cmd);
    let stdout = p.child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        panic!(
            "GStreamer RTSP server did not start (needs python3-gi, gir1.2-gst-rtsp-server-1.0, \
             gstreamer1.0-plugins-base/good/bad/ugly; .ci/run installs them):\n{}",
            p.log()
        );
    }
    p
}

/// The built-in test camera (`mediagraph camera`), serving /cam1 … /camN.
pub fn camera(port: u16, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.args(["camera", "--port", &port.to_string()])
        .args(extra);
    let mut p = Proc::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(p.is_running(), "test camera exited:\n{}", p.log());
        assert!(
            Instant::now() < deadline,
            "test camera did not listen:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// One camera at `url` (LVA allows one RTSP source per topology) recorded by one asset sink,
/// cache `cache_mib`, segments of `segment`. The nodes are `cam1` and `sink1`, as
/// [`cache_dir`] and the event subjects the tests check expect.
pub fn write_topology(dir: &Path, url: &str, cache_mib: u64, segment: &str) -> PathBuf {
    let topology = serde_json::json!({
        "name": "RecordTest",
        "@apiVersion": "2.0",
        "properties": {
            "parameters": [
                {"name": "user", "type": "String", "default": "admin"},
                {"name": "password", "type": "SecretString", "default": "secret"},
                {"name": "url1", "type": "String", "default": url}
            ],
            "sources": [{
                "@type": "#Microsoft.Media.MediaGraphRtspSource",
                "name": "cam1",
                "transport": "tcp",
                "endpoint": {
                    "@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint",
                    "url": "${url1}",
                    "credentials": {
                        "@type": "#Microsoft.Media.MediaGraphUsernamePasswordCredentials",
                        "username": "${user}",
                        "password": "${password}"
                    }
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.Media.MediaGraphAssetSink",
                "name": "sink1",
                "assetNamePattern": "cam1-${System.GraphInstanceName}",
                "segmentLength": segment,
                "localMediaCacheMaximumSizeMiB": cache_mib.to_string(),
                "localMediaCachePath": "/var/lib/mediagraph/cache",
                "inputs": [{"nodeName": "cam1",
                            "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}]
            }]
        }
    });
    let path = dir.join("topology.json");
    std::fs::write(&path, serde_json::to_string_pretty(&topology).unwrap()).unwrap();
    path
}

/// Drops the sink's `outputSelectors` (written as `is video` by [`write_topology`]), so the
/// sink takes audio and video.
pub fn select_audio_and_video(topology: &Path) {
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(topology).unwrap()).unwrap();
    t["properties"]["sinks"][0]["inputs"][0]
        .as_object_mut()
        .unwrap()
        .remove("outputSelectors");
    std::fs::write(topology, t.to_string()).unwrap();
}

/// The LVA diagnostics of one kind (e.g. `MediaFormatError`) among `events`.
pub fn diagnostics<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    let wanted = format!("Microsoft.Media.Graph.Diagnostics.{kind}");
    events.iter().filter(|e| e["eventType"] == wanted).collect()
}

/// An event's `eventTime` (RFC 3339, UTC, milliseconds) as seconds since midnight.
pub fn event_secs(event: &serde_json::Value) -> f64 {
    let t = event["eventTime"].as_str().expect("eventTime");
    let clock = t
        .split('T')
        .nth(1)
        .and_then(|c| c.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("eventTime {t}"));
    clock
        .split(':')
        .map(|p| p.parse::<f64>().unwrap_or_else(|_| panic!("eventTime {t}")))
        .fold(0.0, |acc, p| acc * 60.0 + p)
}

/// H.265 NAL unit types of an Annex-B byte stream, in order.
pub fn h265_nal_types(annex_b: &[u8]) -> Vec<u8> {
    annex_b
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| (w[3] >> 1) & 0x3f)
        .collect()
}

/// The first picture of a recorded segment's video, read back with ffmpeg as an Annex-B
/// stream: the NAL unit type of its first slice, and whether a decoder can start there
/// (H.264: IDR; H.265: IRAP = BLA, IDR, CRA). Unlike ffprobe's keyframe flag, which repeats
/// the recorder's own sync-sample marking, this reads the coded picture itself.
pub fn first_picture(path: &Path) -> (Option<u8>, bool) {
    let name = path.file_name().unwrap().to_string_lossy();
    let h265 = name.contains("hvc1") || name.contains("hev1");
    let bsf = if h265 {
        ["-bsf:v", "hevc_mp4toannexb", "-f", "hevc", "-"]
    } else {
        ["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"]
    };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-frames:v", "1"])
        .args(bsf)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let headers = out.stdout.windows(4).filter(|w| w[..3] == [0, 0, 1]);
    if h265 {
        let first = headers.map(|w| (w[3] >> 1) & 0x3f).find(|t| *t < 32);
        (first, first.is_some_and(|t| (16..=21).contains(&t)))
    } else {
        let first = headers.map(|w| w[3] & 0x1f).find(|t| (1..=5).contains(t));
        (first, first == Some(5))
    }
}

/// `mediagraph run` with progress lines every second.
pub fn recorder(topology: &Path, data_dir: &Path, params: &[&str]) -> Proc {
    recorder_with(topology, data_dir, params, &[])
}

/// Like [`recorder`], with extra command-line arguments (e.g. the asset store).
pub fn recorder_with(topology: &Path, data_dir: &Path, params: &[&str], extra: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("run")
        .arg(topology)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--progress-secs", "1"]);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.args(extra);
    cmd.env("RUST_LOG", "info");
    Proc::spawn(cmd)
}

/// The cache directory of sink N (1-based) of the default instance.
pub fn cache_dir(data_dir: &Path, sink: usize) -> PathBuf {
    data_dir.join(format!("var/lib/mediagraph/cache/default-sink{sink}"))
}

/// A sealed segment as named on disk: `<id>_<run>_<seq>_<start>_<end>_<codecs>.<ext>`.
#[derive(Clone, Debug)]
pub struct Seg {
    pub path: PathBuf,
    pub id: u64,
    pub run: u64,
    pub seq: u64,
    pub start: i64,
    pub end: i64,
}

pub fn sealed(dir: &Path) -> Vec<Seg> {
    let mut v: Vec<Seg> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let p: Vec<&str> = name.splitn(6, '_').collect();
            if p.len() != 6 || !name.ends_with(".mp4") {
                return None;
            }
            Some(Seg {
                path: e.path(),
                id: p[0].parse().ok()?,
                run: p[1].parse().ok()?,
                seq: p[2].parse().ok()?,
                start: p[3].parse().ok()?,
                end: p[4].parse().ok()?,
            })
        })
        .collect();
    v.sort_by_key(|s| s.id);
    v
}

pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn gaps(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("gaps.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The B-frame checks of one recording at `fps` with GOPs of `gop_frames`: decode times
/// strictly increase, presentation order differs from decode order (B-frames really were
/// there), never a decode time after its presentation time, and each segment holds
/// fps × its duration frames ± one GOP.
pub fn check_b_frames(segs: &[Seg], probes: &[Probe], fps: f64, gop_frames: usize) {
    for (i, (s, p)) in segs.iter().zip(probes).enumerate() {
        // A segment closed by the next one of its run holds every frame of its span exactly
        // (the run's last one may end on a picture whose B-frames the camera never sent).
        if segs.get(i + 1).is_some_and(|n| n.run == s.run) {
            assert_eq!(
                p.packets.len() as f64,
                (p.duration() * fps).round(),
                "{}: frames vs duration {:.3} s",
                s.path.display(),
                p.duration()
            );
        }
        let name = s.path.display();
        assert!(
            p.dts.windows(2).all(|w| w[1] > w[0]),
            "{name}: decode times not strictly increasing: {:?}",
            p.dts
        );
        for (i, (pkt, dts)) in p.packets.iter().zip(&p.dts).enumerate() {
            assert!(
                *dts <= pkt.0 + 1e-6,
                "{name}: packet {i} decoded at {dts} after its presentation {}",
                pkt.0
            );
        }
        // Stricter than check_segments: warnings too (e.g. "non monotonically increasing dts").
        let dec = Command::new("ffmpeg")
            .args(["-v", "warning", "-i"])
            .arg(&s.path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        let stderr = String::from_utf8_lossy(&dec.stderr);
        assert!(
            dec.status.success() && stderr.trim().is_empty(),
            "{name}: ffmpeg -v warning says: {stderr}"
        );
        let reordered = p.packets.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(
            reordered > 0,
            "{name}: presentation order equals decode order: no B-frames recorded"
        );
        // Constant frame rate in, exact timing out: every decode step is one frame.
        assert!(
            p.packets.iter().all(|k| (k.1 - 1.0 / fps).abs() < 1e-6),
            "{name}: frame durations {:?}",
            p.packets.iter().map(|k| k.1).collect::<Vec<_>>()
        );
        let expected = p.duration() * fps;
        let frames = p.packets.len() as f64;
        assert!(
            (frames - expected).abs() <= gop_frames as f64,
            "{name}: {frames} frames in {:.3} s at {fps} fps",
            p.duration()
        );
    }
}

/// What ffprobe/ffmpeg say about one segment's video.
#[derive(Debug)]
pub struct Probe {
    /// (pts seconds, duration seconds, keyframe), in decode order.
    pub packets: Vec<(f64, f64, bool)>,
    /// Decode times (seconds) of the same packets.
    pub dts: Vec<f64>,
    pub decode_errors: String,
}

impl Probe {
    /// The earliest presentation time (with B-frames not the first packet's).
    pub fn first_pts(&self) -> f64 {
        self.packets
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min)
    }
    pub fn end_pts(&self) -> f64 {
        self.packets
            .iter()
            .map(|p| p.0 + p.1)
            .fold(f64::NEG_INFINITY, f64::max)
    }
    pub fn duration(&self) -> f64 {
        self.end_pts() - self.first_pts()
    }
}

pub fn probe(path: &Path) -> Probe {
    require("ffprobe", "ffmpeg");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,duration_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let (packets, dts): (Vec<(f64, f64, bool)>, Vec<f64>) = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                (
                    f.first()?.parse().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.contains('K'),
                ),
                f.get(1)?.parse::<f64>().ok()?,
            ))
        })
        .unzip();
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut decode_errors = String::from_utf8_lossy(&out.stderr).into_owned();
    decode_errors.push_str(&String::from_utf8_lossy(&dec.stderr));
    if !dec.status.success() {
        decode_errors.push_str("ffmpeg decode failed");
    }
    Probe {
        packets,
        dts,
        decode_errors,
    }
}

/// The acceptance checks of one recording: every segment decodes without errors and starts
/// with a keyframe; a segment followed by another of its run lasts segmentLength ± one GOP;
/// consecutive segments of a run leave no hole (media time and wall time) over one frame.
pub fn check_segments(
    segs: &[Seg],
    segment_secs: f64,
    gop_secs: f64,
    frame_secs: f64,
) -> Vec<Probe> {
    let probes: Vec<Probe> = segs.iter().map(|s| probe(&s.path)).collect();
    for (s, p) in segs.iter().zip(&probes) {
        assert!(
            p.decode_errors.trim().is_empty(),
            "{}: decode errors: {}",
            s.path.display(),
            p.decode_errors
        );
        assert!(
            !p.packets.is_empty(),
            "{}: no video packets",
            s.path.display()
        );
        assert!(
            p.packets[0].2,
            "{}: does not start with a keyframe",
            s.path.display()
        );
        let (first_type, decodable) = first_picture(&s.path);
        assert!(
            decodable,
            "{}: the first picture (NAL type {first_type:?}) is not a random access point",
            s.path.display()
        );
        let wall = (s.end - s.start) as f64 / TICKS as f64;
        assert!(
            (wall - p.duration()).abs() <= frame_secs + 0.01,
            "{}: index says {wall:.3} s, media {:.3} s",
            s.path.display(),
            p.duration()
        );
    }
    for i in 1..segs.len() {
        let (a, b) = (&segs[i - 1], &segs[i]);
        if a.run != b.run {
            continue;
        }
        let d = probes[i - 1].duration();
        assert!(
            (d - segment_secs).abs() <= gop_secs + 0.01,
            "{}: {d:.3} s is not {segment_secs} s ± one GOP ({gop_secs} s)",
            a.path.display()
        );
        let hole = probes[i].first_pts() - probes[i - 1].end_pts();
        assert!(
            hole.abs() <= frame_secs + 0.001,
            "media hole of {hole:.3} s between {} and {}",
            a.path.display(),
            b.path.display()
        );
        let wall_hole = (b.start - a.end) as f64 / TICKS as f64;
        assert!(
            wall_hole.abs() <= frame_secs,
            "wall-clock hole of {wall_hole:.3} s between {} and {}",
            a.path.display(),
            b.path.display()
        );
    }
    probes
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Proc {
    /// Waits until the recorder logged an event of this type (e.g. `RecordingStarted`); the
    /// first start of a data directory compiles the plugins, which takes a while in debug builds.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(kind) {
            assert!(
                self.is_running(),
                "recorder exited while waiting for {kind}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no {kind} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The address from the `demo: playback page at http://ADDR/` line on stdout.
pub fn page_address(demo: &mut Proc) -> std::net::SocketAddr {
    let stdout = demo.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no playback page line on stdout:\n{}", demo.log()));
        if let Some(rest) = line.strip_prefix("demo: playback page at http://") {
            let addr = rest.split('/').next().unwrap();
            return addr
                .parse()
                .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        }
    }
}
