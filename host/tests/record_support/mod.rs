//! Support for the end-to-end tests of the `mediagraph` binary, one file per job:
//! - `process`: child processes killed when dropped, the `mediagraph run` recorder, waiting on
//!   its log and LVA events, the demo's page address;
//! - `camera`: the peers a test records (clips made with ffmpeg, GStreamer's RTSP server, the
//!   built-in test camera);
//! - `topology`: the one-camera, one-asset-sink topology the tests write;
//! - `probe`: ffprobe/ffmpeg readings of recorded segments and the acceptance checks on them;
//! - `cache`: what a recorder left in its cache directory (sealed segments, files, gaps).
//!
//! Everything is re-exported here, so a test writes `use record_support::*`. The tests live in
//! `host/tests/` (not the `tests/` crate) because Cargo gives integration tests of the
//! `mediagraph` package the path of its binary (`CARGO_BIN_EXE_mediagraph`) and builds it
//! before running them.

#![allow(dead_code)] // each test binary uses a different part

/// 90 kHz ticks per second: the crate's one definition, under the short name the tests use.
pub use mediagraph::time::TICKS_PER_SECOND as TICKS;

mod cache;
mod camera;
mod probe;
mod process;
mod topology;

#[allow(unused_imports)] // each test binary uses a different part
pub use {cache::*, camera::*, probe::*, process::*, topology::*};
