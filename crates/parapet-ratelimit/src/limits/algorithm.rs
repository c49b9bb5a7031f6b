//! Which algorithm a quota counts with.

use std::fmt;
use std::str::FromStr;

use crate::RateLimitError;

/// How a [`Quota`](crate::Quota) of `rate` per `period` is counted. What each means for a
/// client of `Quota::per_minute(100)`:
///
/// | | admits | state per key | a refused client may retry |
/// |---|---|---|---|
/// | [`Gcra`](Self::Gcra) (default) | a burst of 100, then one every 600 ms: up to 199 in the first minute from cold, 100 per minute sustained | one number | when one request's worth has refilled |
/// | [`SlidingWindow`](Self::SlidingWindow) | never more than 100 in *any* 60 s | one time stamp per admitted request, at most 100 | when the oldest request in the window is 60 s old |
/// | [`FixedWindow`](Self::FixedWindow) | 100 per minute of the clock (`:00`–`:59`); up to 200 across a minute's edge | one number | at the next minute |
///
/// Parsed from `gcra`, `sliding` or `fixed` (as the examples' `ALGORITHM` variable is):
///
/// ```
/// use parapet_ratelimit::{Algorithm, Quota};
/// let algorithm: Algorithm = "sliding".parse()?;
/// let quota = Quota::per_minute(100).with_algorithm(algorithm);
/// assert!(quota.is_sliding_window());
/// assert!("leaky".parse::<Algorithm>().is_err());
/// # Ok::<(), parapet_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// The generic cell rate algorithm: a burst, then an even refill.
    #[default]
    Gcra,
    /// A strict sliding window: at most `rate` in any interval of length `period`.
    SlidingWindow,
    /// Windows aligned to the Unix epoch, each admitting `rate`.
    FixedWindow,
}

impl Algorithm {
    /// The name [`FromStr`] accepts: `gcra`, `sliding` or `fixed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::SlidingWindow => "sliding",
            Self::FixedWindow => "fixed",
        }
    }
}

impl FromStr for Algorithm {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gcra" => Ok(Self::Gcra),
            "sliding" => Ok(Self::SlidingWindow),
            "fixed" => Ok(Self::FixedWindow),
            _ => Err(RateLimitError::InvalidConfig(
                "unknown rate-limit algorithm: expected gcra, sliding or fixed",
            )),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
