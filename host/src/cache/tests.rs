use std::io::{Read, Write};
use std::sync::Arc;

use super::*;
use crate::time::Duration90k;

const T0: Ticks90k = Ticks90k(1_700_000_000 * 90_000);

fn open(dir: &Path, limit: u64) -> (Cache, Recovery) {
    Cache::open(dir, limit).unwrap()
}

fn write_segment(
    c: &Cache,
    run: RunId,
    seq: u64,
    start: Ticks90k,
    fragments: &[&[u8]],
) -> SegmentMeta {
    c.begin_segment(run, seq, start, "avc1.64001F", "mp4")
        .unwrap();
    for (i, f) in fragments.iter().enumerate() {
        c.append_fragment(&[f], start + Duration90k(90_000 * (i as i64 + 1)))
            .unwrap();
    }
    c.seal().unwrap().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sealed_segments_survive_a_restart_with_the_same_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, rec) = open(tmp.path(), 1 << 20);
    assert!(!rec.crashed);
    let a = write_segment(&c, 1, 0, T0, &[b"aaaa", b"bb"]);
    let b = write_segment(&c, 1, 1, a.end, &[b"cccccc"]);
    c.mark_uploaded(a.id).unwrap();
    assert_eq!(c.sealed_pending(), vec![b.clone()]);
    c.close().unwrap();

    let (c, rec) = open(tmp.path(), 1 << 20);
    assert!(!rec.crashed, "clean close is not a crash");
    let sealed = c.sealed();
    assert_eq!(sealed.len(), 2);
    assert_eq!(
        (sealed[0].bytes, sealed[0].end, sealed[0].uploaded),
        (6, T0 + Duration90k(180_000), true)
    );
    assert_eq!(sealed[1], b);
    let mut data = Vec::new();
    c.open_sealed(a.id).unwrap().read_to_end(&mut data).unwrap();
    assert_eq!(data, b"aaaabb");
    assert_eq!(c.new_run(), 2, "run ids continue after the newest on disk");
}

#[test]
fn crash_keeps_complete_fragments_and_truncates_a_torn_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    c.begin_segment(7, 3, T0, "avc1.64001F", "mp4").unwrap();
    c.append_fragment(&[b"init", b"frag1"], T0 + Duration90k(90_000))
        .unwrap();
    c.append_fragment(&[b"frag2"], T0 + Duration90k(180_000))
        .unwrap();
    // The process dies while writing fragment 3: bytes on disk, no journal line yet; and a
    // torn journal line from an earlier half-written append.
    drop(c);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("000000000001.open"))
        .unwrap();
    f.write_all(b"torn-fragment").unwrap();
    let mut j = std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("000000000001.journal"))
        .unwrap();
    j.write_all(b"99999 123").unwrap();
    std::fs::write(tmp.path().join("uploaded.log.tmp"), b"junk").unwrap();

    let (c, rec) = open(tmp.path(), 1 << 20);
    assert!(rec.crashed);
    assert_eq!(rec.sealed_open, vec![SegmentId(1)]);
    assert_eq!(rec.truncated_bytes, 13);
    assert!(rec.removed.contains(&"uploaded.log.tmp".to_owned()));
    let s = c.sealed();
    assert_eq!(
        (s[0].run, s[0].sequence, s[0].start, s[0].end, s[0].bytes),
        (7, 3, T0, T0 + Duration90k(180_000), 14)
    );
    assert_eq!(
        std::fs::read(tmp.path().join(&s[0].file_name)).unwrap(),
        b"initfrag1frag2"
    );
    assert_eq!(
        names(tmp.path()),
        vec![
            s[0].file_name.clone(),
            "gaps.log".into(),
            "running".into(),
            "uploaded.log".into()
        ]
    );
    // New segments never reuse the recovered id.
    assert_eq!(
        c.begin_segment(8, 0, T0 + Duration90k(180_000), "avc1.64001F", "mp4")
            .unwrap(),
        SegmentId(2)
    );
}

#[test]
fn open_segment_without_a_complete_fragment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    c.begin_segment(1, 0, T0, "avc1.64001F", "mp4").unwrap();
    drop(c);
    std::fs::write(tmp.path().join("000000000001.open"), b"partial").unwrap();
    std::fs::write(tmp.path().join("000000000009.journal"), b"orphan").unwrap();
    let (c, rec) = open(tmp.path(), 1 << 20);
    assert!(rec.crashed);
    assert!(c.sealed().is_empty());
    assert_eq!(
        names(tmp.path()),
        vec!["gaps.log", "running", "uploaded.log"]
    );
}

#[test]
fn reserve_evicts_per_chooser_and_records_unuploaded_ranges_as_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    // 1/64 of the budget is kept for the journal: segments and logs may use 6300 bytes.
    let (c, _) = open(tmp.path(), 6400);
    let a = write_segment(&c, 1, 0, T0, &[&[1; 2000]]);
    let b = write_segment(&c, 1, 1, a.end, &[&[2; 2000]]);
    let d = write_segment(&c, 1, 2, b.end, &[&[3; 2000]]);
    c.mark_uploaded(b.id).unwrap();
    let logs = || file_bytes(tmp.path(), "uploaded.log") + file_bytes(tmp.path(), "gaps.log");
    let before = logs();
    // The chooser prefers uploaded data; the host follows it.
    let evicted = c
        .reserve(500, &mut |entries, budget| {
            assert_eq!(
                (budget.used_bytes, budget.limit_bytes, budget.incoming_bytes),
                (6000 + before, 6300, 500)
            );
            entries
                .iter()
                .filter(|e| e.uploaded)
                .map(|e| e.id)
                .collect()
        })
        .unwrap();
    assert_eq!(
        evicted,
        vec![SegmentMeta {
            uploaded: true,
            ..b.clone()
        }]
    );
    assert!(c.gaps().is_empty(), "uploaded data evicted is not a gap");
    // A chooser naming an unknown id is overruled: oldest first.
    let evicted = c.reserve(4000, &mut |_, _| vec![SegmentId(999)]).unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].id, a.id);
    assert_eq!(
        c.gaps(),
        vec![Gap {
            start: a.start,
            end: a.end,
            cause: GapCause::EvictedBeforeUpload
        }]
    );
    assert_eq!(c.sealed(), vec![d.clone()]);
    // The open segment and the logs count against the budget.
    c.begin_segment(1, 3, d.end, "avc1.64001F", "mp4").unwrap();
    c.append_fragment(&[&[4; 3000]], d.end + Duration90k(90_000))
        .unwrap();
    assert_eq!(c.used_bytes(), 5000 + logs());
    let err = c
        .reserve(4000, &mut |e, _| e.iter().map(|e| e.id).collect())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::NoRoom {
                incoming: 4000,
                limit: 6300,
                open: 3000
            }
        ),
        "{err}"
    );
    assert!(
        c.sealed().is_empty(),
        "everything sealed was evicted before giving up"
    );
    c.close().unwrap();
    let (c, _) = open(tmp.path(), 6400);
    assert_eq!(c.gaps().len(), 2, "gaps are durable");
}

#[test]
fn bad_name_parts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 100);
    assert!(matches!(
        c.begin_segment(1, 0, T0, "../x", "mp4"),
        Err(CacheError::BadName { .. })
    ));
    assert!(matches!(
        c.begin_segment(1, 0, T0, "avc1", "m/p4"),
        Err(CacheError::BadName { .. })
    ));
}

#[test]
fn sanitized_names_stay_inside_the_root() {
    assert_eq!(sanitize_dir_name("../../etc"), "_.._.._etc");
    assert_eq!(sanitize_dir_name("g1-assetSink"), "g1-assetSink");
    assert_eq!(sanitize_dir_name(""), "_");
    assert_eq!(sanitize_dir_name("a/b c"), "a_b_c");
}

#[test]
fn a_failed_seal_keeps_the_segment_counted_and_the_next_segment_seals_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    c.begin_segment(1, 0, T0, "avc1.64001F", "mp4").unwrap();
    c.append_fragment(&[b"aaaa"], T0 + Duration90k(90_000))
        .unwrap();
    // A directory where the sealed file goes makes the rename fail, as a full disk can.
    let target = tmp.path().join(format!(
        "{:012}_1_0_{}_{}_avc1.64001F.mp4",
        1,
        T0.0,
        T0.0 + 90_000
    ));
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("x"), b"x").unwrap();
    let err = c.seal().unwrap_err();
    assert!(matches!(err, CacheError::Io { op: "rename", .. }), "{err}");
    assert!(c.sealed().is_empty());
    let log = file_bytes(tmp.path(), "uploaded.log");
    assert_eq!(c.used_bytes(), 4 + log, "still counted against the budget");
    assert!(tmp.path().join("000000000001.open").exists());

    std::fs::remove_dir_all(&target).unwrap();
    c.begin_segment(1, 1, T0 + Duration90k(90_000), "avc1.64001F", "mp4")
        .unwrap();
    let sealed = c.sealed();
    assert_eq!(sealed.len(), 1, "sealed when the next segment began");
    assert_eq!(sealed[0].end, T0 + Duration90k(90_000));
    let mut data = Vec::new();
    c.open_sealed(sealed[0].id)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data, b"aaaa");
    c.append_fragment(&[b"bb"], T0 + Duration90k(180_000))
        .unwrap();
    c.seal().unwrap().unwrap();
    assert_eq!(c.used_bytes(), 6 + log);
    assert!(!names(tmp.path()).iter().any(|n| n.ends_with(".journal")));
}

fn file_bytes(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name)).map_or(0, |m| m.len())
}

#[test]
fn an_empty_cache_with_a_stale_uploaded_log_never_marks_new_segments() {
    let tmp = tempfile::tempdir().unwrap();
    // An old-format log (ids only) and a new-format line (id and run) of segments long gone.
    std::fs::write(tmp.path().join("uploaded.log"), "1\n2\n3 9\n").unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    let run = c.new_run();
    assert!(run >= 10, "run {run} reuses a run the log has seen");
    let a = write_segment(&c, run, 0, T0, &[b"new"]);
    assert!(a.id.0 >= 4, "id {:?} reuses an id the log has seen", a.id);
    c.close().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    assert_eq!(c.sealed_pending(), vec![a], "a new segment is not uploaded");
}

#[test]
fn ids_and_runs_continue_after_every_segment_was_evicted() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    let run = c.new_run();
    let a = write_segment(&c, run, 0, T0, &[b"aaaa"]);
    let b = write_segment(&c, run, 1, a.end, &[b"bbbb"]);
    c.mark_uploaded(a.id).unwrap();
    c.mark_uploaded(b.id).unwrap();
    let evicted = c
        .reserve(1 << 20, &mut |e, _| e.iter().map(|e| e.id).collect())
        .unwrap_err();
    assert!(matches!(evicted, CacheError::NoRoom { .. }));
    assert!(c.sealed().is_empty());
    c.close().unwrap();
    // Twice: the first start-up compacts the log to its high-water mark only.
    for _ in 0..2 {
        let (c, _) = open(tmp.path(), 1 << 20);
        assert!(c.new_run() > run);
        let d = write_segment(&c, run + 1, 0, b.end, &[b"d"]);
        assert!(d.id > b.id, "{:?} after {:?}", d.id, b.id);
        assert!(!c.sealed().iter().any(|m| m.uploaded));
        c.reserve(1 << 20, &mut |e, _| e.iter().map(|e| e.id).collect())
            .unwrap_err();
        c.close().unwrap();
    }
}

#[test]
fn the_logs_count_against_the_budget_and_stay_small_while_running() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 1 << 20;
    let (c, _) = open(tmp.path(), limit);
    let run = c.new_run();
    let mut end = T0;
    for seq in 0..400 {
        let m = write_segment(&c, run, seq, end, &[b"x"]);
        end = m.end;
        c.mark_uploaded(m.id).unwrap();
        c.record_gap(Gap {
            start: end,
            end: end + Duration90k(90_000),
            cause: GapCause::CameraOffline,
        })
        .unwrap();
        // Keep two segments: the others are evicted (uploaded, so no gap).
        if c.sealed().len() > 2 {
            c.evict_for_full_disk(1, &mut |e, _| vec![e[0].id]).unwrap();
        }
    }
    let logs = file_bytes(tmp.path(), "uploaded.log") + file_bytes(tmp.path(), "gaps.log");
    let segments: u64 = c.sealed().iter().map(|m| m.bytes).sum();
    assert_eq!(c.used_bytes(), segments + logs, "the logs are counted");
    assert!(
        file_bytes(tmp.path(), "uploaded.log") < 2048,
        "uploaded.log: {} bytes",
        file_bytes(tmp.path(), "uploaded.log")
    );
    assert!(
        file_bytes(tmp.path(), "gaps.log") <= 8 * 1024,
        "gaps.log: {} bytes",
        file_bytes(tmp.path(), "gaps.log")
    );
    let gaps = c.gaps();
    assert_eq!(gaps.last().unwrap().start, end, "the newest gaps are kept");
    c.close().unwrap();
    let (c, _) = open(tmp.path(), limit);
    assert_eq!(c.gaps(), gaps);
    assert_eq!(c.sealed().iter().filter(|m| m.uploaded).count(), 2);
}

#[test]
fn an_evicted_segment_leaves_the_index_only_once_its_file_is_gone_and_its_gap_is_logged_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1000);
    let a = write_segment(&c, 1, 0, T0, &[&[1; 400]]);
    let b = write_segment(&c, 1, 1, a.end, &[&[2; 400]]);
    // A non-empty directory in place of the file makes the unlink fail.
    let path = tmp.path().join(&a.file_name);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("x"), b"x").unwrap();
    let err = c.reserve(300, &mut |_, _| vec![a.id]).unwrap_err();
    assert!(matches!(err, CacheError::Io { op: "remove", .. }), "{err}");
    assert_eq!(c.sealed(), vec![a.clone(), b.clone()], "still indexed");
    let logs = file_bytes(tmp.path(), "uploaded.log") + file_bytes(tmp.path(), "gaps.log");
    assert_eq!(c.used_bytes(), 800 + logs);
    let gap = Gap {
        start: a.start,
        end: a.end,
        cause: GapCause::EvictedBeforeUpload,
    };
    assert_eq!(c.gaps(), vec![gap], "the gap is logged before the unlink");

    std::fs::remove_dir_all(&path).unwrap();
    std::fs::write(&path, [1; 400]).unwrap();
    let evicted = c.reserve(300, &mut |_, _| vec![a.id]).unwrap();
    assert_eq!(evicted[0].id, a.id);
    assert_eq!(c.sealed(), vec![b]);
    assert_eq!(c.gaps(), vec![gap], "logged once");
}

#[test]
fn a_segment_evicted_during_its_upload_leaves_no_false_gap_and_its_mark_no_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1000);
    let a = write_segment(&c, 1, 0, T0, &[&[1; 300]]);
    let b = write_segment(&c, 1, 1, a.end, &[&[2; 300]]);
    let _upload = c.open_sealed(a.id).unwrap();
    let evicted = c.reserve(400, &mut |_, _| vec![a.id]).unwrap();
    assert_eq!(evicted[0].id, a.id);
    assert_eq!(c.gaps().len(), 1, "logged before the unlink");
    // The blob lands after all: the mark is taken, and the gap was false.
    c.mark_uploaded(a.id).unwrap();
    assert_eq!(c.gaps(), vec![]);
    // A segment evicted during an upload that fails keeps its gap.
    let _upload = c.open_sealed(b.id).unwrap();
    c.reserve(1000, &mut |e, _| e.iter().map(|e| e.id).collect())
        .unwrap_err();
    assert_eq!(c.gaps().len(), 1);
    let log = std::fs::read_to_string(tmp.path().join("uploaded.log")).unwrap();
    assert!(log.contains(&format!("{} 1\n", a.id.0)), "{log}");
    c.close().unwrap();
    let (c, _) = open(tmp.path(), 1000);
    assert_eq!(
        c.gaps(),
        vec![Gap {
            start: b.start,
            end: b.end,
            cause: GapCause::EvictedBeforeUpload
        }]
    );
}

/// A file-sink layout on `dir`, files named `cam-<seconds>`.
fn open_files(dir: &Path, limit: u64) -> (Cache, Recovery) {
    let media = Dir::open_ambient_dir(dir, ambient_authority()).unwrap();
    Cache::open_files(
        media,
        limit,
        Box::new(|start: Ticks90k| format!("cam-{}", start.0 / 90_000)),
    )
    .unwrap()
}

#[test]
fn file_sink_files_are_named_by_the_pattern_and_the_bookkeeping_is_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open_files(tmp.path(), 1 << 20);
    let a = write_segment(&c, 1, 0, T0, &[b"aaaa", b"bb"]);
    // The same start renders the same name: the second file gets a suffix, nothing is replaced.
    let b = write_segment(&c, 2, 0, T0, &[b"cc"]);
    std::fs::write(tmp.path().join("cam-1700000000-2.mp4"), b"the operator's").unwrap();
    c.begin_segment(3, 0, T0, "avc1.64001F", "mp4").unwrap();
    assert_eq!(
        c.open_file_name().as_deref(),
        Some("cam-1700000000-3.mp4"),
        "a file already there is never a candidate"
    );
    c.append_fragment(&[b"dd"], T0 + Duration90k::from_secs(1))
        .unwrap();
    c.seal().unwrap();
    assert_eq!(
        (a.file_name.as_str(), a.uploaded),
        ("cam-1700000000.mp4", true)
    );
    assert_eq!(b.file_name, "cam-1700000000-1.mp4");
    assert_eq!(
        names(tmp.path()),
        [
            ".mediagraph",
            "cam-1700000000-1.mp4",
            "cam-1700000000-2.mp4",
            "cam-1700000000-3.mp4",
            "cam-1700000000.mp4"
        ]
    );
    assert_eq!(
        std::fs::read(tmp.path().join("cam-1700000000.mp4")).unwrap(),
        b"aaaabb"
    );
    assert_eq!(
        std::fs::read(tmp.path().join("cam-1700000000-2.mp4")).unwrap(),
        b"the operator's"
    );
    c.close().unwrap();

    // The index survives a restart; a file the operator deleted leaves it.
    std::fs::remove_file(tmp.path().join("cam-1700000000-1.mp4")).unwrap();
    let (c, rec) = open_files(tmp.path(), 1 << 20);
    assert!(!rec.crashed);
    let names: Vec<String> = c.sealed().into_iter().map(|m| m.file_name).collect();
    assert_eq!(names, ["cam-1700000000.mp4", "cam-1700000000-3.mp4"]);
}

#[test]
fn file_names_stay_plain_files_inside_the_output_directory() {
    for (raw, plain) in [
        ("../../etc/passwd", "_.._.._etc_passwd"),
        (".mediagraph", "_.mediagraph"),
        ("..", "_.."),
        ("", "_"),
        ("a\\b\0c", "a_b_c"),
        ("cam-20260101T000000Z", "cam-20260101T000000Z"),
    ] {
        assert_eq!(plain_file_name(raw), plain, "{raw:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let media = Dir::open_ambient_dir(&out, ambient_authority()).unwrap();
    let (c, _) = Cache::open_files(media, 1 << 20, Box::new(|_| "../escaped".to_owned())).unwrap();
    let m = write_segment(&c, 1, 0, T0, &[b"x"]);
    assert_eq!(m.file_name, "_.._escaped.mp4");
    assert_eq!(
        names(tmp.path()),
        ["out"],
        "nothing written outside the output directory"
    );
}

#[test]
fn file_sink_evicts_the_oldest_files_and_recovers_the_open_one_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let (c, _) = open_files(tmp.path(), limit);
    let chunk = vec![7u8; 60 * 1024];
    let mut start = T0;
    for run in 1..=6 {
        c.reserve(chunk.len() as u64, &mut |entries, _| vec![entries[0].id])
            .unwrap();
        let m = write_segment(&c, run, 0, start, &[&chunk]);
        start = m.end + Duration90k::from_secs(1);
        assert!(c.used_bytes() <= limit);
    }
    let kept: Vec<String> = c.sealed().into_iter().map(|m| m.file_name).collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(
        !tmp.path().join("cam-1700000000.mp4").exists(),
        "the oldest went first"
    );
    assert!(
        c.gaps().is_empty(),
        "a file sink's files are not pending uploads: no gaps"
    );

    // kill -9 with a file open: its complete fragment is kept, the torn rest is cut.
    c.begin_segment(9, 0, start, "avc1.64001F", "mp4").unwrap();
    let name = c.open_file_name().unwrap();
    c.append_fragment(&[b"whole"], start + Duration90k::from_secs(1))
        .unwrap();
    drop(c);
    let open = tmp
        .path()
        .join(".mediagraph")
        .join(format!("{:012}.open", 7));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&open)
        .unwrap();
    f.write_all(b"torn").unwrap();
    assert!(
        !tmp.path().join(&name).exists(),
        "only finished files are in the directory"
    );
    let (c, rec) = open_files(tmp.path(), limit);
    assert!(rec.crashed);
    assert_eq!(rec.truncated_bytes, 4);
    assert_eq!(std::fs::read(tmp.path().join(&name)).unwrap(), b"whole");
    assert_eq!(c.sealed().len(), 5);
    assert!(!open.exists());
}

fn oldest_first(entries: &[SegmentMeta], _: Budget) -> Vec<SegmentId> {
    entries.iter().take(1).map(|e| e.id).collect()
}

#[test]
fn live_view_shows_durable_fragments_then_the_sealed_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    let mut live = c.live();
    assert!(live.borrow_and_update().segments.is_empty());
    let id = c.begin_segment(3, 5, T0, "avc1.64001F", "mp4").unwrap();
    assert!(
        live.borrow_and_update().segments.is_empty(),
        "a segment without a durable fragment is not shown"
    );
    let second = T0 + Duration90k(90_000);
    c.append_fragment_flagged(&[b"init", b"frag1"], second, false)
        .unwrap();
    assert!(
        live.has_changed().unwrap(),
        "a durable fragment is published"
    );
    c.append_fragment_flagged(&[b"frag2"], T0 + Duration90k(135_000), false)
        .unwrap();
    c.append_fragment_flagged(&[b"frag03"], T0 + Duration90k(225_000), true)
        .unwrap();
    let view = live.borrow_and_update().clone();
    let open = view.open().expect("open segment shown");
    assert_eq!(
        (open.id, open.run, open.sequence, open.start, open.bytes),
        (id, 3, 5, T0, 20)
    );
    assert_eq!(
        open.fragments[..],
        [
            LiveFragment {
                offset: 0,
                len: 9,
                start: T0,
                end: second,
                independent: true, // a segment's first fragment
            },
            LiveFragment {
                offset: 9,
                len: 5,
                start: second,
                end: T0 + Duration90k(135_000),
                independent: false,
            },
            LiveFragment {
                offset: 14,
                len: 6,
                start: T0 + Duration90k(135_000),
                end: T0 + Duration90k(225_000),
                independent: true,
            },
        ]
    );
    assert_eq!(open.fragments[2].duration(), Duration90k(90_000));

    let meta = c.seal().unwrap().unwrap();
    let view = live.borrow_and_update().clone();
    assert!(view.open().is_none());
    let sealed = &view.segments[0];
    assert!(sealed.sealed && !sealed.uploaded);
    assert_eq!((sealed.end, sealed.bytes), (meta.end, 20));
    assert_eq!(sealed.fragments.len(), 3, "fragments kept after the seal");

    c.mark_uploaded(id).unwrap();
    assert!(live.borrow_and_update().segments[0].uploaded);
    c.reserve(1 << 20, &mut oldest_first).unwrap_err();
    assert!(
        live.borrow_and_update().segments.is_empty(),
        "an evicted segment leaves the view"
    );
}

#[test]
fn live_reads_follow_a_segment_from_open_to_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = open(tmp.path(), 1 << 20);
    let id = c.begin_segment(1, 0, T0, "avc1.64001F", "mp4").unwrap();
    c.append_fragment(&[b"abc"], T0 + Duration90k(90_000))
        .unwrap();
    let mut before = Vec::new();
    c.open_live(id).unwrap().read_to_end(&mut before).unwrap();
    assert_eq!(before, b"abc");
    let held = c.open_live(id).unwrap();
    c.append_fragment(&[b"de"], T0 + Duration90k(180_000))
        .unwrap();
    c.seal().unwrap().unwrap();
    let mut after = Vec::new();
    c.open_live(id).unwrap().read_to_end(&mut after).unwrap();
    assert_eq!(after, b"abcde", "found under its sealed name");
    let mut through_rename = Vec::new();
    (&held).read_to_end(&mut through_rename).unwrap();
    assert_eq!(
        through_rename, b"abcde",
        "a handle opened before the seal still reads"
    );
    assert!(matches!(
        c.open_live(SegmentId(99)),
        Err(CacheError::UnknownSegment(SegmentId(99)))
    ));
}

#[test]
fn live_caches_forget_a_dropped_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let caches = LiveCaches::default();
    let cache = Arc::new(open(tmp.path(), 1 << 20).0);
    caches.register("cam", &cache);
    assert!(caches.get("cam").is_some_and(|c| Arc::ptr_eq(&c, &cache)));
    assert!(caches.get("other").is_none());
    drop(cache);
    assert!(caches.get("cam").is_none());
}
