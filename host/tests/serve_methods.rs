//! The direct methods of `mediagraph serve`, driven over HTTP through the service's router
//! (in process, tower's `oneshot`): every method's success and error statuses and payloads,
//! the state machine with a camera that is down, and the state surviving a restart.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use mediagraph::events::EventBus;
use mediagraph::graph::RunOptions;
use mediagraph::plugin::PluginHost;
use mediagraph::service::{Policy, Service, api};
use mediagraph::upload::config::StoreArgs;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOPOLOGY: &str = include_str!("../../topologies/cvr-asset/topology.json");
/// Nothing listens there: the camera is down.
const DOWN_CAMERA: &str = "rtsp://127.0.0.1:1/cam1";

fn open(dir: &Path) -> Service {
    open_with(dir, Policy::default())
}

fn open_with(dir: &Path, policy: Policy) -> Service {
    open_full(dir, policy, StoreArgs::default())
}

fn open_full(dir: &Path, policy: Policy, store: StoreArgs) -> Service {
    let events = EventBus::new();
    let plugins = PluginHost::new(Some(dir.join("plugins")), events.clone()).unwrap();
    let options = RunOptions {
        data_dir: Some(dir.to_owned()),
        progress_every: Duration::from_secs(60),
        upload: store.setup(&dir.join("assets")).unwrap(),
    };
    Service::open(dir, plugins, events, options, policy).unwrap()
}

/// `POST /methods` as IoT Hub: HTTP 200 with `{status, payload}`.
async fn call(app: &Router, method: &str, payload: Value) -> (u16, Value) {
    let body = json!({"methodName": method, "responseTimeoutInSeconds": 30, "payload": payload});
    let response = app
        .clone()
        .oneshot(
            Request::post("/methods")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{method}");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let status = v["status"].as_u64().expect("status") as u16;
    (status, v["payload"].clone())
}

/// `POST /methods/{name}` with a raw body: the HTTP status and the body.
async fn bare(app: &Router, method: &str, body: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(
            Request::post(format!("/methods/{method}"))
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, v)
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn topology(version: &str) -> Value {
    let mut t: Value = serde_json::from_str(TOPOLOGY).unwrap();
    t["@apiVersion"] = json!(version);
    t
}

fn instance(name: &str, url: &str) -> Value {
    json!({
        "@apiVersion": "2.0",
        "name": name,
        "properties": {
            "topologyName": "CVRToAsset",
            "description": "a camera",
            "parameters": [
                {"name": "rtspUrl", "value": url},
                {"name": "rtspPassword", "value": "pa55-w0rd-never-shown"},
                {"name": "cacheMaxMiB", "value": "64"}
            ]
        }
    })
}

fn detail_codes(payload: &Value) -> Vec<String> {
    payload["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn topology_methods_answer_as_lva_documents() {
    let dir = tempfile::tempdir().unwrap();
    let app = api::routes(open(dir.path()));

    let (s, created) = call(&app, "GraphTopologySet", topology("2.0")).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["name"], "CVRToAsset");
    let sd = &created["systemData"];
    assert_eq!(sd["createdAt"], sd["lastModifiedAt"]);
    assert!(created.get("@apiVersion").is_none());
    assert_eq!(created["properties"]["sources"][0]["name"], "rtspSource");

    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, updated) = call(&app, "GraphTopologySet", topology("1.0")).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["systemData"]["createdAt"], sd["createdAt"]);
    assert_ne!(
        updated["systemData"]["lastModifiedAt"],
        sd["lastModifiedAt"]
    );

    let (s, got) = call(
        &app,
        "GraphTopologyGet",
        json!({"@apiVersion": "2.0", "name": "CVRToAsset"}),
    )
    .await;
    assert_eq!((s, &got), (200, &updated));
    let (s, missing) = call(
        &app,
        "GraphTopologyGet",
        json!({"@apiVersion": "2.0", "name": "nope"}),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(missing["error"]["code"], "NotFound");

    let (s, list) = call(&app, "GraphTopologyList", json!({"@apiVersion": "2.0"})).await;
    assert_eq!(s, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert!(list.get("@continuationToken").is_none());
    let (s, _) = call(
        &app,
        "GraphTopologyList",
        json!({"@apiVersion": "2.0", "@query": "$orderby=name desc"}),
    )
    .await;
    assert_eq!(s, 400);

    let (s, p) = call(
        &app,
        "GraphTopologyDelete",
        json!({"@apiVersion": "2.0", "name": "CVRToAsset"}),
    )
    .await;
    assert_eq!((s, p), (200, Value::Null));
    let (s, p) = call(
        &app,
        "GraphTopologyDelete",
        json!({"@apiVersion": "2.0", "name": "CVRToAsset"}),
    )
    .await;
    assert_eq!((s, p), (204, Value::Null));
    let (s, list) = call(&app, "GraphTopologyList", json!({"@apiVersion": "1.0"})).await;
    assert_eq!((s, list), (200, json!({"value": []})));
}

#[tokio::test]
async fn requests_that_are_not_understood_get_lva_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = api::routes(open(dir.path()));

    let (s, p) = call(
        &app,
        "GraphTopologyFrobnicate",
        json!({"@apiVersion": "2.0"}),
    )
    .await;
    assert_eq!(s, 501, "{p}");
    let (s, p) = call(&app, "GraphTopologyList", json!({"@apiVersion": "3.0"})).await;
    assert_eq!(s, 400);
    assert_eq!(p["error"]["code"], "InvalidVersion");
    let message = p["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("'3.0'") && message.contains("1.0, 2.0"),
        "{message}"
    );
    let (s, p) = call(&app, "pipelineTopologyList", json!({"@apiVersion": "2.0"})).await;
    assert_eq!(s, 400, "AVA speaks 1.0 only");
    assert!(
        p["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("Supported version(s): 1.0.")
    );
    let (s, _) = call(&app, "GraphTopologyList", json!({})).await;
    assert_eq!(s, 400, "@apiVersion is required");

    // Malformed JSON, on both routes.
    let (s, p) = bare(&app, "GraphTopologySet", "{\"@apiVersion\": \"2.0\",").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["error"]["code"], "BadRequest");
    let response = app
        .clone()
        .oneshot(
            Request::post("/methods")
                .body(Body::from("{\"methodName\": "))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The bare route: the method's status is the HTTP status.
    let (s, p) = bare(
        &app,
        "GraphTopologyGet",
        r#"{"@apiVersion":"2.0","name":"x"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p["error"]["code"], "NotFound");
    let (s, _) = bare(&app, "NoSuchMethod", "{}").await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn an_invalid_topology_gets_the_findings_validate_gives() {
    let dir = tempfile::tempdir().unwrap();
    let app = api::routes(open(dir.path()));
    let mut t = topology("2.0");
    t["properties"]["sources"][0]["endpoint"]["url"] = json!("http://camera/stream");
    t["properties"]["sinks"][0]["segmentLength"] = json!("PT7S");
    let (s, p) = call(&app, "GraphTopologySet", t.clone()).await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["error"]["code"], "InvalidResource");
    let validate = mediagraph::topology::check(
        &t.to_string(),
        None,
        &[],
        &mediagraph::topology::DefaultPluginNames,
        std::time::SystemTime::now(),
    );
    let mut expected = serde_json::to_value(validate.outcome.unwrap_err()).unwrap();
    let details = expected["error"]["details"].as_array_mut().unwrap();
    details.retain(|d| d["code"] != "ParameterValueMissing");
    assert_eq!(p, expected);
    assert!(detail_codes(&p).contains(&"RtspEndpointUrlInvalidScheme".to_owned()));
}

#[tokio::test]
async fn instance_methods_follow_the_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let app = api::routes(service.clone());
    let (s, p) = call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA)).await;
    assert_eq!(s, 409, "no topology yet: {p}");
    assert_eq!(detail_codes(&p), ["ResourceValidationError"]);
    assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);

    let (s, p) = call(&app, "GraphInstanceSet", instance("cam-1", "http://x/")).await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["error"]["code"], "InvalidResource");
    let (s, p) = call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA)).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["properties"]["state"], "Inactive");
    assert!(!p.to_string().contains("pa55-w0rd"), "secret returned: {p}");
    assert_eq!(
        p["properties"]["parameters"][1],
        json!({"name": "rtspPassword"})
    );
    let (s, _) = call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA)).await;
    assert_eq!(s, 200);

    let (s, p) = call(
        &app,
        "GraphTopologyDelete",
        json!({"@apiVersion": "2.0", "name": "CVRToAsset"}),
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(detail_codes(&p), ["GraphTopologyInUse"]);
    assert!(p.to_string().contains("'cam-1'"), "{p}");

    let name = json!({"@apiVersion": "2.0", "name": "cam-1"});
    let (s, p) = call(&app, "GraphInstanceActivate", name.clone()).await;
    assert_eq!((s, &p), (200, &Value::Null), "{p}");
    let (s, p) = call(&app, "GraphInstanceActivate", name.clone()).await;
    assert_eq!(
        (s, p),
        (200, Value::Null),
        "Activate on Active is immediate"
    );
    let (_, p) = call(&app, "GraphInstanceGet", name.clone()).await;
    assert_eq!(p["properties"]["state"], "Active");
    let (_, p) = call(
        &app,
        "livePipelineGet",
        json!({"@apiVersion": "1.0", "name": "cam-1"}),
    )
    .await;
    assert_eq!(
        p["properties"]["state"], "active",
        "AVA spells states in lowercase"
    );

    let (s, p) = call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA)).await;
    assert_eq!(s, 409);
    assert_eq!(
        detail_codes(&p),
        ["GraphInstanceOperationNotValidInCurrentState"]
    );
    let (s, p) = call(&app, "GraphInstanceDelete", name.clone()).await;
    assert_eq!(s, 409);
    assert_eq!(detail_codes(&p), ["OperationNotAllowedInState"]);
    let (s, _) = call(&app, "GraphTopologySet", topology("2.0")).await;
    assert_eq!(s, 409, "no topology update under an active instance");

    // The sink starts in the background (plugins compile on first use).
    let mut status = Value::Null;
    for _ in 0..600 {
        status = serde_json::from_str(&get(&app, "/status").await.1).unwrap();
        if !status["instances"][0]["sinks"][0].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cam = &status["instances"][0];
    assert_eq!(cam["state"], "Active");
    assert_eq!(cam["sinks"][0]["camera"]["connected"], false, "{status}");
    let (s, metrics) = get(&app, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        metrics.contains("lva_active_graph_instances{graph_topology=\"CVRToAsset\"} 1"),
        "{metrics}"
    );

    let (s, p) = call(&app, "GraphInstanceDeactivate", name.clone()).await;
    assert_eq!((s, &p), (200, &Value::Null), "{p}");
    let (_, p) = call(&app, "GraphInstanceGet", name.clone()).await;
    assert_eq!(p["properties"]["state"], "Inactive");
    let types: Vec<&str> = service
        .events()
        .recent()
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert!(
        types.contains(&"Microsoft.Media.Graph.Operational.GraphInstanceStopped"),
        "{types:?}"
    );
    assert!(
        !types.contains(&"Microsoft.Media.Edge.Diagnostics.RuntimeError"),
        "a Deactivate is no failure: {types:?}"
    );
    let (s, p) = call(&app, "GraphInstanceDeactivate", name.clone()).await;
    assert_eq!(
        (s, p),
        (200, Value::Null),
        "Deactivate on Inactive is immediate"
    );
    let missing = json!({"@apiVersion": "2.0", "name": "nope"});
    assert_eq!(
        call(&app, "GraphInstanceActivate", missing.clone()).await.0,
        404
    );
    assert_eq!(
        call(&app, "GraphInstanceDeactivate", missing.clone())
            .await
            .0,
        404
    );
    assert_eq!(call(&app, "GraphInstanceGet", missing.clone()).await.0, 404);
    assert_eq!(call(&app, "GraphInstanceDelete", missing).await.0, 204);
    let (s, p) = call(&app, "GraphInstanceDelete", name).await;
    assert_eq!((s, p), (200, Value::Null));
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        !metrics.contains("lva_active_graph_instances{"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_topology_update_must_keep_its_instances_valid() {
    let dir = tempfile::tempdir().unwrap();
    let app = api::routes(open(dir.path()));
    assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);
    assert_eq!(
        call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA))
            .await
            .0,
        201
    );
    // A new parameter without a default: cam-1 gives no value for it.
    let mut t = topology("2.0");
    t["properties"]["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra", "type": "String"}));
    let (s, p) = call(&app, "GraphTopologySet", t).await;
    assert_eq!(s, 400, "{p}");
    let details = p["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["target"]
            .as_str()
            .unwrap()
            .starts_with("graphInstances['cam-1']")),
        "{p}"
    );
}

#[tokio::test]
async fn lists_page_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let app = api::routes(open(dir.path()));
    let total = mediagraph::service::LIST_PAGE + 3;
    for i in 0..total {
        let mut t = topology("2.0");
        t["name"] = json!(format!("t-{i:03}"));
        assert_eq!(call(&app, "GraphTopologySet", t).await.0, 201);
    }
    let (s, first) = call(
        &app,
        "GraphTopologyList",
        json!({"@apiVersion": "2.0", "@query": "$orderby=name asc"}),
    )
    .await;
    assert_eq!(s, 200);
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut all = names(&first);
    assert_eq!(all.len(), mediagraph::service::LIST_PAGE);
    let token = first["@continuationToken"].clone();
    let (_, second) = call(
        &app,
        "GraphTopologyList",
        json!({"@apiVersion": "2.0", "@continuationToken": token}),
    )
    .await;
    assert!(second.get("@continuationToken").is_none());
    all.extend(names(&second));
    let expected: Vec<String> = (0..total).map(|i| format!("t-{i:03}")).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn state_survives_a_restart_and_active_instances_resume() {
    let dir = tempfile::tempdir().unwrap();
    {
        let service = open(dir.path());
        let app = api::routes(service.clone());
        assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);
        for name in ["cam-a", "cam-b"] {
            assert_eq!(
                call(&app, "GraphInstanceSet", instance(name, DOWN_CAMERA))
                    .await
                    .0,
                201
            );
        }
        let a = json!({"@apiVersion": "2.0", "name": "cam-a"});
        assert_eq!(call(&app, "GraphInstanceActivate", a).await.0, 200);
        // Shutdown stops recording but keeps cam-a's desired state.
        service.shutdown().await;
    }
    let service = open(dir.path());
    let app = api::routes(service.clone());
    let (s, _) = get(&app, "/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    service.resume().await;
    let (s, _) = get(&app, "/readyz").await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = call(&app, "GraphInstanceList", json!({"@apiVersion": "2.0"})).await;
    let states: Vec<(String, String)> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["properties"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("cam-a".to_owned(), "Active".to_owned()),
            ("cam-b".to_owned(), "Inactive".to_owned())
        ]
    );
    service.shutdown().await;
}

#[tokio::test]
async fn caches_are_named_by_topology_instance_and_sink() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let app = api::routes(service.clone());
    assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);
    for name in ["cam-a", "cam-b"] {
        assert_eq!(
            call(&app, "GraphInstanceSet", instance(name, DOWN_CAMERA))
                .await
                .0,
            201
        );
        let p = json!({"@apiVersion": "2.0", "name": name});
        assert_eq!(call(&app, "GraphInstanceActivate", p).await.0, 200);
    }
    let root = dir.path().join("var/lib/mediagraph/cache");
    for name in ["cam-a", "cam-b"] {
        // Activate answered once the sink started: its cache is open, it is in /status.
        let cache = root.join(format!("CVRToAsset.{name}.assetSink"));
        assert!(cache.is_dir(), "{} missing", cache.display());
    }
    let (_, status) = get(&app, "/status").await;
    let status: Value = serde_json::from_str(&status).unwrap();
    for i in 0..2 {
        assert_eq!(
            status["instances"][i]["sinks"][0]["sink"], "assetSink",
            "{status}"
        );
    }
    service.shutdown().await;
}

const TOKEN: &str = "serve-test-token-0123456789abcdef";

/// `serve`'s whole router (the front door with the service and playback routes) with `TOKEN`.
fn door_with_token(service: Service, dir: &Path) -> Router {
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let token = mediagraph::http::ApiToken::from_file(&file).unwrap();
    api::front_door(service, mediagraph::http::Limits::default(), Some(token)).into_router()
}

async fn get_with(app: &Router, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(t) = bearer {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn with_a_token_every_serve_route_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = door_with_token(open(dir.path()), dir.path());
    for path in [
        "/healthz", "/status", "/readyz", "/metrics", "/events", "/", "/assets",
    ] {
        let (s, body) = get_with(&app, path, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let (s, _) = get_with(&app, path, Some("wrong-token-0123456789")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
    }
    let methods = |bearer: Option<&str>| {
        let mut r = Request::post("/methods/GraphTopologyList");
        if let Some(t) = bearer {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::from(r#"{"@apiVersion":"2.0"}"#)).unwrap()
    };
    let r = app.clone().oneshot(methods(None)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.clone().oneshot(methods(Some(TOKEN))).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for path in ["/healthz", "/status", "/metrics"] {
        let (s, body) = get_with(&app, path, Some(TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains(TOKEN), "{path} answered the token");
    }
    // `?token=` opens playback only, never the control plane.
    let (s, _) = get_with(&app, &format!("/status?token={TOKEN}"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get_with(&app, &format!("/assets?token={TOKEN}"), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn serve_plays_back_the_assets_of_its_instances() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let app = door_with_token(service.clone(), dir.path());
    let (_, list) = get_with(&app, "/assets", Some(TOKEN)).await;
    assert_eq!(list, r#"{"assets":[]}"#);
    let methods = api::routes(service.clone());
    assert_eq!(
        call(&methods, "GraphTopologySet", topology("2.0")).await.0,
        201
    );
    assert_eq!(
        call(&methods, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA))
            .await
            .0,
        201
    );
    // The asset list follows the instances: cam-1's asset is offered as soon as it is Set.
    let (s, list) = get_with(&app, "/assets", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["assets"], json!(["CVRToAsset-cam-1"]));
    assert_eq!(
        list["instances"],
        json!([{"name": "cam-1", "state": "Inactive", "assets": ["CVRToAsset-cam-1"]}])
    );
    // Before its first upload the instance's asset has no media (LVA creates it on
    // activation); an asset no instance records into is unknown to the store.
    let query = "availableMedia?precision=year";
    let (s, body) = get_with(
        &app,
        &format!("/assets/CVRToAsset-cam-1/{query}&token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, r#"{"timeRanges":[]}"#));
    let (s, _) = get_with(
        &app,
        &format!("/assets/CVRToAsset-cam-2/{query}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, page) = get_with(&app, "/", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<html"), "{page}");
}

#[test]
fn serve_refuses_a_network_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("--api-token-file"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "refused before the data directory was touched"
    );
}

#[tokio::test]
async fn unsecured_endpoints_are_refused_when_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let strict = Policy {
        allow_unsecured_endpoints: false,
        ..Policy::default()
    };
    {
        let app = api::routes(open_with(dir.path(), strict.clone()));
        let (s, p) = call(&app, "GraphTopologySet", topology("2.0")).await;
        assert_eq!(s, 400, "{p}");
        assert_eq!(p["error"]["code"], "InvalidResource");
        assert_eq!(detail_codes(&p), ["UnsecuredEndpointNotAllowed"]);
        assert_eq!(
            p["error"]["details"][0]["target"],
            "$.properties.sources[0].endpoint"
        );
        assert!(
            p.to_string().contains("allowUnsecuredEndpoints"),
            "the message names the setting: {p}"
        );
    }
    // Stored while they were allowed, refused at Set and Activate once they are not.
    {
        let app = api::routes(open(dir.path()));
        assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);
        let (s, _) = call(&app, "GraphInstanceSet", instance("cam-1", DOWN_CAMERA)).await;
        assert_eq!(s, 201);
    }
    let service = open_with(dir.path(), strict);
    let app = api::routes(service.clone());
    let (s, p) = call(&app, "GraphInstanceSet", instance("cam-2", DOWN_CAMERA)).await;
    assert_eq!(
        (s, detail_codes(&p)),
        (400, vec!["UnsecuredEndpointNotAllowed".to_owned()])
    );
    let (s, p) = call(
        &app,
        "GraphInstanceActivate",
        json!({"@apiVersion": "2.0", "name": "cam-1"}),
    )
    .await;
    assert_eq!(
        (s, detail_codes(&p)),
        (400, vec!["UnsecuredEndpointNotAllowed".to_owned()])
    );
    let (_, got) = call(
        &app,
        "GraphInstanceGet",
        json!({"@apiVersion": "2.0", "name": "cam-1"}),
    )
    .await;
    assert_eq!(got["properties"]["state"], "Inactive");
    service.shutdown().await;
}

#[test]
fn serve_refuses_a_settings_file_with_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mediagraph.toml");
    std::fs::write(
        &config,
        "logLevel = \"Warning\"\nallowUnsecureEndpoints = true\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("allowUnsecureEndpoints") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());
}

/// `responseTimeoutInSeconds` running out before the flush ends: 200 with the state and why,
/// the instance stays Deactivating (Activate → 409) and becomes Inactive once the stop ends.
/// The stop is made slow for certain: the instance records the test camera, so its stop seals
/// a segment, and the store accepts connections but never answers, so the flush lasts until
/// its bound (2 s). (With a camera that is down the stop can end before a 0 s timeout fires.)
#[tokio::test]
async fn a_deactivate_that_runs_out_of_time_says_so_and_the_stop_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let silent_store = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let store = StoreArgs {
        asset_store: Some(format!(
            "http://{}/devstoreaccount1/cams?sv=2024-01-01&sig=c2VjcmV0",
            silent_store.local_addr().unwrap()
        )),
        upload_flush_timeout_secs: 2,
        ..StoreArgs::default()
    };
    let app = api::routes(open_full(dir.path(), Policy::default(), store));
    let camera = TestCamera::start();
    assert_eq!(call(&app, "GraphTopologySet", topology("2.0")).await.0, 201);
    let set = call(&app, "GraphInstanceSet", instance("cam-1", &camera.url)).await;
    assert_eq!(set.0, 201);
    let name = json!({"@apiVersion": "2.0", "name": "cam-1"});
    assert_eq!(
        call(&app, "GraphInstanceActivate", name.clone()).await.0,
        200
    );
    let mut frames = 0;
    for _ in 0..300 {
        let status: Value = serde_json::from_str(&get(&app, "/status").await.1).unwrap();
        frames = status["instances"][0]["sinks"][0]["frames"]
            .as_u64()
            .unwrap_or(0);
        if frames > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(frames > 0, "the instance records the camera");
    // No time at all: the stop (TEARDOWN, seal, flush) cannot have ended.
    let (s, p) = bare(
        &app,
        "GraphInstanceDeactivate?responseTimeoutInSeconds=0",
        &name.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["state"], "Deactivating", "{p}");
    let message = p["message"].as_str().unwrap();
    assert!(
        message.contains("responseTimeoutInSeconds (0 s)") && message.contains("goes on"),
        "{message}"
    );
    let mut state = String::new();
    for _ in 0..600 {
        let (_, got) = call(&app, "GraphInstanceGet", name.clone()).await;
        state = got["properties"]["state"].as_str().unwrap().to_owned();
        if state == "Inactive" {
            break;
        }
        assert_eq!(state, "Deactivating");
        let (s, _) = call(&app, "GraphInstanceActivate", name.clone()).await;
        assert_eq!(s, 409, "Activate while Deactivating");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "Inactive", "the stop ended by itself");
}

/// AVA's method names, over both routes, with `@apiVersion` 1.0 and states in lowercase.
#[tokio::test]
async fn avas_method_names_answer_with_lowercase_states() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    // Without a token the front door still answers /healthz (and only loopback Hosts).
    let (s, body) = get(
        &api::front_door(service.clone(), mediagraph::http::Limits::default(), None).into_router(),
        "/healthz",
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
    let app = api::routes(service.clone());
    let v1 = |name: &str| json!({"@apiVersion": "1.0", "name": name});

    let (s, p) = call(&app, "pipelineTopologySet", topology("1.0")).await;
    assert_eq!(s, 201, "{p}");
    let (s, p) = call(&app, "pipelineTopologyGet", v1("CVRToAsset")).await;
    assert_eq!((s, &p["name"]), (200, &json!("CVRToAsset")));
    let (s, p) = call(&app, "pipelineTopologyList", json!({"@apiVersion": "1.0"})).await;
    assert_eq!((s, p["value"].as_array().unwrap().len()), (200, 1));

    let mut pipeline = instance("cam-1", DOWN_CAMERA);
    pipeline["@apiVersion"] = json!("1.0");
    let (s, p) = call(&app, "livePipelineSet", pipeline).await;
    assert_eq!(
        (s, &p["properties"]["state"]),
        (201, &json!("inactive")),
        "{p}"
    );
    let (s, p) = bare(&app, "livePipelineActivate", &v1("cam-1").to_string()).await;
    assert_eq!((s, p), (StatusCode::OK, Value::Null));
    let (_, p) = call(&app, "livePipelineGet", v1("cam-1")).await;
    assert_eq!(p["properties"]["state"], "active");
    let (_, p) = call(&app, "livePipelineList", json!({"@apiVersion": "1.0"})).await;
    assert_eq!(p["value"][0]["properties"]["state"], "active");
    let (s, p) = call(&app, "livePipelineSet", {
        let mut i = instance("cam-1", DOWN_CAMERA);
        i["@apiVersion"] = json!("1.0");
        i
    })
    .await;
    assert_eq!(s, 409);
    assert!(p.to_string().contains("active state"), "{p}");
    let (s, _) = call(&app, "livePipelineDeactivate", v1("cam-1")).await;
    assert_eq!(s, 200);
    let (_, p) = call(&app, "livePipelineGet", v1("cam-1")).await;
    assert_eq!(p["properties"]["state"], "inactive");
    assert_eq!(call(&app, "livePipelineDelete", v1("cam-1")).await.0, 200);
    assert_eq!(call(&app, "livePipelineDelete", v1("cam-1")).await.0, 204);
    assert_eq!(
        call(&app, "pipelineTopologyDelete", v1("CVRToAsset"))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "pipelineTopologyGet", v1("CVRToAsset")).await.0,
        404
    );
    service.shutdown().await;
}

/// `/readyz` once resumed: ready, and explicitly degraded while the store does not answer.
#[tokio::test]
async fn readiness_reports_the_store_reachable_or_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    service.resume().await;
    let (s, body) = get(&api::routes(service), "/readyz").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&body["degraded"], &body["store"]["reachable"]),
        (&json!(false), &json!(true)),
        "{body}"
    );

    // An Azure container where nothing listens (port 1 on loopback).
    let other = tempfile::tempdir().unwrap();
    let store = StoreArgs {
        asset_store: Some(
            "http://127.0.0.1:1/devstoreaccount1/cams?sv=2024-01-01&sig=c2VjcmV0".into(),
        ),
        ..StoreArgs::default()
    };
    let service = open_full(other.path(), Policy::default(), store);
    service.resume().await;
    let (s, text) = get(&api::routes(service), "/readyz").await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        s,
        StatusCode::OK,
        "ready: recording goes on into the caches"
    );
    assert_eq!(body["degraded"], true, "{body}");
    assert_eq!(body["store"]["reachable"], false, "{body}");
    assert!(body["store"]["error"].is_string(), "{body}");
    assert!(!text.contains("c2VjcmV0"), "the SAS is not shown: {text}");
}

/// `mediagraph camera` on a free loopback port, killed on drop.
struct TestCamera {
    child: std::process::Child,
    url: String,
}

impl TestCamera {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Owned at once, so that the drop kills and reaps it on every path.
        let camera = Self {
            child: std::process::Command::new(env!("CARGO_BIN_EXE_mediagraph"))
                .args(["camera", "--port", &port.to_string()])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            url: format!("rtsp://127.0.0.1:{port}/cam1"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return camera;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test camera did not listen on {port}");
    }
}

impl Drop for TestCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
