//! `mediagraph serve` end to end, driven over HTTP as a client would: the real binary, the
//! built-in test camera as the peer, SIGTERM and kill -9.

mod record_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use record_support::*;
use serde_json::{Value, json};

/// Bound on start-up to recording (the first start compiles the plugins in debug builds).
const STARTUP: Duration = Duration::from_secs(120);
const TOPOLOGY: &str = include_str!("../../topologies/cvr-asset/topology.json");

fn serve(data: &Path) -> Proc {
    serve_with(data, &[])
}

fn serve_with(data: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--progress-secs", "1"])
        .args(extra)
        .env("RUST_LOG", "info");
    Proc::spawn(cmd)
}

/// The address from the `serve: listening on http://ADDR/` line on stdout.
fn address(p: &mut Proc) -> SocketAddr {
    address_and_stdout(p).0
}

/// The address, and everything `serve` writes to stdout (kept as it comes).
fn address_and_stdout(p: &mut Proc) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<String>>) {
    let stdout = p.child.stdout.take().expect("piped stdout");
    let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn({
        let all = all.clone();
        move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line on stdout:\n{}", p.log()));
        if let Some(rest) = line.strip_prefix("serve: listening on http://") {
            return (rest.split('/').next().unwrap().parse().unwrap(), all);
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self::with_headers(addr, reqwest::header::HeaderMap::new())
    }

    /// A client that sends `Authorization: Bearer TOKEN` with every request.
    fn with_token(addr: SocketAddr, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Self::with_headers(addr, headers)
    }

    fn with_headers(addr: SocketAddr, headers: reqwest::header::HeaderMap) -> Self {
        // reqwest is built without a TLS provider of its own (the service installs ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    /// A method call, its whole answer kept as text.
    async fn call_text(&self, method: &str, payload: Value) -> (u16, String) {
        let body =
            json!({"methodName": method, "responseTimeoutInSeconds": 120, "payload": payload});
        let r = self
            .http
            .post(format!("{}/methods", self.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method}: {text}"));
        (v["status"].as_u64().unwrap() as u16, text)
    }

    async fn call(&self, method: &str, payload: Value) -> (u16, Value) {
        let body =
            json!({"methodName": method, "responseTimeoutInSeconds": 120, "payload": payload});
        let r = self
            .http
            .post(format!("{}/methods", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{method}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        (v["status"].as_u64().unwrap() as u16, v["payload"].clone())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").await.1).unwrap()
    }
}

fn instance(name: &str, url: &str) -> Value {
    json!({"@apiVersion": "2.0", "name": name, "properties": {
    "topologyName": "CVRToAsset",
    "parameters": [
        {"name": "rtspUrl", "value": url},
        {"name": "cacheMaxMiB", "value": "64"}
    ]}})
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn frames(status: &Value) -> u64 {
    status["instances"][0]["sinks"][0]["frames"]
        .as_u64()
        .unwrap_or(0)
}

fn mp4s(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_activate_restart_resumes_and_deactivate_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let data = tmp.path().join("data");
    let mut service = serve(&data);
    let api = Client::new(address(&mut service));

    // One process per data directory: a second serve, and a run, are refused with exit 2.
    let second = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("in use by another mediagraph process"),
        "{message}"
    );
    let topology_file = tmp.path().join("topology.json");
    std::fs::write(&topology_file, TOPOLOGY).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("run")
        .arg(&topology_file)
        .arg("--data-dir")
        .arg(&data)
        .args(["--param", &format!("rtspUrl={url}")])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
    assert_eq!(api.call("GraphTopologySet", topology).await.0, 201);
    assert_eq!(
        api.call("GraphInstanceSet", instance("cam-1", &url))
            .await
            .0,
        201
    );
    let name = json!({"@apiVersion": "2.0", "name": "cam-1"});
    let (s, p) = api.call("GraphInstanceActivate", name.clone()).await;
    assert_eq!(s, 200, "{p}");
    wait_for("frames recorded", STARTUP, async || {
        let st = api.status().await;
        st["instances"][0]["sinks"][0]["camera"]["connected"] == true && frames(&st) > 50
    })
    .await;
    let st = api.status().await;
    assert!(
        st["instances"][0]["sinks"][0]["lastFrameTime"].is_string(),
        "{st}"
    );
    let (_, metrics) = api.get("/metrics").await;
    let received = metrics
        .lines()
        .find(|l| l.starts_with("lva_received_bytes_total{"))
        .unwrap_or_else(|| panic!("{metrics}"));
    // Bytes count when a fragment (up to 2 s of GOPs) is written, so this may still be 0.
    let bytes: f64 = received.rsplit(' ').next().unwrap().parse().unwrap();
    // The values follow the recording: bytes received and frames grow, the cache fills.
    let frames_then = frames(&st);
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
    };
    wait_for("metrics to grow", Duration::from_secs(30), async || {
        let (_, now) = api.get("/metrics").await;
        metric(&now, "lva_received_bytes_total") > bytes
            && metric(&now, "mediagraph_cache_bytes") > 0.0
    })
    .await;
    assert!(frames(&api.status().await) > frames_then);

    // SIGTERM: recording stops (sealed, uploaded), the desired state stays.
    service.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.is_running() {
        assert!(
            Instant::now() < deadline,
            "serve did not stop:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        service.child.wait().unwrap().code(),
        Some(0),
        "{}",
        service.log()
    );
    let asset = data.join("assets/CVRToAsset-cam-1");
    let first_run = mp4s(&asset).len();
    assert!(
        first_run >= 1,
        "no segment uploaded at SIGTERM:\n{}",
        service.log()
    );

    // Restart: cam-1 is activated again and records.
    let mut service = serve(&data);
    let api = Client::new(address(&mut service));
    wait_for("ready", STARTUP, async || api.get("/readyz").await.0 == 200).await;
    let st = api.status().await;
    assert_eq!(st["instances"][0]["state"], "Active", "{st}");
    wait_for("frames after restart", STARTUP, async || {
        frames(&api.status().await) > 50
    })
    .await;
    // The time the service was down is a gap with its cause in the cache's gaps.log.
    let cache = data.join("var/lib/mediagraph/cache/CVRToAsset.cam-1.assetSink");
    let restart_gaps: Vec<Value> = gaps(&cache)
        .into_iter()
        .filter(|g| g["cause"] == "RecorderStopped")
        .collect();
    assert_eq!(restart_gaps.len(), 1, "{:?}", gaps(&cache));
    let (start, end) = (
        restart_gaps[0]["start"].as_i64().unwrap(),
        restart_gaps[0]["end"].as_i64().unwrap(),
    );
    assert!(end > start, "{restart_gaps:?}");
    let (_, metrics) = api.get("/metrics").await;
    let gap_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("mediagraph_gap_seconds{") && l.contains("cause=\"RecorderStopped\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let secs: f64 = gap_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (secs - (end - start) as f64 / 90_000.0).abs() < 0.01,
        "{gap_line}"
    );
    for name in [
        "mediagraph_rtsp_reconnects_total{",
        "mediagraph_upload_backlog_media_seconds{",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }

    // Deactivate answers once the recorder sealed and the segment is uploaded.
    let mut events = api
        .http
        .get(format!("{}/events", api.base))
        .send()
        .await
        .unwrap();
    let (s, p) = api.call("GraphInstanceDeactivate", name.clone()).await;
    assert_eq!((s, &p), (200, &Value::Null), "{p}");
    assert!(
        mp4s(&asset).len() > first_run,
        "no new segment after the restart: {:?}",
        mp4s(&asset)
    );
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("Microsoft.Media.Graph.Operational.GraphInstanceStopped") {
        assert!(
            Instant::now() < deadline,
            "no GraphInstanceStopped event: {seen}"
        );
        match tokio::time::timeout(Duration::from_secs(5), events.chunk()).await {
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            _ => break,
        }
    }
    assert!(seen.contains("\"dataVersion\":\"1.0\""), "{seen}");
    assert!(
        seen.contains("\"subject\":\"/graphInstances/cam-1\""),
        "{seen}"
    );
    let (_, got) = api.call("GraphInstanceGet", name).await;
    assert_eq!(got["properties"]["state"], "Inactive");
    let (code, log) = service.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// kill -9 at random moments while instances are being Set: every restart reads a whole state,
/// and every Set that was answered is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_sets_leaves_the_old_or_the_new_state() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut acked: Vec<String> = Vec::new();
    let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
    for round in 0..=6u64 {
        let mut service = serve(&data);
        let api = Client::new(address(&mut service));
        // All instances (several List pages).
        let mut stored: Vec<String> = Vec::new();
        let mut token = Value::Null;
        loop {
            let (s, list) = api
                .call(
                    "GraphInstanceList",
                    json!({"@apiVersion": "2.0", "@continuationToken": token}),
                )
                .await;
            assert_eq!(s, 200, "round {round}: {list}\n{}", service.log());
            stored.extend(
                list["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["name"].as_str().unwrap().to_owned()),
            );
            token = list["@continuationToken"].clone();
            if token.is_null() {
                break;
            }
        }
        for name in &acked {
            assert!(
                stored.contains(name),
                "round {round}: answered Set of {name} lost"
            );
        }
        if round == 6 {
            let (code, log) = service.stop();
            assert_eq!(code, Some(0), "{log}");
            break;
        }
        assert!(
            api.call("GraphTopologySet", topology.clone()).await.0 <= 201,
            "round {round}"
        );
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = tokio::spawn({
            let answered = answered.clone();
            async move {
                for i in 0.. {
                    let name = format!("r{round}-i{i}");
                    let body = json!({"methodName": "GraphInstanceSet",
                        "payload": instance(&name, "rtsp://127.0.0.1:1/x")});
                    let sent = api
                        .http
                        .post(format!("{}/methods", api.base))
                        .body(body.to_string())
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    let Ok(text) = response.text().await else {
                        return;
                    };
                    let v: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(v["status"], 201, "{v}");
                    answered.lock().unwrap().push(name);
                }
            }
        });
        // Kill somewhere in the middle of the writes (a different moment each round).
        tokio::time::sleep(Duration::from_millis(150 + round * 70)).await;
        service.signal("-KILL");
        let _ = service.child.wait();
        writer
            .await
            .expect("the writer stops at the first failed request");
        let done = std::mem::take(&mut *answered.lock().unwrap());
        acked.extend(done);
    }
    eprintln!("{} answered Sets survived 6 kill -9 rounds", acked.len());
    assert!(
        acked.len() > 6,
        "too few Sets answered to prove anything: {acked:?}"
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lva-topologies")
}

/// LVA's sample operations files replay through `mediagraph ops` unchanged: every operation is
/// sent and answered (their topologies use nodes this host does not implement, so the Sets are
/// refused with LVA's 400 and the rest follow from that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_operations_files_replay_through_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let mut service = serve(&tmp.path().join("data"));
    let addr = address(&mut service);
    let samples = fixtures().join("samples");
    // The multi-camera sample reads grpc.json from beside itself, as the C# app did.
    let multi = tmp.path().join("csharp-operationsMultiCam.json");
    std::fs::copy(samples.join("csharp-operationsMultiCam.json"), &multi).unwrap();
    std::fs::copy(
        fixtures().join("grpcExtension.json"),
        tmp.path().join("grpc.json"),
    )
    .unwrap();
    let files = [
        samples.join("csharp-operations.json"),
        samples.join("csharp-operations-apiVersion1.0.json"),
        samples.join("python-operations.json"),
        multi,
    ];
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
            .arg("ops")
            .arg(&file)
            .args(["--no-wait", "--url", &format!("http://{addr}")])
            .arg("--topologies")
            .arg(fixtures())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}:\n{stdout}\n{stderr}",
            file.display()
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let calls = doc["operations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["opName"] != "WaitForInput")
            .count();
        assert_eq!(
            stdout.matches("response (HTTP 200)").count(),
            calls,
            "{}:\n{stdout}",
            file.display()
        );
        assert!(stdout.contains("NodeTypeNotSupported"), "{stdout}");
    }
    let (code, log) = service.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// Deactivating and activating one camera's instance leaves the others recording: no new RTSP
/// session (no reconnect) and no dropped frame on them, and their frame counts keep growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_changing_state_does_not_disturb_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--count", "3"]);
    let mut service = serve(&tmp.path().join("data"));
    let api = Client::new(address(&mut service));
    let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
    assert_eq!(api.call("GraphTopologySet", topology).await.0, 201);
    for i in 1..=3 {
        let url = format!("rtsp://127.0.0.1:{port}/cam{i}");
        let name = format!("cam-{i}");
        assert_eq!(
            api.call("GraphInstanceSet", instance(&name, &url)).await.0,
            201
        );
        let p = json!({"@apiVersion": "2.0", "name": name});
        assert_eq!(api.call("GraphInstanceActivate", p).await.0, 200);
    }
    let sink = |st: &Value, i: usize| st["instances"][i]["sinks"][0].clone();
    wait_for("all three recording", STARTUP, async || {
        let st = api.status().await;
        (0..3).all(|i| sink(&st, i)["frames"].as_u64().unwrap_or(0) > 50)
    })
    .await;
    let before = api.status().await;
    let since = Instant::now();
    let cam2 = json!({"@apiVersion": "2.0", "name": "cam-2"});
    assert_eq!(
        api.call("GraphInstanceDeactivate", cam2.clone()).await.0,
        200
    );
    assert_eq!(api.call("GraphInstanceActivate", cam2).await.0, 200);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = api.status().await;
    // The recorder counts frames as GOP batches reach it, so each snapshot may lag the camera
    // by up to one 2 s fragment: 25 fps over the time between them, less 100 frames.
    let expected = (25.0 * since.elapsed().as_secs_f64()) as u64 - 100;
    for i in [0, 2] {
        let (b, a) = (sink(&before, i), sink(&after, i));
        assert_eq!(a["camera"]["sessions"], 1, "cam-{} reconnected: {a}", i + 1);
        assert_eq!(a["droppedFrames"], 0, "cam-{}: {a}", i + 1);
        let grew = a["frames"].as_u64().unwrap() - b["frames"].as_u64().unwrap();
        assert!(
            grew >= expected,
            "cam-{} recorded {grew} frames, {expected} expected: {b} → {a}",
            i + 1
        );
    }
    assert_eq!(after["instances"][1]["state"], "Active");
    let (code, log) = service.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// `--log-format json`: every stderr line is one JSON object. `--log-level warning` quiets the
/// log (it wins over RUST_LOG=info) but not the events, which have their own level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_and_events_that_the_log_level_does_not_hide() {
    let tmp = tempfile::tempdir().unwrap();
    let mut service = serve_with(
        &tmp.path().join("data"),
        &["--log-format", "json", "--log-level", "warning"],
    );
    let api = Client::new(address(&mut service));
    let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
    assert_eq!(api.call("GraphTopologySet", topology).await.0, 201);
    let cam = instance("cam-1", "rtsp://127.0.0.1:1/cam1");
    assert_eq!(api.call("GraphInstanceSet", cam).await.0, 201);
    let name = json!({"@apiVersion": "2.0", "name": "cam-1"});
    assert_eq!(api.call("GraphInstanceActivate", name).await.0, 200);
    let (code, log) = service.stop();
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("not one JSON object: {l:?}\n{log}"))
        })
        .collect();
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l["target"] == "event")
        .map(|l| serde_json::from_str(l["fields"]["message"].as_str().unwrap()).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    for wanted in ["GraphInstanceStarted", "GraphInstanceStopped"] {
        assert!(
            types
                .iter()
                .any(|t| *t == format!("Microsoft.Media.Graph.Operational.{wanted}")),
            "{wanted} missing from {types:?}"
        );
    }
    // Information lines (`Request started`, `activating`) are below the log level.
    assert!(
        lines
            .iter()
            .all(|l| l["target"] == "event"
                || ["WARN", "ERROR"].contains(&l["level"].as_str().unwrap())),
        "{log}"
    );
}

const CAMERA_PASSWORD: &str = "Cam-Pa55word-7f3e91c2";
const API_TOKEN: &str = "api-token-4c2d8e0b9a7f6e5d1c3b";

/// No secret leaves the service: a camera password (SecretString) and the API token never
/// appear in any answer (methods, status, metrics, events, playback, a refused request), in
/// what `ops` prints, or in serve's stdout and stderr, with the log at its most verbose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_answer_or_log() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(
        port,
        &[
            "--user",
            "admin",
            "--password",
            CAMERA_PASSWORD,
            "--auth",
            "digest",
        ],
    );
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, API_TOKEN).unwrap();
    let token_arg = token_file.to_str().unwrap();
    let mut service = serve_with(
        &tmp.path().join("data"),
        &["--api-token-file", token_arg, "--log-level", "verbose"],
    );
    let (addr, stdout) = address_and_stdout(&mut service);
    let api = Client::with_token(addr, API_TOKEN);
    let mut seen = String::new();

    let mut events = api
        .http
        .get(format!("{}/events", api.base))
        .send()
        .await
        .unwrap();
    let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
    seen += &api.call_text("GraphTopologySet", topology).await.1;
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let cam = |name: &str| {
        json!({"@apiVersion": "2.0", "name": name, "properties": {
        "topologyName": "CVRToAsset",
        "parameters": [
            {"name": "rtspUrl", "value": url},
            {"name": "rtspUserName", "value": "admin"},
            {"name": "rtspPassword", "value": CAMERA_PASSWORD},
            {"name": "cacheMaxMiB", "value": "64"}
        ]}})
    };
    let (s, text) = api.call_text("GraphInstanceSet", cam("cam-1")).await;
    assert_eq!(s, 201, "{text}");
    seen += &text;
    let name = json!({"@apiVersion": "2.0", "name": "cam-1"});
    seen += &api.call_text("GraphInstanceActivate", name.clone()).await.1;
    wait_for("recording behind digest auth", STARTUP, async || {
        frames(&api.status().await) > 25
    })
    .await;
    let ava = json!({"@apiVersion": "1.0", "name": "cam-1"});
    for (method, payload) in [
        ("GraphInstanceGet", name.clone()),
        ("GraphInstanceList", json!({"@apiVersion": "2.0"})),
        (
            "GraphTopologyGet",
            json!({"@apiVersion": "2.0", "name": "CVRToAsset"}),
        ),
        ("GraphTopologyList", json!({"@apiVersion": "2.0"})),
        ("livePipelineGet", ava.clone()),
        ("livePipelineList", json!({"@apiVersion": "1.0"})),
    ] {
        let (s, text) = api.call_text(method, payload).await;
        assert_eq!(s, 200, "{method}: {text}");
        seen += &text;
    }
    for path in ["/status", "/metrics", "/readyz", "/healthz", "/assets", "/"] {
        let (s, text) = api.get(path).await;
        assert_eq!(s, 200, "{path}");
        seen += &text;
    }
    // Refused requests: a wrong token, none at all.
    let stranger = Client::with_token(addr, "not-the-token-0123456789");
    let (s, text) = stranger.get("/status").await;
    assert_eq!(s, 401);
    seen += &text;
    let (s, text) = Client::new(addr).get("/metrics").await;
    assert_eq!(s, 401);
    seen += &text;

    // `ops` sets another instance with the same password and prints every request.
    let ops_file = tmp.path().join("ops.json");
    let ops = json!({"apiVersion": "2.0", "operations": [
        {"opName": "GraphInstanceSet", "opParams": cam("cam-2")},
        {"opName": "GraphInstanceGet", "opParams": {"name": "cam-2"}},
        {"opName": "GraphInstanceDelete", "opParams": {"name": "cam-2"}}
    ]});
    std::fs::write(&ops_file, ops.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("ops")
        .arg(&ops_file)
        .args([
            "--no-wait",
            "--url",
            &api.base,
            "--api-token-file",
            token_arg,
        ])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert_eq!(
        printed.matches("response (HTTP 200)").count(),
        3,
        "{printed}"
    );
    assert!(printed.contains("\"status\": 201"), "{printed}");
    assert!(printed.contains("rtspPassword"), "{printed}");

    let (s, text) = api.call_text("GraphInstanceDeactivate", name).await;
    assert_eq!(s, 200, "{text}");
    seen += &text;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("GraphInstanceStopped") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), events.chunk()).await {
            Ok(Ok(Some(c))) => seen += &String::from_utf8_lossy(&c),
            _ => break,
        }
    }
    assert!(seen.contains("MediaSessionEstablished"), "{seen}");
    let (code, log) = service.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("DEBUG"), "the log was verbose");
    let stdout = stdout.lock().unwrap().clone();
    for secret in [CAMERA_PASSWORD, API_TOKEN] {
        for (what, text) in [
            ("an answer", &seen),
            ("ops output", &printed),
            ("stdout", &stdout),
            ("stderr", &log),
        ] {
            assert!(!text.contains(secret), "a secret in {what}");
        }
    }
}
