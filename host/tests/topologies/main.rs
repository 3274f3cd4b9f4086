//! The topologies LVA and AVA shipped, run end to end by the real `mediagraph run`: analytics
//! nodes ignored on request, one camera session feeding several sinks, file sinks, AVA video
//! sinks. Peers: the built-in test camera and GStreamer's RTSP server; output checked with
//! ffprobe.

#[path = "../record_support/mod.rs"]
mod record_support;

mod ava;
mod file_sink;
mod ignored;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::Duration;

use record_support::*;

/// Bound on start-up to the first recorded fragment (plugin compilation in debug builds).
const STARTUP: Duration = Duration::from_secs(120);

/// A file of LVA's and AVA's topology corpus (tests/fixtures/lva-topologies).
fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/lva-topologies")
        .join(name)
}

/// The operational and diagnostic events of one type (e.g.
/// `Mediagraph.Diagnostics.NodeNotRun`) among `events`.
fn of_type<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["eventType"] == kind).collect()
}
