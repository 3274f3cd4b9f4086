//! The service's HTTP surface as an `axum::Router`, for the front door to mount (it adds
//! authentication, limits and the other routes):
//!
//! - `POST /methods`: IoT Hub's direct-method call `{"methodName", "responseTimeoutInSeconds"?,
//!   "payload"}`, answered HTTP 200 with `{"status", "payload"}` as IoT Hub answers a caller;
//! - `POST /methods/{methodName}`: the bare payload; the method's status is the HTTP status and
//!   its payload the body (`?responseTimeoutInSeconds=N` sets the timeout);
//! - `GET /status`, `GET /readyz`, `GET /metrics`, `GET /events` (Server-Sent Events).
//!
//! [`front_door`] puts them behind the HTTP front door with the playback routes over the
//! service's store, whose asset list follows the instances ([`InstanceAssets`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MethodResponse, Service, observe};
use crate::http::{ApiToken, FrontDoor, Limits};
use crate::playback::server::{AssetSource, InstanceSummary, Playback};
use crate::sync::LockExt;
use crate::topology::AssetName;

/// IoT Hub's default when a call names no `responseTimeoutInSeconds`.
pub const DEFAULT_METHOD_TIMEOUT: Duration = Duration::from_secs(30);

/// The routes above, bound to `service`.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/methods", post(call_envelope))
        .route("/methods/{method}", post(call_bare))
        .route("/status", get(status))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .with_state(service)
}

/// Everything `serve` answers on its one listener: the routes above, the playback routes
/// (page, availableMedia, HLS, blobs, export) for every asset of the service's store, and the
/// front door's `/healthz`, under its limits and `token`.
pub fn front_door(service: Service, limits: Limits, token: Option<ApiToken>) -> FrontDoor {
    let playback = Playback::new(service.asset_store(), InstanceAssets(service.clone()));
    FrontDoor::new(limits, token)
        .playback(playback)
        .merge(routes(service))
}

/// The assets of the stored instances, as they are at each request.
pub struct InstanceAssets(pub Service);

impl AssetSource for InstanceAssets {
    fn assets(&self) -> Vec<AssetName> {
        let slots = self.0.inner.slots.lock_unpoisoned();
        let mut all: Vec<AssetName> = slots.values().flat_map(|s| s.assets.clone()).collect();
        all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        all.dedup();
        all
    }

    fn instances(&self) -> Vec<InstanceSummary> {
        let slots = self.0.inner.slots.lock_unpoisoned();
        let mut list: Vec<InstanceSummary> = slots
            .iter()
            .map(|(name, slot)| InstanceSummary {
                name: name.clone(),
                state: slot.state().as_str().to_owned(),
                assets: slot.assets.iter().map(|a| a.as_str().to_owned()).collect(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// A request that is not JSON (or not the envelope): 400 with LVA's `BadRequest` body.
fn bad_request(message: String) -> Response {
    let body = json!({"error": {"code": "BadRequest", "message": "Request is not valid.",
        "details": [{"code": "InvalidJson", "target": "$", "message": message}]}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn timeout_of(seconds: Option<f64>) -> Duration {
    seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_METHOD_TIMEOUT, Duration::from_secs_f64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    method_name: String,
    response_timeout_in_seconds: Option<f64>,
    #[serde(default)]
    payload: Value,
}

async fn call_envelope(State(service): State<Service>, body: Bytes) -> Response {
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return bad_request(format!("the direct-method request: {e}")),
    };
    let response = service
        .call(
            &envelope.method_name,
            envelope.payload,
            timeout_of(envelope.response_timeout_in_seconds),
        )
        .await;
    Json(response).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BareQuery {
    response_timeout_in_seconds: Option<f64>,
}

async fn call_bare(
    State(service): State<Service>,
    Path(method): Path<String>,
    Query(query): Query<BareQuery>,
    body: Bytes,
) -> Response {
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad_request(format!("the method payload: {e}")),
        }
    };
    let MethodResponse { status, payload } = service
        .call(
            &method,
            payload,
            timeout_of(query.response_timeout_in_seconds),
        )
        .await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if payload.is_null() {
        status.into_response()
    } else {
        (status, Json(payload)).into_response()
    }
}

async fn status(State(service): State<Service>) -> Json<Value> {
    Json(observe::status(&service).await)
}

async fn readyz(State(service): State<Service>) -> Response {
    let (ready, body) = observe::readiness(&service).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(service): State<Service>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        observe::metrics(&service).await,
    )
        .into_response()
}

/// Every event from now on that the diagnostics level shows, one SSE message each: `event:`
/// the eventType, `id:` the envelope's GUID, `data:` the envelope.
async fn events(
    State(service): State<Service>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    let rx = service.events().subscribe();
    let bus = service.events().clone();
    let stream = futures::stream::unfold((rx, bus), |(mut rx, bus)| async move {
        let message = loop {
            match rx.recv().await {
                // Below the diagnostics level: not streamed.
                Ok(e) if !bus.shows(&e) => continue,
                Ok(e) => {
                    let envelope = observe::envelope(&e);
                    let id = envelope["id"].as_str().unwrap_or_default().to_owned();
                    break sse::Event::default()
                        .event(e.event_type())
                        .id(id)
                        .data(envelope.to_string());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    break sse::Event::default().comment(format!("{missed} events missed"));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        };
        Some((Ok(message), (rx, bus)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
