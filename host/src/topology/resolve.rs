//! From documents to a [`ResolvedGraph`]: reads topology and instance, substitutes parameters,
//! checks every rule and collects every finding before deciding.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use url::Url;

use super::error::{ErrorBody, ErrorDetail, code};
use super::json::{Report, parse_text};
use super::model::{self, ApiVersion, Instance, Node, NodeKind, Role, Topology};
use super::params::{Params, TimeVars, render_time_variables};
use super::types::{
    AssetName, MediaSelection, PluginKind, PluginLookup, PluginSelection, RtspTransport, Secret,
    SegmentLength, UnsupportedNodes, scrub_userinfo,
};

/// Instance name used when no instance document is given (`mediagraph validate` without
/// `--instance`).
pub const DEFAULT_INSTANCE_NAME: &str = "default";

/// The bitrate the cache-size rule assumes: a modest 1080p H.264 camera. (An 8 Mbit/s rule would
/// reject LVA's own `audio-video` sample, which caches 20 MiB with PT30S segments.)
pub const CACHE_RULE_BITS_PER_SECOND: u64 = 2_000_000;
/// How many whole segments the cache must hold at that bitrate: the one being written and the
/// one waiting for upload.
pub const CACHE_RULE_SEGMENTS: u64 = 2;
const MIB: u64 = 1024 * 1024;

/// The smallest `localMediaCacheMaximumSizeMiB` accepted for a segment length:
/// ⌈2 × segmentLength × 2 Mbit/s ÷ 8 ÷ 1 MiB⌉ — 15 MiB for PT30S, 29 MiB for PT1M, 144 MiB for PT5M.
pub fn minimum_cache_mib(segment_length: SegmentLength) -> u64 {
    (CACHE_RULE_SEGMENTS * segment_length.as_secs() * CACHE_RULE_BITS_PER_SECOND / 8).div_ceil(MIB)
}

/// A validated graph instance: everything the recorder needs, typed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedGraph {
    pub topology_name: String,
    pub instance_name: String,
    pub api_version: &'static str,
    pub sources: Vec<RtspSourceSpec>,
    pub asset_sinks: Vec<AssetSinkSpec>,
    pub file_sinks: Vec<FileSinkSpec>,
    /// Nodes this host does not run, accepted with `unsupportedNodes: ignore` (always empty
    /// with `reject`). Nothing recorded passes through them.
    pub ignored_nodes: Vec<IgnoredNode>,
}

/// A recognised node that is not run (motion detection, extensions, IoT Hub nodes, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredNode {
    pub node: String,
    /// Its `@type` as written.
    pub node_type: String,
    /// `sources`, `processors` or `sinks`: with the node name, the event subject.
    pub list: &'static str,
    /// JSON path of the node in the topology.
    pub target: String,
}

/// What a recording sink reports as its output in RecordingStarted/Stopped (`outputType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputType {
    /// LVA's asset sink: `outputLocation` is the asset name.
    AssetName,
    /// AVA's video sink: `outputLocation` is the video name.
    VideoName,
    /// A file sink: `outputLocation` is the path of the file.
    FilePath,
}

impl OutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::AssetName => "assetName",
            OutputType::VideoName => "videoName",
            OutputType::FilePath => "filePath",
        }
    }
}

#[derive(Clone, PartialEq, Serialize)]
pub struct RtspSourceSpec {
    pub node: String,
    /// Not serialized: it may carry a password (`rtsp://user:pass@host`).
    #[serde(skip)]
    pub url: Url,
    /// The URL as it may be printed or logged: without a password, and as the unsubstituted
    /// template if a `SecretString` parameter is part of it.
    pub display_url: String,
    pub credentials: Option<Credentials>,
    pub transport: RtspTransport,
    /// Set for a `MediaGraphTlsEndpoint` (`rtsps://`).
    pub tls: Option<TlsSpec>,
}

/// `url` is left out: it may carry a password.
impl std::fmt::Debug for RtspSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSourceSpec")
            .field("node", &self.node)
            .field("display_url", &self.display_url)
            .field("credentials", &self.credentials)
            .field("transport", &self.transport)
            .field("tls", &self.tls)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TlsSpec {
    /// PEM certificates to trust in addition to the system roots.
    pub trusted_certificates: Vec<String>,
    pub ignore_hostname: bool,
    pub ignore_signature: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssetSinkSpec {
    pub node: String,
    /// The RTSP source node feeding this sink.
    pub source: String,
    pub asset_name: AssetName,
    pub segment_length: SegmentLength,
    pub cache_path: PathBuf,
    pub cache_max_bytes: u64,
    pub media: MediaSelection,
    pub plugins: PluginSelection,
    /// `assetName` for an LVA asset sink, `videoName` for an AVA video sink.
    pub output_type: OutputType,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileSinkSpec {
    pub node: String,
    pub source: String,
    pub base_directory: PathBuf,
    /// Parameters substituted; `${System.DateTime}` / `${System.PreciseDateTime}` kept for
    /// [`FileSinkSpec::file_name_at`].
    pub file_name_pattern: String,
    /// `None` for a 1.0 file sink, which has no size limit.
    pub max_bytes: Option<u64>,
    pub media: MediaSelection,
}

impl FileSinkSpec {
    /// The file name (without `.mp4`) of a recording starting at `at`.
    pub fn file_name_at(&self, at: SystemTime) -> String {
        render_time_variables(&self.file_name_pattern, at)
    }
}

/// The outcome of a validation plus the warnings (ignored LVA properties and the like), which
/// do not make a topology invalid.
#[derive(Debug)]
pub struct Validation {
    pub outcome: Result<ResolvedGraph, ErrorBody>,
    pub warnings: Vec<ErrorDetail>,
}

/// Reads, substitutes and validates a topology with an optional graph instance and
/// `NAME=VALUE` overrides (applied over the instance's values). All findings at once.
/// Unsupported nodes are refused ([`UnsupportedNodes::Reject`]); see [`resolve_with`].
pub fn resolve(
    topology_json: &str,
    instance_json: Option<&str>,
    overrides: &[(String, String)],
    plugins: &dyn PluginLookup,
    now: SystemTime,
) -> Result<ResolvedGraph, ErrorBody> {
    check(topology_json, instance_json, overrides, plugins, now).outcome
}

/// [`resolve`] with the `unsupportedNodes` setting.
pub fn resolve_with(
    topology_json: &str,
    instance_json: Option<&str>,
    overrides: &[(String, String)],
    plugins: &dyn PluginLookup,
    now: SystemTime,
    unsupported: UnsupportedNodes,
) -> Result<ResolvedGraph, ErrorBody> {
    check_with(
        topology_json,
        instance_json,
        overrides,
        plugins,
        now,
        unsupported,
    )
    .outcome
}

/// [`resolve`] that also returns the warnings.
pub fn check(
    topology_json: &str,
    instance_json: Option<&str>,
    overrides: &[(String, String)],
    plugins: &dyn PluginLookup,
    now: SystemTime,
) -> Validation {
    check_with(
        topology_json,
        instance_json,
        overrides,
        plugins,
        now,
        UnsupportedNodes::Reject,
    )
}

/// [`resolve_with`] that also returns the warnings.
pub fn check_with(
    topology_json: &str,
    instance_json: Option<&str>,
    overrides: &[(String, String)],
    plugins: &dyn PluginLookup,
    now: SystemTime,
    unsupported: UnsupportedNodes,
) -> Validation {
    let topology_value = parse_text(topology_json, "$");
    let instance_value = instance_json
        .map(|text| parse_text(text, "instance:$"))
        .transpose();
    let (topology_value, instance_value) = match (topology_value, instance_value) {
        (Ok(t), Ok(i)) => (t, i),
        (t, i) => {
            let syntax = [t.err(), i.err()].into_iter().flatten().collect();
            let outcome = Err(ErrorBody::bad_request(syntax));
            return Validation {
                outcome,
                warnings: Vec::new(),
            };
        }
    };
    let mut r = Report::default();
    let topology = Topology::read(&topology_value, &mut r);
    let instance = instance_value
        .as_ref()
        .and_then(|v| Instance::read(v, &mut r));
    let graph = topology.map(|t| {
        Builder::new(&t, &mut r).build(instance.as_ref(), overrides, plugins, now, unsupported)
    });
    let outcome = match graph {
        Some(graph) if r.errors.is_empty() => Ok(graph),
        _ => Err(ErrorBody::invalid_resource(r.errors)),
    };
    Validation {
        outcome,
        warnings: r.warnings,
    }
}

/// LVA's rule for topology and instance names: 1-32 letters, digits and dashes, not starting
/// or ending with a dash.
pub fn is_valid_resource_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=32).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

struct Builder<'t, 'r> {
    topology: &'t Topology,
    r: &'r mut Report,
    /// node name → (JSON path, role by list, node)
    nodes: HashMap<&'t str, (String, Role, &'t Node)>,
}

impl<'t, 'r> Builder<'t, 'r> {
    fn new(topology: &'t Topology, r: &'r mut Report) -> Self {
        Self {
            topology,
            r,
            nodes: HashMap::new(),
        }
    }

    fn build(
        mut self,
        instance: Option<&Instance>,
        overrides: &[(String, String)],
        plugins: &dyn PluginLookup,
        now: SystemTime,
        unsupported: UnsupportedNodes,
    ) -> ResolvedGraph {
        let topology_name = self.topology.name.clone().unwrap_or_default();
        if self.topology.name.is_some() && !is_valid_resource_name(&topology_name) {
            self.r.error(
                code::NAME_INVALID,
                "$.name",
                name_message("topology", &topology_name),
            );
        }
        let instance_name = match instance {
            None => DEFAULT_INSTANCE_NAME.to_owned(),
            Some(instance) => {
                let name = instance.name.clone().unwrap_or_default();
                if instance.name.is_some() && !is_valid_resource_name(&name) {
                    self.r.error(
                        code::NAME_INVALID,
                        "instance:$.name",
                        name_message("graph instance", &name),
                    );
                }
                if let (Some(wanted), Some(actual)) = (&instance.topology_name, &self.topology.name)
                    && wanted != actual
                {
                    self.r.error(
                        code::INSTANCE_TOPOLOGY_MISMATCH,
                        "instance:$.properties.topologyName",
                        format!("the instance is for topology '{wanted}', but the topology is '{actual}'"),
                    );
                }
                name
            }
        };
        let params = Params::collect(
            self.topology,
            instance,
            &instance_name,
            overrides,
            now,
            self.r,
        );
        self.check_graph();

        let mut graph = ResolvedGraph {
            topology_name,
            instance_name,
            api_version: self.topology.api_version.as_str(),
            sources: Vec::new(),
            asset_sinks: Vec::new(),
            file_sinks: Vec::new(),
            ignored_nodes: Vec::new(),
        };
        // A misplaced source is reported as misplaced, not counted here as well.
        let sources = self.topology.sources.iter().enumerate();
        let extra_cameras = sources
            .filter(|(_, n)| matches!(n.kind, NodeKind::RtspSource(_)))
            .skip(1);
        for (i, _) in extra_cameras {
            self.r.error(
                code::RTSP_SOURCE_MULTIPLE,
                format!("$.properties.sources[{i}]"),
                "a topology can have at most one RTSP source; record another camera with another graph instance",
            );
        }
        let mut asset_sinks = 0;
        let mut file_sinks = 0;
        for (path, node) in self.topology.nodes() {
            let name = node.name.clone().unwrap_or_default();
            match &node.kind {
                NodeKind::RtspSource(s) => {
                    if let Some(spec) = self.rtsp_source(&params, &path, name, s) {
                        graph.sources.push(spec);
                    }
                }
                NodeKind::AssetSink(_) | NodeKind::VideoSink { .. } => {
                    asset_sinks += 1;
                    if asset_sinks > 1 {
                        self.r.error(
                            code::ASSET_SINK_MULTIPLE,
                            &path,
                            "a topology can have at most one asset sink (or AVA video sink)",
                        );
                    }
                    let sink = match &node.kind {
                        NodeKind::AssetSink(a) => AssetLike::from_asset_sink(a),
                        NodeKind::VideoSink { sink, .. } => AssetLike::from_video_sink(sink),
                        _ => unreachable!("matched above"),
                    };
                    if let Some(spec) = self.asset_sink(&params, plugins, &path, node, &sink) {
                        graph.asset_sinks.push(spec);
                    }
                }
                NodeKind::FileSink(f) => {
                    file_sinks += 1;
                    if file_sinks > 1 {
                        self.r.error(
                            code::FILE_SINK_MULTIPLE,
                            &path,
                            "a topology can have at most one file sink",
                        );
                    }
                    if let Some(spec) = self.file_sink(&params, &path, node, f) {
                        graph.file_sinks.push(spec);
                    }
                }
                NodeKind::Unsupported { .. } | NodeKind::Unknown => {}
            }
        }
        if unsupported == UnsupportedNodes::Ignore {
            graph.ignored_nodes = self.ignore_unsupported_nodes();
            if asset_sinks + file_sinks == 0 {
                self.r.error(
                    code::NO_RECORDING_SINK,
                    "$.properties.sinks",
                    "no sink of this topology records video (asset sink, video sink or file sink); its other nodes are analytics, which this host does not run",
                );
            }
        }
        graph
    }

    /// `unsupportedNodes: ignore`: takes back the findings that refused each recognised but
    /// unsupported node and lists the node instead. A recording sink fed through such a node
    /// has its own finding (see [`Builder::sink_input`]), which stays.
    fn ignore_unsupported_nodes(&mut self) -> Vec<IgnoredNode> {
        let mut ignored = Vec::new();
        for (path, node) in self.topology.nodes() {
            let NodeKind::Unsupported { type_name, .. } = &node.kind else {
                continue;
            };
            let list = if path.starts_with("$.properties.sources") {
                Role::Source
            } else if path.starts_with("$.properties.processors") {
                Role::Processor
            } else {
                Role::Sink
            };
            self.r
                .errors
                .retain(|d| !(d.code == code::NODE_TYPE_NOT_SUPPORTED && d.target == path));
            ignored.push(IgnoredNode {
                node: node.name.clone().unwrap_or_default(),
                node_type: type_name.clone(),
                list: list.list(),
                target: path,
            });
        }
        ignored
    }

    /// Names, inputs, cycles, reachability.
    fn check_graph(&mut self) {
        let topology = self.topology;
        for (role, list) in [
            (Role::Source, &topology.sources),
            (Role::Processor, &topology.processors),
            (Role::Sink, &topology.sinks),
        ] {
            for (i, node) in list.iter().enumerate() {
                let path = format!("$.properties.{}[{i}]", role.list());
                let Some(name) = node.name.as_deref() else {
                    continue;
                };
                if name.is_empty() {
                    self.r.error(
                        code::NAME_INVALID,
                        format!("{path}.name"),
                        "node names must not be empty",
                    );
                } else if let Some((first, _, _)) = self.nodes.get(name) {
                    self.r.error(
                        code::NODE_NAME_DUPLICATE,
                        format!("{path}.name"),
                        format!("node name '{name}' is already used by {first}; node names must be unique"),
                    );
                } else {
                    self.nodes.insert(name, (path, role, node));
                }
            }
        }
        let mut dangling: HashSet<&str> = HashSet::new();
        for (role, list) in [
            (Role::Source, &topology.sources),
            (Role::Processor, &topology.processors),
            (Role::Sink, &topology.sinks),
        ] {
            for (i, node) in list.iter().enumerate() {
                let path = format!("$.properties.{}[{i}]", role.list());
                let label = node.name.as_deref().unwrap_or("(unnamed)");
                let inputs = node.inputs.as_deref().unwrap_or_default();
                if role == Role::Source {
                    if !inputs.is_empty() {
                        self.r.error(
                            code::SOURCE_HAS_INPUTS,
                            format!("{path}.inputs"),
                            format!("source '{label}' must not have inputs"),
                        );
                    }
                    continue;
                }
                if inputs.is_empty() {
                    dangling.insert(label);
                    self.r.error(
                        code::NODE_INPUTS_REQUIRED,
                        format!("{path}.inputs"),
                        format!(
                            "{} '{label}' needs at least one input",
                            if role == Role::Sink {
                                "sink"
                            } else {
                                "processor"
                            }
                        ),
                    );
                }
                for (j, input) in inputs.iter().enumerate() {
                    let Some(from) = input.node_name.as_deref() else {
                        continue;
                    };
                    let target = format!("{path}.inputs[{j}].nodeName");
                    match self.nodes.get(from) {
                        None => {
                            self.r.error(
                                code::NODE_INPUT_UNKNOWN,
                                target,
                                format!(
                                    "input '{from}' of '{label}' is not a node of this topology"
                                ),
                            );
                            dangling.insert(label);
                        }
                        Some((_, Role::Sink, _)) => {
                            self.r.error(code::NODE_INPUT_UNKNOWN, target, format!("input '{from}' of '{label}' is a sink, and sinks have no outputs"));
                            dangling.insert(label);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        let in_cycle = self.check_cycles();
        // Sinks cut off by a reported dangling input or cycle are not reported again.
        let mut reached: HashSet<&str> = topology
            .sources
            .iter()
            .filter_map(|n| n.name.as_deref())
            .collect();
        self.extend_downstream(&mut reached);
        for (i, sink) in topology.sinks.iter().enumerate() {
            let Some(name) = sink.name.as_deref() else {
                continue;
            };
            if !reached.contains(name) && !dangling.contains(name) && !in_cycle.contains(name) {
                self.r.error(
                    code::SINK_UNREACHABLE,
                    format!("$.properties.sinks[{i}]"),
                    format!("sink '{name}' is not reachable from any source"),
                );
            }
        }
    }

    /// Reports each cycle once and returns every node that lies on or behind one.
    fn check_cycles(&mut self) -> HashSet<&'t str> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        let mut marks: HashMap<&str, Mark> = HashMap::new();
        let mut tainted: HashSet<&'t str> = HashSet::new();
        let mut names: Vec<&'t str> = self
            .topology
            .nodes()
            .filter_map(|(_, n)| n.name.as_deref())
            .collect();
        names.dedup();
        for start in names {
            if marks.contains_key(start) {
                continue;
            }
            // Iterative DFS along input edges (node → its inputs); the stack is the current path.
            let mut stack: Vec<(&'t str, usize)> = vec![(start, 0)];
            marks.insert(start, Mark::Open);
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let inputs: Vec<&'t str> = self
                    .nodes
                    .get(node)
                    // A source's inputs are already reported; they are no edges.
                    .filter(|(_, role, _)| *role != Role::Source)
                    .map(|(_, _, n)| {
                        n.inputs
                            .iter()
                            .flatten()
                            .filter_map(|i| i.node_name.as_deref())
                            .collect()
                    })
                    .unwrap_or_default();
                if *next < inputs.len() {
                    let input = inputs[*next];
                    *next += 1;
                    if !self.nodes.contains_key(input) {
                        continue;
                    }
                    match marks.get(input) {
                        None => {
                            marks.insert(input, Mark::Open);
                            stack.push((input, 0));
                        }
                        Some(Mark::Open) => {
                            let from = stack.iter().position(|(n, _)| *n == input).unwrap_or(0);
                            let mut cycle: Vec<&str> =
                                stack[from..].iter().map(|(n, _)| *n).collect();
                            cycle.reverse();
                            cycle.push(cycle[0]);
                            tainted.extend(stack[from..].iter().map(|(n, _)| *n));
                            let path = self
                                .nodes
                                .get(input)
                                .map(|(p, _, _)| p.clone())
                                .unwrap_or_default();
                            self.r.error(
                                code::GRAPH_CYCLE,
                                path,
                                format!("the inputs form a cycle: {}", cycle.join(" -> ")),
                            );
                        }
                        Some(Mark::Done) => {}
                    }
                } else {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
            }
        }
        // Whatever is fed by a node on a cycle cannot be reached from a source either.
        self.extend_downstream(&mut tainted);
        tainted
    }

    /// Adds to `set` every node fed, directly or through others, by a node already in it.
    fn extend_downstream(&self, set: &mut HashSet<&'t str>) {
        loop {
            let before = set.len();
            for (name, (_, _, node)) in &self.nodes {
                if node
                    .inputs
                    .iter()
                    .flatten()
                    .filter_map(|i| i.node_name.as_deref())
                    .any(|i| set.contains(i))
                {
                    set.insert(name);
                }
            }
            if set.len() == before {
                return;
            }
        }
    }

    fn rtsp_source(
        &mut self,
        params: &Params,
        path: &str,
        node: String,
        s: &model::RtspSource,
    ) -> Option<RtspSourceSpec> {
        let transport = match &s.transport {
            None => Some(RtspTransport::Tcp),
            Some(t) => {
                let target = format!("{path}.transport");
                let t = params.substitute(t, &target, TimeVars::Now, self.r)?;
                match t.value.to_ascii_lowercase().as_str() {
                    "tcp" => Some(RtspTransport::Tcp),
                    "http" => {
                        // The RTSP client (retina) speaks RTSP over TCP only; accepting Http
                        // would record over plain TCP or fail forever.
                        self.r.error(
                            code::RTSP_TRANSPORT_NOT_SUPPORTED,
                            target,
                            "transport 'Http' (RTSP tunnelled over HTTP) is not supported by this host; use Tcp",
                        );
                        None
                    }
                    _ => {
                        self.r.error(
                            code::PROPERTY_VALUE_INVALID,
                            target,
                            format!("transport '{}' is not valid; valid values are Tcp and Http (RTP over UDP is not supported)", t.shown()),
                        );
                        None
                    }
                }
            }
        };
        let endpoint = s.endpoint.as_ref()?;
        let endpoint_path = format!("{path}.endpoint");
        const NO_TLS: &str = "is not supported by this host: its RTSP client speaks plain RTSP over TCP only; use a #Microsoft.Media.MediaGraphUnsecuredEndpoint with an rtsp:// URL";
        if endpoint.tls.is_some() {
            self.r.error(
                code::RTSP_TLS_NOT_SUPPORTED,
                format!("{endpoint_path}.@type"),
                format!("a TLS endpoint (rtsps://) {NO_TLS}"),
            );
        }
        let url_target = format!("{endpoint_path}.url");
        let url = endpoint.url.as_ref().and_then(|u| params.substitute(u, &url_target, TimeVars::Now, self.r)).and_then(|u| {
            let parsed = match Url::parse(&u.value) {
                Ok(url) => url,
                Err(e) => {
                    let shown = if u.secret { u.shown().to_owned() } else { scrub_userinfo(u.shown()) };
                    self.r.error(code::RTSP_ENDPOINT_URL_INVALID, &url_target, format!("'{shown}' is not a valid URL: {e}"));
                    return None;
                }
            };
            let allowed = if endpoint.tls.is_some() { "rtsps" } else { "rtsp" };
            if parsed.scheme() == "rtsps" && endpoint.tls.is_none() {
                self.r.error(code::RTSP_TLS_NOT_SUPPORTED, &url_target, format!("rtsps:// {NO_TLS}"));
                return None;
            }
            if parsed.scheme() != allowed {
                let hint = match (parsed.scheme(), endpoint.tls.is_some()) {
                    ("rtsp", true) => " (a TLS endpoint needs an rtsps URL)",
                    _ => "",
                };
                self.r.error(
                    code::RTSP_ENDPOINT_URL_INVALID_SCHEME,
                    &url_target,
                    format!("Uri scheme '{}' is not valid for an RTSP source endpoint. Valid values are: {allowed}{hint}", parsed.scheme()),
                );
                return None;
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                self.r.error(code::RTSP_ENDPOINT_URL_INVALID, &url_target, format!("'{}' has no host", u.shown()));
                return None;
            }
            let display = if u.secret {
                u.shown().to_owned()
            } else {
                let mut shown = parsed.clone();
                if shown.password().is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                shown.to_string()
            };
            if !parsed.username().is_empty() || parsed.password().is_some() {
                self.r.error(
                    code::RTSP_URL_CREDENTIALS_NOT_SUPPORTED,
                    &url_target,
                    format!("'{display}' carries credentials, which the RTSP client refuses in a URL; put them in the endpoint's credentials (username and password) instead"),
                );
                return None;
            }
            Some((parsed, display))
        });
        let credentials = match &endpoint.credentials {
            None => Some(None),
            Some(c) => {
                let cpath = format!("{endpoint_path}.credentials");
                let username = c.username.as_ref().and_then(|u| {
                    params.substitute(u, &format!("{cpath}.username"), TimeVars::Now, self.r)
                });
                let password = match &c.password {
                    Some(p) => params
                        .substitute(p, &format!("{cpath}.password"), TimeVars::Now, self.r)
                        .map(|p| p.value),
                    None if self.topology.api_version == ApiVersion::V1_0 => Some(String::new()),
                    None => {
                        self.r.error(
                            code::PROPERTY_REQUIRED,
                            format!("{cpath}.password"),
                            "property 'password' is required",
                        );
                        None
                    }
                };
                match (username, password) {
                    (Some(u), Some(p)) => Some(Some(Credentials {
                        username: u.value,
                        password: Secret::new(p),
                    })),
                    _ => None,
                }
            }
        };
        let tls = match &endpoint.tls {
            None => Some(None),
            Some(t) => {
                let mut certs = Vec::new();
                for (i, c) in t.trusted_certificates.iter().flatten().enumerate() {
                    let target = format!("{endpoint_path}.trustedCertificates.certificates[{i}]");
                    certs.extend(
                        params
                            .substitute(c, &target, TimeVars::Now, self.r)
                            .map(|c| c.value),
                    );
                }
                let vpath = format!("{endpoint_path}.validationOptions");
                let hostname = self.flag(
                    params,
                    t.ignore_hostname.as_deref(),
                    &format!("{vpath}.ignoreHostname"),
                );
                let signature = self.flag(
                    params,
                    t.ignore_signature.as_deref(),
                    &format!("{vpath}.ignoreSignature"),
                );
                match (hostname, signature) {
                    (Some(ignore_hostname), Some(ignore_signature)) => Some(Some(TlsSpec {
                        trusted_certificates: certs,
                        ignore_hostname,
                        ignore_signature,
                    })),
                    _ => None,
                }
            }
        };
        let ((url, display_url), credentials, transport, tls) =
            (url?, credentials?, transport?, tls?);
        Some(RtspSourceSpec {
            node,
            url,
            display_url,
            credentials,
            transport,
            tls,
        })
    }

    /// An optional `"true"`/`"false"` property (default false).
    fn flag(&mut self, params: &Params, text: Option<&str>, target: &str) -> Option<bool> {
        let Some(text) = text else { return Some(false) };
        let v = params.substitute(text, target, TimeVars::Now, self.r)?;
        match v.value.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.r.error(
                    code::PROPERTY_VALUE_INVALID,
                    target,
                    format!("'{}' is not true or false", v.shown()),
                );
                None
            }
        }
    }

    /// The one RTSP source a sink is fed from, and what it records of it.
    fn sink_input(
        &mut self,
        path: &str,
        node: &Node,
        kind: &str,
    ) -> Option<(String, MediaSelection)> {
        let kind_label = kind;
        let inputs = node.inputs.as_deref().unwrap_or_default();
        let label = node.name.as_deref().unwrap_or("(unnamed)");
        if inputs.len() > 1 {
            self.r.error(
                code::SINK_INPUT_INVALID,
                format!("{path}.inputs"),
                format!("{kind} '{label}' takes exactly one input"),
            );
            return None;
        }
        let input = inputs.first()?;
        let from = input.node_name.as_deref()?;
        let (_, _, source) = self.nodes.get(from)?;
        let source_name = match &source.kind {
            NodeKind::RtspSource(_) => from.to_owned(),
            kind if kind.is_signal_gate() => {
                // Recording continuously what LVA recorded only while the gate was open would
                // fill the disk with what the operator chose not to keep: refused whatever
                // `unsupportedNodes` says.
                self.r.error(
                    code::EVENT_BASED_RECORDING_NOT_SUPPORTED,
                    format!("{path}.inputs[0].nodeName"),
                    format!("{kind_label} '{label}' records only while signal gate '{from}' is open (event-based recording), which this host does not support"),
                );
                return None;
            }
            _ => {
                self.r.error(
                    code::SINK_INPUT_INVALID,
                    format!("{path}.inputs[0].nodeName"),
                    format!("{kind} '{label}' must be fed directly by an RTSP source (or a signal gate), not by '{from}'"),
                );
                return None;
            }
        };
        let media = self.media_selection(&format!("{path}.inputs[0].outputSelectors"), input)?;
        Some((source_name, media))
    }

    fn media_selection(&mut self, path: &str, input: &model::NodeInput) -> Option<MediaSelection> {
        if input.output_selectors.is_empty() {
            // 2.0 passes audio (if the camera has it) and video downstream; 1.0 had no audio.
            return Some(match self.topology.api_version {
                ApiVersion::V1_0 => MediaSelection::VideoOnly,
                ApiVersion::V2_0 | ApiVersion::Ava1_0 | ApiVersion::Ava1_1 => {
                    MediaSelection::AudioAndVideo
                }
            });
        }
        let mut kept: Vec<&str> = vec!["video", "audio", "application"];
        let mut ok = true;
        for (i, s) in input.output_selectors.iter().enumerate() {
            let target = format!("{path}[{i}]");
            let (Some(property), Some(operator), Some(value)) =
                (&s.property, &s.operator, &s.value)
            else {
                ok = false;
                continue;
            };
            if !property.eq_ignore_ascii_case("mediaType") {
                self.r.error(
                    code::PROPERTY_VALUE_INVALID,
                    format!("{target}.property"),
                    format!(
                        "selector property '{property}' is not valid; the only one is mediaType"
                    ),
                );
                ok = false;
            }
            let value = value.to_ascii_lowercase();
            if !["video", "audio", "application"].contains(&value.as_str()) {
                self.r.error(
                    code::PROPERTY_VALUE_INVALID,
                    format!("{target}.value"),
                    format!("media type '{value}' is not one of video, audio, application"),
                );
                ok = false;
            }
            match operator.to_ascii_lowercase().as_str() {
                "is" => kept.retain(|m| *m == value),
                "isnot" => kept.retain(|m| *m != value),
                _ => {
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        format!("{target}.operator"),
                        format!("operator '{operator}' is not one of is, isNot"),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        match (kept.contains(&"video"), kept.contains(&"audio")) {
            (true, true) => Some(MediaSelection::AudioAndVideo),
            (true, false) => Some(MediaSelection::VideoOnly),
            (false, _) => {
                self.r.error(code::MEDIA_SELECTION_NOT_SUPPORTED, path, "recording without video is not supported by this host; select video or audio and video");
                None
            }
        }
    }

    fn asset_sink(
        &mut self,
        params: &Params,
        plugins: &dyn PluginLookup,
        path: &str,
        node: &Node,
        a: &AssetLike<'_>,
    ) -> Option<AssetSinkSpec> {
        let input = self.sink_input(path, node, a.kind);
        let name_target = format!("{path}.{}", a.name_property);
        if a.output_type == OutputType::VideoName
            && a.name
                .is_some_and(|n| n.to_ascii_lowercase().contains("${system.runtime."))
        {
            // AVA: a video resource's name cannot change per activation.
            self.r.error(
                code::PROPERTY_VALUE_INVALID,
                &name_target,
                "videoName cannot use the System.Runtime.* variables (AVA's rule: a video's name is fixed)",
            );
        }
        if a.disable_archive
            .is_some_and(|d| d.eq_ignore_ascii_case("true"))
        {
            self.r.error(
                code::PROPERTY_NOT_SUPPORTED,
                format!("{path}.videoPublishingOptions.disableArchive"),
                "a video sink with disableArchive 'true' records nothing; this host records every video sink",
            );
        }
        let asset_name = a
            .name
            .and_then(|p| params.substitute(p, &name_target, TimeVars::Now, self.r))
            .and_then(|n| {
                AssetName::new(n.value.clone())
                    .map_err(|e| {
                        let message = if n.secret {
                            format!(
                                "the asset name from '{}' must match '{}'",
                                n.shown(),
                                AssetName::PATTERN
                            )
                        } else {
                            e
                        };
                        self.r
                            .error(code::PROPERTY_VALUE_INVALID_PATTERN, &name_target, message);
                    })
                    .ok()
            });
        let seg_target = format!("{path}.{}", a.segment_length_property);
        let segment_length = match a.segment_length {
            None => Some(SegmentLength::DEFAULT),
            Some(s) => params
                .substitute(s, &seg_target, TimeVars::Now, self.r)
                .and_then(|s| {
                    SegmentLength::parse_iso8601(s.value.trim())
                        .map_err(|e| {
                            self.r.error(
                                code::SEGMENT_LENGTH_INVALID,
                                &seg_target,
                                format!("segmentLength {e}"),
                            )
                        })
                        .ok()
                }),
        };
        let cache_target = format!("{path}.localMediaCachePath");
        let cache_path = a
            .cache_path
            // Time variables are kept to be refused: a cache named by the start time is a new
            // cache at every start, and the pending segments of the previous one are orphaned.
            .and_then(|p| params.substitute(p, &cache_target, TimeVars::Keep, self.r))
            .and_then(|p| {
                let path = PathBuf::from(&p.value);
                if p.value.contains("${System.") {
                    self.r.error(
                        code::CACHE_PATH_INVALID,
                        &cache_target,
                        format!("localMediaCachePath '{}' must not use ${{System.DateTime}} or ${{System.PreciseDateTime}}: each start would open a new cache and never upload or evict the previous one's segments", p.shown()),
                    );
                    None
                } else if path.components().any(|c| c == std::path::Component::ParentDir) {
                    self.r.error(
                        code::CACHE_PATH_INVALID,
                        &cache_target,
                        format!("localMediaCachePath '{}' must not contain '..': the cache stays inside the data directory", p.shown()),
                    );
                    None
                } else if path.is_absolute() {
                    Some(path)
                } else {
                    self.r.error(
                        code::CACHE_PATH_NOT_ABSOLUTE,
                        &cache_target,
                        format!(
                            "localMediaCachePath '{}' must be an absolute path",
                            p.shown()
                        ),
                    );
                    None
                }
            });
        let size_target = format!("{path}.localMediaCacheMaximumSizeMiB");
        let cache_mib = a.cache_mib.and_then(|s| params.substitute(s, &size_target, TimeVars::Now, self.r)).and_then(|s| {
            match positive_integer(s.value.trim()) {
                Some(mib) if mib <= u64::MAX / MIB => Some(mib),
                _ => {
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        &size_target,
                        format!("localMediaCacheMaximumSizeMiB '{}' must be a positive whole number of MiB", s.shown()),
                    );
                    None
                }
            }
        });
        if let (Some(mib), Some(seg)) = (cache_mib, segment_length) {
            let min = minimum_cache_mib(seg);
            if mib < min {
                self.r.error(
                    code::CACHE_SIZE_TOO_SMALL,
                    &size_target,
                    format!(
                        "localMediaCacheMaximumSizeMiB {mib} is too small for segmentLength {}: the cache must hold at least {CACHE_RULE_SEGMENTS} segments at {} Mbit/s, i.e. at least {min} MiB",
                        seg.to_iso8601(),
                        CACHE_RULE_BITS_PER_SECOND / 1_000_000
                    ),
                );
            }
        }
        let selection = self.plugins(params, plugins, &format!("{path}.plugins"), a.plugins);
        let (source, media) = input?;
        let (asset_name, segment_length, cache_path, cache_mib, plugins) = (
            asset_name?,
            segment_length?,
            cache_path?,
            cache_mib?,
            selection?,
        );
        Some(AssetSinkSpec {
            node: node.name.clone().unwrap_or_default(),
            source,
            asset_name,
            segment_length,
            cache_path,
            cache_max_bytes: cache_mib * MIB,
            media,
            plugins,
            output_type: a.output_type,
        })
    }

    fn plugins(
        &mut self,
        params: &Params,
        lookup: &dyn PluginLookup,
        path: &str,
        names: Option<&model::PluginNames>,
    ) -> Option<PluginSelection> {
        let Some(names) = names else {
            return Some(PluginSelection::default());
        };
        let mut ok = true;
        let mut pick = |this: &mut Self,
                        name: &Option<String>,
                        key: &str,
                        kind: PluginKind|
         -> Option<String> {
            let name = name.as_ref()?;
            let target = format!("{path}.{key}");
            let Some(name) = params.substitute(name, &target, TimeVars::Now, this.r) else {
                ok = false;
                return None;
            };
            match lookup.kind_of(&name.value) {
                Some(k) if k == kind => Some(name.value),
                Some(k) => {
                    this.r.error(
                        code::PLUGIN_KIND_MISMATCH,
                        target,
                        format!(
                            "plugin '{}' is of kind {k}, but '{key}' takes {kind} plugins",
                            name.shown()
                        ),
                    );
                    ok = false;
                    None
                }
                None => {
                    this.r.error(
                        code::PLUGIN_UNKNOWN,
                        target,
                        format!("no {kind} plugin named '{}' is embedded or installed in the plugin directory", name.shown()),
                    );
                    ok = false;
                    None
                }
            }
        };
        let selection = PluginSelection {
            segmenter: pick(self, &names.segmenter, "segmenter", PluginKind::Segmenter),
            evictor: pick(self, &names.evictor, "evictor", PluginKind::Evictor),
            formatter: pick(self, &names.formatter, "formatter", PluginKind::Formatter),
        };
        ok.then_some(selection)
    }

    fn file_sink(
        &mut self,
        params: &Params,
        path: &str,
        node: &Node,
        f: &model::FileSink,
    ) -> Option<FileSinkSpec> {
        let input = self.sink_input(path, node, "file sink");
        let (base_directory, file_name_pattern, max_bytes) = if let Some(pattern) =
            &f.file_path_pattern
        {
            // 1.0: one absolute path pattern; the directory part must not vary per file.
            let target = format!("{path}.filePathPattern");
            let p = params.substitute(pattern, &target, TimeVars::Keep, self.r)?;
            let full = PathBuf::from(&p.value);
            match (full.is_absolute(), full.parent(), full.file_name()) {
                (true, Some(dir), Some(file)) if !has_parent_dir(&full) => {
                    (dir.to_path_buf(), file.to_string_lossy().into_owned(), None)
                }
                _ => {
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        target,
                        format!(
                            "filePathPattern '{}' must be an absolute file path without '..'",
                            p.shown()
                        ),
                    );
                    return None;
                }
            }
        } else {
            let dir = self.required(
                params,
                path,
                "baseDirectoryPath",
                f.base_directory_path.as_deref(),
                TimeVars::Now,
            );
            let name = self.required(
                params,
                path,
                "fileNamePattern",
                f.file_name_pattern.as_deref(),
                TimeVars::Keep,
            );
            let size = self.required(
                params,
                path,
                "maximumSizeMiB",
                f.maximum_size_mib.as_deref(),
                TimeVars::Now,
            );
            let dir = dir.and_then(|d| {
                let dir = PathBuf::from(&d);
                if dir.is_absolute() && !has_parent_dir(&dir) {
                    Some(dir)
                } else {
                    // Without '..' the files stay inside --data-dir, like the caches.
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        format!("{path}.baseDirectoryPath"),
                        format!("baseDirectoryPath '{d}' must be an absolute path without '..'"),
                    );
                    None
                }
            });
            let name = name.and_then(|n| {
                if !f.file_name_pattern.as_deref().unwrap_or_default().contains("${System.") {
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        format!("{path}.fileNamePattern"),
                        "fileNamePattern must include at least one system variable such as ${System.DateTime}",
                    );
                    None
                } else if n.contains(['/', '\\']) {
                    self.r.error(code::PROPERTY_VALUE_INVALID, format!("{path}.fileNamePattern"), "fileNamePattern must be a file name, not a path");
                    None
                } else {
                    Some(n)
                }
            });
            let size = size.and_then(|s| match positive_integer(s.trim()) {
                Some(mib) if mib <= u64::MAX / MIB => Some(mib * MIB),
                _ => {
                    self.r.error(
                        code::PROPERTY_VALUE_INVALID,
                        format!("{path}.maximumSizeMiB"),
                        format!("maximumSizeMiB '{s}' must be a positive whole number of MiB"),
                    );
                    None
                }
            });
            (dir?, name?, Some(size?))
        };
        let (source, media) = input?;
        Some(FileSinkSpec {
            node: node.name.clone().unwrap_or_default(),
            source,
            base_directory,
            file_name_pattern,
            max_bytes,
            media,
        })
    }

    /// A required property of a 2.0 file sink, substituted.
    fn required(
        &mut self,
        params: &Params,
        path: &str,
        name: &str,
        text: Option<&str>,
        time: TimeVars,
    ) -> Option<String> {
        let target = format!("{path}.{name}");
        let Some(text) = text else {
            self.r.error(
                code::PROPERTY_REQUIRED,
                target,
                format!("property '{name}' is required"),
            );
            return None;
        };
        params
            .substitute(text, &target, time, self.r)
            .map(|v| v.value)
    }
}

/// What an LVA asset sink and an AVA video sink have in common, with where each property is
/// written (for the findings' paths).
struct AssetLike<'a> {
    kind: &'static str,
    output_type: OutputType,
    name: Option<&'a str>,
    name_property: &'static str,
    segment_length: Option<&'a str>,
    segment_length_property: &'static str,
    cache_path: Option<&'a String>,
    cache_mib: Option<&'a String>,
    plugins: Option<&'a model::PluginNames>,
    disable_archive: Option<&'a str>,
}

impl<'a> AssetLike<'a> {
    fn from_asset_sink(a: &'a model::AssetSink) -> Self {
        Self {
            kind: "asset sink",
            output_type: OutputType::AssetName,
            name: a.asset_name_pattern.as_deref(),
            name_property: "assetNamePattern",
            segment_length: a.segment_length.as_deref(),
            segment_length_property: "segmentLength",
            cache_path: a.local_media_cache_path.as_ref(),
            cache_mib: a.local_media_cache_maximum_size_mib.as_ref(),
            plugins: a.plugins.as_ref(),
            disable_archive: None,
        }
    }

    fn from_video_sink(v: &'a model::VideoSink) -> Self {
        Self {
            kind: "video sink",
            output_type: OutputType::VideoName,
            name: v.video_name.as_deref(),
            name_property: "videoName",
            segment_length: v.segment_length.as_deref(),
            segment_length_property: "videoCreationProperties.segmentLength",
            cache_path: v.local_media_cache_path.as_ref(),
            cache_mib: v.local_media_cache_maximum_size_mib.as_ref(),
            plugins: None,
            disable_archive: v.disable_archive.as_deref(),
        }
    }
}

fn has_parent_dir(path: &std::path::Path) -> bool {
    path.components()
        .any(|c| c == std::path::Component::ParentDir)
}

fn positive_integer(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n > 0)
}

fn name_message(what: &str, name: &str) -> String {
    format!(
        "{what} name '{name}' must be 1 to 32 letters, digits and dashes, not starting or ending with a dash (^[A-Za-z0-9]([A-Za-z0-9-]{{0,30}}[A-Za-z0-9])?$)"
    )
}
