use super::*;
use crate::cache::LiveSegment;
use crate::upload::SegmentFacts;

const T0: i64 = 1_700_000_000;

fn at(secs: f64) -> Ticks90k {
    Ticks90k(T0 * 90_000 + (secs * 90_000.0).round() as i64)
}

fn blob(run: u64, seq: u64, start: f64, end: f64) -> StoredBlob {
    let facts = SegmentFacts {
        asset: "cam".into(),
        run,
        sequence: seq,
        start: at(start),
        end: at(end),
        codecs: "avc1.64001f".into(),
        extension: "mp4".into(),
    };
    StoredBlob {
        name: facts.blob_name(),
        bytes: 1,
        metadata: facts.metadata(None),
    }
}

/// A cached segment with 2 s fragments of 100 bytes (the first also holds a 50-byte init).
fn cached(id: u64, run: u64, seq: u64, start: f64, parts: usize, sealed: bool) -> LiveSegment {
    let fragments: Vec<LiveFragment> = (0..parts)
        .map(|i| LiveFragment {
            offset: if i == 0 {
                0
            } else {
                150 + 100 * (i as u64 - 1)
            },
            len: if i == 0 { 150 } else { 100 },
            start: at(start + 2.0 * i as f64),
            end: at(start + 2.0 * (i + 1) as f64),
            independent: true,
        })
        .collect();
    LiveSegment {
        id: SegmentId(id),
        run,
        sequence: seq,
        start: at(start),
        end: at(start + 2.0 * parts as f64),
        bytes: 50 + 100 * parts as u64,
        sealed,
        uploaded: false,
        fragments: fragments.into(),
    }
}

fn asset() -> AssetName {
    AssetName::new("cam").unwrap()
}

#[test]
fn merge_prefers_the_store_once_uploaded_and_the_cache_before() {
    let mut uploaded = cached(11, 1, 1, 30.0, 15, true);
    uploaded.uploaded = true;
    let view = LiveView {
        segments: vec![
            uploaded,
            cached(12, 1, 2, 60.0, 15, true),
            cached(13, 1, 3, 90.0, 3, false),
        ],
    };
    let store = [blob(1, 0, 0.0, 30.0), blob(1, 1, 30.0, 60.0)];
    let entries = merge(&store, Some(&view));
    let sources: Vec<(u64, &Source, bool, bool)> = entries
        .iter()
        .map(|e| (e.sequence, &e.source, e.complete, e.parts.is_some()))
        .collect();
    assert_eq!(
        sources,
        [
            (
                0,
                &Source::Store("20231114T221320Z-r0000000001-s0000000000.mp4".into()),
                true,
                false
            ),
            (
                1,
                &Source::Store("20231114T221350Z-r0000000001-s0000000001.mp4".into()),
                true,
                true
            ),
            (2, &Source::Cache(SegmentId(12)), true, true),
            (3, &Source::Cache(SegmentId(13)), false, true),
        ]
    );
    // A long backlog: only the newest complete segments and the open one.
    let many: Vec<StoredBlob> = (0..10)
        .map(|i| blob(1, i, 30.0 * i as f64, 30.0 * (i + 1) as f64))
        .collect();
    let view = LiveView {
        segments: vec![cached(20, 1, 10, 300.0, 1, false)],
    };
    let entries = merge(&many, Some(&view));
    let seqs: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [6, 7, 8, 9, 10]);
}

#[test]
fn a_segment_keeps_its_number_when_it_moves_to_the_store() {
    let mut book = SequenceBook::default();
    let view = LiveView {
        segments: vec![
            cached(12, 1, 2, 60.0, 15, true),
            cached(13, 1, 3, 90.0, 2, false),
        ],
    };
    let first = book.number(&merge(&[blob(1, 1, 30.0, 60.0)], Some(&view)));
    let numbers: Vec<(u64, u64)> = first.iter().map(|n| (n.entry.sequence, n.msn)).collect();
    assert_eq!(numbers, [(1, 0), (2, 1), (3, 2)]);

    // Segment 2 was uploaded and evicted, 3 sealed, 4 opened.
    let view = LiveView {
        segments: vec![
            cached(13, 1, 3, 90.0, 15, true),
            cached(14, 1, 4, 120.0, 1, false),
        ],
    };
    let store = [blob(1, 1, 30.0, 60.0), blob(1, 2, 60.0, 90.0)];
    let second = book.number(&merge(&store, Some(&view)));
    let numbers: Vec<(u64, u64, bool)> = second
        .iter()
        .map(|n| {
            (
                n.entry.sequence,
                n.msn,
                matches!(n.entry.source, Source::Store(_)),
            )
        })
        .collect();
    assert_eq!(
        numbers,
        [(1, 0, true), (2, 1, true), (3, 2, false), (4, 3, false)]
    );
    assert!(second.iter().all(|n| n.discontinuity == 0));
}

#[test]
fn a_new_run_is_a_discontinuity_and_an_evicted_segment_ends_the_window() {
    let mut book = SequenceBook::default();
    let view = LiveView {
        segments: vec![
            cached(1, 1, 0, 0.0, 15, true),
            cached(2, 1, 1, 30.0, 15, true),
            cached(3, 1, 2, 60.0, 15, true),
        ],
    };
    book.number(&merge(&[], Some(&view)));
    // Segment 1 is evicted before upload; a new run starts after a hole.
    let view = LiveView {
        segments: vec![
            cached(1, 1, 0, 0.0, 15, true),
            cached(3, 1, 2, 60.0, 15, true),
            cached(4, 2, 0, 100.0, 1, false),
        ],
    };
    let window = book.number(&merge(&[], Some(&view)));
    let numbers: Vec<(u64, u64)> = window.iter().map(|n| (n.msn, n.discontinuity)).collect();
    assert_eq!(numbers, [(2, 0), (3, 1)], "contiguous numbers only");
    let text = playlist(&asset(), &window, 30, None);
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    // A segment never listed that is older than the newest is left out.
    let late = LiveView {
        segments: vec![
            cached(9, 1, 5, 200.0, 15, true),
            cached(4, 2, 0, 100.0, 2, false),
        ],
    };
    let window = book.number(&merge(&[], Some(&late)));
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].msn, 3);
}

#[test]
fn the_playlist_lists_parts_of_the_live_edge_with_program_date_times() {
    let mut book = SequenceBook::default();
    let view = LiveView {
        segments: vec![
            cached(12, 1, 2, 60.0, 2, true),
            cached(13, 1, 3, 64.0, 2, false),
        ],
    };
    let window = book.number(&merge(&[blob(1, 1, 30.0, 60.0)], Some(&view)));
    let text = playlist(&asset(), &window, 30, Some("key=k1"));
    let expected = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:30
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=4.000
#EXT-X-PART-INF:PART-TARGET=2.000
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"/assets/cam/live/r1-s1/init.mp4?key=k1\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:50.000Z
#EXTINF:30.000,
/assets/cam/live/r1-s1/media.mp4?key=k1
#EXT-X-MAP:URI=\"/assets/cam/live/r1-s2/init.mp4?key=k1\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:20.000Z
#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s2/part-0.mp4?key=k1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s2/part-1.mp4?key=k1\",INDEPENDENT=YES
#EXTINF:4.000,
/assets/cam/live/r1-s2/media.mp4?key=k1
#EXT-X-MAP:URI=\"/assets/cam/live/r1-s3/init.mp4?key=k1\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:24.000Z
#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s3/part-0.mp4?key=k1\",INDEPENDENT=YES
#EXT-X-PART:DURATION=2.000,URI=\"/assets/cam/live/r1-s3/part-1.mp4?key=k1\",INDEPENDENT=YES
";
    assert_eq!(text, expected);
}

#[test]
fn a_just_sealed_segment_stays_the_live_edge_until_the_next_has_a_part() {
    let view = LiveView {
        segments: vec![cached(12, 1, 2, 60.0, 15, true)],
    };
    let entries = merge(&[], Some(&view));
    assert!(!entries[0].complete, "listed by its parts, without #EXTINF");
    let mut book = SequenceBook::default();
    let window = book.number(&entries);
    assert!(
        !has_part(&window, 0, Some(15)),
        "waits for the next segment"
    );
    let text = playlist(&asset(), &window, 30, None);
    assert!(!text.contains("#EXTINF"), "{text}");
    let view = LiveView {
        segments: vec![
            cached(12, 1, 2, 60.0, 15, true),
            cached(13, 1, 3, 90.0, 1, false),
        ],
    };
    let window = book.number(&merge(&[], Some(&view)));
    assert!(window[0].entry.complete && has_part(&window, 0, Some(15)));
    // Without a recording cache, the store's newest segment is complete.
    assert!(merge(&[blob(1, 0, 0.0, 30.0)], None)[0].complete);
}

#[test]
fn blocking_reloads_wait_for_the_part_or_a_later_segment() {
    let mut book = SequenceBook::default();
    let view = LiveView {
        segments: vec![
            cached(12, 1, 2, 60.0, 15, true),
            cached(13, 1, 3, 90.0, 2, false),
        ],
    };
    let window = book.number(&merge(&[], Some(&view)));
    assert!(
        has_part(&window, 1, Some(1)),
        "part 1 of the open segment is there"
    );
    assert!(!has_part(&window, 1, Some(2)), "part 2 is not yet");
    assert!(
        has_part(&window, 0, Some(15)),
        "a later segment answers for a finished one"
    );
    assert!(
        !has_part(&window, 1, None),
        "the open segment is not complete"
    );
    assert!(!has_part(&window, 2, Some(0)));
    assert_eq!(blocking_limit(&window), Duration::from_secs(6));

    let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(blocking_request(&p(&[])).unwrap(), None);
    assert_eq!(
        blocking_request(&p(&[("_HLS_msn", "7"), ("_HLS_part", "2")])).unwrap(),
        Some((7, Some(2)))
    );
    assert_eq!(
        blocking_request(&p(&[("_HLS_msn", "7")])).unwrap(),
        Some((7, None))
    );
    assert_eq!(
        blocking_request(&p(&[("_HLS_part", "2")]))
            .unwrap_err()
            .code(),
        "MissingParameter"
    );
    assert_eq!(
        blocking_request(&p(&[("_HLS_msn", "-1")]))
            .unwrap_err()
            .code(),
        "InvalidParameter"
    );
}

#[test]
fn only_listed_durable_bytes_are_served() {
    let view = LiveView {
        segments: vec![
            cached(12, 1, 2, 60.0, 3, true),
            cached(13, 1, 3, 66.0, 2, false),
        ],
    };
    let leaf = |s: &str, l: &str| LiveLeaf::parse(s, l).unwrap();
    assert_eq!(leaf("r1-s3", "part-1.mp4"), ((1, 3), LiveLeaf::Part(1)));
    assert_eq!(
        leaf(&segment_path(7, 0), "init.mp4"),
        ((7, 0), LiveLeaf::Init)
    );
    for (s, l) in [
        ("13", "init.mp4"),
        ("r1-s", "init.mp4"),
        ("r-1-s2", "init.mp4"),
        ("r1-s3", "part-.mp4"),
        ("r1-s3", "part-1.m4s"),
        ("r1-s3", "../x"),
    ] {
        assert_eq!(LiveLeaf::parse(s, l).unwrap_err().status(), 400, "{s}/{l}");
    }
    let open = find(&view, (1, 3)).unwrap();
    let sealed = find(&view, (1, 2)).unwrap();
    assert_eq!(sealed.id, SegmentId(12));
    assert!(find(&view, (1, 4)).is_none(), "not in the cache");
    assert_eq!(leaf_range(open, LiveLeaf::Init, 50), Some(0..50));
    assert_eq!(
        leaf_range(open, LiveLeaf::Part(0), 50),
        Some(50..150),
        "part 0 starts after the init"
    );
    assert_eq!(leaf_range(open, LiveLeaf::Part(1), 50), Some(150..250));
    assert_eq!(
        leaf_range(open, LiveLeaf::Part(2), 50),
        None,
        "not durable yet"
    );
    assert_eq!(
        leaf_range(open, LiveLeaf::Media, 50),
        None,
        "the open segment has no whole media yet"
    );
    assert_eq!(leaf_range(sealed, LiveLeaf::Media, 50), Some(50..350));
}

#[test]
fn the_book_remembers_where_the_store_keeps_a_segment_and_the_target_only_grows() {
    let mut book = SequenceBook::default();
    let view = LiveView {
        segments: vec![cached(13, 1, 3, 90.0, 2, false)],
    };
    book.number(&merge(&[blob(1, 2, 60.0, 90.0)], Some(&view)));
    assert_eq!(
        book.blob((1, 2)),
        Some("20231114T221420Z-r0000000001-s0000000002.mp4")
    );
    assert_eq!(book.blob((1, 3)), None, "not uploaded");
    assert_eq!(book.target_duration(2.0), 30);
    let view = LiveView {
        segments: vec![cached(14, 1, 4, 120.0, 1, false)],
    };
    book.number(&merge(&[], Some(&view)));
    assert_eq!(
        book.target_duration(2.0),
        30,
        "the longest segment listed so far"
    );
    assert_eq!(part_target(&book.number(&merge(&[], Some(&view)))), 2.0);
}
