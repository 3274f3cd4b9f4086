//! Hostile plugins (built from `host/tests/hostile/`, a small wasm workspace) against the real
//! host: each misbehaviour is contained within a bounded time, reported as a `PluginFault`
//! event naming the plugin and the fault, answered by the fallback, and other instances keep
//! working.

use std::process::Command;
use std::time::{Duration, Instant};

use mediagraph::events::catalog::PluginFault;
use mediagraph::events::{Body, EventBus};
use mediagraph::plugin::types::{
    Budget, CacheEntry, Codec, Decision, FrameInfo, MediaKind, Piece, Sample, SegmenterConfig,
    Track,
};
use mediagraph::plugin::{PluginError, PluginHost};
use mediagraph::time::{TICKS_PER_SECOND as SECOND, Ticks90k};

mod hostile_support;
use hostile_support::hostile_dir;

/// Generous bound for one contained fault (a call may burn 200 M units of fuel); it only proves that a
/// hostile call cannot hold the host.
const CONTAINED_WITHIN: Duration = Duration::from_secs(3);

fn host() -> (PluginHost, EventBus) {
    let events = EventBus::new();
    let host =
        PluginHost::new(Some(hostile_dir().to_path_buf()), events.clone()).expect("plugin host");
    (host, events)
}

fn faults(events: &EventBus, subject: &str) -> Vec<PluginFault> {
    events
        .recent()
        .into_iter()
        .filter(|e| e.subject == subject)
        .filter_map(|e| match e.body {
            Body::PluginFault(fault) => Some(fault),
            _ => None,
        })
        .collect()
}

fn frame(i: i64) -> FrameInfo {
    FrameInfo {
        track: 1,
        kind: MediaKind::Video,
        dts: Ticks90k(1_700_000_000 * SECOND + i * 3000),
        duration: 3000,
        keyframe: i % 30 == 0,
        size: 1000,
    }
}

#[test]
fn wrong_world_and_wrong_version_are_refused_with_clear_messages() {
    let (host, _) = host();
    let mut rejected: Vec<String> = host
        .rejected()
        .iter()
        .map(|r| r.error.to_string())
        .collect();
    rejected.sort();
    assert_eq!(
        rejected,
        vec![
            "\"not_a_plugin\" is not a mediagraph plugin: it exports none of \
             mediagraph:plugin/{segmenter,evictor,formatter}@0.1.0 (its exports: test:other/greeter@1.0.0)"
                .to_string(),
            "plugin \"wrong_version\" was built for an incompatible plugin interface: it exports \
             mediagraph:plugin/segmenter@0.2.0, version 0.2.0, but this host implements mediagraph:plugin@0.1.0"
                .to_string(),
        ]
    );
    // A plugin of another world, asked for as a segmenter.
    let err = host
        .segmenter(
            Some("evict_hostile"),
            SegmenterConfig::new(30 * SECOND as u64),
            "/t",
        )
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::WrongKind { .. }), "{err}");

    // The CLI says the same and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .args(["plugins", "check"])
        .arg(hostile_dir().join("wrong_version.wasm"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mediagraph:plugin/segmenter@0.2.0"),
        "{stderr}"
    );
}

/// Feeds 70 s of 30 fps video with 1 s GOPs to a hostile segmenter (mode `mode`) and, frame by
/// frame, to a default one; returns the hostile one's segment starts and its fault codes.
fn run_hostile_segmenter(mode: u64) -> (Vec<i64>, Vec<String>) {
    let (host, events) = host();
    let config = SegmenterConfig {
        segment_length: 30 * SECOND as u64,
        max_fragment: 2 * SECOND as u64 + mode,
    };
    let mut hostile = host
        .segmenter(Some("seg_hostile"), config, "/t/hostile")
        .unwrap();
    let mut good = host
        .segmenter(None, SegmenterConfig::new(30 * SECOND as u64), "/t/good")
        .unwrap();
    let mut segments = Vec::new();
    for i in 0..(70 * 30) {
        let f = frame(i);
        let t = Instant::now();
        let d = hostile.on_frame(&f);
        let took = t.elapsed();
        assert!(
            took < CONTAINED_WITHIN,
            "mode {mode}: frame {i} held the host for {took:?}"
        );
        if d == Decision::Segment {
            segments.push(i);
        }
        // Segments every 30 s; fragments of two whole GOPs, the most that fit in 2 s.
        let expected = if i % 900 == 0 {
            Decision::Segment
        } else if i % 60 == 0 {
            Decision::Fragment
        } else {
            Decision::None
        };
        assert_eq!(
            good.on_frame(&f),
            expected,
            "mode {mode}: the healthy instance at frame {i}"
        );
    }
    assert!(
        faults(&events, "/t/good").is_empty(),
        "the healthy instance reported faults"
    );
    let codes = faults(&events, "/t/hostile")
        .into_iter()
        .map(|e| {
            assert_eq!(e.plugin, "seg_hostile");
            e.fault.to_string()
        })
        .collect();
    (segments, codes)
}

fn assert_contained(mode: u64, fault: &str) {
    let (segments, codes) = run_hostile_segmenter(mode);
    // The fallback keeps the cutting rule: segments still start at 0, 30 and 60 s.
    assert_eq!(segments, vec![0, 900, 1800], "mode {mode}");
    assert!(!codes.is_empty(), "mode {mode}: no fault reported");
    assert!(
        codes.iter().all(|c| c == fault),
        "mode {mode}: faults {codes:?}, expected {fault}"
    );
    // After each fault a fresh instance takes over at the next segment and misbehaves again.
    assert!(codes.len() >= 2, "mode {mode}: {codes:?}");
}

#[test]
fn an_endless_loop_times_out() {
    assert_contained(1, "timeout");
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    assert_contained(2, "memoryExhausted");
}

#[test]
fn a_panic_is_a_trap() {
    assert_contained(3, "trap");
}

#[test]
fn a_cut_that_never_comes_is_overdue() {
    assert_contained(4, "fragmentOverdue");
}

#[test]
fn a_segment_cut_off_a_keyframe_is_invalid() {
    assert_contained(5, "invalidAnswer");
}

#[test]
fn blocking_is_refused() {
    let (host, events) = host();
    let config = SegmenterConfig {
        segment_length: 30 * SECOND as u64,
        max_fragment: 2 * SECOND as u64 + 6,
    };
    let mut s = host
        .segmenter(Some("seg_hostile"), config, "/t/sleepy")
        .unwrap();
    let t = Instant::now();
    for i in 0..10 {
        s.on_frame(&frame(i));
    }
    assert!(t.elapsed() < CONTAINED_WITHIN);
    let f = faults(&events, "/t/sleepy");
    assert_eq!(f.len(), 1, "{f:?}");
    let detail = f[0].detail.as_str();
    assert!(detail.contains("may not block"), "{detail}");
}

fn entries() -> Vec<CacheEntry> {
    (0..5)
        .map(|i| CacheEntry {
            id: 10 + i,
            start: Ticks90k::from_secs(1_700_000_000 + 30 * (5 - i as i64)),
            end: Ticks90k::from_secs(1_700_000_030 + 30 * (5 - i as i64)),
            bytes: 100,
            uploaded: false,
        })
        .collect()
}

#[test]
fn bad_evictor_answers_are_replaced_by_oldest_first() {
    let (host, events) = host();
    let mut e = host.evictor(Some("evict_hostile"), "/t/evict").unwrap();
    for (mode, fault) in [
        (1, "invalidAnswer"),
        (2, "invalidAnswer"),
        (3, "invalidAnswer"),
        (4, "invalidAnswer"),
        (5, "timeout"),
    ] {
        // limit_bytes % 10 picks the misbehaviour; 500 used, limit ~300: 2 entries must go.
        let budget = Budget {
            limit_bytes: 300 + mode,
            used_bytes: 500,
            incoming_bytes: 0,
        };
        let t = Instant::now();
        let ids = e.choose(&entries(), budget);
        assert!(t.elapsed() < CONTAINED_WITHIN, "mode {mode}");
        // Oldest first by id (recording order), though the starts say otherwise (as after
        // the wall clock stepped back).
        assert_eq!(ids, vec![10, 11], "mode {mode}");
        let f = faults(&events, "/t/evict");
        assert_eq!(f.last().unwrap().fault, fault, "mode {mode}: {f:?}");
        assert_eq!(f.len() as u64, mode, "one fault per bad call");
    }
    // The replaced instance answers again (mode 0: everything, which is what must go when
    // nothing may stay).
    let all = Budget {
        limit_bytes: 0,
        used_bytes: 500,
        incoming_bytes: 0,
    };
    assert_eq!(e.choose(&entries(), all), vec![10, 11, 12, 13, 14]);
    assert_eq!(faults(&events, "/t/evict").len(), 5);
}

#[test]
fn an_evictor_that_frees_far_more_than_needed_is_a_fault() {
    let (host, events) = host();
    let mut e = host.evictor(Some("evict_hostile"), "/t/greedy").unwrap();
    // Mode 0 answers every entry; 100 bytes must go, the answer frees all 500.
    let budget = Budget {
        limit_bytes: 400,
        used_bytes: 500,
        incoming_bytes: 0,
    };
    assert_eq!(e.choose(&entries(), budget), vec![10], "the oldest id only");
    let f = faults(&events, "/t/greedy");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].fault, "invalidAnswer");
    let detail = f[0].detail.as_str();
    assert!(
        detail.contains("frees 500 bytes where 100 must be freed"),
        "{detail}"
    );
    // Nothing to free: evicting anything at all is a fault too.
    let none = Budget {
        limit_bytes: 10_000,
        used_bytes: 500,
        incoming_bytes: 0,
    };
    assert_eq!(e.choose(&entries(), none), Vec::<u64>::new());
    assert_eq!(faults(&events, "/t/greedy").len(), 2);
}

fn track(width: u32) -> Track {
    Track {
        id: 1,
        kind: MediaKind::Video,
        codec: Codec::H264,
        timescale: 90_000,
        width,
        height: 240,
        sample_rate: 0,
        channels: 0,
        decoder_config: vec![
            1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xce,
        ],
    }
}

fn samples() -> Vec<Sample> {
    (0..30)
        .map(|i| Sample {
            track: 1,
            decode_time: i * 3000,
            composition_offset: 0,
            duration: 3000,
            keyframe: i == 0,
            size: 500,
        })
        .collect()
}

#[test]
fn a_faulty_formatter_is_replaced_by_format_cmaf_at_the_next_segment() {
    for (mode, fault) in [
        (0, "invalidAnswer"),
        (1, "invalidAnswer"),
        (2, "invalidAnswer"),
        (3, "invalidAnswer"),
        (4, "trap"),
    ] {
        let (host, events) = host();
        let subject = format!("/t/fmt{mode}");
        let mut f = host.formatter(Some("fmt_hostile"), &subject).unwrap();
        assert_eq!(f.info().extension, "bin");
        let init = f.init(&[track(320 + mode)]).unwrap();
        assert_eq!(init, vec![Piece::Bytes(b"HOSTILE".to_vec())]);
        let t = Instant::now();
        let err = f.fragment(1, &samples()).unwrap_err();
        assert!(t.elapsed() < CONTAINED_WITHIN, "mode {mode}");
        assert!(
            matches!(err, PluginError::Fault { .. }),
            "mode {mode}: {err}"
        );
        let codes: Vec<_> = faults(&events, &subject)
            .iter()
            .map(|e| e.fault.to_string())
            .collect();
        // The first failure, the failed retry, and the switch to the default.
        assert!(
            codes.len() >= 2 && codes.iter().all(|c| c == fault),
            "mode {mode}: {codes:?}"
        );

        // The caller starts a new segment: now format-cmaf lays it out.
        assert_eq!(f.plugin(), "format-cmaf");
        assert_eq!(f.info().extension, "mp4");
        let init = f.init(&[track(320 + mode)]).unwrap();
        let Piece::Bytes(header) = &init[0] else {
            panic!("init starts with bytes")
        };
        assert_eq!(&header[4..8], b"ftyp");
        let plan = f.fragment(1, &samples()).unwrap();
        assert_eq!(
            plan.iter()
                .filter(|p| matches!(p, Piece::Payload(_)))
                .count(),
            30
        );
    }
}
