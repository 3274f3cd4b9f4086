//! Read batching: fewer, larger reads from a playing session's socket.
//!
//! A camera sends a frame every 40 ms or so. Reading each one as it arrives costs a wake-up, a
//! read, and a second read that finds the socket empty; at 32 cameras that was about a fifth of
//! the recorder's CPU. The kernel can hold the data back instead: with `SO_RCVLOWAT` a TCP
//! socket turns readable only once that many bytes are queued. This module sets that low-water
//! mark to about [`TARGET_DELAY`] of the session's measured bitrate, so each wake-up reads
//! several frames at once.
//!
//! Data held back is data not yet recorded, so the mark goes back to one byte whenever it could
//! leave data waiting: when nothing has arrived for [`QUIET_LIMIT`] (the bitrate fell, or the
//! camera stalled), and when the session ends (so the camera's answer to TEARDOWN is read at
//! once). It is measured again after every [`WINDOW`].
//!
//! retina owns the connection and does not hand out its socket; [`super::socket`] finds it
//! while DESCRIBE is polled.
//!
//! Must not: set the mark on a socket [`super::socket::find_socket`] did not find; leave the
//! mark above one byte once a session's data has gone quiet or the session has ended.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::socket::SessionSocket;

/// How long data may wait in the kernel while the session streams steadily. Fragments are 2 s
/// and the wall-clock mapping tolerates seconds of jitter, so a quarter second costs nothing
/// recorded; 32 KiB and 64 KiB marks at 2 Mbit/s (0.13 s and 0.26 s) cost 0.78× and 0.76× the
/// CPU of reading every frame, 16 KiB 0.85×.
pub const TARGET_DELAY: Duration = Duration::from_millis(250);

/// No data for this long while holding data back releases the mark: held data is read at once.
pub const QUIET_LIMIT: Duration = Duration::from_secs(1);

/// The bitrate is measured over this long before the mark is (re)set.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Upper bound of the mark: more than this buys nothing measurable and holds more data.
pub const MAX_LOW_WATER: u32 = 64 * 1024;

/// The mark for a session that received `bytes` in `elapsed`: [`TARGET_DELAY`] worth of data,
/// at least one byte (the kernel's default: readable as soon as anything is queued).
pub fn low_water_for(bytes: u64, elapsed: Duration) -> u32 {
    if elapsed.is_zero() {
        return 1;
    }
    let held = u128::from(bytes) * TARGET_DELAY.as_nanos() / elapsed.as_nanos();
    u32::try_from(held)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_LOW_WATER)
}

/// The low-water mark of one playing session: measured, set, and released when data could be
/// left waiting. Dropping it releases the mark.
pub struct ReadBatching {
    socket: Option<SessionSocket>,
    mark: u32,
    window_start: Option<Instant>,
    window_bytes: u64,
    last_data: Instant,
    quiet_timer: Pin<Box<Sleep>>,
}

impl ReadBatching {
    /// `socket: None` (not found) measures nothing and never holds data back.
    pub fn new(socket: Option<SessionSocket>) -> Self {
        Self {
            socket,
            mark: 1,
            window_start: None,
            window_bytes: 0,
            last_data: Instant::now(),
            quiet_timer: Box::pin(tokio::time::sleep(QUIET_LIMIT)),
        }
    }

    /// True while the kernel may be holding data back.
    pub fn is_holding(&self) -> bool {
        self.mark > 1
    }

    /// `bytes` of media arrived at `now`; at the end of each [`WINDOW`] the mark follows the
    /// bitrate.
    pub fn received(&mut self, bytes: usize, now: Instant) {
        if self.socket.is_none() {
            return;
        }
        self.last_data = now;
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now - start;
        if elapsed < WINDOW {
            return;
        }
        let mark = low_water_for(self.window_bytes, elapsed);
        self.window_start = Some(now);
        self.window_bytes = 0;
        if mark != self.mark {
            self.set(mark);
        }
    }

    /// Resolves once nothing has arrived for [`QUIET_LIMIT`]; pending while not holding.
    pub async fn quiet(&mut self) {
        loop {
            self.quiet_timer.as_mut().await;
            let now = Instant::now();
            let deadline = self.last_data + QUIET_LIMIT;
            if !self.is_holding() {
                self.quiet_timer.as_mut().reset(now + QUIET_LIMIT);
            } else if now >= deadline {
                return;
            } else {
                self.quiet_timer.as_mut().reset(deadline);
            }
        }
    }

    /// Makes the socket readable at once again and starts measuring afresh.
    pub fn release(&mut self) {
        self.window_start = None;
        self.window_bytes = 0;
        if self.is_holding() {
            self.set(1);
        }
    }

    fn set(&mut self, mark: u32) {
        let Some(socket) = &self.socket else { return };
        match socket.set_low_water(mark) {
            Ok(()) => {
                tracing::debug!(mark, "read low-water mark");
                self.mark = mark;
            }
            Err(e) => {
                // Unbatched reads cost CPU, nothing else; stop trying for this session.
                tracing::debug!(error = %e, "SO_RCVLOWAT refused; reading every frame");
                self.socket = None;
                self.mark = 1;
            }
        }
    }
}

impl Drop for ReadBatching {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::socket::tests::session_pair;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_mark_is_a_quarter_second_of_data_within_bounds() {
        let five = Duration::from_secs(5);
        // 2 Mbit/s: 250 000 B/s, a quarter second is 62 500 B.
        assert_eq!(low_water_for(1_250_000, five), 62_500);
        // 64 kbit/s: 2 000 B.
        assert_eq!(low_water_for(40_000, five), 2_000);
        // 20 Mbit/s would hold 625 000 B; capped.
        assert_eq!(low_water_for(12_500_000, five), MAX_LOW_WATER);
        assert_eq!(low_water_for(0, five), 1);
        assert_eq!(low_water_for(1_000, Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn the_mark_follows_the_bitrate_and_is_released_when_quiet_or_dropped() {
        let (client, mut server, socket) = session_pair().await;
        let fd = socket.clone();
        let mut batching = ReadBatching::new(Some(socket));
        // A window that ends now, so the quiet limit counts from now.
        let t0 = Instant::now() - WINDOW;
        batching.received(250_000, t0);
        assert!(
            !batching.is_holding(),
            "nothing is held before a window is measured"
        );
        batching.received(1_000_000, t0 + WINDOW);
        assert_eq!(fd.low_water().unwrap(), 62_500);
        assert!(batching.is_holding());

        // Held back: a frame's worth below the mark does not make the socket readable.
        server.write_all(&[0; 1000]).await.unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(300), client.readable()).await;
        assert!(wait.is_err(), "1000 B under a 62500 B mark must wait");

        // Nothing arrived for the quiet limit (t0 + WINDOW was the last data): released, and
        // the waiting bytes are readable at once.
        tokio::time::timeout(QUIET_LIMIT * 2, batching.quiet())
            .await
            .expect("quiet fires");
        assert!(t0.elapsed() >= WINDOW + QUIET_LIMIT, "quiet fired early");
        batching.release();
        assert_eq!(fd.low_water().unwrap(), 1);
        tokio::time::timeout(Duration::from_millis(300), client.readable())
            .await
            .expect("readable once released")
            .unwrap();
        let mut buf = [0; 2000];
        assert_eq!(client.try_read(&mut buf).unwrap(), 1000);

        // Measured again, held again, released on drop.
        let t1 = Instant::now() - WINDOW;
        batching.received(0, t1);
        batching.received(40_000, t1 + WINDOW);
        assert_eq!(fd.low_water().unwrap(), 2_000);
        drop(batching);
        assert_eq!(fd.low_water().unwrap(), 1);
    }

    #[tokio::test]
    async fn without_a_socket_nothing_is_held() {
        let mut batching = ReadBatching::new(None);
        let t0 = Instant::now();
        batching.received(1_000_000, t0);
        batching.received(1_000_000, t0 + WINDOW);
        assert!(!batching.is_holding());
    }
}
