//! Locking that outlives a panicking holder.
//!
//! Owns: the one rule for poisoned mutexes. Every mutex in the host guards state that is whole
//! between statements (a cache index updated after the file operation succeeded, counters, a
//! client handle, a ring of recent events), so a thread that panicked while holding one left
//! nothing half-written; recording and uploading must not stop because of it.
//! Must not: hold locks itself or know what they guard.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub trait LockExt<T> {
    /// Locks, taking the data over if a previous holder panicked.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_still_hands_out_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = held.lock().unwrap();
            *g = 2;
            panic!("holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.lock_unpoisoned(), 2);
    }
}
