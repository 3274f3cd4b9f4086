//! Operational and diagnostic events, named as LVA names them
//! (`Microsoft.Media.Graph.{Operational|Diagnostics}.{Type}`), plus mediagraph's own
//! diagnostics under `Mediagraph.Diagnostics.*`.
//!
//! Owns the event shape and the bus every room emits into. It must not decide policy: a room
//! emits what happened; the bus logs it as one JSON line and keeps the most recent events for
//! the management API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::sync::LockExt;
use crate::time::Ticks90k;

/// How many recent events the bus keeps for the API.
const RETAINED_EVENTS: usize = 1024;
/// How far a live subscriber (the service's event stream) may fall behind before it misses
/// events.
const LIVE_EVENTS: usize = 256;

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// e.g. `Microsoft.Media.Graph.Operational.RecordingStarted`.
    pub event_type: String,
    /// e.g. `/graphInstances/Sample-Graph-1/sinks/assetSink`.
    pub subject: String,
    /// RFC 3339 UTC with milliseconds.
    pub event_time: String,
    pub body: serde_json::Value,
}

impl Event {
    pub fn new(
        event_type: impl Into<String>,
        subject: impl Into<String>,
        body: serde_json::Value,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            subject: subject.into(),
            event_time: Ticks90k::now().to_rfc3339_millis(),
            body,
        }
    }
}

/// A cloneable handle: every clone emits into the same log, history and live subscribers.
#[derive(Clone)]
pub struct EventBus {
    recent: Arc<Mutex<VecDeque<Event>>>,
    live: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            recent: Arc::default(),
            live: broadcast::channel(LIVE_EVENTS).0,
        }
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event emitted from now on (a subscriber that falls behind is told how many it
    /// missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Logs the event as one JSON line (tracing target `event`) and retains it.
    pub fn emit(&self, event: Event) {
        let line = serde_json::to_string(&event).unwrap_or_default();
        tracing::info!(target: "event", "{line}");
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
            bus.emit(Event::new("T", format!("/s/{i}"), serde_json::json!({})));
        }
        let recent = bus.recent();
        assert_eq!(recent.len(), RETAINED_EVENTS);
        assert_eq!(recent[0].subject, "/s/3");
        assert_eq!(
            recent.last().unwrap().subject,
            format!("/s/{}", RETAINED_EVENTS + 2)
        );
    }
}
