//! The shipped `topologies/file-sink` records MP4 files named by its pattern; a kill -9 leaves
//! every finished file playable and the open one cut at its last complete fragment.

use super::*;

/// The finished files of a file sink's output directory, in name order.
pub fn mp4_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
        .collect();
    v.sort();
    v
}

/// A playable recording: decodes without errors, starts with a keyframe, at least `secs` long.
pub fn check_playable(path: &Path, secs: f64) {
    let p = probe(path);
    assert!(
        p.decode_errors.is_empty(),
        "{}: {}",
        path.display(),
        p.decode_errors
    );
    assert!(
        p.packets.first().is_some_and(|k| k.2),
        "{} starts with a keyframe",
        path.display()
    );
    assert!(
        p.duration() >= secs,
        "{}: {:.1} s, expected ≥ {secs} s",
        path.display(),
        p.duration()
    );
}

#[test]
fn the_shipped_file_sink_records_files_and_a_kill_9_leaves_them_playable() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/file-sink");
    let topology = shipped.join("topology.json");
    let instance = shipped.join("instance.json");
    let url = format!("rtspUrl=rtsp://127.0.0.1:{port}/cam1");
    let data = tmp.path().join("data");
    let out = data.join("var/media/camera-1-fileSink");
    let args = ["--instance".as_ref(), instance.as_os_str()];
    let run = |data: &Path| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mediagraph"));
        cmd.arg("run")
            .arg(&topology)
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .args(["--param", &url])
            .env("RUST_LOG", "info");
        Proc::spawn(cmd)
    };

    let mut first = run(&data);
    first.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(8));
    first.crash();
    assert!(
        mp4_files(&out).is_empty(),
        "the open file is not finished yet"
    );
    let open: Vec<_> = std::fs::read_dir(out.join(".mediagraph"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "open"))
        .collect();
    assert_eq!(open.len(), 1, "one file was open");
    // A torn fragment at the end, as a crash in the middle of a write leaves one.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&open[0])
        .unwrap();
    std::io::Write::write_all(&mut f, &[0x55; 5000]).unwrap();
    drop(f);

    let mut second = run(&data);
    second.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(5));
    let (code, log) = second.stop();
    assert_eq!(code, Some(0), "{log}");

    let files = mp4_files(&out);
    assert_eq!(files.len(), 2, "one file per activation: {files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // ${System.GraphInstanceName}-${System.DateTime}.mp4
        let stamp = name
            .strip_prefix("camera-1-")
            .and_then(|n| n.strip_suffix("Z.mp4"))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(stamp.len() == 15 && stamp.as_bytes()[8] == b'T', "{name}");
    }
    // The file that was open at the kill: cut back to its last complete fragment (≥ 4 s of
    // the 8 recorded), without the torn bytes.
    check_playable(&files[0], 4.0);
    check_playable(&files[1], 3.0);

    let events = events_in(&log);
    for kind in ["RecordingStarted", "RecordingStopped"] {
        let e = of_type(
            &events,
            &format!("Microsoft.Media.Graph.Operational.{kind}"),
        );
        assert_eq!(e.len(), 1, "{kind} once per file: {e:?}");
        assert_eq!(e[0]["subject"], "/graphInstances/camera-1/sinks/fileSink");
        assert_eq!(e[0]["body"]["outputType"], "filePath");
        assert_eq!(
            e[0]["body"]["outputLocation"].as_str().unwrap(),
            files[1].to_str().unwrap()
        );
    }
}
