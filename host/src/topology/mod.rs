//! The topology room: reads LVA media-graph topologies (`@apiVersion` 1.0 and 2.0), AVA
//! pipeline topologies (1.0 and 1.1) and graph instances / live pipelines, substitutes `${...}` parameters and system variables, checks every rule and
//! returns either a typed [`ResolvedGraph`] or LVA's OData error body with every finding
//! (code, JSON-path target, message).
//!
//! It owns the meaning of topology JSON. It must not do I/O beyond what the `validate` command
//! reads, must not start anything, and must never put a secret (password, `SecretString`
//! value) into a message, a `Debug` string or serialized output.

pub mod cli;
mod error;
mod json;
mod model;
mod params;
mod resolve;
mod types;

pub use error::{ErrorBody, ErrorDetail, ErrorInfo, code};
pub use model::{ApiVersion, Topology};
pub use params::render_time_variables;
pub use resolve::{
    AssetSinkSpec, CACHE_RULE_BITS_PER_SECOND, CACHE_RULE_SEGMENTS, Credentials,
    DEFAULT_INSTANCE_NAME, FileSinkSpec, IgnoredNode, OutputType, ResolvedGraph, RtspSourceSpec,
    TlsSpec, Validation, check, check_with, is_valid_resource_name, minimum_cache_mib, resolve,
    resolve_with,
};
pub use types::{
    AssetName, DefaultPluginNames, MediaSelection, PluginKind, PluginLookup, PluginSelection,
    RtspTransport, Secret, SegmentLength, UnsupportedNodes, parse_iso8601_duration, scrub_userinfo,
};

impl Topology {
    /// Reads a topology document without resolving it: the structural findings only.
    pub fn parse(text: &str) -> Result<Topology, ErrorBody> {
        let value = json::parse_text(text, "$").map_err(|d| ErrorBody::bad_request(vec![d]))?;
        let mut r = json::Report::default();
        match Topology::read(&value, &mut r) {
            Some(t) if r.errors.is_empty() => Ok(t),
            _ => Err(ErrorBody::invalid_resource(r.errors)),
        }
    }
}

#[cfg(test)]
mod tests;
