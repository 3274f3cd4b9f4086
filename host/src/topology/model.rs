//! The topology and graph-instance documents as written, before parameter substitution: every
//! value that LVA lets a `${...}` reference stand in for is kept as text here and interpreted in
//! `resolve`. Reading reports structural problems (missing or mistyped properties, unknown node
//! types); `to_json` writes the canonical LVA form, so an accepted topology can be stored and
//! read back unchanged.

use serde_json::{Map, Value, json};

use super::error::code;
use super::json::{Obj, Report, Unknown, scalar};

pub const RTSP_SOURCE: &str = "#Microsoft.Media.MediaGraphRtspSource";
pub const ASSET_SINK: &str = "#Microsoft.Media.MediaGraphAssetSink";
pub const FILE_SINK: &str = "#Microsoft.Media.MediaGraphFileSink";
pub const UNSECURED_ENDPOINT: &str = "#Microsoft.Media.MediaGraphUnsecuredEndpoint";
pub const TLS_ENDPOINT: &str = "#Microsoft.Media.MediaGraphTlsEndpoint";
pub const USERNAME_PASSWORD: &str = "#Microsoft.Media.MediaGraphUsernamePasswordCredentials";
pub const PEM_CERTIFICATE_LIST: &str = "#Microsoft.Media.MediaGraphPemCertificateList";
pub const SIGNAL_GATE: &str = "#Microsoft.Media.MediaGraphSignalGateProcessor";
/// AVA's CVR sink: an asset sink whose asset is the fixed `videoName`.
pub const VIDEO_SINK: &str = "#Microsoft.VideoAnalyzer.VideoSink";

/// LVA names its types `#Microsoft.Media.MediaGraphX`; AVA renamed most of them to
/// `#Microsoft.VideoAnalyzer.X` with the same properties.
const LVA_PREFIX: &str = "#Microsoft.Media.MediaGraph";
const AVA_PREFIX: &str = "#Microsoft.VideoAnalyzer.";

/// `t` is the LVA type `lva` or its AVA counterpart (any casing: AVA writes `IotHub`, LVA
/// `IoTHub`).
pub(crate) fn names_type(t: &str, lva: &str) -> bool {
    if t.eq_ignore_ascii_case(lva) {
        return true;
    }
    let Some(x) = lva.strip_prefix(LVA_PREFIX) else {
        return false;
    };
    t.len() == AVA_PREFIX.len() + x.len()
        && t.get(..AVA_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(AVA_PREFIX))
        && t.get(AVA_PREFIX.len()..)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(x))
}

/// The name to write for the LVA type `lva` in a topology of the given dialect.
fn type_name(lva: &str, ava: bool) -> String {
    match lva.strip_prefix(LVA_PREFIX) {
        Some(x) if ava => format!("{AVA_PREFIX}{x}"),
        _ => lva.to_owned(),
    }
}

/// True when any `@type` in the document is in AVA's namespace: then `@apiVersion` is AVA's
/// (1.0 or 1.1), not LVA's.
fn uses_ava_types(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "@type"
                && v.as_str().is_some_and(|t| {
                    t.get(..AVA_PREFIX.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(AVA_PREFIX))
                }))
                || uses_ava_types(v)
        }),
        Value::Array(items) => items.iter().any(uses_ava_types),
        _ => false,
    }
}

/// Node types of LVA 1.0/2.0, its pre-release builds and its successor AVA that appear in the
/// official topologies or specs: recognised by name, not run by this host (refused, or listed
/// as ignored with `unsupportedNodes: ignore`). LVA names match their AVA counterparts too.
const UNSUPPORTED_NODE_TYPES: &[&str] = &[
    "#Microsoft.Media.MediaGraphIoTHubMessageSource",
    "#Microsoft.Media.MediaGraphIoTHubMessageSink",
    "#Microsoft.Media.MediaGraphMotionDetectionProcessor",
    "#Microsoft.Media.MediaGraphFrameRateFilterProcessor",
    SIGNAL_GATE,
    "#Microsoft.Media.MediaGraphHttpExtension",
    "#Microsoft.Media.MediaGraphGrpcExtension",
    "#Microsoft.Media.MediaGraphCognitiveServicesVisionExtension",
    "#Microsoft.Media.MediaGraphMotionDetector",
    "#Microsoft.VideoAnalyzer.VideoSource",
    "#Microsoft.VideoAnalyzer.ObjectTrackingProcessor",
    "#Microsoft.VideoAnalyzer.LineCrossingProcessor",
    "#Microsoft.VideoAnalyzer.CognitiveServicesVisionProcessor",
    "#Microsoft.VideoAnalyzer.EncoderProcessor",
];

/// Endpoint types that exist in LVA material but that this host cannot connect with.
const UNSUPPORTED_ENDPOINT_TYPES: &[&str] = &["#Microsoft.Media.MediaGraphClearEndpoint"];

const UNSUPPORTED_CREDENTIAL_TYPES: &[&str] = &["#Microsoft.Media.MediaGraphHttpHeaderCredentials"];

/// LVA's 1.0 and 2.0, and AVA's 1.0 and 1.1 (told apart from LVA by their node types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1_0,
    V2_0,
    Ava1_0,
    Ava1_1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1_0 | ApiVersion::Ava1_0 => "1.0",
            ApiVersion::V2_0 => "2.0",
            ApiVersion::Ava1_1 => "1.1",
        }
    }

    pub fn is_ava(self) -> bool {
        matches!(self, ApiVersion::Ava1_0 | ApiVersion::Ava1_1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParameterType {
    String,
    SecretString,
    Int,
    Double,
    Bool,
}

impl ParameterType {
    fn parse(text: &str) -> Option<Self> {
        [
            Self::String,
            Self::SecretString,
            Self::Int,
            Self::Double,
            Self::Bool,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::SecretString => "SecretString",
            Self::Int => "Int",
            Self::Double => "Double",
            Self::Bool => "Bool",
        }
    }
}

/// `properties.parameters[i]` of a topology. A missing required field is `None` (and reported).
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterDeclaration {
    pub name: Option<String>,
    pub kind: Option<ParameterType>,
    pub description: Option<String>,
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub api_version: ApiVersion,
    pub name: Option<String>,
    pub description: Option<String>,
    pub parameters: Vec<ParameterDeclaration>,
    pub sources: Vec<Node>,
    pub processors: Vec<Node>,
    pub sinks: Vec<Node>,
}

/// Which list of `properties` a node sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Processor,
    Sink,
}

impl Role {
    pub fn list(self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Processor => "processors",
            Role::Sink => "sinks",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: Option<String>,
    /// `None` when the node has no `inputs` property.
    pub inputs: Option<Vec<NodeInput>>,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    RtspSource(RtspSource),
    AssetSink(AssetSink),
    FileSink(FileSink),
    /// AVA's `VideoSink`, kept verbatim too for writing it back.
    VideoSink {
        sink: VideoSink,
        raw: Value,
    },
    /// A recognised LVA/AVA node type this host does not implement, kept verbatim.
    Unsupported {
        type_name: String,
        raw: Value,
    },
    /// An `@type` nobody defines (or none at all).
    Unknown,
}

impl NodeKind {
    pub fn role(&self) -> Option<Role> {
        match self {
            NodeKind::RtspSource(_) => Some(Role::Source),
            NodeKind::AssetSink(_) | NodeKind::FileSink(_) | NodeKind::VideoSink { .. } => {
                Some(Role::Sink)
            }
            NodeKind::Unsupported { .. } | NodeKind::Unknown => None,
        }
    }

    pub fn is_signal_gate(&self) -> bool {
        matches!(self, NodeKind::Unsupported { type_name, .. } if names_type(type_name, SIGNAL_GATE))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeInput {
    pub node_name: Option<String>,
    pub output_selectors: Vec<OutputSelector>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSelector {
    pub property: Option<String>,
    pub operator: Option<String>,
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RtspSource {
    pub transport: Option<String>,
    pub endpoint: Option<Endpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub tls: Option<TlsOptions>,
    pub url: Option<String>,
    pub credentials: Option<UsernamePassword>,
}

/// The extra properties of `MediaGraphTlsEndpoint`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TlsOptions {
    pub trusted_certificates: Option<Vec<String>>,
    pub ignore_hostname: Option<String>,
    pub ignore_signature: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UsernamePassword {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AssetSink {
    pub asset_name_pattern: Option<String>,
    pub segment_length: Option<String>,
    pub local_media_cache_path: Option<String>,
    pub local_media_cache_maximum_size_mib: Option<String>,
    /// mediagraph's extension: which plugins this sink uses.
    pub plugins: Option<PluginNames>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct PluginNames {
    pub segmenter: Option<String>,
    pub evictor: Option<String>,
    pub formatter: Option<String>,
}

/// AVA's `VideoSink`: the properties that matter for recording. `retentionPeriod`,
/// `videoPublishingOptions` other than `disableArchive`, `title` and `description` concern the
/// cloud video resource; they are accepted with a warning that they are not used.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSink {
    pub video_name: Option<String>,
    pub segment_length: Option<String>,
    pub local_media_cache_path: Option<String>,
    pub local_media_cache_maximum_size_mib: Option<String>,
    /// `videoPublishingOptions.disableArchive`: "true" would record nothing.
    pub disable_archive: Option<String>,
}

/// `MediaGraphFileSink`: 2.0 uses the three first properties, 1.0 only `filePathPattern`.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSink {
    pub base_directory_path: Option<String>,
    pub file_name_pattern: Option<String>,
    pub maximum_size_mib: Option<String>,
    pub file_path_pattern: Option<String>,
}

/// A graph instance (`GraphInstanceSet` payload).
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub name: Option<String>,
    pub topology_name: Option<String>,
    pub description: Option<String>,
    /// name, value, JSON path of the entry.
    pub parameters: Vec<(Option<String>, Option<String>, String)>,
}

impl Topology {
    pub(crate) fn read(value: &Value, r: &mut Report) -> Option<Self> {
        let mut top = Obj::new(value, "$", r)?;
        let api_version = read_api_version(&mut top, uses_ava_types(value), r);
        let name = top.required_scalar("name", r);
        let mut topology = Topology {
            api_version,
            name,
            description: None,
            parameters: Vec::new(),
            sources: Vec::new(),
            processors: Vec::new(),
            sinks: Vec::new(),
        };
        match top.get("properties", r) {
            None => r.error(
                code::PROPERTY_REQUIRED,
                "$.properties",
                "property 'properties' is required",
            ),
            Some(props) => {
                if let Some(mut props) = Obj::new(props, "$.properties", r) {
                    topology.description = props.scalar("description", r);
                    for (i, p) in props
                        .array("parameters", r)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let path = format!("$.properties.parameters[{i}]");
                        if let Some(p) = read_parameter(p, &path, r) {
                            topology.parameters.push(p);
                        }
                    }
                    topology.sources = read_nodes(&mut props, Role::Source, r);
                    topology.processors = read_nodes(&mut props, Role::Processor, r);
                    topology.sinks = read_nodes(&mut props, Role::Sink, r);
                    props.finish(r, Unknown::Warn);
                }
            }
        }
        top.finish(r, Unknown::Warn);
        Some(topology)
    }

    /// Nodes in document order with their JSON path.
    pub fn nodes(&self) -> impl Iterator<Item = (String, &Node)> {
        [
            (Role::Source, &self.sources),
            (Role::Processor, &self.processors),
            (Role::Sink, &self.sinks),
        ]
        .into_iter()
        .flat_map(|(role, nodes)| {
            nodes
                .iter()
                .enumerate()
                .map(move |(i, n)| (format!("$.properties.{}[{i}]", role.list()), n))
        })
    }

    /// The canonical LVA JSON of this topology (property names and enum casings as LVA 2.0
    /// writes them, every scalar as a string).
    pub fn to_json(&self) -> Value {
        let mut props = Map::new();
        if let Some(d) = &self.description {
            props.insert("description".into(), json!(d));
        }
        let params: Vec<Value> = self
            .parameters
            .iter()
            .map(|p| {
                let mut m = Map::new();
                put(&mut m, "name", &p.name);
                put(&mut m, "type", &p.kind.map(|k| k.as_str().to_owned()));
                put(&mut m, "description", &p.description);
                put(&mut m, "default", &p.default);
                Value::Object(m)
            })
            .collect();
        props.insert("parameters".into(), Value::Array(params));
        for (role, nodes) in [
            (Role::Source, &self.sources),
            (Role::Processor, &self.processors),
            (Role::Sink, &self.sinks),
        ] {
            props.insert(
                role.list().into(),
                Value::Array(
                    nodes
                        .iter()
                        .map(|n| n.to_json(self.api_version.is_ava()))
                        .collect(),
                ),
            );
        }
        let mut top = Map::new();
        top.insert("@apiVersion".into(), json!(self.api_version.as_str()));
        put(&mut top, "name", &self.name);
        top.insert("properties".into(), Value::Object(props));
        Value::Object(top)
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::String(v.clone()));
    }
}

/// A missing `@apiVersion` is tolerated with a warning: GET responses of LVA do not echo it, so
/// operators' saved copies often lack it. `ava`: the document uses AVA's node types.
fn read_api_version(top: &mut Obj<'_>, ava: bool, r: &mut Report) -> ApiVersion {
    let newest = if ava {
        ApiVersion::Ava1_1
    } else {
        ApiVersion::V2_0
    };
    match top.scalar("@apiVersion", r) {
        None => {
            r.warn(
                code::PROPERTY_REQUIRED,
                "$.@apiVersion",
                format!(
                    "property '@apiVersion' is missing; reading the topology as {} {}",
                    if ava { "AVA" } else { "LVA" },
                    newest.as_str()
                ),
            );
            newest
        }
        Some(v) if v == "1.0" && ava => ApiVersion::Ava1_0,
        Some(v) if v == "1.1" && ava => ApiVersion::Ava1_1,
        Some(v) if v == "1.0" => ApiVersion::V1_0,
        Some(v) if v == "2.0" && !ava => ApiVersion::V2_0,
        Some(v) => {
            r.error(
                code::API_VERSION_NOT_SUPPORTED,
                "$.@apiVersion",
                format!(
                    "@apiVersion '{v}' is not supported by this host; supported versions: 1.0, 2.0 (LVA node types), 1.0, 1.1 (AVA node types)"
                ),
            );
            newest
        }
    }
}

fn read_parameter(value: &Value, path: &str, r: &mut Report) -> Option<ParameterDeclaration> {
    let mut o = Obj::new(value, path, r)?;
    let name = o.required_scalar("name", r);
    let kind = o.required_scalar("type", r).and_then(|t| {
        let kind = ParameterType::parse(&t);
        if kind.is_none() {
            r.error(
                code::PARAMETER_TYPE_INVALID,
                o.child("type"),
                format!(
                    "parameter type '{t}' is not one of String, SecretString, Int, Double, Bool"
                ),
            );
        }
        kind
    });
    let description = o.scalar("description", r);
    let default = o.scalar("default", r);
    o.finish(r, Unknown::Warn);
    Some(ParameterDeclaration {
        name,
        kind,
        description,
        default,
    })
}

fn read_nodes(props: &mut Obj<'_>, role: Role, r: &mut Report) -> Vec<Node> {
    let list = role.list();
    let present = props.get(list, r).is_some_and(|v| !v.is_null());
    let items = props.array(list, r);
    if !present && role != Role::Processor {
        r.error(
            code::PROPERTY_REQUIRED,
            props.child(list),
            format!("property '{list}' is required"),
        );
    }
    items
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| read_node(v, &format!("$.properties.{list}[{i}]"), role, r))
        .collect()
}

fn read_node(value: &Value, path: &str, role: Role, r: &mut Report) -> Option<Node> {
    let mut o = Obj::new(value, path, r)?;
    let type_name = o.required_scalar("@type", r);
    let name = o.required_scalar("name", r);
    let node_label = name.clone().unwrap_or_else(|| "(unnamed)".into());
    let inputs = o.array("inputs", r).map(|items| {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| read_input(v, &format!("{path}.inputs[{i}]"), r))
            .collect()
    });
    let kind = match type_name.as_deref() {
        None => NodeKind::Unknown,
        Some(t) if names_type(t, RTSP_SOURCE) => NodeKind::RtspSource(read_rtsp_source(&mut o, r)),
        Some(t) if t.eq_ignore_ascii_case(ASSET_SINK) => {
            NodeKind::AssetSink(read_asset_sink(&mut o, r))
        }
        Some(t) if t.eq_ignore_ascii_case(VIDEO_SINK) => NodeKind::VideoSink {
            sink: read_video_sink(&mut o, r),
            raw: value.clone(),
        },
        Some(t) if names_type(t, FILE_SINK) => NodeKind::FileSink(read_file_sink(&mut o, r)),
        Some(t) if UNSUPPORTED_NODE_TYPES.iter().any(|u| names_type(t, u)) => {
            // Refused or listed as ignored by the resolver, which knows the setting; the
            // finding is recorded here so that reading alone (`Topology::parse`) refuses it.
            r.error(
                code::NODE_TYPE_NOT_SUPPORTED,
                path,
                format!("node type {t} is not supported by this host (node '{node_label}')"),
            );
            // The node's own properties are LVA's business; only name and inputs matter here.
            return Some(Node {
                name,
                inputs,
                kind: NodeKind::Unsupported {
                    type_name: t.to_owned(),
                    raw: value.clone(),
                },
            });
        }
        Some(t) => {
            r.error(
                code::NODE_TYPE_UNKNOWN,
                o.child("@type"),
                format!("unknown node type '{t}' (node '{node_label}')"),
            );
            return Some(Node {
                name,
                inputs,
                kind: NodeKind::Unknown,
            });
        }
    };
    if let Some(actual) = kind.role().filter(|actual| *actual != role) {
        r.error(
            code::NODE_TYPE_MISPLACED,
            path,
            format!(
                "node '{node_label}' of type {} belongs in properties.{}, not properties.{}",
                type_name.unwrap_or_default(),
                actual.list(),
                role.list()
            ),
        );
    }
    o.finish(r, Unknown::Warn);
    Some(Node { name, inputs, kind })
}

fn read_input(value: &Value, path: &str, r: &mut Report) -> Option<NodeInput> {
    let mut o = Obj::new(value, path, r)?;
    let mut node_name = o.scalar("nodeName", r);
    if let Some(legacy) = o.scalar("moduleName", r) {
        r.error(
            code::PROPERTY_NOT_SUPPORTED,
            o.child("moduleName"),
            "the pre-release property 'moduleName' is not supported by this host; use 'nodeName'",
        );
        // Linking by it anyway keeps the graph checks from reporting a second, derived error.
        node_name.get_or_insert(legacy);
    } else if node_name.is_none() {
        r.error(
            code::PROPERTY_REQUIRED,
            o.child("nodeName"),
            "property 'nodeName' is required",
        );
    }
    let mut output_selectors = Vec::new();
    for (i, s) in o
        .array("outputSelectors", r)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(mut s) = Obj::new(s, format!("{path}.outputSelectors[{i}]"), r) {
            output_selectors.push(OutputSelector {
                property: s.required_scalar("property", r),
                operator: s.required_scalar("operator", r),
                value: s.required_scalar("value", r),
            });
            s.finish(r, Unknown::Warn);
        }
    }
    o.finish(r, Unknown::Warn);
    Some(NodeInput {
        node_name,
        output_selectors,
    })
}

fn read_rtsp_source(o: &mut Obj<'_>, r: &mut Report) -> RtspSource {
    let transport = o.scalar("transport", r);
    let endpoint = match o.get("endpoint", r) {
        None => {
            r.error(
                code::PROPERTY_REQUIRED,
                o.child("endpoint"),
                "property 'endpoint' is required",
            );
            None
        }
        Some(v) => read_endpoint(v, &o.child("endpoint"), r),
    };
    RtspSource {
        transport,
        endpoint,
    }
}

fn read_endpoint(value: &Value, path: &str, r: &mut Report) -> Option<Endpoint> {
    let mut o = Obj::new(value, path, r)?;
    let type_name = o.required_scalar("@type", r)?;
    let tls = if names_type(&type_name, UNSECURED_ENDPOINT) {
        None
    } else if names_type(&type_name, TLS_ENDPOINT) {
        Some(read_tls_options(&mut o, r))
    } else {
        let (code, message) = if UNSUPPORTED_ENDPOINT_TYPES
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&type_name))
        {
            (
                code::ENDPOINT_TYPE_NOT_SUPPORTED,
                format!("endpoint type {type_name} is not supported by this host"),
            )
        } else {
            (
                code::NODE_TYPE_UNKNOWN,
                format!("unknown endpoint type '{type_name}'"),
            )
        };
        r.error(code, o.child("@type"), message);
        return None;
    };
    let url = o.required_scalar("url", r);
    if o.get("tunnel", r).is_some() {
        // AVA cloud pipelines reach a camera behind a firewall through an IoT device tunnel;
        // connecting directly instead would silently record nothing.
        r.error(
            code::PROPERTY_NOT_SUPPORTED,
            o.child("tunnel"),
            "endpoint tunnels (AVA cloud pipelines) are not supported by this host; the camera must be reachable directly",
        );
    }
    let credentials = o
        .get("credentials", r)
        .and_then(|c| read_credentials(c, &o.child("credentials"), r));
    o.finish(r, Unknown::Warn);
    Some(Endpoint {
        tls,
        url,
        credentials,
    })
}

fn read_tls_options(o: &mut Obj<'_>, r: &mut Report) -> TlsOptions {
    let mut tls = TlsOptions::default();
    if let Some(list) = o.get("trustedCertificates", r)
        && let Some(mut list) = Obj::new(list, o.child("trustedCertificates"), r)
    {
        let t = list.required_scalar("@type", r);
        if t.as_deref()
            .is_some_and(|t| !names_type(t, PEM_CERTIFICATE_LIST))
        {
            r.error(
                code::NODE_TYPE_UNKNOWN,
                list.child("@type"),
                format!("trusted certificates must be a {PEM_CERTIFICATE_LIST}"),
            );
        }
        let certs_path = list.child("certificates");
        let certs = list.array("certificates", r).map(|items| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, c)| scalar(c, &format!("{certs_path}[{i}]"), r))
                .collect()
        });
        tls.trusted_certificates = certs;
        list.finish(r, Unknown::Warn);
    }
    if let Some(v) = o.get("validationOptions", r)
        && let Some(mut v) = Obj::new(v, o.child("validationOptions"), r)
    {
        tls.ignore_hostname = v.scalar("ignoreHostname", r);
        tls.ignore_signature = v.scalar("ignoreSignature", r);
        v.finish(r, Unknown::Warn);
    }
    tls
}

fn read_credentials(value: &Value, path: &str, r: &mut Report) -> Option<UsernamePassword> {
    let mut o = Obj::new(value, path, r)?;
    let type_name = o.required_scalar("@type", r)?;
    if !names_type(&type_name, USERNAME_PASSWORD) {
        let (code, message) = if UNSUPPORTED_CREDENTIAL_TYPES
            .iter()
            .any(|u| names_type(&type_name, u))
        {
            (
                code::CREDENTIALS_TYPE_NOT_SUPPORTED,
                format!("credentials type {type_name} is not supported by this host"),
            )
        } else {
            (
                code::NODE_TYPE_UNKNOWN,
                format!("unknown credentials type '{type_name}'"),
            )
        };
        r.error(code, o.child("@type"), message);
        return None;
    }
    let username = o.required_scalar("username", r);
    let password = o.scalar("password", r);
    o.finish(r, Unknown::Warn);
    Some(UsernamePassword { username, password })
}

fn read_asset_sink(o: &mut Obj<'_>, r: &mut Report) -> AssetSink {
    let asset_name_pattern = o.required_scalar("assetNamePattern", r);
    let segment_length = o.scalar("segmentLength", r);
    let local_media_cache_path = o.required_scalar("localMediaCachePath", r);
    let local_media_cache_maximum_size_mib = o.required_scalar("localMediaCacheMaximumSizeMiB", r);
    let plugins = o.get("plugins", r).and_then(|p| {
        let mut p = Obj::new(p, o.child("plugins"), r)?;
        let names = PluginNames {
            segmenter: p.scalar("segmenter", r),
            evictor: p.scalar("evictor", r),
            formatter: p.scalar("formatter", r),
        };
        p.finish(r, Unknown::Error);
        Some(names)
    });
    AssetSink {
        asset_name_pattern,
        segment_length,
        local_media_cache_path,
        local_media_cache_maximum_size_mib,
        plugins,
    }
}

fn read_video_sink(o: &mut Obj<'_>, r: &mut Report) -> VideoSink {
    let video_name = o.required_scalar("videoName", r);
    let local_media_cache_path = o.required_scalar("localMediaCachePath", r);
    let local_media_cache_maximum_size_mib = o.required_scalar("localMediaCacheMaximumSizeMiB", r);
    let segment_length = o.get("videoCreationProperties", r).and_then(|c| {
        let mut c = Obj::new(c, o.child("videoCreationProperties"), r)?;
        // Shown on the cloud video resource only.
        let _ = c.scalar("title", r);
        let _ = c.scalar("description", r);
        let segment_length = c.scalar("segmentLength", r);
        c.finish(r, Unknown::Warn);
        segment_length
    });
    let disable_archive = o.get("videoPublishingOptions", r).and_then(|p| {
        let mut p = Obj::new(p, o.child("videoPublishingOptions"), r)?;
        let disable = p.scalar("disableArchive", r);
        p.finish(r, Unknown::Warn);
        disable
    });
    VideoSink {
        video_name,
        segment_length,
        local_media_cache_path,
        local_media_cache_maximum_size_mib,
        disable_archive,
    }
}

fn read_file_sink(o: &mut Obj<'_>, r: &mut Report) -> FileSink {
    FileSink {
        base_directory_path: o.scalar("baseDirectoryPath", r),
        file_name_pattern: o.scalar("fileNamePattern", r),
        maximum_size_mib: o.scalar("maximumSizeMiB", r),
        file_path_pattern: o.scalar("filePathPattern", r),
    }
}

impl Node {
    fn to_json(&self, ava: bool) -> Value {
        let mut m = match &self.kind {
            NodeKind::Unsupported { raw, .. } | NodeKind::VideoSink { raw, .. } => {
                return raw.clone();
            }
            NodeKind::Unknown => Map::new(),
            NodeKind::RtspSource(s) => {
                let mut m = Map::new();
                m.insert("@type".into(), json!(type_name(RTSP_SOURCE, ava)));
                put(&mut m, "name", &self.name);
                put(&mut m, "transport", &s.transport);
                if let Some(e) = &s.endpoint {
                    m.insert("endpoint".into(), e.to_json(ava));
                }
                m
            }
            NodeKind::AssetSink(a) => {
                let mut m = Map::new();
                m.insert("@type".into(), json!(ASSET_SINK));
                put(&mut m, "name", &self.name);
                put(&mut m, "assetNamePattern", &a.asset_name_pattern);
                put(&mut m, "segmentLength", &a.segment_length);
                put(&mut m, "localMediaCachePath", &a.local_media_cache_path);
                put(
                    &mut m,
                    "localMediaCacheMaximumSizeMiB",
                    &a.local_media_cache_maximum_size_mib,
                );
                if let Some(p) = &a.plugins {
                    let mut pm = Map::new();
                    put(&mut pm, "segmenter", &p.segmenter);
                    put(&mut pm, "evictor", &p.evictor);
                    put(&mut pm, "formatter", &p.formatter);
                    m.insert("plugins".into(), Value::Object(pm));
                }
                m
            }
            NodeKind::FileSink(f) => {
                let mut m = Map::new();
                m.insert("@type".into(), json!(type_name(FILE_SINK, ava)));
                put(&mut m, "name", &self.name);
                put(&mut m, "baseDirectoryPath", &f.base_directory_path);
                put(&mut m, "fileNamePattern", &f.file_name_pattern);
                put(&mut m, "maximumSizeMiB", &f.maximum_size_mib);
                put(&mut m, "filePathPattern", &f.file_path_pattern);
                m
            }
        };
        if let Some(inputs) = &self.inputs {
            let inputs = inputs
                .iter()
                .map(|i| {
                    let mut im = Map::new();
                    put(&mut im, "nodeName", &i.node_name);
                    let selectors = i
                        .output_selectors
                        .iter()
                        .map(|s| {
                            let mut sm = Map::new();
                            put(&mut sm, "property", &s.property);
                            put(&mut sm, "operator", &s.operator);
                            put(&mut sm, "value", &s.value);
                            Value::Object(sm)
                        })
                        .collect();
                    im.insert("outputSelectors".into(), Value::Array(selectors));
                    Value::Object(im)
                })
                .collect();
            m.insert("inputs".into(), Value::Array(inputs));
        }
        Value::Object(m)
    }
}

impl Endpoint {
    fn to_json(&self, ava: bool) -> Value {
        let mut m = Map::new();
        let endpoint = if self.tls.is_some() {
            TLS_ENDPOINT
        } else {
            UNSECURED_ENDPOINT
        };
        m.insert("@type".into(), json!(type_name(endpoint, ava)));
        put(&mut m, "url", &self.url);
        if let Some(c) = &self.credentials {
            let mut cm = Map::new();
            cm.insert("@type".into(), json!(type_name(USERNAME_PASSWORD, ava)));
            put(&mut cm, "username", &c.username);
            put(&mut cm, "password", &c.password);
            m.insert("credentials".into(), Value::Object(cm));
        }
        if let Some(tls) = &self.tls {
            if let Some(certs) = &tls.trusted_certificates {
                m.insert(
                    "trustedCertificates".into(),
                    json!({"@type": type_name(PEM_CERTIFICATE_LIST, ava), "certificates": certs}),
                );
            }
            if tls.ignore_hostname.is_some() || tls.ignore_signature.is_some() {
                let mut vm = Map::new();
                put(&mut vm, "ignoreHostname", &tls.ignore_hostname);
                put(&mut vm, "ignoreSignature", &tls.ignore_signature);
                m.insert("validationOptions".into(), Value::Object(vm));
            }
        }
        Value::Object(m)
    }
}

impl Instance {
    pub(crate) fn read(value: &Value, r: &mut Report) -> Option<Self> {
        let root = "instance:$";
        let mut top = Obj::new(value, root, r)?;
        // The instance's own @apiVersion does not change how the topology is read.
        // AVA's live pipelines are instances too (1.0, 1.1).
        if let Some(v) = top.scalar("@apiVersion", r)
            && !["1.0", "1.1", "2.0"].contains(&v.as_str())
        {
            r.error(
                code::API_VERSION_NOT_SUPPORTED,
                top.child("@apiVersion"),
                format!(
                    "@apiVersion '{v}' is not supported by this host; supported versions: 1.0, 2.0 (LVA), 1.0, 1.1 (AVA)"
                ),
            );
        }
        let mut instance = Instance {
            name: top.required_scalar("name", r),
            topology_name: None,
            description: None,
            parameters: Vec::new(),
        };
        match top.get("properties", r) {
            None => r.error(
                code::PROPERTY_REQUIRED,
                top.child("properties"),
                "property 'properties' is required",
            ),
            Some(props) => {
                if let Some(mut props) = Obj::new(props, top.child("properties"), r) {
                    instance.topology_name = props.required_scalar("topologyName", r);
                    instance.description = props.scalar("description", r);
                    let list_path = props.child("parameters");
                    for (i, p) in props
                        .array("parameters", r)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let path = format!("{list_path}[{i}]");
                        if let Some(mut p) = Obj::new(p, &path, r) {
                            let name = p.required_scalar("name", r);
                            let value = p.required_scalar("value", r);
                            p.finish(r, Unknown::Warn);
                            instance.parameters.push((name, value, path));
                        }
                    }
                    props.finish(r, Unknown::Warn);
                }
            }
        }
        top.finish(r, Unknown::Warn);
        Some(instance)
    }
}
