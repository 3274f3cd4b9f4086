//! Every event mediagraph emits, one struct per event type: its LVA name (or mediagraph's own,
//! under `Mediagraph.Diagnostics.*`) and the fields of its body. Rooms build these structs and
//! emit them through [`super::EventBus`]; no room writes an event type string or a body by
//! hand, so the names and body shapes a client sees are all listed here.
//!
//! LVA's names and body fields follow `research/lva-spec.md` (section "Events"); fields LVA
//! does not define are mediagraph's additions and say so.

use serde::Serialize;

use crate::topology::{IgnoredNode, OutputType};

/// Declares the catalogue: each line is `Variant = "prefix" (Body struct)`; the event type is
/// the prefix followed by the variant's name.
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = $prefix:literal ($body:ty), )*) => {
        /// The body of an event, by type.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Body {
            $( $(#[$doc])* $variant($body), )*
        }

        impl Body {
            /// The full event type, e.g. `Microsoft.Media.Graph.Operational.RecordingStarted`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Body::$variant(_) => concat!($prefix, stringify!($variant)), )*
                }
            }
        }

        $(
            impl From<$body> for Body {
                fn from(body: $body) -> Self {
                    Body::$variant(body)
                }
            }
        )*
    };
}

catalogue! {
    /// A sink began writing media of a new run.
    RecordingStarted = "Microsoft.Media.Graph.Operational." (RecordingStarted),
    /// A sink stopped writing media (run ended, or the graph stops).
    RecordingStopped = "Microsoft.Media.Graph.Operational." (RecordingStopped),
    /// The first media of a sink is available at its output (first upload).
    RecordingAvailable = "Microsoft.Media.Graph.Operational." (RecordingAvailable),
    /// An instance became Active.
    GraphInstanceStarted = "Microsoft.Media.Graph.Operational." (GraphInstanceStarted),
    /// An instance became Inactive.
    GraphInstanceStopped = "Microsoft.Media.Graph.Operational." (GraphInstanceStopped),
    /// An RTSP session plays; the body carries the camera's SDP.
    MediaSessionEstablished = "Microsoft.Media.Graph.Diagnostics." (MediaSessionEstablished),
    /// The camera refused our credentials (RTSP 401/403).
    AuthenticationError = "Microsoft.Media.Graph.Diagnostics." (AuthenticationError),
    /// The camera answered with an error status or something that is not RTSP.
    ProtocolError = "Microsoft.Media.Graph.Diagnostics." (ProtocolError),
    /// The camera cannot be reached, or did not answer in time.
    NetworkError = "Microsoft.Media.Graph.Diagnostics." (NetworkError),
    /// Something about the camera's media: an unsupported codec, no keyframe, bad timing.
    MediaFormatError = "Microsoft.Media.Graph.Diagnostics." (MediaFormatError),
    /// The asset store refused or failed an upload.
    StorageError = "Microsoft.Media.Graph.Diagnostics." (StorageError),
    /// Media was dropped instead of recorded.
    DataDropped = "Microsoft.Media.Graph.Diagnostics." (DataDropped),
    /// An instance failed while the service ran it.
    RuntimeError = "Microsoft.Media.Edge.Diagnostics." (RuntimeError),
    /// The cache's file system is full (mediagraph's own).
    CacheDiskFull = "Mediagraph.Diagnostics." (CacheDiskFull),
    /// The cache's file system refuses writes for another reason: EROFS, EIO, EACCES, ...
    CacheDiskError = "Mediagraph.Diagnostics." (CacheDiskError),
    /// A backlog of segments is being uploaded back to back (after an outage or a restart).
    UploadCatchUp = "Mediagraph.Diagnostics." (UploadCatchUp),
    /// The backlog is uploaded.
    UploadCaughtUp = "Mediagraph.Diagnostics." (UploadCaughtUp),
    /// A plugin trapped, overran its budget or answered wrongly; the action says what
    /// replaced its answer.
    PluginFault = "Mediagraph.Diagnostics." (PluginFault),
    /// A sink could not start (cache, plugin); it is retried while the others record.
    SinkStartFailed = "Mediagraph.Diagnostics." (SinkStartFailed),
    /// A node of the topology this host does not run (`unsupportedNodes: ignore`), once per
    /// activation of the instance.
    NodeNotRun = "Mediagraph.Diagnostics." (NodeNotRun),
}

/// How serious an event is. AVA's levels: Error for the *Error events, Informational for
/// sessions and recordings; mediagraph's own follow that (a loss of media or of a sink is an
/// error, a recoverable drop a warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Information,
    Warning,
    Error,
    Critical,
}

impl Body {
    pub fn severity(&self) -> Severity {
        match self {
            Body::RecordingStarted(_)
            | Body::RecordingStopped(_)
            | Body::RecordingAvailable(_)
            | Body::GraphInstanceStarted(_)
            | Body::GraphInstanceStopped(_)
            | Body::MediaSessionEstablished(_)
            | Body::UploadCatchUp(_)
            | Body::UploadCaughtUp(_)
            | Body::NodeNotRun(_) => Severity::Information,
            Body::DataDropped(_) | Body::PluginFault(_) => Severity::Warning,
            Body::AuthenticationError(_)
            | Body::ProtocolError(_)
            | Body::NetworkError(_)
            | Body::MediaFormatError(_)
            | Body::StorageError(_)
            | Body::CacheDiskFull(_)
            | Body::CacheDiskError(_)
            | Body::SinkStartFailed(_) => Severity::Error,
            Body::RuntimeError(_) => Severity::Critical,
        }
    }
}

/// Where a sink's media goes, as LVA's recording events name it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingOutput {
    pub output_type: OutputType,
    /// The asset or video name.
    pub output_location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RecordingStarted(pub RecordingOutput);

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RecordingStopped(pub RecordingOutput);

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RecordingAvailable(pub RecordingOutput);

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphInstanceStarted {
    pub topology_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphInstanceStopped {
    /// Every cached segment was uploaded before the instance stopped (mediagraph's).
    pub upload_flushed: bool,
    /// Segments left in the cache, uploaded at the next activation (mediagraph's).
    pub cached_segments_left: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediaSessionEstablished {
    /// `SDP:\n` followed by the camera's session description, as LVA sends it.
    pub sdp: String,
}

/// The body of `AuthenticationError` and `ProtocolError`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtspError {
    /// Always `rtsp`.
    pub protocol: &'static str,
    /// The RTSP status code, `InvalidResponse`, or `RtspMessageTooLarge` (mediagraph's: an
    /// answer past 1 MiB that never ends, e.g. a DESCRIBE with a 4 GB `Content-Length`).
    pub error_code: String,
    pub error_message: String,
}

impl RtspError {
    pub fn new(error_code: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            protocol: "rtsp",
            error_code: error_code.into(),
            error_message: error_message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AuthenticationError(pub RtspError);

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ProtocolError(pub RtspError);

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkError {
    /// `ConnectionFailed` or `Timeout`.
    pub error_code: &'static str,
    pub error_message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormatError {
    /// `UnsupportedCodec`, `NoKeyframe`, `ReorderDepthTooLarge`, `InvalidTimestamps`,
    /// `AccessUnitTooLarge` (mediagraph's: 16 MiB received without a video frame ending).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The camera's stream index (mediagraph's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<usize>,
    /// The RTP encoding name, upper case (mediagraph's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    pub error_message: String,
}

impl MediaFormatError {
    /// A finding about the camera's video track `track`.
    pub fn video(code: &'static str, track: usize, error_message: String) -> Self {
        Self {
            code,
            media_type: Some("video".to_owned()),
            track: Some(track),
            encoding: None,
            error_message,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageError {
    /// The store's location (account or directory), never a credential.
    pub storage_account_name: String,
    pub error_code: &'static str,
    pub error_message: String,
    /// Start of the segment that failed, RFC 3339 (mediagraph's).
    pub segment_start: Option<String>,
    pub consecutive_failures: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataDropped {
    /// `video` (a dropped fragment carries every track's samples; LVA names the data type).
    pub data_type: &'static str,
    /// `diskFull`, `localMediaCacheMaximumSizeMiB` or `sinkBehind` (a sink whose queue is
    /// full while its camera's other sinks record).
    pub reason: &'static str,
    /// Of the first drop of the episode (the event is reported once per episode).
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeError {
    /// e.g. `ActivationFailed`.
    pub code: &'static str,
    pub error_message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDiskFull {
    /// `ENOSPC` or `EDQUOT`.
    pub error_code: Option<String>,
    pub error_message: String,
    pub local_media_cache_used_bytes: u64,
    pub local_media_cache_maximum_size_bytes: u64,
    pub action: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDiskError {
    /// The errno name: `EROFS`, `EIO`, `EACCES`, ...
    pub error_code: Option<String>,
    pub error_message: String,
    pub action: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadCatchUp {
    pub segments: usize,
    pub bytes: u64,
    pub oldest_age_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadCaughtUp {
    pub bytes: u64,
    pub seconds: f64,
    pub megabytes_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginFault {
    pub plugin: String,
    /// `segmenter`, `evictor` or `formatter`.
    pub kind: String,
    /// A stable code: `trap`, `timeout`, `memoryExhausted`, `invalidAnswer`, ...
    pub fault: &'static str,
    pub detail: String,
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStartFailed {
    /// e.g. `CacheUnavailable`, `PluginUnavailable`.
    pub error_code: &'static str,
    pub error_message: String,
    pub retry_in_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeNotRun {
    pub node_name: String,
    /// Its `@type` as written.
    pub node_type: String,
    /// JSON path of the node in the topology.
    pub target: String,
    pub reason: &'static str,
}

impl NodeNotRun {
    /// The event for `node`; its subject is the node's own
    /// (`/graphInstances/<i>/processors/<node>`).
    pub fn of(instance: &str, node: &IgnoredNode) -> (String, Self) {
        (
            format!("/graphInstances/{instance}/{}/{}", node.list, node.node),
            Self {
                node_name: node.node.clone(),
                node_type: node.node_type.clone(),
                target: node.target.clone(),
                reason: "unsupportedNodes is 'ignore': this host records the RTSP source into its sinks and does not run this node",
            },
        )
    }
}
