//! `mediagraph validate` as an operator runs it: the real binary, real files, exit codes and
//! output lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn validate(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("validate")
        .args(args)
        .output()
        .expect("run mediagraph");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

const TOPOLOGY: &str = "topologies/cvr-asset/topology.json";
const INSTANCE: &str = "topologies/cvr-asset/instance.json";

#[test]
fn valid_topology_prints_a_summary_and_exits_0() {
    let (t, i) = (repo(TOPOLOGY), repo(INSTANCE));
    let (code, out, err) = validate(&[t.to_str().unwrap(), "--instance", i.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "valid: topology 'CVRToAsset' (@apiVersion 2.0), instance 'camera-1'"
    );
    assert_eq!(lines[1], "nodes: 2 (1 source(s), 1 sink(s))");
    assert_eq!(
        lines[2],
        "source rtspSource: rtsp://127.0.0.1:8554/camera-1 (transport Tcp, credentials set (not shown))"
    );
    assert_eq!(
        lines[3],
        "asset sink assetSink <- rtspSource: asset 'CVRToAsset-camera-1', segment length PT30S (30 s), cache /var/lib/mediagraph/cache/camera-1 max 2048 MiB (2147483648 bytes), video only, plugins: segmenter default, evictor default, formatter default"
    );
    assert_eq!(err, "");
    assert!(!out.contains("change-me"));
}

#[test]
fn params_override_the_instance() {
    let (t, i) = (repo(TOPOLOGY), repo(INSTANCE));
    let (code, out, err) = validate(&[
        t.to_str().unwrap(),
        "--instance",
        i.to_str().unwrap(),
        "--param",
        "segmentLength=PT1M30S",
        "--param",
        "cacheMaxMiB=100",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("segment length PT1M30S (90 s)")
            && out.contains("max 100 MiB (104857600 bytes)"),
        "{out}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_error_is_printed_as_target_code_message_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo(TOPOLOGY))
        .unwrap()
        .replace("${segmentLength}", "PT45S")
        .replace("${cachePath}", "cache");
    let t = write(&dir, "t.json", &text);
    let (code, out, err) = validate(&[
        t.to_str().unwrap(),
        "--param",
        "rtspUrl=rtsp://cam/1",
        "--param",
        "rtspPassword=leak-me-not",
    ]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("$.properties.sinks[0].segmentLength: SegmentLengthInvalid: segmentLength 'PT45S': 45 s is not a multiple of 30 s"), "{err}");
    assert_eq!(
        lines[1],
        "$.properties.sinks[0].localMediaCachePath: CachePathNotAbsolute: localMediaCachePath 'cache' must be an absolute path"
    );
    assert_eq!(lines[2], format!("invalid: 2 error(s) in {}", t.display()));
    assert!(!err.contains("leak-me-not"));

    let (code, out, _) = validate(&[
        t.to_str().unwrap(),
        "--param",
        "rtspUrl=rtsp://cam/1",
        "--param",
        "rtspPassword=leak-me-not",
        "--json",
    ]);
    assert_eq!(code, 2);
    let body: serde_json::Value = serde_json::from_str(&out).expect("JSON error body");
    assert_eq!(body["error"]["code"], "InvalidResource");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(
        details[1]["target"],
        "$.properties.sinks[0].localMediaCachePath"
    );
    assert_eq!(details[1]["code"], "CachePathNotAbsolute");
    assert!(!out.contains("leak-me-not"));
}

#[test]
fn json_summary_masks_the_password() {
    let (t, i) = (repo(TOPOLOGY), repo(INSTANCE));
    let (code, out, _) = validate(&[
        t.to_str().unwrap(),
        "--instance",
        i.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["graph"]["sources"][0]["credentials"]["password"],
        "***"
    );
    assert_eq!(
        report["graph"]["asset_sinks"][0]["cache_max_bytes"],
        2048u64 << 20
    );
    assert!(!out.contains("change-me"));
}

#[test]
fn malformed_json_is_located_by_line_and_column() {
    let t = repo("tests/fixtures/lva-topologies/history/motion-with-httpGraphExtension.json");
    let (code, _, err) = validate(&[t.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "$: InvalidJson: malformed JSON at line 81 column 11: key must be a string\n"
        ),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let i = write(&dir, "i.json", "{\"name\": \"x\",\n}");
    let (code, _, err) = validate(&[
        repo(TOPOLOGY).to_str().unwrap(),
        "--instance",
        i.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("instance:$: InvalidJson: malformed JSON at line 2 column 1"),
        "{err}"
    );
}

#[test]
fn unsupported_nodes_are_named() {
    let t = repo("tests/fixtures/lva-topologies/cvr-with-motion@2.0.json");
    let (code, _, err) = validate(&[
        t.to_str().unwrap(),
        "--param",
        "rtspUrl=rtsp://127.0.0.1/cam",
    ]);
    assert_eq!(code, 2);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "$.properties.processors[0]: NodeTypeNotSupported: node type #Microsoft.Media.MediaGraphMotionDetectionProcessor is not supported by this host (node 'motionDetection')",
            "$.properties.sinks[0]: NodeTypeNotSupported: node type #Microsoft.Media.MediaGraphIoTHubMessageSink is not supported by this host (node 'hubSink')",
            &format!("invalid: 2 error(s) in {}", t.display()),
        ]
    );
}

#[test]
fn warnings_do_not_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo(TOPOLOGY)).unwrap().replace(
        "\"name\": \"assetSink\",",
        "\"name\": \"assetSink\", \"retention\": \"P1D\",",
    );
    let t = write(&dir, "t.json", &text);
    let (code, out, err) = validate(&[t.to_str().unwrap(), "--param", "rtspUrl=rtsp://cam/1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid:"));
    assert_eq!(
        err,
        "warning: $.properties.sinks[0].retention: PropertyUnknown: property 'retention' is not used by this host and is ignored\n"
    );
}

#[test]
fn unreadable_file_is_an_error_not_a_verdict() {
    let (code, _, err) = validate(&["/nonexistent/topology.json"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read /nonexistent/topology.json"),
        "{err}"
    );
}

#[test]
fn every_shipped_topology_validates_with_its_instance() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("topologies")).unwrap() {
        let dir = entry.unwrap().path();
        let (t, i) = (dir.join("topology.json"), dir.join("instance.json"));
        let (code, out, err) = validate(&[t.to_str().unwrap(), "--instance", i.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {out}{err}", dir.display());
        assert_eq!(err, "", "{}", dir.display());
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} topologies shipped");
}

#[test]
fn plugin_names_are_checked_against_the_plugin_directory() {
    let (t, i) = (
        repo("topologies/cvr-local/topology.json"),
        repo("topologies/cvr-local/instance.json"),
    );
    let (t, i) = (t.to_str().unwrap(), i.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    // An installed plugin: a copy of the embedded evict-oldest component under another name.
    std::fs::copy(
        concat!(env!("OUT_DIR"), "/evict_oldest.wasm"),
        dir.path().join("my-evictor.wasm"),
    )
    .unwrap();
    let plugin_dir = dir.path().to_str().unwrap();

    let (code, out, err) = validate(&[
        t,
        "--instance",
        i,
        "--param",
        "evictor=my-evictor",
        "--plugin-dir",
        plugin_dir,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("plugins: segmenter segmenter-gop, evictor my-evictor, formatter format-cmaf"),
        "{out}"
    );

    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = validate(&[
        t,
        "--instance",
        i,
        "--param",
        "evictor=my-evictor",
        "--plugin-dir",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("$.properties.sinks[0].plugins.evictor: PluginUnknown: no evictor plugin named 'my-evictor'"), "{err}");

    let (code, _, err) = validate(&[
        t,
        "--instance",
        i,
        "--param",
        "evictor=format-cmaf",
        "--plugin-dir",
        plugin_dir,
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("$.properties.sinks[0].plugins.evictor: PluginKindMismatch: plugin 'format-cmaf' is of kind formatter"), "{err}");
}
