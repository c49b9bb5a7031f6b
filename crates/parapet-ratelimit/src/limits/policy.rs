//! A named quota.

use std::fmt;
use std::sync::Arc;

use parapet_core::is_key_word;
use sha2::{Digest, Sha256};

use crate::gcra::Limit;
use crate::metrics::PolicyCounters;
use crate::{Algorithm, Quota, RateLimitError};

/// Ten years: the largest span a quota may cover. It keeps every microsecond value the
/// Redis script computes below 2^53, where Lua numbers stay exact integers.
const MAX_TOLERANCE_MICROS: u64 = 10 * 365 * 86_400 * 1_000_000;

/// A quota with a name, such as `"minute"` → 100 per minute.
///
/// The name appears in the `RateLimit` headers, in metrics and in store keys. A policy's
/// stored state is keyed by its name *and* its quota, so changing a quota starts afresh
/// rather than reinterpreting old state.
///
/// ```
/// use parapet_ratelimit::{Policy, Quota};
///
/// let minute = Policy::new("minute", Quota::per_minute(100))?;
/// assert_eq!(minute.name(), "minute");
/// assert!(Policy::new("bad name", Quota::per_minute(1)).is_err());
/// assert!(Policy::new("zero", Quota::per_minute(0)).is_err());
/// # Ok::<(), parapet_ratelimit::RateLimitError>(())
/// ```
#[derive(Clone)]
pub struct Policy(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    name: Arc<str>,
    counters: PolicyCounters,
    quota: Quota,
    limit: Limit,
    key_suffix: String,
    id: u64,
}

impl Policy {
    /// A policy named `name` (1 to 64 characters of `A-Z a-z 0-9 _ - .`).
    pub fn new(name: impl Into<String>, quota: Quota) -> Result<Self, RateLimitError> {
        let name: String = name.into();
        if !is_key_word(&name) {
            return Err(RateLimitError::InvalidPolicyName);
        }
        let interval = match quota.interval_micros() {
            Some(interval) if quota.burst_size() > 0 && !quota.period().is_zero() => interval,
            _ => return Err(RateLimitError::ZeroQuota { policy: name }),
        };
        let out_of_range = |reason| RateLimitError::QuotaOutOfRange {
            policy: name.clone(),
            reason,
        };
        if quota.period().as_micros() < u128::from(quota.rate()) {
            return Err(out_of_range("more than one request per microsecond"));
        }
        let tolerance = interval.checked_mul(u64::from(quota.burst_size()));
        if tolerance.is_none_or(|t| t > MAX_TOLERANCE_MICROS) {
            return Err(out_of_range("burst times interval exceeds ten years"));
        }
        let algorithm = quota.algorithm();
        let window = if algorithm == Algorithm::Gcra {
            0
        } else {
            let window =
                i64::try_from(quota.period().as_micros()).map_err(|_| out_of_range("window"))?;
            if quota.burst_size() != quota.rate() {
                return Err(out_of_range("a fixed or sliding window has no burst"));
            }
            // `count < window` keeps the stored `end + count` unambiguous (gcra.rs).
            if i64::from(quota.rate()) >= window {
                return Err(out_of_range(
                    "a window of at least one request per microsecond",
                ));
            }
            if algorithm == Algorithm::SlidingWindow && quota.rate() > Quota::MAX_SLIDING_RATE {
                return Err(out_of_range(
                    "a sliding window logs every request: at most 10,000 per window",
                ));
            }
            window
        };
        let limit = Limit {
            algorithm,
            interval: i64::try_from(interval).map_err(|_| out_of_range("interval"))?,
            burst: i64::from(quota.burst_size()),
            shadow: false,
            window,
        };
        // Each algorithm keeps another state: another key, so switching one policy to
        // another algorithm starts afresh (and never reads a sorted set as a number).
        let suffix = match algorithm {
            Algorithm::Gcra => "",
            Algorithm::FixedWindow => ".fw",
            Algorithm::SlidingWindow => ".sw",
        };
        // GCRA's state is defined by interval and burst; a window's by its length and
        // count (two windows of one rounded interval must not share a key).
        let span = if algorithm == Algorithm::Gcra {
            interval
        } else {
            window.unsigned_abs()
        };
        let key_suffix = format!("{name}.{span}x{}{suffix}", quota.burst_size());
        let digest = Sha256::digest(key_suffix.as_bytes());
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        let name: Arc<str> = name.into();
        Ok(Self(Arc::new(Inner {
            counters: PolicyCounters::new(&name),
            name,
            quota,
            limit,
            key_suffix,
            id: u64::from_le_bytes(id),
        })))
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The policy's quota.
    pub fn quota(&self) -> Quota {
        self.0.quota
    }

    pub(crate) fn shared_name(&self) -> Arc<str> {
        self.0.name.clone()
    }

    pub(crate) fn counters(&self) -> &PolicyCounters {
        &self.0.counters
    }

    pub(crate) fn limit(&self) -> Limit {
        self.0.limit
    }

    /// This policy in shadow (dry-run) mode: decided, counted (`outcome="shadow_limited"`),
    /// logged and reported in the rate-limit fields like any other, but it never refuses a
    /// request. Its counters are the enforced policy's (same name and quota, same keys), so
    /// turning shadow mode off later keeps every client's state.
    ///
    /// ```
    /// use parapet_ratelimit::{Policy, Quota};
    /// let trial = Policy::new("minute", Quota::per_minute(100))?.shadow();
    /// assert!(trial.is_shadow());
    /// # Ok::<(), parapet_ratelimit::RateLimitError>(())
    /// ```
    pub fn shadow(self) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.limit.shadow = true;
        Self(Arc::new(inner))
    }

    /// True for a shadow policy (see [`shadow`](Self::shadow)).
    pub fn is_shadow(&self) -> bool {
        self.0.limit.shadow
    }

    /// `name.{interval}x{burst}` (a window: `name.{window}x{count}.fw` or `.sw`): the last
    /// part of the policy's store key.
    pub(crate) fn key_suffix(&self) -> &str {
        &self.0.key_suffix
    }

    /// A stable 64-bit id of name and quota, for in-process tables.
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name())
            .field("quota", &self.0.quota)
            .field("shadow", &self.0.limit.shadow)
            .finish()
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.0.key_suffix == other.0.key_suffix && self.0.limit.shadow == other.0.limit.shadow
    }
}

impl Eq for Policy {}
