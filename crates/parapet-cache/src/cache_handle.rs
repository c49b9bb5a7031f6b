//! Programmatic invalidation and statistics.

use std::sync::Arc;
use std::time::Duration;

use parapet_core::StoreError;

use crate::purge::{Purged, Recorded};
use crate::shared::Shared;
use crate::{CacheKey, CacheStats};

/// How long purge records are kept: longer than anything can be stored (a year of
/// freshness is already far past any sane `max-age`), so that a purge covers every copy.
const PURGE_MEMORY: Duration = Duration::from_secs(366 * 86_400);

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
/// cache.purge_prefix("/products");
/// cache.purge_tag("product-42");
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
    /// gone. O(1): nothing is scanned now; later lookups check their path's prefixes.
    pub fn purge_prefix(&self, prefix: &str) {
        self.record(|p, now| p.prefix(prefix, Purged::Hard, now, PURGE_MEMORY));
    }

    /// Like [`purge_prefix`](Self::purge_prefix), but the responses become stale instead
    /// of gone: revalidated with the origin (a cheap `304` when unchanged), or served
    /// within their stale windows.
    pub fn soft_purge_prefix(&self, prefix: &str) {
        self.record(|p, now| p.prefix(prefix, Purged::Soft, now, PURGE_MEMORY));
    }

    /// Every response stored so far with this tag (`Surrogate-Key` or `Cache-Tag`, space-
    /// or comma-separated) is gone.
    pub fn purge_tag(&self, tag: &str) {
        self.record(|p, now| p.tag(tag, Purged::Hard, now, PURGE_MEMORY));
    }

    /// Like [`purge_tag`](Self::purge_tag), but the responses become stale.
    pub fn soft_purge_tag(&self, tag: &str) {
        self.record(|p, now| p.tag(tag, Purged::Soft, now, PURGE_MEMORY));
    }

    fn record(&self, purge: impl FnOnce(&crate::purge::Purges, std::time::SystemTime) -> Recorded) {
        if purge(&self.shared.purges, self.shared.now()) == Recorded::ClearAll {
            let _ = self.shared.store.clear().now_or_later();
        }
    }

    /// Removes everything.
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.shared.store.clear().await
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("stats", &self.stats())
            .finish()
    }
}
