//! The generated side of `wit/plugin.wit`'s shared `types` interface, generated once: the
//! bindings of the three worlds (segmenter, evictor, formatter) take these through `bindgen!`'s
//! `with`, so every WIT type has one Rust type and each host↔WIT conversion is written once,
//! here. The rest of the host speaks the mirrors in [`super::types`].

use super::types::{Codec, FrameInfo, MediaKind, Track};

mod generated {
    // A world that only imports `types`: nothing to call, just the shared type definitions.
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package mediagraph:host;
            world shared-types { import mediagraph:plugin/types@0.1.0; }
        ",
    });
}

pub use generated::mediagraph::plugin::types;

impl From<MediaKind> for types::MediaKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Video => Self::Video,
            MediaKind::Audio => Self::Audio,
        }
    }
}

impl From<Codec> for types::Codec {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::H264 => Self::H264,
            Codec::H265 => Self::H265,
            Codec::Aac => Self::Aac,
        }
    }
}

impl From<&Track> for types::Track {
    fn from(t: &Track) -> Self {
        Self {
            id: t.id,
            kind: t.kind.into(),
            codec: t.codec.into(),
            timescale: t.timescale,
            width: t.width,
            height: t.height,
            sample_rate: t.sample_rate,
            channels: t.channels,
            decoder_config: t.decoder_config.clone(),
        }
    }
}

impl From<&FrameInfo> for types::FrameInfo {
    fn from(f: &FrameInfo) -> Self {
        Self {
            track: f.track,
            kind: f.kind.into(),
            dts: f.dts.0,
            duration: f.duration,
            keyframe: f.keyframe,
            size: f.size,
        }
    }
}
