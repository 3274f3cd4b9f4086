//! Session slots of a camera that keeps sessions past their connection (`--max-sessions`).
//!
//! Many cameras hold an RTSP session until TEARDOWN or its timeout even when the TCP connection
//! that made it is gone, and refuse new sessions (453 Not Enough Bandwidth) while their limit is
//! reached. A recorder whose connection was cut can only record again once it has torn the old
//! session down from a new connection, or once the camera has timed it out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Slots {
    max: usize,
    timeout: Duration,
    /// Session id → when the session expires unless a request names it first.
    held: Mutex<HashMap<String, Instant>>,
}

impl Slots {
    pub(super) fn new(max: usize, timeout: Duration) -> Self {
        Self {
            max,
            timeout,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a slot for a new session; false while `max` live sessions hold them all.
    pub(super) fn claim(&self, id: &str, now: Instant) -> bool {
        let mut held = self.held.lock().expect("slots lock");
        held.retain(|_, expires| *expires > now);
        if held.len() >= self.max {
            return false;
        }
        held.insert(id.to_owned(), now + self.timeout);
        true
    }

    /// A request naming the session keeps it alive for another timeout.
    pub(super) fn refresh(&self, id: &str, now: Instant) {
        if let Some(expires) = self.held.lock().expect("slots lock").get_mut(id) {
            *expires = now + self.timeout;
        }
    }

    /// Frees the session's slot (TEARDOWN, on any connection); true when it held one.
    pub(super) fn release(&self, id: &str) -> bool {
        self.held.lock().expect("slots lock").remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_camera_refuses_until_a_session_is_torn_down_or_times_out() {
        let slots = Slots::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(slots.claim("a", at(0)));
        assert!(!slots.claim("b", at(0)), "one slot, held by a");
        assert!(slots.release("a"));
        assert!(!slots.release("a"), "released once");
        assert!(slots.claim("b", at(0)));

        slots.refresh("b", at(50));
        assert!(!slots.claim("c", at(100)), "b was refreshed 50 s ago");
        assert!(slots.claim("c", at(111)), "b timed out");
    }
}
