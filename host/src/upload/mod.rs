//! Upload room: moves sealed segments from an asset sink's cache to an asset store, oldest first.
//!
//! Owns the [`AssetStore`] abstraction and its two implementations ([`local::LocalStore`] for
//! `file:///dir`, the default, and [`azure::AzureBlobStore`]), the asset-store configuration
//! (flags, connection strings, SAS signing) and the per-sink [`uploader`]. It must not write,
//! seal or evict cache files: the cache owns them, the uploader only reads sealed segments and
//! marks them uploaded once the store has verifiably kept them. Beside the blobs a store keeps
//! the asset's gap records ([`gaps`]), which the uploader copies from the cache's `gaps.log`.

pub mod azure;
pub mod cli;
pub mod config;
pub mod gaps;
pub mod local;
mod sas;
pub mod uploader;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;

use crate::cache::Gap;
use crate::time::{Duration90k, TICKS_PER_SECOND, Ticks90k};

/// Segments closer than one frame (at 25 fps) are one recording: within a run the recorder
/// makes each segment start where the previous one ended (give or take the clock slew's few
/// ticks), so anything larger is a real hole.
pub const SEAM_TOLERANCE: Duration90k = Duration90k(TICKS_PER_SECOND / 25);

/// Everything that can go wrong between a sealed segment and a verified blob.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("asset store configuration: {0}")]
    Config(String),
    #[error("cannot read segment {segment} from the cache: {source}")]
    ReadSegment {
        segment: String,
        source: std::io::Error,
    },
    #[error("segment {segment}: the file has {actual} bytes, the cache index says {expected}")]
    SegmentSize {
        segment: String,
        expected: u64,
        actual: u64,
    },
    #[error("local asset store {path}: {source}")]
    Local {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("Azure Blob storage account {account}, container {container}: {kind}: {message}")]
    Azure {
        account: String,
        container: String,
        kind: AzureFailure,
        message: String,
    },
    #[error("blob {blob} failed verification after upload: {what}")]
    Verify { blob: String, what: String },
    /// The name is taken by a blob that is not this segment (another writer on the asset).
    #[error("blob {blob} already exists and is not this segment ({why}); it was left as is")]
    Conflict { blob: String, why: String },
    #[error("blob {blob} does not exist in the asset store")]
    BlobNotFound { blob: String },
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// Why an Azure request failed, in the terms an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureFailure {
    /// 403: wrong account key, expired or under-privileged SAS.
    Authentication,
    /// The container does not exist and creating it is not allowed.
    ContainerMissing,
    /// Connection refused, DNS failure, timeout: the store could not be reached.
    Unreachable,
    /// A conditional request lost a race: someone else wrote the same blob meanwhile.
    ConditionFailed,
    /// Any other service answer.
    Service,
}

impl fmt::Display for AzureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AzureFailure::Authentication => "authentication failed (check the account key or SAS)",
            AzureFailure::ContainerMissing => "container not found",
            AzureFailure::Unreachable => "endpoint unreachable",
            AzureFailure::ConditionFailed => "blob changed concurrently",
            AzureFailure::Service => "request failed",
        })
    }
}

impl UploadError {
    /// A short stable code for diagnostics events.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Config(_) => "Configuration",
            UploadError::ReadSegment { .. } | UploadError::SegmentSize { .. } => "CacheRead",
            UploadError::Local { .. } => "LocalStoreIo",
            UploadError::Azure { kind, .. } => match kind {
                AzureFailure::Authentication => "AuthenticationFailed",
                AzureFailure::ContainerMissing => "ContainerNotFound",
                AzureFailure::Unreachable => "EndpointUnreachable",
                AzureFailure::ConditionFailed => "ConditionNotMet",
                AzureFailure::Service => "StorageRequestFailed",
            },
            UploadError::Verify { .. } => "VerificationFailed",
            UploadError::Conflict { .. } => "ConditionNotMet",
            UploadError::BlobNotFound { .. } => "BlobNotFound",
            UploadError::Cache(_) => "CacheIndex",
        }
    }
}

/// The second of `t` as `yyyyMMddTHHmmssZ` (UTC), the time-ordered start of store names.
pub fn utc_stamp(t: Ticks90k) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(t.as_unix_secs())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// What the store records about one segment; written as blob metadata and read back to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFacts {
    pub asset: String,
    pub run: u64,
    pub sequence: u64,
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub codecs: String,
    /// File extension without the dot, e.g. `mp4`.
    pub extension: String,
}

impl SegmentFacts {
    /// The deterministic blob name `<asset>/<UTC start yyyyMMddTHHmmssZ>-r<run>-s<seq>.<ext>`.
    ///
    /// Fixed-width numbers make a lexicographic prefix listing return time order (ties within
    /// one second are ordered by run, then sequence), and a re-upload of the same segment after
    /// a crash lands on the same name, so it overwrites instead of duplicating.
    pub fn blob_name(&self) -> String {
        format!(
            "{}/{}-r{:010}-s{:010}.{}",
            self.asset,
            utc_stamp(self.start),
            self.run,
            self.sequence,
            self.extension
        )
    }

    /// Blob metadata (names are valid C# identifiers, values ASCII, as Azure requires), with the
    /// content's SHA-256 when the store computed one while sending.
    pub fn metadata(&self, sha256_hex: Option<&str>) -> BTreeMap<String, String> {
        let mut metadata = BTreeMap::from([
            ("asset".to_owned(), self.asset.clone()),
            ("run".to_owned(), self.run.to_string()),
            ("sequence".to_owned(), self.sequence.to_string()),
            ("start".to_owned(), self.start.0.to_string()),
            ("end".to_owned(), self.end.0.to_string()),
            ("startutc".to_owned(), self.start.to_rfc3339_millis()),
            ("endutc".to_owned(), self.end.to_rfc3339_millis()),
            ("codec".to_owned(), self.codecs.clone()),
        ]);
        if let Some(sha) = sha256_hex {
            metadata.insert("sha256".to_owned(), sha.to_owned());
        }
        metadata
    }

    /// Why a blob already stored under this segment's name, with `metadata`, is another
    /// segment: `None` when asset, run, sequence and span match (and the content hash, when
    /// `sha256_hex` is given). Only then may an upload replace it: a
    /// re-upload after a crash lands here, another writer on the same asset name does not.
    pub fn differs_from(
        &self,
        metadata: &BTreeMap<String, String>,
        sha256_hex: Option<&str>,
    ) -> Option<String> {
        let ours = self.metadata(sha256_hex);
        let keys = ["asset", "run", "sequence", "start", "end", "sha256"];
        keys.into_iter()
            .filter(|k| *k != "sha256" || sha256_hex.is_some())
            .find(|k| metadata.get(*k) != ours.get(*k))
            .map(|k| match metadata.get(k) {
                Some(theirs) if k == "sha256" => {
                    format!(
                        "its content differs: sha256 {theirs}, this segment's {}",
                        ours[k]
                    )
                }
                Some(theirs) => format!("its {k} is {theirs}, this segment's is {}", ours[k]),
                None => format!("it has no {k} metadata"),
            })
    }
}

/// A blob as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    pub name: String,
    pub bytes: u64,
    pub metadata: BTreeMap<String, String>,
}

impl StoredBlob {
    /// Start and end instants from the metadata, if the blob is a segment mediagraph wrote.
    pub fn span(&self) -> Option<(Ticks90k, Ticks90k)> {
        let start = self.metadata.get("start")?.parse().ok()?;
        let end = self.metadata.get("end")?.parse().ok()?;
        Some((Ticks90k(start), Ticks90k(end)))
    }
}

/// What an asset holds in a time range, and whether it holds any blob at all: an empty range
/// of a recorded asset is a hole, of an asset without blobs an unknown asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InRange<T> {
    pub items: Vec<T>,
    pub asset_has_blobs: bool,
}

impl<T> InRange<T> {
    /// The answer for an asset without blobs.
    pub fn no_asset() -> Self {
        Self {
            items: Vec::new(),
            asset_has_blobs: false,
        }
    }
}

/// One segment to upload: its facts, the sealed file (read, never modified) and its length.
pub struct SegmentUpload {
    pub facts: SegmentFacts,
    pub file: std::fs::File,
    pub bytes: u64,
}

/// Where assets live. Implementations write a blob so that it is either absent or complete
/// and verified, never visible half-written.
#[async_trait]
pub trait AssetStore: Send + Sync {
    /// A human-readable location for logs and events (never contains secrets).
    fn location(&self) -> String;

    /// Makes sure the store can accept writes (e.g. the container exists or is created).
    async fn prepare(&self) -> Result<(), UploadError>;

    /// Uploads one segment under its deterministic name, overwriting an earlier attempt, and
    /// verifies what the store kept before returning.
    async fn put_segment(&self, segment: SegmentUpload) -> Result<StoredBlob, UploadError>;

    /// The blobs of one asset, in name order (= time order). Gap records are not blobs.
    async fn list_asset(&self, asset: &str) -> Result<Vec<StoredBlob>, UploadError>;

    /// The blobs of `asset` whose media overlaps `[from, to)`, by start, found without reading
    /// every blob of the asset (the local store's index, Azure's time-ordered name prefixes).
    async fn list_range(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<StoredBlob>, UploadError>;

    /// As [`AssetStore::list_range`], only each blob's `(start, end)`: for questions over
    /// long spans (availableMedia by year), where names and metadata would be most of the cost.
    async fn spans(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<InRange<(Ticks90k, Ticks90k)>, UploadError>;

    /// A cache whose budget (bytes) lives on the file system `device` while its uploader runs:
    /// a store on the same file system keeps that much free (the local store's retention).
    fn hold_room(&self, _key: &str, _device: u64, _budget: u64) {}

    /// The cache of `key` no longer needs its room.
    fn release_room(&self, _key: &str) {}

    /// Keeps gap records of `asset` ([`gaps`]). Idempotent: a gap already stored (this very
    /// gap: the record's name is the gap) is left as it is.
    async fn put_gaps(&self, asset: &str, gaps: &[Gap]) -> Result<(), UploadError>;

    /// The gap records of `asset` that touch `[from, to)` ([`gaps::overlaps`]), by start.
    async fn list_gaps(
        &self,
        asset: &str,
        from: Ticks90k,
        to: Ticks90k,
    ) -> Result<Vec<Gap>, UploadError>;

    /// The content of one blob (segments are bounded by segmentLength, so this fits memory);
    /// for checking what the store holds. Serving uses [`AssetStore::read_blob_range`].
    async fn read_blob(&self, name: &str) -> Result<Vec<u8>, UploadError>;

    /// The length of one blob in bytes; [`UploadError::BlobNotFound`] when it does not exist.
    async fn blob_len(&self, name: &str) -> Result<u64, UploadError>;

    /// Bytes `range` of one blob as a stream of chunks, so a reader holds one chunk at a time,
    /// never the whole blob; [`UploadError::BlobNotFound`] when it does not exist. The range
    /// must lie within the blob (callers check it against [`AssetStore::blob_len`]).
    async fn read_blob_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, UploadError>;
}

/// Chunks of a blob being read ([`AssetStore::read_blob_range`]).
pub type ByteStream = Pin<Box<dyn futures::Stream<Item = Result<Bytes, UploadError>> + Send>>;

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(start_secs: i64, run: u64, sequence: u64) -> SegmentFacts {
        SegmentFacts {
            asset: "sampleAsset-CVR-1".into(),
            run,
            sequence,
            start: Ticks90k::from_secs(start_secs),
            end: Ticks90k::from_secs(start_secs + 30),
            codecs: "avc1.640028".into(),
            extension: "mp4".into(),
        }
    }

    #[test]
    fn blob_names_are_deterministic_and_sort_in_time_order() {
        // 2020-05-12T23:33:09Z
        let a = facts(1_589_326_389, 3, 7);
        assert_eq!(
            a.blob_name(),
            "sampleAsset-CVR-1/20200512T233309Z-r0000000003-s0000000007.mp4"
        );
        assert_eq!(a.blob_name(), facts(1_589_326_389, 3, 7).blob_name());
        let mut names = [
            facts(1_589_326_449, 3, 9).blob_name(),
            facts(1_589_326_389, 4, 0).blob_name(),
            facts(1_589_326_389, 3, 7).blob_name(),
            facts(1_589_326_419, 3, 8).blob_name(),
        ];
        names.sort();
        let order: Vec<_> = names.iter().map(|n| &n[18..34]).collect();
        assert_eq!(
            order,
            [
                "20200512T233309Z",
                "20200512T233309Z",
                "20200512T233339Z",
                "20200512T233409Z"
            ]
        );
        assert!(
            names[0].contains("-r0000000003-"),
            "same second: earlier run first"
        );
    }

    #[test]
    fn metadata_round_trips_the_span() {
        let f = facts(1_000, 1, 2);
        let blob = StoredBlob {
            name: f.blob_name(),
            bytes: 5,
            metadata: f.metadata(Some("ab")),
        };
        assert_eq!(blob.span(), Some((f.start, f.end)));
        assert_eq!(blob.metadata["sha256"], "ab");
        assert!(!f.metadata(None).contains_key("sha256"));
    }
}
