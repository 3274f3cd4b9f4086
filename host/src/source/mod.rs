//! RTSP ingest of one camera with `retina`: sessions, runs and wall-clock time.
//!
//! Owns: connecting over RTSP/TCP interleaved with the topology's credentials, choosing the
//! tracks to record (H.264/H.265 video, AAC audio when asked; other codecs are reported),
//! recognising keyframes (H.265 IRAP pictures, not only IDR), deriving decode times for video
//! with B-frames ([`reorder`]), reconnecting forever with exponential backoff and jitter, stall
//! detection, reporting video that offers no keyframe to start from, TEARDOWN on close, mapping
//! media time to wall-clock 90 kHz ticks per run ([`clock`]), reading several frames per
//! wake-up ([`batching`]) and the LVA diagnostics about the session.
//!
//! Must not: touch the disk, decide segment boundaries, or block the runtime. It hands frames to
//! the recorder through a bounded channel ([`handoff`]); a slow recorder slows the session down
//! (back pressure) instead of growing memory.

pub mod batching;
pub mod clock;
pub mod handoff;
pub mod reorder;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials as RetinaCredentials, PlayOptions, SessionGroup, SessionOptions, SetupOptions,
    TcpTransportOptions, TeardownPolicy, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use url::Url;

use crate::events::catalog::{self, RtspError};
use crate::events::{Body, Event, EventBus};
use crate::retry::Backoff;
use crate::time::{ClockRate, Duration90k, Ticks90k};
use batching::ReadBatching;
use clock::WallClockMap;
use handoff::Handoff;
use reorder::Timeline;

/// The port of an `rtsp://` URL that names none.
const RTSP_PORT: u16 = 554;

/// What to connect to and how; built by `graph` from the resolved topology.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub url: Url,
    pub credentials: Option<SourceCredentials>,
    /// Record AAC audio too (the sink's outputSelectors do not restrict it to video).
    pub audio: bool,
    /// Event subject, e.g. `/graphInstances/g1/sources/rtspSource`.
    pub subject: String,
    /// No video frame for this long ends the session (RTCP and audio do not count).
    pub stall_timeout: Duration,
    /// Bound on connecting plus DESCRIBE/SETUP/PLAY.
    pub connect_timeout: Duration,
    /// Upper bound of the reconnect backoff.
    pub max_backoff: Duration,
    /// Video this long without a keyframe to start a run from is reported (once a session).
    pub keyframe_wait: Duration,
}

impl SourceConfig {
    pub fn new(
        url: Url,
        credentials: Option<SourceCredentials>,
        audio: bool,
        subject: String,
    ) -> Self {
        Self {
            url,
            credentials,
            audio,
            subject,
            stall_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
            // The shortest segmentLength: a GOP longer than that already spoils segment
            // lengths and loses as much at every reconnect, so it is worth reporting too.
            keyframe_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct SourceCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SourceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceCredentials({}, ***)", self.username)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    H264,
    H265,
    Aac,
}

/// Codec parameters of one recorded track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackParams {
    pub codec: TrackCodec,
    /// Units per second of [`Frame::media_time`] for this track.
    pub clock_rate: ClockRate,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u32,
    /// avcC / hvcC body, or AudioSpecificConfig.
    pub decoder_config: Bytes,
    /// RFC 6381 codec string, e.g. `avc1.64001F`.
    pub rfc6381: String,
}

impl TrackParams {
    pub fn is_video(&self) -> bool {
        matches!(self.codec, TrackCodec::H264 | TrackCodec::H265)
    }
}

/// One access unit. Video data is 4-byte length-prefixed NAL units (MP4 framing, parameter
/// sets out of band); audio data is a raw AAC frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Index into the run's tracks.
    pub track: usize,
    /// Presentation time in track clock units on the run's timeline (never negative). It
    /// starts at the run's first keyframe, shifted by the video's reorder depth when the
    /// stream has B-frames ([`reorder`]).
    pub media_time: i64,
    /// Decode time on the same timeline: strictly increasing per video track and never after
    /// `media_time`; equal to it for audio and for video without B-frames.
    pub decode_time: i64,
    pub wall: Ticks90k,
    pub keyframe: bool,
    pub data: Bytes,
    /// Set when this frame carries new codec parameters (SPS/PPS/resolution change).
    pub new_params: Option<TrackParams>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEndReason {
    /// The camera closed the session or the connection failed.
    Disconnected(String),
    /// No video frame for the stall timeout.
    Stalled,
    /// The host clock jumped; the next run re-anchors.
    ClockJump,
    /// Asked to stop.
    Shutdown,
}

impl std::fmt::Display for RunEndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disconnected(why) => write!(f, "disconnected: {why}"),
            Self::Stalled => f.write_str("stalled"),
            Self::ClockJump => f.write_str("clock jump"),
            Self::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// What the source tells the recorder, in order: `RunStarted`, frames, `RunEnded`, repeat.
#[derive(Debug)]
pub enum SourceItem {
    RunStarted { tracks: Vec<TrackParams> },
    Frame(Frame),
    RunEnded { reason: RunEndReason },
}

/// Why one session attempt failed before or while playing.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("RTSP {method} answered {status}: {message}")]
    Status {
        method: &'static str,
        status: u16,
        message: String,
    },
    #[error("network: {0}")]
    Network(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("nothing recordable: the camera offers {0}; supported: {SUPPORTED}")]
    NoVideo(String),
    #[error("timed out after {0:?} during {1}")]
    Timeout(Duration, &'static str),
}

impl SourceError {
    fn from_retina(method: &'static str, e: retina::Error) -> Self {
        // retina quotes the URL it was given in some errors; the text goes into events and
        // logs, so credentials in it are cut out here, before anything sees it.
        let message = crate::topology::scrub_userinfo(&e.to_string());
        if let Some(status) = e.status_code() {
            return Self::Status {
                method,
                status,
                message: first_line(&message),
            };
        }
        // retina's error is opaque; its messages for socket failures have stable prefixes.
        if [
            "Unable to connect",
            "Error reading",
            "Error writing",
            "Timeout",
        ]
        .iter()
        .any(|p| message.starts_with(p))
        {
            Self::Network(first_line(&message))
        } else {
            Self::Protocol(first_line(&message))
        }
    }

    /// The LVA diagnostic this failure is reported as.
    fn diagnostic(&self) -> Body {
        match self {
            Self::Status {
                status: status @ (401 | 403),
                message,
                ..
            } => catalog::AuthenticationError(RtspError::new(status.to_string(), message)).into(),
            Self::Status {
                status, message, ..
            } => catalog::ProtocolError(RtspError::new(status.to_string(), message)).into(),
            Self::Network(m) => catalog::NetworkError {
                error_code: "ConnectionFailed",
                error_message: m.clone(),
            }
            .into(),
            Self::Timeout(..) => catalog::NetworkError {
                error_code: "Timeout",
                error_message: self.to_string(),
            }
            .into(),
            Self::Protocol(m) => {
                catalog::ProtocolError(RtspError::new("InvalidResponse", m.clone())).into()
            }
            Self::NoVideo(_) => catalog::MediaFormatError {
                code: "UnsupportedCodec",
                media_type: None,
                track: None,
                encoding: None,
                error_message: self.to_string(),
            }
            .into(),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Runs the camera's sessions until `shutdown` turns true; never returns early on camera
/// errors. Each played session is a run bracketed by `RunStarted`/`RunEnded` on `handoff`.
pub async fn run(
    cfg: SourceConfig,
    mut handoff: Handoff,
    events: EventBus,
    mut shutdown: watch::Receiver<bool>,
) {
    let group = Arc::new(SessionGroup::default().named(cfg.subject.clone()));
    // The first retry after half a second; ±25 % jitter.
    let mut backoff = Backoff::new(Duration::from_millis(500), cfg.max_backoff, 0.75..=1.25);
    while !*shutdown.borrow() {
        // A camera that still holds our previous session may refuse a new one; wait (bounded)
        // for retina's TEARDOWN of stale sessions first (it retries while the camera is
        // unreachable, so after an outage this returns about when the camera is back).
        let stale = group.stale_sessions();
        if stale.num_sessions > 0 {
            let _ = tokio::time::timeout(cfg.max_backoff, group.await_stale_sessions(&stale)).await;
        }
        let outcome = tokio::select! {
            o = session(&cfg, &group, &mut handoff, &events, &mut backoff) => o,
            _ = shutdown.changed() => Ok(Some(RunEndReason::Shutdown)),
        };
        match outcome {
            Ok(Some(reason)) => {
                tracing::info!(subject = %cfg.subject, %reason, "run ended");
                if handoff.send(SourceItem::RunEnded { reason }).await.is_err() {
                    break;
                }
            }
            Ok(None) => break, // receiver gone
            Err((e, ran)) => {
                events.emit(Event::new(cfg.subject.clone(), e.diagnostic()));
                tracing::warn!(subject = %cfg.subject, error = %e, "session failed");
                if ran {
                    let reason = RunEndReason::Disconnected(e.to_string());
                    if handoff.send(SourceItem::RunEnded { reason }).await.is_err() {
                        break;
                    }
                }
            }
        }
        if *shutdown.borrow() {
            break;
        }
        let delay = backoff.next_delay();
        tracing::debug!(subject = %cfg.subject, ?delay, "reconnecting after backoff");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
    // Sessions dropped above start their TEARDOWN in the background; give them a moment so
    // the camera frees the session slot before the process exits.
    let _ = tokio::time::timeout(Duration::from_secs(2), group.await_teardown()).await;
}

/// A track chosen for recording: retina stream index plus its codec.
struct Chosen {
    stream: usize,
    codec: TrackCodec,
}

/// One session. `Ok(Some(reason))`: a run ended; `Ok(None)`: the receiver is gone;
/// `Err((e, ran))`: failed, `ran` tells whether `RunStarted` was sent.
async fn session(
    cfg: &SourceConfig,
    group: &Arc<SessionGroup>,
    handoff: &mut Handoff,
    events: &EventBus,
    backoff: &mut Backoff,
) -> Result<Option<RunEndReason>, (SourceError, bool)> {
    let creds = cfg.credentials.as_ref().map(|c| RetinaCredentials {
        username: c.username.clone(),
        password: c.password.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .session_group(group.clone())
        // Auto gives up after one TEARDOWN on the session's own connection, which is gone when
        // the camera cut it; a camera that keeps the session then refuses the next one until it
        // times it out (a minute, typically). Always retries from fresh connections, and the
        // run loop waits for that before reconnecting. A camera that ended the session with its
        // connection answers 454, which counts as done.
        .teardown(TeardownPolicy::Always)
        .user_agent(format!("mediagraph/{}", env!("CARGO_PKG_VERSION")));
    let timeout = cfg.connect_timeout;
    let describe = tokio::time::timeout(
        timeout,
        retina::client::Session::describe(cfg.url.clone(), options),
    );
    let (described, socket) =
        batching::find_socket(describe, cfg.url.port().unwrap_or(RTSP_PORT)).await;
    let mut described = described
        .map_err(|_| (SourceError::Timeout(timeout, "DESCRIBE"), false))?
        .map_err(|e| (SourceError::from_retina("DESCRIBE", e), false))?;
    let sdp = String::from_utf8_lossy(described.sdp()).into_owned();

    let (chosen, unsupported) = choose_tracks(described.streams(), cfg);
    if !chosen.iter().any(|c| c.codec != TrackCodec::Aac) {
        // One diagnostic per attempt, naming everything offered: there is nothing to record.
        let offered: Vec<String> = described
            .streams()
            .iter()
            .enumerate()
            .map(|(i, s)| describe_track(i, s))
            .collect();
        return Err((SourceError::NoVideo(offered.join(", ")), false));
    }
    for (i, s) in unsupported {
        media_format_error(
            events,
            cfg,
            catalog::MediaFormatError {
                code: "UnsupportedCodec",
                media_type: Some(s.media().to_owned()),
                track: Some(i),
                encoding: Some(s.encoding_name().to_ascii_uppercase()),
                error_message: format!(
                    "{} is not recorded: unsupported codec; the other tracks are recorded (supported: {SUPPORTED})",
                    describe_track(i, s)
                ),
            },
        );
    }
    for c in &chosen {
        let setup = SetupOptions::default()
            .transport(Transport::Tcp(TcpTransportOptions::default()))
            .frame_format(FrameFormat::MP4);
        tokio::time::timeout(timeout, described.setup(c.stream, setup))
            .await
            .map_err(|_| (SourceError::Timeout(timeout, "SETUP"), false))?
            .map_err(|e| (SourceError::from_retina("SETUP", e), false))?;
    }
    let playing = tokio::time::timeout(timeout, described.play(PlayOptions::default()))
        .await
        .map_err(|_| (SourceError::Timeout(timeout, "PLAY"), false))?
        .map_err(|e| (SourceError::from_retina("PLAY", e), false))?;
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| (SourceError::from_retina("PLAY", e), false))?;
    events.emit(Event::new(
        cfg.subject.clone(),
        catalog::MediaSessionEstablished {
            sdp: format!("SDP:\n{sdp}"),
        },
    ));
    tracing::info!(subject = %cfg.subject, url = %redacted(&cfg.url), "session playing");

    // Declared after `demuxed`, so dropped first: the mark is released while the connection
    // is still open, before retina sends TEARDOWN on it.
    let mut batching = ReadBatching::new(socket);
    let mut run: Option<RunState> = None;
    let mut watchdog = Watchdog::new(cfg.stall_timeout);
    let mut keyframe_wait = KeyframeWait::new(cfg.keyframe_wait);
    loop {
        let next = tokio::select! {
            biased;
            next = demuxed.next() => Some(next),
            () = batching.quiet(), if batching.is_holding() => {
                batching.release();
                continue;
            }
            () = watchdog.expired() => None,
        };
        let item = match next {
            None if run.is_some() => return Ok(Some(RunEndReason::Stalled)),
            None => {
                return Err((
                    SourceError::Timeout(cfg.stall_timeout, "waiting for the first keyframe"),
                    false,
                ));
            }
            Some(None) => {
                let why = "camera closed the session".to_owned();
                return if run.is_some() {
                    Ok(Some(RunEndReason::Disconnected(why)))
                } else {
                    Err((SourceError::Network(why), false))
                };
            }
            Some(Some(Err(e))) => {
                return Err((SourceError::from_retina("PLAY", e), run.is_some()));
            }
            Some(Some(Ok(item))) => item,
        };
        let now = Instant::now();
        let stream_id = match &item {
            CodecItem::VideoFrame(f) => f.stream_id(),
            CodecItem::AudioFrame(f) => f.stream_id(),
            _ => continue,
        };
        let Some(track) = chosen.iter().position(|c| c.stream == stream_id) else {
            continue;
        };
        let (media, keyframe, new_params, data) = match item {
            CodecItem::VideoFrame(f) => {
                // Only video keeps a session alive: RTCP reports (or audio) go on from a
                // camera whose encoder hung, and such a session records nothing.
                watchdog.fed(now);
                let keyframe = match chosen[track].codec {
                    TrackCodec::H265 => h265_is_irap(f.data()),
                    _ => f.is_random_access_point(),
                };
                let new = f.has_new_parameters();
                (f.timestamp(), keyframe, new, Bytes::from(f.into_data()))
            }
            CodecItem::AudioFrame(f) => {
                (f.timestamp(), true, false, Bytes::copy_from_slice(f.data()))
            }
            _ => continue,
        };
        batching.received(data.len(), now);
        let host_now = Ticks90k::now();
        let streams = demuxed.streams();
        if run.is_none() {
            // A run starts at a video keyframe once every chosen track has parameters: earlier
            // frames cannot be decoded.
            if chosen[track].codec == TrackCodec::Aac {
                continue;
            }
            if !keyframe {
                if keyframe_wait.overdue(now) {
                    let secs = cfg.keyframe_wait.as_secs();
                    tracing::warn!(subject = %cfg.subject, secs, "no video keyframe yet; nothing is recorded until one arrives");
                    media_format_error(
                        events,
                        cfg,
                        catalog::MediaFormatError::video(
                            "NoKeyframe",
                            chosen[track].stream,
                            format!(
                                "no video keyframe in {secs} s of video: recording starts at the first keyframe, and until then nothing is recorded; check the camera's keyframe (I-frame) interval"
                            ),
                        ),
                    );
                }
                continue;
            }
            let Some(tracks) = chosen
                .iter()
                .map(|c| params_of(&streams[c.stream], c.codec))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let base = ClockRate::from(media.clock_rate()).to_90k(media.elapsed());
            let video = chosen
                .iter()
                .position(|c| c.codec != TrackCodec::Aac)
                .expect("a video track was chosen");
            let mut declared =
                reorder::declared_depth(tracks[video].codec, &tracks[video].decoder_config);
            tracing::debug!(subject = %cfg.subject, ?declared, "video reorder depth");
            if let Some(depth) = declared.filter(|d| *d > reorder::MAX_REORDER_DEPTH) {
                // Frames are held until `depth` pictures are in: a camera declaring millions
                // would hold the whole run in memory and record nothing.
                let max = reorder::MAX_REORDER_DEPTH;
                tracing::warn!(subject = %cfg.subject, depth, max, "declared reorder depth clamped");
                media_format_error(
                    events,
                    cfg,
                    catalog::MediaFormatError::video(
                        "ReorderDepthTooLarge",
                        chosen[video].stream,
                        format!(
                            "the camera's SPS declares a reorder depth of {depth} pictures; the codec allows at most {max}, so {max} is used (frames reordered further are retimed)"
                        ),
                    ),
                );
                declared = Some(max);
            }
            run = Some(RunState {
                base,
                map: WallClockMap::new(host_now),
                tracks: tracks.clone(),
                timeline: Timeline::new(
                    video,
                    tracks.iter().map(|t| t.clock_rate).collect(),
                    declared,
                ),
                reorder_reported: false,
                ready: Vec::new(),
            });
            if handoff
                .send(SourceItem::RunStarted { tracks })
                .await
                .is_err()
            {
                return Ok(None);
            }
            backoff.reset();
        }
        let state = run.as_mut().expect("run started above");
        let clock = ClockRate::from(media.clock_rate());
        let elapsed = clock.to_90k(media.elapsed()) - state.base;
        if elapsed < Duration90k::ZERO {
            continue; // audio captured before the run's first keyframe
        }
        let wall = match state.map.map(elapsed, host_now) {
            Ok(w) => w,
            Err(jump) => {
                tracing::warn!(subject = %cfg.subject, predicted = jump.predicted.0, host = jump.host.0, "clock jump; splitting the run");
                return Ok(Some(RunEndReason::ClockJump));
            }
        };
        let media_time = clock.from_90k(elapsed);
        let new_params = if new_params {
            params_of(&streams[stream_id], chosen[track].codec)
        } else {
            None
        };
        if let Some(p) = &new_params {
            state.tracks[track] = p.clone();
        }
        let frame = Frame {
            track,
            media_time,
            decode_time: media_time,
            wall,
            keyframe,
            data,
            new_params,
        };
        let known_depth = state.timeline.depth();
        state.timeline.push(frame, &mut state.ready);
        if known_depth.is_none()
            && let Some(depth) = state.timeline.depth()
            && depth > 0
        {
            tracing::info!(subject = %cfg.subject, depth, "video has B-frames; decode times derived from the reorder depth");
        }
        if state.timeline.violations() > 0 && !state.reorder_reported {
            state.reorder_reported = true;
            let depth = state.timeline.depth().unwrap_or(0);
            tracing::warn!(subject = %cfg.subject, depth, "video reordered deeper than its declared depth");
            media_format_error(
                events,
                cfg,
                catalog::MediaFormatError::video(
                    "InvalidTimestamps",
                    chosen[state.timeline.video()].stream,
                    format!(
                        "video pictures arrive reordered deeper than the stream's reorder depth ({depth}); such pictures are recorded with approximate timing or dropped"
                    ),
                ),
            );
        }
        for f in state.ready.drain(..) {
            if handoff.send(SourceItem::Frame(f)).await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// LVA's `MediaFormatError` diagnostic about this source.
fn media_format_error(events: &EventBus, cfg: &SourceConfig, body: catalog::MediaFormatError) {
    events.emit(Event::new(cfg.subject.clone(), body));
}

/// Notices a session that has gone quiet. One timer per session, re-armed only when it fires:
/// arming a timer per frame showed in profiles of many cameras.
struct Watchdog {
    limit: Duration,
    last_fed: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Watchdog {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            last_fed: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn fed(&mut self, now: Instant) {
        self.last_fed = now;
    }

    /// Resolves once nothing has been fed for the limit.
    async fn expired(&mut self) {
        loop {
            self.timer.as_mut().await;
            let deadline = self.last_fed + self.limit;
            if Instant::now() >= deadline {
                return;
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// Notices a session whose video offers no keyframe to start a run from. Waiting for the first
/// keyframe is normal, so only a wait beyond the limit is reported, and only once a session.
struct KeyframeWait {
    limit: Duration,
    since: Option<Instant>,
    reported: bool,
}

impl KeyframeWait {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            since: None,
            reported: false,
        }
    }

    /// Called for each video frame that cannot start the run; true the first time the session
    /// has waited beyond the limit since its first such frame.
    fn overdue(&mut self, now: Instant) -> bool {
        let since = *self.since.get_or_insert(now);
        if self.reported || now - since < self.limit {
            return false;
        }
        self.reported = true;
        true
    }
}

struct RunState {
    /// Media time of the run's first frame, on 90 kHz.
    base: Duration90k,
    map: WallClockMap,
    tracks: Vec<TrackParams>,
    /// Decode times; holds the run's first frames until the video's timing is known.
    timeline: Timeline,
    reorder_reported: bool,
    /// Frames whose timing is known, to send in order.
    ready: Vec<Frame>,
}

/// What the recorder can record, for diagnostics.
const SUPPORTED: &str = "H.264 or H.265 video, AAC audio";

/// Picks the first H.264/H.265 video stream and, if wanted, the first AAC audio stream; also
/// returns the wanted media streams whose codec cannot be recorded (audio counts only when
/// the sink selects audio).
fn choose_tracks<'a>(
    streams: &'a [retina::client::Stream],
    cfg: &SourceConfig,
) -> (Vec<Chosen>, Vec<(usize, &'a retina::client::Stream)>) {
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut unsupported = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let enc = s.encoding_name().to_ascii_lowercase();
        let codec = match (s.media(), enc.as_str()) {
            ("video", "h264") => Some(TrackCodec::H264),
            ("video", "h265") => Some(TrackCodec::H265),
            ("audio", "mpeg4-generic") => Some(TrackCodec::Aac),
            _ => None,
        };
        match codec {
            Some(TrackCodec::Aac) if !cfg.audio => {}
            Some(c)
                if chosen
                    .iter()
                    .any(|x| (x.codec == TrackCodec::Aac) == (c == TrackCodec::Aac)) => {}
            Some(c) => chosen.push(Chosen {
                stream: i,
                codec: c,
            }),
            None if s.media() == "video" || (s.media() == "audio" && cfg.audio) => {
                unsupported.push((i, s));
            }
            None => {}
        }
    }
    (chosen, unsupported)
}

/// `audio track 1 (PCMU, 8000 Hz)`: how diagnostics name an SDP media stream.
fn describe_track(i: usize, s: &retina::client::Stream) -> String {
    format!(
        "{} track {i} ({}, {} Hz)",
        s.media(),
        s.encoding_name().to_ascii_uppercase(),
        s.clock_rate_hz()
    )
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) is an IRAP picture: all
/// its VCL NAL units are BLA, IDR or CRA (types 16..=21). retina flags only IDR as a random
/// access point, but cameras with open GOPs (x265's default) send CRA keyframes, and a
/// decoder can start at any IRAP (it skips the RASL pictures that follow a leading CRA).
fn h265_is_irap(mut au: &[u8]) -> bool {
    let mut vcl = false;
    while let Some((len, rest)) = au.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = rest.get(..len) else {
            return false; // malformed framing: do not start a segment here
        };
        if let Some(&header) = nal.first() {
            let t = (header >> 1) & 0x3f;
            if t < 32 {
                if !(16..=21).contains(&t) {
                    return false;
                }
                vcl = true;
            }
        }
        au = &rest[len..];
    }
    vcl
}

fn params_of(stream: &retina::client::Stream, codec: TrackCodec) -> Option<TrackParams> {
    match stream.parameters()? {
        ParametersRef::Video(v) => {
            let (width, height) = v.pixel_dimensions();
            let codec = match v.codec_params() {
                VideoParametersCodec::H264 { .. } => TrackCodec::H264,
                VideoParametersCodec::H265 { .. } => TrackCodec::H265,
                _ => return None,
            };
            Some(TrackParams {
                codec,
                clock_rate: ClockRate::new(stream.clock_rate_hz())?,
                width,
                height,
                sample_rate: 0,
                channels: 0,
                decoder_config: Bytes::copy_from_slice(v.extra_data()),
                rfc6381: v.rfc6381_codec().to_owned(),
            })
        }
        ParametersRef::Audio(a) if codec == TrackCodec::Aac => Some(TrackParams {
            codec,
            clock_rate: ClockRate::new(a.clock_rate())?,
            width: 0,
            height: 0,
            sample_rate: a.clock_rate(),
            channels: u32::from(a.channels().get()),
            decoder_config: Bytes::copy_from_slice(a.extra_data()),
            rfc6381: a.rfc6381_codec().unwrap_or("mp4a.40.2").to_owned(),
        }),
        _ => None,
    }
}

/// The URL without user info, for logs.
pub fn redacted(url: &Url) -> Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_401_is_an_authentication_error_with_the_code() {
        let e = SourceError::Status {
            method: "DESCRIBE",
            status: 401,
            message: "Unauthorized".into(),
        };
        let body = e.diagnostic();
        assert_eq!(
            body.event_type(),
            "Microsoft.Media.Graph.Diagnostics.AuthenticationError"
        );
        assert_eq!(serde_json::to_value(&body).unwrap()["errorCode"], "401");
    }

    /// 4-byte length-prefixed NAL units with the given H.265 types (2-byte header + 1 byte).
    fn h265_au(types: &[u8]) -> Vec<u8> {
        types
            .iter()
            .flat_map(|t| [0, 0, 0, 3, t << 1, 1, 0xaf])
            .collect()
    }

    #[test]
    fn h265_irap_pictures_are_keyframes_whatever_their_type() {
        // BLA_W_LP, BLA_N_LP, IDR_W_RADL, IDR_N_LP, CRA, each after an AUD and prefix SEI.
        for t in [16, 18, 19, 20, 21] {
            assert!(h265_is_irap(&h265_au(&[35, 39, t])), "type {t}");
            assert!(h265_is_irap(&h265_au(&[t, t])), "two slices of type {t}");
        }
        // TRAIL_R, RASL_N, RADL_R, reserved IRAP 22: not a place to start decoding here.
        for t in [1, 8, 7, 22] {
            assert!(!h265_is_irap(&h265_au(&[35, t])), "type {t}");
        }
        assert!(!h265_is_irap(&h265_au(&[35, 39])), "no picture");
        assert!(!h265_is_irap(&h265_au(&[21, 1])), "mixed picture");
        let mut torn = h265_au(&[21]);
        torn[3] = 200;
        assert!(!h265_is_irap(&torn), "length beyond the data");
    }

    #[test]
    fn a_missing_keyframe_is_reported_once_after_the_limit() {
        let mut wait = KeyframeWait::new(Duration::from_secs(30));
        let start = Instant::now();
        // One picture without a keyframe every second for 40 s.
        let reports: Vec<u64> = (0..40)
            .filter(|&second| wait.overdue(start + Duration::from_secs(second)))
            .collect();
        assert_eq!(reports, vec![30]);
    }

    #[test]
    fn redaction_drops_user_info() {
        let u = Url::parse("rtsp://admin:hunter2@10.0.0.1:554/stream").unwrap();
        assert_eq!(redacted(&u).as_str(), "rtsp://10.0.0.1:554/stream");
    }
}
