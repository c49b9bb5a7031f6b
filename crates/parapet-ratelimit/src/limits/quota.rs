//! How many requests per how long.

use std::time::Duration;

use crate::Algorithm;

/// A rate (`rate` requests per `period`) and a burst (how many may arrive at once).
///
/// The burst defaults to the rate: `Quota::per_minute(100)` admits 100 requests at once,
/// then one every 600 ms. A smaller burst smooths traffic (`.burst(10)`: at most 10 at once).
///
/// Requests are spaced by the emission interval `period / rate`, rounded *up* to the
/// microsecond, so a quota never admits more than it says.
///
/// ```
/// use std::time::Duration;
/// use parapet_ratelimit::Quota;
///
/// let api = Quota::per_minute(100);
/// let uploads = Quota::new(10, Duration::from_secs(3600)).burst(2);
/// assert_eq!(api.emission_interval(), Duration::from_millis(600));
/// assert_eq!(uploads.burst_size(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: Option<u32>,
    algorithm: Algorithm,
}

impl Quota {
    /// `rate` requests per `period`, burst = `rate`.
    pub const fn new(rate: u32, period: Duration) -> Self {
        Self {
            rate,
            period,
            burst: None,
            algorithm: Algorithm::Gcra,
        }
    }

    /// `rate` requests per second.
    pub const fn per_second(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(1))
    }

    /// `rate` requests per minute.
    pub const fn per_minute(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(60))
    }

    /// `rate` requests per hour.
    pub const fn per_hour(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(3600))
    }

    /// `rate` requests per day.
    pub const fn per_day(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(86_400))
    }

    /// How many requests may arrive at once (default: the rate).
    #[must_use]
    pub const fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Counts in fixed windows aligned to the Unix epoch instead of GCRA: at most `rate`
    /// requests in each window `[k·period, (k+1)·period)` — what "100 per minute" means to a
    /// minute counter, and the cheapest state (one number). At a window edge a client may
    /// send `rate` at the end of one window and `rate` at the start of the next. A refused
    /// request may retry at the window's end, which the `RateLimit` field's `t` names. A
    /// fixed window has no separate burst ([`burst`](Self::burst) is refused with it).
    ///
    /// ```
    /// use parapet_ratelimit::Quota;
    /// let per_hour = Quota::per_hour(1000).fixed_window();
    /// assert!(per_hour.is_fixed_window());
    /// ```
    #[must_use]
    pub const fn fixed_window(self) -> Self {
        self.with_algorithm(Algorithm::FixedWindow)
    }

    /// Counts in a strict sliding window instead of GCRA: never more than `rate` requests
    /// in *any* interval of length `period` — the contract "1,000 calls per hour" states.
    /// A refused request may retry when the oldest request still in the window leaves it
    /// (exact, to the microsecond); `t` in the `RateLimit` field is when the newest leaves.
    ///
    /// The state is a log of the admitted requests' times, at most `rate` of them per key
    /// (8 bytes each in memory; one sorted-set entry each in Redis), so `rate` is capped at
    /// [`MAX_SLIDING_RATE`](Self::MAX_SLIDING_RATE); for larger rates use GCRA or a fixed
    /// window. A sliding window has no separate burst ([`burst`](Self::burst) is refused).
    ///
    /// ```
    /// use parapet_ratelimit::Quota;
    /// let contract = Quota::per_hour(1000).sliding_window();
    /// assert!(contract.is_sliding_window());
    /// ```
    #[must_use]
    pub const fn sliding_window(self) -> Self {
        self.with_algorithm(Algorithm::SlidingWindow)
    }

    /// The largest rate of a [sliding window](Self::sliding_window): it bounds the log
    /// each key keeps.
    pub const MAX_SLIDING_RATE: u32 = 10_000;

    /// Counts with `algorithm` (see [`Algorithm`] for what each means to a client).
    #[must_use]
    pub const fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The algorithm this quota counts with.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// True for a [`fixed_window`](Self::fixed_window) quota.
    pub const fn is_fixed_window(&self) -> bool {
        matches!(self.algorithm, Algorithm::FixedWindow)
    }

    /// True for a [`sliding_window`](Self::sliding_window) quota.
    pub const fn is_sliding_window(&self) -> bool {
        matches!(self.algorithm, Algorithm::SlidingWindow)
    }

    /// The rate: requests per [`period`](Self::period).
    pub const fn rate(&self) -> u32 {
        self.rate
    }

    /// The period the rate is counted over.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The burst size.
    pub const fn burst_size(&self) -> u32 {
        match self.burst {
            Some(burst) => burst,
            None => self.rate,
        }
    }

    /// The spacing between requests at the sustained rate, rounded up to the microsecond.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.interval_micros().unwrap_or(0))
    }

    /// `ceil(period / rate)` in microseconds; `None` for a zero rate.
    pub(crate) fn interval_micros(&self) -> Option<u64> {
        let period = u64::try_from(self.period.as_micros()).ok()?;
        let rate = u64::from(self.rate);
        (rate > 0).then(|| period.div_ceil(rate))
    }
}
