//! The media a test camera replays: an H.264 or H.265 Annex-B elementary stream split into
//! access units, and optionally an ADTS AAC stream split into raw AAC frames.
//!
//! Clips are parsed once at start-up; every session then shares them read-only. Elementary
//! streams carry no timestamps, so a clip must be in presentation order (no B-frames) and is
//! paced at a fixed frame rate chosen by the caller.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{CameraError, VideoCodec};

/// Bundled clips (see host/assets/camera/README.md for how they were made).
const BUNDLED_H264: &[u8] = include_bytes!("../../assets/camera/video.h264");
const BUNDLED_H265: &[u8] = include_bytes!("../../assets/camera/video.h265");
const BUNDLED_AAC: &[u8] = include_bytes!("../../assets/camera/audio.aac");

/// File names looked up in a `--clip DIR`.
pub const H264_FILE: &str = "video.h264";
pub const H265_FILE: &str = "video.h265";
pub const AAC_FILE: &str = "audio.aac";

/// One coded picture: its NAL units without start codes, in stream order.
#[derive(Debug)]
pub struct AccessUnit {
    pub nals: Vec<Bytes>,
    pub keyframe: bool,
}

#[derive(Debug)]
pub struct VideoClip {
    pub codec: VideoCodec,
    pub units: Vec<AccessUnit>,
    /// Parameter sets for the SDP, in order VPS (H.265 only), SPS, PPS.
    pub vps: Option<Bytes>,
    pub sps: Bytes,
    pub pps: Bytes,
}

#[derive(Debug)]
pub struct AudioClip {
    pub sample_rate: u32,
    pub channels: u8,
    /// ISO 14496-3 AudioSpecificConfig, for the SDP `config=` parameter.
    pub config: [u8; 2],
    /// Raw AAC frames (ADTS headers stripped), 1024 samples each.
    pub frames: Vec<Bytes>,
}

#[derive(Debug)]
pub struct Clip {
    pub video: VideoClip,
    pub audio: Option<AudioClip>,
}

impl Clip {
    /// Loads the bundled clip, or the files of `dir` when given.
    pub fn load(codec: VideoCodec, audio: bool, dir: Option<&Path>) -> Result<Self, CameraError> {
        let (video_name, bundled_video) = match codec {
            VideoCodec::H264 => (H264_FILE, BUNDLED_H264),
            VideoCodec::H265 => (H265_FILE, BUNDLED_H265),
        };
        let read = |name: &str, bundled: &'static [u8]| -> Result<(Bytes, PathBuf), CameraError> {
            match dir {
                None => Ok((
                    Bytes::from_static(bundled),
                    PathBuf::from(format!("<bundled>/{name}")),
                )),
                Some(d) => {
                    let path = d.join(name);
                    let data = std::fs::read(&path).map_err(|e| CameraError::Clip {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    Ok((Bytes::from(data), path))
                }
            }
        };
        let (data, path) = read(video_name, bundled_video)?;
        let video = VideoClip::parse(codec, &data).map_err(|reason| CameraError::Clip {
            path: path.clone(),
            reason,
        })?;
        let audio = if audio {
            let (data, path) = read(AAC_FILE, BUNDLED_AAC)?;
            Some(AudioClip::parse(&data).map_err(|reason| CameraError::Clip { path, reason })?)
        } else {
            None
        };
        Ok(Self { video, audio })
    }
}

/// Splits an Annex-B byte stream at its start codes (3 or 4 bytes) into NAL units.
fn split_annex_b(data: &Bytes) -> Vec<Bytes> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // Trailing zero bytes belong to the next (4-byte) start code, not to this NAL.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(data.slice(s..end));
        }
    }
    nals
}

/// What the access-unit splitter needs to know about one NAL unit.
struct NalClass {
    /// A picture's slice data.
    vcl: bool,
    /// The first slice of a new picture.
    first_slice: bool,
    /// A non-VCL NAL that may only appear before the first slice of a picture.
    prefix: bool,
    keyframe: bool,
}

fn classify(codec: VideoCodec, nal: &[u8]) -> Option<NalClass> {
    match codec {
        VideoCodec::H264 => {
            let t = nal.first()? & 0x1f;
            let vcl = (1..=5).contains(&t);
            Some(NalClass {
                vcl,
                // first_mb_in_slice is ue(v); it is 0 exactly when its first bit is 1.
                first_slice: vcl && nal.get(1).is_some_and(|b| b & 0x80 != 0),
                prefix: matches!(t, 6..=9 | 14..=18),
                keyframe: t == 5,
            })
        }
        VideoCodec::H265 => {
            let t = (nal.first()? >> 1) & 0x3f;
            let vcl = t < 32;
            Some(NalClass {
                vcl,
                // first_slice_segment_in_pic_flag is the first bit after the 2-byte header.
                first_slice: vcl && nal.get(2).is_some_and(|b| b & 0x80 != 0),
                prefix: matches!(t, 32..=35 | 39 | 41..=44 | 48..=55),
                keyframe: (16..=21).contains(&t),
            })
        }
    }
}

fn nal_type(codec: VideoCodec, nal: &[u8]) -> u8 {
    match codec {
        VideoCodec::H264 => nal[0] & 0x1f,
        VideoCodec::H265 => (nal[0] >> 1) & 0x3f,
    }
}

impl VideoClip {
    pub fn parse(codec: VideoCodec, data: &Bytes) -> Result<Self, String> {
        let (vps_type, sps_type, pps_type) = match codec {
            VideoCodec::H264 => (None, 7, 8),
            VideoCodec::H265 => (Some(32), 33, 34),
        };
        let mut units = Vec::new();
        let mut current: Vec<Bytes> = Vec::new();
        let mut current_has_vcl = false;
        let mut current_key = false;
        let (mut vps, mut sps, mut pps) = (None, None, None);
        for nal in split_annex_b(data) {
            let Some(class) = classify(codec, &nal) else {
                continue;
            };
            let ty = nal_type(codec, &nal);
            if Some(ty) == vps_type && vps.is_none() {
                vps = Some(nal.clone());
            } else if ty == sps_type && sps.is_none() {
                sps = Some(nal.clone());
            } else if ty == pps_type && pps.is_none() {
                pps = Some(nal.clone());
            }
            let starts_new = current_has_vcl && (class.prefix || class.first_slice);
            if starts_new {
                units.push(AccessUnit {
                    nals: std::mem::take(&mut current),
                    keyframe: current_key,
                });
                current_has_vcl = false;
                current_key = false;
            }
            current_has_vcl |= class.vcl;
            current_key |= class.keyframe;
            current.push(nal);
        }
        if current_has_vcl {
            units.push(AccessUnit {
                nals: current,
                keyframe: current_key,
            });
        }
        let codec_name = match codec {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
        };
        let sps =
            sps.ok_or_else(|| format!("no {codec_name} SPS found (not an Annex-B stream?)"))?;
        let pps = pps.ok_or_else(|| format!("no {codec_name} PPS found"))?;
        if vps_type.is_some() && vps.is_none() {
            return Err("no H.265 VPS found".into());
        }
        if sps.len() < 4 {
            return Err("SPS too short".into());
        }
        match units.first() {
            None => return Err(format!("no {codec_name} pictures found")),
            Some(u) if !u.keyframe => {
                return Err("the clip must start with a keyframe (IDR/IRAP)".into());
            }
            Some(_) => {}
        }
        Ok(Self {
            codec,
            units,
            vps,
            sps,
            pps,
        })
    }

    /// H.264 `profile-level-id`: profile_idc, constraint flags and level_idc from the SPS.
    pub fn profile_level_id(&self) -> String {
        format!("{:02X}{:02X}{:02X}", self.sps[1], self.sps[2], self.sps[3])
    }
}

const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AudioClip {
    pub fn parse(data: &Bytes) -> Result<Self, String> {
        let mut frames = Vec::new();
        let mut format = None;
        let mut pos = 0;
        while pos < data.len() {
            let h = data
                .get(pos..pos + 7)
                .ok_or_else(|| format!("truncated ADTS header at byte {pos}"))?;
            if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
                return Err(format!("no ADTS sync word at byte {pos}"));
            }
            let protection_absent = h[1] & 0x01 != 0;
            let object_type = ((h[2] >> 6) & 0x03) + 1;
            let freq_index = (h[2] >> 2) & 0x0f;
            let channels = ((h[2] & 0x01) << 2) | (h[3] >> 6);
            let frame_len = (usize::from(h[3] & 0x03) << 11)
                | (usize::from(h[4]) << 3)
                | usize::from(h[5] >> 5);
            let raw_blocks = h[6] & 0x03;
            let header_len = if protection_absent { 7 } else { 9 };
            if raw_blocks != 0 {
                return Err(format!(
                    "ADTS frame at byte {pos} holds several raw data blocks (unsupported)"
                ));
            }
            if frame_len <= header_len || pos + frame_len > data.len() {
                return Err(format!("bad ADTS frame length {frame_len} at byte {pos}"));
            }
            let this = (object_type, freq_index, channels);
            match format {
                None => format = Some(this),
                Some(f) if f != this => {
                    return Err(format!("ADTS format changes at byte {pos}"));
                }
                Some(_) => {}
            }
            frames.push(data.slice(pos + header_len..pos + frame_len));
            pos += frame_len;
        }
        let (object_type, freq_index, channels) = format.ok_or("no ADTS frames found")?;
        let sample_rate = *AAC_SAMPLE_RATES
            .get(usize::from(freq_index))
            .ok_or_else(|| format!("reserved ADTS sampling frequency index {freq_index}"))?;
        if channels == 0 {
            return Err("ADTS channel configuration 0 (in-band PCE) is unsupported".into());
        }
        let config = [
            (object_type << 3) | (freq_index >> 1),
            ((freq_index & 0x01) << 7) | (channels << 3),
        ];
        Ok(Self {
            sample_rate,
            channels,
            config,
            frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_h264_clip_has_one_keyframe_per_second() {
        let clip = Clip::load(VideoCodec::H264, true, None).unwrap();
        assert_eq!(clip.video.units.len(), 150);
        let keys: Vec<usize> = (0..clip.video.units.len())
            .filter(|&i| clip.video.units[i].keyframe)
            .collect();
        assert_eq!(keys, vec![0, 25, 50, 75, 100, 125]);
        assert_eq!(clip.video.profile_level_id(), "4D401E");
        let audio = clip.audio.unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (48000, 1));
        // AAC-LC (2), 48 kHz (index 3), mono.
        assert_eq!(audio.config, [0x11, 0x88]);
        assert!(audio.frames.len() > 280);
    }

    #[test]
    fn bundled_h265_clip_parses() {
        let clip = Clip::load(VideoCodec::H265, false, None).unwrap();
        assert_eq!(clip.video.units.len(), 150);
        assert!(clip.video.vps.is_some());
        assert_eq!(clip.video.units.iter().filter(|u| u.keyframe).count(), 6);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let err = VideoClip::parse(VideoCodec::H264, &Bytes::from_static(b"hello")).unwrap_err();
        assert!(err.contains("SPS"), "{err}");
        let err = AudioClip::parse(&Bytes::from_static(b"hello world")).unwrap_err();
        assert!(err.contains("ADTS"), "{err}");
    }
}
