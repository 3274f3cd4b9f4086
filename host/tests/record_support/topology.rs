//! The topologies a test records with: one RTSP camera into one asset sink.

use std::path::{Path, PathBuf};

/// One camera at `url` (LVA allows one RTSP source per topology) recorded by one asset sink,
/// cache `cache_mib`, segments of `segment`. The nodes are `cam1` and `sink1`, as
/// `cache_dir` and the event subjects the tests check expect.
pub fn write_topology(dir: &Path, url: &str, cache_mib: u64, segment: &str) -> PathBuf {
    let topology = serde_json::json!({
        "name": "RecordTest",
        "@apiVersion": "2.0",
        "properties": {
            "parameters": [
                {"name": "user", "type": "String", "default": "admin"},
                {"name": "password", "type": "SecretString", "default": "secret"},
                {"name": "url1", "type": "String", "default": url}
            ],
            "sources": [{
                "@type": "#Microsoft.Media.MediaGraphRtspSource",
                "name": "cam1",
                "transport": "tcp",
                "endpoint": {
                    "@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint",
                    "url": "${url1}",
                    "credentials": {
                        "@type": "#Microsoft.Media.MediaGraphUsernamePasswordCredentials",
                        "username": "${user}",
                        "password": "${password}"
                    }
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.Media.MediaGraphAssetSink",
                "name": "sink1",
                "assetNamePattern": "cam1-${System.GraphInstanceName}",
                "segmentLength": segment,
                "localMediaCacheMaximumSizeMiB": cache_mib.to_string(),
                "localMediaCachePath": "/var/lib/mediagraph/cache",
                "inputs": [{"nodeName": "cam1",
                            "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}]
            }]
        }
    });
    let path = dir.join("topology.json");
    std::fs::write(&path, serde_json::to_string_pretty(&topology).unwrap()).unwrap();
    path
}

/// A graph instance `name` of [`write_topology`]'s topology recording `url`, written to
/// `dir/<name>.json`; its sink's cache is `<cache root>/RecordTest.<name>.sink1` (topology,
/// instance, sink).
pub fn write_instance(dir: &Path, name: &str, url: &str) -> PathBuf {
    let doc = serde_json::json!({
        "@apiVersion": "2.0",
        "name": name,
        "properties": {
            "topologyName": "RecordTest",
            "parameters": [{"name": "url1", "value": url}]
        }
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// Drops the sink's `outputSelectors` (written as `is video` by [`write_topology`]), so the
/// sink takes audio and video.
pub fn select_audio_and_video(topology: &Path) {
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(topology).unwrap()).unwrap();
    t["properties"]["sinks"][0]["inputs"][0]
        .as_object_mut()
        .unwrap()
        .remove("outputSelectors");
    std::fs::write(topology, t.to_string()).unwrap();
}
