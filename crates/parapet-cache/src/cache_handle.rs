//! Programmatic invalidation and statistics.

use std::sync::Arc;
use std::time::Duration;

use parapet_core::StoreError;

use crate::shared::Shared;
use crate::{CacheKey, CacheStats, PurgeNotice};

/// How long purge records are kept: longer than anything can be stored (a year of
/// freshness is already far past any sane `max-age`), so that a purge covers every copy.
pub(crate) const PURGE_MEMORY: Duration = Duration::from_secs(366 * 86_400);

/// A cloneable handle on a cache: invalidate by key, path prefix or tag, clear, and read
/// statistics. Get it from [`CacheLayer::handle`](crate::CacheLayer::handle).
///
/// ```
/// # async fn run() -> Result<(), parapet_core::StoreError> {
/// use parapet_cache::{CacheKey, CacheLayer};
///
/// let layer = CacheLayer::new();
/// let cache = layer.handle();
/// cache.invalidate(&CacheKey::new("http", "api.example", "/products?page=1")).await?;
/// cache.purge_prefix("/products").await?;
/// cache.purge_tag("product-42").await?;
/// assert_eq!(cache.stats().hits, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    pub(crate) shared: Arc<Shared>,
}

impl CacheHandle {
    /// Removes every stored variant of `key`.
    pub async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.shared.store.remove(key).await
    }

    /// Every response stored so far under a path that is `prefix` or below it (at a `/`
    /// boundary: `/products` covers `/products` and `/products/7`, not `/productsale`) is
    /// gone. O(1): nothing is scanned now; later lookups check their path's prefixes. With a
    /// Redis or tiered store the purge is recorded in Redis and announced: every instance
    /// applies it (the error says when that could not be done; this instance applies it
    /// either way).
    pub async fn purge_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        self.purge(true, prefix, false).await
    }

    /// Like [`purge_prefix`](Self::purge_prefix), but the responses become stale instead
    /// of gone: revalidated with the origin (a cheap `304` when unchanged), or served
    /// within their stale windows.
    pub async fn soft_purge_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        self.purge(true, prefix, true).await
    }

    /// Every response stored so far with this tag (`Surrogate-Key` or `Cache-Tag`, space-
    /// or comma-separated) is gone, on every instance as for prefixes.
    pub async fn purge_tag(&self, tag: &str) -> Result<(), StoreError> {
        self.purge(false, tag, false).await
    }

    /// Like [`purge_tag`](Self::purge_tag), but the responses become stale.
    pub async fn soft_purge_tag(&self, tag: &str) -> Result<(), StoreError> {
        self.purge(false, tag, true).await
    }

    async fn purge(&self, prefix: bool, name: &str, soft: bool) -> Result<(), StoreError> {
        let notice = PurgeNotice {
            prefix,
            name: name.to_owned(),
            soft,
            at: self.shared.now(),
        };
        let _ = self.shared.purges.apply(&notice, PURGE_MEMORY);
        self.shared.store.announce_purge(&notice).await
    }

    /// Removes everything.
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.shared.store.clear().await
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// The bytes held right now for responses on their way into the store, and for stored
    /// answers their leaders' clients have not read yet (bounded by
    /// [`max_in_flight_bytes`](crate::CacheLayerBuilder::max_in_flight_bytes)).
    pub fn in_flight_bytes(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("stats", &self.stats())
            .finish()
    }
}
