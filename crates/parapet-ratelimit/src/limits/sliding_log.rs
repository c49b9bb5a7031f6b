//! A sliding window's state: the times of the cells it admitted that are still in it.

use std::collections::VecDeque;

use parapet_core::table::Expiring;

/// The log of one (subject, policy) under a sliding window of `window` µs: one time stamp
/// per admitted cell, oldest first.
///
/// Bound: a cell is admitted only when the cells in the window plus its cost fit in the
/// policy's rate `N`, and stamps that left the window are dropped on every charge, so the
/// log never holds more than `N` stamps (`N ≤ Quota::MAX_SLIDING_RATE`): at most `8·N`
/// bytes plus the deque's spare capacity (under `8·N` more).
#[derive(Debug, Clone)]
pub(crate) struct SlidingLog {
    stamps: VecDeque<i64>,
    window: i64,
}

impl SlidingLog {
    pub(crate) fn new(window: i64) -> Self {
        Self {
            stamps: VecDeque::new(),
            window,
        }
    }

    /// Index of the first stamp still in the window `(now − window, now]`.
    fn first_in_window(&self, now: i64) -> usize {
        self.stamps.partition_point(|&s| s <= now - self.window)
    }

    /// Cells in the window at `now`.
    pub(crate) fn count(&self, now: i64) -> i64 {
        (self.stamps.len() - self.first_in_window(now)) as i64
    }

    /// The `k`-th oldest stamp in the window (0-based), if there are that many.
    pub(crate) fn nth(&self, now: i64, k: i64) -> Option<i64> {
        let k = usize::try_from(k).ok()?;
        self.stamps.get(self.first_in_window(now) + k).copied()
    }

    /// The newest stamp.
    pub(crate) fn newest(&self) -> Option<i64> {
        self.stamps.back().copied()
    }

    /// Records `cost` cells at `now`, dropping the stamps that left the window. A clock
    /// that stepped back records at the newest stamp instead, which keeps the log sorted
    /// and errs towards refusing (a cell leaves later than it would).
    pub(crate) fn charge(&mut self, now: i64, cost: i64) {
        let gone = self.first_in_window(now);
        self.stamps.drain(..gone);
        let at = self.newest().map_or(now, |newest| newest.max(now));
        for _ in 0..cost {
            self.stamps.push_back(at);
        }
    }

    /// Gives back the `cost` newest cells.
    pub(crate) fn refund(&mut self, cost: i64) {
        for _ in 0..cost {
            self.stamps.pop_back();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stamps.len()
    }
}

impl Expiring for SlidingLog {
    /// The log matters until its newest stamp leaves the window.
    fn expires(&self) -> i64 {
        self.newest()
            .map_or(i64::MIN, |newest| newest + self.window)
    }
}
