//! What the stream carries: H.265 with AAC, open-GOP (CRA) keyframes, a resolution change,
//! B-frames in H.264 and H.265.

use super::*;

#[test]
fn records_h265_video_with_aac_audio_when_the_sink_selects_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &["--codec", "h265", "--audio"]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    select_audio_and_video(&topology);
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(8));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let segs = sealed(&cache_dir(&data, 1));
    assert_eq!(segs.len(), 1, "{segs:?}");
    check_segments(&segs, 30.0, GOP, FRAME);
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&segs[0].path)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = streams.lines().map(|l| l.split(',').collect()).collect();
    let codecs: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(codecs, ["hevc", "aac"], "{streams}");
    // The audio covers the video's time span: same start and length, to within one frame
    // (plus one AAC frame of 1024 samples at 48 kHz, ~21 ms, for the ends).
    let num = |r: &Vec<&str>, i: usize| -> f64 {
        r[i].parse()
            .unwrap_or_else(|_| panic!("ffprobe: {streams}"))
    };
    let (v_start, v_len) = (num(&rows[0], 1), num(&rows[0], 2));
    let (a_start, a_len) = (num(&rows[1], 1), num(&rows[1], 2));
    assert!(
        (a_start - v_start).abs() <= FRAME + 0.022 && (a_len - v_len).abs() <= FRAME + 0.022,
        "audio {a_start:.3}+{a_len:.3} s vs video {v_start:.3}+{v_len:.3} s"
    );
    assert!(
        segs[0].path.to_string_lossy().contains("hvc1")
            && segs[0].path.to_string_lossy().contains("mp4a.40.2")
    );
}

/// x265's open-GOP keyframes are CRA pictures, which retina does not flag as random access
/// points: the host recognises every IRAP itself, so segments still start on time (on CRA
/// pictures) and decode without errors.
#[test]
fn h265_open_gop_cra_keyframes_start_segments() {
    let tmp = tempfile::tempdir().unwrap();
    // 7 s loops: the only IDR is the first picture of each loop, so a 30 s cut falls on a CRA.
    let clip = make_h265_open_gop_clip(&tmp.path().join("clip"), 7);
    let types = h265_nal_types(&std::fs::read(clip.join("video.h265")).unwrap());
    let pictures: Vec<u8> = types.into_iter().filter(|t| *t < 32).collect();
    assert_eq!(
        pictures
            .iter()
            .filter(|t| (16..=21).contains(*t))
            .copied()
            .collect::<Vec<u8>>(),
        [20, 21, 21, 21, 21, 21, 21],
        "the clip should have one IDR, then CRA keyframes"
    );
    let port = free_port();
    let clip_arg = clip.to_string_lossy().into_owned();
    let _camera = camera(port, &["--codec", "h265", "--clip", &clip_arg]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(36));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    // Decodes with no errors, starts with a keyframe, 30 s ± one GOP, no holes.
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 34.0, "recorded {total:.1} s of ~36 s");
    // check_segments saw every segment start with an IRAP picture; some must be CRA.
    let starts: Vec<Option<u8>> = segs.iter().map(|s| first_picture(&s.path).0).collect();
    assert!(
        starts.contains(&Some(21)),
        "a segment should start on a CRA picture: {starts:?}"
    );
}

/// The camera switches resolution mid-stream (new SPS/PPS in band): each switch starts a new
/// segment with its own init, every segment decodes and holds one resolution, and the
/// segments of the run follow each other without a hole.
#[test]
fn a_resolution_change_mid_stream_starts_a_new_segment_with_its_own_init() {
    let tmp = tempfile::tempdir().unwrap();
    let clip =
        make_h264_resolution_switch_clip(&tmp.path().join("clip"), &["640x360", "320x240"], 3);
    let port = free_port();
    let clip_arg = clip.to_string_lossy().into_owned();
    let _camera = camera(port, &["--clip", &clip_arg]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(14));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(
        segs.len() >= 4,
        "a segment per 3 s switch expected: {:?}",
        files(&dir)
    );
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "one run: {segs:?}"
    );
    let mut sizes = Vec::new();
    for s in &segs {
        let p = probe(&s.path);
        assert!(
            p.decode_errors.trim().is_empty(),
            "{}: {}",
            s.path.display(),
            p.decode_errors
        );
        let (first, decodable) = first_picture(&s.path);
        assert!(decodable, "{}: first picture {first:?}", s.path.display());
        // Every decoded frame has the resolution of the segment's init.
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=width,height:frame=width,height"])
            .args(["-of", "csv=p=0"])
            .arg(&s.path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows: Vec<&str> = text
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        rows.dedup();
        assert_eq!(rows.len(), 1, "{}: resolutions {rows:?}", s.path.display());
        sizes.push(rows[0].to_owned());
        let len = p.duration();
        assert!(
            len <= 3.0 + FRAME + 0.01,
            "{}: {len:.3} s",
            s.path.display()
        );
    }
    for (i, w) in segs.windows(2).enumerate() {
        assert_ne!(
            sizes[i],
            sizes[i + 1],
            "a segment per resolution: {sizes:?}"
        );
        let wall_hole = (w[1].start - w[0].end) as f64 / TICKS as f64;
        assert!(
            wall_hole.abs() <= FRAME,
            "hole of {wall_hole:.3} s between {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    // The middle segments are whole 3 s stretches of one resolution.
    for s in &segs[1..segs.len() - 1] {
        let len = (s.end - s.start) as f64 / TICKS as f64;
        assert!(
            (len - 3.0).abs() <= FRAME + 0.01,
            "{}: {len:.3} s",
            s.path.display()
        );
    }
}

/// Records a B-frame stream served by GStreamer's RTSP server from `launch` for ≥ 35 s and
/// checks every segment: decodes with no error or warning, starts with a keyframe, exact
/// frame timing (frames = 25 fps × duration ± one GOP, no holes), decode times strictly
/// increasing and never after presentation, and presentation order ≠ decode order. Nothing
/// is reported as unsupported.
fn records_b_frames(launch: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = gst_launch_server(port, launch);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(38));
    assert!(rec.is_running(), "{}", rec.log());
    let events = rec.events();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        diagnostics(&events, "MediaFormatError").is_empty(),
        "B-frames are supported: no format error expected:\n{log}"
    );
    assert!(log.contains("video has B-frames"), "{log}");

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(segs.len() >= 2, "expected ≥ 2 segments: {:?}", files(&dir));
    assert!(
        segs.iter().all(|s| s.run == segs[0].run),
        "one run: {segs:?}"
    );
    let probes = check_segments(&segs, 30.0, GOP, FRAME);
    check_b_frames(&segs, &probes, 1.0 / FRAME, (GOP / FRAME) as usize);
    let total: f64 = probes.iter().map(Probe::duration).sum();
    assert!(total >= 35.0, "recorded {total:.1} s, expected ≥ 35 s");
    let frames: usize = probes.iter().map(|p| p.packets.len()).sum();
    let expected = total / FRAME;
    let reordered: usize = probes
        .iter()
        .map(|p| p.packets.windows(2).filter(|w| w[1].0 < w[0].0).count())
        .sum();
    eprintln!(
        "{} segments, {total:.3} s, {frames} frames (25 fps × duration = {expected:.1}), {reordered} presentation-order reversals",
        segs.len()
    );
    assert!(
        (frames as f64 - expected).abs() <= GOP / FRAME,
        "{frames} frames in {total:.3} s at 25 fps"
    );
}

/// A camera whose H.264 (Main profile) has B-frames: x264 with 2 B-frames and B-pyramid, so
/// the SPS declares a reorder depth of 2.
#[test]
fn h264_b_frames_are_recorded_with_exact_timing() {
    records_b_frames(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max=25 bframes=2 b-adapt=false ! video/x-h264,profile=main \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
    );
}

/// The same with H.265 from x265 (3 B-frames, closed GOPs of 25).
#[test]
fn h265_b_frames_are_recorded_with_exact_timing() {
    records_b_frames(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x265enc speed-preset=ultrafast key-int-max=25 \
           option-string=\"bframes=3:min-keyint=25:scenecut=0:open-gop=0:log-level=error\" \
         ! rtph265pay name=pay0 pt=96 config-interval=-1 )",
    );
}
