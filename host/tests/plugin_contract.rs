//! Contract tests: every default plugin runs through the real host (wasmtime sandbox, answer
//! checks) on synthetic inputs; format-cmaf's output is spliced with real H.264/H.265/AAC frames
//! made by ffmpeg and must decode with ffprobe/ffmpeg.

use std::path::Path;
use std::process::Command;

use mediagraph::events::{Body, EventBus};
use mediagraph::plugin::types::{
    Budget, CacheEntry, Codec, Decision, FrameInfo, MediaKind, Piece, Sample, SegmenterConfig,
    Track,
};
use mediagraph::plugin::{PluginError, PluginHost, PluginKind, Segmenter};
use mediagraph::time::{Duration90k, TICKS_PER_SECOND as SECOND, Ticks90k};
use mediagraph::topology::PluginLookup;

fn host() -> (PluginHost, EventBus) {
    let events = EventBus::new();
    (
        PluginHost::new(None, events.clone()).expect("plugin host"),
        events,
    )
}

/// The default segmenter (segmenter-gop) with PT30S, through the real host.
fn default_segmenter() -> (Segmenter, EventBus) {
    let (host, events) = host();
    let segmenter = host
        .segmenter(None, SegmenterConfig::new(30 * SECOND as u64), "/t/seg")
        .unwrap();
    (segmenter, events)
}

fn no_faults(events: &EventBus) {
    let faults: Vec<_> = events
        .recent()
        .into_iter()
        .filter(|e| matches!(e.body, Body::PluginFault(_)))
        .collect();
    assert!(faults.is_empty(), "unexpected plugin faults: {faults:?}");
}

fn video(i: i64, fps: i64, gop: i64) -> FrameInfo {
    FrameInfo {
        track: 1,
        kind: MediaKind::Video,
        dts: Ticks90k(1_700_000_000 * SECOND + i * SECOND / fps),
        duration: (SECOND / fps) as u32,
        keyframe: i % gop == 0,
        size: 1000,
    }
}

#[test]
fn segmenter_gop_cuts_segments_at_the_first_keyframe_after_segment_length() {
    let (mut s, events) = default_segmenter();
    assert_eq!(s.plugin(), "segmenter-gop");
    // 30 fps, a keyframe every 40 frames: 30 s (frame 900) falls on no keyframe.
    let mut segments = Vec::new();
    let mut fragments = Vec::new();
    for i in 0..(95 * 30) {
        match s.on_frame(&video(i, 30, 40)) {
            Decision::Segment => segments.push(i),
            Decision::Fragment => fragments.push(i),
            Decision::None => {}
        }
    }
    // The first keyframe at or after 900 is 920; after 920 + 900 it is 1840; then 2760.
    assert_eq!(segments, vec![0, 920, 1840, 2760]);
    assert!(
        fragments.iter().all(|i| i % 40 == 0),
        "fragments follow GOPs: {fragments:?}"
    );
    no_faults(&events);
}

#[test]
fn segmenter_gop_cuts_segments_on_time_when_the_clock_slews() {
    let (mut s, events) = default_segmenter();
    // 25 fps, 1 s GOPs, wall-clock timestamps slewed 500 ppm slow (the recorder's limit): the
    // keyframe at 30 s of media reads 29.985 s and must still close the segment, not the next.
    let segments: Vec<i64> = (0..25 * 95)
        .filter(|&i| {
            let mut f = video(i, 25, 25);
            f.dts = Ticks90k(1_700_000_000 * SECOND + i * (SECOND / 25) * 9995 / 10_000);
            s.on_frame(&f) == Decision::Segment
        })
        .collect();
    assert_eq!(segments, vec![0, 750, 1500, 2250]);
    no_faults(&events);
}

/// The first fragment cuts (frame numbers) the default segmenter makes for 25 fps video with a
/// keyframe every `gop` frames, after the segment cut at frame 0.
fn fragment_cuts(gop: i64, count: usize) -> Vec<i64> {
    let (mut s, events) = default_segmenter();
    let cuts = (0..25 * 25)
        .filter(|&i| s.on_frame(&video(i, 25, gop)) == Decision::Fragment)
        .take(count)
        .collect();
    no_faults(&events);
    cuts
}

#[test]
fn segmenter_gop_packs_whole_gops_into_fragments_of_at_most_max_fragment() {
    // Every fragment costs the recorder an fsync, so short GOPs share one: as many whole GOPs
    // as fit in 2 s (50 frames). Longer GOPs are cut at 2 s and again at their keyframe.
    assert_eq!(
        fragment_cuts(25, 4),
        vec![50, 100, 150, 200],
        "1 s GOPs: two each"
    );
    assert_eq!(
        fragment_cuts(20, 4),
        vec![40, 80, 120, 160],
        "0.8 s: two each"
    );
    assert_eq!(fragment_cuts(10, 3), vec![50, 100, 150], "0.4 s: five each");
    assert_eq!(fragment_cuts(30, 3), vec![30, 60, 90], "1.2 s: one each");
    assert_eq!(
        fragment_cuts(75, 4),
        vec![50, 75, 125, 150],
        "3 s: capped at 2 s"
    );
}

#[test]
fn segmenter_gop_caps_fragments_at_max_fragment_and_never_cuts_a_segment_on_audio() {
    let (mut s, events) = default_segmenter();
    // 25 fps video with 4 s GOPs, interleaved with audio frames (all sync samples).
    let mut cuts = Vec::new();
    for i in 0..(70 * 25) {
        let v = video(i, 25, 100);
        let d = s.on_frame(&v);
        if d != Decision::None {
            cuts.push((i, d));
        }
        let a = FrameInfo {
            track: 2,
            kind: MediaKind::Audio,
            dts: v.dts + Duration90k(1),
            duration: 1920,
            keyframe: true,
            size: 200,
        };
        assert_ne!(
            s.on_frame(&a),
            Decision::Segment,
            "segment cut on audio at frame {i}"
        );
    }
    let segments: Vec<i64> = cuts
        .iter()
        .filter(|c| c.1 == Decision::Segment)
        .map(|c| c.0)
        .collect();
    assert_eq!(
        segments,
        vec![0, 800, 1600],
        "keyframes every 4 s: 32 s and 64 s"
    );
    // Inside a GOP a fragment is cut every 2 s (50 frames), so no fragment exceeds 2 s.
    let mut last = 0;
    for (i, _) in &cuts[1..] {
        assert!(
            i - last <= 50,
            "fragment of {} frames ends at {i}",
            i - last
        );
        last = *i;
    }
    no_faults(&events);
}

fn entries() -> Vec<CacheEntry> {
    // Ids (the cache's recording order) deliberately disagree with the start times, as after
    // the wall clock stepped back; entries 7 and 9 are uploaded.
    [
        (7, 3, true),
        (3, 0, false),
        (9, 1, true),
        (4, 2, false),
        (5, 4, false),
    ]
    .iter()
    .map(|&(id, slot, uploaded)| CacheEntry {
        id,
        start: Ticks90k::from_secs(1_700_000_000 + 30 * slot),
        end: Ticks90k::from_secs(1_700_000_030 + 30 * slot),
        bytes: 100,
        uploaded,
    })
    .collect()
}

#[test]
fn evict_oldest_deletes_the_oldest_ids_first_until_the_incoming_bytes_fit() {
    let (host, events) = host();
    let mut e = host.evictor(None, "/t/cache").unwrap();
    assert_eq!(e.plugin(), "evict-oldest");
    let budget = Budget {
        limit_bytes: 500,
        used_bytes: 500,
        incoming_bytes: 150,
    };
    // Recording order, not wall-clock order: the clock may have stepped back.
    assert_eq!(e.choose(&entries(), budget), vec![3, 4]);
    let fits = Budget {
        incoming_bytes: 0,
        ..budget
    };
    assert_eq!(e.choose(&entries(), fits), Vec::<u64>::new());
    let everything = Budget {
        limit_bytes: 10,
        ..budget
    };
    assert_eq!(e.choose(&entries(), everything), vec![3, 4, 5, 7, 9]);
    no_faults(&events);
}

#[test]
fn evict_uploaded_first_spares_media_not_yet_uploaded() {
    let (host, events) = host();
    let mut e = host
        .evictor(Some("evict-uploaded-first"), "/t/cache")
        .unwrap();
    let budget = Budget {
        limit_bytes: 500,
        used_bytes: 500,
        incoming_bytes: 250,
    };
    // Uploaded, oldest id first: 7, 9; then the oldest not uploaded: 3.
    assert_eq!(e.choose(&entries(), budget), vec![7, 9, 3]);
    no_faults(&events);
}

#[test]
fn selection_errors_name_the_plugin_and_the_problem() {
    let (host, _) = host();
    assert_eq!(host.kind_of("format-cmaf"), Some(PluginKind::Formatter));
    assert_eq!(host.kind_of("nope"), None);
    let err = host.evictor(Some("nope"), "/t").err().unwrap();
    assert!(matches!(err, PluginError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("evict-oldest"),
        "lists the known evictors: {err}"
    );
    let err = host.evictor(Some("segmenter-gop"), "/t").err().unwrap();
    assert_eq!(
        err.to_string(),
        "plugin \"segmenter-gop\" is a segmenter, not a evictor"
    );
}

#[test]
fn a_plugin_directory_adds_plugins_with_manifests_and_reports_bad_ones() {
    // The plugin directory inside a temporary one: the artifact key is made beside it.
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir_in(root.path()).unwrap();
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("plugins/target/wasm32-wasip2/release/evict_uploaded_first.wasm");
    std::fs::copy(&wasm, dir.path().join("keep-pending.wasm")).unwrap();
    std::fs::write(
        dir.path().join("keep-pending.toml"),
        "name = \"keep-pending\"\nkind = \"evictor\"\nversion = \"1.2.3\"\n",
    )
    .unwrap();
    std::fs::copy(&wasm, dir.path().join("liar.wasm")).unwrap();
    std::fs::write(dir.path().join("liar.json"), r#"{"kind": "segmenter"}"#).unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();

    let events = EventBus::new();
    let host = PluginHost::new(Some(dir.path().to_path_buf()), events).unwrap();
    let p = host
        .plugins()
        .find(|p| p.name == "keep-pending")
        .expect("registered");
    assert_eq!(
        (p.kind, p.version.as_deref()),
        (PluginKind::Evictor, Some("1.2.3"))
    );
    let mut e = host.evictor(Some("keep-pending"), "/t").unwrap();
    let budget = Budget {
        limit_bytes: 500,
        used_bytes: 500,
        incoming_bytes: 50,
    };
    // evict-uploaded-first's rule: the uploaded entry with the lowest id.
    assert_eq!(e.choose(&entries(), budget), vec![7]);

    let rejected: Vec<String> = host
        .rejected()
        .iter()
        .map(|r| r.error.to_string())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected
            .iter()
            .any(|r| r.contains("junk") && r.contains("not a WebAssembly")),
        "{rejected:?}"
    );
    assert!(
        rejected
            .iter()
            .any(|r| r.contains("liar") && r.contains("manifest kind")),
        "{rejected:?}"
    );
    // Compiled artifacts are cached beside the plugins for the next start.
    let cached = std::fs::read_dir(dir.path().join(".compiled"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);
}

// ---- format-cmaf with real media -------------------------------------------------------

/// A sample with its payload, as the record writer would hold it.
struct Frame {
    sample: Sample,
    payload: Vec<u8>,
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (Debian package ffmpeg; .ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// NAL units of an Annex B stream.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
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
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&data[s..end]);
    }
    nals
}

/// Splits an Annex B stream (encoded with access unit delimiters, no B-frames) into
/// length-prefixed access units; returns them with the parameter set NAL units.
/// A length-prefixed access unit and whether it is a random access point.
type AccessUnit = (Vec<u8>, bool);

fn access_units(data: &[u8], hevc: bool) -> (Vec<AccessUnit>, Vec<Vec<u8>>) {
    let kind = |n: &[u8]| {
        if hevc {
            (n[0] >> 1) & 0x3f
        } else {
            n[0] & 0x1f
        }
    };
    let (aud, params, irap): (u8, &[u8], &[u8]) = if hevc {
        (35, &[32, 33, 34], &[16, 17, 18, 19, 20, 21])
    } else {
        (9, &[7, 8], &[5])
    };
    let mut units: Vec<AccessUnit> = Vec::new();
    let mut sets: Vec<Vec<u8>> = Vec::new();
    for nal in nal_units(data) {
        let t = kind(nal);
        if t == aud {
            units.push((Vec::new(), false));
            continue;
        }
        if params.contains(&t) && !sets.iter().any(|s| kind(s) == t) {
            sets.push(nal.to_vec());
        }
        let au = units
            .last_mut()
            .expect("stream starts with an access unit delimiter");
        au.0.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        au.0.extend_from_slice(nal);
        au.1 |= irap.contains(&t);
    }
    (units, sets)
}

fn avcc(sets: &[Vec<u8>]) -> Vec<u8> {
    let (sps, pps) = (&sets[0], &sets[1]);
    let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    c.extend_from_slice(sps);
    c.push(1);
    c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    c.extend_from_slice(pps);
    c
}

/// A minimal hvcC: decoders read the NAL length size and the parameter set arrays.
fn hvcc(sets: &[Vec<u8>]) -> Vec<u8> {
    let mut c = vec![1];
    c.extend_from_slice(&[0; 20]);
    c.push(0x0f); // lengthSizeMinusOne = 3
    c.push(sets.len() as u8);
    for s in sets {
        c.push((s[0] >> 1) & 0x3f);
        c.extend_from_slice(&1u16.to_be_bytes());
        c.extend_from_slice(&(s.len() as u16).to_be_bytes());
        c.extend_from_slice(s);
    }
    c
}

fn video_clip(dir: &Path, hevc: bool, seconds: u32) -> (Track, Vec<Frame>) {
    let path = dir.join(if hevc { "v.h265" } else { "v.h264" });
    let t = seconds.to_string();
    let p = path.to_str().unwrap();
    if hevc {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            &t,
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=30:min-keyint=30:bframes=0:aud=1:log-level=error",
            "-f",
            "hevc",
            p,
        ]);
    } else {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            &t,
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-x264-params",
            "aud=1",
            "-f",
            "h264",
            p,
        ]);
    }
    let data = std::fs::read(&path).unwrap();
    let (units, sets) = access_units(&data, hevc);
    assert_eq!(units.len() as u32, seconds * 30, "access units in the clip");
    let track = Track {
        id: 1,
        kind: MediaKind::Video,
        codec: if hevc { Codec::H265 } else { Codec::H264 },
        timescale: 90_000,
        width: 320,
        height: 240,
        sample_rate: 0,
        channels: 0,
        decoder_config: if hevc { hvcc(&sets) } else { avcc(&sets) },
    };
    let frames = units
        .into_iter()
        .enumerate()
        .map(|(i, (payload, keyframe))| Frame {
            sample: Sample {
                track: 1,
                decode_time: i as u64 * 3000,
                composition_offset: 0,
                duration: 3000,
                keyframe,
                size: payload.len() as u32,
            },
            payload,
        })
        .collect();
    (track, frames)
}

/// AAC frames from an ADTS stream, and the AudioSpecificConfig its headers describe.
fn audio_clip(dir: &Path, seconds: u32) -> (Track, Vec<Frame>) {
    let path = dir.join("a.aac");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-c:a",
        "aac",
        "-ac",
        "1",
        "-f",
        "adts",
        path.to_str().unwrap(),
    ]);
    let data = std::fs::read(&path).unwrap();
    let mut frames = Vec::new();
    let mut asc = Vec::new();
    let mut i = 0;
    while i + 7 <= data.len() {
        assert_eq!(
            (data[i], data[i + 1] & 0xf0),
            (0xff, 0xf0),
            "ADTS sync at {i}"
        );
        let header = if data[i + 1] & 1 == 1 { 7 } else { 9 };
        let len = (((data[i + 3] & 3) as usize) << 11)
            | ((data[i + 4] as usize) << 3)
            | ((data[i + 5] >> 5) as usize);
        if asc.is_empty() {
            let object = ((data[i + 2] >> 6) & 3) + 1;
            let freq = (data[i + 2] >> 2) & 0xf;
            let channels = ((data[i + 2] & 1) << 2) | (data[i + 3] >> 6);
            asc = vec![
                (object << 3) | (freq >> 1),
                ((freq & 1) << 7) | (channels << 3),
            ];
        }
        let payload = data[i + header..i + len].to_vec();
        frames.push(Frame {
            sample: Sample {
                track: 2,
                decode_time: frames.len() as u64 * 1024,
                composition_offset: 0,
                duration: 1024,
                keyframe: true,
                size: payload.len() as u32,
            },
            payload,
        });
        i += len;
    }
    let track = Track {
        id: 2,
        kind: MediaKind::Audio,
        codec: Codec::Aac,
        timescale: 48_000,
        width: 0,
        height: 0,
        sample_rate: 48_000,
        channels: 1,
        decoder_config: asc,
    };
    (track, frames)
}

/// Writes a plan, splicing payload ranges from `frames` the way the record writer does.
fn write_plan(out: &mut Vec<u8>, plan: &[Piece], frames: &[&Frame]) {
    for piece in plan {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Payload(r) => {
                let p = &frames[r.sample as usize].payload;
                out.extend_from_slice(&p[r.offset as usize..(r.offset + r.length) as usize]);
            }
        }
    }
}

/// One segment file: init, then one fragment per group of frames.
fn segment(host: &PluginHost, tracks: &[Track], fragments: &[Vec<&Frame>]) -> Vec<u8> {
    let mut f = host.formatter(None, "/t/fmt").unwrap();
    assert_eq!(f.info().extension, "mp4");
    let mut file = Vec::new();
    write_plan(&mut file, &f.init(tracks).unwrap(), &[]);
    for (k, frames) in fragments.iter().enumerate() {
        let samples: Vec<Sample> = frames.iter().map(|f| f.sample).collect();
        write_plan(
            &mut file,
            &f.fragment(k as u32 + 1, &samples).unwrap(),
            frames,
        );
    }
    file
}

/// (codec name, decoded frame count) per stream, via ffprobe; and a clean ffmpeg decode.
fn probe(path: &Path) -> Vec<(String, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "decoding {} reported: {}",
        path.display(),
        String::from_utf8_lossy(&decode.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_string(), n.trim().parse().unwrap())
        })
        .collect()
}

fn gops(frames: &[Frame]) -> Vec<Vec<&Frame>> {
    let mut out: Vec<Vec<&Frame>> = Vec::new();
    for f in frames {
        if f.sample.keyframe || out.is_empty() {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(f);
    }
    out
}

#[test]
fn format_cmaf_h264_segments_each_play_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (host, events) = host();
    let (track, frames) = video_clip(dir.path(), false, 4);
    let fragments = gops(&frames);
    assert_eq!(fragments.len(), 4);
    // Two segments of two 1-second fragments each, as the segmenter would cut them.
    for (n, seg) in fragments.chunks(2).enumerate() {
        let path = dir.path().join(format!("seg{n}.mp4"));
        std::fs::write(&path, segment(&host, std::slice::from_ref(&track), seg)).unwrap();
        assert_eq!(
            probe(&path),
            vec![("h264".to_string(), 60)],
            "{}",
            path.display()
        );
    }
    no_faults(&events);
}

#[test]
fn format_cmaf_h265_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let (host, events) = host();
    let (track, frames) = video_clip(dir.path(), true, 2);
    let path = dir.path().join("hevc.mp4");
    std::fs::write(&path, segment(&host, &[track], &gops(&frames))).unwrap();
    assert_eq!(probe(&path), vec![("hevc".to_string(), 60)]);
    no_faults(&events);
}

#[test]
fn format_cmaf_interleaves_h264_and_aac_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let (host, events) = host();
    let (vtrack, vframes) = video_clip(dir.path(), false, 2);
    let (atrack, aframes) = audio_clip(dir.path(), 2);
    // Fragments of one second: video GOP plus the audio frames of that second, in decode order.
    let mut fragments: Vec<Vec<&Frame>> = Vec::new();
    for (s, gop) in gops(&vframes).into_iter().enumerate() {
        let mut frag = gop;
        frag.extend(
            aframes
                .iter()
                .filter(|a| a.sample.decode_time / 48_000 == s as u64),
        );
        frag.sort_by_key(|f| {
            let scale = if f.sample.track == 1 { 90_000 } else { 48_000 };
            f.sample.decode_time * 1_000_000 / scale
        });
        fragments.push(frag);
    }
    let path = dir.path().join("av.mp4");
    std::fs::write(&path, segment(&host, &[vtrack, atrack], &fragments)).unwrap();
    let audio_frames = fragments
        .iter()
        .flatten()
        .filter(|f| f.sample.track == 2)
        .count() as u64;
    assert_eq!(
        probe(&path),
        vec![("h264".to_string(), 60), ("aac".to_string(), audio_frames)]
    );
    no_faults(&events);
}

#[test]
fn format_cmaf_refuses_bad_input_with_a_reason() {
    let (host, events) = host();
    let mut f = host.formatter(None, "/t/fmt").unwrap();
    let err = f.fragment(1, &[]).unwrap_err().to_string();
    assert!(err.contains("fragment before init"), "{err}");
    let bad = Track {
        id: 1,
        kind: MediaKind::Video,
        codec: Codec::Aac,
        timescale: 90_000,
        width: 0,
        height: 0,
        sample_rate: 0,
        channels: 0,
        decoder_config: vec![1],
    };
    let err = f.init(&[bad]).unwrap_err().to_string();
    assert!(err.contains("track 1: AAC on a video track"), "{err}");
    // The default formatter has no fallback beyond itself; the faults are reported.
    assert!(
        events
            .recent()
            .iter()
            .any(|e| matches!(e.body, Body::PluginFault(_)))
    );
}

// ---- the `plugins` subcommand ----------------------------------------------------------

fn mediagraph(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugins_list_shows_defaults_and_directory_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release");
    std::fs::copy(
        built.join("segmenter_gop.wasm"),
        dir.path().join("my-seg.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("my-seg.toml"), "version = \"2.0.0\"\n").unwrap();
    let (ok, out, err) = mediagraph(&[
        "plugins",
        "list",
        "--plugin-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        vec![
            "segmenter-gop",
            "segmenter",
            env!("CARGO_PKG_VERSION"),
            "0.1.0",
            "embedded"
        ]
    );
    assert_eq!(rows[3][..2], ["format-cmaf", "formatter"]);
    let mine = dir.path().join("my-seg.wasm");
    assert_eq!(
        rows[4],
        vec![
            "my-seg",
            "segmenter",
            "2.0.0",
            "0.1.0",
            mine.to_str().unwrap()
        ]
    );
}

#[test]
fn plugins_check_runs_the_contract_test() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release");
    for (file, kind) in [
        ("segmenter_gop.wasm", "segmenter"),
        ("evict_oldest.wasm", "evictor"),
        ("format_cmaf.wasm", "formatter"),
    ] {
        let path = dir.path().join(file);
        std::fs::copy(built.join(file), &path).unwrap();
        let (ok, out, err) = mediagraph(&["plugins", "check", path.to_str().unwrap()]);
        assert!(ok, "{file}: {out}{err}");
        assert!(
            out.contains(&format!("{kind} plugin")) && out.trim_end().ends_with("OK"),
            "{out}"
        );
    }
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();
    let (ok, _, err) = mediagraph(&["plugins", "check", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("core WebAssembly module"), "{err}");
}
