//! The cache budget: never exceeded, oldest evicted first.

use super::*;

#[test]
fn small_budget_is_never_exceeded_and_evicts_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 Mbit/s: a 30 s segment is ~11 MiB, so a 15 MiB cache (the smallest the topology rules
    // allow for PT30S) must evict while the open segment grows.
    let clip = make_clip(tmp.path(), 10, 3000, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let budget_mib = 15u64;
    let topology = write_topology(tmp.path(), &url, budget_mib, "PT30S");
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);
    // The asset store is unreachable (an outage), so evicted segments were never uploaded.
    let rec = recorder_with(
        &topology,
        &data,
        &[],
        &[
            "--asset-store",
            UNREACHABLE_STORE,
            "--upload-flush-timeout-secs",
            "2",
        ],
    );
    let limit = budget_mib * 1024 * 1024;
    let started = Instant::now();
    let mut peak = 0u64;
    let mut seen_ids = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(95) {
        let used: u64 = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        peak = peak.max(used);
        assert!(used <= limit, "cache holds {used} bytes, budget {limit}");
        seen_ids.extend(sealed(&dir).iter().map(|s| s.id));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");
    let segs = sealed(&dir);
    let remaining: Vec<u64> = segs.iter().map(|s| s.id).collect();
    seen_ids.extend(remaining.iter());
    let evicted: Vec<u64> = seen_ids
        .iter()
        .copied()
        .filter(|id| !remaining.contains(id))
        .collect();
    assert!(
        !evicted.is_empty(),
        "nothing was evicted (peak {peak} bytes); remaining {remaining:?}"
    );
    // Oldest first: every evicted segment is older than every remaining one.
    assert!(
        evicted.iter().max() < remaining.iter().min(),
        "evicted {evicted:?}, remaining {remaining:?}"
    );
    let evicted_gaps = gaps(&dir)
        .into_iter()
        .filter(|g| g["cause"] == "EvictedBeforeUpload")
        .count();
    assert_eq!(
        evicted_gaps,
        evicted.len(),
        "each evicted, never uploaded segment is a gap: {:?}",
        gaps(&dir)
    );
    check_segments(&segs, 30.0, GOP, FRAME);
}
