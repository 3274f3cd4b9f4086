//! Wall-clock mapping of one run's media time.
//!
//! Invariants (see ARCHITECTURE.md "## source"):
//! - Within a run, wall time is a strictly increasing function of media time: it advances by the
//!   media delta plus a correction that changes by at most `MAX_SLEW_PPM` of that delta.
//! - The correction moves toward the host clock (receipt time), so a camera whose clock runs
//!   fast or slow drifts back to UTC gently instead of jumping.
//! - If the host clock and the prediction disagree by more than `JUMP`, the mapping does
//!   not slew: it reports a jump and the caller ends the run and starts a new one.

use crate::time::{Duration90k, Ticks90k};

/// Largest correction step, in parts per million of elapsed media time.
pub const MAX_SLEW_PPM: i64 = 500;

/// A disagreement larger than this between prediction and host clock is a jump, not drift.
pub const JUMP: Duration90k = Duration90k::from_secs(5);

/// Maps media time (90 kHz ticks since the run's first frame) to wall time.
#[derive(Debug, Clone)]
pub struct WallClockMap {
    anchor_wall: Ticks90k,
    last_media: Duration90k,
    last_wall: Ticks90k,
    /// Accumulated correction in 90 kHz ticks, scaled by 1e6 to keep sub-tick slew exact.
    correction_micro: i64,
}

/// The host clock disagrees with the run's timeline by more than [`JUMP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockJump {
    pub predicted: Ticks90k,
    pub host: Ticks90k,
}

impl WallClockMap {
    /// Anchors the run: media time 0 happened at `host_now`.
    pub fn new(host_now: Ticks90k) -> Self {
        Self {
            anchor_wall: host_now,
            last_media: Duration90k::ZERO,
            last_wall: host_now,
            correction_micro: 0,
        }
    }

    /// Wall time of `media` (media time since the run's first frame, non-decreasing),
    /// received at `host_now`.
    pub fn map(&mut self, media: Duration90k, host_now: Ticks90k) -> Result<Ticks90k, ClockJump> {
        let delta = (media - self.last_media).max(Duration90k::ZERO);
        let uncorrected = self.anchor_wall + media + self.correction();
        let error = host_now - uncorrected;
        if error.abs() > JUMP {
            return Err(ClockJump {
                predicted: uncorrected,
                host: host_now,
            });
        }
        // Frames arrive after they were captured, so the host clock reads late by the network
        // and buffering latency; slewing toward it is bounded so jitter cannot move the timeline.
        let max_step = delta.0 * MAX_SLEW_PPM;
        let step = (error.0 * 1_000_000).clamp(-max_step, max_step);
        self.correction_micro += step;
        let wall = self.anchor_wall + media + self.correction();
        let wall = if media > self.last_media {
            wall.max(self.last_wall + Duration90k(1))
        } else {
            wall.max(self.last_wall)
        };
        self.last_media = self.last_media.max(media);
        self.last_wall = wall;
        Ok(wall)
    }

    /// The correction applied now, in whole ticks.
    fn correction(&self) -> Duration90k {
        Duration90k(self.correction_micro / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TICKS_PER_SECOND;

    fn d(ticks: i64) -> Duration90k {
        Duration90k(ticks)
    }

    const T0: Ticks90k = Ticks90k(1_700_000_000 * TICKS_PER_SECOND);

    #[test]
    fn exact_clock_maps_media_time_one_to_one() {
        let mut m = WallClockMap::new(T0);
        for i in 0..100 {
            let media = d(i * 3000);
            assert_eq!(m.map(media, T0 + media).unwrap(), T0 + media);
        }
    }

    #[test]
    fn fast_camera_is_slewed_at_most_max_ppm() {
        // Camera clock 1000 ppm fast: media advances 1.001 s per host second.
        let mut m = WallClockMap::new(T0);
        let mut prev = T0;
        let mut prev_media = d(0);
        for i in 1..=36_000 {
            let host = T0 + d(i * 9000); // 0.1 s steps, one hour
            let media = d(i * 9009);
            let w = m.map(media, host).unwrap();
            let step = w - prev;
            let media_step = media - prev_media;
            assert!((step - media_step).abs().0 <= media_step.0 * MAX_SLEW_PPM / 1_000_000 + 1);
            prev = w;
            prev_media = media;
        }
        // After an hour the error (1000 ppm → 3.6 s uncorrected) is cut by the 500 ppm slew.
        let err = (prev - (T0 + d(36_000 * 9000))).abs();
        assert!(err < Duration90k::from_secs(2), "residual error {err:?}");
    }

    #[test]
    fn host_clock_jump_is_reported_not_slewed() {
        let mut m = WallClockMap::new(T0);
        m.map(d(90_000), T0 + d(90_000)).unwrap();
        let jump = m
            .map(d(180_000), T0 + d(180_000 + 3600 * TICKS_PER_SECOND))
            .unwrap_err();
        assert_eq!(jump.predicted, T0 + d(180_000));
    }

    #[test]
    fn wall_time_never_goes_backwards() {
        let mut m = WallClockMap::new(T0);
        let a = m.map(d(9000), T0 + d(20_000)).unwrap();
        let b = m.map(d(9000), T0).unwrap();
        let c = m.map(d(9001), T0).unwrap();
        assert!(b >= a && c > b);
    }
}
