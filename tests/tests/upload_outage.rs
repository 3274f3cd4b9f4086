//! LVA's CVR worked example, scaled down: recording continues into a small cache while the
//! store is unreachable, the cache evicts the oldest data, and after the restore the uploader
//! starts from the oldest segment still cached, leaving exactly one gap in the asset.
//!
//! Segments are real H.264 MP4 files (made with ffmpeg) written through the cache's own API, the
//! way the recorder writes them; the store is Azurite, stopped and restarted on the same port.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::{Cache, GapCause, SegmentMeta};
use mediagraph::events::EventBus;
use mediagraph::time::{Duration90k, Ticks90k};
use mediagraph::upload::config::StoreArgs;
use mediagraph::upload::uploader::{SinkTarget, Uploader, UploaderPolicy};
use mediagraph_tests::azurite::Azurite;

const SEGMENT_SECS: i64 = 2;
const ASSET: &str = "cam-outage";

/// Three distinct 2 s H.264 clips.
fn clips(dir: &Path) -> Vec<Vec<u8>> {
    ["testsrc", "testsrc2", "smptebars"]
        .iter()
        .map(|src| {
            let out = dir.join(format!("{src}.mp4"));
            let status = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                .arg(format!(
                    "{src}=size=160x120:rate=10:duration={SEGMENT_SECS}"
                ))
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "10"])
                .arg(&out)
                .status()
                .expect("ffmpeg must be installed (.ci/run installs it)");
            assert!(status.success(), "ffmpeg failed for {src}");
            std::fs::read(&out).unwrap()
        })
        .collect()
}

/// Records segment `seq` the way the recorder does: make room (oldest first), write, seal.
fn record(cache: &Cache, base: Ticks90k, seq: u64, clip: &[u8]) -> SegmentMeta {
    let evicted = cache
        .reserve(clip.len() as u64, &mut |entries, _| vec![entries[0].id])
        .expect("room");
    let start = base + Duration90k::from_secs(seq as i64 * SEGMENT_SECS);
    cache
        .begin_segment(1, seq, start, "avc1.64000c", "mp4")
        .unwrap();
    cache
        .append_fragment(&[clip], start + Duration90k::from_secs(SEGMENT_SECS))
        .unwrap();
    let meta = cache.seal().unwrap().expect("sealed");
    assert!(
        cache.used_bytes() <= cache.limit_bytes(),
        "cache over budget: {} > {} (evicted {evicted:?})",
        cache.used_bytes(),
        cache.limit_bytes()
    );
    meta
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_evicts_oldest_and_restore_uploads_oldest_first_leaving_one_gap() {
    let mut azurite = Azurite::start().expect("Azurite");
    let work = tempfile::tempdir().unwrap();
    let clips = clips(work.path());
    let largest = clips.iter().map(Vec::len).max().unwrap() as u64;
    // Room for a handful of segments only.
    let budget = 4 * largest + largest / 2;
    let (cache, _) = Cache::open(&work.path().join("cache"), budget).unwrap();
    let cache = Arc::new(cache);
    let flags = StoreArgs {
        azure_connection_string: Some(azurite.connection_string()),
        azure_container: "outage".into(),
        azure_create_container: true,
        upload_block_mib: 1,
        upload_request_timeout_secs: 2,
        upload_request_retries: 0,
        ..StoreArgs::default()
    };
    let store = flags.open().unwrap();
    let target = SinkTarget {
        subject: "/graphInstances/outage/sinks/assetSink".into(),
        asset: ASSET.into(),
        output_type: mediagraph::topology::OutputType::AssetName,
        segment_length: Duration::from_secs(SEGMENT_SECS as u64),
    };
    let policy = UploaderPolicy {
        poll_interval: Duration::from_millis(20),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
        flush_timeout: Duration::from_secs(30),
    };
    let events = EventBus::new();
    let uploader = Uploader::spawn(target, policy, store.clone(), cache.clone(), events.clone());
    // Media time an hour ago: the segments are already complete when recorded here.
    let base = Ticks90k::now() - Duration90k::from_secs(3600);

    // Online: three segments go up.
    for seq in 0..3 {
        record(&cache, base, seq, &clips[seq as usize % 3]);
    }
    wait_for("the first uploads", Duration::from_secs(60), || {
        uploader.status().uploaded_segments == 3
    })
    .await;

    // Outage: recording goes on, the cache fills and evicts un-uploaded segments.
    azurite.stop();
    for seq in 3..15 {
        record(&cache, base, seq, &clips[seq as usize % 3]);
    }
    wait_for("upload failures", Duration::from_secs(60), || {
        uploader.status().consecutive_failures >= 2
    })
    .await;
    let error = uploader.status().last_error.unwrap();
    assert!(error.contains("endpoint unreachable"), "{error}");
    let evicted: Vec<_> = cache
        .gaps()
        .into_iter()
        .filter(|g| g.cause == GapCause::EvictedBeforeUpload)
        .collect();
    assert!(!evicted.is_empty(), "the outage must have evicted data");
    let still_cached = cache.sealed_pending();
    let oldest_cached = still_cached.first().unwrap().clone();
    let sequences: Vec<u64> = still_cached.iter().map(|m| m.sequence).collect();
    let first = sequences[0];
    assert!(
        first > 3,
        "un-uploaded segments were evicted: {sequences:?}"
    );
    assert_eq!(
        sequences,
        (first..15).collect::<Vec<_>>(),
        "the oldest were evicted, the newest kept"
    );

    // Restore: the oldest cached segment goes first, then the rest in order.
    azurite.restart().expect("Azurite restart");
    wait_for("catch-up", Duration::from_secs(120), || {
        cache.sealed_pending().is_empty()
    })
    .await;
    let report = uploader.stop().await;
    assert!(report.drained);
    let after_restore: Vec<String> = report.status.uploaded[3..].to_vec();
    let expected: Vec<String> = still_cached
        .iter()
        .map(|m| format!("{ASSET}/") + &blob_suffix(m))
        .collect();
    assert_eq!(
        after_restore, expected,
        "oldest cached first, then in order"
    );
    assert!(after_restore[0].ends_with(&blob_suffix(&oldest_cached)));

    // The asset: time-ordered blobs with exactly one gap, as long as what was evicted.
    let blobs = store.list_asset(ASSET).await.unwrap();
    assert_eq!(blobs.len(), 3 + still_cached.len(), "{blobs:#?}");
    let spans: Vec<_> = blobs.iter().map(|b| b.span().expect("span")).collect();
    let gaps: Vec<_> = spans
        .windows(2)
        .filter(|w| w[0].1 != w[1].0)
        .map(|w| (w[0].1, w[1].0))
        .collect();
    assert_eq!(gaps.len(), 1, "exactly one gap: {spans:?}");
    let (gap_start, gap_end) = gaps[0];
    assert_eq!(
        gap_start,
        base + Duration90k::from_secs(3 * SEGMENT_SECS),
        "gap starts at the last segment uploaded before the outage"
    );
    let evicted_span: Duration90k = evicted.iter().map(|g| g.end - g.start).sum();
    assert!(
        ((gap_end - gap_start) - evicted_span).abs() <= Duration90k::from_secs(SEGMENT_SECS),
        "gap {:?} vs evicted {evicted_span:?}",
        gap_end - gap_start
    );

    // Every blob is playable media.
    for blob in &blobs {
        let path = work.path().join("check.mp4");
        std::fs::write(&path, store.read_blob(&blob.name).await.unwrap()).unwrap();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .expect("ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.trim() == "h264,20",
            "{}: {text}",
            blob.name
        );
    }

    let kinds: Vec<String> = events
        .recent()
        .into_iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    // RecordingStarted/Stopped belong to the recorder, which this test does not run.
    for kind in [
        "Microsoft.Media.Graph.Operational.RecordingAvailable",
        "Microsoft.Media.Graph.Diagnostics.StorageError",
        "Mediagraph.Diagnostics.UploadCatchUp",
        "Mediagraph.Diagnostics.UploadCaughtUp",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}");
    }
}

/// The part of the blob name after the asset, derived like the uploader does.
fn blob_suffix(m: &SegmentMeta) -> String {
    let facts = mediagraph::upload::SegmentFacts {
        asset: String::new(),
        run: m.run,
        sequence: m.sequence,
        start: m.start,
        end: m.end,
        codecs: m.codecs.clone(),
        extension: "mp4".into(),
    };
    facts.blob_name().trim_start_matches('/').to_owned()
}
