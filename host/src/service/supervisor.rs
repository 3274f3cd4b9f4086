//! The instance state machine: `Inactive → Activating → Active → Deactivating → Inactive`.
//!
//! Each instance is started and stopped on its own (`graph::start` gives it its own sources,
//! recorders, uploaders and shutdown signal), so a transition of one never touches another.
//! Activate returns once every sink of the instance is recording or retrying (started, its
//! camera connecting or retrying: a camera that is down keeps the instance Active, as in LVA;
//! or failed to start and retried), at most [`SETTLE_TIMEOUT`] after the start. Deactivate
//! returns when the recorders sealed and the upload backlog is flushed, or when the caller's
//! timeout runs out: the flush then goes on and the instance stays Deactivating until it ends.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::methods::{MethodResponse, instance_document};
use super::store::{Desired, State, StoredInstance};
use super::{InstanceState, Service, Slot};
use crate::events::{Body, Event, catalog};
use crate::graph::{self, RunningGraph, StopSummary};
use crate::sync::LockExt;
use crate::topology;

/// The longest an Activate waits for the instance's sinks to start (cache open, plugins
/// loaded, camera connecting) before it answers anyway: the instance is Active and the sinks
/// go on starting in the background.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who asked for an activation: a failed start at resume keeps the stored desired state (only
/// Deactivate makes an instance inactive), one asked for by the API reverts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Caller {
    Api,
    Resume,
}

fn subject(name: &str) -> String {
    format!("/graphInstances/{name}")
}

enum Next {
    Done(MethodResponse),
    Wait(watch::Receiver<InstanceState>),
    Start(Box<topology::ResolvedGraph>),
}

pub(super) async fn activate(service: &Service, name: &str, caller: Caller) -> MethodResponse {
    loop {
        match begin_activation(service, name).await {
            Next::Done(r) => return r,
            Next::Wait(mut rx) => {
                // Activating: wait for the first activation, then look again.
                let _ = rx.wait_for(|s| *s != InstanceState::Activating).await;
            }
            Next::Start(graph) => return finish_activation(service, name, &graph, caller).await,
        }
    }
}

async fn begin_activation(service: &Service, name: &str) -> Next {
    let mut state = service.inner.state.lock().await;
    let Some(instance) = state.instances.get(name).cloned() else {
        return Next::Done(MethodResponse::not_found("graph instance", name));
    };
    {
        let slots = service.inner.slots.lock_unpoisoned();
        if let Some(slot) = slots.get(name) {
            match slot.state() {
                InstanceState::Active => return Next::Done(MethodResponse::ok(200, Value::Null)),
                InstanceState::Activating => return Next::Wait(slot.state.subscribe()),
                InstanceState::Deactivating => {
                    return Next::Done(MethodResponse::conflict(
                        "OperationNotAllowedInState",
                        "$.name",
                        format!(
                            "The graph instance '{name}' is Deactivating; activate it once it is Inactive."
                        ),
                    ));
                }
                InstanceState::Inactive => {}
            }
        }
    }
    if !state.topologies.contains_key(&instance.topology_name) {
        return Next::Done(MethodResponse::conflict(
            "ResourceValidationError",
            "$.name",
            format!(
                "The graph topology '{}' of graph instance '{name}' does not exist.",
                instance.topology_name
            ),
        ));
    }
    if let Some(topology) = state.topologies.get(&instance.topology_name) {
        let findings = service.inner.policy.unsecured_findings(&topology.document);
        if !findings.is_empty() {
            return Next::Done(MethodResponse::invalid(
                &topology::ErrorBody::invalid_resource(findings),
            ));
        }
    }
    let graph = match resolve(
        &state,
        name,
        &instance,
        service.inner.plugins.as_ref(),
        &service.inner.policy,
    ) {
        Ok(g) => g,
        Err(body) => {
            return Next::Done(MethodResponse::ok(
                400,
                serde_json::to_value(&body).unwrap_or(Value::Null),
            ));
        }
    };
    if instance.desired != Desired::Active {
        let mut new = state.clone();
        if let Some(i) = new.instances.get_mut(name) {
            i.desired = Desired::Active;
        }
        if let Err(r) = super::methods::commit_state(service, &mut state, new).await {
            return Next::Done(r);
        }
    }
    let mut slots = service.inner.slots.lock_unpoisoned();
    let slot = slots.entry(name.to_owned()).or_insert_with(Slot::new);
    slot.state.send_replace(InstanceState::Activating);
    slot.last_error = None;
    slot.assets = super::assets_of(&graph);
    Next::Start(Box::new(graph))
}

/// The stored instance `name` resolved against its stored topology, as it would record now.
pub(super) fn resolve(
    state: &State,
    name: &str,
    instance: &StoredInstance,
    plugins: &dyn topology::PluginLookup,
    policy: &super::Policy,
) -> Result<topology::ResolvedGraph, topology::ErrorBody> {
    let document = state
        .topologies
        .get(&instance.topology_name)
        .map(|t| t.document.to_string())
        .unwrap_or_default();
    topology::resolve_with(
        &document,
        Some(&instance_document(name, instance, "2.0").to_string()),
        &[],
        plugins,
        SystemTime::now(),
        policy.unsupported_nodes,
    )
}

async fn finish_activation(
    service: &Service,
    name: &str,
    graph: &topology::ResolvedGraph,
    caller: Caller,
) -> MethodResponse {
    let inner = &service.inner;
    tracing::info!(instance = %name, topology = %graph.topology_name, sinks = graph.asset_sinks.len(), "activating");
    // Subscribed before the start, so no SinkStartFailed of this instance is missed.
    let events = inner.events.subscribe();
    match graph::start(
        graph.clone(),
        inner.plugins.clone(),
        inner.events.clone(),
        inner.options.clone(),
    ) {
        Ok(running) => {
            settle(&running, events, name, graph).await;
            let failure = running.failure();
            {
                let mut slots = inner.slots.lock_unpoisoned();
                if let Some(slot) = slots.get_mut(name) {
                    slot.running = Some(running);
                    slot.state.send_replace(InstanceState::Active);
                }
            }
            inner.events.emit(Event::new(
                subject(name),
                catalog::GraphInstanceStarted {
                    topology_name: graph.topology_name.clone(),
                },
            ));
            tokio::spawn(watch_for_failure(service.clone(), name.to_owned(), failure));
            MethodResponse::ok(200, Value::Null)
        }
        Err(e) => {
            let message = e.to_string();
            tracing::error!(instance = %name, error = %message, "activation failed");
            inner.events.emit(Event::new(
                subject(name),
                catalog::RuntimeError {
                    code: "ActivationFailed",
                    error_message: message.clone(),
                },
            ));
            if caller == Caller::Api {
                let mut state = inner.state.lock().await;
                let mut new = state.clone();
                if let Some(i) = new.instances.get_mut(name) {
                    i.desired = Desired::Inactive;
                }
                let _ = super::methods::commit_state(service, &mut state, new).await;
            }
            let mut slots = inner.slots.lock_unpoisoned();
            if let Some(slot) = slots.get_mut(name) {
                slot.last_error = Some(message.clone());
                slot.state.send_replace(InstanceState::Inactive);
            }
            MethodResponse::conflict(
                "ResourceValidationError",
                "$.name",
                format!("The graph instance '{name}' could not be activated: {message}"),
            )
        }
    }
}

/// Waits (at most [`SETTLE_TIMEOUT`]) until every asset sink of the starting instance is
/// recording or retrying: it has started (cache open, plugins loaded, its camera connecting
/// or retrying), or it failed to start and is retried (`SinkStartFailed`). That is when LVA's
/// Activate answers: the instance is Active, recording or waiting for its camera.
async fn settle(
    running: &RunningGraph,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    name: &str,
    graph: &topology::ResolvedGraph,
) {
    let prefix = format!("{}/sinks/", subject(name));
    let mut retrying = std::collections::HashSet::new();
    let failure = running.failure();
    tokio::pin!(failure);
    let deadline = tokio::time::sleep(SETTLE_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let started: std::collections::HashSet<String> =
            running.status().into_iter().map(|s| s.sink).collect();
        let settled = graph
            .asset_sinks
            .iter()
            .all(|s| started.contains(&s.node) || retrying.contains(&s.node));
        if settled {
            return;
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) => {
                    if let (Body::SinkStartFailed(_), Some(sink)) =
                        (&e.body, e.subject.strip_prefix(&prefix))
                    {
                        retrying.insert(sink.to_owned());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            // Sinks register as they start; look again soon.
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            // Ended already: the failure watcher reports it.
            _ = &mut failure => return,
            () = &mut deadline => {
                tracing::warn!(instance = %name, "sinks still starting after {} s; answering Activate", SETTLE_TIMEOUT.as_secs());
                return;
            }
        }
    }
}

/// Waits for an active instance's graph to end on its own (`failure`, from
/// [`graph::RunningGraph::failure`]): then reports a `RuntimeError` at once and makes the
/// instance Inactive with the error in `/status`. Its desired state stays Active, so an
/// Activate or the next start tries again. An end asked for by Deactivate or shutdown is no
/// failure.
async fn watch_for_failure(
    service: Service,
    name: String,
    failure: impl Future<Output = Option<String>>,
) {
    let Some(why) = failure.await else {
        return;
    };
    tracing::error!(instance = %name, error = %why, "the instance failed; it is inactive until activated again");
    service.inner.events.emit(Event::new(
        subject(&name),
        catalog::RuntimeError {
            code: "GraphFailed",
            error_message: why.clone(),
        },
    ));
    let mut slots = service.inner.slots.lock_unpoisoned();
    if let Some(slot) = slots.get_mut(&name)
        && slot.state() == InstanceState::Active
    {
        // The graph's tasks have ended: nothing is left to stop.
        slot.running = None;
        slot.last_error = Some(why);
        slot.state.send_replace(InstanceState::Inactive);
    }
}

pub(super) async fn deactivate(service: &Service, name: &str, timeout: Duration) -> MethodResponse {
    let inner = &service.inner;
    let mut rx = {
        let mut state = inner.state.lock().await;
        if !state.instances.contains_key(name) {
            return MethodResponse::not_found("graph instance", name);
        }
        let current = {
            let slots = inner.slots.lock_unpoisoned();
            slots.get(name).map_or(InstanceState::Inactive, Slot::state)
        };
        match current {
            InstanceState::Inactive => return MethodResponse::ok(200, Value::Null),
            InstanceState::Activating => {
                return MethodResponse::conflict(
                    "OperationNotAllowedInState",
                    "$.name",
                    format!(
                        "The graph instance '{name}' is Activating; deactivate it once it is Active."
                    ),
                );
            }
            InstanceState::Deactivating => {}
            InstanceState::Active => {
                let mut new = state.clone();
                if let Some(i) = new.instances.get_mut(name) {
                    i.desired = Desired::Inactive;
                }
                if let Err(r) = super::methods::commit_state(service, &mut state, new).await {
                    return r;
                }
                let running = {
                    let mut slots = inner.slots.lock_unpoisoned();
                    slots.get_mut(name).and_then(|slot| {
                        slot.state.send_replace(InstanceState::Deactivating);
                        slot.running.take()
                    })
                };
                let service = service.clone();
                let name = name.to_owned();
                tokio::spawn(async move {
                    let summary = match running {
                        Some(r) => r.stop().await,
                        None => StopSummary {
                            drained: true,
                            left_segments: 0,
                        },
                    };
                    stopped(&service, &name, &summary);
                });
            }
        }
        let slots = inner.slots.lock_unpoisoned();
        match slots.get(name) {
            Some(slot) => slot.state.subscribe(),
            None => return MethodResponse::ok(200, Value::Null),
        }
    };
    let done = tokio::time::timeout(timeout, rx.wait_for(|s| *s == InstanceState::Inactive)).await;
    match done {
        Ok(_) => MethodResponse::ok(200, Value::Null),
        Err(_) => MethodResponse::ok(
            200,
            json!({
                "state": "Deactivating",
                "message": format!(
                    "responseTimeoutInSeconds ({} s) ran out before every cached segment was uploaded; the instance stays Deactivating while the upload goes on",
                    timeout.as_secs()
                ),
            }),
        ),
    }
}

/// The stop of an instance ended: it is Inactive now.
fn stopped(service: &Service, name: &str, summary: &StopSummary) {
    let inner = &service.inner;
    inner.events.emit(Event::new(
        subject(name),
        catalog::GraphInstanceStopped {
            upload_flushed: summary.drained,
            cached_segments_left: summary.left_segments,
        },
    ));
    let mut slots = inner.slots.lock_unpoisoned();
    if let Some(slot) = slots.get_mut(name) {
        slot.state.send_replace(InstanceState::Inactive);
    }
}

/// Stops every running instance (process shutdown). The stored desired states stay as they
/// are; an instance in a transition is waited for and then stopped if it ended Active.
pub(super) async fn stop_all(service: &Service) {
    loop {
        let (running, mut waiting) = {
            let mut slots = service.inner.slots.lock_unpoisoned();
            let mut running = Vec::new();
            let mut waiting = Vec::new();
            for (name, slot) in slots.iter_mut() {
                match slot.state() {
                    InstanceState::Active => {
                        if let Some(r) = slot.running.take() {
                            slot.state.send_replace(InstanceState::Deactivating);
                            running.push((name.clone(), r));
                        }
                    }
                    InstanceState::Activating | InstanceState::Deactivating => {
                        waiting.push(slot.state.subscribe())
                    }
                    InstanceState::Inactive => {}
                }
            }
            (running, waiting)
        };
        if running.is_empty() && waiting.is_empty() {
            return;
        }
        let stops = running.into_iter().map(|(name, r)| async move {
            let summary = r.stop().await;
            stopped(service, &name, &summary);
        });
        futures::future::join_all(stops).await;
        for rx in &mut waiting {
            let _ = rx.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::{Body, EventBus};
    use crate::graph::RunOptions;
    use crate::plugin::PluginHost;
    use crate::upload::config::StoreArgs;

    const TOPOLOGY: &str = include_str!("../../../topologies/cvr-asset/topology.json");

    fn options(dir: &std::path::Path) -> RunOptions {
        RunOptions {
            data_dir: Some(dir.to_owned()),
            progress_every: Duration::from_secs(60),
            upload: StoreArgs::default().setup(&dir.join("assets")).unwrap(),
        }
    }

    fn service(dir: &std::path::Path, events: &EventBus) -> Service {
        let plugins = PluginHost::new(Some(dir.join("plugins")), events.clone()).unwrap();
        Service::open(
            dir,
            plugins,
            events.clone(),
            options(dir),
            super::super::Policy::default(),
        )
        .unwrap()
    }

    /// A service holding the shipped topology and instance `cam` (camera down), its slot put
    /// in `state` as a transition in progress would leave it.
    async fn in_state(dir: &std::path::Path, state: InstanceState) -> Service {
        let service = service(dir, &EventBus::new());
        let topology: Value = serde_json::from_str(TOPOLOGY).unwrap();
        let long = Duration::from_secs(30);
        assert_eq!(
            service
                .call("GraphTopologySet", topology, long)
                .await
                .status,
            201
        );
        let instance = serde_json::json!({"@apiVersion": "2.0", "name": "cam", "properties": {
            "topologyName": "CVRToAsset",
            "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1:1/cam"}]}});
        assert_eq!(
            service
                .call("GraphInstanceSet", instance, long)
                .await
                .status,
            201
        );
        let slots = service.inner.slots.lock_unpoisoned();
        slots["cam"].state.send_replace(state);
        drop(slots);
        service
    }

    fn cam() -> Value {
        serde_json::json!({"@apiVersion": "2.0", "name": "cam"})
    }

    #[tokio::test]
    async fn a_second_activate_while_activating_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let service = in_state(dir.path(), InstanceState::Activating).await;
        let second = tokio::spawn({
            let service = service.clone();
            async move {
                service
                    .call("GraphInstanceActivate", cam(), Duration::from_secs(30))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "it waits while the first activates");
        // The first activation ends Active: the waiting one answers as on Active.
        service.inner.slots.lock_unpoisoned()["cam"]
            .state
            .send_replace(InstanceState::Active);
        let answer = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("answered once the first is done")
            .unwrap();
        assert_eq!((answer.status, answer.payload), (200, Value::Null));
        assert!(
            service.inner.slots.lock_unpoisoned()["cam"]
                .running
                .is_none(),
            "the second did not start a graph of its own"
        );
    }

    #[tokio::test]
    async fn activate_while_deactivating_and_deactivate_while_activating_are_409() {
        let dir = tempfile::tempdir().unwrap();
        let long = Duration::from_secs(30);
        let service = in_state(dir.path(), InstanceState::Deactivating).await;
        let r = service.call("GraphInstanceActivate", cam(), long).await;
        assert_eq!(r.status, 409, "{}", r.payload);
        assert_eq!(
            r.payload["error"]["details"][0]["code"],
            "OperationNotAllowedInState"
        );
        service.inner.slots.lock_unpoisoned()["cam"]
            .state
            .send_replace(InstanceState::Activating);
        let r = service.call("GraphInstanceDeactivate", cam(), long).await;
        assert_eq!(r.status, 409, "{}", r.payload);
        assert!(
            r.payload.to_string().contains("is Activating"),
            "{}",
            r.payload
        );
    }

    #[tokio::test]
    async fn a_graph_that_fails_while_active_is_reported_at_once_and_made_inactive() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventBus::new();
        let options = options(dir.path());
        let service = service(dir.path(), &events);
        // A graph that starts but whose sink reads from no source of the graph: its task ends
        // with an error at once, long before anyone stops it.
        let params = [("rtspUrl".to_owned(), "rtsp://127.0.0.1:1/cam".to_owned())];
        let mut graph = topology::resolve(
            TOPOLOGY,
            None,
            &params,
            &topology::DefaultPluginNames,
            SystemTime::now(),
        )
        .unwrap();
        graph.asset_sinks[0].source = "missing".into();
        let running = graph::start(
            graph,
            service.inner.plugins.clone(),
            events.clone(),
            options,
        )
        .unwrap();
        let failure = running.failure();
        let mut state = {
            let mut slots = service.inner.slots.lock_unpoisoned();
            let slot = slots.entry("cam".into()).or_insert_with(Slot::new);
            slot.running = Some(running);
            slot.state.send_replace(InstanceState::Active);
            slot.state.subscribe()
        };
        tokio::spawn(watch_for_failure(service.clone(), "cam".into(), failure));
        tokio::time::timeout(
            Duration::from_secs(10),
            state.wait_for(|s| *s == InstanceState::Inactive),
        )
        .await
        .expect("the failure is noticed at once, not at shutdown")
        .unwrap();
        let error = events
            .recent()
            .into_iter()
            .find_map(|e| match e.body {
                Body::RuntimeError(r) if e.subject == "/graphInstances/cam" => Some(r),
                _ => None,
            })
            .expect("a RuntimeError event");
        assert_eq!(error.code, "GraphFailed");
        assert!(error.error_message.contains("missing"), "{error:?}");
        let slots = service.inner.slots.lock_unpoisoned();
        assert!(slots["cam"].running.is_none());
        assert!(
            slots["cam"]
                .last_error
                .as_deref()
                .unwrap()
                .contains("missing")
        );
    }
}
