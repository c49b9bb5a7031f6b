//! A small circuit breaker: after a few consecutive store failures, stop calling the store
//! for a moment, so that a dead or frozen Redis costs requests nothing instead of a deadline
//! each. The first call after the pause probes again, so recovery is automatic.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// Consecutive failures that open the breaker.
const THRESHOLD: u32 = 3;
/// How long it stays open (µs): short, so the Redis path resumes well within a second.
const OPEN_FOR: i64 = 200_000;

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    failures: AtomicU32,
    open_until: AtomicI64,
}

impl Breaker {
    /// True while calls should skip the store.
    pub(crate) fn is_open(&self, now: i64) -> bool {
        self.open_until.load(Ordering::Relaxed) > now
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn failure(&self, now: i64) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= THRESHOLD {
            self.failures.store(0, Ordering::Relaxed);
            self.open_until.store(now + OPEN_FOR, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_by_itself() {
        let breaker = Breaker::default();
        breaker.failure(0);
        breaker.failure(1);
        assert!(!breaker.is_open(2));
        breaker.success();
        breaker.failure(3);
        breaker.failure(4);
        assert!(!breaker.is_open(5), "success reset the count");
        breaker.failure(6);
        assert!(breaker.is_open(7));
        assert!(!breaker.is_open(6 + OPEN_FOR));
    }
}
