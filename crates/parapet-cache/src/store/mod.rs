//! Where responses are kept: the [`CacheStore`] trait, in memory or on Redis.

mod codec;
mod memory;
mod purge_notice;
mod redis;
mod tiered;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};
use parapet_core::StoreCall;

use crate::{CacheKey, StoredResponse};

pub use memory::MemoryStore;
pub use purge_notice::PurgeNotice;
pub use redis::RedisStore;
pub use tiered::TieredStore;

/// What a store calls with the purges other instances make.
pub type PurgeFeed = Arc<dyn Fn(PurgeNotice) + Send + Sync>;

/// What a store found for a request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Lookup {
    /// A stored variant that matches the request's `Vary`-named fields.
    Hit(Arc<StoredResponse>),
    /// Variants of the resource are stored, none for this request; they vary on these
    /// fields.
    VaryMiss(Vec<HeaderName>),
    /// Nothing is stored for the resource.
    Miss,
}

/// The operations the cache needs from a store, each atomic.
///
/// A store keeps, per [`CacheKey`], up to `max_variants` [`StoredResponse`]s, each until its
/// [`expires`](StoredResponse::expires) time, and never returns one stored under another key
/// (it compares [`CacheKey::as_bytes`] on read).
pub trait CacheStore: Send + Sync + 'static {
    /// The stored variant of `key` that matches `request`.
    fn lookup(&self, key: &CacheKey, request: &HeaderMap, now: SystemTime) -> StoreCall<Lookup>;

    /// Stores `response`, replacing the variant it matches; a variant (the least used, in
    /// the stores of this crate) leaves when the resource would hold more than
    /// `max_variants`.
    fn put(
        &self,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) -> StoreCall<()>;

    /// Removes every variant of `key`.
    fn remove(&self, key: &CacheKey) -> StoreCall<()>;

    /// Removes everything.
    fn clear(&self) -> StoreCall<()>;

    /// Tells every other instance sharing this store of a purge (and keeps it for those
    /// that join or resubscribe later). Default: nothing to tell (one process).
    fn announce_purge(&self, notice: &PurgeNotice) -> StoreCall<()> {
        let _ = notice;
        StoreCall::ready(Ok(()))
    }

    /// Calls `feed` with every purge other instances announce, and with every recorded
    /// purge after a (re)subscription. Default: none (one process).
    fn listen_for_purges(&self, feed: PurgeFeed) {
        let _ = feed;
    }

    /// Tries to take, for `ttl`, the lease on fetching one variant of `key` from the origin
    /// for every instance sharing this store: `true` when taken. `variant` is the request's
    /// canonical values of the resource's `Vary` fields (empty without `Vary`). Default:
    /// always (one process).
    fn lease(&self, key: &CacheKey, variant: &[u8], token: u64, ttl: Duration) -> StoreCall<bool> {
        let _ = (key, variant, token, ttl);
        StoreCall::ready(Ok(true))
    }

    /// Gives the lease back if `token` still holds it. Default: nothing to give back.
    fn release(&self, key: &CacheKey, variant: &[u8], token: u64) -> StoreCall<()> {
        let _ = (key, variant, token);
        StoreCall::ready(Ok(()))
    }

    /// True for a store in this process that always answers at once and never fails: the
    /// layer then answers fresh hits without a task and without the circuit breaker.
    /// Default: false.
    fn is_in_process(&self) -> bool {
        false
    }

    /// Whether [`hit_at_once`](Self::hit_at_once) may find anything (checked first, so
    /// that a store without memory of its own costs nothing there). Default: the same as
    /// [`is_in_process`](Self::is_in_process).
    fn answers_at_once(&self) -> bool {
        self.is_in_process()
    }

    /// A stored variant this store can give at once, from this process's memory, without
    /// waiting or failing; `None` when it cannot tell without a call (the layer then takes
    /// its general path). Default: the lookup's answer for an in-process store, `None`
    /// otherwise; [`TieredStore`] answers from its memory tier.
    fn hit_at_once(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<StoredResponse>> {
        if !self.is_in_process() {
            return None;
        }
        match self.lookup(key, request, now).now_or_later() {
            Ok(Ok(Lookup::Hit(hit))) => Some(hit),
            _ => None,
        }
    }
}

impl<T: CacheStore> CacheStore for Arc<T> {
    fn lookup(&self, key: &CacheKey, request: &HeaderMap, now: SystemTime) -> StoreCall<Lookup> {
        (**self).lookup(key, request, now)
    }

    fn put(
        &self,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) -> StoreCall<()> {
        (**self).put(response, max_variants, now)
    }

    fn remove(&self, key: &CacheKey) -> StoreCall<()> {
        (**self).remove(key)
    }

    fn clear(&self) -> StoreCall<()> {
        (**self).clear()
    }

    fn is_in_process(&self) -> bool {
        (**self).is_in_process()
    }

    fn answers_at_once(&self) -> bool {
        (**self).answers_at_once()
    }

    fn hit_at_once(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<StoredResponse>> {
        (**self).hit_at_once(key, request, now)
    }

    fn announce_purge(&self, notice: &PurgeNotice) -> StoreCall<()> {
        (**self).announce_purge(notice)
    }

    fn listen_for_purges(&self, feed: PurgeFeed) {
        (**self).listen_for_purges(feed);
    }

    fn lease(&self, key: &CacheKey, variant: &[u8], token: u64, ttl: Duration) -> StoreCall<bool> {
        (**self).lease(key, variant, token, ttl)
    }

    fn release(&self, key: &CacheKey, variant: &[u8], token: u64) -> StoreCall<()> {
        (**self).release(key, variant, token)
    }
}
