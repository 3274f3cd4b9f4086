//! One RTSP session: connect and DESCRIBE (finding the socket for read batching and the memory
//! guard), SETUP and PLAY the chosen tracks, then turn retina's frames into runs: a run starts at a video
//! keyframe, its frames get wall-clock instants and decode times, and it ends when the camera
//! goes away, stalls or the clock jumps.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials as RetinaCredentials, PlayOptions, SessionGroup, SessionOptions, SetupOptions,
    TcpTransportOptions, TeardownPolicy, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::time::{Instant, Sleep};

use super::batching::ReadBatching;
use super::clock::WallClockMap;
use super::codec::{SUPPORTED, choose_tracks, describe_track, h265_is_irap, params_of};
use super::guard::{self, MemoryGuard, UnguardedWarning};
use super::handoff::Handoff;
use super::reorder::{self, Timeline};
use super::socket;
use super::{
    Frame, RTSP_PORT, RunEndReason, SourceConfig, SourceError, SourceItem, TrackCodec, TrackParams,
    redacted,
};
use crate::events::catalog;
use crate::events::{Event, EventBus};
use crate::retry::Backoff;
use crate::time::{ClockRate, Duration90k, Ticks90k};

/// One session. `Ok(Some(reason))`: a run ended; `Ok(None)`: the receiver is gone;
/// `Err((e, ran))`: failed, `ran` tells whether `RunStarted` was sent.
pub(super) async fn session(
    cfg: &SourceConfig,
    group: &Arc<SessionGroup>,
    handoff: &mut Handoff,
    events: &EventBus,
    backoff: &mut Backoff,
    unguarded: &mut UnguardedWarning,
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
    // The socket is watched from its connection on, so an answer that never ends is cut off
    // while it is being read.
    let mut guard = MemoryGuard::describing();
    let port = cfg.url.port().unwrap_or(RTSP_PORT);
    let describe = guard::few_reads(Box::pin(describe));
    let (described, socket) = socket::find_socket(describe, port, |s| guard.check_describe(s))
        .await
        .map_err(|e| (SourceError::too_large(e, None), false))?;
    guard.described(socket.clone());
    unguarded.session(&guard, &cfg.subject);
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
        let setup = tokio::time::timeout(timeout, described.setup(c.stream, setup));
        guard
            .request("SETUP", setup)
            .await
            .map_err(|e| (SourceError::too_large(e, None), false))?
            .map_err(|_| (SourceError::Timeout(timeout, "SETUP"), false))?
            .map_err(|e| (SourceError::from_retina("SETUP", e), false))?;
    }
    let play = tokio::time::timeout(timeout, described.play(PlayOptions::default()));
    let playing = guard
        .request("PLAY", play)
        .await
        .map_err(|e| (SourceError::too_large(e, None), false))?
        .map_err(|_| (SourceError::Timeout(timeout, "PLAY"), false))?
        .map_err(|e| (SourceError::from_retina("PLAY", e), false))?;
    let mut demuxed = guard.playing(
        playing
            .demuxed()
            .map_err(|e| (SourceError::from_retina("PLAY", e), false))?,
    );
    let video_stream = chosen
        .iter()
        .find(|c| c.codec != TrackCodec::Aac)
        .map(|c| c.stream);
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
            Some(Some(Err(exceeded))) => {
                let e = SourceError::too_large(exceeded, video_stream);
                return Err((e, run.is_some()));
            }
            Some(Some(Ok(Err(e)))) => {
                return Err((SourceError::from_retina("PLAY", e), run.is_some()));
            }
            Some(Some(Ok(Ok(item)))) => item,
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
        let streams = demuxed.get_ref().streams();
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
