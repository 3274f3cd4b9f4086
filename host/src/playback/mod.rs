//! Playback room: answers "what was recorded, and let me watch it" from an asset store.
//!
//! Owns LVA's availableMedia query (`available`), the gaps and their causes (`gaps`), HLS playlists over time ranges (`hls`,
//! `mp4`), the live view from the recording cache before upload (`live`), clip export to one MP4 file (`export`) and the loopback HTTP server with the
//! playback page (`server`). It reads only through the public
//! [`AssetStore`](crate::upload::AssetStore) API: an asset's blob listing, the `start`/`end`
//! metadata each blob carries, blob bytes and the asset's gap records; and, for the live view,
//! the recording caches' published [`LiveView`](crate::cache::LiveView) and
//! [`Cache::open_live`](crate::cache::Cache::open_live). It must not write, delete or rename anything
//! in a store or a cache (playback is read-only), and it never turns request text into a
//! path: asset and blob names are validated first.

pub mod available;
pub mod export;
pub mod gaps;
pub mod hls;
pub mod live;
pub mod mp4;
pub mod server;

use crate::topology::AssetName;
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
        max: String,
    },
    #[error("asset name '{name}' is invalid: {reason}")]
    InvalidAsset { name: String, reason: String },
    #[error("asset '{0}' not found")]
    AssetNotFound(String),
    #[error(
        "asset '{0}' was not recorded by a media graph (its blobs carry no start/end metadata)"
    )]
    NotRecorded(String),
    #[error("blob name '{0}' is invalid: expected <yyyyMMddTHHmmssZ>-r<run>-s<sequence>.<ext>")]
    InvalidBlob(String),
    #[error("blob '{0}' not found")]
    BlobNotFound(String),
    #[error("blob '{0}' is not a fragmented MP4 (no moov before the first moof)")]
    Unplayable(String),
    #[error("asset '{asset}' has no media between {start} and {end}")]
    NoMedia {
        asset: String,
        start: String,
        end: String,
    },
    #[error("blob '{blob}' cannot be exported: {what}")]
    BadMedia { blob: String, what: String },
    #[error("manifest format '{0}' is not served: use m3u8-aapl or m3u8-cmaf")]
    UnknownFormat(String),
    #[error("asset store: {0}")]
    Store(#[from] UploadError),
    #[error("live segment {0} is not in the cache (uploaded and evicted, or not durable yet)")]
    LiveNotFound(String),
    #[error("recording cache: {0}")]
    Cache(crate::cache::CacheError),
    #[error("reading the recording cache: {0}")]
    LiveRead(String),
}

impl PlaybackError {
    /// The HTTP status LVA/AMS answers with: 400 for anything wrong with the request
    /// (including an asset not recorded by a media graph), 404 for an unknown asset.
    pub fn status(&self) -> u16 {
        match self {
            PlaybackError::AssetNotFound(_)
            | PlaybackError::BlobNotFound(_)
            | PlaybackError::LiveNotFound(_)
            | PlaybackError::NoMedia { .. } => 404,
            PlaybackError::Store(_)
            | PlaybackError::Cache(_)
            | PlaybackError::LiveRead(_)
            | PlaybackError::Unplayable(_)
            | PlaybackError::BadMedia { .. } => 500,
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
            PlaybackError::InvalidBlob(_) => "InvalidBlobName",
            PlaybackError::BlobNotFound(_) => "BlobNotFound",
            PlaybackError::Unplayable(_) | PlaybackError::BadMedia { .. } => "BlobNotPlayable",
            PlaybackError::NoMedia { .. } => "NoMediaInRange",
            PlaybackError::UnknownFormat(_) => "InvalidManifestFormat",
            PlaybackError::Store(_) => "StoreError",
            PlaybackError::LiveNotFound(_) => "LiveSegmentNotFound",
            PlaybackError::Cache(_) | PlaybackError::LiveRead(_) => "CacheError",
        }
    }

    /// `{"error":{"code","message"}}`, the OData error shape LVA uses.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

/// A validated asset name taken from a URL: LVA's pattern forbids `/`, `\\` and `.`, so it
/// can never name anything outside the asset's own prefix.
pub fn asset_name(text: &str) -> Result<AssetName, PlaybackError> {
    let invalid = |reason: String| PlaybackError::InvalidAsset {
        name: text.escape_debug().to_string(),
        reason,
    };
    // LVA's pattern allows control characters, but no recorded asset has one, and a NUL
    // decoded from `%00` cannot be part of a file name.
    if text.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed".into()));
    }
    AssetName::new(text).map_err(invalid)
}

/// The file part of a blob name as the uploader writes it
/// (`<yyyyMMddTHHmmssZ>-r<run:010>-s<sequence:010>.<ext>`), validated character by character,
/// so it cannot contain a separator or `..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobFile(String);

impl BlobFile {
    pub fn parse(text: &str) -> Result<Self, PlaybackError> {
        let bad = || PlaybackError::InvalidBlob(text.to_owned());
        // Bytes, not characters: every accepted byte is ASCII, and slicing decoded request text
        // by byte offsets would panic inside a multi-byte character.
        let (stem, ext) = text.as_bytes().split_at(text.rfind('.').ok_or_else(bad)?);
        let ext = &ext[1..];
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let numbered = |s: &[u8], tag: u8| s.len() == 11 && s[0] == tag && digits(&s[1..]);
        let ok = stem.len() == 16 + 1 + 11 + 1 + 11
            && digits(&stem[..8])
            && stem[8] == b'T'
            && digits(&stem[9..15])
            && stem[15] == b'Z'
            && stem[16] == b'-'
            && numbered(&stem[17..28], b'r')
            && stem[28] == b'-'
            && numbered(&stem[29..], b's')
            && (1..=8).contains(&ext.len())
            && ext.iter().all(u8::is_ascii_alphanumeric);
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(bad())
        }
    }

    /// The file part of a listed blob's name (`<asset>/<file>`).
    pub fn of(blob: &crate::upload::StoredBlob) -> &str {
        blob.name.rsplit('/').next().unwrap_or(&blob.name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store's name for this blob of `asset`.
    pub fn blob_name(&self, asset: &AssetName) -> String {
        format!("{}/{}", asset.as_str(), self.0)
    }
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (a `+` stays a `+`: RFC 3339 offsets use it); `None` for a broken
/// escape or bytes that are not UTF-8.
pub fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_files_must_look_like_the_uploaders_names() {
        let ok = BlobFile::parse("20200512T233309Z-r0000000003-s0000000007.mp4").unwrap();
        assert_eq!(ok.as_str(), "20200512T233309Z-r0000000003-s0000000007.mp4");
        for bad in [
            "../../etc/passwd",
            "..",
            "20200512T233309Z-r0000000003-s0000000007.mp4/../x",
            "20200512T233309Z-r0000000003-s0000000007",
            "20200512T233309Z-r0000000003-s000000007.mp4",
            "20200512T233309Z-r0000000003-s0000000007.m/4",
            "20200512X233309Z-r0000000003-s0000000007.mp4",
            "",
        ] {
            let e = BlobFile::parse(bad).unwrap_err();
            assert_eq!((e.status(), e.code()), (400, "InvalidBlobName"), "{bad}");
        }
    }

    #[test]
    fn asset_names_from_urls_cannot_climb_out_of_the_store() {
        for bad in ["..", "a/b", "..\\x", "a.b", "", "a\0b", "a\nb"] {
            assert_eq!(asset_name(bad).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(
            asset_name("CVRToAsset-default").unwrap().as_str(),
            "CVRToAsset-default"
        );
    }

    #[test]
    fn url_segments_round_trip_through_percent_encoding() {
        let name = "cam 1#north\"";
        assert_eq!(encode_segment(name), "cam%201%23north%22");
        assert_eq!(decode_component(&encode_segment(name)).unwrap(), name);
        assert_eq!(
            decode_component("2020-01-01T01:00:00+01:00").unwrap(),
            "2020-01-01T01:00:00+01:00"
        );
        assert_eq!(decode_component("%2e%2E%2F").unwrap(), "../");
        assert!(decode_component("%zz").is_none());
        assert!(decode_component("%ff").is_none());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::available::parse_instant;
        use super::super::hls::manifest_params;
        use super::*;

        /// Any text, with multi-byte characters and the separators the parsers split on.
        fn text() -> impl Strategy<Value = String> {
            proptest::string::string_regex("[0-9TZrs.\\-/%()=,:+a-zé€😀]{0,40}").unwrap()
        }

        proptest! {
            #[test]
            fn path_parsers_never_panic(s in text(), any in any::<String>()) {
                for t in [&s, &any] {
                    let _ = BlobFile::parse(t);
                    let _ = asset_name(t);
                    let _ = decode_component(t);
                    let _ = manifest_params(t);
                    let _ = parse_instant("startTime", t);
                }
            }

            #[test]
            fn accepted_blob_files_are_plain_ascii_names(s in text()) {
                if let Ok(f) = BlobFile::parse(&s) {
                    prop_assert!(f.as_str().is_ascii());
                    prop_assert!(!f.as_str().contains('/') && !f.as_str().contains(".."));
                }
            }

            #[test]
            fn uploader_names_are_accepted(
                date in "[0-9]{8}", clock in "[0-9]{6}", run in 0u64..10_000_000_000,
                seq in 0u64..10_000_000_000, ext in "[a-z0-9]{1,8}",
            ) {
                let name = format!("{date}T{clock}Z-r{run:010}-s{seq:010}.{ext}");
                let parsed = BlobFile::parse(&name).unwrap();
                prop_assert_eq!(parsed.as_str(), name.as_str());
            }

            #[test]
            fn percent_encoding_round_trips(s in any::<String>()) {
                prop_assert_eq!(decode_component(&encode_segment(&s)), Some(s));
            }
        }
    }
}
