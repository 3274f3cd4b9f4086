//! Decode timestamps for video that arrives in decode order carrying presentation times only.
//!
//! RTP timestamps are presentation times (PTS); a stream with B-frames sends pictures before
//! earlier-shown ones, so the decode time (DTS) MP4 needs has to be derived. With a reorder
//! depth N (no picture is preceded in decode order by more than N pictures shown after it:
//! H.264 `max_num_reorder_frames`, H.265 `sps_max_num_reorder_pics`), the DTS of the i-th
//! picture in decode order is the (i−N)-th smallest PTS of the run: after the i-th picture
//! arrives, exactly that value is the minimum of a heap holding the N+1 largest PTS seen so
//! far, it never exceeds the picture's own PTS (that PTS is in the heap) and, as long as the
//! depth holds, it only grows. The first N pictures get DTS spaced by one frame duration
//! below the first PTS, and the whole run (every track, so audio stays in sync) is shifted by
//! N frames so no time is negative. For a constant frame rate every decode step is exactly
//! one frame, and presentation minus decode time (the composition offset) is never negative.
//!
//! Owns: choosing the depth (declared by the stream, or learnt from the run's first GOP when
//! the stream declares none), holding a run's first frames until the timing is known, and
//! setting `decode_time`/`media_time` of every frame. Must not: do I/O or reorder frames (they
//! leave in arrival order, which is decode order).
//!
//! A depth of 0 (no B-frames) leaves timing exactly as received: decode time = presentation
//! time, no shift, and with a declared depth no frame is held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Frame;
use crate::time::{ClockRate, Duration90k};

/// The deepest reordering H.264 and H.265 allow (both bound it by the 16-picture decoded
/// picture buffer); a larger declared depth is a broken or hostile stream and is clamped.
pub const MAX_REORDER_DEPTH: u32 = 16;

/// Frames held at most while learning the depth of a stream that declares none (10 s at
/// 25 fps); a GOP longer than that is measured on its first part.
const LEARN_MAX_FRAMES: usize = 250;

/// Assigns decode times to one run's frames.
#[derive(Debug)]
pub struct Timeline {
    video: usize,
    clocks: Vec<ClockRate>,
    state: State,
    /// Frames whose reordering exceeded the depth (retimed or dropped), for the diagnostic.
    violations: u64,
}

#[derive(Debug)]
enum State {
    /// Holding frames until the depth and the frame duration are known.
    Learning {
        declared: Option<usize>,
        held: Vec<Frame>,
        video_held: usize,
    },
    Ready(Ready),
}

#[derive(Debug)]
struct Ready {
    depth: usize,
    /// First presentation time and frame duration, for the first `depth` pictures.
    first_pts: i64,
    frame: i64,
    /// The run's shift (depth × frame duration).
    shift: Duration90k,
    heap: BinaryHeap<Reverse<i64>>,
    pictures: usize,
    last_dts: Option<i64>,
}

impl Timeline {
    /// `video`: index of the run's video track; `clocks`: every track's clock rate (Hz);
    /// `declared`: the stream's reorder depth, if its parameter sets say.
    pub fn new(video: usize, clocks: Vec<ClockRate>, declared: Option<u32>) -> Self {
        let state = match declared {
            Some(0) => State::Ready(Ready::new(0, 0, 1)),
            d => State::Learning {
                declared: d.map(|d| d as usize),
                held: Vec::new(),
                video_held: 0,
            },
        };
        Self {
            video,
            clocks,
            state,
            violations: 0,
        }
    }

    /// Index of the run's video track.
    pub fn video(&self) -> usize {
        self.video
    }

    /// The depth in use once known.
    pub fn depth(&self) -> Option<usize> {
        match &self.state {
            State::Ready(r) => Some(r.depth),
            State::Learning { .. } => None,
        }
    }

    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Takes one frame (its `media_time` is the presentation time since the run's first
    /// keyframe) and appends to `out` the frames whose timing is now known, in arrival order.
    pub fn push(&mut self, f: Frame, out: &mut Vec<Frame>) {
        let is_video = f.track == self.video;
        let State::Learning {
            declared,
            held,
            video_held,
        } = &mut self.state
        else {
            return self.release(f, out);
        };
        // Without a declared depth the first GOP is measured: the next keyframe ends it.
        let ends_gop = declared.is_none() && is_video && f.keyframe && *video_held > 0;
        let pending = if ends_gop {
            Some(f)
        } else {
            *video_held += usize::from(is_video);
            held.push(f);
            // With a declared depth N, s_1 (the second smallest PTS) is final once N+2
            // pictures are in; it gives the frame duration.
            let known = match *declared {
                Some(n) => *video_held >= n + 2,
                None => *video_held >= LEARN_MAX_FRAMES,
            };
            if !known {
                return;
            }
            None
        };
        let declared = *declared;
        let held = std::mem::take(held);
        let pts: Vec<i64> = held
            .iter()
            .filter(|h| h.track == self.video)
            .map(|h| h.media_time)
            .collect();
        let depth = declared.unwrap_or_else(|| observed_depth(&pts));
        let mut sorted = pts;
        sorted.sort_unstable();
        let first = sorted.first().copied().unwrap_or(0);
        let frame = sorted.get(1).map_or(1, |s1| (s1 - first).max(1));
        let mut ready = Ready::new(depth, first, frame);
        // Video is on a 90 kHz clock in RTP (H.264/H.265), but convert to be exact anyway.
        ready.shift = self.clocks[self.video].to_90k(depth as i64 * frame);
        self.state = State::Ready(ready);
        for h in held.into_iter().chain(pending) {
            self.release(h, out);
        }
    }

    /// Sets the timing of a frame once the depth is known.
    fn release(&mut self, mut f: Frame, out: &mut Vec<Frame>) {
        let State::Ready(r) = &mut self.state else {
            unreachable!("release only runs when ready");
        };
        let shift = self.clocks[f.track].from_90k(r.shift);
        if f.track != self.video {
            f.media_time += shift;
            f.decode_time = f.media_time;
            out.push(f);
            return;
        }
        let pts = f.media_time;
        let dts = if r.depth == 0 {
            pts
        } else {
            r.heap.push(Reverse(pts));
            let i = r.pictures;
            if i < r.depth {
                r.first_pts - (r.depth - i) as i64 * r.frame
            } else {
                r.heap.pop().map_or(pts, |Reverse(min)| min)
            }
        };
        r.pictures += 1;
        let dts = match r.last_dts {
            Some(last) if dts <= last => {
                // Reordered deeper than the depth: the exact decode time is already taken.
                self.violations += 1;
                if pts > last {
                    last + 1 // decodable, timing approximate
                } else {
                    return; // shown before an earlier picture is decoded: cannot be placed
                }
            }
            _ => dts,
        };
        r.last_dts = Some(dts);
        f.media_time = pts + shift;
        f.decode_time = dts + shift;
        out.push(f);
    }
}

impl Ready {
    fn new(depth: usize, first_pts: i64, frame: i64) -> Self {
        Self {
            depth,
            first_pts,
            frame,
            shift: Duration90k::ZERO,
            heap: BinaryHeap::with_capacity(depth + 2),
            pictures: 0,
            last_dts: None,
        }
    }
}

/// The largest number of pictures that precede one in decode order and follow it in
/// presentation order.
fn observed_depth(pts: &[i64]) -> usize {
    pts.iter()
        .enumerate()
        .map(|(i, p)| pts[..i].iter().filter(|q| *q > p).count())
        .max()
        .unwrap_or(0)
}

/// The reorder depth an H.264 SPS (NAL unit with header) declares: VUI
/// `max_num_reorder_frames`; 0 for profiles without B slices (Baseline, Constrained Baseline)
/// or intra-only ones; `None` when the stream does not say.
pub fn h264_declared_depth(sps_nal: &[u8]) -> Option<u32> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{BitReader, decode_nal};
    let rbsp = decode_nal(sps_nal).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    if let Some(r) = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref())
    {
        return Some(r.max_num_reorder_frames);
    }
    let profile = u8::from(sps.profile_idc);
    // Baseline has no B slices; the High intra profiles (constraint_set3) no inter prediction.
    let intra = sps.constraint_flags.flag3() && matches!(profile, 100 | 110 | 122 | 244 | 44);
    (profile == 66 || intra).then_some(0)
}

/// `sps_max_num_reorder_pics` of the highest sub-layer of an H.265 SPS (NAL unit with its
/// 2-byte header); H.265 always declares it.
pub fn h265_declared_depth(sps_nal: &[u8]) -> Option<u32> {
    use h264_reader::rbsp::{BitRead, BitReader, ByteReader};
    let skip = std::num::NonZeroUsize::new(2)?;
    let mut r = BitReader::new(ByteReader::skipping_bytes(sps_nal, skip));
    r.skip(4, "sps_video_parameter_set_id").ok()?;
    let sub_layers: u32 = r.read::<u32>(3, "sps_max_sub_layers_minus1").ok()?;
    r.skip(1, "sps_temporal_id_nesting_flag").ok()?;
    // profile_tier_level(1, sps_max_sub_layers_minus1)
    r.skip(8 + 32 + 48 + 8, "general profile, tier and level")
        .ok()?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..sub_layers as usize {
        sub_profile[i] = r.read_bool("sub_layer_profile_present_flag").ok()?;
        sub_level[i] = r.read_bool("sub_layer_level_present_flag").ok()?;
    }
    if sub_layers > 0 {
        r.skip(2 * (8 - sub_layers), "reserved_zero_2bits").ok()?;
    }
    for i in 0..sub_layers as usize {
        if sub_profile[i] {
            r.skip(88, "sub_layer profile").ok()?;
        }
        if sub_level[i] {
            r.skip(8, "sub_layer_level_idc").ok()?;
        }
    }
    r.read_ue("sps_seq_parameter_set_id").ok()?;
    if r.read_ue("chroma_format_idc").ok()? == 3 {
        r.skip(1, "separate_colour_plane_flag").ok()?;
    }
    r.read_ue("pic_width_in_luma_samples").ok()?;
    r.read_ue("pic_height_in_luma_samples").ok()?;
    if r.read_bool("conformance_window_flag").ok()? {
        for _ in 0..4 {
            r.read_ue("conf_win_offset").ok()?;
        }
    }
    r.read_ue("bit_depth_luma_minus8").ok()?;
    r.read_ue("bit_depth_chroma_minus8").ok()?;
    r.read_ue("log2_max_pic_order_cnt_lsb_minus4").ok()?;
    let all_layers = r
        .read_bool("sps_sub_layer_ordering_info_present_flag")
        .ok()?;
    let first = if all_layers { 0 } else { sub_layers };
    let mut depth = None;
    for _ in first..=sub_layers {
        r.read_ue("sps_max_dec_pic_buffering_minus1").ok()?;
        depth = Some(r.read_ue("sps_max_num_reorder_pics").ok()?);
        r.read_ue("sps_max_latency_increase_plus1").ok()?;
    }
    depth
}

/// The reorder depth declared by a decoder configuration record (`avcC` or `hvcC` body):
/// that of its first SPS.
pub fn declared_depth(codec: super::TrackCodec, config: &[u8]) -> Option<u32> {
    match codec {
        super::TrackCodec::H264 => {
            // avcC: 5 bytes, then numOfSequenceParameterSets (low 5 bits), 2-byte length, SPS.
            let n = *config.get(5)? & 0x1f;
            let len = usize::from(u16::from_be_bytes([*config.get(6)?, *config.get(7)?]));
            (n > 0).then_some(())?;
            h264_declared_depth(config.get(8..8 + len)?)
        }
        super::TrackCodec::H265 => {
            // hvcC: 22 bytes, numOfArrays, then arrays of (type, count, (length, NAL)*).
            let arrays = *config.get(22)?;
            let mut at = 23;
            for _ in 0..arrays {
                let kind = *config.get(at)? & 0x3f;
                let count = u16::from_be_bytes([*config.get(at + 1)?, *config.get(at + 2)?]);
                at += 3;
                for _ in 0..count {
                    let len =
                        usize::from(u16::from_be_bytes([*config.get(at)?, *config.get(at + 1)?]));
                    let nal = config.get(at + 2..at + 2 + len)?;
                    if kind == 33 {
                        return h265_declared_depth(nal);
                    }
                    at += 2 + len;
                }
            }
            None
        }
        super::TrackCodec::Aac => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hz(rates: &[u32]) -> Vec<ClockRate> {
        rates.iter().map(|r| ClockRate::new(*r).unwrap()).collect()
    }
    use crate::time::Ticks90k;
    use bytes::Bytes;

    const FD: i64 = 3600; // 25 fps at 90 kHz

    fn frame(track: usize, pts: i64, keyframe: bool) -> Frame {
        Frame {
            track,
            media_time: pts,
            decode_time: 0,
            wall: Ticks90k(pts),
            keyframe,
            data: Bytes::new(),
            new_params: None,
        }
    }

    /// Presentation order indices of a GOP in decode order: `I P B B P B B …` (bframes=2).
    fn ipbb(gops: usize, gop: i64) -> Vec<(i64, bool)> {
        let mut v = Vec::new();
        for g in 0..gops as i64 {
            let base = g * gop;
            v.push((base, true));
            let mut k = 1;
            while k < gop {
                let p = (k + 2).min(gop - 1);
                v.push((base + p, false));
                for b in k..p {
                    v.push((base + b, false));
                }
                k = p + 1;
            }
        }
        v
    }

    fn run(t: &mut Timeline, frames: &[(i64, bool)]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &(i, key) in frames {
            t.push(frame(0, i * FD, key), &mut out);
        }
        out
    }

    fn check_exact(out: &[Frame], n: usize, count: usize) {
        assert_eq!(out.len(), count);
        for (i, f) in out.iter().enumerate() {
            // Decode step exactly one frame; shift of n frames; offset never negative.
            assert_eq!(f.decode_time, i as i64 * FD, "frame {i}");
            assert!(f.media_time >= f.decode_time, "frame {i}: {f:?}");
        }
        let min_pts = out.iter().map(|f| f.media_time).min().unwrap();
        assert_eq!(min_pts, n as i64 * FD);
    }

    #[test]
    fn declared_depth_gives_exact_decode_times_for_b_frames() {
        let frames = ipbb(3, 25);
        let mut t = Timeline::new(0, hz(&[90_000]), Some(1));
        let out = run(&mut t, &frames);
        check_exact(&out, 1, frames.len());
        assert_eq!(t.violations(), 0);
    }

    #[test]
    fn unknown_depth_is_learnt_from_the_first_gop() {
        let frames = ipbb(3, 25);
        let mut t = Timeline::new(0, hz(&[90_000]), None);
        let out = run(&mut t, &frames);
        assert_eq!(t.depth(), Some(1));
        check_exact(&out, 1, frames.len());
    }

    #[test]
    fn a_larger_declared_depth_is_still_exact_and_monotonic() {
        let frames = ipbb(2, 25);
        let mut t = Timeline::new(0, hz(&[90_000]), Some(4));
        let out = run(&mut t, &frames);
        check_exact(&out, 4, frames.len());
    }

    #[test]
    fn without_b_frames_timing_is_unchanged_and_nothing_is_held() {
        let mut t = Timeline::new(0, hz(&[90_000, 48_000]), Some(0));
        let mut out = Vec::new();
        t.push(frame(0, 0, true), &mut out);
        assert_eq!(out.len(), 1, "no frame is held");
        t.push(frame(1, 960, true), &mut out);
        t.push(frame(0, FD, false), &mut out);
        let times: Vec<(i64, i64)> = out.iter().map(|f| (f.media_time, f.decode_time)).collect();
        assert_eq!(times, [(0, 0), (960, 960), (FD, FD)]);
    }

    #[test]
    fn learnt_zero_depth_keeps_timing_unchanged() {
        let frames: Vec<(i64, bool)> = (0..60).map(|i| (i, i % 25 == 0)).collect();
        let mut t = Timeline::new(0, hz(&[90_000]), None);
        let out = run(&mut t, &frames);
        assert_eq!(t.depth(), Some(0));
        assert_eq!(out.len(), 60);
        assert!(out.iter().all(|f| f.media_time == f.decode_time));
    }

    #[test]
    fn audio_is_shifted_with_the_video() {
        let mut t = Timeline::new(0, hz(&[90_000, 48_000]), Some(1));
        let mut out = Vec::new();
        t.push(frame(0, 0, true), &mut out);
        t.push(frame(1, 0, true), &mut out);
        t.push(frame(0, 3 * FD, false), &mut out);
        t.push(frame(0, FD, false), &mut out);
        let audio: Vec<i64> = out
            .iter()
            .filter(|f| f.track == 1)
            .map(|f| f.media_time)
            .collect();
        assert_eq!(audio, [FD * 48_000 / 90_000]);
        assert!(out.iter().all(|f| f.decode_time <= f.media_time));
    }

    #[test]
    fn deeper_reordering_than_declared_never_breaks_monotonic_dts() {
        // Declared 0, but B-frames arrive: decode times stay increasing and ≤ PTS, the
        // unplaceable picture is dropped.
        let frames = ipbb(1, 10);
        let mut t = Timeline::new(0, hz(&[90_000]), Some(0));
        let out = run(&mut t, &frames);
        assert!(t.violations() > 0);
        for w in out.windows(2) {
            assert!(w[1].decode_time > w[0].decode_time, "{out:?}");
        }
        assert!(out.iter().all(|f| f.decode_time <= f.media_time));
    }

    #[test]
    fn observed_depth_counts_later_shown_predecessors() {
        assert_eq!(observed_depth(&[0, 3, 1, 2, 6, 4, 5]), 1);
        assert_eq!(observed_depth(&[0, 4, 2, 1, 3]), 2);
        assert_eq!(observed_depth(&[0, 1, 2]), 0);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn depth_is_read_from_real_parameter_sets() {
        // x264 `-bf 2` (Main, B-pyramid, VUI bitstream restriction), x264 without B-frames (Constrained
        // Baseline), x265 `bframes=3`: SPS NAL units as ffmpeg 7 writes them.
        let x264_b = hex("674d400deca0a0fd80880000030008000003019078a14cb0");
        let x264 = hex("6742c00dda0507ec0440000003004000000c83c50aa8");
        let x265_b = hex(
            "42010101600000030090000003000003003ca00a080f16595964932bc05a020000030002000003003210",
        );
        assert_eq!(h264_declared_depth(&x264_b), Some(2));
        assert_eq!(h264_declared_depth(&x264), Some(0));
        assert_eq!(h265_declared_depth(&x265_b), Some(2));
        assert_eq!(h264_declared_depth(&x264_b[..6]), None, "truncated");
    }

    /// An H.264 SPS NAL unit: `profile_idc`, 320×240, and no VUI.
    fn sps_without_vui(profile: u8) -> Vec<u8> {
        let mut bits = String::new();
        let ue = |bits: &mut String, v: u32| {
            let code = format!("{:b}", v + 1);
            bits.push_str(&"0".repeat(code.len() - 1));
            bits.push_str(&code);
        };
        bits.push_str(&format!("{profile:08b}{:08b}{:08b}", 0, 30)); // constraints, level 3
        ue(&mut bits, 0); // seq_parameter_set_id
        if profile == 100 {
            ue(&mut bits, 1); // chroma_format_idc 4:2:0
            ue(&mut bits, 0); // bit_depth_luma_minus8
            ue(&mut bits, 0); // bit_depth_chroma_minus8
            bits.push_str("00"); // qpprime_y_zero_transform_bypass, no scaling matrix
        }
        ue(&mut bits, 0); // log2_max_frame_num_minus4
        ue(&mut bits, 0); // pic_order_cnt_type 0
        ue(&mut bits, 2); // log2_max_pic_order_cnt_lsb_minus4
        ue(&mut bits, 2); // max_num_ref_frames
        bits.push('0'); // gaps_in_frame_num_value_allowed_flag
        ue(&mut bits, 19); // pic_width_in_mbs_minus1
        ue(&mut bits, 14); // pic_height_in_map_units_minus1
        bits.push_str("11"); // frame_mbs_only, direct_8x8_inference
        bits.push_str("00"); // no cropping, no VUI
        bits.push('1'); // rbsp_stop_one_bit
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut nal = vec![0x67];
        nal.extend(
            (0..bits.len())
                .step_by(8)
                .map(|i| u8::from_str_radix(&bits[i..i + 8], 2).unwrap()),
        );
        nal
    }

    #[test]
    fn an_sps_without_reorder_information_leaves_the_depth_to_be_learnt() {
        for profile in [77, 100] {
            let nal = sps_without_vui(profile);
            let rbsp = h264_reader::rbsp::decode_nal(&nal).unwrap();
            let parsed = h264_reader::nal::sps::SeqParameterSet::from_bits(
                h264_reader::rbsp::BitReader::new(&rbsp[..]),
            );
            assert!(parsed.is_ok(), "profile {profile}: {parsed:?}");
        }
        assert_eq!(h264_declared_depth(&sps_without_vui(77)), None, "Main");
        assert_eq!(h264_declared_depth(&sps_without_vui(100)), None, "High");
        assert_eq!(
            h264_declared_depth(&sps_without_vui(66)),
            Some(0),
            "Baseline"
        );
    }
}
