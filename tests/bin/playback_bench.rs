//! Benchmark: finding media in a long local asset. Writes 30 days of PT30S segments of one
//! camera (86,400 blobs with their metadata files, as the local store lays them out; a 5-minute
//! hole every day) into a local asset store, serves it through the HTTP front door on loopback
//! and times playback questions answered over HTTP: availableMedia at every precision, a 4 h
//! HLS playlist, the newest 4 h playlist, a 4 h segment list, the gaps of a week. Prints p50,
//! p99 and max per question, the time the first question took (the index rebuilt from the
//! 86,400 metadata files, as after an upgrade) and, for comparison, one listing that reads every
//! metadata file (what each of these questions did before the index).
//!
//! The blobs are empty files: no question reads media bytes. The store goes under
//! `$PLAYBACK_BENCH_DIR` (default /dev/shm, so the 170,000 small files need no disk).
//!
//! Usage: playback_bench [DAYS=30] [REQUESTS_PER_QUESTION=200]
//! Run in release mode: `cargo run --release -p mediagraph-tests --bin playback_bench`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph::cache::{Gap, GapCause};
use mediagraph::http::{FrontDoor, Limits};
use mediagraph::playback::server::Playback;
use mediagraph::time::{TICKS_PER_SECOND, Ticks90k};
use mediagraph::topology::AssetName;
use mediagraph::upload::local::LocalStore;
use mediagraph::upload::{AssetStore, SegmentFacts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ASSET: &str = "cam-bench";
const SEGMENT_SECS: i64 = 30;
const DAY: i64 = 86_400;
/// 2026-11-01T00:00:00Z
const T0: i64 = 1_793_491_200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let days = arg(1, 30)? as i64;
    let requests = arg(2, 200)? as usize;
    let base = std::env::var_os("PLAYBACK_BENCH_DIR").unwrap_or_else(|| "/dev/shm".into());
    let work = tempfile::tempdir_in(base)?;
    let root = work.path().join("assets");

    let started = Instant::now();
    let (segments, gaps) = write_asset(&root, days)?;
    eprintln!(
        "wrote {segments} blobs ({days} days of PT30S) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = Arc::new(LocalStore::new(root.clone()));
    store.put_gaps(ASSET, &gaps).await?;
    // put_gaps made the index from the folder; remove it so the first question rebuilds it
    // (what an upgraded store, or one whose index was deleted, does once).
    std::fs::remove_file(root.join(ASSET).join("index.log"))?;

    let door = FrontDoor::new(Limits::default(), None).playback(Playback::new(
        store.clone(),
        vec![AssetName::new(ASSET).map_err(anyhow::Error::msg)?],
    ));
    let listener = door.bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(door.serve(listener, std::future::pending()));

    let day = |d: i64| utc(T0 + d * DAY);
    let mid = T0 + days / 2 * DAY + 10 * 3600;
    let first = Instant::now();
    let (status, _) = get(
        addr,
        &format!("/assets/{ASSET}/availableMedia?precision=year"),
    )
    .await?;
    anyhow::ensure!(status == 200, "availableMedia: HTTP {status}");
    let rebuild = first.elapsed();
    eprintln!(
        "first question (index rebuilt from {segments} metadata files): {:.0} ms",
        rebuild.as_secs_f64() * 1e3
    );

    let questions: Vec<(&str, String)> = vec![
        (
            "availableMedia year",
            format!("/assets/{ASSET}/availableMedia?precision=year"),
        ),
        (
            "availableMedia month",
            format!(
                "/assets/{ASSET}/availableMedia?precision=month&startTime={}&endTime={}",
                &day(0)[..7],
                &day(days - 1)[..7]
            ),
        ),
        (
            "availableMedia day (31 d)",
            format!(
                "/assets/{ASSET}/availableMedia?precision=day&startTime={}&endTime={}",
                &day(0)[..10],
                &day(days.min(31) - 1)[..10]
            ),
        ),
        (
            "availableMedia full (25 h)",
            format!(
                "/assets/{ASSET}/availableMedia?precision=full&startTime={}&endTime={}",
                utc(mid),
                utc(mid + 25 * 3600)
            ),
        ),
        (
            "HLS playlist 4 h",
            format!(
                "/assets/{ASSET}/manifest(format=m3u8-aapl,startTime={},endTime={}).m3u8",
                utc(mid),
                utc(mid + 4 * 3600)
            ),
        ),
        (
            "HLS playlist newest 4 h",
            format!("/assets/{ASSET}/manifest.m3u8"),
        ),
        (
            "segments 4 h",
            format!(
                "/assets/{ASSET}/segments?startTime={}&endTime={}",
                utc(mid),
                utc(mid + 4 * 3600)
            ),
        ),
        (
            "gaps 7 d",
            format!(
                "/assets/{ASSET}/gaps?startTime={}&endTime={}",
                utc(mid),
                utc(mid + 7 * DAY)
            ),
        ),
    ];
    println!("question                        p50 ms   p99 ms   max ms   bytes");
    for (name, path) in &questions {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let (status, body) = get(addr, path).await?;
            times.push(t.elapsed());
            anyhow::ensure!(status == 200, "{name}: HTTP {status}: {body}");
            bytes = body.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pick =
            |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "{name:<30} {:>7.2} {:>8.2} {:>8.2} {bytes:>7}",
            ms(pick(0.50)),
            ms(pick(0.99)),
            ms(*times.last().unwrap())
        );
    }

    // Before the index: every question listed the asset, reading each metadata file.
    let t = Instant::now();
    let listed = store.list_asset(ASSET).await?;
    println!(
        "for comparison, one listing reading every metadata file ({} blobs): {:.0} ms",
        listed.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// The folder the local store would have after uploading `days` days: blob files (empty) and
/// their metadata files, one 5-minute hole a day (with its gap record).
fn write_asset(root: &Path, days: i64) -> anyhow::Result<(usize, Vec<Gap>)> {
    let dir = root.join(ASSET);
    std::fs::create_dir_all(&dir)?;
    let (mut count, mut gaps) = (0, Vec::new());
    for d in 0..days {
        let hole = T0 + d * DAY + 3 * 3600;
        gaps.push(Gap {
            start: Ticks90k::from_secs(hole),
            end: Ticks90k::from_secs(hole + 300),
            cause: GapCause::CameraOffline,
        });
        for s in 0..DAY / SEGMENT_SECS {
            let start = T0 + d * DAY + s * SEGMENT_SECS;
            if (hole..hole + 300).contains(&start) {
                continue;
            }
            let facts = SegmentFacts {
                asset: ASSET.into(),
                run: d as u64 + 1,
                sequence: s as u64,
                start: Ticks90k::from_secs(start),
                end: Ticks90k(Ticks90k::from_secs(start).0 + SEGMENT_SECS * TICKS_PER_SECOND),
                codecs: "avc1.640028,mp4a.40.2".into(),
                extension: "mp4".into(),
            };
            let name = facts.blob_name();
            std::fs::write(root.join(&name), b"")?;
            std::fs::write(
                root.join(format!("{name}.json")),
                serde_json::to_vec_pretty(&facts.metadata(None))?,
            )?;
            count += 1;
        }
    }
    Ok((count, gaps))
}

fn utc(secs: i64) -> String {
    Ticks90k::from_secs(secs).to_rfc3339_millis()
}

/// One HTTP/1.1 GET on a fresh loopback connection: (status, body).
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}
