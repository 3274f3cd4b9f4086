//! Playback room: answers "what was recorded, and let me watch it" from an asset store.
//!
//! Owns LVA's availableMedia query (`available`) and reads only through the public
//! [`AssetStore`](crate::upload::AssetStore) API: an asset's blob listing and the `start`/`end`
//! metadata each blob carries. It must not write, delete or rename anything in a store or a
//! cache; playback is read-only.

pub mod available;

use crate::upload::UploadError;

/// Why a playback request cannot be answered; [`PlaybackError::status`] maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("query parameter '{name}' is required{why}")]
    MissingParameter {
        name: &'static str,
        why: &'static str,
    },
    #[error("precision '{0}' is not supported: use year, month, day or full")]
    UnknownPrecision(String),
    #[error("{name} '{value}' is not a valid time: expected {expected} (UTC)")]
    BadTime {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name} {value}: {rule}")]
    Parameter {
        name: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("startTime {start} must be {rule} endTime {end}")]
    Order {
        start: String,
        end: String,
        rule: &'static str,
    },
    #[error(
        "the time range {start} to {end} is too long: the maximum allowed time range for {what} is {max}"
    )]
    SpanTooLong {
        start: String,
        end: String,
        what: &'static str,
        max: &'static str,
    },
    #[error("asset name '{name}' is invalid: {reason}")]
    InvalidAsset { name: String, reason: String },
    #[error("asset '{0}' not found")]
    AssetNotFound(String),
    #[error(
        "asset '{0}' was not recorded by a media graph (its blobs carry no start/end metadata)"
    )]
    NotRecorded(String),
    #[error("asset store: {0}")]
    Store(#[from] UploadError),
}

impl PlaybackError {
    /// The HTTP status LVA/AMS answers with: 400 for anything wrong with the request
    /// (including an asset not recorded by a media graph), 404 for an unknown asset.
    pub fn status(&self) -> u16 {
        match self {
            PlaybackError::AssetNotFound(_) => 404,
            PlaybackError::Store(_) => 500,
            _ => 400,
        }
    }

    /// A short stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            PlaybackError::MissingParameter { .. } => "MissingParameter",
            PlaybackError::UnknownPrecision(_) => "InvalidPrecision",
            PlaybackError::BadTime { .. } => "InvalidTimeFormat",
            PlaybackError::Parameter { .. } => "InvalidParameter",
            PlaybackError::Order { .. } => "InvalidTimeOrder",
            PlaybackError::SpanTooLong { .. } => "TimeRangeTooLong",
            PlaybackError::InvalidAsset { .. } => "InvalidAssetName",
            PlaybackError::AssetNotFound(_) => "AssetNotFound",
            PlaybackError::NotRecorded(_) => "AssetNotRecordedByMediaGraph",
            PlaybackError::Store(_) => "StoreError",
        }
    }

    /// `{"error":{"code","message"}}`, the OData error shape LVA uses.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}
