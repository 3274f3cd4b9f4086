//! A full cache file system: `mediagraph run` records the test camera into a cache whose
//! directory is a real 20 MiB tmpfs (a user + mount namespace made by `unshare -rm`), with a
//! budget of 200 MiB, so the file system and not the budget is the limit. The store is a local
//! directory outside the tmpfs.
//!
//! Episode 1: a filler file takes the whole tmpfs before recording starts; nothing can be
//! evicted, so frames are dropped (DataDropped, a `DiskFull` gap) until the test deletes the
//! filler, and recording resumes by itself. Episode 2: the recording itself fills the tmpfs;
//! the oldest segment is evicted and recording goes on. Each episode is reported once
//! (`Mediagraph.Diagnostics.CacheDiskFull`), the process never fails, and every uploaded
//! segment, before and after the disk filled, decodes.

mod record_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use record_support::*;

const DISK_FULL: &str = "Mediagraph.Diagnostics.CacheDiskFull";

/// Fails loudly when user + mount namespaces are not available: the test needs a real small
/// file system.
fn require_unshare(dir: &Path) {
    let mnt = dir.join("probe");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\""])
        .arg(&mnt)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`unshare -rm` + `mount -t tmpfs` failed (user and mount namespaces are required): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("`unshare` (util-linux) is required: {e}"),
    }
}

/// A blob of the local store with its metadata (start/end in 90 kHz ticks).
#[derive(Debug)]
struct Blob {
    path: PathBuf,
    start: i64,
    end: i64,
}

fn blobs(asset: &Path) -> Vec<Blob> {
    let mut v: Vec<Blob> = files(asset)
        .into_iter()
        .filter(|n| n.ends_with(".mp4"))
        .filter_map(|n| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(asset.join(format!("{n}.json"))).ok()?)
                    .ok()?;
            Some(Blob {
                path: asset.join(&n),
                start: meta["start"].as_str()?.parse().ok()?,
                end: meta["end"].as_str()?.parse().ok()?,
            })
        })
        .collect();
    v.sort_by_key(|b| b.start);
    v
}

fn now_ticks() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_secs_f64() * TICKS as f64) as i64
}

fn count_events(rec: &Proc, kind: &str) -> Vec<serde_json::Value> {
    rec.events()
        .into_iter()
        .filter(|e| e["eventType"] == kind)
        .collect()
}

#[test]
fn full_cache_disk_evicts_drops_reports_once_per_episode_and_recording_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    require_unshare(tmp.path());
    let port = free_port();
    let clip = make_camera_clip(tmp.path(), 3000);
    let _camera = camera(port, &["--clip", clip.to_str().unwrap()]);
    let url = format!("rtsp://127.0.0.1:{port}/cam1");
    let topology = write_topology(tmp.path(), &url, 200, "PT30S");
    let data = tmp.path().join("data");
    let cache_root = data.join("var/lib/mediagraph/cache");
    std::fs::create_dir_all(&cache_root).unwrap();
    let store = tmp.path().join("store");

    // The tmpfs exists only in the recorder's mount namespace; the filler takes all of it.
    let script = r#"mount -t tmpfs -o size=20m tmpfs "$0" || exit 97
dd if=/dev/zero of="$0/filler" bs=64k 2>/dev/null
exec "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script])
        .arg(&cache_root)
        .arg(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("run")
        .arg(&topology)
        .arg("--data-dir")
        .arg(&data)
        .args(["--progress-secs", "1", "--asset-store"])
        .arg(format!("file://{}", store.display()))
        .env("RUST_LOG", "info");
    let mut rec = Proc::spawn(cmd);
    // Paths inside the recorder's namespace, seen from here.
    let inside = PathBuf::from(format!("/proc/{}/root", rec.pid()));
    let ns_cache_root = inside.join(cache_root.strip_prefix("/").unwrap());
    let ns_cache = ns_cache_root.join("RecordTest.default.sink1");

    // Episode 1: nothing to evict, frames dropped.
    rec.wait_event(DISK_FULL, Duration::from_secs(120));
    rec.wait_event("\"reason\":\"diskFull\"", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        sealed(&ns_cache).is_empty(),
        "nothing can be sealed on a full disk: {:?}",
        files(&ns_cache)
    );
    assert!(
        !rec.log().contains("RecordingStarted"),
        "no durable fragment was possible:\n{}",
        rec.log()
    );
    std::fs::remove_file(ns_cache_root.join("filler")).expect("filler inside the namespace");
    let space_back = now_ticks();

    // Recording resumes by itself.
    rec.wait_event("RecordingStarted", Duration::from_secs(30));
    assert_eq!(count_events(&rec, DISK_FULL).len(), 1, "{}", rec.log());

    // Episode 2: the recording fills the 20 MiB (≈ 55 s at 3 Mbit/s); the oldest is evicted.
    let deadline = Instant::now() + Duration::from_secs(150);
    while count_events(&rec, DISK_FULL).len() < 2 {
        assert!(rec.is_running(), "recorder exited:\n{}", rec.log());
        assert!(
            Instant::now() < deadline,
            "the recording did not fill the disk:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let full_again = now_ticks();
    let asset = store.join("cam1-default");
    // A segment that starts after the disk filled is recorded, sealed and uploaded.
    wait_until(
        "a segment recorded after the disk filled",
        Duration::from_secs(150),
        || blobs(&asset).iter().any(|b| b.start > full_again),
    );
    assert!(rec.is_running(), "recorder exited:\n{}", rec.log());
    let gaps = gaps(&ns_cache);
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let full: Vec<_> = log
        .lines()
        .filter(|l| l.contains(&format!("\"eventType\":\"{DISK_FULL}\"")))
        .collect();
    assert_eq!(full.len(), 2, "one report per episode: {full:#?}");
    assert!(
        full.iter().all(|l| l.contains("\"errorCode\":\"ENOSPC\"")),
        "{full:#?}"
    );

    // The dropped span is a gap with its cause, and ends where recording resumed.
    let dropped: Vec<_> = gaps.iter().filter(|g| g["cause"] == "DiskFull").collect();
    assert_eq!(dropped.len(), 1, "{gaps:?}");
    let (g_start, g_end) = (
        dropped[0]["start"].as_i64().unwrap(),
        dropped[0]["end"].as_i64().unwrap(),
    );
    assert!(
        g_end - g_start >= 5 * TICKS,
        "the drop lasted ≥ 6 s: {dropped:?}"
    );
    assert!(
        (g_end - space_back).abs() <= 10 * TICKS,
        "the gap ends when space returned: {dropped:?} vs {space_back}"
    );

    // Every uploaded segment decodes, the ones sealed before the disk filled again and after;
    // the segments of the run follow each other without a hole (no fragment lost to ENOSPC).
    let blobs = blobs(&asset);
    assert!(blobs.len() >= 3, "{blobs:#?}");
    assert!(blobs[0].end <= full_again, "{blobs:#?}");
    for b in &blobs {
        let p = probe(&b.path);
        assert!(
            p.decode_errors.trim().is_empty(),
            "{}: {}",
            b.path.display(),
            p.decode_errors
        );
        assert!(
            p.packets[0].2,
            "{} starts with a keyframe",
            b.path.display()
        );
        let wall = (b.end - b.start) as f64 / TICKS as f64;
        assert!(
            (wall - p.duration()).abs() <= 0.05,
            "{}: metadata {wall:.3} s, media {:.3} s",
            b.path.display(),
            p.duration()
        );
    }
    for w in blobs.windows(2) {
        assert!(
            (w[1].start - w[0].end).abs() <= TICKS / 25,
            "hole between {} and {}",
            w[0].path.display(),
            w[1].path.display()
        );
    }
    for b in &blobs[..blobs.len() - 1] {
        let secs = (b.end - b.start) as f64 / TICKS as f64;
        assert!(
            (secs - 30.0).abs() <= 1.05,
            "{}: {secs:.3} s is not 30 s ± one GOP",
            b.path.display()
        );
    }
}
