//! The built-in test camera: an RTSP/1.0 server that replays a small bundled clip (or one from
//! `--clip DIR`) in real time on N paths, looping forever with continuous RTP timestamps.
//!
//! Owns: clip loading, RTSP server sessions (TCP interleaved only), RTP packetization, Basic and
//! Digest auth, session slots of a camera that keeps sessions past their connection
//! (`--max-sessions`), fault paths for bad-input tests, and test controls (drop sessions, outage).
//! Must not: depend on the recorder or any other room; it stands in for a real camera, so it
//! only speaks the wire protocol.

mod auth;
pub mod cli;
mod clip;
mod rtp;
mod rtsp;
mod slots;
mod sps;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use auth::Auth;
pub use auth::{AuthScheme, Credentials};
use clip::Clip;
pub use clip::{AAC_FILE, H264_FILE, H265_FILE};
pub use rtsp::{DEEP_REORDER, FREEZE_AFTER_FRAMES, HUGE_CONTENT_LENGTH};
use slots::Slots;
use stream::Stream;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
}

#[derive(thiserror::Error, Debug)]
pub enum CameraError {
    #[error("test camera clip {path}: {reason}")]
    Clip { path: PathBuf, reason: String },
    #[error("test camera: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("test camera: {0}")]
    Config(String),
}

#[derive(Clone, Debug)]
pub struct CameraConfig {
    /// Port 0 picks a free port; see [`CameraHandle::addr`].
    pub bind: SocketAddr,
    /// Number of streams, served as `/cam1` … `/camN` (and `/cam/1` …).
    pub count: usize,
    pub codec: VideoCodec,
    pub audio: bool,
    pub credentials: Option<Credentials>,
    pub auth: AuthScheme,
    /// Directory holding `video.h264` / `video.h265` / `audio.aac`; `None` = the bundled clip.
    pub clip_dir: Option<PathBuf>,
    /// Frame rate the elementary stream is paced at (it carries no timestamps of its own).
    pub fps: u32,
    /// At most this many sessions, each kept until TEARDOWN or its timeout even after its
    /// connection is gone (as many cameras do); `None`: a session ends with its connection.
    pub max_sessions: Option<usize>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            count: 1,
            codec: VideoCodec::H264,
            audio: false,
            credentials: None,
            auth: AuthScheme::Any,
            clip_dir: None,
            fps: 25,
            max_sessions: None,
        }
    }
}

/// What the accept loop and every connection watch: bumping `generation` closes all current
/// connections; `offline_until` also stops listening for a while, like a rebooting camera.
#[derive(Clone, Debug, Default)]
struct Control {
    generation: u64,
    offline_until: Option<Instant>,
}

/// State shared by all connections of one camera.
#[derive(Debug)]
struct Shared {
    clip: Arc<Clip>,
    fps: u32,
    streams: Vec<Arc<Stream>>,
    auth: Option<Auth>,
    connections: AtomicUsize,
    plays: AtomicU64,
    slots: Option<Slots>,
    /// The SPS `/fault/deepreorder` serves (H.265 clips only).
    deep_sps: Option<bytes::Bytes>,
}

pub struct TestCamera;

impl TestCamera {
    /// Loads the clip, binds the port and starts serving on the current tokio runtime.
    pub async fn start(config: CameraConfig) -> Result<CameraHandle, CameraError> {
        if config.count == 0 {
            return Err(CameraError::Config("--count must be at least 1".into()));
        }
        if config.max_sessions == Some(0) {
            return Err(CameraError::Config(
                "--max-sessions must be at least 1".into(),
            ));
        }
        if !(1..=120).contains(&config.fps) {
            return Err(CameraError::Config(format!(
                "frame rate {} is outside 1..=120",
                config.fps
            )));
        }
        let clip = Arc::new(Clip::load(
            config.codec,
            config.audio,
            config.clip_dir.as_deref(),
        )?);
        let listener = listen(config.bind)?;
        let addr = listener.local_addr().map_err(|source| CameraError::Bind {
            addr: config.bind,
            source,
        })?;
        let streams: Vec<Arc<Stream>> = (0..config.count)
            .map(|_| Arc::new(Stream::new(clip.clone(), config.fps)))
            .collect();
        let deep_sps = match clip.video.codec {
            VideoCodec::H265 => sps::h265_with_reorder_depth(&clip.video.sps, rtsp::DEEP_REORDER)
                .map(bytes::Bytes::from),
            VideoCodec::H264 => None,
        };
        let shared = Arc::new(Shared {
            deep_sps,
            clip,
            fps: config.fps,
            streams: streams.clone(),
            auth: config
                .credentials
                .clone()
                .map(|c| Auth::new(c, config.auth)),
            connections: AtomicUsize::new(0),
            plays: AtomicU64::new(0),
            slots: config
                .max_sessions
                .map(|max| Slots::new(max, rtsp::SESSION_TIMEOUT)),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let (control_tx, control_rx) = watch::channel(Control::default());
        let mut tasks = JoinSet::new();
        for s in streams {
            tasks.spawn(s.run(stop_rx.clone()));
        }
        tasks.spawn(accept_loop(
            listener,
            addr,
            shared.clone(),
            control_rx,
            stop_rx,
        ));
        tracing::info!(%addr, count = config.count, codec = ?config.codec, audio = config.audio, "test camera listening");
        Ok(CameraHandle {
            addr,
            shared,
            stop: stop_tx,
            control: control_tx,
            tasks,
        })
    }
}

fn listen(addr: SocketAddr) -> Result<TcpListener, CameraError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Lets the camera come back on the same port right after a simulated outage.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    bind().map_err(|source| CameraError::Bind { addr, source })
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let _ = sock.set_nodelay(true);
                let shared = shared.clone();
                let control = control.clone();
                connections.spawn(async move {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    rtsp::serve(sock, shared.clone(), control).await;
                    shared.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = control.changed() => {
                if changed.is_err() {
                    return;
                }
                let until = control.borrow_and_update().offline_until;
                if let Some(until) = until.filter(|u| *u > Instant::now()) {
                    drop(listener);
                    tracing::info!(%addr, "test camera offline");
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = stop.changed() => return,
                    }
                    listener = loop {
                        match listen(addr) {
                            Ok(l) => break l,
                            Err(e) => {
                                tracing::warn!(%e, "test camera: re-listen failed, retrying");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    };
                    tracing::info!(%addr, "test camera back online");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// A running test camera. Dropping it stops the camera.
pub struct CameraHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    control: watch::Sender<Control>,
    tasks: JoinSet<()>,
}

impl CameraHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtsp://ADDR/camN` for stream `n` (1-based), without credentials.
    pub fn url(&self, n: usize) -> url::Url {
        self.path_url(&format!("cam{n}"))
    }

    /// `rtsp://ADDR/fault/garbage`: handshake, then bytes that are neither RTSP nor RTP.
    pub fn garbage_url(&self) -> url::Url {
        self.path_url("fault/garbage")
    }

    /// `rtsp://ADDR/fault/http`: every request is answered by an HTTP/1.1 404.
    pub fn http_url(&self) -> url::Url {
        self.path_url("fault/http")
    }

    /// `rtsp://ADDR/fault/stall`: handshake and PLAY succeed, then no media ever arrives.
    pub fn stall_url(&self) -> url::Url {
        self.path_url("fault/stall")
    }

    /// `rtsp://ADDR/fault/nokeyframe`: video flows, but every keyframe is left out.
    pub fn no_keyframe_url(&self) -> url::Url {
        self.path_url("fault/nokeyframe")
    }

    /// `rtsp://ADDR/fault/freeze`: [`FREEZE_AFTER_FRAMES`] video frames, then only RTCP
    /// sender reports on the open connection.
    pub fn freeze_url(&self) -> url::Url {
        self.path_url("fault/freeze")
    }

    /// `rtsp://ADDR/fault/cut`: [`FREEZE_AFTER_FRAMES`] video frames, then the camera closes
    /// the connection (with [`CameraConfig::max_sessions`], the session outlives it).
    pub fn cut_url(&self) -> url::Url {
        self.path_url("fault/cut")
    }

    /// `rtsp://ADDR/fault/hugedescribe`: DESCRIBE is answered with a 4 GiB `Content-Length`
    /// ([`HUGE_CONTENT_LENGTH`]) and filler that never ends.
    pub fn huge_describe_url(&self) -> url::Url {
        self.path_url("fault/hugedescribe")
    }

    /// `rtsp://ADDR/fault/endlessau` (H.264 clips): after PLAY, FU-A fragments of one access
    /// unit, none of them its last, as fast as the client reads.
    pub fn endless_au_url(&self) -> url::Url {
        self.path_url("fault/endlessau")
    }

    fn path_url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("rtsp://{}/{path}", self.addr)).expect("valid URL")
    }

    /// Open TCP connections right now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// PLAY requests that started media, since the camera started.
    pub fn plays(&self) -> u64 {
        self.shared.plays.load(Ordering::Relaxed)
    }

    /// Simulates a camera reboot: closes every TCP connection; new ones are accepted at once.
    pub fn drop_sessions(&self) {
        self.control.send_modify(|c| c.generation += 1);
    }

    /// Closes every connection and stops listening for `outage` (connections are refused),
    /// then listens again on the same port.
    pub fn go_offline(&self, outage: Duration) {
        self.control.send_modify(|c| {
            c.generation += 1;
            c.offline_until = Some(Instant::now() + outage);
        });
    }

    /// Stops serving and waits until every task of the camera has ended.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // Closing connections too: the accept loop owns them and they end with it.
        self.control.send_modify(|c| c.generation += 1);
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for CameraHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.control.send_modify(|c| c.generation += 1);
    }
}
