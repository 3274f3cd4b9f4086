//! `mediagraph run` end to end: real RTSP peers on loopback (GStreamer's RTSP server and the
//! built-in test camera), the real binary, kill -9, and ffprobe/ffmpeg checks of every segment.
//! Needs ffmpeg/ffprobe, python3-gi and gir1.2-gst-rtsp-server-1.0 (`.ci/run` installs them).

#[path = "../hostile_support/mod.rs"]
mod hostile_support;
#[path = "../record_support/mod.rs"]
mod record_support;

mod auth;
mod budget;
mod codecs;
mod crash;
mod faults;
mod outage;
mod recording;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use record_support::*;

const FRAME: f64 = 0.04; // 25 fps
const GOP: f64 = 1.0;
/// Bound on start-up to the first recorded fragment (plugin compilation in debug builds).
const STARTUP: Duration = Duration::from_secs(120);
/// An Azure container URL nothing listens on: uploads fail, recording goes on.
const UNREACHABLE_STORE: &str = "http://127.0.0.1:1/devstoreaccount1/assets?sv=2022-11-02&sig=x";
