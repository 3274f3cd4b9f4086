//! CMAF fragmented MP4 for H.264, H.265 and AAC tracks.
//!
//! `init` lays out `ftyp` + `moov` (one `trak` per track with an `avc1`/`avcC`, `hvc1`/`hvcC` or
//! `mp4a`/`esds` sample entry, and `mvex`/`trex`); `fragment` lays out `moof` (`mfhd`, then per
//! track a `traf` with `tfhd`, `tfdt` and a `trun` whose data offset points into the `mdat`) and
//! the `mdat` header, followed by references to the sample payloads, which the host splices in.
//! Every segment starts with its own `init`, so each file plays on its own.
//!
//! The payloads are expected as the host stores them: length-prefixed NAL units (4-byte
//! lengths, as the decoder configuration says) for video, raw AAC frames for audio.

use std::cell::RefCell;

use exports::mediagraph::plugin::formatter::{FormatInfo, Guest, PayloadRange, Piece, Sample};
use mediagraph::plugin::types::{Codec, MediaKind, Track};

wit_bindgen::generate!({ world: "formatter-plugin", path: "../../wit" });

/// Movie-level timescale of `mvhd`; only durations there use it, and they are all 0.
const MOVIE_TIMESCALE: u32 = 1000;
const IDENTITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// `sample_depends_on = 2`: decodable on its own.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

thread_local! {
    /// Track ids from the last `init`: fragments may only carry samples of these tracks.
    static TRACKS: RefCell<Option<Vec<u32>>> = const { RefCell::new(None) };
}

struct Cmaf;

impl Guest for Cmaf {
    fn info() -> FormatInfo {
        FormatInfo {
            extension: "mp4".into(),
            content_type: "video/mp4".into(),
        }
    }

    fn init(tracks: Vec<Track>) -> Result<Vec<Piece>, String> {
        validate_tracks(&tracks)?;
        let mut out = Vec::with_capacity(1024);
        ftyp(&mut out, &tracks);
        moov(&mut out, &tracks)?;
        TRACKS.with_borrow_mut(|t| *t = Some(tracks.iter().map(|t| t.id).collect()));
        Ok(vec![Piece::Bytes(out)])
    }

    fn fragment(sequence: u32, samples: Vec<Sample>) -> Result<Vec<Piece>, String> {
        let known = TRACKS
            .with_borrow(|t| t.clone())
            .ok_or("fragment before init")?;
        if samples.is_empty() {
            return Err("a fragment needs at least one sample".into());
        }
        // Tracks in the order of `init`; within a track, samples keep their decode order.
        let mut runs: Vec<(u32, Vec<usize>)> = known.iter().map(|&id| (id, Vec::new())).collect();
        for (i, s) in samples.iter().enumerate() {
            let run = runs
                .iter_mut()
                .find(|(id, _)| *id == s.track)
                .ok_or_else(|| {
                    format!(
                        "sample {i} belongs to track {}, which init did not declare",
                        s.track
                    )
                })?;
            run.1.push(i);
        }
        runs.retain(|(_, idx)| !idx.is_empty());
        Ok(moof_mdat(sequence, &samples, &runs))
    }
}

export!(Cmaf);

fn validate_tracks(tracks: &[Track]) -> Result<(), String> {
    if tracks.is_empty() {
        return Err("no tracks".into());
    }
    for (i, t) in tracks.iter().enumerate() {
        if t.id == 0 || tracks[..i].iter().any(|o| o.id == t.id) {
            return Err(format!("track id {} is 0 or repeated", t.id));
        }
        if t.timescale == 0 {
            return Err(format!("track {}: timescale is 0", t.id));
        }
        if t.decoder_config.is_empty() {
            return Err(format!("track {}: empty decoder configuration", t.id));
        }
        let kind_ok = match t.codec {
            Codec::H264 | Codec::H265 => t.kind == MediaKind::Video,
            Codec::Aac => t.kind == MediaKind::Audio,
        };
        if !kind_ok {
            let codec = match t.codec {
                Codec::H264 => "H.264",
                Codec::H265 => "H.265",
                Codec::Aac => "AAC",
            };
            let kind = if t.kind == MediaKind::Video {
                "video"
            } else {
                "audio"
            };
            return Err(format!("track {}: {codec} on a {kind} track", t.id));
        }
        if t.codec == Codec::Aac && (t.sample_rate == 0 || t.channels == 0) {
            return Err(format!(
                "track {}: AAC needs sample rate and channel count",
                t.id
            ));
        }
    }
    Ok(())
}

/// Appends a box: size, type, then whatever `body` writes.
fn bx(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (with version and flags).
fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(out, kind, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(out);
    });
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn ftyp(out: &mut Vec<u8>, tracks: &[Track]) {
    bx(out, b"ftyp", |out| {
        out.extend_from_slice(b"iso6");
        u32be(out, 0);
        out.extend_from_slice(b"iso6cmfcmp41");
        if tracks.iter().any(|t| t.codec == Codec::H264) {
            out.extend_from_slice(b"avc1");
        }
    });
}

fn moov(out: &mut Vec<u8>, tracks: &[Track]) -> Result<(), String> {
    let next_track = tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1;
    let mut result = Ok(());
    bx(out, b"moov", |out| {
        full(out, b"mvhd", 0, 0, |out| {
            u32be(out, 0); // creation time
            u32be(out, 0); // modification time
            u32be(out, MOVIE_TIMESCALE);
            u32be(out, 0); // duration: unknown, fragments follow
            u32be(out, 0x0001_0000); // rate 1.0
            u16be(out, 0x0100); // volume 1.0
            out.extend_from_slice(&[0; 10]);
            IDENTITY_MATRIX.iter().for_each(|m| u32be(out, *m));
            out.extend_from_slice(&[0; 24]);
            u32be(out, next_track);
        });
        for t in tracks {
            if let Err(e) = trak(out, t) {
                result = Err(e);
            }
        }
        bx(out, b"mvex", |out| {
            for t in tracks {
                full(out, b"trex", 0, 0, |out| {
                    u32be(out, t.id);
                    u32be(out, 1); // sample description index
                    u32be(out, 0); // default duration
                    u32be(out, 0); // default size
                    u32be(out, 0); // default flags
                });
            }
        });
    });
    result
}

fn trak(out: &mut Vec<u8>, t: &Track) -> Result<(), String> {
    let video = t.kind == MediaKind::Video;
    let mut result = Ok(());
    bx(out, b"trak", |out| {
        // Flags: track enabled, in movie.
        full(out, b"tkhd", 0, 0x3, |out| {
            u32be(out, 0);
            u32be(out, 0);
            u32be(out, t.id);
            u32be(out, 0);
            u32be(out, 0); // duration
            out.extend_from_slice(&[0; 8]);
            u16be(out, 0); // layer
            u16be(out, 0); // alternate group
            u16be(out, if video { 0 } else { 0x0100 });
            u16be(out, 0);
            IDENTITY_MATRIX.iter().for_each(|m| u32be(out, *m));
            u32be(out, t.width << 16);
            u32be(out, t.height << 16);
        });
        bx(out, b"mdia", |out| {
            full(out, b"mdhd", 0, 0, |out| {
                u32be(out, 0);
                u32be(out, 0);
                u32be(out, t.timescale);
                u32be(out, 0);
                u16be(out, 0x55c4); // language "und"
                u16be(out, 0);
            });
            full(out, b"hdlr", 0, 0, |out| {
                u32be(out, 0);
                out.extend_from_slice(if video { b"vide" } else { b"soun" });
                out.extend_from_slice(&[0; 12]);
                out.extend_from_slice(if video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            bx(out, b"minf", |out| {
                if video {
                    full(out, b"vmhd", 0, 1, |out| out.extend_from_slice(&[0; 8]));
                } else {
                    full(out, b"smhd", 0, 0, |out| out.extend_from_slice(&[0; 4]));
                }
                bx(out, b"dinf", |out| {
                    full(out, b"dref", 0, 0, |out| {
                        u32be(out, 1);
                        full(out, b"url ", 0, 1, |_| {});
                    });
                });
                bx(out, b"stbl", |out| {
                    full(out, b"stsd", 0, 0, |out| {
                        u32be(out, 1);
                        result = sample_entry(out, t);
                    });
                    for empty in [b"stts", b"stsc", b"stco"] {
                        full(out, empty, 0, 0, |out| u32be(out, 0));
                    }
                    full(out, b"stsz", 0, 0, |out| {
                        u32be(out, 0);
                        u32be(out, 0);
                    });
                });
            });
        });
    });
    result
}

fn sample_entry(out: &mut Vec<u8>, t: &Track) -> Result<(), String> {
    match t.codec {
        Codec::H264 => visual_entry(out, b"avc1", b"avcC", t),
        Codec::H265 => visual_entry(out, b"hvc1", b"hvcC", t),
        Codec::Aac => return mp4a(out, t),
    }
    Ok(())
}

fn visual_entry(out: &mut Vec<u8>, kind: &[u8; 4], config: &[u8; 4], t: &Track) {
    bx(out, kind, |out| {
        out.extend_from_slice(&[0; 6]);
        u16be(out, 1); // data reference index
        out.extend_from_slice(&[0; 16]);
        u16be(out, t.width.min(u32::from(u16::MAX)) as u16);
        u16be(out, t.height.min(u32::from(u16::MAX)) as u16);
        u32be(out, 0x0048_0000); // 72 dpi
        u32be(out, 0x0048_0000);
        u32be(out, 0);
        u16be(out, 1); // frame count
        out.extend_from_slice(&[0; 32]); // compressor name
        u16be(out, 0x0018); // depth
        u16be(out, 0xffff); // pre-defined -1
        bx(out, config, |out| out.extend_from_slice(&t.decoder_config));
    });
}

fn mp4a(out: &mut Vec<u8>, t: &Track) -> Result<(), String> {
    let rate = u16::try_from(t.sample_rate).map_err(|_| {
        format!(
            "track {}: sample rate {} too high for mp4a",
            t.id, t.sample_rate
        )
    })?;
    let channels = u16::try_from(t.channels)
        .map_err(|_| format!("track {}: {} channels", t.id, t.channels))?;
    bx(out, b"mp4a", |out| {
        out.extend_from_slice(&[0; 6]);
        u16be(out, 1);
        out.extend_from_slice(&[0; 8]);
        u16be(out, channels);
        u16be(out, 16); // sample size
        u32be(out, 0);
        u32be(out, u32::from(rate) << 16);
        full(out, b"esds", 0, 0, |out| esds(out, t));
    });
    Ok(())
}

/// The MPEG-4 elementary stream descriptor carrying the AudioSpecificConfig.
fn esds(out: &mut Vec<u8>, t: &Track) {
    let mut dsi = Vec::new();
    descriptor(&mut dsi, 0x05, &t.decoder_config);
    let mut dcd = vec![0x40, 0x15, 0, 0, 0]; // AAC, audio stream, buffer size 0
    dcd.extend_from_slice(&[0; 8]); // max and average bitrate unknown
    dcd.extend_from_slice(&dsi);
    let mut es = Vec::new();
    es.extend_from_slice(&(t.id as u16).to_be_bytes());
    es.push(0);
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]); // SLConfig: predefined MP4
    descriptor(out, 0x03, &es);
}

fn descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    let len = body.len() as u32;
    // Four-byte expandable size, the form most muxers write.
    out.extend_from_slice(&[
        0x80 | ((len >> 21) & 0x7f) as u8,
        0x80 | ((len >> 14) & 0x7f) as u8,
        0x80 | ((len >> 7) & 0x7f) as u8,
        (len & 0x7f) as u8,
    ]);
    out.extend_from_slice(body);
}

/// `moof` + `mdat` header as bytes, then one payload reference per sample, track by track.
fn moof_mdat(sequence: u32, samples: &[Sample], runs: &[(u32, Vec<usize>)]) -> Vec<Piece> {
    let mut moof = Vec::with_capacity(64 + samples.len() * 16);
    let mut offset_slots = Vec::with_capacity(runs.len());
    bx(&mut moof, b"moof", |out| {
        full(out, b"mfhd", 0, 0, |out| u32be(out, sequence));
        for (track, idx) in runs {
            bx(out, b"traf", |out| {
                // default-base-is-moof: data offsets count from the start of this moof.
                full(out, b"tfhd", 0, 0x02_0000, |out| u32be(out, *track));
                full(out, b"tfdt", 1, 0, |out| {
                    out.extend_from_slice(&samples[idx[0]].decode_time.to_be_bytes())
                });
                // Version 1: signed composition offsets. Flags: data offset, per-sample
                // duration, size, flags and composition offset.
                full(out, b"trun", 1, 0x0f01, |out| {
                    u32be(out, idx.len() as u32);
                    offset_slots.push(out.len());
                    u32be(out, 0);
                    for &i in idx {
                        let s = &samples[i];
                        u32be(out, s.duration);
                        u32be(out, s.size);
                        u32be(
                            out,
                            if s.keyframe {
                                SYNC_SAMPLE_FLAGS
                            } else {
                                NON_SYNC_SAMPLE_FLAGS
                            },
                        );
                        out.extend_from_slice(&s.composition_offset.to_be_bytes());
                    }
                });
            });
        }
    });
    let payload: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let large = payload + 8 > u64::from(u32::MAX);
    let header_len = if large { 16 } else { 8 };
    let mut data_offset = moof.len() as u64 + header_len;
    for ((_, idx), slot) in runs.iter().zip(offset_slots) {
        moof[slot..slot + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
        data_offset += idx.iter().map(|&i| u64::from(samples[i].size)).sum::<u64>();
    }
    if large {
        u32be(&mut moof, 1);
        moof.extend_from_slice(b"mdat");
        moof.extend_from_slice(&(payload + 16).to_be_bytes());
    } else {
        u32be(&mut moof, (payload + 8) as u32);
        moof.extend_from_slice(b"mdat");
    }
    let mut pieces = Vec::with_capacity(1 + samples.len());
    pieces.push(Piece::Bytes(moof));
    for (_, idx) in runs {
        for &i in idx {
            pieces.push(Piece::Payload(PayloadRange {
                sample: i as u32,
                offset: 0,
                length: samples[i].size,
            }));
        }
    }
    pieces
}
