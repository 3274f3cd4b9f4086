//! Runs the validator over every topology file of LVA's and AVA's public repositories (copied
//! into tests/fixtures/lva-topologies/, see SOURCE.md there) and checks that each one gets the
//! verdict this host promises: CVR topologies validate, the rest are refused only for the LVA
//! features this host does not implement, and broken JSON is located by line and column.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mediagraph::topology::{DefaultPluginNames, ErrorBody, ResolvedGraph, check, code};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lva-topologies")
}

/// Every `*.json` below `dir`, except `samples/` (direct-method scripts and instances, not
/// topologies).
fn topology_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures exist")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().unwrap() != "samples" {
                topology_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// A value for every parameter without a default, as an operator's instance would give it.
fn instance_for(topology: &Value) -> Value {
    let params = topology
        .pointer("/properties/parameters")
        .or_else(|| topology.pointer("/Properties/parameters"));
    let values: Vec<Value> = params
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("default").is_none())
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let value = match p["type"]
                .as_str()
                .unwrap_or("String")
                .to_ascii_lowercase()
                .as_str()
            {
                "int" => "1".to_owned(),
                "double" => "0.5".to_owned(),
                "bool" => "true".to_owned(),
                _ if name.to_ascii_lowercase().contains("url") => {
                    "rtsp://127.0.0.1:8554/cam1".to_owned()
                }
                _ => format!("value-{name}"),
            };
            serde_json::json!({"name": name, "value": value})
        })
        .collect();
    let topology_name = topology
        .get("name")
        .or_else(|| topology.get("Name"))
        .cloned()
        .unwrap_or(Value::Null);
    serde_json::json!({
        "@apiVersion": "2.0",
        "name": "conformance-1",
        "properties": {"topologyName": topology_name, "parameters": values}
    })
}

enum Verdict {
    Valid(ResolvedGraph),
    Invalid(ErrorBody),
}

fn validate(path: &Path) -> Verdict {
    let text = std::fs::read_to_string(path).unwrap();
    let instance = serde_json::from_str::<Value>(&text)
        .ok()
        .map(|t| instance_for(&t).to_string());
    match check(
        &text,
        instance.as_deref(),
        &[],
        &DefaultPluginNames,
        SystemTime::now(),
    )
    .outcome
    {
        Ok(g) => Verdict::Valid(g),
        Err(e) => Verdict::Invalid(e),
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(fixtures())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_official_topology_gets_its_verdict() {
    let mut files = Vec::new();
    topology_files(&fixtures(), &mut files);
    // 59 LVA + 8 pre-release + 31 AVA topologies; a shorter list means fixtures went missing.
    assert_eq!(files.len(), 98, "fixture count");

    let mut valid = Vec::new();
    for path in &files {
        let name = relative(path);
        let verdict = validate(path);
        let is_cvr = (name.starts_with("cvr-asset") || name == "audio-video@2.0.json")
            && !name.contains('/');
        let broken_json = [
            ("history/motion-with-httpGraphExtension.json", 81, 11),
            (
                "ava/spatial-analysis--custom-operation-topology.json",
                100,
                1015,
            ),
        ]
        .into_iter()
        .find(|(f, _, _)| *f == name);
        match (verdict, is_cvr, broken_json) {
            (Verdict::Valid(g), true, None) => {
                let sink = &g.asset_sinks[0];
                assert_eq!(
                    (g.sources.len(), g.asset_sinks.len(), g.file_sinks.len()),
                    (1, 1, 0),
                    "{name}"
                );
                assert_eq!(sink.source, "rtspSource", "{name}");
                assert_eq!(sink.segment_length.as_secs(), 30, "{name}");
                assert_eq!(
                    sink.asset_name.as_str(),
                    format!("sampleAsset-{}-conformance-1", g.topology_name),
                    "{name}"
                );
                assert_eq!(
                    g.sources[0].url.as_str(),
                    "rtsp://127.0.0.1:8554/cam1",
                    "{name}"
                );
                valid.push(name);
            }
            (Verdict::Invalid(e), false, Some((_, line, column))) => {
                assert_eq!(e.error.code, "BadRequest", "{name}");
                let d = &e.details()[0];
                assert_eq!(
                    (e.details().len(), d.code.as_str(), d.target.as_str()),
                    (1, code::INVALID_JSON, "$"),
                    "{name}"
                );
                let at = format!("malformed JSON at line {line} column {column}");
                assert!(d.message.starts_with(&at), "{name}: {d}");
            }
            (Verdict::Invalid(e), false, None) if name.starts_with("history/") => {
                // Pre-release LVA (moduleName inputs, ClearEndpoint, asset sinks without a
                // cache): refused, with the pre-release features named as not supported.
                assert!(
                    e.details().iter().any(|d| d.is_not_supported()),
                    "{name}: {:#?}",
                    e.details()
                );
            }
            (Verdict::Invalid(e), false, None) => {
                let other: Vec<_> = e
                    .details()
                    .iter()
                    .filter(|d| !d.is_not_supported())
                    .collect();
                assert!(
                    other.is_empty(),
                    "{name} fails for more than unsupported features: {other:#?}"
                );
                for d in e
                    .details()
                    .iter()
                    .filter(|d| d.code == code::NODE_TYPE_NOT_SUPPORTED)
                {
                    assert!(
                        d.message.contains("is not supported by this host (node '"),
                        "{name}: {d}"
                    );
                }
                assert!(!e.details().is_empty());
            }
            (Verdict::Valid(_), _, _) => panic!("{name} was accepted"),
            (Verdict::Invalid(e), _, _) => panic!("{name} was refused:\n{}", e.to_json_pretty()),
        }
    }
    assert_eq!(
        valid,
        [
            "audio-video@2.0.json",
            "cvr-asset.json",
            "cvr-asset@1.0.json",
            "cvr-asset@2.0.json"
        ]
    );
}

#[test]
fn every_unsupported_node_is_named_with_its_type() {
    let path = fixtures().join("evr-motion-assets-files@2.0.json");
    let Verdict::Invalid(e) = validate(&path) else {
        panic!("accepted")
    };
    let found: Vec<(&str, &str)> = e
        .details()
        .iter()
        .map(|d| (d.target.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "$.properties.processors[0]",
                "node type #Microsoft.Media.MediaGraphMotionDetectionProcessor is not supported by this host (node 'motionDetection')"
            ),
            (
                "$.properties.processors[1]",
                "node type #Microsoft.Media.MediaGraphSignalGateProcessor is not supported by this host (node 'signalGateProcessor')"
            ),
        ]
    );
}

/// The instance documents shipped with LVA's samples, against the topologies they belong to.
#[test]
fn official_sample_instances() {
    let read = |p: &str| std::fs::read_to_string(fixtures().join(p)).unwrap();
    // IoT Central's template instance leaves every value empty: each empty value is named.
    let err = check(
        &read("iotc-gateway-motionGraphTopology.json"),
        Some(&read("samples/iotc-gateway-motionGraphInstance.json")),
        &[],
        &DefaultPluginNames,
        SystemTime::now(),
    )
    .outcome
    .unwrap_err();
    let found: Vec<(&str, &str)> = err
        .details()
        .iter()
        .map(|d| (d.code.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (code::NODE_TYPE_NOT_SUPPORTED, "$.properties.processors[0]"),
            (code::NODE_TYPE_NOT_SUPPORTED, "$.properties.sinks[0]"),
            (code::NAME_INVALID, "instance:$.name"),
            (
                code::RTSP_ENDPOINT_URL_INVALID,
                "$.properties.sources[0].endpoint.url"
            ),
            (
                code::PROPERTY_VALUE_INVALID_PATTERN,
                "$.properties.sinks[1].assetNamePattern"
            ),
        ]
    );

    // The C# console app's GraphInstanceSet payload for the motion-detection topology: its
    // parameters are right, so only the unsupported nodes remain.
    let ops: Value = serde_json::from_str(&read("samples/csharp-operations.json")).unwrap();
    let set = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["opName"] == "GraphInstanceSet")
        .unwrap();
    let mut instance = set["opParams"].clone();
    instance["@apiVersion"] = ops["apiVersion"].clone();
    let err = check(
        &read("motion-detection@2.0.json"),
        Some(&instance.to_string()),
        &[],
        &DefaultPluginNames,
        SystemTime::now(),
    )
    .outcome
    .unwrap_err();
    assert!(
        err.details()
            .iter()
            .all(|d| d.code == code::NODE_TYPE_NOT_SUPPORTED),
        "{:#?}",
        err.details()
    );
    assert_eq!(err.details().len(), 2);
}
