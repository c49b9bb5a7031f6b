//! Monotonic time in microseconds, injectable for tests.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A source of monotonic time, in microseconds since an arbitrary origin.
///
/// The in-process backends take their time from a `Clock`; the Redis backends take it from
/// Redis (`TIME`), so that instances with skewed clocks agree.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Microseconds since this clock's origin; never decreases.
    fn now_micros(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_micros(&self) -> u64 {
        (**self).now_micros()
    }
}

/// The real monotonic clock ([`Instant`]), counted from the first use in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        // u64 microseconds last 584,000 years.
        u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use parapet_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now_micros(), 1_500_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock to an absolute time; panics in debug builds if that goes backwards.
    pub fn set_micros(&self, micros: u64) {
        let previous = self.micros.swap(micros, Ordering::SeqCst);
        debug_assert!(previous <= micros, "a clock must not go backwards");
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.micros.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now_micros();
        std::thread::sleep(Duration::from_millis(2));
        let b = SystemClock.now_micros();
        assert!(b >= a + 2_000, "{a} then {b}");
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new();
        let clone = clock.clone();
        clock.advance(Duration::from_micros(7));
        assert_eq!(clone.now_micros(), 7);
        clone.set_micros(10);
        assert_eq!(clock.now_micros(), 10);
    }
}
