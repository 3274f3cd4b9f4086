//! The disk is bounded end to end: a cache and the default local asset store share one small
//! real file system (a 40 MiB tmpfs in a user + mount namespace, `unshare -rm`, which this test
//! re-runs itself in), and segments are recorded through the cache API as fast as the real
//! uploader (hard-linking into the store) takes them: 160 segments of 1 MiB, four times the
//! file system. Recording never meets a full disk (every fragment is written), the cache never
//! drops media that was not uploaded, the store's retention deletes its oldest blobs and says
//! so in one `Retention` gap record, and the newest media is all in the store.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::{Budget, Cache, GapCause, SegmentId, SegmentMeta};
use mediagraph::events::EventBus;
use mediagraph::time::{Duration90k, TICKS_PER_SECOND, Ticks90k};
use mediagraph::topology::OutputType;
use mediagraph::upload::AssetStore;
use mediagraph::upload::local::LocalStore;
use mediagraph::upload::uploader::{SinkTarget, Uploader, UploaderPolicy};

const INSIDE: &str = "MEDIAGRAPH_RETENTION_TEST_NAMESPACE";
const NAME: &str = "recording_through_a_small_disk_never_fills_it_and_loses_nothing_unuploaded";
const MIB: u64 = 1 << 20;
const DISK_MIB: u64 = 40;
const CACHE_MIB: u64 = 12;
const SEGMENTS: u64 = 160;
const FRAGMENT: usize = 128 << 10;
const FRAGMENTS: usize = 8;

#[test]
fn recording_through_a_small_disk_never_fills_it_and_loses_nothing_unuploaded() {
    if std::env::var_os(INSIDE).is_none() {
        let status = Command::new("unshare")
            .arg("-rm")
            .arg(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture"])
            .env(INSIDE, "1")
            .status()
            .expect("`unshare` (util-linux) is required: the test needs a real small file system");
        assert!(
            status.success(),
            "the test in its namespace failed: {status}"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={DISK_MIB}m"), "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount -t tmpfs failed (user + mount namespaces are required)"
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(record_through(&disk));
}

/// The default evictor's rule: lowest ids until enough is freed.
fn oldest_first(sealed: &[SegmentMeta], budget: Budget) -> Vec<SegmentId> {
    let excess = (budget.used_bytes + budget.incoming_bytes).saturating_sub(budget.limit_bytes);
    let mut freed = 0;
    sealed
        .iter()
        .take_while(|m| {
            let more = freed < excess;
            freed += m.bytes;
            more
        })
        .map(|m| m.id)
        .collect()
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = text.split_whitespace().map(|w| w.parse::<u64>().unwrap());
    n.next().unwrap() * n.next().unwrap()
}

async fn record_through(disk: &Path) {
    let (cache, _) = Cache::open(&disk.join("cache"), CACHE_MIB * MIB).unwrap();
    let cache = Arc::new(cache);
    let store = Arc::new(LocalStore::new(disk.join("assets")));
    let policy = UploaderPolicy {
        poll_interval: Duration::from_millis(5),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        flush_timeout: Duration::from_secs(10),
    };
    let target = SinkTarget {
        subject: "/graphInstances/cam/sinks/assetSink".into(),
        asset: "cam".into(),
        output_type: OutputType::AssetName,
        segment_length: Duration::ZERO,
    };
    let uploader = Uploader::spawn(
        target,
        policy,
        store.clone(),
        cache.clone(),
        EventBus::new(),
    );
    let payload = vec![0x5au8; FRAGMENT];
    let t0 = Ticks90k::from_secs(1_800_000_000);
    let run = cache.new_run();
    let mut least_free = u64::MAX;
    for seq in 0..SEGMENTS {
        let start = t0 + Duration90k::from_secs(seq as i64 * 30);
        cache
            .begin_segment(run, seq, start, "avc1.640028", "mp4")
            .unwrap();
        for f in 0..FRAGMENTS {
            cache.reserve(FRAGMENT as u64, &mut oldest_first).unwrap();
            let end =
                start + Duration90k((f as i64 + 1) * 30 * TICKS_PER_SECOND / FRAGMENTS as i64);
            if let Err(e) = cache.append_fragment(&[&payload], end) {
                panic!(
                    "segment {seq}: the disk filled ({e}); {} bytes free",
                    free_bytes(disk)
                );
            }
            least_free = least_free.min(free_bytes(disk));
        }
        cache.seal().unwrap();
        // As fast as the uploader takes it (a real camera is slower still).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cache.sealed_pending().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the uploader stalled: {:?}",
                uploader.status()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let report = uploader.stop().await;
    assert!(report.drained, "{:?}", report.status);
    assert_eq!(report.status.uploaded_segments, SEGMENTS);

    let lost: Vec<_> = cache
        .gaps()
        .into_iter()
        .filter(|g| {
            matches!(
                g.cause,
                GapCause::EvictedBeforeUpload | GapCause::EvictedDiskFull | GapCause::DiskFull
            )
        })
        .collect();
    assert!(lost.is_empty(), "media lost before upload: {lost:?}");

    let all = (Ticks90k(i64::MIN), Ticks90k(i64::MAX));
    let kept = store.list_range("cam", all.0, all.1).await.unwrap().items;
    let spans: Vec<(Ticks90k, Ticks90k)> = kept.iter().filter_map(|b| b.span()).collect();
    let newest_end = t0 + Duration90k::from_secs(SEGMENTS as i64 * 30);
    assert_eq!(
        spans.last().map(|s| s.1),
        Some(newest_end),
        "the newest media is stored"
    );
    assert!(
        spans.windows(2).all(|w| w[0].1 == w[1].0),
        "what is kept is the newest stretch, without holes"
    );
    let kept_mib = kept.len() as u64 * (FRAGMENTS * FRAGMENT) as u64 / MIB;
    assert!(
        kept_mib + CACHE_MIB <= DISK_MIB,
        "{kept_mib} MiB kept beside a {CACHE_MIB} MiB cache on a {DISK_MIB} MiB disk"
    );
    // The store used the room the cache's budget leaves, less its 2 % headroom.
    assert!(
        kept_mib + CACHE_MIB + 4 >= DISK_MIB,
        "only {kept_mib} MiB kept on a {DISK_MIB} MiB disk"
    );
    let gaps = store.list_gaps("cam", all.0, all.1).await.unwrap();
    assert_eq!(
        gaps.iter()
            .map(|g| (g.start, g.end, g.cause))
            .collect::<Vec<_>>(),
        vec![(t0, spans[0].0, GapCause::Retention)],
        "one Retention gap up to the oldest media kept"
    );
    eprintln!(
        "{SEGMENTS} MiB recorded through a {DISK_MIB} MiB disk: {} segments kept, least free {:.1} MiB",
        kept.len(),
        least_free as f64 / MIB as f64
    );
}
