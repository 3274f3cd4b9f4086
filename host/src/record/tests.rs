//! The recorder with the default plugins and a real cache on synthetic frames: the paths that
//! otherwise take minutes of real-time recording.

use super::*;
use crate::plugin::PluginHost;
use crate::plugin::types::SegmenterConfig;
use crate::source::TrackParams;
use crate::time::{ClockRate, Duration90k, TICKS_PER_SECOND};

const T0: Ticks90k = Ticks90k(1_700_000_000 * TICKS_PER_SECOND);
const FRAME: Duration90k = Duration90k(TICKS_PER_SECOND / 25);

fn recorder(cache: Arc<Cache>) -> (Recorder, EventBus) {
    let events = EventBus::new();
    let host = PluginHost::new(None, events.clone()).unwrap();
    let subject = "/graphInstances/t/sinks/s";
    let plugins = Plugins {
        segmenter: host
            .segmenter(
                None,
                SegmenterConfig::new(30 * TICKS_PER_SECOND as u64),
                subject,
            )
            .unwrap(),
        formatter: host.formatter(None, subject).unwrap(),
        evictor: host.evictor(None, subject).unwrap(),
    };
    let r = Recorder::new(
        cache,
        plugins,
        events.clone(),
        subject.to_owned(),
        RecordingOutput {
            output_type: crate::topology::OutputType::AssetName,
            output_location: "asset".to_owned(),
        },
        false,
    );
    (r, events)
}

fn video() -> TrackParams {
    TrackParams {
        codec: TrackCodec::H264,
        clock_rate: ClockRate::HZ_90K,
        width: 320,
        height: 240,
        sample_rate: 0,
        channels: 0,
        // avcC: version 1, High profile, level 3.1, 4-byte lengths, one SPS, one PPS.
        decoder_config: Bytes::from_static(&[
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
        ]),
        rfc6381: "avc1.64001F".to_owned(),
    }
}

/// `seconds` of 25 fps video from `wall`, a keyframe every second, `bytes` per frame.
fn run(r: &mut Recorder, wall: Ticks90k, seconds: i64, bytes: usize) {
    r.handle(SourceItem::RunStarted {
        tracks: vec![video()],
    })
    .unwrap();
    for i in 0..seconds * 25 {
        r.handle(SourceItem::Frame(Frame {
            track: 0,
            media_time: i * FRAME.0,
            decode_time: i * FRAME.0,
            wall: wall + Duration90k(i * FRAME.0),
            keyframe: i % 25 == 0,
            data: Bytes::from(vec![0u8; bytes]),
            new_params: None,
        }))
        .unwrap();
    }
}

#[test]
fn a_clock_stepped_back_leaves_a_clock_jump_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(tmp.path(), 64 << 20).unwrap().0);
    let (mut r, _) = recorder(cache.clone());
    run(&mut r, T0, 3, 100);
    r.handle(SourceItem::RunEnded {
        reason: RunEndReason::Stalled,
    })
    .unwrap();
    // The clock is set an hour back between the two runs.
    let back = Ticks90k(T0.0 - 3600 * TICKS_PER_SECOND);
    run(&mut r, back, 3, 100);
    r.finish().unwrap();
    let gaps = cache.gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::ClockJump);
    assert_eq!(gaps[0].end, back);
    assert!(gaps[0].start > T0, "from the newest media before the step");
}

#[test]
fn a_fragment_larger_than_the_budget_is_dropped_and_recording_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    // 200 KB: a second of 10 KB frames (250 KB) never fits, a second of 1 KB frames does.
    let limit = 200_000;
    let cache = Arc::new(Cache::open(tmp.path(), limit).unwrap().0);
    let (mut r, events) = recorder(cache.clone());
    run(&mut r, T0, 3, 10_000);
    r.handle(SourceItem::RunEnded {
        reason: RunEndReason::Disconnected("test".into()),
    })
    .unwrap();
    let dropped: Vec<_> = events
        .recent()
        .into_iter()
        .filter_map(|e| match e.body {
            crate::events::Body::DataDropped(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(!dropped.is_empty());
    assert_eq!(dropped[0].reason, "localMediaCacheMaximumSizeMiB");
    assert!(cache.used_bytes() <= limit);

    run(&mut r, T0 + Duration90k::from_secs(10), 8, 1_000);
    r.finish().unwrap();
    assert!(r.stats().dropped_frames.load(Ordering::Relaxed) >= 50);
    assert!(!cache.sealed().is_empty(), "recording went on");
    assert!(
        cache.used_bytes() <= limit,
        "{} > {limit}",
        cache.used_bytes()
    );
}

/// A tmpfs of `size` mounted for one test (the suite runs as root, as the disk-full e2e tests
/// need too), unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `frames` frames of 25 fps video from frame `first` of a run starting at `wall`, through
/// `handle_or_recover` as the graph feeds the recorder.
fn feed(r: &mut Recorder, wall: Ticks90k, first: i64, frames: i64, bytes: usize) {
    for i in first..first + frames {
        r.handle_or_recover(SourceItem::Frame(Frame {
            track: 0,
            media_time: i * FRAME.0,
            decode_time: i * FRAME.0,
            wall: wall + Duration90k(i * FRAME.0),
            keyframe: i % 25 == 0,
            data: Bytes::from(vec![0u8; bytes]),
            new_params: None,
        }));
    }
}

#[test]
fn a_full_disk_is_reported_once_drops_frames_and_recording_resumes_when_space_returns() {
    let fs = SmallFs::mount("2m");
    // Leave about 600 KB: two seconds of 10 KB frames fit, ten do not.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 1400 << 10]).unwrap();
    let cache = Arc::new(Cache::open(&fs.path().join("cache"), 64 << 20).unwrap().0);
    let (mut r, events) = recorder(cache.clone());
    r.handle(SourceItem::RunStarted {
        tracks: vec![video()],
    })
    .unwrap();
    feed(&mut r, T0, 0, 250, 10_000);
    let dropped_while_full = r.stats().dropped_frames.load(Ordering::Relaxed);
    assert!(
        dropped_while_full >= 100,
        "{dropped_while_full} frames dropped"
    );

    std::fs::remove_file(&filler).unwrap();
    feed(&mut r, T0, 250, 250, 2_000);
    r.finish().unwrap();

    let bodies: Vec<_> = events.recent().into_iter().map(|e| e.body).collect();
    let full: Vec<_> = bodies
        .iter()
        .filter_map(|b| match b {
            crate::events::Body::CacheDiskFull(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(full.len(), 1, "one report per episode: {bodies:?}");
    assert_eq!(full[0].error_code.as_deref(), Some("ENOSPC"));
    // On a disk that stays full the cache evicts its sealed media to go on (an eviction
    // ring), so recording and dropping may alternate: one DataDropped per stretch of drops,
    // and each stretch is a DiskFull gap once the next fragment is durable.
    let drops = bodies
        .iter()
        .filter(|b| matches!(b, crate::events::Body::DataDropped(d) if d.reason == "diskFull"))
        .count();
    let gaps: Vec<_> = cache
        .gaps()
        .into_iter()
        .filter(|g| g.cause == GapCause::DiskFull)
        .collect();
    assert!(drops >= 1, "{bodies:?}");
    assert_eq!(gaps.len(), drops, "{:?}", cache.gaps());
    let last_gap = gaps.iter().max_by_key(|g| g.end).unwrap();
    let resumed = T0 + Duration90k::from_secs(10);
    assert!(
        last_gap.start < resumed && last_gap.end >= resumed,
        "the last drop ends when space returns: {gaps:?}"
    );
    let sealed = cache.sealed();
    assert!(
        sealed.iter().any(|s| s.start >= last_gap.end),
        "recording resumed after the gap: {sealed:?}"
    );
    for g in &gaps {
        assert!(
            sealed.iter().all(|s| s.end <= g.start || s.start >= g.end),
            "no segment overlaps a gap: {g:?} {sealed:?}"
        );
    }
}

#[test]
fn a_file_sink_starts_a_new_file_at_a_quarter_of_its_limit_and_names_each_in_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    // 1 MB limit: files end at the first keyframe past 250 KB; 10 KB frames, a GOP is 250 KB.
    let limit = 1_000_000;
    let media =
        cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
    let namer: crate::cache::FileNamer =
        Box::new(|start: Ticks90k| format!("cam-{}", start.as_unix_secs()));
    let cache = Arc::new(Cache::open_files(media, limit, namer).unwrap().0);
    let (r, events) = recorder(cache.clone());
    let mut r = r.into_files(tmp.path().to_owned(), limit / 4);
    run(&mut r, T0, 12, 10_000);
    r.finish().unwrap();

    let files = cache.sealed();
    assert_eq!(
        r.stats().segments.load(Ordering::Relaxed),
        12,
        "a file per second"
    );
    assert_eq!(files.len(), 3, "the newest three fit the limit: {files:?}");
    for f in &files[..files.len() - 1] {
        // Each file ends at the first keyframe past its quarter: one second of video.
        let secs = (f.end - f.start).as_secs_f64();
        assert!((0.9..=2.1).contains(&secs), "{f:?}: {secs} s");
    }
    assert!(cache.used_bytes() <= limit, "the oldest files went");
    assert!(!tmp.path().join("cam-1700000000.mp4").exists());
    let recording = |kind: &str| -> Vec<String> {
        events
            .recent()
            .into_iter()
            .map(|e| serde_json::to_value(&e).unwrap())
            .filter(|e| e["eventType"] == format!("Microsoft.Media.Graph.Operational.{kind}"))
            .map(|e| {
                assert_eq!(e["body"]["outputType"], "filePath");
                e["body"]["outputLocation"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let started = recording("RecordingStarted");
    assert_eq!(
        started,
        recording("RecordingStopped"),
        "each file started and stopped"
    );
    assert_eq!(started.len(), 12);
    let newest = tmp.path().join(&files.last().unwrap().file_name);
    assert_eq!(started.last().unwrap(), newest.to_str().unwrap());
}
