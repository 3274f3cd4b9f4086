//! Operational and diagnostic events, named as LVA names them
//! (`Microsoft.Media.Graph.{Operational|Diagnostics}.{Type}`), plus mediagraph's own
//! diagnostics under `Mediagraph.Diagnostics.*`.
//!
//! Owns the event envelope, the catalogue of event types ([`catalog`]: one struct per type,
//! the only place event names and body fields are written) and the bus every room emits into.
//! It must not decide policy: a room emits what happened; the bus logs it as one JSON line and
//! keeps the most recent events for the management API. The one filter it applies is LVA's
//! `diagnosticsLevel` ([`DiagnosticsLevel`]): diagnostic events below it are neither logged
//! nor streamed (they are still retained and broadcast, so status and metrics see them).
//! Event lines are logged on target `event` at info, which the log filter always lets
//! through (see `main.rs`), so the log level does not hide events.

pub mod catalog;

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::sync::LockExt;
use crate::time::Ticks90k;
pub use catalog::{Body, Severity};

/// The tracing target event lines are logged on.
pub const LOG_TARGET: &str = "event";

/// Which diagnostic events are shown (LVA's `diagnosticsLevel`: Information, Warning, Error,
/// Critical, None). Operational events are always shown: the level is about diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiagnosticsLevel {
    #[default]
    Information,
    Warning,
    Error,
    Critical,
    None,
}

impl DiagnosticsLevel {
    /// Whether an event of `severity` passes this level.
    pub fn shows(self, severity: Severity) -> bool {
        let least = match self {
            Self::Information => Severity::Information,
            Self::Warning => Severity::Warning,
            Self::Error => Severity::Error,
            Self::Critical => Severity::Critical,
            Self::None => return false,
        };
        severity >= least
    }
}

impl FromStr for DiagnosticsLevel {
    type Err = String;

    /// LVA's names, case-insensitively.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "information" | "info" => Self::Information,
            "warning" | "warn" => Self::Warning,
            "error" => Self::Error,
            "critical" => Self::Critical,
            "none" | "off" => Self::None,
            _ => {
                return Err(format!(
                    "diagnostics level '{s}' is not one of Information, Warning, Error, Critical, None"
                ));
            }
        })
    }
}

/// How many recent events the bus keeps for the API.
const RETAINED_EVENTS: usize = 1024;
/// How far a live subscriber (the service's event stream) may fall behind before it misses
/// events.
const LIVE_EVENTS: usize = 256;

/// One event: LVA's envelope without the message id (the event stream adds one per message).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// e.g. `/graphInstances/Sample-Graph-1/sinks/assetSink`.
    pub subject: String,
    /// RFC 3339 UTC with milliseconds.
    pub event_time: String,
    /// What happened; its type names the event.
    pub body: Body,
}

impl Event {
    pub fn new(subject: impl Into<String>, body: impl Into<Body>) -> Self {
        Self {
            subject: subject.into(),
            event_time: Ticks90k::now().to_rfc3339_millis(),
            body: body.into(),
        }
    }

    /// e.g. `Microsoft.Media.Graph.Operational.RecordingStarted`.
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }

    /// A diagnostic event (`*.Diagnostics.*`), as opposed to an operational one.
    pub fn is_diagnostic(&self) -> bool {
        self.event_type().contains(".Diagnostics.")
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Event", 4)?;
        s.serialize_field("eventType", self.event_type())?;
        s.serialize_field("subject", &self.subject)?;
        s.serialize_field("eventTime", &self.event_time)?;
        s.serialize_field("body", &self.body)?;
        s.end()
    }
}

/// A cloneable handle: every clone emits into the same log, history and live subscribers.
#[derive(Clone)]
pub struct EventBus {
    recent: Arc<Mutex<VecDeque<Event>>>,
    live: broadcast::Sender<Event>,
    level: DiagnosticsLevel,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::with_level(DiagnosticsLevel::default())
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus that shows diagnostic events of `level` and above.
    pub fn with_level(level: DiagnosticsLevel) -> Self {
        Self {
            recent: Arc::default(),
            live: broadcast::channel(LIVE_EVENTS).0,
            level,
        }
    }

    /// Whether `event` is shown (logged, streamed) at this bus's diagnostics level.
    pub fn shows(&self, event: &Event) -> bool {
        !event.is_diagnostic() || self.level.shows(event.body.severity())
    }

    /// Every event emitted from now on (a subscriber that falls behind is told how many it
    /// missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Logs the event as one JSON line (tracing target [`LOG_TARGET`]) if its level is shown,
    /// and retains and broadcasts it.
    pub fn emit(&self, event: Event) {
        if self.shows(&event) {
            let line = serde_json::to_string(&event).unwrap_or_default();
            tracing::info!(target: LOG_TARGET, "{line}");
        }
        // No subscriber is not an error: the stream is only open while someone watches.
        let _ = self.live.send(event.clone());
        let mut recent = self.recent.lock_unpoisoned();
        if recent.len() == RETAINED_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The retained events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let recent = self.recent.lock_unpoisoned();
        recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_retains_the_most_recent_events_in_order() {
        let bus = EventBus::new();
        for i in 0..(RETAINED_EVENTS + 3) {
            let body = catalog::MediaSessionEstablished { sdp: String::new() };
            bus.emit(Event::new(format!("/s/{i}"), body));
        }
        let recent = bus.recent();
        assert_eq!(recent.len(), RETAINED_EVENTS);
        assert_eq!(recent[0].subject, "/s/3");
        assert_eq!(
            recent.last().unwrap().subject,
            format!("/s/{}", RETAINED_EVENTS + 2)
        );
    }

    #[test]
    fn the_diagnostics_level_filters_diagnostics_only() {
        let session = Event::new(
            "/s",
            catalog::MediaSessionEstablished { sdp: String::new() },
        );
        let dropped = Event::new(
            "/s",
            catalog::DataDropped {
                data_type: "video",
                reason: "diskFull",
                bytes: 1,
            },
        );
        let failed = Event::new(
            "/s",
            catalog::RuntimeError {
                code: "GraphFailed",
                error_message: String::new(),
            },
        );
        let started = Event::new(
            "/graphInstances/i",
            catalog::GraphInstanceStarted {
                topology_name: "t".into(),
            },
        );
        let shown = |level: &str| -> Vec<bool> {
            let bus = EventBus::with_level(level.parse().unwrap());
            [&session, &dropped, &failed, &started]
                .iter()
                .map(|e| bus.shows(e))
                .collect()
        };
        assert_eq!(shown("Information"), [true, true, true, true]);
        assert_eq!(shown("warning"), [false, true, true, true]);
        assert_eq!(shown("Error"), [false, false, true, true]);
        assert_eq!(shown("None"), [false, false, false, true]);
        assert!("Loud".parse::<DiagnosticsLevel>().is_err());
    }

    #[test]
    fn an_event_serializes_as_lvas_envelope_with_its_catalogued_type() {
        let output = catalog::RecordingOutput {
            output_type: crate::topology::OutputType::AssetName,
            output_location: "cam-1".into(),
        };
        let e = Event::new(
            "/graphInstances/i/sinks/s",
            catalog::RecordingStarted(output),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v["eventType"],
            "Microsoft.Media.Graph.Operational.RecordingStarted"
        );
        assert_eq!(v["subject"], "/graphInstances/i/sinks/s");
        assert_eq!(
            v["body"],
            serde_json::json!({"outputType": "assetName", "outputLocation": "cam-1"})
        );
        assert_eq!(v["eventTime"], e.event_time);
        let dropped = Event::new(
            "/s",
            catalog::DataDropped {
                data_type: "video",
                reason: "diskFull",
                bytes: 1,
            },
        );
        assert_eq!(
            dropped.event_type(),
            "Microsoft.Media.Graph.Diagnostics.DataDropped"
        );
        let own = Event::new(
            "/s",
            catalog::SinkStartFailed {
                error_code: "CacheUnavailable",
                error_message: String::new(),
                retry_in_seconds: 5,
            },
        );
        assert_eq!(own.event_type(), "Mediagraph.Diagnostics.SinkStartFailed");
    }

    #[test]
    fn a_node_not_run_is_named_at_its_own_subject() {
        let node = crate::topology::IgnoredNode {
            node: "motionDetection".into(),
            node_type: "#Microsoft.Media.MediaGraphMotionDetectionProcessor".into(),
            list: "processors",
            target: "$.properties.processors[0]".into(),
        };
        let (subject, body) = catalog::NodeNotRun::of("g1", &node);
        let v = serde_json::to_value(Event::new(subject, body)).unwrap();
        assert_eq!(v["eventType"], "Mediagraph.Diagnostics.NodeNotRun");
        assert_eq!(
            v["subject"],
            "/graphInstances/g1/processors/motionDetection"
        );
        assert_eq!(v["body"]["nodeName"], "motionDetection");
        assert_eq!(
            v["body"]["nodeType"],
            "#Microsoft.Media.MediaGraphMotionDetectionProcessor"
        );
        assert_eq!(v["body"]["target"], "$.properties.processors[0]");
    }
}
