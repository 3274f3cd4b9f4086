//! The README's first command, `mediagraph demo`: it records the built-in test camera with the
//! shipped topology and uploads playable segments to the local asset store.

mod record_support;

use std::process::Command;
use std::time::Duration;

use record_support::*;

#[test]
fn demo_records_the_test_camera_into_the_local_asset_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo-data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("demo").arg("--data-dir").arg(&data);
    cmd.env("RUST_LOG", "info");
    let mut demo = Proc::spawn(cmd);
    demo.wait_event("RecordingStarted", Duration::from_secs(120));
    let asset = data.join("assets/CVRToAsset-default");
    let blobs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&asset)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The first PT30S segment is sealed after ~30 s and then uploaded.
    wait_until(
        "the first uploaded segment",
        Duration::from_secs(90),
        || !blobs().is_empty(),
    );
    let (code, log) = demo.stop();
    assert_eq!(code, Some(0), "{log}");

    let uploaded = blobs();
    assert!(!uploaded.is_empty(), "{log}");
    let total: f64 = uploaded
        .iter()
        .map(|p| {
            let probe = probe(p);
            assert!(
                probe.decode_errors.trim().is_empty(),
                "{}: {}",
                p.display(),
                probe.decode_errors
            );
            assert!(
                probe.packets.first().is_some_and(|k| k.2),
                "{}: no keyframe first",
                p.display()
            );
            probe.duration()
        })
        .sum();
    assert!(total >= 29.0, "uploaded {total:.1} s of video");
    assert!(data.join("topology.json").exists());
}
