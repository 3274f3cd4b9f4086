//! Benchmark: clip export of long ranges, streamed with bounded memory. Records one real PT30S
//! segment (the built-in test camera, H.264 and AAC, through `mediagraph run` into a local
//! store), then lays out a 24 h asset of copies of it: consecutive blobs with contiguous
//! metadata times, each blob a hard link to the one recorded file (no extra disk), each copy in
//! its own run, because export trusts the media times within a run and only rebases them
//! across runs (the copies' media times all restart at the same point).
//!
//! It then runs the release `mediagraph export` (next to this binary) for the first hour and
//! for the whole day under `/usr/bin/time -v` (peak RSS, wall and CPU time, bytes written),
//! ffprobes both clips' durations against the ranges asked, and fetches `GET /assets/{asset}/export.mp4` from the playback router on loopback:
//! the hour's time to the first body byte and to the last, and the day's time to the first.
//!
//! The store and the clips go under `$EXPORT_BENCH_DIR` (default /dev/shm; the day's clip is
//! ~4 GB, removed at the end).
//!
//! Usage: export_bench
//! Run in release mode: `cargo build --release -p mediagraph -p mediagraph-tests`, then
//! `target/release/export_bench`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mediagraph::http::{FrontDoor, Limits};
use mediagraph::playback::server::Playback;
use mediagraph::time::{Duration90k, TICKS_PER_SECOND, Ticks90k};
use mediagraph::topology::AssetName;
use mediagraph::upload::SegmentFacts;
use mediagraph::upload::local::LocalStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ASSET: &str = "cam-export";
/// The asset the recording topology names (`cam1-${System.GraphInstanceName}`).
const RECORDED_ASSET: &str = "cam1-default";
/// 2026-11-01T00:00:00Z
const T0: i64 = 1_793_491_200;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mediagraph = std::env::current_exe()?.with_file_name("mediagraph");
    anyhow::ensure!(
        mediagraph.exists(),
        "{} is missing: build it with `cargo build --release -p mediagraph`",
        mediagraph.display()
    );
    anyhow::ensure!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is required (Debian package time)"
    );
    let base = std::env::var_os("EXPORT_BENCH_DIR").unwrap_or_else(|| "/dev/shm".into());
    let work = tempfile::tempdir_in(base)?;

    let started = Instant::now();
    let (segment, facts) = record_one_segment(&mediagraph, work.path())?;
    let span = facts.end - facts.start;
    let segment_bytes = std::fs::metadata(&segment)?.len();
    eprintln!(
        "recorded one segment: {:.3} s, {segment_bytes} bytes, {} ({:.0} s)",
        secs(span),
        facts.codecs,
        started.elapsed().as_secs_f64()
    );

    let root = work.path().join("assets");
    let blobs = write_asset(&root, &segment, &facts.codecs, span, DAY)?;
    let store_url = format!("file://{}", root.display());

    let mut rows = Vec::new();
    for (label, length) in [("1 h", HOUR), ("24 h", DAY)] {
        let clip = work.path().join("clip.mp4");
        let run = export(&mediagraph, &store_url, (T0, T0 + length), &clip)?;
        let probed = probe_duration(&clip)?;
        std::fs::remove_file(&clip)?;
        rows.push((label, length, blobs_spanned(length, span), run, probed));
    }

    let store = Arc::new(LocalStore::new(root.clone()));
    let door = FrontDoor::new(Limits::default(), None).playback(Playback::new(
        store,
        vec![AssetName::new(ASSET).map_err(anyhow::Error::msg)?],
    ));
    let listener = door.bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(door.serve(listener, std::future::pending()));
    let hour_http = fetch(addr, (T0, T0 + HOUR), true).await?;
    let day_http = fetch(addr, (T0, T0 + DAY), false).await?;

    println!(
        "asset: {blobs} blobs of {:.3} s, hard links to one {:.1} MB segment",
        secs(span),
        segment_bytes as f64 / 1e6
    );
    println!(
        "mediagraph export   blobs   output MB   wall s   CPU s   peak RSS MiB   ffprobe s   range s"
    );
    for (label, length, spanned, run, probed) in &rows {
        println!(
            "{label:<18} {spanned:>6} {:>11.1} {:>8.2} {:>7.2} {:>14.1} {probed:>11.3} {length:>9}",
            run.bytes as f64 / 1e6,
            run.wall.as_secs_f64(),
            run.cpu_secs,
            run.peak_rss_kib as f64 / 1024.0
        );
    }
    println!(
        "HTTP export.mp4 1 h: first body byte {:.1} ms, last {:.2} s, {:.1} MB",
        hour_http.first_byte.as_secs_f64() * 1e3,
        hour_http.total.as_secs_f64(),
        hour_http.bytes as f64 / 1e6
    );
    println!(
        "HTTP export.mp4 24 h: first body byte {:.1} ms",
        day_http.first_byte.as_secs_f64() * 1e3
    );
    anyhow::ensure!(
        hour_http.bytes == rows[0].3.bytes,
        "the HTTP clip has {} bytes, the CLI's {}",
        hour_http.bytes,
        rows[0].3.bytes
    );
    Ok(())
}

/// A child process killed when dropped, so a failed run leaves nothing behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Records the test camera with audio until the first PT30S segment is stored: the blob's path
/// and what its metadata says.
fn record_one_segment(mediagraph: &Path, dir: &Path) -> anyhow::Result<(PathBuf, SegmentFacts)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _camera = Killed(
        Command::new(mediagraph)
            .args(["camera", "--audio", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let topology = dir.join("topology.json");
    std::fs::write(&topology, topology_json(port).to_string())?;
    let store = dir.join("recorded");
    let log_path = dir.join("recorder.log");
    let mut recorder = Killed(
        Command::new(mediagraph)
            .arg("run")
            .arg(&topology)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--asset-store")
            .arg(format!("file://{}", store.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()?,
    );
    let asset_dir = store.join(RECORDED_ASSET);
    let deadline = Instant::now() + Duration::from_secs(180);
    let blob = loop {
        // The local store links the blob into place after its metadata.
        let found = std::fs::read_dir(&asset_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "mp4"));
        if let Some(blob) = found {
            break blob;
        }
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        anyhow::ensure!(
            recorder.0.try_wait()?.is_none(),
            "the recorder exited:\n{}",
            log()
        );
        anyhow::ensure!(
            Instant::now() < deadline,
            "no segment stored within 180 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let meta_path = PathBuf::from(format!("{}.json", blob.display()));
    let meta: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&meta_path)?).context("the segment's metadata")?;
    let tick = |k: &str| -> anyhow::Result<Ticks90k> {
        Ok(Ticks90k(
            meta.get(k)
                .with_context(|| format!("no {k} in {}", meta_path.display()))?
                .parse()?,
        ))
    };
    let facts = SegmentFacts {
        asset: RECORDED_ASSET.into(),
        run: 1,
        sequence: 0,
        start: tick("start")?,
        end: tick("end")?,
        codecs: meta.get("codec").cloned().unwrap_or_default(),
        extension: "mp4".into(),
    };
    Ok((blob, facts))
}

/// One test camera recorded with audio and video by one asset sink in PT30S segments.
fn topology_json(port: u16) -> serde_json::Value {
    serde_json::json!({
        "name": "ExportBench",
        "@apiVersion": "2.0",
        "properties": {
            "sources": [{
                "@type": "#Microsoft.Media.MediaGraphRtspSource",
                "name": "cam1",
                "transport": "tcp",
                "endpoint": {
                    "@type": "#Microsoft.Media.MediaGraphUnsecuredEndpoint",
                    "url": format!("rtsp://127.0.0.1:{port}/cam1"),
                    "credentials": {
                        "@type": "#Microsoft.Media.MediaGraphUsernamePasswordCredentials",
                        "username": "admin",
                        "password": "secret"
                    }
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.Media.MediaGraphAssetSink",
                "name": "sink1",
                "assetNamePattern": "cam1-${System.GraphInstanceName}",
                "segmentLength": "PT30S",
                "localMediaCacheMaximumSizeMiB": "256",
                "localMediaCachePath": "/var/lib/mediagraph/cache",
                "inputs": [{"nodeName": "cam1"}]
            }]
        }
    })
}

/// Enough consecutive copies of `segment` (each `span` long, its own run) to cover `length`
/// seconds from T0, as the local store lays them out; returns how many.
fn write_asset(
    root: &Path,
    segment: &Path,
    codecs: &str,
    span: Duration90k,
    length: i64,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(root.join(ASSET))?;
    let count = blobs_spanned(length, span);
    for i in 0..count {
        let start = Ticks90k::from_secs(T0) + Duration90k(span.0 * i as i64);
        let facts = SegmentFacts {
            asset: ASSET.into(),
            run: i as u64 + 1,
            sequence: 0,
            start,
            end: start + span,
            codecs: codecs.into(),
            extension: "mp4".into(),
        };
        let name = facts.blob_name();
        std::fs::hard_link(segment, root.join(&name))?;
        std::fs::write(
            root.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&facts.metadata(None))?,
        )?;
    }
    Ok(count)
}

/// The blobs of `span` needed to cover `length` seconds.
fn blobs_spanned(length: i64, span: Duration90k) -> usize {
    ((length * TICKS_PER_SECOND) as u64).div_ceil(span.0.max(1) as u64) as usize
}

struct ExportRun {
    wall: Duration,
    cpu_secs: f64,
    peak_rss_kib: u64,
    bytes: u64,
}

/// `mediagraph export` of `(start, end)` seconds into `out`, under `/usr/bin/time -v`.
fn export(
    mediagraph: &Path,
    store_url: &str,
    (start, end): (i64, i64),
    out: &Path,
) -> anyhow::Result<ExportRun> {
    let t = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(mediagraph)
        .args(["export", ASSET, "--start", &utc(start), "--end", &utc(end)])
        .arg("-o")
        .arg(out)
        .args(["--asset-store", store_url])
        .env_remove("MEDIAGRAPH_AZURE_CONNECTION_STRING")
        .output()?;
    let wall = t.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "export failed:\n{stdout}{stderr}");
    let field = |name: &str| -> anyhow::Result<f64> {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(": "))
            .with_context(|| format!("no {name:?} from /usr/bin/time:\n{stderr}"))?
            .trim()
            .parse()
            .with_context(|| format!("{name:?} from /usr/bin/time"))
    };
    // "<path>: <n> bytes (gaps closed)"
    let bytes = stdout
        .lines()
        .find_map(|l| l.rsplit_once(": ")?.1.split(' ').next()?.parse().ok())
        .with_context(|| format!("no byte count in {stdout:?}"))?;
    Ok(ExportRun {
        wall,
        cpu_secs: field("User time (seconds)")? + field("System time (seconds)")?,
        peak_rss_kib: field("Maximum resident set size (kbytes)")? as u64,
        bytes,
    })
}

/// The container duration ffprobe reads, in seconds.
fn probe_duration(clip: &Path) -> anyhow::Result<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration"])
        .args(["-of", "csv=p=0"])
        .arg(clip)
        .output()
        .context("ffprobe (Debian package ffmpeg)")?;
    anyhow::ensure!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

struct Fetched {
    first_byte: Duration,
    total: Duration,
    bytes: u64,
}

/// One HTTP/1.0 GET of the export route (so the body is not chunked): time to the first body
/// byte, and, when `whole`, to the end of the body and its length (otherwise it stops there).
async fn fetch(addr: SocketAddr, (start, end): (i64, i64), whole: bool) -> anyhow::Result<Fetched> {
    let path = format!(
        "/assets/{ASSET}/export.mp4?startTime={}&endTime={}",
        utc(start),
        utc(end)
    );
    let t = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let (first_byte, mut bytes) = loop {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the answer ended in its head: {head:?}");
        head.extend_from_slice(&buf[..n]);
        if let Some(split) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let status = String::from_utf8_lossy(&head[..split]);
            anyhow::ensure!(status.split(' ').nth(1) == Some("200"), "{status}");
            let body = (head.len() - split - 4) as u64;
            if body > 0 {
                break (t.elapsed(), body);
            }
        }
    };
    if whole {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok(Fetched {
        first_byte,
        total: t.elapsed(),
        bytes,
    })
}

fn secs(d: Duration90k) -> f64 {
    d.0 as f64 / TICKS_PER_SECOND as f64
}

fn utc(secs: i64) -> String {
    Ticks90k::from_secs(secs).to_rfc3339_millis()
}
