//! The control plane of `mediagraph serve`: LVA's graph topologies and graph instances as
//! durable state, LVA/AVA direct methods on them, and each instance's life
//! (`Inactive → Activating → Active → Deactivating → Inactive`), one instance at a time.
//!
//! Split by job: [`store`] keeps the state crash-safely in the data directory; [`methods`]
//! reads direct-method calls and answers them with LVA's statuses and payloads;
//! [`supervisor`] starts and stops instances through `graph::start` / `RunningGraph::stop`;
//! [`observe`] reports status, metrics, readiness and the event stream; [`api`] is the HTTP
//! surface (an `axum::Router`, and [`api::front_door`] mounting it with playback on the front
//! door); [`settings`] reads `--config` under the flags; [`policy`] holds what the settings
//! forbid (unsupported nodes, unsecured endpoints); [`cli`] is the `serve` command and [`ops`]
//! the `ops` command.
//!
//! Owns: the meaning of the state file, the instance state machine and the method semantics.
//! Must not: validate topologies itself (`topology::check` does, so `validate` and the API give
//! the same findings), record or upload (graph does), or serve anything but its own routes
//! (authentication, limits and playback are the front door's). Never puts a secret (a
//! SecretString parameter value, a literal password) into a response, an event or a log line.

pub mod api;
pub mod cli;
mod methods;
mod observe;
pub mod ops;
pub mod policy;
pub mod settings;
pub mod store;
mod supervisor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::events::EventBus;
use crate::graph::{RunOptions, RunningGraph};
use crate::plugin::PluginHost;
use crate::topology::{AssetName, ResolvedGraph};
use store::{State, StateFile, StoreError};

pub use methods::{LIST_PAGE, MethodResponse};
pub use policy::Policy;

/// Where an instance is in its life. LVA spells the states in PascalCase, AVA in lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum InstanceState {
    Inactive,
    Activating,
    Active,
    Deactivating,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "Inactive",
            Self::Activating => "Activating",
            Self::Active => "Active",
            Self::Deactivating => "Deactivating",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running side of one instance. Created by Set, removed by Delete.
struct Slot {
    /// Watched by callers waiting for a transition (a second Activate, a Deactivate).
    state: watch::Sender<InstanceState>,
    running: Option<RunningGraph>,
    /// Why the last activation failed, for `/status`.
    last_error: Option<String>,
    /// The assets its sinks record into, as the last resolve of the instance named them
    /// (at start, Set and Activate): the playback routes offer them.
    assets: Vec<AssetName>,
}

impl Slot {
    fn new() -> Self {
        Self {
            state: watch::channel(InstanceState::Inactive).0,
            running: None,
            last_error: None,
            assets: Vec::new(),
        }
    }

    fn state(&self) -> InstanceState {
        *self.state.borrow()
    }
}

/// A cloneable handle on the one service of this process.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    file: StateFile,
    /// Lock order: `state`, then `slots`; `slots` is never held across an await.
    state: tokio::sync::Mutex<State>,
    slots: Mutex<HashMap<String, Slot>>,
    plugins: Arc<PluginHost>,
    events: EventBus,
    options: RunOptions,
    policy: Policy,
    health: observe::Health,
    /// State loaded and the instances that should be active started (`/readyz`).
    ready: AtomicBool,
}

impl Service {
    /// Loads the state of `data_dir` (the caller holds its [`crate::datadir::DataDirLock`]).
    /// Nothing is started yet: see [`Service::resume`]. Needs a tokio runtime (it watches the
    /// event bus for camera health).
    pub fn open(
        data_dir: &Path,
        plugins: PluginHost,
        events: EventBus,
        options: RunOptions,
        policy: Policy,
    ) -> Result<Self, ServiceError> {
        let file = StateFile::new(data_dir);
        let state = file.load()?;
        let slots = state
            .instances
            .iter()
            .map(|(name, instance)| {
                let mut slot = Slot::new();
                if let Ok(graph) = supervisor::resolve(&state, name, instance, &plugins, &policy) {
                    slot.assets = assets_of(&graph);
                }
                (name.clone(), slot)
            })
            .collect();
        let health = observe::Health::watch(&events);
        Ok(Self {
            inner: Arc::new(Inner {
                file,
                state: tokio::sync::Mutex::new(state),
                slots: Mutex::new(slots),
                plugins: Arc::new(plugins),
                events,
                options,
                policy,
                health,
                ready: AtomicBool::new(false),
            }),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.inner.options.data_dir.clone().unwrap_or_default()
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Calls one direct method, as IoT Hub would: `timeout` is the caller's
    /// `responseTimeoutInSeconds`.
    pub async fn call(&self, method: &str, payload: Value, timeout: Duration) -> MethodResponse {
        methods::call(self, method, payload, timeout).await
    }

    /// Activates every instance whose desired state is Active (as when the process stopped),
    /// then reports ready. An instance that fails to start stays desired-Active (so the next
    /// start tries again) and its error shows in `/status`.
    pub async fn resume(&self) {
        let names: Vec<String> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .iter()
                .filter(|(_, i)| i.desired == store::Desired::Active)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let starts = names.iter().map(|name| async move {
            let r = supervisor::activate(self, name, supervisor::Caller::Resume).await;
            if r.status != 200 {
                tracing::error!(instance = %name, status = r.status, "resuming the instance failed");
            }
        });
        futures::future::join_all(starts).await;
        self.inner.ready.store(true, Ordering::Relaxed);
        tracing::info!(resumed = names.len(), "service ready");
    }

    /// Stops every instance (TEARDOWN, seal, bounded upload flush) without changing what is
    /// stored: the instances that were active are resumed by the next start.
    pub async fn shutdown(&self) {
        self.inner.ready.store(false, Ordering::Relaxed);
        supervisor::stop_all(self).await;
    }

    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// The store every instance uploads to (and playback reads from).
    pub fn asset_store(&self) -> std::sync::Arc<dyn crate::upload::AssetStore> {
        self.inner.options.upload.store.clone()
    }
}

/// The assets a resolved graph's sinks record into.
fn assets_of(graph: &ResolvedGraph) -> Vec<AssetName> {
    graph
        .asset_sinks
        .iter()
        .map(|s| s.asset_name.clone())
        .collect()
}
