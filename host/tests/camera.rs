//! The test camera against real clients: ffmpeg/ffprobe and the `retina` crate, on loopback.
//! Needs ffmpeg and ffprobe on PATH (Debian's `ffmpeg` package; `.ci/run` installs it).

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use mediagraph::camera::{
    AuthScheme, CameraConfig, CameraHandle, Credentials, FREEZE_AFTER_FRAMES, HUGE_CONTENT_LENGTH,
    TestCamera, VideoCodec,
};
use retina::client::{
    PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::CodecItem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

async fn camera(config: CameraConfig) -> CameraHandle {
    TestCamera::start(config).await.expect("test camera starts")
}

fn tool(name: &str) -> Command {
    let found = std::process::Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{name} is required (Debian package ffmpeg)");
    let mut c = Command::new(name);
    c.kill_on_drop(true);
    c
}

/// Records `secs` seconds of `url` with `ffmpeg -c copy` into an MP4, as an operator would.
async fn ffmpeg_record(url: &str, secs: u32, dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("out.mp4");
    let run = tool("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
        ])
        .args(["-timeout", "10000000", "-i", url, "-t", &secs.to_string()])
        .args(["-c", "copy", "-y"])
        .arg(&out)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(u64::from(secs) + 30), run)
        .await
        .expect("ffmpeg finishes")
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Presentation times (seconds) of the packets of one stream (`v:0`, `a:0`).
async fn packet_times(file: &std::path::Path, stream: &str) -> Vec<f64> {
    let out = tool("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .await
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Frames of one stream that decode, and the decoder's complaints, via a full decode.
async fn decode(file: &std::path::Path, stream: &str) -> (usize, String) {
    let out = tool("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .await
        .expect("ffprobe runs");
    let frames = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or(0);
    (frames, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts every step between consecutive times is `step` (within 1 ms), skipping the first
/// packet, whose time ffmpeg's RTSP demuxer leaves unset when copying.
fn assert_continuous(times: &[f64], step: f64, what: &str) {
    for w in times[1..].windows(2) {
        let d = w[1] - w[0];
        assert!(
            (d - step).abs() < 0.001,
            "{what}: step {d} s between {} and {}",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_records_h264_continuously_across_the_clip_loop() {
    let cam = camera(CameraConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // 10 s of a 6 s clip: the recording crosses at least one loop.
    let file = ffmpeg_record(cam.url(1).as_str(), 10, dir.path()).await;
    let (frames, errors) = decode(&file, "v:0").await;
    assert!(errors.is_empty(), "decode errors: {errors}");
    assert!(
        (248..=252).contains(&frames),
        "{frames} frames decoded in 10 s at 25 fps"
    );
    let times = packet_times(&file, "v:0").await;
    assert_continuous(&times, 0.04, "video");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_records_h265_with_aac_continuously() {
    let cam = camera(CameraConfig {
        codec: VideoCodec::H265,
        audio: true,
        ..CameraConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = ffmpeg_record(cam.url(1).as_str(), 10, dir.path()).await;
    let (frames, errors) = decode(&file, "v:0").await;
    assert!(errors.is_empty(), "video decode errors: {errors}");
    assert!(
        (248..=252).contains(&frames),
        "{frames} H.265 frames in 10 s"
    );
    assert_continuous(&packet_times(&file, "v:0").await, 0.04, "video");
    let (audio_frames, errors) = decode(&file, "a:0").await;
    assert!(errors.is_empty(), "audio decode errors: {errors}");
    // 48 kHz, 1024 samples per frame: 468.75 frames in 10 s.
    assert!(
        (464..=472).contains(&audio_frames),
        "{audio_frames} AAC frames in 10 s"
    );
    assert_continuous(&packet_times(&file, "a:0").await, 1024.0 / 48000.0, "audio");
}

fn creds(user: &str, password: &str) -> Option<retina::client::Credentials> {
    Some(retina::client::Credentials {
        username: user.into(),
        password: password.into(),
    })
}

/// Plays every stream of `url` with retina for `secs` seconds and returns what arrived.
async fn retina_play(
    url: &url::Url,
    credentials: Option<retina::client::Credentials>,
    secs: u64,
) -> Result<Vec<CodecItem>, retina::Error> {
    let mut session =
        Session::describe(url.clone(), SessionOptions::default().creds(credentials)).await?;
    for i in 0..session.streams().len() {
        assert!(
            session.streams()[i].parameters().is_some(),
            "stream {i}: codec parameters from the SDP"
        );
        session
            .setup(
                i,
                SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
            )
            .await?;
    }
    let mut playing = session.play(PlayOptions::default()).await?.demuxed()?;
    let mut items = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(secs));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            item = playing.next() => match item {
                Some(item) => items.push(item?),
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    Ok(items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_sees_every_frame_with_continuous_timestamps() {
    let cam = camera(CameraConfig {
        audio: true,
        ..CameraConfig::default()
    })
    .await;
    let items = retina_play(&cam.url(1), None, 8)
        .await
        .expect("retina plays");
    let video: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            CodecItem::VideoFrame(f) => Some(f),
            _ => None,
        })
        .collect();
    let audio: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            CodecItem::AudioFrame(f) => Some(f),
            _ => None,
        })
        .collect();
    // The session starts at a keyframe, up to 1 s after PLAY; the clip loops after 6 s. The
    // bounds are loose on purpose: this checks content, not speed, on a loaded machine.
    assert!(video.len() >= 150, "{} video frames in 8 s", video.len());
    assert!(
        video[0].is_random_access_point(),
        "first frame is a keyframe"
    );
    for (k, w) in video.windows(2).enumerate() {
        assert_eq!(
            w[1].timestamp().timestamp() - w[0].timestamp().timestamp(),
            3600
        );
        assert_eq!(w[1].loss(), 0);
        assert_eq!(
            w[1].is_random_access_point(),
            (k + 1) % 25 == 0,
            "GOP of 25 frames"
        );
    }
    // Sender reports map the stream's RTP time to wall clock, consistently with the frames.
    let mut last_video = None;
    let mut reports = 0;
    for item in &items {
        match item {
            CodecItem::VideoFrame(f) => last_video = Some(f.timestamp().timestamp()),
            CodecItem::Rtcp(r) if r.stream_id() == 0 => {
                let sr = r
                    .pkts()
                    .find_map(|p| p.as_sender_report().ok().flatten())
                    .expect("a sender report");
                let ntp_unix_secs = (sr.ntp_timestamp().0 >> 32) as i64 - 2_208_988_800;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                assert!((now - ntp_unix_secs).abs() < 30, "SR wall clock is now");
                let sr_ts = r.rtp_timestamp().expect("SR RTP time").timestamp();
                let frame_ts = last_video.expect("SR after the first frame");
                assert!(
                    (sr_ts - frame_ts).abs() < 2 * 3600,
                    "SR at {sr_ts}, frame at {frame_ts}"
                );
                reports += 1;
            }
            _ => {}
        }
    }
    assert!(reports >= 2, "{reports} video sender reports in 8 s");
    assert!(audio.len() > 250, "{} audio frames", audio.len());
    for w in audio.windows(2) {
        assert_eq!(
            w[1].timestamp().timestamp() - w[0].timestamp().timestamp(),
            1024
        );
        assert_eq!(w[1].loss(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_plays_h265_on_any_path_of_many() {
    let cam = camera(CameraConfig {
        codec: VideoCodec::H265,
        count: 3,
        ..CameraConfig::default()
    })
    .await;
    let alt = url::Url::parse(&format!("rtsp://{}/cam/2", cam.addr())).unwrap();
    for url in [cam.url(3), alt] {
        let items = retina_play(&url, None, 2)
            .await
            .expect("retina plays H.265");
        let keyframes = items
            .iter()
            .filter(|i| matches!(i, CodecItem::VideoFrame(f) if f.is_random_access_point()))
            .count();
        assert!(keyframes >= 1, "{url}: a keyframe within 2 s");
    }
    let missing = retina_play(&cam.url(4), None, 1).await;
    let err = missing.expect_err("/cam4 does not exist").to_string();
    assert!(err.contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_and_right_one_plays_for_basic_and_digest() {
    for scheme in [AuthScheme::Basic, AuthScheme::Digest] {
        let cam = camera(CameraConfig {
            credentials: Some(Credentials {
                username: "admin".into(),
                password: "s3cret".into(),
            }),
            auth: scheme,
            ..CameraConfig::default()
        })
        .await;
        let raw = raw_request(
            &cam,
            &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", cam.url(1)),
        )
        .await;
        assert!(raw.starts_with("RTSP/1.0 401"), "{raw}");
        let challenge = match scheme {
            AuthScheme::Basic => "WWW-Authenticate: Basic",
            _ => "WWW-Authenticate: Digest",
        };
        assert!(raw.contains(challenge), "{scheme:?}: {raw}");

        let err = retina_play(&cam.url(1), creds("admin", "wrong"), 1)
            .await
            .expect_err("wrong password is refused")
            .to_string();
        assert!(err.contains("401"), "{scheme:?}: {err}");
        assert!(
            retina_play(&cam.url(1), None, 1).await.is_err(),
            "{scheme:?}: no credentials is refused"
        );

        let items = retina_play(&cam.url(1), creds("admin", "s3cret"), 2)
            .await
            .expect("right password plays");
        assert!(
            items.iter().any(|i| matches!(i, CodecItem::VideoFrame(_))),
            "{scheme:?}: frames arrive"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_authenticates_with_digest() {
    let cam = camera(CameraConfig {
        credentials: Some(Credentials {
            username: "admin".into(),
            password: "s3cret".into(),
        }),
        ..CameraConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rtsp://admin:s3cret@{}/cam1", cam.addr());
    let file = ffmpeg_record(&url, 2, dir.path()).await;
    let (frames, errors) = decode(&file, "v:0").await;
    assert!(
        errors.is_empty() && frames >= 45,
        "{frames} frames, {errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_sessions_closes_connections_and_a_new_session_works() {
    let cam = camera(CameraConfig::default()).await;
    let mut session = Session::describe(cam.url(1), SessionOptions::default())
        .await
        .unwrap();
    session
        .setup(
            0,
            SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
        )
        .await
        .unwrap();
    let mut playing = session
        .play(PlayOptions::default())
        .await
        .unwrap()
        .demuxed()
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), playing.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "frames before the drop");
    assert_eq!(cam.connections(), 1);

    cam.drop_sessions();
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match playing.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Some(e.to_string()),
                None => break None,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the session ends promptly after drop_sessions"
    );
    drop(playing);
    wait_for(|| cam.connections() == 0).await;

    let items = retina_play(&cam.url(1), None, 2)
        .await
        .expect("a new session plays");
    assert!(items.iter().any(|i| matches!(i, CodecItem::VideoFrame(_))));
    assert_eq!(cam.plays(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_offline_refuses_connections_then_serves_again_on_the_same_port() {
    let cam = camera(CameraConfig::default()).await;
    cam.go_offline(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(cam.addr()).await;
    assert!(refused.is_err(), "connections are refused while offline");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let items = retina_play(&cam.url(1), None, 2)
        .await
        .expect("back online");
    assert!(items.iter().any(|i| matches!(i, CodecItem::VideoFrame(_))));
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..50 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 2.5 s");
}

/// Sends raw bytes and returns what the camera answers until it closes or goes quiet.
async fn raw_request(cam: &CameraHandle, request: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(cam.addr()).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 8192];
    let mut got = Vec::new();
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(500), sock.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn udp_transport_is_refused_with_461() {
    let cam = camera(CameraConfig::default()).await;
    let setup = format!(
        "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
        cam.url(1)
    );
    let raw = raw_request(&cam, &setup).await;
    assert!(raw.starts_with("RTSP/1.0 461"), "{raw}");
    assert!(raw.contains("CSeq: 2"), "{raw}");
}

#[tokio::test]
async fn fault_paths_misbehave_as_documented() {
    let cam = camera(CameraConfig::default()).await;
    let http = raw_request(
        &cam,
        &format!("OPTIONS {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", cam.http_url()),
    )
    .await;
    assert!(http.starts_with("HTTP/1.1 404"), "{http}");

    let err = retina_play(&cam.garbage_url(), None, 3)
        .await
        .expect_err("garbage breaks the session")
        .to_string();
    assert!(!err.is_empty());

    let items = retina_play(&cam.stall_url(), None, 2)
        .await
        .expect("stall plays");
    assert!(
        items.iter().all(|i| !matches!(i, CodecItem::VideoFrame(_))),
        "no media on stall"
    );

    // Three clip GOPs' time (1 s each): every picture but the keyframes.
    let items = retina_play(&cam.no_keyframe_url(), None, 3)
        .await
        .expect("nokeyframe plays");
    let frames: Vec<bool> = items
        .iter()
        .filter_map(|i| match i {
            CodecItem::VideoFrame(f) => Some(f.is_random_access_point()),
            _ => None,
        })
        .collect();
    assert!(frames.len() >= 50, "{} video frames", frames.len());
    assert!(frames.iter().all(|k| !k), "a keyframe was sent");

    // Eight seconds' worth of frames in fourteen seconds, then only RTCP: a sender report is
    // due at most five seconds after the last one, which went out with a frame.
    let items = retina_play(&cam.freeze_url(), None, 14)
        .await
        .expect("freeze plays");
    let frames: Vec<bool> = items
        .iter()
        .filter_map(|i| match i {
            CodecItem::VideoFrame(f) => Some(f.is_random_access_point()),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), FREEZE_AFTER_FRAMES as usize);
    assert!(frames[0], "the first frame is a keyframe");
    let last_frame = items
        .iter()
        .rposition(|i| matches!(i, CodecItem::VideoFrame(_)))
        .unwrap();
    assert!(
        items[last_frame..]
            .iter()
            .any(|i| matches!(i, CodecItem::Rtcp(_))),
        "the frozen camera's RTSP stack goes on sending sender reports"
    );

    let junk = raw_request(&cam, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(junk.starts_with("RTSP/1.0 400"), "{junk}");
}

/// Reads from `sock` until `buf` holds `\r\n\r\n`; returns the head, leaves the rest in `buf`.
async fn read_head(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> String {
    let mut chunk = vec![0; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return head;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
            .await
            .expect("the camera answers")
            .unwrap();
        assert!(n > 0, "the camera closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` holds at least `n` bytes.
async fn read_at_least(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, n: usize) {
    let mut chunk = vec![0; 64 * 1024];
    while buf.len() < n {
        let got = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
            .await
            .expect("the camera keeps sending")
            .unwrap();
        assert!(got > 0, "the camera closed the connection");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_fault_paths_never_end_their_answer_or_access_unit() {
    let cam = camera(CameraConfig::default()).await;

    // hugedescribe: a 4 GiB body announced, and 32 MiB of it (and counting) sent.
    let mut sock = tokio::net::TcpStream::connect(cam.addr()).await.unwrap();
    let describe = format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        cam.huge_describe_url()
    );
    sock.write_all(describe.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head = read_head(&mut sock, &mut buf).await;
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {HUGE_CONTENT_LENGTH}")),
        "{head}"
    );
    assert_eq!(HUGE_CONTENT_LENGTH, 4 << 30);
    read_at_least(&mut sock, &mut buf, 32 << 20).await;
    drop(sock);

    // endlessau: after PLAY, FU-A fragments of one IDR slice: one start, never an end, one
    // RTP timestamp, no marker.
    let mut sock = tokio::net::TcpStream::connect(cam.addr()).await.unwrap();
    let url = cam.endless_au_url();
    let setup = format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    sock.write_all(setup.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head = read_head(&mut sock, &mut buf).await;
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|s| s.split(';').next())
        .expect("a session")
        .to_owned();
    let play = format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n");
    sock.write_all(play.as_bytes()).await.unwrap();
    let head = read_head(&mut sock, &mut buf).await;
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    read_at_least(&mut sock, &mut buf, 8 << 20).await;
    let (mut at, mut packets, mut timestamps) = (0, 0, std::collections::BTreeSet::new());
    while at + 4 <= buf.len() {
        assert_eq!(buf[at], b'$', "interleaved data only, at {at}");
        assert_eq!(buf[at + 1], 0, "video channel");
        let len = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        if at + 4 + len > buf.len() {
            break;
        }
        let rtp = &buf[at + 4..at + 4 + len];
        assert_eq!(rtp[1] & 0x80, 0, "no marker");
        timestamps.insert(u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]));
        let (indicator, fu) = (rtp[12], rtp[13]);
        assert_eq!(indicator & 0x1f, 28, "FU-A");
        assert_eq!(fu & 0x1f, 5, "of an IDR slice");
        assert_eq!(fu & 0x40, 0, "never the end fragment");
        assert_eq!(fu & 0x80 != 0, packets == 0, "only the first is the start");
        packets += 1;
        at += 4 + len;
    }
    assert!(packets > 5000, "{packets} packets");
    assert_eq!(timestamps.len(), 1, "one access unit: {timestamps:?}");
}
