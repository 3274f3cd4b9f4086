//! The cameras a test records: clips made with ffmpeg, GStreamer's RTSP server
//! (`tests/peers/gst_rtsp_server.py`) and the built-in test camera (`mediagraph camera`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

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
