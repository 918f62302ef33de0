//! The injectable clock. Every time-dependent rule (token lifetime, material expiry,
//! deletion windows) asks a [`Clock`] for "now", so tests can move time without sleeping.
//! Request signature timestamps are deliberately checked against the real system time,
//! not against this clock: a test that advances the key-lifecycle clock by a day must still
//! be able to sign requests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in whole seconds.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;
}

/// Real wall-clock time in Unix seconds.
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// System time plus an adjustable offset. The offset is zero in production; with
/// `--enable-test-clock` the test endpoint moves it forward.
#[derive(Default)]
pub struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves the clock forward (or back, with a negative value); returns the total offset.
    pub fn advance(&self, seconds: i64) -> i64 {
        self.offset.fetch_add(seconds, Ordering::SeqCst) + seconds
    }
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> i64 {
        system_now() + self.offset.load(Ordering::SeqCst)
    }
}

/// A clock that only moves when told to; for unit tests.
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(start: i64) -> Self {
        Self {
            now: AtomicI64::new(start),
        }
    }
    pub fn set(&self, t: i64) {
        self.now.store(t, Ordering::SeqCst)
    }
    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
