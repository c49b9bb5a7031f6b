//! The tower layer.

use tower_layer::Layer;

use crate::{RateLimit, RateLimitLayerBuilder, RateLimiter};

/// Applies rate limits to requests: the entry point of this crate.
///
/// Cheap to clone; every service it makes shares one limiter, so limits hold across
/// connections (and across instances with a Redis store).
///
/// ```
/// use parapet_ratelimit::{Quota, RateLimitLayer};
///
/// let layer = RateLimitLayer::builder()
///     .policy("minute", Quota::per_minute(100))
///     .policy("hour", Quota::per_hour(1000))
///     .build()?;
/// # Ok::<(), parapet_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// Starts a configuration.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::new()
    }

    pub(crate) fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }

    /// The limiter, for reading, resetting, banning and allow-listing keys at run time.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone())
    }
}
