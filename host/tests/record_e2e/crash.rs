//! kill -9 of the recorder at random moments: what a crash may lose.

use super::*;

#[test]
fn kill_9_at_random_moments_loses_at_most_a_fragment_plus_reconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = make_clip(tmp.path(), 10, 500, 25);
    let port = free_port();
    let _server = gst_server(port, &clip, &[]);
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let topology = write_topology(tmp.path(), &url, 64, "PT30S");
    let data = tmp.path().join("data");
    let dir = cache_dir(&data, 1);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Warm up: the first start compiles the plugins into DATA/plugins/.compiled.
    let mut rec = recorder(&topology, &data, &[]);
    rec.wait_event("RecordingStarted", STARTUP);
    rec.crash();
    // 5 kills anywhere in start-up (before or during the RTSP handshake), then 20 at random
    // moments of recording (after the first fragment, 0–3.5 s later: inside a fragment, at a
    // cut, during a seal).
    let startup_kills = 5;
    let recording_kills = 20;
    let mut last_startup_kill = 0i64;
    for i in 0..startup_kills + recording_kills {
        let mut rec = recorder(&topology, &data, &[]);
        if i < startup_kills {
            std::thread::sleep(Duration::from_millis(200 + random() % 1300));
        } else {
            rec.wait_event("RecordingStarted", Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(random() % 3500));
        }
        rec.crash();
        if i + 1 == startup_kills {
            last_startup_kill = mediagraph::time::Ticks90k::now().0;
        }
        // Nothing sealed is ever empty or half-named, even between crash and restart.
        for s in sealed(&dir) {
            assert!(s.end > s.start, "iteration {i}: empty segment {s:?}");
        }
    }
    let rec = recorder(&topology, &data, &[]);
    std::thread::sleep(Duration::from_secs(4));
    let (code, log) = rec.stop();
    assert_eq!(code, Some(0), "{log}");

    let names = files(&dir);
    assert!(
        names
            .iter()
            .all(|f| !f.ends_with(".open") && !f.ends_with(".journal") && !f.ends_with(".tmp")),
        "{names:?}"
    );
    let segs = sealed(&dir);
    assert!(
        segs.len() >= recording_kills,
        "most iterations should have sealed something: {names:?}"
    );
    // Every sealed segment decodes, starts with a keyframe and matches its index entry.
    check_segments(&segs, 30.0, GOP, FRAME);
    for w in segs.windows(2) {
        assert!(
            w[1].start >= w[0].end - (FRAME * TICKS as f64) as i64,
            "overlapping segments {w:?}"
        );
    }
    // Every hole in the recording has a cause: a recorded gap spans it.
    let all_gaps = gaps(&dir);
    let frame = (FRAME * TICKS as f64) as i64;
    for w in segs.windows(2) {
        if w[1].start - w[0].end <= frame {
            continue;
        }
        assert!(
            all_gaps.iter().any(|g| {
                g["start"].as_i64().unwrap() <= w[0].end + frame
                    && g["end"].as_i64().unwrap() >= w[1].start - frame
            }),
            "unexplained hole between {:?} and {:?}; gaps {all_gaps:?}",
            w[0],
            w[1]
        );
    }
    // Each crash while recording costs at most one fragment (2 s) plus the restart and
    // reconnect (process start, RTSP handshake, first keyframe: ≤ 3 s here).
    let crash_gaps: Vec<f64> = gaps(&dir)
        .iter()
        .filter(|g| g["cause"] == "Crash" && g["start"].as_i64().unwrap() > last_startup_kill)
        .map(|g| (g["end"].as_i64().unwrap() - g["start"].as_i64().unwrap()) as f64 / TICKS as f64)
        .collect();
    assert!(
        crash_gaps.len() >= recording_kills,
        "crash gaps recorded: {:?}",
        gaps(&dir)
    );
    let worst = crash_gaps.iter().copied().fold(0f64, f64::max);
    eprintln!("crash gaps (s): {crash_gaps:.2?}; worst {worst:.2}");
    for g in &crash_gaps {
        assert!(
            *g <= 2.0 + 3.0 + 1.0,
            "a crash lost {g:.2} s: {crash_gaps:?}"
        );
    }
}
