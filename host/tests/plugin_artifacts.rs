//! Compiled plugin artifacts cannot be swapped for native code: `mediagraph run` records with
//! the test camera, every `.cwasm` it left is then replaced by another plugin's genuine
//! artifact or tampered with, and the next run ignores each with a warning, recompiles from
//! the `.wasm` and records. Needs nothing but the binary.

mod record_support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use record_support::*;

/// Start-up to the first recorded fragment, plugin compilation in a debug build included.
const STARTUP: Duration = Duration::from_secs(120);

fn artifacts(data: &std::path::Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(data.join("plugins/.compiled"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
    found.sort();
    found
}

#[test]
fn foreign_or_tampered_artifacts_are_recompiled_and_recording_works() {
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
    std::fs::create_dir_all(data.join("plugins")).unwrap();

    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let made = artifacts(&data);
    assert!(made.len() >= 3, "segmenter, formatter, evictor: {made:?}");
    let key = std::fs::metadata(data.join("plugins.artifact-key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    // The largest artifact, genuine code of this engine, goes over every other one; it gets
    // one byte flipped itself.
    let source = made
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let genuine = std::fs::read(&source).unwrap();
    let mut written = Vec::new();
    for path in &made {
        let mut bytes = genuine.clone();
        if *path == source {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
        }
        std::fs::write(path, &bytes).unwrap();
        written.push(bytes);
    }

    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let warnings = log.matches("this host did not make it").count();
    assert_eq!(warnings, made.len(), "one warning per artifact:\n{log}");
    for (path, bytes) in made.iter().zip(&written) {
        let now = std::fs::read(path).unwrap();
        assert_ne!(&now, bytes, "{} was not rewritten", path.display());
    }
}
