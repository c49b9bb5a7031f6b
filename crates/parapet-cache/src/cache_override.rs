//! A per-request override of the cache policy, set by an earlier layer or a route.

use std::time::Duration;

/// Changes how the cache treats one request: insert it into the request's extensions in a
/// layer before the cache (per route, with axum's `route_layer` or a `map_request`).
///
/// ```
/// use std::time::Duration;
/// use parapet_cache::CacheOverride;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(CacheOverride::default_ttl(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheOverride {
    pub(crate) bypass: bool,
    pub(crate) default_ttl: Option<Duration>,
}

impl CacheOverride {
    /// Neither served from nor stored in the cache (`Cache-Status: fwd=bypass`).
    pub fn bypass() -> Self {
        Self {
            bypass: true,
            default_ttl: None,
        }
    }

    /// Responses without freshness information of their own are fresh for `ttl` (instead of
    /// the layer's [`default_ttl`](crate::CacheLayerBuilder::default_ttl)).
    pub fn default_ttl(ttl: Duration) -> Self {
        Self {
            bypass: false,
            default_ttl: Some(ttl),
        }
    }
}
