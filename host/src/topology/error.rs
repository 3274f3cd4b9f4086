//! LVA's OData error body: one top-level code plus every detail found, each with a code, a
//! JSON-path target and a message.

use serde::{Deserialize, Serialize};

/// Detail codes. LVA publishes only a few (`RtspEndpointUrlInvalidScheme`,
/// `PropertyValueInvalidPattern`); the rest are ours, named in the same style. Every code of a
/// recognised-but-unimplemented feature ends in `NotSupported`.
pub mod code {
    pub const INVALID_JSON: &str = "InvalidJson";
    pub const API_VERSION_NOT_SUPPORTED: &str = "ApiVersionNotSupported";
    pub const PROPERTY_REQUIRED: &str = "PropertyRequired";
    pub const PROPERTY_TYPE_INVALID: &str = "PropertyTypeInvalid";
    pub const PROPERTY_DUPLICATE: &str = "PropertyDuplicate";
    pub const PROPERTY_UNKNOWN: &str = "PropertyUnknown";
    pub const PROPERTY_NOT_SUPPORTED: &str = "PropertyNotSupported";
    pub const PROPERTY_VALUE_INVALID: &str = "PropertyValueInvalid";
    pub const PROPERTY_VALUE_INVALID_PATTERN: &str = "PropertyValueInvalidPattern";
    pub const NAME_INVALID: &str = "NameInvalid";
    pub const NODE_TYPE_NOT_SUPPORTED: &str = "NodeTypeNotSupported";
    pub const NODE_TYPE_UNKNOWN: &str = "NodeTypeUnknown";
    pub const NODE_TYPE_MISPLACED: &str = "NodeTypeMisplaced";
    pub const ENDPOINT_TYPE_NOT_SUPPORTED: &str = "EndpointTypeNotSupported";
    pub const CREDENTIALS_TYPE_NOT_SUPPORTED: &str = "CredentialsTypeNotSupported";
    pub const NODE_NAME_DUPLICATE: &str = "NodeNameDuplicate";
    pub const NODE_INPUT_UNKNOWN: &str = "NodeInputUnknown";
    pub const NODE_INPUTS_REQUIRED: &str = "NodeInputsRequired";
    pub const SOURCE_HAS_INPUTS: &str = "SourceHasInputs";
    pub const GRAPH_CYCLE: &str = "GraphCycle";
    pub const SINK_UNREACHABLE: &str = "SinkUnreachable";
    pub const RTSP_SOURCE_MULTIPLE: &str = "RtspSourceMultiple";
    pub const ASSET_SINK_MULTIPLE: &str = "AssetSinkMultiple";
    pub const FILE_SINK_MULTIPLE: &str = "FileSinkMultiple";
    pub const SINK_INPUT_INVALID: &str = "SinkInputInvalid";
    pub const EVENT_BASED_RECORDING_NOT_SUPPORTED: &str = "EventBasedRecordingNotSupported";
    pub const NO_RECORDING_SINK: &str = "NoRecordingSink";
    pub const MEDIA_SELECTION_NOT_SUPPORTED: &str = "MediaSelectionNotSupported";
    pub const RTSP_ENDPOINT_URL_INVALID: &str = "RtspEndpointUrlInvalid";
    pub const RTSP_ENDPOINT_URL_INVALID_SCHEME: &str = "RtspEndpointUrlInvalidScheme";
    pub const SEGMENT_LENGTH_INVALID: &str = "SegmentLengthInvalid";
    pub const CACHE_PATH_NOT_ABSOLUTE: &str = "CachePathNotAbsolute";
    pub const CACHE_PATH_INVALID: &str = "CachePathInvalid";
    pub const RTSP_TLS_NOT_SUPPORTED: &str = "RtspTlsNotSupported";
    pub const RTSP_TRANSPORT_NOT_SUPPORTED: &str = "RtspTransportNotSupported";
    pub const RTSP_URL_CREDENTIALS_NOT_SUPPORTED: &str = "RtspUrlCredentialsNotSupported";
    pub const CACHE_SIZE_TOO_SMALL: &str = "CacheSizeTooSmall";
    pub const PARAMETER_DUPLICATE: &str = "ParameterDuplicate";
    pub const PARAMETER_TYPE_INVALID: &str = "ParameterTypeInvalid";
    pub const PARAMETER_NOT_DECLARED: &str = "ParameterNotDeclared";
    pub const PARAMETER_VALUE_MISSING: &str = "ParameterValueMissing";
    pub const PARAMETER_VALUE_INVALID: &str = "ParameterValueInvalid";
    pub const PARAMETER_REFERENCE_INVALID: &str = "ParameterReferenceInvalid";
    pub const SYSTEM_VARIABLE_UNKNOWN: &str = "SystemVariableUnknown";
    pub const INSTANCE_TOPOLOGY_MISMATCH: &str = "InstanceTopologyMismatch";
    pub const PLUGIN_UNKNOWN: &str = "PluginUnknown";
    pub const PLUGIN_KIND_MISMATCH: &str = "PluginKindMismatch";
}

/// One finding: what (`code`), where (`target`, a JSON path such as
/// `$.properties.sinks[0].segmentLength`; instance paths start with `instance:$`, command-line
/// overrides are `--param NAME`) and why (`message`, never containing a secret value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub target: String,
    pub message: String,
}

impl ErrorDetail {
    pub fn new(code: &str, target: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            target: target.into(),
            message: message.into(),
        }
    }

    /// True for findings about LVA features this host recognises but does not implement.
    pub fn is_not_supported(&self) -> bool {
        self.code.ends_with("NotSupported")
    }
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.target, self.code, self.message)
    }
}

/// `{"error":{"code","message","details":[...]}}` as LVA returns it for a rejected request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {} ({} detail(s))", .error.code, .error.message, .error.details.len())]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

impl ErrorBody {
    /// A request whose JSON could not be read at all.
    pub fn bad_request(details: Vec<ErrorDetail>) -> Self {
        Self::with("BadRequest", "Request is not valid.", details)
    }

    /// A well-formed request that breaks the schema or a validation rule.
    pub fn invalid_resource(details: Vec<ErrorDetail>) -> Self {
        Self::with(
            "InvalidResource",
            "The resource format is invalid.",
            details,
        )
    }

    fn with(code: &str, message: &str, details: Vec<ErrorDetail>) -> Self {
        Self {
            error: ErrorInfo {
                code: code.to_owned(),
                message: message.to_owned(),
                details,
            },
        }
    }

    pub fn details(&self) -> &[ErrorDetail] {
        &self.error.details
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
