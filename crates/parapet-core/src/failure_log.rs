//! Logging store failures without flooding the log during an outage.

use std::fmt::Display;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Logs the first failure with its cause at `warn`, then at most one summary per interval
/// (how many failures were not logged, and the latest cause). An outage of 10,000 requests
/// a second writes a few lines, not 10,000.
///
/// ```
/// use std::time::Duration;
/// use parapet_core::FailureLog;
///
/// let log = FailureLog::new("rate-limit store", Duration::from_secs(10));
/// assert!(log.failure(0, "timeout", "fallback", &"deadline missed"), "the first is logged");
/// assert!(!log.failure(1_000, "timeout", "fallback", &"deadline missed"));
/// assert!(log.failure(10_000_000, "redis", "fallback", &"connection refused"));
/// ```
#[derive(Debug)]
pub struct FailureLog {
    what: &'static str,
    interval: i64,
    /// µs of the last line written; `i64::MIN` before the first.
    last: AtomicI64,
    unlogged: AtomicU64,
}

impl FailureLog {
    /// A log for failures of `what` (a few words: `"rate-limit store"`), one line per
    /// `interval` at most.
    pub fn new(what: &'static str, interval: Duration) -> Self {
        Self {
            what,
            interval: i64::try_from(interval.as_micros()).unwrap_or(i64::MAX),
            last: AtomicI64::new(i64::MIN),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Records a failure at `now` (µs, monotonic); returns true when it wrote a line.
    /// `kind` is the error's metric kind, `action` what the middleware did instead.
    pub fn failure(
        &self,
        now: i64,
        kind: &'static str,
        action: &'static str,
        cause: &dyn Display,
    ) -> bool {
        let last = self.last.load(Ordering::Acquire);
        let due = last == i64::MIN || now.saturating_sub(last) >= self.interval;
        if !due
            || self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        if last == i64::MIN {
            tracing::warn!(kind, action, "{} failed: {cause}", self.what);
        } else {
            tracing::warn!(
                kind,
                action,
                unlogged,
                "{} failed: {cause} ({unlogged} more failures since the last report)",
                self.what
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_however_many_failures() {
        let log = FailureLog::new("test store", Duration::from_secs(10));
        let written = (0..100_000i64)
            .filter(|i| log.failure(i * 1_000, "timeout", "fallback", &"slow"))
            .count();
        // 100 s of failures, one a millisecond: the first, then one every 10 s.
        assert_eq!(written, 10);
    }
}
