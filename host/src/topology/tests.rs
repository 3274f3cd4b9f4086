use std::time::{Duration, SystemTime};

use super::*;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_589_326_389_381)
}

const CVR: &str = include_str!("../../../topologies/cvr-asset/topology.json");
const INSTANCE: &str = include_str!("../../../topologies/cvr-asset/instance.json");

#[test]
fn shipped_cvr_topology_resolves_with_its_instance() {
    let g = resolve(CVR, Some(INSTANCE), &[], &DefaultPluginNames, now()).expect("valid");
    assert_eq!(g.topology_name, "CVRToAsset");
    assert_eq!(g.instance_name, "camera-1");
    assert_eq!(g.sources[0].url.as_str(), "rtsp://127.0.0.1:8554/camera-1");
    let c = g.sources[0].credentials.as_ref().expect("credentials");
    assert_eq!(
        (c.username.as_str(), c.password.expose()),
        ("operator", "change-me")
    );
    let a = &g.asset_sinks[0];
    assert_eq!(a.asset_name.as_str(), "CVRToAsset-camera-1");
    assert_eq!(a.segment_length.as_secs(), 30);
    assert_eq!(a.segment_length.ticks(), 30 * 90_000);
    assert_eq!(a.cache_max_bytes, 2048 * 1024 * 1024);
    assert_eq!(a.source, "rtspSource");
    assert_eq!(a.media, MediaSelection::VideoOnly);
}

#[test]
fn secrets_never_show_in_debug_or_serialized_output() {
    let g = resolve(CVR, Some(INSTANCE), &[], &DefaultPluginNames, now()).expect("valid");
    let debug = format!("{g:?}");
    let json = serde_json::to_string(&g).expect("serialize");
    assert!(
        !debug.contains("change-me") && !json.contains("change-me"),
        "{debug}\n{json}"
    );
}
