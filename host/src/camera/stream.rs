//! One camera stream: a pacing task that walks the clip in real time, looping forever, and
//! publishes each frame's (track, index, RTP timestamp) to the sessions watching the stream.
//!
//! The clock is the stream's, not the session's: every session sees the same timeline, RTP
//! timestamps keep increasing across clip loops, and a session that joins late starts at the
//! next keyframe like with a real camera.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::clip::Clip;

pub const VIDEO_CLOCK: u32 = 90_000;
pub const AAC_SAMPLES_PER_FRAME: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// A frame due now; `index` points into the shared clip.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub track: Track,
    pub index: usize,
    pub rtp_ts: u32,
    pub keyframe: bool,
}

#[derive(Debug)]
pub struct Stream {
    pub clip: Arc<Clip>,
    pub fps: u32,
    start: Instant,
    video_base: u32,
    audio_base: u32,
    ticks: broadcast::Sender<Tick>,
}

impl Stream {
    pub fn new(clip: Arc<Clip>, fps: u32) -> Self {
        // About two seconds of frames: a session that falls further behind resyncs at a keyframe.
        let capacity = (fps as usize + 50) * 2;
        Self {
            clip,
            fps,
            start: Instant::now(),
            video_base: rand::random(),
            audio_base: rand::random(),
            ticks: broadcast::channel(capacity).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Tick> {
        self.ticks.subscribe()
    }

    /// RTP timestamp of the stream's timeline at this instant, for `RTP-Info: rtptime=`.
    pub fn rtp_now(&self, track: Track) -> u32 {
        let elapsed = self.start.elapsed().as_nanos();
        match track {
            Track::Video => self
                .video_base
                .wrapping_add((elapsed * u128::from(VIDEO_CLOCK) / 1_000_000_000) as u32),
            Track::Audio => {
                let rate = self.clip.audio.as_ref().map_or(1, |a| a.sample_rate);
                self.audio_base
                    .wrapping_add((elapsed * u128::from(rate) / 1_000_000_000) as u32)
            }
        }
    }

    /// Publishes frames at their due time until the camera stops.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let video_len = self.clip.video.units.len() as u64;
        let audio = self
            .clip
            .audio
            .as_ref()
            .map(|a| (a.sample_rate, a.frames.len() as u64));
        let (mut v, mut a) = (0u64, 0u64);
        loop {
            let v_due = self.start + Duration::from_nanos(v * 1_000_000_000 / u64::from(self.fps));
            let a_due = audio.map(|(rate, _)| {
                self.start
                    + Duration::from_nanos(
                        a * u64::from(AAC_SAMPLES_PER_FRAME) * 1_000_000_000 / u64::from(rate),
                    )
            });
            let (due, track) = match a_due {
                Some(t) if t < v_due => (t, Track::Audio),
                _ => (v_due, Track::Video),
            };
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stopped.changed() => return,
            }
            let tick = match (track, audio) {
                (Track::Audio, Some((_, frames))) => {
                    let t = Tick {
                        track,
                        index: (a % frames) as usize,
                        rtp_ts: self
                            .audio_base
                            .wrapping_add((a * u64::from(AAC_SAMPLES_PER_FRAME)) as u32),
                        keyframe: false,
                    };
                    a += 1;
                    t
                }
                _ => {
                    let index = (v % video_len) as usize;
                    let t = Tick {
                        track: Track::Video,
                        index,
                        rtp_ts: self.video_base.wrapping_add(
                            (v * u64::from(VIDEO_CLOCK) / u64::from(self.fps)) as u32,
                        ),
                        keyframe: self.clip.video.units[index].keyframe,
                    };
                    v += 1;
                    t
                }
            };
            // No receivers is normal: the camera runs whether or not anyone watches.
            let _ = self.ticks.send(tick);
        }
    }
}
