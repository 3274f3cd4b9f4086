//! What the service's settings allow beyond what a topology may say: nodes it does not run
//! (`unsupportedNodes`) and plain-text endpoints (`allowUnsecuredEndpoints`).
//!
//! Owns the rule "no unsecured endpoint when they are not allowed" for topologies and the
//! asset store; it only reads documents and settings, and answers with LVA's error details.

use serde_json::Value;

use crate::topology::{ErrorDetail, UnsupportedNodes};

/// The detail code of a refused unsecured endpoint.
pub const UNSECURED_ENDPOINT_NOT_ALLOWED: &str = "UnsecuredEndpointNotAllowed";

#[derive(Clone, Debug)]
pub struct Policy {
    pub unsupported_nodes: UnsupportedNodes,
    /// LVA's `allowUnsecuredEndpoints`. True by default while the RTSP client speaks no TLS:
    /// false then refuses every camera.
    pub allow_unsecured_endpoints: bool,
    /// The asset store's location (never a credential) when it is reached over plain
    /// `http://`, e.g. Azurite.
    pub unsecured_store: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            unsupported_nodes: UnsupportedNodes::Reject,
            allow_unsecured_endpoints: true,
            unsecured_store: None,
        }
    }
}

impl Policy {
    /// Findings for a topology (LVA's canonical JSON, as the service stores it) whose sources
    /// or uploading sinks would use an unsecured endpoint that is not allowed.
    pub fn unsecured_findings(&self, topology: &Value) -> Vec<ErrorDetail> {
        if self.allow_unsecured_endpoints {
            return Vec::new();
        }
        let nodes = |kind: &str| -> Vec<(usize, Value)> {
            topology
                .pointer(&format!("/properties/{kind}"))
                .and_then(Value::as_array)
                .map(|a| a.iter().cloned().enumerate().collect())
                .unwrap_or_default()
        };
        let type_of = |v: &Value| {
            v.get("@type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut findings = Vec::new();
        for (i, source) in nodes("sources") {
            let Some(endpoint) = source.get("endpoint") else {
                continue;
            };
            if type_of(endpoint).ends_with("TlsEndpoint") {
                continue;
            }
            findings.push(ErrorDetail::new(
                UNSECURED_ENDPOINT_NOT_ALLOWED,
                format!("$.properties.sources[{i}].endpoint"),
                format!(
                    "The endpoint of source '{}' is an unsecured endpoint ({}), and the setting \
                     allowUnsecuredEndpoints is false. This host has no TLS transport for \
                     cameras: set allowUnsecuredEndpoints to true to record it.",
                    source
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    type_of(endpoint)
                ),
            ));
        }
        if let Some(store) = &self.unsecured_store {
            for (i, sink) in nodes("sinks") {
                let t = type_of(&sink);
                if t.ends_with("AssetSink") || t.ends_with("VideoSink") {
                    findings.push(ErrorDetail::new(
                        UNSECURED_ENDPOINT_NOT_ALLOWED,
                        format!("$.properties.sinks[{i}]"),
                        format!(
                            "Sink '{}' uploads to the asset store {store} over plain http, and \
                             the setting allowUnsecuredEndpoints is false: use an https store \
                             or allow unsecured endpoints.",
                            sink.get("name").and_then(Value::as_str).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topology() -> Value {
        json!({"name": "t", "properties": {
            "sources": [
                {"@type": "#Microsoft.Media.MediaGraphRtspSource", "name": "cam",
                 "endpoint": {"@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint", "url": "${u}"}},
                {"@type": "#Microsoft.Media.MediaGraphRtspSource", "name": "tls",
                 "endpoint": {"@type": "#Microsoft.Media.MediaGraphTlsEndpoint", "url": "${u}"}}
            ],
            "sinks": [
                {"@type": "#Microsoft.Media.MediaGraphAssetSink", "name": "asset"},
                {"@type": "#Microsoft.Media.MediaGraphFileSink", "name": "file"}
            ]
        }})
    }

    #[test]
    fn allowed_by_default() {
        let p = Policy {
            unsecured_store: Some("http://127.0.0.1:10000/devstoreaccount1/c".into()),
            ..Policy::default()
        };
        assert!(p.unsecured_findings(&topology()).is_empty());
    }

    #[test]
    fn when_not_allowed_unsecured_sources_and_http_stores_are_named() {
        let mut p = Policy {
            allow_unsecured_endpoints: false,
            ..Policy::default()
        };
        let targets = |p: &Policy| -> Vec<String> {
            p.unsecured_findings(&topology())
                .into_iter()
                .map(|d| d.target)
                .collect()
        };
        assert_eq!(targets(&p), ["$.properties.sources[0].endpoint"]);
        p.unsecured_store = Some("http://127.0.0.1:10000/devstoreaccount1/c".into());
        assert_eq!(
            targets(&p),
            ["$.properties.sources[0].endpoint", "$.properties.sinks[0]"]
        );
    }
}
