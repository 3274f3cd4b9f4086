//! Host-side mirrors of the types in `wit/plugin.wit`. The rest of the host speaks these; only
//! `plugin::wit` converts them to and from the generated bindings.

use crate::time::Ticks90k;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
    Aac,
}

/// One elementary stream of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// 1-based, unique within a recording.
    pub id: u32,
    pub kind: MediaKind,
    pub codec: Codec,
    /// Units per second of this track's sample times (90000 for video, the sample rate for AAC).
    pub timescale: u32,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u32,
    /// Body of `avcC` / `hvcC`, or the AAC AudioSpecificConfig.
    pub decoder_config: Vec<u8>,
}

/// What a segmenter sees of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub track: u32,
    pub kind: MediaKind,
    /// Wall-clock decode time.
    pub dts: Ticks90k,
    /// 90 kHz ticks.
    pub duration: u32,
    pub keyframe: bool,
    pub size: u32,
}

/// Where a frame goes, as decided by the segmenter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append to the current fragment.
    None,
    /// Close the current fragment; this frame starts the next one.
    Fragment,
    /// Close the current segment; this frame starts the next one.
    Segment,
}

/// The segmenter's configuration, from the sink's properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// The sink's segmentLength in 90 kHz ticks.
    pub segment_length: u64,
    /// Upper bound for one fragment in 90 kHz ticks.
    pub max_fragment: u64,
}

impl SegmenterConfig {
    /// ~2 s fragments: a crash loses at most that much.
    pub const DEFAULT_MAX_FRAGMENT: u64 = 2 * 90_000;

    pub fn new(segment_length_ticks: u64) -> Self {
        Self {
            segment_length: segment_length_ticks,
            max_fragment: Self::DEFAULT_MAX_FRAGMENT,
        }
    }
}

/// One sample handed to a formatter; its payload stays in the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub track: u32,
    /// In the track's timescale, counted from the start of the recording run.
    pub decode_time: u64,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: i32,
    pub duration: u32,
    pub keyframe: bool,
    pub size: u32,
}

/// A byte range of one sample's payload; `sample` indexes the samples passed to `fragment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadRange {
    pub sample: u32,
    pub offset: u32,
    pub length: u32,
}

/// One piece of a formatter's plan, written in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    Payload(PayloadRange),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatInfo {
    /// File extension without the dot, e.g. `mp4`.
    pub extension: String,
    pub content_type: String,
}

/// One cache entry as an evictor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    pub id: u64,
    pub start: Ticks90k,
    pub end: Ticks90k,
    pub bytes: u64,
    pub uploaded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// localMediaCacheMaximumSizeMiB in bytes.
    pub limit_bytes: u64,
    /// Bytes the cache holds now, the open segment included.
    pub used_bytes: u64,
    /// Bytes about to be written that must fit.
    pub incoming_bytes: u64,
}

impl Budget {
    /// Bytes that must be freed for the incoming bytes to fit.
    pub fn excess(&self) -> u64 {
        (self.used_bytes.saturating_add(self.incoming_bytes)).saturating_sub(self.limit_bytes)
    }
}
