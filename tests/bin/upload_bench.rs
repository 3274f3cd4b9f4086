//! Benchmark: catch-up after an outage. Fills one cache per camera with a backlog of segments
//! (2 Mbit/s × segmentLength each), starts Azurite on loopback, then lets one uploader per camera
//! drain its backlog while every camera keeps recording at 2 Mbit/s into its cache. Prints the
//! drain throughput, the real-time factor and the CPU time of this process per GB uploaded.
//!
//! Usage: upload_bench [CAMERAS=8] [BACKLOG_SEGMENTS_PER_CAMERA=8] [SEGMENT_SECS=30]
//! Run in release mode: `cargo run --release -p mediagraph-tests --bin upload_bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::Cache;
use mediagraph::events::EventBus;
use mediagraph::time::{Duration90k, Ticks90k};
use mediagraph::upload::config::StoreArgs;
use mediagraph::upload::uploader::{SinkTarget, Uploader, UploaderPolicy};
use mediagraph_tests::azurite::Azurite;

const BITRATE_BYTES_PER_SEC: usize = 2_000_000 / 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let cameras = arg(1, 8)? as usize;
    let backlog = arg(2, 8)?;
    let segment_secs = arg(3, 30)? as i64;
    let segment_bytes = BITRATE_BYTES_PER_SEC * segment_secs as usize;

    let azurite = Azurite::start()?;
    let work = tempfile::tempdir()?;
    let payload: Vec<u8> = (0..segment_bytes)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let base = Ticks90k::now() - Duration90k::from_secs((backlog as i64 + 1) * segment_secs);
    let mut caches = Vec::new();
    for cam in 0..cameras {
        let (cache, _) = Cache::open(&work.path().join(format!("cam{cam}")), u64::MAX)?;
        let run = cache.new_run();
        for seq in 0..backlog {
            let start = base + Duration90k::from_secs(seq as i64 * segment_secs);
            cache.begin_segment(run, seq, start, "avc1.640028", "mp4")?;
            for (i, second) in payload.chunks(BITRATE_BYTES_PER_SEC).enumerate() {
                cache.append_fragment(&[second], start + Duration90k::from_secs(i as i64 + 1))?;
            }
            cache.seal()?;
        }
        caches.push((Arc::new(cache), run));
    }
    let backlog_bytes = (cameras as u64) * backlog * segment_bytes as u64;
    eprintln!(
        "backlog: {cameras} cameras x {backlog} segments x {segment_secs} s = {:.1} MB",
        backlog_bytes as f64 / 1e6
    );

    let flags = StoreArgs {
        azure_connection_string: Some(azurite.connection_string()),
        azure_container: "bench".into(),
        azure_create_container: true,
        ..StoreArgs::default()
    };
    let store = flags.open()?;
    store.prepare().await?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut uploaders = Vec::new();
    let mut recorders = Vec::new();
    for (cam, (cache, run)) in caches.iter().enumerate() {
        let target = SinkTarget {
            subject: format!("/graphInstances/bench/sinks/cam{cam}"),
            asset: format!("bench-cam{cam}"),
            output_type: mediagraph::topology::OutputType::AssetName,
            segment_length: Duration::from_secs(segment_secs as u64),
        };
        let policy = UploaderPolicy {
            poll_interval: Duration::from_millis(50),
            ..UploaderPolicy::default()
        };
        uploaders.push(Uploader::spawn(
            target,
            policy,
            store.clone(),
            cache.clone(),
            EventBus::new(),
        ));
        recorders.push(tokio::spawn(record_live(
            cache.clone(),
            *run,
            base,
            backlog,
            segment_secs,
        )));
    }
    while uploaders
        .iter()
        .any(|u| u.status().uploaded_segments < backlog)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let uploaded: u64 = uploaders.iter().map(|u| u.status().uploaded_bytes).sum();
    for r in &recorders {
        r.abort();
    }
    let backlog_media_secs = (cameras as f64) * backlog as f64 * segment_secs as f64;
    println!("cameras={cameras} backlog_segments_per_camera={backlog} segment_secs={segment_secs}");
    println!("uploaded_bytes={uploaded} drain_seconds={drain:.2}");
    println!("throughput_MBps={:.1}", uploaded as f64 / 1e6 / drain);
    println!(
        "real_time_factor={:.1} (backlog media seconds per camera drained per wall second)",
        backlog_media_secs / cameras as f64 / drain
    );
    println!(
        "cpu_seconds={cpu:.2} cpu_seconds_per_GB={:.2}",
        cpu / (uploaded as f64 / 1e9)
    );
    for u in uploaders {
        u.stop().await;
    }
    Ok(())
}

/// Keeps a camera recording at 2 Mbit/s (one fragment per second) after the backlog.
async fn record_live(cache: Arc<Cache>, run: u64, base: Ticks90k, backlog: u64, segment_secs: i64) {
    let second = vec![7u8; BITRATE_BYTES_PER_SEC];
    let mut seq = backlog;
    loop {
        let start = base + Duration90k::from_secs(seq as i64 * segment_secs);
        if cache
            .begin_segment(run, seq, start, "avc1.640028", "mp4")
            .is_err()
        {
            return;
        }
        for i in 0..segment_secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let c = cache.clone();
            let part = second.clone();
            let end = start + Duration90k::from_secs(i + 1);
            let _ = tokio::task::spawn_blocking(move || c.append_fragment(&[&part], end)).await;
        }
        let _ = cache.seal();
        seq += 1;
    }
}

/// User + system CPU time of this process (Azurite is a separate process, not counted).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from after the command name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
