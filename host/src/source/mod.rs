//! RTSP ingest of one camera with `retina`: sessions, runs and wall-clock time.
//!
//! Owns: connecting over RTSP/TCP interleaved with the topology's credentials, choosing the
//! tracks to record (H.264/H.265 video, AAC audio when asked; other codecs are reported),
//! recognising keyframes (H.265 IRAP pictures, not only IDR), deriving decode times for video
//! with B-frames ([`reorder`]), reconnecting forever with exponential backoff and jitter, stall
//! detection, reporting video that offers no keyframe to start from, TEARDOWN on close, mapping
//! media time to wall-clock 90 kHz ticks per run ([`clock`]), reading several frames per
//! wake-up ([`batching`]), bounding what retina holds of one answer or frame ([`guard`]) and
//! the LVA diagnostics about the session.
//!
//! Must not: touch the disk, decide segment boundaries, or block the runtime. One session per
//! source node feeds all its sinks through bounded queues ([`handoff`]): a slow sink slows the
//! session down (back pressure) when it is the only one, and loses frames for itself alone
//! when there are others; memory never grows with a slow sink.
//!
//! Parts: [`session`] (one RTSP session: connect, DESCRIBE/SETUP/PLAY, frames, runs),
//! [`error`] (what a failed session is reported as), [`codec`] (choosing tracks, keyframes,
//! codec parameters), [`handoff`] (the bounded hand-over to the sinks), [`socket`] (finding
//! retina's socket and asking the kernel about it).

pub mod batching;
pub mod clock;
mod codec;
mod error;
pub mod guard;
pub mod handoff;
pub mod reorder;
mod session;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use retina::client::SessionGroup;
use tokio::sync::watch;
use url::Url;

use crate::events::{Event, EventBus};
use crate::retry::Backoff;
use crate::time::{ClockRate, Ticks90k};
pub use error::SourceError;
use handoff::Handoff;
use session::session;

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
    /// This sink's queue was full, so its frames were dropped (`frames` of them) while the
    /// camera's other sinks went on; it starts a new run at a keyframe (see [`handoff`]).
    SinkBehind { frames: u64 },
}

impl std::fmt::Display for RunEndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disconnected(why) => write!(f, "disconnected: {why}"),
            Self::Stalled => f.write_str("stalled"),
            Self::ClockJump => f.write_str("clock jump"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::SinkBehind { frames } => write!(f, "sink behind: {frames} frames dropped"),
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

/// Runs the camera's sessions until `shutdown` turns true; never returns early on camera
/// errors. Each played session is a run bracketed by `RunStarted`/`RunEnded` on `handoff`.
/// The camera is not contacted before the first sink has joined the hand-over.
pub async fn run(
    cfg: SourceConfig,
    mut handoff: Handoff,
    events: EventBus,
    mut shutdown: watch::Receiver<bool>,
) {
    if *shutdown.borrow() {
        return;
    }
    tokio::select! {
        joined = handoff.first_sink() => if joined.is_err() { return },
        _ = shutdown.changed() => return,
    }
    let group = Arc::new(SessionGroup::default().named(cfg.subject.clone()));
    // The first retry after half a second; ±25 % jitter.
    let mut backoff = Backoff::new(Duration::from_millis(500), cfg.max_backoff, 0.75..=1.25);
    let mut unguarded = guard::UnguardedWarning::default();
    while !*shutdown.borrow() {
        // A camera that still holds our previous session may refuse a new one; wait (bounded)
        // for retina's TEARDOWN of stale sessions first (it retries while the camera is
        // unreachable, so after an outage this returns about when the camera is back).
        let stale = group.stale_sessions();
        if stale.num_sessions > 0 {
            let _ = tokio::time::timeout(cfg.max_backoff, group.await_stale_sessions(&stale)).await;
        }
        let outcome = tokio::select! {
            o = session(&cfg, &group, &mut handoff, &events, &mut backoff, &mut unguarded) => o,
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
    fn redaction_drops_user_info() {
        let u = Url::parse("rtsp://admin:hunter2@10.0.0.1:554/stream").unwrap();
        assert_eq!(redacted(&u).as_str(), "rtsp://10.0.0.1:554/stream");
    }
}
