//! What the service shows of itself: `/status` (per instance), `/metrics` (Prometheus text via
//! `prometheus-client`, LVA's metric names plus mediagraph's) and the event stream (LVA's
//! envelope). Reads the recorders' counters and the uploaders' status; changes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::{InstanceState, Service};
use crate::events::{Body, Event, EventBus, catalog};
use crate::sync::LockExt;
use crate::time::Ticks90k;

/// A camera's connection as the events tell it, per source subject
/// (`/graphInstances/{i}/sources/{node}`).
#[derive(Clone, Debug, Default)]
struct SourceHealth {
    connected: bool,
    /// `<eventType tail>: <errorMessage>` of the newest error diagnostic.
    last_error: Option<String>,
    /// RTSP sessions established (MediaSessionEstablished) since the process started.
    sessions: u64,
}

/// Plugin faults per (sink subject, plugin kind) since the process started.
type PluginFaults = HashMap<(String, String), u64>;

/// Camera health and plugin faults, kept up to date from the event bus by one task.
#[derive(Clone, Default)]
pub(super) struct Health {
    sources: Arc<Mutex<HashMap<String, SourceHealth>>>,
    faults: Arc<Mutex<PluginFaults>>,
}

impl Health {
    pub(super) fn watch(events: &EventBus) -> Self {
        let health = Self::default();
        let mut rx = events.subscribe();
        let (sources, faults) = (health.sources.clone(), health.faults.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        note(&sources, &e);
                        note_fault(&faults, &e);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        health
    }

    fn get(&self, subject: &str) -> SourceHealth {
        let map = self.sources.lock_unpoisoned();
        map.get(subject).cloned().unwrap_or_default()
    }

    /// The plugin faults of the sink `subject`, by plugin kind.
    fn faults(&self, subject: &str) -> Vec<(String, u64)> {
        let map = self.faults.lock_unpoisoned();
        let mut v: Vec<(String, u64)> = map
            .iter()
            .filter(|((s, _), _)| s == subject)
            .map(|((_, kind), n)| (kind.clone(), *n))
            .collect();
        v.sort();
        v
    }
}

fn note_fault(faults: &Mutex<PluginFaults>, e: &Event) {
    if let Body::PluginFault(f) = &e.body {
        let mut map = faults.lock_unpoisoned();
        *map.entry((e.subject.clone(), f.kind.clone())).or_default() += 1;
    }
}

/// Seconds of recording lost, by gap cause (a clock step back counts its size).
fn gap_seconds(gaps: &[crate::cache::Gap]) -> Vec<(String, f64)> {
    let mut by: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for g in gaps {
        let cause = serde_json::to_value(g.cause)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *by.entry(cause).or_default() += (g.end - g.start).abs().as_secs_f64();
    }
    by.into_iter().collect()
}

fn note(sources: &Mutex<HashMap<String, SourceHealth>>, e: &Event) {
    // A format finding about one track does not end the session; the other errors do.
    let (message, ends_session) = match &e.body {
        Body::MediaSessionEstablished(_) => {
            let mut map = sources.lock_unpoisoned();
            let h = map.entry(e.subject.clone()).or_default();
            h.connected = true;
            h.sessions += 1;
            return;
        }
        Body::AuthenticationError(catalog::AuthenticationError(r))
        | Body::ProtocolError(catalog::ProtocolError(r)) => (&r.error_message, true),
        Body::NetworkError(n) => (&n.error_message, true),
        Body::MediaFormatError(f) => (&f.error_message, false),
        _ => return,
    };
    let kind = e.event_type().rsplit('.').next().unwrap_or_default();
    let mut map = sources.lock_unpoisoned();
    let h = map.entry(e.subject.clone()).or_default();
    h.last_error = Some(format!("{kind}: {message}"));
    if ends_session {
        h.connected = false;
    }
}

/// One instance as `/status` and `/metrics` see it.
struct InstanceView {
    name: String,
    topology: String,
    state: InstanceState,
    last_error: Option<String>,
    sinks: Vec<crate::graph::SinkStatus>,
}

fn instances(service: &Service, state: &super::store::State) -> Vec<InstanceView> {
    let slots = service.inner.slots.lock_unpoisoned();
    state
        .instances
        .iter()
        .map(|(name, i)| {
            let slot = slots.get(name);
            InstanceView {
                name: name.clone(),
                topology: i.topology_name.clone(),
                state: slot.map_or(InstanceState::Inactive, |s| s.state()),
                last_error: slot.and_then(|s| s.last_error.clone()),
                sinks: slot
                    .and_then(|s| s.running.as_ref())
                    .map(|r| r.status())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn ticks_text(t: i64) -> Option<String> {
    (t != 0).then(|| Ticks90k(t).to_rfc3339_millis())
}

pub(super) async fn status(service: &Service) -> Value {
    let state = service.inner.state.lock().await;
    let desired: HashMap<&String, bool> = state
        .instances
        .iter()
        .map(|(n, i)| (n, i.desired == super::store::Desired::Active))
        .collect();
    let now = Ticks90k::now();
    let list: Vec<Value> = instances(service, &state)
        .into_iter()
        .map(|v| {
            let sinks: Vec<Value> = v
                .sinks
                .iter()
                .map(|s| {
                    let camera = service
                        .inner
                        .health
                        .get(&format!("/graphInstances/{}/sources/{}", v.name, s.source));
                    let st = &s.stats;
                    let sink_subject = format!("/graphInstances/{}/sinks/{}", v.name, s.sink);
                    let faults: serde_json::Map<String, Value> = service
                        .inner
                        .health
                        .faults(&sink_subject)
                        .into_iter()
                        .map(|(kind, n)| (kind, json!(n)))
                        .collect();
                    let gaps: serde_json::Map<String, Value> = gap_seconds(&s.gaps)
                        .into_iter()
                        .map(|(cause, secs)| (cause, json!(secs)))
                        .collect();
                    json!({
                        "sink": s.sink,
                        "source": s.source,
                        "asset": s.asset,
                        "camera": {
                            "connected": camera.connected,
                            "lastError": camera.last_error,
                            "sessions": camera.sessions,
                            "reconnects": camera.sessions.saturating_sub(1),
                        },
                        "gapSeconds": gaps,
                        "pluginFaults": faults,
                        "lastFrameTime": ticks_text(st.last_frame_wall.load(Ordering::Relaxed)),
                        "frames": st.frames.load(Ordering::Relaxed),
                        "droppedFrames": st.dropped_frames.load(Ordering::Relaxed),
                        "recordedBytes": st.bytes.load(Ordering::Relaxed),
                        "segments": st.segments.load(Ordering::Relaxed),
                        "cache": { "usedBytes": s.cache_used_bytes, "limitBytes": s.cache_limit_bytes },
                        "upload": {
                            "backlogSegments": s.upload.backlog.segments,
                            "backlogBytes": s.upload.backlog.bytes,
                            "oldestAgeSeconds": s.upload.backlog.oldest_age_secs(now),
                            "backlogSeconds": s.upload.backlog.media.as_secs_f64(),
                            "uploadedSegments": s.upload.uploaded_segments,
                            "lastError": s.upload.last_error,
                        },
                    })
                })
                .collect();
            json!({
                "name": v.name,
                "topologyName": v.topology,
                "state": v.state.as_str(),
                "desiredActive": desired.get(&v.name).copied().unwrap_or(false),
                "lastError": v.last_error,
                "sinks": sinks,
            })
        })
        .collect();
    json!({ "ready": service.is_ready(), "instances": list })
}

/// How long the store may take to answer the readiness probe.
const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The asset the probe lists: any name does; one that holds nothing keeps the answer small.
const STORE_PROBE_ASSET: &str = "mediagraph-readiness-probe";

/// `/readyz`: not ready (503) until the state is loaded and the instances that were active
/// are running again; then ready, and explicitly `degraded` while the asset store does not
/// answer a listing (recording goes on into the caches, uploads wait). The listener answers,
/// or there would be no answer.
pub(super) async fn readiness(service: &Service) -> (bool, Value) {
    if !service.is_ready() {
        return (
            false,
            json!({"ready": false, "reason": "activating the instances that were active"}),
        );
    }
    let store = service.asset_store();
    let probe = tokio::time::timeout(STORE_PROBE_TIMEOUT, store.list_asset(STORE_PROBE_ASSET));
    let (reachable, error) = match probe.await {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (
            false,
            Some(format!(
                "no answer within {} s",
                STORE_PROBE_TIMEOUT.as_secs()
            )),
        ),
    };
    (
        true,
        json!({
            "ready": true,
            "degraded": !reachable,
            "store": {
                "location": store.location(),
                "reachable": reachable,
                "error": error,
            },
        }),
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopologyLabels {
    graph_topology: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    graph_topology: String,
    graph_instance: String,
    graph_node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GapLabels {
    graph_topology: String,
    graph_instance: String,
    graph_node: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    graph_topology: String,
    graph_instance: String,
    graph_node: String,
    plugin_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    graph_topology: String,
    graph_instance: String,
    graph_node: String,
    data_kind: String,
}

/// The metrics as they are now, in the Prometheus/OpenMetrics text format. Counters of an
/// instance start from zero at each activation (a Prometheus `rate` sees a reset).
pub(super) async fn metrics(service: &Service) -> String {
    let state = service.inner.state.lock().await;
    let views = instances(service, &state);
    drop(state);
    let mut registry = Registry::default();
    let active = Family::<TopologyLabels, Gauge>::default();
    let received = Family::<NodeLabels, Counter>::default();
    let dropped = Family::<DropLabels, Counter>::default();
    let cache_bytes = Family::<NodeLabels, Gauge>::default();
    let cache_budget = Family::<NodeLabels, Gauge>::default();
    let backlog_segments = Family::<NodeLabels, Gauge>::default();
    let backlog_bytes = Family::<NodeLabels, Gauge>::default();
    let backlog_age = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
    let uploaded = Family::<NodeLabels, Counter>::default();
    let sessions = Family::<NodeLabels, Counter>::default();
    let reconnects = Family::<NodeLabels, Counter>::default();
    let backlog_seconds = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
    let gap_secs = Family::<GapLabels, Gauge<f64, AtomicU64>>::default();
    let plugin_faults = Family::<FaultLabels, Counter>::default();
    let now = Ticks90k::now();
    for v in &views {
        let topo = TopologyLabels {
            graph_topology: v.topology.clone(),
        };
        let g = active.get_or_create(&topo);
        if v.state == InstanceState::Active {
            g.inc();
        }
        for s in &v.sinks {
            let sink = NodeLabels {
                graph_topology: v.topology.clone(),
                graph_instance: v.name.clone(),
                graph_node: s.sink.clone(),
            };
            let source = NodeLabels {
                graph_node: s.source.clone(),
                ..sink.clone()
            };
            let st = &s.stats;
            received
                .get_or_create(&source)
                .inc_by(st.bytes.load(Ordering::Relaxed));
            dropped
                .get_or_create(&DropLabels {
                    graph_topology: v.topology.clone(),
                    graph_instance: v.name.clone(),
                    graph_node: s.sink.clone(),
                    data_kind: "video".into(),
                })
                .inc_by(st.dropped_frames.load(Ordering::Relaxed));
            cache_bytes
                .get_or_create(&sink)
                .set(s.cache_used_bytes as i64);
            cache_budget
                .get_or_create(&sink)
                .set(s.cache_limit_bytes as i64);
            backlog_segments
                .get_or_create(&sink)
                .set(s.upload.backlog.segments as i64);
            backlog_bytes
                .get_or_create(&sink)
                .set(s.upload.backlog.bytes as i64);
            backlog_age
                .get_or_create(&sink)
                .set(s.upload.backlog.oldest_age_secs(now).unwrap_or(0.0));
            uploaded
                .get_or_create(&sink)
                .inc_by(s.upload.uploaded_segments);
            let camera = service
                .inner
                .health
                .get(&format!("/graphInstances/{}/sources/{}", v.name, s.source));
            sessions.get_or_create(&source).inc_by(camera.sessions);
            reconnects
                .get_or_create(&source)
                .inc_by(camera.sessions.saturating_sub(1));
            backlog_seconds
                .get_or_create(&sink)
                .set(s.upload.backlog.media.as_secs_f64());
            for (cause, secs) in gap_seconds(&s.gaps) {
                gap_secs
                    .get_or_create(&GapLabels {
                        graph_topology: v.topology.clone(),
                        graph_instance: v.name.clone(),
                        graph_node: s.sink.clone(),
                        cause,
                    })
                    .set(secs);
            }
            let sink_subject = format!("/graphInstances/{}/sinks/{}", v.name, s.sink);
            for (kind, n) in service.inner.health.faults(&sink_subject) {
                plugin_faults
                    .get_or_create(&FaultLabels {
                        graph_topology: v.topology.clone(),
                        graph_instance: v.name.clone(),
                        graph_node: s.sink.clone(),
                        plugin_kind: kind,
                    })
                    .inc_by(n);
            }
        }
    }
    registry.register(
        "lva_active_graph_instances",
        "Graph instances that are active, per topology",
        active,
    );
    registry.register(
        "lva_received_bytes",
        "Media bytes received from the RTSP source and recorded",
        received,
    );
    registry.register(
        "lva_data_dropped",
        "Frames dropped (not recorded), by data kind",
        dropped,
    );
    registry.register(
        "mediagraph_cache_bytes",
        "Bytes held in the sink's local media cache",
        cache_bytes,
    );
    registry.register(
        "mediagraph_cache_budget_bytes",
        "The sink's cache budget (localMediaCacheMaximumSizeMiB)",
        cache_budget,
    );
    registry.register(
        "mediagraph_upload_backlog_segments",
        "Sealed segments waiting for upload",
        backlog_segments,
    );
    registry.register(
        "mediagraph_upload_backlog_bytes",
        "Bytes of sealed segments waiting for upload",
        backlog_bytes,
    );
    registry.register(
        "mediagraph_upload_backlog_oldest_age_seconds",
        "Age of the oldest media waiting for upload",
        backlog_age,
    );
    registry.register(
        "mediagraph_uploaded_segments",
        "Segments uploaded since the instance was activated",
        uploaded,
    );
    registry.register(
        "mediagraph_rtsp_sessions",
        "RTSP sessions established with the camera since the service started (reconnects = this - 1)",
        sessions,
    );
    registry.register(
        "mediagraph_rtsp_reconnects",
        "RTSP sessions established with the camera after its first since the service started",
        reconnects,
    );
    registry.register(
        "mediagraph_upload_backlog_media_seconds",
        "Media seconds of the sealed segments waiting for upload",
        backlog_seconds,
    );
    registry.register(
        "mediagraph_gap_seconds",
        "Seconds of recording missing, by cause, over the gaps the sink's cache keeps (gaps.log)",
        gap_secs,
    );
    registry.register(
        "mediagraph_plugin_faults",
        "Plugin faults (PluginFault events) of the sink since the service started, by plugin kind",
        plugin_faults,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String does not fail");
    text
}

/// One event as the stream sends it: LVA's envelope (IoT Hub message properties and body in
/// one object), with a fresh GUID as the message id.
pub(super) fn envelope(e: &Event) -> Value {
    json!({
        "id": guid(),
        "eventType": e.event_type(),
        "subject": e.subject,
        "eventTime": e.event_time,
        "dataVersion": "1.0",
        "body": e.body,
    })
}

/// A random (version 4) GUID, as IoT Hub's `message-id`.
fn guid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_health_follows_session_and_error_events() {
        let map = Mutex::new(HashMap::new());
        let s = "/graphInstances/i/sources/cam";
        note(
            &map,
            &Event::new(s, catalog::MediaSessionEstablished { sdp: String::new() }),
        );
        assert!(map.lock().unwrap()[s].connected);
        note(
            &map,
            &Event::new(
                s,
                catalog::NetworkError {
                    error_code: "ConnectionFailed",
                    error_message: "connection refused".into(),
                },
            ),
        );
        let h = map.lock().unwrap()[s].clone();
        assert!(!h.connected);
        assert_eq!(
            h.last_error.as_deref(),
            Some("NetworkError: connection refused")
        );
        assert_eq!(h.sessions, 1);
    }

    #[test]
    fn gap_seconds_add_up_by_cause_and_plugin_faults_count_per_sink_and_kind() {
        use crate::cache::{Gap, GapCause};
        let gap = |start: i64, end: i64, cause| Gap {
            start: Ticks90k::from_secs(start),
            end: Ticks90k::from_secs(end),
            cause,
        };
        let gaps = [
            gap(100, 110, GapCause::CameraOffline),
            gap(200, 205, GapCause::CameraOffline),
            gap(300, 298, GapCause::ClockJump),
            gap(400, 460, GapCause::RecorderStopped),
        ];
        assert_eq!(
            gap_seconds(&gaps),
            [
                ("CameraOffline".to_owned(), 15.0),
                ("ClockJump".to_owned(), 2.0),
                ("RecorderStopped".to_owned(), 60.0)
            ]
        );
        let faults = Mutex::new(HashMap::new());
        let fault = |kind: &str| catalog::PluginFault {
            plugin: "p".into(),
            kind: kind.into(),
            fault: "trap",
            detail: String::new(),
            action: String::new(),
        };
        let sink = "/graphInstances/i/sinks/s";
        for kind in ["segmenter", "segmenter", "evictor"] {
            note_fault(&faults, &Event::new(sink, fault(kind)));
        }
        note_fault(
            &faults,
            &Event::new("/graphInstances/j/sinks/s", fault("evictor")),
        );
        let health = Health {
            faults: Arc::new(faults),
            ..Health::default()
        };
        assert_eq!(
            health.faults(sink),
            [("evictor".to_owned(), 1), ("segmenter".to_owned(), 2)]
        );
    }

    #[test]
    fn guids_have_the_version_4_shape() {
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        assert_ne!(guid(), g);
    }
}
