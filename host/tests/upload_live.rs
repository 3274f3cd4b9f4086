//! The uploader behind a live recording: the real `mediagraph run` records the built-in test
//! camera over RTSP.
//!
//! - Outage (LVA's CVR worked example, scaled down): Azurite is stopped until the 15 MiB cache
//!   has evicted un-uploaded media, then restarted. The cache never exceeds its budget, the first
//!   blob uploaded after the restore is the oldest segment still cached, the asset has exactly
//!   one gap (from the last segment uploaded before the outage, as long as what was evicted),
//!   and every blob decodes.
//! - Cadence at real PT1M: in steady state the store sees at most one upload per minute.
//!
//! Both run in parallel (one test binary), ~3.5 minutes.

#[path = "../../tests/azurite.rs"]
#[allow(dead_code)]
mod azurite;
mod record_support;

use std::path::Path;
use std::time::{Duration, Instant};

use mediagraph::cache::GapCause;
use mediagraph::time::Ticks90k;
use mediagraph::upload::config::StoreArgs;
use record_support::*;

/// The uploader's "segment uploaded and verified" log lines: blob names in upload order.
fn uploads(log: &str) -> Vec<String> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("segment uploaded and verified"))
        .filter_map(|l| {
            let at = l.find("blob=")? + 5;
            Some(l[at..].split_whitespace().next()?.to_owned())
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes of the cache directory's files (segments, journal, logs).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Ids in the cache's uploaded.log, whose lines are `<id> <run>`.
fn uploaded_ids(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("uploaded.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The blob name suffix the uploader gives a segment: `<UTC start>-r<run>-s<seq>.mp4`.
fn blob_suffix(s: &Seg) -> String {
    mediagraph::upload::SegmentFacts {
        asset: String::new(),
        run: s.run,
        sequence: s.seq,
        start: Ticks90k(s.start),
        end: Ticks90k(s.end),
        codecs: "avc1".into(),
        extension: "mp4".into(),
    }
    .blob_name()
    .trim_start_matches('/')
    .to_owned()
}

#[test]
fn live_outage_evicts_oldest_and_restore_uploads_oldest_first_leaving_one_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut azurite = azurite::Azurite::start().expect("Azurite");
    let port = free_port();
    let clip = make_camera_clip(tmp.path(), 2000);
    let _camera = camera(port, &["--clip", clip.to_str().unwrap()]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let budget_mib = 15;
    let topology = write_topology(tmp.path(), &url, budget_mib, "PT30S");
    let data = tmp.path().join("data");
    let conn = azurite.connection_string();
    let mut rec = recorder_with(
        &topology,
        &data,
        &[],
        &[
            "--azure-connection-string",
            &conn,
            "--azure-container",
            "live",
            "--azure-create-container",
            "--upload-request-timeout-secs",
            "3",
            "--upload-request-retries",
            "0",
            "--upload-backoff-max-secs",
            "2",
        ],
    );
    let cache = cache_dir(&data, 1);
    let budget = budget_mib * 1024 * 1024;
    let mut peak = 0u64;
    let mut sample = |rec: &mut Proc| {
        let used = dir_bytes(&cache);
        peak = peak.max(used);
        assert!(
            used <= budget,
            "cache {used} bytes > budget {budget}: {:?}",
            files(&cache)
        );
        assert!(rec.is_running(), "recorder exited:\n{}", rec.log());
    };
    let wait = |what: &str,
                secs: u64,
                rec: &mut Proc,
                sample: &mut dyn FnMut(&mut Proc),
                f: &mut dyn FnMut(&Proc) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(rec) {
            sample(rec);
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                rec.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Online: two segments go up.
    wait("two uploads", 150, &mut rec, &mut sample, &mut |r| {
        uploads(&r.log()).len() >= 2
    });
    azurite.stop();
    let before = uploads(&rec.log());
    let last_before = sealed(&cache)
        .into_iter()
        .filter(|s| before.iter().any(|b| b.ends_with(&blob_suffix(s))))
        .max_by_key(|s| s.id)
        .expect("the uploaded segments are cached");

    // Outage: the cache fills and evicts media that was never uploaded.
    wait(
        "an eviction before upload",
        150,
        &mut rec,
        &mut sample,
        &mut |_| {
            gaps(&cache)
                .iter()
                .any(|g| g["cause"] == "EvictedBeforeUpload")
        },
    );
    assert!(
        rec.log()
            .contains("Microsoft.Media.Graph.Diagnostics.StorageError"),
        "the outage is reported"
    );
    let uploaded = uploaded_ids(&cache);
    let oldest_cached = sealed(&cache)
        .into_iter()
        .filter(|s| !uploaded.contains(&s.id))
        .min_by_key(|s| s.id)
        // The budget holds two segments: the one being written and one waiting for upload.
        .expect("a sealed segment waits for upload when the outage ends");
    azurite.restart().expect("Azurite restart");

    // Restore: uploads resume with the oldest cached segment.
    wait(
        "uploads after the restore",
        120,
        &mut rec,
        &mut sample,
        &mut |r| uploads(&r.log()).len() >= before.len() + 2,
    );
    let after = uploads(&rec.log());
    let first_after = &after[before.len()];
    assert!(
        first_after.ends_with(&blob_suffix(&oldest_cached)),
        "first upload after the restore {first_after} is not the oldest cached {oldest_cached:?}"
    );
    assert!(
        oldest_cached.start > last_before.end,
        "the oldest cached segment was recorded during the outage"
    );
    let evicted: Vec<serde_json::Value> = gaps(&cache)
        .into_iter()
        .filter(|g| g["cause"] == "EvictedBeforeUpload")
        .collect();
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(peak > budget / 2, "the cache was used: peak {peak}");

    // The asset: exactly one gap, from the last upload before the outage, as long as the
    // evicted media (± one segment).
    let store = StoreArgs {
        azure_connection_string: Some(conn),
        azure_container: "live".into(),
        ..StoreArgs::default()
    }
    .open()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blobs = rt.block_on(store.list_asset("cam1-default")).unwrap();
    let spans: Vec<(i64, i64)> = blobs
        .iter()
        .map(|b| {
            let (s, e) = b.span().expect("span");
            (s.0, e.0)
        })
        .collect();
    assert!(
        spans.windows(2).all(|w| w[0].0 < w[1].0),
        "time order: {spans:?}"
    );
    let holes: Vec<(i64, i64)> = spans
        .windows(2)
        .filter(|w| (w[1].0 - w[0].1).abs() > TICKS / 25)
        .map(|w| (w[0].1, w[1].0))
        .collect();
    assert_eq!(holes.len(), 1, "exactly one gap: {spans:?}");
    assert_eq!(
        holes[0].0, last_before.end,
        "the gap starts at the last segment uploaded before the outage"
    );
    let evicted_ticks: i64 = evicted
        .iter()
        .map(|g| g["end"].as_i64().unwrap() - g["start"].as_i64().unwrap())
        .sum();
    let hole = holes[0].1 - holes[0].0;
    eprintln!(
        "outage: cache peak {peak} of {budget} bytes; gap {:.1} s, evicted {:.1} s; {} blobs",
        hole as f64 / TICKS as f64,
        evicted_ticks as f64 / TICKS as f64,
        blobs.len()
    );
    assert!(
        (hole - evicted_ticks).abs() <= 31 * TICKS,
        "gap {hole} ticks vs evicted {evicted_ticks} ticks ({evicted:?})"
    );
    // The uploader stored the cache's gaps with the asset: every EvictedBeforeUpload gap of
    // gaps.log is a gap record in Azure, with its cause, inside the hole the blobs leave.
    let stored: Vec<(i64, i64)> = rt
        .block_on(store.list_gaps("cam1-default", Ticks90k(holes[0].0), Ticks90k(holes[0].1)))
        .unwrap()
        .into_iter()
        .filter(|g| g.cause == GapCause::EvictedBeforeUpload)
        .map(|g| (g.start.0, g.end.0))
        .collect();
    let logged: Vec<(i64, i64)> = evicted
        .iter()
        .map(|g| (g["start"].as_i64().unwrap(), g["end"].as_i64().unwrap()))
        .collect();
    assert_eq!(stored, logged, "gap records in the store vs gaps.log");
    for b in &blobs {
        let path = tmp.path().join("check.mp4");
        std::fs::write(&path, rt.block_on(store.read_blob(&b.name)).unwrap()).unwrap();
        let p = probe(&path);
        assert!(
            p.decode_errors.trim().is_empty() && !p.packets.is_empty(),
            "{}: {}",
            b.name,
            p.decode_errors
        );
    }
}

#[test]
fn live_pt1m_uploads_at_most_once_per_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT1M");
    let data = tmp.path().join("data");
    let store = tmp.path().join("store");
    let store_url = format!("file://{}", store.display());
    let mut rec = recorder_with(&topology, &data, &[], &["--asset-store", &store_url]);
    rec.wait_event("RecordingStarted", Duration::from_secs(120));
    // Three steady-state uploads: one per sealed minute.
    wait_until("three uploads", Duration::from_secs(240), || {
        uploads(&rec.log()).len() >= 3
    });
    let steady = uploads(&rec.log());
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let asset = store.join("cam1-default");
    let mut times: Vec<std::time::SystemTime> = steady
        .iter()
        .map(|b| {
            let name = b.rsplit('/').next().unwrap();
            // The metadata file is written by each upload; the blob itself may be a hard link
            // to the cache file and keep the time it was sealed.
            std::fs::metadata(asset.join(format!("{name}.json")))
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect();
    times.sort();
    assert!(times.len() >= 3);
    for w in times.windows(2) {
        let apart = w[1].duration_since(w[0]).unwrap();
        eprintln!("PT1M: uploads {apart:?} apart");
        assert!(
            apart >= Duration::from_millis(59_500),
            "two uploads {apart:?} apart with PT1M: {steady:?}"
        );
    }
}

/// SIGTERM while the store is unreachable: the open segment is sealed, the flush gives up after
/// its bound, the backlog stays cached, and the next start uploads it (oldest first, once each).
#[test]
fn backlog_left_at_sigterm_is_uploaded_on_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    // A file where the store's directory should be: every upload fails.
    let store = tmp.path().join("store");
    std::fs::write(&store, b"not a directory").unwrap();
    let store_url = format!("file://{}", store.display());
    let args = [
        "--asset-store",
        store_url.as_str(),
        "--upload-backoff-max-secs",
        "1",
        "--upload-flush-timeout-secs",
        "2",
    ];
    let mut rec = recorder_with(&topology, &data, &[], &args);
    let cache = cache_dir(&data, 1);
    wait_until("a sealed segment", Duration::from_secs(150), || {
        assert!(rec.is_running(), "recorder exited:\n{}", rec.log());
        !sealed(&cache).is_empty()
    });
    assert!(
        rec.log()
            .contains("Microsoft.Media.Graph.Diagnostics.StorageError")
    );
    std::thread::sleep(Duration::from_secs(4)); // the next segment has fragments
    rec.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = rec.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    let log = rec.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("upload backlog not drained"), "{log}");
    let left = sealed(&cache);
    assert!(left.len() >= 2, "the open segment was sealed too: {left:?}");
    assert!(uploaded_ids(&cache).is_empty());
    assert!(uploads(&log).is_empty(), "{log}");

    // The store is back; the next start uploads the backlog first, oldest first, once each.
    std::fs::remove_file(&store).unwrap();
    let mut rec = recorder_with(&topology, &data, &[], &args);
    let deadline = Instant::now() + Duration::from_secs(150);
    while !left.iter().all(|s| uploaded_ids(&cache).contains(&s.id)) {
        assert!(
            rec.is_running() && Instant::now() < deadline,
            "the backlog was not uploaded:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let order = uploads(&log);
    let expected: Vec<String> = left
        .iter()
        .map(|s| format!("cam1-default/{}", blob_suffix(s)))
        .collect();
    assert_eq!(
        order[..expected.len()],
        expected[..],
        "the backlog first, oldest first"
    );
    let blobs: Vec<String> = files(&store.join("cam1-default"))
        .into_iter()
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    assert_eq!(
        blobs.len(),
        order.len(),
        "each upload once: {blobs:?} vs {order:?}"
    );
    for s in &left {
        let blob = store.join("cam1-default").join(blob_suffix(s));
        assert_eq!(
            std::fs::read(&blob).unwrap_or_default(),
            std::fs::read(&s.path).unwrap_or_default(),
            "{} is the cached segment",
            blob.display()
        );
    }
}
