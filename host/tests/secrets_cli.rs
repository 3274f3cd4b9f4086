//! Bad input carrying known secret values, run through the real binary: every case is refused
//! or reported by name, and no byte of any output (stdout, stderr, events, the process's
//! command line) holds the secret. Needs nothing but the binary.

mod record_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use record_support::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs the binary to completion: exit code and everything it printed.
fn mediagraph(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .args(args)
        .env_remove("MEDIAGRAPH_AZURE_CONNECTION_STRING")
        .output()
        .expect("run mediagraph");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn refused_urls_and_store_urls_never_show_their_secrets() {
    let topology = repo("topologies/cvr-asset/topology.json");
    let topology = topology.to_str().unwrap();
    let json_path = "$.properties.sources[0].endpoint.url";
    for (secret, url, code) in [
        (
            "S3CRET-TLS",
            "rtsps://admin:S3CRET-TLS@127.0.0.1:8554/cam1",
            "RtspTlsNotSupported",
        ),
        (
            "S3CRET-USERINFO",
            "rtsp://admin:S3CRET-USERINFO@127.0.0.1:8554/cam1",
            "RtspUrlCredentialsNotSupported",
        ),
        (
            "S3CRET-BADPORT",
            "rtsp://admin:S3CRET-BADPORT@127.0.0.1:99999/cam1",
            "RtspEndpointUrlInvalid",
        ),
    ] {
        let param = format!("rtspUrl={url}");
        for json in [false, true] {
            let mut args = vec!["validate", topology, "--param", &param];
            if json {
                args.push("--json");
            }
            let (status, out) = mediagraph(&args);
            assert_eq!(status, 2, "{url}: {out}");
            assert!(
                out.contains(code) && out.contains(json_path),
                "{url}: {out}"
            );
            assert!(!out.contains(secret), "{url} leaked: {out}");
        }
    }

    // A secret read from a file is used and not shown.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "S3CRET-VALIDATE\n").unwrap();
    let param_file = format!("rtspPassword={}", file.display());
    let (status, out) = mediagraph(&[
        "validate",
        topology,
        "--param",
        "rtspUrl=rtsp://127.0.0.1:8554/cam1",
        "--param-file",
        &param_file,
        "--json",
    ]);
    assert_eq!(status, 0, "{out}");
    assert!(!out.contains("S3CRET-VALIDATE"), "{out}");
    let (status, out) = mediagraph(&["validate", topology, "--param", "cachePath=/../../tmp/x"]);
    assert_eq!(status, 2, "{out}");
    assert!(
        out.contains("$.properties.sinks[0].localMediaCachePath: CachePathInvalid"),
        "{out}"
    );

    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    for (secret, store) in [
        (
            "S3CRET-SIG1",
            "htps://acct.blob.core.windows.net/c?sv=1&sig=S3CRET-SIG1",
        ),
        (
            "S3CRET-SIG2",
            "https//acct.blob.core.windows.net/c&sig=S3CRET-SIG2",
        ),
    ] {
        let (status, out) = mediagraph(&[
            "run",
            topology,
            "--param",
            "rtspUrl=rtsp://127.0.0.1:1/cam1",
            "--data-dir",
            data,
            "--asset-store",
            store,
        ]);
        assert_ne!(status, 0, "{out}");
        assert!(out.contains("--asset-store"), "{out}");
        assert!(!out.contains(secret), "{store} leaked: {out}");
    }
}

#[test]
fn a_password_from_a_file_is_used_and_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = "S3CRET-FROM-FILE";
    let _camera = camera(port, &["--user", "admin", "--password", secret]);
    let topology = write_topology(
        tmp.path(),
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        64,
        "PT30S",
    );
    let file = tmp.path().join("password");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let param_file = format!("password={}", file.display());
    let mut rec = recorder_with(
        &topology,
        &tmp.path().join("data"),
        &["user=admin"],
        &["--param-file", &param_file],
    );
    // Recording proves the file's value was the password sent (the default is "secret").
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", rec.pid())).unwrap();
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!String::from_utf8_lossy(&cmdline).contains(secret));
    assert!(!log.contains(secret), "{log}");
    assert!(!format!("{events:?}").contains(secret));
    assert!(diagnostics(&events, "AuthenticationError").is_empty());
}

/// The recorder's runtime failures with known secrets: a wrong camera password, a camera that
/// answers garbage after the (authenticated) handshake and one that answers HTTP, all with
/// credentials, and an Azure store whose SAS (given by file) cannot be reached. Every failure
/// is reported as its diagnostic, and no byte of the output, the events or the command line
/// holds any of the secrets.
#[test]
fn runtime_failures_never_show_the_secrets_involved() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let camera_password = "S3CRET-CAMERA";
    let _camera = camera(port, &["--user", "admin", "--password", camera_password]);
    let base = format!("rtsp://127.0.0.1:{port}");
    let topology = write_topology(tmp.path(), &format!("{base}/cam1"), 64, "PT30S");
    let instances = [
        ("right", format!("{base}/cam1"), camera_password),
        ("wrong", format!("{base}/cam1"), "S3CRET-WRONG"),
        // Garbage comes after the handshake, so this camera takes the right password.
        ("garbage", format!("{base}/fault/garbage"), camera_password),
        ("http", format!("{base}/fault/http"), "S3CRET-HTTP"),
    ];
    let mut args: Vec<String> = Vec::new();
    for (name, url, password) in &instances {
        let doc = serde_json::json!({
            "@apiVersion": "2.0",
            "name": name,
            "properties": {
                "topologyName": "RecordTest",
                "parameters": [
                    {"name": "url1", "value": url},
                    {"name": "password", "value": password}
                ]
            }
        });
        let path = tmp.path().join(format!("{name}.json"));
        std::fs::write(&path, doc.to_string()).unwrap();
        args.extend(["--instance".to_owned(), path.display().to_string()]);
    }
    // Nothing listens on port 1: every upload fails, and the error names the store.
    let sas = "S3CRET-SAS";
    let store_file = tmp.path().join("store-url");
    std::fs::write(
        &store_file,
        format!("http://127.0.0.1:1/devstoreaccount1/assets?sv=2024-01-01&sig={sas}\n"),
    )
    .unwrap();
    args.extend([
        "--asset-store-file".to_owned(),
        store_file.display().to_string(),
        "--upload-backoff-max-secs".to_owned(),
        "1".to_owned(),
        "--upload-flush-timeout-secs".to_owned(),
        "2".to_owned(),
    ]);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rec = recorder_with(&topology, &tmp.path().join("data"), &[], &extra);

    let subject = |name: &str, node: &str| format!("/graphInstances/{name}/{node}");
    let reported = |events: &[serde_json::Value], kind: &str, subject: &str| {
        diagnostics(events, kind)
            .iter()
            .any(|e| e["subject"] == subject)
    };
    // The store is tried at start, so every failure is reported within seconds.
    let expected = [
        ("AuthenticationError", subject("wrong", "sources/cam1")),
        ("ProtocolError", subject("http", "sources/cam1")),
        ("ProtocolError", subject("garbage", "sources/cam1")),
        ("StorageError", subject("right", "sinks/sink1")),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let events = rec.events();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(kind, s)| !reported(&events, kind, s))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            rec.is_running() && std::time::Instant::now() < deadline,
            "not reported: {missing:?}\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", rec.pid())).unwrap();
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let everything = format!("{log}\n{events:?}\n{}", String::from_utf8_lossy(&cmdline));
    for secret in [
        camera_password,
        "S3CRET-WRONG",
        "S3CRET-GARBAGE",
        "S3CRET-HTTP",
        sas,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}
