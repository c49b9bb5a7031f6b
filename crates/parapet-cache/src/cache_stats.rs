//! Counters a [`CacheHandle`](crate::CacheHandle) reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the cache has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Served from the cache, fresh.
    pub hits: u64,
    /// Served from the cache, stale (`stale-while-revalidate`, `stale-if-error`,
    /// `max-stale`, grace).
    pub stale_hits: u64,
    /// Forwarded for lack of a usable stored response.
    pub misses: u64,
    /// Stored responses the origin confirmed with `304`.
    pub revalidated: u64,
    /// Not served from the cache by choice: bypass, a method it does not serve, gRPC.
    pub bypassed: u64,
    /// Responses stored.
    pub stored: u64,
    /// Misses answered from a response another request fetched.
    pub collapsed: u64,
    /// Store calls that failed or timed out.
    pub store_errors: u64,
    /// Background refreshes started.
    pub refreshes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub stale_hits: AtomicU64,
    pub misses: AtomicU64,
    pub revalidated: AtomicU64,
    pub bypassed: AtomicU64,
    pub stored: AtomicU64,
    pub collapsed: AtomicU64,
    pub store_errors: AtomicU64,
    pub refreshes: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            stale_hits: get(&self.stale_hits),
            misses: get(&self.misses),
            revalidated: get(&self.revalidated),
            bypassed: get(&self.bypassed),
            stored: get(&self.stored),
            collapsed: get(&self.collapsed),
            store_errors: get(&self.store_errors),
            refreshes: get(&self.refreshes),
        }
    }
}
