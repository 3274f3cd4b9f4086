//! `mediagraph camera`: runs the test camera in the foreground until Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::{AuthScheme, CameraConfig, CameraError, Credentials, TestCamera, VideoCodec};

#[derive(clap::Args, Debug)]
pub struct CameraArgs {
    /// TCP port to serve RTSP on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    /// Number of streams: /cam1 … /camN.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    #[arg(long, value_enum, default_value_t = VideoCodec::H264)]
    pub codec: VideoCodec,
    /// Also serve an AAC audio track.
    #[arg(long)]
    pub audio: bool,
    /// Require this user name (with --password).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// Which authentication challenges to offer when --user is given.
    #[arg(long, value_enum, default_value_t = AuthScheme::Any)]
    pub auth: AuthScheme,
    /// Directory with video.h264 / video.h265 / audio.aac to replay instead of the bundled clip.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Frame rate of the clip (elementary streams carry no timestamps).
    #[arg(long, default_value_t = 25)]
    pub fps: u32,
    /// Serve at most N sessions, each kept until TEARDOWN or its 60 s timeout even after its
    /// connection closes (453 Not Enough Bandwidth beyond N), as many cameras do.
    #[arg(long)]
    pub max_sessions: Option<usize>,
}

pub async fn run(args: CameraArgs) -> Result<(), CameraError> {
    let config = CameraConfig {
        bind: SocketAddr::new(args.listen, args.port),
        count: args.count,
        codec: args.codec,
        audio: args.audio,
        credentials: args
            .user
            .zip(args.password)
            .map(|(username, password)| Credentials { username, password }),
        auth: args.auth,
        clip_dir: args.clip,
        fps: args.fps,
        max_sessions: args.max_sessions,
    };
    let camera = TestCamera::start(config).await?;
    println!(
        "test camera: {} … {}",
        camera.url(1),
        camera.url(args.count)
    );
    shutdown_signal().await;
    camera.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
