//! Pacing of retries against peers that may be gone for a while: RTSP reconnects (`source`)
//! and uploads (`upload::uploader`) wait by the same rule with their own parameters.
//!
//! Owns: the backoff sequence (a first delay doubling per consecutive failure up to a cap) and
//! its jitter.
//! Must not: sleep, or know what is being retried.

use std::ops::RangeInclusive;
use std::time::Duration;

/// Exponential backoff with jitter: before retry `n` (1-based) wait
/// `min(first · 2^(n−1), cap)` scaled by a random factor from `jitter`, never above `cap`. The
/// jitter keeps many cameras or sinks that failed together (one switch, one storage outage)
/// from retrying in lock step.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    jitter: RangeInclusive<f64>,
    /// Consecutive failures so far; the next delay is for retry `failures + 1`.
    failures: u32,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration, jitter: RangeInclusive<f64>) -> Self {
        Self {
            first,
            cap,
            jitter,
            failures: 0,
        }
    }

    /// The delay before retry `attempt` (1-based), without counting it. The doubling stops
    /// after 16 steps (`first` · 65536), far beyond any cap in use.
    pub fn delay(&self, attempt: u32) -> Duration {
        let grown = self
            .first
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let factor = rand::random_range(self.jitter.clone());
        grown.min(self.cap).mul_f64(factor).min(self.cap)
    }

    /// Counts one more failure and returns the delay before the retry.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay(self.failures)
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let cap = Duration::from_secs(30);
        let mut b = Backoff::new(Duration::from_millis(500), cap, 0.75..=1.25);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(375) && first <= Duration::from_millis(625));
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= cap);
        }
        assert!(
            last >= Duration::from_millis(22_500),
            "capped delay with jitter: {last:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(625));
    }

    #[test]
    fn a_delay_below_its_step_stays_within_half_and_whole() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0.5..=1.0);
        for (attempt, step) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            let d = b.delay(attempt);
            let step = Duration::from_secs(step);
            assert!(
                d >= step / 2 && d <= step,
                "retry {attempt}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
    }
}
