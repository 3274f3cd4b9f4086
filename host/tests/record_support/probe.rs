//! What ffprobe/ffmpeg say about recorded segments, and the acceptance checks built on it.

use std::path::Path;
use std::process::Command;

use super::*;

/// H.265 NAL unit types of an Annex-B byte stream, in order.
pub fn h265_nal_types(annex_b: &[u8]) -> Vec<u8> {
    annex_b
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| (w[3] >> 1) & 0x3f)
        .collect()
}

/// The first picture of a recorded segment's video, read back with ffmpeg as an Annex-B
/// stream: the NAL unit type of its first slice, and whether a decoder can start there
/// (H.264: IDR; H.265: IRAP = BLA, IDR, CRA). Unlike ffprobe's keyframe flag, which repeats
/// the recorder's own sync-sample marking, this reads the coded picture itself.
pub fn first_picture(path: &Path) -> (Option<u8>, bool) {
    let name = path.file_name().unwrap().to_string_lossy();
    let h265 = name.contains("hvc1") || name.contains("hev1");
    let bsf = if h265 {
        ["-bsf:v", "hevc_mp4toannexb", "-f", "hevc", "-"]
    } else {
        ["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"]
    };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-frames:v", "1"])
        .args(bsf)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let headers = out.stdout.windows(4).filter(|w| w[..3] == [0, 0, 1]);
    if h265 {
        let first = headers.map(|w| (w[3] >> 1) & 0x3f).find(|t| *t < 32);
        (first, first.is_some_and(|t| (16..=21).contains(&t)))
    } else {
        let first = headers.map(|w| w[3] & 0x1f).find(|t| (1..=5).contains(t));
        (first, first == Some(5))
    }
}

/// What ffprobe/ffmpeg say about one segment's video.
#[derive(Debug)]
pub struct Probe {
    /// (pts seconds, duration seconds, keyframe), in decode order.
    pub packets: Vec<(f64, f64, bool)>,
    /// Decode times (seconds) of the same packets.
    pub dts: Vec<f64>,
    pub decode_errors: String,
}

impl Probe {
    /// The earliest presentation time (with B-frames not the first packet's).
    pub fn first_pts(&self) -> f64 {
        self.packets
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min)
    }
    pub fn end_pts(&self) -> f64 {
        self.packets
            .iter()
            .map(|p| p.0 + p.1)
            .fold(f64::NEG_INFINITY, f64::max)
    }
    pub fn duration(&self) -> f64 {
        self.end_pts() - self.first_pts()
    }
}

pub fn probe(path: &Path) -> Probe {
    require("ffprobe", "ffmpeg");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,duration_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let (packets, dts): (Vec<(f64, f64, bool)>, Vec<f64>) = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                (
                    f.first()?.parse().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.contains('K'),
                ),
                f.get(1)?.parse::<f64>().ok()?,
            ))
        })
        .unzip();
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut decode_errors = String::from_utf8_lossy(&out.stderr).into_owned();
    decode_errors.push_str(&String::from_utf8_lossy(&dec.stderr));
    if !dec.status.success() {
        decode_errors.push_str("ffmpeg decode failed");
    }
    Probe {
        packets,
        dts,
        decode_errors,
    }
}

/// The acceptance checks of one recording: every segment decodes without errors and starts
/// with a keyframe; a segment followed by another of its run lasts segmentLength ± one GOP;
/// consecutive segments of a run leave no hole (media time and wall time) over one frame.
pub fn check_segments(
    segs: &[Seg],
    segment_secs: f64,
    gop_secs: f64,
    frame_secs: f64,
) -> Vec<Probe> {
    let probes: Vec<Probe> = segs.iter().map(|s| probe(&s.path)).collect();
    for (s, p) in segs.iter().zip(&probes) {
        assert!(
            p.decode_errors.trim().is_empty(),
            "{}: decode errors: {}",
            s.path.display(),
            p.decode_errors
        );
        assert!(
            !p.packets.is_empty(),
            "{}: no video packets",
            s.path.display()
        );
        assert!(
            p.packets[0].2,
            "{}: does not start with a keyframe",
            s.path.display()
        );
        let (first_type, decodable) = first_picture(&s.path);
        assert!(
            decodable,
            "{}: the first picture (NAL type {first_type:?}) is not a random access point",
            s.path.display()
        );
        let wall = (s.end - s.start) as f64 / TICKS as f64;
        assert!(
            (wall - p.duration()).abs() <= frame_secs + 0.01,
            "{}: index says {wall:.3} s, media {:.3} s",
            s.path.display(),
            p.duration()
        );
    }
    for i in 1..segs.len() {
        let (a, b) = (&segs[i - 1], &segs[i]);
        if a.run != b.run {
            continue;
        }
        let d = probes[i - 1].duration();
        assert!(
            (d - segment_secs).abs() <= gop_secs + 0.01,
            "{}: {d:.3} s is not {segment_secs} s ± one GOP ({gop_secs} s)",
            a.path.display()
        );
        let hole = probes[i].first_pts() - probes[i - 1].end_pts();
        assert!(
            hole.abs() <= frame_secs + 0.001,
            "media hole of {hole:.3} s between {} and {}",
            a.path.display(),
            b.path.display()
        );
        let wall_hole = (b.start - a.end) as f64 / TICKS as f64;
        assert!(
            wall_hole.abs() <= frame_secs,
            "wall-clock hole of {wall_hole:.3} s between {} and {}",
            a.path.display(),
            b.path.display()
        );
    }
    probes
}

/// The B-frame checks of one recording at `fps` with GOPs of `gop_frames`: decode times
/// strictly increase, presentation order differs from decode order (B-frames really were
/// there), never a decode time after its presentation time, and each segment holds
/// fps × its duration frames ± one GOP.
pub fn check_b_frames(segs: &[Seg], probes: &[Probe], fps: f64, gop_frames: usize) {
    for (i, (s, p)) in segs.iter().zip(probes).enumerate() {
        // A segment closed by the next one of its run holds every frame of its span exactly
        // (the run's last one may end on a picture whose B-frames the camera never sent).
        if segs.get(i + 1).is_some_and(|n| n.run == s.run) {
            assert_eq!(
                p.packets.len() as f64,
                (p.duration() * fps).round(),
                "{}: frames vs duration {:.3} s",
                s.path.display(),
                p.duration()
            );
        }
        let name = s.path.display();
        assert!(
            p.dts.windows(2).all(|w| w[1] > w[0]),
            "{name}: decode times not strictly increasing: {:?}",
            p.dts
        );
        for (i, (pkt, dts)) in p.packets.iter().zip(&p.dts).enumerate() {
            assert!(
                *dts <= pkt.0 + 1e-6,
                "{name}: packet {i} decoded at {dts} after its presentation {}",
                pkt.0
            );
        }
        // Stricter than check_segments: warnings too (e.g. "non monotonically increasing dts").
        let dec = Command::new("ffmpeg")
            .args(["-v", "warning", "-i"])
            .arg(&s.path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        let stderr = String::from_utf8_lossy(&dec.stderr);
        assert!(
            dec.status.success() && stderr.trim().is_empty(),
            "{name}: ffmpeg -v warning says: {stderr}"
        );
        let reordered = p.packets.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(
            reordered > 0,
            "{name}: presentation order equals decode order: no B-frames recorded"
        );
        // Constant frame rate in, exact timing out: every decode step is one frame.
        assert!(
            p.packets.iter().all(|k| (k.1 - 1.0 / fps).abs() < 1e-6),
            "{name}: frame durations {:?}",
            p.packets.iter().map(|k| k.1).collect::<Vec<_>>()
        );
        let expected = p.duration() * fps;
        let frames = p.packets.len() as f64;
        assert!(
            (frames - expected).abs() <= gop_frames as f64,
            "{name}: {frames} frames in {:.3} s at {fps} fps",
            p.duration()
        );
    }
}
