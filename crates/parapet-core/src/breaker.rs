//! A small circuit breaker for store calls.
//!
//! After a few consecutive failures it opens: calls skip the store for a pause, so a dead or
//! frozen Redis costs requests nothing instead of a deadline each. When the pause ends,
//! exactly **one** call is let through as a probe (half-open); the others keep skipping. A
//! probe that succeeds closes the breaker; one that fails (or never reports, because its
//! request was dropped) opens it for another pause. So recovery is automatic and a sick
//! Redis never sees a thundering herd of probes.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: call the store.
    Call,
    /// Half-open: this caller is the one probe; report its result.
    Probe,
    /// Open: do not call the store.
    Skip,
}

impl Permit {
    /// True for [`Call`](Self::Call) and [`Probe`](Self::Probe).
    pub fn may_call(self) -> bool {
        self != Self::Skip
    }
}

/// A lock-free circuit breaker on a microsecond clock (see the module docs).
///
/// ```
/// use std::time::Duration;
/// use parapet_core::{Breaker, Permit};
///
/// let breaker = Breaker::new(3, Duration::from_millis(200));
/// for now in 0..3 {
///     breaker.failure(now);
/// }
/// assert_eq!(breaker.permit(10), Permit::Skip);
/// assert_eq!(breaker.permit(200_010), Permit::Probe);
/// assert_eq!(breaker.permit(200_011), Permit::Skip, "one probe at a time");
/// breaker.success();
/// assert_eq!(breaker.permit(200_012), Permit::Call);
/// ```
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    pause: i64,
    failures: AtomicU32,
    /// 0 while closed; otherwise the end of the current pause (µs). A probe is granted by
    /// moving it one pause later, so one caller wins it.
    open_until: AtomicI64,
}

impl Default for Breaker {
    /// Opens after 3 consecutive failures, for 200 ms.
    fn default() -> Self {
        Self::new(3, Duration::from_millis(200))
    }
}

impl Breaker {
    /// A breaker that opens after `threshold` consecutive failures (at least 1) and stays
    /// open for `pause` before it probes.
    pub fn new(threshold: u32, pause: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            pause: i64::try_from(pause.as_micros()).unwrap_or(i64::MAX).max(1),
            failures: AtomicU32::new(0),
            open_until: AtomicI64::new(0),
        }
    }

    /// Whether a call may go to the store at `now` (µs of the caller's monotonic clock).
    pub fn permit(&self, now: i64) -> Permit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Permit::Call;
        }
        if now < until {
            return Permit::Skip;
        }
        let next = now.saturating_add(self.pause).max(1);
        match self
            .open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Permit::Probe,
            Err(_) => Permit::Skip,
        }
    }

    /// True while open (calls skip the store), probe slots aside.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// A call succeeded: close.
    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Release);
        }
    }

    /// A call failed at `now`: count it, and open after `threshold` in a row. A failed
    /// probe opens for a whole pause again.
    pub fn failure(&self, now: i64) {
        let next = now.saturating_add(self.pause).max(1);
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(next, Ordering::Release);
            return;
        }
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.threshold {
            self.failures.store(0, Ordering::Relaxed);
            self.open_until.store(next, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSE: i64 = 200_000;

    #[test]
    fn opens_after_threshold_and_success_resets_the_count() {
        let breaker = Breaker::default();
        breaker.failure(0);
        breaker.failure(1);
        assert_eq!(breaker.permit(2), Permit::Call);
        breaker.success();
        breaker.failure(3);
        breaker.failure(4);
        assert_eq!(breaker.permit(5), Permit::Call, "success reset the count");
        breaker.failure(6);
        assert_eq!(breaker.permit(7), Permit::Skip);
        assert!(breaker.is_open());
    }

    #[test]
    fn one_probe_when_the_pause_ends_then_closed_or_open_again() {
        let breaker = Breaker::default();
        for now in 0..3 {
            breaker.failure(now);
        }
        let end = 2 + PAUSE;
        assert_eq!(breaker.permit(end - 1), Permit::Skip);
        let permits: Vec<Permit> = (0..50).map(|i| breaker.permit(end + i)).collect();
        assert_eq!(permits.iter().filter(|p| **p == Permit::Probe).count(), 1);
        assert_eq!(permits[0], Permit::Probe);
        // The probe failed: a whole pause again, then one more probe.
        breaker.failure(end + 60);
        assert_eq!(breaker.permit(end + 61), Permit::Skip);
        assert_eq!(breaker.permit(end + 60 + PAUSE), Permit::Probe);
        breaker.success();
        assert_eq!(breaker.permit(end + 60 + PAUSE + 1), Permit::Call);
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_pause() {
        let breaker = Breaker::new(1, Duration::from_micros(100));
        breaker.failure(0);
        assert_eq!(breaker.permit(100), Permit::Probe);
        // Its request was dropped: nothing reported.
        assert_eq!(breaker.permit(150), Permit::Skip);
        assert_eq!(breaker.permit(200), Permit::Probe);
    }

    #[test]
    fn one_probe_among_racing_threads() {
        let breaker = std::sync::Arc::new(Breaker::new(1, Duration::from_micros(10)));
        breaker.failure(0);
        let probes: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let breaker = breaker.clone();
                    scope.spawn(move || {
                        (0..1000)
                            .filter(|_| breaker.permit(20) == Permit::Probe)
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(probes, 1);
    }
}
