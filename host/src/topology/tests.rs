//! Rule-by-rule tests: each case edits a known-good topology and states the exact finding
//! (code and JSON-path target) it must produce, or that it must still be accepted.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// 2020-05-12T23:33:09.381Z, the instant of LVA's EVR quickstart.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_589_326_389_381)
}

const CVR: &str = include_str!("../../../topologies/cvr-asset/topology.json");
const INSTANCE: &str = include_str!("../../../topologies/cvr-asset/instance.json");

fn base() -> Value {
    json!({
        "@apiVersion": "2.0",
        "name": "Cvr-1",
        "properties": {
            "parameters": [
                {"name": "rtspUrl", "type": "String"},
                {"name": "rtspPassword", "type": "SecretString", "default": "hunter2"},
                {"name": "cacheMiB", "type": "Int", "default": "2048"}
            ],
            "sources": [{
                "@type": "#Microsoft.Media.MediaGraphRtspSource",
                "name": "rtspSource",
                "endpoint": {
                    "@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint",
                    "url": "${rtspUrl}",
                    "credentials": {
                        "@type": "#Microsoft.Media.MediaGraphUsernamePasswordCredentials",
                        "username": "admin",
                        "password": "${rtspPassword}"
                    }
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.Media.MediaGraphAssetSink",
                "name": "assetSink",
                "assetNamePattern": "cam-${System.GraphInstanceName}",
                "segmentLength": "PT30S",
                "localMediaCachePath": "/var/cache/cam",
                "localMediaCacheMaximumSizeMiB": "${cacheMiB}",
                "inputs": [{"nodeName": "rtspSource"}]
            }]
        }
    })
}

fn params() -> Vec<(String, String)> {
    vec![("rtspUrl".into(), "rtsp://127.0.0.1:8554/cam1".into())]
}

/// Applies JSON-pointer edits: `Some(v)` sets (creating the last key), `None` removes.
fn edit(mut doc: Value, edits: &[(&str, Option<Value>)]) -> Value {
    for (pointer, value) in edits {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let parent = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match (parent, value) {
            (Value::Object(m), Some(v)) => {
                m.insert(key.to_owned(), v.clone());
            }
            (Value::Object(m), None) => {
                m.remove(key);
            }
            (Value::Array(a), Some(v)) if key == "-" => a.push(v.clone()),
            (Value::Array(a), Some(v)) => a[key.parse::<usize>().expect("index")] = v.clone(),
            (Value::Array(a), None) => {
                a.remove(key.parse::<usize>().expect("index"));
            }
            _ => panic!("cannot edit {pointer}"),
        }
    }
    doc
}

fn run(
    doc: &Value,
    instance: Option<&Value>,
    overrides: &[(String, String)],
) -> Result<ResolvedGraph, ErrorBody> {
    let instance = instance.map(Value::to_string);
    resolve(
        &doc.to_string(),
        instance.as_deref(),
        overrides,
        &DefaultPluginNames,
        now(),
    )
}

fn accepted(edits: &[(&str, Option<Value>)]) -> ResolvedGraph {
    let doc = edit(base(), edits);
    run(&doc, None, &params())
        .unwrap_or_else(|e| panic!("{edits:?} rejected:\n{}", e.to_json_pretty()))
}

/// The edit must be rejected with exactly this one finding.
fn rejected(edits: &[(&str, Option<Value>)], code: &str, target: &str) -> ErrorDetail {
    let doc = edit(base(), edits);
    let err = run(&doc, None, &params()).expect_err(&format!("{edits:?} accepted"));
    assert_eq!(
        err.details().len(),
        1,
        "{edits:?}: expected one finding, got {:#?}",
        err.details()
    );
    let d = &err.details()[0];
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (code, target),
        "{edits:?}: {d}"
    );
    d.clone()
}

const SINK: &str = "/properties/sinks/0";
const SEG: &str = "/properties/sinks/0/segmentLength";
const SEG_T: &str = "$.properties.sinks[0].segmentLength";

#[test]
fn base_topology_resolves_to_typed_values() {
    let g = accepted(&[]);
    assert_eq!(
        (g.topology_name.as_str(), g.instance_name.as_str()),
        ("Cvr-1", DEFAULT_INSTANCE_NAME)
    );
    let s = &g.sources[0];
    assert_eq!(
        (s.node.as_str(), s.url.as_str(), s.transport),
        (
            "rtspSource",
            "rtsp://127.0.0.1:8554/cam1",
            RtspTransport::Tcp
        )
    );
    let c = s.credentials.as_ref().expect("credentials");
    assert_eq!(
        (c.username.as_str(), c.password.expose()),
        ("admin", "hunter2")
    );
    let a = &g.asset_sinks[0];
    assert_eq!(a.asset_name.as_str(), "cam-default");
    assert_eq!(a.cache_path, std::path::PathBuf::from("/var/cache/cam"));
    assert_eq!(a.cache_max_bytes, 2048 << 20);
    // 2.0 without output selectors passes audio and video.
    assert_eq!(a.media, MediaSelection::AudioAndVideo);
    assert_eq!(a.plugins, PluginSelection::default());
}

#[test]
fn segment_length_accepts_30s_steps_up_to_5_minutes() {
    for (text, secs) in [
        ("PT30S", 30),
        ("PT0M30S", 30),
        ("PT1M", 60),
        ("PT1M30S", 90),
        ("PT2M30S", 150),
        ("PT300S", 300),
        ("PT5M", 300),
        ("pt1m", 60),
    ] {
        let g = accepted(&[(SEG, Some(json!(text)))]);
        assert_eq!(g.asset_sinks[0].segment_length.as_secs(), secs, "{text}");
        assert_eq!(
            g.asset_sinks[0].segment_length.ticks(),
            secs as i64 * 90_000
        );
    }
    let g = accepted(&[(SEG, None)]);
    assert_eq!(g.asset_sinks[0].segment_length, SegmentLength::DEFAULT);
}

#[test]
fn segment_length_rejects_everything_else() {
    for bad in [
        json!("PT45S"),
        json!("PT6M"),
        json!("PT0S"),
        json!("P1D"),
        json!("30"),
        json!(30),
        json!("PT30.5S"),
        json!("-PT30S"),
        json!("PT"),
        json!("P1M"),
        json!("PT5M30S"),
        json!("PT1H"),
        json!(""),
    ] {
        let d = rejected(
            &[(SEG, Some(bad.clone()))],
            code::SEGMENT_LENGTH_INVALID,
            SEG_T,
        );
        assert!(d.message.starts_with("segmentLength"), "{bad}: {d}");
    }
}

#[test]
fn cache_path_must_be_given_and_absolute() {
    let p = "/properties/sinks/0/localMediaCachePath";
    rejected(
        &[(p, None)],
        code::PROPERTY_REQUIRED,
        "$.properties.sinks[0].localMediaCachePath",
    );
    rejected(
        &[(p, Some(json!("var/cache")))],
        code::CACHE_PATH_NOT_ABSOLUTE,
        "$.properties.sinks[0].localMediaCachePath",
    );
    rejected(
        &[(p, Some(json!("./cache")))],
        code::CACHE_PATH_NOT_ABSOLUTE,
        "$.properties.sinks[0].localMediaCachePath",
    );
    // Out of the data directory, or a new cache at every start: refused.
    for bad in [
        "/../../tmp/x",
        "/var/cache/../../etc",
        "/var/cache/${System.DateTime}",
        "/var/cache/${system.precisedatetime}",
    ] {
        rejected(
            &[(p, Some(json!(bad)))],
            code::CACHE_PATH_INVALID,
            "$.properties.sinks[0].localMediaCachePath",
        );
    }
    let g = accepted(&[(
        p,
        Some(json!("/var/cache/${System.GraphInstanceName}/a..b")),
    )]);
    assert!(g.asset_sinks[0].cache_path.ends_with("a..b"));
}

#[test]
fn cache_size_is_a_positive_integer_holding_two_segments_at_2_mbits() {
    let p = "/properties/sinks/0/localMediaCacheMaximumSizeMiB";
    let t = "$.properties.sinks[0].localMediaCacheMaximumSizeMiB";
    assert_eq!(
        accepted(&[(p, Some(json!(2048)))]).asset_sinks[0].cache_max_bytes,
        2048 << 20
    );
    assert_eq!(minimum_cache_mib(SegmentLength::from_secs(30).unwrap()), 15);
    assert_eq!(minimum_cache_mib(SegmentLength::from_secs(60).unwrap()), 29);
    assert_eq!(
        minimum_cache_mib(SegmentLength::from_secs(300).unwrap()),
        144
    );
    accepted(&[(p, Some(json!("15")))]);
    accepted(&[(p, Some(json!("144"))), (SEG, Some(json!("PT5M")))]);
    rejected(&[(p, Some(json!("14")))], code::CACHE_SIZE_TOO_SMALL, t);
    let d = rejected(
        &[(p, Some(json!("143"))), (SEG, Some(json!("PT5M")))],
        code::CACHE_SIZE_TOO_SMALL,
        t,
    );
    assert!(
        d.message.contains("at least 144 MiB") && d.message.contains("2 Mbit/s"),
        "{d}"
    );
    for bad in ["0", "-5", "abc", "1.5", "", "99999999999999999999"] {
        rejected(&[(p, Some(json!(bad)))], code::PROPERTY_VALUE_INVALID, t);
    }
    rejected(&[(p, None)], code::PROPERTY_REQUIRED, t);
    // Through an Int parameter: a bad value is the parameter's fault, reported once.
    rejected(
        &[("/properties/parameters/2/default", Some(json!("lots")))],
        code::PARAMETER_VALUE_INVALID,
        "$.properties.parameters[2].default",
    );
}

#[test]
fn lenient_casings_and_numbers_are_accepted() {
    let g = accepted(&[
        ("/properties/sinks/0/localMediaCacheMaximumSizeMiB", None),
        (
            "/properties/sinks/0/LocalMediaCacheMaximumSizeMiB",
            Some(json!(30)),
        ),
        ("/properties/sources/0/transport", Some(json!("tcp"))),
        ("/properties/parameters/2/type", Some(json!("int"))),
    ]);
    assert_eq!(g.asset_sinks[0].cache_max_bytes, 30 << 20);
    // Recognised, but the RTSP client has no HTTP tunnelling: refused, never silently TCP.
    rejected(
        &[("/properties/sources/0/transport", Some(json!("HTTP")))],
        code::RTSP_TRANSPORT_NOT_SUPPORTED,
        "$.properties.sources[0].transport",
    );
    rejected(
        &[("/properties/sources/0/transport", Some(json!("Udp")))],
        code::PROPERTY_VALUE_INVALID,
        "$.properties.sources[0].transport",
    );
    rejected(
        &[(
            "/properties/sinks/0/LocalMediaCacheMaximumSizeMiB",
            Some(json!(30)),
        )],
        code::PROPERTY_DUPLICATE,
        "$.properties.sinks[0].localMediaCacheMaximumSizeMiB",
    );
}

#[test]
fn asset_names_follow_lvas_pattern() {
    let p = "/properties/sinks/0/assetNamePattern";
    let t = "$.properties.sinks[0].assetNamePattern";
    for c in ["<", ">", "%", "&", ":", "\\", "/", "?", "*", "+", ".", "'"] {
        rejected(
            &[(p, Some(json!(format!("cam{c}1"))))],
            code::PROPERTY_VALUE_INVALID_PATTERN,
            t,
        );
    }
    rejected(
        &[(p, Some(json!("x".repeat(261))))],
        code::PROPERTY_VALUE_INVALID_PATTERN,
        t,
    );
    rejected(
        &[(p, Some(json!("")))],
        code::PROPERTY_VALUE_INVALID_PATTERN,
        t,
    );
    accepted(&[(p, Some(json!("x".repeat(260))))]);
    let g = accepted(&[(
        p,
        Some(json!(
            "${System.GraphTopologyName}-${System.GraphInstanceName}-${System.DateTime}"
        )),
    )]);
    assert_eq!(
        g.asset_sinks[0].asset_name.as_str(),
        "Cvr-1-default-20200512T233309Z"
    );
    // PreciseDateTime has a '.', which LVA's asset name pattern forbids.
    let d = rejected(
        &[(p, Some(json!("cam-${System.PreciseDateTime}")))],
        code::PROPERTY_VALUE_INVALID_PATTERN,
        t,
    );
    assert!(d.message.contains("20200512T233309.381Z"), "{d}");
    rejected(
        &[(p, Some(json!("cam-${System.Nope}")))],
        code::SYSTEM_VARIABLE_UNKNOWN,
        t,
    );
    rejected(
        &[(p, Some(json!("cam-${rtspUrl")))],
        code::PARAMETER_REFERENCE_INVALID,
        t,
    );
    rejected(
        &[(p, Some(json!("cam-${nope}")))],
        code::PARAMETER_NOT_DECLARED,
        t,
    );
    rejected(&[(p, None)], code::PROPERTY_REQUIRED, t);
}

#[test]
fn names_follow_lvas_resource_name_rule() {
    for good in ["a", "Cam-1", "A1b2", &"x".repeat(32)] {
        assert!(is_valid_resource_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", "a_b", "a b", &"x".repeat(33), "café"] {
        assert!(!is_valid_resource_name(bad), "{bad}");
        rejected(&[("/name", Some(json!(bad)))], code::NAME_INVALID, "$.name");
    }
    rejected(&[("/name", None)], code::PROPERTY_REQUIRED, "$.name");
}

#[test]
fn graph_structure_rules() {
    let gate = |name: &str, input: &str| json!({"@type": "#Microsoft.Media.MediaGraphMotionDetectionProcessor", "name": name, "inputs": [{"nodeName": input}]});
    rejected(
        &[(
            "/properties/sinks/0/inputs/0/nodeName",
            Some(json!("nowhere")),
        )],
        code::NODE_INPUT_UNKNOWN,
        "$.properties.sinks[0].inputs[0].nodeName",
    );
    rejected(
        &[("/properties/sinks/0/name", Some(json!("rtspSource")))],
        code::NODE_NAME_DUPLICATE,
        "$.properties.sinks[0].name",
    );
    rejected(
        &[("/properties/sinks/0/inputs", Some(json!([])))],
        code::NODE_INPUTS_REQUIRED,
        "$.properties.sinks[0].inputs",
    );
    rejected(
        &[(
            "/properties/sources/0/inputs",
            Some(json!([{"nodeName": "assetSink"}])),
        )],
        code::SOURCE_HAS_INPUTS,
        "$.properties.sources[0].inputs",
    );
    // Without the source, the dangling input is the finding; the sink is not reported twice.
    rejected(
        &[("/properties/sources", Some(json!([])))],
        code::NODE_INPUT_UNKNOWN,
        "$.properties.sinks[0].inputs[0].nodeName",
    );
    // A sink behind a node without inputs cannot be reached from any source.
    let doc = edit(
        base(),
        &[
            (
                "/properties/processors",
                Some(
                    json!([{"@type": "#Microsoft.Media.MediaGraphSignalGateProcessor", "name": "gate", "inputs": []}]),
                ),
            ),
            ("/properties/sinks/0/inputs/0/nodeName", Some(json!("gate"))),
        ],
    );
    let err = run(&doc, None, &params()).expect_err("unreachable");
    let found: Vec<(&str, &str)> = err
        .details()
        .iter()
        .map(|d| (d.code.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (code::NODE_TYPE_NOT_SUPPORTED, "$.properties.processors[0]"),
            (
                code::NODE_INPUTS_REQUIRED,
                "$.properties.processors[0].inputs"
            ),
            (code::SINK_UNREACHABLE, "$.properties.sinks[0]"),
            (
                code::EVENT_BASED_RECORDING_NOT_SUPPORTED,
                "$.properties.sinks[0].inputs[0].nodeName"
            ),
        ]
    );

    // A cycle among processors: reported once, plus the two unsupported processors; the sink
    // behind it is not reported again as unreachable.
    let doc = edit(
        base(),
        &[
            (
                "/properties/processors",
                Some(json!([gate("a", "b"), gate("b", "a")])),
            ),
            ("/properties/sinks/0/inputs/0/nodeName", Some(json!("b"))),
        ],
    );
    let err = run(&doc, None, &params()).expect_err("cycle");
    let codes: Vec<&str> = err.details().iter().map(|d| d.code.as_str()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == code::GRAPH_CYCLE).count(),
        1,
        "{codes:?}"
    );
    assert!(!codes.contains(&code::SINK_UNREACHABLE), "{codes:?}");
    let cycle = err
        .details()
        .iter()
        .find(|d| d.code == code::GRAPH_CYCLE)
        .unwrap();
    assert!(
        cycle.message.contains("a -> b -> a") || cycle.message.contains("b -> a -> b"),
        "{cycle}"
    );

    // An asset sink fed by anything but an RTSP source (or a signal gate).
    let doc = edit(
        base(),
        &[
            (
                "/properties/processors",
                Some(json!([gate("motion", "rtspSource")])),
            ),
            (
                "/properties/sinks/0/inputs/0/nodeName",
                Some(json!("motion")),
            ),
        ],
    );
    let err = run(&doc, None, &params()).expect_err("fed by motion");
    let mut codes: Vec<&str> = err.details().iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [code::NODE_TYPE_NOT_SUPPORTED, code::SINK_INPUT_INVALID]
    );
    // Fed by a signal gate: the gate and the event-based recording are reported, both as
    // not supported.
    let doc = edit(
        base(),
        &[
            (
                "/properties/processors",
                Some(
                    json!([{"@type": "#Microsoft.Media.MediaGraphSignalGateProcessor", "name": "gate", "inputs": [{"nodeName": "rtspSource"}]}]),
                ),
            ),
            ("/properties/sinks/0/inputs/0/nodeName", Some(json!("gate"))),
        ],
    );
    let err = run(&doc, None, &params()).expect_err("gate");
    assert!(
        err.details().iter().all(ErrorDetail::is_not_supported),
        "{:#?}",
        err.details()
    );

    let second_camera = edit(base(), &[])
        .pointer("/properties/sources/0")
        .unwrap()
        .clone();
    rejected(
        &[(
            "/properties/sources/-",
            Some(edit(
                second_camera,
                &[("/name", Some(json!("rtspSource2")))],
            )),
        )],
        code::RTSP_SOURCE_MULTIPLE,
        "$.properties.sources[1]",
    );

    let second = edit(base(), &[]).pointer(SINK).unwrap().clone();
    rejected(
        &[(
            "/properties/sinks/-",
            Some(edit(second, &[("/name", Some(json!("assetSink2")))])),
        )],
        code::ASSET_SINK_MULTIPLE,
        "$.properties.sinks[1]",
    );
    rejected(
        &[(
            "/properties/sinks/0/inputs/-",
            Some(json!({"nodeName": "rtspSource"})),
        )],
        code::SINK_INPUT_INVALID,
        "$.properties.sinks[0].inputs",
    );
}

#[test]
fn node_types_are_recognised_or_rejected_by_name() {
    let d = rejected(
        &[(
            "/properties/sinks/-",
            Some(
                json!({"@type": "#Microsoft.Media.MediaGraphIoTHubMessageSink", "name": "hub", "hubOutputName": "x", "inputs": [{"nodeName": "rtspSource"}]}),
            ),
        )],
        code::NODE_TYPE_NOT_SUPPORTED,
        "$.properties.sinks[1]",
    );
    assert_eq!(
        d.message,
        "node type #Microsoft.Media.MediaGraphIoTHubMessageSink is not supported by this host (node 'hub')"
    );
    rejected(
        &[(
            "/properties/sinks/0/@type",
            Some(json!("#Microsoft.Media.MediaGraphTeleporter")),
        )],
        code::NODE_TYPE_UNKNOWN,
        "$.properties.sinks[0].@type",
    );
    rejected(
        &[(
            "/properties/sources/0/endpoint/@type",
            Some(json!("#Microsoft.Media.MediaGraphClearEndpoint")),
        )],
        code::ENDPOINT_TYPE_NOT_SUPPORTED,
        "$.properties.sources[0].endpoint.@type",
    );
    let misplaced = edit(
        base().pointer("/properties/sources/0").unwrap().clone(),
        &[
            ("/name", Some(json!("cam2"))),
            ("/inputs", Some(json!([{"nodeName": "rtspSource"}]))),
        ],
    );
    rejected(
        &[("/properties/sinks/-", Some(misplaced))],
        code::NODE_TYPE_MISPLACED,
        "$.properties.sinks[1]",
    );
    rejected(
        &[("/@apiVersion", Some(json!("1.1")))],
        code::API_VERSION_NOT_SUPPORTED,
        "$.@apiVersion",
    );
}

#[test]
fn rtsp_endpoint_rules() {
    let url = |u: &str| vec![("rtspUrl".to_owned(), u.to_owned())];
    let t = "$.properties.sources[0].endpoint.url";
    for (u, code) in [
        ("http://cam/x", code::RTSP_ENDPOINT_URL_INVALID_SCHEME),
        ("rtsps://cam/x", code::RTSP_TLS_NOT_SUPPORTED),
        (
            "rtsp://admin@cam/x",
            code::RTSP_URL_CREDENTIALS_NOT_SUPPORTED,
        ),
        ("not a url", code::RTSP_ENDPOINT_URL_INVALID),
        ("rtsp://", code::RTSP_ENDPOINT_URL_INVALID),
    ] {
        let err = run(&base(), None, &url(u)).expect_err(u);
        assert_eq!(
            (
                err.details()[0].code.as_str(),
                err.details()[0].target.as_str()
            ),
            (code, t),
            "{u}"
        );
    }
    let err = run(&base(), None, &url("http://cam/x")).unwrap_err();
    assert!(err.details()[0].message.starts_with(
        "Uri scheme 'http' is not valid for an RTSP source endpoint. Valid values are: rtsp"
    ));
    let tls = |u: &str| {
        let doc = edit(
            base(),
            &[
                (
                    "/properties/sources/0/endpoint/@type",
                    Some(json!("#Microsoft.Media.MediaGraphTlsEndpoint")),
                ),
                (
                    "/properties/sources/0/endpoint/validationOptions",
                    Some(json!({"ignoreHostname": "true", "ignoreSignature": "false"})),
                ),
            ],
        );
        run(&doc, None, &url(u))
    };
    // A TLS endpoint is refused once, on its type; the URL is still checked.
    let err = tls("rtsps://cam:322/x").unwrap_err();
    let found: Vec<(&str, &str)> = err
        .details()
        .iter()
        .map(|d| (d.code.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        found,
        [(
            code::RTSP_TLS_NOT_SUPPORTED,
            "$.properties.sources[0].endpoint.@type"
        )]
    );
    assert!(err.details()[0].is_not_supported());
    assert_eq!(
        tls("rtsp://cam/x").unwrap_err().details()[1].code,
        code::RTSP_ENDPOINT_URL_INVALID_SCHEME
    );
    // Credentials in the URL are refused without echoing the password, whether the URL is a
    // plain or a secret parameter, valid or not.
    for u in [
        "rtsp://admin:hunter2@cam/x",
        "rtsps://admin:hunter2@cam/x",
        "rtsp://admin:hunter2@cam:99999/x",
    ] {
        let err = run(&base(), None, &url(u)).expect_err(u);
        let text = format!("{:?}", err.details());
        assert!(!text.contains("hunter2"), "{text}");
    }
    // 2.0 requires a password with the username, 1.0 did not.
    rejected(
        &[("/properties/sources/0/endpoint/credentials/password", None)],
        code::PROPERTY_REQUIRED,
        "$.properties.sources[0].endpoint.credentials.password",
    );
    let g = accepted(&[
        ("/properties/sources/0/endpoint/credentials/password", None),
        ("/@apiVersion", Some(json!("1.0"))),
    ]);
    assert_eq!(
        g.sources[0].credentials.as_ref().unwrap().password.expose(),
        ""
    );
    // A password in the URL is refused (retina refuses it) and not shown.
    let err = run(&base(), None, &url("rtsp://u:topsecret@cam/x")).unwrap_err();
    assert_eq!(
        err.details()[0].message,
        "'rtsp://u:***@cam/x' carries credentials, which the RTSP client refuses in a URL; \
         put them in the endpoint's credentials (username and password) instead"
    );
}

#[test]
fn parameters_defaults_instance_values_and_overrides() {
    let instance = |params: Value| json!({"@apiVersion": "2.0", "name": "cam-7", "properties": {"topologyName": "Cvr-1", "parameters": params}});
    // Instance values override defaults; --param overrides the instance.
    let inst = instance(
        json!([{"name": "rtspUrl", "value": "rtsp://a/1"}, {"name": "cacheMiB", "value": "100"}]),
    );
    let g = run(&base(), Some(&inst), &[("cacheMiB".into(), "200".into())]).expect("valid");
    assert_eq!(
        (g.instance_name.as_str(), g.sources[0].url.as_str()),
        ("cam-7", "rtsp://a/1")
    );
    assert_eq!(g.asset_sinks[0].cache_max_bytes, 200 << 20);
    assert_eq!(g.asset_sinks[0].asset_name.as_str(), "cam-cam-7");
    // Several references in one string, numbers given as JSON numbers.
    let inst = instance(
        json!([{"name": "rtspUrl", "value": "rtsp://a/1"}, {"name": "cacheMiB", "value": 64}]),
    );
    let doc = edit(
        base(),
        &[(
            "/properties/sinks/0/assetNamePattern",
            Some(json!("${cacheMiB}x${cacheMiB}-${System.GraphTopologyName}")),
        )],
    );
    assert_eq!(
        run(&doc, Some(&inst), &[]).unwrap().asset_sinks[0]
            .asset_name
            .as_str(),
        "64x64-Cvr-1"
    );

    let one = |inst: &Value, overrides: &[(String, String)]| {
        let err = run(&base(), Some(inst), overrides).expect_err("invalid");
        assert_eq!(err.details().len(), 1, "{:#?}", err.details());
        err.details()[0].clone()
    };
    let d = one(
        &instance(
            json!([{"name": "rtspUrl", "value": "rtsp://a/1"}, {"name": "bogus", "value": "1"}]),
        ),
        &[],
    );
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (
            code::PARAMETER_NOT_DECLARED,
            "instance:$.properties.parameters[1].name"
        )
    );
    let d = one(&instance(json!([])), &[]);
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (code::PARAMETER_VALUE_MISSING, "$.properties.parameters[0]")
    );
    let d = one(
        &instance(
            json!([{"name": "rtspUrl", "value": "rtsp://a/1"}, {"name": "cacheMiB", "value": "lots"}]),
        ),
        &[],
    );
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (
            code::PARAMETER_VALUE_INVALID,
            "instance:$.properties.parameters[1].value"
        )
    );
    let d = one(
        &instance(json!([{"name": "rtspUrl", "value": "rtsp://a/1"}])),
        &[("cacheMiB".into(), "1e3".into())],
    );
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (code::PARAMETER_VALUE_INVALID, "--param cacheMiB")
    );
    let d = one(
        &instance(json!([{"name": "rtspUrl", "value": "rtsp://a/1"}])),
        &[("nope".into(), "1".into())],
    );
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (code::PARAMETER_NOT_DECLARED, "--param nope")
    );
    let mut wrong = instance(json!([{"name": "rtspUrl", "value": "rtsp://a/1"}]));
    wrong["properties"]["topologyName"] = json!("Other");
    let d = one(&wrong, &[]);
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (
            code::INSTANCE_TOPOLOGY_MISMATCH,
            "instance:$.properties.topologyName"
        )
    );
    let mut bad_name = instance(json!([{"name": "rtspUrl", "value": "rtsp://a/1"}]));
    bad_name["name"] = json!("cam 7");
    assert_eq!(one(&bad_name, &[]).code, code::NAME_INVALID);

    // Declarations: types checked case-insensitively, defaults type-checked, no duplicates.
    for (kind, good, bad) in [
        ("Int", "-42", "4.2"),
        ("Double", "0.1", "zero"),
        ("Bool", "True", "yes"),
        ("string", "anything", ""),
    ] {
        let with = |v: &str| {
            edit(
                base(),
                &[(
                    "/properties/parameters/-",
                    Some(json!({"name": "p", "type": kind, "default": v})),
                )],
            )
        };
        run(&with(good), None, &params()).unwrap_or_else(|e| panic!("{kind} {good}: {e:?}"));
        if !bad.is_empty() {
            let err = run(&with(bad), None, &params()).expect_err(bad);
            assert_eq!(
                err.details()[0].code,
                code::PARAMETER_VALUE_INVALID,
                "{kind} {bad}"
            );
            assert_eq!(
                err.details()[0].target,
                "$.properties.parameters[3].default"
            );
        }
    }
    rejected(
        &[(
            "/properties/parameters/-",
            Some(json!({"name": "p", "type": "Float"})),
        )],
        code::PARAMETER_TYPE_INVALID,
        "$.properties.parameters[3].type",
    );
    rejected(
        &[(
            "/properties/parameters/-",
            Some(json!({"name": "cacheMiB", "type": "Int", "default": "1"})),
        )],
        code::PARAMETER_DUPLICATE,
        "$.properties.parameters[3].name",
    );
}

#[test]
fn secret_values_stay_out_of_messages() {
    let doc = edit(
        base(),
        &[("/properties/parameters/0/type", Some(json!("SecretString")))],
    );
    let err = run(
        &doc,
        None,
        &[("rtspUrl".into(), "http://user:pw-s3cret@cam/x".into())],
    )
    .expect_err("scheme");
    let text = err.to_json_pretty();
    assert!(!text.contains("s3cret"), "{text}");
    let err = run(
        &doc,
        None,
        &[("rtspUrl".into(), "rtsp://user:pw-s3cret@cam/x".into())],
    )
    .expect_err("credentials in the URL");
    let text = err.to_json_pretty();
    assert!(
        text.contains("'${rtspUrl}' carries credentials") && !text.contains("s3cret"),
        "{text}"
    );
    let g = run(
        &doc,
        None,
        &[("rtspUrl".into(), "rtsp://cam-s3cret/x".into())],
    )
    .expect("valid");
    assert_eq!(g.sources[0].display_url, "${rtspUrl}");
    for shown in [format!("{g:?}"), serde_json::to_string(&g).unwrap()] {
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
    assert_eq!(format!("{}", Secret::new("x")), "***");
}

#[test]
fn output_selectors_choose_the_media() {
    let sel = |s: Value| vec![("/properties/sinks/0/inputs/0/outputSelectors", Some(s))];
    let media = |s: Value| accepted(&sel(s)).asset_sinks[0].media;
    assert_eq!(
        media(json!([{"property": "mediaType", "operator": "is", "value": "video"}])),
        MediaSelection::VideoOnly
    );
    assert_eq!(
        media(json!([{"property": "mediaType", "operator": "isNot", "value": "application"}])),
        MediaSelection::AudioAndVideo
    );
    assert_eq!(
        media(json!([{"property": "mediaType", "operator": "isNot", "value": "audio"}])),
        MediaSelection::VideoOnly
    );
    rejected(
        &sel(json!([{"property": "mediaType", "operator": "is", "value": "audio"}])),
        code::MEDIA_SELECTION_NOT_SUPPORTED,
        "$.properties.sinks[0].inputs[0].outputSelectors",
    );
    rejected(
        &sel(json!([{"property": "mediaType", "operator": "like", "value": "video"}])),
        code::PROPERTY_VALUE_INVALID,
        "$.properties.sinks[0].inputs[0].outputSelectors[0].operator",
    );
    assert_eq!(
        accepted(&[("/@apiVersion", Some(json!("1.0")))]).asset_sinks[0].media,
        MediaSelection::VideoOnly
    );
}

#[test]
fn plugin_extension_is_checked_against_the_lookup() {
    let p = "/properties/sinks/0/plugins";
    let g = accepted(&[(
        p,
        Some(
            json!({"segmenter": "segmenter-gop", "evictor": "evict-uploaded-first", "formatter": "format-cmaf"}),
        ),
    )]);
    assert_eq!(
        g.asset_sinks[0].plugins.evictor.as_deref(),
        Some("evict-uploaded-first")
    );
    rejected(
        &[(p, Some(json!({"segmenter": "nope"})))],
        code::PLUGIN_UNKNOWN,
        "$.properties.sinks[0].plugins.segmenter",
    );
    let d = rejected(
        &[(p, Some(json!({"evictor": "format-cmaf"})))],
        code::PLUGIN_KIND_MISMATCH,
        "$.properties.sinks[0].plugins.evictor",
    );
    assert_eq!(
        d.message,
        "plugin 'format-cmaf' is of kind formatter, but 'evictor' takes evictor plugins"
    );
    // Our own extension: a typo is an error, not a warning.
    rejected(
        &[(p, Some(json!({"segmentr": "segmenter-gop"})))],
        code::PROPERTY_UNKNOWN,
        "$.properties.sinks[0].plugins.segmentr",
    );
}

#[test]
fn unknown_lva_properties_are_warnings() {
    let doc = edit(
        base(),
        &[("/properties/sinks/0/retention", Some(json!("P30D")))],
    );
    let v = check(
        &doc.to_string(),
        None,
        &params(),
        &DefaultPluginNames,
        now(),
    );
    assert!(v.outcome.is_ok());
    assert_eq!(v.warnings.len(), 1);
    assert_eq!(
        (v.warnings[0].code.as_str(), v.warnings[0].target.as_str()),
        (code::PROPERTY_UNKNOWN, "$.properties.sinks[0].retention")
    );
}

#[test]
fn every_finding_is_reported_at_once() {
    let doc = edit(
        base(),
        &[
            ("/name", Some(json!("bad name"))),
            (SEG, Some(json!("PT45S"))),
            (
                "/properties/sinks/0/localMediaCachePath",
                Some(json!("relative")),
            ),
            ("/properties/sinks/0/assetNamePattern", Some(json!("a.b"))),
        ],
    );
    let err = run(&doc, None, &[]).expect_err("invalid");
    let mut codes: Vec<&str> = err.details().iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            code::CACHE_PATH_NOT_ABSOLUTE,
            code::NAME_INVALID,
            code::PARAMETER_VALUE_MISSING,
            code::PROPERTY_VALUE_INVALID_PATTERN,
            code::SEGMENT_LENGTH_INVALID,
        ]
    );
    assert_eq!(err.error.code, "InvalidResource");
}

#[test]
fn malformed_json_names_line_and_column() {
    let err = resolve(
        "{\n  \"name\": \"x\",\n  oops\n}",
        None,
        &[],
        &DefaultPluginNames,
        now(),
    )
    .unwrap_err();
    assert_eq!(err.error.code, "BadRequest");
    let d = &err.details()[0];
    assert_eq!(
        (d.code.as_str(), d.target.as_str()),
        (code::INVALID_JSON, "$")
    );
    assert!(
        d.message.starts_with("malformed JSON at line 3 column 3"),
        "{d}"
    );
    let err = resolve(CVR, Some("[1,"), &[], &DefaultPluginNames, now()).unwrap_err();
    assert_eq!(err.details()[0].target, "instance:$");
}

#[test]
fn file_sinks_keep_time_variables_for_each_file() {
    let file_sink = json!({
        "@type": "#Microsoft.Media.MediaGraphFileSink", "name": "fileSink",
        "baseDirectoryPath": "/var/media", "fileNamePattern": "clip-${System.GraphInstanceName}-${System.DateTime}",
        "maximumSizeMiB": "512", "inputs": [{"nodeName": "rtspSource"}]
    });
    let g = accepted(&[("/properties/sinks/-", Some(file_sink.clone()))]);
    let f = &g.file_sinks[0];
    assert_eq!(
        (f.source.as_str(), f.max_bytes),
        ("rtspSource", Some(512 << 20))
    );
    assert_eq!(f.file_name_pattern, "clip-default-${System.DateTime}");
    assert_eq!(f.file_name_at(now()), "clip-default-20200512T233309Z");
    rejected(
        &[(
            "/properties/sinks/-",
            Some(edit(
                file_sink.clone(),
                &[("/fileNamePattern", Some(json!("clip")))],
            )),
        )],
        code::PROPERTY_VALUE_INVALID,
        "$.properties.sinks[1].fileNamePattern",
    );
    rejected(
        &[(
            "/properties/sinks/-",
            Some(edit(file_sink, &[("/baseDirectoryPath", None)])),
        )],
        code::PROPERTY_REQUIRED,
        "$.properties.sinks[1].baseDirectoryPath",
    );
}

#[test]
fn shipped_cvr_topology_resolves_with_its_instance() {
    let g = resolve(CVR, Some(INSTANCE), &[], &DefaultPluginNames, now()).expect("valid");
    assert_eq!(
        (g.topology_name.as_str(), g.instance_name.as_str()),
        ("CVRToAsset", "camera-1")
    );
    assert_eq!(g.asset_sinks[0].asset_name.as_str(), "CVRToAsset-camera-1");
    assert_eq!(g.asset_sinks[0].segment_length.as_secs(), 30);
    assert_eq!(
        g.sources[0].credentials.as_ref().unwrap().password.expose(),
        "change-me"
    );
}

#[test]
fn iso8601_durations() {
    assert_eq!(
        parse_iso8601_duration("P1DT1H1M1.5S"),
        Ok((90_061, 500_000_000))
    );
    assert_eq!(parse_iso8601_duration("PT0M30S"), Ok((30, 0)));
    for bad in ["", "P", "PT", "T30S", "PT30", "PTS", "PT1S1M", "P1H"] {
        assert!(parse_iso8601_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(
        SegmentLength::from_secs(90).unwrap().to_iso8601(),
        "PT1M30S"
    );
}

/// Topologies built from the variations LVA allows (casings, numbers or strings, optional
/// properties), valid or not.
fn arb_topology() -> impl Strategy<Value = Value> {
    let name = "[A-Za-z0-9][A-Za-z0-9-]{0,33}";
    let seg = prop_oneof![
        (0u64..12).prop_map(|m| json!(format!("PT{}S", m * 30))),
        Just(json!("PT1M")),
        Just(json!("PT45S")),
        Just(Value::Null)
    ];
    let size = prop_oneof![
        (1u64..5000).prop_map(|n| json!(n)),
        (1u64..5000).prop_map(|n| json!(n.to_string()))
    ];
    let size_key = prop_oneof![
        Just("localMediaCacheMaximumSizeMiB"),
        Just("LocalMediaCacheMaximumSizeMiB")
    ];
    let transport = prop_oneof![Just(Value::Null), Just(json!("tcp")), Just(json!("Tcp"))];
    let selectors = prop_oneof![
        Just(Value::Null),
        Just(json!([{"property": "mediaType", "operator": "is", "value": "video"}])),
        Just(json!([{"property": "mediaType", "operator": "isNot", "value": "application"}]))
    ];
    let plugins = prop_oneof![
        Just(Value::Null),
        Just(json!({"segmenter": "segmenter-gop"})),
        Just(json!({"evictor": "evict-oldest", "formatter": "format-cmaf"}))
    ];
    let asset = "[A-Za-z0-9 _-]{1,20}(\\$\\{System.GraphInstanceName\\})?";
    let extras = (any::<bool>(), proptest::option::of("[a-z ]{0,12}"));
    (name, seg, size, size_key, transport, selectors, plugins, asset, any::<bool>(), prop_oneof![Just("1.0"), Just("2.0")], extras)
        .prop_map(|(name, seg, size, size_key, transport, selectors, plugins, asset, creds, version, (file_sink, description))| {
            let mut sink = json!({
                "@type": "#Microsoft.Media.MediaGraphAssetSink", "name": "assetSink",
                "assetNamePattern": asset, "localMediaCachePath": "/var/cache/${System.GraphTopologyName}",
                "inputs": [{"nodeName": "rtspSource"}]
            });
            sink[size_key] = size;
            if !seg.is_null() {
                sink["segmentLength"] = seg;
            }
            if !plugins.is_null() {
                sink["plugins"] = plugins;
            }
            if !selectors.is_null() {
                sink["inputs"][0]["outputSelectors"] = selectors;
            }
            let mut source = json!({
                "@type": "#Microsoft.Media.MediaGraphRtspSource", "name": "rtspSource",
                "endpoint": {"@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint", "url": "rtsp://10.0.0.1:554/${rtspPath}"}
            });
            if !transport.is_null() {
                source["transport"] = transport;
            }
            if creds {
                source["endpoint"]["credentials"] = json!({"@type": "#Microsoft.Media.MediaGraphUsernamePasswordCredentials", "username": "u", "password": "${pw}"});
            }
            let mut sinks = vec![sink];
            if file_sink {
                sinks.push(json!({
                    "@type": "#Microsoft.Media.MediaGraphFileSink", "name": "fileSink", "baseDirectoryPath": "/var/media",
                    "fileNamePattern": "${System.GraphInstanceName}-${System.DateTime}", "maximumSizeMiB": 100,
                    "inputs": [{"nodeName": "rtspSource"}]
                }));
            }
            let mut doc = json!({
                "@apiVersion": version, "name": name,
                "properties": {
                    "parameters": [{"name": "rtspPath", "type": "string", "default": "cam"}, {"name": "pw", "type": "SecretString", "default": "p"}],
                    "sources": [source], "sinks": sinks
                }
            });
            if let Some(d) = description {
                doc["properties"]["description"] = json!(d);
            }
            doc
        })
}

proptest! {
    #[test]
    fn accepted_topologies_survive_serialize_and_parse(doc in arb_topology()) {
        let text = doc.to_string();
        let original = resolve(&text, None, &[], &DefaultPluginNames, now());
        prop_assume!(original.is_ok());
        let parsed = Topology::parse(&text).expect("accepted topology parses");
        let written = parsed.to_json().to_string();
        let reparsed = Topology::parse(&written).expect("written topology parses");
        prop_assert_eq!(&parsed, &reparsed);
        prop_assert_eq!(reparsed.to_json().to_string(), written.clone());
        prop_assert_eq!(resolve(&written, None, &[], &DefaultPluginNames, now()), original);
    }
}

#[test]
fn structural_findings() {
    rejected(
        &[("/properties/sinks", Some(json!({})))],
        code::PROPERTY_TYPE_INVALID,
        "$.properties.sinks",
    );
    rejected(
        &[(
            "/properties/sinks/0/assetNamePattern",
            Some(json!({"x": 1})),
        )],
        code::PROPERTY_TYPE_INVALID,
        "$.properties.sinks[0].assetNamePattern",
    );
    let err = run(
        &edit(base(), &[("/properties/sources", None)]),
        None,
        &params(),
    )
    .unwrap_err();
    let found: Vec<(&str, &str)> = err
        .details()
        .iter()
        .map(|d| (d.code.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (code::PROPERTY_REQUIRED, "$.properties.sources"),
            (
                code::NODE_INPUT_UNKNOWN,
                "$.properties.sinks[0].inputs[0].nodeName"
            ),
        ]
    );
    // Pre-release inputs named their node `moduleName`: refused by name, still linked.
    rejected(
        &[(
            "/properties/sinks/0/inputs/0",
            Some(json!({"moduleName": "rtspSource"})),
        )],
        code::PROPERTY_NOT_SUPPORTED,
        "$.properties.sinks[0].inputs[0].moduleName",
    );
    rejected(
        &[(
            "/properties/sources/0/endpoint/credentials",
            Some(
                json!({"@type": "#Microsoft.Media.MediaGraphHttpHeaderCredentials", "headerName": "a", "headerValue": "b"}),
            ),
        )],
        code::CREDENTIALS_TYPE_NOT_SUPPORTED,
        "$.properties.sources[0].endpoint.credentials.@type",
    );
    let file_sink = |name: &str| {
        json!({
            "@type": "#Microsoft.Media.MediaGraphFileSink", "name": name, "baseDirectoryPath": "/m",
            "fileNamePattern": "${System.DateTime}", "maximumSizeMiB": "1", "inputs": [{"nodeName": "rtspSource"}]
        })
    };
    rejected(
        &[
            ("/properties/sinks/-", Some(file_sink("f1"))),
            ("/properties/sinks/-", Some(file_sink("f2"))),
        ],
        code::FILE_SINK_MULTIPLE,
        "$.properties.sinks[2]",
    );
    let err = resolve("[]", None, &[], &DefaultPluginNames, now()).unwrap_err();
    assert_eq!(
        (
            err.details()[0].code.as_str(),
            err.details()[0].target.as_str()
        ),
        (code::PROPERTY_TYPE_INVALID, "$")
    );
}

#[test]
fn file_sink_directories_stay_where_they_are_put() {
    let sink = |dir: &str| {
        json!({
            "@type": "#Microsoft.Media.MediaGraphFileSink", "name": "fileSink",
            "baseDirectoryPath": dir, "fileNamePattern": "${System.DateTime}", "maximumSizeMiB": "1",
            "inputs": [{"nodeName": "rtspSource"}]
        })
    };
    rejected(
        &[("/properties/sinks/-", Some(sink("/var/media/../../etc")))],
        code::PROPERTY_VALUE_INVALID,
        "$.properties.sinks[1].baseDirectoryPath",
    );
    rejected(
        &[
            ("/@apiVersion", Some(json!("1.0"))),
            (
                "/properties/sinks/-",
                Some(json!({
                    "@type": "#Microsoft.Media.MediaGraphFileSink", "name": "fileSink",
                    "filePathPattern": "/var/media/../x-${System.DateTime}",
                    "inputs": [{"nodeName": "rtspSource"}]
                })),
            ),
        ],
        code::PROPERTY_VALUE_INVALID,
        "$.properties.sinks[1].filePathPattern",
    );
}

#[test]
fn a_1_0_file_sink_splits_its_path_pattern() {
    let sink = json!({
        "@type": "#Microsoft.Media.MediaGraphFileSink", "name": "fileSink",
        "filePathPattern": "/var/media/sampleFilesFromEVR-${System.GraphTopologyName}-${System.DateTime}",
        "inputs": [{"nodeName": "rtspSource"}]
    });
    let g = accepted(&[
        ("/@apiVersion", Some(json!("1.0"))),
        ("/properties/sinks/-", Some(sink)),
    ]);
    let f = &g.file_sinks[0];
    assert_eq!(f.base_directory, std::path::PathBuf::from("/var/media"));
    assert_eq!(
        f.file_name_pattern,
        "sampleFilesFromEVR-Cvr-1-${System.DateTime}"
    );
    assert_eq!(f.max_bytes, None);
}

/// [`run`] with `unsupportedNodes` set.
fn run_mode(doc: &Value, mode: UnsupportedNodes) -> Result<ResolvedGraph, ErrorBody> {
    resolve_with(
        &doc.to_string(),
        None,
        &params(),
        &DefaultPluginNames,
        now(),
        mode,
    )
}

fn findings(err: &ErrorBody) -> Vec<(&str, &str)> {
    err.details()
        .iter()
        .map(|d| (d.code.as_str(), d.target.as_str()))
        .collect()
}

/// The base CVR topology with LVA's motion-detection side branch (cvr-with-motion): motion
/// detection on the camera, its events to an IoT Hub sink.
fn cvr_with_motion() -> Value {
    edit(
        base(),
        &[
            (
                "/properties/processors",
                Some(json!([{
                    "@type": "#Microsoft.Media.MediaGraphMotionDetectionProcessor", "name": "motionDetection",
                    "sensitivity": "medium", "inputs": [{"nodeName": "rtspSource"}]
                }])),
            ),
            (
                "/properties/sinks/-",
                Some(json!({
                    "@type": "#Microsoft.Media.MediaGraphIoTHubMessageSink", "name": "hubSink",
                    "hubOutputName": "inferenceOutput", "inputs": [{"nodeName": "motionDetection"}]
                })),
            ),
        ],
    )
}

#[test]
fn analytics_side_branches_are_refused_or_listed_as_ignored() {
    let doc = cvr_with_motion();
    let err = run_mode(&doc, UnsupportedNodes::Reject).expect_err("reject mode");
    assert_eq!(
        findings(&err),
        [
            (code::NODE_TYPE_NOT_SUPPORTED, "$.properties.processors[0]"),
            (code::NODE_TYPE_NOT_SUPPORTED, "$.properties.sinks[1]"),
        ]
    );
    // The default of `resolve` is reject.
    assert_eq!(run(&doc, None, &params()).unwrap_err(), err);

    let g = run_mode(&doc, UnsupportedNodes::Ignore).expect("ignore mode");
    assert_eq!(g.asset_sinks.len(), 1);
    assert_eq!(g.asset_sinks[0].source, "rtspSource");
    assert_eq!(
        g.ignored_nodes,
        [
            IgnoredNode {
                node: "motionDetection".into(),
                node_type: "#Microsoft.Media.MediaGraphMotionDetectionProcessor".into(),
                list: "processors",
                target: "$.properties.processors[0]".into(),
            },
            IgnoredNode {
                node: "hubSink".into(),
                node_type: "#Microsoft.Media.MediaGraphIoTHubMessageSink".into(),
                list: "sinks",
                target: "$.properties.sinks[1]".into(),
            },
        ]
    );
    // Reject mode lists nothing as ignored: a topology without such nodes resolves the same.
    assert!(accepted(&[]).ignored_nodes.is_empty());
}

#[test]
fn a_sink_behind_a_signal_gate_is_refused_in_both_modes() {
    let doc = edit(
        cvr_with_motion(),
        &[
            (
                "/properties/processors/-",
                Some(json!({
                    "@type": "#Microsoft.Media.MediaGraphSignalGateProcessor", "name": "gate",
                    "inputs": [{"nodeName": "motionDetection"}, {"nodeName": "rtspSource"}]
                })),
            ),
            ("/properties/sinks/0/inputs/0/nodeName", Some(json!("gate"))),
        ],
    );
    let err = run_mode(&doc, UnsupportedNodes::Ignore).expect_err("event-based recording");
    assert_eq!(
        findings(&err),
        [(
            code::EVENT_BASED_RECORDING_NOT_SUPPORTED,
            "$.properties.sinks[0].inputs[0].nodeName"
        )]
    );
    assert_eq!(
        err.details()[0].message,
        "asset sink 'assetSink' records only while signal gate 'gate' is open (event-based recording), which this host does not support"
    );
    let err = run_mode(&doc, UnsupportedNodes::Reject).expect_err("reject");
    let mut codes: Vec<&str> = err.details().iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            code::EVENT_BASED_RECORDING_NOT_SUPPORTED,
            code::NODE_TYPE_NOT_SUPPORTED,
            code::NODE_TYPE_NOT_SUPPORTED,
            code::NODE_TYPE_NOT_SUPPORTED,
        ]
    );
    // A sink fed by motion detection (not a gate) is not recorded either.
    let doc = edit(
        cvr_with_motion(),
        &[(
            "/properties/sinks/0/inputs/0/nodeName",
            Some(json!("motionDetection")),
        )],
    );
    let err = run_mode(&doc, UnsupportedNodes::Ignore).expect_err("fed by motion");
    assert_eq!(
        findings(&err),
        [(
            code::SINK_INPUT_INVALID,
            "$.properties.sinks[0].inputs[0].nodeName"
        )]
    );
}

#[test]
fn analytics_only_topologies_have_nothing_to_record() {
    let doc = edit(cvr_with_motion(), &[("/properties/sinks/0", None)]);
    let err = run_mode(&doc, UnsupportedNodes::Ignore).expect_err("nothing to record");
    assert_eq!(
        findings(&err),
        [(code::NO_RECORDING_SINK, "$.properties.sinks")]
    );
}

/// AVA's `cvr-video-sink` (1.1), with a parameterised video name.
fn ava_video_sink() -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "CVRToVideoSink",
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "string"}, {"name": "rtspPassword", "type": "secretString", "default": "p"}],
            "sources": [{
                "@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource", "transport": "tcp",
                "endpoint": {
                    "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}",
                    "credentials": {"@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials", "username": "u", "password": "${rtspPassword}"}
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink",
                "videoName": "video-${System.PipelineName}-${System.TopologyName}",
                "inputs": [{"nodeName": "rtspSource"}],
                "videoCreationProperties": {"title": "t", "description": "d", "segmentLength": "PT1M", "retentionPeriod": "P30D"},
                "videoPublishingOptions": {"enableVideoPreviewImage": "true"},
                "localMediaCachePath": "/var/lib/videoanalyzer/tmp/",
                "localMediaCacheMaximumSizeMiB": "2048"
            }]
        }
    })
}

#[test]
fn ava_video_sinks_record_like_asset_sinks() {
    let doc = ava_video_sink();
    let v = check(
        &doc.to_string(),
        None,
        &params(),
        &DefaultPluginNames,
        now(),
    );
    let g = v
        .outcome
        .unwrap_or_else(|e| panic!("{}", e.to_json_pretty()));
    assert_eq!(g.api_version, "1.1");
    let sink = &g.asset_sinks[0];
    assert_eq!(sink.output_type, OutputType::VideoName);
    assert_eq!(sink.asset_name.as_str(), "video-default-CVRToVideoSink");
    assert_eq!(sink.segment_length.as_secs(), 60);
    assert_eq!(sink.cache_max_bytes, 2048 << 20);
    // No output selector: AVA passes audio and video, like LVA 2.0.
    assert_eq!(sink.media, MediaSelection::AudioAndVideo);
    assert_eq!(
        g.sources[0].credentials.as_ref().unwrap().password.expose(),
        "p"
    );
    // What only the cloud video resource uses is accepted with a warning naming it.
    let warned: Vec<&str> = v.warnings.iter().map(|w| w.target.as_str()).collect();
    assert!(
        warned.contains(&"$.properties.sinks[0].videoCreationProperties.retentionPeriod")
            && warned
                .contains(&"$.properties.sinks[0].videoPublishingOptions.enableVideoPreviewImage"),
        "{warned:?}"
    );

    // Written back, an AVA topology keeps AVA's type names.
    let parsed = Topology::parse(&doc.to_string()).expect("parses");
    let written = parsed.to_json();
    assert_eq!(written["@apiVersion"], "1.1");
    assert_eq!(
        written["properties"]["sources"][0]["@type"],
        "#Microsoft.VideoAnalyzer.RtspSource"
    );
    assert_eq!(
        written["properties"]["sources"][0]["endpoint"]["credentials"]["@type"],
        "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials"
    );
    assert_eq!(
        run(&written, None, &params()).map(|g| g.asset_sinks),
        Ok(g.asset_sinks.clone())
    );
}

#[test]
fn ava_rules() {
    let err = |edits: &[(&str, Option<Value>)]| {
        let doc = edit(ava_video_sink(), edits);
        run(&doc, None, &params()).expect_err("refused")
    };
    let e = err(&[(
        "/properties/sinks/0/videoName",
        Some(json!("v-${System.Runtime.DateTime}")),
    )]);
    assert_eq!(
        findings(&e),
        [(
            code::PROPERTY_VALUE_INVALID,
            "$.properties.sinks[0].videoName"
        )]
    );
    let e = err(&[(
        "/properties/sinks/0/videoPublishingOptions/disableArchive",
        Some(json!("true")),
    )]);
    assert_eq!(
        findings(&e),
        [(
            code::PROPERTY_NOT_SUPPORTED,
            "$.properties.sinks[0].videoPublishingOptions.disableArchive"
        )]
    );
    let e = err(&[(
        "/properties/sinks/0/videoCreationProperties/segmentLength",
        Some(json!("PT10S")),
    )]);
    assert_eq!(
        findings(&e),
        [(
            code::SEGMENT_LENGTH_INVALID,
            "$.properties.sinks[0].videoCreationProperties.segmentLength"
        )]
    );
    // 2.0 is LVA's version; an AVA topology says 1.0 or 1.1.
    let e = err(&[("/@apiVersion", Some(json!("2.0")))]);
    assert_eq!(
        findings(&e),
        [(code::API_VERSION_NOT_SUPPORTED, "$.@apiVersion")]
    );
    // AVA 1.0 is read like 1.1.
    let g = run(
        &edit(ava_video_sink(), &[("/@apiVersion", Some(json!("1.0")))]),
        None,
        &params(),
    )
    .expect("AVA 1.0");
    assert_eq!(g.asset_sinks[0].media, MediaSelection::AudioAndVideo);
    // A cloud pipeline's tunnel cannot be followed.
    let e = err(&[(
        "/properties/sources/0/endpoint/tunnel",
        Some(
            json!({"@type": "#Microsoft.VideoAnalyzer.SecureIotDeviceRemoteTunnel", "iotHubName": "h", "deviceId": "d"}),
        ),
    )]);
    assert_eq!(
        findings(&e),
        [(
            code::PROPERTY_NOT_SUPPORTED,
            "$.properties.sources[0].endpoint.tunnel"
        )]
    );
    // AVA's unsupported types are named like LVA's, and ignored alike.
    let doc = edit(
        ava_video_sink(),
        &[(
            "/properties/processors",
            Some(
                json!([{"@type": "#Microsoft.VideoAnalyzer.MotionDetectionProcessor", "name": "md", "inputs": [{"nodeName": "rtspSource"}]}]),
            ),
        )],
    );
    let e = run(&doc, None, &params()).expect_err("reject");
    assert_eq!(
        findings(&e),
        [(code::NODE_TYPE_NOT_SUPPORTED, "$.properties.processors[0]")]
    );
    let g = run_mode(&doc, UnsupportedNodes::Ignore).expect("ignore");
    assert_eq!(
        g.ignored_nodes[0].node_type,
        "#Microsoft.VideoAnalyzer.MotionDetectionProcessor"
    );
}

#[test]
fn ava_system_variables_are_lvas_under_other_names() {
    let g = accepted(&[(
        "/properties/sinks/0/assetNamePattern",
        Some(json!(
            "${System.TopologyName}_${System.PipelineName}_${System.Runtime.DateTime}"
        )),
    )]);
    assert_eq!(
        g.asset_sinks[0].asset_name.as_str(),
        "Cvr-1_default_20200512T233309Z"
    );
}

/// AVA's live pipeline is the instance document: `@apiVersion` 1.1, a lower-case `state` (not
/// read here; a warning), and its name is `${System.PipelineName}`.
#[test]
fn ava_live_pipelines_are_instances() {
    let pipeline = json!({
        "@apiVersion": "1.1",
        "name": "pipeline-1",
        "properties": {
            "topologyName": "CVRToVideoSink",
            "state": "inactive",
            "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1:8554/cam1"}]
        }
    });
    let v = check(
        &ava_video_sink().to_string(),
        Some(&pipeline.to_string()),
        &[],
        &DefaultPluginNames,
        now(),
    );
    let g = v
        .outcome
        .unwrap_or_else(|e| panic!("{}", e.to_json_pretty()));
    assert_eq!(g.instance_name, "pipeline-1");
    assert_eq!(
        g.asset_sinks[0].asset_name.as_str(),
        "video-pipeline-1-CVRToVideoSink"
    );
    assert!(
        v.warnings
            .iter()
            .any(|w| w.target == "instance:$.properties.state"),
        "{:?}",
        v.warnings
    );
}
