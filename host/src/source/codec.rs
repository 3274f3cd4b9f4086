//! The codec side of a session: which tracks to record, which access units are keyframes,
//! and the codec parameters each track's samples need.

use bytes::Bytes;
use retina::codec::{ParametersRef, VideoParametersCodec};

use super::{SourceConfig, TrackCodec, TrackParams};
use crate::time::ClockRate;

/// A track chosen for recording: retina stream index plus its codec.
pub(super) struct Chosen {
    pub(super) stream: usize,
    pub(super) codec: TrackCodec,
}

/// What the recorder can record, for diagnostics.
pub(super) const SUPPORTED: &str = "H.264 or H.265 video, AAC audio";

/// Picks the first H.264/H.265 video stream and, if wanted, the first AAC audio stream; also
/// returns the wanted media streams whose codec cannot be recorded (audio counts only when
/// the sink selects audio).
pub(super) fn choose_tracks<'a>(
    streams: &'a [retina::client::Stream],
    cfg: &SourceConfig,
) -> (Vec<Chosen>, Vec<(usize, &'a retina::client::Stream)>) {
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut unsupported = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let enc = s.encoding_name().to_ascii_lowercase();
        let codec = match (s.media(), enc.as_str()) {
            ("video", "h264") => Some(TrackCodec::H264),
            ("video", "h265") => Some(TrackCodec::H265),
            ("audio", "mpeg4-generic") => Some(TrackCodec::Aac),
            _ => None,
        };
        match codec {
            Some(TrackCodec::Aac) if !cfg.audio => {}
            Some(c)
                if chosen
                    .iter()
                    .any(|x| (x.codec == TrackCodec::Aac) == (c == TrackCodec::Aac)) => {}
            Some(c) => chosen.push(Chosen {
                stream: i,
                codec: c,
            }),
            None if s.media() == "video" || (s.media() == "audio" && cfg.audio) => {
                unsupported.push((i, s));
            }
            None => {}
        }
    }
    (chosen, unsupported)
}

/// `audio track 1 (PCMU, 8000 Hz)`: how diagnostics name an SDP media stream.
pub(super) fn describe_track(i: usize, s: &retina::client::Stream) -> String {
    format!(
        "{} track {i} ({}, {} Hz)",
        s.media(),
        s.encoding_name().to_ascii_uppercase(),
        s.clock_rate_hz()
    )
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) is an IRAP picture: all
/// its VCL NAL units are BLA, IDR or CRA (types 16..=21). retina flags only IDR as a random
/// access point, but cameras with open GOPs (x265's default) send CRA keyframes, and a
/// decoder can start at any IRAP (it skips the RASL pictures that follow a leading CRA).
pub(super) fn h265_is_irap(mut au: &[u8]) -> bool {
    let mut vcl = false;
    while let Some((len, rest)) = au.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = rest.get(..len) else {
            return false; // malformed framing: do not start a segment here
        };
        if let Some(&header) = nal.first() {
            let t = (header >> 1) & 0x3f;
            if t < 32 {
                if !(16..=21).contains(&t) {
                    return false;
                }
                vcl = true;
            }
        }
        au = &rest[len..];
    }
    vcl
}

pub(super) fn params_of(stream: &retina::client::Stream, codec: TrackCodec) -> Option<TrackParams> {
    match stream.parameters()? {
        ParametersRef::Video(v) => {
            let (width, height) = v.pixel_dimensions();
            let codec = match v.codec_params() {
                VideoParametersCodec::H264 { .. } => TrackCodec::H264,
                VideoParametersCodec::H265 { .. } => TrackCodec::H265,
                _ => return None,
            };
            Some(TrackParams {
                codec,
                clock_rate: ClockRate::new(stream.clock_rate_hz())?,
                width,
                height,
                sample_rate: 0,
                channels: 0,
                decoder_config: Bytes::copy_from_slice(v.extra_data()),
                rfc6381: v.rfc6381_codec().to_owned(),
            })
        }
        ParametersRef::Audio(a) if codec == TrackCodec::Aac => Some(TrackParams {
            codec,
            clock_rate: ClockRate::new(a.clock_rate())?,
            width: 0,
            height: 0,
            sample_rate: a.clock_rate(),
            channels: u32::from(a.channels().get()),
            decoder_config: Bytes::copy_from_slice(a.extra_data()),
            rfc6381: a.rfc6381_codec().unwrap_or("mp4a.40.2").to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4-byte length-prefixed NAL units with the given H.265 types (2-byte header + 1 byte).
    fn h265_au(types: &[u8]) -> Vec<u8> {
        types
            .iter()
            .flat_map(|t| [0, 0, 0, 3, t << 1, 1, 0xaf])
            .collect()
    }

    #[test]
    fn h265_irap_pictures_are_keyframes_whatever_their_type() {
        // BLA_W_LP, BLA_N_LP, IDR_W_RADL, IDR_N_LP, CRA, each after an AUD and prefix SEI.
        for t in [16, 18, 19, 20, 21] {
            assert!(h265_is_irap(&h265_au(&[35, 39, t])), "type {t}");
            assert!(h265_is_irap(&h265_au(&[t, t])), "two slices of type {t}");
        }
        // TRAIL_R, RASL_N, RADL_R, reserved IRAP 22: not a place to start decoding here.
        for t in [1, 8, 7, 22] {
            assert!(!h265_is_irap(&h265_au(&[35, t])), "type {t}");
        }
        assert!(!h265_is_irap(&h265_au(&[35, 39])), "no picture");
        assert!(!h265_is_irap(&h265_au(&[21, 1])), "mixed picture");
        let mut torn = h265_au(&[21]);
        torn[3] = 200;
        assert!(!h265_is_irap(&torn), "length beyond the data");
    }
}
