//! Direct methods: LVA's `GraphTopology*` / `GraphInstance*` (`@apiVersion` 1.0 and 2.0) and
//! AVA's `pipelineTopology*` / `livePipeline*` (`@apiVersion` 1.0), answered with the statuses
//! and payloads LVA documents (lva-spec (c)). Choices where LVA says nothing are in
//! ARCHITECTURE.md, `## service`.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::store::{Desired, Parameter, State, StoredInstance, StoredTopology, SystemData};
use super::{InstanceState, Service, Slot, supervisor};
use crate::sync::LockExt;
use crate::time::Ticks90k;
use crate::topology::{self, ErrorBody, ErrorDetail, ErrorInfo, Topology, code};

/// Items per List page (LVA does not document its page size).
pub const LIST_PAGE: usize = 100;
const LVA_VERSIONS: &[&str] = &["1.0", "2.0"];
const AVA_VERSIONS: &[&str] = &["1.0"];
const CONFLICT_MESSAGE: &str = "A conflict was encountered when processing the request";

/// IoT Hub's direct-method result: `status` is the method's, `payload` its JSON or null.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MethodResponse {
    pub status: u16,
    pub payload: Value,
}

impl MethodResponse {
    pub fn ok(status: u16, payload: Value) -> Self {
        Self { status, payload }
    }

    fn error(status: u16, code: &str, message: &str, details: Vec<ErrorDetail>) -> Self {
        let body = ErrorBody {
            error: ErrorInfo {
                code: code.to_owned(),
                message: message.to_owned(),
                details,
            },
        };
        Self::from_body(status, &body)
    }

    fn from_body(status: u16, body: &ErrorBody) -> Self {
        Self {
            status,
            payload: serde_json::to_value(body).unwrap_or(Value::Null),
        }
    }

    /// 400 with the findings of `topology::check`, exactly as `validate --json` prints them.
    pub(super) fn invalid(body: &ErrorBody) -> Self {
        Self::from_body(400, body)
    }

    pub(super) fn conflict(detail_code: &str, target: &str, message: String) -> Self {
        Self::error(
            409,
            "Conflict",
            CONFLICT_MESSAGE,
            vec![ErrorDetail::new(detail_code, target, message)],
        )
    }

    pub(super) fn not_found(what: &str, name: &str) -> Self {
        Self::error(
            404,
            "NotFound",
            &format!("The {what} '{name}' was not found."),
            Vec::new(),
        )
    }

    pub(super) fn internal(message: String) -> Self {
        Self::error(500, "InternalServerError", &message, Vec::new())
    }
}

/// Which vocabulary a call used: it decides the accepted `@apiVersion`s and the spelling of
/// instance states in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flavor {
    Lva,
    Ava,
}

impl Flavor {
    pub(super) fn state(self, s: InstanceState) -> String {
        match self {
            Flavor::Lva => s.as_str().to_owned(),
            Flavor::Ava => s.as_str().to_ascii_lowercase(),
        }
    }

    fn versions(self) -> &'static [&'static str] {
        match self {
            Flavor::Lva => LVA_VERSIONS,
            Flavor::Ava => AVA_VERSIONS,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TopologySet,
    TopologyGet,
    TopologyList,
    TopologyDelete,
    InstanceSet,
    InstanceGet,
    InstanceList,
    InstanceDelete,
    InstanceActivate,
    InstanceDeactivate,
}

const METHODS: &[(&str, &str, Op)] = &[
    ("GraphTopologySet", "pipelineTopologySet", Op::TopologySet),
    ("GraphTopologyGet", "pipelineTopologyGet", Op::TopologyGet),
    (
        "GraphTopologyList",
        "pipelineTopologyList",
        Op::TopologyList,
    ),
    (
        "GraphTopologyDelete",
        "pipelineTopologyDelete",
        Op::TopologyDelete,
    ),
    ("GraphInstanceSet", "livePipelineSet", Op::InstanceSet),
    ("GraphInstanceGet", "livePipelineGet", Op::InstanceGet),
    ("GraphInstanceList", "livePipelineList", Op::InstanceList),
    (
        "GraphInstanceDelete",
        "livePipelineDelete",
        Op::InstanceDelete,
    ),
    (
        "GraphInstanceActivate",
        "livePipelineActivate",
        Op::InstanceActivate,
    ),
    (
        "GraphInstanceDeactivate",
        "livePipelineDeactivate",
        Op::InstanceDeactivate,
    ),
];

fn lookup(method: &str) -> Option<(Op, Flavor)> {
    METHODS.iter().find_map(|(lva, ava, op)| {
        if *lva == method {
            Some((*op, Flavor::Lva))
        } else if *ava == method {
            Some((*op, Flavor::Ava))
        } else {
            None
        }
    })
}

pub(super) async fn call(
    service: &Service,
    method: &str,
    payload: Value,
    timeout: Duration,
) -> MethodResponse {
    let Some((op, flavor)) = lookup(method) else {
        return MethodResponse::error(
            501,
            "NotImplemented",
            &format!("The method '{method}' is not implemented."),
            Vec::new(),
        );
    };
    let Value::Object(payload) = payload else {
        return MethodResponse::error(
            400,
            "BadRequest",
            "Request is not valid.",
            vec![ErrorDetail::new(
                code::PROPERTY_TYPE_INVALID,
                "$",
                "the method payload must be a JSON object",
            )],
        );
    };
    if let Err(r) = check_version(&payload, flavor) {
        return r;
    }
    let started = std::time::Instant::now();
    tracing::info!(method, "Request started");
    let response = match op {
        Op::TopologySet => topology_set(service, payload).await,
        Op::TopologyGet => topology_get(service, &payload).await,
        Op::TopologyList => list(service, &payload, flavor, Kind::Topology).await,
        Op::TopologyDelete => topology_delete(service, &payload).await,
        Op::InstanceSet => instance_set(service, payload, flavor).await,
        Op::InstanceGet => instance_get(service, &payload, flavor).await,
        Op::InstanceList => list(service, &payload, flavor, Kind::Instance).await,
        Op::InstanceDelete => instance_delete(service, &payload).await,
        Op::InstanceActivate => match name_of(&payload) {
            Ok(name) => supervisor::activate(service, &name, supervisor::Caller::Api).await,
            Err(r) => r,
        },
        Op::InstanceDeactivate => match name_of(&payload) {
            Ok(name) => supervisor::deactivate(service, &name, timeout).await,
            Err(r) => r,
        },
    };
    tracing::info!(
        method,
        status = response.status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Request completed"
    );
    response
}

fn check_version(payload: &Map<String, Value>, flavor: Flavor) -> Result<(), MethodResponse> {
    let supported = flavor.versions().join(", ");
    let found = payload.get("@apiVersion");
    if let Some(Value::String(v)) = found
        && flavor.versions().contains(&v.as_str())
    {
        return Ok(());
    }
    let message = match found {
        None => format!("'@apiVersion' is required. Supported version(s): {supported}."),
        Some(Value::String(v)) => {
            format!("The API version '{v}' is not supported. Supported version(s): {supported}.")
        }
        Some(other) => {
            format!("The API version {other} is not supported. Supported version(s): {supported}.")
        }
    };
    Err(MethodResponse::error(
        400,
        "InvalidVersion",
        "The API version is not valid.",
        vec![ErrorDetail::new(
            code::API_VERSION_NOT_SUPPORTED,
            "$.@apiVersion",
            message,
        )],
    ))
}

/// `name` of a Get/Delete/Activate/Deactivate payload.
fn name_of(payload: &Map<String, Value>) -> Result<String, MethodResponse> {
    match payload.get("name") {
        Some(Value::String(n)) if !n.is_empty() => Ok(n.clone()),
        _ => Err(MethodResponse::error(
            400,
            "BadRequest",
            "Request is not valid.",
            vec![ErrorDetail::new(
                code::PROPERTY_REQUIRED,
                "$.name",
                "property 'name' is required and must be a non-empty string",
            )],
        )),
    }
}

fn now_text() -> String {
    Ticks90k::now().to_rfc3339_millis()
}

fn system_data(previous: Option<&SystemData>) -> SystemData {
    let now = now_text();
    SystemData {
        created_at: previous.map_or_else(|| now.clone(), |p| p.created_at.clone()),
        last_modified_at: now,
    }
}

/// Saves `new` durably, then makes it the service's state; on a failed save nothing changes.
pub(super) async fn commit_state(
    service: &Service,
    state: &mut tokio::sync::MutexGuard<'_, State>,
    new: State,
) -> Result<(), MethodResponse> {
    let file = service.inner.file.clone();
    let saved = tokio::task::spawn_blocking(move || file.save(&new).map(|()| new)).await;
    match saved {
        Ok(Ok(new)) => {
            **state = new;
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "saving the state failed; the change is not made");
            Err(MethodResponse::internal(format!(
                "The change could not be stored: {e}"
            )))
        }
        Err(e) => Err(MethodResponse::internal(format!(
            "The change could not be stored: {e}"
        ))),
    }
}

/// The state of a stored instance's slot (Inactive when it has none yet).
fn slot_state(service: &Service, name: &str) -> InstanceState {
    let slots = service.inner.slots.lock_unpoisoned();
    slots.get(name).map_or(InstanceState::Inactive, Slot::state)
}

// ---- topologies ----------------------------------------------------------------------------

async fn topology_set(service: &Service, payload: Map<String, Value>) -> MethodResponse {
    let text = Value::Object(payload).to_string();
    // The topology alone: parameters without a default get their values from instances, so
    // their absence is not a finding here (it is at GraphInstanceSet).
    let validation = topology::check_with(
        &text,
        None,
        &[],
        service.inner.plugins.as_ref(),
        SystemTime::now(),
        service.inner.policy.unsupported_nodes,
    );
    if let Err(mut body) = validation.outcome {
        body.error
            .details
            .retain(|d| d.code != code::PARAMETER_VALUE_MISSING);
        if !body.error.details.is_empty() {
            return MethodResponse::invalid(&body);
        }
    }
    let parsed = match Topology::parse(&text) {
        Ok(t) => t,
        Err(body) => return MethodResponse::invalid(&body),
    };
    let name = parsed.name.clone().unwrap_or_default();
    let document = parsed.to_json();
    let document_text = document.to_string();
    let findings = service.inner.policy.unsecured_findings(&document);
    if !findings.is_empty() {
        return MethodResponse::invalid(&ErrorBody::invalid_resource(findings));
    }

    let mut state = service.inner.state.lock().await;
    let users: Vec<(&String, &StoredInstance)> = state
        .instances
        .iter()
        .filter(|(_, i)| i.topology_name == name)
        .collect();
    let active: Vec<String> = users
        .iter()
        .filter(|(n, _)| slot_state(service, n) != InstanceState::Inactive)
        .map(|(n, _)| format!("'{n}'"))
        .collect();
    if !active.is_empty() {
        return MethodResponse::conflict(
            "OperationNotAllowedInState",
            "$.name",
            format!(
                "The graph topology '{name}' cannot be updated while graph instances using it are not inactive: {}",
                active.join(", ")
            ),
        );
    }
    // LVA's update rule (new parameters need defaults, removed ones must be unused) is the
    // same as: every instance of the topology still validates against the new version.
    let mut findings = Vec::new();
    for (instance_name, instance) in &users {
        let doc = instance_document(instance_name, instance, "2.0");
        if let Err(body) = topology::resolve_with(
            &document_text,
            Some(&doc.to_string()),
            &[],
            service.inner.plugins.as_ref(),
            SystemTime::now(),
            service.inner.policy.unsupported_nodes,
        ) {
            findings.extend(body.error.details.into_iter().map(|mut d| {
                d.target = format!("graphInstances['{instance_name}']:{}", d.target);
                d
            }));
        }
    }
    if !findings.is_empty() {
        return MethodResponse::invalid(&ErrorBody::invalid_resource(findings));
    }
    let previous = state.topologies.get(&name);
    let created = previous.is_none();
    let stored = StoredTopology {
        document,
        system_data: system_data(previous.map(|p| &p.system_data)),
    };
    let mut new = state.clone();
    new.topologies.insert(name.clone(), stored.clone());
    if let Err(r) = commit_state(service, &mut state, new).await {
        return r;
    }
    MethodResponse::ok(if created { 201 } else { 200 }, topology_view(&stored))
}

/// A topology as Get returns it: `systemData`, `name`, `properties`, literal passwords masked.
fn topology_view(t: &StoredTopology) -> Value {
    let mut out = Map::new();
    out.insert("systemData".into(), json!(t.system_data));
    for key in ["name", "properties"] {
        if let Some(v) = t.document.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut out = Value::Object(out);
    mask_passwords(&mut out);
    out
}

/// What a secret is shown as.
pub(super) const MASK: &str = "********";

/// A password written into a topology (not a `${parameter}` reference) is never returned.
pub(super) fn mask_passwords(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(s)
                        if k.eq_ignore_ascii_case("password") && !s.starts_with("${") =>
                    {
                        *s = MASK.into();
                    }
                    _ => mask_passwords(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_passwords),
        _ => {}
    }
}

async fn topology_get(service: &Service, payload: &Map<String, Value>) -> MethodResponse {
    let name = match name_of(payload) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let state = service.inner.state.lock().await;
    match state.topologies.get(&name) {
        Some(t) => MethodResponse::ok(200, topology_view(t)),
        None => MethodResponse::not_found("graph topology", &name),
    }
}

async fn topology_delete(service: &Service, payload: &Map<String, Value>) -> MethodResponse {
    let name = match name_of(payload) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut state = service.inner.state.lock().await;
    if !state.topologies.contains_key(&name) {
        return MethodResponse::ok(204, Value::Null);
    }
    let users: Vec<String> = state
        .instances
        .iter()
        .filter(|(_, i)| i.topology_name == name)
        .map(|(n, _)| format!("'{n}'"))
        .collect();
    if !users.is_empty() {
        return MethodResponse::conflict(
            "GraphTopologyInUse",
            "$.name",
            format!(
                "The graph topology '{name}' is in use by following graph instances: {}",
                users.join(", ")
            ),
        );
    }
    let mut new = state.clone();
    new.topologies.remove(&name);
    match commit_state(service, &mut state, new).await {
        Ok(()) => MethodResponse::ok(200, Value::Null),
        Err(r) => r,
    }
}

// ---- instances -----------------------------------------------------------------------------

/// The GraphInstanceSet document of a stored instance, as `topology::resolve` reads it.
pub(super) fn instance_document(name: &str, i: &StoredInstance, api_version: &str) -> Value {
    let mut props = Map::new();
    props.insert("topologyName".into(), json!(i.topology_name));
    if let Some(d) = &i.description {
        props.insert("description".into(), json!(d));
    }
    props.insert("parameters".into(), json!(i.parameters));
    json!({ "@apiVersion": api_version, "name": name, "properties": props })
}

/// Names of the topology's SecretString parameters: their values are never returned.
fn secret_parameters(topology: Option<&StoredTopology>) -> Vec<String> {
    topology.map_or_else(Vec::new, |t| secret_parameter_names(&t.document))
}

/// `key` of an object, in any casing (a topology as a client wrote it).
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find_map(|(k, v)| k.eq_ignore_ascii_case(key).then_some(v))
}

/// Names of the SecretString parameters a topology document declares (keys in any casing).
pub(super) fn secret_parameter_names(document: &Value) -> Vec<String> {
    let params = field(document, "properties")
        .and_then(|p| field(p, "parameters"))
        .and_then(Value::as_array);
    params
        .into_iter()
        .flatten()
        .filter(|p| {
            field(p, "type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("SecretString"))
        })
        .filter_map(|p| field(p, "name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A method payload (topology or instance) as it may be printed: the values and defaults of
/// parameters named in `secrets`, or whose name says they are secret (for topologies this
/// process has not seen), masked; user info in URL values cut out; literal passwords masked.
pub(super) fn masked_for_print(document: &Value, secrets: &[String]) -> Value {
    let mut out = document.clone();
    mask_passwords(&mut out);
    let looks_secret = |name: &str| {
        let n = name.to_ascii_lowercase();
        ["password", "secret", "token", "credential"]
            .iter()
            .any(|w| n.contains(w))
    };
    let params = out
        .as_object_mut()
        .and_then(|o| {
            o.iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case("properties"))
        })
        .and_then(|(_, p)| p.as_object_mut())
        .and_then(|p| {
            p.iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case("parameters"))
        })
        .and_then(|(_, p)| p.as_array_mut());
    for p in params.into_iter().flatten() {
        let name = field(p, "name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let secret = secrets.iter().any(|s| s.eq_ignore_ascii_case(&name)) || looks_secret(&name);
        let values = p.as_object_mut().into_iter().flat_map(|o| {
            o.iter_mut().filter(|(k, _)| {
                k.eq_ignore_ascii_case("value") || k.eq_ignore_ascii_case("default")
            })
        });
        for (_, value) in values {
            if secret {
                *value = json!(MASK);
            } else if let Value::String(text) = value {
                *text = topology::scrub_userinfo(text);
            }
        }
    }
    out
}

/// An instance as Get returns it; SecretString values are left out (AVA made `value`
/// optional; LVA does not say what it returned).
fn instance_view(
    name: &str,
    i: &StoredInstance,
    topology: Option<&StoredTopology>,
    state: InstanceState,
    flavor: Flavor,
) -> Value {
    let secrets = secret_parameters(topology);
    let parameters: Vec<Value> = i
        .parameters
        .iter()
        .map(|p| {
            if secrets.contains(&p.name) {
                json!({ "name": p.name })
            } else {
                json!({ "name": p.name, "value": p.value })
            }
        })
        .collect();
    let mut props = Map::new();
    props.insert("state".into(), json!(flavor.state(state)));
    if let Some(d) = &i.description {
        props.insert("description".into(), json!(d));
    }
    props.insert("topologyName".into(), json!(i.topology_name));
    props.insert("parameters".into(), Value::Array(parameters));
    json!({ "systemData": i.system_data, "name": name, "properties": props })
}

fn required(target: &str, what: &str) -> MethodResponse {
    MethodResponse::invalid(&ErrorBody::invalid_resource(vec![ErrorDetail::new(
        code::PROPERTY_REQUIRED,
        target,
        format!("property '{what}' is required"),
    )]))
}

/// A parameter value as text (LVA's values are strings; numbers and booleans are accepted as
/// the topology reader accepts them).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn instance_set(
    service: &Service,
    payload: Map<String, Value>,
    flavor: Flavor,
) -> MethodResponse {
    let payload = Value::Object(payload);
    let Some(name) = payload
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return required("instance:$.name", "name");
    };
    let Some(topology_name) = payload
        .pointer("/properties/topologyName")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return required("instance:$.properties.topologyName", "topologyName");
    };
    let mut state = service.inner.state.lock().await;
    let Some(topology) = state.topologies.get(&topology_name) else {
        return MethodResponse::conflict(
            "ResourceValidationError",
            "instance:$.properties.topologyName",
            format!("The graph topology '{topology_name}' does not exist."),
        );
    };
    let current = slot_state(service, &name);
    if current != InstanceState::Inactive {
        return MethodResponse::conflict(
            "GraphInstanceOperationNotValidInCurrentState",
            "$.name",
            format!(
                "The requested operation on the graph instance is not allowed in the {} state. Allowed states are: {}.",
                flavor.state(current),
                flavor.state(InstanceState::Inactive)
            ),
        );
    }
    let findings = service.inner.policy.unsecured_findings(&topology.document);
    if !findings.is_empty() {
        return MethodResponse::invalid(&ErrorBody::invalid_resource(findings));
    }
    let graph = match topology::resolve_with(
        &topology.document.to_string(),
        Some(&payload.to_string()),
        &[],
        service.inner.plugins.as_ref(),
        SystemTime::now(),
        service.inner.policy.unsupported_nodes,
    ) {
        Ok(graph) => graph,
        Err(body) => return MethodResponse::invalid(&body),
    };
    let parameters = payload
        .pointer("/properties/parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Parameter {
                name: p.get("name").and_then(Value::as_str)?.to_owned(),
                value: p.get("value").and_then(scalar_text)?,
            })
        })
        .collect();
    let previous = state.instances.get(&name);
    let created = previous.is_none();
    let stored = StoredInstance {
        topology_name: topology_name.clone(),
        description: payload
            .pointer("/properties/description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
        desired: Desired::Inactive,
        system_data: system_data(previous.map(|p| &p.system_data)),
    };
    let mut new = state.clone();
    new.instances.insert(name.clone(), stored.clone());
    if let Err(r) = commit_state(service, &mut state, new).await {
        return r;
    }
    service
        .inner
        .slots
        .lock_unpoisoned()
        .entry(name.clone())
        .or_insert_with(Slot::new)
        .assets = super::assets_of(&graph);
    let view = instance_view(
        &name,
        &stored,
        state.topologies.get(&topology_name),
        InstanceState::Inactive,
        flavor,
    );
    MethodResponse::ok(if created { 201 } else { 200 }, view)
}

async fn instance_get(
    service: &Service,
    payload: &Map<String, Value>,
    flavor: Flavor,
) -> MethodResponse {
    let name = match name_of(payload) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let state = service.inner.state.lock().await;
    match state.instances.get(&name) {
        Some(i) => MethodResponse::ok(
            200,
            instance_view(
                &name,
                i,
                state.topologies.get(&i.topology_name),
                slot_state(service, &name),
                flavor,
            ),
        ),
        None => MethodResponse::not_found("graph instance", &name),
    }
}

async fn instance_delete(service: &Service, payload: &Map<String, Value>) -> MethodResponse {
    let name = match name_of(payload) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut state = service.inner.state.lock().await;
    if !state.instances.contains_key(&name) {
        return MethodResponse::ok(204, Value::Null);
    }
    let current = slot_state(service, &name);
    if current != InstanceState::Inactive {
        return MethodResponse::conflict(
            "OperationNotAllowedInState",
            "$.name",
            format!(
                "The graph instance '{name}' is {}; only an inactive graph instance can be deleted.",
                current.as_str()
            ),
        );
    }
    let mut new = state.clone();
    new.instances.remove(&name);
    if let Err(r) = commit_state(service, &mut state, new).await {
        return r;
    }
    service.inner.slots.lock_unpoisoned().remove(&name);
    MethodResponse::ok(200, Value::Null)
}

// ---- lists ---------------------------------------------------------------------------------

enum Kind {
    Topology,
    Instance,
}

/// `{"value": [...], "@continuationToken"?}` in name order, [`LIST_PAGE`] items a page. The
/// token is the last name of the page: the next page starts after it.
async fn list(
    service: &Service,
    payload: &Map<String, Value>,
    flavor: Flavor,
    kind: Kind,
) -> MethodResponse {
    if let Some(q) = payload.get("@query") {
        let ok = q
            .as_str()
            .is_some_and(|q| q.split_whitespace().collect::<Vec<_>>() == ["$orderby=name", "asc"]);
        if !ok {
            return MethodResponse::error(
                400,
                "BadRequest",
                "Request is not valid.",
                vec![ErrorDetail::new(
                    code::PROPERTY_VALUE_INVALID,
                    "$.@query",
                    "only '$orderby=name asc' is supported",
                )],
            );
        }
    }
    let after = match payload.get("@continuationToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => {
            return MethodResponse::error(
                400,
                "BadRequest",
                "Request is not valid.",
                vec![ErrorDetail::new(
                    code::PROPERTY_TYPE_INVALID,
                    "$.@continuationToken",
                    "the continuation token must be a string",
                )],
            );
        }
    };
    let state = service.inner.state.lock().await;
    let names: Vec<&String> = match kind {
        Kind::Topology => state.topologies.keys().collect(),
        Kind::Instance => state.instances.keys().collect(),
    };
    let rest: Vec<&String> = names
        .into_iter()
        .filter(|n| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()))
        .collect();
    let page = &rest[..rest.len().min(LIST_PAGE)];
    let value: Vec<Value> = page
        .iter()
        .map(|n| match kind {
            Kind::Topology => topology_view(&state.topologies[*n]),
            Kind::Instance => {
                let i = &state.instances[*n];
                instance_view(
                    n,
                    i,
                    state.topologies.get(&i.topology_name),
                    slot_state(service, n),
                    flavor,
                )
            }
        })
        .collect();
    let mut out = Map::new();
    out.insert("value".into(), Value::Array(value));
    if rest.len() > page.len()
        && let Some(last) = page.last()
    {
        out.insert("@continuationToken".into(), json!(last));
    }
    MethodResponse::ok(200, Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_map_to_one_operation_in_either_vocabulary() {
        assert_eq!(
            lookup("GraphInstanceActivate"),
            Some((Op::InstanceActivate, Flavor::Lva))
        );
        assert_eq!(
            lookup("livePipelineActivate"),
            Some((Op::InstanceActivate, Flavor::Ava))
        );
        assert_eq!(lookup("graphinstanceactivate"), None);
    }

    #[test]
    fn printed_instances_mask_secret_values_and_url_credentials() {
        let topology = json!({"name": "t", "Properties": {"Parameters": [
            {"name": "camPw", "Type": "secretString", "default": "hunter1"},
            {"name": "rtspUrl", "type": "String"}
        ]}});
        let secrets = secret_parameter_names(&topology);
        assert_eq!(secrets, ["camPw"]);
        assert!(
            !masked_for_print(&topology, &secrets)
                .to_string()
                .contains("hunter1")
        );
        let instance = json!({"name": "i", "properties": {"parameters": [
            {"name": "campw", "value": "hunter2"},
            {"name": "rtspUrl", "value": "rtsp://admin:hunter3@cam/1"},
            {"name": "otherPassword", "value": "hunter4"},
            {"name": "segment", "value": "PT30S"}
        ]}});
        let shown = masked_for_print(&instance, &secrets).to_string();
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("PT30S") && shown.contains("rtsp://***@cam/1"),
            "{shown}"
        );
    }

    #[test]
    fn literal_passwords_are_masked_but_references_kept() {
        let mut v = json!({"a": [{"password": "hunter2"}, {"password": "${pw}"}]});
        mask_passwords(&mut v);
        assert_eq!(
            v,
            json!({"a": [{"password": "********"}, {"password": "${pw}"}]})
        );
    }
}
